//! `MemoryMembership`: the nodes announced in this process (normally just this one).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use qudag_application::ports::{Membership, MembershipError, NodeInfo};
use qudag_domain::Timestamp;

/// Announcements held in memory until they expire.
#[derive(Debug, Default)]
pub struct MemoryMembership {
    nodes: Mutex<BTreeMap<String, (NodeInfo, Timestamp)>>,
}

impl MemoryMembership {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (NodeInfo, Timestamp)>> {
        self.nodes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Membership for MemoryMembership {
    async fn announce(&self, node: &NodeInfo, ttl: Duration) -> Result<(), MembershipError> {
        let expires = node.last_seen.saturating_add(ttl);
        self.lock().insert(node.id.clone(), (node.clone(), expires));
        Ok(())
    }

    async fn live(&self, now: Timestamp) -> Result<Vec<NodeInfo>, MembershipError> {
        let mut nodes = self.lock();
        nodes.retain(|_, (_, expires)| *expires > now);
        Ok(nodes.values().map(|(n, _)| n.clone()).collect())
    }

    async fn leave(&self, id: &str) -> Result<(), MembershipError> {
        self.lock().remove(id);
        Ok(())
    }
}
