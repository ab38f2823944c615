//! The in-memory index: live registers (sorted by id, with their
//! commitments), spent nullifiers and consumed ids, plus what changed since
//! the last checkpoint.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::hash::{HashError, HashHandle, HashPool};
use crate::resource::{ResourceId, ResourceRegister};

use super::BatchDelta;

/// A live register and its commitment (BLAKE3 of its state encoding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub register: ResourceRegister,
    pub commitment: [u8; 32],
}

#[derive(Default)]
pub(super) struct Index {
    pub registers: BTreeMap<ResourceId, Entry>,
    pub nullifiers: HashMap<[u8; 32], u64>,
    pub consumed: HashMap<ResourceId, u64>,
    /// Ids whose register row changed since the last checkpoint.
    pub dirty: HashSet<ResourceId>,
    /// Nullifiers spent since the last checkpoint, with their batch.
    pub fresh_nullifiers: Vec<([u8; 32], u64)>,
}

impl Index {
    /// Apply a replayed delta; commitments are recomputed afterwards.
    pub fn apply(&mut self, delta: &BatchDelta, number: u64) {
        let zeros = vec![[0u8; 32]; delta.upserts.len()];
        self.apply_with(delta, &zeros, number);
    }

    pub fn apply_with(&mut self, delta: &BatchDelta, commitments: &[[u8; 32]], number: u64) {
        for id in &delta.removed {
            self.registers.remove(id);
            self.consumed.insert(*id, number);
            self.dirty.insert(*id);
        }
        for (r, c) in delta.upserts.iter().zip(commitments) {
            self.dirty.insert(r.id);
            self.registers.insert(r.id, Entry { register: r.clone(), commitment: *c });
        }
        for n in &delta.nullifiers {
            self.nullifiers.insert(*n, number);
            self.fresh_nullifiers.push((*n, number));
        }
    }

    /// Like [`Index::apply_with`], moving the registers in.
    pub fn apply_owned(&mut self, delta: BatchDelta, commitments: &[[u8; 32]], number: u64) {
        let BatchDelta { upserts, removed, nullifiers } = delta;
        self.apply_with(&BatchDelta { upserts: Vec::new(), removed, nullifiers }, &[], number);
        for (r, c) in upserts.into_iter().zip(commitments) {
            self.dirty.insert(r.id);
            self.registers.insert(r.id, Entry { register: r, commitment: *c });
        }
    }

    /// Hash every register's state encoding through the pool; returns the
    /// leaves in id order.
    pub fn recompute_commitments(&mut self, pool: &mut HashPool) -> Result<Vec<[u8; 32]>, HashError> {
        let handles: Vec<HashHandle> =
            self.registers.values().map(|e| pool.hash(e.register.state_encoding())).collect();
        pool.flush()?;
        let mut leaves = Vec::with_capacity(handles.len());
        for (entry, h) in self.registers.values_mut().zip(handles) {
            entry.commitment = pool.get(h).ok_or(HashError::UnknownHandle(h.0))?;
            leaves.push(entry.commitment);
        }
        Ok(leaves)
    }

    /// The sorted leaf list after `changes` (Some = new commitment, None = removed).
    pub fn leaves_with(&self, changes: &BTreeMap<ResourceId, Option<[u8; 32]>>) -> Vec<[u8; 32]> {
        let mut out = Vec::with_capacity(self.registers.len() + changes.len());
        let mut pending = changes.iter().peekable();
        for (id, entry) in &self.registers {
            while let Some((cid, c)) = pending.peek() {
                if *cid < id {
                    out.extend(**c);
                    pending.next();
                } else {
                    break;
                }
            }
            match pending.peek() {
                Some((cid, c)) if *cid == id => {
                    out.extend(**c);
                    pending.next();
                }
                _ => out.push(entry.commitment),
            }
        }
        for (_, c) in pending {
            out.extend(*c);
        }
        out
    }
}
