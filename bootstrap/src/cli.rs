//! The `qudag-mcp` command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::settings::FlagOverrides;

/// QuDAG MCP server: the QuDAG capabilities for AI agents over MCP Streamable HTTP.
///
/// Configuration is layered: built-in defaults, then the TOML file given by --config (or
/// QUDAG_CONFIG), then QUDAG_* environment variables, then flags. See
/// docs/configuration.md for every setting.
#[derive(Debug, Parser)]
#[command(name = "qudag-mcp", version, about, long_about)]
pub struct Cli {
    /// A TOML configuration file (overrides defaults; overridden by QUDAG_* and flags).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Flags that override the environment.
    #[command(flatten)]
    pub overrides: OverrideArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags that override `QUDAG_*` variables.
#[derive(Debug, Args)]
pub struct OverrideArgs {
    /// Address to bind (overrides QUDAG_HOST).
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// Port to listen on (overrides QUDAG_PORT).
    #[arg(long, global = true)]
    pub port: Option<String>,
    /// Log level or filter (overrides QUDAG_LOG_LEVEL).
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// `text` or `json` (overrides QUDAG_LOG_FORMAT).
    #[arg(long, global = true)]
    pub log_format: Option<String>,
}

impl From<&OverrideArgs> for FlagOverrides {
    fn from(a: &OverrideArgs) -> Self {
        Self {
            host: a.host.clone(),
            port: a.port.clone(),
            log_level: a.log_level.clone(),
            log_format: a.log_format.clone(),
            dev_mode: false,
            fixtures: false,
        }
    }
}

/// `qudag-mcp audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check audit files (the file sink's JSON lines; a directory means every audit file
    /// in it), or with `--database` the PostgreSQL sink's table (every node's chain), for
    /// edited, deleted, reordered or truncated records. Exit 0 when every chain is intact,
    /// 1 at the first broken link (printed with file and line, or node, and sequence
    /// number), 2 when the files or the database cannot be read.
    Verify {
        /// Audit files or directories, in any order (they are taken in chain order).
        #[arg(value_name = "PATH", required_unless_present = "database", conflicts_with = "database")]
        paths: Vec<PathBuf>,
        /// Check the PostgreSQL audit table at this URL instead of files
        /// (`postgres://user:password@host:5432/db`; needs the `postgres` cargo feature).
        #[arg(long, value_name = "URL")]
        database: Option<String>,
        /// The server's ML-DSA-65 verification key (base64, as the resource
        /// `qudag://keys/signing` publishes it): also check every checkpoint's signature.
        #[arg(long, value_name = "BASE64")]
        public_key: Option<String>,
        /// A head the trail must reach, as a witness kept it (`expect_head` of the
        /// "Audit checkpoint signed" log line, or a head `verify` printed before): exit 1 when
        /// the trail ends before that seq or has another hash there — records cut off its end
        /// are noticed. With `--database`, also give the node whose chain it is (`--node`).
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<qudag_adapter_file::ExpectedHead>,
        /// With `--database` and `--expect-head`: the node (`QUDAG_NODE_ID`) whose chain must
        /// reach that head; each node keeps its own chain.
        #[arg(long, value_name = "NODE", requires_all = ["database", "expect_head"])]
        node: Option<String>,
    },
}

/// Test fixtures `serve` can offer instead of the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fixtures {
    /// The MCP conformance suite's fixtures.
    Conformance,
    /// One probe tool per permission, for authorization tests.
    Authz,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server until SIGINT or SIGTERM.
    Serve {
        /// Serve a test fixture instead of the QuDAG tools (builds with the matching cargo
        /// feature only). `conformance`: the official MCP conformance suite's tools,
        /// resources and prompts, plus an `echo` tool for benchmarks.
        #[arg(long, value_enum, value_name = "FIXTURE")]
        fixtures: Option<Fixtures>,
        /// Developer mode: trust tokens signed by a local key (created on first use at
        /// QUDAG_DEV_KEY_PATH) instead of an authorization server. Loopback only. Mint
        /// tokens with `qudag-mcp dev-token`.
        #[arg(long)]
        dev: bool,
    },
    /// Print an access token for a server running with `serve --dev`: signed by the local
    /// developer key, for the developer audience (QUDAG_OAUTH2_AUDIENCE, else
    /// `qudag-mcp-dev`).
    DevToken {
        /// Role(s) to grant: admin, developer, operator, auditor, readonly.
        #[arg(long = "role", value_name = "ROLE", required = true)]
        roles: Vec<String>,
        /// Space-separated scopes (default: every scope the roles can use).
        #[arg(long)]
        scope: Option<String>,
        /// The token's subject (default: `dev-<first role>`).
        #[arg(long)]
        subject: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
    },
    /// Print the OpenAPI document of the HTTP endpoints (no socket is bound).
    Openapi {
        /// Write to this file instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Load and validate the configuration, print the effective settings, and exit:
    /// status 0 when valid, 2 with the offending variable and value when not.
    CheckConfig,
    /// Audit trail tools.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Apply the PostgreSQL migrations (also run at every start with QUDAG_STORE=postgres)
    /// and exit: 0 when the schema is current, 1 when it cannot be (the reason is printed).
    /// Needs the `postgres` cargo feature.
    Migrate {
        /// The database (default: QUDAG_DATABASE_URL).
        #[arg(long, value_name = "URL")]
        database: Option<String>,
    },
}
