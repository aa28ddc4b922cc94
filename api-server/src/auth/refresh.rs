//! Refresh tokens: 256 random bits, handed out once, stored only as their SHA-256 hash (the
//! token's entropy makes a slow hash pointless). Each login starts a family; every refresh
//! rotates the token within it, and a rotated token presented again revokes the whole family.
//! A family lives at most the session's maximum lifetime from its login, however often it is
//! refreshed (its id records its start: `db::auth::new_family`).

use base64::Engine;
use sha2::{Digest, Sha256};

/// A fresh opaque token (URL-safe base64, 43 characters).
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database stores and looks tokens up by.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Cheap shape check before touching the database (and so before any hashing of junk).
pub fn looks_valid(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_opaque_and_hash_stably() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(looks_valid(&a));
        assert!(!looks_valid("eyJhbGciOi.x.y"));
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a).len(), 64);
    }
}
