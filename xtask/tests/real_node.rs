//! `cluster up` (the real node), a pod, `cluster down`: while it runs, `kubectl exec` reaches the
//! pod, CoreDNS answers on its Service ClusterIP through kube-proxy with the `kubernetes`
//! Service's address (so it reached the API server from its pod), and its EndpointSlice holds a
//! pod address in 198.18.0.0/24; afterwards the host's network namespaces, links, iptables and
//! ip6tables rules, mounts and cgroups are what they were before. Pods that cannot start (an image
//! that cannot be pulled, a missing Secret, a container that keeps exiting) get waiting reasons
//! from the real kubelet that the operator's rollout classifies as trouble (`rollout::stuck`).
//!
//! Needs root, the Debian packages and about a minute with the binaries cached, so it is ignored
//! by default: `cargo test -p xtask --test real_node -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use fp_operator::controller::rollout::stuck::{Trouble, stuck_containers};
use k8s_openapi::api::core::v1::Pod;

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

/// Pods the kubelet cannot start, and the trouble the operator must see in each.
fn troubled_pods(pause_image: &str) -> Vec<(&'static str, serde_json::Value, Trouble)> {
    let pod = |name: &str, container: serde_json::Value| {
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 0}})
    };
    vec![
        (
            "unpullable",
            // Nothing listens on port 9 of loopback: a pull that cannot succeed, off no machine.
            pod(
                "unpullable",
                serde_json::json!({"name": "c", "image": "127.0.0.1:9/fp/none:1"}),
            ),
            Trouble::ImagePull,
        ),
        (
            "no-secret",
            pod(
                "no-secret",
                serde_json::json!({"name": "c", "image": pause_image, "env": [{"name": "X",
                    "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]}),
            ),
            Trouble::CannotStart,
        ),
        (
            "exits",
            // `/pause -v` prints its version and exits; restartPolicy Always makes it a loop.
            pod(
                "exits",
                serde_json::json!({"name": "c", "image": pause_image, "args": ["-v"]}),
            ),
            Trouble::CrashLoop,
        ),
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

    let up = xtask(state.path(), &["cluster", "up"]);
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
    let pause_image = up_log
        .lines()
        .find_map(|l| l.split(" holds ").nth(1))
        .unwrap_or_default()
        .trim()
        .to_string();
    let pod = if up.status.success() {
        // A pod: its network namespace, veth, rootfs mounts and cgroups must go too.
        run(&[
            "run",
            "probe",
            &format!("--image={pause_image}"),
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
    // The kubelet's own words for pods that cannot start, read as the operator reads them.
    let mut troubles = Vec::new();
    for (name, manifest, expected) in troubled_pods(&pause_image) {
        let file = state.path().join(format!("{name}.json"));
        std::fs::write(&file, manifest.to_string()).unwrap();
        run(&["apply", "-f", &file.display().to_string()]);
        let t0 = std::time::Instant::now();
        let seen = loop {
            let out = run(&["get", "pod", name, "-o", "json"]);
            let pod: Option<Pod> = serde_json::from_slice(&out.stdout).ok();
            let stuck = pod.map(|p| stuck_containers(&[p])).unwrap_or_default();
            if let Some(s) = stuck.first() {
                break Some((s.trouble, s.waiting_reason.clone()));
            }
            if t0.elapsed() > std::time::Duration::from_secs(120) {
                break None;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        };
        eprintln!("{name}: {seen:?} after {:.1?}", t0.elapsed());
        troubles.push((name, expected, seen));
    }
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
    for (name, expected, seen) in &troubles {
        assert!(
            seen.as_ref().is_some_and(|(t, _)| t == expected),
            "pod {name}: the operator reads {seen:?} from the kubelet, wants {expected:?}"
        );
    }
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
