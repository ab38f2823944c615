//! Field inversion by Bernstein–Yang divsteps ("safegcd"), variable time.
//!
//! arkworks inverts with a binary extended Euclid over four-limb integers:
//! about 500 rounds, each shifting and adding whole numbers. Here 62
//! divsteps at a time run on the numbers' lowest 64-bit words alone, which
//! decide them, and yield a 2×2 matrix with entries below 2^62; the full
//! numbers are then updated once by that matrix. The MSM's batched affine
//! additions invert once per batch, so this is a few percent of a proof.
//!
//! Like arkworks', the time depends on the value: use it for data whose
//! timing does not matter (bucket sums of public keys' points).
//!
//! Numbers are five signed limbs of 62 bits: limbs 0..4 in [0, 2^62), the
//! top one signed, so the matrix products fit in i128.

use ark_bn254::{Fq2, Fq2Config};
use ark_ff::{BigInt, Field, Fp256, Fp2Config, MontBackend, MontConfig, PrimeField};

const BITS: u32 = 62;
const MASK: u64 = (1 << BITS) - 1;

type Limbs = [i64; 5];

/// A 2×2 transition matrix: 2^62·(f', g') = (u·f + v·g, q·f + r·g).
struct Matrix {
    u: i64,
    v: i64,
    q: i64,
    r: i64,
}

/// Fields inverted here rather than by arkworks.
pub trait FastInverse: Field {
    /// `self^-1`, `None` for zero.
    fn fast_inverse(&self) -> Option<Self>;
}

impl<P: MontConfig<4>> FastInverse for Fp256<MontBackend<P, 4>> {
    fn fast_inverse(&self) -> Option<Self> {
        inverse(self)
    }
}

/// (a + b·u)⁻¹ = (a − b·u) / (a² − β·b²): one inversion in Fq.
impl FastInverse for Fq2 {
    fn fast_inverse(&self) -> Option<Self> {
        let norm = self.c0.square() - Fq2Config::NONRESIDUE * self.c1.square();
        let scale = inverse(&norm)?;
        Some(Fq2::new(self.c0 * scale, -(self.c1 * scale)))
    }
}

/// `value^-1` in its field, `None` for zero.
pub fn inverse<P: MontConfig<4>>(value: &Fp256<MontBackend<P, 4>>) -> Option<Fp256<MontBackend<P, 4>>> {
    // The element is held as value·R; its raw inverse is value⁻¹·R⁻¹, and a
    // Montgomery product with R³ (the element R²) makes it value⁻¹·R.
    let raw = invert_modulo(&value.0 .0, &P::MODULUS.0)?;
    let r_cubed = Fp256::<MontBackend<P, 4>>::from_bigint(P::R2)?;
    Some(Fp256::new_unchecked(BigInt(raw)) * r_cubed)
}

/// x⁻¹ mod m for an odd m below 2^256 and x < m; `None` when they share a factor.
fn invert_modulo(x: &[u64; 4], m: &[u64; 4]) -> Option<[u64; 4]> {
    let modulus = split(m);
    let m_inverse = inverse_mod_2_62(m[0]);
    let (mut f, mut g) = (modulus, split(x));
    let (mut d, mut e): (Limbs, Limbs) = ([0; 5], [1, 0, 0, 0, 0]);
    let mut delta = 1i64;
    // Invariants (mod m): f ≡ d·x, g ≡ e·x. g reaches zero, f then ±gcd.
    while g != [0; 5] {
        let (next, t) = divsteps(delta, f[0] as u64, g[0] as u64);
        delta = next;
        transform(&mut f, &mut g, &t, None);
        transform(&mut d, &mut e, &t, Some((&modulus, m_inverse)));
    }
    match f {
        [1, 0, 0, 0, 0] => {}
        _ if f == negate(&[1, 0, 0, 0, 0]) => d = negate(&d),
        _ => return None,
    }
    Some(join(&reduce(d, &modulus)))
}

/// 62 divsteps on the lowest words of f and g (f odd).
fn divsteps(mut delta: i64, mut f: u64, mut g: u64) -> (i64, Matrix) {
    let (mut u, mut v, mut q, mut r) = (1i64, 0i64, 0i64, 1i64);
    let mut left = BITS;
    loop {
        // A run of even g only halves g: done in one shift (the sentinel bit stops at `left`).
        let zeros = (g | (1u64 << left)).trailing_zeros();
        g >>= zeros;
        u <<= zeros;
        v <<= zeros;
        delta += zeros as i64;
        left -= zeros;
        if left == 0 {
            break;
        }
        // g is odd.
        if delta > 0 {
            (f, g) = (g, g.wrapping_sub(f) >> 1);
            (u, v, q, r) = (q << 1, r << 1, q - u, r - v);
            delta = 1 - delta;
        } else {
            g = g.wrapping_add(f) >> 1;
            (q, r) = (q + u, r + v);
            u <<= 1;
            v <<= 1;
            delta += 1;
        }
        left -= 1;
        if left == 0 {
            break;
        }
    }
    (delta, Matrix { u, v, q, r })
}

/// (a, b) ← (u·a + v·b, q·a + r·b) / 2^62. For f and g the divisions are
/// exact by construction. For d and e (`modulus` given: m and m⁻¹ mod 2^62)
/// a multiple of m in [-2^61·m, 2^61·m] added to each sum makes it
/// divisible, which keeps them right mod m; |d| and |e| grow by at most m/2
/// a round, and ten or so rounds keep them far inside the top limb.
fn transform(a: &mut Limbs, b: &mut Limbs, t: &Matrix, modulus: Option<(&Limbs, u64)>) {
    let (u, v, q, r) = (t.u as i128, t.v as i128, t.q as i128, t.r as i128);
    let (m, m_inverse) = modulus.unwrap_or((&[0; 5], 0));
    let mut ca = u * a[0] as i128 + v * b[0] as i128;
    let mut cb = q * a[0] as i128 + r * b[0] as i128;
    let ma = centred((ca as u64).wrapping_mul(m_inverse).wrapping_neg()) as i128;
    let mb = centred((cb as u64).wrapping_mul(m_inverse).wrapping_neg()) as i128;
    ca += ma * m[0] as i128;
    cb += mb * m[0] as i128;
    debug_assert!(ca as u64 & MASK == 0 && cb as u64 & MASK == 0);
    ca >>= BITS;
    cb >>= BITS;
    for k in 1..5 {
        ca += u * a[k] as i128 + v * b[k] as i128 + ma * m[k] as i128;
        cb += q * a[k] as i128 + r * b[k] as i128 + mb * m[k] as i128;
        a[k - 1] = (ca as u64 & MASK) as i64;
        b[k - 1] = (cb as u64 & MASK) as i64;
        ca >>= BITS;
        cb >>= BITS;
    }
    a[4] = ca as i64;
    b[4] = cb as i64;
}

/// The low 62 bits of `x` as a number in [-2^61, 2^61).
fn centred(x: u64) -> i64 {
    (((x & MASK) << 2) as i64) >> 2
}

/// m⁻¹ mod 2^62 for odd m (Newton: each step doubles the correct bits).
fn inverse_mod_2_62(m: u64) -> u64 {
    let mut inverse = 1u64;
    for _ in 0..6 {
        inverse = inverse.wrapping_mul(2u64.wrapping_sub(m.wrapping_mul(inverse)));
    }
    inverse & MASK
}

fn negate(a: &Limbs) -> Limbs {
    add_signed(&[0; 5], a, -1)
}

/// a + sign·m, limbs back in range.
fn add_signed(a: &Limbs, m: &Limbs, sign: i64) -> Limbs {
    let mut out = [0i64; 5];
    let mut carry = 0i64;
    for k in 0..5 {
        let limb = a[k] + sign * m[k] + carry;
        if k < 4 {
            out[k] = limb & MASK as i64;
            carry = limb >> BITS;
        } else {
            out[k] = limb;
        }
    }
    out
}

/// `a` in [0, m), from a few multiples of m either side.
fn reduce(mut a: Limbs, m: &Limbs) -> Limbs {
    while a[4] < 0 {
        a = add_signed(&a, m, 1);
    }
    loop {
        let lower = add_signed(&a, m, -1);
        if lower[4] < 0 {
            return a;
        }
        a = lower;
    }
}

/// Four 64-bit words as five 62-bit limbs.
fn split(x: &[u64; 4]) -> Limbs {
    [
        (x[0] & MASK) as i64,
        ((x[0] >> 62 | x[1] << 2) & MASK) as i64,
        ((x[1] >> 60 | x[2] << 4) & MASK) as i64,
        ((x[2] >> 58 | x[3] << 6) & MASK) as i64,
        (x[3] >> 56) as i64,
    ]
}

/// Five limbs of a number in [0, 2^256) as four 64-bit words.
fn join(a: &Limbs) -> [u64; 4] {
    let l = a.map(|limb| limb as u64);
    [l[0] | l[1] << 62, l[1] >> 2 | l[2] << 60, l[2] >> 4 | l[3] << 58, l[3] >> 6 | l[4] << 56]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bn254::{Fq, Fr};
    use ark_ff::{One, UniformRand, Zero};
    use rand::SeedableRng;

    fn agrees_with_arkworks<P: MontConfig<4>>(values: impl Iterator<Item = Fp256<MontBackend<P, 4>>>) {
        for x in values {
            assert_eq!(inverse(&x), x.inverse(), "{x}");
        }
    }

    #[test]
    fn inverses_match_arkworks_in_both_fields() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(61);
        agrees_with_arkworks((0..2000).map(|_| Fq::rand(&mut rng)));
        agrees_with_arkworks((0..2000).map(|_| Fr::rand(&mut rng)));
    }

    #[test]
    fn edge_values_invert_and_zero_does_not() {
        let small = (1u64..70).map(Fq::from);
        let near_p = (1u64..70).map(|k| -Fq::from(k));
        let powers = (0..300).map(|k| Fq::from(2u64).pow([k]));
        agrees_with_arkworks(small.chain(near_p).chain(powers).chain([Fq::one(), Fq::zero()]));
        agrees_with_arkworks((0..300).map(|k| -Fr::from(2u64).pow([k])).chain([Fr::zero()]));
        assert_eq!(inverse(&Fq::zero()), None);
    }

    #[test]
    fn quadratic_extension_inverses_match_arkworks() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(63);
        for x in (0..500).map(|_| Fq2::rand(&mut rng)).chain([Fq2::zero(), Fq2::one(), Fq2::new(Fq::zero(), Fq::one())])
        {
            assert_eq!(x.fast_inverse(), x.inverse(), "{x}");
        }
    }

    #[test]
    fn limbs_round_trip() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(62);
        for _ in 0..100 {
            let x = Fq::rand(&mut rng).0 .0;
            assert_eq!(join(&split(&x)), x);
            assert_eq!(join(&reduce(negate(&negate(&split(&x))), &split(&Fq::MODULUS.0))), x);
        }
    }
}
