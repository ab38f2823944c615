//! The main job as a user lives it: writing one's own batches with the
//! tools the docs name, readers beside a writer, honest output, stepping,
//! logging and the messages a user meets.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

fn cvm_command(data: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cvm"));
    command.arg("--data-dir").arg(data).args(["--backend", "cpu"]).args(args).env_remove("CVM_DATA_DIR");
    command
}

fn cvm(data: &Path, args: &[&str]) -> Output {
    cvm_command(data, args).output().expect("run cvm")
}

fn cvm_input(data: &Path, args: &[&str], input: &str) -> Output {
    let mut child =
        cvm_command(data, args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// The author's batch directory, with the author's own logic: any operation
/// on a resource that holds something.
struct Author {
    dir: tempfile::TempDir,
    logic: String,
}

impl Author {
    fn new(data: &Path) -> Author {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("logic.tel"), "accept if quantity > 0;\nreject \"an empty coin\";\n").unwrap();
        let o = cvm(data, &["--json", "tel", "compile", dir.path().join("logic.tel").to_str().unwrap()]);
        let logic = json_of(&o)["content_id"].as_str().unwrap().to_string();
        Author { dir, logic }
    }

    fn resource(&self, quantity: u64, owner: &str, commitment: &str, nonce: u8) -> Value {
        json!({
            "logic": self.logic,
            "domain": "my.domain",
            "fungibility_domain": "coin",
            "quantity": quantity,
            "nullifier_key_commitment": commitment,
            "controller": owner,
            "nonce": format!("{nonce:02x}").repeat(32),
        })
    }

    fn batch(&self, name: &str, ops: Value) -> PathBuf {
        let path = self.dir.path().join(name);
        let batch = json!({ "domain": "my.domain", "token": "mint", "programs": ["logic.tel"], "ops": ops });
        std::fs::write(&path, batch.to_string()).unwrap();
        path
    }

    /// The id of `resource`, as `cvm resource id` computes it.
    fn id(&self, data: &Path, resource: &Value) -> String {
        let o = cvm_input(data, &["resource", "id", "-"], &resource.to_string());
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    }
}

fn new_key(data: &Path) -> (String, String) {
    let keys = json_of(&cvm(data, &["--json", "resource", "new-key"]));
    (keys["nullifier_key"].as_str().unwrap().into(), keys["nullifier_key_commitment"].as_str().unwrap().into())
}

/// Following only the README and docs/BATCH_FORMAT.md: a user makes a key,
/// creates a resource with its commitment, transfers it and deletes the
/// output, each batch proven; `cvm check` catches the mistake a user is
/// likely to make first (a commitment no key opens) before it is committed.
#[test]
fn a_user_creates_transfers_and_deletes_their_own_resource_with_proofs() {
    let data = tempfile::tempdir().unwrap();
    let author = Author::new(data.path());
    let (alice_key, alice_commitment) = new_key(data.path());
    let (bob_key, bob_commitment) = new_key(data.path());
    let o = cvm_input(data.path(), &["resource", "nk-commitment"], &alice_key);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), alice_commitment);

    // A value that is not Poseidon(nk) of any key (here, above the field's
    // modulus, as most BLAKE3 digests are): check says so before anything runs.
    let wrong = "ff".repeat(32);
    let mistaken =
        author.batch("mistake.json", json!([{ "op": "create", "resource": author.resource(5, "alice", &wrong, 9) }]));
    let o = cvm(data.path(), &["check", mistaken.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("could never be consumed"), "{}", text(&o));
    assert!(!data.path().join("store.redb").exists(), "check wrote nothing");

    let coin = author.resource(10, "alice", &alice_commitment, 1);
    let coin_id = author.id(data.path(), &coin);
    let create = author.batch("create.json", json!([{ "op": "create", "resource": coin }]));
    assert_eq!(cvm(data.path(), &["check", create.to_str().unwrap()]).status.code(), Some(0));
    let run = |file: &Path| {
        let o = cvm(data.path(), &["--json", "run", "--ops-per-proof", "1", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let result = json_of(&o);
        assert_eq!(result["metadata"]["committed"], true);
        assert!(result["metadata"]["prove_stages"]["proofs"].as_u64().unwrap() >= 1, "proven");
        result
    };
    run(&create);
    // Checked again: its creation collides with the live coin; a file with
    // no programs names a logic program nothing brings; a file `cvm run`
    // refuses is a finding too, and every file is still checked.
    let no_programs = author.dir.path().join("no_programs.json");
    let mut orphan = author.resource(7, "alice", &alice_commitment, 3);
    orphan["logic"] = json!(format!("cid:blake3:{}", "00".repeat(32)));
    let bare = json!({ "domain": "my.domain", "token": "mint", "ops": [{ "op": "create", "resource": orphan }] });
    std::fs::write(&no_programs, bare.to_string()).unwrap();
    let broken = author.dir.path().join("broken.json");
    std::fs::write(&broken, "{").unwrap();
    let files = [broken.to_str().unwrap(), create.to_str().unwrap(), no_programs.to_str().unwrap()];
    let o = cvm(data.path(), &[&["check"][..], &files].concat());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    for expected in
        ["broken.json: refused", "already live in the store", "is neither brought by this file or an earlier one"]
    {
        assert!(text(&o).contains(expected), "{expected:?} missing:\n{}", text(&o));
    }

    let to_bob = author.resource(10, "bob", &bob_commitment, 2);
    let bob_coin = author.id(data.path(), &to_bob);
    let transfer = author.batch(
        "transfer.json",
        json!([{ "op": "transfer", "inputs": [{ "id": coin_id, "nullifier_key": alice_key }], "outputs": [to_bob] }]),
    );
    assert_eq!(cvm(data.path(), &["check", transfer.to_str().unwrap()]).status.code(), Some(0));
    let result = run(&transfer);
    assert_eq!(result["results"][0]["outcome"]["created"][0], bob_coin.as_str());
    let o = cvm(data.path(), &["resource", "nullifier", "--id", &coin_id, "--key", &alice_key]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), result["results"][0]["outcome"]["nullifiers"][0]);

    // Bob's key is the one that consumes Bob's coin; check catches Alice's.
    let wrong_key = author.batch(
        "delete_wrong.json",
        json!([{ "op": "delete", "input": { "id": bob_coin, "nullifier_key": alice_key } }]),
    );
    let o = cvm(data.path(), &["check", wrong_key.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("does not open"), "{}", text(&o));
    let delete =
        author.batch("delete.json", json!([{ "op": "delete", "input": { "id": bob_coin, "nullifier_key": bob_key } }]));
    run(&delete);
    let o = cvm(data.path(), &["--json", "state", "register", &bob_coin]);
    assert_eq!(json_of(&o)["consumed_in_batch"], 3);
    // An id the store never held, and a batch it does not hold, are not
    // found (not a usage error); a malformed id is one.
    let never = format!("cid:blake3:{}", "0".repeat(64));
    let o = cvm(data.path(), &["--json", "state", "register", &never]);
    assert_eq!((o.status.code(), json_of(&o)["kind"].as_str()), (Some(2), Some("not_found")), "{}", text(&o));
    let o = cvm(data.path(), &["--json", "export", "--batch", "9", "--out", "/nonexistent/e"]);
    assert_eq!((o.status.code(), json_of(&o)["kind"].as_str()), (Some(2), Some("not_found")), "{}", text(&o));
    assert!(text(&o).contains("holds batches 1 to 3"), "{}", text(&o));
    let o = cvm(data.path(), &["--json", "state", "register", "0000"]);
    assert_eq!(json_of(&o)["kind"], "usage", "{}", text(&o));
    // The proofs export and verify against the data dir's keys.
    let out = tempfile::tempdir().unwrap();
    let export = out.path().join("e");
    assert_eq!(cvm(data.path(), &["export", "--batch", "2", "--out", export.to_str().unwrap()]).status.code(), Some(0));
    assert_eq!(cvm(data.path(), &["verify", export.to_str().unwrap()]).status.code(), Some(0));
}

/// Several files are checked as `cvm run` runs them, in order: a file sees
/// the programs an earlier one brings and the resources it creates and
/// consumes, so a chain of files that would run is clean, and a spend or a
/// creation that an earlier file makes impossible is named with that file.
#[test]
fn check_follows_several_files_in_order_as_run_does() {
    let data = tempfile::tempdir().unwrap();
    let author = Author::new(data.path());
    let (key, commitment) = new_key(data.path());
    let coin = author.resource(10, "alice", &commitment, 1);
    let coin_id = author.id(data.path(), &coin);
    let change = author.resource(10, "alice", &commitment, 2);
    let create = author.batch("create.json", json!([{ "op": "create", "resource": coin }]));
    // The next file brings no programs: its output's logic comes from create.json.
    let spend = author.dir.path().join("spend.json");
    let ops = json!([{ "op": "transfer", "inputs": [{ "id": coin_id, "nullifier_key": key }], "outputs": [change] }]);
    std::fs::write(&spend, json!({ "domain": "my.domain", "token": "mint", "ops": ops }).to_string()).unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let check = |files: &[&Path]| {
        let args: Vec<String> =
            ["--json".to_string(), "check".to_string()].into_iter().chain(files.iter().map(|f| path(f))).collect();
        let o = cvm(data.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
        (o.status.code(), json_of(&o))
    };
    let (code, report) = check(&[&create, &spend]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report[1]["ok"], true, "{report}");

    // Alone, spend.json does not find its program (its input it cannot
    // judge without a store).
    let (code, report) = check(&[&spend]);
    assert_eq!(code, Some(1), "{report}");
    assert!(report[0]["findings"].to_string().contains("neither brought"), "{report}");

    // Spent twice across files, and the consumed coin created again.
    let again = author
        .batch("again.json", json!([{ "op": "create", "resource": author.resource(10, "alice", &commitment, 1) }]));
    let (code, report) = check(&[&create, &spend, &spend, &again]);
    assert_eq!(code, Some(1), "{report}");
    let twice = report[2]["findings"].to_string();
    assert!(twice.contains("already consumed by") && twice.contains("spend.json operation 0"), "{twice}");
    let recreated = report[3]["findings"].to_string();
    assert!(
        recreated.contains("creates") && recreated.contains("again") && recreated.contains("consumes it"),
        "{recreated}"
    );

    // A date `cvm run` and `cvm serve` would refuse is a finding too.
    let future = author.dir.path().join("future.json");
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(&create).unwrap()).unwrap();
    value["timestamp"] = json!(4_000_000_000u64);
    std::fs::write(&future, value.to_string()).unwrap();
    let (code, report) = check(&[&future]);
    assert_eq!(code, Some(1), "{report}");
    assert!(report[0]["findings"][0].as_str().unwrap().starts_with("timestamp: "), "{report}");
    assert!(report[0]["findings"].to_string().contains("ahead of this machine's clock"), "{report}");
    let o = cvm(data.path(), &["check", "--max-clock-skew", "off", future.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "no limit: {}", text(&o));
    // A file dated before an earlier one: committed timestamps never go back.
    let o = cvm(
        data.path(),
        &["--json", "check", "--max-clock-skew", "off", future.to_str().unwrap(), spend.to_str().unwrap()],
    );
    let report = json_of(&o);
    assert!(
        report[1]["findings"][0]
            .as_str()
            .unwrap()
            .contains("future.json's (4000000000): committed timestamps never go back"),
        "{report}"
    );

    // Run for real, the store then answers what the files did.
    let o = cvm(data.path(), &["run", "--no-prove", &path(&create), &path(&spend)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (code, report) = check(&[&again]);
    assert_eq!(code, Some(1), "{report}");
    assert!(report[0]["findings"].to_string().contains("was consumed in batch 2"), "{report}");
}

/// Readers run beside a writer and beside each other; a second writer is
/// told who holds the store. (The writer is held open at its first
/// `--step` prompt.)
#[test]
fn readers_run_beside_a_writer_and_a_second_writer_is_named_the_holder() {
    let data = tempfile::tempdir().unwrap();
    let first = examples().join("create.json");
    assert_eq!(cvm(data.path(), &["run", "--no-prove", first.to_str().unwrap()]).status.code(), Some(0));
    let second_file = examples().join("read.json");
    let mut writer =
        cvm_command(data.path(), &["run", "--no-prove", "--mode", "debug", "--step", second_file.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    // Wait until it prompts: it holds the store then.
    let mut stdout = writer.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("Enter: next") {
        assert_eq!(std::io::Read::read(&mut stdout, &mut byte).unwrap(), 1, "the writer ended early");
        seen.push(byte[0]);
    }
    let readers: Vec<_> = (0..4)
        .map(|_| {
            cvm_command(data.path(), &["--json", "state"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for reader in readers {
        let o = reader.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert_eq!(json_of(&o)["head"], 1);
    }
    let second = cvm(data.path(), &["run", "--no-prove", first.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    assert!(text(&second).contains("open for writing by pid"), "{}", text(&second));
    writer.stdin.take().unwrap().write_all(b"c\n").unwrap();
    std::io::Read::read_to_end(&mut stdout, &mut seen).unwrap();
    assert!(writer.wait().unwrap().success());
    assert_eq!(json_of(&cvm(data.path(), &["--json", "state"]))["head"], 2);
}

#[test]
fn output_is_honest_json_errors_quiet_summaries_backends_and_real_timings() {
    let data = tempfile::tempdir().unwrap();
    let missing = data.path().join("nothing-here");
    let o = cvm(&missing, &["--json", "state"]);
    assert_eq!(o.status.code(), Some(2));
    let error = json_of(&o);
    assert_eq!(error["kind"], "store", "{error}");
    assert!(error["error"].as_str().unwrap().contains("does not exist"), "{error}");
    assert!(!missing.exists());

    let file = examples().join("transfers.json");
    let o = cvm(data.path(), &["-q", "run", "--no-prove", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lines: Vec<&str> = std::str::from_utf8(&o.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 1, "-q prints the summary only: {lines:?}");
    assert!(lines[0].contains("8/8 operations succeeded; committed as batch 1"), "{lines:?}");

    let o = cvm(data.path(), &["--json", "run", "--no-prove", examples().join("read.json").to_str().unwrap()]);
    let result = json_of(&o);
    assert_eq!(result["metadata"]["backends"]["execute"], "cpu");
    assert_eq!(result["metadata"]["backends"]["hash"], "cpu");
    // The rayon pool's size is the execution's; with one thread nothing runs
    // ahead, with two the example's four creations do (its transfers spend
    // what the batch creates, so they run in order), and the batch ends the same.
    let mut roots = Vec::new();
    for threads in [1, 2] {
        let fresh = tempfile::tempdir().unwrap();
        let o = cvm_command(fresh.path(), &["--json", "run", "--no-prove", file.to_str().unwrap()])
            .env("RAYON_NUM_THREADS", threads.to_string())
            .output()
            .unwrap();
        let result = json_of(&o);
        let backends = &result["metadata"]["backends"];
        assert_eq!(backends["execute_threads"], threads, "{backends}");
        assert_eq!(backends["ran_ahead"], if threads == 1 { 0 } else { 4 }, "{backends}");
        assert_eq!(result["success_count"], 8);
        roots.push(result["metadata"]["state_root_after"].clone());
    }
    assert_eq!(roots[0], roots[1]);
    let history = json_of(&cvm(data.path(), &["--json", "state", "history"]));
    for record in history.as_array().unwrap() {
        assert!(
            record["timings"]["commit_us"].as_u64().unwrap() > 0,
            "stored commit times are the real ones: {record}"
        );
    }
    let o = cvm(data.path(), &["state", "history", "--limit", "0"]);
    assert!(text(&o).contains("2 batches committed"), "{}", text(&o));
    let o = cvm(data.path(), &["export", "--batch", "0", "--out", data.path().join("x").to_str().unwrap()]);
    assert!(text(&o).contains("batch 0 is not in the store"), "{}", text(&o));
    let o = cvm(data.path(), &["token", "inspect", "cvmcap1.zzzz"]);
    assert!(text(&o).contains("is the text complete"), "{}", text(&o));
}

#[test]
fn stepping_comes_before_the_commit_and_q_leaves_nothing_committed() {
    let data = tempfile::tempdir().unwrap();
    let file = examples().join("create.json");
    let o =
        cvm_input(data.path(), &["run", "--no-prove", "--mode", "debug", "--step", file.to_str().unwrap()], "\n\nq\n");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not committed"), "{}", text(&o));
    assert!(!text(&o).contains("committed as batch"), "{}", text(&o));
    let o =
        cvm_input(data.path(), &["run", "--no-prove", "--mode", "debug", "--step", file.to_str().unwrap()], "\nc\n");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("committed as batch 1"), "{}", text(&o));
}

/// `RUST_LOG=debug` finishes a proven run (arkworks' constraint-system spans
/// stay quiet), and logs written to a file carry no colour codes.
#[test]
fn debug_logs_finish_and_carry_no_colour_into_files() {
    let data = tempfile::tempdir().unwrap();
    let file = examples().join("create.json");
    let started = std::time::Instant::now();
    let o = cvm_command(data.path(), &["run", "--ops-per-proof", "1", file.to_str().unwrap()])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(started.elapsed() < std::time::Duration::from_secs(300));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("DEBUG"), "debug logs are on");
    assert!(!stderr.contains('\u{1b}'), "no colour codes in a file");
}

/// `--backend gpu` reaches a batch's hashing: the result says the GPU ran
/// the hash stage and how much it hashed, and the state root is the CPU's.
#[test]
fn run_with_the_gpu_backend_hashes_the_batch_on_the_gpu() {
    if causality_vm::gpu::test_context().is_none() {
        return;
    }
    let file = examples().join("transfers.json");
    let mut roots = Vec::new();
    for backend in ["cpu", "gpu"] {
        let data = tempfile::tempdir().unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_cvm"))
            .arg("--data-dir")
            .arg(data.path())
            .args(["--json", "--backend", backend, "run", "--no-prove", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let result = json_of(&o);
        let backends = &result["metadata"]["backends"];
        assert_eq!(backends["hash"], backend, "{backends}");
        assert_eq!(backends["hash_fallbacks"], 0, "{backends}");
        assert_eq!(backends["hashed_on_gpu"].as_u64().unwrap() > 0, backend == "gpu", "{backends}");
        roots.push(result["metadata"]["state_root_after"].clone());
    }
    assert_eq!(roots[0], roots[1]);
}

/// Without `--data-dir` or `CVM_DATA_DIR`, the data dir is
/// `$XDG_DATA_HOME/causality-vm`, else `~/.local/share/causality-vm`.
#[test]
fn the_default_data_dir_follows_xdg_data_home_then_home() {
    let xdg = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let run = |xdg_data_home: Option<&Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cvm"));
        command
            .args(["--backend", "cpu", "run", "--no-prove"])
            .arg(examples().join("create.json"))
            .env_remove("CVM_DATA_DIR")
            .env("HOME", home.path());
        match xdg_data_home {
            Some(dir) => command.env("XDG_DATA_HOME", dir),
            None => command.env_remove("XDG_DATA_HOME"),
        };
        let o = command.output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    };
    run(Some(xdg.path()));
    assert!(xdg.path().join("causality-vm/store.redb").is_file(), "the store is under XDG_DATA_HOME");
    assert!(!home.path().join(".local").exists());
    run(None);
    assert!(home.path().join(".local/share/causality-vm/store.redb").is_file(), "then under HOME");
}
