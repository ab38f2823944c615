//! What a flush failure takes down with it. An operation that fails a check
//! made at the flush (a digest assertion of its logic, a spent nullifier, an
//! existing id) had its effects seen by the operations after it; those that
//! touched what it changed fail too, saying so, and the batch is executed
//! once more without all of them. Every other operation sees the same state
//! in that pass as in the first, so it ends the same way: one re-run, never
//! one per failure (a chain of N operations on one resource, each failing
//! at the flush, used to re-execute the batch N times).

use std::collections::{BTreeMap, HashMap};

use crate::content_id::ContentId;
use crate::error::ExecutionError;
use crate::resource::{NewResource, Operation, ResourceId};

/// The operations after the first of `failed` that touch an id one of them
/// (or an operation failing through them) changes, each with its error.
/// `prefailed` operations did not run and change nothing.
pub(super) fn dependents(
    ops: &[Operation],
    failed: &BTreeMap<usize, ExecutionError>,
    prefailed: &BTreeMap<usize, ExecutionError>,
) -> BTreeMap<usize, ExecutionError> {
    let Some(&first) = failed.keys().next() else { return BTreeMap::new() };
    // Each changed id, and the failed operation its change leads back to.
    let mut changed: HashMap<ResourceId, usize> = HashMap::new();
    for &i in failed.keys() {
        for id in changes(&ops[i]) {
            changed.entry(id).or_insert(i);
        }
    }
    let mut found = BTreeMap::new();
    for (k, op) in ops.iter().enumerate().skip(first + 1) {
        if failed.contains_key(&k) || prefailed.contains_key(&k) {
            continue;
        }
        let touched = op.touched_ids().into_iter().chain(created(op));
        let Some((id, root)) = touched.into_iter().find_map(|id| changed.get(&id).map(|&i| (id, i))) else {
            continue;
        };
        for id in changes(op) {
            changed.entry(id).or_insert(root);
        }
        found.insert(
            k,
            ExecutionError::StateCommitmentError {
                reason: format!(
                    "it touches {id}, which operation {root} changes, and operation {root} failed a check made when \
                     the batch's hashes were resolved ({}); resubmit this operation in another batch",
                    failed[&root]
                ),
            },
        );
    }
    found
}

/// The ids `op` consumes, updates or creates.
fn changes(op: &Operation) -> Vec<ResourceId> {
    let mut ids = match op {
        Operation::Delete { input } => vec![input.id],
        Operation::Transfer { inputs, .. } => inputs.iter().map(|i| i.id).collect(),
        Operation::Update { id, .. } => vec![*id],
        Operation::Create { .. } | Operation::Read { .. } | Operation::Verify { .. } => Vec::new(),
    };
    ids.extend(created(op));
    ids
}

/// The ids of what `op` creates (hashed here: only operations after a
/// flush failure get here).
pub(super) fn created(op: &Operation) -> Vec<ResourceId> {
    let id = |r: &NewResource| ContentId::of_encoding(&r.id_encoding());
    match op {
        Operation::Create { resource } => vec![id(resource)],
        Operation::Transfer { outputs, .. } => outputs.iter().map(id).collect(),
        _ => Vec::new(),
    }
}
