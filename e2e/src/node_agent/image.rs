//! Image references and the explicit image → host binary mapping.
//!
//! There is no container runtime on these machines: an image name is only a key that selects a
//! host binary (the image's entrypoint) plus extra environment. Matching is pure; the mapping is
//! loaded from a YAML file (see docs/node-agent.md) with built-in defaults appended.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Built-in mappings, appended after the configured ones unless `includeDefaults: false`.
pub const DEFAULT_IMAGES_YAML: &str = include_str!("default-images.yaml");

#[derive(Debug, thiserror::Error)]
pub enum ImageConfigError {
    #[error("reading image mapping {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing image mapping {origin}: {source}")]
    Parse {
        origin: String,
        source: serde_norway::Error,
    },
    #[error("image mapping {origin}: entry {index}: {problem}")]
    Invalid {
        origin: String,
        index: usize,
        problem: String,
    },
}

/// A parsed image reference: `[registry/]repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Repository without the Docker Hub registry prefix (`docker.io/`, `index.docker.io/`).
    pub repository: String,
    /// The tag; `latest` when neither tag nor digest is given, empty for digest-only references.
    pub tag: String,
}

impl ImageRef {
    pub fn parse(image: &str) -> Self {
        let without_digest = image.split('@').next().unwrap_or(image);
        // A ':' after the last '/' separates the tag; one before it belongs to a registry port.
        let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match without_digest[last_slash..].find(':') {
            Some(colon) => {
                let at = last_slash + colon;
                (&without_digest[..at], without_digest[at + 1..].to_string())
            }
            None if image.contains('@') => (without_digest, String::new()),
            None => (without_digest, "latest".to_string()),
        };
        Self {
            repository: normalise_repository(repository),
            tag,
        }
    }
}

fn normalise_repository(repository: &str) -> String {
    let stripped = repository
        .strip_prefix("docker.io/")
        .or_else(|| repository.strip_prefix("index.docker.io/"))
        .unwrap_or(repository);
    stripped
        .strip_prefix("library/")
        .unwrap_or(stripped)
        .to_string()
}

/// Shell-style glob: `*` matches any run of characters (including none), `?` exactly one.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Position of the last `*` in the pattern and the text position it currently absorbs up to.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, absorbed)) => {
                    p = star + 1;
                    t = absorbed + 1;
                    backtrack = Some((star, absorbed + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// One entry of the mapping file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageMappingEntry {
    /// `repository[:tag-glob]`; the tag glob defaults to `*`. Globs are allowed in both parts.
    pub pattern: String,
    /// The image's entrypoint on this host. A bare name is looked up next to the fp-node-agent
    /// executable, then on PATH; a relative path is relative to the mapping file's directory.
    pub binary: String,
    /// The image's default arguments (Docker `CMD`), used when the container sets neither
    /// `command` nor `args`.
    #[serde(default)]
    pub args: Vec<String>,
    /// The image's environment; the container's own `env` overrides it.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImageMappingFile {
    #[serde(default = "default_true")]
    include_defaults: bool,
    #[serde(default)]
    images: Vec<ImageMappingEntry>,
}

fn default_true() -> bool {
    true
}

/// A mapping entry whose relative paths have been anchored.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageMapping {
    pub repository_glob: String,
    pub tag_glob: String,
    pub binary: BinarySpec,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
}

/// Where a mapped binary lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinarySpec {
    /// An absolute path.
    Path(PathBuf),
    /// A bare file name: next to the agent's own executable, else on PATH.
    Name(String),
}

impl BinarySpec {
    /// The file name the image's entrypoint is known by (`/usr/local/bin/fp-api-server` in a
    /// container `command` selects the mapped binary when the file names agree).
    pub fn file_name(&self) -> Option<&str> {
        match self {
            Self::Path(path) => path.file_name().and_then(|name| name.to_str()),
            Self::Name(name) => Some(name),
        }
    }
}

/// The ordered mapping table: the first entry whose globs match wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageTable {
    pub entries: Vec<ImageMapping>,
}

impl ImageTable {
    /// Parses a mapping document. `base_dir` anchors relative binary paths.
    pub fn from_yaml(yaml: &str, origin: &str, base_dir: &Path) -> Result<Self, ImageConfigError> {
        let file: ImageMappingFile =
            serde_norway::from_str(yaml).map_err(|source| ImageConfigError::Parse {
                origin: origin.to_string(),
                source,
            })?;
        let mut entries = Vec::with_capacity(file.images.len());
        for (index, entry) in file.images.into_iter().enumerate() {
            entries.push(anchor_entry(entry, base_dir).map_err(|problem| {
                ImageConfigError::Invalid {
                    origin: origin.to_string(),
                    index,
                    problem,
                }
            })?);
        }
        let mut table = Self { entries };
        if file.include_defaults && origin != "built-in defaults" {
            table.entries.extend(Self::defaults()?.entries);
        }
        Ok(table)
    }

    /// The built-in mappings alone.
    pub fn defaults() -> Result<Self, ImageConfigError> {
        Self::from_yaml(DEFAULT_IMAGES_YAML, "built-in defaults", Path::new("/"))
    }

    /// Loads a mapping file, or the built-in defaults when no file is given.
    pub fn load(path: Option<&Path>) -> Result<Self, ImageConfigError> {
        let Some(path) = path else {
            return Self::defaults();
        };
        let yaml = std::fs::read_to_string(path).map_err(|source| ImageConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        Self::from_yaml(&yaml, &path.display().to_string(), base_dir)
    }

    /// The first entry matching `image`.
    pub fn lookup(&self, image: &str) -> Option<&ImageMapping> {
        let reference = ImageRef::parse(image);
        self.entries.iter().find(|entry| {
            glob_match(&entry.repository_glob, &reference.repository)
                && glob_match(&entry.tag_glob, &reference.tag)
        })
    }
}

fn anchor_entry(entry: ImageMappingEntry, base_dir: &Path) -> Result<ImageMapping, String> {
    let (repository_glob, tag_glob) = split_pattern(&entry.pattern)?;
    if entry.binary.is_empty() {
        return Err("binary is empty".to_string());
    }
    let binary = if entry.binary.contains('/') {
        let path = Path::new(&entry.binary);
        BinarySpec::Path(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base_dir.join(path)
        })
    } else {
        BinarySpec::Name(entry.binary)
    };
    Ok(ImageMapping {
        repository_glob,
        tag_glob,
        binary,
        args: entry.args,
        env: entry.env,
    })
}

fn split_pattern(pattern: &str) -> Result<(String, String), String> {
    if pattern.is_empty() {
        return Err("pattern is empty".to_string());
    }
    let last_slash = pattern.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match pattern[last_slash..].find(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (&pattern[..at], &pattern[at + 1..])
        }
        None => (pattern, "*"),
    };
    if repository.is_empty() || tag.is_empty() {
        return Err(format!("pattern {pattern:?} needs repository[:tag-glob]"));
    }
    Ok((normalise_repository(repository), tag.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_image_references() {
        let cases = [
            (
                "footballprediction/fp-api-server:1.2.3",
                "footballprediction/fp-api-server",
                "1.2.3",
            ),
            (
                "footballprediction/fp-api-server",
                "footballprediction/fp-api-server",
                "latest",
            ),
            ("docker.io/library/postgres:16", "postgres", "16"),
            (
                "localhost:5000/team/app",
                "localhost:5000/team/app",
                "latest",
            ),
            (
                "localhost:5000/team/app:v1",
                "localhost:5000/team/app",
                "v1",
            ),
            ("repo/app@sha256:abc", "repo/app", ""),
            ("repo/app:v2@sha256:abc", "repo/app", "v2"),
        ];
        for (image, repository, tag) in cases {
            assert_eq!(
                ImageRef::parse(image),
                ImageRef {
                    repository: repository.to_string(),
                    tag: tag.to_string()
                },
                "{image}"
            );
        }
    }

    #[test]
    fn glob_matches_like_a_shell() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "1.2.3"));
        assert!(glob_match("*-broken-ready", "1.2.3-broken-ready"));
        assert!(!glob_match("*-broken-ready", "1.2.3-broken-ready-not"));
        assert!(glob_match("1.?.*", "1.2.3"));
        assert!(!glob_match("1.?.*", "1.22.3"));
        assert!(glob_match("a*b*c", "aXXbYYbZc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn first_matching_entry_wins_and_defaults_follow() {
        let yaml = r#"
images:
  - pattern: "footballprediction/fp-api-server:*-slow"
    binary: ./bin/fp-api-server
    env: {FP_SLOW: "1"}
"#;
        let table = ImageTable::from_yaml(yaml, "test", Path::new("/cfg")).unwrap();
        let slow = table
            .lookup("footballprediction/fp-api-server:2.0.0-slow")
            .unwrap();
        assert_eq!(
            slow.binary,
            BinarySpec::Path(PathBuf::from("/cfg/./bin/fp-api-server"))
        );
        assert_eq!(slow.env.get("FP_SLOW").map(String::as_str), Some("1"));

        let plain = table
            .lookup("footballprediction/fp-api-server:2.0.0")
            .unwrap();
        assert_eq!(plain.binary, BinarySpec::Name("fp-api-server".to_string()));
        assert!(plain.env.is_empty());

        let broken = table
            .lookup("docker.io/footballprediction/fp-api-server:2.0.0-broken-ready")
            .unwrap();
        assert_eq!(
            broken.env.get("FP_TEST_FAULTS").map(String::as_str),
            Some("enabled")
        );
        assert_eq!(
            broken
                .env
                .get("FP_TEST_FAULT_READY_FAIL_AFTER")
                .map(String::as_str),
            Some("0s")
        );

        let operator = table
            .lookup("footballprediction/fp-operator:0.1.0")
            .unwrap();
        assert_eq!(operator.binary, BinarySpec::Name("fp-operator".to_string()));
        assert!(table.lookup("postgres:16").is_none());
    }

    #[test]
    fn defaults_can_be_excluded() {
        let yaml = "includeDefaults: false\nimages: []\n";
        let table = ImageTable::from_yaml(yaml, "test", Path::new("/")).unwrap();
        assert!(table.lookup("footballprediction/fp-api-server:1").is_none());
    }

    #[test]
    fn rejects_bad_entries() {
        let unknown_field = "images:\n  - pattern: a\n    binary: b\n    bogus: 1\n";
        assert!(matches!(
            ImageTable::from_yaml(unknown_field, "t", Path::new("/")),
            Err(ImageConfigError::Parse { .. })
        ));
        let empty_tag = "images:\n  - pattern: 'a:'\n    binary: b\n";
        assert!(matches!(
            ImageTable::from_yaml(empty_tag, "t", Path::new("/")),
            Err(ImageConfigError::Invalid { index: 0, .. })
        ));
    }

    #[test]
    fn binary_file_name_is_known() {
        assert_eq!(
            BinarySpec::Path(PathBuf::from("/x/fp-api-server")).file_name(),
            Some("fp-api-server")
        );
        assert_eq!(
            BinarySpec::Name("fp-operator".into()).file_name(),
            Some("fp-operator")
        );
    }
}
