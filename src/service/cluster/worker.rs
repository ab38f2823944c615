//! `cvm worker`: a stateless process that claims compute jobs from the
//! cluster's queue and runs them on its own engines. Each runner claims
//! one job at a time under a lease; a keeper renews the lease (and records
//! the job's stage) every third of it and hears the job's cancellation;
//! the result is written only while the lease is still this attempt's. A
//! worker that dies simply stops renewing: its jobs' leases expire and any
//! other worker or server puts them back ([`Queue::reap`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::sync::watch;
use tracing::Instrument;

use super::committer::Committer;
use super::outage::{outlasting, Backoff};
use super::{ClusterError, Heard, Notice, Queue, Renewal, WorkerRow};
use crate::service::core::{kind_name, now_ms, COMPUTE_KINDS};
use crate::service::metrics::{Metrics, StageClock};
use crate::service::proto::{JobError, JobKind, JobPayload, JobResult, JobState};
use crate::service::work::{self, backend_name, Engines, Progress, Stop};

/// How a worker runs (`cvm worker`'s flags).
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    pub queue_url: String,
    /// The kinds it takes (compute kinds only: a batch is its domain's
    /// committer's).
    pub kinds: Vec<JobKind>,
    /// Jobs it runs side by side.
    pub runners: usize,
    /// How long a claim holds without a renewal.
    pub lease: Duration,
    /// Its caches: proving keys, base sets, zkeys.
    pub data_dir: std::path::PathBuf,
    pub backend: crate::Backend,
    /// Its name in the cluster (default: host, process id and a random tag).
    pub id: Option<String>,
    /// A server's: it also commits batches ([`Worker::run_batches`]; the
    /// cluster lists it with execute-batch among its kinds).
    pub commits_batches: bool,
}

impl WorkerOptions {
    pub fn new(queue_url: impl Into<String>, data_dir: impl Into<std::path::PathBuf>) -> WorkerOptions {
        WorkerOptions {
            queue_url: queue_url.into(),
            kinds: COMPUTE_KINDS.to_vec(),
            runners: 1,
            lease: Duration::from_secs(30),
            data_dir: data_dir.into(),
            backend: crate::Backend::Auto,
            id: None,
            commits_batches: false,
        }
    }
}

/// The longest an idle runner waits before looking at the queue again
/// (notifications wake it sooner; this covers one missed).
const IDLE_LOOK: Duration = Duration::from_secs(5);

pub struct Worker {
    pub queue: Queue,
    pub engines: Arc<Engines>,
    pub id: String,
    kinds: Vec<JobKind>,
    lease: Duration,
    done: AtomicU64,
    /// Inputs fetched from the cluster's blobs, and its key sets.
    cache: super::blobs::Cache,
    /// Whether it commits batches too (a server's; reported as a kind).
    commits: AtomicBool,
    /// Its jobs' outcomes, stage times and lost leases (`cvm worker
    /// --metrics`; a server's are its own metrics).
    pub metrics: Arc<Metrics>,
}

impl Worker {
    /// Connect and open the engines; refuses kinds a worker cannot run.
    pub async fn start(options: &WorkerOptions) -> Result<Arc<Worker>, ClusterError> {
        if let Some(kind) = options.kinds.iter().find(|k| !COMPUTE_KINDS.contains(k)) {
            return Err(ClusterError::Config(format!(
                "a worker runs {}; {} jobs are run by the server that commits their domain",
                COMPUTE_KINDS.map(kind_name).join(", "),
                kind_name(*kind)
            )));
        }
        if options.lease < Duration::from_millis(300) {
            return Err(ClusterError::Config("the lease must be at least 300 ms".into()));
        }
        let queue = Queue::connect(&options.queue_url).await?;
        let (data_dir, backend) = (options.data_dir.clone(), options.backend);
        let engines = tokio::task::spawn_blocking(move || Engines::open(&data_dir, backend))
            .await
            .map_err(|e| ClusterError::Config(format!("opening the engines: {e}")))?
            .map_err(ClusterError::Config)?;
        Worker::with_engines(queue, Arc::new(engines), Arc::new(Metrics::new()), options).await
    }

    /// A worker on engines already open (a server's own runners).
    pub async fn with_engines(
        queue: Queue,
        engines: Arc<Engines>,
        metrics: Arc<Metrics>,
        options: &WorkerOptions,
    ) -> Result<Arc<Worker>, ClusterError> {
        let id = options.id.clone().unwrap_or_else(default_id);
        let worker = Arc::new(Worker {
            queue,
            engines,
            id,
            kinds: options.kinds.clone(),
            lease: options.lease,
            done: AtomicU64::new(0),
            cache: super::blobs::Cache::new(&options.data_dir),
            commits: AtomicBool::new(options.commits_batches),
            metrics,
        });
        worker.beat().await?;
        Ok(worker)
    }

    /// Offer the data dir's own key sets to the cluster ([`super::blobs::Cache::offer_local_sets`]).
    pub async fn offer_key_sets(&self) -> Result<(), work::WorkError> {
        self.cache.offer_local_sets(&self.queue, &self.engines).await
    }

    /// Run until `stop` turns true: `runners` claim and run jobs (none: a
    /// server that only commits batches), a keeper beats and puts back
    /// jobs whose lease expired. Running jobs finish before this returns.
    pub async fn run(self: &Arc<Self>, runners: usize, stop: watch::Receiver<bool>) {
        let mut tasks = Vec::new();
        for _ in 0..runners {
            let worker = self.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move { worker.runner(stop).await }));
        }
        let worker = self.clone();
        let mut beat_stop = stop.clone();
        let beats = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(worker.lease / 3) => {}
                    _ = beat_stop.wait_for(|s| *s) => return,
                }
                if let Err(e) = worker.beat().await {
                    tracing::warn!("{e}");
                }
                match worker.queue.reap().await {
                    Ok(reaped) => {
                        for r in reaped {
                            tracing::info!(job = r.id, "lease expired: job {}", state_name(r.state));
                        }
                    }
                    Err(e) => tracing::warn!("{e}"),
                }
            }
        });
        for task in tasks {
            let _ = task.await;
        }
        let _ = beats.await;
        if let Err(e) = self.queue.leave(&self.id).await {
            tracing::warn!("{e}");
        }
    }

    /// Jobs this worker ended.
    pub fn jobs_done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// The key sets resident here (compliance keys and zkeys), named as
    /// jobs name theirs.
    fn key_sets(&self) -> Vec<String> {
        let ops = self.engines.keys.resident().into_iter().map(work::KeySet::Ops);
        let zkeys = self.engines.zkeys.resident().into_iter().map(work::KeySet::Zkey);
        ops.chain(zkeys).map(|set| set.name()).collect()
    }

    async fn beat(&self) -> Result<(), ClusterError> {
        let key_sets = self.key_sets();
        let mut kinds = self.kinds.clone();
        if self.commits.load(Ordering::Relaxed) {
            kinds.insert(0, JobKind::ExecuteBatch);
        }
        let row = WorkerRow {
            id: self.id.clone(),
            host: host_name(),
            kinds,
            backend: backend_name(self.engines.hashing.resolved()).into(),
            adapter: self.engines.msm.device().unwrap_or_default(),
            jobs_done: self.jobs_done(),
            heartbeat_age_ms: 0,
            key_sets,
        };
        self.queue.heartbeat(&row).await
    }

    async fn runner(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let wakes = |n: &Notice| n.state == JobState::Queued && self.kinds.contains(&n.kind);
        let claim = || async { self.queue.claim(&self.id, &self.kinds, &self.key_sets(), self.lease).await };
        self.serve_claims(stop, claim, wakes, None).await
    }

    /// Commit the batch jobs of the domains bound to `committer`'s store,
    /// one at a time, until `stop` turns true (a server's batch runner).
    pub async fn run_batches(self: &Arc<Self>, committer: Arc<Committer>, stop: watch::Receiver<bool>) {
        // A batch job queued or ended: the next of its domain may be free.
        let wakes = |n: &Notice| n.kind == JobKind::ExecuteBatch && n.state != JobState::Running;
        let claim = || committer.claim(&self.queue, &self.id, self.lease);
        self.serve_claims(stop, claim, wakes, Some(committer.clone())).await
    }

    /// Claim and run jobs until `stop`: when there is none, wait for a
    /// notice that `wakes` the loop (or a possible miss, or a while); when
    /// the database fails, back off.
    async fn serve_claims<F: std::future::Future<Output = Result<Option<super::Claimed>, ClusterError>>>(
        self: &Arc<Self>,
        mut stop: watch::Receiver<bool>,
        claim: impl Fn() -> F,
        wakes: impl Fn(&Notice) -> bool,
        committer: Option<Arc<Committer>>,
    ) {
        let mut waiter = self.queue.notices().subscribe();
        let mut backoff = Backoff::new(Duration::from_secs(10));
        while !*stop.borrow() {
            match claim().await {
                Ok(Some(claimed)) => {
                    backoff.reset();
                    self.run_claimed(claimed, committer.clone()).await;
                }
                Ok(None) => {
                    let wake = async {
                        while let Some(heard) = waiter.next(IDLE_LOOK).await {
                            match heard {
                                Heard::Notice(n) if !wakes(&n) => {}
                                _ => return,
                            }
                        }
                    };
                    tokio::select! {
                        _ = wake => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
                Err(e) => {
                    let pause = backoff.next_pause();
                    tracing::warn!("{e}; again in {pause:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }
        }
    }

    async fn run_claimed(self: &Arc<Self>, claimed: super::Claimed, committer: Option<Arc<Committer>>) {
        let job = &claimed.job;
        let (id, attempt) = (job.job_id, job.attempts);
        let span = tracing::info_span!("job", id, kind = kind_name(job.kind()), attempt);
        self.run_job(claimed, committer).instrument(span).await
    }

    async fn run_job(self: &Arc<Self>, claimed: super::Claimed, committer: Option<Arc<Committer>>) {
        let job = &claimed.job;
        let (id, attempt, kind) = (job.job_id, job.attempts, job.kind());
        let waited = job.started_unix_ms.saturating_sub(job.submitted_unix_ms);
        self.metrics.stage_seconds("queue_wait", waited as f64 / 1e3);
        let deadline = job.deadline_unix_ms;
        let outcome = if attempt == 1 && deadline != 0 && deadline <= now_ms() {
            let message = format!("the deadline {deadline} (Unix ms) passed before the job started");
            Err(JobError { code: "DEADLINE_EXCEEDED".into(), message })
        } else {
            match JobPayload::decode(claimed.payload.as_slice()) {
                Ok(payload) => self.run_payload(&claimed, payload, committer).await,
                Err(e) => {
                    Err(JobError { code: "INTERNAL".into(), message: format!("its payload does not decode: {e}") })
                }
            }
        };
        let (outcome, stage) = match outcome {
            Ok((result, stage)) => (Ok(result), stage),
            Err(error) => (Err(error), String::new()),
        };
        self.finish(kind, id, attempt, &stage, outcome).await;
    }

    /// Run one job's work on the blocking pool while a keeper holds its lease.
    async fn run_payload(
        self: &Arc<Self>,
        claimed: &super::Claimed,
        payload: JobPayload,
        committer: Option<Arc<Committer>>,
    ) -> Result<(JobResult, String), JobError> {
        let (id, attempt) = (claimed.job.job_id, claimed.job.attempts);
        let run = Arc::new(Running {
            stage: Mutex::default(),
            cancelled: AtomicBool::new(claimed.cancel_requested),
            lost: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            clock: StageClock::new(self.metrics.clone()),
        });
        let keeper = {
            let worker = self.clone();
            let run = run.clone();
            tokio::spawn(async move { worker.keep(id, attempt, run).await })
        };
        // What the job names from elsewhere (uploads, the cluster's keys), under
        // its lease. A database that is away is waited for, not taken for the
        // job's failure: the wait ends when it is back, or when the lease is
        // lost (another attempt then owns the job) or the job cancelled.
        let prepared = outlasting(
            "fetching what the job names",
            Duration::from_secs(5),
            || self.cache.prepare(&self.queue, &self.engines, &payload),
            |e| matches!(e, work::WorkError::Unavailable(_)) && run.stopping().is_none(),
        )
        .await;
        if let Err(e) = prepared {
            run.finished.store(true, Ordering::Relaxed);
            keeper.abort();
            return Err(match run.stopping() {
                Some(Stop::LeaseLost) => JobError { code: "ABORTED".into(), message: "the lease was lost".into() },
                Some(Stop::Cancelled) => JobError {
                    code: "CANCELLED".into(),
                    message: "cancelled while waiting for the cluster's database".into(),
                },
                None => JobError { code: e.code().into(), message: e.to_string() },
            });
        }
        let engines = self.engines.clone();
        let progress = run.clone();
        let work = match committer {
            None => tokio::task::spawn_blocking(move || work::run(&payload, &engines, &*progress)),
            Some(committer) => {
                let (queue, worker, claimed, lease) =
                    (self.queue.clone(), self.id.clone(), claimed.clone(), self.lease);
                tokio::task::spawn_blocking(move || {
                    let id = claimed.job.job_id;
                    let execute = || committer.execute(&queue, &claimed, &worker, &payload, progress, lease);
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(execute))
                        .unwrap_or_else(|panic| crate::service::core::exit_after_batch_panic(id, &*panic))
                })
            }
        };
        let outcome =
            work.await.unwrap_or_else(|e| Err(work::WorkError::Internal(format!("the job's task failed: {e}"))));
        run.finished.store(true, Ordering::Relaxed);
        run.clock.end();
        keeper.abort();
        if let Ok(Some(done)) = &outcome {
            self.metrics.proofs.inc_by(done.proofs);
        }
        let stage = run.stage.lock().unwrap_or_else(|p| p.into_inner()).0.clone();
        if run.lost.load(Ordering::Relaxed) {
            return Err(JobError { code: "ABORTED".into(), message: "the lease was lost".into() });
        }
        match outcome {
            Ok(Some(done)) => Ok((done.result, stage)),
            Ok(None) => Err(JobError {
                code: "CANCELLED".into(),
                message: format!("cancelled while running (at stage {stage})"),
            }),
            Err(e) => Err(JobError { code: e.code().into(), message: e.to_string() }),
        }
    }

    /// Renew a running job's lease every third of it, recording its stage;
    /// hear its cancellation at once from the notices.
    async fn keep(&self, id: u64, attempt: u32, run: Arc<Running>) {
        let mut waiter = self.queue.notices().subscribe();
        loop {
            let renew_at = tokio::time::Instant::now() + self.lease / 3;
            while let Ok(Some(heard)) = tokio::time::timeout_at(renew_at, waiter.next(self.lease)).await {
                if let Heard::Notice(n) = heard {
                    if n.job == id && n.cancel_requested {
                        run.cancelled.store(true, Ordering::Relaxed);
                    }
                }
            }
            if run.finished.load(Ordering::Relaxed) {
                return;
            }
            let stage = {
                let mut stage = run.stage.lock().unwrap_or_else(|p| p.into_inner());
                let changed = std::mem::take(&mut stage.1);
                changed.then(|| stage.0.clone())
            };
            match self.queue.renew(id, &self.id, attempt, self.lease, stage.as_deref()).await {
                Ok(Renewal::Held { cancel_requested }) => {
                    if cancel_requested {
                        run.cancelled.store(true, Ordering::Relaxed);
                    }
                }
                Ok(Renewal::Lost) => {
                    tracing::warn!(job = id, "the job's lease was lost: its result will be discarded");
                    run.lost.store(true, Ordering::Relaxed);
                    return;
                }
                // The lease may still hold: the next renewal tries again.
                Err(e) => tracing::warn!(job = id, "{e}"),
            }
        }
    }

    /// Write a job's end, retrying while the database is away and the
    /// lease may still be ours; once it has surely expired, another
    /// attempt owns the job and this result is dropped.
    async fn finish(&self, kind: JobKind, id: u64, attempt: u32, stage: &str, outcome: Result<JobResult, JobError>) {
        if matches!(&outcome, Err(e) if e.code == "ABORTED" && e.message == "the lease was lost") {
            self.metrics.leases_lost.inc();
            return;
        }
        let outcome_name = match &outcome {
            Ok(_) => "succeeded",
            Err(e) if e.code == "CANCELLED" => "cancelled",
            Err(_) => "failed",
        };
        let give_up = tokio::time::Instant::now() + self.lease;
        let written = outlasting(
            "recording the job's end",
            Duration::from_secs(2),
            || self.queue.complete(id, &self.id, attempt, stage, &outcome),
            |_| tokio::time::Instant::now() < give_up,
        )
        .await;
        match written {
            Ok(true) => {
                self.done.fetch_add(1, Ordering::Relaxed);
                self.metrics.finished(kind_name(kind), outcome_name);
            }
            Ok(false) => {
                tracing::warn!(job = id, "the lease expired before the end was written: the job runs again");
                self.metrics.leases_lost.inc();
            }
            Err(e) => {
                tracing::error!(job = id, "{e}; giving up: the lease has expired and the job runs again");
                self.metrics.leases_lost.inc();
            }
        }
    }
}

/// A running job's shared state: its stage (and whether the keeper has
/// recorded it), its cancellation, whether its lease was lost, and where
/// its stages' time goes.
struct Running {
    stage: Mutex<(String, bool)>,
    cancelled: AtomicBool,
    lost: AtomicBool,
    finished: AtomicBool,
    clock: StageClock,
}

impl Progress for Running {
    fn stage(&self, name: &str) -> bool {
        if self.stopping().is_some() {
            return false;
        }
        self.clock.begin(name);
        *self.stage.lock().unwrap_or_else(|p| p.into_inner()) = (name.to_string(), true);
        true
    }

    /// Between a long stage's steps (a ProveOps job's proofs): a cancel or
    /// a lost lease stops the job here, as at a stage's start. (The
    /// cluster's events carry stages, not progress.)
    fn progress(&self, _done: f64) -> bool {
        self.stopping().is_none()
    }

    fn stopping(&self) -> Option<Stop> {
        if self.lost.load(Ordering::Relaxed) {
            Some(Stop::LeaseLost)
        } else if self.cancelled.load(Ordering::Relaxed) {
            Some(Stop::Cancelled)
        } else {
            None
        }
    }
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued again",
        JobState::Failed => "failed (no attempts left)",
        _ => "ended",
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

fn default_id() -> String {
    let tag: u32 = rand::random();
    format!("{}-{}-{tag:08x}", host_name(), std::process::id())
}
