//! PostgreSQL adapters of the QuDAG MCP server's ports, with SeaORM: state every node
//! behind a load balancer shares and that outlives restarts.
//!
//! | adapter | port | table |
//! |---|---|---|
//! | [`PostgresVaultStore`] | `VaultStore` | `vault_entries` |
//! | [`PostgresNameRegistry`] | `NameRegistry` | `name_records` |
//! | [`PostgresAuditSink`] | `AuditSink`, `AuditQuery`, `HealthIndicator` | `audit_events` |
//! | [`PostgresHealth`] | `HealthIndicator` | — (`SELECT 1`) |
//!
//! One pool per process ([`connect`]); the schema comes from `qudag-postgres-migration`
//! ([`migrate`], safe to run at every start). Backend failures cross the ports as
//! `Unavailable` with a [`PgError`] as the source; there are no capacity limits. The audit
//! sink never refuses for an outage: it spools to a local file ([`PgAuditConfig::spool`]).
#![deny(missing_docs)]

mod audit;
mod audit_verify;
mod config;
mod entity;
mod error;
mod health;
mod name_registry;
mod vault_store;

pub use audit::{PgAuditConfig, PostgresAuditSink};
pub use audit_verify::{
    BrokenRow, ChainReport, PruneReport, RowBreak, prune_database, verify_database, verify_database_expecting,
};
pub use config::{PgOptions, connect};
pub use error::PgError;
pub use health::PostgresHealth;
pub use name_registry::PostgresNameRegistry;
/// How connection URLs are shown in errors and logs (the server's one redaction rule).
pub use qudag_domain::redact::redact_url;
pub use qudag_postgres_migration::{Migrator, MigratorTrait, migrate};
pub use sea_orm::{DatabaseConnection, DbErr};
pub use vault_store::PostgresVaultStore;
