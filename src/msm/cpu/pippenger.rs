//! The bucket method over GLV halves: split the scalars, pick the windows,
//! run one bucket accumulation per (window, chunk) task in parallel, then
//! combine the window sums with doublings.

use ark_bn254::Fr;
use ark_ec::scalar_mul::glv::GLVConfig;
use ark_ec::short_weierstrass::{Affine, Projective};
use ark_ec::AffineRepr;
use ark_ff::{AdditiveGroup, Zero};
use rayon::prelude::*;

use super::bucket::BucketAccumulator;
use super::digits::{max3, DigitEncoder, DigitSource};
use super::field::FastSub;
use super::glv::{GlvSplitter, SignedHalf};
use super::window::{self, Plan};

/// The curves our engine runs on: BN254's G1 and G2 (both have a GLV endomorphism).
pub trait MsmCurve: GLVConfig<ScalarField = Fr, BaseField: FastSub> {}
impl<P: GLVConfig<ScalarField = Fr, BaseField: FastSub>> MsmCurve for P {}

/// sum_i scalars[i] * bases[i], given `endo[i]` = phi(bases[i]).
/// Runs on the current rayon pool with `threads` threads.
pub fn msm<P: MsmCurve>(
    bases: &[Affine<P>],
    endo: &[Affine<P>],
    scalars: &[Fr],
    threads: usize,
    forced_c: Option<u32>,
) -> Projective<P> {
    let n = bases.len().min(scalars.len()).min(endo.len());
    if n == 0 {
        return Projective::zero();
    }
    let splitter = GlvSplitter::new::<P>();
    let halves: Vec<(SignedHalf, SignedHalf)> = (0..n)
        .into_par_iter()
        .with_min_len(1024)
        .map(|i| {
            // A point at infinity contributes nothing: give it zero digits.
            if bases[i].is_zero() {
                (SignedHalf::default(), SignedHalf::default())
            } else {
                splitter.split(&scalars[i])
            }
        })
        .collect();
    let max = halves.par_iter().map(|(a, b)| max3(a.magnitude, b.magnitude)).reduce(|| [0u64; 3], max3);
    if max == [0; 3] {
        return Projective::zero();
    }
    let plan = window::plan(2 * n, &max, threads, forced_c);
    let encoder = DigitEncoder::new(plan.windows);
    let sources: Vec<[DigitSource; 2]> =
        halves.par_iter().with_min_len(1024).map(|(a, b)| [encoder.encode(a), encoder.encode(b)]).collect();
    drop(halves);

    let top_buckets = plan.windows.top_digit_max(&max) as usize;
    let tasks = plan.tasks();
    let sums: Vec<(u32, Projective<P>)> = tasks
        .par_iter()
        .with_max_len(1)
        .map(|task| {
            let chunk_len = n.div_ceil(task.of);
            let range = (task.chunk * chunk_len).min(n)..((task.chunk + 1) * chunk_len).min(n);
            let window = task.window;
            let buckets = if window + 1 == plan.windows.count { top_buckets.max(1) } else { plan.windows.buckets() };
            let sum = window_sum(&plan, window, buckets, &bases[range.clone()], &endo[range.clone()], &sources[range]);
            (window, sum)
        })
        .collect();
    combine(&plan, &sums)
}

/// sum_b (b + 1) * bucket_b for one window over one chunk of points.
fn window_sum<P: MsmCurve>(
    plan: &Plan,
    window: u32,
    buckets: usize,
    bases: &[Affine<P>],
    endo: &[Affine<P>],
    sources: &[[DigitSource; 2]],
) -> Projective<P> {
    let mut acc = BucketAccumulator::<P>::new(buckets, 2 * bases.len());
    for ((base, image), pair) in bases.iter().zip(endo).zip(sources) {
        for (point, source) in [(base, &pair[0]), (image, &pair[1])] {
            let digit = source.digit(plan.windows, window);
            if digit == 0 {
                continue;
            }
            // The sign travels with the point: negated only where its y is used.
            let negate = (digit < 0) ^ source.negate_point();
            acc.add(digit.unsigned_abs() - 1, point, negate);
        }
    }
    acc.finish()
}

/// sum_w 2^(c*w) * S_w, where S_w adds up the chunk sums of window w.
fn combine<P: MsmCurve>(plan: &Plan, sums: &[(u32, Projective<P>)]) -> Projective<P> {
    let mut per_window = vec![Projective::<P>::zero(); plan.windows.count as usize];
    for (window, sum) in sums {
        per_window[*window as usize] += sum;
    }
    let mut total = Projective::<P>::zero();
    for window_sum in per_window.iter().rev() {
        for _ in 0..plan.windows.c {
            total.double_in_place();
        }
        total += window_sum;
    }
    total
}
