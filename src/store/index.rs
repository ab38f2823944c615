//! The in-memory index: live registers (sorted by id, with their
//! commitments), spent nullifiers and consumed ids, plus what changed since
//! the last checkpoint.

use std::collections::{HashMap, HashSet};

use crate::hash::{HashError, HashHandle, HashPool};
use crate::resource::{ResourceId, ResourceRegister};

use super::state_tree::{bucket_of, BUCKETS};
use super::BatchDelta;

/// A live register and its commitment (BLAKE3 of its state encoding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub register: ResourceRegister,
    pub commitment: [u8; 32],
}

/// Live registers: a hash map for lookups, and each state-tree bucket's ids
/// in order for the state root and ordered iteration. A B-tree over all ids
/// paid a 32-byte comparison chain per lookup and shifted whole registers
/// within its nodes on every insert and remove.
pub(super) struct Registers {
    entries: HashMap<ResourceId, Entry>,
    /// Per bucket (first 16 id bits), its ids ascending (a few per bucket).
    buckets: Vec<Vec<ResourceId>>,
}

impl Default for Registers {
    fn default() -> Self {
        Registers { entries: HashMap::new(), buckets: vec![Vec::new(); BUCKETS] }
    }
}

impl Registers {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, id: &ResourceId) -> Option<&Entry> {
        self.entries.get(id)
    }

    pub fn insert(&mut self, id: ResourceId, entry: Entry) {
        if self.entries.insert(id, entry).is_none() {
            let bucket = &mut self.buckets[bucket_of(&id)];
            let at = bucket.partition_point(|other| other < &id);
            bucket.insert(at, id);
        }
    }

    pub fn remove(&mut self, id: &ResourceId) {
        if self.entries.remove(id).is_some() {
            let bucket = &mut self.buckets[bucket_of(id)];
            if let Ok(at) = bucket.binary_search(id) {
                bucket.remove(at);
            }
        }
    }

    /// The ids of `bucket`, ascending.
    pub fn bucket(&self, bucket: usize) -> &[ResourceId] {
        &self.buckets[bucket]
    }

    /// Every id, ascending.
    pub fn ids(&self) -> impl Iterator<Item = &ResourceId> {
        self.buckets.iter().flatten()
    }

    /// Every entry, by id ascending.
    pub fn values(&self) -> impl Iterator<Item = &Entry> {
        self.ids().map(|id| &self.entries[id])
    }
}

#[derive(Default)]
pub(super) struct Index {
    pub registers: Registers,
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
        let ids: Vec<ResourceId> = self.registers.ids().copied().collect();
        let handles: Vec<HashHandle> =
            self.registers.values().map(|e| pool.hash(e.register.state_encoding())).collect();
        pool.flush()?;
        for (id, h) in ids.iter().zip(handles) {
            let commitment = pool.get(h).ok_or(HashError::UnknownHandle(h.0))?;
            if let Some(entry) = self.registers.entries.get_mut(id) {
                entry.commitment = commitment;
            }
        }
        Ok(())
    }

    /// Every non-empty bucket's concatenated commitments, buckets ascending.
    pub fn all_buckets(&self) -> Vec<(usize, Vec<u8>)> {
        let mut out: Vec<(usize, Vec<u8>)> = Vec::new();
        for (b, ids) in self.registers.buckets.iter().enumerate().filter(|(_, ids)| !ids.is_empty()) {
            let bytes = ids.iter().flat_map(|id| self.registers.entries[id].commitment).collect();
            out.push((b, bytes));
        }
        out
    }

    /// The concatenated commitments of every bucket that `changes` (ids
    /// ascending, each once) touches, as they will be after the changes
    /// (Some = new commitment, None = removed).
    pub fn buckets_with(&self, changes: &[(ResourceId, Option<[u8; 32]>)]) -> Vec<(usize, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pending = changes.iter().peekable();
        while let Some((first, _)) = pending.peek() {
            let bucket = bucket_of(first);
            let mut bucket_changes = Vec::new();
            while let Some((id, c)) = pending.next_if(|(id, _)| bucket_of(id) == bucket) {
                bucket_changes.push((*id, *c));
            }
            let mut bytes = Vec::with_capacity(32 * (bucket_changes.len() + 4));
            let mut changed = bucket_changes.iter().peekable();
            for id in self.registers.bucket(bucket) {
                let entry = &self.registers.entries[id];
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
