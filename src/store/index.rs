//! The in-memory index: live registers (sorted by id, with their
//! commitments), spent nullifiers and consumed ids, plus what changed since
//! the last checkpoint.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::hash::{HashError, HashHandle, HashPool};
use crate::resource::{ResourceId, ResourceRegister};

use super::state_tree::{bucket_bounds, bucket_of};
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

    /// Hash every register's state encoding through the pool (after a load).
    pub fn recompute_commitments(&mut self, pool: &mut HashPool) -> Result<(), HashError> {
        let handles: Vec<HashHandle> =
            self.registers.values().map(|e| pool.hash(e.register.state_encoding())).collect();
        pool.flush()?;
        for (entry, h) in self.registers.values_mut().zip(handles) {
            entry.commitment = pool.get(h).ok_or(HashError::UnknownHandle(h.0))?;
        }
        Ok(())
    }

    /// Every non-empty bucket's concatenated commitments, buckets ascending.
    pub fn all_buckets(&self) -> Vec<(usize, Vec<u8>)> {
        let mut out: Vec<(usize, Vec<u8>)> = Vec::new();
        for (id, entry) in &self.registers {
            let b = bucket_of(id);
            match out.last_mut() {
                Some((last, bytes)) if *last == b => bytes.extend_from_slice(&entry.commitment),
                _ => out.push((b, entry.commitment.to_vec())),
            }
        }
        out
    }

    /// The concatenated commitments of every bucket that `changes` touches,
    /// as they will be after the changes (Some = new commitment, None = removed).
    pub fn buckets_with(&self, changes: &BTreeMap<ResourceId, Option<[u8; 32]>>) -> Vec<(usize, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pending = changes.iter().peekable();
        while let Some((first, _)) = pending.peek() {
            let bucket = bucket_of(first);
            let (lo, hi) = bucket_bounds(bucket);
            let mut bucket_changes = Vec::new();
            while let Some((id, c)) = pending.next_if(|(id, _)| bucket_of(id) == bucket) {
                bucket_changes.push((*id, *c));
            }
            let mut bytes = Vec::with_capacity(32 * (bucket_changes.len() + 4));
            let mut changed = bucket_changes.iter().peekable();
            for (id, entry) in self.registers.range(lo..=hi) {
                while let Some((_, c)) = changed.next_if(|(cid, _)| cid < id) {
                    bytes.extend(c.iter().flatten());
                }
                match changed.next_if(|(cid, _)| cid == id) {
                    Some((_, c)) => bytes.extend(c.iter().flatten()),
                    None => bytes.extend_from_slice(&entry.commitment),
                }
            }
            for (_, c) in changed {
                bytes.extend(c.iter().flatten());
            }
            out.push((bucket, bytes));
        }
        out
    }
}
