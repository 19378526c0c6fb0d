//! The OAuth 2.0 resource server against a real OpenID Connect issuer (`tests/oidc`):
//! every signing algorithm, key rotation, introspection, DPoP, the role × tool table, the
//! negative corpus, session binding, metadata and the explain endpoint.
//!
//! The server runs the `authz` fixture: one probe tool per permission.

#![allow(clippy::unwrap_used)]

mod metrics;
mod spans;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use qudag_application::ports::AuditFilter;
use qudag_domain::audit::AuditAction;
use qudag_domain::rbac::Permission;
use qudag_mcp::Settings;
use qudag_mcp::cli::Fixtures;
use qudag_test_support::oidc::Issuer;
use qudag_tests::{TestApp, spawn_with_fixtures};
use serde_json::{Value, json};

const AUDIENCE: &str = "qudag-mcp-api";
const HS256_SECRET: &str = "qudag-hs256-test-secret-0123456789abcdef";

async fn issuer() -> Issuer {
    Issuer::start(&[]).await.unwrap()
}

/// A server trusting `issuer`, rate limits off, adjusted by `tweak`.
async fn server(issuer: &Issuer, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let url = issuer.url().to_owned();
    spawn_with_fixtures(Some(Fixtures::Authz), move |s| {
        s.auth.require_auth = true;
        s.auth.issuer_url = Some(url);
        s.auth.audience = Some(AUDIENCE.into());
        s.rate_limit.requests_per_minute = 0;
        tweak(s);
    })
    .await
}

fn probe(p: Permission) -> String {
    qudag_application::mcp::fixtures::authz::probe_name(p)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

struct Answer {
    status: u16,
    challenge: Option<String>,
    body: Value,
}

/// A stateless (2026-07-28) `tools/call` of `tool` with `authorization` as the header.
async fn call_with(app: &TestApp, authorization: Option<String>, dpop: Option<String>, tool: &str) -> Answer {
    let mut req = app.tool_call(1, tool, json!({}));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    if let Some(p) = dpop {
        req = req.header("dpop", p);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer { status, challenge, body }
}

async fn call(app: &TestApp, token: &str, tool: &str) -> Answer {
    call_with(app, Some(format!("Bearer {token}")), None, tool).await
}

fn reason(a: &Answer) -> &str {
    a.body["error"]["data"]["oauth"]["reason"].as_str().unwrap_or("(none)")
}

async fn audited(app: &TestApp, action: AuditAction) -> Vec<Value> {
    let filter = AuditFilter { action: Some(action), ..AuditFilter::default() };
    let page = app.audit.query(&filter, None, 10_000).await.unwrap();
    page.events.into_iter().map(|e| serde_json::to_value(&e.record).unwrap()).collect()
}

#[tokio::test]
async fn every_signing_algorithm_the_issuer_offers_is_accepted() {
    let issuer = issuer().await;
    let app = server(&issuer, |_| {}).await;
    for client in [
        "qudag-rs256",
        "qudag-rs384",
        "qudag-rs512",
        "qudag-ps256",
        "qudag-ps384",
        "qudag-ps512",
        "qudag-es256",
        "qudag-es384",
        "qudag-eddsa",
    ] {
        let token = issuer.token(client, None, None).await.unwrap();
        let a = call(&app, &token, &probe(Permission::QuantumExecute)).await;
        assert_eq!(a.status, 200, "{client}: {}", a.body);
        let who = a.body["result"]["structuredContent"]["principal"].as_str().unwrap();
        assert_eq!(who, format!("{}#{client}", issuer.url()), "{client}");
    }

    // HS256 is refused without a configured secret...
    let hs = issuer.token("qudag-hs256", None, None).await.unwrap();
    let a = call(&app, &hs, &probe(Permission::QuantumExecute)).await;
    assert_eq!((a.status, reason(&a)), (401, "alg_not_allowed"), "{}", a.body);
    // ...and accepted with the issuer's secret configured explicitly.
    let hmac = server(&issuer, |s| s.auth.hmac_secret = Some(HS256_SECRET.into())).await;
    let a = call(&hmac, &hs, &probe(Permission::QuantumExecute)).await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn unsupported_algorithms_are_refused_with_a_reason() {
    let issuer = Issuer::start(&[("OIDC_EXTRA_ALGS", "ES512,Ed25519")]).await.unwrap();
    let app = server(&issuer, |_| {}).await;
    for client in ["qudag-es512", "qudag-ed25519"] {
        let token = issuer.token(client, None, None).await.unwrap();
        let a = call(&app, &token, &probe(Permission::QuantumRead)).await;
        assert_eq!((a.status, reason(&a)), (401, "unsupported_alg"), "{client}: {}", a.body);
    }
}

/// What each preset client (with its roles' default scopes) may call, by permission.
fn allowed_for(client: &str) -> Vec<&'static str> {
    let developer = vec![
        "quantum:read",
        "quantum:write",
        "quantum:execute",
        "crypto:read",
        "crypto:write",
        "crypto:execute",
        "dag:read",
        "dag:write",
        "dag:execute",
        "system:read",
    ];
    match client {
        "qudag-admin" => Permission::ALL.iter().map(|p| p.as_str()).collect(),
        "qudag-developer" => developer,
        "qudag-operator" => vec![
            "quantum:read",
            "quantum:execute",
            "crypto:read",
            "crypto:execute",
            "dag:read",
            "dag:execute",
            "vault:read",
            "network:read",
            "system:read",
            "system:monitor",
        ],
        "qudag-auditor" => vec![
            "quantum:read",
            "crypto:read",
            "dag:read",
            "vault:read",
            "network:read",
            "system:read",
            "system:monitor",
            "audit:read",
        ],
        "qudag-readonly" => vec!["dag:read", "system:read"],
        "qudag-multirole" => {
            let mut both = developer;
            both.extend(["vault:read", "network:read", "system:monitor", "audit:read"]);
            both
        }
        _ => vec![],
    }
}

#[tokio::test]
async fn each_role_calls_exactly_the_tools_it_should() {
    let issuer = issuer().await;
    let app = server(&issuer, |_| {}).await;
    for client in [
        "qudag-admin",
        "qudag-developer",
        "qudag-operator",
        "qudag-auditor",
        "qudag-readonly",
        "qudag-multirole",
        "qudag-noroles",
    ] {
        let token = issuer.token(client, None, None).await.unwrap();
        let allowed = allowed_for(client);
        for permission in Permission::ALL {
            let a = call(&app, &token, &probe(permission)).await;
            let expected = allowed.contains(&permission.as_str());
            assert_eq!(a.status == 200, expected, "{client} calling {permission}: {} {}", a.status, a.body);
            if !expected {
                assert_eq!(a.status, 403, "{client} calling {permission}: {}", a.body);
                assert_eq!(a.body["error"]["data"]["requiredPermission"], permission.as_str());
                let challenge = a.challenge.as_deref().unwrap_or_default();
                assert!(challenge.contains("error=\"insufficient_scope\""), "{client}/{permission}: {challenge}");
            }
        }
    }
    let denied = audited(&app, AuditAction::ToolDenied).await;
    assert!(denied.len() >= 17, "denials are audited: {}", denied.len());
}

#[tokio::test]
async fn a_missing_scope_asks_for_a_step_up_and_a_scope_never_widens_a_role() {
    let issuer = issuer().await;
    let app = server(&issuer, |_| {}).await;
    let narrow = issuer.token("qudag-admin", Some("mcp:read"), None).await.unwrap();
    assert_eq!(call(&app, &narrow, &probe(Permission::QuantumRead)).await.status, 200);
    let a = call(&app, &narrow, &probe(Permission::QuantumWrite)).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.body["error"]["data"]["deniedBy"], "scope");
    let challenge = a.challenge.unwrap();
    assert!(challenge.starts_with("Bearer resource_metadata=\""), "{challenge}");
    assert!(challenge.contains("scope=\"mcp:read mcp:write\""), "existing and needed scopes: {challenge}");

    let wide = issuer.token("qudag-readonly", Some("mcp:read mcp:admin"), None).await.unwrap();
    let a = call(&app, &wide, &probe(Permission::Admin)).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.body["error"]["data"]["deniedBy"], "role");
    assert!(!a.challenge.unwrap().contains("scope=\""), "a step-up cannot help a role denial");
}

#[tokio::test]
async fn key_rotation_is_picked_up_without_restart_and_retired_keys_stop_verifying() {
    let issuer = issuer().await;
    let app = server(&issuer, |s| s.auth.jwks_min_refresh_secs = 1).await;
    let tool = probe(Permission::QuantumRead);
    let old = issuer.token("qudag-developer", None, None).await.unwrap();
    assert_eq!(call(&app, &old, &tool).await.status, 200);
    let before = issuer.stats(false).await.unwrap()["jwks"].as_u64().unwrap();

    issuer.rotate(false).await.unwrap();
    let new = issuer.token("qudag-developer", None, None).await.unwrap();
    assert_ne!(header_kid(&new), header_kid(&old), "the issuer signs with a new key");
    let a = call(&app, &new, &tool).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(issuer.stats(false).await.unwrap()["jwks"].as_u64().unwrap(), before + 1, "one refetch");
    assert_eq!(call(&app, &old, &tool).await.status, 200, "the old key is still published");

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    issuer.rotate(true).await.unwrap();
    let newest = issuer.token("qudag-developer", None, None).await.unwrap();
    assert_eq!(call(&app, &newest, &tool).await.status, 200);
    let a = call(&app, &old, &tool).await;
    assert_eq!((a.status, reason(&a)), (401, "unknown_kid"), "a retired key's token is refused: {}", a.body);
}

fn header_kid(token: &str) -> String {
    let h = token.split('.').next().unwrap();
    let h: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    h["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_flood_of_unknown_kids_does_not_flood_the_issuer() {
    let issuer = issuer().await;
    let app = server(&issuer, |_| {}).await;
    let good = issuer.token("qudag-developer", None, None).await.unwrap();
    assert_eq!(call(&app, &good, &probe(Permission::QuantumRead)).await.status, 200);
    issuer.stats(true).await.unwrap();
    for i in 0..40 {
        let forged = issuer.sign(json!({"header": {"kid": format!("made-up-{i}")}})).await.unwrap();
        let a = call(&app, &forged, &probe(Permission::QuantumRead)).await;
        assert_eq!((a.status, reason(&a)), (401, "unknown_kid"));
    }
    let fetched = issuer.stats(false).await.unwrap()["jwks"].as_u64().unwrap();
    assert!(fetched <= 1, "40 unknown kids caused {fetched} JWKS fetches");
    let suppressed =
        app.verifier.as_ref().unwrap().jwks().stats.refreshes_suppressed.load(std::sync::atomic::Ordering::Relaxed);
    assert!(suppressed >= 39, "{suppressed}");
}

#[tokio::test]
async fn opaque_tokens_are_introspected_and_cached() {
    let issuer = issuer().await;
    let introspection = format!("{}/token/introspection", issuer.url());
    let app = server(&issuer, |s| {
        s.auth.introspection_url = Some(introspection);
        s.auth.client_id = Some("qudag-mcp-server".into());
        s.auth.client_secret = Some("qudag-mcp-server-secret".into());
    })
    .await;
    let opaque = issuer.token("qudag-opaque", None, None).await.unwrap();
    assert!(!opaque.contains('.'), "an opaque token: {opaque}");
    issuer.stats(true).await.unwrap();
    let a = call(&app, &opaque, &probe(Permission::QuantumExecute)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["result"]["structuredContent"]["principal"], format!("{}#qudag-opaque", issuer.url()));
    assert_eq!(call(&app, &opaque, &probe(Permission::QuantumRead)).await.status, 200);
    assert_eq!(issuer.stats(false).await.unwrap()["introspection"], 1, "the answer is cached until expiry");
    let a = call(&app, &opaque, &probe(Permission::VaultWrite)).await;
    assert_eq!(a.status, 403, "roles from introspection decide too");

    let admin = issuer.token("qudag-admin", None, Some("urn:qudag-mcp:opaque")).await.unwrap();
    assert_eq!(call(&app, &admin, &probe(Permission::Admin)).await.status, 200);
    issuer.stats(true).await.unwrap();
    for _ in 0..3 {
        let a = call(&app, "opaque-but-unknown-0123456789", &probe(Permission::QuantumRead)).await;
        assert_eq!((a.status, reason(&a)), (401, "inactive_token"), "{}", a.body);
    }
    assert_eq!(issuer.stats(false).await.unwrap()["introspection"], 1, "an inactive answer is remembered briefly");

    // An active answer is believed for QUDAG_OAUTH2_INTROSPECTION_CACHE_SECS, not until the
    // token's exp (an hour away): a token revoked at the issuer stops working here.
    let introspection = format!("{}/token/introspection", issuer.url());
    let short = server(&issuer, |s| {
        s.auth.introspection_url = Some(introspection);
        s.auth.client_id = Some("qudag-mcp-server".into());
        s.auth.client_secret = Some("qudag-mcp-server-secret".into());
        s.auth.introspection_cache_secs = 1;
    })
    .await;
    issuer.stats(true).await.unwrap();
    assert_eq!(call(&short, &opaque, &probe(Permission::QuantumRead)).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(call(&short, &opaque, &probe(Permission::QuantumRead)).await.status, 200);
    assert_eq!(issuer.stats(false).await.unwrap()["introspection"], 2, "asked again once the cache time passed");
}

#[tokio::test]
async fn the_negative_corpus_is_refused_with_reasons_and_audited() {
    let issuer = issuer().await;
    let app = server(&issuer, |_| {}).await;
    let t = now();
    let good = issuer.token("qudag-developer", None, None).await.unwrap();
    let jwks = issuer.jwks().await.unwrap();
    let rsa_public = jwks["keys"].as_array().unwrap().iter().find(|k| k["kty"] == "RSA").unwrap().to_string();
    let parts: Vec<&str> = good.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["roles"] = json!(["admin"]);
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(payload.to_string()), parts[2]);

    let corpus: Vec<(&str, String, &str)> = vec![
        ("alg none", issuer.sign(json!({"alg": "none"})).await.unwrap(), "alg_none"),
        (
            "HS256 signed with the issuer's public key",
            issuer.sign(json!({"alg": "HS256", "secret": rsa_public})).await.unwrap(),
            "alg_not_allowed",
        ),
        (
            "wrong issuer",
            issuer.sign(json!({"payload": {"iss": "http://evil.invalid"}})).await.unwrap(),
            "wrong_issuer",
        ),
        (
            "wrong audience",
            issuer.token("qudag-developer", None, Some("https://other.example/api")).await.unwrap(),
            "wrong_audience",
        ),
        ("expired", issuer.sign(json!({"payload": {"iat": t - 600, "exp": t - 120}})).await.unwrap(), "expired"),
        ("nbf in the future", issuer.sign(json!({"payload": {"nbf": t + 600}})).await.unwrap(), "not_yet_valid"),
        ("no expiry", issuer.sign(json!({"payload": {"exp": null}})).await.unwrap(), "missing_expiry"),
        ("unknown kid", issuer.sign(json!({"header": {"kid": "no-such-kid"}})).await.unwrap(), "unknown_kid"),
        ("foreign key", issuer.sign(json!({"key": "foreign"})).await.unwrap(), "bad_signature"),
        (
            "jku pointing elsewhere",
            issuer.sign(json!({"key": "foreign", "header": {"jku": "http://evil.invalid/jwks"}})).await.unwrap(),
            "bad_signature",
        ),
        ("tampered payload", tampered, "bad_signature"),
        // Cut before the signature: always malformed (cutting inside the signature leaves
        // valid base64 in one case out of four, which is then a bad signature).
        ("truncated", good[..good.rfind('.').unwrap()].to_owned(), "malformed"),
        ("oversized", format!("{}.{}.{}", parts[0], "A".repeat(9_000), parts[2]), "oversized"),
        ("garbage", "not-a-token-at-all".to_owned(), "malformed"),
        (
            "a DPoP proof as an access token",
            issuer.sign(json!({"header": {"typ": "dpop+jwt"}})).await.unwrap(),
            "wrong_token_type",
        ),
        (
            "an ID token (typ JWT)",
            issuer.sign(json!({"header": {"typ": "JWT"}, "payload": {"nonce": "n-0S6_WzA2Mj"}})).await.unwrap(),
            "wrong_token_type",
        ),
        (
            "an ID token without typ",
            issuer.sign(json!({"header": {"typ": null}, "payload": {"nonce": "n-0S6_WzA2Mj"}})).await.unwrap(),
            "id_token",
        ),
    ];
    let tool = probe(Permission::SystemRead);
    for (name, token, expected) in &corpus {
        let a = call(&app, token, &tool).await;
        assert_eq!(a.status, 401, "{name}: {}", a.body);
        assert_eq!(reason(&a), *expected, "{name}: {}", a.body);
        let challenge = a.challenge.unwrap_or_default();
        assert!(challenge.contains("error=\"invalid_token\""), "{name}: {challenge}");
        assert!(challenge.contains("resource_metadata=\""), "{name}: {challenge}");
        assert!(challenge.contains("error_description=\""), "{name}: {challenge}");
    }
    let failed = audited(&app, AuditAction::AuthFailed).await;
    for (name, _, expected) in &corpus {
        assert!(failed.iter().any(|e| e["details"]["reason"] == *expected), "{name}: no auth.failed with {expected}");
    }
    // From one address, each reason is written once per window; repeats are summarised.
    let reasons: std::collections::BTreeSet<&str> = corpus.iter().map(|(_, _, r)| *r).collect();
    assert_eq!(failed.len(), reasons.len(), "one auth.failed per reason");
    assert!(audited(&app, AuditAction::ToolCalled).await.is_empty(), "no refused token reached a tool");

    // Tokens only in the header: the query string is refused with 400 invalid_request.
    let resp = app
        .client
        .post(app.url(&format!("/mcp?access_token={good}")))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("error=\"invalid_request\""));
    let resp = app
        .client
        .post(app.url("/mcp"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={good}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "a form-encoded token is refused");
    let failed = audited(&app, AuditAction::AuthFailed).await;
    for reason in ["token_in_query", "token_in_body"] {
        assert!(failed.iter().any(|e| e["details"]["reason"] == reason), "{reason} audited");
    }
}

#[tokio::test]
async fn metadata_and_the_bare_challenge_point_clients_at_the_issuer() {
    let issuer = issuer().await;
    let app = server(&issuer, |_| {}).await;
    let a = call_with(&app, None, None, &probe(Permission::SystemRead)).await;
    assert_eq!(a.status, 401);
    let expected = app.url("/.well-known/oauth-protected-resource/mcp");
    assert_eq!(
        a.challenge.unwrap(),
        format!("Bearer resource_metadata=\"{expected}\""),
        "no error code without a token"
    );

    for path in ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"] {
        let doc: Value = app.get(path).await.json().await.unwrap();
        assert_eq!(doc["resource"], app.url("/mcp"), "{path}");
        assert_eq!(doc["authorization_servers"], json!([issuer.url()]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        let scopes = doc["scopes_supported"].as_array().unwrap();
        assert!(scopes.contains(&json!("mcp:execute")) && scopes.len() == 6, "{doc}");
    }
}

#[tokio::test]
async fn a_session_belongs_to_the_subject_that_opened_it() {
    let issuer = issuer().await;
    let app = server(&issuer, |_| {}).await;
    let alice = issuer.token("qudag-developer", None, None).await.unwrap();
    let mallory = issuer.token("qudag-admin", None, None).await.unwrap();
    let init = app
        .client
        .post(app.url("/mcp"))
        .bearer_auth(&alice)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 200);
    let session = init.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let list = |token: String| {
        app.client
            .post(app.url("/mcp"))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
            .send()
    };
    assert_eq!(list(alice.clone()).await.unwrap().status(), 200);
    assert_eq!(list(mallory).await.unwrap().status(), 404, "another subject cannot use the session");
    let attempts = audited(&app, AuditAction::SessionHijackAttempt).await;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0]["actor"], format!("{}#qudag-admin", issuer.url()));
}

#[tokio::test]
async fn admins_can_ask_why_a_call_is_denied() {
    let issuer = issuer().await;
    let app = server(&issuer, |_| {}).await;
    let ask = |token: String, body: Value| {
        app.client.post(app.url("/admin/authz/explain")).bearer_auth(token).json(&body).send()
    };
    let admin = issuer.token("qudag-admin", None, None).await.unwrap();
    let resp = ask(
        admin.clone(),
        json!({"target": probe(Permission::VaultWrite), "roles": ["operator"], "scopes": ["mcp:read", "mcp:write"]}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let x: Value = resp.json().await.unwrap();
    assert_eq!(x["allowed"], false);
    assert_eq!(x["denied_by"], "role");
    assert!(x["rule"].as_str().unwrap().contains("operator"), "{x}");

    let claims = json!({"roles": ["developer"], "scope": "mcp:read"});
    let x: Value = ask(admin.clone(), json!({"target": probe(Permission::QuantumExecute), "claims": claims}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((x["allowed"].clone(), x["denied_by"].clone()), (json!(false), json!("scope")));
    assert_eq!(x["step_up_scopes"], json!(["mcp:execute", "mcp:read"]));

    let x: Value =
        ask(admin.clone(), json!({"target": "POST /admin/authz/explain", "roles": ["admin"], "scopes": ["mcp:admin"]}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(x["allowed"], true, "{x}");
    let unknown = ask(admin, json!({"target": "nope"})).await.unwrap();
    assert_eq!(unknown.status(), 404, "a target that names nothing is not found");
    assert_eq!(unknown.json::<Value>().await.unwrap()["reason"], "unknown_target");

    let developer = issuer.token("qudag-developer", None, None).await.unwrap();
    let resp = ask(developer, json!({"target": "nope"})).await.unwrap();
    assert_eq!(resp.status(), 403, "only admins may ask");
    let resp = app.client.post(app.url("/admin/authz/explain")).json(&json!({"target": "x"})).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("resource_metadata="));
}

/// DPoP proofs signed with a P-256 test key.
struct DpopKey {
    key: jsonwebtoken::EncodingKey,
    jwk: Value,
}

impl DpopKey {
    fn new() -> Self {
        let pem = include_bytes!("../../adapters/oauth/tests/data/p256.pem");
        let key = jsonwebtoken::EncodingKey::from_ec_pem(pem).unwrap();
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256).unwrap();
        let mut jwk = serde_json::to_value(jwk).unwrap();
        jwk.as_object_mut().unwrap().remove("alg");
        Self { key, jwk }
    }

    fn proof(&self, method: &str, url: &str, token: Option<&str>, iat: u64) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(serde_json::from_value(self.jwk.clone()).unwrap());
        let mut claims = json!({"htm": method, "htu": url, "iat": iat, "jti": uuid::Uuid::new_v4().to_string()});
        if let Some(t) = token {
            let digest = aws_sha256(t.as_bytes());
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(digest));
        }
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

fn aws_sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref().to_vec()
}

#[tokio::test]
async fn dpop_bound_tokens_need_a_fresh_proof_for_this_request() {
    let issuer = issuer().await;
    let app = server(&issuer, |_| {}).await;
    let key = DpopKey::new();
    let proof = key.proof("POST", &format!("{}/token", issuer.url()), None, now());
    let answer = issuer.token_response("qudag-developer", &[], Some(&proof)).await.unwrap();
    assert_eq!(answer["token_type"], "DPoP", "{answer}");
    let token = answer["access_token"].as_str().unwrap().to_owned();
    let mcp = app.url("/mcp");
    let tool = probe(Permission::QuantumExecute);
    let dpop = |p: String| call_with(&app, Some(format!("DPoP {token}")), Some(p), &tool);

    let good = key.proof("POST", &mcp, Some(&token), now());
    let a = dpop(good.clone()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = dpop(good).await;
    assert_eq!((a.status, reason(&a)), (401, "dpop_replayed"));
    assert!(a.challenge.unwrap().starts_with("DPoP "), "a DPoP challenge");

    let cases = [
        ("wrong method", key.proof("GET", &mcp, Some(&token), now()), "dpop_wrong_method"),
        ("wrong URL", key.proof("POST", "http://127.0.0.1:1/mcp", Some(&token), now()), "dpop_wrong_url"),
        ("stale", key.proof("POST", &mcp, Some(&token), now() - 3_600), "dpop_stale"),
        ("no ath", key.proof("POST", &mcp, None, now()), "dpop_wrong_ath"),
        ("another token's ath", key.proof("POST", &mcp, Some("other"), now()), "dpop_wrong_ath"),
    ];
    for (name, proof, expected) in cases {
        let a = dpop(proof).await;
        assert_eq!((a.status, reason(&a)), (401, expected), "{name}: {}", a.body);
    }
    let a = call_with(&app, Some(format!("DPoP {token}")), None, &tool).await;
    assert_eq!((a.status, reason(&a)), (401, "dpop_missing"));
    let a = call(&app, &token, &tool).await;
    assert_eq!((a.status, reason(&a)), (401, "dpop_required"), "a bound token is not a bearer token");
}
