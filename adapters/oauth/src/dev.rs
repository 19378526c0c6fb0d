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
    /// The key in `path`, created (mode 0600, in a directory created with mode 0700) if the
    /// file does not exist.
    ///
    /// Processes that start together (`serve --dev &` and `dev-token` at once, as the quick
    /// start does) end up with the same key: the file appears complete or not at all, and a
    /// process that finds another's key already in place uses that one. Whoever reads the
    /// key can mint tokens a `--dev` server trusts, and whoever may replace it can plant
    /// their own, so the key is refused when the file is not owned by this process's user
    /// or other users may read or change it, and when its directory is owned by another
    /// user (root aside) or other users may write to it (the shared temporary directory).
    ///
    /// # Errors
    /// A message naming the file or directory when it cannot be read, written or parsed, or
    /// is not private to this user.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        check_dir(dir)?;
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

/// Create `dir` (mode 0700) and its missing parents (default mode) unless it exists.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        other => other,
    }
}

/// Why a key file owned by `owner` with `mode` may not be trusted by user `me`, if it may
/// not.
#[cfg(unix)]
fn file_refusal(path: &Path, owner: u32, mode: u32, me: u32) -> Option<String> {
    if owner != me {
        return Some(format!(
            "{} is owned by user {owner}, not by this user ({me}), who could then mint tokens a --dev server \
             trusts: remove it (a new key is made) or use your own key (QUDAG_DEV_KEY_PATH)",
            path.display()
        ));
    }
    if mode & 0o077 != 0 {
        return Some(format!(
            "{} may be read or changed by other users (mode {:o}), who could then mint tokens a --dev server \
             trusts: remove it (a new key is made) or make it private (chmod 600)",
            path.display(),
            mode & 0o777
        ));
    }
    None
}

/// Why the directory `dir` of a key file, owned by `owner` with `mode`, may not be trusted
/// by user `me`, if it may not: another user could replace the key in it.
#[cfg(unix)]
fn dir_refusal(dir: &Path, owner: u32, mode: u32, me: u32) -> Option<String> {
    if owner != me && owner != 0 {
        return Some(format!(
            "the developer key's directory {} is owned by user {owner}, not by this user ({me}), who could \
             replace the key: use a directory of your own (QUDAG_DEV_KEY_PATH)",
            dir.display()
        ));
    }
    if mode & 0o022 != 0 {
        return Some(format!(
            "the developer key's directory {} may be written by other users (mode {:o}), who could plant or \
             replace the key: use a directory of your own (QUDAG_DEV_KEY_PATH), or chmod 700 it",
            dir.display(),
            mode & 0o7777
        ));
    }
    None
}

/// Refuse the key's directory when another user owns it or may write to it.
fn check_dir(dir: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        if let Some(refusal) = dir_refusal(dir, meta.uid(), meta.mode(), rustix::process::geteuid().as_raw()) {
            return Err(refusal);
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The bytes of `path`, `None` when there is no such file; refused when another user owns
/// it or its mode lets other users read or change it.
fn read_private(path: &Path) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if let Some(refusal) = file_refusal(path, meta.uid(), meta.mode(), rustix::process::geteuid().as_raw()) {
            return Err(refusal);
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

    #[cfg(unix)]
    #[test]
    fn a_key_or_directory_of_another_user_is_refused() {
        let path = Path::new("/somewhere/dev.key");
        assert_eq!(file_refusal(path, 1000, 0o100600, 1000), None);
        let err = file_refusal(path, 1001, 0o100600, 1000).unwrap();
        assert!(err.contains("/somewhere/dev.key") && err.contains("owned by user 1001"), "{err}");
        assert!(file_refusal(path, 1000, 0o100640, 1000).unwrap().contains("640"));
        let dir = Path::new("/somewhere");
        assert_eq!(dir_refusal(dir, 1000, 0o40700, 1000), None);
        assert_eq!(dir_refusal(dir, 1000, 0o40755, 1000), None, "others may list it");
        assert_eq!(dir_refusal(dir, 0, 0o40755, 1000), None, "root's directories are trusted");
        assert!(dir_refusal(dir, 1001, 0o40700, 1000).unwrap().contains("owned by user 1001"));
        let shared = dir_refusal(Path::new("/tmp"), 0, 0o41777, 1000).unwrap();
        assert!(shared.contains("/tmp") && shared.contains("1777"), "{shared}");
    }

    /// A key planted by another user, private as it may be, is not trusted (seen as root,
    /// who can give a file away).
    #[cfg(unix)]
    #[test]
    fn a_planted_key_is_refused() {
        let me = rustix::process::geteuid().as_raw();
        let dir = std::env::temp_dir().join(format!("qudag-dev-key-{}-{}", std::process::id(), staging_suffix()));
        let path = dir.join("dev.key");
        DevKey::load_or_create(&path).unwrap();
        if me == 0 {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            let err = DevKey::load_or_create(&path).unwrap_err();
            assert!(err.contains(&path.display().to_string()) && err.contains("owned by user 65534"), "{err}");
            std::os::unix::fs::chown(&path, Some(0), None).unwrap();
        }
        // Its directory open to every user is refused too.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = DevKey::load_or_create(&path).unwrap_err();
        assert!(err.contains(&dir.display().to_string()) && err.contains("777"), "{err}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        DevKey::load_or_create(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_missing_directory_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("qudag-dev-key-{}-{}", std::process::id(), staging_suffix()));
        let dir = base.join("state").join("qudag-mcp");
        DevKey::load_or_create(&dir.join("dev.key")).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
