//! CPU MSM backend: our own rayon Pippenger, generic over BN254's G1 and G2.
//!
//! - GLV: each scalar splits into two ~128-bit halves against P and phi(P),
//!   halving the number of windows ([`glv`]).
//! - Signed digits: windows read as digits in [-2^(c-1), 2^(c-1)), so each
//!   window needs only 2^(c-1) buckets ([`digits`]).
//! - Batch-affine buckets: additions applied in batches sharing one
//!   inversion, with queued and projective fallbacks for collisions
//!   ([`batch_affine`], [`bucket`]); on CPUs with AVX-512 IFMA, eight
//!   additions at a time in radix 2^52, for G1 and G2 (`ifma`,
//!   `ifma_fq2`, on `crypto::ifma`'s lane field). A task with few buckets
//!   replicates them so that its batches stay full; each batch's one
//!   inversion is `crypto::inverse`'s divsteps.
//! - Bucket reduction in batched additions too: segments' running sums
//!   advancing side by side (`reduce`).
//! - Window size and task split from a cost model over size and threads
//!   ([`window`]), on one long-lived thread pool ([`pool`]).

mod batch_affine;
mod bucket;
mod digits;
mod field;
mod glv;
#[cfg(target_arch = "x86_64")]
mod ifma;
#[cfg(target_arch = "x86_64")]
mod ifma_fq2;
mod pippenger;
mod pool;
mod reduce;
mod wide;
mod window;

use std::sync::Arc;

use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::short_weierstrass::{Affine, Projective};
use rayon::prelude::*;
use rayon::ThreadPool;

pub use pippenger::MsmCurve;

/// The CPU MSM engine. Cheap to clone; all clones share one thread pool.
#[derive(Clone)]
pub struct CpuMsm {
    pool: Option<Arc<ThreadPool>>,
    window_bits: Option<u32>,
}

impl Default for CpuMsm {
    fn default() -> Self {
        CpuMsm::new()
    }
}

/// Bases prepared once for many MSMs: the bases and their endomorphism images.
pub struct PreparedBases<P: MsmCurve> {
    bases: Vec<Affine<P>>,
    endo: Vec<Affine<P>>,
}

impl<P: MsmCurve> PreparedBases<P> {
    pub fn len(&self) -> usize {
        self.bases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bases.is_empty()
    }

    pub fn bases(&self) -> &[Affine<P>] {
        &self.bases
    }
}

impl CpuMsm {
    /// An engine on the process-wide MSM pool (as many threads as rayon's global pool).
    pub fn new() -> Self {
        CpuMsm { pool: pool::shared(), window_bits: None }
    }

    /// An engine with its own pool of `threads` threads, kept for the engine's lifetime.
    pub fn with_threads(threads: usize) -> Self {
        CpuMsm { pool: pool::build(threads), window_bits: None }
    }

    /// Force the window size (2..=16 bits) instead of the cost model's choice.
    pub fn with_window_bits(mut self, bits: u32) -> Self {
        self.window_bits = Some(bits.clamp(2, 16));
        self
    }

    /// Threads the MSMs run on.
    pub fn threads(&self) -> usize {
        match &self.pool {
            Some(pool) => pool.current_num_threads(),
            None => rayon::current_num_threads(),
        }
    }

    pub fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> G1Projective {
        self.msm(bases, scalars)
    }

    pub fn msm_g2(&self, bases: &[G2Affine], scalars: &[Fr]) -> G2Projective {
        self.msm(bases, scalars)
    }

    /// sum_i scalars[i] * bases[i] over the common prefix of both slices.
    pub fn msm<P: MsmCurve>(&self, bases: &[Affine<P>], scalars: &[Fr]) -> Projective<P> {
        let n = bases.len().min(scalars.len());
        self.run(|threads| {
            let endo = endomorphism_images(&bases[..n]);
            pippenger::msm(&bases[..n], &endo, &scalars[..n], threads, self.window_bits)
        })
    }

    /// Keep `bases` with their endomorphism images for repeated MSMs.
    pub fn prepare<P: MsmCurve>(&self, bases: Vec<Affine<P>>) -> PreparedBases<P> {
        let endo = self.run(|_| endomorphism_images(&bases));
        PreparedBases { bases, endo }
    }

    /// An MSM against the first `scalars.len()` prepared bases (extra scalars are ignored).
    pub fn msm_prepared<P: MsmCurve>(&self, prepared: &PreparedBases<P>, scalars: &[Fr]) -> Projective<P> {
        self.msm_prepared_from(prepared, 0, scalars)
    }

    /// An MSM against the prepared bases from `first` on, one a scalar
    /// (bases past the set's end are none: their scalars are ignored).
    pub fn msm_prepared_from<P: MsmCurve>(
        &self,
        prepared: &PreparedBases<P>,
        first: usize,
        scalars: &[Fr],
    ) -> Projective<P> {
        let first = first.min(prepared.len());
        let end = first + (prepared.len() - first).min(scalars.len());
        let (bases, endo) = (&prepared.bases[first..end], &prepared.endo[first..end]);
        self.run(|threads| pippenger::msm(bases, endo, &scalars[..end - first], threads, self.window_bits))
    }

    fn run<R: Send>(&self, job: impl FnOnce(usize) -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(|| job(pool.current_num_threads())),
            None => job(rayon::current_num_threads()),
        }
    }
}

fn endomorphism_images<P: MsmCurve>(bases: &[Affine<P>]) -> Vec<Affine<P>> {
    bases.par_iter().with_min_len(4096).map(glv::endomorphism).collect()
}
