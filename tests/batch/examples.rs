//! The bundled example batches run cleanly on a fresh data directory.
//!
//! Their logic programs are named by content id, so when the TEL compiler's
//! output changes the ids change too; regenerate the files with
//! `cargo test --test batch examples:: -- --ignored regenerate_examples`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use causality_vm::batch::file::{prepare, BatchFile, Keys};
use causality_vm::batch::{execute_batches, BatchJob, TransactionContext};
use causality_vm::content_id::hex_encode;
use causality_vm::resource::{
    nullifier_key_commitment, ConsumedInput, NewResource, Operation, ResourceUpdate, VerifyTarget,
};
use causality_vm::store::RegisterStore;
use causality_vm::{ContentId, DomainId, ExecutionMode};
use serde_json::{json, Value};

const DOMAIN: &str = "example.bank";

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn program(name: &str) -> ContentId {
    let source = std::fs::read_to_string(examples_dir().join(name)).unwrap();
    let program = causality_vm::tel::compile(&source).unwrap_or_else(|e| panic!("{name}: {e}"));
    ContentId::of_encoding(&program.encode())
}

fn nk(owner: &str) -> [u8; 32] {
    blake3::derive_key("causality-vm example nullifier key", owner.as_bytes())
}

fn resource(logic: ContentId, fungibility: &str, quantity: u64, owner: &str, nonce: &str) -> NewResource {
    NewResource {
        logic,
        domain: DomainId::new(DOMAIN),
        fungibility_domain: fungibility.into(),
        quantity,
        metadata: BTreeMap::new(),
        contents: Vec::new(),
        nullifier_key_commitment: nullifier_key_commitment(&nk(owner)),
        controller: owner.into(),
        nonce: *blake3::hash(nonce.as_bytes()).as_bytes(),
    }
}

fn id(r: &NewResource) -> ContentId {
    ContentId::of_encoding(&r.id_encoding())
}

fn spend(r: &NewResource) -> ConsumedInput {
    ConsumedInput { id: id(r), nullifier_key: nk(&r.controller) }
}

fn batch_json(programs: &[&str], ops: &[Operation]) -> String {
    let v = json!({
        "domain": DOMAIN,
        "token": "mint",
        "timestamp": "now",
        "programs": programs,
        "ops": ops,
    });
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

/// Every example: file name → contents.
fn examples() -> Vec<(&'static str, String)> {
    let gold = program("fungible_token.tel");
    let registry = program("controller_only.tel");
    let token = "fungible_token.tel";
    let mint = |q: u64, nonce: &str| resource(gold, "gold", q, "treasury", nonce);

    let a = mint(500, "create a");
    let b = mint(250, "create b");
    let create = batch_json(&[token], &[Operation::Create { resource: a.clone() }, Operation::Create { resource: b }]);

    let r = mint(10, "read");
    let read = batch_json(&[token], &[Operation::Create { resource: r.clone() }, Operation::Read { id: id(&r) }]);

    let mut record = resource(registry, "record", 1, "registry", "record");
    record.metadata.insert("title".into(), "draft".into());
    let changes = ResourceUpdate {
        metadata: Some(BTreeMap::from([("title".to_string(), "final".to_string())])),
        contents: Some(b"hello".to_vec()),
        ..Default::default()
    };
    let update = batch_json(
        &["controller_only.tel"],
        &[Operation::Create { resource: record.clone() }, Operation::Update { id: id(&record), changes }],
    );

    let burn = mint(5, "burn");
    let delete = batch_json(
        &[token],
        &[Operation::Create { resource: burn.clone() }, Operation::Delete { input: spend(&burn) }],
    );

    let t = mint(100, "transfer");
    let to_alice = resource(gold, "gold", 60, "alice", "transfer alice");
    let change = mint(40, "transfer change");
    let transfer = batch_json(
        &[token],
        &[
            Operation::Create { resource: t.clone() },
            Operation::Transfer { inputs: vec![spend(&t)], outputs: vec![to_alice, change] },
        ],
    );

    let v = mint(7, "verify");
    let commitment = *blake3::hash(&v.clone().into_register(id(&v)).state_encoding()).as_bytes();
    let verify = batch_json(
        &[token],
        &[
            Operation::Create { resource: v.clone() },
            Operation::Verify { target: VerifyTarget::Commitment { id: id(&v), commitment } },
        ],
    );

    // The README's main example: the treasury mints, pays alice and bob, alice pays carol.
    let mut ops = Vec::new();
    let supply: Vec<NewResource> = (0..4).map(|i| mint(1_000, &format!("supply {i}"))).collect();
    ops.extend(supply.iter().map(|r| Operation::Create { resource: r.clone() }));
    let alice = resource(gold, "gold", 300, "alice", "pay alice");
    let bob = resource(gold, "gold", 200, "bob", "pay bob");
    let rest = mint(700, "treasury change");
    // A proof slot holds at most 2 inputs and 2 outputs (docs/PROVING.md).
    ops.push(Operation::Transfer { inputs: vec![spend(&supply[0])], outputs: vec![alice.clone(), rest.clone()] });
    let carol = resource(gold, "gold", 120, "carol", "alice pays carol");
    let alice_change = resource(gold, "gold", 180, "alice", "alice change");
    ops.push(Operation::Transfer { inputs: vec![spend(&alice)], outputs: vec![carol.clone(), alice_change.clone()] });
    let merged = resource(gold, "gold", 1_800, "treasury", "treasury merge");
    ops.push(Operation::Transfer {
        inputs: vec![spend(&supply[2]), spend(&supply[3])],
        outputs: vec![bob.clone(), merged],
    });
    ops.push(Operation::Read { id: id(&carol) });
    let transfers = batch_json(&[token], &ops);

    vec![
        ("create.json", create),
        ("read.json", read),
        ("update.json", update),
        ("delete.json", delete),
        ("transfer.json", transfer),
        ("verify.json", verify),
        ("transfers.json", transfers),
    ]
}

#[test]
#[ignore = "writes examples/*.json; run after the TEL compiler's output changes"]
fn regenerate_examples() {
    for (name, text) in examples() {
        std::fs::write(examples_dir().join(name), text).unwrap();
    }
}

#[test]
fn examples_are_up_to_date() {
    for (name, text) in examples() {
        let on_disk = std::fs::read_to_string(examples_dir().join(name)).unwrap_or_default();
        let parsed: Value = serde_json::from_str(&on_disk).unwrap_or(Value::Null);
        let expected: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed, expected,
            "examples/{name} is stale (program ids changed?): run cargo test --test batch examples:: -- --ignored regenerate_examples"
        );
    }
}

#[test]
fn every_example_succeeds_on_a_fresh_data_dir() {
    let mut kinds = std::collections::HashSet::new();
    for (name, _) in examples() {
        let dir = tempfile::tempdir().unwrap();
        let path = examples_dir().join(name);
        let file = BatchFile::read(&path).unwrap();
        let mut store = RegisterStore::open(dir.path()).unwrap();
        let keys = dir.path().join("keys.json");
        let prepared = prepare(file, name, &examples_dir(), Keys::Create(&keys)).unwrap();
        assert_eq!(prepared.notices.len(), 1, "a fresh data dir gets a root key");
        let tx = TransactionContext::new(ExecutionMode::Standard).with_max_clock_skew(300);
        let content = prepared.content();
        let job = BatchJob::new(&prepared.keys, &prepared.ops, &prepared.ctx, &tx).with_programs(&content);
        let result = execute_batches(&mut store, &[job]).pop().unwrap().unwrap();
        for r in &result.results {
            assert!(r.succeeded(), "{name} op {}: {:?}", r.index, r.status);
            kinds.insert(format!("{:?}", r.kind));
        }
        assert!(result.metadata.committed);
        assert_eq!(hex_encode(&store.state_root()).len(), 64);
    }
    assert_eq!(kinds.len(), 6, "one example per operation kind: {kinds:?}");
}

/// A batch file's `tel 2;` program is compiled by the optimizing generator:
/// its resources name the format-2 program's id, and it decides the batch's
/// operations as the example's TEL 1 program does.
#[test]
fn a_tel_2_program_governs_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let source = std::fs::read_to_string(examples_dir().join("fungible_token.tel")).unwrap();
    std::fs::write(dir.path().join("token2.tel"), format!("tel 2;\n{source}")).unwrap();
    let program = causality_vm::tel::compile(&format!("tel 2;\n{source}")).unwrap();
    assert_eq!(program.format(), 2);
    let gold = ContentId::of_encoding(&program.encode());
    assert_ne!(gold, self::program("fungible_token.tel"));

    let mint = resource(gold, "gold", 100, "treasury", "tel2 mint");
    let pay = resource(gold, "gold", 60, "alice", "tel2 alice");
    let change = resource(gold, "gold", 40, "treasury", "tel2 change");
    let good = batch_json(
        &["token2.tel"],
        &[
            Operation::Create { resource: mint.clone() },
            Operation::Transfer { inputs: vec![spend(&mint)], outputs: vec![pay.clone(), change] },
        ],
    );
    // Only the treasury burns.
    let bad = batch_json(&["token2.tel"], &[Operation::Delete { input: spend(&pay) }]);

    let mut store = RegisterStore::open(dir.path().join("data")).unwrap();
    let keys = dir.path().join("keys.json");
    let mut outcomes = Vec::new();
    for (name, text) in [("good.json", good), ("bad.json", bad)] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let prepared = prepare(BatchFile::read(&path).unwrap(), name, dir.path(), Keys::Create(&keys)).unwrap();
        let tx = TransactionContext::new(ExecutionMode::Standard).with_max_clock_skew(300);
        let content = prepared.content();
        let job = BatchJob::new(&prepared.keys, &prepared.ops, &prepared.ctx, &tx).with_programs(&content);
        let result = execute_batches(&mut store, &[job]).pop().unwrap().unwrap();
        outcomes.push(result.results.iter().map(|r| (r.succeeded(), format!("{:?}", r.status))).collect::<Vec<_>>());
    }
    assert!(outcomes[0].iter().all(|(ok, _)| *ok), "{:?}", outcomes[0]);
    let (ok, status) = &outcomes[1][0];
    assert!(!ok && status.contains("code 9: gold can only be"), "{status}");
}
