//! Times the GPU MSM engine (bases resident) against arkworks on this
//! machine's CPUs. Used by scripts/device_msm.sh on a GPU machine.
//!
//! Usage: msm_device [G1 log2 sizes...] [g2 G2 log2 sizes...]
//! (default: 16 18 20 22 g2 16 18 20)

use std::time::{Duration, Instant};

use ark_bn254::{Fr, G1Projective, G2Projective};
use ark_ec::{CurveGroup, VariableBaseMSM};
use ark_ff::UniformRand;
use causality_vm::backend::Backend;
use causality_vm::gpu::GpuContext;
use causality_vm::msm::gpu::FieldPath;
use causality_vm::msm::MsmEngine;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

/// Distinct bases quickly: each rayon chunk walks P, P + G, P + 2G, ...
fn bases<C: CurveGroup<ScalarField = Fr>>(n: usize) -> Vec<C::Affine> {
    let chunk = 1 << 14;
    let points: Vec<C> = (0..n.div_ceil(chunk))
        .into_par_iter()
        .flat_map_iter(|c| {
            let mut rng = ChaCha20Rng::seed_from_u64(c as u64);
            let g = C::generator();
            let mut p = g * Fr::rand(&mut rng);
            let len = chunk.min(n - c * chunk);
            (0..len).map(move |_| {
                p += g;
                p
            })
        })
        .collect();
    C::normalize_batch(&points)
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
    // G1 sizes, then `g2` and G2 sizes: `msm_device 16 20 g2 16`.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let split = args.iter().position(|a| a == "g2").unwrap_or(args.len());
    let logs = |args: &[String]| -> Vec<u32> { args.iter().filter_map(|a| a.parse().ok()).collect() };
    let (g1_sizes, g2_sizes) = if args.is_empty() {
        (vec![16, 18, 20, 22], vec![16, 18, 20])
    } else {
        (logs(&args[..split]), logs(args.get(split + 1..).unwrap_or(&[])))
    };
    let ctx = GpuContext::shared()?;
    println!("adapter: {}", ctx.describe());
    println!(
        "driver: {} {}; SHADER_INT64: {}; field path: {:?}; max storage binding: {} MiB",
        ctx.info.driver,
        ctx.info.driver_info,
        ctx.features.contains(wgpu::Features::SHADER_INT64),
        FieldPath::chosen_for(ctx.features),
        ctx.limits.max_storage_buffer_binding_size >> 20
    );
    println!("cpu threads: {}", rayon::current_num_threads());
    println!("msm tuning: {:?}", causality_vm::msm::MsmTuning::current());
    let t = Instant::now();
    let engine = MsmEngine::new(Backend::Gpu)?;
    println!("pipeline compile: {:.0} ms", ms(t.elapsed()));

    let engine = &engine;
    let mut rows = Vec::new();
    for log in g1_sizes {
        rows.push(measure::<G1Projective, _>("G1", log, |points| {
            let set = engine.upload_g1(points)?;
            Ok(move |scalars: &[Fr]| engine.msm_g1_resident(&set, scalars))
        })?);
    }
    for log in g2_sizes {
        rows.push(measure::<G2Projective, _>("G2", log, |points| {
            let set = engine.upload_g2(points)?;
            Ok(move |scalars: &[Fr]| engine.msm_g2_resident(&set, scalars))
        })?);
    }
    println!("gpu fallbacks: {}", engine.gpu_fallbacks());

    println!(
        "\n| group | points | GPU resident (ms) | upload + validate (ms) | arkworks CPU (ms) | speed-up | equal |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | 2^{} | {:.2} | {:.0} | {:.1} | {:.1}x | {} |",
            row.group,
            row.log,
            ms(row.gpu),
            ms(row.upload),
            ms(row.ark),
            row.ark.as_secs_f64() / row.gpu.as_secs_f64(),
            row.equal
        );
    }
    Ok(())
}

struct Row {
    group: &'static str,
    log: u32,
    gpu: Duration,
    upload: Duration,
    ark: Duration,
    equal: bool,
}

/// Upload 2^log bases of `C` with `upload` (which returns the resident
/// MSM), time the resident MSM (the first run, which allocates the
/// workspace and, for G2, compiles its pipelines, is reported apart) and
/// arkworks on the same inputs.
fn measure<C, M>(
    group: &'static str,
    log: u32,
    upload: impl FnOnce(Vec<C::Affine>) -> Result<M, causality_vm::msm::MsmError>,
) -> anyhow::Result<Row>
where
    C: CurveGroup<ScalarField = Fr> + VariableBaseMSM,
    M: Fn(&[Fr]) -> Result<C, causality_vm::msm::MsmError>,
{
    let n = 1usize << log;
    let t = Instant::now();
    let points = bases::<C>(n);
    let mut rng = ChaCha20Rng::seed_from_u64(log as u64);
    let scalars: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
    println!("{group} 2^{log}: inputs generated in {:.0} ms", ms(t.elapsed()));

    let t = Instant::now();
    let msm = upload(points.clone())?;
    let upload = t.elapsed();
    let t = Instant::now();
    let first = msm(&scalars)?;
    println!("{group} 2^{log}: first run {:.0} ms", ms(t.elapsed()));
    let runs = if log <= 20 { 5 } else { 3 };
    let gpu = median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                msm(&scalars).map(|_| t.elapsed())
            })
            .collect::<Result<Vec<_>, _>>()?,
    );
    let t = Instant::now();
    let expected = C::msm_unchecked(&points, &scalars);
    let ark = t.elapsed();
    let equal = first.into_affine() == expected.into_affine();
    println!(
        "{group} 2^{log}: gpu resident {:.2} ms, upload+validate {:.0} ms, arkworks {:.1} ms, match {equal}",
        ms(gpu),
        ms(upload),
        ms(ark)
    );
    Ok(Row { group, log, gpu, upload, ark, equal })
}
