//! `PgError`: what can go wrong in the PostgreSQL adapters, and how it crosses the ports.

use std::time::Duration;

use qudag_application::ports::{NameRegistryError, VaultStoreError};
use sea_orm::{DbErr, RuntimeErr};

/// Failures of the PostgreSQL adapters. Through a port they arrive as `Unavailable`, with
/// this as the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The URL cannot be parsed (it is shown with its password redacted).
    #[error("invalid PostgreSQL URL {url}: {source}")]
    Url {
        /// The URL, password redacted.
        url: String,
        /// Why it was refused.
        #[source]
        source: sqlx::Error,
    },
    /// The schema name is not a plain lowercase identifier.
    #[error(
        "invalid PostgreSQL schema name {schema:?}: use 1 to 63 lowercase ASCII letters, digits and underscores, \
         not starting with a digit"
    )]
    Schema {
        /// The name given.
        schema: String,
    },
    /// No connection could be opened (it is shown with its password redacted).
    #[error("cannot connect to PostgreSQL at {url} (timeout {timeout:?}): {source}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// The connect timeout in force.
        timeout: Duration,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// A statement failed, or no connection could be had for it.
    #[error("PostgreSQL {operation} failed: {source}")]
    Query {
        /// What was being done, e.g. `vault_entries insert`.
        operation: &'static str,
        /// The database's or the pool's error.
        #[source]
        source: DbErr,
    },
    /// A stored row breaks the schema's rules (edited outside the server).
    #[error("invalid row in PostgreSQL: {what}")]
    Corrupt {
        /// What is wrong with it.
        what: String,
    },
    /// The audit spool file cannot be used.
    #[error("audit spool: {0}")]
    Spool(String),
    /// The health probe did not answer in time.
    #[error("PostgreSQL did not answer within {0:?}")]
    Timeout(Duration),
}

impl PgError {
    /// A `Query` error for `operation`.
    pub(crate) fn query(operation: &'static str) -> impl FnOnce(DbErr) -> Self {
        move |source| Self::Query { operation, source }
    }
}

impl From<PgError> for VaultStoreError {
    fn from(e: PgError) -> Self {
        Self::Unavailable { source: Box::new(e) }
    }
}

impl From<PgError> for NameRegistryError {
    fn from(e: PgError) -> Self {
        Self::Unavailable { source: Box::new(e) }
    }
}

/// The name of the unique constraint (or unique index) `err` violates, if that is what it is.
pub(crate) fn violated_unique_constraint(err: &DbErr) -> Option<&str> {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err else {
        return None;
    };
    match e.as_ref() {
        sqlx::Error::Database(db) if db.is_unique_violation() => db.constraint(),
        _ => None,
    }
}
