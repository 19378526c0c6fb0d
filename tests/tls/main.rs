//! HTTPS end to end: the real server with certificates made here by rcgen, driven by
//! rustls clients (HTTP/1.1 and HTTP/2 by hyper), plus the connection limits over plain
//! TCP.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use qudag_mcp::settings::{Protocol, TlsVersion};
use qudag_mcp::tls::{TlsState, TlsStats};
use qudag_mcp::{App, Settings};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::crypto::aws_lc_rs::{self, kx_group};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

type Ca = CertifiedIssuer<'static, KeyPair>;

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A leaf certificate for `localhost` signed by `ca`: (chain PEM, key PEM).
fn leaf(ca: &Ca, cn: &str, key: KeyPair) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.signed_by(&key, ca).unwrap();
    (format!("{}{}", cert.pem(), ca.pem()), key.serialize_pem())
}

struct Files {
    _dir: qudag_test_support::temp::TempDir,
    cert: PathBuf,
    key: PathBuf,
    ca_pem: String,
}

fn server_files(ca: &Ca, cn: &str) -> Files {
    let dir = qudag_test_support::temp::temp_dir("tls");
    let (cert_pem, key_pem) = leaf(ca, cn, KeyPair::generate().unwrap());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key, key_pem).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    Files { _dir: dir, cert, key, ca_pem: ca.pem() }
}

struct Server {
    addr: SocketAddr,
    tls: Option<Arc<TlsState>>,
    stats: Option<Arc<TlsStats>>,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.handle).await.unwrap().unwrap().unwrap();
    }
}

fn settings(files: Option<&Files>, configure: impl FnOnce(&mut Settings)) -> Settings {
    qudag_mcp::install_crypto_provider();
    let mut s = Settings::default();
    s.server.host = "127.0.0.1".into();
    s.server.port = 0;
    s.server.shutdown_grace_secs = 2;
    s.auth.require_auth = false;
    if let Some(files) = files {
        s.server.protocol = Protocol::Https;
        s.server.tls_cert_path = Some(files.cert.clone());
        s.server.tls_key_path = Some(files.key.clone());
    }
    configure(&mut s);
    s.validate().unwrap();
    s
}

async fn start(files: Option<&Files>, configure: impl FnOnce(&mut Settings)) -> Server {
    let app = App::build(settings(files, configure)).await.unwrap();
    let (addr, tls, stats) = (app.local_addr(), app.tls(), app.tls_stats());
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    let handle = tokio::spawn(async move { app.run(async move { signal.cancelled().await }).await });
    Server { addr, tls, stats, shutdown, handle }
}

struct Client {
    groups: Vec<&'static dyn SupportedKxGroup>,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    alpn: Vec<Vec<u8>>,
    identity: Option<(String, String)>,
}

impl Default for Client {
    fn default() -> Self {
        Self {
            groups: aws_lc_rs::default_provider().kx_groups,
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
            alpn: vec![b"http/1.1".to_vec()],
            identity: None,
        }
    }
}

impl Client {
    fn config(&self, ca_pem: &str) -> ClientConfig {
        let provider = CryptoProvider { kx_groups: self.groups.clone(), ..aws_lc_rs::default_provider() };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&self.versions)
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(chain.as_bytes()).map(Result::unwrap).collect(),
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
        };
        config.alpn_protocols = self.alpn.clone();
        config
    }

    async fn connect(&self, addr: SocketAddr, ca_pem: &str) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.config(ca_pem)));
        connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await
    }
}

/// An HTTP/1.1 connection over `io`.
async fn http1<I>(io: I) -> hyper::client::conn::http1::SendRequest<Full<Bytes>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.unwrap();
    tokio::spawn(conn);
    sender
}

fn discover_request(uri: &str) -> hyper::Request<Full<Bytes>> {
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "server/discover",
        "params": {"_meta": qudag_tests::stateless_meta(serde_json::json!({}))},
    });
    hyper::Request::post(uri)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", qudag_tests::STATELESS)
        .header("mcp-method", "server/discover")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn get(uri: &str) -> hyper::Request<Full<Bytes>> {
    hyper::Request::get(uri).header("host", "localhost").body(Full::new(Bytes::new())).unwrap()
}

async fn body(response: hyper::Response<hyper::body::Incoming>) -> serde_json::Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
}

fn leaf_cn(tls: &TlsStream<TcpStream>) -> String {
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    // The CN is the only place the test names differ; a byte search is enough.
    let text = String::from_utf8_lossy(der.as_ref()).into_owned();
    ["first-cert", "second-cert", "third-cert"]
        .iter()
        .find(|cn| text.contains(*cn))
        .map_or_else(|| "unknown".to_owned(), |cn| (*cn).to_owned())
}

#[tokio::test]
async fn tls13_handshake_then_an_mcp_call_over_http1_and_http2_with_hsts() {
    let ca = ca("test-ca");
    let files = server_files(&ca, "first-cert");
    let server = start(Some(&files), |_| {}).await;

    let tls = Client::default().connect(server.addr, &files.ca_pem).await.unwrap();
    let session = tls.get_ref().1;
    assert_eq!(session.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut sender = http1(tls).await;
    let response = sender.send_request(discover_request("/mcp")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=63072000; includeSubDomains",
        "HSTS on an https response"
    );
    let discovered = body(response).await;
    assert!(discovered["result"].is_object(), "{discovered}");

    // h2 offered first: the server picks it and serves HTTP/2 over the same acceptor.
    let client = Client { alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()], ..Client::default() };
    let tls = client.connect(server.addr, &files.ca_pem).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let response = sender.send_request(discover_request("https://localhost/mcp")).await.unwrap();
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("strict-transport-security"));
    assert!(body(response).await["result"].is_object());
    let health = sender.send_request(get("https://localhost/health/live")).await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("strict-transport-security"), "HSTS on every response");

    // curl, when installed (its OpenSSL may lack the hybrid group: a classical one is used).
    if let Ok(out) = tokio::process::Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "--http2", "--tlsv1.3", "--cacert"])
        .arg(files.cert.with_file_name("ca.pem"))
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", server.addr.port()))
        .arg(format!("https://localhost:{}/health/live", server.addr.port()))
        .output()
        .await
        .map(|out| String::from_utf8_lossy(&out.stdout).to_lowercase())
    {
        assert!(out.starts_with("http/2 200"), "{out}");
        assert!(out.contains("strict-transport-security: max-age=63072000; includesubdomains"), "{out}");
    }

    // Plain HTTP spoken to the TLS port is not served.
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut out)).await.unwrap();
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"));
    server.stop().await;
}

#[tokio::test]
async fn hsts_is_absent_on_plain_http() {
    let server = start(None, |_| {}).await;
    assert!(server.tls.is_none());
    let mut sender = http1(TcpStream::connect(server.addr).await.unwrap()).await;
    let response = sender.send_request(get("/health/live")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("strict-transport-security"));
    let response = sender.send_request(discover_request("/mcp")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("strict-transport-security"));
    server.stop().await;
}

#[tokio::test]
async fn the_hybrid_post_quantum_group_is_preferred_and_classical_groups_still_work() {
    let ca = ca("test-ca");
    let files = server_files(&ca, "first-cert");
    let server = start(Some(&files), |_| {}).await;
    let stats = server.stats.clone().unwrap();

    let cases: [(&'static dyn SupportedKxGroup, &str); 4] = [
        (kx_group::X25519MLKEM768, "X25519MLKEM768"),
        (kx_group::X25519, "X25519"),
        (kx_group::SECP256R1, "secp256r1"),
        (kx_group::SECP384R1, "secp384r1"),
    ];
    for (group, name) in cases {
        let client = Client { groups: vec![group], ..Client::default() };
        let tls = client.connect(server.addr, &files.ca_pem).await.unwrap();
        let negotiated = tls.get_ref().1.negotiated_key_exchange_group().unwrap();
        assert_eq!(format!("{:?}", negotiated.name()), name);
        let mut sender = http1(tls).await;
        assert_eq!(sender.send_request(get("/health/live")).await.unwrap().status(), 200);
    }
    // A client offering the hybrid group first (as current browsers do, with an X25519
    // share alongside) gets it.
    let client = Client { groups: vec![kx_group::X25519MLKEM768, kx_group::X25519], ..Client::default() };
    let tls = client.connect(server.addr, &files.ca_pem).await.unwrap();
    assert_eq!(format!("{:?}", tls.get_ref().1.negotiated_key_exchange_group().unwrap().name()), "X25519MLKEM768");
    // Classical first in the client's list: only an X25519 share is sent.
    let client = Client { groups: vec![kx_group::X25519, kx_group::X25519MLKEM768], ..Client::default() };
    let tls2 = client.connect(server.addr, &files.ca_pem).await.unwrap();
    let chosen = format!("{:?}", tls2.get_ref().1.negotiated_key_exchange_group().unwrap().name());
    // rustls as a server follows its own preference among the shares the client sent; it
    // answers a client that sent only an X25519 share in X25519 rather than spend a round
    // trip (HelloRetryRequest) on the hybrid group.
    assert!(chosen == "X25519MLKEM768" || chosen == "X25519", "{chosen}");

    // The server counts once its side of the handshake is done, a moment after the client's.
    let (pq, classic) = (2 + u64::from(chosen == "X25519MLKEM768"), 1 + u64::from(chosen == "X25519"));
    eventually(|| stats.group("X25519MLKEM768") == pq && stats.group("X25519") == classic).await;
    assert_eq!(stats.group("secp256r1"), 1);
    assert_eq!(stats.group("secp384r1"), 1);

    // The same counts on /metrics, with the scrape's own handshake (hybrid group) counted.
    let client = Client { groups: vec![kx_group::X25519MLKEM768], ..Client::default() };
    let mut sender = http1(client.connect(server.addr, &files.ca_pem).await.unwrap()).await;
    let response = sender.send_request(get("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    for line in [
        format!("qudag_tls_handshakes_total{{group=\"X25519MLKEM768\"}} {}", pq + 1),
        format!("qudag_tls_handshakes_total{{group=\"X25519\"}} {classic}"),
        "qudag_tls_handshakes_total{group=\"secp256r1\"} 1".to_owned(),
        "qudag_tls_handshakes_total{group=\"secp384r1\"} 1".to_owned(),
        "qudag_tls_handshakes_total{group=\"other\"} 0".to_owned(),
        "qudag_tls_handshake_failures_total 0".to_owned(),
        "qudag_tls_certificate_reloads_total{outcome=\"success\"} 0".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "/metrics has `{line}`:\n{text}");
    }
    drop((tls, tls2));
    server.stop().await;
}

#[tokio::test]
async fn tls12_is_refused_by_default_and_accepted_with_min_version_12() {
    let ca = ca("test-ca");
    let files = server_files(&ca, "first-cert");
    let tls12_only = Client { versions: vec![&rustls::version::TLS12], ..Client::default() };

    let server = start(Some(&files), |_| {}).await;
    let err = tls12_only.connect(server.addr, &files.ca_pem).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("protocolversion"), "{err}");
    eventually(|| server.stats.as_ref().unwrap().failed() == 1).await;
    server.stop().await;

    let server = start(Some(&files), |s| s.server.tls_min_version = TlsVersion::V1_2).await;
    let tls = tls12_only.connect(server.addr, &files.ca_pem).await.unwrap();
    assert_eq!(tls.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let mut sender = http1(tls).await;
    assert_eq!(sender.send_request(get("/health/live")).await.unwrap().status(), 200);
    // 1.3 still preferred when both are allowed.
    let tls = Client::default().connect(server.addr, &files.ca_pem).await.unwrap();
    assert_eq!(tls.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    server.stop().await;
}

fn replace_cert(files: &Files, ca: &Ca, cn: &str) {
    let (cert_pem, key_pem) = leaf(ca, cn, KeyPair::generate().unwrap());
    // Write then rename, as certificate tools do, so the watcher never sees half a file.
    let tmp_key = files.key.with_extension("tmp");
    std::fs::write(&tmp_key, key_pem).unwrap();
    std::fs::rename(&tmp_key, &files.key).unwrap();
    let tmp_cert = files.cert.with_extension("tmp");
    std::fs::write(&tmp_cert, cert_pem).unwrap();
    std::fs::rename(&tmp_cert, &files.cert).unwrap();
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_to_new_connections_and_keeps_old_ones() {
    let ca = ca("test-ca");
    let files = server_files(&ca, "first-cert");
    let server = start(Some(&files), |_| {}).await;
    let tls = server.tls.clone().unwrap();

    let before = Client::default().connect(server.addr, &files.ca_pem).await.unwrap();
    assert_eq!(leaf_cn(&before), "first-cert");
    let mut old = http1(before).await;
    assert_eq!(old.send_request(get("/health/live")).await.unwrap().status(), 200);

    // The reload function (what SIGHUP calls).
    replace_cert(&files, &ca, "second-cert");
    tls.reload().unwrap();
    let after = Client::default().connect(server.addr, &files.ca_pem).await.unwrap();
    assert_eq!(leaf_cn(&after), "second-cert");
    assert_eq!(old.send_request(get("/health/live")).await.unwrap().status(), 200, "the old connection still works");

    // A broken file: the reload fails naming it, and the current certificate stays.
    std::fs::write(&files.cert, "not a certificate").unwrap();
    let err = tls.reload().unwrap_err().to_string();
    assert!(err.contains("QUDAG_TLS_CERT_PATH") && err.contains(&files.cert.display().to_string()), "{err}");
    let still = Client::default().connect(server.addr, &files.ca_pem).await.unwrap();
    assert_eq!(leaf_cn(&still), "second-cert");

    // The file watch: a new certificate is picked up without any call.
    replace_cert(&files, &ca, "third-cert");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tls = Client::default().connect(server.addr, &files.ca_pem).await.unwrap();
        if leaf_cn(&tls) == "third-cert" {
            break;
        }
        assert!(Instant::now() < deadline, "the changed files were not reloaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(old.send_request(get("/health/live")).await.unwrap().status(), 200);
    let (reloads, failures) = server.stats.as_ref().unwrap().reloads();
    assert!(reloads >= 2 && failures >= 1, "{reloads} {failures}");
    server.stop().await;
}

#[tokio::test]
async fn mtls_serves_only_clients_with_a_certificate_from_the_configured_ca() {
    let server_ca = ca("server-ca");
    let client_ca = ca("client-ca");
    let other_ca = ca("other-ca");
    let files = server_files(&server_ca, "first-cert");
    let ca_path = files.cert.with_file_name("clients.pem");
    std::fs::write(&ca_path, client_ca.pem()).unwrap();
    let server = start(Some(&files), |s| s.server.tls_ca_path = Some(ca_path.clone())).await;

    let anonymous = Client::default();
    let err = match anonymous.connect(server.addr, &files.ca_pem).await {
        Err(err) => err.to_string(),
        Ok(mut tls) => {
            // TLS 1.3: the alert may arrive with the first read.
            tls.write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
            let mut out = Vec::new();
            tls.read_to_end(&mut out).await.unwrap_err().to_string()
        }
    };
    assert!(err.to_lowercase().contains("certificaterequired"), "{err}");

    for (issuer, expect_ok) in [(&other_ca, false), (&client_ca, true)] {
        let client =
            Client { identity: Some(leaf(issuer, "client", KeyPair::generate().unwrap())), ..Client::default() };
        let result = async {
            let tls = client.connect(server.addr, &files.ca_pem).await?;
            let mut sender = http1(tls).await;
            sender.send_request(get("/health/live")).await.map_err(std::io::Error::other)
        }
        .await;
        match result {
            Ok(response) => {
                assert!(expect_ok, "a certificate from another CA was accepted");
                assert_eq!(response.status(), 200);
            }
            Err(err) => assert!(!expect_ok, "a valid client certificate was refused: {err}"),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn rsa_keys_and_bad_material_at_start_up() {
    let ca = ca("test-ca");
    // RSA (PKCS#8) key.
    let files = server_files(&ca, "first-cert");
    let (cert_pem, key_pem) = leaf(&ca, "first-cert", KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap());
    std::fs::write(&files.cert, cert_pem).unwrap();
    std::fs::write(&files.key, key_pem).unwrap();
    let server = start(Some(&files), |_| {}).await;
    let tls = Client::default().connect(server.addr, &files.ca_pem).await.unwrap();
    assert_eq!(leaf_cn(&tls), "first-cert");
    server.stop().await;

    // The same RSA key as PKCS#1, and an ECDSA key as SEC1 (converted by openssl when present).
    let ec = server_files(&ca, "second-cert");
    for (files, marker, cn) in
        [(&files, "BEGIN RSA PRIVATE KEY", "first-cert"), (&ec, "BEGIN EC PRIVATE KEY", "second-cert")]
    {
        let Ok(out) =
            std::process::Command::new("openssl").args(["pkey", "-traditional", "-in"]).arg(&files.key).output()
        else {
            eprintln!("openssl not installed: PKCS#1/SEC1 not checked");
            break;
        };
        let traditional = String::from_utf8(out.stdout).unwrap();
        assert!(traditional.contains(marker), "{traditional}");
        std::fs::write(&files.key, traditional).unwrap();
        let server = start(Some(files), |_| {}).await;
        let tls = Client::default().connect(server.addr, &files.ca_pem).await.unwrap();
        assert_eq!(leaf_cn(&tls), cn);
        server.stop().await;
    }

    let error = |s: Settings| async move { format!("{:#}", App::build(s).await.unwrap_err()) };

    let missing = Path::new("/nonexistent/cert.pem").to_owned();
    let err = error(settings(Some(&files), |s| s.server.tls_cert_path = Some(missing.clone()))).await;
    assert!(err.contains("QUDAG_TLS_CERT_PATH") && err.contains("/nonexistent/cert.pem"), "{err}");

    // A key that is not the certificate's.
    let other = files.key.with_file_name("other.pem");
    std::fs::write(&other, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let err = error(settings(Some(&files), |s| s.server.tls_key_path = Some(other.clone()))).await;
    assert!(err.contains("QUDAG_TLS_KEY_PATH") && err.contains(&other.display().to_string()), "{err}");

    // A certificate where the key should be.
    let err = error(settings(Some(&files), |s| s.server.tls_key_path = Some(files.cert.clone()))).await;
    assert!(err.contains("QUDAG_TLS_KEY_PATH"), "{err}");
}

/// Read until the peer closes or `limit` passes; returns what was read and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

#[tokio::test]
async fn slow_clients_are_cut_and_do_not_hold_up_others() {
    let server = start(None, |s| {
        s.server.header_timeout_secs = 2;
        s.server.keepalive_timeout_secs = 30;
    })
    .await;

    // Dribbles its headers a byte at a time, forever.
    let dribbler = tokio::spawn({
        let addr = server.addr;
        async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let started = Instant::now();
            let head = b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
            for byte in head.iter().chain(std::iter::repeat(&b'a')) {
                if stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
                let mut probe = [0u8; 1];
                if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut probe)).await {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(10), "the dribbler was never cut");
            }
            started.elapsed()
        }
    });
    // Sends headers promising a body it never finishes.
    let mut unfinished = TcpStream::connect(server.addr).await.unwrap();
    unfinished
        .write_all(b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"jsonrpc\"")
        .await
        .unwrap();

    // Meanwhile a normal client is served promptly, several times.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        let started = Instant::now();
        let mut sender = http1(TcpStream::connect(server.addr).await.unwrap()).await;
        assert_eq!(sender.send_request(get("/health/live")).await.unwrap().status(), 200);
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }
    let cut_after = dribbler.await.unwrap();
    assert!(cut_after >= Duration::from_secs(2) && cut_after < Duration::from_secs(4), "{cut_after:?}");

    // A head larger than the limit: 431, then the connection is closed.
    let mut big = TcpStream::connect(server.addr).await.unwrap();
    let header = format!("GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n", "a".repeat(70_000));
    let _ = big.write_all(header.as_bytes()).await;
    let (reply, closed) = read_until_closed(&mut big, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    assert!(closed);
    drop(unfinished);
    server.stop().await;
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_keepalive_timeout() {
    let server = start(None, |s| {
        s.server.header_timeout_secs = 60;
        s.server.keepalive_timeout_secs = 1;
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let started = Instant::now();
    let (reply, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(closed, "the idle connection stayed open");
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
    server.stop().await;
}

#[tokio::test]
async fn beyond_max_connections_new_ones_wait_until_a_slot_frees() {
    let server = start(None, |s| s.server.max_connections = 2).await;
    let mut first = http1(TcpStream::connect(server.addr).await.unwrap()).await;
    let mut second = http1(TcpStream::connect(server.addr).await.unwrap()).await;
    assert_eq!(first.send_request(get("/health/live")).await.unwrap().status(), 200);
    assert_eq!(second.send_request(get("/health/live")).await.unwrap().status(), 200);

    // The third connects (the kernel's backlog) but is not served while two are open.
    let mut third = http1(TcpStream::connect(server.addr).await.unwrap()).await;
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let status = third.send_request(get("/health/ready")).await.unwrap().status();
        (status, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!waiting.is_finished(), "the third connection was served beyond the limit");
    drop(first);
    let (status, waited) = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
    assert_eq!(status, 200);
    assert!(waited >= Duration::from_millis(700), "{waited:?}");
    assert_eq!(second.send_request(get("/health/live")).await.unwrap().status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_cut_and_does_not_block_others() {
    let ca = ca("test-ca");
    let files = server_files(&ca, "first-cert");
    let server = start(Some(&files), |s| s.server.tls_handshake_timeout_secs = 1).await;
    // Connects and says nothing.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let tls = Client::default().connect(server.addr, &files.ca_pem).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    drop(tls);
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(4)).await;
    assert!(closed, "the silent handshake was not cut");
    assert!(started.elapsed() >= Duration::from_millis(900));
    eventually(|| server.stats.as_ref().unwrap().failed() == 1).await;
    server.stop().await;
}

async fn eventually(check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !check() {
        assert!(Instant::now() < deadline, "condition not reached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Handshake cost per group, for docs/tls.md (run with `--ignored --nocapture`).
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn measure_handshakes_per_group() {
    let ca = ca("test-ca");
    let files = server_files(&ca, "first-cert");
    let server = start(Some(&files), |_| {}).await;
    let groups: [(&'static dyn SupportedKxGroup, &str); 3] = [
        (kx_group::X25519MLKEM768, "X25519MLKEM768"),
        (kx_group::X25519, "X25519"),
        (kx_group::SECP256R1, "secp256r1"),
    ];
    for (group, name) in groups {
        let client = Client { groups: vec![group], ..Client::default() };
        let config = Arc::new(client.config(&files.ca_pem));
        let rounds = 300;
        let started = Instant::now();
        for _ in 0..rounds {
            let tcp = TcpStream::connect(server.addr).await.unwrap();
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
            drop(tls);
        }
        let each = started.elapsed() / rounds;
        println!("{name}: {each:?} per full handshake (client and server on one thread)");
    }
    server.stop().await;
}
