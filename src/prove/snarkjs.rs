//! snarkjs's Groth16 JSON formats: `verification_key.json`, `proof.json`
//! and `public.json`, written from our keys and proofs and read back with
//! every value checked.
//!
//! Encodings: field elements are decimal strings; G1 points are projective
//! `[x, y, "1"]` (infinity `["0", "1", "0"]`); G2 points are
//! `[[x.c0, x.c1], [y.c0, y.c1], ["1", "0"]]`, each Fq2 as `[c0, c1]`.

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ark_bn254::{Bn254, Fq, Fq12, Fq2, Fr, G1Affine, G2Affine};
use ark_ec::pairing::Pairing;
use ark_ec::AffineRepr;
use ark_ff::{PrimeField, Zero};
use ark_groth16::{prepare_verifying_key, Proof, VerifyingKey};
use serde_json::{json, Value};

use super::points::check_point;
use super::system::{verify_groth16, BatchProof};
use super::ProveError;

pub const VK_FILE: &str = "verification_key.json";
pub const PROOF_FILE: &str = "proof.json";
pub const PUBLIC_FILE: &str = "public.json";
/// What an export holds: how many proofs, where, and each file's BLAKE3.
pub const MANIFEST_FILE: &str = "manifest.json";
const MANIFEST_FORMAT: &str = "cvm-export-v1";

fn dec<F: PrimeField>(x: &F) -> Value {
    Value::String(x.into_bigint().to_string())
}

fn fq2(x: &Fq2) -> Value {
    json!([dec(&x.c0), dec(&x.c1)])
}

pub fn g1_to_json(p: &G1Affine) -> Value {
    match p.xy() {
        Some((x, y)) => json!([dec(&x), dec(&y), "1"]),
        None => json!(["0", "1", "0"]),
    }
}

pub fn g2_to_json(p: &G2Affine) -> Value {
    match p.xy() {
        Some((x, y)) => json!([fq2(&x), fq2(&y), ["1", "0"]]),
        None => json!([["0", "0"], ["1", "0"], ["0", "0"]]),
    }
}

fn fq12_to_json(x: &Fq12) -> Value {
    let fq6 = |c: &ark_bn254::Fq6| json!([fq2(&c.c0), fq2(&c.c1), fq2(&c.c2)]);
    json!([fq6(&x.c0), fq6(&x.c1)])
}

pub fn vk_to_json(vk: &VerifyingKey<Bn254>) -> Value {
    let alphabeta = Bn254::pairing(vk.alpha_g1, vk.beta_g2).0;
    json!({
        "protocol": "groth16",
        "curve": "bn128",
        "nPublic": vk.gamma_abc_g1.len().saturating_sub(1),
        "vk_alpha_1": g1_to_json(&vk.alpha_g1),
        "vk_beta_2": g2_to_json(&vk.beta_g2),
        "vk_gamma_2": g2_to_json(&vk.gamma_g2),
        "vk_delta_2": g2_to_json(&vk.delta_g2),
        "vk_alphabeta_12": fq12_to_json(&alphabeta),
        "IC": vk.gamma_abc_g1.iter().map(g1_to_json).collect::<Vec<_>>(),
    })
}

pub fn proof_to_json(proof: &Proof<Bn254>) -> Value {
    json!({
        "pi_a": g1_to_json(&proof.a),
        "pi_b": g2_to_json(&proof.b),
        "pi_c": g1_to_json(&proof.c),
        "protocol": "groth16",
        "curve": "bn128",
    })
}

pub fn public_to_json(inputs: &[Fr]) -> Value {
    Value::Array(inputs.iter().map(dec).collect())
}

/// Writes the three files for one proof into `dir`.
pub fn export_proof(dir: &Path, vk: &VerifyingKey<Bn254>, proof: &BatchProof) -> Result<(), ProveError> {
    fs::create_dir_all(dir).map_err(|source| ProveError::Io { path: dir.to_path_buf(), source })?;
    write_json(&dir.join(VK_FILE), &vk_to_json(vk))?;
    write_json(&dir.join(PROOF_FILE), &proof_to_json(&proof.proof))?;
    write_json(&dir.join(PUBLIC_FILE), &public_to_json(&proof.public_inputs))
}

/// One set of files per proof: `dir` itself for a single proof, else
/// `dir/proof-<i>/`, and the [`MANIFEST_FILE`] listing them. Returns the
/// directories written.
pub fn export_batch(dir: &Path, vk: &VerifyingKey<Bn254>, proofs: &[BatchProof]) -> Result<Vec<PathBuf>, ProveError> {
    let dirs: Vec<PathBuf> = if proofs.len() == 1 {
        vec![dir.to_path_buf()]
    } else {
        (0..proofs.len()).map(|i| dir.join(format!("proof-{i}"))).collect()
    };
    for (d, proof) in dirs.iter().zip(proofs) {
        export_proof(d, vk, proof)?;
    }
    write_manifest(dir, &dirs)?;
    Ok(dirs)
}

/// The manifest of an export in `dir` whose proofs are in `dirs`.
fn write_manifest(dir: &Path, dirs: &[PathBuf]) -> Result<(), ProveError> {
    let mut proofs = Vec::with_capacity(dirs.len());
    for d in dirs {
        let name = d.strip_prefix(dir).unwrap_or(d).display().to_string();
        let mut files = serde_json::Map::new();
        for file in [VK_FILE, PROOF_FILE, PUBLIC_FILE] {
            files.insert(file.to_string(), Value::String(file_digest(&d.join(file))?));
        }
        proofs.push(json!({ "dir": if name.is_empty() { ".".to_string() } else { name }, "files": files }));
    }
    write_json(&dir.join(MANIFEST_FILE), &json!({ "format": MANIFEST_FORMAT, "count": dirs.len(), "proofs": proofs }))
}

fn file_digest(path: &Path) -> Result<String, ProveError> {
    let io = |source| ProveError::Io { path: path.to_path_buf(), source };
    let file = fs::File::open(path).map_err(io)?;
    let mut hasher = blake3::Hasher::new();
    // Streamed, and bounded as the files it names are (a proof, a key, public inputs).
    let read = hasher.update_reader(std::io::Read::take(file, MAX_JSON_BYTES + 1)).map_err(io)?;
    if read.count() > MAX_JSON_BYTES {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_JSON_BYTES} bytes"),
        )));
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// The proof directories an export in `dir` holds, as its manifest lists
/// them, every file checked against its digest; any proof directory the
/// manifest does not list is an error too.
pub fn manifest_dirs(dir: &Path) -> Result<Vec<PathBuf>, ProveError> {
    let path = dir.join(MANIFEST_FILE);
    let bad = |reason: String| ProveError::Malformed { what: path.display().to_string(), reason };
    let manifest = read_json(&path)?;
    if manifest.get("format").and_then(Value::as_str) != Some(MANIFEST_FORMAT) {
        return Err(bad(format!("not a manifest of format {MANIFEST_FORMAT}")));
    }
    let listed = manifest.get("proofs").and_then(Value::as_array).ok_or_else(|| bad("no \"proofs\" list".into()))?;
    let count = manifest.get("count").and_then(Value::as_u64);
    if count != Some(listed.len() as u64) {
        return Err(bad(format!("it counts {count:?} proofs but lists {}", listed.len())));
    }
    let mut dirs = Vec::with_capacity(listed.len());
    for (i, entry) in listed.iter().enumerate() {
        let name = entry.get("dir").and_then(Value::as_str).ok_or_else(|| bad(format!("proof {i} has no dir")))?;
        if name != "." && (name.contains('/') || name.contains('\\') || name.starts_with('.')) {
            return Err(bad(format!("proof {i}: {name:?} is not a directory of the export")));
        }
        let d = if name == "." { dir.to_path_buf() } else { dir.join(name) };
        for file in [VK_FILE, PROOF_FILE, PUBLIC_FILE] {
            let expected = entry.get("files").and_then(|f| f.get(file)).and_then(Value::as_str);
            let expected = expected.ok_or_else(|| bad(format!("proof {i} lists no digest of {file}")))?;
            let found = file_digest(&d.join(file)).map_err(|_| bad(format!("{}/{file} is missing", d.display())))?;
            if found != expected {
                return Err(bad(format!("{}/{file} is not the file exported (its BLAKE3 differs)", d.display())));
            }
        }
        dirs.push(d);
    }
    for found in proof_dirs_in(dir)? {
        if !dirs.contains(&found) {
            return Err(bad(format!("{} holds a proof the manifest does not list", found.display())));
        }
    }
    Ok(dirs)
}

/// Every directory under `dir` (itself included) that holds a proof.
pub fn proof_dirs_in(dir: &Path) -> Result<Vec<PathBuf>, ProveError> {
    let mut dirs = Vec::new();
    if dir.join(PROOF_FILE).is_file() {
        dirs.push(dir.to_path_buf());
    }
    let entries = fs::read_dir(dir).map_err(|source| ProveError::Io { path: dir.to_path_buf(), source })?;
    let mut children: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join(PROOF_FILE).is_file()).collect();
    children.sort();
    dirs.extend(children);
    Ok(dirs)
}

fn write_json(path: &Path, value: &Value) -> Result<(), ProveError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| ProveError::Malformed { what: path.display().to_string(), reason: e.to_string() })?;
    fs::write(path, text + "\n").map_err(|source| ProveError::Io { path: path.to_path_buf(), source })
}

/// Parsing context: the file and JSON path of the value being read.
struct At<'a> {
    file: &'a str,
    path: String,
}

impl At<'_> {
    fn child(&self, key: impl std::fmt::Display) -> At<'_> {
        At { file: self.file, path: format!("{}{}", self.path, key) }
    }
    fn err(&self, reason: impl Into<String>) -> ProveError {
        let what = match self.path.is_empty() {
            true => self.file.to_string(),
            false => format!("{} at {}", self.file, self.path),
        };
        ProveError::Malformed { what, reason: reason.into() }
    }
}

/// Decimal digits of the largest BN254 field element (both moduli have 77).
const MAX_DECIMAL_DIGITS: usize = 77;

fn field<F: PrimeField + FromStr>(v: &Value, at: &At) -> Result<F, ProveError> {
    let s = v.as_str().ok_or_else(|| at.err("expected a decimal string"))?;
    // Checked before parsing: decimal parsing takes time quadratic in the length.
    if s.len() > MAX_DECIMAL_DIGITS {
        return Err(at.err(format!(
            "a decimal string of {} characters; a field element has at most {MAX_DECIMAL_DIGITS} digits",
            s.len()
        )));
    }
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    let value = if canonical { F::from_str(s).ok() } else { None };
    match value {
        // Re-encoding must give the same text, which rejects values >= the modulus.
        Some(x) if x.into_bigint().to_string() == s => Ok(x),
        _ => Err(at.err(format!("{s:?} is not a canonical decimal field element"))),
    }
}

fn array<'v>(v: &'v Value, len: usize, at: &At) -> Result<&'v Vec<Value>, ProveError> {
    match v.as_array() {
        Some(a) if a.len() == len => Ok(a),
        _ => Err(at.err(format!("expected an array of {len}"))),
    }
}

fn get<'v>(obj: &'v Value, key: &str, at: &At) -> Result<&'v Value, ProveError> {
    obj.get(key).ok_or_else(|| at.err(format!("missing \"{key}\"")))
}

fn fq2_from(v: &Value, at: &At) -> Result<Fq2, ProveError> {
    let a = array(v, 2, at)?;
    Ok(Fq2::new(field::<Fq>(&a[0], &at.child("[0]"))?, field::<Fq>(&a[1], &at.child("[1]"))?))
}

pub fn g1_from_json(v: &Value, file: &str, path: &str) -> Result<G1Affine, ProveError> {
    let at = At { file, path: path.into() };
    let a = array(v, 3, &at)?;
    let [x, y, z] = [0, 1, 2].map(|i| field::<Fq>(&a[i], &at.child(format!("[{i}]"))));
    let (x, y, z) = (x?, y?, z?);
    let p = if z.is_zero() {
        G1Affine::zero()
    } else if z == Fq::from(1u64) {
        G1Affine::new_unchecked(x, y)
    } else {
        return Err(at.err("z must be 1 (affine) or 0 (infinity)"));
    };
    check_point(&format!("{file} {path} (G1)"), &p)?;
    Ok(p)
}

pub fn g2_from_json(v: &Value, file: &str, path: &str) -> Result<G2Affine, ProveError> {
    let at = At { file, path: path.into() };
    let a = array(v, 3, &at)?;
    let x = fq2_from(&a[0], &at.child("[0]"))?;
    let y = fq2_from(&a[1], &at.child("[1]"))?;
    let z = fq2_from(&a[2], &at.child("[2]"))?;
    let p = if z.is_zero() {
        G2Affine::zero()
    } else if z == Fq2::from(1u64) {
        G2Affine::new_unchecked(x, y)
    } else {
        return Err(at.err("z must be [\"1\",\"0\"] (affine) or zero (infinity)"));
    };
    check_point(&format!("{file} {path} (G2)"), &p)?;
    Ok(p)
}

fn check_header(v: &Value, at: &At) -> Result<(), ProveError> {
    if get(v, "protocol", at)? != "groth16" {
        return Err(at.err("protocol must be \"groth16\""));
    }
    if get(v, "curve", at)? != "bn128" {
        return Err(at.err("curve must be \"bn128\""));
    }
    Ok(())
}

pub fn vk_from_json(v: &Value) -> Result<VerifyingKey<Bn254>, ProveError> {
    vk_named(v, VK_FILE)
}

/// [`vk_from_json`], errors naming `file`.
fn vk_named(v: &Value, file: &str) -> Result<VerifyingKey<Bn254>, ProveError> {
    let at = At { file, path: String::new() };
    check_header(v, &at)?;
    let ic = get(v, "IC", &at)?.as_array().ok_or_else(|| at.err("IC must be an array"))?;
    let n_public = get(v, "nPublic", &at)?.as_u64().ok_or_else(|| at.err("nPublic must be a number"))?;
    if n_public.checked_add(1) != Some(ic.len() as u64) {
        return Err(at.err(format!("nPublic is {n_public} but IC has {} points (expected nPublic + 1)", ic.len())));
    }
    let g2 = |key: &str| g2_from_json(get(v, key, &at)?, file, key);
    Ok(VerifyingKey {
        alpha_g1: g1_from_json(get(v, "vk_alpha_1", &at)?, file, "vk_alpha_1")?,
        beta_g2: g2("vk_beta_2")?,
        gamma_g2: g2("vk_gamma_2")?,
        delta_g2: g2("vk_delta_2")?,
        gamma_abc_g1: ic
            .iter()
            .enumerate()
            .map(|(i, p)| g1_from_json(p, file, &format!("IC[{i}]")))
            .collect::<Result<_, _>>()?,
    })
}

pub fn proof_from_json(v: &Value) -> Result<Proof<Bn254>, ProveError> {
    let at = At { file: PROOF_FILE, path: String::new() };
    check_header(v, &at)?;
    Ok(Proof {
        a: g1_from_json(get(v, "pi_a", &at)?, PROOF_FILE, "pi_a")?,
        b: g2_from_json(get(v, "pi_b", &at)?, PROOF_FILE, "pi_b")?,
        c: g1_from_json(get(v, "pi_c", &at)?, PROOF_FILE, "pi_c")?,
    })
}

pub fn public_from_json(v: &Value) -> Result<Vec<Fr>, ProveError> {
    public_named(v, PUBLIC_FILE)
}

/// [`public_from_json`], errors naming `file`.
fn public_named(v: &Value, file: &str) -> Result<Vec<Fr>, ProveError> {
    let at = At { file, path: String::new() };
    let a = v.as_array().ok_or_else(|| at.err("expected an array of decimal strings"))?;
    a.iter().enumerate().map(|(i, x)| field::<Fr>(x, &at.child(format!("[{i}]")))).collect()
}

/// The most a snarkjs JSON file (a key, a proof, public inputs) may hold.
const MAX_JSON_BYTES: u64 = 1 << 28;

fn read_json(path: &Path) -> Result<Value, ProveError> {
    let text = crate::bounded::read_text_at_most(path, MAX_JSON_BYTES)
        .map_err(|source| ProveError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text)
        .map_err(|e| ProveError::Malformed { what: path.display().to_string(), reason: format!("not JSON: {e}") })
}

/// Reads the three files in `dir` and verifies the proof against the
/// verifying key in `dir` itself (which proves nothing unless that key is
/// trusted: see [`verify_dir_with`]); returns the number of public inputs.
pub fn verify_dir(dir: &Path) -> Result<usize, ProveError> {
    let vk = vk_from_json(&read_json(&dir.join(VK_FILE))?)?;
    verify_dir_with(dir, &vk)
}

/// Verifies the proof in `dir` against `trusted`. A verifying key in `dir`
/// that is not `trusted` is an error: a proof "valid" under a key its
/// sender chose proves nothing.
pub fn verify_dir_with(dir: &Path, trusted: &VerifyingKey<Bn254>) -> Result<usize, ProveError> {
    let vk_path = dir.join(VK_FILE);
    if vk_path.is_file() && vk_from_json(&read_json(&vk_path)?)? != *trusted {
        return Err(ProveError::Rejected(format!(
            "{} is not the trusted verifying key; the proof was not checked against it",
            vk_path.display()
        )));
    }
    let proof = proof_from_json(&read_json(&dir.join(PROOF_FILE))?)?;
    let public = public_from_json(&read_json(&dir.join(PUBLIC_FILE))?)?;
    verify_groth16(&prepare_verifying_key(trusted), &proof, &public)?;
    Ok(public.len())
}

/// A snarkjs `public.json` file.
pub fn read_public(path: &Path) -> Result<Vec<Fr>, ProveError> {
    public_named(&read_json(path)?, &path.display().to_string())
}

/// A snarkjs `verification_key.json` file.
pub fn read_vk(path: &Path) -> Result<VerifyingKey<Bn254>, ProveError> {
    vk_named(&read_json(path)?, &path.display().to_string())
}

/// Text as snarkjs writes its JSON files: keys in its order, one-space
/// indentation (so `public.json` is byte for byte snarkjs's own).
pub mod text {
    use serde::Serialize;
    use serde_json::Value;

    use super::{g1_to_json, g2_to_json, public_to_json, vk_to_json, Bn254, Fr, Proof, VerifyingKey};

    fn render(value: &impl Serialize) -> String {
        let mut out = Vec::new();
        let mut serializer =
            serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b" "));
        value.serialize(&mut serializer).expect("JSON values serialize");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    #[derive(Serialize)]
    struct ProofFile {
        pi_a: Value,
        pi_b: Value,
        pi_c: Value,
        protocol: &'static str,
        curve: &'static str,
    }

    #[derive(Serialize)]
    struct VkFile {
        protocol: &'static str,
        curve: &'static str,
        #[serde(rename = "nPublic")]
        n_public: usize,
        vk_alpha_1: Value,
        vk_beta_2: Value,
        vk_gamma_2: Value,
        vk_delta_2: Value,
        vk_alphabeta_12: Value,
        #[serde(rename = "IC")]
        ic: Value,
    }

    pub fn proof(proof: &Proof<Bn254>) -> String {
        render(&ProofFile {
            pi_a: g1_to_json(&proof.a),
            pi_b: g2_to_json(&proof.b),
            pi_c: g1_to_json(&proof.c),
            protocol: "groth16",
            curve: "bn128",
        })
    }

    pub fn public(inputs: &[Fr]) -> String {
        render(&public_to_json(inputs))
    }

    pub fn vk(vk: &VerifyingKey<Bn254>) -> String {
        let mut json = vk_to_json(vk);
        let mut take = |key: &str| json.get_mut(key).map(Value::take).unwrap_or(Value::Null);
        render(&VkFile {
            protocol: "groth16",
            curve: "bn128",
            n_public: vk.gamma_abc_g1.len().saturating_sub(1),
            vk_alpha_1: take("vk_alpha_1"),
            vk_beta_2: take("vk_beta_2"),
            vk_gamma_2: take("vk_gamma_2"),
            vk_delta_2: take("vk_delta_2"),
            vk_alphabeta_12: take("vk_alphabeta_12"),
            ic: take("IC"),
        })
    }
}
