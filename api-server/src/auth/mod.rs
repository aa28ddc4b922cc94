//! Authentication and authorisation: JWT access tokens signed with a rotating key set, argon2id
//! password hashing off the async workers, opaque refresh tokens. Roles and credential rules live
//! in [`crate::accounts`] and are re-exported here.

pub mod backoff;
pub mod bootstrap;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod refresh;
mod service;

pub use crate::accounts::{
    CredentialError, Role, UnknownRole, validate_password, validate_username,
};
pub use jwt::{Principal, TokenError};
pub use service::{AuthError, AuthService, TokenPair};
