//! The HTTP edge against hostile clients: bodies bounded on every route while they are read,
//! slow senders that cannot take every connection, DNS rebinding refused on the admin
//! endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use qudag_tests::{spawn_app, spawn_app_with};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection to `server` from the loopback address `from` (any of 127.0.0.0/8).
async fn connect_from(from: &str, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse().expect("an IP address"), 0))?;
    socket.connect(server).await
}

/// Read a response head (and what came with it) until the blank line, the peer closes, or
/// `limit` passes.
async fn read_head(stream: &mut TcpStream, limit: Duration) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Send `request` on a new connection and read the whole answer (the server closes it).
async fn exchange(server: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(server).await.expect("connected");
    stream.write_all(request.as_bytes()).await.expect("request sent");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status(answer: &str) -> u16 {
    answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {answer:?}"))
}

fn json_body(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[tokio::test]
async fn a_declared_oversized_admin_body_gets_413_before_it_is_sent() {
    let app = spawn_app().await;
    // 200 MB announced, not one byte of it sent, no token.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /admin/authz/explain HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 200000000\r\n\r\n",
        app.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_head(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status(&answer), 413, "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_streamed_admin_body_is_cut_at_the_limit_not_buffered_whole() {
    const TOTAL: usize = 64 << 20;
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /admin/authz/explain HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        app.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // 64 MiB of body in 64 KiB chunks, sent as fast as the server takes them, until the
    // answer has come or the connection fails.
    let (sent, answered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let sending = tokio::spawn({
        let (sent, answered) = (sent.clone(), answered.clone());
        async move {
            let chunk = [format!("{:x}\r\n", 64 << 10).into_bytes(), vec![b' '; 64 << 10], b"\r\n".to_vec()].concat();
            while sent.load(Ordering::Relaxed) < TOTAL && !answered.load(Ordering::Relaxed) {
                if writer.write_all(&chunk).await.is_err() {
                    return;
                }
                sent.fetch_add(64 << 10, Ordering::Relaxed);
            }
            let _ = writer.write_all(b"0\r\n\r\n").await;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(20), reader.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buf[..n]),
            other => panic!("no answer: {other:?} after {} bytes", sent.load(Ordering::Relaxed)),
        }
    }
    let sent_when_answered = sent.load(Ordering::Relaxed);
    answered.store(true, Ordering::Relaxed);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert_eq!(status(&answer), 413, "{answer}");
    assert!(
        sent_when_answered < TOTAL / 4,
        "answered only after {sent_when_answered} of {TOTAL} bytes: the body was read far past the limit"
    );
    let _ = sending.await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn over_http2_a_body_without_length_is_cut_at_the_limit_too() {
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::{Bytes, Frame};

    let app = spawn_app().await;
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(tcp);
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.unwrap();
    tokio::spawn(connection);
    // An endless body of 16 KiB frames, counted as the client hands them over.
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let endless = futures::stream::repeat_with(move || {
        counter.fetch_add(16 << 10, Ordering::Relaxed);
        Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(&[b' '; 16 << 10])))
    });
    let request = hyper::Request::post(format!("http://{}/admin/authz/explain", app.addr))
        .header("content-type", "application/json")
        .body(StreamBody::new(endless))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .expect("answered before the body ended")
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["reason"], "payload_too_large", "{body}");
    // HTTP/2 flow control lets the client run ahead of the server by a window, no more.
    assert!(sent.load(Ordering::Relaxed) < 8 << 20, "{} bytes sent", sent.load(Ordering::Relaxed));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_oversized_form_body_on_mcp_gets_413() {
    let app = spawn_app_with(|s| s.mcp.max_body_bytes = 2048).await;
    let resp = app
        .client
        .post(app.url("/mcp"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token=x&pad={}", "a".repeat(4096)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(resp.text().await.unwrap().contains("2048 bytes (QUDAG_MAX_BODY_BYTES)"));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_slow_body_gets_408_at_the_body_deadline_not_the_request_timeout() {
    let app = spawn_app_with(|s| {
        s.mcp.body_timeout_secs = 1;
        s.mcp.request_timeout_secs = 60;
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /admin/authz/explain HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"target\"",
        app.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let answer = read_head(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(status(&answer), 408, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    app.stop().await.unwrap();
}

/// Opens `n` connections from `from`, each sending a request head and the start of a body
/// it never finishes; returns those the server kept open.
async fn slow_senders(from: &str, server: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut open = Vec::new();
    for _ in 0..n {
        let Ok(mut stream) = connect_from(from, server).await else { continue };
        let head = format!(
            "POST /mcp HTTP/1.1\r\nhost: {server}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: 100000\r\n\r\n{{\"jsonrpc\""
        );
        if stream.write_all(head.as_bytes()).await.is_ok() {
            open.push(stream);
        }
    }
    // Those over the address's limit are closed by the server as soon as it accepts them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut kept = Vec::new();
    for mut stream in open {
        let mut probe = [0u8; 1];
        // Still open: nothing to read, no end of stream.
        if tokio::time::timeout(Duration::from_millis(20), stream.read(&mut probe)).await.is_err() {
            kept.push(stream);
        }
    }
    kept
}

async fn health_from(from: &str, server: SocketAddr) -> Result<u16, String> {
    let started = Instant::now();
    let mut stream = connect_from(from, server).await.map_err(|e| e.to_string())?;
    let request = format!("GET /health/live HTTP/1.1\r\nhost: {server}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let answer = read_head(&mut stream, Duration::from_secs(3)).await;
    if answer.is_empty() {
        return Err(format!("no answer after {:?}", started.elapsed()));
    }
    Ok(status(&answer))
}

#[tokio::test]
async fn slow_senders_from_one_address_cannot_starve_health_for_others() {
    let app = spawn_app_with(|s| {
        s.server.max_connections = 60;
        s.server.max_connections_per_address = 20;
        s.mcp.body_timeout_secs = 30;
    })
    .await;
    let kept = slow_senders("127.0.0.1", app.addr, 70).await;
    assert_eq!(kept.len(), 20, "the address keeps exactly its limit of connections");
    // Another address is served at once, though 70 slow bodies were started.
    for from in ["127.0.0.2", "127.0.0.3"] {
        let started = Instant::now();
        assert_eq!(health_from(from, app.addr).await, Ok(200), "{from}");
        assert!(started.elapsed() < Duration::from_secs(1), "{from}: {:?}", started.elapsed());
    }
    // The crowded address itself is refused, and told why, until it closes some.
    assert_eq!(health_from("127.0.0.1", app.addr).await, Ok(429), "one more from the full address");
    let addr = app.addr;
    let read_all = move |from: &'static str, request: &'static str| async move {
        let mut stream = connect_from(from, addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    };
    let answer = read_all("127.0.0.1", "GET /health/live HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").await;
    assert!(answer.contains("QUDAG_MAX_CONNECTIONS_PER_ADDRESS"), "{answer}");
    let metrics = read_all("127.0.0.2", "GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n").await;
    let refused: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("qudag_connections_refused_total{reason=\"per_address\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no refusal count in {metrics}"));
    assert!(refused >= 52, "70 - 20 slow senders and two more were refused, counted {refused}");
    drop(kept);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(health_from("127.0.0.1", app.addr).await, Ok(200));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn admin_endpoints_refuse_a_rebinding_host_or_origin() {
    let app = spawn_app().await;
    let addr = app.addr;
    let get = |host: &str, extra: &str| {
        format!("GET /admin/audit HTTP/1.1\r\nhost: {host}\r\n{extra}connection: close\r\n\r\n")
    };
    // Authentication is off: the loopback Host is served ...
    let answer = exchange(addr, &get(&addr.to_string(), "")).await;
    assert_eq!(status(&answer), 200, "{answer}");
    // ... a rebinding Host and a foreign Origin are not.
    for request in [get("evil.example", ""), get(&addr.to_string(), "origin: http://evil.example\r\n")] {
        let answer = exchange(addr, &request).await;
        assert_eq!(status(&answer), 403, "{answer}");
        let body = json_body(&answer);
        assert_eq!(body["reason"], "forbidden_origin", "{body}");
    }
    let body = r#"{"target":"echo"}"#;
    let explain = format!(
        "POST /admin/authz/explain HTTP/1.1\r\nhost: evil.example:80\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(status(&exchange(addr, &explain).await), 403);
    app.stop().await.unwrap();
}

/// Opens a connection from `from` that sends a `/mcp` request declaring `length` body bytes
/// and sends `sent` of them, then stalls.
async fn partial_body(from: &str, server: SocketAddr, length: usize, sent: usize) -> TcpStream {
    let mut stream = connect_from(from, server).await.expect("connected");
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {server}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    stream.write_all(&vec![b' '; sent]).await.expect("body sent");
    stream
}

#[tokio::test]
async fn bodies_held_at_once_are_bounded_per_address_not_per_connection() {
    // Each body may be 64 KiB; one address may hold 160 KiB of bodies at once.
    let app = spawn_app_with(|s| {
        s.mcp.max_body_bytes = 64 * 1024;
        s.mcp.max_body_bytes_per_address = 160 * 1024;
        s.mcp.body_timeout_secs = 30;
    })
    .await;
    let (length, sent) = (64 * 1024, 60 * 1024);
    // Two stalled bodies of 60 KiB fit the allowance ...
    let mut held = vec![
        partial_body("127.0.0.1", app.addr, length, sent).await,
        partial_body("127.0.0.1", app.addr, length, sent).await,
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ... a third one passes it while it is read: 429 with Retry-After, naming the setting,
    // long before the body deadline.
    let mut third = partial_body("127.0.0.1", app.addr, length, sent).await;
    let answer = read_head(&mut third, Duration::from_secs(5)).await;
    assert_eq!(status(&answer), 429, "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 1"), "{answer}");
    let mut rest = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), third.read_to_string(&mut rest)).await;
    assert!(format!("{answer}{rest}").contains("QUDAG_MAX_BODY_BYTES_PER_ADDRESS"), "{answer}{rest}");
    // Another address has its own allowance.
    let mut other = partial_body("127.0.0.2", app.addr, length, sent).await;
    let probe = tokio::time::timeout(Duration::from_millis(500), other.read(&mut [0u8; 1])).await;
    assert!(probe.is_err(), "another address's body is still being read, not refused");
    // Once the first two connections go, their bytes are given back.
    held.clear();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = partial_body("127.0.0.1", app.addr, length, sent).await;
    let probe = tokio::time::timeout(Duration::from_millis(500), again.read(&mut [0u8; 1])).await;
    assert!(probe.is_err(), "the address's allowance was given back");
    app.stop().await.unwrap();
}
