//! The developer mode's tokens (`qudag-mcp dev-token`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use qudag_adapter_oauth::dev::DevKey;
use qudag_domain::rbac::{Role, useful_scopes};

use crate::settings::Settings;

/// A token for a server running `serve --dev` with the same settings: signed by the
/// developer key, for the developer audience, holding `roles` and `scope` (default: every
/// scope the roles can use).
///
/// # Errors
/// A message naming the bad role, or the key file that cannot be used.
pub fn token(
    settings: &Settings,
    roles: &[String],
    scope: Option<&str>,
    subject: Option<&str>,
    ttl_secs: u64,
) -> Result<String, String> {
    let parsed: Vec<Role> = roles
        .iter()
        .map(|r| {
            Role::parse(r).ok_or_else(|| {
                let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("--role {r:?} is not a role; expected one of {}", known.join(", "))
            })
        })
        .collect::<Result<_, _>>()?;
    if ttl_secs == 0 || ttl_secs > 7 * 86_400 {
        return Err(format!("--ttl-secs {ttl_secs}: must be 1 to 604800 (a week)"));
    }
    let scopes: Vec<String> = match scope {
        Some(s) => s.split_whitespace().map(str::to_owned).collect(),
        None => useful_scopes(&parsed).iter().map(|s| s.as_str().to_owned()).collect(),
    };
    let key = DevKey::load_or_create(&settings.auth.dev_key_file()?)?;
    let subject = subject.map_or_else(|| format!("dev-{}", roles[0]), str::to_owned);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();
    let role_names: Vec<&str> = parsed.iter().map(|r| r.as_str()).collect();
    let scope_names: Vec<&str> = scopes.iter().map(String::as_str).collect();
    key.token(&settings.auth.dev_audience(), &subject, &role_names, &scope_names, Duration::from_secs(ttl_secs), now)
}
