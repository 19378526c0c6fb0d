//! Use cases: what the server does with a request, written against ports only.

pub mod audit_checkpoint;
pub mod audit_log;
pub mod audit_queue;
pub mod authz;
pub mod health;
pub mod pipeline;
pub mod sessions;

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
