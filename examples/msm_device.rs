//! Times the GPU MSM engine (bases resident) against arkworks on this
//! machine's CPUs. Used by scripts/device_msm.sh on a GPU machine.
//!
//! Usage: msm_device [log2 sizes...]   (default: 16 18 20 22)

use std::time::{Duration, Instant};

use ark_bn254::{Fr, G1Affine, G1Projective};
use ark_ec::{CurveGroup, PrimeGroup, VariableBaseMSM};
use ark_ff::UniformRand;
use causality_vm::backend::Backend;
use causality_vm::gpu::GpuContext;
use causality_vm::msm::gpu::FieldPath;
use causality_vm::msm::MsmEngine;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

/// Distinct bases quickly: each rayon chunk walks P, P + G, P + 2G, ...
fn bases(n: usize) -> Vec<G1Affine> {
    let chunk = 1 << 14;
    let points: Vec<G1Projective> = (0..n.div_ceil(chunk))
        .into_par_iter()
        .flat_map_iter(|c| {
            let mut rng = ChaCha20Rng::seed_from_u64(c as u64);
            let g = G1Projective::generator();
            let mut p = g * Fr::rand(&mut rng);
            let len = chunk.min(n - c * chunk);
            (0..len).map(move |_| {
                p += g;
                p
            })
        })
        .collect();
    G1Projective::normalize_batch(&points)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    causality_vm::tuning::Tuning::from_env()
        .and_then(causality_vm::tuning::Tuning::apply)
        .expect("CVM_* tuning variables");
    let sizes: Vec<u32> = {
        let args: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
        if args.is_empty() {
            vec![16, 18, 20, 22]
        } else {
            args
        }
    };
    let ctx = GpuContext::shared()?;
    println!("adapter: {}", ctx.describe());
    println!(
        "driver: {} {}; SHADER_INT64: {}; field path: {:?}; max storage binding: {} MiB",
        ctx.info.driver,
        ctx.info.driver_info,
        ctx.features.contains(wgpu::Features::SHADER_INT64),
        FieldPath::best_for(ctx.features),
        ctx.limits.max_storage_buffer_binding_size >> 20
    );
    println!("cpu threads: {}", rayon::current_num_threads());
    let t = Instant::now();
    let engine = MsmEngine::new(Backend::Gpu)?;
    println!("pipeline compile: {:.0} ms", ms(t.elapsed()));

    let mut rows = Vec::new();
    for log in sizes {
        let n = 1usize << log;
        let t = Instant::now();
        let points = bases(n);
        let mut rng = ChaCha20Rng::seed_from_u64(log as u64);
        let scalars: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
        println!("2^{log}: inputs generated in {:.0} ms", ms(t.elapsed()));

        let t = Instant::now();
        let set = engine.upload_g1(points.clone())?;
        let upload = t.elapsed();
        // The first run allocates the workspace; time the ones after it.
        let first = engine.msm_g1_resident(&set, &scalars)?;
        let runs = if log <= 20 { 5 } else { 3 };
        let gpu = median(
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    let r = engine.msm_g1_resident(&set, &scalars);
                    (t.elapsed(), r)
                })
                .map(|(d, r)| r.map(|_| d))
                .collect::<Result<Vec<_>, _>>()?,
        );
        let t = Instant::now();
        let expected = G1Projective::msm_unchecked(&points, &scalars);
        let ark = t.elapsed();
        let ok = first.into_affine() == expected.into_affine();
        println!(
            "2^{log}: gpu resident {:.2} ms, upload+validate {:.0} ms, arkworks {:.1} ms, match {ok}",
            ms(gpu),
            ms(upload),
            ms(ark)
        );
        rows.push((log, gpu, upload, ark, ok));
    }

    println!("\n| points | GPU resident (ms) | upload + validate (ms) | arkworks CPU (ms) | speed-up | equal |");
    println!("|---|---|---|---|---|---|");
    for (log, gpu, upload, ark, ok) in rows {
        println!(
            "| 2^{log} | {:.2} | {:.0} | {:.1} | {:.1}x | {ok} |",
            ms(gpu),
            ms(upload),
            ms(ark),
            ark.as_secs_f64() / gpu.as_secs_f64()
        );
    }
    Ok(())
}
