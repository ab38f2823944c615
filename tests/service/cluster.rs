//! The cluster's job store on a real PostgreSQL (tests/support/postgres.rs):
//! jobs accepted idempotently, claimed by several workers without sharing,
//! leases that expire and put jobs back (and fail them past their
//! attempts), cancellation, notifications, and the schema's migrations.

use std::time::Duration;

use causality_vm::hash::HashPool;
use causality_vm::service::cluster::worker::{Worker, WorkerOptions};
use causality_vm::service::cluster::{ClusterError, Heard, NewJob, Queue, Renewal, Submitted};
use causality_vm::service::journal::is_final;
use causality_vm::service::proto::{job_result, Job, JobError, JobKind, JobResult, JobState, ListRequest};
use causality_vm::Backend;
use prost::Message;

use crate::postgres_support::{database, psql, server_ca};
use crate::support::{hash_payload, merkle_payload};

fn new_job<'a>(request_id: &'a str, kind: JobKind, payload: &'a [u8]) -> NewJob<'a> {
    NewJob { request_id, kind, priority: 0, deadline_unix_ms: 0, max_attempts: 3, key_set: "", domain: "", payload }
}

/// Wait for a job to end (woken by the notices, looking again every second).
async fn ended(queue: &Queue, id: u64) -> Job {
    let mut waiter = queue.notices().subscribe();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let job = queue.get(id).await.unwrap().expect("the job");
        if is_final(job.state()) {
            return job;
        }
        assert!(tokio::time::Instant::now() < give_up, "job {id} did not end: {job:?}");
        waiter.next(Duration::from_secs(1)).await;
    }
}

/// Run a worker with one runner until its stop is sent (then await the task).
fn run_one(w: std::sync::Arc<Worker>) -> (tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    (stop, tokio::spawn(async move { w.run(1, stopped).await }))
}

async fn worker(url: &str, dir: &std::path::Path, id: &str, lease: Duration) -> std::sync::Arc<Worker> {
    let mut options = WorkerOptions::new(url, dir);
    options.backend = Backend::Cpu;
    options.id = Some(id.into());
    options.lease = lease;
    Worker::start(&options).await.expect("starting a worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_the_queue_and_each_job_runs_once_with_the_library_result() {
    let Some(url) = database("workers_share") else { return };
    let queue = Queue::connect(&url).await.unwrap();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let workers = [
        worker(&url, dirs[0].path(), "w0", Duration::from_secs(5)).await,
        worker(&url, dirs[1].path(), "w1", Duration::from_secs(5)).await,
    ];
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running: Vec<_> = workers
        .iter()
        .map(|w| {
            let (w, stopped) = (w.clone(), stopped.clone());
            tokio::spawn(async move { w.run(2, stopped).await })
        })
        .collect();

    let mut ids = Vec::new();
    for n in 0..24u32 {
        let message = format!("message {n}").into_bytes();
        let payload = if n % 4 == 3 {
            let leaves: Vec<[u8; 32]> = (0..=n).map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes()).collect();
            merkle_payload(&leaves).encode_to_vec()
        } else {
            hash_payload(&[&message, b"second"]).encode_to_vec()
        };
        let kind = if n % 4 == 3 { JobKind::MerkleRoot } else { JobKind::Hash };
        let submitted = queue.submit(&new_job(&format!("job-{n}"), kind, &payload)).await.unwrap();
        assert!(matches!(submitted, Submitted::New(_)));
        ids.push((n, submitted.id()));
    }
    for (n, id) in ids {
        let job = ended(&queue, id).await;
        assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
        assert_eq!(job.attempts, 1, "claimed once: {job:?}");
        match job.result.and_then(|r| r.kind).expect("a result") {
            job_result::Kind::Hash(hashes) => {
                let message = format!("message {n}").into_bytes();
                let expected = [blake3::hash(&message), blake3::hash(b"second")];
                let got: Vec<Vec<u8>> = hashes.digests;
                assert_eq!(got, expected.iter().map(|d| d.as_bytes().to_vec()).collect::<Vec<_>>());
            }
            job_result::Kind::MerkleRoot(root) => {
                let leaves: Vec<[u8; 32]> = (0..=n).map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes()).collect();
                assert_eq!(root.root, HashPool::new().merkle_root(&leaves).unwrap().to_vec());
            }
            other => panic!("unexpected result {other:?}"),
        }
    }
    let _ = stop.send(true);
    for r in running {
        r.await.unwrap();
    }
    assert_eq!(workers[0].jobs_done() + workers[1].jobs_done(), 24);
    // A stopped worker leaves the list.
    assert!(queue.workers(Duration::from_secs(60)).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_are_idempotent_and_a_changed_payload_conflicts() {
    let Some(url) = database("idempotent") else { return };
    let queue = Queue::connect(&url).await.unwrap();
    let payload = hash_payload(&[b"a"]).encode_to_vec();
    let first = queue.submit(&new_job("same", JobKind::Hash, &payload)).await.unwrap();
    let again = queue.submit(&new_job("same", JobKind::Hash, &payload)).await.unwrap();
    assert_eq!(again, Submitted::Existing(first.id()));
    let other = hash_payload(&[b"b"]).encode_to_vec();
    match queue.submit(&new_job("same", JobKind::Hash, &other)).await {
        Err(ClusterError::Conflict { request_id, job }) => assert_eq!((request_id.as_str(), job), ("same", first.id())),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(queue.list(&[], &[], None, 10).await.unwrap().len(), 1, "nothing recorded for the refused submit");

    // Listed for a token limited to domains: jobs recording one of them, or none (not a batch).
    let proof = NewJob { domain: "bank-b", ..new_job("proof-of-b", JobKind::ProveOps, &payload) };
    let proof = queue.submit(&proof).await.unwrap().id();
    let ids = |jobs: Vec<Job>| jobs.iter().map(|j| j.job_id).collect::<Vec<_>>();
    let of = |domain: &str| vec![domain.to_string()];
    assert_eq!(ids(queue.list(&[], &[], Some(&of("bank-a")), 10).await.unwrap()), vec![first.id()]);
    assert_eq!(ids(queue.list(&[], &[], Some(&of("bank-b")), 10).await.unwrap()), vec![proof, first.id()]);
    assert_eq!(queue.get(proof).await.unwrap().unwrap().domain, "bank-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_puts_the_job_back_then_fails_it_past_its_attempts() {
    let Some(url) = database("leases") else { return };
    let queue = Queue::connect(&url).await.unwrap();
    let payload = hash_payload(&[b"x"]).encode_to_vec();
    let job = NewJob { max_attempts: 2, ..new_job("leased", JobKind::Hash, &payload) };
    let id = queue.submit(&job).await.unwrap().id();
    let lease = Duration::from_millis(300);

    // A worker claims it and dies (never renews).
    let claimed = queue.claim("dead-1", &[JobKind::Hash], &[], lease).await.unwrap().expect("a job");
    assert_eq!((claimed.job.job_id, claimed.job.attempts, claimed.job.state()), (id, 1, JobState::Running));
    // Get shows who holds it, and until when (by the database's clock, close to ours here).
    let held = queue.get(id).await.unwrap().unwrap();
    assert_eq!(held.worker, "dead-1");
    let left = held.lease_expires_unix_ms as i64 - causality_vm::service::core::now_ms() as i64;
    assert!((0..=300).contains(&left), "{left} ms of a 300 ms lease left");
    assert!(
        queue.claim("other", &[JobKind::Hash], &[], lease).await.unwrap().is_none(),
        "a claimed job is not claimed twice"
    );
    assert!(queue.reap().await.unwrap().is_empty(), "the lease still holds");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let reaped = queue.reap().await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].state, JobState::Queued);
    // The dead worker's late result is not written, nor its renewal granted.
    let late: Result<JobResult, JobError> = Ok(JobResult::default());
    assert!(!queue.complete(id, "dead-1", 1, "", &late).await.unwrap());
    assert_eq!(queue.renew(id, "dead-1", 1, lease, None).await.unwrap(), Renewal::Lost);
    let queued = queue.get(id).await.unwrap().unwrap();
    assert_eq!((queued.state(), queued.worker.as_str(), queued.lease_expires_unix_ms), (JobState::Queued, "", 0));

    // The second attempt dies too: past its most attempts, the job fails with the last error.
    let claimed = queue.claim("dead-2", &[JobKind::Hash], &[], lease).await.unwrap().expect("the job again");
    assert_eq!(claimed.job.attempts, 2);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(queue.reap().await.unwrap()[0].state, JobState::Failed);
    let job = queue.get(id).await.unwrap().unwrap();
    assert_eq!(job.state(), JobState::Failed);
    let error = job.error.unwrap();
    assert_eq!(error.code, "ABORTED");
    assert!(error.message.contains("2 attempts") && error.message.contains("dead-2"), "{}", error.message);
    assert!(queue.claim("w", &[JobKind::Hash], &[], lease).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_completes_a_job_another_worker_abandoned() {
    let Some(url) = database("abandoned") else { return };
    let queue = Queue::connect(&url).await.unwrap();
    let payload = hash_payload(&[b"abandoned"]).encode_to_vec();
    let id = queue.submit(&new_job("abandoned", JobKind::Hash, &payload)).await.unwrap().id();
    queue.claim("crashed", &[JobKind::Hash], &[], Duration::from_millis(300)).await.unwrap().expect("claimed");
    // A live worker's keeper puts the job back once the lease expires, and runs it.
    let dir = tempfile::tempdir().unwrap();
    let live = worker(&url, dir.path(), "live", Duration::from_millis(900)).await;
    let (stop, task) = run_one(live.clone());
    let job = ended(&queue, id).await;
    let _ = stop.send(true);
    task.await.unwrap();
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    assert_eq!(job.attempts, 2);
    let Some(job_result::Kind::Hash(hashes)) = job.result.and_then(|r| r.kind) else { panic!("a hash result") };
    assert_eq!(hashes.digests, vec![blake3::hash(b"abandoned").as_bytes().to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_a_queued_job_and_flags_a_running_one_for_its_worker() {
    let Some(url) = database("cancel") else { return };
    let queue = Queue::connect(&url).await.unwrap();
    let payload = hash_payload(&[b"c"]).encode_to_vec();
    let queued = queue.submit(&new_job("queued", JobKind::Hash, &payload)).await.unwrap().id();
    let running = queue.submit(&new_job("running", JobKind::Msm, &payload)).await.unwrap().id();
    let job = queue.cancel(queued).await.unwrap();
    assert_eq!(job.state(), JobState::Cancelled);
    assert_eq!(job.error.unwrap().code, "CANCELLED");
    assert!(queue.claim("w", &[JobKind::Hash], &[], Duration::from_secs(5)).await.unwrap().is_none());

    let mut waiter = queue.notices().subscribe();
    let claimed = queue.claim("w", &[JobKind::Msm], &[], Duration::from_secs(5)).await.unwrap().unwrap();
    assert_eq!(claimed.job.job_id, running);
    let job = queue.cancel(running).await.unwrap();
    assert_eq!(job.state(), JobState::Running, "a running job stops at its next stage");
    // The worker hears it through the notification, and through its renewal.
    let heard = loop {
        match waiter.next(Duration::from_secs(10)).await.expect("a notification") {
            Heard::Notice(n) if n.job == running && n.cancel_requested => break n,
            _ => {}
        }
    };
    assert_eq!(heard.state, JobState::Running);
    assert_eq!(
        queue.renew(running, "w", 1, Duration::from_secs(5), Some("msm")).await.unwrap(),
        Renewal::Held { cancel_requested: true }
    );
    let cancelled: Result<JobResult, JobError> =
        Err(JobError { code: "CANCELLED".into(), message: "cancelled while running (at stage msm)".into() });
    assert!(queue.complete(running, "w", 1, "msm", &cancelled).await.unwrap());
    let job = queue.get(running).await.unwrap().unwrap();
    assert_eq!((job.state(), job.stage.as_str()), (JobState::Cancelled, "msm"));

    // A batch job put back after an attempt may have committed: a cancel flags
    // it for its committer (which looks for its commit first) instead of ending it.
    let batch = queue.submit(&new_job("batch", JobKind::ExecuteBatch, &payload)).await.unwrap().id();
    queue.claim("dead", &[JobKind::ExecuteBatch], &[], Duration::from_millis(300)).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(queue.reap().await.unwrap()[0].state, JobState::Queued);
    assert_eq!(queue.cancel(batch).await.unwrap().state(), JobState::Queued, "not ended from the queue");
    let claimed =
        queue.claim("committer", &[JobKind::ExecuteBatch], &[], Duration::from_secs(5)).await.unwrap().unwrap();
    assert!(claimed.cancel_requested && claimed.job.attempts == 2);

    // Past its most attempts, a batch job whose lease expired is still
    // queued again, never failed by the reaper: only its next committer can
    // tell whether the attempt committed (it ends it either way).
    let once = NewJob { max_attempts: 1, ..new_job("batch-once", JobKind::ExecuteBatch, &payload) };
    let once = queue.submit(&once).await.unwrap().id();
    let claimed = queue.claim("dead", &[JobKind::ExecuteBatch], &[], Duration::from_millis(300)).await.unwrap();
    assert_eq!(claimed.unwrap().job.job_id, once);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let reaped = queue.reap().await.unwrap();
    assert!(reaped.iter().any(|r| r.id == once && r.state == JobState::Queued), "{reaped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_follow_priority_then_held_keys_then_age_and_notify_waiters() {
    let Some(url) = database("order") else { return };
    let queue = Queue::connect(&url).await.unwrap();
    let mut waiter = queue.notices().subscribe();
    let payload = hash_payload(&[b"o"]).encode_to_vec();
    let old = queue.submit(&new_job("old", JobKind::ProveOps, &payload)).await.unwrap().id();
    let keyed =
        queue.submit(&NewJob { key_set: "ops:4", ..new_job("keyed", JobKind::ProveOps, &payload) }).await.unwrap().id();
    let urgent =
        queue.submit(&NewJob { priority: 5, ..new_job("urgent", JobKind::ProveOps, &payload) }).await.unwrap().id();
    match waiter.next(Duration::from_secs(10)).await.expect("a notification of the accept") {
        Heard::Notice(n) => assert_eq!((n.job, n.state, n.kind), (old, JobState::Queued, JobKind::ProveOps)),
        Heard::Missed => panic!("missed"),
    }
    assert_eq!(queue.position(old).await.unwrap(), 1, "behind the urgent job");
    assert_eq!(queue.count(JobKind::ProveOps).await.unwrap().queued, 3);
    let held = vec!["ops:4".to_string()];
    let lease = Duration::from_secs(5);
    let order: Vec<u64> = [
        queue.claim("w", &[JobKind::ProveOps], &held, lease).await.unwrap().unwrap().job.job_id,
        queue.claim("w", &[JobKind::ProveOps], &held, lease).await.unwrap().unwrap().job.job_id,
        queue.claim("w", &[JobKind::ProveOps], &held, lease).await.unwrap().unwrap().job.job_id,
    ]
    .into();
    assert_eq!(order, vec![urgent, keyed, old]);
    assert_eq!(queue.count(JobKind::ProveOps).await.unwrap().running, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_migrates_once_and_a_newer_one_is_refused() {
    let Some(url) = database("schema") else { return };
    let (first, second) = tokio::join!(Queue::connect(&url), Queue::connect(&url));
    first.unwrap();
    second.unwrap();
    assert_eq!(
        psql(&url, "SELECT count(*) FROM cvm_schema"),
        causality_vm::service::cluster::SCHEMA_VERSION.to_string()
    );
    psql(&url, "INSERT INTO cvm_schema (version, name) VALUES (99, 'from the future')");
    let Err(e) = Queue::connect(&url).await else { panic!("a newer schema must be refused") };
    assert!(e.to_string().contains("version 99, newer than this cvm's"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_batch_jobs_and_an_unreachable_database_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = WorkerOptions::new("postgres://cvm@127.0.0.1:1/none", dir.path());
    options.kinds = vec![JobKind::ExecuteBatch];
    let Err(e) = Worker::start(&options).await else { panic!("batch jobs are the committer's") };
    assert!(e.to_string().contains("execute-batch jobs are run by the server"), "{e}");
    options.kinds = vec![JobKind::Hash];
    let Err(e) = Worker::start(&options).await else { panic!("no database there") };
    assert!(e.to_string().contains("connecting to the database"), "{e}");
}

/// A worker started again under the same id is listed with what it does now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_under_its_id_is_listed_with_its_new_kinds() {
    let Some(url) = database("restarted") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut options = WorkerOptions::new(&url, dir.path());
    options.backend = Backend::Cpu;
    options.id = Some("same".into());
    options.kinds = vec![JobKind::Msm];
    drop(Worker::start(&options).await.unwrap());
    options.kinds = vec![JobKind::Hash, JobKind::ProveOps];
    drop(Worker::start(&options).await.unwrap());
    let workers = Queue::connect(&url).await.unwrap().workers(Duration::from_secs(60)).await.unwrap();
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert_eq!(workers[0].kinds, vec![JobKind::Hash, JobKind::ProveOps], "{workers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_database_certificate_is_checked_and_jobs_run() {
    let Some(url) = database("tls") else { return };
    let Some(ca) = server_ca("tls") else { return };
    let other = ca.with_file_name("other-ca.pem");
    let tls = format!("{url}?sslmode=verify-full&sslrootcert={}&application_name=cvm-tls-test", ca.display());
    // Every connection of a queue and a worker goes over TLS, and a job runs through them.
    let queue = Queue::connect(&tls).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let w = worker(&tls, dir.path(), "tls", Duration::from_secs(5)).await;
    let (stop, task) = run_one(w.clone());
    let payload = hash_payload(&[b"over tls"]).encode_to_vec();
    let id = queue.submit(&new_job("tls", JobKind::Hash, &payload)).await.unwrap().id();
    let job = ended(&queue, id).await;
    let Some(job_result::Kind::Hash(hashes)) = job.result.and_then(|r| r.kind) else { panic!("a hash result") };
    assert_eq!(hashes.digests, vec![blake3::hash(b"over tls").as_bytes().to_vec()]);
    let connections = psql(
        &url,
        "SELECT count(*) || ' ' || count(*) FILTER (WHERE s.ssl AND s.version LIKE 'TLS%') FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'cvm-tls-test'",
    );
    let (all, over_tls) = connections.split_once(' ').unwrap();
    assert!(all.parse::<u32>().unwrap() >= 4, "the queue's, its listener's, the worker's: {connections}");
    assert_eq!(all, over_tls, "every connection over TLS");
    let _ = stop.send(true);
    task.await.unwrap();

    // A certificate from a CA not trusted, or checked against the system's
    // CAs (sslmode=require), is refused, with the reason.
    for refused in [
        format!("{url}?sslrootcert={}", other.display()),
        format!("{url}?sslmode=require&sslrootcert=system"),
        format!("{url}?sslmode=require"),
    ] {
        let Err(e) = Queue::connect(&refused).await else { panic!("{refused} connected") };
        let message = format!("{e:#}");
        assert!(message.contains("connecting to the database"), "{message}");
        assert!(message.contains("certificate") && message.contains("UnknownIssuer"), "{refused}: {message}");
    }
    // A CA file that is not there is named.
    let missing = format!("{url}?sslmode=require&sslrootcert={}", dir.path().join("missing.pem").display());
    let Err(e) = Queue::connect(&missing).await else { panic!("no CA file") };
    assert!(e.to_string().contains("missing.pem"), "{e}");
}

/// A CPU server on `dir` keeping its jobs in the cluster's database.
async fn cluster_server(dir: &std::path::Path, url: &str, runners: usize) -> causality_vm::service::server::Running {
    let mut options = crate::support::options(dir, runners);
    options.queue = Some(url.to_string());
    options.lease = Duration::from_secs(5);
    causality_vm::service::server::start(options).await.expect("starting a cluster server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_on_one_database_accept_and_answer_for_each_others_jobs() {
    let Some(url) = database("servers") else { return };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Server A runs nothing itself: its jobs wait for the cluster's workers.
    let a = cluster_server(dir_a.path(), &url, 0).await;
    let mut client_a = crate::support::unix_client(&a).await;
    let queued = client_a.submit("to-cancel", hash_payload(&[b"never run"]), 0, None).await.unwrap();
    let kept = client_a.submit("kept", hash_payload(&[b"kept"]), 0, None).await.unwrap();
    assert_eq!((queued.queue_position, kept.queue_position), (0, 1));
    assert_eq!(client_a.cancel(queued.job_id).await.unwrap().state(), JobState::Cancelled);
    let status = client_a.status().await.unwrap();
    let hash = status.kinds.iter().find(|k| k.kind() == JobKind::Hash).unwrap();
    assert_eq!((hash.queued, hash.running), (1, 0));
    // A malformed batch job is refused, nothing queued.
    let batch = causality_vm::service::proto::JobPayload {
        kind: Some(causality_vm::service::proto::job_payload::Kind::ExecuteBatch(Default::default())),
    };
    let refused = client_a.submit("batch", batch, 0, None).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");

    // Server B's runners take A's job; A's client hears it end.
    let b = cluster_server(dir_b.path(), &url, 2).await;
    let mut client_b = crate::support::unix_client(&b).await;
    let job = client_a.wait(kept.job_id).await.unwrap();
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    let Some(job_result::Kind::Hash(hashes)) = job.result.clone().and_then(|r| r.kind) else { panic!("a hash result") };
    assert_eq!(hashes.digests, vec![blake3::hash(b"kept").as_bytes().to_vec()]);
    assert_eq!(client_b.get(kept.job_id).await.unwrap(), job);
    // The same request through B is the same job; Run on B answers at once.
    let again = client_b.submit("kept", hash_payload(&[b"kept"]), 0, None).await.unwrap();
    assert!(again.existing && again.job_id == kept.job_id);
    let conflict = client_b.submit("kept", hash_payload(&[b"other"]), 0, None).await.unwrap_err();
    assert_eq!(conflict.code(), tonic::Code::AlreadyExists);
    let ran = client_a.run("run-on-a", merkle_payload(&[[7; 32], [9; 32]]), 0, None).await.unwrap();
    let Some(job_result::Kind::MerkleRoot(root)) = ran.result.and_then(|r| r.kind) else { panic!("a root") };
    assert_eq!(root.root, HashPool::new().merkle_root(&[[7; 32], [9; 32]]).unwrap().to_vec());
    let listed = client_b.list(Default::default()).await.unwrap();
    assert_eq!(listed.iter().map(|j| j.request_id.as_str()).collect::<Vec<_>>(), vec!["run-on-a", "kept", "to-cancel"]);
    // A token allowed MSM jobs only, asking for hash jobs, lists none (the
    // queue reads an empty list of kinds as every kind).
    let key = causality_vm::service::auth::service_key(dir_b.path()).unwrap();
    let root = causality_vm::capability::CapabilityToken::mint_random(
        &key,
        causality_vm::DomainId::new(causality_vm::service::auth::SERVICE_DOMAIN),
    );
    let msm_only = root.attenuate(causality_vm::capability::Caveat::Jobs(vec![causality_vm::capability::JobKind::Msm]));
    let mut narrow = crate::support::tcp_client(&b, Some(msm_only.unwrap().to_text())).await;
    let hash_jobs = ListRequest { kinds: vec![JobKind::Hash as i32], ..ListRequest::default() };
    assert!(narrow.list(hash_jobs).await.unwrap().is_empty(), "no hash job is listed to an MSM token");
    assert!(narrow.list(ListRequest::default()).await.unwrap().is_empty(), "nor any job of another kind");
    // Status on A shows both servers: B's runners, and each one's committer of batches.
    let workers = client_a.status().await.unwrap().workers;
    assert_eq!(workers.len(), 2, "{workers:?}");
    let runs_hashes: Vec<_> = workers.iter().filter(|w| w.kinds().any(|k| k == JobKind::Hash)).collect();
    assert_eq!(runs_hashes.len(), 1, "{workers:?}");
    assert_eq!((runs_hashes[0].backend.as_str(), runs_hashes[0].jobs_done), ("cpu", 2));
    assert!(workers.iter().all(|w| w.kinds().next() == Some(JobKind::ExecuteBatch)), "{workers:?}");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// A PostgreSQL server of the test's own (to restart under a worker).
struct OwnServer {
    dir: tempfile::TempDir,
    url: String,
}

impl OwnServer {
    fn start() -> OwnServer {
        let dir = tempfile::Builder::new().prefix("cvm-own-postgres").tempdir().unwrap();
        let out = std::process::Command::new("scripts/test_postgres.sh").arg("start").arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "starting PostgreSQL: {}", String::from_utf8_lossy(&out.stderr));
        let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
        OwnServer { dir, url }
    }

    fn script(&self, command: &str) {
        let out = std::process::Command::new("scripts/test_postgres.sh").arg(command).arg(self.dir.path()).output();
        let out = out.unwrap();
        assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.script("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_and_a_client_reconnect_after_the_database_restarts() {
    // Only where the shared test server is (CI): this test starts one of its own.
    if database("restart").is_none() {
        return;
    }
    let server = OwnServer::start();
    let queue = Queue::connect(&server.url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let live = worker(&server.url, dir.path(), "survivor", Duration::from_secs(3)).await;
    let (stop, task) = run_one(live.clone());
    let payload = hash_payload(&[b"before"]).encode_to_vec();
    let before = queue.submit(&new_job("before", JobKind::Hash, &payload)).await.unwrap().id();
    assert_eq!(ended(&queue, before).await.state(), JobState::Succeeded);

    server.script("restart");
    // The client's next call reconnects (with backoff) rather than failing for good.
    let payload = hash_payload(&[b"after"]).encode_to_vec();
    let mut after = None;
    for _ in 0..50 {
        match queue.submit(&new_job("after", JobKind::Hash, &payload)).await {
            Ok(submitted) => {
                after = Some(submitted.id());
                break;
            }
            Err(e) => {
                eprintln!("submitting after the restart: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let after = after.expect("the client reconnected");
    // The worker's claims and its notifications reconnect too.
    let job = ended(&queue, after).await;
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    let _ = stop.send(true);
    task.await.unwrap();
    assert_eq!(live.jobs_done(), 2);
}

#[test]
fn cvm_worker_runs_a_front_only_servers_jobs_and_stops_cleanly() {
    use crate::cli::{cvm, run};
    use std::process::Stdio;
    let Some(url) = database("cli") else { return };
    let (code, _, err) = run(cvm(std::path::Path::new("/nonexistent")).args(["worker", "--queue", "mysql://x"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("expected a PostgreSQL URL"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let server = cvm(dir.path())
        .args(["serve", "--runners", "0", "--queue", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    crate::cli::wait_for_socket(dir.path());
    let worker_dir = tempfile::tempdir().unwrap();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let worker = cvm(worker_dir.path())
        .args(["worker", "--queue", &url, "--kinds", "hash,merkle-root", "--id", "cli-worker"])
        .args(["--metrics", &format!("127.0.0.1:{metrics_port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let job = dir.path().join("job.json");
    std::fs::write(&job, r#"{"hash": {"messages": [{"text": "abc"}]}}"#).unwrap();
    let (code, out, err) = run(cvm(dir.path()).args(["submit", "--wait"]).arg(&job));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&blake3::hash(b"abc").to_hex().to_string()), "{out}");
    let (code, out, err) = run(cvm(dir.path()).args(["--json", "status"]));
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let workers = status["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "the worker and the server's committer: {status}");
    let worker_row = workers.iter().find(|w| w["id"] == "cli-worker").expect("the worker");
    assert_eq!(worker_row["jobs_done"], 1);
    assert_eq!(worker_row["kinds"], serde_json::json!(["hash", "merkle-root"]));
    assert!(workers.iter().any(|w| w["kinds"] == serde_json::json!(["execute-batch"])), "{status}");

    // The worker's own metrics: its jobs by kind and outcome, its stages' times.
    let page = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut page = String::new();
        stream.read_to_string(&mut page).unwrap();
        page
    };
    assert!(page.contains("cvm_jobs_finished_total{kind=\"hash\",outcome=\"succeeded\"} 1"), "{page}");
    assert!(page.contains("cvm_stage_seconds_count{stage=\"hash\"} 1"), "{page}");
    unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
    let out = worker.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("worker cli-worker stopped after 1 jobs"), "{err}");
    crate::cli::stop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_proving_keys_are_shared_by_the_cluster() {
    use ark_ec::{CurveGroup, VariableBaseMSM};
    use ark_serialize::CanonicalSerialize;
    use causality_vm::service::proto::{job_payload, msm_job, Group, JobPayload, MsmJob};
    let Some(url) = database("shared") else { return };
    let compressed = |p: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        p(&mut out);
        out
    };
    // Server A takes the upload; it runs nothing itself.
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = cluster_server(dir_a.path(), &url, 0).await;
    let mut client_a = crate::support::unix_client(&a).await;
    let (bases, scalars) = crate::msm_support::random_inputs::<ark_bn254::g1::Config>(21, 19);
    let points: Vec<Vec<u8>> =
        bases.iter().map(|b| compressed(&|out: &mut Vec<u8>| b.serialize_compressed(out).unwrap())).collect();
    let set = client_a.upload_bases(Group::G1, points).await.unwrap();
    let msm = JobPayload {
        kind: Some(job_payload::Kind::Msm(MsmJob {
            group: Group::G1 as i32,
            bases: Some(msm_job::Bases::BaseSetId(set.base_set_id.clone())),
            scalars: scalars
                .iter()
                .map(|s| compressed(&|out: &mut Vec<u8>| s.serialize_compressed(out).unwrap()))
                .collect(),
        })),
    };
    let accepted = client_a.submit("msm", msm.clone(), 0, None).await.unwrap();
    let witnesses = vec![crate::prove_support::create(1), crate::prove_support::transfer(10)];
    let doc = crate::prove_ops::document(&witnesses);
    let first = client_a.submit("prove-1", crate::prove_ops::payload(&doc, 2), 0, None).await.unwrap();

    // Worker B (its own data dir) fetches the base set, and publishes its key set.
    let worker_b = worker(&url, dir_b.path(), "b", Duration::from_secs(10)).await;
    let (stop, task) = run_one(worker_b.clone());
    let job = client_a.wait(accepted.job_id).await.unwrap();
    let Some(job_result::Kind::Msm(point)) = job.result.and_then(|r| r.kind) else {
        panic!("an MSM result: {:?}", job.error)
    };
    let expected = ark_bn254::G1Projective::msm(&bases, &scalars).unwrap().into_affine();
    assert_eq!(point.point, compressed(&|out: &mut Vec<u8>| expected.serialize_compressed(out).unwrap()));
    let proved_by_b = client_a.wait(first.job_id).await.unwrap();
    let _ = stop.send(true);
    task.await.unwrap();

    // Server C (another data dir, its own runner) proves the next job: with B's keys, installed over none.
    let dir_c = tempfile::tempdir().unwrap();
    let c = cluster_server(dir_c.path(), &url, 1).await;
    let second = client_a.submit("prove-2", crate::prove_ops::payload(&doc, 2), 0, None).await.unwrap();
    let proved_by_c = client_a.wait(second.job_id).await.unwrap();
    let documents: Vec<serde_json::Value> = [proved_by_b, proved_by_c]
        .into_iter()
        .map(|job| {
            let Some(job_result::Kind::ProveOps(proofs)) = job.result.and_then(|r| r.kind) else {
                panic!("proofs: {:?}", job.error)
            };
            serde_json::from_str(&proofs.proofs_json).unwrap()
        })
        .collect();
    assert_eq!(documents[0]["verification_key"], documents[1]["verification_key"], "one key set in the cluster");
    for document in &documents {
        crate::prove_ops::verify_document(document);
    }
    let circuit = |dir: &std::path::Path| {
        std::fs::read(causality_vm::prove::keys::key_dir(dir, 2).join(causality_vm::prove::keys::CIRCUIT_FILE)).unwrap()
    };
    assert_eq!(circuit(dir_b.path()), circuit(dir_c.path()));
    c.shutdown().await.unwrap();

    // RemoveBases through a server removes the set from the whole cluster:
    // a new job naming it is refused, and one accepted before fails on
    // worker B, whose cached copy goes with it.
    assert!(client_a.remove_bases(&set.base_set_id).await.unwrap());
    let refused = client_a.submit("msm-after", msm.clone(), 0, None).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "as the embedded store refuses it: {refused:?}");
    assert!(refused.message().contains("not in this cluster (removed"), "{}", refused.message());
    // A retry of the job accepted while the set was there is answered with that job.
    let again = client_a.submit("msm", msm.clone(), 0, None).await.unwrap();
    assert!(again.existing && again.job_id == accepted.job_id, "{again:?}");
    let queue = Queue::connect(&url).await.unwrap();
    let stale = queue.submit(&new_job("msm-stale", JobKind::Msm, &msm.encode_to_vec())).await.unwrap().id();
    let worker_b = worker(&url, dir_b.path(), "b", Duration::from_secs(10)).await;
    let id = causality_vm::service::work::BaseSetId::parse(&set.base_set_id).unwrap();
    assert!(worker_b.engines.bases.knows(&id), "B kept its copy so far");
    let (stop, task) = run_one(worker_b.clone());
    let job = ended(&queue, stale).await;
    assert_eq!(job.state(), JobState::Failed, "{job:?}");
    assert!(job.error.unwrap().message.contains("not in this cluster"));
    assert!(!worker_b.engines.bases.knows(&id), "B's copy is gone");
    let _ = stop.send(true);
    task.await.unwrap();
    a.shutdown().await.unwrap();
}

fn batch_payload(batch: &std::path::Path, ops_per_proof: u32) -> causality_vm::service::proto::JobPayload {
    use causality_vm::service::proto::{job_payload, ExecuteBatchJob};
    causality_vm::service::proto::JobPayload {
        kind: Some(job_payload::Kind::ExecuteBatch(ExecuteBatchJob {
            batch_json: crate::batches::inline_batch(batch),
            ops_per_proof,
            ..ExecuteBatchJob::default()
        })),
    }
}

fn batch_result(job: &Job) -> serde_json::Value {
    let Some(job_result::Kind::ExecuteBatch(result)) = job.result.clone().and_then(|r| r.kind) else {
        panic!("a batch result: {job:?}")
    };
    serde_json::from_str(&result.result_json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_commit_in_order_on_their_domains_store_with_proofs_from_the_workers() {
    let Some(url) = database("batches") else { return };
    let files = tempfile::tempdir().unwrap();
    let batches = crate::batches::create_batches(files.path(), 3);
    // The reference: the same batches run one after another by `cvm run`.
    let reference = tempfile::tempdir().unwrap();
    let mut reference_roots = Vec::new();
    for batch in &batches {
        let (code, out, err) =
            crate::cli::run(crate::cli::cvm(reference.path()).args(["--json", "run", "--no-prove"]).arg(batch));
        assert_eq!(code, 0, "{err}");
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        reference_roots.push(value["metadata"]["state_root_after"].clone());
    }

    // Server A commits (no runners of its own); worker W proves.
    let (dir_a, dir_w) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = cluster_server(dir_a.path(), &url, 0).await;
    let mut client = crate::support::unix_client(&a).await;
    let mut ids = Vec::new();
    for (i, batch) in batches.iter().enumerate() {
        ids.push(client.submit(&format!("batch-{i}"), batch_payload(batch, 2), 0, None).await.unwrap().job_id);
    }
    let w = worker(&url, dir_w.path(), "prover", Duration::from_secs(10)).await;
    let (stop, task) = run_one(w.clone());
    for (i, id) in ids.iter().enumerate() {
        let job = client.wait(*id).await.unwrap();
        assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
        let result = batch_result(&job);
        assert_eq!(result["metadata"]["batch_number"], i as u64 + 1, "submission order");
        assert_eq!(result["metadata"]["state_root_after"], reference_roots[i], "batch {i}'s state root");
        assert_eq!(result["metadata"]["prove_stages"]["proofs"], 1);
        let backends = job.result.unwrap().backends;
        assert!(backends.iter().any(|b| b.stage == "prove" && b.backend == "cluster"), "{backends:?}");
    }
    // Each batch's proof was a ProveOps sub-job the worker ran.
    assert_eq!(w.jobs_done(), 3);
    let proofs = client
        .list(causality_vm::service::proto::ListRequest { kinds: vec![JobKind::ProveOps as i32], ..Default::default() })
        .await
        .unwrap();
    assert_eq!(proofs.len(), 3);
    assert!(proofs.iter().all(|j| j.request_id.starts_with("batch-") && j.request_id.contains("#proof-0-of-1-")));
    // Resubmitting names the same job; nothing commits twice.
    let again = client.submit("batch-0", batch_payload(&batches[0], 2), 0, None).await.unwrap();
    assert!(again.existing && again.job_id == ids[0]);

    // The domain is bound to A's store: server B (another store) leaves its next batch alone.
    a.shutdown().await.unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let b = cluster_server(dir_b.path(), &url, 0).await;
    let mut client_b = crate::support::unix_client(&b).await;
    let more = crate::batches::create_batches(files.path(), 4).pop().unwrap();
    let fourth = client_b.submit("batch-3", batch_payload(&more, 2), 0, None).await.unwrap().job_id;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(client_b.get(fourth).await.unwrap().state(), JobState::Queued, "not B's domain to commit");
    // A back on its store takes the domain again and commits it as batch 4.
    let a = cluster_server(dir_a.path(), &url, 0).await;
    let job = client_b.wait(fourth).await.unwrap();
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    assert_eq!(batch_result(&job)["metadata"]["batch_number"], 4);
    let _ = stop.send(true);
    task.await.unwrap();
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cancelled_while_its_proofs_are_out_cancels_them_and_commits_nothing() {
    let Some(url) = database("cancel_batch") else { return };
    let files = tempfile::tempdir().unwrap();
    let batches = crate::batches::create_batches(files.path(), 2);
    // No worker: the batch's proof waits in the queue.
    let dir = tempfile::tempdir().unwrap();
    let server = cluster_server(dir.path(), &url, 0).await;
    let mut client = crate::support::unix_client(&server).await;
    let batch = client.submit("doomed", batch_payload(&batches[0], 2), 0, None).await.unwrap().job_id;
    let proof = loop {
        let list = ListRequest { kinds: vec![JobKind::ProveOps as i32], ..Default::default() };
        if let Some(job) = client.list(list).await.unwrap().pop() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The batch job shows it waits for its proofs (the keeper records stages every third of the lease).
    let waited = tokio::time::Instant::now();
    while client.get(batch).await.unwrap().stage != "prove" {
        assert!(waited.elapsed() < Duration::from_secs(10), "{:?}", client.get(batch).await.unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.cancel(batch).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(20), client.wait(batch)).await.expect("it stops").unwrap();
    assert_eq!(ended.state(), JobState::Cancelled, "{ended:?}");
    assert!(ended.error.unwrap().message.contains("at stage prove"));
    assert_eq!(client.get(proof.job_id).await.unwrap().state(), JobState::Cancelled, "its proof job too");

    // The domain's next batch commits as its first: the cancelled one left nothing.
    let next = client.submit("next", batch_payload(&batches[0], 2), 0, None).await.unwrap().job_id;
    let dir_w = tempfile::tempdir().unwrap();
    let w = worker(&url, dir_w.path(), "prover", Duration::from_secs(10)).await;
    let (stop, task) = run_one(w.clone());
    let job = client.wait(next).await.unwrap();
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    assert_eq!(batch_result(&job)["metadata"]["batch_number"], 1);
    let _ = stop.send(true);
    task.await.unwrap();
    server.shutdown().await.unwrap();
}

/// `cvm serve --queue` on `dir` as a process (1 runner, a 2 s lease), with `env` set.
fn cluster_serve_process(dir: &std::path::Path, url: &str, env: &[(&str, &str)]) -> std::process::Child {
    serve_process(dir, url, &["--runners", "1"], env)
}

/// `cvm serve --queue` on `dir` with a 2 s lease and `args`, with `env` set,
/// once its socket answers.
fn serve_process(dir: &std::path::Path, url: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    let mut command = crate::cli::cvm(dir);
    command.args(["serve", "--lease", "2", "--queue", url]).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let child = command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    crate::cli::wait_for_socket(dir);
    child
}

#[test]
fn a_committer_killed_after_its_commit_is_taken_over_and_the_batch_commits_once() {
    let Some(url) = database("takeover") else { return };
    let files = tempfile::tempdir().unwrap();
    let batch = crate::batches::create_batches(files.path(), 1).pop().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The server dies (as a SIGKILL leaves it) right after the batch commits, before its job ends.
    let mut dying = cluster_serve_process(dir.path(), &url, &[("CVM_TEST_CRASH_AT", "batch-committed")]);
    let (code, out, err) =
        crate::cli::run(crate::cli::cvm(dir.path()).args(["--json", "submit", "--no-prove"]).arg(&batch));
    assert_eq!(code, 0, "{err}");
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["job_id"].as_u64().unwrap();
    let status = dying.wait().unwrap();
    assert!(!status.success(), "the crash point aborts the server");
    let _ = std::fs::remove_file(dir.path().join("cvm.sock"));

    // Back on the same store: the lease expires, the job is put back, and its
    // second attempt finds the commit instead of committing again.
    let server = cluster_serve_process(dir.path(), &url, &[]);
    let (code, out, err) =
        crate::cli::run(crate::cli::cvm(dir.path()).args(["--json", "jobs", "await", &id.to_string()]));
    assert_eq!(code, 0, "{err}");
    let job: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(job["result"]["value"]["batch"]["recovered_from_batch_record"], true, "{job}");
    crate::cli::stop(server);
    let (code, out, err) = crate::cli::run(crate::cli::cvm(dir.path()).args(["--json", "state", "history"]));
    assert_eq!(code, 0, "{err}");
    let history: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(history.as_array().map(Vec::len), Some(1), "one batch committed: {history}");
}

/// A `cvm worker` process on `dir` (1 runner, a 2 s lease).
fn worker_process(dir: &std::path::Path, url: &str, id: &str) -> std::process::Child {
    crate::cli::cvm(dir)
        .args(["worker", "--queue", url, "--lease", "2", "--id", id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn kill(child: &mut std::process::Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
}

/// `n` batch files of `domain` in `dir` (the example's creates, fresh nonces).
fn domain_batches(dir: &std::path::Path, domain: &str, n: usize) -> Vec<std::path::PathBuf> {
    let sub = dir.join(domain);
    std::fs::create_dir_all(&sub).unwrap();
    crate::batches::create_batches(&sub, n)
        .into_iter()
        .inspect(|path| {
            // The batch's domain and its resources' (the example's is example.bank).
            let text = std::fs::read_to_string(path).unwrap().replace("\"example.bank\"", &format!("{domain:?}"));
            let mut batch: serde_json::Value = serde_json::from_str(&text).unwrap();
            for op in batch["ops"].as_array_mut().unwrap() {
                let nonce = op["resource"]["nonce"].as_str().unwrap().to_string();
                op["resource"]["nonce"] =
                    blake3::hash(format!("{domain}/{nonce}").as_bytes()).to_hex().to_string().into();
            }
            std::fs::write(path, serde_json::to_vec_pretty(&batch).unwrap()).unwrap();
        })
        .collect()
}

/// How a job's result is checked against the single-process one.
type Check = Box<dyn Fn(&job_result::Kind)>;

/// The chaos test's processes: 2 servers (the first with a runner of its
/// own) and 3 workers, each on its own data dir; any can be killed and
/// started again on the same dir.
struct Cluster {
    url: String,
    dirs: Vec<tempfile::TempDir>,
    processes: std::sync::Mutex<Vec<std::process::Child>>,
}

impl Cluster {
    fn start(url: &str) -> Cluster {
        let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
        let cluster = Cluster { url: url.to_string(), dirs, processes: std::sync::Mutex::new(Vec::new()) };
        let processes = (0..5).map(|n| cluster.spawn(n, 0)).collect();
        *cluster.processes.lock().unwrap() = processes;
        cluster
    }

    /// Process `n` (0 and 1 the servers, 2 to 4 the workers); `life` tells its restarts apart.
    fn spawn(&self, n: usize, life: usize) -> std::process::Child {
        let dir = self.dirs[n].path();
        if n >= 2 {
            return worker_process(dir, &self.url, &format!("w{n}-{life}"));
        }
        let _ = std::fs::remove_file(dir.join("cvm.sock"));
        // Attempts enough for the havoc: a job may lose several runners to it.
        let runners = if n == 0 { "1" } else { "0" };
        serve_process(dir, &self.url, &["--runners", runners, "--max-attempts", "12"], &[])
    }

    fn socket(&self, n: usize) -> causality_vm::service::client::Endpoint {
        causality_vm::service::client::Endpoint::Unix(self.dirs[n].path().join("cvm.sock"))
    }

    /// SIGKILL processes chosen by `rng` at random moments, each started
    /// again after a random while (sometimes two are down at once), `events` times.
    fn havoc(&self, rng: &mut rand_chacha::ChaCha20Rng, events: usize) -> Vec<String> {
        use rand::Rng;
        let mut log = Vec::new();
        for life in 1..=events {
            std::thread::sleep(Duration::from_millis(rng.gen_range(50..700)));
            let first = rng.gen_range(0..5);
            let mut victims = vec![first];
            if rng.gen_bool(0.3) {
                victims.push((first + rng.gen_range(1..5)) % 5);
            }
            for &n in &victims {
                kill(&mut self.processes.lock().unwrap()[n]);
            }
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..1500)));
            for &n in &victims {
                let child = self.spawn(n, life);
                self.processes.lock().unwrap()[n] = child;
            }
            log.push(format!("{victims:?}"));
        }
        log
    }

    fn stop(&self) {
        for child in self.processes.lock().unwrap().iter_mut() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

/// Submit through whichever server answers, starting with `first`: a
/// server killed mid-accept leaves the job accepted or not, and the same
/// request id names it either way.
async fn submit_anywhere(
    cluster: &Cluster,
    clients: &mut [Option<causality_vm::service::client::Client>; 2],
    first: usize,
    request_id: &str,
    payload: causality_vm::service::proto::JobPayload,
) -> u64 {
    use causality_vm::service::client::{Client, ClientOptions};
    for attempt in 0..200 {
        let n = (first + attempt) % 2;
        if clients[n].is_none() {
            clients[n] = Client::connect(&cluster.socket(n), &ClientOptions::default()).await.ok();
        }
        if let Some(client) = &mut clients[n] {
            match client.submit(request_id, payload.clone(), 0, None).await {
                Ok(accepted) => return accepted.job_id,
                Err(_) => clients[n] = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no server accepted {request_id}");
}

#[test]
fn two_servers_and_three_workers_killed_at_random_and_restarted_run_every_job_once() {
    use ark_ec::{CurveGroup, VariableBaseMSM};
    use ark_serialize::CanonicalSerialize;
    use causality_vm::service::client::{Client, ClientOptions};
    use causality_vm::service::proto::{groth16_job, job_payload, msm_job, Group, JobPayload, MsmJob};
    use rand::SeedableRng;
    let Some(url) = database("chaos") else { return };
    let seed = std::env::var("CVM_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
    eprintln!("chaos seed {seed} (CVM_CHAOS_SEED={seed} replays these kills' choices)");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let files = tempfile::tempdir().unwrap();
    let domains = [
        ("bank-a", domain_batches(files.path(), "bank-a", 4), 2u32),
        ("bank-b", domain_batches(files.path(), "bank-b", 4), 0),
        ("bank-c", domain_batches(files.path(), "bank-c", 4), 2),
    ];
    let compressed = |p: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        p(&mut out);
        out
    };
    let cluster = Cluster::start(&url);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // Uploaded once, before the havoc: a G1 base set (through one server)
    // and a zkey (through the other); workers fetch them from the cluster.
    let (bases, _) = crate::msm_support::random_inputs::<ark_bn254::g1::Config>(seed, 64);
    let (base_set, zkey_id) = runtime.block_on(async {
        let mut a = Client::connect(&cluster.socket(0), &ClientOptions::default()).await.unwrap();
        let mut b = Client::connect(&cluster.socket(1), &ClientOptions::default()).await.unwrap();
        let points = bases.iter().map(|p| compressed(&|out: &mut Vec<u8>| p.serialize_compressed(out).unwrap()));
        let set = a.upload_bases(Group::G1, points.collect()).await.unwrap().base_set_id;
        let zkey = crate::groth16::read("multiplier.zkey");
        let zkey_id = b.upload_zkey(zkey, crate::groth16::read("multiplier.r1cs")).await.unwrap().zkey_id;
        (set, zkey_id)
    });

    // A few hundred jobs of every kind through both servers, while
    // processes die at random (some during accepts) and come back.
    let mut expected: Vec<(u64, Check)> = Vec::new();
    let kills = std::thread::scope(|scope| {
        let havoc = scope.spawn(|| cluster.havoc(&mut rng, 5));
        runtime.block_on(async {
            let mut clients = [None, None];
            for n in 0..240u32 {
                let (payload, check): (_, Check) = match n % 10 {
                    0 => {
                        let leaves: Vec<[u8; 32]> =
                            (0..=n).map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes()).collect();
                        let root = HashPool::new().merkle_root(&leaves).unwrap().to_vec();
                        (
                            merkle_payload(&leaves),
                            Box::new(move |r| assert!(matches!(r, job_result::Kind::MerkleRoot(m) if m.root == root))),
                        )
                    }
                    3 => {
                        let (_, scalars) = crate::msm_support::random_inputs::<ark_bn254::g1::Config>(n as u64, 64);
                        let sum = ark_bn254::G1Projective::msm(&bases, &scalars).unwrap().into_affine();
                        let sum = compressed(&|out: &mut Vec<u8>| sum.serialize_compressed(out).unwrap());
                        let payload = JobPayload {
                            kind: Some(job_payload::Kind::Msm(MsmJob {
                                group: Group::G1 as i32,
                                bases: Some(msm_job::Bases::BaseSetId(base_set.clone())),
                                scalars: scalars
                                    .iter()
                                    .map(|s| compressed(&|out: &mut Vec<u8>| s.serialize_compressed(out).unwrap()))
                                    .collect(),
                            })),
                        };
                        (payload, Box::new(move |r| assert!(matches!(r, job_result::Kind::Msm(m) if m.point == sum))))
                    }
                    7 => (
                        crate::groth16::payload(
                            groth16_job::Key::ZkeyId(zkey_id.clone()),
                            crate::groth16::read("multiplier.wtns"),
                        ),
                        Box::new(|r| {
                            let job_result::Kind::Groth16(result) = r else { panic!("a Groth16 result") };
                            crate::groth16::check(result);
                        }),
                    ),
                    5 if n < 40 => {
                        let witnesses =
                            vec![crate::prove_support::create(n as u8), crate::prove_support::transfer(n as u8 + 100)];
                        let doc = crate::prove_ops::document(&witnesses);
                        (
                            crate::prove_ops::payload(&doc, 2),
                            Box::new(|r| {
                                let job_result::Kind::ProveOps(p) = r else { panic!("proofs") };
                                crate::prove_ops::verify_document(&serde_json::from_str(&p.proofs_json).unwrap());
                            }),
                        )
                    }
                    _ => {
                        let message = format!("chaos {n}").into_bytes();
                        let digest = blake3::hash(&message).as_bytes().to_vec();
                        (
                            hash_payload(&[&message]),
                            Box::new(move |r| {
                                assert!(matches!(r, job_result::Kind::Hash(h) if h.digests == vec![digest.clone()]))
                            }),
                        )
                    }
                };
                let id = submit_anywhere(&cluster, &mut clients, n as usize % 2, &format!("job-{n}"), payload).await;
                expected.push((id, check));
                if n % 60 == 29 {
                    // The batches go in among the other jobs.
                    let i = n as usize / 60;
                    for (d, (domain, batches, ops)) in domains.iter().enumerate() {
                        let mut payload = batch_payload(&batches[i], (*ops).max(2));
                        if let Some(job_payload::Kind::ExecuteBatch(job)) = &mut payload.kind {
                            job.no_prove = *ops == 0;
                        }
                        let id =
                            submit_anywhere(&cluster, &mut clients, d + i, &format!("{domain}-{i}"), payload).await;
                        expected.push((
                            id,
                            Box::new(|r| {
                                let job_result::Kind::ExecuteBatch(b) = r else { panic!("a batch result") };
                                let result: serde_json::Value = serde_json::from_str(&b.result_json).unwrap();
                                // A commit whose end a kill cut off is found again by its record.
                                let succeeded = match result["recovered_from_batch_record"] == true {
                                    true => &result["record"]["success_count"],
                                    false => &result["success_count"],
                                };
                                assert_eq!(succeeded, 2, "{result}");
                            }),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        havoc.join().unwrap()
    });
    eprintln!("killed (0, 1 servers; 2 to 4 workers): {kills:?}");
    // 240 jobs, and each domain's batch i after job 60·i + 29.
    assert_eq!(expected.len(), 252);

    // Every job ends, succeeded, with the single-process result.
    let jobs: Vec<Job> = runtime.block_on(async {
        let mut client = Client::connect(&cluster.socket(0), &ClientOptions::default()).await.unwrap();
        let mut jobs = Vec::new();
        for (id, check) in &expected {
            let job =
                tokio::time::timeout(Duration::from_secs(300), client.wait(*id)).await.expect("the job ended").unwrap();
            assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
            check(job.result.as_ref().and_then(|r| r.kind.as_ref()).expect("a result"));
            jobs.push(job);
        }
        jobs
    });
    let retried: Vec<_> = jobs.iter().filter(|j| j.attempts > 1).map(|j| (&j.request_id, j.attempts)).collect();
    eprintln!("retried after the kills: {retried:?}");
    cluster.stop();
    // Each store committed each batch once, each domain in submission order,
    // and its state equals a reference run of the same batches in its order.
    let mut committed = 0;
    for (n, store) in cluster.dirs[..2].iter().enumerate() {
        let (code, out, err) =
            crate::cli::run(crate::cli::cvm(store.path()).args(["--json", "state", "history", "--limit", "100"]));
        assert_eq!(code, 0, "{err}");
        let mut history: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        history.reverse();
        let ids: Vec<&str> = history.iter().map(|b| b["request_id"].as_str().unwrap()).collect();
        let unique: std::collections::HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "a batch committed twice: {ids:?}");
        for (domain, _, _) in &domains {
            let order: Vec<&str> = ids.iter().copied().filter(|id| id.starts_with(domain)).collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(order, sorted, "{domain}'s batches in submission order");
        }
        let reference = tempfile::tempdir().unwrap();
        for id in &ids {
            let (domain, i) = id.rsplit_once('-').unwrap();
            let batch = &domains.iter().find(|(d, _, _)| d == &domain).unwrap().1[i.parse::<usize>().unwrap()];
            let (code, _, err) =
                crate::cli::run(crate::cli::cvm(reference.path()).args(["run", "--no-prove"]).arg(batch));
            assert_eq!(code, 0, "{err}");
        }
        if let Some(last) = history.last() {
            let (code, out, err) =
                crate::cli::run(crate::cli::cvm(reference.path()).args(["--json", "state", "history", "--limit", "1"]));
            assert_eq!(code, 0, "{err}");
            let reference: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
            assert_eq!(reference[0]["state_root_after"], last["state_root_after"], "store {n}'s state");
        }
        committed += ids.len();
    }
    assert_eq!(committed, 12, "every batch committed once across the stores");
}

/// A server whose store was proven with its own key set keeps it when it
/// joins a cluster: the cluster takes it where it has none (a worker's
/// cache then installs it), and a server whose set differs from the
/// cluster's is refused at start, its keys untouched, rather than having
/// them replaced and its batches left unverifiable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_joining_a_cluster_keeps_the_key_set_its_store_was_proven_with() {
    use causality_vm::prove::keys::{key_dir, VERIFYING_KEY_FILE};
    let Some(url) = database("keysets") else { return };
    let own_keys = |dir: &std::path::Path, with_store: bool| {
        if with_store {
            causality_vm::store::RegisterStore::open(dir).unwrap().close().unwrap();
        }
        let (code, out, err) = crate::cli::run(crate::cli::cvm(dir).args(["setup", "--ops-per-proof", "1"]));
        assert_eq!(code, 0, "{out}{err}");
        std::fs::read(key_dir(dir, 1).join(VERIFYING_KEY_FILE)).unwrap()
    };
    let (first, second, cache) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first_vk = own_keys(first.path(), true);
    let server = cluster_server(first.path(), &url, 0).await;
    // A worker with keys of its own (a cache: no store) takes the cluster's, the server's.
    let cache_vk = own_keys(cache.path(), false);
    assert_ne!(cache_vk, first_vk);
    let w = worker(&url, cache.path(), "cache", Duration::from_secs(10)).await;
    w.offer_key_sets().await.unwrap();
    assert_eq!(std::fs::read(key_dir(cache.path(), 1).join(VERIFYING_KEY_FILE)).unwrap(), first_vk);
    // A second store with its own set is refused, and keeps its keys.
    let second_vk = own_keys(second.path(), true);
    let mut options = crate::support::options(second.path(), 0);
    options.queue = Some(url.clone());
    let Err(refused) = causality_vm::service::server::start(options).await else {
        panic!("a server whose key set is not the cluster's started")
    };
    assert!(refused.to_string().contains("own key set for 1 ops per proof"), "{refused}");
    assert_eq!(std::fs::read(key_dir(second.path(), 1).join(VERIFYING_KEY_FILE)).unwrap(), second_vk);
    assert_eq!(std::fs::read(key_dir(first.path(), 1).join(VERIFYING_KEY_FILE)).unwrap(), first_vk);
    server.shutdown().await.unwrap();
}

/// A cluster's queued job whose deadline passes ends then, `DEADLINE_EXCEEDED`,
/// with no worker to claim it: its watchers hear its end and its place in
/// the queue is free again. A server's stop ends the Await streams open on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_cluster_job_past_its_deadline_ends_and_frees_its_place() {
    let Some(url) = database("deadline") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut options = crate::support::options(dir.path(), 0);
    options.queue = Some(url.clone());
    options.queue_depth = 1;
    let server = causality_vm::service::server::start(options).await.unwrap();
    let mut client = crate::support::unix_client(&server).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let soon = client.submit("soon", hash_payload(&[b"late"]), 0, Some(now + 1500)).await.unwrap();
    // The queue is full until the deadline passes.
    let full = client.submit("next", hash_payload(&[b"next"]), 0, None).await.unwrap_err();
    assert_eq!(full.code(), tonic::Code::ResourceExhausted, "{full:?}");
    let ended = tokio::time::timeout(Duration::from_secs(30), client.wait(soon.job_id)).await.unwrap().unwrap();
    assert_eq!(ended.state(), JobState::Failed, "{ended:?}");
    assert_eq!(ended.error.unwrap().code, "DEADLINE_EXCEEDED");
    let next = client.submit("next", hash_payload(&[b"next"]), 0, None).await.unwrap();
    // A stop ends an open Await at once, naming where the job is kept.
    let mut events = client.events(next.job_id).await.unwrap();
    assert_eq!(events.message().await.unwrap().unwrap().state(), JobState::Queued);
    let waiting = tokio::spawn(async move { events.message().await });
    server.shutdown().await.unwrap();
    let err = waiting.await.unwrap().unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("kept in the cluster's queue"), "{}", err.message());
}
