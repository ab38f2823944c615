//! Poseidon permutations side by side in SIMD lanes: eight at once on
//! AVX-512 IFMA (`crypto::ifma`'s [`Fr8`]) or four on AVX2
//! (`crypto::avx2`'s [`Fr4`]), in the same sparse round schedule as the
//! scalar permutation, so every lane's result is bit-identical to
//! [`super::permutation::permute`]. One generic round schedule serves both;
//! each kernel's entry point compiles it for its instruction set.
//!
//! Every state element stays below 2q between operations (the lane fields'
//! lazy bound); only the squeezed element is made canonical.

use std::sync::OnceLock;

use ark_bn254::{Fr, FrConfig};

use super::params::{config, FULL_ROUNDS};
use super::permutation::{schedule, Matrix};
use crate::crypto::avx2::{limbs29, Fr4};
use crate::crypto::ifma::{limbs52, Fr8};

/// The most lanes a kernel has (IFMA's eight).
pub(super) const MAX_LANES: usize = 8;

/// A vector of scalar-field elements the lane kernels run on. Its values
/// exist only inside a kernel's entry point, which runs only where the
/// processor has the instructions (`PoseidonKernel::is_supported`); the
/// methods are inlined there and compiled for them.
trait LaneField: Copy + 'static {
    const LANES: usize;
    type Limbs: Copy + Send + Sync + 'static;
    fn limbs(value: &Fr) -> Self::Limbs;
    fn schedule() -> &'static LaneSchedule<Self>;
    fn splat_limbs(limbs: Self::Limbs) -> Self;
    fn zero() -> Self;
    /// `LANES` elements, one per lane.
    fn from_scalars(values: &[Fr]) -> Self;
    /// Each lane's element, canonical, into `out` (`LANES` slots).
    fn to_scalars(&self, out: &mut [Fr]);
    fn mul(&self, b: &Self) -> Self;

    #[inline(always)]
    fn square(&self) -> Self {
        self.mul(self)
    }

    fn add_lazy(&self, b: &Self) -> Self;
    /// a0 b0 + a1 b1 + a2 b2, below 2q (a matrix row times the state).
    fn dot3(a: [&Self; 3], b: [&Self; 3]) -> Self;
}

impl LaneField for Fr8 {
    const LANES: usize = 8;
    type Limbs = [u64; 5];

    fn limbs(value: &Fr) -> [u64; 5] {
        limbs52::<FrConfig>(value)
    }

    fn schedule() -> &'static LaneSchedule<Self> {
        static SCHEDULE: OnceLock<LaneSchedule<Fr8>> = OnceLock::new();
        SCHEDULE.get_or_init(LaneSchedule::new)
    }

    // SAFETY (every method): see the trait's comment.
    #[inline(always)]
    fn splat_limbs(limbs: [u64; 5]) -> Self {
        unsafe { Fr8::splat_limbs(limbs) }
    }

    #[inline(always)]
    fn zero() -> Self {
        unsafe { Fr8::zero() }
    }

    #[inline(always)]
    fn from_scalars(values: &[Fr]) -> Self {
        let values: [Fr; 8] = std::array::from_fn(|l| values[l]);
        unsafe { Fr8::load(&Fr8::from_scalars(&values)) }
    }

    #[inline(always)]
    fn to_scalars(&self, out: &mut [Fr]) {
        out.copy_from_slice(&Fr8::to_scalars(&unsafe { self.canonical().store() }));
    }

    #[inline(always)]
    fn mul(&self, b: &Self) -> Self {
        unsafe { Fr8::mul(self, b) }
    }

    #[inline(always)]
    fn square(&self) -> Self {
        unsafe { Fr8::square(self) }
    }

    #[inline(always)]
    fn dot3(a: [&Self; 3], b: [&Self; 3]) -> Self {
        unsafe { Fr8::dot3(a, b) }
    }

    #[inline(always)]
    fn add_lazy(&self, b: &Self) -> Self {
        unsafe { Fr8::add_lazy(self, b) }
    }
}

impl LaneField for Fr4 {
    const LANES: usize = 4;
    type Limbs = [u64; 9];

    fn limbs(value: &Fr) -> [u64; 9] {
        limbs29(value)
    }

    fn schedule() -> &'static LaneSchedule<Self> {
        static SCHEDULE: OnceLock<LaneSchedule<Fr4>> = OnceLock::new();
        SCHEDULE.get_or_init(LaneSchedule::new)
    }

    // SAFETY (every method): see the trait's comment.
    #[inline(always)]
    fn splat_limbs(limbs: [u64; 9]) -> Self {
        unsafe { Fr4::splat_limbs(limbs) }
    }

    #[inline(always)]
    fn zero() -> Self {
        unsafe { Fr4::zero() }
    }

    #[inline(always)]
    fn from_scalars(values: &[Fr]) -> Self {
        unsafe { Fr4::from_scalars(&std::array::from_fn(|l| values[l])) }
    }

    #[inline(always)]
    fn to_scalars(&self, out: &mut [Fr]) {
        out.copy_from_slice(&unsafe { Fr4::to_scalars(*self) });
    }

    #[inline(always)]
    fn mul(&self, b: &Self) -> Self {
        unsafe { Fr4::mul(self, b) }
    }

    #[inline(always)]
    fn add_lazy(&self, b: &Self) -> Self {
        unsafe { Fr4::add_lazy(self, b) }
    }

    #[inline(always)]
    fn dot3(a: [&Self; 3], b: [&Self; 3]) -> Self {
        unsafe { Fr4::dot3(a, b) }
    }
}

/// A partial round's sparse matrix: m00 and the row's two entries, the column's two.
type SparseRound<L> = ([<L as LaneField>::Limbs; 3], [<L as LaneField>::Limbs; 2]);

/// [`super::permutation`]'s schedule with every constant in the lane field's limbs.
struct LaneSchedule<L: LaneField> {
    /// The full rounds' constants, first half then second half.
    full: Vec<[L::Limbs; 3]>,
    mds: [[L::Limbs; 3]; 3],
    pre: [[L::Limbs; 3]; 3],
    first: [L::Limbs; 3],
    /// Per partial round: m00, the row's two entries, the column's two.
    sparse: Vec<SparseRound<L>>,
    /// Per partial round k ≥ 1 (at k − 1), its carried constants.
    partial: Vec<[L::Limbs; 3]>,
}

impl<L: LaneField> LaneSchedule<L> {
    fn new() -> Self {
        let limbs3 = |v: &[Fr; 3]| v.each_ref().map(L::limbs);
        let matrix = |m: &Matrix| m.each_ref().map(limbs3);
        let (c, s) = (config(), schedule());
        let half = FULL_ROUNDS / 2;
        let second = c.ark.len() - half;
        LaneSchedule {
            full: c.ark[..half].iter().chain(&c.ark[second..]).map(|k| limbs3(&[k[0], k[1], k[2]])).collect(),
            mds: matrix(&s.mds),
            pre: matrix(&s.pre),
            first: limbs3(&s.first_constants),
            sparse: s
                .sparse
                .iter()
                .map(|m| (limbs3(&[m.m00, m.row[0], m.row[1]]), m.col.each_ref().map(L::limbs)))
                .collect(),
            partial: s.constants.iter().map(limbs3).collect(),
        }
    }
}

type State<L> = [L; 3];

#[inline(always)]
fn pow5<L: LaneField>(x: &L) -> L {
    let x4 = x.square().square();
    x.mul(&x4)
}

#[inline(always)]
fn add_constants<L: LaneField>(state: &mut State<L>, constants: &[L::Limbs; 3]) {
    for (s, k) in state.iter_mut().zip(constants) {
        *s = s.add_lazy(&L::splat_limbs(*k));
    }
}

#[inline(always)]
fn times<L: LaneField>(m: &[[L::Limbs; 3]; 3], state: &mut State<L>) {
    let v = *state;
    for (s, row) in state.iter_mut().zip(m) {
        let row = row.map(L::splat_limbs);
        *s = L::dot3([&row[0], &row[1], &row[2]], [&v[0], &v[1], &v[2]]);
    }
}

#[inline(always)]
fn full_round<L: LaneField>(state: &mut State<L>, constants: &[L::Limbs; 3], mds: &[[L::Limbs; 3]; 3]) {
    add_constants(state, constants);
    for s in state.iter_mut() {
        *s = pow5(s);
    }
    times(mds, state);
}

#[inline(always)]
fn partial_round<L: LaneField>(s: &mut State<L>, row: &[L::Limbs; 3], col: &[L::Limbs; 2]) {
    let x0 = pow5(&s[0]);
    let row = row.map(L::splat_limbs);
    let col = col.map(L::splat_limbs);
    let (c1, c2) = (col[0].mul(&x0), col[1].mul(&x0));
    s[0] = L::dot3([&row[0], &row[1], &row[2]], [&x0, &s[1], &s[2]]);
    s[1] = s[1].add_lazy(&c1);
    s[2] = s[2].add_lazy(&c2);
}

/// The permutation of every lane's state (values < 2q in, < 2q out).
#[inline(always)]
fn permute<L: LaneField>(state: &mut State<L>, k: &LaneSchedule<L>) {
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

/// One sponge per lane (the first `L::LANES` entries of each array): lane
/// l starts from `capacity[l]`, absorbs `chunk(j, l)` (its j-th pair of
/// inputs, zeros past its end) before permutation j < `permutations`, and
/// its squeezed element after permutation `squeeze_at[l]` is its result.
/// Lanes with fewer chunks simply run extra permutations whose output
/// nobody reads.
#[inline(always)]
fn sponge<L: LaneField>(
    capacity: &[Fr; MAX_LANES],
    permutations: usize,
    squeeze_at: &[usize; MAX_LANES],
    mut chunk: impl FnMut(usize, usize) -> [Fr; 2],
) -> [Fr; MAX_LANES] {
    let k = L::schedule();
    let lanes = L::LANES;
    let mut state: State<L> = [L::from_scalars(&capacity[..lanes]), L::zero(), L::zero()];
    let mut out = [Fr::from(0u64); MAX_LANES];
    let mut squeezed = [Fr::from(0u64); MAX_LANES];
    for j in 0..permutations {
        let pairs: [[Fr; 2]; MAX_LANES] =
            std::array::from_fn(|lane| if lane < lanes { chunk(j, lane) } else { [Fr::from(0u64); 2] });
        for slot in 0..2 {
            let inputs: [Fr; MAX_LANES] = std::array::from_fn(|l| pairs[l][slot]);
            state[1 + slot] = state[1 + slot].add_lazy(&L::from_scalars(&inputs[..lanes]));
        }
        permute(&mut state, k);
        if squeeze_at[..lanes].contains(&j) {
            state[1].to_scalars(&mut squeezed[..lanes]);
            for l in (0..lanes).filter(|&l| squeeze_at[l] == j) {
                out[l] = squeezed[l];
            }
        }
    }
    out
}

/// [`sponge`] on eight AVX-512 IFMA lanes.
///
/// # Safety
/// The processor must have AVX-512F and AVX-512 IFMA.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) unsafe fn sponge_ifma(
    capacity: &[Fr; MAX_LANES],
    permutations: usize,
    squeeze_at: &[usize; MAX_LANES],
    chunk: impl FnMut(usize, usize) -> [Fr; 2],
) -> [Fr; MAX_LANES] {
    sponge::<Fr8>(capacity, permutations, squeeze_at, chunk)
}

/// [`sponge`] on four AVX2 lanes (the first four entries of each array).
///
/// # Safety
/// The processor must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn sponge_avx2(
    capacity: &[Fr; MAX_LANES],
    permutations: usize,
    squeeze_at: &[usize; MAX_LANES],
    chunk: impl FnMut(usize, usize) -> [Fr; 2],
) -> [Fr; MAX_LANES] {
    sponge::<Fr4>(capacity, permutations, squeeze_at, chunk)
}
