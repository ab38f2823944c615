//! Pending requests packed into one contiguous byte buffer with a table of
//! runs (offset, count, length, key, mode): consecutive requests of the same
//! length and mode share one entry, so filing allocates nothing per message,
//! a bulk filing is one copy, and every backend reads the same layout.

use std::collections::HashMap;
use std::sync::Arc;

use super::consts::{key_words, DERIVE_KEY_CONTEXT, DERIVE_KEY_MATERIAL, IV, KEYED_HASH};
use super::reference;

/// Bytes past which [`PackedBatch::append_all`] copies on the rayon pool.
const PARALLEL_COPY_BYTES: usize = 1 << 20;

/// One pending request: `len` bytes at `offset` in the batch's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Job {
    pub offset: usize,
    pub len: usize,
    /// Index into [`PackedBatch::keys`]; 0 is the IV (plain hashing).
    pub key: u32,
    /// The mode flag: 0, `KEYED_HASH` or `DERIVE_KEY_MATERIAL`.
    pub flags: u32,
}

/// `count` consecutive requests of `len` bytes each, the first at `offset`,
/// the next every [`Run::stride`] bytes, all with the same key and mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub offset: usize,
    pub count: usize,
    pub len: usize,
    pub key: u32,
    pub flags: u32,
}

impl Run {
    /// Bytes from one message's start to the next (messages start at multiples of 4).
    pub fn stride(&self) -> usize {
        stride(self.len)
    }

    /// The job of the run's `i`-th message.
    pub fn job(&self, i: usize) -> Job {
        Job { offset: self.offset + i * self.stride(), len: self.len, key: self.key, flags: self.flags }
    }
}

fn stride(len: usize) -> usize {
    len.next_multiple_of(4)
}

/// What a key slot was made from, so long messages can go to the blake3 crate.
#[derive(Clone, Debug)]
pub(crate) enum KeySource {
    Iv,
    Key([u8; 32]),
    Context(Arc<str>),
}

/// The pending requests of a pool.
#[derive(Clone, Debug)]
pub(crate) struct PackedBatch {
    /// Message bytes; every message starts at a multiple of 4 (the GPU reads words).
    pub bytes: Vec<u8>,
    pub runs: Vec<Run>,
    /// Requests over all runs.
    count: usize,
    /// Key words per slot: the IV, a user key, or a derive-key context key.
    pub keys: Vec<[u32; 8]>,
    pub sources: Vec<KeySource>,
    key_slots: HashMap<[u8; 32], u32>,
    context_slots: HashMap<Arc<str>, u32>,
    /// The length every job has, while they all have the same one.
    common_len: Option<usize>,
}

impl Default for PackedBatch {
    fn default() -> Self {
        PackedBatch {
            bytes: Vec::new(),
            runs: Vec::new(),
            count: 0,
            keys: vec![IV],
            sources: vec![KeySource::Iv],
            key_slots: HashMap::new(),
            context_slots: HashMap::new(),
            common_len: None,
        }
    }
}

impl PackedBatch {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The message bytes held, padding included.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// The length shared by every job, if there is one.
    pub fn common_len(&self) -> Option<usize> {
        self.common_len
    }

    /// Every job in request order, one per message.
    pub fn jobs(&self) -> impl Iterator<Item = Job> + '_ {
        self.runs.iter().flat_map(|run| (0..run.count).map(move |i| run.job(i)))
    }

    pub fn push_hash(&mut self, data: &[u8]) {
        self.push(data, 0, 0);
    }

    pub fn push_keyed(&mut self, key: &[u8; 32], data: &[u8]) {
        let slot = self.key_slot(key);
        self.push(data, slot, KEYED_HASH);
    }

    pub fn push_derive_key(&mut self, context: &str, material: &[u8]) {
        let slot = self.context_slot(context);
        self.push(material, slot, DERIVE_KEY_MATERIAL);
    }

    fn key_slot(&mut self, key: &[u8; 32]) -> u32 {
        if let Some(slot) = self.key_slots.get(key) {
            return *slot;
        }
        let slot = self.add_key(key_words(key), KeySource::Key(*key));
        self.key_slots.insert(*key, slot);
        slot
    }

    fn context_slot(&mut self, context: &str) -> u32 {
        if let Some(slot) = self.context_slots.get(context) {
            return *slot;
        }
        let context: Arc<str> = Arc::from(context);
        let words = reference::hash_words(&IV, DERIVE_KEY_CONTEXT, context.as_bytes());
        let slot = self.add_key(words, KeySource::Context(context.clone()));
        self.context_slots.insert(context, slot);
        slot
    }

    /// Append every request of `parts`, in order, with their keys: their
    /// bytes copied once into room reserved for all of them (side by side on
    /// the rayon pool when there are many), and each part's key slots looked
    /// up here once (not once per run: a batch's runs alternate between a few
    /// keys).
    pub fn append_all(&mut self, parts: &[PackedBatch]) {
        let base = self.bytes.len();
        let total: usize = parts.iter().map(PackedBatch::byte_len).sum();
        self.bytes.reserve(total);
        let mut room = &mut self.bytes.spare_capacity_mut()[..total];
        let mut copies = Vec::with_capacity(parts.len());
        for part in parts {
            let (to, rest) = std::mem::take(&mut room).split_at_mut(part.byte_len());
            copies.push((to, part.bytes.as_slice()));
            room = rest;
        }
        let copy = |(to, from): (&mut [std::mem::MaybeUninit<u8>], &[u8])| {
            // SAFETY: `to` is `from.len()` bytes of this buffer's spare capacity.
            unsafe { std::ptr::copy_nonoverlapping(from.as_ptr(), to.as_mut_ptr().cast::<u8>(), from.len()) }
        };
        if total >= PARALLEL_COPY_BYTES {
            use rayon::prelude::*;
            copies.into_par_iter().for_each(copy);
        } else {
            copies.into_iter().for_each(copy);
        }
        // SAFETY: the copies above wrote all `total` bytes after `base`.
        unsafe { self.bytes.set_len(base + total) };
        let mut offset = base;
        for part in parts {
            self.append_runs(part, offset);
            offset += part.byte_len();
        }
    }

    /// Append `from`'s runs, its bytes already copied to `base`, and its keys.
    /// Every part's length is a multiple of 4, so its messages stay aligned.
    fn append_runs(&mut self, from: &PackedBatch, base: usize) {
        let slots: Vec<u32> = from
            .sources
            .iter()
            .map(|source| match source {
                KeySource::Iv => 0,
                KeySource::Key(key) => self.key_slot(key),
                KeySource::Context(context) => self.context_slot(context),
            })
            .collect();
        for run in &from.runs {
            self.add_run(Run { offset: base + run.offset, key: slots[run.key as usize], ..*run });
        }
    }

    /// File the message `write` appends to the buffer: an encoding is
    /// written straight into the batch, with no buffer of its own.
    pub fn push_hash_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let offset = self.bytes.len();
        write(&mut self.bytes);
        let len = self.bytes.len() - offset;
        let padded = self.bytes.len().next_multiple_of(4);
        self.bytes.resize(padded, 0);
        self.add_run(Run { offset, count: 1, len, key: 0, flags: 0 });
    }

    fn add_key(&mut self, words: [u32; 8], source: KeySource) -> u32 {
        self.keys.push(words);
        self.sources.push(source);
        (self.keys.len() - 1) as u32
    }

    fn push(&mut self, data: &[u8], key: u32, flags: u32) {
        let offset = self.bytes.len();
        // The common sizes (a nullifier input or Merkle parent is one 64-byte
        // block, a digest 32 bytes) as fixed-size copies the compiler inlines,
        // instead of a `memcpy` call per request.
        match data.len() {
            64 => self.extend_fixed::<64>(data),
            32 => self.extend_fixed::<32>(data),
            _ => {
                self.bytes.extend_from_slice(data);
                let padded = self.bytes.len().next_multiple_of(4);
                self.bytes.resize(padded, 0);
            }
        }
        self.add_run(Run { offset, count: 1, len: data.len(), key, flags });
    }

    #[inline(always)]
    fn extend_fixed<const N: usize>(&mut self, data: &[u8]) {
        let block: &[u8; N] = data.try_into().expect("the caller matched the length");
        self.bytes.extend_from_slice(block);
    }

    /// File `data` as consecutive plain-hash messages of `len` bytes each
    /// (`len > 0`, `data.len()` a multiple of it): one copy, one run.
    pub fn push_hash_fixed(&mut self, data: &[u8], len: usize) {
        debug_assert!(len > 0 && data.len().is_multiple_of(len));
        let count = data.len() / len;
        let offset = self.bytes.len();
        if len.is_multiple_of(4) {
            self.bytes.extend_from_slice(data);
        } else {
            self.bytes.reserve(count * stride(len));
            for message in data.chunks_exact(len) {
                self.bytes.extend_from_slice(message);
                self.bytes.resize(self.bytes.len().next_multiple_of(4), 0);
            }
        }
        self.add_run(Run { offset, count, len, key: 0, flags: 0 });
    }

    /// Append `run`, merging it into the last one when it continues it.
    fn add_run(&mut self, run: Run) {
        if run.count == 0 {
            return;
        }
        self.common_len = match (self.count, self.common_len) {
            (0, _) => Some(run.len),
            (_, Some(len)) if len == run.len => Some(len),
            _ => None,
        };
        self.count += run.count;
        if let Some(last) = self.runs.last_mut() {
            let continues = last.len == run.len
                && last.key == run.key
                && last.flags == run.flags
                && last.offset + last.count * last.stride() == run.offset;
            if continues {
                last.count += run.count;
                return;
            }
        }
        self.runs.push(run);
    }

    /// The message of `job`.
    pub fn message(&self, job: &Job) -> &[u8] {
        &self.bytes[job.offset..job.offset + job.len]
    }

    /// The digest of one job straight from the blake3 crate (multi-chunk path).
    pub fn crate_digest(&self, job: &Job) -> [u8; 32] {
        let data = self.message(job);
        match &self.sources[job.key as usize] {
            KeySource::Iv => *blake3::hash(data).as_bytes(),
            KeySource::Key(key) => *blake3::keyed_hash(key, data).as_bytes(),
            KeySource::Context(context) => blake3::derive_key(context, data),
        }
    }

    /// Drop the jobs and their bytes, keeping the key tables and the capacity.
    pub fn reset(&mut self) {
        self.bytes.clear();
        self.runs.clear();
        self.count = 0;
        self.common_len = None;
    }

    /// Forget everything, keys included, keeping the buffers' capacity.
    pub fn clear(&mut self) {
        self.reset();
        self.keys.truncate(1);
        self.sources.truncate(1);
        self.key_slots.clear();
        self.context_slots.clear();
    }
}
