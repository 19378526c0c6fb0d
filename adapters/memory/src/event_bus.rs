//! `MemoryEventBus`: publish/subscribe within one process, one broadcast channel per topic,
//! bounded so a slow subscriber costs a skipped message, never unbounded memory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use futures::stream::BoxStream;
use qudag_application::ports::{BusMessage, EventBus, EventBusError, Topic};
use tokio::sync::broadcast;

/// Publish/subscribe within this process, one broadcast channel per topic.
///
/// A subscriber that falls more than `capacity` messages behind skips the oldest and a
/// warning is logged; topics without subscribers are forgotten on the next publish.
#[derive(Debug)]
pub struct MemoryEventBus {
    topics: Mutex<HashMap<Topic, broadcast::Sender<BusMessage>>>,
    capacity: usize,
}

impl MemoryEventBus {
    /// A bus buffering up to `capacity` messages per topic for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        Self { topics: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, HashMap<Topic, broadcast::Sender<BusMessage>>> {
        self.topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for MemoryEventBus {
    fn default() -> Self {
        Self::new(1_024)
    }
}

#[async_trait]
impl EventBus for MemoryEventBus {
    async fn publish(&self, topic: &Topic, payload: serde_json::Value) -> Result<(), EventBusError> {
        let mut topics = self.topics();
        if let Some(sender) = topics.get(topic)
            && sender.send(BusMessage { topic: topic.clone(), payload }).is_err()
        {
            // No receiver left: forget the topic so idle topics do not accumulate.
            topics.remove(topic);
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &Topic) -> Result<BoxStream<'static, BusMessage>, EventBusError> {
        let receiver =
            self.topics().entry(topic.clone()).or_insert_with(|| broadcast::channel(self.capacity).0).subscribe();
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(message) => return Some((message, receiver)),
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "Event bus subscriber fell behind; oldest messages skipped");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(Box::pin(stream))
    }
}
