//! Operations run ahead: the operations of a pass that touch nothing an
//! earlier operation of the batch changes execute side by side on the rayon
//! pool, and their effects are merged into the batch's one by one in batch
//! order, so a pass ends exactly as executing everything in order does.
//!
//! The scheme is conflict sets known before execution (docs/perf/parallel.md
//! has the measurements behind the choice). An operation's inputs are
//! declared: the ids it reads, updates or consumes. It runs ahead when every
//! one of them is live in the store (or the in-flight batch) and no earlier
//! operation declares a change to it; then the state it sees is the store's
//! whatever the earlier operations do, and its outcome is the one it would
//! have in order. Everything else (a chain spending what the batch created,
//! a resource touched twice) runs in order on the batch's thread, as the
//! merge reaches it. Ids created in the batch are hashes resolved at the
//! flush, unknown when the plan is made: a creation that collides with a
//! live id an operation ahead touched is caught after the flush
//! ([`diverged`]), and the pass is then executed again in order.
//!
//! Each chunk of operations run ahead files its hash requests into a pool of
//! its own that never flushes; the merge files an operation's requests into
//! the batch's pool and shifts its handles by the difference, so the pool
//! ends holding the same requests in the same order as in order (a logic
//! program sees its run's request numbers, never the pool's handles).

use std::collections::BTreeMap;
use std::sync::Arc;

use rayon::prelude::*;

use crate::digest_map::{digest_map, digest_set, DigestMap};
use crate::error::ExecutionError;
use crate::hash::{Filed, HashHandle};
use crate::resource::{Operation, ResourceId, ResourceRegister, VerifyTarget};

use super::env::{Consumption, Env, OpEffects, Seed};
use super::view::StoreView;

/// Operations run ahead needed before a pass runs any ahead: below it the
/// chunks' setup costs more than it saves.
pub(super) const MIN_AHEAD: usize = 4;

/// Chunks per rayon thread, so a thread that finishes early takes another.
const CHUNKS_PER_THREAD: usize = 4;

/// Which operations of a pass run ahead (`None`: all in order, with one
/// rayon thread or too few to gain).
pub(super) fn plan(
    view: StoreView<'_>,
    ops: &[Operation],
    prefailed: &BTreeMap<usize, ExecutionError>,
) -> Option<Vec<bool>> {
    if rayon::current_num_threads() < 2 || ops.len() < MIN_AHEAD {
        return None;
    }
    // The store lookups are cache misses into maps of the whole state: on the pool.
    let live: Vec<bool> =
        ops.par_iter().with_min_len(256).map(|op| declared(op).iter().all(|(id, _)| view.get(id).is_some())).collect();
    let mut changed = digest_set::<ResourceId>(ops.len());
    let mut ahead = vec![false; ops.len()];
    let mut count = 0;
    for (index, op) in ops.iter().enumerate() {
        if prefailed.contains_key(&index) {
            continue;
        }
        let inputs = declared(op);
        if live[index] && inputs.iter().all(|(id, _)| !changed.contains(id)) {
            ahead[index] = true;
            count += 1;
        }
        changed.extend(inputs.iter().filter(|(_, changes)| *changes).map(|(id, _)| *id));
    }
    (count >= MIN_AHEAD).then_some(ahead)
}

/// The ids `op` names, each with whether the operation changes it
/// (consumes or updates; it only reads the others).
fn declared(op: &Operation) -> Vec<(ResourceId, bool)> {
    match op {
        Operation::Create { .. } | Operation::Verify { target: VerifyTarget::BatchProof { .. } } => Vec::new(),
        Operation::Read { id } | Operation::Verify { target: VerifyTarget::Commitment { id, .. } } => {
            vec![(*id, false)]
        }
        Operation::Update { id, .. } => vec![(*id, true)],
        Operation::Delete { input } => vec![(input.id, true)],
        Operation::Transfer { inputs, .. } => inputs.iter().map(|i| (i.id, true)).collect(),
    }
}

/// One operation executed ahead: its outcome, its effects (spans in its
/// chunk's vectors, handles of its chunk's pool) and how many hash requests
/// and created registers it left in its chunk.
struct Ran {
    index: usize,
    outcome: Result<(), ExecutionError>,
    fx: OpEffects,
    requests: usize,
    registers: usize,
}

/// A chunk's operations executed ahead, handed to the merge in order.
struct Chunk {
    filed: Filed,
    /// The chunk pool's handle of the next operation's first request.
    next_handle: u32,
    consumes: std::vec::IntoIter<Consumption>,
    creates: std::vec::IntoIter<HashHandle>,
    registers: std::vec::IntoIter<Arc<ResourceRegister>>,
    ran: std::vec::IntoIter<Ran>,
}

/// Every operation of a plan executed ahead, in batch order.
pub(super) struct RanAhead {
    chunks: std::vec::IntoIter<Chunk>,
    current: Option<Chunk>,
}

/// Execute the planned operations ahead, on the rayon pool. `None` when a
/// chunk's pool flushed itself (its logic filed hundreds of MB): its
/// requests can no longer be handed over, and the pass runs in order.
pub(super) fn run(seed: &Seed<'_, '_>, ops: &[Operation], ahead: &[bool]) -> Option<RanAhead> {
    let indices: Vec<usize> = ahead.iter().enumerate().filter(|(_, a)| **a).map(|(i, _)| i).collect();
    let chunks = rayon::current_num_threads() * CHUNKS_PER_THREAD;
    let size = indices.len().div_ceil(chunks).max(MIN_AHEAD);
    let chunks: Option<Vec<Chunk>> =
        indices.par_chunks(size).map(|indices| run_chunk(seed.env(indices.len()), ops, indices)).collect();
    Some(RanAhead { chunks: chunks?.into_iter(), current: None })
}

fn run_chunk(mut env: Env<'_, '_>, ops: &[Operation], indices: &[usize]) -> Option<Chunk> {
    let mut ran = Vec::with_capacity(indices.len());
    let mut registers = Vec::with_capacity(2 * indices.len());
    for &index in indices {
        let mut fx = OpEffects::default();
        let mark = env.effects.mark();
        let filed = env.pool.pending_len();
        let outcome = super::ops::execute(&mut env, &ops[index], &mut fx);
        let created = match outcome {
            Ok(()) => {
                (fx.consumes, fx.creates) = env.effects.since(mark);
                let created = env.new_registers.len();
                registers.append(&mut env.new_registers);
                created
            }
            Err(_) => {
                env.effects.undo(mark);
                env.new_registers.clear();
                0
            }
        };
        let requests = env.pool.pending_len().checked_sub(filed)?;
        ran.push(Ran { index, outcome, fx, requests, registers: created });
    }
    let effects = env.effects;
    Some(Chunk {
        filed: env.pool.into_filed()?,
        next_handle: 0,
        consumes: effects.consumes.into_iter(),
        creates: effects.creates.into_iter(),
        registers: registers.into_iter(),
        ran: ran.into_iter(),
    })
}

impl RanAhead {
    /// Merge operation `index` (the next one run ahead) into `env`: file its
    /// hash requests in the batch's pool and move its effects into the
    /// pass's, its handles shifted to the batch pool's. Its outcome, with
    /// the effects it holds as if it had run in `env`.
    pub fn merge(&mut self, index: usize, env: &mut Env) -> (Result<(), ExecutionError>, OpEffects) {
        let chunk = loop {
            match &mut self.current {
                Some(chunk) if chunk.ran.len() > 0 => break chunk,
                _ => self.current = self.chunks.next(),
            }
        };
        let Ran { index: ran_index, outcome, mut fx, requests, registers } = chunk.ran.next().expect("a chunk's next");
        debug_assert_eq!(ran_index, index, "operations run ahead merge in batch order");
        let first = env.pool.file_from(&mut chunk.filed, requests);
        let shift = first.0.wrapping_sub(chunk.next_handle);
        chunk.next_handle += requests as u32;
        fx.shift_handles(shift);
        if outcome.is_ok() {
            let mark = env.effects.mark();
            let consumes = chunk.consumes.by_ref().take(fx.consumes.len());
            env.effects.consumes.extend(consumes.map(|c| Consumption { nullifier: shifted(c.nullifier, shift), ..c }));
            let creates = chunk.creates.by_ref().take(fx.creates.len());
            env.effects.creates.extend(creates.map(|h| shifted(h, shift)));
            (fx.consumes, fx.creates) = env.effects.since(mark);
            env.new_registers.extend(chunk.registers.by_ref().take(registers));
        }
        (outcome, fx)
    }
}

fn shifted(handle: HashHandle, shift: u32) -> HashHandle {
    HashHandle(handle.0.wrapping_add(shift))
}

/// Whether operations ran ahead against a state the in-order execution would
/// not have shown them: an operation that failed at the flush created an id
/// (one already live, hence its failure) that a later operation run ahead
/// touched. In order, that later operation may have found the new register
/// instead of the store's.
pub(super) fn diverged(ops: &[Operation], failures: &BTreeMap<usize, ExecutionError>, ahead: &[bool]) -> bool {
    let mut created: DigestMap<ResourceId, usize> = digest_map(0);
    for &index in failures.keys() {
        for id in super::rerun::created(&ops[index]) {
            created.entry(id).or_insert(index);
        }
    }
    if created.is_empty() {
        return false;
    }
    ops.iter()
        .enumerate()
        .filter(|(j, _)| ahead[*j])
        .any(|(j, op)| declared(op).iter().any(|(id, _)| created.get(id).is_some_and(|&creator| creator < j)))
}
