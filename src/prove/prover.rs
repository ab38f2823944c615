//! Our Groth16 prover. [`prove_assigned`] is the core every circuit shares
//! (the compliance circuit here, circom's in [`super::circom`]): the A, B,
//! C and H multi-scalar multiplications on the MSM engine, the G2 MSM on
//! the CPU concurrently with the G1 ones. [`prove`] is the compliance
//! circuit's: witness on the CPU, the QAP's quotient (ark-groth16's
//! libsnark reduction) on the NTT engine, then the core.
//!
//! The proof is Groth16's, with fresh r and s:
//! A = α + Σ aᵢ·A_i + r·δ,  B = β + Σ aᵢ·B_i + s·δ (in G2, and in G1 for C),
//! C = s·A + r·B₁ − r·s·δ + Σ_{witness} aᵢ·L_i + Σ hᵢ·H_i.

use std::time::Instant;

use ark_bn254::{Bn254, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::{FftField, Field, One, UniformRand, Zero};
use ark_groth16::{Proof, ProvingKey};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem, Matrix, OptimizationGoal, SynthesisMode};
use rand::SeedableRng;
use rayon::prelude::*;

use super::circuit::ComplianceCircuit;
use super::keys::CircuitShape;
use super::ProveError;
use std::sync::Arc;

use super::proof_system::{micros, ProveStages};
use crate::backend::ResolvedBackend;
use crate::msm::{MsmEngine, MsmError, ResidentG1, ResidentG2};
use crate::ntt::{Ntt, NttEngine, NttOp};

/// A query whose first base (the constant-one variable) is added directly and
/// whose other bases are kept only where non-zero, with their variable indices.
struct SparseG1 {
    first: G1Affine,
    indices: Vec<usize>,
    bases: ResidentG1,
}

/// As [`SparseG1`], prepared once for the CPU's G2 MSMs (the GLV images
/// computed at load, not per proof) and uploaded to a device on its first
/// MSM there; shared by the engines of one key.
struct SparseG2 {
    first: G2Affine,
    indices: Vec<usize>,
    bases: Arc<ResidentG2>,
}

/// The first base, and the others that are non-zero with their indices
/// (counted from the second), compacted in `query`'s own memory: a key's
/// queries run to tens of megabytes, not worth a second copy.
fn split_nonzero<A: AffineRepr>(mut query: Vec<A>) -> (A, Vec<usize>, Vec<A>) {
    let first = query.first().copied().unwrap_or_else(A::zero);
    let mut indices = Vec::with_capacity(query.len().saturating_sub(1));
    let mut kept = 0;
    for i in 1..query.len() {
        if !query[i].is_zero() {
            indices.push(i - 1);
            query[kept] = query[i];
            kept += 1;
        }
    }
    query.truncate(kept);
    (first, indices, query)
}

/// The bases of the terms π_C sums, as one resident set: B₁'s non-zero
/// ones, then C's (`l_query`), then H's. Of B₁ the proof needs only r·B₁ in
/// π_C, so its scalars are scaled by r and the three sums are one MSM:
/// bucket methods cost less a point the more points they share (G1 here:
/// 114 ms for 2^17 points against twice 68 ms for 2^16).
struct CTerms {
    b1_first: G1Affine,
    b1_indices: Vec<usize>,
    l_len: usize,
    h_len: usize,
    bases: ResidentG1,
}

impl CTerms {
    fn new(engine: &MsmEngine, b1_query: Vec<G1Affine>, l: &[G1Affine], h: &[G1Affine]) -> Result<Self, ProveError> {
        let (b1_first, b1_indices, b1) = split_nonzero(b1_query);
        // Copied in parallel (an indexed collect): 12 MB at 2^16, all fresh pages.
        let bases: Vec<G1Affine> = b1.par_iter().chain(l).chain(h).copied().collect();
        Ok(CTerms { b1_first, b1_indices, l_len: l.len(), h_len: h.len(), bases: engine.adopt_g1(bases)? })
    }

    /// The scalars of the set: r·b for B₁'s, `aux` for C's (no more than
    /// its bases; fewer padded with zeros), `h` for H's (cut to its bases).
    fn scalars(&self, assignment: &[Fr], r: Fr, aux: &[Fr], h: &[Fr]) -> Result<Vec<Fr>, MsmError> {
        if aux.len() > self.l_len {
            return Err(MsmError::LengthMismatch { bases: self.l_len, scalars: aux.len() });
        }
        let h = &h[..self.h_len.min(h.len())];
        let mut scalars = Vec::with_capacity(self.b1_indices.len() + self.l_len + h.len());
        self.b1_indices.par_iter().map(|&i| assignment[i] * r).collect_into_vec(&mut scalars);
        scalars.extend_from_slice(aux);
        scalars.resize(self.b1_indices.len() + self.l_len, Fr::zero());
        scalars.extend_from_slice(h);
        Ok(scalars)
    }
}

/// The proving key's query bases prepared for one MSM engine (G1 resident).
pub struct ProverKey {
    pub alpha_g1: G1Affine,
    pub beta_g1: G1Affine,
    pub delta_g1: G1Affine,
    pub beta_g2: G2Affine,
    pub delta_g2: G2Affine,
    a: SparseG1,
    b_g2: SparseG2,
    c_terms: CTerms,
}

impl ProverKey {
    /// Takes the query vectors out of `pk` (checked when the key was made
    /// or loaded: not again here) and makes the G1 ones resident on `engine`.
    pub fn prepare(engine: &MsmEngine, pk: ProvingKey<Bn254>) -> Result<Self, ProveError> {
        let sparse = |query: Vec<G1Affine>| -> Result<SparseG1, ProveError> {
            let (first, indices, bases) = split_nonzero(query);
            Ok(SparseG1 { first, indices, bases: engine.adopt_g1(bases)? })
        };
        let (b_g2_query, a_query, b_g1_query) = (pk.b_g2_query, pk.a_query, pk.b_g1_query);
        // G2's images beside G1's copies: each has serial stretches.
        let (g1, b_g2) = rayon::join(
            || -> Result<_, ProveError> {
                Ok((sparse(a_query)?, CTerms::new(engine, b_g1_query, &pk.l_query, &pk.h_query)?))
            },
            || {
                let (first, indices, bases) = split_nonzero(b_g2_query);
                SparseG2 { first, indices, bases: Arc::new(engine.adopt_g2(bases)) }
            },
        );
        let (a, c_terms) = g1?;
        Ok(ProverKey {
            alpha_g1: pk.vk.alpha_g1,
            beta_g1: pk.beta_g1,
            delta_g1: pk.delta_g1,
            beta_g2: pk.vk.beta_g2,
            delta_g2: pk.vk.delta_g2,
            a,
            b_g2,
            c_terms,
        })
    }

    /// The same bases uploaded to another engine (the CPU retry path).
    pub fn reupload(&self, engine: &MsmEngine) -> Result<Self, ProveError> {
        let copy = |s: &SparseG1| -> Result<SparseG1, ProveError> {
            Ok(SparseG1 {
                first: s.first,
                indices: s.indices.clone(),
                bases: engine.adopt_g1(s.bases.bases().to_vec())?,
            })
        };
        Ok(ProverKey {
            alpha_g1: self.alpha_g1,
            beta_g1: self.beta_g1,
            delta_g1: self.delta_g1,
            beta_g2: self.beta_g2,
            delta_g2: self.delta_g2,
            a: copy(&self.a)?,
            b_g2: SparseG2 {
                first: self.b_g2.first,
                indices: self.b_g2.indices.clone(),
                bases: Arc::clone(&self.b_g2.bases),
            },
            c_terms: CTerms {
                b1_first: self.c_terms.b1_first,
                b1_indices: self.c_terms.b1_indices.clone(),
                l_len: self.c_terms.l_len,
                h_len: self.c_terms.h_len,
                bases: engine.adopt_g1(self.c_terms.bases.bases().to_vec())?,
            },
        })
    }
}

/// The instance (without the leading one) and witness of `circuit`, checked
/// against every constraint of `shape`.
pub fn synthesize_witness(shape: &CircuitShape, circuit: ComplianceCircuit) -> Result<Vec<Fr>, ProveError> {
    let cs = ConstraintSystem::<Fr>::new_ref();
    cs.set_optimization_goal(OptimizationGoal::Constraints);
    // The matrices are the shape's; only the assignment is needed here.
    cs.set_mode(SynthesisMode::Prove { construct_matrices: false, generate_lc_assignments: false });
    circuit.generate_constraints(cs.clone())?;
    cs.finalize();
    let instance = cs.instance_assignment()?;
    let witness = cs.witness_assignment()?;
    if instance.len() != shape.num_instance_variables || witness.len() != shape.num_witness_variables {
        return Err(ProveError::Synthesis(format!(
            "witness has {} instance and {} witness variables, the circuit {} and {}",
            instance.len(),
            witness.len(),
            shape.num_instance_variables,
            shape.num_witness_variables
        )));
    }
    let full = [instance, witness].concat();
    check_satisfied(shape, &full)?;
    Ok(full)
}

/// `(A·z)(B·z) = C·z` for every row; the first failing row is reported.
pub fn check_satisfied(shape: &CircuitShape, full: &[Fr]) -> Result<(), ProveError> {
    let eval = |row: &[(Fr, usize)]| row.iter().map(|(c, i)| *c * full[*i]).sum::<Fr>();
    let [a, b, c] = &shape.matrices[..] else {
        return Err(ProveError::Synthesis("the circuit does not have exactly three R1CS matrices".into()));
    };
    let bad = (0..shape.num_constraints).into_par_iter().find_first(|&i| eval(&a[i]) * eval(&b[i]) != eval(&c[i]));
    match bad {
        Some(index) => Err(ProveError::Unsatisfied { index, total: shape.num_constraints }),
        None => Ok(()),
    }
}

/// Computes the quotient scalars for a key's H points from a full assignment.
pub type QuotientOf<'a> = dyn Fn(&[Fr]) -> Result<(Vec<Fr>, ResolvedBackend), ProveError> + 'a;

/// The quotient's coefficients for arkworks' keys: its libsnark reduction
/// (A, B and C evaluated on the domain, each moved to the coset
/// g·⟨ω⟩ for g Fr's multiplicative generator, (A·B − C)/Z there, and
/// interpolated back from the coset), its transforms on `ntt` (the three
/// forward ones as one batch); with where they ran. Equal to ark-groth16's
/// `LibsnarkReduction::witness_map_from_matrices` (tested).
pub fn libsnark_quotient(
    ntt: &NttEngine,
    plan: &Ntt,
    shape: &CircuitShape,
    full: &[Fr],
) -> Result<(Vec<Fr>, ResolvedBackend), ProveError> {
    let (n, constraints, inputs) = (plan.len(), shape.num_constraints, shape.num_instance_variables);
    if constraints + inputs > n || full.len() < inputs {
        return Err(ProveError::Synthesis(format!(
            "{constraints} constraints and {inputs} inputs on a domain of {n} with {} values",
            full.len()
        )));
    }
    let evaluate = |matrix: &Matrix<Fr>| {
        let mut rows = vec![Fr::zero(); n];
        rows[..constraints].par_iter_mut().zip(matrix).for_each(|(row, terms)| {
            *row = terms.iter().map(|&(coefficient, index)| coefficient * full[index]).sum();
        });
        rows
    };
    let (mut a, mut b, mut c) =
        (evaluate(&shape.matrices[0]), evaluate(&shape.matrices[1]), evaluate(&shape.matrices[2]));
    a[constraints..constraints + inputs].copy_from_slice(&full[..inputs]);
    let g = Fr::GENERATOR;
    let forward = ntt.apply(plan, NttOp::ToCoset(g), &mut [&mut a, &mut b, &mut c])?;
    let z_inverse = (g.pow([n as u64]) - Fr::one()).inverse().expect("g is not an n-th root of unity");
    let mut h: Vec<Fr> = a.par_iter().zip(&b).zip(&c).map(|((a, b), c)| (*a * b - c) * z_inverse).collect();
    let back = ntt.apply(plan, NttOp::CosetInverse(g), &mut [&mut h])?;
    let ran = match (forward, back) {
        (ResolvedBackend::Gpu, ResolvedBackend::Gpu) => ResolvedBackend::Gpu,
        _ => ResolvedBackend::Cpu,
    };
    Ok((h, ran))
}

/// One Groth16 proof of `circuit` on `engine`, with the quotient scalars
/// `quotient` computes from the full assignment (the key's setup decides
/// which: [`libsnark_quotient`] for arkworks' keys); returns it with its
/// public inputs.
pub fn prove(
    engine: &MsmEngine,
    key: &ProverKey,
    shape: &CircuitShape,
    circuit: ComplianceCircuit,
    quotient: &QuotientOf<'_>,
    timings: &mut ProveStages,
) -> Result<(Proof<Bn254>, Vec<Fr>), ProveError> {
    let start = Instant::now();
    let full = synthesize_witness(shape, circuit)?;
    timings.witness_us += micros(start.elapsed());

    let start = Instant::now();
    let (h, ran) = quotient(&full)?;
    timings.record_quotient(ran, 0);
    timings.qap_us += micros(start.elapsed());
    let proof = prove_assigned(engine, key, &full, shape.num_instance_variables, &h, timings)?;
    Ok((proof, full[1..shape.num_instance_variables].to_vec()))
}

/// The Groth16 core every prover shares: one proof from the full
/// assignment `full` (the constant one, the `num_instance − 1` public
/// inputs, then the witness) and the quotient scalars `h` for the key's H
/// bases (however the key's setup defined them), with fresh r and s.
pub fn prove_assigned(
    engine: &MsmEngine,
    key: &ProverKey,
    full: &[Fr],
    num_instance: usize,
    h: &[Fr],
    timings: &mut ProveStages,
) -> Result<Proof<Bn254>, ProveError> {
    let mut rng = rand_chacha::ChaCha20Rng::from_rng(rand::rngs::OsRng)
        .map_err(|e| ProveError::Synthesis(format!("seeding the prover RNG from the OS: {e}")))?;
    let blinding = (Fr::rand(&mut rng), Fr::rand(&mut rng));
    prove_assigned_blinded(engine, key, full, num_instance, h, blinding, timings)
}

/// [`prove_assigned`] with the blinding (r, s) given: for differential
/// tests, which recompute the proof with arkworks' MSMs. A proof must
/// never reuse a blinding.
pub fn prove_assigned_blinded(
    engine: &MsmEngine,
    key: &ProverKey,
    full: &[Fr],
    num_instance: usize,
    h: &[Fr],
    (r, s): (Fr, Fr),
    timings: &mut ProveStages,
) -> Result<Proof<Bn254>, ProveError> {
    let assignment = &full[1..];
    let aux = &full[num_instance..];
    let gather = |indices: &[usize]| indices.par_iter().map(|&i| assignment[i]).collect::<Vec<Fr>>();

    let (g1, g2) = rayon::join(
        || -> Result<_, ProveError> {
            let start = Instant::now();
            let a = engine.msm_g1_resident_placed(&key.a.bases, &gather(&key.a.indices))?;
            let c_terms = key.c_terms.scalars(assignment, r, aux, h)?;
            let c = engine.msm_g1_resident_placed(&key.c_terms.bases, &c_terms)?;
            Ok((a, c, start.elapsed()))
        },
        || -> Result<_, ProveError> {
            let start = Instant::now();
            let b = engine.msm_g2_resident_placed(&key.b_g2.bases, &gather(&key.b_g2.indices))?;
            Ok((b, start.elapsed()))
        },
    );
    let ((a_acc, a_at), (c_acc, c_at), g1_time) = g1?;
    let ((b2_acc, b2_at), g2_time) = g2?;
    // Counted by term (A, B₁, C, H), as the stages report them; the last
    // three ran as one MSM, in one place.
    timings.record_msm(false, a_at, 1);
    timings.record_msm(false, c_at, 3);
    timings.record_msm(true, b2_at, 1);
    timings.msm_g1_us += micros(g1_time);
    timings.msm_g2_us += micros(g2_time);

    let start = Instant::now();
    let proof = assemble(key, r, s, a_acc, b2_acc, c_acc);
    timings.assemble_us += micros(start.elapsed());
    Ok(proof)
}

/// The proof from the MSMs' sums: `c_acc` is r·ΣbᵢB₁ᵢ + Σ auxⱼCⱼ + ΣhₖHₖ.
/// π_C = s·π_A + r·π_B₁ − rs·δ₁ + C + H, with π_B₁ = B₁ + β₁ + s·δ₁: its
/// s·δ₁ cancels against −rs·δ₁, leaving s·π_A + r·(B₁'s first + β₁) + c_acc.
fn assemble(
    key: &ProverKey,
    r: Fr,
    s: Fr,
    a_acc: G1Projective,
    b2_acc: G2Projective,
    c_acc: G1Projective,
) -> Proof<Bn254> {
    let delta_g1 = key.delta_g1.into_group();
    let a = a_acc + key.a.first + key.alpha_g1 + delta_g1 * r;
    let b2 = b2_acc + key.b_g2.first + key.beta_g2 + key.delta_g2.into_group() * s;
    let c = a * s + (key.c_terms.b1_first.into_group() + key.beta_g1) * r + c_acc;
    let affine = G1Projective::normalize_batch(&[a, c]);
    Proof { a: affine[0], b: b2.into_affine(), c: affine[1] }
}

#[cfg(test)]
mod tests {
    use ark_bn254::Fr;
    use ark_ff::UniformRand;
    use ark_groth16::r1cs_to_qap::{LibsnarkReduction, R1CSToQAP};
    use ark_poly::GeneralEvaluationDomain;
    use rand::SeedableRng;

    use super::libsnark_quotient;
    use crate::backend::ResolvedBackend;
    use crate::ntt::{Ntt, NttEngine};
    use crate::prove::keys::CircuitShape;

    /// Our libsnark quotient against ark-groth16's on the compliance
    /// circuit's matrices, for an arbitrary assignment (the map is defined
    /// for any), on the CPU engine and on the GPU one where there is one.
    #[test]
    fn the_libsnark_quotient_equals_ark_groth16s() {
        let shape = CircuitShape::of(1).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(21);
        let full: Vec<Fr> = (0..shape.num_instance_variables + shape.num_witness_variables)
            .map(|i| if i == 0 { Fr::from(1u64) } else { Fr::rand(&mut rng) })
            .collect();
        let theirs = LibsnarkReduction::witness_map_from_matrices::<Fr, GeneralEvaluationDomain<Fr>>(
            &shape.matrices,
            shape.num_instance_variables,
            shape.num_constraints,
            &full,
        )
        .unwrap();
        let plan = Ntt::new(shape.domain_size().unwrap()).unwrap();
        let mut engines = vec![(NttEngine::cpu(), ResolvedBackend::Cpu)];
        if crate::gpu::test_context().is_some() {
            engines.push((NttEngine::new(crate::Backend::Gpu).unwrap(), ResolvedBackend::Gpu));
        }
        for (engine, backend) in engines {
            let (ours, ran) = libsnark_quotient(&engine, &plan, &shape, &full).unwrap();
            assert_eq!(ran, backend);
            assert_eq!(ours, theirs, "{backend:?}");
        }
        let small = Ntt::new(plan.len() / 2).unwrap();
        assert!(libsnark_quotient(&NttEngine::cpu(), &small, &shape, &full).is_err(), "a domain too small");
    }
}
