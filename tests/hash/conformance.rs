//! One conformance suite for the hash pool, run against every backend: each
//! CPU kernel this processor has (one per instruction set) and the GPU
//! (lavapipe in CI). One set of edge cases and one seed policy (a fresh seed
//! per run, printed on failure, `CVM_TEST_SEED` to replay); what is
//! specific to one backend (GPU faults and segments, the CPU's in-place bulk
//! path) stays in `cpu.rs`, `fixed.rs` and `gpu.rs`.

use causality_vm::hash::{HashError, HashHandle, HashPool, HashRequest, Kernel};
use causality_vm::{Backend, ResolvedBackend};
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;

use crate::hash_support::{check, every_length_requests, naive_merkle, random_request};
use crate::seed;

/// A backend under test: its name and how to make a fresh pool on it.
struct Subject {
    name: String,
    make: Box<dyn Fn() -> HashPool>,
    gpu: bool,
}

impl Subject {
    fn pool(&self) -> HashPool {
        let pool = (self.make)();
        let expected = if self.gpu { ResolvedBackend::Gpu } else { ResolvedBackend::Cpu };
        assert_eq!(pool.backend(), expected, "{}", self.name);
        pool
    }

    /// After a case: a GPU backend must have done the work itself.
    fn done(&self, pool: &HashPool, case: &str) {
        if self.gpu {
            assert_eq!(pool.gpu_fallbacks(), 0, "{}: {case} fell back to the CPU", self.name);
        }
    }
}

fn cpu_subjects() -> Vec<Subject> {
    seed::require_cpu_features();
    Kernel::supported()
        .into_iter()
        .map(|kernel| Subject {
            name: format!("cpu {kernel}"),
            make: Box::new(move || HashPool::with_kernel(kernel).expect("a supported kernel")),
            gpu: false,
        })
        .collect()
}

fn conform(subject: &Subject, rng: &mut ChaCha8Rng) {
    let name = &subject.name;

    // Every length across the block and chunk edges, in all three modes.
    let mut pool = subject.pool();
    check(&mut pool, &every_length_requests(rng, "cvm conformance every length"), &format!("{name}: every length"));
    subject.done(&pool, "every length");

    // Batch sizes around every lane width and workgroup size, one length
    // and mixed lengths.
    let mut pool = subject.pool();
    for n in [0usize, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 257] {
        let uniform: Vec<HashRequest> = (0..n).map(|_| random_request(rng, 64)).collect();
        check(&mut pool, &uniform, &format!("{name}: x{n} of 64 bytes"));
        let mixed: Vec<HashRequest> = (0..n)
            .map(|_| {
                let len = rng.gen_range(0..1100);
                random_request(rng, len)
            })
            .collect();
        check(&mut pool, &mixed, &format!("{name}: x{n} mixed"));
    }
    subject.done(&pool, "batch sizes");

    // Many short messages in one flush.
    let mut pool = subject.pool();
    let many: Vec<HashRequest> = (0..50_000)
        .map(|_| {
            let len = rng.gen_range(0..=96);
            random_request(rng, len)
        })
        .collect();
    check(&mut pool, &many, &format!("{name}: 50k short"));
    subject.done(&pool, "50k short");

    // Handles stay valid across flushes.
    let mut pool = subject.pool();
    let mut filed: Vec<(HashHandle, [u8; 32])> = Vec::new();
    for round in 0..4 {
        for _ in 0..300 {
            let len = rng.gen_range(0..200);
            let request = random_request(rng, len);
            filed.push((pool.push(request.clone()), request.compute()));
        }
        pool.flush().unwrap();
        for (handle, want) in &filed {
            assert_eq!(pool.get(*handle), Some(*want), "{name}: round {round}");
        }
    }
    assert_eq!(pool.get(HashHandle(filed.len() as u32)), None, "{name}: a handle never issued");
    assert_eq!(pool.digest(HashHandle(u32::MAX)), Err(HashError::UnknownHandle(u32::MAX)), "{name}");
    subject.done(&pool, "flushes");

    // A bounded pool flushes itself; its handles stay valid.
    let mut pool = subject.pool().with_limit(64);
    let handles: Vec<HashHandle> = (0..200u32).map(|i| pool.hash(i.to_le_bytes())).collect();
    assert_eq!(pool.pending_len(), 200 - 192, "{name}: three automatic flushes");
    pool.flush().unwrap();
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(pool.get(*h), Some(*blake3::hash(&(i as u32).to_le_bytes()).as_bytes()), "{name}: bounded {i}");
    }
    subject.done(&pool, "bounded");

    // Bulk filings, with a single request between runs.
    let mut pool = subject.pool();
    for len in [1usize, 3, 32, 64, 65, 1024, 1025] {
        for count in [0usize, 1, 2, 3, 15, 16, 17, 31, 32, 33, 255, 256, 257] {
            let mut data = vec![0u8; len * count];
            rng.fill_bytes(&mut data);
            let range = pool.hash_fixed(&data, len).unwrap();
            let between = pool.hash(b"between runs");
            pool.flush().unwrap();
            let want: Vec<[u8; 32]> = data.chunks_exact(len).map(|m| *blake3::hash(m).as_bytes()).collect();
            assert_eq!(pool.get_range(range).unwrap(), want, "{name}: {count} x {len} bytes");
            assert_eq!(pool.get(between), Some(*blake3::hash(b"between runs").as_bytes()), "{name}");
            pool.clear();
        }
    }
    assert_eq!(
        pool.hash_fixed(&[0u8; 10], 3),
        Err(HashError::NotWholeMessages { data_len: 10, message_len: 3 }),
        "{name}"
    );
    subject.done(&pool, "bulk filings");

    // Merkle roots: empty, one leaf, odd levels, powers of two and beyond.
    let mut pool = subject.pool();
    for n in (0..=40).chain([63, 64, 65, 127, 128, 129, 255, 256, 257, 1000, 4097]) {
        let leaves: Vec<[u8; 32]> = (0..n).map(|_| rng.gen()).collect();
        assert_eq!(pool.merkle_root(&leaves).unwrap(), naive_merkle(&leaves), "{name}: {n} leaves");
    }
    subject.done(&pool, "merkle roots");

    // A derive-key context longer than a chunk.
    let mut pool = subject.pool();
    let context = "c".repeat(1500);
    let h = pool.derive_key(&context, b"material");
    assert_eq!(pool.digest(h).unwrap(), blake3::derive_key(&context, b"material"), "{name}: long context");
    subject.done(&pool, "long context");
}

#[test]
fn every_cpu_kernel_conforms() {
    let (mut rng, _seed) = seed::rng("every_cpu_kernel_conforms");
    let subjects = cpu_subjects();
    assert!(subjects.iter().any(|s| s.name == "cpu portable"), "the portable kernel always runs");
    for subject in &subjects {
        conform(subject, &mut rng);
    }
}

#[test]
fn the_gpu_conforms() {
    if causality_vm::gpu::test_context().is_none() {
        return;
    }
    let (mut rng, _seed) = seed::rng("the_gpu_conforms");
    let subject = Subject {
        name: "gpu".into(),
        make: Box::new(|| HashPool::with_backend(Backend::Gpu).expect("an adapter exists, so the GPU pool must build")),
        gpu: true,
    };
    conform(&subject, &mut rng);
}
