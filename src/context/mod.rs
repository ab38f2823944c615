//! The execution context every operation runs under, and the execution modes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod authorize;

pub use authorize::{authorize, required_right, AccessRequest, Authorizer};

use crate::capability::CapabilityToken;

pub use crate::clock::Timestamp;
pub use crate::resource::{check_name, DomainId, MAX_NAME_BYTES};

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
