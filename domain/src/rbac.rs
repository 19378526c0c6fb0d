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

/// An authorization decision and the rule that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthzDecision {
    /// Whether the permission is granted.
    pub allowed: bool,
    /// The permission that was asked for.
    pub permission: Permission,
    /// The role that granted it, when allowed.
    pub granted_by: Option<Role>,
    /// The rule, in words: which role granted it, or why none did.
    pub rule: String,
}

/// Decide whether a caller holding `roles` may use something that needs `permission`.
///
/// Roles are checked in [`Role::ALL`] order so the reported rule is deterministic.
pub fn authorize(roles: &BTreeSet<Role>, permission: Permission) -> AuthzDecision {
    match Role::ALL.into_iter().find(|r| roles.contains(r) && r.grants(permission)) {
        Some(role) => AuthzDecision {
            allowed: true,
            permission,
            granted_by: Some(role),
            rule: format!("role {role} grants {permission}"),
        },
        None if roles.is_empty() => AuthzDecision {
            allowed: false,
            permission,
            granted_by: None,
            rule: format!("caller has no recognised role; {permission} needs one of: {}", granting_roles(permission)),
        },
        None => AuthzDecision {
            allowed: false,
            permission,
            granted_by: None,
            rule: format!(
                "none of the caller's roles ({}) grants {permission}; it needs one of: {}",
                roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "),
                granting_roles(permission)
            ),
        },
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

    #[test]
    fn decisions_name_their_rule() {
        let d = authorize(&roles(&[Role::Readonly, Role::Developer]), P::QuantumExecute);
        assert!(d.allowed);
        assert_eq!(d.granted_by, Some(Role::Developer));
        assert_eq!(d.rule, "role developer grants quantum:execute");

        let d = authorize(&roles(&[Role::Readonly]), P::VaultWrite);
        assert!(!d.allowed);
        assert_eq!(d.rule, "none of the caller's roles (readonly) grants vault:write; it needs one of: admin");

        let d = authorize(&BTreeSet::new(), P::SystemRead);
        assert!(!d.allowed);
        assert!(d.rule.starts_with("caller has no recognised role"), "{}", d.rule);
        assert!(d.rule.contains("readonly"), "{}", d.rule);
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
    }
}
