//! Groth16 proofs of any circom circuit, from snarkjs's files: a `.zkey`
//! proving key ([`zkey`]), a `.wtns` witness ([`wtns`]) and, to check a
//! witness constraint by constraint, the circuit's `.r1cs` ([`r1cs`]). The
//! proof comes from the same core as the compliance circuit's
//! ([`super::prover::prove_assigned`]), with the quotient computed the way
//! snarkjs keys expect ([`quotient`]); it is checked against the key's
//! verification key before it is returned, so a witness that does not
//! satisfy the circuit never yields a proof.

pub mod binfile;
pub mod field;
pub mod prover;
pub mod quotient;
pub mod r1cs;
pub mod setup;
pub mod wtns;
pub mod zkey;

pub use prover::CircomKey;
pub use r1cs::{KeyCircuit, R1cs};
pub use wtns::Witness;
pub use zkey::{PointChecks, Zkey};

use super::ProveError;

#[derive(Debug, thiserror::Error)]
pub enum CircomError {
    #[error("{file}: section {section}, offset {offset}: {reason}")]
    Malformed { file: String, section: String, offset: usize, reason: String },
    #[error("{file}: unsupported curve {curve} (only BN254, snarkjs's bn128, is supported)")]
    UnsupportedCurve { file: String, curve: String },
    #[error("{file}: section {section}, offset {offset}: {what} {fault}")]
    InvalidPoint { file: String, section: String, offset: usize, what: String, fault: &'static str },
    #[error("the witness has {got} signals, but the key's circuit has {expected}: a witness for another circuit")]
    WitnessLength { expected: usize, got: usize },
    #[error("{r1cs} is not the circuit of this key: {reason}")]
    OtherCircuit { r1cs: String, reason: String },
    #[error("the witness does not satisfy the circuit: constraint {index} of {total} is not satisfied")]
    Unsatisfied { index: usize, total: usize },
    /// The finished proof fails the key's own verification key, and no
    /// R1CS checked the witness: one of the two is at fault.
    #[error(
        "the proof does not verify with the key's verification key: either the witness does not satisfy the \
         circuit, or the key's coefficients do not match its points (a damaged or altered key); give the \
         circuit's .r1cs to tell which (and to name the constraint that is not satisfied)"
    )]
    ProofRejected,
    /// The witness satisfies every constraint of the key's circuit, yet the
    /// proof fails the key's verification key: the key is at fault.
    #[error(
        "the witness satisfies every constraint of the .r1cs, yet its proof does not verify with the key's \
         verification key: the key's points do not match its circuit (a damaged or altered key)"
    )]
    KeyInconsistent,
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Prove(#[from] ProveError),
    #[error(transparent)]
    Ntt(#[from] crate::ntt::NttError),
}

/// A file's bytes, mapped from the page cache (populated up front): a
/// key or constraint file is decoded straight from there, without first
/// copying tens of megabytes into fresh memory. snarkjs and rapidsnark
/// users replace these files, they do not rewrite them in place; a file
/// truncated under the mapping would end the process (SIGBUS), and one
/// rewritten under it is caught by a second digest ([`unchanged`]) before
/// any marker is trusted or left.
fn map(path: &std::path::Path) -> Result<memmap2::Mmap, CircomError> {
    let io = |source| CircomError::Io { path: path.display().to_string(), source };
    // Asked before opening: opening a FIFO waits for a writer, and a device
    // or directory cannot be mapped (the OS's "No such device" says little).
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        let kind = std::io::ErrorKind::InvalidInput;
        return Err(io(std::io::Error::new(kind, "not a regular file (a device, FIFO or directory is never read)")));
    }
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: see above; the bytes are only read.
    unsafe { memmap2::MmapOptions::new().populate().map(&file) }.map_err(io)
}

/// A key or circuit file, mapped ([`map`]) and named by its BLAKE3 digest.
pub struct MappedFile {
    name: String,
    bytes: memmap2::Mmap,
    digest: [u8; 32],
}

impl MappedFile {
    pub fn open(path: &std::path::Path) -> Result<MappedFile, CircomError> {
        let bytes = map(path)?;
        let digest = digest_of(&bytes);
        Ok(MappedFile { name: path.display().to_string(), bytes, digest })
    }

    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The bytes still have the digest they were opened with ([`unchanged`]).
    fn unchanged(&self) -> Result<(), CircomError> {
        unchanged(&self.name, &self.bytes, self.digest)
    }
}

/// Load a `.zkey`. Its points are checked in full unless `checked` (a
/// directory of markers named by the files' BLAKE3 digests) says a file
/// with these exact bytes was checked before; a full check leaves a marker.
pub fn load_zkey(path: &std::path::Path, checked: Option<&std::path::Path>) -> Result<Zkey, CircomError> {
    zkey_from(&MappedFile::open(path)?, checked)
}

/// [`load_zkey`] for a file already opened.
pub fn zkey_from(file: &MappedFile, checked: Option<&std::path::Path>) -> Result<Zkey, CircomError> {
    decode_zkey(&file.name, &file.bytes, file.digest, checked, &|| file.unchanged())
}

/// [`load_zkey`] for a key's bytes (`name` in errors) whose BLAKE3 is `digest`.
pub fn load_zkey_bytes(
    name: &str,
    bytes: &[u8],
    digest: [u8; 32],
    checked: Option<&std::path::Path>,
) -> Result<Zkey, CircomError> {
    // Bytes in memory cannot change under the decoder.
    decode_zkey(name, bytes, digest, checked, &|| Ok(()))
}

/// Decode a key, then make sure (`still_same`) the bytes decoded are the
/// bytes of `digest` before trusting a marker's skip or leaving a marker.
fn decode_zkey(
    name: &str,
    bytes: &[u8],
    digest: [u8; 32],
    checked: Option<&std::path::Path>,
    still_same: &dyn Fn() -> Result<(), CircomError>,
) -> Result<Zkey, CircomError> {
    let marker = checked.map(|dir| dir.join(format!("{}.checked", crate::content_id::hex_encode(&digest))));
    let checks = match &marker {
        Some(marker) if marker.is_file() => PointChecks::Skip,
        _ => PointChecks::Full,
    };
    let zkey = Zkey::parse(name, bytes, digest, checks)?;
    still_same()?;
    if let (PointChecks::Full, Some(marker)) = (checks, marker) {
        leave_marker(&marker, &format!("{name} as checked"));
    }
    Ok(zkey)
}

/// BLAKE3 of a file's bytes, on the rayon pool (keys run to gigabytes).
fn digest_of(bytes: &[u8]) -> [u8; 32] {
    *blake3::Hasher::new().update_rayon(bytes).finalize().as_bytes()
}

/// The mapped file `name` still has the digest it was recognised by: a
/// marker named by that digest skips a check or records one, so bytes
/// changed under the mapping meanwhile are an error, not an unchecked load
/// or a marker for bytes never checked.
fn unchanged(name: &str, bytes: &[u8], digest: [u8; 32]) -> Result<(), CircomError> {
    match digest_of(bytes) == digest {
        true => Ok(()),
        false => Err(CircomError::Io {
            path: name.to_string(),
            source: std::io::Error::other("the file changed while it was read"),
        }),
    }
}

/// Record a check done (`what`, for the log) by an empty marker file. Only
/// a speed-up: a marker that cannot be written means a full check next time.
fn leave_marker(marker: &std::path::Path, what: &str) {
    let written = marker.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(marker, b""));
    if let Err(e) = written {
        tracing::debug!("not recording {what}: {e}");
    }
}

/// Load a `.wtns`.
pub fn load_witness(path: &std::path::Path) -> Result<Witness, CircomError> {
    Witness::parse(&path.display().to_string(), &map(path)?)
}

/// Load a `.r1cs`.
pub fn load_r1cs(path: &std::path::Path) -> Result<R1cs, CircomError> {
    R1cs::parse(&path.display().to_string(), &map(path)?)
}

/// The `.r1cs` at `path` as `zkey`'s circuit. The first time a pair of
/// files meets, the R1CS is decoded and matched to the key in full, and a
/// marker in `checked` records the pair by both digests; after that only
/// its C rows are decoded.
pub fn load_key_circuit(
    path: &std::path::Path,
    zkey: &Zkey,
    checked: Option<&std::path::Path>,
) -> Result<KeyCircuit, CircomError> {
    let file = MappedFile::open(path)?;
    match circuit_matched_before(&file, zkey.digest, checked)? {
        Some(circuit) => Ok(circuit),
        None => circuit_for_key(&file, zkey, checked),
    }
}

/// The marker for the pair of a key (by digest) and a circuit file.
fn fits_marker(checked: Option<&std::path::Path>, zkey: [u8; 32], r1cs: &MappedFile) -> Option<std::path::PathBuf> {
    let hex = crate::content_id::hex_encode;
    checked.map(|dir| dir.join(format!("{}-{}.fits", hex(&zkey), hex(&r1cs.digest))))
}

/// The circuit in `file`, if a marker in `checked` says it was matched to
/// the key of digest `zkey` before (only its C rows decoded); `None` when
/// it was not. Needs the key's digest alone, so it runs while the key's
/// points are still being decoded.
pub fn circuit_matched_before(
    file: &MappedFile,
    zkey: [u8; 32],
    checked: Option<&std::path::Path>,
) -> Result<Option<KeyCircuit>, CircomError> {
    if !fits_marker(checked, zkey, file).is_some_and(|m| m.is_file()) {
        return Ok(None);
    }
    let circuit = KeyCircuit::matched_before(file.name.clone(), &file.bytes)?;
    file.unchanged()?;
    Ok(Some(circuit))
}

/// The circuit in `file` decoded and matched to `zkey` in full; a marker
/// in `checked` records the pair.
pub fn circuit_for_key(
    file: &MappedFile,
    zkey: &Zkey,
    checked: Option<&std::path::Path>,
) -> Result<KeyCircuit, CircomError> {
    let circuit = R1cs::parse_for_key(&file.name, &file.bytes, zkey)?;
    if let Some(marker) = fits_marker(checked, zkey.digest, file) {
        // The marker vouches for the bytes of `digest`: they must be the ones matched.
        file.unchanged()?;
        leave_marker(&marker, &format!("{} as the circuit of its key", file.name));
    }
    Ok(circuit)
}

/// The circuit's `.r1cs` where circom and snarkjs users leave it, beside
/// the key: `NAME.r1cs` for `NAME.zkey`, `NAME_final.zkey` or
/// `NAME_0001.zkey`, else the directory's only `.r1cs`.
pub fn r1cs_beside(zkey: &std::path::Path) -> Option<std::path::PathBuf> {
    let dir = zkey.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let stem = zkey.file_stem()?.to_str()?;
    let base = stem
        .strip_suffix("_final")
        .or_else(|| {
            let (base, digits) = stem.rsplit_once('_')?;
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(base)
        })
        .unwrap_or(stem);
    for name in [stem, base] {
        let candidate = dir.join(format!("{name}.r1cs"));
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    let mut all = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "r1cs") && p.is_file());
    let only = all.next()?;
    all.next().is_none().then_some(only)
}
