//! The `Membership` contract.
//!
//! ```ignore
//! qudag_application::membership_contract!(make); // async fn make() -> Arc<dyn Membership>
//! ```

use std::sync::Arc;
use std::time::Duration;

use qudag_domain::Timestamp;

use crate::ports::{Membership, NodeInfo};
use crate::testkit::session_store::now;

/// A node called `id` last seen at `now`.
pub fn node(id: &str, now: Timestamp) -> NodeInfo {
    NodeInfo {
        id: id.to_owned(),
        address: format!("http://{id}.test:8443"),
        version: "0.1.0".into(),
        started_at: now,
        last_seen: now,
    }
}

/// Announced nodes are listed, in id order, until their announcement expires.
pub async fn announced_nodes_are_live_until_expiry(membership: Arc<dyn Membership>) {
    let t = now();
    membership.announce(&node("node-b", t), Duration::from_secs(30)).await.expect("announce");
    membership.announce(&node("node-a", t), Duration::from_secs(10)).await.expect("announce");
    let ids = |nodes: Vec<NodeInfo>| nodes.into_iter().map(|n| n.id).collect::<Vec<_>>();
    let live = membership.live(t).await.expect("live");
    assert!(live.iter().any(|n| *n == node("node-a", t)));
    assert_eq!(ids(live).into_iter().filter(|i| i.starts_with("node-")).collect::<Vec<_>>(), ["node-a", "node-b"]);
    let later = t.saturating_add(Duration::from_secs(10));
    let live = ids(membership.live(later).await.expect("live"));
    assert!(!live.contains(&"node-a".to_owned()) && live.contains(&"node-b".to_owned()), "{live:?}");
}

/// A fresh announcement extends a node's life and updates what it says.
pub async fn reannouncing_refreshes(membership: Arc<dyn Membership>) {
    let t = now();
    membership.announce(&node("node-r", t), Duration::from_secs(10)).await.expect("announce");
    let t2 = t.saturating_add(Duration::from_secs(8));
    membership.announce(&node("node-r", t2), Duration::from_secs(10)).await.expect("announce");
    let live = membership.live(t.saturating_add(Duration::from_secs(15))).await.expect("live");
    let r: Vec<_> = live.into_iter().filter(|n| n.id == "node-r").collect();
    assert_eq!(r, [node("node-r", t2)]);
}

/// A node that leaves is gone at once.
pub async fn leaving_is_immediate(membership: Arc<dyn Membership>) {
    let t = now();
    membership.announce(&node("node-l", t), Duration::from_secs(60)).await.expect("announce");
    membership.leave("node-l").await.expect("leave");
    assert!(membership.live(t).await.expect("live").iter().all(|n| n.id != "node-l"));
    membership.leave("never-announced").await.expect("leaving twice is fine");
}

/// Expands into one `#[tokio::test]` per `Membership` contract check.
#[macro_export]
macro_rules! membership_contract {
    ($make:path) => {
        $crate::__contract_tests!($crate::testkit::membership, $make;
            announced_nodes_are_live_until_expiry,
            reannouncing_refreshes,
            leaving_is_immediate,
        );
    };
}
