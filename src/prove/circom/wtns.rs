//! Witness files (`.wtns`, versions 1 and 2, as circom's witness
//! calculators and `snarkjs wtns calculate` write them): section 1 the
//! prime (u32 byte length, value) and the signal count, section 2 every
//! signal's value, little-endian in standard form. Signal 0 is the
//! constant one, then the public outputs and inputs, then the rest.

use ark_bn254::Fr;
use rayon::prelude::*;

use super::binfile::BinFile;
use super::field::{self, Prime};
use super::CircomError;

pub struct Witness {
    pub values: Vec<Fr>,
}

impl Witness {
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Witness, CircomError> {
        let bin = BinFile::parse(file, bytes, b"wtns", &[1, 2])?;
        let mut at = bin.section(1, "header")?;
        field::expect_bn254(&mut at, Prime::Scalar)?;
        let count = at.u32()? as usize;
        let mut at = bin.section(2, "values")?;
        let start = at.offset();
        let bytes = at.take_items(count, 32, "values")?;
        let values: Vec<Option<Fr>> = bytes.par_chunks_exact(32).map(field::fr_standard).collect();
        if let Some(index) = values.par_iter().position_first(Option::is_none) {
            return Err(at.error_at(
                start + index * 32,
                format!("signal {index}: a value not below the scalar field's modulus"),
            ));
        }
        let values: Vec<Fr> = values.into_iter().map(|v| v.expect("checked above")).collect();
        match values.first() {
            None => {
                return Err(
                    at.error_at(start, "the witness has no signals (signal 0, the constant one, at least)".into())
                )
            }
            Some(one) if *one != Fr::from(1u64) => {
                return Err(at.error_at(start, "signal 0 (the constant one) is not 1".into()))
            }
            Some(_) => {}
        }
        Ok(Witness { values })
    }

    /// The public signals (outputs, then public inputs) of a circuit with
    /// `n_public` of them.
    pub fn public(&self, n_public: usize) -> &[Fr] {
        &self.values[1..=n_public]
    }
}
