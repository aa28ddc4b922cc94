//! Backups that are proven restorable: `backup`, `restore`, `verify` and `backups`.
//!
//! - [`create`]: pg_dump (custom format) from an exported snapshot, streamed to every
//!   destination with its sha256, read back and checked, manifest written last, retention.
//! - [`restore`]: checksum first, refuses non-empty targets unless forced, one transaction.
//! - [`verify`]: the restore drill into a scratch database, compared with the manifest.
//! - [`list`]: what a destination holds.
//!
//! Pure parts: [`id`], [`redact`], [`layout`], [`retention`], [`manifest`] comparison,
//! [`destination`] parsing, [`outcome`] exit codes. The runbook is docs/ops/backup.md.

pub mod cli;
pub mod create;
pub mod destination;
pub mod fetch;
pub mod id;
pub mod layout;
pub mod list;
pub mod manifest;
pub mod outcome;
pub mod postgres;
pub mod progress;
pub mod prune;
pub use fp_contract::redact;
pub mod restore;
pub mod retention;
pub mod store;
pub mod verify;
