//! snarkjs Groth16 proving keys (`.zkey`, versions 1 and 2).
//!
//! Sections: 1 the protocol (1 = Groth16), 2 the Groth16 header (the base
//! and scalar primes, nVars, nPublic, the domain size, α₁, β₁, β₂, γ₂, δ₁,
//! δ₂), 3 IC (nPublic + 1 G1 points), 4 the coefficients of the A and B
//! matrices (a u32 count, then (matrix, constraint, signal, value) entries
//! with the value as v·R² mod r), 5 A (nVars G1), 6 B₁ (nVars G1), 7 B₂
//! (nVars G2), 8 C (the private signals' G1 points, nVars − nPublic − 1),
//! 9 H (domain-size G1 points, for the odd powers of the 2n-th root of
//! unity), 10 the contributions (not needed to prove). Points are affine,
//! coordinates little-endian in Montgomery form, infinity all zeros.

use std::sync::atomic::{AtomicBool, Ordering};

use ark_bn254::{Bn254, Fr, G1Affine, G2Affine};
use ark_groth16::{ProvingKey, VerifyingKey};
use rayon::prelude::*;

use super::binfile::{BinFile, Cursor};
use super::field::{self, PointCheck, Prime};
use super::CircomError;

const PROTOCOL_GROTH16: u32 = 1;
/// The largest domain snarkjs's own prover handles with its odd-root shift
/// (2²⁸ is BN254's scalar field's two-adicity).
const MAX_DOMAIN_LOG: u32 = 27;

/// The coefficients of one matrix (A or B) by row: `starts[row]..starts[row + 1]`
/// index `entries` of (signal, value).
pub struct SparseRows {
    pub starts: Vec<u32>,
    pub entries: Vec<(u32, Fr)>,
}

impl SparseRows {
    pub fn rows(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn row(&self, i: usize) -> &[(u32, Fr)] {
        &self.entries[self.starts[i] as usize..self.starts[i + 1] as usize]
    }

    /// Group (row, signal, value) entries by row, keeping their order
    /// within a row (a counting sort: one pass to count, one to place).
    pub(crate) fn from_entries(rows: usize, list: impl Iterator<Item = (u32, u32, Fr)> + Clone) -> SparseRows {
        let mut starts = vec![0u32; rows + 1];
        for (row, _, _) in list.clone() {
            starts[row as usize + 1] += 1;
        }
        for i in 0..rows {
            starts[i + 1] += starts[i];
        }
        let mut next = starts.clone();
        let mut entries = vec![(0u32, Fr::from(0u64)); starts[rows] as usize];
        for (row, signal, value) in list {
            let at = &mut next[row as usize];
            entries[*at as usize] = (signal, value);
            *at += 1;
        }
        SparseRows { starts, entries }
    }
}

/// A snarkjs Groth16 key, decoded (and, unless told otherwise, every point
/// checked). The proving key holds the sections as arkworks names them:
/// `a_query` = A, `b_g1_query` = B₁, `b_g2_query` = B₂, `l_query` = C,
/// `h_query` = H, `vk.gamma_abc_g1` = IC.
pub struct Zkey {
    pub n_vars: usize,
    pub n_public: usize,
    pub domain_size: usize,
    pub key: ProvingKey<Bn254>,
    pub a: SparseRows,
    pub b: SparseRows,
    /// BLAKE3 of the file.
    pub digest: [u8; 32],
}

/// Whether to check every point on load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointChecks {
    /// On the curve and in the subgroup, each point.
    Full,
    /// Only decoded (coordinates below the modulus): for a file whose
    /// digest was checked in full before.
    Skip,
}

impl Zkey {
    pub fn verifying_key(&self) -> &VerifyingKey<Bn254> {
        &self.key.vk
    }

    /// Decode `bytes` (the contents of `file`, whose BLAKE3 is `digest`).
    pub fn parse(file: &str, bytes: &[u8], digest: [u8; 32], checks: PointChecks) -> Result<Zkey, CircomError> {
        let bin = BinFile::parse(file, bytes, b"zkey", &[1, 2])?;
        let mut at = bin.section(1, "header")?;
        let protocol = at.u32()?;
        if protocol != PROTOCOL_GROTH16 {
            let name = match protocol {
                2 => "plonk".to_string(),
                10 => "fflonk".to_string(),
                other => format!("protocol {other}"),
            };
            return Err(at.error_at(at.offset() - 4, format!("a {name} key, not Groth16 (only Groth16 is supported)")));
        }

        let mut at = bin.section(2, "groth16 header")?;
        field::expect_bn254(&mut at, Prime::Base)?;
        field::expect_bn254(&mut at, Prime::Scalar)?;
        let n_vars = at.u32()? as usize;
        let n_public = at.u32()? as usize;
        let domain_at = at.offset();
        let domain_size = at.u32()? as usize;
        if !domain_size.is_power_of_two() || domain_size.trailing_zeros() > MAX_DOMAIN_LOG {
            return Err(at.error_at(
                domain_at,
                format!("domain size {domain_size}: it must be a power of two up to 2^{MAX_DOMAIN_LOG}"),
            ));
        }
        if n_public >= n_vars {
            return Err(at.error_at(domain_at - 4, format!("{n_public} public signals of only {n_vars}")));
        }
        let alpha_g1 = one_g1(&mut at, "alpha_1", checks)?;
        let beta_g1 = one_g1(&mut at, "beta_1", checks)?;
        let beta_g2 = one_g2(&mut at, "beta_2", checks)?;
        let gamma_g2 = one_g2(&mut at, "gamma_2", checks)?;
        let delta_g1 = one_g1(&mut at, "delta_1", checks)?;
        let delta_g2 = one_g2(&mut at, "delta_2", checks)?;

        // The point sections first: each is sized by the header's counts
        // before it is decoded, so the file must hold what the header
        // claims (a header of a few hundred bytes can claim a domain of
        // 2^27) before the coefficients' rows are sized by it.
        let ic = g1_section(&bin, 3, "IC", n_public + 1, checks)?;
        let a_query = g1_section(&bin, 5, "A", n_vars, checks)?;
        let b_g1_query = g1_section(&bin, 6, "B1", n_vars, checks)?;
        let b_g2_query = g2_section(&bin, 7, "B2", n_vars, checks)?;
        let l_query = g1_section(&bin, 8, "C", n_vars - n_public - 1, checks)?;
        let h_query = g1_section(&bin, 9, "H", domain_size, checks)?;
        let (a, b) = coefficients(&bin, n_vars, domain_size)?;

        let vk = VerifyingKey { alpha_g1, beta_g2, gamma_g2, delta_g2, gamma_abc_g1: ic };
        let key = ProvingKey { vk, beta_g1, delta_g1, a_query, b_g1_query, b_g2_query, h_query, l_query };
        Ok(Zkey { n_vars, n_public, domain_size, key, a, b, digest })
    }
}

fn one_g1(at: &mut Cursor<'_>, name: &str, checks: PointChecks) -> Result<G1Affine, CircomError> {
    one_point(at, name, 64, field::g1_unchecked, checks)
}

fn one_g2(at: &mut Cursor<'_>, name: &str, checks: PointChecks) -> Result<G2Affine, CircomError> {
    one_point(at, name, 128, field::g2_unchecked, checks)
}

/// One header point of `size` bytes, decoded (and checked). None may be
/// the point at infinity, whatever the checks: no setup makes one, and
/// with α₁ or δ₂ at infinity every pairing of the check is one, so any
/// witness would yield a proof that verifies.
fn one_point<P: PointCheck + ark_ec::AffineRepr>(
    at: &mut Cursor<'_>,
    name: &str,
    size: usize,
    decode: impl Fn(&[u8]) -> Option<P>,
    checks: PointChecks,
) -> Result<P, CircomError> {
    let offset = at.offset();
    let bytes = at.take(size)?;
    let point = decode(bytes)
        .ok_or_else(|| at.error_at(offset, format!("{name}: a coordinate is not below the base field's modulus")))?;
    if point.is_zero() {
        return Err(CircomError::InvalidPoint {
            file: at.file.into(),
            section: at.section.into(),
            offset,
            what: name.into(),
            fault: "is the point at infinity, which no trusted setup makes",
        });
    }
    check_one(at, offset, name, &point, checks)?;
    Ok(point)
}

fn check_one(
    at: &Cursor<'_>,
    offset: usize,
    name: &str,
    point: &impl PointCheck,
    checks: PointChecks,
) -> Result<(), CircomError> {
    match point.fault().filter(|_| checks == PointChecks::Full) {
        Some(fault) => Err(CircomError::InvalidPoint {
            file: at.file.into(),
            section: at.section.into(),
            offset,
            what: name.into(),
            fault,
        }),
        None => Ok(()),
    }
}

/// A section of `count` points of `size` bytes each, decoded (and checked)
/// in parallel; the first bad point is reported by index and offset.
fn points<P: PointCheck + Default + Send + Sync>(
    bin: &BinFile<'_>,
    kind: u32,
    name: &'static str,
    count: usize,
    size: usize,
    decode: impl Fn(&[u8]) -> Option<P> + Sync,
    checks: PointChecks,
) -> Result<Vec<P>, CircomError> {
    let mut at = bin.section(kind, name)?;
    let start = at.offset();
    let bytes = at.take_items(count, size, "points")?;
    let fault_at = |index: usize, fault: &'static str| CircomError::InvalidPoint {
        file: bin.file.into(),
        section: name.into(),
        offset: start + index * size,
        what: format!("point {index}"),
        fault,
    };
    // One pass straight into the final vector (an indexed collect: no
    // pieces gathered and copied, as collecting into `Option<Vec>` does);
    // only a bad file is walked again to name its first bad point.
    let bad = AtomicBool::new(false);
    let decoded: Vec<P> = bytes
        .par_chunks_exact(size)
        .map(|b| {
            decode(b).unwrap_or_else(|| {
                bad.store(true, Ordering::Relaxed);
                P::default()
            })
        })
        .collect();
    if bad.into_inner() {
        let index = bytes.par_chunks_exact(size).position_first(|b| decode(b).is_none()).unwrap_or(0);
        return Err(fault_at(index, "has a coordinate not below the base field's modulus"));
    }
    if checks == PointChecks::Full {
        if let Some((index, fault)) =
            decoded.par_iter().enumerate().find_map_first(|(i, p)| p.fault().map(|fault| (i, fault)))
        {
            return Err(fault_at(index, fault));
        }
    }
    Ok(decoded)
}

fn g1_section(
    bin: &BinFile<'_>,
    kind: u32,
    name: &'static str,
    count: usize,
    checks: PointChecks,
) -> Result<Vec<G1Affine>, CircomError> {
    points(bin, kind, name, count, 64, field::g1_unchecked, checks)
}

fn g2_section(
    bin: &BinFile<'_>,
    kind: u32,
    name: &'static str,
    count: usize,
    checks: PointChecks,
) -> Result<Vec<G2Affine>, CircomError> {
    points(bin, kind, name, count, 128, field::g2_unchecked, checks)
}

/// Section 4: the A and B matrices' entries, by row. Checked in parallel
/// first, then grouped by row straight from the file's bytes (no list of
/// decoded entries in between), their values converted in place.
fn coefficients(bin: &BinFile<'_>, n_vars: usize, domain_size: usize) -> Result<(SparseRows, SparseRows), CircomError> {
    const ENTRY: usize = 12 + 32;
    let mut at = bin.section(4, "coefficients")?;
    let count = at.u32()? as usize;
    let start = at.offset();
    let bytes = at.take_items(count, ENTRY, "coefficients")?;
    let word = |entry: &[u8], i: usize| u32::from_le_bytes(entry[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    let fault = |entry: &[u8]| -> Option<String> {
        let (matrix, row, signal) = (word(entry, 0), word(entry, 1), word(entry, 2));
        if matrix > 1 {
            return Some(format!("matrix {matrix} (0 is A, 1 is B)"));
        }
        if row as usize >= domain_size {
            return Some(format!("constraint {row} is outside the domain of {domain_size}"));
        }
        if signal as usize >= n_vars {
            return Some(format!("signal {signal} of only {n_vars}"));
        }
        field::fr_raw(&entry[12..]).is_none().then(|| "a value not below the scalar field's modulus".into())
    };
    let first_fault = bytes.par_chunks_exact(ENTRY).enumerate().find_map_first(|(i, e)| fault(e).map(|r| (i, r)));
    if let Some((index, reason)) = first_fault {
        return Err(at.error_at(start + index * ENTRY, format!("coefficient {index}: {reason}")));
    }
    // Every entry is valid: its matrix is 0 or 1, its row in the domain.
    let entries = || bytes.chunks_exact(ENTRY).map(|e| (word(e, 0), word(e, 1), word(e, 2), &e[12..]));
    let r_inverse = field::r_inverse();
    let rows = |which: u32| {
        let of_matrix = entries().filter(|e| e.0 == which);
        let times_r = of_matrix.map(|(_, row, signal, value)| (row, signal, field::fr_raw(value).expect("checked")));
        let mut rows = SparseRows::from_entries(domain_size, times_r);
        rows.entries.par_iter_mut().for_each(|(_, value)| *value *= r_inverse);
        rows
    };
    Ok((rows(0), rows(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/circom/multiplier.zkey");
        std::fs::read(path).expect("the committed fixture")
    }

    /// Where section `kind`'s bytes start.
    fn section_start(bytes: &[u8], kind: u32) -> usize {
        let bin = BinFile::parse("x.zkey", bytes, b"zkey", &[1, 2]).unwrap();
        let at = bin.section(kind, "wanted").unwrap();
        at.offset()
    }

    /// A header claiming a domain of 2^27 in a key of a few kilobytes is
    /// refused by its H section's size before anything is sized by the
    /// domain (the coefficients' rows took 2 GiB for it before): here the
    /// coefficients are damaged too, and the sizes are what is reported.
    #[test]
    fn point_sections_are_sized_before_the_header_sizes_anything() {
        let mut bytes = fixture();
        let domain_at = section_start(&bytes, 2) + 4 + 32 + 4 + 32 + 4 + 4;
        bytes[domain_at..domain_at + 4].copy_from_slice(&(1u32 << 27).to_le_bytes());
        let count_at = section_start(&bytes, 4);
        bytes[count_at..count_at + 4].copy_from_slice(&7u32.to_le_bytes());
        let err = Zkey::parse("big.zkey", &bytes, [0; 32], PointChecks::Full).err().unwrap().to_string();
        assert!(err.contains("section H") && err.contains("134217728 points of 64 bytes"), "{err}");
        // The fixture itself still loads.
        Zkey::parse("multiplier.zkey", &fixture(), [0; 32], PointChecks::Full).unwrap();
    }
}
