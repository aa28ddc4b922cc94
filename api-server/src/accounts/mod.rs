//! Who a user is, before any authentication: the roles and the rules for usernames and passwords.
//! A leaf: configuration, storage and authentication all read it.

mod roles;

pub use roles::{Role, UnknownRole};

/// Why a username or password is not acceptable (shown to the client as a 422 on that field).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("username must be 3-32 characters of a-z, 0-9, '.', '_' or '-'")]
    Username,
    #[error("password must be 10-128 characters long")]
    PasswordLength,
}

/// Usernames are case-insensitive: callers lower-case them before validating and storing.
pub fn validate_username(name: &str) -> Result<(), CredentialError> {
    let ok_len = (3..=32).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(CredentialError::Username)
    }
}

/// A bounded length keeps argon2 work per request bounded.
pub fn validate_password(password: &str) -> Result<(), CredentialError> {
    if (10..=128).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(CredentialError::PasswordLength)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(validate_username("admin").is_ok());
        assert!(validate_username("a.b_c-9").is_ok());
        assert!(validate_username("ab").is_err());
        assert!(validate_username("Admin").is_err());
        assert!(validate_username("ädmin").is_err());
        assert!(validate_username(&"a".repeat(33)).is_err());
    }

    #[test]
    fn passwords() {
        assert!(validate_password("0123456789").is_ok());
        assert!(validate_password("short").is_err());
        assert!(validate_password(&"x".repeat(129)).is_err());
    }
}
