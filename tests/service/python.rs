//! A client outside Rust: Python's grpcio, its stubs generated from the
//! repo's proto, drives the server over the Unix socket. `.ci/run` installs
//! grpcio and sets CVM_REQUIRE_PYTHON_GRPC=1, which turns a missing grpcio
//! into a failure instead of a skip.

use std::path::Path;
use std::process::Command;

use crate::batches::create_batches;
use crate::cli::{cvm, run, serve, stop};

fn python_grpc() -> bool {
    let found =
        Command::new("python3").args(["-c", "import grpc, grpc_tools"]).output().is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("CVM_REQUIRE_PYTHON_GRPC").is_some_and(|v| v == "1") {
        panic!("CVM_REQUIRE_PYTHON_GRPC=1 but python3 cannot import grpc and grpc_tools (pip install -r tests/service/python/requirements.txt)");
    }
    found
}

#[test]
fn a_python_client_submits_a_hash_job_a_batch_job_and_a_groth16_job() {
    if !python_grpc() {
        eprintln!("skipped: python3 with grpcio and grpcio-tools is not installed");
        return;
    }
    let files = tempfile::tempdir().unwrap();
    let batch = create_batches(files.path(), 1).pop().unwrap();
    // The batch as the server takes it: programs inline (what `cvm submit` does).
    let mut value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&batch).unwrap()).unwrap();
    let source = std::fs::read_to_string(files.path().join("fungible_token.tel")).unwrap();
    value.as_object_mut().unwrap().remove("programs");
    value["inline_programs"] = serde_json::json!([{"name": "fungible_token.tel", "tel": source}]);
    let inline = files.path().join("inline.json");
    std::fs::write(&inline, value.to_string()).unwrap();
    // The root the batch must give, from `cvm run` on another data dir.
    let reference = tempfile::tempdir().unwrap();
    let (code, out, err) = run(cvm(reference.path()).args(["--json", "run", "--no-prove"]).arg(&batch));
    assert_eq!(code, 0, "{err}");
    let expected: serde_json::Value = serde_json::from_str(&out).unwrap();
    let root = expected["metadata"]["state_root_after"].as_str().unwrap().to_string();
    let long: Vec<u8> = (0..10).flat_map(|_| 0..=255u8).collect();
    let digests: Vec<String> = [&b""[..], b"abc", &long].iter().map(|m| blake3::hash(m).to_hex().to_string()).collect();

    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/service/python/client.py");
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/circom");
    let out = Command::new("python3")
        .arg(script)
        .arg(dir.path().join("cvm.sock"))
        .arg(&inline)
        .arg(&root)
        .arg(digests.join(","))
        .args(["multiplier.zkey", "multiplier.wtns", "multiplier.public.json"].map(|f| vectors.join(f)))
        .output()
        .unwrap();
    stop(server);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: python client"));
}
