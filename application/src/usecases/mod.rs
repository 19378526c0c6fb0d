//! Use cases: what the server does with a request, written against ports only.
//!
//! The QuDAG capabilities — the [`vault`], [`.dark` names](names) and quantum
//! [`simulation`] — are use cases like the others: plain structs over the ports, taking
//! domain values and the caller's principal, failing with typed errors in which a backend
//! outage is `Unavailable` (retryable) and never mistaken for the caller's fault. The MCP
//! tools only translate arguments and results.

pub mod audit_checkpoint;
pub mod audit_log;
pub mod audit_queue;
pub mod authz;
pub mod health;
pub mod keys;
pub mod names;
pub mod pipeline;
pub mod sessions;
pub mod simulation;
pub mod vault;

pub use audit_checkpoint::{CheckpointError, checkpoint};
pub use audit_log::{AUDIT_ENDPOINT, AuditReader, AuditRequest};
pub use audit_queue::{QueueFullPolicy, QueuedAuditSink};
pub use authz::{ADMIN_ENDPOINTS, AuthzExplainer, EXPLAIN_ENDPOINT, ExplainInput, Explanation, TargetKind};
pub use health::{Component, ComponentReport, HealthReport, HealthService};
pub use pipeline::{
    AuthMode, Dispatcher, LimiterFailurePolicy, Operation, OperationError, Pipeline, PipelineError, RateLimitSettings,
    RequestContext,
};
pub use sessions::{SessionError, SessionService};
