//! `cargo xtask test`: what CI runs. Installs what is missing, checks formatting and lints,
//! audits the dependencies (cargo-deny), runs unit and integration tests against a real PostgreSQL, builds and checks the images (dev
//! binaries) and cuts the dev dist from them, then the e2e suite on the local control plane with
//! a real node (kubelet, containerd) that installs the dist's chart and pulls those images; everything it started is stopped by pid, also on
//! failure or Ctrl-C.
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{cluster, paths, postgres, steps};

use crate::cargo::TEST_FEATURES;

fn cargo(args: &[&str]) -> Command {
    crate::cargo::command(args)
}

/// The e2e scenarios: the test targets of the e2e package.
const E2E_PACKAGE: &str = "fp-e2e";

/// Stops what it guards when dropped, so early returns, errors and panics all clean up.
struct Guard<T, F: FnMut(T)> {
    value: Option<T>,
    stop: F,
}

impl<T, F: FnMut(T)> Guard<T, F> {
    fn new(value: T, stop: F) -> Self {
        Self {
            value: Some(value),
            stop,
        }
    }
    fn get(&self) -> Option<&T> {
        self.value.as_ref()
    }
    fn finish(mut self) {
        if let Some(v) = self.value.take() {
            (self.stop)(v);
        }
    }
}

impl<T, F: FnMut(T)> Drop for Guard<T, F> {
    fn drop(&mut self) {
        if let Some(v) = self.value.take() {
            (self.stop)(v);
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

/// What to run: everything (CI), or only e2e scenarios while working on one.
#[derive(Default)]
pub struct Scope {
    pub e2e_only: bool,
    /// e2e test targets; all when empty.
    pub tests: Vec<String>,
}

pub fn run(scope: &Scope) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut timings: Vec<(&str, Duration)> = Vec::new();

    if !scope.e2e_only {
        timings.push((
            "fmt",
            steps::run(&mut cargo(&["fmt", "--all", "--", "--check"]))?,
        ));
        timings.push((
            "clippy",
            steps::run(&mut cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                TEST_FEATURES[0],
                TEST_FEATURES[1],
                "--",
                "-D",
                "warnings",
            ]))?,
        ));
        // Known-vulnerable, unmaintained or badly licensed dependencies fail here, before the
        // slow steps (deny.toml; the offline advisory snapshot when the live one is out of reach).
        timings.push(("dependency audit (deny)", {
            let t = Instant::now();
            crate::deny::check()?;
            t.elapsed()
        }));
    }

    // The backup tests' off-site destination: a real S3 server (built once, cached).
    let s3_server = crate::tools::s3s_fs()?;

    let stop_cluster = |_c: cluster::Cluster| {
        if let Err(e) = cluster::down() {
            eprintln!("[cluster] cleanup failed: {e:#}");
        }
    };
    // The node's bridge must exist before PostgreSQL can listen where its pods reach the host,
    // so the cluster starts first (it idles while the unit tests run).
    let t_cluster = Instant::now();
    let cluster = Guard::new(cluster::up()?, stop_cluster);
    timings.push(("cluster build + up", t_cluster.elapsed()));
    let registry = cluster
        .get()
        .map(|c| c.real_node.registry.clone())
        .unwrap_or_default();
    let for_pods = Some(cluster::node::RealNode::postgres_for_pods());

    let pg_state = paths::state_root().join("postgres-test");
    let pg = Guard::new(
        postgres::start_listening(&pg_state, for_pods)?,
        |pg: postgres::Postgres| {
            if let Err(e) = pg.stop() {
                eprintln!("[postgres] cleanup failed: {e:#}");
            }
        },
    );
    let pg_url = pg.get().map(|p| p.url.clone()).unwrap_or_default();
    let pg_bin_dir = pg.get().map(|p| p.bin_dir.clone()).unwrap_or_default();
    let with_pg = |mut cmd: Command| {
        cmd.env("FP_TEST_DATABASE_URL", &pg_url)
            .env("FP_REQUIRE_POSTGRES", "1")
            .env("FP_PG_BIN_DIR", &pg_bin_dir)
            .env("FP_TEST_S3_SERVER_BIN", &s3_server)
            .env("FP_REQUIRE_S3", "1")
            // xtask's own test runs cargo-deny (built by the audit step) on a vulnerable crate.
            .env("FP_REQUIRE_DENY", "1");
        cmd
    };

    if !scope.e2e_only {
        // One `--workspace` feature set for every cargo call, so nothing is compiled twice. The
        // e2e targets skip here (they are not given the cluster yet) and run for real below.
        timings.push((
            "unit + integration tests",
            steps::run(&mut with_pg(cargo(&[
                "test",
                "--workspace",
                TEST_FEATURES[0],
                TEST_FEATURES[1],
            ])))?,
        ));

        // The alert rules the operator and the chart generate, as Prometheus itself reads them.
        timings.push(("alert rules (promtool)", {
            let t = Instant::now();
            crate::alerts::check()?;
            t.elapsed()
        }));

        // The API attacked through its own OpenAPI document, as every role (the dev binary
        // just built; a fixed seed, so a failure can be replayed).
        timings.push(("schemathesis (4 roles)", {
            let t = Instant::now();
            crate::schemathesis::run(&crate::schemathesis::Options::ci())?;
            t.elapsed()
        }));
    }

    // The images from the debug binaries just built (a release build would cost minutes of CI;
    // `cargo xtask images` makes the release ones with the same recipe): built twice with the
    // same digests, proved with skopeo, umoci and runc, pushed to and pulled from a loopback
    // registry, refused by a read-only one and reported unreachable for an absent one.
    // They are pushed to the node's registry: the e2e suite's pods run them.
    timings.push(("images (dev) + checks", {
        let t = Instant::now();
        crate::images::build(&crate::images::Options {
            profile: crate::images::Profile::Dev,
            push: Some(registry),
            check: !scope.e2e_only,
            reproducible: !scope.e2e_only,
        })?;
        t.elapsed()
    }));

    // The release files cut from those images (`cargo xtask dist --profile dev`: nothing is
    // compiled again): the e2e suite installs the operator from the packaged chart, pinned by
    // the digest just pushed, as docs/install.md tells a user to.
    let t = Instant::now();
    let dist = crate::dist::run(&crate::dist::Options {
        profile: crate::images::Profile::Dev,
        out: None,
        images: None,
        without_digests: false,
    })?;
    timings.push(("dist (dev)", t.elapsed()));

    if !scope.e2e_only {
        // The benchmark pipelines end to end in seconds (speed is not judged here: speed targets
        // live in `cargo xtask bench`, not in timed tests; errors fail the step).
        timings.push(("bench api + soak --smoke", {
            let t = Instant::now();
            crate::bench::api(&crate::bench::ApiOptions::smoke())?;
            crate::bench_soak::soak(&crate::bench_soak::SoakOptions::smoke())?;
            t.elapsed()
        }));
    }

    let e2e_targets = if scope.tests.is_empty() {
        crate::cargo::targets(E2E_PACKAGE, "test")?
    } else {
        scope.tests.clone()
    };
    let mut args = vec!["test", "--workspace", TEST_FEATURES[0], TEST_FEATURES[1]];
    for target in &e2e_targets {
        args.extend(["--test", target.as_str()]);
    }
    let mut e2e = with_pg(cargo(&args));
    if let Some(c) = cluster.get() {
        e2e.envs(c.env());
    }
    e2e.env("FP_REQUIRE_E2E", "1");
    e2e.env("FP_E2E_DIST", &dist);
    // The monitoring scenario's Prometheus and Alertmanager (Debian's, unpacked with promtool).
    let monitoring = crate::alerts::monitoring_tools()?;
    e2e.env("FP_E2E_PROMETHEUS", &monitoring.prometheus)
        .env("FP_E2E_ALERTMANAGER", &monitoring.alertmanager);
    anyhow::ensure!(!e2e_targets.is_empty(), "{E2E_PACKAGE} has no test targets");
    timings.push(("e2e tests", steps::run(&mut e2e)?));

    cluster.finish();
    pg.finish();
    eprintln!(
        "\n== cargo xtask test passed in {} ==",
        fmt_duration(t0.elapsed())
    );
    for (step, d) in timings {
        eprintln!("  {step:<26} {}", fmt_duration(d));
    }
    Ok(())
}
