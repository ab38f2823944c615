//! The batch pipeline with Groth16 proving: execute → flush → prove →
//! verify → commit, the proofs in the batch log, export, and the failure
//! paths (CPU retry, a prover that fails for good).

use crate::batch_support;
use crate::snarkjs_runner;

use std::sync::{Arc, OnceLock};

use ark_bn254::Bn254;
use ark_groth16::{prepare_verifying_key, Groth16, ProvingKey};
use causality_vm::backend::Backend;
use causality_vm::batch::{execute_batch, execute_batches, BatchJob, TransactionContext};
use causality_vm::error::ExecutionError;
use causality_vm::msm::MsmEngine;
use causality_vm::prove::keys::{self, CircuitShape};
use causality_vm::prove::pipeline::decode_record;
use causality_vm::prove::{nullifier, snarkjs, ProvingSystem};
use causality_vm::resource::{Operation, ResourceId, ResourceUpdate, VerifyTarget};
use causality_vm::ExecutionMode;

use batch_support::{id_of, input, nullifier_key, transfer, update, Fixture};

const K: usize = 2;

/// One setup for the whole file (K = 2); each test makes its own system
/// from it so fault injection stays local.
fn proving_key() -> &'static ProvingKey<Bn254> {
    static PK: OnceLock<ProvingKey<Bn254>> = OnceLock::new();
    PK.get_or_init(|| keys::setup(&CircuitShape::of(K).expect("shape")).expect("setup"))
}

fn system(engine: MsmEngine) -> Arc<ProvingSystem> {
    let shape = CircuitShape::of(K).expect("shape");
    Arc::new(ProvingSystem::from_key(shape, proving_key().clone(), engine).expect("prover"))
}

fn proving(system: &Arc<ProvingSystem>) -> TransactionContext {
    TransactionContext::new(ExecutionMode::Standard).with_proof_system(system.clone())
}

/// Batch 1 creates three resources (owners 1, 2, 3); returns their ids.
fn seeded(f: &mut Fixture) -> [ResourceId; 3] {
    let made = [f.resource("gold", 10, 1), f.resource("gold", 5, 2), f.resource("silver", 7, 3)];
    let ids = f.create_all(&made);
    [ids[0], ids[1], ids[2]]
}

/// Create, Transfer, Update, Delete: four operations, two proofs at K = 2.
fn mixed_batch(f: &mut Fixture, [a, b, c]: [ResourceId; 3]) -> Vec<Operation> {
    let created = f.resource("bronze", 1, 4);
    let out = f.resource("gold", 10, 5);
    let changes = ResourceUpdate { controller: Some("new-owner".into()), ..Default::default() };
    vec![
        Operation::Create { resource: created },
        transfer(vec![input(a, 1)], vec![out]),
        update(b, changes),
        Operation::Delete { input: input(c, 3) },
    ]
}

#[test]
fn a_proven_batch_commits_with_proofs_that_ark_groth16_accepts() {
    let prover = system(MsmEngine::cpu());
    let mut f = Fixture::new();
    let ids = seeded(&mut f);
    let consumed = f.store.get(&ids[0]).expect("input").clone();
    let ops = mixed_batch(&mut f, ids);
    let result = f.run(&ops, &proving(&prover));
    assert_eq!(result.success_count, 4, "{:#?}", result.results);
    assert!(result.metadata.committed);
    let stages = result.metadata.prove_stages.expect("stage timings");
    assert_eq!(stages.proofs, 2);
    assert_eq!(stages.cpu_retries, 0);
    assert_eq!((stages.quotients_on_cpu, stages.quotients_on_gpu), (2, 0));
    assert_eq!((stages.msm_g1_on_cpu, stages.msm_g1_on_gpu), (8, 0), "four G1 MSMs a proof");
    assert_eq!((stages.msm_g2_on_cpu, stages.msm_g2_on_gpu), (2, 0), "one G2 MSM a proof");
    assert_eq!(result.metadata.backends.prove, Some(causality_vm::ResolvedBackend::Cpu));
    assert_eq!(result.metadata.backends.quotient, Some(causality_vm::ResolvedBackend::Cpu));
    assert!(result.metadata.timings.prove_us > 0);

    let number = result.metadata.batch_number.expect("batch number");
    let record = f.store.batch(number).expect("log").expect("record").proof.expect("a proof record");
    let proofs = decode_record(&record).expect("decodes");
    assert_eq!(proofs.len(), 2);
    assert_eq!(proofs.iter().map(|p| p.ops).sum::<usize>(), 4);
    let pvk = prepare_verifying_key(&proving_key().vk);
    for p in &proofs {
        assert!(Groth16::<Bn254>::verify_proof(&pvk, &p.proof, &p.public_inputs).expect("verifier runs"));
    }
    // The transfer's slot publishes the Poseidon nullifier of its input.
    let published = nullifier(&nullifier_key(1), &consumed);
    assert!(proofs[0].public_inputs.contains(&published));

    // The Verify operation checks the stored proofs against the key.
    let verify = Operation::Verify { target: VerifyTarget::BatchProof { batch: number } };
    let checked = f.run(&[verify], &proving(&prover));
    assert_eq!(checked.success_count, 1, "{:#?}", checked.results);
}

#[test]
fn pipelined_batches_each_carry_groth16_proofs_and_build_on_each_other() {
    // Batch 2 spends what batch 1 creates, batch 3 what batch 2 creates: each
    // executes while the one before it is being proven.
    let prover = system(MsmEngine::cpu());
    let mut f = Fixture::new();
    let first = f.resource("gold", 10, 1);
    let second = f.resource("gold", 10, 2);
    let third = f.resource("gold", 10, 3);
    let batches = [
        vec![Operation::Create { resource: first.clone() }],
        vec![transfer(vec![input(id_of(&first), 1)], vec![second.clone()])],
        vec![transfer(vec![input(id_of(&second), 2)], vec![third.clone()])],
    ];
    let tx = proving(&prover);
    let jobs: Vec<BatchJob> = batches.iter().map(|ops| BatchJob::new(&f.keys, ops, &f.ctx, &tx)).collect();
    let outcomes = execute_batches(&mut f.store, &jobs);
    let pvk = prepare_verifying_key(&proving_key().vk);
    for (i, outcome) in outcomes.iter().enumerate() {
        let result = outcome.as_ref().expect("batch commits");
        assert_eq!(result.success_count, 1, "batch {i}: {:#?}", result.results);
        assert_eq!(result.metadata.batch_number, Some(i as u64 + 1));
        let record = f.store.batch(i as u64 + 1).unwrap().unwrap().proof.expect("proof record");
        for p in decode_record(&record).expect("decodes") {
            assert!(Groth16::<Bn254>::verify_proof(&pvk, &p.proof, &p.public_inputs).expect("verifier runs"));
        }
    }
    assert!(f.store.get(&id_of(&third)).is_some());
    assert!(f.store.get(&id_of(&second)).is_none());
}

#[test]
fn a_transfer_too_wide_for_a_slot_fails_alone_and_the_rest_is_proven() {
    let prover = system(MsmEngine::cpu());
    let mut f = Fixture::new();
    let [a, b, c] = seeded(&mut f);
    let outputs = vec![f.resource("gold", 15, 4), f.resource("silver", 7, 4)];
    let wide = transfer(vec![input(a, 1), input(b, 2), input(c, 3)], outputs.clone());
    let narrow = f.resource("bronze", 1, 5);
    let result = f.run(&[wide, Operation::Create { resource: narrow.clone() }], &proving(&prover));
    match result.results[0].error() {
        Some(ExecutionError::ProofGenerationError { stage, reason }) => {
            assert_eq!(stage, "admission");
            assert!(reason.contains("3 inputs") && reason.contains("split"), "{reason}");
        }
        other => panic!("expected an admission failure, got {other:?}"),
    }
    assert!(result.results[1].succeeded());
    assert!(result.metadata.committed);
    assert!(f.store.get(&a).is_some(), "the wide transfer consumed nothing");
    assert!(f.store.get(&id_of(&narrow)).is_some());
    // Without proofs the same transfer is fine.
    let plain = f.standard(&[transfer(vec![input(a, 1), input(b, 2), input(c, 3)], outputs)]);
    assert!(plain.results[0].succeeded(), "{:?}", plain.results[0].error());
}

#[test]
fn proofs_from_the_batch_log_export_for_snarkjs() {
    let prover = system(MsmEngine::cpu());
    let mut f = Fixture::new();
    let ids = seeded(&mut f);
    let ops = mixed_batch(&mut f, ids);
    let result = f.run(&ops, &proving(&prover));
    let number = result.metadata.batch_number.expect("committed");
    let record = f.store.batch(number).unwrap().unwrap().proof.expect("proof record");
    let proofs = decode_record(&record).expect("decodes");

    let out = tempfile::tempdir().unwrap();
    let dirs = snarkjs::export_batch(out.path(), prover.verifying_key(), &proofs).expect("export");
    assert_eq!(dirs.len(), 2);
    for dir in &dirs {
        assert_eq!(snarkjs::verify_dir(dir).expect("our reader accepts the export"), 5 * K);
    }
    if let Some(script) = snarkjs_runner::snarkjs_script() {
        for dir in &dirs {
            let (code, text) = snarkjs_runner::run_snarkjs(&script, dir);
            assert_eq!(code, Some(0), "snarkjs rejected {}: {text}", dir.display());
        }
    }
}

#[test]
fn a_failed_proof_is_retried_on_the_cpu_and_the_batch_still_commits() {
    let prover = system(MsmEngine::cpu());
    let mut f = Fixture::new();
    let ids = seeded(&mut f);
    let ops = mixed_batch(&mut f, ids);
    prover.fail_next_proof_for_testing();
    let result = f.run(&ops, &proving(&prover));
    assert!(result.metadata.committed, "{:#?}", result.results);
    assert_eq!(result.metadata.prove_stages.expect("stages").cpu_retries, 1);
    let record = f.store.batch(f.store.head()).unwrap().unwrap().proof.expect("proof record");
    assert_eq!(prover.verify_record(&record).expect("verifies"), 2);
}

#[test]
fn a_prover_that_fails_twice_commits_nothing() {
    let prover = system(MsmEngine::cpu());
    let mut f = Fixture::new();
    let ids = seeded(&mut f);
    let (head, root) = (f.store.head(), f.store.state_root());
    let ops = mixed_batch(&mut f, ids);
    prover.fail_proof_attempts_for_testing(2);
    let err = execute_batch(&mut f.store, &f.keys, &ops, &f.ctx, &proving(&prover)).expect_err("must fail");
    assert!(matches!(err, ExecutionError::ProofGenerationError { .. }), "{err}");
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(f.store.head(), head);
    assert_eq!(f.store.state_root(), root);
    assert!(f.store.get(&ids[0]).is_some(), "the transfer's input is still unspent");
    f.reopen();
    assert_eq!(f.store.head(), head, "nothing reached the durable log");
}

#[test]
fn a_wrong_nullifier_key_fails_its_operation_at_the_flush() {
    let prover = system(MsmEngine::cpu());
    let mut f = Fixture::new();
    let [a, _, _] = seeded(&mut f);
    let out = f.resource("gold", 10, 5);
    let wrong = transfer(vec![input(a, 9)], vec![out.clone()]);
    let result = f.run(&[wrong], &proving(&prover));
    assert_eq!(result.success_count, 0);
    let err = result.results[0].error().expect("fails").to_string();
    assert!(err.contains("does not open its commitment"), "{err}");
    assert!(f.store.get(&id_of(&out)).is_none());
}

#[test]
fn the_gpu_engine_proves_a_batch_that_verifies() {
    let Some(_ctx) = causality_vm::gpu::test_context() else { return };
    let prover = system(MsmEngine::new(Backend::Gpu).expect("GPU engine"));
    let mut f = Fixture::new();
    let ids = seeded(&mut f);
    let ops = mixed_batch(&mut f, ids);
    let result = f.run(&ops, &proving(&prover));
    assert!(result.metadata.committed, "{:#?}", result.results);
    let record = f.store.batch(f.store.head()).unwrap().unwrap().proof.expect("proof record");
    // The CPU-engine system (same keys) accepts what the GPU engine proved.
    assert_eq!(system(MsmEngine::cpu()).verify_record(&record).expect("verifies"), 2);
}

fn cvm(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cvm"))
        .arg("--data-dir")
        .arg(data)
        .args(["--backend", "cpu"])
        .args(args)
        .env_remove("CVM_DATA_DIR")
        .output()
        .expect("run cvm")
}

fn text(o: &std::process::Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn cvm_run_proves_by_default_and_export_writes_the_batch_log_proofs() {
    let data = tempfile::tempdir().unwrap();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/transfers.json");
    let file = file.to_str().unwrap();

    let o = cvm(data.path(), &["run", file, "--ops-per-proof", "2", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a multi-party ceremony"), "{}", text(&o));
    let result: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(result["metadata"]["committed"], true);
    let proofs = result["metadata"]["prove_stages"]["proofs"].as_u64().expect("prove stages in --json");
    assert_eq!(proofs, 4, "8 operations at 2 per proof");
    assert!(result["metadata"]["prove_stages"]["msm_g1_us"].is_u64());
    assert_eq!(result["metadata"]["backends"]["quotient"], "cpu");

    let out = tempfile::tempdir().unwrap();
    let o = cvm(data.path(), &["export", "--out", out.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = cvm(data.path(), &["verify", out.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).matches("OK ").count(), 4, "{}", text(&o));

    // Verification mode checks the stored proofs with the Verify operation.
    let verify = out.path().join("verify.json");
    let mut batch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).expect("example parses");
    batch["ops"] = serde_json::json!([{ "op": "verify", "target": { "kind": "batch_proof", "batch": 1 } }]);
    batch.as_object_mut().unwrap().remove("programs");
    std::fs::write(&verify, batch.to_string()).unwrap();
    // It needs only the verifying key, and finds the key set the batch was proven with.
    let o = cvm(data.path(), &["run", "--mode", "verification", verify.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("verifies"), "{}", text(&o));

    // --no-prove commits without proofs, and export says so.
    let o = cvm(data.path(), &["run", file, "--no-prove"]);
    assert_eq!(o.status.code(), Some(1), "the creates collide: {}", text(&o));
    let o = cvm(data.path(), &["export", "--batch", "5", "--out", out.path().to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("batch 5 is not in the store"), "{}", text(&o));
}
