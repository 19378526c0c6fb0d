//! [`RedisSessionStore`]: stateful-era MCP sessions every node can serve.
//!
//! A session is one key, `<prefix>session:<id>`, holding its JSON, with a TTL at its expiry
//! (the earlier of the idle and the absolute deadline), so Redis evicts it by itself; an
//! index, `<prefix>sessions`, scores each id with that deadline so `count` is one command.
//! Deleting a session deletes its key: every node stops seeing it at once.

use async_trait::async_trait;
use qudag_application::ports::{SessionStore, SessionStoreError};
use qudag_domain::Timestamp;
use qudag_domain::session::{Session, SessionId};

use crate::pool::{RedisError, RedisPool};

/// `KEYS[1]` the session, `KEYS[2]` the index; `ARGV[1]` JSON, `ARGV[2]` TTL (ms), `ARGV[3]`
/// the expiry (ms since the epoch), `ARGV[4]` the id, `ARGV[5]` `NX` (create) or `XX` (save).
/// Returns 1 when written, 0 when the condition failed (taken, or gone).
const WRITE: &str = r"
local ok = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], ARGV[5])
if not ok then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
";

/// `KEYS[1]` the session, `KEYS[2]` the index, `ARGV[1]` the id: deleted or not.
const DELETE: &str = r"
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
";

/// `KEYS[1]` the index, `ARGV[1]` now (ms): drop expired ids, count the rest.
const COUNT: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZCARD', KEYS[1])
";

/// Sessions in Redis, shared by every node.
#[derive(Debug, Clone)]
pub struct RedisSessionStore {
    pool: RedisPool,
    write: std::sync::Arc<redis::Script>,
    delete: std::sync::Arc<redis::Script>,
    count: std::sync::Arc<redis::Script>,
}

fn unavailable(e: RedisError) -> SessionStoreError {
    SessionStoreError::Unavailable { source: Box::new(e) }
}

/// Milliseconds since the epoch, of the wall clock.
fn wall_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl RedisSessionStore {
    /// A store under `<prefix>session:` in `pool`'s Redis.
    pub fn new(pool: RedisPool) -> Self {
        Self {
            pool,
            write: std::sync::Arc::new(redis::Script::new(WRITE)),
            delete: std::sync::Arc::new(redis::Script::new(DELETE)),
            count: std::sync::Arc::new(redis::Script::new(COUNT)),
        }
    }

    fn key(&self, id: &SessionId) -> String {
        self.pool.key(&format!("session:{}", id.as_str()))
    }

    fn index(&self) -> String {
        self.pool.key("sessions")
    }

    /// Write `session` if `condition` (`NX` or `XX`) holds; whether it did.
    async fn write(&self, session: &Session, condition: &'static str) -> Result<bool, SessionStoreError> {
        let json = serde_json::to_string(session).map_err(|e| SessionStoreError::Corrupt { reason: e.to_string() })?;
        let expires_ms = session.expires_at().as_millis();
        // The key lives until the session's deadline by the wall clock (at least 1 ms:
        // a session already past it is still stored, and `load` refuses it).
        let ttl_ms = expires_ms.saturating_sub(wall_millis()).max(1);
        let (key, index, id, script) =
            (self.key(session.id()), self.index(), session.id().as_str().to_owned(), self.write.clone());
        let written: i64 = self
            .pool
            .run(|mut conn| async move {
                script
                    .key(key)
                    .key(index)
                    .arg(json)
                    .arg(ttl_ms)
                    .arg(expires_ms)
                    .arg(id)
                    .arg(condition)
                    .invoke_async(&mut conn)
                    .await
            })
            .await
            .map_err(unavailable)?;
        Ok(written == 1)
    }
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn create(&self, session: &Session) -> Result<(), SessionStoreError> {
        if self.write(session, "NX").await? { Ok(()) } else { Err(SessionStoreError::Conflict) }
    }

    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, SessionStoreError> {
        let key = self.key(id);
        let stored: Option<String> = self
            .pool
            .run(|mut conn| async move { redis::cmd("GET").arg(key).query_async(&mut conn).await })
            .await
            .map_err(unavailable)?;
        let Some(json) = stored else { return Ok(None) };
        let session: Session = serde_json::from_str(&json)
            .map_err(|e| SessionStoreError::Corrupt { reason: format!("session {}: {e}", id.as_str()) })?;
        Ok((!session.is_expired(now)).then_some(session))
    }

    async fn save(&self, session: &Session) -> Result<(), SessionStoreError> {
        if self.write(session, "XX").await? { Ok(()) } else { Err(SessionStoreError::NotFound) }
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, SessionStoreError> {
        let (key, index, member, script) = (self.key(id), self.index(), id.as_str().to_owned(), self.delete.clone());
        let deleted: i64 = self
            .pool
            .run(|mut conn| async move { script.key(key).key(index).arg(member).invoke_async(&mut conn).await })
            .await
            .map_err(unavailable)?;
        Ok(deleted > 0)
    }

    async fn count(&self, now: Timestamp) -> Result<usize, SessionStoreError> {
        let (index, script, now_ms) = (self.index(), self.count.clone(), now.as_millis());
        let n: i64 = self
            .pool
            .run(|mut conn| async move { script.key(index).arg(now_ms).invoke_async(&mut conn).await })
            .await
            .map_err(unavailable)?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
