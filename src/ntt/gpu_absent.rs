//! The GPU NTT of a build without the `gpu` feature: it can never be made,
//! so an engine never holds one and every transform runs on the CPU.

use std::convert::Infallible;
use std::sync::Arc;

use ark_bn254::Fr;

use super::{Ntt, NttError, NttOp};
use crate::gpu::{GpuContext, GpuError};

/// Never constructed in this build.
pub struct GpuNtt {
    never: Infallible,
}

impl GpuNtt {
    pub fn new(ctx: Arc<GpuContext>) -> Result<GpuNtt, GpuError> {
        Err(GpuError::NoAdapter(format!("no GPU NTT in this build ({})", ctx.describe())))
    }

    pub fn describe(&self) -> String {
        match self.never {}
    }

    pub fn apply_counted(
        &self,
        _: &Ntt,
        _: NttOp,
        _: &mut [&mut [Fr]],
        _: Option<usize>,
        _: &mut usize,
    ) -> Result<(), NttError> {
        match self.never {}
    }
}

impl crate::backend::LossAware for GpuNtt {
    fn is_lost(&self) -> bool {
        match self.never {}
    }
}
