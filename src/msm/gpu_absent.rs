//! The GPU MSM of a build without the `gpu` feature: it can never be made,
//! so an engine never holds one and every MSM runs on the CPU.

use std::convert::Infallible;
use std::sync::Arc;

use ark_bn254::{Fr, G1Affine, G1Projective};

use crate::gpu::{GpuContext, GpuError};

/// Never constructed in this build.
pub struct GpuMsm {
    never: Infallible,
}

/// Never constructed in this build.
pub struct GpuBases {
    never: Infallible,
}

impl GpuMsm {
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self, GpuError> {
        Err(GpuError::NoAdapter(format!("no GPU MSM in this build ({})", ctx.describe())))
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        match self.never {}
    }

    #[cfg(any(test, feature = "test-support"))]
    pub fn inject_faults(&self, _: u32) {
        match self.never {}
    }

    pub fn upload(&self, _: &[G1Affine]) -> Result<GpuBases, GpuError> {
        match self.never {}
    }

    pub fn msm(&self, _: &[G1Affine], _: &[Fr]) -> Result<G1Projective, GpuError> {
        match self.never {}
    }

    pub fn msm_resident(&self, set: &GpuBases, _: &[Fr]) -> Result<G1Projective, GpuError> {
        match set.never {}
    }
}
