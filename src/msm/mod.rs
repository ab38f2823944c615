//! The MSM engine: multi-scalar multiplication over BN254 behind one
//! interface, on the CPU (our rayon Pippenger) or the GPU (WGSL).

pub mod cpu;
#[cfg(feature = "gpu")]
pub mod gpu;
#[cfg(not(feature = "gpu"))]
#[path = "gpu_absent.rs"]
pub mod gpu;
mod tuning;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};

use crate::backend::{Backend, ResolvedBackend};
use crate::gpu::GpuError;
pub use tuning::MsmTuning;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MsmError {
    #[error("MSM length mismatch: {bases} bases but {scalars} scalars")]
    LengthMismatch { bases: usize, scalars: usize },
    #[error("MSM base {index} rejected: {reason}")]
    InvalidBase { index: usize, reason: String },
    #[error("GPU MSM backend: {0}")]
    Gpu(#[from] GpuError),
}

/// A fixed G1 base set uploaded once (to the GPU when the engine has one) and
/// reused for many MSMs, as the prover does with a proving key's bases.
pub struct ResidentG1 {
    bases: Arc<Vec<G1Affine>>,
    gpu: Option<gpu::GpuBases>,
}

impl ResidentG1 {
    pub fn len(&self) -> usize {
        self.bases.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bases.is_empty()
    }
    pub fn bases(&self) -> &[G1Affine] {
        &self.bases
    }
}

/// A fixed G2 base set validated once and prepared (GLV endomorphism images
/// precomputed) for repeated CPU MSMs. Subgroup checks of G2 points cost far
/// more than the MSM itself, so checking them on every call is not an option
/// for a prover that reuses a proving key's bases.
pub struct ResidentG2 {
    prepared: cpu::PreparedBases<ark_bn254::g2::Config>,
}

impl ResidentG2 {
    pub fn len(&self) -> usize {
        self.prepared.len()
    }
    pub fn is_empty(&self) -> bool {
        self.prepared.len() == 0
    }
}

pub struct MsmEngine {
    backend: ResolvedBackend,
    cpu: cpu::CpuMsm,
    gpu: Option<gpu::GpuMsm>,
    /// GPU MSMs that failed and were recomputed on the CPU.
    fallbacks: AtomicU64,
}

impl MsmEngine {
    /// An engine for `backend`: `Gpu` without a usable adapter is an error,
    /// `Auto` warns and uses the CPU.
    pub fn new(backend: Backend) -> Result<Self, MsmError> {
        let (resolved, ctx) = crate::gpu::resolve(backend)?;
        let gpu = match ctx {
            Some(ctx) => Some(gpu::GpuMsm::new(ctx)?),
            None => None,
        };
        Ok(MsmEngine { backend: resolved, cpu: cpu::CpuMsm::new(), gpu, fallbacks: AtomicU64::new(0) })
    }

    pub fn cpu() -> Self {
        MsmEngine { backend: ResolvedBackend::Cpu, cpu: cpu::CpuMsm::new(), gpu: None, fallbacks: AtomicU64::new(0) }
    }

    /// How many GPU MSMs failed and were recomputed on the CPU (same
    /// results), over the engine's life.
    pub fn gpu_fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// The CPU's answer after a GPU failure, counted.
    fn recompute_on_cpu(&self, err: &GpuError, bases: &[G1Affine], scalars: &[Fr]) -> G1Projective {
        tracing::warn!(%err, points = scalars.len(), "GPU MSM failed; recomputing on the CPU");
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.cpu.msm_g1(bases, scalars)
    }

    pub fn backend(&self) -> ResolvedBackend {
        self.backend
    }

    /// A description of the device the GPU backend runs on, if it has one.
    pub fn device(&self) -> Option<String> {
        self.gpu.as_ref().map(|gpu| gpu.context().describe())
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Make the next `count` GPU MSMs fail mid-computation as a lost device
    /// would, to exercise the CPU recompute path. Returns false (and does
    /// nothing) when the engine has no GPU backend.
    pub fn inject_gpu_faults(&self, count: u32) -> bool {
        match &self.gpu {
            Some(gpu) => {
                gpu.inject_faults(count);
                true
            }
            None => false,
        }
    }

    pub fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> Result<G1Projective, MsmError> {
        check_lengths(bases.len(), scalars.len())?;
        validate_g1(bases)?;
        match &self.gpu {
            Some(gpu) => Ok(gpu.msm(bases, scalars).unwrap_or_else(|err| self.recompute_on_cpu(&err, bases, scalars))),
            None => Ok(self.cpu.msm_g1(bases, scalars)),
        }
    }

    /// G2 MSMs always run on the CPU engine.
    pub fn msm_g2(&self, bases: &[G2Affine], scalars: &[Fr]) -> Result<G2Projective, MsmError> {
        check_lengths(bases.len(), scalars.len())?;
        validate_g2(bases)?;
        Ok(self.cpu.msm_g2(bases, scalars))
    }

    /// Validate `bases` once and prepare them for repeated G2 MSMs (CPU).
    pub fn upload_g2(&self, bases: Vec<G2Affine>) -> Result<ResidentG2, MsmError> {
        validate_g2(&bases)?;
        Ok(self.adopt_g2(bases))
    }

    /// Prepare G2 bases the caller has already validated (a proving key
    /// validated at setup and matched against its recorded digest since):
    /// G2 subgroup checks cost more than many MSMs over the same points.
    pub(crate) fn adopt_g2(&self, bases: Vec<G2Affine>) -> ResidentG2 {
        ResidentG2 { prepared: self.cpu.prepare(bases) }
    }

    /// A G2 MSM against a resident base set; `scalars` may be shorter than the set.
    pub fn msm_g2_resident(&self, set: &ResidentG2, scalars: &[Fr]) -> Result<G2Projective, MsmError> {
        if scalars.len() > set.len() {
            return Err(MsmError::LengthMismatch { bases: set.len(), scalars: scalars.len() });
        }
        Ok(self.cpu.msm_prepared(&set.prepared, scalars))
    }

    /// Validate and keep `bases` for repeated MSMs (resident on the GPU).
    pub fn upload_g1(&self, bases: Vec<G1Affine>) -> Result<ResidentG1, MsmError> {
        validate_g1(&bases)?;
        let gpu = match &self.gpu {
            Some(gpu) => Some(gpu.upload(&bases)?),
            None => None,
        };
        Ok(ResidentG1 { bases: Arc::new(bases), gpu })
    }

    /// An MSM against a resident base set; `scalars` may be shorter than the set.
    pub fn msm_g1_resident(&self, set: &ResidentG1, scalars: &[Fr]) -> Result<G1Projective, MsmError> {
        if scalars.len() > set.len() {
            return Err(MsmError::LengthMismatch { bases: set.len(), scalars: scalars.len() });
        }
        let bases = &set.bases[..scalars.len()];
        match (&self.gpu, &set.gpu) {
            (Some(gpu), Some(resident)) => Ok(gpu
                .msm_resident(resident, scalars)
                .unwrap_or_else(|err| self.recompute_on_cpu(&err, bases, scalars))),
            _ => Ok(self.cpu.msm_g1(bases, scalars)),
        }
    }
}

fn check_lengths(bases: usize, scalars: usize) -> Result<(), MsmError> {
    if bases != scalars {
        return Err(MsmError::LengthMismatch { bases, scalars });
    }
    Ok(())
}

/// Reject points off the curve or outside the prime-order subgroup before any work.
pub fn validate_g1(bases: &[G1Affine]) -> Result<(), MsmError> {
    use rayon::prelude::*;
    bases.par_iter().enumerate().try_for_each(|(index, p)| {
        if !p.is_on_curve() {
            return Err(MsmError::InvalidBase { index, reason: "point is not on the BN254 G1 curve".into() });
        }
        if !p.is_in_correct_subgroup_assuming_on_curve() {
            return Err(MsmError::InvalidBase { index, reason: "point is not in the prime-order subgroup".into() });
        }
        Ok(())
    })
}

/// Reject G2 points off the twist or outside the prime-order subgroup.
pub fn validate_g2(bases: &[G2Affine]) -> Result<(), MsmError> {
    use rayon::prelude::*;
    bases.par_iter().enumerate().try_for_each(|(index, p)| {
        if !p.is_on_curve() {
            return Err(MsmError::InvalidBase { index, reason: "point is not on the BN254 G2 twist".into() });
        }
        if !p.is_in_correct_subgroup_assuming_on_curve() {
            return Err(MsmError::InvalidBase { index, reason: "point is not in the prime-order subgroup".into() });
        }
        Ok(())
    })
}
