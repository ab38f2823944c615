//! The service's core, free of gRPC: accepting jobs (checked, then durably
//! recorded, then queued), the runners that execute them, their events,
//! cancellation, and recovery after a restart.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use tokio::sync::{oneshot, watch};

use super::hot::Hot;
use super::journal::{is_final, Accepted, JobRecord, Journal, JournalError};
use super::metrics::{Metrics, StageClock};
use super::proto::job_payload::Kind as PayloadKind;
use super::proto::{
    job_result, Job, JobError, JobEvent, JobKind, JobPayload, JobResult, JobState, SubmitRequest, SubmitResponse,
};
use super::scheduler::{QueueFull, Reservation, Scheduler};
use super::work::batch::{self, BatchRunner};
use super::work::{self, BadPayload, Engines, Progress, Ready, WorkError};

/// Why a call was refused; the server maps each to its gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Invalid(String),
    #[error("request id {request_id:?} already names job {job} with a different payload")]
    Conflict { request_id: String, job: u64 },
    #[error("the {kind} queue is full ({depth} jobs); retry later")]
    QueueFull { kind: &'static str, depth: usize },
    #[error("the deadline {deadline_unix_ms} (Unix ms) has already passed")]
    DeadlinePassed { deadline_unix_ms: u64 },
    #[error("no job {0}")]
    NotFound(u64),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl Refusal {
    /// Its label in `cvm_jobs_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Invalid(_) => "invalid",
            Refusal::Conflict { .. } => "conflict",
            Refusal::QueueFull { .. } => "queue_full",
            Refusal::DeadlinePassed { .. } => "deadline",
            Refusal::NotFound(_) => "not_found",
            Refusal::Unavailable(_) => "unavailable",
            Refusal::Internal(_) => "internal",
        }
    }
}

impl From<BadPayload> for Refusal {
    fn from(e: BadPayload) -> Self {
        Refusal::Invalid(e.to_string())
    }
}

/// Work refused before it was queued (a key to keep, a path to read):
/// the caller's fault, unless the server failed.
impl From<WorkError> for Refusal {
    fn from(e: WorkError) -> Self {
        match e {
            WorkError::Internal(reason) | WorkError::Aborted(reason) => Refusal::Internal(reason),
            WorkError::Unavailable(reason) => Refusal::Unavailable(reason),
            other => Refusal::Invalid(other.to_string()),
        }
    }
}

impl From<JournalError> for Refusal {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::Conflict { request_id, job } => Refusal::Conflict { request_id, job },
            JournalError::Stopped => Refusal::Unavailable("the server is shutting down".into()),
            other => Refusal::Internal(other.to_string()),
        }
    }
}

/// The longest request id a caller may use.
pub const MAX_REQUEST_ID: usize = 128;

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The job kind a service token's `jobs` caveat names (one list of kinds
/// and names for tokens, errors, metrics and the CLI).
pub fn token_kind(kind: JobKind) -> Option<crate::capability::JobKind> {
    use crate::capability::JobKind as Token;
    match kind {
        JobKind::ExecuteBatch => Some(Token::ExecuteBatch),
        JobKind::ProveOps => Some(Token::ProveOps),
        JobKind::Hash => Some(Token::Hash),
        JobKind::MerkleRoot => Some(Token::MerkleRoot),
        JobKind::Msm => Some(Token::Msm),
        JobKind::Groth16 => Some(Token::Groth16),
        JobKind::Unspecified => None,
    }
}

/// The lower-case name of a job kind (in errors, metrics and the CLI).
pub fn kind_name(kind: JobKind) -> &'static str {
    token_kind(kind).map_or("unspecified", crate::capability::JobKind::name)
}

pub const COMPUTE_KINDS: [JobKind; 5] =
    [JobKind::Hash, JobKind::MerkleRoot, JobKind::Msm, JobKind::ProveOps, JobKind::Groth16];
/// The most batch jobs run as one pipeline.
pub const PIPELINE: usize = 8;

/// Batch jobs have one runner: the store's owner.
pub const BATCH_KINDS: [JobKind; 1] = [JobKind::ExecuteBatch];

/// The server's exit status after a batch job panicked (EX_SOFTWARE).
pub const EXIT_BATCH_PANIC: i32 = 70;

/// Exit the server ([`EXIT_BATCH_PANIC`]) after a commit failed in a way
/// that leaves it unknown whether it reached the disk.
pub fn exit_after_uncertain_commit() -> ! {
    tracing::error!(
        "a batch's commit failed and could not be undone on disk: the server exits so that a restart reopens the \
         store, finds which batch jobs committed, and runs the others again"
    );
    std::process::exit(EXIT_BATCH_PANIC)
}

/// Exit the server ([`EXIT_BATCH_PANIC`]) after batch job `id` panicked:
/// the register store in memory may be half changed, and a restart recovers
/// it from its log and runs the job again, at most once in effect.
pub fn exit_after_batch_panic(id: u64, panic: &(dyn std::any::Any + Send)) -> ! {
    let text = crate::error::panic_text(panic);
    tracing::error!(
        "job {id}: a batch job panicked ({text}); the server exits so that a restart recovers the store from its \
         log and runs the job again"
    );
    std::process::exit(EXIT_BATCH_PANIC)
}

/// Recorded starts after which a batch job that never finished or committed
/// is failed instead of run again: a batch that panics (and so exits the
/// server) every time would otherwise keep the server down.
pub const MAX_BATCH_STARTS: u32 = 3;
/// Every kind this server runs (what Status and the metrics report on).
pub const SERVED_KINDS: [JobKind; 6] =
    [JobKind::ExecuteBatch, JobKind::ProveOps, JobKind::Hash, JobKind::MerkleRoot, JobKind::Msm, JobKind::Groth16];

/// A submission answered: the job, and its events from its accept on
/// (None when it has ended already).
pub struct Submitted {
    pub response: SubmitResponse,
    pub events: Option<watch::Receiver<JobEvent>>,
}

/// A submission checked: answered, or waiting for its record to be durable.
enum Checked<'a> {
    Answered(Submitted),
    Recording(Box<Pending<'a>>, oneshot::Receiver<Result<Accepted, JournalError>>),
}

/// What queues a job once its record is durable.
struct Pending<'a> {
    reservation: Reservation<'a>,
    record: JobRecord,
    next: Next,
}

/// What follows a job's accept.
enum Next {
    /// It is queued for a runner.
    Queue {
        /// The job's work, for the runner to take from memory, and its payload's encoded size.
        work: Ready,
        size: usize,
        /// The proving key set the job uses (0: none), for the scheduler.
        key_set: u32,
    },
    /// It ran already (see [`RUN_AT_ONCE_BYTES`]) and its accept records its end.
    Ended(RanAtOnce),
}

/// A job run as it was submitted, counted in the metrics only once its
/// accept is written as a new job (a retry's run is dropped uncounted).
struct RanAtOnce {
    /// None when it failed.
    result: Option<JobResult>,
    hash_seconds: f64,
    bytes_hashed: u64,
}

/// Batch jobs a pipeline took from the queue behind its first, counted as
/// running until it ends (dropped).
struct TakenBatches<'a> {
    scheduler: &'a Scheduler,
    running: usize,
}

impl TakenBatches<'_> {
    fn finish_one(&mut self) {
        self.running -= 1;
        self.scheduler.finished(JobKind::ExecuteBatch);
    }
}

impl Drop for TakenBatches<'_> {
    fn drop(&mut self) {
        for _ in 0..self.running {
            self.scheduler.finished(JobKind::ExecuteBatch);
        }
    }
}

/// Progress for work with no stages to report or cancel between.
struct Unwatched;

impl Progress for Unwatched {
    fn stage(&self, _name: &str) -> bool {
        true
    }
}

/// The largest payload (encoded bytes) of a hash or Merkle job that runs
/// at once, on the submitting thread, when a runner is free and no job of
/// its kind waits: its accept then records its end too, so that a small
/// job costs one durable write instead of two (its accept and its end),
/// and needs no trip through the queue. The work takes microseconds, so
/// the submitting thread is not held long.
pub const RUN_AT_ONCE_BYTES: usize = 16 << 10;

pub struct Core {
    pub journal: Journal,
    pub scheduler: Scheduler,
    pub engines: Arc<Engines>,
    pub metrics: Arc<Metrics>,
    /// Live jobs' event channels (queued or running).
    events: Mutex<HashMap<u64, watch::Sender<JobEvent>>>,
    /// Running jobs as they stand: the job store's record lags for compute
    /// jobs, whose starts are not written (`Get` and `List` read both).
    running: Mutex<HashMap<u64, Job>>,
    /// Running jobs asked to stop at their next stage boundary.
    cancelled: Mutex<HashSet<u64>>,
    pub started: Instant,
    pub result_ttl: Duration,
    /// The store, for batch jobs (their one runner holds it while it runs one).
    pub batches: Mutex<BatchRunner>,
    /// The MSM engine's fallback count already in the metrics.
    msm_fallbacks_seen: std::sync::atomic::AtomicU64,
    /// Queued jobs' work kept in memory for their runner.
    hot: Hot<Ready>,
    /// Jobs whose end could not be written, with how many times (they run again).
    unrecorded: Mutex<HashMap<u64, u32>>,
    /// How many runners of the compute kinds run here (0 when a cluster's
    /// workers run them): small jobs run at once only in a free runner's place.
    local_runners: usize,
}

/// The pause before a job whose end could not be written runs again: the
/// first, growing fourfold with each failure up to the most.
const END_RETRY_FIRST: Duration = Duration::from_millis(50);
const END_RETRY_MOST: Duration = Duration::from_secs(30);

impl Core {
    pub fn new(
        journal: Journal,
        scheduler: Scheduler,
        engines: Engines,
        result_ttl: Duration,
        batches: BatchRunner,
    ) -> Core {
        Core {
            journal,
            scheduler,
            engines: Arc::new(engines),
            metrics: Arc::new(Metrics::new()),
            events: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            cancelled: Mutex::new(HashSet::new()),
            started: Instant::now(),
            result_ttl,
            batches: Mutex::new(batches),
            msm_fallbacks_seen: std::sync::atomic::AtomicU64::new(0),
            hot: Hot::default(),
            unrecorded: Mutex::new(HashMap::new()),
            local_runners: 0,
        }
    }

    /// The server runs `runners` compute runners here (see [`RUN_AT_ONCE_BYTES`]).
    pub fn with_local_runners(mut self, runners: usize) -> Core {
        self.local_runners = runners;
        self
    }

    /// Queue again every job a previous run accepted and did not finish
    /// (running ones start over: each stage's work is redone whole), and
    /// forget ended jobs past the result TTL. Returns how many were queued.
    pub fn recover(&self) -> Result<usize, JournalError> {
        let mut queued = 0;
        for mut record in self.journal.all()? {
            let job = &mut record.job;
            if is_final(job.state()) {
                continue;
            }
            if job.state() == JobState::Running {
                job.set_state(JobState::Queued);
                job.stage.clear();
                self.journal.update(&record, None, false)?;
            }
            let job = &record.job;
            self.open_events(job);
            self.scheduler.requeue(job.kind(), job.job_id, job.priority, unstarted_deadline(job));
            queued += 1;
        }
        self.expire()?;
        Ok(queued)
    }

    /// Forget ended jobs past the result TTL (run now and then).
    pub fn expire(&self) -> Result<usize, JournalError> {
        let horizon = now_ms().saturating_sub(self.result_ttl.as_millis() as u64);
        let expired = self.journal.expired(horizon)?;
        let n = expired.len();
        if n > 0 {
            self.journal.forget(expired)?;
        }
        Ok(n)
    }

    /// Check, record durably and queue a job (see the proto's Submit);
    /// blocks until the record is on disk.
    pub fn submit(self: &Arc<Self>, request: SubmitRequest) -> Result<Submitted, Refusal> {
        let kind = kind_label(&request);
        let submitted = match self.check(request) {
            Ok(Checked::Answered(submitted)) => Ok(submitted),
            Ok(Checked::Recording(pending, accepted)) => {
                self.recorded(pending, accepted.blocking_recv().unwrap_or(Err(JournalError::Stopped)))
            }
            Err(refusal) => Err(refusal),
        };
        self.counted(kind, submitted)
    }

    /// [`Core::submit`] awaiting the disk on no thread of its own (for
    /// small payloads, whose checking is brief).
    pub async fn submit_async(self: &Arc<Self>, request: SubmitRequest) -> Result<Submitted, Refusal> {
        let kind = kind_label(&request);
        let submitted = match self.check(request) {
            Ok(Checked::Answered(submitted)) => Ok(submitted),
            Ok(Checked::Recording(pending, accepted)) => {
                self.recorded(pending, accepted.await.unwrap_or(Err(JournalError::Stopped)))
            }
            Err(refusal) => Err(refusal),
        };
        self.counted(kind, submitted)
    }

    /// A submit's answer, a refusal counted in `cvm_jobs_rejected_total`.
    pub fn counted<T>(&self, kind: &str, answer: Result<T, Refusal>) -> Result<T, Refusal> {
        answer.inspect_err(|refusal| self.metrics.rejected(kind, refusal.reason()))
    }

    /// A submission checked and on its way to the job store (or answered
    /// already: a retry of an accepted job).
    fn check(self: &Arc<Self>, request: SubmitRequest) -> Result<Checked<'_>, Refusal> {
        check_request_id(&request.request_id)?;
        let payload = request.payload.unwrap_or_default();
        let kind = work::kind_of(&payload)?;
        // A place first: a full queue sheds the load before any checking work.
        let reserve = || {
            self.scheduler.reserve(kind).or_else(|_| {
                // Full: places held by jobs past their deadline are freed first.
                self.end_expired();
                self.scheduler.reserve(kind)
            })
        };
        let reservation = match reserve() {
            Ok(reservation) => Some(reservation),
            Err(QueueFull { kind, depth }) => {
                // A retry of a job already accepted is still answered (below).
                if self.journal.find_request(&request.request_id)?.is_none() {
                    return Err(Refusal::QueueFull { kind: kind_name(kind), depth });
                }
                None
            }
        };
        // Refused before a `zkey_path` is adopted (kept in the data dir).
        let late = request.deadline_unix_ms != 0 && request.deadline_unix_ms <= now_ms();
        if late && self.journal.find_request(&request.request_id)?.is_none() {
            return Err(Refusal::DeadlinePassed { deadline_unix_ms: request.deadline_unix_ms });
        }
        let payload = work::adopt_paths(payload, &self.engines)?;
        let encoded = payload.encode_to_vec();
        let digest = *blake3::hash(&encoded).as_bytes();
        let parsed = match work::check(&payload, &self.engines, &request.request_id) {
            Ok(parsed) => parsed,
            // What the payload names may have changed since it was accepted
            // (a base set removed): a retry of an accepted job is still
            // answered with it, as its retries are whatever else changed.
            Err(bad) => return self.retry_or(&request.request_id, digest, bad.into()),
        };
        let key_set = work::KeySet::of(&payload).tag();
        if let Some(Err(bad)) = parsed.as_ref().map(|batch| batch.check_clock(self.engines.max_clock_skew)) {
            // A retry of a job accepted while its date was near is answered with it.
            return self.retry_or(&request.request_id, digest, bad.into());
        }
        let now = now_ms();
        let Some(reservation) = reservation.filter(|_| !late) else {
            // A retry of an accepted job is answered with it, whatever its deadline.
            let passed = Refusal::DeadlinePassed { deadline_unix_ms: request.deadline_unix_ms };
            return self.retry_or(&request.request_id, digest, passed);
        };
        // A domain's batches commit in submission order: priorities do not apply to them.
        let priority = if kind == JobKind::ExecuteBatch { 0 } else { request.priority };
        let job = Job {
            request_id: request.request_id,
            kind: kind as i32,
            state: JobState::Queued as i32,
            priority,
            deadline_unix_ms: request.deadline_unix_ms,
            submitted_unix_ms: now,
            domain: parsed.as_ref().map(|batch| batch.domain().as_str().to_string()).unwrap_or_default(),
            ..Job::default()
        };
        let mut record = JobRecord { job, payload_digest: digest, batch_head: 0 };
        let size = encoded.len();
        if let Some(ran) = self.run_at_once(&mut record, &payload, size) {
            let accepted = self.journal.accept_ended_soon(record.clone(), ran.result.as_ref());
            return Ok(Checked::Recording(Box::new(Pending { reservation, record, next: Next::Ended(ran) }), accepted));
        }
        let work = match parsed {
            Some(batch) => Ready::Batch(Box::new(batch)),
            None => Ready::Payload(payload),
        };
        let accepted = self.journal.accept_soon(record.clone(), encoded);
        let next = Next::Queue { work, size, key_set };
        Ok(Checked::Recording(Box::new(Pending { reservation, record, next }), accepted))
    }

    /// Run a small hash or Merkle job now, in a free runner's place, if it
    /// may ([`RUN_AT_ONCE_BYTES`]): returns what it came to, with `record`
    /// in its end state, or None, `record` untouched, to queue it.
    /// Not where the hash stage would wait on the GPU (another job may hold
    /// it), nor under the tests' injected end-write faults (they fail a
    /// job's own end write, which a job run at once does not have).
    fn run_at_once(&self, record: &mut JobRecord, payload: &JobPayload, size: usize) -> Option<RanAtOnce> {
        let kind = record.job.kind();
        let small_hashing = matches!(kind, JobKind::Hash | JobKind::MerkleRoot) && size <= RUN_AT_ONCE_BYTES;
        if !small_hashing || self.engines.hashing.resolved() != crate::ResolvedBackend::Cpu {
            return None;
        }
        if cfg!(debug_assertions) && (super::crash::injected("end-write") > 0 || super::crash::injected("panic") > 0) {
            return None;
        }
        let place = self.scheduler.run_now(kind, &COMPUTE_KINDS, self.local_runners)?;
        mark_running(&mut record.job);
        record.job.stage = "hash".into();
        let clock = Instant::now();
        let outcome = work::run(payload, &self.engines, &Unwatched);
        let hash_seconds = clock.elapsed().as_secs_f64();
        drop(place);
        let outcome = outcome_of(outcome, &record.job.stage).map(|done| done.result);
        let result = self.conclude(record, outcome);
        let bytes_hashed = if result.is_some() { hashed_bytes(payload) } else { 0 };
        Some(RanAtOnce { result, hash_seconds, bytes_hashed })
    }

    /// Queue a job once its record is on disk.
    fn recorded(
        &self,
        pending: Box<Pending<'_>>,
        accepted: Result<Accepted, JournalError>,
    ) -> Result<Submitted, Refusal> {
        let Pending { reservation, record, next } = *pending;
        let id = match accepted? {
            Accepted::New(id) => id,
            Accepted::Existing(existing) => {
                drop(reservation);
                return self.existing(*existing, record.payload_digest);
            }
        };
        let mut job = record.job;
        job.job_id = id;
        self.metrics.accepted(kind_name(job.kind()));
        match next {
            Next::Queue { work, size, key_set } => {
                let events = self.open_events(&job);
                // Kept in memory for the runner when it fits (else read back).
                let resident = work.resident_bytes(size);
                self.hot.keep(id, work, resident);
                let ahead = reservation.enqueue(id, job.priority, key_set, job.deadline_unix_ms);
                let response = SubmitResponse { job_id: id, queue_position: ahead as u64, existing: false };
                Ok(Submitted { response, events: Some(events) })
            }
            Next::Ended(ran) => {
                drop(reservation);
                job.result = ran.result;
                let m = &self.metrics;
                m.run_at_once.inc();
                m.stage_seconds("queue_wait", 0.0);
                m.stage_seconds("hash", ran.hash_seconds);
                m.bytes_hashed.inc_by(ran.bytes_hashed);
                self.announce(&job);
                let response = SubmitResponse { job_id: id, queue_position: 0, existing: false };
                // Watched from its end: a Run call returns it without reading the store.
                let (_, events) = watch::channel(event_of(&job, 1.0));
                Ok(Submitted { response, events: Some(events) })
            }
        }
    }

    /// `refusal`, unless the request retries a job already accepted: then
    /// that job (or a conflict, if its payload differs).
    fn retry_or(&self, request_id: &str, digest: [u8; 32], refusal: Refusal) -> Result<Checked<'_>, Refusal> {
        match self.journal.find_request(request_id)? {
            Some(existing) => self.existing(existing, digest).map(Checked::Answered),
            None => Err(refusal),
        }
    }

    fn existing(&self, existing: JobRecord, digest: [u8; 32]) -> Result<Submitted, Refusal> {
        let job = &existing.job;
        if existing.payload_digest != digest {
            return Err(Refusal::Conflict { request_id: job.request_id.clone(), job: job.job_id });
        }
        let ahead = self.scheduler.position(job.kind(), job.job_id).unwrap_or(0);
        let response = SubmitResponse { job_id: job.job_id, queue_position: ahead as u64, existing: true };
        Ok(Submitted { response, events: self.subscribe(job.job_id) })
    }

    /// Open a job's events; returns a watcher subscribed from the start
    /// (so a job that ends at once is still seen ending).
    fn open_events(&self, job: &Job) -> watch::Receiver<JobEvent> {
        let (sender, receiver) = watch::channel(event_of(job, 0.0));
        self.events.lock().unwrap_or_else(|p| p.into_inner()).insert(job.job_id, sender);
        receiver
    }

    fn publish(&self, job: &Job, progress: f64) {
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            match job.state() {
                JobState::Running => running.insert(job.job_id, job.clone()),
                _ => running.remove(&job.job_id),
            };
        }
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = events.get(&job.job_id) {
            sender.send_replace(event_of(job, progress));
        }
    }

    /// A running job begins `stage` (a batch job's prove and commit, told by
    /// its pipeline): Get, List and Await say so.
    fn running_stage(&self, id: u64, stage: &str) {
        let job = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            let Some(job) = running.get_mut(&id) else { return };
            job.stage = stage.to_string();
            job.clone()
        };
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = events.get(&id) {
            let progress = sender.borrow().progress;
            sender.send_replace(event_of(&job, progress));
        }
    }

    /// The job's events from now on, or None when it has ended (then `get` it).
    pub fn subscribe(&self, id: u64) -> Option<watch::Receiver<JobEvent>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).get(&id).map(watch::Sender::subscribe)
    }

    pub fn get(&self, id: u64) -> Result<Job, Refusal> {
        let record = self.journal.get(id)?.ok_or(Refusal::NotFound(id))?;
        Ok(self.as_it_stands(record.job))
    }

    /// A job read from the job store, with its state, stage, start and
    /// attempts as they stand now if it is running.
    pub fn as_it_stands(&self, job: Job) -> Job {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match running.get(&job.job_id) {
            Some(live) if !is_final(job.state()) => live.clone(),
            _ => job,
        }
    }

    /// A job's state as it stands (see [`Core::as_it_stands`]).
    pub fn state_now(&self, job: &Job) -> JobState {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match running.get(&job.job_id) {
            Some(live) if !is_final(job.state()) => live.state(),
            _ => job.state(),
        }
    }

    /// Cancel a job: a queued one at once, a running one at its next stage.
    pub fn cancel(&self, id: u64) -> Result<Job, Refusal> {
        let mut record = self.journal.get(id)?.ok_or(Refusal::NotFound(id))?;
        let kind = record.job.kind();
        if is_final(record.job.state()) {
            return Ok(record.job);
        }
        // A batch job that started before a restart may have committed: only
        // its runner can tell, so it is flagged, never ended from the queue.
        let maybe_committed = kind == JobKind::ExecuteBatch && record.job.attempts > 0;
        if !maybe_committed && self.scheduler.remove(kind, id) {
            self.hot.take(id);
            self.end(&mut record, Err(("CANCELLED", "cancelled before it started".into())))?;
            return Ok(record.job);
        }
        // Running (or just taken): the runner stops at its next stage
        // boundary. Flagged only while the job is live, so no flag outlives it.
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.contains_key(&id) {
            self.cancelled.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
        }
        drop(events);
        Ok(self.as_it_stands(record.job))
    }

    /// Record a job's end durably, then tell its watchers and close its events.
    fn end(&self, record: &mut JobRecord, outcome: Result<JobResult, (&str, String)>) -> Result<(), JournalError> {
        let result = self.conclude(record, outcome);
        if self.end_write_fails_here(record.job.job_id) {
            return Err(injected_end_failure());
        }
        self.journal.update(record, result.clone(), true)?;
        record.job.result = result;
        self.announce(&record.job);
        Ok(())
    }

    /// [`Core::end`] without waiting for the disk: the runner goes on to its
    /// next job, and the watchers hear the end once it is durable (so many
    /// jobs' ends share one fsync).
    fn end_soon(self: &Arc<Self>, mut record: JobRecord, outcome: Result<JobResult, (&str, String)>) {
        let result = self.conclude(&mut record, outcome);
        let core = self.clone();
        let then = move |stored: Result<(), JournalError>, mut record: JobRecord, result| match stored {
            Ok(()) => {
                record.job.result = result;
                core.announce(&record.job);
            }
            // Stopping: the job is queued in the job store and runs after a
            // restart; its watchers hear of the stop from the server.
            Err(JournalError::Stopped) => {}
            Err(e) => core.end_unrecorded(record, e),
        };
        if self.end_write_fails_here(record.job.job_id) {
            return then(Err(injected_end_failure()), record, result);
        }
        self.journal.update_then(record, result, then);
    }

    /// A job whose end could not be written: it has not ended (the job store
    /// still has it queued, or running), so it runs again, here, after a
    /// pause that grows with each failure (the disk may be full and freed),
    /// and after a restart if the server stops first. Its watchers go on
    /// watching. A batch job's rerun finds its batch committed.
    fn end_unrecorded(self: &Arc<Self>, mut record: JobRecord, e: JournalError) {
        let job = &mut record.job;
        let failures = {
            let mut unrecorded = self.unrecorded.lock().unwrap_or_else(|p| p.into_inner());
            let failures = unrecorded.entry(job.job_id).or_default();
            *failures += 1;
            *failures
        };
        let pause = END_RETRY_FIRST.saturating_mul(4u32.saturating_pow(failures - 1)).min(END_RETRY_MOST);
        tracing::error!(
            job = job.job_id,
            "recording the job's end (failure {failures}): {e}; it runs again in {pause:?}"
        );
        self.metrics.end_write_failures.inc();
        job.set_state(JobState::Queued);
        job.error = None;
        job.result = None;
        self.publish(job, 0.0);
        let core = self.clone();
        let (kind, id, priority) = (job.kind(), job.job_id, job.priority);
        std::thread::spawn(move || {
            std::thread::sleep(pause);
            // It started in time: no deadline ends it.
            core.scheduler.requeue(kind, id, priority, 0);
        });
    }

    /// Whether the fault injection of the tests (debug builds) fails this
    /// write of a job's end: the first N of each job with `end-write:N`.
    fn end_write_fails_here(&self, id: u64) -> bool {
        if !cfg!(debug_assertions) {
            return false;
        }
        let failures = self.unrecorded.lock().unwrap_or_else(|p| p.into_inner()).get(&id).copied().unwrap_or(0);
        u64::from(failures) < super::crash::injected("end-write")
    }

    /// [`Core::end`] for one of several jobs: if its end cannot be written,
    /// the others go on and it runs again ([`Core::end_unrecorded`]).
    fn end_logged(self: &Arc<Self>, record: &mut JobRecord, outcome: Result<JobResult, (&str, String)>) {
        match self.end(record, outcome) {
            Ok(()) | Err(JournalError::Stopped) => {}
            Err(e) => self.end_unrecorded(record.clone(), e),
        }
    }

    /// Set a job's end state and count it; returns its result.
    fn conclude(&self, record: &mut JobRecord, outcome: Result<JobResult, (&str, String)>) -> Option<JobResult> {
        let job = &mut record.job;
        job.finished_unix_ms = now_ms();
        match outcome {
            Ok(result) => {
                job.set_state(JobState::Succeeded);
                Some(result)
            }
            Err((code, message)) => {
                let state = if code == "CANCELLED" { JobState::Cancelled } else { JobState::Failed };
                job.set_state(state);
                job.error = Some(JobError { code: code.into(), message });
                None
            }
        }
    }

    /// Tell an ended job's watchers (its end is durable), count it, and
    /// forget its events, cancellation and end failures.
    fn announce(&self, job: &Job) {
        let outcome = match job.state() {
            JobState::Succeeded => "succeeded",
            JobState::Cancelled => "cancelled",
            _ => "failed",
        };
        self.metrics.finished(kind_name(job.kind()), outcome);
        self.publish(job, 1.0);
        self.events.lock().unwrap_or_else(|p| p.into_inner()).remove(&job.job_id);
        self.cancelled.lock().unwrap_or_else(|p| p.into_inner()).remove(&job.job_id);
        self.unrecorded.lock().unwrap_or_else(|p| p.into_inner()).remove(&job.job_id);
    }

    /// A runner: takes jobs of `kinds` until the scheduler closes. A panic
    /// outside a compute job's work (which fails that job alone, see
    /// `work::run`) leaves its job to run again after a restart. A batch
    /// job that panics may leave the store's state in memory half changed,
    /// so the server exits ([`EXIT_BATCH_PANIC`]) rather than commit more
    /// on it; a restart recovers the store from its log and runs the job
    /// again, at most once in effect, as after a crash.
    pub fn run_jobs(self: &Arc<Self>, kinds: &[JobKind]) {
        while let Some((kind, id)) = self.scheduler.take(kinds) {
            let _span = tracing::info_span!("job", id, kind = kind_name(kind)).entered();
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_one(id))) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("job {id}: {e}"),
                Err(panic) if kind == JobKind::ExecuteBatch => exit_after_batch_panic(id, &*panic),
                Err(panic) => {
                    let text = crate::error::panic_text(&*panic);
                    tracing::error!("job {id}: panicked outside its work ({text}); it runs again after a restart");
                }
            }
            self.scheduler.finished(kind);
        }
    }

    fn run_one(self: &Arc<Self>, id: u64) -> Result<(), JournalError> {
        let Some((mut record, ready)) = self.runnable(id)? else { return Ok(()) };
        let payload = match ready {
            Ready::Payload(payload) if !matches!(payload.kind, Some(PayloadKind::ExecuteBatch(_))) => payload,
            batch => return self.run_batches(record, batch),
        };
        // A deadline job's start is written (durably), so a restart that
        // finds it past its deadline knows it started in time and runs it.
        let has_deadline = record.job.deadline_unix_ms != 0;
        if let Err(e) = self.start(&mut record, has_deadline) {
            // It runs with its start unwritten, as jobs without a deadline do
            // (a restart past its deadline would then fail it as never started).
            tracing::warn!(job = id, "recording the start of a job with a deadline: {e}; it runs all the same");
            self.publish(&record.job, 0.0);
        }
        let outcome = self.execute(&mut record, |progress| work::run(&payload, &self.engines, progress));
        let outcome = outcome.map(|done| {
            self.count_work(&payload, &done);
            done.result
        });
        self.end_soon(record, outcome);
        Ok(())
    }

    /// The volume counters: bytes hashed, MSM points, proofs, GPU work redone on the CPU.
    fn count_work(&self, payload: &JobPayload, done: &work::Done) {
        let m = &self.metrics;
        m.bytes_hashed.inc_by(hashed_bytes(payload));
        if let Some(PayloadKind::Msm(job)) = &payload.kind {
            m.msm_points.inc_by(job.scalars.len() as u64);
        }
        m.proofs.inc_by(done.proofs);
        let on_gpu = self.engines.hashing.resolved() == crate::ResolvedBackend::Gpu;
        if on_gpu && done.result.backends.iter().any(|b| b.stage == "hash" && b.backend == "cpu") {
            m.gpu_fallbacks.inc();
        }
        let msm_fallbacks = self.engines.msm.gpu_fallbacks();
        let seen = self.msm_fallbacks_seen.swap(msm_fallbacks, std::sync::atomic::Ordering::Relaxed);
        m.gpu_fallbacks.inc_by(msm_fallbacks.saturating_sub(seen));
    }

    /// Mark a job running. A batch job's start is recorded durably (where
    /// a restart looks for its commit), and so is a compute job's with a
    /// deadline (it started in time); other compute jobs' are not recorded:
    /// after a crash they are queued in the job store either way, and their
    /// work has no effect to look for.
    fn start(&self, record: &mut JobRecord, recorded: bool) -> Result<(), JournalError> {
        // A job run again because its end could not be written started
        // once per failed end; those starts were not written either.
        let unrecorded = self.unrecorded.lock().unwrap_or_else(|p| p.into_inner()).get(&record.job.job_id).copied();
        if let Some(failed_ends) = unrecorded {
            record.job.attempts = record.job.attempts.max(failed_ends);
        }
        mark_running(&mut record.job);
        if recorded {
            self.journal.update(record, None, true)?;
        }
        self.publish(&record.job, 0.0);
        Ok(())
    }

    /// Batch jobs, on the store's runner: the job taken and the batch jobs
    /// queued behind it (up to [`PIPELINE`]) run as one pipeline, in
    /// submission order, each committed exactly once in effect.
    fn run_batches(self: &Arc<Self>, first: JobRecord, first_batch: Ready) -> Result<(), JournalError> {
        let mut group = vec![(first, first_batch)];
        // Taken here, so finished here (`run_jobs` finishes only the first):
        // counted as running, as `List` shows them, until the pipeline ends.
        let mut taken = TakenBatches { scheduler: &self.scheduler, running: 0 };
        while group.len() < PIPELINE {
            let Some(id) = self.scheduler.take_queued(JobKind::ExecuteBatch) else { break };
            taken.running += 1;
            match self.runnable(id) {
                Ok(Some(member)) => group.push(member),
                Ok(None) => taken.finish_one(),
                Err(e) => {
                    taken.finish_one();
                    tracing::error!("job {id}: {e}");
                }
            }
        }
        let mut runner = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        let mut ready = Vec::with_capacity(group.len());
        for (mut record, batch) in group {
            let request_id = record.job.request_id.clone();
            if record.job.attempts > 0 {
                // Interrupted before: did it commit?
                match runner.committed(&request_id, record.batch_head) {
                    Ok(Some(batch)) => {
                        let result = JobResult {
                            kind: Some(job_result::Kind::ExecuteBatch(batch::recovered_result(&batch))),
                            backends: Vec::new(),
                        };
                        self.end_logged(&mut record, Ok(result));
                        continue;
                    }
                    Ok(None) if record.job.attempts >= MAX_BATCH_STARTS => {
                        // Started that often and never finished: each start ended the server (a batch
                        // that panics it, say); running it again would do so once more, for every job.
                        let message = format!(
                            "started {} times without finishing or committing (the server stopped each time: a \
                             batch job that panics exits it); not run again",
                            record.job.attempts
                        );
                        self.end_logged(&mut record, Err(("INTERNAL", message)));
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.end_logged(&mut record, Err((e.code(), e.to_string())));
                        continue;
                    }
                }
            }
            let parsed = match batch.into_batch(&work::batch::origin(&record.job.request_id)) {
                Ok(parsed) => parsed,
                Err(e) => {
                    self.end_logged(&mut record, Err((e.code(), e.to_string())));
                    continue;
                }
            };
            // Durably, before anything commits: where a restart looks for its batch.
            record.batch_head = runner.store.head();
            if let Err(e) = self.start(&mut record, true) {
                // Not started: it stays queued in the job store and runs after a restart.
                tracing::error!(job = record.job.job_id, "recording the batch job's start: {e}");
                continue;
            }
            super::crash::point("batch-started");
            let stages = Stages::new(self, &record.job);
            let mut prepared = runner.prepare(parsed, &request_id, &self.engines, &stages);
            if let Ok(Some(prepared)) = prepared.as_mut() {
                let (core, id) = (Arc::downgrade(self), record.job.job_id);
                prepared.stop_when(move |stage| {
                    core.upgrade().is_some_and(|core| {
                        core.running_stage(id, stage);
                        core.is_cancelled(id)
                    })
                });
            }
            let go_on = matches!(prepared, Ok(Some(_))) && stages.stage("execute");
            // The execute stage's time (and hash, prove, commit) comes from the batch's own timings.
            record.job.stage = stages.finish_unclocked();
            match prepared {
                Ok(Some(prepared)) if go_on => ready.push((record, prepared)),
                Ok(_) => {
                    let cancelled = cancelled_at(&record.job.stage);
                    self.end_logged(&mut record, Err(cancelled));
                }
                Err(e) => self.end_logged(&mut record, Err((e.code(), e.to_string()))),
            }
        }
        if ready.is_empty() {
            return Ok(());
        }
        let (records, prepared): (Vec<JobRecord>, Vec<_>) = ready.into_iter().unzip();
        let outcomes = runner.execute(&prepared);
        super::crash::point("batch-committed");
        if runner.store.commit_uncertain() || super::crash::uncertain_commit() {
            // A failed commit may still be on disk: no job's end is written
            // (a restart reopens the store and finds each commit by its
            // request id, or runs the job again).
            exit_after_uncertain_commit();
        }
        drop(runner);
        // Committed (or refused) in the store: their ends are written together,
        // without holding the runner (a crash before then finds each commit
        // by its request id).
        for (record, outcome) in records.into_iter().zip(outcomes) {
            let outcome = match outcome {
                Ok(work::batch::Executed { result, proofs, timings, backends }) => {
                    self.metrics.proofs.inc_by(proofs);
                    self.metrics.batch_stages(&timings);
                    Ok(JobResult { kind: Some(job_result::Kind::ExecuteBatch(result)), backends })
                }
                // Cancelled while it ran: its stop check kept it from committing.
                Err(e) if self.is_cancelled(record.job.job_id) => {
                    Err(("CANCELLED", format!("cancelled while running: {e}")))
                }
                Err(e) => Err((e.code(), e.to_string())),
            };
            self.end_soon(record, outcome);
        }
        Ok(())
    }

    /// End the queued jobs whose deadline has passed, so that they neither
    /// hold places in their queues nor keep their watchers waiting for a
    /// runner to reach them; returns how many ended. A job that may have
    /// started before (a batch job's recorded start, a job whose end could
    /// not be written) is queued again without its deadline.
    pub fn end_expired(self: &Arc<Self>) -> usize {
        let mut ended = 0;
        for (kind, id) in self.scheduler.take_expired(now_ms()) {
            let record = match self.journal.get(id) {
                Ok(Some(record)) if !is_final(record.job.state()) => record,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(job = id, "ending a job past its deadline: {e}; it stays queued");
                    self.scheduler.requeue(kind, id, 0, 0);
                    continue;
                }
            };
            if self.started_before(&record.job) {
                self.scheduler.requeue(kind, id, record.job.priority, 0);
                continue;
            }
            self.hot.take(id);
            let passed = deadline_passed(record.job.deadline_unix_ms);
            // Written without waiting: the ends of many share one fsync (and
            // one that fails runs the job again, as any unwritten end does).
            self.end_soon(record, Err(passed));
            ended += 1;
        }
        ended
    }

    /// Whether a job started in time, so that its deadline no longer ends
    /// it: a start recorded (a batch job's, a deadline job's), or a run
    /// whose end could not be recorded.
    fn started_before(&self, job: &Job) -> bool {
        job.attempts > 0 || self.unrecorded.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&job.job_id)
    }

    /// A job taken from its queue, with its payload; None when there is
    /// nothing to run: it ended already, or ends here (its deadline passed
    /// before it ever started, or its payload is missing).
    fn runnable(&self, id: u64) -> Result<Option<(JobRecord, Ready)>, JournalError> {
        let hot = self.hot.take(id);
        let Some(mut record) = self.journal.get(id)? else { return Ok(None) };
        if is_final(record.job.state()) {
            return Ok(None);
        }
        let waited = now_ms().saturating_sub(record.job.submitted_unix_ms);
        self.metrics.stage_seconds("queue_wait", waited as f64 / 1e3);
        let deadline = record.job.deadline_unix_ms;
        if !self.started_before(&record.job) && deadline != 0 && deadline <= now_ms() {
            self.end(&mut record, Err(deadline_passed(deadline)))?;
            return Ok(None);
        }
        if let Some(ready) = hot {
            return Ok(Some((record, ready)));
        }
        match self.journal.payload(id)? {
            Some(payload) => Ok(Some((record, Ready::Payload(payload)))),
            None => {
                self.end(&mut record, Err(("INTERNAL", "the job's payload is missing from the job store".into())))?;
                Ok(None)
            }
        }
    }

    fn execute(
        &self,
        record: &mut JobRecord,
        work: impl FnOnce(&dyn Progress) -> Result<Option<work::Done>, WorkError>,
    ) -> Result<work::Done, (&'static str, String)> {
        let progress = Stages::new(self, &record.job);
        let outcome = work(&progress);
        record.job.stage = progress.finish();
        outcome_of(outcome, &record.job.stage)
    }

    fn is_cancelled(&self, id: u64) -> bool {
        self.cancelled.lock().unwrap_or_else(|p| p.into_inner()).contains(&id)
    }
}

/// A running job's stage reports: events, stage latencies, cancellation.
struct Stages<'a> {
    core: &'a Core,
    job: Mutex<Job>,
    clock: StageClock,
}

impl<'a> Stages<'a> {
    fn new(core: &'a Core, job: &Job) -> Stages<'a> {
        Stages { core, job: Mutex::new(job.clone()), clock: StageClock::new(core.metrics.clone()) }
    }

    /// Returns the stage reached; the last one's latency is measured elsewhere.
    fn finish_unclocked(self) -> String {
        self.clock.forget();
        self.job.into_inner().unwrap_or_else(|p| p.into_inner()).stage
    }

    /// The last stage's latency into the metrics; returns the stage reached.
    fn finish(self) -> String {
        self.clock.end();
        self.job.into_inner().unwrap_or_else(|p| p.into_inner()).stage
    }
}

impl Progress for Stages<'_> {
    fn stage(&self, name: &str) -> bool {
        self.clock.end();
        let mut job = self.job.lock().unwrap_or_else(|p| p.into_inner());
        if self.core.is_cancelled(job.job_id) {
            return false;
        }
        job.stage = name.to_string();
        if cfg!(debug_assertions) {
            super::crash::point(&format!("stage:{name}"));
            super::crash::panic_point(name);
        }
        self.clock.begin(name);
        self.core.publish(&job, 0.0);
        true
    }

    fn progress(&self, done: f64) -> bool {
        let job = self.job.lock().unwrap_or_else(|p| p.into_inner());
        if self.core.is_cancelled(job.job_id) {
            return false;
        }
        self.core.publish(&job, done.clamp(0.0, 1.0));
        true
    }
}

/// A job's state and counters as it starts (another attempt).
fn mark_running(job: &mut Job) {
    job.set_state(JobState::Running);
    job.started_unix_ms = now_ms();
    job.attempts += 1;
}

/// What a job's work came to, as its end: `Ok(None)` is a cancellation at `stage`.
fn outcome_of(
    outcome: Result<Option<work::Done>, WorkError>,
    stage: &str,
) -> Result<work::Done, (&'static str, String)> {
    match outcome {
        Ok(Some(done)) => Ok(done),
        Ok(None) => Err(cancelled_at(stage)),
        Err(e) => Err((e.code(), e.to_string())),
    }
}

/// The bytes a hash or Merkle job hashes (0 for other kinds).
fn hashed_bytes(payload: &JobPayload) -> u64 {
    match &payload.kind {
        Some(PayloadKind::Hash(job)) => {
            let one_by_one: u64 = job.messages.iter().map(|msg| msg.data.len() as u64).sum();
            one_by_one + job.packed.len() as u64
        }
        Some(PayloadKind::MerkleRoot(job)) => 32 * job.leaves.len() as u64,
        _ => 0,
    }
}

/// The error of an end write failed by the tests' fault injection.
fn injected_end_failure() -> JournalError {
    JournalError::Internal {
        path: "job-blobs".into(),
        reason: format!("injected fault ({})", super::crash::FAULT_VARIABLE),
    }
}

/// The end of a job cancelled at a stage boundary.
fn cancelled_at(stage: &str) -> (&'static str, String) {
    ("CANCELLED", format!("cancelled while running (at stage {stage})"))
}

/// A submit's kind for the metrics ("unknown" where it names none).
pub fn kind_label(request: &SubmitRequest) -> &'static str {
    request.payload.as_ref().and_then(|p| work::kind_of(p).ok()).map_or("unknown", kind_name)
}

/// The error of a job whose deadline passed before it started.
fn deadline_passed(deadline: u64) -> (&'static str, String) {
    ("DEADLINE_EXCEEDED", format!("the deadline {deadline} (Unix ms) passed before the job started"))
}

/// The deadline a recovered job keeps in its queue: none for a batch job
/// that started before (only its runner may end it, once it has looked for
/// its commit) or a job whose start was recorded (it started in time).
fn unstarted_deadline(job: &Job) -> u64 {
    if job.attempts > 0 {
        0
    } else {
        job.deadline_unix_ms
    }
}

/// A job's event: its state and stage, and the job itself once it ended.
pub fn event_of(job: &Job, progress: f64) -> JobEvent {
    let done = is_final(job.state());
    JobEvent {
        job_id: job.job_id,
        state: job.state,
        stage: job.stage.clone(),
        progress,
        job: done.then(|| job.clone()),
    }
}

pub fn check_request_id(id: &str) -> Result<(), Refusal> {
    if id.is_empty() || id.len() > MAX_REQUEST_ID {
        return Err(Refusal::Invalid(format!("request_id: {} bytes; it must be 1 to {MAX_REQUEST_ID}", id.len())));
    }
    if let Some((at, c)) = id.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
        return Err(Refusal::Invalid(format!(
            "request_id: {c:?} at byte {at}; only printable ASCII without spaces is allowed"
        )));
    }
    Ok(())
}
