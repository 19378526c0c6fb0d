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

/// The per-owner quota the checks pass where they do not test it: more than any check stores.
pub const QUOTA: usize = 1000;

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
    registry.register(&record, t, QUOTA).await.expect("register");
    assert_eq!(registry.resolve(&name, t).await.expect("resolve"), Some(record));
    assert_eq!(registry.resolve(&fresh_name(), t).await.expect("resolve"), None);
}

/// The owner may update their record; another owner may not take a live name.
pub async fn names_belong_to_their_owner(registry: Arc<dyn NameRegistry>) {
    let t = now();
    let name = fresh_name();
    registry.register(&sample_record(&name, "iss#alice", t), t, QUOTA).await.expect("register");
    let mut moved = sample_record(&name, "iss#alice", t);
    moved.body.address = "quic://203.0.113.9:4001".into();
    registry.register(&moved, t, QUOTA).await.expect("owner updates");
    assert_eq!(registry.resolve(&name, t).await.expect("resolve"), Some(moved));
    let theft = registry.register(&sample_record(&name, "iss#mallory", t), t, QUOTA).await;
    assert!(matches!(theft, Err(NameRegistryError::Taken { name: ref n }) if *n == name), "{theft:?}");
    assert_eq!(registry.resolve(&name, t).await.expect("resolve").expect("present").body.owner, "iss#alice");
}

/// Expired records do not resolve, and anyone may register the name again.
pub async fn expired_records_are_free(registry: Arc<dyn NameRegistry>) {
    let t = now();
    let name = fresh_name();
    registry.register(&sample_record(&name, "iss#alice", t), t, QUOTA).await.expect("register");
    let later = t.saturating_add(Duration::from_secs(3600));
    assert_eq!(registry.resolve(&name, later).await.expect("resolve"), None);
    registry.register(&sample_record(&name, "iss#bob", later), later, QUOTA).await.expect("free after expiry");
    assert_eq!(registry.resolve(&name, later).await.expect("resolve").expect("present").body.owner, "iss#bob");
}

/// Only the owner removes a record.
pub async fn only_the_owner_removes(registry: Arc<dyn NameRegistry>) {
    let t = now();
    let name = fresh_name();
    registry.register(&sample_record(&name, "iss#alice", t), t, QUOTA).await.expect("register");
    assert!(!registry.remove(&name, "iss#bob").await.expect("remove"));
    assert!(registry.resolve(&name, t).await.expect("resolve").is_some());
    assert!(registry.remove(&name, "iss#alice").await.expect("remove"));
    assert!(registry.resolve(&name, t).await.expect("resolve").is_none());
}

/// The count follows registrations and expiry.
pub async fn count_counts_live_records(registry: Arc<dyn NameRegistry>) {
    let t = now();
    let before = registry.count(t).await.expect("count");
    registry.register(&sample_record(&fresh_name(), "iss#alice", t), t, QUOTA).await.expect("register");
    let mut short = sample_record(&fresh_name(), "iss#alice", t);
    short.body.expires_at = t.saturating_add(Duration::from_secs(5));
    registry.register(&short, t, QUOTA).await.expect("register");
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
            tokio::spawn(
                async move { registry.register(&sample_record(&name, &format!("iss#user{i}"), t), t, QUOTA).await },
            )
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

/// An owner holding the most names one may is refused a new one — naming the limit — but may
/// still update the names it holds; other owners are not affected; an expired or removed
/// name makes room again.
pub async fn each_owner_is_held_to_the_quota(registry: Arc<dyn NameRegistry>) {
    let t = now();
    let (alice, bob) =
        (format!("iss#alice-{}", crate::testkit::random_hex(8)), format!("iss#bob-{}", crate::testkit::random_hex(8)));
    let mut short = sample_record(&fresh_name(), &alice, t);
    short.body.expires_at = t.saturating_add(Duration::from_secs(10));
    registry.register(&short, t, 2).await.expect("register");
    let kept = fresh_name();
    registry.register(&sample_record(&kept, &alice, t), t, 2).await.expect("register");
    let over = registry.register(&sample_record(&fresh_name(), &alice, t), t, 2).await;
    assert!(matches!(over, Err(NameRegistryError::OwnerQuotaExceeded { limit: 2 })), "{over:?}");
    let mut moved = sample_record(&kept, &alice, t);
    moved.body.address = "quic://203.0.113.9:4001".into();
    registry.register(&moved, t, 2).await.expect("an owner at the quota updates its own name");
    registry.register(&sample_record(&fresh_name(), &bob, t), t, 2).await.expect("another owner's quota");
    let later = t.saturating_add(Duration::from_secs(10));
    registry.register(&sample_record(&fresh_name(), &alice, later), later, 2).await.expect("room after expiry");
    assert!(registry.remove(&kept, &alice).await.expect("remove"));
    registry.register(&sample_record(&fresh_name(), &alice, later), later, 2).await.expect("room after removal");
    let over = registry.register(&sample_record(&fresh_name(), &alice, later), later, 2).await;
    assert!(matches!(over, Err(NameRegistryError::OwnerQuotaExceeded { limit: 2 })), "{over:?}");
}

/// Concurrent registrations of new names by one owner never take it past its quota.
pub async fn concurrent_registrations_stay_within_the_quota(registry: Arc<dyn NameRegistry>) {
    let t = now();
    let alice = format!("iss#alice-{}", crate::testkit::random_hex(8));
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (registry, alice) = (registry.clone(), alice.clone());
            tokio::spawn(async move { registry.register(&sample_record(&fresh_name(), &alice, t), t, 4).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(()) => won += 1,
            Err(NameRegistryError::OwnerQuotaExceeded { limit: 4 }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won, 4);
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
            each_owner_is_held_to_the_quota,
            concurrent_registrations_stay_within_the_quota,
        );
    };
}
