//! A stand-in OpenTelemetry collector for `bench/otlp.sh`: receives OTLP/gRPC traces on a
//! loopback port, prints `port=N` once listening and `spans=N` (the spans received) when
//! it gets SIGTERM.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[path = "../tests/support/collector.rs"]
mod collector;

#[tokio::main]
async fn main() {
    let (port, mut exports) = collector::start().await;
    println!("port={port}");
    let spans = Arc::new(AtomicU64::new(0));
    let counted = spans.clone();
    tokio::spawn(async move {
        while let Some(export) = exports.recv().await {
            let n: usize = export.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
            counted.fetch_add(n as u64, Ordering::Relaxed);
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    term.recv().await;
    println!("spans={}", spans.load(Ordering::Relaxed));
}
