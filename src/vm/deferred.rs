//! Digest-dependent assertions: recorded while a program runs, checked only
//! once the hash pool has flushed (the interpreter never hashes inline).

use crate::content_id::{hex_encode, ContentId};
use crate::crypto::field::field_to_bytes;
use crate::error::ExecutionError;
use crate::hash::{HashHandle, HashPool, PoseidonHandle};
use crate::resource::ResourceId;

/// A request a program filed: a BLAKE3 digest (`HASH`) or a Poseidon value
/// (`POSEIDON`), each by its handle in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Blake3(HashHandle),
    Poseidon(PoseidonHandle),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeferredAssertion {
    /// The request whose digest is asserted.
    pub handle: Request,
    /// The digest the program demands (a Poseidon value as its canonical
    /// little-endian bytes).
    pub expected: [u8; 32],
    /// The program, resource and pc that made the assertion: kept as they
    /// are and described only when a check fails, since a batch may hold
    /// millions of assertions until its flush.
    pub logic: ContentId,
    pub resource: ResourceId,
    pub pc: u32,
}

impl DeferredAssertion {
    /// Which program, resource and pc made the assertion.
    pub fn what(&self) -> String {
        format!("logic {} of resource {} at pc 0x{:04x}", self.logic, self.resource, self.pc)
    }

    /// Check against the flushed pool. A mismatch, or a request that is not
    /// resolved yet, is `StateCommitmentError` (the variant for "a
    /// digest-dependent assertion failed at commit"), naming the assertion and
    /// both digests.
    pub fn check(&self, pool: &HashPool) -> Result<(), ExecutionError> {
        let (kind, number, actual) = match self.handle {
            Request::Blake3(h) => ("BLAKE3", h.0, pool.get(h)),
            Request::Poseidon(h) => ("Poseidon", h.0, pool.poseidon_value(h).map(|v| field_to_bytes(&v))),
        };
        let actual = actual.ok_or_else(|| ExecutionError::StateCommitmentError {
            reason: format!(
                "deferred digest assertion ({}): {kind} request {number} is not resolved; flush the hash pool before checking",
                self.what()
            ),
        })?;
        if actual != self.expected {
            return Err(ExecutionError::StateCommitmentError {
                reason: format!(
                    "deferred digest assertion failed ({}): {kind} is {}, the program expected {}",
                    self.what(),
                    hex_encode(&actual),
                    hex_encode(&self.expected)
                ),
            });
        }
        Ok(())
    }
}
