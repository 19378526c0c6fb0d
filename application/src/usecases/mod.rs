//! Use cases: what the server does with a request, written against ports only. Every use
//! case that serves a caller takes the [`Caller`](crate::admission::Caller) admission
//! handed out, or the principal and request context it carries.
//!
//! The QuDAG capabilities — the [`vault`], [`.dark` names](names) and quantum
//! [`simulation`] — are use cases like the others: plain structs over the ports, taking
//! domain values and the caller's principal, failing with typed errors in which a backend
//! outage is [`Unavailable`] (retryable) and never mistaken for the caller's fault. The MCP
//! tools and resources only translate arguments and results, and hand an outage on as it is.

pub mod admin;
pub mod audit_checkpoint;
pub mod audit_log;
pub mod audit_queue;
pub mod authz;
pub mod endpoints;
pub mod health;
pub mod keys;
pub mod names;
pub mod sessions;
pub mod simulation;
pub mod unavailable;
pub mod vault;

pub use admin::AdminService;
pub use audit_checkpoint::{CheckpointError, checkpoint};
pub use audit_log::{AuditReader, AuditRequest};
pub use audit_queue::{Acknowledge, QueueFullPolicy, QueuedAuditSink};
pub use authz::{AuthzExplainer, ExplainInput, Explanation, Permissions, TargetKind};
pub use endpoints::{ADMIN_ENDPOINTS, AUDIT_ENDPOINT, AUDIT_HEAD_ENDPOINT, AdminError, EXPLAIN_ENDPOINT};
pub use health::{Component, ComponentReport, HealthReport, HealthService};
pub use sessions::{SessionError, SessionService};
pub use unavailable::Unavailable;
