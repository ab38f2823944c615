//! Byte strings as BN254 scalars, and the Poseidon commitment to a
//! nullifier key: what a resource's data model needs of the field, below
//! the prover.
//!
//! A byte string becomes one field element: BLAKE3 in derive-key mode under
//! [`FIELD_CONTEXT`] over `len(label) || label || bytes`, first 31 bytes read
//! little-endian (248 bits, always below the modulus). The nullifier-key
//! commitment is `Poseidon(nk)` stored as the canonical 32-byte
//! little-endian encoding of the field element.

use ark_bn254::Fr;
use ark_ff::{BigInteger, PrimeField};

use super::poseidon::{hash, HashDomain};

pub const FIELD_CONTEXT: &str = "causality-vm 2026 prove field encoding v1";

/// A labelled byte string as a field element (see the module docs).
pub fn bytes_to_field(label: &str, bytes: &[u8]) -> Fr {
    let mut hasher = blake3::Hasher::new_derive_key(FIELD_CONTEXT);
    hasher.update(&(label.len() as u64).to_le_bytes());
    hasher.update(label.as_bytes());
    hasher.update(bytes);
    let digest = hasher.finalize();
    Fr::from_le_bytes_mod_order(&digest.as_bytes()[..31])
}

/// The nullifier key as a field element.
pub fn nullifier_key_field(nullifier_key: &[u8; 32]) -> Fr {
    bytes_to_field("nullifier_key", nullifier_key)
}

/// `Poseidon(nk)`, the value a register's `nullifier_key_commitment` must hold
/// (canonical little-endian bytes) for the circuit to let the key consume it.
pub fn nullifier_key_commitment(nullifier_key: &[u8; 32]) -> [u8; 32] {
    field_to_bytes(&hash(HashDomain::NullifierKey, &[nullifier_key_field(nullifier_key)]))
}

/// Whether `bytes` can be a nullifier-key commitment at all: the canonical
/// little-endian encoding of a BN254 scalar (below the modulus). Anything
/// else (a BLAKE3 digest, most likely) no key can ever open.
pub fn is_field_encoding(bytes: &[u8; 32]) -> bool {
    Fr::from_bigint(<Fr as PrimeField>::BigInt::from_bits_le(
        &bytes.iter().flat_map(|b| (0..8).map(move |i| b >> i & 1 == 1)).collect::<Vec<bool>>(),
    ))
    .is_some_and(|f| field_to_bytes(&f) == *bytes)
}

/// Canonical little-endian bytes of a field element.
pub fn field_to_bytes(value: &Fr) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&value.into_bigint().to_bytes_le());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_separate_equal_bytes() {
        assert_ne!(bytes_to_field("id", b"x"), bytes_to_field("logic", b"x"));
        assert_eq!(bytes_to_field("id", b"x"), bytes_to_field("id", b"x"));
    }

    #[test]
    fn field_bytes_round_trip() {
        let v = nullifier_key_field(&[7u8; 32]);
        assert_eq!(Fr::from_le_bytes_mod_order(&field_to_bytes(&v)), v);
        assert!(is_field_encoding(&field_to_bytes(&v)));
        assert!(!is_field_encoding(&[0xff; 32]));
    }
}
