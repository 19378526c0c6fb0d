//! JWT access tokens: the JOSE header and the claims, through the OAuth verifier (header
//! checks, signature, claim rules, roles, DPoP binding).
//!
//! Input: either a token as sent (one line), or a header line and a claims line (JSON),
//! which the target signs as the header's `alg` says (ES256 with a key in the verifier's
//! key set, HS256 with its configured secret) so the claims are read.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use qudag_adapter_oauth::jwks::VerifyKey;
use qudag_adapter_oauth::{OAuthConfig, OAuthVerifier};
use qudag_application::ports::{Credential, TokenVerifier as _};
use qudag_fuzz::{EcKey, FixedClock, compact_jws};

const HMAC_SECRET: &[u8] = b"a shared secret of at least 32 bytes!!";

struct Target {
    runtime: tokio::runtime::Runtime,
    key: EcKey,
    verifier: OAuthVerifier,
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let key = EcKey::generate();
        let mut jwk = key.jwk();
        jwk["kid"] = "k1".into();
        let keys = vec![VerifyKey::from_jwk(&jwk).expect("the target's key is a verification key")];
        let mut config = OAuthConfig::new("https://issuer.example", "https://mcp.example/mcp");
        config.hmac_secret = Some(HMAC_SECRET.to_vec());
        let verifier = OAuthVerifier::with_keys(config, keys, Arc::new(FixedClock)).expect("a verifier");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        Target { runtime, key, verifier }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let t = target();
    let token = match text.split_once('\n') {
        None => text.to_owned(),
        Some((header, claims)) => compact_jws(header, claims, &t.key, HMAC_SECRET),
    };
    let _ = qudag_adapter_oauth::jwt::header(&token);
    let verified = t.runtime.block_on(t.verifier.verify(&Credential::bearer(token.clone())));
    if let Ok(principal) = verified {
        // What was accepted once is accepted again (from the cache) as the same principal.
        let again = t.runtime.block_on(t.verifier.verify(&Credential::bearer(token)));
        assert_eq!(again.ok().map(|p| p.id().to_string()), Some(principal.id().to_string()));
    }
});
