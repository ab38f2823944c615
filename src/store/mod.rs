//! The durable register store.
//!
//! Registers, nullifiers and consumed ids live in memory (the index) for
//! speed; durability comes from one append per batch: the batch's record and
//! delta are one checksummed frame appended to `store.log` and fsynced, so a
//! crash leaves the store at the previous or the next batch (a torn last
//! frame is discarded on open). Every so often (and on
//! [`RegisterStore::close`]) the index's net changes and the batch records
//! are checkpointed into redb tables and the log emptied; opening loads the
//! last checkpoint and replays the log after it.
//!
//! The state root is a fixed-shape bucketed Merkle tree (through the hash
//! pool) over the live registers' commitments, BLAKE3(state_encoding): see
//! [`state_tree`] and docs/ARCHITECTURE.md for the exact definition.

mod checkpoint;
mod codec;
mod delta;
mod durable;
mod error;
mod index;
mod log;
mod record;
pub mod repair;
mod rows;
mod state_tree;
mod tables;

pub use delta::{BatchDelta, EncodedDelta};
pub use durable::{Access, StoreOptions};
pub use error::StoreError;
pub use index::Entry;
pub use record::{BatchRecord, ProofRecord, StageTimings};
pub use state_tree::{bucket_of, reference_root, StateTree, TreeUpdate, BUCKETS, BUCKET_BITS};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::content_id::ContentId;
use crate::hash::{HashHandle, HashPool};
use crate::resource::{ResourceId, ResourceRegister};

use durable::Durable;
use index::Index;
use log::AheadTicket;

/// A batch's delta with everything computed that a commit needs: the new
/// registers' commitments and the would-be state tree. Simulation stops here.
#[derive(Debug)]
pub struct StagedBatch {
    pub delta: BatchDelta,
    /// The delta's encoding for the log, made while the batch was staged
    /// (empty until the append if staged without `for_commit`).
    encoded_delta: EncodedDelta,
    /// Where that encoding was written to the log ahead of the append.
    ahead: Option<AheadTicket>,
    pub commitments: Vec<[u8; 32]>,
    pub root_before: [u8; 32],
    pub root_after: [u8; 32],
    tree: TreeUpdate,
}

/// A batch appended to the log, to be applied in memory
/// ([`RegisterStore::apply`]): its record and frame size.
#[must_use = "an appended batch must be applied before the next one is appended"]
pub struct Appended {
    record: BatchRecord,
    bytes: u64,
    /// How long the append took.
    append_us: u64,
}

pub struct RegisterStore {
    durable: Durable,
    index: Index,
    tree: StateTree,
    head: u64,
    /// The head batch's timestamp (0 for a fresh store): no batch may be dated before it.
    head_timestamp: u64,
    /// Content read so far (behind a lock: batches read the store from
    /// two threads while one is staged beside the next one's execution).
    programs: Mutex<HashMap<ContentId, Arc<Vec<u8>>>>,
    /// Tests: the next staging panics.
    #[cfg(test)]
    panic_next_stage: std::sync::atomic::AtomicBool,
}

impl RegisterStore {
    /// Open (or create) the store in directory `dir` (files `dir/store.redb`
    /// and `dir/store.log`) for writing.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// Open the existing store in `dir` without writing anything: any number
    /// of readers may open it beside its one writer.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_as(dir, StoreOptions::default(), Access::ReadOnly)
    }

    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self, StoreError> {
        Self::open_as(dir, options, Access::Write)
    }

    pub fn open_as(dir: impl AsRef<Path>, options: StoreOptions, access: Access) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        check_layout(dir, access)?;
        if access == Access::Write {
            crate::fsutil::create_dir_durably(dir)
                .map_err(|e| StoreError::Io { path: dir.display().to_string(), reason: e.to_string() })?;
        }
        let (durable, loaded) = Durable::open(&Self::file_in(dir), options, access)?;
        let mut index = loaded.index;
        for (number, delta) in loaded.replay {
            index.apply(&delta, number);
        }
        let mut pool = HashPool::new();
        index.recompute_commitments(&mut pool)?;
        let mut tree = StateTree::default();
        let update = tree.stage(index.all_buckets(), &mut pool)?;
        tree.apply(&update);
        let mut store = RegisterStore {
            durable,
            index,
            tree,
            head: loaded.head,
            head_timestamp: 0,
            programs: Mutex::default(),
            #[cfg(test)]
            panic_next_stage: Default::default(),
        };
        if let Some(expected) = loaded.root {
            let found = store.state_root();
            if found != expected {
                return Err(StoreError::RootMismatch {
                    batch: loaded.head,
                    expected: crate::content_id::hex_encode(&expected),
                    found: crate::content_id::hex_encode(&found),
                });
            }
        }
        if store.head > 0 {
            store.head_timestamp = store.batch(store.head)?.map_or(0, |r| r.timestamp);
        }
        store.durable.resume_checkpoint();
        tracing::debug!(dir = %dir.display(), ?access, head = store.head, registers = store.len(), "store opened");
        Ok(store)
    }

    /// The database file inside a data directory.
    pub fn file_in(dir: &Path) -> PathBuf {
        dir.join("store.redb")
    }

    /// The batch log inside a data directory (batches since the last checkpoint).
    pub fn log_in(dir: &Path) -> PathBuf {
        dir.join("store.log")
    }

    /// Checkpoint and close cleanly.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.checkpoint()
    }

    /// The number of the last committed batch (0 for a fresh store).
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The last committed batch's timestamp (0 for a fresh store).
    pub fn head_timestamp(&self) -> u64 {
        self.head_timestamp
    }

    pub fn state_root(&self) -> [u8; 32] {
        self.tree.root()
    }

    pub fn len(&self) -> usize {
        self.index.registers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.registers.is_empty()
    }

    pub fn get(&self, id: &ResourceId) -> Option<&ResourceRegister> {
        self.index.registers.get(id).map(|r| &**r)
    }

    /// The register `id`, shared: a batch that loads it takes a reference
    /// count, not a copy.
    pub fn get_shared(&self, id: &ResourceId) -> Option<&Arc<ResourceRegister>> {
        self.index.registers.get(id)
    }

    /// The register `id` and its commitment.
    pub fn entry(&self, id: &ResourceId) -> Option<Entry<'_>> {
        let register = self.index.registers.get(id)?;
        let commitment = self.index.registers.commitment(id)?;
        Some(Entry { register, commitment })
    }

    /// Live registers in id order.
    pub fn registers(&self) -> impl Iterator<Item = &ResourceRegister> {
        self.index.registers.values().map(|r| &**r)
    }

    /// The batch in which `id` was consumed, if it was.
    pub fn consumed_in(&self, id: &ResourceId) -> Option<u64> {
        self.index.consumed.get(id).copied()
    }

    /// The batch that spent `nullifier`, if any did.
    pub fn nullifier_batch(&self, nullifier: &[u8; 32]) -> Option<u64> {
        self.index.nullifiers.get(nullifier).copied()
    }

    pub fn nullifier_count(&self) -> usize {
        self.index.nullifiers.len()
    }

    /// Whether the store was opened for writing.
    pub fn writable(&self) -> bool {
        self.durable.writable()
    }

    /// Store program (or any content) bytes under their content id. Setup
    /// path, not the VM's: hashing inline here is fine. Bytes stored under
    /// the id before that do not match it (a damaged store) are replaced.
    pub fn put_content(&self, bytes: &[u8]) -> Result<ContentId, StoreError> {
        let id = ContentId::of_encoding(bytes);
        let held = match self.content(&id) {
            Ok(held) => held,
            Err(StoreError::ContentMismatch { .. }) => None,
            Err(e) => return Err(e),
        };
        if held.is_none() {
            self.durable.put_content(&id, bytes)?;
            self.programs().insert(id, Arc::new(bytes.to_vec()));
        }
        Ok(id)
    }

    /// The content stored under `id`, checked against it: bytes that do not
    /// hash to their id are an error, never used.
    pub fn content(&self, id: &ContentId) -> Result<Option<Arc<Vec<u8>>>, StoreError> {
        if let Some(bytes) = self.programs().get(id) {
            return Ok(Some(bytes.clone()));
        }
        let found = self.durable.content(id)?.map(Arc::new);
        if let Some(bytes) = &found {
            let actual = ContentId::of_encoding(bytes);
            if actual != *id {
                return Err(StoreError::ContentMismatch { id: id.to_string(), actual: actual.to_string() });
            }
            self.programs().insert(*id, bytes.clone());
        }
        Ok(found)
    }

    fn programs(&self) -> std::sync::MutexGuard<'_, HashMap<ContentId, Arc<Vec<u8>>>> {
        // A panic while holding it cannot leave the map half-changed.
        self.programs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn batch(&self, number: u64) -> Result<Option<BatchRecord>, StoreError> {
        self.durable.batch(number)
    }

    /// The newest `limit` batch records, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<BatchRecord>, StoreError> {
        self.durable.history(limit)
    }

    /// Compute commitments and the would-be root of `delta` without writing.
    /// With `for_commit`, the delta's log encoding is made beside it on the
    /// rayon pool (the tree is mostly one thread's work between its flushes)
    /// and written to the log ahead of the append, so the device writes it
    /// while the tree is staged.
    pub fn stage(&self, delta: BatchDelta, pool: &mut HashPool, for_commit: bool) -> Result<StagedBatch, StoreError> {
        #[cfg(test)]
        if self.panic_next_stage.swap(false, std::sync::atomic::Ordering::Relaxed) {
            panic!("injected staging panic (test)");
        }
        let (staged, (encoded_delta, ahead)) = rayon::join(
            || self.stage_tree(&delta, pool),
            || match for_commit {
                true => {
                    let encoded = delta.encode_in_place();
                    let ahead = self.durable.write_ahead(&encoded.bytes);
                    (encoded, ahead)
                }
                false => Default::default(),
            },
        );
        let (commitments, tree) = staged?;
        let root_before = self.state_root();
        let root_after = tree.root().unwrap_or(root_before);
        Ok(StagedBatch { delta, encoded_delta, ahead, commitments, root_before, root_after, tree })
    }

    /// The commitments of `delta`'s upserts and the tree after it. A large
    /// batch on a CPU pool is staged as two halves on two threads (the
    /// upserts' commitments by position, then the tree's halves below nodes
    /// 2 and 3, each in its own pool): filing buckets and parents between
    /// flushes is single-threaded work, most of a staging. A GPU pool keeps
    /// one stream of flushes.
    fn stage_tree(&self, delta: &BatchDelta, pool: &mut HashPool) -> Result<(Vec<[u8; 32]>, TreeUpdate), StoreError> {
        let changed = delta.upserts.len() + delta.removed.len();
        if changed < SPLIT_STAGING_FROM || pool.backend() == crate::ResolvedBackend::Gpu {
            let (ids, commitments) = commitments_of(&delta.upserts, changed, pool)?;
            let changes = sorted_changes(&delta.removed, &ids, &commitments);
            let buckets = self.index.file_buckets_with(&changes, pool);
            return Ok((commitments, self.tree.stage_filed(buckets, pool)?));
        }
        let mut sibling = pool.sibling();
        let (first, second) = delta.upserts.split_at(delta.upserts.len() / 2);
        let (a, b) = rayon::join(
            || commitments_of(first, changed / 2, pool),
            || commitments_of(second, changed - changed / 2, &mut sibling),
        );
        let ((mut ids, mut commitments), (more_ids, more_commitments)) = (a?, b?);
        ids.extend(more_ids);
        commitments.extend(more_commitments);
        let changes = sorted_changes(&delta.removed, &ids, &commitments);
        let (left, right) = changes.split_at(changes.partition_point(|(id, _)| bucket_of(id) < BUCKETS / 2));
        let (left, right) = rayon::join(
            || self.tree.stage_half(self.index.file_buckets_with(left, pool), pool),
            || self.tree.stage_half(self.index.file_buckets_with(right, &mut sibling), &mut sibling),
        );
        let tree = self.tree.join_halves(left?, right?, pool)?;
        Ok((commitments, tree))
    }

    /// Append the staged batch durably (one fsynced log frame), then apply
    /// it in memory. `record`'s number and roots are filled in here.
    pub fn commit(&mut self, staged: StagedBatch, record: BatchRecord) -> Result<BatchRecord, StoreError> {
        self.commit_while(staged, record, || ()).map(|(record, ())| record)
    }

    /// [`RegisterStore::commit`], running `during` beside the append (see
    /// [`RegisterStore::append_while`]).
    pub fn commit_while<R: Send>(
        &mut self,
        mut staged: StagedBatch,
        record: BatchRecord,
        during: impl FnOnce() -> R + Send,
    ) -> Result<(BatchRecord, R), StoreError> {
        let (appended, during) = self.append_while(&mut staged, record, during);
        let record = appended.map(|appended| self.apply(staged, appended));
        match (record, during) {
            (Ok(record), Ok(during)) => Ok((record, during)),
            (_, Err(panic)) => std::panic::resume_unwind(panic),
            (Err(e), Ok(_)) => Err(e),
        }
    }

    /// The first half of a commit: append the staged batch durably (one
    /// fsynced log frame), running `during` on this thread while the frame
    /// is written and synced on another (the sync is milliseconds of
    /// waiting). Reads of the store see no change until the batch is
    /// [applied](RegisterStore::apply), which must come next: another batch
    /// cannot be appended before (it is refused with an error). Needs only
    /// a shared reference, so it may run beside the next batch's execution.
    /// `during` must not need the store; if it panics, the append still
    /// completes (or fails) first, and the panic is handed back.
    pub fn append_while<R: Send>(
        &self,
        staged: &mut StagedBatch,
        mut record: BatchRecord,
        during: impl FnOnce() -> R + Send,
    ) -> (Result<Appended, StoreError>, std::thread::Result<R>) {
        record.number = self.head + 1;
        record.state_root_before = staged.root_before;
        record.state_root_after = staged.root_after;
        if staged.encoded_delta.bytes.is_empty() {
            // Staged without `for_commit`: encode it now.
            staged.encoded_delta = staged.delta.encode_in_place();
        }
        let encoded = &staged.encoded_delta.bytes;
        let started = std::time::Instant::now();
        let write = || self.durable.write(encoded, &record, staged.ahead);
        let (during, written) = std::thread::scope(|scope| {
            // `during` stays on this thread: it allocates what the caller frees.
            let appender = std::thread::Builder::new().name("cvm-append".into());
            match appender.spawn_scoped(scope, write) {
                Ok(append) => {
                    let during = std::panic::catch_unwind(std::panic::AssertUnwindSafe(during));
                    let written = append.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    (during, written)
                }
                // No thread to be had: append, then run `during`.
                Err(_) => {
                    let written = write();
                    (std::panic::catch_unwind(std::panic::AssertUnwindSafe(during)), written)
                }
            }
        });
        let append_us = micros(started);
        (written.map(|bytes| Appended { record, bytes, append_us }), during)
    }

    /// The second half of a commit: apply the batch [appended](RegisterStore::append_while) in memory.
    /// Returns the record with its commit time (the append and this apply).
    pub fn apply(&mut self, staged: StagedBatch, appended: Appended) -> BatchRecord {
        let Appended { mut record, bytes, append_us } = appended;
        let started = std::time::Instant::now();
        self.head = record.number;
        self.head_timestamp = record.timestamp;
        self.index.apply_with(&staged.delta, &staged.commitments, record.number);
        self.tree.apply(&staged.tree);
        record.timings.commit_us = append_us.saturating_add(micros(started));
        // The record as the checkpoint will store it: with its commit time
        // (the log's copy, written before, says 0).
        self.durable.record(&record, bytes, Arc::new(staged.encoded_delta));
        // The batch is durable in the log already: a checkpoint failing in
        // the background reports it, and the next one retries.
        self.durable.after_commit();
        tracing::debug!(
            batch = record.number,
            ops = record.ops_count,
            commit_us = record.timings.commit_us,
            "batch committed"
        );
        record
    }

    /// Tests: the next staging panics.
    #[cfg(test)]
    pub(crate) fn panic_next_stage(&self) {
        self.panic_next_stage.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a commit failed with its outcome unknown: its log frame could
    /// not be cut back, so the batch may be whole on disk. Nothing more
    /// commits; reopening the store tells whether it committed.
    pub fn commit_uncertain(&self) -> bool {
        self.durable.log().file.as_ref().is_some_and(|file| file.uncertain())
    }

    /// Tests: the next log append fails (the store refuses the batch).
    #[cfg(test)]
    pub(crate) fn fail_next_append(&mut self) {
        if let Some(file) = self.durable.log().file.as_mut() {
            file.fail_next_append = true;
        }
    }

    /// Fold every committed batch into the redb tables now (after any
    /// checkpoint running in the background) and empty the log.
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.durable.checkpoint()
    }
}

/// A store that lost its database but kept its log (or a read-only open of
/// a directory with no store) is an error: creating an empty database
/// beside a log would silently drop every batch already checkpointed.
///
/// The database is made before the log (the log's frames are sealed with a
/// key the database keeps), so a log that exists, even empty (a clean close
/// checkpoints it away), means a database was made: one now missing or
/// emptied was lost, with every batch in it.
fn check_layout(dir: &Path, access: Access) -> Result<(), StoreError> {
    let db = RegisterStore::file_in(dir);
    let db_len = std::fs::metadata(&db).map(|m| m.len());
    if db_len.as_ref().is_ok_and(|len| *len > 0) {
        return Ok(());
    }
    let missing = |reason: String| StoreError::Missing { dir: dir.display().to_string(), reason };
    let log = RegisterStore::log_in(dir);
    let has_log = dir.is_dir() && (log.exists() || !log::segments(&log)?.is_empty());
    let lost = match db_len {
        Ok(_) => "store.redb is empty",
        Err(_) => "store.redb is missing",
    };
    if has_log {
        return Err(missing(format!(
            "{lost} but the batch log is there: the store's batches and registers are gone. Restore store.redb \
             from a backup; refusing to start an empty store in its place"
        )));
    }
    if access == Access::ReadOnly {
        return Err(missing(match dir.is_dir() {
            true if db_len.is_ok() => "store.redb is empty (no batch was ever committed with this data dir)".into(),
            true => "it has no store.redb (no batch was ever run with this data dir)".into(),
            false if dir.exists() => "it is not a directory".into(),
            false => "the directory does not exist".into(),
        }));
    }
    Ok(())
}

fn micros(since: std::time::Instant) -> u64 {
    since.elapsed().as_micros().min(u64::MAX as u128) as u64
}

/// Batches changing at least this many registers are staged in two halves
/// (see `RegisterStore::stage_tree`).
const SPLIT_STAGING_FROM: usize = 4096;

/// The ids of `upserts` and their commitments (BLAKE3 of the state
/// encoding), hashed in `pool`, which is first given room for these and for
/// the buckets and parents of `changed` registers after them (growing the
/// digest buffer as they came was 2% of a batch).
fn commitments_of(
    upserts: &[Arc<ResourceRegister>],
    changed: usize,
    pool: &mut HashPool,
) -> Result<(Vec<ResourceId>, Vec<[u8; 32]>), crate::hash::HashError> {
    // Commitments (~250 bytes each), then about one bucket per change, then
    // the tree's parents (a few per dirty bucket over all levels).
    pool.reserve(upserts.len() + 4 * changed, 256 * upserts.len() + 96 * changed);
    // The ids are taken while the registers are in cache for the encoding:
    // sorting through the `Arc`s missed the cache per id.
    let mut ids = Vec::with_capacity(upserts.len());
    let handles: Vec<HashHandle> = upserts
        .iter()
        .map(|r| {
            ids.push(r.id);
            pool.hash_with(|buf| r.write_state_encoding(buf))
        })
        .collect();
    pool.flush()?;
    let commitments = handles
        .iter()
        .map(|h| pool.get(*h).ok_or(crate::hash::HashError::UnknownHandle(h.0)))
        .collect::<Result<_, _>>()?;
    Ok((ids, commitments))
}

/// Every id a delta changes (`removed`, and `upserts` with their
/// `commitments`), once, ascending, with its new commitment (None: removed;
/// an upsert wins over a removal of the same id). Sorted as 16-byte keys (the
/// first 8 id bytes and an index) rather than as 72-byte entries.
fn sorted_changes(
    removed: &[ResourceId],
    upserts: &[ResourceId],
    commitments: &[[u8; 32]],
) -> Vec<(ResourceId, Option<[u8; 32]>)> {
    let all = removed.len() + upserts.len();
    let id = |i: u32| match (i as usize).checked_sub(removed.len()) {
        None => &removed[i as usize],
        Some(u) => &upserts[u],
    };
    let prefix = |id: &ResourceId| u64::from_be_bytes(id.as_bytes()[..8].try_into().expect("8 bytes"));
    let mut order: Vec<(u64, u32)> = (0..all as u32).map(|i| (prefix(id(i)), i)).collect();
    // A total order: an id is at most once removed and once upserted, and
    // the removal (lower index) sorts first.
    let by_id = |a: &(u64, u32), b: &(u64, u32)| a.0.cmp(&b.0).then_with(|| id(a.1).cmp(id(b.1))).then(a.1.cmp(&b.1));
    if order.len() >= SPLIT_STAGING_FROM {
        rayon::slice::ParallelSliceMut::par_sort_unstable_by(&mut order[..], by_id);
    } else {
        order.sort_unstable_by(by_id);
    }
    let mut changes: Vec<(ResourceId, Option<[u8; 32]>)> = Vec::with_capacity(order.len());
    for (_, i) in order {
        let change = match (i as usize).checked_sub(removed.len()) {
            None => (removed[i as usize], None),
            Some(u) => (upserts[u], Some(commitments[u])),
        };
        match changes.last_mut() {
            Some(last) if last.0 == change.0 => *last = change,
            _ => changes.push(change),
        }
    }
    changes
}

impl Drop for RegisterStore {
    fn drop(&mut self) {
        if !self.writable() {
            return;
        }
        if let Err(e) = self.checkpoint() {
            tracing::warn!("checkpoint on close failed (the delta log still holds every batch): {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::resource::NewResource;

    fn register(seed: u32) -> Arc<ResourceRegister> {
        let new = NewResource {
            logic: ContentId::default(),
            domain: crate::DomainId::new("d"),
            fungibility_domain: "f".into(),
            quantity: 1,
            metadata: Default::default(),
            contents: Vec::new(),
            nullifier_key_commitment: [0; 32],
            controller: "c".into(),
            nonce: [0; 32],
        };
        // Ids sharing their first 8 bytes in pairs, so the full comparison is exercised.
        let mut id = *blake3::hash(&(seed / 2).to_le_bytes()).as_bytes();
        id[31] = seed as u8;
        Arc::new(new.into_register(ContentId::from_digest(id)))
    }

    #[test]
    fn sorted_changes_orders_ids_once_with_upserts_winning() {
        let upserts: Vec<Arc<ResourceRegister>> = (0..300).map(register).collect();
        let commitments: Vec<[u8; 32]> = (0..300u32).map(|i| *blake3::hash(&i.to_be_bytes()).as_bytes()).collect();
        // Removed: every third upserted id, plus ids that are only removed.
        let removed: Vec<ResourceId> =
            (0..300).step_by(3).map(|i| upserts[i].id).chain((300..400).map(|i| register(i).id)).collect();
        let mut model: BTreeMap<ResourceId, Option<[u8; 32]>> = removed.iter().map(|id| (*id, None)).collect();
        model.extend(upserts.iter().zip(&commitments).map(|(r, c)| (r.id, Some(*c))));
        let upserts: Vec<ResourceId> = upserts.iter().map(|r| r.id).collect();
        let expected: Vec<(ResourceId, Option<[u8; 32]>)> = model.into_iter().collect();
        assert_eq!(sorted_changes(&removed, &upserts, &commitments), expected);
        assert!(sorted_changes(&[], &[], &[]).is_empty());
    }

    /// A staged batch creating one register (seeded) in `store`.
    fn staged_one(store: &RegisterStore, seed: u32) -> StagedBatch {
        let delta =
            BatchDelta { upserts: vec![register(seed)], removed: Vec::new(), nullifiers: vec![[seed as u8; 32]] };
        store.stage(delta, &mut HashPool::new(), true).expect("stage")
    }

    /// An empty store in a fresh directory.
    fn fresh_store() -> (tempfile::TempDir, RegisterStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = RegisterStore::open(dir.path()).unwrap();
        (dir, store)
    }

    /// Head, root and register count of the store in `dir`, reopened.
    fn reopened(dir: &tempfile::TempDir) -> (u64, [u8; 32], usize) {
        let store = RegisterStore::open(dir.path()).unwrap();
        (store.head(), store.state_root(), store.len())
    }

    #[test]
    fn commit_while_runs_the_work_beside_the_append_and_returns_it() {
        let (dir, mut store) = fresh_store();
        let staged = staged_one(&store, 1);
        let root = staged.root_after;
        let (record, during) = store.commit_while(staged, BatchRecord::default(), || 42).unwrap();
        assert_eq!((record.number, during, store.head(), store.state_root()), (1, 42, 1, root));
        drop(store);
        assert_eq!(reopened(&dir), (1, root, 1));
    }

    /// An append changes nothing a read sees until it is applied, and a
    /// second append before that is refused (it would reuse the number);
    /// once applied, appends go on.
    #[test]
    fn an_appended_batch_is_seen_only_once_applied_and_must_be_applied_first() {
        let (dir, mut store) = fresh_store();
        let mut staged = staged_one(&store, 1);
        let root = staged.root_after;
        let (appended, during) = store.append_while(&mut staged, BatchRecord::default(), || 7);
        let appended = appended.unwrap();
        assert_eq!((during.unwrap(), store.head(), store.len()), (7, 0, 0));
        let mut second = staged_one(&store, 2);
        let refused = store.append_while(&mut second, BatchRecord::default(), || ()).0.map(|_| ()).unwrap_err();
        assert!(refused.to_string().contains("batch 1 was written to the log but never applied"), "{refused}");
        let record = store.apply(staged, appended);
        assert_eq!((record.number, store.head(), store.state_root()), (1, 1, root));
        let second = staged_one(&store, 2);
        store.commit(second, BatchRecord::default()).unwrap();
        drop(store);
        assert_eq!(reopened(&dir).0, 2);
    }

    /// A commit cut short between the append and the apply: a checkpoint
    /// is refused (it would fold the log without that batch and delete it),
    /// and reopening replays the frame, so the store is at that batch.
    #[test]
    fn a_batch_appended_but_never_applied_is_kept_and_replayed_on_open() {
        let (dir, mut store) = fresh_store();
        store.commit(staged_one(&store, 1), BatchRecord::default()).unwrap();
        let mut staged = staged_one(&store, 2);
        let root = staged.root_after;
        let (appended, _) = store.append_while(&mut staged, BatchRecord::default(), || ());
        drop(appended.unwrap());
        let refused = store.checkpoint().unwrap_err().to_string();
        assert!(refused.contains("batch 2 was written to the log but never applied"), "{refused}");
        drop(store);
        assert_eq!(reopened(&dir), (2, root, 2));
    }

    /// Each register with its commitment; nullifiers and consumed ids with
    /// their batch; the root.
    type IndexSnapshot = (Vec<(ResourceRegister, [u8; 32])>, Vec<([u8; 32], u64)>, [u8; 32]);

    /// Everything the index holds.
    fn index_snapshot(store: &RegisterStore) -> IndexSnapshot {
        let registers = store.registers().map(|r| (r.clone(), store.entry(&r.id).unwrap().commitment)).collect();
        let mut spent: Vec<([u8; 32], u64)> = store.index.nullifiers.iter().map(|(n, b)| (*n, *b)).collect();
        spent.extend(store.index.consumed.iter().map(|(id, b)| (*id.as_bytes(), *b)));
        spent.sort();
        (registers, spent, store.state_root())
    }

    /// A batch with removals, an update, insertions and nullifiers whose
    /// append fails leaves the index exactly as it was.
    #[test]
    fn a_failed_append_leaves_the_index_exactly_as_it_was() {
        let (_dir, mut store) = fresh_store();
        let first: Vec<Arc<ResourceRegister>> = (0..40).map(register).collect();
        let delta = BatchDelta { upserts: first.clone(), removed: Vec::new(), nullifiers: vec![[1; 32]] };
        let staged = store.stage(delta, &mut HashPool::new(), true).unwrap();
        store.commit(staged, BatchRecord::default()).unwrap();
        let before = index_snapshot(&store);
        let mut updated = ResourceRegister::clone(&first[5]);
        updated.version += 1;
        let delta = BatchDelta {
            upserts: (40..70).map(register).chain([Arc::new(updated)]).collect(),
            removed: first[10..30].iter().map(|r| r.id).collect(),
            nullifiers: vec![[2; 32], [3; 32]],
        };
        let staged = store.stage(delta, &mut HashPool::new(), true).unwrap();
        store.fail_next_append();
        assert!(store.commit_while(staged, BatchRecord::default(), || ()).is_err());
        assert_eq!(index_snapshot(&store), before);
        assert_eq!(store.head(), 1);
    }

    /// The root from the registers alone: BLAKE3 of each state encoding.
    fn reference_root_of(store: &RegisterStore) -> [u8; 32] {
        let commitments = store.registers().map(|r| (r.id, *blake3::hash(&r.state_encoding()).as_bytes())).collect();
        reference_root(&commitments, &mut HashPool::new()).unwrap()
    }

    /// Batches of at least `SPLIT_STAGING_FROM` changes are staged in two
    /// halves: their roots equal the reference, and reopening (which stages
    /// the whole tree at once and checks the recorded root) agrees.
    #[test]
    fn large_batches_staged_in_halves_match_the_reference_root() {
        let (dir, mut store) = fresh_store();
        let first: Vec<Arc<ResourceRegister>> = (0..6000).map(register).collect();
        let delta = BatchDelta { upserts: first.clone(), removed: Vec::new(), nullifiers: vec![[1; 32]] };
        assert!(delta.upserts.len() >= SPLIT_STAGING_FROM);
        let staged = store.stage(delta, &mut HashPool::new(), true).unwrap();
        store.commit(staged, BatchRecord::default()).unwrap();
        assert_eq!(store.state_root(), reference_root_of(&store));
        let mut updated = ResourceRegister::clone(&first[7]);
        updated.version += 1;
        let delta = BatchDelta {
            upserts: (6000..9000).map(register).chain([Arc::new(updated)]).collect(),
            removed: first[100..3100].iter().map(|r| r.id).collect(),
            nullifiers: vec![[2; 32]],
        };
        let staged = store.stage(delta, &mut HashPool::new(), true).unwrap();
        store.commit(staged, BatchRecord::default()).unwrap();
        let root = store.state_root();
        assert_eq!((root, store.len()), (reference_root_of(&store), 6000));
        drop(store);
        assert_eq!(reopened(&dir), (2, root, 6000));
    }

    #[test]
    fn a_failed_append_commits_nothing_and_the_next_batch_commits() {
        let (dir, mut store) = fresh_store();
        let before = store.state_root();
        store.fail_next_append();
        let staged = staged_one(&store, 1);
        let err = store.commit_while(staged, BatchRecord::default(), || 42).unwrap_err();
        assert!(err.to_string().contains("injected append failure"), "{err}");
        assert_eq!((store.head(), store.state_root(), store.len(), store.nullifier_count()), (0, before, 0, 0));
        // The torn frame was cut back: the next batch is number 1, and it reopens.
        let staged = staged_one(&store, 2);
        let root = staged.root_after;
        store.commit(staged, BatchRecord::default()).unwrap();
        drop(store);
        assert_eq!(reopened(&dir), (1, root, 1));
    }

    #[test]
    fn a_panic_beside_the_append_still_leaves_the_batch_committed() {
        let (dir, mut store) = fresh_store();
        let staged = staged_one(&store, 1);
        let root = staged.root_after;
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.commit_while(staged, BatchRecord::default(), || panic!("results failed"))
        }));
        assert!(panicked.is_err());
        // Durable and applied: memory and disk agree on batch 1.
        assert_eq!((store.head(), store.state_root(), store.len()), (1, root, 1));
        drop(store);
        assert_eq!(reopened(&dir), (1, root, 1));
    }
}
