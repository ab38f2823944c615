//! The seam between the MSM engine and an accelerator. The CPU is not a
//! device: it is always there, every device falls back to it, and the
//! engine drives it directly. A device is anything else that runs G1 and G2
//! MSMs; today that is wgpu (`gpu/`). Adding one is a file implementing
//! [`MsmDevice`] and a line in `acquire_device` (in the module root).
//!
//! The fallback policy lives in the engine's `backend::DeviceSlot`, the one
//! every kernel shares: a failed MSM is recomputed on the CPU, counted
//! (`MsmEngine::gpu_fallbacks`) and logged, and after a device loss the slot
//! acquires a fresh device (resident bases are uploaded again on their next
//! use) or the engine continues on the CPU.

use std::any::Any;
use std::sync::Arc;

use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};

use crate::backend::DeviceError;

/// Bases uploaded to one device, in that device's own form.
pub(crate) type DeviceBases = Arc<dyn Any + Send + Sync>;

/// How one device MSM goes (a test hook; the default is a plain run).
#[derive(Clone, Copy, Debug, Default)]
#[cfg_attr(not(feature = "gpu"), allow(dead_code))]
pub(crate) struct RunOptions {
    /// Fail with [`DeviceError::InjectedFault`] before this dispatch of the
    /// run (past the last: after every dispatch, before the readback).
    pub fail_before_step: Option<usize>,
}

/// An accelerator that runs G1 and G2 MSMs.
pub(crate) trait MsmDevice: crate::backend::LossAware {
    /// The adapter, for results and logs.
    fn describe(&self) -> String;

    /// Upload `bases` (already validated) to stay on the device.
    fn upload_g1(&self, bases: &[G1Affine]) -> Result<DeviceBases, DeviceError>;

    /// sum scalars[i] * set[i] over the first `scalars.len()` bases of a set
    /// this device uploaded.
    fn msm_g1_resident(&self, set: &DeviceBases, scalars: &[Fr], run: &RunOptions)
        -> Result<G1Projective, DeviceError>;

    /// sum scalars[i] * bases[i], uploading the bases for this call only.
    fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr], run: &RunOptions) -> Result<G1Projective, DeviceError> {
        let set = self.upload_g1(bases)?;
        self.msm_g1_resident(&set, scalars, run)
    }

    /// Upload G2 `bases` (already validated) to stay on the device.
    fn upload_g2(&self, bases: &[G2Affine]) -> Result<DeviceBases, DeviceError>;

    /// The G2 twin of [`MsmDevice::msm_g1_resident`].
    fn msm_g2_resident(&self, set: &DeviceBases, scalars: &[Fr], run: &RunOptions)
        -> Result<G2Projective, DeviceError>;

    /// The G2 twin of [`MsmDevice::msm_g1`].
    fn msm_g2(&self, bases: &[G2Affine], scalars: &[Fr], run: &RunOptions) -> Result<G2Projective, DeviceError> {
        let set = self.upload_g2(bases)?;
        self.msm_g2_resident(&set, scalars, run)
    }
}
