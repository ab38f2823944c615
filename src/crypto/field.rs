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
    field_from_digest(hasher.finalize().as_bytes())
}

/// What [`bytes_to_field`] hashes (in derive-key mode under
/// [`FIELD_CONTEXT`]) for `label` and `bytes`: for callers that file the
/// hash in a hash pool instead.
pub fn field_material(label: &str, bytes: &[u8]) -> Vec<u8> {
    let mut material = Vec::with_capacity(8 + label.len() + bytes.len());
    material.extend_from_slice(&(label.len() as u64).to_le_bytes());
    material.extend_from_slice(label.as_bytes());
    material.extend_from_slice(bytes);
    material
}

/// The field element a [`FIELD_CONTEXT`] derive-key digest stands for.
pub fn field_from_digest(digest: &[u8; 32]) -> Fr {
    Fr::from_le_bytes_mod_order(&digest[..31])
}

/// The label a nullifier key is encoded under.
pub const NULLIFIER_KEY_LABEL: &str = "nullifier_key";

/// The nullifier key as a field element.
pub fn nullifier_key_field(nullifier_key: &[u8; 32]) -> Fr {
    bytes_to_field(NULLIFIER_KEY_LABEL, nullifier_key)
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
    field_from_bytes(bytes).is_some()
}

/// The field element whose canonical little-endian encoding is `bytes`;
/// `None` when they are the modulus or above (no element has them).
pub fn field_from_bytes(bytes: &[u8; 32]) -> Option<Fr> {
    let limb = |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    Fr::from_bigint(ark_ff::BigInt([limb(0), limb(1), limb(2), limb(3)]))
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
    fn the_material_and_digest_route_gives_the_same_field_element() {
        for (label, bytes) in [("id", &b""[..]), (NULLIFIER_KEY_LABEL, &[9u8; 32][..]), ("logic", &[1u8; 300][..])] {
            let digest = blake3::derive_key(FIELD_CONTEXT, &field_material(label, bytes));
            assert_eq!(field_from_digest(&digest), bytes_to_field(label, bytes), "{label}");
        }
    }

    #[test]
    fn field_bytes_round_trip() {
        let v = nullifier_key_field(&[7u8; 32]);
        assert_eq!(Fr::from_le_bytes_mod_order(&field_to_bytes(&v)), v);
        assert!(is_field_encoding(&field_to_bytes(&v)));
        assert!(!is_field_encoding(&[0xff; 32]));
    }

    #[test]
    fn only_values_below_the_modulus_decode() {
        let p_minus_1 = field_to_bytes(&-Fr::from(1u64));
        assert_eq!(field_from_bytes(&p_minus_1), Some(-Fr::from(1u64)));
        assert_eq!(field_from_bytes(&[0; 32]), Some(Fr::from(0u64)));
        let mut p = p_minus_1;
        p[0] += 1; // p − 1 ends in 0x00…; one more is the modulus itself
        assert_eq!(field_from_bytes(&p), None);
        let mut above = [0u8; 32];
        above[31] = 0x40; // 2^254 > p
        assert_eq!(field_from_bytes(&above), None);
        for value in [Fr::from(5u64), nullifier_key_field(&[3; 32])] {
            assert_eq!(field_from_bytes(&field_to_bytes(&value)), Some(value));
        }
    }
}
