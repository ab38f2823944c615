//! Groth16 proofs from our prover: they verify with ark-groth16, and
//! tampering of every kind is rejected with a clear error.

use crate::prove_support;

use std::sync::OnceLock;

use ark_bn254::{Bn254, Fq2, Fr, G1Affine, G2Affine};
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::UniformRand;
use ark_groth16::{prepare_verifying_key, Groth16};
use causality_vm::msm::MsmEngine;
use causality_vm::prove::circuit::ComplianceCircuit;
use causality_vm::prove::keys::{self, CircuitShape};
use causality_vm::prove::witness::SlotAssignment;
use causality_vm::prove::{BatchProof, ProveError, ProvingSystem};
use causality_vm::Backend;
use prove_support::*;

/// K = 2, set up once for the whole file.
fn system() -> &'static ProvingSystem {
    static SYSTEM: OnceLock<ProvingSystem> = OnceLock::new();
    SYSTEM.get_or_init(|| ProvingSystem::setup_in_memory(2, MsmEngine::cpu()).expect("setup"))
}

fn proof() -> &'static BatchProof {
    static PROOF: OnceLock<BatchProof> = OnceLock::new();
    PROOF.get_or_init(|| {
        let proofs = system().prove_batch(&[transfer(10), update(30)]).expect("prove");
        assert_eq!(proofs.len(), 1);
        proofs.into_iter().next().unwrap()
    })
}

#[test]
fn proofs_of_every_kind_verify_with_ark_groth16() {
    let ops = all_kinds();
    let (proofs, timings) = system().prove_batch_timed(&ops).expect("prove");
    assert_eq!(proofs.len(), 3, "6 ops at 2 per proof");
    assert_eq!(proofs.iter().map(|p| p.ops).sum::<usize>(), ops.len());
    let pvk = prepare_verifying_key(system().verifying_key());
    for p in &proofs {
        assert!(Groth16::<Bn254>::verify_proof(&pvk, &p.proof, &p.public_inputs).unwrap());
        system().verify(p).unwrap();
    }
    assert!(timings.msm_g1_us > 0 && timings.verify_us > 0);
    // The public inputs are the slots' own.
    let expected: Vec<Fr> = ops[..2].iter().flat_map(|op| op.to_slot(0).unwrap().public_inputs()).collect();
    assert_eq!(proofs[0].public_inputs, expected);
}

#[test]
fn padding_fills_the_last_proof() {
    let proofs = system().prove_batch(&[create(5)]).unwrap();
    assert_eq!(proofs.len(), 1);
    assert_eq!(proofs[0].ops, 1);
    assert_eq!(&proofs[0].public_inputs[5..], &SlotAssignment::default().public_inputs()[..]);
    assert!(system().prove_batch(&[]).unwrap().is_empty());
}

#[test]
fn matches_ark_groth16_prover_on_the_same_key() {
    // ark-groth16's own prover, on a key made by the same setup, proves the
    // same statement: our public-input layout is the circuit's.
    let shape = CircuitShape::of(1).unwrap();
    let pk = keys::setup(&shape).unwrap();
    let circuit = ComplianceCircuit::new(vec![transfer(40).to_slot(0).unwrap()]);
    let public = circuit.public.clone();
    let mut rng = ark_std::test_rng();
    let theirs = Groth16::<Bn254>::create_random_proof_with_reduction(circuit, &pk, &mut rng).unwrap();
    let ours = ProvingSystem::from_key(shape, pk, MsmEngine::cpu()).unwrap();
    let mine = ours.prove_batch(&[transfer(40)]).unwrap().remove(0);
    assert_eq!(mine.public_inputs, public);
    ours.verify(&BatchProof { proof: theirs, public_inputs: public, ops: 1 }).unwrap();
    assert_ne!(mine.proof, ours.prove_batch(&[transfer(40)]).unwrap()[0].proof, "fresh r, s per proof");
}

#[test]
fn invalid_witness_is_refused_before_proving() {
    let mut op = transfer(10);
    op.created[1].quantity += 1;
    match system().prove_batch(&[create(1), op]) {
        Err(ProveError::InvalidWitness { what, reason }) => {
            assert!(what.contains("operation 1"), "{what}");
            assert!(reason.contains("not conserved"), "{reason}");
        }
        other => panic!("expected InvalidWitness, got {other:?}"),
    }
}

#[test]
fn tampered_proofs_are_rejected() {
    let good = proof();
    system().verify(good).unwrap();

    let mut p = good.clone();
    p.proof.a = (p.proof.a + G1Affine::generator()).into_affine();
    assert!(matches!(system().verify(&p), Err(ProveError::Rejected(_))));

    let mut p = good.clone();
    p.proof.c = p.proof.a;
    assert!(matches!(system().verify(&p), Err(ProveError::Rejected(_))));

    // Swapped public inputs (the two new commitments of the transfer).
    let mut p = good.clone();
    p.public_inputs.swap(3, 4);
    assert!(matches!(system().verify(&p), Err(ProveError::Rejected(_))));

    // Every single public input matters.
    for i in 0..good.public_inputs.len() {
        let mut p = good.clone();
        p.public_inputs[i] += Fr::from(1u64);
        assert!(matches!(system().verify(&p), Err(ProveError::Rejected(_))), "public input {i}");
    }
}

#[test]
fn wrong_public_input_counts_are_rejected() {
    let good = proof();
    let mut p = good.clone();
    p.public_inputs.pop();
    match system().verify(&p) {
        Err(ProveError::PublicInputCount { expected: 10, got: 9 }) => {}
        other => panic!("expected PublicInputCount, got {other:?}"),
    }
    let mut p = good.clone();
    p.public_inputs.push(Fr::from(0u64));
    assert!(matches!(system().verify(&p), Err(ProveError::PublicInputCount { expected: 10, got: 11 })));
}

/// A point on the G2 twist outside the prime-order subgroup.
pub fn g2_outside_subgroup() -> G2Affine {
    let mut rng = ark_std::test_rng();
    loop {
        let x = Fq2::rand(&mut rng);
        if let Some(p) = G2Affine::get_point_from_x_unchecked(x, false) {
            if p.is_on_curve() && !p.is_in_correct_subgroup_assuming_on_curve() {
                return p;
            }
        }
    }
}

#[test]
fn bad_points_are_rejected_with_clear_errors() {
    let good = proof();
    let mut p = good.clone();
    let (x, y) = p.proof.a.xy().unwrap();
    p.proof.a = G1Affine::new_unchecked(x, y + y);
    match system().verify(&p) {
        Err(ProveError::InvalidPoint { what, reason }) => {
            assert!(what.contains("proof.a"), "{what}");
            assert!(reason.contains("not on the curve"), "{reason}");
        }
        other => panic!("expected InvalidPoint, got {other:?}"),
    }
    let mut p = good.clone();
    p.proof.b = g2_outside_subgroup();
    match system().verify(&p) {
        Err(ProveError::InvalidPoint { what, reason }) => {
            assert!(what.contains("proof.b"), "{what}");
            assert!(reason.contains("subgroup"), "{reason}");
        }
        other => panic!("expected InvalidPoint, got {other:?}"),
    }
}

#[test]
fn proof_bytes_round_trip_and_are_validated() {
    let good = proof();
    let bytes = good.to_bytes();
    assert_eq!(&BatchProof::from_bytes(&bytes).unwrap(), good);
    for cut in [0, 1, 31, 32, 33, bytes.len() - 1] {
        assert!(matches!(BatchProof::from_bytes(&bytes[..cut]), Err(ProveError::Malformed { .. })), "cut {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(BatchProof::from_bytes(&longer), Err(ProveError::Malformed { .. })));
    // Flipping a bit in a compressed point gives an invalid point or a different one.
    let mut flipped = bytes.clone();
    flipped[5] ^= 0x10;
    match BatchProof::from_bytes(&flipped) {
        Err(ProveError::Malformed { .. }) => {}
        Ok(p) => assert!(system().verify(&p).is_err()),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

#[test]
fn keys_are_made_once_saved_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let notices = std::cell::RefCell::new(Vec::new());
    let first = ProvingSystem::load_or_setup(dir.path(), 1, Backend::Cpu, |m| notices.borrow_mut().push(m.to_string()))
        .unwrap();
    assert_eq!(notices.borrow().len(), 1);
    assert!(notices.borrow()[0].contains("not a multi-party ceremony"));
    let second =
        ProvingSystem::load_or_setup(dir.path(), 1, Backend::Cpu, |m| panic!("unexpected notice {m}")).unwrap();
    assert_eq!(first.verifying_key(), second.verifying_key());
    let p = second.prove_batch(&[delete(3)]).unwrap().remove(0);
    first.verify(&p).unwrap();

    let key_dir = keys::key_dir(dir.path(), 1);
    // A key for another circuit digest is refused, not overwritten.
    let meta_path = key_dir.join(keys::CIRCUIT_FILE);
    let meta = std::fs::read_to_string(&meta_path).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&meta).unwrap();
    v["circuit_digest"] = serde_json::json!("00".repeat(32));
    std::fs::write(&meta_path, v.to_string()).unwrap();
    match ProvingSystem::load_or_setup(dir.path(), 1, Backend::Cpu, |_| {}) {
        Err(ProveError::Keys { reason, .. }) => assert!(reason.contains("different circuit"), "{reason}"),
        other => panic!("expected a key mismatch, got {:?}", other.err()),
    }
    std::fs::write(&meta_path, meta).unwrap();

    // A corrupted proving key fails validation on load.
    let pk_path = key_dir.join(keys::PROVING_KEY_FILE);
    let mut pk = std::fs::read(&pk_path).unwrap();
    let mid = pk.len() / 2;
    pk[mid] ^= 0x55;
    std::fs::write(&pk_path, &pk).unwrap();
    assert!(matches!(ProvingSystem::load_or_setup(dir.path(), 1, Backend::Cpu, |_| {}), Err(ProveError::Keys { .. })));

    assert!(matches!(
        ProvingSystem::load_or_setup(dir.path(), 3, Backend::Cpu, |_| {}),
        Err(ProveError::UnsupportedSize { given: 3 })
    ));
}

#[test]
fn cpu_and_gpu_engines_both_give_valid_proofs() {
    let Some(_ctx) = causality_vm::gpu::test_context() else { return };
    let shape = CircuitShape::of(1).unwrap();
    let pk = keys::setup(&shape).unwrap();
    let gpu = ProvingSystem::from_key(shape, pk.clone(), MsmEngine::new(Backend::Gpu).unwrap()).unwrap();
    let cpu = ProvingSystem::from_key(CircuitShape::of(1).unwrap(), pk, MsmEngine::cpu()).unwrap();
    let ops = [split(50)];
    let (mut proofs, on_gpu) = gpu.prove_batch_timed(&ops).unwrap();
    let from_gpu = proofs.remove(0);
    let (mut proofs, on_cpu) = cpu.prove_batch_timed(&ops).unwrap();
    let from_cpu = proofs.remove(0);
    // Where each stage ran: every MSM (four G1 terms, one G2) and the
    // quotient's NTTs on the device for the GPU engine, on the CPU for the other.
    let placed = |t: &causality_vm::prove::ProveStages| {
        (t.msm_g1_on_gpu, t.msm_g2_on_gpu, t.quotients_on_gpu, t.msm_g1_on_cpu, t.msm_g2_on_cpu, t.quotients_on_cpu)
    };
    assert_eq!(placed(&on_gpu), (4, 1, 1, 0, 0, 0), "{on_gpu:?}");
    assert_eq!(placed(&on_cpu), (0, 0, 0, 4, 1, 1), "{on_cpu:?}");
    assert_eq!(on_gpu.gpu_fallbacks + on_gpu.ntt_fallbacks + on_gpu.cpu_retries, 0, "{on_gpu:?}");
    assert_eq!(from_gpu.public_inputs, from_cpu.public_inputs);
    assert_ne!(from_gpu.proof, from_cpu.proof, "randomness differs");
    cpu.verify(&from_gpu).unwrap();
    gpu.verify(&from_cpu).unwrap();
}

/// A GPU MSM that fails mid-proof is recomputed on the CPU by the engine,
/// and the proof's timings count it (the proof itself is not retried).
#[test]
fn gpu_msm_failures_are_recomputed_and_counted() {
    let Some(_ctx) = causality_vm::gpu::test_context() else { return };
    let shape = CircuitShape::of(1).unwrap();
    let pk = keys::setup(&shape).unwrap();
    let system = ProvingSystem::from_key(shape, pk, MsmEngine::new(Backend::Gpu).unwrap()).unwrap();
    // Every MSM of the proof fails: A, B₁, L and H in G1 and B₂ in G2.
    assert!(system.engine().inject_faults(causality_vm::backend::FaultPlan { runs: 5, at_step: usize::MAX }));
    let (proofs, timings) = system.prove_batch_timed(&[split(50)]).unwrap();
    assert_eq!(timings.gpu_fallbacks, 5, "the five failed MSMs were recomputed and counted");
    assert_eq!((timings.msm_g1_on_cpu, timings.msm_g2_on_cpu, timings.msm_g1_on_gpu), (4, 1, 0), "{timings:?}");
    assert_eq!(timings.cpu_retries, 0, "the engine recovered inside the proof");
    system.verify(&proofs[0]).unwrap();
}

/// The quotient's NTTs run on the GPU beside the MSMs; a device fault in
/// them is recomputed on the CPU inside the proof, counted, and the proof
/// verifies (and says where its quotient ran).
#[test]
fn gpu_ntt_failures_are_recomputed_and_counted() {
    let Some(_ctx) = causality_vm::gpu::test_context() else { return };
    let shape = CircuitShape::of(1).unwrap();
    let pk = keys::setup(&shape).unwrap();
    let system = ProvingSystem::from_key(shape, pk, MsmEngine::new(Backend::Gpu).unwrap()).unwrap();
    assert_eq!(system.quotient_backend(), causality_vm::ResolvedBackend::Gpu);
    let (proofs, timings) = system.prove_batch_timed(&[split(50)]).unwrap();
    assert_eq!(timings.quotient_backend(), Some(causality_vm::ResolvedBackend::Gpu));
    system.verify(&proofs[0]).unwrap();
    assert!(system.ntt().inject_faults(causality_vm::backend::FaultPlan::once_at(3)));
    let (proofs, timings) = system.prove_batch_timed(&[split(51)]).unwrap();
    assert_eq!(timings.ntt_fallbacks, 1, "the failed transforms were recomputed and counted");
    assert_eq!(timings.quotient_backend(), Some(causality_vm::ResolvedBackend::Cpu), "in part on the CPU");
    assert_eq!(timings.cpu_retries, 0, "the engine recovered inside the proof");
    system.verify(&proofs[0]).unwrap();
}

/// A real device loss between proofs (wgpu's `Device::destroy` on a private
/// device holding the key's bases and every kernel of the proof: the NTTs,
/// the G1 MSMs and the G2 MSM): the next proof's device work fails, is
/// recomputed on the CPU inside the proof (counted, no retry of the proof)
/// and the proof verifies; the engines move to a fresh device, where the
/// proof after runs whole again, the key's bases uploaded anew.
#[test]
fn a_device_lost_between_proofs_is_recomputed_and_every_proof_verifies() {
    use causality_vm::gpu::GpuContext;
    use causality_vm::ntt::NttEngine;
    use std::sync::Arc;
    let Some(_shared) = causality_vm::gpu::test_context() else { return };
    let ctx = Arc::new(GpuContext::new().expect("an adapter exists"));
    let shape = CircuitShape::of(1).unwrap();
    let pk = keys::setup(&shape).unwrap();
    let system = ProvingSystem::from_key(shape, pk, MsmEngine::on_context(ctx.clone()).unwrap())
        .unwrap()
        .with_ntt_engine(NttEngine::on_context(ctx.clone()).unwrap());
    let placed = |t: &causality_vm::prove::ProveStages| {
        (t.msm_g1_on_gpu, t.msm_g2_on_gpu, t.quotients_on_gpu, t.msm_g1_on_cpu, t.msm_g2_on_cpu, t.quotients_on_cpu)
    };
    let fallbacks = |t: &causality_vm::prove::ProveStages| (t.gpu_fallbacks, t.ntt_fallbacks, t.cpu_retries);

    let (proofs, before) = system.prove_batch_timed(&[split(60)]).unwrap();
    assert_eq!(placed(&before), (4, 1, 1, 0, 0, 0), "{before:?}");
    system.verify(&proofs[0]).unwrap();

    ctx.device.destroy();
    let _ = ctx.device.poll(wgpu::PollType::Poll);
    assert!(ctx.is_lost(), "destroying the device fires its lost callback");
    let (proofs, across) = system.prove_batch_timed(&[split(61)]).unwrap();
    system.verify(&proofs[0]).unwrap();
    assert_eq!(across.ntt_fallbacks, 1, "the quotient failed on the lost device: {across:?}");
    assert!(across.gpu_fallbacks >= 1, "MSMs failed on the lost device: {across:?}");
    assert_eq!(across.cpu_retries, 0, "recovered inside the proof, not by retrying it: {across:?}");
    assert_eq!(across.quotient_backend(), Some(causality_vm::ResolvedBackend::Cpu));
    let on_cpu = across.msm_g1_on_cpu + across.msm_g2_on_cpu;
    assert_eq!(on_cpu, across.gpu_fallbacks, "each failed MSM ran on the CPU: {across:?}");
    assert_eq!(across.msm_g1_on_gpu + across.msm_g1_on_cpu, 4, "{across:?}");
    assert_eq!(across.msm_g2_on_gpu + across.msm_g2_on_cpu, 1, "{across:?}");

    let (proofs, after) = system.prove_batch_timed(&[split(62)]).unwrap();
    assert_eq!(placed(&after), (4, 1, 1, 0, 0, 0), "all on the fresh device: {after:?}");
    assert_eq!(fallbacks(&after), (0, 0, 0), "{after:?}");
    assert_eq!(system.backend(), causality_vm::ResolvedBackend::Gpu);
    system.verify(&proofs[0]).unwrap();
}

#[test]
fn a_failed_proof_is_retried_once_on_the_cpu() {
    let engine = match causality_vm::gpu::test_context() {
        Some(_) => MsmEngine::new(Backend::Gpu).unwrap(),
        None => MsmEngine::cpu(),
    };
    let shape = CircuitShape::of(1).unwrap();
    let pk = keys::setup(&shape).unwrap();
    let system = ProvingSystem::from_key(shape, pk, engine).unwrap();
    system.fail_next_proof_for_testing();
    let (proofs, timings) = system.prove_batch_timed(&[create(9), delete(8)]).unwrap();
    assert_eq!(timings.cpu_retries, 1, "exactly the failed proof was retried");
    assert_eq!(system.last_timings().cpu_retries, 1);
    for p in &proofs {
        system.verify(p).unwrap();
    }
}
