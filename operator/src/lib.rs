//! fp-operator: reconciles `FootballPrediction` resources into the prediction platform.
// Tests may panic on the unexpected; production code returns errors.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod controller;
pub mod crd;
pub mod cron;
pub mod kube_requests;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod plugin;
pub mod quantity;
pub mod reason;
pub mod resources;
pub mod telemetry;
#[cfg(test)]
pub(crate) mod test_support;
pub mod validate;
