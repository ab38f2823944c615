//! A server's face on the cluster (`cvm serve --queue postgres://…`): the
//! same checks as the embedded store's Submit, then the job accepted in
//! PostgreSQL, where any server's runners or any `cvm worker` claim it;
//! Get, Cancel, List, Await and the queue counts read the database, so
//! every server answers for every job.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::sync::mpsc;

use super::{ClusterError, Heard, NewJob, Queue, Submitted};
use crate::service::core::{check_request_id, event_of, kind_name, now_ms, Refusal};
use crate::service::journal::is_final;
use crate::service::proto::job_payload::Kind as PayloadKind;
use crate::service::proto::{
    groth16_job, Job, JobEvent, JobKind, KindLoad, SubmitRequest, SubmitResponse, WorkerStatus,
};
use crate::service::work::{self, Engines};

pub struct Front {
    pub queue: Queue,
    /// Jobs each kind's queue holds across the cluster (checked at accept:
    /// servers accepting at the same instant may pass it by a few).
    pub depth: usize,
    /// Attempts a job gets before a lost lease fails it.
    pub max_attempts: u32,
}

impl From<ClusterError> for Refusal {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Conflict { request_id, job } => Refusal::Conflict { request_id, job },
            ClusterError::NotFound(id) => Refusal::NotFound(id),
            ClusterError::Db { .. } => Refusal::Unavailable(e.to_string()),
            other => Refusal::Internal(other.to_string()),
        }
    }
}

/// The longest an Await stream waits before looking at the job again
/// (notifications wake it sooner).
const AWAIT_LOOK: Duration = Duration::from_secs(2);

/// A worker silent this long is gone (forgotten by Status).
const WORKER_SILENCE: Duration = Duration::from_secs(120);

impl Front {
    /// Check and accept a job durably (committed in the database when
    /// this returns); idempotent on the request id.
    pub async fn submit(&self, request: SubmitRequest, engines: &Arc<Engines>) -> Result<SubmitResponse, Refusal> {
        check_request_id(&request.request_id)?;
        let payload = request.payload.unwrap_or_default();
        let kind = work::kind_of(&payload)?;
        if let Some(PayloadKind::Groth16(job)) = &payload.kind {
            if matches!(job.key, Some(groth16_job::Key::ZkeyPath(_))) {
                return Err(Refusal::Invalid(
                    "groth16.zkey_path names a file on one machine, which a cluster's workers cannot read; \
                     name the key by its zkey_id"
                        .into(),
                ));
            }
        }
        let encoded = payload.encode_to_vec();
        // A full queue sheds the load before any checking work (a retry of
        // an accepted job is still answered with it).
        let full = |count: super::KindCount| count.queued as usize >= self.depth;
        // Places held by jobs past their deadline are freed first.
        if full(self.queue.count(kind).await?)
            && (self.queue.end_past_deadline(now_ms()).await? == 0 || full(self.queue.count(kind).await?))
        {
            return self
                .existing(&request.request_id, &encoded)
                .await?
                .ok_or(Refusal::QueueFull { kind: kind_name(kind), depth: self.depth });
        }
        // What the payload names may have changed since it was accepted (an
        // upload removed): a retry of an accepted job is still answered with it.
        let refused = |bad: Refusal| async {
            match bad {
                Refusal::Invalid(_) => Ok(self.existing(&request.request_id, &encoded).await?.ok_or(bad)?),
                other => Err(other),
            }
        };
        // An upload to another server of the cluster is fetched to be checked.
        if let Err(bad) = super::blobs::fetch_uploads(&self.queue, engines, &payload).await {
            return refused(bad.into()).await;
        }
        // Checking parses a batch, compiles its programs, decodes witnesses:
        // on the blocking pool, not on the threads every call shares.
        let (checking, request_id) = (engines.clone(), request.request_id.clone());
        let checked = tokio::task::spawn_blocking(move || {
            let parsed = work::check(&payload, &checking, &request_id)?;
            let dated = parsed.as_ref().map_or(Ok(()), |batch| batch.check_clock(checking.max_clock_skew));
            // A domain's batches keep their order; other kinds take the priority.
            let domain = parsed.map(|batch| batch.domain().as_str().to_string()).unwrap_or_default();
            Ok::<_, Refusal>((payload, domain, dated))
        });
        let checked = checked.await.map_err(|e| Refusal::Internal(format!("checking the payload failed: {e}")))?;
        let (payload, domain, dated) = match checked {
            Ok(checked) => checked,
            Err(bad) => return refused(bad).await,
        };
        if let Err(bad) = dated {
            // A retry of a job accepted while its date was near is answered with it.
            return self.existing(&request.request_id, &encoded).await?.ok_or(bad.into());
        }
        if request.deadline_unix_ms != 0 && request.deadline_unix_ms <= now_ms() {
            return self
                .existing(&request.request_id, &encoded)
                .await?
                .ok_or(Refusal::DeadlinePassed { deadline_unix_ms: request.deadline_unix_ms });
        }
        let key_set = work::KeySet::of(&payload).name();
        let priority = if kind == JobKind::ExecuteBatch { 0 } else { request.priority };
        let job = NewJob {
            request_id: &request.request_id,
            kind,
            priority,
            domain: &domain,
            deadline_unix_ms: request.deadline_unix_ms,
            max_attempts: self.max_attempts,
            key_set: &key_set,
            payload: &encoded,
        };
        let submitted = self.queue.submit(&job).await?;
        let position = self.queue.position(submitted.id()).await?;
        Ok(SubmitResponse {
            job_id: submitted.id(),
            queue_position: position,
            existing: matches!(submitted, Submitted::Existing(_)),
        })
    }

    /// The job `request_id` names when its payload is `encoded` (a
    /// conflict when it is another).
    async fn existing(&self, request_id: &str, encoded: &[u8]) -> Result<Option<SubmitResponse>, Refusal> {
        let Some(job) = self.queue.find_request(request_id).await? else { return Ok(None) };
        if job.1 != *blake3::hash(encoded).as_bytes() {
            return Err(Refusal::Conflict { request_id: request_id.into(), job: job.0 });
        }
        let position = self.queue.position(job.0).await?;
        Ok(Some(SubmitResponse { job_id: job.0, queue_position: position, existing: true }))
    }

    /// The cluster's queue counts per kind, and its live workers.
    pub async fn status(&self) -> Result<(Vec<KindLoad>, Vec<WorkerStatus>), ClusterError> {
        let mut kinds = Vec::new();
        for kind in crate::service::core::SERVED_KINDS {
            let count = self.queue.count(kind).await?;
            kinds.push(KindLoad {
                kind: kind as i32,
                queued: count.queued,
                running: count.running,
                queue_limit: self.depth as u64,
            });
        }
        let workers = self
            .queue
            .workers(WORKER_SILENCE)
            .await?
            .into_iter()
            .map(|w| WorkerStatus {
                id: w.id,
                host: w.host,
                kinds: w.kinds.into_iter().map(|k| k as i32).collect(),
                backend: w.backend,
                adapter: w.adapter,
                jobs_done: w.jobs_done,
                heartbeat_age_ms: w.heartbeat_age_ms,
                key_sets: w.key_sets,
            })
            .collect();
        Ok((kinds, workers))
    }

    pub async fn get(&self, id: u64) -> Result<Job, Refusal> {
        self.queue.get(id).await?.ok_or(Refusal::NotFound(id))
    }

    /// A job's events from now until it ends: each change of state or
    /// stage, then the job as it ended.
    pub fn events(
        &self,
        id: u64,
        first: Job,
        sender: mpsc::Sender<Result<JobEvent, Refusal>>,
        mut stopping: tokio::sync::watch::Receiver<bool>,
    ) {
        let queue = self.queue.clone();
        let mut waiter = queue.notices().subscribe();
        tokio::spawn(async move {
            let mut job = first;
            let mut told: Option<(i32, String)> = None;
            loop {
                let now = (job.state, job.stage.clone());
                if told.as_ref() != Some(&now) {
                    let progress = if is_final(job.state()) { 1.0 } else { 0.0 };
                    let event = event_of(&job, progress);
                    let last = event.job.is_some();
                    if sender.send(Ok(event)).await.is_err() || last {
                        return;
                    }
                    told = Some(now);
                }
                // Wake on this job's change (or a possible miss), or look again anyway.
                let wake = async {
                    while let Some(heard) = waiter.next(AWAIT_LOOK).await {
                        match heard {
                            Heard::Notice(n) if n.job != id => {}
                            _ => return,
                        }
                    }
                };
                tokio::select! {
                    _ = wake => {}
                    _ = sender.closed() => return,
                    // The server stops: the stream ends now, saying where the job is.
                    _ = crate::service::api::stopped(&mut stopping) => {
                        let message = format!(
                            "the server is stopping; job {id} is kept in the cluster's queue: await it on any server"
                        );
                        let _ = sender.send(Err(Refusal::Unavailable(message))).await;
                        return;
                    }
                }
                job = match queue.get(id).await {
                    Ok(Some(job)) => job,
                    Ok(None) => {
                        let _ = sender.send(Err(Refusal::NotFound(id))).await;
                        return;
                    }
                    // The database is away: the stream waits and looks again.
                    Err(e) => {
                        tracing::warn!(job = id, "{e}");
                        continue;
                    }
                };
            }
        });
    }
}
