//! Debian packages of an image: the dependency closure of a few root packages (as apt resolves
//! it, minus what only maintainer scripts or interactive use need), downloaded by apt into the
//! cache (checked against apt's SHA-256), and their files read from `dpkg-deb --fsys-tarfile`
//! straight into the image tree, without unpacking anything onto this machine.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use super::fstree::{Kind, Node, Tree};

/// One package as apt's candidate describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Path in the archive, e.g. `pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb`.
    pub filename: String,
    pub sha256: String,
    /// Source package (and its version when it differs), for the SBOM.
    pub source: Option<String>,
}

impl DebPackage {
    /// The name `apt-get download` gives the .deb (the epoch's colon escaped): the cache key.
    pub fn file_name(&self) -> String {
        format!(
            "{}_{}_{}.deb",
            self.name,
            self.version.replace(':', "%3a"),
            self.architecture
        )
    }
}

/// Stanzas of `apt-cache show --no-all-versions`, one per package.
pub fn parse_show(text: &str) -> Vec<DebPackage> {
    text.split("\n\n")
        .filter_map(|stanza| {
            let field = |key: &str| {
                stanza.lines().find_map(|l| {
                    l.strip_prefix(key)
                        .and_then(|r| r.strip_prefix(':'))
                        .map(|v| v.trim().to_owned())
                })
            };
            Some(DebPackage {
                name: field("Package")?,
                version: field("Version")?,
                architecture: field("Architecture")?,
                filename: field("Filename")?,
                sha256: field("SHA256")?,
                source: field("Source"),
            })
        })
        .collect()
}

/// One alternative of a dependency: a package, or a virtual one with its providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    pub name: String,
    pub virtual_providers: Option<Vec<String>>,
}

/// `a | b | c`.
pub type Group = Vec<Alternative>;

/// `apt-cache depends` output: per package, its Depends and PreDepends as groups of
/// alternatives (`|Depends:` continues a group; a `<virtual>` is followed by its providers).
pub fn parse_depends(text: &str) -> BTreeMap<String, Vec<Group>> {
    let mut out: BTreeMap<String, Vec<Group>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut open_group = false;
    let strip_arch = |n: &str| n.split(':').next().unwrap_or(n).to_owned();
    for line in text.lines() {
        if !line.starts_with(' ') {
            let name = line.trim().to_owned();
            if !name.is_empty() {
                out.entry(name.clone()).or_default();
                current = Some(name);
            }
            open_group = false;
            continue;
        }
        let Some(pkg) = current.clone() else { continue };
        let groups = out.entry(pkg).or_default();
        if line.starts_with("    ") {
            // A provider of the virtual package on the line before.
            if let Some(Alternative {
                virtual_providers: Some(providers),
                ..
            }) = groups.last_mut().and_then(|g| g.last_mut())
            {
                providers.push(strip_arch(line.trim()));
            }
            continue;
        }
        let trimmed = line.trim_start();
        let (continues, rest) = match trimmed.strip_prefix('|') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let Some((kind, target)) = rest.split_once(": ") else {
            continue;
        };
        if kind != "Depends" && kind != "PreDepends" {
            continue;
        }
        let target = target.trim();
        let alt = match target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
            Some(v) => Alternative {
                name: strip_arch(v),
                virtual_providers: Some(Vec::new()),
            },
            None => Alternative {
                name: strip_arch(target),
                virtual_providers: None,
            },
        };
        if open_group {
            if let Some(g) = groups.last_mut() {
                g.push(alt);
            }
        } else {
            groups.push(vec![alt]);
        }
        open_group = continues;
    }
    out
}

/// The packages to install for `roots`: every Depends/PreDepends group is satisfied by a package
/// already chosen, else by its first alternative (a virtual one by its first provider); a group
/// naming an `excluded` package is deliberately left out. `depends` answers for a batch of
/// packages (one apt call per level of the graph).
pub fn closure(
    roots: &[String],
    excluded: &[&str],
    mut depends: impl FnMut(&[String]) -> anyhow::Result<BTreeMap<String, Vec<Group>>>,
) -> anyhow::Result<BTreeSet<String>> {
    let excluded: BTreeSet<&str> = excluded.iter().copied().collect();
    let mut chosen: BTreeSet<String> = roots.iter().cloned().collect();
    let mut frontier: Vec<String> = roots.to_vec();
    while !frontier.is_empty() {
        let deps = depends(&frontier)?;
        let mut next = Vec::new();
        for pkg in &frontier {
            let groups = deps
                .get(pkg)
                .with_context(|| format!("apt knows no package {pkg}"))?;
            for group in groups {
                let names: Vec<&str> = group
                    .iter()
                    .flat_map(|a| {
                        std::iter::once(a.name.as_str())
                            .chain(a.virtual_providers.iter().flatten().map(String::as_str))
                    })
                    .collect();
                if names
                    .iter()
                    .any(|n| excluded.contains(n) || chosen.contains(*n))
                {
                    continue;
                }
                let pick = group.iter().find_map(|a| match &a.virtual_providers {
                    None => Some(a.name.clone()),
                    Some(providers) => providers.first().cloned(),
                });
                let Some(pick) = pick else {
                    bail!("{pkg}: nothing provides {}", names.join(" | "));
                };
                chosen.insert(pick.clone());
                next.push(pick);
            }
        }
        frontier = next;
    }
    Ok(chosen)
}

fn apt_output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let out = crate::proc::stdout_of(program, &args)?;
    String::from_utf8(out).with_context(|| format!("{program} printed non-UTF-8"))
}

fn apt_cache_show(packages: &[String]) -> anyhow::Result<Vec<DebPackage>> {
    let mut args = vec!["show", "--no-all-versions"];
    args.extend(packages.iter().map(String::as_str));
    Ok(parse_show(&apt_output("apt-cache", &args)?))
}

/// The dependency graph below `roots` (`apt-cache depends --recurse`; one call, as each apt
/// call reads the whole package cache, seconds on a busy machine). apt's package lists are this
/// machine's state: on a fresh machine they are empty until `apt-get update` ran once, which
/// happens here when apt does not know a root.
pub fn depends_graph(roots: &[String]) -> anyhow::Result<BTreeMap<String, Vec<Group>>> {
    let mut args = vec![
        "depends",
        "--recurse",
        "--no-recommends",
        "--no-suggests",
        "--no-conflicts",
        "--no-breaks",
        "--no-replaces",
        "--no-enhances",
    ];
    args.extend(roots.iter().map(String::as_str));
    let known = |g: &BTreeMap<String, Vec<Group>>| roots.iter().all(|r| g.contains_key(r));
    match apt_output("apt-cache", &args).map(|t| parse_depends(&t)) {
        Ok(graph) if known(&graph) => return Ok(graph),
        _ => {}
    }
    eprintln!(
        "[images] apt does not know {} yet: apt-get update",
        roots.join(" ")
    );
    crate::steps::run(
        Command::new("apt-get")
            .args(["update", "-q"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let graph = parse_depends(&apt_output("apt-cache", &args)?);
    if !known(&graph) {
        bail!(
            "apt has no candidate for one of {} even after apt-get update",
            roots.join(" ")
        );
    }
    Ok(graph)
}

/// The package sets of several root sets from `graph`, with apt's candidate versions (one
/// `apt-cache show`). `files_only` packages are looked up without their dependencies.
pub fn resolve(
    graph: &BTreeMap<String, Vec<Group>>,
    root_sets: &[Vec<String>],
    excluded: &[&str],
    files_only: &[String],
) -> anyhow::Result<(Vec<Vec<DebPackage>>, Vec<DebPackage>)> {
    let lookup = |batch: &[String]| -> anyhow::Result<BTreeMap<String, Vec<Group>>> {
        Ok(batch
            .iter()
            .filter_map(|p| graph.get(p).map(|g| (p.clone(), g.clone())))
            .collect())
    };
    let sets: Vec<BTreeSet<String>> = root_sets
        .iter()
        .map(|roots| closure(roots, excluded, lookup))
        .collect::<anyhow::Result<_>>()?;
    let mut names: BTreeSet<String> = sets.iter().flatten().cloned().collect();
    names.extend(files_only.iter().cloned());
    let names: Vec<String> = names.into_iter().collect();
    let mut by_name: BTreeMap<String, DebPackage> = BTreeMap::new();
    for p in apt_cache_show(&names)? {
        by_name.entry(p.name.clone()).or_insert(p);
    }
    let get = |n: &String| {
        by_name
            .get(n)
            .cloned()
            .with_context(|| format!("apt-cache show printed nothing for {n}"))
    };
    let resolved = sets
        .iter()
        .map(|set| set.iter().map(get).collect::<anyhow::Result<Vec<_>>>())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let extra = files_only
        .iter()
        .map(get)
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((resolved, extra))
}

/// The major of the package `postgresql` depends on (`postgresql-15` -> "15"): the server
/// Debian gives this machine (the one the tests run), so the image's client tools match it.
pub fn major_from_postgresql_depends(deps: &BTreeMap<String, Vec<Group>>) -> Option<String> {
    deps.get("postgresql")?
        .iter()
        .flatten()
        .find_map(|a| {
            a.name
                .strip_prefix("postgresql-")
                .filter(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_digit()))
        })
        .map(str::to_owned)
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Downloads what the cache lacks (`apt-get download`, which uses this machine's apt sources)
/// into `cache` and returns each package's .deb, every one checked against apt's SHA-256.
pub fn download(packages: &[DebPackage], cache: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let valid = |p: &DebPackage| {
        let path = cache.join(p.file_name());
        path.is_file() && sha256_file(&path).is_ok_and(|h| h == p.sha256)
    };
    let missing: Vec<&DebPackage> = packages.iter().filter(|p| !valid(p)).collect();
    if !missing.is_empty() {
        eprintln!(
            "[images] downloading {} Debian packages into {}",
            missing.len(),
            cache.display()
        );
        let staging = cache.join("partial");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)?;
        let mut cmd = Command::new("apt-get");
        cmd.arg("download")
            .args(missing.iter().map(|p| format!("{}={}", p.name, p.version)))
            .current_dir(&staging)
            .env("DEBIAN_FRONTEND", "noninteractive");
        crate::steps::run(&mut cmd)?;
        for p in &missing {
            let from = staging.join(p.file_name());
            let to = cache.join(p.file_name());
            std::fs::rename(&from, &to)
                .with_context(|| format!("apt-get download left no {}", from.display()))?;
        }
        let _ = std::fs::remove_dir_all(&staging);
    }
    packages
        .iter()
        .map(|p| {
            let path = cache.join(p.file_name());
            let actual = sha256_file(&path)?;
            if actual != p.sha256 {
                bail!(
                    "{}: SHA-256 {actual} but apt expects {} (remove the file to fetch it again)",
                    path.display(),
                    p.sha256
                );
            }
            Ok(path)
        })
        .collect()
}

/// Paths of a package that an image does not need: documentation (but each package's copyright
/// file, which its licence asks to keep), manuals, translations, lintian and bug-report hooks.
pub fn dropped(path: &str) -> bool {
    const DROP: [&str; 9] = [
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "usr/share/lintian",
        "usr/share/bug",
        "usr/share/doc-base",
        "usr/share/menu",
        "usr/share/gdb",
        "usr/share/gcc",
    ];
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if let Some(rest) = path.strip_prefix("usr/share/doc/") {
        // usr/share/doc/<pkg>/copyright stays (and its directory).
        let mut parts = rest.split('/');
        let _pkg = parts.next();
        return !matches!(parts.next(), None | Some("copyright")) || parts.next().is_some();
    }
    DROP.iter().any(|p| under(p))
}

/// The files of one .deb's data archive (a tar stream) as tree nodes, owned by root, minus the
/// [`dropped`] ones; `keep` (when given) limits a package to those paths.
pub fn read_data_tar(
    data: &[u8],
    origin: &str,
    keep: Option<&[&str]>,
) -> anyhow::Result<Vec<(String, Node)>> {
    let mut archive = tar::Archive::new(data);
    let mut out: Vec<(String, Node)> = Vec::new();
    let mut contents: BTreeMap<String, Arc<Vec<u8>>> = BTreeMap::new();
    for entry in archive.entries().context("reading the data archive")? {
        let mut entry = entry.context("reading a data archive entry")?;
        let raw = entry.path().context("entry path")?.display().to_string();
        let path = super::fstree::normalize(&raw)?;
        if path.is_empty() || dropped(&path) {
            continue;
        }
        if let Some(keep) = keep
            && !keep.iter().any(|k| path == *k)
        {
            continue;
        }
        let header = entry.header();
        let mode = header.mode().context("entry mode")? & 0o7777;
        let kind = match header.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(
                entry
                    .link_name()
                    .context("symlink target")?
                    .with_context(|| format!("{path}: symlink without target"))?
                    .display()
                    .to_string(),
            ),
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .context("hard link target")?
                    .with_context(|| format!("{path}: hard link without target"))?
                    .display()
                    .to_string();
                let target = super::fstree::normalize(&target)?;
                let data = contents
                    .get(&target)
                    .with_context(|| format!("{path}: hard link to {target}, not read before"))?;
                Kind::File(data.clone())
            }
            tar::EntryType::Regular => {
                let mut bytes = Vec::with_capacity(usize::try_from(header.size()?).unwrap_or(0));
                std::io::Read::read_to_end(&mut entry, &mut bytes)
                    .with_context(|| format!("reading {path}"))?;
                let data = Arc::new(bytes);
                contents.insert(path.clone(), data.clone());
                Kind::File(data)
            }
            other => bail!("{origin}: {path} is a {other:?}, which images do not carry"),
        };
        out.push((path, Node::owned(kind, mode, 0, origin)));
    }
    Ok(out)
}

/// `dpkg-deb --fsys-tarfile`: the package's files as one uncompressed tar stream.
pub fn fsys_tarfile(deb: &Path) -> anyhow::Result<Vec<u8>> {
    crate::proc::stdout_of("dpkg-deb", &["--fsys-tarfile".as_ref(), deb.as_os_str()])
}

/// `dpkg-deb --field`: the control stanza, for the image's `var/lib/dpkg/status.d/<name>`
/// (where scanners look for packages in images without a dpkg database).
pub fn control(deb: &Path) -> anyhow::Result<String> {
    let out = crate::proc::stdout_of("dpkg-deb", &["--field".as_ref(), deb.as_os_str()])?;
    String::from_utf8(out).context("control fields are not UTF-8")
}

/// The control stanza as an installed status entry (dpkg's format: `Status` after `Package`).
pub fn status_entry(control: &str) -> String {
    let mut out = String::new();
    for line in control.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("Package:") {
            out.push_str("Status: install ok installed\n");
        }
    }
    out
}

/// Adds a package's files to `tree`.
pub fn add_package(
    tree: &mut Tree,
    package: &DebPackage,
    deb: &Path,
    keep: Option<&[&str]>,
) -> anyhow::Result<()> {
    let data = fsys_tarfile(deb)?;
    let origin = format!("{} {}", package.name, package.version);
    for (path, node) in read_data_tar(&data, &origin, keep)? {
        tree.insert(&path, node)?;
    }
    let status = status_entry(&control(deb)?);
    tree.insert(
        &format!("var/lib/dpkg/status.d/{}", package.name),
        Node::file(status.into_bytes(), 0o644, &origin),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPENDS: &str = "\
postgresql-client-15
  Depends: libpq5
  Depends: postgresql-client-common
  Depends: libc6
libpq5
  Depends: libc6
  Depends: libssl3
ca-certificates
  Depends: openssl
 |Depends: debconf
  Depends: <debconf-2.0>
    cdebconf
    debconf
readline-common
 |Depends: dpkg
  Depends: install-info
libc6
  Depends: libgcc-s1
libgcc-s1
  PreDepends: gcc-12-base
  Depends: libc6
libssl3
  Depends: libc6
gcc-12-base
perl
  Depends: <perl-base:any>
";

    #[test]
    fn parses_groups_alternatives_and_virtual_providers() {
        let deps = parse_depends(DEPENDS);
        assert_eq!(deps["libpq5"].len(), 2);
        let ca = &deps["ca-certificates"];
        assert_eq!(ca.len(), 2);
        assert_eq!(ca[1].len(), 2);
        assert_eq!(ca[1][0].name, "debconf");
        assert_eq!(ca[1][1].name, "debconf-2.0");
        assert_eq!(
            ca[1][1].virtual_providers.as_deref(),
            Some(&["cdebconf".to_owned(), "debconf".to_owned()][..])
        );
        assert_eq!(deps["libgcc-s1"][0][0].name, "gcc-12-base");
        assert!(deps["gcc-12-base"].is_empty());
        assert_eq!(deps["perl"][0][0].name, "perl-base");
    }

    fn lookup(
        text: &str,
    ) -> impl FnMut(&[String]) -> anyhow::Result<BTreeMap<String, Vec<Group>>> + '_ {
        let all = parse_depends(text);
        move |batch| {
            Ok(batch
                .iter()
                .filter_map(|p| all.get(p).map(|g| (p.clone(), g.clone())))
                .collect())
        }
    }

    #[test]
    fn closure_follows_depends_and_leaves_out_the_excluded() {
        let got = closure(
            &["postgresql-client-15".into(), "ca-certificates".into()],
            &["postgresql-client-common", "debconf", "openssl"],
            lookup(DEPENDS),
        )
        .unwrap();
        let got: Vec<&str> = got.iter().map(String::as_str).collect();
        assert_eq!(
            got,
            [
                "ca-certificates",
                "gcc-12-base",
                "libc6",
                "libgcc-s1",
                "libpq5",
                "libssl3",
                "postgresql-client-15"
            ]
        );
    }

    #[test]
    fn closure_picks_the_first_alternative_and_fails_on_unknown_packages() {
        let got = closure(&["readline-common".into()], &[], |b: &[String]| {
            let mut all = parse_depends(DEPENDS);
            all.insert("dpkg".into(), vec![]);
            Ok(b.iter()
                .filter_map(|p| all.get(p).map(|g| (p.clone(), g.clone())))
                .collect())
        })
        .unwrap();
        assert!(
            got.contains("dpkg") && !got.contains("install-info"),
            "{got:?}"
        );
        let err = closure(&["nonexistent".into()], &[], lookup(DEPENDS)).unwrap_err();
        assert_eq!(err.to_string(), "apt knows no package nonexistent");
    }

    #[test]
    fn postgresql_major_from_the_metapackage() {
        let deps = parse_depends("postgresql\n  Depends: postgresql-15\n");
        assert_eq!(major_from_postgresql_depends(&deps).as_deref(), Some("15"));
        let none = parse_depends("postgresql\n  Depends: postgresql-common\n");
        assert_eq!(major_from_postgresql_depends(&none), None);
    }

    #[test]
    fn parses_apt_cache_show() {
        let text = "Package: libc6\nSource: glibc\nVersion: 2.36-9+deb12u14\nArchitecture: amd64\n\
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb\nSHA256: ab12\nDescription: GNU C Library\n\n\
Package: tzdata\nVersion: 2026f-0+deb12u1\nArchitecture: all\nFilename: pool/main/t/tzdata/tzdata_2026f-0+deb12u1_all.deb\nSHA256: cd34\n\n";
        let pkgs = parse_show(text);
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].name, "libc6");
        assert_eq!(pkgs[0].source.as_deref(), Some("glibc"));
        assert_eq!(pkgs[0].file_name(), "libc6_2.36-9+deb12u14_amd64.deb");
        let gmp = DebPackage {
            version: "2:6.2.1+dfsg1-1.1".into(),
            name: "libgmp10".into(),
            ..pkgs[0].clone()
        };
        assert_eq!(gmp.file_name(), "libgmp10_2%3a6.2.1+dfsg1-1.1_amd64.deb");
        assert_eq!(pkgs[1].architecture, "all");
        assert_eq!(pkgs[1].source, None);
    }

    #[test]
    fn drops_docs_but_keeps_copyright() {
        assert!(dropped("usr/share/man/man1/psql.1.gz"));
        assert!(dropped("usr/share/man"));
        assert!(dropped("usr/share/locale/de/LC_MESSAGES/psql-15.mo"));
        assert!(dropped("usr/share/doc/libc6/changelog.Debian.gz"));
        assert!(dropped("usr/share/doc/libc6/examples/x"));
        assert!(!dropped("usr/share/doc/libc6/copyright"));
        assert!(!dropped("usr/share/doc/libc6"));
        assert!(!dropped("usr/share/zoneinfo/UTC"));
        assert!(!dropped("usr/share/manifest"));
        assert!(!dropped("usr/lib/postgresql/15/bin/pg_dump"));
    }

    fn deb_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(0o755);
            h.set_uid(1000);
            h.set_size(data.len() as u64);
            match link {
                Some(l) => b.append_link(&mut h, path, l).unwrap(),
                None => b.append_data(&mut h, path, data).unwrap(),
            }
        };
        add("./", tar::EntryType::Directory, b"", None);
        add("./usr/bin/", tar::EntryType::Directory, b"", None);
        add("./usr/bin/a", tar::EntryType::Regular, b"binary", None);
        add(
            "./usr/bin/b",
            tar::EntryType::Link,
            b"",
            Some("./usr/bin/a"),
        );
        add("./usr/bin/c", tar::EntryType::Symlink, b"", Some("a"));
        add(
            "./usr/share/man/man1/a.1.gz",
            tar::EntryType::Regular,
            b"m",
            None,
        );
        b.into_inner().unwrap()
    }

    #[test]
    fn reads_a_data_archive_into_root_owned_nodes() {
        let nodes = read_data_tar(&deb_tar(), "pkg 1", None).unwrap();
        let paths: Vec<&str> = nodes.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["usr/bin", "usr/bin/a", "usr/bin/b", "usr/bin/c"]);
        assert!(nodes.iter().all(|(_, n)| n.uid == 0 && n.gid == 0));
        // The hard link shares the content of its target.
        match (&nodes[1].1.kind, &nodes[2].1.kind) {
            (Kind::File(a), Kind::File(b)) => assert!(Arc::ptr_eq(a, b)),
            other => panic!("{other:?}"),
        }
        assert_eq!(nodes[3].1.kind, Kind::Symlink("a".into()));
        let only = read_data_tar(&deb_tar(), "pkg 1", Some(&["usr/bin/c"])).unwrap();
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn status_entry_marks_the_package_installed() {
        let s = status_entry("Package: libc6\nVersion: 2.36\n");
        assert_eq!(
            s,
            "Package: libc6\nStatus: install ok installed\nVersion: 2.36\n"
        );
    }
}
