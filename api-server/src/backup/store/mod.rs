//! Backup destinations as object stores (S3 or a local directory through the same interface), and
//! the few operations the backup program needs on them. Every remote call is bounded: connect
//! and read timeouts, a retry budget, and downloads in ranges so no single request is unbounded.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::destination::Destination;
use super::id::BackupId;
use super::layout::{self, CatalogEntry, ObjectKind};
use super::manifest::{Manifest, ManifestError};
use super::progress::Progress;
use super::redact::redact;

mod dumps;
pub use dumps::DumpUpload;

/// Environment variables holding S3 credentials, first match wins (ours, then the AWS names).
pub const ACCESS_KEY_ENVS: [&str; 2] = ["FP_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"];
pub const SECRET_KEY_ENVS: [&str; 2] = ["FP_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"];
pub const SESSION_TOKEN_ENVS: [&str; 2] = ["FP_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"];

/// S3 needs parts of at least 5 MiB (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
pub const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;
/// Parts in flight per upload: bounds memory to about this many part sizes.
const UPLOAD_CONCURRENCY: usize = 4;
/// Downloads are made of ranged GETs of this size, each a bounded request.
const DOWNLOAD_RANGE: u64 = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no S3 credentials for {destination}: set FP_S3_ACCESS_KEY_ID and FP_S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    )]
    MissingCredentials { destination: String },
    #[error(
        "no S3 endpoint for {destination}: pass --s3-endpoint, FP_S3_ENDPOINT or ?endpoint= in the destination"
    )]
    MissingEndpoint { destination: String },
    #[error("cannot open {destination}: {detail}")]
    Open { destination: String, detail: String },
    #[error("{destination} rejected the credentials while trying to {operation}: {detail}")]
    AccessDenied {
        destination: String,
        operation: String,
        detail: String,
    },
    #[error("{destination}: {operation} failed: {detail}")]
    Request {
        destination: String,
        operation: String,
        detail: String,
    },
    #[error("{destination}: {operation} did not finish within {seconds}s")]
    TimedOut {
        destination: String,
        operation: String,
        seconds: u64,
    },
    #[error("{destination}: {object} not found")]
    NotFound { destination: String, object: String },
    #[error("{destination}: manifest of {id} is unreadable: {source}")]
    BadManifest {
        destination: String,
        id: BackupId,
        source: ManifestError,
    },
    #[error("local file error while trying to {operation}: {source}")]
    LocalIo {
        operation: String,
        source: std::io::Error,
    },
}

/// S3 credentials; `Debug` never shows the secret.
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl S3Credentials {
    /// Reads credentials through `lookup` (the process environment in production). The access
    /// key and secret must come from the same naming family so that a half-set pair is an error,
    /// not a silent mix.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let non_empty = |name: &str| lookup(name).filter(|value| !value.is_empty());
        (0..ACCESS_KEY_ENVS.len()).find_map(|family| {
            Some(Self {
                access_key_id: non_empty(ACCESS_KEY_ENVS[family])?,
                secret_access_key: non_empty(SECRET_KEY_ENVS[family])?,
                session_token: non_empty(SESSION_TOKEN_ENVS[family]),
            })
        })
    }

    pub fn from_env() -> Option<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// How to reach S3 destinations (those without their own `?endpoint=`/`?region=`).
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: String,
    pub credentials: Option<S3Credentials>,
    pub connect_timeout: Duration,
    /// Longest silence while reading a response.
    pub read_timeout: Duration,
    /// Longest a single request (one part, one range) may take.
    pub request_timeout: Duration,
    /// Total time spent retrying one request before giving up.
    pub retry_timeout: Duration,
    pub part_size: usize,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".to_owned(),
            credentials: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(300),
            retry_timeout: Duration::from_secs(30),
            part_size: DEFAULT_PART_SIZE,
        }
    }
}

/// One opened destination.
#[derive(Debug, Clone)]
pub struct BackupStore {
    destination: Destination,
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    part_size: usize,
    /// Local directory behind a file destination (for cleaning up staging files).
    local_root: Option<std::path::PathBuf>,
}

fn classify(destination: &Destination, operation: &str, err: object_store::Error) -> StoreError {
    let destination = destination.to_string();
    let operation = operation.to_owned();
    match err {
        object_store::Error::PermissionDenied { source, .. }
        | object_store::Error::Unauthenticated { source, .. } => StoreError::AccessDenied {
            destination,
            operation,
            detail: redact(&source.to_string()),
        },
        object_store::Error::NotFound { path, .. } => StoreError::NotFound {
            destination,
            object: path,
        },
        // object_store maps 401/403 to the variants above only for some requests; a refused
        // listing arrives as a generic error carrying S3's error code.
        other if is_s3_auth_failure(&other.to_string()) => StoreError::AccessDenied {
            destination,
            operation,
            detail: redact(&other.to_string()),
        },
        other => StoreError::Request {
            destination,
            operation,
            detail: redact(&other.to_string()),
        },
    }
}

/// S3 error codes (and the HTTP statuses) that mean the credentials were refused.
fn is_s3_auth_failure(message: &str) -> bool {
    const MARKERS: [&str; 6] = [
        "<Code>AccessDenied</Code>",
        "<Code>SignatureDoesNotMatch</Code>",
        "<Code>InvalidAccessKeyId</Code>",
        "<Code>ExpiredToken</Code>",
        "403 Forbidden",
        "401 Unauthorized",
    ];
    MARKERS.iter().any(|marker| message.contains(marker))
}

impl BackupStore {
    /// Opens a destination. For S3 nothing is contacted yet: call [`Self::check_access`].
    pub fn open(destination: &Destination, s3: &S3Settings) -> Result<Self, StoreError> {
        match destination {
            Destination::File { root } => {
                std::fs::create_dir_all(root).map_err(|err| StoreError::Open {
                    destination: destination.to_string(),
                    detail: format!("cannot create {}: {err}", root.display()),
                })?;
                let store = LocalFileSystem::new_with_prefix(root)
                    .map_err(|err| StoreError::Open {
                        destination: destination.to_string(),
                        detail: err.to_string(),
                    })?
                    .with_fsync(true)
                    .with_automatic_cleanup(true);
                Ok(Self {
                    destination: destination.clone(),
                    store: Arc::new(store),
                    prefix: StorePath::default(),
                    part_size: s3.part_size,
                    local_root: Some(root.clone()),
                })
            }
            Destination::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => {
                let credentials =
                    s3.credentials
                        .as_ref()
                        .ok_or_else(|| StoreError::MissingCredentials {
                            destination: destination.to_string(),
                        })?;
                // Without an endpoint the client would guess AWS hosts and instance metadata;
                // we insist on an explicit endpoint so nothing is contacted by surprise.
                let endpoint = endpoint
                    .clone()
                    .or_else(|| s3.endpoint.clone())
                    .ok_or_else(|| StoreError::MissingEndpoint {
                        destination: destination.to_string(),
                    })?;
                let options = ClientOptions::new()
                    .with_connect_timeout(s3.connect_timeout)
                    .with_read_timeout(s3.read_timeout)
                    .with_timeout(s3.request_timeout)
                    .with_allow_http(endpoint.starts_with("http://"));
                let retry = RetryConfig {
                    backoff: BackoffConfig {
                        init_backoff: Duration::from_millis(200),
                        max_backoff: Duration::from_secs(5),
                        base: 2.0,
                    },
                    max_retries: 4,
                    retry_timeout: s3.retry_timeout,
                };
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region.clone().unwrap_or_else(|| s3.region.clone()))
                    .with_endpoint(endpoint)
                    .with_virtual_hosted_style_request(false)
                    .with_access_key_id(&credentials.access_key_id)
                    .with_secret_access_key(&credentials.secret_access_key)
                    .with_client_options(options)
                    .with_retry(retry);
                if let Some(token) = &credentials.session_token {
                    builder = builder.with_token(token);
                }
                let store = builder.build().map_err(|err| StoreError::Open {
                    destination: destination.to_string(),
                    detail: redact(&err.to_string()),
                })?;
                let prefix = StorePath::parse(prefix).map_err(|err| StoreError::Open {
                    destination: destination.to_string(),
                    detail: err.to_string(),
                })?;
                Ok(Self {
                    destination: destination.clone(),
                    store: Arc::new(store),
                    prefix,
                    part_size: s3.part_size.max(MIN_PART_SIZE),
                    local_root: None,
                })
            }
        }
    }

    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    fn path(&self, id: BackupId, kind: ObjectKind) -> StorePath {
        let key = layout::object_key(id, kind);
        key.split('/')
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    fn err(&self, operation: &str, err: object_store::Error) -> StoreError {
        classify(&self.destination, operation, err)
    }

    /// One cheap authenticated request, so that wrong credentials, a missing bucket or an
    /// unreachable endpoint fail before any dump starts.
    pub async fn check_access(&self) -> Result<(), StoreError> {
        let mut listing = self.store.list(Some(&self.prefix));
        listing
            .try_next()
            .await
            .map(|_| ())
            .map_err(|err| self.err("list backups", err))
    }

    /// Every backup-related object under the prefix, grouped by id, oldest first.
    pub async fn catalog(&self) -> Result<Vec<CatalogEntry>, StoreError> {
        let objects: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .map_err(|err| self.err("list backups", err))?;
        let relative: Vec<(String, u64)> = objects
            .iter()
            .filter_map(|meta| {
                let parts: Vec<String> = meta
                    .location
                    .prefix_match(&self.prefix)?
                    .map(|p| p.as_ref().to_owned())
                    .collect();
                Some((parts.join("/"), meta.size))
            })
            .collect();
        let mut entries = layout::catalog(relative.iter().map(|(key, size)| (key.as_str(), *size)));
        self.add_local_staging_only(&mut entries)?;
        Ok(entries)
    }

    /// A backup killed during its upload to a file destination leaves only a staging file
    /// (`database.dump#N`), which listings hide; list it as incomplete so pruning removes it.
    fn add_local_staging_only(&self, entries: &mut Vec<CatalogEntry>) -> Result<(), StoreError> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let dirs = std::fs::read_dir(root).map_err(|source| StoreError::LocalIo {
            operation: format!("list {}", root.display()),
            source,
        })?;
        for dir in dirs.flatten() {
            let Some(id) = dir
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<BackupId>().ok())
            else {
                continue;
            };
            if entries.iter().any(|entry| entry.id == id) {
                continue;
            }
            let staging_size: u64 = std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
                .filter(|file| {
                    file.file_name()
                        .to_str()
                        .is_some_and(|name| name.contains('#'))
                })
                .filter_map(|file| file.metadata().ok().map(|meta| meta.len()))
                .sum();
            entries.push(CatalogEntry {
                id,
                dump_size: Some(staging_size),
                manifest_size: None,
                pruning: false,
            });
        }
        entries.sort_by_key(|entry| entry.id);
        Ok(())
    }

    pub async fn read_manifest(&self, id: BackupId) -> Result<Manifest, StoreError> {
        let bytes = self
            .store
            .get(&self.path(id, ObjectKind::Manifest))
            .await
            .map_err(|err| self.err("read the manifest", err))?
            .bytes()
            .await
            .map_err(|err| self.err("read the manifest", err))?;
        Manifest::from_json(&bytes, id).map_err(|source| StoreError::BadManifest {
            destination: self.destination.to_string(),
            id,
            source,
        })
    }

    /// Writes the manifest in one atomic put (a rename on local disks).
    pub async fn write_manifest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let json = manifest
            .to_json()
            .map_err(|source| StoreError::BadManifest {
                destination: self.destination.to_string(),
                id: manifest.id,
                source,
            })?;
        self.store
            .put(
                &self.path(manifest.id, ObjectKind::Manifest),
                PutPayload::from(json),
            )
            .await
            .map(|_| ())
            .map_err(|err| self.err("write the manifest", err))
    }

    async fn put_marker(&self, id: BackupId) -> Result<(), StoreError> {
        self.store
            .put(
                &self.path(id, ObjectKind::Pruning),
                PutPayload::from_static(b"pruning\n"),
            )
            .await
            .map(|_| ())
            .map_err(|err| self.err("mark a backup for pruning", err))
    }

    /// Deletes one object; an object that is already gone counts as deleted (idempotent).
    pub async fn delete_object(&self, id: BackupId, kind: ObjectKind) -> Result<(), StoreError> {
        match self.store.delete(&self.path(id, kind)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(self.err("delete a backup object", err)),
        }
    }

    /// Removes one backup so that an interruption at any point is finished by the next prune:
    /// the PRUNING marker goes first (the intent is recorded), then the manifest (from here on
    /// the backup no longer counts), then the dump, and the marker last.
    pub async fn remove_backup(&self, id: BackupId) -> Result<(), StoreError> {
        self.put_marker(id).await?;
        self.delete_object(id, ObjectKind::Manifest).await?;
        self.delete_object(id, ObjectKind::Dump).await?;
        self.remove_local_leftovers(id)?;
        self.delete_object(id, ObjectKind::Pruning).await
    }

    /// On a file destination a killed upload leaves `database.dump#N` staging files, invisible
    /// to listings; remove them with the backup they belong to.
    fn remove_local_leftovers(&self, id: BackupId) -> Result<(), StoreError> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let dir = root.join(id.to_string());
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(StoreError::LocalIo {
                    operation: format!("list {}", dir.display()),
                    source,
                });
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let is_staging = name
                .to_str()
                .is_some_and(|name| name.starts_with(layout::DUMP_FILE) && name.contains('#'));
            if is_staging {
                std::fs::remove_file(entry.path()).map_err(|source| StoreError::LocalIo {
                    operation: format!("remove {}", entry.path().display()),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_are_recognised_in_generic_errors() {
        assert!(is_s3_auth_failure(
            "Error performing GET http://127.0.0.1:1/b?list-type=2 - Server returned non-2xx status code: 403 Forbidden: <Error><Code>SignatureDoesNotMatch</Code></Error>"
        ));
        assert!(is_s3_auth_failure(
            "<Error><Code>InvalidAccessKeyId</Code></Error>"
        ));
        assert!(!is_s3_auth_failure(
            "Server returned non-2xx status code: 503 Service Unavailable"
        ));
        assert!(!is_s3_auth_failure(
            "error sending request: connection refused"
        ));
    }
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn credentials_prefer_our_names_and_need_both_halves() {
        let creds = S3Credentials::from_lookup(lookup(&[
            ("FP_S3_ACCESS_KEY_ID", "ours"),
            ("FP_S3_SECRET_ACCESS_KEY", "oursecret"),
            ("AWS_ACCESS_KEY_ID", "aws"),
            ("AWS_SECRET_ACCESS_KEY", "awssecret"),
        ]))
        .unwrap();
        assert_eq!(creds.access_key_id, "ours");
        let creds = S3Credentials::from_lookup(lookup(&[
            ("FP_S3_ACCESS_KEY_ID", "ours"),
            ("AWS_ACCESS_KEY_ID", "aws"),
            ("AWS_SECRET_ACCESS_KEY", "awssecret"),
            ("AWS_SESSION_TOKEN", "tok"),
        ]))
        .unwrap();
        assert_eq!(
            (creds.access_key_id.as_str(), creds.session_token.as_deref()),
            ("aws", Some("tok"))
        );
        assert!(S3Credentials::from_lookup(lookup(&[("FP_S3_ACCESS_KEY_ID", "x")])).is_none());
        assert!(
            S3Credentials::from_lookup(lookup(&[
                ("AWS_ACCESS_KEY_ID", "x"),
                ("AWS_SECRET_ACCESS_KEY", "")
            ]))
            .is_none()
        );
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let creds = S3Credentials {
            access_key_id: "AKIA".to_owned(),
            secret_access_key: "topsecret".to_owned(),
            session_token: Some("tok3n".to_owned()),
        };
        let text = format!("{creds:?}");
        assert!(
            !text.contains("topsecret") && !text.contains("tok3n"),
            "{text}"
        );
    }

    #[test]
    fn s3_without_credentials_or_endpoint_fails_before_any_request() {
        let destination = Destination::parse("s3://bucket/prefix").unwrap();
        let err = BackupStore::open(&destination, &S3Settings::default()).unwrap_err();
        assert!(
            matches!(err, StoreError::MissingCredentials { .. }),
            "{err}"
        );
        let settings = S3Settings {
            credentials: Some(S3Credentials {
                access_key_id: "a".to_owned(),
                secret_access_key: "b".to_owned(),
                session_token: None,
            }),
            ..S3Settings::default()
        };
        let err = BackupStore::open(&destination, &settings).unwrap_err();
        assert!(matches!(err, StoreError::MissingEndpoint { .. }), "{err}");
    }
}
