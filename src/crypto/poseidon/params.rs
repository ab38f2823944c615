//! Poseidon's parameter set over BN254's scalar field.
//!
//! Width 3 (rate 2, capacity 1), S-box x^5, 8 full rounds and 57 partial
//! rounds, round constants and MDS matrix from the Grain LFSR of the
//! Poseidon paper via `find_poseidon_ark_and_mds(254, 2, 8, 57, 0)`
//! (documented in docs/PROVING.md).

use std::sync::OnceLock;

use ark_bn254::Fr;
use ark_crypto_primitives::sponge::poseidon::{find_poseidon_ark_and_mds, PoseidonConfig};

pub const RATE: usize = 2;
pub const ALPHA: u64 = 5;
pub const FULL_ROUNDS: usize = 8;
pub const PARTIAL_ROUNDS: usize = 57;

/// The shared parameter set, derived once.
pub fn config() -> &'static PoseidonConfig<Fr> {
    static CONFIG: OnceLock<PoseidonConfig<Fr>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let (ark, mds) = find_poseidon_ark_and_mds::<Fr>(254, RATE, FULL_ROUNDS as u64, PARTIAL_ROUNDS as u64, 0);
        PoseidonConfig::new(FULL_ROUNDS, PARTIAL_ROUNDS, ALPHA, mds, ark, RATE, 1)
    })
}

/// BLAKE3 of the serialized parameters: pins them in tests and docs.
pub fn fingerprint() -> String {
    use ark_serialize::CanonicalSerialize;
    let mut bytes = Vec::new();
    config().serialize_compressed(&mut bytes).expect("serializing to a Vec cannot fail");
    blake3::hash(&bytes).to_hex().to_string()
}
