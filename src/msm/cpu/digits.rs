//! Signed-digit windows. Adding H = sum_j 2^(c*j + c - 1) to a scalar and
//! reading plain c-bit windows u_j of the sum gives digits d_j = u_j - 2^(c-1)
//! in [-2^(c-1), 2^(c-1) - 1] with k = sum_j d_j 2^(c*j): every window is
//! read independently (no carry chain at MSM time) and only 2^(c-1) buckets
//! are needed, indexed by |d_j| - 1.

use super::glv::SignedHalf;

/// Bit 63 of the top limb carries "negate this point" (the GLV half's sign):
/// offset scalars stay below 2^191.
const NEGATE_FLAG: u64 = 1 << 63;

/// An offset scalar (k + H) packed with its point's sign.
#[derive(Clone, Copy, Debug, Default)]
pub struct DigitSource {
    limbs: [u64; 3],
}

/// The window geometry of one MSM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    /// Bits per window, 1..=16.
    pub c: u32,
    /// Number of windows.
    pub count: u32,
}

impl Windows {
    /// The fewest windows of `c` bits for magnitudes up to `max`: the offset
    /// sum max + H must stay below 2^(c * count) so the top digit absorbs
    /// every carry.
    pub fn for_max(c: u32, max: &[u64; 3]) -> Self {
        debug_assert!((2..=16).contains(&c));
        let mut count = 1;
        while c * count < 191 {
            let windows = Windows { c, count };
            let (sum, carry) = add3(max, &windows.offset());
            let fits = carry == 0 && shr3(&sum, c * count) == [0; 3];
            if fits {
                return windows;
            }
            count += 1;
        }
        Windows { c, count }
    }

    pub fn buckets(&self) -> usize {
        1 << (self.c - 1)
    }

    /// Largest digit the top window holds for magnitudes up to `max`: its
    /// digits lie in [0, top_digit_max] (encoding is monotone), so it needs
    /// only that many buckets.
    pub fn top_digit_max(&self, max: &[u64; 3]) -> u32 {
        let source = DigitEncoder::new(*self).encode(&SignedHalf { magnitude: *max, negative: false });
        source.digit(*self, self.count - 1).max(0) as u32
    }

    fn offset(&self) -> [u64; 3] {
        let mut h = [0u64; 3];
        for j in 0..self.count {
            let bit = self.c * j + self.c - 1;
            h[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        h
    }
}

fn add3(a: &[u64; 3], b: &[u64; 3]) -> ([u64; 3], u64) {
    let mut out = [0u64; 3];
    let mut carry = 0u128;
    for i in 0..3 {
        let t = a[i] as u128 + b[i] as u128 + carry;
        out[i] = t as u64;
        carry = t >> 64;
    }
    (out, carry as u64)
}

fn shr3(a: &[u64; 3], shift: u32) -> [u64; 3] {
    let mut out = [0u64; 3];
    for bit in shift..192 {
        if (a[(bit / 64) as usize] >> (bit % 64)) & 1 == 1 {
            let to = bit - shift;
            out[(to / 64) as usize] |= 1 << (to % 64);
        }
    }
    out
}

/// The larger of two magnitudes.
pub fn max3(a: [u64; 3], b: [u64; 3]) -> [u64; 3] {
    if (a[2], a[1], a[0]) >= (b[2], b[1], b[0]) {
        a
    } else {
        b
    }
}

/// Prepares the digit sources of all GLV halves for `windows`.
pub struct DigitEncoder {
    offset: [u64; 3],
}

impl DigitEncoder {
    pub fn new(windows: Windows) -> Self {
        debug_assert!(windows.c * windows.count <= 191);
        DigitEncoder { offset: windows.offset() }
    }

    /// Zero scalars map to all-zero digits, so they cost one skipped check per window.
    pub fn encode(&self, half: &SignedHalf) -> DigitSource {
        let (mut limbs, _) = add3(&half.magnitude, &self.offset);
        if half.negative {
            limbs[2] |= NEGATE_FLAG;
        }
        DigitSource { limbs }
    }
}

impl DigitSource {
    /// The signed digit of window `w`.
    #[inline(always)]
    pub fn digit(&self, windows: Windows, w: u32) -> i32 {
        let start = windows.c * w;
        let limb = (start / 64) as usize;
        let shift = start % 64;
        let mut bits = self.limbs[limb] >> shift;
        if shift + windows.c > 64 && limb < 2 {
            bits |= self.limbs[limb + 1] << (64 - shift);
        }
        let mask = (1u64 << windows.c) - 1;
        (bits & mask) as i32 - (1 << (windows.c - 1))
    }

    #[inline(always)]
    pub fn negate_point(&self) -> bool {
        self.limbs[2] & NEGATE_FLAG != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn recombine(source: &DigitSource, windows: Windows) -> i128 {
        let mut total: i128 = 0;
        for w in (0..windows.count).rev() {
            total = total * (1i128 << windows.c) + source.digit(windows, w) as i128;
        }
        total
    }

    #[test]
    fn digits_recombine_to_the_scalar() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        for c in 2..=16 {
            // 100-bit scalars so the recombination fits an i128.
            let windows = Windows::for_max(c, &[u64::MAX, (1 << 36) - 1, 0]);
            let encoder = DigitEncoder::new(windows);
            let half_range = 1i32 << (c - 1);
            let mut cases: Vec<u128> = vec![0, 1, (1u128 << 100) - 1, 1u128 << 99];
            cases.extend((0..200).map(|_| rng.gen::<u128>() >> 28));
            for k in cases {
                let half = SignedHalf { magnitude: [k as u64, (k >> 64) as u64, 0], negative: k % 2 == 1 };
                let source = encoder.encode(&half);
                assert_eq!(source.negate_point(), half.negative);
                assert_eq!(recombine(&source, windows), k as i128, "c={c} k={k}");
                for w in 0..windows.count {
                    let d = source.digit(windows, w);
                    assert!((-half_range..half_range).contains(&d));
                }
            }
        }
    }

    #[test]
    fn top_window_bound() {
        for c in 2..=16 {
            for bits in [1u32, 60, 126, 127, 128, 129] {
                let mut max = [0u64; 3];
                for bit in 0..bits {
                    max[(bit / 64) as usize] |= 1 << (bit % 64);
                }
                let windows = Windows::for_max(c, &max);
                assert!(windows.c * (windows.count - 1) < bits + 2, "c={c} bits={bits} {windows:?}");
                let bound = windows.top_digit_max(&max);
                assert!(bound as usize <= windows.buckets(), "c={c} bits={bits}");
                let encoder = DigitEncoder::new(windows);
                let top = |m: [u64; 3]| {
                    encoder.encode(&SignedHalf { magnitude: m, negative: false }).digit(windows, windows.count - 1)
                };
                assert_eq!(top(max) as u32, bound);
                assert!(top([0; 3]) >= 0);
            }
        }
    }

    #[test]
    fn zero_has_only_zero_digits() {
        let windows = Windows::for_max(13, &[u64::MAX, u64::MAX, 0]);
        let source = DigitEncoder::new(windows).encode(&SignedHalf::default());
        assert!((0..windows.count).all(|w| source.digit(windows, w) == 0));
    }
}
