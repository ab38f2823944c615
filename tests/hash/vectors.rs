//! The official BLAKE3 test vectors on every backend: every CPU kernel this
//! processor has, and the GPU when an adapter exists.

use causality_vm::hash::{HashPool, Kernel};
use causality_vm::Backend;

struct Case {
    input_len: usize,
    hash: [u8; 32],
    keyed_hash: [u8; 32],
    derive_key: [u8; 32],
}

fn first_32(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex in vectors");
    }
    out
}

fn vectors() -> (Vec<Case>, [u8; 32], String) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/blake3.json"))
        .expect("tests/vectors/blake3.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let key: [u8; 32] = json["key"].as_str().unwrap().as_bytes().try_into().expect("32-byte key");
    let context = json["context_string"].as_str().unwrap().to_string();
    let cases = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            input_len: c["input_len"].as_u64().unwrap() as usize,
            hash: first_32(c["hash"].as_str().unwrap()),
            keyed_hash: first_32(c["keyed_hash"].as_str().unwrap()),
            derive_key: first_32(c["derive_key"].as_str().unwrap()),
        })
        .collect();
    (cases, key, context)
}

fn input(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn check_pool(mut pool: HashPool, what: &str) {
    let (cases, key, context) = vectors();
    assert!(cases.len() >= 30, "the vector file lists every length class");
    let handles: Vec<_> = cases
        .iter()
        .map(|c| {
            let data = input(c.input_len);
            (pool.hash(&data), pool.keyed_hash(&key, &data), pool.derive_key(&context, &data))
        })
        .collect();
    pool.flush().unwrap();
    for (c, (h, k, d)) in cases.iter().zip(handles) {
        assert_eq!(pool.get(h), Some(c.hash), "{what}: hash of {} bytes", c.input_len);
        assert_eq!(pool.get(k), Some(c.keyed_hash), "{what}: keyed_hash of {} bytes", c.input_len);
        assert_eq!(pool.get(d), Some(c.derive_key), "{what}: derive_key of {} bytes", c.input_len);
    }
}

#[test]
fn every_cpu_kernel_passes_the_official_vectors() {
    for kernel in Kernel::supported() {
        check_pool(HashPool::with_kernel(kernel).unwrap(), &format!("cpu {kernel}"));
    }
}

#[test]
fn modes_one_request_at_a_time_pass_the_official_vectors() {
    // One length per flush: the uniform-length fast path in every mode.
    let (cases, key, context) = vectors();
    let mut pool = HashPool::new();
    for c in &cases {
        let data = input(c.input_len);
        let h = pool.keyed_hash(&key, &data);
        assert_eq!(pool.digest(h).unwrap(), c.keyed_hash, "keyed {}", c.input_len);
        let d = pool.derive_key(&context, &data);
        assert_eq!(pool.digest(d).unwrap(), c.derive_key, "derive {}", c.input_len);
    }
}

#[test]
fn gpu_passes_the_official_vectors() {
    if causality_vm::gpu::test_context().is_none() {
        return;
    }
    check_pool(HashPool::with_backend(Backend::Gpu).unwrap(), "gpu");
}
