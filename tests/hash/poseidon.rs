//! Poseidon requests in the hash pool: resolved at the flush beside BLAKE3
//! requests, bit-identical to `poseidon::hash` and to ark-crypto-primitives'
//! sponge on every Poseidon kernel and on every pool backend (a GPU pool in
//! WGSL from `GPU_POSEIDON_MIN_REQUESTS` a flush, with the pool's fallback to
//! the CPU), with the pool's handle rules.

use ark_bn254::Fr;
use ark_ff::{AdditiveGroup, Field};
use ark_std::UniformRand;
use causality_vm::crypto::poseidon::{hash, reference_hash, HashDomain, PoseidonKernel};
use causality_vm::hash::{HashError, HashPool, PoseidonHandle, GPU_POSEIDON_MIN_REQUESTS};
use causality_vm::Backend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DOMAINS: [HashDomain; 4] =
    [HashDomain::Commitment, HashDomain::NullifierKey, HashDomain::Nullifier, HashDomain::Logic];

fn requests(rng: &mut ChaCha8Rng, n: usize) -> Vec<(HashDomain, Vec<Fr>)> {
    let edges = [Fr::ZERO, Fr::ONE, -Fr::ONE];
    (0..n)
        .map(|i| {
            // Up to 16: register commitments take 11 inputs, logic programs up to 16.
            let len = rng.gen_range(0..=16);
            let inputs = (0..len).map(|j| if (i + j) % 6 == 0 { edges[j % 3] } else { Fr::rand(rng) }).collect();
            (DOMAINS[i % 4], inputs)
        })
        .collect()
}

/// File every request (with a BLAKE3 request after each), flush once, and
/// check every value against the single hash, and the first few against ark's sponge.
fn check(pool: &mut HashPool, requests: &[(HashDomain, Vec<Fr>)], what: &str) {
    let handles: Vec<(PoseidonHandle, _)> = requests
        .iter()
        .enumerate()
        .map(|(i, (domain, inputs))| (pool.poseidon(*domain, inputs).unwrap(), pool.hash(i.to_le_bytes())))
        .collect();
    pool.flush().unwrap();
    assert_eq!(pool.poseidon_pending_len(), 0, "{what}");
    for (i, ((domain, inputs), (p, b))) in requests.iter().zip(&handles).enumerate() {
        let value = pool.poseidon_value(*p).unwrap_or_else(|| panic!("{what}: request {i} unresolved"));
        assert_eq!(value, hash(*domain, inputs), "{what}: request {i}");
        if i < 24 {
            assert_eq!(value, reference_hash(*domain, inputs), "{what}: request {i} against ark's sponge");
        }
        assert_eq!(pool.get(*b), Some(*blake3::hash(&i.to_le_bytes()).as_bytes()), "{what}: BLAKE3 {i}");
    }
}

#[test]
fn every_kernel_resolves_poseidon_requests_beside_blake3_ones() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let all = requests(&mut rng, 1000);
    for kernel in PoseidonKernel::ALL {
        let Ok(mut pool) = HashPool::new().with_poseidon_kernel(kernel) else {
            eprintln!("SKIPPED: the {kernel} Poseidon kernel is not supported on this processor");
            continue;
        };
        assert_eq!(pool.poseidon_kernel(), kernel);
        check(&mut pool, &all, &format!("{kernel}"));
        // Handles keep counting across flushes until the pool is cleared.
        let h = pool.poseidon(HashDomain::Nullifier, &[Fr::ONE, Fr::ONE]).unwrap();
        assert_eq!(h, PoseidonHandle(all.len() as u32));
        assert_eq!(pool.poseidon_result(h).unwrap(), hash(HashDomain::Nullifier, &[Fr::ONE, Fr::ONE]));
    }
}

#[test]
fn poseidon_handles_follow_the_pool_rules() {
    let mut pool = HashPool::new();
    let h = pool.poseidon(HashDomain::NullifierKey, &[Fr::from(9u64)]).unwrap();
    assert_eq!(pool.poseidon_value(h), None, "pending until a flush");
    assert_eq!(pool.poseidon_result(h).unwrap(), hash(HashDomain::NullifierKey, &[Fr::from(9u64)]));
    assert_eq!(pool.poseidon_result(PoseidonHandle(5)), Err(HashError::UnknownPoseidonHandle(5)));
    pool.clear();
    assert_eq!(pool.poseidon_value(h), None, "clear forgets every request");
    assert_eq!(pool.poseidon_result(h), Err(HashError::UnknownPoseidonHandle(0)));
}

#[test]
fn a_bounded_pool_flushes_poseidon_requests_at_its_limit() {
    let mut pool = HashPool::bounded(10);
    let handles: Vec<_> =
        (0..25u64).map(|i| pool.poseidon(HashDomain::NullifierKey, &[Fr::from(i)]).unwrap()).collect();
    assert_eq!(pool.poseidon_pending_len(), 5, "two automatic flushes of ten");
    assert!(pool.poseidon_value(handles[19]).is_some() && pool.poseidon_value(handles[20]).is_none());
    pool.flush().unwrap();
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(pool.poseidon_value(*h), Some(hash(HashDomain::NullifierKey, &[Fr::from(i as u64)])));
    }
}

#[test]
fn a_gpu_pool_resolves_poseidon_requests_too() {
    if causality_vm::gpu::test_context().is_none() {
        return;
    }
    let mut pool = HashPool::with_backend(Backend::Gpu).expect("an adapter exists, so the GPU pool must build");
    let mut rng = ChaCha8Rng::seed_from_u64(32);
    check(&mut pool, &requests(&mut rng, 100), "gpu pool");
    assert!(pool.gpu_hashed() >= 100, "the BLAKE3 requests ran on the GPU");
    assert_eq!(pool.gpu_poseidon_hashed(), 100, "and the Poseidon ones");
    assert_eq!(pool.gpu_fallbacks(), 0);

    // A flush below the threshold stays on the CPU lanes.
    let few = GPU_POSEIDON_MIN_REQUESTS - 1;
    check(&mut pool, &requests(&mut rng, few), "gpu pool, a small flush");
    assert_eq!(pool.gpu_poseidon_hashed(), 100);

    // A device fault mid-flush: the CPU recomputes it, the values are the
    // same, and the fallback is counted.
    pool.clear();
    pool.inject_faults(causality_vm::backend::FaultPlan { runs: 2, at_step: 0 });
    check(&mut pool, &requests(&mut rng, 80), "gpu pool, a failed flush");
    assert_eq!(pool.gpu_fallbacks(), 2, "the BLAKE3 flush and the Poseidon flush each failed once");
    assert_eq!(pool.gpu_poseidon_hashed(), 100, "the failed flush was not counted as the GPU's");
}
