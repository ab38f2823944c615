//! `cvm run` and `cvm state` end to end, and malformed batch files: each
//! gives a precise error and changes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn cvm(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cvm"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CVM_DATA_DIR")
        .output()
        .expect("run cvm")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn root(data: &Path) -> Value {
    let o = cvm(data, &["--json", "state", "root"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

#[test]
fn run_the_main_example_then_inspect_state() {
    let data = tempfile::tempdir().unwrap();
    let file = examples().join("transfers.json");
    let o = cvm(data.path(), &["run", file.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let result: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(result["success_count"], 8);
    assert_eq!(result["metadata"]["committed"], true);
    assert!(data.path().join("keys.json").exists(), "mint created the domain's root key");

    let state = root(data.path());
    assert_eq!(state["head"], 1);
    assert_eq!(state["state_root"], result["metadata"]["state_root_after"]);

    let carol = result["results"][7]["outcome"]["read"]["id"].as_str().unwrap().to_string();
    let o = cvm(data.path(), &["state", "register", &carol]);
    assert!(stdout(&o).contains("controller   carol"), "{}", stdout(&o));
    let o = cvm(data.path(), &["--json", "state", "register", &carol]);
    let register: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(register["register"]["controller"], "carol");
    assert_eq!(
        register["register"]["nullifier_key_commitment"].as_str().map(str::len),
        Some(64),
        "hex, as in batch files"
    );
    let o = cvm(data.path(), &["state", "history", "--limit", "5"]);
    assert!(stdout(&o).contains("batch     1"), "{}", stdout(&o));

    // Running it again: every create collides with an existing id.
    let o = cvm(data.path(), &["run", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("already exists"), "{}", stdout(&o));
}

#[test]
fn simulation_and_debug_modes() {
    let data = tempfile::tempdir().unwrap();
    let file = examples().join("transfer.json");
    let o = cvm(data.path(), &["run", "--mode", "simulation", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("state root would be"), "{}", stdout(&o));
    let written: Vec<_> = std::fs::read_dir(data.path()).unwrap().collect();
    assert!(written.is_empty(), "simulation wrote nothing: {written:?}");
    let o = cvm(data.path(), &["run", "--mode", "debug", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("logic cid:blake3:"), "{}", stdout(&o));
    assert_eq!(root(data.path())["head"], 1);
}

/// Each malformed file fails with a precise message and leaves a fresh data
/// dir empty (no key created, no batch committed).
#[test]
fn malformed_batch_files_change_nothing() {
    let good = std::fs::read_to_string(examples().join("create.json")).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("syntax", good.replacen("\"ops\":", "\"ops\" ", 1), ":"),
        ("unknown field", good.replacen("\"timestamp\"", "\"colour\": 1, \"timestamp\"", 1), "unknown field `colour`"),
        ("unknown op field", good.replacen("\"quantity\"", "\"qty\": 3, \"quantity\"", 1), "unknown field `qty`"),
        ("bad hex", good.replacen("\"nonce\": \"", "\"nonce\": \"zz", 1), "invalid hex character"),
        (
            "huge number",
            good.replacen("\"quantity\": 500", "\"quantity\": 123456789012345678901234567890", 1),
            "from 0 to 18446744073709551615",
        ),
        ("truncated token", good.replacen("\"mint\"", "\"cvt1AAAA\"", 1), "field `token`"),
        ("unknown op", good.replacen("\"op\": \"create\"", "\"op\": \"explode\"", 1), "unknown variant `explode`"),
    ];
    for (what, text, needle) in cases {
        assert_ne!(text, good, "{what}: the case did not change the file");
        let data = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.json");
        std::fs::write(&file, &text).unwrap();
        // The examples' programs are found next to the batch file.
        std::fs::copy(examples().join("fungible_token.tel"), dir.path().join("fungible_token.tel")).unwrap();
        let o = cvm(data.path(), &["run", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{what}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(err.contains(needle), "{what}: {err}");
        assert!(err.contains("bad.json"), "{what}: the error names the file: {err}");
        assert!(!data.path().join("keys.json").exists(), "{what}: a key was created");
        assert!(!data.path().join("store.redb").exists(), "{what}: a store was created");
    }
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.json");
    std::fs::write(&file, "{\n  \"domain\": \"d\",\n  \"token\": mint\n}\n").unwrap();
    let o = cvm(data.path(), &["run", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("broken.json:3:"), "{}", stderr(&o));
}

/// A bad value inside an operation is pointed at where it is written, with
/// its whole path, not at the end of the operation.
#[test]
fn a_bad_value_is_located_where_it_is_written() {
    use causality_vm::batch::file::{BatchFile, BatchFileError};
    let text = std::fs::read_to_string(examples().join("transfer.json")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let (at, line) = lines.iter().enumerate().filter(|(_, l)| l.contains("\"quantity\"")).nth(1).unwrap();
    let indent = &line[..line.find('"').unwrap()];
    let comma = if line.trim_end().ends_with(',') { "," } else { "" };
    let bad = format!("{indent}\"quantity\": -1{comma}");
    let expected_column = bad.find("-1").unwrap() + 1;
    lines[at] = bad;
    match BatchFile::parse(&lines.join("\n"), "t.json") {
        Err(BatchFileError::Syntax { line, column, message, .. }) => {
            assert_eq!((line, column), (at + 1, expected_column), "{message}");
            assert!(message.starts_with("ops[") && message.contains("].quantity: invalid value"), "{message}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    // A metadata key holding ": " is not taken for the end of a path.
    let text = text.replacen("\"metadata\": {}", "\"metadata\": {\"x: y\": 1}", 1);
    match BatchFile::parse(&text, "t.json") {
        Err(BatchFileError::Syntax { message, .. }) => {
            assert!(message.starts_with("ops[0]: ") && message.contains("metadata.x: y: invalid type"), "{message}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn several_files_run_in_order_as_one_batch_each() {
    let data = tempfile::tempdir().unwrap();
    let path = |name: &str| examples().join(name).to_str().unwrap().to_string();
    let files = [path("create.json"), path("transfer.json"), path("update.json"), path("delete.json")];
    // A malformed file anywhere in the list: nothing runs.
    let bad = data.path().join("bad.json");
    std::fs::write(&bad, "{ \"domain\": ").unwrap();
    let o = cvm(data.path(), &["run", "--no-prove", &files[0], bad.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("bad.json"), "{}", stderr(&o));
    assert!(!data.path().join("keys.json").exists(), "nothing was prepared");

    let mut args = vec!["--json", "run", "--no-prove"];
    args.extend(files.iter().map(String::as_str));
    let o = cvm(data.path(), &args);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let entries: Vec<Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let numbers: Vec<u64> = entries.iter().map(|e| e["result"]["metadata"]["batch_number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    assert!(entries[1]["file"].as_str().unwrap().ends_with("transfer.json"));
    let state = root(data.path());
    assert_eq!(state["head"], 4);
    assert_eq!(state["state_root"], entries[3]["result"]["metadata"]["state_root_after"]);
}
