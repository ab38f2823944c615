//! The deferred hash pool: callers file BLAKE3 requests and get handles; the
//! pool resolves all pending requests in as few backend calls as possible.
//!
//! Results come back in request order and are bit-identical on every backend.

use rayon::prelude::*;

/// A request's place in the pool; valid until [`HashPool::clear`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HashHandle(pub u32);

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
    #[error("GPU hash backend: {0}")]
    Gpu(#[from] crate::gpu::GpuError),
}

/// The deferred hash pool.
pub struct HashPool {
    pending: Vec<HashRequest>,
    /// Index of the first pending request; everything before is resolved.
    resolved: Vec<[u8; 32]>,
    limit: Option<usize>,
}

impl Default for HashPool {
    fn default() -> Self {
        HashPool::new()
    }
}

impl HashPool {
    pub fn new() -> Self {
        HashPool { pending: Vec::new(), resolved: Vec::new(), limit: None }
    }

    /// A pool that flushes itself whenever `limit` requests are pending.
    pub fn bounded(limit: usize) -> Self {
        HashPool { limit: Some(limit.max(1)), ..HashPool::new() }
    }

    pub fn hash(&mut self, data: impl Into<Vec<u8>>) -> HashHandle {
        self.push(HashRequest::Hash(data.into()))
    }

    pub fn keyed_hash(&mut self, key: &[u8; 32], data: impl Into<Vec<u8>>) -> HashHandle {
        self.push(HashRequest::Keyed { key: *key, data: data.into() })
    }

    pub fn derive_key(&mut self, context: &str, material: impl Into<Vec<u8>>) -> HashHandle {
        self.push(HashRequest::DeriveKey { context: context.to_string(), material: material.into() })
    }

    pub fn push(&mut self, request: HashRequest) -> HashHandle {
        let handle = HashHandle((self.resolved.len() + self.pending.len()) as u32);
        self.pending.push(request);
        if self.limit.is_some_and(|limit| self.pending.len() >= limit) {
            self.flush_cpu();
        }
        handle
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Resolve every pending request.
    pub fn flush(&mut self) -> Result<(), HashError> {
        self.flush_cpu();
        Ok(())
    }

    fn flush_cpu(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let digests: Vec<[u8; 32]> = pending.par_iter().map(HashRequest::compute).collect();
        self.resolved.extend(digests);
    }

    /// The digest of a resolved request, or `None` while it is still pending.
    pub fn get(&self, handle: HashHandle) -> Option<[u8; 32]> {
        self.resolved.get(handle.0 as usize).copied()
    }

    /// The digest of a request, flushing first if it is still pending.
    pub fn digest(&mut self, handle: HashHandle) -> Result<[u8; 32], HashError> {
        if handle.0 as usize >= self.resolved.len() + self.pending.len() {
            return Err(HashError::UnknownHandle(handle.0));
        }
        if self.get(handle).is_none() {
            self.flush()?;
        }
        self.get(handle).ok_or(HashError::UnknownHandle(handle.0))
    }

    /// Forget every request; handles from before are invalid afterwards.
    pub fn clear(&mut self) {
        self.pending.clear();
        self.resolved.clear();
    }

    /// The Merkle root of `leaves`, computed level by level through the pool:
    /// a parent is BLAKE3(left || right) (one 64-byte block), an odd last node
    /// is promoted unchanged, one leaf is its own root, and no leaves give
    /// BLAKE3 of the empty string.
    pub fn merkle_root(&mut self, leaves: &[[u8; 32]]) -> Result<[u8; 32], HashError> {
        if leaves.is_empty() {
            let h = self.hash(Vec::new());
            return self.digest(h);
        }
        let mut level = leaves.to_vec();
        while level.len() > 1 {
            let handles: Vec<HashHandle> = level
                .chunks_exact(2)
                .map(|pair| {
                    let mut block = Vec::with_capacity(64);
                    block.extend_from_slice(&pair[0]);
                    block.extend_from_slice(&pair[1]);
                    self.hash(block)
                })
                .collect();
            self.flush()?;
            let odd = (level.len() % 2 == 1).then(|| level[level.len() - 1]);
            let mut next: Vec<[u8; 32]> = handles.iter().map(|h| self.get(*h).expect("flushed")).collect();
            next.extend(odd);
            level = next;
        }
        Ok(level[0])
    }
}
