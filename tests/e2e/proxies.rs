//! Client addresses behind proxies: the `X-Forwarded-For` chain read across all its lines
//! from the right, believed only from trusted proxies, and IPv4-mapped peers matching IPv4
//! blocks. The address shows in the audit trail, read here through `/admin/audit`
//! (authentication off).

use std::net::{IpAddr, SocketAddr};

use qudag_tests::spawn_app_with;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection to `server` from the loopback address `from` (any of 127.0.0.0/8).
async fn connect_from(from: &str, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse().expect("an IP address"), 0))?;
    socket.connect(server).await
}

fn status(answer: &str) -> u16 {
    answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {answer:?}"))
}

/// The client addresses of the audit trail's `GET /admin/audit` events.
async fn readers(app: &qudag_tests::TestApp, base: &str) -> Vec<String> {
    let resp = app.client.get(format!("{base}/admin/audit?limit=1000")).send().await.expect("audit read");
    let page: Value = resp.json().await.expect("an audit page");
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["target"] == "GET /admin/audit")
        .filter_map(|e| e["client_addr"].as_str().map(str::to_owned))
        .collect()
}

/// `GET /admin/audit` from the loopback address `from` with one `X-Forwarded-For` line per
/// entry of `xff`.
async fn read_audit(from: &str, addr: SocketAddr, xff: &[&str]) {
    let mut stream = connect_from(from, addr).await.expect("connected");
    let lines: String = xff.iter().map(|v| format!("x-forwarded-for: {v}\r\n")).collect();
    let request = format!("GET /admin/audit?limit=1 HTTP/1.1\r\nhost: {addr}\r\n{lines}connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request sent");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("answer read");
    assert_eq!(status(&String::from_utf8_lossy(&out)), 200);
}

#[tokio::test]
async fn the_forwarded_chain_is_read_across_lines_from_a_trusted_proxy_only() {
    let app = spawn_app_with(|s| s.mcp.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let base = app.url("");
    // From the trusted proxy: the client's forged line first, the proxy's own line last.
    read_audit("127.0.0.1", app.addr, &["6.6.6.6", "198.51.100.7"]).await;
    // From an address that is not a trusted proxy: the header is ignored.
    read_audit("127.0.0.2", app.addr, &["203.0.113.50"]).await;
    let seen = readers(&app, &base).await;
    assert!(seen.iter().any(|a| a == "198.51.100.7"), "the last line's client: {seen:?}");
    assert!(seen.iter().any(|a| a == "127.0.0.2"), "the untrusted peer itself: {seen:?}");
    assert!(!seen.iter().any(|a| a == "6.6.6.6" || a == "203.0.113.50"), "forged entries believed: {seen:?}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_ipv4_mapped_peer_matches_an_ipv4_trusted_proxy() {
    // An IPv6 socket reached over IPv4: peers arrive as ::ffff:127.0.0.1.
    let app = spawn_app_with(|s| {
        s.server.host = "::ffff:127.0.0.1".into();
        s.auth.allow_unauthenticated_network = true;
        s.mcp.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let addr = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), app.addr.port());
    read_audit("127.0.0.1", addr, &["198.51.100.7"]).await;
    let seen = readers(&app, &format!("http://{addr}")).await;
    assert!(seen.iter().any(|a| a == "198.51.100.7"), "the proxy is trusted: {seen:?}");
    assert!(!seen.iter().any(|a| a.starts_with("::ffff:")), "addresses are IPv4: {seen:?}");
    app.stop().await.unwrap();
}
