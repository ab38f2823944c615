//! The MSM engine: multi-scalar multiplication over BN254 behind one
//! interface, on the CPU (our rayon Pippenger) or the GPU (WGSL).

pub mod cpu;
mod device;
#[cfg(feature = "gpu")]
pub mod gpu;
#[cfg(not(feature = "gpu"))]
#[path = "gpu_absent.rs"]
pub mod gpu;
mod tuning;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};

use crate::backend::{Backend, DeviceError, FaultPlan, ResolvedBackend};
use device::{DeviceBases, MsmDevice, RunOptions};
pub use tuning::MsmTuning;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MsmError {
    #[error("MSM length mismatch: {bases} bases but {scalars} scalars")]
    LengthMismatch { bases: usize, scalars: usize },
    #[error("MSM base {index} rejected: {reason}")]
    InvalidBase { index: usize, reason: String },
    #[error("MSM backend: {0}")]
    Device(#[from] DeviceError),
}

/// A fixed G1 base set uploaded once (to the engine's device when it has
/// one) and reused for many MSMs, as the prover does with a proving key's
/// bases. After a device loss it is uploaded again on its next use.
pub struct ResidentG1 {
    bases: Arc<Vec<G1Affine>>,
    /// The upload, tagged with the device generation it belongs to.
    on_device: Mutex<Option<(u64, DeviceBases)>>,
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
    cpu: cpu::CpuMsm,
    /// The accelerator and its generation (bumped when a lost device is
    /// replaced); `None` is the CPU.
    device: RwLock<(u64, Option<Arc<dyn MsmDevice>>)>,
    /// GPU MSMs that failed and were recomputed on the CPU.
    fallbacks: AtomicU64,
    faults: Mutex<FaultPlan>,
}

impl MsmEngine {
    /// An engine for `backend`: `Gpu` without a usable adapter is an error,
    /// `Auto` warns and uses the CPU.
    pub fn new(backend: Backend) -> Result<Self, MsmError> {
        let (resolved, _ctx) = crate::gpu::resolve(backend)?;
        let device = acquire_device(resolved)?;
        Ok(MsmEngine { device: RwLock::new((0, device)), ..MsmEngine::cpu() })
    }

    pub fn cpu() -> Self {
        MsmEngine {
            cpu: cpu::CpuMsm::new(),
            device: RwLock::new((0, None)),
            fallbacks: AtomicU64::new(0),
            faults: Mutex::new(FaultPlan::default()),
        }
    }

    /// How many GPU MSMs failed and were recomputed on the CPU (same
    /// results), over the engine's life.
    pub fn gpu_fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    fn current_device(&self) -> (u64, Option<Arc<dyn MsmDevice>>) {
        let guard = self.device.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        (guard.0, guard.1.clone())
    }

    fn run_options(&self) -> RunOptions {
        let mut faults = self.faults.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        RunOptions { fail_before_step: faults.take() }
    }

    /// The CPU's answer after a device failure, counted; a lost device is
    /// replaced by a fresh one (or by the CPU when none comes back).
    fn recompute_on_cpu(
        &self,
        err: &DeviceError,
        failed: &Arc<dyn MsmDevice>,
        bases: &[G1Affine],
        scalars: &[Fr],
    ) -> G1Projective {
        tracing::warn!(%err, points = scalars.len(), "GPU MSM failed; recomputing on the CPU");
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        if failed.is_lost() {
            let mut guard = self.device.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            if guard.1.as_ref().is_some_and(|current| Arc::ptr_eq(current, failed)) {
                let fresh = acquire_device(ResolvedBackend::Gpu).unwrap_or_else(|err| {
                    tracing::warn!(%err, "GPU lost and not recovered: MSMs continue on the CPU");
                    None
                });
                *guard = (guard.0 + 1, fresh);
            }
        }
        self.cpu.msm_g1(bases, scalars)
    }

    /// Where G1 MSMs run now: the GPU while the engine holds a device (the
    /// CPU after a lost device that did not come back).
    pub fn backend(&self) -> ResolvedBackend {
        match self.current_device().1 {
            Some(_) => ResolvedBackend::Gpu,
            None => ResolvedBackend::Cpu,
        }
    }

    /// A description of the device the GPU backend runs on, if it has one.
    pub fn device(&self) -> Option<String> {
        self.current_device().1.map(|device| device.describe())
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Make the next device MSMs fail as `plan` says (the hash pool takes
    /// the same plan). Returns false (and does nothing) without a device.
    pub fn inject_faults(&self, plan: FaultPlan) -> bool {
        if self.current_device().1.is_none() {
            return false;
        }
        *self.faults.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = plan;
        true
    }

    pub fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> Result<G1Projective, MsmError> {
        check_lengths(bases.len(), scalars.len())?;
        validate_g1(bases)?;
        match self.current_device().1 {
            Some(device) => Ok(device
                .msm_g1(bases, scalars, &self.run_options())
                .unwrap_or_else(|err| self.recompute_on_cpu(&err, &device, bases, scalars))),
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
        self.adopt_g1(bases)
    }

    /// [`Self::upload_g1`] for bases the caller has already checked (a
    /// proving key's, checked when it was made or loaded).
    pub(crate) fn adopt_g1(&self, bases: Vec<G1Affine>) -> Result<ResidentG1, MsmError> {
        let (generation, device) = self.current_device();
        let on_device = match device {
            Some(device) => Some((generation, device.upload_g1(&bases)?)),
            None => None,
        };
        Ok(ResidentG1 { bases: Arc::new(bases), on_device: Mutex::new(on_device) })
    }

    /// An MSM against a resident base set; `scalars` may be shorter than the set.
    pub fn msm_g1_resident(&self, set: &ResidentG1, scalars: &[Fr]) -> Result<G1Projective, MsmError> {
        if scalars.len() > set.len() {
            return Err(MsmError::LengthMismatch { bases: set.len(), scalars: scalars.len() });
        }
        let bases = &set.bases[..scalars.len()];
        let (generation, Some(device)) = self.current_device() else {
            return Ok(self.cpu.msm_g1(bases, scalars));
        };
        let uploaded = {
            let mut on_device = set.on_device.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match on_device.as_ref() {
                Some((g, uploaded)) if *g == generation => Ok(uploaded.clone()),
                // Uploaded to a device since replaced (or never): again.
                _ => device.upload_g1(&set.bases).inspect(|uploaded| *on_device = Some((generation, uploaded.clone()))),
            }
        };
        Ok(uploaded
            .and_then(|uploaded| device.msm_g1_resident(&uploaded, scalars, &self.run_options()))
            .unwrap_or_else(|err| self.recompute_on_cpu(&err, &device, bases, scalars)))
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

/// The device for a resolved backend: `None` for the CPU. The one place a
/// backend is mapped to its implementation.
fn acquire_device(backend: ResolvedBackend) -> Result<Option<Arc<dyn MsmDevice>>, DeviceError> {
    Ok(match backend {
        ResolvedBackend::Cpu => None,
        ResolvedBackend::Gpu => Some(Arc::new(gpu::GpuMsm::new(crate::gpu::GpuContext::shared()?)?)),
    })
}
