//! `cvm check FILE...`: everything `cvm run` would refuse, found without
//! running anything, plus what a run would accept and regret: a resource
//! whose nullifier-key commitment no key opens could never be consumed,
//! and a key that does not open its input fails only when it runs. Several
//! files are checked as `cvm run` runs them: in order, each seeing what
//! the files before it create, consume and bring.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::Context;
use causality_vm::batch::file::{base_dir, check, clock_skew_refusal, now, BatchFile, BatchTime};
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
    /// Flag a timestamp further than this many seconds from this machine's
    /// clock, either way, as `cvm run` with the same flag refuses it (`off`:
    /// no limit, for batches meant for `cvm run --max-clock-skew off`).
    #[arg(long, default_value = "300", value_parser = crate::run_cmd::clock_skew, value_name = "SECONDS|off")]
    max_clock_skew: crate::run_cmd::ClockSkew,
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
    let mut ledger = Ledger::default();
    for (file, path) in args.files.iter().enumerate() {
        let origin = path.display().to_string();
        // A file `cvm run` would refuse is a finding, and the others are
        // still checked.
        let checked = BatchFile::read(path).and_then(|file| {
            let ops = file.ops.clone();
            check(file, &origin, &base_dir(path)).map(|checked| (ops, checked))
        });
        let (findings, count) = match checked {
            Ok((ops, checked)) => {
                ledger.brought.extend(checked.program_ids().copied());
                let mut found = dated_far(checked.timestamp(), args.max_clock_skew.0).into_iter().collect::<Vec<_>>();
                found.extend(dated_back(checked.timestamp(), store.as_ref(), &mut ledger, &origin));
                found.extend(findings(&ops, store.as_ref(), &mut ledger, (file, &origin)));
                (found, ops.len())
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

/// A timestamp `cvm run` and `cvm serve` would refuse with the same
/// --max-clock-skew (`skew`; None: no limit).
fn dated_far(timestamp: BatchTime, skew: Option<u64>) -> Option<String> {
    let BatchTime::At(timestamp) = timestamp else { return None };
    let refusal = clock_skew_refusal(timestamp, now(), skew?)?;
    Some(format!("timestamp: {refusal}: `cvm run` and `cvm serve` refuse it (see their --max-clock-skew)"))
}

/// A timestamp before the last one a run of the files so far would have
/// committed (an earlier file's, or the store's last batch's): committed
/// timestamps never go back, so `cvm run` refuses it.
fn dated_back(
    timestamp: BatchTime,
    store: Option<&RegisterStore>,
    ledger: &mut Ledger,
    origin: &str,
) -> Option<String> {
    let timestamp = timestamp.resolve(now());
    let stored =
        store.filter(|s| s.head() > 0).map(|s| (s.head_timestamp(), format!("the store's batch {}", s.head())));
    // The later of the two (an earlier file's on a tie).
    let floor = stored.into_iter().chain(ledger.last_dated.clone()).max_by_key(|(floor, _)| *floor);
    if let Some((floor, by)) = floor.filter(|(floor, _)| timestamp < *floor) {
        // Refused, it commits nothing: the floor stays.
        return Some(format!(
            "timestamp: {timestamp} is before {by}'s ({floor}): committed timestamps never go back, so `cvm run` \
             refuses it"
        ));
    }
    ledger.last_dated = Some((timestamp, origin.to_string()));
    None
}

/// What the operations checked so far leave behind, for the ones after
/// (in this file and in the files after it): resources created and not
/// consumed since, resources consumed, and the programs brought.
#[derive(Default)]
struct Ledger {
    created: HashMap<ResourceId, (Place, Known)>,
    consumed: HashMap<ResourceId, Place>,
    brought: HashSet<ContentId>,
    /// The latest timestamp of the files so far, and the file's name.
    last_dated: Option<(u64, String)>,
}

/// Where an operation is: its file (the position among the files checked,
/// and the name) and its index.
#[derive(Clone)]
struct Place {
    file: usize,
    origin: String,
    op: usize,
}

impl Place {
    /// How an operation of another place names this one: "operation 3" in
    /// the same file, "a.json operation 3" in another.
    fn named_from(&self, from: &Place) -> String {
        match from.file == self.file {
            true => format!("operation {}", self.op),
            false => format!("{} operation {}", self.origin, self.op),
        }
    }
}

/// Everything wrong with `ops` (of the `file`th file, with its name) that a run would not
/// refuse up front, checked against the store and the ledger, which it
/// brings up to date.
fn findings(ops: &[Operation], store: Option<&RegisterStore>, ledger: &mut Ledger, file: (usize, &str)) -> Vec<String> {
    let mut found = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let at = Place { file: file.0, origin: file.1.to_string(), op: i };
        match op {
            Operation::Create { resource } => new(&at, "resource", resource, store, ledger, &mut found),
            Operation::Delete { input } => {
                spend(&at, "input", input, store, ledger, &mut found);
            }
            Operation::Transfer { inputs, outputs } => {
                let known: Vec<Option<Known>> = inputs
                    .iter()
                    .enumerate()
                    .map(|(j, input)| spend(&at, &format!("inputs[{j}]"), input, store, ledger, &mut found))
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
                    new(&at, &format!("outputs[{j}]"), o, store, ledger, &mut found);
                }
            }
            Operation::Read { .. } | Operation::Update { .. } | Operation::Verify { .. } => {}
        }
    }
    found
}

/// Check a new resource: a commitment some key opens, a logic program
/// brought (by this file or an earlier one) or stored, an id not created
/// before nor live in the store.
fn new(
    at: &Place,
    field: &str,
    r: &NewResource,
    store: Option<&RegisterStore>,
    ledger: &mut Ledger,
    found: &mut Vec<String>,
) {
    let i = at.op;
    let stored = |id: &ContentId| store.is_some_and(|s| s.content(id).is_ok_and(|c| c.is_some()));
    if !ledger.brought.contains(&r.logic) && !stored(&r.logic) {
        found.push(format!(
            "ops[{i}].{field}.logic: program {} is neither brought by this file or an earlier one (programs) nor in \
             the store (the operation would fail)",
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
    let again = match (ledger.created.get(&id), ledger.consumed.get(&id)) {
        (Some((earlier, _)), _) => Some(format!("{} creates it", earlier.named_from(at))),
        (None, Some(earlier)) => Some(format!("{} consumes it", earlier.named_from(at))),
        (None, None) => None,
    };
    if let Some(why) = again {
        found.push(format!("ops[{i}].{field}: creates {id} again ({why}): change its nonce"));
    } else if store.is_some_and(|s| s.get(&id).is_some()) {
        found.push(format!(
            "ops[{i}].{field}: {id} is already live in the store (the operation would fail): change its nonce"
        ));
    } else if let Some(batch) = store.and_then(|s| s.consumed_in(&id)) {
        found.push(format!(
            "ops[{i}].{field}: {id} existed and was consumed in batch {batch}; an id is never created twice (the \
             operation would fail): change its nonce"
        ));
    } else {
        ledger.created.insert(id, (at.clone(), known));
    }
}

/// Check an input: live (created earlier and not consumed since, or in the
/// store), and its key opens its commitment. Returns what is known of it.
fn spend(
    at: &Place,
    field: &str,
    input: &ConsumedInput,
    store: Option<&RegisterStore>,
    ledger: &mut Ledger,
    found: &mut Vec<String>,
) -> Option<Known> {
    let i = at.op;
    if let Some(earlier) = ledger.consumed.get(&input.id) {
        found.push(format!(
            "ops[{i}].{field}: {} is already consumed by {} (its nullifier would be spent twice)",
            input.id,
            earlier.named_from(at)
        ));
        return None;
    }
    let known = ledger.created.remove(&input.id).map(|(_, k)| k).or_else(|| {
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
            "ops[{i}].{field}: {} is neither created earlier (in this file or an earlier one) nor live in the store",
            input.id
        )),
        None => {}
    }
    ledger.consumed.insert(input.id, at.clone());
    known
}
