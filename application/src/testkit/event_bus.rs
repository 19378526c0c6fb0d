//! The `EventBus` contract.
//!
//! ```ignore
//! qudag_application::event_bus_contract!(make_bus); // async fn make_bus() -> Arc<dyn EventBus>
//! ```

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::json;

use crate::ports::{BusMessage, EventBus, Topic};

async fn next(stream: &mut BoxStream<'static, BusMessage>) -> BusMessage {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a message within 5 s")
        .expect("stream still open")
}

async fn nothing_within(stream: &mut BoxStream<'static, BusMessage>, wait: Duration) -> bool {
    tokio::time::timeout(wait, stream.next()).await.is_err()
}

/// Every subscriber of a topic receives what is published on it.
pub async fn every_subscriber_receives(bus: Arc<dyn EventBus>) {
    let topic = Topic::new("contract/fanout");
    let mut a = bus.subscribe(&topic).await.expect("subscribe");
    let mut b = bus.subscribe(&topic).await.expect("subscribe");
    bus.publish(&topic, json!({"n": 1})).await.expect("publish");
    for s in [&mut a, &mut b] {
        let m = next(s).await;
        assert_eq!(m.topic, topic);
        assert_eq!(m.payload, json!({"n": 1}));
    }
}

/// Messages from one publisher arrive in publish order.
pub async fn order_is_preserved(bus: Arc<dyn EventBus>) {
    let topic = Topic::new("contract/order");
    let mut s = bus.subscribe(&topic).await.expect("subscribe");
    for n in 0..100 {
        bus.publish(&topic, json!(n)).await.expect("publish");
    }
    for n in 0..100 {
        assert_eq!(next(&mut s).await.payload, json!(n));
    }
}

/// Topics do not leak into each other.
pub async fn topics_are_isolated(bus: Arc<dyn EventBus>) {
    let mut one = bus.subscribe(&Topic::new("contract/one")).await.expect("subscribe");
    bus.publish(&Topic::new("contract/two"), json!("two")).await.expect("publish");
    bus.publish(&Topic::new("contract/one"), json!("one")).await.expect("publish");
    assert_eq!(next(&mut one).await.payload, json!("one"));
    assert!(nothing_within(&mut one, Duration::from_millis(200)).await);
}

/// Publishing with no subscriber, or after a subscriber went away, succeeds.
pub async fn publishing_without_subscribers_succeeds(bus: Arc<dyn EventBus>) {
    let topic = Topic::new("contract/empty");
    bus.publish(&topic, json!(1)).await.expect("publish with nobody listening");
    let s = bus.subscribe(&topic).await.expect("subscribe");
    drop(s);
    bus.publish(&topic, json!(2)).await.expect("publish after unsubscribe");
    let mut late = bus.subscribe(&topic).await.expect("subscribe");
    bus.publish(&topic, json!(3)).await.expect("publish");
    assert_eq!(next(&mut late).await.payload, json!(3), "earlier messages are not replayed");
}

/// Expand the `EventBus` contract into one `#[tokio::test]` per check.
///
/// `$make` is an async function returning a fresh `Arc<dyn EventBus>` whose topics no other
/// test shares.
#[macro_export]
macro_rules! event_bus_contract {
    ($make:path) => {
        $crate::__contract_tests!($crate::testkit::event_bus, $make;
            every_subscriber_receives,
            order_is_preserved,
            topics_are_isolated,
            publishing_without_subscribers_succeeds,
        );
    };
}
