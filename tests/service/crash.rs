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

/// Three batch files and one job of each compute kind, with the state a
/// reference `cvm run` of the batches leaves.
struct Load {
    _files: tempfile::TempDir,
    batches: Vec<PathBuf>,
    compute: Vec<(PathBuf, String)>,
    reference: Value,
}

impl Load {
    fn new() -> Load {
        let files = tempfile::tempdir().unwrap();
        let batches = create_batches(files.path(), 3);
        let compute = compute_jobs(files.path());
        let reference = tempfile::tempdir().unwrap();
        let (code, _, err) = run(cvm(reference.path()).args(["run", "--no-prove"]).args(&batches));
        assert_eq!(code, 0, "{err}");
        let (_, state, _) = run(cvm(reference.path()).args(["--json", "state"]));
        Load { _files: files, batches, compute, reference: serde_json::from_str(&state).unwrap() }
    }

    fn all(&self) -> Vec<PathBuf> {
        let mut all = self.batches.clone();
        all.extend(self.compute.iter().map(|(path, _)| path.clone()));
        all
    }

    /// Submit everything to the server on `dir` and wait: every job
    /// succeeds with its result, each batch ran once or was found committed.
    /// Submit the load and wait for it, checking every result; returns the reports.
    fn submit_and_check(&self, dir: &Path, case: &str) -> Vec<Value> {
        let (code, out, err) =
            run(cvm(dir).args(["--json", "submit", "--wait", "--no-prove", "--ops-per-proof", "2"]).args(self.all()));
        assert_eq!(code, 0, "{case}: {err}\n{out}");
        let reports: Value = serde_json::from_str(&out).unwrap();
        let reports = reports.as_array().unwrap();
        for (report, (_, expected)) in reports[self.batches.len()..].iter().zip(&self.compute) {
            let value = &report["job"]["result"]["value"];
            match value.get("proofs") {
                Some(proofs) => assert_eq!(proofs["proofs"].as_array().unwrap().len(), 1, "{case}: {report}"),
                None => assert!(value.to_string().contains(expected.as_str()), "{case}: {report}"),
            }
        }
        for report in reports {
            assert_eq!(report["job"]["state"], "succeeded", "{case}: {report}");
        }
        // Each batch job ran its batch (both creates succeeded) or found it
        // committed before; a batch run twice would show its creates
        // refused the second time.
        for report in &reports[..self.batches.len()] {
            let batch = &report["job"]["result"]["value"]["batch"];
            let recovered = batch["recovered_from_batch_record"] == true;
            assert!(recovered || batch["success_count"] == 2, "{case}: {report}");
        }
        reports.clone()
    }

    /// The stopped server's store holds each batch once.
    fn check_store(&self, dir: &Path, case: &str) {
        let (_, state, _) = run(cvm(dir).args(["--json", "state"]));
        let state: Value = serde_json::from_str(&state).unwrap();
        assert_eq!(state["state_root"], self.reference["state_root"], "{case}: the same registers, each batch once");
        assert_eq!(state["head"], 3, "{case}: 3 batches committed, none twice: {state}");
    }
}

#[test]
fn every_accepted_job_finishes_once_after_crashes_at_each_point() {
    let load = Load::new();
    for point in ["accepted", "stage:prove", "batch-started:2", "batch-committed", "ended:2"] {
        let dir = tempfile::tempdir().unwrap();
        crash_at(dir.path(), point, &load.all());
        let server = serve(dir.path());
        let _ = load.submit_and_check(dir.path(), point);
        stop(server);
        load.check_store(dir.path(), point);
    }
}

/// A job whose end cannot be written (here each job's first two tries
/// fail, as a full disk fails a result's file) has not ended: it runs
/// again in the running server, and a batch job's rerun finds its batch
/// committed instead of committing it twice.
#[test]
fn a_job_whose_end_cannot_be_written_runs_again_and_finishes_once() {
    let load = Load::new();
    let dir = tempfile::tempdir().unwrap();
    let server = cvm(dir.path())
        .args(["serve", "--runners", "1"])
        .env(causality_vm::service::crash::FAULT_VARIABLE, "end-write:2")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::os::unix::net::UnixStream::connect(dir.path().join("cvm.sock")).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let reports = load.submit_and_check(dir.path(), "end-write:2");
    // Each compute job started three times in this run of the server: twice its
    // end failed. (A batch job's reruns find its batch committed: no start.)
    for report in &reports[load.batches.len()..] {
        assert_eq!(report["job"]["attempts"], 3, "{report}");
    }
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let out = server.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    let second_failures = log.matches("recording the job's end (failure 2)").count();
    assert_eq!(second_failures, load.all().len(), "each job's end failed twice: {log}");
    load.check_store(dir.path(), "end-write:2");
}

/// A job whose work panics (as a bug in a kernel would) fails alone, with
/// INTERNAL and the panic's message, and the runner goes on to the next
/// job. A batch job that panics stops the server (exit 70: its store's
/// state in memory is not to be trusted) instead of leaving batch jobs
/// queued behind a dead runner; a restart runs it to completion, once.
#[test]
fn a_panicking_job_fails_alone_and_a_panicking_batch_restarts_the_server() {
    let load = Load::new();
    let dir = tempfile::tempdir().unwrap();
    // A server whose first stage panics.
    let panicking_serve = || {
        let mut serve = cvm(dir.path());
        serve
            .args(["serve", "--runners", "1"])
            .env(causality_vm::service::crash::FAULT_VARIABLE, "panic:1")
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::null());
        serve
    };
    let panicking = || serve_with(dir.path(), causality_vm::service::crash::FAULT_VARIABLE, "panic:1", Stdio::piped());
    let server = panicking();
    let (hash, expected) = &load.compute[0];
    let (code, out, _) = run(cvm(dir.path()).args(["--json", "submit", "--wait"]).arg(hash));
    assert_eq!(code, 1, "the job failed: {out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["job"]["error"]["code"], "INTERNAL", "{report}");
    assert!(
        report["job"]["error"]["message"].as_str().unwrap().contains("panicked (injected at stage hash"),
        "{report}"
    );
    let (code, out, err) = run(cvm(dir.path()).args(["--json", "submit", "--wait", "--request-id", "again"]).arg(hash));
    assert_eq!(code, 0, "the runner goes on: {err}\n{out}");
    assert!(out.contains(expected.as_str()), "{out}");
    stop(server);

    let mut server = panicking();
    let submit_batch = |n: usize| {
        let mut submit = cvm(dir.path());
        submit.args(["--json", "submit", "--no-prove", "--request-id", &format!("batch-{n}")]).arg(&load.batches[n]);
        submit
    };
    // The runner may panic and exit the server before the reply reaches
    // the client; the job was recorded before the reply, so the same
    // request id sent to the next server names it.
    let job_id = |out: &str| serde_json::from_str::<Value>(out).unwrap()["job_id"].as_u64().unwrap();
    let (code, out, _) = run(&mut submit_batch(0));
    let accepted = (code == 0).then(|| job_id(&out));
    let status = server.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(server.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert_eq!(status.code(), Some(70), "{log}");
    assert!(log.contains("a batch job panicked"), "{log}");
    let _ = std::fs::remove_file(dir.path().join("cvm.sock"));

    let server = serve(dir.path());
    let (code, out, err) = run(&mut submit_batch(0));
    assert_eq!(code, 0, "the same request names the recorded job: {err}");
    let id = job_id(&out);
    assert!(accepted.is_none_or(|first| first == id), "{accepted:?} then {id}");
    let (code, job) = awaited(dir.path(), id);
    assert_eq!((code, &job["state"]), (0, &json!("succeeded")), "{job}");
    assert_eq!(job["result"]["value"]["batch"]["success_count"], 2, "{job}");
    stop(server);

    // A batch that panics every time it starts is failed after its third
    // start, instead of exiting every server that takes it up.
    let mut server = panicking();
    let (code, out, _) = run(&mut submit_batch(1));
    let accepted = (code == 0).then(|| job_id(&out));
    assert_eq!(server.wait().unwrap().code(), Some(70), "start 1");
    let _ = std::fs::remove_file(dir.path().join("cvm.sock"));
    for start in 2..=causality_vm::service::core::MAX_BATCH_STARTS {
        // The queued batch panics as the server starts it (maybe before the socket is up).
        let status = panicking_serve().stderr(Stdio::null()).status().unwrap();
        assert_eq!(status.code(), Some(70), "start {start}");
        let _ = std::fs::remove_file(dir.path().join("cvm.sock"));
    }
    let server = serve(dir.path());
    let (code, out, err) = run(&mut submit_batch(1));
    assert_eq!(code, 0, "the same request names the recorded job: {err}");
    let id = job_id(&out);
    assert!(accepted.is_none_or(|first| first == id), "{accepted:?} then {id}");
    let (code, job) = awaited(dir.path(), id);
    assert_eq!((code, &job["state"]), (1, &json!("failed")), "{job}");
    assert!(job["error"]["message"].as_str().unwrap().contains("started 3 times"), "{job}");
    // The server goes on: the store holds the first batch alone.
    let (_, state, _) = run(cvm(dir.path()).args(["--json", "state"]));
    assert_eq!(serde_json::from_str::<Value>(&state).unwrap()["head"], 1, "{state}");
    stop(server);
}

/// A start that is refused (here TLS files that are not PEM) refuses
/// before its runners start: it neither runs nor counts a start of a queued
/// batch, so failed starts cannot use up the batch's starts, and it says
/// which files it could not use.
#[test]
fn a_refused_start_starts_no_queued_job() {
    let load = Load::new();
    let dir = tempfile::tempdir().unwrap();
    // A batch queued, started once (its server panicked on it).
    let mut server = serve_with(dir.path(), causality_vm::service::crash::FAULT_VARIABLE, "panic:1", Stdio::null());
    let submit = || {
        let mut submit = cvm(dir.path());
        submit.args(["--json", "submit", "--no-prove", "--request-id", "queued"]).arg(&load.batches[0]);
        submit
    };
    let _ = run(&mut submit());
    assert_eq!(server.wait().unwrap().code(), Some(70));
    std::fs::remove_file(dir.path().join("cvm.sock")).unwrap();

    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    for _ in 0..causality_vm::service::core::MAX_BATCH_STARTS {
        let (code, _, err) = run(cvm(dir.path())
            .args(["serve", "--runners", "1", "--listen", "tcp://127.0.0.1:0", "--tls-cert"])
            .arg(&bad)
            .arg("--tls-key")
            .arg(&bad)
            .env(causality_vm::service::crash::FAULT_VARIABLE, "panic:1"));
        assert_eq!(code, 2, "refused, not panicked on the batch: {err}");
        assert!(err.contains("bad.pem"), "names the file: {err}");
        assert!(!dir.path().join("cvm.sock").exists(), "no socket left behind");
    }
    let server = serve(dir.path());
    let (code, job) = resubmitted(dir.path(), &mut submit());
    assert_eq!((code, &job["state"]), (0, &json!("succeeded")), "{job}");
    assert_eq!(job["attempts"], 2, "the panicking start and this one: {job}");
    stop(server);
}

/// A compute job with a deadline that a crash interrupts after it started
/// in time runs again after a restart past its deadline (its start was
/// written), rather than failing as if it had never started.
#[test]
fn a_deadline_job_interrupted_after_it_started_runs_again_past_its_deadline() {
    let load = Load::new();
    let dir = tempfile::tempdir().unwrap();
    let (msm, expected) = load.compute.iter().find(|(p, _)| p.ends_with("msm.json")).unwrap();
    let mut server = serve_with(dir.path(), causality_vm::service::crash::VARIABLE, "stage:msm", Stdio::null());
    let submitted = Instant::now();
    let submit = || {
        let mut submit = cvm(dir.path());
        submit.args(["--json", "submit", "--deadline", "2", "--request-id", "in-time"]).arg(msm);
        submit
    };
    let _ = run(&mut submit());
    assert_eq!(server.wait().unwrap().signal(), Some(libc::SIGABRT), "crashed as the job's msm began");
    std::thread::sleep(Duration::from_secs(3).saturating_sub(submitted.elapsed()));

    let server = serve(dir.path());
    let (code, job) = resubmitted(dir.path(), &mut submit());
    assert_eq!((code, &job["state"]), (0, &json!("succeeded")), "{job}");
    assert!(job.to_string().contains(expected.as_str()), "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    stop(server);
}

/// A batch commit whose outcome the store cannot tell (an append that failed
/// and could not be cut back) stops the server (exit 70) with no job end
/// written; the restart reopens the store, finds the batch committed by its
/// request id, and ends the job from its record: committed once.
#[test]
fn an_uncertain_commit_stops_the_server_and_the_restart_finds_the_batch() {
    let load = Load::new();
    let dir = tempfile::tempdir().unwrap();
    let fault = causality_vm::service::crash::FAULT_VARIABLE;
    let mut server = serve_with(dir.path(), fault, "uncertain-commit:1", Stdio::piped());
    let submit = || {
        let mut submit = cvm(dir.path());
        submit.args(["--json", "submit", "--no-prove", "--request-id", "uncertain"]).arg(&load.batches[0]);
        submit
    };
    let _ = run(&mut submit());
    let status = server.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(server.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert_eq!(status.code(), Some(70), "{log}");
    assert!(log.contains("could not be undone on disk"), "{log}");
    let _ = std::fs::remove_file(dir.path().join("cvm.sock"));

    let server = serve(dir.path());
    let (code, job) = resubmitted(dir.path(), &mut submit());
    assert_eq!((code, &job["state"]), (0, &json!("succeeded")), "{job}");
    assert_eq!(job["result"]["value"]["batch"]["recovered_from_batch_record"], true, "{job}");
    let (_, state, _) = run(cvm(dir.path()).args(["--json", "state"]));
    assert_eq!(serde_json::from_str::<Value>(&state).unwrap()["head"], 1, "committed once: {state}");
    stop(server);
}

/// `cvm serve --runners 1` on `dir` with the tests' `variable` set to
/// `value` (a crash point or a fault), its socket up.
fn serve_with(dir: &Path, variable: &str, value: &str, stderr: Stdio) -> std::process::Child {
    let server = cvm(dir)
        .args(["serve", "--runners", "1"])
        .env(variable, value)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    crate::cli::wait_for_socket(dir);
    server
}

/// Submit again (the same request id names the job recorded before), then
/// `cvm jobs await` it: its exit code and the job.
fn resubmitted(dir: &Path, submit: &mut std::process::Command) -> (i32, Value) {
    let (code, out, err) = run(submit);
    assert_eq!(code, 0, "the same request names the recorded job: {err}");
    awaited(dir, serde_json::from_str::<Value>(&out).unwrap()["job_id"].as_u64().unwrap())
}

/// `cvm jobs await ID` against the server on `dir`: its exit code and the job.
fn awaited(dir: &Path, id: u64) -> (i32, Value) {
    let (code, out, err) = run(cvm(dir).args(["--json", "jobs", "await", &id.to_string()]));
    (code, serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {err}\n{out}")))
}
