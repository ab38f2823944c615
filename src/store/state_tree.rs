//! The state root: a fixed-shape bucketed Merkle tree over the live registers.
//!
//! Definition (also in docs/ARCHITECTURE.md):
//! * bucket of a register = the first [`BUCKET_BITS`] bits of its id (the
//!   first two id bytes, big-endian), so there are [`BUCKETS`] buckets;
//! * bucket digest = BLAKE3 of the concatenated commitments (BLAKE3 of the
//!   state encoding) of the bucket's registers in id order; an empty bucket
//!   is BLAKE3("");
//! * root = [`HashPool::merkle_root`] over the [`BUCKETS`] bucket digests in
//!   bucket order (a perfect binary tree, parents BLAKE3(left ‖ right)).
//!
//! The tree's shape never changes, so a batch rehashes only its dirty
//! buckets and their paths to the root: work proportional to what it
//! changes, not to the store's size. Nodes are kept heap-ordered (node 1 is
//! the root, node i has children 2i and 2i+1, bucket b is node BUCKETS + b).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::hash::{HashError, HashHandle, HashPool};
use crate::resource::ResourceId;

pub const BUCKET_BITS: u32 = 16;
pub const BUCKETS: usize = 1 << BUCKET_BITS;
const DEPTH: usize = BUCKET_BITS as usize;

/// The bucket that holds register `id`.
pub fn bucket_of(id: &ResourceId) -> usize {
    let b = id.as_bytes();
    ((b[0] as usize) << 8) | b[1] as usize
}

/// The first and last id of bucket `b` (an inclusive range).
#[cfg(test)]
pub fn bucket_bounds(bucket: usize) -> (ResourceId, ResourceId) {
    let mut lo = [0u8; 32];
    let mut hi = [0xFFu8; 32];
    lo[0] = (bucket >> 8) as u8;
    lo[1] = bucket as u8;
    hi[0] = lo[0];
    hi[1] = lo[1];
    (ResourceId::from_digest(lo), ResourceId::from_digest(hi))
}

/// The digest of every node of an all-empty tree, by height (0 = bucket).
fn empty_by_height() -> &'static [[u8; 32]; DEPTH + 1] {
    static EMPTY: OnceLock<[[u8; 32]; DEPTH + 1]> = OnceLock::new();
    EMPTY.get_or_init(|| {
        let mut out = [[0u8; 32]; DEPTH + 1];
        out[0] = *blake3::hash(b"").as_bytes();
        for h in 1..=DEPTH {
            out[h] = parent(&out[h - 1], &out[h - 1]);
        }
        out
    })
}

fn parent(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    *blake3::hash(&block(left, right)).as_bytes()
}

fn block(left: &[u8; 32], right: &[u8; 32]) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[..32].copy_from_slice(left);
    b[32..].copy_from_slice(right);
    b
}

/// Changed tree nodes: (heap index, new digest), the result of staging.
#[derive(Clone, Debug, Default)]
pub struct TreeUpdate {
    nodes: Vec<(usize, [u8; 32])>,
    root: Option<[u8; 32]>,
}

impl TreeUpdate {
    /// The root after the update (None when nothing changed).
    pub fn root(&self) -> Option<[u8; 32]> {
        self.root
    }
}

/// The dirty nodes of one half of the tree, bottom up ([`StateTree::stage_half`]).
#[derive(Debug)]
pub(super) struct HalfUpdate(Vec<(usize, [u8; 32])>);

#[derive(Clone, Debug)]
pub struct StateTree {
    /// Heap-ordered nodes; index 0 is unused.
    nodes: Vec<[u8; 32]>,
}

impl Default for StateTree {
    fn default() -> Self {
        let empty = empty_by_height();
        let mut nodes = vec![[0u8; 32]; 2 * BUCKETS];
        for (height, digest) in empty.iter().enumerate() {
            let level = DEPTH - height;
            nodes[1 << level..2 << level].fill(*digest);
        }
        StateTree { nodes }
    }
}

impl StateTree {
    pub fn root(&self) -> [u8; 32] {
        self.nodes[1]
    }

    pub fn bucket_digest(&self, bucket: usize) -> [u8; 32] {
        self.nodes[BUCKETS + bucket]
    }

    /// Rehash the given buckets' contents (bucket, commitments in id order;
    /// buckets ascending, each once) and the paths above them, through the
    /// pool: one flush for the buckets, then one per level.
    pub fn stage(&self, buckets: Vec<(usize, Vec<u8>)>, pool: &mut HashPool) -> Result<TreeUpdate, HashError> {
        let filed = buckets.into_iter().map(|(b, concatenated)| (b, pool.hash(concatenated))).collect();
        self.stage_filed(filed, pool)
    }

    /// [`StateTree::stage`] for buckets whose contents are already filed in
    /// the pool (bucket, request; buckets ascending, each once).
    pub fn stage_filed(&self, buckets: Vec<(usize, HashHandle)>, pool: &mut HashPool) -> Result<TreeUpdate, HashError> {
        let nodes = self.climb_filed(buckets, pool, 1)?;
        Ok(TreeUpdate { root: nodes.last().map(|&(_, digest)| digest), nodes })
    }

    /// The dirty nodes of one half of the tree (below node 2 or node 3):
    /// [`StateTree::stage_filed`] for buckets of that half alone, so the two
    /// halves can be staged on two threads; [`StateTree::join_halves`] then
    /// makes the root.
    pub(super) fn stage_half(
        &self,
        buckets: Vec<(usize, HashHandle)>,
        pool: &mut HashPool,
    ) -> Result<HalfUpdate, HashError> {
        let in_left = |&(b, _): &(usize, HashHandle)| b < BUCKETS / 2;
        debug_assert!(buckets.iter().all(in_left) || !buckets.iter().any(in_left), "buckets of both halves");
        self.climb_filed(buckets, pool, 3).map(HalfUpdate)
    }

    /// The update of the whole tree from its two halves
    /// ([`StateTree::stage_half`]); the root is hashed in `pool`.
    pub(super) fn join_halves(
        &self,
        left: HalfUpdate,
        right: HalfUpdate,
        pool: &mut HashPool,
    ) -> Result<TreeUpdate, HashError> {
        let (HalfUpdate(mut nodes), HalfUpdate(right)) = (left, right);
        // Each half ends at its top: node 2 (left), node 3 (right).
        let tops: Vec<(usize, [u8; 32])> = nodes.last().into_iter().chain(right.last()).copied().collect();
        debug_assert!(tops.windows(2).all(|w| w[0].0 == 2 && w[1].0 == 3) && tops.iter().all(|t| t.0 == 2 || t.0 == 3));
        nodes.extend(right);
        if tops.is_empty() {
            return Ok(TreeUpdate::default());
        }
        // `climb` hands back its starting level too: the tops, already in `nodes`.
        let root = *self.climb(tops, pool, 1)?.last().expect("climb ends at the root");
        nodes.push(root);
        Ok(TreeUpdate { nodes, root: Some(root.1) })
    }

    /// Flush the filed buckets and rehash the dirty nodes above them up to
    /// the first level whose nodes are at most `top` (1: the root; 3: the
    /// halves' tops, nodes 2 and 3). Every dirty node, bottom up.
    fn climb_filed(
        &self,
        buckets: Vec<(usize, HashHandle)>,
        pool: &mut HashPool,
        top: usize,
    ) -> Result<Vec<(usize, [u8; 32])>, HashError> {
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let (indices, handles): (Vec<usize>, Vec<HashHandle>) =
            buckets.into_iter().map(|(b, handle)| (BUCKETS + b, handle)).unzip();
        pool.flush()?;
        let level = resolve(indices, &handles, pool)?;
        self.climb(level, pool, top)
    }

    /// `level` (dirty nodes of one level, ascending) and the dirty nodes
    /// above it, one flush per level, up to the first level whose nodes
    /// are at most `top`.
    fn climb(
        &self,
        mut level: Vec<(usize, [u8; 32])>,
        pool: &mut HashPool,
        top: usize,
    ) -> Result<Vec<(usize, [u8; 32])>, HashError> {
        // Each level holds at most as many dirty nodes as the one below, and
        // at most the level's width: the exact bound, so `all` never regrows.
        let bound = (0..=BUCKET_BITS).map(|depth| level.len().min(1 << depth)).sum();
        let mut all = Vec::with_capacity(bound);
        let mut blocks: Vec<u8> = Vec::with_capacity(64 * level.len().div_ceil(2));
        while level[0].0 > top {
            // The level's parent blocks side by side, filed as one run of
            // 64-byte messages (hashed in place when the run is large).
            let mut parents = Vec::with_capacity(level.len().div_ceil(2));
            blocks.clear();
            let mut i = 0;
            while i < level.len() {
                let (idx, digest) = level[i];
                let (left, right, step) = if idx % 2 == 0 {
                    match level.get(i + 1) {
                        Some(&(next, d)) if next == idx + 1 => (digest, d, 2),
                        _ => (digest, self.nodes[idx + 1], 1),
                    }
                } else {
                    (self.nodes[idx - 1], digest, 1)
                };
                parents.push(idx / 2);
                blocks.extend_from_slice(&left);
                blocks.extend_from_slice(&right);
                i += step;
            }
            let range = pool.hash_fixed(&blocks, 64)?;
            pool.flush()?;
            let digests = pool.get_range(range).ok_or(HashError::UnknownHandle(range.start))?;
            all.extend_from_slice(&level);
            level = parents.into_iter().zip(digests.iter().copied()).collect();
        }
        all.extend_from_slice(&level);
        Ok(all)
    }

    pub fn apply(&mut self, update: &TreeUpdate) {
        for (idx, digest) in &update.nodes {
            self.nodes[*idx] = *digest;
        }
    }
}

fn resolve(indices: Vec<usize>, handles: &[HashHandle], pool: &HashPool) -> Result<Vec<(usize, [u8; 32])>, HashError> {
    indices
        .into_iter()
        .zip(handles)
        .map(|(i, h)| pool.get(*h).map(|d| (i, d)).ok_or(HashError::UnknownHandle(h.0)))
        .collect()
}

/// The state root computed from scratch (the reference the incremental tree
/// is tested against): `commitments` are (id, commitment) pairs in any order.
pub fn reference_root(
    commitments: &BTreeMap<ResourceId, [u8; 32]>,
    pool: &mut HashPool,
) -> Result<[u8; 32], HashError> {
    let mut buckets: Vec<Vec<u8>> = vec![Vec::new(); BUCKETS];
    for (id, c) in commitments {
        buckets[bucket_of(id)].extend_from_slice(c);
    }
    let digests: Vec<[u8; 32]> = buckets.iter().map(|b| *blake3::hash(b).as_bytes()).collect();
    pool.merkle_root(&digests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Stage the changed buckets of `after` relative to the tree's content.
    fn restage(
        tree: &StateTree,
        after: &BTreeMap<ResourceId, [u8; 32]>,
        dirty: &[usize],
        pool: &mut HashPool,
    ) -> TreeUpdate {
        let mut buckets: Vec<usize> = dirty.to_vec();
        buckets.sort_unstable();
        buckets.dedup();
        let contents = buckets.into_iter().map(|b| (b, bucket_contents(after, b))).collect();
        tree.stage(contents, pool).unwrap()
    }

    /// Bucket `b`'s concatenated commitments in `set`.
    fn bucket_contents(set: &BTreeMap<ResourceId, [u8; 32]>, b: usize) -> Vec<u8> {
        let (lo, hi) = bucket_bounds(b);
        set.range(lo..=hi).flat_map(|(_, c)| c.iter().copied()).collect()
    }

    type IdMaker = dyn Fn(usize, &mut rand_chacha::ChaCha8Rng) -> ResourceId;

    fn id_in(bucket: usize, rng: &mut impl Rng) -> ResourceId {
        let mut d: [u8; 32] = rng.gen();
        d[0] = (bucket >> 8) as u8;
        d[1] = bucket as u8;
        ResourceId::from_digest(d)
    }

    #[test]
    fn empty_tree_matches_reference() {
        let mut pool = HashPool::new();
        let tree = StateTree::default();
        assert_eq!(tree.root(), reference_root(&BTreeMap::new(), &mut pool).unwrap());
    }

    #[test]
    fn edge_sizes_match_reference() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut pool = HashPool::new();
        for n in [0usize, 1, 2, 3, 31, 32, 33, 1000] {
            // Spread over buckets, all in one bucket, and in the last bucket.
            let layouts: [&IdMaker; 3] =
                [&|_, r| ResourceId::from_digest(r.gen()), &|_, r| id_in(0x1234, r), &|_, r| id_in(BUCKETS - 1, r)];
            for (layout, make) in layouts.iter().enumerate() {
                let set: BTreeMap<ResourceId, [u8; 32]> = (0..n).map(|i| (make(i, &mut rng), rng.gen())).collect();
                let dirty: Vec<usize> = set.keys().map(bucket_of).collect();
                let mut tree = StateTree::default();
                let update = restage(&tree, &set, &dirty, &mut pool);
                tree.apply(&update);
                let expected = reference_root(&set, &mut pool).unwrap();
                assert_eq!(tree.root(), expected, "n = {n}, layout {layout}");
                if n > 0 {
                    assert_eq!(update.root(), Some(expected));
                }
            }
        }
    }

    /// A seeded generator, a pool, an empty tree and its (empty) register set.
    fn start(seed: u64) -> (rand_chacha::ChaCha8Rng, HashPool, StateTree, BTreeMap<ResourceId, [u8; 32]>) {
        (rand_chacha::ChaCha8Rng::seed_from_u64(seed), HashPool::new(), StateTree::default(), BTreeMap::new())
    }

    #[test]
    fn random_inserts_removes_edits_match_reference() {
        let (mut rng, mut pool, mut tree, mut set) = start(11);
        // Few buckets first (collisions within a bucket), then the whole range.
        for round in 0..80 {
            let spread = if round < 40 { 4 } else { BUCKETS };
            let mut dirty = Vec::new();
            for _ in 0..rng.gen_range(0..40) {
                match rng.gen_range(0..3) {
                    0 => {
                        let id = id_in(rng.gen_range(0..spread), &mut rng);
                        set.insert(id, rng.gen());
                        dirty.push(bucket_of(&id));
                    }
                    1 if !set.is_empty() => {
                        let id = *set.keys().nth(rng.gen_range(0..set.len())).unwrap();
                        set.remove(&id);
                        dirty.push(bucket_of(&id));
                    }
                    _ if !set.is_empty() => {
                        let id = *set.keys().nth(rng.gen_range(0..set.len())).unwrap();
                        set.insert(id, rng.gen());
                        dirty.push(bucket_of(&id));
                    }
                    _ => {}
                }
            }
            let update = restage(&tree, &set, &dirty, &mut pool);
            let before = tree.root();
            tree.apply(&update);
            assert_eq!(update.root().unwrap_or(before), tree.root());
            assert_eq!(tree.root(), reference_root(&set, &mut pool).unwrap(), "round {round}, {} registers", set.len());
        }
    }

    /// Staging the two halves on their own pools and joining them gives the
    /// update staging the whole tree gives: changes in one half only, in
    /// both, at the halves' edges, and none.
    #[test]
    fn halves_staged_apart_and_joined_match_the_whole() {
        let (mut rng, mut pool, mut tree, mut set) = start(17);
        let half = BUCKETS / 2;
        let layouts: [&dyn Fn(&mut rand_chacha::ChaCha8Rng) -> usize; 5] = [
            &|r| r.gen_range(0..BUCKETS),
            &|r| r.gen_range(0..half),
            &|r| r.gen_range(half..BUCKETS),
            &|r| [0, half - 1, half, BUCKETS - 1][r.gen_range(0..4)],
            &|_| 0,
        ];
        for round in 0..30 {
            let pick = layouts[round % layouts.len()];
            let n = [0, 1, 2, 3, 33, 500][round % 6];
            let mut dirty = Vec::new();
            for _ in 0..n {
                let id = id_in(pick(&mut rng), &mut rng);
                set.insert(id, rng.gen());
                dirty.push(bucket_of(&id));
            }
            if round % 3 == 2 {
                let gone: Vec<ResourceId> = set.keys().step_by(4).copied().collect();
                for id in gone {
                    set.remove(&id);
                    dirty.push(bucket_of(&id));
                }
            }
            dirty.sort_unstable();
            dirty.dedup();
            let whole = restage(&tree, &set, &dirty, &mut pool);
            let (mut left_pool, mut right_pool) = (HashPool::new(), HashPool::new());
            let file = |buckets: &[usize], pool: &mut HashPool| -> Vec<(usize, HashHandle)> {
                buckets.iter().map(|&b| (b, pool.hash(bucket_contents(&set, b)))).collect()
            };
            let split = dirty.partition_point(|&b| b < half);
            let left = tree.stage_half(file(&dirty[..split], &mut left_pool), &mut left_pool).unwrap();
            let right = tree.stage_half(file(&dirty[split..], &mut right_pool), &mut right_pool).unwrap();
            let joined = tree.join_halves(left, right, &mut left_pool).unwrap();
            assert_eq!(joined.root(), whole.root(), "round {round}");
            let sorted = |u: &TreeUpdate| {
                let mut nodes = u.nodes.clone();
                nodes.sort_unstable();
                nodes
            };
            assert_eq!(sorted(&joined), sorted(&whole), "round {round}");
            tree.apply(&joined);
            assert_eq!(tree.root(), reference_root(&set, &mut pool).unwrap(), "round {round}");
        }
    }

    #[test]
    fn bucket_bounds_contain_exactly_their_bucket() {
        for b in [0, 1, 0xFF, 0x100, BUCKETS - 1] {
            let (lo, hi) = bucket_bounds(b);
            assert_eq!((bucket_of(&lo), bucket_of(&hi)), (b, b));
        }
    }
}
