//! Digest-dependent assertions: recorded while a program runs, checked only
//! once the hash pool has flushed (the interpreter never hashes inline).

use crate::content_id::hex_encode;
use crate::error::ExecutionError;
use crate::hash::{HashHandle, HashPool};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeferredAssertion {
    /// The hash request whose digest is asserted.
    pub handle: HashHandle,
    /// The digest the program demands.
    pub expected: [u8; 32],
    /// Which program, resource and pc made the assertion.
    pub what: String,
}

impl DeferredAssertion {
    /// Check against the flushed pool. A mismatch, or a request that is not
    /// resolved yet, is `StateCommitmentError` (the variant for "a
    /// digest-dependent assertion failed at commit"), naming the assertion and
    /// both digests.
    pub fn check(&self, pool: &HashPool) -> Result<(), ExecutionError> {
        let actual = pool.get(self.handle).ok_or_else(|| ExecutionError::StateCommitmentError {
            reason: format!(
                "deferred digest assertion ({}): hash request {} is not resolved; flush the hash pool before checking",
                self.what, self.handle.0
            ),
        })?;
        if actual != self.expected {
            return Err(ExecutionError::StateCommitmentError {
                reason: format!(
                    "deferred digest assertion failed ({}): BLAKE3 is {}, the program expected {}",
                    self.what,
                    hex_encode(&actual),
                    hex_encode(&self.expected)
                ),
            });
        }
        Ok(())
    }
}
