//! Image composition from small fixture inputs: the same inputs give the same digests, and each
//! input that should change the image does.
use super::*;

fn cert(n: u8) -> Vec<u8> {
    format!("-----BEGIN CERTIFICATE-----\nfixture{n}\n-----END CERTIFICATE-----").into_bytes()
}

/// A base tree as the Debian packages would give it, inserted in `order`.
fn base_tree(reverse: bool) -> Tree {
    let mut items: Vec<(&str, Node)> = vec![
        (
            "lib64/ld-linux-x86-64.so.2",
            Node::file(b"ld".to_vec(), 0o755, "libc6 2.36"),
        ),
        (
            "lib/x86_64-linux-gnu/libc.so.6",
            Node::file(b"libc".to_vec(), 0o755, "libc6 2.36"),
        ),
        (
            "usr/share/ca-certificates/mozilla/B.crt",
            Node::file(cert(2), 0o644, "ca-certificates 1"),
        ),
        (
            "usr/share/ca-certificates/mozilla/A.crt",
            Node::file(cert(1), 0o644, "ca-certificates 1"),
        ),
        (
            "usr/share/zoneinfo/Etc/UTC",
            Node::file(b"TZif".to_vec(), 0o644, "tzdata 1"),
        ),
        (
            "usr/share/doc/libc6/copyright",
            Node::file(b"(c)".to_vec(), 0o644, "libc6 2.36"),
        ),
    ];
    if reverse {
        items.reverse();
    }
    let mut tree = Tree::new();
    for (p, n) in items {
        tree.insert(p, n).unwrap();
    }
    finish_base(&mut tree).unwrap();
    tree
}

fn packages() -> Vec<debs::DebPackage> {
    vec![debs::DebPackage {
        name: "libc6".into(),
        version: "2.36-9+deb12u14".into(),
        architecture: "amd64".into(),
        filename: "pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb".into(),
        sha256: "ab".into(),
        source: Some("glibc".into()),
    }]
}

fn pg_tree() -> (Tree, Vec<debs::DebPackage>) {
    let mut tree = Tree::new();
    for p in spec::PG_PROGRAMS {
        tree.insert(
            &format!("usr/lib/postgresql/15/bin/{p}"),
            Node::file(p.as_bytes().to_vec(), 0o755, "postgresql-client-15"),
        )
        .unwrap();
    }
    let api = &spec::images("15")[0];
    add_links(&mut tree, &api.extra_links).unwrap();
    (tree, Vec::new())
}

struct Fixture {
    base: Tree,
    extra: (Tree, Vec<debs::DebPackage>),
    crates: BTreeSet<sbom::Crate>,
    binary: Vec<u8>,
    epoch: i64,
    revision: String,
}

fn fixture(reverse: bool) -> Fixture {
    Fixture {
        base: base_tree(reverse),
        extra: pg_tree(),
        crates: BTreeSet::from([sbom::Crate {
            name: "tokio".into(),
            version: "1.54.1".into(),
            license: Some("MIT".into()),
            local: false,
        }]),
        binary: b"\x7fELF fixture".to_vec(),
        epoch: 1_764_410_400,
        revision: "0123abc".into(),
    }
}

fn compose_api(f: &Fixture) -> Composed {
    let images = spec::images("15");
    let created = spec::rfc3339(f.epoch).unwrap();
    compose(&ComposeInput {
        spec: &images[0],
        epoch: f.epoch,
        created: &created,
        revision: &f.revision,
        base: &f.base,
        base_packages: &packages(),
        extra: Some(&f.extra),
        binary: f.binary.clone(),
        crates: &f.crates,
    })
    .unwrap()
}

#[test]
fn two_builds_from_the_same_inputs_have_the_same_digests() {
    let a = compose_api(&fixture(false));
    let b = compose_api(&fixture(true));
    assert_eq!(a.manifest_digest, b.manifest_digest);
    assert_eq!(a.config, b.config);
    for (x, y) in a.layers.iter().zip(&b.layers) {
        assert_eq!(x.gzip, y.gzip);
    }
    // Written to disk twice: byte-identical layouts.
    let dir = tempfile::tempdir().unwrap();
    let spec = &spec::images("15")[0];
    let one = write(spec, &a, &dir.path().join("one")).unwrap();
    let two = write(spec, &b, &dir.path().join("two")).unwrap();
    assert_eq!(one.manifest_digest, two.manifest_digest);
    for file in ["index.json", "oci-layout"] {
        assert_eq!(
            std::fs::read(one.layout.join(file)).unwrap(),
            std::fs::read(two.layout.join(file)).unwrap()
        );
    }
}

#[test]
fn each_input_changes_the_digest() {
    let base = compose_api(&fixture(false)).manifest_digest;
    let mut f = fixture(false);
    f.binary.push(b'!');
    assert_ne!(compose_api(&f).manifest_digest, base, "binary");
    let mut f = fixture(false);
    f.epoch += 1;
    assert_ne!(compose_api(&f).manifest_digest, base, "SOURCE_DATE_EPOCH");
    let mut f = fixture(false);
    f.revision = "fedcba9".into();
    assert_ne!(compose_api(&f).manifest_digest, base, "revision");
    let mut f = fixture(false);
    f.crates.clear();
    assert_ne!(compose_api(&f).manifest_digest, base, "SBOM");
}

fn layer_entries(layer: &oci::Layer) -> BTreeMap<String, (tar::EntryType, u32, u64, u64)> {
    let mut tar_bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&layer.gzip[..]),
        &mut tar_bytes,
    )
    .unwrap();
    assert_eq!(oci::sha256_digest(&tar_bytes), layer.diff_id);
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().display().to_string(),
                (
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn layers_hold_what_the_pods_need_where_the_operator_mounts_it() {
    let f = fixture(false);
    let c = compose_api(&f);
    assert_eq!(c.layers.len(), 3);
    let base = layer_entries(&c.layers[0]);
    let pg = layer_entries(&c.layers[1]);
    let app = layer_entries(&c.layers[2]);
    let all_mtimes = base.values().chain(pg.values()).chain(app.values());
    assert!(all_mtimes.clone().all(|e| e.3 == f.epoch as u64));
    assert_eq!(base["tmp/"].1, 0o1777);
    assert_eq!(base["home/nonroot/"].2, 65532);
    assert!(
        base.contains_key("etc/passwd") && base.contains_key("etc/ssl/certs/ca-certificates.crt")
    );
    assert_eq!(base["etc/localtime"].0, tar::EntryType::Symlink);
    assert_eq!(pg["usr/bin/pg_dump"].0, tar::EntryType::Symlink);
    assert_eq!(app["usr/local/bin/fp-api-server"].1, 0o755);
    for dir in [
        "etc/fp/jwt/",
        "etc/fp/admin/",
        "etc/fp/config/",
        "var/lib/fp/backups/",
    ] {
        assert_eq!(app[dir].0, tar::EntryType::Directory, "{dir}");
    }
    assert!(app.contains_key("usr/share/sbom/fp-api-server.spdx.json"));
    // Nothing but root and the non-root user owns anything.
    assert!(
        base.values()
            .chain(app.values())
            .all(|e| e.2 == 0 || e.2 == 65532)
    );

    let config: serde_json::Value = serde_json::from_slice(&c.config).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"][0],
        "/usr/local/bin/fp-api-server"
    );
    assert_eq!(config["config"]["WorkingDir"], "/home/nonroot");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    assert_eq!(config["created"], spec::rfc3339(f.epoch).unwrap());
    let manifest: serde_json::Value = serde_json::from_slice(&c.manifest).unwrap();
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.revision"],
        "0123abc"
    );
}

#[test]
fn the_ca_bundle_concatenates_the_certificates_in_order() {
    let tree = base_tree(true);
    match &tree.get("etc/ssl/certs/ca-certificates.crt").unwrap().kind {
        Kind::File(data) => {
            let mut expected = cert(1);
            expected.push(b'\n');
            expected.extend(cert(2));
            expected.push(b'\n');
            assert_eq!(data.as_slice(), expected.as_slice());
        }
        other => panic!("{other:?}"),
    }
    let mut empty = Tree::new();
    empty
        .insert(
            "usr/share/zoneinfo/Etc/UTC",
            Node::file(vec![], 0o644, "tzdata"),
        )
        .unwrap();
    assert!(
        finish_base(&mut empty)
            .unwrap_err()
            .to_string()
            .contains("no certificates")
    );
}

#[test]
fn links_to_missing_programs_are_refused() {
    let mut tree = Tree::new();
    let err = add_links(
        &mut tree,
        &[(
            "usr/bin/pg_dump".into(),
            "../lib/postgresql/15/bin/pg_dump".into(),
        )],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "usr/bin/pg_dump -> ../lib/postgresql/15/bin/pg_dump: no executable at usr/lib/postgresql/15/bin/pg_dump"
    );
}

#[test]
fn digests_that_differ_are_reported_by_image() {
    let built = |digest: &str| Built {
        spec: spec::images("15")[1].clone(),
        layout: PathBuf::from("/x"),
        manifest_digest: digest.into(),
        uncompressed: 1,
        compressed: 1,
        layers: vec![],
        sbom: PathBuf::from("/x.json"),
    };
    assert!(compare_digests(&[built("sha256:a")], &[built("sha256:a")]).is_ok());
    let err = compare_digests(&[built("sha256:a")], &[built("sha256:b")]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("footballprediction/fp-operator:"),
        "{err}"
    );
    let mut big = built("sha256:a");
    big.uncompressed = 60_000_001;
    assert!(
        check_sizes(&[big])
            .unwrap_err()
            .to_string()
            .contains("above its budget")
    );
}
