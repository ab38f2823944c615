//! Durability: each batch is one fsynced append to the batch log
//! (`store.log`, see [`super::log`]); redb holds the checkpoints (registers,
//! nullifiers, consumed ids, batch records), the content store and the
//! batch-record index.
//!
//! A checkpoint rotates the log into a segment and folds the segment's
//! batches into the tables on its own thread ([`super::checkpoint`]), from
//! their log encodings kept in memory since the commit (segments are read
//! only on open), so batches go on committing meanwhile; at most one runs at
//! a time. Records of batches not yet in the tables are served from memory.
//! A failed checkpoint leaves its segments in place, and the next one folds
//! their batches too.
//!
//! The `deltas` table is where earlier versions appended deltas; opening
//! folds what it still holds into the tables once.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use redb::{Builder, ConcurrencyMode, Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable};

use crate::content_id::ContentId;
use crate::resource::ResourceId;

use super::checkpoint::{fold_batches, fold_legacy_deltas, meta_u64, move_registers_into_rows, seal_rows, Unfolded};
use super::codec::Decoder;
use super::delta::EncodedDelta;
use super::index::Index;
use super::log::frame::FrameKey;
use super::log::{read_log, read_segment, segment_path, segments, AheadTicket, BatchLog, Frame};
use super::rows::{load_registers, RowKeys};
use super::tables::{
    frame_key_row, read_frame_key, read_spent_row, row_format, RowFormat, BATCHES, BATCHES_NAME, CONSUMED, CONTENT,
    DELTAS, FRAME_KEY, HEAD, META, NULLIFIERS, REGISTERS, ROOT, ROWS, SPENT, SPENT_NAME,
};
use super::{BatchDelta, BatchRecord, StoreError};

/// When the batch log is folded into the tables.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// Checkpoint once the log holds this many bytes. The batches' log
    /// encodings stay in memory until their checkpoint, up to twice this
    /// (a checkpoint still running when the next is due).
    pub checkpoint_bytes: u64,
    /// Checkpoint at least every this many batches.
    pub checkpoint_batches: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { checkpoint_bytes: 64 << 20, checkpoint_batches: 4096 }
    }
}

/// Whether a store may be written: one writer process at a time, any
/// number of readers beside it (redb's single-writer mode: a reader sees
/// the writer's checkpoints as they commit, and the log as it grows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Write,
    ReadOnly,
}

/// The redb database, opened for writing or read-only.
pub(super) enum Db {
    Writer(Arc<Database>),
    Reader(ReadOnlyDatabase),
}

impl Db {
    fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        Ok(match self {
            Db::Writer(db) => db.begin_read()?,
            Db::Reader(db) => db.begin_read()?,
        })
    }

    /// The database, to write to it.
    fn writer(&self) -> Result<&Arc<Database>, StoreError> {
        match self {
            Db::Writer(db) => Ok(db),
            Db::Reader(_) => Err(StoreError::ReadOnly),
        }
    }
}

/// How every process opens the database: one writer, readers beside it.
pub(super) fn builder() -> Builder {
    let mut builder = Builder::new();
    builder.set_concurrency_mode(ConcurrencyMode::SingleWriter);
    builder
}

pub(super) struct Durable {
    db: Db,
    /// Whether the tables' rows end in checksums (always, once a writer of
    /// this version has opened the store).
    format: RowFormat,
    /// Behind a lock so a batch can be written to it through a shared
    /// reference (beside the next batch's execution), then recorded here.
    log: Mutex<Log>,
    log_path: PathBuf,
    /// The first batch in the log, if it holds any.
    log_first: Option<u64>,
    /// Bytes and batches in the log since it was last rotated.
    log_bytes: u64,
    log_batches: u64,
    /// Rotated segments not in the tables yet, oldest first.
    segments: Vec<PathBuf>,
    /// The batches not in the tables yet (in segments or the log), oldest
    /// first, numbers consecutive, with their log encodings for the
    /// checkpoint (their records are served from here too).
    pending: VecDeque<Unfolded>,
    options: StoreOptions,
    /// The checkpoint's row map: away while a checkpoint thread has it, and
    /// lost (reloaded from the tables when next needed) if that one panicked.
    rows: Option<RowKeys>,
    running: Option<Running>,
    /// Tests: the next background checkpoint fails.
    #[cfg(test)]
    fail_next_checkpoint: bool,
}

/// The batch log and the batch written to it but not recorded yet, if any:
/// a second write before the record would reuse its number.
pub(super) struct Log {
    /// None in a read-only store.
    pub file: Option<BatchLog>,
    written: Option<u64>,
}

impl Log {
    /// An error if a batch was written but not applied in memory (its
    /// commit was cut short): only reopening, which replays it, goes on.
    fn check_nothing_unapplied(&self) -> Result<(), StoreError> {
        self.written.map_or(Ok(()), |written| Err(unapplied(written)))
    }
}

fn unapplied(written: u64) -> StoreError {
    StoreError::Corrupt {
        what: "batch log".into(),
        offset: None,
        reason: format!(
            "batch {written} was written to the log but never applied in memory (its commit was cut short); \
             reopen the store, which replays it, before committing or checkpointing more"
        ),
    }
}

/// A checkpoint on its own thread, folding the first `segments` segments;
/// it hands the row map back.
struct Running {
    thread: JoinHandle<(Result<u64, StoreError>, RowKeys)>,
    segments: usize,
}

pub(super) struct Loaded {
    pub index: Index,
    pub replay: Vec<(u64, BatchDelta)>,
    pub head: u64,
    pub root: Option<[u8; 32]>,
}

impl Durable {
    /// Open the store whose database is `path` (its log beside it).
    pub fn open(path: &Path, options: StoreOptions, access: Access) -> Result<(Durable, Loaded), StoreError> {
        match access {
            Access::Write => Self::open_writer(path, options),
            Access::ReadOnly => Self::open_reader(path, options),
        }
    }

    fn open_writer(path: &Path, options: StoreOptions) -> Result<(Durable, Loaded), StoreError> {
        let db = open_checked(path, path)?;
        note_writer(path);
        let key = guarded(path, || frame_key(&db))?;
        // The log is read (and damage refused) before anything is written to the tables.
        let log_path = path.with_extension("log");
        let segments = segments(&log_path)?;
        let mut frames = Vec::new();
        for segment in &segments {
            frames.extend(read_segment(segment, key)?.into_iter().map(|f| (f, true)));
        }
        let (log, in_log) = BatchLog::open(&log_path, key)?;
        // A new database or log must keep its name through a power cut,
        // with the batches committed to it.
        crate::fsutil::sync_entry(path)
            .map_err(|e| StoreError::Io { path: path.display().to_string(), reason: e.to_string() })?;
        frames.extend(in_log.into_iter().map(|f| (f, false)));
        guarded(path, || seal_rows(&db))?;
        guarded(path, || move_registers_into_rows(&db))?;
        guarded(path, || fold_legacy_deltas(&db))?;
        let db = Db::Writer(Arc::new(db));
        let tables = guarded(path, || Tables::read(&db))?;
        Self::assemble(db, tables, frames, log_path, segments, Some(log), options)
    }

    /// A read-only open changes no file. A checkpoint committing beside it
    /// may fold and delete a segment between reading the tables and the
    /// log: then it reads them again.
    fn open_reader(path: &Path, options: StoreOptions) -> Result<(Durable, Loaded), StoreError> {
        let db = Db::Reader(guarded(path, || open_read_only(path))?);
        let log_path = path.with_extension("log");
        let mut attempts = 0;
        loop {
            attempts += 1;
            let tables = guarded(path, || Tables::read(&db))?;
            let read = (|| {
                let segments = segments(&log_path)?;
                let mut frames = Vec::new();
                for segment in &segments {
                    frames.extend(read_segment(segment, tables.key)?.into_iter().map(|f| (f, true)));
                }
                frames.extend(read_log(&log_path, tables.key)?.into_iter().map(|f| (f, false)));
                check_sequence(tables.head, frames.iter().map(|(f, _)| f.record.number))?;
                Ok((segments, frames))
            })();
            match read {
                Ok((segments, frames)) => {
                    return Self::assemble(db, tables, frames, log_path, segments, None, options);
                }
                Err(e @ (StoreError::Io { .. } | StoreError::LogGap { .. })) if attempts < 20 => {
                    tracing::debug!("reading the store beside its writer, again: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(10 * attempts));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The store from its tables and the log's frames (those the tables
    /// already hold are checked against them and skipped).
    fn assemble(
        db: Db,
        tables: Tables,
        frames: Vec<(Frame, bool)>,
        log_path: PathBuf,
        segments: Vec<PathBuf>,
        log: Option<BatchLog>,
        options: StoreOptions,
    ) -> Result<(Durable, Loaded), StoreError> {
        check_sequence(tables.head, frames.iter().map(|(f, _)| f.record.number))?;
        let Tables { index, rows, mut head, mut root, format, .. } = tables;
        let mut replay = Vec::new();
        let mut pending = VecDeque::new();
        let (mut log_first, mut log_bytes, mut log_batches) = (None, 0, 0);
        let checkpointed = head;
        for (frame, in_segment) in frames {
            let number = frame.record.number;
            if number <= checkpointed {
                check_against_table(&db, format, &frame.record)?;
                continue;
            }
            head = number;
            root = Some(frame.record.state_root_after);
            if !in_segment {
                log_first.get_or_insert(number);
                log_bytes += frame.bytes;
                log_batches += 1;
            }
            replay.push((number, frame.delta));
            pending.push_back((frame.record, Arc::new(frame.encoded)));
        }
        let durable = Durable {
            db,
            format,
            log: Mutex::new(Log { file: log, written: None }),
            log_path,
            log_first,
            log_bytes,
            log_batches,
            segments,
            pending,
            options,
            rows: Some(rows),
            running: None,
            #[cfg(test)]
            fail_next_checkpoint: false,
        };
        Ok((durable, Loaded { index, replay, head, root }))
    }

    /// Whether the store was opened for writing.
    pub fn writable(&self) -> bool {
        matches!(self.db, Db::Writer(_))
    }

    /// Once the store has opened and checked out: if a checkpoint was cut
    /// short (segments are left), finish it in the background.
    pub fn resume_checkpoint(&mut self) {
        if self.writable() && !self.segments.is_empty() {
            self.start_checkpoint();
        }
    }

    /// The durable commit of one batch: one fsynced append to the log.
    #[cfg(test)]
    pub fn append(&mut self, delta: &BatchDelta, record: &BatchRecord) -> Result<(), StoreError> {
        let encoded = delta.encode_in_place();
        let bytes = self.write(&encoded.bytes, record, None)?;
        self.record(record, bytes, Arc::new(encoded));
        Ok(())
    }

    /// Write a staged batch's delta to the log ahead of its append (see
    /// [`BatchLog::write_ahead`]). None if a batch written before is not
    /// applied yet or the write failed: the append then writes the delta
    /// itself, and reports what fails.
    pub fn write_ahead(&self, encoded_delta: &[u8]) -> Option<AheadTicket> {
        let mut log = self.log();
        log.check_nothing_unapplied().ok()?;
        log.file.as_mut()?.write_ahead(encoded_delta).ok()
    }

    /// Append one batch's frame to the log, fsynced (its delta written ahead
    /// if `ahead` says so). It must then be [recorded](Durable::record)
    /// before the next one is written. Returns the frame's size.
    pub fn write(
        &self,
        encoded_delta: &[u8],
        record: &BatchRecord,
        ahead: Option<AheadTicket>,
    ) -> Result<u64, StoreError> {
        let mut log = self.log();
        log.check_nothing_unapplied()?;
        let bytes = log.file.as_mut().ok_or(StoreError::ReadOnly)?.append_encoded(record, encoded_delta, ahead)?;
        log.written = Some(record.number);
        Ok(bytes)
    }

    /// Take note of the batch just [written](Durable::write).
    pub fn record(&mut self, record: &BatchRecord, bytes: u64, encoded: Arc<EncodedDelta>) {
        self.log.get_mut().unwrap_or_else(|e| e.into_inner()).written = None;
        self.pending.push_back((record.clone(), encoded));
        self.log_first.get_or_insert(record.number);
        self.log_bytes += bytes;
        self.log_batches += 1;
    }

    /// The log (a panic while holding the lock leaves it whole: an append
    /// cuts back a frame it did not finish).
    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wants_checkpoint(&self, factor: u64) -> bool {
        self.log_bytes >= factor.saturating_mul(self.options.checkpoint_bytes)
            || self.log_batches >= factor.saturating_mul(self.options.checkpoint_batches)
    }

    /// After a commit: collect a finished checkpoint, and start the next one
    /// when the log is due. If the log grows to twice its due size while one
    /// still runs, wait for it (the log and memory stay bounded).
    pub fn after_commit(&mut self) {
        self.reap(false);
        if !self.wants_checkpoint(1) {
            return;
        }
        if self.running.is_some() {
            if !self.wants_checkpoint(2) {
                return;
            }
            self.reap(true);
        }
        self.start_checkpoint();
    }

    /// Rotate the log (if it holds batches) and fold every segment on a
    /// checkpoint thread. A failure is reported, not returned: the batches
    /// stay in the log and the next checkpoint retries.
    fn start_checkpoint(&mut self) {
        if let Err(e) = self.rotate() {
            tracing::warn!("checkpoint not started, log not rotated (the log still holds every batch): {e}");
            return;
        }
        if self.segments.is_empty() {
            return;
        }
        let mut rows = match self.row_keys() {
            Ok(rows) => rows,
            Err(e) => {
                return tracing::warn!("checkpoint not started, no row map (the log still holds every batch): {e}")
            }
        };
        let db = match self.db.writer() {
            Ok(db) => Arc::clone(db),
            Err(_) => return,
        };
        let segments = self.segments.clone();
        let count = segments.len();
        // The log was just rotated: every pending batch is in the segments.
        let batches: Vec<Unfolded> = self.pending.iter().cloned().collect();
        let injected = self.injected_failure();
        let fold = move || {
            let folded = match injected {
                Some(e) => Err(e),
                None => fold_segments(&db, &batches, &segments, &mut rows),
            };
            (folded, rows)
        };
        let spawned = std::thread::Builder::new().name("cvm-checkpoint".into()).spawn(fold);
        match spawned {
            Ok(thread) => self.running = Some(Running { thread, segments: count }),
            Err(e) => {
                tracing::warn!("no checkpoint thread ({e}): checkpointing on this one");
                if let Err(e) = self.fold_here() {
                    tracing::warn!("checkpoint failed (the log still holds every batch; the next one retries): {e}");
                }
            }
        }
    }

    /// The row map, taken for a checkpoint (read from the tables if lost).
    fn row_keys(&mut self) -> Result<RowKeys, StoreError> {
        match self.rows.take() {
            Some(rows) => Ok(rows),
            None => RowKeys::load(self.db.writer()?),
        }
    }

    #[cfg(test)]
    fn injected_failure(&mut self) -> Option<StoreError> {
        std::mem::take(&mut self.fail_next_checkpoint)
            .then(|| StoreError::Database("injected checkpoint failure".into()))
    }

    #[cfg(not(test))]
    fn injected_failure(&mut self) -> Option<StoreError> {
        None
    }

    /// Move the log's batches into a new segment.
    fn rotate(&mut self) -> Result<(), StoreError> {
        let log = self.log.get_mut().unwrap_or_else(|e| e.into_inner());
        let Some(file) = log.file.as_mut() else { return Ok(()) };
        // A batch written but not applied would go into a segment that the
        // checkpoint folds without it, and is then deleted.
        if let Some(written) = log.written {
            return Err(unapplied(written));
        }
        let Some(first) = self.log_first else { return Ok(()) };
        let segment = segment_path(&self.log_path, first);
        file.rotate(&segment)?;
        self.segments.push(segment);
        (self.log_first, self.log_bytes, self.log_batches) = (None, 0, 0);
        Ok(())
    }

    /// Collect the running checkpoint if it finished (or, with `wait`, once it has).
    fn reap(&mut self, wait: bool) {
        let Some(running) = self.running.take_if(|r| wait || r.thread.is_finished()) else { return };
        let folded = match running.thread.join() {
            Ok((folded, rows)) => {
                self.rows = Some(rows);
                folded
            }
            Err(_) => Err(StoreError::Database("the checkpoint thread panicked; its segments stay in place".into())),
        };
        self.folded(folded, running.segments);
    }

    fn folded(&mut self, folded: Result<u64, StoreError>, segments: usize) {
        match folded {
            Ok(covered) => {
                self.segments.drain(..segments);
                while self.pending.front().is_some_and(|(r, _)| r.number <= covered) {
                    self.pending.pop_front();
                }
            }
            Err(e) => tracing::warn!("checkpoint failed (the log still holds every batch; the next one retries): {e}"),
        }
    }

    /// Fold every batch into the tables now, on this thread, after any
    /// running checkpoint.
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        if !self.writable() {
            return Ok(());
        }
        self.reap(true);
        self.rotate()?;
        if self.segments.is_empty() {
            return Ok(());
        }
        self.fold_here()
    }

    /// Fold every segment on this thread (none running).
    fn fold_here(&mut self) -> Result<(), StoreError> {
        let count = self.segments.len();
        let mut rows = self.row_keys()?;
        let batches: Vec<Unfolded> = self.pending.iter().cloned().collect();
        let folded = fold_segments(self.db.writer()?, &batches, &self.segments, &mut rows);
        self.rows = Some(rows);
        self.folded(Ok(folded?), count);
        Ok(())
    }

    pub fn put_content(&self, id: &ContentId, bytes: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.writer()?.begin_write()?;
        tx.open_table(CONTENT)?.insert(id.as_bytes().as_slice(), bytes)?;
        tx.commit()?;
        Ok(())
    }

    /// Reads of the tables after opening: a damaged file may make redb panic.
    fn guarded<T>(&self, read: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        guarded(&self.log_path.with_extension("redb"), read)
    }

    pub fn content(&self, id: &ContentId) -> Result<Option<Vec<u8>>, StoreError> {
        self.guarded(|| {
            let rx = self.db.begin_read()?;
            let table = rx.open_table(CONTENT)?;
            Ok(table.get(id.as_bytes().as_slice())?.map(|v| v.value().to_vec()))
        })
    }

    pub fn batch(&self, number: u64) -> Result<Option<BatchRecord>, StoreError> {
        let first = self.pending.front().map_or(u64::MAX, |(r, _)| r.number);
        if number >= first {
            return Ok(self.pending.get((number - first) as usize).map(|(r, _)| r.clone()));
        }
        self.guarded(|| read_record(&self.db, self.format, number))
    }

    pub fn history(&self, limit: usize) -> Result<Vec<BatchRecord>, StoreError> {
        self.guarded(|| self.history_unguarded(limit))
    }

    fn history_unguarded(&self, limit: usize) -> Result<Vec<BatchRecord>, StoreError> {
        let rx = self.db.begin_read()?;
        let table = rx.open_table(BATCHES)?;
        let mut out: Vec<BatchRecord> = self.pending.iter().rev().take(limit).map(|(r, _)| r.clone()).collect();
        // Below the pending ones: a checkpoint may have just put those in the table too.
        let first = self.pending.front().map_or(u64::MAX, |(r, _)| r.number);
        for row in table.range(..first)?.rev().take(limit - out.len()) {
            let (k, v) = row?;
            out.push(BatchRecord::decode(self.format.open(BATCHES_NAME, k.value(), v.value())?)?);
        }
        Ok(out)
    }
}

impl Drop for Durable {
    /// A writer that closes no longer names itself as the store's writer.
    fn drop(&mut self) {
        if self.writable() {
            let _ = std::fs::remove_file(self.log_path.with_file_name(WRITER_FILE));
        }
    }
}

/// Fold `batches` into the tables, then delete the `segments` that held
/// them (one left behind holds only batches the tables have: opening skips
/// them and deletes it).
fn fold_segments(
    db: &Database,
    batches: &[Unfolded],
    segments: &[PathBuf],
    rows: &mut RowKeys,
) -> Result<u64, StoreError> {
    let covered = fold_batches(db, batches, rows)?;
    for path in segments {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(segment = %path.display(), "checkpointed log segment not removed: {e}");
        }
    }
    Ok(covered)
}

/// Who holds the store open for writing, as the holder noted it (the lock
/// itself is redb's; this only names the holder).
fn writer_holder(path: &Path) -> String {
    match std::fs::read_to_string(path.with_file_name(WRITER_FILE)) {
        Ok(text) if !text.trim().is_empty() => text.trim().replace('\n', ", "),
        _ => "another process".into(),
    }
}

/// The file a writer names itself in.
pub(super) const WRITER_FILE: &str = "writer.pid";

/// Note this process as the store's writer (best effort: only messages read it).
fn note_writer(path: &Path) {
    let args: Vec<String> = std::env::args().collect();
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let text = format!("pid {} ({}), since {started}\n", std::process::id(), args.join(" "));
    let _ = std::fs::write(path.with_file_name(WRITER_FILE), text);
}

/// The store's frame key; a store without one (new, or written by an
/// earlier version) gets one, and every table, in one write transaction.
fn frame_key(db: &Database) -> Result<FrameKey, StoreError> {
    let rx = db.begin_read()?;
    if let Ok(meta) = rx.open_table(META) {
        if let Some(v) = meta.get(FRAME_KEY)? {
            return Ok(FrameKey(read_frame_key(v.value())?));
        }
    }
    drop(rx);
    // Every table, so read transactions can open them.
    let tx = db.begin_write()?;
    for table in [ROWS, SPENT, DELTAS, BATCHES] {
        tx.open_table(table)?;
    }
    for table in [REGISTERS, CONTENT] {
        tx.open_table(table)?;
    }
    for table in [NULLIFIERS, CONSUMED] {
        tx.open_table(table)?;
    }
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    tx.open_table(META)?.insert(FRAME_KEY, frame_key_row(&key).as_slice())?;
    tx.commit()?;
    Ok(FrameKey(key))
}

/// A read-only handle on the database. A file its writer left mid-commit (a
/// crash) must be repaired before anyone reads it; redb leaves that to a
/// writer, so with none running it is repaired here once, which changes
/// nothing a reader sees (no batch, no table).
pub(super) fn open_read_only(path: &Path) -> Result<ReadOnlyDatabase, StoreError> {
    match builder().open_read_only(path) {
        Err(redb::DatabaseError::RepairAborted) => {
            tracing::warn!(path = %path.display(), "the store was not closed cleanly: repairing its database file");
            let repaired = builder().set_check_integrity_on_open(true).open(path).map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Database(
                    "the store was not closed cleanly and its writer is repairing it: try again".into(),
                ),
                e => StoreError::Database(format!(
                    "the store was not closed cleanly, and repairing its database file for reading failed: {e}"
                )),
            })?;
            drop(repaired);
            builder().open_read_only(path).map_err(|e| unreadable(path, e))
        }
        opened => opened.map_err(|e| unreadable(path, e)),
    }
}

/// A database file that would not open for reading, named: damage and
/// truncation as such, other failures of the file with its path.
fn unreadable(path: &Path, e: redb::DatabaseError) -> StoreError {
    use std::io::ErrorKind::{InvalidData, UnexpectedEof};
    let damaged = match &e {
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => true,
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => matches!(io.kind(), InvalidData | UnexpectedEof),
        _ => false,
    };
    match damaged {
        true => StoreError::Corrupt {
            what: format!("store database {}", path.display()),
            offset: None,
            reason: format!(
                "{e}: it is damaged or truncated, or not a store database; `cvm store check` reports every problem"
            ),
        },
        false => StoreError::Io { path: path.display().to_string(), reason: e.to_string() },
    }
}

/// What the tables hold: the index at the checkpoint, the row map, the
/// checkpoint's head and root, and the store's frame key.
struct Tables {
    index: Index,
    rows: RowKeys,
    head: u64,
    root: Option<[u8; 32]>,
    key: FrameKey,
    format: RowFormat,
}

impl Tables {
    /// Read them, checking the head against its batch record.
    fn read(db: &Db) -> Result<Tables, StoreError> {
        let rx = db.begin_read()?;
        let meta = rx.open_table(META)?;
        let head = match meta.get(HEAD)? {
            Some(v) => meta_u64(v.value(), "head")?,
            None => 0,
        };
        let root = match meta.get(ROOT)? {
            Some(v) => Some(fixed32(v.value(), "state root")?),
            None => None,
        };
        // A store never opened for writing by this version has no key, and
        // so no frames sealed with one.
        let key = match meta.get(FRAME_KEY)? {
            Some(v) => FrameKey(read_frame_key(v.value())?),
            None => FrameKey([0; 32]),
        };
        let format = row_format(&meta)?;
        drop(meta);
        if let (Some(root), true) = (root, head > 0) {
            let recorded = record_in(&rx, format, head)?;
            match recorded {
                Some(record) if record.state_root_after == root => {}
                Some(record) => {
                    return Err(StoreError::Corrupt {
                        what: "checkpoint".into(),
                        offset: None,
                        reason: format!(
                            "the tables' state root {} is not the one batch {head}'s record holds ({})",
                            crate::content_id::hex_encode(&root),
                            crate::content_id::hex_encode(&record.state_root_after)
                        ),
                    })
                }
                None => {
                    return Err(StoreError::Corrupt {
                        what: "checkpoint".into(),
                        offset: None,
                        reason: format!("the tables hold batches up to {head} but no record of batch {head}"),
                    })
                }
            }
        }
        let (index, rows) = load_index(&rx, format)?;
        Ok(Tables { index, rows, head, root, key, format })
    }
}

fn fixed32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], StoreError> {
    let mut d = Decoder::new(bytes, what);
    let v = d.array32()?;
    d.finish()?;
    Ok(v)
}

/// Open the database file `file` for writing, after redb's check of the
/// whole file (the writer's open; `cvm store check` runs it on a copy);
/// errors name the store's database `named`.
pub(super) fn open_checked(file: &Path, named: &Path) -> Result<Database, StoreError> {
    guarded(named, || match builder().set_check_integrity_on_open(true).create(file) {
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(StoreError::Busy { holder: writer_holder(named) }),
        Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(reason))) => Err(StoreError::Corrupt {
            what: format!("store database {}", named.display()),
            offset: None,
            reason: format!(
                "{reason}; its integrity check failed and it cannot be repaired: restore store.redb from a backup \
                 (the batch log alone holds only the batches not yet checkpointed)"
            ),
        }),
        opened => Ok(opened?),
    })
}

/// Run `read` on the database at `path`, turning a panic (redb may panic on
/// a damaged file) into an error.
pub(super) fn guarded<T>(path: &Path, read: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    match crate::error::catch_quietly(read) {
        Ok(result) => result,
        Err(panic) => {
            let text = crate::error::panic_text(&*panic);
            Err(StoreError::Corrupt {
                what: format!("store database {}", path.display()),
                offset: None,
                reason: format!("reading it failed ({text}): the file is damaged"),
            })
        }
    }
}

/// The log's batch numbers, in file order, against the tables' head: those
/// the tables hold (each then checked against its row) may come with gaps
/// (a checkpoint that removed some of its segments and not others before a
/// crash leaves those behind), in order and before any newer one; those
/// after the head must run on from it without a gap.
fn check_sequence(head: u64, numbers: impl IntoIterator<Item = u64>) -> Result<(), StoreError> {
    let mut next = head + 1;
    let mut last_held: Option<u64> = None;
    for number in numbers {
        if number <= head {
            let in_order = next == head + 1 && last_held.is_none_or(|last| number > last);
            if !in_order {
                return Err(StoreError::LogGap { expected: next, found: number });
            }
            last_held = Some(number);
            continue;
        }
        if number != next {
            return Err(StoreError::LogGap { expected: next, found: number });
        }
        next += 1;
    }
    Ok(())
}

/// A log frame of a batch the tables already hold must be that batch.
fn check_against_table(db: &Db, format: RowFormat, record: &BatchRecord) -> Result<(), StoreError> {
    match read_record(db, format, record.number)? {
        Some(held) if held.state_root_after == record.state_root_after => Ok(()),
        _ => Err(StoreError::Corrupt {
            what: "batch log".into(),
            offset: None,
            reason: format!(
                "the log's batch {} (state root {}) is not the batch {} the checkpoint holds",
                record.number,
                crate::content_id::hex_encode(&record.state_root_after),
                record.number
            ),
        }),
    }
}

/// The record of batch `number` in the tables, its checksum checked.
fn read_record(db: &Db, format: RowFormat, number: u64) -> Result<Option<BatchRecord>, StoreError> {
    record_in(&db.begin_read()?, format, number)
}

fn record_in(rx: &redb::ReadTransaction, format: RowFormat, number: u64) -> Result<Option<BatchRecord>, StoreError> {
    let table = rx.open_table(BATCHES)?;
    let row = table.get(number)?;
    row.map(|v| BatchRecord::decode(format.open(BATCHES_NAME, number, v.value())?)).transpose()
}

/// The tables' registers, nullifiers and consumed ids (tables of earlier
/// versions included), and which row holds each register.
fn load_index(rx: &redb::ReadTransaction, format: RowFormat) -> Result<(Index, RowKeys), StoreError> {
    let mut index = Index::default();
    let rows =
        load_registers(&rx.open_table(ROWS)?, format, |register| index.registers.insert(Arc::new(register), [0; 32]))?;
    for row in rx.open_table(NULLIFIERS)?.iter()? {
        let (k, v) = row?;
        index.nullifiers.insert(key32(k.value(), "nullifier")?, v.value());
    }
    for row in rx.open_table(CONSUMED)?.iter()? {
        let (k, v) = row?;
        index.consumed.insert(ResourceId::from_digest(key32(k.value(), "consumed id")?), v.value());
    }
    for row in rx.open_table(SPENT)?.iter()? {
        let (k, v) = row?;
        let [nullifiers, consumed] = read_spent_row(format.open(SPENT_NAME, k.value(), v.value())?)?;
        index.nullifiers.extend(nullifiers.into_iter().map(|n| (n, k.value())));
        index.consumed.extend(consumed.into_iter().map(|id| (ResourceId::from_digest(id), k.value())));
    }
    Ok((index, rows))
}

fn key32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], StoreError> {
    let mut d = Decoder::new(bytes, what);
    let k = d.array32()?;
    d.finish()?;
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::ResourceRegister;
    use redb::ReadableTableMetadata;

    #[test]
    fn held_batches_may_skip_but_newer_ones_must_follow_the_head() {
        let gap = |numbers: &[u64]| match check_sequence(19, numbers.iter().copied()) {
            Ok(()) => None,
            Err(StoreError::LogGap { expected, found }) => Some((expected, found)),
            Err(other) => panic!("{other}"),
        };
        assert_eq!(gap(&[20, 21, 22]), None);
        // A checkpoint removed segment 10..19 but not 5..9 before a crash.
        assert_eq!(gap(&[5, 6, 7, 8, 9, 20, 21]), None);
        assert_eq!(gap(&[5, 9, 15, 20]), None);
        assert_eq!(gap(&[]), None);
        assert_eq!(gap(&[21]), Some((20, 21)));
        assert_eq!(gap(&[5, 6, 22]), Some((20, 22)));
        assert_eq!(gap(&[20, 22]), Some((21, 22)));
        assert_eq!(gap(&[20, 7]), Some((21, 7)), "a held batch after a newer one");
        assert_eq!(gap(&[7, 7]), Some((20, 7)), "a held batch twice");
    }

    fn register(n: u8, version: u64) -> Arc<ResourceRegister> {
        Arc::new(ResourceRegister {
            id: ResourceId::from_digest([n; 32]),
            logic: ContentId::default(),
            domain: crate::DomainId::new("d"),
            fungibility_domain: "f".into(),
            quantity: n as u64,
            metadata: Default::default(),
            contents: Vec::new(),
            state: crate::resource::LifecycleState::Active,
            nullifier_key_commitment: [0; 32],
            controller: "c".into(),
            version,
        })
    }

    /// A background checkpoint that fails keeps its segment; batches go on
    /// committing, and the next checkpoint folds every segment.
    #[test]
    fn a_failed_checkpoint_keeps_its_segment_and_the_next_one_folds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let options = StoreOptions { checkpoint_bytes: 1 << 30, checkpoint_batches: 2 };
        let (mut durable, _) = Durable::open(&path, options, Access::Write).unwrap();
        let commit = |durable: &mut Durable, n: u8| {
            let delta = BatchDelta { upserts: vec![register(n, 0)], removed: Vec::new(), nullifiers: vec![[n; 32]] };
            let record = BatchRecord { number: n as u64, state_root_after: [n; 32], ..Default::default() };
            durable.append(&delta, &record).unwrap();
            durable.after_commit();
        };
        durable.fail_next_checkpoint = true;
        commit(&mut durable, 1);
        commit(&mut durable, 2);
        durable.reap(true);
        assert_eq!(durable.segments, [segment_path(&path.with_extension("log"), 1)]);
        assert!(durable.segments[0].exists());
        assert_eq!(durable.pending.len(), 2, "its records are still served from memory");
        commit(&mut durable, 3);
        commit(&mut durable, 4);
        durable.checkpoint().unwrap();
        assert!(durable.segments.is_empty() && durable.pending.is_empty());
        assert!(segments(&path.with_extension("log")).unwrap().is_empty());
        drop(durable);
        let (durable, loaded) = Durable::open(&path, options, Access::Write).unwrap();
        assert_eq!((loaded.head, loaded.replay.len(), loaded.index.registers.len()), (4, 0, 4));
        assert_eq!(loaded.index.nullifiers.len(), 4);
        assert_eq!(durable.batch(1).unwrap().map(|r| r.state_root_after), Some([1; 32]));
    }

    /// A store in a fresh directory that checkpoints only when asked.
    fn checkpointed_when_asked() -> (tempfile::TempDir, Durable) {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions { checkpoint_bytes: 1 << 30, checkpoint_batches: 1 << 20 };
        let (durable, _) = Durable::open(&dir.path().join("store.redb"), options, Access::Write).unwrap();
        (dir, durable)
    }

    /// Rows are numbered by arrival and hold runs of registers: an update
    /// rewrites its register's row in place, a removal takes it out (a row
    /// left empty goes), a register created and consumed between two
    /// checkpoints never gets a row, and new registers append in rows after
    /// the last. The checkpoint's map always matches the table.
    #[test]
    fn registers_keep_their_row_and_new_ones_append() {
        let (_dir, mut durable) = checkpointed_when_asked();
        let mut number = 0;
        let mut commit = |durable: &mut Durable, upserts: Vec<Arc<ResourceRegister>>, removed: Vec<u8>| {
            number += 1;
            let removed = removed.into_iter().map(|n| register(n, 0).id).collect();
            let delta = BatchDelta { upserts, removed, nullifiers: vec![[number as u8; 32]] };
            let record = BatchRecord { number, state_root_after: [number as u8; 32], ..Default::default() };
            durable.append(&delta, &record).unwrap();
        };
        // (row, register), rows ascending, registers in row order.
        let table = |durable: &Durable| -> Vec<(u64, ResourceRegister)> {
            let rx = durable.db.begin_read().unwrap();
            let mut registers = Vec::new();
            load_registers(&rx.open_table(ROWS).unwrap(), RowFormat::Sealed, |r| registers.push(r)).unwrap();
            let keys = RowKeys::load(durable.db.writer().unwrap()).unwrap();
            registers.into_iter().map(|r| (keys.get(&r.id).unwrap(), r)).collect()
        };
        let in_row = |rows: &[(u64, ResourceRegister)], row: u64| -> Vec<(u8, u64)> {
            rows.iter().filter(|r| r.0 == row).map(|r| (r.1.quantity as u8, r.1.version)).collect()
        };
        commit(&mut durable, (1..=40).map(|n| register(n, 0)).collect(), vec![]);
        durable.checkpoint().unwrap();
        let first = table(&durable);
        assert_eq!(in_row(&first, 0), (1..=32).map(|n| (n, 0)).collect::<Vec<_>>());
        assert_eq!(in_row(&first, 1), (33..=40).map(|n| (n, 0)).collect::<Vec<_>>());
        commit(&mut durable, vec![register(1, 1), register(41, 0), register(42, 0)], vec![2]);
        commit(&mut durable, vec![register(43, 0)], (33..=40).chain([42]).collect());
        durable.checkpoint().unwrap();
        let second = table(&durable);
        let mut kept: Vec<(u8, u64)> = (3..=32).map(|n| (n, 0)).collect();
        kept.insert(0, (1, 1));
        assert_eq!(in_row(&second, 0), kept, "updated in place, the removed one taken out");
        let rows: std::collections::BTreeSet<u64> = second.iter().map(|r| r.0).collect();
        assert_eq!(rows.len(), 2, "the emptied row is gone: {rows:?}");
        let new_row = *rows.last().unwrap();
        let mut appended = in_row(&second, new_row);
        appended.sort();
        assert_eq!(appended, [(41, 0), (43, 0)], "42 came and went between the checkpoints");
        assert_eq!(durable.rows.as_ref(), Some(&RowKeys::load(durable.db.writer().unwrap()).unwrap()));
    }

    /// A row that lacks a register the map puts there (the table was
    /// tampered with) fails the checkpoint with an error naming the row; the
    /// map learns nothing from a checkpoint that did not commit.
    #[test]
    fn a_row_missing_a_register_fails_the_checkpoint_and_the_map_stays() {
        let (_dir, mut durable) = checkpointed_when_asked();
        let delta = BatchDelta { upserts: (1..=40).map(|n| register(n, 0)).collect(), ..Default::default() };
        durable.append(&delta, &BatchRecord { number: 1, ..Default::default() }).unwrap();
        durable.checkpoint().unwrap();
        let tx = durable.db.writer().unwrap().begin_write().unwrap();
        tx.open_table(ROWS).unwrap().remove(1).unwrap();
        tx.commit().unwrap();
        let before = RowKeys::load(durable.db.writer().unwrap()).unwrap();
        let delta =
            BatchDelta { upserts: vec![register(50, 0)], removed: vec![register(33, 0).id], nullifiers: vec![] };
        durable.append(&delta, &BatchRecord { number: 2, ..Default::default() }).unwrap();
        let err = durable.checkpoint().unwrap_err().to_string();
        assert!(err.contains("row 1 lacks 1 of the registers"), "{err}");
        let map = durable.rows.as_ref().unwrap();
        assert_eq!((map.get(&register(33, 0).id), map.get(&register(50, 0).id)), (Some(1), None));
        assert_eq!(map.get(&register(1, 0).id), before.get(&register(1, 0).id));
    }

    /// A store written before the batch log: registers keyed by id, spent
    /// sets keyed by hash and deltas past the checkpoint in the `deltas`
    /// table. Opening moves the registers into rows, loads the spent sets
    /// and folds the deltas into the tables once.
    #[test]
    fn tables_of_earlier_versions_are_loaded_and_their_deltas_folded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let (kept, gone) = (register(1, 0), register(2, 3));
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(NULLIFIERS).unwrap().insert([7u8; 32].as_slice(), 1).unwrap();
            tx.open_table(CONSUMED).unwrap().insert([8u8; 32].as_slice(), 1).unwrap();
            let mut e = crate::store::codec::Encoder::default();
            e.register(&gone);
            tx.open_table(REGISTERS).unwrap().insert(gone.id.as_bytes().as_slice(), e.buf.as_slice()).unwrap();
            let mut meta = tx.open_table(META).unwrap();
            for (key, value) in [(HEAD, 3u64), (super::super::tables::CHECKPOINT, 1)] {
                meta.insert(key, value.to_le_bytes().as_slice()).unwrap();
            }
            drop(meta);
            let mut deltas = tx.open_table(DELTAS).unwrap();
            let second = BatchDelta { upserts: vec![kept.clone()], removed: Vec::new(), nullifiers: vec![[9; 32]] };
            let third = BatchDelta { upserts: Vec::new(), removed: vec![gone.id], nullifiers: vec![[10; 32]] };
            deltas.insert(2, second.encode().as_slice()).unwrap();
            deltas.insert(3, third.encode().as_slice()).unwrap();
            drop(deltas);
            tx.commit().unwrap();
        }
        let (durable, loaded) = Durable::open(&path, StoreOptions::default(), Access::Write).unwrap();
        let rx = durable.db.begin_read().unwrap();
        assert!(rx.open_table(REGISTERS).unwrap().is_empty().unwrap(), "registers moved into rows");
        let rows: Vec<(u64, Vec<u8>)> = rx
            .open_table(ROWS)
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| r.unwrap())
            .map(|(k, v)| (k.value(), v.value().to_vec()))
            .collect();
        let mut e = crate::store::codec::Encoder::default();
        e.register(&kept);
        let sealed = super::super::tables::seal_row(super::super::rows::ROWS_NAME, 0, &e.buf);
        assert_eq!(rows, [(0, sealed)], "the moved register's row went with its removal; the new one took its key");
        assert_eq!(loaded.head, 3);
        assert!(loaded.replay.is_empty(), "the deltas were folded into the tables");
        let index = loaded.index;
        assert_eq!(index.registers.values().cloned().collect::<Vec<_>>(), [kept]);
        let nullifiers: std::collections::BTreeMap<_, _> = index.nullifiers.into_iter().collect();
        assert_eq!(nullifiers, [([7; 32], 1), ([9; 32], 2), ([10; 32], 3)].into());
        let consumed: std::collections::BTreeMap<_, _> = index.consumed.into_iter().collect();
        assert_eq!(consumed, [(ResourceId::from_digest([2; 32]), 3), (ResourceId::from_digest([8; 32]), 1)].into());
    }
}
