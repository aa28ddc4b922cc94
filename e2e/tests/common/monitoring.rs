//! A real monitoring stack for the scenarios: Prometheus (Debian's) and Alertmanager (built
//! from its Go module), the paths `cargo xtask test` gives in `FP_E2E_PROMETHEUS` and
//! `FP_E2E_ALERTMANAGER`, on loopback ports. Prometheus scrapes what the ServiceMonitors in the
//! cluster select, translated to scrape jobs the way prometheus-operator does with the
//! Kubernetes API as the source (Debian builds Prometheus without Kubernetes discovery, so the
//! harness lists the EndpointSlices itself every scrape interval and hands them over by file
//! discovery), and evaluates the PrometheusRules' groups; Alertmanager routes every alert to a
//! webhook receiver in the test.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::platform::{run, wait_for};

pub const PROMETHEUS_ENV: &str = "FP_E2E_PROMETHEUS";
pub const ALERTMANAGER_ENV: &str = "FP_E2E_ALERTMANAGER";

/// Prometheus scrapes and evaluates this often (the ServiceMonitors may ask for less often).
const INTERVAL: &str = "2s";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A ServiceMonitor endpoint: the scrape job it becomes.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub name: String,
    pub interval: String,
    pub path: String,
    /// The Service port name to scrape.
    pub port: String,
    /// Namespaces whose Services are selected.
    pub namespaces: Vec<String>,
    /// `key=value,…`: the Services' label selector.
    pub selector: String,
}

/// The jobs of one ServiceMonitor (one per endpoint), named as prometheus-operator names them.
pub fn jobs(monitor: &Value) -> Vec<Job> {
    let namespace = monitor["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    let name = monitor["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &monitor["spec"];
    let namespaces: Vec<String> = match spec["namespaceSelector"]["matchNames"].as_array() {
        Some(names) if !names.is_empty() => names
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect(),
        _ => vec![namespace.to_owned()],
    };
    let selector = spec["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",");
    spec["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, endpoint)| Job {
            name: format!("serviceMonitor/{namespace}/{name}/{i}"),
            interval: endpoint["interval"].as_str().unwrap_or(INTERVAL).to_owned(),
            path: endpoint["path"].as_str().unwrap_or("/metrics").to_owned(),
            port: endpoint["port"].as_str().unwrap_or_default().to_owned(),
            namespaces: namespaces.clone(),
            selector: selector.clone(),
        })
        .collect()
}

/// The file-discovery targets of one Service from its EndpointSlices: every address with the
/// named port, ready or not (a pod that fails its readiness check still reports why), labelled
/// `namespace`, `service`, `pod` and `job` as prometheus-operator labels them.
pub fn targets(namespace: &str, service: &str, port: &str, slices: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for slice in slices {
        let Some(number) = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == port)
            .and_then(|p| p["port"].as_i64())
        else {
            continue;
        };
        for endpoint in slice["endpoints"].as_array().into_iter().flatten() {
            let pod = endpoint["targetRef"]["name"].as_str().unwrap_or_default();
            for address in endpoint["addresses"].as_array().into_iter().flatten() {
                out.push(json!({
                    "targets": [format!("{}:{number}", address.as_str().unwrap_or_default())],
                    "labels": {"namespace": namespace, "service": service, "pod": pod, "job": service},
                }));
            }
        }
    }
    out
}

fn file_name(job: &str) -> String {
    format!("{}.json", job.replace('/', "_"))
}

/// The scrape config of a job: file discovery from what [`refresh_targets`] writes.
fn scrape_config(job: &Job, targets_dir: &Path) -> Value {
    json!({
        "job_name": job.name,
        "scrape_interval": job.interval,
        "metrics_path": job.path,
        "file_sd_configs": [{"files": [targets_dir.join(file_name(&job.name)).display().to_string()],
                             "refresh_interval": INTERVAL}],
    })
}

fn kubectl_json(args: &[&str]) -> Value {
    let out = Command::new("kubectl")
        .args(args)
        .args(["-o", "json"])
        .output();
    match out {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).unwrap_or_default(),
        _ => Value::Null,
    }
}

/// Writes each job's targets as the Kubernetes API lists them now (Prometheus re-reads them).
fn refresh_targets(jobs: &[Job], targets_dir: &Path) {
    for job in jobs {
        let mut groups = Vec::new();
        for namespace in &job.namespaces {
            let services = kubectl_json(&["get", "services", "-n", namespace, "-l", &job.selector]);
            for service in services["items"].as_array().into_iter().flatten() {
                let name = service["metadata"]["name"].as_str().unwrap_or_default();
                let slices = kubectl_json(&[
                    "get",
                    "endpointslices",
                    "-n",
                    namespace,
                    "-l",
                    &format!("kubernetes.io/service-name={name}"),
                ]);
                let slices = slices["items"].as_array().cloned().unwrap_or_default();
                groups.extend(targets(namespace, name, &job.port, &slices));
            }
        }
        let file = targets_dir.join(file_name(&job.name));
        let staging = file.with_extension("tmp");
        // Renamed into place: Prometheus never reads half a file.
        if std::fs::write(&staging, Value::from(groups).to_string()).is_ok() {
            let _ = std::fs::rename(&staging, &file);
        }
    }
}

/// One notification as Alertmanager's webhook posts it.
#[derive(Clone, Debug)]
pub struct Notification {
    /// `firing` or `resolved`.
    pub status: String,
    pub alerts: Vec<Value>,
}

/// The webhook receiver: every notification Alertmanager posted, in order.
#[derive(Clone, Default)]
pub struct Receiver {
    seen: Arc<Mutex<Vec<Notification>>>,
}

impl Receiver {
    fn record(&self, body: &Value) {
        let notification = Notification {
            status: body["status"].as_str().unwrap_or_default().to_owned(),
            alerts: body["alerts"].as_array().cloned().unwrap_or_default(),
        };
        self.seen.lock().unwrap().push(notification);
    }

    /// The alerts named `alertname` with `status` received so far.
    pub fn alerts(&self, alertname: &str, status: &str) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .flat_map(|n| n.alerts.iter())
            .filter(|a| a["labels"]["alertname"] == alertname && a["status"] == status)
            .cloned()
            .collect()
    }

    pub fn summary(&self) -> String {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|n| {
                let names: Vec<String> = n
                    .alerts
                    .iter()
                    .map(|a| format!("{}={}", a["labels"]["alertname"], a["status"]))
                    .collect();
                format!("{}: {}", n.status, names.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The running stack; dropping it stops both programs (by their pids) and removes their files.
pub struct Monitoring {
    prometheus: Child,
    alertmanager: Child,
    stop: Arc<AtomicBool>,
    refresher: Option<std::thread::JoinHandle<()>>,
    dir: tempfile::TempDir,
    pub prometheus_url: String,
    pub receiver: Receiver,
    http: reqwest::Client,
}

impl Drop for Monitoring {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(refresher) = self.refresher.take() {
            let _ = refresher.join();
        }
        for child in [&mut self.prometheus, &mut self.alertmanager] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the webhook receiver on a loopback port; returns its URL.
async fn start_receiver(receiver: Receiver) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let receiver = receiver.clone();
            async move {
                receiver.record(&body);
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

fn spawn(program: &str, args: &[String], log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"))
}

impl Monitoring {
    /// Starts Alertmanager and Prometheus for the ServiceMonitors and PrometheusRules of
    /// `namespaces`, and waits until Prometheus answers.
    pub async fn start(namespaces: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::default();
        let webhook = start_receiver(receiver.clone()).await;

        let alertmanager_port = free_port();
        let alertmanager_config = json!({
            "route": {"receiver": "test", "group_by": ["alertname"],
                      "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "test",
                           "webhook_configs": [{"url": webhook, "send_resolved": true}]}],
        });
        let am_config = dir.path().join("alertmanager.yml");
        std::fs::write(&am_config, alertmanager_config.to_string()).unwrap();
        let alertmanager = spawn(
            &super::node::env(ALERTMANAGER_ENV),
            &[
                format!("--config.file={}", am_config.display()),
                format!("--storage.path={}", dir.path().join("am").display()),
                format!("--web.listen-address=127.0.0.1:{alertmanager_port}"),
                // No gossip between replicas: it would listen on every interface.
                "--cluster.listen-address=".to_owned(),
            ],
            &dir.path().join("alertmanager.log"),
        );

        let prometheus_port = free_port();
        let namespaces: Vec<String> = namespaces.iter().map(|n| (*n).to_owned()).collect();
        let jobs = write_config(dir.path(), &namespaces, alertmanager_port);
        // Pods come and go: their addresses are listed again every scrape interval.
        let stop = Arc::new(AtomicBool::new(false));
        let refresher = {
            let stop = stop.clone();
            let targets_dir = dir.path().join("targets");
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    refresh_targets(&jobs, &targets_dir);
                    std::thread::sleep(std::time::Duration::from_secs(2));
                }
            })
        };
        let prometheus = spawn(
            &super::node::env(PROMETHEUS_ENV),
            &[
                format!(
                    "--config.file={}",
                    dir.path().join("prometheus.yml").display()
                ),
                format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
                format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
                "--web.enable-lifecycle".to_owned(),
            ],
            &dir.path().join("prometheus.log"),
        );
        let monitoring = Self {
            prometheus,
            alertmanager,
            stop,
            refresher: Some(refresher),
            dir,
            prometheus_url: format!("http://127.0.0.1:{prometheus_port}"),
            receiver,
            http: reqwest::Client::new(),
        };
        let url = format!("{}/-/ready", monitoring.prometheus_url);
        let http = monitoring.http.clone();
        wait_for("Prometheus ready", async || {
            let ok = http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            (ok.then_some(()), url.clone())
        })
        .await;
        monitoring
    }

    /// The result of an instant query.
    pub async fn query(&self, promql: &str) -> Vec<Value> {
        let response = self
            .http
            .get(
                reqwest::Url::parse_with_params(
                    &format!("{}/api/v1/query", self.prometheus_url),
                    [("query", promql)],
                )
                .unwrap(),
            )
            .send()
            .await;
        let Ok(response) = response else {
            return Vec::new();
        };
        let body: Value = response.json().await.unwrap_or_default();
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `promql` returns at least one series.
    pub async fn wait_series(&self, what: &str, promql: &str) -> Vec<Value> {
        wait_for(what, async || {
            let result = self.query(promql).await;
            (
                (!result.is_empty()).then_some(result.clone()),
                format!("{promql} → {result:?}; log tail: {}", self.log_tail()),
            )
        })
        .await
    }

    /// The names of the rule groups Prometheus loaded.
    pub async fn rule_groups(&self) -> Vec<String> {
        let body: Value = self
            .http
            .get(format!("{}/api/v1/rules", self.prometheus_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until the receiver got `alertname` with `status` (`firing` or `resolved`).
    pub async fn wait_notified(&self, alertname: &str, status: &str) -> Value {
        wait_for(
            &format!("{alertname} {status} at the receiver"),
            async || {
                let alerts = self.receiver.alerts(alertname, status);
                (
                    alerts.last().cloned(),
                    format!("received so far: {}", self.receiver.summary()),
                )
            },
        )
        .await
    }

    fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }
}

/// Writes prometheus.yml from the ServiceMonitors, the rule files from the PrometheusRules
/// now in the cluster and the first targets; returns the scrape jobs.
fn write_config(dir: &Path, namespaces: &[String], alertmanager_port: u16) -> Vec<Job> {
    let mut all_jobs = Vec::new();
    let rules_dir = dir.join("rules");
    let targets_dir = dir.join("targets");
    std::fs::create_dir_all(&rules_dir).unwrap();
    std::fs::create_dir_all(&targets_dir).unwrap();
    for namespace in namespaces {
        let monitors: Value = serde_json::from_str(&run(
            "kubectl",
            &["get", "servicemonitors", "-n", namespace, "-o", "json"],
        ))
        .unwrap();
        for monitor in monitors["items"].as_array().into_iter().flatten() {
            all_jobs.extend(jobs(monitor));
        }
        let rules: Value = serde_json::from_str(&run(
            "kubectl",
            &["get", "prometheusrules", "-n", namespace, "-o", "json"],
        ))
        .unwrap();
        for rule in rules["items"].as_array().into_iter().flatten() {
            let name = rule["metadata"]["name"].as_str().unwrap_or_default();
            let file = rules_dir.join(format!("{namespace}-{name}.yaml"));
            std::fs::write(file, serde_norway::to_string(&rule["spec"]).unwrap()).unwrap();
        }
    }
    let config = json!({
        "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [format!("127.0.0.1:{alertmanager_port}")]}]}]},
        "rule_files": [format!("{}/*.yaml", rules_dir.display())],
        "scrape_configs": all_jobs.iter().map(|j| scrape_config(j, &targets_dir)).collect::<Vec<_>>(),
    });
    std::fs::write(
        dir.join("prometheus.yml"),
        serde_norway::to_string(&config).unwrap(),
    )
    .unwrap();
    refresh_targets(&all_jobs, &targets_dir);
    all_jobs
}

/// Labels of a series as a map, for assertions.
pub fn labels(series: &Value) -> BTreeMap<String, String> {
    series["metric"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}
