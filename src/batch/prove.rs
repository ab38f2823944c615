//! The prove stage's slot: between the hash flush and the commit, a
//! [`ProofSystem`] turns the batch's witnesses into proofs that the batch log
//! stores as opaque bytes. The Groth16 system lives in `crate::prove`.

use serde::Serialize;

use crate::context::ExecutionMode;
use crate::error::ExecutionError;
use crate::resource::{Operation, OperationKind, ResourceRegister};
use crate::store::ProofRecord;

use super::transaction::TransactionContext;

/// What the prover needs of one successful operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpWitness {
    pub kind: OperationKind,
    /// Consumed registers with the nullifier keys that opened them.
    pub consumed: Vec<(ResourceRegister, [u8; 32])>,
    pub created: Vec<ResourceRegister>,
    /// An Update's register before and after.
    pub updated: Option<(ResourceRegister, ResourceRegister)>,
}

/// Where the time of the prove stage went, summed over the batch's proofs
/// (microseconds). The G1 and G2 MSMs run at the same time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProveStages {
    pub proofs: u64,
    pub witness_us: u64,
    pub qap_us: u64,
    pub msm_g1_us: u64,
    pub msm_g2_us: u64,
    pub assemble_us: u64,
    pub verify_us: u64,
    /// Proofs retried on the CPU after a failure on the selected engine.
    pub cpu_retries: u64,
}

pub trait ProofSystem: Send + Sync {
    /// The name stored in each proof record, e.g. "groth16-bn254".
    fn name(&self) -> String;
    /// Prove a batch. The error text becomes a ProofGenerationError.
    fn prove(&self, witnesses: &[OpWitness]) -> Result<ProofRecord, String>;
    /// Check a stored proof record.
    fn verify(&self, record: &ProofRecord) -> Result<(), String>;
    /// `prove`, with the time each stage took; systems that do not measure
    /// their stages report none.
    fn prove_timed(&self, witnesses: &[OpWitness]) -> Result<(ProofRecord, Option<ProveStages>), String> {
        self.prove(witnesses).map(|record| (record, None))
    }
    /// Where its proofs are made (None: it does not say).
    fn backend(&self) -> Option<crate::backend::ResolvedBackend> {
        None
    }
    /// Whether this system can prove `op` at all. An operation it cannot
    /// prove fails on its own at execution, instead of failing the proofs
    /// (and so the commit) of the whole batch.
    fn admits(&self, _op: &Operation) -> Result<(), String> {
        Ok(())
    }
}

/// The operation-level check of [`ProofSystem::admits`], when the batch proves.
pub(super) fn check_admitted(tx: &TransactionContext, op: &Operation) -> Result<(), ExecutionError> {
    match &tx.proof_system {
        Some(system) if proves(tx) => system
            .admits(op)
            .map_err(|reason| ExecutionError::ProofGenerationError { stage: "admission".into(), reason }),
        _ => Ok(()),
    }
}

/// Whether the executor proves this batch: a proof system is set and the
/// mode commits proven batches (Standard, ProofGeneration).
pub(super) fn proves(tx: &TransactionContext) -> bool {
    tx.proof_system.is_some() && matches!(tx.mode, ExecutionMode::Standard | ExecutionMode::ProofGeneration)
}

/// Whether the executor gathers witnesses: for proving, and always in
/// ProofGeneration mode (where they are part of the result).
pub(super) fn gathers_witnesses(tx: &TransactionContext) -> bool {
    tx.mode == ExecutionMode::ProofGeneration || proves(tx)
}

/// The prove stage: proves the witnesses and checks the record it gets back,
/// so that nothing unverified reaches the commit. Any failure is a
/// ProofGenerationError and the batch is not committed.
pub(super) fn prove_and_check(
    system: &dyn ProofSystem,
    witnesses: &[OpWitness],
) -> Result<(ProofRecord, Option<ProveStages>), ExecutionError> {
    let (record, stages) = system
        .prove_timed(witnesses)
        .map_err(|reason| ExecutionError::ProofGenerationError { stage: "prove".into(), reason })?;
    system.verify(&record).map_err(|reason| ExecutionError::ProofGenerationError {
        stage: "verify".into(),
        reason: format!("the {} proof just made does not verify: {reason}", record.system),
    })?;
    Ok((record, stages))
}
