//! The job queue in PostgreSQL: accepting jobs (idempotent on the caller's
//! request id), claiming them with `FOR UPDATE SKIP LOCKED` under a lease,
//! renewing and completing them only while the lease is the claimer's,
//! putting back jobs whose lease expired, cancelling, and the reads that
//! `Get`, `List` and `Status` need. Every write is one statement, so each is
//! one transaction; the `cvm_jobs` trigger tells every change (see
//! [`super::schema`]).

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::sync::RwLock;
use tokio_postgres::{Client, Row};

use super::{ClusterError, Notices};
use crate::service::core::now_ms;
use crate::service::proto::{Job, JobError, JobKind, JobResult, JobState};

/// A connection to the cluster's database, re-opened on the next call
/// after it drops (the loops that call again back off); cheap to clone.
#[derive(Clone)]
pub struct Queue {
    url: Arc<str>,
    client: Arc<RwLock<Arc<Client>>>,
    notices: Notices,
}

/// A job accepted by [`Queue::submit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submitted {
    New(u64),
    /// The request id named a job already accepted with the same payload.
    Existing(u64),
}

impl Submitted {
    pub fn id(&self) -> u64 {
        match self {
            Submitted::New(id) | Submitted::Existing(id) => *id,
        }
    }
}

/// A job to accept.
pub struct NewJob<'a> {
    pub request_id: &'a str,
    pub kind: JobKind,
    pub priority: i32,
    pub deadline_unix_ms: u64,
    pub max_attempts: u32,
    pub key_set: &'a str,
    /// A batch job's domain ("" for other kinds).
    pub domain: &'a str,
    pub payload: &'a [u8],
}

/// A job claimed by a worker: its record and payload, and the attempt its
/// lease is for.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub job: Job,
    pub payload: Vec<u8>,
    /// The first batch an earlier attempt of a batch job could have
    /// committed (its store's head + 1 as it started; 0: no attempt did).
    pub batch_head: u64,
    /// Its cancellation was asked for while it was queued (a batch job
    /// put back after an attempt): it stops at its first stage boundary.
    pub cancel_requested: bool,
    /// The most attempts the job may have (set by the server that accepted it).
    pub max_attempts: u32,
}

/// How a lease renewal went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    Held {
        cancel_requested: bool,
    },
    /// The lease expired and the job went back to the queue (or ended):
    /// this attempt's result would be discarded.
    Lost,
}

/// Queued and running jobs of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindCount {
    pub queued: u64,
    pub running: u64,
}

/// A worker as the cluster sees it.
#[derive(Clone, Debug)]
pub struct WorkerRow {
    pub id: String,
    pub host: String,
    pub kinds: Vec<JobKind>,
    pub backend: String,
    pub adapter: String,
    pub jobs_done: u64,
    /// Milliseconds since its last heartbeat, by the database's clock.
    pub heartbeat_age_ms: u64,
    pub key_sets: Vec<String>,
}

/// A job put back or failed because its lease expired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reaped {
    pub id: u64,
    pub state: JobState,
}

const JOB_COLUMNS: &str = "id, request_id, kind, state, priority, deadline_ms, submitted_ms, started_ms, \
                           finished_ms, stage, attempts, result, error_code, error_message, lease_owner, \
                           (extract(epoch FROM lease_expires) * 1000)::bigint AS lease_expires_ms, domain";

impl Queue {
    /// Connect (creating or migrating the schema) and start listening for
    /// the cluster's notifications.
    pub async fn connect(url: &str) -> Result<Queue, ClusterError> {
        let notices = Notices::new();
        let mut client = open(url).await?;
        super::schema::migrate(&mut client).await?;
        let queue =
            Queue { url: url.into(), client: Arc::new(RwLock::new(Arc::new(client))), notices: notices.clone() };
        super::notices::listen(url.to_string(), notices).await?;
        Ok(queue)
    }

    /// The cluster's notifications (job changes), for waiting on.
    pub fn notices(&self) -> &Notices {
        &self.notices
    }

    /// The live client, reconnected when the last one closed. One try:
    /// while the database is away each call fails at once (`UNAVAILABLE`
    /// to a gRPC caller), and the loops that call again back off.
    async fn client(&self) -> Result<Arc<Client>, ClusterError> {
        let current = self.client.read().await.clone();
        if !current.is_closed() {
            return Ok(current);
        }
        let mut slot = self.client.write().await;
        if slot.is_closed() {
            *slot = Arc::new(open(&self.url).await?);
            tracing::info!("reconnected to the cluster's database");
        }
        Ok(slot.clone())
    }

    /// Accept a job durably (the insert is committed when this returns).
    /// The same request id with the same payload is the same job; with
    /// another payload it is [`ClusterError::Conflict`].
    pub async fn submit(&self, job: &NewJob<'_>) -> Result<Submitted, ClusterError> {
        let digest = blake3::hash(job.payload).as_bytes().to_vec();
        let client = self.client().await?;
        let inserted = client
            .query_opt(
                "INSERT INTO cvm_jobs (request_id, kind, state, priority, deadline_ms, submitted_ms, max_attempts, \
                                       key_set, payload_digest, payload, domain)
                 VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (request_id) DO NOTHING RETURNING id",
                &[
                    &job.request_id,
                    &(job.kind as i16),
                    &job.priority,
                    &(job.deadline_unix_ms as i64),
                    &(now_ms() as i64),
                    &(job.max_attempts.max(1) as i32),
                    &job.key_set,
                    &digest,
                    &job.payload,
                    &job.domain,
                ],
            )
            .await
            .map_err(|e| ClusterError::db("accepting the job", e))?;
        if let Some(row) = inserted {
            return Ok(Submitted::New(row.get::<_, i64>(0) as u64));
        }
        let (id, existing) = self.find_request(job.request_id).await?.ok_or_else(|| {
            ClusterError::Schema(format!("request id {:?} was taken, then gone (expired meanwhile?)", job.request_id))
        })?;
        if existing[..] != digest[..] {
            return Err(ClusterError::Conflict { request_id: job.request_id.to_string(), job: id });
        }
        Ok(Submitted::Existing(id))
    }

    /// Claim the next queued job of `kinds` for `worker`, under a lease of
    /// `lease`: the highest priority first, among equals one whose key set
    /// the worker holds, then the oldest. Jobs other workers are claiming
    /// are skipped, not waited for.
    pub async fn claim(
        &self,
        worker: &str,
        kinds: &[JobKind],
        held_key_sets: &[String],
        lease: Duration,
    ) -> Result<Option<Claimed>, ClusterError> {
        let kinds: Vec<i16> = kinds.iter().map(|k| *k as i16).collect();
        let select = "SELECT id FROM cvm_jobs WHERE state = 1 AND kind = ANY($2)
                      ORDER BY priority DESC, (key_set <> '' AND key_set = ANY($5)) DESC, id";
        self.claim_first(worker, lease, select, &kinds, Some(held_key_sets)).await
    }

    /// Claim the next batch job of one of `domains` (whose locks the
    /// caller holds): only a domain's oldest unfinished batch job, so its
    /// batches run one at a time in submission order. A running one whose
    /// committer died blocks its domain until its lease expires.
    pub async fn claim_batch(
        &self,
        worker: &str,
        domains: &[String],
        lease: Duration,
    ) -> Result<Option<Claimed>, ClusterError> {
        if domains.is_empty() {
            return Ok(None);
        }
        let select = "SELECT j.id FROM cvm_jobs j
                      WHERE j.kind = 1 AND j.state = 1 AND j.domain = ANY($2)
                        AND NOT EXISTS (SELECT 1 FROM cvm_jobs e WHERE e.kind = 1 AND e.domain = j.domain
                                            AND e.state IN (1, 2) AND e.id < j.id)
                      ORDER BY j.id";
        self.claim_first(worker, lease, select, &domains, None).await
    }

    /// Claim the first job `select` picks (its `$2` is `among`, its `$5`
    /// `held`): running under `worker`'s lease, its attempt counted.
    async fn claim_first<T: tokio_postgres::types::ToSql + Sync>(
        &self,
        worker: &str,
        lease: Duration,
        select: &str,
        among: &T,
        held: Option<&[String]>,
    ) -> Result<Option<Claimed>, ClusterError> {
        let sql = format!(
            "UPDATE cvm_jobs SET state = 2, lease_owner = $1,
                 lease_expires = now() + $3::bigint * interval '1 millisecond',
                 attempts = attempts + 1, started_ms = $4, stage = ''
             WHERE id = ({select} LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING {JOB_COLUMNS}, payload, batch_head, cancel_requested, max_attempts"
        );
        let (lease, started) = (lease.as_millis() as i64, now_ms() as i64);
        let client = self.client().await?;
        let row = match held {
            Some(held) => client.query_opt(&sql, &[&worker, among, &lease, &started, &held]).await,
            None => client.query_opt(&sql, &[&worker, among, &lease, &started]).await,
        }
        .map_err(|e| ClusterError::db("claiming a job", e))?;
        row.map(|row| claimed_of(&row)).transpose()
    }

    /// The domains with queued batch jobs, but for `held`.
    pub async fn batch_domains(&self, held: &[String]) -> Result<Vec<String>, ClusterError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT DISTINCT domain FROM cvm_jobs WHERE kind = 1 AND state = 1 AND domain <> ALL($1)", &[&held])
            .await
            .map_err(|e| ClusterError::db("finding domains with batch jobs", e))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Bind `domain` to the register store `store_id` unless it is bound
    /// already; returns the store it is bound to.
    pub async fn bind_domain(&self, domain: &str, store_id: &str) -> Result<String, ClusterError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "WITH bound AS (INSERT INTO cvm_domains (domain, store_id) VALUES ($1, $2)
                                ON CONFLICT (domain) DO NOTHING RETURNING store_id)
                 SELECT store_id FROM bound UNION ALL SELECT store_id FROM cvm_domains WHERE domain = $1 LIMIT 1",
                &[&domain, &store_id],
            )
            .await
            .map_err(|e| ClusterError::db("binding a domain to its store", e))?;
        Ok(row.get(0))
    }

    /// Record the first batch number a claimed batch job's attempt could
    /// commit, as it starts (where a later attempt looks for its commit;
    /// 0, the default, means no attempt got this far); false when the lease
    /// is lost.
    pub async fn set_batch_head(&self, id: u64, worker: &str, attempt: u32, first: u64) -> Result<bool, ClusterError> {
        let client = self.client().await?;
        let written = client
            .execute(
                "UPDATE cvm_jobs SET batch_head = $4 WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 2",
                &[&(id as i64), &worker, &(attempt as i32), &(first as i64)],
            )
            .await
            .map_err(|e| ClusterError::db("recording the batch job's start", e))?;
        Ok(written == 1)
    }

    /// Extend a claimed job's lease (and record its stage, when it
    /// changed); tells whether its cancellation was asked for.
    pub async fn renew(
        &self,
        id: u64,
        worker: &str,
        attempt: u32,
        lease: Duration,
        stage: Option<&str>,
    ) -> Result<Renewal, ClusterError> {
        let client = self.client().await?;
        let (id, attempt, lease) = (id as i64, attempt as i32, lease.as_millis() as i64);
        // The stage is set only when it changed: setting it tells the cluster.
        let row =
            match stage {
                Some(stage) => client
                    .query_opt(
                        "UPDATE cvm_jobs SET lease_expires = now() + $4::bigint * interval '1 millisecond', stage = $5
                         WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 2
                         RETURNING cancel_requested",
                        &[&id, &worker, &attempt, &lease, &stage],
                    )
                    .await,
                None => {
                    client
                        .query_opt(
                            "UPDATE cvm_jobs SET lease_expires = now() + $4::bigint * interval '1 millisecond'
                         WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 2
                         RETURNING cancel_requested",
                            &[&id, &worker, &attempt, &lease],
                        )
                        .await
                }
            }
            .map_err(|e| ClusterError::db("renewing a job's lease", e))?;
        Ok(match row {
            Some(row) => Renewal::Held { cancel_requested: row.get(0) },
            None => Renewal::Lost,
        })
    }

    /// End a claimed job, with its result or its error, in one
    /// transaction; false (and nothing written) when the lease is no
    /// longer this attempt's: the job went back to the queue and its next
    /// attempt's end counts.
    pub async fn complete(
        &self,
        id: u64,
        worker: &str,
        attempt: u32,
        stage: &str,
        outcome: &Result<JobResult, JobError>,
    ) -> Result<bool, ClusterError> {
        let (state, result, code, message) = match outcome {
            Ok(result) => (JobState::Succeeded, Some(result.encode_to_vec()), None, None),
            Err(error) => {
                let state = if error.code == "CANCELLED" { JobState::Cancelled } else { JobState::Failed };
                (state, None, Some(error.code.as_str()), Some(error.message.as_str()))
            }
        };
        let client = self.client().await?;
        // The worker's count of jobs done rises in the same statement.
        let written = client
            .query_one(
                "WITH done AS (
                     UPDATE cvm_jobs SET state = $4, result = $5, error_code = $6, error_message = $7,
                         finished_ms = $8, stage = $9, lease_owner = NULL, lease_expires = NULL
                     WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 2 RETURNING id),
                 counted AS (
                     UPDATE cvm_workers SET jobs_done = jobs_done + (SELECT count(*) FROM done) WHERE id = $2)
                 SELECT count(*) FROM done",
                &[
                    &(id as i64),
                    &worker,
                    &(attempt as i32),
                    &(state as i16),
                    &result,
                    &code,
                    &message,
                    &(now_ms() as i64),
                    &stage,
                ],
            )
            .await
            .map_err(|e| ClusterError::db("recording the job's end", e))?;
        Ok(written.get::<_, i64>(0) == 1)
    }

    /// Put back every running job whose lease expired (its worker died or
    /// lost the database): queued again with its attempt counted, or, past
    /// its most attempts, failed with the last error. Never a batch job
    /// (kind 1): its attempt may have committed, which only a committer
    /// can tell, so it is always queued again and its next committer ends
    /// it (found committed, or aborted past its attempts).
    pub async fn reap(&self) -> Result<Vec<Reaped>, ClusterError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "UPDATE cvm_jobs SET
                     last_error = 'the lease of worker ' || lease_owner || ' expired during attempt ' || attempts,
                     state = CASE WHEN attempts >= max_attempts AND kind <> 1 THEN 4 ELSE 1 END,
                     error_code = CASE WHEN attempts >= max_attempts AND kind <> 1 THEN 'ABORTED' END,
                     error_message = CASE WHEN attempts >= max_attempts AND kind <> 1 THEN
                         'gave up after ' || attempts || ' attempts; the last: the lease of worker ' || lease_owner
                         || ' expired (the worker stopped or lost the database)' END,
                     finished_ms = CASE WHEN attempts >= max_attempts AND kind <> 1 THEN $1::bigint ELSE 0 END,
                     lease_owner = NULL, lease_expires = NULL
                 WHERE state = 2 AND lease_expires < now()
                 RETURNING id, state",
                &[&(now_ms() as i64)],
            )
            .await
            .map_err(|e| ClusterError::db("putting back jobs whose lease expired", e))?;
        rows.iter()
            .map(|row| {
                let state = JobState::try_from(i32::from(row.get::<_, i16>(1))).unwrap_or(JobState::Unspecified);
                Ok(Reaped { id: row.get::<_, i64>(0) as u64, state })
            })
            .collect()
    }

    /// Cancel a job: a queued one ends at once; a running one is flagged,
    /// and its worker (told through the notification) stops it at its next
    /// stage boundary. A batch job put back after an attempt may have
    /// committed: only its committer can tell, so it is flagged, never
    /// ended from the queue. Returns the job as it is after.
    pub async fn cancel(&self, id: u64) -> Result<Job, ClusterError> {
        let client = self.client().await?;
        let ended = client
            .query_opt(
                &format!(
                    "UPDATE cvm_jobs SET state = 5, error_code = 'CANCELLED',
                         error_message = 'cancelled before it started', finished_ms = $2
                     WHERE id = $1 AND state = 1 AND NOT (kind = 1 AND attempts > 0) RETURNING {JOB_COLUMNS}"
                ),
                &[&(id as i64), &(now_ms() as i64)],
            )
            .await
            .map_err(|e| ClusterError::db("cancelling a job", e))?;
        if let Some(row) = ended {
            return job_of(&row);
        }
        client
            .execute("UPDATE cvm_jobs SET cancel_requested = true WHERE id = $1 AND state IN (1, 2)", &[&(id as i64)])
            .await
            .map_err(|e| ClusterError::db("asking a running job to stop", e))?;
        self.get(id).await?.ok_or(ClusterError::NotFound(id))
    }

    /// The job a request id names, with its payload's digest.
    pub async fn find_request(&self, request_id: &str) -> Result<Option<(u64, [u8; 32])>, ClusterError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT id, payload_digest FROM cvm_jobs WHERE request_id = $1", &[&request_id])
            .await
            .map_err(|e| ClusterError::db("reading the job a request id names", e))?;
        row.map(|row| {
            let id = row.get::<_, i64>(0) as u64;
            let digest: Vec<u8> = row.get(1);
            let digest = digest
                .try_into()
                .map_err(|_| ClusterError::Damaged { job: id, reason: "its payload digest is not 32 bytes".into() })?;
            Ok((id, digest))
        })
        .transpose()
    }

    pub async fn get(&self, id: u64) -> Result<Option<Job>, ClusterError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("SELECT {JOB_COLUMNS} FROM cvm_jobs WHERE id = $1"), &[&(id as i64)])
            .await
            .map_err(|e| ClusterError::db("reading a job", e))?;
        row.map(|row| job_of(&row)).transpose()
    }

    /// The most recent jobs (newest first) in `states` and of `kinds`
    /// (empty: any), at most `limit`; with `domains`, only jobs recording
    /// one of them or none (a batch job always records its own).
    pub async fn list(
        &self,
        states: &[JobState],
        kinds: &[JobKind],
        domains: Option<&[String]>,
        limit: usize,
    ) -> Result<Vec<Job>, ClusterError> {
        let states: Vec<i16> = states.iter().map(|s| *s as i16).collect();
        let kinds: Vec<i16> = kinds.iter().map(|k| *k as i16).collect();
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM cvm_jobs
                     WHERE (cardinality($1::smallint[]) = 0 OR state = ANY($1))
                       AND (cardinality($2::smallint[]) = 0 OR kind = ANY($2))
                       AND ($4::text[] IS NULL OR (domain = '' AND kind <> 1) OR domain = ANY($4))
                     ORDER BY id DESC LIMIT $3"
                ),
                &[&states, &kinds, &(limit as i64), &domains],
            )
            .await
            .map_err(|e| ClusterError::db("listing jobs", e))?;
        rows.iter().map(job_of).collect()
    }

    /// Queued and running jobs of `kind` across the cluster.
    pub async fn count(&self, kind: JobKind) -> Result<KindCount, ClusterError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE state = 1), count(*) FILTER (WHERE state = 2)
                 FROM cvm_jobs WHERE kind = $1 AND state IN (1, 2)",
                &[&(kind as i16)],
            )
            .await
            .map_err(|e| ClusterError::db("counting jobs", e))?;
        Ok(KindCount { queued: row.get::<_, i64>(0) as u64, running: row.get::<_, i64>(1) as u64 })
    }

    /// Jobs of `kind` queued ahead of job `id` (0 once it is not queued).
    pub async fn position(&self, id: u64) -> Result<u64, ClusterError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(o.id) FROM cvm_jobs j JOIN cvm_jobs o
                     ON o.state = 1 AND o.kind = j.kind
                    AND (o.priority > j.priority OR (o.priority = j.priority AND o.id < j.id))
                 WHERE j.id = $1 AND j.state = 1",
                &[&(id as i64)],
            )
            .await
            .map_err(|e| ClusterError::db("reading a job's place in its queue", e))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Fail every queued job whose deadline passed before it started
    /// (`DEADLINE_EXCEEDED`), so it holds no place in its queue and its
    /// watchers hear its end; returns how many. A job that ran before (put
    /// back after a lost lease) is left to its next claim, as a batch job
    /// that may have committed must be.
    pub async fn end_past_deadline(&self, now_ms: u64) -> Result<u64, ClusterError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE cvm_jobs SET state = 4, error_code = 'DEADLINE_EXCEEDED',
                     error_message = 'the deadline ' || deadline_ms || ' (Unix ms) passed before the job started',
                     finished_ms = $1
                 WHERE state = 1 AND attempts = 0 AND deadline_ms <> 0 AND deadline_ms <= $1",
                &[&(now_ms as i64)],
            )
            .await
            .map_err(|e| ClusterError::db("ending queued jobs past their deadline", e))
    }

    /// Forget ended jobs that finished before `horizon_ms`.
    pub async fn expire(&self, horizon_ms: u64) -> Result<u64, ClusterError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM cvm_jobs WHERE state >= 3 AND finished_ms < $1", &[&(horizon_ms as i64)])
            .await
            .map_err(|e| ClusterError::db("forgetting expired jobs", e))
    }

    /// Register a worker, or refresh its heartbeat and key sets (its jobs
    /// done are counted as they end, [`Queue::complete`]). A worker started
    /// again under the same id replaces the row's description (its kinds,
    /// host, backend and adapter).
    pub async fn heartbeat(&self, worker: &WorkerRow) -> Result<(), ClusterError> {
        let kinds: Vec<i16> = worker.kinds.iter().map(|k| *k as i16).collect();
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO cvm_workers (id, host, kinds, backend, adapter, started_ms, key_sets)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO UPDATE SET heartbeat = now(), key_sets = $7, host = $2, kinds = $3,
                     backend = $4, adapter = $5",
                &[
                    &worker.id,
                    &worker.host,
                    &kinds,
                    &worker.backend,
                    &worker.adapter,
                    &(now_ms() as i64),
                    &worker.key_sets,
                ],
            )
            .await
            .map_err(|e| ClusterError::db("recording the worker's heartbeat", e))?;
        Ok(())
    }

    /// Store a blob under `name` unless one is there; true when this one
    /// was stored (the first writer's stays).
    pub async fn put_blob(&self, name: &str, data: &[u8]) -> Result<bool, ClusterError> {
        let client = self.client().await?;
        let stored = client
            .execute(
                "INSERT INTO cvm_blobs (name, data) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &data],
            )
            .await
            .map_err(|e| ClusterError::db(format!("storing {name}"), e))?;
        Ok(stored == 1)
    }

    pub async fn get_blob(&self, name: &str) -> Result<Option<Vec<u8>>, ClusterError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT data FROM cvm_blobs WHERE name = $1", &[&name])
            .await
            .map_err(|e| ClusterError::db(format!("reading {name}"), e))?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Whether the cluster holds `name` (the truth about an upload: a
    /// machine's copy is a cache of it).
    pub async fn has_blob(&self, name: &str) -> Result<bool, ClusterError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT EXISTS (SELECT 1 FROM cvm_blobs WHERE name = $1)", &[&name])
            .await
            .map_err(|e| ClusterError::db(format!("looking for {name}"), e))?;
        Ok(row.get(0))
    }

    /// Remove `name` from the cluster; whether it was there.
    pub async fn delete_blob(&self, name: &str) -> Result<bool, ClusterError> {
        let client = self.client().await?;
        let deleted = client
            .execute("DELETE FROM cvm_blobs WHERE name = $1", &[&name])
            .await
            .map_err(|e| ClusterError::db(format!("removing {name}"), e))?;
        Ok(deleted == 1)
    }

    /// A stopping worker leaves the list.
    pub async fn leave(&self, worker: &str) -> Result<(), ClusterError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM cvm_workers WHERE id = $1", &[&worker])
            .await
            .map_err(|e| ClusterError::db("removing the worker", e))?;
        Ok(())
    }

    /// The workers that beat within `alive` (the others are forgotten).
    pub async fn workers(&self, alive: Duration) -> Result<Vec<WorkerRow>, ClusterError> {
        let client = self.client().await?;
        let alive = alive.as_millis() as i64;
        client
            .execute(
                "DELETE FROM cvm_workers WHERE heartbeat < now() - $1::bigint * interval '1 millisecond'",
                &[&alive],
            )
            .await
            .map_err(|e| ClusterError::db("forgetting silent workers", e))?;
        let rows = client
            .query(
                "SELECT id, host, kinds, backend, adapter, jobs_done, key_sets,
                        (extract(epoch FROM now() - heartbeat) * 1000)::bigint
                 FROM cvm_workers ORDER BY id",
                &[],
            )
            .await
            .map_err(|e| ClusterError::db("listing workers", e))?;
        Ok(rows
            .iter()
            .map(|row| WorkerRow {
                id: row.get(0),
                host: row.get(1),
                kinds: row
                    .get::<_, Vec<i16>>(2)
                    .into_iter()
                    .filter_map(|k| JobKind::try_from(i32::from(k)).ok())
                    .collect(),
                backend: row.get(3),
                adapter: row.get(4),
                jobs_done: row.get::<_, i64>(5) as u64,
                key_sets: row.get(6),
                heartbeat_age_ms: row.get::<_, i64>(7).max(0) as u64,
            })
            .collect())
    }
}

fn claimed_of(row: &Row) -> Result<Claimed, ClusterError> {
    Ok(Claimed {
        job: job_of(row)?,
        payload: row.get("payload"),
        batch_head: row.get::<_, i64>("batch_head") as u64,
        cancel_requested: row.get("cancel_requested"),
        max_attempts: row.get::<_, i32>("max_attempts").max(1) as u32,
    })
}

pub(super) async fn open(url: &str) -> Result<Client, ClusterError> {
    let (client, connection) = super::connect::connect(url, "connecting to the database").await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("the cluster's database connection ended: {e}");
        }
    });
    Ok(client)
}

fn job_of(row: &Row) -> Result<Job, ClusterError> {
    let id = row.get::<_, i64>("id") as u64;
    let result = match row.get::<_, Option<Vec<u8>>>("result") {
        Some(bytes) => Some(
            JobResult::decode(bytes.as_slice())
                .map_err(|e| ClusterError::Damaged { job: id, reason: format!("its result does not decode: {e}") })?,
        ),
        None => None,
    };
    let code: Option<String> = row.get("error_code");
    let error =
        code.map(|code| JobError { code, message: row.get::<_, Option<String>>("error_message").unwrap_or_default() });
    Ok(Job {
        job_id: id,
        request_id: row.get("request_id"),
        kind: i32::from(row.get::<_, i16>("kind")),
        state: i32::from(row.get::<_, i16>("state")),
        priority: row.get("priority"),
        deadline_unix_ms: row.get::<_, i64>("deadline_ms") as u64,
        submitted_unix_ms: row.get::<_, i64>("submitted_ms") as u64,
        started_unix_ms: row.get::<_, i64>("started_ms") as u64,
        finished_unix_ms: row.get::<_, i64>("finished_ms") as u64,
        stage: row.get("stage"),
        result,
        error,
        attempts: row.get::<_, i32>("attempts") as u32,
        worker: row.get::<_, Option<String>>("lease_owner").unwrap_or_default(),
        lease_expires_unix_ms: row.get::<_, Option<i64>>("lease_expires_ms").unwrap_or_default().max(0) as u64,
        domain: row.get("domain"),
    })
}
