//! Eight Poseidon permutations at once on AVX-512 IFMA lanes (`crypto::ifma`'s
//! [`Fr8`]), in the same sparse round schedule as the scalar permutation, so
//! every lane's result is bit-identical to [`super::permutation::permute`].
//!
//! Every state element stays below 2q between operations (the lane field's
//! lazy bound); only the squeezed element is made canonical.

use std::sync::OnceLock;

use ark_bn254::{Fr, FrConfig};

use super::params::{config, FULL_ROUNDS};
use super::permutation::{schedule, Matrix};
use crate::crypto::ifma::{limbs52, Fr8};

/// A constant's limbs, splatted into all lanes where it is used.
type Limbs = [u64; 5];

/// [`super::permutation`]'s schedule with every constant in radix 2^52.
struct LaneSchedule {
    /// The full rounds' constants, first half then second half.
    full: Vec<[Limbs; 3]>,
    mds: [[Limbs; 3]; 3],
    pre: [[Limbs; 3]; 3],
    first: [Limbs; 3],
    /// Per partial round: m00, the row's two entries, the column's two.
    sparse: Vec<([Limbs; 3], [Limbs; 2])>,
    /// Per partial round k ≥ 1 (at k − 1), its carried constants.
    partial: Vec<[Limbs; 3]>,
}

fn limbs3(v: &[Fr; 3]) -> [Limbs; 3] {
    v.each_ref().map(limbs52::<FrConfig>)
}

fn matrix_limbs(m: &Matrix) -> [[Limbs; 3]; 3] {
    m.each_ref().map(limbs3)
}

fn lane_schedule() -> &'static LaneSchedule {
    static SCHEDULE: OnceLock<LaneSchedule> = OnceLock::new();
    SCHEDULE.get_or_init(|| {
        let (c, s) = (config(), schedule());
        let half = FULL_ROUNDS / 2;
        let second = c.ark.len() - half;
        let full = c.ark[..half].iter().chain(&c.ark[second..]).map(|k| limbs3(&[k[0], k[1], k[2]])).collect();
        LaneSchedule {
            full,
            mds: matrix_limbs(&s.mds),
            pre: matrix_limbs(&s.pre),
            first: limbs3(&s.first_constants),
            sparse: s
                .sparse
                .iter()
                .map(|m| (limbs3(&[m.m00, m.row[0], m.row[1]]), m.col.each_ref().map(limbs52::<FrConfig>)))
                .collect(),
            partial: s.constants.iter().map(limbs3).collect(),
        }
    })
}

/// Lane groups run side by side on one thread. The partial rounds are a
/// chain of dependent products (the S-box on one element), so a second,
/// independent group might fill the multiplier while the first waits; on
/// Zen 4 two groups measured no faster than one (9.2× against 9.3-10.1× the
/// single-threaded loop, within the machine's drift): out-of-order
/// execution already overlaps enough. One group wastes fewer lanes on a
/// short batch.
pub(super) const GROUPS: usize = 1;
/// Sponges per call of [`sponge_lanes`].
pub(super) const LANES: usize = 8 * GROUPS;

type State = [[Fr8; 3]; GROUPS];

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn pow5(x: &[Fr8; GROUPS]) -> [Fr8; GROUPS] {
    let mut x2 = *x;
    for g in 0..GROUPS {
        x2[g] = x[g].mul(&x[g]);
    }
    let mut x4 = x2;
    for g in 0..GROUPS {
        x4[g] = x2[g].mul(&x2[g]);
    }
    let mut x5 = x4;
    for g in 0..GROUPS {
        x5[g] = x[g].mul(&x4[g]);
    }
    x5
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn add_constants(state: &mut State, constants: &[Limbs; 3]) {
    for (i, k) in constants.iter().enumerate() {
        let k = Fr8::splat_limbs(*k);
        for s in state.iter_mut() {
            s[i] = s[i].add_lazy(&k);
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn times(m: &[[Limbs; 3]; 3], state: &mut State) {
    let v = *state;
    for (i, row) in m.iter().enumerate() {
        let row = row.map(|k| Fr8::splat_limbs(k));
        for (s, v) in state.iter_mut().zip(&v) {
            let p0 = row[0].mul(&v[0]);
            let p1 = row[1].mul(&v[1]);
            let p2 = row[2].mul(&v[2]);
            s[i] = Fr8::sum_lazy([&p0, &p1, &p2]);
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn full_round(state: &mut State, constants: &[Limbs; 3], mds: &[[Limbs; 3]; 3]) {
    add_constants(state, constants);
    for i in 0..3 {
        let x = pow5(&state.map(|s| s[i]));
        for (s, x) in state.iter_mut().zip(x) {
            s[i] = x;
        }
    }
    times(mds, state);
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn partial_round(state: &mut State, row: &[Limbs; 3], col: &[Limbs; 2]) {
    let x0 = pow5(&state.map(|s| s[0]));
    let row = row.map(|k| Fr8::splat_limbs(k));
    let col = col.map(|k| Fr8::splat_limbs(k));
    for (s, x0) in state.iter_mut().zip(&x0) {
        let p0 = row[0].mul(x0);
        let p1 = row[1].mul(&s[1]);
        let p2 = row[2].mul(&s[2]);
        let c1 = col[0].mul(x0);
        let c2 = col[1].mul(x0);
        s[0] = Fr8::sum_lazy([&p0, &p1, &p2]);
        s[1] = s[1].add_lazy(&c1);
        s[2] = s[2].add_lazy(&c2);
    }
}

/// The permutation of every lane's state (values < 2q in, < 2q out).
#[target_feature(enable = "avx512f,avx512ifma")]
fn permute(state: &mut State, k: &LaneSchedule) {
    let half = FULL_ROUNDS / 2;
    for constants in &k.full[..half] {
        full_round(state, constants, &k.mds);
    }
    add_constants(state, &k.first);
    times(&k.pre, state);
    for (round, (row, col)) in k.sparse.iter().enumerate() {
        if let Some(constants) = round.checked_sub(1).map(|i| &k.partial[i]) {
            add_constants(state, constants);
        }
        partial_round(state, row, col);
    }
    for constants in &k.full[half..] {
        full_round(state, constants, &k.mds);
    }
}

/// One sponge per lane: lane l starts from `capacity[l]`, absorbs
/// `chunk(j, l)` (its j-th pair of inputs, zeros past its end) before
/// permutation j < `permutations`, and its squeezed element after
/// permutation `squeeze_at[l]` is its result. Lanes with fewer chunks simply
/// run extra permutations whose output nobody reads.
///
/// # Safety
/// The processor must have AVX-512F and AVX-512 IFMA.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) unsafe fn sponge_lanes(
    capacity: &[Fr; LANES],
    permutations: usize,
    squeeze_at: &[usize; LANES],
    mut chunk: impl FnMut(usize, usize) -> [Fr; 2],
) -> [Fr; LANES] {
    let k = lane_schedule();
    let group_of = |values: &[Fr], g: usize| -> [Fr; 8] { std::array::from_fn(|l| values[8 * g + l]) };
    let mut state: State =
        std::array::from_fn(|g| [Fr8::load(&Fr8::from_scalars(&group_of(capacity, g))), Fr8::zero(), Fr8::zero()]);
    let mut out = [Fr::from(0u64); LANES];
    for j in 0..permutations {
        let pairs: [[Fr; 2]; LANES] = std::array::from_fn(|lane| chunk(j, lane));
        for (g, s) in state.iter_mut().enumerate() {
            for slot in 0..2 {
                let inputs: [Fr; 8] = std::array::from_fn(|l| pairs[8 * g + l][slot]);
                s[1 + slot] = s[1 + slot].add_lazy(&Fr8::load(&Fr8::from_scalars(&inputs)));
            }
        }
        permute(&mut state, k);
        if squeeze_at.contains(&j) {
            for (g, s) in state.iter().enumerate() {
                let squeezed = Fr8::to_scalars(&s[1].canonical().store());
                for l in (0..8).filter(|&l| squeeze_at[8 * g + l] == j) {
                    out[8 * g + l] = squeezed[l];
                }
            }
        }
    }
    out
}
