//! `[tools]`: the QuDAG tools: the server's key file, where vault entries and `.dark`
//! records live and how many each principal may hold, the simulator's limits and this
//! node's id (`QUDAG_KEY_FILE`, `QUDAG_STORE`, `QUDAG_MAX_VAULT_ENTRIES_PER_PRINCIPAL`,
//! `QUDAG_MAX_NAMES_PER_PRINCIPAL`, `QUDAG_MAX_QUBITS`, `QUDAG_MAX_AMPLITUDE_UPDATES`,
//! `QUDAG_NODE_ID`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::database::DatabaseSettings;
use super::error::ConfigError;
use super::parse::{non_empty, parse_num, unknown};

/// The largest per-principal quota accepted: the in-memory stores' whole capacity.
const MAX_PER_PRINCIPAL: usize = 100_000;

/// Where the tools keep vault entries and `.dark` records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataStore {
    /// In this process (lost at exit).
    #[default]
    Memory,
    /// In PostgreSQL (`QUDAG_DATABASE_URL`), shared by every node.
    Postgres,
}

/// The QuDAG tools.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolSettings {
    /// The server's key file (ML-DSA-65 and ML-KEM seeds, JSON, mode 0600); created on first
    /// start when missing. Ephemeral keys when unset.
    pub key_file: Option<PathBuf>,
    /// Where vault entries and `.dark` records live.
    pub store: DataStore,
    /// Most live vault entries one principal may hold.
    pub max_vault_entries_per_principal: usize,
    /// Most live `.dark` names one principal may hold.
    pub max_names_per_principal: usize,
    /// Most qubits in one circuit.
    pub max_qubits: usize,
    /// Most amplitude updates one call may take, over all its runs.
    pub max_amplitude_updates: u64,
    /// This node's id in peer discovery; random when unset.
    pub node_id: Option<String>,
}

impl Default for ToolSettings {
    fn default() -> Self {
        Self {
            key_file: None,
            store: DataStore::Memory,
            max_vault_entries_per_principal: 1000,
            max_names_per_principal: 100,
            max_qubits: 24,
            max_amplitude_updates: 1 << 33,
            node_id: None,
        }
    }
}

impl ToolSettings {
    /// Set `field` from a variable's text.
    pub(super) fn set(&mut self, field: &str, v: &str) -> Result<(), String> {
        match field {
            "key_file" => self.key_file = non_empty(v).map(PathBuf::from),
            "store" => {
                self.store = match v.trim() {
                    "memory" => DataStore::Memory,
                    "postgres" => DataStore::Postgres,
                    _ => return Err("expected `memory` or `postgres`".into()),
                };
            }
            "max_vault_entries_per_principal" => self.max_vault_entries_per_principal = parse_num(v)?,
            "max_names_per_principal" => self.max_names_per_principal = parse_num(v)?,
            "max_qubits" => self.max_qubits = parse_num(v)?,
            "max_amplitude_updates" => self.max_amplitude_updates = parse_num(v)?,
            "node_id" => self.node_id = non_empty(v),
            _ => return Err(unknown(field)),
        }
        Ok(())
    }

    /// Check the section; a PostgreSQL store needs the `database` section's URL.
    pub(super) fn validate(&self, database: &DatabaseSettings) -> Result<(), ConfigError> {
        if !(1..=MAX_PER_PRINCIPAL).contains(&self.max_vault_entries_per_principal) {
            return Err(ConfigError::invalid(
                "QUDAG_MAX_VAULT_ENTRIES_PER_PRINCIPAL",
                self.max_vault_entries_per_principal,
                "must be between 1 and 100000",
            ));
        }
        if !(1..=MAX_PER_PRINCIPAL).contains(&self.max_names_per_principal) {
            return Err(ConfigError::invalid(
                "QUDAG_MAX_NAMES_PER_PRINCIPAL",
                self.max_names_per_principal,
                "must be between 1 and 100000",
            ));
        }
        if !(1..=30).contains(&self.max_qubits) {
            return Err(ConfigError::invalid("QUDAG_MAX_QUBITS", self.max_qubits, "must be between 1 and 30"));
        }
        if self.max_amplitude_updates < 1024 {
            return Err(ConfigError::invalid(
                "QUDAG_MAX_AMPLITUDE_UPDATES",
                self.max_amplitude_updates,
                "must be at least 1024",
            ));
        }
        if let Some(id) = &self.node_id
            && (id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(ConfigError::invalid(
                "QUDAG_NODE_ID",
                id,
                "must be at most 64 letters, digits, `-`, `_` or `.`",
            ));
        }
        if self.store == DataStore::Postgres {
            if database.url.is_none() {
                return Err(ConfigError::invalid("QUDAG_STORE", "postgres", "needs QUDAG_DATABASE_URL"));
            }
            if self.key_file.is_none() {
                return Err(ConfigError::invalid(
                    "QUDAG_STORE",
                    "postgres",
                    "needs QUDAG_KEY_FILE: with ephemeral keys, stored vault entries could not be opened after a restart",
                ));
            }
        }
        Ok(())
    }
}
