//! The test Redis: the server `QUDAG_TEST_REDIS_URL` names, shared by every test; each test
//! isolates itself under a key prefix of its own ([`key_prefix`]).

/// The variable naming the test Redis.
pub const URL_VAR: &str = "QUDAG_TEST_REDIS_URL";

/// The test Redis's URL; panics, saying how to set it, when `QUDAG_TEST_REDIS_URL` is not set.
pub fn url() -> String {
    std::env::var(URL_VAR)
        .unwrap_or_else(|_| panic!("set {URL_VAR} (e.g. redis://127.0.0.1:6379) to run the Redis-backed tests; tests/run.sh starts Redis and sets it"))
}

/// A key prefix no other test uses (`qudag-test:<uuid>:`), so tests sharing the server never
/// see each other's keys.
pub fn key_prefix() -> String {
    format!("qudag-test:{}:", uuid::Uuid::new_v4())
}
