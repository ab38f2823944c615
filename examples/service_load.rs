//! Load on `cvm serve`, each figure beside the same work done in-process in
//! the same run (docs/PERFORMANCE.md records the results with the machine):
//!
//! - small jobs: `clients` concurrent clients over loopback TCP (each its own
//!   connection, with a service token), each submitting a 1 KiB hash job and
//!   awaiting its result, again and again: jobs durably accepted and
//!   completed per second, and latency percentiles (submit to result);
//!   against the in-process pool hashing the same messages;
//! - one large job: `messages` × 64-byte hash job over the Unix socket,
//!   submit to result, against the in-process pool.
//!
//! ```text
//! cargo run --release --example service_load -- [clients] [seconds] [messages]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use causality_vm::capability::CapabilityToken;
use causality_vm::service::auth::{service_key, SERVICE_DOMAIN};
use causality_vm::service::client::{Client, ClientOptions, Endpoint};
use causality_vm::service::proto::{job_payload, HashJob, HashMessage, JobPayload, JobState};
use causality_vm::service::server::start;
use causality_vm::service::ServeOptions;
use causality_vm::{Backend, DomainId, HashPool};

/// The server allocates as the `cvm` binary does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../src/bin/cvm/allocator.rs"]
mod allocator;

fn hash_job(messages: Vec<Vec<u8>>) -> JobPayload {
    let messages = messages.into_iter().map(|data| HashMessage { data, mode: None }).collect();
    JobPayload { kind: Some(job_payload::Kind::Hash(HashJob { messages, ..HashJob::default() })) }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn in_process_jobs_per_second(message: &[u8], seconds: f64) -> f64 {
    let started = Instant::now();
    let mut jobs = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        let mut pool = HashPool::new();
        let handle = pool.hash(message);
        pool.flush().unwrap();
        std::hint::black_box(pool.get(handle));
        jobs += 1;
    }
    jobs as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    allocator::configure();
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("arguments are numbers"));
    let clients = args.next().unwrap_or(64);
    let seconds = args.next().unwrap_or(10) as f64;
    let messages = args.next().unwrap_or(1 << 20);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let mut options = ServeOptions::new(dir.path());
        options.backend = Backend::Cpu;
        options.tcp = Some("127.0.0.1:0".parse().unwrap());
        options.max_message_bytes = 1 << 30;
        let server = start(options).await.unwrap();
        let token = CapabilityToken::mint_random(&service_key(dir.path()).unwrap(), DomainId::new(SERVICE_DOMAIN)).to_text();
        let tcp = Endpoint::Tcp { uri: format!("http://{}", server.tcp.unwrap()), tls: false };

        // Small jobs from many clients.
        let message = vec![0x5au8; 1024];
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let mut tasks = Vec::new();
        let started = Instant::now();
        for c in 0..clients {
            let tcp = tcp.clone();
            let token = token.clone();
            let message = message.clone();
            tasks.push(tokio::spawn(async move {
                let mut client =
                    Client::connect(&tcp, &ClientOptions { token: Some(token), ..Default::default() }).await.unwrap();
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let mut m = message.clone();
                    m[..8].copy_from_slice(&n.to_le_bytes());
                    let job = client.run(&format!("c{c}-{n}"), hash_job(vec![m]), 0, None).await.unwrap();
                    assert_eq!(job.state(), JobState::Succeeded);
                    latencies.push(t.elapsed());
                    n += 1;
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.unwrap());
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort();
        let served = latencies.len() as f64 / elapsed;
        let local = tokio::task::spawn_blocking(move || in_process_jobs_per_second(&vec![0x5au8; 1024], 2.0)).await.unwrap();
        println!(
            "small 1 KiB hash jobs, {clients} clients over loopback TCP: {served:.0} jobs/s durably accepted and completed \
             (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms); in-process pool {local:.0} jobs/s; ratio {:.4}",
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.last().unwrap().as_secs_f64() * 1e3,
            served / local
        );

        // One large job, packed: the messages end to end in one buffer.
        let mut data = vec![0u8; messages * 64];
        for (i, m) in data.chunks_exact_mut(64).enumerate() {
            m[..8].copy_from_slice(&(i as u64).to_le_bytes());
        }
        let data = Arc::new(data);
        let local_data = data.clone();
        let local = tokio::task::spawn_blocking(move || {
            let mut best = Duration::MAX;
            for _ in 0..3 {
                let t = Instant::now();
                let mut pool = HashPool::new();
                let range = pool.hash_fixed(&local_data, 64).unwrap();
                pool.flush().unwrap();
                std::hint::black_box(pool.get_range(range).unwrap().as_flattened().to_vec());
                best = best.min(t.elapsed());
            }
            best
        })
        .await
        .unwrap();
        let mut unix = Client::connect(&Endpoint::Unix(server.socket.clone()), &ClientOptions::default()).await.unwrap();
        let payload = JobPayload {
            kind: Some(job_payload::Kind::Hash(HashJob { messages: Vec::new(), packed: data.to_vec(), message_len: 64 })),
        };
        let mut best = Duration::MAX;
        for round in 0..3 {
            let t = Instant::now();
            let job = unix.run(&format!("big-{round}"), payload.clone(), 0, None).await.unwrap();
            assert_eq!(job.state(), JobState::Succeeded);
            best = best.min(t.elapsed());
        }
        println!(
            "one {messages} x 64-byte hash job (packed) over the Unix socket: {:.1} ms submit to result; in-process pool {:.1} ms; ratio {:.3}",
            best.as_secs_f64() * 1e3,
            local.as_secs_f64() * 1e3,
            local.as_secs_f64() / best.as_secs_f64()
        );
        server.shutdown().await.unwrap();
    });
}
