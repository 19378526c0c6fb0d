//! `vault_entries` (sealed vault entries) and `name_records` (signed `.dark` name records).
//!
//! Timestamps are `bigint` microseconds since the Unix epoch, exactly
//! `qudag_domain::Timestamp` (values past `i64::MAX`, year 294247, are stored as `i64::MAX`).
//! Ids collate as `"C"` (bytewise), so keyset pagination by id matches Rust's string order.

use sea_orm_migration::prelude::*;

/// Creates `vault_entries` and `name_records`.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    r#"CREATE TABLE IF NOT EXISTS vault_entries (
        id          text COLLATE "C" NOT NULL,
        owner       text NOT NULL,
        label       text NOT NULL,
        category    text,
        tags        text[] NOT NULL DEFAULT '{}',
        algorithm   text NOT NULL,
        key_id      text NOT NULL,
        envelope    bytea NOT NULL,
        size        bigint NOT NULL,
        created_at  bigint NOT NULL,
        expires_at  bigint,
        CONSTRAINT vault_entries_pkey PRIMARY KEY (id),
        CONSTRAINT vault_entries_size_check CHECK (size >= 0),
        CONSTRAINT vault_entries_created_at_check CHECK (created_at >= 0),
        CONSTRAINT vault_entries_expires_at_check CHECK (expires_at >= 0)
    )"#,
    // One row per (owner, label), live or expired: the adapter deletes an expired holder of
    // the label in the same transaction before inserting, and a concurrent insert of the
    // same label fails on this index.
    "CREATE UNIQUE INDEX IF NOT EXISTS vault_entries_owner_label_key ON vault_entries (owner, label)",
    "CREATE INDEX IF NOT EXISTS vault_entries_owner_id_idx ON vault_entries (owner, id)",
    "CREATE TABLE IF NOT EXISTS name_records (
        name                 text NOT NULL,
        address              text NOT NULL,
        public_key           bytea NOT NULL,
        key_algorithm        text NOT NULL,
        owner                text NOT NULL,
        registered_at        bigint NOT NULL,
        expires_at           bigint NOT NULL,
        signature_algorithm  text NOT NULL,
        signer_key_id        text NOT NULL,
        signature            bytea NOT NULL,
        CONSTRAINT name_records_pkey PRIMARY KEY (name),
        CONSTRAINT name_records_registered_at_check CHECK (registered_at >= 0),
        CONSTRAINT name_records_expires_at_check CHECK (expires_at >= 0)
    )",
    "CREATE INDEX IF NOT EXISTS name_records_expires_at_idx ON name_records (expires_at)",
];

const DOWN: &[&str] = &["DROP TABLE IF EXISTS name_records", "DROP TABLE IF EXISTS vault_entries"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(manager, DOWN).await
    }
}
