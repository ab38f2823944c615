//! The state root, kept incrementally.
//!
//! The root is exactly [`HashPool::merkle_root`] over the sorted leaf list
//! (pairs hashed left‖right, an odd last node promoted). Every level of the
//! last tree is cached; a new leaf list reuses each cached parent whose two
//! children sit before the first changed position and recomputes only the
//! rest, through the pool. Changes near the end of the id order cost little;
//! an insertion at position p costs about (n − p) hashes, so random ids cost
//! at most one full tree, never more. See docs/perf/batch.md.

use crate::hash::{HashError, HashHandle, HashPool};

#[derive(Clone, Debug, Default)]
pub struct MerkleCache {
    /// levels[0] are the leaves, the last level holds the root.
    levels: Vec<Vec<[u8; 32]>>,
}

impl MerkleCache {
    pub fn root(&self) -> Option<[u8; 32]> {
        self.levels.last().and_then(|l| l.first().copied())
    }

    pub fn leaf_count(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// The tree over `leaves`, reusing what this cache already holds.
    pub fn rebuild(&self, leaves: Vec<[u8; 32]>, pool: &mut HashPool) -> Result<MerkleCache, HashError> {
        if leaves.is_empty() {
            let h = pool.hash(Vec::new());
            let empty = pool.digest(h)?;
            return Ok(MerkleCache { levels: vec![Vec::new(), vec![empty]] });
        }
        let mut levels = vec![leaves];
        let mut depth = 0;
        while levels[depth].len() > 1 {
            let current = &levels[depth];
            let old = self.levels.get(depth).filter(|_| self.levels.len() > depth + 1);
            let first_changed = match old {
                Some(old) => first_difference(old, current),
                None => 0,
            };
            let reused = match self.levels.get(depth + 1) {
                Some(old_parents) if old.is_some() => (first_changed / 2).min(old_parents.len()),
                _ => 0,
            };
            let mut parents: Vec<[u8; 32]> = Vec::with_capacity(current.len().div_ceil(2));
            if reused > 0 {
                parents.extend_from_slice(&self.levels[depth + 1][..reused]);
            }
            let handles: Vec<HashHandle> = current[2 * reused..]
                .chunks_exact(2)
                .map(|pair| {
                    let mut block = [0u8; 64];
                    block[..32].copy_from_slice(&pair[0]);
                    block[32..].copy_from_slice(&pair[1]);
                    pool.hash(block)
                })
                .collect();
            pool.flush()?;
            for h in handles {
                parents.push(pool.get(h).ok_or(HashError::UnknownHandle(h.0))?);
            }
            if current.len() % 2 == 1 {
                parents.push(current[current.len() - 1]);
            }
            levels.push(parents);
            depth += 1;
        }
        Ok(MerkleCache { levels })
    }
}

fn first_difference(old: &[[u8; 32]], new: &[[u8; 32]]) -> usize {
    let common = old.len().min(new.len());
    old[..common].iter().zip(&new[..common]).position(|(a, b)| a != b).unwrap_or(common)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn leaf(rng: &mut impl Rng) -> [u8; 32] {
        rng.gen()
    }

    #[test]
    fn equals_pool_merkle_root_through_random_edits() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut pool = HashPool::new();
        let mut cache = MerkleCache::default();
        let mut leaves: Vec<[u8; 32]> = Vec::new();
        for round in 0..60 {
            // Insert, remove and change leaves at random positions, sometimes none.
            let edits = rng.gen_range(0..6);
            for _ in 0..edits {
                match rng.gen_range(0..3) {
                    0 => {
                        let at = rng.gen_range(0..=leaves.len());
                        leaves.insert(at, leaf(&mut rng));
                    }
                    1 if !leaves.is_empty() => {
                        let at = rng.gen_range(0..leaves.len());
                        leaves.remove(at);
                    }
                    _ if !leaves.is_empty() => {
                        let at = rng.gen_range(0..leaves.len());
                        leaves[at] = leaf(&mut rng);
                    }
                    _ => {}
                }
            }
            cache = cache.rebuild(leaves.clone(), &mut pool).unwrap();
            let expected = pool.merkle_root(&leaves).unwrap();
            assert_eq!(cache.root(), Some(expected), "round {round}, {} leaves", leaves.len());
        }
    }

    #[test]
    fn small_sizes_match() {
        let mut pool = HashPool::new();
        for n in [0usize, 1, 2, 3, 4, 5, 31, 32, 33] {
            let leaves: Vec<[u8; 32]> = (0..n).map(|i| [i as u8; 32]).collect();
            let cache = MerkleCache::default().rebuild(leaves.clone(), &mut pool).unwrap();
            assert_eq!(cache.root(), Some(pool.merkle_root(&leaves).unwrap()), "n = {n}");
            // Appending one leaf to a cached tree also matches.
            let mut more = leaves.clone();
            more.push([0xEE; 32]);
            let grown = cache.rebuild(more.clone(), &mut pool).unwrap();
            assert_eq!(grown.root(), Some(pool.merkle_root(&more).unwrap()), "n = {n} + 1");
        }
    }
}
