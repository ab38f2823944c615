//! Circuit-specific Groth16 setup and the key files.
//!
//! Keys live in `<data_dir>/keys/compliance-v<CIRCUIT_VERSION>-k<K>/`:
//! `proving_key.bin` (ark-serialize uncompressed), `verifying_key.bin`
//! (compressed) and `circuit.json` (the circuit they were made for, and the
//! BLAKE3 of both key files). Every point is validated once, at setup; a
//! load then checks the files' digests and decodes without point checks
//! (decompressing and checking every point made loading most of a small
//! run). A digest mismatch, or [`Validation::Full`], validates every point
//! again. Key sets of earlier versions (compressed, no digests) load
//! validated and are rewritten in this form. A local setup is a single
//! party's: whoever ran it could forge proofs.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use ark_bn254::{Bn254, Fr};
use ark_ff::{BigInteger, PrimeField};
use ark_groth16::{Groth16, ProvingKey, VerifyingKey};
use ark_poly::{EvaluationDomain, GeneralEvaluationDomain};
use ark_relations::gr1cs::{
    ConstraintSynthesizer, ConstraintSystem, Matrix, OptimizationGoal, SynthesisMode, R1CS_PREDICATE_LABEL,
};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, Validate};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::circom::{R1cs, Zkey};
use super::circuit::{ComplianceCircuit, CIRCUIT_VERSION};
use super::{check_ops_per_proof, poseidon, ProveError};

pub const PROVING_KEY_FILE: &str = "proving_key.bin";
pub const VERIFYING_KEY_FILE: &str = "verifying_key.bin";
pub const CIRCUIT_FILE: &str = "circuit.json";
/// The circuit's shape (counts, digest, matrices), so a load need not
/// synthesize the circuit again (most of a key set's load time).
pub const SHAPE_FILE: &str = "shape.bin";

/// The R1CS of the compliance circuit for one K, and its digest.
pub struct CircuitShape {
    pub ops_per_proof: usize,
    pub num_constraints: usize,
    /// Including the constant-one variable.
    pub num_instance_variables: usize,
    pub num_witness_variables: usize,
    /// BLAKE3 over the version, K, the counts and every matrix entry.
    pub digest: [u8; 32],
    /// A, B, C.
    pub matrices: Vec<Matrix<Fr>>,
}

impl std::fmt::Debug for CircuitShape {
    /// The counts and digest: the matrices are megabytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitShape")
            .field("ops_per_proof", &self.ops_per_proof)
            .field("num_constraints", &self.num_constraints)
            .field("num_instance_variables", &self.num_instance_variables)
            .field("num_witness_variables", &self.num_witness_variables)
            .field("digest", &self.digest_hex())
            .finish_non_exhaustive()
    }
}

impl CircuitShape {
    /// Synthesizes the circuit in setup mode (no witness) and digests it.
    pub fn of(ops_per_proof: usize) -> Result<Self, ProveError> {
        check_ops_per_proof(ops_per_proof)?;
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        cs.set_mode(SynthesisMode::Setup);
        ComplianceCircuit::empty(ops_per_proof).generate_constraints(cs.clone())?;
        cs.finalize();
        let mut all = cs.to_matrices()?;
        let matrices = all
            .remove(R1CS_PREDICATE_LABEL)
            .ok_or_else(|| ProveError::Synthesis("the constraint system has no R1CS predicate".into()))?;
        let mut shape = CircuitShape {
            ops_per_proof,
            num_constraints: cs.num_constraints(),
            num_instance_variables: cs.num_instance_variables(),
            num_witness_variables: cs.num_witness_variables(),
            digest: [0; 32],
            matrices,
        };
        shape.digest = shape.compute_digest();
        Ok(shape)
    }

    pub fn num_public_inputs(&self) -> usize {
        self.num_instance_variables - 1
    }

    pub fn num_variables(&self) -> usize {
        self.num_instance_variables + self.num_witness_variables
    }

    /// The QAP evaluation domain size the setup and the prover use.
    pub fn domain_size(&self) -> Result<usize, ProveError> {
        GeneralEvaluationDomain::<Fr>::new(self.num_constraints + self.num_instance_variables)
            .map(|d| d.size())
            .ok_or_else(|| ProveError::Synthesis("circuit too large for BN254's FFT domain".into()))
    }

    pub fn digest_hex(&self) -> String {
        crate::content_id::hex_encode(&self.digest)
    }

    /// The shape as [`SHAPE_FILE`] holds it: counts, digest, the distinct
    /// coefficients (Montgomery form), then each matrix's row lengths (u32)
    /// and entries as (coefficient index, variable) u32 pairs. Nearly every
    /// coefficient is one of a few constants, so an entry takes 8 bytes
    /// rather than 40 and the file reads in a fifth of the time.
    pub fn encode(&self) -> Vec<u8> {
        let mut coefficients: Vec<Fr> = Vec::new();
        let mut index_of: HashMap<Fr, u32> = HashMap::new();
        let mut entries = 0;
        for row in self.matrices.iter().flatten() {
            entries += row.len();
            for (coeff, _) in row {
                index_of.entry(*coeff).or_insert_with(|| {
                    coefficients.push(*coeff);
                    (coefficients.len() - 1) as u32
                });
            }
        }
        let mut out = Vec::with_capacity(128 + 32 * coefficients.len() + 8 * entries + 4 * 3 * self.num_constraints);
        out.extend_from_slice(SHAPE_MAGIC);
        for n in [self.ops_per_proof, self.num_constraints, self.num_instance_variables, self.num_witness_variables] {
            out.extend_from_slice(&(n as u64).to_le_bytes());
        }
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(&(coefficients.len() as u64).to_le_bytes());
        for coeff in &coefficients {
            for limb in coeff.0 .0 {
                out.extend_from_slice(&limb.to_le_bytes());
            }
        }
        out.extend_from_slice(&(self.matrices.len() as u64).to_le_bytes());
        for matrix in &self.matrices {
            out.extend_from_slice(&(matrix.len() as u64).to_le_bytes());
            for row in matrix {
                out.extend_from_slice(&(row.len() as u32).to_le_bytes());
            }
            for (coeff, variable) in matrix.iter().flatten() {
                // check_ops_per_proof bounds K far below 2^32 variables.
                let variable = u32::try_from(*variable).expect("fewer than 2^32 variables");
                out.extend_from_slice(&index_of[coeff].to_le_bytes());
                out.extend_from_slice(&variable.to_le_bytes());
            }
        }
        out
    }

    /// A shape read back from [`CircuitShape::encode`]'s bytes (whose
    /// integrity the caller has checked by digest; every index is still
    /// bounds-checked). Rows are decoded across the cores.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        use rayon::prelude::*;
        let mut r = ShapeReader { bytes, at: 0 };
        if r.take(SHAPE_MAGIC.len())? != SHAPE_MAGIC {
            return Err("not a circuit shape of this format (bad magic)".into());
        }
        let [ops_per_proof, num_constraints, num_instance_variables, num_witness_variables] =
            [r.u64()?, r.u64()?, r.u64()?, r.u64()?].map(|n| n as usize);
        let digest: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
        let variables = num_instance_variables.saturating_add(num_witness_variables);
        let coefficients: Vec<Fr> = r
            .counted(32)?
            .chunks_exact(32)
            .map(|c| {
                let limb = |i: usize| u64::from_le_bytes(c[8 * i..8 * i + 8].try_into().expect("8 bytes"));
                Fr::new_unchecked(ark_ff::BigInt([limb(0), limb(1), limb(2), limb(3)]))
            })
            .collect();
        let matrix_count = r.u64()?;
        if matrix_count != 3 {
            return Err(format!("{matrix_count} matrices, not 3"));
        }
        let mut matrices = Vec::with_capacity(3);
        for _ in 0..matrix_count {
            let lengths = r.counted(4)?;
            // Each row's first entry, then the entries themselves.
            let mut starts = Vec::with_capacity(lengths.len() / 4 + 1);
            let mut total = 0usize;
            for len in lengths.chunks_exact(4) {
                starts.push(total);
                total = total.saturating_add(u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize);
            }
            starts.push(total);
            let entries = r.take(total.checked_mul(8).ok_or("too many entries")?)?;
            let matrix = starts
                .par_windows(2)
                .map(|w| {
                    entries[8 * w[0]..8 * w[1]]
                        .chunks_exact(8)
                        .map(|e| {
                            let coeff = u32::from_le_bytes(e[..4].try_into().expect("4 bytes")) as usize;
                            let variable = u32::from_le_bytes(e[4..].try_into().expect("4 bytes")) as usize;
                            match (coefficients.get(coeff), variable < variables) {
                                (Some(c), true) => Ok((*c, variable)),
                                (None, _) => Err(format!("coefficient {coeff} of {}", coefficients.len())),
                                (_, false) => Err(format!("variable {variable} of {variables}")),
                            }
                        })
                        .collect::<Result<Vec<_>, String>>()
                })
                .collect::<Result<Matrix<Fr>, String>>()?;
            matrices.push(matrix);
        }
        if r.at != bytes.len() {
            return Err(format!("{} trailing bytes", bytes.len() - r.at));
        }
        Ok(CircuitShape {
            ops_per_proof,
            num_constraints,
            num_instance_variables,
            num_witness_variables,
            digest,
            matrices,
        })
    }

    fn compute_digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"causality-vm compliance circuit");
        for n in [
            CIRCUIT_VERSION as u64,
            self.ops_per_proof as u64,
            self.num_constraints as u64,
            self.num_instance_variables as u64,
            self.num_witness_variables as u64,
        ] {
            h.update(&n.to_le_bytes());
        }
        for matrix in &self.matrices {
            h.update(&(matrix.len() as u64).to_le_bytes());
            for row in matrix {
                h.update(&(row.len() as u64).to_le_bytes());
                for (coeff, index) in row {
                    h.update(&coeff.into_bigint().to_bytes_le());
                    h.update(&(*index as u64).to_le_bytes());
                }
            }
        }
        *h.finalize().as_bytes()
    }
}

const SHAPE_MAGIC: &[u8; 8] = b"cvmshp02";

/// Reads [`SHAPE_FILE`]'s fields in order, every length checked.
struct ShapeReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> ShapeReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}: {n} more bytes needed", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    /// A u64 count, then that many items of `size` bytes.
    fn counted(&mut self, size: usize) -> Result<&'a [u8], String> {
        let n = self.u64()?;
        let bytes = usize::try_from(n).ok().and_then(|n| n.checked_mul(size)).ok_or("a count overflows")?;
        self.take(bytes)
    }
}

/// The shape of the circuit the key set in `dir` was made for, read from
/// its [`SHAPE_FILE`] (checked by its recorded digest) when the key set was
/// made for this build's circuit version, size and Poseidon parameters;
/// None where it must be synthesized (an earlier key set, or a mismatch).
/// A circuit change always comes with a new [`CIRCUIT_VERSION`] (a test
/// pins the digest), so a cached shape is this build's.
pub fn cached_shape(dir: &Path, ops_per_proof: usize) -> Option<CircuitShape> {
    let meta: KeyMetadata = serde_json::from_slice(&fs::read(dir.join(CIRCUIT_FILE)).ok()?).ok()?;
    let current = (CIRCUIT_VERSION, ops_per_proof, poseidon::fingerprint());
    if (meta.circuit_version, meta.ops_per_proof, meta.poseidon_fingerprint.clone()) != current {
        return None;
    }
    let bytes = fs::read(dir.join(SHAPE_FILE)).ok()?;
    if meta.shape_blake3.as_deref() != Some(digest(&bytes).as_str()) {
        return None;
    }
    let shape = CircuitShape::decode(&bytes).ok()?;
    let same = KeyMetadata::of(&shape).same_circuit(&meta) && shape.ops_per_proof == ops_per_proof;
    same.then_some(shape)
}

/// The key files' form this version writes (`circuit.json`'s `key_format`;
/// absent: 1, compressed and without digests).
pub const KEY_FORMAT: u32 = 2;

/// What `circuit.json` records about the circuit a key pair was made for,
/// and (format 2) the key files' digests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMetadata {
    pub circuit_version: u32,
    pub ops_per_proof: usize,
    pub num_constraints: usize,
    pub num_public_inputs: usize,
    pub num_witness_variables: usize,
    pub circuit_digest: String,
    pub poseidon_fingerprint: String,
    #[serde(default = "format_one")]
    pub key_format: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proving_key_blake3: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifying_key_blake3: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape_blake3: Option<String>,
    /// A key set imported from a snarkjs key (a ceremony's): the BLAKE3 of
    /// that `.zkey`. Its H points are for the odd-coset quotient
    /// (`prove::circom::quotient`), not arkworks' libsnark reduction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zkey_blake3: Option<String>,
}

fn format_one() -> u32 {
    1
}

impl KeyMetadata {
    /// The circuit's part (the key files' digests are set when they are written).
    pub fn of(shape: &CircuitShape) -> Self {
        KeyMetadata {
            circuit_version: CIRCUIT_VERSION,
            ops_per_proof: shape.ops_per_proof,
            num_constraints: shape.num_constraints,
            num_public_inputs: shape.num_public_inputs(),
            num_witness_variables: shape.num_witness_variables,
            circuit_digest: shape.digest_hex(),
            poseidon_fingerprint: poseidon::fingerprint(),
            key_format: KEY_FORMAT,
            proving_key_blake3: None,
            verifying_key_blake3: None,
            shape_blake3: None,
            zkey_blake3: None,
        }
    }

    /// Whether the key's H points are for the odd-coset quotient (a snarkjs key).
    pub fn odd_coset(&self) -> bool {
        self.zkey_blake3.is_some()
    }

    /// Whether both describe the same circuit (whatever their files' form).
    pub fn same_circuit(&self, other: &KeyMetadata) -> bool {
        (self.circuit_version, self.ops_per_proof, self.num_constraints, self.num_public_inputs)
            == (other.circuit_version, other.ops_per_proof, other.num_constraints, other.num_public_inputs)
            && (self.num_witness_variables, &self.circuit_digest, &self.poseidon_fingerprint)
                == (other.num_witness_variables, &other.circuit_digest, &other.poseidon_fingerprint)
    }
}

/// `<data_dir>/keys/compliance-v<version>-k<K>`.
pub fn key_dir(data_dir: &Path, ops_per_proof: usize) -> PathBuf {
    data_dir.join("keys").join(format!("compliance-v{CIRCUIT_VERSION}-k{ops_per_proof}"))
}

/// Circuit-specific setup from a CSPRNG (ChaCha20 seeded by the OS).
pub fn setup(shape: &CircuitShape) -> Result<ProvingKey<Bn254>, ProveError> {
    let mut rng = rand_chacha::ChaCha20Rng::from_rng(rand::rngs::OsRng)
        .map_err(|e| ProveError::Synthesis(format!("seeding the setup RNG from the OS: {e}")))?;
    let pk = Groth16::<Bn254>::generate_random_parameters_with_reduction(
        ComplianceCircuit::empty(shape.ops_per_proof),
        &mut rng,
    )?;
    check_key_shape(&pk, shape, false)
        .map_err(|reason| ProveError::Synthesis(format!("setup produced a bad key: {reason}")))?;
    Ok(pk)
}

/// Writes the key pair and `circuit.json` with their digests (each
/// atomically and durably; the caller holds [`lock`]). `circuit.json` goes
/// last: until it names them, the key files are not a key set.
pub fn save(dir: &Path, shape: &CircuitShape, pk: &ProvingKey<Bn254>) -> Result<(), ProveError> {
    save_as(dir, shape, pk, None)
}

/// [`save`], recording the snarkjs key it was imported from, if any.
fn save_as(dir: &Path, shape: &CircuitShape, pk: &ProvingKey<Bn254>, zkey: Option<String>) -> Result<(), ProveError> {
    fs::create_dir_all(dir).map_err(|source| ProveError::Io { path: dir.to_path_buf(), source })?;
    let encoding = |e: ark_serialize::SerializationError| ProveError::Synthesis(format!("serializing the key: {e}"));
    let pk_bytes = super::keyfile::encode(pk);
    let mut vk_bytes = Vec::new();
    pk.vk.serialize_compressed(&mut vk_bytes).map_err(encoding)?;
    let shape_bytes = shape.encode();
    let mut meta = KeyMetadata::of(shape);
    meta.proving_key_blake3 = Some(digest(&pk_bytes));
    meta.verifying_key_blake3 = Some(digest(&vk_bytes));
    meta.shape_blake3 = Some(digest(&shape_bytes));
    meta.zkey_blake3 = zkey;
    let meta =
        serde_json::to_vec_pretty(&meta).map_err(|e| ProveError::Synthesis(format!("encoding circuit.json: {e}")))?;
    let _ = fs::remove_file(dir.join(CIRCUIT_FILE));
    write_atomically(&dir.join(PROVING_KEY_FILE), &pk_bytes)?;
    write_atomically(&dir.join(VERIFYING_KEY_FILE), &vk_bytes)?;
    write_atomically(&dir.join(SHAPE_FILE), &shape_bytes)?;
    write_atomically(&dir.join(CIRCUIT_FILE), &meta)
}

/// Writes `shape` beside a key set that has no usable one (made before
/// shapes were cached, or its shape file damaged), so later loads need not
/// synthesize the circuit. Leaves a key set replaced meanwhile alone.
pub fn save_shape(dir: &Path, shape: &CircuitShape) -> Result<(), ProveError> {
    let _lock = lock(dir)?;
    let meta_path = dir.join(CIRCUIT_FILE);
    let mut meta: KeyMetadata = serde_json::from_slice(&read(&meta_path)?).map_err(|e| ProveError::Keys {
        path: dir.to_path_buf(),
        reason: format!("{CIRCUIT_FILE} is not valid: {e}"),
    })?;
    if !meta.same_circuit(&KeyMetadata::of(shape)) || meta.key_format < KEY_FORMAT {
        return Ok(());
    }
    let bytes = shape.encode();
    meta.shape_blake3 = Some(digest(&bytes));
    let meta =
        serde_json::to_vec_pretty(&meta).map_err(|e| ProveError::Synthesis(format!("encoding circuit.json: {e}")))?;
    write_atomically(&dir.join(SHAPE_FILE), &bytes)?;
    write_atomically(&meta_path, &meta)
}

/// BLAKE3 of a key file, as hex (both cores: a proving key is megabytes).
fn digest(bytes: &[u8]) -> String {
    blake3::Hasher::new().update_rayon(bytes).finalize().to_hex().to_string()
}

/// Whether `dir` holds a key pair (possibly for another circuit).
pub fn exists(dir: &Path) -> bool {
    [PROVING_KEY_FILE, VERIFYING_KEY_FILE, CIRCUIT_FILE].iter().all(|f| dir.join(f).is_file())
}

/// How much a load checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    /// The files' digests; every point only where they do not match.
    Digest,
    /// Every point: on the curve and in the subgroup (`cvm verify --paranoid`).
    Full,
}

/// What a load did beyond reading the keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The key set was of an earlier format and was rewritten in this one.
    pub upgraded: bool,
    /// Every point was validated.
    pub validated: bool,
    /// Imported from a snarkjs key: its quotient is the odd-coset one.
    pub odd_coset: bool,
}

/// Loads the key pair in `dir` for the circuit `shape` (see the module docs).
pub fn load(
    dir: &Path,
    shape: &CircuitShape,
    validation: Validation,
) -> Result<(ProvingKey<Bn254>, Loaded), ProveError> {
    let keys_err = |reason: String| ProveError::Keys { path: dir.to_path_buf(), reason };
    let meta: KeyMetadata = serde_json::from_slice(&read(&dir.join(CIRCUIT_FILE))?)
        .map_err(|e| keys_err(format!("{CIRCUIT_FILE} is not valid: {e}")))?;
    let expected = KeyMetadata::of(shape);
    if !meta.same_circuit(&expected) {
        return Err(keys_err(format!(
            "made for a different circuit (digest {} v{} K={}), this build needs digest {} v{} K={}; run `cvm setup --ops-per-proof {}` again",
            meta.circuit_digest,
            meta.circuit_version,
            meta.ops_per_proof,
            expected.circuit_digest,
            expected.circuit_version,
            expected.ops_per_proof,
            shape.ops_per_proof
        )));
    }
    let pk_bytes = map(&dir.join(PROVING_KEY_FILE))?;
    let vk_bytes = read(&dir.join(VERIFYING_KEY_FILE))?;
    let mut loaded = Loaded { odd_coset: meta.odd_coset(), ..Loaded::default() };
    let pk = if meta.key_format < KEY_FORMAT {
        loaded.validated = true;
        loaded.upgraded = true;
        ProvingKey::<Bn254>::deserialize_compressed(&pk_bytes[..])
            .map_err(|e| keys_err(format!("{PROVING_KEY_FILE} does not decode (compressed, validated): {e}")))?
    } else {
        let matches = |recorded: &Option<String>, bytes: &[u8]| recorded.as_deref() == Some(digest(bytes).as_str());
        let intact = matches(&meta.proving_key_blake3, &pk_bytes) && matches(&meta.verifying_key_blake3, &vk_bytes);
        if !intact {
            tracing::warn!(
                dir = %dir.display(),
                "the key files do not match the digests recorded at setup: validating every point"
            );
        }
        let validate = match (intact, validation) {
            (true, Validation::Digest) => Validate::No,
            _ => Validate::Yes,
        };
        loaded.validated = validate == Validate::Yes;
        super::keyfile::decode(&pk_bytes, loaded.validated)
            .map_err(|e| keys_err(format!("{PROVING_KEY_FILE} does not decode: {e}")))?
    };
    let vk = VerifyingKey::<Bn254>::deserialize_compressed(&vk_bytes[..])
        .map_err(|e| keys_err(format!("{VERIFYING_KEY_FILE} does not decode (compressed, validated): {e}")))?;
    if vk != pk.vk {
        return Err(keys_err(format!("{VERIFYING_KEY_FILE} is not the proving key's verifying key")));
    }
    check_key_shape(&pk, shape, loaded.odd_coset).map_err(keys_err)?;
    if loaded.upgraded {
        let _lock = lock(dir)?;
        save(dir, shape, &pk)?;
    }
    Ok((pk, loaded))
}

/// Reads a compressed verifying key, validating every point.
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey<Bn254>, ProveError> {
    VerifyingKey::<Bn254>::deserialize_compressed(&read(path)?[..]).map_err(|e| ProveError::Keys {
        path: path.to_path_buf(),
        reason: format!("verifying key does not decode (compressed, validated): {e}"),
    })
}

/// Query lengths must match the circuit, or the prover would silently misuse
/// them. A snarkjs key has one H point per domain element, arkworks' one fewer.
fn check_key_shape(pk: &ProvingKey<Bn254>, shape: &CircuitShape, odd_coset: bool) -> Result<(), String> {
    let domain = shape.domain_size().map_err(|e| e.to_string())?;
    let checks = [
        ("gamma_abc_g1", pk.vk.gamma_abc_g1.len(), shape.num_instance_variables),
        ("a_query", pk.a_query.len(), shape.num_variables()),
        ("b_g1_query", pk.b_g1_query.len(), shape.num_variables()),
        ("b_g2_query", pk.b_g2_query.len(), shape.num_variables()),
        ("l_query", pk.l_query.len(), shape.num_witness_variables),
        ("h_query", pk.h_query.len(), if odd_coset { domain } else { domain - 1 }),
    ];
    for (name, got, want) in checks {
        if got != want {
            return Err(format!("{name} has {got} elements, the circuit needs {want}"));
        }
    }
    Ok(())
}

/// The file at `path` mapped into memory: the proving key is decoded
/// straight from the page cache, so a load holds one copy of it, not two.
/// Key sets are replaced by rename (`write_atomically`), never rewritten in
/// place, so the mapped file does not change under us.
fn map(path: &Path) -> Result<memmap2::Mmap, ProveError> {
    let io = |source| ProveError::Io { path: path.to_path_buf(), source };
    let file = fs::File::open(path).map_err(io)?;
    // SAFETY: no writer of ours changes a key file in place (see above).
    unsafe { memmap2::Mmap::map(&file) }.map_err(io)
}

fn read(path: &Path) -> Result<Vec<u8>, ProveError> {
    fs::read(path).map_err(|source| ProveError::Io { path: path.to_path_buf(), source })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ProveError> {
    crate::fsutil::write_atomically(path, bytes, 0o644)
        .map_err(|source| ProveError::Io { path: path.to_path_buf(), source })
}

/// A key set's files as a cluster shares them, `circuit.json` last (it
/// names the others' digests, so a loader checks them against it).
pub const SET_FILES: [&str; 4] = [SHAPE_FILE, PROVING_KEY_FILE, VERIFYING_KEY_FILE, CIRCUIT_FILE];

/// The key set's files in `dir`, in [`SET_FILES`]' order.
pub fn read_set(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, ProveError> {
    SET_FILES.iter().map(|name| Ok((name.to_string(), read(&dir.join(name))?))).collect()
}

/// Make `files` (a key set another machine made, [`read_set`]'s) the key
/// set in `dir`, under its lock; `circuit.json` goes last, so an
/// interrupted install is no key set. Refuses a file it does not know.
pub fn install_set(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), ProveError> {
    if let Some((name, _)) = files.iter().find(|(name, _)| !SET_FILES.contains(&name.as_str())) {
        return Err(ProveError::Keys { path: dir.to_path_buf(), reason: format!("{name:?} is not a key set file") });
    }
    if SET_FILES.iter().any(|f| !files.iter().any(|(name, _)| name == f)) {
        return Err(ProveError::Keys { path: dir.to_path_buf(), reason: format!("a key set needs {SET_FILES:?}") });
    }
    fs::create_dir_all(dir).map_err(|source| ProveError::Io { path: dir.to_path_buf(), source })?;
    let _lock = lock(dir)?;
    let _ = fs::remove_file(dir.join(CIRCUIT_FILE));
    for (name, bytes) in files.iter().filter(|(name, _)| name != CIRCUIT_FILE) {
        write_atomically(&dir.join(name), bytes)?;
    }
    let (_, circuit) = files.iter().find(|(name, _)| name == CIRCUIT_FILE).expect("checked above");
    write_atomically(&dir.join(CIRCUIT_FILE), circuit)
}

/// The lock every writer of the key set in `dir` holds (two setups for the
/// same key set at once would leave a proving key and a verifying key from
/// different setups).
pub fn lock(dir: &Path) -> Result<crate::fsutil::FileLock, ProveError> {
    crate::fsutil::FileLock::acquire(dir).map_err(|source| ProveError::Io { path: dir.to_path_buf(), source })
}

/// The circuit as circom's `.r1cs` (for a ceremony run with snarkjs: its
/// phase 2 on this file makes a `.zkey` that [`import_zkey`] takes).
pub fn circuit_r1cs(shape: &CircuitShape) -> R1cs {
    let [a, b, c] = &shape.matrices[..] else { unreachable!("a shape has three matrices") };
    R1cs::from_matrices(shape.num_variables(), shape.num_public_inputs(), [a.clone(), b.clone(), c.clone()])
}

/// Make a snarkjs key (a ceremony's, from [`circuit_r1cs`]) the key set in
/// `dir` for `shape`: it must be this circuit's (its A and B coefficients
/// are the circuit's), every point checked; then saved as a key set whose
/// proofs use the odd-coset quotient. The caller holds [`lock`].
pub fn import_zkey(dir: &Path, shape: &CircuitShape, zkey: &Zkey) -> Result<(), ProveError> {
    let keys_err = |reason: String| ProveError::Keys { path: dir.to_path_buf(), reason };
    circuit_r1cs(shape).matches(zkey).map_err(|reason| {
        keys_err(format!(
            "the .zkey is not this circuit's ({reason}); make it from `cvm setup --ops-per-proof {} --export-r1cs`",
            shape.ops_per_proof
        ))
    })?;
    check_key_shape(&zkey.key, shape, true).map_err(keys_err)?;
    save_as(dir, shape, &zkey.key, Some(crate::content_id::hex_encode(&zkey.digest)))
}
