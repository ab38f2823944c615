//! The MSM engine: multi-scalar multiplication over BN254 behind one
//! interface, on the CPU (our rayon Pippenger) or the GPU (WGSL).

pub mod cpu;
mod device;
#[cfg(feature = "gpu")]
pub mod gpu;
#[cfg(not(feature = "gpu"))]
#[path = "gpu_absent.rs"]
pub mod gpu;
mod share;
mod tuning;

use std::sync::{Arc, Mutex, Weak};

use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};

#[cfg(any(test, feature = "test-support"))]
use crate::backend::FaultPlan;
use crate::backend::{Backend, DeviceError, DeviceSlot, ResolvedBackend};
use device::{DeviceBases, MsmDevice, RunOptions};
pub use share::SharePolicy;
use share::{Booked, Curve, Share, Side, Ticket};
pub use tuning::{GpuField, GpuFormulas, MsmTuning};

/// Where one MSM ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsmPlacement {
    /// On the engine's device.
    Device,
    /// On the CPU: the engine has no device.
    Cpu,
    /// On the CPU although the engine has a device, which was expected to
    /// finish it later ([`SharePolicy::Measured`]).
    CpuByChoice,
    /// On the CPU after the device failed it (same result, counted in
    /// [`MsmEngine::gpu_fallbacks`]), or the device's part of a shared one.
    CpuAfterFailure,
    /// Shared: the device took its first points and the CPU the last
    /// `cpu_points` at the same time ([`SharePolicy::Measured`]).
    Shared { cpu_points: usize },
}

impl MsmPlacement {
    /// Whether the device ran it (alone or sharing it with the CPU).
    pub fn on_device(self) -> bool {
        matches!(self, MsmPlacement::Device | MsmPlacement::Shared { .. })
    }

    /// Points the CPU took of an MSM the device ran.
    pub fn cpu_share(self) -> usize {
        match self {
            MsmPlacement::Shared { cpu_points } => cpu_points,
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MsmError {
    #[error("MSM length mismatch: {bases} bases but {scalars} scalars")]
    LengthMismatch { bases: usize, scalars: usize },
    #[error("MSM base {index} rejected: {reason}")]
    InvalidBase { index: usize, reason: String },
    #[error("MSM backend: {0}")]
    Device(#[from] DeviceError),
}

/// A base set's upload, tagged with the device that holds it: after a
/// device loss (or in another engine, which may share a G2 set) the set is
/// uploaded again on its next use. The weak tag keeps the device's
/// allocation, so a later device can never be mistaken for it.
#[derive(Default)]
struct DeviceCopy(Mutex<Option<(Weak<dyn MsmDevice>, DeviceBases)>>);

impl DeviceCopy {
    fn holding(device: &Arc<dyn MsmDevice>, uploaded: DeviceBases) -> Self {
        DeviceCopy(Mutex::new(Some((Arc::downgrade(device), uploaded))))
    }

    /// The upload on `device`, made now if the set is not there yet.
    fn on(
        &self,
        device: &Arc<dyn MsmDevice>,
        upload: impl FnOnce() -> Result<DeviceBases, DeviceError>,
    ) -> Result<DeviceBases, DeviceError> {
        let mut held = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match held.as_ref() {
            Some((holder, uploaded)) if Weak::ptr_eq(holder, &Arc::downgrade(device)) => Ok(uploaded.clone()),
            _ => upload().inspect(|uploaded| *held = Some((Arc::downgrade(device), uploaded.clone()))),
        }
    }
}

/// A fixed G1 base set uploaded once (to the engine's device when it has
/// one) and reused for many MSMs, as the prover does with a proving key's
/// bases. After a device loss it is uploaded again on its next use.
pub struct ResidentG1 {
    bases: Arc<Vec<G1Affine>>,
    on_device: DeviceCopy,
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
    /// Bytes of host memory the set holds (its device copy aside).
    pub fn host_bytes(&self) -> usize {
        self.bases.len() * std::mem::size_of::<G1Affine>()
    }
}

/// A fixed G2 base set validated once, prepared (GLV endomorphism images
/// precomputed) for the CPU, and uploaded to the engine's device on its
/// first MSM there. Subgroup checks of G2 points cost far more than the MSM
/// itself, so checking them on every call is not an option for a prover
/// that reuses a proving key's bases. The CPU form stays beside the upload:
/// it is the fallback when a device MSM fails.
pub struct ResidentG2 {
    prepared: cpu::PreparedBases<ark_bn254::g2::Config>,
    on_device: DeviceCopy,
}

impl ResidentG2 {
    pub fn len(&self) -> usize {
        self.prepared.len()
    }
    pub fn is_empty(&self) -> bool {
        self.prepared.len() == 0
    }
    /// Bytes of host memory the set holds (the bases and their
    /// endomorphism images; its device copy aside).
    pub fn host_bytes(&self) -> usize {
        2 * self.prepared.len() * std::mem::size_of::<ark_bn254::G2Affine>()
    }
}

pub struct MsmEngine {
    cpu: cpu::CpuMsm,
    /// The accelerator (replaced when lost; `None` is the CPU), with the
    /// fallback policy and fault plan every kernel shares.
    device: DeviceSlot<dyn MsmDevice>,
    /// Which side takes each MSM while the engine has a device.
    share: Share,
}

impl MsmEngine {
    /// An engine for `backend`: `Gpu` without a usable adapter is an error
    /// and sends every MSM to the GPU; `Auto` without one warns and uses
    /// the CPU, and with one shares MSMs between GPU and CPU by measured
    /// speed ([`SharePolicy::Measured`]).
    pub fn new(backend: Backend) -> Result<Self, MsmError> {
        let (resolved, _ctx) = crate::gpu::resolve(backend)?;
        let device = match resolved {
            ResolvedBackend::Cpu => None,
            ResolvedBackend::Gpu => Some(acquire_device()?),
        };
        let policy = match backend {
            Backend::Auto => SharePolicy::Measured,
            Backend::Cpu | Backend::Gpu => SharePolicy::DeviceOnly,
        };
        Ok(MsmEngine { device: device_slot(device), share: Share::new(policy), ..MsmEngine::cpu() })
    }

    /// An engine on `ctx`'s device alone (every MSM there, as with
    /// `Backend::Gpu`): a chosen adapter, or a private device a test can
    /// lose. After a loss it moves to the process's shared device.
    pub fn on_context(ctx: Arc<crate::gpu::GpuContext>) -> Result<Self, MsmError> {
        let device: Arc<dyn MsmDevice> = Arc::new(gpu::GpuMsm::new(ctx)?);
        Ok(MsmEngine { device: device_slot(Some(device)), ..MsmEngine::cpu() })
    }

    pub fn cpu() -> Self {
        MsmEngine { cpu: cpu::CpuMsm::new(), device: device_slot(None), share: Share::new(SharePolicy::DeviceOnly) }
    }

    /// The same engine sharing MSMs with the CPU as `policy` says.
    pub fn with_share_policy(mut self, policy: SharePolicy) -> Self {
        self.share = Share::new(policy);
        self
    }

    pub fn share_policy(&self) -> SharePolicy {
        self.share.policy()
    }

    /// How many GPU MSMs failed and were recomputed on the CPU (same
    /// results), over the engine's life.
    pub fn gpu_fallbacks(&self) -> u64 {
        self.device.fallbacks()
    }

    fn run_options(&self) -> RunOptions {
        RunOptions { fail_before_step: self.device.next_fault() }
    }

    /// One MSM of `points` in `curve`, run where the share policy sends it:
    /// `on_device`'s answer over its first points (all of them, or the
    /// device's part of a shared MSM), `on_cpu`'s over a range of them, or
    /// the sum of both parts run at the same time. The CPU runs it whole
    /// when the engine has no device, or was expected to finish first; a
    /// device failure is recomputed there (counted, and a lost device
    /// replaced by a fresh one or by the CPU). The one placement and
    /// fallback policy of G1 and G2 MSMs.
    fn placed<T: Send + std::ops::Add<Output = T>>(
        &self,
        curve: Curve,
        points: usize,
        on_device: impl Fn(&Arc<dyn MsmDevice>, &RunOptions, usize) -> Result<T, DeviceError> + Sync,
        on_cpu: impl Fn(std::ops::Range<usize>) -> T + Sync,
    ) -> (T, MsmPlacement) {
        let Some(device) = self.device.current() else {
            return (on_cpu(0..points), MsmPlacement::Cpu);
        };
        if let Some((device_part, cpu_part)) = self.share.split(curve, points) {
            return self.shared(&device, (device_part, cpu_part), on_device, on_cpu);
        }
        let ticket = Booked::new(&self.share, self.share.choose(curve, points));
        if ticket.ticket().side() == Side::Cpu {
            let sum = on_cpu(0..points);
            ticket.finish(true);
            return (sum, MsmPlacement::CpuByChoice);
        }
        match on_device(&device, &self.run_options(), points) {
            Ok(sum) => {
                ticket.finish(true);
                (sum, MsmPlacement::Device)
            }
            Err(err) => {
                ticket.finish(false);
                self.device.fell_back(&err, &device, points);
                (on_cpu(0..points), MsmPlacement::CpuAfterFailure)
            }
        }
    }

    /// A shared MSM: the device's part on a thread of its own (it waits
    /// on the device) while the CPU's runs here, each part's time recorded
    /// as it finishes; a failed device part is recomputed on the CPU.
    fn shared<T: Send + std::ops::Add<Output = T>>(
        &self,
        device: &Arc<dyn MsmDevice>,
        (device_part, cpu_part): (Ticket, Ticket),
        on_device: impl Fn(&Arc<dyn MsmDevice>, &RunOptions, usize) -> Result<T, DeviceError> + Sync,
        on_cpu: impl Fn(std::ops::Range<usize>) -> T + Sync,
    ) -> (T, MsmPlacement) {
        let (first, rest) = (device_part.points(), cpu_part.points());
        let (device_part, cpu_part) = (Booked::new(&self.share, device_part), Booked::new(&self.share, cpu_part));
        let run = self.run_options();
        let (from_device, from_cpu) = std::thread::scope(|scope| {
            let on_device = &on_device;
            let waiting = scope.spawn(move || {
                let sum = on_device(device, &run, first);
                device_part.finish(sum.is_ok());
                sum
            });
            let sum = on_cpu(first..first + rest);
            cpu_part.finish(true);
            (waiting.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), sum)
        });
        match from_device {
            Ok(sum) => (sum + from_cpu, MsmPlacement::Shared { cpu_points: rest }),
            Err(err) => {
                self.device.fell_back(&err, device, first);
                (on_cpu(0..first) + from_cpu, MsmPlacement::CpuAfterFailure)
            }
        }
    }

    /// Where MSMs (G1 and G2) run now: the GPU while the engine holds a
    /// device (the CPU after a lost device that did not come back).
    pub fn backend(&self) -> ResolvedBackend {
        self.device.backend()
    }

    /// A description of the device the GPU backend runs on, if it has one.
    pub fn device(&self) -> Option<String> {
        self.device.current().map(|device| device.describe())
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Make the next device MSMs fail as `plan` says (the hash pool takes
    /// the same plan). Returns false (and does nothing) without a device.
    pub fn inject_faults(&self, plan: FaultPlan) -> bool {
        self.device.arm(plan)
    }

    pub fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> Result<G1Projective, MsmError> {
        self.msm_g1_placed(bases, scalars).map(|(sum, _)| sum)
    }

    /// [`Self::msm_g1`], saying where it ran.
    pub fn msm_g1_placed(&self, bases: &[G1Affine], scalars: &[Fr]) -> Result<(G1Projective, MsmPlacement), MsmError> {
        check_lengths(bases.len(), scalars.len())?;
        validate_g1(bases)?;
        let on_device =
            |device: &Arc<dyn MsmDevice>, run: &RunOptions, n: usize| device.msm_g1(&bases[..n], &scalars[..n], run);
        let on_cpu = |range: std::ops::Range<usize>| self.cpu.msm_g1(&bases[range.clone()], &scalars[range]);
        Ok(self.placed(Curve::G1, bases.len(), on_device, on_cpu))
    }

    pub fn msm_g2(&self, bases: &[G2Affine], scalars: &[Fr]) -> Result<G2Projective, MsmError> {
        self.msm_g2_placed(bases, scalars).map(|(sum, _)| sum)
    }

    /// [`Self::msm_g2`], saying where it ran.
    pub fn msm_g2_placed(&self, bases: &[G2Affine], scalars: &[Fr]) -> Result<(G2Projective, MsmPlacement), MsmError> {
        check_lengths(bases.len(), scalars.len())?;
        validate_g2(bases)?;
        let on_device =
            |device: &Arc<dyn MsmDevice>, run: &RunOptions, n: usize| device.msm_g2(&bases[..n], &scalars[..n], run);
        let on_cpu = |range: std::ops::Range<usize>| self.cpu.msm_g2(&bases[range.clone()], &scalars[range]);
        Ok(self.placed(Curve::G2, bases.len(), on_device, on_cpu))
    }

    /// Validate `bases` once and keep them for repeated G2 MSMs (on the
    /// device from the first MSM there).
    pub fn upload_g2(&self, bases: Vec<G2Affine>) -> Result<ResidentG2, MsmError> {
        validate_g2(&bases)?;
        Ok(self.adopt_g2(bases))
    }

    /// Prepare G2 bases the caller has already validated (a proving key
    /// validated at setup and matched against its recorded digest since):
    /// G2 subgroup checks cost more than many MSMs over the same points.
    pub(crate) fn adopt_g2(&self, bases: Vec<G2Affine>) -> ResidentG2 {
        ResidentG2 { prepared: self.cpu.prepare(bases), on_device: DeviceCopy::default() }
    }

    /// A G2 MSM against a resident base set; `scalars` may be shorter than the set.
    pub fn msm_g2_resident(&self, set: &ResidentG2, scalars: &[Fr]) -> Result<G2Projective, MsmError> {
        self.msm_g2_resident_placed(set, scalars).map(|(sum, _)| sum)
    }

    /// [`Self::msm_g2_resident`], saying where it ran.
    pub fn msm_g2_resident_placed(
        &self,
        set: &ResidentG2,
        scalars: &[Fr],
    ) -> Result<(G2Projective, MsmPlacement), MsmError> {
        if scalars.len() > set.len() {
            return Err(MsmError::LengthMismatch { bases: set.len(), scalars: scalars.len() });
        }
        let on_device = |device: &Arc<dyn MsmDevice>, run: &RunOptions, n: usize| {
            let uploaded = set.on_device.on(device, || device.upload_g2(set.prepared.bases()))?;
            device.msm_g2_resident(&uploaded, &scalars[..n], run)
        };
        let on_cpu =
            |range: std::ops::Range<usize>| self.cpu.msm_prepared_from(&set.prepared, range.start, &scalars[range]);
        Ok(self.placed(Curve::G2, scalars.len(), on_device, on_cpu))
    }

    /// Validate and keep `bases` for repeated MSMs (resident on the GPU).
    pub fn upload_g1(&self, bases: Vec<G1Affine>) -> Result<ResidentG1, MsmError> {
        validate_g1(&bases)?;
        self.adopt_g1(bases)
    }

    /// [`Self::upload_g1`] for bases the caller has already checked (a
    /// proving key's, checked when it was made or loaded).
    pub(crate) fn adopt_g1(&self, bases: Vec<G1Affine>) -> Result<ResidentG1, MsmError> {
        let on_device = match self.device.current() {
            Some(device) => match device.upload_g1(&bases) {
                Ok(uploaded) => DeviceCopy::holding(&device, uploaded),
                // Kept on the CPU instead: a lost device is replaced now, and
                // the next MSM on a device uploads the bases there.
                Err(err) => {
                    tracing::warn!(%err, "the GPU did not take the bases: they stay on the CPU until an MSM uploads them");
                    self.device.replace_if_lost(&device);
                    DeviceCopy::default()
                }
            },
            None => DeviceCopy::default(),
        };
        Ok(ResidentG1 { bases: Arc::new(bases), on_device })
    }

    /// An MSM against a resident base set; `scalars` may be shorter than the set.
    pub fn msm_g1_resident(&self, set: &ResidentG1, scalars: &[Fr]) -> Result<G1Projective, MsmError> {
        self.msm_g1_resident_placed(set, scalars).map(|(sum, _)| sum)
    }

    /// [`Self::msm_g1_resident`], saying where it ran.
    pub fn msm_g1_resident_placed(
        &self,
        set: &ResidentG1,
        scalars: &[Fr],
    ) -> Result<(G1Projective, MsmPlacement), MsmError> {
        if scalars.len() > set.len() {
            return Err(MsmError::LengthMismatch { bases: set.len(), scalars: scalars.len() });
        }
        let on_device = |device: &Arc<dyn MsmDevice>, run: &RunOptions, n: usize| {
            let uploaded = set.on_device.on(device, || device.upload_g1(&set.bases))?;
            device.msm_g1_resident(&uploaded, &scalars[..n], run)
        };
        let on_cpu = |range: std::ops::Range<usize>| self.cpu.msm_g1(&set.bases[range.clone()], &scalars[range]);
        Ok(self.placed(Curve::G1, scalars.len(), on_device, on_cpu))
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

/// A device on the process's shared GPU context: the one place the GPU
/// backend is mapped to its implementation.
fn acquire_device() -> Result<Arc<dyn MsmDevice>, DeviceError> {
    Ok(Arc::new(gpu::GpuMsm::new(crate::gpu::GpuContext::shared()?)?))
}

fn device_slot(device: Option<Arc<dyn MsmDevice>>) -> DeviceSlot<dyn MsmDevice> {
    DeviceSlot::new("MSM", device, acquire_device)
}

#[cfg(all(test, feature = "gpu"))]
mod shared_msm_tests {
    use super::*;
    use ark_bn254::G2Projective;
    use ark_ec::{CurveGroup, PrimeGroup, VariableBaseMSM};
    use ark_std::UniformRand;
    use rand::SeedableRng;

    /// An engine on the shared device whose figures say both sides are
    /// equally fast, sharing parts of 16 points or more.
    fn even_engine() -> Option<MsmEngine> {
        crate::gpu::test_context()?;
        let mut engine = MsmEngine::new(Backend::Gpu).expect("a GPU engine");
        engine.share = Share::new(SharePolicy::Measured).with_min_part(16);
        Some(engine)
    }

    /// Every entry point shares an MSM of 64 points in halves (as the
    /// figures say), and each sum is arkworks' over all 64; a failed
    /// device part is recomputed on the CPU beside the CPU's part.
    #[test]
    fn shared_msms_sum_both_parts_on_every_entry_point() {
        let Some(engine) = even_engine() else { return };
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
        let n = 64;
        let g1: Vec<G1Affine> = G1Projective::normalize_batch(
            &(0..n).map(|_| G1Projective::generator() * Fr::rand(&mut rng)).collect::<Vec<_>>(),
        );
        let g2: Vec<G2Affine> = G2Projective::normalize_batch(
            &(0..n).map(|_| G2Projective::generator() * Fr::rand(&mut rng)).collect::<Vec<_>>(),
        );
        let scalars: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
        let expected_g1 = G1Projective::msm(&g1, &scalars).unwrap();
        let expected_g2 = G2Projective::msm(&g2, &scalars).unwrap();
        let (set_g1, set_g2) = (engine.upload_g1(g1.clone()).unwrap(), engine.upload_g2(g2.clone()).unwrap());
        let shared = MsmPlacement::Shared { cpu_points: n / 2 };
        for curve in [Curve::G1, Curve::G2] {
            engine.share.assume(curve, 1024, 1024);
        }
        assert_eq!(engine.msm_g1_placed(&g1, &scalars).unwrap(), (expected_g1, shared));
        engine.share.assume(Curve::G1, 1024, 1024);
        assert_eq!(engine.msm_g1_resident_placed(&set_g1, &scalars).unwrap(), (expected_g1, shared));
        assert_eq!(engine.msm_g2_placed(&g2, &scalars).unwrap(), (expected_g2, shared));
        engine.share.assume(Curve::G2, 1024, 1024);
        assert_eq!(engine.msm_g2_resident_placed(&set_g2, &scalars).unwrap(), (expected_g2, shared));
        // Fewer scalars than resident bases: the parts split the scalars.
        engine.share.assume(Curve::G1, 1024, 1024);
        let prefix = G1Projective::msm(&g1[..48], &scalars[..48]).unwrap();
        let (sum, placement) = engine.msm_g1_resident_placed(&set_g1, &scalars[..48]).unwrap();
        assert_eq!((sum, placement.cpu_share()), (prefix, 24));
        assert!(placement.on_device());

        engine.share.assume(Curve::G1, 1024, 1024);
        assert!(engine.inject_faults(FaultPlan::once_at(0)));
        assert_eq!(
            engine.msm_g1_resident_placed(&set_g1, &scalars).unwrap(),
            (expected_g1, MsmPlacement::CpuAfterFailure)
        );
        assert_eq!(engine.gpu_fallbacks(), 1);
    }

    /// A device part that panics (a kernel bug) unwinds to the caller, and
    /// its booking leaves the device's queue: a later MSM is not sent to the
    /// CPU for time the device no longer owes. Whole and shared alike.
    #[test]
    fn a_panicking_device_part_does_not_stay_in_the_queue() {
        let Some(engine) = even_engine() else { return };
        for (points, cpu_rate, what) in [(8, 1 << 30, "whole"), (64, 1024, "shared")] {
            engine.share.assume(Curve::G1, 1024, cpu_rate);
            let placement = engine.placed(Curve::G1, points, |_, _, n| Ok(n as u64), |r| r.len() as u64).1;
            assert_eq!(placement.cpu_share() > 0, what == "shared", "{what}: {placement:?}");
            engine.share.assume(Curve::G1, 1024, cpu_rate);
            let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                engine.placed(
                    Curve::G1,
                    points,
                    |_, _, _| -> Result<u64, DeviceError> { panic!("a kernel bug") },
                    |r| r.len() as u64,
                )
            }));
            assert!(unwound.is_err(), "{what}: the panic reaches the caller");
            assert_eq!(engine.share.queued(), 0, "{what}: the device's booking is released");
        }
    }
}

#[cfg(all(test, feature = "gpu"))]
mod device_loss_tests {
    use super::*;
    use ark_ec::{CurveGroup, PrimeGroup, VariableBaseMSM};
    use ark_std::UniformRand;
    use rand::SeedableRng;

    /// A device destroyed between MSMs (wgpu's `Device::destroy`: the
    /// device-lost callback fires, as for a driver reset) fails the next
    /// MSM without a panic; it is recomputed on the CPU with the same
    /// point, and the engine moves to a fresh device that runs the next.
    /// The destroyed device is a private one: the other GPU tests' shared
    /// device is untouched.
    #[test]
    fn a_destroyed_device_is_recomputed_on_the_cpu_and_replaced() {
        if crate::gpu::test_context().is_none() {
            return;
        }
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let bases: Vec<G1Affine> =
            (0..65).map(|_| (G1Projective::generator() * Fr::rand(&mut rng)).into_affine()).collect();
        let scalars: Vec<Fr> = (0..65).map(|_| Fr::rand(&mut rng)).collect();
        let expected = G1Projective::msm(&bases, &scalars).expect("equal lengths");

        let ctx = Arc::new(crate::gpu::GpuContext::new().expect("an adapter exists"));
        let engine = MsmEngine::on_context(ctx.clone()).expect("pipelines");
        assert_eq!(engine.msm_g1(&bases, &scalars).unwrap(), expected);
        assert_eq!(engine.gpu_fallbacks(), 0);

        ctx.device.destroy();
        let _ = ctx.device.poll(wgpu::PollType::Poll);
        assert!(ctx.is_lost(), "destroying the device fires its lost callback");
        assert_eq!(engine.msm_g1(&bases, &scalars).unwrap(), expected, "recomputed on the CPU");
        assert_eq!(engine.gpu_fallbacks(), 1);
        assert_eq!(engine.backend(), ResolvedBackend::Gpu, "moved to a fresh device");

        assert_eq!(engine.msm_g1(&bases, &scalars).unwrap(), expected);
        assert_eq!(engine.gpu_fallbacks(), 1, "the fresh device did the work");
    }
}
