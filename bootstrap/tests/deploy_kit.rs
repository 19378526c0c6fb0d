//! The operators' kit in `deploy/` — the Prometheus alert rules and the Grafana dashboard —
//! names only series that the server really exposes.
//!
//! The binary is started as operators run it, with every optional family switched on
//! (https for the TLS counters, the file audit sink for the queue gauge), and driven until
//! each labelled family has a series: a tool call, a rate-limited call, a missing token, a
//! token whose issuer cannot be reached (a backend error), a failed TLS handshake. Then
//! `/metrics` is scraped and every metric name of every rule's `expr` and of every dashboard
//! query must be a sample name of the scrape: `_bucket`, `_sum` and `_count` only on a
//! histogram, the bare name of a histogram never, `_total` on counters.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

use qudag_test_support::process::Server;
use qudag_test_support::qudag_mcp_command;
use qudag_test_support::temp::temp_dir;

/// Series Prometheus writes itself for every target, never found in a scrape.
const SYNTHETIC: &[&str] = &["up"];

/// The issuer `qudag_mcp_command!` configures: nothing listens there.
const ISSUER: &str = "http://127.0.0.1:9";
const AUDIENCE: &str = "qudag-mcp-api";
const HMAC_SECRET: &str = "deploy-kit-test-secret-of-32-bytes-or-more";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

// ---------------------------------------------------------------------------------------
// PromQL: the metric names an expression selects.

/// Words that are PromQL operators or modifiers, never metric names.
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"];
/// Aggregation operators: `sum by (x) (…)` puts a clause between the name and its `(`.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
/// Modifiers followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// `text` with string literals and `#` comments replaced by a space.
fn without_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                while let Some(d) = chars.next() {
                    if d == '\\' && c != '`' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
                out.push(' ');
            }
            '#' => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

/// `text` (without strings) with label matchers `{…}` and ranges `[…]` replaced by a space.
fn without_selectors(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut closing = None;
    for c in text.chars() {
        match (closing, c) {
            (Some(end), c) if c == end => {
                closing = None;
                out.push(' ');
            }
            (Some(_), _) => {}
            (None, '{') => closing = Some('}'),
            (None, '[') => closing = Some(']'),
            (None, c) => out.push(c),
        }
    }
    out
}

/// The metric names selected by the PromQL expression `expr` (Grafana's `$variables`
/// allowed).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let text: Vec<char> = without_selectors(&without_strings(expr)).chars().collect();
    let next_non_space = |from: usize| text[from..].iter().copied().find(|c| !c.is_whitespace());
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < text.len() && (text[i].is_ascii_alphanumeric() || text[i] == '_' || text[i] == ':') {
                i += 1;
            }
            let word: String = text[start..i].iter().collect();
            let lower = word.to_ascii_lowercase();
            let before_paren = next_non_space(i) == Some('(');
            if LABEL_LISTS.contains(&lower.as_str()) {
                if before_paren {
                    // Skip the label list.
                    let open = i + text[i..].iter().position(|c| *c == '(').unwrap();
                    i = open + text[open..].iter().position(|c| *c == ')').unwrap() + 1;
                }
            } else if !before_paren && !KEYWORDS.contains(&lower.as_str()) && !AGGREGATIONS.contains(&lower.as_str()) {
                names.insert(word);
            }
        } else if c == '$' || c.is_ascii_digit() || c == '.' {
            // A Grafana variable, a number or a duration.
            i += 1;
            while i < text.len() && (text[i].is_ascii_alphanumeric() || text[i] == '_' || text[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The expression a Grafana query variable evaluates: `label_values(selector, label)` or
/// `query_result(expr)`; `label_values(label)` selects no metric.
fn variable_expr(query: &str) -> Option<String> {
    let query = query.trim();
    if let Some(inner) = query.strip_prefix("label_values(").and_then(|q| q.strip_suffix(')')) {
        return inner.rsplit_once(',').map(|(selector, _)| selector.to_owned());
    }
    if let Some(inner) = query.strip_prefix("query_result(").and_then(|q| q.strip_suffix(')')) {
        return Some(inner.to_owned());
    }
    Some(query.to_owned())
}

#[test]
fn metric_names_are_read_from_promql_as_prometheus_reads_them() {
    let names = |expr: &str| metric_names(expr).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (le, job) (rate(a_seconds_bucket{job="x",route=~"/mcp|{b}"}[5m])))
              / on (job) group_left sum by (job) (rate(b_total{job="x"}[$__rate_interval] offset 1h))
              > 0.05 and c_gauge > bool 1e3 unless max without (instance) (d) # e_comment"#
        ),
        ["a_seconds_bucket", "b_total", "c_gauge", "d"]
    );
    assert_eq!(names("sum(rate(x_total[5m])) by (job) or vector(0)"), ["x_total"]);
    assert_eq!(names(r#"up{job="qudag-mcp"} == 0"#), ["up"]);
    assert_eq!(names("count(count by (v) (build_info))"), ["build_info"]);
    assert_eq!(variable_expr(r#"label_values(g{job=~"$job"}, instance)"#).as_deref(), Some(r#"g{job=~"$job"}"#));
    assert_eq!(variable_expr("label_values(job)"), None);
}

// ---------------------------------------------------------------------------------------
// The kit: where each expression is, and what it is.

/// `(where, expr)` of every rule in `deploy/prometheus/alerts.yml`.
fn rule_exprs() -> Vec<(String, String)> {
    let path = repository().join("deploy/prometheus/alerts.yml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for group in doc["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().or_else(|| rule["record"].as_str()).expect("alert or record");
            exprs.push((format!("alerts.yml {name}"), rule["expr"].as_str().expect("expr").to_owned()));
        }
    }
    exprs
}

/// `(where, expr)` of every query in `deploy/grafana/qudag-mcp.json`: each panel target's
/// `expr`, in rows too, and each query variable's query.
fn dashboard_exprs() -> Vec<(String, String)> {
    fn panels(list: &[Value], out: &mut Vec<(String, String)>) {
        for panel in list {
            let title = panel["title"].as_str().unwrap_or("(untitled)");
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_else(|| panic!("panel {title:?}: a target without expr"));
                out.push((format!("qudag-mcp.json panel {title:?}"), expr.to_owned()));
            }
            panels(panel["panels"].as_array().map_or(&[], Vec::as_slice), out);
        }
    }
    let path = repository().join("deploy/grafana/qudag-mcp.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    panels(doc["panels"].as_array().expect("panels"), &mut exprs);
    for variable in doc["templating"]["list"].as_array().into_iter().flatten() {
        if variable["type"] == "query" {
            let query = variable["query"]["query"].as_str().or_else(|| variable["query"].as_str()).expect("query");
            if let Some(expr) = variable_expr(query) {
                exprs.push((format!("qudag-mcp.json variable {}", variable["name"]), expr));
            }
        }
    }
    exprs
}

// ---------------------------------------------------------------------------------------
// The server: https, the file audit sink, HMAC-signed tokens, a tiny rate limit.

fn tls_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").unwrap_or(&rest[size..]);
    }
    out
}

/// One HTTP/1.1 request over a new TLS connection.
fn https(
    port: u16,
    tls: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let conn = rustls::ClientConnection::new(tls.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    stream.write_all(format!("{head}\r\n{body}").as_bytes()).unwrap();
    let mut raw = Vec::new();
    // The server may close without close_notify; what arrived is the answer.
    let _ = stream.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no response to {method} {path}: {raw:?}"));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    Response { status, headers, body }
}

fn jwt(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let input = format!("{}.{}", part(header), part(claims));
    let signature = URL_SAFE_NO_PAD.encode(sign(input.as_bytes()));
    format!("{input}.{signature}")
}

fn claims() -> Value {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "deploy-kit", "iat": now, "exp": now + 600,
        "roles": ["admin"], "scope": "mcp:read mcp:write mcp:execute mcp:monitor mcp:audit mcp:admin",
    })
}

/// A token the server verifies with its HMAC secret, without its issuer.
fn hmac_token() -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(HMAC_SECRET.as_bytes());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, &claims(), &key).unwrap()
}

/// A token whose key the server must fetch from the issuer, which cannot be reached.
fn issuer_token() -> String {
    jwt(&json!({"alg": "RS256", "typ": "at+jwt", "kid": "not-cached"}), &claims(), |_| vec![7; 256])
}

const ACCEPT: (&str, &str) = ("accept", "application/json, text/event-stream");
const JSON: (&str, &str) = ("content-type", "application/json");
const VERSION: &str = "2025-11-25";

#[test]
fn the_alert_rules_and_the_dashboard_use_only_series_the_server_exposes() {
    let rules = rule_exprs();
    let dashboard = dashboard_exprs();
    assert!(rules.len() >= 5 && dashboard.len() >= 10, "the kit was not read: {rules:?} {dashboard:?}");

    let dir = temp_dir("deploy-kit");
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), ca.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), ca.signing_key.serialize_pem()).unwrap();
    let server = Server::start(
        qudag_mcp_command!()
            .arg("serve")
            .env("QUDAG_PROTOCOL", "https")
            .env("QUDAG_TLS_CERT_PATH", dir.path().join("cert.pem"))
            .env("QUDAG_TLS_KEY_PATH", dir.path().join("key.pem"))
            .env("QUDAG_OAUTH2_ISSUER_URL", ISSUER)
            .env("QUDAG_OAUTH2_AUDIENCE", AUDIENCE)
            .env("QUDAG_OAUTH2_HMAC_SECRET", HMAC_SECRET)
            .env("QUDAG_AUDIT_SINK", "file")
            .env("QUDAG_AUDIT_FILE", dir.path().join("audit.jsonl"))
            .env("QUDAG_RATE_LIMIT", "1")
            .env("QUDAG_RATE_LIMIT_BURST", "3"),
    )
    .drain_log();
    let port = server.port();
    let tls = tls_config(&ca.cert.pem());
    let post = |headers: &[(&str, &str)], body: &Value| {
        let mut all = vec![ACCEPT, JSON];
        all.extend_from_slice(headers);
        https(port, &tls, "POST", "/mcp", &all, &body.to_string())
    };

    // A session and a tool call, then calls until the rate limit (a burst of 3) refuses one.
    let token = hmac_token();
    let bearer = format!("Bearer {token}");
    let init = post(
        &[("authorization", &bearer)],
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "deploy-kit", "version": "1"}}}),
    );
    assert_eq!(init.status, 200, "{init:?}");
    let session = init.header("mcp-session-id").expect("a session id").to_owned();
    let in_session =
        [("authorization", bearer.as_str()), ("mcp-session-id", &session), ("mcp-protocol-version", VERSION)];
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "system_health_check", "arguments": {}}});
    let first = post(&in_session, &call);
    assert_eq!(first.status, 200, "{first:?}");
    assert!(first.body.contains("\"result\""), "{first:?}");
    let refused = (0..10).map(|_| post(&in_session, &call).status).find(|s| *s != 200);
    assert_eq!(refused, Some(429), "the rate limit refuses a call");

    // Refused credentials: none at all, and one whose issuer is away (a backend error).
    assert_eq!(post(&[], &call).status, 401);
    let away = post(&[("authorization", &format!("Bearer {}", issuer_token()))], &call);
    assert_eq!(away.status, 503, "{away:?}");

    // A client that does not speak TLS: a failed handshake.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    plain.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let _ = plain.read_to_end(&mut Vec::new());

    let scrape = https(port, &tls, "GET", "/metrics", &[], "");
    assert_eq!(scrape.status, 200);
    let samples: BTreeSet<String> = scrape
        .body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    let histograms: BTreeSet<&str> =
        scrape.body.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" histogram")).collect();

    let mut missing = Vec::new();
    let mut used = BTreeSet::new();
    for (place, expr) in rules.iter().chain(&dashboard) {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{place}: no metric in {expr:?}");
        for name in names {
            if samples.contains(&name) || SYNTHETIC.contains(&name.as_str()) {
                used.insert(name);
            } else if histograms.contains(name.as_str()) {
                missing.push(format!("{place}: {name} is a histogram: select {name}_bucket, _sum or _count"));
            } else {
                missing.push(format!("{place}: {name}"));
            }
        }
    }
    assert!(missing.is_empty(), "series not in a live scrape:\n{}\n\nscrape:\n{}", missing.join("\n"), scrape.body);
    // Every family the server writes is alerted on or shown, so a new one is not forgotten.
    let family = |name: &str| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|f| histograms.contains(f)))
            .unwrap_or(name)
            .to_owned()
    };
    let watched: BTreeSet<String> = used.iter().map(|n| family(n)).collect();
    let unwatched: BTreeSet<String> = samples.iter().map(|n| family(n)).filter(|f| !watched.contains(f)).collect();
    assert!(
        unwatched.is_empty(),
        "families neither alerted on (deploy/prometheus/alerts.yml) nor shown (deploy/grafana/qudag-mcp.json): {unwatched:?}"
    );
}
