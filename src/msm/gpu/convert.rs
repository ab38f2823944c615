//! Host-side layouts shared with the WGSL kernels: field elements as eight
//! little-endian 32-bit words of their Montgomery form (arkworks' own form,
//! R = 2^256; an Fq2 element c0's then c1's), affine bases as two coordinates
//! with (0, 0) for infinity, XYZZ points as four, scalars as 8 words of their
//! canonical integer.

use ark_bn254::{Fq, Fq2, Fr, G1Projective};
use ark_ec::short_weierstrass::{Affine, Projective, SWCurveConfig};
use ark_ec::AffineRepr;
use ark_ff::{BigInt, Field, PrimeField, Zero};

use super::group::Group;
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

/// A coordinate field as the kernels store it: Fq in 8 words, Fq2 in 16
/// (c0's, then c1's).
pub trait DeviceField: Field {
    const WORDS: usize;
    fn push_words(&self, out: &mut Vec<u32>);
    /// `None` when a half is not a reduced residue.
    fn from_words(words: &[u32]) -> Option<Self>;
}

impl DeviceField for Fq {
    const WORDS: usize = FE_WORDS;
    fn push_words(&self, out: &mut Vec<u32>) {
        out.extend_from_slice(&fq_to_words(self));
    }
    fn from_words(words: &[u32]) -> Option<Self> {
        fq_from_words(words)
    }
}

impl DeviceField for Fq2 {
    const WORDS: usize = 2 * FE_WORDS;
    fn push_words(&self, out: &mut Vec<u32>) {
        self.c0.push_words(out);
        self.c1.push_words(out);
    }
    fn from_words(words: &[u32]) -> Option<Self> {
        if words.len() != Self::WORDS {
            return None;
        }
        Some(Fq2::new(fq_from_words(&words[..FE_WORDS])?, fq_from_words(&words[FE_WORDS..])?))
    }
}

/// A curve the MSM kernels run over: BN254's G1 or G2.
pub trait DeviceCurve: SWCurveConfig<ScalarField = Fr, BaseField: DeviceField> {
    const GROUP: Group;
}

impl DeviceCurve for ark_bn254::g1::Config {
    const GROUP: Group = Group::G1;
}

impl DeviceCurve for ark_bn254::g2::Config {
    const GROUP: Group = Group::G2;
}

/// Append the words of an affine base (zeros for infinity): 16 for G1, 32 for G2.
pub fn push_affine<P: DeviceCurve>(out: &mut Vec<u32>, p: &Affine<P>) {
    match p.xy() {
        Some((x, y)) => {
            x.push_words(out);
            y.push_words(out);
        }
        None => out.resize(out.len() + 2 * P::BaseField::WORDS, 0),
    }
}

/// The XYZZ words of a projective (Jacobian) point: (X, Y, Z^2, Z^3), zeros
/// for infinity; 32 for G1, 64 for G2.
pub fn xyzz_words_of<P: DeviceCurve>(p: &Projective<P>) -> Vec<u32> {
    let mut out = Vec::with_capacity(4 * P::BaseField::WORDS);
    if p.is_zero() {
        out.resize(4 * P::BaseField::WORDS, 0);
        return out;
    }
    let zz = p.z.square();
    let zzz = zz * p.z;
    for f in [p.x, p.y, zz, zzz] {
        f.push_words(&mut out);
    }
    out
}

/// [`xyzz_words_of`] for G1, as an array.
pub fn xyzz_words(p: &G1Projective) -> [u32; 32] {
    let mut out = [0u32; XYZZ_WORDS];
    out.copy_from_slice(&xyzz_words_of(p));
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
pub fn xyzz_from_words<P: DeviceCurve>(words: &[u32]) -> Result<Projective<P>, PointError> {
    let n = P::BaseField::WORDS;
    if words.len() != 4 * n {
        return Err(PointError::NotReduced);
    }
    let coord = |slot: usize| P::BaseField::from_words(&words[slot * n..slot * n + n]).ok_or(PointError::NotReduced);
    let (x, y, zz, zzz) = (coord(0)?, coord(1)?, coord(2)?, coord(3)?);
    if zz.is_zero() {
        return Ok(Projective::zero());
    }
    if zz.square() * zz != zzz.square() {
        return Err(PointError::Inconsistent);
    }
    let zz_inv = zz.inverse().ok_or(PointError::Inconsistent)?;
    let zzz_inv = zzz.inverse().ok_or(PointError::Inconsistent)?;
    let affine = Affine::<P>::new_unchecked(x * zz_inv, y * zzz_inv);
    if !affine.is_on_curve() {
        return Err(PointError::NotOnCurve);
    }
    Ok(affine.into_group())
}
