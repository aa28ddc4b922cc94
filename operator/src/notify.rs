//! Webhook notifications (`spec.notifications`): Slack-compatible JSON posted to a URL read from a
//! Secret by the caller.
//!
//! Delivery never blocks a reconcile: [`Notifier::send`] only enqueues, and a background task posts
//! with a per-attempt timeout, retrying connection errors, timeouts, 429 and 5xx with capped
//! exponential backoff. Outcomes are kept per FootballPrediction ([`Notifier::delivery_state`]) for
//! the `NotificationsDelivered` condition. Webhook URLs embed tokens, so no error text ever
//! contains the URL.
//!
//! Ordering: notifications of one FootballPrediction are delivered in the order they were sent
//! (a retried "rollout started" is not overtaken by its "rolled back"); different
//! FootballPredictions are delivered concurrently, so one hanging webhook delays only its own.
//!
//! Metrics are left to the caller; the per-instance counts are in [`DeliveryState`].
//!
//! SSRF: whoever may write the Secret chooses where the operator posts, and the start of the
//! answer lands in the resource's status. So redirects are never followed, and unless the
//! operator runs with `--allow-internal-webhooks`, loopback (the operator's own ports),
//! link-local (cloud metadata at 169.254.169.254), unspecified, multicast and the IPv6 metadata
//! address are refused, whether the URL names them or a DNS name resolves to them.

use std::collections::HashMap;
use std::error::Error as _;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use reqwest::header::RETRY_AFTER;
use reqwest::{Client, StatusCode, Url};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::crd::{NotificationEvent, NotificationsSpec};

/// Shown in every attachment so readers know which system wrote the message.
const FOOTER: &str = "fp-operator";

/// Enough of a rejecting webhook's answer to explain it (Slack answers e.g. `invalid_payload`).
const MAX_BODY_EXCERPT: usize = 200;

/// One message about one FootballPrediction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub event: NotificationEvent,
    pub namespace: String,
    pub name: String,
    /// One line, e.g. "football/demo rolled back from 2.0.0 to 1.0.0: AnalysisFailed — …".
    pub text: String,
    /// Shown as short title/value pairs under the text.
    pub fields: Vec<(String, String)>,
}

/// Whether `spec` asks for `event`.
pub fn wanted(spec: &NotificationsSpec, event: NotificationEvent) -> bool {
    spec.events.contains(&event)
}

/// Slack attachment color of an event: success is green ("good"); rollbacks and failures are red
/// ("danger"); a started rollout is yellow ("warning") because a change is in progress and may
/// still roll back, which deserves attention but is not a failure.
pub fn event_color(event: NotificationEvent) -> &'static str {
    match event {
        NotificationEvent::RolloutSucceeded => "good",
        NotificationEvent::RolloutStarted => "warning",
        NotificationEvent::RolledBack
        | NotificationEvent::BackupFailed
        | NotificationEvent::RestoreVerifyFailed => "danger",
    }
}

/// The Slack-compatible body for `n` (incoming webhooks: `text` plus one attachment).
pub fn slack_payload(n: &Notification) -> Value {
    let fields: Vec<Value> = n
        .fields
        .iter()
        .map(|(title, value)| json!({"title": title, "value": value, "short": true}))
        .collect();
    json!({
        "text": n.text,
        "attachments": [{
            "color": event_color(n.event),
            "fields": fields,
            "footer": FOOTER,
        }],
    })
}

/// The waits between `attempts` attempts (so `attempts - 1` of them): `base`, `2·base`, `4·base`, …,
/// each at most `cap`. Deterministic: the operator sends few notifications, so there is no herd
/// that jitter would spread.
pub fn backoff_delays(attempts: u32, base: Duration, cap: Duration) -> Vec<Duration> {
    (0..attempts.saturating_sub(1))
        .map(|i| base.saturating_mul(2u32.saturating_pow(i)).min(cap))
        .collect()
}

/// The wait before the next attempt: the backoff, or longer if the webhook asked for it with
/// `Retry-After` (429), never more than `cap` so a hostile answer cannot park the queue.
pub fn retry_delay(backoff: Duration, retry_after: Option<Duration>, cap: Duration) -> Duration {
    retry_after
        .map_or(backoff, |asked| asked.max(backoff))
        .min(cap)
}

/// How deliveries are attempted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per notification, the first included (at least one is made).
    pub attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one.
    pub base_delay: Duration,
    /// Longest wait between attempts.
    pub max_delay: Duration,
    /// Time allowed for one POST, answer included.
    pub attempt_timeout: Duration,
    /// Notifications queued or in delivery at once; beyond this new ones are dropped.
    pub queue_capacity: usize,
    /// Also deliver to loopback, link-local and metadata addresses (`--allow-internal-webhooks`).
    pub allow_internal_addresses: bool,
}

impl Default for RetryPolicy {
    /// At most about a minute per notification: 4 attempts of up to 10 s, with waits of 2, 4 and 8 s.
    fn default() -> Self {
        Self {
            attempts: 4,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(10),
            queue_capacity: 256,
            allow_internal_addresses: false,
        }
    }
}

/// Delivery outcomes of one FootballPrediction's notifications.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryState {
    /// When the newest successful delivery ended.
    pub last_ok_at: Option<Timestamp>,
    /// Why the newest delivery failed; cleared by a later success. Never contains the URL.
    pub last_error: Option<String>,
    /// Notifications delivered.
    pub delivered: u64,
    /// Notifications given up on (retries exhausted, rejected, or dropped from a full queue).
    pub failed_deliveries: u64,
}

type InstanceKey = (String, String);
type States = Mutex<HashMap<InstanceKey, DeliveryState>>;

struct Job {
    url: String,
    notification: Notification,
    /// Held until the delivery ends, so queued plus in-flight notifications stay bounded.
    _slot: OwnedSemaphorePermit,
}

struct Shared {
    client: Client,
    policy: RetryPolicy,
    states: States,
}

impl Shared {
    fn record(&self, n: &Notification, outcome: Result<(), String>) {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let state = states
            .entry((n.namespace.clone(), n.name.clone()))
            .or_default();
        match outcome {
            Ok(()) => {
                state.last_ok_at = Some(Timestamp::now());
                state.last_error = None;
                state.delivered += 1;
            }
            Err(error) => {
                tracing::warn!(
                    namespace = %n.namespace,
                    name = %n.name,
                    event = ?n.event,
                    %error,
                    "notification not delivered"
                );
                state.last_error = Some(error);
                state.failed_deliveries += 1;
            }
        }
    }
}

/// Queue of webhook notifications with a background delivery task. Cheap to clone; the task ends
/// once every clone is dropped and the queued notifications are delivered.
#[derive(Clone)]
pub struct Notifier {
    queue: mpsc::UnboundedSender<Job>,
    slots: Arc<Semaphore>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("policy", &self.shared.policy)
            .field("free_slots", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Starts the delivery task; call from within a Tokio runtime.
    pub fn spawn(client: Client, policy: RetryPolicy) -> Notifier {
        let (queue, jobs) = mpsc::unbounded_channel();
        let slots = Arc::new(Semaphore::new(policy.queue_capacity));
        let shared = Arc::new(Shared {
            client,
            policy,
            states: Mutex::new(HashMap::new()),
        });
        tokio::spawn(dispatch(jobs, Arc::clone(&shared)));
        Notifier {
            queue,
            slots,
            shared,
        }
    }

    /// Queues `n` for `url` and returns at once. When the queue is full the new notification is
    /// dropped (those already queued keep their order) and counted as a failed delivery.
    pub fn send(&self, url: String, n: Notification) {
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            let error = format!(
                "notification queue full ({} pending); {:?} notification dropped",
                self.shared.policy.queue_capacity, n.event
            );
            self.shared.record(&n, Err(error));
            return;
        };
        let job = Job {
            url,
            notification: n,
            _slot: slot,
        };
        if let Err(mpsc::error::SendError(job)) = self.queue.send(job) {
            // Only when the delivery task is gone (its runtime shut down).
            let error = "notification task stopped; notification dropped".to_string();
            self.shared.record(&job.notification, Err(error));
        }
    }

    /// Delivery outcomes for one FootballPrediction, `None` before its first outcome.
    pub fn delivery_state(&self, namespace: &str, name: &str) -> Option<DeliveryState> {
        let states = self
            .shared
            .states
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        states
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Drops the outcomes of a deleted FootballPrediction.
    pub fn forget(&self, namespace: &str, name: &str) {
        let mut states = self
            .shared
            .states
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        states.remove(&(namespace.to_string(), name.to_string()));
    }
}

/// Starts one task per notification; each waits for the previous one of the same
/// FootballPrediction, which keeps per-instance order without one slow webhook delaying others.
async fn dispatch(mut jobs: mpsc::UnboundedReceiver<Job>, shared: Arc<Shared>) {
    let mut latest: HashMap<InstanceKey, JoinHandle<()>> = HashMap::new();
    while let Some(job) = jobs.recv().await {
        latest.retain(|_, task| !task.is_finished());
        let key = (
            job.notification.namespace.clone(),
            job.notification.name.clone(),
        );
        let previous = latest.remove(&key);
        let task = tokio::spawn(deliver_after(previous, job, Arc::clone(&shared)));
        latest.insert(key, task);
    }
}

async fn deliver_after(previous: Option<JoinHandle<()>>, job: Job, shared: Arc<Shared>) {
    if let Some(previous) = previous {
        // Its outcome is already recorded; only the order matters here.
        let _ = previous.await;
    }
    let payload = slack_payload(&job.notification);
    let outcome = deliver(&shared.client, &shared.policy, &job.url, &payload)
        .await
        .map_err(|error| redact(&error, &job.url));
    shared.record(&job.notification, outcome);
}

/// The result of one POST.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Delivered,
    /// Worth retrying: connection errors, timeouts, 429 and 5xx.
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help: other 4xx, an invalid URL.
    Permanent(String),
}

/// Posts `payload` until it is accepted, rejected, or the attempts run out. Errors name the
/// webhook, never its URL.
async fn deliver(
    client: &Client,
    policy: &RetryPolicy,
    url: &str,
    payload: &Value,
) -> Result<(), String> {
    let target = webhook_url(url, policy.allow_internal_addresses)
        .map_err(|reason| format!("{reason}, not retried"))?;
    let delays = backoff_delays(policy.attempts, policy.base_delay, policy.max_delay);
    let mut made = 0usize;
    loop {
        let attempt = post_once(client, target.clone(), payload, policy.attempt_timeout).await;
        made += 1;
        match attempt {
            Attempt::Delivered => return Ok(()),
            Attempt::Permanent(reason) => return Err(format!("{reason}, not retried")),
            Attempt::Retryable {
                reason,
                retry_after,
            } => {
                let Some(&backoff) = delays.get(made - 1) else {
                    return Err(format!("{reason} after {}", attempts_text(made)));
                };
                tokio::time::sleep(retry_delay(backoff, retry_after, policy.max_delay)).await;
            }
        }
    }
}

fn attempts_text(made: usize) -> String {
    if made == 1 {
        "1 attempt".to_string()
    } else {
        format!("{made} attempts")
    }
}

/// AWS's IPv6 instance metadata address (a unique-local address, so named on its own).
const IPV6_METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// Why a webhook may not be posted to `ip`, if it may not (pure).
pub fn forbidden_address(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    if ip.is_loopback() {
        Some("a loopback address")
    } else if link_local {
        Some("a link-local address (cloud metadata lives there)")
    } else if ip == IpAddr::V6(IPV6_METADATA) {
        Some("the cloud metadata address")
    } else if ip.is_unspecified() || ip.is_multicast() {
        Some("not a unicast address")
    } else {
        None
    }
}

/// Resolves webhook hosts, keeping only addresses a webhook may reach.
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| forbidden_address(a.ip()).is_none())
                .collect();
            if allowed.is_empty() && !found.is_empty() {
                let why = forbidden_address(found[0].ip()).unwrap_or("forbidden");
                return Err(
                    format!("the webhook's host resolves only to {why}, which is refused").into(),
                );
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The webhook HTTP client: no redirects ever (a 3xx is the answer); with `allow_internal`
/// false, names that resolve only to forbidden addresses fail to connect.
pub fn webhook_client(allow_internal: bool) -> Result<Client, reqwest::Error> {
    let builder = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "fp-operator/",
            env!("CARGO_PKG_VERSION"),
            " notifications"
        ));
    if allow_internal {
        builder.build()
    } else {
        builder.dns_resolver(Arc::new(GuardedResolver)).build()
    }
}

/// Parses the Secret's URL; the parse error is kept (it never echoes the input), the URL is not.
/// An address written into the URL is judged here (DNS names by the client's resolver).
fn webhook_url(url: &str, allow_internal: bool) -> Result<Url, String> {
    let parsed = Url::parse(url.trim())
        .map_err(|e| format!("webhook URL in the Secret is not a valid URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("webhook URL in the Secret must use http or https".to_string());
    }
    let literal = parsed
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<IpAddr>().ok());
    if let Some(why) = literal
        .filter(|_| !allow_internal)
        .and_then(forbidden_address)
    {
        return Err(format!(
            "webhook URL in the Secret names {why}, which is refused (--allow-internal-webhooks)"
        ));
    }
    Ok(parsed)
}

async fn post_once(client: &Client, url: Url, payload: &Value, timeout: Duration) -> Attempt {
    let response = match client.post(url).timeout(timeout).json(payload).send().await {
        Ok(response) => response,
        Err(e) => {
            return Attempt::Retryable {
                reason: describe_transport_error(&e, timeout),
                retry_after: None,
            };
        }
    };
    let status = response.status();
    if status.is_success() {
        return Attempt::Delivered;
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after_seconds);
        return Attempt::Retryable {
            reason: format!("webhook answered {}", status.as_u16()),
            retry_after,
        };
    }
    let excerpt = body_excerpt(response).await;
    Attempt::Permanent(match excerpt {
        Some(body) => format!("webhook answered {} ({body})", status.as_u16()),
        None => format!("webhook answered {}", status.as_u16()),
    })
}

/// `Retry-After` in seconds; the HTTP-date form is ignored (the backoff applies).
fn retry_after_seconds(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The start of a rejecting answer's body on one line, if it has any text. Read in chunks so a
/// huge body is not buffered.
async fn body_excerpt(mut response: reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_BODY_EXCERPT {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let one_line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_BODY_EXCERPT)
        .collect();
    (!one_line.is_empty()).then_some(one_line)
}

/// Describes a failed request from its causes only: reqwest's own message includes the URL.
fn describe_transport_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!(
            "webhook timed out (no answer within {})",
            humantime::format_duration(timeout)
        );
    }
    let cause = root_cause(e);
    if e.is_connect() {
        format!(
            "webhook unreachable ({})",
            cause.as_deref().unwrap_or("connection failed")
        )
    } else {
        format!(
            "webhook request failed ({})",
            cause.as_deref().unwrap_or("transport error")
        )
    }
}

/// The most specific cause below reqwest's error: the I/O error's kind when it is a common network
/// failure ("connection refused"), else the innermost message.
fn root_cause(e: &reqwest::Error) -> Option<String> {
    use std::io::ErrorKind;
    let mut current = e.source();
    let mut innermost = None;
    while let Some(cause) = current {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(match io.kind() {
                kind @ (ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::TimedOut
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::AddrNotAvailable
                | ErrorKind::UnexpectedEof) => kind.to_string(),
                _ => io.to_string(),
            });
        }
        innermost = Some(cause);
        current = cause.source();
    }
    innermost.map(ToString::to_string)
}

/// Removes the URL and its secret-bearing parts (path, query) from `text`: a last guard in case a
/// cause message ever quotes them.
fn redact(text: &str, url: &str) -> String {
    let mut secrets = vec![url.trim().to_string()];
    if let Ok(parsed) = Url::parse(url.trim()) {
        secrets.push(parsed.as_str().to_string());
        secrets.push(parsed.path().to_string());
        if let Some(query) = parsed.query() {
            secrets.push(query.to_string());
        }
    }
    // Longest first, so a path inside the URL does not leave the rest behind; a bare "/" is no secret.
    secrets.retain(|s| s.len() > 1);
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.iter().fold(text.to_string(), |acc, secret| {
        acc.replace(secret, "<webhook>")
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::StatusCode as AxumStatus;
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::crd::SecretKeyRef;

    const TOKEN: &str = "T0000/B0000/XXXXsecretTOKENxxxx";

    fn notification(name: &str, event: NotificationEvent, text: &str) -> Notification {
        Notification {
            event,
            namespace: "football".to_string(),
            name: name.to_string(),
            text: text.to_string(),
            fields: vec![],
        }
    }

    /// How long a test waits for an outcome before it fails. Generous: on a busy machine (load 6+
    /// on 2 cores, multi-second stalls) deliveries are slow, not broken; a delivery that never
    /// settles still fails the test.
    const WAIT_LIMIT: Duration = Duration::from_secs(300);

    /// Short backoff (its lower bounds are what the tests check) and an attempt timeout that a
    /// stalled machine cannot hit, so answers from a healthy webhook are never cut off.
    fn quick_policy(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(50),
            attempt_timeout: Duration::from_secs(60),
            queue_capacity: 16,
            // The test webhooks listen on 127.0.0.1.
            allow_internal_addresses: true,
        }
    }

    /// For webhooks that hang: each attempt is cut off after 300 ms (a timeout that must fire;
    /// load only makes it fire later).
    fn timeout_policy(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempt_timeout: Duration::from_millis(300),
            ..quick_policy(attempts)
        }
    }

    fn client() -> Client {
        // Several rustls providers are compiled into the workspace; pick ring like the binary.
        let _ = rustls::crypto::ring::default_provider().install_default();
        webhook_client(true).expect("http client")
    }

    #[derive(Clone, Default)]
    struct Webhook {
        requests: Arc<AtomicUsize>,
        /// Texts of accepted notifications, in arrival order.
        accepted: Arc<Mutex<Vec<String>>>,
    }

    /// A webhook on 127.0.0.1 that answers `fail_status` to the first `failures` requests, then 200
    /// (or never answers when `hang` is set); returns its URL (with a token path) and its records.
    async fn webhook(failures: usize, fail_status: u16, hang: bool) -> (String, Webhook) {
        let records = Webhook::default();
        let app = Router::new()
            .fallback(
                move |State(records): State<Webhook>, body: Bytes| async move {
                    let seen = records.requests.fetch_add(1, Ordering::SeqCst);
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    if seen < failures {
                        let status = AxumStatus::from_u16(fail_status).expect("status");
                        return (status, "invalid_payload".to_string());
                    }
                    let body: Value = serde_json::from_slice(&body).expect("JSON body");
                    let text = body["text"].as_str().expect("text").to_string();
                    records.accepted.lock().expect("records").push(text);
                    (AxumStatus::OK, "ok".to_string())
                },
            )
            .with_state(records.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/services/{TOKEN}"), records)
    }

    /// A URL on a port nobody listens on.
    async fn unreachable_url() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        format!("http://{addr}/services/{TOKEN}")
    }

    /// Waits (at most [`WAIT_LIMIT`]) until `name`'s state satisfies `done`, and returns it.
    async fn settled(
        notifier: &Notifier,
        name: &str,
        done: impl Fn(&DeliveryState) -> bool,
    ) -> DeliveryState {
        let started = Instant::now();
        loop {
            if let Some(state) = notifier.delivery_state("football", name)
                && done(&state)
            {
                eprintln!("{name} settled after {:?}", started.elapsed());
                return state;
            }
            assert!(
                started.elapsed() < WAIT_LIMIT,
                "no settled state for {name} after {WAIT_LIMIT:?}: {:?}",
                notifier.delivery_state("football", name)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn finished(state: &DeliveryState) -> bool {
        state.delivered + state.failed_deliveries > 0
    }

    fn assert_no_secret(error: &str, url: &str) {
        assert!(!error.contains(url), "URL in {error:?}");
        assert!(!error.contains("secretTOKEN"), "token in {error:?}");
    }

    #[test]
    fn payload_is_slack_json() {
        let n = Notification {
            event: NotificationEvent::RolledBack,
            namespace: "football".to_string(),
            name: "demo".to_string(),
            text: "football/demo rolled back from 2.0.0 to 1.0.0: AnalysisFailed".to_string(),
            fields: vec![
                ("From".to_string(), "2.0.0".to_string()),
                ("To".to_string(), "1.0.0".to_string()),
            ],
        };
        assert_eq!(
            slack_payload(&n),
            json!({
                "text": "football/demo rolled back from 2.0.0 to 1.0.0: AnalysisFailed",
                "attachments": [{
                    "color": "danger",
                    "fields": [
                        {"title": "From", "value": "2.0.0", "short": true},
                        {"title": "To", "value": "1.0.0", "short": true},
                    ],
                    "footer": "fp-operator",
                }],
            })
        );
    }

    #[test]
    fn payload_without_fields_has_an_empty_list() {
        let n = notification("demo", NotificationEvent::RolloutStarted, "starting");
        assert_eq!(
            slack_payload(&n),
            json!({
                "text": "starting",
                "attachments": [{"color": "warning", "fields": [], "footer": "fp-operator"}],
            })
        );
    }

    #[test]
    fn colors_by_event() {
        use NotificationEvent::*;
        let colors: Vec<_> = [
            RolloutStarted,
            RolloutSucceeded,
            RolledBack,
            BackupFailed,
            RestoreVerifyFailed,
        ]
        .into_iter()
        .map(event_color)
        .collect();
        assert_eq!(colors, ["warning", "good", "danger", "danger", "danger"]);
    }

    #[test]
    fn wanted_follows_the_event_list() {
        let spec = NotificationsSpec {
            webhook_secret_ref: SecretKeyRef {
                name: "hooks".to_string(),
                key: "url".to_string(),
            },
            events: vec![
                NotificationEvent::RolledBack,
                NotificationEvent::BackupFailed,
            ],
        };
        assert!(wanted(&spec, NotificationEvent::RolledBack));
        assert!(wanted(&spec, NotificationEvent::BackupFailed));
        assert!(!wanted(&spec, NotificationEvent::RolloutStarted));
        assert!(!wanted(&spec, NotificationEvent::RolloutSucceeded));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        assert_eq!(
            backoff_delays(6, ms(100), ms(1000)),
            [ms(100), ms(200), ms(400), ms(800), ms(1000)]
        );
        assert_eq!(backoff_delays(1, ms(100), ms(1000)), Vec::<Duration>::new());
        assert_eq!(backoff_delays(0, ms(100), ms(1000)), Vec::<Duration>::new());
        // Far beyond the exponent range: saturates, then capped.
        assert_eq!(
            backoff_delays(70, Duration::from_secs(1), ms(5000)).last(),
            Some(&ms(5000))
        );
    }

    #[test]
    fn retry_after_lengthens_but_never_beyond_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(retry_delay(s(2), None, s(30)), s(2));
        assert_eq!(retry_delay(s(2), Some(s(1)), s(30)), s(2));
        assert_eq!(retry_delay(s(2), Some(s(9)), s(30)), s(9));
        assert_eq!(retry_delay(s(2), Some(s(3600)), s(30)), s(30));
        assert_eq!(retry_after_seconds(" 7 "), Some(s(7)));
        assert_eq!(retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn redact_removes_the_url_and_its_path() {
        let url = format!("https://hooks.example.test/services/{TOKEN}?k=v");
        let text = format!("failed for {url}; path /services/{TOKEN}; query k=v");
        assert_eq!(
            redact(&text, &url),
            "failed for <webhook>; path <webhook>; query <webhook>"
        );
    }

    #[test]
    fn invalid_urls_are_named_without_echoing_them() {
        for url in [format!("ftp://host/{TOKEN}"), format!("not a url {TOKEN}")] {
            let error = webhook_url(&url, true).expect_err("rejected");
            assert_no_secret(&error, &url);
        }
    }

    #[test]
    fn loopback_link_local_and_metadata_addresses_are_forbidden() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for forbidden in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(forbidden_address(ip(forbidden)).is_some(), "{forbidden}");
        }
        // In-cluster services (private ranges) and the internet stay reachable.
        for allowed in [
            "10.96.0.10",
            "192.168.1.5",
            "198.18.0.7",
            "203.0.113.9",
            "fd00::5",
            "2001:db8::1",
        ] {
            assert!(forbidden_address(ip(allowed)).is_none(), "{allowed}");
        }
    }

    /// The production client and policy (no internal addresses), against a webhook on loopback:
    /// named by address it is refused before any request; named by a host that resolves to
    /// loopback, the resolver refuses it; in neither case does a request arrive or the URL leak.
    #[tokio::test]
    async fn internal_webhooks_are_refused_by_address_and_by_name() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (url, hook) = webhook(0, 200, false).await;
        let policy = RetryPolicy {
            allow_internal_addresses: false,
            ..quick_policy(2)
        };
        let notifier = Notifier::spawn(webhook_client(false).unwrap(), policy);
        notifier.send(
            url.clone(),
            notification("by-address", NotificationEvent::RolledBack, "x"),
        );
        let state = settled(&notifier, "by-address", finished).await;
        let error = state.last_error.expect("refused");
        assert!(
            error.starts_with("webhook URL in the Secret names a loopback address"),
            "{error}"
        );
        assert_no_secret(&error, &url);
        let by_name = url.replace("127.0.0.1", "localhost");
        notifier.send(
            by_name.clone(),
            notification("by-name", NotificationEvent::RolledBack, "x"),
        );
        let state = settled(&notifier, "by-name", finished).await;
        let error = state.last_error.expect("refused");
        assert_no_secret(&error, &by_name);
        assert_eq!(hook.requests.load(Ordering::SeqCst), 0, "{error}");
    }

    /// A redirect is the webhook's answer, not an instruction: the target is never asked.
    #[tokio::test]
    async fn redirects_are_not_followed() {
        let (target, target_hook) = webhook(0, 200, false).await;
        let app = Router::new().fallback(move || {
            let target = target.clone();
            async move { (AxumStatus::TEMPORARY_REDIRECT, [("location", target)]) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let notifier = Notifier::spawn(client(), quick_policy(2));
        notifier.send(
            format!("http://{addr}/services/{TOKEN}"),
            notification("redirected", NotificationEvent::RolledBack, "x"),
        );
        let state = settled(&notifier, "redirected", finished).await;
        assert_eq!(
            state.last_error.as_deref(),
            Some("webhook answered 307, not retried")
        );
        assert_eq!(target_hook.requests.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn delivered_after_server_errors() {
        let (url, hook) = webhook(2, 500, false).await;
        let notifier = Notifier::spawn(client(), quick_policy(4));
        notifier.send(
            url,
            notification("demo", NotificationEvent::RolloutSucceeded, "done"),
        );
        let state = settled(&notifier, "demo", finished).await;
        assert_eq!(hook.requests.load(Ordering::SeqCst), 3);
        assert!(state.last_ok_at.is_some());
        assert_eq!(
            (state.last_error, state.delivered, state.failed_deliveries),
            (None, 1, 0)
        );
        assert_eq!(*hook.accepted.lock().unwrap(), ["done"]);
    }

    #[tokio::test]
    async fn server_errors_until_attempts_run_out() {
        let (url, hook) = webhook(usize::MAX, 500, false).await;
        let notifier = Notifier::spawn(client(), quick_policy(4));
        notifier.send(
            url.clone(),
            notification("demo", NotificationEvent::RolledBack, "rolled back"),
        );
        let state = settled(&notifier, "demo", finished).await;
        assert_eq!(hook.requests.load(Ordering::SeqCst), 4);
        let error = state.last_error.expect("error");
        assert_eq!(error, "webhook answered 500 after 4 attempts");
        assert_no_secret(&error, &url);
        assert_eq!((state.last_ok_at, state.failed_deliveries), (None, 1));
    }

    #[tokio::test]
    async fn too_many_requests_is_retried() {
        let (url, hook) = webhook(1, 429, false).await;
        let notifier = Notifier::spawn(client(), quick_policy(3));
        notifier.send(
            url,
            notification("demo", NotificationEvent::RolloutStarted, "go"),
        );
        let state = settled(&notifier, "demo", finished).await;
        assert_eq!(hook.requests.load(Ordering::SeqCst), 2);
        assert_eq!(state.delivered, 1);
    }

    #[tokio::test]
    async fn client_error_is_not_retried() {
        let (url, hook) = webhook(usize::MAX, 400, false).await;
        let notifier = Notifier::spawn(client(), quick_policy(4));
        notifier.send(
            url.clone(),
            notification("demo", NotificationEvent::BackupFailed, "backup failed"),
        );
        let state = settled(&notifier, "demo", finished).await;
        // Give a wrongly scheduled retry the time to show up.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(hook.requests.load(Ordering::SeqCst), 1);
        let error = state.last_error.expect("error");
        assert_eq!(error, "webhook answered 400 (invalid_payload), not retried");
        assert_no_secret(&error, &url);
        assert_eq!(state.failed_deliveries, 1);
    }

    #[tokio::test]
    async fn unreachable_webhook_is_retried_then_reported() {
        let url = unreachable_url().await;
        let notifier = Notifier::spawn(client(), quick_policy(3));
        let started = Instant::now();
        notifier.send(
            url.clone(),
            notification(
                "demo",
                NotificationEvent::RestoreVerifyFailed,
                "drill failed",
            ),
        );
        let state = settled(&notifier, "demo", finished).await;
        // Two waits of the backoff (20 ms, 40 ms) separate the three attempts.
        assert!(started.elapsed() >= Duration::from_millis(60));
        let error = state.last_error.expect("error");
        assert_eq!(
            error,
            "webhook unreachable (connection refused) after 3 attempts"
        );
        assert_no_secret(&error, &url);
    }

    #[tokio::test]
    async fn send_returns_at_once_while_the_webhook_hangs() {
        let (url, hook) = webhook(0, 500, true).await;
        let notifier = Notifier::spawn(client(), timeout_policy(2));
        // This test's runtime has one thread, and it is blocked below until `send` returns: no
        // delivery work (not even the request) can happen meanwhile. So a `send` that waited for
        // any part of the delivery would never return; on its own thread that is a failure after
        // WAIT_LIMIT instead of a hang. No clock judges how fast it returned.
        let (returned_tx, returned_rx) = std::sync::mpsc::channel();
        let sender = notifier.clone();
        let sent_url = url.clone();
        let started = Instant::now();
        std::thread::spawn(move || {
            sender.send(
                sent_url,
                notification("demo", NotificationEvent::RolledBack, "rolled back"),
            );
            let _ = returned_tx.send(());
        });
        assert!(
            returned_rx.recv_timeout(WAIT_LIMIT).is_ok(),
            "send did not return while its delivery could not run"
        );
        eprintln!("send returned after {:?}", started.elapsed());
        assert_eq!(hook.requests.load(Ordering::SeqCst), 0);
        assert_eq!(notifier.delivery_state("football", "demo"), None);
        let state = settled(&notifier, "demo", finished).await;
        // The attempts are counted by the notifier (in the error). The webhook cannot count them
        // exactly: on a stalled machine an attempt can time out (300 ms) before the webhook has
        // read its request. It never sees more than were made.
        assert!(hook.requests.load(Ordering::SeqCst) <= 2);
        let error = state.last_error.expect("error");
        assert_eq!(
            error,
            "webhook timed out (no answer within 300ms) after 2 attempts"
        );
        assert_no_secret(&error, &url);
    }

    #[tokio::test]
    async fn full_queue_drops_the_new_notification_and_counts_it() {
        let (url, _hook) = webhook(0, 500, true).await;
        let policy = RetryPolicy {
            queue_capacity: 1,
            ..timeout_policy(1)
        };
        let notifier = Notifier::spawn(client(), policy);
        notifier.send(
            url.clone(),
            notification("demo", NotificationEvent::RolloutStarted, "first"),
        );
        notifier.send(
            url.clone(),
            notification("demo", NotificationEvent::RolledBack, "second"),
        );
        let dropped = notifier.delivery_state("football", "demo").expect("state");
        assert_eq!(dropped.failed_deliveries, 1);
        assert_eq!(
            dropped.last_error.as_deref(),
            Some("notification queue full (1 pending); RolledBack notification dropped")
        );
        // The first one still times out on its own and frees its slot.
        let state = settled(&notifier, "demo", |s| s.failed_deliveries == 2).await;
        assert!(state.last_error.expect("error").contains("timed out"));
        assert_eq!(notifier.slots.available_permits(), 1);
    }

    #[tokio::test]
    async fn one_instance_keeps_its_order_through_retries() {
        let (url, hook) = webhook(2, 503, false).await;
        let notifier = Notifier::spawn(client(), quick_policy(4));
        for text in ["started", "rolled back", "started again"] {
            notifier.send(
                url.clone(),
                notification("demo", NotificationEvent::RolloutStarted, text),
            );
        }
        settled(&notifier, "demo", |s| s.delivered == 3).await;
        assert_eq!(
            *hook.accepted.lock().unwrap(),
            ["started", "rolled back", "started again"]
        );
    }

    #[tokio::test]
    async fn a_hanging_webhook_does_not_delay_other_instances() {
        let (hanging, _) = webhook(0, 500, true).await;
        let (healthy, _) = webhook(0, 500, false).await;
        // The hanging delivery cannot end while the test runs (the webhook never answers and one
        // attempt may take longer than the test waits), so "fast" is delivered only if it does
        // not wait for "slow": no clock decides.
        let policy = RetryPolicy {
            attempt_timeout: WAIT_LIMIT * 2,
            ..quick_policy(4)
        };
        let notifier = Notifier::spawn(client(), policy);
        notifier.send(
            hanging,
            notification("slow", NotificationEvent::RolledBack, "slow"),
        );
        notifier.send(
            healthy,
            notification("fast", NotificationEvent::RolledBack, "fast"),
        );
        let state = settled(&notifier, "fast", finished).await;
        assert_eq!(state.delivered, 1);
        assert_eq!(notifier.delivery_state("football", "slow"), None);
    }

    #[tokio::test]
    async fn forget_drops_the_state() {
        let notifier = Notifier::spawn(client(), quick_policy(1));
        notifier.send(
            "ftp://nowhere".to_string(),
            notification("demo", NotificationEvent::RolledBack, "x"),
        );
        let state = settled(&notifier, "demo", finished).await;
        assert_eq!(
            state.last_error.as_deref(),
            Some("webhook URL in the Secret must use http or https, not retried")
        );
        notifier.forget("football", "demo");
        assert_eq!(notifier.delivery_state("football", "demo"), None);
    }
}
