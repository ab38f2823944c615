//! Groth16 jobs: a snarkjs key uploaded once (or named by a path on the
//! socket), then witness jobs against it, the key resident between jobs;
//! proofs that verify with the key snarkjs exported, public signals byte
//! for byte snarkjs's; bad witnesses refused or failed with their reason.

use causality_vm::capability::{CapabilityToken, Caveat, JobKind as TokenJob};
use causality_vm::prove::snarkjs;
use causality_vm::service::auth::{service_key, SERVICE_DOMAIN};
use causality_vm::service::proto::{
    groth16_job, job_payload, job_result, EvictRequest, Groth16Job, Groth16Result, Job, JobPayload, JobState,
    PreloadRequest,
};
use causality_vm::DomainId;
use tonic::Code;

use crate::circom_support::{fixture, section_start};
use crate::support::*;

pub(crate) fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

pub(crate) fn payload(key: groth16_job::Key, witness: Vec<u8>) -> JobPayload {
    JobPayload { kind: Some(job_payload::Kind::Groth16(Groth16Job { key: Some(key), witness })) }
}

fn result(job: &Job) -> &Groth16Result {
    match job.result.as_ref().and_then(|r| r.kind.as_ref()) {
        Some(job_result::Kind::Groth16(result)) => result,
        other => panic!("no Groth16 result: {other:?} ({job:?})"),
    }
}

/// The proof verifies with snarkjs's exported key; public.json is snarkjs's.
pub(crate) fn check(result: &Groth16Result) {
    assert_eq!(result.public_json.as_bytes(), read("multiplier.public.json"));
    let vk = snarkjs::read_vk(&fixture("multiplier.vk.json")).unwrap();
    let proof = snarkjs::proof_from_json(&serde_json::from_str(&result.proof_json).unwrap()).unwrap();
    let public = snarkjs::public_from_json(&serde_json::from_str(&result.public_json).unwrap()).unwrap();
    causality_vm::prove::system::verify_groth16(&ark_groth16::prepare_verifying_key(&vk), &proof, &public).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_uploaded_once_proves_many_witnesses_over_both_transports() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 1).await;
    let mut client = unix_client(&server).await;
    // A submit naming a key by its path, refused for its deadline, keeps no key.
    let path = groth16_job::Key::ZkeyPath(fixture("multiplier.zkey").display().to_string());
    let late = client.submit("g-late", payload(path, read("multiplier.wtns")), 0, Some(1)).await;
    assert_eq!(late.unwrap_err().code(), Code::DeadlineExceeded);
    assert!(!dir.path().join("zkeys").exists(), "nothing kept");
    let uploaded = client.upload_zkey(read("multiplier.zkey"), read("multiplier.r1cs")).await.unwrap();
    assert_eq!(uploaded.zkey_id, format!("zkey:{}", blake3::hash(&read("multiplier.zkey")).to_hex()));
    assert!(uploaded.constraints_checked);
    assert_eq!((uploaded.signals, uploaded.public_signals, uploaded.domain_size), (7, 2, 8));
    let id = groth16_job::Key::ZkeyId(uploaded.zkey_id.clone());

    let job = client.run("g1", payload(id.clone(), read("multiplier.wtns")), 0, None).await.unwrap();
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    check(result(&job));
    let backends: Vec<(&str, &str)> =
        job.result.as_ref().unwrap().backends.iter().map(|b| (b.stage.as_str(), b.backend.as_str())).collect();
    assert_eq!(backends, [("quotient", "cpu"), ("msm_g1", "cpu"), ("msm_g2", "cpu")]);

    // The key is resident: Status lists it.
    let status = client.status().await.unwrap();
    assert!(status.key_sets.iter().any(|k| k.zkey_id == uploaded.zkey_id && k.resident), "{status:?}");

    // Over TCP with a token for Groth16 jobs only.
    let key = service_key(dir.path()).unwrap();
    let token = CapabilityToken::mint_random(&key, DomainId::new(SERVICE_DOMAIN))
        .attenuate(Caveat::Jobs(vec![TokenJob::Groth16]))
        .unwrap()
        .to_text();
    let mut tcp = tcp_client(&server, Some(token)).await;
    let job = tcp.run("g2", payload(id.clone(), read("multiplier.wtns")), 0, None).await.unwrap();
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    check(result(&job));
    // A path on the server's machine is for socket callers only.
    let path = groth16_job::Key::ZkeyPath(fixture("multiplier.zkey").display().to_string());
    let err = tcp.submit("g3", payload(path.clone(), read("multiplier.wtns")), 0, None).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("zkey_path"), "{}", err.message());

    // On the socket, a path is read at submit and the job recorded with the key's id.
    let job = client.run("g4", payload(path, read("multiplier.wtns")), 0, None).await.unwrap();
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    check(result(&job));

    // Evicted, then proven again: loaded back from the data dir.
    let evicted = client.evict(EvictRequest { ops_per_proof: 0, zkey_id: uploaded.zkey_id.clone() }).await.unwrap();
    assert!(!evicted.resident);
    let job = client.run("g5", payload(id.clone(), read("multiplier.wtns")), 0, None).await.unwrap();
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    let preloaded =
        client.preload(PreloadRequest { ops_per_proof: 0, zkey_id: uploaded.zkey_id.clone() }).await.unwrap();
    assert!(preloaded.resident);
    // A key this server does not have cannot be preloaded: NOT_FOUND, saying what to do.
    let unknown = format!("zkey:{}", "00".repeat(32));
    let err = client.preload(PreloadRequest { ops_per_proof: 0, zkey_id: unknown }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert!(err.message().contains("is not on this server; upload it"), "{}", err.message());
    assert!(!err.message().contains("os error"), "{}", err.message());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_and_witnesses_are_refused_or_fail_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 1).await;
    let mut client = unix_client(&server).await;

    // A truncated key: refused, naming the section and offset.
    let mut truncated = read("multiplier.zkey");
    truncated.truncate(truncated.len() - 100);
    let err = client.upload_zkey(truncated, Vec::new()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("section") && err.message().contains("truncated"), "{}", err.message());
    // Another circuit's R1CS with the key: refused.
    let mut other = read("multiplier.r1cs");
    let at = section_start(&other, 2) + 4;
    other[at] ^= 1; // The first term's wire: another signal.
    let err = client.upload_zkey(read("multiplier.zkey"), other.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // A key this server does not have: refused at submit.
    let unknown = groth16_job::Key::ZkeyId(format!("zkey:{}", "00".repeat(32)));
    let err = client.submit("u", payload(unknown, read("multiplier.wtns")), 0, None).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("is not on this server"), "{}", err.message());

    let uploaded = client.upload_zkey(read("multiplier.zkey"), read("multiplier.r1cs")).await.unwrap();
    let id = groth16_job::Key::ZkeyId(uploaded.zkey_id);
    // The resident key uploaded again with another circuit's R1CS, or with
    // bytes that are no R1CS at all: refused, not waved through.
    let err = client.upload_zkey(read("multiplier.zkey"), other.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = client.upload_zkey(read("multiplier.zkey"), b"not an r1cs".to_vec()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("r1cs"), "{}", err.message());
    // Its own R1CS again: the resident key, as before.
    let again = client.upload_zkey(read("multiplier.zkey"), read("multiplier.r1cs")).await.unwrap();
    assert!(again.constraints_checked);
    // A malformed witness: refused at submit, naming the file's section.
    let mut short = read("multiplier.wtns");
    short.truncate(short.len() - 5);
    let err = client.submit("w1", payload(id.clone(), short), 0, None).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("groth16.witness") && err.message().contains("truncated"), "{}", err.message());

    // A `zkey_path` that names no regular file (a device that never ends,
    // a FIFO that blocks its reader, a directory) or a file that is no key:
    // refused at once, naming the field, and nothing queued.
    let fifo = dir.path().join("pipe.zkey");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let junk = dir.path().join("junk.zkey");
    std::fs::write(&junk, b"root:x:0:0:root").unwrap();
    for (path, why) in [
        ("/dev/zero".into(), "not a regular file"),
        (fifo.display().to_string(), "not a regular file"),
        (dir.path().display().to_string(), "not a regular file"),
        (junk.display().to_string(), ""),
    ] {
        let key = groth16_job::Key::ZkeyPath(path.clone());
        let submitted = client.submit("p", payload(key, read("multiplier.wtns")), 0, None);
        let err = tokio::time::timeout(std::time::Duration::from_secs(20), submitted).await.expect(&path).unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{path}: {err:?}");
        let message = err.message();
        assert!(message.starts_with("groth16.zkey_path: ") && message.contains(why), "{path}: {message}");
    }
    let status = client.status().await.unwrap();
    assert!(status.kinds.iter().all(|k| k.queued == 0), "nothing queued: {status:?}");

    // A witness that does not satisfy the circuit: the job fails naming the constraint.
    let mut bad = read("multiplier.wtns");
    let last = bad.len() - 32;
    bad[last] ^= 1;
    let job = client.run("w2", payload(id.clone(), bad), 0, None).await.unwrap();
    assert_eq!(job.state(), JobState::Failed, "{job:?}");
    let error = job.error.unwrap();
    assert_eq!(error.code, "INVALID_ARGUMENT");
    assert!(error.message.contains("constraint") && error.message.contains("is not satisfied"), "{}", error.message);
    server.shutdown().await.unwrap();
}

/// A queued job naming an uploaded key finishes after a restart: the key
/// is kept in the data dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_key_outlives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 1).await;
    let mut client = unix_client(&server).await;
    let uploaded = client.upload_zkey(read("multiplier.zkey"), Vec::new()).await.unwrap();
    assert!(!uploaded.constraints_checked);
    server.shutdown().await.unwrap();

    let server = crate::support::server(dir.path(), 1).await;
    let mut client = unix_client(&server).await;
    let id = groth16_job::Key::ZkeyId(uploaded.zkey_id);
    let job = client.run("after", payload(id, read("multiplier.wtns")), 0, None).await.unwrap();
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    check(result(&job));
    server.shutdown().await.unwrap();
}

/// `cvm submit` of a Groth16 job file: the key (and the R1CS beside it) is
/// uploaded first, the job names it, and the result is snarkjs's files.
#[test]
fn cvm_submit_uploads_the_key_and_prints_snarkjs_files() {
    use crate::cli::{cvm, run, serve, stop};
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.json");
    let spec =
        serde_json::json!({"groth16": {"zkey": fixture("multiplier.zkey"), "witness": fixture("multiplier.wtns")}});
    std::fs::write(&job, spec.to_string()).unwrap();
    let server = serve(dir.path());
    let (code, out, err) = run(cvm(dir.path()).args(["--json", "submit", "--wait"]).arg(&job));
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let value = &report["job"]["result"]["value"];
    assert_eq!(value["public"], serde_json::json!(["11979", "3"]), "{report}");
    assert_eq!(value["proof"]["protocol"], "groth16");
    // Again: the same job (named by its key and witness).
    let (code, out, _) = run(cvm(dir.path()).args(["submit"]).arg(&job));
    assert_eq!(code, 0);
    assert!(out.contains("(already submitted)"), "{out}");
    // Neither a key path nor an id: refused before anything is sent.
    std::fs::write(&job, serde_json::json!({"groth16": {"witness": fixture("multiplier.wtns")}}).to_string()).unwrap();
    let (code, _, err) = run(cvm(dir.path()).args(["submit"]).arg(&job));
    assert_eq!(code, 2);
    assert!(err.contains("give exactly one of zkey"), "{err}");
    stop(server);
}
