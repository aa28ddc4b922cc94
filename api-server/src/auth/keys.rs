//! The JWT key set, read from a directory (the operator mounts a Secret there; see
//! docs/architecture.md): one file per key, named by its key id `kYYYYMMDDTHHMMSSZ` (UTC creation
//! time, so lexical order is age order), holding at least 32 random bytes. The newest key signs;
//! every key verifies. The directory is re-read when it changes, so keys rotate without
//! restarts and without logging anybody out. A new key verifies at once but signs only after it
//! has been visible for the publish delay: replicas see a Secret update up to a minute apart, and
//! a token signed with a key another replica has not loaded yet would be refused there.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use jsonwebtoken::{DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};

use super::jwt::VerifiedTokens;

/// HS256 keys shorter than this are refused (RFC 7518 §3.2 asks for at least the hash size).
pub const MIN_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read JWT key directory {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the development JWT key in {path}: {source}")]
    Generate {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no usable JWT key in {0}: expected files named kYYYYMMDDTHHMMSSZ holding at least 32 bytes"
    )]
    NoKeys(PathBuf),
}

/// Whether `name` is a key id: `k` + `YYYYMMDDTHHMMSSZ`.
pub fn is_key_id(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 17
        && b[0] == b'k'
        && b[1..9].iter().all(u8::is_ascii_digit)
        && b[9] == b'T'
        && b[10..16].iter().all(u8::is_ascii_digit)
        && b[16] == b'Z'
}

/// The key id for a key created at `at`.
pub fn key_id_for(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("k%Y%m%dT%H%M%SZ").to_string()
}

/// A key that may sign, and since when (Unix seconds) this server has known it.
struct Signer {
    kid: String,
    key: EncodingKey,
    visible_since: i64,
}

/// One loaded key set: every key verifies; the newest key visible for the publish delay signs.
pub struct KeySet {
    /// Oldest first.
    signers: Vec<Signer>,
    publish_delay: i64,
    verifying: HashMap<String, DecodingKey>,
    fingerprint: [u8; 32],
    /// Tokens these keys verified; a reload builds a new set, so it starts empty.
    verified: VerifiedTokens,
}

/// When a key was created, from its id (Unix seconds).
pub fn key_created(kid: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(kid.get(1..)?, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

/// Which key signs at `now`, given since when each key is visible, oldest key first: the newest
/// that has been visible for `delay` seconds; when none has (a first key, or every old key
/// removed at once), the oldest, the one other replicas most likely know (pure).
pub fn signing_index(
    mut visible_since: impl DoubleEndedIterator<Item = i64> + ExactSizeIterator,
    now: i64,
    delay: i64,
) -> usize {
    visible_since
        .rposition(|since| since.saturating_add(delay) <= now)
        .unwrap_or(0)
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.verifying.keys().collect();
        kids.sort();
        f.debug_struct("KeySet")
            .field("verifying", &kids)
            .field("publish_delay", &self.publish_delay)
            .finish()
    }
}

/// What a directory scan found, before it becomes a [`KeySet`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// (key id, key bytes) of the usable keys.
    pub keys: Vec<(String, Vec<u8>)>,
    /// Files that are not keys or are too short, with the reason (logged, never fatal).
    pub skipped: Vec<(String, &'static str)>,
}

/// Sorts directory entries into usable keys and skipped files (pure).
pub fn classify(entries: Vec<(String, Vec<u8>)>) -> Scan {
    let mut scan = Scan::default();
    for (name, bytes) in entries {
        if !is_key_id(&name) {
            scan.skipped
                .push((name, "name is not a key id kYYYYMMDDTHHMMSSZ"));
        } else if bytes.len() < MIN_KEY_BYTES {
            scan.skipped.push((name, "shorter than 32 bytes"));
        } else {
            scan.keys.push((name, bytes));
        }
    }
    scan.keys.sort_by(|a, b| a.0.cmp(&b.0));
    scan
}

impl KeySet {
    /// Builds the set from usable keys, each visible since its creation and signing at once
    /// (no publish delay); `None` when there are none.
    pub fn from_keys(keys: &[(String, Vec<u8>)]) -> Option<Self> {
        Self::build(keys, |kid| key_created(kid).unwrap_or(0), 0)
    }

    /// Builds the set; `visible_since` says since when (Unix seconds) each key id is known.
    fn build(
        keys: &[(String, Vec<u8>)],
        visible_since: impl Fn(&str) -> i64,
        publish_delay: i64,
    ) -> Option<Self> {
        let mut sorted: Vec<&(String, Vec<u8>)> = keys.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut hasher = Sha256::new();
        let mut verifying = HashMap::with_capacity(keys.len());
        let mut signers = Vec::with_capacity(keys.len());
        for (kid, bytes) in sorted {
            hasher.update(kid.as_bytes());
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
            // Only empty secrets fail, and classify() refuses keys under 32 bytes.
            verifying.insert(kid.clone(), DecodingKey::from_secret(bytes).ok()?);
            signers.push(Signer {
                kid: kid.clone(),
                key: EncodingKey::from_secret(bytes).ok()?,
                visible_since: visible_since(kid),
            });
        }
        if signers.is_empty() {
            return None;
        }
        Some(Self {
            signers,
            publish_delay,
            verifying,
            fingerprint: hasher.finalize().into(),
            verified: VerifiedTokens::default(),
        })
    }

    fn signer(&self, now: i64) -> &Signer {
        let visible_since = self.signers.iter().map(|s| s.visible_since);
        &self.signers[signing_index(visible_since, now, self.publish_delay)]
    }

    /// The id of the key that signs at `now` (Unix seconds).
    pub fn signing_kid(&self, now: i64) -> &str {
        &self.signer(now).kid
    }

    /// The key that signs at `now`, with its id.
    pub fn signing_key(&self, now: i64) -> (&str, &EncodingKey) {
        let signer = self.signer(now);
        (&signer.kid, &signer.key)
    }

    /// Since when this server has known `kid` (Unix seconds).
    fn visible_since(&self, kid: &str) -> Option<i64> {
        self.signers
            .iter()
            .find(|s| s.kid == kid)
            .map(|s| s.visible_since)
    }

    pub fn verifying_key(&self, kid: &str) -> Option<&DecodingKey> {
        self.verifying.get(kid)
    }

    pub fn verified(&self) -> &VerifiedTokens {
        &self.verified
    }

    pub fn key_ids(&self) -> Vec<String> {
        self.signers.iter().map(|s| s.kid.clone()).collect()
    }
}

/// Reads the regular files of `dir` (following the symlinks a Secret volume uses), skipping
/// hidden entries such as Kubernetes' `..data`.
pub fn read_dir_entries(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, KeyError> {
    let read_err = |source| KeyError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if !std::fs::metadata(&path)
            .map(|m| m.is_file())
            .unwrap_or(false)
        {
            continue;
        }
        // A file can vanish between listing and reading while a Secret is updated.
        match std::fs::read(&path) {
            Ok(bytes) => entries.push((name, bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(KeyError::Read { path, source }),
        }
    }
    Ok(entries)
}

/// The usable keys of `dir`, logging skipped files.
pub fn load_dir(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, KeyError> {
    let scan = classify(read_dir_entries(dir)?);
    for (name, reason) in &scan.skipped {
        tracing::warn!(dir = %dir.display(), file = %name, reason, "ignoring file in JWT key directory");
    }
    if scan.keys.is_empty() {
        return Err(KeyError::NoKeys(dir.to_path_buf()));
    }
    Ok(scan.keys)
}

/// Zero-setup: makes sure `dir` (mode 0700) holds a usable key, generating one (mode 0600).
pub fn ensure_dev_key(dir: &Path) -> Result<(), KeyError> {
    let gen_err = |source| KeyError::Generate {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(gen_err)?;
    restrict_dir(dir).map_err(gen_err)?;
    let existing = classify(read_dir_entries(dir)?);
    if !existing.keys.is_empty() {
        return Ok(());
    }
    let kid = key_id_for(chrono::Utc::now());
    let mut secret = [0u8; 64];
    rand::fill(&mut secret);
    write_private_file(&dir.join(&kid), &secret).map_err(gen_err)?;
    tracing::info!(dir = %dir.display(), kid = %kid, "generated a development JWT signing key");
    Ok(())
}

#[cfg(unix)]
fn restrict_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn restrict_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Creates `path` readable by the owner only (fails if it exists: never overwrite a secret).
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// The live key set plus where it comes from; `reload` swaps in a changed directory.
pub struct KeyStore {
    dir: PathBuf,
    publish_delay: i64,
    current: ArcSwap<KeySet>,
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

impl KeyStore {
    /// Keys found at start-up count as visible since their creation: the Secret held them
    /// before this pod started, so the other replicas load them on the same schedule.
    pub fn open(dir: PathBuf, publish_delay: std::time::Duration) -> Result<Self, KeyError> {
        let publish_delay = i64::try_from(publish_delay.as_secs()).unwrap_or(i64::MAX);
        let keys = load_dir(&dir)?;
        let set = KeySet::build(&keys, |kid| key_created(kid).unwrap_or(0), publish_delay)
            .ok_or_else(|| KeyError::NoKeys(dir.clone()))?;
        tracing::info!(dir = %dir.display(), keys = ?set.key_ids(), signing = %set.signing_kid(now_unix()), "JWT keys loaded");
        Ok(Self {
            dir,
            publish_delay,
            current: ArcSwap::from_pointee(set),
        })
    }

    pub fn current(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.current.load()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Re-reads the directory; swaps the set in when it changed. Returns whether it did. A key
    /// seen for the first time is visible from now (or its creation, if later), so it signs
    /// once the publish delay has passed. A directory that became empty or unreadable keeps the
    /// old set (and is logged): losing every key would log out every user.
    pub fn reload(&self) -> bool {
        self.reload_at(now_unix())
    }

    fn reload_at(&self, now: i64) -> bool {
        let keys = match load_dir(&self.dir) {
            Ok(keys) => keys,
            Err(e) => {
                tracing::error!(error = %e, "JWT key directory unusable; keeping the previous keys");
                return false;
            }
        };
        let old = self.current.load();
        let visible_since = |kid: &str| {
            old.visible_since(kid)
                .unwrap_or_else(|| key_created(kid).unwrap_or(now).max(now))
        };
        let Some(set) = KeySet::build(&keys, visible_since, self.publish_delay) else {
            return false;
        };
        if set.fingerprint == old.fingerprint {
            return false;
        }
        let newest = set.signers.last().map(|s| (s.kid.clone(), s.visible_since));
        if let Some((kid, since)) = newest {
            tracing::info!(
                keys = ?set.key_ids(),
                signing = %set.signing_kid(now),
                newest = %kid,
                newest_signs_in_seconds = (since + self.publish_delay - now).max(0),
                "JWT key set changed; reloaded"
            );
        }
        self.current.store(Arc::new(set));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_have_the_contract_form() {
        assert!(is_key_id("k20240101T000000Z"));
        assert!(!is_key_id("k20240101T000000"));
        assert!(!is_key_id("..data"));
        assert!(!is_key_id("K20240101T000000Z"));
        assert!(!is_key_id("k2024010XT000000Z"));
        let at = chrono::DateTime::parse_from_rfc3339("2025-03-04T05:06:07Z")
            .unwrap()
            .to_utc();
        assert_eq!(key_id_for(at), "k20250304T050607Z");
    }

    #[test]
    fn newest_key_signs_and_short_or_misnamed_files_are_skipped() {
        let scan = classify(vec![
            ("k20240101T000000Z".into(), vec![1; 32]),
            ("k20250101T000000Z".into(), vec![2; 40]),
            ("k20260101T000000Z".into(), vec![3; 31]),
            ("README".into(), vec![4; 64]),
        ]);
        assert_eq!(scan.keys.len(), 2);
        assert_eq!(scan.skipped.len(), 2);
        let set = KeySet::from_keys(&scan.keys).unwrap();
        assert_eq!(set.signing_kid(now_unix()), "k20250101T000000Z");
        assert!(set.verifying_key("k20240101T000000Z").is_some());
        assert!(set.verifying_key("k20260101T000000Z").is_none());
        assert!(KeySet::from_keys(&[]).is_none());
    }

    #[test]
    fn store_reloads_only_on_change_and_keeps_keys_when_dir_empties() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k20240101T000000Z"), [7u8; 32]).unwrap();
        let store = KeyStore::open(dir.path().to_path_buf(), std::time::Duration::ZERO).unwrap();
        assert!(!store.reload());
        std::fs::write(dir.path().join("k20250101T000000Z"), [8u8; 32]).unwrap();
        assert!(store.reload());
        assert_eq!(store.current().signing_kid(now_unix()), "k20250101T000000Z");
        std::fs::remove_file(dir.path().join("k20240101T000000Z")).unwrap();
        std::fs::remove_file(dir.path().join("k20250101T000000Z")).unwrap();
        assert!(!store.reload());
        assert_eq!(store.current().signing_kid(now_unix()), "k20250101T000000Z");
    }

    #[test]
    fn the_newest_key_published_long_enough_signs() {
        let keys = || [100, 200, 300].into_iter();
        assert_eq!(
            signing_index(keys(), 320, 120),
            1,
            "c too new, b old enough"
        );
        assert_eq!(signing_index(keys(), 419, 120), 1);
        assert_eq!(signing_index(keys(), 420, 120), 2);
        assert_eq!(
            signing_index(keys(), 150, 120),
            0,
            "none old enough: the oldest"
        );
        assert_eq!(signing_index([1_000].into_iter(), 0, 120), 0);
        assert_eq!(
            signing_index(keys(), 300, 0),
            2,
            "no delay: the newest at once"
        );
        assert_eq!(key_created("k20250304T050607Z"), Some(1_741_064_767));
        assert_eq!(key_created("README"), None);
    }

    #[test]
    fn a_key_that_appears_verifies_at_once_and_signs_after_the_delay() {
        let delay = std::time::Duration::from_secs(120);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k20240101T000000Z"), [7u8; 32]).unwrap();
        let store = KeyStore::open(dir.path().to_path_buf(), delay).unwrap();
        let t0 = now_unix();
        // A key whose id says it was made long ago counts from when this replica first saw it.
        std::fs::write(dir.path().join("k20240601T000000Z"), [9u8; 32]).unwrap();
        assert!(store.reload_at(t0));
        let set = store.current();
        assert!(
            set.verifying_key("k20240601T000000Z").is_some(),
            "verifies at once"
        );
        assert_eq!(set.signing_kid(t0), "k20240101T000000Z");
        assert_eq!(set.signing_kid(t0 + 119), "k20240101T000000Z");
        assert_eq!(set.signing_kid(t0 + 120), "k20240601T000000Z");
        // The operator's next key, created at t0 + 200 and seen then: the first sighting of the
        // others is kept across the reload.
        let created = chrono::DateTime::from_timestamp(t0 + 200, 0).unwrap();
        let newest = key_id_for(created);
        std::fs::write(dir.path().join(&newest), [8u8; 32]).unwrap();
        assert!(store.reload_at(t0 + 200));
        let set = store.current();
        assert_eq!(set.signing_kid(t0 + 200), "k20240601T000000Z");
        assert_eq!(set.signing_kid(t0 + 319), "k20240601T000000Z");
        assert_eq!(set.signing_kid(t0 + 320), newest);
        // A restart counts start-up keys from their creation (the Secret held them already).
        let restarted = KeyStore::open(dir.path().to_path_buf(), delay).unwrap();
        assert_eq!(
            restarted.current().signing_kid(t0 + 319),
            "k20240601T000000Z"
        );
        assert_eq!(restarted.current().signing_kid(t0 + 320), newest);
    }

    #[test]
    fn dev_key_is_generated_once_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("jwt");
        ensure_dev_key(&keys).unwrap();
        ensure_dev_key(&keys).unwrap();
        let entries = read_dir_entries(&keys).unwrap();
        assert_eq!(entries.len(), 1);
        assert!(is_key_id(&entries[0].0));
        assert_eq!(entries[0].1.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(keys.join(&entries[0].0))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(&keys).unwrap().permissions().mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
    }
}
