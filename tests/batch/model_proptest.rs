//! Random operation sequences against a simple in-memory model of balances
//! and lifecycles: the executor and the model agree on every operation's
//! success or failure (and its error kind), on every register, and the sum
//! of quantities per fungibility domain changes only through creates and
//! deletes, never through transfers.

use crate::batch_support;

use std::collections::{BTreeMap, HashMap};

use batch_support::*;
use causality_vm::batch::TransactionContext;
use causality_vm::hash::HashPool;
use causality_vm::resource::{LifecycleState, Operation, ResourceId, ResourceUpdate};
use causality_vm::ExecutionMode;
use proptest::prelude::*;

const FUNGIBILITY: [&str; 2] = ["gold", "silver"];

#[derive(Clone, Debug)]
enum Step {
    Create { fungibility: usize, quantity: u64, owner: u64 },
    Read { pick: usize },
    Update { pick: usize, to: Option<LifecycleState> },
    Delete { pick: usize, right_key: bool },
    Transfer { pick: usize, right_key: bool, split: u64, conserve: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..2usize, 1..1_000u64, 0..4u64).prop_map(|(fungibility, quantity, owner)| Step::Create { fungibility, quantity, owner }),
        1 => any::<usize>().prop_map(|pick| Step::Read { pick }),
        2 => (any::<usize>(), proptest::option::of(proptest::sample::select(LifecycleState::ALL.to_vec())))
            .prop_map(|(pick, to)| Step::Update { pick, to }),
        1 => (any::<usize>(), proptest::bool::weighted(0.85)).prop_map(|(pick, right_key)| Step::Delete { pick, right_key }),
        4 => (any::<usize>(), proptest::bool::weighted(0.85), any::<u64>(), proptest::bool::weighted(0.85))
            .prop_map(|(pick, right_key, split, conserve)| Step::Transfer { pick, right_key, split, conserve }),
    ]
}

#[derive(Clone, Debug)]
struct ModelRegister {
    fungibility: String,
    quantity: u64,
    state: LifecycleState,
    version: u64,
    owner: u64,
}

#[derive(Default)]
struct Model {
    live: HashMap<ResourceId, ModelRegister>,
    consumed: HashMap<ResourceId, ()>,
    /// Every id ever named, so picks can hit live, consumed and missing ones.
    known: Vec<ResourceId>,
}

/// What the model expects: Ok, or the error kind.
type Expect = Result<(), &'static str>;

impl Model {
    fn pick(&self, pick: usize, missing: ResourceId) -> ResourceId {
        // One pick in eight names a resource that never existed.
        if self.known.is_empty() || pick % 8 == 7 {
            missing
        } else {
            self.known[pick % self.known.len()]
        }
    }

    fn load(&self, id: &ResourceId) -> Result<&ModelRegister, &'static str> {
        match self.live.get(id) {
            Some(r) => Ok(r),
            None if self.consumed.contains_key(id) => Err("InvalidResourceState"),
            None => Err("ResourceNotFound"),
        }
    }

    /// What consuming `id` gives: it must exist, may be consumed from its
    /// state, the rest of the operation must be `valid`, and the key must open.
    fn consume(&self, id: &ResourceId, valid: bool, right_key: bool) -> Result<(), &'static str> {
        self.load(id).and_then(|r| {
            if !r.state.can_transition_to(LifecycleState::Consumed) || !valid {
                Err("InvalidResourceState")
            } else if !right_key {
                Err("StateCommitmentError")
            } else {
                Ok(())
            }
        })
    }

    fn sums(&self) -> BTreeMap<String, u128> {
        let mut sums = BTreeMap::new();
        for r in self.live.values() {
            *sums.entry(r.fungibility.clone()).or_default() += r.quantity as u128;
        }
        sums
    }
}

/// Turn a step into an operation, predicting its result and applying it to the model.
fn plan(f: &mut Fixture, model: &mut Model, step: &Step) -> (Operation, Expect) {
    let missing = id_of(&f.resource("gold", 1, 0));
    match step.clone() {
        Step::Create { fungibility, quantity, owner } => {
            let r = f.resource(FUNGIBILITY[fungibility], quantity, owner);
            let id = id_of(&r);
            model.known.push(id);
            model.live.insert(
                id,
                ModelRegister {
                    fungibility: r.fungibility_domain.to_string(),
                    quantity,
                    state: LifecycleState::Active,
                    version: 0,
                    owner,
                },
            );
            (Operation::Create { resource: r }, Ok(()))
        }
        Step::Read { pick } => {
            let id = model.pick(pick, missing);
            (Operation::Read { id }, model.load(&id).map(|_| ()))
        }
        Step::Update { pick, to } => {
            let id = model.pick(pick, missing);
            let op = update(id, ResourceUpdate { state: to, ..Default::default() });
            let expect = model.load(&id).and_then(|r| match to {
                Some(LifecycleState::Consumed) => Err("InvalidResourceState"),
                Some(s) if !r.state.can_transition_to(s) => Err("InvalidResourceState"),
                _ => Ok(()),
            });
            if expect.is_ok() {
                let r = model.live.get_mut(&id).unwrap();
                r.version += 1;
                if let Some(s) = to {
                    r.state = s;
                }
            }
            (op, expect)
        }
        Step::Delete { pick, right_key } => {
            let id = model.pick(pick, missing);
            let owner = model.live.get(&id).map_or(0, |r| r.owner);
            let key = if right_key { owner } else { owner + 100 };
            let expect = model.consume(&id, true, right_key);
            if expect.is_ok() {
                model.live.remove(&id);
                model.consumed.insert(id, ());
            }
            (Operation::Delete { input: input(id, key) }, expect)
        }
        Step::Transfer { pick, right_key, split, conserve } => {
            let id = model.pick(pick, missing);
            let source = model.live.get(&id).cloned();
            let (fungibility, quantity, owner) =
                source.as_ref().map_or(("gold".to_string(), 10, 0), |r| (r.fungibility.clone(), r.quantity, r.owner));
            let first = split % (quantity + 1);
            let second = quantity - first + if conserve { 0 } else { 1 };
            let a = f.resource(&fungibility, first, owner + 1);
            let b = f.resource(&fungibility, second, owner + 2);
            let key = if right_key { owner } else { owner + 100 };
            let expect = model.consume(&id, conserve, right_key);
            if expect.is_ok() {
                model.live.remove(&id);
                model.consumed.insert(id, ());
                for (r, q, o) in [(&a, first, owner + 1), (&b, second, owner + 2)] {
                    let new_id = id_of(r);
                    model.known.push(new_id);
                    model.live.insert(
                        new_id,
                        ModelRegister {
                            fungibility: fungibility.clone(),
                            quantity: q,
                            state: LifecycleState::Active,
                            version: 0,
                            owner: o,
                        },
                    );
                }
            }
            (transfer(vec![input(id, key)], vec![a, b]), expect)
        }
    }
}

fn store_sums(f: &Fixture) -> BTreeMap<String, u128> {
    let mut sums = BTreeMap::new();
    for r in f.store.registers() {
        *sums.entry(r.fungibility_domain.to_string()).or_default() += r.quantity as u128;
    }
    sums
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn executor_agrees_with_the_model(batches in proptest::collection::vec(proptest::collection::vec(step(), 1..12), 1..6)) {
        let mut f = Fixture::new();
        let mut model = Model::default();
        for steps in &batches {
            let sums_before = model.sums();
            let mut ops = Vec::new();
            let mut expected = Vec::new();
            let mut created_or_deleted = false;
            for s in steps {
                let (op, expect) = plan(&mut f, &mut model, s);
                created_or_deleted |= expect.is_ok() && matches!(op, Operation::Create { .. } | Operation::Delete { .. });
                ops.push(op);
                expected.push(expect);
            }
            let result = f.run(&ops, &TransactionContext::new(ExecutionMode::Standard));
            for (i, (r, e)) in result.results.iter().zip(&expected).enumerate() {
                let got: Expect = match r.error() { None => Ok(()), Some(err) => Err(err.kind()) };
                prop_assert_eq!(got, *e, "op {} {:?}: {:?}", i, ops[i], r.status);
            }
            // Registers agree with the model.
            prop_assert_eq!(f.store.len(), model.live.len());
            for (id, m) in &model.live {
                let r = f.store.get(id).expect("model's live register is in the store");
                prop_assert_eq!((r.quantity, r.state, r.version), (m.quantity, m.state, m.version));
            }
            // Conservation: only creates and deletes move the per-domain sums.
            prop_assert_eq!(store_sums(&f), model.sums());
            if !created_or_deleted {
                prop_assert_eq!(model.sums(), sums_before);
            }
            // The incremental root equals the bucketed tree recomputed from scratch.
            let commitments: BTreeMap<ResourceId, [u8; 32]> =
                f.store.registers().map(|r| (r.id, *blake3::hash(&r.state_encoding()).as_bytes())).collect();
            let reference = causality_vm::store::reference_root(&commitments, &mut HashPool::new()).unwrap();
            prop_assert_eq!(f.store.state_root(), reference);
        }
    }
}
