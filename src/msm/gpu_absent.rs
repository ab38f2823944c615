//! The GPU MSM of a build without the `gpu` feature: it can never be made,
//! so an engine never holds one and every MSM runs on the CPU.

use std::convert::Infallible;
use std::sync::Arc;

use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};

use super::device::{DeviceBases, MsmDevice, RunOptions};
use crate::gpu::{GpuContext, GpuError};

/// Never constructed in this build.
pub struct GpuMsm {
    never: Infallible,
}

impl GpuMsm {
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self, GpuError> {
        Err(GpuError::NoAdapter(format!("no GPU MSM in this build ({})", ctx.describe())))
    }
}

impl MsmDevice for GpuMsm {
    fn describe(&self) -> String {
        match self.never {}
    }

    fn upload_g1(&self, _: &[G1Affine]) -> Result<DeviceBases, GpuError> {
        match self.never {}
    }

    fn msm_g1_resident(&self, _: &DeviceBases, _: &[Fr], _: &RunOptions) -> Result<G1Projective, GpuError> {
        match self.never {}
    }

    fn upload_g2(&self, _: &[G2Affine]) -> Result<DeviceBases, GpuError> {
        match self.never {}
    }

    fn msm_g2_resident(&self, _: &DeviceBases, _: &[Fr], _: &RunOptions) -> Result<G2Projective, GpuError> {
        match self.never {}
    }
}

impl crate::backend::LossAware for GpuMsm {
    fn is_lost(&self) -> bool {
        match self.never {}
    }
}
