//! Verify: a stated commitment (checked at the flush, since the executor
//! never hashes inline) or a committed batch's stored proof.

use crate::error::ExecutionError;
use crate::resource::{OperationKind, VerifyTarget};
use crate::vm::Role;

use super::super::env::{Assertion, Env, OpEffects};

pub(super) fn verify(env: &mut Env, target: &VerifyTarget, fx: &mut OpEffects) -> Result<(), ExecutionError> {
    match target {
        VerifyTarget::Commitment { id, commitment } => {
            let register = env.load(id)?;
            env.authorize(OperationKind::Verify, Some(id), &register.domain, None)?;
            env.run_logic(OperationKind::Verify, Role::Verified, &register, true, &[], fx)?;
            let handle = env.pool.hash(register.state_encoding());
            fx.assertions.push(Assertion::Commitment { handle, stated: *commitment, id: *id });
            fx.extras().verified = Some(format!("the commitment of {id} (version {}) matches", register.version));
            Ok(())
        }
        VerifyTarget::BatchProof { batch } => {
            env.authorize(OperationKind::Verify, None, &env.ctx.domain_id, None)?;
            let record = env.store.batch(*batch)?.ok_or_else(|| ExecutionError::ResourceNotFound {
                what: match env.store.head() {
                    0 => format!("batch {batch} (no batch has been committed yet)"),
                    head => format!("batch {batch} (the batch log holds batches 1 to {head})"),
                },
            })?;
            let proof = record.proof.ok_or_else(|| ExecutionError::ProofGenerationError {
                stage: "verify".into(),
                reason: format!(
                    "batch {batch} has no proof: it was committed in {} mode without a proof system",
                    record.mode
                ),
            })?;
            let system = env.tx.proof_system.as_ref().ok_or_else(|| ExecutionError::ProofGenerationError {
                stage: "verify".into(),
                reason: format!("batch {batch} holds a {} proof but no proof system is configured", proof.system),
            })?;
            system.verify(&proof).map_err(|reason| ExecutionError::ProofGenerationError {
                stage: "verify".into(),
                reason: format!("the {} proof of batch {batch} does not verify: {reason}", proof.system),
            })?;
            fx.extras().verified = Some(format!("the {} proof of batch {batch} verifies", proof.system));
            Ok(())
        }
    }
}
