//! `cluster up --node kubelet`, a pod, `cluster down`: while it runs, `kubectl exec` reaches the
//! pod, CoreDNS answers on its Service ClusterIP through kube-proxy with the `kubernetes`
//! Service's address (so it reached the API server from its pod), and its EndpointSlice holds a
//! pod address in 198.18.0.0/24; afterwards the host's network namespaces, links, iptables and
//! ip6tables rules, mounts and cgroups are what they were before.
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

/// An A query over UDP straight to `server` (no system resolver): the addresses answered.
fn dns_a(server: &str, name: &str) -> Result<Vec<std::net::Ipv4Addr>, String> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(u8::try_from(label.len()).map_err(|e| e.to_string())?);
        q.extend(label.as_bytes());
    }
    q.extend([0, 0, 1, 0, 1]);
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    socket
        .send_to(&q, (server, 53))
        .map_err(|e| e.to_string())?;
    let mut r = [0u8; 512];
    let n = socket.recv(&mut r).map_err(|e| e.to_string())?;
    let r = &r[..n];
    let answers = u16::from_be_bytes([r[6], r[7]]);
    let skip_name = |mut i: usize| loop {
        let len = r[i];
        if len == 0 {
            return i + 1;
        }
        if len & 0xC0 == 0xC0 {
            return i + 2;
        }
        i += usize::from(len) + 1;
    };
    let mut i = skip_name(12) + 4;
    let mut found = Vec::new();
    for _ in 0..answers {
        i = skip_name(i);
        let kind = u16::from_be_bytes([r[i], r[i + 1]]);
        let len = usize::from(u16::from_be_bytes([r[i + 8], r[i + 9]]));
        i += 10;
        if kind == 1 && len == 4 {
            found.push(std::net::Ipv4Addr::new(r[i], r[i + 1], r[i + 2], r[i + 3]));
        }
        i += len;
    }
    Ok(found)
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
    let exec = run(&["exec", "probe", "--", "/pause", "-v"]);
    let dns = dns_a("198.19.0.10", "kubernetes.default.svc.cluster.local");
    let dns_slice = run(&[
        "-n",
        "kube-system",
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=kube-dns",
        "-o",
        "jsonpath={.items[*].endpoints[*].addresses[*]}",
    ]);
    let with_pod = host_state();
    let down = xtask(state.path(), &["cluster", "down"]);
    let after = host_state();

    assert!(up.status.success(), "cluster up failed:\n{up_log}");
    assert!(
        pod.status.success(),
        "the probe pod did not become Ready: {}",
        String::from_utf8_lossy(&pod.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&exec.stdout).trim(),
        "fp-pause",
        "kubectl exec: {}",
        String::from_utf8_lossy(&exec.stderr)
    );
    assert_eq!(
        dns,
        Ok(vec![std::net::Ipv4Addr::new(198, 19, 0, 1)]),
        "CoreDNS through its ClusterIP"
    );
    let slice = String::from_utf8_lossy(&dns_slice.stdout).into_owned();
    assert!(
        slice.starts_with("198.18.0."),
        "kube-dns endpoints: {slice:?}"
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
