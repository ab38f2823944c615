//! Field elements and points as iden3's files write them: little-endian,
//! base-field coordinates in Montgomery form (x·R mod q, R = 2²⁵⁶), scalars
//! in standard form, except the zkey's coefficients (v·R² mod r). The
//! primes a file names decide its curve; only BN254 is supported.

use ark_bn254::{Fq, Fq2, Fr, G1Affine, G2Affine};
use ark_ec::AffineRepr;
use ark_ff::{BigInteger, BigInteger256, Field, PrimeField};

use super::binfile::Cursor;
use super::CircomError;

/// BLS12-381's base and scalar field moduli (big-endian hex), to name the
/// curve of a file made for it.
const BLS12_381_Q: &str =
    "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab";
const BLS12_381_R: &str = "73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001";

/// Which field a prime in a file should be.
#[derive(Clone, Copy)]
pub enum Prime {
    /// The base field (a zkey's q).
    Base,
    /// The scalar field (a zkey's r, a witness's or an R1CS's prime).
    Scalar,
}

/// Read a prime (u32 byte length, then the little-endian value) and check
/// it is BN254's `which`; another curve's prime is named.
pub fn expect_bn254(at: &mut Cursor<'_>, which: Prime) -> Result<(), CircomError> {
    let offset = at.offset();
    let n8 = at.u32()? as usize;
    if n8 > 1024 {
        return Err(at.error_at(offset, format!("a prime of {n8} bytes")));
    }
    let bytes = at.take(n8)?;
    let (expected, other) = match which {
        Prime::Base => (Fq::MODULUS.to_bytes_le(), BLS12_381_Q),
        Prime::Scalar => (Fr::MODULUS.to_bytes_le(), BLS12_381_R),
    };
    if bytes == expected.as_slice() {
        return Ok(());
    }
    // BN254 itself, with its two primes where the other belongs.
    let swapped = match which {
        Prime::Base => Fr::MODULUS.to_bytes_le(),
        Prime::Scalar => Fq::MODULUS.to_bytes_le(),
    };
    if bytes == swapped.as_slice() {
        let (found, wanted) = match which {
            Prime::Base => ("scalar field's", "base field's"),
            Prime::Scalar => ("base field's", "scalar field's"),
        };
        return Err(CircomError::UnsupportedCurve {
            file: at.file.into(),
            curve: format!("bn128 with its primes swapped (the {found} modulus where the {wanted} belongs)"),
        });
    }
    let hex: String = bytes.iter().rev().map(|b| format!("{b:02x}")).collect();
    let hex = hex.trim_start_matches('0');
    let curve = if hex == other { "bls12-381".to_string() } else { format!("with the field modulus 0x{hex}") };
    Err(CircomError::UnsupportedCurve { file: at.file.into(), curve })
}

fn bigint(bytes: &[u8]) -> BigInteger256 {
    let mut limbs = [0u64; 4];
    for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
        *limb = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    BigInteger256::new(limbs)
}

/// A scalar in standard form (32 bytes), below the modulus.
pub fn fr_standard(bytes: &[u8]) -> Option<Fr> {
    crate::crypto::field::field_from_bytes(bytes.try_into().ok()?)
}

/// 32 bytes taken as they are for Montgomery form, below the modulus: the
/// field element raw·R⁻¹, no multiplication spent. A zkey coefficient
/// (v·R² mod r) reads as v·R; an `.r1cs` value v (standard form) as v·R⁻¹.
pub fn fr_raw(bytes: &[u8]) -> Option<Fr> {
    let raw = bigint(bytes);
    (raw < Fr::MODULUS).then(|| Fr::new_unchecked(raw))
}

/// R⁻¹ in the scalar field, R = 2²⁵⁶ (what turns v·R into v).
pub fn r_inverse() -> Fr {
    Fr::from(2u64).pow([256u64]).inverse().expect("2 is invertible")
}

fn fq_montgomery(bytes: &[u8]) -> Option<Fq> {
    let raw = bigint(bytes);
    (raw < Fq::MODULUS).then(|| Fq::new_unchecked(raw))
}

/// A G1 point (x, y in Montgomery form, 64 bytes; all zeros is infinity),
/// not yet checked to lie on the curve.
pub fn g1_unchecked(bytes: &[u8]) -> Option<G1Affine> {
    if bytes.iter().all(|&b| b == 0) {
        return Some(G1Affine::identity());
    }
    let x = fq_montgomery(&bytes[..32])?;
    let y = fq_montgomery(&bytes[32..64])?;
    Some(G1Affine::new_unchecked(x, y))
}

/// A G2 point (x.c0, x.c1, y.c0, y.c1 in Montgomery form, 128 bytes),
/// not yet checked.
pub fn g2_unchecked(bytes: &[u8]) -> Option<G2Affine> {
    if bytes.iter().all(|&b| b == 0) {
        return Some(G2Affine::identity());
    }
    let c = |i: usize| fq_montgomery(&bytes[32 * i..32 * i + 32]);
    Some(G2Affine::new_unchecked(Fq2::new(c(0)?, c(1)?), Fq2::new(c(2)?, c(3)?)))
}

/// What is wrong with a point, if anything: off the curve, or outside the
/// prime-order subgroup.
pub trait PointCheck {
    fn fault(&self) -> Option<&'static str>;
}

impl<C: ark_ec::short_weierstrass::SWCurveConfig> PointCheck for ark_ec::short_weierstrass::Affine<C> {
    fn fault(&self) -> Option<&'static str> {
        if self.is_zero() {
            None
        } else if !self.is_on_curve() {
            Some("is not on the curve")
        } else if !self.is_in_correct_subgroup_assuming_on_curve() {
            Some("is not in the prime-order subgroup")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ec::AffineRepr;

    fn montgomery_bytes(x: Fq) -> Vec<u8> {
        x.0.to_bytes_le()
    }

    #[test]
    fn points_decode_from_montgomery_form_and_zero_is_infinity() {
        let g = G1Affine::generator();
        let bytes = [montgomery_bytes(g.x), montgomery_bytes(g.y)].concat();
        assert_eq!(g1_unchecked(&bytes), Some(g));
        assert!(g1_unchecked(&[0u8; 64]).unwrap().is_zero());
        let off = [montgomery_bytes(g.x), montgomery_bytes(g.x)].concat();
        assert_eq!(g1_unchecked(&off).unwrap().fault(), Some("is not on the curve"));
        assert_eq!(g1_unchecked(&[0xffu8; 64]), None, "coordinates at or above q are refused");
    }

    #[test]
    fn coefficients_undo_the_files_r_squared() {
        let v = Fr::from(12345u64);
        let r = Fr::from(2u64).pow([256u64]);
        // A zkey's integer is v·R² mod r: read as Montgomery form, v·R.
        let file = (v * r * r).into_bigint().to_bytes_le();
        assert_eq!(fr_raw(&file).map(|v_r| v_r * r_inverse()), Some(v));
        // An .r1cs's integer is v: read as Montgomery form, v·R⁻¹.
        assert_eq!(fr_raw(&v.into_bigint().to_bytes_le()), Some(v * r_inverse()));
    }
}
