//! A server's batch jobs in a cluster: the committer of the domains bound
//! to its register store. A domain is bound, the first time one of its
//! batches is claimed, to the store of the server that claims it; only a
//! server on that store (the same data dir: a standby on shared storage
//! after the first one died) ever commits it, so a domain's state never
//! forks between stores. The server holding a domain's advisory lock (on
//! a connection of its own: the lock ends with the connection, so a dead
//! server's domains are free at once) runs its batches one at a time, in
//! submission order; their proofs go to the cluster's workers
//! ([`super::prover`]). Exactly once in effect: a batch's record carries
//! its request id, and a retry looks for it in the batches committed since
//! the job's earlier attempt started.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use tokio_postgres::Client;

use super::outage::outlasting;
use super::prover::{ClusterProver, Lease};
use super::{Claimed, ClusterError, Queue};
use crate::service::core::Core;
use crate::service::proto::job_payload::Kind as PayloadKind;
use crate::service::proto::{job_result, JobPayload, JobResult, StageBackend};
use crate::service::work::batch::{self, recovered_result};
use crate::service::work::{Done, Progress, WorkError};

pub struct Committer {
    core: Arc<Core>,
    url: String,
    /// This server's register store, as domains are bound to it.
    pub store_id: String,
    runtime: tokio::runtime::Handle,
    max_attempts: u32,
    locks: tokio::sync::Mutex<Locks>,
}

/// The connection holding this server's domain locks, and those it holds.
#[derive(Default)]
struct Locks {
    client: Option<Client>,
    held: Vec<String>,
    /// Domains bound to another store (told once).
    elsewhere: HashSet<String>,
}

/// The store id's file in the data dir.
const STORE_ID_FILE: &str = "store-id";

impl Committer {
    pub fn new(core: Arc<Core>, url: &str, data_dir: &Path, max_attempts: u32) -> Result<Committer, ClusterError> {
        Ok(Committer {
            core,
            url: url.to_string(),
            store_id: store_id(data_dir)?,
            runtime: tokio::runtime::Handle::current(),
            max_attempts,
            locks: tokio::sync::Mutex::new(Locks::default()),
        })
    }

    /// Claim the next batch job of a domain this server commits, taking
    /// the locks of domains bound to its store (or to none yet) first.
    pub async fn claim(
        &self,
        queue: &Queue,
        worker: &str,
        lease: std::time::Duration,
    ) -> Result<Option<Claimed>, ClusterError> {
        let mut locks = self.locks.lock().await;
        if locks.client.as_ref().is_none_or(Client::is_closed) {
            // A new connection: the old one's locks ended with it.
            locks.held.clear();
            locks.client = Some(super::queue::open(&self.url).await?);
        }
        for domain in queue.batch_domains(&locks.held).await? {
            if locks.elsewhere.contains(&domain) {
                continue;
            }
            let bound = queue.bind_domain(&domain, &self.store_id).await?;
            if bound != self.store_id {
                tracing::info!(
                    "domain {domain:?} is committed by another store ({bound}): its batches are not run here"
                );
                locks.elsewhere.insert(domain);
                continue;
            }
            let client = locks.client.as_ref().expect("opened above");
            let row = client
                .query_one("SELECT pg_try_advisory_lock(hashtextextended('cvm domain ' || $1, 0))", &[&domain])
                .await
                .map_err(|e| ClusterError::Db { doing: format!("locking domain {domain:?}"), source: e })?;
            if row.get::<_, bool>(0) {
                tracing::info!("committing domain {domain:?} here");
                locks.held.push(domain);
            }
        }
        queue.claim_batch(worker, &locks.held, lease).await
    }

    /// Run a claimed batch job (on a blocking thread): found committed by
    /// an earlier attempt, or executed, proven by the cluster and
    /// committed here. None when it was cancelled at a stage boundary.
    pub fn execute(
        &self,
        queue: &Queue,
        claimed: &Claimed,
        worker: &str,
        payload: &JobPayload,
        progress: Arc<dyn Progress + Send + Sync>,
        lease: std::time::Duration,
    ) -> Result<Option<Done>, WorkError> {
        let job = &claimed.job;
        let Some(PayloadKind::ExecuteBatch(batch_job)) = &payload.kind else {
            return Err(WorkError::Internal("a batch job without a batch".into()));
        };
        let parsed = batch::parse(batch_job, &batch::origin(&job.request_id)).map_err(WorkError::Bad)?;
        let domain = parsed.domain().as_str().to_string();
        let engines = &self.core.engines;
        let mut runner = self.core.batches.lock().unwrap_or_else(|p| p.into_inner());
        if job.attempts > 1 {
            // The first batch an earlier attempt could have committed; 0:
            // none got as far (the head is recorded before anything commits),
            // so there is nothing to look for in the store's history.
            let committed = match claimed.batch_head {
                0 => None,
                first => runner.committed(&job.request_id, first - 1)?,
            };
            if let Some(record) = committed {
                let result = JobResult {
                    kind: Some(job_result::Kind::ExecuteBatch(recovered_result(&record))),
                    backends: Vec::new(),
                };
                return Ok(Some(Done { result, proofs: 0 }));
            }
            // Not committed, and its attempts are spent (the queue's reaper
            // never ends a batch job: only here is it known not committed).
            if job.attempts > claimed.max_attempts {
                return Err(WorkError::Aborted(format!(
                    "gave up after {} attempts, none of which committed it (their committers stopped or lost \
                     the database); it may be submitted again",
                    job.attempts - 1
                )));
            }
        }
        let first = runner.store.head() + 1;
        // A database that is away is waited for while the lease may hold.
        let recorded = self.runtime.block_on(outlasting(
            "recording the batch's first height",
            std::time::Duration::from_secs(5),
            || queue.set_batch_head(job.job_id, worker, job.attempts, first),
            |e| e.is_unavailable() && progress.stopping().is_none(),
        ));
        match recorded {
            Ok(true) => {}
            Ok(false) => return Err(WorkError::Internal("the batch job's lease was lost before it ran".into())),
            // Cancelled (or its lease lost) while the database was away.
            Err(_) if progress.stopping().is_some() => return Ok(None),
            Err(e) => return Err(WorkError::Internal(e.to_string())),
        }
        let Some(mut prepared) = runner.prepare(parsed, &job.request_id, engines, &*progress)? else {
            return Ok(None);
        };
        if !progress.stage("execute") {
            return Ok(None);
        }
        // Cancelled (or its lease lost) once it runs: stopped before its
        // proofs or its commit, nothing committed.
        let watching = progress.clone();
        prepared.stop_when(move |_stage| watching.stopping().is_some());
        let (queue, runtime, request_id) = (queue.clone(), self.runtime.clone(), job.request_id.clone());
        let (max_attempts, waiting) = (self.max_attempts, progress.clone());
        let lease = Lease { job: job.job_id, worker: worker.to_string(), attempt: job.attempts, length: lease };
        prepared.prove_with(|system| {
            Arc::new(ClusterProver {
                system,
                queue,
                runtime,
                request_id,
                domain,
                max_attempts,
                progress: waiting,
                lease,
            })
        });
        let outcome = runner.execute(std::slice::from_ref(&prepared)).pop().expect("one outcome per batch");
        crate::service::crash::point("batch-committed");
        if runner.store.commit_uncertain() {
            // No end is written: the next committer finds it committed, or runs it.
            crate::service::core::exit_after_uncertain_commit();
        }
        // Asked to stop while it ran or its proofs were out: nothing committed.
        if outcome.is_err() && progress.stopping().is_some() {
            return Ok(None);
        }
        let batch::Executed { result, proofs, mut backends, .. } = outcome?;
        // The proofs (and their quotients) were made by the cluster's workers.
        backends.retain(|b| b.stage != "prove" && b.stage != "quotient");
        if proofs > 0 {
            backends.push(StageBackend { stage: "prove".into(), backend: "cluster".into() });
        }
        let result = JobResult { kind: Some(job_result::Kind::ExecuteBatch(result)), backends };
        Ok(Some(Done { result, proofs }))
    }
}

/// This data dir's register store id, made once (random) and kept.
fn store_id(data_dir: &Path) -> Result<String, ClusterError> {
    let path = data_dir.join(STORE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ClusterError::Config(format!("reading {}: {e}", path.display()))),
    }
    let id = format!("store-{:032x}", rand::random::<u128>());
    crate::fsutil::write_atomically(&path, id.as_bytes(), 0o644)
        .map_err(|e| ClusterError::Config(format!("writing {}: {e}", path.display())))?;
    Ok(id)
}
