//! Field cryptography shared by the data model and the prover: Poseidon
//! over BN254's scalar field and the field encoding of byte strings. Below
//! `resource/` so a resource can compute its commitments without the prover.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
pub mod field;
#[cfg(target_arch = "x86_64")]
pub(crate) mod ifma;
pub mod inverse;
pub mod poseidon;
