//! The GPU hasher of a build without the `gpu` feature: it can never be
//! made, so a pool never holds one and every flush runs on the CPU.

use std::convert::Infallible;
use std::sync::Arc;

use super::batch::PackedBatch;
use super::GpuRunOptions;
use crate::gpu::{GpuContext, GpuError};

/// Never constructed in this build.
pub struct GpuHasher {
    never: Infallible,
}

impl GpuHasher {
    pub fn shared() -> Result<Arc<GpuHasher>, GpuError> {
        Err(GpuContext::shared().err().unwrap_or_else(|| GpuError::NoAdapter("no GPU support".into())))
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        match self.never {}
    }

    pub(crate) fn hash_batch(&self, _: &PackedBatch, _: &mut [[u8; 32]], _: &GpuRunOptions) -> Result<(), GpuError> {
        match self.never {}
    }

    pub(crate) fn merkle_root(&self, _: &[[u8; 32]], _: &GpuRunOptions) -> Result<[u8; 32], GpuError> {
        match self.never {}
    }
}
