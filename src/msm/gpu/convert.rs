//! Host-side layouts shared with the WGSL kernels: field elements as eight
//! little-endian 32-bit words of their Montgomery form (arkworks' own form,
//! R = 2^256), affine bases as 16 words with (0, 0) for infinity, XYZZ points
//! as 32 words, scalars as 8 words of their canonical integer.

use ark_bn254::{Fq, Fr, G1Affine, G1Projective};
use ark_ec::AffineRepr;
use ark_ff::{BigInt, Field, PrimeField, Zero};

use super::shaders::bigint_words;

pub const FE_WORDS: usize = 8;
pub const AFFINE_WORDS: usize = 16;
pub const XYZZ_WORDS: usize = 32;

/// The Montgomery-form words of `f`.
pub fn fq_to_words(f: &Fq) -> [u32; 8] {
    bigint_words(&f.0)
}

/// The element whose Montgomery form is `words`, or `None` when the words are
/// not a reduced residue (a kernel bug or corrupted readback).
pub fn fq_from_words(words: &[u32]) -> Option<Fq> {
    if words.len() != FE_WORDS {
        return None;
    }
    let mut limbs = [0u64; 4];
    for (i, limb) in limbs.iter_mut().enumerate() {
        *limb = words[2 * i] as u64 | ((words[2 * i + 1] as u64) << 32);
    }
    let big = BigInt(limbs);
    (big < Fq::MODULUS).then(|| Fq::new_unchecked(big))
}

/// The canonical integer words of a scalar.
pub fn fr_to_words(s: &Fr) -> [u32; 8] {
    bigint_words(&s.into_bigint())
}

/// Append the 16 words of an affine base (zeros for infinity).
pub fn push_affine(out: &mut Vec<u32>, p: &G1Affine) {
    match p.xy() {
        Some((x, y)) => {
            out.extend_from_slice(&fq_to_words(&x));
            out.extend_from_slice(&fq_to_words(&y));
        }
        None => out.extend_from_slice(&[0u32; AFFINE_WORDS]),
    }
}

/// The 32 XYZZ words of a projective (Jacobian) point: (X, Y, Z^2, Z^3).
pub fn xyzz_words(p: &G1Projective) -> [u32; 32] {
    let mut out = [0u32; 32];
    if p.is_zero() {
        return out;
    }
    let zz = p.z.square();
    let zzz = zz * p.z;
    for (slot, f) in [p.x, p.y, zz, zzz].iter().enumerate() {
        out[slot * 8..slot * 8 + 8].copy_from_slice(&fq_to_words(f));
    }
    out
}

/// Why a point read back from the device was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointError {
    NotReduced,
    Inconsistent,
    NotOnCurve,
}

impl std::fmt::Display for PointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PointError::NotReduced => "a coordinate is not a reduced field element",
            PointError::Inconsistent => "ZZ^3 != ZZZ^2",
            PointError::NotOnCurve => "the point is not on the curve",
        })
    }
}

/// An XYZZ point read back from the device, checked: reduced coordinates,
/// ZZ^3 = ZZZ^2 and on the curve. ZZ = 0 is the point at infinity.
pub fn xyzz_from_words(words: &[u32]) -> Result<G1Projective, PointError> {
    let coord = |slot: usize| fq_from_words(&words[slot * 8..slot * 8 + 8]).ok_or(PointError::NotReduced);
    if words.len() != XYZZ_WORDS {
        return Err(PointError::NotReduced);
    }
    let (x, y, zz, zzz) = (coord(0)?, coord(1)?, coord(2)?, coord(3)?);
    if zz.is_zero() {
        return Ok(G1Projective::zero());
    }
    if zz.square() * zz != zzz.square() {
        return Err(PointError::Inconsistent);
    }
    let zz_inv = zz.inverse().ok_or(PointError::Inconsistent)?;
    let zzz_inv = zzz.inverse().ok_or(PointError::Inconsistent)?;
    let affine = G1Affine::new_unchecked(x * zz_inv, y * zzz_inv);
    if !affine.is_on_curve() {
        return Err(PointError::NotOnCurve);
    }
    Ok(affine.into_group())
}
