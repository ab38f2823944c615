//! Hash maps and sets keyed by BLAKE3 digests (resource ids, nullifiers).
//!
//! SipHash, the standard library's default, was 4 to 5% of a batch's time:
//! it hashes all 32 key bytes in rounds built for arbitrary keys. A digest's
//! bytes are already uniform, so [`DigestHasher`] folds two of its words
//! with one 64×64→128-bit multiply. The words are first mixed with a
//! per-process random seed, so someone grinding ids offline cannot aim them
//! at one probe sequence of this process's tables.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

pub type DigestMap<K, V> = HashMap<K, V, DigestState>;
pub type DigestSet<K> = HashSet<K, DigestState>;

/// An empty [`DigestMap`] with room for `n` entries.
pub fn digest_map<K, V>(n: usize) -> DigestMap<K, V> {
    HashMap::with_capacity_and_hasher(n, DigestState::default())
}

/// An empty [`DigestSet`] with room for `n` entries.
pub fn digest_set<K>(n: usize) -> DigestSet<K> {
    HashSet::with_capacity_and_hasher(n, DigestState::default())
}

/// The process's seed pair, drawn once from the standard library's random
/// hasher keys.
fn seeds() -> (u64, u64) {
    static SEEDS: OnceLock<(u64, u64)> = OnceLock::new();
    *SEEDS.get_or_init(|| {
        let random = std::collections::hash_map::RandomState::new();
        (random.hash_one(0x5eed_u64) | 1, random.hash_one(0xfeed_u64))
    })
}

#[derive(Clone, Copy, Debug)]
pub struct DigestState {
    seeds: (u64, u64),
}

impl Default for DigestState {
    fn default() -> Self {
        DigestState { seeds: seeds() }
    }
}

impl BuildHasher for DigestState {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher { state: self.seeds.0, seed: self.seeds.1 }
    }
}

pub struct DigestHasher {
    state: u64,
    seed: u64,
}

fn fold(a: u64, b: u64) -> u64 {
    let product = (a as u128).wrapping_mul(b as u128);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        // A digest key arrives as one 32-byte write; anything else (the
        // length prefix of a slice, short keys in tests) folds in 8 bytes at a time.
        let mut words = bytes.chunks(8).map(|c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(w)
        });
        if bytes.len() >= 16 {
            let (a, b) = (words.next().unwrap_or(0), words.next().unwrap_or(0));
            self.state = fold(a ^ self.state, b ^ self.seed);
            return;
        }
        for w in words {
            self.state = fold(w ^ self.state, self.seed);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.state = fold(n as u64 ^ self.state, self.seed);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_distinct_digests_spread() {
        let state = DigestState::default();
        let a = *blake3::hash(b"a").as_bytes();
        assert_eq!(state.hash_one(a), state.hash_one(a));
        let mut seen = std::collections::HashSet::new();
        for i in 0u32..10_000 {
            seen.insert(state.hash_one(*blake3::hash(&i.to_le_bytes()).as_bytes()) >> 50);
        }
        // 10,000 uniform 14-bit values cover most of the 16,384 slots.
        assert!(seen.len() > 7_000, "{}", seen.len());
    }

    #[test]
    fn maps_behave_as_maps() {
        let mut m: DigestMap<[u8; 32], u32> = digest_map(0);
        for i in 0u32..1000 {
            m.insert(*blake3::hash(&i.to_le_bytes()).as_bytes(), i);
        }
        for i in 0u32..1000 {
            assert_eq!(m.get(blake3::hash(&i.to_le_bytes()).as_bytes()), Some(&i));
        }
        assert_eq!(m.get(&[0u8; 32]), None);
    }
}
