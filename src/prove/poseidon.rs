//! The in-circuit twin of [`crate::crypto::poseidon::hash`], with the same
//! parameters and domain separation.

use ark_bn254::Fr;
use ark_crypto_primitives::sponge::constraints::CryptographicSpongeVar;
use ark_crypto_primitives::sponge::poseidon::constraints::PoseidonSpongeVar;
use ark_r1cs_std::fields::fp::FpVar;
use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError};

use crate::crypto::poseidon::{capacity_tag, config};
pub use crate::crypto::poseidon::{fingerprint, hash, HashDomain};

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

#[cfg(test)]
mod tests {
    use super::*;
    use ark_r1cs_std::prelude::*;
    use ark_relations::gr1cs::ConstraintSystem;

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
}
