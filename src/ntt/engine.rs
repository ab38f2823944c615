//! The NTT engine: the prover's transforms on the CPU plan or the GPU, with
//! the backend layer's one fallback policy (the MSM engine's and the hash
//! pool's): a transform the device fails is recomputed on the CPU, counted
//! and logged, and after a device loss a fresh device is acquired (or the
//! CPU carries on). Lengths and shifts are checked before any device work,
//! so a bad call fails the same way on every backend.

use std::sync::Arc;

use ark_bn254::Fr;
use rayon::prelude::*;

use super::gpu::GpuNtt;
use super::{Ntt, NttError, NttOp};
#[cfg(any(test, feature = "test-support"))]
use crate::backend::FaultPlan;
use crate::backend::{Backend, DeviceError, DeviceSlot, ResolvedBackend};

pub struct NttEngine {
    /// The device (`None` is the CPU), with the fallback policy.
    device: DeviceSlot<GpuNtt>,
}

impl NttEngine {
    /// An engine for `backend`: `Gpu` without a usable adapter is an error,
    /// `Auto` warns (once per process) and uses the CPU.
    pub fn new(backend: Backend) -> Result<NttEngine, NttError> {
        let (resolved, _) = crate::gpu::resolve(backend).map_err(NttError::Device)?;
        let device = match resolved {
            ResolvedBackend::Cpu => None,
            ResolvedBackend::Gpu => Some(acquire().map_err(NttError::Device)?),
        };
        Ok(NttEngine::holding(device))
    }

    /// An engine on `ctx`'s device (a chosen adapter, or a private device a
    /// test can lose); after a loss it moves to the process's shared device.
    pub fn on_context(ctx: Arc<crate::gpu::GpuContext>) -> Result<NttEngine, NttError> {
        Ok(NttEngine::holding(Some(Arc::new(GpuNtt::new(ctx).map_err(NttError::Device)?))))
    }

    pub fn cpu() -> NttEngine {
        NttEngine::holding(None)
    }

    fn holding(device: Option<Arc<GpuNtt>>) -> NttEngine {
        NttEngine { device: DeviceSlot::new("NTT", device, acquire) }
    }

    /// An engine on the backend another engine resolved to (the prover's
    /// MSM engine): the NTTs beside the MSMs. A device that cannot run them
    /// leaves them on the CPU, with a warning.
    pub fn beside(backend: ResolvedBackend) -> NttEngine {
        match backend {
            ResolvedBackend::Cpu => NttEngine::cpu(),
            ResolvedBackend::Gpu => NttEngine::new(Backend::Gpu).unwrap_or_else(|err| {
                tracing::warn!(%err, "the GPU runs MSMs but not NTTs: the quotient runs on the CPU");
                NttEngine::cpu()
            }),
        }
    }

    /// Where transforms run now.
    pub fn backend(&self) -> ResolvedBackend {
        self.device.backend()
    }

    /// The adapter, when the engine has one.
    pub fn device(&self) -> Option<String> {
        self.device.current().map(|device| device.describe())
    }

    /// Device transforms recomputed on the CPU over the engine's life.
    pub fn gpu_fallbacks(&self) -> u64 {
        self.device.fallbacks()
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Make the next device runs fail as `plan` says (a step is a dispatch).
    /// Returns false (and does nothing) without a device.
    pub fn inject_faults(&self, plan: FaultPlan) -> bool {
        self.device.arm(plan)
    }

    /// `op` on every slice of `batch`, each of the plan's length; returns
    /// where it ran (the CPU when the device failed and the CPU recomputed).
    /// A transform past the device's storage binding limit is split over
    /// several bindings on the device.
    pub fn apply(&self, plan: &Ntt, op: NttOp, batch: &mut [&mut [Fr]]) -> Result<ResolvedBackend, NttError> {
        for values in batch.iter() {
            plan.check_op(op, values)?;
        }
        // Slices the device wrote before it failed are not transformed again.
        let mut done = 0;
        if let Some(device) = self.device.current() {
            match device.apply_counted(plan, op, batch, self.device.next_fault(), &mut done) {
                Ok(()) => return Ok(ResolvedBackend::Gpu),
                Err(NttError::Device(err)) => self.device.fell_back(&err, &device, plan.len() * (batch.len() - done)),
                Err(other) => return Err(other),
            }
        }
        batch[done..].par_iter_mut().try_for_each(|values| plan.apply(op, values))?;
        Ok(ResolvedBackend::Cpu)
    }
}

fn acquire() -> Result<Arc<GpuNtt>, DeviceError> {
    Ok(Arc::new(GpuNtt::new(crate::gpu::GpuContext::shared()?)?))
}

#[cfg(all(test, feature = "gpu"))]
mod tests {
    use ark_ff::{AdditiveGroup, Field, UniformRand};
    use rand::SeedableRng;

    use super::*;

    fn random(n: usize, rng: &mut rand_chacha::ChaCha20Rng) -> Vec<Fr> {
        (0..n).map(|_| Fr::rand(rng)).collect()
    }

    /// A device destroyed between transforms (wgpu's `Device::destroy`,
    /// which fires the device-lost callback) fails the next one without a
    /// panic; it is recomputed on the CPU, and the engine moves to a fresh
    /// device that runs the one after. The destroyed device is private.
    #[test]
    fn a_destroyed_device_is_recomputed_on_the_cpu_and_replaced() {
        if crate::gpu::test_context().is_none() {
            return;
        }
        let ctx = Arc::new(crate::gpu::GpuContext::new().expect("an adapter exists"));
        let engine = NttEngine::on_context(ctx.clone()).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6);
        let plan = Ntt::new(64).unwrap();
        let values = random(64, &mut rng);
        let mut expected = values.clone();
        plan.apply(NttOp::Forward, &mut expected).unwrap();
        let run = |engine: &NttEngine| {
            let mut got = values.clone();
            let ran = engine.apply(&plan, NttOp::Forward, &mut [&mut got[..]]).unwrap();
            assert_eq!(got, expected);
            ran
        };
        assert_eq!(run(&engine), ResolvedBackend::Gpu);
        ctx.device.destroy();
        let _ = ctx.device.poll(wgpu::PollType::Poll);
        assert!(ctx.is_lost(), "destroying the device fires its lost callback");
        assert_eq!(run(&engine), ResolvedBackend::Cpu, "recomputed on the CPU");
        assert_eq!(engine.gpu_fallbacks(), 1);
        assert_eq!(run(&engine), ResolvedBackend::Gpu, "a fresh device");
        assert_eq!(engine.gpu_fallbacks(), 1);
    }

    /// Batches of transforms on the GPU engine equal the CPU plan's, every
    /// op, including batches split over several bindings.
    #[test]
    fn gpu_batches_equal_the_cpu_plan() {
        let Some(_ctx) = crate::gpu::test_context() else { return };
        let engine = NttEngine::new(Backend::Gpu).unwrap();
        assert_eq!(engine.backend(), ResolvedBackend::Gpu);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let g = Fr::from(11u64);
        for log in [1u32, 3, 8] {
            let plan = Ntt::new(1 << log).unwrap();
            for op in
                [NttOp::Forward, NttOp::Inverse, NttOp::CosetForward(g), NttOp::CosetInverse(g), NttOp::ToCoset(g)]
            {
                let inputs: Vec<Vec<Fr>> = (0..3).map(|_| random(plan.len(), &mut rng)).collect();
                let mut expected = inputs.clone();
                for values in &mut expected {
                    plan.apply(op, values).unwrap();
                }
                let mut ours = inputs.clone();
                let mut batch: Vec<&mut [Fr]> = ours.iter_mut().map(|v| v.as_mut_slice()).collect();
                assert_eq!(engine.apply(&plan, op, &mut batch).unwrap(), ResolvedBackend::Gpu);
                assert_eq!(ours, expected, "{op:?}, n = {}", plan.len());
                // One transform per binding: three groups.
                let device = engine.device.current().unwrap();
                let mut split = inputs;
                let mut batch: Vec<&mut [Fr]> = split.iter_mut().map(|v| v.as_mut_slice()).collect();
                device.with_binding_limit((plan.len() * 32) as u64).apply(&plan, op, &mut batch, None).unwrap();
                assert_eq!(split, expected, "{op:?} split, n = {}", plan.len());
            }
        }
        assert_eq!(engine.gpu_fallbacks(), 0);
    }

    /// An engine on the shared test device with its binding limit lowered
    /// to `bytes` (None without an adapter).
    fn engine_with_binding_limit(bytes: u64) -> Option<NttEngine> {
        let device = GpuNtt::new(crate::gpu::test_context()?).unwrap().with_binding_limit(bytes);
        Some(NttEngine::holding(Some(Arc::new(device))))
    }

    /// A transform four times the (lowered) binding limit runs on the
    /// device, split over four bindings, and equals the CPU plan; a fault
    /// in one of its passes is recomputed on the CPU.
    #[test]
    fn transforms_past_the_binding_limit_run_split_on_the_device() {
        let Some(engine) = engine_with_binding_limit(64 * 32) else { return };
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
        let plan = Ntt::new(256).unwrap();
        let input = random(256, &mut rng);
        for op in [NttOp::Forward, NttOp::ToCoset(Fr::from(5u64))] {
            let mut expected = input.clone();
            plan.apply(op, &mut expected).unwrap();
            let mut values = input.clone();
            assert_eq!(engine.apply(&plan, op, &mut [&mut values]).unwrap(), ResolvedBackend::Gpu);
            assert_eq!(values, expected, "{op:?}");
            assert!(engine.inject_faults(FaultPlan::once_at(5)));
            let mut values = input.clone();
            assert_eq!(engine.apply(&plan, op, &mut [&mut values]).unwrap(), ResolvedBackend::Cpu);
            assert_eq!(values, expected, "{op:?} after a fault");
        }
        assert_eq!(engine.gpu_fallbacks(), 2);
    }

    /// A batch of split transforms (the prover's three) that the device
    /// fails in its second: the first, already written, is not transformed
    /// again on the CPU; the other two are.
    #[test]
    fn a_batch_failing_midway_recomputes_only_what_the_device_did_not_write() {
        let Some(engine) = engine_with_binding_limit(64 * 32) else { return };
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let plan = Ntt::new(256).unwrap();
        let op = NttOp::ToCoset(Fr::from(5u64));
        let inputs: Vec<Vec<Fr>> = (0..3).map(|_| random(256, &mut rng)).collect();
        let mut expected = inputs.clone();
        for values in &mut expected {
            plan.apply(op, values).unwrap();
        }
        // Four chunks of 64: 4 cross dispatches, 4 chunks of 13 steps, 4
        // cross dispatches: 60 a transform. Step 70 is in the second.
        assert!(engine.inject_faults(FaultPlan::once_at(70)));
        let mut ours = inputs.clone();
        let mut batch: Vec<&mut [Fr]> = ours.iter_mut().map(|v| v.as_mut_slice()).collect();
        assert_eq!(engine.apply(&plan, op, &mut batch).unwrap(), ResolvedBackend::Cpu);
        assert_eq!(ours, expected);
        assert_eq!(engine.gpu_fallbacks(), 1);
        // Past the last dispatch of all three: the last one's readback.
        assert!(engine.inject_faults(FaultPlan::once_at(180)));
        let mut ours = inputs;
        let mut batch: Vec<&mut [Fr]> = ours.iter_mut().map(|v| v.as_mut_slice()).collect();
        assert_eq!(engine.apply(&plan, op, &mut batch).unwrap(), ResolvedBackend::Cpu);
        assert_eq!(ours, expected);
        assert_eq!(engine.gpu_fallbacks(), 2);
    }

    /// A device fault before any dispatch, between stages or before the
    /// readback: the CPU recomputes, the result is the same and counted,
    /// and the engine says the CPU ran it; bad input fails the same way as
    /// on the CPU, before any device work.
    #[test]
    fn device_faults_are_recomputed_on_the_cpu() {
        let Some(_ctx) = crate::gpu::test_context() else { return };
        let engine = NttEngine::new(Backend::Gpu).unwrap();
        let plan = Ntt::new(64).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6);
        let input = random(64, &mut rng);
        let mut expected = input.clone();
        plan.to_coset(&mut expected, Fr::from(3u64)).unwrap();
        for (i, at_step) in [0usize, 4, 9, usize::MAX].into_iter().enumerate() {
            assert!(engine.inject_faults(FaultPlan::once_at(at_step)));
            let mut values = input.clone();
            assert_eq!(
                engine.apply(&plan, NttOp::ToCoset(Fr::from(3u64)), &mut [&mut values]).unwrap(),
                ResolvedBackend::Cpu
            );
            assert_eq!(values, expected, "fault before step {at_step}");
            assert_eq!(engine.gpu_fallbacks(), i as u64 + 1);
        }
        let mut values = input.clone();
        assert_eq!(
            engine.apply(&plan, NttOp::ToCoset(Fr::from(3u64)), &mut [&mut values]).unwrap(),
            ResolvedBackend::Gpu
        );
        assert_eq!(values, expected, "the plan is spent: the GPU again");
        assert_eq!(
            engine.apply(&plan, NttOp::Forward, &mut [&mut [Fr::ONE; 8]]),
            Err(NttError::Length { plan: 64, values: 8 })
        );
        assert_eq!(engine.apply(&plan, NttOp::ToCoset(Fr::ZERO), &mut [&mut values]), Err(NttError::ZeroShift));
        assert_eq!(engine.gpu_fallbacks(), 4);
    }
}
