//! Eight elements of one of BN254's fields at once with AVX-512 IFMA
//! (`vpmadd52{l,h}uq`: eight 52x52-bit multiply-adds per instruction):
//! [`Fq8`] for the MSM's batched additions, [`Fr8`] for Poseidon in lanes.
//!
//! Layout: five limbs in radix 2^52, one `__m512i` per limb, lane l holding
//! element l. The value is arkworks' own Montgomery form aR mod q with
//! R = 2^256 (not 2^260): the last reduction step clears only 48 bits, so
//! converting from and to arkworks' limbs is bit repacking, never a product.
//! (q below is the field's modulus, either BN254's base or scalar prime.)
//!
//! Lazy bounds (q < 0.19 * 2^256, checked at compile time for each field): multiplication takes inputs < 2q and
//! returns < ab/2^256 + q < (4 * 0.19 + 1)q < 2q, so products chain without
//! reduction. Inputs to a product must have normalised limbs (< 2^52), since
//! IFMA reads only the low 52 bits; every function here returns normalised
//! limbs. Values leaving for memory are reduced to canonical (< q).

use std::arch::x86_64::*;

use std::marker::PhantomData;

use ark_bn254::{FqConfig, FrConfig};
use ark_ff::{Fp256, MontBackend, MontConfig};

const MASK52: u64 = (1 << 52) - 1;

/// Whether this CPU has the lanes (AVX-512F and IFMA), detected once: the
/// one check behind every IFMA kernel (MSM, NTT, Poseidon).
pub fn supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512ifma"))
}

/// Four little-endian 64-bit words as five 52-bit limbs.
const fn split52(w: [u64; 4]) -> [u64; 5] {
    [
        w[0] & MASK52,
        ((w[0] >> 52) | (w[1] << 12)) & MASK52,
        ((w[1] >> 40) | (w[2] << 24)) & MASK52,
        ((w[2] >> 28) | (w[3] << 36)) & MASK52,
        w[3] >> 16,
    ]
}

/// A field's constants in radix 2^52, for any 4-limb Montgomery field.
pub trait Limbs52: MontConfig<4> {
    /// The modulus q.
    const Q52: [u64; 5] = split52(Self::MODULUS.0);
    /// -q^-1 mod 2^52 (arkworks' INV is -q^-1 mod 2^64).
    const QINV52: u64 = Self::INV & MASK52;
    /// Montgomery form of one, R mod q.
    const ONE52: [u64; 5] = split52(Self::R.0);
    /// The lazy bounds of the module comment need q < 0.19 * 2^256.
    const FITS: () = assert!(Self::MODULUS.0[3] < 0x30A3_D70A_3D70_A3D7, "the modulus must be below 0.19 * 2^256");
}

impl<C: MontConfig<4>> Limbs52 for C {}

/// A field element's (Montgomery) limbs in radix 2^52, for [`Field8::splat_limbs`].
pub fn limbs52<C: Limbs52>(value: &Scalar<C>) -> [u64; 5] {
    split52(value.0 .0)
}

/// Eight elements of the field `C` describes, limb-major (see the module comment).
pub struct Field8<C>(pub [__m512i; 5], PhantomData<C>);

impl<C> Clone for Field8<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Field8<C> {}

/// Eight elements of BN254's base field.
pub type Fq8 = Field8<FqConfig>;
/// Eight elements of BN254's scalar field.
pub type Fr8 = Field8<FrConfig>;

/// The scalar field element the lanes of `Field8<C>` hold.
pub type Scalar<C> = Fp256<MontBackend<C, 4>>;

/// The same eight elements in memory (64-byte aligned rows, one per limb).
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
pub struct Lanes(pub [[u64; 8]; 5]);

#[inline]
#[target_feature(enable = "avx512f")]
fn splat(x: u64) -> __m512i {
    _mm512_set1_epi64(x as i64)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn mask52() -> __m512i {
    splat(MASK52)
}

impl<C: Limbs52> Field8<C> {
    #[inline]
    fn new(limbs: [__m512i; 5]) -> Self {
        let () = C::FITS;
        Field8(limbs, PhantomData)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn splat_limbs(limbs: [u64; 5]) -> Self {
        Self::new(limbs.map(|x| splat(x)))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn one() -> Self {
        Self::splat_limbs(C::ONE52)
    }

    /// The same element in every lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn splat(value: &Scalar<C>) -> Self {
        Self::splat_limbs(limbs52(value))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn zero() -> Self {
        Self::splat_limbs([0; 5])
    }

    /// From four vectors of 64-bit words (lane l: arkworks limbs of element l, < 2^256).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn from_words(w: [__m512i; 4]) -> Self {
        let m = mask52();
        Self::new([
            _mm512_and_si512(w[0], m),
            _mm512_and_si512(_mm512_or_si512(_mm512_srli_epi64::<52>(w[0]), _mm512_slli_epi64::<12>(w[1])), m),
            _mm512_and_si512(_mm512_or_si512(_mm512_srli_epi64::<40>(w[1]), _mm512_slli_epi64::<24>(w[2])), m),
            _mm512_and_si512(_mm512_or_si512(_mm512_srli_epi64::<28>(w[2]), _mm512_slli_epi64::<36>(w[3])), m),
            _mm512_srli_epi64::<16>(w[3]),
        ])
    }

    /// Back to 64-bit words; the value must be normalised and < 2^256.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn to_words(self) -> [__m512i; 4] {
        let l = &self.0;
        [
            _mm512_or_si512(l[0], _mm512_slli_epi64::<52>(l[1])),
            _mm512_or_si512(_mm512_srli_epi64::<12>(l[1]), _mm512_slli_epi64::<40>(l[2])),
            _mm512_or_si512(_mm512_srli_epi64::<24>(l[2]), _mm512_slli_epi64::<28>(l[3])),
            _mm512_or_si512(_mm512_srli_epi64::<36>(l[3]), _mm512_slli_epi64::<16>(l[4])),
        ]
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn load(lanes: &Lanes) -> Self {
        // SAFETY: each row is 64 bytes and 64-byte aligned (repr(align(64)), rows of 8 u64).
        Self::new(lanes.0.map(|row| unsafe { _mm512_load_si512(row.as_ptr().cast()) }))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn store(&self) -> Lanes {
        let mut out = Lanes::default();
        for (row, limb) in out.0.iter_mut().zip(&self.0) {
            // SAFETY: as in `load`: an aligned 64-byte row.
            unsafe { _mm512_store_si512(row.as_mut_ptr().cast(), *limb) };
        }
        out
    }

    /// Eight scalar elements (any < 2^256 limbs, e.g. arkworks' canonical form).
    pub fn from_scalars(values: &[Scalar<C>; 8]) -> Lanes {
        let mut out = Lanes::default();
        for (lane, v) in values.iter().enumerate() {
            for (limb, x) in split52(v.0 .0).into_iter().enumerate() {
                out.0[limb][lane] = x;
            }
        }
        out
    }

    /// Canonical scalar elements from lanes holding a canonical (< q) value.
    pub fn to_scalars(lanes: &Lanes) -> [Scalar<C>; 8] {
        std::array::from_fn(|lane| {
            let l: [u64; 5] = std::array::from_fn(|i| lanes.0[i][lane]);
            let w = [
                l[0] | (l[1] << 52),
                (l[1] >> 12) | (l[2] << 40),
                (l[2] >> 24) | (l[3] << 28),
                (l[3] >> 36) | (l[4] << 16),
            ];
            Scalar::<C>::new_unchecked(ark_ff::BigInt::new(w))
        })
    }
}

/// Signed carry propagation: afterwards limbs 0..4 lie in [0, 2^52) and the
/// top limb carries the sign of the whole value.
#[inline]
#[target_feature(enable = "avx512f")]
fn propagate(mut l: [__m512i; 5]) -> [__m512i; 5] {
    let m = mask52();
    for i in 0..4 {
        let carry = _mm512_srai_epi64::<52>(l[i]);
        l[i] = _mm512_and_si512(l[i], m);
        l[i + 1] = _mm512_add_epi64(l[i + 1], carry);
    }
    l
}

/// Limb-wise a - b + k*q, not yet propagated (limbs are signed 64-bit and small).
#[inline]
#[target_feature(enable = "avx512f")]
fn sub_plus_kq<C: Limbs52>(a: &[__m512i; 5], b: &[__m512i; 5], k: u64) -> [__m512i; 5] {
    std::array::from_fn(|i| _mm512_add_epi64(_mm512_sub_epi64(a[i], b[i]), splat(C::Q52[i] * k)))
}

/// Reduce a limb-wise value v in [0, n*step*q] by multiples of step*q:
/// the candidates v - k*step*q (k < n) are propagated independently
/// (parallel chains) and the last non-negative one wins. Step 1 gives the
/// canonical value, step 2 one at most 2q (enough for products).
#[inline]
#[target_feature(enable = "avx512f")]
fn reduced<C: Limbs52>(v: [__m512i; 5], n: u64, step: u64) -> Field8<C> {
    let zero = _mm512_setzero_si512();
    let mut out = propagate(v);
    for k in 1..n {
        let c = propagate(std::array::from_fn(|i| _mm512_sub_epi64(v[i], splat(C::Q52[i] * k * step))));
        let non_negative = _mm512_cmpge_epi64_mask(c[4], zero);
        for i in 0..5 {
            out[i] = _mm512_mask_blend_epi64(non_negative, out[i], c[i]);
        }
    }
    Field8::new(out)
}

/// Canonical form of v in (0, n*q).
#[inline]
#[target_feature(enable = "avx512f")]
fn canonical_from<C: Limbs52>(v: [__m512i; 5], n: u64) -> Field8<C> {
    reduced(v, n, 1)
}

/// At most 2q from v in [0, 2n*q].
#[inline]
#[target_feature(enable = "avx512f")]
fn below_2q_from<C: Limbs52>(v: [__m512i; 5], n: u64) -> Field8<C> {
    reduced(v, n, 2)
}

impl<C: Limbs52> Field8<C> {
    /// a - b + q: in (0, 2q) for canonical a, b (or a <= q, b < q).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn sub_lazy(&self, b: &Self) -> Self {
        Self::new(propagate(sub_plus_kq::<C>(&self.0, &b.0, 1)))
    }

    /// Canonical form of a value <= 2q (2q itself only from `raw_sub_lazy`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn canonical(&self) -> Self {
        canonical_from(self.0, 3)
    }

    /// Canonical (self - b - c) for self < 2q and canonical b, c.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn sub2_canonical(&self, b: &Self, c: &Self) -> Self {
        // self - b - c + 2q lies in (0, 4q).
        let v = std::array::from_fn(|i| {
            _mm512_add_epi64(_mm512_sub_epi64(_mm512_sub_epi64(self.0[i], b.0[i]), c.0[i]), splat(C::Q52[i] * 2))
        });
        canonical_from(v, 4)
    }

    /// Canonical (self - b) for self < 2q and canonical b.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn sub_canonical(&self, b: &Self) -> Self {
        // self - b + q lies in (0, 3q).
        canonical_from(sub_plus_kq::<C>(&self.0, &b.0, 1), 3)
    }

    /// Canonical (self + b) for canonical self and b.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn add_canonical(&self, b: &Self) -> Self {
        canonical_from(std::array::from_fn(|i| _mm512_add_epi64(self.0[i], b.0[i])), 2)
    }

    /// self + b reduced to at most 2q, for self, b <= 2q.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn add_lazy(&self, b: &Self) -> Self {
        below_2q_from(std::array::from_fn(|i| _mm512_add_epi64(self.0[i], b.0[i])), 2)
    }

    /// self - b - c reduced to at most 2q, for self, b, c <= 2q.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn sub2_lazy(&self, b: &Self, c: &Self) -> Self {
        // self - b - c + 4q lies in [0, 6q].
        let v = std::array::from_fn(|i| {
            _mm512_add_epi64(_mm512_sub_epi64(_mm512_sub_epi64(self.0[i], b.0[i]), c.0[i]), splat(C::Q52[i] * 4))
        });
        below_2q_from(v, 3)
    }

    /// self - b reduced to at most 2q, for self, b <= 2q.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn sub_reduced(&self, b: &Self) -> Self {
        // self - b + 2q lies in [0, 4q].
        below_2q_from(sub_plus_kq::<C>(&self.0, &b.0, 2), 2)
    }

    /// Per lane: q - self where `negate` is set, else self (self canonical,
    /// result <= q), with limbs left unpropagated for the caller's subtraction.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn neg_if_raw(&self, negate: __mmask8) -> [__m512i; 5] {
        std::array::from_fn(|i| {
            let negated = _mm512_sub_epi64(splat(C::Q52[i]), self.0[i]);
            _mm512_mask_blend_epi64(negate, self.0[i], negated)
        })
    }

    /// raw - b + q, propagated: in (0, 2q] for raw <= q (from `neg_if_raw`), canonical b.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn raw_sub_lazy(raw: &[__m512i; 5], b: &Self) -> Self {
        Self::new(propagate(sub_plus_kq::<C>(raw, &b.0, 1)))
    }

    /// Montgomery product a*b/2^256 mod q, < 2q for inputs <= 2q (module comment).
    ///
    /// Schoolbook product into ten 64-bit column accumulators (each column
    /// gets at most 21 terms < 2^52: no overflow), then [`reduce`].
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn mul(&self, b: &Self) -> Self {
        let mut t = [_mm512_setzero_si512(); 10];
        product_into(&mut t, &self.0, &b.0);
        Self::new(reduce::<C>(t))
    }

    /// self², < 2q for self <= 2q: [`Self::mul`] with each cross product
    /// computed once and doubled (15 products instead of 25; the columns
    /// get the same terms).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn square(&self) -> Self {
        let a = &self.0;
        let mut t = [_mm512_setzero_si512(); 10];
        for i in 0..5 {
            for j in i + 1..5 {
                t[i + j] = _mm512_madd52lo_epu64(t[i + j], a[i], a[j]);
                t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], a[i], a[j]);
            }
        }
        for column in t.iter_mut() {
            *column = _mm512_add_epi64(*column, *column);
        }
        for i in 0..5 {
            t[2 * i] = _mm512_madd52lo_epu64(t[2 * i], a[i], a[i]);
            t[2 * i + 1] = _mm512_madd52hi_epu64(t[2 * i + 1], a[i], a[i]);
        }
        Self::new(reduce::<C>(t))
    }

    /// a0 b0 + a1 b1 + a2 b2 for inputs <= 2q, at most 2q: the three
    /// products summed in the columns (at most 27 terms < 2^52 each, plus
    /// 9 of the reduction and a carry: below 2^58) before one reduction
    /// instead of three. The reduced sum is below 12q^2/2^256 + q < 3.3q
    /// (q < 0.19 * 2^256), so one conditional subtraction of 2q follows.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn dot3(a: [&Self; 3], b: [&Self; 3]) -> Self {
        let mut t = [_mm512_setzero_si512(); 10];
        for (a, b) in a.iter().zip(b) {
            product_into(&mut t, &a.0, &b.0);
        }
        below_2q_from(reduce::<C>(t), 2)
    }
}

/// Add the schoolbook product of a and b (normalised limbs) into the ten
/// columns t: the low 52 bits of a_i b_j into column i + j, the high into
/// i + j + 1.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn product_into(t: &mut [__m512i; 10], a: &[__m512i; 5], b: &[__m512i; 5]) {
    for i in 0..5 {
        for j in 0..5 {
            t[i + j] = _mm512_madd52lo_epu64(t[i + j], a[i], b[j]);
            t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], a[i], b[j]);
        }
    }
}

/// Montgomery reduction of the columns t (a value below 0.44 * 2^512, with
/// room for the reduction's terms in each column): five steps clearing 52,
/// 52, 52, 52 and 48 bits, each carrying its cleared column into the next,
/// then t / 2^256 in normalised limbs.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn reduce<C: Limbs52>(mut t: [__m512i; 10]) -> [__m512i; 5] {
    let zero = _mm512_setzero_si512();
    let qinv = splat(C::QINV52);
    let q = C::Q52.map(|x| splat(x));
    for i in 0..5 {
        let mut m = _mm512_madd52lo_epu64(zero, t[i], qinv);
        if i == 4 {
            // 4 * 52 + 48 = 256: the last step clears only 48 bits.
            m = _mm512_and_si512(m, splat((1 << 48) - 1));
        }
        for j in 0..5 {
            t[i + j] = _mm512_madd52lo_epu64(t[i + j], m, q[j]);
            t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], m, q[j]);
        }
        if i < 4 {
            t[i + 1] = _mm512_add_epi64(t[i + 1], _mm512_srli_epi64::<52>(t[i]));
        }
    }
    // Normalise columns 4..9 (column 4's low 48 bits are zero), then
    // shift the whole by 48 bits: result limb j = bits 48.. of column 4 + j.
    let m = mask52();
    for k in 4..9 {
        t[k + 1] = _mm512_add_epi64(t[k + 1], _mm512_srli_epi64::<52>(t[k]));
        t[k] = _mm512_and_si512(t[k], m);
    }
    std::array::from_fn(|j| {
        let high = if j < 4 { _mm512_and_si512(_mm512_slli_epi64::<4>(t[5 + j]), m) } else { zero };
        let high = if j == 4 { _mm512_slli_epi64::<4>(t[9]) } else { high };
        _mm512_or_si512(_mm512_srli_epi64::<48>(t[4 + j]), high)
    })
}

/// Invert eight lane values (< 2q, non-zero mod q) with one scalar inversion.
#[target_feature(enable = "avx512f")]
pub fn invert_lanes<C: Limbs52>(values: &Field8<C>) -> Field8<C> {
    let scalars = Field8::<C>::to_scalars(&values.canonical().store());
    Field8::load(&Field8::<C>::from_scalars(&invert_eight(&scalars)))
}

/// Eight non-zero field elements inverted with one inversion (Montgomery's trick).
pub fn invert_eight<F: super::inverse::FastInverse>(values: &[F; 8]) -> [F; 8] {
    let mut prefix = [F::ONE; 8];
    let mut acc = F::ONE;
    for (p, s) in prefix.iter_mut().zip(values) {
        *p = acc;
        acc *= s;
    }
    let mut inverse = acc.fast_inverse().unwrap_or(F::ZERO);
    debug_assert!(!inverse.is_zero(), "batch-affine denominator was zero");
    let mut out = [F::ZERO; 8];
    for lane in (0..8).rev() {
        out[lane] = inverse * prefix[lane];
        inverse *= values[lane];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{AdditiveGroup, Field, UniformRand};
    use rand::SeedableRng;

    fn has_ifma() -> bool {
        let ok = std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512ifma");
        if !ok {
            eprintln!("SKIPPED: this CPU lacks AVX-512 IFMA; the vector field paths are untested here");
        }
        ok
    }

    type S<C> = Scalar<C>;

    fn values<C: Limbs52>() -> Vec<S<C>> {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(21);
        let mut q_minus_one = C::MODULUS;
        q_minus_one.0[0] -= 1;
        let mut v = vec![S::<C>::ZERO, S::<C>::ONE, -S::<C>::ONE, S::<C>::from(2u64), -S::<C>::from(2u64)];
        // Montgomery limbs near 2^254 (the largest canonical limbs) and small ones.
        v.push(S::<C>::new_unchecked(ark_ff::BigInt::new([0, 0, 0, 1 << 61])));
        v.push(S::<C>::new_unchecked(ark_ff::BigInt::new([1, 0, 0, 0])));
        v.push(S::<C>::new_unchecked(ark_ff::BigInt::new([u64::MAX, u64::MAX, u64::MAX, 1 << 61])));
        // The largest canonical limbs: q - 1 as a Montgomery representation.
        v.push(S::<C>::new_unchecked(q_minus_one));
        v.extend((0..300).map(|_| S::<C>::rand(&mut rng)));
        v
    }

    /// Run `f` over every 8-window of `a` against the rotated `b`, so each value meets every lane.
    fn for_lanes<F: Copy>(a: &[F], b: &[F], mut f: impl FnMut(&[F; 8], &[F; 8])) {
        for start in 0..a.len() {
            let x: [F; 8] = std::array::from_fn(|l| a[(start + l) % a.len()]);
            let y: [F; 8] = std::array::from_fn(|l| b[(start * 7 + l * 3) % b.len()]);
            f(&x, &y);
        }
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    fn check_ops<C: Limbs52>(x: &[S<C>; 8], y: &[S<C>; 8], z: &[S<C>; 8]) {
        let load = |v: &[S<C>; 8]| Field8::<C>::load(&Field8::<C>::from_scalars(v));
        let (a, b, c) = (load(x), load(y), load(z));
        let back = |v: Field8<C>| Field8::<C>::to_scalars(&v.canonical().store());
        let exact = |v: Field8<C>| Field8::<C>::to_scalars(&v.store());
        // Conversions round-trip exactly through the vector word form.
        assert_eq!(exact(Field8::<C>::from_words(a.to_words())), *x);
        let product: [S<C>; 8] = std::array::from_fn(|l| x[l] * y[l]);
        assert_eq!(back(a.mul(&b)), product);
        // Lazy inputs (< 2q) into products.
        let dx = a.sub_lazy(&b);
        assert_eq!(back(dx), std::array::from_fn(|l| x[l] - y[l]));
        assert_eq!(back(dx.mul(&dx)), std::array::from_fn(|l| (x[l] - y[l]).square()));
        assert_eq!(back(dx.mul(&a.sub_lazy(&c))), std::array::from_fn(|l| (x[l] - y[l]) * (x[l] - z[l])));
        let lazy = dx.mul(&dx);
        assert_eq!(exact(lazy.sub2_canonical(&b, &c)), std::array::from_fn(|l| (x[l] - y[l]).square() - y[l] - z[l]));
        assert_eq!(exact(lazy.sub_canonical(&c)), std::array::from_fn(|l| (x[l] - y[l]).square() - z[l]));
        assert_eq!(exact(a.canonical()), *x);
        for negate in [0u8, 0xff, 0b1010_0110] {
            let raw = a.neg_if_raw(negate);
            let expected = std::array::from_fn(|l| if negate >> l & 1 == 1 { -x[l] - y[l] } else { x[l] - y[l] });
            let d = Field8::<C>::raw_sub_lazy(&raw, &b);
            assert_eq!(back(d), expected);
            assert_eq!(back(d.mul(&d)), expected.map(|e| e.square()));
        }
        let one = Field8::<C>::one();
        assert_eq!(back(a.mul(&one)), *x);
        // Squares and rows of three products, on lazy inputs, chain into
        // further products (at most 2q out).
        let (dy, dz) = (b.sub_lazy(&c), c.sub_lazy(&a));
        let e: [[S<C>; 8]; 3] = [
            std::array::from_fn(|l| x[l] - y[l]),
            std::array::from_fn(|l| y[l] - z[l]),
            std::array::from_fn(|l| z[l] - x[l]),
        ];
        assert_eq!(back(dx.square()), e[0].map(|v| v.square()));
        assert_eq!(back(a.square()), x.map(|v| v.square()));
        let row = Field8::<C>::dot3([&dx, &dy, &dz], [&dy, &dz, &dx]);
        let expected: [S<C>; 8] = std::array::from_fn(|l| e[0][l] * e[1][l] + e[1][l] * e[2][l] + e[2][l] * e[0][l]);
        assert_eq!(back(row), expected);
        assert_eq!(back(row.mul(&row.square())), expected.map(|v| v * v.square()));
        assert_eq!(
            back(Field8::<C>::dot3([&a, &b, &c], [&a, &b, &c])),
            std::array::from_fn(|l| x[l].square() + y[l].square() + z[l].square())
        );
        for negate in [0xffu8, 0b0101_1001] {
            // Up to 2q exactly: the largest inputs a product takes.
            let d = Field8::<C>::raw_sub_lazy(&a.neg_if_raw(negate), &b);
            let v: [S<C>; 8] = std::array::from_fn(|l| if negate >> l & 1 == 1 { -x[l] - y[l] } else { x[l] - y[l] });
            assert_eq!(back(d.square()), v.map(|v| v.square()));
            let three = Field8::<C>::dot3([&d, &d, &d], [&d, &d, &d]);
            assert_eq!(back(three), v.map(|v| v.square() * S::<C>::from(3u64)));
            assert_eq!(back(three.square()), v.map(|v| (v.square() * S::<C>::from(3u64)).square()));
        }
    }

    #[test]
    fn vector_field_ops_match_arkworks_in_every_lane() {
        if !has_ifma() {
            return;
        }
        ops_match::<FqConfig>();
        ops_match::<FrConfig>();
    }

    fn ops_match<C: Limbs52>() {
        let v = values::<C>();
        let mut rotated = v.clone();
        rotated.rotate_left(3);
        for_lanes(&v, &v, |x, y| {
            let z: [S<C>; 8] = std::array::from_fn(|l| rotated[(l * 5 + 1) % rotated.len()] + x[l]);
            // SAFETY: has_ifma() checked the features.
            unsafe { check_ops(x, y, &z) }
        });
    }

    #[target_feature(enable = "avx512f")]
    fn invert_canonical<C: Limbs52>(x: &[S<C>; 8]) -> [S<C>; 8] {
        Field8::<C>::to_scalars(&invert_lanes(&Field8::<C>::load(&Field8::<C>::from_scalars(x))).canonical().store())
    }

    #[test]
    fn lane_inversion() {
        if !has_ifma() {
            return;
        }
        let v = values::<FqConfig>();
        for_lanes(&v[1..], &v[1..], |x, _| {
            // SAFETY: has_ifma() checked the features.
            let inv = unsafe { invert_canonical(x) };
            assert_eq!(inv, x.map(|e| e.inverse().unwrap()));
        });
    }
}
