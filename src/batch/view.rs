//! The committed state as a batch sees it: the store, plus the effects of
//! the batch ahead of it in a pipeline whose proofs are still being
//! generated (it commits before this one, or this one is executed again).

use std::sync::Arc;

use crate::content_id::ContentId;
use crate::context::Timestamp;
use crate::digest_map::{DigestMap, DigestSet};
use crate::resource::{ResourceId, ResourceRegister};
use crate::store::{BatchDelta, RegisterStore};

use super::{Content, Executed};

/// A staged batch waiting for its proofs: what it creates, updates, consumes
/// and spends, under the batch number it will commit as, with the programs
/// it brings and its timestamp.
pub struct InFlight {
    number: u64,
    upserts: DigestMap<ResourceId, Arc<ResourceRegister>>,
    removed: DigestSet<ResourceId>,
    nullifiers: DigestSet<[u8; 32]>,
    programs: Vec<Content>,
    timestamp: Timestamp,
}

impl InFlight {
    /// The three sets are built side by side: the next batch waits for them.
    pub fn new(number: u64, delta: &BatchDelta, programs: &[Content], timestamp: Timestamp) -> Self {
        let (upserts, (removed, nullifiers)) = rayon::join(
            || delta.upserts.iter().map(|r| (r.id, r.clone())).collect(),
            || rayon::join(|| delta.removed.iter().copied().collect(), || delta.nullifiers.iter().copied().collect()),
        );
        InFlight { number, upserts, removed, nullifiers, programs: programs.to_vec(), timestamp }
    }

    /// An executed batch, to commit as `number`.
    pub(super) fn of(number: u64, executed: &Executed<'_>) -> Self {
        Self::new(number, &executed.delta, executed.programs, executed.ctx.timestamp)
    }

    pub fn number(&self) -> u64 {
        self.number
    }

    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// A program this batch brings.
    pub fn program(&self, id: &ContentId) -> Option<&Arc<Vec<u8>>> {
        self.programs.iter().find(|(p, _)| p == id).map(|(_, bytes)| bytes)
    }
}

/// The store seen through an optional in-flight batch.
#[derive(Clone, Copy)]
pub(super) struct StoreView<'a> {
    pub store: &'a RegisterStore,
    pub inflight: Option<&'a InFlight>,
}

impl<'a> StoreView<'a> {
    pub fn get(&self, id: &ResourceId) -> Option<&'a Arc<ResourceRegister>> {
        if let Some(batch) = self.inflight {
            if batch.removed.contains(id) {
                return None;
            }
            if let Some(register) = batch.upserts.get(id) {
                return Some(register);
            }
        }
        self.store.get_shared(id)
    }

    /// The batch that consumed `id`, if one did.
    pub fn consumed_in(&self, id: &ResourceId) -> Option<u64> {
        match self.inflight {
            Some(batch) if batch.removed.contains(id) => Some(batch.number),
            _ => self.store.consumed_in(id),
        }
    }

    /// The batch that spent `nullifier`, if one did.
    pub fn nullifier_batch(&self, nullifier: &[u8; 32]) -> Option<u64> {
        match self.inflight {
            Some(batch) if batch.nullifiers.contains(nullifier) => Some(batch.number),
            _ => self.store.nullifier_batch(nullifier),
        }
    }
}
