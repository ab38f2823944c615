//! Bulk filing (`HashPool::hash_fixed`) and long runs of same-length requests
//! against the blake3 crate: every kernel, batch sizes around the lane widths,
//! message lengths at the block and chunk edges, bounded pools, mixing bulk
//! and single requests, and the errors for input that is not whole messages.

use causality_vm::hash::{HandleRange, HashError, HashPool, Kernel};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const COUNTS: [usize; 10] = [0, 1, 2, 3, 31, 32, 33, 255, 256, 257];

fn random_bytes(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rng.fill_bytes(&mut data);
    data
}

fn expected(data: &[u8], len: usize) -> Vec<[u8; 32]> {
    data.chunks_exact(len).map(|m| *blake3::hash(m).as_bytes()).collect()
}

#[test]
fn bulk_runs_mixed_with_single_requests_keep_request_order() {
    let mut rng = ChaCha8Rng::seed_from_u64(32);
    for kernel in Kernel::supported() {
        let mut pool = HashPool::with_kernel(kernel).unwrap();
        let mut want = Vec::new();
        let mut ranges: Vec<HandleRange> = Vec::new();
        for round in 0..40 {
            let len = [64, 64, 32, 7, 1024, 1025, 0][round % 7];
            let count = rng.gen_range(0..300);
            if len > 0 {
                let data = random_bytes(&mut rng, len * count);
                ranges.push(pool.hash_fixed(&data, len).unwrap());
                want.extend(expected(&data, len));
            }
            // Single requests between the runs: plain (may extend the run),
            // keyed and derive-key (never do).
            let single = random_bytes(&mut rng, len);
            pool.hash(&single);
            want.push(*blake3::hash(&single).as_bytes());
            let key: [u8; 32] = rng.gen();
            pool.keyed_hash(&key, &single);
            want.push(*blake3::keyed_hash(&key, &single).as_bytes());
            pool.derive_key("cvm bulk test", &single);
            want.push(blake3::derive_key("cvm bulk test", &single));
        }
        pool.flush().unwrap();
        let all = HandleRange { start: 0, len: want.len() as u32 };
        assert_eq!(pool.get_range(all).unwrap(), want, "{kernel}");
        for range in ranges {
            assert_eq!(pool.get_range(range).map(<[_]>::len), Some(range.len()));
        }
    }
}

#[test]
fn many_single_requests_of_one_length_share_a_run() {
    // Plain requests filed one by one merge into one run; keyed ones in a
    // row form runs of their own (the lanes path with a key).
    let mut rng = ChaCha8Rng::seed_from_u64(33);
    let key: [u8; 32] = rng.gen();
    for kernel in Kernel::supported() {
        for count in COUNTS {
            let mut pool = HashPool::with_kernel(kernel).unwrap();
            let mut want = Vec::new();
            let mut handles = Vec::new();
            for i in 0..3 * count {
                let message = random_bytes(&mut rng, 64);
                if i < 2 * count {
                    handles.push(pool.hash(&message));
                    want.push(*blake3::hash(&message).as_bytes());
                } else {
                    handles.push(pool.keyed_hash(&key, &message));
                    want.push(*blake3::keyed_hash(&key, &message).as_bytes());
                }
            }
            pool.flush().unwrap();
            let got: Vec<[u8; 32]> = handles.iter().map(|h| pool.get(*h).unwrap()).collect();
            assert_eq!(got, want, "{kernel} {count}");
        }
    }
}

#[test]
fn a_bounded_pool_splits_a_bulk_filing_at_its_limit() {
    let mut rng = ChaCha8Rng::seed_from_u64(34);
    let data = random_bytes(&mut rng, 64 * 1000);
    let mut pool = HashPool::bounded(300);
    pool.hash(b"before");
    let range = pool.hash_fixed(&data, 64).unwrap();
    assert_eq!(range.start, 1);
    // 1 + 1000 requests through a limit of 300: three self-flushes, 101 left.
    assert_eq!(pool.pending_len(), 101);
    assert!(pool.get_range(range).is_none(), "the tail is still pending");
    assert_eq!(pool.get(range.get(0).unwrap()), Some(*blake3::hash(&data[..64]).as_bytes()));
    pool.flush().unwrap();
    assert_eq!(pool.get_range(range).unwrap(), expected(&data, 64));
}

#[test]
fn a_hundred_thousand_bulk_messages() {
    let mut rng = ChaCha8Rng::seed_from_u64(35);
    let data = random_bytes(&mut rng, 64 * 100_000);
    let mut pool = HashPool::new();
    let first = pool.hash_fixed(&data[..64 * 40_000], 64).unwrap();
    let second = pool.hash_fixed(&data[64 * 40_000..], 64).unwrap();
    assert_eq!(second.start, 40_000);
    pool.flush().unwrap();
    let want = expected(&data, 64);
    assert_eq!(pool.get_range(first).unwrap(), &want[..40_000]);
    assert_eq!(pool.get_range(second).unwrap(), &want[40_000..]);
}

#[test]
fn input_that_is_not_whole_messages_is_rejected_and_files_nothing() {
    let mut pool = HashPool::new();
    let kept = pool.hash(b"kept");
    for (len, message_len) in [(65, 64), (10, 0), (0, 0), (1023, 1024)] {
        let err = pool.hash_fixed(&vec![7u8; len], message_len).unwrap_err();
        assert_eq!(err, HashError::NotWholeMessages { data_len: len, message_len });
        assert!(err.to_string().contains(&format!("{len} bytes")), "{err}");
    }
    assert_eq!(pool.pending_len(), 1);
    // Zero messages is not an error: an empty range.
    let empty = pool.hash_fixed(&[], 64).unwrap();
    assert!(empty.is_empty() && empty.get(0).is_none());
    assert_eq!(pool.digest(kept).unwrap(), *blake3::hash(b"kept").as_bytes());
    assert_eq!(pool.get_range(empty), Some(&[][..]));
}

#[test]
fn a_big_bulk_filing_into_an_empty_cpu_pool_is_hashed_in_place() {
    use causality_vm::hash::EAGER_MIN_MESSAGES;
    let mut rng = ChaCha8Rng::seed_from_u64(36);
    for kernel in Kernel::supported() {
        for (len, count) in
            [(64, EAGER_MIN_MESSAGES - 1), (64, EAGER_MIN_MESSAGES), (3, EAGER_MIN_MESSAGES + 1), (1025, 4200)]
        {
            let data = random_bytes(&mut rng, len * count);
            let mut pool = HashPool::with_kernel(kernel).unwrap();
            let range = pool.hash_fixed(&data, len).unwrap();
            let eager = count >= EAGER_MIN_MESSAGES;
            assert_eq!(pool.pending_len(), if eager { 0 } else { count }, "{kernel} {count} x {len}B");
            assert_eq!(pool.get_range(range).is_some(), eager);
            // A request filed after it gets the next handle and resolves at the flush.
            let after = pool.hash(b"after");
            assert_eq!(after.0 as usize, count);
            pool.flush().unwrap();
            assert_eq!(pool.get_range(range).unwrap(), expected(&data, len), "{kernel} {count} x {len}B");
            assert_eq!(pool.get(after), Some(*blake3::hash(b"after").as_bytes()));
        }
    }
}

#[test]
fn a_big_bulk_filing_behind_pending_requests_keeps_request_order() {
    let mut rng = ChaCha8Rng::seed_from_u64(37);
    let data = random_bytes(&mut rng, 64 * 10_000);
    let mut pool = HashPool::new();
    let first = pool.hash(b"first");
    let range = pool.hash_fixed(&data, 64).unwrap();
    // Something was pending, so the filing waits for the flush (one batch).
    assert_eq!((range.start, pool.pending_len()), (1, 10_001));
    pool.flush().unwrap();
    assert_eq!(pool.get(first), Some(*blake3::hash(b"first").as_bytes()));
    assert_eq!(pool.get_range(range).unwrap(), expected(&data, 64));
}

#[test]
fn a_big_bulk_filing_after_an_earlier_flush_continues_the_handles() {
    let mut rng = ChaCha8Rng::seed_from_u64(38);
    let mut pool = HashPool::new();
    let early = pool.hash(b"early");
    pool.flush().unwrap();
    let data = random_bytes(&mut rng, 64 * 5000);
    let range = pool.hash_fixed(&data, 64).unwrap();
    assert_eq!((range.start, pool.pending_len()), (1, 0), "hashed in place, after the resolved request");
    let again = pool.hash_fixed(&data, 64).unwrap();
    assert_eq!(again.start, 5001);
    assert_eq!(pool.get(early), Some(*blake3::hash(b"early").as_bytes()));
    assert_eq!(pool.get_range(range).unwrap(), expected(&data, 64));
    assert_eq!(pool.get_range(again).unwrap(), expected(&data, 64));
}
