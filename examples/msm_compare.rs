//! Side-by-side timing of arkworks' MSM and our CPU engine, a few runs each,
//! for sizes too slow for criterion's ten samples (G2 at 2^20).
//!
//! `cargo run --release --example msm_compare -- [g1|g2] LOG_SIZE [RUNS]`

#[path = "../tests/support/msm.rs"]
mod msm_support;

use std::time::{Duration, Instant};

use ark_bn254::Fr;
use ark_ec::short_weierstrass::{Affine, Projective};
use ark_ec::VariableBaseMSM;
use causality_vm::msm::cpu::{CpuMsm, MsmCurve};

fn inputs<P: MsmCurve>(n: usize) -> (Vec<Affine<P>>, Vec<Fr>) {
    msm_support::random_inputs(42, n)
}

/// CPU time of the whole process (all threads), from /proc/self/stat (Linux), in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    ticks / 100.0
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn compare<P: MsmCurve>(label: &str, log: u32, runs: usize) {
    let (bases, scalars) = inputs::<P>(1 << log);
    let engine = match std::env::var("CVM_MSM_C").ok().and_then(|c| c.parse().ok()) {
        Some(c) => CpuMsm::new().with_window_bits(c),
        None => CpuMsm::new(),
    };
    let mut ark = Vec::new();
    let mut ours = Vec::new();
    let (mut ark_cpu, mut ours_cpu) = (0.0, 0.0);
    // CVM_ONLY_OURS=1 replaces arkworks by a second run of ours (profiling).
    let only_ours = std::env::var("CVM_ONLY_OURS").is_ok();
    for _ in 0..runs {
        // Alternate the two so machine noise hits both alike.
        let (t, c) = (Instant::now(), cpu_seconds());
        let expected = if only_ours {
            engine.msm(&bases, &scalars)
        } else {
            Projective::<P>::msm(&bases, &scalars).unwrap_or_default()
        };
        ark.push(t.elapsed());
        ark_cpu += cpu_seconds() - c;
        let (t, c) = (Instant::now(), cpu_seconds());
        let got = engine.msm(&bases, &scalars);
        ours.push(t.elapsed());
        ours_cpu += cpu_seconds() - c;
        assert_eq!(got, expected, "results differ");
    }
    let (a, o) = (median(ark), median(ours));
    println!(
        "{label} 2^{log}: wall median arkworks {:.1} ms, ours {:.1} ms, ratio {:.3}; \
         cpu total arkworks {:.2} s, ours {:.2} s, ratio {:.3} ({} runs, {} threads)",
        a.as_secs_f64() * 1e3,
        o.as_secs_f64() * 1e3,
        o.as_secs_f64() / a.as_secs_f64(),
        ark_cpu,
        ours_cpu,
        ours_cpu / ark_cpu,
        runs,
        engine.threads()
    );
}

fn main() {
    causality_vm::tuning::Tuning::from_env()
        .and_then(causality_vm::tuning::Tuning::apply)
        .expect("CVM_* tuning variables");
    let args: Vec<String> = std::env::args().collect();
    let group = args.get(1).map(String::as_str).unwrap_or("g1");
    let log: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    let runs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    match group {
        "g2" => compare::<ark_bn254::g2::Config>("G2", log, runs),
        _ => compare::<ark_bn254::g1::Config>("G1", log, runs),
    }
}
