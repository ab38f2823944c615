//! The CPU pool against the blake3 crate: every length, every kernel, batch
//! sizes around the lane widths, bounded pools, handles, Merkle roots.

use causality_vm::hash::{HashError, HashHandle, HashPool, HashRequest, Kernel};
use causality_vm::{Backend, ResolvedBackend};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod hash_support;
use hash_support::{check, every_length_requests, naive_merkle, random_request};

#[test]
fn every_length_to_2100_in_every_mode_on_every_kernel() {
    let requests = every_length_requests(&mut ChaCha8Rng::seed_from_u64(1), "cvm every length");
    for kernel in Kernel::supported() {
        check(&mut HashPool::with_kernel(kernel).unwrap(), &requests, &format!("{kernel}"));
    }
}

#[test]
fn batch_sizes_around_the_lane_widths() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for kernel in Kernel::supported() {
        for n in [0usize, 1, 2, 3, 15, 16, 17, 31, 32, 33, 255, 256, 257, 1023, 1024, 1025, 2049] {
            // One length for all (the uniform fast path) ...
            let uniform: Vec<HashRequest> = (0..n).map(|_| random_request(&mut rng, 64)).collect();
            check(&mut HashPool::with_kernel(kernel).unwrap(), &uniform, &format!("{kernel} x{n} uniform"));
            // ... and mixed lengths, including multi-chunk messages.
            let mixed: Vec<HashRequest> = (0..n)
                .map(|_| {
                    let len = rng.gen_range(0..1100);
                    random_request(&mut rng, len)
                })
                .collect();
            check(&mut HashPool::with_kernel(kernel).unwrap(), &mixed, &format!("{kernel} x{n} mixed"));
        }
    }
}

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
fn a_bounded_pool_flushes_itself_and_handles_stay_valid() {
    let mut pool = HashPool::bounded(100);
    let messages: Vec<Vec<u8>> = (0..1050u32).map(|i| i.to_le_bytes().repeat(i as usize % 40)).collect();
    let mut handles = Vec::new();
    for m in &messages {
        handles.push(pool.hash(m));
        assert!(pool.pending_len() < 100, "the pool flushed at its limit");
    }
    assert_eq!(pool.pending_len(), 50);
    assert_eq!(pool.get(handles[0]), Some(*blake3::hash(&messages[0]).as_bytes()), "resolved by the auto flush");
    assert_eq!(pool.get(handles[1049]), None, "still pending");
    pool.flush().unwrap();
    for (m, h) in messages.iter().zip(&handles) {
        assert_eq!(pool.get(*h), Some(*blake3::hash(m).as_bytes()));
    }
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
fn merkle_roots_match_the_naive_tree() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for kernel in Kernel::supported() {
        let mut pool = HashPool::with_kernel(kernel).unwrap();
        for n in (0..=70).chain([255, 256, 257, 1000, 4097]) {
            let leaves: Vec<[u8; 32]> = (0..n).map(|_| rng.gen()).collect();
            assert_eq!(pool.merkle_root(&leaves).unwrap(), naive_merkle(&leaves), "{kernel}: {n} leaves");
        }
    }
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

#[test]
fn derive_key_with_a_multi_chunk_context() {
    let context: String = (0..3000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let mut pool = HashPool::new();
    let short = pool.derive_key(&context, b"material");
    let long = pool.derive_key(&context, vec![9u8; 5000]);
    pool.flush().unwrap();
    assert_eq!(pool.get(short), Some(blake3::derive_key(&context, b"material")));
    assert_eq!(pool.get(long), Some(blake3::derive_key(&context, &[9u8; 5000])));
}
