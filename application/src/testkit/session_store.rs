//! The `SessionStore` contract.
//!
//! ```ignore
//! qudag_application::session_store_contract!(make_store); // async fn make_store() -> Arc<dyn SessionStore>
//! ```

use std::sync::Arc;
use std::time::Duration;

use qudag_domain::Timestamp;
use qudag_domain::principal::PrincipalId;
use qudag_domain::session::{ClientInfo, ProtocolVersion, Session, SessionTimeouts};

use crate::ports::{SessionStore, SessionStoreError};
use crate::usecases::sessions::new_session_id;

/// The allowance per holder the checks create sessions under (beyond what any of them uses,
/// except the one about the allowance).
pub const PER_HOLDER: usize = 100;

/// A fresh session created at `now` with 60 s idle / 300 s absolute timeouts.
pub fn sample_session(subject: &str, now: Timestamp) -> Session {
    Session::new(
        new_session_id().expect("entropy"),
        PrincipalId::new("https://issuer.test", subject),
        ProtocolVersion::parse("2025-11-25").expect("version"),
        ClientInfo { name: "contract".into(), version: "1.0".into() },
        serde_json::json!({ "roots": { "listChanged": true } }),
        SessionTimeouts::new(Duration::from_secs(60), Duration::from_secs(300)).expect("timeouts"),
        now,
    )
}

/// The present, rounded to whole seconds, so every check runs against a realistic
/// timestamp (stores may key TTLs off the difference to the wall clock).
pub fn now() -> Timestamp {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Timestamp::from_secs(secs)
}

/// A created session loads back equal, field for field.
pub async fn create_then_load_round_trips(store: Arc<dyn SessionStore>) {
    let t = now();
    let s = sample_session("alice", t);
    store.create(&s, PER_HOLDER).await.expect("create");
    let loaded = store.load(s.id(), t).await.expect("load").expect("present");
    assert_eq!(*loaded, s);
}

/// Creating an id twice is a conflict and keeps the first session.
pub async fn duplicate_create_is_a_conflict(store: Arc<dyn SessionStore>) {
    let t = now();
    let s = sample_session("alice", t);
    store.create(&s, PER_HOLDER).await.expect("create");
    let mut other = s.clone();
    other.mark_initialized();
    assert!(matches!(store.create(&other, PER_HOLDER).await, Err(SessionStoreError::Conflict)));
    assert!(!store.load(s.id(), t).await.expect("load").expect("present").is_initialized());
}

/// Unknown ids load as `None`.
pub async fn unknown_id_is_none(store: Arc<dyn SessionStore>) {
    let id = new_session_id().expect("entropy");
    assert!(store.load(&id, now()).await.expect("load").is_none());
}

/// An expired session is never returned, whether idle or absolute expiry struck.
pub async fn expired_sessions_are_not_returned(store: Arc<dyn SessionStore>) {
    let t = now();
    let s = sample_session("alice", t);
    store.create(&s, PER_HOLDER).await.expect("create");
    assert!(store.load(s.id(), t.saturating_add(Duration::from_secs(59))).await.expect("load").is_some());
    assert!(store.load(s.id(), t.saturating_add(Duration::from_secs(60))).await.expect("load").is_none());
}

/// `save` persists changes; saving a deleted session is `NotFound` and does not revive it.
pub async fn save_updates_but_never_resurrects(store: Arc<dyn SessionStore>) {
    let t = now();
    let mut s = sample_session("alice", t);
    store.create(&s, PER_HOLDER).await.expect("create");
    s.mark_initialized();
    s.touch(t.saturating_add(Duration::from_secs(30)));
    store.save(&s).await.expect("save");
    let later = t.saturating_add(Duration::from_secs(80));
    let loaded = store.load(s.id(), later).await.expect("load").expect("idle deadline moved by the touch");
    assert!(loaded.is_initialized());
    assert_eq!(loaded.last_seen(), s.last_seen());

    assert!(store.delete(s.id()).await.expect("delete"));
    assert!(matches!(store.save(&s).await, Err(SessionStoreError::NotFound)));
    assert!(store.load(s.id(), t).await.expect("load").is_none());
}

/// `delete` reports whether the session existed, and afterwards it is gone.
pub async fn delete_is_final(store: Arc<dyn SessionStore>) {
    let t = now();
    let s = sample_session("alice", t);
    store.create(&s, PER_HOLDER).await.expect("create");
    assert!(store.delete(s.id()).await.expect("delete"));
    assert!(!store.delete(s.id()).await.expect("delete again"));
    assert!(store.load(s.id(), t).await.expect("load").is_none());
}

/// `count` counts live sessions only.
pub async fn count_counts_live_sessions(store: Arc<dyn SessionStore>) {
    let t = now();
    let before = store.count(t).await.expect("count");
    for name in ["a", "b", "c"] {
        store.create(&sample_session(name, t), PER_HOLDER).await.expect("create");
    }
    assert_eq!(store.count(t).await.expect("count"), before + 3);
    let after_expiry = t.saturating_add(Duration::from_secs(301));
    assert_eq!(store.count(after_expiry).await.expect("count"), 0);
}

/// Many concurrent creates of distinct sessions all land.
pub async fn concurrent_creates_all_land(store: Arc<dyn SessionStore>) {
    let t = now();
    let sessions: Vec<Session> = (0..64).map(|i| sample_session(&format!("user{i}"), t)).collect();
    let results = futures::future::join_all(sessions.iter().map(|s| store.create(s, PER_HOLDER))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for s in &sessions {
        assert_eq!(store.load(s.id(), t).await.expect("load").as_deref(), Some(s));
    }
}

/// A holder gets at most its allowance of live sessions; ending or expiring one makes room,
/// other holders are not affected, and a holder given explicitly is counted instead of the
/// owner.
pub async fn live_sessions_are_bounded_per_holder(store: Arc<dyn SessionStore>) {
    let t = now();
    let subject = format!("bounded-{}", crate::testkit::random_hex(8));
    let mine: Vec<Session> = (0..3).map(|_| sample_session(&subject, t)).collect();
    for s in &mine {
        store.create(s, 3).await.expect("within the allowance");
    }
    let refused = store.create(&sample_session(&subject, t), 3).await;
    assert!(matches!(refused, Err(SessionStoreError::HolderLimit { limit: 3 })), "{refused:?}");
    store.create(&sample_session(&format!("{subject}-other"), t), 3).await.expect("another holder is not affected");
    // Ending one makes room for one.
    assert!(store.delete(mine[0].id()).await.expect("delete"));
    store.create(&sample_session(&subject, t), 3).await.expect("room after a delete");
    assert!(matches!(store.create(&sample_session(&subject, t), 3).await, Err(SessionStoreError::HolderLimit { .. })));
    // Sessions of one owner counted per address are not the owner's.
    let by_address = sample_session(&subject, t).with_holder(format!("ip:{subject}"));
    store.create(&by_address, 3).await.expect("another holder, same owner");
    // Expired sessions do not count: sessions created long ago are past their deadline now.
    let gone = t.saturating_sub(Duration::from_secs(400));
    let old_subject = format!("{subject}-old");
    for _ in 0..2 {
        store.create(&sample_session(&old_subject, gone), 2).await.expect("create");
    }
    store.create(&sample_session(&old_subject, t), 2).await.expect("expired sessions make room");
}

/// Expand the `SessionStore` contract into one `#[tokio::test]` per check.
///
/// `$make` is an async function returning a fresh `Arc<dyn SessionStore>`.
#[macro_export]
macro_rules! session_store_contract {
    ($make:path) => {
        $crate::__contract_tests!($crate::testkit::session_store, $make;
            create_then_load_round_trips,
            duplicate_create_is_a_conflict,
            unknown_id_is_none,
            expired_sessions_are_not_returned,
            save_updates_but_never_resurrects,
            delete_is_final,
            count_counts_live_sessions,
            concurrent_creates_all_land,
            live_sessions_are_bounded_per_holder,
        );
    };
}

/// Shared expansion for the contract macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_tests {
    ($module:path, $make:path; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                use $module as contract;
                contract::$check($make().await).await;
            }
        )+
    };
}
