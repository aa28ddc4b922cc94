//! The SBOM of an image: an SPDX 2.3 JSON document listing its Debian packages (name, version,
//! architecture, .deb SHA-256, purl) and the Rust crates linked into its binary (from
//! `cargo tree`, with their declared licences). Deterministic: sorted, dated from
//! SOURCE_DATE_EPOCH, namespaced by a hash of its own content.
use std::collections::BTreeSet;
use std::process::Stdio;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::debs::DebPackage;

/// A crate of a binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Crate {
    pub name: String,
    pub version: String,
    /// The SPDX expression from Cargo.toml (old `MIT/Apache-2.0` spellings made `OR`).
    pub license: Option<String>,
    /// A workspace member (not fetched from a registry).
    pub local: bool,
}

/// `cargo tree --prefix depth --format '{p}|{l}'` for several packages: each root starts at
/// depth 0; returns the crates of each root in order (sorted, without duplicates).
pub fn parse_cargo_tree(text: &str) -> Vec<(String, BTreeSet<Crate>)> {
    let mut out: Vec<(String, BTreeSet<Crate>)> = Vec::new();
    for line in text.lines() {
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            continue;
        }
        let depth = &line[..digits];
        let rest = line[digits..].trim_end_matches(" (*)");
        let (package, license) = rest.split_once('|').unwrap_or((rest, ""));
        let mut words = package.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            continue;
        };
        let krate = Crate {
            name: name.to_owned(),
            version: version.trim_start_matches('v').to_owned(),
            license: spdx_license(license),
            local: package.contains(" (/"),
        };
        if depth == "0" {
            out.push((krate.name.clone(), BTreeSet::new()));
        }
        if let Some((_, set)) = out.last_mut() {
            set.insert(krate);
        }
    }
    out
}

fn spdx_license(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.replace(" / ", " OR ").replace('/', " OR "))
}

/// The crates linked into each of `packages`' binaries, resolved like the build that makes them
/// (all selected together, normal dependencies only, proc-macros left out).
pub fn crates_of(packages: &[&str]) -> anyhow::Result<Vec<(String, BTreeSet<Crate>)>> {
    let mut cmd = crate::cargo::command(&[
        "tree",
        "--locked",
        "-e",
        "normal,no-proc-macro",
        "--prefix",
        "depth",
        "--format",
        "{p}|{l}",
        // Without it a crate printed under the first root is not expanded again under the
        // second, whose list would then miss its dependencies.
        "--no-dedupe",
    ]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .context("running cargo tree")?;
    if !out.status.success() {
        bail!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let trees = parse_cargo_tree(&String::from_utf8_lossy(&out.stdout));
    for p in packages {
        if !trees.iter().any(|(root, _)| root == p) {
            bail!("cargo tree printed no tree for {p}");
        }
    }
    Ok(trees)
}

/// What the SBOM describes.
pub struct SbomInput<'a> {
    /// `footballprediction/fp-api-server:0.1.0`
    pub image: &'a str,
    pub version: &'a str,
    pub binary: &'a str,
    pub source_url: &'a str,
    pub license: &'a str,
    /// RFC 3339, from SOURCE_DATE_EPOCH.
    pub created: &'a str,
    pub debian_release: &'a str,
    pub debs: &'a [DebPackage],
    pub crates: &'a BTreeSet<Crate>,
}

fn spdx_id(prefix: &str, name: &str, version: &str) -> String {
    let clean = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect::<String>()
    };
    format!("SPDXRef-{prefix}-{}-{}", clean(name), clean(version))
}

/// Percent-encodes what a purl version may not hold literally (`+`, `:`, `~`).
fn purl_escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace('+', "%2B")
        .replace(':', "%3A")
        .replace('~', "%7E")
}

fn purl(locator: String) -> Value {
    json!([{
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": locator,
    }])
}

/// The SPDX document (pretty-printed JSON).
pub fn spdx(input: &SbomInput) -> serde_json::Result<Vec<u8>> {
    let image_id = "SPDXRef-Image";
    let binary_id = spdx_id("Binary", input.binary, input.version);
    let mut packages = vec![
        json!({
            "name": input.image,
            "SPDXID": image_id,
            "versionInfo": input.version,
            "supplier": "Organization: FootballPrediction",
            "downloadLocation": input.source_url,
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "CONTAINER",
        }),
        json!({
            "name": input.binary,
            "SPDXID": binary_id,
            "versionInfo": input.version,
            "supplier": "Organization: FootballPrediction",
            "downloadLocation": input.source_url,
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": input.license,
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "APPLICATION",
        }),
    ];
    let mut relationships = vec![
        json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": image_id}),
        json!({"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": binary_id}),
    ];
    let mut debs: Vec<&DebPackage> = input.debs.iter().collect();
    debs.sort_by(|a, b| a.name.cmp(&b.name));
    for deb in debs {
        let id = spdx_id("DebianPackage", &deb.name, &deb.version);
        let mut locator = format!(
            "pkg:deb/debian/{}@{}?arch={}&distro=debian-{}",
            deb.name,
            purl_escape(&deb.version),
            deb.architecture,
            input.debian_release
        );
        if let Some(source) = &deb.source {
            let source = source.split_whitespace().next().unwrap_or(source);
            locator.push_str(&format!("&upstream={source}"));
        }
        packages.push(json!({
            "name": deb.name,
            "SPDXID": id,
            "versionInfo": deb.version,
            "supplier": "Organization: Debian",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "checksums": [{"algorithm": "SHA256", "checksumValue": deb.sha256}],
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "comment": format!("copyright and licence: /usr/share/doc/{}/copyright in the image", deb.name),
            "externalRefs": purl(locator),
        }));
        relationships.push(json!({"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
    }
    for krate in input
        .crates
        .iter()
        .filter(|c| !(c.local && c.name == input.binary))
    {
        let id = spdx_id("Crate", &krate.name, &krate.version);
        let mut package = json!({
            "name": krate.name,
            "SPDXID": id,
            "versionInfo": krate.version,
            "supplier": "NOASSERTION",
            "downloadLocation": if krate.local { input.source_url } else { "NOASSERTION" },
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": krate.license.as_deref().unwrap_or("NOASSERTION"),
            "copyrightText": "NOASSERTION",
        });
        if !krate.local {
            package["externalRefs"] = purl(format!("pkg:cargo/{}@{}", krate.name, krate.version));
        }
        packages.push(package);
        relationships.push(json!({"spdxElementId": binary_id, "relationshipType": "STATIC_LINK", "relatedSpdxElement": id}));
    }
    let body = json!({"packages": packages, "relationships": relationships});
    let hash = hex::encode(&Sha256::digest(serde_json::to_vec(&body)?)[..16]);
    let name = input
        .image
        .rsplit('/')
        .next()
        .unwrap_or(input.image)
        .replace(':', "-");
    let doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": input.image,
        "documentNamespace": format!("{}/sbom/{name}-{hash}", input.source_url),
        "creationInfo": {
            "created": input.created,
            "creators": ["Tool: cargo-xtask-images"],
        },
        "packages": body["packages"],
        "relationships": body["relationships"],
    });
    let mut bytes = serde_json::to_vec_pretty(&doc)?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = "\
0fp-api-server v0.1.0 (/work/x/api-server)|Apache-2.0
1axum v0.8.9|MIT
2tokio v1.54.1|MIT
1tokio v1.54.1|MIT (*)
1ring v0.17.14|Apache-2.0 AND ISC

0fp-operator v0.1.0 (/work/x/operator)|Apache-2.0
1kube v5.0.0|Apache-2.0
1old v0.1.0|MIT/Apache-2.0
1unlicensed v1.0.0|
";

    #[test]
    fn splits_cargo_tree_per_root() {
        let trees = parse_cargo_tree(TREE);
        assert_eq!(trees.len(), 2);
        assert_eq!(trees[0].0, "fp-api-server");
        let api: Vec<&str> = trees[0].1.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(api, ["axum", "fp-api-server", "ring", "tokio"]);
        let op = &trees[1].1;
        let old = op.iter().find(|c| c.name == "old").unwrap();
        assert_eq!(old.license.as_deref(), Some("MIT OR Apache-2.0"));
        assert_eq!(
            op.iter().find(|c| c.name == "unlicensed").unwrap().license,
            None
        );
        assert!(op.iter().find(|c| c.name == "fp-operator").unwrap().local);
        assert!(!op.iter().find(|c| c.name == "kube").unwrap().local);
    }

    fn doc() -> Value {
        let trees = parse_cargo_tree(TREE);
        let debs = vec![
            DebPackage {
                name: "tzdata".into(),
                version: "2026f-0+deb12u1".into(),
                architecture: "all".into(),
                filename: "pool/main/t/tzdata/tzdata_2026f-0+deb12u1_all.deb".into(),
                sha256: "cd34".into(),
                source: None,
            },
            DebPackage {
                name: "libc6".into(),
                version: "2.36-9+deb12u14".into(),
                architecture: "amd64".into(),
                filename: "pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb".into(),
                sha256: "ab12".into(),
                source: Some("glibc".into()),
            },
        ];
        let bytes = spdx(&SbomInput {
            image: "footballprediction/fp-api-server:0.1.0",
            version: "0.1.0",
            binary: "fp-api-server",
            source_url: "https://example.test/fp",
            license: "Apache-2.0",
            created: "2026-11-29T10:00:00Z",
            debian_release: "12",
            debs: &debs,
            crates: &trees[0].1,
        })
        .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn spdx_lists_debian_packages_and_crates_with_purls() {
        let d = doc();
        assert_eq!(d["spdxVersion"], "SPDX-2.3");
        assert_eq!(d["creationInfo"]["created"], "2026-11-29T10:00:00Z");
        let packages = d["packages"].as_array().unwrap();
        let names: Vec<&str> = packages
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "footballprediction/fp-api-server:0.1.0",
                "fp-api-server",
                "libc6",
                "tzdata",
                "axum",
                "ring",
                "tokio"
            ]
        );
        let libc = &packages[2];
        assert_eq!(libc["versionInfo"], "2.36-9+deb12u14");
        assert_eq!(
            libc["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64&distro=debian-12&upstream=glibc"
        );
        assert_eq!(libc["checksums"][0]["checksumValue"], "ab12");
        let ring = &packages[5];
        assert_eq!(ring["licenseDeclared"], "Apache-2.0 AND ISC");
        assert_eq!(
            ring["externalRefs"][0]["referenceLocator"],
            "pkg:cargo/ring@0.17.14"
        );
        // Every package is reachable from the document through a relationship.
        let related: BTreeSet<&str> = d["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["relatedSpdxElement"].as_str().unwrap())
            .collect();
        for p in packages {
            assert!(related.contains(p["SPDXID"].as_str().unwrap()), "{p}");
        }
        // No host path leaks into the document.
        assert!(!d.to_string().contains("/work/x"));
    }

    #[test]
    fn spdx_is_deterministic_and_namespaced_by_content() {
        assert_eq!(doc(), doc());
        let ns = doc()["documentNamespace"].as_str().unwrap().to_owned();
        assert!(
            ns.starts_with("https://example.test/fp/sbom/fp-api-server-0.1.0-"),
            "{ns}"
        );
    }
}
