//! The settings as operators meet them: every variable, file and flag layer loaded through
//! [`Settings::load`], checked for the values it applies, the errors it names, and the
//! secrets it must never show.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

const ISSUER: (&str, &str) = ("QUDAG_OAUTH2_ISSUER_URL", "https://issuer.example");
const AUDIENCE: (&str, &str) = ("QUDAG_OAUTH2_AUDIENCE", "https://mcp.example/mcp");

/// Load `pairs` over an issuer and audience (authentication is on by default).
fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let mut all: Vec<(&str, &str)> =
        [ISSUER, AUDIENCE].into_iter().filter(|(k, _)| !pairs.iter().any(|(p, _)| p == k)).collect();
    all.extend_from_slice(pairs);
    Settings::load(None, env(&all), &FlagOverrides::default())
}

fn with_issuer() -> Settings {
    let mut s = Settings::default();
    s.auth.issuer_url = Some(ISSUER.1.into());
    s.auth.audience = Some(AUDIENCE.1.into());
    s
}

#[test]
fn authentication_on_needs_an_issuer_and_audience_and_safe_urls() {
    let err = Settings::load(None, env(&[]), &FlagOverrides::default()).unwrap_err();
    assert_eq!(names(err.clone()), "QUDAG_OAUTH2_ISSUER_URL");
    assert!(err.to_string().contains("serve --dev"), "{err}");
    let err = Settings::load(None, env(&[ISSUER]), &FlagOverrides::default()).unwrap_err();
    assert_eq!(names(err), "QUDAG_OAUTH2_AUDIENCE");
    let err = load(&[("QUDAG_OAUTH2_ISSUER_URL", "http://issuer.example")]).unwrap_err();
    assert_eq!(names(err.clone()), "QUDAG_OAUTH2_ISSUER_URL");
    assert!(err.to_string().contains("https"), "{err}");
    assert!(load(&[("QUDAG_OAUTH2_ISSUER_URL", "http://127.0.0.1:9400")]).is_ok(), "http on loopback");
    let err = load(&[("QUDAG_OAUTH2_JWKS_URL", "http://keys.example/jwks")]).unwrap_err();
    assert_eq!(names(err), "QUDAG_OAUTH2_JWKS_URL");
    let err = load(&[("QUDAG_OAUTH2_INTROSPECTION_URL", "https://issuer.example/introspect")]).unwrap_err();
    assert_eq!(names(err), "QUDAG_OAUTH2_CLIENT_ID");
    let err = load(&[("QUDAG_OAUTH2_LEEWAY_SECS", "61")]).unwrap_err();
    assert_eq!(names(err), "QUDAG_OAUTH2_LEEWAY_SECS");
    let err = load(&[("QUDAG_OAUTH2_HMAC_SECRET", "short")]).unwrap_err();
    assert_eq!(names(err.clone()), "QUDAG_OAUTH2_HMAC_SECRET");
    assert!(!err.to_string().contains("short"), "secrets are never echoed: {err}");
    // Off, or developer mode on loopback: no issuer needed.
    assert!(Settings::load(None, env(&[("QUDAG_REQUIRE_AUTH", "false")]), &FlagOverrides::default()).is_ok());
    let dev = FlagOverrides { dev_mode: true, ..FlagOverrides::default() };
    assert!(Settings::load(None, env(&[]), &dev).unwrap().auth.dev_mode);
    let err = Settings::load(None, env(&[("QUDAG_HOST", "0.0.0.0")]), &dev).unwrap_err();
    assert_eq!(names(err), "QUDAG_HOST");
}

#[test]
fn oauth_variables_apply_and_secrets_are_redacted() {
    let s = load(&[
        ("QUDAG_OAUTH2_JWKS_URL", "https://issuer.example/jwks"),
        ("QUDAG_OAUTH2_INTROSPECTION_URL", "https://issuer.example/introspect"),
        ("QUDAG_OAUTH2_CLIENT_ID", "qudag-mcp-server"),
        ("QUDAG_OAUTH2_CLIENT_SECRET", "s3cret-client"),
        ("QUDAG_OAUTH2_HMAC_SECRET", "0123456789abcdef0123456789abcdef-hmac"),
        ("QUDAG_OAUTH2_ROLES_CLAIM", "realm_access.roles"),
        ("QUDAG_OAUTH2_LEEWAY_SECS", "5"),
        ("QUDAG_OAUTH2_TOKEN_CACHE_SIZE", "0"),
        ("QUDAG_PUBLIC_URL", "https://mcp.example/"),
    ])
    .unwrap();
    assert_eq!(s.auth.roles_claim, "realm_access.roles");
    assert_eq!((s.auth.leeway_secs, s.auth.token_cache_size), (5, 0));
    assert_eq!(s.mcp.public_url.as_deref(), Some("https://mcp.example"));
    let shown = s.to_toml() + &format!("{s:?}");
    for secret in ["s3cret-client", "0123456789abcdef0123456789abcdef-hmac"] {
        assert!(!shown.contains(secret), "{secret} leaked");
    }
}

#[test]
fn tool_and_audit_variables_apply_and_the_database_password_is_redacted() {
    let s = load(&[
        ("QUDAG_STORE", "postgres"),
        ("QUDAG_DATABASE_URL", "postgres://qudag:pg-pa55word@db:5432/qudag"),
        ("QUDAG_KEY_FILE", "/var/lib/qudag-mcp/keys.json"),
        ("QUDAG_MAX_QUBITS", "20"),
        ("QUDAG_AUDIT_SINK", "file"),
        ("QUDAG_AUDIT_FILE", "/var/lib/qudag-mcp/audit/audit.jsonl"),
        ("QUDAG_AUDIT_FSYNC", "always"),
        ("QUDAG_AUDIT_QUEUE_FULL", "refuse"),
    ])
    .unwrap();
    assert_eq!((s.tools.store, s.tools.max_qubits), (DataStore::Postgres, 20));
    assert_eq!(
        (s.audit.sink, s.audit.fsync, s.audit.queue_full),
        (AuditSinkKind::File, FsyncMode::Always, QueueFull::Refuse)
    );
    let shown = s.to_toml() + &format!("{s:?}");
    assert!(!shown.contains("pg-pa55word"), "the database password leaked: {shown}");
    let bad = |vars: &[(&str, &str)], name: &str| assert_eq!(names(load(vars).unwrap_err()), name);
    bad(&[("QUDAG_STORE", "postgres")], "QUDAG_STORE");
    bad(&[("QUDAG_STORE", "postgres"), ("QUDAG_DATABASE_URL", "postgres://db/q")], "QUDAG_STORE");
    bad(&[("QUDAG_AUDIT_SINK", "file")], "QUDAG_AUDIT_SINK");
    bad(&[("QUDAG_AUDIT_SINK", "postgres")], "QUDAG_AUDIT_SINK");
    bad(&[("QUDAG_AUDIT_SINK", "postgres"), ("QUDAG_DATABASE_URL", "postgres://db/q")], "QUDAG_AUDIT_SINK");
    bad(&[("QUDAG_AUDIT_SINK", "sqlite")], "QUDAG_AUDIT_SINK");
    let pg = load(&[
        ("QUDAG_AUDIT_SINK", "postgres"),
        ("QUDAG_DATABASE_URL", "postgres://db/q"),
        ("QUDAG_AUDIT_SPOOL", "/var/lib/qudag-mcp/audit/spool.jsonl"),
    ])
    .unwrap();
    assert_eq!(
        (pg.audit.sink, pg.audit.spool.as_deref()),
        (AuditSinkKind::Postgres, Some(std::path::Path::new("/var/lib/qudag-mcp/audit/spool.jsonl")))
    );
    bad(&[("QUDAG_MAX_QUBITS", "31")], "QUDAG_MAX_QUBITS");
    bad(&[("QUDAG_NODE_ID", "a b")], "QUDAG_NODE_ID");
    let quotas =
        load(&[("QUDAG_MAX_VAULT_ENTRIES_PER_PRINCIPAL", "7"), ("QUDAG_MAX_NAMES_PER_PRINCIPAL", "3")]).unwrap();
    assert_eq!((quotas.tools.max_vault_entries_per_principal, quotas.tools.max_names_per_principal), (7, 3));
    let defaults = load(&[]).unwrap();
    assert_eq!((defaults.tools.max_vault_entries_per_principal, defaults.tools.max_names_per_principal), (1000, 100));
    bad(&[("QUDAG_MAX_VAULT_ENTRIES_PER_PRINCIPAL", "0")], "QUDAG_MAX_VAULT_ENTRIES_PER_PRINCIPAL");
    bad(&[("QUDAG_MAX_VAULT_ENTRIES_PER_PRINCIPAL", "100001")], "QUDAG_MAX_VAULT_ENTRIES_PER_PRINCIPAL");
    bad(&[("QUDAG_MAX_NAMES_PER_PRINCIPAL", "0")], "QUDAG_MAX_NAMES_PER_PRINCIPAL");
    bad(&[("QUDAG_MAX_NAMES_PER_PRINCIPAL", "x")], "QUDAG_MAX_NAMES_PER_PRINCIPAL");
    bad(&[("QUDAG_AUDIT_QUEUE_CAPACITY", "0")], "QUDAG_AUDIT_QUEUE_CAPACITY");
}

fn names(err: ConfigError) -> String {
    match err {
        ConfigError::Invalid { source_name, .. } => source_name,
        ConfigError::File { path, .. } => path,
    }
}

#[test]
fn defaults_are_valid_and_loopback() {
    let s = load(&[]).unwrap();
    assert_eq!(s, with_issuer());
    assert_eq!(s.server.bind_addr().unwrap(), "127.0.0.1:3000".parse().unwrap());
}

#[test]
fn every_variable_applies_its_value() {
    let s = load(&[
        ("QUDAG_HOST", "0.0.0.0"),
        ("QUDAG_PORT", "8080"),
        ("QUDAG_SHUTDOWN_GRACE_SECS", "5"),
        ("QUDAG_LOG_LEVEL", "info,qudag_adapter_http=debug"),
        ("QUDAG_LOG_FORMAT", "JSON"),
        ("QUDAG_SESSION_IDLE_TIMEOUT_SECS", "60"),
        ("QUDAG_SESSION_ABSOLUTE_TIMEOUT_SECS", "120"),
        ("QUDAG_MAX_SESSIONS", "5"),
        ("QUDAG_MAX_SESSIONS_PER_PRINCIPAL", "4"),
        ("QUDAG_MAX_SUBSCRIPTIONS_PER_SESSION", "3"),
        ("QUDAG_MAX_SUBSCRIPTION_URI_BYTES", "100"),
        ("QUDAG_MAX_TOOL_CALLS_PER_PRINCIPAL", "2"),
        ("QUDAG_MAX_PENDING_REQUESTS_PER_PRINCIPAL", "6"),
        ("QUDAG_RATE_LIMIT", "30"),
        ("QUDAG_RATE_LIMIT_BURST", "3"),
        ("QUDAG_RATE_LIMIT_PER_USER", "false"),
        ("QUDAG_RATE_LIMIT_MAX_KEYS", "50"),
        ("QUDAG_RATE_LIMIT_FAILURE", "fail-closed"),
        ("QUDAG_PROTOCOL", "http"),
        ("QUDAG_PUBLIC_URL", "https://mcp.example.com/"),
        ("QUDAG_MAX_CONNECTIONS_PER_ADDRESS", "32"),
        ("QUDAG_ADMIN_MAX_BODY_BYTES", "2048"),
        ("QUDAG_BODY_TIMEOUT_SECS", "7"),
    ])
    .unwrap();
    assert_eq!(s.server.bind_addr().unwrap(), "0.0.0.0:8080".parse().unwrap());
    assert_eq!(s.mcp.public_url.as_deref(), Some("https://mcp.example.com"));
    assert_eq!(s.server.max_connections_per_address, 32);
    assert_eq!((s.mcp.admin_max_body_bytes, s.mcp.body_timeout_secs), (2048, 7));
    assert_eq!(s.server.shutdown_grace(), Duration::from_secs(5));
    assert_eq!(s.logging.level, "info,qudag_adapter_http=debug");
    assert_eq!(s.logging.format, LogFormat::Json);
    assert_eq!((s.sessions.idle_timeout_secs, s.sessions.absolute_timeout_secs, s.sessions.max_sessions), (60, 120, 5));
    let per_caller = (
        s.sessions.max_sessions_per_principal,
        s.sessions.max_subscriptions_per_session,
        s.sessions.max_subscription_uri_bytes,
        s.mcp.max_tool_calls_per_principal,
        s.mcp.max_pending_requests_per_principal,
    );
    assert_eq!(per_caller, (4, 3, 100, 2, 6));
    assert_eq!(s.rate_limit.requests_per_minute, 30);
    assert_eq!(s.rate_limit.burst, Some(3));
    assert_eq!(s.rate_limit.effective_burst(), 3);
    assert!(!s.rate_limit.per_user);
    assert_eq!(s.rate_limit.max_keys, 50);
    assert_eq!(s.rate_limit.on_failure, FailurePolicy::FailClosed);
}

#[test]
fn admission_and_token_variables_apply_and_bad_ones_are_named() {
    let s = load(&[
        ("QUDAG_RATE_LIMIT_AUTH_FAILURES", "12"),
        ("QUDAG_OAUTH2_DPOP_REPLAY_PER_KEY", "50"),
        ("QUDAG_OAUTH2_INTROSPECTION_CACHE_SECS", "5"),
        ("QUDAG_OAUTH2_TOKEN_TYPES", "at+jwt, JWT"),
    ])
    .unwrap();
    assert_eq!((s.rate_limit.effective_auth_failures(), s.rate_limit.auth_failure_burst()), (12, 12));
    assert_eq!((s.auth.dpop_replay_per_key, s.auth.introspection_cache_secs), (50, 5));
    assert_eq!(s.auth.token_types, "at+jwt, JWT");
    // Unset, the failed-authentication allowance follows the rate; 0 turns it off.
    let defaults = load(&[]).unwrap();
    assert_eq!(defaults.rate_limit.effective_auth_failures(), 600);
    assert_eq!(defaults.auth.token_types, "at+jwt,none");
    assert_eq!(defaults.auth.introspection_cache_secs, 60);
    assert_eq!(load(&[("QUDAG_RATE_LIMIT", "30")]).unwrap().rate_limit.effective_auth_failures(), 30);
    let r = load(&[("QUDAG_RATE_LIMIT", "1"), ("QUDAG_RATE_LIMIT_BURST", "3")]).unwrap().rate_limit;
    assert_eq!((r.effective_auth_failures(), r.auth_failure_burst()), (1, 3), "with the rate, its burst");
    assert_eq!(load(&[("QUDAG_RATE_LIMIT_AUTH_FAILURES", "0")]).unwrap().rate_limit.effective_auth_failures(), 0);
    for (name, value) in [
        ("QUDAG_RATE_LIMIT_AUTH_FAILURES", "lots"),
        ("QUDAG_OAUTH2_DPOP_REPLAY_PER_KEY", "0"),
        ("QUDAG_OAUTH2_INTROSPECTION_CACHE_SECS", "-1"),
        ("QUDAG_OAUTH2_TOKEN_TYPES", "dpop+jwt"),
        ("QUDAG_OAUTH2_TOKEN_TYPES", "text/plain"),
    ] {
        let err = load(&[(name, value)]).unwrap_err();
        assert!(err.to_string().contains(value), "{err}");
        assert_eq!(names(err), name);
    }
}

#[test]
fn the_burst_follows_the_rate_unless_it_is_given() {
    let burst = |pairs: &[(&str, &str)]| load(pairs).unwrap().rate_limit.effective_burst();
    // At most one minute's worth, at most 100.
    assert_eq!(burst(&[]), 100, "the default 600 per minute");
    assert_eq!(burst(&[("QUDAG_RATE_LIMIT", "30")]), 30);
    assert_eq!(burst(&[("QUDAG_RATE_LIMIT", "100")]), 100);
    assert_eq!(burst(&[("QUDAG_RATE_LIMIT", "101")]), 100);
    assert_eq!(burst(&[("QUDAG_RATE_LIMIT", "1")]), 1);
    // A burst given wins, below the rate and above it.
    assert_eq!(burst(&[("QUDAG_RATE_LIMIT", "30"), ("QUDAG_RATE_LIMIT_BURST", "5")]), 5);
    assert_eq!(burst(&[("QUDAG_RATE_LIMIT", "30"), ("QUDAG_RATE_LIMIT_BURST", "100")]), 100);
    assert_eq!(burst(&[("QUDAG_RATE_LIMIT_BURST", "250")]), 250);
    // Unset, the burst is not written out as if it had been given: the effective
    // configuration read back still follows the rate.
    let s = load(&[("QUDAG_RATE_LIMIT", "30")]).unwrap();
    assert!(!s.to_toml().contains("burst"), "{}", s.to_toml());
    let mut back: Settings = toml::from_str(&s.to_toml()).unwrap();
    assert_eq!(back.rate_limit.effective_burst(), 30);
    back.rate_limit.requests_per_minute = 10;
    assert_eq!(back.rate_limit.effective_burst(), 10);
}

#[test]
fn a_burst_in_the_file_is_kept_and_the_environment_overrides_it() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "[rate_limit]\nrequests_per_minute = 30\nburst = 60\n\
         [auth]\nissuer_url = \"https://issuer.example\"\naudience = \"api\""
    )
    .unwrap();
    let from_file = Settings::load(Some(file.path()), env(&[]), &FlagOverrides::default()).unwrap();
    assert_eq!(from_file.rate_limit.effective_burst(), 60);
    let env_over_file =
        Settings::load(Some(file.path()), env(&[("QUDAG_RATE_LIMIT_BURST", "7")]), &FlagOverrides::default()).unwrap();
    assert_eq!(env_over_file.rate_limit.effective_burst(), 7);
}

#[test]
fn bad_values_name_the_variable_and_the_value() {
    let cases: &[(&str, &str)] = &[
        ("QUDAG_PORT", "abc"),
        ("QUDAG_PORT", "65536"),
        ("QUDAG_PORT", "-1"),
        ("QUDAG_HOST", "not a host"),
        ("QUDAG_LOG_FORMAT", "xml"),
        ("QUDAG_LOG_LEVEL", "loud"),
        ("QUDAG_LOG_LEVEL", "info,foo=verbose"),
        ("QUDAG_PROTOCOL", "gopher"),
        ("QUDAG_RATE_LIMIT", "many"),
        ("QUDAG_RATE_LIMIT_PER_USER", "maybe"),
        ("QUDAG_RATE_LIMIT_FAILURE", "fail-sideways"),
        ("QUDAG_SESSION_IDLE_TIMEOUT_SECS", "1.5"),
    ];
    for (name, value) in cases {
        let err = load(&[(name, value)]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(name), "{text}");
        assert!(text.contains(value), "{text}");
        assert_eq!(names(err), *name);
    }
}

#[test]
fn per_caller_bounds_must_allow_something() {
    for (name, value) in [
        ("QUDAG_MAX_SESSIONS_PER_PRINCIPAL", "0"),
        ("QUDAG_MAX_SUBSCRIPTIONS_PER_SESSION", "0"),
        ("QUDAG_MAX_SUBSCRIPTION_URI_BYTES", "10"),
        ("QUDAG_MAX_SUBSCRIPTION_URI_BYTES", "100000"),
        ("QUDAG_MAX_TOOL_CALLS_PER_PRINCIPAL", "0"),
        ("QUDAG_MAX_PENDING_REQUESTS_PER_PRINCIPAL", "0"),
    ] {
        let err = load(&[(name, value)]).unwrap_err();
        assert!(err.to_string().contains(value), "{err}");
        assert_eq!(names(err), name);
    }
}

#[test]
fn cross_field_rules_name_the_variable() {
    let err =
        load(&[("QUDAG_SESSION_IDLE_TIMEOUT_SECS", "600"), ("QUDAG_SESSION_ABSOLUTE_TIMEOUT_SECS", "60")]).unwrap_err();
    assert_eq!(names(err), "QUDAG_SESSION_ABSOLUTE_TIMEOUT_SECS");
    assert_eq!(names(load(&[("QUDAG_RATE_LIMIT_BURST", "0")]).unwrap_err()), "QUDAG_RATE_LIMIT_BURST");
    assert!(
        load(&[("QUDAG_RATE_LIMIT", "0"), ("QUDAG_RATE_LIMIT_BURST", "0")]).is_ok(),
        "burst is moot when limiting is off"
    );
    let err = load(&[("QUDAG_PROTOCOL", "https")]).unwrap_err();
    assert_eq!(names(err.clone()), "QUDAG_TLS_CERT_PATH");
    assert!(err.to_string().contains("https"), "{err}");
    let err = load(&[("QUDAG_PROTOCOL", "https"), ("QUDAG_TLS_CERT_PATH", "/c.pem")]).unwrap_err();
    assert_eq!(names(err), "QUDAG_TLS_KEY_PATH");
    let s = load(&[
        ("QUDAG_PROTOCOL", "https"),
        ("QUDAG_TLS_CERT_PATH", "/c.pem"),
        ("QUDAG_TLS_KEY_PATH", "/k.pem"),
        ("QUDAG_TLS_MIN_VERSION", "1.2"),
    ])
    .unwrap();
    assert_eq!(s.server.tls_min_version, TlsVersion::V1_2);
    assert_eq!(names(load(&[("QUDAG_TLS_MIN_VERSION", "1.1")]).unwrap_err()), "QUDAG_TLS_MIN_VERSION");
    assert_eq!(names(load(&[("QUDAG_MAX_HEADER_BYTES", "100")]).unwrap_err()), "QUDAG_MAX_HEADER_BYTES");
    assert_eq!(names(load(&[("QUDAG_HEADER_TIMEOUT_SECS", "0")]).unwrap_err()), "QUDAG_HEADER_TIMEOUT_SECS");
    assert_eq!(names(load(&[("QUDAG_KEEPALIVE_TIMEOUT_SECS", "0")]).unwrap_err()), "QUDAG_KEEPALIVE_TIMEOUT_SECS");
    assert_eq!(names(load(&[("QUDAG_MAX_CONNECTIONS", "0")]).unwrap_err()), "QUDAG_MAX_CONNECTIONS");
    assert_eq!(
        names(load(&[("QUDAG_TLS_HANDSHAKE_TIMEOUT_SECS", "0")]).unwrap_err()),
        "QUDAG_TLS_HANDSHAKE_TIMEOUT_SECS"
    );
}

#[test]
fn precedence_is_flags_over_env_over_file_over_defaults() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "[server]\nport = 4000\nhost = \"0.0.0.0\"\n[logging]\nformat = \"json\"\nlevel = \"warn\"\n\
         [auth]\nissuer_url = \"https://issuer.example\"\naudience = \"api\"\n\
         [mcp]\npublic_url = \"https://mcp.example.com\""
    )
    .unwrap();
    let from_file = Settings::load(Some(file.path()), env(&[]), &FlagOverrides::default()).unwrap();
    assert_eq!(from_file.server.port, 4000);
    assert_eq!(from_file.server.host, "0.0.0.0");
    assert_eq!(from_file.server.shutdown_grace_secs, 30, "keys a file leaves out keep their defaults");

    let env_over_file =
        Settings::load(Some(file.path()), env(&[("QUDAG_PORT", "5000")]), &FlagOverrides::default()).unwrap();
    assert_eq!(env_over_file.server.port, 5000);
    assert_eq!(env_over_file.logging.level, "warn");

    let flags = FlagOverrides { port: Some("6000".into()), log_level: Some("debug".into()), ..Default::default() };
    let all = Settings::load(Some(file.path()), env(&[("QUDAG_PORT", "5000"), ("QUDAG_LOG_LEVEL", "error")]), &flags)
        .unwrap();
    assert_eq!(all.server.port, 6000);
    assert_eq!(all.logging.level, "debug");
    assert_eq!(all.logging.format, LogFormat::Json);
    assert_eq!(all.server.host, "0.0.0.0");
}

#[test]
fn bad_flags_name_the_flag() {
    let flags = FlagOverrides { port: Some("http".into()), ..Default::default() };
    let err = Settings::load(None, env(&[]), &flags).unwrap_err();
    assert_eq!(names(err), "--port");
}

#[test]
fn file_errors_name_the_file_and_the_problem() {
    let mut unknown = tempfile::NamedTempFile::new().unwrap();
    writeln!(unknown, "[server]\nprot = 1").unwrap();
    let err = Settings::load(Some(unknown.path()), env(&[]), &FlagOverrides::default()).unwrap_err();
    assert!(err.to_string().contains("prot"), "{err}");
    assert!(err.to_string().contains(&unknown.path().display().to_string()));

    let mut wrong_type = tempfile::NamedTempFile::new().unwrap();
    writeln!(wrong_type, "[server]\nport = \"abc\"").unwrap();
    assert!(matches!(
        Settings::load(Some(wrong_type.path()), env(&[]), &FlagOverrides::default()),
        Err(ConfigError::File { .. })
    ));

    let missing = Path::new("/nonexistent/qudag.toml");
    let err = Settings::load(Some(missing), env(&[]), &FlagOverrides::default()).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/qudag.toml"), "{err}");
}

#[test]
fn a_bad_file_value_is_still_caught_by_validation() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "[logging]\nlevel = \"shouting\"").unwrap();
    let err = Settings::load(Some(file.path()), env(&[]), &FlagOverrides::default()).unwrap_err();
    assert_eq!(names(err), "QUDAG_LOG_LEVEL");
}

#[test]
fn authentication_may_be_off_only_on_loopback() {
    assert!(load(&[("QUDAG_REQUIRE_AUTH", "false")]).is_ok());
    let err = load(&[("QUDAG_REQUIRE_AUTH", "false"), ("QUDAG_HOST", "0.0.0.0")]).unwrap_err();
    assert_eq!(names(err.clone()), "QUDAG_REQUIRE_AUTH");
    assert!(err.to_string().contains("QUDAG_ALLOW_UNAUTHENTICATED_NETWORK"), "{err}");
    assert!(
        load(&[
            ("QUDAG_REQUIRE_AUTH", "false"),
            ("QUDAG_HOST", "0.0.0.0"),
            ("QUDAG_ALLOW_UNAUTHENTICATED_NETWORK", "true")
        ])
        .is_ok()
    );
    assert!(
        load(&[("QUDAG_HOST", "0.0.0.0"), ("QUDAG_PUBLIC_URL", "https://mcp.example.com")]).is_ok(),
        "with authentication on and a public URL, any address"
    );
}

#[test]
fn authentication_on_off_loopback_needs_the_public_url() {
    for host in ["0.0.0.0", "::", "10.1.2.3"] {
        let err = load(&[("QUDAG_HOST", host)]).unwrap_err();
        assert_eq!(names(err.clone()), "QUDAG_PUBLIC_URL", "{host}");
        assert!(err.to_string().contains(host), "{err}");
    }
    // On loopback, or with authentication off (allowed off loopback), the Host may serve.
    for host in ["127.0.0.1", "::1", "localhost"] {
        assert!(load(&[("QUDAG_HOST", host)]).is_ok(), "{host}");
    }
    assert!(
        load(&[
            ("QUDAG_REQUIRE_AUTH", "false"),
            ("QUDAG_HOST", "0.0.0.0"),
            ("QUDAG_ALLOW_UNAUTHENTICATED_NETWORK", "true")
        ])
        .is_ok()
    );
}

#[test]
fn body_and_connection_limits_are_validated() {
    let s = load(&[]).unwrap();
    assert_eq!((s.mcp.max_body_bytes, s.mcp.admin_max_body_bytes, s.mcp.body_timeout_secs), (4_194_304, 65_536, 30));
    assert_eq!(s.server.max_connections_per_address, 256);
    assert_eq!(load(&[("QUDAG_MAX_CONNECTIONS_PER_ADDRESS", "0")]).unwrap().server.max_connections_per_address, 0);
    assert_eq!(s.mcp.max_body_bytes_per_address, 16_777_216);
    assert_eq!(load(&[("QUDAG_MAX_BODY_BYTES_PER_ADDRESS", "0")]).unwrap().mcp.max_body_bytes_per_address, 0);
    let equal = load(&[("QUDAG_MAX_BODY_BYTES", "8192"), ("QUDAG_MAX_BODY_BYTES_PER_ADDRESS", "65536")]).unwrap();
    assert_eq!(equal.mcp.max_body_bytes_per_address, 65_536, "the admin limit (65536) is the larger one");
    for (name, value) in [
        // Smaller than one body of QUDAG_MAX_BODY_BYTES (4194304): no such body could be read.
        ("QUDAG_MAX_BODY_BYTES_PER_ADDRESS", "4194303"),
        ("QUDAG_ADMIN_MAX_BODY_BYTES", "1023"),
        ("QUDAG_BODY_TIMEOUT_SECS", "0"),
        ("QUDAG_BODY_TIMEOUT_SECS", "3601"),
        ("QUDAG_MAX_CONNECTIONS_PER_ADDRESS", "-1"),
        ("QUDAG_MAX_CONNECTIONS_PER_ADDRESS", "many"),
    ] {
        let err = load(&[(name, value)]).unwrap_err();
        assert!(err.to_string().contains(value), "{err}");
        assert_eq!(names(err), name);
    }
}

#[test]
fn request_state_keys_are_validated_and_never_shown() {
    let key = "ab".repeat(32);
    let s = load(&[("QUDAG_REQUEST_STATE_KEY", &key)]).unwrap();
    assert_eq!(s.request_state_key_bytes().unwrap().unwrap().len(), 32);
    assert!(!s.to_toml().contains(&key));
    assert!(!format!("{s:?}").contains(&key));
    for bad in ["abc", "zz".repeat(32).as_str(), "ab".repeat(31).as_str()] {
        let err = load(&[("QUDAG_REQUEST_STATE_KEY", bad)]).unwrap_err();
        assert_eq!(names(err.clone()), "QUDAG_REQUEST_STATE_KEY");
        assert!(!err.to_string().contains(bad), "the key is not echoed: {err}");
    }
}

#[test]
fn redis_settings_are_validated_and_credentials_hidden() {
    let err = load(&[("QUDAG_RATE_LIMIT_STORE", "redis")]).unwrap_err();
    assert_eq!(names(err), "QUDAG_RATE_LIMIT_STORE");
    let err = load(&[("QUDAG_SESSION_STORE", "redis")]).unwrap_err();
    assert_eq!(names(err), "QUDAG_SESSION_STORE");
    let err = load(&[("QUDAG_SESSION_STORE", "etcd")]).unwrap_err();
    assert_eq!(names(err), "QUDAG_SESSION_STORE");
    let err = load(&[("QUDAG_REDIS_URL", "http://x")]).unwrap_err();
    assert_eq!(names(err), "QUDAG_REDIS_URL");
    let s = load(&[
        ("QUDAG_RATE_LIMIT_STORE", "redis"),
        ("QUDAG_REDIS_URL", "redis://u:pw@127.0.0.1:6379/2"),
        ("QUDAG_REDIS_KEY_PREFIX", "blue:"),
        ("QUDAG_SESSION_STORE", "redis"),
    ])
    .unwrap();
    assert_eq!((s.rate_limit.store, s.sessions.store), (StateStore::Redis, StateStore::Redis));
    assert_eq!(s.redis.key_prefix, "blue:");
    assert!(!s.to_toml().contains("pw@") && !format!("{s:?}").contains("pw@"));
    assert!(s.to_toml().contains("url = \"redis://u:***@127.0.0.1:6379/2\""), "{}", s.to_toml());
    assert_eq!(redact_url("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
    assert_eq!(redact_url("redis://h:1"), "redis://h:1");
}

#[test]
fn trusted_proxies_are_addresses_or_blocks() {
    let s = load(&[("QUDAG_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1 ,::1/128")]).unwrap();
    assert_eq!(s.mcp.trusted_proxies, vec!["10.0.0.0/8", "127.0.0.1", "::1/128"]);
    for bad in ["10.0.0.0/33", "nope", "::1/129"] {
        assert_eq!(names(load(&[("QUDAG_TRUSTED_PROXIES", bad)]).unwrap_err()), "QUDAG_TRUSTED_PROXIES", "{bad}");
    }
    assert_eq!(load(&[("QUDAG_DAILY_QUOTA", "5000")]).unwrap().rate_limit.daily_quota, 5000);
}

#[test]
fn cors_origins_are_a_list() {
    let s = load(&[("QUDAG_CORS_ORIGINS", "https://a.example, https://b.example ,")]).unwrap();
    assert_eq!(s.mcp.cors_origins, vec!["https://a.example", "https://b.example"]);
}

#[test]
fn unknown_qudag_variables_are_reported() {
    let unknown = unknown_variables(env(&[
        ("QUDAG_PROT", "1"),
        ("QUDAG_PORT", "1"),
        ("HOME", "/"),
        ("QUDAG_TEST_REDIS_URL", "x"),
    ]));
    assert_eq!(unknown, vec!["QUDAG_PROT".to_owned()]);
}

#[test]
fn effective_configuration_round_trips_through_toml() {
    let s = load(&[("QUDAG_PORT", "1234"), ("QUDAG_RATE_LIMIT_FAILURE", "fail-closed")]).unwrap();
    let back: Settings = toml::from_str(&s.to_toml()).unwrap();
    assert_eq!(back, s);
}

#[test]
fn every_variable_is_documented() {
    let doc = include_str!("../../../docs/configuration.md");
    for var in ENV_VARS {
        let row = doc.lines().find(|l| l.starts_with(&format!("| `{}` |", var.name)));
        let row = row.unwrap_or_else(|| panic!("{} is not in docs/configuration.md", var.name));
        assert!(row.contains(&format!("`{}`", var.key)), "{}: TOML key {} missing from its row", var.name, var.key);
        assert!(
            row.contains(&format!("`{}`", var.default)),
            "{}: default {} missing from its row",
            var.name,
            var.default
        );
    }
}

#[test]
fn every_variable_is_read_by_the_section_its_key_names() {
    for var in ENV_VARS {
        // An empty value is refused by some sections, but for a bad value, not an unknown key.
        if let Err(reason) = Settings::default().set(var.key, "") {
            assert_ne!(reason, parse::unknown(var.key.split_once('.').map_or(var.key, |(_, f)| f)), "{}", var.name);
        }
    }
    assert_eq!(Settings::default().set("server.prot", "1"), Err(parse::unknown("prot")));
    assert_eq!(Settings::default().set("nowhere.port", "1"), Err(parse::unknown("nowhere.port")));
}

#[test]
fn secrets_are_secrecy_types_shown_only_as_redacted() {
    use secrecy::ExposeSecret as _;
    let key = "cd".repeat(32);
    let s = load(&[
        ("QUDAG_OAUTH2_CLIENT_SECRET", "s3cret-client"),
        ("QUDAG_OAUTH2_HMAC_SECRET", "0123456789abcdef0123456789abcdef-hmac"),
        ("QUDAG_REQUEST_STATE_KEY", &key),
    ])
    .unwrap();
    assert_eq!(s.auth.client_secret.as_ref().map(|v| v.expose_secret()), Some("s3cret-client"));
    assert_eq!(s.mcp.request_state_key.as_ref().map(|v| v.expose_secret()), Some(key.as_str()));
    let toml = s.to_toml();
    assert_eq!(toml.matches("\"<redacted>\"").count(), 3, "{toml}");
    let mut other = s.clone();
    assert_eq!(other, s);
    other.auth.hmac_secret = Some("another-secret-of-at-least-32-bytes!".into());
    assert_ne!(other, s, "secrets take part in comparisons");
}

#[test]
fn with_several_mistakes_the_first_named_is_the_one_it_always_was() {
    let first = |vars: &[(&str, &str)]| names(Settings::load(None, env(vars), &FlagOverrides::default()).unwrap_err());
    // Without an issuer: the public URL is checked before it, the session store after it.
    assert_eq!(first(&[("QUDAG_PUBLIC_URL", "mcp.example")]), "QUDAG_PUBLIC_URL");
    assert_eq!(first(&[("QUDAG_MAX_SESSIONS", "0")]), "QUDAG_OAUTH2_ISSUER_URL");
    assert_eq!(
        first(&[("QUDAG_MAX_SESSIONS", "0"), ("QUDAG_SESSION_IDLE_TIMEOUT_SECS", "0")]),
        "QUDAG_SESSION_IDLE_TIMEOUT_SECS"
    );
    let first = |vars: &[(&str, &str)]| names(load(vars).unwrap_err());
    assert_eq!(first(&[("QUDAG_MAX_SESSIONS", "0"), ("QUDAG_REDIS_POOL_SIZE", "0")]), "QUDAG_REDIS_POOL_SIZE");
    assert_eq!(first(&[("QUDAG_MAX_SESSIONS", "0"), ("QUDAG_MAX_QUBITS", "0")]), "QUDAG_MAX_SESSIONS");
    assert_eq!(
        first(&[("QUDAG_RATE_LIMIT_BURST", "0"), ("QUDAG_AUDIT_QUEUE_CAPACITY", "0")]),
        "QUDAG_AUDIT_QUEUE_CAPACITY"
    );
}
