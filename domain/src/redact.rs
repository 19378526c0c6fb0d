//! What may be shown of a URL that can carry credentials.
//!
//! Connection strings (Redis, PostgreSQL, an OTLP collector) are printed by `check-config`,
//! written to logs and put into error messages; their passwords must never be. This is the
//! one rule for all of them, so every place that shows such a URL hides the same parts.

/// `url` with its password replaced by `***`: in the user-info part
/// (`redis://user:secret@host` → `redis://user:***@host`) and in a `password=` query
/// parameter; everything else (scheme, user name, host, path, other parameters) is kept.
///
/// The user info ends at the *last* `@` after the scheme: passwords often hold an unencoded
/// `@`, `/`, `?` or `#`, and cutting at the first `@` (or at the first `/`) would print part
/// of one. A URL without user info but with an `@` further on (in its path or query) may
/// therefore lose more than its password; that errs on the side of hiding.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => match userinfo.split_once(':') {
            Some((user, _password)) => (format!("{user}:***@"), rest),
            None => (format!("{userinfo}@"), rest),
        },
        None => (String::new(), rest),
    };
    let rest = match rest.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, format!("#{f}")),
                None => (query, String::new()),
            };
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}{fragment}", query.join("&"))
        }
        None => rest.to_owned(),
    };
    format!("{scheme}{userinfo}{rest}")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn postgres_passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:s3cret@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redact_url("postgres://u:p@ss@db/x?sslmode=require"), "postgres://u:***@db/x?sslmode=require");
        assert_eq!(
            redact_url("postgres://u@db/x?password=s3cret&sslmode=disable"),
            "postgres://u@db/x?password=***&sslmode=disable"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
        assert_eq!(redact_url("postgresql://u:s3cret@[::1]:5432"), "postgresql://u:***@[::1]:5432");
        assert_eq!(redact_url("postgres://u:pa/ss?x@db/x"), "postgres://u:***@db/x");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn redis_passwords_are_redacted_whatever_they_hold() {
        assert_eq!(redact_url("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact_url("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        assert_eq!(redact_url("rediss://h:6380/2"), "rediss://h:6380/2");
        // A password holding `@` and `/`: cut at the last `@`, never inside the password.
        let url = "redis://default:p@ss/w0rd@cache.internal:6379/2";
        assert_eq!(redact_url(url), "redis://default:***@cache.internal:6379/2");
        let shown = redact_url("rediss://:a@b/c@d@10.0.0.5:6380/0");
        assert_eq!(shown, "rediss://:***@10.0.0.5:6380/0");
        assert!(!shown.contains("a@b") && !shown.contains("c@d"), "{shown}");
    }

    #[test]
    fn collector_endpoints_keep_everything_but_the_password() {
        assert_eq!(redact_url("https://collector:4317"), "https://collector:4317");
        assert_eq!(redact_url("https://otel:t0ken@collector:4317/v1"), "https://otel:***@collector:4317/v1");
    }
}
