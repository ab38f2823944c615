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
use super::zkey::{SparseRows, Zkey};
use super::CircomError;

/// One term: a u32 wire and a 32-byte value.
const TERM: usize = 36;

/// One term of constraint `constraint`'s row `name`, read at `at`: its
/// wire (below `n_wires`) and its value (below the modulus), read by
/// `value`: [`field::fr_standard`] for the value itself, [`field::fr_raw`]
/// for it times R⁻¹ as a [`KeyCircuit`] keeps it.
fn term(
    at: &mut Cursor<'_>,
    constraint: usize,
    name: &str,
    n_wires: usize,
    value: impl Fn(&[u8]) -> Option<Fr>,
) -> Result<(u32, Fr), CircomError> {
    let offset = at.offset();
    let wire = at.u32()?;
    if wire as usize >= n_wires {
        return Err(at.error_at(offset, format!("constraint {constraint}, {name}: wire {wire} of only {n_wires}")));
    }
    match value(at.take(32)?) {
        Some(value) => Ok((wire, value)),
        None => Err(at.error_at(offset + 4, format!("constraint {constraint}, {name}: a value not below the modulus"))),
    }
}

/// The A, B and C rows of constraint `constraint`, read at `at` (whose
/// term counts were checked to fit the section).
fn constraint_rows(
    at: &mut Cursor<'_>,
    constraint: usize,
    n_wires: usize,
) -> Result<[Vec<(Fr, usize)>; 3], CircomError> {
    let mut rows: [Vec<(Fr, usize)>; 3] = Default::default();
    for (row, name) in rows.iter_mut().zip(["A", "B", "C"]) {
        let terms = at.u32()? as usize;
        row.reserve_exact(terms);
        for _ in 0..terms {
            let (wire, value) = term(at, constraint, name, n_wires, field::fr_standard)?;
            row.push((value, wire as usize));
        }
    }
    Ok(rows)
}

/// A file's header counts and where each constraint starts in section 2
/// (the term counts checked to fit it).
struct Layout<'a> {
    n_wires: usize,
    n_public: usize,
    n_constraints: usize,
    constraints: Cursor<'a>,
    starts: Vec<usize>,
}

impl<'a> Layout<'a> {
    fn read(file: &'a str, bytes: &'a [u8]) -> Result<Layout<'a>, CircomError> {
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
        let constraints = at.clone();
        // The term counts alone, to find where each constraint starts; the
        // constraints are then decoded in parallel from those offsets.
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
        Ok(Layout { n_wires, n_public, n_constraints, constraints, starts })
    }

    /// The C rows alone, decoded in parallel straight into one list.
    fn c_rows(&self) -> Result<SparseRows, CircomError> {
        /// Constraints decoded by one task.
        const GROUP: usize = 1024;
        let skip = |at: &mut Cursor<'_>| -> Result<(), CircomError> {
            let terms = at.u32()? as usize;
            at.take(terms * TERM).map(drop)
        };
        // Where each C row's terms begin, and how many there are.
        let c_at: Vec<(usize, u32)> = self
            .starts
            .par_iter()
            .map(|&offset| {
                let mut at = self.constraints.at(offset);
                skip(&mut at).and_then(|()| skip(&mut at)).and_then(|()| at.u32()).map(|terms| (at.offset(), terms))
            })
            .collect::<Result<_, _>>()?;
        let mut starts = Vec::with_capacity(c_at.len() + 1);
        starts.push(0u32);
        for &(_, terms) in &c_at {
            starts.push(starts.last().expect("one") + terms);
        }
        // Allocated in parallel as well: first touches of fresh pages cost
        // as much as decoding into them.
        let total = *starts.last().expect("one") as usize;
        let mut entries: Vec<(u32, Fr)> = (0..total).into_par_iter().map(|_| (0, Fr::zero())).collect();
        let mut groups = Vec::with_capacity(c_at.len().div_ceil(GROUP));
        let mut rest = entries.as_mut_slice();
        for first in (0..c_at.len()).step_by(GROUP) {
            let last = (first + GROUP).min(c_at.len());
            let (group, tail) = rest.split_at_mut((starts[last] - starts[first]) as usize);
            groups.push((first..last, group));
            rest = tail;
        }
        let fill = |(constraints, out): (std::ops::Range<usize>, &mut [(u32, Fr)])| {
            let mut out = out.iter_mut();
            for constraint in constraints {
                let (offset, terms) = c_at[constraint];
                let mut at = self.constraints.at(offset);
                for slot in out.by_ref().take(terms as usize) {
                    *slot = term(&mut at, constraint, "C", self.n_wires, field::fr_raw)?;
                }
            }
            Ok(())
        };
        // Groups are in file order: the first error among them is the file's first.
        let results: Vec<Result<(), CircomError>> = groups.into_par_iter().map(fill).collect();
        results.into_iter().collect::<Result<(), _>>()?;
        Ok(SparseRows { starts, entries })
    }
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
        R1cs::decode(Layout::read(file, bytes)?)
    }

    /// The R1CS in `bytes` (named `file`) as `zkey`'s circuit, or why not.
    /// Its counts are checked against the key's from the header, before
    /// any constraint is decoded: a file of empty constraints takes several
    /// times its size once decoded, so one that cannot fit is refused first.
    pub fn parse_for_key(file: &str, bytes: &[u8], zkey: &Zkey) -> Result<KeyCircuit, CircomError> {
        let layout = Layout::read(file, bytes)?;
        if let Err(reason) = counts_fit(layout.n_wires, layout.n_public, layout.n_constraints, zkey) {
            return Err(CircomError::OtherCircuit { r1cs: file.to_string(), reason });
        }
        R1cs::decode(layout)?.for_key(file.to_string(), zkey)
    }

    fn decode(layout: Layout<'_>) -> Result<R1cs, CircomError> {
        let Layout { n_wires, n_public, n_constraints, constraints, starts } = layout;
        let decode =
            |(constraint, &offset): (usize, &usize)| constraint_rows(&mut constraints.at(offset), constraint, n_wires);
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
        counts_fit(self.n_wires, self.n_public, self.n_constraints, zkey)?;
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

/// Whether a system of these counts can be `zkey`'s: the same wires and
/// public signals, and its rows (plus snarkjs's one a public signal) in
/// the key's domain.
fn counts_fit(n_wires: usize, n_public: usize, n_constraints: usize, zkey: &Zkey) -> Result<(), String> {
    if n_wires != zkey.n_vars || n_public != zkey.n_public {
        return Err(format!(
            "it has {n_wires} wires and {n_public} public signals, the key {} and {}",
            zkey.n_vars, zkey.n_public
        ));
    }
    let rows = n_constraints + n_public + 1;
    if rows > zkey.domain_size {
        return Err(format!("its {rows} rows do not fit the key's domain of {}", zkey.domain_size));
    }
    Ok(())
}

/// What checks a witness constraint by constraint against a key whose
/// circuit this is ([`R1cs::for_key`]): the count and the C rows, since
/// the key's own rows give each constraint's A·z and B·z.
pub struct KeyCircuit {
    pub name: String,
    pub n_constraints: usize,
    /// The C rows: (wire, coefficient·R⁻¹) terms. Scaled so that a file's
    /// values are kept as they are read, with no multiplication each (half
    /// a million of them in a 2^16 circuit); the check scales A·B by R⁻¹
    /// to match, one multiplication a constraint.
    c: SparseRows,
    r_inverse: Fr,
}

impl KeyCircuit {
    fn of(name: String, r1cs: R1cs) -> KeyCircuit {
        let [_, _, c] = &r1cs.matrices;
        let r_inverse = field::r_inverse();
        let entries = c.iter().enumerate().flat_map(|(row, terms)| {
            terms.iter().map(move |&(value, wire)| (row as u32, wire as u32, value * r_inverse))
        });
        let c = SparseRows::from_entries(c.len(), entries);
        KeyCircuit { name, n_constraints: r1cs.n_constraints, c, r_inverse }
    }

    /// The circuit in `bytes` (the file `name`), already matched to its key
    /// by [`R1cs::for_key`] when these exact bytes were loaded before: only
    /// its C rows are decoded.
    pub fn matched_before(name: String, bytes: &[u8]) -> Result<KeyCircuit, CircomError> {
        let layout = Layout::read(&name, bytes)?;
        let c = layout.c_rows()?;
        Ok(KeyCircuit { n_constraints: layout.n_constraints, c, name, r_inverse: field::r_inverse() })
    }

    /// The first constraint not satisfied, given each constraint's A·z and
    /// B·z (from the key's rows) and the full witness `values`.
    pub fn first_unsatisfied_given(&self, a: &[Fr], b: &[Fr], values: &[Fr]) -> Option<usize> {
        (0..self.n_constraints).into_par_iter().find_first(|&i| {
            let c = self.c.row(i).iter().map(|(wire, scaled)| *scaled * values[*wire as usize]).sum::<Fr>();
            a[i] * b[i] * self.r_inverse != c
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` constraints over `wires` wires, each row with a few terms.
    fn system(n: usize, wires: usize) -> R1cs {
        let row = |i: usize, k: usize| -> Vec<(Fr, usize)> {
            (0..(i + k) % 4).map(|t| (Fr::from((i * 7 + t * 3 + k) as u64 + 1), (i + t * 5 + k) % wires)).collect()
        };
        let matrices = [0, 1, 2].map(|k| (0..n).map(|i| row(i, k)).collect::<Matrix<Fr>>());
        R1cs::from_matrices(wires, 2, matrices)
    }

    #[test]
    fn c_rows_alone_equal_the_full_parse_across_many_groups() {
        let r1cs = system(3 * 1024 + 5, 50);
        let bytes = r1cs.encode();
        let full = R1cs::parse("x.r1cs", &bytes).unwrap();
        let circuit = KeyCircuit::matched_before("x.r1cs".into(), &bytes).unwrap();
        assert_eq!(circuit.n_constraints, full.n_constraints);
        for (i, row) in full.matrices[2].iter().enumerate() {
            let unscaled = |v: Fr| v / field::r_inverse();
            let ours: Vec<(Fr, usize)> = circuit.c.row(i).iter().map(|&(w, v)| (unscaled(v), w as usize)).collect();
            assert_eq!(&ours, row, "constraint {i}");
        }
        let of = KeyCircuit::of("x.r1cs".into(), full);
        assert_eq!((of.c.starts, of.c.entries), (circuit.c.starts, circuit.c.entries));
    }

    #[test]
    fn a_bad_c_term_names_the_first_constraint_that_has_one() {
        let wires = 50;
        let r1cs = system(3 * 1024 + 5, wires);
        let mut bytes = r1cs.encode();
        // Wire numbers past the last one, in the C rows of two constraints in different groups.
        let layout_starts = Layout::read("x.r1cs", &bytes).unwrap().starts;
        for constraint in [2500, 2100] {
            let mut at = layout_starts[constraint];
            for _ in 0..2 {
                let terms = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
                at += 4 + terms * TERM;
            }
            assert!(
                u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) > 0,
                "constraint {constraint} has C terms"
            );
            bytes[at + 4..at + 8].copy_from_slice(&(wires as u32 + 9).to_le_bytes());
        }
        let err = KeyCircuit::matched_before("x.r1cs".into(), &bytes).err().unwrap().to_string();
        assert!(err.contains("constraint 2100, C: wire 59 of only 50"), "{err}");
        let err = R1cs::parse("x.r1cs", &bytes).err().unwrap().to_string();
        assert!(err.contains("constraint 2100, C: wire 59 of only 50"), "{err}");
    }

    /// A circuit is matched to a key by its header's counts before any
    /// constraint is decoded (a file of empty constraints takes several
    /// times its size decoded): here its constraints are damaged too, and
    /// the counts are what is reported.
    #[test]
    fn a_circuit_that_cannot_fit_the_key_is_refused_before_it_is_decoded() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let zkey = std::fs::read(format!("{dir}/tests/vectors/circom/multiplier.zkey")).unwrap();
        let zkey = Zkey::parse("multiplier.zkey", &zkey, [0; 32], crate::prove::circom::PointChecks::Skip).unwrap();
        let fits = std::fs::read(format!("{dir}/tests/vectors/circom/multiplier.r1cs")).unwrap();
        R1cs::parse_for_key("multiplier.r1cs", &fits, &zkey).unwrap();

        // One constraint too many, and the first term of constraint 1 (its A row has one) past the last wire.
        let mut r1cs = system(zkey.domain_size, zkey.n_vars);
        r1cs.n_public = zkey.n_public;
        let mut bytes = r1cs.encode();
        let at = Layout::read("x.r1cs", &bytes).unwrap().starts[1];
        bytes[at + 4..at + 8].copy_from_slice(&(zkey.n_vars as u32 + 9).to_le_bytes());
        assert!(R1cs::parse("x.r1cs", &bytes).is_err(), "a damaged constraint");
        let err = R1cs::parse_for_key("x.r1cs", &bytes, &zkey).err().unwrap().to_string();
        assert!(err.contains("do not fit the key's domain"), "{err}");
    }
}
