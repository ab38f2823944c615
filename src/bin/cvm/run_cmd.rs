//! `cvm run BATCH.json...`: execute batch files and, in the modes that write,
//! commit them to the store in the data directory. Several files run as a
//! pipeline: each batch is proven while the next one executes.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use causality_vm::batch::file::{prepare, BatchFile};
use causality_vm::batch::{
    execute_batches, BatchExecutionResult, BatchJob, OpStatus, OperationResult, TransactionContext,
};
use causality_vm::content_id::hex_encode;
use causality_vm::prove::ProvingSystem;
use causality_vm::store::RegisterStore;
use causality_vm::vm::DEFAULT_BUDGET;
use causality_vm::ExecutionMode;

use crate::Globals;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The JSON batch files (format: docs/BATCH_FORMAT.md), run in order as
    /// one batch each; each batch is proven while the next one executes.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Stop at the first failing operation (the rest are skipped).
    #[arg(long)]
    pub fail_fast: bool,
    /// Commit only if every operation succeeds; otherwise roll back the whole batch.
    #[arg(long)]
    pub all_or_nothing: bool,
    /// With --mode debug: pause after each instruction (on a terminal).
    #[arg(long)]
    pub step: bool,
    /// Instruction budget of each logic run.
    #[arg(long, default_value_t = DEFAULT_BUDGET)]
    pub budget: u64,
    /// Operations per Groth16 proof (the key set used; made on first use).
    #[arg(long, default_value_t = 4)]
    pub ops_per_proof: usize,
    /// Commit without proving (Standard, ProofGeneration) and without
    /// loading the verifying key (Verify operations then fail).
    #[arg(long)]
    pub no_prove: bool,
}

/// Standard and ProofGeneration prove every batch, Verification checks
/// stored proofs: all need the key set (made with a notice on first use).
fn proof_system(globals: &Globals, args: &RunArgs, data_dir: &Path) -> anyhow::Result<Option<ProvingSystem>> {
    let needs_keys =
        matches!(globals.mode, ExecutionMode::Standard | ExecutionMode::ProofGeneration | ExecutionMode::Verification);
    if args.no_prove || !needs_keys {
        return Ok(None);
    }
    let quiet = globals.quiet;
    let system = ProvingSystem::load_or_setup(data_dir, args.ops_per_proof, globals.backend, |notice| {
        if !quiet {
            eprintln!("note: {notice}");
        }
    })
    .with_context(|| {
        format!("loading the proving keys ({} ops per proof; --no-prove skips proving)", args.ops_per_proof)
    })?;
    Ok(Some(system))
}

pub fn run(globals: &Globals, args: RunArgs) -> anyhow::Result<i32> {
    // Parse every file before opening anything: a malformed file changes nothing.
    let files = args.files.iter().map(|path| BatchFile::read(path)).collect::<Result<Vec<_>, _>>()?;
    let data_dir = globals.data_dir();
    let mut store = RegisterStore::open(&data_dir)
        .with_context(|| format!("opening the register store in {}", data_dir.display()))?;
    let chatty = !globals.quiet && !globals.json;
    let mut prepared = Vec::with_capacity(files.len());
    for (file, path) in files.into_iter().zip(&args.files) {
        let base = path.parent().unwrap_or(Path::new("."));
        let batch = prepare(file, &path.display().to_string(), base, &mut store, &data_dir.join("keys.json"))?;
        if chatty {
            for notice in &batch.notices {
                eprintln!("note: {notice}");
            }
            for (name, cid) in &batch.programs {
                eprintln!("program {name}: {cid}");
            }
        }
        prepared.push(batch);
    }

    let mut tx = TransactionContext::new(globals.mode).with_budget(args.budget);
    if args.fail_fast {
        tx = tx.fail_fast();
    }
    if args.all_or_nothing {
        tx = tx.all_or_nothing();
    }
    if let Some(system) = proof_system(globals, &args, &data_dir)? {
        tx = tx.with_proof_system(Arc::new(system));
    }
    let total_ops: usize = prepared.iter().map(|b| b.ops.len()).sum();
    let bar = (chatty && prepared.len() == 1 && std::io::stderr().is_terminal() && total_ops >= 1_000).then(|| {
        let bar = indicatif::ProgressBar::new(total_ops as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} executing {pos}/{len} ops [{bar:40}] {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    if let Some(bar) = &bar {
        let bar = bar.clone();
        tx = tx.with_progress(Arc::new(move |done| bar.set_position(done as u64)));
    }
    let jobs: Vec<BatchJob> =
        prepared.iter().map(|b| BatchJob { keys: &b.keys, ops: &b.ops, ctx: &b.ctx, tx: &tx }).collect();
    let outcomes = execute_batches(&mut store, &jobs);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    store.close().context("closing the store")?;

    let debug = globals.mode == ExecutionMode::Debug;
    if let [outcome] = outcomes.as_slice() {
        // One file: the result object (or the error alone), as always.
        let result = match outcome {
            Ok(result) => result,
            Err(e) => {
                return Err(anyhow::Error::new(e.clone()))
                    .context("the batch could not be committed; the store is unchanged by it")
            }
        };
        if globals.json {
            println!("{}", serde_json::to_string_pretty(result)?);
        } else {
            print_human(result, debug, args.step);
        }
        return Ok(if result.success_count == result.results.len() { 0 } else { 1 });
    }

    // Several files: one entry per file, in order, results and errors alike.
    let mut failures = Vec::new();
    let mut entries = Vec::with_capacity(outcomes.len());
    for (outcome, path) in outcomes.iter().zip(&args.files) {
        let file = path.display().to_string();
        match outcome {
            Ok(result) => {
                if !globals.json {
                    println!("== {file}");
                    print_human(result, debug, args.step);
                }
                entries.push(serde_json::json!({ "file": file, "result": result }));
            }
            Err(e) => {
                if !globals.json {
                    println!("== {file}\nnot committed: {e}");
                }
                entries.push(serde_json::json!({ "file": file, "error": e.to_string() }));
                failures.push(format!("{file}: {e}"));
            }
        }
    }
    if globals.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    }
    if !failures.is_empty() {
        anyhow::bail!(
            "{} of {} batches could not be committed (the store holds the others): {}",
            failures.len(),
            outcomes.len(),
            failures.join("; ")
        );
    }
    Ok(if outcomes.iter().flatten().all(|r| r.success_count == r.results.len()) { 0 } else { 1 })
}

fn print_human(result: &BatchExecutionResult, debug: bool, step: bool) {
    for r in &result.results {
        println!("{}", describe(r));
        if debug {
            print_traces(r, step);
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
    println!("{}/{} operations succeeded; {verdict}", result.success_count, result.results.len());
    println!("state root before: {}", hex_encode(&m.state_root_before));
    if let Some(after) = m.state_root_after {
        let label = if m.committed { "after" } else { "would be" };
        println!("state root {label}: {}", hex_encode(&after));
    }
    if let Some(change) = &m.would_change {
        println!(
            "would change: {} registers written, {} consumed, {} nullifiers spent",
            change.upserts.len(),
            change.removed.len(),
            change.nullifiers.len()
        );
    }
    let t = &m.timings;
    println!(
        "timings: execute {} µs, hash {} µs, prove {} µs, commit {} µs",
        t.execute_us, t.hash_us, t.prove_us, t.commit_us
    );
    if let Some(p) = &m.prove_stages {
        println!(
            "proofs: {} (witness {} µs, qap {} µs, msm g1 {} µs, msm g2 {} µs, verify {} µs, {} CPU retries)",
            p.proofs, p.witness_us, p.qap_us, p.msm_g1_us, p.msm_g2_us, p.verify_us, p.cpu_retries
        );
    }
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

fn print_traces(r: &OperationResult, step: bool) {
    let interactive = step && std::io::stdin().is_terminal();
    for t in &r.traces {
        let who = t.resource.map_or_else(|| "(new resource)".to_string(), |id| id.to_string());
        println!("  logic {} as {:?} for {who}: {} instructions", t.program, t.role, t.trace.steps.len());
        for (n, s) in t.trace.steps.iter().enumerate() {
            println!("    {s}");
            if interactive {
                let regs = t.trace.registers_after(n);
                print!("    registers {regs:?} — Enter for the next instruction, q to stop stepping ");
                let _ = std::io::stdout().flush();
                let mut line = String::new();
                if std::io::stdin().read_line(&mut line).is_err() || line.trim() == "q" {
                    return;
                }
            }
        }
        if let Some(e) = &t.error {
            println!("    -> {e}");
        }
    }
}
