//! Poseidon over BN254's scalar field: the parameters ([`params`]), the
//! native permutation ([`permutation`]) and the hash built on them, one at
//! a time ([`hash`]) or many at once ([`PoseidonBatch`], eight per AVX-512
//! IFMA lane group, four per AVX2 one). The in-circuit twin lives with the circuit
//! (`prove::poseidon`).
//!
//! Domain separation: the capacity element starts as `tag << 16 | arity`,
//! so hashes of different purposes or lengths never share a sponge state.

mod batch;
#[cfg(target_arch = "x86_64")]
mod lanes;
pub mod params;
pub mod permutation;

pub use batch::{PoseidonBatch, PoseidonKernel};

use ark_bn254::Fr;
use ark_crypto_primitives::sponge::poseidon::PoseidonSponge;
use ark_crypto_primitives::sponge::CryptographicSponge;
use ark_ff::AdditiveGroup;

pub use params::{config, fingerprint, ALPHA, FULL_ROUNDS, PARTIAL_ROUNDS, RATE};

/// What a hash is for; part of the sponge's initial capacity element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashDomain {
    /// A resource commitment over the register's field encoding.
    Commitment = 1,
    /// The commitment to a nullifier key.
    NullifierKey = 2,
    /// A nullifier: Poseidon(nk, commitment).
    Nullifier = 3,
    /// A logic program's own `POSEIDON` request: kept apart from the
    /// protocol's hashes, so no program can make one of their values.
    Logic = 4,
}

pub(crate) fn capacity_tag(domain: HashDomain, arity: usize) -> Fr {
    Fr::from(((domain as u64) << 16) | arity as u64)
}

/// Poseidon of `inputs` under `domain`, one field element out: the sponge
/// of [`reference_hash`] on a fixed-size state. ark's sponge clones the whole
/// parameter set (195 round constants and the matrix) for every hash, which
/// made a nullifier-key opening cost as much as three permutations; the
/// executor opens one per distinct key of a batch.
pub fn hash(domain: HashDomain, inputs: &[Fr]) -> Fr {
    // ark's layout: the capacity element at index 0, the rate after it.
    let mut state = [capacity_tag(domain, inputs.len()), Fr::ZERO, Fr::ZERO];
    let mut chunks = inputs.chunks(RATE).peekable();
    while let Some(chunk) = chunks.next() {
        for (slot, x) in state[1..].iter_mut().zip(chunk) {
            *slot += x;
        }
        // A full rate is permuted when the next element arrives; the last
        // chunk is permuted by the squeeze below.
        if chunks.peek().is_some() {
            permutation::permute(&mut state);
        }
    }
    permutation::permute(&mut state);
    state[1]
}

/// Poseidon through ark-crypto-primitives' sponge: the reference that
/// [`hash`] is tested against.
pub fn reference_hash(domain: HashDomain, inputs: &[Fr]) -> Fr {
    let mut sponge = PoseidonSponge::new(config());
    // ark's Poseidon sponge keeps its capacity element at index 0.
    sponge.state[0] = capacity_tag(domain, inputs.len());
    sponge.absorb(&inputs.to_vec());
    sponge.squeeze_field_elements::<Fr>(1)[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{AdditiveGroup, Field};
    use rand::SeedableRng;

    #[test]
    fn native_hash_matches_the_ark_sponge() {
        use ark_std::UniformRand;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let edges = [Fr::ZERO, Fr::ONE, -Fr::ONE];
        for n in 0..=7 {
            for domain in [HashDomain::Commitment, HashDomain::NullifierKey, HashDomain::Nullifier, HashDomain::Logic] {
                let random: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
                let edge: Vec<Fr> = (0..n).map(|i| edges[i % 3]).collect();
                for inputs in [random, edge] {
                    assert_eq!(hash(domain, &inputs), reference_hash(domain, &inputs), "arity {n}, {domain:?}");
                }
            }
        }
    }

    #[test]
    fn domains_and_lengths_separate() {
        let x = Fr::from(42u64);
        assert_ne!(hash(HashDomain::NullifierKey, &[x]), hash(HashDomain::Nullifier, &[x]));
        assert_ne!(hash(HashDomain::Nullifier, &[x]), hash(HashDomain::Nullifier, &[x, Fr::from(0u64)]));
    }
}
