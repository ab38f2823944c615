//! The native Poseidon permutation, with the partial rounds in the sparse
//! form of the Poseidon paper's appendix B.
//!
//! A partial round applies the S-box to the first element only, so the MDS
//! matrix M can be split as M = M''·M' with M' = diag(1, M̂) (M̂: M without
//! its first row and column) and M'' = [[m00, r·M̂⁻¹], [c, I]], which has 5
//! non-trivial entries instead of 9. M' commutes with that S-box, so it moves
//! into the round before, whose matrix becomes M'·M and is split the same
//! way, back to the first partial round: one dense matrix before the partial
//! rounds, then 57 sparse ones, with the round constants carried through
//! the same matrices. Tested against ark's sponge (`crypto::poseidon::reference_hash`).

use std::sync::OnceLock;

use ark_bn254::Fr;
use ark_ff::{AdditiveGroup, Field};

use super::params::{config, FULL_ROUNDS, PARTIAL_ROUNDS};

pub(super) type Matrix = [[Fr; 3]; 3];

/// M'' of one partial round: `[[m00, r1, r2], [c1, 1, 0], [c2, 0, 1]]`.
#[derive(Clone, Copy)]
pub(super) struct Sparse {
    pub(super) m00: Fr,
    pub(super) row: [Fr; 2],
    pub(super) col: [Fr; 2],
}

/// The permutation's rounds in the sparse form (shared with the lanes).
pub(super) struct Schedule {
    pub(super) mds: Matrix,
    /// M'₀, applied once before the first partial round's S-box.
    pub(super) pre: Matrix,
    /// The first partial round's constants (added before `pre`).
    pub(super) first_constants: [Fr; 3],
    /// Per partial round, its M''.
    pub(super) sparse: Vec<Sparse>,
    /// Per partial round k ≥ 1 (at index k − 1), its constants carried
    /// through M'ₖ (added after round k − 1's matrix).
    pub(super) constants: Vec<[Fr; 3]>,
}

fn product(a: &Matrix, b: &Matrix) -> Matrix {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|l| a[i][l] * b[l][j]).sum()))
}

fn apply(m: &Matrix, v: &[Fr; 3]) -> [Fr; 3] {
    std::array::from_fn(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2])
}

/// Split `m` as M''·M' (see the module comment).
fn split(m: &Matrix) -> (Sparse, Matrix) {
    let det = m[1][1] * m[2][2] - m[1][2] * m[2][1];
    let inv_det = det.inverse().expect("Poseidon's MDS products have invertible minors");
    let hat_inv = [[m[2][2] * inv_det, -m[1][2] * inv_det], [-m[2][1] * inv_det, m[1][1] * inv_det]];
    let row = [m[0][1] * hat_inv[0][0] + m[0][2] * hat_inv[1][0], m[0][1] * hat_inv[0][1] + m[0][2] * hat_inv[1][1]];
    let prime = [[Fr::ONE, Fr::ZERO, Fr::ZERO], [Fr::ZERO, m[1][1], m[1][2]], [Fr::ZERO, m[2][1], m[2][2]]];
    (Sparse { m00: m[0][0], row, col: [m[1][0], m[2][0]] }, prime)
}

pub(super) fn schedule() -> &'static Schedule {
    static SCHEDULE: OnceLock<Schedule> = OnceLock::new();
    SCHEDULE.get_or_init(|| {
        let c = config();
        let mds: Matrix = std::array::from_fn(|i| std::array::from_fn(|j| c.mds[i][j]));
        let half = FULL_ROUNDS / 2;
        let round_constants = |k: usize| -> [Fr; 3] { std::array::from_fn(|i| c.ark[half + k][i]) };
        // Backwards from the last partial round, whose matrix is M; round k's
        // is M'ₖ₊₁·M, and round k + 1's constants pass through M'ₖ₊₁.
        let (mut last, mut prime) = split(&mds);
        let mut sparse = vec![last];
        let mut constants = Vec::with_capacity(PARTIAL_ROUNDS - 1);
        for k in (0..PARTIAL_ROUNDS - 1).rev() {
            constants.push(apply(&prime, &round_constants(k + 1)));
            (last, prime) = split(&product(&prime, &mds));
            sparse.push(last);
        }
        sparse.reverse();
        constants.reverse();
        Schedule { mds, pre: prime, first_constants: round_constants(0), sparse, constants }
    })
}

/// Where each part of [`flat_schedule`] starts, in elements.
pub mod flat {
    use super::{FULL_ROUNDS, PARTIAL_ROUNDS};
    /// The full rounds' constants, 3 a round: the first half's rounds, then the last half's.
    pub const FULL: usize = 0;
    /// The MDS matrix, row-major.
    pub const MDS: usize = FULL + 3 * FULL_ROUNDS;
    /// M'₀, row-major.
    pub const PRE: usize = MDS + 9;
    /// The first partial round's constants.
    pub const FIRST: usize = PRE + 9;
    /// Per partial round, its M'': m00, row[0], row[1], col[0], col[1].
    pub const SPARSE: usize = FIRST + 3;
    /// Per partial round k ≥ 1 (at 3·(k − 1)), its carried constants.
    pub const CARRIED: usize = SPARSE + 5 * PARTIAL_ROUNDS;
    pub const LEN: usize = CARRIED + 3 * (PARTIAL_ROUNDS - 1);
}

/// The permutation's rounds in the sparse form as one flat table, laid out
/// as [`flat`] says: what a kernel that cannot share [`Schedule`] reads
/// (the WGSL Poseidon's table).
pub fn flat_schedule() -> Vec<Fr> {
    let c = config();
    let s = schedule();
    let half = FULL_ROUNDS / 2;
    let full = c.ark[..half].iter().chain(&c.ark[half + PARTIAL_ROUNDS..]).flat_map(|round| round.iter().copied());
    let mut table: Vec<Fr> = full.collect();
    table.extend(s.mds.iter().flatten());
    table.extend(s.pre.iter().flatten());
    table.extend(s.first_constants);
    table.extend(s.sparse.iter().flat_map(|m| [m.m00, m.row[0], m.row[1], m.col[0], m.col[1]]));
    table.extend(s.constants.iter().flatten());
    debug_assert_eq!(table.len(), flat::LEN);
    table
}

fn pow5(x: &mut Fr) {
    let square = x.square();
    *x *= square.square();
}

fn full_round(state: &mut [Fr; 3], constants: &[Fr], mds: &Matrix) {
    for (s, k) in state.iter_mut().zip(constants) {
        *s += k;
        pow5(s);
    }
    *state = apply(mds, state);
}

/// The Poseidon permutation of `state` (width 3, ark's parameters).
pub fn permute(state: &mut [Fr; 3]) {
    let c = config();
    let s = schedule();
    let half = FULL_ROUNDS / 2;
    for constants in &c.ark[..half] {
        full_round(state, constants, &s.mds);
    }
    for (x, k) in state.iter_mut().zip(&s.first_constants) {
        *x += k;
    }
    *state = apply(&s.pre, state);
    for (k, m) in s.sparse.iter().enumerate() {
        if let Some(constants) = k.checked_sub(1).map(|i| &s.constants[i]) {
            for (x, c) in state.iter_mut().zip(constants) {
                *x += c;
            }
        }
        pow5(&mut state[0]);
        let x0 = state[0];
        state[0] = m.m00 * x0 + m.row[0] * state[1] + m.row[1] * state[2];
        state[1] += m.col[0] * x0;
        state[2] += m.col[1] * x0;
    }
    for constants in &c.ark[half + PARTIAL_ROUNDS..] {
        full_round(state, constants, &s.mds);
    }
}
