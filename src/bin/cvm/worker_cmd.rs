//! `cvm worker`: claim and run a cluster's compute jobs from PostgreSQL
//! until SIGTERM or SIGINT (docs/SCALE_OUT.md).

use std::time::Duration;

use anyhow::Context;
use causality_vm::service::cluster::worker::{Worker, WorkerOptions};

use crate::client_cmd::parse_kind;
use crate::serve_cmd::queue_url;
use crate::Globals;

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// The cluster's PostgreSQL database (the one its servers were started with).
    #[arg(long, value_name = "postgres://…", env = "CVM_QUEUE")]
    pub queue: String,
    /// The job kinds to take, comma-separated (prove-ops, hash, merkle-root, msm, groth16); default all.
    #[arg(long, value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Jobs run side by side.
    #[arg(long, default_value_t = 1)]
    pub runners: usize,
    /// How long a claimed job's lease lasts without renewal, in seconds
    /// (renewed every third of it).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub lease: u64,
    /// This worker's name in the cluster (default: host, process id and a random tag).
    #[arg(long)]
    pub id: Option<String>,
    /// Serve Prometheus text metrics on http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<std::net::SocketAddr>,
}

pub fn run(globals: &Globals, args: WorkerArgs) -> anyhow::Result<i32> {
    let mut options = WorkerOptions::new(queue_url(&args.queue)?, globals.data_dir());
    if !args.kinds.is_empty() {
        options.kinds = args.kinds.iter().map(|k| parse_kind(k)).collect::<anyhow::Result<_>>()?;
    }
    let max_runners = causality_vm::service::server::MAX_RUNNERS;
    if !(1..=max_runners).contains(&args.runners) {
        anyhow::bail!("--runners {}: from 1 to {max_runners}", args.runners);
    }
    crate::serve_cmd::check_lease(args.lease)?;
    if let Some(id) = &args.id {
        check_worker_id(id)?;
    }
    options.runners = args.runners;
    options.lease = Duration::from_secs(args.lease);
    options.backend = globals.backend;
    options.id = args.id;
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("creating the data dir {}", options.data_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("cvm-worker")
        .build()
        .context("starting the async runtime")?;
    let quiet = globals.quiet;
    runtime.block_on(async {
        // Bound before the worker joins: a port in use leaves no worker listed.
        let metrics_listener = match args.metrics {
            Some(address) => Some(
                tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("serving metrics on {address}"))?,
            ),
            None => None,
        };
        let worker = Worker::start(&options).await?;
        if !quiet {
            note!("worker {} taking jobs from the cluster's queue", worker.id);
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        if let Some(listener) = metrics_listener {
            if !quiet {
                note!("metrics on http://{}/metrics", listener.local_addr().context("reading the metrics address")?);
            }
            let metrics = worker.metrics.clone();
            let mut stop_metrics = stopped.clone();
            let until_stopped = async move {
                let _ = stop_metrics.wait_for(|s| *s).await;
            };
            tokio::spawn(causality_vm::service::metrics_http::serve(
                listener,
                std::sync::Arc::new(move || metrics.render()),
                until_stopped,
            ));
        }
        let running = {
            let worker = worker.clone();
            let runners = options.runners;
            tokio::spawn(async move { worker.run(runners, stopped).await })
        };
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stopping: no new jobs; running ones finish");
        let _ = stop.send(true);
        running.await.context("stopping the worker")?;
        if !quiet {
            note!("worker {} stopped after {} jobs", worker.id, worker.jobs_done());
        }
        anyhow::Ok(0)
    })
}

/// A worker's name as `cvm status` lists it: 1 to 128 printable ASCII
/// characters, no spaces.
fn check_worker_id(id: &str) -> anyhow::Result<()> {
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        anyhow::bail!("--id {id:?}: 1 to 128 printable ASCII characters, no spaces");
    }
    Ok(())
}
