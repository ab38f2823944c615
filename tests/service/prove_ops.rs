//! ProveOps jobs and `cvm prove-ops`: proofs for operations executed
//! elsewhere, checked by our verifier, against the in-process prover's
//! public inputs, and by snarkjs.

use causality_vm::prove::snarkjs::{proof_from_json, public_from_json, vk_from_json};
use causality_vm::prove::system::verify_groth16;
use causality_vm::prove::{OpWitness, ProvingSystem};
use causality_vm::service::proto::{job_payload, job_result, JobPayload, JobState, ListRequest, ProveOpsJob};
use causality_vm::Backend;
use serde_json::{json, Value};
use tonic::Code;

use crate::prove_support::*;
use crate::support::*;

/// The operations document for `witnesses`.
pub fn document(witnesses: &[OpWitness]) -> Value {
    let ops: Vec<Value> = witnesses
        .iter()
        .map(|w| {
            let mut op = json!({ "kind": w.kind, "created": w.created });
            if !w.consumed.is_empty() {
                op["consumed"] = w
                    .consumed
                    .iter()
                    .map(
                        |(r, nk)| json!({"register": r, "nullifier_key": blake3::Hash::from(*nk).to_hex().to_string()}),
                    )
                    .collect();
            }
            if let Some((before, after)) = &w.updated {
                op["before"] = json!(before);
                op["after"] = json!(after);
            }
            op
        })
        .collect();
    json!({ "ops": ops })
}

pub fn payload(doc: &Value, ops_per_proof: u32) -> JobPayload {
    JobPayload {
        kind: Some(job_payload::Kind::ProveOps(ProveOpsJob {
            witnesses_json: doc.to_string().into_bytes(),
            ops_per_proof,
        })),
    }
}

/// Check every proof of a proofs document; returns their public inputs.
pub fn verify_document(result: &Value) -> Vec<Vec<ark_bn254::Fr>> {
    let vk = vk_from_json(&result["verification_key"]).unwrap();
    let pvk = ark_groth16::prepare_verifying_key(&vk);
    result["proofs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let proof = proof_from_json(&entry["proof"]).unwrap();
            let public = public_from_json(&entry["public"]).unwrap();
            verify_groth16(&pvk, &proof, &public).expect("the proof verifies");
            public
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prove_ops_jobs_make_proofs_that_verify_with_the_in_process_public_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 1).await;
    let mut client = unix_client(&server).await;
    let witnesses = all_kinds();
    let accepted = client.submit("prove-1", payload(&document(&witnesses), 4), 0, None).await.unwrap();
    // A fresh data dir: the key set is made (seconds). While it runs, `Get`
    // and `List` see the job running, though a compute job's start is not
    // written to the job store.
    let mut events = client.events(accepted.job_id).await.unwrap();
    while events.message().await.unwrap().expect("the job ended before its key stage").stage != "load keys" {}
    let running = client.get(accepted.job_id).await.unwrap();
    assert_eq!((running.state(), running.stage.as_str(), running.attempts), (JobState::Running, "load keys", 1));
    assert!(running.started_unix_ms > 0);
    let listed = client.list(ListRequest { states: vec![JobState::Running as i32], ..Default::default() }).await;
    assert_eq!(listed.unwrap().iter().map(|j| j.job_id).collect::<Vec<_>>(), [accepted.job_id]);
    let listed = client.list(ListRequest { states: vec![JobState::Queued as i32], ..Default::default() }).await;
    assert!(listed.unwrap().is_empty(), "not queued");
    let job = client.wait(accepted.job_id).await.unwrap();
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    let result = job.result.unwrap();
    let backends: Vec<(&str, &str)> = result.backends.iter().map(|b| (b.stage.as_str(), b.backend.as_str())).collect();
    assert_eq!(backends, [("prove", "cpu"), ("quotient", "cpu")]);
    let Some(job_result::Kind::ProveOps(proofs)) = result.kind else { panic!("a proofs document") };
    let document: Value = serde_json::from_str(&proofs.proofs_json).unwrap();
    assert_eq!(document["backends"], serde_json::json!({"quotient": "cpu", "msm_g1": "cpu", "msm_g2": "cpu"}));
    assert_eq!(document["ops_per_proof"], 4);
    assert_eq!(document["proofs"].as_array().unwrap().len(), witnesses.len().div_ceil(4));
    let publics = verify_document(&document);

    // The same operations proven in-process with the same keys: the same public inputs.
    let system = ProvingSystem::load_or_setup(dir.path(), 4, Backend::Cpu, |_| {}).unwrap();
    let local = system.prove_batch(&witnesses).unwrap();
    assert_eq!(publics, local.iter().map(|p| p.public_inputs.clone()).collect::<Vec<_>>());

    let status = client.status().await.unwrap();
    assert!(status.key_sets.iter().any(|k| k.ops_per_proof == 4 && k.resident), "the key set stays resident");
    // `cvm status` says so too.
    let (code, out, err) = crate::cli::run(crate::cli::cvm(dir.path()).args(["status"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("key sets resident: 4 ops per proof"), "{out}");
    let (_, out, _) = crate::cli::run(crate::cli::cvm(dir.path()).args(["--json", "status"]));
    let key_sets = serde_json::from_str::<Value>(&out).unwrap()["key_sets"].clone();
    assert_eq!(key_sets, serde_json::json!([{"ops_per_proof": 4, "resident": true}]), "{out}");
    // A size no key set has is refused by Evict as by Preload.
    let odd = causality_vm::service::proto::EvictRequest { ops_per_proof: 1_000_000, zkey_id: String::new() };
    assert_eq!(client.evict(odd).await.unwrap_err().code(), Code::InvalidArgument);
    server.shutdown().await.unwrap();
}

/// A ProveOps job tells its progress between proofs, and a cancel stops it
/// there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prove_ops_job_tells_its_progress_and_stops_between_proofs_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 1).await;
    let mut client = unix_client(&server).await;
    let witnesses: Vec<OpWitness> = (0..200).map(|i| create(i + 1)).collect();
    let accepted = client.submit("many", payload(&document(&witnesses), 1), 0, None).await.unwrap();
    let mut events = client.events(accepted.job_id).await.unwrap();
    let told = loop {
        let event = events.message().await.unwrap().expect("the job ended before it told any progress");
        if event.stage == "prove" && event.progress > 0.0 {
            break event.progress;
        }
    };
    assert!(told < 1.0, "{told}");
    client.cancel(accepted.job_id).await.unwrap();
    let job = client.wait(accepted.job_id).await.unwrap();
    assert_eq!(job.state(), JobState::Cancelled, "stopped between proofs: {job:?}");
    assert!(job.error.unwrap().message.contains("at stage prove"));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_witnesses_are_refused_at_submit_naming_the_operation() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), 0).await;
    let mut client = unix_client(&server).await;
    let mut wrong_key = delete(3);
    wrong_key.consumed[0].1 = nk(99);
    let mut doc = document(&[create(1), wrong_key]);
    let err = client.submit("bad-key", payload(&doc, 4), 0, None).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("operation 1 (Delete)"), "{}", err.message());
    doc["ops"][0]["kind"] = json!("Teleport");
    let err = client.submit("bad-kind", payload(&doc, 4), 0, None).await.unwrap_err();
    assert!(err.message().contains("ops[0].kind"), "{}", err.message());
    let err = client.submit("bad-k", payload(&document(&[create(1)]), 3), 0, None).await.unwrap_err();
    assert!(err.message().contains("prove_ops.ops_per_proof"), "{}", err.message());
    let err = client.submit("empty", payload(&json!({"ops": []}), 4), 0, None).await.unwrap_err();
    assert!(err.message().contains("nothing to prove"), "{}", err.message());
    server.shutdown().await.unwrap();
}

#[test]
fn cvm_prove_ops_is_the_same_work_without_a_server_and_snarkjs_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("ops.json");
    std::fs::write(&doc, document(&[create(1), transfer(2), update(3)]).to_string()).unwrap();
    let out = dir.path().join("proofs.json");
    let (code, _, err) = crate::cli::run(
        crate::cli::cvm(dir.path()).args(["prove-ops", "--ops-per-proof", "2", "--out"]).arg(&out).arg(&doc),
    );
    assert_eq!(code, 0, "{err}");
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(verify_document(&result).len(), 2);
    if let Some(script) = crate::snarkjs_support::snarkjs_script() {
        let proof_dir = dir.path().join("first");
        std::fs::create_dir(&proof_dir).unwrap();
        std::fs::write(proof_dir.join("verification_key.json"), result["verification_key"].to_string()).unwrap();
        std::fs::write(proof_dir.join("proof.json"), result["proofs"][0]["proof"].to_string()).unwrap();
        std::fs::write(proof_dir.join("public.json"), result["proofs"][0]["public"].to_string()).unwrap();
        let (code, output) = crate::snarkjs_support::run_snarkjs(&script, &proof_dir);
        assert_eq!(code, Some(0), "snarkjs refused the proof: {output}");
    }
    let (code, _, err) =
        crate::cli::run(crate::cli::cvm(dir.path()).args(["prove-ops"]).arg(dir.path().join("missing.json")));
    assert_eq!(code, 2);
    assert!(err.contains("missing.json"), "{err}");
}
