//! DPoP proofs (RFC 9449): the proof's JOSE header, its claims and their checks against
//! the request and the access token.
//!
//! Input: either a proof as sent (one line), or a header line and a claims line (JSON),
//! which the target signs (ES256 with the key the token is bound to; a header without
//! `jwk` gets that key's), with an optional third line `METHOD URL` of the request. In the
//! claims, `"ath": "ATH"` stands for the hash of the access token.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use qudag_adapter_oauth::dpop::DpopVerifier;
use qudag_application::ports::DpopProof;
use qudag_fuzz::{EcKey, NOW, b64url, compact_jws};
use serde_json::Value;

const TOKEN: &str = "an-access-token";

fn key() -> &'static EcKey {
    static KEY: OnceLock<EcKey> = OnceLock::new();
    KEY.get_or_init(EcKey::generate)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let key = key();
    let mut lines = text.splitn(3, '\n');
    let (first, claims, request) = (lines.next().unwrap_or_default(), lines.next(), lines.next());
    let proof = match claims {
        None => first.to_owned(),
        Some(claims) => {
            let header = match serde_json::from_str::<Value>(first) {
                Ok(Value::Object(mut h)) => {
                    h.entry("jwk").or_insert_with(|| key.jwk());
                    Value::Object(h).to_string()
                }
                _ => first.to_owned(),
            };
            let ath = b64url(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, TOKEN.as_bytes()).as_ref());
            let claims = claims.replace("\"ATH\"", &format!("\"{ath}\""));
            compact_jws(&header, &claims, key, b"")
        }
    };
    let (method, url) = request.and_then(|r| r.split_once(' ')).unwrap_or(("POST", "https://mcp.example/mcp"));
    let proof = DpopProof { proof, method: method.to_owned(), url: url.to_owned() };
    let verifier = DpopVerifier::new(Duration::from_secs(300), 16, 16);
    if verifier.verify(&proof, TOKEN, &key.thumbprint(), NOW).is_ok() {
        // A proof is good once: the same proof again is a replay.
        assert!(verifier.verify(&proof, TOKEN, &key.thumbprint(), NOW).is_err(), "a replayed proof was accepted");
    }
});
