//! `cargo xtask bench operator`: the operator under many FootballPredictions at once, on the
//! platform `cargo xtask up` started. Creates `--count` instances in one namespace, times until all
//! are Ready, then changes all their versions at once and times the concurrent rollouts, then
//! watches a steady state in which nothing changes. For each phase it reads the operator's own
//! `/metrics` before and after (reconciles, reconcile duration histogram, Kubernetes API requests
//! by verb) and samples the operator process's resident memory. A table on stdout and JSON under
//! target/bench/; the namespace is deleted at the end, on failure and on Ctrl-C.
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::bench_platform::{self, Spread, ready, serving, spread};
use crate::interrupt;
use crate::kubectl::Kubectl;
use crate::platform::{OPERATOR_NAMESPACE, OPERATOR_RELEASE};
use crate::procfs::{cpu_seconds, kib_field, load_average, mem_available_kib, mib, status_kib};
use crate::prom::{self, Scrape};

/// Everything the bench creates lives here; deleting it cleans up.
pub const NAMESPACE: &str = "fp-bench-operator";
const SECRET: &str = "bench-database";
/// Both are published to the local node's registry from the image `up` pushed.
const FIRST_VERSION: &str = "1.0.0";
const SECOND_VERSION: &str = "1.1.0";
const POLL: Duration = Duration::from_secs(2);
const PROGRESS_EVERY: Duration = Duration::from_secs(6);
/// Stop before the machine runs out of memory (many API server containers run here).
const MIN_AVAILABLE_MIB: u64 = 1536;
/// The issue's target for the operator's resident memory.
const RSS_TARGET_MIB: f64 = 100.0;
/// Metric names of the operator (docs/operator.md).
const RECONCILES: &str = "fp_operator_reconciliations_total";
const RECONCILE_SECONDS: &str = "fp_operator_reconcile_duration_seconds";
const KUBE_REQUESTS: &str = "fp_operator_kube_requests_total";

#[derive(Debug, Clone)]
pub struct OperatorOptions {
    pub count: usize,
    /// The steady-state window.
    pub steady: Duration,
    /// Longest wait of one phase; `None`: 5 minutes plus 6 s per instance.
    pub timeout: Option<Duration>,
}

impl OperatorOptions {
    fn phase_timeout(&self) -> Duration {
        self.timeout
            .unwrap_or(Duration::from_secs(300 + 6 * self.count as u64))
    }
}

/// Instance names, in order.
pub fn instance_name(index: usize) -> String {
    format!("op-{index:04}")
}

/// One bench instance: one pod per color, a short analysis, no migration Job (the shared
/// database is migrated already), tiny resource requests so many fit on the local node.
/// Monitoring and the NetworkPolicy keep their defaults: the operator does its full work.
pub fn instance(index: usize, version: &str) -> Value {
    json!({
        "apiVersion": "footballprediction.io/v1alpha1",
        "kind": "FootballPrediction",
        "metadata": {"name": instance_name(index), "namespace": NAMESPACE},
        "spec": {
            "version": version,
            "replicas": 1,
            "database": {
                "urlSecretRef": {"name": SECRET, "key": "url"},
                "migrations": {"enabled": false},
            },
            "resources": {
                "requests": {"cpu": "5m", "memory": "16Mi"},
                "limits": {"memory": "512Mi"},
            },
            "rollout": {
                "previewReplicas": 1,
                "analysis": {"count": 2, "failureLimit": 1, "interval": "1s", "timeout": "2s"},
                "postPromotion": {"duration": "2s"},
                "scaleDownDelaySeconds": 0,
            },
        },
    })
}

/// All `count` instances at `version` as one List, applied with one command.
pub fn instances(count: usize, version: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": (0..count).map(|i| instance(i, version)).collect::<Vec<_>>(),
    })
}

/// Samples a process's VmRSS in the background and keeps the highest value since the last reset.
struct RssSampler {
    peak_kib: Arc<AtomicU64>,
    low_available_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let low_available_kib = Arc::new(AtomicU64::new(u64::MAX));
        let stop = Arc::new(AtomicBool::new(false));
        let (peak, low, halt) = (peak_kib.clone(), low_available_kib.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                if let Some(rss) = status_kib(pid, "VmRSS") {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                if let Some(available) = mem_available_kib() {
                    low.fetch_min(available, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Self {
            peak_kib,
            low_available_kib,
            stop,
            handle: Some(handle),
        }
    }

    /// Peak RSS and lowest MemAvailable since the last call, in MiB; starts a new interval.
    fn take(&self) -> (f64, f64) {
        let peak = self.peak_kib.swap(0, Ordering::Relaxed);
        let low = self.low_available_kib.swap(u64::MAX, Ordering::Relaxed);
        (mib(peak), if low == u64::MAX { 0.0 } else { mib(low) })
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// A plain HTTP/1.0 GET on a pod address; the body of a 200 answer.
fn http_get(address: SocketAddr, path: &str) -> anyhow::Result<String> {
    let timeout = Duration::from_secs(10);
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {address}\r\nAccept: text/plain\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP answer")?;
    let status = head.lines().next().unwrap_or_default();
    anyhow::ensure!(
        status.split_whitespace().nth(1) == Some("200"),
        "GET http://{address}{path}: {status}"
    );
    Ok(body.to_owned())
}

/// An operator pod: its admin address and its process.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorPod {
    pub name: String,
    pub admin: SocketAddr,
    pub pid: u32,
}

/// The running operator pods of a pod list, with the admin port and the process id that
/// `pod_process` finds for the pod's UID (through the container's cgroup).
pub fn operator_pods(pods: &Value, pod_process: impl Fn(&str) -> Option<u32>) -> Vec<OperatorPod> {
    let items = pods["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    items
        .iter()
        .filter_map(|pod| {
            let container = pod["spec"]["containers"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == "operator")?;
            let port = container["ports"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == "admin")?["containerPort"]
                .as_u64()?;
            let status = pod["status"]["containerStatuses"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == "operator")?;
            status["state"]["running"].as_object()?;
            let ip: std::net::IpAddr = pod["status"]["podIP"].as_str()?.parse().ok()?;
            Some(OperatorPod {
                name: pod["metadata"]["name"].as_str()?.to_owned(),
                admin: SocketAddr::new(ip, u16::try_from(port).ok()?),
                pid: pod_process(pod["metadata"]["uid"].as_str()?)?,
            })
        })
        .collect()
}

/// What the operator's metrics say happened between two scrapes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    pub reconciles: f64,
    /// Reconciles whose result was not `success`.
    pub reconcile_failures: f64,
    pub reconcile_p50_ms: Option<f64>,
    pub reconcile_p99_ms: Option<f64>,
    /// Requests caused by reconciling: everything except watches and the leader's Lease.
    pub requests: f64,
    pub reads: f64,
    pub writes: f64,
    /// Writes by "verb resource".
    pub writes_by: BTreeMap<String, f64>,
    pub watches: f64,
    /// Requests on Leases (leader election: a renewal every leaseDuration/3).
    pub lease_requests: f64,
    pub lease_writes: f64,
}

impl Counts {
    pub fn per_reconcile(&self, n: f64) -> Option<f64> {
        (self.reconciles > 0.0).then(|| n / self.reconciles)
    }
}

const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// The increase of every counter series of `name` from `before` to `after`, with its labels.
fn increases<'a>(
    before: &Scrape,
    after: &'a Scrape,
    name: &str,
) -> Vec<(&'a BTreeMap<String, String>, f64)> {
    after
        .samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| {
            let earlier = before
                .samples
                .iter()
                .find(|b| b.name == name && b.labels == s.labels)
                .map_or(0.0, |b| b.value);
            (&s.labels, (s.value - earlier).max(0.0))
        })
        .collect()
}

/// Reconciles, reconcile latency quantiles and API requests between two scrapes of the operator.
pub fn counts(before: &Scrape, after: &Scrape) -> Counts {
    let mut c = Counts::default();
    for (labels, n) in increases(before, after, RECONCILES) {
        c.reconciles += n;
        if labels.get("result").map(String::as_str) != Some("success") {
            c.reconcile_failures += n;
        }
    }
    let buckets = prom::bucket_increase(
        &before.buckets(RECONCILE_SECONDS),
        &after.buckets(RECONCILE_SECONDS),
    );
    let ms = |q| prom::histogram_quantile(q, &buckets).map(|s| s * 1000.0);
    c.reconcile_p50_ms = ms(0.5);
    c.reconcile_p99_ms = ms(0.99);
    for (labels, n) in increases(before, after, KUBE_REQUESTS) {
        if n == 0.0 {
            continue;
        }
        let verb = labels.get("verb").map(String::as_str).unwrap_or_default();
        let resource = labels
            .get("resource")
            .map(String::as_str)
            .unwrap_or_default();
        let write = WRITE_VERBS.contains(&verb);
        if resource == "leases" {
            c.lease_requests += n;
            if write {
                c.lease_writes += n;
            }
        } else if verb == "watch" {
            c.watches += n;
        } else {
            c.requests += n;
            if write {
                c.writes += n;
                *c.writes_by.entry(format!("{verb} {resource}")).or_default() += n;
            } else {
                c.reads += n;
            }
        }
    }
    c
}

/// How the instances stand: how many satisfy the phase's goal, and the rollout stages of the rest.
#[derive(Debug, Default, PartialEq)]
pub struct Standing {
    /// Names that reached the goal.
    pub done: BTreeSet<String>,
    pub stages: BTreeMap<String, usize>,
    /// Instances whose rollout to `version` was aborted: name and message.
    pub aborted: Vec<(String, String)>,
}

/// Reads a `kubectl get fp -o json` list against `goal`.
pub fn standing(list: &Value, version: &str, goal: impl Fn(&Value) -> bool) -> Standing {
    let mut s = Standing::default();
    for item in list["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let name = item["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let status = &item["status"];
        let rollout = &status["rollout"];
        let stage = rollout["stage"]
            .as_str()
            .unwrap_or("(no status)")
            .to_owned();
        if stage == "Aborted" && rollout["targetVersion"] == version {
            let message = rollout["message"].as_str().unwrap_or_default().to_owned();
            s.aborted.push((name.clone(), message));
        }
        if goal(status) {
            s.done.insert(name);
        }
        *s.stages.entry(stage).or_default() += 1;
    }
    s
}

fn stages_text(stages: &BTreeMap<String, usize>) -> String {
    stages
        .iter()
        .map(|(stage, n)| format!("{stage} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ready and serving `version` (post-promotion analysis passed).
fn ready_on(version: &str) -> impl Fn(&Value) -> bool + '_ {
    move |status| ready(status) && serving(status, version)
}

/// Ready on `version` with the rollout finished (old color scaled down).
fn idle_on(version: &str) -> impl Fn(&Value) -> bool + '_ {
    move |status| ready(status) && serving(status, version) && status["rollout"]["stage"] == "Idle"
}

/// One measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub phase: &'static str,
    pub seconds: f64,
    /// `kubectl apply` of all instances (part of `seconds`).
    pub apply_seconds: f64,
    /// Seconds from the start of the phase until each instance reached the goal (polled every 2 s).
    pub instance_seconds: Option<Spread>,
    pub counts: Counts,
    pub requests_per_reconcile: Option<f64>,
    pub reads_per_reconcile: Option<f64>,
    pub writes_per_reconcile: Option<f64>,
    pub peak_rss_mib: f64,
    /// CPU time the operator process used during the phase (user + system).
    pub operator_cpu_seconds: f64,
    pub cpu_ms_per_reconcile: Option<f64>,
    /// The machine's 1-minute load average at the end of the phase (2 cores, shared).
    pub load_average: f64,
    /// The lowest MemAvailable of the machine during the phase.
    pub min_available_mib: f64,
    /// API pods in the namespace at the end of the phase and the sum of their PSS.
    pub api_pods: usize,
    pub api_pods_pss_mib: f64,
}

struct Bench<'a> {
    kubectl: &'a Kubectl,
    operator: OperatorPod,
    sampler: RssSampler,
    options: &'a OperatorOptions,
}

impl Bench<'_> {
    fn scrape(&self) -> anyhow::Result<Scrape> {
        let text = http_get(self.operator.admin, "/metrics")
            .with_context(|| format!("scraping the operator pod {}", self.operator.name))?;
        Ok(Scrape::parse(&text))
    }

    fn list(&self) -> anyhow::Result<Value> {
        let out = self
            .kubectl
            .run(&["-n", NAMESPACE, "get", "fp", "-o", "json"])
            // Ctrl-C reaches kubectl too: report the interruption, not kubectl's death.
            .map_err(|e| match interrupt::check() {
                Err(interrupted) => anyhow::Error::from(interrupted),
                Ok(()) => e.into(),
            })?;
        Ok(serde_json::from_str(&out)?)
    }

    /// The API pods of the namespace and the sum of their processes' proportional set size in
    /// MiB (shared pages of the one binary split between them, unlike summed VmRSS).
    fn api_pods(&self) -> (usize, f64) {
        let Ok(out) = self
            .kubectl
            .run(&["-n", NAMESPACE, "get", "pods", "-o", "json"])
        else {
            return (0, 0.0);
        };
        let pods: Value = serde_json::from_str(&out).unwrap_or_default();
        let items = pods["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let pss: u64 = items
            .iter()
            .filter_map(|p| p["metadata"]["uid"].as_str())
            .filter_map(|uid| crate::procfs::pod_process(uid, "fp-api-server"))
            .filter_map(|pid| {
                let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
                kib_field(&rollup, "Pss")
            })
            .sum();
        (items.len(), mib(pss))
    }

    fn check_memory(&self) -> anyhow::Result<()> {
        if let Some(available) = mem_available_kib()
            && mib(available) < MIN_AVAILABLE_MIB as f64
        {
            let (pods, pss) = self.api_pods();
            bail!(
                "stopping: the machine has {:.0} MiB available (below {MIN_AVAILABLE_MIB} MiB) with {pods} API pods using {pss:.0} MiB (PSS); try a smaller --count",
                mib(available)
            );
        }
        Ok(())
    }

    /// Polls until every instance satisfies `goal`; seconds from `t0` at which each did.
    fn wait_all(
        &self,
        what: &str,
        version: &str,
        t0: Instant,
        goal: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Vec<f64>> {
        let count = self.options.count;
        let timeout = self.options.phase_timeout();
        let mut reached: BTreeMap<String, f64> = BTreeMap::new();
        let mut last_print = Instant::now() - PROGRESS_EVERY;
        loop {
            interrupt::check()?;
            self.check_memory()?;
            let list = self.list()?;
            let now = t0.elapsed().as_secs_f64();
            let s = standing(&list, version, &goal);
            for name in &s.done {
                reached.entry(name.clone()).or_insert(now);
            }
            if !s.aborted.is_empty() {
                let (name, message) = &s.aborted[0];
                bail!(
                    "{what}: {} rollouts to {version} aborted, e.g. fp/{name}: {message}",
                    s.aborted.len()
                );
            }
            let finished = s.done.len() == count;
            if finished || last_print.elapsed() >= PROGRESS_EVERY {
                last_print = Instant::now();
                let rss = status_kib(self.operator.pid, "VmRSS").map_or(0.0, mib);
                eprintln!(
                    "[bench] {what}: {}/{count} after {now:.0}s [{}]; operator RSS {rss:.0} MiB, MemAvailable {:.1} GiB",
                    s.done.len(),
                    stages_text(&s.stages),
                    mem_available_kib().map_or(0.0, |k| mib(k) / 1024.0),
                );
            }
            if finished {
                return Ok(reached.into_values().collect());
            }
            if t0.elapsed() > timeout {
                bail!(
                    "{what}: only {}/{count} after {:.0}s [{}]",
                    s.done.len(),
                    timeout.as_secs_f64(),
                    stages_text(&s.stages)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn apply(&self, version: &str) -> anyhow::Result<f64> {
        let t0 = Instant::now();
        let manifest = instances(self.options.count, version).to_string();
        self.kubectl.run_with_input(
            &[
                "apply",
                "--server-side",
                "--field-manager=fp-bench",
                "-f",
                "-",
            ],
            Some(&manifest),
        )?;
        Ok(t0.elapsed().as_secs_f64())
    }

    /// Applies every instance at `version` and measures until all are Ready on it.
    fn phase(&self, name: &'static str, version: &str) -> anyhow::Result<PhaseReport> {
        let before = self.scrape()?;
        self.sampler.take();
        let cpu_before = cpu_seconds(self.operator.pid);
        let t0 = Instant::now();
        let apply_seconds = self.apply(version)?;
        eprintln!(
            "[bench] {name}: applied {} instances at {version} in {apply_seconds:.1}s",
            self.options.count
        );
        let times = self.wait_all(
            &format!("{name}: Ready on {version}"),
            version,
            t0,
            ready_on(version),
        )?;
        let seconds = t0.elapsed().as_secs_f64();
        let after = self.scrape()?;
        let (peak_rss_mib, min_available_mib) = self.sampler.take();
        let measured = Measured {
            seconds,
            apply_seconds,
            instance_seconds: spread(&times),
            peak_rss_mib,
            min_available_mib,
            operator_cpu_seconds: cpu_seconds(self.operator.pid) - cpu_before,
            api_pods: self.api_pods(),
        };
        Ok(report(name, counts(&before, &after), measured))
    }

    /// Waits until every rollout has ended and only the active pods remain.
    fn settle(&self, version: &str) -> anyhow::Result<()> {
        let t0 = Instant::now();
        self.wait_all(
            &format!("rollouts of {version} finished"),
            version,
            t0,
            idle_on(version),
        )?;
        let count = self.options.count;
        loop {
            interrupt::check()?;
            let (pods, _) = self.api_pods();
            if pods == count {
                return Ok(());
            }
            if t0.elapsed() > self.options.phase_timeout() {
                bail!("{pods} pods in {NAMESPACE} after the rollouts, expected {count}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// A window in which nothing changes: the operator should only read.
    fn steady(&self) -> anyhow::Result<PhaseReport> {
        // Let the last pod deletions' watch events pass before the window opens.
        std::thread::sleep(Duration::from_secs(5));
        let before = self.scrape()?;
        let fps_before = self.list()?;
        self.sampler.take();
        let cpu_before = cpu_seconds(self.operator.pid);
        let t0 = Instant::now();
        let window = self.options.steady;
        let mut last_print = Instant::now();
        while t0.elapsed() < window {
            interrupt::check()?;
            std::thread::sleep(Duration::from_secs(1).min(window.saturating_sub(t0.elapsed())));
            if last_print.elapsed() >= Duration::from_secs(15) {
                last_print = Instant::now();
                eprintln!(
                    "[bench] steady state: {:.0}/{}s",
                    t0.elapsed().as_secs_f64(),
                    window.as_secs()
                );
            }
        }
        let seconds = t0.elapsed().as_secs_f64();
        let after = self.scrape()?;
        let changed = changed_instances(&fps_before, &self.list()?);
        if !changed.is_empty() {
            eprintln!(
                "[bench] steady state: {} instances changed during the window (e.g. {})",
                changed.len(),
                changed[0]
            );
        }
        let (peak_rss_mib, min_available_mib) = self.sampler.take();
        let measured = Measured {
            seconds,
            apply_seconds: 0.0,
            instance_seconds: None,
            peak_rss_mib,
            min_available_mib,
            operator_cpu_seconds: cpu_seconds(self.operator.pid) - cpu_before,
            api_pods: self.api_pods(),
        };
        Ok(report("steady", counts(&before, &after), measured))
    }
}

/// Names of instances whose resourceVersion differs between two lists.
fn changed_instances(before: &Value, after: &Value) -> Vec<String> {
    let versions = |list: &Value| -> BTreeMap<String, String> {
        list["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|i| {
                Some((
                    i["metadata"]["name"].as_str()?.to_owned(),
                    i["metadata"]["resourceVersion"].as_str()?.to_owned(),
                ))
            })
            .collect()
    };
    let (b, a) = (versions(before), versions(after));
    a.iter()
        .filter(|(name, rv)| b.get(*name) != Some(rv))
        .map(|(name, _)| name.clone())
        .collect()
}

/// What the edge measured during one phase, besides the operator's metrics.
struct Measured {
    seconds: f64,
    apply_seconds: f64,
    instance_seconds: Option<Spread>,
    peak_rss_mib: f64,
    min_available_mib: f64,
    operator_cpu_seconds: f64,
    api_pods: (usize, f64),
}

fn report(phase: &'static str, counts: Counts, m: Measured) -> PhaseReport {
    PhaseReport {
        phase,
        seconds: m.seconds,
        apply_seconds: m.apply_seconds,
        instance_seconds: m.instance_seconds,
        requests_per_reconcile: counts.per_reconcile(counts.requests),
        reads_per_reconcile: counts.per_reconcile(counts.reads),
        writes_per_reconcile: counts.per_reconcile(counts.writes),
        cpu_ms_per_reconcile: counts.per_reconcile(m.operator_cpu_seconds * 1000.0),
        counts,
        peak_rss_mib: m.peak_rss_mib,
        operator_cpu_seconds: m.operator_cpu_seconds,
        load_average: load_average(),
        min_available_mib: m.min_available_mib,
        api_pods: m.api_pods.0,
        api_pods_pss_mib: m.api_pods.1,
    }
}

/// Deletes the bench namespace when dropped (end, error, Ctrl-C) and waits until it is gone.
struct NamespaceGuard<'a> {
    kubectl: &'a Kubectl,
}

fn namespace_exists(kubectl: &Kubectl) -> bool {
    kubectl
        .run(&[
            "get",
            "namespace",
            NAMESPACE,
            "--ignore-not-found",
            "-o",
            "name",
        ])
        .is_ok_and(|out| !out.trim().is_empty())
}

/// Deletes the namespace and waits (not interruptible, bounded) until the cluster removed it
/// with its pods, so the next run and `cargo xtask down` start clean.
fn delete_namespace(kubectl: &Kubectl) {
    if !namespace_exists(kubectl) {
        return;
    }
    eprintln!("[bench] deleting namespace {NAMESPACE}");
    if let Err(e) = kubectl.run(&["delete", "namespace", NAMESPACE, "--wait=false"]) {
        eprintln!("[bench] deleting namespace {NAMESPACE} failed: {e}");
        return;
    }
    let t0 = Instant::now();
    let mut last_print = Instant::now();
    while namespace_exists(kubectl) {
        if t0.elapsed() > Duration::from_secs(900) {
            eprintln!(
                "[bench] namespace {NAMESPACE} still terminating after 15 minutes; it goes on in the cluster"
            );
            return;
        }
        if last_print.elapsed() > Duration::from_secs(15) {
            last_print = Instant::now();
            let pods = kubectl
                .run(&["-n", NAMESPACE, "get", "pods", "-o", "name"])
                .map(|out| out.lines().count())
                .unwrap_or(0);
            eprintln!(
                "[bench] namespace {NAMESPACE} terminating: {pods} pods left after {:.0}s",
                t0.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    eprintln!(
        "[bench] namespace {NAMESPACE} deleted after {:.0}s",
        t0.elapsed().as_secs_f64()
    );
}

impl Drop for NamespaceGuard<'_> {
    fn drop(&mut self) {
        delete_namespace(self.kubectl);
    }
}

/// Free pod slots on the Ready nodes: allocatable pods minus pods bound and not finished.
pub fn free_pod_slots(nodes: &Value, pods: &Value) -> i64 {
    let list = |v: &Value| v["items"].as_array().cloned().unwrap_or_default();
    let allocatable: i64 = list(nodes)
        .iter()
        .filter(|n| {
            n["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .filter_map(|n| {
            n["status"]["allocatable"]["pods"]
                .as_str()?
                .parse::<i64>()
                .ok()
        })
        .sum();
    let used = list(pods)
        .iter()
        .filter(|p| p["spec"]["nodeName"].is_string())
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .count() as i64;
    allocatable - used
}

fn check_capacity(kubectl: &Kubectl, count: usize) -> anyhow::Result<()> {
    let nodes: Value = serde_json::from_str(&kubectl.run(&["get", "nodes", "-o", "json"])?)?;
    let pods: Value = serde_json::from_str(&kubectl.run(&["get", "pods", "-A", "-o", "json"])?)?;
    let free = free_pod_slots(&nodes, &pods);
    // During the rollouts each instance runs its old and its new color.
    let needed = 2 * count as i64;
    anyhow::ensure!(
        free >= needed,
        "{count} instances need {needed} pods during their rollouts; the nodes have room for {free} more: use --count {}",
        (free / 2).max(0)
    );
    Ok(())
}

/// The leader among the operator pods (the one whose metrics say `fp_operator_leader 1`).
fn find_operator(kubectl: &Kubectl) -> anyhow::Result<OperatorPod> {
    let selector = format!("app.kubernetes.io/name={OPERATOR_RELEASE}");
    let out = kubectl.run(&[
        "-n",
        OPERATOR_NAMESPACE,
        "get",
        "pods",
        "-l",
        &selector,
        "-o",
        "json",
    ])?;
    let pods = operator_pods(&serde_json::from_str(&out)?, |uid| {
        crate::procfs::pod_process(uid, "fp-operator")
    });
    anyhow::ensure!(
        !pods.is_empty(),
        "no running operator pod in {OPERATOR_NAMESPACE}: start the platform with `cargo xtask up`"
    );
    for pod in pods {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", pod.pid)).unwrap_or_default();
        if comm.trim() != "fp-operator" {
            eprintln!(
                "[bench] pod {} reports pid {}, which is not an fp-operator process here ({:?}); skipped",
                pod.name,
                pod.pid,
                comm.trim()
            );
            continue;
        }
        let Ok(text) = http_get(pod.admin, "/metrics") else {
            continue;
        };
        if Scrape::parse(&text).total("fp_operator_leader") == 1.0 {
            return Ok(pod);
        }
    }
    bail!("no operator pod in {OPERATOR_NAMESPACE} is the leader with a reachable /metrics")
}

fn fmt_opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn print_table(count: usize, phases: &[PhaseReport]) {
    let row = |label: &str, cell: &dyn Fn(&PhaseReport) -> String| {
        let cells: Vec<String> = phases.iter().map(|p| format!("{:>14}", cell(p))).collect();
        println!("{label:<44}{}", cells.join(""));
    };
    println!();
    println!(
        "operator bench: {count} FootballPredictions in {NAMESPACE} (replicas 1, previewReplicas 1, analysis 2 × 1s, post-promotion 2s)"
    );
    row("", &|p| p.phase.to_owned());
    row("seconds (create/rollout: until all Ready)", &|p| {
        format!("{:.1}", p.seconds)
    });
    row("  of which kubectl apply", &|p| {
        if p.phase == "steady" {
            "-".into()
        } else {
            format!("{:.1}", p.apply_seconds)
        }
    });
    row("per instance until Ready: median s", &|p| {
        fmt_opt(p.instance_seconds.as_ref().map(|s| s.median), 1)
    });
    row("per instance until Ready: p90 s", &|p| {
        fmt_opt(p.instance_seconds.as_ref().map(|s| s.p90), 1)
    });
    row("reconciles (failed)", &|p| {
        format!(
            "{:.0} ({:.0})",
            p.counts.reconciles, p.counts.reconcile_failures
        )
    });
    row("reconcile p50 ms (histogram)", &|p| {
        fmt_opt(p.counts.reconcile_p50_ms, 1)
    });
    row("reconcile p99 ms (histogram)", &|p| {
        fmt_opt(p.counts.reconcile_p99_ms, 1)
    });
    row("API requests (no watches, no Lease)", &|p| {
        format!("{:.0}", p.counts.requests)
    });
    row("  per reconcile", &|p| fmt_opt(p.requests_per_reconcile, 1));
    row("  reads per reconcile", &|p| {
        fmt_opt(p.reads_per_reconcile, 1)
    });
    row("  writes per reconcile", &|p| {
        fmt_opt(p.writes_per_reconcile, 2)
    });
    row("writes (create/update/patch/delete)", &|p| {
        format!("{:.0}", p.counts.writes)
    });
    row("watch requests", &|p| format!("{:.0}", p.counts.watches));
    row("Lease requests (leader election)", &|p| {
        format!("{:.0}", p.counts.lease_requests)
    });
    row("operator CPU s / ms per reconcile", &|p| {
        format!(
            "{:.1} / {}",
            p.operator_cpu_seconds,
            fmt_opt(p.cpu_ms_per_reconcile, 0)
        )
    });
    row("operator peak RSS MiB (sampled VmRSS)", &|p| {
        format!("{:.1}", p.peak_rss_mib)
    });
    row("API pods at the end / their PSS MiB", &|p| {
        format!("{} / {:.0}", p.api_pods, p.api_pods_pss_mib)
    });
    row("lowest MemAvailable GiB", &|p| {
        format!("{:.1}", p.min_available_mib / 1024.0)
    });
    row("load average (1 min, 2 cores) at the end", &|p| {
        format!("{:.1}", p.load_average)
    });
}

/// Makes both versions exist as images in the local node's registry (the kubelet pulls them like
/// any image); an existing cluster is expected to reach them in its own registry.
fn publish_versions() -> anyhow::Result<()> {
    let layout = crate::cluster::layout();
    let Some(node) = crate::cluster::node::running(&layout)? else {
        eprintln!(
            "[bench] no local node: the cluster must pull fp-api-server {FIRST_VERSION} and {SECOND_VERSION} itself"
        );
        return Ok(());
    };
    for version in [FIRST_VERSION, SECOND_VERSION] {
        node.publish_api_release(&layout.bin().join("crane"), version, &[])?;
    }
    Ok(())
}

pub fn operator(options: &OperatorOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=9999).contains(&options.count),
        "--count must be between 1 and 9999"
    );
    let kubectl = bench_platform::connect()?;
    let url = bench_platform::database_url(&kubectl)?;
    let operator = find_operator(&kubectl)?;
    eprintln!(
        "[bench] operator pod {} (pid {}, metrics http://{}/metrics)",
        operator.name, operator.pid, operator.admin
    );
    if namespace_exists(&kubectl) {
        eprintln!("[bench] namespace {NAMESPACE} is left from an earlier run");
        delete_namespace(&kubectl);
    }
    check_capacity(&kubectl, options.count)?;
    publish_versions()?;

    let _guard = NamespaceGuard { kubectl: &kubectl };
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    let secret = bench_platform::database_secret(NAMESPACE, SECRET, &url);
    for manifest in [namespace, secret] {
        kubectl.run_with_input(&["apply", "-f", "-"], Some(&manifest.to_string()))?;
    }
    let bench = Bench {
        kubectl: &kubectl,
        sampler: RssSampler::start(operator.pid),
        operator,
        options,
    };
    let hwm_before = status_kib(bench.operator.pid, "VmHWM").map_or(0.0, mib);

    let create = bench.phase("create", FIRST_VERSION)?;
    bench.settle(FIRST_VERSION)?;
    let rollout = bench.phase("rollout", SECOND_VERSION)?;
    bench.settle(SECOND_VERSION)?;
    let steady = bench.steady()?;
    let hwm_after = status_kib(bench.operator.pid, "VmHWM").map_or(0.0, mib);
    let phases = vec![create, rollout, steady];

    print_table(options.count, &phases);
    let peak = phases.iter().map(|p| p.peak_rss_mib).fold(0.0, f64::max);
    println!();
    println!(
        "operator peak RSS {peak:.1} MiB (VmHWM {hwm_before:.1} → {hwm_after:.1} MiB); target < {RSS_TARGET_MIB} MiB: {}",
        if peak < RSS_TARGET_MIB {
            "met"
        } else {
            "NOT met"
        }
    );
    let steady = &phases[2];
    let writes = steady.counts.writes;
    println!(
        "steady state {:.0}s: {:.0} reconciles, {:.0} reads, {writes:.0} writes (must be 0){}, {:.0} Lease writes (leader election)",
        steady.seconds,
        steady.counts.reconciles,
        steady.counts.reads,
        if steady.counts.writes_by.is_empty() {
            String::new()
        } else {
            format!(" {:?}", steady.counts.writes_by)
        },
        steady.counts.lease_writes,
    );
    bench_platform::write_report(
        "operator",
        &json!({
            "count": options.count,
            "namespace": NAMESPACE,
            "versions": [FIRST_VERSION, SECOND_VERSION],
            "steady_window_seconds": options.steady.as_secs_f64(),
            "operator_vm_hwm_mib": {"before": hwm_before, "after": hwm_after},
            "rss_target_mib": RSS_TARGET_MIB,
            "phases": phases,
        }),
    )?;
    anyhow::ensure!(
        writes == 0.0,
        "the operator wrote {writes:.0} times while nothing changed: {:?}",
        steady.counts.writes_by
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_small_and_share_the_secret() {
        let list = instances(3, "1.0.0");
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[2]["metadata"]["name"], "op-0002");
        let spec = &items[0]["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["rollout"]["previewReplicas"], 1);
        assert_eq!(spec["database"]["migrations"]["enabled"], false);
        assert_eq!(spec["database"]["urlSecretRef"]["name"], SECRET);
        assert!(
            spec["rollout"]["analysis"]["failureLimit"].as_i64()
                < spec["rollout"]["analysis"]["count"].as_i64(),
            "the CRD's rule"
        );
        assert_eq!(items[1]["metadata"]["namespace"], NAMESPACE);
    }

    fn pod(name: &str, ip: &str, running: bool, id: &str) -> Value {
        json!({
            "metadata": {"name": name, "uid": format!("uid-{name}")},
            "spec": {"containers": [{"name": "operator", "ports": [{"name": "admin", "containerPort": 8081}]}]},
            "status": {"podIP": ip, "containerStatuses": [{
                "name": "operator", "containerID": id,
                "state": if running { json!({"running": {"startedAt": "2026-12-01T10:00:00Z"}}) } else { json!({"waiting": {}}) }}]}
        })
    }

    #[test]
    fn operator_pods_have_admin_address_and_pid() {
        let pods = json!({"items": [
            pod("a", "198.18.0.2", true, "containerd://89ab"),
            pod("b", "198.18.0.3", false, "containerd://cdef"),
        ]});
        assert_eq!(
            operator_pods(&pods, |_| Some(100)),
            vec![OperatorPod {
                name: "a".into(),
                admin: "198.18.0.2:8081".parse().unwrap(),
                pid: 100
            }],
            "a pod whose operator is not running is left out"
        );
        // The container id names no process: the pod's UID finds it.
        let real = json!({"items": [
            pod("d", "198.18.0.7", true, "containerd://0123abcd"),
            pod("e", "198.18.0.8", true, "containerd://4567ef01"),
        ]});
        assert_eq!(
            operator_pods(&real, |uid| (uid == "uid-d").then_some(4242)),
            vec![OperatorPod {
                name: "d".into(),
                admin: "198.18.0.7:8081".parse().unwrap(),
                pid: 4242
            }]
        );
    }

    fn scrape(text: &str) -> Scrape {
        Scrape::parse(text)
    }

    #[test]
    fn counts_split_reads_writes_watches_and_leases() {
        let before = scrape(
            r#"
fp_operator_reconciliations_total{result="success"} 10
fp_operator_reconcile_duration_seconds_bucket{result="success",le="0.1"} 10
fp_operator_reconcile_duration_seconds_bucket{result="success",le="1"} 10
fp_operator_reconcile_duration_seconds_bucket{result="success",le="+Inf"} 10
fp_operator_kube_requests_total{resource="deployments",verb="list"} 100
fp_operator_kube_requests_total{resource="leases",verb="update"} 7
"#,
        );
        let after = scrape(
            r#"
fp_operator_reconciliations_total{result="success"} 18
fp_operator_reconciliations_total{result="error"} 2
fp_operator_reconcile_duration_seconds_bucket{result="success",le="0.1"} 14
fp_operator_reconcile_duration_seconds_bucket{result="success",le="1"} 18
fp_operator_reconcile_duration_seconds_bucket{result="success",le="+Inf"} 18
fp_operator_reconcile_duration_seconds_bucket{result="error",le="0.1"} 0
fp_operator_reconcile_duration_seconds_bucket{result="error",le="1"} 2
fp_operator_reconcile_duration_seconds_bucket{result="error",le="+Inf"} 2
fp_operator_kube_requests_total{resource="deployments",verb="list"} 150
fp_operator_kube_requests_total{resource="deployments",verb="patch"} 4
fp_operator_kube_requests_total{resource="footballpredictions/status",verb="patch"} 6
fp_operator_kube_requests_total{resource="deployments",verb="watch"} 3
fp_operator_kube_requests_total{resource="leases",verb="update"} 9
fp_operator_kube_requests_total{resource="leases",verb="get"} 1
"#,
        );
        let c = counts(&before, &after);
        assert_eq!(c.reconciles, 10.0);
        assert_eq!(c.reconcile_failures, 2.0);
        // 10 new observations: 4 up to 0.1 s, 6 in (0.1, 1]; rank 5 → 0.1 + 0.9 × 1/6.
        assert!((c.reconcile_p50_ms.unwrap() - 250.0).abs() < 1e-6, "{c:?}");
        assert!((c.reconcile_p99_ms.unwrap() - 985.0).abs() < 1e-6, "{c:?}");
        assert_eq!((c.reads, c.writes, c.requests), (50.0, 10.0, 60.0));
        assert_eq!(c.writes_by["patch footballpredictions/status"], 6.0);
        assert_eq!(c.writes_by["patch deployments"], 4.0);
        assert_eq!(
            (c.watches, c.lease_requests, c.lease_writes),
            (3.0, 3.0, 2.0)
        );
        assert_eq!(c.per_reconcile(c.requests), Some(6.0));
        assert_eq!(Counts::default().per_reconcile(5.0), None);
    }

    #[test]
    fn standing_counts_goal_stages_and_aborts() {
        let list = json!({"items": [
            {"metadata": {"name": "op-0000"}, "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "active": {"version": "1.1.0"}, "rollout": {"stage": "Idle"}}},
            {"metadata": {"name": "op-0001"}, "status": {
                "conditions": [{"type": "Ready", "status": "False"}],
                "active": {"version": "1.0.0"},
                "rollout": {"stage": "Analysing", "targetVersion": "1.1.0"}}},
            {"metadata": {"name": "op-0002"}, "status": {
                "rollout": {"stage": "Aborted", "targetVersion": "1.1.0", "message": "check ready failed"}}},
            {"metadata": {"name": "op-0003"}},
        ]});
        let s = standing(&list, "1.1.0", ready_on("1.1.0"));
        assert_eq!(s.done, BTreeSet::from(["op-0000".to_owned()]));
        assert_eq!(
            s.stages,
            BTreeMap::from([
                ("(no status)".to_owned(), 1),
                ("Aborted".to_owned(), 1),
                ("Analysing".to_owned(), 1),
                ("Idle".to_owned(), 1)
            ])
        );
        assert_eq!(
            s.aborted,
            vec![("op-0002".to_owned(), "check ready failed".to_owned())]
        );
        assert!(standing(&list, "1.0.0", ready_on("1.0.0")).done.is_empty());
    }

    #[test]
    fn free_slots_are_allocatable_minus_running_pods_on_ready_nodes() {
        let nodes = json!({"items": [
            {"status": {"allocatable": {"pods": "250"}, "conditions": [{"type": "Ready", "status": "True"}]}},
            {"status": {"allocatable": {"pods": "250"}, "conditions": [{"type": "Ready", "status": "False"}]}},
        ]});
        let pods = json!({"items": [
            {"spec": {"nodeName": "n0"}, "status": {"phase": "Running"}},
            {"spec": {"nodeName": "n0"}, "status": {"phase": "Succeeded"}},
            {"spec": {}, "status": {"phase": "Pending"}},
        ]});
        assert_eq!(free_pod_slots(&nodes, &pods), 249);
    }

    #[test]
    fn changed_instances_compare_resource_versions() {
        let before = json!({"items": [
            {"metadata": {"name": "a", "resourceVersion": "1"}},
            {"metadata": {"name": "b", "resourceVersion": "2"}}]});
        let after = json!({"items": [
            {"metadata": {"name": "a", "resourceVersion": "1"}},
            {"metadata": {"name": "b", "resourceVersion": "5"}}]});
        assert_eq!(changed_instances(&before, &after), vec!["b".to_owned()]);
    }
}
