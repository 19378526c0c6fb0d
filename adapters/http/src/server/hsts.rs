//! HSTS (RFC 6797) for a server reached over https: a browser that has seen the header
//! once refuses plain HTTP to this host afterwards, so a downgrade on a later visit fails.

use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

/// `Strict-Transport-Security` on every response, for https only (RFC 6797 §7.2: a
/// browser ignores it over plain HTTP, and sending it there would mislead).
#[derive(Clone, Copy, Debug, Default)]
pub struct Hsts;

/// The header value: two years, subdomains included.
pub const HSTS_VALUE: &str = "max-age=63072000; includeSubDomains";

impl<E: Endpoint> Middleware<E> for Hsts {
    type Output = HstsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        HstsEndpoint(ep)
    }
}

/// The endpoint [`Hsts`] wraps.
#[derive(Debug)]
pub struct HstsEndpoint<E>(E);

impl<E: Endpoint> Endpoint for HstsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let mut response = match self.0.call(req).await {
            Ok(output) => output.into_response(),
            Err(error) => error.into_response(),
        };
        response
            .headers_mut()
            .insert(poem::http::header::STRICT_TRANSPORT_SECURITY, poem::http::HeaderValue::from_static(HSTS_VALUE));
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use poem::http::StatusCode;
    use poem::test::TestClient;
    use poem::{EndpointExt, handler};

    use super::*;

    #[handler]
    fn refused() -> poem::Result<&'static str> {
        Err(poem::Error::from_status(StatusCode::FORBIDDEN))
    }

    #[tokio::test]
    async fn every_response_carries_the_header_errors_included() {
        let cli = TestClient::new(poem::Route::new().at("/refused", refused).with(Hsts));
        for path in ["/refused", "/missing"] {
            let resp = cli.get(path).send().await;
            resp.assert_header(poem::http::header::STRICT_TRANSPORT_SECURITY, HSTS_VALUE);
        }
    }
}
