//! `cvm run BATCH.json...`: execute batch files and, in the modes that write,
//! commit them to the store in the data directory. Several files run as a
//! pipeline: each batch is proven while the next one executes.
//!
//! Exit status: 0 every operation succeeded; 1 some failed (or, with
//! several files, some batches did not commit while others did); 2 nothing
//! changed (a bad file, an unusable store, a batch that could not commit).
//! Once a batch has committed the status is never 2: a failure to close
//! the store or to print the results after that is reported on stderr.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use causality_vm::batch::file::{base_dir, check, BatchFile, Keys, PreparedBatch};
use causality_vm::batch::{
    execute_batches, BatchExecutionResult, BatchJob, Content, OpStatus, OperationResult, TransactionContext,
};
use causality_vm::content_id::hex_encode;
use causality_vm::hash::HashBackend;
use causality_vm::prove::{check_ops_per_proof, ProvingSystem, StoredKeys};
use causality_vm::store::{RegisterStore, StoreError};
use causality_vm::vm::DEFAULT_BUDGET;
use causality_vm::{ExecutionError, ExecutionMode};

use crate::output::OutputError;
use crate::{progress, Globals};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The JSON batch files (format: docs/BATCH_FORMAT.md), run in order as
    /// one batch each; `-` reads one from standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// standard, verification, simulation, proof-generation or debug.
    /// Simulation and verification open the store read-only and write nothing.
    #[arg(long, default_value = "standard")]
    pub mode: ExecutionMode,
    /// Stop at the first failing operation (the rest are skipped).
    #[arg(long)]
    pub fail_fast: bool,
    /// Commit only if every operation succeeds; otherwise roll back the whole batch.
    #[arg(long)]
    pub all_or_nothing: bool,
    /// With --mode debug (one file): step through every logic run before the
    /// batch commits, one instruction per line read from standard input
    /// (Enter: next, c: run to the end and commit, q or end of input: quit
    /// without committing).
    #[arg(long)]
    pub step: bool,
    /// Instruction budget of each logic run (each 64 bytes hashed or compared count one more).
    #[arg(long, default_value_t = DEFAULT_BUDGET)]
    pub budget: u64,
    /// Operations per Groth16 proof (the key set used; made on first use).
    #[arg(long, default_value_t = 4, value_parser = ops_per_proof)]
    pub ops_per_proof: usize,
    /// Commit without proving (Standard, ProofGeneration) and without
    /// loading the verifying keys (Verify operations then fail).
    #[arg(long)]
    pub no_prove: bool,
    /// Refuse a batch whose timestamp lies more than this many seconds from
    /// this machine's clock, either way (`off`: no limit). Committed
    /// timestamps never go back, whatever this says.
    #[arg(long, default_value = "300", value_parser = clock_skew, value_name = "SECONDS|off")]
    pub max_clock_skew: ClockSkew,
}

/// `--max-clock-skew`: seconds, or None for no limit.
#[derive(Clone, Copy, Debug)]
pub struct ClockSkew(pub Option<u64>);

pub fn ops_per_proof(text: &str) -> Result<usize, String> {
    let k: usize = text.parse().map_err(|e| format!("{e}"))?;
    check_ops_per_proof(k).map_err(|e| e.to_string())?;
    Ok(k)
}

pub fn clock_skew(text: &str) -> Result<ClockSkew, String> {
    match text {
        "off" | "none" => Ok(ClockSkew(None)),
        seconds => {
            seconds.parse().map(|s| ClockSkew(Some(s))).map_err(|e| format!("{e}: a number of seconds, or `off`"))
        }
    }
}

pub fn run(globals: &Globals, args: RunArgs) -> anyhow::Result<i32> {
    // Parse every file before opening anything: a malformed file changes nothing.
    if args.files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
        anyhow::bail!("standard input (`-`) can be read only once");
    }
    if args.step && (args.mode != ExecutionMode::Debug || args.files.len() != 1) {
        anyhow::bail!("--step steps through one file's debug run: give --mode debug and one file");
    }
    let files = args.files.iter().map(|path| BatchFile::read(path)).collect::<Result<Vec<_>, _>>()?;
    let data_dir = globals.data_dir();
    let writes = args.mode.writes_store();
    let chatty = !globals.quiet && !globals.json;
    let checked = files
        .into_iter()
        .zip(&args.files)
        .map(|(file, path)| check(file, &path.display().to_string(), &base_dir(path)))
        .collect::<Result<Vec<_>, _>>()?;
    // Everything checked: now the store, then the domain keys a "mint" needs.
    let mut store = open_store(&data_dir, writes, chatty)?;
    let keys_path = data_dir.join("keys.json");
    let keys = match writes {
        true => Keys::Create(&keys_path),
        false => Keys::ReadOnly(&keys_path),
    };
    let mut prepared = Vec::with_capacity(checked.len());
    for batch in checked {
        let batch = batch.prepare(keys)?;
        if chatty {
            for notice in &batch.notices {
                note!("note: {notice}");
            }
            for program in &batch.programs {
                note!("program {}: {}", program.name, program.id);
            }
        }
        prepared.push(batch);
    }

    let tx = transaction(globals, &args, &data_dir, &prepared)?;
    let contents: Vec<Vec<Content>> = prepared.iter().map(PreparedBatch::content).collect();
    let jobs: Vec<BatchJob> = prepared
        .iter()
        .zip(&contents)
        .map(|(b, content)| BatchJob::new(&b.keys, &b.ops, &b.ctx, &tx).with_programs(content))
        .collect();
    let stepped = args.mode == ExecutionMode::Debug && args.step && jobs.len() == 1;
    if stepped && !step_before_commit(store.store(), jobs[0])? {
        store.close()?;
        return Ok(2);
    }
    let outcomes = execute_batches(store.store(), &jobs);
    // A commit that failed and could not be undone on disk may have
    // committed: never "nothing changed" (exit 2), which invites a retry.
    let uncertain = store.store().commit_uncertain();
    let committed = uncertain || outcomes.iter().any(|o| matches!(o, Ok(r) if r.metadata.committed));
    if let Err(e) = store.close() {
        if !committed {
            return Err(e).context("closing the store");
        }
        note!(
            "warning: closing the store failed ({e}); the committed batches are durable in its log and the next \
             open checkpoints them"
        );
    }
    let code = match uncertain {
        true => 1,
        false => exit_code(&outcomes),
    };
    match report(globals, &args, &outcomes, stepped) {
        Ok(()) => Ok(code),
        Err(e) if committed => {
            if !e.is_closed_pipe() {
                note!("warning: {e}; the batches shown as committed in `cvm state history` are committed");
            }
            Ok(code)
        }
        Err(e) => Err(e.into()),
    }
}

/// The store to run against: opened for writing, or read-only for the modes
/// that write nothing (simulating on a data dir without a store yet runs
/// against an empty scratch store that is removed afterwards).
fn open_store(data_dir: &Path, writes: bool, chatty: bool) -> anyhow::Result<StoreHandle> {
    let context = || format!("opening the register store in {}", data_dir.display());
    if writes {
        return Ok(StoreHandle::Store(RegisterStore::open(data_dir).with_context(context)?));
    }
    match RegisterStore::open_read_only(data_dir) {
        Ok(store) => Ok(StoreHandle::Store(store)),
        Err(StoreError::Missing { .. }) if !RegisterStore::file_in(data_dir).exists() => {
            if chatty {
                note!("note: {} holds no store yet: running against an empty one", data_dir.display());
            }
            let scratch = std::env::temp_dir().join(format!("cvm-scratch-{}-{}", std::process::id(), rand_suffix()));
            let store = RegisterStore::open(&scratch).context("creating a scratch store")?;
            Ok(StoreHandle::Scratch(store, scratch))
        }
        Err(e) => Err(e).with_context(context),
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos() as u64)
}

enum StoreHandle {
    Store(RegisterStore),
    /// An empty store in a temporary directory, removed when closed.
    Scratch(RegisterStore, PathBuf),
}

impl StoreHandle {
    fn store(&mut self) -> &mut RegisterStore {
        match self {
            StoreHandle::Store(store) | StoreHandle::Scratch(store, _) => store,
        }
    }

    fn close(self) -> Result<(), StoreError> {
        match self {
            StoreHandle::Store(store) => store.close(),
            StoreHandle::Scratch(store, dir) => {
                drop(store);
                let _ = std::fs::remove_dir_all(dir);
                Ok(())
            }
        }
    }
}

/// The transaction every batch of the run shares, with its proof system:
/// the proving keys where batches are proven, the verifying keys alone in
/// verification mode.
fn transaction(
    globals: &Globals,
    args: &RunArgs,
    data_dir: &Path,
    prepared: &[PreparedBatch],
) -> anyhow::Result<TransactionContext> {
    let mut tx = TransactionContext::new(args.mode).with_budget(args.budget);
    // The batch's hashes run where --backend says (with auto: a real GPU).
    tx.hashing = HashBackend::select(globals.backend).context("selecting the hash backend")?;
    tx.max_clock_skew = args.max_clock_skew.0;
    if args.fail_fast {
        tx = tx.fail_fast();
    }
    if args.all_or_nothing {
        tx = tx.all_or_nothing();
    }
    let total_ops: usize = prepared.iter().map(|b| b.ops.len()).sum();
    match args.mode {
        // Batches with no operations commit nothing and prove nothing: no
        // keys to load (or set up) for them.
        _ if args.no_prove || total_ops == 0 => {}
        ExecutionMode::Standard | ExecutionMode::ProofGeneration => {
            let system = load_proving_system(globals, data_dir, args.ops_per_proof, "; --no-prove skips proving")?;
            if let Some(bar) = progress::bar(globals, 0, "proving", false) {
                system.set_progress(Some(Arc::new(move |done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                    if done == total {
                        bar.finish_and_clear();
                        bar.reset();
                    }
                })));
            }
            tx = tx.with_proof_system(Arc::new(system));
        }
        ExecutionMode::Verification => tx = tx.with_proof_system(Arc::new(StoredKeys::new(data_dir))),
        ExecutionMode::Simulation | ExecutionMode::Debug => {}
    }
    let bar = (prepared.len() == 1 && total_ops >= 1_000)
        .then(|| progress::bar(globals, total_ops as u64, "executing ops", false))
        .flatten();
    if let Some(bar) = bar {
        tx = tx.with_progress(Arc::new(move |done| {
            bar.set_position(done as u64);
            if done + 256 >= total_ops {
                bar.finish_and_clear();
            }
        }));
    }
    Ok(tx)
}

/// The proving keys for `ops_per_proof` (made by a local setup if the data
/// dir has none, with a notice), with a spinner while they load.
/// `hint` ends the error's first line (what the command offers instead).
pub fn load_proving_system(
    globals: &Globals,
    data_dir: &Path,
    ops_per_proof: usize,
    hint: &str,
) -> anyhow::Result<ProvingSystem> {
    let spinner = progress::spinner(globals, format!("loading the proving keys ({ops_per_proof} ops per proof)"));
    let quiet = globals.quiet;
    let system = ProvingSystem::load_or_setup(data_dir, ops_per_proof, globals.backend, |notice| {
        if let Some(spinner) = &spinner {
            spinner.set_message(format!("setting up keys for {ops_per_proof} ops per proof"));
        }
        if !quiet {
            note!("note: {notice}");
        }
    })
    .with_context(|| format!("loading the proving keys ({ops_per_proof} ops per proof{hint})"));
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    system
}

type Outcome = Result<BatchExecutionResult, ExecutionError>;

/// See the module docs.
fn exit_code(outcomes: &[Outcome]) -> i32 {
    let committed = outcomes.iter().filter(|o| matches!(o, Ok(r) if r.metadata.committed)).count();
    let all_ok = outcomes.iter().all(|o| matches!(o, Ok(r) if r.success_count == r.results.len()));
    match (all_ok, outcomes.iter().any(Result::is_err)) {
        (true, _) => 0,
        (false, true) if committed == 0 => 2,
        (false, _) => 1,
    }
}

/// Print the results (the traces in debug mode, unless they were stepped through already).
fn report(globals: &Globals, args: &RunArgs, outcomes: &[Outcome], stepped: bool) -> Result<(), OutputError> {
    let debug = args.mode == ExecutionMode::Debug && !stepped;
    if let [outcome] = outcomes {
        // One file: the result object (or the error alone).
        match outcome {
            Ok(result) if globals.json => out!("{}", to_json(result))?,
            Ok(result) => print_human(result, debug && !globals.quiet, globals.quiet)?,
            Err(e) if globals.json => out!("{}", error_json(e))?,
            Err(e) => note!("error: the batch could not be committed; the store is unchanged by it: {e}"),
        }
        return crate::output::flush();
    }
    // Several files: one entry per file, in order, results and errors alike.
    let mut entries = Vec::with_capacity(outcomes.len());
    for (outcome, path) in outcomes.iter().zip(&args.files) {
        let file = path.display().to_string();
        match outcome {
            Ok(result) if globals.json => entries.push(serde_json::json!({ "file": file, "result": result })),
            Err(e) if globals.json => {
                entries.push(serde_json::json!({ "file": file, "error": e.to_string(), "kind": e.kind() }))
            }
            Ok(result) => {
                out!("== {file}")?;
                print_human(result, debug && !globals.quiet, globals.quiet)?;
            }
            Err(e) => out!("== {file}\nnot committed: {e}")?,
        }
    }
    if globals.json {
        out!("{}", serde_json::to_string_pretty(&entries).unwrap_or_default())?;
    }
    let failed = outcomes.iter().filter(|o| o.is_err()).count();
    if failed > 0 {
        note!("{failed} of {} batches could not be committed (the store holds the others)", outcomes.len());
    }
    crate::output::flush()
}

fn to_json(result: &BatchExecutionResult) -> String {
    serde_json::to_string_pretty(result).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn error_json(e: &ExecutionError) -> serde_json::Value {
    serde_json::json!({
        "error": format!("the batch could not be committed; the store is unchanged by it: {e}"),
        "kind": e.kind(),
    })
}

fn print_human(result: &BatchExecutionResult, debug: bool, quiet: bool) -> Result<(), OutputError> {
    if !quiet {
        for r in &result.results {
            out!("{}", describe(r))?;
            if debug {
                print_traces(r, false)?;
            }
        }
    }
    let m = &result.metadata;
    let verdict = if m.committed {
        format!("committed as batch {}", m.batch_number.unwrap_or_default())
    } else if m.rolled_back {
        "rolled back (all-or-nothing): nothing was written".to_string()
    } else if !m.mode.writes_store() {
        format!("{:?} mode: nothing was written", m.mode)
    } else {
        "nothing to commit".to_string()
    };
    out!("{}/{} operations succeeded; {verdict}", result.success_count, result.results.len())?;
    if quiet {
        return Ok(());
    }
    out!("state root before: {}", hex_encode(&m.state_root_before))?;
    if let Some(after) = m.state_root_after {
        let label = if m.committed { "after" } else { "would be" };
        out!("state root {label}: {}", hex_encode(&after))?;
    }
    if let Some(change) = &m.would_change {
        out!(
            "would change: {} registers written, {} consumed, {} nullifiers spent",
            change.upserts.len(),
            change.removed.len(),
            change.nullifiers.len()
        )?;
    }
    let t = &m.timings;
    out!(
        "timings: execute {} µs, hash {} µs, prove {} µs, commit {} µs",
        t.execute_us,
        t.hash_us,
        t.prove_us,
        t.commit_us
    )?;
    let on = |b: Option<causality_vm::ResolvedBackend>| b.map_or("-".to_string(), |b| format!("{b:?}").to_lowercase());
    let b = &m.backends;
    out!(
        "backends: execute {} ({} threads, {} operations side by side), hash {}, prove {}, quotient {}",
        on(b.execute),
        b.execute_threads,
        b.ran_ahead,
        on(b.hash),
        on(b.prove),
        on(b.quotient)
    )?;
    if b.poseidon_on_cpu + b.poseidon_on_gpu > 0 {
        out!("  (Poseidon: {} requests on the CPU, {} on the GPU)", b.poseidon_on_cpu, b.poseidon_on_gpu)?;
    }
    if b.hash_fallbacks > 0 {
        out!("  ({} hash flushes failed on the GPU and were recomputed on the CPU)", b.hash_fallbacks)?;
    }
    if let Some(p) = &m.prove_stages {
        out!(
            "proofs: {} (witness {} µs, qap {} µs, msm g1 {} µs, msm g2 {} µs, verify {} µs, {} CPU retries)",
            p.proofs,
            p.witness_us,
            p.qap_us,
            p.msm_g1_us,
            p.msm_g2_us,
            p.verify_us,
            p.cpu_retries
        )?;
    }
    Ok(())
}

fn describe(r: &OperationResult) -> String {
    let head = format!("#{} {:?}", r.index, r.kind);
    match &r.status {
        OpStatus::Skipped => format!("{head}: skipped (fail-fast)"),
        OpStatus::Failed(e) => format!("{head}: FAILED {}: {e}", e.kind()),
        OpStatus::Succeeded(o) => {
            let mut parts = Vec::new();
            parts.extend(o.created.iter().map(|id| format!("created {id}")));
            parts.extend(o.consumed.iter().map(|id| format!("consumed {id}")));
            parts.extend(o.updated.iter().map(|(id, v)| format!("updated {id} to version {v}")));
            if let Some(reg) = &o.read {
                parts.push(format!(
                    "read {}: {:?}, {} {}, version {}",
                    reg.id, reg.state, reg.quantity, reg.fungibility_domain, reg.version
                ));
            }
            if let Some(v) = &o.verified {
                parts.push(format!("verified: {v}"));
            }
            format!("{head}: ok{}{}", if parts.is_empty() { "" } else { ": " }, parts.join(", "))
        }
    }
}

/// Print an operation's logic traces; while `stepping`, pause after each
/// step. Returns whether to go on stepping (`q` stops it).
fn print_traces(r: &OperationResult, mut stepping: bool) -> Result<bool, OutputError> {
    for t in &r.traces {
        let who = t.resource.map_or_else(|| "(new resource)".to_string(), |id| id.to_string());
        let executed = t.trace.steps.len() as u64 + t.trace.omitted;
        out!("  logic {} as {:?} for {who}: {executed} instructions", t.program, t.role)?;
        for (n, s) in t.trace.steps.iter().enumerate() {
            if t.trace.omitted > 0 && n == t.trace.omitted_at {
                out!("    … {} steps not kept …", t.trace.omitted)?;
            }
            out!("    {s}")?;
            if stepping {
                let regs = t.trace.registers_after(n);
                crate::output::prompt(format_args!(
                    "    registers {regs:?} — Enter: next instruction, c: run to the end and commit, q: quit without committing "
                ))?;
                let mut line = String::new();
                match std::io::stdin().read_line(&mut line).map(|_| line.trim().to_string()) {
                    // Run to the end: no more pauses.
                    Ok(answer) if answer == "c" => stepping = false,
                    Ok(answer) if answer != "q" => {}
                    _ => return Err(OutputError(std::io::Error::other(QUIT))),
                }
            }
        }
        if let Some(e) = &t.error {
            out!("    -> {e}")?;
        }
    }
    Ok(stepping)
}

/// The "error" that ends stepping when the user quits.
const QUIT: &str = "stepping stopped (q): the batch was not committed";

/// `--mode debug --step`: the batch runs first as a traced simulation,
/// stepped through instruction by instruction, and commits only if the
/// stepping is not quit. Returns false when it was.
fn step_before_commit(store: &mut RegisterStore, job: BatchJob<'_>) -> Result<bool, OutputError> {
    let mut simulation = job.tx.clone();
    simulation.mode = ExecutionMode::Simulation;
    simulation.trace = true;
    simulation.proof_system = None;
    let outcome = execute_batches(store, &[BatchJob { tx: &simulation, ..job }]).pop();
    let Some(Ok(result)) = outcome else { return Ok(true) };
    let mut stepping = true;
    for r in &result.results {
        out!("{}", describe(r))?;
        stepping = match print_traces(r, stepping) {
            Ok(stepping) => stepping,
            Err(e) if e.0.to_string() == QUIT => {
                note!("{QUIT}");
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
    }
    Ok(true)
}
