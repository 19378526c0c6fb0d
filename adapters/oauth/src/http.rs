//! The adapter's HTTP client: discovery, JWKS and introspection requests to the
//! authorization server, over rustls with the aws-lc-rs provider.
//!
//! Only `https` URLs are accepted, except `http` on a loopback address (tests and local
//! issuers). Redirects are not followed, so a metadata document cannot send us to a URL
//! that would not pass that check; response bodies are bounded.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use url::Url;

/// The largest response body read from the authorization server.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// A URL that cannot be used to reach the authorization server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {url:?}: {reason}")]
pub struct UrlError {
    /// What the URL is for (e.g. `issuer`).
    pub what: &'static str,
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parse `url` and require `https`, or `http` on a loopback host.
///
/// # Errors
/// [`UrlError`] naming `what` and the value.
pub fn secure_url(what: &'static str, url: &str) -> Result<Url, UrlError> {
    let error = |reason| UrlError { what, url: url.to_owned(), reason };
    let parsed = Url::parse(url).map_err(|_| error("not an absolute URL"))?;
    if parsed.fragment().is_some() {
        return Err(error("must not have a fragment"));
    }
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback(&parsed) => Ok(parsed),
        "http" => Err(error("must use https (http is accepted only on a loopback address)")),
        _ => Err(error("must be an https URL")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Why a request to the authorization server failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No answer (connection refused, timeout, TLS failure).
    #[error("request to {url} failed: {message}")]
    Transport {
        /// The URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// An answer we cannot use (status, size, JSON).
    #[error("{url} answered unusably: {message}")]
    Response {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
}

/// The client, cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
}

impl HttpClient {
    /// A client with `timeout` per request, trusting the system's root certificates plus
    /// the PEM certificates in `extra_roots`.
    ///
    /// # Errors
    /// A message when the roots cannot be loaded or the TLS configuration is refused.
    pub fn new(timeout: Duration, extra_roots: Option<&[u8]>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A system store may hold certificates rustls cannot parse; skip those.
            let _ = roots.add(cert);
        }
        if let Some(pem) = extra_roots {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("CA file: {e}"))?;
                roots.add(cert).map_err(|e| format!("CA file: {e}"))?;
                added += 1;
            }
            if added == 0 {
                return Err("CA file holds no PEM certificate".into());
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let inner = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("qudag-mcp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { inner })
    }

    /// GET `url` and parse a JSON object from a 200 answer.
    ///
    /// # Errors
    /// [`FetchError`].
    pub async fn get_json(&self, url: &Url) -> Result<Value, FetchError> {
        let response = self
            .inner
            .get(url.clone())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| transport(url.as_str(), &e))?;
        let status = response.status();
        let body = read_bounded(url.as_str(), response).await?;
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Response { url: url.to_string(), message: format!("status {status}") });
        }
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| FetchError::Response { url: url.to_string(), message: format!("invalid JSON: {e}") })?;
        if !value.is_object() {
            return Err(FetchError::Response { url: url.to_string(), message: "not a JSON object".into() });
        }
        Ok(value)
    }

    async fn execute(&self, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, FetchError> {
        let url = request.uri().to_string();
        let request = reqwest::Request::try_from(request).map_err(|e| transport(&url, &e))?;
        let response = self.inner.execute(request).await.map_err(|e| transport(&url, &e))?;
        let mut builder = oauth2::http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let body = read_bounded(&url, response).await?;
        builder.body(body).map_err(|e| FetchError::Response { url, message: e.to_string() })
    }
}

fn transport(url: &str, e: &reqwest::Error) -> FetchError {
    // reqwest's Display omits the cause ("error sending request"); the source says why.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    FetchError::Transport { url: url.to_owned(), message }
}

async fn read_bounded(url: &str, mut response: reqwest::Response) -> Result<Vec<u8>, FetchError> {
    let too_large =
        || FetchError::Response { url: url.to_owned(), message: format!("body exceeds {MAX_RESPONSE_BYTES} bytes") };
    if response.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(url, &e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl<'c> oauth2::AsyncHttpClient<'c> for HttpClient {
    type Error = FetchError;
    type Future = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, FetchError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_everywhere_and_http_only_on_loopback() {
        for ok in [
            "https://issuer.example",
            "https://issuer.example/realms/qudag",
            "http://127.0.0.1:9400",
            "http://127.8.9.1/x",
            "http://[::1]:8080",
            "http://localhost:3000",
        ] {
            assert!(secure_url("issuer", ok).is_ok(), "{ok}");
        }
        for (bad, reason) in [
            ("http://issuer.example", "must use https"),
            ("http://10.0.0.1", "must use https"),
            ("http://localhost.evil.example", "must use https"),
            ("ftp://issuer.example", "must be an https URL"),
            ("issuer.example", "not an absolute URL"),
            ("https://issuer.example#x", "must not have a fragment"),
        ] {
            let err = secure_url("issuer", bad).unwrap_err();
            assert!(err.reason.starts_with(reason), "{bad}: {err}");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
