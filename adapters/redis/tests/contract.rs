//! The shared port contracts, run against the Redis adapters on a real Redis.
//!
//! Redis comes from `QUDAG_TEST_REDIS_URL` (tests/run.sh starts one); every test writes under a
//! random key prefix, so tests never see each other's keys.

use std::sync::Arc;

use qudag_adapter_redis::{
    RedisConfig, RedisEventBus, RedisEventStore, RedisMembership, RedisPool, RedisRateLimiter, RedisSessionStore,
};
use qudag_application::ports::{EventBus, EventStore, Membership, RateLimiter, SessionStore};
use qudag_test_support::redis as test_redis;

fn pool() -> RedisPool {
    RedisPool::new(RedisConfig::new(test_redis::url()).key_prefix(test_redis::key_prefix())).expect("valid Redis URL")
}

async fn rate_limiter() -> Arc<dyn RateLimiter> {
    Arc::new(RedisRateLimiter::new(pool()))
}

mod rate_limiter {
    qudag_application::rate_limiter_contract!(super::rate_limiter);
}

async fn session_store() -> Arc<dyn SessionStore> {
    Arc::new(RedisSessionStore::new(pool()))
}

mod session_store {
    qudag_application::session_store_contract!(super::session_store);
}

async fn membership() -> Arc<dyn Membership> {
    Arc::new(RedisMembership::new(pool()))
}

mod membership {
    qudag_application::membership_contract!(super::membership);
}

async fn event_bus() -> Arc<dyn EventBus> {
    Arc::new(RedisEventBus::new(pool()))
}

mod event_bus {
    qudag_application::event_bus_contract!(super::event_bus);
}

async fn event_store() -> Arc<dyn EventStore> {
    Arc::new(RedisEventStore::new(pool(), 1_000, std::time::Duration::from_secs(600)))
}

mod event_store {
    qudag_application::event_store_contract!(super::event_store);
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable_quickly() {
    use std::time::{Duration, Instant};

    use qudag_application::ports::{HealthIndicator, HealthStatus, RateLimitKey, RateLimiterError};
    use qudag_domain::quota::{Cost, QuotaPolicy};

    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", closed.local_addr().unwrap());
    drop(closed);
    let pool = RedisPool::new(RedisConfig::new(url)).unwrap();
    let limiter = RedisRateLimiter::new(pool.clone());
    let started = Instant::now();
    let result = limiter.check(&RateLimitKey::custom("k"), &QuotaPolicy::per_minute(60, 10).unwrap(), Cost::ONE).await;
    assert!(matches!(result, Err(RateLimiterError::Unavailable { .. })), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "bounded by the command timeout");
    assert_eq!(pool.health().await.status, HealthStatus::Down);
}

#[tokio::test]
async fn credentials_never_appear_in_debug_output() {
    let config = RedisConfig::new("redis://user:s3cret@127.0.0.1:6379/0");
    let shown = format!("{config:?}");
    assert!(!shown.contains("s3cret") && shown.contains("127.0.0.1:6379"), "{shown}");
}

#[tokio::test]
async fn limiter_keys_expire_once_the_bucket_is_full_again() {
    use qudag_application::ports::RateLimitKey;
    use qudag_domain::quota::{Cost, QuotaPolicy};

    let pool = pool();
    let limiter = RedisRateLimiter::new(pool.clone());
    // One unit per second, burst 10: spending 3 leaves the key 3 s from full.
    let policy = QuotaPolicy::per_minute(60, 10).unwrap();
    let decision = limiter.check(&RateLimitKey::custom("ttl"), &policy, Cost::new(3)).await.unwrap();
    assert!(decision.allowed);
    let key = pool.key("rl:ttl");
    let ttl_ms: i64 =
        pool.run(|mut conn| async move { redis::cmd("PTTL").arg(key).query_async(&mut conn).await }).await.unwrap();
    assert!((2_000..=3_001).contains(&ttl_ms), "TTL {ttl_ms} ms should be the 3 s until the bucket is full");
}

#[tokio::test]
async fn event_streams_keep_their_newest_events_and_expire() {
    use qudag_application::ports::StreamKey;

    let pool = pool();
    let store = RedisEventStore::new(pool.clone(), 5, std::time::Duration::from_secs(30));
    let key = StreamKey { session: "bounded".into(), stream: store.open("bounded").await.unwrap() };
    for n in 1..=20 {
        assert_eq!(store.append(&key, format!("m{n}")).await.unwrap(), n);
    }
    let kept = store.read(&key, 0, std::time::Duration::ZERO).await.unwrap();
    assert_eq!(kept.events.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), vec![16, 17, 18, 19, 20]);
    let stream_key = pool.key(&format!("es:{{bounded}}:{}", key.stream));
    let ttl: i64 = pool
        .run(|mut conn| async move { redis::cmd("TTL").arg(stream_key).query_async(&mut conn).await })
        .await
        .unwrap();
    assert!((1..=30).contains(&ttl), "every key expires: TTL {ttl}");
}
