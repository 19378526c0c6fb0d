//! The admin endpoints by name (`METHOD path`) and the permission each needs: the table
//! the admin use cases, the explainer and the HTTP adapter all read.

use qudag_domain::rbac::Permission;

/// The explain endpoint.
pub const EXPLAIN_ENDPOINT: &str = "POST /admin/authz/explain";

/// The audit endpoint.
pub const AUDIT_ENDPOINT: &str = "GET /admin/audit";

/// The admin endpoints and the permission each needs.
pub const ADMIN_ENDPOINTS: &[(&str, Permission)] =
    &[(EXPLAIN_ENDPOINT, Permission::Admin), (AUDIT_ENDPOINT, Permission::AuditRead)];

/// The permission `endpoint` (`METHOD path`) needs, if it is an admin endpoint.
pub fn endpoint_permission(endpoint: &str) -> Option<Permission> {
    ADMIN_ENDPOINTS.iter().find(|(name, _)| *name == endpoint).map(|(_, p)| *p)
}
