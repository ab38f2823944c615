//! Times the quotient's transforms on the GPU NTT engine against our CPU
//! plan and ark-poly on this machine's CPUs: a batch of three `to_coset`
//! transforms (the quotient's step, as the prover runs it) and one forward
//! transform, per size. The GPU's time includes its uploads and readbacks,
//! since the prover pays them. Used by scripts/device_ntt.sh on a GPU machine.
//!
//! Usage: ntt_device [log2 sizes...]   (default: 16 20 22 24)

use std::time::{Duration, Instant};

use ark_bn254::Fr;
use ark_ff::UniformRand;
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};
use causality_vm::backend::{Backend, ResolvedBackend};
use causality_vm::gpu::GpuContext;
use causality_vm::ntt::{Ntt, NttEngine, NttOp};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median of `runs` timed calls of `f` on fresh copies of `inputs`,
/// and the last call's output.
fn timed(runs: usize, inputs: &[Vec<Fr>], mut f: impl FnMut(&mut [Vec<Fr>])) -> (Duration, Vec<Vec<Fr>>) {
    let mut last = Vec::new();
    let times = (0..runs)
        .map(|_| {
            let mut values = inputs.to_vec();
            let t = Instant::now();
            f(&mut values);
            let elapsed = t.elapsed();
            last = values;
            elapsed
        })
        .collect();
    (median(times), last)
}

fn main() -> anyhow::Result<()> {
    causality_vm::tuning::Tuning::from_env()
        .and_then(causality_vm::tuning::Tuning::apply)
        .expect("CVM_* tuning variables");
    let sizes: Vec<u32> = {
        let args: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
        if args.is_empty() {
            vec![16, 20, 22, 24]
        } else {
            args
        }
    };
    let ctx = GpuContext::shared()?;
    println!("adapter: {}", ctx.describe());
    println!("max storage binding: {} MiB", ctx.limits.max_storage_buffer_binding_size >> 20);
    println!("cpu threads: {}", rayon::current_num_threads());
    let t = Instant::now();
    let gpu = NttEngine::new(Backend::Gpu)?;
    println!("pipeline compile: {:.0} ms", ms(t.elapsed()));
    let cpu = NttEngine::cpu();
    let g = Fr::from(7u64);

    let mut rows = Vec::new();
    for log in sizes {
        let n = 1usize << log;
        let plan = Ntt::new(n)?;
        let domain = Radix2EvaluationDomain::<Fr>::new(n).expect("a radix-2 size");
        let coset = domain.get_coset(g).expect("a coset");
        let inputs: Vec<Vec<Fr>> = (0..3u64)
            .map(|k| {
                let mut rng = ChaCha20Rng::seed_from_u64(log as u64 * 3 + k);
                (0..n).map(|_| Fr::rand(&mut rng)).collect()
            })
            .collect();
        let runs = if log <= 20 { 5 } else { 3 };
        let mut on_gpu = true;
        let mut run = |engine: &NttEngine, op: NttOp, values: &mut [Vec<Fr>]| {
            let mut batch: Vec<&mut [Fr]> = values.iter_mut().map(|v| v.as_mut_slice()).collect();
            let ran = engine.apply(&plan, op, &mut batch).expect("a transform of the plan's size");
            on_gpu &= engine.backend() == ResolvedBackend::Cpu || ran == ResolvedBackend::Gpu;
        };
        // Warm the device's buffers once.
        run(&gpu, NttOp::ToCoset(g), &mut inputs.clone());
        let (gpu_quotient, from_gpu) = timed(runs, &inputs, |v| run(&gpu, NttOp::ToCoset(g), v));
        let (cpu_quotient, from_cpu) = timed(runs, &inputs, |v| run(&cpu, NttOp::ToCoset(g), v));
        let (ark_quotient, from_ark) = timed(runs, &inputs, |v| {
            v.par_iter_mut().for_each(|values| {
                domain.ifft_in_place(values);
                coset.fft_in_place(values);
            })
        });
        let one = &inputs[..1];
        let (gpu_forward, _) = timed(runs, one, |v| run(&gpu, NttOp::Forward, v));
        let (cpu_forward, _) = timed(runs, one, |v| run(&cpu, NttOp::Forward, v));
        let equal = from_gpu == from_cpu && from_cpu == from_ark;
        println!(
            "2^{log}: quotient (3 x to_coset) gpu {:.2} ms, cpu {:.1} ms, ark-poly {:.1} ms; forward gpu {:.2} ms, \
             cpu {:.1} ms; equal {equal}, all on the gpu {on_gpu}",
            ms(gpu_quotient),
            ms(cpu_quotient),
            ms(ark_quotient),
            ms(gpu_forward),
            ms(cpu_forward)
        );
        rows.push((log, gpu_quotient, cpu_quotient, ark_quotient, gpu_forward, cpu_forward, equal && on_gpu));
    }

    println!("\n| points | quotient GPU (ms) | quotient CPU (ms) | ark-poly (ms) | CPU/GPU | forward GPU (ms) | forward CPU (ms) | equal, on GPU |");
    println!("|---|---|---|---|---|---|---|---|");
    for (log, gq, cq, aq, gf, cf, ok) in rows {
        println!(
            "| 2^{log} | {:.2} | {:.1} | {:.1} | {:.1}x | {:.2} | {:.1} | {ok} |",
            ms(gq),
            ms(cq),
            ms(aq),
            cq.as_secs_f64() / gq.as_secs_f64(),
            ms(gf),
            ms(cf)
        );
    }
    Ok(())
}
