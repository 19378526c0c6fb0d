//! `peer_discovery` and `system_health_check`: the live nodes, and the real state of every
//! component behind the tools.
//!
//! A membership outage is the request's retryable refusal (HTTP 503), as for every backend;
//! the health check instead reports each backend's state, an outage included, as its answer.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use qudag_domain::pqc::{DsaAlgorithm, KemAlgorithm, dsa, envelope};
use qudag_domain::rbac::Permission;
use rmcp::model::JsonObject;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::mcp::catalog::ToolResponse;
use crate::mcp::context::CallContext;
use crate::ports::{Clock, Membership, MembershipError, NameRegistry, VaultStore};
use crate::tools::support::{QudagTool, ToolFailure, ToolSpec, parse, success};
use crate::usecases::Unavailable;
use crate::usecases::health::HealthService;
use crate::usecases::keys::{KeyOrigin, ServerKeys, random};
pub use crate::usecases::simulation::{Stats, StatsSnapshot};

/// The component named when the membership backend cannot be reached.
pub const MEMBERSHIP: &str = "membership";

/// This node, as announced to the membership.
#[derive(Debug, Clone)]
pub struct ThisNode {
    /// Its id.
    pub id: String,
}

// ---------------------------------------------------------------------------------------

/// `peer_discovery`.
pub struct PeerDiscoveryTool {
    /// The membership.
    pub membership: Arc<dyn Membership>,
    /// This node.
    pub node: ThisNode,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PeerDiscoveryTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerDiscoveryTool").field("node", &self.node.id).finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct PeerArgs {
    #[serde(default = "yes")]
    include_self: bool,
}

fn yes() -> bool {
    true
}

#[async_trait]
impl QudagTool for PeerDiscoveryTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "peer_discovery",
            title: "Discover peer nodes",
            description: "List the live QuDAG MCP server nodes of this deployment (each announces itself with a heartbeat; a node that stops disappears within its time to live).",
            input: json!({
                "type": "object",
                "properties": { "include_self": { "type": "boolean", "default": true } }
            }),
            output: json!({
                "type": "object",
                "required": ["this_node", "count", "nodes"],
                "properties": {
                    "this_node": { "type": "string" },
                    "count": { "type": "integer", "minimum": 0 },
                    "nodes": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "address", "version", "started_at", "last_seen", "self"],
                            "properties": {
                                "id": { "type": "string" },
                                "address": { "type": "string" },
                                "version": { "type": "string" },
                                "started_at": { "type": "string", "format": "date-time" },
                                "last_seen": { "type": "string", "format": "date-time" },
                                "self": { "type": "boolean" }
                            }
                        }
                    }
                }
            }),
            permission: Permission::NetworkRead,
            cost: 1,
            read_only: true,
            idempotent: true,
            destructive: false,
            irreversible: false,
        }
    }

    async fn run(&self, _cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        let args: PeerArgs = parse(arguments)?;
        let nodes = self.membership.live(self.clock.now()).await.map_err(|e| {
            tracing::error!(error = %e, "Membership backend failed");
            match e {
                MembershipError::Unavailable { source } => {
                    ToolFailure::Unavailable(Unavailable { component: MEMBERSHIP, source })
                }
            }
        })?;
        let nodes: Vec<Value> = nodes
            .iter()
            .filter(|n| args.include_self || n.id != self.node.id)
            .map(|n| {
                json!({
                    "id": n.id, "address": n.address, "version": n.version,
                    "started_at": n.started_at.to_rfc3339(), "last_seen": n.last_seen.to_rfc3339(),
                    "self": n.id == self.node.id,
                })
            })
            .collect();
        let mut text = format!("{} live node(s):", nodes.len());
        for n in &nodes {
            text.push_str(&format!(
                "\n- {} at {}{}",
                n["id"].as_str().unwrap_or_default(),
                n["address"].as_str().unwrap_or_default(),
                if n["self"] == json!(true) { " (this node)" } else { "" }
            ));
        }
        Ok(success(json!({ "this_node": self.node.id, "count": nodes.len(), "nodes": nodes }), text))
    }
}

// ---------------------------------------------------------------------------------------

/// `system_health_check`.
pub struct HealthCheckTool {
    /// The server's component health.
    pub health: Arc<HealthService>,
    /// Work counters.
    pub stats: Arc<Stats>,
    /// Key material.
    pub keys: Arc<ServerKeys>,
    /// The vault's store.
    pub vault: Arc<dyn VaultStore>,
    /// The name registry.
    pub names: Arc<dyn NameRegistry>,
    /// The membership.
    pub membership: Arc<dyn Membership>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for HealthCheckTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthCheckTool").finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Deserialize)]
struct HealthArgs {
    depth: Option<Depth>,
    #[serde(default)]
    performance_tests: Option<PerfArgs>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Depth {
    Basic,
    Detailed,
    Comprehensive,
}

#[derive(Debug, Default, Deserialize)]
struct PerfArgs {
    #[serde(default)]
    enabled: bool,
}

/// Seal and open one envelope with each vault key, and sign and verify with the signing
/// key: proof that the key material works, with how long each took.
fn crypto_self_test(keys: &ServerKeys) -> Result<Value, String> {
    let mut checks = Vec::new();
    for algorithm in [KemAlgorithm::MlKem768, KemAlgorithm::MlKem1024] {
        let key = keys.vault_key(algorithm).ok_or("no vault key")?;
        let started = Instant::now();
        let randomness = envelope::SealRandomness {
            m: random::<32>().map_err(|e| e.to_string())?,
            nonce: random::<12>().map_err(|e| e.to_string())?,
        };
        let sealed = envelope::seal(algorithm, key.encapsulation_key(), b"self-test", b"health", &randomness)
            .map_err(|e| e.to_string())?;
        let opened = envelope::open(key, &sealed, b"health").map_err(|e| e.to_string())?;
        if opened.as_slice() != b"self-test" {
            return Err(format!("{} envelope did not round-trip", algorithm.as_str()));
        }
        checks.push(json!({ "check": format!("vault envelope {}", algorithm.as_str()), "ok": true, "micros": started.elapsed().as_micros() as u64 }));
    }
    let started = Instant::now();
    let signature = keys
        .signing()
        .sign(b"self-test", b"health", &random::<32>().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    dsa::verify(DsaAlgorithm::MlDsa65, keys.signing().verifying_key(), b"self-test", b"health", &signature)
        .map_err(|e| format!("signing key self-test failed: {e}"))?;
    checks
        .push(json!({ "check": "ml-dsa-65 sign+verify", "ok": true, "micros": started.elapsed().as_micros() as u64 }));
    Ok(Value::Array(checks))
}

#[async_trait]
impl QudagTool for HealthCheckTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "system_health_check",
            title: "System health check",
            description: "The real state of each component (session store, rate limiter, audit sink, token verifier, vault store, name registry, key material, membership) and the work counters. depth=detailed or comprehensive, or performance_tests.enabled, also runs a cryptographic self-test of the server's keys.",
            input: json!({
                "type": "object",
                "properties": {
                    "components": { "type": "object", "description": "Accepted for compatibility; every component is reported." },
                    "depth": { "type": "string", "enum": ["basic", "detailed", "comprehensive"], "default": "basic" },
                    "performance_tests": { "type": "object", "properties": { "enabled": { "type": "boolean" }, "quick_tests_only": { "type": "boolean" } } }
                }
            }),
            output: json!({
                "type": "object",
                "required": ["status", "version", "components", "quantum", "keys"],
                "properties": {
                    "status": { "type": "string", "enum": ["up", "degraded", "down"] },
                    "version": { "type": "string" },
                    "draining": { "type": "boolean" },
                    "components": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "required": ["status"],
                            "properties": {
                                "status": { "type": "string", "enum": ["up", "degraded", "down"] },
                                "required": { "type": "boolean" },
                                "detail": { "type": ["string", "null"] }
                            }
                        }
                    },
                    "quantum": { "type": "object" },
                    "keys": { "type": "object" },
                    "vault": { "type": "object" },
                    "names": { "type": "object" },
                    "network": { "type": "object" },
                    "self_test": { "type": "array" }
                }
            }),
            permission: Permission::SystemRead,
            cost: 1,
            read_only: true,
            idempotent: true,
            destructive: false,
            irreversible: false,
        }
    }

    async fn run(&self, _cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        let args: HealthArgs = parse(arguments)?;
        let report = self.health.report().await;
        let now = self.clock.now();
        let mut components = serde_json::to_value(&report.components).unwrap_or_default();
        let mut worst = report.status;
        let mut put = |name: &str, status: &str, detail: String| {
            components[name] = json!({ "status": status, "required": false, "detail": detail });
        };
        let vault = match self.vault.counts(now).await {
            Ok(c) => {
                put("vault_store", "up", format!("{} entries, {} owners", c.entries, c.owners));
                json!({ "entries": c.entries, "owners": c.owners })
            }
            Err(e) => {
                put("vault_store", "down", e.to_string());
                worst = worst.max(crate::ports::HealthStatus::Degraded);
                json!({ "error": e.to_string() })
            }
        };
        let names = match self.names.count(now).await {
            Ok(n) => {
                put("name_registry", "up", format!("{n} names"));
                json!({ "records": n })
            }
            Err(e) => {
                let detail = format!("the name registry is unavailable ({e}); try again later");
                put("name_registry", "down", detail.clone());
                worst = worst.max(crate::ports::HealthStatus::Degraded);
                json!({ "error": detail })
            }
        };
        let network = match self.membership.live(now).await {
            Ok(nodes) => {
                put("membership", "up", format!("{} live nodes", nodes.len()));
                json!({ "live_nodes": nodes.len() })
            }
            Err(e) => {
                put("membership", "down", e.to_string());
                worst = worst.max(crate::ports::HealthStatus::Degraded);
                json!({ "error": e.to_string() })
            }
        };
        let origin = self.keys.origin();
        put(
            "key_material",
            if origin == KeyOrigin::File { "up" } else { "degraded" },
            match origin {
                KeyOrigin::File => "loaded from the key file".to_owned(),
                KeyOrigin::Ephemeral => {
                    "ephemeral keys: vault entries and name records will not survive a restart".to_owned()
                }
            },
        );
        let mut out = json!({
            "status": worst,
            "version": report.version,
            "draining": report.draining,
            "components": components,
            "quantum": self.stats.snapshot(),
            "keys": { "origin": origin, "signing_key_id": self.keys.signing_key_id(), "signing_algorithm": "ml-dsa-65", "vault_algorithms": ["ml-kem-768", "ml-kem-1024"] },
            "vault": vault,
            "names": names,
            "network": network,
        });
        let self_test = matches!(args.depth, Some(Depth::Detailed | Depth::Comprehensive))
            || args.performance_tests.as_ref().is_some_and(|p| p.enabled);
        if self_test {
            let keys = self.keys.clone();
            let result = tokio::task::spawn_blocking(move || crypto_self_test(&keys))
                .await
                .map_err(|e| ToolFailure::operation(format!("self-test did not finish: {e}")))?;
            match result {
                Ok(checks) => out["self_test"] = checks,
                Err(e) => {
                    out["self_test"] = json!([{ "check": "key material", "ok": false, "error": e }]);
                    out["status"] = json!("down");
                }
            }
        }
        let text = format!(
            "Status: {}. Components: {}.",
            out["status"].as_str().unwrap_or("unknown"),
            out["components"]
                .as_object()
                .map(|c| c
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v["status"].as_str().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        );
        Ok(success(out, text))
    }
}
