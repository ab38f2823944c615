//! The service's client commands: `cvm submit`, `cvm jobs …`, `cvm status`.
//! They talk to `cvm serve` on the data dir's socket unless `--server` says
//! otherwise.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use causality_vm::content_id::{hex_decode, hex_encode};
use causality_vm::service::client::{Client, ClientOptions, Endpoint};
use causality_vm::service::core::kind_name;
use causality_vm::service::proto::{
    groth16_job, hash_message, job_payload, job_result, msm_job, ExecuteBatchJob, Groth16Job, Group, HashJob,
    HashMessage, Job, JobKind, JobPayload, JobState, ListRequest, MerkleRootJob, MsmJob, PointList, ProveOpsJob,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::Globals;

/// Where the server is and how to reach it.
#[derive(clap::Args, Clone)]
pub struct ServerArgs {
    /// unix:PATH, tcp://HOST:PORT or https://HOST:PORT (default: the data dir's socket).
    #[arg(long, env = "CVM_SERVER")]
    pub server: Option<String>,
    /// A service token (`cvm token mint --service`), or @FILE; needed over TCP.
    #[arg(long, env = "CVM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The CA certificate (PEM) that signed the server's, for https://.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// A client certificate (PEM), for servers that require mutual TLS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name on the server's certificate, when it is not the host's.
    #[arg(long)]
    pub tls_domain: Option<String>,
}

impl ServerArgs {
    fn endpoint(&self, globals: &Globals) -> anyhow::Result<Endpoint> {
        let endpoint = match self.server.as_deref().filter(|text| !text.trim().is_empty()) {
            Some(text) => text.parse().map_err(|e: String| anyhow!("--server {text:?}: {e}"))?,
            None => Endpoint::local(&globals.data_dir()),
        };
        // TLS options with a server reached without TLS would be ignored,
        // and a token sent in clear: refused instead.
        let tls_given = [
            ("--tls-ca", self.tls_ca.is_some()),
            ("--tls-cert", self.tls_cert.is_some()),
            ("--tls-domain", self.tls_domain.is_some()),
        ];
        if !matches!(endpoint, Endpoint::Tcp { tls: true, .. }) {
            if let Some((flag, _)) = tls_given.iter().find(|(_, given)| *given) {
                bail!("{flag} is for a server reached over TLS: name it --server https://HOST:PORT");
            }
        }
        Ok(endpoint)
    }

    fn options(&self) -> anyhow::Result<ClientOptions> {
        let token = match &self.token {
            Some(t) => Some(match t.strip_prefix('@') {
                Some(path) => causality_vm::bounded::read_text_at_most(Path::new(path), 1 << 20)
                    .with_context(|| format!("reading token file {path}"))?,
                None => t.clone(),
            }),
            None => None,
        };
        Ok(ClientOptions {
            token,
            tls_ca: self.tls_ca.clone(),
            tls_identity: self.tls_cert.clone().zip(self.tls_key.clone()),
            tls_domain: self.tls_domain.clone(),
            connect_timeout: None,
        })
    }
}

#[derive(clap::Args)]
pub struct SubmitArgs {
    /// Job files: a batch in `cvm run`'s format, an operations document
    /// (`cvm prove-ops`'s), or a JSON job (`{"hash": …}`, `{"merkle_root": …}`,
    /// `{"msm": …}`, `{"groth16": …}`; docs/SERVICE.md).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Wait for each job to end and print its result.
    #[arg(long)]
    pub wait: bool,
    /// Higher runs first among queued jobs of a kind.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub priority: i32,
    /// Seconds from now after which a job that has not started is not started.
    #[arg(long, value_name = "SECONDS")]
    pub deadline: Option<u64>,
    /// The request id (default: derived from the file's contents, so a
    /// resubmission of the same file names the same job). One file only.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Batch files: standard, verification, simulation or proof-generation.
    #[arg(long, default_value = "standard", value_parser = batch_mode)]
    pub mode: String,
    /// Batch files: stop at the first failing operation.
    #[arg(long)]
    pub fail_fast: bool,
    /// Batch files: commit only if every operation succeeds.
    #[arg(long)]
    pub all_or_nothing: bool,
    /// Batch files and operations documents: operations per Groth16 proof.
    #[arg(long, default_value_t = 4, value_parser = proof_size)]
    pub ops_per_proof: u32,
    /// Batch files: commit without proving.
    #[arg(long)]
    pub no_prove: bool,
}

#[derive(clap::Subcommand)]
pub enum JobsCommand {
    /// The newest jobs, filtered by state and kind.
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// queued, running, succeeded, failed, cancelled (repeatable).
        #[arg(long)]
        state: Vec<String>,
        /// execute-batch, prove-ops, hash, merkle-root, msm, groth16 (repeatable).
        #[arg(long)]
        kind: Vec<String>,
        /// The most jobs listed, newest first (0: the server's default, 100; at most 10,000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One job, with its result.
    Get {
        id: u64,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Follow a job's events until it ends.
    Await {
        id: u64,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Cancel a job (a running one stops at its next stage).
    Cancel {
        id: u64,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}

async fn connect(globals: &Globals, server: &ServerArgs) -> anyhow::Result<Client> {
    let endpoint = server.endpoint(globals)?;
    Client::connect(&endpoint, &server.options()?).await.with_context(|| match &endpoint {
        Endpoint::Unix(path) if !path.exists() => {
            format!("no server on {} (start one with `cvm serve`)", path.display())
        }
        Endpoint::Unix(path) if !is_socket(path) => {
            format!(
                "{} is not a socket: name a server's socket (`cvm serve` makes <data-dir>/cvm.sock)",
                path.display()
            )
        }
        Endpoint::Unix(path) => {
            format!("no server answers on {} (a stale socket: start one with `cvm serve`)", path.display())
        }
        Endpoint::Tcp { tls: false, .. } => {
            format!("reaching the server at {endpoint} (if it speaks TLS, name it https://…)")
        }
        _ => format!("reaching the server at {endpoint}"),
    })
}

fn is_socket(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.file_type().is_socket())
}

fn status_error(status: tonic::Status) -> anyhow::Error {
    // A status with a source was made here, from a failed connection: no
    // server said it (an HTTP/1 endpoint such as the metrics port answers
    // the HTTP/2 preface by closing, which tonic calls an h2 protocol error).
    if std::error::Error::source(&status).is_some() {
        return anyhow::Error::new(ConnectionError(format!(
            "the connection broke with no gRPC answer ({}: {}); is the address a `cvm serve` \
             listener (`--listen`), not its `--metrics` port or another service?",
            code_name(status.code()),
            status.message()
        )));
    }
    anyhow::Error::new(ServerError(status))
}

/// No server could be reached, or the connection failed mid-call:
/// `--json` errors name their kind `connection`.
#[derive(Debug)]
pub struct ConnectionError(String);

impl std::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectionError {}

/// What the server answered instead of doing what was asked (its gRPC
/// status): `--json` errors name their kind `server`.
#[derive(Debug)]
pub struct ServerError(tonic::Status);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", code_name(self.0.code()), self.0.message())
    }
}

impl std::error::Error for ServerError {}

fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
            sep.into_iter().chain(std::iter::once(c.to_ascii_uppercase()))
        })
        .collect()
}

/// The most a job file may hold: 1 GiB, room for a server whose
/// `--max-message-bytes` is raised, and for JSON's hex, twice the bytes
/// it sends (the server's own limit then decides).
const MAX_JOB_FILE_BYTES: u64 = 1 << 30;

/// A job file's bytes (`-`: standard input), refused past
/// [`MAX_JOB_FILE_BYTES`] before more is read.
fn read_job_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let read = match path.as_os_str() == "-" {
        true => std::io::stdin().lock().take(MAX_JOB_FILE_BYTES + 1).read_to_end(&mut bytes),
        false => std::fs::File::open(path).and_then(|f| f.take(MAX_JOB_FILE_BYTES + 1).read_to_end(&mut bytes)),
    };
    read.with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_JOB_FILE_BYTES {
        bail!("{}: larger than {MAX_JOB_FILE_BYTES} bytes; split the job", path.display());
    }
    Ok(bytes)
}

/// `--mode`, checked as `cvm run` checks it (sent as written); a server
/// runs no debug mode, which steps interactively.
fn batch_mode(text: &str) -> Result<String, String> {
    match text.parse::<causality_vm::ExecutionMode>()? {
        causality_vm::ExecutionMode::Debug => Err("debug mode steps interactively: run it with `cvm run`".into()),
        _ => Ok(text.to_string()),
    }
}

/// `--ops-per-proof`, checked as `cvm run` checks it.
fn proof_size(text: &str) -> Result<u32, String> {
    crate::run_cmd::ops_per_proof(text).map(|k| k as u32)
}

pub fn submit(globals: &Globals, args: SubmitArgs) -> anyhow::Result<i32> {
    if args.request_id.is_some() && args.files.len() > 1 {
        bail!("--request-id names one job: give one file");
    }
    // Every file is read and checked before anything is sent.
    let mut jobs = Vec::new();
    if args.files.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        bail!("-: standard input can be read once");
    }
    for path in &args.files {
        let bytes = read_job_file(path)?;
        let (payload, upload) = payload_of(&bytes, path, &args)?;
        jobs.push((path, bytes, payload, upload));
    }
    let deadline = match args.deadline {
        None => None,
        Some(seconds) => Some(
            seconds
                .checked_mul(1000)
                .and_then(|ms| ms.checked_add(causality_vm::service::core::now_ms()))
                .ok_or_else(|| anyhow!("--deadline {seconds}: too far in the future (seconds from now)"))?,
        ),
    };
    runtime()?.block_on(async {
        let mut client = connect(globals, &args.server).await?;
        let mut failed = false;
        let mut reports = Vec::new();
        let mut accepted_any = false;
        for (path, bytes, payload, upload) in jobs {
            let accepted = match send(&mut client, &args, deadline, bytes, payload, upload).await {
                Ok(accepted) => accepted,
                // Refused before anything was accepted: nothing changed.
                Err(error) if !accepted_any => return Err(error).with_context(|| format!("submitting {}", path.display())),
                // Refused after others were accepted: they are reported,
                // this one is not, and the files after it are not sent.
                Err(error) => {
                    if globals.json {
                        reports.push(json!({"file": path, "error": crate::output::error_text(&error)}));
                    } else {
                        note!(
                            "{}: refused: {}; the files after it were not submitted",
                            path.display(),
                            crate::output::error_text(&error)
                        );
                    }
                    failed = true;
                    break;
                }
            };
            accepted_any = true;
            let id = accepted.job_id;
            if !args.wait {
                if globals.json {
                    reports.push(json!({"file": path, "job_id": id, "queue_position": accepted.queue_position, "existing": accepted.existing}));
                } else {
                    let again = if accepted.existing { " (already submitted)" } else { "" };
                    out!("{}: job {id} accepted{again}, {} ahead of it", path.display(), accepted.queue_position)?;
                }
                continue;
            }
            let job = match client.wait(id).await {
                Ok(job) => job,
                // Accepted, and kept: said with its id, and nothing more is sent.
                Err(status) => {
                    let error = crate::output::error_text(&status_error(status));
                    let again = format!("job {id} was accepted and is kept; await it with `cvm jobs await {id}`");
                    if globals.json {
                        reports.push(json!({"file": path, "job_id": id, "error": error, "note": again}));
                    } else {
                        note!("{}: {error}; {again}", path.display());
                    }
                    failed = true;
                    break;
                }
            };
            failed |= job.state() != JobState::Succeeded || operations_failed(&job);
            if globals.json {
                reports.push(json!({"file": path, "job": job_json(&job)}));
            } else {
                print_job(&job)?;
            }
        }
        if globals.json {
            let value = if reports.len() == 1 { reports.pop().unwrap_or_default() } else { Value::Array(reports) };
            out!("{}", serde_json::to_string_pretty(&value)?)?;
        }
        Ok(if failed { 1 } else { 0 })
    })
}

/// Send one checked job file: its key first where it names one by path,
/// then the job, under `--request-id` or an id derived from its bytes.
async fn send(
    client: &mut Client,
    args: &SubmitArgs,
    deadline: Option<u64>,
    bytes: Vec<u8>,
    mut payload: JobPayload,
    upload: Option<ZkeyUpload>,
) -> anyhow::Result<causality_vm::service::proto::SubmitResponse> {
    let mut named_by = bytes;
    if let Some(upload) = upload {
        // The key goes first (the server keeps it once), the job names it.
        let id = upload.send(client).await?;
        if let Some(job_payload::Kind::Groth16(job)) = &mut payload.kind {
            job.key = Some(groth16_job::Key::ZkeyId(id.clone()));
            // The job is its key and witness, whatever the job file's paths.
            named_by = [id.as_bytes(), &job.witness].concat();
        }
    }
    let request_id = match &args.request_id {
        Some(id) => id.clone(),
        None => format!("file-{}", &hex_encode(blake3::hash(&named_by).as_bytes())[..32]),
    };
    client.submit(&request_id, payload, args.priority, deadline).await.map_err(|status| {
        let derived = args.request_id.is_none() && status.code() == tonic::Code::AlreadyExists;
        let error = status_error(status);
        match derived {
            // Same bytes, another job: other flags, or programs changed beside the file.
            true => error.context(
                "its request id comes from the file's bytes, and the file was submitted before as another job \
                 (other flags such as --ops-per-proof, --mode or --no-prove, or other program files); give \
                 --request-id to submit it as a new job",
            ),
            false => error,
        }
    })
}

pub fn jobs(globals: &Globals, cmd: JobsCommand) -> anyhow::Result<i32> {
    runtime()?.block_on(async {
        match cmd {
            JobsCommand::List { server, state, kind, limit } => {
                let states = state.iter().map(|s| parse_state(s)).collect::<anyhow::Result<Vec<_>>>()?;
                let kinds = kind.iter().map(|k| parse_kind(k)).collect::<anyhow::Result<Vec<_>>>()?;
                let mut client = connect(globals, &server).await?;
                let jobs = client
                    .list(ListRequest {
                        states: states.into_iter().map(|s| s as i32).collect(),
                        kinds: kinds.into_iter().map(|k| k as i32).collect(),
                        limit,
                    })
                    .await
                    .map_err(status_error)?;
                if globals.json {
                    out!("{}", serde_json::to_string_pretty(&jobs.iter().map(job_json).collect::<Vec<_>>())?)?;
                } else {
                    for job in &jobs {
                        out!(
                            "{:>8}  {:<13} {:<10} {:<14} {}",
                            job.job_id,
                            kind_name(job.kind()),
                            state_name(job.state()),
                            job.stage,
                            job.request_id
                        )?;
                    }
                }
                Ok(0)
            }
            JobsCommand::Get { id, server } => {
                let job = connect(globals, &server).await?.get(id).await.map_err(status_error)?;
                show(globals, &job)
            }
            JobsCommand::Await { id, server } => {
                let mut client = connect(globals, &server).await?;
                let mut events = client.events(id).await.map_err(status_error)?;
                while let Some(event) = events.message().await.map_err(status_error)? {
                    if let Some(job) = event.job {
                        return show(globals, &job);
                    }
                    if !globals.json && !globals.quiet {
                        note!("job {id}: {} {}", state_name(event.state()), event.stage);
                    }
                }
                let job = client.get(id).await.map_err(status_error)?;
                show(globals, &job)
            }
            JobsCommand::Cancel { id, server } => {
                let job = connect(globals, &server).await?.cancel(id).await.map_err(status_error)?;
                show(globals, &job)?;
                // Cancelled, or to stop at its next stage: 0; it had ended otherwise: 1.
                Ok(match job.state() {
                    JobState::Cancelled | JobState::Queued | JobState::Running => 0,
                    _ => 1,
                })
            }
        }
    })
}

pub fn status(globals: &Globals, args: StatusArgs) -> anyhow::Result<i32> {
    runtime()?.block_on(async {
        let status = connect(globals, &args.server).await?.status().await.map_err(status_error)?;
        let kinds: Vec<Value> = status
            .kinds
            .iter()
            .map(|k| json!({"kind": kind_name(k.kind()), "queued": k.queued, "running": k.running, "queue_limit": k.queue_limit}))
            .collect();
        let workers: Vec<Value> = status
            .workers
            .iter()
            .map(|w| {
                let kinds: Vec<&str> = w.kinds().map(kind_name).collect();
                json!({"id": w.id, "host": w.host, "kinds": kinds, "backend": w.backend, "adapter": w.adapter,
                       "jobs_done": w.jobs_done, "heartbeat_age_ms": w.heartbeat_age_ms, "key_sets": w.key_sets})
            })
            .collect();
        let key_sets: Vec<Value> = status
            .key_sets
            .iter()
            .map(|k| match k.zkey_id.is_empty() {
                true => json!({"ops_per_proof": k.ops_per_proof, "resident": k.resident}),
                false => json!({"zkey_id": k.zkey_id, "resident": k.resident}),
            })
            .collect();
        if globals.json {
            let value = json!({
                "version": status.version, "backend": status.backend, "adapter": status.adapter,
                "cpu_threads": status.cpu_threads, "uptime_ms": status.uptime_ms, "kinds": kinds,
                "key_sets": key_sets, "workers": workers,
            });
            out!("{}", serde_json::to_string_pretty(&value)?)?;
            return Ok(0);
        }
        let adapter = if status.adapter.is_empty() { String::new() } else { format!(" ({})", status.adapter) };
        out!("cvm {} serving on {}{adapter}, {} CPU threads, up {} s", status.version, status.backend, status.cpu_threads, status.uptime_ms / 1000)?;
        for k in &status.kinds {
            out!("  {:<13} {} queued (limit {}), {} running", kind_name(k.kind()), k.queued, k.queue_limit, k.running)?;
        }
        let resident: Vec<String> = status
            .key_sets
            .iter()
            .filter(|k| k.resident)
            .map(|k| match k.zkey_id.is_empty() {
                true => format!("{} ops per proof", k.ops_per_proof),
                false => k.zkey_id.clone(),
            })
            .collect();
        out!("key sets resident: {}", if resident.is_empty() { "none".into() } else { resident.join(", ") })?;
        if !status.workers.is_empty() {
            out!("cluster workers:")?;
        }
        for w in &status.workers {
            let kinds: Vec<&str> = w.kinds().map(kind_name).collect();
            let adapter = if w.adapter.is_empty() { String::new() } else { format!(" ({})", w.adapter) };
            out!(
                "  {} on {}: {}{adapter}, {} jobs done, beat {:.1} s ago, kinds {}{}",
                w.id,
                w.host,
                w.backend,
                w.jobs_done,
                w.heartbeat_age_ms as f64 / 1e3,
                kinds.join(","),
                if w.key_sets.is_empty() { String::new() } else { format!(", keys {}", w.key_sets.join(",")) }
            )?;
        }
        Ok(0)
    })
}

/// Whether a batch job succeeded with operations that failed (`cvm run`
/// exits 1 for such a batch, and so does `cvm submit --wait`).
fn operations_failed(job: &Job) -> bool {
    let Some(job_result::Kind::ExecuteBatch(batch)) = job.result.as_ref().and_then(|r| r.kind.as_ref()) else {
        return false;
    };
    let Ok(result) = serde_json::from_str::<Value>(&batch.result_json) else { return false };
    let succeeded = result["success_count"].as_u64();
    let ran = result["results"].as_array().map(|r| r.len() as u64);
    succeeded != ran
}

fn show(globals: &Globals, job: &Job) -> anyhow::Result<i32> {
    if globals.json {
        out!("{}", serde_json::to_string_pretty(&job_json(job))?)?;
    } else {
        print_job(job)?;
    }
    Ok(match job.state() {
        JobState::Succeeded | JobState::Queued | JobState::Running => 0,
        _ => 1,
    })
}

/// A batch job's result as `cvm run` says it: each operation, then what
/// came of the batch (`--json` gives the whole result).
fn print_batch(result_json: &str) -> anyhow::Result<()> {
    let Ok(result) = serde_json::from_str::<Value>(result_json) else { return Ok(out!("{result_json}")?) };
    if result["recovered_from_batch_record"] == true {
        let number = &result["record"]["number"];
        out!("committed as batch {number} (the result was rebuilt from its record after a restart; --json shows it)")?;
        return Ok(());
    }
    let results = result["results"].as_array().cloned().unwrap_or_default();
    for op in &results {
        let head = format!("#{} {}", op["index"], op["kind"].as_str().unwrap_or("?"));
        match op["status"].as_str() {
            Some("succeeded") => out!("{head}: ok")?,
            Some("skipped") => out!("{head}: skipped (fail-fast)")?,
            _ => out!(
                "{head}: FAILED {}: {}",
                op["error"].as_str().unwrap_or("?"),
                op["message"].as_str().unwrap_or("")
            )?,
        }
    }
    let m = &result["metadata"];
    let verdict = if m["committed"] == true {
        format!("committed as batch {}", m["batch_number"])
    } else if m["rolled_back"] == true {
        "rolled back (all-or-nothing): nothing was written".to_string()
    } else {
        "nothing was committed".to_string()
    };
    out!("{}/{} operations succeeded; {verdict}", result["success_count"], results.len())?;
    if let Some(root) = m["state_root_after"].as_str().filter(|_| m["committed"] == true) {
        out!("state root after: {root}")?;
    }
    Ok(())
}

fn print_job(job: &Job) -> anyhow::Result<()> {
    let kind = kind_name(job.kind());
    match (&job.result, &job.error) {
        (_, Some(error)) => {
            out!("job {} ({kind}): {}: {}: {}", job.job_id, state_name(job.state()), error.code, error.message)?
        }
        (Some(result), _) => {
            // A batch job that ran may still have failed operations: its summary says.
            let ran =
                if matches!(result.kind, Some(job_result::Kind::ExecuteBatch(_))) { "executed" } else { "succeeded" };
            // Where each stage ran, as `--json`'s `backends` says it.
            let on: Vec<String> = result.backends.iter().map(|b| format!("{} {}", b.stage, b.backend)).collect();
            match on.is_empty() {
                true => out!("job {} ({kind}): {ran}", job.job_id)?,
                false => out!("job {} ({kind}): {ran} (backends: {})", job.job_id, on.join(", "))?,
            }
            match &result.kind {
                Some(job_result::Kind::Hash(h)) => {
                    for d in digests(h) {
                        out!("{}", hex_encode(d))?;
                    }
                }
                Some(job_result::Kind::MerkleRoot(m)) => out!("{}", hex_encode(&m.root))?,
                Some(job_result::Kind::Msm(m)) => out!("{}", hex_encode(&m.point))?,
                Some(job_result::Kind::ExecuteBatch(b)) => print_batch(&b.result_json)?,
                Some(job_result::Kind::ProveOps(p)) => out!("{}", p.proofs_json)?,
                Some(job_result::Kind::Groth16(g)) => {
                    out!("{}", g.proof_json)?;
                    out!("{}", g.public_json)?;
                }
                None => {}
            }
        }
        (None, None) if !job.worker.is_empty() => {
            let lease = match job.lease_expires_unix_ms.checked_sub(causality_vm::service::core::now_ms()) {
                Some(left) => format!("lease {:.1} s left", left as f64 / 1e3),
                None => "lease expired".into(),
            };
            let (state, stage, worker) = (state_name(job.state()), &job.stage, &job.worker);
            out!("job {} ({kind}): {state} {stage} on worker {worker} ({lease})", job.job_id)?
        }
        (None, None) => out!("job {} ({kind}): {} {}", job.job_id, state_name(job.state()), job.stage)?,
    }
    Ok(())
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
        JobState::Unspecified => "unspecified",
    }
}

fn parse_state(text: &str) -> anyhow::Result<JobState> {
    [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Cancelled]
        .into_iter()
        .find(|s| state_name(*s) == text.trim().to_ascii_lowercase())
        .ok_or_else(|| anyhow!("--state {text:?}: expected queued, running, succeeded, failed or cancelled"))
}

pub fn parse_kind(text: &str) -> anyhow::Result<JobKind> {
    [JobKind::ExecuteBatch, JobKind::ProveOps, JobKind::Hash, JobKind::MerkleRoot, JobKind::Msm, JobKind::Groth16]
        .into_iter()
        .find(|k| kind_name(*k) == text.trim().to_ascii_lowercase())
        .ok_or_else(|| anyhow!("--kind {text:?}: expected execute-batch, prove-ops, hash, merkle-root, msm or groth16"))
}

/// A hash job's digests in order, sent one by one or packed (a packed job
/// another client sent lists the same way).
fn digests(h: &causality_vm::service::proto::HashResult) -> impl Iterator<Item = &[u8]> {
    h.digests.iter().map(Vec::as_slice).chain(h.packed_digests.chunks(32))
}

/// A job as JSON (digests and points in hex).
pub fn job_json(job: &Job) -> Value {
    let result = job.result.as_ref().map(|r| {
        let backends: serde_json::Map<String, Value> =
            r.backends.iter().map(|b| (b.stage.clone(), Value::String(b.backend.clone()))).collect();
        let body = match &r.kind {
            Some(job_result::Kind::Hash(h)) => {
                let digests = digests(h);
                json!({"digests": digests.map(hex_encode).collect::<Vec<_>>()})
            }
            Some(job_result::Kind::MerkleRoot(m)) => json!({"root": hex_encode(&m.root)}),
            Some(job_result::Kind::Msm(m)) => json!({"point": hex_encode(&m.point)}),
            Some(job_result::Kind::ExecuteBatch(b)) => {
                json!({"batch": serde_json::from_str::<Value>(&b.result_json).unwrap_or(Value::String(b.result_json.clone()))})
            }
            Some(job_result::Kind::ProveOps(p)) => {
                json!({"proofs": serde_json::from_str::<Value>(&p.proofs_json).unwrap_or(Value::String(p.proofs_json.clone()))})
            }
            Some(job_result::Kind::Groth16(g)) => {
                let parsed = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::String(text.into()));
                json!({"proof": parsed(&g.proof_json), "public": parsed(&g.public_json)})
            }
            None => Value::Null,
        };
        json!({"backends": backends, "value": body})
    });
    json!({
        "job_id": job.job_id,
        "request_id": job.request_id,
        "kind": kind_name(job.kind()),
        "state": state_name(job.state()),
        "stage": job.stage,
        "priority": job.priority,
        "attempts": job.attempts,
        "worker": job.worker,
        "lease_expires_unix_ms": job.lease_expires_unix_ms,
        "submitted_unix_ms": job.submitted_unix_ms,
        "started_unix_ms": job.started_unix_ms,
        "finished_unix_ms": job.finished_unix_ms,
        "deadline_unix_ms": job.deadline_unix_ms,
        "error": job.error.as_ref().map(|e| json!({"code": e.code, "message": e.message})),
        "result": result,
    })
}

/// Move a batch file's `programs` (paths beside it) into `inline_programs`.
fn inline_programs(batch: &mut Value, path: &Path) -> anyhow::Result<()> {
    let Some(object) = batch.as_object_mut() else { return Ok(()) };
    let Some(Value::Array(paths)) = object.remove("programs") else { return Ok(()) };
    let base = causality_vm::batch::file::base_dir(path);
    let mut inline = match object.remove("inline_programs") {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    for name in paths {
        let name = name.as_str().ok_or_else(|| anyhow!("{}: programs: entries are paths", path.display()))?;
        let program = causality_vm::batch::file::inline_program(name, &base)
            .map_err(|e| anyhow!("{}: program {name}: {e}", path.display()))?;
        inline.push(serde_json::to_value(program)?);
    }
    object.insert("inline_programs".into(), Value::Array(inline));
    Ok(())
}

/// A JSON job file (docs/SERVICE.md); byte strings in hex.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum JobFile {
    Hash {
        messages: Vec<MessageSpec>,
    },
    MerkleRoot {
        leaves: Vec<String>,
    },
    Msm {
        group: String,
        #[serde(default)]
        bases: Option<Vec<String>>,
        #[serde(default)]
        base_set_id: Option<String>,
        scalars: Vec<String>,
    },
    /// Paths relative to the job file.
    Groth16 {
        #[serde(default)]
        zkey: Option<PathBuf>,
        #[serde(default)]
        zkey_id: Option<String>,
        #[serde(default)]
        r1cs: Option<PathBuf>,
        witness: PathBuf,
    },
}

/// A snarkjs key to upload before its job is submitted.
struct ZkeyUpload {
    zkey: PathBuf,
    r1cs: Option<PathBuf>,
}

impl ZkeyUpload {
    /// Upload the key (and R1CS); returns its id.
    async fn send(&self, client: &mut Client) -> anyhow::Result<String> {
        let read = |path: &Path| {
            causality_vm::bounded::read_at_most(path, MAX_JOB_FILE_BYTES)
                .with_context(|| format!("reading {}", path.display()))
        };
        let zkey = read(&self.zkey)?;
        let r1cs = match &self.r1cs {
            Some(path) => read(path)?,
            None => Vec::new(),
        };
        let uploaded = client
            .upload_zkey(zkey, r1cs)
            .await
            .map_err(status_error)
            .with_context(|| format!("uploading {}", self.zkey.display()))?;
        Ok(uploaded.zkey_id)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageSpec {
    #[serde(default)]
    hex: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    derive_key_context: Option<String>,
}

fn hex_field(text: &str, field: &str) -> anyhow::Result<Vec<u8>> {
    hex_decode(text).map_err(|e| anyhow!("{field}: {e}"))
}

/// A key of the top-level JSON object that is written twice (a parsed
/// value keeps only the last).
fn key_given_twice(bytes: &[u8]) -> Option<String> {
    struct Keys(Vec<String>);
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Keys;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                keys.push(key);
            }
            Ok(Keys(keys))
        }
    }
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
            d.deserialize_map(Visitor)
        }
    }
    let Keys(keys) = serde_json::from_slice(bytes).ok()?;
    let mut seen = std::collections::HashSet::new();
    keys.into_iter().find(|key| !seen.insert(key.clone()))
}

/// A job file's payload, and the key to upload first for a Groth16 job
/// that names its key by a path.
fn payload_of(bytes: &[u8], path: &Path, args: &SubmitArgs) -> anyhow::Result<(JobPayload, Option<ZkeyUpload>)> {
    let origin = path.display();
    let mut value: Value = serde_json::from_slice(bytes).with_context(|| format!("{origin}: not JSON"))?;
    let payload = |kind| JobPayload { kind: Some(kind) };
    if value.get("ops").is_some() && value.get("domain").is_none() {
        // An operations document: proofs for operations executed elsewhere.
        let job = ProveOpsJob { witnesses_json: bytes.to_vec(), ops_per_proof: args.ops_per_proof };
        return Ok((payload(job_payload::Kind::ProveOps(job)), None));
    }
    if value.get("ops").is_some() {
        // Checked here as `cvm run` checks it, so that its errors name the
        // file's own lines and columns (the server sees it re-encoded).
        let text = std::str::from_utf8(bytes).with_context(|| format!("{origin}: not UTF-8 text"))?;
        let file = causality_vm::batch::file::BatchFile::parse(text, &origin.to_string())?;
        causality_vm::batch::file::check(file, &origin.to_string(), &causality_vm::batch::file::base_dir(path))?;
        // Its program paths travel inline, read as `cvm run` reads them.
        let job = ExecuteBatchJob {
            batch_json: inline_programs(&mut value, path).and_then(|()| Ok(serde_json::to_vec(&value)?))?,
            mode: args.mode.clone(),
            fail_fast: args.fail_fast,
            all_or_nothing: args.all_or_nothing,
            ops_per_proof: args.ops_per_proof,
            no_prove: args.no_prove,
        };
        return Ok((payload(job_payload::Kind::ExecuteBatch(job)), None));
    }
    const KINDS: [&str; 4] = ["hash", "merkle_root", "msm", "groth16"];
    if let Some(twice) = key_given_twice(bytes) {
        bail!("{origin}: the key {twice:?} is given twice (a job file names its kind once)");
    }
    let keys: Vec<&String> = value.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    if keys.len() != 1 || !KINDS.contains(&keys[0].as_str()) {
        let found = match value.as_object() {
            Some(_) if keys.is_empty() => "an empty object".to_string(),
            Some(_) => format!("the keys {}", keys.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ")),
            None => "no JSON object".to_string(),
        };
        bail!(
            "{origin}: not a job file: expected a batch (\"domain\" and \"ops\"), an operations document \
             (\"ops\"), or an object with one of {} as its only key; found {found}",
            KINDS.map(|k| format!("{k:?}")).join(", ")
        );
    }
    // Read from the bytes, not the parsed value, so that a key given twice
    // is refused (a value keeps the last) and errors carry line and column.
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let file: JobFile =
        serde_path_to_error::deserialize(&mut reader).map_err(|e| anyhow!("{origin}: {}: {}", e.path(), e.inner()))?;
    let mut upload = None;
    let kind = match file {
        JobFile::Hash { messages } => {
            let mut out = Vec::with_capacity(messages.len());
            for (i, m) in messages.into_iter().enumerate() {
                let field = |f: &str| match f {
                    "" => format!("{origin}: hash.messages[{i}]"),
                    f => format!("{origin}: hash.messages[{i}].{f}"),
                };
                let data = match (&m.hex, &m.text) {
                    (Some(hex), None) => hex_field(hex, &field("hex"))?,
                    (None, Some(text)) => text.clone().into_bytes(),
                    _ => bail!("{}: give exactly one of hex and text", field("")),
                };
                let mode = match (m.key, m.derive_key_context) {
                    (Some(key), None) => Some(hash_message::Mode::Key(hex_field(&key, &field("key"))?)),
                    (None, Some(context)) => Some(hash_message::Mode::DeriveKeyContext(context)),
                    (None, None) => None,
                    _ => bail!("{}: key and derive_key_context exclude each other", field("")),
                };
                out.push(HashMessage { data, mode });
            }
            job_payload::Kind::Hash(HashJob { messages: out, ..HashJob::default() })
        }
        JobFile::MerkleRoot { leaves } => {
            let leaves = leaves
                .iter()
                .enumerate()
                .map(|(i, l)| hex_field(l, &format!("{origin}: merkle_root.leaves[{i}]")))
                .collect::<anyhow::Result<_>>()?;
            job_payload::Kind::MerkleRoot(MerkleRootJob { leaves })
        }
        JobFile::Msm { group, bases, base_set_id, scalars } => {
            let group = match group.to_ascii_lowercase().as_str() {
                "g1" => Group::G1,
                "g2" => Group::G2,
                other => bail!("{origin}: msm.group {other:?}: expected g1 or g2"),
            };
            let bases = match (bases, base_set_id) {
                (Some(points), None) => msm_job::Bases::InlineBases(PointList {
                    points: points
                        .iter()
                        .enumerate()
                        .map(|(i, p)| hex_field(p, &format!("{origin}: msm.bases[{i}]")))
                        .collect::<anyhow::Result<_>>()?,
                }),
                (None, Some(id)) => msm_job::Bases::BaseSetId(id),
                _ => bail!("{origin}: msm: give exactly one of bases and base_set_id"),
            };
            let scalars = scalars
                .iter()
                .enumerate()
                .map(|(i, s)| hex_field(s, &format!("{origin}: msm.scalars[{i}]")))
                .collect::<anyhow::Result<_>>()?;
            job_payload::Kind::Msm(MsmJob { group: group as i32, bases: Some(bases), scalars })
        }
        JobFile::Groth16 { zkey, zkey_id, r1cs, witness } => {
            let beside = |p: &Path| path.parent().unwrap_or(Path::new("")).join(p);
            let witness = beside(&witness);
            let witness = causality_vm::bounded::read_at_most(&witness, MAX_JOB_FILE_BYTES)
                .with_context(|| format!("{origin}: reading {}", witness.display()))?;
            let key = match (zkey, zkey_id) {
                (Some(zkey), None) => {
                    let zkey = beside(&zkey);
                    let r1cs = r1cs.map(|p| beside(&p)).or_else(|| causality_vm::prove::circom::r1cs_beside(&zkey));
                    upload = Some(ZkeyUpload { zkey, r1cs });
                    None
                }
                (None, Some(id)) => Some(groth16_job::Key::ZkeyId(id)),
                _ => bail!("{origin}: groth16: give exactly one of zkey (a path) and zkey_id"),
            };
            job_payload::Kind::Groth16(Groth16Job { key, witness })
        }
    };
    Ok((payload(kind), upload))
}
