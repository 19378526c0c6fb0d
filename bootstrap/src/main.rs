//! `qudag-mcp`: see `qudag-mcp --help`.

use std::process::ExitCode;

use clap::Parser;
use qudag_mcp::cli::{AuditCommand, Cli, Command};
use qudag_mcp::settings::{self, FlagOverrides, Settings};
use qudag_mcp::{App, VERSION, telemetry};

// A request allocates many small, short-lived objects (JSON values, headers, futures);
// mimalloc serves them markedly faster than the system allocator under concurrency.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for configuration errors (as for command-line usage errors).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    qudag_mcp::install_crypto_provider();
    let cli = Cli::parse();
    match &cli.command {
        Command::Openapi { output } => openapi(output.as_deref()),
        Command::CheckConfig => match load(&cli) {
            Ok(settings) => {
                if let Err(error) = telemetry::trace_export(|name| std::env::var(name).ok()) {
                    eprintln!("error: {error}");
                    return ExitCode::from(EXIT_CONFIG);
                }
                println!("# configuration is valid\n{}", settings.to_toml());
                let limits = &settings.rate_limit;
                if limits.burst.is_none() && limits.requests_per_minute > 0 {
                    println!(
                        "# rate_limit.burst is not set: {} (a minute of requests_per_minute, at most {})",
                        limits.effective_burst(),
                        settings::MAX_DEFAULT_BURST
                    );
                }
                for name in settings::unknown_variables(std::env::vars()) {
                    eprintln!("warning: unknown variable {name} is ignored");
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Serve { fixtures, dev } => {
            let flags =
                FlagOverrides { dev_mode: *dev, fixtures: fixtures.is_some(), ..FlagOverrides::from(&cli.overrides) };
            match load_with(&cli, &flags) {
                Ok(settings) => serve(settings, *fixtures),
                Err(code) => code,
            }
        }
        Command::Audit { command: AuditCommand::Verify { paths, database, public_key, expect_head, node } } => {
            let key = match checkpoint_key(public_key.as_deref()) {
                Ok(key) => key,
                Err(code) => return code,
            };
            match database {
                Some(url) => {
                    let expected = match (expect_head, node) {
                        (None, _) => None,
                        (Some(head), Some(node)) => Some((node.as_str(), *head)),
                        (Some(_), None) => {
                            eprintln!(
                                "error: with --database, --expect-head needs --node NODE: each node keeps its own chain"
                            );
                            return ExitCode::from(EXIT_CONFIG);
                        }
                    };
                    audit_verify_database(url, key.as_ref(), expected)
                }
                None => audit_verify(paths, key.as_ref(), *expect_head),
            }
        }
        Command::Migrate { database } => match load(&cli) {
            Ok(settings) => migrate(database.clone().or(settings.database.url.clone())),
            Err(code) => code,
        },
        Command::DevToken { roles, scope, subject, ttl_secs } => {
            let flags = FlagOverrides { dev_mode: true, ..FlagOverrides::from(&cli.overrides) };
            match load_with(&cli, &flags) {
                Ok(settings) => dev_token(&settings, roles, scope.as_deref(), subject.as_deref(), *ttl_secs),
                Err(code) => code,
            }
        }
    }
}

fn load(cli: &Cli) -> Result<Settings, ExitCode> {
    load_with(cli, &FlagOverrides::from(&cli.overrides))
}

fn load_with(cli: &Cli, flags: &FlagOverrides) -> Result<Settings, ExitCode> {
    let path = settings::config_path(cli.config.clone(), std::env::vars());
    Settings::load(path.as_deref(), std::env::vars(), flags).map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn dev_token(settings: &Settings, roles: &[String], scope: Option<&str>, subject: Option<&str>, ttl: u64) -> ExitCode {
    match qudag_mcp::dev::token(settings, roles, scope, subject, ttl) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// The checkpoint verification key given by `--public-key`, if any.
fn checkpoint_key(public_key: Option<&str>) -> Result<Option<qudag_domain::audit::CheckpointKey>, ExitCode> {
    use base64::Engine as _;
    let Some(text) = public_key else { return Ok(None) };
    match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
        Ok(bytes) if bytes.len() == qudag_domain::pqc::DsaAlgorithm::MlDsa65.verifying_key_len() => {
            Ok(Some(qudag_domain::audit::CheckpointKey {
                algorithm: qudag_domain::pqc::DsaAlgorithm::MlDsa65,
                verifying_key: bytes,
            }))
        }
        _ => {
            eprintln!("error: --public-key must be the base64 ML-DSA-65 verification key (1952 bytes)");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

fn audit_verify(
    paths: &[std::path::PathBuf],
    key: Option<&qudag_domain::audit::CheckpointKey>,
    expect_head: Option<qudag_adapter_file::ExpectedHead>,
) -> ExitCode {
    match qudag_adapter_file::verify_expecting(paths, key, expect_head) {
        Ok(report) if report.is_intact() => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Ok(report) => {
            println!("{report}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// A runtime for a one-shot database command.
#[cfg(feature = "postgres")]
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|error| {
        eprintln!("error: cannot start the async runtime: {error}");
        ExitCode::FAILURE
    })
}

/// `audit verify --database URL`: one line per node; exit 1 if any chain is broken.
#[cfg(feature = "postgres")]
fn audit_verify_database(
    url: &str,
    key: Option<&qudag_domain::audit::CheckpointKey>,
    expected: Option<(&str, qudag_domain::audit::ExpectedHead)>,
) -> ExitCode {
    let redacted = qudag_adapter_postgres::redact_url(url);
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let reports = runtime.block_on(async {
        let db = qudag_adapter_postgres::connect(url, qudag_adapter_postgres::PgOptions::default()).await?;
        qudag_adapter_postgres::verify_database_expecting(&db, key, expected).await
    });
    match reports {
        Ok(reports) if reports.is_empty() => {
            println!("{redacted}: no audit events");
            ExitCode::SUCCESS
        }
        Ok(reports) => {
            for report in &reports {
                println!("{report}");
            }
            if reports.iter().all(qudag_adapter_postgres::ChainReport::is_intact) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("error: {redacted}: {error}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

#[cfg(not(feature = "postgres"))]
fn audit_verify_database(
    _url: &str,
    _key: Option<&qudag_domain::audit::CheckpointKey>,
    _expected: Option<(&str, qudag_domain::audit::ExpectedHead)>,
) -> ExitCode {
    eprintln!(
        "error: `audit verify --database` needs the `postgres` cargo feature, which this build of qudag-mcp does not include"
    );
    ExitCode::from(EXIT_CONFIG)
}

#[cfg(feature = "postgres")]
fn migrate(url: Option<String>) -> ExitCode {
    let Some(url) = url else {
        eprintln!("error: no database: give --database URL or set QUDAG_DATABASE_URL");
        return ExitCode::from(EXIT_CONFIG);
    };
    let redacted = qudag_adapter_postgres::redact_url(&url);
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = runtime.block_on(async {
        let db = qudag_adapter_postgres::connect(&url, qudag_adapter_postgres::PgOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        qudag_adapter_postgres::migrate(&db).await.map_err(|e| format!("migrations failed: {e}"))
    });
    match result {
        Ok(()) => {
            println!("{redacted}: schema is current");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {redacted}: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "postgres"))]
fn migrate(_url: Option<String>) -> ExitCode {
    eprintln!("error: `migrate` needs the `postgres` cargo feature, which this build of qudag-mcp does not include");
    ExitCode::from(EXIT_CONFIG)
}

fn openapi(output: Option<&std::path::Path>) -> ExitCode {
    let spec = qudag_adapter_http::openapi_json(VERSION) + "\n";
    match output {
        None => {
            print!("{spec}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, spec) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: cannot write {}: {error}", path.display());
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(settings: Settings, fixtures: Option<qudag_mcp::cli::Fixtures>) -> ExitCode {
    let export = match telemetry::trace_export(|name| std::env::var(name).ok()) {
        Ok(export) => export,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The OTLP client runs on the runtime, so it is built inside it.
    let started = runtime.block_on(async { telemetry::Traces::start(&export, settings.tools.node_id.as_deref()) });
    let (traces, layer) = match started {
        Ok(started) => started,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    telemetry::init_with(&settings.logging, telemetry::stdout(), layer);
    if let telemetry::TraceExport::Otlp { endpoint, .. } = &export {
        tracing::info!(%endpoint, "Exporting traces over OTLP");
    }
    for name in settings::unknown_variables(std::env::vars()) {
        tracing::warn!(variable = %name, "Unknown QUDAG_ variable ignored");
    }
    let result = runtime.block_on(async {
        let app = App::build_with(settings, fixtures).await?;
        app.run(qudag_mcp::app::shutdown_signal()).await
    });
    traces.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "Server failed");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
