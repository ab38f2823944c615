//! The prove stage's slot: between the hash flush and the commit, a
//! [`ProofSystem`] (`crate::prove`) turns the batch's witnesses into proofs
//! that the batch log stores as opaque bytes.

use crate::context::ExecutionMode;
use crate::error::ExecutionError;
use crate::prove::{OpWitness, ProofSystem, ProveStages};
use crate::resource::Operation;
use crate::store::ProofRecord;

use super::transaction::TransactionContext;

/// The operation-level check of [`ProofSystem::admits`], when the batch proves.
pub(super) fn check_admitted(tx: &TransactionContext, op: &Operation) -> Result<(), ExecutionError> {
    match &tx.proof_system {
        Some(system) if proves(tx) => system
            .admits(op)
            .map_err(|e| ExecutionError::ProofGenerationError { stage: "admission".into(), reason: e.to_string() }),
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
        .map_err(|e| ExecutionError::ProofGenerationError { stage: "prove".into(), reason: e.to_string() })?;
    system.verify(&record).map_err(|e| ExecutionError::ProofGenerationError {
        stage: "verify".into(),
        reason: format!("the {} proof just made does not verify: {e}", record.system),
    })?;
    Ok((record, stages))
}
