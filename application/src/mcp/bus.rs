//! What MCP nodes tell each other over the event bus, typed: catalog and resource changes
//! and session ends (for every open stream, on topic [`CHANGES_TOPIC`]), and clients'
//! answers to server-to-client requests (for the node whose request waits, on topic
//! [`ANSWERS_TOPIC`]). The JSON is `{"kind": …}` with the variant's fields beside it.

use rmcp::model::{ClientResult, ErrorData, NumberOrString};
use serde::{Deserialize, Serialize};

use crate::ports::{EventBus, EventBusError, Topic};

/// The topic of changes and session ends.
pub const CHANGES_TOPIC: &str = "mcp/changes";

/// The topic of clients' answers.
pub const ANSWERS_TOPIC: &str = "mcp/answers";

/// One message between nodes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeMessage {
    /// The tool list changed.
    Tools,
    /// The prompt list changed.
    Prompts,
    /// The resource list changed.
    Resources,
    /// One resource's content changed.
    Resource {
        /// Its URI.
        uri: String,
    },
    /// A session was deleted: its GET streams end, wherever they are held.
    SessionClosed {
        /// The session id.
        session: String,
    },
    /// A client's answer to a request of ours, posted to a node other than the one waiting.
    Answer {
        /// The session the request belongs to.
        session: String,
        /// The JSON-RPC id of our request.
        id: NumberOrString,
        /// The result or the error.
        answer: Answer,
    },
}

/// A client's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The request's result.
    Result(ClientResult),
    /// The client refused it.
    Error(ErrorData),
}

impl From<Result<ClientResult, ErrorData>> for Answer {
    fn from(answer: Result<ClientResult, ErrorData>) -> Self {
        match answer {
            Ok(r) => Self::Result(r),
            Err(e) => Self::Error(e),
        }
    }
}

impl From<Answer> for Result<ClientResult, ErrorData> {
    fn from(answer: Answer) -> Self {
        match answer {
            Answer::Result(r) => Ok(r),
            Answer::Error(e) => Err(e),
        }
    }
}

impl NodeMessage {
    /// The topic this message travels on.
    pub fn topic(&self) -> &'static str {
        match self {
            Self::Answer { .. } => ANSWERS_TOPIC,
            _ => CHANGES_TOPIC,
        }
    }

    /// Publish it on `bus`.
    ///
    /// # Errors
    /// When the bus does not take it.
    pub async fn publish(&self, bus: &dyn EventBus) -> Result<(), EventBusError> {
        let payload = serde_json::to_value(self).map_err(|e| EventBusError::Unavailable { source: e.into() })?;
        bus.publish(&Topic::new(self.topic()), payload).await
    }

    /// The message a bus payload carries; `None` for one this node does not understand
    /// (published by a newer node), which is skipped.
    pub fn parse(payload: &serde_json::Value) -> Option<Self> {
        Self::deserialize(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn messages_keep_their_wire_shape() {
        let cases = [
            (NodeMessage::Tools, json!({"kind": "tools"})),
            (NodeMessage::Resource { uri: "qudag://x".into() }, json!({"kind": "resource", "uri": "qudag://x"})),
            (NodeMessage::SessionClosed { session: "s1".into() }, json!({"kind": "session_closed", "session": "s1"})),
        ];
        for (message, wire) in cases {
            assert_eq!(serde_json::to_value(&message).unwrap(), wire);
            assert_eq!(NodeMessage::parse(&wire).map(|m| serde_json::to_value(m).unwrap()), Some(wire.clone()));
            assert_eq!(message.topic(), CHANGES_TOPIC);
        }
        let answer = NodeMessage::Answer {
            session: "s1".into(),
            id: NumberOrString::Number(7),
            answer: Answer::Error(ErrorData::invalid_request("no", None)),
        };
        let wire = serde_json::to_value(&answer).unwrap();
        assert_eq!(wire["kind"], "answer");
        assert_eq!(wire["answer"]["error"]["message"], "no");
        assert_eq!(NodeMessage::parse(&wire).map(|m| serde_json::to_value(m).unwrap()), Some(wire.clone()));
        assert_eq!(answer.topic(), ANSWERS_TOPIC);
        assert!(NodeMessage::parse(&json!({"kind": "from_the_future"})).is_none());
    }
}
