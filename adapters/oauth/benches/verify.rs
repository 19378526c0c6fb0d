//! Authentication overhead: a verified-token cache hit against a miss (a full signature
//! check and claim validation), for RS256, PS256, ES256 and EdDSA tokens, measured in the
//! same run on this machine.
//!
//! `cargo bench -p qudag-adapter-oauth --bench verify`
//!
//! Prints, per algorithm: microseconds per verification with the cache off (every call a
//! miss) and with it on (every call after the first a hit), and the ratio.
//! `VERIFY_BENCH_CALLS` sets the calls per measurement (default 20000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use qudag_adapter_oauth::jwks::VerifyKey;
use qudag_adapter_oauth::{OAuthConfig, OAuthVerifier};
use qudag_application::ports::{Credential, SystemClock, TokenVerifier};
use serde_json::json;

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "qudag-mcp-api";

fn key(alg: Algorithm) -> (EncodingKey, VerifyKey) {
    let data = |f: &str| std::fs::read(format!("{}/tests/data/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let encoding = match alg {
        Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_pem(&data("rsa.pem")).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&data("p256.pem")).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&data("ed25519.pem")).unwrap(),
        other => panic!("no test key for {other:?}"),
    };
    let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).unwrap()).unwrap();
    jwk["kid"] = json!("bench");
    (encoding, VerifyKey::from_jwk(&jwk).unwrap())
}

fn verifier(keys: Vec<VerifyKey>, cache: usize) -> OAuthVerifier {
    let mut config = OAuthConfig::new(ISSUER, AUDIENCE);
    config.cache_capacity = cache;
    OAuthVerifier::with_keys(config, keys, Arc::new(SystemClock::new())).unwrap()
}

async fn run(v: &OAuthVerifier, credential: &Credential, n: usize) -> Duration {
    v.verify(credential).await.expect("the token verifies");
    let started = Instant::now();
    for _ in 0..n {
        v.verify(credential).await.expect("the token verifies");
    }
    started.elapsed()
}

fn main() {
    let n: usize = std::env::var("VERIFY_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    println!("{:<8} {:>14} {:>14} {:>10}", "alg", "miss µs/call", "hit µs/call", "miss/hit");
    runtime.block_on(async {
        for alg in [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA] {
            let (encoding, verify) = key(alg);
            let mut header = Header::new(alg);
            header.kid = Some("bench".into());
            header.typ = Some("at+jwt".into());
            let claims = json!({
                "iss": ISSUER, "sub": "bench", "aud": AUDIENCE, "iat": now, "exp": now + 3600,
                "roles": ["developer"], "scope": "mcp:read mcp:write mcp:execute",
            });
            let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
            let credential = Credential::bearer(token);
            let miss = run(&verifier(vec![verify.clone()], 0), &credential, n).await;
            let hit = run(&verifier(vec![verify], 1_000), &credential, n).await;
            let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
            println!(
                "{:<8} {:>14.2} {:>14.3} {:>9.0}x",
                format!("{alg:?}"),
                per(miss),
                per(hit),
                miss.as_secs_f64() / hit.as_secs_f64()
            );
        }
    });
}
