//! The proving key's file form: every coordinate as it sits in memory
//! (Montgomery form, little-endian 64-bit limbs), so loading it is copying,
//! split across the cores, with no field arithmetic and no point checks.
//! Its integrity comes from the BLAKE3 digest recorded at setup (see
//! [`super::keys`]); [`decode`] with `validate` checks every point as well.
//!
//! Layout: `MAGIC`, the verifying key (ark-serialize compressed, with its
//! length), `beta_g1`, `delta_g1`, then the five query vectors (a, b in G1,
//! b in G2, h, l), each a u64 count and its points. A G1 point is a flag
//! byte (1: the point at infinity) and x, y (4 limbs each); a G2 point the
//! flag and x.c0, x.c1, y.c0, y.c1.

use ark_bn254::{Bn254, Fq, Fq2, G1Affine, G2Affine};
use ark_ec::AffineRepr;
use ark_ff::{BigInt, Fp};
use ark_groth16::{ProvingKey, VerifyingKey};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use rayon::prelude::*;

const MAGIC: &[u8; 8] = b"cvmpk-m1";
const G1_BYTES: usize = 1 + 8 * 8;
const G2_BYTES: usize = 1 + 16 * 8;

pub fn encode(pk: &ProvingKey<Bn254>) -> Vec<u8> {
    let points = pk.a_query.len() + pk.b_g1_query.len() + pk.h_query.len() + pk.l_query.len() + 2;
    let mut out = Vec::with_capacity(64 + points * G1_BYTES + pk.b_g2_query.len() * G2_BYTES + 4096);
    out.extend_from_slice(MAGIC);
    let mut vk = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = pk.vk.serialize_compressed(&mut vk);
    out.extend_from_slice(&(vk.len() as u64).to_le_bytes());
    out.extend_from_slice(&vk);
    g1(&mut out, &pk.beta_g1);
    g1(&mut out, &pk.delta_g1);
    for query in [&pk.a_query, &pk.b_g1_query] {
        g1_vec(&mut out, query);
    }
    out.extend_from_slice(&(pk.b_g2_query.len() as u64).to_le_bytes());
    for p in &pk.b_g2_query {
        flag(&mut out, p.is_zero());
        let (x, y) = p.xy().unwrap_or_default();
        for c in [x.c0, x.c1, y.c0, y.c1] {
            limbs(&mut out, &c);
        }
    }
    for query in [&pk.h_query, &pk.l_query] {
        g1_vec(&mut out, query);
    }
    out
}

fn flag(out: &mut Vec<u8>, infinity: bool) {
    out.push(u8::from(infinity));
}

fn limbs(out: &mut Vec<u8>, f: &Fq) {
    for limb in f.0 .0 {
        out.extend_from_slice(&limb.to_le_bytes());
    }
}

fn g1(out: &mut Vec<u8>, p: &G1Affine) {
    flag(out, p.is_zero());
    let (x, y) = p.xy().unwrap_or_default();
    limbs(out, &x);
    limbs(out, &y);
}

fn g1_vec(out: &mut Vec<u8>, points: &[G1Affine]) {
    out.extend_from_slice(&(points.len() as u64).to_le_bytes());
    for p in points {
        g1(out, p);
    }
}

/// Why a proving-key file does not decode.
pub type DecodeError = String;

/// The proving key in `bytes`; with `validate`, every point must be on the
/// curve and in the prime-order subgroup, and every coordinate canonical.
pub fn decode(bytes: &[u8], validate: bool) -> Result<ProvingKey<Bn254>, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return Err("not a proving key of this format (bad magic)".into());
    }
    let vk_len = r.count(1)?;
    let vk =
        VerifyingKey::<Bn254>::deserialize_compressed(r.take(vk_len)?).map_err(|e| format!("verifying key: {e}"))?;
    let beta_g1 = g1_at(r.take(G1_BYTES)?, validate)?;
    let delta_g1 = g1_at(r.take(G1_BYTES)?, validate)?;
    let a_query = r.points(G1_BYTES, |b| g1_at(b, validate))?;
    let b_g1_query = r.points(G1_BYTES, |b| g1_at(b, validate))?;
    let b_g2_query = r.points(G2_BYTES, |b| g2_at(b, validate))?;
    let h_query = r.points(G1_BYTES, |b| g1_at(b, validate))?;
    let l_query = r.points(G1_BYTES, |b| g1_at(b, validate))?;
    if r.at != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - r.at));
    }
    Ok(ProvingKey { vk, beta_g1, delta_g1, a_query, b_g1_query, b_g2_query, h_query, l_query })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}: {n} more bytes needed", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    /// A count of items of `size` bytes each, checked against what is left.
    fn count(&mut self, size: usize) -> Result<usize, DecodeError> {
        let n = u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        let left = (self.bytes.len() - self.at) as u64;
        if n.checked_mul(size as u64).is_none_or(|total| total > left) {
            return Err(format!("a count of {n} at byte {} runs past the end", self.at - 8));
        }
        Ok(n as usize)
    }

    /// A counted vector of points, decoded across the cores.
    fn points<T: Send>(
        &mut self,
        size: usize,
        decode: impl Fn(&[u8]) -> Result<T, DecodeError> + Sync + Send,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.count(size)?;
        let bytes = self.take(n * size)?;
        bytes.par_chunks_exact(size).map(decode).collect()
    }
}

fn fq(bytes: &[u8], validate: bool) -> Result<Fq, DecodeError> {
    let mut limbs = [0u64; 4];
    for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
        *limb = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    let repr = BigInt(limbs);
    if validate && repr >= <ark_bn254::FqConfig as ark_ff::MontConfig<4>>::MODULUS {
        return Err("a coordinate is not below the field's modulus".into());
    }
    Ok(Fp::new_unchecked(repr))
}

/// Whether a point's flag byte says it is the point at infinity.
fn at_infinity(flag: u8) -> Result<bool, DecodeError> {
    match flag {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(format!("a point's flag byte is {other}, not 0 or 1")),
    }
}

fn g1_at(bytes: &[u8], validate: bool) -> Result<G1Affine, DecodeError> {
    if at_infinity(bytes[0])? {
        return Ok(G1Affine::identity());
    }
    let point = G1Affine::new_unchecked(fq(&bytes[1..33], validate)?, fq(&bytes[33..65], validate)?);
    if validate {
        super::points::check_point("a G1 point of the proving key", &point).map_err(|e| e.to_string())?;
    }
    Ok(point)
}

fn g2_at(bytes: &[u8], validate: bool) -> Result<G2Affine, DecodeError> {
    if at_infinity(bytes[0])? {
        return Ok(G2Affine::identity());
    }
    let c = |i: usize| fq(&bytes[1 + 32 * i..33 + 32 * i], validate);
    let point = G2Affine::new_unchecked(Fq2::new(c(0)?, c(1)?), Fq2::new(c(2)?, c(3)?));
    if validate {
        super::points::check_point("a G2 point of the proving key", &point).map_err(|e| e.to_string())?;
    }
    Ok(point)
}
