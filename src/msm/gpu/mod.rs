//! GPU MSM backend in WGSL. (Being written; see issue 4.)

use std::sync::Arc;

use ark_bn254::{Fr, G1Affine, G1Projective};

use crate::gpu::{GpuContext, GpuError};

pub struct GpuMsm {
    _ctx: Arc<GpuContext>,
}

pub struct GpuBases;

impl GpuMsm {
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self, GpuError> {
        Ok(GpuMsm { _ctx: ctx })
    }

    pub fn msm(&self, _bases: &[G1Affine], _scalars: &[Fr]) -> Result<G1Projective, GpuError> {
        Err(GpuError::Dispatch { label: "msm".into(), reason: "GPU MSM kernels not written yet".into() })
    }

    pub fn upload(&self, _bases: &[G1Affine]) -> Result<GpuBases, GpuError> {
        Ok(GpuBases)
    }

    pub fn msm_resident(&self, _set: &GpuBases, _scalars: &[Fr]) -> Result<G1Projective, GpuError> {
        Err(GpuError::Dispatch { label: "msm".into(), reason: "GPU MSM kernels not written yet".into() })
    }
}
