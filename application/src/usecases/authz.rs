//! "Why was this call denied?": the authorization decision for a principal's roles and
//! scopes and a tool, prompt or admin endpoint, with the rule that made it — the same
//! decision the pipeline takes, without making the call.

use std::collections::BTreeSet;
use std::sync::Arc;

use qudag_domain::rbac::{AuthzDecision, Permission, Role, authorize};

use crate::mcp::Catalog;

/// The admin endpoints and the permission each needs, named `METHOD path`.
pub const ADMIN_ENDPOINTS: &[(&str, Permission)] = &[("POST /admin/authz/explain", Permission::Admin)];

/// The permission `endpoint` (`METHOD path`) needs, if it is an admin endpoint.
pub fn endpoint_permission(endpoint: &str) -> Option<Permission> {
    ADMIN_ENDPOINTS.iter().find(|(name, _)| *name == endpoint).map(|(_, p)| *p)
}

/// What was asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// A tool.
    Tool,
    /// A prompt.
    Prompt,
    /// An admin endpoint.
    Endpoint,
}

/// A decision and what it was about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The target's kind.
    pub kind: TargetKind,
    /// The decision.
    pub decision: AuthzDecision,
    /// Role names that were not recognised (and so granted nothing).
    pub unknown_roles: Vec<String>,
}

/// Explains authorization decisions over a catalog.
#[derive(Clone)]
pub struct AuthzExplainer {
    catalog: Arc<Catalog>,
}

impl std::fmt::Debug for AuthzExplainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthzExplainer").finish_non_exhaustive()
    }
}

impl AuthzExplainer {
    /// An explainer for the tools and prompts of `catalog` and the admin endpoints.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }

    /// The permission `target` needs: a tool or prompt name, or `METHOD path` of an admin
    /// endpoint.
    pub fn permission_of(&self, target: &str) -> Option<(TargetKind, Permission)> {
        if let Some(p) = endpoint_permission(target) {
            return Some((TargetKind::Endpoint, p));
        }
        // Tools and prompts are looked up across both eras.
        let tool = self.catalog.tool(target, false).or_else(|| self.catalog.tool(target, true));
        if let Some(t) = tool {
            return Some((TargetKind::Tool, t.permission()));
        }
        let prompt = self.catalog.prompt(target, false).or_else(|| self.catalog.prompt(target, true));
        prompt.map(|p| (TargetKind::Prompt, p.permission()))
    }

    /// The decision for a caller with `roles` (names as in tokens) and `scopes` on
    /// `target`, or `None` when there is no such target.
    pub fn explain(&self, roles: &[String], scopes: &[String], target: &str) -> Option<Explanation> {
        let (kind, permission) = self.permission_of(target)?;
        let known: BTreeSet<Role> = roles.iter().filter_map(|r| Role::parse(r)).collect();
        let unknown_roles = roles.iter().filter(|r| Role::parse(r).is_none()).cloned().collect();
        let scopes: BTreeSet<String> = scopes.iter().cloned().collect();
        Some(Explanation { kind, decision: authorize(&known, &scopes, permission), unknown_roles })
    }

    /// Every target that can be explained (tools, prompts, admin endpoints).
    pub fn targets(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        for stateless in [false, true] {
            names.extend(self.catalog.tool_definitions(stateless).map(|t| t.name.to_string()));
            names.extend(self.catalog.prompt_definitions(stateless).map(|p| p.name.clone()));
        }
        names.extend(ADMIN_ENDPOINTS.iter().map(|(n, _)| (*n).to_owned()));
        names.into_iter().collect()
    }
}

#[cfg(all(test, feature = "conformance"))]
mod tests {
    use qudag_domain::rbac::Denial;

    use super::*;

    fn explainer() -> AuthzExplainer {
        let info = rmcp::model::Implementation::new("t", "1");
        AuthzExplainer::new(Arc::new(crate::mcp::fixtures::conformance::catalog(info)))
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
}
