//! The GPU hasher of a build without the `gpu` feature: it can never be
//! made, so a pool never holds one and every flush runs on the CPU.

use std::convert::Infallible;
use std::sync::Arc;

use ark_bn254::Fr;

use super::batch::PackedBatch;
use super::device::{HashDevice, RunOptions};
use crate::crypto::poseidon::PoseidonBatch;
use crate::gpu::{GpuContext, GpuError};

/// Never constructed in this build.
pub struct GpuHasher {
    never: Infallible,
}

impl GpuHasher {
    pub fn shared() -> Result<Arc<GpuHasher>, GpuError> {
        Err(GpuContext::shared().err().unwrap_or_else(|| GpuError::NoAdapter("no GPU support".into())))
    }
}

impl HashDevice for GpuHasher {
    fn describe(&self) -> String {
        match self.never {}
    }

    fn hash_batch(&self, _: &PackedBatch, _: &mut [[u8; 32]], _: &RunOptions) -> Result<(), GpuError> {
        match self.never {}
    }

    fn poseidon(&self, _: &PoseidonBatch, _: &mut [Fr], _: &RunOptions) -> Result<(), GpuError> {
        match self.never {}
    }

    fn merkle_root(&self, _: &[[u8; 32]], _: &RunOptions) -> Result<[u8; 32], GpuError> {
        match self.never {}
    }
}

impl crate::backend::LossAware for GpuHasher {
    fn is_lost(&self) -> bool {
        match self.never {}
    }
}
