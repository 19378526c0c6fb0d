//! The admin operations (`/admin/*`), each admitted, authorized by the permission the
//! [endpoint table](super::endpoints) names, run and audited like a tool call.

use std::sync::Arc;

use qudag_domain::audit::digest_json;
use qudag_domain::quota::Cost;
use serde_json::Value;

use super::audit_log::{AuditReader, AuditRequest};
use super::authz::{AuthzExplainer, ExplainInput, Explanation};
use super::endpoints::{AUDIT_ENDPOINT, AUDIT_HEAD_ENDPOINT, AdminError, EXPLAIN_ENDPOINT, endpoint_permission};
use crate::admission::{Admission, Caller};

/// The admin operations.
#[derive(Clone)]
pub struct AdminService {
    admission: Arc<Admission>,
    explainer: AuthzExplainer,
    audit: AuditReader,
}

impl std::fmt::Debug for AdminService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminService").finish_non_exhaustive()
    }
}

impl AdminService {
    /// The admin operations over these use cases.
    pub fn new(admission: Arc<Admission>, explainer: AuthzExplainer, audit: AuditReader) -> Self {
        Self { admission, explainer, audit }
    }

    /// Admission, for the inbound adapter's single call to authenticate.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// `POST /admin/authz/explain`.
    ///
    /// # Errors
    /// A refusal, or a bad target.
    pub async fn explain(&self, caller: &Caller, input: ExplainInput) -> Result<Explanation, AdminError> {
        let digest = digest_json(&serde_json::to_value(&input).unwrap_or(Value::Null));
        self.call(caller, EXPLAIN_ENDPOINT, digest, async { self.explainer.explain_input(input) }).await
    }

    /// `GET /admin/audit`: a page of the audit trail.
    ///
    /// # Errors
    /// A refusal, a bad parameter, or a trail that cannot be read.
    pub async fn read_audit(&self, caller: &Caller, request: AuditRequest) -> Result<Value, AdminError> {
        let digest = digest_json(&serde_json::to_value(&request).unwrap_or(Value::Null));
        self.call(caller, AUDIT_ENDPOINT, digest, self.audit.page(request)).await
    }

    /// `GET /admin/audit/head`: each node's latest signed checkpoint.
    ///
    /// # Errors
    /// A refusal, or a trail that cannot be read.
    pub async fn audit_heads(&self, caller: &Caller) -> Result<Value, AdminError> {
        let digest = digest_json(&Value::Null);
        self.call(caller, AUDIT_HEAD_ENDPOINT, digest, self.audit.heads()).await
    }

    /// Limit → authorize → run → audit, for the endpoint `name`.
    async fn call<T>(
        &self,
        caller: &Caller,
        name: &str,
        digest: String,
        operation: impl std::future::Future<Output = Result<T, AdminError>>,
    ) -> Result<T, AdminError> {
        self.admission.admit(caller, Cost::ONE).await?;
        let permission = endpoint_permission(name).unwrap_or(qudag_domain::rbac::Permission::Admin);
        let describe = |r: &Result<T, AdminError>| r.as_ref().err().map(ToString::to_string);
        self.admission.run(caller, name, permission, digest, operation, describe).await?
    }
}
