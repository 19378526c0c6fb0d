//! The developer mode's own token issuer: a local ES256 key, kept in a file so that
//! `qudag-mcp serve --dev` and `qudag-mcp dev-token` (a separate process) share it.
//!
//! It exists so the quick start works with authentication on. Tokens it signs name the
//! issuer [`DEV_ISSUER`], which no real authorization server uses; a server not started
//! with `--dev` never trusts its key.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::jwks::VerifyKey;

/// The issuer of developer-mode tokens.
pub const DEV_ISSUER: &str = "urn:qudag-mcp:dev";

/// The developer mode's signing key.
pub struct DevKey {
    encoding: EncodingKey,
    jwk: Value,
    kid: String,
}

impl std::fmt::Debug for DevKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl DevKey {
    /// The key in `path`, created (mode 0600) if the file does not exist.
    ///
    /// Processes that start together (`serve --dev &` and `dev-token` at once, as the quick
    /// start does) end up with the same key: the file appears complete or not at all, and a
    /// process that finds another's key already in place uses that one. A file other users
    /// may read or change is refused: whoever reads the key can mint tokens a `--dev` server
    /// trusts, and the default place is the shared temporary directory.
    ///
    /// # Errors
    /// A message naming the file when it cannot be read, written or parsed, or is not
    /// private to its owner.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        let pem = match read_private(path)? {
            Some(pem) => pem,
            None => {
                let pem = generate_pem()?;
                match write_private(path, &pem) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "Developer signing key created");
                        pem
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_private(path)?
                        .ok_or_else(|| format!("cannot read {}: it vanished as it was made", path.display()))?,
                    Err(e) => return Err(format!("cannot write {}: {e}", path.display())),
                }
            }
        };
        Self::from_pem(&pem).map_err(|e| format!("{} is not a PKCS #8 P-256 key: {e}", path.display()))
    }

    /// The key from PEM (PKCS #8, P-256).
    ///
    /// # Errors
    /// A message when the PEM is not such a key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let encoding = EncodingKey::from_ec_pem(pem).map_err(|e| e.to_string())?;
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).map_err(|e| e.to_string())?;
        let kid = format!("dev-{}", &jwk.thumbprint(ThumbprintHash::SHA256).map_err(|e| e.to_string())?[..12]);
        jwk.common.key_id = Some(kid.clone());
        let jwk = serde_json::to_value(&jwk).map_err(|e| e.to_string())?;
        Ok(Self { encoding, jwk, kid })
    }

    /// The public key, for the verifier.
    ///
    /// # Errors
    /// Never in practice: the key was parsed from our own JWK.
    pub fn verify_key(&self) -> Result<VerifyKey, String> {
        VerifyKey::from_jwk(&self.jwk)
    }

    /// The public JWK.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// Sign `claims` as an access token (`typ: at+jwt`).
    ///
    /// # Errors
    /// A message if signing fails.
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }

    /// An access token for `subject` with `roles` and `scopes`, meant for `audience`,
    /// valid for `ttl` from `now` (seconds since the epoch).
    ///
    /// # Errors
    /// A message if signing fails.
    pub fn token(
        &self,
        audience: &str,
        subject: &str,
        roles: &[&str],
        scopes: &[&str],
        ttl: Duration,
        now: u64,
    ) -> Result<String, String> {
        self.sign(&json!({
            "iss": DEV_ISSUER,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "exp": now + ttl.as_secs(),
            "roles": roles,
            "scope": scopes.join(" "),
            "jti": hex_id()?,
        }))
    }
}

fn hex_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|e| format!("no entropy for a token id: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn generate_pem() -> Result<Vec<u8>, String> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|e| format!("cannot generate a key: {e}"))?;
    let body = STANDARD.encode(pkcs8.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem.into_bytes())
}

/// The bytes of `path`, `None` when there is no such file; refused when its mode lets
/// other users read or change it.
fn read_private(path: &Path) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(|e| format!("cannot read {}: {e}", path.display()))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} may be read or changed by other users (mode {:o}), who could then mint tokens a --dev server \
                 trusts: remove it (a new key is made) or make it private (chmod 600)",
                path.display(),
                mode & 0o777
            ));
        }
    }
    let mut pem = Vec::new();
    file.read_to_end(&mut pem).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(Some(pem))
}

/// Write `contents` to `path` (mode 0600) unless it exists (`AlreadyExists`), so that the
/// file is seen whole or not at all: written to a file of this process's own beside it,
/// then linked into place, which fails rather than replaces.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staging = dir.join(format!(".{name}.{}.{:x}", std::process::id(), staging_suffix()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&staging).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&staging, path));
    let _ = std::fs::remove_file(&staging);
    linked
}

/// A number that differs between calls of one process (threads included).
fn staging_suffix() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn processes_starting_together_share_one_key() {
        let dir = std::env::temp_dir().join(format!("qudag-dev-key-{}-{}", std::process::id(), staging_suffix()));
        let path = dir.join("dev.key");
        let kids: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> =
                (0..8).map(|_| scope.spawn(|| DevKey::load_or_create(&path).unwrap().kid.clone())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(kids.iter().all(|k| *k == kids[0]), "{kids:?}");
        assert_eq!(DevKey::load_or_create(&path).unwrap().kid, kids[0], "the key stays");
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files, vec![std::ffi::OsString::from("dev.key")], "no staging file is left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_key_other_users_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("qudag-dev-key-{}-{}", std::process::id(), staging_suffix()));
        let path = dir.join("dev.key");
        let kid = DevKey::load_or_create(&path).unwrap().kid;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = DevKey::load_or_create(&path).unwrap_err();
        assert!(err.contains("other users") && err.contains("644"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(DevKey::load_or_create(&path).unwrap().kid, kid);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
