//! The binary serving https reloads its certificate on SIGHUP and keeps running.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;

use qudag_test_support::process::Server;
use qudag_test_support::qudag_mcp_command;
use qudag_test_support::temp::temp_dir;

fn write_leaf(ca: &CertifiedIssuer<'static, KeyPair>, cn: &str, dir: &Path) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.signed_by(&key, ca).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
}

/// The CN the server presents to a new connection, and that it answers HTTP over it.
fn served_cn(port: u16, ca_pem: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response);
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"));
    let leaf = tls.conn.peer_certificates().unwrap()[0].clone();
    let text = String::from_utf8_lossy(leaf.as_ref()).into_owned();
    ["first-cert", "second-cert"].iter().find(|cn| text.contains(*cn)).unwrap().to_string()
}

#[test]
fn sighup_reloads_the_certificate_and_the_server_keeps_serving() {
    let dir = temp_dir("sighup");
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    write_leaf(&ca, "first-cert", dir.path());

    let mut server = Server::start(
        qudag_mcp_command!()
            .arg("serve")
            .env("QUDAG_REQUIRE_AUTH", "false")
            .env("QUDAG_PROTOCOL", "https")
            .env("QUDAG_TLS_CERT_PATH", dir.path().join("cert.pem"))
            .env("QUDAG_TLS_KEY_PATH", dir.path().join("key.pem")),
    );
    let port = server.port();
    let mut line = String::new();
    assert_eq!(served_cn(port, &ca.pem()), "first-cert");

    write_leaf(&ca, "second-cert", dir.path());
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        line.clear();
        assert!(server.log().read_line(&mut line).unwrap() > 0, "the server exited on SIGHUP");
        if line.contains("SIGHUP") {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP was not logged");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while served_cn(port, &ca.pem()) != "second-cert" {
        assert!(Instant::now() < deadline, "the new certificate is not served");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.try_wait().is_none(), "the server is still running");
}
