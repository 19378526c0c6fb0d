//! [`RedisMembership`]: the live nodes of a deployment, as every node sees them.
//!
//! Each announcement is a key, `<prefix>node:<id>`, holding the node's JSON with the
//! announcement's TTL (so a dead node's key disappears by itself), and an entry in the index
//! `<prefix>nodes` scored with its expiry, so `live` is one range query.

use std::time::Duration;

use async_trait::async_trait;
use qudag_application::ports::{Membership, MembershipError, NodeInfo};
use qudag_domain::Timestamp;

use crate::pool::{RedisError, RedisPool};

/// `KEYS[1]` the node, `KEYS[2]` the index; `ARGV[1]` JSON, `ARGV[2]` TTL (ms), `ARGV[3]`
/// expiry (ms since the epoch), `ARGV[4]` the id.
const ANNOUNCE: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
";

/// Nodes in Redis, shared by every node.
#[derive(Debug, Clone)]
pub struct RedisMembership {
    pool: RedisPool,
    announce: std::sync::Arc<redis::Script>,
}

fn unavailable(e: RedisError) -> MembershipError {
    MembershipError::Unavailable { source: Box::new(e) }
}

impl RedisMembership {
    /// Membership under `<prefix>node:` in `pool`'s Redis.
    pub fn new(pool: RedisPool) -> Self {
        Self { pool, announce: std::sync::Arc::new(redis::Script::new(ANNOUNCE)) }
    }

    fn key(&self, id: &str) -> String {
        self.pool.key(&format!("node:{id}"))
    }

    fn index(&self) -> String {
        self.pool.key("nodes")
    }
}

#[async_trait]
impl Membership for RedisMembership {
    async fn announce(&self, node: &NodeInfo, ttl: Duration) -> Result<(), MembershipError> {
        let json = serde_json::to_string(node).map_err(|e| MembershipError::Unavailable { source: Box::new(e) })?;
        let expires_ms = node.last_seen.saturating_add(ttl).as_millis();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let (key, index, id, script) = (self.key(&node.id), self.index(), node.id.clone(), self.announce.clone());
        self.pool
            .run(|mut conn| async move {
                script
                    .key(key)
                    .key(index)
                    .arg(json)
                    .arg(ttl_ms)
                    .arg(expires_ms)
                    .arg(id)
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn live(&self, now: Timestamp) -> Result<Vec<NodeInfo>, MembershipError> {
        let index = self.index();
        // Strictly after `now`: an announcement expires at its deadline.
        let min = format!("({}", now.as_millis());
        let ids: Vec<String> = self
            .pool
            .run(|mut conn| async move {
                redis::cmd("ZRANGEBYSCORE").arg(index).arg(min).arg("+inf").query_async(&mut conn).await
            })
            .await
            .map_err(unavailable)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.key(id)).collect();
        let stored: Vec<Option<String>> = self
            .pool
            .run(|mut conn| async move { redis::cmd("MGET").arg(keys).query_async(&mut conn).await })
            .await
            .map_err(unavailable)?;
        let mut nodes: Vec<NodeInfo> = stored
            .into_iter()
            .flatten()
            .filter_map(|json| match serde_json::from_str::<NodeInfo>(&json) {
                Ok(node) => Some(node),
                Err(error) => {
                    tracing::warn!(%error, "Skipping an unreadable node announcement");
                    None
                }
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    async fn leave(&self, id: &str) -> Result<(), MembershipError> {
        let (key, index, member) = (self.key(id), self.index(), id.to_owned());
        self.pool
            .run(|mut conn| async move {
                redis::pipe().atomic().del(key).ignore().zrem(index, member).ignore().query_async::<()>(&mut conn).await
            })
            .await
            .map_err(unavailable)
    }
}
