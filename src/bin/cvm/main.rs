//! `cvm`: the causality-vm command line.

#[macro_use]
mod output;
mod allocator;
mod check_cmd;
mod client_cmd;
mod groth16_cmd;
mod hash_cmd;
mod notices;
mod progress;
mod prove_cmd;
mod prove_ops_cmd;
mod resource_cmd;
mod run_cmd;
mod serve_cmd;
mod state_cmd;
mod store_cmd;
mod tel_cmd;
mod token_cmd;
mod worker_cmd;

use std::path::PathBuf;

use causality_vm::Backend;

/// A batch allocates and frees hundreds of thousands of small blocks (registers,
/// results, hash requests); with glibc's allocator that was about a sixth of
/// its CPU, and mimalloc made the batch bench 15% faster. It keeps what a
/// batch frees for the next (`allocator.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cvm",
    version,
    about = "causality-vm: a resource VM with GPU-accelerated hashing and Groth16 proving"
)]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand understands.
#[derive(clap::Args, Clone, Debug)]
pub struct Globals {
    /// Where the register store, keys and logs live.
    #[arg(long, global = true, env = "CVM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars or notices.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// auto (GPU when usable, else CPU with a warning), cpu, or gpu (error without one).
    #[arg(long, global = true, env = "CVM_BACKEND", default_value = "auto")]
    pub backend: Backend,
}

impl Globals {
    /// `--data-dir`, else `$XDG_DATA_HOME/causality-vm`, else `~/.local/share/causality-vm`.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(xdg).join("causality-vm");
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        home.join(".local/share/causality-vm")
    }
}

#[derive(Subcommand)]
enum Command {
    /// Execute a JSON batch file and commit it.
    Run(run_cmd::RunArgs),
    /// Show the state root, a register, or the batch history.
    State(state_cmd::StateArgs),
    /// Mint, attenuate and inspect capability tokens.
    #[command(subcommand)]
    Token(token_cmd::TokenCommand),
    /// Compile and inspect Temporal Effect Language programs.
    #[command(subcommand)]
    Tel(tel_cmd::TelCommand),
    /// BLAKE3 files through the hash pool (b3sum-compatible output).
    Hash(hash_cmd::HashArgs),
    /// Circuit-specific Groth16 setup.
    Setup(prove_cmd::SetupArgs),
    /// Export a batch's proofs in snarkjs's JSON formats.
    Export(prove_cmd::ExportArgs),
    /// Verify snarkjs-format proof files.
    Verify(prove_cmd::VerifyArgs),
    /// Prove and verify circom circuits with snarkjs keys (.zkey, .wtns).
    #[command(subcommand)]
    Groth16(groth16_cmd::Groth16Command),
    /// Check the store for damage, or recover it to its last good batch.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// Compute what a batch author needs: ids, nullifier keys and commitments, nullifiers.
    #[command(subcommand)]
    Resource(resource_cmd::ResourceCommand),
    /// Check batch files without running them: format, limits, tokens,
    /// programs, and resources that could never be consumed.
    Check(check_cmd::CheckArgs),
    /// Prove operations executed elsewhere (a witnesses document) without a server.
    ProveOps(prove_ops_cmd::ProveOpsArgs),
    /// Run the proving and hashing service (gRPC) on the data dir.
    Serve(serve_cmd::ServeArgs),
    /// Run cluster jobs from a PostgreSQL queue (see `cvm serve --queue`).
    Worker(worker_cmd::WorkerArgs),
    /// Submit job files to a running `cvm serve`.
    Submit(client_cmd::SubmitArgs),
    /// List, inspect, follow and cancel a server's jobs.
    #[command(subcommand)]
    Jobs(client_cmd::JobsCommand),
    /// What a running server is doing.
    Status(client_cmd::StatusArgs),
}

fn main() {
    allocator::configure();
    let cli = Cli::try_parse().unwrap_or_else(|err| usage_error(err));
    init_tracing(cli.globals.quiet);
    progress::watch_gpu_compilation(&cli.globals);
    ensure_runtime_dir();
    let json = cli.globals.json;
    // The kernels' knobs come from the environment only here.
    if let Err(err) = causality_vm::tuning::Tuning::from_env().and_then(causality_vm::tuning::Tuning::apply) {
        std::process::exit(fail(&anyhow::anyhow!(err), json));
    }
    let noticed = notices::fallback_noticed_before();
    if noticed {
        causality_vm::gpu::quiet_cpu_fallback_notice();
    }
    let outcome = match cli.command {
        Command::Run(args) => run_cmd::run(&cli.globals, args),
        Command::State(args) => state_cmd::run(&cli.globals, args),
        Command::Token(cmd) => token_cmd::run(&cli.globals, cmd),
        Command::Tel(cmd) => tel_cmd::run(&cli.globals, cmd),
        Command::Hash(args) => hash_cmd::run(&cli.globals, args),
        Command::Setup(args) => prove_cmd::setup(&cli.globals, args),
        Command::Export(args) => prove_cmd::export(&cli.globals, args),
        Command::Verify(args) => prove_cmd::verify(&cli.globals, args),
        Command::Groth16(cmd) => groth16_cmd::run(&cli.globals, cmd),
        Command::Store(cmd) => store_cmd::run(&cli.globals, cmd),
        Command::Resource(cmd) => resource_cmd::run(&cli.globals, cmd),
        Command::Check(args) => check_cmd::run(&cli.globals, args),
        Command::ProveOps(args) => prove_ops_cmd::run(&cli.globals, args),
        Command::Serve(args) => serve_cmd::run(&cli.globals, args),
        Command::Worker(args) => worker_cmd::run(&cli.globals, args),
        Command::Submit(args) => client_cmd::submit(&cli.globals, args),
        Command::Jobs(cmd) => client_cmd::jobs(&cli.globals, cmd),
        Command::Status(args) => client_cmd::status(&cli.globals, args),
    };
    // Remembered only once the user could see it: not under --quiet, nor
    // with a log filter that hides warnings.
    let shown = tracing::enabled!(target: "causality_vm::gpu", tracing::Level::WARN);
    if !noticed && shown && causality_vm::gpu::cpu_fallback_said() {
        notices::remember_fallback_notice();
    }
    match outcome {
        Ok(code) => std::process::exit(code),
        Err(err) => std::process::exit(fail(&err, json)),
    }
}

/// A command line clap refused (or `--help`, `--version`): as clap says it,
/// or with `--json` anywhere in it, as a `--json` error; exit 2 (0 for help).
fn usage_error(err: clap::Error) -> ! {
    use clap::error::ErrorKind;
    let asked = matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    let json = std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json");
    if asked || !json {
        err.exit();
    }
    // clap's first line, without its "error: " and styling.
    let text = err.render().to_string();
    let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ").to_string();
    let report = serde_json::json!({ "error": first, "kind": "usage" });
    let _ = out!("{report}");
    std::process::exit(2)
}

/// Report the error that ended a command; returns the exit status: 2
/// (nothing changed), or 141 for output into a closed pipe, which ends the
/// command quietly as SIGPIPE would.
fn fail(err: &anyhow::Error, json: bool) -> i32 {
    if output::classify(err).is_some_and(output::OutputError::is_closed_pipe) {
        return 141;
    }
    if json {
        let report = serde_json::json!({ "error": output::error_text(err), "kind": error_kind(err) });
        if out!("{report}").is_ok() {
            return 2;
        }
    }
    note!("error: {}", output::error_text(err));
    2
}

/// What kind of failure ended a command, for `--json` errors.
fn error_kind(err: &anyhow::Error) -> &'static str {
    use causality_vm::batch::file::BatchFileError;
    for cause in err.chain() {
        if cause.is::<BatchFileError>() {
            return "batch_file";
        }
        if cause.is::<causality_vm::store::StoreError>() {
            return "store";
        }
        if let Some(causality_vm::prove::ProveError::Io { .. }) = cause.downcast_ref() {
            return "io";
        }
        if cause.is::<causality_vm::prove::ProveError>() || cause.is::<causality_vm::prove::circom::CircomError>() {
            return "proof";
        }
        if cause.is::<causality_vm::capability::CapabilityError>() {
            return "capability";
        }
        if let Some(e) = cause.downcast_ref::<causality_vm::ExecutionError>() {
            return e.kind();
        }
        if cause.is::<output::OutputError>() {
            return "output";
        }
        if cause.is::<output::NotFound>() {
            return "not_found";
        }
        if cause.is::<client_cmd::ServerError>() {
            return "server";
        }
        let unreached =
            matches!(cause.downcast_ref(), Some(causality_vm::service::client::ClientError::Connect { .. }));
        if unreached || cause.is::<client_cmd::ConnectionError>() {
            return "connection";
        }
        if cause.is::<std::io::Error>() {
            return "io";
        }
    }
    "usage"
}

/// Mesa's Vulkan and EGL drivers print "XDG_RUNTIME_DIR is invalid" on every
/// adapter probe when it is unset (containers, CI); give them a private one.
#[cfg(unix)]
fn ensure_runtime_dir() {
    use std::os::unix::fs::DirBuilderExt;
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|dir| !dir.is_empty()) {
        return;
    }
    let dir = std::env::temp_dir().join("cvm-xdg-runtime");
    if std::fs::DirBuilder::new().mode(0o700).create(&dir).is_ok() || dir.is_dir() {
        // Still single-threaded here: nothing else reads the environment yet.
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}

#[cfg(not(unix))]
fn ensure_runtime_dir() {}

/// Logs go to stderr: `RUST_LOG` (or its alias `CVM_LOG`) sets the filter,
/// warnings by default; colour only on a terminal and without `NO_COLOR`.
fn init_tracing(quiet: bool) {
    use std::io::IsTerminal;
    let default = if quiet { "error" } else { "warn" };
    let directives = ["RUST_LOG", "CVM_LOG"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| default.to_string());
    // arkworks' constraint-system spans (targets `gr1cs`, `r1cs`) format
    // the whole system at every gadget call: at debug level a small proof
    // never ends. Kept at warn unless asked for by name.
    let quiet_arkworks = match directives.contains("r1cs") {
        true => String::new(),
        false => ",gr1cs=warn,r1cs=warn".to_string(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{directives}{quiet_arkworks}"))
        .unwrap_or_else(|_| default.into());
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour).with_writer(std::io::stderr).try_init();
}
