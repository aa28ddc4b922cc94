//! Where things live: the workspace, the build cache and per-command state.
use std::path::{Path, PathBuf};

/// Environment variable that overrides the build/download cache directory.
pub const CACHE_DIR_ENV: &str = "FP_CACHE_DIR";
/// Environment variable that overrides the directory holding run-time state.
pub const STATE_DIR_ENV: &str = "FP_STATE_DIR";

/// The workspace root (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cache directory: `$FP_CACHE_DIR`, else `$XDG_CACHE_HOME/fp`, else `$HOME/.cache/fp`,
/// else `<workspace>/target/fp-cache`. Kept across runs and clones so builds are reused.
pub fn cache_dir_from(
    fp_cache_dir: Option<&str>,
    xdg_cache_home: Option<&str>,
    home: Option<&str>,
    workspace: &Path,
) -> PathBuf {
    let non_empty = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(PathBuf::from);
    non_empty(fp_cache_dir)
        .or_else(|| non_empty(xdg_cache_home).map(|d| d.join("fp")))
        .or_else(|| non_empty(home).map(|h| h.join(".cache").join("fp")))
        .unwrap_or_else(|| workspace.join("target").join("fp-cache"))
}

pub fn cache_dir() -> PathBuf {
    let var = |k: &str| std::env::var(k).ok();
    cache_dir_from(
        var(CACHE_DIR_ENV).as_deref(),
        var("XDG_CACHE_HOME").as_deref(),
        var("HOME").as_deref(),
        &workspace_root(),
    )
}

/// Root of run-time state (`$FP_STATE_DIR`, else `<workspace>/target/fp-state`); each command
/// keeps its state in one sub-directory of it so `down` can remove it whole.
pub fn state_root() -> PathBuf {
    match std::env::var(STATE_DIR_ENV) {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target").join("fp-state"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_cache_dir_wins() {
        let dir = cache_dir_from(Some("/c"), Some("/x"), Some("/h"), Path::new("/w"));
        assert_eq!(dir, PathBuf::from("/c"));
    }

    #[test]
    fn cache_dir_falls_back_in_order() {
        let w = Path::new("/w");
        assert_eq!(
            cache_dir_from(Some(""), Some("/x"), Some("/h"), w),
            PathBuf::from("/x/fp")
        );
        assert_eq!(
            cache_dir_from(None, None, Some("/h"), w),
            PathBuf::from("/h/.cache/fp")
        );
        assert_eq!(
            cache_dir_from(None, None, None, w),
            PathBuf::from("/w/target/fp-cache")
        );
    }
}
