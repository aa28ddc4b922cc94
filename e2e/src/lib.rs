//! End-to-end scenarios against the local control plane and its real node: they live in
//! `tests/` and run through `cargo xtask test` (docs/local-cluster.md).
