//! The in-memory index: live registers (each state-tree bucket's ids in
//! order, with their commitments), spent nullifiers and consumed ids, plus
//! what changed since the last checkpoint.

use std::sync::Arc;

use crate::digest_map::{digest_map, digest_set, DigestMap, DigestSet};
use crate::hash::{HashError, HashHandle, HashPool};
use crate::resource::{ResourceId, ResourceRegister};

use super::state_tree::{bucket_of, BUCKETS};
use super::BatchDelta;

/// A live register and its commitment (BLAKE3 of its state encoding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub register: &'a ResourceRegister,
    pub commitment: [u8; 32],
}

/// One register's place in its bucket: what the bucket digest hashes.
#[derive(Clone, Copy, Debug)]
struct Leaf {
    id: ResourceId,
    commitment: [u8; 32],
}

/// Live registers: a hash map from id to the shared register (lookups,
/// and batches take their copies by reference count), and each state-tree
/// bucket's leaves in id order (the state root reads these alone). A B-tree
/// over all ids paid a 32-byte comparison chain per lookup and shifted
/// whole registers within its nodes on every insert and remove.
pub(super) struct Registers {
    entries: DigestMap<ResourceId, Arc<ResourceRegister>>,
    /// Per bucket (first 16 id bits), its leaves by id ascending (a few per bucket).
    buckets: Vec<Vec<Leaf>>,
}

impl Default for Registers {
    fn default() -> Self {
        Registers { entries: digest_map(0), buckets: vec![Vec::new(); BUCKETS] }
    }
}

impl Registers {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, id: &ResourceId) -> Option<&Arc<ResourceRegister>> {
        self.entries.get(id)
    }

    pub fn commitment(&self, id: &ResourceId) -> Option<[u8; 32]> {
        let bucket = &self.buckets[bucket_of(id)];
        bucket.binary_search_by(|leaf| leaf.id.cmp(id)).ok().map(|at| bucket[at].commitment)
    }

    /// Insert or replace the register under its id.
    pub fn insert(&mut self, register: Arc<ResourceRegister>, commitment: [u8; 32]) {
        let id = register.id;
        self.entries.insert(id, register);
        let bucket = &mut self.buckets[bucket_of(&id)];
        match bucket.binary_search_by(|leaf| leaf.id.cmp(&id)) {
            Ok(at) => bucket[at].commitment = commitment,
            Err(at) => bucket.insert(at, Leaf { id, commitment }),
        }
    }

    pub fn remove(&mut self, id: &ResourceId) {
        if self.entries.remove(id).is_some() {
            let bucket = &mut self.buckets[bucket_of(id)];
            if let Ok(at) = bucket.binary_search_by(|leaf| leaf.id.cmp(id)) {
                bucket.remove(at);
            }
        }
    }

    /// Every id, ascending.
    pub fn ids(&self) -> impl Iterator<Item = &ResourceId> {
        self.buckets.iter().flatten().map(|leaf| &leaf.id)
    }

    /// Every register, by id ascending.
    pub fn values(&self) -> impl Iterator<Item = &Arc<ResourceRegister>> {
        self.ids().map(|id| &self.entries[id])
    }

    /// Make room for `additional` more registers in one step, so a batch's
    /// inserts do not rehash the map several times over.
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }
}

pub(super) struct Index {
    pub registers: Registers,
    pub nullifiers: DigestMap<[u8; 32], u64>,
    pub consumed: DigestMap<ResourceId, u64>,
    /// Ids whose register row changed since the last checkpoint.
    pub dirty: DigestSet<ResourceId>,
    /// Nullifiers spent since the last checkpoint, with their batch.
    pub fresh_nullifiers: Vec<([u8; 32], u64)>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            registers: Registers::default(),
            nullifiers: digest_map(0),
            consumed: digest_map(0),
            dirty: digest_set(0),
            fresh_nullifiers: Vec::new(),
        }
    }
}

impl Index {
    /// Apply a replayed delta; commitments are recomputed afterwards.
    pub fn apply(&mut self, delta: &BatchDelta, number: u64) {
        let zeros = vec![[0u8; 32]; delta.upserts.len()];
        self.apply_with(delta, &zeros, number);
    }

    /// Apply a committed delta whose upserts have the given commitments.
    pub fn apply_with(&mut self, delta: &BatchDelta, commitments: &[[u8; 32]], number: u64) {
        self.nullifiers.reserve(delta.nullifiers.len());
        self.consumed.reserve(delta.removed.len());
        self.dirty.reserve(delta.removed.len() + delta.upserts.len());
        self.registers.reserve(delta.upserts.len().saturating_sub(delta.removed.len()));
        for id in &delta.removed {
            self.registers.remove(id);
            self.consumed.insert(*id, number);
            self.dirty.insert(*id);
        }
        for (r, c) in delta.upserts.iter().zip(commitments) {
            self.dirty.insert(r.id);
            self.registers.insert(r.clone(), *c);
        }
        for n in &delta.nullifiers {
            self.nullifiers.insert(*n, number);
            self.fresh_nullifiers.push((*n, number));
        }
    }

    /// Hash every register's state encoding through the pool (after a load).
    pub fn recompute_commitments(&mut self, pool: &mut HashPool) -> Result<(), HashError> {
        let handles: Vec<HashHandle> = self.registers.values().map(|r| pool.hash(r.state_encoding())).collect();
        pool.flush()?;
        let mut handles = handles.into_iter();
        for leaf in self.registers.buckets.iter_mut().flatten() {
            let h = handles.next().ok_or(HashError::UnknownHandle(u32::MAX))?;
            leaf.commitment = pool.get(h).ok_or(HashError::UnknownHandle(h.0))?;
        }
        Ok(())
    }

    /// Every non-empty bucket's concatenated commitments, buckets ascending.
    pub fn all_buckets(&self) -> Vec<(usize, Vec<u8>)> {
        let buckets = self.registers.buckets.iter().enumerate().filter(|(_, leaves)| !leaves.is_empty());
        buckets.map(|(b, leaves)| (b, leaves.iter().flat_map(|leaf| leaf.commitment).collect())).collect()
    }

    /// File in `pool` the concatenated commitments of every bucket that
    /// `changes` (ids ascending, each once) touches, as they will be after
    /// the changes (Some = new commitment, None = removed): (bucket, request),
    /// buckets ascending. Each bucket is written straight into the pool.
    pub fn file_buckets_with(
        &self,
        changes: &[(ResourceId, Option<[u8; 32]>)],
        pool: &mut HashPool,
    ) -> Vec<(usize, HashHandle)> {
        let mut out = Vec::new();
        let mut pending = changes;
        while let Some((first, _)) = pending.first() {
            let bucket = bucket_of(first);
            let n = pending.iter().take_while(|(id, _)| bucket_of(id) == bucket).count();
            let (bucket_changes, rest) = pending.split_at(n);
            pending = rest;
            let leaves = &self.registers.buckets[bucket];
            let handle = pool.hash_with(|bytes| {
                let mut changed = bucket_changes.iter().peekable();
                for leaf in leaves {
                    while let Some((_, c)) = changed.next_if(|(cid, _)| *cid < leaf.id) {
                        bytes.extend(c.iter().flatten());
                    }
                    match changed.next_if(|(cid, _)| *cid == leaf.id) {
                        Some((_, c)) => bytes.extend(c.iter().flatten()),
                        None => bytes.extend_from_slice(&leaf.commitment),
                    }
                }
                for (_, c) in changed {
                    bytes.extend(c.iter().flatten());
                }
            });
            out.push((bucket, handle));
        }
        out
    }
}
