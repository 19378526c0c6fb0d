//! TLS for `QUDAG_PROTOCOL=https`: rustls with the aws-lc-rs provider, certificates loaded
//! from PEM files and reloaded without a restart, optional client certificates (mTLS), and
//! the post-quantum hybrid key exchange X25519MLKEM768 preferred.
//!
//! The server configuration lives behind a lock and is read once per new connection, so a
//! reload reaches the next handshake while connections already open keep the session they
//! negotiated.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{self, kx_group};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_util::sync::CancellationToken;

use super::tls_stats::TlsStats;

/// How often the certificate, key and CA files are checked for changes.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// The lowest TLS version a client may negotiate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.3 only.
    #[default]
    V1_3,
    /// TLS 1.2 and 1.3, for clients that lack 1.3.
    V1_2,
}

/// Where the TLS material comes from, and which versions are accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate chain (`QUDAG_TLS_CERT_PATH`).
    pub cert: PathBuf,
    /// The private key (`QUDAG_TLS_KEY_PATH`).
    pub key: PathBuf,
    /// CA certificates for client certificates (`QUDAG_TLS_CA_PATH`).
    pub ca: Option<PathBuf>,
    /// The lowest version accepted (`QUDAG_TLS_MIN_VERSION`).
    pub min_version: TlsVersion,
}

impl TlsConfig {
    fn contents(&self) -> Vec<Option<Vec<u8>>> {
        [Some(&self.cert), Some(&self.key), self.ca.as_ref()]
            .into_iter()
            .map(|p| p.and_then(|p| std::fs::read(p).ok()))
            .collect()
    }
}

/// Why the TLS material could not be loaded; the message names the file and its variable.
#[derive(Debug, thiserror::Error)]
#[error("{variable}={}: {reason}", path.display())]
pub struct TlsError {
    variable: &'static str,
    path: PathBuf,
    reason: String,
}

impl TlsError {
    fn new(variable: &'static str, path: &Path, reason: impl fmt::Display) -> Self {
        Self { variable, path: path.to_owned(), reason: reason.to_string() }
    }
}

/// The live TLS configuration: what the next handshake uses, and how to replace it.
pub struct TlsState {
    files: TlsConfig,
    config: RwLock<Arc<ServerConfig>>,
    stats: Arc<TlsStats>,
}

impl fmt::Debug for TlsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsState").field("files", &self.files).finish_non_exhaustive()
    }
}

impl TlsState {
    /// Load the certificate, key and CA files.
    ///
    /// # Errors
    /// When a file is missing, unreadable or holds no usable PEM item, or the key does not
    /// match the certificate; the message names the file and its variable.
    pub fn load(files: TlsConfig) -> Result<Self, TlsError> {
        let config = build_config(&files)?;
        Ok(Self { files, config: RwLock::new(Arc::new(config)), stats: Arc::default() })
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.config.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The handshake counters.
    pub fn stats(&self) -> Arc<TlsStats> {
        self.stats.clone()
    }

    /// Read the files again; new connections get the new certificate, open ones are not
    /// touched. A failure keeps the old configuration and is logged naming the file.
    ///
    /// # Errors
    /// As [`TlsState::load`].
    pub fn reload(&self) -> Result<(), TlsError> {
        match build_config(&self.files) {
            Ok(config) => {
                *self.config.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
                self.stats.record_reload(true);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                Ok(())
            }
            Err(error) => {
                self.stats.record_reload(false);
                tracing::error!(%error, "TLS reload failed; the previous certificate stays in use");
                Err(error)
            }
        }
    }

    /// Reload on SIGHUP and whenever the files' contents change, until `stop`.
    pub fn watch(self: Arc<Self>, stop: CancellationToken) {
        let state = self.clone();
        let polling = stop.clone();
        tokio::spawn(async move {
            let mut seen = state.files.contents();
            let mut tick = tokio::time::interval(RELOAD_POLL);
            tick.tick().await;
            loop {
                tokio::select! {
                    () = polling.cancelled() => break,
                    _ = tick.tick() => {
                        let now = state.files.contents();
                        if now != seen {
                            // Certificate and key are often replaced one after the other:
                            // a failure here is retried on the next change.
                            seen = now;
                            let _ = state.reload();
                        }
                    }
                }
            }
        });
        #[cfg(unix)]
        tokio::spawn(async move {
            let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(s) => s,
                Err(error) => {
                    tracing::error!(%error, "Cannot listen for SIGHUP; TLS reload on file change only");
                    return;
                }
            };
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = hangup.recv() => {
                        tracing::info!(signal = "SIGHUP", "Reloading the TLS certificate");
                        let _ = self.reload();
                    }
                }
            }
        });
    }
}

/// The aws-lc-rs provider with the hybrid post-quantum group first.
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        kx_groups: vec![kx_group::X25519MLKEM768, kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        ..aws_lc_rs::default_provider()
    }
}

fn build_config(files: &TlsConfig) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(provider());
    let certs = read_certs("QUDAG_TLS_CERT_PATH", &files.cert)?;
    let key = read_key(&files.key)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match files.min_version {
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::new("QUDAG_TLS_MIN_VERSION", Path::new("-"), e))?;
    let builder = match &files.ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs("QUDAG_TLS_CA_PATH", ca)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::new("QUDAG_TLS_CA_PATH", ca, format!("not a CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TlsError::new("QUDAG_TLS_CA_PATH", ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let key_path = files.key.display().to_string();
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        TlsError::new(
            "QUDAG_TLS_KEY_PATH",
            &files.key,
            format!("the key {key_path} cannot serve the certificate {}: {e}", files.cert.display()),
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certs(variable: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|e| TlsError::new(variable, path, format!("cannot read: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(variable, path, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::new(variable, path, "holds no PEM CERTIFICATE"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    const VARIABLE: &str = "QUDAG_TLS_KEY_PATH";
    let pem = std::fs::read(path).map_err(|e| TlsError::new(VARIABLE, path, format!("cannot read: {e}")))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| TlsError::new(VARIABLE, path, format!("no PKCS#8, PKCS#1 or SEC1 private key in PEM: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named_with_its_variable() {
        let config = TlsConfig {
            cert: PathBuf::from("/nonexistent/cert.pem"),
            key: PathBuf::from("/nonexistent/key.pem"),
            ca: None,
            min_version: TlsVersion::V1_3,
        };
        let error = TlsState::load(config).unwrap_err().to_string();
        assert!(error.starts_with("QUDAG_TLS_CERT_PATH=/nonexistent/cert.pem: cannot read:"), "{error}");
    }

    #[test]
    fn the_post_quantum_hybrid_is_offered_first() {
        let groups: Vec<_> = provider().kx_groups.iter().map(|g| format!("{:?}", g.name())).collect();
        assert_eq!(groups, super::super::tls_stats::GROUP_NAMES);
    }
}
