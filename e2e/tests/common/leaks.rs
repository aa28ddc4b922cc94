//! Secrets never leave their Secrets: at the end of a scenario, every secret value of its
//! namespaces (and the passwords the scenario typed on purpose) is searched for, with kubectl, in
//! everything a namespace user or a log reader sees: every container's log, the events, the
//! FootballPrediction objects with their status, and the ConfigMaps.

use std::collections::BTreeMap;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// Passwords the scenarios set on purpose (wrong ones, to see a release fail); by the end they
/// are no longer in any Secret, so they are named here.
pub const TYPED_PASSWORDS: [&str; 2] = ["wrong-password", "not-the-password"];

/// Values shorter than this are not searched for: too likely to occur by chance.
const SHORTEST: usize = 8;

/// `(where it comes from, value)` for every value worth searching for in one Secret's data.
/// A URL counts by its password (its host and user are not secret); a text value whole; a binary
/// value (a JWT key) in base64, the form a careless program would print.
pub fn needles(secret: &str, data: &BTreeMap<String, Vec<u8>>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, bytes) in data {
        let origin = format!("Secret {secret} key {key}");
        let value = match std::str::from_utf8(bytes) {
            Ok(text) => match url::Url::parse(text.trim()) {
                Ok(url) if url.has_host() => match url.password() {
                    Some(password) => password.to_owned(),
                    // A URL without credentials (a webhook) can still be the secret whole.
                    None if url.path().len() > 1 || url.query().is_some() => text.trim().to_owned(),
                    None => continue,
                },
                _ => text.trim().to_owned(),
            },
            Err(_) => STANDARD.encode(bytes),
        };
        if value.len() >= SHORTEST {
            out.push((origin, value));
        }
    }
    out
}

/// kubectl's output, `None` when it fails (a pod's log may not exist yet, or no previous one).
fn kubectl(args: &[&str]) -> Option<String> {
    let out = Command::new("kubectl").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// kubectl's output where failing would make the search find nothing and pass: a panic.
fn kubectl_must(args: &[&str]) -> String {
    kubectl(args).unwrap_or_else(|| panic!("kubectl {args:?} failed: the secret search cannot run"))
}

/// The Opaque Secrets of `namespace` (not Helm's release records nor service-account tokens,
/// which hold no user secret) as needles.
fn namespace_needles(namespace: &str) -> Vec<(String, String)> {
    let list: Value = serde_json::from_str(&kubectl_must(&[
        "get", "secrets", "-n", namespace, "-o", "json",
    ]))
    .expect("kubectl get secrets -o json");
    let mut out = Vec::new();
    for secret in list["items"].as_array().into_iter().flatten() {
        if secret["type"] != "Opaque" {
            continue;
        }
        let name = format!(
            "{namespace}/{}",
            secret["metadata"]["name"].as_str().unwrap_or("?")
        );
        let data: BTreeMap<String, Vec<u8>> = secret["data"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), STANDARD.decode(v.as_str()?).ok()?)))
            .collect();
        out.extend(needles(&name, &data));
    }
    out
}

/// Everything of `namespace` a reader other than the Secret's owner sees, by where it is.
fn haystacks(namespace: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let pods = kubectl_must(&["get", "pods", "-n", namespace, "-o", "name"]);
    for pod in pods.lines().filter(|l| !l.is_empty()) {
        for previous in ["--previous=false", "--previous=true"] {
            if let Some(log) =
                kubectl(&["logs", "-n", namespace, pod, "--all-containers", previous])
            {
                out.push((format!("{namespace} {pod} log ({previous})"), log));
            }
        }
    }
    for kind in ["events", "footballpredictions", "configmaps"] {
        let text = kubectl_must(&["get", kind, "-n", namespace, "-o", "json"]);
        out.push((format!("{namespace} {kind}"), text));
    }
    out
}

/// Where any secret value of `namespaces` (or a typed password) shows outside its Secret: one
/// line per finding, naming the Secret and the place, never the value.
pub fn find(namespaces: &[&str]) -> Vec<String> {
    let mut needles: Vec<(String, String)> = namespaces
        .iter()
        .flat_map(|ns| namespace_needles(ns))
        .collect();
    needles.extend(
        TYPED_PASSWORDS
            .iter()
            .map(|p| ("a password the scenario typed".to_owned(), (*p).to_owned())),
    );
    let haystacks: Vec<(String, String)> = namespaces.iter().flat_map(|ns| haystacks(ns)).collect();
    let logs = haystacks
        .iter()
        .filter(|(place, _)| place.contains(" log "))
        .count();
    // A search with nothing to find, or nowhere to look, would pass whatever leaked.
    assert!(
        needles.len() > TYPED_PASSWORDS.len() && logs > 0,
        "the secret search found {} values and {logs} logs in {namespaces:?}",
        needles.len()
    );
    eprintln!(
        "[leaks] {} secret values searched for in {} logs and {} object lists of {namespaces:?}",
        needles.len(),
        logs,
        haystacks.len() - logs
    );
    let mut findings = Vec::new();
    for (place, text) in &haystacks {
        for (origin, needle) in &needles {
            if text.contains(needle.as_str()) {
                findings.push(format!("{origin} shows in {place}"));
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needles_are_passwords_texts_and_encoded_keys() {
        let data: BTreeMap<String, Vec<u8>> = [
            (
                "url",
                "postgres://fp:s3cret-pass@db:5432/fp".as_bytes().to_vec(),
            ),
            ("webhook", b"https://hooks.example/T000/B000/XXXX".to_vec()),
            ("host-only", b"https://hooks.example".to_vec()),
            ("password", b"an-admin-password\n".to_vec()),
            ("short", b"admin".to_vec()),
            ("k20240101T000000Z", vec![0xff; 32]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let found: BTreeMap<String, String> = needles("ns/s", &data).into_iter().collect();
        assert_eq!(found["Secret ns/s key url"], "s3cret-pass");
        assert_eq!(
            found["Secret ns/s key webhook"],
            "https://hooks.example/T000/B000/XXXX"
        );
        assert_eq!(found["Secret ns/s key password"], "an-admin-password");
        assert_eq!(
            found["Secret ns/s key k20240101T000000Z"],
            STANDARD.encode([0xff; 32])
        );
        assert!(!found.contains_key("Secret ns/s key short"));
        assert!(!found.contains_key("Secret ns/s key host-only"));
    }
}
