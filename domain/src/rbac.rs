//! Role-based access control: roles grant permissions, and every tool and admin endpoint
//! declares the one permission it needs.
//!
//! The five roles keep the meanings of the original QuDAG MCP package:
//!
//! | role | may |
//! |---|---|
//! | `admin` | everything |
//! | `developer` | read, write and execute quantum, crypto and DAG; read system status |
//! | `operator` | execute and monitor; read-only vault and network |
//! | `auditor` | read everything, including the audit log; change nothing |
//! | `readonly` | minimal reads: system and DAG status |
//!
//! A token must also carry the OAuth scope that covers the permission (see
//! [`Permission::scope`]): roles say what a caller may ever do, scopes what this token was
//! granted for. A call needs both, so a client can be stepped up to a wider scope
//! (`403 insufficient_scope`) but never past its roles.
//!
//! A decision always carries the rule that made it, so an operator can answer "why was
//! this call denied?" without reading logs.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A role a token may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Builds with quantum, crypto and DAG tools.
    Developer,
    /// Runs and watches the system.
    Operator,
    /// Reads everything, including the audit log.
    Auditor,
    /// Minimal reads.
    Readonly,
}

impl Role {
    /// All roles.
    pub const ALL: [Self; 5] = [Self::Admin, Self::Developer, Self::Operator, Self::Auditor, Self::Readonly];

    /// The role's name in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Developer => "developer",
            Self::Operator => "operator",
            Self::Auditor => "auditor",
            Self::Readonly => "readonly",
        }
    }

    /// A role from its name in a token (exact, lowercase); unknown names give `None`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Whether this role grants `permission`.
    pub fn grants(self, permission: Permission) -> bool {
        use Permission as P;
        match self {
            Self::Admin => true,
            Self::Developer => matches!(
                permission,
                P::QuantumRead
                    | P::QuantumWrite
                    | P::QuantumExecute
                    | P::CryptoRead
                    | P::CryptoWrite
                    | P::CryptoExecute
                    | P::DagRead
                    | P::DagWrite
                    | P::DagExecute
                    | P::SystemRead
            ),
            Self::Operator => matches!(
                permission,
                P::QuantumRead
                    | P::QuantumExecute
                    | P::CryptoRead
                    | P::CryptoExecute
                    | P::DagRead
                    | P::DagExecute
                    | P::VaultRead
                    | P::NetworkRead
                    | P::SystemRead
                    | P::SystemMonitor
            ),
            Self::Auditor => permission.is_read(),
            Self::Readonly => matches!(permission, P::SystemRead | P::DagRead),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a tool or endpoint needs. Named `area:verb`, which is also the OAuth scope
/// that names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Permission {
    /// Read quantum circuits and results.
    #[serde(rename = "quantum:read")]
    QuantumRead,
    /// Create or change quantum circuits.
    #[serde(rename = "quantum:write")]
    QuantumWrite,
    /// Run quantum circuits.
    #[serde(rename = "quantum:execute")]
    QuantumExecute,
    /// Read public key material and crypto status.
    #[serde(rename = "crypto:read")]
    CryptoRead,
    /// Create or change keys.
    #[serde(rename = "crypto:write")]
    CryptoWrite,
    /// Sign, verify, encapsulate.
    #[serde(rename = "crypto:execute")]
    CryptoExecute,
    /// Read DAG status.
    #[serde(rename = "dag:read")]
    DagRead,
    /// Change the DAG.
    #[serde(rename = "dag:write")]
    DagWrite,
    /// Run DAG operations.
    #[serde(rename = "dag:execute")]
    DagExecute,
    /// Read one's vault secrets.
    #[serde(rename = "vault:read")]
    VaultRead,
    /// Store or delete vault secrets.
    #[serde(rename = "vault:write")]
    VaultWrite,
    /// Resolve names, discover peers.
    #[serde(rename = "network:read")]
    NetworkRead,
    /// Register names.
    #[serde(rename = "network:write")]
    NetworkWrite,
    /// Read system health.
    #[serde(rename = "system:read")]
    SystemRead,
    /// Detailed monitoring and benchmarks.
    #[serde(rename = "system:monitor")]
    SystemMonitor,
    /// Read the audit log.
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Administrative endpoints.
    #[serde(rename = "admin")]
    Admin,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Self; 17] = [
        Self::QuantumRead,
        Self::QuantumWrite,
        Self::QuantumExecute,
        Self::CryptoRead,
        Self::CryptoWrite,
        Self::CryptoExecute,
        Self::DagRead,
        Self::DagWrite,
        Self::DagExecute,
        Self::VaultRead,
        Self::VaultWrite,
        Self::NetworkRead,
        Self::NetworkWrite,
        Self::SystemRead,
        Self::SystemMonitor,
        Self::AuditRead,
        Self::Admin,
    ];

    /// The permission's name, also its OAuth scope.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QuantumRead => "quantum:read",
            Self::QuantumWrite => "quantum:write",
            Self::QuantumExecute => "quantum:execute",
            Self::CryptoRead => "crypto:read",
            Self::CryptoWrite => "crypto:write",
            Self::CryptoExecute => "crypto:execute",
            Self::DagRead => "dag:read",
            Self::DagWrite => "dag:write",
            Self::DagExecute => "dag:execute",
            Self::VaultRead => "vault:read",
            Self::VaultWrite => "vault:write",
            Self::NetworkRead => "network:read",
            Self::NetworkWrite => "network:write",
            Self::SystemRead => "system:read",
            Self::SystemMonitor => "system:monitor",
            Self::AuditRead => "audit:read",
            Self::Admin => "admin",
        }
    }

    /// A permission from its name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The OAuth scope a token needs for this permission: reads need `mcp:read`, writes
    /// `mcp:write`, runs `mcp:execute`, monitoring `mcp:monitor`, the audit log
    /// `mcp:audit`, administration `mcp:admin`.
    pub fn scope(self) -> Scope {
        match self {
            Self::QuantumWrite | Self::CryptoWrite | Self::DagWrite | Self::VaultWrite | Self::NetworkWrite => {
                Scope::Write
            }
            Self::QuantumExecute | Self::CryptoExecute | Self::DagExecute => Scope::Execute,
            Self::SystemMonitor => Scope::Monitor,
            Self::AuditRead => Scope::Audit,
            Self::Admin => Scope::Admin,
            Self::QuantumRead
            | Self::CryptoRead
            | Self::DagRead
            | Self::VaultRead
            | Self::NetworkRead
            | Self::SystemRead => Scope::Read,
        }
    }

    /// Whether the permission only reads.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Self::QuantumRead
                | Self::CryptoRead
                | Self::DagRead
                | Self::VaultRead
                | Self::NetworkRead
                | Self::SystemRead
                | Self::SystemMonitor
                | Self::AuditRead
        )
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The OAuth scopes of the QuDAG MCP API: what a token may be granted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// Every read.
    #[serde(rename = "mcp:read")]
    Read,
    /// Creating and changing things.
    #[serde(rename = "mcp:write")]
    Write,
    /// Running things.
    #[serde(rename = "mcp:execute")]
    Execute,
    /// Detailed monitoring.
    #[serde(rename = "mcp:monitor")]
    Monitor,
    /// The audit log.
    #[serde(rename = "mcp:audit")]
    Audit,
    /// Administration.
    #[serde(rename = "mcp:admin")]
    Admin,
}

impl Scope {
    /// Every scope, as listed in the protected-resource metadata's `scopes_supported`.
    pub const ALL: [Self; 6] = [Self::Read, Self::Write, Self::Execute, Self::Monitor, Self::Audit, Self::Admin];

    /// The scope's name in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "mcp:read",
            Self::Write => "mcp:write",
            Self::Execute => "mcp:execute",
            Self::Monitor => "mcp:monitor",
            Self::Audit => "mcp:audit",
            Self::Admin => "mcp:admin",
        }
    }

    /// A scope from its name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every scope that covers something one of `roles` grants: what a token for them needs
/// to use all they may.
pub fn useful_scopes(roles: &[Role]) -> BTreeSet<Scope> {
    Permission::ALL.into_iter().filter(|p| roles.iter().any(|r| r.grants(*p))).map(Permission::scope).collect()
}

/// Which check refused a permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Denial {
    /// None of the caller's roles grants it: a wider token would not help.
    Role,
    /// A role grants it but the token lacks the scope: step-up authorization helps.
    Scope,
}

/// An authorization decision and the rule that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthzDecision {
    /// Whether the permission is granted.
    pub allowed: bool,
    /// The permission that was asked for.
    pub permission: Permission,
    /// The OAuth scope the token needs for it.
    pub required_scope: Scope,
    /// The role that granted it, when a role did.
    pub granted_by: Option<Role>,
    /// Which check refused it, when refused.
    pub denied_by: Option<Denial>,
    /// When the scope refused it: the scopes to ask for in a step-up — those the token
    /// has plus the one it lacks (MCP authorization, "Scope Challenge Handling").
    pub step_up_scopes: Vec<String>,
    /// The rule, in words: which role and scope granted it, or why not.
    pub rule: String,
}

/// Decide whether a caller holding `roles`, with a token granted `scopes`, may use
/// something that needs `permission`. Roles are checked first, then the scope.
///
/// Roles are checked in [`Role::ALL`] order so the reported rule is deterministic.
pub fn authorize(roles: &BTreeSet<Role>, scopes: &BTreeSet<String>, permission: Permission) -> AuthzDecision {
    let required_scope = permission.scope();
    let denied = |denied_by, rule| AuthzDecision {
        allowed: false,
        permission,
        required_scope,
        granted_by: None,
        denied_by: Some(denied_by),
        step_up_scopes: Vec::new(),
        rule,
    };
    let Some(role) = Role::ALL.into_iter().find(|r| roles.contains(r) && r.grants(permission)) else {
        return if roles.is_empty() {
            denied(
                Denial::Role,
                format!("caller has no recognised role; {permission} needs one of: {}", granting_roles(permission)),
            )
        } else {
            denied(
                Denial::Role,
                format!(
                    "none of the caller's roles ({}) grants {permission}; it needs one of: {}",
                    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "),
                    granting_roles(permission)
                ),
            )
        };
    };
    if !scopes.contains(required_scope.as_str()) {
        let mut rule = format!("role {role} grants {permission}, but the token lacks scope {required_scope}");
        if scopes.is_empty() {
            rule.push_str(" (it has no scopes)");
        }
        let mut step_up: BTreeSet<String> = scopes.clone();
        step_up.insert(required_scope.as_str().to_owned());
        return AuthzDecision {
            granted_by: Some(role),
            step_up_scopes: step_up.into_iter().collect(),
            ..denied(Denial::Scope, rule)
        };
    }
    AuthzDecision {
        allowed: true,
        permission,
        required_scope,
        granted_by: Some(role),
        denied_by: None,
        step_up_scopes: Vec::new(),
        rule: format!("role {role} grants {permission} and the token has scope {required_scope}"),
    }
}

fn granting_roles(permission: Permission) -> String {
    Role::ALL.into_iter().filter(|r| r.grants(permission)).map(Role::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission as P;

    fn roles(list: &[Role]) -> BTreeSet<Role> {
        list.iter().copied().collect()
    }

    #[test]
    fn admin_may_do_everything() {
        for p in Permission::ALL {
            assert!(Role::Admin.grants(p), "{p}");
        }
    }

    #[test]
    fn developer_builds_but_cannot_touch_vault_audit_or_admin() {
        for p in [P::QuantumExecute, P::QuantumWrite, P::CryptoWrite, P::CryptoExecute, P::DagWrite, P::SystemRead] {
            assert!(Role::Developer.grants(p), "{p}");
        }
        for p in [P::VaultWrite, P::AuditRead, P::Admin, P::NetworkWrite] {
            assert!(!Role::Developer.grants(p), "{p}");
        }
    }

    #[test]
    fn operator_executes_and_monitors_and_reads_vault_and_network_only() {
        for p in [P::QuantumExecute, P::CryptoExecute, P::SystemMonitor, P::VaultRead, P::NetworkRead] {
            assert!(Role::Operator.grants(p), "{p}");
        }
        for p in [P::VaultWrite, P::NetworkWrite, P::QuantumWrite, P::CryptoWrite, P::AuditRead, P::Admin] {
            assert!(!Role::Operator.grants(p), "{p}");
        }
    }

    #[test]
    fn auditor_reads_everything_and_writes_nothing() {
        for p in Permission::ALL {
            assert_eq!(Role::Auditor.grants(p), p.is_read(), "{p}");
        }
        assert!(Role::Auditor.grants(P::AuditRead));
    }

    #[test]
    fn readonly_is_minimal() {
        let granted: Vec<_> = Permission::ALL.into_iter().filter(|p| Role::Readonly.grants(*p)).collect();
        assert_eq!(granted, vec![P::DagRead, P::SystemRead]);
    }

    fn all_scopes() -> BTreeSet<String> {
        Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect()
    }

    fn scopes(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn decisions_name_their_rule() {
        let d = authorize(&roles(&[Role::Readonly, Role::Developer]), &all_scopes(), P::QuantumExecute);
        assert!(d.allowed);
        assert_eq!(d.granted_by, Some(Role::Developer));
        assert_eq!(d.denied_by, None);
        assert_eq!(d.rule, "role developer grants quantum:execute and the token has scope mcp:execute");

        let d = authorize(&roles(&[Role::Readonly]), &all_scopes(), P::VaultWrite);
        assert!(!d.allowed);
        assert_eq!(d.denied_by, Some(Denial::Role));
        assert_eq!(d.rule, "none of the caller's roles (readonly) grants vault:write; it needs one of: admin");

        let d = authorize(&BTreeSet::new(), &all_scopes(), P::SystemRead);
        assert!(!d.allowed);
        assert!(d.rule.starts_with("caller has no recognised role"), "{}", d.rule);
        assert!(d.rule.contains("readonly"), "{}", d.rule);
    }

    #[test]
    fn a_granting_role_still_needs_the_scope() {
        let d = authorize(&roles(&[Role::Admin]), &scopes(&["mcp:read"]), P::QuantumWrite);
        assert!(!d.allowed);
        assert_eq!(d.denied_by, Some(Denial::Scope));
        assert_eq!(d.granted_by, Some(Role::Admin));
        assert_eq!(d.required_scope, Scope::Write);
        assert_eq!(d.rule, "role admin grants quantum:write, but the token lacks scope mcp:write");
        assert_eq!(d.step_up_scopes, vec!["mcp:read", "mcp:write"]);

        let d = authorize(&roles(&[Role::Admin]), &BTreeSet::new(), P::SystemRead);
        assert_eq!(d.denied_by, Some(Denial::Scope));
        assert!(d.rule.ends_with("(it has no scopes)"), "{}", d.rule);

        // A scope never widens a role: readonly holding mcp:admin is still not an admin.
        let d = authorize(&roles(&[Role::Readonly]), &scopes(&["mcp:admin"]), P::Admin);
        assert_eq!(d.denied_by, Some(Denial::Role));
    }

    #[test]
    fn every_role_default_scopes_cover_what_the_role_grants() {
        // The default scopes the issuer hands each role (mcp:read/write/execute for
        // developers, read/execute/monitor for operators, read/monitor/audit for
        // auditors, read for readonly) are exactly the scopes of the permissions it grants.
        let expected: [(Role, &[&str]); 5] = [
            (Role::Admin, &["mcp:read", "mcp:write", "mcp:execute", "mcp:monitor", "mcp:audit", "mcp:admin"]),
            (Role::Developer, &["mcp:read", "mcp:write", "mcp:execute"]),
            (Role::Operator, &["mcp:read", "mcp:execute", "mcp:monitor"]),
            (Role::Auditor, &["mcp:read", "mcp:monitor", "mcp:audit"]),
            (Role::Readonly, &["mcp:read"]),
        ];
        for (role, wanted) in expected {
            let needed: BTreeSet<String> = useful_scopes(&[role]).iter().map(|s| s.as_str().to_owned()).collect();
            assert_eq!(needed, scopes(wanted), "{role}");
        }
    }

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), serde_json::json!(r.as_str()));
        }
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), serde_json::json!(p.as_str()));
        }
        assert_eq!(Role::parse("Admin"), None);
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
    }
}
