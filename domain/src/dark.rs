//! `.dark` names: what a valid name is, and the canonical bytes a name record is signed over.
//!
//! A name is one or more DNS-style labels followed by `.dark`: each label 1–63 characters of
//! `a`–`z`, `0`–`9` and `-`, not starting or ending with `-`; at most 253 characters in all.
//! Names are case-insensitive and kept in lowercase. A record maps a name to a network
//! address and the owner's public key; the registry signs the canonical encoding of the
//! record ([`NameRecordBody::signing_bytes`]) so that a record altered in storage fails
//! verification when resolved.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// The suffix every name carries.
pub const SUFFIX: &str = ".dark";
/// The longest name accepted, suffix included.
pub const MAX_NAME_LEN: usize = 253;
/// The longest address accepted.
pub const MAX_ADDRESS_LEN: usize = 512;

/// Why a name or address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name does not end in `.dark`.
    #[error("\"{0}\" does not end in .dark")]
    MissingSuffix(String),
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("name is {0} characters long; at most 253 are allowed")]
    TooLong(usize),
    /// A label is empty, too long, or has a character outside `a-z0-9-`.
    #[error("label \"{label}\" is invalid: {reason}")]
    BadLabel {
        /// The offending label.
        label: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The address is empty, too long or holds control characters.
    #[error("address is invalid: {0}")]
    BadAddress(&'static str),
}

/// A valid `.dark` name, in lowercase.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DarkName(String);

impl DarkName {
    /// Parse and normalize a name.
    ///
    /// # Errors
    /// A [`NameError`] naming the rule broken.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let name = raw.trim().to_ascii_lowercase();
        let Some(labels) = name.strip_suffix(SUFFIX) else {
            return Err(NameError::MissingSuffix(raw.to_owned()));
        };
        if name.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong(name.len()));
        }
        if labels.is_empty() {
            return Err(NameError::BadLabel { label: String::new(), reason: "a name needs a label before .dark" });
        }
        for label in labels.split('.') {
            let reason = if label.is_empty() {
                Some("labels must not be empty")
            } else if label.len() > 63 {
                Some("labels are at most 63 characters")
            } else if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
                Some("only a-z, 0-9 and - are allowed")
            } else if label.starts_with('-') || label.ends_with('-') {
                Some("labels must not start or end with -")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(NameError::BadLabel { label: label.to_owned(), reason });
            }
        }
        Ok(Self(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The names this one is under, nearest first: `a.b.alice.dark` is under
    /// `b.alice.dark` and `alice.dark`; `alice.dark` is under none.
    pub fn ancestors(&self) -> Vec<Self> {
        let labels = &self.0[..self.0.len() - SUFFIX.len()];
        labels.match_indices('.').map(|(i, _)| Self(self.0[i + 1..].to_owned())).collect()
    }
}

impl fmt::Display for DarkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DarkName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DarkName> for String {
    fn from(value: DarkName) -> Self {
        value.0
    }
}

/// Check a network address given for a name: non-empty, at most [`MAX_ADDRESS_LEN`]
/// characters, no whitespace or control characters.
///
/// # Errors
/// [`NameError::BadAddress`].
pub fn check_address(address: &str) -> Result<(), NameError> {
    if address.is_empty() {
        return Err(NameError::BadAddress("it is empty"));
    }
    if address.len() > MAX_ADDRESS_LEN {
        return Err(NameError::BadAddress("it is longer than 512 characters"));
    }
    if address.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(NameError::BadAddress("it contains whitespace or control characters"));
    }
    Ok(())
}

/// What a name record says, before signing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRecordBody {
    /// The name.
    pub name: DarkName,
    /// Where the name points (e.g. `quic://203.0.113.7:4001`).
    pub address: String,
    /// The owner's public key (raw bytes), as given at registration.
    pub public_key: Vec<u8>,
    /// The public key's algorithm (e.g. `ml-dsa-65`, `ml-kem-768`).
    pub key_algorithm: String,
    /// Who registered it (`issuer#subject`).
    pub owner: String,
    /// When it was registered.
    pub registered_at: Timestamp,
    /// When it stops resolving.
    pub expires_at: Timestamp,
}

impl NameRecordBody {
    /// The canonical bytes the registry signs: a domain-separation label, then each field
    /// length-prefixed (u32 big-endian) in a fixed order, timestamps as u64 microseconds.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = b"qudag-dark-name/v1".to_vec();
        for field in [
            self.name.as_str().as_bytes(),
            self.address.as_bytes(),
            &self.public_key,
            self.key_algorithm.as_bytes(),
            self.owner.as_bytes(),
        ] {
            let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(field);
        }
        out.extend_from_slice(&self.registered_at.as_micros().to_be_bytes());
        out.extend_from_slice(&self.expires_at.as_micros().to_be_bytes());
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_and_checked() {
        assert_eq!(DarkName::parse(" Alice.DARK ").unwrap().as_str(), "alice.dark");
        assert_eq!(DarkName::parse("node-1.mesh.dark").unwrap().as_str(), "node-1.mesh.dark");
        assert!(matches!(DarkName::parse("alice.com"), Err(NameError::MissingSuffix(_))));
        assert!(matches!(DarkName::parse(".dark"), Err(NameError::BadLabel { .. })));
        assert!(matches!(DarkName::parse("a..dark"), Err(NameError::BadLabel { .. })));
        assert!(matches!(DarkName::parse("-a.dark"), Err(NameError::BadLabel { .. })));
        assert!(matches!(DarkName::parse("a_b.dark"), Err(NameError::BadLabel { .. })));
        assert!(matches!(DarkName::parse(&format!("{}.dark", "a".repeat(64))), Err(NameError::BadLabel { .. })));
        let long = format!("{}.dark", vec!["a".repeat(60); 5].join("."));
        assert!(matches!(DarkName::parse(&long), Err(NameError::TooLong(_))));
    }

    #[test]
    fn a_name_is_under_each_of_its_parents() {
        let names = |v: Vec<DarkName>| v.iter().map(|n| n.as_str().to_owned()).collect::<Vec<_>>();
        assert_eq!(names(DarkName::parse("a.b.alice.dark").unwrap().ancestors()), ["b.alice.dark", "alice.dark"]);
        assert_eq!(names(DarkName::parse("x.alice.dark").unwrap().ancestors()), ["alice.dark"]);
        assert!(DarkName::parse("alice.dark").unwrap().ancestors().is_empty());
    }

    #[test]
    fn addresses_are_checked() {
        assert!(check_address("quic://203.0.113.7:4001").is_ok());
        assert!(check_address("").is_err());
        assert!(check_address("a b").is_err());
        assert!(check_address(&"x".repeat(513)).is_err());
    }

    #[test]
    fn signing_bytes_change_with_every_field() {
        let body = NameRecordBody {
            name: DarkName::parse("alice.dark").unwrap(),
            address: "quic://203.0.113.7:4001".into(),
            public_key: vec![1, 2, 3],
            key_algorithm: "ml-dsa-65".into(),
            owner: "iss#alice".into(),
            registered_at: Timestamp::from_secs(10),
            expires_at: Timestamp::from_secs(20),
        };
        let base = body.signing_bytes();
        let variants = [
            NameRecordBody { name: DarkName::parse("bob.dark").unwrap(), ..body.clone() },
            NameRecordBody { address: "quic://203.0.113.8:4001".into(), ..body.clone() },
            NameRecordBody { public_key: vec![1, 2, 4], ..body.clone() },
            NameRecordBody { key_algorithm: "ml-kem-768".into(), ..body.clone() },
            NameRecordBody { owner: "iss#bob".into(), ..body.clone() },
            NameRecordBody { registered_at: Timestamp::from_secs(11), ..body.clone() },
            NameRecordBody { expires_at: Timestamp::from_secs(21), ..body.clone() },
        ];
        for v in variants {
            assert_ne!(v.signing_bytes(), base);
        }
        // Length prefixes keep field boundaries: moving a byte between fields changes the bytes.
        let shifted =
            NameRecordBody { address: "quic://203.0.113.7:400".into(), public_key: b"1\x01\x02\x03".to_vec(), ..body };
        assert_ne!(shifted.signing_bytes(), base);
    }
}
