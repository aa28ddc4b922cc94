//! The first admin: its password comes from a file or `FP_ADMIN_PASSWORD`, or in the zero-setup
//! case is generated once into `<data-dir>/admin-password` (mode 0600). It is never printed and
//! there is no default password. The configured password is authoritative: if it changed, the
//! stored hash follows at the next start.

use std::path::Path;

use super::keys::write_private_file;
use super::password::{PasswordError, PasswordHasher};
use super::validate_password;
use crate::config::{AdminPasswordSource, AuthSettings};
use crate::db::auth as users;
use crate::db::{Db, DbError};

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot read the admin password file {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the generated admin password to {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the configured admin password is unusable: it must be 10-128 characters long")]
    Weak,
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A secret file's content without the line ending editors and `echo` add.
pub fn trim_secret(text: &str) -> &str {
    text.trim_end_matches(['\n', '\r'])
}

fn read_password(path: &Path) -> Result<String, BootstrapError> {
    let text = std::fs::read_to_string(path).map_err(|source| BootstrapError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(trim_secret(&text).to_string())
}

/// Reads the generated password, creating it (and its directory) the first time.
fn generated_password(path: &Path) -> Result<String, BootstrapError> {
    if path.exists() {
        return read_password(path);
    }
    let write_err = |source| BootstrapError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let mut bytes = [0u8; 18];
    rand::fill(&mut bytes);
    use base64::Engine;
    let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    write_private_file(path, password.as_bytes()).map_err(write_err)?;
    tracing::info!(path = %path.display(), "generated the first admin's password (mode 0600)");
    Ok(password)
}

pub fn admin_password(source: &AdminPasswordSource) -> Result<String, BootstrapError> {
    let password = match source {
        AdminPasswordSource::File(path) => read_password(path)?,
        AdminPasswordSource::Env(secret) => secret.expose().to_string(),
        AdminPasswordSource::Generated(path) => generated_password(path)?,
    };
    validate_password(&password).map_err(|_| BootstrapError::Weak)?;
    Ok(password)
}

/// Creates or updates the first admin so that it logs in with the configured password.
pub async fn ensure_first_admin(
    db: &Db,
    hasher: &PasswordHasher,
    settings: &AuthSettings,
) -> Result<(), BootstrapError> {
    let password = admin_password(&settings.admin_password)?;
    let username = settings.admin_username.as_str();
    match users::user_by_username(db, username).await? {
        None => {
            let hash = hasher.hash(password).await?;
            if users::create_admin_if_missing(db, username, &hash).await? {
                tracing::info!(username, "created the first admin");
            }
        }
        Some(user) => {
            if !hasher
                .verify(password.clone(), Some(user.password_hash.clone()))
                .await?
            {
                let hash = hasher.hash(password).await?;
                users::set_password(db, user.id, &hash).await?;
                tracing::info!(username, "admin password updated from configuration");
            }
            if users::ensure_admin_role(db, &user).await? {
                tracing::warn!(
                    username,
                    role = %user.role,
                    active = user.active,
                    "the configured admin was demoted or deactivated; start-up restored it \
                     (audited as admin_restored). To retire it, configure another admin username"
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_password_is_private_stable_and_strong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("admin-password");
        let source = AdminPasswordSource::Generated(path.clone());
        let first = admin_password(&source).unwrap();
        let again = admin_password(&source).unwrap();
        assert_eq!(first, again);
        assert!(first.len() >= 20);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn file_passwords_lose_their_line_ending_and_weak_ones_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "a-long-enough-password\n").unwrap();
        assert_eq!(
            admin_password(&AdminPasswordSource::File(path.clone())).unwrap(),
            "a-long-enough-password"
        );
        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            admin_password(&AdminPasswordSource::File(path)),
            Err(BootstrapError::Weak)
        ));
    }
}
