//! circom's constraint files (`.r1cs`, version 1): section 1 the header
//! (the prime, wires, public outputs, public inputs, private inputs,
//! labels, constraints), section 2 the constraints (for each, the linear
//! combinations A, B and C as a u32 term count and (u32 wire, value)
//! terms, values little-endian in standard form). Custom gates (sections 4
//! and 5, for PLONK) are refused.
//!
//! A zkey carries only the A and B matrices, so the R1CS is what lets a
//! witness be checked constraint by constraint before any MSM.

use ark_bn254::Fr;
use ark_ff::Zero;
use ark_relations::gr1cs::Matrix;
use rayon::prelude::*;

use super::binfile::{BinFile, Cursor};
use super::field::{self, Prime};
use super::quotient;
use super::zkey::Zkey;
use super::CircomError;

/// One term: a u32 wire and a 32-byte value.
const TERM: usize = 36;

/// Which matrices a parse decodes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rows {
    All,
    /// Only C: for a file already matched to its key, whose A and B are the key's.
    OnlyC,
}

impl Rows {
    fn matrices(self) -> [bool; 3] {
        [self == Rows::All, self == Rows::All, true]
    }
}

/// The A, B and C rows of constraint `constraint` (those `wanted`; the
/// others left empty), read at `at` (whose term counts were checked to fit
/// the section).
fn constraint_rows(
    at: &mut Cursor<'_>,
    constraint: usize,
    n_wires: usize,
    wanted: Rows,
) -> Result<[Vec<(Fr, usize)>; 3], CircomError> {
    let mut rows: [Vec<(Fr, usize)>; 3] = Default::default();
    for ((row, name), want) in rows.iter_mut().zip(["A", "B", "C"]).zip(wanted.matrices()) {
        let terms = at.u32()? as usize;
        if !want {
            at.take(terms * TERM)?;
            continue;
        }
        row.reserve_exact(terms);
        for _ in 0..terms {
            let offset = at.offset();
            let wire = at.u32()? as usize;
            if wire >= n_wires {
                return Err(
                    at.error_at(offset, format!("constraint {constraint}, {name}: wire {wire} of only {n_wires}"))
                );
            }
            let Some(value) = field::fr_standard(at.take(32)?) else {
                return Err(
                    at.error_at(offset + 4, format!("constraint {constraint}, {name}: a value not below the modulus"))
                );
            };
            row.push((value, wire));
        }
    }
    Ok(rows)
}

pub struct R1cs {
    pub n_wires: usize,
    pub n_public: usize,
    pub n_constraints: usize,
    /// A, B, C: for each constraint, its (coefficient, wire) terms.
    pub matrices: [Matrix<Fr>; 3],
}

impl R1cs {
    pub fn parse(file: &str, bytes: &[u8]) -> Result<R1cs, CircomError> {
        Self::parse_rows(file, bytes, Rows::All)
    }

    fn parse_rows(file: &str, bytes: &[u8], wanted: Rows) -> Result<R1cs, CircomError> {
        let bin = BinFile::parse(file, bytes, b"r1cs", &[1])?;
        for (kind, name) in [(4, "custom gates list"), (5, "custom gates uses")] {
            if let Ok(at) = bin.section(kind, name) {
                return Err(at.error("custom gates (a PLONK feature) cannot be proven with Groth16".into()));
            }
        }
        let mut at = bin.section(1, "header")?;
        field::expect_bn254(&mut at, Prime::Scalar)?;
        let n_wires = at.u32()? as usize;
        let n_outputs = at.u32()? as usize;
        let n_public_inputs = at.u32()? as usize;
        let _n_private_inputs = at.u32()?;
        let _n_labels = at.u64()?;
        let n_constraints = at.u32()? as usize;
        let n_public = n_outputs + n_public_inputs;
        if n_public >= n_wires.max(1) {
            return Err(at.error(format!("{n_public} public signals of only {n_wires} wires")));
        }

        let mut at = bin.section(2, "constraints")?;
        // First the term counts alone, to find where each constraint starts;
        // then the constraints are decoded in parallel from those offsets.
        let mut starts = Vec::with_capacity(n_constraints.min(at.remaining() / 12));
        for constraint in 0..n_constraints {
            starts.push(at.offset());
            for _ in 0..3 {
                let offset = at.offset();
                let terms = at.u32()? as usize;
                if terms > at.remaining() / TERM {
                    return Err(
                        at.error_at(offset, format!("constraint {constraint}: {terms} terms do not fit the section"))
                    );
                }
                at.take(terms * TERM)?;
            }
        }
        at.end()?;
        let decode =
            |(constraint, &offset): (usize, &usize)| constraint_rows(&mut at.at(offset), constraint, n_wires, wanted);
        let Ok(rows) = starts.par_iter().enumerate().map(decode).collect::<Result<Vec<_>, _>>() else {
            // Name the first bad constraint, whichever thread met one first.
            let first = starts.par_iter().enumerate().find_map_first(|c| decode(c).err());
            return Err(first.expect("a constraint failed to decode"));
        };
        let mut matrices: [Matrix<Fr>; 3] = Default::default();
        for m in &mut matrices {
            m.reserve_exact(rows.len());
        }
        for [a, b, c] in rows {
            matrices[0].push(a);
            matrices[1].push(b);
            matrices[2].push(c);
        }
        Ok(R1cs { n_wires, n_public, n_constraints, matrices })
    }

    /// A constraint system in circom's wire order (the one, the public
    /// inputs, then the rest), as arkworks numbers its variables.
    pub fn from_matrices(n_wires: usize, n_public: usize, matrices: [Matrix<Fr>; 3]) -> R1cs {
        let n_constraints = matrices[0].len();
        R1cs { n_wires, n_public, n_constraints, matrices }
    }

    /// The `.r1cs` file of this system (its public signals as public
    /// inputs, wire i labelled i), for snarkjs's setup and ceremonies.
    pub fn encode(&self) -> Vec<u8> {
        use ark_ff::{BigInteger, PrimeField};
        let mut out = b"r1cs".to_vec();
        out.extend(1u32.to_le_bytes());
        out.extend(3u32.to_le_bytes());
        let section = |out: &mut Vec<u8>, kind: u32, body: Vec<u8>| {
            out.extend(kind.to_le_bytes());
            out.extend((body.len() as u64).to_le_bytes());
            out.extend(body);
        };
        let mut header = 32u32.to_le_bytes().to_vec();
        header.extend(Fr::MODULUS.to_bytes_le());
        for count in [self.n_wires as u32, 0, self.n_public as u32, 0] {
            header.extend(count.to_le_bytes());
        }
        header.extend((self.n_wires as u64).to_le_bytes());
        header.extend((self.n_constraints as u32).to_le_bytes());
        section(&mut out, 1, header);
        let mut constraints = Vec::new();
        for row in 0..self.n_constraints {
            for matrix in &self.matrices {
                let terms: Vec<&(Fr, usize)> = matrix[row].iter().filter(|(v, _)| !v.is_zero()).collect();
                constraints.extend((terms.len() as u32).to_le_bytes());
                for (value, wire) in terms {
                    constraints.extend((*wire as u32).to_le_bytes());
                    constraints.extend(value.into_bigint().to_bytes_le());
                }
            }
        }
        section(&mut out, 2, constraints);
        section(&mut out, 3, (0..self.n_wires as u64).flat_map(u64::to_le_bytes).collect());
        out
    }

    /// The first constraint `values` does not satisfy, if any.
    pub fn first_unsatisfied(&self, values: &[Fr]) -> Option<usize> {
        let eval = |row: &[(Fr, usize)]| row.iter().map(|(c, i)| *c * values[*i]).sum::<Fr>();
        let [a, b, c] = &self.matrices;
        (0..self.n_constraints).into_par_iter().find_first(|&i| eval(&a[i]) * eval(&b[i]) != eval(&c[i]))
    }

    /// Whether this R1CS is the one `zkey` was made from: the same counts,
    /// and its A and B rows (plus snarkjs's one row per public signal) are
    /// the zkey's coefficients. Returns what differs.
    pub fn matches(&self, zkey: &Zkey) -> Result<(), String> {
        if self.n_wires != zkey.n_vars || self.n_public != zkey.n_public {
            return Err(format!(
                "it has {} wires and {} public signals, the key {} and {}",
                self.n_wires, self.n_public, zkey.n_vars, zkey.n_public
            ));
        }
        let rows = self.n_constraints + self.n_public + 1;
        if rows > zkey.domain_size {
            return Err(format!("its {rows} rows do not fit the key's domain of {}", zkey.domain_size));
        }
        let (a, b) = quotient::rows(&self.matrices, self.n_public, zkey.domain_size);
        // Rows usually list their terms in the same order: compared as they
        // are first, and sorted only when that differs.
        let canonical = |row: &[(u32, Fr)]| {
            let mut row: Vec<(u32, Fr)> = row.iter().filter(|(_, v)| !v.is_zero()).copied().collect();
            row.sort_by_key(|&(s, v)| (s, v));
            row
        };
        let differs = (0..zkey.domain_size).into_par_iter().find_first(|&i| {
            [(&a, &zkey.a), (&b, &zkey.b)].iter().any(|(ours, theirs)| {
                ours.row(i) != theirs.row(i) && canonical(ours.row(i)) != canonical(theirs.row(i))
            })
        });
        match differs {
            Some(row) => Err(format!("row {row} of its A or B matrix differs from the key's coefficients")),
            None => Ok(()),
        }
    }

    /// This R1CS as `zkey`'s circuit (named `name` in errors), or why not.
    pub fn for_key(self, name: String, zkey: &Zkey) -> Result<KeyCircuit, CircomError> {
        match self.matches(zkey) {
            Ok(()) => Ok(KeyCircuit::of(name, self)),
            Err(reason) => Err(CircomError::OtherCircuit { r1cs: name, reason }),
        }
    }
}

/// What checks a witness constraint by constraint against a key whose
/// circuit this is ([`R1cs::for_key`]): the count and the C rows, since
/// the key's own rows give each constraint's A·z and B·z.
pub struct KeyCircuit {
    pub name: String,
    pub n_constraints: usize,
    c: Matrix<Fr>,
}

impl KeyCircuit {
    fn of(name: String, r1cs: R1cs) -> KeyCircuit {
        let [_, _, c] = r1cs.matrices;
        KeyCircuit { name, n_constraints: r1cs.n_constraints, c }
    }

    /// The circuit in `bytes` (the file `name`), already matched to its key
    /// by [`R1cs::for_key`] when these exact bytes were loaded before: only
    /// its C rows are decoded.
    pub fn matched_before(name: String, bytes: &[u8]) -> Result<KeyCircuit, CircomError> {
        let r1cs = R1cs::parse_rows(&name, bytes, Rows::OnlyC)?;
        Ok(KeyCircuit::of(name, r1cs))
    }

    /// The first constraint not satisfied, given each constraint's A·z and
    /// B·z (from the key's rows) and the full witness `values`.
    pub fn first_unsatisfied_given(&self, a: &[Fr], b: &[Fr], values: &[Fr]) -> Option<usize> {
        (0..self.n_constraints).into_par_iter().find_first(|&i| {
            a[i] * b[i] != self.c[i].iter().map(|(coefficient, wire)| *coefficient * values[*wire]).sum::<Fr>()
        })
    }
}
