//! Parallel execution against in-order execution: the same batches on two
//! identical stores, one executed on a 1-thread rayon pool (everything in
//! order) and one on a 4-thread pool (independent operations run ahead),
//! give identical results, errors, state roots and batch records, in every
//! mode and failure policy, with chains, double spends, duplicate creations,
//! verifications of batch proofs, logic that reads the other resources, and
//! logic whose digest assertions fail at the flush.

use crate::batch_support;

use batch_support::*;
use causality_vm::batch::{execute_batch, BatchExecutionResult, TransactionContext};
use causality_vm::resource::{LifecycleState, NewResource, Operation, ResourceId, ResourceUpdate, VerifyTarget};

use causality_vm::{ContentId, ExecutionMode};
use proptest::prelude::*;

/// Two stores with the same programs and genesis resources.
struct Pair {
    in_order: Fixture,
    parallel: Fixture,
    /// Run from the test's own thread, outside any rayon pool: the global
    /// pool's threads run the chunks while this thread merges.
    outside: Fixture,
    /// accept, reads-others, hashing (passes), hashing (its BLAKE3
    /// assertion fails at the flush), frozen-at-7, hashing (its Poseidon
    /// assertion fails at the flush); genesis resources have every one but
    /// the failing ones.
    logic: [ContentId; 6],
    genesis: Vec<(NewResource, u64)>,
    one: rayon::ThreadPool,
    four: rayon::ThreadPool,
}

impl Pair {
    fn new(genesis: &[(usize, u64, u64)]) -> Pair {
        let programs = [
            accept_program(),
            causality_vm::tel::compile(
                "reject \"cannot see the other side\" if op == transfer and not others_readable;\n\
                 accept if op != transfer or all(others, quantity > 2);\n\
                 reject \"a small other side\";",
            )
            .expect("TEL"),
            hashing_logic(*blake3::hash(b"abc").as_bytes(), 0),
            hashing_logic([7; 32], 0),
            causality_vm::tel::compile("reject \"frozen at 7\" if op == update and quantity == 7;\naccept;")
                .expect("TEL"),
            hashing_logic(*blake3::hash(b"abc").as_bytes(), 1),
        ];
        let mut in_order = Fixture::new();
        let mut parallel = Fixture::new();
        let mut outside = Fixture::new();
        let logic = programs.map(|p| {
            let id = in_order.store.put_content(&p.encode()).expect("program");
            assert_eq!(parallel.store.put_content(&p.encode()).expect("program"), id);
            assert_eq!(outside.store.put_content(&p.encode()).expect("program"), id);
            id
        });
        let genesis: Vec<(NewResource, u64)> = genesis
            .iter()
            .map(|&(l, quantity, owner)| {
                (in_order.resource_with_logic(logic[[0, 1, 2, 4][l % 4]], "gold", quantity, owner), owner)
            })
            .collect();
        parallel.nonce = in_order.nonce;
        let resources: Vec<NewResource> = genesis.iter().map(|(r, _)| r.clone()).collect();
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
        let four = rayon::ThreadPoolBuilder::new().num_threads(4).build().expect("pool");
        one.install(|| in_order.create_all(&resources));
        one.install(|| parallel.create_all(&resources));
        one.install(|| outside.create_all(&resources));
        Pair { in_order, parallel, outside, logic, genesis, one, four }
    }

    /// Run `ops` both ways; both results (normalized) must be equal, and the
    /// stores must hold the same state. Returns the parallel run's result.
    fn run(&mut self, ops: &[Operation], tx: &TransactionContext) -> BatchExecutionResult {
        let Pair { in_order, parallel, outside, one, four, .. } = self;
        let expected = one.install(|| in_order.run(ops, tx));
        let got = four.install(|| parallel.run(ops, tx));
        let from_outside = outside.run(ops, tx);
        assert_eq!(normalized(&from_outside), normalized(&expected), "run from outside the pool, for {ops:#?}");
        assert_eq!(outside.store.state_root(), in_order.store.state_root());
        assert_eq!(expected.metadata.backends.ran_ahead, 0, "a 1-thread pool runs everything in order");
        assert_eq!(got.metadata.backends.execute_threads, 4);
        assert_eq!(normalized(&got), normalized(&expected), "parallel and in-order results differ for {ops:#?}");
        assert_eq!(parallel.store.state_root(), in_order.store.state_root());
        assert_eq!(parallel.store.head(), in_order.store.head());
        let head = in_order.store.head();
        if head > 0 {
            let record = |f: &Fixture| {
                let mut record = f.store.batch(head).expect("read").expect("record");
                record.timings = Default::default();
                record
            };
            assert_eq!(record(parallel), record(in_order), "batch records differ");
        }
        got
    }
}

/// Timings and the execution's shape set aside.
fn normalized(result: &BatchExecutionResult) -> BatchExecutionResult {
    let mut result = result.clone();
    result.metadata.timings = Default::default();
    result.metadata.backends.execute_threads = 0;
    result.metadata.backends.ran_ahead = 0;
    // Work that ran: operations run ahead may file Poseidon requests that
    // in-order execution (stopping at a failure) never reaches.
    result.metadata.backends.poseidon_on_cpu = 0;
    result
}

#[derive(Clone, Copy, Debug)]
enum Target {
    Genesis(usize),
    /// An output of an earlier operation of the same batch.
    Made(usize),
    Missing,
}

#[derive(Clone, Debug)]
enum Step {
    Create {
        logic: usize,
        quantity: u64,
        owner: u64,
    },
    /// A genesis resource created again: its id exists.
    CreateAgain(usize),
    Read(Target),
    Update {
        target: Target,
        to: Option<LifecycleState>,
        controller: bool,
    },
    Delete {
        target: Target,
        right_key: bool,
    },
    Transfer {
        target: Target,
        right_key: bool,
        split: u64,
        conserve: bool,
        logic: usize,
    },
    Verify {
        target: Target,
        right: bool,
    },
    /// A batch's proof verified (these batches carry none, or do not exist).
    VerifyProof(u64),
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        6 => (0..24usize).prop_map(Target::Genesis),
        3 => (0..64usize).prop_map(Target::Made),
        1 => Just(Target::Missing),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0..6usize, 1..50u64, 0..4u64).prop_map(|(logic, quantity, owner)| Step::Create { logic, quantity, owner }),
        1 => (0..24usize).prop_map(Step::CreateAgain),
        1 => target().prop_map(Step::Read),
        2 => (target(), proptest::option::of(proptest::sample::select(LifecycleState::ALL.to_vec())), any::<bool>())
            .prop_map(|(target, to, controller)| Step::Update { target, to, controller }),
        1 => (target(), proptest::bool::weighted(0.85)).prop_map(|(target, right_key)| Step::Delete { target, right_key }),
        6 => (target(), proptest::bool::weighted(0.9), any::<u64>(), proptest::bool::weighted(0.9), 0..6usize)
            .prop_map(|(target, right_key, split, conserve, logic)| Step::Transfer { target, right_key, split, conserve, logic }),
        1 => (target(), proptest::bool::weighted(0.7)).prop_map(|(target, right)| Step::Verify { target, right }),
        1 => (0..4u64).prop_map(Step::VerifyProof),
    ]
}

fn tx_for(policy: usize) -> TransactionContext {
    match policy {
        0 => TransactionContext::new(ExecutionMode::Standard),
        1 => TransactionContext::new(ExecutionMode::Standard).fail_fast(),
        2 => TransactionContext::new(ExecutionMode::Standard).all_or_nothing(),
        3 => TransactionContext::new(ExecutionMode::Simulation),
        4 => TransactionContext::new(ExecutionMode::Debug),
        _ => TransactionContext::new(ExecutionMode::Verification),
    }
}

/// Build a batch from `steps`: what each step names is resolved against the
/// genesis resources (as the store holds them now) and the outputs of the
/// batch's earlier steps (a chain).
fn batch(pair: &mut Pair, steps: &[Step]) -> Vec<Operation> {
    let mut made: Vec<(ResourceId, u64, u64)> = Vec::new();
    let mut ops = Vec::new();
    let missing = ContentId::of_encoding(b"nothing has this id");
    for step in steps {
        let pick = |t: Target, pair: &Pair| -> (ResourceId, u64, u64) {
            match t {
                Target::Genesis(i) => {
                    let (r, owner) = &pair.genesis[i % pair.genesis.len()];
                    (id_of(r), *owner, r.quantity)
                }
                Target::Made(k) if !made.is_empty() => made[made.len() - 1 - k % made.len()],
                _ => (missing, 0, 10),
            }
        };
        let op = match step.clone() {
            Step::Create { logic, quantity, owner } => {
                let r = pair.in_order.resource_with_logic(pair.logic[logic], "gold", quantity, owner);
                made.push((id_of(&r), owner, quantity));
                Operation::Create { resource: r }
            }
            Step::CreateAgain(i) => Operation::Create { resource: pair.genesis[i % pair.genesis.len()].0.clone() },
            Step::Read(t) => Operation::Read { id: pick(t, pair).0 },
            Step::Update { target, to, controller } => {
                let changes = ResourceUpdate {
                    state: to,
                    controller: controller.then(|| "someone else".into()),
                    ..Default::default()
                };
                update(pick(target, pair).0, changes)
            }
            Step::Delete { target, right_key } => {
                let (id, owner, _) = pick(target, pair);
                Operation::Delete { input: input(id, if right_key { owner } else { owner + 100 }) }
            }
            Step::Transfer { target, right_key, split, conserve, logic } => {
                let (id, owner, quantity) = pick(target, pair);
                let first = split % (quantity + 1);
                let second = quantity - first + u64::from(!conserve);
                let a = pair.in_order.resource_with_logic(pair.logic[logic], "gold", first, owner + 1);
                let b = pair.in_order.resource_with_logic(pair.logic[0], "gold", second, owner);
                made.push((id_of(&a), owner + 1, first));
                made.push((id_of(&b), owner, second));
                transfer(vec![input(id, if right_key { owner } else { owner + 100 })], vec![a, b])
            }
            Step::Verify { target, right } => {
                let id = pick(target, pair).0;
                let commitment = match pair.in_order.store.get(&id) {
                    Some(r) if right => *blake3::hash(&r.state_encoding()).as_bytes(),
                    _ => [9; 32],
                };
                Operation::Verify { target: VerifyTarget::Commitment { id, commitment } }
            }
            Step::VerifyProof(batch) => Operation::Verify { target: VerifyTarget::BatchProof { batch } },
        };
        ops.push(op);
    }
    pair.parallel.nonce = pair.in_order.nonce;
    ops
}

fn genesis() -> impl Strategy<Value = Vec<(usize, u64, u64)>> {
    proptest::collection::vec((0..5usize, 1..60u64, 0..4u64), 8..24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn parallel_execution_ends_exactly_as_in_order_execution(
        genesis in genesis(),
        batches in proptest::collection::vec((proptest::collection::vec(step(), 1..40), 0..6usize), 1..4),
    ) {
        let mut pair = Pair::new(&genesis);
        for (steps, policy) in &batches {
            let ops = batch(&mut pair, steps);
            pair.run(&ops, &tx_for(*policy));
        }
    }
}

/// Independent transfers run ahead; a chain, a double spend and a missing
/// input run in order; everything ends as in order, in every policy.
#[test]
fn independent_operations_run_ahead_and_conflicts_run_in_order() {
    for policy in 0..6 {
        let mut pair = Pair::new(&(0..12).map(|i| (i % 3, 10 + i as u64, i as u64 % 4)).collect::<Vec<_>>());
        let mut steps: Vec<Step> = (0..8)
            .map(|i| Step::Transfer { target: Target::Genesis(i), right_key: true, split: 3, conserve: true, logic: 0 })
            .collect();
        // A chain on the last output, a double spend of genesis 0, a missing input.
        steps.push(Step::Transfer { target: Target::Made(0), right_key: true, split: 1, conserve: true, logic: 0 });
        steps.push(Step::Transfer { target: Target::Made(0), right_key: true, split: 1, conserve: true, logic: 0 });
        steps.push(Step::Transfer { target: Target::Genesis(0), right_key: true, split: 1, conserve: true, logic: 0 });
        steps.push(Step::Delete { target: Target::Missing, right_key: true });
        steps.push(Step::Read(Target::Genesis(9)));
        let ops = batch(&mut pair, &steps);
        let result = pair.run(&ops, &tx_for(policy));
        // The 8 transfers and the read of genesis 9 ran ahead; the chain and
        // the missing input were tried ahead, found what they name is not
        // in the store, and ran in order. Fail-fast stops at the double
        // spend: the read is skipped.
        let expected = if policy == 1 { 8 } else { 9 };
        assert_eq!(result.metadata.backends.ran_ahead, expected, "policy {policy}");
    }
}

/// Logic Poseidon requests of operations run ahead land in the batch's pool
/// beside every other chunk's, and each assertion still finds its own
/// request: transfers whose new resources' logic asserts a wrong Poseidon
/// value fail at the flush, the rest pass, exactly as in order.
#[test]
fn logic_poseidon_requests_of_operations_run_ahead_resolve_to_their_own_values() {
    let mut pair = Pair::new(&(0..16).map(|i| (2, 10 + i as u64, i as u64 % 4)).collect::<Vec<_>>());
    let steps: Vec<Step> = (0..16)
        .map(|i| Step::Transfer {
            target: Target::Genesis(i),
            right_key: true,
            split: 3,
            conserve: true,
            logic: if i % 3 == 0 { 5 } else { 2 },
        })
        .collect();
    let ops = batch(&mut pair, &steps);
    let result = pair.run(&ops, &tx_for(0));
    // The six whose assertions failed at the flush are left out of the
    // batch's second pass (as in order); the other ten ran ahead in it.
    assert_eq!(result.metadata.backends.ran_ahead, 10);
    assert_eq!(result.metadata.reruns, 1);
    for (i, op) in result.results.iter().enumerate() {
        match op.error() {
            Some(error) => {
                assert_eq!(i % 3, 0, "operation {i}: {error}");
                assert!(error.to_string().contains("Poseidon is"), "operation {i}: {error}");
            }
            None => assert_ne!(i % 3, 0, "operation {i} should fail its Poseidon assertion"),
        }
    }
}

/// A creation whose id is already live, and a later operation that verifies
/// that id: in order, the verify finds the new register (version 0, as the
/// creation made it) instead of the store's (version 1), so the pass is
/// executed again in order, and the verify fails as it does in order.
#[test]
fn a_creation_colliding_with_a_live_id_touched_ahead_reruns_the_pass_in_order() {
    let mut pair = Pair::new(&(0..8).map(|i| (0, 10 + i as u64, 1)).collect::<Vec<_>>());
    let bump = batch(&mut pair, &[Step::Update { target: Target::Genesis(3), to: None, controller: true }]);
    pair.run(&bump, &tx_for(0));
    let mut steps = vec![
        Step::CreateAgain(3),
        Step::Read(Target::Missing),
        Step::Verify { target: Target::Genesis(3), right: true },
    ];
    steps.extend((0..8).filter(|i| *i != 3).map(|i| Step::Transfer {
        target: Target::Genesis(i),
        right_key: true,
        split: 4,
        conserve: true,
        logic: 0,
    }));
    let ops = batch(&mut pair, &steps);
    let result = pair.run(&ops, &tx_for(0));
    assert_eq!(result.metadata.backends.ran_ahead, 0, "the final pass ran in order");
    let error = result.results[2].error().expect("the verify fails").to_string();
    assert!(error.contains("not the stated"), "in order, the verify saw the re-created register: {error}");
}

/// Requests of operations run ahead wait unhashed until the merge files
/// them, so each chunk may hold only its share of what one pool may: a
/// chunk of operations that file more (here, verifies of resources with
/// 2 MB of contents each) runs in order instead, with the same results.
#[test]
fn chunks_whose_requests_outgrow_their_share_run_in_order() {
    let mut pair = Pair::new(&[(0, 5, 1)]);
    let big: Vec<NewResource> = (0..8)
        .map(|i| {
            let mut r = pair.in_order.resource("gold", 10 + i, 1);
            r.contents = vec![i as u8; 2 << 20];
            r
        })
        .collect();
    pair.parallel.nonce = pair.in_order.nonce;
    let creates: Vec<Operation> = big.iter().map(|r| Operation::Create { resource: r.clone() }).collect();
    pair.run(&creates, &tx_for(0));
    let verifies: Vec<Operation> = big
        .iter()
        .map(|r| {
            let id = id_of(r);
            let register = pair.in_order.store.get(&id).expect("created");
            let commitment = *blake3::hash(&register.state_encoding()).as_bytes();
            Operation::Verify { target: VerifyTarget::Commitment { id, commitment } }
        })
        .collect();
    let result = pair.run(&verifies, &tx_for(0));
    assert_eq!(result.success_count, 8);
    // 4 threads: 64 chunks' shares of 256 MB are 4 MB; each chunk of 4
    // verifies files 8 MB.
    assert_eq!(result.metadata.backends.ran_ahead, 0);
}

/// Everything logic programs file waits in memory until the batch's flush,
/// so a batch may hold at most `max_logic_filings` of it, all operations
/// together: one more fails the whole batch, naming the operation that
/// passed the limit, and commits nothing. Where it passes is where it does
/// in order, whichever operations ran ahead: here 100 updates of one
/// resource (8 filings each: two runs of logic that hashes, Poseidons and
/// asserts both) run in order after the first, and 64 reads (4 each) of
/// other resources run ahead in chunks within their share (4 threads: 64
/// shares of 1,024), so the limit is passed while merging a chunk.
#[test]
fn a_batch_whose_logic_files_past_the_limit_fails_where_it_would_in_order() {
    let mut pair = Pair::new(&(0..65).map(|i| (2, 10 + i as u64, i as u64 % 4)).collect::<Vec<_>>());
    let mut steps = vec![Step::Update { target: Target::Genesis(0), to: None, controller: false }; 100];
    steps.extend((1..65).map(|i| Step::Read(Target::Genesis(i))));
    let ops = batch(&mut pair, &steps);
    let limited = |limit| TransactionContext { max_logic_filings: limit, ..tx_for(0) };

    // 800 + 256 filings: exactly the limit passes.
    let result = pair.run(&ops, &limited(1056));
    assert_eq!(result.success_count, ops.len());
    assert!(result.metadata.backends.ran_ahead > 32, "the reads ran ahead: {}", result.metadata.backends.ran_ahead);

    let Pair { in_order, parallel, outside, one, four, .. } = &mut pair;
    let head = in_order.store.head();
    let root = in_order.store.state_root();
    for policy in 0..4 {
        let tx = TransactionContext { max_logic_filings: 1024, ..tx_for(policy) };
        let run = |f: &mut Fixture| execute_batch(&mut f.store, &f.keys, &ops, &f.ctx, &tx).map(|_| ()).unwrap_err();
        let expected = one.install(|| run(in_order));
        // 800 filings by the updates; the limit is passed by the 57th read.
        let reason = expected.to_string();
        assert!(
            reason
                .starts_with("state commitment failed: operation 156: the batch's logic programs filed more than 1024"),
            "{reason}"
        );
        assert_eq!(four.install(|| run(parallel)), expected, "policy {policy}");
        assert_eq!(run(outside), expected, "policy {policy}");
        for f in [&*in_order, &*parallel, &*outside] {
            assert_eq!((f.store.head(), f.store.state_root()), (head, root), "nothing is committed");
        }
    }
}

/// A traced batch keeps at most `MAX_BATCH_TRACED_STEPS` steps in all:
/// each operation's runs keep their share, the first half and the last
/// half, and count the rest. 2,048 reads of a resource whose logic runs
/// 1,003 steps keep 512 of each (2^20 / 2,048), in order and ahead alike.
#[test]
fn a_traced_batch_keeps_each_operation_its_share_of_the_steps() {
    use causality_vm::batch::MAX_BATCH_TRACED_STEPS;
    use causality_vm::vm::{BinOp, Instruction as I, Program, Reg};
    let r = |n| Reg::new(n).expect("register");
    let looping = Program::new(
        vec![
            I::LoadImm { rd: r(1), imm: 500 },
            I::LoadImm { rd: r(2), imm: 1 },
            I::Bin { op: BinOp::Sub, rd: r(1), ra: r(1), rb: r(2) },
            I::Jnz { cond: r(1), target: 16 },
            I::Accept,
        ],
        Vec::new(),
    )
    .expect("valid program");
    let ops_count = 2048;
    let share = MAX_BATCH_TRACED_STEPS / ops_count;
    let mut results = Vec::new();
    for threads in [1, 4] {
        let mut f = Fixture::new();
        let logic = f.store.put_content(&looping.encode()).expect("program");
        let resource = f.resource_with_logic(logic, "gold", 5, 1);
        let id = f.create_all(&[resource])[0];
        let ops = vec![Operation::Read { id }; ops_count];
        let tx = TransactionContext { trace: true, ..TransactionContext::new(ExecutionMode::Simulation) };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        let result = pool.install(|| f.run(&ops, &tx));
        assert_eq!(result.success_count, ops_count);
        for op in &result.results {
            let trace = &op.traces[0].trace;
            assert_eq!(trace.steps.len(), share);
            assert_eq!(trace.omitted, 1003 - share as u64);
            assert_eq!(trace.omitted_at, share / 2);
            assert_eq!(trace.steps.last().expect("kept").pc, 32, "the last step kept is the accept");
        }
        results.push(normalized(&result));
    }
    assert_eq!(results[0], results[1], "in order and ahead keep the same steps");
}
