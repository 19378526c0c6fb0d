//! `audit_events`: the audit trail, one hash chain per node.
//!
//! A row is one `ChainedEvent`: `record` holds the record's canonical JSON exactly as the
//! chain hash covers it, so verification recomputes the hash from stored bytes; `at`,
//! `action`, `outcome` and `actor` repeat the record's fields for the query indexes (a
//! verifier checks they agree with `record`). `id` orders rows as they were written and is
//! the query cursor. Timestamps are `bigint` microseconds since the Unix epoch.

use sea_orm_migration::prelude::*;

/// Creates `audit_events` and its indexes.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    r#"CREATE TABLE IF NOT EXISTS audit_events (
        id         bigint GENERATED ALWAYS AS IDENTITY,
        node       text COLLATE "C" NOT NULL,
        seq        bigint NOT NULL,
        at         bigint NOT NULL,
        action     text NOT NULL,
        outcome    text NOT NULL,
        actor      text,
        record     text NOT NULL,
        prev_hash  text NOT NULL,
        hash       text NOT NULL,
        CONSTRAINT audit_events_pkey PRIMARY KEY (id),
        CONSTRAINT audit_events_node_seq_key UNIQUE (node, seq),
        CONSTRAINT audit_events_seq_check CHECK (seq >= 0)
    )"#,
    "CREATE INDEX IF NOT EXISTS audit_events_at_idx ON audit_events (at, id)",
    "CREATE INDEX IF NOT EXISTS audit_events_actor_idx ON audit_events (actor, id)",
    "CREATE INDEX IF NOT EXISTS audit_events_action_idx ON audit_events (action, id)",
];

const DOWN: &[&str] = &["DROP TABLE IF EXISTS audit_events"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(manager, DOWN).await
    }
}
