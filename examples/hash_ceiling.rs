//! Many small messages against the cores' ceiling: the blake3 crate hashing
//! one buffer of the same total size with `Hasher::update_rayon` (a 64-byte
//! message is one compression, the same work per byte as a chunk's block).
//!
//! Alternates the cases in rounds and reports each case's best time and its
//! ratio to the ceiling measured in the same run, per CPU kernel, under the
//! `cvm` binary's allocator settings:
//!
//! ```text
//! cargo run --release --example hash_ceiling -- [messages] [message_len] [rounds] [kernel]
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use causality_vm::hash::{self, HashPool, Kernel};

/// As the `cvm` binary allocates (`src/bin/cvm/allocator.rs`), so the
/// allocating `hash_chunks` reuses the pages an earlier call freed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../src/bin/cvm/allocator.rs"]
mod allocator;

fn best(times: &[Duration]) -> Duration {
    *times.iter().min().expect("at least one round")
}

fn main() {
    allocator::configure();
    causality_vm::tuning::Tuning::from_env()
        .and_then(causality_vm::tuning::Tuning::apply)
        .expect("CVM_* tuning variables");
    let mut args = std::env::args().skip(1).take(3).map(|a| a.parse::<usize>().expect("arguments are numbers"));
    let count = args.next().unwrap_or(1 << 20);
    let len = args.next().unwrap_or(64);
    let rounds = args.next().unwrap_or(15);
    let data: Vec<u8> = (0..count * len).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8).collect();
    let mut out = vec![[0u8; 32]; count];
    let only = std::env::args().nth(4);
    let kernels: Vec<Kernel> =
        Kernel::supported().into_iter().filter(|k| only.as_ref().is_none_or(|name| *name == k.to_string())).collect();
    println!(
        "{count} x {len}-byte messages ({} MB), {} rayon threads, detected kernel {}",
        (count * len) >> 20,
        rayon::current_num_threads(),
        Kernel::detect()
    );

    let mut names: Vec<String> = vec!["update_rayon (ceiling)".into(), "hash_chunks".into()];
    names.extend(kernels.iter().map(|k| format!("hash_chunks_into [{k}]")));
    names.extend(kernels.iter().map(|k| format!("pool hash_fixed + flush [{k}]")));
    let mut pools: Vec<HashPool> = kernels.iter().map(|&k| HashPool::with_kernel(k).expect("supported")).collect();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];

    for _ in 0..rounds {
        let mut case = 0;
        let mut time = |case: &mut usize, f: &mut dyn FnMut()| {
            let start = Instant::now();
            f();
            times[*case].push(start.elapsed());
            *case += 1;
        };
        time(&mut case, &mut || {
            black_box(blake3::Hasher::new().update_rayon(black_box(&data)).finalize());
        });
        time(&mut case, &mut || {
            black_box(hash::hash_chunks(black_box(&data), len));
        });
        for &kernel in &kernels {
            time(&mut case, &mut || hash::hash_chunks_into_with(kernel, black_box(&data), len, &mut out));
        }
        for pool in pools.iter_mut() {
            time(&mut case, &mut || {
                let range = pool.hash_fixed(&data, len).expect("whole messages");
                pool.flush().expect("the CPU pool never fails");
                black_box(pool.get_range(range));
                pool.clear();
            });
        }
    }
    let ceiling = best(&times[0]);
    for (name, t) in names.iter().zip(&times) {
        let b = best(t);
        println!(
            "{name:<40} {:>9.2} ms  {:>6.0} MB/s  {:.2}x of the ceiling",
            b.as_secs_f64() * 1e3,
            (count * len) as f64 / b.as_secs_f64() / 1e6,
            ceiling.as_secs_f64() / b.as_secs_f64()
        );
    }
}
