//! `cvm serve`: run the accelerator service on the data dir until SIGTERM
//! or SIGINT (docs/SERVICE.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use causality_vm::service::auth::Auth;
use causality_vm::service::{serve, ServeOptions};

use crate::Globals;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Also listen on TCP (tcp://HOST:PORT); the Unix socket <data-dir>/cvm.sock is always served.
    #[arg(long, value_parser = tcp_address, value_name = "tcp://HOST:PORT")]
    pub listen: Option<SocketAddr>,
    /// Serve Prometheus text metrics on http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<SocketAddr>,
    /// Jobs each kind's queue holds; past it, submits are refused at once (RESOURCE_EXHAUSTED).
    #[arg(long, default_value_t = 10_000)]
    pub queue_depth: usize,
    /// The largest request accepted, in bytes.
    #[arg(long, default_value_t = 256 << 20)]
    pub max_message_bytes: usize,
    /// How long ended jobs and their results are kept, in seconds.
    #[arg(long, default_value_t = 24 * 3600, value_name = "SECONDS")]
    pub result_ttl: u64,
    /// Refuse at submit a batch job whose timestamp lies more than this many
    /// seconds from this machine's clock, either way (`off`: no limit); as
    /// `cvm run` does, since a batch from the future holds back every later one.
    #[arg(long, default_value = "300", value_parser = crate::run_cmd::clock_skew, value_name = "SECONDS|off")]
    pub max_clock_skew: crate::run_cmd::ClockSkew,
    /// Threads running hash, Merkle and MSM jobs side by side (with --queue,
    /// 0 makes this server a front only: `cvm worker`s run its jobs).
    #[arg(long, default_value_t = 2)]
    pub runners: usize,
    /// TLS certificate (PEM) for the TCP listener.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for the TCP listener.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require TCP clients to present certificates signed by this CA (mutual TLS).
    #[arg(long, requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Accept TCP calls without a token (loopback addresses only).
    #[arg(long)]
    pub no_auth: bool,
    /// Keep jobs in this PostgreSQL database instead of the data dir's job
    /// store, shared with other servers and `cvm worker`s (docs/SCALE_OUT.md).
    /// `?sslrootcert=CA.pem` (or `?sslmode=require`, the system's CAs) for TLS.
    #[arg(long, value_name = "postgres://…", env = "CVM_QUEUE")]
    pub queue: Option<String>,
    /// With --queue: how long a claimed job's lease lasts without renewal, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS", requires = "queue")]
    pub lease: u64,
    /// With --queue: the attempts a job gets before a lost lease fails it.
    #[arg(long, default_value_t = 3, requires = "queue")]
    pub max_attempts: u32,
}

fn tcp_address(text: &str) -> Result<SocketAddr, String> {
    let address = text.strip_prefix("tcp://").unwrap_or(text);
    address.parse().map_err(|e| {
        format!("{text:?}: {e} (expected tcp://HOST:PORT with a numeric address, e.g. tcp://127.0.0.1:7433)")
    })
}

/// The smallest `--max-message-bytes` a server can work with.
const MIN_MESSAGE_BYTES: usize = 4096;

pub fn run(globals: &Globals, args: ServeArgs) -> anyhow::Result<i32> {
    if args.queue_depth == 0 {
        bail!("--queue-depth 0: each kind's queue must hold at least one job");
    }
    if args.runners == 0 && args.queue.is_none() {
        bail!("--runners 0 would run no jobs: it is for a cluster's front (--queue), whose `cvm worker`s run them");
    }
    if args.max_attempts == 0 {
        bail!("--max-attempts must be at least 1");
    }
    check_lease(args.lease)?;
    if args.max_message_bytes < MIN_MESSAGE_BYTES {
        bail!("--max-message-bytes {}: at least {MIN_MESSAGE_BYTES} (a status call is larger)", args.max_message_bytes);
    }
    if args.listen.is_none() {
        let tcp_only = [
            ("--tls-cert", args.tls_cert.is_some()),
            ("--client-ca", args.client_ca.is_some()),
            ("--no-auth", args.no_auth),
        ];
        if let Some((flag, _)) = tcp_only.iter().find(|(_, given)| *given) {
            bail!("{flag} applies to the TCP listener: give --listen tcp://HOST:PORT with it");
        }
    }
    let mut options = ServeOptions::new(globals.data_dir());
    options.tcp = args.listen;
    options.metrics = args.metrics;
    options.queue_depth = args.queue_depth;
    options.max_message_bytes = args.max_message_bytes;
    options.result_ttl = Duration::from_secs(args.result_ttl);
    options.max_clock_skew = args.max_clock_skew.0;
    options.backend = globals.backend;
    // A cluster server may be a front only (its jobs run on `cvm worker`s).
    options.runners = args.runners;
    options.queue = args.queue.map(|url| queue_url(&url)).transpose()?;
    options.lease = Duration::from_secs(args.lease);
    options.max_attempts = args.max_attempts;
    options.auth =
        Auth { tls_cert: args.tls_cert, tls_key: args.tls_key, client_ca: args.client_ca, no_auth: args.no_auth };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("cvm-serve")
        .build()
        .context("starting the async runtime")?;
    let quiet = globals.quiet;
    runtime.block_on(serve(options, |running| {
        if !quiet {
            note!("listening on unix:{}", running.socket.display());
            if let Some(tcp) = running.tcp {
                note!("listening on tcp://{tcp}");
            }
            if let Some(metrics) = running.metrics {
                note!("metrics on http://{metrics}/metrics");
            }
        }
    }))?;
    Ok(0)
}

/// A `--queue` URL, checked for its scheme (the database checks the rest).
pub fn queue_url(text: &str) -> anyhow::Result<String> {
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        return Ok(text.to_string());
    }
    anyhow::bail!("--queue {text:?}: expected a PostgreSQL URL, postgres://USER@HOST:PORT/DATABASE")
}

/// The longest lease: a day. A job whose worker dies is put back only once
/// its lease expires, and the database's intervals stop far short of u64.
pub const MAX_LEASE_SECONDS: u64 = 24 * 3600;

/// `--lease SECONDS`, for `cvm serve --queue` and `cvm worker`.
pub fn check_lease(seconds: u64) -> anyhow::Result<()> {
    if !(1..=MAX_LEASE_SECONDS).contains(&seconds) {
        bail!("--lease {seconds}: from 1 to {MAX_LEASE_SECONDS} seconds (a dead worker's jobs wait that long)");
    }
    Ok(())
}
