//! `cvm store check` and `cvm store recover --to-last-good`: what to do
//! with a store that reports damage (docs/SECURITY.md).

use anyhow::bail;
use causality_vm::content_id::hex_encode;
use causality_vm::store::repair;

use crate::Globals;

#[derive(clap::Subcommand)]
pub enum StoreCommand {
    /// Read the whole store (tables, log, state root) without changing it,
    /// and list every problem; exit status 1 if there is any.
    Check,
    /// Keep the batch log up to the last batch before its first damage and
    /// move everything after it into `recovered-<time>/` in the data dir.
    Recover {
        /// Required: the batches after the damage are no longer part of the store.
        #[arg(long)]
        to_last_good: bool,
    },
}

pub fn run(globals: &Globals, cmd: StoreCommand) -> anyhow::Result<i32> {
    let dir = globals.data_dir();
    match cmd {
        StoreCommand::Check => {
            let report = repair::check(&dir);
            if globals.json {
                out!("{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                for file in &report.files {
                    let batches = file.batches.map_or("no batches".to_string(), |(a, b)| format!("batches {a} to {b}"));
                    out!("{}: {batches}, {}", file.path.display(), file.status)?;
                }
                if let (Some(head), Some(root)) = (report.head, &report.state_root) {
                    out!("head batch {head}, state root {} (recomputed and matching its record)", hex_encode(root))?;
                }
                for problem in &report.problems {
                    out!("PROBLEM: {problem}")?;
                }
                for note in &report.notes {
                    out!("note: {note}")?;
                }
                out!("{}", if report.is_sound() { "the store is sound" } else { "the store is damaged" })?;
            }
            Ok(if report.is_sound() { 0 } else { 1 })
        }
        StoreCommand::Recover { to_last_good } => {
            if !to_last_good {
                bail!("say what to recover to: --to-last-good (the only recovery there is)");
            }
            let recovery = repair::recover_to_last_good(&dir)?;
            if globals.json {
                out!("{}", serde_json::to_string_pretty(&recovery)?)?;
            } else if let Some(aside) = &recovery.aside {
                out!("the log now ends at batch {}", recovery.last_good)?;
                if !recovery.lost.is_empty() {
                    let lost: Vec<String> = recovery.lost.iter().map(u64::to_string).collect();
                    out!("batches no longer in the store: {}", lost.join(", "))?;
                }
                out!("the damaged part and everything after it were moved to {}", aside.display())?;
            } else {
                out!("nothing to recover: the log has no damage (it ends at batch {})", recovery.last_good)?;
            }
            Ok(0)
        }
    }
}
