//! A circom circuit's key made resident for proving, and its proofs.

use std::time::Instant;

use ark_bn254::{Bn254, Fr};
use ark_groth16::{prepare_verifying_key, Groth16, PreparedVerifyingKey, Proof, VerifyingKey};

use super::quotient::{quotient_of_rows, row_values, Shape};
use super::r1cs::KeyCircuit;
use super::zkey::SparseRows;
use super::{CircomError, Witness, Zkey};
use crate::msm::MsmEngine;
use crate::ntt::{Ntt, NttEngine};
use crate::prove::proof_system::{micros, ProveStages};
use crate::prove::prover::{prove_assigned, ProverKey};

/// A zkey prepared for one MSM engine (its G1 bases resident there), with
/// the circuit's R1CS when it is known.
pub struct CircomKey {
    pub n_vars: usize,
    pub n_public: usize,
    pub domain_size: usize,
    pub digest: [u8; 32],
    pub vk: VerifyingKey<Bn254>,
    pvk: PreparedVerifyingKey<Bn254>,
    a: SparseRows,
    b: SparseRows,
    /// The quotient's NTTs over the key's domain, their roots computed
    /// once, and the engine they run on (the MSM engine's backend).
    plan: Ntt,
    ntt: NttEngine,
    prover: ProverKey,
    circuit: Option<KeyCircuit>,
}

impl CircomKey {
    /// Upload `zkey`'s bases to `engine`; with the key's circuit, each
    /// witness is checked constraint by constraint.
    pub fn prepare(engine: &MsmEngine, zkey: Zkey, circuit: Option<KeyCircuit>) -> Result<CircomKey, CircomError> {
        let plan = Ntt::new(zkey.domain_size)?;
        let vk = zkey.key.vk.clone();
        let prover = ProverKey::prepare(engine, zkey.key)?;
        let pvk = prepare_verifying_key(&vk);
        Ok(CircomKey {
            n_vars: zkey.n_vars,
            n_public: zkey.n_public,
            domain_size: zkey.domain_size,
            digest: zkey.digest,
            vk,
            pvk,
            a: zkey.a,
            b: zkey.b,
            plan,
            ntt: NttEngine::beside(engine.backend()),
            prover,
            circuit,
        })
    }

    pub fn has_r1cs(&self) -> bool {
        self.circuit.is_some()
    }

    /// One proof of `witness`, with its public signals; checked against the
    /// verification key before it is returned.
    pub fn prove(
        &self,
        engine: &MsmEngine,
        witness: &Witness,
        timings: &mut ProveStages,
    ) -> Result<(Proof<Bn254>, Vec<Fr>), CircomError> {
        let values = &witness.values;
        if values.len() != self.n_vars {
            return Err(CircomError::WitnessLength { expected: self.n_vars, got: values.len() });
        }
        let start = Instant::now();
        let (a, b) = row_values(&self.shape(), values);
        timings.qap_us += micros(start.elapsed());
        let start = Instant::now();
        if let Some(circuit) = &self.circuit {
            if let Some(index) = circuit.first_unsatisfied_given(&a, &b, values) {
                return Err(CircomError::Unsatisfied { index, total: circuit.n_constraints });
            }
        }
        timings.witness_us += micros(start.elapsed());

        let start = Instant::now();
        let fallbacks = self.ntt.gpu_fallbacks();
        let (h, ran) = quotient_of_rows(&self.ntt, &self.plan, a, b)?;
        timings.record_quotient(ran, self.ntt.gpu_fallbacks() - fallbacks);
        timings.qap_us += micros(start.elapsed());

        let proof = prove_assigned(engine, &self.prover, values, self.n_public + 1, &h, timings)?;
        let public = witness.public(self.n_public).to_vec();
        // The key's own verification key (its IC fixes the public count).
        match Groth16::<Bn254>::verify_proof(&self.pvk, &proof, &public) {
            Ok(true) => Ok((proof, public)),
            _ if self.circuit.is_some() => Err(CircomError::KeyInconsistent),
            _ => Err(CircomError::ProofRejected),
        }
    }

    fn shape(&self) -> Shape<'_> {
        Shape { plan: &self.plan, a: &self.a, b: &self.b }
    }
}
