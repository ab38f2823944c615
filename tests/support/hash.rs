//! Helpers shared by the hash pool's CPU and GPU test files.

use causality_vm::hash::{HashHandle, HashPool, HashRequest};
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;

/// A random request of `len` bytes in a random mode.
pub fn random_request(rng: &mut ChaCha8Rng, len: usize) -> HashRequest {
    let mut data = vec![0u8; len];
    rng.fill_bytes(&mut data);
    match rng.gen_range(0..3) {
        0 => HashRequest::Hash(data),
        1 => HashRequest::Keyed { key: rng.gen(), data },
        _ => HashRequest::DeriveKey { context: format!("cvm test context {}", rng.gen_range(0..4)), material: data },
    }
}

/// Every length from 0 to 2100 bytes (one chunk is 1024: the single- and
/// multi-chunk paths and their edges), each in all three modes.
pub fn every_length_requests(rng: &mut ChaCha8Rng, context: &str) -> Vec<HashRequest> {
    let mut requests = Vec::new();
    for len in 0..=2100 {
        let mut data = vec![0u8; len];
        rng.fill_bytes(&mut data);
        requests.push(HashRequest::Hash(data.clone()));
        requests.push(HashRequest::Keyed { key: rng.gen(), data: data.clone() });
        requests.push(HashRequest::DeriveKey { context: context.into(), material: data });
    }
    requests
}

/// File `requests`, flush once, and compare every digest with the blake3 crate.
pub fn check(pool: &mut HashPool, requests: &[HashRequest], what: &str) {
    let handles: Vec<HashHandle> = requests.iter().map(|r| pool.push(r.clone())).collect();
    pool.flush().unwrap();
    for (r, h) in requests.iter().zip(handles) {
        assert_eq!(pool.get(h), Some(r.compute()), "{what}: {r:?}");
    }
}

/// The Merkle rules written the slow, obvious way.
pub fn naive_merkle(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => *blake3::hash(b"").as_bytes(),
        1 => leaves[0],
        _ => {
            let next: Vec<[u8; 32]> = leaves
                .chunks(2)
                .map(
                    |pair| {
                        if pair.len() == 2 {
                            *blake3::hash(&[pair[0], pair[1]].concat()).as_bytes()
                        } else {
                            pair[0]
                        }
                    },
                )
                .collect();
            naive_merkle(&next)
        }
    }
}
