//! [`RedisRateLimiter`]: one GCRA limit shared by every node, decided by a Lua script in
//! one atomic round trip on Redis's own clock.

use async_trait::async_trait;
use qudag_application::ports::{RateLimitKey, RateLimiter, RateLimiterError};
use qudag_domain::quota::{Cost, Decision, QuotaPolicy};

use crate::pool::{RedisError, RedisPool};

/// The GCRA decision as one atomic script: read the key's theoretical arrival time, decide,
/// write it back with a TTL — one round trip, and Redis's own clock (`TIME`), so nodes
/// whose clocks disagree still share one limit.
///
/// The arithmetic is the domain's `QuotaPolicy::decide`, line for line (microseconds;
/// Lua numbers are doubles, exact for integers below 2^53, i.e. until the year 2255);
/// the shared contract suite runs the same checks against both.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then
  tat = math.max(tonumber(stored), now)
end
local function remaining(at)
  local free = tau - math.max(at - now, 0)
  if free < 0 then free = 0 end
  return math.floor(free / math.max(interval, 1))
end
if cost > burst then
  return {0, remaining(tat), tat - now, -1}
end
local new_tat = tat + cost * interval
local allow_at = new_tat - tau
if now >= allow_at then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
  return {1, remaining(new_tat), new_tat - now, -1}
end
return {0, remaining(tat), tat - now, allow_at - now}
";

/// GCRA rate limiting shared by every node through Redis.
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    pool: RedisPool,
    script: std::sync::Arc<redis::Script>,
}

impl RedisRateLimiter {
    /// A limiter keeping its state in `pool`'s Redis under `<prefix>rl:`.
    pub fn new(pool: RedisPool) -> Self {
        Self { pool, script: std::sync::Arc::new(redis::Script::new(GCRA)) }
    }

    async fn decide(&self, key: &RateLimitKey, policy: &QuotaPolicy, cost: Cost) -> Result<Decision, RedisError> {
        let redis_key = self.pool.key(&format!("rl:{key}"));
        let script = self.script.clone();
        let args = [
            policy.emission_interval_micros(),
            policy.tolerance_micros(),
            u64::from(cost.units()),
            u64::from(policy.burst()),
        ];
        let reply: Vec<i64> = self
            .pool
            .run(|mut conn| async move {
                let mut invocation = script.key(redis_key);
                for arg in args {
                    invocation.arg(arg);
                }
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        let [allowed, remaining, reset_us, retry_us] = reply[..] else {
            return Err(RedisError::Reply(format!("{reply:?}")));
        };
        let micros = |v: i64| std::time::Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(Decision {
            allowed: allowed == 1,
            limit: policy.burst(),
            remaining: u32::try_from(remaining).unwrap_or(0),
            reset_after: micros(reset_us),
            retry_after: (retry_us >= 0).then(|| micros(retry_us)),
        })
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &RateLimitKey, policy: &QuotaPolicy, cost: Cost) -> Result<Decision, RateLimiterError> {
        self.decide(key, policy, cost).await.map_err(|e| RateLimiterError::Unavailable { source: Box::new(e) })
    }
}
