//! The CPU kernels: radix-2 butterflies on rayon, in two cache-friendly phases.
//!
//! A transform of n points is log n stages of n/2 butterflies. Seen as a
//! matrix of rows of [`ROW`] points, the stages whose butterflies pair
//! points of different rows (half-size ≥ [`ROW`]) run column group by column
//! group: [`GROUP`] adjacent columns of every row, all those stages while
//! the group sits in the core's cache. The other stages pair points of one
//! row, so each row runs all of them in its cache. Decimation in frequency
//! runs the column phase first, decimation in time the row phase first;
//! groups and rows run in parallel. Twiddles come from the plan's one table
//! of n/2 roots (a stage of half-size m reads every (n/2m)-th).

use ark_bn254::Fr;
use ark_ff::{Field, Zero};
use rayon::prelude::*;

use super::ifma as lanes;

/// Points a row holds: 2^12 × 32 bytes = 128 KiB, within a core's L2.
const ROW: usize = 1 << 12;
/// Adjacent columns a column group takes (512 bytes of each row).
const GROUP: usize = 16;
/// Points a parallel piece of the element-wise passes takes.
const PIECE: usize = 1 << 11;

/// c·g⁰ … c·gᵏ⁻¹.
pub fn powers(c: Fr, g: Fr, k: usize) -> Vec<Fr> {
    let mut out = vec![Fr::zero(); k];
    out.par_chunks_mut(PIECE).enumerate().for_each(|(chunk, part)| {
        let mut power = c * g.pow([(chunk * PIECE) as u64]);
        for x in part {
            *x = power;
            power *= g;
        }
    });
    out
}

/// Decimation in frequency (Gentleman–Sande): natural order in,
/// bit-reversed order out. `roots` holds ω⁰ … ω^(n/2 − 1).
pub fn dif(values: &mut [Fr], roots: &[Fr]) {
    let row = values.len().min(ROW);
    columns(values, roots, halves(row, values.len()).rev(), dif_butterflies);
    rows(values, roots, halves(1, row).rev(), dif_butterflies);
}

/// Decimation in time (Cooley–Tukey): bit-reversed order in, natural
/// order out; the stages of [`dif`] in reverse.
pub fn dit(values: &mut [Fr], roots: &[Fr]) {
    let row = values.len().min(ROW);
    rows(values, roots, halves(1, row), dit_butterflies);
    columns(values, roots, halves(row, values.len()), dit_butterflies);
}

/// The stages' half-sizes from `from` up to, not including, `to` (powers of two).
fn halves(from: usize, to: usize) -> impl DoubleEndedIterator<Item = usize> + Clone + Send + Sync {
    (from.trailing_zeros()..to.trailing_zeros()).map(|k| 1usize << k)
}

/// The stages of half-size below [`ROW`], in the order given, row by row.
fn rows(
    values: &mut [Fr],
    roots: &[Fr],
    halves: impl Iterator<Item = usize> + Clone + Send + Sync,
    butterflies: Butterflies,
) {
    let n = values.len();
    values.par_chunks_mut(n.min(ROW)).for_each(|row| {
        for half in halves.clone() {
            within_row(row, half, roots, n / (2 * half), butterflies);
        }
    });
}

/// One stage of half-size `half` inside one row: each block of 2·`half`
/// points, butterflies (j, j + half) with twiddle roots[j·stride].
fn within_row(row: &mut [Fr], half: usize, roots: &[Fr], stride: usize, butterflies: Butterflies) {
    for pair in row.chunks_mut(2 * half) {
        let (lo, hi) = pair.split_at_mut(half);
        butterflies(lo, hi, roots, 0, stride);
    }
}

/// The base of the values, shared by the column groups: each group reads
/// and writes only its own columns, so no element is touched by two threads.
#[derive(Clone, Copy)]
struct Shared(*mut Fr);
// SAFETY: see above; the pointer outlives the scope of the parallel loop.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The address of element `i` (a method, so closures capture the
    /// whole `Shared`, not its raw pointer field).
    fn at(&self, i: usize) -> *mut Fr {
        self.0.wrapping_add(i)
    }
}

/// The stages of half-size ≥ [`ROW`], in the order given, column group by
/// column group (none when the values fit one row).
fn columns(
    values: &mut [Fr],
    roots: &[Fr],
    halves: impl Iterator<Item = usize> + Clone + Send + Sync,
    butterflies: Butterflies,
) {
    let n = values.len();
    if n <= ROW {
        return;
    }
    let rows = n / ROW;
    let base = Shared(values.as_mut_ptr());
    (0..ROW / GROUP).into_par_iter().for_each(|group| {
        let first = group * GROUP;
        for half in halves.clone() {
            let (span, stride) = (half / ROW, n / (2 * half));
            for block in (0..rows).step_by(2 * span) {
                for t in 0..span {
                    let at = (block + t) * ROW + first;
                    // SAFETY: rows `block + t` and `block + t + span` are in
                    // bounds (block + 2·span ≤ rows), the two runs of GROUP
                    // points are disjoint (span ≥ 1 row apart), and only this
                    // group touches these columns.
                    let (lo, hi) = unsafe {
                        (
                            std::slice::from_raw_parts_mut(base.at(at), GROUP),
                            std::slice::from_raw_parts_mut(base.at(at + half), GROUP),
                        )
                    };
                    butterflies(lo, hi, roots, t * ROW + first, stride);
                }
            }
        }
    });
}

/// Butterflies on lo[j], hi[j] with twiddle roots[(first + j)·stride].
type Butterflies = fn(&mut [Fr], &mut [Fr], &[Fr], usize, usize);

/// (a, b) → (a + b, (a − b)·w): eight at a time on IFMA lanes where the
/// CPU has them, the rest one by one.
fn dif_butterflies(lo: &mut [Fr], hi: &mut [Fr], roots: &[Fr], first: usize, stride: usize) {
    let done = lanes::dif(lo, hi, roots, first, stride);
    for (j, (a, b)) in lo.iter_mut().zip(hi.iter_mut()).enumerate().skip(done) {
        let (u, v) = (*a, *b);
        *a = u + v;
        *b = (u - v) * roots[(first + j) * stride];
    }
}

/// (a, b) → (a + w·b, a − w·b), as [`dif_butterflies`].
fn dit_butterflies(lo: &mut [Fr], hi: &mut [Fr], roots: &[Fr], first: usize, stride: usize) {
    let done = lanes::dit(lo, hi, roots, first, stride);
    for (j, (a, b)) in lo.iter_mut().zip(hi.iter_mut()).enumerate().skip(done) {
        let t = *b * roots[(first + j) * stride];
        *b = *a - t;
        *a += t;
    }
}

/// Index i ↔ its bit reversal, in parallel: the owner of the smaller
/// index of each pair swaps it.
pub fn bit_reverse(values: &mut [Fr]) {
    let bits = values.len().trailing_zeros();
    let n = values.len();
    let base = Shared(values.as_mut_ptr());
    (0..n).into_par_iter().with_min_len(PIECE).for_each(|i| {
        let j = reverse(i, bits);
        if i < j {
            // SAFETY: i, j < n, and the pairs (i, rev i) are disjoint, each
            // swapped once, by the thread that holds its smaller index.
            unsafe { std::ptr::swap(base.at(i), base.at(j)) };
        }
    });
}

/// Every value times `factor`.
pub fn scale(values: &mut [Fr], factor: Fr) {
    values.par_iter_mut().with_min_len(PIECE).for_each(|x| *x *= factor);
}

/// values[i] times c·gⁱ.
pub fn scale_by_powers(values: &mut [Fr], c: Fr, g: Fr) {
    values.par_chunks_mut(PIECE).enumerate().for_each(|(chunk, part)| {
        let mut power = c * g.pow([(chunk * PIECE) as u64]);
        for x in part {
            *x *= power;
            power *= g;
        }
    });
}

/// As [`scale_by_powers`] for values in bit-reversed order: the value at
/// position i is coefficient rev(i), so it takes c·g^rev(i). With
/// i = high·2^l + low, rev(i) = rev(low)·2^h + rev(high) (h + l bits), so
/// g^rev(i) is the product of two small tables' entries, both in cache.
pub fn scale_by_powers_bit_reversed(values: &mut [Fr], c: Fr, g: Fr) {
    let bits = values.len().trailing_zeros();
    let low_bits = bits.min(PIECE.trailing_zeros());
    let high_bits = bits - low_bits;
    let mut low = powers(c, g.pow([1u64 << high_bits]), 1 << low_bits);
    bit_reverse(&mut low);
    let mut high = powers(Fr::ONE, g, 1 << high_bits);
    bit_reverse(&mut high);
    values.par_chunks_mut(1 << low_bits).zip(high).for_each(|(part, factor)| {
        for (x, low) in part.iter_mut().zip(&low) {
            *x *= *low * factor;
        }
    });
}

/// The low `bits` bits of i in reverse order.
fn reverse(i: usize, bits: u32) -> usize {
    match bits {
        0 => 0,
        _ => i.reverse_bits() >> (usize::BITS - bits),
    }
}
