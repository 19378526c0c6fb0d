//! The server's HTTP routes built in process, without a socket, for the fuzz targets in
//! `fuzz/`: the same adapters ([`wiring::build`]) and use cases as [`crate::App`], so
//! what a target sends reaches the real router, engine and tools. Not a stable API.

use qudag_adapter_http::HttpState;
use qudag_adapter_http::admin::AdminState;
use qudag_adapter_http::auth::{OAuthApi, PublicOrigin};
use qudag_adapter_http::mcp::{McpEndpoint, McpHttpConfig};

use crate::settings::Settings;
use crate::wiring;

/// What [`qudag_adapter_http::router`] serves for `settings` (with `fixtures` instead of
/// the product's tools when given): `/mcp`, the admin endpoints, health and metadata.
///
/// # Errors
/// As [`crate::App::build`], less binding the socket.
pub async fn http_state(settings: &Settings, fixtures: Option<crate::cli::Fixtures>) -> anyhow::Result<HttpState> {
    let adapters = wiring::build(settings).await?;
    let services = crate::app::services(settings, &adapters, fixtures, &adapters.node)?;
    let origin = PublicOrigin { configured: settings.mcp.public_url.clone(), ..PublicOrigin::default() };
    let mcp = McpEndpoint::new(
        services.engine.clone(),
        adapters.events.clone(),
        adapters.event_store.clone(),
        McpHttpConfig {
            max_body_bytes: settings.mcp.max_body_bytes,
            origin: origin.clone(),
            ..McpHttpConfig::default()
        },
    );
    let mut state = HttpState::minimal(crate::VERSION);
    state.health = services.health.clone();
    state.mcp = Some(mcp);
    state.metrics = adapters.metrics.clone();
    state.oauth =
        OAuthApi { issuer: adapters.verifier.as_ref().map(|v| v.issuer().to_owned()), origin: origin.clone() };
    state.admin = Some(AdminState { service: services.admin.clone(), origin });
    Ok(state)
}
