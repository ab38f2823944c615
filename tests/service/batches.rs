//! ExecuteBatch jobs: the same results as `cvm run`, submission order, and
//! exactly once across a SIGKILL.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::cli::{cvm, run, serve, stop};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// `n` batch files in `dir`, each creating two fresh resources (the
/// example's, with new nonces), bringing the example's TEL program by path.
fn create_batches(dir: &Path, n: usize) -> Vec<PathBuf> {
    std::fs::copy(examples().join("fungible_token.tel"), dir.join("fungible_token.tel")).unwrap();
    let template: Value =
        serde_json::from_str(&std::fs::read_to_string(examples().join("create.json")).unwrap()).unwrap();
    (0..n)
        .map(|i| {
            let mut batch = template.clone();
            for (j, op) in batch["ops"].as_array_mut().unwrap().iter_mut().enumerate() {
                op["resource"]["nonce"] =
                    Value::String(blake3::hash(format!("{i}/{j}").as_bytes()).to_hex().to_string());
            }
            batch["trace_id"] = Value::String(format!("batch-{i}"));
            let path = dir.join(format!("batch{i}.json"));
            std::fs::write(&path, serde_json::to_vec_pretty(&batch).unwrap()).unwrap();
            path
        })
        .collect()
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn a_batch_job_gives_what_cvm_run_gives() {
    let files = tempfile::tempdir().unwrap();
    let batch = create_batches(files.path(), 1).pop().unwrap();
    let local = tempfile::tempdir().unwrap();
    let (code, out, err) = run(cvm(local.path()).args(["--json", "run", "--no-prove"]).arg(&batch));
    assert_eq!(code, 0, "{err}");
    let expected = json(&out);

    let served = tempfile::tempdir().unwrap();
    let server = serve(served.path());
    let (code, out, err) = run(cvm(served.path()).args(["--json", "submit", "--wait", "--no-prove"]).arg(&batch));
    assert_eq!(code, 0, "{err}");
    let got = json(&out)["job"]["result"]["value"]["batch"].clone();
    assert_eq!(got["results"], expected["results"]);
    assert_eq!(got["success_count"], expected["success_count"]);
    for field in ["committed", "batch_number", "state_root_before", "state_root_after", "trace_id", "ops_count"] {
        assert_eq!(got["metadata"][field], expected["metadata"][field], "metadata.{field}");
    }
    // Readers work while the server holds the store.
    let (code, out, err) = run(cvm(served.path()).args(["state"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(expected["metadata"]["state_root_after"].as_str().unwrap()), "{out}");

    // A path program outside what was inlined is refused precisely, and nothing is queued.
    let raw = std::fs::read_to_string(&batch).unwrap();
    let mut client_side = json(&raw);
    client_side["programs"] = serde_json::json!(["../../etc/passwd"]);
    std::fs::write(files.path().join("escape.json"), client_side.to_string()).unwrap();
    let (code, _, err) = run(cvm(served.path()).args(["submit"]).arg(files.path().join("escape.json")));
    assert_eq!(code, 2);
    assert!(err.contains("program ../../etc/passwd"), "{err}");
    stop(server);
}

#[test]
fn batch_jobs_commit_once_each_across_a_sigkill() {
    let files = tempfile::tempdir().unwrap();
    // Proven batches take long enough (the key setup, then a proof each) for
    // the kills to land while batches execute, prove and commit.
    let batches = create_batches(files.path(), 6);
    // The reference: the same batches run in order by `cvm run`.
    let reference = tempfile::tempdir().unwrap();
    let (code, _, err) = run(cvm(reference.path()).args(["run", "--no-prove"]).args(&batches));
    assert_eq!(code, 0, "{err}");
    let (_, reference_state, _) = run(cvm(reference.path()).args(["--json", "state"]));

    let dir = tempfile::tempdir().unwrap();
    for kill_after_ms in [1500u64, 3000] {
        let mut server = serve(dir.path());
        let submitter = cvm(dir.path())
            .args(["submit"])
            .args(&batches)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        server.kill().unwrap();
        server.wait().unwrap();
        let _ = submitter.wait_with_output();
    }
    let server = serve(dir.path());
    let (code, out, err) = run(cvm(dir.path()).args(["--json", "submit", "--wait"]).args(&batches));
    assert_eq!(code, 0, "{err}\n{out}");
    for report in json(&out).as_array().unwrap() {
        assert_eq!(report["job"]["state"], "succeeded", "{report}");
    }
    stop(server);
    let (_, state, _) = run(cvm(dir.path()).args(["--json", "state"]));
    let (state, reference_state) = (json(&state), json(&reference_state));
    assert_eq!(state["state_root"], reference_state["state_root"], "the same registers, each batch once");
    assert_eq!(state["head"], 6, "6 batches committed, none twice: {state}");
}
