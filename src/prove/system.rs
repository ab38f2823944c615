//! [`ProvingSystem`]: keys for one K, a prepared prover on an MSM engine,
//! and the batch API the executor calls.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use ark_bn254::{Bn254, Fr};
use ark_groth16::{prepare_verifying_key, Groth16, PreparedVerifyingKey, Proof, ProvingKey, VerifyingKey};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};

use super::circom::quotient;
use super::circom::zkey::SparseRows;
use super::circuit::ComplianceCircuit;
use super::keys::{self, CircuitShape};
pub use super::points::{check_point, CheckedPoint};
use super::proof_system::{micros, ProveStages};
use super::prover::{self, ProverKey};
use super::witness::{OpWitness, SlotAssignment, PUBLIC_PER_SLOT};
use super::ProveError;
use crate::backend::{Backend, ResolvedBackend};
use crate::msm::MsmEngine;
use crate::ntt::{Ntt, NttEngine};

/// One Groth16 proof covering up to K operations of a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchProof {
    pub proof: Proof<Bn254>,
    /// `PUBLIC_PER_SLOT` per slot: kind, input nullifiers (or Update's prior
    /// commitment), output commitments.
    pub public_inputs: Vec<Fr>,
    /// Operations proven (the remaining slots are padding).
    pub ops: usize,
}

impl BatchProof {
    /// ark-serialize compressed: proof, public inputs, op count.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = self.proof.serialize_compressed(&mut out);
        let _ = self.public_inputs.serialize_compressed(&mut out);
        let _ = (self.ops as u64).serialize_compressed(&mut out);
        out
    }

    /// Decodes and validates (points on the curve and in the subgroup,
    /// canonical field elements, consistent counts, no trailing bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProveError> {
        let bad = |reason: String| ProveError::Malformed { what: "batch proof bytes".into(), reason };
        let mut reader = bytes;
        let proof = Proof::<Bn254>::deserialize_compressed(&mut reader).map_err(|e| bad(format!("proof: {e}")))?;
        let public_inputs =
            Vec::<Fr>::deserialize_compressed(&mut reader).map_err(|e| bad(format!("public inputs: {e}")))?;
        let ops = u64::deserialize_compressed(&mut reader).map_err(|e| bad(format!("op count: {e}")))? as usize;
        if !reader.is_empty() {
            return Err(bad(format!("{} trailing bytes", reader.len())));
        }
        if public_inputs.is_empty() || public_inputs.len() % PUBLIC_PER_SLOT != 0 {
            return Err(bad(format!("{} public inputs is not a whole number of slots", public_inputs.len())));
        }
        if ops > public_inputs.len() / PUBLIC_PER_SLOT {
            return Err(bad(format!("{ops} operations in {} slots", public_inputs.len() / PUBLIC_PER_SLOT)));
        }
        Ok(BatchProof { proof, public_inputs, ops })
    }

    pub fn slots(&self) -> usize {
        self.public_inputs.len() / PUBLIC_PER_SLOT
    }
}

/// How a key set's H points define the quotient.
enum Quotient {
    /// arkworks' setup: its libsnark reduction over the plan's domain.
    Libsnark { plan: Ntt },
    /// A snarkjs key (a ceremony's): the odd-coset quotient over the
    /// circuit's A and B rows.
    OddCoset { plan: Ntt, a: SparseRows, b: SparseRows },
}

pub struct ProvingSystem {
    shape: CircuitShape,
    quotient: Quotient,
    vk: VerifyingKey<Bn254>,
    pvk: PreparedVerifyingKey<Bn254>,
    engine: MsmEngine,
    /// The quotient's transforms, beside the MSMs (on their backend).
    ntt: NttEngine,
    key: ProverKey,
    /// The CPU copy of the prover key, made on the first retry after a GPU failure.
    cpu_fallback: OnceLock<Result<(MsmEngine, ProverKey), String>>,
    last_timings: Mutex<ProveStages>,
    /// Told (proofs done, proofs in the batch) after each proof.
    progress: Mutex<Option<Progress>>,
    /// Fault injection for tests of the CPU retry path: proof attempts left to fail.
    fail_next: AtomicU32,
}

/// A progress callback: (proofs done, proofs in the batch).
pub type Progress = std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>;

impl ProvingSystem {
    /// Loads the keys for `ops_per_proof` from `<data_dir>/keys/`, or runs the
    /// setup and saves them when there are none (telling `notice` first).
    /// Keys made for a different circuit are refused, never overwritten.
    pub fn load_or_setup(
        data_dir: &Path,
        ops_per_proof: usize,
        backend: Backend,
        notice: impl Fn(&str),
    ) -> Result<Self, ProveError> {
        let dir = keys::key_dir(data_dir, ops_per_proof);
        let started = Instant::now();
        let cached = keys::cached_shape(&dir, ops_per_proof);
        let shape_was_cached = cached.is_some();
        let shape = match cached {
            Some(shape) => shape,
            None => CircuitShape::of(ops_per_proof)?,
        };
        if !keys::exists(&dir) {
            // Under the key set's lock: another process may be making it now.
            let _lock = keys::lock(&dir)?;
            if !keys::exists(&dir) {
                notice(&format!(
                    "no proving keys for {ops_per_proof} ops per proof in {}: running a local circuit-specific \
                     setup ({} constraints; a single-party setup, not a multi-party ceremony)",
                    dir.display(),
                    shape.num_constraints
                ));
                let pk = keys::setup(&shape)?;
                keys::save(&dir, &shape, &pk)?;
                return Self::from_key(shape, pk, MsmEngine::new(backend)?);
            }
        }
        let shape_ms = started.elapsed().as_millis() as u64;
        let (pk, loaded) = keys::load(&dir, &shape, keys::Validation::Digest)?;
        let odd_coset = loaded.odd_coset;
        let load_ms = started.elapsed().as_millis() as u64 - shape_ms;
        if loaded.upgraded {
            notice(&format!("rewrote the keys in {} in the fast-loading form (checked by digest)", dir.display()));
        } else if !shape_was_cached {
            // A read-only data dir only costs the next load the synthesis.
            if let Err(err) = keys::save_shape(&dir, &shape) {
                tracing::debug!(dir = %dir.display(), %err, "could not cache the circuit's shape");
            }
        }
        let system = match odd_coset {
            true => Self::from_snarkjs_key(shape, pk, MsmEngine::new(backend)?)?,
            false => Self::from_key(shape, pk, MsmEngine::new(backend)?)?,
        };
        tracing::debug!(
            dir = %dir.display(),
            shape_ms,
            load_ms,
            total_ms = started.elapsed().as_millis() as u64,
            validated = loaded.validated,
            "proving keys loaded"
        );
        Ok(system)
    }

    /// A system with a fresh in-memory setup (tests, benches).
    pub fn setup_in_memory(ops_per_proof: usize, engine: MsmEngine) -> Result<Self, ProveError> {
        let shape = CircuitShape::of(ops_per_proof)?;
        let pk = keys::setup(&shape)?;
        Self::from_key(shape, pk, engine)
    }

    pub fn from_key(shape: CircuitShape, pk: ProvingKey<Bn254>, engine: MsmEngine) -> Result<Self, ProveError> {
        let plan = domain_plan(shape.domain_size()?)?;
        Self::with_quotient(shape, pk, engine, Quotient::Libsnark { plan })
    }

    /// A system for a key in snarkjs's form (imported from a `.zkey`,
    /// [`keys::import_zkey`]): its quotient is the odd-coset one.
    pub fn from_snarkjs_key(shape: CircuitShape, pk: ProvingKey<Bn254>, engine: MsmEngine) -> Result<Self, ProveError> {
        let domain_size = shape.domain_size()?;
        let (a, b) = quotient::rows(&shape.matrices, shape.num_public_inputs(), domain_size);
        let plan = domain_plan(domain_size)?;
        Self::with_quotient(shape, pk, engine, Quotient::OddCoset { plan, a, b })
    }

    fn with_quotient(
        shape: CircuitShape,
        pk: ProvingKey<Bn254>,
        engine: MsmEngine,
        quotient: Quotient,
    ) -> Result<Self, ProveError> {
        let (pvk, vk) = (prepare_verifying_key(&pk.vk), pk.vk.clone());
        let key = ProverKey::prepare(&engine, pk)?;
        Ok(ProvingSystem {
            quotient,
            pvk,
            vk,
            shape,
            ntt: NttEngine::beside(engine.backend()),
            engine,
            key,
            cpu_fallback: OnceLock::new(),
            last_timings: Mutex::new(ProveStages::default()),
            progress: Mutex::new(None),
            fail_next: AtomicU32::new(0),
        })
    }

    pub fn ops_per_proof(&self) -> usize {
        self.shape.ops_per_proof
    }

    pub fn shape(&self) -> &CircuitShape {
        &self.shape
    }

    pub fn verifying_key(&self) -> &VerifyingKey<Bn254> {
        &self.vk
    }

    pub fn backend(&self) -> ResolvedBackend {
        self.engine.backend()
    }

    /// The MSM engine its proofs run on (its fallback count, its device).
    pub fn engine(&self) -> &MsmEngine {
        &self.engine
    }

    /// The NTT engine its quotients run on.
    pub fn ntt(&self) -> &NttEngine {
        &self.ntt
    }

    /// The same system with its quotients' transforms on `ntt` instead of
    /// an engine beside the MSM engine's backend (a chosen device).
    pub fn with_ntt_engine(mut self, ntt: NttEngine) -> Self {
        self.ntt = ntt;
        self
    }

    /// Where the quotients' transforms run now.
    pub fn quotient_backend(&self) -> ResolvedBackend {
        self.ntt.backend()
    }

    /// Be told (proofs done, proofs in the batch) after each proof.
    pub fn set_progress(&self, progress: Option<Progress>) {
        *self.progress.lock().unwrap_or_else(|e| e.into_inner()) = progress;
    }

    /// Stage timings of the most recent `prove_batch`.
    pub fn last_timings(&self) -> ProveStages {
        self.last_timings.lock().map(|t| *t).unwrap_or_default()
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Makes the next proof attempt on the selected engine fail, so tests can
    /// exercise the retry on the CPU engine.
    pub fn fail_next_proof_for_testing(&self) {
        self.fail_proof_attempts_for_testing(1);
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Makes the next `attempts` proof attempts fail (the CPU retry counts
    /// as one), so tests can exercise a prover that fails for good.
    pub fn fail_proof_attempts_for_testing(&self, attempts: u32) {
        self.fail_next.store(attempts, Ordering::SeqCst);
    }

    /// Consumes one injected failure, if any is pending.
    fn injected_failure(&self) -> Option<ProveError> {
        let take = self.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        take.is_ok().then(|| ProveError::Rejected("injected failure (test hook)".into()))
    }

    /// Proves `ops` in chunks of K (padding the last), verifying each proof
    /// on the CPU before returning it; a failed proof is retried once on the
    /// CPU engine.
    pub fn prove_batch(&self, ops: &[OpWitness]) -> Result<Vec<BatchProof>, ProveError> {
        self.prove_batch_timed(ops).map(|(proofs, _)| proofs)
    }

    pub fn prove_batch_timed(&self, ops: &[OpWitness]) -> Result<(Vec<BatchProof>, ProveStages), ProveError> {
        let proven = self.prove_batch_until(ops, |_, _| true)?;
        Ok(proven.expect("never asked to stop"))
    }

    /// [`ProvingSystem::prove_batch_timed`], asking `go_on(done, total)`
    /// after each proof whether to make the next: None when it said no.
    pub fn prove_batch_until(
        &self,
        ops: &[OpWitness],
        mut go_on: impl FnMut(usize, usize) -> bool,
    ) -> Result<Option<(Vec<BatchProof>, ProveStages)>, ProveError> {
        let k = self.ops_per_proof();
        let mut timings = ProveStages::default();
        let total = ops.len().div_ceil(k);
        let mut proofs = Vec::with_capacity(total);
        let progress = self.progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (chunk_index, chunk) in ops.chunks(k).enumerate() {
            let mut slots = super::witness::to_slots(chunk, chunk_index * k)?;
            slots.resize(k, SlotAssignment::default());
            proofs.push(self.prove_slots(slots, chunk.len(), &mut timings)?);
            if let Some(progress) = &progress {
                progress(proofs.len(), total);
            }
            if proofs.len() < total && !go_on(proofs.len(), total) {
                return Ok(None);
            }
        }
        timings.proofs = proofs.len() as u64;
        if let Ok(mut last) = self.last_timings.lock() {
            *last = timings;
        }
        Ok(Some((proofs, timings)))
    }

    /// One proof of exactly K slots, verified; retried once on the CPU.
    pub fn prove_slots(
        &self,
        slots: Vec<SlotAssignment>,
        ops: usize,
        timings: &mut ProveStages,
    ) -> Result<BatchProof, ProveError> {
        if slots.len() != self.ops_per_proof() {
            return Err(ProveError::InvalidWitness {
                what: "proof slots".into(),
                reason: format!("{} slots for a circuit of {}", slots.len(), self.ops_per_proof()),
            });
        }
        let circuit = ComplianceCircuit::new(slots);
        let first = match self.injected_failure() {
            Some(err) => Err(err),
            None => self.prove_verified((&self.engine, &self.ntt), &self.key, circuit.clone(), ops, timings),
        };
        match first {
            Ok(proof) => Ok(proof),
            // A bad witness fails the same way everywhere.
            Err(err @ (ProveError::InvalidWitness { .. } | ProveError::Unsatisfied { .. })) => Err(err),
            Err(err) => {
                tracing::warn!(%err, backend = %self.engine.backend(), "proof failed; retrying once on the CPU");
                timings.cpu_retries += 1;
                if let Some(err) = self.injected_failure() {
                    return Err(err);
                }
                let (engine, key) = self.cpu_engine()?;
                self.prove_verified((engine, &NttEngine::cpu()), key, circuit, ops, timings)
            }
        }
    }

    fn cpu_engine(&self) -> Result<(&MsmEngine, &ProverKey), ProveError> {
        if self.engine.backend() == ResolvedBackend::Cpu {
            return Ok((&self.engine, &self.key));
        }
        let prepared = self.cpu_fallback.get_or_init(|| {
            let engine = MsmEngine::cpu();
            self.key.reupload(&engine).map(|key| (engine, key)).map_err(|e| e.to_string())
        });
        match prepared {
            Ok((engine, key)) => Ok((engine, key)),
            Err(reason) => Err(ProveError::Synthesis(format!("preparing the CPU prover: {reason}"))),
        }
    }

    fn prove_verified(
        &self,
        (engine, ntt): (&MsmEngine, &NttEngine),
        key: &ProverKey,
        circuit: ComplianceCircuit,
        ops: usize,
        timings: &mut ProveStages,
    ) -> Result<BatchProof, ProveError> {
        let quotient = |full: &[Fr]| match &self.quotient {
            Quotient::Libsnark { plan } => prover::libsnark_quotient(ntt, plan, &self.shape, full),
            Quotient::OddCoset { plan, a, b } => {
                let shape = quotient::Shape { plan, a, b };
                let (a, b) = quotient::row_values(&shape, full);
                Ok(quotient::quotient_of_rows(ntt, plan, a, b)?)
            }
        };
        let ntt_fallbacks = ntt.gpu_fallbacks();
        let proved = prover::prove(engine, key, &self.shape, circuit, &quotient, timings);
        timings.ntt_fallbacks += ntt.gpu_fallbacks() - ntt_fallbacks;
        let (proof, public_inputs) = proved?;
        let batch_proof = BatchProof { proof, public_inputs, ops };
        let start = Instant::now();
        self.verify(&batch_proof)?;
        timings.verify_us += micros(start.elapsed());
        Ok(batch_proof)
    }

    /// Checks the public-input count (arkworks would silently truncate), the
    /// proof's points, and the pairing equation.
    pub fn verify(&self, proof: &BatchProof) -> Result<(), ProveError> {
        verify_with(&self.pvk, proof)
    }
}

/// Verifies `proof` against a prepared verifying key.
pub fn verify_with(pvk: &PreparedVerifyingKey<Bn254>, proof: &BatchProof) -> Result<(), ProveError> {
    let expected = pvk.vk.gamma_abc_g1.len().saturating_sub(1);
    if proof.public_inputs.len() != expected {
        return Err(ProveError::PublicInputCount { expected, got: proof.public_inputs.len() });
    }
    if proof.ops > proof.slots() {
        return Err(ProveError::Malformed {
            what: "batch proof".into(),
            reason: format!("{} operations in {} slots", proof.ops, proof.slots()),
        });
    }
    verify_groth16(pvk, &proof.proof, &proof.public_inputs)
}

/// Groth16 verification with the count and point checks arkworks leaves out.
pub fn verify_groth16(
    pvk: &PreparedVerifyingKey<Bn254>,
    proof: &Proof<Bn254>,
    public_inputs: &[Fr],
) -> Result<(), ProveError> {
    let expected = pvk.vk.gamma_abc_g1.len().saturating_sub(1);
    if public_inputs.len() != expected {
        return Err(ProveError::PublicInputCount { expected, got: public_inputs.len() });
    }
    check_point("proof.a (G1)", &proof.a)?;
    check_point("proof.b (G2)", &proof.b)?;
    check_point("proof.c (G1)", &proof.c)?;
    match Groth16::<Bn254>::verify_proof(pvk, proof, public_inputs) {
        Ok(true) => Ok(()),
        Ok(false) => Err(ProveError::Rejected("the pairing check fails for these public inputs".into())),
        Err(e) => Err(ProveError::Rejected(e.to_string())),
    }
}

/// The NTT plan of a key's domain.
fn domain_plan(domain_size: usize) -> Result<Ntt, ProveError> {
    Ntt::new(domain_size)
        .map_err(|e| ProveError::Malformed { what: "NTT domain of the key".into(), reason: e.to_string() })
}
