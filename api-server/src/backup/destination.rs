//! Destination URLs: `file:///path` (a mounted volume) or `s3://bucket/prefix` (off-site copy).
//! Parsing is pure; [`super::store`] turns a parsed destination into an object store.

use std::fmt;
use std::path::PathBuf;

use url::Url;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DestinationError {
    #[error("destination {0:?} is not a URL: use file:///path or s3://bucket/prefix")]
    NotAUrl(String),
    #[error("destination scheme {0:?} is not supported: use file:///path or s3://bucket/prefix")]
    UnsupportedScheme(String),
    #[error("file destination {0:?} must be an absolute local path like file:///var/backups")]
    BadFilePath(String),
    #[error("s3 destination {0:?} names no bucket: use s3://bucket/prefix")]
    MissingBucket(String),
    #[error("s3 destination option {0:?} is unknown (known: endpoint, region)")]
    UnknownOption(String),
    #[error("s3 endpoint {0:?} must be an http:// or https:// URL")]
    BadEndpoint(String),
    #[error(
        "destination {0:?} must not contain credentials: pass them in FP_S3_ACCESS_KEY_ID / FP_S3_SECRET_ACCESS_KEY"
    )]
    CredentialsInUrl(String),
}

/// Where backups are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    File {
        root: PathBuf,
    },
    S3 {
        bucket: String,
        /// Key prefix without leading or trailing slash; empty for the bucket's root.
        prefix: String,
        /// From `?endpoint=`; otherwise the `--s3-endpoint` flag applies.
        endpoint: Option<String>,
        /// From `?region=`; otherwise the `--s3-region` flag applies.
        region: Option<String>,
    },
}

impl Destination {
    pub fn parse(text: &str) -> Result<Self, DestinationError> {
        // A bare absolute path is a convenience for operators at a shell.
        if text.starts_with('/') {
            return Ok(Self::File {
                root: PathBuf::from(text),
            });
        }
        let url = Url::parse(text).map_err(|_| DestinationError::NotAUrl(text.to_owned()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DestinationError::CredentialsInUrl(super::redact::redact(
                text,
            )));
        }
        match url.scheme() {
            "file" => {
                let host_ok = matches!(url.host_str(), None | Some("" | "localhost"));
                let root = url
                    .to_file_path()
                    .ok()
                    .filter(|path| host_ok && path.is_absolute() && url.query().is_none())
                    .ok_or_else(|| DestinationError::BadFilePath(text.to_owned()))?;
                Ok(Self::File { root })
            }
            "s3" => {
                let bucket = url.host_str().unwrap_or_default().to_owned();
                if bucket.is_empty() {
                    return Err(DestinationError::MissingBucket(text.to_owned()));
                }
                let prefix = url.path().trim_matches('/').to_owned();
                let mut endpoint = None;
                let mut region = None;
                for (key, value) in url.query_pairs() {
                    match key.as_ref() {
                        "endpoint" => {
                            if !(value.starts_with("http://") || value.starts_with("https://")) {
                                return Err(DestinationError::BadEndpoint(value.into_owned()));
                            }
                            endpoint = Some(value.into_owned());
                        }
                        "region" => region = Some(value.into_owned()),
                        other => return Err(DestinationError::UnknownOption(other.to_owned())),
                    }
                }
                Ok(Self::S3 {
                    bucket,
                    prefix,
                    endpoint,
                    region,
                })
            }
            other => Err(DestinationError::UnsupportedScheme(other.to_owned())),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::File { .. } => "file",
            Self::S3 { .. } => "s3",
        }
    }
}

impl fmt::Display for Destination {
    /// The canonical form, safe to print (destinations never carry secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { root } => write!(f, "file://{}", root.display()),
            Self::S3 { bucket, prefix, .. } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix, .. } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_destinations() {
        assert_eq!(
            Destination::parse("file:///var/backups/fp").unwrap(),
            Destination::File {
                root: PathBuf::from("/var/backups/fp")
            }
        );
        assert_eq!(
            Destination::parse("/mnt/pvc").unwrap(),
            Destination::File {
                root: PathBuf::from("/mnt/pvc")
            }
        );
        assert_eq!(
            Destination::parse("file:///var/backups")
                .unwrap()
                .to_string(),
            "file:///var/backups"
        );
    }

    #[test]
    fn rejects_remote_or_relative_file_destinations() {
        assert!(matches!(
            Destination::parse("file://otherhost/backups"),
            Err(DestinationError::BadFilePath(_))
        ));
        assert!(matches!(
            Destination::parse("backups"),
            Err(DestinationError::NotAUrl(_))
        ));
    }

    #[test]
    fn parses_s3_destinations_with_options() {
        assert_eq!(
            Destination::parse(
                "s3://fp-backups/prod/daily/?endpoint=http://127.0.0.1:9000&region=eu-west-2"
            )
            .unwrap(),
            Destination::S3 {
                bucket: "fp-backups".to_owned(),
                prefix: "prod/daily".to_owned(),
                endpoint: Some("http://127.0.0.1:9000".to_owned()),
                region: Some("eu-west-2".to_owned()),
            }
        );
        let root = Destination::parse("s3://fp-backups").unwrap();
        assert_eq!(root.to_string(), "s3://fp-backups");
        assert_eq!(root.kind(), "s3");
    }

    #[test]
    fn rejects_bad_s3_destinations() {
        assert!(matches!(
            Destination::parse("s3:///prefix"),
            Err(DestinationError::MissingBucket(_))
        ));
        assert!(matches!(
            Destination::parse("s3://b/p?endpint=http://x"),
            Err(DestinationError::UnknownOption(_))
        ));
        assert!(matches!(
            Destination::parse("s3://b/p?endpoint=ftp://x"),
            Err(DestinationError::BadEndpoint(_))
        ));
        assert!(matches!(
            Destination::parse("gs://b/p"),
            Err(DestinationError::UnsupportedScheme(_))
        ));
    }

    #[test]
    fn refuses_credentials_in_the_url_without_echoing_them() {
        let err = Destination::parse("s3://AKIA:topsecret@bucket/prefix").unwrap_err();
        assert!(matches!(err, DestinationError::CredentialsInUrl(_)));
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }
}
