//! The `EventStore` contract.
//!
//! ```ignore
//! qudag_application::event_store_contract!(make_store); // async fn make_store() -> Arc<dyn EventStore>
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ports::{EventStore, EventStoreError, StreamKey};

fn session() -> String {
    format!("contract-{}", crate::usecases::sessions::new_session_id().expect("entropy").as_str())
}

/// Events come back in order, after any position, exactly once.
pub async fn replays_in_order_after_a_position(store: Arc<dyn EventStore>) {
    let s = session();
    let stream = store.open(&s).await.expect("open");
    assert_ne!(stream, 0, "0 is the standalone stream");
    let key = StreamKey { session: s, stream };
    for n in 1..=5 {
        assert_eq!(store.append(&key, format!("m{n}")).await.expect("append"), n);
    }
    let all = store.read(&key, 0, Duration::ZERO).await.expect("read");
    assert_eq!(all.events.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    assert!(!all.closed);
    let tail = store.read(&key, 3, Duration::ZERO).await.expect("read");
    assert_eq!(tail.events, vec![(4, "m4".to_owned()), (5, "m5".to_owned())]);
}

/// Streams are separate, and each session's streams get distinct ids.
pub async fn streams_are_separate(store: Arc<dyn EventStore>) {
    let s = session();
    let a = StreamKey { session: s.clone(), stream: store.open(&s).await.expect("open") };
    let b = StreamKey { session: s.clone(), stream: store.open(&s).await.expect("open") };
    assert_ne!(a.stream, b.stream);
    store.append(&a, "a1".into()).await.expect("append");
    store.append(&b, "b1".into()).await.expect("append");
    let read = store.read(&a, 0, Duration::ZERO).await.expect("read");
    assert_eq!(read.events, vec![(1, "a1".to_owned())]);
}

/// A reader waiting on an open stream wakes for a new event; a closed stream reports so.
pub async fn readers_wait_for_events_and_see_the_close(store: Arc<dyn EventStore>) {
    let s = session();
    let key = StreamKey { session: s.clone(), stream: store.open(&s).await.expect("open") };
    let writer = {
        let (store, key) = (store.clone(), key.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            store.append(&key, "late".into()).await.expect("append");
            store.close(&key).await.expect("close");
        })
    };
    let started = Instant::now();
    let batch = store.read(&key, 0, Duration::from_secs(5)).await.expect("read");
    assert_eq!(batch.events, vec![(1, "late".to_owned())]);
    assert!(started.elapsed() < Duration::from_secs(4), "woken by the append, not the timeout");
    writer.await.expect("writer");
    let after = store.read(&key, 1, Duration::from_secs(5)).await.expect("read");
    assert!(after.events.is_empty() && after.closed);
}

/// The standalone stream 0 exists without being opened.
pub async fn the_standalone_stream_needs_no_open(store: Arc<dyn EventStore>) {
    let s = session();
    let key = StreamKey { session: s, stream: 0 };
    assert_eq!(store.append(&key, "note".into()).await.expect("append"), 1);
    assert_eq!(store.read(&key, 0, Duration::ZERO).await.expect("read").events.len(), 1);
}

/// Forgetting a session drops its streams.
pub async fn forgetting_a_session_drops_its_streams(store: Arc<dyn EventStore>) {
    let s = session();
    let key = StreamKey { session: s.clone(), stream: store.open(&s).await.expect("open") };
    store.append(&key, "x".into()).await.expect("append");
    store.forget_session(&s).await.expect("forget");
    assert!(matches!(store.read(&key, 0, Duration::ZERO).await, Err(EventStoreError::UnknownStream)));
    let unknown = StreamKey { session: session(), stream: 42 };
    assert!(matches!(store.read(&unknown, 0, Duration::ZERO).await, Err(EventStoreError::UnknownStream)));
}

/// Expand the `EventStore` contract into one `#[tokio::test]` per check.
#[macro_export]
macro_rules! event_store_contract {
    ($make:path) => {
        $crate::__contract_tests!($crate::testkit::event_store, $make;
            replays_in_order_after_a_position,
            streams_are_separate,
            readers_wait_for_events_and_see_the_close,
            the_standalone_stream_needs_no_open,
            forgetting_a_session_drops_its_streams,
        );
    };
}
