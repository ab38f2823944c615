//! `cvm tel compile FILE` and `cvm tel check FILE`.

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use causality_vm::bounded::read_text_at_most;
use causality_vm::capability::CapabilityToken;
use causality_vm::hash::HashPool;
use causality_vm::resource::{NewResource, OperationKind, ResourceRegister};
use causality_vm::tel::{self, TelError};
use causality_vm::vm::{ExecutionTrace, Interpreter, LogicInput, Program, Role};
use causality_vm::{ContentId, DomainId, ExecutionContext};

use crate::output::OutputError;
use crate::Globals;

#[derive(clap::Subcommand)]
pub enum TelCommand {
    /// Compile a TEL file: print the program's ContentId and its disassembly.
    Compile {
        /// The TEL source file.
        file: PathBuf,
        /// Also write the encoded program (the bytes its ContentId hashes) here.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Check a TEL file for errors without printing the program.
    Check {
        /// The TEL source file.
        file: PathBuf,
    },
    /// Run a TEL program's logic for one resource, without a store: the
    /// verdict, and with --trace (or --mode debug) every step.
    Run(RunLogicArgs),
}

#[derive(clap::Args)]
pub struct RunLogicArgs {
    /// The TEL source file.
    file: PathBuf,
    /// The subject: a JSON resource in the batch-file "new resource" format.
    #[arg(long)]
    subject: PathBuf,
    /// Another resource of the operation (repeatable), same format.
    #[arg(long = "other")]
    others: Vec<PathBuf>,
    /// create, read, update, delete, transfer or verify.
    #[arg(long, default_value = "transfer")]
    op: String,
    /// consumed, created, read, updated_before, updated_after or verified.
    #[arg(long, default_value = "consumed")]
    role: String,
    /// The context's timestamp (default: the current time).
    #[arg(long)]
    now: Option<u64>,
    /// The context's domain (default: the subject's).
    #[arg(long)]
    domain: Option<String>,
    /// An environment entry KEY=VALUE (repeatable).
    #[arg(long = "env")]
    environment: Vec<String>,
    /// Run as if the capabilities did not allow reading the other resources.
    #[arg(long)]
    unreadable_others: bool,
    /// Instruction budget.
    #[arg(long, default_value_t = causality_vm::vm::DEFAULT_BUDGET)]
    budget: u64,
    /// Print every executed instruction with its register writes and memory effects.
    #[arg(long)]
    trace: bool,
    /// `debug` prints the trace as --trace does; the other modes change nothing here.
    #[arg(long, default_value = "standard")]
    mode: causality_vm::ExecutionMode,
    /// Step through the trace: one step per line read from stdin
    /// (Enter: next step, `r`: registers, `c`: continue to the end, `q`: quit).
    #[arg(long)]
    step: bool,
}

pub fn run(globals: &Globals, cmd: TelCommand) -> anyhow::Result<i32> {
    match cmd {
        TelCommand::Compile { file, out } => {
            let Some(program) = compile_file(globals, &file)? else { return Ok(1) };
            let encoding = program.encode();
            let id = ContentId::of_encoding(&encoding);
            if let Some(out) = &out {
                std::fs::write(out, &encoding).with_context(|| format!("writing {}", out.display()))?;
            }
            if globals.json {
                let json = serde_json::json!({
                    "file": file.display().to_string(),
                    "content_id": id.to_string(),
                    "size": encoding.len(),
                    "format": program.format(),
                    "instructions": program.instructions().len(),
                    "disassembly": program.disassemble(),
                });
                out!("{}", serde_json::to_string_pretty(&json)?)?;
            } else {
                out!("{id}")?;
                crate::output::prompt(format_args!("{}", program.disassemble()))?;
            }
            Ok(0)
        }
        TelCommand::Run(args) => run_logic(globals, args),
        TelCommand::Check { file } => {
            let Some(program) = compile_file(globals, &file)? else { return Ok(1) };
            if globals.json {
                let json = serde_json::json!({ "file": file.display().to_string(), "ok": true,
                    "content_id": ContentId::of_encoding(&program.encode()).to_string() });
                out!("{json}")?;
            } else if !globals.quiet {
                out!(
                    "{}: ok ({} instructions, program format {})",
                    file.display(),
                    program.instructions().len(),
                    program.format()
                )?;
            }
            Ok(0)
        }
    }
}

/// The compiled program, or `None` after printing the TEL error (with the
/// file, line and column, and the offending line).
fn compile_file(globals: &Globals, file: &Path) -> anyhow::Result<Option<Program>> {
    let limit = causality_vm::batch::file::MAX_PROGRAM_BYTES;
    let source = read_text_at_most(file, limit).with_context(|| format!("reading {}", file.display()))?;
    match tel::compile(&source) {
        Ok(program) => Ok(Some(program)),
        Err(err) => {
            report(globals, file, &source, &err)?;
            Ok(None)
        }
    }
}

fn report(globals: &Globals, file: &Path, source: &str, err: &TelError) -> Result<(), OutputError> {
    if globals.json {
        let json = serde_json::json!({ "file": file.display().to_string(), "ok": false,
            "error": { "line": err.line, "column": err.col, "message": err.message } });
        out!("{json}")?;
    } else {
        note!("{}:{}", file.display(), err.render(source));
    }
    Ok(())
}

/// `cvm tel run`: the verdict of one logic run, its trace on request.
/// Exit 0 on accept, 1 on any rejection or execution error.
fn run_logic(globals: &Globals, args: RunLogicArgs) -> anyhow::Result<i32> {
    let Some(program) = compile_file(globals, &args.file)? else { return Ok(1) };
    let mut subject = load_resource(&args.subject)?;
    // The subject runs this program, so errors name it by its ContentId.
    subject.logic = ContentId::of_encoding(&program.encode());
    let others = args.others.iter().map(|p| load_resource(p)).collect::<anyhow::Result<Vec<_>>>()?;
    let other_refs: Vec<&ResourceRegister> = others.iter().collect();
    let ctx = logic_context(&args, &subject)?;
    let input = LogicInput {
        operation: parse_name(&args.op, &OperationKind::ALL, "operation")?,
        role: parse_name(&args.role, &Role::ALL, "role")?,
        subject: &subject,
        others: &other_refs,
        readable_others: !args.unreadable_others,
        ctx: &ctx,
    };
    let mut pool = HashPool::new();
    let traced = Interpreter::new(args.budget).run_traced(&program, &input, &mut pool);
    pool.flush().context("flushing the hash pool")?;
    // Digest assertions are checked once the pool has flushed, as in a batch.
    let result = traced
        .result
        .and_then(|outcome| outcome.deferred.iter().try_for_each(|a| a.check(&pool)).map(|()| outcome.instructions));
    let show_trace = args.trace || args.mode == causality_vm::ExecutionMode::Debug;
    if globals.json {
        let json = serde_json::json!({
            "accepted": result.is_ok(),
            "instructions": result.as_ref().ok(),
            "error": result.as_ref().err().map(|e| serde_json::json!({ "kind": e.kind(), "message": e.to_string() })),
            "trace": show_trace.then_some(&traced.trace),
        });
        out!("{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        let mut out = std::io::stdout().lock();
        if args.step {
            step_through(&traced.trace, &mut out)?;
        } else if show_trace {
            write!(out, "{}", traced.trace)?;
        }
        match &result {
            Ok(instructions) => writeln!(out, "accept ({instructions} instructions)")?,
            Err(err) => writeln!(out, "reject: {err}")?,
        }
    }
    Ok(if result.is_ok() { 0 } else { 1 })
}

/// One step per line of stdin; `r` shows the registers, `c` runs to the end, `q` stops.
fn step_through(trace: &ExecutionTrace, out: &mut impl Write) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut at = 0;
    let mut running = false;
    while let Some(step) = trace.steps.get(at) {
        writeln!(out, "{step}")?;
        if !running {
            match lines.next().transpose()?.as_deref().map(str::trim) {
                None | Some("q") => return Ok(()),
                Some("c") => running = true,
                Some("r") => {
                    let regs = trace.registers_after(at);
                    let shown: Vec<String> = regs.iter().enumerate().map(|(i, v)| format!("r{i}={v:#x}")).collect();
                    writeln!(out, "    {}", shown.join(" "))?;
                }
                Some(_) => {}
            }
        }
        at += 1;
    }
    Ok(())
}

/// The most a resource file may hold (a register's fields are bounded far below).
const MAX_RESOURCE_FILE_BYTES: u64 = 1 << 24;

fn load_resource(path: &Path) -> anyhow::Result<ResourceRegister> {
    let text =
        read_text_at_most(path, MAX_RESOURCE_FILE_BYTES).with_context(|| format!("reading {}", path.display()))?;
    let new: NewResource = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))?;
    let id = ContentId::of_encoding(&new.id_encoding());
    Ok(new.into_register(id))
}

fn logic_context(args: &RunLogicArgs, subject: &ResourceRegister) -> anyhow::Result<ExecutionContext> {
    let mut environment = BTreeMap::new();
    for entry in &args.environment {
        let (key, value) =
            entry.split_once('=').ok_or_else(|| anyhow::anyhow!("--env {entry:?}: expected KEY=VALUE"))?;
        // As a batch file refuses a duplicate environment key.
        if environment.insert(key.to_string(), value.to_string()).is_some() {
            anyhow::bail!("--env {key}: given twice; give each key once");
        }
    }
    let now = match args.now {
        Some(now) => now,
        None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    };
    let domain = args.domain.as_ref().map(DomainId::new).unwrap_or_else(|| subject.domain.clone());
    Ok(ExecutionContext {
        domain_id: domain.clone(),
        trace_id: "cvm-tel-run".into(),
        // Logic programs never see the token; capability checks belong to the batch executor.
        capability_token: CapabilityToken { domain, identifier: [0; 16], caveats: Vec::new(), tag: [0; 32] },
        timestamp: now,
        environment,
        cross_domain_grants: Vec::new(),
    })
}

/// Parse `name` as the snake_case name of one of `all` (as TEL writes them).
fn parse_name<T: Copy + std::fmt::Debug>(name: &str, all: &[T], what: &str) -> anyhow::Result<T> {
    let snake = |v: &T| {
        let mut out = String::new();
        for (i, c) in format!("{v:?}").chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    };
    all.iter().copied().find(|v| snake(v) == name).ok_or_else(|| {
        let names: Vec<String> = all.iter().map(snake).collect();
        anyhow::anyhow!("unknown {what} {name:?}: expected one of {}", names.join(", "))
    })
}
