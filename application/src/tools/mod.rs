//! The QuDAG tools: what agents come for.
//!
//! | tool | permission | cost |
//! |---|---|---|
//! | `execute_quantum_dag` | `quantum:execute` | 5 |
//! | `optimize_circuit` | `quantum:write` | 2 |
//! | `analyze_complexity` | `quantum:read` | 1 |
//! | `benchmark_performance` | `quantum:execute` | 10 |
//! | `quantum_key_exchange` | `crypto:execute` | 2 |
//! | `quantum_sign` | `crypto:execute` | 2 |
//! | `quantum_verify` | `crypto:execute` | 1 |
//! | `vault_quantum_store` | `vault:write` | 2 |
//! | `vault_quantum_retrieve` | `vault:read` | 2 |
//! | `vault_quantum_list` | `vault:read` | 1 |
//! | `vault_quantum_delete` | `vault:write` | 1 |
//! | `dark_address_resolve` | `network:read` | 1 |
//! | `dark_address_register` | `network:write` | 3 |
//! | `peer_discovery` | `network:read` | 1 |
//! | `system_health_check` | `system:read` | 1 |
//!
//! Tool names and argument shapes follow the original `@qudag/mcp-sse` package where it had
//! the tool; what we add is additive. Every tool lists a JSON Schema for its arguments and
//! for its `structuredContent`, answers with both structured content and a text rendering,
//! and reports a bad argument as a tool error naming it. Every call is authorized, charged
//! and audited by admission; the audit keeps a digest of the arguments, never
//! their values.
//!
//! Resources: the server's ML-DSA verification key (`qudag://keys/signing`), simulator
//! counters (`qudag://status/dag`) and vault counts (`qudag://status/vault`). Prompts:
//! `build_circuit` and `sign_and_verify`.

pub mod crypto;
pub mod names;
pub mod quantum;
pub mod support;
pub mod system;
pub mod vault;

use std::sync::Arc;

use async_trait::async_trait;
use qudag_domain::rbac::Permission;
use rmcp::model::{
    ErrorData, GetPromptResult, Implementation, JsonObject, Prompt, PromptArgument, PromptMessage, ReadResourceResult,
    Resource, ResourceContents, Role,
};
use serde_json::json;

use crate::mcp::catalog::{Catalog, PromptHandler, PromptResponse, ResourceError, ResourceProvider};
use crate::mcp::context::CallContext;
use crate::ports::{AuditSink, Clock, Membership, NameRegistry, VaultStore};
use crate::usecases::health::HealthService;
use crate::usecases::vault::VaultError;

pub use quantum::{QuantumLimits, Simulator};
pub use system::{Stats, ThisNode};

pub use crate::usecases::keys::{KeyOrigin, KeySeeds, ServerKeys};

/// What the tools need from the rest of the server.
pub struct Dependencies {
    /// Where vault entries are kept.
    pub vault_store: Arc<dyn VaultStore>,
    /// Where `.dark` records are kept.
    pub name_registry: Arc<dyn NameRegistry>,
    /// The live nodes.
    pub membership: Arc<dyn Membership>,
    /// The server's keys.
    pub keys: Arc<ServerKeys>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The audit trail (for what tools audit themselves: refused vault access, key export).
    pub audit: Arc<dyn AuditSink>,
    /// Component health, for `system_health_check`.
    pub health: Arc<HealthService>,
    /// Simulation limits.
    pub quantum_limits: QuantumLimits,
    /// Most live vault entries one principal may hold.
    pub max_vault_entries_per_principal: usize,
    /// Most live `.dark` names one principal may hold.
    pub max_names_per_principal: usize,
    /// This node's id in the membership.
    pub node: ThisNode,
}

impl std::fmt::Debug for Dependencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dependencies").field("node", &self.node.id).finish_non_exhaustive()
    }
}

/// The server's instructions to clients.
pub const INSTRUCTIONS: &str = "QuDAG tools: simulate and optimize quantum circuits (execute_quantum_dag, optimize_circuit, analyze_complexity, benchmark_performance), post-quantum cryptography with ML-KEM and ML-DSA (quantum_key_exchange, quantum_sign, quantum_verify), a per-user encrypted vault (vault_quantum_*), .dark names (dark_address_resolve/register), peers and health. Private keys stay on the server and are referred to by key_handle.";

/// The production catalog: every QuDAG tool, resource and prompt.
pub fn catalog(info: Implementation, deps: Dependencies) -> Catalog {
    use support::Registered as R;
    let stats = Arc::new(Stats::default());
    let simulator = Arc::new(Simulator::new(deps.quantum_limits, stats.clone()));
    let vault = Arc::new(
        vault::Vault::new(deps.vault_store.clone(), deps.keys.clone(), deps.clock.clone(), deps.audit)
            .with_max_entries_per_principal(deps.max_vault_entries_per_principal),
    );
    let names = Arc::new(
        names::Names::new(deps.name_registry.clone(), deps.keys.clone(), deps.clock.clone())
            .with_max_names_per_principal(deps.max_names_per_principal),
    );
    Catalog::builder(info)
        .instructions(INSTRUCTIONS)
        .tool(R::new(quantum::ExecuteTool(simulator.clone())))
        .tool(R::new(quantum::OptimizeTool(simulator.clone())))
        .tool(R::new(quantum::AnalyzeTool(simulator.clone())))
        .tool(R::new(quantum::BenchmarkTool(simulator)))
        .tool(R::new(crypto::KeyExchangeTool(vault.clone())))
        .tool(R::new(crypto::SignTool(vault.clone())))
        .tool(R::new(crypto::VerifyTool))
        .tool(R::new(vault::StoreTool(vault.clone())))
        .tool(R::new(vault::RetrieveTool(vault.clone())))
        .tool(R::new(vault::ListTool(vault.clone())))
        .tool(R::new(vault::DeleteTool(vault.clone())))
        .tool(R::new(names::ResolveTool(names.clone())))
        .tool(R::new(names::RegisterTool(names)))
        .tool(R::new(system::PeerDiscoveryTool {
            membership: deps.membership.clone(),
            node: deps.node.clone(),
            clock: deps.clock.clone(),
        }))
        .tool(R::new(system::HealthCheckTool {
            health: deps.health,
            stats: stats.clone(),
            keys: deps.keys.clone(),
            vault: deps.vault_store.clone(),
            names: deps.name_registry,
            membership: deps.membership,
            clock: deps.clock.clone(),
        }))
        .resources(KeyResource(deps.keys))
        .resources(StatusResources { stats, vault })
        .prompt(BuildCircuitPrompt)
        .prompt(SignAndVerifyPrompt)
        .build()
}

// ---------------------------------------------------------------------------------------
// Resources

/// The URI of the server's ML-DSA verification key.
pub const SIGNING_KEY_URI: &str = "qudag://keys/signing";
/// The URI of the simulator counters.
pub const DAG_STATUS_URI: &str = "qudag://status/dag";
/// The URI of the vault counts.
pub const VAULT_STATUS_URI: &str = "qudag://status/vault";

struct KeyResource(Arc<ServerKeys>);

#[async_trait]
impl ResourceProvider for KeyResource {
    fn resources(&self) -> Vec<Resource> {
        vec![
            Resource::new(SIGNING_KEY_URI, "signing-key")
                .with_title("Server ML-DSA-65 verification key")
                .with_description("The public key that signs .dark name records; verify resolved records against it.")
                .with_mime_type("application/json"),
        ]
    }

    fn permission(&self) -> Permission {
        Permission::CryptoRead
    }

    async fn read(&self, _cx: &CallContext, uri: &str) -> Result<Option<ReadResourceResult>, ResourceError> {
        if uri != SIGNING_KEY_URI {
            return Ok(None);
        }
        let body = json!({
            "algorithm": "ml-dsa-65",
            "key_id": self.0.signing_key_id(),
            "public_key": support::b64(self.0.signing().verifying_key()),
            "origin": self.0.origin(),
        });
        Ok(Some(ReadResourceResult::new(vec![
            ResourceContents::text(body.to_string(), uri).with_mime_type("application/json"),
        ])))
    }
}

/// The simulator counters (kept in memory) and the vault counts (read from the vault store:
/// while it is down, reading them is refused as retryable, like a vault tool call).
struct StatusResources {
    stats: Arc<Stats>,
    vault: Arc<vault::Vault>,
}

#[async_trait]
impl ResourceProvider for StatusResources {
    fn resources(&self) -> Vec<Resource> {
        vec![
            Resource::new(DAG_STATUS_URI, "dag-status")
                .with_title("Quantum execution status")
                .with_description("Counters of circuits executed, optimized, analyzed and benchmarked on this node.")
                .with_mime_type("application/json"),
            Resource::new(VAULT_STATUS_URI, "vault-status")
                .with_title("Vault status")
                .with_description("How many vault entries and owners there are (counts only, never contents).")
                .with_mime_type("application/json"),
        ]
    }

    fn permission(&self) -> Permission {
        Permission::SystemRead
    }

    async fn read(&self, _cx: &CallContext, uri: &str) -> Result<Option<ReadResourceResult>, ResourceError> {
        let body = match uri {
            DAG_STATUS_URI => serde_json::to_value(self.stats.snapshot()).unwrap_or_default(),
            VAULT_STATUS_URI => {
                let c = self.vault.counts().await.map_err(|e| match e {
                    VaultError::Unavailable(outage) => ResourceError::Unavailable(outage),
                    other => ErrorData::internal_error(other.to_string(), None).into(),
                })?;
                json!({ "entries": c.entries, "owners": c.owners })
            }
            _ => return Ok(None),
        };
        Ok(Some(ReadResourceResult::new(vec![
            ResourceContents::text(body.to_string(), uri).with_mime_type("application/json"),
        ])))
    }
}

// ---------------------------------------------------------------------------------------
// Prompts

fn argument(arguments: &JsonObject, name: &str, required: bool) -> Result<Option<String>, ErrorData> {
    match arguments.get(name) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(serde_json::Value::String(_)) | None if !required => Ok(None),
        Some(_) => Err(ErrorData::invalid_params(format!("argument `{name}` must be a non-empty string"), None)),
        None => Err(ErrorData::invalid_params(format!("argument `{name}` is required"), None)),
    }
}

struct BuildCircuitPrompt;

#[async_trait]
impl PromptHandler for BuildCircuitPrompt {
    fn prompt(&self) -> Prompt {
        Prompt::new(
            "build_circuit",
            Some("Turn a description of a quantum state or algorithm into a circuit for execute_quantum_dag."),
            Some(vec![
                PromptArgument::new("goal")
                    .with_description("What the circuit should do, e.g. 'a 3-qubit GHZ state'")
                    .with_required(true),
                PromptArgument::new("qubits").with_description("How many qubits to use").with_required(false),
            ]),
        )
        .with_title("Build a quantum circuit")
    }

    fn permission(&self) -> Permission {
        Permission::QuantumRead
    }

    async fn get(&self, _cx: &CallContext, arguments: JsonObject) -> Result<PromptResponse, ErrorData> {
        let goal = argument(&arguments, "goal", true)?.unwrap_or_default();
        let qubits = argument(&arguments, "qubits", false)?.map(|q| format!(" Use {q} qubits.")).unwrap_or_default();
        let text = format!(
            "Build a quantum circuit for: {goal}.{qubits}\n\n\
             Write it as the `circuit` argument of execute_quantum_dag: {{\"qubits\": n, \"gates\": [...], \"measurements\": [...]}}. \
             Gates: {{\"type\": \"H\", \"target\": 0}}; rotations {{\"type\": \"RZ\", \"target\": 0, \"params\": [angle]}}; \
             two-qubit {{\"type\": \"CNOT\", \"control\": 0, \"target\": 1}}, {{\"type\": \"CZ\", ...}}, {{\"type\": \"SWAP\", \"target\": [0, 1]}}. \
             Available: H, X, Y, Z, S, SDG, T, TDG, RX, RY, RZ, CNOT, CZ, SWAP. \
             Check it first with analyze_complexity, shrink it with optimize_circuit, then run it with execute_quantum_dag \
             (execution.shots, execution.seed for reproducible counts). Example, a Bell pair: \
             {{\"qubits\": 2, \"gates\": [{{\"type\": \"H\", \"target\": 0}}, {{\"type\": \"CNOT\", \"control\": 0, \"target\": 1}}]}}"
        );
        Ok(PromptResponse::Complete(
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
                .with_description("Build and run a quantum circuit"),
        ))
    }
}

struct SignAndVerifyPrompt;

#[async_trait]
impl PromptHandler for SignAndVerifyPrompt {
    fn prompt(&self) -> Prompt {
        Prompt::new(
            "sign_and_verify",
            Some("Sign a message with a post-quantum key the server holds for you, then verify the signature."),
            Some(vec![
                PromptArgument::new("message").with_description("The message to sign").with_required(true),
                PromptArgument::new("algorithm")
                    .with_description("ml-dsa-44, ml-dsa-65 (default) or ml-dsa-87")
                    .with_required(false),
            ]),
        )
        .with_title("Sign and verify a message")
    }

    fn permission(&self) -> Permission {
        Permission::CryptoRead
    }

    async fn get(&self, _cx: &CallContext, arguments: JsonObject) -> Result<PromptResponse, ErrorData> {
        let message = argument(&arguments, "message", true)?.unwrap_or_default();
        let algorithm = argument(&arguments, "algorithm", false)?.unwrap_or_else(|| "ml-dsa-65".to_owned());
        if qudag_domain::pqc::DsaAlgorithm::parse(&algorithm).is_none() {
            return Err(ErrorData::invalid_params(
                format!("argument `algorithm` must be ml-dsa-44, ml-dsa-65 or ml-dsa-87, got \"{algorithm}\""),
                None,
            ));
        }
        let text = format!(
            "1. Call quantum_sign with {{\"data\": {message:?}, \"algorithm\": \"{algorithm}\"}}. \
             With no key_handle the server creates a key pair, keeps the private key in your vault and returns key_handle, public_key and signature.\n\
             2. Call quantum_verify with the same data and algorithm, the returned signature and public_key; expect valid=true.\n\
             3. To sign again with the same key, pass key_handle to quantum_sign. Never ask for the private key: it is not returned."
        );
        Ok(PromptResponse::Complete(
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
                .with_description("Sign and verify with ML-DSA"),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use qudag_domain::Timestamp;
    use qudag_domain::principal::Principal;
    use qudag_domain::rbac::Role;

    use super::*;
    use crate::ports::{MockAuditSink, MockVaultStore, VaultCounts, VaultStoreError};
    use crate::testkit::ManualClock;

    fn status(store: MockVaultStore) -> StatusResources {
        let vault = vault::Vault::new(
            Arc::new(store),
            Arc::new(ServerKeys::ephemeral().unwrap()),
            Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000))),
            Arc::new(MockAuditSink::new()),
        );
        StatusResources { stats: Arc::new(Stats::default()), vault: Arc::new(vault) }
    }

    /// The vault counts are read from the vault store: while it is down the read is the
    /// store's outage (refused as retryable, like a vault tool call), never an internal
    /// error; the in-memory counters do not depend on it.
    #[tokio::test]
    async fn the_vault_status_while_the_store_is_down_is_its_outage() {
        let cx = CallContext::for_tests(Principal::anonymous([Role::Admin]));
        let mut down = MockVaultStore::new();
        down.expect_counts().returning(|_| Err(VaultStoreError::Unavailable { source: "connection refused".into() }));
        let resources = status(down);
        match resources.read(&cx, VAULT_STATUS_URI).await {
            Err(ResourceError::Unavailable(outage)) => assert_eq!(outage.component, "vault_store"),
            other => panic!("expected the vault store's outage, got {other:?}"),
        }
        assert!(resources.read(&cx, DAG_STATUS_URI).await.unwrap().is_some());

        let mut up = MockVaultStore::new();
        up.expect_counts().returning(|_| Ok(VaultCounts { entries: 3, owners: 2 }));
        let read = status(up).read(&cx, VAULT_STATUS_URI).await.unwrap().unwrap();
        let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else { panic!("text") };
        assert_eq!(serde_json::from_str::<serde_json::Value>(text).unwrap(), json!({"entries": 3, "owners": 2}));
    }
}
