//! fp-api-server: football data, Dixon-Coles predictions, JWT auth, health and metrics.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod accounts;
pub mod auth;
pub mod backup;
pub mod cache;
pub mod cli;
pub mod config;
pub mod csvdata;
pub mod db;
pub mod demo;
pub mod dixon_coles;
pub mod error;
pub mod faults;
pub mod http;
pub mod import;
pub mod metrics;
pub mod predict;
pub mod server;
pub mod telemetry;
pub mod views;
