//! `EventBus`: notifications between the parts of the server, and between nodes.
//!
//! Adapters: `MemoryEventBus` (adapters/memory; one process) and `RedisEventBus`
//! (adapters/redis), which carries a notification raised on one node to streams held open
//! on another.

use std::fmt;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::BoxError;

/// A named channel, e.g. `notifications/tools/list_changed` or `session/<id>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(String);

impl Topic {
    /// A topic by name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What travels on the bus.
#[derive(Clone, Debug, PartialEq)]
pub struct BusMessage {
    /// The topic it was published on.
    pub topic: Topic,
    /// The payload (a JSON-RPC notification, a response to route, ...).
    pub payload: serde_json::Value,
}

/// Errors an event bus may return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventBusError {
    /// The backend cannot be reached.
    #[error("event bus unavailable")]
    Unavailable {
        /// What went wrong.
        #[source]
        source: BoxError,
    },
}

/// Publish/subscribe delivery.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Deliver `payload` to every current subscriber of `topic`, in publish order per
    /// publisher. Returns once the message is handed to the bus; subscribers that joined
    /// after that do not receive it.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn publish(&self, topic: &Topic, payload: serde_json::Value) -> Result<(), EventBusError>;

    /// A stream of the messages published on `topic` from now on. Dropping the stream
    /// unsubscribes.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn subscribe(&self, topic: &Topic) -> Result<BoxStream<'static, BusMessage>, EventBusError>;
}
