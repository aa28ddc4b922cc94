//! What each image is: its name (the one set of names the chart and the operator use too), its
//! Debian packages, its binary, its directories and its run-time settings. Pure data.
use std::collections::BTreeMap;

/// Registry namespace of every image; `footballprediction/<name>` is the repository.
pub const NAMESPACE: &str = "footballprediction";
/// Where the source lives (the chart's `home`; a test checks they agree).
pub const SOURCE_URL: &str = "https://github.com/footballprediction/footballprediction";
pub const LICENSE: &str = "Apache-2.0";
pub const VENDOR: &str = "FootballPrediction";
/// The non-root user and group every image runs as (the pods' `runAsUser`/`runAsGroup`).
pub const RUN_AS: u64 = 65532;
pub const HOME: &str = "/home/nonroot";
/// The Debian release the packages come from (this machine's apt sources), for the SBOM.
pub const DEBIAN_RELEASE: &str = "12";
pub const ARCHITECTURE: &str = "amd64";

/// The image tag `cargo xtask images` produces: the workspace version.
pub fn tag() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Packages every image starts from: the C library the binaries link, CA certificates, zone data.
pub const BASE_PACKAGES: [&str; 4] = ["libc6", "libgcc-s1", "ca-certificates", "tzdata"];

/// Packages whose selected files only are taken (not their dependencies): os-release, so that
/// scanners know the distribution of the packages in `var/lib/dpkg/status.d`.
pub const FILES_ONLY: [(&str, &[&str]); 1] =
    [("base-files", &["usr/lib/os-release", "etc/os-release"])];

/// Dependencies left out on purpose, with why. Installing them is the job of maintainer scripts
/// (which never run: the image is a set of files) or of interactive use.
pub const EXCLUDED: [(&str, &str); 8] = [
    ("debconf", "configuration questions of maintainer scripts"),
    ("cdebconf", "configuration questions of maintainer scripts"),
    (
        "openssl",
        "ca-certificates' postinst builds the bundle with it; xtask builds it",
    ),
    ("dpkg", "a package manager"),
    ("install-info", "maintainer scripts of info manuals"),
    (
        "postgresql-client-common",
        "Perl wrappers choosing a client version; the image links the one version directly",
    ),
    (
        "sensible-utils",
        "shell scripts choosing a pager or an editor for interactive psql",
    ),
    ("readline-common", "inputrc for interactive line editing"),
];

pub fn excluded_names() -> Vec<&'static str> {
    EXCLUDED.iter().map(|(n, _)| *n).collect()
}

/// Which image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    ApiServer,
    Operator,
}

/// A directory the image provides (a mount point of the pods, or a home).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dir {
    pub path: &'static str,
    pub mode: u32,
    pub owner: u64,
}

const fn root_dir(path: &'static str) -> Dir {
    Dir {
        path,
        mode: 0o755,
        owner: 0,
    }
}

/// One image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub which: Which,
    /// Repository name below [`NAMESPACE`], also the binary's and the cargo package's name.
    pub name: &'static str,
    pub cargo_package: &'static str,
    pub description: &'static str,
    /// Debian packages beyond [`BASE_PACKAGES`] (their own layer).
    pub extra_packages: Vec<String>,
    /// Programs of the extra packages linked into `/usr/bin` (name, target below the package).
    pub extra_links: Vec<(String, String)>,
    /// Mount points of the pods the operator and the chart build.
    pub dirs: Vec<Dir>,
    pub port: u16,
    /// The most the image may hold uncompressed (release builds are refused above it).
    pub max_bytes: u64,
}

impl ImageSpec {
    /// `footballprediction/fp-api-server`
    pub fn repository(&self) -> String {
        format!("{NAMESPACE}/{}", self.name)
    }
    /// `footballprediction/fp-api-server:0.1.0`
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository(), tag())
    }
    pub fn binary_path(&self) -> String {
        format!("/usr/local/bin/{}", self.name)
    }
}

/// Where the API pods mount things (operator/src/resources/common.rs `contract`).
pub const API_DIRS: [Dir; 6] = [
    root_dir("/etc/fp"),
    root_dir("/etc/fp/jwt"),
    root_dir("/etc/fp/admin"),
    root_dir("/etc/fp/config"),
    root_dir("/var/lib/fp"),
    root_dir("/var/lib/fp/backups"),
];

/// The client programs the API's backup, restore and verify commands run (and psql).
pub const PG_PROGRAMS: [&str; 3] = ["pg_dump", "pg_restore", "psql"];

/// Both images; `pg_major` is the PostgreSQL major whose client tools the API image carries.
pub fn images(pg_major: &str) -> Vec<ImageSpec> {
    vec![
        ImageSpec {
            which: Which::ApiServer,
            name: "fp-api-server",
            cargo_package: "fp-api-server",
            description: "FootballPrediction API server (serve, migrate, backup, restore, verify)",
            extra_packages: vec![format!("postgresql-client-{pg_major}")],
            extra_links: PG_PROGRAMS
                .iter()
                .map(|p| {
                    (
                        format!("usr/bin/{p}"),
                        format!("../lib/postgresql/{pg_major}/bin/{p}"),
                    )
                })
                .collect(),
            dirs: API_DIRS.to_vec(),
            port: 8080,
            max_bytes: 120_000_000,
        },
        ImageSpec {
            which: Which::Operator,
            name: "fp-operator",
            cargo_package: "fp-operator",
            description: "FootballPrediction Kubernetes operator",
            extra_packages: Vec::new(),
            extra_links: Vec::new(),
            dirs: Vec::new(),
            port: 8081,
            max_bytes: 60_000_000,
        },
    ]
}

/// The OCI annotations (also the config's labels).
pub fn annotations(spec: &ImageSpec, revision: &str, created: &str) -> BTreeMap<String, String> {
    let key = |k: &str| format!("org.opencontainers.image.{k}");
    BTreeMap::from([
        (key("title"), spec.name.to_owned()),
        (key("description"), spec.description.to_owned()),
        (key("source"), SOURCE_URL.to_owned()),
        (key("url"), SOURCE_URL.to_owned()),
        (key("version"), tag().to_owned()),
        (key("revision"), revision.to_owned()),
        (key("created"), created.to_owned()),
        (key("licenses"), LICENSE.to_owned()),
        (key("vendor"), VENDOR.to_owned()),
    ])
}

/// The environment of every process in the image.
pub fn env() -> Vec<String> {
    vec![
        "PATH=/usr/local/bin:/usr/bin:/bin".to_owned(),
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt".to_owned(),
        format!("HOME={HOME}"),
    ]
}

/// `SOURCE_DATE_EPOCH` as RFC 3339 in UTC.
pub fn rfc3339(epoch: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(epoch, 0).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// `/etc/passwd`, `/etc/group` and `/etc/nsswitch.conf`: root, nobody and the user the pods
/// run as (libpq looks the current user up by uid).
pub fn identity_files() -> [(&'static str, String); 3] {
    [
        (
            "etc/passwd",
            format!(
                "root:x:0:0:root:/root:/sbin/nologin\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
                 nonroot:x:{RUN_AS}:{RUN_AS}:nonroot:{HOME}:/sbin/nologin\n"
            ),
        ),
        (
            "etc/group",
            format!("root:x:0:\nnobody:x:65534:\nnonroot:x:{RUN_AS}:\n"),
        ),
        (
            "etc/nsswitch.conf",
            "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n\
             protocols: files\nservices: files\n"
                .to_owned(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(rel: &str) -> String {
        std::fs::read_to_string(crate::paths::workspace_root().join(rel)).unwrap()
    }

    fn yaml_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
        text.lines().find_map(|l| {
            l.trim()
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix(':'))
                .map(|v| v.trim().trim_matches('"'))
        })
    }

    /// ENGINEERING §6: the chart's default image, the operator's default API image and what
    /// `cargo xtask images` builds are one set of names.
    #[test]
    fn chart_and_operator_name_the_images_this_command_builds() {
        let images = images("15");
        let api = images.iter().find(|i| i.which == Which::ApiServer).unwrap();
        let operator = images.iter().find(|i| i.which == Which::Operator).unwrap();

        let values = read("charts/fp-operator/values.yaml");
        assert_eq!(
            yaml_field(&values, "repository"),
            Some(operator.repository().as_str()),
            "charts/fp-operator/values.yaml image.repository"
        );
        // An empty tag means the chart's appVersion, which must be this build's tag.
        assert_eq!(yaml_field(&values, "tag"), Some(""));
        let chart = read("charts/fp-operator/Chart.yaml");
        assert_eq!(
            yaml_field(&chart, "appVersion"),
            Some(tag()),
            "Chart.yaml appVersion"
        );
        assert_eq!(
            yaml_field(&chart, "version"),
            Some(tag()),
            "Chart.yaml version"
        );
        assert_eq!(
            yaml_field(&chart, "home"),
            Some(SOURCE_URL),
            "Chart.yaml home"
        );

        let crd = read("operator/src/crd/mod.rs");
        let constant = |name: &str| {
            crd.lines()
                .find_map(|l| {
                    l.strip_prefix(&format!("pub const {name}: &str = \""))
                        .and_then(|r| r.strip_suffix("\";"))
                })
                .unwrap_or_else(|| panic!("{name} not found in operator/src/crd/mod.rs"))
                .to_owned()
        };
        assert_eq!(constant("DEFAULT_API_IMAGE"), api.repository());
        assert_eq!(constant("DEFAULT_OPERATOR_IMAGE"), operator.repository());
        // The operator's default API tag is the release the FootballPrediction names
        // (spec.version), so every API image tag is a workspace version like this one.
        assert!(
            tag().split('.').all(|p| p.parse::<u32>().is_ok()),
            "{}",
            tag()
        );
    }

    #[test]
    fn api_dirs_are_the_operators_mount_points() {
        let common = read("operator/src/resources/common.rs");
        for key in ["JWT_DIR", "ADMIN_DIR", "CONFIG_DIR", "BACKUP_DIR"] {
            let value = common
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix(&format!("pub const {key}: &str = \""))
                        .and_then(|r| r.strip_suffix("\";"))
                })
                .unwrap_or_else(|| panic!("{key} missing from the contract"));
            assert!(
                API_DIRS.iter().any(|d| d.path == value),
                "the API image lacks the mount point {value} ({key})"
            );
        }
        assert!(common.contains(&format!("pub const RUN_AS: i64 = {RUN_AS};")));
        let chart = read("charts/fp-operator/templates/deployment.yaml");
        assert!(chart.contains(&format!("runAsUser: {RUN_AS}")));
        assert!(chart.contains(&format!("runAsGroup: {RUN_AS}")));
    }

    #[test]
    fn api_image_links_each_client_program_of_the_major() {
        let api = &images("15")[0];
        assert_eq!(api.extra_packages, ["postgresql-client-15"]);
        assert_eq!(
            api.extra_links[0],
            (
                "usr/bin/pg_dump".into(),
                "../lib/postgresql/15/bin/pg_dump".into()
            )
        );
        assert_eq!(
            api.reference(),
            format!("footballprediction/fp-api-server:{}", tag())
        );
        assert_eq!(api.binary_path(), "/usr/local/bin/fp-api-server");
    }

    #[test]
    fn annotations_carry_source_version_revision_and_time() {
        let api = &images("15")[0];
        let a = annotations(api, "abc123", "2026-11-29T10:00:00Z");
        assert_eq!(a["org.opencontainers.image.source"], SOURCE_URL);
        assert_eq!(a["org.opencontainers.image.version"], tag());
        assert_eq!(a["org.opencontainers.image.revision"], "abc123");
        assert_eq!(
            a["org.opencontainers.image.created"],
            "2026-11-29T10:00:00Z"
        );
        assert_eq!(
            rfc3339(1_764_410_400).as_deref(),
            Some("2025-11-29T10:00:00Z")
        );
    }

    #[test]
    fn nonroot_user_is_in_passwd_and_group() {
        let files = identity_files();
        assert!(
            files[0]
                .1
                .contains("nonroot:x:65532:65532:nonroot:/home/nonroot:")
        );
        assert!(files[1].1.contains("nonroot:x:65532:"));
    }
}
