//! PostgreSQL schema migrations of the QuDAG MCP server.
//!
//! One module per migration, named `mNNNN_<what>`, listed in order in
//! [`Migrator::migrations`]; adding one is a new file plus one line there. sea-orm-migration
//! records applied migrations in `seaql_migrations` (in the connection's schema), so
//! [`migrate`] can run at every start: it applies only what is pending.
//!
//! | migration | creates |
//! |---|---|
//! | [`m0001_vault_and_names`] | `vault_entries`, `name_records` |
//! | [`m0002_audit_events`] | `audit_events` |
//!
//! Conventions for new migrations: plain PostgreSQL DDL with `IF NOT EXISTS`, timestamps as
//! `bigint` microseconds since the Unix epoch (`qudag_domain::Timestamp`), constraint and
//! index names spelled out (adapters map errors by constraint name). Migrations run inside
//! one transaction (see [`migrate`]), so `CREATE INDEX CONCURRENTLY` is not available.
#![deny(missing_docs)]

pub mod m0001_vault_and_names;
pub mod m0002_audit_events;

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DatabaseConnection, Statement, TransactionTrait};

/// Every migration of the server's schema, in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_vault_and_names::Migration),
            Box::new(m0002_audit_events::Migration),
            // Next: Box::new(m0003_<what>::Migration),
        ]
    }
}

/// Apply every pending migration to the schema the connection's `search_path` selects.
///
/// Safe to run at every start and from several nodes at once: the whole run is one
/// transaction holding a transaction-level advisory lock keyed on the current schema, so
/// concurrent runs queue and the later ones find nothing pending. A run that fails leaves
/// the schema as it was.
///
/// # Errors
/// The database error, or [`DbErr::Custom`] when the `search_path` names no existing schema
/// (create the schema first), or [`DbErr::Custom`] naming an applied migration this build
/// does not know (a newer build migrated the database).
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    let row = txn.query_one_raw(Statement::from_string(backend, "SELECT current_schema() AS schema")).await?;
    let schema: Option<String> = match row {
        Some(row) => row.try_get("", "schema")?,
        None => None,
    };
    let Some(schema) = schema else {
        return Err(DbErr::Custom(
            "cannot migrate: the connection's search_path names no existing schema (create the schema first)".into(),
        ));
    };
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        [format!("qudag-migrate:{schema}").into()],
    ))
    .await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await
}

/// Run `statements` in order on the migration's connection.
async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for sql in statements {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}
