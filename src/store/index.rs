//! The in-memory index: live registers (each state-tree bucket's ids in
//! order, with their commitments), spent nullifiers and consumed ids.

use std::sync::Arc;

use rayon::prelude::*;

use crate::digest_map::{digest_map, DigestMap};
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

/// Registers are split into [`SHARDS`] shards by their first id bits (whole
/// state-tree buckets each), so a batch's changes are applied to all shards
/// in parallel: the apply is hash-map and bucket work with a cache miss or
/// two per register, and it was the largest part of a commit.
const SHARD_BITS: u32 = 4;
const SHARDS: usize = 1 << SHARD_BITS;
const BUCKETS_PER_SHARD: usize = BUCKETS / SHARDS;

fn shard_of(id: &ResourceId) -> usize {
    bucket_of(id) / BUCKETS_PER_SHARD
}

/// Live registers: a hash map from id to the shared register (lookups,
/// and batches take their copies by reference count), and each state-tree
/// bucket's leaves in id order (the state root reads these alone). A B-tree
/// over all ids paid a 32-byte comparison chain per lookup and shifted
/// whole registers within its nodes on every insert and remove.
pub(super) struct Registers {
    shards: Vec<Shard>,
}

struct Shard {
    entries: DigestMap<ResourceId, Arc<ResourceRegister>>,
    /// Per bucket of the shard, its leaves by id ascending (a few per bucket).
    buckets: Vec<Vec<Leaf>>,
}

impl Default for Registers {
    fn default() -> Self {
        let shards = (0..SHARDS)
            .map(|_| Shard { entries: digest_map(0), buckets: vec![Vec::new(); BUCKETS_PER_SHARD] })
            .collect();
        Registers { shards }
    }
}

impl Shard {
    fn leaves(&mut self, id: &ResourceId) -> &mut Vec<Leaf> {
        &mut self.buckets[bucket_of(id) % BUCKETS_PER_SHARD]
    }

    fn insert(&mut self, register: Arc<ResourceRegister>, commitment: [u8; 32]) {
        let id = register.id;
        self.entries.insert(id, register);
        let leaves = self.leaves(&id);
        match leaves.binary_search_by(|leaf| leaf.id.cmp(&id)) {
            Ok(at) => leaves[at].commitment = commitment,
            Err(at) => leaves.insert(at, Leaf { id, commitment }),
        }
    }

    /// Remove `id`, handing back its register (the caller decides where it is freed).
    fn remove(&mut self, id: &ResourceId) -> Option<Arc<ResourceRegister>> {
        let removed = self.entries.remove(id)?;
        let leaves = self.leaves(id);
        if let Ok(at) = leaves.binary_search_by(|leaf| leaf.id.cmp(id)) {
            leaves.remove(at);
        }
        Some(removed)
    }
}

impl Registers {
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.entries.is_empty())
    }

    pub fn get(&self, id: &ResourceId) -> Option<&Arc<ResourceRegister>> {
        self.shards[shard_of(id)].entries.get(id)
    }

    /// The leaves of `bucket`, by id ascending.
    fn bucket(&self, bucket: usize) -> &[Leaf] {
        &self.shards[bucket / BUCKETS_PER_SHARD].buckets[bucket % BUCKETS_PER_SHARD]
    }

    pub fn commitment(&self, id: &ResourceId) -> Option<[u8; 32]> {
        let leaves = self.bucket(bucket_of(id));
        leaves.binary_search_by(|leaf| leaf.id.cmp(id)).ok().map(|at| leaves[at].commitment)
    }

    /// Insert or replace the register under its id.
    pub fn insert(&mut self, register: Arc<ResourceRegister>, commitment: [u8; 32]) {
        self.shards[shard_of(&register.id)].insert(register, commitment);
    }

    /// Remove `removed`, then insert `upserts` with their commitments: each
    /// shard's share on its own rayon task. Returns the removed registers:
    /// freeing them on the workers made them contend for the allocator's
    /// lock with the calling thread, so the caller drops them.
    pub fn apply(
        &mut self,
        removed: &[ResourceId],
        upserts: &[Arc<ResourceRegister>],
        commitments: &[[u8; 32]],
    ) -> Vec<Vec<Arc<ResourceRegister>>> {
        let mut removals: Vec<Vec<&ResourceId>> = vec![Vec::new(); SHARDS];
        for id in removed {
            removals[shard_of(id)].push(id);
        }
        let mut inserts: Vec<Vec<(&Arc<ResourceRegister>, [u8; 32])>> = vec![Vec::new(); SHARDS];
        for (r, c) in upserts.iter().zip(commitments) {
            inserts[shard_of(&r.id)].push((r, *c));
        }
        let shards = self.shards.par_iter_mut().zip(removals).zip(inserts);
        shards
            .map(|((shard, removals), inserts)| {
                shard.entries.reserve(inserts.len().saturating_sub(removals.len()));
                let gone: Vec<Arc<ResourceRegister>> = removals.into_iter().filter_map(|id| shard.remove(id)).collect();
                for (r, c) in inserts {
                    shard.insert(Arc::clone(r), c);
                }
                gone
            })
            .collect()
    }

    /// Every leaf, by id ascending.
    fn leaves(&self) -> impl Iterator<Item = &Leaf> {
        self.shards.iter().flat_map(|s| s.buckets.iter().flatten())
    }

    /// Every id, ascending.
    pub fn ids(&self) -> impl Iterator<Item = &ResourceId> {
        self.leaves().map(|leaf| &leaf.id)
    }

    /// Every register, by id ascending.
    pub fn values(&self) -> impl Iterator<Item = &Arc<ResourceRegister>> {
        self.ids().map(|id| &self.shards[shard_of(id)].entries[id])
    }
}

pub(super) struct Index {
    pub registers: Registers,
    pub nullifiers: DigestMap<[u8; 32], u64>,
    pub consumed: DigestMap<ResourceId, u64>,
}

impl Default for Index {
    fn default() -> Self {
        Index { registers: Registers::default(), nullifiers: digest_map(0), consumed: digest_map(0) }
    }
}

impl Index {
    /// Apply a replayed delta; commitments are recomputed afterwards.
    pub fn apply(&mut self, delta: &BatchDelta, number: u64) {
        let zeros = vec![[0u8; 32]; delta.upserts.len()];
        self.apply_with(delta, &zeros, number);
    }

    /// Apply a committed delta whose upserts have the given commitments: the
    /// registers on the rayon pool, the nullifier and consumed sets beside them.
    pub fn apply_with(&mut self, delta: &BatchDelta, commitments: &[[u8; 32]], number: u64) {
        let Index { registers, nullifiers, consumed } = self;
        let (gone, ()) = rayon::join(
            || registers.apply(&delta.removed, &delta.upserts, commitments),
            || {
                nullifiers.reserve(delta.nullifiers.len());
                consumed.reserve(delta.removed.len());
                consumed.extend(delta.removed.iter().map(|id| (*id, number)));
                nullifiers.extend(delta.nullifiers.iter().map(|n| (*n, number)));
            },
        );
        drop(gone);
    }

    /// Hash every register's state encoding through the pool (after a load).
    pub fn recompute_commitments(&mut self, pool: &mut HashPool) -> Result<(), HashError> {
        let handles: Vec<HashHandle> =
            self.registers.values().map(|r| pool.hash_with(|buf| r.write_state_encoding(buf))).collect();
        pool.flush()?;
        let mut handles = handles.into_iter();
        for leaf in self.registers.shards.iter_mut().flat_map(|s| s.buckets.iter_mut().flatten()) {
            let h = handles.next().ok_or(HashError::UnknownHandle(u32::MAX))?;
            leaf.commitment = pool.get(h).ok_or(HashError::UnknownHandle(h.0))?;
        }
        Ok(())
    }

    /// Every non-empty bucket's concatenated commitments, buckets ascending.
    pub fn all_buckets(&self) -> Vec<(usize, Vec<u8>)> {
        let buckets = (0..BUCKETS).map(|b| (b, self.registers.bucket(b))).filter(|(_, leaves)| !leaves.is_empty());
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
            let leaves = self.registers.bucket(bucket);
            let handle = pool.hash_with(|bytes| {
                let mut changed = bucket_changes.iter().peekable();
                for leaf in leaves {
                    while let Some((_, c)) = changed.next_if(|(cid, _)| *cid < leaf.id) {
                        put(bytes, c);
                    }
                    match changed.next_if(|(cid, _)| *cid == leaf.id) {
                        Some((_, c)) => put(bytes, c),
                        None => bytes.extend_from_slice(&leaf.commitment),
                    }
                }
                for (_, c) in changed {
                    put(bytes, c);
                }
            });
            out.push((bucket, handle));
        }
        out
    }
}

/// A changed leaf's new commitment (none when it was removed).
fn put(bytes: &mut Vec<u8>, commitment: &Option<[u8; 32]>) {
    if let Some(c) = commitment {
        bytes.extend_from_slice(c);
    }
}
