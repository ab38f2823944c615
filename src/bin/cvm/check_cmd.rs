//! `cvm check FILE...`: everything `cvm run` would refuse, found without
//! running anything, plus what a run would accept and regret: a resource
//! whose nullifier-key commitment no key opens could never be consumed,
//! and a key that does not open its input fails only when it runs.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::Context;
use causality_vm::batch::file::{base_dir, check, BatchFile};
use causality_vm::prove::encoding::is_field_encoding;
use causality_vm::resource::{nullifier_key_commitment, ConsumedInput, NewResource, Operation, ResourceId};
use causality_vm::store::RegisterStore;
use causality_vm::ContentId;
use serde_json::json;

use crate::Globals;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Batch files (`-`: standard input).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// What a checked resource is known to hold: its quantity, fungibility
/// domain and nullifier-key commitment.
#[derive(Clone)]
struct Known {
    quantity: u64,
    fungibility: String,
    commitment: [u8; 32],
}

pub fn run(globals: &Globals, args: CheckArgs) -> anyhow::Result<i32> {
    let data_dir = globals.data_dir();
    // The store, if there is one, to look inputs up in (read-only).
    let store = RegisterStore::file_in(&data_dir)
        .exists()
        .then(|| RegisterStore::open_read_only(&data_dir))
        .transpose()
        .with_context(|| format!("opening the register store in {}", data_dir.display()))?;
    let mut reports = Vec::new();
    let mut findings_total = 0;
    for path in &args.files {
        let origin = path.display().to_string();
        // A file `cvm run` would refuse is a finding, and the others are
        // still checked.
        let checked = BatchFile::read(path).and_then(|file| {
            let ops = file.ops.clone();
            check(file, &origin, &base_dir(path)).map(|checked| (ops, checked))
        });
        let (findings, count) = match checked {
            Ok((ops, checked)) => {
                let brought: HashSet<ContentId> = checked.program_ids().copied().collect();
                (findings(&ops, &Inputs { store: store.as_ref(), brought: &brought }), ops.len())
            }
            Err(e) => (vec![format!("refused: {e}")], 0),
        };
        findings_total += findings.len();
        if !globals.json {
            match findings.is_empty() {
                true => out!("{origin}: ok ({count} operations)")?,
                false => {
                    for f in &findings {
                        out!("{origin}: {f}")?;
                    }
                }
            }
        }
        reports.push(json!({ "file": origin, "ok": findings.is_empty(), "findings": findings }));
    }
    if globals.json {
        out!("{}", serde_json::to_string_pretty(&reports)?)?;
    }
    if store.is_none() && !globals.quiet {
        note!(
            "note: {} holds no store: inputs were checked only against resources the files create",
            data_dir.display()
        );
    }
    Ok(if findings_total == 0 { 0 } else { 1 })
}

/// What a file's operations are checked against: the store (if there is
/// one) and the programs the file brings.
struct Inputs<'a> {
    store: Option<&'a RegisterStore>,
    brought: &'a HashSet<ContentId>,
}

/// Everything wrong with `ops` that a run would not refuse up front.
fn findings(ops: &[Operation], against: &Inputs<'_>) -> Vec<String> {
    let store = against.store;
    let mut found = Vec::new();
    let mut created: HashMap<ResourceId, (usize, Known)> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Operation::Create { resource } => new(i, "resource", resource, against, &mut created, &mut found),
            Operation::Delete { input } => {
                spend(i, "input", input, &created, store, &mut found);
            }
            Operation::Transfer { inputs, outputs } => {
                let known: Vec<Option<Known>> = inputs
                    .iter()
                    .enumerate()
                    .map(|(j, input)| spend(i, &format!("inputs[{j}]"), input, &created, store, &mut found))
                    .collect();
                if let Some(known) = known.into_iter().collect::<Option<Vec<Known>>>() {
                    let mut balance: HashMap<&str, i128> = HashMap::new();
                    for k in &known {
                        *balance.entry(&k.fungibility).or_default() += k.quantity as i128;
                    }
                    for o in outputs {
                        *balance.entry(&o.fungibility_domain).or_default() -= o.quantity as i128;
                    }
                    if let Some((domain, _)) = balance.iter().find(|(_, b)| **b != 0) {
                        found.push(format!("ops[{i}]: quantity is not conserved in fungibility domain {domain:?}"));
                    }
                }
                for (j, o) in outputs.iter().enumerate() {
                    new(i, &format!("outputs[{j}]"), o, against, &mut created, &mut found);
                }
            }
            Operation::Read { .. } | Operation::Update { .. } | Operation::Verify { .. } => {}
        }
    }
    found
}

/// Check a new resource: a commitment some key opens, a logic program the
/// file brings or the store holds, an id not created before in the file
/// nor live in the store.
fn new(
    i: usize,
    field: &str,
    r: &NewResource,
    inputs: &Inputs<'_>,
    created: &mut HashMap<ResourceId, (usize, Known)>,
    found: &mut Vec<String>,
) {
    let stored = |id: &ContentId| inputs.store.is_some_and(|s| s.content(id).is_ok_and(|c| c.is_some()));
    if !inputs.brought.contains(&r.logic) && !stored(&r.logic) {
        found.push(format!(
            "ops[{i}].{field}.logic: program {} is neither brought by the file (programs) nor in the store (the \
             operation would fail)",
            r.logic
        ));
    }
    if !is_field_encoding(&r.nullifier_key_commitment) {
        found.push(format!(
            "ops[{i}].{field}.nullifier_key_commitment: no nullifier key opens it (it is not the encoding of a \
             Poseidon output), so the resource could never be consumed; make one with `cvm resource new-key` or \
             `cvm resource nk-commitment KEY`"
        ));
    }
    let id = ContentId::of_encoding(&r.id_encoding());
    let known = Known {
        quantity: r.quantity,
        fungibility: r.fungibility_domain.to_string(),
        commitment: r.nullifier_key_commitment,
    };
    if let Some((earlier, _)) = created.insert(id, (i, known)) {
        found.push(format!("ops[{i}].{field}: creates {id} again (operation {earlier} creates it): change its nonce"));
    } else if inputs.store.is_some_and(|s| s.get(&id).is_some()) {
        found.push(format!(
            "ops[{i}].{field}: {id} is already live in the store (the operation would fail): change its nonce"
        ));
    }
}

/// Check an input: known (created earlier in the file, or in the store),
/// and its key opens its commitment. Returns what is known of it.
fn spend(
    i: usize,
    field: &str,
    input: &ConsumedInput,
    created: &HashMap<ResourceId, (usize, Known)>,
    store: Option<&RegisterStore>,
    found: &mut Vec<String>,
) -> Option<Known> {
    let known = created.get(&input.id).map(|(_, k)| k.clone()).or_else(|| {
        store.and_then(|s| s.get(&input.id)).map(|r| Known {
            quantity: r.quantity,
            fungibility: r.fungibility_domain.to_string(),
            commitment: r.nullifier_key_commitment,
        })
    });
    match &known {
        Some(k) if nullifier_key_commitment(&input.nullifier_key) != k.commitment => found.push(format!(
            "ops[{i}].{field}: the nullifier key does not open the commitment of {} (the operation would fail)",
            input.id
        )),
        Some(_) => {}
        None if store.is_some() => found.push(format!(
            "ops[{i}].{field}: {} is neither created earlier in this file nor live in the store",
            input.id
        )),
        None => {}
    }
    known
}
