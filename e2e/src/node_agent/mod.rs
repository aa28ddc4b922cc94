//! fp-node-agent: stands in for kubelet and a container runtime on a machine without either.
//! It registers Nodes, runs the pods the scheduler binds to them as host processes on loopback
//! pod IPs, probes them and writes their status. See docs/node-agent.md.
//!
//! The pure parts (image matching, IP ranges, env expansion, path translation, volume content,
//! probe thresholds, restart back-off, status computation) live in their own modules with unit
//! tests; the modules that talk to the API server are kept thin.

pub mod command;
pub mod downward;
pub mod env;
pub mod image;
pub mod ipam;
pub mod kubeconfig;
pub mod logs;
pub mod paths;
pub mod probe;
pub mod process;
pub mod quantity;
pub mod restart;
pub mod status;
pub mod volumes;

pub mod agent;
pub mod cache;
pub mod cli;
pub mod context;
pub mod node;
pub mod sandbox;
pub mod worker;
