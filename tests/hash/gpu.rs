//! The GPU pool past the conformance suite (lavapipe in CI): multi-segment
//! flushes, agreement with the CPU pool, and faults injected mid-flush and
//! mid-Merkle that the CPU must recover from.

use causality_vm::backend::FaultPlan;
use causality_vm::hash::{HashPool, HashRequest};
use causality_vm::{Backend, ResolvedBackend};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::hash_support;
use hash_support::{check, naive_merkle, random_request};

fn gpu_pool() -> Option<HashPool> {
    causality_vm::gpu::test_context()?;
    let pool = HashPool::with_backend(Backend::Gpu).expect("an adapter exists, so the GPU pool must build");
    assert_eq!(pool.backend(), ResolvedBackend::Gpu);
    Some(pool)
}

#[test]
fn many_segments_per_flush_keep_request_order() {
    let Some(mut pool) = gpu_pool() else { return };
    pool.set_gpu_segment_limit(97);
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let requests: Vec<HashRequest> = (0..1500)
        .map(|_| {
            let len = rng.gen_range(0..1500);
            random_request(&mut rng, len)
        })
        .collect();
    check(&mut pool, &requests, "gpu segmented");
    assert_eq!(pool.gpu_fallbacks(), 0);
}

#[test]
fn gpu_and_cpu_pools_agree_across_flushes() {
    let Some(mut gpu) = gpu_pool() else { return };
    let mut cpu = HashPool::new();
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let mut pairs = Vec::new();
    for round in 0..4 {
        for _ in 0..300 {
            let len = rng.gen_range(0..200);
            let request = random_request(&mut rng, len);
            pairs.push((gpu.push(request.clone()), cpu.push(request)));
        }
        gpu.flush().unwrap();
        cpu.flush().unwrap();
        for (g, c) in &pairs {
            assert_eq!(gpu.get(*g), cpu.get(*c), "round {round}: handles stay valid across flushes");
        }
    }
}

/// A lookup's flush of a few requests stays on the CPU (a chain of
/// operations would otherwise pay a device round trip each); a big one,
/// and any ordinary flush, runs on the device.
#[test]
fn a_lookups_few_requests_are_hashed_on_the_cpu_and_many_on_the_device() {
    use causality_vm::hash::GPU_LOOKUP_MIN_REQUESTS;
    let Some(mut pool) = gpu_pool() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let mut filed = Vec::new();
    let mut file = |pool: &mut HashPool, rng: &mut ChaCha8Rng, n: usize| {
        for _ in 0..n {
            let len = rng.gen_range(0..300);
            let request = random_request(rng, len);
            filed.push((pool.push(request.clone()), request.compute()));
        }
    };
    file(&mut pool, &mut rng, GPU_LOOKUP_MIN_REQUESTS - 1);
    pool.flush_for_lookup().unwrap();
    assert_eq!(pool.gpu_hashed(), 0, "a few for a lookup: on the CPU");
    file(&mut pool, &mut rng, GPU_LOOKUP_MIN_REQUESTS);
    pool.flush_for_lookup().unwrap();
    assert_eq!(pool.gpu_hashed(), GPU_LOOKUP_MIN_REQUESTS as u64, "enough for the device");
    file(&mut pool, &mut rng, 3);
    pool.flush().unwrap();
    assert_eq!(pool.gpu_hashed(), GPU_LOOKUP_MIN_REQUESTS as u64 + 3, "an ordinary flush: on the device");
    for (handle, want) in &filed {
        assert_eq!(pool.get(*handle), Some(*want));
    }
    assert_eq!(pool.gpu_fallbacks(), 0);
}

#[test]
fn merkle_roots_match_the_cpu_and_the_naive_tree() {
    let Some(mut gpu) = gpu_pool() else { return };
    let mut cpu = HashPool::new();
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    for n in (0..=40).chain([63, 64, 65, 127, 128, 129, 255, 256, 257, 1000, 4097, 20_000]) {
        let leaves: Vec<[u8; 32]> = (0..n).map(|_| rng.gen()).collect();
        let expected = naive_merkle(&leaves);
        assert_eq!(gpu.merkle_root(&leaves).unwrap(), expected, "gpu: {n} leaves");
        assert_eq!(cpu.merkle_root(&leaves).unwrap(), expected, "cpu: {n} leaves");
    }
    assert_eq!(gpu.gpu_fallbacks(), 0);
}

#[test]
fn a_fault_mid_flush_is_recomputed_on_the_cpu() {
    let Some(mut pool) = gpu_pool() else { return };
    pool.set_gpu_segment_limit(1000);
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let requests: Vec<HashRequest> = (0..5000)
        .map(|_| {
            let len = rng.gen_range(0..1200);
            random_request(&mut rng, len)
        })
        .collect();
    // Segments 0 and 1 are already submitted when segment 2 fails.
    pool.inject_faults(FaultPlan::once_at(2));
    check(&mut pool, &requests, "after a mid-flush fault");
    assert_eq!(pool.gpu_fallbacks(), 1, "the fault fired and the CPU took over");
    // The pool keeps using the GPU afterwards.
    check(&mut pool, &requests[..300], "after recovery");
    assert_eq!(pool.gpu_fallbacks(), 1);
    assert_eq!(pool.backend(), ResolvedBackend::Gpu);
}

#[test]
fn a_fault_in_a_merkle_submission_is_recomputed_on_the_cpu() {
    let Some(mut pool) = gpu_pool() else { return };
    let leaves: Vec<[u8; 32]> = (0..333u32).map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes()).collect();
    pool.inject_faults(FaultPlan::once_at(0));
    assert_eq!(pool.merkle_root(&leaves).unwrap(), naive_merkle(&leaves));
    assert_eq!(pool.gpu_fallbacks(), 1);
}

#[test]
fn a_fault_plan_fails_that_many_runs_then_the_device_works_again() {
    let Some(mut pool) = gpu_pool() else { return };
    pool.set_gpu_segment_limit(50);
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let requests: Vec<HashRequest> = (0..400).map(|_| random_request(&mut rng, 100)).collect();
    pool.inject_faults(FaultPlan { runs: 2, at_step: 3 });
    check(&mut pool, &requests, "first failing run");
    check(&mut pool, &requests, "second failing run");
    assert_eq!(pool.gpu_fallbacks(), 2, "both planned faults fired and were recomputed");
    check(&mut pool, &requests, "after the plan");
    assert_eq!(pool.gpu_fallbacks(), 2, "the plan is spent");
    assert_eq!(pool.backend(), ResolvedBackend::Gpu);
}
