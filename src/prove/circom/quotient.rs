//! The quotient scalars a snarkjs key's H points expect.
//!
//! A zkey's H points are for the odd powers of the 2n-th root of unity g:
//! Hⱼ pairs with the point g·ωʲ of the coset g·⟨ω⟩, where Z(x) = xⁿ − 1 is
//! the constant −2, folded into the points by the setup. So the prover
//! evaluates A and B on the domain from the key's coefficients, sets
//! C = A·B row by row (the key has no C matrix: a witness that does not
//! satisfy the circuit gives a proof that does not verify), interpolates
//! each (inverse FFT), shifts it to the coset (coefficient i times gⁱ),
//! evaluates it there (FFT), and returns A·B − C pointwise.

use ark_bn254::Fr;
use ark_ff::{One, Zero};
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};
use ark_relations::gr1cs::Matrix;
use rayon::prelude::*;

use crate::backend::ResolvedBackend;
use crate::ntt::{Ntt, NttEngine, NttError, NttOp};

use super::zkey::SparseRows;

/// What the quotient needs of a key: an NTT plan for its domain (made
/// once per key) and its A and B rows.
pub struct Shape<'a> {
    pub plan: &'a Ntt,
    pub a: &'a SparseRows,
    pub b: &'a SparseRows,
}

/// The rows a snarkjs key's coefficients hold for a constraint system: A
/// with one more row per public signal (the one included), and B.
pub fn rows(matrices: &[Matrix<Fr>], n_public: usize, domain_size: usize) -> (SparseRows, SparseRows) {
    let constraints = matrices[0].len();
    let entries = |m: usize| {
        matrices[m]
            .iter()
            .enumerate()
            .flat_map(|(row, terms)| terms.iter().map(move |&(v, s)| (row as u32, s as u32, v)))
    };
    let ones = (0..=n_public).map(move |s| ((constraints + s) as u32, s as u32, Fr::one()));
    (SparseRows::from_entries(domain_size, entries(0).chain(ones)), SparseRows::from_entries(domain_size, entries(1)))
}

/// The n scalars for the key's H points, from the full witness `values`,
/// on the CPU (the reference the engines' results are tested against).
pub fn odd_coset_quotient(zkey: Shape<'_>, values: &[Fr]) -> Vec<Fr> {
    let (a, b) = row_values(&zkey, values);
    quotient_of_rows(&NttEngine::cpu(), zkey.plan, a, b).expect("rows of the plan's size").0
}

/// Each row of A and of B evaluated at `values`: the quotient's input,
/// and with an R1CS's C rows, what checks the witness constraint by constraint.
pub fn row_values(zkey: &Shape<'_>, values: &[Fr]) -> (Vec<Fr>, Vec<Fr>) {
    rayon::join(|| evaluate_rows(zkey.a, values), || evaluate_rows(zkey.b, values))
}

/// [`odd_coset_quotient`] from the rows' values ([`row_values`]), its three
/// transforms one batch on `ntt`; with where they ran.
pub fn quotient_of_rows(
    ntt: &NttEngine,
    plan: &Ntt,
    mut a: Vec<Fr>,
    mut b: Vec<Fr>,
) -> Result<(Vec<Fr>, ResolvedBackend), NttError> {
    let shift = Radix2EvaluationDomain::<Fr>::new(2 * plan.len()).expect("within the two-adicity").group_gen;
    let mut c: Vec<Fr> = a.par_iter().zip(&b).map(|(a, b)| *a * b).collect();
    let ran = ntt.apply(plan, NttOp::ToCoset(shift), &mut [&mut a, &mut b, &mut c])?;
    Ok((a.into_par_iter().zip(b).zip(c).map(|((a, b), c)| a * b - c).collect(), ran))
}

/// Each row's value: Σ coefficient · signal.
fn evaluate_rows(rows: &SparseRows, values: &[Fr]) -> Vec<Fr> {
    (0..rows.rows())
        .into_par_iter()
        .map(|i| rows.row(i).iter().fold(Fr::zero(), |sum, (signal, c)| sum + *c * values[*signal as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
    use ark_bn254::Fr;
    use ark_ff::{Field, One};
    use ark_groth16::r1cs_to_qap::{LibsnarkReduction, R1CSToQAP};
    use ark_poly::{EvaluationDomain, GeneralEvaluationDomain, Radix2EvaluationDomain};
    use ark_r1cs_std::alloc::AllocVar;
    use ark_r1cs_std::eq::EqGadget;
    use ark_r1cs_std::fields::fp::FpVar;
    use ark_r1cs_std::fields::FieldVar;
    use ark_relations::gr1cs::{ConstraintSystem, R1CS_PREDICATE_LABEL};

    use super::{odd_coset_quotient, rows, Shape};

    /// Against arkworks' libsnark reduction on the same matrices: for a
    /// satisfying witness, A·B − C = H·Z, and Z is −2 on the odd coset, so
    /// our scalars are −2·H at g·ωʲ with H arkworks' quotient.
    #[test]
    fn the_odd_coset_quotient_is_minus_two_h_at_the_coset_points() {
        let cs = ConstraintSystem::<Fr>::new_ref();
        let x = FpVar::new_witness(cs.clone(), || Ok(Fr::from(3u64))).unwrap();
        let y = FpVar::new_input(cs.clone(), || Ok(Fr::from(3u64 * 3 * 3 + 3 + 5))).unwrap();
        let z = FpVar::new_input(cs.clone(), || Ok(Fr::from(9u64))).unwrap();
        let mut cube = x.clone();
        for _ in 0..5 {
            // Repeated, so the constraints outnumber a power of two's worth of rows.
            cube = &cube * &FpVar::one();
        }
        (&x * &x).enforce_equal(&z).unwrap();
        (&z * &cube + &x + FpVar::constant(Fr::from(5u64))).enforce_equal(&y).unwrap();
        cs.finalize();
        assert!(cs.is_satisfied().unwrap());
        let matrices = cs.to_matrices().unwrap().remove(R1CS_PREDICATE_LABEL).unwrap();
        let num_inputs = cs.num_instance_variables();
        let num_constraints = cs.num_constraints();
        let full = [cs.instance_assignment().unwrap(), cs.witness_assignment().unwrap()].concat();

        let h = LibsnarkReduction::witness_map_from_matrices::<Fr, GeneralEvaluationDomain<Fr>>(
            &matrices,
            num_inputs,
            num_constraints,
            &full,
        )
        .unwrap();
        let n = h.len();
        let (a, b) = rows(&matrices, num_inputs - 1, n);
        let ours = odd_coset_quotient(Shape { plan: &crate::ntt::Ntt::new(n).unwrap(), a: &a, b: &b }, &full);

        let g = Radix2EvaluationDomain::<Fr>::new(2 * n).unwrap().group_gen;
        assert_eq!(g.pow([n as u64]), -Fr::one(), "g is a primitive 2n-th root");
        // ark-poly's own coset FFT, independent of our NTT.
        let expected = Radix2EvaluationDomain::<Fr>::new(n).unwrap().get_coset(g).unwrap().fft(&h);
        let minus_two = -Fr::from(2u64);
        let expected: Vec<Fr> = expected.into_iter().map(|e| e * minus_two).collect();
        assert_eq!(ours, expected);
    }
}
