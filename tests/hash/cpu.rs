//! The CPU pool against the blake3 crate, past the conformance suite: many
//! messages at once, handles and errors, the backend chosen by name.

use causality_vm::hash::{HashError, HashHandle, HashPool, HashRequest};
use causality_vm::{Backend, ResolvedBackend};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::hash_support;
use hash_support::{check, naive_merkle, random_request};

#[test]
fn a_hundred_thousand_messages() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let uniform: Vec<HashRequest> = (0..100_000).map(|_| random_request(&mut rng, 64)).collect();
    check(&mut HashPool::new(), &uniform, "100k x 64 bytes");
    let mixed: Vec<HashRequest> = (0..100_000)
        .map(|_| {
            let len = rng.gen_range(0..300);
            random_request(&mut rng, len)
        })
        .collect();
    check(&mut HashPool::new(), &mixed, "100k mixed");
}

#[test]
fn digest_flushes_and_rejects_unknown_handles() {
    let mut pool = HashPool::new();
    let h = pool.hash(b"abc");
    assert_eq!(pool.get(h), None);
    assert_eq!(pool.digest(h).unwrap(), *blake3::hash(b"abc").as_bytes());
    assert_eq!(pool.digest(HashHandle(7)), Err(HashError::UnknownHandle(7)));
    pool.clear();
    assert_eq!(pool.get(h), None, "clear forgets every request");
    assert_eq!(pool.digest(h), Err(HashError::UnknownHandle(0)));
}

#[test]
fn the_cpu_backend_is_chosen_by_name() {
    let pool = HashPool::with_backend(Backend::Cpu).unwrap();
    assert_eq!(pool.backend(), ResolvedBackend::Cpu);
    assert!(HashPool::with_backend(Backend::Auto).is_ok(), "auto always gives a pool");
}

#[test]
fn merkle_root_leaves_pending_requests_alone() {
    let mut pool = HashPool::new();
    let h = pool.hash(b"pending");
    let root = pool.merkle_root(&[[1u8; 32], [2u8; 32]]).unwrap();
    assert_eq!(root, naive_merkle(&[[1u8; 32], [2u8; 32]]));
    assert_eq!(pool.pending_len(), 1);
    assert_eq!(pool.digest(h).unwrap(), *blake3::hash(b"pending").as_bytes());
}

#[test]
fn hash_chunks_matches_the_crate() {
    let data: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 256) as u8).collect();
    for len in [1usize, 32, 63, 64, 100, 1000, 1024, 2000] {
        let whole = &data[..data.len() / len * len];
        let digests = causality_vm::hash::hash_chunks(whole, len);
        assert_eq!(digests.len(), whole.len() / len);
        for (d, m) in digests.iter().zip(whole.chunks_exact(len)) {
            assert_eq!(d, blake3::hash(m).as_bytes(), "len {len}");
        }
    }
}
