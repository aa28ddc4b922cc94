//! `cluster up --node kubelet`, a pod, `cluster down`: afterwards the host's network namespaces,
//! links, iptables and ip6tables rules, mounts and cgroups are what they were before.
//!
//! Needs root, the Debian packages and about a minute with the binaries cached, so it is ignored
//! by default: `cargo test -p xtask --test real_node -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn lines(program: &str, args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(program).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        // iptables-save prints packet counters on chain lines.
        .map(|l| l.split(" [").next().unwrap_or(l).trim().to_string())
        .collect()
}

/// What `ip netns`, `ip -o link`, `iptables-save`, `ip6tables-save` and /proc/mounts show, and
/// the cgroups named like the node's.
fn host_state() -> Vec<(&'static str, BTreeSet<String>)> {
    let links = lines("ip", &["-o", "link"])
        .into_iter()
        .filter_map(|l| l.split(": ").nth(1).map(str::to_string))
        .collect();
    let mounts = std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect();
    let cgroups = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .flat_map(|h| std::fs::read_dir(h.path()).into_iter().flatten())
        .filter_map(Result::ok)
        .map(|e| e.path().display().to_string())
        .filter(|p| p.contains("/fpn-"))
        .collect();
    vec![
        ("ip netns", lines("ip", &["netns", "list"])),
        ("ip link", links),
        ("iptables-save", lines("iptables-save", &[])),
        ("ip6tables-save", lines("ip6tables-save", &[])),
        ("/proc/mounts", mounts),
        ("cgroups", cgroups),
    ]
}

fn xtask(state: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("FP_STATE_DIR", state)
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs root and builds/starts a real node (about a minute when cached)"]
fn a_real_node_leaves_nothing_behind() {
    let state = tempfile::tempdir().unwrap();
    let before = host_state();

    let up = xtask(state.path(), &["cluster", "up", "--node", "kubelet"]);
    let up_log = String::from_utf8_lossy(&up.stderr).into_owned();
    let kubeconfig = state.path().join("cluster").join("kubeconfig");
    let kubectl = state.path().join("cluster").join("bin").join("kubectl");
    let run = |args: &[&str]| {
        Command::new(&kubectl)
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap()
    };
    let during = host_state();
    let pod = if up.status.success() {
        // A pod: its network namespace, veth, rootfs mounts and cgroups must go too.
        let image = up_log
            .lines()
            .find_map(|l| l.split(" holds ").nth(1))
            .unwrap_or_default()
            .trim()
            .to_string();
        run(&[
            "run",
            "probe",
            &format!("--image={image}"),
            "--restart=Never",
        ]);
        run(&[
            "wait",
            "--for=condition=Ready",
            "pod/probe",
            "--timeout=60s",
        ])
    } else {
        up.clone()
    };
    let with_pod = host_state();
    let down = xtask(state.path(), &["cluster", "down"]);
    let after = host_state();

    assert!(up.status.success(), "cluster up failed:\n{up_log}");
    assert!(
        pod.status.success(),
        "the probe pod did not become Ready: {}",
        String::from_utf8_lossy(&pod.stderr)
    );
    assert!(
        down.status.success(),
        "cluster down failed:\n{}",
        String::from_utf8_lossy(&down.stderr)
    );
    // The node really changed the host (or this test would prove nothing)…
    let changed = |state: &[(&str, BTreeSet<String>)], what: &str| {
        let (_, a) = before.iter().find(|(n, _)| *n == what).unwrap();
        let (_, b) = state.iter().find(|(n, _)| *n == what).unwrap();
        a != b
    };
    for what in ["ip link", "iptables-save", "/proc/mounts", "cgroups"] {
        assert!(changed(&during, what), "up changed no {what}");
    }
    assert!(changed(&with_pod, "/proc/mounts"));
    // …and down put every bit of it back. iptables-nft cannot delete a table, so a table that
    // appeared may stay with its empty built-in chains (`*nat`, `:PREROUTING ACCEPT`, `COMMIT`).
    for ((what, a), (_, b)) in before.iter().zip(&after) {
        let added: Vec<&String> = b
            .difference(a)
            .filter(|l| {
                !(what.ends_with("tables-save")
                    && (l.starts_with('*')
                        || *l == "COMMIT"
                        || l.starts_with(":PREROUTING")
                        || l.starts_with(":INPUT")
                        || l.starts_with(":FORWARD")
                        || l.starts_with(":OUTPUT")
                        || l.starts_with(":POSTROUTING")))
            })
            .collect();
        let removed: Vec<&String> = a.difference(b).collect();
        assert!(
            added.is_empty() && removed.is_empty(),
            "{what} differs after down: added {added:#?}, removed {removed:#?}"
        );
    }
}
