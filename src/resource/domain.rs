//! Domains: the unit of authority (one root key) and of resource
//! ownership, and the rules every name from outside must follow.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Label;

/// A domain: the unit of authority (one root key) and of resource ownership.
/// Names from outside are [`DomainId::parse`]d (deserializing does).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DomainId(pub Label);

/// The longest name (domain, fungibility domain, controller) in bytes.
pub const MAX_NAME_BYTES: usize = 255;

impl DomainId {
    /// A domain of a name known to be valid (or read back from the store).
    pub fn new(name: impl Into<Label>) -> Self {
        DomainId(name.into())
    }

    /// A domain name from outside: non-empty, at most [`MAX_NAME_BYTES`]
    /// bytes, no control characters and no space at either end.
    pub fn parse(name: &str) -> Result<Self, String> {
        check_name("a domain name", name)?;
        Ok(DomainId::new(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for DomainId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        DomainId::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// Why `name` (described as `what`) is not a usable name, if it is not.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("{what} is {} bytes long; at most {MAX_NAME_BYTES} are allowed", name.len()));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!("{what} contains the control character {c:?}"));
    }
    if name.trim() != name {
        return Err(format!("{what} {name:?} starts or ends with white space"));
    }
    Ok(())
}

impl fmt::Display for DomainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
