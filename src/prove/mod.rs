//! Groth16 proofs over BN254 of the operations in a batch.
//!
//! - [`poseidon`]: the hash parameters and gadget.
//! - [`encoding`]: registers as field elements; commitments and nullifiers.
//! - [`witness`]: executor operations to circuit slots, with native rule checks.
//! - [`circuit`]: the compliance circuit (K slots per proof).
//! - [`keys`]: circuit-specific setup, key files, circuit digests; [`keyfile`]: the proving key's file form.
//! - [`prover`]: our Groth16 prover on the MSM engine.
//! - [`system`]: [`ProvingSystem`], the API the batch executor calls.
//! - [`snarkjs`]: snarkjs JSON export and import.
//! - [`circom`]: any circom circuit's proofs from snarkjs `.zkey` and `.wtns` files.
//! - [`stored`]: checking stored proofs with the verifying keys alone.
//! - [`pipeline`]: [`ProvingSystem`] as the batch executor's proof system,
//!   and the batch-log proof record.

pub mod circom;
pub mod circuit;
pub mod encoding;
pub mod keyfile;
pub mod keys;
pub mod ops_document;
pub mod pipeline;
pub mod points;
pub mod poseidon;
pub mod proof_system;
pub mod prover;
pub mod snarkjs;
pub mod stored;
pub mod system;
pub mod witness;

use std::path::PathBuf;

pub use encoding::{commitment, nullifier, nullifier_key_commitment};
pub use proof_system::{ProofSystem, ProveStages};
pub use stored::StoredKeys;
pub use system::{BatchProof, ProvingSystem};
pub use witness::OpWitness;

use crate::error::ExecutionError;
use crate::msm::MsmError;

/// Operations per proof the key store and CLI accept.
pub const SUPPORTED_OPS_PER_PROOF: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    #[error("invalid witness for {what}: {reason}")]
    InvalidWitness { what: String, reason: String },
    #[error("the witness does not satisfy constraint {index} of {total} (a rule of the compliance circuit fails)")]
    Unsatisfied { index: usize, total: usize },
    #[error("constraint synthesis failed: {0}")]
    Synthesis(String),
    #[error("unsupported ops per proof {given}: choose one of {SUPPORTED_OPS_PER_PROOF:?}")]
    UnsupportedSize { given: usize },
    #[error("keys in {path}: {reason}")]
    Keys { path: PathBuf, reason: String },
    #[error("I/O on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("malformed {what}: {reason}")]
    Malformed { what: String, reason: String },
    #[error("wrong number of public inputs: the verifying key expects {expected}, got {got}")]
    PublicInputCount { expected: usize, got: usize },
    #[error("invalid point {what}: {reason}")]
    InvalidPoint { what: String, reason: String },
    #[error("proof does not verify: {0}")]
    Rejected(String),
    #[error("MSM engine: {0}")]
    Msm(#[from] MsmError),
    #[error("NTT engine: {0}")]
    Ntt(#[from] crate::ntt::NttError),
    /// An operation the system cannot prove (it fails on its own).
    #[error("{0}")]
    Inadmissible(String),
    /// This system does not make proofs (the verifying keys alone).
    #[error("{0}")]
    CannotProve(String),
}

impl ProveError {
    /// The pipeline stage a failure belongs to, for `ProofGenerationError`.
    pub fn stage(&self) -> &'static str {
        match self {
            ProveError::InvalidWitness { .. } | ProveError::Unsatisfied { .. } | ProveError::Synthesis(_) => "witness",
            ProveError::UnsupportedSize { .. } | ProveError::Keys { .. } | ProveError::Io { .. } => "keys",
            ProveError::Malformed { .. } | ProveError::InvalidPoint { .. } => "decode",
            ProveError::PublicInputCount { .. } | ProveError::Rejected(_) => "verify",
            ProveError::Msm(_) => "msm",
            ProveError::Ntt(_) => "quotient",
            ProveError::Inadmissible(_) => "admission",
            ProveError::CannotProve(_) => "prove",
        }
    }
}

impl From<ProveError> for ExecutionError {
    fn from(err: ProveError) -> Self {
        ExecutionError::ProofGenerationError { stage: err.stage().to_string(), reason: err.to_string() }
    }
}

impl From<ark_relations::gr1cs::SynthesisError> for ProveError {
    fn from(err: ark_relations::gr1cs::SynthesisError) -> Self {
        ProveError::Synthesis(err.to_string())
    }
}

/// Checks `ops_per_proof` against [`SUPPORTED_OPS_PER_PROOF`].
pub fn check_ops_per_proof(given: usize) -> Result<(), ProveError> {
    if SUPPORTED_OPS_PER_PROOF.contains(&given) {
        Ok(())
    } else {
        Err(ProveError::UnsupportedSize { given })
    }
}
