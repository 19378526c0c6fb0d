//! An OpenTelemetry collector for tests and benchmarks: an OTLP/gRPC trace receiver on a
//! loopback port, in plaintext or TLS, that hands every export to its owner.

#![allow(dead_code)] // each user takes a part

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use tokio::sync::mpsc;

struct Receiver(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serve OTLP/gRPC on a loopback port: the port, and the exports as they arrive.
///
/// # Panics
/// When no loopback port can be bound.
pub async fn start() -> (u16, mpsc::UnboundedReceiver<ExportTraceServiceRequest>) {
    serve(None).await
}

/// [`start`] over TLS with `config` (which must offer ALPN `h2`).
///
/// # Panics
/// As [`start`].
pub async fn start_tls(
    config: std::sync::Arc<rustls::ServerConfig>,
) -> (u16, mpsc::UnboundedReceiver<ExportTraceServiceRequest>) {
    serve(Some(tokio_rustls::TlsAcceptor::from(config))).await
}

async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> (u16, mpsc::UnboundedReceiver<ExportTraceServiceRequest>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let port = listener.local_addr().expect("bound").port();
    let (tx, rx) = mpsc::unbounded_channel();
    let service = TraceServiceServer::new(Receiver(tx));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            let tls = tls.clone();
            tokio::spawn(async move {
                let h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                let _ = match tls {
                    // A failed handshake (an untrusting client) just ends the connection.
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(stream) => h2.serve_connection(TokioIo::new(stream), service).await,
                        Err(_) => return,
                    },
                    None => h2.serve_connection(TokioIo::new(stream), service).await,
                };
            });
        }
    });
    (port, rx)
}
