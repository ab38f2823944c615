//! The gRPC face of the core: each call checked, run off the async threads
//! where it blocks (the journal's fsync), and its refusal mapped to a status.

use std::pin::Pin;
use std::sync::Arc;

use prost::Message;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::auth::Grant;
use super::core::{kind_name, Core, Refusal, Submitted, SERVED_KINDS};
use super::journal::is_final;
use super::proto::accelerator_server::Accelerator;
use super::proto::*;
use super::work::{backend_name, kind_of};

pub struct Api {
    pub core: Arc<Core>,
    /// With `--queue postgres://…`: jobs live in the cluster's database.
    #[cfg(feature = "postgres")]
    pub cluster: Option<Arc<super::cluster::front::Front>>,
    /// Turns true when the server stops: open Await streams end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl From<Refusal> for Status {
    fn from(r: Refusal) -> Status {
        let message = r.to_string();
        match r {
            Refusal::Invalid(_) => Status::invalid_argument(message),
            Refusal::Conflict { .. } => Status::already_exists(message),
            Refusal::QueueFull { .. } => Status::resource_exhausted(message),
            Refusal::DeadlinePassed { .. } => Status::deadline_exceeded(message),
            Refusal::NotFound(_) => Status::not_found(message),
            Refusal::Unavailable(_) => Status::unavailable(message),
            Refusal::Internal(_) => Status::internal(message),
        }
    }
}

/// Run a blocking core call on tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Refusal> + Send + 'static) -> Result<T, Status> {
    on_blocking_pool(move || f().map_err(Status::from)).await
}

/// [`blocking`], for a call whose refusal is a `Status` already.
async fn on_blocking_pool<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(Status::internal(format!("the call's task failed: {e}"))),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<JobEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Accelerator for Api {
    async fn submit(&self, request: Request<SubmitRequest>) -> Result<Response<SubmitResponse>, Status> {
        #[cfg(feature = "postgres")]
        if let Some(front) = &self.cluster {
            let grant = Grant::of(&request);
            let request = self.check_cluster_submit(grant, request.into_inner()).await?;
            return self.cluster_submit(front, request).await.map(Response::new);
        }
        Ok(Response::new(self.accept(request).await?.response))
    }

    async fn run(&self, request: Request<SubmitRequest>) -> Result<Response<Job>, Status> {
        #[cfg(feature = "postgres")]
        if let Some(front) = &self.cluster {
            let grant = Grant::of(&request);
            let request = self.check_cluster_submit(grant, request.into_inner()).await?;
            let id = self.cluster_submit(front, request).await?.job_id;
            let first = front.get(id).await?;
            let (sender, mut receiver) = tokio::sync::mpsc::channel(16);
            front.events(id, first, sender, self.stopping.clone());
            let mut stopping = self.stopping.clone();
            loop {
                tokio::select! {
                    event = receiver.recv() => match event {
                        Some(Ok(JobEvent { job: Some(job), .. })) => return Ok(Response::new(job)),
                        Some(Ok(_)) => {}
                        Some(Err(refusal)) => return Err(refusal.into()),
                        None => return Err(Status::internal(format!("job {id}'s events ended early"))),
                    },
                    _ = stopped(&mut stopping) => return Err(Status::unavailable(format!(
                        "the server is stopping; job {id} is kept in the cluster's queue: await it on any server"
                    ))),
                }
            }
        }
        let submitted = self.accept(request).await?;
        let id = submitted.response.job_id;
        if let Some(mut events) = submitted.events {
            let mut stopping = self.stopping.clone();
            loop {
                if let Some(job) = events.borrow_and_update().job.clone() {
                    return Ok(Response::new(job));
                }
                tokio::select! {
                    changed = events.changed() => if changed.is_err() { break },
                    _ = stopped(&mut stopping) => return Err(Status::unavailable(format!(
                        "the server is stopping; job {id} is kept and goes on after a restart: await it then"
                    ))),
                }
            }
        }
        // It ended before it could be watched: as the store has it.
        let core = self.core.clone();
        blocking(move || core.get(id)).await.map(Response::new)
    }

    type AwaitStream = EventStream;

    async fn r#await(&self, request: Request<AwaitRequest>) -> Result<Response<EventStream>, Status> {
        let grant = Grant::of(&request);
        let id = request.into_inner().job_id;
        #[cfg(feature = "postgres")]
        if let Some(front) = &self.cluster {
            let job = front.get(id).await?;
            self.visible(&grant, &job)?;
            let (sender, receiver) = tokio::sync::mpsc::channel(16);
            front.events(id, job, sender, self.stopping.clone());
            let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
            let stream = tokio_stream::StreamExt::map(stream, |event| event.map_err(Status::from));
            return Ok(Response::new(Box::pin(stream)));
        }
        let core = self.core.clone();
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        // Subscribe before reading the record: an end in between is then seen.
        let events = core.subscribe(id);
        let job = {
            let core = core.clone();
            blocking(move || core.get(id)).await?
        };
        self.visible(&grant, &job)?;
        let mut stopping = self.stopping.clone();
        match events {
            Some(mut events) if !is_final(job.state()) => {
                tokio::spawn(async move {
                    loop {
                        let event = events.borrow_and_update().clone();
                        let last = event.job.is_some();
                        if sender.send(Ok(event)).await.is_err() || last {
                            return;
                        }
                        let changed = tokio::select! {
                            changed = events.changed() => changed,
                            _ = stopped(&mut stopping) => {
                                let message = "the server is stopping; the job is kept and goes on after a restart: await it again";
                                let _ = sender.send(Err(Status::unavailable(message))).await;
                                return;
                            }
                        };
                        if changed.is_err() {
                            // The job ended and its channel closed: the end from the store.
                            let core = core.clone();
                            let end = blocking(move || core.get(id)).await;
                            let _ = sender.send(end.map(|job| final_event(&job))).await;
                            return;
                        }
                    }
                });
            }
            // Ended (or, if its end could not be recorded, as the store has it:
            // a job that is not final is not reported as ended).
            _ if is_final(job.state()) => {
                let _ = sender.send(Ok(final_event(&job))).await;
            }
            _ => {
                let event = JobEvent {
                    job_id: job.job_id,
                    state: job.state,
                    stage: job.stage.clone(),
                    progress: 0.0,
                    job: None,
                };
                let _ = sender.send(Ok(event)).await;
            }
        }
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<Job>, Status> {
        let core = self.core.clone();
        let grant = Grant::of(&request);
        let id = request.into_inner().job_id;
        #[cfg(feature = "postgres")]
        if let Some(front) = &self.cluster {
            let job = front.get(id).await?;
            self.visible(&grant, &job)?;
            return Ok(Response::new(job));
        }
        let job = blocking(move || core.get(id)).await?;
        self.visible(&grant, &job)?;
        Ok(Response::new(job))
    }

    async fn cancel(&self, request: Request<CancelRequest>) -> Result<Response<Job>, Status> {
        let grant = Grant::of(&request);
        let id = request.into_inner().job_id;
        #[cfg(feature = "postgres")]
        if let Some(front) = &self.cluster {
            let job = front.get(id).await?;
            self.visible(&grant, &job)?;
            return Ok(Response::new(front.queue.cancel(id).await.map_err(Refusal::from)?));
        }
        let core = self.core.clone();
        let job = blocking(move || core.get(id)).await?;
        self.visible(&grant, &job)?;
        let core = self.core.clone();
        blocking(move || core.cancel(id)).await.map(Response::new)
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let core = self.core.clone();
        let grant = Grant::of(&request);
        let request = request.into_inner();
        if request.states.len() > MAX_FILTERS || request.kinds.len() > MAX_FILTERS {
            return Err(Status::invalid_argument(format!(
                "list: at most {MAX_FILTERS} states and {MAX_FILTERS} kinds"
            )));
        }
        // An unknown value would match nothing: say so instead of an empty list.
        known_values("states", "state", &request.states, |v| JobState::try_from(v).is_ok())?;
        known_values("kinds", "kind", &request.kinds, |v| JobKind::try_from(v).is_ok())?;
        let limit = match request.limit {
            0 => 100,
            n => (n as usize).min(MAX_LIST),
        };
        #[cfg(feature = "postgres")]
        if let Some(front) = &self.cluster {
            let states: Vec<JobState> = request.states().collect();
            let mut kinds: Vec<JobKind> = request.kinds().collect();
            if kinds.is_empty() {
                kinds = SERVED_KINDS.to_vec();
            }
            kinds.retain(|k| grant.sees(*k));
            // None left is no job (the queue reads an empty list as every kind).
            if kinds.is_empty() {
                return Ok(Response::new(ListResponse { jobs: Vec::new() }));
            }
            // The queue filters by the token's domains as `Grant::in_domains` does, before its limit.
            let domains = grant.domains();
            let jobs = front.queue.list(&states, &kinds, domains.as_deref(), limit).await.map_err(Refusal::from)?;
            return Ok(Response::new(ListResponse { jobs }));
        }
        blocking(move || {
            let jobs = core.journal.recent(limit, |j| {
                grant.sees(j.kind())
                    && grant.in_domains(j)
                    && (request.states.is_empty() || request.states.contains(&(core.state_now(j) as i32)))
                    && (request.kinds.is_empty() || request.kinds.contains(&j.kind))
            })?;
            Ok(ListResponse { jobs: jobs.into_iter().map(|j| core.as_it_stands(j)).collect() })
        })
        .await
        .map(Response::new)
    }

    async fn status(&self, _request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let core = &self.core;
        #[cfg(feature = "postgres")]
        let (cluster_kinds, workers) = match &self.cluster {
            Some(front) => {
                let (kinds, workers) = front.status().await.map_err(Refusal::from)?;
                (Some(kinds), workers)
            }
            None => (None, Vec::new()),
        };
        #[cfg(not(feature = "postgres"))]
        let (cluster_kinds, workers): (Option<Vec<KindLoad>>, _) = (None, Vec::new());
        let kinds = cluster_kinds.unwrap_or_else(|| {
            SERVED_KINDS
                .into_iter()
                .map(|kind| {
                    let load = core.scheduler.load(kind);
                    KindLoad {
                        kind: kind as i32,
                        queued: load.queued as u64,
                        running: load.running as u64,
                        queue_limit: core.scheduler.depth() as u64,
                    }
                })
                .collect()
        });
        let hashing = core.engines.hashing.resolved();
        Ok(Response::new(StatusResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            backend: backend_name(hashing).to_string(),
            adapter: core.engines.msm.device().unwrap_or_default(),
            cpu_threads: rayon::current_num_threads() as u32,
            key_sets: core
                .engines
                .keys
                .resident()
                .into_iter()
                .map(|k| KeySetStatus { ops_per_proof: k as u32, resident: true, zkey_id: String::new() })
                .chain(core.engines.zkeys.resident().into_iter().map(|id| KeySetStatus {
                    ops_per_proof: 0,
                    resident: true,
                    zkey_id: id.to_string(),
                }))
                .collect(),
            kinds,
            uptime_ms: core.started.elapsed().as_millis() as u64,
            workers,
        }))
    }

    async fn preload(&self, request: Request<PreloadRequest>) -> Result<Response<KeySetStatus>, Status> {
        let grant = Grant::of(&request);
        let request = request.into_inner();
        if !request.zkey_id.is_empty() {
            self.allowed(&grant, &[JobKind::Groth16])?;
            let id = zkey_id(&request.zkey_id)?;
            let core = self.core.clone();
            return on_blocking_pool(move || {
                core.engines.zkeys.get(&id, &core.engines).map_err(|e| match e {
                    // Nothing to load: the key was never uploaded (or was removed).
                    super::work::WorkError::Precondition(reason) => Status::not_found(reason),
                    other => Status::from(Refusal::from(other)),
                })?;
                Ok(KeySetStatus { ops_per_proof: 0, resident: true, zkey_id: id.to_string() })
            })
            .await
            .map(Response::new);
        }
        self.allowed(&grant, &[JobKind::ProveOps, JobKind::ExecuteBatch])?;
        let core = self.core.clone();
        // 0 is the default set, as in a job.
        let k = super::work::batch::ops_per_proof(request.ops_per_proof) as u32;
        blocking(move || {
            core.engines.keys.get(k as usize).map_err(|e| match e {
                super::work::WorkError::Bad(bad) => Refusal::Invalid(bad.to_string()),
                other => Refusal::Internal(other.to_string()),
            })?;
            Ok(KeySetStatus { ops_per_proof: k, resident: true, zkey_id: String::new() })
        })
        .await
        .map(Response::new)
    }

    async fn evict(&self, request: Request<EvictRequest>) -> Result<Response<KeySetStatus>, Status> {
        let grant = Grant::of(&request);
        let request = request.into_inner();
        if !request.zkey_id.is_empty() {
            self.allowed(&grant, &[JobKind::Groth16])?;
            let id = zkey_id(&request.zkey_id)?;
            self.core.engines.zkeys.evict(&id);
            return Ok(Response::new(KeySetStatus { ops_per_proof: 0, resident: false, zkey_id: id.to_string() }));
        }
        self.allowed(&grant, &[JobKind::ProveOps, JobKind::ExecuteBatch])?;
        let k = super::work::batch::ops_per_proof(request.ops_per_proof) as u32;
        // A size no key set has is refused, as `Preload` refuses it.
        crate::prove::check_ops_per_proof(k as usize)
            .map_err(|e| Status::invalid_argument(format!("ops_per_proof: {e}")))?;
        self.core.engines.keys.evict(k as usize);
        Ok(Response::new(KeySetStatus { ops_per_proof: k, resident: false, zkey_id: String::new() }))
    }

    async fn upload_zkey(&self, request: Request<UploadZkeyRequest>) -> Result<Response<UploadZkeyResponse>, Status> {
        self.allowed(&Grant::of(&request), &[JobKind::Groth16])?;
        let core = self.core.clone();
        #[cfg(feature = "postgres")]
        let cluster = self.cluster.clone();
        let request = request.into_inner();
        blocking(move || {
            let uploaded = core.engines.zkeys.upload(&request.zkey, &request.r1cs, &core.engines)?;
            #[cfg(feature = "postgres")]
            if let Some(front) = &cluster {
                // Stored once for the cluster: its other machines fetch it by id.
                let publish =
                    super::cluster::blobs::publish_zkey(&front.queue, &uploaded.id, &request.zkey, &request.r1cs);
                tokio::runtime::Handle::current().block_on(publish).map_err(Refusal::from)?;
            }
            let key = &uploaded.key;
            Ok(UploadZkeyResponse {
                zkey_id: uploaded.id.to_string(),
                signals: key.n_vars as u64,
                public_signals: key.n_public as u64,
                domain_size: key.domain_size as u64,
                constraints_checked: key.has_r1cs(),
            })
        })
        .await
        .map(Response::new)
    }

    async fn upload_bases(
        &self,
        request: Request<UploadBasesRequest>,
    ) -> Result<Response<UploadBasesResponse>, Status> {
        self.allowed(&Grant::of(&request), &[JobKind::Msm])?;
        let core = self.core.clone();
        #[cfg(feature = "postgres")]
        let cluster = self.cluster.clone();
        let request = request.into_inner();
        blocking(move || {
            let group = super::work::msm::group_of(request.group, "group")?;
            let points = request.bases.map(|b| b.points).unwrap_or_default();
            let (id, count) = core.engines.bases.upload(group, &points, &core.engines).map_err(|e| match e {
                super::work::WorkError::Bad(bad) => Refusal::Invalid(bad.to_string()),
                other => Refusal::Internal(other.to_string()),
            })?;
            #[cfg(feature = "postgres")]
            if let Some(front) = &cluster {
                let publish = super::cluster::blobs::publish_bases(&front.queue, &id, group, &points);
                tokio::runtime::Handle::current().block_on(publish).map_err(Refusal::from)?;
            }
            Ok(UploadBasesResponse { base_set_id: id.to_string(), count: count as u64 })
        })
        .await
        .map(Response::new)
    }

    async fn remove_bases(
        &self,
        request: Request<RemoveBasesRequest>,
    ) -> Result<Response<RemoveBasesResponse>, Status> {
        self.allowed(&Grant::of(&request), &[JobKind::Msm])?;
        let text = request.into_inner().base_set_id;
        let id = super::work::msm::BaseSetId::parse(&text)
            .ok_or_else(|| Status::invalid_argument(format!("base_set_id {text:?}: expected bases:<64 hex digits>")))?;
        #[cfg(feature = "postgres")]
        if let Some(front) = &self.cluster {
            let removed = super::cluster::blobs::remove_bases(&front.queue, &self.core.engines, &id)
                .await
                .map_err(|e| Status::from(Refusal::Internal(e.to_string())))?;
            return Ok(Response::new(RemoveBasesResponse { removed }));
        }
        let core = self.core.clone();
        blocking(move || {
            let removed = core.engines.bases.remove(&id).map_err(|e| Refusal::Internal(e.to_string()))?;
            Ok(RemoveBasesResponse { removed })
        })
        .await
        .map(Response::new)
    }
}

/// The largest Submit checked on the async threads.
const INLINE_SUBMIT_BYTES: usize = 16 << 10;

/// The most states or kinds a List may filter by, and the most jobs it returns.
const MAX_FILTERS: usize = 16;
const MAX_LIST: usize = 10_000;

/// `INVALID_ARGUMENT` naming the first of a List filter's `values` that is
/// unspecified (0) or not `known`.
fn known_values(field: &str, what: &str, values: &[i32], known: impl Fn(i32) -> bool) -> Result<(), Status> {
    match values.iter().enumerate().find(|(_, v)| **v == 0 || !known(**v)) {
        Some((at, value)) => {
            Err(Status::invalid_argument(format!("list: {field}[{at}] = {value} is not a job {what}")))
        }
        None => Ok(()),
    }
}

/// Whether the caller may submit `request` ([`check_submit`]), a refusal counted.
fn authorize_submit(core: &Core, grant: &Grant, request: &SubmitRequest) -> Result<(), Status> {
    let Some(payload) = &request.payload else { return Ok(()) };
    let Ok(kind) = kind_of(payload) else { return Ok(()) };
    check_submit(grant, kind, payload).inspect_err(|_| core.metrics.auth_rejected("too_narrow"))
}

/// Whether the caller may submit `payload`: its kind, and for a batch, its
/// domain. A caller with a token must bring the batch's own capability
/// token: "mint" uses the server's root keys, for the owner's socket only.
fn check_submit(grant: &Grant, kind: JobKind, payload: &JobPayload) -> Result<(), Status> {
    if grant.is_token() && names_a_path(payload) {
        return Err(Status::permission_denied(
            "groth16.zkey_path names a file on the server's machine, which only callers on its Unix socket may do; \
             upload the key (UploadZkey) and name it by its zkey_id",
        ));
    }
    let Some(super::proto::job_payload::Kind::ExecuteBatch(job)) = &payload.kind else {
        return grant.check(kind, None);
    };
    #[derive(serde::Deserialize)]
    struct Head {
        domain: crate::resource::DomainId,
        token: String,
    }
    // A batch that does not even parse this far is refused later, precisely.
    let Ok(head) = serde_json::from_slice::<Head>(&job.batch_json) else { return grant.check(kind, None) };
    grant.check(kind, Some(&head.domain))?;
    if grant.is_token() && head.token == crate::batch::file::MINT {
        return Err(Status::permission_denied(
            "a batch sent with a service token brings its own capability token: \"mint\" would use this server's root \
             keys, and is for callers on its Unix socket",
        ));
    }
    Ok(())
}

fn zkey_id(text: &str) -> Result<super::work::groth16::ZkeyId, Status> {
    super::work::groth16::ZkeyId::parse(text)
        .ok_or_else(|| Status::invalid_argument(format!("zkey_id {text:?}: expected zkey:<64 hex digits>")))
}

/// Whether a Groth16 job names its key by a path on the server's machine.
fn names_a_path(payload: &JobPayload) -> bool {
    matches!(
        &payload.kind,
        Some(super::proto::job_payload::Kind::Groth16(super::proto::Groth16Job {
            key: Some(super::proto::groth16_job::Key::ZkeyPath(_)),
            ..
        }))
    )
}

impl Api {
    /// Submit's work for Submit and Run: the caller's right to the job,
    /// then the core's check, durable record and queueing.
    async fn accept(&self, request: Request<SubmitRequest>) -> Result<Submitted, Status> {
        let grant = Grant::of(&request);
        let request = request.into_inner();
        // A small payload is checked here, and its record awaited on no
        // thread; a large one's checking (the caller's right to its batch's
        // domain, a batch's parse, a digest of megabytes) runs on the
        // blocking pool.
        let reads_a_file = request.payload.as_ref().is_some_and(names_a_path);
        if request.encoded_len() <= INLINE_SUBMIT_BYTES && !reads_a_file {
            authorize_submit(&self.core, &grant, &request)?;
            return self.core.submit_async(request).await.map_err(Status::from);
        }
        let core = self.core.clone();
        on_blocking_pool(move || {
            authorize_submit(&core, &grant, &request)?;
            core.submit(request).map_err(Status::from)
        })
        .await
    }

    /// Submit to the cluster's queue, counting a refusal as a local submit's is.
    #[cfg(feature = "postgres")]
    async fn cluster_submit(
        &self,
        front: &super::cluster::front::Front,
        request: SubmitRequest,
    ) -> Result<SubmitResponse, Status> {
        let kind = super::core::kind_label(&request);
        let submitted = front.submit(request, &self.core.engines).await;
        self.core.counted(kind, submitted).map_err(Status::from)
    }

    /// The caller's right to submit to the cluster (the same as [`Api::accept`]'s,
    /// on the blocking pool for a large request).
    #[cfg(feature = "postgres")]
    async fn check_cluster_submit(&self, grant: Grant, request: SubmitRequest) -> Result<SubmitRequest, Status> {
        if request.encoded_len() <= INLINE_SUBMIT_BYTES {
            authorize_submit(&self.core, &grant, &request)?;
            return Ok(request);
        }
        let core = self.core.clone();
        on_blocking_pool(move || authorize_submit(&core, &grant, &request).map(|()| request)).await
    }

    /// Whether the caller may use a call that serves jobs of `kinds` (any one).
    fn allowed(&self, grant: &Grant, kinds: &[JobKind]) -> Result<(), Status> {
        if kinds.iter().any(|k| grant.sees(*k)) {
            return Ok(());
        }
        self.core.metrics.auth_rejected("too_narrow");
        let names: Vec<&str> = kinds.iter().map(|k| kind_name(*k)).collect();
        Err(Status::permission_denied(format!(
            "the token allows none of the job kinds this call serves ({})",
            names.join(", ")
        )))
    }

    /// A job of a kind the caller's token does not cover is, to them, not there.
    fn visible(&self, grant: &Grant, job: &Job) -> Result<(), Status> {
        grant.sees_job(job).inspect_err(|_| self.core.metrics.auth_rejected("too_narrow"))
    }
}

/// Resolves once the server is stopping (its sender gone counts too).
pub(crate) async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    while !*stopping.borrow_and_update() {
        if stopping.changed().await.is_err() {
            return;
        }
    }
}

fn final_event(job: &Job) -> JobEvent {
    JobEvent { job_id: job.job_id, state: job.state, stage: job.stage.clone(), progress: 1.0, job: Some(job.clone()) }
}
