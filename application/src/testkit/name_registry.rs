//! The `NameRegistry` contract.
//!
//! ```ignore
//! qudag_application::name_registry_contract!(make_registry); // async fn make_registry() -> Arc<dyn NameRegistry>
//! ```

use std::sync::Arc;
use std::time::Duration;

use qudag_domain::Timestamp;
use qudag_domain::dark::{DarkName, NameRecordBody};

use crate::ports::{NameRegistry, NameRegistryError, SignedNameRecord};
use crate::testkit::session_store::now;

/// A fresh name nobody has registered.
pub fn fresh_name() -> DarkName {
    DarkName::parse(&format!("n{}.test.dark", crate::testkit::random_hex(8))).expect("valid name")
}

/// A record for `name` owned by `owner`, registered at `now` for an hour.
pub fn sample_record(name: &DarkName, owner: &str, now: Timestamp) -> SignedNameRecord {
    SignedNameRecord {
        body: NameRecordBody {
            name: name.clone(),
            address: "quic://203.0.113.7:4001".into(),
            public_key: (0..=255u8).cycle().take(1952).collect(),
            key_algorithm: "ml-dsa-65".into(),
            owner: owner.to_owned(),
            registered_at: now,
            expires_at: now.saturating_add(Duration::from_secs(3600)),
        },
        signature_algorithm: "ml-dsa-65".into(),
        signer_key_id: "a".repeat(64),
        signature: (0..=255u8).rev().cycle().take(3309).collect(),
    }
}

/// A registered record resolves back exactly as stored.
pub async fn register_then_resolve_round_trips(registry: Arc<dyn NameRegistry>) {
    let t = now();
    let name = fresh_name();
    let record = sample_record(&name, "iss#alice", t);
    registry.register(&record, t).await.expect("register");
    assert_eq!(registry.resolve(&name, t).await.expect("resolve"), Some(record));
    assert_eq!(registry.resolve(&fresh_name(), t).await.expect("resolve"), None);
}

/// The owner may update their record; another owner may not take a live name.
pub async fn names_belong_to_their_owner(registry: Arc<dyn NameRegistry>) {
    let t = now();
    let name = fresh_name();
    registry.register(&sample_record(&name, "iss#alice", t), t).await.expect("register");
    let mut moved = sample_record(&name, "iss#alice", t);
    moved.body.address = "quic://203.0.113.9:4001".into();
    registry.register(&moved, t).await.expect("owner updates");
    assert_eq!(registry.resolve(&name, t).await.expect("resolve"), Some(moved));
    let theft = registry.register(&sample_record(&name, "iss#mallory", t), t).await;
    assert!(matches!(theft, Err(NameRegistryError::Taken { name: ref n }) if *n == name), "{theft:?}");
    assert_eq!(registry.resolve(&name, t).await.expect("resolve").expect("present").body.owner, "iss#alice");
}

/// Expired records do not resolve, and anyone may register the name again.
pub async fn expired_records_are_free(registry: Arc<dyn NameRegistry>) {
    let t = now();
    let name = fresh_name();
    registry.register(&sample_record(&name, "iss#alice", t), t).await.expect("register");
    let later = t.saturating_add(Duration::from_secs(3600));
    assert_eq!(registry.resolve(&name, later).await.expect("resolve"), None);
    registry.register(&sample_record(&name, "iss#bob", later), later).await.expect("free after expiry");
    assert_eq!(registry.resolve(&name, later).await.expect("resolve").expect("present").body.owner, "iss#bob");
}

/// Only the owner removes a record.
pub async fn only_the_owner_removes(registry: Arc<dyn NameRegistry>) {
    let t = now();
    let name = fresh_name();
    registry.register(&sample_record(&name, "iss#alice", t), t).await.expect("register");
    assert!(!registry.remove(&name, "iss#bob").await.expect("remove"));
    assert!(registry.resolve(&name, t).await.expect("resolve").is_some());
    assert!(registry.remove(&name, "iss#alice").await.expect("remove"));
    assert!(registry.resolve(&name, t).await.expect("resolve").is_none());
}

/// The count follows registrations and expiry.
pub async fn count_counts_live_records(registry: Arc<dyn NameRegistry>) {
    let t = now();
    let before = registry.count(t).await.expect("count");
    registry.register(&sample_record(&fresh_name(), "iss#alice", t), t).await.expect("register");
    let mut short = sample_record(&fresh_name(), "iss#alice", t);
    short.body.expires_at = t.saturating_add(Duration::from_secs(5));
    registry.register(&short, t).await.expect("register");
    assert_eq!(registry.count(t).await.expect("count"), before + 2);
    assert_eq!(registry.count(t.saturating_add(Duration::from_secs(5))).await.expect("count"), before + 1);
}

/// Concurrent registrations of one name by different owners: exactly one wins.
pub async fn concurrent_registrations_have_one_winner(registry: Arc<dyn NameRegistry>) {
    let t = now();
    let name = fresh_name();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (registry, name) = (registry.clone(), name.clone());
            tokio::spawn(async move { registry.register(&sample_record(&name, &format!("iss#user{i}"), t), t).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(()) => won += 1,
            Err(NameRegistryError::Taken { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won, 1);
}

/// Expands into one `#[tokio::test]` per `NameRegistry` contract check.
#[macro_export]
macro_rules! name_registry_contract {
    ($make:path) => {
        $crate::__contract_tests!($crate::testkit::name_registry, $make;
            register_then_resolve_round_trips,
            names_belong_to_their_owner,
            expired_records_are_free,
            only_the_owner_removes,
            count_counts_live_records,
            concurrent_registrations_have_one_winner,
        );
    };
}
