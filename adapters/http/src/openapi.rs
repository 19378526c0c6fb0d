//! What the OpenAPI document says beyond poem-openapi's derives, so that it is a contract a
//! client (or a fuzzer) can rely on:
//!
//! - [`EmptyIsAbsent`]: an optional query parameter given empty (`action=`) means the same
//!   as one left out; the document marks every optional query parameter `allowEmptyValue`
//!   ([`document`]);
//! - string enums whose values are the domain's own lists ([`AuditActionName`],
//!   [`RoleName`], [`PermissionName`], [`ScopeName`]), and [`DateTime`] (RFC 3339);
//! - [`BearerToken`]: the `bearerAuth` security scheme, so the docs page offers
//!   "Authorize" and each protected operation says what it needs;
//! - [`allowed_methods`] and [`AllowOn405`]: every 405 names the methods the path serves
//!   (RFC 9110 §15.5.6).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, RequestBody, Response, Result};
use poem_openapi::registry::{MetaApi, MetaSchema, MetaSchemaRef, MetaSecurityScheme, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use qudag_domain::Timestamp;
use qudag_domain::audit::AuditAction;
use qudag_domain::rbac::{Permission, Role, Scope};
use serde_json::Value;

/// An optional query parameter for which an empty value (`name=`) means the same as leaving
/// it out; given twice, it is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmptyIsAbsent<T>(pub Option<T>);

impl<T> EmptyIsAbsent<T> {
    /// The value, if one was given.
    pub fn into_inner(self) -> Option<T> {
        self.0
    }
}

impl<T: Type> Type for EmptyIsAbsent<T> {
    const IS_REQUIRED: bool = false;

    type RawValueType = T::RawValueType;

    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        format!("optional_{}", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(Type::as_raw_value)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(value) => value.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }

    fn is_none(&self) -> bool {
        self.0.is_none()
    }
}

impl<T: ParseFromParameter> ParseFromParameter for EmptyIsAbsent<T> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        if value.is_empty() {
            return Ok(Self(None));
        }
        T::parse_from_parameter(value).map(|v| Self(Some(v))).map_err(ParseError::propagate)
    }

    fn parse_from_parameters<I: IntoIterator<Item = A>, A: AsRef<str>>(iter: I) -> ParseResult<Self> {
        let mut values = iter.into_iter();
        let Some(first) = values.next() else { return Ok(Self(None)) };
        if values.next().is_some() {
            return Err(ParseError::custom("given more than once"));
        }
        Self::parse_from_parameter(first.as_ref())
    }
}

/// Implements the poem-openapi traits for a string newtype: its schema is `$schema`,
/// `$register` registers what the schema refers to, and it accepts what `$accepts` accepts.
macro_rules! string_type {
    ($name:ident, $schema:expr, $register:expr, $accepts:expr, $expected:expr) => {
        impl Type for $name {
            const IS_REQUIRED: bool = true;

            type RawValueType = Self;

            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }

            fn schema_ref() -> MetaSchemaRef {
                $schema
            }

            fn register(registry: &mut Registry) {
                ($register)(registry)
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(std::iter::once(self))
            }
        }

        impl ParseFromParameter for $name {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                if ($accepts)(value) {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(ParseError::custom(format!("{value:?}: expected {}", $expected)))
                }
            }
        }

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                match value {
                    Some(Value::String(s)) => Self::parse_from_parameter(&s),
                    other => Err(ParseError::expected_type(other.unwrap_or_default())),
                }
            }
        }

        impl ToJSON for $name {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.clone()))
            }
        }

        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

/// A string enum of the document whose values are one of the domain's lists: a newtype
/// over the text, registered once as the schema `$schema`.
macro_rules! domain_enum {
    ($(#[$doc:meta])* $name:ident, $schema:literal, $description:literal, $values:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name(pub String);

        impl $name {
            /// Every value, as the domain spells it.
            pub fn values() -> Vec<&'static str> {
                $values
            }
        }

        string_type!(
            $name,
            MetaSchemaRef::Reference($schema.to_owned()),
            |registry: &mut Registry| {
                registry.create_schema::<Self, _>($schema.to_owned(), |_| MetaSchema {
                    rust_typename: Some(std::any::type_name::<Self>()),
                    description: Some($description),
                    enum_items: Self::values().into_iter().map(Value::from).collect(),
                    ..MetaSchema::new("string")
                })
            },
            |v: &str| Self::values().contains(&v),
            format!("one of {}", Self::values().join(", "))
        );
    };
}

domain_enum!(
    /// An audit action (`tool.called`, `auth.failed`, ...).
    AuditActionName,
    "AuditAction",
    "What an audit event records.",
    AuditAction::ALL.iter().map(|a| a.as_str()).collect()
);

domain_enum!(
    /// A role name.
    RoleName,
    "Role",
    "A role of this server.",
    Role::ALL.iter().map(|r| r.as_str()).collect()
);

domain_enum!(
    /// A permission (`area:verb`).
    PermissionName,
    "Permission",
    "A permission (`area:verb`): what a tool, prompt or endpoint needs.",
    Permission::ALL.iter().map(|p| p.as_str()).collect()
);

domain_enum!(
    /// An OAuth scope of this server.
    ScopeName,
    "Scope",
    "An OAuth scope this server understands.",
    Scope::ALL.iter().map(|s| s.as_str()).collect()
);

/// An RFC 3339 date-time (`2026-11-24T10:15:30Z`, `…30.25+01:00`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DateTime(pub String);

string_type!(
    DateTime,
    MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date-time"))),
    |_: &mut Registry| {},
    |v: &str| Timestamp::parse_rfc3339_clamped(v).is_some(),
    "an RFC 3339 date-time"
);

/// The name of the security scheme of the protected operations.
pub const BEARER_SCHEME: &str = "bearerAuth";

/// An operation parameter that documents the `bearerAuth` security scheme: an OAuth 2.0
/// access token in the `Authorization` header. It extracts nothing — the operation
/// authenticates its caller through admission, which also accepts DPoP-bound tokens and
/// answers refusals with the documented 400/401/403 and their challenges.
#[derive(Clone, Copy, Debug)]
pub struct BearerToken;

impl<'a> ApiExtractor<'a> for BearerToken {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();

    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            BEARER_SCHEME,
            MetaSecurityScheme {
                ty: "http",
                description: Some(
                    "An OAuth 2.0 access token from the configured authorization server, as \
                     `Authorization: Bearer <token>` (or a DPoP-bound token as `Authorization: DPoP \
                     <token>` with a `DPoP` proof header). With `serve --dev`, `qudag-mcp dev-token \
                     --role admin` prints one.",
                ),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("JWT"),
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![BEARER_SCHEME]
    }

    async fn from_request(
        _request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> Result<Self> {
        Ok(Self)
    }
}

/// The document `raw` (poem-openapi's), with what its derives cannot say added: every
/// optional query parameter is `allowEmptyValue` (each is an [`EmptyIsAbsent`]; a test holds
/// the server to it), and the audit trail's pages link to the next one.
///
/// # Panics
/// When `raw` is not JSON (poem-openapi always writes JSON).
pub fn document(raw: &str) -> String {
    let mut doc: Value = serde_json::from_str(raw).expect("poem-openapi writes JSON");
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for operation in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|p| p.values_mut()) {
            for param in operation.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
                let optional_query =
                    param.get("in") == Some(&Value::from("query")) && param.get("required") != Some(&Value::Bool(true));
                if let (true, Some(param)) = (optional_query, param.as_object_mut()) {
                    param.insert("allowEmptyValue".into(), Value::Bool(true));
                }
            }
        }
    }
    // The next page of the audit trail: what `next_cursor` is for.
    if let Some(ok) = doc.pointer_mut("/paths/~1admin~1audit/get/responses/200").and_then(Value::as_object_mut) {
        ok.insert(
            "links".into(),
            serde_json::json!({
                "nextPage": {
                    "operationId": "readAuditTrail",
                    "parameters": { "cursor": "$response.body#/next_cursor" },
                    "description": "The next page: `next_cursor` as `cursor` (with the same filters)."
                }
            }),
        );
    }
    serde_json::to_string_pretty(&doc).expect("a JSON value serializes")
}

/// The methods each path serves, for `Allow`: the document's operations (with HEAD beside
/// GET, which the router answers too) and `extra` routes outside the document.
pub fn allowed_methods(apis: &[MetaApi], extra: &[(&str, &'static str)]) -> HashMap<String, HeaderValue> {
    let mut methods: HashMap<String, Vec<Method>> = HashMap::new();
    for path in apis.iter().flat_map(|api| &api.paths) {
        let entry = methods.entry(path.path.clone()).or_default();
        for operation in &path.operations {
            entry.push(operation.method.clone());
            if operation.method == Method::GET {
                entry.push(Method::HEAD);
            }
        }
    }
    let mut allow: HashMap<String, HeaderValue> = methods
        .into_iter()
        .filter_map(|(path, mut list)| {
            list.dedup();
            let text = list.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
            HeaderValue::from_str(&text).ok().map(|v| (path, v))
        })
        .collect();
    for (path, text) in extra {
        allow.insert((*path).to_owned(), HeaderValue::from_static(text));
    }
    allow
}

/// Adds `Allow` to a 405 that lacks one (the router's own 405s), from a table of the methods
/// each path serves ([`allowed_methods`]).
#[derive(Clone, Debug)]
pub struct AllowOn405(pub Arc<HashMap<String, HeaderValue>>);

impl<E: Endpoint> Middleware<E> for AllowOn405 {
    type Output = AllowOn405Endpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        AllowOn405Endpoint { inner, allow: self.0.clone() }
    }
}

/// [`AllowOn405`] around an endpoint.
#[derive(Debug)]
pub struct AllowOn405Endpoint<E> {
    inner: E,
    allow: Arc<HashMap<String, HeaderValue>>,
}

impl<E: Endpoint> Endpoint for AllowOn405Endpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        // A clone of the URI shares its bytes: nothing is copied on the way to the common
        // answer, which is not a 405.
        let uri = req.uri().clone();
        let mut response = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        if response.status() == StatusCode::METHOD_NOT_ALLOWED
            && !response.headers().contains_key(header::ALLOW)
            && let Some(methods) = self.allow.get(uri.path())
        {
            response.headers_mut().insert(header::ALLOW, methods.clone());
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use poem::http::Method;
    use poem::test::TestClient;
    use serde_json::{Value, json};

    use crate::{HttpState, openapi_json, router};

    fn document() -> Value {
        serde_json::from_str(&openapi_json("1.2.3")).unwrap()
    }

    #[tokio::test]
    async fn every_405_names_the_allowed_methods() {
        let cli = TestClient::new(router(HttpState::minimal("1.2.3")));
        let doc = document();
        let mut checked = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            let declared: Vec<String> = item.as_object().unwrap().keys().map(|m| m.to_uppercase()).collect();
            let mut expected = declared.clone();
            if declared.contains(&"GET".to_owned()) {
                expected.push("HEAD".into());
            }
            for method in ["GET", "PUT", "POST", "DELETE", "PATCH", "TRACE", "OPTIONS", "QUERY"] {
                if declared.iter().any(|m| m == method) {
                    continue;
                }
                let resp = cli.request(Method::from_bytes(method.as_bytes()).unwrap(), path).send().await;
                resp.assert_status(poem::http::StatusCode::METHOD_NOT_ALLOWED);
                let allow = resp.0.headers().get("allow").unwrap_or_else(|| panic!("{method} {path}: no Allow"));
                let mut allowed: Vec<String> = allow.to_str().unwrap().split(", ").map(str::to_owned).collect();
                allowed.sort();
                expected.sort();
                assert_eq!(allowed, expected, "{method} {path}");
                checked += 1;
            }
        }
        assert!(checked >= 50, "{checked}");
        for path in ["/openapi.json", "/docs"] {
            let resp = cli.request(Method::DELETE, path).send().await;
            resp.assert_status(poem::http::StatusCode::METHOD_NOT_ALLOWED);
            resp.assert_header("allow", "GET, HEAD");
        }
    }

    #[test]
    fn the_document_declares_the_bearer_scheme_on_the_admin_operations_only() {
        let doc = document();
        assert_eq!(doc["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let secured = op.get("security").is_some_and(|s| s == &json!([{ "bearerAuth": [] }]));
                assert_eq!(secured, path.starts_with("/admin/"), "{method} {path}");
            }
        }
    }

    #[test]
    fn the_document_says_what_the_admin_endpoints_answer() {
        let doc = document();
        let statuses = |path: &str, method: &str| -> Vec<String> {
            doc["paths"][path][method]["responses"].as_object().unwrap().keys().cloned().collect()
        };
        assert_eq!(statuses("/admin/audit", "get"), ["200", "400", "401", "403", "404", "429", "503"]);
        assert_eq!(
            statuses("/admin/authz/explain", "post"),
            ["200", "400", "401", "403", "404", "408", "413", "415", "429", "503"]
        );
        let event = &doc["components"]["schemas"]["AuditEvent"]["properties"];
        for nullable in ["actor", "target", "request_id", "client_addr", "node"] {
            assert_eq!(event[nullable]["nullable"], true, "{nullable}");
        }
        assert_eq!(doc["components"]["schemas"]["AuditPage"]["properties"]["next_cursor"]["nullable"], true);
        let actions: Vec<&str> = qudag_domain::audit::AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(doc["components"]["schemas"]["AuditAction"]["enum"], json!(actions));
        assert_eq!(doc["components"]["schemas"]["AuditOutcome"]["enum"], json!(["success", "failure", "denied"]));
        let next = &doc["paths"]["/admin/audit"]["get"]["responses"]["200"]["links"]["nextPage"];
        assert_eq!(next["parameters"]["cursor"], "$response.body#/next_cursor");
        for param in doc["paths"]["/admin/audit"]["get"]["parameters"].as_array().unwrap() {
            assert_eq!(param["allowEmptyValue"], true, "{param}");
        }
    }

    /// Without an admin state the endpoints answer 503 once the request is read: so a 503
    /// here means the request was accepted as well formed.
    #[tokio::test]
    async fn empty_query_values_are_absent_and_bad_ones_are_named() {
        let cli = TestClient::new(router(HttpState::minimal("1.2.3")));
        let body = |resp: poem::test::TestResponse| async move {
            serde_json::from_str::<Value>(&resp.0.into_body().into_string().await.unwrap()).unwrap()
        };
        let resp = cli.get("/admin/audit?from=&to=&actor=&action=&outcome=&cursor=&limit=").send().await;
        resp.assert_status(poem::http::StatusCode::SERVICE_UNAVAILABLE);
        let accepted = "/admin/audit?from=1900-01-01T00:00:00Z&to=2026-11-24T10:15:30.25%2B01:00&action=tool.called&outcome=denied&limit=1000";
        cli.get(accepted).send().await.assert_status(poem::http::StatusCode::SERVICE_UNAVAILABLE);
        for (query, reason) in [
            ("action=tool.exploded", "bad_action"),
            ("outcome=meh", "bad_outcome"),
            ("from=yesterday", "bad_from"),
            ("limit=0", "bad_limit"),
            ("limit=1001", "bad_limit"),
            ("limit=ten", "bad_limit"),
            ("action=tool.called&action=auth.failed", "bad_action"),
        ] {
            let resp = cli.get(format!("/admin/audit?{query}")).send().await;
            resp.assert_status(poem::http::StatusCode::BAD_REQUEST);
            resp.assert_content_type("application/json; charset=utf-8");
            assert_eq!(body(resp).await["reason"], reason, "{query}");
        }
    }

    #[tokio::test]
    async fn an_explain_body_in_another_media_type_is_415_in_the_documented_shape() {
        let cli = TestClient::new(router(HttpState::minimal("1.2.3")));
        let resp = cli.post("/admin/authz/explain").body("target=x").send().await;
        resp.assert_status(poem::http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
        resp.assert_content_type("application/json; charset=utf-8");
        let resp =
            cli.post("/admin/authz/explain").content_type("application/json").body("{\"roles\": 5}").send().await;
        resp.assert_status(poem::http::StatusCode::BAD_REQUEST);
        let resp = cli.post("/admin/authz/explain").body_json(&json!({"target": "x", "claims": null})).send().await;
        resp.assert_status(poem::http::StatusCode::SERVICE_UNAVAILABLE);
    }
}
