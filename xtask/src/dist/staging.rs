//! The output directory, written all at once: artifacts go to a hidden sibling directory and
//! replace the output directory by rename only when every one of them is written, so an
//! interrupted or failed run leaves the previous dist (or nothing), never half of one.
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The file that marks a directory as a dist (a previous one may be replaced).
pub const MARKER: &str = "SHA256SUMS";

/// Whether a directory holding `entries` may be replaced by a new dist: it is empty or it is a
/// previous dist. Anything else may be someone's files and is refused.
pub fn replaceable(entries: &[String]) -> bool {
    entries.is_empty() || entries.iter().any(|e| e == MARKER)
}

/// A dist being written.
#[derive(Debug)]
pub struct Staging {
    pub dir: PathBuf,
    out: PathBuf,
    committed: bool,
}

fn sibling(out: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let name = out
        .file_name()
        .with_context(|| format!("{} names no directory", out.display()))?;
    let parent = out.parent().unwrap_or(Path::new("."));
    Ok(parent.join(format!(
        ".{}.{what}-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Checks `out` can be (re)placed and creates the staging directory beside it.
pub fn begin(out: &Path) -> anyhow::Result<Staging> {
    match std::fs::metadata(out) {
        Ok(meta) if !meta.is_dir() => {
            bail!("--out {} exists and is not a directory", out.display())
        }
        Ok(_) => {
            let entries: Vec<String> = std::fs::read_dir(out)
                .with_context(|| format!("reading --out {}", out.display()))?
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if !replaceable(&entries) {
                bail!(
                    "--out {} holds files and no {MARKER}: it is not a previous dist, so it is \
                     left alone (choose an empty or new directory)",
                    out.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("--out {}", out.display())),
    }
    let dir = sibling(out, "partial")?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "--out {}: cannot write beside it ({})",
            out.display(),
            dir.display()
        )
    })?;
    // Creating a directory can succeed where writing a file fails (e.g. a full disk).
    let probe = dir.join(".probe");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .with_context(|| {
            format!(
                "--out {}: cannot write files in {}",
                out.display(),
                dir.display()
            )
        })?;
    Ok(Staging {
        dir,
        out: out.to_path_buf(),
        committed: false,
    })
}

impl Staging {
    /// Puts the finished dist at `out` (a previous dist there is replaced).
    pub fn commit(mut self) -> anyhow::Result<PathBuf> {
        let previous = sibling(&self.out, "previous")?;
        let had_previous = self.out.exists();
        if had_previous {
            let _ = std::fs::remove_dir_all(&previous);
            std::fs::rename(&self.out, &previous)
                .with_context(|| format!("moving the previous {} aside", self.out.display()))?;
        }
        if let Err(e) = std::fs::rename(&self.dir, &self.out) {
            if had_previous {
                let _ = std::fs::rename(&previous, &self.out);
            }
            return Err(e).with_context(|| format!("moving the dist to {}", self.out.display()));
        }
        self.committed = true;
        if had_previous {
            let _ = std::fs::remove_dir_all(&previous);
        }
        Ok(self.out.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_empty_or_previous_dists_are_replaced() {
        assert!(replaceable(&[]));
        assert!(replaceable(&[
            "SHA256SUMS".to_owned(),
            "x.tar.gz".to_owned()
        ]));
        assert!(!replaceable(&["notes.txt".to_owned()]));
    }

    #[test]
    fn commit_replaces_a_previous_dist_and_a_dropped_staging_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("dist");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join(MARKER), "old").unwrap();
        std::fs::write(out.join("old.tar.gz"), "old").unwrap();

        let dropped = begin(&out).unwrap();
        std::fs::write(dropped.dir.join("half"), "x").unwrap();
        drop(dropped);
        assert_eq!(std::fs::read_to_string(out.join(MARKER)).unwrap(), "old");

        let staging = begin(&out).unwrap();
        std::fs::write(staging.dir.join(MARKER), "new").unwrap();
        assert_eq!(staging.commit().unwrap(), out);
        assert_eq!(std::fs::read_to_string(out.join(MARKER)).unwrap(), "new");
        assert!(!out.join("old.tar.gz").exists());
        let left: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("dist")]);
    }

    #[test]
    fn refuses_a_file_a_foreign_directory_and_an_unwritable_place() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = begin(&file).unwrap_err().to_string();
        assert!(e.contains("is not a directory"), "{e}");

        let foreign = root.path().join("home");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
        let e = begin(&foreign).unwrap_err().to_string();
        assert!(e.contains("not a previous dist"), "{e}");
        assert!(foreign.join("notes.txt").exists());

        // Below a regular file nothing can be created, whoever runs the test (root too).
        let e = format!("{:#}", begin(&file.join("dist")).unwrap_err());
        assert!(e.contains("--out") && e.contains("Not a directory"), "{e}");
        let e = format!("{:#}", begin(&file.join("a").join("dist")).unwrap_err());
        assert!(e.contains("--out") && e.contains("Not a directory"), "{e}");
    }
}
