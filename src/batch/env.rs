//! What every operation executes against: the store seen through the batch's
//! overlay, the hash pool, the key ring, the program cache and the VM.

use std::sync::Arc;

use crate::capability::{KeyRing, Right};
use crate::content_id::ContentId;
use crate::context::{required_right, AccessRequest, Authorizer, DomainId, ExecutionContext, ExecutionMode};
use crate::crypto::field::{field_from_digest, field_material, field_to_bytes, FIELD_CONTEXT, NULLIFIER_KEY_LABEL};
use crate::crypto::poseidon::HashDomain;
use crate::digest_map::DigestMap;
use crate::error::ExecutionError;
use crate::hash::{FiledAt, HashBackend, HashError, HashHandle, HashPool};
use crate::resource::{Operation, OperationKind, ResourceId, ResourceRegister};
use crate::store::RegisterStore;
use crate::vm::{DeferredAssertion, Interpreter, LogicInput, Program, Request, Role};

use super::overlay::{Lookup, Overlay};
use super::result::LogicTrace;
use super::transaction::{TransactionContext, MAX_BATCH_TRACED_STEPS};
use super::view::{InFlight, StoreView};

/// A consumed input: its nullifier is a pending hash request; it and the
/// opening of the nullifier-key commitment are checked at the flush.
pub(super) struct Consumption {
    pub register: Arc<ResourceRegister>,
    pub nullifier_key: [u8; 32],
    pub nullifier: HashHandle,
}

/// A digest-dependent check made at the flush.
pub(super) enum Assertion {
    Vm(DeferredAssertion),
    /// A Verify's stated commitment must equal BLAKE3(state_encoding).
    Commitment {
        handle: HashHandle,
        stated: [u8; 32],
        id: ResourceId,
    },
}

/// A run of one operation's entries in [`PassEffects`].
pub(super) type Span = std::ops::Range<usize>;

/// Every operation's consumed inputs and created-id requests in a pass, in
/// one vector each; an operation's [`OpEffects`] holds its spans. Vectors per
/// operation cost an allocation and a free apiece, several per transfer. A
/// failed operation's entries are dropped, so the vectors hold exactly the
/// executed operations' entries in order, and a span also indexes anything
/// flat in that order (the digests the flush claims).
#[derive(Default)]
pub(super) struct PassEffects {
    pub consumes: Vec<Consumption>,
    /// Id requests of created resources.
    pub creates: Vec<HashHandle>,
}

/// Everything an operation would do, held until the operation succeeds.
#[derive(Default)]
pub(super) struct OpEffects {
    /// Its id requests in [`PassEffects::creates`].
    pub creates: Span,
    pub updates: Vec<(Arc<ResourceRegister>, Arc<ResourceRegister>)>,
    /// Its consumed inputs in [`PassEffects::consumes`].
    pub consumes: Span,
    pub assertions: Vec<Assertion>,
    pub instructions: u64,
    /// What its logic programs filed ([`crate::vm::Filings`]), counted
    /// against the batch's [`TransactionContext::max_logic_filings`] whether it succeeded or not.
    pub logic_filings: usize,
    /// What only some operations or modes record, boxed: the merge of a
    /// parallel pass moves every record a few times on its serial path, and
    /// these fields would double a record's size.
    pub extras: Option<Box<Extras>>,
}

/// [`OpEffects`]' rarely used parts.
#[derive(Default)]
pub(super) struct Extras {
    /// ProofGeneration: the created registers as created, for the witness.
    pub created_copies: Vec<Arc<ResourceRegister>>,
    pub read: Option<Arc<ResourceRegister>>,
    pub verified: Option<String>,
    pub traces: Vec<LogicTrace>,
}

impl OpEffects {
    /// The extras, made on first use.
    pub fn extras(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// The extras, taken (empty ones if none were made).
    pub fn take_extras(&mut self) -> Extras {
        self.extras.take().map(|extras| *extras).unwrap_or_default()
    }

    /// Move every handle the effects hold to where their pool's requests
    /// landed in the batch's ([`super::ahead`]).
    pub fn shift_handles(&mut self, at: FiledAt) {
        for assertion in &mut self.assertions {
            match assertion {
                Assertion::Vm(DeferredAssertion { handle: Request::Blake3(h), .. })
                | Assertion::Commitment { handle: h, .. } => *h = at.hash(*h),
                Assertion::Vm(DeferredAssertion { handle: Request::Poseidon(h), .. }) => *h = at.poseidon(*h),
            }
        }
    }
}

impl PassEffects {
    /// Room for a batch of `ops` typical operations (a transfer consumes one
    /// input and creates two resources).
    fn with_capacity(ops: usize) -> Self {
        PassEffects { consumes: Vec::with_capacity(ops), creates: Vec::with_capacity(2 * ops) }
    }

    /// Where the next operation's entries will start.
    pub fn mark(&self) -> (usize, usize) {
        (self.consumes.len(), self.creates.len())
    }

    /// The entries made since `mark`: (consumes, creates).
    pub fn since(&self, mark: (usize, usize)) -> (Span, Span) {
        (mark.0..self.consumes.len(), mark.1..self.creates.len())
    }

    /// Drop the entries made since `mark` (the operation failed).
    pub fn undo(&mut self, mark: (usize, usize)) {
        self.consumes.truncate(mark.0);
        self.creates.truncate(mark.1);
    }
}

/// Decoded programs of this batch, by content id (a failed decode is cached
/// too). Looked up for every resource an operation touches: a digest map.
#[derive(Clone, Default)]
pub(super) struct ProgramCache {
    programs: DigestMap<ContentId, Result<Arc<Program>, ExecutionError>>,
}

/// `'s` borrows the store (and the in-flight batch) for the execution only;
/// `'a` is what the executed batch keeps (context, transaction, keys).
pub(super) struct Env<'s, 'a> {
    pub store: &'s RegisterStore,
    /// The batch ahead of this one in a pipeline, still being proven.
    pub inflight: Option<&'s InFlight>,
    pub ctx: &'a ExecutionContext,
    pub tx: &'a TransactionContext,
    pub pool: HashPool,
    pub overlay: Overlay,
    pub effects: PassEffects,
    /// The running operation's created resources, with a zero id until the
    /// flush (moved into the overlay if it succeeds).
    pub new_registers: Vec<Arc<ResourceRegister>>,
    /// The batch's operation count, to size the overlay.
    ops: usize,
    programs: ProgramCache,
    /// The programs the batch brings, looked up before the store's.
    brought: &'a [super::Content],
    interpreter: Interpreter,
    /// Shared with the environments of operations run ahead.
    checks: Arc<Checks<'a>>,
    /// `None` in the batch's environment. In one for operations run ahead,
    /// `Some(true)` once an operation named a register the store does not
    /// hold live (it may be created earlier in the batch, or be missing):
    /// that operation must run in order instead.
    pub ahead: Option<bool>,
    /// What logic programs may file in this pass ([`TransactionContext::max_logic_filings`]; a
    /// share of it for operations run ahead), and have filed.
    logic_allowance: usize,
    logic_filed: usize,
    /// A logic run stopped at the allowance: in the batch's environment the
    /// batch fails; ahead, the chunk's operations run in order instead.
    pub logic_over_allowance: bool,
    /// Trace steps each operation's logic runs may keep, all together.
    trace_share: usize,
}

/// What every operation of a batch is checked against, made once per batch.
struct Checks<'a> {
    /// Poseidon commitment of every nullifier key the batch gives.
    openings: DigestMap<[u8; 32], [u8; 32]>,
    /// Whether logic programs may read the operation's other resources:
    /// the token must grant Read in the context's domain.
    readable_others: bool,
    /// The context's tokens, MAC chains verified once per batch; each access
    /// is then a caveat check with no hashing.
    authorizer: Authorizer<'a>,
}

/// What an environment for operations run ahead on another thread is made
/// of ([`Env::seed`]): the batch's shared parts, and none of its state.
pub(super) struct Seed<'s, 'a> {
    store: &'s RegisterStore,
    inflight: Option<&'s InFlight>,
    ctx: &'a ExecutionContext,
    tx: &'a TransactionContext,
    brought: &'a [super::Content],
    programs: ProgramCache,
    trace: bool,
    trace_share: usize,
    checks: Arc<Checks<'a>>,
}

impl<'s, 'a> Seed<'s, 'a> {
    /// An environment that sees the store (and the in-flight batch) with
    /// none of this batch's effects, filing into a pool of its own that
    /// never flushes: for `ops` operations that touch nothing an earlier
    /// one changes ([`HashPool::into_filed`] hands its requests over).
    pub fn tx(&self) -> &'a TransactionContext {
        self.tx
    }

    pub fn env(&self, ops: usize, logic_allowance: usize) -> Env<'s, 'a> {
        let mut interpreter = Interpreter::new(self.tx.budget);
        interpreter.trace = self.trace;
        let mut pool = HashPool::new();
        pool.reserve(3 * ops, 640 * ops);
        Env {
            store: self.store,
            inflight: self.inflight,
            ctx: self.ctx,
            tx: self.tx,
            pool,
            overlay: Overlay::with_capacity(0),
            effects: PassEffects::with_capacity(ops),
            new_registers: Vec::new(),
            ops,
            programs: self.programs.clone(),
            brought: self.brought,
            interpreter,
            checks: Arc::clone(&self.checks),
            ahead: Some(false),
            logic_allowance,
            logic_filed: 0,
            logic_over_allowance: false,
            trace_share: self.trace_share,
        }
    }
}

impl<'s, 'a> Env<'s, 'a> {
    pub fn new(
        store: &'s RegisterStore,
        inflight: Option<&'s InFlight>,
        keys: &'a KeyRing,
        ctx: &'a ExecutionContext,
        tx: &'a TransactionContext,
        ops: &[Operation],
        brought: &'a [super::Content],
    ) -> Self {
        let mut hashing = batch_pool(ops.len(), &tx.hashing);
        let mut opening = hashing.sibling();
        let openings = key_openings(ops, &mut opening);
        // Its GPU work and fallbacks are the batch's too.
        hashing.count_from(&opening);
        let ops = ops.len();
        let read = AccessRequest { right: Right::Read, ..AccessRequest::new(OperationKind::Read, &ctx.domain_id) };
        let authorizer = Authorizer::new(ctx, keys);
        let readable_others = authorizer.check(&read).is_ok();
        let mut interpreter = Interpreter::new(tx.budget);
        interpreter.trace = tx.mode == ExecutionMode::Debug || tx.trace;
        Env {
            store,
            inflight,
            ctx,
            tx,
            pool: hashing,
            overlay: Overlay::with_capacity(ops),
            effects: PassEffects::with_capacity(ops),
            new_registers: Vec::new(),
            ops,
            programs: ProgramCache::default(),
            brought,
            interpreter,
            checks: Arc::new(Checks { openings, readable_others, authorizer }),
            ahead: None,
            logic_allowance: tx.max_logic_filings,
            logic_filed: 0,
            logic_over_allowance: false,
            trace_share: (MAX_BATCH_TRACED_STEPS / ops.max(1)).min(crate::vm::MAX_TRACED_STEPS),
        }
    }

    /// The makings of environments for operations run ahead.
    pub fn seed(&self) -> Seed<'s, 'a> {
        Seed {
            store: self.store,
            inflight: self.inflight,
            ctx: self.ctx,
            tx: self.tx,
            brought: self.brought,
            programs: self.programs.clone(),
            trace: self.interpreter.trace,
            trace_share: self.trace_share,
            checks: Arc::clone(&self.checks),
        }
    }

    /// A fresh pool and overlay for another pass over the batch.
    pub fn reset(&mut self) {
        // The pool's backend, not the transaction's: after a device loss it moved on.
        let fresh = batch_pool(self.ops, &self.pool.hash_backend());
        let earlier = std::mem::replace(&mut self.pool, fresh);
        self.pool.count_from(&earlier);
        self.overlay = Overlay::with_capacity(self.ops);
        self.effects = PassEffects::with_capacity(self.ops);
        self.logic_filed = 0;
        self.logic_over_allowance = false;
    }

    /// Count what an operation run ahead filed; false if in order it would
    /// have stopped at the allowance (the batch then fails).
    pub fn count_filings(&mut self, fx: &OpEffects) -> bool {
        self.logic_filed += fx.logic_filings;
        self.logic_filed <= self.logic_allowance
    }

    /// The batch's failure when operation `index`'s logic passed
    /// [`TransactionContext::max_logic_filings`].
    pub fn logic_limit_error(&self, index: usize) -> ExecutionError {
        ExecutionError::StateCommitmentError {
            reason: format!(
                "operation {index}: the batch's logic programs filed more than {} hash requests and digest \
                 assertions, the most one batch holds until its hashes are resolved; split the batch",
                self.tx.max_logic_filings
            ),
        }
    }

    pub fn authorize(
        &self,
        operation: OperationKind,
        resource: Option<&ResourceId>,
        domain: &DomainId,
        quantity: Option<u64>,
    ) -> Result<(), ExecutionError> {
        let request = AccessRequest { operation, right: required_right(operation), resource, domain, quantity };
        self.checks.authorizer.check(&request)
    }

    /// The current register `id`, as earlier operations of the batch left it.
    /// The committed state, with the in-flight batch's effects on top.
    pub fn view(&self) -> StoreView<'_> {
        StoreView { store: self.store, inflight: self.inflight }
    }

    /// Give every resource created so far in this batch its id.
    pub fn resolve_pending(&mut self) -> Result<(), crate::hash::HashError> {
        self.overlay.resolve(&mut self.pool)
    }

    /// Whether `key` opens `register`'s nullifier-key commitment (an error
    /// naming both if not).
    pub fn check_opening(&self, register: &ResourceRegister, key: &[u8; 32]) -> Result<(), ExecutionError> {
        let opened = match self.checks.openings.get(key) {
            Some(opened) => *opened,
            None => crate::resource::nullifier_key_commitment(key),
        };
        if opened == register.nullifier_key_commitment {
            return Ok(());
        }
        Err(ExecutionError::StateCommitmentError {
            reason: format!(
                "the nullifier key given for {} does not open its commitment: it commits to {}, the register holds {}",
                register.id,
                crate::content_id::hex_encode(&opened),
                crate::content_id::hex_encode(&register.nullifier_key_commitment)
            ),
        })
    }

    pub fn load(&mut self, id: &ResourceId) -> Result<Arc<ResourceRegister>, ExecutionError> {
        match self.overlay.lookup(self.view(), id) {
            Lookup::Found(r) => return Ok(Arc::clone(r)),
            found @ (Lookup::Missing | Lookup::ConsumedInStore(_)) if self.ahead.is_some() => {
                let err = loaded(found, id);
                self.ahead = Some(true);
                return err;
            }
            // It may be created earlier in this batch: resolve and index those, then look again.
            Lookup::Missing if self.overlay.has_unindexed() => {}
            found => return loaded(found, id),
        }
        self.overlay.resolve_and_index(&mut self.pool).map_err(hash_failed)?;
        loaded(self.overlay.lookup(self.view(), id), id)
    }

    fn program(&mut self, logic: &ContentId) -> Result<Arc<Program>, ExecutionError> {
        if let Some(cached) = self.programs.programs.get(logic) {
            return cached.clone();
        }
        let brought = self.brought.iter().find(|(id, _)| id == logic).map(|(_, bytes)| bytes.clone());
        let in_flight = || self.inflight.and_then(|batch| batch.program(logic)).cloned();
        let bytes = match brought.or_else(in_flight) {
            Some(bytes) => Some(bytes),
            None => self.store.content(logic)?,
        };
        let loaded = match bytes {
            None => Err(ExecutionError::ResourceNotFound {
                what: format!("logic program {logic} (not in the content store, nor brought by the batch)"),
            }),
            Some(bytes) => Program::decode(&bytes).map(Arc::new),
        };
        self.programs.programs.insert(*logic, loaded.clone());
        loaded
    }

    /// Run `subject`'s logic program for its `role` in the operation.
    pub fn run_logic(
        &mut self,
        operation: OperationKind,
        role: Role,
        subject: &ResourceRegister,
        subject_known: bool,
        others: &[&ResourceRegister],
        fx: &mut OpEffects,
    ) -> Result<(), ExecutionError> {
        let program = self.program(&subject.logic)?;
        let input = LogicInput {
            operation,
            role,
            subject,
            others,
            readable_others: self.checks.readable_others,
            ctx: self.ctx,
        };
        self.interpreter.allowance = self.logic_allowance.saturating_sub(self.logic_filed);
        let (result, filings) = if self.interpreter.trace {
            let kept: usize = fx.extras.as_ref().map_or(0, |e| e.traces.iter().map(|t| t.trace.steps.len()).sum());
            self.interpreter.trace_steps = self.trace_share.saturating_sub(kept);
            let run = self.interpreter.run_traced(&program, &input, &mut self.pool);
            fx.extras().traces.push(LogicTrace {
                role,
                resource: subject_known.then_some(subject.id),
                program: subject.logic,
                trace: run.trace,
                error: run.result.as_ref().err().map(|e| e.to_string()),
            });
            (run.result, run.filings)
        } else {
            self.interpreter.run_metered(&program, &input, &mut self.pool)
        };
        fx.logic_filings += filings.count;
        self.logic_filed += filings.count;
        self.logic_over_allowance |= filings.over_allowance;
        let outcome = result?;
        fx.instructions += outcome.instructions;
        fx.assertions.extend(outcome.deferred.into_iter().map(Assertion::Vm));
        Ok(())
    }
}

/// The Poseidon nullifier-key commitment of every key the batch's
/// operations give for their inputs, computed before they run so each
/// opening is checked as its input is consumed (a wrong key fails its
/// operation at once, with nothing for the flush to undo). Each distinct key
/// (an owner often spends many resources) is opened once, in two flushes of
/// `pool` (a sibling of the batch's): its field encoding (BLAKE3), then
/// Poseidon of that, eight keys per IFMA lane group across rayon threads.
/// A key missing here (the pool failed) is opened on its own when checked.
fn key_openings(ops: &[Operation], pool: &mut HashPool) -> DigestMap<[u8; 32], [u8; 32]> {
    let mut keys: Vec<[u8; 32]> = ops
        .iter()
        .flat_map(|op| match op {
            Operation::Delete { input } => std::slice::from_ref(input),
            Operation::Transfer { inputs, .. } => inputs.as_slice(),
            _ => &[],
        })
        .map(|input| input.nullifier_key)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    match open_keys(&keys, pool) {
        Ok(openings) => openings,
        Err(err) => {
            tracing::warn!(%err, keys = keys.len(), "batched nullifier-key openings failed: opening each key on its own");
            DigestMap::default()
        }
    }
}

fn open_keys(keys: &[[u8; 32]], pool: &mut HashPool) -> Result<DigestMap<[u8; 32], [u8; 32]>, HashError> {
    let encodings: Vec<HashHandle> =
        keys.iter().map(|k| pool.derive_key(FIELD_CONTEXT, field_material(NULLIFIER_KEY_LABEL, k))).collect();
    pool.flush()?;
    let commitments = encodings
        .iter()
        .map(|&h| {
            let encoding = field_from_digest(&pool.digest(h)?);
            pool.poseidon(HashDomain::NullifierKey, &[encoding])
        })
        .collect::<Result<Vec<_>, _>>()?;
    pool.flush()?;
    keys.iter().zip(commitments).map(|(k, h)| Ok((*k, field_to_bytes(&pool.poseidon_result(h)?)))).collect()
}

/// A pool with room for a batch of `ops` typical operations (a transfer files
/// two ids of ~250 bytes and a 64-byte nullifier input).
/// (Capped: the buffers still grow past it for a huge batch.) It flushes on
/// the transaction's hash backend.
fn batch_pool(ops: usize, backend: &HashBackend) -> HashPool {
    let ops = ops.min(1 << 14);
    let mut pool = HashPool::on(backend);
    pool.reserve(3 * ops, 640 * ops);
    pool
}

pub(super) fn hash_failed(e: crate::hash::HashError) -> ExecutionError {
    ExecutionError::StateCommitmentError { reason: format!("hash pool flush failed: {e}") }
}

/// What loading `id` gives, from where it was looked up.
fn loaded(found: Lookup<'_>, id: &ResourceId) -> Result<Arc<ResourceRegister>, ExecutionError> {
    match found {
        Lookup::Found(r) => Ok(r.clone()),
        Lookup::ConsumedInBatch(op) => Err(ExecutionError::InvalidResourceState {
            id: *id,
            state: crate::resource::LifecycleState::Consumed,
            reason: format!("already consumed earlier in this batch, by operation {op}"),
        }),
        Lookup::ConsumedInStore(batch) => Err(ExecutionError::InvalidResourceState {
            id: *id,
            state: crate::resource::LifecycleState::Consumed,
            reason: format!("consumed in batch {batch}; its nullifier is spent"),
        }),
        Lookup::Missing => Err(ExecutionError::ResourceNotFound { what: format!("register {id}") }),
    }
}
