//! Starting and stopping the server: the job store and engines, the
//! runners, the listeners (a Unix socket in the data dir, TCP on request),
//! health, reflection and metrics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::codegen::http;
use tonic::service::Routes;
use tonic::transport::Server;

use super::api::Api;
use super::auth::{Auth, Authenticator};
use super::core::{Core, BATCH_KINDS, COMPUTE_KINDS};
use super::error::io;
pub use super::error::ServeError;
use super::journal::Journal;
use super::proto::accelerator_server::AcceleratorServer;
use super::proto::FILE_DESCRIPTOR_SET;
use super::scheduler::Scheduler;
use super::work::batch::BatchRunner;
use super::work::Engines;
use crate::Backend;

/// How the server runs (`cvm serve`'s flags).
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub data_dir: PathBuf,
    /// Also listen on TCP here (the Unix socket is always there).
    pub tcp: Option<SocketAddr>,
    /// Serve Prometheus text metrics on `http://ADDR/metrics`.
    pub metrics: Option<SocketAddr>,
    /// Jobs each kind's queue holds; past it, Submit is RESOURCE_EXHAUSTED.
    pub queue_depth: usize,
    /// The largest request accepted, in bytes.
    pub max_message_bytes: usize,
    /// How long ended jobs and their results are kept.
    pub result_ttl: Duration,
    pub backend: Backend,
    /// Threads running compute jobs (hash, Merkle, MSM) side by side (0:
    /// none; jobs wait in their queues, as tests of queueing want).
    pub runners: usize,
    /// TCP's credentials and TLS.
    pub auth: Auth,
    /// Keep jobs in this PostgreSQL database (`postgres://…`) instead of the
    /// embedded job store: every server and `cvm worker` on it shares them.
    pub queue: Option<String>,
    /// With `queue`: how long a claim holds without renewal, and the
    /// attempts a job gets before a lost lease fails it.
    pub lease: Duration,
    pub max_attempts: u32,
    /// Batch jobs dated further than this many seconds from the server's
    /// clock are refused at submit (None: no limit).
    pub max_clock_skew: Option<u64>,
}

impl ServeOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> ServeOptions {
        ServeOptions {
            data_dir: data_dir.into(),
            tcp: None,
            metrics: None,
            queue_depth: 10_000,
            max_message_bytes: 256 << 20,
            result_ttl: Duration::from_secs(24 * 3600),
            backend: Backend::Auto,
            runners: 2,
            auth: Auth::default(),
            queue: None,
            lease: Duration::from_secs(30),
            max_attempts: 3,
            max_clock_skew: Some(crate::batch::file::DEFAULT_MAX_CLOCK_SKEW),
        }
    }
}

/// How long a stop waits for open connections to finish their calls.
const DRAIN: Duration = Duration::from_secs(10);

/// The Unix socket of the server on `data_dir`.
pub fn socket_in(data_dir: &Path) -> PathBuf {
    data_dir.join("cvm.sock")
}

/// A started server: where it listens, and how to stop it.
pub struct Running {
    pub socket: PathBuf,
    pub tcp: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    pub core: Arc<Core>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), ServeError>>>,
    runners: Vec<std::thread::JoinHandle<()>>,
    /// The data dir's server lock, held while the socket is this server's.
    lock: std::fs::File,
}

impl Running {
    /// Stop accepting, let running jobs end, close the job store.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        // Runners take no more jobs (queued ones stay queued for the next
        // start); open Await streams end; listeners stop accepting.
        self.core.scheduler.close();
        let _ = self.stop.send(true);
        let mut first_error = None;
        for mut task in self.tasks {
            // Connections get a while to finish their calls, then are cut.
            let joined = match tokio::time::timeout(DRAIN, &mut task).await {
                Ok(joined) => joined,
                Err(_) => {
                    tracing::warn!("connections still open {DRAIN:?} after the stop: closing them");
                    task.abort();
                    continue;
                }
            };
            match joined {
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(e) => first_error = first_error.or(Some(ServeError::Config(format!("a listener failed: {e}")))),
                Ok(Ok(())) => {}
            }
        }
        let runners = self.runners;
        let core = self.core;
        let (socket, lock) = (self.socket, self.lock);
        tokio::task::spawn_blocking(move || {
            for runner in runners {
                let _ = runner.join();
            }
            let _ = std::fs::remove_file(&socket);
            core.journal.close();
            drop(lock);
        })
        .await
        .map_err(|e| ServeError::Config(format!("stopping the runners: {e}")))?;
        first_error.map_or(Ok(()), Err)
    }
}

/// Start the server; it runs until [`Running::shutdown`].
pub async fn start(options: ServeOptions) -> Result<Running, ServeError> {
    if let Some(tcp) = options.tcp {
        options.auth.check_listen(tcp)?;
    }
    // Everything that can refuse the start (another server on the socket,
    // TLS files, ports taken) is checked before the stores open: a start
    // that fails must not have started (and so counted a start of) any
    // queued job, nor leave its socket behind.
    if options.data_dir.exists() && !options.data_dir.is_dir() {
        return Err(ServeError::Config(format!("the data dir {} is not a directory", options.data_dir.display())));
    }
    if options.runners > MAX_RUNNERS {
        return Err(ServeError::Config(format!("--runners {}: at most {MAX_RUNNERS}", options.runners)));
    }
    crate::fsutil::create_dir_durably(&options.data_dir)
        .map_err(io(format!("creating the data dir {}", options.data_dir.display())))?;
    let lock = lock_data_dir(&options.data_dir)?;
    // The same lock, held until a failed start has removed its socket.
    let held = lock.try_clone().map_err(io("holding the data dir's lock".to_string()))?;
    // Under the lock: a first start makes the service key, which two
    // servers starting at once must not both write.
    let authenticator = match options.tcp {
        Some(_) => Some(Arc::new(Authenticator::new(&options.data_dir, &options.auth)?)),
        None => None,
    };
    let socket = socket_in(&options.data_dir);
    let unix = bind_unix(&socket)?;
    let started = start_bound(options, authenticator, unix, lock, socket.clone()).await;
    if started.is_err() {
        let _ = std::fs::remove_file(&socket);
    }
    drop(held);
    started
}

/// [`start`], its Unix socket bound.
async fn start_bound(
    options: ServeOptions,
    authenticator: Option<Arc<Authenticator>>,
    unix: tokio::net::UnixListener,
    lock: std::fs::File,
    socket: std::path::PathBuf,
) -> Result<Running, ServeError> {
    let tcp = match options.tcp {
        Some(addr) => Some((tcp_builder(&options.auth)?, bind_tcp(addr, "listening on").await?)),
        None => None,
    };
    let tcp_addr = match &tcp {
        Some((_, listener)) => Some(listener.local_addr().map_err(io("reading the TCP address"))?),
        None => None,
    };
    let metrics = match options.metrics {
        Some(addr) => Some(bind_tcp(addr, "metrics on").await?),
        None => None,
    };
    let metrics_addr = match &metrics {
        Some(listener) => Some(listener.local_addr().map_err(io("reading the metrics address"))?),
        None => None,
    };
    // Opening the job store and the register store blocks: off the async threads.
    let (core, options) = tokio::task::spawn_blocking(move || open_core(&options).map(|c| (c, options)))
        .await
        .map_err(|e| ServeError::Config(format!("starting: {e}")))??;
    let core = Arc::new(core);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    #[cfg(feature = "postgres")]
    let cluster = match &options.queue {
        Some(url) => Some(cluster::start(url, &core, &options, stopped.clone(), &mut tasks).await?),
        None => None,
    };
    #[cfg(not(feature = "postgres"))]
    if options.queue.is_some() {
        return Err(ServeError::Config("--queue needs a cvm built with the `postgres` feature".into()));
    }

    let api = Api {
        core: core.clone(),
        stopping: stopped.clone(),
        #[cfg(feature = "postgres")]
        cluster,
    };
    let routes = match routes(api, &options, authenticator.clone()).await {
        Ok(routes) => routes,
        Err(e) => {
            // A cluster's worker and listener may have started: stopped.
            let _ = stop.send(true);
            return Err(e);
        }
    };
    let signal = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };

    let incoming = tokio_stream::wrappers::UnixListenerStream::new(unix);
    let service = SizeLimit { inner: routes.clone().prepare(), limit: options.max_message_bytes };
    let stop_unix = signal(stopped.clone());
    tasks.push(tokio::spawn(async move {
        Server::builder().serve_with_incoming_shutdown(service, incoming, stop_unix).await.map_err(ServeError::from)
    }));

    if let Some((builder, listener)) = tcp {
        let service = SizeLimit { inner: routes.clone().prepare(), limit: options.max_message_bytes };
        let stop_tcp = signal(stopped.clone());
        // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs hold each
        // small response ~40 ms.
        let incoming = tonic::transport::server::TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(60)));
        tasks.push(tokio::spawn(async move {
            builder.serve_with_incoming_shutdown(service, incoming, stop_tcp).await.map_err(ServeError::from)
        }));
    }

    if let Some(listener) = metrics {
        let scraped = core.clone();
        let render = Arc::new(move || {
            for kind in super::core::SERVED_KINDS {
                let load = scraped.scheduler.load(kind);
                scraped.metrics.load(super::core::kind_name(kind), load.queued, load.running);
            }
            scraped.metrics.render()
        });
        tasks.push(tokio::spawn(super::metrics_http::serve(listener, render, signal(stopped.clone()))));
    }

    let expiring = core.clone();
    tasks.push(expire_now_and_then(core.result_ttl, stopped.clone(), move || {
        let core = expiring.clone();
        async move {
            let expired = tokio::task::spawn_blocking(move || core.expire()).await;
            expired.map_err(|e| e.to_string())?.map(|_| ()).map_err(|e| e.to_string())
        }
    }));

    // Queued jobs past their deadline end when it passes, not when a runner reaches them.
    let sweeping = core.clone();
    let mut stopped_sweep = stopped.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(DEADLINE_SWEEP) => {}
                _ = stopped_sweep.wait_for(|s| *s) => return Ok(()),
            }
            let core = sweeping.clone();
            let _ = tokio::task::spawn_blocking(move || core.end_expired()).await;
        }
    }));

    // Last, once nothing can fail: the runners start the queued jobs.
    let local_runners = local_runners(&options);
    let mut runners: Vec<_> = (0..local_runners)
        .map(|n| {
            let core = core.clone();
            std::thread::Builder::new()
                .name(format!("cvm-runner-{n}"))
                .spawn(move || core.run_jobs(&COMPUTE_KINDS))
                .expect("spawning a runner")
        })
        .collect();
    if local_runners > 0 {
        let core = core.clone();
        let batches = std::thread::Builder::new().name("cvm-batches".into()).spawn(move || core.run_jobs(&BATCH_KINDS));
        runners.push(batches.expect("spawning the batch runner"));
    }

    Ok(Running { socket, tcp: tcp_addr, metrics: metrics_addr, core, stop, tasks, runners, lock })
}

/// The most runner threads a server starts (each runs one job at a time).
pub const MAX_RUNNERS: usize = 1024;

/// How often queued jobs are looked over for deadlines that passed.
const DEADLINE_SWEEP: Duration = Duration::from_millis(200);

async fn bind_tcp(addr: std::net::SocketAddr, what: &str) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr).await.map_err(io(format!("{what} {addr}")))
}

/// The TCP server, with TLS when the options name a certificate: its files
/// are read and checked here, so a bad one refuses the start naming them.
fn tcp_builder(auth: &super::auth::Auth) -> Result<Server, ServeError> {
    let Some(tls) = auth.tls_config()? else {
        return Ok(Server::builder());
    };
    Server::builder().tls_config(tls).map_err(|e| {
        let name = |p: &Option<std::path::PathBuf>| p.as_deref().map_or("-".into(), |p| p.display().to_string());
        ServeError::Config(format!(
            "the TLS certificate {} with key {}{}: {}",
            name(&auth.tls_cert),
            name(&auth.tls_key),
            auth.client_ca.as_ref().map_or(String::new(), |ca| format!(" and client CA {}", ca.display())),
            super::error::with_causes(&e)
        ))
    })
}

/// Forget ended jobs past their TTL every quarter of it (from a second to
/// an hour) with `expire`, until `stopped`.
fn expire_now_and_then<F: std::future::Future<Output = Result<(), String>> + Send + 'static>(
    ttl: Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    expire: impl Fn() -> F + Send + 'static,
) -> tokio::task::JoinHandle<Result<(), ServeError>> {
    tokio::spawn(async move {
        let period = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stopped.wait_for(|s| *s) => return Ok(()),
            }
            if let Err(e) = expire().await {
                tracing::warn!("forgetting expired jobs: {e}");
            }
        }
    })
}

/// The runners this server runs itself: none with a cluster queue, whose
/// workers run the jobs (the server's runners are the cluster's).
fn local_runners(options: &ServeOptions) -> usize {
    if options.queue.is_some() {
        0
    } else {
        options.runners
    }
}

fn open_core(options: &ServeOptions) -> Result<Core, ServeError> {
    let journal = Journal::open(&options.data_dir)?;
    let mut engines = Engines::open(&options.data_dir, options.backend).map_err(ServeError::Backend)?;
    engines.max_clock_skew = options.max_clock_skew;
    let batches = BatchRunner::open(&options.data_dir, engines.keys.clone()).map_err(|e| {
        ServeError::Config(format!("opening the register store in {}: {e}", options.data_dir.display()))
    })?;
    let core = Core::new(journal, Scheduler::new(options.queue_depth), engines, options.result_ttl, batches)
        .with_local_runners(local_runners(options));
    let recovered = core.recover()?;
    if recovered > 0 {
        tracing::info!(recovered, "queued again the jobs accepted before the last stop");
    }
    Ok(core)
}

async fn routes(api: Api, options: &ServeOptions, auth: Option<Arc<Authenticator>>) -> Result<Routes, ServeError> {
    let core = api.core.clone();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<AcceleratorServer<Api>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Config(format!("reflection: {e}")))?;
    let api = AcceleratorServer::new(api)
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(usize::MAX);
    let checker = super::auth::Interceptor { auth, metrics: core };
    let api = tonic::service::interceptor::InterceptedService::new(api, checker);
    Ok(Routes::new(health).add_service(reflection).add_service(api))
}

/// The file whose lock a server holds on its data dir for its whole life.
pub const SERVE_LOCK_FILE: &str = "serve.lock";

/// Lock the data dir for this server: two servers starting at once would
/// otherwise each take the other's socket path for stale and replace it.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, ServeError> {
    let path = dir.join(SERVE_LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServeError::Config(format!(
            "another `cvm serve` uses the data dir {} (it holds {})",
            dir.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(io(format!("locking {}", path.display()))(e)),
    }
}

/// Bind the owner-only Unix socket, replacing a stale one (a socket no
/// server answers on); anything else at its path is left alone.
fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, ServeError> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(ServeError::Config(format!(
            "{} already has a server listening: another `cvm serve` uses this data dir",
            path.display()
        )));
    }
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ServeError::Config(format!(
                "{} is not a socket: `cvm serve` replaces only a stale socket there; move it away",
                path.display()
            )));
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("removing the stale socket {}", path.display()))(e)),
    }
    // Bound in a directory only the owner can enter, made owner-only, then
    // moved into place: never reachable by others, and no process-wide
    // umask changed under the other threads' files.
    let parent = path.parent().unwrap_or(Path::new("."));
    // Short names: a socket's path has at most 107 bytes.
    let private = parent.join(format!(".s{:08x}", rand::random::<u32>()));
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().mode(0o700).create(&private).map_err(io(format!("creating {}", private.display())))?;
    let staged = private.join("s");
    let bound = tokio::net::UnixListener::bind(&staged).map_err(io(format!("binding {}", path.display()))).and_then(
        |listener| {
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
                .map_err(io(format!("making {} owner-only", path.display())))?;
            std::fs::rename(&staged, path).map_err(io(format!("moving the socket to {}", path.display())))?;
            Ok(listener)
        },
    );
    let _ = std::fs::remove_dir_all(&private);
    bound
}

/// Turns tonic's "message length too large" (OUT_OF_RANGE) into the
/// RESOURCE_EXHAUSTED this API promises, naming the limit.
#[derive(Clone)]
struct SizeLimit<S> {
    inner: S,
    limit: usize,
}

impl<S, B, R> tower::Service<http::Request<B>> for SizeLimit<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let limit = self.limit;
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            let headers = response.headers_mut();
            let too_large = headers.get("grpc-status").is_some_and(|s| s == "11")
                && headers.get("grpc-message").is_some_and(|m| m.to_str().is_ok_and(|m| m.contains("too%20large")));
            if too_large {
                headers.insert("grpc-status", http::HeaderValue::from_static("8"));
                let message = format!(
                    "the request is larger than this server's limit of {limit} bytes (cvm serve --max-message-bytes)"
                );
                if let Ok(value) = http::HeaderValue::from_str(&percent_encode(&message)) {
                    headers.insert("grpc-message", value);
                }
            }
            Ok(response)
        })
    }
}

/// gRPC's percent-encoding of a status message.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            0x20..=0x7e if b != b'%' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Run the server until SIGTERM or SIGINT (`cvm serve`); `ready` is told
/// where it listens once it does.
pub async fn serve(options: ServeOptions, ready: impl FnOnce(&Running)) -> Result<(), ServeError> {
    let running = start(options).await?;
    ready(&running);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io("listening for SIGTERM"))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("stopping: no new calls; running jobs finish");
    running.shutdown().await
}

/// The server's part in a cluster (`--queue postgres://…`).
#[cfg(feature = "postgres")]
mod cluster {
    use std::sync::Arc;

    use super::{Core, ServeError, ServeOptions};
    use crate::service::cluster::committer::Committer;
    use crate::service::cluster::front::Front;
    use crate::service::cluster::worker::{Worker, WorkerOptions};
    use crate::service::cluster::Queue;
    use crate::service::core::now_ms;

    type Tasks = Vec<tokio::task::JoinHandle<Result<(), ServeError>>>;

    /// How often each server looks the cluster's queued jobs over for
    /// deadlines that passed (one server does it every 200 ms, in memory).
    const CLUSTER_DEADLINE_SWEEP: std::time::Duration = std::time::Duration::from_secs(1);

    /// Connect the front, and run the server's runners as a worker of the
    /// cluster on its engines (they stop, finishing their jobs, with the
    /// server). Ended jobs past the result TTL are forgotten now and then.
    pub(super) async fn start(
        url: &str,
        core: &Arc<Core>,
        options: &ServeOptions,
        stopped: tokio::sync::watch::Receiver<bool>,
        tasks: &mut Tasks,
    ) -> Result<Arc<Front>, ServeError> {
        let cluster_error = |e: crate::service::cluster::ClusterError| ServeError::Config(e.to_string());
        let queue = Queue::connect(url).await.map_err(cluster_error)?;
        let mut worker_options = WorkerOptions::new(url, &options.data_dir);
        worker_options.lease = options.lease;
        worker_options.backend = options.backend;
        worker_options.commits_batches = true;
        if options.runners == 0 {
            worker_options.kinds.clear();
        }
        let worker = Worker::with_engines(queue.clone(), core.engines.clone(), core.metrics.clone(), &worker_options)
            .await
            .map_err(cluster_error)?;
        // This store's batches were proven with its key sets: the cluster takes
        // them where it has none, and a cluster with others is refused here.
        worker.offer_key_sets().await.map_err(|e| ServeError::Config(format!("joining the cluster: {e}")))?;
        let (runner, runners, running) = (worker.clone(), options.runners, stopped.clone());
        tasks.push(tokio::spawn(async move {
            runner.run(runners, running).await;
            Ok(())
        }));
        // The batches of the domains bound to this server's store.
        let committer =
            Committer::new(core.clone(), url, &options.data_dir, options.max_attempts).map_err(cluster_error)?;
        let committing = stopped.clone();
        tasks.push(tokio::spawn(async move {
            worker.run_batches(Arc::new(committer), committing).await;
            Ok(())
        }));
        // Queued jobs past their deadline end when it passes, as on one server
        // (a worker would fail them only when it claimed them).
        let (sweeping, mut sweep_stop) = (queue.clone(), stopped.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(CLUSTER_DEADLINE_SWEEP) => {}
                    _ = sweep_stop.wait_for(|s| *s) => return Ok(()),
                }
                if let Err(e) = sweeping.end_past_deadline(now_ms()).await {
                    tracing::warn!("{e}");
                }
            }
        }));
        let (expiring, ttl) = (queue.clone(), options.result_ttl);
        tasks.push(super::expire_now_and_then(ttl, stopped, move || {
            let queue = expiring.clone();
            let horizon = now_ms().saturating_sub(ttl.as_millis() as u64);
            async move { queue.expire(horizon).await.map(|_| ()).map_err(|e| e.to_string()) }
        }));
        Ok(Arc::new(Front { queue, depth: options.queue_depth, max_attempts: options.max_attempts }))
    }
}
