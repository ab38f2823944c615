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
    /// Enough windows for scalars of `max_bits` bits: the offset sum must stay
    /// below 2^(c * count), which (k < 2^(c*count - 2)) guarantees for c >= 2.
    pub fn for_bits(c: u32, max_bits: u32) -> Self {
        debug_assert!((2..=16).contains(&c));
        Windows { c, count: (max_bits + 2).div_ceil(c) }
    }

    pub fn buckets(&self) -> usize {
        1 << (self.c - 1)
    }

    /// Largest digit the top window can hold for scalars below 2^max_bits:
    /// its digits lie in [0, top_digit_max], so it needs only that many buckets.
    pub fn top_digit_max(&self, max_bits: u32) -> u32 {
        let mut largest = [0u64; 3];
        for bit in 0..max_bits.min(191) {
            largest[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        let source = DigitEncoder::new(*self).encode(&SignedHalf { magnitude: largest, negative: false });
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
        let mut limbs = [0u64; 3];
        let mut carry = 0u128;
        for (i, limb) in limbs.iter_mut().enumerate() {
            let t = half.magnitude[i] as u128 + self.offset[i] as u128 + carry;
            *limb = t as u64;
            carry = t >> 64;
        }
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
            let windows = Windows::for_bits(c, 100);
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
            for bits in [1u32, 60, 127, 128, 129] {
                let windows = Windows::for_bits(c, bits);
                let bound = windows.top_digit_max(bits);
                assert!(bound as usize <= windows.buckets(), "c={c} bits={bits}");
                let encoder = DigitEncoder::new(windows);
                let top = |m: [u64; 3]| encoder.encode(&SignedHalf { magnitude: m, negative: false }).digit(windows, windows.count - 1);
                let mut max = [0u64; 3];
                for bit in 0..bits {
                    max[(bit / 64) as usize] |= 1 << (bit % 64);
                }
                assert_eq!(top(max) as u32, bound);
                assert!(top([0; 3]) >= 0);
            }
        }
    }

    #[test]
    fn zero_has_only_zero_digits() {
        let windows = Windows::for_bits(13, 128);
        let source = DigitEncoder::new(windows).encode(&SignedHalf::default());
        assert!((0..windows.count).all(|w| source.digit(windows, w) == 0));
    }
}
