//! Four elements of BN254's scalar field at once with AVX2 (`vpmuludq`:
//! four 32x32-bit products per instruction): [`Fr4`], for Poseidon in lanes
//! on processors without AVX-512 IFMA.
//!
//! Layout: nine limbs in radix 2^29 (261 bits), one `__m256i` per limb,
//! lane l holding element l. The value is in Montgomery form aR' mod q with
//! R' = 2^261, so each of the nine reduction steps clears a whole limb and
//! the product ends aligned on the limbs (no final shift). arkworks' form
//! (R = 2^256) is R'/32: [`Fr4::from_scalars`] and [`Fr4::to_scalars`]
//! multiply by 32 and by 1/32 (one scalar product an element), and
//! [`limbs29`] gives a constant's limbs in this form.
//!
//! Lazy bounds (q < 2^254): a product takes inputs < 2q and returns
//! < 4q^2/2^261 + q < 1.04q, so products chain without reduction, and a
//! matrix row's three products summed before one reduction stay below
//! 12q^2/2^261 + q < 1.1q: no conditional subtraction after them either.
//! Limbs are normalised (< 2^29) between operations: a product's columns
//! then gather at most 9P products of the operands and 9 of the reduction,
//! each below 2^58, and a carry: below 2^64 for P <= 3, no overflow.

use std::arch::x86_64::*;

use ark_bn254::{Fr, FrConfig};
use ark_ff::{BigInt, Field, MontConfig};

const BITS: usize = 29;
const MASK: u64 = (1 << BITS) - 1;
const LIMBS: usize = 9;

/// Whether this CPU has AVX2, detected once.
pub fn supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| is_x86_feature_detected!("avx2"))
}

/// Four little-endian 64-bit words as nine 29-bit limbs.
const fn split29(w: [u64; 4]) -> [u64; LIMBS] {
    let mut out = [0u64; LIMBS];
    let mut i = 0;
    while i < LIMBS {
        let (word, offset) = (i * BITS / 64, i * BITS % 64);
        let mut v = w[word] >> offset;
        if offset + BITS > 64 && word + 1 < 4 {
            v |= w[word + 1] << (64 - offset);
        }
        out[i] = v & MASK;
        i += 1;
    }
    out
}

/// Nine 29-bit limbs as four little-endian 64-bit words (the value must fit 256 bits).
fn join29(limbs: [u64; LIMBS]) -> [u64; 4] {
    let mut w = [0u64; 4];
    for (i, &x) in limbs.iter().enumerate() {
        let (word, offset) = (i * BITS / 64, i * BITS % 64);
        w[word] |= x << offset;
        if offset + BITS > 64 && word + 1 < 4 {
            w[word + 1] |= x >> (64 - offset);
        }
    }
    w
}

/// k * q as four words (k <= 5 keeps it below 2^256).
const fn times_q(k: u64) -> [u64; 4] {
    let q = FrConfig::MODULUS.0;
    let mut out = [0u64; 4];
    let mut carry = 0u128;
    let mut i = 0;
    while i < 4 {
        let v = q[i] as u128 * k as u128 + carry;
        out[i] = v as u64;
        carry = v >> 64;
        i += 1;
    }
    assert!(carry == 0, "k * q must fit 256 bits");
    out
}

/// q, 2q, ..., 4q in normalised limbs (index k - 1 holds kq).
const Q_MULTIPLES: [[u64; LIMBS]; 4] =
    [split29(times_q(1)), split29(times_q(2)), split29(times_q(3)), split29(times_q(4))];
/// -q^-1 mod 2^29 (arkworks' INV is -q^-1 mod 2^64).
const QINV29: u64 = FrConfig::INV & MASK;
/// The lazy bounds of the module comment need q < 2^254.
const _FITS: () = assert!(FrConfig::MODULUS.0[3] < 1 << 62, "the modulus must be below 2^254");

/// 2^261 / 2^256: this module's Montgomery factor over arkworks'.
fn to_lanes_form(value: &Fr) -> Fr {
    *value * Fr::from(32u64)
}

fn from_lanes_form(value: &Fr) -> Fr {
    static INV32: std::sync::OnceLock<Fr> = std::sync::OnceLock::new();
    *value * *INV32.get_or_init(|| Fr::from(32u64).inverse().expect("32 is invertible"))
}

/// A field element's limbs in radix 2^29, in this module's Montgomery form
/// (R' = 2^261), for [`Fr4::splat_limbs`].
pub fn limbs29(value: &Fr) -> [u64; LIMBS] {
    split29(to_lanes_form(value).0 .0)
}

/// Four elements of BN254's scalar field, limb-major (see the module comment).
#[derive(Clone, Copy)]
pub struct Fr4(pub [__m256i; LIMBS]);

#[inline]
#[target_feature(enable = "avx2")]
fn splat(x: u64) -> __m256i {
    _mm256_set1_epi64x(x as i64)
}

/// Unsigned carry propagation of non-negative limbs: afterwards limbs
/// 0..8 lie in [0, 2^29) and the top limb holds the rest.
#[inline]
#[target_feature(enable = "avx2")]
fn normalised(mut l: [__m256i; LIMBS]) -> [__m256i; LIMBS] {
    let mask = splat(MASK);
    for i in 0..LIMBS - 1 {
        l[i + 1] = _mm256_add_epi64(l[i + 1], _mm256_srli_epi64::<29>(l[i]));
        l[i] = _mm256_and_si256(l[i], mask);
    }
    l
}

/// `v - kq` for normalised v, and an all-ones lane mask where that is not negative.
#[inline]
#[target_feature(enable = "avx2")]
fn minus_kq(v: &[__m256i; LIMBS], k: usize) -> ([__m256i; LIMBS], __m256i) {
    let mask = splat(MASK);
    let mut borrow = _mm256_setzero_si256();
    let mut out = *v;
    for (i, limb) in out.iter_mut().enumerate() {
        // In (-2^29 - 1, 2^29): the low 29 bits are the limb, the sign the borrow.
        let d = _mm256_sub_epi64(_mm256_sub_epi64(*limb, splat(Q_MULTIPLES[k - 1][i])), borrow);
        *limb = _mm256_and_si256(d, mask);
        borrow = _mm256_srli_epi64::<63>(d);
    }
    (out, _mm256_cmpeq_epi64(borrow, _mm256_setzero_si256()))
}

/// Reduce v in [0, n*step*q] (limb-wise, non-negative) by multiples of
/// step*q: the last candidate v - k*step*q (k < n) that is not negative
/// wins. Step 1 gives the canonical value, step 2 one below 2q.
#[inline]
#[target_feature(enable = "avx2")]
fn reduced(v: [__m256i; LIMBS], n: usize, step: usize) -> Fr4 {
    let v = normalised(v);
    let mut out = v;
    for k in 1..n {
        let (candidate, fits) = minus_kq(&v, k * step);
        for (o, c) in out.iter_mut().zip(candidate) {
            *o = _mm256_blendv_epi8(*o, c, fits);
        }
    }
    Fr4(out)
}

impl Fr4 {
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn splat_limbs(limbs: [u64; LIMBS]) -> Fr4 {
        Fr4(limbs.map(|x| splat(x)))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn zero() -> Fr4 {
        Fr4([_mm256_setzero_si256(); LIMBS])
    }

    /// Four elements.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn from_scalars(values: &[Fr; 4]) -> Fr4 {
        let limbs = values.each_ref().map(limbs29);
        Fr4(std::array::from_fn(|i| {
            let row = [limbs[0][i], limbs[1][i], limbs[2][i], limbs[3][i]];
            // SAFETY: an unaligned load of four u64 from a local array.
            unsafe { _mm256_loadu_si256(row.as_ptr().cast()) }
        }))
    }

    /// The four elements, made canonical first.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn to_scalars(self) -> [Fr; 4] {
        let canonical = self.canonical();
        let mut rows = [[0u64; 4]; LIMBS];
        for (row, limb) in rows.iter_mut().zip(&canonical.0) {
            // SAFETY: an unaligned store of four u64 into a local array.
            unsafe { _mm256_storeu_si256(row.as_mut_ptr().cast(), *limb) };
        }
        std::array::from_fn(|lane| from_lanes_form(&Fr::new_unchecked(BigInt::new(join29(rows.map(|row| row[lane]))))))
    }

    /// The canonical (< q) form, for self < 2q.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn canonical(&self) -> Fr4 {
        reduced(self.0, 2, 1)
    }

    /// self + b reduced to below 2q, for self, b < 2q.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn add_lazy(&self, b: &Fr4) -> Fr4 {
        reduced(std::array::from_fn(|i| _mm256_add_epi64(self.0[i], b.0[i])), 2, 2)
    }

    /// The sum of three values, each below 2q, reduced to below 2q (the
    /// lanes sum a row's products before reducing, in [`Fr4::dot3`]; kept
    /// for the tests of the lazy bounds).
    #[cfg(test)]
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn sum3_lazy(a: &Fr4, b: &Fr4, c: &Fr4) -> Fr4 {
        let v = std::array::from_fn(|i| _mm256_add_epi64(_mm256_add_epi64(a.0[i], b.0[i]), c.0[i]));
        reduced(v, 3, 2)
    }

    /// The Montgomery product self * b / 2^256, below 2q for inputs below
    /// 2q: [`Fr4::dot`] of one pair.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn mul(&self, b: &Fr4) -> Fr4 {
        Fr4::dot([self], [b])
    }

    /// a0 b0 + a1 b1 + a2 b2 (each below 2q), below 2q: the three products
    /// summed before one Montgomery reduction instead of three (Poseidon's
    /// matrix rows; below 1.1q, see the module comment).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn dot3(a: [&Fr4; 3], b: [&Fr4; 3]) -> Fr4 {
        Fr4::dot(a, b)
    }

    /// Σ a_p b_p / 2^261 (P at most 3), operand by operand (CIOS): for each
    /// limb i of the a's, add a_p,i b_p into nine column sums, pick m to
    /// clear the lowest column's low 29 bits, add m q, and shift the sums
    /// down a column, carrying. The nine sums stay in registers; the b's
    /// and q are read from memory as the products' operands (AVX2 has
    /// sixteen registers). Each sum gathers at most 9P products of the
    /// operands and 9 of the reduction, each below 2^58, and a carry: below
    /// 2^64 for P <= 3. The result is below P * 4q^2 / 2^261 + q < 1.1q.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn dot<const P: usize>(a: [&Fr4; P], b: [&Fr4; P]) -> Fr4 {
        const { assert!(P >= 1 && P <= 3, "a column of more than three products could overflow") };
        let (qinv, mask) = (splat(QINV29), splat(MASK));
        let q = &Q_SPLAT;
        let mut t = [_mm256_setzero_si256(); LIMBS];
        for i in 0..LIMBS {
            for p in 0..P {
                let ai = a[p].0[i];
                for (tj, bj) in t.iter_mut().zip(&b[p].0) {
                    *tj = _mm256_add_epi64(*tj, _mm256_mul_epu32(ai, *bj));
                }
            }
            // vpmuludq reads the low 32 bits: enough for the low 29 of m.
            let m = _mm256_and_si256(_mm256_mul_epu32(t[0], qinv), mask);
            for (tj, qj) in t.iter_mut().zip(q) {
                // SAFETY: an aligned load of a 32-byte row of Q_SPLAT.
                let qj = unsafe { _mm256_load_si256(qj.0.as_ptr().cast()) };
                *tj = _mm256_add_epi64(*tj, _mm256_mul_epu32(m, qj));
            }
            let carry = _mm256_srli_epi64::<29>(t[0]);
            for j in 0..LIMBS - 1 {
                t[j] = t[j + 1];
            }
            t[0] = _mm256_add_epi64(t[0], carry);
            t[LIMBS - 1] = _mm256_setzero_si256();
        }
        // t holds the result's columns, 29 bits apart: normalise them.
        Fr4(normalised(t))
    }
}

/// q's limbs, each splatted over four lanes in an aligned row (the
/// products' memory operands).
#[repr(C, align(32))]
struct Row([u64; 4]);

static Q_SPLAT: [Row; LIMBS] = {
    let q = Q_MULTIPLES[0];
    let mut rows = [const { Row([0; 4]) }; LIMBS];
    let mut i = 0;
    while i < LIMBS {
        rows[i] = Row([q[i]; 4]);
        i += 1;
    }
    rows
};

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{AdditiveGroup, BigInteger, Field, UniformRand};
    use rand::SeedableRng;

    /// Values below 2q with every edge: 0, 1, q - 1, and q + x (the lazy form).
    fn samples(rng: &mut impl rand::RngCore) -> Vec<[u64; 4]> {
        let plus_q = |x: Fr| {
            let mut w = x.0;
            assert!(!w.add_with_carry(&FrConfig::MODULUS), "below 2q < 2^256");
            w.0
        };
        let mut out: Vec<[u64; 4]> = [Fr::ZERO, Fr::ONE, -Fr::ONE].iter().map(|x| x.0 .0).collect();
        out.push(plus_q(-Fr::ONE));
        out.push(plus_q(Fr::ZERO));
        for _ in 0..64 {
            let x = Fr::rand(rng);
            out.push(x.0 .0);
            out.push(plus_q(x));
        }
        out
    }

    /// Lanes holding the numbers `words` as they are (lazy ones too).
    fn lanes(words: &[[u64; 4]; 4]) -> Fr4 {
        let limbs = words.map(split29);
        Fr4(std::array::from_fn(|i| {
            let row = [limbs[0][i], limbs[1][i], limbs[2][i], limbs[3][i]];
            // SAFETY: the test returned early where AVX2 is missing; an
            // unaligned load of four u64 from a local array.
            unsafe { _mm256_loadu_si256(row.as_ptr().cast()) }
        }))
    }

    /// The field element a lazy (< 2q) number in the lanes' form stands for.
    fn value(w: [u64; 4]) -> Fr {
        let mut v = BigInt::new(w);
        if v >= FrConfig::MODULUS {
            v.sub_with_borrow(&FrConfig::MODULUS);
        }
        from_lanes_form(&Fr::new_unchecked(v))
    }

    #[test]
    fn products_sums_and_canonical_forms_match_arkworks_on_lazy_inputs() {
        if !supported() {
            eprintln!("SKIPPED: no AVX2");
            return;
        }
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(29);
        let all = samples(&mut rng);
        for (n, window) in all.windows(12).enumerate() {
            let a: [[u64; 4]; 4] = std::array::from_fn(|l| window[l]);
            let b: [[u64; 4]; 4] = std::array::from_fn(|l| window[4 + l]);
            let c: [[u64; 4]; 4] = std::array::from_fn(|l| window[8 + l]);
            let (x, y, z) = (lanes(&a), lanes(&b), lanes(&c));
            // SAFETY: AVX2 checked above.
            let (product, sum, sum3, square_chain, dot) = unsafe {
                let dot = Fr4::dot3([&x, &y, &z], [&z, &x, &y]);
                (x.mul(&y), x.add_lazy(&y), Fr4::sum3_lazy(&x, &y, &z), x.mul(&x).mul(&y).mul(&z), dot)
            };
            let results = unsafe { [product, sum, sum3, square_chain, dot].map(|r| r.to_scalars()) };
            for l in 0..4 {
                let (va, vb, vc) = (value(a[l]), value(b[l]), value(c[l]));
                assert_eq!(results[0][l], va * vb, "product, window {n} lane {l}");
                assert_eq!(results[1][l], va + vb, "sum, window {n} lane {l}");
                assert_eq!(results[2][l], va + vb + vc, "sum of three, window {n} lane {l}");
                assert_eq!(results[3][l], va.square() * vb * vc, "chained products, window {n} lane {l}");
                assert_eq!(results[4][l], va * vc + vb * va + vc * vb, "a row's dot product, window {n} lane {l}");
            }
        }
    }

    #[test]
    fn limbs_round_trip_and_constants_hold() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(30);
        for _ in 0..100 {
            let x = Fr::rand(&mut rng);
            assert_eq!(join29(split29(x.0 .0)), x.0 .0);
            assert_eq!(from_lanes_form(&Fr::new_unchecked(BigInt::new(join29(limbs29(&x))))), x);
            // SAFETY: to and from the lanes, where AVX2 is (the conversions are scalar otherwise).
            if supported() {
                assert_eq!(unsafe { Fr4::from_scalars(&[x; 4]).to_scalars() }, [x; 4]);
            }
        }
        assert_eq!(QINV29.wrapping_mul(FrConfig::MODULUS.0[0]) & MASK, MASK, "q * qinv = -1 mod 2^29");
        assert_eq!(join29(Q_MULTIPLES[3]), times_q(4));
    }
}
