//! The prove stage's slot: between the hash flush and the commit, a
//! [`ProofSystem`] turns the batch's witnesses into a proof that the batch log
//! stores as opaque bytes. The Groth16 system lives in `crate::prove`.

use serde::Serialize;

use crate::resource::{OperationKind, ResourceRegister};
use crate::store::ProofRecord;

/// What the prover needs of one successful operation (ProofGeneration mode).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpWitness {
    pub kind: OperationKind,
    /// Consumed registers with the nullifier keys that opened them.
    pub consumed: Vec<(ResourceRegister, [u8; 32])>,
    pub created: Vec<ResourceRegister>,
    /// An Update's register before and after.
    pub updated: Option<(ResourceRegister, ResourceRegister)>,
}

pub trait ProofSystem: Send + Sync {
    /// The name stored in each proof record, e.g. "groth16-bn254".
    fn name(&self) -> String;
    /// Prove a batch. The error text becomes a ProofGenerationError.
    fn prove(&self, witnesses: &[OpWitness]) -> Result<ProofRecord, String>;
    /// Check a stored proof record.
    fn verify(&self, record: &ProofRecord) -> Result<(), String>;
}
