//! End-to-end test support: the node agent that stands in for kubelet, and scenario helpers.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod node_agent;
