//! What the batch executor needs of a proof system: the seam between the
//! executor (above) and the provers (here). The Groth16 system
//! ([`super::ProvingSystem`]) and the verifying keys alone
//! ([`super::StoredKeys`]) implement it; tests plug in their own.

use serde::Serialize;

use super::witness::OpWitness;
use super::ProveError;
use crate::backend::ResolvedBackend;
use crate::msm::MsmPlacement;
use crate::resource::Operation;
use crate::store::ProofRecord;

/// Where the time of proving went, summed over the proofs it covers
/// (microseconds): the one timing type of the prover, from each proof's
/// stages (`prove_slots`) up to a batch's result. The G1 and G2 MSMs run at
/// the same time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProveStages {
    pub proofs: u64,
    pub witness_us: u64,
    pub qap_us: u64,
    pub msm_g1_us: u64,
    pub msm_g2_us: u64,
    pub assemble_us: u64,
    pub verify_us: u64,
    /// Proofs retried on the CPU after a failure on the selected engine.
    pub cpu_retries: u64,
    /// MSMs the GPU failed and the CPU recomputed (same results).
    pub gpu_fallbacks: u64,
    /// G1 and G2 MSM terms computed on the GPU, and on the CPU (the engine
    /// has no GPU, the CPU was expected to finish first, or a fallback):
    /// four G1 terms a proof (A, B₁, C, H; the last three summed by one
    /// MSM, counted three times where it ran) and one G2.
    pub msm_g1_on_gpu: u64,
    pub msm_g1_on_cpu: u64,
    pub msm_g2_on_gpu: u64,
    pub msm_g2_on_cpu: u64,
    /// Points the CPU computed of MSMs counted on the GPU: MSMs the engine
    /// shared between them by measured speed (`MsmPlacement::Shared`).
    pub msm_points_shared_with_cpu: u64,
    /// Quotients whose NTTs all ran on the GPU, and those that ran (at
    /// least in part) on the CPU.
    pub quotients_on_gpu: u64,
    pub quotients_on_cpu: u64,
    /// NTT batches the GPU failed and the CPU recomputed (same results).
    pub ntt_fallbacks: u64,
}

impl ProveStages {
    pub fn add(&mut self, other: &ProveStages) {
        self.proofs += other.proofs;
        self.witness_us += other.witness_us;
        self.qap_us += other.qap_us;
        self.msm_g1_us += other.msm_g1_us;
        self.msm_g2_us += other.msm_g2_us;
        self.assemble_us += other.assemble_us;
        self.verify_us += other.verify_us;
        self.cpu_retries += other.cpu_retries;
        self.gpu_fallbacks += other.gpu_fallbacks;
        self.msm_g1_on_gpu += other.msm_g1_on_gpu;
        self.msm_g1_on_cpu += other.msm_g1_on_cpu;
        self.msm_g2_on_gpu += other.msm_g2_on_gpu;
        self.msm_g2_on_cpu += other.msm_g2_on_cpu;
        self.msm_points_shared_with_cpu += other.msm_points_shared_with_cpu;
        self.quotients_on_gpu += other.quotients_on_gpu;
        self.quotients_on_cpu += other.quotients_on_cpu;
        self.ntt_fallbacks += other.ntt_fallbacks;
    }

    /// Count one quotient: where its transforms ran, and how many of them
    /// the GPU failed and the CPU recomputed.
    pub fn record_quotient(&mut self, ran: ResolvedBackend, ntt_fallbacks: u64) {
        match ran {
            ResolvedBackend::Gpu => self.quotients_on_gpu += 1,
            ResolvedBackend::Cpu => self.quotients_on_cpu += 1,
        }
        self.ntt_fallbacks += ntt_fallbacks;
    }

    /// Count one MSM (in G2 when `g2`) of `terms` terms where it ran (a
    /// recomputed one as `terms` fallbacks, as the counts go by term).
    pub fn record_msm(&mut self, g2: bool, placement: MsmPlacement, terms: u64) {
        let (on_gpu, on_cpu) = match g2 {
            false => (&mut self.msm_g1_on_gpu, &mut self.msm_g1_on_cpu),
            true => (&mut self.msm_g2_on_gpu, &mut self.msm_g2_on_cpu),
        };
        match placement.on_device() {
            true => *on_gpu += terms,
            false => *on_cpu += terms,
        }
        self.msm_points_shared_with_cpu += placement.cpu_share() as u64;
        if placement == MsmPlacement::CpuAfterFailure {
            self.gpu_fallbacks += terms;
        }
    }

    /// Where the G1 MSMs ran: the GPU only when every one did (None: none ran).
    pub fn msm_g1_backend(&self) -> Option<ResolvedBackend> {
        all_on_gpu(self.msm_g1_on_gpu, self.msm_g1_on_cpu)
    }

    /// Where the G2 MSMs ran, as [`Self::msm_g1_backend`].
    pub fn msm_g2_backend(&self) -> Option<ResolvedBackend> {
        all_on_gpu(self.msm_g2_on_gpu, self.msm_g2_on_cpu)
    }

    /// Where the MSMs of both groups ran: the GPU only when every one did.
    pub fn msm_backend(&self) -> Option<ResolvedBackend> {
        all_on_gpu(self.msm_g1_on_gpu + self.msm_g2_on_gpu, self.msm_g1_on_cpu + self.msm_g2_on_cpu)
    }

    /// Where the quotients ran: the GPU only when every one did (None: no
    /// quotient was computed).
    pub fn quotient_backend(&self) -> Option<ResolvedBackend> {
        all_on_gpu(self.quotients_on_gpu, self.quotients_on_cpu)
    }

    /// The stages' time end to end: the MSM stage costs the longer of the
    /// two MSMs, which overlap.
    pub fn total_us(&self) -> u64 {
        self.witness_us + self.qap_us + self.msm_g1_us.max(self.msm_g2_us) + self.assemble_us + self.verify_us
    }
}

/// Microseconds of `elapsed`, for the stage counters.
pub(crate) fn micros(elapsed: std::time::Duration) -> u64 {
    elapsed.as_micros().min(u64::MAX as u128) as u64
}

pub trait ProofSystem: Send + Sync {
    /// The name stored in each proof record, e.g. "groth16-bn254".
    fn name(&self) -> String;
    /// Prove a batch (the executor reports a failure as a ProofGenerationError).
    fn prove(&self, witnesses: &[OpWitness]) -> Result<ProofRecord, ProveError>;
    /// Check a stored proof record.
    fn verify(&self, record: &ProofRecord) -> Result<(), ProveError>;
    /// `prove`, with the time each stage took; systems that do not measure
    /// their stages report none.
    fn prove_timed(&self, witnesses: &[OpWitness]) -> Result<(ProofRecord, Option<ProveStages>), ProveError> {
        self.prove(witnesses).map(|record| (record, None))
    }
    /// Where its proofs are made (None: it does not say).
    fn backend(&self) -> Option<crate::backend::ResolvedBackend> {
        None
    }
    /// Whether this system can prove `op` at all. An operation it cannot
    /// prove fails on its own at execution, instead of failing the proofs
    /// (and so the commit) of the whole batch.
    fn admits(&self, _op: &Operation) -> Result<(), ProveError> {
        Ok(())
    }
}

/// The GPU when every one of some work ran there, else the CPU; None when there was none.
fn all_on_gpu(on_gpu: u64, on_cpu: u64) -> Option<ResolvedBackend> {
    match (on_gpu, on_cpu) {
        (0, 0) => None,
        (_, 0) => Some(ResolvedBackend::Gpu),
        _ => Some(ResolvedBackend::Cpu),
    }
}
