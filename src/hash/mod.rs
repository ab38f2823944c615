//! The deferred hash pool: callers file BLAKE3 and Poseidon requests and get
//! handles; the pool resolves all pending requests in as few backend calls
//! as possible. A lookup that cannot wait for the batch's flush (an
//! operation spending what the one before it created) flushes its few
//! requests on the CPU ([`HashPool::flush_for_lookup`]).
//!
//! Results come back in request order and are bit-identical on every backend.
//! Poseidon requests (a domain and BN254 scalars) are resolved at the same
//! flush on the CPU, eight sponges per AVX-512 IFMA lane group across rayon
//! threads (`crypto::poseidon::PoseidonBatch`), whichever backend the
//! BLAKE3 requests run on, or, on a GPU pool, a flush of at least
//! [`GPU_POSEIDON_MIN_REQUESTS`] of them in WGSL ([`poseidon_gpu`], one
//! sponge per invocation), with the same fallback to the CPU.
//! Requests are packed into one byte buffer as they are filed ([`batch`]); a
//! flush runs them on the CPU in SIMD lanes across rayon threads ([`cpu`],
//! [`lanes`]) or on the GPU ([`gpu`]). A GPU failure mid-flush is recovered by
//! recomputing the whole flush on the CPU, so no request is ever lost.

mod batch;
mod choice;
pub(crate) mod consts;
mod cpu;
mod device;
#[cfg(feature = "gpu")]
mod gpu;
#[cfg(not(feature = "gpu"))]
#[path = "gpu_absent.rs"]
mod gpu;
mod lanes;
#[cfg(feature = "gpu")]
pub mod poseidon_gpu;
pub(crate) mod reference;

use std::sync::Arc;

pub use lanes::Kernel;

use ark_bn254::Fr;

#[cfg(any(test, feature = "test-support"))]
use crate::backend::FaultPlan;
use crate::backend::{Backend, DeviceError, DeviceSlot, ResolvedBackend};
use crate::crypto::poseidon::{HashDomain, PoseidonBatch, PoseidonKernel};
use batch::PackedBatch;
use device::{HashDevice, RunOptions};

/// BLAKE3 of each consecutive `message_len`-byte message of `data`, in SIMD
/// lanes across rayon threads without copying (the pool's CPU backend minus
/// the filing). Messages longer than one chunk go through the blake3 crate.
///
/// # Panics
/// If `message_len` is 0 or does not divide `data.len()`.
pub fn hash_chunks(data: &[u8], message_len: usize) -> Vec<[u8; 32]> {
    assert!(
        message_len > 0 && data.len().is_multiple_of(message_len),
        "data must be whole messages of message_len bytes"
    );
    let count = data.len() / message_len;
    let mut out = Vec::with_capacity(count);
    // Into uninitialised capacity: zeroing the result first costs as much
    // as a tenth of the hashing.
    cpu::hash_fixed_into(Kernel::detect(), data, message_len, &mut out.spare_capacity_mut()[..count]);
    // SAFETY: `hash_fixed_into` wrote all `count` digests.
    unsafe { out.set_len(count) };
    out
}

/// [`hash_chunks`] into a caller's buffer (one slot per message), so a
/// caller hashing many batches allocates nothing.
///
/// # Panics
/// If `message_len` is 0 or `data.len() != out.len() * message_len`.
pub fn hash_chunks_into(data: &[u8], message_len: usize, out: &mut [[u8; 32]]) {
    assert!(message_len > 0 && data.len() == out.len() * message_len, "one output slot per message_len-byte message");
    hash_chunks_into_with(Kernel::detect(), data, message_len, out);
}

/// [`hash_chunks_into`] with a chosen CPU kernel (to compare kernels on one
/// processor).
///
/// # Panics
/// As [`hash_chunks_into`], and if this processor cannot run `kernel`.
pub fn hash_chunks_into_with(kernel: Kernel, data: &[u8], message_len: usize, out: &mut [[u8; 32]]) {
    assert!(kernel.is_supported(), "this processor cannot run the {kernel} kernel");
    assert!(message_len > 0 && data.len() == out.len() * message_len, "one output slot per message_len-byte message");
    cpu::hash_fixed(kernel, data, message_len, out);
}

/// Bulk filings of at least this many messages skip the pending buffer on
/// the CPU backend (see [`HashPool::hash_fixed`]).
pub const EAGER_MIN_MESSAGES: usize = 4096;

/// A request's place in the pool; valid across flushes until [`HashPool::clear`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HashHandle(pub u32);

/// A Poseidon request's place in the pool (its own numbering, beside the
/// BLAKE3 requests'); valid across flushes until [`HashPool::clear`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoseidonHandle(pub u32);

/// Consecutive handles `start..start + len` (from one bulk filing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HandleRange {
    pub start: u32,
    pub len: u32,
}

impl HandleRange {
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The handle of the range's `i`-th message.
    pub fn get(&self, i: usize) -> Option<HashHandle> {
        (i < self.len()).then(|| HashHandle(self.start + i as u32))
    }

    pub fn iter(&self) -> impl Iterator<Item = HashHandle> {
        (self.start..self.start + self.len).map(HashHandle)
    }
}

/// One BLAKE3 request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashRequest {
    Hash(Vec<u8>),
    Keyed { key: [u8; 32], data: Vec<u8> },
    DeriveKey { context: String, material: Vec<u8> },
}

impl HashRequest {
    /// The reference result, straight from the blake3 crate.
    pub fn compute(&self) -> [u8; 32] {
        match self {
            HashRequest::Hash(data) => *blake3::hash(data).as_bytes(),
            HashRequest::Keyed { key, data } => *blake3::keyed_hash(key, data).as_bytes(),
            HashRequest::DeriveKey { context, material } => blake3::derive_key(context, material),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HashError {
    #[error("hash handle {0} is not in this pool")]
    UnknownHandle(u32),
    /// The message already includes the device error's (not a `source`, so
    /// error chains do not print it twice).
    #[error("hash backend: {0}")]
    Device(DeviceError),
    #[error("the {0} CPU kernel needs instructions this processor lacks")]
    UnsupportedKernel(Kernel),
    #[error("bulk filing: {data_len} bytes are not whole messages of {message_len} bytes (message_len must be > 0)")]
    NotWholeMessages { data_len: usize, message_len: usize },
    #[error("the pool holds at most {} requests until it is cleared", u32::MAX)]
    TooManyRequests,
    #[error("the {0} Poseidon kernel needs instructions this processor lacks")]
    UnsupportedPoseidonKernel(PoseidonKernel),
    #[error("Poseidon handle {0} is not in this pool")]
    UnknownPoseidonHandle(u32),
}

impl From<DeviceError> for HashError {
    fn from(err: DeviceError) -> Self {
        HashError::Device(err)
    }
}

/// Where hash pools flush: chosen once from a [`Backend`] (which probes the
/// GPU and compiles its kernels), then cloned cheaply into every pool that
/// should run there: the batch executor's pools follow the transaction's.
#[derive(Clone)]
pub struct HashBackend {
    kernel: Kernel,
    device: Option<Arc<dyn HashDevice>>,
}

impl Default for HashBackend {
    /// The CPU, with the widest SIMD kernel this processor has.
    fn default() -> Self {
        HashBackend { kernel: Kernel::detect(), device: None }
    }
}

impl std::fmt::Debug for HashBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.device {
            Some(device) => write!(f, "HashBackend::Gpu({})", device.describe()),
            None => write!(f, "HashBackend::Cpu({})", self.kernel),
        }
    }
}

impl HashBackend {
    /// The CPU backend.
    pub fn cpu() -> Self {
        HashBackend::default()
    }

    /// The backend `backend` names: `Gpu` without a usable adapter (or whose
    /// kernels do not compile) is an error; `Auto` says once that it uses
    /// the CPU and does.
    pub fn select(backend: Backend) -> Result<HashBackend, HashError> {
        let (resolved, _ctx) = crate::gpu::resolve(backend)?;
        let mut selected = HashBackend::cpu();
        if resolved == ResolvedBackend::Cpu {
            return Ok(selected);
        }
        match acquire_device() {
            Ok(device) => selected.device = Some(device),
            Err(err) if backend == Backend::Auto => {
                tracing::warn!(%err, "GPU hash pipelines unavailable: using the CPU backend");
            }
            Err(err) => return Err(err.into()),
        }
        Ok(selected)
    }

    /// Which backend it is.
    pub fn resolved(&self) -> ResolvedBackend {
        if self.device.is_some() {
            ResolvedBackend::Gpu
        } else {
            ResolvedBackend::Cpu
        }
    }
}

/// The pending requests of a pool that never flushed, to be filed into
/// another pool ([`HashPool::into_filed`], [`HashPool::file_from`]).
pub struct Filed {
    blake3: PackedBatch,
    poseidon: PoseidonBatch,
}

/// Where another pool's requests landed ([`HashPool::file_from`]): a
/// BLAKE3 handle `h` of that pool is `h + blake3` here, a Poseidon handle
/// `p` is `p + poseidon` (wrapping, as handles shift).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FiledAt {
    pub blake3: u32,
    pub poseidon: u32,
}

impl FiledAt {
    pub fn hash(&self, handle: HashHandle) -> HashHandle {
        HashHandle(handle.0.wrapping_add(self.blake3))
    }

    pub fn poseidon(&self, handle: PoseidonHandle) -> PoseidonHandle {
        PoseidonHandle(handle.0.wrapping_add(self.poseidon))
    }
}

/// The deferred hash pool.
pub struct HashPool {
    /// Requests filed from other pools ([`HashPool::file_from`]), in order,
    /// before `pending`: kept as they came, not copied into `pending` by the
    /// thread that merges operations run ahead (that copy was a fifth of its
    /// serial work); the flush copies them into one batch, in parallel.
    sealed: Vec<PackedBatch>,
    /// Requests and message bytes in `sealed`.
    sealed_len: usize,
    sealed_bytes: usize,
    pending: PackedBatch,
    resolved: Vec<[u8; 32]>,
    limit: Option<usize>,
    kernel: Kernel,
    /// The device (`None` is the CPU), with the fallback policy every
    /// kernel shares.
    device: DeviceSlot<dyn HashDevice>,
    max_segment_jobs: Option<usize>,
    gpu_hashed: u64,
    /// Poseidon requests the device resolved, and those the CPU lanes did.
    gpu_poseidon: u64,
    cpu_poseidon: u64,
    poseidon_pending: PoseidonBatch,
    poseidon_resolved: Vec<Fr>,
    poseidon_kernel: PoseidonKernel,
}

/// Pending message bytes past which a pool flushes itself, so what logic
/// programs hash (each byte charged to their budget, but many operations
/// in a batch) never piles up in memory. Far above a batch's usual few MB.
pub const MAX_PENDING_BYTES: usize = 256 << 20;

/// BLAKE3 requests a lookup's flush ([`HashPool::flush_for_lookup`]) needs
/// before a GPU pool sends them to its device.
pub const GPU_LOOKUP_MIN_REQUESTS: usize = 64;

/// Poseidon requests a flush needs before a GPU pool sends them to its
/// device: fewer are done on the CPU lanes (about 2 µs a hash on two cores)
/// sooner than a device round trip returns.
pub const GPU_POSEIDON_MIN_REQUESTS: usize = 64;

/// Pending Poseidon requests past which a pool flushes itself (their inputs
/// take 32 bytes each; a batch files one per spent input).
pub const MAX_PENDING_POSEIDON: usize = 1 << 22;

/// Pending Poseidon input elements past which a pool flushes itself (128
/// MiB of them): logic programs' requests take up to
/// [`crate::vm::MAX_POSEIDON_INPUTS`] each.
pub const MAX_PENDING_POSEIDON_INPUTS: usize = 1 << 22;

impl Default for HashPool {
    fn default() -> Self {
        HashPool::new()
    }
}

impl HashPool {
    /// A CPU pool using the widest SIMD kernel this processor has.
    pub fn new() -> Self {
        HashPool {
            sealed: Vec::new(),
            sealed_len: 0,
            sealed_bytes: 0,
            pending: PackedBatch::default(),
            resolved: Vec::new(),
            limit: None,
            kernel: Kernel::detect(),
            device: device_slot(None),
            max_segment_jobs: None,
            gpu_hashed: 0,
            gpu_poseidon: 0,
            cpu_poseidon: 0,
            poseidon_pending: PoseidonBatch::default(),
            poseidon_resolved: Vec::new(),
            poseidon_kernel: PoseidonKernel::detect(),
        }
    }

    /// A CPU pool that flushes itself whenever `limit` requests are pending.
    pub fn bounded(limit: usize) -> Self {
        HashPool::new().with_limit(limit)
    }

    /// The same pool, flushing itself whenever `limit` requests are pending.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit.max(1));
        self
    }

    /// A pool on the requested backend: `Gpu` without a usable adapter is an
    /// error, `Auto` warns and uses the CPU.
    pub fn with_backend(backend: Backend) -> Result<HashPool, HashError> {
        Ok(HashPool::on(&HashBackend::select(backend)?))
    }

    /// An empty pool whose flushes run where `backend` says.
    pub fn on(backend: &HashBackend) -> HashPool {
        HashPool { kernel: backend.kernel, device: device_slot(backend.device.clone()), ..HashPool::new() }
    }

    /// Where this pool's flushes run, to make more pools like it (after a
    /// device loss: the CPU, or the fresh device).
    pub fn hash_backend(&self) -> HashBackend {
        HashBackend { kernel: self.kernel, device: self.device.current() }
    }

    /// An empty pool on the same backend and kernel, for work split across
    /// threads (each thread files into and flushes its own pool).
    pub fn sibling(&self) -> HashPool {
        HashPool {
            limit: self.limit,
            kernel: self.kernel,
            device: self.device.sibling(),
            max_segment_jobs: self.max_segment_jobs,
            poseidon_kernel: self.poseidon_kernel,
            ..HashPool::new()
        }
    }

    /// A CPU pool forced onto one SIMD kernel (for tests and benchmarks).
    pub fn with_kernel(kernel: Kernel) -> Result<HashPool, HashError> {
        if !kernel.is_supported() {
            return Err(HashError::UnsupportedKernel(kernel));
        }
        Ok(HashPool { kernel, ..HashPool::new() })
    }

    /// Where flushes run.
    pub fn backend(&self) -> ResolvedBackend {
        self.device.backend()
    }

    /// The CPU kernel (used by the CPU backend and for GPU fallbacks).
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The CPU kernel the Poseidon requests run on (every flush of a CPU pool,
    /// and a GPU pool's small or failed ones).
    pub fn poseidon_kernel(&self) -> PoseidonKernel {
        self.poseidon_kernel
    }

    /// The same pool with its Poseidon requests on `kernel` (to compare kernels).
    pub fn with_poseidon_kernel(mut self, kernel: PoseidonKernel) -> Result<HashPool, HashError> {
        if !kernel.is_supported() {
            return Err(HashError::UnsupportedPoseidonKernel(kernel));
        }
        self.poseidon_kernel = kernel;
        Ok(self)
    }

    /// The adapter behind the GPU backend, if that is the backend.
    pub fn gpu_adapter(&self) -> Option<String> {
        self.device.current().map(|d| d.describe())
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Make the next device runs (flushes or Merkle roots) fail as `plan`
    /// says; the pool recomputes each on the CPU.
    pub fn inject_faults(&mut self, plan: FaultPlan) {
        self.device.arm(plan);
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Cut GPU flushes into segments of at most `jobs` messages (the adapter's
    /// limits still apply); lets tests exercise multi-segment flushes cheaply.
    pub fn set_gpu_segment_limit(&mut self, jobs: usize) {
        self.max_segment_jobs = Some(jobs.max(1));
    }

    /// How many GPU flushes failed and were recomputed on the CPU.
    pub fn gpu_fallbacks(&self) -> usize {
        self.device.fallbacks() as usize
    }

    /// Add `earlier`'s fallback and GPU counts to this pool's (a pool that
    /// replaces it, for another pass over the same work).
    pub fn count_from(&mut self, earlier: &HashPool) {
        self.device.add_fallbacks(earlier.device.fallbacks());
        self.gpu_hashed += earlier.gpu_hashed;
        self.gpu_poseidon += earlier.gpu_poseidon;
        self.cpu_poseidon += earlier.cpu_poseidon;
    }

    /// How many requests (and Merkle leaves) the GPU digested for this pool:
    /// what shows that a pool on the GPU backend really hashed there.
    pub fn gpu_hashed(&self) -> u64 {
        self.gpu_hashed
    }

    /// How many Poseidon requests the GPU resolved for this pool (flushes
    /// of at least [`GPU_POSEIDON_MIN_REQUESTS`] on a GPU pool).
    pub fn gpu_poseidon_hashed(&self) -> u64 {
        self.gpu_poseidon
    }

    /// How many Poseidon requests the CPU lanes resolved for this pool (a
    /// CPU pool's, a GPU pool's small flushes, and GPU flushes recomputed).
    pub fn cpu_poseidon_hashed(&self) -> u64 {
        self.cpu_poseidon
    }

    pub fn hash(&mut self, data: impl AsRef<[u8]>) -> HashHandle {
        let handle = self.next_handle();
        self.pending.push_hash(data.as_ref());
        self.after_push();
        handle
    }

    /// Make room for `requests` more requests of `bytes` message bytes in
    /// all, so a batch that knows its size does not regrow the buffers.
    pub fn reserve(&mut self, requests: usize, bytes: usize) {
        reserve_fresh(&mut self.pending.bytes, bytes);
        reserve_fresh(&mut self.pending.runs, requests);
        self.resolved.reserve(requests);
    }

    /// File the message that `write` appends to the given buffer as a plain
    /// hash request: for encodings, which then need no buffer of their own
    /// (`write` must only append).
    pub fn hash_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> HashHandle {
        let handle = self.next_handle();
        self.pending.push_hash_with(write);
        self.after_push();
        handle
    }

    /// File every consecutive `message_len`-byte message of `data` as a plain
    /// hash request, in order: one copy and one table entry for the whole run
    /// (a bounded pool still flushes itself at its limit). Use it for many
    /// messages of one length (Merkle parents, nullifier inputs).
    ///
    /// On the CPU backend, a filing of at least [`EAGER_MIN_MESSAGES`]
    /// messages into a pool with nothing pending is itself a full batch: it is
    /// hashed at once, straight from `data`, and its handles are resolved on
    /// return (one backend call either way, and no copy).
    pub fn hash_fixed(&mut self, data: &[u8], message_len: usize) -> Result<HandleRange, HashError> {
        if message_len == 0 || !data.len().is_multiple_of(message_len) {
            return Err(HashError::NotWholeMessages { data_len: data.len(), message_len });
        }
        let count = data.len() / message_len;
        let start = self.next_handle();
        if start.0 as usize + count > u32::MAX as usize {
            return Err(HashError::TooManyRequests);
        }
        if self.backend() == ResolvedBackend::Cpu && self.pending_len() == 0 && count >= EAGER_MIN_MESSAGES {
            // Already one big batch: hash it in place, skipping the copy into
            // the pending buffer (a 64 MiB copy costs as much as hashing it).
            self.resolved.reserve(count);
            let slots = &mut self.resolved.spare_capacity_mut()[..count];
            cpu::hash_fixed_into(self.kernel, data, message_len, slots);
            // SAFETY: `hash_fixed_into` wrote all `count` digests.
            unsafe { self.resolved.set_len(start.0 as usize + count) };
            return Ok(HandleRange { start: start.0, len: count as u32 });
        }
        let mut rest = data;
        while !rest.is_empty() {
            let room = self.limit.map_or(usize::MAX, |limit| limit - self.pending_len());
            let (now, later) = rest.split_at(rest.len().min(room.saturating_mul(message_len)));
            self.pending.push_hash_fixed(now, message_len);
            self.after_push();
            rest = later;
        }
        Ok(HandleRange { start: start.0, len: count as u32 })
    }

    /// The digests of a resolved range, or `None` while any is pending or
    /// the range is not this pool's.
    pub fn get_range(&self, range: HandleRange) -> Option<&[[u8; 32]]> {
        self.resolved.get(range.start as usize..range.start as usize + range.len())
    }

    pub fn keyed_hash(&mut self, key: &[u8; 32], data: impl AsRef<[u8]>) -> HashHandle {
        let handle = self.next_handle();
        self.pending.push_keyed(key, data.as_ref());
        self.after_push();
        handle
    }

    pub fn derive_key(&mut self, context: &str, material: impl AsRef<[u8]>) -> HashHandle {
        let handle = self.next_handle();
        self.pending.push_derive_key(context, material.as_ref());
        self.after_push();
        handle
    }

    /// This pool's requests, to be filed into another pool in order
    /// ([`HashPool::file_from`]): operations executed ahead on other
    /// threads file into pools of their own. `None` once the pool has
    /// flushed (some requests are resolved here, not pending).
    pub fn into_filed(mut self) -> Option<Filed> {
        self.unseal();
        let unflushed = self.resolved.is_empty() && self.poseidon_resolved.is_empty();
        unflushed.then_some(Filed { blake3: self.pending, poseidon: self.poseidon_pending })
    }

    /// File every request of `filed`, in the order they were filed there
    /// (BLAKE3 and Poseidon requests each after this pool's own), and say
    /// where they landed.
    pub fn file_from(&mut self, filed: Filed) -> FiledAt {
        let at = FiledAt { blake3: self.next_handle().0, poseidon: self.poseidon_count() as u32 };
        if !filed.blake3.is_empty() {
            if !self.pending.is_empty() {
                // Filed here before, so first; it keeps its buffer.
                let before = std::mem::take(&mut self.pending);
                self.seal(before);
            }
            self.seal(filed.blake3);
            self.after_push();
        }
        if !filed.poseidon.is_empty() {
            self.poseidon_pending.append(filed.poseidon);
            self.after_poseidon_push();
        }
        at
    }

    fn seal(&mut self, batch: PackedBatch) {
        self.sealed_len += batch.len();
        self.sealed_bytes += batch.byte_len();
        self.sealed.push(batch);
    }

    /// Make `pending` every pending request, the sealed ones first.
    fn unseal(&mut self) {
        if self.sealed.is_empty() {
            return;
        }
        let mut parts = std::mem::take(&mut self.sealed);
        if !self.pending.is_empty() {
            parts.push(std::mem::take(&mut self.pending));
        }
        // `pending` is empty here: the room a batch reserved in it is reused.
        self.pending.append_all(&parts);
        (self.sealed_len, self.sealed_bytes) = (0, 0);
    }

    pub fn push(&mut self, request: HashRequest) -> HashHandle {
        match &request {
            HashRequest::Hash(data) => self.hash(data),
            HashRequest::Keyed { key, data } => self.keyed_hash(key, data),
            HashRequest::DeriveKey { context, material } => self.derive_key(context, material),
        }
    }

    /// The next request's handle. Past 2^32 requests a handle would name
    /// another request's digest, so that is a panic, never a wrap; batches
    /// stay far below it (their operations and their logic programs'
    /// filings are bounded: `batch::file::MAX_OPS`, `MAX_LOGIC_FILINGS`).
    fn next_handle(&self) -> HashHandle {
        let next = self.resolved.len() + self.pending_len();
        HashHandle(u32::try_from(next).expect("a hash pool holds at most 2^32 requests"))
    }

    /// Poseidon requests filed so far (resolved or pending): the next one's handle.
    fn poseidon_count(&self) -> usize {
        self.poseidon_resolved.len() + self.poseidon_pending.len()
    }

    fn after_push(&mut self) {
        let full = self.pending_bytes() >= MAX_PENDING_BYTES;
        if full || self.limit.is_some_and(|limit| self.pending_len() >= limit) {
            self.flush_pending(true);
        }
    }

    pub fn pending_len(&self) -> usize {
        self.sealed_len + self.pending.len()
    }

    /// Message bytes pending (padding included).
    pub fn pending_bytes(&self) -> usize {
        self.sealed_bytes + self.pending.byte_len()
    }

    /// File Poseidon(`inputs`) under `domain`, resolved at the next flush
    /// (bit-identical to `crypto::poseidon::hash`).
    pub fn poseidon(&mut self, domain: HashDomain, inputs: &[Fr]) -> Result<PoseidonHandle, HashError> {
        let next = self.poseidon_count();
        if next >= u32::MAX as usize {
            return Err(HashError::TooManyRequests);
        }
        self.poseidon_pending.push(domain, inputs);
        self.after_poseidon_push();
        Ok(PoseidonHandle(next as u32))
    }

    fn after_poseidon_push(&mut self) {
        let pending = &self.poseidon_pending;
        let full = pending.len() >= MAX_PENDING_POSEIDON || pending.input_len() >= MAX_PENDING_POSEIDON_INPUTS;
        if full || self.limit.is_some_and(|limit| pending.len() >= limit) {
            self.flush_poseidon();
        }
    }

    /// Input elements of the pending Poseidon requests.
    pub fn poseidon_pending_inputs(&self) -> usize {
        self.poseidon_pending.input_len()
    }

    /// Pending Poseidon requests.
    pub fn poseidon_pending_len(&self) -> usize {
        self.poseidon_pending.len()
    }

    /// A resolved Poseidon request's value, or `None` while it is pending.
    pub fn poseidon_value(&self, handle: PoseidonHandle) -> Option<Fr> {
        self.poseidon_resolved.get(handle.0 as usize).copied()
    }

    /// The values of every Poseidon request resolved so far, by handle.
    pub fn poseidon_values(&self) -> &[Fr] {
        &self.poseidon_resolved
    }

    /// A Poseidon request's value, flushing first if it is still pending.
    pub fn poseidon_result(&mut self, handle: PoseidonHandle) -> Result<Fr, HashError> {
        if handle.0 as usize >= self.poseidon_count() {
            return Err(HashError::UnknownPoseidonHandle(handle.0));
        }
        if self.poseidon_value(handle).is_none() {
            self.flush_poseidon();
        }
        self.poseidon_value(handle).ok_or(HashError::UnknownPoseidonHandle(handle.0))
    }

    fn flush_poseidon(&mut self) {
        if self.poseidon_pending.is_empty() {
            return;
        }
        let start = self.poseidon_resolved.len();
        let count = self.poseidon_pending.len();
        self.poseidon_resolved.resize(start + count, Fr::from(0u64));
        let out = &mut self.poseidon_resolved[start..];
        let device = self.device.current();
        let mut on_cpu = true;
        if let Some(device) = device.as_ref().filter(|_| count >= GPU_POSEIDON_MIN_REQUESTS) {
            let run = RunOptions { fail_before_step: self.device.next_fault(), max_segment_jobs: None };
            match device.poseidon(&self.poseidon_pending, out, &run) {
                Ok(()) => {
                    on_cpu = false;
                    self.gpu_poseidon += count as u64;
                }
                Err(err) => self.device.fell_back(&err, device, count),
            }
        }
        if on_cpu {
            self.poseidon_pending.hash_into(self.poseidon_kernel, out);
            self.cpu_poseidon += count as u64;
        }
        self.poseidon_pending.clear();
        if let Some(device) = device {
            self.device.replace_if_lost(&device);
        }
    }

    /// Resolve every pending request. Never loses a request: a GPU failure
    /// is recomputed on the CPU (with a warning), so this always succeeds.
    pub fn flush(&mut self) -> Result<(), HashError> {
        self.flush_pending(true);
        self.flush_poseidon();
        Ok(())
    }

    /// [`HashPool::flush`] for a lookup that cannot wait for the batch's
    /// flush (an operation spending what the one before it created): fewer
    /// than [`GPU_LOOKUP_MIN_REQUESTS`] BLAKE3 requests are hashed on the
    /// CPU even in a GPU pool, since a device round trip per operation of a
    /// chain would cost far more than hashing its few requests.
    pub fn flush_for_lookup(&mut self) -> Result<(), HashError> {
        self.flush_pending(self.pending_len() >= GPU_LOOKUP_MIN_REQUESTS);
        self.flush_poseidon();
        Ok(())
    }

    /// Resolve the pending BLAKE3 requests, on the device when there is one
    /// and `on_device`.
    fn flush_pending(&mut self, on_device: bool) {
        self.unseal();
        if self.pending.is_empty() {
            return;
        }
        let start = self.resolved.len();
        let count = self.pending.len();
        let device = self.device.current().filter(|_| on_device);
        let Some(device) = device else {
            // The CPU writes every slot: no need to zero them first.
            self.resolved.reserve(count);
            cpu::hash_batch_into(self.kernel, &self.pending, &mut self.resolved.spare_capacity_mut()[..count]);
            // SAFETY: `hash_batch_into` wrote all `count` digests.
            unsafe { self.resolved.set_len(start + count) };
            self.pending.reset();
            return;
        };
        self.resolved.resize(start + count, [0u8; 32]);
        let out = &mut self.resolved[start..];
        let run = RunOptions { fail_before_step: self.device.next_fault(), max_segment_jobs: self.max_segment_jobs };
        match device.hash_batch(&self.pending, out, &run) {
            Ok(()) => self.gpu_hashed += count as u64,
            Err(err) => {
                self.device.fell_back(&err, &device, count);
                cpu::hash_batch(self.kernel, &self.pending, out);
            }
        }
        self.pending.reset();
        self.device.replace_if_lost(&device);
    }

    /// The digest of a resolved request, or `None` while it is still pending.
    pub fn get(&self, handle: HashHandle) -> Option<[u8; 32]> {
        self.resolved.get(handle.0 as usize).copied()
    }

    /// The digest of a request, flushing first if it is still pending.
    pub fn digest(&mut self, handle: HashHandle) -> Result<[u8; 32], HashError> {
        if handle.0 as usize >= self.resolved.len() + self.pending_len() {
            return Err(HashError::UnknownHandle(handle.0));
        }
        if self.get(handle).is_none() {
            self.flush()?;
        }
        self.get(handle).ok_or(HashError::UnknownHandle(handle.0))
    }

    /// Forget every request; handles from before are invalid afterwards.
    pub fn clear(&mut self) {
        self.sealed.clear();
        (self.sealed_len, self.sealed_bytes) = (0, 0);
        self.pending.clear();
        self.resolved.clear();
        self.poseidon_pending.clear();
        self.poseidon_resolved.clear();
    }

    /// The Merkle root of `leaves`: a parent is BLAKE3(left || right) (one
    /// 64-byte block), an odd last node is promoted unchanged, one leaf is its
    /// own root, and no leaves give BLAKE3 of the empty string. Computed level
    /// by level on the pool's backend (on the GPU, all levels in one
    /// submission); pending requests are left pending.
    pub fn merkle_root(&mut self, leaves: &[[u8; 32]]) -> Result<[u8; 32], HashError> {
        if let Some(device) = self.device.current() {
            let run = RunOptions { fail_before_step: self.device.next_fault(), max_segment_jobs: None };
            match device.merkle_root(leaves, &run) {
                Ok(root) => {
                    self.gpu_hashed += leaves.len() as u64;
                    return Ok(root);
                }
                Err(err) => self.device.fell_back(&err, &device, leaves.len()),
            }
        }
        Ok(cpu::merkle_root(self.kernel, leaves))
    }
}

/// `Vec::reserve` for a buffer a flush emptied: growing it in place copied
/// its whole old capacity (`realloc` knows nothing of the length), megabytes
/// per batch for the staging pool; a fresh allocation copies nothing.
fn reserve_fresh<T>(buffer: &mut Vec<T>, additional: usize) {
    if buffer.is_empty() && buffer.capacity() < additional {
        *buffer = Vec::with_capacity(additional);
    } else {
        buffer.reserve(additional);
    }
}

/// A device on the process's shared GPU context: the one place the GPU
/// backend is mapped to its implementation.
fn acquire_device() -> Result<Arc<dyn HashDevice>, DeviceError> {
    Ok(gpu::GpuHasher::shared()?)
}

fn device_slot(device: Option<Arc<dyn HashDevice>>) -> DeviceSlot<dyn HashDevice> {
    DeviceSlot::new("hash pool", device, acquire_device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mix of every request kind and length class, keys and contexts
    /// alternating (so runs alternate too), the `n`-th message distinct.
    fn file_mixed(pool: &mut HashPool, seed: u8, count: usize) -> Vec<(HashHandle, [u8; 32])> {
        let keys = [[seed; 32], [seed.wrapping_add(1); 32]];
        let contexts = ["cvm test context one", "cvm test context two"];
        (0..count)
            .map(|n| {
                let data: Vec<u8> =
                    (0..[0, 1, 31, 32, 64, 65, 200][n % 7]).map(|i| (i as u8) ^ seed ^ n as u8).collect();
                match n % 3 {
                    0 => (pool.hash(&data), *blake3::hash(&data).as_bytes()),
                    1 => (pool.keyed_hash(&keys[n % 2], &data), *blake3::keyed_hash(&keys[n % 2], &data).as_bytes()),
                    _ => (pool.derive_key(contexts[n % 2], &data), blake3::derive_key(contexts[n % 2], &data)),
                }
            })
            .collect()
    }

    #[test]
    fn requests_filed_from_other_pools_resolve_as_if_filed_here() {
        let mut batch = HashPool::new();
        let mut expected = file_mixed(&mut batch, 7, 20);
        for seed in [1u8, 2, 3] {
            let mut chunk = HashPool::new();
            // A context the batch pool has not seen yet, in the middle.
            let extra = chunk.derive_key(&format!("cvm chunk {seed}"), [seed; 40]);
            let mut filed = file_mixed(&mut chunk, seed, 30);
            filed.push((extra, blake3::derive_key(&format!("cvm chunk {seed}"), &[seed; 40])));
            let first = batch.file_from(chunk.into_filed().expect("nothing flushed"));
            expected.extend(filed.into_iter().map(|(h, digest)| (first.hash(h), digest)));
            expected.extend(file_mixed(&mut batch, seed.wrapping_mul(31), 5));
        }
        batch.flush().unwrap();
        for (i, (handle, digest)) in expected.iter().enumerate() {
            assert_eq!(batch.get(*handle), Some(*digest), "request {i} (handle {})", handle.0);
        }
    }

    /// Poseidon requests travel with the BLAKE3 ones, each numbering moved
    /// by where its requests landed; a pool that flushed hands nothing over.
    #[test]
    fn poseidon_requests_filed_from_other_pools_keep_their_values() {
        let value = |i: u64| crate::crypto::poseidon::hash(HashDomain::Logic, &[Fr::from(i), Fr::from(i * i)]);
        let file = |pool: &mut HashPool, i: u64| {
            let handle = pool.poseidon(HashDomain::Logic, &[Fr::from(i), Fr::from(i * i)]).unwrap();
            (handle, value(i))
        };
        let mut batch = HashPool::new();
        let mut expected = vec![file(&mut batch, 1), file(&mut batch, 2)];
        batch.hash(b"a BLAKE3 request first");
        for seed in [10u64, 20, 30] {
            let mut chunk = HashPool::new();
            let mut filed: Vec<_> = (0..seed / 10).map(|i| file(&mut chunk, seed + i)).collect();
            let blake = chunk.hash(seed.to_le_bytes());
            filed.push(file(&mut chunk, seed + 9));
            let at = batch.file_from(chunk.into_filed().expect("nothing flushed"));
            expected.extend(filed.into_iter().map(|(h, v)| (at.poseidon(h), v)));
            assert_eq!(batch.digest(at.hash(blake)).unwrap(), *blake3::hash(&seed.to_le_bytes()).as_bytes());
            expected.push(file(&mut batch, seed + 5));
        }
        batch.flush().unwrap();
        for (i, (handle, v)) in expected.iter().enumerate() {
            assert_eq!(batch.poseidon_value(*handle), Some(*v), "request {i} (handle {})", handle.0);
        }
        let mut flushed = HashPool::bounded(2);
        file(&mut flushed, 1);
        file(&mut flushed, 2);
        assert!(flushed.into_filed().is_none(), "a pool whose Poseidon requests resolved keeps them");
    }

    /// A GPU pool on a device of its own, to destroy without touching the
    /// shared device of the other GPU tests; None without an adapter.
    #[cfg(feature = "gpu")]
    fn pool_on_a_private_device() -> Option<(Arc<crate::gpu::GpuContext>, HashPool)> {
        crate::gpu::test_context()?;
        let ctx = Arc::new(crate::gpu::GpuContext::new().expect("an adapter exists"));
        let hasher: Arc<dyn HashDevice> = Arc::new(gpu::GpuHasher::new(ctx.clone()).expect("pipelines"));
        Some((ctx, HashPool::on(&HashBackend { kernel: Kernel::detect(), device: Some(hasher) })))
    }

    /// A device destroyed between flushes (wgpu's `Device::destroy`: the
    /// device-lost callback fires, as for a driver reset) fails the next
    /// flush's BLAKE3 dispatch without a panic (wgpu's own buffer helper
    /// panicked there); it is recomputed on the CPU with the right values,
    /// and the pool moves to a fresh device at once and runs there again.
    /// The destroyed device is a private one, so the other GPU tests'
    /// shared device is untouched.
    #[cfg(feature = "gpu")]
    #[test]
    fn a_destroyed_device_is_recomputed_on_the_cpu_and_replaced() {
        let Some((ctx, mut pool)) = pool_on_a_private_device() else { return };
        let file = |pool: &mut HashPool, seed: u64| {
            let blake: Vec<_> = (0..100u64).map(|i| (pool.hash((seed + i).to_le_bytes()), seed + i)).collect();
            let poseidon: Vec<_> = (0..GPU_POSEIDON_MIN_REQUESTS as u64)
                .map(|i| (pool.poseidon(HashDomain::Logic, &[Fr::from(seed + i)]).unwrap(), seed + i))
                .collect();
            (blake, poseidon)
        };
        type Requests = (Vec<(HashHandle, u64)>, Vec<(PoseidonHandle, u64)>);
        let check = |pool: &HashPool, (blake, poseidon): &Requests| {
            for (h, x) in blake {
                assert_eq!(pool.get(*h), Some(*blake3::hash(&x.to_le_bytes()).as_bytes()));
            }
            for (h, x) in poseidon {
                let expected = crate::crypto::poseidon::hash(HashDomain::Logic, &[Fr::from(*x)]);
                assert_eq!(pool.poseidon_value(*h), Some(expected));
            }
        };
        let first = file(&mut pool, 0);
        pool.flush().unwrap();
        check(&pool, &first);
        assert_eq!((pool.gpu_fallbacks(), pool.gpu_poseidon_hashed()), (0, GPU_POSEIDON_MIN_REQUESTS as u64));
        let hashed = pool.gpu_hashed();
        assert!(hashed >= 100);

        ctx.device.destroy();
        let _ = ctx.device.poll(wgpu::PollType::Poll);
        assert!(ctx.is_lost(), "destroying the device fires its lost callback");
        let second = file(&mut pool, 1000);
        pool.flush().unwrap();
        check(&pool, &second);
        assert_eq!(pool.gpu_fallbacks(), 1, "the BLAKE3 dispatch fell back");
        assert_eq!(pool.gpu_hashed(), hashed, "nothing more was hashed on the lost device");
        // The pool moved to a fresh device right after: the same flush's
        // Poseidon requests ran there.
        assert_eq!(pool.gpu_poseidon_hashed(), 2 * GPU_POSEIDON_MIN_REQUESTS as u64);

        let third = file(&mut pool, 2000);
        pool.flush().unwrap();
        check(&pool, &third);
        assert_eq!(pool.gpu_fallbacks(), 1, "the fresh device did the work");
        assert!(pool.gpu_hashed() >= hashed + 100);
        assert_eq!(pool.gpu_poseidon_hashed(), 3 * GPU_POSEIDON_MIN_REQUESTS as u64);
    }

    /// A device lost between two flushes of Poseidon requests alone (long
    /// ones too, which take several passes): the second's Poseidon dispatch
    /// itself fails, and the CPU lanes recompute every value, counted as a
    /// fallback.
    #[cfg(feature = "gpu")]
    #[test]
    fn a_poseidon_flush_on_a_destroyed_device_is_recomputed_on_the_cpu() {
        let Some((ctx, mut pool)) = pool_on_a_private_device() else { return };
        let inputs: Vec<Vec<Fr>> = (0..GPU_POSEIDON_MIN_REQUESTS as u64)
            .map(|i| (0..=i % 17).map(|k| Fr::from(i * 100 + k)).collect())
            .collect();
        let n = inputs.len() as u64;
        let flush_checked = |pool: &mut HashPool| {
            let handles: Vec<_> = inputs.iter().map(|x| pool.poseidon(HashDomain::Logic, x).unwrap()).collect();
            pool.flush().unwrap();
            for (h, x) in handles.iter().zip(&inputs) {
                assert_eq!(pool.poseidon_value(*h), Some(crate::crypto::poseidon::hash(HashDomain::Logic, x)));
            }
        };
        // The first flush makes the kernel and runs on the device.
        flush_checked(&mut pool);
        assert_eq!((pool.gpu_poseidon_hashed(), pool.cpu_poseidon_hashed(), pool.gpu_fallbacks()), (n, 0, 0));
        ctx.device.destroy();
        let _ = ctx.device.poll(wgpu::PollType::Poll);
        assert!(ctx.is_lost());
        flush_checked(&mut pool);
        assert_eq!(pool.gpu_fallbacks(), 1, "the Poseidon dispatch failed and was counted");
        assert_eq!((pool.gpu_poseidon_hashed(), pool.cpu_poseidon_hashed()), (n, n));
    }

    /// Filings kept as they came (several in a row, into an empty pool, an
    /// empty one, one past the parallel copy's threshold, then requests filed
    /// here after them) count as pending, and resolve in order.
    #[test]
    fn requests_filed_in_a_row_count_as_pending_and_resolve_in_order() {
        let mut batch = HashPool::new();
        batch.reserve(1000, 4 << 20);
        let mut expected = Vec::new();
        for (seed, count) in [(1u8, 25), (2, 0), (3, 40), (4, 1)] {
            let mut chunk = HashPool::new();
            let filed = file_mixed(&mut chunk, seed, count);
            let bytes = chunk.pending_bytes();
            let (len, pending) = (batch.pending_len(), batch.pending_bytes());
            let first = batch.file_from(chunk.into_filed().expect("nothing flushed"));
            assert_eq!(first.blake3 as usize, len);
            assert_eq!((batch.pending_len(), batch.pending_bytes()), (len + count, pending + bytes));
            expected.extend(filed.into_iter().map(|(h, digest)| (first.hash(h), digest)));
        }
        // 2 MiB of 1 KiB messages: copied on the rayon pool at the flush.
        let mut chunk = HashPool::new();
        let big: Vec<u8> = (0..2u32 << 20).map(|i| (i % 251) as u8).collect();
        let range = chunk.hash_fixed(&big, 1024).unwrap();
        let first = batch.file_from(chunk.into_filed().expect("nothing flushed"));
        for (i, message) in big.chunks(1024).enumerate() {
            expected.push((HashHandle(first.blake3 + range.start + i as u32), *blake3::hash(message).as_bytes()));
        }
        expected.extend(file_mixed(&mut batch, 9, 10));
        assert_eq!(batch.pending_len(), expected.len());
        // A lookup of a sealed request flushes everything.
        let (handle, digest) = expected[30];
        assert_eq!(batch.digest(handle).unwrap(), digest);
        assert_eq!(batch.pending_len(), 0);
        for (i, (handle, digest)) in expected.iter().enumerate() {
            assert_eq!(batch.get(*handle), Some(*digest), "request {i} (handle {})", handle.0);
        }
        // The pool goes on: new requests after the flush resolve too.
        let (handle, digest) = file_mixed(&mut batch, 11, 3)[2];
        assert_eq!(batch.digest(handle).unwrap(), digest);
    }
}
