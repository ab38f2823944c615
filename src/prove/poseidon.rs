//! Poseidon over BN254's scalar field: the parameters, a native hash and its
//! in-circuit twin.
//!
//! Parameters (documented in docs/PROVING.md): width 3 (rate 2, capacity 1),
//! S-box x^5, 8 full rounds and 57 partial rounds, round constants and MDS
//! matrix from the Grain LFSR of the Poseidon paper via
//! `find_poseidon_ark_and_mds(254, 2, 8, 57, 0)`.
//!
//! Domain separation: the capacity element starts as `tag << 16 | arity`,
//! so hashes of different purposes or lengths never share a sponge state.

use std::sync::OnceLock;

use ark_bn254::Fr;
use ark_crypto_primitives::sponge::constraints::CryptographicSpongeVar;
use ark_crypto_primitives::sponge::poseidon::constraints::PoseidonSpongeVar;
use ark_crypto_primitives::sponge::poseidon::{find_poseidon_ark_and_mds, PoseidonConfig, PoseidonSponge};
use ark_crypto_primitives::sponge::CryptographicSponge;
use ark_ff::AdditiveGroup;
use ark_r1cs_std::fields::fp::FpVar;
use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError};

pub const RATE: usize = 2;
pub const ALPHA: u64 = 5;
pub const FULL_ROUNDS: usize = 8;
pub const PARTIAL_ROUNDS: usize = 57;

/// What a hash is for; part of the sponge's initial capacity element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashDomain {
    /// A resource commitment over the register's field encoding.
    Commitment = 1,
    /// The commitment to a nullifier key.
    NullifierKey = 2,
    /// A nullifier: Poseidon(nk, commitment).
    Nullifier = 3,
}

/// The shared parameter set, derived once.
pub fn config() -> &'static PoseidonConfig<Fr> {
    static CONFIG: OnceLock<PoseidonConfig<Fr>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let (ark, mds) = find_poseidon_ark_and_mds::<Fr>(254, RATE, FULL_ROUNDS as u64, PARTIAL_ROUNDS as u64, 0);
        PoseidonConfig::new(FULL_ROUNDS, PARTIAL_ROUNDS, ALPHA, mds, ark, RATE, 1)
    })
}

fn capacity_tag(domain: HashDomain, arity: usize) -> Fr {
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
            super::poseidon_native::permute(&mut state);
        }
    }
    super::poseidon_native::permute(&mut state);
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

/// The in-circuit twin of [`hash`].
pub fn hash_var(
    cs: ConstraintSystemRef<Fr>,
    domain: HashDomain,
    inputs: &[FpVar<Fr>],
) -> Result<FpVar<Fr>, SynthesisError> {
    let mut sponge = PoseidonSpongeVar::new(cs, config());
    sponge.state[0] = FpVar::Constant(capacity_tag(domain, inputs.len()));
    sponge.absorb(&inputs.to_vec())?;
    let mut out = sponge.squeeze_field_elements(1)?;
    out.pop().ok_or(SynthesisError::Unsatisfiable)
}

/// BLAKE3 of the serialized parameters: pins them in tests and docs.
pub fn fingerprint() -> String {
    use ark_serialize::CanonicalSerialize;
    let mut bytes = Vec::new();
    config().serialize_compressed(&mut bytes).expect("serializing to a Vec cannot fail");
    blake3::hash(&bytes).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::Field;
    use ark_r1cs_std::prelude::*;
    use ark_relations::gr1cs::ConstraintSystem;
    use rand::SeedableRng;

    #[test]
    fn gadget_matches_native_hash() {
        let inputs: Vec<Fr> = (0..5u64).map(|i| Fr::from(i * 7 + 3)).collect();
        for n in 0..=inputs.len() {
            let cs = ConstraintSystem::<Fr>::new_ref();
            let vars: Vec<FpVar<Fr>> =
                inputs[..n].iter().map(|v| FpVar::new_witness(cs.clone(), || Ok(*v)).unwrap()).collect();
            let out = hash_var(cs.clone(), HashDomain::Commitment, &vars).unwrap();
            assert_eq!(out.value().unwrap(), hash(HashDomain::Commitment, &inputs[..n]), "arity {n}");
            assert!(cs.is_satisfied().unwrap());
        }
    }

    #[test]
    fn native_hash_matches_the_ark_sponge() {
        use ark_std::UniformRand;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let edges = [Fr::ZERO, Fr::ONE, -Fr::ONE];
        for n in 0..=7 {
            for domain in [HashDomain::Commitment, HashDomain::NullifierKey, HashDomain::Nullifier] {
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
