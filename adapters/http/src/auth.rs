//! Who is calling, on the wire: the client's address (through trusted proxies), and the
//! OAuth 2.0 resource server's side — reading credentials, challenges
//! (`WWW-Authenticate`), and the RFC 9728 protected-resource metadata.
//!
//! - Tokens are read only from the `Authorization` header (`Bearer`, or `DPoP` with a
//!   `DPoP` proof header). A token in the query string or a form body is refused with
//!   400 `invalid_request` (MCP authorization, "Token Requirements"; RFC 6750 §2).
//! - 401 and 403 answers carry a challenge with `resource_metadata` (RFC 9728 §5.1),
//!   `error`/`error_description` for a bad token (RFC 6750 §3), and for a missing scope
//!   `error="insufficient_scope"` with the scopes to request (MCP authorization, "Scope
//!   Challenge Handling").

use std::net::IpAddr;

use ipnet::IpNet;
use poem::Request;
use poem::http::HeaderValue;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use qudag_application::admission::RequestContext;
use qudag_application::ports::{AuthScheme, Credential, DpopProof};
use qudag_domain::rbac::Scope;
use serde_json::Value;

/// Where the server is reached from outside, for metadata URLs and DPoP `htu`.
#[derive(Clone, Debug, Default)]
pub struct PublicOrigin {
    /// The configured external base URL (`QUDAG_PUBLIC_URL`), without a trailing slash.
    /// Start-up requires it while authentication is on and the server is bound off
    /// loopback, so the origin comes from a request only on loopback (or with
    /// authentication off).
    pub configured: Option<String>,
    /// Proxies whose `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` are
    /// believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl PublicOrigin {
    /// Whether `peer` (the address the connection came from) is a trusted proxy; an
    /// IPv4-mapped IPv6 address counts as the IPv4 address it is.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        is_trusted(&self.trusted_proxies, peer)
    }

    /// The client's address for `req`: the peer's, or behind a trusted proxy the client the
    /// `X-Forwarded-For` chain names (see [`client_address`]); `None` when the connection
    /// has no IP peer.
    pub fn client_addr(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.remote_addr().as_socket_addr()?.ip();
        let lines: Vec<&str> =
            req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        Some(client_address(peer, &lines, &self.trusted_proxies))
    }

    /// The external base URL of `req`: the configured one, else the scheme and host the
    /// request came with — `X-Forwarded-Proto`/`-Host` only from a trusted proxy; the `Host`
    /// header, or the authority of an HTTP/2 request, otherwise.
    pub fn base(&self, req: &Request) -> String {
        if let Some(c) = &self.configured {
            return c.clone();
        }
        let headers = req.headers();
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let trusted = req.remote_addr().as_socket_addr().is_some_and(|a| self.is_trusted(a.ip()));
        // The first value is the one the outermost proxy saw from the client.
        let forwarded = |name: &str| {
            if trusted {
                text(name).and_then(|v| v.split(',').next()).map(str::trim).filter(|v| !v.is_empty())
            } else {
                None
            }
        };
        let scheme = forwarded("x-forwarded-proto")
            .filter(|p| p.eq_ignore_ascii_case("http") || p.eq_ignore_ascii_case("https"))
            .unwrap_or(req.scheme().as_str());
        let host = forwarded("x-forwarded-host")
            .or_else(|| text("host"))
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .map(str::to_owned)
            .or_else(|| req.local_addr().as_socket_addr().map(ToString::to_string))
            .unwrap_or_else(|| "localhost".to_owned());
        format!("{}://{host}", scheme.to_ascii_lowercase())
    }

    /// The URL of the protected-resource metadata of the MCP endpoint (RFC 9728 §3.1,
    /// path inserted).
    pub fn metadata_url(&self, req: &Request) -> String {
        format!("{}{METADATA_PATH}/mcp", self.base(req))
    }
}

/// The well-known path of the protected-resource metadata.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// What admission needs to know of `req`: its id, the client's address and credential.
pub fn request_context(req: &Request, origin: &PublicOrigin) -> RequestContext {
    let request_id = req.extensions().get::<crate::RequestId>().map(|r| r.0.clone()).unwrap_or_default();
    let client_addr = origin.client_addr(req);
    let (credential, credential_problem) = credential(req, || format!("{}{}", origin.base(req), req.uri().path()));
    RequestContext { request_id, client_addr, credential, credential_problem }
}

/// Whether `ip` is in one of the `trusted` blocks, an IPv4-mapped IPv6 address counting as
/// the IPv4 address it is.
fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|block| block.contains(&ip))
}

/// One hop of `X-Forwarded-For`: an address, possibly with a port (`1.2.3.4:80`,
/// `[2001:db8::1]:443`), IPv4-mapped addresses as IPv4.
fn hop(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let ip = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| text.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(ip.to_canonical())
}

/// The client's address: the peer, unless the peer is a trusted proxy; then the chain of
/// `X-Forwarded-For` (all its header `lines`, in order, as one list) is read from the right,
/// each proxy's entry naming who connected to it, until an address that is not a trusted
/// proxy: that is the client. The part left of it was written by the client and is never
/// believed. An entry that is not an address ends the walk at the last trusted hop; a chain
/// of trusted proxies only gives its leftmost entry.
fn client_address(peer: IpAddr, lines: &[&str], trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(trusted, peer) {
        return peer;
    }
    let mut nearest = peer;
    for entry in lines.iter().rev().flat_map(|line| line.rsplit(',')) {
        if entry.trim().is_empty() {
            continue;
        }
        let Some(ip) = hop(entry) else { return nearest };
        if !is_trusted(trusted, ip) {
            return ip;
        }
        nearest = ip;
    }
    nearest
}

/// The credential of `req` (and a reason to refuse it, if it is carried wrongly). `htu`
/// gives the request's external URL for a DPoP proof.
pub fn credential(req: &Request, htu: impl FnOnce() -> String) -> (Option<Credential>, Option<(&'static str, String)>) {
    let headers = req.headers();
    if req.uri().query().is_some_and(|q| has_param(q, "access_token")) {
        return (
            None,
            Some((
                "token_in_query",
                "access tokens are accepted only in the Authorization header, never in the URL".into(),
            )),
        );
    }
    let mut values = headers.get_all("authorization").iter();
    let Some(value) = values.next() else { return (None, None) };
    if values.next().is_some() {
        return (None, Some(("multiple_credentials", "more than one Authorization header".into())));
    }
    let Ok(value) = value.to_str() else {
        return (None, Some(("malformed_header", "the Authorization header is not text".into())));
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return (
            None,
            Some(("malformed_header", "the Authorization header has no credential after the scheme".into())),
        );
    };
    let token = token.trim().to_owned();
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        AuthScheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        AuthScheme::Dpop
    } else {
        return (
            None,
            Some((
                "unsupported_scheme",
                format!("authorization scheme {scheme:?} is not accepted; use Bearer or DPoP"),
            )),
        );
    };
    let mut proofs = headers.get_all("dpop").iter();
    let dpop = match (proofs.next(), proofs.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => return (None, Some(("multiple_credentials", "more than one DPoP header".into()))),
        (Some(p), None) => p.to_str().ok().map(|proof| DpopProof {
            proof: proof.trim().to_owned(),
            method: req.method().as_str().to_owned(),
            url: htu(),
        }),
    };
    (Some(Credential { token, scheme, dpop }), None)
}

/// Whether a form body (`application/x-www-form-urlencoded`) carries `access_token`.
pub fn form_has_token(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok_and(|b| has_param(b, "access_token"))
}

fn has_param(query: &str, name: &str) -> bool {
    query.split('&').any(|pair| pair.split('=').next().is_some_and(|k| k == name))
}

/// The `WWW-Authenticate` value for the OAuth error members `oauth` (see
/// [`oauth_error_data`](crate::errors::oauth_error_data)) and the metadata URL.
pub fn challenge(oauth: &Value, metadata_url: &str) -> Option<HeaderValue> {
    let scheme = oauth.get("scheme").and_then(Value::as_str).unwrap_or("Bearer");
    let mut params = vec![format!("resource_metadata=\"{}\"", quote(metadata_url))];
    for name in ["error", "error_description", "scope"] {
        if let Some(v) = oauth.get(name).and_then(Value::as_str) {
            params.push(format!("{name}=\"{}\"", quote(v)));
        }
    }
    if scheme == "DPoP" {
        params.push(format!("algs=\"{DPOP_ALGS}\""));
    }
    HeaderValue::from_str(&format!("{scheme} {}", params.join(", "))).ok()
}

/// The DPoP proof algorithms accepted.
pub const DPOP_ALGS: &str = "ES256 ES384 EdDSA RS256 RS384 RS512 PS256 PS384 PS512";

/// A challenge parameter's value: quotes and backslashes escaped, control characters
/// (which a header cannot carry) replaced.
fn quote(v: &str) -> String {
    v.chars()
        .map(|c| match c {
            '"' | '\\' => format!("\\{c}"),
            c if c.is_control() || !c.is_ascii() => "?".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

#[derive(Tags)]
enum ApiTags {
    /// OAuth 2.0 protected-resource metadata.
    #[oai(rename = "OAuth")]
    OAuth,
}

/// RFC 9728 protected-resource metadata.
#[derive(Object, Debug, Clone, PartialEq)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier: the MCP endpoint's URL.
    pub resource: String,
    /// The authorization servers (issuers) whose tokens are accepted.
    pub authorization_servers: Vec<String>,
    /// The scopes this API understands.
    pub scopes_supported: Vec<String>,
    /// How tokens are sent: only in the `Authorization` header.
    pub bearer_methods_supported: Vec<String>,
    /// The JWS algorithms accepted for DPoP proofs.
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// A human-readable name.
    pub resource_name: String,
}

/// The metadata answer.
#[derive(ApiResponse, Debug)]
pub enum MetadataResponse {
    /// The metadata.
    #[oai(status = 200)]
    Ok(Json<ProtectedResourceMetadata>, #[oai(header = "Cache-Control")] String),
    /// Authentication is off: there is no authorization server.
    #[oai(status = 404)]
    NotFound,
}

/// The RFC 9728 endpoints.
#[derive(Debug, Clone)]
pub struct OAuthApi {
    /// The issuer, when authentication is on.
    pub issuer: Option<String>,
    /// The external origin.
    pub origin: PublicOrigin,
}

impl OAuthApi {
    fn metadata(&self, req: &Request) -> MetadataResponse {
        let Some(issuer) = &self.issuer else { return MetadataResponse::NotFound };
        MetadataResponse::Ok(
            Json(ProtectedResourceMetadata {
                resource: format!("{}/mcp", self.origin.base(req)),
                authorization_servers: vec![issuer.clone()],
                scopes_supported: Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
                bearer_methods_supported: vec!["header".into()],
                dpop_signing_alg_values_supported: DPOP_ALGS.split(' ').map(str::to_owned).collect(),
                resource_name: "QuDAG MCP server".into(),
            }),
            "max-age=3600".into(),
        )
    }
}

#[OpenApi(tag = "ApiTags::OAuth")]
impl OAuthApi {
    /// Protected-resource metadata of the MCP endpoint
    ///
    /// RFC 9728 metadata for the resource `/mcp` (path-inserted well-known URI): its
    /// authorization server, scopes and accepted token presentations.
    #[oai(
        path = "/.well-known/oauth-protected-resource/mcp",
        method = "get",
        operation_id = "protectedResourceMetadataMcp"
    )]
    async fn for_mcp(&self, req: &Request) -> MetadataResponse {
        self.metadata(req)
    }

    /// Protected-resource metadata (root)
    ///
    /// The same document at the root well-known URI, for clients that look there.
    #[oai(path = "/.well-known/oauth-protected-resource", method = "get", operation_id = "protectedResourceMetadata")]
    async fn root(&self, req: &Request) -> MetadataResponse {
        self.metadata(req)
    }
}

#[cfg(test)]
mod tests {
    use poem::http::uri::Scheme;

    use super::*;

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "192.0.2.1/32".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // A direct client: its header is ignored.
        assert_eq!(client_address(ip("203.0.113.9"), &["1.2.3.4"], &trusted), ip("203.0.113.9"));
        // Through one trusted proxy.
        assert_eq!(client_address(ip("10.1.2.3"), &["198.51.100.7"], &trusted), ip("198.51.100.7"));
        // A client forging a hop in front of two trusted proxies: the nearest untrusted hop wins.
        assert_eq!(client_address(ip("10.1.2.3"), &["6.6.6.6, 198.51.100.7, 192.0.2.1"], &trusted), ip("198.51.100.7"));
        // No header, or garbage: the proxy itself.
        assert_eq!(client_address(ip("10.1.2.3"), &[], &trusted), ip("10.1.2.3"));
        assert_eq!(client_address(ip("10.1.2.3"), &["garbage"], &trusted), ip("10.1.2.3"));
        let block = |s: &str| s.parse::<IpNet>().unwrap();
        assert!(block("::/0").contains(&ip("::1")) && !block("10.0.0.0/8").contains(&ip("::1")));
    }

    #[test]
    fn the_forwarded_chain_is_read_across_every_header_line_from_the_right() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // The client's own line first, the proxies' line last: the last line is the nearest.
        assert_eq!(
            client_address(ip("10.0.0.2"), &["6.6.6.6", "198.51.100.7, 10.0.0.1"], &trusted),
            ip("198.51.100.7")
        );
        // A forged address alone on the first line is not the client.
        assert_eq!(client_address(ip("10.0.0.2"), &["1.1.1.1", "203.0.113.5"], &trusted), ip("203.0.113.5"));
        // Entries with ports and bracketed IPv6 are addresses too.
        assert_eq!(client_address(ip("10.0.0.2"), &["6.6.6.6", "203.0.113.5:4711"], &trusted), ip("203.0.113.5"));
        assert_eq!(client_address(ip("10.0.0.2"), &["[2001:db8::7]:443"], &trusted), ip("2001:db8::7"));
        // Garbage right of the client ends the walk at the last trusted hop, not beyond it.
        assert_eq!(client_address(ip("10.0.0.2"), &["6.6.6.6, garbage, 10.0.0.9"], &trusted), ip("10.0.0.9"));
        // Only trusted hops: the leftmost of them.
        assert_eq!(client_address(ip("10.0.0.2"), &["10.0.0.7, 10.0.0.8"], &trusted), ip("10.0.0.7"));
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_address() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // A proxy reaching a dual-stack listener is seen as ::ffff:10.0.0.2, and is trusted.
        assert_eq!(client_address(ip("::ffff:10.0.0.2"), &["198.51.100.7"], &trusted), ip("198.51.100.7"));
        // A direct client is reported as IPv4.
        assert_eq!(client_address(ip("::ffff:203.0.113.9"), &["1.2.3.4"], &trusted), ip("203.0.113.9"));
        // Mapped hops in the chain are trusted proxies too.
        assert_eq!(client_address(ip("10.0.0.2"), &["198.51.100.7, ::ffff:10.0.0.3"], &trusted), ip("198.51.100.7"));
        let origin = PublicOrigin { configured: None, trusted_proxies: trusted };
        assert!(origin.is_trusted(ip("::ffff:10.1.1.1")) && !origin.is_trusted(ip("::ffff:11.1.1.1")));
    }

    /// A request from `peer` to `uri` with `headers`.
    fn from_peer(peer: &str, uri: &str, headers: &[(&str, &str)]) -> Request {
        let mut builder = poem::http::Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        let peer = poem::web::RemoteAddr(poem::Addr::SocketAddr(peer.parse().unwrap()));
        let parts = poem::RequestParts::from((parts, poem::web::LocalAddr::default(), peer, Scheme::HTTP));
        Request::from_parts(parts, poem::Body::empty())
    }

    fn from(peer: &str, headers: &[(&str, &str)]) -> Request {
        from_peer(peer, "/mcp", headers)
    }

    #[test]
    fn forwarded_host_and_proto_are_believed_only_from_trusted_proxies() {
        let origin = PublicOrigin { configured: None, trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()] };
        let forged = [("host", "127.0.0.1:3000"), ("x-forwarded-host", "evil.example"), ("x-forwarded-proto", "https")];
        assert_eq!(origin.base(&from("203.0.113.9:5000", &forged)), "http://127.0.0.1:3000");
        assert_eq!(origin.base(&from("10.0.0.2:5000", &forged)), "https://evil.example");
        assert_eq!(origin.base(&from("[::ffff:10.0.0.2]:5000", &forged)), "https://evil.example");
        // A scheme that is not http(s) is not a scheme.
        let odd = [("host", "mcp.local"), ("x-forwarded-proto", "javascript")];
        assert_eq!(origin.base(&from("10.0.0.2:5000", &odd)), "http://mcp.local");
        // The configured URL wins over every header.
        let configured = PublicOrigin { configured: Some("https://mcp.example.com".into()), ..origin };
        assert_eq!(configured.base(&from("10.0.0.2:5000", &forged)), "https://mcp.example.com");
    }

    #[test]
    fn an_http2_request_without_host_takes_its_authority() {
        let req = from_peer("127.0.0.1:4000", "http://mcp.local:8080/mcp", &[]);
        assert_eq!(PublicOrigin::default().base(&req), "http://mcp.local:8080");
    }

    #[test]
    fn request_context_reads_every_forwarded_line() {
        let origin = PublicOrigin { configured: None, trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()] };
        let req = from(
            "[::ffff:10.0.0.2]:5000",
            &[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.7, 10.0.0.1")],
        );
        assert_eq!(request_context(&req, &origin).client_addr, Some("198.51.100.7".parse().unwrap()));
    }

    #[test]
    fn tokens_are_read_only_from_the_header() {
        let req = Request::builder().uri_str("/mcp?access_token=abc").finish();
        let (cred, problem) = credential(&req, String::new);
        assert!(cred.is_none());
        assert_eq!(problem.unwrap().0, "token_in_query");

        let req = Request::builder().header("authorization", "Bearer  abc ").finish();
        let (cred, problem) = credential(&req, String::new);
        assert!(problem.is_none());
        let cred = cred.unwrap();
        assert_eq!((cred.token.as_str(), cred.scheme), ("abc", AuthScheme::Bearer));

        let req = Request::builder()
            .method(poem::http::Method::POST)
            .header("authorization", "DPoP abc")
            .header("dpop", "proof")
            .finish();
        let (cred, _) = credential(&req, || "https://mcp.example/mcp".into());
        let proof = cred.unwrap().dpop.unwrap();
        assert_eq!((proof.method.as_str(), proof.url.as_str()), ("POST", "https://mcp.example/mcp"));

        let req = Request::builder().header("authorization", "Basic dXNlcjpwdw==").finish();
        assert_eq!(credential(&req, String::new).1.unwrap().0, "unsupported_scheme");
        let req = Request::builder().header("authorization", "Bearer").finish();
        assert_eq!(credential(&req, String::new).1.unwrap().0, "malformed_header");
        assert!(form_has_token(b"a=1&access_token=x"));
        assert!(!form_has_token(b"a=1&not_access_token=x"));
    }
}
