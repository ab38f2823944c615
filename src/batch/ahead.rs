//! Operations run ahead: the operations of a pass that touch nothing an
//! earlier operation of the batch changes execute side by side on the rayon
//! pool, and their effects are merged into the batch's one by one in batch
//! order, so a pass ends exactly as executing everything in order does.
//!
//! The scheme is conflict sets known before execution (docs/perf/parallel.md
//! has the measurements behind the choice). An operation's inputs are
//! declared: the ids it reads, updates or consumes. It runs ahead when no
//! earlier operation declares a change to any of them, and it finds every
//! one live in the store (or the in-flight batch); then the state it sees is
//! the store's whatever the earlier operations do, and its outcome is the
//! one it would have in order. Everything else (a chain spending what the
//! batch created, a resource touched twice, a missing input) runs in order
//! on the batch's thread, as the merge reaches it. Ids created in the batch
//! are hashes resolved at the flush, unknown when the plan is made: a
//! creation that collides with a live id an operation ahead touched is
//! caught after the flush ([`diverged`]), and the pass is then executed
//! again in order.
//!
//! Each chunk of operations run ahead files its hash requests into a pool of
//! its own that never flushes; the merge files them into the batch's pool
//! when it reaches the chunk and shifts the chunk's handles by where they
//! landed. The pool holds the same requests as in order, in another order,
//! which nothing observes: a logic program sees its run's request numbers,
//! never the pool's handles.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::digest_map::{digest_map, digest_set, DigestMap, DigestSet};
use crate::error::ExecutionError;
use crate::hash::{Filed, FiledAt, HashHandle, HashPool, MAX_PENDING_BYTES};
use crate::resource::{ConsumedInput, Operation, ResourceId, ResourceRegister, VerifyTarget};

use super::env::{Consumption, Env, OpEffects, Seed};
use super::Record;

/// Operations run ahead needed before a pass runs any ahead: below it the
/// chunks' setup costs more than it saves.
pub(super) const MIN_AHEAD: usize = 4;

/// Chunks per rayon thread, so a thread that finishes early takes another.
const CHUNKS_PER_THREAD: usize = 16;

/// Which operations of a pass run ahead (`None`: all in order, with one
/// rayon thread or too few to gain), and the contested ids.
pub(super) fn plan(ops: &[Operation], prefailed: &BTreeMap<usize, ExecutionError>) -> Option<Plan> {
    if rayon::current_num_threads() < 2 || ops.len() < MIN_AHEAD {
        return None;
    }
    let mut changed = digest_set::<ResourceId>(ops.len());
    let mut contested = digest_set::<ResourceId>(0);
    let mut ahead = vec![false; ops.len()];
    let mut count = 0;
    for (index, op) in ops.iter().enumerate() {
        if prefailed.contains_key(&index) {
            continue;
        }
        let (ids, changes) = declared(op);
        // One probe per id: an insert that finds the id is a conflict.
        let mut free = true;
        for id in ids.iter() {
            let new = match changes {
                true => changed.insert(*id),
                false => !changed.contains(id),
            };
            if !new {
                contested.insert(*id);
                free = false;
            }
        }
        if free {
            ahead[index] = true;
            count += 1;
        }
    }
    (count >= MIN_AHEAD).then_some(Plan { ahead, contested })
}

/// Which operations of a pass run ahead, and the ids that an operation
/// changes and a later one names too (a conflict).
pub(super) struct Plan {
    pub ahead: Vec<bool>,
    /// Only these ids' consumption by an operation run ahead must be
    /// findable by id in the batch's overlay: no later operation of the
    /// pass names any other id an operation run ahead consumed (it would
    /// have conflicted), and ids created in the pass are consumed only by
    /// operations that run in order (ahead, they are not in the store).
    contested: DigestSet<ResourceId>,
}

/// The ids `op` names, and whether it changes them (consumes or updates)
/// or only reads them.
fn declared(op: &Operation) -> (Ids<'_>, bool) {
    match op {
        Operation::Create { .. } | Operation::Verify { target: VerifyTarget::BatchProof { .. } } => {
            (Ids::One(None), false)
        }
        Operation::Read { id } | Operation::Verify { target: VerifyTarget::Commitment { id, .. } } => {
            (Ids::One(Some(*id)), false)
        }
        Operation::Update { id, .. } => (Ids::One(Some(*id)), true),
        Operation::Delete { input } => (Ids::One(Some(input.id)), true),
        Operation::Transfer { inputs, .. } => (Ids::Inputs(inputs), true),
    }
}

/// The ids an operation names, without a vector per operation.
enum Ids<'a> {
    One(Option<ResourceId>),
    Inputs(&'a [ConsumedInput]),
}

impl Ids<'_> {
    fn iter(&self) -> impl Iterator<Item = &ResourceId> {
        let (one, inputs) = match self {
            Ids::One(id) => (id.as_ref(), &[][..]),
            Ids::Inputs(inputs) => (None, *inputs),
        };
        one.into_iter().chain(inputs.iter().map(|i| &i.id))
    }
}

/// One operation executed ahead: its record (its effects' spans in its
/// chunk's vectors, their handles its chunk pool's) and how many created
/// registers it left in its chunk. `None`: it named a register the store
/// does not hold live, and runs in order instead.
struct Ran {
    index: usize,
    record: Option<Record>,
    registers: usize,
}

/// A chunk's operations executed ahead, handed to the merge in order.
struct Chunk {
    /// Its hash requests, until the merge reaches the chunk and files them.
    filed: Option<Filed>,
    /// Where the chunk pool's requests landed in the batch pool.
    shift: FiledAt,
    consumes: std::vec::IntoIter<Consumption>,
    creates: std::vec::IntoIter<HashHandle>,
    registers: std::vec::IntoIter<Arc<ResourceRegister>>,
    ran: std::vec::IntoIter<Ran>,
}

/// Where a chunk's result waits for the merge: `Some(None)` when its
/// requests outgrew its share of [`MAX_PENDING_BYTES`] (they wait, unhashed,
/// until the merge files them: the chunks together hold no more than one
/// pool may) or its logic programs' filings their share, its pool flushed, it panicked, or it was skipped
/// (the plan abandoned); its operations then run in order.
type Slot = Mutex<Option<Option<Chunk>>>;

/// The chunks of a plan and who runs which: every thread (the merging one
/// included, while it waits) claims the lowest chunk not yet claimed.
struct Chunks<'r, 's, 'a> {
    seed: &'r Seed<'s, 'a>,
    ops: &'r [Operation],
    parts: Vec<&'r [usize]>,
    slots: Vec<Slot>,
    /// The next chunk to claim.
    claimed: AtomicUsize,
    /// Set when a merged chunk's operations mostly had to run in order (a
    /// chain): the chunks not started yet are skipped, and theirs too run
    /// in order, instead of each trying and failing first.
    abandon: AtomicBool,
    /// Each chunk's share of [`MAX_PENDING_BYTES`].
    share: usize,
    /// Each chunk's share of the batch's logic filings
    /// ([`super::TransactionContext::max_logic_filings`]).
    logic_share: usize,
}

impl Chunks<'_, '_, '_> {
    /// Claim the lowest chunk nobody has and run it (or skip it, once the
    /// plan is abandoned); false when every chunk is claimed.
    fn run_next(&self) -> bool {
        // A load first: the merge polls this while it waits, and the
        // counter should not climb with every poll.
        if self.claimed.load(Ordering::Relaxed) >= self.parts.len() {
            return false;
        }
        let c = self.claimed.fetch_add(1, Ordering::Relaxed);
        let Some(part) = self.parts.get(c) else {
            return false;
        };
        let result = match self.abandon.load(Ordering::Relaxed) {
            true => None,
            false => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_chunk(self.seed.env(part.len(), self.logic_share), self.ops, part, self.share)
            }))
            .ok()
            .flatten(),
        };
        *self.slots[c].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        true
    }
}

/// The operations of a plan executed ahead, handed to the merge in batch
/// order, chunk by chunk.
pub(super) struct RanAhead<'r, 's, 'a> {
    chunks: &'r Chunks<'r, 's, 'a>,
    /// The next chunk to take.
    next: usize,
    current: Option<Chunk>,
    /// Operations left in the current chunk.
    left: usize,
    contested: &'r DigestSet<ResourceId>,
}

/// Execute the operations `plan` marks ahead and `merge` them (given the
/// plan too), side by side. Every other thread of the pool claims chunks in
/// batch order and runs them; this one merges each chunk as soon as it is
/// in, and claims and runs the next unclaimed chunk whenever the one it
/// must merge next is not. So the merge, which must go in batch order,
/// keeps pace with the running instead of waiting for a long tail: when
/// the other threads ran chunks from the batch's end while this one worked
/// from its start, every chunk they ran was merged only after they met,
/// with the other threads idle (docs/perf/parallel.md).
pub(super) fn run<R>(
    seed: &Seed<'_, '_>,
    ops: &[Operation],
    plan: &mut Plan,
    merge: impl FnOnce(&mut RanAhead<'_, '_, '_>, &mut Vec<bool>) -> R,
) -> R {
    let Plan { ahead: plan, contested } = plan;
    let indices: Vec<usize> = plan.iter().enumerate().filter(|(_, a)| **a).map(|(i, _)| i).collect();
    let most = rayon::current_num_threads() * CHUNKS_PER_THREAD;
    let size = indices.len().div_ceil(most).max(MIN_AHEAD);
    let parts: Vec<&[usize]> = indices.chunks(size).collect();
    let chunks = Chunks {
        seed,
        ops,
        slots: parts.iter().map(|_| Mutex::new(None)).collect(),
        parts,
        claimed: AtomicUsize::new(0),
        abandon: AtomicBool::new(false),
        // Of the chunks a large batch has, so the share does not grow when
        // a batch has few operations and large requests.
        share: MAX_PENDING_BYTES / most,
        logic_share: seed.tx().max_logic_filings / most,
    };
    // The pool's threads but this one (when it is one of them).
    let on_pool = rayon::current_thread_index().is_some();
    let helpers = (rayon::current_num_threads() - usize::from(on_pool)).min(chunks.parts.len());
    rayon::in_place_scope(|scope| {
        let chunks = &chunks;
        for _ in 0..helpers {
            scope.spawn(move |_| while chunks.run_next() {});
        }
        // Once the merge is over (a fail-fast stop, or a panic), the chunks
        // not started are skipped: nothing would merge them, and the scope
        // waits for every helper.
        let _skip_the_rest = SkipTheRest(&chunks.abandon);
        merge(&mut RanAhead { chunks, next: 0, current: None, left: 0, contested }, plan)
    })
}

struct SkipTheRest<'r>(&'r AtomicBool);

impl Drop for SkipTheRest<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn run_chunk(mut env: Env<'_, '_>, ops: &[Operation], indices: &[usize], share: usize) -> Option<Chunk> {
    let mut ran = Vec::with_capacity(indices.len());
    let mut registers = Vec::with_capacity(2 * indices.len());
    // Requests of both kinds in the chunk's pool.
    let filed_so_far = |pool: &HashPool| (pool.pending_len(), pool.poseidon_pending_len());
    for &index in indices {
        let mut fx = OpEffects::default();
        let mark = env.effects.mark();
        let filed = filed_so_far(&env.pool);
        env.ahead = Some(false);
        let outcome = super::ops::execute(&mut env, &ops[index], &mut fx);
        let mut created = 0;
        let record = match outcome {
            Ok(()) => {
                (fx.consumes, fx.creates) = env.effects.since(mark);
                created = env.new_registers.len();
                registers.append(&mut env.new_registers);
                Some(Record::Executed(fx))
            }
            // Every kind loads its registers before it files anything.
            Err(_) if env.ahead == Some(true) && filed_so_far(&env.pool) == filed => None,
            Err(_) if env.ahead == Some(true) => return None,
            Err(e) => {
                env.effects.undo(mark);
                env.new_registers.clear();
                Some(Record::Failed(Box::new(e), fx))
            }
        };
        if env.logic_over_allowance {
            return None;
        }
        ran.push(Ran { index, record, registers: created });
        // A Poseidon input is 32 bytes held until the merge, as a message's.
        if env.pool.pending_bytes() + 32 * env.pool.poseidon_pending_inputs() > share {
            return None;
        }
    }
    let effects = env.effects;
    Some(Chunk {
        filed: Some(env.pool.into_filed()?),
        shift: FiledAt::default(),
        consumes: effects.consumes.into_iter(),
        creates: effects.creates.into_iter(),
        registers: registers.into_iter(),
        ran: ran.into_iter(),
    })
}

impl RanAhead<'_, '_, '_> {
    /// Whether a later operation of the pass may look `id` up after an
    /// operation run ahead consumed it ([`Plan::contested`]).
    pub fn contested(&self, id: &ResourceId) -> bool {
        !self.contested.is_empty() && self.contested.contains(id)
    }

    /// The next chunk's result, waiting for it (and running the next
    /// unclaimed chunk meanwhile) if it is not in yet. Never rayon's
    /// `yield_local`: that could run a helper's job here, which claims
    /// chunk after chunk and leaves the merge waiting.
    fn take_next(&mut self) -> Option<Chunk> {
        let chunks = self.chunks;
        let slot = &chunks.slots[self.next];
        self.left = chunks.parts[self.next].len();
        self.next += 1;
        loop {
            if let Some(result) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let in_order = result
                    .as_ref()
                    .map_or(0, |chunk| chunk.ran.as_slice().iter().filter(|r| r.record.is_none()).count());
                if 2 * in_order > self.left {
                    chunks.abandon.store(true, Ordering::Relaxed);
                }
                return result;
            }
            if !chunks.run_next() {
                // Another thread is executing it.
                std::thread::yield_now();
            }
        }
    }

    /// Merge operation `index` (the next one run ahead) into `env`: file its
    /// chunk's hash requests in the batch's pool if they are not yet, and
    /// move its effects into the pass's, its handles shifted to the batch
    /// pool's. Its record as if it had run in `env` (an executed one still
    /// to be applied); `None` if it must run in order.
    pub fn merge(&mut self, index: usize, env: &mut Env) -> Option<Record> {
        if self.left == 0 {
            self.current = self.take_next();
        }
        self.left -= 1;
        let chunk = self.current.as_mut()?;
        if let Some(filed) = chunk.filed.take() {
            chunk.shift = env.pool.file_from(filed);
        }
        let Ran { index: ran_index, record, registers } = chunk.ran.next().expect("a chunk's next");
        debug_assert_eq!(ran_index, index, "operations run ahead merge in batch order");
        let mut record = record?;
        let shift = chunk.shift;
        let (Record::Executed(fx) | Record::Failed(_, fx)) = &mut record else {
            unreachable!("an operation run ahead is executed or failed")
        };
        fx.shift_handles(shift);
        if let Record::Executed(fx) = &mut record {
            let mark = env.effects.mark();
            let consumes = chunk.consumes.by_ref().take(fx.consumes.len());
            env.effects.consumes.extend(consumes.map(|c| Consumption { nullifier: shift.hash(c.nullifier), ..c }));
            let creates = chunk.creates.by_ref().take(fx.creates.len());
            env.effects.creates.extend(creates.map(|h| shift.hash(h)));
            (fx.consumes, fx.creates) = env.effects.since(mark);
            env.new_registers.extend(chunk.registers.by_ref().take(registers));
        }
        Some(record)
    }
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
    let touches = |j: usize, op: &Operation| declared(op).0.iter().any(|id| created.get(id).is_some_and(|&c| c < j));
    ops.iter().enumerate().any(|(j, op)| ahead[j] && touches(j, op))
}
