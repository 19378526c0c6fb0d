//! [`RedisEventBus`]: notifications (and routed responses) delivered to subscribers on every
//! node.
//!
//! Publishing is one `PUBLISH` on `<prefix>bus:<topic>`. Each process holds one pub/sub
//! connection subscribed to `<prefix>bus:*` and fans what arrives out to its local
//! subscribers (an in-process bus), so a thousand open streams cost one Redis connection, not
//! a thousand. The connection is re-established with backoff when it drops; Redis pub/sub
//! keeps nothing, so what is published while a node is cut off does not reach that node
//! (streams that must not miss events resume from the event store instead).
//!
//! A subscriber receives exactly what is published after `subscribe` returns: subscribing
//! publishes a marker on the topic and the new stream starts after it, so a message that was
//! still on its way through Redis when the subscriber joined is not delivered to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use qudag_adapter_memory::MemoryEventBus;
use qudag_application::ports::{BusMessage, EventBus, EventBusError, Topic};
use qudag_domain::backoff::Backoff;
use tokio::sync::OnceCell;

use crate::pool::{RedisError, RedisPool};

/// A bus shared by every node through Redis pub/sub.
#[derive(Clone)]
pub struct RedisEventBus {
    pool: RedisPool,
    local: Arc<MemoryEventBus>,
    listener: Arc<OnceCell<()>>,
    connected: Arc<AtomicBool>,
}

impl std::fmt::Debug for RedisEventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEventBus").field("pool", &self.pool).finish_non_exhaustive()
    }
}

/// The payload key of subscription markers (never delivered to subscribers).
const MARKER: &str = "qudag.bus.marker";

/// A marker unique to this subscription among every node's.
fn marker_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // `RandomState` is seeded randomly per process.
    let process = *PROCESS.get_or_init(|| std::collections::hash_map::RandomState::new().build_hasher().finish());
    format!("{process:016x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> EventBusError {
    EventBusError::Unavailable { source: Box::new(e) }
}

impl RedisEventBus {
    /// A bus on `pool`'s Redis, under `<prefix>bus:`.
    pub fn new(pool: RedisPool) -> Self {
        Self {
            pool,
            local: Arc::new(MemoryEventBus::default()),
            listener: Arc::new(OnceCell::new()),
            connected: Arc::new(AtomicBool::new(false)),
        }
    }

    fn channel(&self, topic: &Topic) -> String {
        self.pool.key(&format!("bus:{topic}"))
    }

    /// Subscribe to every topic of this deployment; the stream of what arrives.
    async fn connect(&self) -> Result<redis::aio::PubSubStream, redis::RedisError> {
        let client = redis::Client::open(self.pool.config().url.as_str())?;
        let mut pubsub =
            tokio::time::timeout(self.pool.config().command_timeout, client.get_async_pubsub())
                .await
                .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "timed out connecting for pub/sub")))??;
        pubsub.psubscribe(self.pool.key("bus:*")).await?;
        Ok(pubsub.into_on_message())
    }

    /// Start the listener once: the first connection must succeed (so a subscriber that
    /// returns is really subscribed); later drops are retried in the background.
    async fn ensure_listening(&self) -> Result<(), EventBusError> {
        self.listener
            .get_or_try_init(|| async {
                let first = self.connect().await.map_err(|e| unavailable(RedisError::Command(e)))?;
                self.connected.store(true, Ordering::SeqCst);
                let bus = self.clone();
                tokio::spawn(async move { bus.listen(first).await });
                Ok(())
            })
            .await
            .map(|_| ())
    }

    async fn listen(self, mut messages: redis::aio::PubSubStream) {
        let prefix = self.pool.key("bus:");
        let mut backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            while let Some(message) = messages.next().await {
                let Some(topic) = message.get_channel_name().strip_prefix(&prefix).map(Topic::new) else { continue };
                let payload = match message.get_payload::<String>().map(|p| serde_json::from_str(&p)) {
                    Ok(Ok(payload)) => payload,
                    _ => {
                        tracing::warn!(%topic, "Skipping an unreadable bus message");
                        continue;
                    }
                };
                // The local bus never fails.
                let _ = self.local.publish(&topic, payload).await;
            }
            self.connected.store(false, Ordering::SeqCst);
            tracing::warn!("The Redis pub/sub connection dropped; reconnecting");
            loop {
                tokio::time::sleep(backoff.next_delay()).await;
                match self.connect().await {
                    Ok(stream) => {
                        messages = stream;
                        self.connected.store(true, Ordering::SeqCst);
                        backoff.reset();
                        tracing::info!("The Redis pub/sub connection is back");
                        break;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "Redis pub/sub still unreachable");
                    }
                }
            }
        }
    }
}

#[async_trait]
impl EventBus for RedisEventBus {
    async fn publish(&self, topic: &Topic, payload: serde_json::Value) -> Result<(), EventBusError> {
        let (channel, text) = (self.channel(topic), payload.to_string());
        self.pool
            .run(|mut conn| async move { redis::cmd("PUBLISH").arg(channel).arg(text).query_async::<i64>(&mut conn).await })
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn subscribe(&self, topic: &Topic) -> Result<BoxStream<'static, BusMessage>, EventBusError> {
        self.ensure_listening().await?;
        if !self.connected.load(Ordering::SeqCst) {
            return Err(unavailable(RedisError::Pool("the pub/sub connection is down".into())));
        }
        let local = self.local.subscribe(topic).await?;
        let marker = serde_json::Value::String(marker_id());
        self.publish(topic, serde_json::json!({ MARKER: marker.clone() })).await?;
        let stream = local
            .skip_while(move |m| futures::future::ready(m.payload.get(MARKER) != Some(&marker)))
            .skip(1)
            .filter(|m| futures::future::ready(m.payload.get(MARKER).is_none()));
        Ok(stream.boxed())
    }
}
