//! The one shape of a backend outage.

use crate::BoxError;

/// A backend an operation needs cannot be reached: no answer to the caller's request, which
/// may be retried.
///
/// Every use case that reaches a backend fails with it (inside its own error), and every MCP
/// entry point hands it on unchanged — a tool as [`ToolResponse::Unavailable`], a resource as
/// [`ResourceError::Unavailable`] — so it is refused in one way everywhere: as
/// [`Refusal::Unavailable`], which is HTTP 503 with `Retry-After`, JSON-RPC error -31003, and
/// one more `qudag_backend_errors_total{component}`.
///
/// [`ToolResponse::Unavailable`]: crate::mcp::catalog::ToolResponse::Unavailable
/// [`ResourceError::Unavailable`]: crate::mcp::catalog::ResourceError::Unavailable
/// [`Refusal::Unavailable`]: crate::admission::Refusal::Unavailable
#[derive(Debug, thiserror::Error)]
#[error("{component} unavailable")]
pub struct Unavailable {
    /// Which backend (`vault_store`, `name_registry`, `simulator`, `membership`, ...): the
    /// `component` label of `qudag_backend_errors_total`.
    pub component: &'static str,
    /// What went wrong.
    #[source]
    pub source: BoxError,
}

impl Unavailable {
    /// An outage of `component`.
    pub fn new(component: &'static str, source: impl Into<BoxError>) -> Self {
        Self { component, source: source.into() }
    }
}
