//! Configuration: defaults < config file (`FP_CONFIG`, TOML) < environment (`FP_*`) < flags.
//!
//! Clap resolves flags over environment variables; [`resolve_serve`] and [`resolve_storage`] then
//! lay the result over the config file and the defaults. Everything here is pure except reading the
//! config file and the two secret sources (a password file and `FP_ADMIN_PASSWORD`).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

mod resolve;
pub use resolve::{resolve_serve, resolve_storage};

/// The environment variable that can hold the first admin's password (a file is preferred).
pub const ADMIN_PASSWORD_ENV: &str = "FP_ADMIN_PASSWORD";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("invalid value for {option}: {message}")]
    Invalid {
        option: &'static str,
        message: String,
    },
}

fn invalid(option: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        option,
        message: message.into(),
    }
}

/// A duration written the human way (`15m`, `30d`, `500ms`), in flags, env and the config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| format!("{e} (expected e.g. 500ms, 15m, 30d)"))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether `serve` seeds the deterministic demo league into an empty database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DemoData {
    /// Seed only in the zero-setup case: no database URL configured and no league in the database.
    Auto,
    /// Seed whenever the database has no league.
    On,
    /// Never seed.
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Options shared by every subcommand that touches the database.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct StorageArgs {
    /// TOML config file; its keys are the long option names with `_` for `-`.
    #[arg(long, env = "FP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL: `postgres://…` or `sqlite://…` [default: sqlite://<data-dir>/fp.db]
    #[arg(
        long,
        env = "FP_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,
    /// Directory for the SQLite database, the generated dev JWT key and admin password [default: ./data]
    #[arg(long, env = "FP_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Maximum database connections in the pool [default: 16]
    #[arg(long, env = "FP_DB_MAX_CONNECTIONS", value_name = "N")]
    pub db_max_connections: Option<u32>,
    /// How long to wait for a pooled database connection [default: 5s]
    #[arg(long, env = "FP_DB_ACQUIRE_TIMEOUT", value_name = "DURATION")]
    pub db_acquire_timeout: Option<HumanDuration>,
    /// How long start-up waits for the database to become reachable [default: 30s]
    #[arg(long, env = "FP_DB_STARTUP_TIMEOUT", value_name = "DURATION")]
    pub db_startup_timeout: Option<HumanDuration>,
    /// Statements that take longer are logged at warn with their SQL (never the bound values);
    /// 0s turns it off [default: 500ms]
    #[arg(long, env = "FP_SLOW_STATEMENT_THRESHOLD", value_name = "DURATION")]
    pub slow_statement_threshold: Option<HumanDuration>,
    /// Log filter (tracing env-filter syntax) [default: info]
    #[arg(long, env = "FP_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Log line format [default: text]
    #[arg(long, env = "FP_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// Options of `serve` (the storage options are flattened in).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "FP_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Apply pending migrations before serving (otherwise an older schema is refused, except in
    /// the zero-setup case where no database URL is configured)
    #[arg(long)]
    pub migrate: bool,
    /// Directory of JWT signing keys, one file per key id `kYYYYMMDDTHHMMSSZ`, re-read when it
    /// changes [default: <data-dir>/jwt with a generated development key]
    #[arg(long, env = "FP_JWT_KEYS_DIR", value_name = "DIR")]
    pub jwt_keys_dir: Option<PathBuf>,
    /// How often the JWT key directory is checked for changes [default: 5s]
    #[arg(long, env = "FP_KEY_RELOAD_INTERVAL", value_name = "DURATION")]
    pub key_reload_interval: Option<HumanDuration>,
    /// A new JWT key verifies at once but signs only after this server has seen it this long,
    /// so every replica has loaded it first [default: 2m]
    #[arg(long, env = "FP_KEY_PUBLISH_DELAY", value_name = "DURATION")]
    pub key_publish_delay: Option<HumanDuration>,
    /// Lifetime of access tokens [default: 15m]
    #[arg(long, env = "FP_ACCESS_TOKEN_TTL", value_name = "DURATION")]
    pub access_token_ttl: Option<HumanDuration>,
    /// Lifetime of refresh tokens [default: 30d]
    #[arg(long, env = "FP_REFRESH_TOKEN_TTL", value_name = "DURATION")]
    pub refresh_token_ttl: Option<HumanDuration>,
    /// The audience (`aud`) of the access tokens this server issues and accepts; the operator
    /// sets `<namespace>/<name>`, so instances sharing signing keys refuse each other's tokens
    /// [default: fp-api-server]
    #[arg(long, env = "FP_JWT_AUDIENCE", value_name = "NAME")]
    pub jwt_audience: Option<String>,
    /// A login's absolute lifetime: refreshing extends a session up to this long after the login,
    /// never further [default: 90d]
    #[arg(long, env = "FP_SESSION_MAX_LIFETIME", value_name = "DURATION")]
    pub session_max_lifetime: Option<HumanDuration>,
    /// Whether anyone may create an account with POST /api/v1/auth/register (a viewer); when
    /// off, only admins add users [default: true]
    #[arg(long, env = "FP_ALLOW_REGISTRATION", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub allow_registration: Option<bool>,
    /// Username of the first admin, created at start-up [default: admin]
    #[arg(long, env = "FP_ADMIN_USERNAME", value_name = "NAME")]
    pub admin_username: Option<String>,
    /// File holding the first admin's password (else env FP_ADMIN_PASSWORD, else one is generated
    /// into <data-dir>/admin-password with mode 0600)
    #[arg(long, env = "FP_ADMIN_PASSWORD_FILE", value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// argon2id memory cost in KiB [default: 19456]
    #[arg(long, env = "FP_PASSWORD_HASH_MEMORY_KIB", value_name = "KIB")]
    pub password_hash_memory_kib: Option<u32>,
    /// argon2id iterations [default: 2]
    #[arg(long, env = "FP_PASSWORD_HASH_ITERATIONS", value_name = "N")]
    pub password_hash_iterations: Option<u32>,
    /// Password hashes computed at once, on blocking threads [default: CPUs - 1, at least 1]
    #[arg(long, env = "FP_PASSWORD_HASH_CONCURRENCY", value_name = "N")]
    pub password_hash_concurrency: Option<u32>,
    /// Maximum request body for JSON endpoints, in bytes [default: 65536]
    #[arg(long, env = "FP_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Maximum body of POST /api/v1/admin/import, in bytes [default: 33554432]
    #[arg(long, env = "FP_IMPORT_MAX_BODY_BYTES", value_name = "BYTES")]
    pub import_max_body_bytes: Option<usize>,
    /// Time limit for one request [default: 30s]
    #[arg(long, env = "FP_REQUEST_TIMEOUT", value_name = "DURATION")]
    pub request_timeout: Option<HumanDuration>,
    /// Time a client has to send a request's headers, counted from the connection's start or the
    /// end of its previous response (so it is also the keep-alive idle timeout): slow or silent
    /// clients cannot hold connections [default: 10s]
    #[arg(long, env = "FP_HEADER_READ_TIMEOUT", value_name = "DURATION")]
    pub header_read_timeout: Option<HumanDuration>,
    /// After SIGTERM: answer readiness 503 for this long before closing the listener [default: 0s]
    #[arg(long, env = "FP_DRAIN_DELAY", value_name = "DURATION")]
    pub drain_delay: Option<HumanDuration>,
    /// Access-log lines (one per request, at info) per second at most; requests over it are
    /// counted and the count logged when the second ends; 0 logs none [default: 100]
    #[arg(long, env = "FP_ACCESS_LOG_MAX_PER_SECOND", value_name = "N")]
    pub access_log_max_per_second: Option<u32>,
    /// After closing the listener: how long in-flight requests may still finish [default: 25s]
    #[arg(long, env = "FP_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<HumanDuration>,
    /// Send Strict-Transport-Security (set when TLS is terminated in front) [default: false]
    #[arg(long, env = "FP_HSTS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub hsts: Option<bool>,
    /// Proxies whose X-Forwarded-For is believed: addresses or CIDRs, comma-separated. A request
    /// from one of them is attributed to the nearest address in the header that is not itself a
    /// trusted proxy [default: none]
    #[arg(
        long,
        env = "FP_TRUSTED_PROXIES",
        value_name = "CIDR,...",
        value_delimiter = ','
    )]
    pub trusted_proxies: Option<Vec<String>>,
    /// Believe X-Forwarded-For from every peer: the same as --trusted-proxies 0.0.0.0/0,::/0.
    /// Only when no client can reach the server except through the proxy [default: false]
    #[arg(long, env = "FP_TRUST_FORWARDED_FOR", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub trust_forwarded_for: Option<bool>,
    /// Requests per second per client on /api (0 disables) [default: 200]
    #[arg(long, env = "FP_RATE_LIMIT_PER_SECOND", value_name = "N")]
    pub rate_limit_per_second: Option<u32>,
    /// Burst allowance per client on /api [default: 400]
    #[arg(long, env = "FP_RATE_LIMIT_BURST", value_name = "N")]
    pub rate_limit_burst: Option<u32>,
    /// Login/register/refresh attempts per minute per client (0 disables) [default: 10]
    #[arg(long, env = "FP_AUTH_RATE_LIMIT_PER_MINUTE", value_name = "N")]
    pub auth_rate_limit_per_minute: Option<u32>,
    /// Burst allowance of login/register/refresh per client [default: 5]
    #[arg(long, env = "FP_AUTH_RATE_LIMIT_BURST", value_name = "N")]
    pub auth_rate_limit_burst: Option<u32>,
    /// Failed logins of one username (whatever the client address) before each further attempt
    /// must wait, 1 s doubling per failure; 0 disables [default: 5]
    #[arg(long, env = "FP_LOGIN_BACKOFF_AFTER", value_name = "N")]
    pub login_backoff_after: Option<u32>,
    /// The longest such wait [default: 15m]
    #[arg(long, env = "FP_LOGIN_BACKOFF_MAX", value_name = "DURATION")]
    pub login_backoff_max: Option<HumanDuration>,
    /// Time-to-live of cached responses and predictions [default: 60s]
    #[arg(long, env = "FP_CACHE_TTL", value_name = "DURATION")]
    pub cache_ttl: Option<HumanDuration>,
    /// Random extra share of the TTL per entry, 0..1, so entries do not expire together [default: 0.2]
    #[arg(long, env = "FP_CACHE_TTL_JITTER", value_name = "RATIO")]
    pub cache_ttl_jitter: Option<f64>,
    /// Memory budget of each of the three response caches, in bytes (keys and bodies): the least
    /// recently used entries are evicted beyond it [default: 33554432, 32 MiB]
    #[arg(long, env = "FP_CACHE_MAX_BYTES", value_name = "BYTES")]
    pub cache_max_bytes: Option<u64>,
    /// How long an answer "no such id" (404) is remembered and repeated without a query
    /// [default: 5s]
    #[arg(long, env = "FP_CACHE_MISS_TTL", value_name = "DURATION")]
    pub cache_miss_ttl: Option<HumanDuration>,
    /// How often each replica checks the database's data version to drop stale caches and load a
    /// newly fitted model [default: 1s]
    #[arg(long, env = "FP_VERSION_POLL_INTERVAL", value_name = "DURATION")]
    pub version_poll_interval: Option<HumanDuration>,
    /// Database time limit for /health/ready [default: 1s]
    #[arg(long, env = "FP_READY_TIMEOUT", value_name = "DURATION")]
    pub ready_timeout: Option<HumanDuration>,
    /// Seed the deterministic demo league into an empty database [default: auto]
    #[arg(long, env = "FP_DEMO_DATA", value_name = "MODE")]
    pub demo_data: Option<DemoData>,
    /// Keep each league's latest-season out-of-sample evaluation current in the background (it
    /// feeds fp_model_evaluation) [default: true]
    #[arg(long, env = "FP_BACKGROUND_EVALUATION", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub background_evaluation: Option<bool>,
    /// Release version reported in fp_build_info [default: the package version]
    #[arg(long, env = "FP_RELEASE_VERSION", value_name = "VERSION")]
    pub release_version: Option<String>,
}

/// The config file: every key optional, unknown keys rejected (a typo must not pass silently).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub db_max_connections: Option<u32>,
    pub db_acquire_timeout: Option<HumanDuration>,
    pub slow_statement_threshold: Option<HumanDuration>,
    pub db_startup_timeout: Option<HumanDuration>,
    pub log_level: Option<String>,
    pub log_format: Option<LogFormat>,
    pub listen: Option<SocketAddr>,
    pub jwt_keys_dir: Option<PathBuf>,
    pub key_reload_interval: Option<HumanDuration>,
    pub key_publish_delay: Option<HumanDuration>,
    pub access_token_ttl: Option<HumanDuration>,
    pub refresh_token_ttl: Option<HumanDuration>,
    pub session_max_lifetime: Option<HumanDuration>,
    pub allow_registration: Option<bool>,
    pub jwt_audience: Option<String>,
    pub admin_username: Option<String>,
    pub admin_password_file: Option<PathBuf>,
    pub password_hash_memory_kib: Option<u32>,
    pub password_hash_iterations: Option<u32>,
    pub password_hash_concurrency: Option<u32>,
    pub max_body_bytes: Option<usize>,
    pub import_max_body_bytes: Option<usize>,
    pub request_timeout: Option<HumanDuration>,
    pub header_read_timeout: Option<HumanDuration>,
    pub drain_delay: Option<HumanDuration>,
    pub shutdown_timeout: Option<HumanDuration>,
    pub hsts: Option<bool>,
    pub access_log_max_per_second: Option<u32>,
    pub trusted_proxies: Option<Vec<String>>,
    pub trust_forwarded_for: Option<bool>,
    pub rate_limit_per_second: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub auth_rate_limit_per_minute: Option<u32>,
    pub auth_rate_limit_burst: Option<u32>,
    pub login_backoff_after: Option<u32>,
    pub login_backoff_max: Option<HumanDuration>,
    pub cache_ttl: Option<HumanDuration>,
    pub cache_ttl_jitter: Option<f64>,
    pub cache_max_bytes: Option<u64>,
    pub cache_miss_ttl: Option<HumanDuration>,
    pub version_poll_interval: Option<HumanDuration>,
    pub ready_timeout: Option<HumanDuration>,
    pub demo_data: Option<DemoData>,
    pub background_evaluation: Option<bool>,
    pub release_version: Option<String>,
}

impl FileConfig {
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::ParseFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Reads the file named by `--config`/`FP_CONFIG`, or returns the empty config.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }
}

/// A secret string: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug)]
pub struct LogSettings {
    pub filter: String,
    pub format: LogFormat,
}

#[derive(Clone, Debug)]
pub struct StorageSettings {
    /// The database URL (may carry a password: log [`StorageSettings::redacted_url`] instead).
    pub database_url: Secret,
    /// True when the URL came from configuration rather than the zero-setup default.
    pub database_url_configured: bool,
    pub data_dir: PathBuf,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub startup_timeout: Duration,
    /// `None`: slow statements are not logged.
    pub slow_statement_threshold: Option<Duration>,
    pub log: LogSettings,
}

impl StorageSettings {
    /// The URL without its password, for logs and errors.
    pub fn redacted_url(&self) -> String {
        fp_contract::redact::redact(self.database_url.expose())
    }
}

/// The token audience of a server that was given none (the operator names each instance).
pub const DEFAULT_JWT_AUDIENCE: &str = "fp-api-server";

#[derive(Clone, Debug)]
pub struct PasswordHashSettings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub concurrency: u32,
}

/// Where the first admin's password comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminPasswordSource {
    File(PathBuf),
    Env(Secret),
    /// Zero-setup: generated once into this file (mode 0600) and read from it afterwards.
    Generated(PathBuf),
}

#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// `None`: a development key is generated under `<data-dir>/jwt`.
    pub jwt_keys_dir: Option<PathBuf>,
    pub key_reload_interval: Duration,
    pub key_publish_delay: Duration,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub session_max_lifetime: Duration,
    pub allow_registration: bool,
    pub jwt_audience: String,
    /// Failed logins of one username before it must wait (0: never).
    pub login_backoff_after: u32,
    /// The longest wait; it doubles with each further failure up to this.
    pub login_backoff_max: Duration,
    pub admin_username: String,
    pub admin_password: AdminPasswordSource,
    pub password_hash: PasswordHashSettings,
}

#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub import_max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Also the idle timeout of a kept-alive connection (hyper starts it when a response ends).
    pub header_read_timeout: Duration,
    pub drain_delay: Duration,
    pub shutdown_timeout: Duration,
    pub hsts: bool,
    /// Access-log lines per second at most (0: none).
    pub access_log_max_per_second: u32,
    /// Peers whose X-Forwarded-For names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Clone, Debug)]
pub struct RateLimitSettings {
    pub per_second: u32,
    pub burst: u32,
    pub auth_per_minute: u32,
    pub auth_burst: u32,
}

#[derive(Clone, Debug)]
pub struct CacheSettings {
    pub ttl: Duration,
    pub ttl_jitter: f64,
    /// Per cache: keys, bodies and bookkeeping.
    pub max_bytes: u64,
    /// How long a 404 is remembered.
    pub miss_ttl: Duration,
    pub version_poll_interval: Duration,
}

/// Everything `serve` needs, fully resolved and validated.
#[derive(Clone, Debug)]
pub struct Settings {
    pub storage: StorageSettings,
    pub http: HttpSettings,
    pub auth: AuthSettings,
    pub rate_limit: RateLimitSettings,
    pub cache: CacheSettings,
    pub ready_timeout: Duration,
    pub demo_data: DemoData,
    pub background_evaluation: bool,
    pub release_version: String,
    pub migrate_on_start: bool,
}

impl Settings {
    /// Whether the demo league is seeded into a database without leagues.
    pub fn seeds_demo(&self) -> bool {
        match self.demo_data {
            DemoData::On => true,
            DemoData::Off => false,
            DemoData::Auto => !self.storage.database_url_configured,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(list: &[&str]) -> ServeArgs {
        let mut argv = vec!["fp"];
        argv.extend_from_slice(list);
        TestCli::parse_from(argv).serve
    }

    #[test]
    fn zero_setup_defaults() {
        let s = resolve_serve(&FileConfig::default(), &ServeArgs::default(), None).unwrap();
        assert_eq!(s.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.storage.database_url.expose(), "sqlite://./data/fp.db");
        assert!(!s.storage.database_url_configured);
        assert!(s.seeds_demo());
        assert_eq!(s.auth.access_token_ttl, Duration::from_secs(900));
        assert_eq!(
            s.auth.admin_password,
            AdminPasswordSource::Generated(PathBuf::from("./data/admin-password"))
        );
    }

    #[test]
    fn file_overrides_defaults_and_flags_override_file() {
        let file = FileConfig::parse(
            Path::new("c.toml"),
            "listen = \"0.0.0.0:9000\"\ncache_ttl = \"5m\"\nrate_limit_per_second = 7\n",
        )
        .unwrap();
        let s = resolve_serve(&file, &ServeArgs::default(), None).unwrap();
        assert_eq!(s.http.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(s.cache.ttl, Duration::from_secs(300));
        let s = resolve_serve(&file, &args(&["--listen", "127.0.0.2:81"]), None).unwrap();
        assert_eq!(s.http.listen.to_string(), "127.0.0.2:81");
        assert_eq!(s.rate_limit.per_second, 7);
    }

    #[test]
    fn trusted_proxies_are_cidrs_or_addresses_and_bad_ones_are_named() {
        let listed = |s: &Settings| -> Vec<String> {
            s.http
                .trusted_proxies
                .iter()
                .map(|n| n.to_string())
                .collect()
        };
        let s = resolve_serve(&FileConfig::default(), &ServeArgs::default(), None).unwrap();
        assert!(
            s.http.trusted_proxies.is_empty(),
            "nothing trusted by default"
        );
        let s = resolve_serve(
            &FileConfig::default(),
            &args(&["--trusted-proxies", "10.0.0.0/8, 192.0.2.7,fd00::/8"]),
            None,
        )
        .unwrap();
        assert_eq!(listed(&s), ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8"]);
        let file = FileConfig::parse(Path::new("c.toml"), "trusted_proxies = [\"10.1.2.3/16\"]\n")
            .unwrap();
        let s = resolve_serve(&file, &ServeArgs::default(), None).unwrap();
        assert_eq!(s.http.trusted_proxies[0].to_string(), "10.1.0.0/16");
        let s = resolve_serve(
            &FileConfig::default(),
            &args(&["--trust-forwarded-for"]),
            None,
        )
        .unwrap();
        assert_eq!(listed(&s), ["0.0.0.0/0", "::/0"]);
        let err = resolve_serve(
            &FileConfig::default(),
            &args(&["--trusted-proxies", "10.0.0.0/8,ingress-nginx"]),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("trusted-proxies") && err.contains("`ingress-nginx`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let err = FileConfig::parse(Path::new("c.toml"), "lisen = \"0.0.0.0:1\"").unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn configured_database_url_disables_auto_demo() {
        let s = resolve_serve(
            &FileConfig::default(),
            &args(&["--database-url", "postgres://u:pw@h/db"]),
            None,
        )
        .unwrap();
        assert!(!s.seeds_demo());
        assert_eq!(s.storage.redacted_url(), "postgres://u:***@h/db");
        assert!(!format!("{s:?}").contains("pw@"));
    }

    #[test]
    fn rejects_unknown_database_scheme_and_bad_values() {
        assert!(
            resolve_serve(
                &FileConfig::default(),
                &args(&["--database-url", "mysql://x"]),
                None
            )
            .is_err()
        );
        assert!(
            resolve_serve(
                &FileConfig::default(),
                &args(&["--cache-ttl-jitter", "1.5"]),
                None
            )
            .is_err()
        );
        assert!(
            resolve_serve(
                &FileConfig::default(),
                &args(&["--access-token-ttl", "40d"]),
                None
            )
            .is_err()
        );
    }

    #[test]
    fn admin_password_sources_prefer_file_then_env() {
        let s = resolve_serve(
            &FileConfig::default(),
            &args(&["--admin-password-file", "/etc/fp/admin/password"]),
            Some("env-secret".into()),
        )
        .unwrap();
        assert_eq!(
            s.auth.admin_password,
            AdminPasswordSource::File("/etc/fp/admin/password".into())
        );
        let s = resolve_serve(
            &FileConfig::default(),
            &ServeArgs::default(),
            Some("pw".into()),
        )
        .unwrap();
        assert_eq!(
            s.auth.admin_password,
            AdminPasswordSource::Env(Secret::new("pw".into()))
        );
    }

    #[test]
    fn bool_flags_accept_bare_form() {
        let s = resolve_serve(&FileConfig::default(), &args(&["--hsts"]), None).unwrap();
        assert!(s.http.hsts);
        let s = resolve_serve(&FileConfig::default(), &args(&["--hsts", "false"]), None).unwrap();
        assert!(!s.http.hsts);
    }

    #[test]
    fn a_database_url_that_is_no_url_is_never_echoed() {
        // A password pasted into the URL's place, or a Secret key holding something else.
        for value in ["hunter2-s3cr3t", "host=db password=hunter2-s3cr3t"] {
            let err = resolve_serve(
                &FileConfig::default(),
                &args(&["--database-url", value]),
                None,
            )
            .unwrap_err()
            .to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("database-url"), "{err}");
        }
    }

    #[test]
    fn the_cache_budget_is_bytes_with_a_floor() {
        let s = resolve_serve(&FileConfig::default(), &ServeArgs::default(), None).unwrap();
        assert_eq!(s.cache.max_bytes, 32 << 20);
        let err = resolve_serve(
            &FileConfig::default(),
            &args(&["--cache-max-bytes", "1000"]),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("cache-max-bytes"), "{err}");
    }
}
