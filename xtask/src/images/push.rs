//! `cargo xtask images --push REGISTRY`: copies each OCI layout to `REGISTRY/<repository>:<tag>`
//! with skopeo (Debian), keeping the digests, and checks the registry stored exactly our manifest.
//! An image counts as pushed only once the registry accepted its manifest (blobs first, the
//! manifest last): a refusal or an outage in between leaves nothing tagged and is reported as
//! a failure naming the registry, with what had been pushed before it.
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::Built;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("registry {0:?} is not HOST[:PORT][/NAMESPACE]")]
    BadRegistry(String),
    #[error("registry {registry} is unreachable ({reason}); nothing was pushed")]
    Unreachable { registry: String, reason: String },
    #[error(
        "registry {registry} refused {image}: {detail}; {}",
        pushed_summary(.pushed)
    )]
    Refused {
        registry: String,
        image: String,
        detail: String,
        pushed: Vec<String>,
    },
    #[error(
        "registry {registry} stored {image} as {stored}, not as the built {built}; {}",
        pushed_summary(.pushed)
    )]
    DigestMismatch {
        registry: String,
        image: String,
        stored: String,
        built: String,
        pushed: Vec<String>,
    },
    #[error("cannot run skopeo: {0}")]
    Skopeo(std::io::Error),
}

fn pushed_summary(pushed: &[String]) -> String {
    if pushed.is_empty() {
        "nothing was pushed".to_owned()
    } else {
        format!("pushed before the failure: {}", pushed.join(", "))
    }
}

#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Verify the registry's TLS certificate: `None` does for every registry but loopback ones
    /// (a local registry serves plain HTTP).
    pub tls_verify: Option<bool>,
}

/// `host:port` of `registry` (443 when no port is given) and whether it is a loopback host.
pub fn endpoint(registry: &str) -> Result<(String, bool), PushError> {
    let bad = || PushError::BadRegistry(registry.to_owned());
    let host_port = registry
        .split('/')
        .next()
        .filter(|h| !h.is_empty())
        .ok_or_else(bad)?;
    if registry.contains("://") || registry.ends_with('/') || host_port.contains('@') {
        return Err(bad());
    }
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, _)) if !h.ends_with(']') && h.contains(':') => (host_port, "443"), // bare IPv6
        Some((h, p)) => (h, p),
        None => (host_port, "443"),
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    Ok((format!("{host}:{port}"), loopback))
}

/// Fails fast, before anything is sent, when nothing answers at the registry's address.
fn reachable(registry: &str, endpoint: &str) -> Result<(), PushError> {
    let unreachable = |reason: String| PushError::Unreachable {
        registry: registry.to_owned(),
        reason,
    };
    let addrs: Vec<_> = endpoint
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("cannot resolve {endpoint}: {e}")))?
        .collect();
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(unreachable(last))
}

/// The last lines of skopeo's error output, without its log prefixes.
pub fn skopeo_detail(stderr: &str) -> String {
    let lines: Vec<String> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.strip_prefix("time=")
                .and_then(|r| r.split_once("msg=").map(|(_, m)| m.trim_matches('"')))
                .unwrap_or(l)
                .replace("\\n", " ")
                .trim()
                .to_owned()
        })
        .collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    tail.join(" | ")
}

/// Pushes every image; returns `REGISTRY/<repository>:<tag>@<digest>` for each.
pub fn push(
    built: &[Built],
    registry: &str,
    options: &PushOptions,
) -> Result<Vec<String>, PushError> {
    let (endpoint, loopback) = endpoint(registry)?;
    reachable(registry, &endpoint)?;
    let tls_verify = options.tls_verify.unwrap_or(!loopback);
    let mut pushed = Vec::new();
    for b in built {
        let target = format!("{registry}/{}", b.spec.reference());
        let digest_file = b.layout.with_extension("pushed-digest");
        let _ = std::fs::remove_file(&digest_file);
        eprintln!("[images] pushing {} to {target}", b.oci_ref());
        let output = Command::new("skopeo")
            .args(["--command-timeout", "10m", "copy", "--preserve-digests"])
            .arg(format!("--dest-tls-verify={tls_verify}"))
            .arg("--digestfile")
            .arg(&digest_file)
            .arg(b.oci_ref())
            .arg(format!("docker://{target}"))
            .stdin(Stdio::null())
            .output()
            .map_err(PushError::Skopeo)?;
        if !output.status.success() {
            return Err(PushError::Refused {
                registry: registry.to_owned(),
                image: b.spec.reference(),
                detail: skopeo_detail(&String::from_utf8_lossy(&output.stderr)),
                pushed,
            });
        }
        let stored = std::fs::read_to_string(&digest_file).unwrap_or_default();
        let _ = std::fs::remove_file(&digest_file);
        if stored.trim() != b.manifest_digest {
            return Err(PushError::DigestMismatch {
                registry: registry.to_owned(),
                image: b.spec.reference(),
                stored: stored.trim().to_owned(),
                built: b.manifest_digest.clone(),
                pushed,
            });
        }
        pushed.push(format!("{target}@{}", b.manifest_digest));
    }
    Ok(pushed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registry_endpoints() {
        assert_eq!(
            endpoint("127.0.0.1:5000").unwrap(),
            ("127.0.0.1:5000".into(), true)
        );
        assert_eq!(
            endpoint("localhost:5000/team").unwrap(),
            ("localhost:5000".into(), true)
        );
        assert_eq!(endpoint("[::1]:5000").unwrap(), ("[::1]:5000".into(), true));
        assert_eq!(
            endpoint("registry.example.test/team").unwrap(),
            ("registry.example.test:443".into(), false)
        );
        for bad in [
            "",
            "/x",
            "https://r.test",
            "r.test:port",
            "r.test/",
            "u@r.test",
        ] {
            assert!(
                matches!(endpoint(bad), Err(PushError::BadRegistry(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn errors_name_the_registry_and_what_was_pushed() {
        let e = PushError::Refused {
            registry: "127.0.0.1:5000".into(),
            image: "footballprediction/fp-operator:0.1.0".into(),
            detail: "405 Method Not Allowed".into(),
            pushed: vec!["127.0.0.1:5000/footballprediction/fp-api-server:0.1.0@sha256:ab".into()],
        };
        assert_eq!(
            e.to_string(),
            "registry 127.0.0.1:5000 refused footballprediction/fp-operator:0.1.0: 405 Method Not \
             Allowed; pushed before the failure: 127.0.0.1:5000/footballprediction/fp-api-server:0.1.0@sha256:ab"
        );
        let e = PushError::Refused {
            registry: "r".into(),
            image: "i".into(),
            detail: "d".into(),
            pushed: vec![],
        };
        assert!(e.to_string().ends_with("; nothing was pushed"));
    }

    #[test]
    fn a_registry_that_is_down_is_reported_before_any_push() {
        let port = super::super::registry::free_port().unwrap();
        let registry = format!("127.0.0.1:{port}");
        let err = push(&[], &registry, &PushOptions::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "registry {registry} is unreachable (127.0.0.1:{port}: "
            )),
            "{text}"
        );
        assert!(text.ends_with("nothing was pushed"), "{text}");
    }

    #[test]
    fn skopeo_detail_keeps_the_last_messages() {
        let stderr = "Getting image source signatures\n\
            time=\"2026-01-01T00:00:00Z\" level=fatal msg=\"writing blob: initiating layer upload: 405 Method Not Allowed\\n\"\n";
        assert_eq!(
            skopeo_detail(stderr),
            "Getting image source signatures | writing blob: initiating layer upload: 405 Method Not Allowed"
        );
    }
}
