//! The long-lived streams — a stateful session's GET stream and 2026-07-28
//! `subscriptions/listen` — and DELETE of a session. Both streams carry the change
//! notifications published on the event bus by any node; a session's stream ends when the
//! session is deleted on any node.

use std::time::Duration;

use futures::StreamExt;
use poem::http::StatusCode;
use poem::{Request, Response};
use qudag_application::admission::Caller;
use qudag_application::mcp::bus::{CHANGES_TOPIC, NodeMessage};
use qudag_application::ports::{EventId, StreamKey, Topic};
use rmcp::model::{
    NotificationMetaObject, PromptListChangedNotification, RequestId, ResourceListChangedNotification,
    ResourceUpdatedNotification, ResourceUpdatedNotificationParam, ServerJsonRpcMessage, ServerNotification,
    SubscriptionFilter, SubscriptionsAcknowledgedNotification, SubscriptionsAcknowledgedNotificationParams,
    ToolListChangedNotification,
};

use super::sse::messages_to_frames;
use super::{McpEndpoint, headers};
use crate::errors::{self, bus_unavailable, plain, stream_refused};

impl McpEndpoint {
    /// GET: the session's stream of change notifications, or the rest of a response stream
    /// named by `Last-Event-ID`.
    pub(super) async fn get(&self, req: &Request) -> Response {
        let headers = req.headers();
        let Some(session) = headers::text(headers, headers::SESSION_ID).map(str::to_owned) else {
            return errors::method_not_allowed("POST", "GET needs an Mcp-Session-Id (stateful sessions only)");
        };
        if !headers::accepts(headers, "text/event-stream") {
            return plain(StatusCode::NOT_ACCEPTABLE, "Accept must list text/event-stream");
        }
        let caller = match self.caller(req).await {
            Ok(c) => c,
            Err(response) => return response,
        };
        let policy = self.admission().rate_policy();
        let (session, decision) = match self.engine.open_stream(&caller, &session).await {
            Ok(s) => s,
            Err(e) => return errors::engine_error(e, None, false),
        };
        let slot = match self.stream_slot(caller.principal()) {
            Ok(slot) => slot,
            Err(refusal) => return stream_refused(refusal, None),
        };
        if let Some(last) = headers::text(headers, headers::LAST_EVENT_ID).and_then(EventId::parse)
            && last.stream != 0
        {
            let key = StreamKey { session: session.id().as_str().to_owned(), stream: last.stream };
            if self.store.read(&key, last.seq, Duration::ZERO).await.is_ok() {
                return self.sse_holding(self.tail(key, last.seq, false), Some(slot));
            }
        }
        // The standalone stream carries change notifications: list changes, and updates of
        // the resources this session subscribed to (as of opening the stream).
        let subscribed = session.resource_subscriptions().clone();
        let changes = match self.events.subscribe(&Topic::new(CHANGES_TOPIC)).await {
            Ok(s) => s,
            Err(e) => return bus_unavailable(None, &e),
        };
        let mine = session.id().as_str().to_owned();
        let notifications = changes
            .filter_map(|m| futures::future::ready(NodeMessage::parse(&m.payload)))
            .take_while(move |m| {
                let ended = matches!(m, NodeMessage::SessionClosed { session } if *session == mine);
                futures::future::ready(!ended)
            })
            .filter_map(move |m| {
                let n = change_notification(&m, |uri| uri.is_none_or(|u| subscribed.contains(u)))
                    .map(ServerJsonRpcMessage::notification);
                futures::future::ready(n)
            });
        let mut response = self.sse_holding(messages_to_frames(notifications.boxed()), Some(slot));
        errors::add_rate_headers(&mut response, policy, decision.as_ref());
        response
    }

    /// `subscriptions/listen` (2026-07-28 basic/patterns/subscriptions): acknowledge the
    /// subset of `filter` the server honours, then stream the matching change
    /// notifications, each tagged with the subscription id, until the client closes.
    pub(super) async fn listen(&self, caller: Caller, id: RequestId, filter: SubscriptionFilter) -> Response {
        let policy = self.admission().rate_policy();
        let decision = match self.engine.open_listen(&caller, &filter).await {
            Ok(d) => d,
            Err(e) => return errors::engine_error(e, Some(id), true),
        };
        let slot = match self.stream_slot(caller.principal()) {
            Ok(slot) => slot,
            Err(refusal) => return stream_refused(refusal, Some(id)),
        };
        let accepted = filter.supported_by(&self.engine.capabilities(true));
        // Subscribe before acknowledging, so no change after the ack is missed.
        let changes = match self.events.subscribe(&Topic::new(CHANGES_TOPIC)).await {
            Ok(s) => s,
            Err(e) => return bus_unavailable(Some(id), &e),
        };
        let mut meta = NotificationMetaObject::new();
        meta.set_subscription_id(id.clone());
        let ack =
            ServerNotification::SubscriptionsAcknowledgedNotification(SubscriptionsAcknowledgedNotification::new(
                SubscriptionsAcknowledgedNotificationParams::new(accepted.clone()).with_meta(meta),
            ));
        let notifications = changes.filter_map(move |m| {
            let wanted = NodeMessage::parse(&m.payload).and_then(|m| {
                let listed = match &m {
                    NodeMessage::Tools => accepted.tools_list_changed == Some(true),
                    NodeMessage::Prompts => accepted.prompts_list_changed == Some(true),
                    NodeMessage::Resources => accepted.resources_list_changed == Some(true),
                    NodeMessage::Resource { uri } => {
                        accepted.resource_subscriptions.as_ref().is_some_and(|uris| uris.iter().any(|s| s == uri))
                    }
                    _ => false,
                };
                listed.then(|| change_notification(&m, |_| true)).flatten()
            });
            let id = id.clone();
            futures::future::ready(wanted.map(|mut n| {
                use rmcp::model::GetMeta as _;
                n.get_meta_mut().set_subscription_id(id);
                ServerJsonRpcMessage::notification(n)
            }))
        });
        let stream = futures::stream::iter([ServerJsonRpcMessage::notification(ack)]).chain(notifications);
        let mut response = self.sse_holding(messages_to_frames(stream.boxed()), Some(slot));
        errors::add_rate_headers(&mut response, policy, decision.as_ref());
        response
    }

    /// DELETE: end the caller's session; its streams end on every node.
    pub(super) async fn delete(&self, req: &Request) -> Response {
        let Some(session) = headers::text(req.headers(), headers::SESSION_ID) else {
            return errors::method_not_allowed("POST", "DELETE needs an Mcp-Session-Id (stateful sessions only)");
        };
        let caller = match self.caller(req).await {
            Ok(c) => c,
            Err(response) => return response,
        };
        match self.engine.end_session(&caller, session).await {
            Ok(id) => {
                if let Err(e) = self.store.forget_session(id.as_str()).await {
                    tracing::warn!(error = %e, "Cannot drop the streams of a closed session");
                }
                Response::builder().status(StatusCode::NO_CONTENT).finish()
            }
            Err(e) => errors::engine_error(e, None, false),
        }
    }
}

/// The notification for a change published on the bus; a resource update only if
/// `wanted(uri)`.
fn change_notification(message: &NodeMessage, wanted: impl Fn(Option<&str>) -> bool) -> Option<ServerNotification> {
    Some(match message {
        NodeMessage::Tools => ServerNotification::ToolListChangedNotification(ToolListChangedNotification::default()),
        NodeMessage::Prompts => {
            ServerNotification::PromptListChangedNotification(PromptListChangedNotification::default())
        }
        NodeMessage::Resources => {
            ServerNotification::ResourceListChangedNotification(ResourceListChangedNotification::default())
        }
        NodeMessage::Resource { uri } if wanted(Some(uri)) => ServerNotification::ResourceUpdatedNotification(
            ResourceUpdatedNotification::new(ResourceUpdatedNotificationParam::new(uri.clone())),
        ),
        _ => return None,
    })
}
