//! The field encoding of a register and the native commitments and
//! nullifiers the circuit recomputes.
//!
//! Byte fields (id, logic, domain, fungibility domain, metadata, contents,
//! controller, nullifier key) become one field element each
//! ([`crate::crypto::field`]); quantity, version and lifecycle code are field
//! elements as they are.

use std::collections::BTreeMap;

use ark_bn254::Fr;
use ark_ff::PrimeField;

use super::ProveError;
pub use crate::crypto::field::{
    bytes_to_field, field_to_bytes, is_field_encoding, nullifier_key_commitment, nullifier_key_field, FIELD_CONTEXT,
};
use crate::crypto::poseidon::{hash, HashDomain};
use crate::resource::{LifecycleState, ResourceRegister};

/// A register as the circuit sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegisterFields {
    pub id: Fr,
    pub logic: Fr,
    pub domain: Fr,
    pub fungibility_domain: Fr,
    pub quantity: u64,
    pub metadata: Fr,
    pub contents: Fr,
    pub state: u8,
    pub nk_commitment: Fr,
    pub controller: Fr,
    pub version: u64,
}

impl RegisterFields {
    pub fn of(register: &ResourceRegister) -> Self {
        RegisterFields {
            id: bytes_to_field("id", register.id.as_bytes()),
            logic: bytes_to_field("logic", register.logic.as_bytes()),
            domain: bytes_to_field("domain", register.domain.as_str().as_bytes()),
            fungibility_domain: fungibility_field(&register.fungibility_domain),
            quantity: register.quantity,
            metadata: bytes_to_field("metadata", &metadata_encoding(&register.metadata)),
            contents: bytes_to_field("contents", &register.contents),
            state: register.state.code(),
            nk_commitment: Fr::from_le_bytes_mod_order(&register.nullifier_key_commitment),
            controller: bytes_to_field("controller", register.controller.as_bytes()),
            version: register.version,
        }
    }

    /// The Poseidon inputs of the commitment, in order.
    pub fn to_vec(&self) -> Vec<Fr> {
        vec![
            self.id,
            self.logic,
            self.domain,
            self.fungibility_domain,
            Fr::from(self.quantity),
            self.metadata,
            self.contents,
            Fr::from(self.state as u64),
            self.nk_commitment,
            self.controller,
            Fr::from(self.version),
        ]
    }

    pub fn commitment(&self) -> Fr {
        hash(HashDomain::Commitment, &self.to_vec())
    }
}

/// Number of field elements in a register's encoding.
pub const REGISTER_FIELDS: usize = 11;

pub fn fungibility_field(fungibility_domain: &str) -> Fr {
    bytes_to_field("fungibility_domain", fungibility_domain.as_bytes())
}

/// The register's commitment, as the circuit computes it.
pub fn commitment(register: &ResourceRegister) -> Fr {
    RegisterFields::of(register).commitment()
}

/// The nullifier `Poseidon(nk, commitment)` that consuming `register` publishes.
pub fn nullifier(nullifier_key: &[u8; 32], register: &ResourceRegister) -> Fr {
    hash(HashDomain::Nullifier, &[nullifier_key_field(nullifier_key), commitment(register)])
}

/// Checks that a key's opening, Poseidon(nk) as canonical bytes (what
/// `nullifier_key_commitment(nk)` gives), is the register's nullifier-key
/// commitment.
pub fn check_nullifier_key(opened: &[u8; 32], register: &ResourceRegister) -> Result<(), ProveError> {
    if *opened != register.nullifier_key_commitment {
        return Err(ProveError::InvalidWitness {
            what: format!("nullifier key for resource {}", register.id),
            reason: "Poseidon(nk) does not match the register's nullifier_key_commitment (expected \
                     prove::nullifier_key_commitment(nk))"
                .into(),
        });
    }
    Ok(())
}

/// Count-prefixed, length-prefixed key/value pairs in key order.
fn metadata_encoding(metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        for s in [k, v] {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

/// The lifecycle code of `Active`, required of consumed and created resources.
pub fn active_code() -> u8 {
    LifecycleState::Active.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_encoding_is_unambiguous() {
        let a: BTreeMap<String, String> = [("ab".into(), "c".into())].into();
        let b: BTreeMap<String, String> = [("a".into(), "bc".into())].into();
        assert_ne!(metadata_encoding(&a), metadata_encoding(&b));
    }
}
