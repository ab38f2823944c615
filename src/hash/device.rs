//! The seam between the hash pool and an accelerator. The CPU is not a
//! device: it is always there, it is what every device falls back to, and
//! the pool drives it directly (`cpu.rs`). A device is anything else that
//! can hash a packed batch; today that is wgpu (`gpu.rs`). Adding one (CUDA,
//! Metal without wgpu) is a file implementing [`HashDevice`] and an arm in
//! `acquire` (in the module root).
//!
//! The fallback policy lives in the pool's `backend::DeviceSlot`, the one
//! every kernel shares: a failed run is recomputed on the CPU, counted
//! (`HashPool::gpu_fallbacks`) and logged, and after a device loss the slot
//! acquires a fresh device or the pool continues on the CPU.

use ark_bn254::Fr;

use super::batch::PackedBatch;
use crate::backend::DeviceError;
use crate::crypto::poseidon::PoseidonBatch;

/// How one device run goes (test hooks; the default is a plain run).
#[derive(Clone, Copy, Debug, Default)]
#[cfg_attr(not(feature = "gpu"), allow(dead_code))]
pub(crate) struct RunOptions {
    /// Fail with [`DeviceError::InjectedFault`] before this step (segment;
    /// of a Poseidon flush, its segment too).
    pub fail_before_step: Option<usize>,
    /// At most this many messages per segment.
    pub max_segment_jobs: Option<usize>,
}

/// An accelerator that hashes packed batches.
pub(crate) trait HashDevice: crate::backend::LossAware {
    /// The adapter, for results and logs.
    fn describe(&self) -> String;

    /// Every job of `batch` into `out` (request order, one slot per job);
    /// on an error `out` is garbage and the caller recomputes it.
    fn hash_batch(&self, batch: &PackedBatch, out: &mut [[u8; 32]], run: &RunOptions) -> Result<(), DeviceError>;

    /// Every Poseidon request of `batch` into `out` (filing order, one slot
    /// per request); on an error `out` is garbage and the caller recomputes it.
    fn poseidon(&self, batch: &PoseidonBatch, out: &mut [Fr], run: &RunOptions) -> Result<(), DeviceError>;

    /// The Merkle root of `leaves` (the rules of `HashPool::merkle_root`).
    fn merkle_root(&self, leaves: &[[u8; 32]], run: &RunOptions) -> Result<[u8; 32], DeviceError>;
}
