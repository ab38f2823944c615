use ark_bn254::{Fr, G1Projective};
use ark_ec::{CurveGroup, PrimeGroup, VariableBaseMSM};
use ark_ff::UniformRand;
use causality_vm::gpu::GpuContext;
use causality_vm::msm::gpu::{FieldPath, GpuMsm, Tuning};
use rand::SeedableRng;
use std::sync::Arc;
use std::time::Instant;
fn main() {
    let ctx = Arc::new(GpuContext::new().unwrap());
    let path = if std::env::args().nth(1).as_deref() == Some("u32") { FieldPath::U32 } else { FieldPath::U64 };
    let t = Instant::now();
    let gpu = GpuMsm::with_tuning(ctx, Tuning { field: Some(path), ..Default::default() }).unwrap();
    println!("compile {:?}", t.elapsed());
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    for n in [1usize, 2, 3, 33, 100, 1000] {
        let pts: Vec<G1Projective> = (0..n).map(|_| G1Projective::generator() * Fr::rand(&mut rng)).collect();
        let bases = G1Projective::normalize_batch(&pts);
        let scalars: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
        let t = Instant::now();
        let got = gpu.msm(&bases, &scalars);
        let el = t.elapsed();
        let exp = G1Projective::msm_unchecked(&bases, &scalars);
        println!("n={n} {:?} ok={}", el, got.as_ref().map(|g| *g == exp).unwrap_or(false));
        if let Err(e) = got { println!("{e}"); }
    }
}
