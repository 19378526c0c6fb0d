//! Use cases: what the server does with a request, written against ports only. Every use
//! case that serves a caller takes the [`Caller`](crate::admission::Caller) admission
//! handed out.

pub mod admin;
pub mod audit_checkpoint;
pub mod audit_log;
pub mod audit_queue;
pub mod authz;
pub mod endpoints;
pub mod health;
pub mod sessions;

pub use admin::AdminService;
pub use audit_checkpoint::{CheckpointError, checkpoint};
pub use audit_log::{AuditReader, AuditRequest};
pub use audit_queue::{QueueFullPolicy, QueuedAuditSink};
pub use authz::{AuthzExplainer, ExplainInput, Explanation, Permissions, TargetKind};
pub use endpoints::{ADMIN_ENDPOINTS, AUDIT_ENDPOINT, AdminError, EXPLAIN_ENDPOINT};
pub use health::{Component, ComponentReport, HealthReport, HealthService};
pub use sessions::{SessionError, SessionService};
