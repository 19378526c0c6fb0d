//! Dispatch of an admitted request to its handler: each method's answer, with
//! authorization before any tool, prompt or resource is touched, and the handler's context.
#![allow(deprecated)] // logging and subscriptions are deprecated in 2026-07-28, current before it

use qudag_domain::audit::digest_json;
use qudag_domain::clip::{QUOTE_BYTES, clip};
use qudag_domain::rbac::{Permission, authorize};
use qudag_domain::session::Session;
use rmcp::model::{
    CallToolResult, ClientCapabilities, ClientRequest, CompleteResult, DiscoverResult, ErrorData, GetMeta,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel, ServerResult,
};
use serde_json::Value;

use super::{EngineError, Inbound, McpEngine, PAGE_SIZE, principal};
use crate::admission::{Caller, Refusal};
use crate::limits::{Holder, Limit};
use crate::mcp::catalog::{PromptResponse, ToolResponse};
use crate::mcp::context::{CallContext, Outbox, Peer};
use crate::mcp::wire;

impl McpEngine {
    pub(super) async fn dispatch(
        &self,
        inbound: &Inbound,
        request: ClientRequest,
        outbox: Option<Outbox>,
    ) -> Result<ServerResult, EngineError> {
        let stateless = inbound.era.is_stateless();
        let method = request.method().to_owned();
        if stateless && wire::REMOVED_IN_STATELESS.contains(&method.as_str()) {
            return Err(wire::method_not_found(&method).into());
        }
        let cx = self.context(inbound, &request, outbox);
        match request {
            ClientRequest::PingRequest(_) => Ok(ServerResult::empty(())),
            ClientRequest::InitializeRequest(_) => {
                Err(ErrorData::invalid_request("the session is already initialized", None).into())
            }
            ClientRequest::DiscoverRequest(_) => {
                let versions = wire::all_versions();
                let result = DiscoverResult::new(versions, self.capabilities(true))
                    .with_server_info(self.catalog.server_info().clone())
                    .with_ttl_ms(wire::LIST_TTL_MS)
                    .with_cache_scope(rmcp::model::CacheScope::Public);
                Ok(ServerResult::DiscoverResult(result))
            }
            ClientRequest::SetLevelRequest(r) => {
                let mut session = self.session(inbound)?;
                let level = serde_json::to_value(r.params.level).ok().and_then(|v| v.as_str().map(str::to_owned));
                session.set_log_level(level.unwrap_or_else(|| "info".into()));
                self.sessions.save(&session).await?;
                Ok(ServerResult::empty(()))
            }
            ClientRequest::SubscribeRequest(r) => {
                let uri = r.params.uri;
                self.check_subscription(&inbound.caller, &uri, stateless).await?;
                let mut session = self.session(inbound)?;
                if session.resource_subscriptions().contains(&uri) {
                    return Ok(ServerResult::empty(()));
                }
                let max = self.limits.subscriptions_per_session;
                if session.resource_subscriptions().len() >= max {
                    return Err(Limit::subscriptions(max).into());
                }
                session.subscribe(uri);
                self.sessions.save(&session).await?;
                Ok(ServerResult::empty(()))
            }
            ClientRequest::UnsubscribeRequest(r) => {
                let mut session = self.session(inbound)?;
                if session.unsubscribe(&r.params.uri) {
                    self.sessions.save(&session).await?;
                }
                Ok(ServerResult::empty(()))
            }
            ClientRequest::ListToolsRequest(r) => {
                let cursor = r.params.and_then(|p| p.cursor);
                let tools: Vec<_> = self
                    .catalog
                    .tool_entries(stateless)
                    .filter(|(_, t)| may(inbound, t.permission()))
                    .map(|(d, _)| d.clone())
                    .collect();
                let (tools, next) = wire::page(tools, cursor.as_deref(), PAGE_SIZE)?;
                let mut result = ListToolsResult::with_all_items(tools);
                result.next_cursor = next;
                Ok(ServerResult::ListToolsResult(result))
            }
            ClientRequest::CallToolRequest(r) => {
                let name = r.params.name.to_string();
                let tool = self
                    .catalog
                    .tool(&name, stateless)
                    .ok_or_else(|| {
                        ErrorData::invalid_params(format!("unknown tool: {}", clip(&name, QUOTE_BYTES)), None)
                    })?
                    .clone();
                let arguments = Value::Object(r.params.arguments.unwrap_or_default());
                let digest = digest_json(&arguments);
                let Value::Object(arguments) = arguments else { unreachable!("built as an object above") };
                let describe = |outcome: &Result<ToolResponse, ErrorData>| match outcome {
                    Ok(ToolResponse::Complete(result)) if result.is_error == Some(true) => {
                        Some(wire::first_text(&result.content).unwrap_or_else(|| "tool reported an error".into()))
                    }
                    Ok(ToolResponse::Unavailable(outage)) => Some(outage.to_string()),
                    Ok(_) => None,
                    Err(e) => Some(e.message.to_string()),
                };
                // One place among the caller's running calls, held while the tool runs (not
                // while its record is made durable: that holds nothing of the caller's).
                let max = self.tool_calls.max();
                let running =
                    self.tool_calls.acquire(Holder::of(&inbound.caller)).ok_or_else(|| Limit::tool_calls(max))?;
                let (permission, irreversible) = (tool.permission(), tool.irreversible());
                let call = async move {
                    let outcome = tool.call(&cx, arguments).await;
                    drop(running);
                    outcome
                };
                let outcome = self
                    .admission
                    .run_as(&inbound.caller, &name, permission, digest, irreversible, call, describe)
                    .await?;
                match outcome? {
                    ToolResponse::Complete(result) => Ok(ServerResult::CallToolResult(result)),
                    ToolResponse::InputRequired(result) if stateless => Ok(ServerResult::InputRequiredResult(result)),
                    ToolResponse::InputRequired(_) => {
                        Ok(ServerResult::CallToolResult(CallToolResult::error(vec![rmcp::model::ContentBlock::text(
                            "this tool needs input the stateful era cannot carry",
                        )])))
                    }
                    // A backend outage is the request's retryable refusal, not the tool's answer.
                    ToolResponse::Unavailable(outage) => Err(Refusal::from(outage).into()),
                }
            }
            ClientRequest::ListPromptsRequest(r) => {
                let cursor = r.params.and_then(|p| p.cursor);
                let prompts: Vec<_> = self
                    .catalog
                    .prompt_entries(stateless)
                    .filter(|(_, p)| may(inbound, p.permission()))
                    .map(|(d, _)| d.clone())
                    .collect();
                let (prompts, next) = wire::page(prompts, cursor.as_deref(), PAGE_SIZE)?;
                let mut result = ListPromptsResult::with_all_items(prompts);
                result.next_cursor = next;
                Ok(ServerResult::ListPromptsResult(result))
            }
            ClientRequest::GetPromptRequest(r) => {
                let name = r.params.name.clone();
                let prompt = self
                    .catalog
                    .prompt(&name, stateless)
                    .ok_or_else(|| {
                        ErrorData::invalid_params(format!("unknown prompt: {}", clip(&name, QUOTE_BYTES)), None)
                    })?
                    .clone();
                self.admission.authorize(&inbound.caller, &name, prompt.permission()).await?;
                match prompt.get(&cx, r.params.arguments.unwrap_or_default()).await? {
                    PromptResponse::Complete(result) => Ok(ServerResult::GetPromptResult(result)),
                    PromptResponse::InputRequired(result) if stateless => Ok(ServerResult::InputRequiredResult(result)),
                    PromptResponse::InputRequired(_) => {
                        Err(ErrorData::invalid_params("this prompt needs input the stateful era cannot carry", None)
                            .into())
                    }
                }
            }
            ClientRequest::ListResourcesRequest(r) => {
                let cursor = r.params.and_then(|p| p.cursor);
                let resources: Vec<_> = self
                    .catalog
                    .resource_providers()
                    .iter()
                    .filter(|p| may(inbound, p.permission()))
                    .flat_map(|p| p.resources())
                    .collect();
                let (resources, next) = wire::page(resources, cursor.as_deref(), PAGE_SIZE)?;
                let mut result = ListResourcesResult::with_all_items(resources);
                result.next_cursor = next;
                Ok(ServerResult::ListResourcesResult(result))
            }
            ClientRequest::ListResourceTemplatesRequest(r) => {
                let cursor = r.params.and_then(|p| p.cursor);
                let templates: Vec<_> = self
                    .catalog
                    .resource_providers()
                    .iter()
                    .filter(|p| may(inbound, p.permission()))
                    .flat_map(|p| p.templates())
                    .collect();
                let (templates, next) = wire::page(templates, cursor.as_deref(), PAGE_SIZE)?;
                let mut result = ListResourceTemplatesResult::with_all_items(templates);
                result.next_cursor = next;
                Ok(ServerResult::ListResourceTemplatesResult(result))
            }
            ClientRequest::ReadResourceRequest(r) => {
                let uri = r.params.uri.clone();
                // Authorized for the provider that serves the URI before it is touched.
                if let Some(provider) = self.catalog.resource_providers().iter().find(|p| p.serves(&uri)) {
                    self.admission.authorize(&inbound.caller, &uri, provider.permission()).await?;
                    if let Some(result) = provider.read(&cx, &uri).await? {
                        return Ok(ServerResult::ReadResourceResult(result));
                    }
                }
                Err(wire::resource_not_found(&uri, stateless).into())
            }
            ClientRequest::CompleteRequest(r) => {
                let completer =
                    self.catalog.completer().ok_or_else(|| wire::method_not_found("completion/complete"))?.clone();
                let info = completer.complete(&cx, &r.params).await?;
                Ok(ServerResult::CompleteResult(CompleteResult::new(info)))
            }
            ClientRequest::CustomRequest(r) if wire::is_known_method(&r.method) => {
                Err(ErrorData::invalid_params(format!("invalid params for {}", r.method), None).into())
            }
            other => Err(wire::method_not_found(other.method()).into()),
        }
    }

    /// Whether `caller` may be told of changes to `uri` (`resources/subscribe`, a
    /// `subscriptions/listen` filter): a URI of bounded length naming a resource the server
    /// serves, which the caller may read (authorized, and audited when refused, as a read).
    ///
    /// # Errors
    /// -32602 for a URI over the length bound, the era's not-found error for a resource not
    /// served, `Forbidden` for one the caller may not read.
    pub async fn check_subscription(&self, caller: &Caller, uri: &str, stateless: bool) -> Result<(), EngineError> {
        let max_uri = self.limits.subscription_uri_bytes;
        if uri.len() > max_uri {
            return Err(ErrorData::invalid_params(
                format!(
                    "resource URI of {} bytes is longer than the {max_uri} bytes a subscription may name \
                     (QUDAG_MAX_SUBSCRIPTION_URI_BYTES)",
                    uri.len()
                ),
                Some(serde_json::json!({ "limit": max_uri, "setting": "QUDAG_MAX_SUBSCRIPTION_URI_BYTES" })),
            )
            .into());
        }
        let provider = self
            .catalog
            .resource_providers()
            .iter()
            .find(|p| p.serves(uri))
            .ok_or_else(|| wire::resource_not_found(uri, stateless))?;
        self.admission.authorize(caller, uri, provider.permission()).await?;
        Ok(())
    }

    fn session(&self, inbound: &Inbound) -> Result<Session, ErrorData> {
        inbound
            .session
            .as_deref()
            .cloned()
            .ok_or_else(|| ErrorData::invalid_request("this method needs a session", None))
    }

    fn context(&self, inbound: &Inbound, request: &ClientRequest, outbox: Option<Outbox>) -> CallContext {
        let meta = request.get_meta();
        let stateless = inbound.era.is_stateless();
        let (client_capabilities, log_level) = match (&inbound.session, stateless) {
            (Some(session), false) => (
                serde_json::from_value::<ClientCapabilities>(session.client_capabilities().clone()).unwrap_or_default(),
                session
                    .log_level()
                    .and_then(|l| serde_json::from_value::<LoggingLevel>(Value::String(l.to_owned())).ok()),
            ),
            _ => (meta.client_capabilities().unwrap_or_default(), meta.log_level()),
        };
        let (input_responses, request_state, name) = match request {
            ClientRequest::CallToolRequest(r) => {
                (r.params.input_responses.clone(), r.params.request_state.clone(), r.params.name.to_string())
            }
            ClientRequest::GetPromptRequest(r) => {
                (r.params.input_responses.clone(), r.params.request_state.clone(), r.params.name.clone())
            }
            ClientRequest::ReadResourceRequest(r) => {
                (r.params.input_responses.clone(), r.params.request_state.clone(), r.params.uri.clone())
            }
            _ => (None, None, String::new()),
        };
        let peer = inbound.session.as_ref().filter(|_| !stateless).map(|s| Peer {
            session: s.id().as_str().to_owned(),
            holder: Holder::of(&inbound.caller),
            pending: self.pending.clone(),
        });
        CallContext {
            request: inbound.caller.ctx().clone(),
            principal: principal(inbound).clone(),
            stateless,
            protocol_version: inbound.era.version().clone(),
            client_capabilities,
            progress_token: meta.get_progress_token(),
            log_level,
            input_responses,
            request_state,
            outbox,
            peer,
            codec: self.codec.clone(),
            events: Some(self.events.clone()),
            disconnect: inbound.disconnect.clone(),
            binding: format!("{}|{}|{}", principal(inbound).id(), request.method(), name),
        }
    }
}

/// Whether the caller's roles and scopes allow what needs `permission`: lists show a caller
/// only what it may call (the call itself is still authorized, and audited, on its own).
fn may(inbound: &Inbound, permission: Permission) -> bool {
    let principal = principal(inbound);
    authorize(principal.roles(), principal.scopes(), permission).allowed
}
