//! The committed circom fixtures (tests/vectors/circom) and where an iden3
//! container's sections lie, for tests that damage them on purpose.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/circom").join(name)
}

/// Where section `kind`'s bytes start in an iden3 container (.zkey, .wtns, .r1cs).
pub fn section_start(bytes: &[u8], kind: u32) -> usize {
    let mut at = 12;
    loop {
        let k = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let len = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().unwrap()) as usize;
        if k == kind {
            return at + 12;
        }
        at += 12 + len;
    }
}
