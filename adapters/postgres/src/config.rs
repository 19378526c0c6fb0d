//! `PgOptions` and [`connect`]: one connection pool per process.

use std::time::Duration;

use qudag_domain::redact::redact_url;
use sea_orm::DatabaseConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _};

use crate::error::PgError;

/// Pooled connections idle at least this long are pinged before use; fresher ones are not
/// (a ping on every checkout would double the round trips).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);

/// How the pool behaves. Build with [`PgOptions::default`] and the setters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgOptions {
    /// Most connections the pool opens (default 10).
    pub max_connections: u32,
    /// How long getting a connection may take, opening one included (default 5 s). Past it,
    /// [`connect`] fails and a port method reports its backend `Unavailable`; refused
    /// connections are retried with backoff until then.
    pub connect_timeout: Duration,
    /// The schema every connection uses (its `search_path`), or the server's default
    /// (`"$user", public`). It must exist: create it before migrating. A plain lowercase
    /// identifier (letters, digits, `_`).
    pub schema: Option<String>,
    /// PostgreSQL's `statement_timeout` for every statement, if any (default none).
    pub statement_timeout: Option<Duration>,
    /// Open no connection until the first use (default `false`: [`connect`] opens one, so a
    /// wrong URL or an unreachable server fails at start-up).
    pub lazy: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            connect_timeout: Duration::from_secs(5),
            schema: None,
            statement_timeout: None,
            lazy: false,
        }
    }
}

impl PgOptions {
    /// With at most `n` connections (at least 1).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// With this connect (and connection-wait) timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Using `schema` as every connection's `search_path`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// With this `statement_timeout`.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Opening connections only when first needed (`true`) or at [`connect`] (`false`).
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }
}

/// Whether `schema` is a plain lowercase identifier PostgreSQL takes without quoting.
fn valid_schema(schema: &str) -> bool {
    let bytes = schema.as_bytes();
    (1..=63).contains(&bytes.len())
        && !bytes[0].is_ascii_digit()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

/// A pool of connections to the PostgreSQL at `url`
/// (`postgres://user:password@host:port/database?sslmode=…`).
///
/// TLS is negotiated as the URL's `sslmode` says (default `prefer`), with rustls on
/// aws-lc-rs. Statement logging is off (statements are recorded in tracing spans instead).
///
/// # Errors
/// [`PgError::Url`], [`PgError::Schema`], and unless `options.lazy`, [`PgError::Connect`]
/// when no connection could be opened within `options.connect_timeout`. Errors show the
/// URL with its password redacted.
pub async fn connect(url: &str, options: PgOptions) -> Result<DatabaseConnection, PgError> {
    let shown = redact_url(url);
    let mut connect_options: PgConnectOptions =
        url.parse().map_err(|source| PgError::Url { url: shown.clone(), source })?;
    connect_options = connect_options.disable_statement_logging();
    if connect_options.get_application_name().is_none() {
        connect_options = connect_options.application_name("qudag-mcp");
    }
    if let Some(schema) = &options.schema {
        if !valid_schema(schema) {
            return Err(PgError::Schema { schema: schema.clone() });
        }
        connect_options = connect_options.options([("search_path", schema)]);
    }
    if let Some(timeout) = options.statement_timeout {
        connect_options = connect_options.options([("statement_timeout", format!("{}ms", timeout.as_millis()))]);
    }
    let pool_options = PgPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.connect_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        });
    let pool = if options.lazy {
        pool_options.connect_lazy_with(connect_options)
    } else {
        pool_options.connect_with(connect_options).await.map_err(|source| PgError::Connect {
            url: shown,
            timeout: options.connect_timeout,
            source,
        })?
    };
    tracing::debug!(
        url = %redact_url(url),
        max_connections = options.max_connections,
        schema = options.schema.as_deref().unwrap_or("(default)"),
        "PostgreSQL pool ready"
    );
    Ok(DatabaseConnection::from(pool))
}

#[cfg(test)]
mod tests {
    use super::valid_schema;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema("qudag"));
        assert!(valid_schema("t_0123abcd"));
        assert!(valid_schema("_x"));
        assert!(!valid_schema(""));
        assert!(!valid_schema("1abc"));
        assert!(!valid_schema("Upper"));
        assert!(!valid_schema("a;drop"));
        assert!(!valid_schema("a b"));
        assert!(!valid_schema(&"a".repeat(64)));
    }
}
