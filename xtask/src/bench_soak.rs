//! `cargo xtask bench soak`: fp-api-server under the mixed profile (80% cached prediction
//! reads, 15% match lists, 5% batches of 100) at a constant request rate for minutes, on
//! PostgreSQL with the shared football data imported. Every few seconds it samples the
//! server's resident memory, open file descriptors and PostgreSQL connections next to the
//! achieved rate, errors and latency; at the end it judges issue 7's targets (zero errors, RSS
//! growth after warm-up under 5%, no growth in fds or database connections). A table on stdout,
//! JSON under target/bench/; exits non-zero when a target is missed.
//!
//! The load generator is vegeta (built from its Go module, cached like the control plane's
//! binaries): it sends at the rate whatever the latency (an open model), where wrk would slow
//! down with the server. Its connections are capped, and the server's descriptors are judged
//! apart from the connections on its port, which come and go with the client's concurrency.
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::bench::{self, Backend, Owned, Stack, StackOptions};
use crate::gobuild::{self, GoEnv};
use crate::{answers, apt, interrupt, paths, postgres};

/// The options of `cargo xtask bench soak`.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakOptions {
    /// 20 s at 500 req/s (5 s warm-up), one season, dev build; growth is reported, not judged
    #[arg(long)]
    pub smoke: bool,
    /// Requests per second, held constant
    #[arg(long, default_value_t = 5000)]
    pub rate: u32,
    /// Judged time after the warm-up (e.g. 600s, 10m)
    #[arg(long, default_value = "10m", value_parser = bench::parse_duration)]
    pub duration: Duration,
    /// Load before judging starts: caches, the pool and the allocator settle
    #[arg(long, default_value = "60s", value_parser = bench::parse_duration)]
    pub warmup: Duration,
    /// Time between samples
    #[arg(long, default_value = "5s", value_parser = bench::parse_duration)]
    pub interval: Duration,
    /// The load generator's connections (one worker each)
    #[arg(long, default_value_t = 64)]
    pub connections: u32,
    /// Storage backend
    #[arg(long, default_value = "postgres")]
    pub backend: Backend,
    /// The football-data folder (default: FP_FOOTBALL_DATA, else ../shared/football-data)
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

impl SoakOptions {
    /// 20 s at 500 req/s on a dev build with one season: proves every step works in CI.
    pub fn smoke() -> Self {
        Self {
            smoke: true,
            rate: 500,
            duration: Duration::from_secs(15),
            warmup: Duration::from_secs(5),
            interval: Duration::from_secs(1),
            connections: 16,
            backend: Backend::Postgres,
            data: None,
        }
    }
}

/// The targets' limits, fixed here so every run is judged the same way (docs/performance.md).
pub struct Limits {
    /// Requests per second asked for.
    pub rate: f64,
    /// Share of `rate` that must be achieved after the warm-up (the soak must really run at it).
    pub min_rate_share: f64,
    /// RSS growth allowed: median of the last window over median of the first post-warm-up one.
    pub max_rss_growth: f64,
    /// Descriptors besides client connections allowed above the value at the end of the
    /// warm-up (a pooled database connection replaced, a file opened for a moment).
    pub fd_slack: u64,
    /// The load generator's connection cap: more client connections held by the server means
    /// it keeps connections the client closed.
    pub connections: u64,
    /// PostgreSQL connections allowed above the value at the end of the warm-up.
    pub db_slack: u64,
    pub warmup_s: f64,
    /// Length of the first and the last window of the RSS comparison.
    pub window_s: f64,
}

impl Limits {
    pub fn new(options: &SoakOptions) -> Self {
        let duration_s = options.duration.as_secs_f64();
        Self {
            rate: f64::from(options.rate),
            min_rate_share: 0.95,
            max_rss_growth: 0.05,
            fd_slack: 8,
            connections: u64::from(options.connections),
            db_slack: 2,
            warmup_s: options.warmup.as_secs_f64(),
            // One minute, or a third of a short run so the two windows never overlap.
            window_s: duration_s.min(180.0) / 3.0,
        }
    }
}

/// One sampling interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the load started, at the end of this interval (its planned time).
    pub elapsed_s: f64,
    /// Measured length of the interval.
    pub window_s: f64,
    /// Responses (and failures) that arrived during the interval.
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub rss_kib: u64,
    /// All open descriptors.
    pub fds: u64,
    /// Of `fds`, the connections on the listening port: the load generator's, and any the
    /// server failed to close.
    pub client_connections: u64,
    /// Connections to the bench database; `None` on SQLite.
    pub db_connections: Option<u64>,
    /// The machine's 1-minute load average (it is shared).
    pub load1: f64,
}

impl Sample {
    pub fn rate(&self) -> f64 {
        if self.window_s > 0.0 {
            self.requests as f64 / self.window_s
        } else {
            0.0
        }
    }
}

/// One target, judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub target: &'static str,
    pub measured: String,
    pub limit: String,
    pub met: bool,
    /// Judged by `--smoke` too; growth needs minutes to mean anything.
    pub in_smoke: bool,
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// A gauge must not grow: its maximum after the warm-up stays within `slack` of its value at
/// the end of the warm-up (the last sample at or before it; the first sample without one).
fn no_growth(
    target: &'static str,
    samples: &[Sample],
    warmup_s: f64,
    slack: u64,
    value: impl Fn(&Sample) -> Option<u64>,
) -> Check {
    let reference = samples
        .iter()
        .rev()
        .find(|s| s.elapsed_s <= warmup_s)
        .or(samples.first())
        .and_then(&value);
    let max_after = samples
        .iter()
        .filter(|s| s.elapsed_s > warmup_s)
        .filter_map(&value)
        .max();
    match (reference, max_after) {
        (Some(reference), Some(max)) => Check {
            target,
            measured: format!("max {max} ({reference} at end of warm-up)"),
            limit: format!("≤ {}", reference + slack),
            met: max <= reference + slack,
            in_smoke: false,
        },
        _ => Check {
            target,
            measured: "no samples".into(),
            limit: format!("≤ end of warm-up + {slack}"),
            met: false,
            in_smoke: false,
        },
    }
}

/// The verdict on a run's samples; `errors` (answers other than 2xx) and `answers` count the
/// whole run, warm-up included. The smoke judges correctness only (every answer documented,
/// the samples read): errors from overload, rates and connection counts depend on how busy the
/// machine is.
pub fn verdict(
    samples: &[Sample],
    errors: u64,
    requests: u64,
    answers: &answers::Tally,
    limits: &Limits,
) -> Vec<Check> {
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.elapsed_s > limits.warmup_s)
        .collect();
    let mut checks = vec![
        Check {
            target: "answers documented",
            measured: format!(
                "{} served, {} shed, {} other",
                answers.served, answers.shed, answers.undocumented
            ),
            limit: "0 other, ≥ 1 served".into(),
            met: answers.verdict().is_ok(),
            in_smoke: true,
        },
        Check {
            target: "errors (whole run)",
            measured: format!("{errors} of {requests}"),
            limit: "0".into(),
            met: errors == 0 && requests > 0,
            in_smoke: false,
        },
    ];

    let seconds: f64 = after.iter().map(|s| s.window_s).sum();
    let achieved = if seconds > 0.0 {
        after.iter().map(|s| s.requests).sum::<u64>() as f64 / seconds
    } else {
        0.0
    };
    let min_rate = limits.rate * limits.min_rate_share;
    checks.push(Check {
        target: "rate after warm-up",
        measured: format!("{achieved:.0} req/s"),
        limit: format!("≥ {min_rate:.0}"),
        met: achieved >= min_rate,
        in_smoke: false,
    });

    // Every sample must have read the server's gauges: proves the sampling works.
    let complete = !after.is_empty() && samples.iter().all(|s| s.rss_kib > 0 && s.fds > 0);
    checks.push(Check {
        target: "samples after warm-up",
        measured: format!("{} (RSS and fds read in all: {complete})", after.len()),
        limit: "≥ 1, all read".into(),
        met: complete,
        in_smoke: true,
    });

    let end = after.last().map_or(0.0, |s| s.elapsed_s);
    let mut first: Vec<f64> = after
        .iter()
        .filter(|s| s.elapsed_s <= limits.warmup_s + limits.window_s)
        .map(|s| s.rss_kib as f64)
        .collect();
    let mut last: Vec<f64> = after
        .iter()
        .filter(|s| s.elapsed_s > end - limits.window_s)
        .map(|s| s.rss_kib as f64)
        .collect();
    let limit = format!("< {:.0}%", limits.max_rss_growth * 100.0);
    checks.push(match (median(&mut first), median(&mut last)) {
        (Some(a), Some(b)) if a > 0.0 => {
            let growth = b / a - 1.0;
            Check {
                target: "RSS growth after warm-up",
                measured: format!(
                    "{:+.1}% ({:.1} → {:.1} MiB, {:.0} s medians)",
                    growth * 100.0,
                    a / 1024.0,
                    b / 1024.0,
                    limits.window_s
                ),
                limit,
                met: growth < limits.max_rss_growth,
                in_smoke: false,
            }
        }
        _ => Check {
            target: "RSS growth after warm-up",
            measured: "no samples".into(),
            limit,
            met: false,
            in_smoke: false,
        },
    });

    // Client connections come and go with the load generator's concurrency (a stall opens
    // more), so they are judged against its cap and the rest of the descriptors for growth.
    checks.push(no_growth(
        "other fds after warm-up",
        samples,
        limits.warmup_s,
        limits.fd_slack,
        |s| Some(s.fds.saturating_sub(s.client_connections)),
    ));
    let held = samples.iter().map(|s| s.client_connections).max();
    checks.push(Check {
        target: "client connections held",
        measured: held.map_or("no samples".into(), |n| format!("max {n}")),
        limit: format!("≤ {}", limits.connections),
        met: held.is_some_and(|n| n <= limits.connections),
        in_smoke: false,
    });
    if samples.iter().any(|s| s.db_connections.is_some()) {
        checks.push(no_growth(
            "DB connections after warm-up",
            samples,
            limits.warmup_s,
            limits.db_slack,
            |s| s.db_connections,
        ));
    }
    checks
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The scenarios of the mixed profile (`bench::MIXED`), whose answers' shapes smoke runs check.
const SOAK_SCENARIOS: [&str; 3] = ["cached", "list", "batch"];

/// Scenarios in an order that spreads each one evenly over a cycle (smooth weighted
/// round-robin), one cycle of the reduced weights long: 80/15/5 gives 20 requests.
pub fn mix_sequence(mix: &[(&'static str, u32)]) -> Vec<&'static str> {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let divisor = mix.iter().fold(0, |g, (_, w)| gcd(g, *w)).max(1);
    let weights: Vec<i64> = mix.iter().map(|(_, w)| i64::from(w / divisor)).collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; mix.len()];
    let mut sequence = Vec::new();
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(&weights) {
            *c += w;
        }
        let Some((pick, _)) = current
            .iter()
            .enumerate()
            .max_by_key(|&(i, c)| (*c, std::cmp::Reverse(i)))
        else {
            break;
        };
        current[pick] -= total;
        sequence.push(mix[pick].0);
    }
    sequence
}

/// vegeta's JSON targets, one a line; vegeta sends them round-robin, so one cycle of
/// [`mix_sequence`] gives the mixed profile exactly.
pub fn vegeta_targets(base_url: &str, setup: &bench::Setup) -> anyhow::Result<String> {
    let first = setup.ids.first().context("no match ids")?;
    let auth = format!("Bearer {}", setup.token);
    let batch = base64::engine::general_purpose::STANDARD.encode(bench::batch_body(&setup.ids));
    let mut out = String::new();
    for scenario in mix_sequence(&bench::MIXED) {
        let target = match scenario {
            "cached" => serde_json::json!({
                "method": "GET",
                "url": format!("{base_url}{}{first}", bench::PREDICTIONS_PATH),
                "header": {"Authorization": [auth]},
            }),
            "list" => serde_json::json!({
                "method": "GET",
                "url": format!("{base_url}{}", setup.list_path),
                "header": {"Authorization": [auth]},
            }),
            "batch" => serde_json::json!({
                "method": "POST",
                "url": format!("{base_url}{}", bench::BATCH_PATH),
                "header": {"Authorization": [auth], "Content-Type": ["application/json"]},
                "body": batch,
            }),
            other => bail!("no request for scenario {other}"),
        };
        out.push_str(&target.to_string());
        out.push('\n');
    }
    Ok(out)
}

/// One response (or failure) as `vegeta encode -to json` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub status: u16,
    pub latency_us: u32,
    /// What went wrong, for non-2xx answers and socket errors.
    pub error: Option<String>,
    /// The answer judged (smoke runs keep the first bytes of bodies so a 503's code is read).
    pub answer: answers::Answer,
}

#[derive(Deserialize)]
struct VegetaResult {
    code: u16,
    /// Nanoseconds.
    latency: u64,
    #[serde(default)]
    error: String,
    /// Base64, cut at `-max-body`.
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    headers: Option<BTreeMap<String, Vec<String>>>,
}

pub fn parse_hit(line: &str) -> Option<Hit> {
    let r: VegetaResult = serde_json::from_str(line).ok()?;
    let body = r
        .body
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_default();
    let retry_after = r
        .headers
        .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("retry-after")));
    let answer = answers::judge(r.code, retry_after, &body, &r.error);
    let error = if !r.error.is_empty() {
        Some(r.error)
    } else if !(200..300).contains(&r.code) {
        Some(format!("HTTP {}", r.code))
    } else {
        None
    };
    Some(Hit {
        status: r.code,
        latency_us: u32::try_from(r.latency / 1000).unwrap_or(u32::MAX),
        error,
        answer,
    })
}

/// What arrived since the last sample, and the run's totals.
#[derive(Default)]
struct Tally {
    window_latencies_us: Vec<u32>,
    window_requests: u64,
    window_errors: u64,
    requests: u64,
    errors: u64,
    statuses: BTreeMap<String, u64>,
    first_errors: Vec<String>,
    answers: answers::Tally,
}

impl Tally {
    fn add(&mut self, hit: Option<Hit>) {
        self.requests += 1;
        self.window_requests += 1;
        let error = match hit {
            Some(hit) => {
                self.window_latencies_us.push(hit.latency_us);
                *self.statuses.entry(hit.status.to_string()).or_default() += 1;
                self.answers.add(hit.answer);
                hit.error
            }
            None => {
                let what = "unreadable result line from vegeta";
                self.answers.add(answers::Answer::Undocumented(what.into()));
                Some(what.into())
            }
        };
        if let Some(error) = error {
            self.errors += 1;
            self.window_errors += 1;
            if self.first_errors.len() < 5 {
                self.first_errors.push(error);
            }
        }
    }
}

fn vegeta_binary() -> anyhow::Result<PathBuf> {
    let go = GoEnv::locate(&paths::cache_dir())?;
    let group = gobuild::Group {
        name: "vegeta",
        module_dir: paths::workspace_root().join("xtask/go/vegeta"),
        binaries: vec![("vegeta", "github.com/tsenart/vegeta/v12")],
        tags: "",
        ldflags: "-s -w".into(),
    };
    Ok(gobuild::ensure_tool(&go, &group)?.join("vegeta"))
}

/// `vegeta attack | vegeta encode -to json`: the attack and the encoder, and the encoder's
/// output (one JSON result a line).
fn start_load(
    vegeta: &Path,
    targets: &Path,
    options: &SoakOptions,
    scratch: &Path,
) -> anyhow::Result<(Owned, Owned, std::process::ChildStdout)> {
    let total = options.warmup + options.duration;
    let connections = options.connections.to_string();
    let log = std::fs::File::create(scratch.join("vegeta.log"))?;
    // Smoke runs keep the first KiB of each body, enough for an error's code, and wait longer
    // than the server's own 30-s request timeout, so a starved server answers (503 `timeout`)
    // before the client gives up; benchmarks keep no bodies.
    let (timeout, max_body) = if options.smoke {
        ("60s", 1024)
    } else {
        ("10s", 0)
    };
    let mut attack = Command::new(vegeta)
        .arg("attack")
        .arg(format!("-targets={}", targets.display()))
        .args(["-format=json", &format!("-timeout={timeout}")])
        .arg(format!("-max-body={max_body}"))
        .arg(format!("-rate={}/1s", options.rate))
        .arg(format!("-duration={}ms", total.as_millis()))
        // A fixed pool of workers sharing at most as many keep-alive connections.
        .args(["-workers", &connections, "-max-workers", &connections])
        .args([
            "-connections",
            &connections,
            "-max-connections",
            &connections,
        ])
        .stdout(Stdio::piped())
        .stderr(log.try_clone()?)
        .spawn()
        .context("starting vegeta attack")?;
    let results = attack
        .stdout
        .take()
        .context("vegeta attack has no stdout")?;
    let attack = Owned(attack);
    let mut encode = Command::new(vegeta)
        .args(["encode", "-to", "json"])
        .stdin(results)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting vegeta encode")?;
    let lines = encode
        .stdout
        .take()
        .context("vegeta encode has no stdout")?;
    Ok((attack, Owned(encode), lines))
}

/// The socket inodes of `/proc/PID/fd` link targets (`socket:[12345]`).
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// How many of `inodes` are connections on local `port` in `/proc/net/tcp` text (the
/// listening socket, state 0A, excluded).
pub fn port_connections(net_tcp: &str, port: u16, inodes: &HashSet<u64>) -> u64 {
    net_tcp
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let listening = fields.get(3) == Some(&"0A");
            let inode = fields.get(9).and_then(|i| i.parse::<u64>().ok());
            local_port == Some(port) && !listening && inode.is_some_and(|i| inodes.contains(&i))
        })
        .count() as u64
}

/// All open descriptors of `pid`, and how many are connections on `port`.
fn descriptors(pid: u32, port: u16) -> Option<(u64, u64)> {
    let mut count = 0;
    let mut sockets = HashSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()? {
        count += 1;
        let Ok(entry) = entry else { continue };
        if let Some(inode) = std::fs::read_link(entry.path())
            .ok()
            .and_then(|l| socket_inode(&l.to_string_lossy()))
        {
            sockets.insert(inode);
        }
    }
    let mut connections = 0;
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        connections += port_connections(&text, port, &sockets);
    }
    Some((count, connections))
}

fn db_connections(pg: &postgres::Postgres) -> anyhow::Result<u64> {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'",
        bench::BENCH_DATABASE
    );
    let out = pg.query(&sql)?;
    out.parse()
        .with_context(|| format!("pg_stat_activity count: {out:?}"))
}

fn fmt_elapsed(s: f64) -> String {
    let s = s.round() as u64;
    format!("{}m{:02}s", s / 60, s % 60)
}

/// Reads the gauges after one interval and turns the window into a sample.
fn take_sample(
    stack: &mut Stack,
    tally: &Mutex<Tally>,
    elapsed_s: f64,
    window_s: f64,
) -> anyhow::Result<(Sample, Vec<u32>)> {
    let (mut latencies, requests, errors) = {
        let mut t = tally
            .lock()
            .map_err(|_| anyhow::anyhow!("result reader panicked"))?;
        (
            std::mem::take(&mut t.window_latencies_us),
            std::mem::take(&mut t.window_requests),
            std::mem::take(&mut t.window_errors),
        )
    };
    latencies.sort_unstable();
    let server = &mut stack.server;
    let port = server.port().context("server URL without a port")?;
    let (Some(rss_kib), Some((fds, client_connections))) =
        (server.rss_kib(), descriptors(server.pid(), port))
    else {
        let status = server.exited().map(|s| s.to_string()).unwrap_or_default();
        bail!("fp-api-server is gone during the soak ({status}); see its api.log");
    };
    let db_connections = stack.postgres().map(db_connections).transpose()?;
    let ms = |us: u32| f64::from(us) / 1000.0;
    let sample = Sample {
        elapsed_s,
        window_s,
        requests,
        errors,
        p50_ms: ms(percentile(&latencies, 50.0)),
        p99_ms: ms(percentile(&latencies, 99.0)),
        max_ms: ms(latencies.last().copied().unwrap_or(0)),
        rss_kib,
        fds,
        client_connections,
        db_connections,
        load1: crate::procfs::load_average(),
    };
    Ok((sample, latencies))
}

#[derive(Serialize)]
struct LatencySummary {
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

#[derive(Serialize)]
struct Report<'a> {
    backend: &'static str,
    smoke: bool,
    rate: u32,
    warmup_s: f64,
    duration_s: f64,
    interval_s: f64,
    connections: u32,
    cpus: usize,
    requests: u64,
    errors: u64,
    statuses: &'a BTreeMap<String, u64>,
    first_errors: &'a [String],
    latency_after_warmup: LatencySummary,
    checks: &'a [Check],
    samples: &'a [Sample],
}

fn print_table(checks: &[Check], smoke: bool) {
    println!(
        "{:<30} {:<44} {:<14} verdict",
        "target", "measured", "limit"
    );
    for c in checks {
        let verdict = match (c.met, smoke && !c.in_smoke) {
            (true, _) => "met",
            (false, true) => "missed (not judged in smoke)",
            (false, false) => "MISSED",
        };
        println!(
            "{:<30} {:<44} {:<14} {verdict}",
            c.target, c.measured, c.limit
        );
    }
}

/// The targets a run missed, as the error lists them; a smoke run judges only its own.
fn missed(checks: &[Check], smoke: bool) -> Vec<String> {
    checks
        .iter()
        .filter(|c| !c.met && (c.in_smoke || !smoke))
        .map(|c| format!("{}: {} (limit {})", c.target, c.measured, c.limit))
        .collect()
}

pub fn soak(options: &SoakOptions) -> anyhow::Result<()> {
    anyhow::ensure!(options.rate > 0, "--rate must be above 0");
    anyhow::ensure!(options.connections > 0, "--connections must be above 0");
    anyhow::ensure!(
        options.interval > Duration::ZERO && options.duration >= options.interval * 3,
        "--duration must hold at least 3 sampling intervals"
    );
    apt::ensure(&["curl"])?;
    let vegeta = vegeta_binary()?;
    let data = bench::data_or_demo(options.data.as_deref(), options.smoke)?;
    // The demo league lives in the zero-setup SQLite database only.
    let backend = if data.is_none() {
        Backend::Sqlite
    } else {
        options.backend
    };
    let api_bin = bench::binary(&bench::binaries(options.smoke)?, "fp-api-server")?;
    let scratch = bench::scratch_dir("soak-run")?;
    let mut stack = bench::start_stack(&StackOptions {
        api_bin: &api_bin,
        backend,
        data: data.as_deref(),
        smoke: options.smoke,
        scratch: &scratch,
        pg_state: "soak-postgres",
    })?;
    let targets = scratch.join("targets.jsonl");
    std::fs::write(&targets, vegeta_targets(&stack.server.url, &stack.setup)?)?;
    if options.smoke {
        bench::check_shapes(&stack.server.url, &stack.setup, &SOAK_SCENARIOS, &scratch)?;
    }

    let limits = Limits::new(options);
    let total = options.warmup + options.duration;
    eprintln!(
        "[soak] mixed profile at {} req/s on {}: {} s warm-up + {} s judged, {} connections, a sample every {} s",
        options.rate,
        bench::backend_name(backend),
        options.warmup.as_secs(),
        options.duration.as_secs(),
        options.connections,
        options.interval.as_secs_f64()
    );
    let (mut attack, encode, lines) = start_load(&vegeta, &targets, options, &scratch)?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let reader = {
        let tally = Arc::clone(&tally);
        std::thread::spawn(move || {
            for line in BufReader::new(lines).lines().map_while(Result::ok) {
                if let Ok(mut t) = tally.lock() {
                    t.add(parse_hit(&line));
                }
            }
        })
    };

    let t0 = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut after_warmup: Vec<u32> = Vec::new();
    let mut last = t0;
    let mut k = 1u32;
    loop {
        let planned = (options.interval * k).min(total);
        while t0.elapsed() < planned {
            interrupt::check()?;
            if let Ok(Some(status)) = attack.0.try_wait()
                && (!status.success() || t0.elapsed() + options.interval < total)
            {
                bail!(
                    "vegeta attack ended early ({status}); see {}",
                    scratch.join("vegeta.log").display()
                );
            }
            std::thread::sleep(
                planned
                    .saturating_sub(t0.elapsed())
                    .min(Duration::from_millis(50)),
            );
        }
        let now = Instant::now();
        let elapsed_s = planned.as_secs_f64();
        let (sample, latencies) =
            take_sample(&mut stack, &tally, elapsed_s, (now - last).as_secs_f64())?;
        last = now;
        let phase = if elapsed_s <= limits.warmup_s {
            "warm-up"
        } else {
            after_warmup.extend_from_slice(&latencies);
            "soak"
        };
        eprintln!(
            "[soak] {} {phase:<7} {:>6.0} req/s  p99 {:>7.2} ms  errors {:>3}  RSS {:>6.1} MiB  fds {:>4} ({:>3} client)  db {:>3}  load {:.1}",
            fmt_elapsed(elapsed_s),
            sample.rate(),
            sample.p99_ms,
            sample.errors,
            sample.rss_kib as f64 / 1024.0,
            sample.fds,
            sample.client_connections,
            sample
                .db_connections
                .map_or("-".to_owned(), |n| n.to_string()),
            sample.load1
        );
        samples.push(sample);
        if planned >= total {
            break;
        }
        k += 1;
    }
    // vegeta finishes the requests in flight, then both processes exit.
    let status = attack.0.wait()?;
    drop(encode);
    let _ = reader.join();
    anyhow::ensure!(
        status.success(),
        "vegeta attack failed ({status}); see {}",
        scratch.join("vegeta.log").display()
    );
    if options.smoke {
        // The server still answers right after the load.
        bench::check_shapes(&stack.server.url, &stack.setup, &SOAK_SCENARIOS, &scratch)?;
    }
    stack.stop()?;

    let tally = tally
        .lock()
        .map_err(|_| anyhow::anyhow!("result reader panicked"))?;
    let checks = verdict(
        &samples,
        tally.errors,
        tally.requests,
        &tally.answers,
        &limits,
    );
    after_warmup.sort_unstable();
    let ms = |p: f64| f64::from(percentile(&after_warmup, p)) / 1000.0;
    let latency = LatencySummary {
        p50_ms: ms(50.0),
        p90_ms: ms(90.0),
        p99_ms: ms(99.0),
        p999_ms: ms(99.9),
        max_ms: ms(100.0),
    };
    println!(
        "soak: {} req/s for {} s after {} s warm-up on {}; {} requests, statuses {:?}",
        options.rate,
        options.duration.as_secs(),
        options.warmup.as_secs(),
        bench::backend_name(backend),
        tally.requests,
        tally.statuses
    );
    println!(
        "latency after warm-up: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.1} ms",
        latency.p50_ms, latency.p90_ms, latency.p99_ms, latency.p999_ms, latency.max_ms
    );
    print_table(&checks, options.smoke);
    bench::write_json(
        "soak",
        &Report {
            backend: bench::backend_name(backend),
            smoke: options.smoke,
            rate: options.rate,
            warmup_s: options.warmup.as_secs_f64(),
            duration_s: options.duration.as_secs_f64(),
            interval_s: options.interval.as_secs_f64(),
            connections: options.connections,
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            requests: tally.requests,
            errors: tally.errors,
            statuses: &tally.statuses,
            first_errors: &tally.first_errors,
            latency_after_warmup: latency,
            checks: &checks,
            samples: &samples,
        },
    )?;
    if !tally.first_errors.is_empty() {
        eprintln!("[soak] first errors: {:?}", tally.first_errors);
    }
    let missed = missed(&checks, options.smoke);
    anyhow::ensure!(
        missed.is_empty(),
        "soak targets missed: {}",
        missed.join("; ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::new(&SoakOptions {
            smoke: false,
            rate: 5000,
            duration: Duration::from_secs(600),
            warmup: Duration::from_secs(60),
            interval: Duration::from_secs(5),
            connections: 64,
            backend: Backend::Postgres,
            data: None,
        })
    }

    /// 11 minutes of 5 s samples at 5000 req/s with 64 client connections; `rss`, `fds` (all
    /// descriptors) and `db` give each sample's gauges from its index.
    fn run(
        rss: impl Fn(usize) -> u64,
        fds: impl Fn(usize) -> u64,
        db: impl Fn(usize) -> Option<u64>,
    ) -> Vec<Sample> {
        (0..132)
            .map(|i| Sample {
                elapsed_s: 5.0 * (i + 1) as f64,
                window_s: 5.0,
                requests: 25_000,
                errors: 0,
                p50_ms: 0.5,
                p99_ms: 2.0,
                max_ms: 9.0,
                rss_kib: rss(i),
                fds: fds(i),
                client_connections: 64,
                db_connections: db(i),
                load1: 2.0,
            })
            .collect()
    }

    /// ±3% around 100 MiB, deterministic, no trend.
    fn noisy(i: usize) -> u64 {
        let wobble = [0i64, 3, -2, 1, -3, 2, -1][i % 7];
        (102_400 + wobble * 1024) as u64
    }

    /// A run whose `n` answers were all 2xx.
    fn served(n: u64) -> answers::Tally {
        let mut tally = answers::Tally::default();
        tally.add_many(answers::Answer::Served, n);
        tally
    }

    fn check<'a>(checks: &'a [Check], target: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.target == target)
            .unwrap_or_else(|| panic!("no check {target}: {checks:?}"))
    }

    #[test]
    fn a_flat_noisy_run_meets_every_target() {
        // fds and connections wobble by a few but do not climb.
        let samples = run(noisy, |i| 90 + (i % 4) as u64, |i| Some(3 + (i % 2) as u64));
        let checks = verdict(&samples, 0, 3_300_000, &served(3_300_000), &limits());
        assert_eq!(checks.len(), 8);
        assert!(checks.iter().all(|c| c.met), "{checks:#?}");
        assert!(
            check(&checks, "RSS growth after warm-up")
                .measured
                .contains("60 s medians")
        );
    }

    #[test]
    fn steadily_growing_memory_fails() {
        // +10% over the run in small steps: each step is within the noise of its neighbours.
        let samples = run(|i| 100_000 + i as u64 * 80, |_| 90, |_| Some(3));
        let checks = verdict(&samples, 0, 3_300_000, &served(3_300_000), &limits());
        let rss = check(&checks, "RSS growth after warm-up");
        assert!(!rss.met, "{rss:?}");
        assert!(rss.measured.starts_with("+8."), "{rss:?}");
        assert!(check(&checks, "other fds after warm-up").met);
    }

    #[test]
    fn growth_during_the_warm_up_is_not_counted() {
        // Caches fill in the first minute (+50%), then memory is flat.
        let samples = run(
            |i| {
                if i < 12 {
                    60_000 + i as u64 * 3_000
                } else {
                    96_000
                }
            },
            |_| 90,
            |_| Some(3),
        );
        let checks = verdict(&samples, 0, 3_300_000, &served(3_300_000), &limits());
        assert!(check(&checks, "RSS growth after warm-up").met);
    }

    #[test]
    fn leaking_descriptors_or_connections_fail() {
        // One descriptor every 30 s: 20 more by the end.
        let samples = run(noisy, |i| 90 + i as u64 / 6, |_| Some(3));
        let fds = verdict(&samples, 0, 3_300_000, &served(3_300_000), &limits());
        let fd_check = check(&fds, "other fds after warm-up");
        assert!(!fd_check.met);
        assert_eq!(fd_check.measured, "max 47 (27 at end of warm-up)");
        assert_eq!(fd_check.limit, "≤ 35");

        let samples = run(noisy, |_| 90, |i| Some(if i > 100 { 8 } else { 3 }));
        let db = verdict(&samples, 0, 3_300_000, &served(3_300_000), &limits());
        assert!(!check(&db, "DB connections after warm-up").met);
        assert!(check(&db, "other fds after warm-up").met);
    }

    #[test]
    fn client_connections_may_come_and_go_up_to_the_cap() {
        // A stall halfway makes the load generator open all its connections: 20 more
        // descriptors, none of them the server's own.
        let mut samples = run(noisy, |i| if i < 60 { 70 } else { 90 }, |_| Some(3));
        for (i, s) in samples.iter_mut().enumerate() {
            s.client_connections = if i < 60 { 44 } else { 64 };
        }
        let checks = verdict(&samples, 0, 3_300_000, &served(3_300_000), &limits());
        assert!(checks.iter().all(|c| c.met), "{checks:#?}");

        // More connections than the client can have: the server keeps closed ones.
        samples[100].client_connections = 70;
        samples[100].fds = 96;
        let checks = verdict(&samples, 0, 3_300_000, &served(3_300_000), &limits());
        let held = check(&checks, "client connections held");
        assert!(!held.met);
        assert_eq!(
            (held.measured.as_str(), held.limit.as_str()),
            ("max 70", "≤ 64")
        );
    }

    #[test]
    fn counts_the_sockets_on_the_server_port() {
        // Port 0x1F90 = 8080: the listener, two connections of ours, one in TIME_WAIT (no
        // descriptor), one of another process; a client socket whose remote port is 8080.
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:B0FB 01 00000000:00000000 00:00000000 00000000     0        0 101 1 0 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:B0FC 08 00000000:00000000 00:00000000 00000000     0        0 102 1 0 20 4 30 10 -1
   3: 0100007F:1F90 0100007F:B0FD 06 00000000:00000000 03:00000DFE 00000000     0        0 0 3 0
   4: 0100007F:1F90 0100007F:B0FE 01 00000000:00000000 00:00000000 00000000     0        0 200 1 0 20 4 30 10 -1
   5: 0100007F:B0FB 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 103 1 0 20 4 30 10 -1
";
        let ours: HashSet<u64> = [100, 101, 102, 103].into();
        assert_eq!(port_connections(table, 8080, &ours), 2);
        assert_eq!(port_connections(table, 8081, &ours), 0);
        assert_eq!(port_connections("", 8080, &ours), 0);
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("/dev/null"), None);
        assert_eq!(socket_inode("anon_inode:[eventpoll]"), None);
    }

    #[test]
    fn any_error_or_a_missed_rate_fails() {
        let samples = run(noisy, |_| 90, |_| Some(3));
        let checks = verdict(&samples, 1, 3_300_000, &served(3_300_000), &limits());
        assert!(!check(&checks, "errors (whole run)").met);

        let mut slow = samples.clone();
        for s in &mut slow {
            s.requests = 23_000; // 4,600 req/s
        }
        let checks = verdict(&slow, 0, 3_036_000, &served(3_036_000), &limits());
        let rate = check(&checks, "rate after warm-up");
        assert!(!rate.met);
        assert_eq!(rate.measured, "4600 req/s");
    }

    #[test]
    fn sqlite_runs_have_no_connection_check_and_empty_runs_fail() {
        let samples = run(noisy, |_| 90, |_| None);
        let checks = verdict(&samples, 0, 3_300_000, &served(3_300_000), &limits());
        assert_eq!(checks.len(), 7);
        assert!(
            checks
                .iter()
                .all(|c| c.target != "DB connections after warm-up")
        );

        let checks = verdict(&[], 0, 0, &served(0), &limits());
        assert!(checks.iter().all(|c| !c.met), "{checks:#?}");
    }

    #[test]
    fn a_smoke_on_a_busy_machine_judges_answers_not_numbers() {
        // The run of issue 13: 13 of 10,000 shed with the overload 503 in a 5-s stall, 19
        // client connections against a cap of 16, the rate missed, memory doubled.
        let limits = Limits::new(&SoakOptions::smoke());
        let samples: Vec<Sample> = (0..20)
            .map(|i| Sample {
                elapsed_s: (i + 1) as f64,
                window_s: 1.0,
                requests: if (8..13).contains(&i) { 0 } else { 450 },
                errors: 0,
                p50_ms: 1.0,
                p99_ms: 900.0,
                max_ms: 5000.0,
                rss_kib: 70_000 + i as u64 * 4_000,
                fds: 40 + i as u64,
                client_connections: 19,
                db_connections: Some(5 + i as u64 / 4),
                load1: 5.7,
            })
            .collect();
        let mut answers = served(9987);
        answers.add_many(answers::Answer::Shed, 13);
        let checks = verdict(&samples, 13, 10_000, &answers, &limits);
        for target in [
            "errors (whole run)",
            "rate after warm-up",
            "client connections held",
            "RSS growth after warm-up",
            "other fds after warm-up",
            "DB connections after warm-up",
        ] {
            assert!(!check(&checks, target).met, "{target} should be missed");
        }
        assert_eq!(missed(&checks, true), Vec::<String>::new());
        assert_eq!(missed(&checks, false).len(), 6);

        // One answer the API does not document fails the smoke too.
        answers.add(answers::Answer::Undocumented("500 internal".into()));
        let checks = verdict(&samples, 14, 10_001, &answers, &limits);
        assert_eq!(
            missed(&checks, true),
            vec![
                "answers documented: 9987 served, 13 shed, 1 other (limit 0 other, ≥ 1 served)"
                    .to_owned()
            ]
        );
        // And so does a run whose sampler read nothing.
        let mut blind = samples.clone();
        blind[3].rss_kib = 0;
        let checks = verdict(&blind, 13, 10_000, &served(10_000), &limits);
        assert_eq!(missed(&checks, true).len(), 1);
    }

    #[test]
    fn short_runs_compare_thirds() {
        let mut short = SoakOptions::smoke();
        short.duration = Duration::from_secs(15);
        assert_eq!(Limits::new(&short).window_s, 5.0);
        assert_eq!(limits().window_s, 60.0);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&values, 99.9), 100);
        assert_eq!(percentile(&values, 100.0), 100);
        assert_eq!(percentile(&[7], 0.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn the_mix_is_exact_per_cycle_and_spread_out() {
        let sequence = mix_sequence(&bench::MIXED);
        assert_eq!(sequence.len(), 20);
        let count = |name| sequence.iter().filter(|s| **s == name).count();
        assert_eq!((count("cached"), count("list"), count("batch")), (16, 3, 1));
        // No two of the expensive requests back to back, even across the cycle boundary.
        let cyclic: Vec<_> = sequence.iter().chain(sequence.first()).collect();
        assert!(
            cyclic
                .windows(2)
                .all(|w| *w[0] == "cached" || *w[1] == "cached")
        );
        assert_eq!(mix_sequence(&[("a", 2), ("b", 1)]), vec!["a", "b", "a"]);
    }

    #[test]
    fn targets_carry_the_token_paths_and_batch_body() {
        let setup = bench::Setup {
            token: "tok".into(),
            ids: vec![7, 8, 9],
            list_path: "/api/v1/matches?league=E0&limit=50".into(),
            ..bench::Setup::default()
        };
        let text = vegeta_targets("http://127.0.0.1:9", &setup).unwrap();
        let targets: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(targets.len(), 20);
        assert!(
            targets
                .iter()
                .all(|t| t["header"]["Authorization"][0] == "Bearer tok")
        );
        let batch = targets.iter().find(|t| t["method"] == "POST").unwrap();
        assert_eq!(batch["url"], "http://127.0.0.1:9/api/v1/predictions/batch");
        let body = base64::engine::general_purpose::STANDARD
            .decode(batch["body"].as_str().unwrap())
            .unwrap();
        assert_eq!(body, br#"{"match_ids":[7,8,9]}"#);
        assert!(
            targets
                .iter()
                .any(|t| t["url"] == "http://127.0.0.1:9/api/v1/predictions/7")
        );
        assert!(
            targets
                .iter()
                .any(|t| t["url"] == "http://127.0.0.1:9/api/v1/matches?league=E0&limit=50")
        );
        let no_ids = bench::Setup {
            ids: Vec::new(),
            ..setup
        };
        assert!(vegeta_targets("http://x", &no_ids).is_err());
    }

    #[test]
    fn results_are_errors_unless_2xx_without_a_socket_error() {
        let ok = parse_hit(r#"{"attack":"","seq":1,"code":200,"timestamp":"2026-01-01T00:00:00Z","latency":1534000,"bytes_out":0,"bytes_in":120,"error":"","body":null,"method":"GET","url":"http://x/","headers":{}}"#).unwrap();
        assert_eq!(
            ok,
            Hit {
                status: 200,
                latency_us: 1534,
                error: None,
                answer: answers::Answer::Served,
            }
        );
        let status =
            parse_hit(r#"{"code":503,"latency":1000,"error":"503 Service Unavailable"}"#).unwrap();
        assert_eq!(status.error.as_deref(), Some("503 Service Unavailable"));
        // No body kept: a 503 whose code cannot be read is not the documented overload answer.
        assert!(matches!(status.answer, answers::Answer::Undocumented(_)));
        let plain = parse_hit(r#"{"code":404,"latency":1000,"error":""}"#).unwrap();
        assert_eq!(plain.error.as_deref(), Some("HTTP 404"));
        let socket =
            parse_hit(r#"{"code":0,"latency":10000000000,"error":"connection refused"}"#).unwrap();
        assert_eq!((socket.status, socket.latency_us), (0, 10_000_000));
        assert!(socket.error.is_some());
        assert_eq!(
            socket.answer,
            answers::Answer::Undocumented("no answer: connection refused".into())
        );
        assert!(parse_hit("not json").is_none());
    }

    #[test]
    fn smoke_results_carry_enough_body_to_judge_a_503() {
        let body = base64::engine::general_purpose::STANDARD
            .encode(br#"{"code":"timeout","message":"the request took too long"}"#);
        let line = format!(
            r#"{{"code":503,"latency":1000,"error":"503 Service Unavailable","body":"{body}","headers":{{"Retry-After":["1"],"Content-Type":["application/json"]}}}}"#
        );
        let hit = parse_hit(&line).unwrap();
        assert_eq!(hit.answer, answers::Answer::Shed);
        // Still an error for the benchmark, which judges zero errors.
        assert!(hit.error.is_some());
        let no_retry = line.replace(r#""Retry-After":["1"],"#, "");
        assert_eq!(
            parse_hit(&no_retry).unwrap().answer,
            answers::Answer::Undocumented("503 timeout without Retry-After".into())
        );
    }

    #[test]
    fn tallies_count_windows_and_keep_the_first_errors() {
        let mut tally = Tally::default();
        tally.add(parse_hit(r#"{"code":200,"latency":2000000}"#));
        for _ in 0..7 {
            tally.add(parse_hit(r#"{"code":500,"latency":1000000}"#));
        }
        tally.add(None);
        assert_eq!((tally.requests, tally.errors), (9, 8));
        assert_eq!((tally.window_requests, tally.window_errors), (9, 8));
        assert_eq!(tally.window_latencies_us.len(), 8);
        assert_eq!(tally.first_errors.len(), 5);
        assert_eq!(tally.statuses["500"], 7);
        assert_eq!((tally.answers.served, tally.answers.undocumented), (1, 8));
    }
}
