//! Laying flags and environment over the config file and the defaults: the settings the server
//! and the storage commands run with.

use super::*;

/// The smallest cache budget: one large page (100 matches with odds, ~70 kB) must fit.
const MIN_CACHE_BYTES: u64 = 64 << 10;

fn dur(value: Option<HumanDuration>, default: Duration) -> Duration {
    value.map_or(default, |d| d.0)
}

/// Lays the storage flags/env over the config file and the defaults.
pub fn resolve_storage(
    file: &FileConfig,
    args: &StorageArgs,
) -> Result<StorageSettings, ConfigError> {
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("./data"));
    let configured_url = args
        .database_url
        .clone()
        .or_else(|| file.database_url.clone());
    let database_url_configured = configured_url.is_some();
    let database_url =
        configured_url.unwrap_or_else(|| format!("sqlite://{}", data_dir.join("fp.db").display()));
    if !(database_url.starts_with("postgres://")
        || database_url.starts_with("postgresql://")
        || database_url.starts_with("sqlite:"))
    {
        return Err(invalid(
            "database-url",
            // Not even in part: a value that is no URL may be a password set in the wrong place.
            "must start with postgres://, postgresql:// or sqlite: (the value is not shown: it \
             may hold a secret)",
        ));
    }
    let max_connections = args
        .db_max_connections
        .or(file.db_max_connections)
        .unwrap_or(16);
    if max_connections == 0 {
        return Err(invalid("db-max-connections", "must be at least 1"));
    }
    Ok(StorageSettings {
        database_url: Secret::new(database_url),
        database_url_configured,
        data_dir,
        max_connections,
        acquire_timeout: dur(
            args.db_acquire_timeout.or(file.db_acquire_timeout),
            Duration::from_secs(5),
        ),
        startup_timeout: dur(
            args.db_startup_timeout.or(file.db_startup_timeout),
            Duration::from_secs(30),
        ),
        slow_statement_threshold: Some(dur(
            args.slow_statement_threshold
                .or(file.slow_statement_threshold),
            Duration::from_millis(500),
        ))
        .filter(|threshold| !threshold.is_zero()),
        log: LogSettings {
            filter: args
                .log_level
                .clone()
                .or_else(|| file.log_level.clone())
                .unwrap_or_else(|| "info".to_string()),
            format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
        },
    })
}

/// Lays `serve`'s flags/env over the config file and the defaults. `admin_password_env` is the
/// value of `FP_ADMIN_PASSWORD` (passed in so this stays pure).
pub fn resolve_serve(
    file: &FileConfig,
    args: &ServeArgs,
    admin_password_env: Option<String>,
) -> Result<Settings, ConfigError> {
    let storage = resolve_storage(file, &args.storage)?;

    let admin_username = args
        .admin_username
        .clone()
        .or_else(|| file.admin_username.clone())
        .unwrap_or_else(|| "admin".to_string());
    if crate::accounts::validate_username(&admin_username).is_err() {
        return Err(invalid(
            "admin-username",
            "3-32 characters of a-z, 0-9, '.', '_' or '-'",
        ));
    }
    let admin_password = match (
        args.admin_password_file
            .clone()
            .or_else(|| file.admin_password_file.clone()),
        admin_password_env.filter(|p| !p.is_empty()),
    ) {
        (Some(path), _) => AdminPasswordSource::File(path),
        (None, Some(password)) => AdminPasswordSource::Env(Secret::new(password)),
        (None, None) => AdminPasswordSource::Generated(storage.data_dir.join("admin-password")),
    };

    let access_token_ttl = dur(
        args.access_token_ttl.or(file.access_token_ttl),
        Duration::from_secs(15 * 60),
    );
    let refresh_token_ttl = dur(
        args.refresh_token_ttl.or(file.refresh_token_ttl),
        Duration::from_secs(30 * 24 * 3600),
    );
    // The default never refuses a long refresh TTL that was accepted before it existed.
    let session_max_lifetime = dur(
        args.session_max_lifetime.or(file.session_max_lifetime),
        Duration::from_secs(90 * 24 * 3600).max(refresh_token_ttl),
    );
    if session_max_lifetime < refresh_token_ttl {
        return Err(invalid(
            "session-max-lifetime",
            "must be at least the refresh-token TTL",
        ));
    }
    let login_backoff_after = args
        .login_backoff_after
        .or(file.login_backoff_after)
        .unwrap_or(5);
    let login_backoff_max = dur(
        args.login_backoff_max.or(file.login_backoff_max),
        Duration::from_secs(15 * 60),
    );
    if login_backoff_after > 0 && login_backoff_max < Duration::from_secs(1) {
        return Err(invalid("login-backoff-max", "must be at least 1s"));
    }
    let jwt_audience = args
        .jwt_audience
        .clone()
        .or_else(|| file.jwt_audience.clone())
        .unwrap_or_else(|| DEFAULT_JWT_AUDIENCE.to_owned());
    if jwt_audience.is_empty() || jwt_audience.len() > 253 {
        return Err(invalid("jwt-audience", "must be 1 to 253 characters"));
    }
    if access_token_ttl < Duration::from_secs(1) {
        return Err(invalid("access-token-ttl", "must be at least 1s"));
    }
    if refresh_token_ttl <= access_token_ttl {
        return Err(invalid(
            "refresh-token-ttl",
            "must be longer than the access-token TTL",
        ));
    }

    let password_hash = PasswordHashSettings {
        memory_kib: args
            .password_hash_memory_kib
            .or(file.password_hash_memory_kib)
            .unwrap_or(19 * 1024),
        iterations: args
            .password_hash_iterations
            .or(file.password_hash_iterations)
            .unwrap_or(2),
        concurrency: args
            .password_hash_concurrency
            .or(file.password_hash_concurrency)
            .unwrap_or_else(default_concurrency),
    };
    if password_hash.memory_kib < 8 * 64 {
        return Err(invalid("password-hash-memory-kib", "must be at least 512"));
    }
    if password_hash.iterations == 0 {
        return Err(invalid("password-hash-iterations", "must be at least 1"));
    }
    if password_hash.concurrency == 0 {
        return Err(invalid("password-hash-concurrency", "must be at least 1"));
    }

    let http = HttpSettings {
        listen: args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        max_body_bytes: args
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(64 * 1024),
        import_max_body_bytes: args
            .import_max_body_bytes
            .or(file.import_max_body_bytes)
            .unwrap_or(32 * 1024 * 1024),
        request_timeout: dur(
            args.request_timeout.or(file.request_timeout),
            Duration::from_secs(30),
        ),
        header_read_timeout: dur(
            args.header_read_timeout.or(file.header_read_timeout),
            Duration::from_secs(10),
        ),
        drain_delay: dur(args.drain_delay.or(file.drain_delay), Duration::ZERO),
        shutdown_timeout: dur(
            args.shutdown_timeout.or(file.shutdown_timeout),
            Duration::from_secs(25),
        ),
        hsts: args.hsts.or(file.hsts).unwrap_or(false),
        access_log_max_per_second: args
            .access_log_max_per_second
            .or(file.access_log_max_per_second)
            .unwrap_or(100),
        trusted_proxies: trusted_proxies(
            args.trusted_proxies
                .as_ref()
                .or(file.trusted_proxies.as_ref()),
            args.trust_forwarded_for
                .or(file.trust_forwarded_for)
                .unwrap_or(false),
        )?,
    };
    if http.header_read_timeout < Duration::from_millis(100) {
        return Err(invalid("header-read-timeout", "must be at least 100ms"));
    }
    if http.max_body_bytes < 1024 {
        return Err(invalid("max-body-bytes", "must be at least 1024"));
    }
    if http.import_max_body_bytes < http.max_body_bytes {
        return Err(invalid(
            "import-max-body-bytes",
            "must be at least max-body-bytes",
        ));
    }

    let rate_limit = RateLimitSettings {
        per_second: args
            .rate_limit_per_second
            .or(file.rate_limit_per_second)
            .unwrap_or(200),
        burst: args
            .rate_limit_burst
            .or(file.rate_limit_burst)
            .unwrap_or(400),
        auth_per_minute: args
            .auth_rate_limit_per_minute
            .or(file.auth_rate_limit_per_minute)
            .unwrap_or(10),
        auth_burst: args
            .auth_rate_limit_burst
            .or(file.auth_rate_limit_burst)
            .unwrap_or(5),
    };
    if rate_limit.per_second > 0 && rate_limit.burst == 0 {
        return Err(invalid("rate-limit-burst", "must be at least 1"));
    }
    if rate_limit.auth_per_minute > 0 && rate_limit.auth_burst == 0 {
        return Err(invalid("auth-rate-limit-burst", "must be at least 1"));
    }

    let cache = CacheSettings {
        ttl: dur(args.cache_ttl.or(file.cache_ttl), Duration::from_secs(60)),
        ttl_jitter: args
            .cache_ttl_jitter
            .or(file.cache_ttl_jitter)
            .unwrap_or(0.2),
        max_bytes: args
            .cache_max_bytes
            .or(file.cache_max_bytes)
            .unwrap_or(32 << 20),
        miss_ttl: dur(
            args.cache_miss_ttl.or(file.cache_miss_ttl),
            Duration::from_secs(5),
        ),
        version_poll_interval: dur(
            args.version_poll_interval.or(file.version_poll_interval),
            Duration::from_secs(1),
        ),
    };
    if !(0.0..=1.0).contains(&cache.ttl_jitter) {
        return Err(invalid("cache-ttl-jitter", "must be between 0 and 1"));
    }
    if cache.max_bytes < MIN_CACHE_BYTES {
        return Err(invalid(
            "cache-max-bytes",
            "must be at least 65536 (64 KiB): one large page must fit",
        ));
    }
    if cache.miss_ttl.is_zero() {
        return Err(invalid("cache-miss-ttl", "must be positive"));
    }
    if cache.ttl.is_zero() {
        return Err(invalid("cache-ttl", "must be positive"));
    }
    if cache.version_poll_interval < Duration::from_millis(50) {
        return Err(invalid("version-poll-interval", "must be at least 50ms"));
    }

    Ok(Settings {
        auth: AuthSettings {
            jwt_keys_dir: args
                .jwt_keys_dir
                .clone()
                .or_else(|| file.jwt_keys_dir.clone()),
            key_reload_interval: dur(
                args.key_reload_interval.or(file.key_reload_interval),
                Duration::from_secs(5),
            ),
            key_publish_delay: dur(
                args.key_publish_delay.or(file.key_publish_delay),
                Duration::from_secs(120),
            ),
            access_token_ttl,
            refresh_token_ttl,
            session_max_lifetime,
            jwt_audience,
            login_backoff_after,
            login_backoff_max,
            allow_registration: args
                .allow_registration
                .or(file.allow_registration)
                .unwrap_or(true),
            admin_username,
            admin_password,
            password_hash,
        },
        storage,
        http,
        rate_limit,
        cache,
        ready_timeout: dur(
            args.ready_timeout.or(file.ready_timeout),
            Duration::from_secs(1),
        ),
        demo_data: args.demo_data.or(file.demo_data).unwrap_or(DemoData::Auto),
        background_evaluation: args
            .background_evaluation
            .or(file.background_evaluation)
            .unwrap_or(true),
        release_version: args
            .release_version
            .clone()
            .or_else(|| file.release_version.clone())
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
        migrate_on_start: args.migrate,
    })
}

/// One CPU fewer than the machine has (at least one): logins at full tilt still leave a core
/// for reads.
fn default_concurrency() -> u32 {
    let cpus = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(1))
        .unwrap_or(1);
    cpus.saturating_sub(1).max(1)
}

/// The trusted proxies: addresses or CIDRs (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`); trusting
/// every peer adds the two whole address spaces.
fn trusted_proxies(
    listed: Option<&Vec<String>>,
    trust_every_peer: bool,
) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let mut nets = Vec::new();
    for entry in listed.into_iter().flatten() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let net = entry
            .parse::<ipnet::IpNet>()
            .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                invalid(
                    "trusted-proxies",
                    format!("`{entry}` is neither an address nor a CIDR such as 10.0.0.0/8"),
                )
            })?;
        nets.push(net.trunc());
    }
    if trust_every_peer {
        // The defaults are the whole spaces, 0.0.0.0/0 and ::/0.
        nets.push(ipnet::Ipv4Net::default().into());
        nets.push(ipnet::Ipv6Net::default().into());
    }
    Ok(nets)
}
