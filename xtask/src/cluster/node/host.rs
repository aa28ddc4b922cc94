//! What the real node does to the host outside its state directory, and how `down` undoes it:
//! the bridge, the guard chains, kubelet's and the bridge plugin's sysctls, cgroups, mounts
//! below the state directory, the network namespaces (mounted there), kube-proxy's and the CNI
//! plugins' iptables chains, and the processes left in the node's cgroups.
//!
//! The parsers are pure; everything else shells out to `ip`, `iptables`, `umount`.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::config::{CNI_BIN_DIR, CNI_PLUGINS, GATEWAY, GATEWAY_PREFIX, NODE_RANGE, Names, RUNC};

/// Sysctls kubelet sets at start (`setupKernelTunables`, there is no "leave alone" mode) and the
/// bridge plugin sets for a gateway bridge; `up` records their values first and `down` puts
/// them back.
pub const SYSCTLS: [&str; 7] = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
];

/// Debian packages the node needs, and the file each provides.
pub const PACKAGES: [(&str, &str); 4] = [
    ("runc", RUNC),
    ("containernetworking-plugins", "/usr/lib/cni/bridge"),
    ("iptables", "/usr/sbin/iptables"),
    ("conntrack", "/usr/sbin/conntrack"),
];

fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let out = crate::proc::stdout_of(program, &args)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// What preflight looks at, gathered from the host (or made up in tests).
pub struct HostFacts {
    pub root: bool,
    /// /proc/filesystems
    pub filesystems: String,
    /// /proc/mounts
    pub mounts: String,
    pub exists: Box<dyn Fn(&Path) -> bool>,
    pub on_path: Box<dyn Fn(&str) -> bool>,
}

impl HostFacts {
    pub fn of_this_machine() -> Self {
        Self {
            root: is_root(),
            filesystems: std::fs::read_to_string("/proc/filesystems").unwrap_or_default(),
            mounts: std::fs::read_to_string("/proc/mounts").unwrap_or_default(),
            exists: Box::new(|p| p.exists()),
            on_path: Box::new(|t| which(t).is_some()),
        }
    }
}

/// One line per missing kernel feature or binary, each naming how to get it.
pub fn preflight_problems(host: &HostFacts) -> Vec<String> {
    let mut problems = Vec::new();
    if !host.root {
        problems.push(
            "the real node needs root (network namespaces, bridge, iptables, cgroups, mounts): run as root".into(),
        );
    }
    if !host
        .filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        problems.push("kernel feature overlayfs missing (/proc/filesystems has no overlay): `modprobe overlay` (CONFIG_OVERLAY_FS)".into());
    }
    for (path, feature, how) in [
        (
            "/proc/sys/net/bridge/bridge-nf-call-iptables",
            "br_netfilter",
            "`modprobe br_netfilter`",
        ),
        (
            "/proc/net/nf_conntrack",
            "conntrack",
            "`modprobe nf_conntrack`",
        ),
        (
            "/proc/self/ns/net",
            "network namespaces",
            "a kernel with CONFIG_NET_NS",
        ),
    ] {
        if !(host.exists)(Path::new(path)) {
            problems.push(format!(
                "kernel feature {feature} missing ({path} does not exist): {how}"
            ));
        }
    }
    let hierarchies = cgroup_v1_controllers(&host.mounts);
    for controller in [
        "cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer",
    ] {
        if !hierarchies.contains(controller) {
            problems.push(format!(
                "cgroup v1 controller {controller} is not mounted (kubelet with cgroupfs needs it): `mount -t cgroup -o {controller} cgroup /sys/fs/cgroup/{controller}`"
            ));
        }
    }
    for (package, file) in PACKAGES {
        if !(host.exists)(Path::new(file)) {
            problems.push(format!("{file} missing: `apt-get install {package}`"));
        }
    }
    for plugin in CNI_PLUGINS {
        let file = Path::new(CNI_BIN_DIR).join(plugin);
        if !(host.exists)(&file) {
            problems.push(format!(
                "CNI plugin {} missing: `apt-get install containernetworking-plugins`",
                file.display()
            ));
        }
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("umount", "mount"),
        ("tar", "tar"),
        ("iptables-save", "iptables"),
        ("ip6tables-save", "iptables"),
    ] {
        if !(host.on_path)(tool) {
            problems.push(format!(
                "`{tool}` not found on PATH: `apt-get install {package}`"
            ));
        }
    }
    problems
}

pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Controllers of the mounted cgroup v1 hierarchies (`cgroup` entries of /proc/mounts).
pub fn cgroup_v1_controllers(mounts: &str) -> BTreeSet<String> {
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup")).then(|| f.get(3).copied())?
        })
        .flat_map(|opts| opts.split(','))
        .map(str::to_string)
        .collect()
}

/// Mount points of every cgroup hierarchy (v1 and the hybrid v2 one).
pub fn cgroup_mounts(mounts: &str) -> Vec<PathBuf> {
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            matches!(f.get(2), Some(&"cgroup") | Some(&"cgroup2"))
                .then(|| f.get(1).map(|p| PathBuf::from(unescape_mount(p))))?
        })
        .collect()
}

/// /proc/mounts escapes space, tab, newline and backslash as octal.
pub fn unescape_mount(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let digits: String = chars.clone().take(3).collect();
            if digits.len() == 3
                && let Ok(v) = u8::from_str_radix(&digits, 8)
            {
                out.push(char::from(v));
                for _ in 0..3 {
                    chars.next();
                }
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Mount points at or below `dir`, deepest first (the order to unmount them in).
pub fn mounts_below(mounts: &str, dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|p| PathBuf::from(unescape_mount(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

// ---- sysctls ----

fn sysctl_path(name: &str) -> PathBuf {
    Path::new("/proc/sys").join(name)
}

pub fn read_sysctl(name: &str) -> Option<String> {
    std::fs::read_to_string(sysctl_path(name))
        .ok()
        .map(|s| s.trim().to_string())
}

/// `name=value` lines.
pub fn render_sysctls(values: &[(String, String)]) -> String {
    values.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

pub fn parse_sysctls(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| SYSCTLS.contains(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn snapshot_sysctls() -> Vec<(String, String)> {
    SYSCTLS
        .iter()
        .filter_map(|k| read_sysctl(k).map(|v| (k.to_string(), v)))
        .collect()
}

/// Writes back the recorded values that changed; returns a line per restored sysctl.
pub fn restore_sysctls(values: &[(String, String)]) -> Vec<String> {
    let mut report = Vec::new();
    for (name, old) in values {
        match read_sysctl(name) {
            Some(now) if now != *old => {
                let result = std::fs::write(sysctl_path(name), old);
                report.push(match result {
                    Ok(()) => format!("sysctl {name}: {now} -> {old}"),
                    Err(e) => format!("sysctl {name}: could not restore {old}: {e}"),
                });
            }
            _ => {}
        }
    }
    report
}

// ---- bridge and guard chains ----

pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// An address of the node's range already on some interface means another real node runs on
/// this machine (kube-proxy's KUBE-* chains are machine-wide: one node per machine).
pub fn gateway_in_use() -> anyhow::Result<Option<String>> {
    let out = run("ip", &["-o", "-4", "addr", "show", "to", GATEWAY])?;
    Ok(out
        .split_whitespace()
        .nth(1)
        .map(|dev| dev.trim_end_matches(':').to_string()))
}

/// The bridge with the gateway address, created before containerd so kubelet can listen on it
/// and report it as the node's address; the CNI bridge plugin adopts it.
pub fn create_bridge(names: &Names) -> anyhow::Result<()> {
    run(
        "ip",
        &["link", "add", "name", &names.bridge, "type", "bridge"],
    )?;
    run(
        "ip",
        &[
            "addr",
            "add",
            &format!("{GATEWAY}/{GATEWAY_PREFIX}"),
            "dev",
            &names.bridge,
        ],
    )?;
    run("ip", &["link", "set", &names.bridge, "up"])?;
    Ok(())
}

pub fn fwd_chain(names: &Names) -> String {
    format!("{}-FWD", names.guard_chain)
}

pub fn in_chain(names: &Names) -> String {
    format!("{}-IN", names.guard_chain)
}

/// The guard rules: nothing is forwarded between the bridge and anything outside
/// 198.18.0.0/15, and the node's addresses only answer the bridge and the host itself.
pub fn guard_rules(names: &Names) -> Vec<(String, Vec<String>)> {
    let br = names.bridge.as_str();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        (
            fwd_chain(names),
            s(&["-i", br, "!", "-d", NODE_RANGE, "-j", "DROP"]),
        ),
        (
            fwd_chain(names),
            s(&["-o", br, "!", "-s", NODE_RANGE, "-j", "DROP"]),
        ),
        (
            fwd_chain(names),
            s(&["-d", NODE_RANGE, "!", "-i", br, "-j", "DROP"]),
        ),
        // The host reaches its own addresses over lo.
        (in_chain(names), s(&["-i", "lo", "-j", "RETURN"])),
        (
            in_chain(names),
            s(&["-d", NODE_RANGE, "!", "-i", br, "-j", "DROP"]),
        ),
    ]
}

pub fn install_guard(names: &Names) -> anyhow::Result<()> {
    for chain in [fwd_chain(names), in_chain(names)] {
        run("iptables", &["-w", "-N", &chain])?;
    }
    for (chain, rule) in guard_rules(names) {
        let mut args = vec!["-w".to_string(), "-A".into(), chain];
        args.extend(rule);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("iptables", &args)?;
    }
    run(
        "iptables",
        &["-w", "-I", "FORWARD", "1", "-j", &fwd_chain(names)],
    )?;
    run(
        "iptables",
        &["-w", "-I", "INPUT", "1", "-j", &in_chain(names)],
    )?;
    Ok(())
}

/// `iptables-save` and `ip6tables-save` output without counters and comments: the lines that
/// say which chains and rules exist.
pub fn iptables_state() -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for (tool, family) in [("iptables-save", "4"), ("ip6tables-save", "6")] {
        let text = run(tool, &[]).unwrap_or_default();
        lines.extend(normalize_iptables_save(&text, family));
    }
    lines
}

const BUILTIN_CHAINS: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// `<family> <table> <chain or rule>` per user-defined chain and per rule.
pub fn normalize_iptables_save(text: &str, family: &str) -> Vec<String> {
    let mut table = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_string();
        } else if let Some(decl) = line.strip_prefix(':') {
            let chain = decl.split_whitespace().next().unwrap_or_default();
            // Built-in chains appear with their table (iptables-nft creates the table on first
            // use and cannot delete it); empty, they change nothing. Their rules still count.
            if !BUILTIN_CHAINS.contains(&chain) {
                out.push(format!("{family} {table} :{chain}"));
            }
        } else if line.starts_with("-A ") {
            out.push(format!("{family} {table} {line}"));
        }
    }
    out
}

/// Chains (family, table, name) in `now` that were not in `before` and that the node's
/// components make: kube-proxy's and kubelet's KUBE-*, the CNI plugins' CNI-*, our FPN-*.
pub fn new_node_chains(
    before: &BTreeSet<String>,
    now: &BTreeSet<String>,
) -> Vec<(String, String, String)> {
    now.difference(before)
        .filter_map(|l| {
            let mut f = l.splitn(3, ' ');
            let (family, table, rest) = (f.next()?, f.next()?, f.next()?);
            let chain = rest.strip_prefix(':')?;
            ["KUBE-", "CNI-", "FPN-"]
                .iter()
                .any(|p| chain.starts_with(p))
                .then(|| (family.to_string(), table.to_string(), chain.to_string()))
        })
        .collect()
}

/// Removes every rule that jumps to `chain` in its table, then flushes and deletes it.
pub fn delete_chain(family: &str, table: &str, chain: &str) -> anyhow::Result<()> {
    let (save, tool) = if family == "6" {
        ("ip6tables-save", "ip6tables")
    } else {
        ("iptables-save", "iptables")
    };
    let text = run(save, &["-t", table])?;
    for line in text.lines() {
        let Some(rule) = line.strip_prefix("-A ") else {
            continue;
        };
        let words: Vec<&str> = rule.split_whitespace().collect();
        let jumps = words
            .windows(2)
            .any(|w| (w[0] == "-j" || w[0] == "-g") && w[1] == chain);
        let owner = words.first().copied().unwrap_or_default();
        if jumps && owner != chain {
            // Re-issue the rule as a delete; iptables-save quotes arguments with spaces
            // (comments), which a plain split cannot keep together, so delete by number.
            if let Some(n) = rule_number(&text, owner, line) {
                run(tool, &["-w", "-t", table, "-D", owner, &n.to_string()])?;
                return delete_chain(family, table, chain);
            }
        }
    }
    run(tool, &["-w", "-t", table, "-F", chain])?;
    run(tool, &["-w", "-t", table, "-X", chain])?;
    Ok(())
}

/// 1-based position of `line` among the rules of `chain` in an iptables-save text.
pub fn rule_number(text: &str, chain: &str, line: &str) -> Option<usize> {
    let prefix = format!("-A {chain} ");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .position(|l| l == line)
        .map(|i| i + 1)
}

// ---- cgroups and processes ----

/// Kills every process in the node's cgroup subtree (the pods' processes, pause included),
/// until none is left or `within` passed; returns how many were signalled.
pub fn kill_cgroup_processes(names: &Names, within: Duration) -> usize {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let roots: Vec<PathBuf> = cgroup_mounts(&mounts)
        .into_iter()
        .map(|m| m.join(names.cgroup_root.trim_start_matches('/')))
        .filter(|p| p.is_dir())
        .collect();
    let t0 = Instant::now();
    let mut signalled = BTreeSet::new();
    loop {
        let pids: BTreeSet<i32> = roots.iter().flat_map(|r| procs_below(r)).collect();
        if pids.is_empty() || t0.elapsed() > within {
            return signalled.len();
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            signalled.insert(pid);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn procs_below(dir: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                pids.extend(procs_below(&e.path()));
            }
        }
    }
    pids
}

/// Creates the node's cgroup in every v1 hierarchy kubelet checks (cpuset gets its parent's
/// CPUs and memory nodes, or no task could join it).
pub fn create_cgroup_root(names: &Names) -> anyhow::Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for mount in cgroup_mounts(&mounts) {
        let dir = mount.join(names.cgroup_root.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(v) = std::fs::read_to_string(mount.join(file)) {
                std::fs::write(dir.join(file), v.trim())
                    .with_context(|| format!("writing {}", dir.join(file).display()))?;
            }
        }
    }
    Ok(())
}

/// Removes the node's cgroup trees, deepest first; returns those that could not be removed.
pub fn remove_cgroups(names: &Names) -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut left = Vec::new();
    for mount in cgroup_mounts(&mounts) {
        let root = mount.join(names.cgroup_root.trim_start_matches('/'));
        if !root.exists() {
            continue;
        }
        let mut dirs = Vec::new();
        collect_dirs(&root, &mut dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            // A cgroup whose last task just died can take a moment to become removable.
            let mut ok = false;
            for _ in 0..20 {
                if std::fs::remove_dir(&d).is_ok() || !d.exists() {
                    ok = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !ok {
                left.push(d);
            }
        }
    }
    left
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// Processes whose executable (a deleted one by its old path) and arguments satisfy `wanted`.
pub fn processes_matching(wanted: impl Fn(&Path, &[String]) -> bool) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let dir = PathBuf::from(format!("/proc/{pid}"));
            let Ok(exe) = std::fs::read_link(dir.join("exe")) else {
                return false;
            };
            let exe = exe.to_string_lossy();
            let exe = Path::new(exe.strip_suffix(" (deleted)").unwrap_or(&exe));
            let args: Vec<String> = std::fs::read(dir.join("cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .split('\0')
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            wanted(exe, &args)
        })
        .collect()
}

pub fn umount_all_below(dir: &Path) -> Vec<String> {
    let mut report = Vec::new();
    // Unmounting a parent can reveal nothing new, but a lazy unmount of a busy mount leaves it
    // listed for a moment: a few rounds.
    for _ in 0..5 {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let found = mounts_below(&mounts, dir);
        if found.is_empty() {
            break;
        }
        for m in found {
            let path = m.display().to_string();
            match run("umount", &["-l", &path]) {
                Ok(_) => report.push(format!("unmounted {path}")),
                Err(e) => report.push(format!("{e}")),
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n\
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n\
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n\
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n\
overlay /s/node/containerd/state/x/rootfs overlay rw 0 0\n\
shm /s/node/containerd/state/x/shm tmpfs rw 0 0\n\
tmpfs /s/node/kubelet/pods/u/volumes/kubernetes.io~projected/kube\\040api tmpfs rw 0 0\n\
nsfs /s/node/containerd/state/netns/cni-1 nsfs rw 0 0\n\
tmpfs /s/nodeother tmpfs rw 0 0\n";

    fn facts(root: bool, missing: &'static [&'static str]) -> HostFacts {
        HostFacts {
            root,
            filesystems: "nodev\tcgroup\nnodev\toverlay\n".into(),
            mounts: [
                "cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer",
            ]
            .iter()
            .map(|c| format!("cgroup /sys/fs/cgroup/{c} cgroup rw,{c} 0 0\n"))
            .collect(),
            exists: Box::new(move |p| !missing.iter().any(|m| Path::new(m) == p)),
            on_path: Box::new(move |t| !missing.contains(&t)),
        }
    }

    #[test]
    fn preflight_names_each_missing_piece_and_how_to_get_it() {
        assert!(preflight_problems(&facts(true, &[])).is_empty());
        let problems = preflight_problems(&facts(
            false,
            &[
                "/usr/sbin/runc",
                "/usr/lib/cni/portmap",
                "/proc/sys/net/bridge/bridge-nf-call-iptables",
                "ip",
            ],
        ));
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems.iter().all(|p| !p.contains('\n')), "one line each");
        assert!(problems.iter().any(|p| p.contains("needs root")));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("/usr/sbin/runc missing: `apt-get install runc`"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("portmap") && p.contains("containernetworking-plugins"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("br_netfilter") && p.contains("modprobe br_netfilter"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`ip` not found") && p.contains("iproute2"))
        );
        let mut no_pids = facts(true, &[]);
        no_pids.mounts = no_pids.mounts.replace("rw,pids", "rw,none");
        let problems = preflight_problems(&no_pids);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("cgroup v1 controller pids"));
        let mut no_overlay = facts(true, &[]);
        no_overlay.filesystems = "nodev\tcgroup\n".into();
        assert!(preflight_problems(&no_overlay)[0].contains("overlayfs"));
    }

    #[test]
    fn finds_cgroup_hierarchies_and_controllers() {
        let c = cgroup_v1_controllers(MOUNTS);
        assert!(c.contains("cpu") && c.contains("memory") && c.contains("cpuacct"));
        assert!(!c.contains("pids"));
        assert_eq!(cgroup_mounts(MOUNTS).len(), 4);
    }

    #[test]
    fn mounts_below_the_state_dir_deepest_first_and_unescaped() {
        let found = mounts_below(MOUNTS, Path::new("/s/node"));
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found.contains(&PathBuf::from(
            "/s/node/kubelet/pods/u/volumes/kubernetes.io~projected/kube api"
        )));
        assert!(!found.iter().any(|p| p.starts_with("/s/nodeother")));
        let depths: Vec<usize> = found.iter().map(|p| p.components().count()).collect();
        assert!(depths.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn sysctl_records_round_trip_and_ignore_unknown_keys() {
        let values = vec![
            ("kernel/panic".to_string(), "1".to_string()),
            ("net/ipv4/ip_forward".to_string(), "0".to_string()),
        ];
        let text = render_sysctls(&values) + "fs/evil=1\n";
        assert_eq!(parse_sysctls(&text), values);
    }

    #[test]
    fn iptables_save_is_normalized_to_chains_and_rules() {
        let text = "# Generated\n*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\nCOMMIT\n*filter\n:FPN-ABC123-GUARD-FWD - [0:0]\nCOMMIT\n";
        let lines: BTreeSet<String> = normalize_iptables_save(text, "4").into_iter().collect();
        assert!(lines.contains("4 nat :KUBE-SERVICES"));
        assert!(lines.contains("4 filter :FPN-ABC123-GUARD-FWD"));
        assert!(lines.iter().any(|l| l.starts_with("4 nat -A PREROUTING")));
        assert!(
            !lines.contains("4 nat :PREROUTING"),
            "built-in chains are not listed"
        );
        let before = BTreeSet::new();
        let new = new_node_chains(&before, &lines);
        assert_eq!(
            new,
            vec![
                ("4".into(), "filter".into(), "FPN-ABC123-GUARD-FWD".into()),
                ("4".into(), "nat".into(), "KUBE-SERVICES".into()),
            ]
        );
    }

    #[test]
    fn rule_numbers_count_within_their_chain() {
        let text = "-A FORWARD -j A\n-A INPUT -j B\n-A FORWARD -j FPN-X-FWD\n";
        assert_eq!(
            rule_number(text, "FORWARD", "-A FORWARD -j FPN-X-FWD"),
            Some(2)
        );
        assert_eq!(rule_number(text, "INPUT", "-A FORWARD -j A"), None);
    }

    #[test]
    fn guard_rules_keep_traffic_inside_the_node_range() {
        let names = Names::for_state_dir(Path::new("/s"));
        let rules = guard_rules(&names);
        let drops: Vec<_> = rules
            .iter()
            .filter(|(_, r)| r.last().is_some_and(|t| t == "DROP"))
            .collect();
        assert_eq!(drops.len(), 4);
        assert!(
            drops
                .iter()
                .all(|(_, r)| r.contains(&NODE_RANGE.to_string()))
        );
        // iptables allows one -i per rule.
        assert!(
            rules
                .iter()
                .all(|(_, r)| r.iter().filter(|w| *w == "-i").count() <= 1)
        );
        assert!(
            rules
                .iter()
                .filter(|(c, _)| *c == in_chain(&names))
                .all(|(_, r)| !r.contains(&"-o".to_string())),
            "INPUT cannot match an output interface"
        );
    }
}
