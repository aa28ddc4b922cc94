//! The reconcile pipeline: validate (pure) → build (pure) → apply → status (pure computation, one patch).

pub mod rollout;
pub mod validate;
