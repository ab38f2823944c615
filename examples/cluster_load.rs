//! The cluster queue's own cost per job and its scaling with workers
//! (docs/PERFORMANCE.md, docs/SCALE_OUT.md):
//!
//! ```sh
//! CVM_QUEUE=postgres://cvm@127.0.0.1:5432/postgres \
//!   cargo run --release --example cluster_load -- [JOBS] [HOLD_MS]
//! ```
//!
//! 1. Queue cost, one job at a time: submit, claim and complete on the
//!    PostgreSQL queue (three committed statements), beside the embedded
//!    store's accept and durable end (two group commits) in the same run;
//!    median and p99 of JOBS jobs each.
//! 2. Throughput with 1, 2, 4 and 8 workers, each job holding its worker
//!    HOLD_MS (standing for a proof on a GPU, so the queue's scaling is
//!    measured without 8 GPUs), as a ratio to one worker.
//!
//! Each run makes a database of its own on the server `CVM_QUEUE` names.

use std::time::{Duration, Instant};

use causality_vm::service::cluster::{NewJob, Queue};
use causality_vm::service::journal::{Accepted, JobRecord, Journal};
use causality_vm::service::proto::{Job, JobError, JobKind, JobResult, JobState};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let jobs: usize = args.get(1).map_or(Ok(1000), |a| a.parse())?;
    let hold = Duration::from_millis(args.get(2).map_or(Ok(20), |a| a.parse())?);
    let server = std::env::var("CVM_QUEUE").map_err(|_| "set CVM_QUEUE to a PostgreSQL URL")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let url = fresh_database(&server).await?;
        println!("queue cost per job, {jobs} jobs one at a time:");
        let cluster = cluster_costs(&url, jobs).await?;
        let embedded = tokio::task::spawn_blocking(move || embedded_costs(jobs)).await?.map_err(|e| e.to_string())?;
        report("  PostgreSQL: submit + claim + complete", &cluster);
        report("  embedded store: accept + end", &embedded);
        println!("  ratio of medians: {:.2}", median(&cluster).as_secs_f64() / median(&embedded).as_secs_f64());
        println!("throughput, jobs holding a worker {hold:?} each:");
        let mut one = None;
        for workers in [1usize, 2, 4, 8] {
            let url = fresh_database(&server).await?;
            let rate = throughput(&url, workers, 8 * workers.max(2) * 4, hold).await?;
            let base = *one.get_or_insert(rate);
            println!("  {workers} workers: {rate:.1} jobs/s, {:.2}x one worker (ideal {workers}x)", rate / base);
        }
        Ok(())
    })
}

/// A new, empty database on the server `server` names; its URL.
async fn fresh_database(server: &str) -> Result<String, Box<dyn std::error::Error>> {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let name = format!("cvm_load_{}_{:08x}", std::process::id(), rand::random::<u32>());
    client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    let (base, _) = server.rsplit_once('/').ok_or("a URL ending in /DATABASE")?;
    Ok(format!("{base}/{name}"))
}

fn new_job<'a>(request_id: &'a str, payload: &'a [u8]) -> NewJob<'a> {
    NewJob {
        request_id,
        kind: JobKind::Hash,
        priority: 0,
        deadline_unix_ms: 0,
        max_attempts: 3,
        key_set: "",
        domain: "",
        payload,
    }
}

/// Each job's submit, claim and complete, one job at a time.
async fn cluster_costs(url: &str, jobs: usize) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let queue = Queue::connect(url).await?;
    let payload = vec![7u8; 1024];
    let done: Result<JobResult, JobError> = Ok(JobResult::default());
    let mut costs = Vec::with_capacity(jobs);
    for n in 0..jobs {
        let started = Instant::now();
        queue.submit(&new_job(&format!("cost-{n}"), &payload)).await?;
        let claimed = queue.claim("bench", &[JobKind::Hash], &[], Duration::from_secs(30)).await?.ok_or("a job")?;
        let ended = queue.complete(claimed.job.job_id, "bench", claimed.job.attempts, "", &done).await?;
        costs.push(started.elapsed());
        assert!(ended);
    }
    Ok(costs)
}

/// The embedded store's accept and durable end of each job, one at a time.
fn embedded_costs(jobs: usize) -> Result<Vec<Duration>, Box<dyn std::error::Error + Send + Sync>> {
    let dir = tempfile::tempdir()?;
    let journal = Journal::open(dir.path())?;
    let payload = vec![7u8; 1024];
    let mut costs = Vec::with_capacity(jobs);
    for n in 0..jobs {
        let started = Instant::now();
        let job = Job {
            request_id: format!("cost-{n}"),
            kind: JobKind::Hash as i32,
            state: JobState::Queued as i32,
            ..Job::default()
        };
        let record = JobRecord { job, payload_digest: *blake3::hash(&payload).as_bytes(), batch_head: 0 };
        let Accepted::New(id) = journal.accept(record.clone(), payload.clone())? else {
            return Err("a new job".into());
        };
        let mut ended = record;
        ended.job.job_id = id;
        ended.job.set_state(JobState::Succeeded);
        journal.update(&ended, Some(JobResult::default()), true)?;
        costs.push(started.elapsed());
    }
    journal.close();
    Ok(costs)
}

/// Jobs per second with `workers` claiming `jobs` jobs that each hold their worker `hold`.
async fn throughput(url: &str, workers: usize, jobs: usize, hold: Duration) -> Result<f64, Box<dyn std::error::Error>> {
    let queue = Queue::connect(url).await?;
    let payload = vec![7u8; 1024];
    for n in 0..jobs {
        queue.submit(&new_job(&format!("load-{n}"), &payload)).await?;
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let queue = Queue::connect(&url).await.expect("connecting");
            let name = format!("worker-{w}");
            let done: Result<JobResult, JobError> = Ok(JobResult::default());
            let mut ran = 0usize;
            while let Some(claimed) =
                queue.claim(&name, &[JobKind::Hash], &[], Duration::from_secs(30)).await.expect("claiming")
            {
                tokio::time::sleep(hold).await;
                let job = &claimed.job;
                assert!(queue.complete(job.job_id, &name, job.attempts, "", &done).await.expect("completing"));
                ran += 1;
            }
            ran
        }));
    }
    let mut ran = 0;
    for task in tasks {
        ran += task.await?;
    }
    assert_eq!(ran, jobs, "every job ran once");
    Ok(jobs as f64 / started.elapsed().as_secs_f64())
}

fn median(costs: &[Duration]) -> Duration {
    percentile(costs, 0.5)
}

fn percentile(costs: &[Duration], p: f64) -> Duration {
    let mut sorted = costs.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, costs: &[Duration]) {
    println!(
        "{what}: median {:.2} ms, p99 {:.2} ms",
        median(costs).as_secs_f64() * 1e3,
        percentile(costs, 0.99).as_secs_f64() * 1e3
    );
}
