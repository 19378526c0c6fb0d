//! The `VaultStore` contract.
//!
//! ```ignore
//! qudag_application::vault_store_contract!(make_store); // async fn make_store() -> Arc<dyn VaultStore>
//! ```

use std::sync::Arc;
use std::time::Duration;

use qudag_domain::Timestamp;

use crate::ports::{VaultEntry, VaultListQuery, VaultStore, VaultStoreError};
use crate::testkit::session_store::now;

/// The per-owner quota the checks pass where they do not test it: more than any check stores.
pub const QUOTA: usize = 1000;

/// A unique owner, so checks never see each other's rows in a shared backend.
pub fn owner() -> String {
    format!("https://issuer.test#user-{}", crate::testkit::random_hex(16))
}

/// An entry of `owner` labelled `label`, stored at `now`.
pub fn sample_entry(owner: &str, label: &str, now: Timestamp) -> VaultEntry {
    VaultEntry {
        id: format!("vlt_{}", crate::testkit::random_hex(16)),
        owner: owner.to_owned(),
        label: label.to_owned(),
        category: Some("credential".into()),
        tags: vec!["a".into(), "b c".into()],
        algorithm: "ml-kem-768".into(),
        key_id: "f".repeat(64),
        envelope: (0..=255u8).cycle().take(1200).collect(),
        size: 42,
        created_at: now,
        expires_at: None,
    }
}

/// A stored entry reads back equal, field for field, by id and by label.
pub async fn put_then_get_round_trips(store: Arc<dyn VaultStore>) {
    let t = now();
    let alice = owner();
    let mut e = sample_entry(&alice, "db-password", t);
    e.expires_at = Some(t.saturating_add(Duration::from_secs(3600)));
    store.put(&e, t, QUOTA).await.expect("put");
    assert_eq!(store.get(&e.id, t).await.expect("get"), Some(e.clone()));
    assert_eq!(store.find_by_label(&alice, "db-password", t).await.expect("find"), Some(e.clone()));
    let mut bare = sample_entry(&alice, "bare", t);
    bare.category = None;
    bare.tags = Vec::new();
    store.put(&bare, t, QUOTA).await.expect("put");
    assert_eq!(store.get(&bare.id, t).await.expect("get"), Some(bare));
}

/// Labels are unique per owner while live; other owners may reuse them.
pub async fn labels_are_unique_per_owner(store: Arc<dyn VaultStore>) {
    let t = now();
    let (alice, bob) = (owner(), owner());
    store.put(&sample_entry(&alice, "key", t), t, QUOTA).await.expect("put");
    let again = store.put(&sample_entry(&alice, "key", t), t, QUOTA).await;
    assert!(matches!(again, Err(VaultStoreError::LabelTaken { ref label }) if label == "key"), "{again:?}");
    store.put(&sample_entry(&bob, "key", t), t, QUOTA).await.expect("another owner may use the label");
}

/// Reusing an id is refused.
pub async fn ids_are_unique(store: Arc<dyn VaultStore>) {
    let t = now();
    let e = sample_entry(&owner(), "one", t);
    store.put(&e, t, QUOTA).await.expect("put");
    let mut dup = sample_entry(&owner(), "two", t);
    dup.id = e.id.clone();
    assert!(matches!(store.put(&dup, t, QUOTA).await, Err(VaultStoreError::IdTaken)));
}

/// Lookups by label and listings never cross owners.
pub async fn owners_are_isolated(store: Arc<dyn VaultStore>) {
    let t = now();
    let (alice, bob) = (owner(), owner());
    let a = sample_entry(&alice, "secret", t);
    store.put(&a, t, QUOTA).await.expect("put");
    assert_eq!(store.find_by_label(&bob, "secret", t).await.expect("find"), None);
    assert!(store.list(&bob, &VaultListQuery::first(100), t).await.expect("list").entries.is_empty());
    assert!(!store.delete(&bob, &a.id).await.expect("delete"), "bob cannot delete alice's entry");
    assert!(store.get(&a.id, t).await.expect("get").is_some(), "alice's entry survives bob's delete");
}

/// Expired entries are not returned, and their label can be used again.
pub async fn expired_entries_are_gone(store: Arc<dyn VaultStore>) {
    let t = now();
    let alice = owner();
    let mut e = sample_entry(&alice, "short", t);
    e.expires_at = Some(t.saturating_add(Duration::from_secs(10)));
    store.put(&e, t, QUOTA).await.expect("put");
    let later = t.saturating_add(Duration::from_secs(10));
    assert!(store.get(&e.id, later).await.expect("get").is_none());
    assert!(store.find_by_label(&alice, "short", later).await.expect("find").is_none());
    assert!(store.list(&alice, &VaultListQuery::first(10), later).await.expect("list").entries.is_empty());
    store.put(&sample_entry(&alice, "short", later), later, QUOTA).await.expect("label reusable after expiry");
}

/// Listing pages through every entry once, in id order, and filters by category.
pub async fn list_pages_in_id_order(store: Arc<dyn VaultStore>) {
    let t = now();
    let alice = owner();
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut e = sample_entry(&alice, &format!("item-{i}"), t);
        if i % 2 == 0 {
            e.category = Some("key/ml-kem-768".into());
        }
        store.put(&e, t, QUOTA).await.expect("put");
        ids.push(e.id);
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(&alice, &VaultListQuery { category: None, after: after.clone(), limit: 3 }, t)
            .await
            .expect("list");
        assert!(page.entries.len() <= 3);
        seen.extend(page.entries.iter().map(|e| e.id.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let keys = store
        .list(&alice, &VaultListQuery { category: Some("key/ml-kem-768".into()), after: None, limit: 100 }, t)
        .await
        .expect("list");
    assert_eq!(keys.entries.len(), 4);
    assert!(keys.entries.iter().all(|e| e.category.as_deref() == Some("key/ml-kem-768")));
    let first = &keys.entries[0];
    assert_eq!(first.size, 42);
    assert_eq!(first.algorithm, "ml-kem-768");
}

/// Delete removes the entry for good and reports whether it existed.
pub async fn delete_is_final(store: Arc<dyn VaultStore>) {
    let t = now();
    let alice = owner();
    let e = sample_entry(&alice, "gone", t);
    store.put(&e, t, QUOTA).await.expect("put");
    assert!(store.delete(&alice, &e.id).await.expect("delete"));
    assert!(!store.delete(&alice, &e.id).await.expect("delete again"));
    assert!(store.get(&e.id, t).await.expect("get").is_none());
    store.put(&sample_entry(&alice, "gone", t), t, QUOTA).await.expect("label free after delete");
}

/// Counts go up with puts and down with deletes and expiry.
pub async fn counts_follow_contents(store: Arc<dyn VaultStore>) {
    let t = now();
    let before = store.counts(t).await.expect("counts");
    let (alice, bob) = (owner(), owner());
    let a = sample_entry(&alice, "1", t);
    store.put(&a, t, QUOTA).await.expect("put");
    store.put(&sample_entry(&alice, "2", t), t, QUOTA).await.expect("put");
    let mut b = sample_entry(&bob, "1", t);
    b.expires_at = Some(t.saturating_add(Duration::from_secs(5)));
    store.put(&b, t, QUOTA).await.expect("put");
    let after = store.counts(t).await.expect("counts");
    assert_eq!(after.entries, before.entries + 3);
    assert_eq!(after.owners, before.owners + 2);
    store.delete(&alice, &a.id).await.expect("delete");
    let later = store.counts(t.saturating_add(Duration::from_secs(5))).await.expect("counts");
    assert_eq!(later.entries, before.entries + 1);
    assert_eq!(later.owners, before.owners + 1);
}

/// Concurrent puts of one label by one owner: exactly one wins.
pub async fn concurrent_puts_of_a_label_have_one_winner(store: Arc<dyn VaultStore>) {
    let t = now();
    let alice = owner();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, alice) = (store.clone(), alice.clone());
            tokio::spawn(async move { store.put(&sample_entry(&alice, "race", t), t, QUOTA).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(()) => won += 1,
            Err(VaultStoreError::LabelTaken { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won, 1);
}

/// An owner holding the most entries one may is refused another — naming the limit — while
/// other owners are not; a deleted or expired entry makes room again.
pub async fn each_owner_is_held_to_the_quota(store: Arc<dyn VaultStore>) {
    let t = now();
    let (alice, bob) = (owner(), owner());
    let mut short = sample_entry(&alice, "short", t);
    short.expires_at = Some(t.saturating_add(Duration::from_secs(10)));
    store.put(&short, t, 3).await.expect("put");
    let first = sample_entry(&alice, "0", t);
    store.put(&first, t, 3).await.expect("put");
    store.put(&sample_entry(&alice, "1", t), t, 3).await.expect("put");
    let over = store.put(&sample_entry(&alice, "2", t), t, 3).await;
    assert!(matches!(over, Err(VaultStoreError::OwnerQuotaExceeded { limit: 3 })), "{over:?}");
    assert!(store.find_by_label(&alice, "2", t).await.expect("find").is_none(), "nothing was stored");
    store.put(&sample_entry(&bob, "0", t), t, 3).await.expect("another owner has a quota of their own");
    assert!(store.delete(&alice, &first.id).await.expect("delete"));
    store.put(&sample_entry(&alice, "2", t), t, 3).await.expect("room after a delete");
    let later = t.saturating_add(Duration::from_secs(10));
    store.put(&sample_entry(&alice, "3", later), later, 3).await.expect("room after an expiry");
    let over = store.put(&sample_entry(&alice, "4", later), later, 3).await;
    assert!(matches!(over, Err(VaultStoreError::OwnerQuotaExceeded { limit: 3 })), "{over:?}");
}

/// Concurrent puts of one owner never take it past its quota.
pub async fn concurrent_puts_stay_within_the_quota(store: Arc<dyn VaultStore>) {
    let t = now();
    let alice = owner();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (store, alice) = (store.clone(), alice.clone());
            tokio::spawn(async move { store.put(&sample_entry(&alice, &format!("race-{i}"), t), t, 5).await })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(()) => stored += 1,
            Err(VaultStoreError::OwnerQuotaExceeded { limit: 5 }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(stored, 5);
    assert_eq!(store.list(&alice, &VaultListQuery::first(100), t).await.expect("list").entries.len(), 5);
}

/// Expands into one `#[tokio::test]` per `VaultStore` contract check.
#[macro_export]
macro_rules! vault_store_contract {
    ($make:path) => {
        $crate::__contract_tests!($crate::testkit::vault_store, $make;
            put_then_get_round_trips,
            labels_are_unique_per_owner,
            ids_are_unique,
            owners_are_isolated,
            expired_entries_are_gone,
            list_pages_in_id_order,
            delete_is_final,
            counts_follow_contents,
            concurrent_puts_of_a_label_have_one_winner,
            each_owner_is_held_to_the_quota,
            concurrent_puts_stay_within_the_quota,
        );
    };
}
