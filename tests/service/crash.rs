//! The crash test: a load of jobs of every kind submitted to `cvm serve`,
//! the server crashed at a chosen point (during accept, during proving, as
//! a batch job starts, between a batch's commit and its job's end, after
//! job ends are durable), then restarted: every accepted job finishes, no
//! batch commits twice, and the store's root equals a reference run of the
//! same batches.
//!
//! The crash points are `causality_vm::service::crash` (debug builds only:
//! the test binary's `cvm` is one).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ark_ec::{AffineRepr, CurveGroup};
use ark_serialize::CanonicalSerialize;
use causality_vm::content_id::hex_encode as hex;
use serde_json::{json, Value};

use crate::batches::create_batches;
use crate::cli::{cvm, run, serve, stop};
use crate::prove_ops::document;
use crate::prove_support::{create, transfer};

/// One job file of each compute kind beside the batches, and what each must return.
fn compute_jobs(dir: &Path) -> Vec<(PathBuf, String)> {
    let g = ark_bn254::G1Affine::generator();
    let mut point = Vec::new();
    g.serialize_compressed(&mut point).unwrap();
    let mut twice = Vec::new();
    (g + g).into_affine().serialize_compressed(&mut twice).unwrap();
    let mut two = [0u8; 32];
    two[0] = 2;
    let leaves = [[1u8; 32], [2u8; 32]];
    let root = causality_vm::HashPool::new().merkle_root(&leaves).unwrap();
    let jobs = [
        ("hash.json", json!({"hash": {"messages": [{"text": "crash"}]}}), blake3::hash(b"crash").to_hex().to_string()),
        ("merkle.json", json!({"merkle_root": {"leaves": [hex(&leaves[0]), hex(&leaves[1])]}}), hex(&root)),
        ("msm.json", json!({"msm": {"group": "g1", "bases": [hex(&point)], "scalars": [hex(&two)]}}), hex(&twice)),
        ("ops.json", document(&[create(1), transfer(2)]), String::new()),
    ];
    jobs.into_iter()
        .map(|(name, job, expected)| {
            let path = dir.join(name);
            std::fs::write(&path, job.to_string()).unwrap();
            (path, expected)
        })
        .collect()
}

/// Start `cvm serve` set to crash at `point`, submit everything, and wait
/// for the crash (SIGABRT, the point reached).
fn crash_at(dir: &Path, point: &str, files: &[PathBuf]) {
    let mut server = cvm(dir)
        .args(["serve", "--runners", "1"])
        .env(causality_vm::service::crash::VARIABLE, point)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::os::unix::net::UnixStream::connect(dir.join("cvm.sock")).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Refused or cut short once the server is gone: that is the point.
    let _ = cvm(dir)
        .args(["submit", "--no-prove", "--ops-per-proof", "2"])
        .args(files)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            server.kill().unwrap();
            panic!("the server never reached the crash point {point}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{point}: {status:?}");
}

#[test]
fn every_accepted_job_finishes_once_after_crashes_at_each_point() {
    let files = tempfile::tempdir().unwrap();
    let batches = create_batches(files.path(), 3);
    let compute = compute_jobs(files.path());
    let reference = tempfile::tempdir().unwrap();
    let (code, _, err) = run(cvm(reference.path()).args(["run", "--no-prove"]).args(&batches));
    assert_eq!(code, 0, "{err}");
    let (_, reference_state, _) = run(cvm(reference.path()).args(["--json", "state"]));
    let reference_state: Value = serde_json::from_str(&reference_state).unwrap();

    let mut all: Vec<PathBuf> = batches.clone();
    all.extend(compute.iter().map(|(path, _)| path.clone()));
    for point in ["accepted", "stage:prove", "batch-started:2", "batch-committed", "ended:2"] {
        let dir = tempfile::tempdir().unwrap();
        crash_at(dir.path(), point, &all);

        let server = serve(dir.path());
        let (code, out, err) =
            run(cvm(dir.path()).args(["--json", "submit", "--wait", "--no-prove", "--ops-per-proof", "2"]).args(&all));
        assert_eq!(code, 0, "{point}: {err}\n{out}");
        let reports: Value = serde_json::from_str(&out).unwrap();
        for (report, (_, expected)) in reports.as_array().unwrap()[batches.len()..].iter().zip(&compute) {
            let value = &report["job"]["result"]["value"];
            match value.get("proofs") {
                Some(proofs) => assert_eq!(proofs["proofs"].as_array().unwrap().len(), 1, "{point}: {report}"),
                None => assert!(value.to_string().contains(expected.as_str()), "{point}: {report}"),
            }
        }
        for report in reports.as_array().unwrap() {
            assert_eq!(report["job"]["state"], "succeeded", "{point}: {report}");
        }
        // Each batch job ran its batch (both creates succeeded) or found it
        // committed before the crash; a batch run twice would show its
        // creates refused the second time.
        for report in &reports.as_array().unwrap()[..batches.len()] {
            let batch = &report["job"]["result"]["value"]["batch"];
            let recovered = batch["recovered_from_batch_record"] == true;
            assert!(recovered || batch["success_count"] == 2, "{point}: {report}");
        }
        stop(server);
        let (_, state, _) = run(cvm(dir.path()).args(["--json", "state"]));
        let state: Value = serde_json::from_str(&state).unwrap();
        assert_eq!(state["state_root"], reference_state["state_root"], "{point}: the same registers, each batch once");
        assert_eq!(state["head"], 3, "{point}: 3 batches committed, none twice: {state}");
    }
}
