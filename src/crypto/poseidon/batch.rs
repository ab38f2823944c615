//! Many Poseidon hashes at once: requests (a domain and its inputs) filed
//! into one flat batch, then hashed across rayon threads, eight sponges per
//! AVX-512 IFMA instruction stream where the processor has it, four per
//! AVX2 stream where it has only that, otherwise one [`super::hash`] after
//! another on each thread. Results are in filing order and bit-identical to
//! [`super::hash`] on every kernel.

use ark_bn254::Fr;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU8, Ordering};

use super::{capacity_tag, hash, HashDomain, RATE};

/// The most sponges a lane kernel hashes together.
#[cfg(target_arch = "x86_64")]
use super::lanes::MAX_LANES;
#[cfg(not(target_arch = "x86_64"))]
const MAX_LANES: usize = 8;

/// How a batch's sponges run on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoseidonKernel {
    /// Eight sponges per instruction stream, on AVX-512 IFMA.
    Ifma,
    /// Four sponges per instruction stream, on AVX2.
    Avx2,
    /// One sponge at a time (any processor).
    Scalar,
}

impl PoseidonKernel {
    /// Every kernel, fastest first.
    pub const ALL: [PoseidonKernel; 3] = [PoseidonKernel::Ifma, PoseidonKernel::Avx2, PoseidonKernel::Scalar];

    /// The kernel new pools use: the one [`PoseidonKernel::prefer`] set
    /// (`crate::tuning`: `CVM_POSEIDON_KERNEL`, to compare them), else the
    /// fastest this processor runs.
    pub fn detect() -> PoseidonKernel {
        match PREFERRED.load(Ordering::Relaxed) {
            1 => PoseidonKernel::Ifma,
            2 => PoseidonKernel::Avx2,
            3 => PoseidonKernel::Scalar,
            _ => PoseidonKernel::ALL.into_iter().find(|k| k.is_supported()).unwrap_or(PoseidonKernel::Scalar),
        }
    }

    /// Make `kernel` the one new pools use (None: the fastest); a kernel
    /// this processor lacks is an error.
    pub fn prefer(kernel: Option<PoseidonKernel>) -> Result<(), String> {
        let code = match kernel {
            None => 0,
            Some(k) if !k.is_supported() => return Err(format!("this processor cannot run the {k} kernel")),
            Some(PoseidonKernel::Ifma) => 1,
            Some(PoseidonKernel::Avx2) => 2,
            Some(PoseidonKernel::Scalar) => 3,
        };
        PREFERRED.store(code, Ordering::Relaxed);
        Ok(())
    }

    pub fn is_supported(self) -> bool {
        match self {
            PoseidonKernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            PoseidonKernel::Ifma => crate::crypto::ifma::supported(),
            #[cfg(target_arch = "x86_64")]
            PoseidonKernel::Avx2 => crate::crypto::avx2::supported(),
            #[cfg(not(target_arch = "x86_64"))]
            PoseidonKernel::Ifma | PoseidonKernel::Avx2 => false,
        }
    }

    /// Sponges per instruction stream.
    fn lanes(self) -> usize {
        match self {
            PoseidonKernel::Ifma => 8,
            PoseidonKernel::Avx2 => 4,
            PoseidonKernel::Scalar => 1,
        }
    }
}

/// The kernel [`PoseidonKernel::prefer`] chose (0: none, the fastest).
static PREFERRED: AtomicU8 = AtomicU8::new(0);

impl std::str::FromStr for PoseidonKernel {
    type Err = String;

    fn from_str(name: &str) -> Result<PoseidonKernel, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "avx512-ifma" | "ifma" => Ok(PoseidonKernel::Ifma),
            "avx2" => Ok(PoseidonKernel::Avx2),
            "scalar" => Ok(PoseidonKernel::Scalar),
            other => Err(format!("unknown Poseidon kernel {other:?}: avx512-ifma, avx2 or scalar")),
        }
    }
}

impl std::fmt::Display for PoseidonKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PoseidonKernel::Ifma => "avx512-ifma",
            PoseidonKernel::Avx2 => "avx2",
            PoseidonKernel::Scalar => "scalar",
        })
    }
}

#[derive(Clone, Copy, Debug)]
struct Job {
    domain: HashDomain,
    start: usize,
    len: usize,
}

impl Job {
    /// Permutations its sponge runs: one per rate-sized chunk, at least one.
    fn permutations(&self) -> usize {
        self.len.div_ceil(RATE).max(1)
    }
}

/// Poseidon requests in filing order, their inputs in one buffer.
#[derive(Clone, Debug, Default)]
pub struct PoseidonBatch {
    jobs: Vec<Job>,
    inputs: Vec<Fr>,
}

/// Requests per rayon task: enough lane groups that a task's overhead is
/// noise against its ~30 µs per lane group.
const TASK_REQUESTS: usize = 64;

impl PoseidonBatch {
    /// File Poseidon(`inputs`) under `domain`; returns its index in the batch.
    pub fn push(&mut self, domain: HashDomain, inputs: &[Fr]) -> usize {
        self.jobs.push(Job { domain, start: self.inputs.len(), len: inputs.len() });
        self.inputs.extend_from_slice(inputs);
        self.jobs.len() - 1
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    pub fn clear(&mut self) {
        self.jobs.clear();
        self.inputs.clear();
    }

    /// Input elements of every request together.
    pub fn input_len(&self) -> usize {
        self.inputs.len()
    }

    /// File every request of `other` after this batch's, in its order
    /// (taking its buffers when this batch is empty).
    pub fn append(&mut self, other: PoseidonBatch) {
        if self.is_empty() {
            *self = other;
            return;
        }
        let base = self.inputs.len();
        self.jobs.extend(other.jobs.iter().map(|job| Job { start: job.start + base, ..*job }));
        self.inputs.extend_from_slice(&other.inputs);
    }

    /// Make room for `requests` more requests of `inputs` elements in all.
    pub fn reserve(&mut self, requests: usize, inputs: usize) {
        self.jobs.reserve(requests);
        self.inputs.reserve(inputs);
    }

    /// Each request's capacity element (its domain and arity) and the
    /// range of its inputs in [`Self::inputs`], in filing order.
    pub fn requests(&self) -> impl Iterator<Item = (Fr, std::ops::Range<usize>)> + '_ {
        self.jobs.iter().map(|job| (capacity_tag(job.domain, job.len), job.start..job.start + job.len))
    }

    /// Every request's inputs, one after another.
    pub fn inputs(&self) -> &[Fr] {
        &self.inputs
    }

    fn inputs_of(&self, job: &Job) -> &[Fr] {
        &self.inputs[job.start..job.start + job.len]
    }

    /// Every request's hash, in filing order.
    pub fn hash(&self, kernel: PoseidonKernel) -> Vec<Fr> {
        let mut out = vec![Fr::from(0u64); self.len()];
        self.hash_into(kernel, &mut out);
        out
    }

    /// Every request's hash into `out` (one slot per request).
    ///
    /// # Panics
    /// If `out` has not one slot per request, or the processor cannot run `kernel`.
    pub fn hash_into(&self, kernel: PoseidonKernel, out: &mut [Fr]) {
        assert_eq!(out.len(), self.len(), "one output slot per Poseidon request");
        assert!(kernel.is_supported(), "this processor cannot run the {kernel} Poseidon kernel");
        match kernel {
            PoseidonKernel::Scalar => out
                .par_iter_mut()
                .zip(self.jobs.par_iter())
                .with_min_len(TASK_REQUESTS / 8)
                .for_each(|(slot, job)| *slot = hash(job.domain, self.inputs_of(job))),
            PoseidonKernel::Ifma | PoseidonKernel::Avx2 => self.hash_lanes(kernel, out),
        }
    }

    /// A lane group of sponges at a time. Lanes of one group run as many
    /// permutations as the longest, so requests are grouped by their
    /// permutation count first (in a batch of one shape, as the executor's,
    /// nothing moves).
    fn hash_lanes(&self, kernel: PoseidonKernel, out: &mut [Fr]) {
        let first = self.jobs.first().map(Job::permutations);
        if self.jobs.iter().all(|job| Some(job.permutations()) == first) {
            let order: Vec<usize> = (0..self.len()).collect();
            return self.hash_in_order(kernel, &order, out);
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| self.jobs[i].permutations());
        let mut sorted = vec![Fr::from(0u64); self.len()];
        self.hash_in_order(kernel, &order, &mut sorted);
        for (&i, value) in order.iter().zip(sorted) {
            out[i] = value;
        }
    }

    /// `out[k]` = the hash of request `order[k]`.
    fn hash_in_order(&self, kernel: PoseidonKernel, order: &[usize], out: &mut [Fr]) {
        let lanes = kernel.lanes();
        out.par_chunks_mut(TASK_REQUESTS).zip(order.par_chunks(TASK_REQUESTS)).for_each(|(out, order)| {
            for (out, group) in out.chunks_mut(lanes).zip(order.chunks(lanes)) {
                out.copy_from_slice(&self.hash_group(kernel, group)[..group.len()]);
            }
        });
    }

    /// The hashes of up to a lane group of requests (a short group repeats
    /// its first; the slots past the kernel's lanes are left zero).
    #[cfg(target_arch = "x86_64")]
    fn hash_group(&self, kernel: PoseidonKernel, group: &[usize]) -> [Fr; MAX_LANES] {
        let jobs: [Job; MAX_LANES] = std::array::from_fn(|lane| self.jobs[*group.get(lane).unwrap_or(&group[0])]);
        let capacity = jobs.map(|job| capacity_tag(job.domain, job.len));
        let squeeze_at = jobs.map(|job| job.permutations() - 1);
        let permutations = squeeze_at.iter().max().map_or(1, |last| last + 1);
        let chunk = |j: usize, lane: usize| {
            let inputs = self.inputs_of(&jobs[lane]);
            let mut pair = [Fr::from(0u64); 2];
            for (slot, x) in pair.iter_mut().zip(inputs.iter().skip(j * RATE)) {
                *slot = *x;
            }
            pair
        };
        // SAFETY: `hash_into` checked that this processor runs `kernel`.
        unsafe {
            match kernel {
                PoseidonKernel::Ifma => super::lanes::sponge_ifma(&capacity, permutations, &squeeze_at, chunk),
                _ => super::lanes::sponge_avx2(&capacity, permutations, &squeeze_at, chunk),
            }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn hash_group(&self, _kernel: PoseidonKernel, _group: &[usize]) -> [Fr; MAX_LANES] {
        unreachable!("the lane kernels are never supported off x86-64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{AdditiveGroup, Field, UniformRand};
    use rand::SeedableRng;

    fn kernels() -> Vec<PoseidonKernel> {
        let all = PoseidonKernel::ALL;
        let supported: Vec<_> = all.into_iter().filter(|k| k.is_supported()).collect();
        if supported.len() < all.len() {
            eprintln!("SKIPPED: this CPU lacks AVX-512 IFMA or AVX2; a lane kernel is untested here");
        }
        supported
    }

    fn domains() -> [HashDomain; 4] {
        [HashDomain::Commitment, HashDomain::NullifierKey, HashDomain::Nullifier, HashDomain::Logic]
    }

    #[test]
    fn every_kernel_matches_the_single_hash_on_mixed_lengths_and_edges() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        let edges = [Fr::ZERO, Fr::ONE, -Fr::ONE, -Fr::ONE - Fr::ONE];
        let mut batch = PoseidonBatch::default();
        let mut expected = Vec::new();
        // Lengths 0 to 9 (1 to 5 permutations) interleaved, so lane groups
        // mix lengths before sorting, and counts that leave short groups.
        for i in 0..203 {
            let len = (i * 7) % 10;
            let inputs: Vec<Fr> =
                (0..len).map(|j| if (i + j) % 5 == 0 { edges[(i + j) % 4] } else { Fr::rand(&mut rng) }).collect();
            let domain = domains()[i % 4];
            assert_eq!(batch.push(domain, &inputs), i);
            expected.push(hash(domain, &inputs));
        }
        for kernel in kernels() {
            assert_eq!(batch.hash(kernel), expected, "{kernel}");
        }
    }

    #[test]
    fn an_appended_batch_hashes_as_if_filed_after_the_first() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(13);
        let (mut first, mut second, mut whole) = Default::default();
        for i in 0..40usize {
            let inputs: Vec<Fr> = (0..(i % 6)).map(|_| Fr::rand(&mut rng)).collect();
            let part: &mut PoseidonBatch = if i < 17 { &mut first } else { &mut second };
            part.push(domains()[i % 4], &inputs);
            PoseidonBatch::push(&mut whole, domains()[i % 4], &inputs);
        }
        first.append(second);
        assert_eq!((first.len(), first.input_len()), (whole.len(), whole.input_len()));
        for kernel in kernels() {
            assert_eq!(first.hash(kernel), whole.hash(kernel), "{kernel}");
        }
    }

    #[test]
    fn one_shape_batches_of_every_small_size_match() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
        for n in [0usize, 1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 130] {
            let mut batch = PoseidonBatch::default();
            let mut expected = Vec::new();
            for _ in 0..n {
                let x = [Fr::rand(&mut rng)];
                batch.push(HashDomain::NullifierKey, &x);
                expected.push(hash(HashDomain::NullifierKey, &x));
            }
            for kernel in kernels() {
                assert_eq!(batch.hash(kernel), expected, "{n} requests on {kernel}");
            }
        }
    }

    #[test]
    fn inputs_near_the_modulus_in_every_lane() {
        // p - 1 and small values in all rate slots, with squares near p.
        let big = -Fr::ONE;
        let mut batch = PoseidonBatch::default();
        let mut expected = Vec::new();
        for i in 0..16u64 {
            let inputs = [big - Fr::from(i), Fr::from(i).square(), big];
            batch.push(HashDomain::Commitment, &inputs[..1 + (i as usize % 3)]);
            expected.push(hash(HashDomain::Commitment, &inputs[..1 + (i as usize % 3)]));
        }
        for kernel in kernels() {
            assert_eq!(batch.hash(kernel), expected, "{kernel}");
        }
    }
}
