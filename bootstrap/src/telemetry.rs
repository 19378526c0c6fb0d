//! Logging and traces: `tracing` with a text or JSON formatter, filtered by `QUDAG_LOG_LEVEL`,
//! and (cargo feature `otlp`) the server's spans exported over OTLP as the standard `OTEL_*`
//! variables ask.

use std::io::Write;

use qudag_domain::redact::redact_url;
pub use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::settings::{LogFormat, LoggingSettings};

/// A layer of the global subscriber.
pub type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync + 'static>;

/// Install the global subscriber writing logs to `writer` (stdout in production; a buffer in
/// tests). Returns `false` if a subscriber was already installed.
pub fn init<W>(settings: &LoggingSettings, writer: W) -> bool
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    init_with(settings, writer, None)
}

/// [`init`], with `traces` (an exporting layer with its own filter) beside the log formatter.
pub fn init_with<W>(settings: &LoggingSettings, writer: W, traces: Option<BoxedLayer>) -> bool
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // The level was validated with the settings, so this parse cannot fail in practice;
    // fall back to `info` rather than run without logs.
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    // The log level filters the log lines only: exported spans keep their own filter, so
    // `QUDAG_LOG_LEVEL=warn` does not switch tracing off.
    let logs: BoxedLayer = match settings.format {
        LogFormat::Json => {
            fmt.json().flatten_event(true).with_current_span(true).with_span_list(false).with_filter(filter).boxed()
        }
        LogFormat::Text => fmt.with_ansi(false).with_filter(filter).boxed(),
    };
    let layers: Vec<BoxedLayer> = std::iter::once(logs).chain(traces).collect();
    tracing_subscriber::registry().with(layers).try_init().is_ok()
}

/// What the standard OpenTelemetry variables ask of trace export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceExport {
    /// No export: no endpoint is set, `OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true`.
    Off,
    /// Export over OTLP/gRPC to `endpoint`.
    Otlp {
        /// The collector's address (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
        /// `OTEL_EXPORTER_OTLP_ENDPOINT`).
        endpoint: String,
        /// For an `https://` endpoint: what the connection trusts and presents.
        tls: Option<CollectorTls>,
    },
}

/// A file named by a variable: the variable (for messages) and the path.
pub type NamedFile = (&'static str, std::path::PathBuf);

/// TLS to the collector: the system's trust roots, plus these files when given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectorTls {
    /// PEM CA certificates to trust besides the system's (`OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE`).
    pub certificate: Option<NamedFile>,
    /// PEM client certificate and key, for a collector that verifies clients
    /// (`OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE`, `…_CLIENT_KEY`).
    pub client: Option<(NamedFile, NamedFile)>,
}

/// Read the standard `OTEL_*` variables through `var`. Export is on only when an endpoint is
/// set (an unset endpoint means "no collector", not the SDK default `localhost:4317`).
///
/// # Errors
/// A value this server cannot honour, named with the variable: an exporter other than `otlp`
/// or `none`, a protocol other than `grpc`, an endpoint that is neither `http://` nor
/// `https://`, a client certificate without its key (or the reverse), TLS files for a
/// plaintext endpoint.
pub fn trace_export(var: impl Fn(&str) -> Option<String>) -> Result<TraceExport, String> {
    let var = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(TraceExport::Off);
    }
    match var("OTEL_TRACES_EXPORTER").as_deref() {
        None | Some("otlp") => {}
        Some("none") => return Ok(TraceExport::Off),
        Some(other) => {
            return Err(format!("OTEL_TRACES_EXPORTER={other:?}: this server exports traces with `otlp` (or `none`)"));
        }
    }
    let endpoint = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
        .into_iter()
        .find_map(|name| var(name).map(|value| (name, value)));
    let Some((name, endpoint)) = endpoint else { return Ok(TraceExport::Off) };
    for protocol in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        if let Some(value) = var(protocol) {
            if value != "grpc" {
                return Err(format!("{protocol}={value:?}: this server exports OTLP over gRPC only (`grpc`)"));
            }
            break;
        }
    }
    // The signal-specific file variable wins over the generic one.
    let file = |suffix: &str| -> Option<NamedFile> {
        let names: [&'static str; 2] = match suffix {
            "CERTIFICATE" => ["OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"],
            "CLIENT_CERTIFICATE" => {
                ["OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"]
            }
            _ => ["OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY"],
        };
        names.into_iter().find_map(|name| var(name).map(|path| (name, std::path::PathBuf::from(path))))
    };
    let (certificate, cert, key) = (file("CERTIFICATE"), file("CLIENT_CERTIFICATE"), file("CLIENT_KEY"));
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some((name, _)), None) | (None, Some((name, _))) => {
            return Err(format!(
                "{name} is set alone: a client certificate needs its key \
                 (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY)"
            ));
        }
    };
    if endpoint.starts_with("https://") {
        return Ok(TraceExport::Otlp { endpoint, tls: Some(CollectorTls { certificate, client }) });
    }
    let shown = redact_url(&endpoint);
    if !endpoint.starts_with("http://") {
        return Err(format!("{name}={shown:?}: the collector endpoint is `http://host:port` or `https://host:port`"));
    }
    if let Some((file, _)) = certificate.or(client.map(|(cert, _)| cert)) {
        return Err(format!("{file} is set but {name}={shown:?} is plaintext: use an `https://` endpoint"));
    }
    Ok(TraceExport::Otlp { endpoint, tls: None })
}

/// The trace exporter, once running: flush it with [`Traces::shutdown`] before the process
/// exits so the last spans are not lost.
#[derive(Debug, Default)]
pub struct Traces {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Traces {
    /// Start exporting as `export` asks: an exporting layer for [`init_with`]. Call inside the
    /// Tokio runtime (the gRPC client runs on it). `instance` names this node
    /// (`service.instance.id`, from `QUDAG_NODE_ID`).
    ///
    /// # Errors
    /// The exporter cannot be built, or export is asked of a build without the `otlp` feature.
    pub fn start(export: &TraceExport, instance: Option<&str>) -> Result<(Self, Option<BoxedLayer>), String> {
        match export {
            TraceExport::Off => Ok((Self::default(), None)),
            #[cfg(feature = "otlp")]
            TraceExport::Otlp { tls, .. } => {
                let (provider, layer) = otlp::start(tls.as_ref(), instance)?;
                Ok((Self { provider: Some(provider) }, Some(layer)))
            }
            #[cfg(not(feature = "otlp"))]
            TraceExport::Otlp { endpoint, .. } => {
                let _ = instance;
                Err(format!(
                    "an OTLP endpoint is set ({}) but this build of qudag-mcp has no `otlp` cargo feature",
                    redact_url(endpoint)
                ))
            }
        }
    }

    /// Export the spans still queued and stop the exporter.
    pub fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("warning: the last spans could not be exported: {error}");
        }
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    use opentelemetry::KeyValue;
    use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
    use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
    use opentelemetry_otlp::WithTonicConfig as _;
    use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use qudag_application::tracecontext::{RemoteContext, TraceContinuation};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::{LevelFilter, Targets};

    use super::{BoxedLayer, CollectorTls};

    /// The exporter, its provider and the layer turning this server's spans into OTLP spans.
    pub(super) fn start(
        tls: Option<&CollectorTls>,
        instance: Option<&str>,
    ) -> Result<(SdkTracerProvider, BoxedLayer), String> {
        // The exporter reads the `OTEL_EXPORTER_OTLP_*` variables itself (endpoint, headers,
        // timeout, compression); the batch processor reads `OTEL_BSP_*`.
        let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
        if let Some(tls) = tls {
            builder = builder.with_tls_config(tls_config(tls)?);
        }
        let exporter = builder.build().map_err(|e| format!("the OTLP exporter cannot be built: {e}"))?;
        let mut resource = Resource::builder();
        let named_by_env = std::env::var_os("OTEL_SERVICE_NAME").is_some()
            || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
        if !named_by_env {
            resource = resource.with_service_name("qudag-mcp");
        }
        resource = resource.with_attribute(KeyValue::new("service.version", crate::VERSION));
        if let Some(instance) = instance {
            resource = resource.with_attribute(KeyValue::new("service.instance.id", instance.to_owned()));
        }
        let resource = resource.build();
        let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
        let tracer = provider.tracer("qudag-mcp");
        // The server's own spans (HTTP requests, MCP operations, tool calls), whatever the
        // log level; the libraries' spans stay out.
        let filter = Targets::new().with_target("qudag", LevelFilter::INFO).with_default(LevelFilter::OFF);
        // Busy/idle time, thread and source-location attributes are left out: the first costs
        // two clock reads each time a request's future is polled, and none is in the
        // semantic conventions for HTTP or MCP.
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_filter(filter)
            .boxed();
        qudag_application::tracecontext::install(Box::new(W3cTraceContext(TraceContextPropagator::new())));
        Ok((provider, layer))
    }

    /// The system's trust roots, plus the configured CA and client identity.
    fn tls_config(tls: &CollectorTls) -> Result<ClientTlsConfig, String> {
        let read = |(name, path): &super::NamedFile| {
            std::fs::read(path).map_err(|e| format!("{name}={}: cannot read it: {e}", path.display()))
        };
        let mut config = ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = &tls.certificate {
            config = config.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let Some((cert, key)) = &tls.client {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(config)
    }

    /// Continues W3C Trace Context parents.
    #[derive(Debug)]
    struct W3cTraceContext(TraceContextPropagator);

    impl TraceContinuation for W3cTraceContext {
        fn continue_trace(&self, span: &tracing::Span, remote: RemoteContext<'_>) {
            let parent = self.0.extract(&Carrier(remote));
            // A malformed traceparent extracts to an empty context: keep the local parent.
            if parent.span().span_context().is_valid() {
                let _ = span.set_parent(parent);
            }
        }
    }

    struct Carrier<'a>(RemoteContext<'a>);

    impl Extractor for Carrier<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            match key {
                "traceparent" => self.0.traceparent,
                "tracestate" => self.0.tracestate,
                _ => None,
            }
        }

        fn keys(&self) -> Vec<&str> {
            vec!["traceparent", "tracestate"]
        }
    }
}

/// A writer for [`init`] that writes each log line to stdout and never panics when stdout
/// is closed.
pub fn stdout() -> impl for<'a> MakeWriter<'a> + Send + Sync + 'static {
    || StdoutLine
}

/// Stdout, ignoring write errors (a closed pipe must not take the server down).
#[derive(Debug)]
pub struct StdoutLine;

impl Write for StdoutLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stdout().lock().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stdout().flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn export(vars: &[(&str, &str)]) -> Result<TraceExport, String> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        trace_export(|name| vars.get(name).cloned())
    }

    #[test]
    fn export_is_off_without_an_endpoint_or_when_disabled() {
        assert_eq!(export(&[]), Ok(TraceExport::Off));
        assert_eq!(export(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]), Ok(TraceExport::Off));
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        assert_eq!(export(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")]), Ok(TraceExport::Off));
        assert_eq!(export(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]), Ok(TraceExport::Off));
    }

    #[test]
    fn the_traces_endpoint_wins_over_the_generic_one() {
        let got = export(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ("OTEL_TRACES_EXPORTER", "otlp"),
        ]);
        assert_eq!(got, Ok(TraceExport::Otlp { endpoint: "http://traces:4317".into(), tls: None }));
    }

    #[test]
    fn values_the_server_cannot_honour_are_named() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        let err = export(&[endpoint, ("OTEL_TRACES_EXPORTER", "zipkin")]).expect_err("zipkin is refused");
        assert!(err.contains("OTEL_TRACES_EXPORTER=\"zipkin\""), "{err}");
        let err = export(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).expect_err("http is refused");
        assert!(err.contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"http/protobuf\""), "{err}");
        // The signal-specific protocol decides when both are set.
        let ok = export(&[
            endpoint,
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ]);
        assert!(ok.is_ok(), "{ok:?}");
        let err = export(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://collector:4317")]).expect_err("an unknown scheme");
        assert!(err.contains("OTEL_EXPORTER_OTLP_ENDPOINT=\"grpc://collector:4317\""), "{err}");
        let err = export(&[endpoint, ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem")]).expect_err("TLS files for http");
        assert!(err.contains("OTEL_EXPORTER_OTLP_CERTIFICATE is set but"), "{err}");
        let https = ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317");
        let err = export(&[https, ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem")]).expect_err("a key alone");
        assert!(err.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY is set alone"), "{err}");
    }

    #[test]
    fn an_https_endpoint_takes_its_files_the_traces_ones_first() {
        let got = export(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/generic-ca.pem"),
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/traces-ca.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/client.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/client.key"),
        ]);
        let tls = CollectorTls {
            certificate: Some(("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/traces-ca.pem".into())),
            client: Some((
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/client.pem".into()),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/client.key".into()),
            )),
        };
        assert_eq!(got, Ok(TraceExport::Otlp { endpoint: "https://collector:4317".into(), tls: Some(tls) }));
    }
}
