//! "Why was this call denied?": the authorization decision for a principal's roles and
//! scopes and a tool, prompt or admin endpoint, with the rule that made it — the same
//! decision admission takes, without making the call.
//!
//! Callers reach it through `AdminService::explain`,
//! so it is admitted, authorized and audited like any other call.

use std::collections::BTreeSet;
use std::sync::Arc;

use qudag_domain::principal::{Claims, RolesClaim};
use qudag_domain::rbac::{AuthzDecision, Permission, Role, authorize};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::endpoints::{ADMIN_ENDPOINTS, endpoint_permission};

/// What the explainer needs of the served catalog: the permission of a tool or prompt, and
/// every name. The MCP catalog implements it; the use case names no protocol type.
pub trait Permissions: Send + Sync {
    /// The kind and permission of the tool or prompt called `name`, in either era.
    fn permission_of(&self, name: &str) -> Option<(TargetKind, Permission)>;
    /// Every tool and prompt name, in both eras.
    fn names(&self) -> Vec<String>;
}

/// What was asked about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A tool.
    Tool,
    /// A prompt.
    Prompt,
    /// An admin endpoint.
    Endpoint,
}

/// A decision and what it was about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The target asked about.
    pub target: String,
    /// The target's kind.
    pub kind: TargetKind,
    /// The decision.
    #[serde(flatten)]
    pub decision: AuthzDecision,
    /// Role names that were not recognised (and so granted nothing).
    pub unknown_roles: Vec<String>,
}

/// What the explain endpoint is asked: roles and scopes (given directly, or as a token's
/// claims) and a target.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExplainInput {
    /// A tool or prompt name, or an admin endpoint as `METHOD path`.
    pub target: String,
    /// Role names, as a token carries them.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Scopes the token holds.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// A token's claims: roles from the configured roles claim, scopes from `scope`/`scp`.
    #[serde(default)]
    pub claims: Option<Map<String, Value>>,
}

/// Explains authorization decisions over a catalog.
#[derive(Clone)]
pub struct AuthzExplainer {
    catalog: Arc<dyn Permissions>,
    roles_claim: RolesClaim,
}

impl std::fmt::Debug for AuthzExplainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthzExplainer").finish_non_exhaustive()
    }
}

impl AuthzExplainer {
    /// An explainer for the tools and prompts of `catalog` and the admin endpoints,
    /// reading roles from claims at `roles_claim`.
    pub fn new(catalog: Arc<dyn Permissions>, roles_claim: RolesClaim) -> Self {
        Self { catalog, roles_claim }
    }

    /// The permission `target` needs: a tool or prompt name, or `METHOD path` of an admin
    /// endpoint.
    pub fn permission_of(&self, target: &str) -> Option<(TargetKind, Permission)> {
        if let Some(p) = endpoint_permission(target) {
            return Some((TargetKind::Endpoint, p));
        }
        self.catalog.permission_of(target)
    }

    /// The decision for a caller with `roles` (names as in tokens) and `scopes` on
    /// `target`, or `None` when there is no such target.
    pub fn explain(&self, roles: &[String], scopes: &[String], target: &str) -> Option<Explanation> {
        let (kind, permission) = self.permission_of(target)?;
        let known: BTreeSet<Role> = roles.iter().filter_map(|r| Role::parse(r)).collect();
        let unknown_roles = roles.iter().filter(|r| Role::parse(r).is_none()).cloned().collect();
        let scopes: BTreeSet<String> = scopes.iter().cloned().collect();
        Some(Explanation {
            target: target.to_owned(),
            kind,
            decision: authorize(&known, &scopes, permission),
            unknown_roles,
        })
    }

    /// Every target that can be explained (tools, prompts, admin endpoints).
    pub fn targets(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = self.catalog.names().into_iter().collect();
        names.extend(ADMIN_ENDPOINTS.iter().map(|(n, _)| (*n).to_owned()));
        names.into_iter().collect()
    }
}

impl AuthzExplainer {
    /// The decision asked for by `input`, its claims read with the configured roles claim.
    ///
    /// # Errors
    /// [`super::endpoints::AdminError::NotFound`] naming `target` when nothing is called so.
    pub fn explain_input(&self, input: ExplainInput) -> Result<Explanation, super::endpoints::AdminError> {
        let ExplainInput { target, mut roles, mut scopes, claims } = input;
        if let Some(claims) = claims {
            let parsed = Claims::from_json(&claims, &self.roles_claim);
            roles.extend(parsed.roles);
            scopes.extend(parsed.scopes);
        }
        self.explain(&roles, &scopes, &target).ok_or_else(|| {
            super::endpoints::AdminError::not_found(
                "target",
                format!("no tool, prompt or admin endpoint is called {target:?}"),
            )
        })
    }
}

#[cfg(all(test, feature = "conformance"))]
mod tests {
    use qudag_domain::rbac::Denial;

    use super::*;

    fn explainer() -> AuthzExplainer {
        let info = rmcp::model::Implementation::new("t", "1");
        AuthzExplainer::new(Arc::new(crate::mcp::fixtures::conformance::catalog(info)), RolesClaim::default())
    }

    #[test]
    fn explains_tools_and_endpoints_with_the_deciding_rule() {
        let e = explainer();
        let all: Vec<String> = ["mcp:read", "mcp:admin"].map(String::from).to_vec();
        let x = e.explain(&["admin".into(), "wizard".into()], &all, "POST /admin/authz/explain").unwrap();
        assert_eq!(x.kind, TargetKind::Endpoint);
        assert!(x.decision.allowed, "{}", x.decision.rule);
        assert_eq!(x.unknown_roles, vec!["wizard"]);

        let x = e.explain(&["readonly".into()], &all, "POST /admin/authz/explain").unwrap();
        assert!(!x.decision.allowed);
        assert_eq!(x.decision.denied_by, Some(Denial::Role));

        let tool = e.targets().into_iter().find(|t| t == "test_simple_text").unwrap();
        let x = e.explain(&["admin".into()], &[], &tool).unwrap();
        assert_eq!(x.kind, TargetKind::Tool);
        assert_eq!(x.decision.denied_by, Some(Denial::Scope));

        assert!(e.explain(&[], &[], "no_such_tool").is_none());
        assert!(e.targets().contains(&"POST /admin/authz/explain".to_owned()));
    }

    #[test]
    fn it_reads_claims_and_names_a_bad_target() {
        let e = explainer();
        let input: ExplainInput = serde_json::from_value(serde_json::json!({
            "target": "POST /admin/authz/explain",
            "claims": {"roles": ["admin"], "scope": "mcp:admin"}
        }))
        .unwrap();
        let out = serde_json::to_value(e.explain_input(input).unwrap()).unwrap();
        assert_eq!(out["allowed"], true, "{out}");
        assert_eq!(out["kind"], "endpoint");
        assert_eq!(out["required_scope"], "mcp:admin");
        let err = e.explain_input(ExplainInput { target: "nope".into(), ..ExplainInput::default() }).unwrap_err();
        assert!(
            matches!(err, super::super::endpoints::AdminError::NotFound { ref argument, .. } if argument == "target"),
            "{err}"
        );
    }
}
