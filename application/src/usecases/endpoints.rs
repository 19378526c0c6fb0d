//! The admin endpoints by name (`METHOD path`), the permission each needs, and how an admin
//! operation fails: what the admin use cases, the explainer, the audit reader and the HTTP
//! adapter share.

use qudag_domain::rbac::Permission;

use crate::admission::Refusal;

/// The explain endpoint.
pub const EXPLAIN_ENDPOINT: &str = "POST /admin/authz/explain";

/// The audit endpoint.
pub const AUDIT_ENDPOINT: &str = "GET /admin/audit";

/// The endpoint of the audit trail's latest signed checkpoints.
pub const AUDIT_HEAD_ENDPOINT: &str = "GET /admin/audit/head";

/// The admin endpoints and the permission each needs.
pub const ADMIN_ENDPOINTS: &[(&str, Permission)] = &[
    (EXPLAIN_ENDPOINT, Permission::Admin),
    (AUDIT_ENDPOINT, Permission::AuditRead),
    (AUDIT_HEAD_ENDPOINT, Permission::AuditRead),
];

/// The permission `endpoint` (`METHOD path`) needs, if it is an admin endpoint.
pub fn endpoint_permission(endpoint: &str) -> Option<Permission> {
    ADMIN_ENDPOINTS.iter().find(|(name, _)| *name == endpoint).map(|(_, p)| *p)
}

/// Why an admin operation gave no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// Admission refused it (401, 403, 429, 503).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A parameter is wrong (HTTP 400); `argument` names it.
    #[error("invalid argument {argument:?}: {message}")]
    InvalidArgument {
        /// The parameter.
        argument: String,
        /// What is wrong with it.
        message: String,
    },
    /// A parameter names something there is none of (HTTP 404): a target that is no tool,
    /// prompt or endpoint, a cursor this server did not hand out; `argument` names it.
    #[error("{argument:?} names nothing here: {message}")]
    NotFound {
        /// The parameter.
        argument: String,
        /// What it names.
        message: String,
    },
    /// The operation could not be carried out (HTTP 503).
    #[error("{0}")]
    Failed(String),
}

impl AdminError {
    /// A bad `argument`.
    pub fn invalid(argument: &str, message: impl Into<String>) -> Self {
        Self::InvalidArgument { argument: argument.to_owned(), message: message.into() }
    }

    /// `argument` names nothing there is.
    pub fn not_found(argument: &str, message: impl Into<String>) -> Self {
        Self::NotFound { argument: argument.to_owned(), message: message.into() }
    }
}
