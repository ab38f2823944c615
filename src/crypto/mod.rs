//! Field cryptography shared by the data model and the prover: Poseidon
//! over BN254's scalar field and the field encoding of byte strings. Below
//! `resource/` so a resource can compute its commitments without the prover.

pub mod field;
pub mod poseidon;
