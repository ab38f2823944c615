//! `cvm state [root | register ID | history [--limit N]]`.

use anyhow::{anyhow, Context};
use causality_vm::content_id::hex_encode;
use causality_vm::resource::ResourceId;
use causality_vm::store::RegisterStore;
use serde_json::json;

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
    let store = RegisterStore::open(&data_dir)
        .with_context(|| format!("opening the register store in {}", data_dir.display()))?;
    match args.what.unwrap_or(StateWhat::Root) {
        StateWhat::Root => {
            let root = hex_encode(&store.state_root());
            if globals.json {
                let v = json!({"state_root": root, "head": store.head(), "registers": store.len(), "nullifiers": store.nullifier_count()});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("state root {root}");
                println!(
                    "batch {} · {} live registers · {} nullifiers spent",
                    store.head(),
                    store.len(),
                    store.nullifier_count()
                );
            }
            Ok(0)
        }
        StateWhat::Register { id } => {
            let id: ResourceId = id.parse().map_err(|e| anyhow!("register id: {e}"))?;
            match store.entry(&id) {
                Some(entry) => {
                    let v = json!({"register": entry.register, "commitment": hex_encode(&entry.commitment)});
                    println!("{}", serde_json::to_string_pretty(&v)?);
                    Ok(0)
                }
                None => match store.consumed_in(&id) {
                    Some(batch) => {
                        if globals.json {
                            println!("{}", json!({"id": id, "state": "Consumed", "consumed_in_batch": batch}));
                        } else {
                            println!("{id} was consumed in batch {batch}; its nullifier is spent");
                        }
                        Ok(1)
                    }
                    None => Err(anyhow!("no register {id} in {}", data_dir.display())),
                },
            }
        }
        StateWhat::History { limit } => {
            let records = store.history(limit)?;
            if globals.json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else if records.is_empty() {
                println!("no batches committed yet");
            } else {
                for r in records {
                    println!(
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
                    );
                }
            }
            Ok(0)
        }
    }
}
