//! The command line against hostile input and unlucky operators: each case
//! is refused with a precise error, or bounded, and the store stays as it
//! was (docs/SECURITY.md lists what each test here defends).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use causality_vm::resource::{nullifier_key_commitment, NewResource, Operation};
use causality_vm::vm::{Instruction, Program, Reg};
use causality_vm::{ContentId, DomainId};
use serde_json::{json, Value};

fn cvm_command(data: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cvm"));
    command.arg("--data-dir").arg(data).args(["--backend", "cpu"]).args(args).env_remove("CVM_DATA_DIR");
    command
}

fn cvm(data: &Path, args: &[&str]) -> Output {
    cvm_command(data, args).output().expect("run cvm")
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

const DOMAIN: &str = "hostile.test";

/// A directory holding batch files and the programs they bring.
struct Batches {
    dir: tempfile::TempDir,
}

impl Batches {
    fn new() -> Self {
        let batches = Batches { dir: tempfile::tempdir().unwrap() };
        batches.program("accept.bin", &Program::new(vec![Instruction::Accept], Vec::new()).unwrap());
        batches
    }

    /// Write `program` as `name`; returns its id.
    fn program(&self, name: &str, program: &Program) -> ContentId {
        let bytes = program.encode();
        std::fs::write(self.dir.path().join(name), &bytes).unwrap();
        ContentId::of_encoding(&bytes)
    }

    fn accept(&self) -> ContentId {
        ContentId::of_encoding(&Program::new(vec![Instruction::Accept], Vec::new()).unwrap().encode())
    }

    /// Write a batch file: `fields` over the defaults (mint token, now, the
    /// accept program, `ops`).
    fn file(&self, name: &str, ops: &[Operation], fields: Value) -> PathBuf {
        let mut batch = json!({
            "domain": DOMAIN,
            "token": "mint",
            "timestamp": "now",
            "programs": ["accept.bin"],
            "ops": ops,
        });
        for (k, v) in fields.as_object().unwrap() {
            batch[k] = v.clone();
        }
        let path = self.dir.path().join(name);
        std::fs::write(&path, batch.to_string()).unwrap();
        path
    }

    fn raw(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn nk(seed: u64) -> [u8; 32] {
    *blake3::hash(&seed.to_le_bytes()).as_bytes()
}

fn resource(logic: ContentId, seed: u64) -> NewResource {
    NewResource {
        logic,
        domain: DomainId::new(DOMAIN),
        fungibility_domain: "gold".into(),
        quantity: 10,
        metadata: Default::default(),
        contents: Vec::new(),
        nullifier_key_commitment: nullifier_key_commitment(&nk(seed)),
        controller: format!("owner-{seed}").into(),
        nonce: *blake3::hash(format!("nonce {seed}").as_bytes()).as_bytes(),
    }
}

fn id_of(r: &NewResource) -> ContentId {
    ContentId::of_encoding(&r.id_encoding())
}

fn create(r: &NewResource) -> Operation {
    Operation::Create { resource: r.clone() }
}

fn run_json(data: &Path, file: &Path, extra: &[&str]) -> (Output, Value) {
    let mut args = vec!["--json", "run", "--no-prove", file.to_str().unwrap()];
    args.extend(extra);
    let o = cvm(data, &args);
    let value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, value)
}

/// A data dir with one committed batch (its file returned), and the batch directory.
fn one_batch_committed() -> (tempfile::TempDir, Batches, PathBuf) {
    let data = tempfile::tempdir().unwrap();
    let b = Batches::new();
    let file = b.file("one.json", &[create(&resource(b.accept(), 1))], json!({}));
    assert_eq!(run_json(data.path(), &file, &[]).0.status.code(), Some(0));
    (data, b, file)
}

/// Each file of `dir` with the BLAKE3 of its bytes.
fn files_of(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (e.file_name().into_string().unwrap(), blake3::hash(&std::fs::read(e.path()).unwrap()).to_hex().to_string())
        })
        .collect();
    files.sort();
    files
}

/// A data dir whose store holds ten committed batches, all still in its
/// log (as a crash leaves them: a clean close folds the log into the tables).
fn ten_batches_in_the_log() -> tempfile::TempDir {
    committed_store(10, false)
}

/// A data dir whose store holds `batches` committed batches of one
/// creation each, closed cleanly (all in the tables) or as a crash leaves
/// it (all in the log).
fn committed_store(batches: u64, close_cleanly: bool) -> tempfile::TempDir {
    use causality_vm::batch::{execute_batch, TransactionContext};
    use causality_vm::capability::{CapabilityToken, KeyRing, RootKey};
    use causality_vm::store::RegisterStore;
    let built = tempfile::tempdir().unwrap();
    let mut store = RegisterStore::open(built.path()).unwrap();
    let accept = store.put_content(&Program::new(vec![Instruction::Accept], Vec::new()).unwrap().encode()).unwrap();
    let root = RootKey([4; 32]);
    let mut keys = KeyRing::new();
    keys.insert(DomainId::new(DOMAIN), root.clone());
    let ctx = causality_vm::ExecutionContext {
        domain_id: DomainId::new(DOMAIN),
        trace_id: "t".into(),
        capability_token: CapabilityToken::mint(&root, DomainId::new(DOMAIN), [1; 16]),
        timestamp: now(),
        environment: Default::default(),
        cross_domain_grants: Vec::new(),
    };
    let tx = TransactionContext::new(causality_vm::ExecutionMode::Standard);
    for n in 0..batches {
        let result = execute_batch(&mut store, &keys, &[create(&resource(accept, n))], &ctx, &tx).unwrap();
        assert!(result.metadata.committed);
    }
    if close_cleanly {
        store.close().unwrap();
        return built;
    }
    std::mem::forget(store);
    let data = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(built.path()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), data.path().join(entry.file_name())).unwrap();
    }
    data
}

/// Where each frame of a log of sealed frames starts.
fn frame_starts(log: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at < log.len() {
        starts.push(at);
        at += u64::from_le_bytes(log[at + 16..at + 24].try_into().unwrap()) as usize + 128;
    }
    starts
}

#[test]
fn a_damaged_frame_mid_log_is_refused_by_every_command_until_recovered() {
    let data = ten_batches_in_the_log();
    let b = Batches::new();
    let log = data.path().join("store.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let starts = frame_starts(&bytes);
    assert_eq!(starts.len(), 10, "the batches are in the log");
    bytes[starts[3] + 64 + 5] ^= 1;
    std::fs::write(&log, &bytes).unwrap();
    // The log is never cut nor folded; the database's bytes may change (its
    // own crash repair and integrity check commit), its tables do not: the
    // recovery below finds every batch before the damage there or in the log.
    // (writer.pid names the last process to try to write.)
    let log_only = |dir: &Path| {
        files_of(dir).into_iter().filter(|(name, _)| name != "store.redb" && name != "writer.pid").collect::<Vec<_>>()
    };
    let before = log_only(data.path());
    let next = b.file("next.json", &[create(&resource(b.accept(), 50))], json!({}));
    for args in [&["state"][..], &["state", "history"], &["run", "--no-prove", next.to_str().unwrap()]] {
        let o = cvm(data.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(&format!("damaged at byte {}", starts[3])), "{args:?}: {}", text(&o));
    }
    assert_eq!(log_only(data.path()), before, "nothing was truncated or checkpointed");
    let o = cvm(data.path(), &["store", "check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("PROBLEM"), "{}", text(&o));
    let o = cvm(data.path(), &["store", "recover", "--to-last-good"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("ends at batch 3"), "{}", text(&o));
    let o = cvm(data.path(), &["--json", "state"]);
    let state: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(state["head"], 3, "{}", text(&o));
    assert_eq!(cvm(data.path(), &["store", "check"]).status.code(), Some(0));
}

/// A frame whose leading seal is damaged but whose trailing seal and
/// payload are whole keeps its batch, and `store check` says so in a note
/// (it said the store was sound, with nothing to note).
#[test]
fn a_damaged_seal_that_costs_nothing_is_still_noted_by_store_check() {
    let data = ten_batches_in_the_log();
    let log = data.path().join("store.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let starts = frame_starts(&bytes);
    bytes[starts[4] + 16] ^= 1;
    std::fs::write(&log, &bytes).unwrap();
    let o = cvm(data.path(), &["--json", "store", "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["problems"], json!([]), "{report}");
    let notes = report["notes"].to_string();
    assert!(notes.contains(&format!("byte {}", starts[4])) && notes.contains("leading seal of batch 5"), "{report}");
}

/// A batch with no operations commits nothing, so it proves nothing: no
/// proving keys are loaded, nor set up where there are none.
#[test]
fn an_empty_batch_sets_up_no_keys() {
    let data = tempfile::tempdir().unwrap();
    let b = Batches::new();
    let file = b.file("empty.json", &[], json!({}));
    let o = cvm(data.path(), &["--json", "run", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let result: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(result["metadata"]["committed"], false, "{result}");
    assert!(!data.path().join("keys").exists(), "keys were set up for an empty batch");
}

#[test]
fn concurrent_keygens_lose_no_key() {
    let data = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..10)
        .map(|n| {
            cvm_command(data.path(), &["token", "keygen", "--domain", &format!("d{n}")])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let ring: Value = serde_json::from_slice(&std::fs::read(data.path().join("keys.json")).unwrap()).unwrap();
    assert_eq!(ring.as_object().unwrap().len(), 10, "{ring}");
}

#[test]
fn bad_names_are_refused_before_anything_is_written() {
    let data = tempfile::tempdir().unwrap();
    let b = Batches::new();
    for (name, domain) in [("empty", json!("")), ("long", json!("d".repeat(300))), ("space", json!(" d"))] {
        let file = b.file(&format!("{name}.json"), &[], json!({ "domain": domain }));
        let o = cvm(data.path(), &["run", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", text(&o));
        assert!(text(&o).contains("domain"), "{name}: {}", text(&o));
    }
    let o = cvm(data.path(), &["token", "mint", "--domain", &"x".repeat(70_000)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("at most 255"), "{}", text(&o));
    let o = cvm(data.path(), &["token", "keygen", "--domain", ""]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!data.path().join("keys.json").exists(), "no key ring was written");
    // A later good batch runs.
    let file = b.file("good.json", &[create(&resource(b.accept(), 1))], json!({}));
    assert_eq!(run_json(data.path(), &file, &[]).0.status.code(), Some(0));
}

/// One transfer of more resources than a logic program can address (each
/// one's logic lists all the others: the work grows with the square) is
/// refused as the file is read, naming the operation; at the bound, read.
#[test]
fn a_transfer_of_more_resources_than_logic_can_address_is_refused() {
    use causality_vm::batch::file::MAX_TRANSFER_RESOURCES;
    let data = tempfile::tempdir().unwrap();
    let b = Batches::new();
    let output = resource(b.accept(), 1);
    let transfer = |outputs: usize| Operation::Transfer { inputs: Vec::new(), outputs: vec![output.clone(); outputs] };
    let file = b.file("wide.json", &[create(&output), transfer(MAX_TRANSFER_RESOURCES + 1)], json!({}));
    let o = cvm(data.path(), &["run", "--no-prove", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let expected = format!("ops[1].outputs: 0 inputs and {} outputs", MAX_TRANSFER_RESOURCES + 1);
    assert!(text(&o).contains(&expected), "{}", text(&o));
    // At the bound the file is read, and the transfer fails on its own terms (no inputs).
    let file = b.file("at-bound.json", &[transfer(MAX_TRANSFER_RESOURCES)], json!({}));
    let o = cvm(data.path(), &["run", "--no-prove", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("a transfer needs at least one and this one names none"), "{}", text(&o));
}

#[test]
fn loose_json_is_refused_with_the_field_named() {
    let data = tempfile::tempdir().unwrap();
    let b = Batches::new();
    let good = b.file("good.json", &[create(&resource(b.accept(), 1))], json!({}));
    let text_of = std::fs::read_to_string(&good).unwrap();
    let cases = [
        ("positional", "[\"hostile.test\", \"mint\", \"now\", {}, [], [], [], []]".to_string(), "not an array"),
        ("duplicate", text_of.replacen("\"domain\"", "\"domain\":\"x\",\"domain\"", 1), "duplicate key `domain`"),
        (
            "duplicate env",
            text_of.replacen("\"ops\"", "\"environment\":{\"k\":\"1\",\"k\":\"2\"},\"ops\"", 1),
            "duplicate key `k`",
        ),
        ("range", text_of.replacen("\"quantity\":10", "\"quantity\":-1", 1), "resource.quantity"),
        // Columns count from 1, an empty file's too; a byte-order mark is named.
        ("empty", String::new(), "empty.json:1:1: EOF"),
        ("bom", format!("\u{feff}{text_of}"), "bom.json:1:1: the file starts with a byte-order mark"),
    ];
    for (what, text_in, needle) in cases {
        let file = b.raw(&format!("{what}.json"), &text_in);
        let o = cvm(data.path(), &["run", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{what}: {}", text(&o));
        assert!(text(&o).contains(needle), "{what}: {}", text(&o));
    }
    let environment: serde_json::Map<String, Value> = (0..127).map(|i| (format!("k{i:03}"), json!("v"))).collect();
    let file = b.file("env.json", &[], json!({ "environment": environment }));
    let o = cvm(data.path(), &["run", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("environment") && text(&o).contains("126"), "{}", text(&o));
    // --step outside a debug run is refused, not ignored.
    let o = cvm(data.path(), &["run", "--step", good.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--step steps through one file's debug run"), "{}", text(&o));
    assert!(!data.path().join("store.redb").exists());
}

/// A program that hashes a 1 MiB slice of its data again and again.
fn hash_loop() -> Program {
    let mut data = (1u32 << 20).to_le_bytes().to_vec();
    data.resize(4 + (1 << 20), 7);
    let r1 = Reg::new(1).unwrap();
    let r2 = Reg::new(2).unwrap();
    let code = vec![
        Instruction::Str { rd: r1, offset: 0 },
        Instruction::Hash { rd: r2, ra: r1 },
        Instruction::Jmp { target: 8 },
    ];
    Program::new(code, data).unwrap()
}

#[test]
fn hashed_bytes_are_charged_to_the_budget() {
    let data = tempfile::tempdir().unwrap();
    let b = Batches::new();
    let logic = b.program("loop.bin", &hash_loop());
    let file = b.file("loop.json", &[create(&resource(logic, 1))], json!({ "programs": ["accept.bin", "loop.bin"] }));
    let started = std::time::Instant::now();
    let (o, result) = run_json(data.path(), &file, &["--budget", "1000"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(result["results"][0]["error"], "Timeout", "{result}");
    let (o, result) = run_json(data.path(), &file, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(result["results"][0]["error"], "Timeout", "{result}");
    // The default budget hashes at most a few MiB: seconds, not minutes.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

/// A program that files POSEIDON over 16 elements again and again.
fn poseidon_loop() -> Program {
    let mut data = 512u32.to_le_bytes().to_vec();
    data.resize(4 + 512, 0);
    let r1 = Reg::new(1).unwrap();
    let r2 = Reg::new(2).unwrap();
    let code = vec![
        Instruction::Str { rd: r1, offset: 0 },
        Instruction::Poseidon { rd: r2, ra: r1 },
        Instruction::Jmp { target: 8 },
    ];
    Program::new(code, data).unwrap()
}

/// Poseidon is charged per permutation: a loop of them times out after a
/// few dozen requests at the default budget, however cheap the loop looks.
#[test]
fn poseidon_loops_are_charged_to_the_budget() {
    let data = tempfile::tempdir().unwrap();
    let b = Batches::new();
    let logic = b.program("ploop.bin", &poseidon_loop());
    let file = b.file("ploop.json", &[create(&resource(logic, 1))], json!({ "programs": ["accept.bin", "ploop.bin"] }));
    let (o, result) = run_json(data.path(), &file, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(result["results"][0]["error"], "Timeout", "{result}");
    assert_eq!(result["success_count"], 0);
}

/// POSEIDON of 42 asserted against `expected` at the flush.
fn poseidon_check(expected: [u8; 32]) -> Program {
    use ark_bn254::Fr;
    let mut data = 32u32.to_le_bytes().to_vec();
    data.extend_from_slice(&causality_vm::crypto::field::field_to_bytes(&Fr::from(42u64)));
    data.extend_from_slice(&32u32.to_le_bytes());
    data.extend_from_slice(&expected);
    let r = |n| Reg::new(n).unwrap();
    let code = vec![
        Instruction::Str { rd: r(1), offset: 0 },
        Instruction::Poseidon { rd: r(2), ra: r(1) },
        Instruction::Str { rd: r(3), offset: 36 },
        Instruction::AssertDigest { handle: r(2), expected: r(3) },
        Instruction::Accept,
    ];
    Program::new(code, data).unwrap()
}

/// `cvm run` with logic that checks a Poseidon value: the right value
/// commits its creation, a wrong one fails it at the flush with both values
/// named, and the store holds only the first.
#[test]
fn logic_poseidon_checks_run_through_the_cli() {
    use causality_vm::crypto::poseidon::{hash, HashDomain};
    let data = tempfile::tempdir().unwrap();
    let b = Batches::new();
    let value = causality_vm::crypto::field::field_to_bytes(&hash(HashDomain::Logic, &[ark_bn254::Fr::from(42u64)]));
    let right = b.program("right.bin", &poseidon_check(value));
    let wrong = b.program("wrong.bin", &poseidon_check([1; 32]));
    let ops = [create(&resource(right, 1)), create(&resource(wrong, 2))];
    let file = b.file("p.json", &ops, json!({ "programs": ["accept.bin", "right.bin", "wrong.bin"] }));
    let (o, result) = run_json(data.path(), &file, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(result["success_count"], 1, "{result}");
    assert!(result["results"][0]["error"].is_null(), "{result}");
    assert_eq!(result["results"][1]["error"], "StateCommitmentError", "{result}");
    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
    assert!(result.to_string().contains(&hex), "the message names the value: {result}");
}

#[test]
fn deletes_of_one_id_with_wrong_keys_run_the_batch_once() {
    let data = tempfile::tempdir().unwrap();
    let b = Batches::new();
    let r = resource(b.accept(), 1);
    let first = b.file("create.json", &[create(&r)], json!({}));
    assert_eq!(run_json(data.path(), &first, &[]).0.status.code(), Some(0));
    let wrong = causality_vm::resource::ConsumedInput { id: id_of(&r), nullifier_key: nk(99) };
    let ops: Vec<Operation> = (0..2000).map(|_| Operation::Delete { input: wrong.clone() }).collect();
    let file = b.file("deletes.json", &ops, json!({}));
    let (o, result) = run_json(data.path(), &file, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(result["success_count"], 0);
    assert_eq!(result["metadata"]["reruns"], 0, "no operation failed at the flush");
}

#[test]
fn programs_are_read_only_from_regular_files_inside_the_batch_directory() {
    let data = tempfile::tempdir().unwrap();
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("secret"), "root:x:0:0:root:/root:/bin/bash").unwrap();
    let inner = outer.path().join("batches");
    std::fs::create_dir(&inner).unwrap();
    assert!(Command::new("mkfifo").arg(inner.join("fifo.bin")).status().unwrap().success());
    std::os::unix::fs::symlink(outer.path().join("secret"), inner.join("link.bin")).unwrap();
    for program in ["/dev/zero", "/etc/passwd", "../secret", "link.bin", "fifo.bin", "."] {
        let batch = json!({ "domain": DOMAIN, "token": "mint", "programs": [program], "ops": [] });
        let file = inner.join("p.json");
        std::fs::write(&file, batch.to_string()).unwrap();
        let o = cvm(data.path(), &["run", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{program}: {}", text(&o));
        let all = text(&o);
        assert!(all.contains(&format!("program {program}")), "{program}: {all}");
        assert!(!all.contains("72, 6f") && !all.contains("root:x"), "{program}: leaks bytes: {all}");
    }
    assert!(!data.path().join("store.redb").exists());
}

#[test]
fn timestamps_never_go_back_and_stay_near_the_clock() {
    let data = tempfile::tempdir().unwrap();
    let b = Batches::new();
    let t = now();
    let file = b.file("now.json", &[create(&resource(b.accept(), 1))], json!({ "timestamp": t }));
    assert_eq!(run_json(data.path(), &file, &[]).0.status.code(), Some(0));
    let file = b.file("back.json", &[create(&resource(b.accept(), 2))], json!({ "timestamp": t - 100 }));
    let (o, _) = run_json(data.path(), &file, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("before batch 1"), "{}", text(&o));
    let (o, _) = run_json(data.path(), &file, &["--max-clock-skew", "off"]);
    assert_eq!(o.status.code(), Some(2), "the head rule holds whatever the skew: {}", text(&o));
    let file = b.file("old.json", &[create(&resource(b.accept(), 3))], json!({ "timestamp": 1000 }));
    let fresh = tempfile::tempdir().unwrap();
    let (o, _) = run_json(fresh.path(), &file, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("behind this machine's clock"), "{}", text(&o));
    let file = b.file("ahead.json", &[create(&resource(b.accept(), 4))], json!({ "timestamp": t + 10_000 }));
    assert_eq!(run_json(fresh.path(), &file, &[]).0.status.code(), Some(2));
    let state = cvm(data.path(), &["--json", "state"]);
    assert_eq!(serde_json::from_slice::<Value>(&state.stdout).unwrap()["head"], 1);
}

#[test]
fn read_commands_and_read_only_modes_write_nothing() {
    let (data, b, file) = one_batch_committed();
    // A commit cut short leaves an unfinished frame: readers leave it alone.
    let log = data.path().join("store.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(&[0; 64]);
    bytes.extend_from_slice(&[5; 100]);
    std::fs::write(&log, &bytes).unwrap();
    let before = files_of(data.path());
    let other = b.file("two.json", &[create(&resource(b.accept(), 2))], json!({ "domain": "other.domain" }));
    for args in [
        vec!["state"],
        vec!["state", "history"],
        vec!["store", "check"],
        vec!["run", "--mode", "simulation", "--no-prove", other.to_str().unwrap()],
        vec!["run", "--mode", "verification", "--no-prove", other.to_str().unwrap()],
    ] {
        let o = cvm(data.path(), &args);
        assert!(o.status.code().is_some_and(|c| c < 2), "{args:?}: {}", text(&o));
        assert_eq!(files_of(data.path()), before, "{args:?} wrote to the data dir");
    }
    let o = cvm(data.path(), &["run", "--ops-per-proof", "0", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(files_of(data.path()), before);
    let missing = data.path().join("misspelt");
    let o = cvm(&missing, &["state"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!missing.exists(), "a read command created the data dir");
}

#[test]
fn programs_are_not_stored_by_a_batch_that_commits_nothing() {
    let (data, b, _) = one_batch_committed();
    let logic = b.program("guard.bin", &Program::new(vec![Instruction::Nop, Instruction::Accept], vec![]).unwrap());
    let r = resource(logic, 2);
    // A token of the domain made with another key: every operation fails.
    let forged = causality_vm::capability::CapabilityToken::mint(
        &causality_vm::capability::RootKey([9; 32]),
        DomainId::new(DOMAIN),
        [2; 16],
    );
    let file = b.file("forged.json", &[create(&r)], json!({ "programs": ["guard.bin"], "token": forged.to_text() }));
    let (o, result) = run_json(data.path(), &file, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(result["metadata"]["committed"], false);
    let without = b.file("later.json", &[create(&r)], json!({ "programs": [] }));
    let (o, result) = run_json(data.path(), &without, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let message = result["results"][0]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("not in the content store"), "{message}");
}

#[test]
fn verify_trusts_only_the_key_it_is_told_to_and_checks_the_manifest() {
    let data = tempfile::tempdir().unwrap();
    let b = Batches::new();
    let ops: Vec<Operation> = (0..3).map(|n| create(&resource(b.accept(), n))).collect();
    let file = b.file("three.json", &ops, json!({}));
    let o = cvm(data.path(), &["run", file.to_str().unwrap(), "--ops-per-proof", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = tempfile::tempdir().unwrap();
    let export = out.path().join("x");
    assert_eq!(cvm(data.path(), &["export", "--out", export.to_str().unwrap()]).status.code(), Some(0));
    let o = cvm(data.path(), &["verify", export.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).matches("OK ").count(), 3);
    // Exporting again into it needs --force, which leaves no stale proof dirs.
    assert_eq!(cvm(data.path(), &["export", "--out", export.to_str().unwrap()]).status.code(), Some(2));
    std::fs::create_dir(export.join("proof-9")).unwrap();
    let o = cvm(data.path(), &["export", "--force", "--out", export.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!export.join("proof-9").exists());

    // A key of the sender's choosing (delta = gamma) is not trusted.
    let vk_path = export.join("proof-0/verification_key.json");
    let mut vk: Value = serde_json::from_slice(&std::fs::read(&vk_path).unwrap()).unwrap();
    vk["vk_delta_2"] = vk["vk_gamma_2"].clone();
    std::fs::write(&vk_path, vk.to_string()).unwrap();
    let o = cvm(data.path(), &["verify", export.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("FAIL"), "{}", text(&o));

    // A deleted proof is noticed through the manifest.
    assert_eq!(cvm(data.path(), &["export", "--force", "--out", export.to_str().unwrap()]).status.code(), Some(0));
    std::fs::remove_dir_all(export.join("proof-1")).unwrap();
    let o = cvm(data.path(), &["verify", export.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("proof-1"), "{}", text(&o));
}

#[test]
fn a_committed_batch_never_exits_2_and_output_failures_do_not_panic() {
    let (data, b, _) = one_batch_committed();
    // The close-time checkpoint cannot rename the log into place: the batch
    // commits (it is in the log) and the command says so, exit 0.
    let blocker = data.path().join("store.log.2");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("x"), b"x").unwrap();
    let second = b.file("second.json", &[create(&resource(b.accept(), 2))], json!({}));
    let (o, result) = run_json(data.path(), &second, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(result["metadata"]["committed"], true);
    assert!(text(&o).contains("warning"), "{}", text(&o));
    std::fs::remove_dir_all(&blocker).unwrap();
    let state: Value = serde_json::from_slice(&cvm(data.path(), &["--json", "state"]).stdout).unwrap();
    assert_eq!(state["head"], 2);

    // Stdout closed before anything is written: no panic, exit 141 for a
    // read command, and the run's commit still counts.
    let mut child =
        cvm_command(data.path(), &["state", "history"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(141));
    let third = b.file("third.json", &[create(&resource(b.accept(), 3))], json!({}));
    let o = cvm_command(data.path(), &["run", "--no-prove", third.to_str().unwrap()])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
    let o = cvm_command(data.path(), &["state"]).stdout(std::fs::File::create("/dev/full").unwrap()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("No space left"), "{}", text(&o));
}

/// Every file a command reads whole is bounded by what its kind ever holds,
/// so a device that never ends costs a bounded read and an error, not the
/// machine's memory; key and circuit files must be regular files (a FIFO
/// with no writer would hold the command forever).
#[test]
fn devices_and_fifos_named_as_inputs_are_refused_not_read_forever() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let fifo = fifo.to_str().unwrap();
    let refused = |args: &[&str], expected: &str| {
        // `timeout`: a regression that reads forever fails here instead of hanging the suite.
        let mut command = Command::new("timeout");
        command.arg("120").arg(env!("CARGO_BIN_EXE_cvm")).arg("--data-dir").arg(dir).args(["--backend", "cpu"]);
        let o = command.args(args).env_remove("CVM_DATA_DIR").output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(expected), "{args:?}: {expected:?} not in {}", text(&o));
    };
    let larger = "bytes, more than a file of its kind holds";
    refused(&["tel", "check", "/dev/zero"], larger);
    refused(&["resource", "id", "/dev/zero"], larger);
    refused(&["token", "verify", "@/dev/zero"], larger);
    refused(&["groth16", "verify", "/dev/zero", "public.json", "proof.json"], larger);
    std::fs::write(dir.join("proof.json"), "{}").unwrap();
    refused(&["verify", "--vk", "/dev/zero", dir.to_str().unwrap()], larger);
    let irregular = "not a regular file";
    let witness = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/circom/multiplier.wtns");
    for key in [fifo, "/dev/zero", "/tmp"] {
        refused(&["groth16", "prove", key, witness, "p.json", "q.json"], irregular);
    }
    refused(&["setup", "--ops-per-proof", "1", "--import-zkey", fifo], irregular);
}

/// redb panics on some damaged pages; the store turns the panic into an
/// error naming the file, and the user sees that error alone: no panic
/// message, no backtrace, and no byte offset the store does not know.
#[test]
fn a_damaged_database_page_is_an_error_never_a_panic_message() {
    let built = committed_store(6, true);
    let pristine = std::fs::read(built.path().join("store.redb")).unwrap();
    let mut refused = 0;
    for at in (0..pristine.len()).step_by(512) {
        let mut damaged = pristine.clone();
        damaged[at] ^= 0x5a;
        std::fs::write(built.path().join("store.redb"), &damaged).unwrap();
        let o = cvm_command(built.path(), &["state", "root"]).env("RUST_BACKTRACE", "1").output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "byte {at}: {stderr}");
        if !o.status.success() {
            refused += 1;
            let named = stderr.contains("store.redb") || stderr.contains("the database file is damaged");
            assert!(named && !stderr.contains("at byte 0:"), "byte {at}: {stderr}");
        }
    }
    assert!(refused > 0, "no flip was noticed");
}
