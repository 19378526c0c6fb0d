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

/// `url` with any password replaced by `***`: in the user-info part
/// (`postgres://user:secret@host`) and in a `password=` query parameter.
///
/// Errs on the side of hiding: everything before the last `@` counts as user info, so an
/// unencoded `/`, `?` or `#` in a password cannot leak it.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => match userinfo.split_once(':') {
            Some((user, _password)) => (format!("{user}:***@"), rest),
            None => (format!("{userinfo}@"), rest),
        },
        None => (String::new(), rest),
    };
    let rest = match rest.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, format!("#{f}")),
                None => (query, String::new()),
            };
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}{fragment}", query.join("&"))
        }
        None => rest.to_owned(),
    };
    format!("{scheme}{userinfo}{rest}")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:s3cret@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redact_url("postgres://u:p@ss@db/x?sslmode=require"), "postgres://u:***@db/x?sslmode=require");
        assert_eq!(
            redact_url("postgres://u@db/x?password=s3cret&sslmode=disable"),
            "postgres://u@db/x?password=***&sslmode=disable"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
        assert_eq!(redact_url("postgresql://u:s3cret@[::1]:5432"), "postgresql://u:***@[::1]:5432");
        assert_eq!(redact_url("postgres://u:pa/ss?x@db/x"), "postgres://u:***@db/x");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
