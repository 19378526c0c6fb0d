//! Rate-limit decisions: the in-memory limiter against the Redis one, measured in the same
//! run on this machine.
//!
//! `QUDAG_TEST_REDIS_URL=redis://127.0.0.1:6379 cargo bench -p qudag-adapter-redis --bench limiter`
//!
//! Prints, per adapter: microseconds per decision with one caller (sequential round
//! trips), and decisions per second with 32 concurrent callers on distinct keys; then the
//! memory/Redis ratios. `LIMITER_BENCH_DECISIONS` sets the decisions per measurement
//! (default 20000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use qudag_adapter_memory::MemoryRateLimiter;
use qudag_adapter_redis::{RedisConfig, RedisPool, RedisRateLimiter};
use qudag_application::ports::{RateLimitKey, RateLimiter, SystemClock};
use qudag_domain::quota::{Cost, QuotaPolicy};

const CONCURRENCY: usize = 32;

async fn sequential(limiter: &Arc<dyn RateLimiter>, policy: &QuotaPolicy, n: usize) -> Duration {
    let key = RateLimitKey::custom("bench:seq");
    let started = Instant::now();
    for _ in 0..n {
        limiter.check(&key, policy, Cost::ONE).await.expect("decision");
    }
    started.elapsed()
}

async fn concurrent(limiter: &Arc<dyn RateLimiter>, policy: &QuotaPolicy, n: usize) -> Duration {
    let per_task = n / CONCURRENCY;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|t| {
            let (limiter, policy) = (limiter.clone(), *policy);
            tokio::spawn(async move {
                let key = RateLimitKey::custom(format!("bench:c{t}"));
                for _ in 0..per_task {
                    limiter.check(&key, &policy, Cost::ONE).await.expect("decision");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    started.elapsed()
}

fn main() {
    let n: usize = std::env::var("LIMITER_BENCH_DECISIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let url = std::env::var("QUDAG_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        // Generous enough that every decision is allowed and written back (the worst case).
        let policy = QuotaPolicy::per_minute(1_000_000, 1_000_000).expect("policy");
        let memory: Arc<dyn RateLimiter> = Arc::new(MemoryRateLimiter::new(100_000, Arc::new(SystemClock::new())));
        let prefix = format!("qudag-bench:{}:", uuid::Uuid::new_v4());
        let mut config = RedisConfig::new(url).key_prefix(prefix);
        config.pool_size = CONCURRENCY as u32;
        let redis: Arc<dyn RateLimiter> = Arc::new(RedisRateLimiter::new(RedisPool::new(config).expect("Redis URL")));
        // Warm up both (connections, script cache).
        sequential(&memory, &policy, 1_000).await;
        sequential(&redis, &policy, 1_000).await;

        println!("rate-limit decisions, {n} per measurement, concurrency {CONCURRENCY} for throughput");
        let mut rows = Vec::new();
        for (name, limiter) in [("memory", &memory), ("redis", &redis)] {
            let seq = sequential(limiter, &policy, n).await;
            let conc = concurrent(limiter, &policy, n).await;
            let us = seq.as_secs_f64() * 1e6 / n as f64;
            let rate = (n / CONCURRENCY * CONCURRENCY) as f64 / conc.as_secs_f64();
            println!("{name:>7}: {us:>9.2} us/decision (1 caller)   {rate:>12.0} decisions/s (c={CONCURRENCY})");
            rows.push((us, rate));
        }
        println!(
            "  ratio: redis is {:.1}x the memory latency; memory is {:.1}x the redis throughput",
            rows[1].0 / rows[0].0,
            rows[0].1 / rows[1].1
        );
    });
}
