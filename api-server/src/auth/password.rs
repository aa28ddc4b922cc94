//! argon2id password hashing on blocking threads, at most `concurrency` at once, so logins can
//! never occupy the async workers that serve cached reads.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::PasswordHashSettings;

/// How long a request waits for a hashing slot before answering 503.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("too many password checks in progress")]
    Busy,
    #[error("password hashing task failed: {0}")]
    Task(String),
}

pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so both cases take the same time.
    dummy_hash: String,
}

impl PasswordHasher {
    pub fn new(settings: &PasswordHashSettings) -> Result<Self, PasswordError> {
        let params = Params::new(settings.memory_kib, settings.iterations, 1, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        let dummy_hash = hash_blocking(&params, "dummy password never used")?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(settings.concurrency as usize)),
            dummy_hash,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = tokio::time::timeout(QUEUE_TIMEOUT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| PasswordError::Busy)?
            .map_err(|_| PasswordError::Busy)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| PasswordError::Task(e.to_string()))?
    }

    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let params = self.params.clone();
        self.run(move || hash_blocking(&params, &password)).await
    }

    /// Checks `password` against `stored`, or against a dummy hash when there is no user.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, PasswordError> {
        let exists = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let ok = self
            .run(move || Ok(verify_blocking(&password, &hash)))
            .await?;
        Ok(ok && exists)
    }
}

fn hash_blocking(params: &Params, password: &str) -> Result<String, PasswordError> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// A stored hash that does not parse verifies nothing (and is logged by nobody: it is data).
fn verify_blocking(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(&PasswordHashSettings {
            memory_kib: 1024,
            iterations: 1,
            concurrency: 2,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let h = hasher();
        let a = h.hash("correct horse".into()).await.unwrap();
        let b = h.hash("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(
            h.verify("correct horse".into(), Some(a.clone()))
                .await
                .unwrap()
        );
        assert!(!h.verify("wrong horse".into(), Some(a)).await.unwrap());
        assert!(
            !h.verify("dummy password never used".into(), None)
                .await
                .unwrap()
        );
        assert!(!h.verify("x".into(), Some("garbage".into())).await.unwrap());
    }
}
