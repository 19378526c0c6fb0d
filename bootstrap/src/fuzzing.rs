//! The server's HTTP routes built in process, without a socket, for the fuzz targets in
//! `fuzz/`: the same adapters ([`wiring::build`]), use cases and routes as [`crate::App`]
//! (one builder serves both), so what a target sends reaches the production stack. Not a
//! stable API.

use qudag_adapter_http::HttpState;

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
    let loopback = settings.server.bind_addr()?.ip().is_loopback();
    crate::app::http_state(settings, &adapters, &services, loopback)
}
