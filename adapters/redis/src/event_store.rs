//! [`RedisEventStore`]: the SSE events of stateful-era streams in Redis Streams, so a client
//! that lost its connection resumes with `Last-Event-ID` on any node.
//!
//! Per session `S`, under the prefix: a hash `es:{S}` (field `next`: the last stream id
//! given out; `s:<n>`: the last sequence number of stream `n`, present once the stream
//! exists; `c:<n>`: set once stream `n` is closed) and one Redis Stream `es:{S}:<n>` per
//! stream, whose entry ids are `0-<seq>`, so a resumption reads exactly the entries after the
//! client's position. Streams are capped in length and every key carries a TTL, renewed by
//! each write. Readers waiting for new events poll (short, non-blocking reads), so no pooled
//! connection is ever held by a blocking command.

use std::time::Duration;

use async_trait::async_trait;
use qudag_application::ports::{EventBatch, EventStore, EventStoreError, StreamKey};
use qudag_domain::backoff::Backoff;

use crate::pool::{RedisError, RedisPool};

/// `KEYS[1]` the session hash; `ARGV[1]` TTL (s). A new stream id.
const OPEN: &str = r"
local n = redis.call('HINCRBY', KEYS[1], 'next', 1)
redis.call('HSET', KEYS[1], 's:' .. n, 0)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return n
";

/// `KEYS[1]` the session hash, `KEYS[2]` the stream; `ARGV[1]` stream id, `ARGV[2]` payload,
/// `ARGV[3]` max length, `ARGV[4]` TTL (s). The new event's seq, or -1 for an unknown stream.
const APPEND: &str = r"
local field = 's:' .. ARGV[1]
if ARGV[1] ~= '0' and redis.call('HEXISTS', KEYS[1], field) == 0 then return -1 end
local seq = redis.call('HINCRBY', KEYS[1], field, 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], '0-' .. seq, 'm', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return seq
";

/// `KEYS[1]` the session hash; `ARGV[1]` stream id, `ARGV[2]` TTL (s).
const CLOSE: &str = r"
redis.call('HSET', KEYS[1], 'c:' .. ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
";

/// `KEYS[1]` the session hash, `KEYS[2]` the stream; `ARGV[1]` stream id, `ARGV[2]` after,
/// `ARGV[3]` most entries. `{-1}` for an unknown stream, else `{closed, seq, payload, …}`.
const READ: &str = r"
if ARGV[1] ~= '0' and redis.call('HEXISTS', KEYS[1], 's:' .. ARGV[1]) == 0 then return {-1} end
local out = {redis.call('HEXISTS', KEYS[1], 'c:' .. ARGV[1])}
local entries = redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[2], '+', 'COUNT', ARGV[3])
for _, entry in ipairs(entries) do
  local seq = string.match(entry[1], '^0%-(%d+)$')
  table.insert(out, seq)
  table.insert(out, entry[2][2])
end
return out
";

/// `KEYS[1]` the session hash; `ARGV[1]` the prefix of its stream keys (`…es:{S}:`).
const FORGET: &str = r"
local fields = redis.call('HKEYS', KEYS[1])
for _, f in ipairs(fields) do
  local n = string.match(f, '^s:(%d+)$')
  if n then redis.call('DEL', ARGV[1] .. n) end
end
redis.call('DEL', ARGV[1] .. '0')
redis.call('DEL', KEYS[1])
return 1
";

/// Events returned by one read at most.
const READ_BATCH: usize = 1_000;

/// Resumable SSE streams in Redis, shared by every node.
#[derive(Debug, Clone)]
pub struct RedisEventStore {
    pool: RedisPool,
    max_events: usize,
    ttl: Duration,
    scripts: std::sync::Arc<[redis::Script; 5]>,
}

fn unavailable(e: RedisError) -> EventStoreError {
    EventStoreError::Unavailable { source: Box::new(e) }
}

impl RedisEventStore {
    /// A store keeping the newest `max_events` of each stream,
    /// every key expiring `ttl` after its session's last write.
    pub fn new(pool: RedisPool, max_events: usize, ttl: Duration) -> Self {
        let scripts = [OPEN, APPEND, CLOSE, READ, FORGET].map(redis::Script::new);
        Self { pool, max_events: max_events.max(1), ttl: ttl.max(Duration::from_secs(1)), scripts: scripts.into() }
    }

    fn session_key(&self, session: &str) -> String {
        self.pool.key(&format!("es:{{{session}}}"))
    }

    fn stream_key(&self, key: &StreamKey) -> String {
        format!("{}:{}", self.session_key(&key.session), key.stream)
    }

    /// Run script `index` on `keys` with `args`.
    async fn eval<T: redis::FromRedisValue + Send + 'static>(
        &self,
        index: usize,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<T, EventStoreError> {
        let scripts = self.scripts.clone();
        self.pool
            .run(|mut conn| async move {
                let mut invocation = scripts[index].prepare_invoke();
                for key in keys {
                    invocation.key(key);
                }
                for arg in args {
                    invocation.arg(arg);
                }
                invocation.invoke_async(&mut conn).await
            })
            .await
            .map_err(unavailable)
    }

    /// One non-blocking read.
    async fn read_once(&self, key: &StreamKey, after: u64) -> Result<EventBatch, EventStoreError> {
        let reply: Vec<redis::Value> = self
            .eval(
                3,
                vec![self.session_key(&key.session), self.stream_key(key)],
                vec![key.stream.to_string(), after.to_string(), READ_BATCH.to_string()],
            )
            .await?;
        let corrupt = |what: &str| unavailable(RedisError::Reply(format!("event store read: {what}")));
        let mut values = reply.into_iter();
        let closed: i64 = match values.next() {
            Some(v) => redis::from_redis_value(v).map_err(|_| corrupt("flag"))?,
            None => return Err(corrupt("empty reply")),
        };
        if closed < 0 {
            return Err(EventStoreError::UnknownStream);
        }
        let mut events = Vec::new();
        while let (Some(seq), Some(payload)) = (values.next(), values.next()) {
            let seq: String = redis::from_redis_value(seq).map_err(|_| corrupt("seq"))?;
            let seq = seq.parse().map_err(|_| corrupt("seq"))?;
            events.push((seq, redis::from_redis_value(payload).map_err(|_| corrupt("payload"))?));
        }
        Ok(EventBatch { events, closed: closed == 1 })
    }
}

#[async_trait]
impl EventStore for RedisEventStore {
    async fn open(&self, session: &str) -> Result<u64, EventStoreError> {
        self.eval(0, vec![self.session_key(session)], vec![self.ttl.as_secs().to_string()]).await
    }

    async fn append(&self, key: &StreamKey, payload: String) -> Result<u64, EventStoreError> {
        let seq: i64 = self
            .eval(
                1,
                vec![self.session_key(&key.session), self.stream_key(key)],
                vec![key.stream.to_string(), payload, self.max_events.to_string(), self.ttl.as_secs().to_string()],
            )
            .await?;
        u64::try_from(seq).map_err(|_| EventStoreError::UnknownStream)
    }

    async fn close(&self, key: &StreamKey) -> Result<(), EventStoreError> {
        self.eval::<i64>(
            2,
            vec![self.session_key(&key.session)],
            vec![key.stream.to_string(), self.ttl.as_secs().to_string()],
        )
        .await
        .map(|_| ())
    }

    async fn read(&self, key: &StreamKey, after: u64, wait: Duration) -> Result<EventBatch, EventStoreError> {
        let started = tokio::time::Instant::now();
        let mut backoff =
            Backoff::exponential(Duration::from_millis(20), Duration::from_millis(200)).give_up_after(wait);
        loop {
            let batch = self.read_once(key, after).await?;
            if !batch.events.is_empty() || batch.closed {
                return Ok(batch);
            }
            match backoff.next_delay_within(started.elapsed()) {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Ok(batch),
            }
        }
    }

    async fn forget_session(&self, session: &str) -> Result<(), EventStoreError> {
        let streams = format!("{}:", self.session_key(session));
        self.eval::<i64>(4, vec![self.session_key(session)], vec![streams]).await.map(|_| ())
    }
}
