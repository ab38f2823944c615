//! `cvm state [root | register ID | history [--limit N]]`: read-only, so any
//! number of them run at once and beside a `cvm run`.

use anyhow::{anyhow, Context};
use causality_vm::content_id::hex_encode;
use causality_vm::resource::{ResourceId, ResourceRegister};
use causality_vm::store::RegisterStore;
use serde_json::json;

use crate::output::NotFound;
use crate::Globals;

#[derive(clap::Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub what: Option<StateWhat>,
}

#[derive(clap::Subcommand)]
pub enum StateWhat {
    /// The state root and what it covers (the default).
    Root,
    /// One register by id (cid:blake3:…).
    Register { id: String },
    /// The batch log, newest first.
    History {
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
}

pub fn run(globals: &Globals, args: StateArgs) -> anyhow::Result<i32> {
    let data_dir = globals.data_dir();
    let store = RegisterStore::open_read_only(&data_dir)
        .with_context(|| format!("opening the register store in {}", data_dir.display()))?;
    match args.what.unwrap_or(StateWhat::Root) {
        StateWhat::Root => {
            let root = hex_encode(&store.state_root());
            if globals.json {
                let v = json!({"state_root": root, "head": store.head(), "registers": store.len(), "nullifiers": store.nullifier_count()});
                out!("{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                out!("state root {root}")?;
                out!(
                    "batch {} · {} live registers · {} nullifiers spent",
                    store.head(),
                    store.len(),
                    store.nullifier_count()
                )?;
            }
            Ok(0)
        }
        StateWhat::Register { id } => {
            let id: ResourceId = id.parse().map_err(|e| anyhow!("register id: {e}"))?;
            match store.entry(&id) {
                Some(entry) if globals.json => {
                    let v = json!({"register": entry.register, "commitment": hex_encode(&entry.commitment)});
                    out!("{}", serde_json::to_string_pretty(&v)?)?;
                    Ok(0)
                }
                Some(entry) => {
                    print_register(entry.register, &entry.commitment)?;
                    Ok(0)
                }
                None => match store.consumed_in(&id) {
                    Some(batch) => {
                        if globals.json {
                            out!("{}", json!({"id": id, "state": "Consumed", "consumed_in_batch": batch}))?;
                        } else {
                            out!("{id} was consumed in batch {batch}; its nullifier is spent")?;
                        }
                        Ok(1)
                    }
                    None => Err(NotFound(format!("no register {id} in {}", data_dir.display())).into()),
                },
            }
        }
        StateWhat::History { limit } => {
            let records = store.history(limit)?;
            if globals.json {
                out!("{}", serde_json::to_string_pretty(&records)?)?;
            } else if records.is_empty() && store.head() == 0 {
                out!("no batches committed yet")?;
            } else if records.is_empty() {
                out!("{} batches committed (none shown with --limit {limit})", store.head())?;
            } else {
                for r in records {
                    out!(
                        "batch {:>5}  {}  {}/{} ok  +{} ~{} -{}  root {}  trace {}{}",
                        r.number,
                        r.mode,
                        r.success_count,
                        r.ops_count,
                        r.created,
                        r.updated,
                        r.consumed,
                        &hex_encode(&r.state_root_after)[..16],
                        r.trace_id,
                        if r.proof.is_some() { "  (proof)" } else { "" }
                    )?;
                }
            }
            Ok(0)
        }
    }
}

fn print_register(r: &ResourceRegister, commitment: &[u8; 32]) -> Result<(), crate::output::OutputError> {
    out!("register     {}", r.id)?;
    out!("state        {:?}, version {}", r.state, r.version)?;
    out!("domain       {}", r.domain)?;
    out!("quantity     {} {}", r.quantity, r.fungibility_domain)?;
    out!("controller   {}", r.controller)?;
    out!("logic        {}", r.logic)?;
    out!("nk commit    {}", hex_encode(&r.nullifier_key_commitment))?;
    out!("commitment   {}", hex_encode(commitment))?;
    for (k, v) in &r.metadata {
        out!("metadata     {k} = {v}")?;
    }
    if !r.contents.is_empty() {
        out!("contents     {}", hex_encode(&r.contents))?;
    }
    Ok(())
}
