//! A single-party Groth16 setup for a circom circuit, written as a snarkjs
//! `.zkey` that snarkjs and `cvm` both prove with. Whoever runs it knows
//! the toxic waste (τ, α, β, δ) and could forge proofs: it is for tests,
//! benches and development, where a ceremony's powers of tau would take
//! longer to prepare than the work to measure (snarkjs's `prepare phase2`
//! alone takes about 25 minutes at 2^16 on a 2-core machine).
//!
//! The key is the one snarkjs's `groth16 setup` makes from a ptau, with γ
//! = 1 (as snarkjs has it): per signal s, uₛ, vₛ, wₛ are the A, B and C
//! matrices' columns at τ in the Lagrange basis of the n-domain (A with one
//! extra row per public signal); A = uₛ·G₁, B₁ = vₛ·G₁, B₂ = vₛ·G₂, IC and
//! C = (β·uₛ + α·vₛ + wₛ) (over δ for C); Hⱼ = L'ⱼ(τ)·Z(τ)/(−2δ)·G₁ with
//! L'ⱼ the Lagrange basis of the odd coset g·⟨ω⟩ and Z(τ) = τⁿ − 1 (so that
//! Σ hⱼ·Hⱼ = h(τ)·Z(τ)/δ for the prover's hⱼ = −2·h(g·ωʲ); see
//! [`super::quotient`]).

use ark_bn254::{Fq, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::scalar_mul::BatchMulPreprocessing;
use ark_ec::{AffineRepr, CurveGroup, PrimeGroup};
use ark_ff::{BigInteger, Field, One, PrimeField, UniformRand, Zero};
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};
use rand::RngCore;

use super::{quotient, CircomError, R1cs};

/// The setup's secrets, drawn from `rng`; exposed for tests.
pub struct Toxic {
    pub tau: Fr,
    pub alpha: Fr,
    pub beta: Fr,
    pub delta: Fr,
}

impl Toxic {
    pub fn random(rng: &mut impl RngCore) -> Toxic {
        let mut nonzero = || loop {
            let x = Fr::rand(rng);
            if !x.is_zero() {
                return x;
            }
        };
        Toxic { tau: nonzero(), alpha: nonzero(), beta: nonzero(), delta: nonzero() }
    }
}

/// The `.zkey` bytes of a setup of `r1cs` with `toxic`.
pub fn zkey(r1cs: &R1cs, toxic: &Toxic) -> Result<Vec<u8>, CircomError> {
    let (n_vars, n_public, constraints) = (r1cs.n_wires, r1cs.n_public, r1cs.n_constraints);
    let rows = constraints + n_public + 1;
    let domain_size = rows.next_power_of_two().max(2);
    let too_large = || CircomError::Malformed {
        file: "the circuit".into(),
        section: "constraints".into(),
        offset: 0,
        reason: format!("{rows} rows need a domain beyond 2^27"),
    };
    if domain_size > 1 << 27 {
        return Err(too_large());
    }
    let domain = Radix2EvaluationDomain::<Fr>::new(domain_size).ok_or_else(too_large)?;
    let Toxic { tau, alpha, beta, delta } = *toxic;
    let lagrange = domain.evaluate_all_lagrange_coefficients(tau);

    let (mut u, mut v, mut w) = (vec![Fr::zero(); n_vars], vec![Fr::zero(); n_vars], vec![Fr::zero(); n_vars]);
    let [a, b, c] = &r1cs.matrices;
    for (row, l) in lagrange.iter().enumerate().take(constraints) {
        for (column, matrix) in [(&mut u, a), (&mut v, b), (&mut w, c)] {
            for &(coefficient, signal) in &matrix[row] {
                column[signal] += coefficient * l;
            }
        }
    }
    for (signal, column) in u.iter_mut().enumerate().take(n_public + 1) {
        *column += lagrange[constraints + signal];
    }

    let delta_inverse = delta.inverse().expect("nonzero");
    let mixed = |s: usize| beta * u[s] + alpha * v[s] + w[s];
    let ic: Vec<Fr> = (0..=n_public).map(mixed).collect();
    let private: Vec<Fr> = (n_public + 1..n_vars).map(|s| mixed(s) * delta_inverse).collect();
    let shift = Radix2EvaluationDomain::<Fr>::new(2 * domain_size).ok_or_else(too_large)?.group_gen;
    let coset = domain.get_coset(shift).ok_or_else(too_large)?;
    let factor = (tau.pow([domain_size as u64]) - Fr::one()) * (-(delta + delta)).inverse().expect("nonzero");
    let h: Vec<Fr> = coset.evaluate_all_lagrange_coefficients(tau).into_iter().map(|l| l * factor).collect();

    let g1 = |scalars: &[Fr]| -> Vec<G1Affine> {
        BatchMulPreprocessing::new(G1Projective::generator(), scalars.len().max(1)).batch_mul(scalars)
    };
    let g2 = |scalars: &[Fr]| -> Vec<G2Affine> {
        BatchMulPreprocessing::new(G2Projective::generator(), scalars.len().max(1)).batch_mul(scalars)
    };
    let one_g1 = |x: Fr| (G1Affine::generator() * x).into_affine();
    let one_g2 = |x: Fr| (G2Affine::generator() * x).into_affine();

    let mut out = Writer::new();
    out.section(1, |s| s.u32(1));
    out.section(2, |s| {
        s.prime(Fq::MODULUS.to_bytes_le());
        s.prime(Fr::MODULUS.to_bytes_le());
        s.u32(n_vars as u32);
        s.u32(n_public as u32);
        s.u32(domain_size as u32);
        s.g1(&one_g1(alpha));
        s.g1(&one_g1(beta));
        s.g2(&one_g2(beta));
        s.g2(&G2Affine::generator());
        s.g1(&one_g1(delta));
        s.g2(&one_g2(delta));
    });
    out.section(3, |s| g1(&ic).iter().for_each(|p| s.g1(p)));
    out.section(4, |s| coefficients(s, r1cs, domain_size));
    out.section(5, |s| g1(&u).iter().for_each(|p| s.g1(p)));
    out.section(6, |s| g1(&v).iter().for_each(|p| s.g1(p)));
    out.section(7, |s| g2(&v).iter().for_each(|p| s.g2(p)));
    out.section(8, |s| g1(&private).iter().for_each(|p| s.g1(p)));
    out.section(9, |s| g1(&h).iter().for_each(|p| s.g1(p)));
    // No contributions: a 64-byte circuit hash left zero, then a count of 0.
    out.section(10, |s| {
        s.bytes(&[0u8; 64]);
        s.u32(0);
    });
    Ok(out.finish())
}

/// Section 4: the A rows (with one per public signal) and the B rows, as
/// the prover reads them ([`quotient::rows`]), values as v·R² mod r.
fn coefficients(s: &mut Writer, r1cs: &R1cs, domain_size: usize) {
    let r = Fr::from(2u64).pow([256u64]);
    let r_squared = r * r;
    let (a, b) = quotient::rows(&r1cs.matrices, r1cs.n_public, domain_size);
    s.u32((a.entries.len() + b.entries.len()) as u32);
    for (matrix, rows) in [(0, &a), (1, &b)] {
        for row in 0..rows.rows() {
            for &(signal, value) in rows.row(row) {
                s.u32(matrix);
                s.u32(row as u32);
                s.u32(signal);
                s.bytes(&(value * r_squared).into_bigint().to_bytes_le());
            }
        }
    }
}

/// An iden3 container being written.
struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    fn new() -> Writer {
        let mut bytes = b"zkey".to_vec();
        bytes.extend(1u32.to_le_bytes());
        bytes.extend(10u32.to_le_bytes());
        Writer { bytes }
    }

    fn section(&mut self, kind: u32, body: impl FnOnce(&mut Writer)) {
        self.u32(kind);
        let length_at = self.bytes.len();
        self.bytes.extend(0u64.to_le_bytes());
        body(self);
        let length = (self.bytes.len() - length_at - 8) as u64;
        self.bytes[length_at..length_at + 8].copy_from_slice(&length.to_le_bytes());
    }

    fn u32(&mut self, x: u32) {
        self.bytes.extend(x.to_le_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
    }

    fn prime(&mut self, le: Vec<u8>) {
        self.u32(le.len() as u32);
        self.bytes(&le);
    }

    /// A base-field element in Montgomery form.
    fn fq(&mut self, x: &Fq) {
        self.bytes(&x.0.to_bytes_le());
    }

    fn g1(&mut self, p: &G1Affine) {
        match p.xy() {
            Some((x, y)) => {
                self.fq(&x);
                self.fq(&y);
            }
            None => self.bytes(&[0u8; 64]),
        }
    }

    fn g2(&mut self, p: &G2Affine) {
        match p.xy() {
            Some((x, y)) => {
                for c in [x.c0, x.c1, y.c0, y.c1] {
                    self.fq(&c);
                }
            }
            None => self.bytes(&[0u8; 128]),
        }
    }

    fn finish(self) -> Vec<u8> {
        self.bytes
    }
}
