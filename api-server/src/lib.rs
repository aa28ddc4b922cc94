//! fp-api-server: football data, Dixon-Coles predictions, JWT auth, health and metrics.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod auth;
pub mod cli;
pub mod config;
pub mod csvdata;
pub mod db;
pub mod error;
pub mod faults;
pub mod http;
pub mod metrics;
pub mod model;
pub mod server;
pub mod state;
pub mod telemetry;
