//! The execution context every operation runs under, and the execution modes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::capability::CapabilityToken;
use crate::resource::Label;

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

/// Seconds since the Unix epoch, as given by the submitter of a batch.
pub type Timestamp = u64;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExecutionMode {
    /// Execute, prove where configured, and commit.
    #[default]
    Standard,
    /// Run only the checks and proof verification; never writes the store.
    Verification,
    /// Execute without writing; report what would change and the would-be root.
    Simulation,
    /// Execute and record everything the prover needs.
    ProofGeneration,
    /// Execute with an instruction-level trace that can be stepped.
    Debug,
}

impl ExecutionMode {
    /// Whether a batch in this mode may write the store.
    pub fn writes_store(self) -> bool {
        matches!(self, ExecutionMode::Standard | ExecutionMode::ProofGeneration | ExecutionMode::Debug)
    }
}

impl std::str::FromStr for ExecutionMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "standard" => Ok(ExecutionMode::Standard),
            "verification" | "verify" => Ok(ExecutionMode::Verification),
            "simulation" | "simulate" => Ok(ExecutionMode::Simulation),
            "proofgeneration" | "prove" => Ok(ExecutionMode::ProofGeneration),
            "debug" => Ok(ExecutionMode::Debug),
            _ => Err(format!(
                "unknown mode {s:?}: expected standard, verification, simulation, proof-generation or debug"
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionContext {
    /// The domain the batch runs in.
    pub domain_id: DomainId,
    /// Ties log lines, batch records and errors to one submission.
    pub trace_id: String,
    /// Authorizes the operations; verified against the domain's root key.
    pub capability_token: CapabilityToken,
    /// "Now" for expiry caveats and time conditions in logic programs.
    pub timestamp: Timestamp,
    /// Free-form key/value settings visible to logic programs by name.
    pub environment: BTreeMap<String, String>,
    /// Tokens rooted in other domains that grant this context access there.
    /// Touching a resource of another domain without one is a CrossDomainError.
    pub cross_domain_grants: Vec<CapabilityToken>,
}
