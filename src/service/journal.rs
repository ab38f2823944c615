//! The job store: every accepted job, its payload until it ends, and its
//! result for the result TTL, in a redb database in the data dir
//! (`jobs.redb`).
//!
//! Writes go through one committer thread that takes every write waiting
//! for it into one transaction: while one fsync runs, the next accepts
//! gather, and one fsync then covers them all (group commit). A write that
//! must survive a crash (an accept, an ending) makes its transaction
//! durable; one that need not (a job starting) rides along with the next.
//!
//! Payloads and results of a megabyte or more are kept in files beside the
//! store ([`super::blobs`]), written by the thread that made them.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use prost::Message;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::blobs::{Blobs, Stored};
use super::proto::{Job, JobPayload, JobResult, JobState};

/// Job id → payload digest ‖ the job (its result left out).
const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
/// Job id → payload ([`Stored`]), removed when the job ends.
const PAYLOADS: TableDefinition<u64, &[u8]> = TableDefinition::new("payloads");
/// Job id → result ([`Stored`]), kept with the job.
const RESULTS: TableDefinition<u64, &[u8]> = TableDefinition::new("results");
/// A stored value's reference as a table holds it ([`Stored`]'s encoding).
type StoredRef = Vec<u8>;

/// Caller's request id → job id.
const REQUESTS: TableDefinition<&str, u64> = TableDefinition::new("requests");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_ID: &str = "next_job_id";

/// Writes gathered into one transaction at most (bounds its memory).
const GROUP_LIMIT: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the job store {path} is in use by another process (is another `cvm serve` running on this data dir?)")]
    Busy { path: PathBuf },
    #[error("the job store {path}: {source}")]
    Database { path: PathBuf, source: redb::Error },
    #[error("the job store is damaged: job {job}: {reason}")]
    Damaged { job: u64, reason: String },
    #[error("request id {request_id:?} already names job {job} with a different payload")]
    Conflict { request_id: String, job: u64 },
    #[error("the job store's committer has stopped")]
    Stopped,
    #[error("the job store {path}: {reason}")]
    Internal { path: PathBuf, reason: String },
}

impl JournalError {
    /// The same error for each writer of a group that failed together.
    fn again(&self) -> JournalError {
        match self {
            JournalError::Busy { path } => JournalError::Busy { path: path.clone() },
            JournalError::Database { path, source } => {
                JournalError::Internal { path: path.clone(), reason: source.to_string() }
            }
            JournalError::Damaged { job, reason } => JournalError::Damaged { job: *job, reason: reason.clone() },
            JournalError::Conflict { request_id, job } => {
                JournalError::Conflict { request_id: request_id.clone(), job: *job }
            }
            JournalError::Stopped => JournalError::Stopped,
            JournalError::Internal { path, reason } => {
                JournalError::Internal { path: path.clone(), reason: reason.clone() }
            }
        }
    }
}

fn db_error(path: &Path, e: impl Into<redb::Error>) -> JournalError {
    JournalError::Database { path: path.to_path_buf(), source: e.into() }
}

/// A job as the journal keeps it.
#[derive(Clone, Debug)]
pub struct JobRecord {
    pub job: Job,
    /// BLAKE3 of the payload's encoding: a resubmission is the same job
    /// only with the same digest.
    pub payload_digest: [u8; 32],
    /// Batch jobs: the store's last batch when the job last started (a
    /// restart looks for the job's commit after it).
    pub batch_head: u64,
}

impl JobRecord {
    fn encode(&self) -> Vec<u8> {
        let mut job = self.job.clone();
        job.result = None;
        let mut bytes = self.payload_digest.to_vec();
        bytes.extend_from_slice(&self.batch_head.to_le_bytes());
        job.encode(&mut bytes).expect("a Vec grows");
        bytes
    }

    fn decode(id: u64, bytes: &[u8]) -> Result<JobRecord, JournalError> {
        let damaged = |reason: String| JournalError::Damaged { job: id, reason };
        let (digest, rest) = bytes.split_at_checked(32).ok_or_else(|| damaged("record too short".into()))?;
        let (head, job) = rest.split_at_checked(8).ok_or_else(|| damaged("record too short".into()))?;
        let job = Job::decode(job).map_err(|e| damaged(e.to_string()))?;
        Ok(JobRecord {
            job,
            payload_digest: digest.try_into().expect("32 bytes"),
            batch_head: u64::from_le_bytes(head.try_into().expect("8 bytes")),
        })
    }
}

/// What accepting a job came to.
#[derive(Debug)]
pub enum Accepted {
    /// Recorded under this new id.
    New(u64),
    /// The request id names a job already recorded with the same payload.
    Existing(Box<JobRecord>),
}

/// Who hears that an update was written.
enum Reply {
    None,
    Wait(mpsc::SyncSender<Result<(), JournalError>>),
    /// Called on the committer's thread once the write is on disk (or
    /// failed), and handed back the record and result it wrote.
    Then(Box<Then>),
}

type Then = dyn FnOnce(Result<(), JournalError>, JobRecord, Option<JobResult>) + Send;

/// What an accept keeps beside the job's record.
enum Kept {
    /// A queued job's payload (what a restart runs).
    Payload(Stored),
    /// A job that ran before its accept was written: its result, if it
    /// succeeded (an ended job keeps no payload).
    Ended(Option<Stored>),
}

impl Kept {
    fn blob_name(&self) -> Option<&str> {
        match self {
            Kept::Payload(stored) | Kept::Ended(Some(stored)) => stored.blob_name(),
            Kept::Ended(None) => None,
        }
    }
}

enum Write {
    Accept {
        record: Box<JobRecord>,
        kept: Kept,
        reply: oneshot::Sender<Result<Accepted, JournalError>>,
    },
    Update {
        record: Box<JobRecord>,
        /// Handed back to a [`Reply::Then`]; written as `stored`.
        result: Option<JobResult>,
        stored: Option<Stored>,
        durable: bool,
        reply: Reply,
    },
    Forget {
        ids: Vec<u64>,
        reply: mpsc::SyncSender<Result<(), JournalError>>,
    },
    /// Finish what came before, then stop.
    Stop,
}

impl Write {
    /// The file this write brings (to remove if it is not committed).
    fn blob(&self) -> Option<&str> {
        match self {
            Write::Accept { kept, .. } => kept.blob_name(),
            Write::Update { stored: Some(stored), .. } => stored.blob_name(),
            _ => None,
        }
    }

    fn durable(&self) -> bool {
        match self {
            Write::Accept { .. } | Write::Forget { .. } => true,
            Write::Update { durable, .. } => *durable,
            Write::Stop => false,
        }
    }
}

/// The job store; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    db: Arc<Database>,
    path: PathBuf,
    blobs: Arc<Blobs>,
    writes: mpsc::Sender<Write>,
    committer: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl Journal {
    pub fn file_in(data_dir: &Path) -> PathBuf {
        data_dir.join("jobs.redb")
    }

    /// Open (or create) the job store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Journal, JournalError> {
        let path = Self::file_in(data_dir);
        let io = |e| db_error(&path, redb::StorageError::Io(e));
        crate::fsutil::create_dir_durably(data_dir).map_err(io)?;
        // Payloads hold tokens and witnesses' keys: owner-only, as the socket is.
        crate::fsutil::owner_only_file(&path).map_err(io)?;
        let db = match Database::create(&path) {
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(JournalError::Busy { path }),
            opened => opened.map_err(|e| db_error(&path, e))?,
        };
        // Accepted jobs must not lose the file's name in a power cut.
        crate::fsutil::sync_entry(&path).map_err(|e| db_error(&path, redb::StorageError::Io(e)))?;
        let tx = db.begin_write().map_err(|e| db_error(&path, e))?;
        {
            tx.open_table(JOBS).map_err(|e| db_error(&path, e))?;
            tx.open_table(PAYLOADS).map_err(|e| db_error(&path, e))?;
            tx.open_table(RESULTS).map_err(|e| db_error(&path, e))?;
            tx.open_table(REQUESTS).map_err(|e| db_error(&path, e))?;
            tx.open_table(META).map_err(|e| db_error(&path, e))?;
        }
        tx.commit().map_err(|e| db_error(&path, e))?;
        let blobs = Arc::new(Blobs::open(data_dir).map_err(|e| db_error(&path, redb::StorageError::Io(e)))?);
        let referred = referred_blobs(&db, &path)?;
        let swept = blobs.sweep(&referred).map_err(|e| db_error(&path, redb::StorageError::Io(e)))?;
        if swept > 0 {
            tracing::info!("removed {swept} job store file(s) no record refers to (left by a crash)");
        }
        let db = Arc::new(db);
        let (writes, queue) = mpsc::channel();
        let committer = {
            let db = db.clone();
            let path = path.clone();
            let blobs = blobs.clone();
            std::thread::Builder::new()
                .name("cvm-journal".into())
                .spawn(move || commit_loop(&db, &path, &blobs, queue))
                .expect("spawning the journal's committer")
        };
        Ok(Journal { db, path, blobs, writes, committer: Arc::new(std::sync::Mutex::new(Some(committer))) })
    }

    fn stored(&self, bytes: Vec<u8>) -> Result<Stored, JournalError> {
        self.blobs.store(bytes).map_err(|e| JournalError::Internal {
            path: self.path.clone(),
            reason: format!("writing a value's file beside the job store: {e}"),
        })
    }

    fn stored_result(&self, result: Option<&JobResult>) -> Result<Option<Stored>, JournalError> {
        result.map(|r| self.stored(r.encode_to_vec())).transpose()
    }

    /// Hand a write to the committer; if it has stopped, the write comes
    /// back, its file (nothing will name it) removed.
    fn send_or_return(&self, write: Write) -> Result<(), Box<Write>> {
        let Err(mpsc::SendError(write)) = self.writes.send(write) else { return Ok(()) };
        if let Some(name) = write.blob() {
            self.blobs.remove(&[name.to_string()]);
        }
        Err(Box::new(write))
    }

    /// A stored value read back: its bytes (from its file if it has one), decoded.
    fn load<M: Message + Default>(&self, id: u64, what: &str, stored: &[u8]) -> Result<M, JournalError> {
        let damaged = |e: String| JournalError::Damaged { job: id, reason: format!("{what}: {e}") };
        let bytes = Stored::decode(stored).and_then(|s| self.blobs.load(s)).map_err(damaged)?;
        M::decode(bytes.as_slice()).map_err(|e| damaged(e.to_string()))
    }

    /// Record a new job durably, or find the job its request id names.
    /// Returns once the record is on disk (not from an async task: see
    /// [`Journal::accept_soon`]).
    pub fn accept(&self, record: JobRecord, payload: Vec<u8>) -> Result<Accepted, JournalError> {
        self.accept_soon(record, payload).blocking_recv().unwrap_or(Err(JournalError::Stopped))
    }

    /// [`Journal::accept`] without blocking: the answer arrives once the
    /// record is on disk (an async caller awaits it on no thread of its own).
    pub fn accept_soon(
        &self,
        record: JobRecord,
        payload: Vec<u8>,
    ) -> oneshot::Receiver<Result<Accepted, JournalError>> {
        self.file_accept(record, self.stored(payload).map(Kept::Payload))
    }

    /// [`Journal::accept_soon`] for a job that has run already (`record`
    /// in its end state): recorded ended, with its result, in one write.
    /// A request id already known finds its job as an accept does, and
    /// this run's result is dropped.
    pub fn accept_ended_soon(
        &self,
        record: JobRecord,
        result: Option<&JobResult>,
    ) -> oneshot::Receiver<Result<Accepted, JournalError>> {
        debug_assert!(is_final(record.job.state()), "an accept of a job that ran records its end");
        self.file_accept(record, self.stored_result(result).map(Kept::Ended))
    }

    fn file_accept(
        &self,
        record: JobRecord,
        kept: Result<Kept, JournalError>,
    ) -> oneshot::Receiver<Result<Accepted, JournalError>> {
        let (reply, answer) = oneshot::channel();
        let kept = match kept {
            Ok(kept) => kept,
            Err(e) => {
                let _ = reply.send(Err(e));
                return answer;
            }
        };
        let write = Write::Accept { record: Box::new(record), kept, reply };
        if let Err(write) = self.send_or_return(write) {
            if let Write::Accept { reply, .. } = *write {
                let _ = reply.send(Err(JournalError::Stopped));
            }
        }
        answer
    }

    /// Write a job's new state; with `durable`, wait until it is on disk.
    /// An ended job's payload is removed and its result kept.
    pub fn update(&self, record: &JobRecord, result: Option<JobResult>, durable: bool) -> Result<(), JournalError> {
        let stored = self.stored_result(result.as_ref())?;
        let record = Box::new(record.clone());
        if !durable {
            return self.send(Write::Update { record, result: None, stored, durable, reply: Reply::None });
        }
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Write::Update { record, result: None, stored, durable, reply: Reply::Wait(reply) })?;
        answer.recv().map_err(|_| JournalError::Stopped)?
    }

    /// Write a job's new state durably without waiting: `then` is called
    /// (on the committer's thread, so briefly) once it is on disk, with the
    /// record and result back (a large result is never copied).
    pub fn update_then(
        &self,
        record: JobRecord,
        result: Option<JobResult>,
        then: impl FnOnce(Result<(), JournalError>, JobRecord, Option<JobResult>) + Send + 'static,
    ) {
        let stored = match self.stored_result(result.as_ref()) {
            Ok(stored) => stored,
            Err(e) => return then(Err(e), record, result),
        };
        let write = Write::Update {
            record: Box::new(record),
            result,
            stored,
            durable: true,
            reply: Reply::Then(Box::new(then)),
        };
        if let Err(write) = self.send_or_return(write) {
            if let Write::Update { reply: Reply::Then(then), record, result, .. } = *write {
                then(Err(JournalError::Stopped), *record, result);
            }
        }
    }

    /// Remove ended jobs (past the result TTL) with their results and request ids.
    pub fn forget(&self, ids: Vec<u64>) -> Result<(), JournalError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Write::Forget { ids, reply })?;
        answer.recv().map_err(|_| JournalError::Stopped)?
    }

    fn send(&self, write: Write) -> Result<(), JournalError> {
        self.send_or_return(write).map_err(|_| JournalError::Stopped)
    }

    /// The job with its result (when it has one).
    pub fn get(&self, id: u64) -> Result<Option<JobRecord>, JournalError> {
        let mut tries = 0;
        loop {
            let Some((mut record, stored)) = self.read_job(id)? else { return Ok(None) };
            let Some(stored) = stored else { return Ok(Some(record)) };
            match self.load(id, "result", &stored) {
                Ok(result) => {
                    record.job.result = Some(result);
                    return Ok(Some(record));
                }
                // A commit after this read may have removed the result's
                // file with its row (the job expired): read again.
                Err(_) if tries < 2 && self.read_job(id)?.and_then(|(_, now)| now).as_ref() != Some(&stored) => {
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A job's record and its result's stored reference, in one read.
    fn read_job(&self, id: u64) -> Result<Option<(JobRecord, Option<StoredRef>)>, JournalError> {
        let rx = self.db.begin_read().map_err(|e| db_error(&self.path, e))?;
        let jobs = rx.open_table(JOBS).map_err(|e| db_error(&self.path, e))?;
        let Some(bytes) = jobs.get(id).map_err(|e| db_error(&self.path, e))? else { return Ok(None) };
        let record = JobRecord::decode(id, bytes.value())?;
        let results = rx.open_table(RESULTS).map_err(|e| db_error(&self.path, e))?;
        let stored = results.get(id).map_err(|e| db_error(&self.path, e))?.map(|s| s.value().to_vec());
        Ok(Some((record, stored)))
    }

    /// The job a request id names, if any.
    pub fn find_request(&self, request_id: &str) -> Result<Option<JobRecord>, JournalError> {
        let rx = self.db.begin_read().map_err(|e| db_error(&self.path, e))?;
        let requests = rx.open_table(REQUESTS).map_err(|e| db_error(&self.path, e))?;
        let Some(id) = requests.get(request_id).map_err(|e| db_error(&self.path, e))? else { return Ok(None) };
        let id = id.value();
        drop(requests);
        drop(rx);
        self.get(id)
    }

    /// The payload of a job that has not ended.
    pub fn payload(&self, id: u64) -> Result<Option<JobPayload>, JournalError> {
        let rx = self.db.begin_read().map_err(|e| db_error(&self.path, e))?;
        let payloads = rx.open_table(PAYLOADS).map_err(|e| db_error(&self.path, e))?;
        let Some(stored) = payloads.get(id).map_err(|e| db_error(&self.path, e))? else { return Ok(None) };
        self.load(id, "payload", stored.value()).map(Some)
    }

    /// Every job, oldest first, without results.
    pub fn all(&self) -> Result<Vec<JobRecord>, JournalError> {
        let rx = self.db.begin_read().map_err(|e| db_error(&self.path, e))?;
        let jobs = rx.open_table(JOBS).map_err(|e| db_error(&self.path, e))?;
        let mut out = Vec::new();
        for entry in jobs.iter().map_err(|e| db_error(&self.path, e))? {
            let (id, bytes) = entry.map_err(|e| db_error(&self.path, e))?;
            out.push(JobRecord::decode(id.value(), bytes.value())?);
        }
        Ok(out)
    }

    /// The newest jobs (without results) that `keep` accepts, at most `limit`.
    pub fn recent(&self, limit: usize, keep: impl Fn(&Job) -> bool) -> Result<Vec<Job>, JournalError> {
        let rx = self.db.begin_read().map_err(|e| db_error(&self.path, e))?;
        let jobs = rx.open_table(JOBS).map_err(|e| db_error(&self.path, e))?;
        let mut out = Vec::new();
        for entry in jobs.iter().map_err(|e| db_error(&self.path, e))?.rev() {
            if out.len() >= limit {
                break;
            }
            let (id, bytes) = entry.map_err(|e| db_error(&self.path, e))?;
            let record = JobRecord::decode(id.value(), bytes.value())?;
            if keep(&record.job) {
                out.push(record.job);
            }
        }
        Ok(out)
    }

    /// Ended jobs that finished before `horizon` (Unix ms). Jobs are read
    /// oldest first and the scan stops at the first submitted after the
    /// horizon: no later job can have finished before it.
    pub fn expired(&self, horizon: u64) -> Result<Vec<u64>, JournalError> {
        let rx = self.db.begin_read().map_err(|e| db_error(&self.path, e))?;
        let jobs = rx.open_table(JOBS).map_err(|e| db_error(&self.path, e))?;
        let mut out = Vec::new();
        for entry in jobs.iter().map_err(|e| db_error(&self.path, e))? {
            let (id, bytes) = entry.map_err(|e| db_error(&self.path, e))?;
            let job = JobRecord::decode(id.value(), bytes.value())?.job;
            if job.submitted_unix_ms >= horizon {
                break;
            }
            if is_final(job.state()) && job.finished_unix_ms < horizon {
                out.push(id.value());
            }
        }
        Ok(out)
    }

    /// Stop the committer once the writes sent so far are done; later
    /// writes through any clone fail with [`JournalError::Stopped`].
    pub fn close(&self) {
        let _ = self.writes.send(Write::Stop);
        let handle = self.committer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// The committer: each turn takes every write waiting (up to
/// [`GROUP_LIMIT`]) into one transaction, commits it, and answers them all.
fn commit_loop(db: &Database, path: &Path, blobs: &Blobs, queue: mpsc::Receiver<Write>) {
    let mut stopping = false;
    // Files whose references are gone, removed once that is durable.
    let mut unreferenced: Vec<String> = Vec::new();
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_LIMIT {
            match queue.try_recv() {
                Ok(write) => group.push(write),
                Err(_) => break,
            }
        }
        if let Some(at) = group.iter().position(|w| matches!(w, Write::Stop)) {
            // Writes queued after the stop are refused (their senders hear Stopped).
            group.truncate(at);
            stopping = true;
        }
        let durable = group.iter().any(Write::durable);
        match commit_group(db, path, &group, durable, &mut unreferenced) {
            Ok(answers) => {
                if durable {
                    blobs.remove(&std::mem::take(&mut unreferenced));
                }
                if cfg!(debug_assertions) {
                    crash_points(&group);
                }
                for (write, answer) in group.into_iter().zip(answers) {
                    reply(write, answer);
                }
            }
            Err((e, maybe_written)) => {
                // Every writer hears why. The group's files go if nothing
                // was written; they stay if the commit itself failed (one
                // whose last sync failed may still reach the disk, naming
                // them): the sweep at the next open removes those no record
                // names.
                if !maybe_written {
                    let brought: Vec<String> = group.iter().filter_map(|w| w.blob().map(str::to_string)).collect();
                    blobs.remove(&brought);
                }
                for write in group {
                    reply(write, Err(e.again()));
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// The crash test's points after a durable commit, before anyone is told.
fn crash_points(group: &[Write]) {
    if group.iter().any(|w| matches!(w, Write::Accept { .. })) {
        super::crash::point("accepted");
    }
    let ends = |w: &Write| match w {
        Write::Update { record, .. } | Write::Accept { record, kept: Kept::Ended(_), .. } => {
            is_final(record.job.state())
        }
        _ => false,
    };
    if group.iter().any(ends) {
        super::crash::point("ended");
    }
}

/// What one write of a group came to (an accept can find an existing job).
type Answer = Result<Option<Accepted>, JournalError>;

fn reply(write: Write, answer: Answer) {
    match write {
        Write::Accept { reply, .. } => {
            let _ = reply.send(answer.and_then(|a| a.ok_or(JournalError::Stopped)));
        }
        Write::Update { reply: Reply::Wait(reply), .. } | Write::Forget { reply, .. } => {
            let _ = reply.send(answer.map(|_| ()));
        }
        Write::Update { reply: Reply::Then(then), record, result, .. } => then(answer.map(|_| ()), *record, result),
        Write::Update { reply: Reply::None, .. } => {
            if let Err(e) = answer {
                tracing::error!("recording a job's state: {e}");
            }
        }
        Write::Stop => {}
    }
}

/// Commit a group's writes in one transaction. The files whose references
/// it drops are added to `unreferenced` (kept if it fails: nothing changed).
/// Commit a group of writes; the error says whether the commit itself
/// failed (it may still have reached the disk) or what came before it (it
/// rolled back: nothing was written).
fn commit_group(
    db: &Database,
    path: &Path,
    group: &[Write],
    durable: bool,
    unreferenced: &mut Vec<String>,
) -> Result<Vec<Answer>, (JournalError, bool)> {
    let mut dropped = Vec::new();
    let (tx, answers) = stage_group(db, path, group, durable, &mut dropped).map_err(|e| (e, false))?;
    tx.commit().map_err(|e| (db_error(path, e), true))?;
    unreferenced.extend(dropped);
    Ok(answers)
}

fn stage_group(
    db: &Database,
    path: &Path,
    group: &[Write],
    durable: bool,
    dropped: &mut Vec<String>,
) -> Result<(redb::WriteTransaction, Vec<Answer>), JournalError> {
    let mut tx = db.begin_write().map_err(|e| db_error(path, e))?;
    tx.set_durability(if durable { Durability::Immediate } else { Durability::None })
        .map_err(|e| JournalError::Internal { path: path.to_path_buf(), reason: e.to_string() })?;
    let mut answers = Vec::with_capacity(group.len());
    {
        let mut jobs = tx.open_table(JOBS).map_err(|e| db_error(path, e))?;
        let mut payloads = tx.open_table(PAYLOADS).map_err(|e| db_error(path, e))?;
        let mut results = tx.open_table(RESULTS).map_err(|e| db_error(path, e))?;
        let mut requests = tx.open_table(REQUESTS).map_err(|e| db_error(path, e))?;
        let mut meta = tx.open_table(META).map_err(|e| db_error(path, e))?;
        let mut next = meta.get(NEXT_ID).map_err(|e| db_error(path, e))?.map_or(1, |v| v.value());
        for write in group {
            let answer = match write {
                Write::Accept { record, kept, .. } => {
                    let known = requests.get(record.job.request_id.as_str()).map_err(|e| db_error(path, e))?;
                    match known.map(|id| id.value()) {
                        Some(id) => {
                            let bytes = jobs.get(id).map_err(|e| db_error(path, e))?;
                            let existing = match bytes {
                                Some(bytes) => JobRecord::decode(id, bytes.value())?,
                                None => {
                                    return Err(JournalError::Damaged { job: id, reason: "request without job".into() })
                                }
                            };
                            // The retry's own copy of the payload is not kept.
                            dropped.extend(kept.blob_name().map(str::to_string));
                            if existing.payload_digest == record.payload_digest {
                                Ok(Some(Accepted::Existing(Box::new(existing))))
                            } else {
                                Err(JournalError::Conflict { request_id: record.job.request_id.clone(), job: id })
                            }
                        }
                        None => {
                            let id = next;
                            next += 1;
                            let mut record = record.clone();
                            record.job.job_id = id;
                            jobs.insert(id, record.encode().as_slice()).map_err(|e| db_error(path, e))?;
                            match kept {
                                Kept::Payload(payload) => {
                                    payloads.insert(id, payload.encode().as_slice()).map_err(|e| db_error(path, e))?;
                                }
                                Kept::Ended(Some(result)) => {
                                    results.insert(id, result.encode().as_slice()).map_err(|e| db_error(path, e))?;
                                }
                                Kept::Ended(None) => {}
                            }
                            requests.insert(record.job.request_id.as_str(), id).map_err(|e| db_error(path, e))?;
                            Ok(Some(Accepted::New(id)))
                        }
                    }
                }
                Write::Update { record, stored, .. } => {
                    let id = record.job.job_id;
                    jobs.insert(id, record.encode().as_slice()).map_err(|e| db_error(path, e))?;
                    if is_final(record.job.state()) {
                        dropped.extend(blob_in(payloads.remove(id).map_err(|e| db_error(path, e))?));
                    }
                    if let Some(stored) = stored {
                        let old = results.insert(id, stored.encode().as_slice()).map_err(|e| db_error(path, e))?;
                        dropped.extend(blob_in(old));
                    }
                    Ok(None)
                }
                Write::Stop => Ok(None),
                Write::Forget { ids, .. } => {
                    for &id in ids {
                        let removed = jobs.remove(id).map_err(|e| db_error(path, e))?;
                        let request = match removed {
                            Some(bytes) => Some(JobRecord::decode(id, bytes.value())?.job.request_id),
                            None => None,
                        };
                        if let Some(request) = request {
                            requests.remove(request.as_str()).map_err(|e| db_error(path, e))?;
                        }
                        dropped.extend(blob_in(payloads.remove(id).map_err(|e| db_error(path, e))?));
                        dropped.extend(blob_in(results.remove(id).map_err(|e| db_error(path, e))?));
                    }
                    Ok(None)
                }
            };
            answers.push(answer);
        }
        meta.insert(NEXT_ID, next).map_err(|e| db_error(path, e))?;
    }
    Ok((tx, answers))
}

/// The file a stored value refers to, if any.
fn blob_of(value: &[u8]) -> Option<String> {
    Stored::decode(value).ok()?.blob_name().map(str::to_string)
}

/// The file of a value a write replaced or removed, if any.
fn blob_in(old: Option<redb::AccessGuard<'_, &[u8]>>) -> Option<String> {
    blob_of(old?.value())
}

/// Every file the payloads and results refer to.
fn referred_blobs(db: &Database, path: &Path) -> Result<std::collections::HashSet<String>, JournalError> {
    let rx = db.begin_read().map_err(|e| db_error(path, e))?;
    let mut referred = std::collections::HashSet::new();
    for table in [PAYLOADS, RESULTS] {
        let table = rx.open_table(table).map_err(|e| db_error(path, e))?;
        for entry in table.iter().map_err(|e| db_error(path, e))? {
            let (_, value) = entry.map_err(|e| db_error(path, e))?;
            referred.extend(blob_of(value.value()));
        }
    }
    Ok(referred)
}

/// Whether a job in `state` has ended.
pub fn is_final(state: JobState) -> bool {
    matches!(state, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(request: &str, digest: u8) -> JobRecord {
        let job = Job { request_id: request.into(), state: JobState::Queued as i32, ..Job::default() };
        JobRecord { job, payload_digest: [digest; 32], batch_head: 0 }
    }

    #[test]
    fn accepts_are_idempotent_on_the_request_id_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let Accepted::New(a) = journal.accept(record("a", 1), vec![1, 2]).unwrap() else { panic!("new") };
        let Accepted::New(b) = journal.accept(record("b", 1), vec![3]).unwrap() else { panic!("new") };
        assert_ne!(a, b);
        match journal.accept(record("a", 1), vec![1, 2]).unwrap() {
            Accepted::Existing(r) => assert_eq!(r.job.job_id, a),
            other => panic!("{other:?}"),
        }
        assert!(matches!(journal.accept(record("a", 2), vec![9]), Err(JournalError::Conflict { job, .. }) if job == a));
        // Two servers on one data dir: the second is told.
        assert!(matches!(Journal::open(dir.path()), Err(JournalError::Busy { .. })));
        journal.close();
        drop(journal);
        let journal = Journal::open(dir.path()).unwrap();
        let all = journal.all().unwrap();
        assert_eq!(all.iter().map(|r| r.job.job_id).collect::<Vec<_>>(), vec![a, b]);
        let Accepted::New(c) = journal.accept(record("c", 1), vec![]).unwrap() else { panic!("new") };
        assert!(c > b, "ids are never reused");
    }

    #[test]
    fn an_ended_job_keeps_its_result_and_drops_its_payload() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let Accepted::New(id) = journal.accept(record("a", 1), JobPayload::default().encode_to_vec()).unwrap() else {
            panic!("new")
        };
        assert!(journal.payload(id).unwrap().is_some());
        let mut done = journal.get(id).unwrap().unwrap();
        done.job.state = JobState::Succeeded as i32;
        let result = JobResult { backends: vec![], kind: None };
        journal.update(&done, Some(result.clone()), true).unwrap();
        assert!(journal.payload(id).unwrap().is_none());
        assert_eq!(journal.get(id).unwrap().unwrap().job.result, Some(result));
        journal.forget(vec![id]).unwrap();
        assert!(journal.get(id).unwrap().is_none());
        let Accepted::New(again) = journal.accept(record("a", 2), vec![]).unwrap() else { panic!("forgotten") };
        assert_ne!(again, id);
    }

    #[test]
    fn large_payloads_and_results_live_in_files_that_go_with_their_references() {
        use super::super::blobs::BLOB_BYTES;
        use super::super::proto::{job_payload, job_result, HashJob, HashResult};
        let dir = tempfile::tempdir().unwrap();
        let files = || std::fs::read_dir(dir.path().join("job-blobs")).unwrap().count();
        let journal = Journal::open(dir.path()).unwrap();
        let hash = HashJob { packed: vec![3; BLOB_BYTES], message_len: 64, ..HashJob::default() };
        let payload = JobPayload { kind: Some(job_payload::Kind::Hash(hash)) };
        let Accepted::New(id) = journal.accept(record("big", 1), payload.encode_to_vec()).unwrap() else { panic!() };
        assert_eq!(files(), 1, "the payload is a file");
        assert_eq!(journal.payload(id).unwrap(), Some(payload.clone()));
        // A retry's copy of the payload is not kept.
        assert!(matches!(journal.accept(record("big", 1), payload.encode_to_vec()).unwrap(), Accepted::Existing(_)));
        assert_eq!(files(), 1);

        let mut done = journal.get(id).unwrap().unwrap();
        done.job.set_state(JobState::Succeeded);
        let digests = HashResult { packed_digests: vec![5; 2 * BLOB_BYTES], ..HashResult::default() };
        let result = JobResult { kind: Some(job_result::Kind::Hash(digests)), backends: vec![] };
        journal.update(&done, Some(result.clone()), true).unwrap();
        assert_eq!(files(), 1, "the payload's file went with the payload; the result is a file");
        assert_eq!(journal.get(id).unwrap().unwrap().job.result, Some(result.clone()));

        // A file no record names (a crash between its write and its commit) goes at the next open.
        journal.close();
        drop(journal);
        std::fs::write(dir.path().join("job-blobs").join("1-1"), b"orphan").unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        assert_eq!(files(), 1);
        assert_eq!(journal.get(id).unwrap().unwrap().job.result, Some(result));
        journal.forget(vec![id]).unwrap();
        assert_eq!(files(), 0, "forgotten with its job");
    }

    #[test]
    fn expiry_and_listing_read_only_what_they_need() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let mut ids = Vec::new();
        for (i, (submitted, finished, state)) in [
            (10, 20, JobState::Succeeded),
            (11, 0, JobState::Running),
            (12, 90, JobState::Failed),
            (200, 210, JobState::Succeeded),
        ]
        .into_iter()
        .enumerate()
        {
            let Accepted::New(id) = journal.accept(record(&format!("r{i}"), 0), vec![]).unwrap() else { panic!() };
            let mut r = journal.get(id).unwrap().unwrap();
            r.job.submitted_unix_ms = submitted;
            r.job.finished_unix_ms = finished;
            r.job.set_state(state);
            journal.update(&r, None, true).unwrap();
            ids.push(id);
        }
        assert_eq!(journal.expired(100).unwrap(), vec![ids[0], ids[2]], "ended before the horizon, not running ones");
        let newest: Vec<u64> = journal.recent(2, |_| true).unwrap().iter().map(|j| j.job_id).collect();
        assert_eq!(newest, vec![ids[3], ids[2]]);
        let running: Vec<u64> =
            journal.recent(10, |j| j.state() == JobState::Running).unwrap().iter().map(|j| j.job_id).collect();
        assert_eq!(running, vec![ids[1]]);
    }

    #[test]
    fn concurrent_accepts_share_commits_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let journal = journal.clone();
                s.spawn(move || {
                    for i in 0..50 {
                        journal.accept(record(&format!("{t}-{i}"), 0), vec![0; 16]).unwrap();
                    }
                });
            }
        });
        assert_eq!(journal.all().unwrap().len(), 400);
    }
}
