//! [`RedisSessionStore`]: stateful-era MCP sessions every node can serve.
//!
//! A session is one key, `<prefix>session:<id>`, holding its JSON, with a TTL at its expiry
//! (the earlier of the idle and the absolute deadline), so Redis evicts it by itself; an
//! index, `<prefix>sessions`, scores each id with that deadline so `count` is one command.
//! Each holder's live sessions are a second index, `<prefix>holder:<digest of the holder>`,
//! scored the same way, which bounds them per holder at create (and which expires with the
//! holder's last session). Deleting a session deletes its key: every node stops seeing it
//! at once.

use std::sync::Arc;

use async_trait::async_trait;
use qudag_application::ports::{SessionStore, SessionStoreError};
use qudag_domain::Timestamp;
use qudag_domain::session::{Session, SessionId};

use crate::pool::{RedisError, RedisPool};

/// `KEYS[1]` the session, `KEYS[2]` the index, `KEYS[3]` the holder's index; `ARGV[1]`
/// JSON, `ARGV[2]` TTL (ms), `ARGV[3]` the expiry (ms since the epoch), `ARGV[4]` the id,
/// `ARGV[5]` now (ms), `ARGV[6]` the most live sessions per holder. Returns 1 when
/// created, 0 when the id is taken, -1 when the holder is at its limit.
const CREATE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[5])
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then return -1 end
local ok = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX')
if not ok then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
return 1
";

/// `KEYS[1]` the session, `KEYS[2]` the index, `KEYS[3]` the holder's index; `ARGV[1]` JSON,
/// `ARGV[2]` TTL (ms), `ARGV[3]` the expiry (ms since the epoch), `ARGV[4]` the id. Replaces
/// a stored session: 1 when written, 0 when it is gone.
const SAVE: &str = r"
local ok = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'XX')
if not ok then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
return 1
";

/// `KEYS[1]` the session, `KEYS[2]` the index, `KEYS[3]` the holder's index, `ARGV[1]` the
/// id: deleted or not.
const DELETE: &str = r"
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
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
    create: Arc<redis::Script>,
    save: Arc<redis::Script>,
    delete: Arc<redis::Script>,
    count: Arc<redis::Script>,
}

fn unavailable(e: RedisError) -> SessionStoreError {
    SessionStoreError::Unavailable { source: Box::new(e) }
}

/// Milliseconds since the epoch, of the wall clock.
fn wall_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A session's JSON, TTL (ms) and expiry (ms since the epoch).
fn stored_form(session: &Session) -> Result<(String, u64, u64), SessionStoreError> {
    let json = serde_json::to_string(session).map_err(|e| SessionStoreError::Corrupt { reason: e.to_string() })?;
    let expires_ms = session.expires_at().as_millis();
    // The key lives until the session's deadline by the wall clock (at least 1 ms: a
    // session already past it is still stored, and `load` refuses it).
    let ttl_ms = expires_ms.saturating_sub(wall_millis()).max(1);
    Ok((json, ttl_ms, expires_ms))
}

impl RedisSessionStore {
    /// A store under `<prefix>session:` in `pool`'s Redis.
    pub fn new(pool: RedisPool) -> Self {
        Self {
            pool,
            create: Arc::new(redis::Script::new(CREATE)),
            save: Arc::new(redis::Script::new(SAVE)),
            delete: Arc::new(redis::Script::new(DELETE)),
            count: Arc::new(redis::Script::new(COUNT)),
        }
    }

    fn key(&self, id: &SessionId) -> String {
        self.pool.key(&format!("session:{}", id.as_str()))
    }

    fn index(&self) -> String {
        self.pool.key("sessions")
    }

    /// The index of `holder`'s sessions: named by a digest, so no caller text becomes a key.
    fn holder_index(&self, holder: &str) -> String {
        let digest = qudag_domain::audit::digest_json(&serde_json::Value::String(holder.to_owned()));
        self.pool.key(&format!("holder:{}", &digest[..32]))
    }

    async fn get(&self, id: &SessionId) -> Result<Option<Session>, SessionStoreError> {
        let key = self.key(id);
        let stored: Option<String> = self
            .pool
            .run(|mut conn| async move { redis::cmd("GET").arg(key).query_async(&mut conn).await })
            .await
            .map_err(unavailable)?;
        let Some(json) = stored else { return Ok(None) };
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| SessionStoreError::Corrupt { reason: format!("session {}: {e}", id.as_str()) })
    }
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn create(&self, session: &Session, max_per_holder: usize) -> Result<(), SessionStoreError> {
        let (json, ttl_ms, expires_ms) = stored_form(session)?;
        let keys = (self.key(session.id()), self.index(), self.holder_index(&session.holder()));
        let (id, script, now_ms) = (session.id().as_str().to_owned(), self.create.clone(), wall_millis());
        let created: i64 = self
            .pool
            .run(|mut conn| async move {
                script
                    .key(keys.0)
                    .key(keys.1)
                    .key(keys.2)
                    .arg(json)
                    .arg(ttl_ms)
                    .arg(expires_ms)
                    .arg(id)
                    .arg(now_ms)
                    .arg(max_per_holder)
                    .invoke_async(&mut conn)
                    .await
            })
            .await
            .map_err(unavailable)?;
        match created {
            1 => Ok(()),
            -1 => Err(SessionStoreError::HolderLimit { limit: max_per_holder }),
            _ => Err(SessionStoreError::Conflict),
        }
    }

    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Arc<Session>>, SessionStoreError> {
        Ok(self.get(id).await?.filter(|s| !s.is_expired(now)).map(Arc::new))
    }

    async fn save(&self, session: &Session) -> Result<(), SessionStoreError> {
        let (json, ttl_ms, expires_ms) = stored_form(session)?;
        let keys = (self.key(session.id()), self.index(), self.holder_index(&session.holder()));
        let (id, script) = (session.id().as_str().to_owned(), self.save.clone());
        let written: i64 = self
            .pool
            .run(|mut conn| async move {
                script
                    .key(keys.0)
                    .key(keys.1)
                    .key(keys.2)
                    .arg(json)
                    .arg(ttl_ms)
                    .arg(expires_ms)
                    .arg(id)
                    .invoke_async(&mut conn)
                    .await
            })
            .await
            .map_err(unavailable)?;
        if written == 1 { Ok(()) } else { Err(SessionStoreError::NotFound) }
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, SessionStoreError> {
        // The holder's index is named in the session: read it first (a session already gone
        // has no place in any holder's index worth keeping; its entry expires by its score).
        let holder = match self.get(id).await {
            Ok(Some(session)) => Some(self.holder_index(&session.holder())),
            Ok(None) | Err(SessionStoreError::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        };
        let holder = holder.unwrap_or_else(|| self.pool.key("holder:none"));
        let (key, index, member, script) = (self.key(id), self.index(), id.as_str().to_owned(), self.delete.clone());
        let deleted: i64 =
            self.pool
                .run(|mut conn| async move {
                    script.key(key).key(index).key(holder).arg(member).invoke_async(&mut conn).await
                })
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
