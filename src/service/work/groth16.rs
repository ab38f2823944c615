//! `Groth16` jobs: a circom circuit's witness proven with a snarkjs key, and
//! the keys `UploadZkey` keeps.
//!
//! A key is kept under its content id (`zkey:` and the BLAKE3 of the file)
//! in `<data dir>/zkeys/` (so queued jobs naming it survive a restart),
//! every point checked once per file, and resident between jobs: decoded,
//! its G1 bases on the MSM engine (the GPU when there is one). A key named
//! by a path on the server's machine is read at submit and kept the same
//! way; the job is recorded with its id.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::resident::{self, Resident as Kept};
use super::{BadPayload, Engines, Progress, WorkError};
use crate::content_id::{hex_decode_32, hex_encode};
use crate::prove::circom::{self, CircomError, CircomKey, R1cs, Witness};
use crate::prove::snarkjs::text;
use crate::prove::ProveStages;
use crate::service::proto::groth16_job::Key;
use crate::service::proto::{Groth16Job, Groth16Result};
use crate::ResolvedBackend;

/// A zkey's content id: `zkey:` and the BLAKE3 of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ZkeyId(pub [u8; 32]);

impl ZkeyId {
    const PREFIX: &'static str = "zkey:";

    pub fn parse(text: &str) -> Option<ZkeyId> {
        text.strip_prefix(Self::PREFIX).and_then(|hex| hex_decode_32(hex).ok()).map(ZkeyId)
    }

    /// The scheduler's key-set tag (jobs of one key run back to back); the
    /// top bit keeps it apart from compliance key sets' ops per proof.
    pub fn key_set(&self) -> u32 {
        u32::from_le_bytes(self.0[..4].try_into().expect("4 bytes")) | 1 << 31
    }
}

impl std::fmt::Display for ZkeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", Self::PREFIX, hex_encode(&self.0))
    }
}

/// What an upload came to.
pub struct Uploaded {
    pub id: ZkeyId,
    pub key: Arc<CircomKey>,
}

/// Whether an R1CS that is not the key's circuit is refused or left out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum R1csFit {
    Required,
    IfItFits,
}

/// The kept keys: on disk, and resident once used, within
/// [`resident::ZKEY_BYTES`] (the least recently used leaving first, loaded
/// again when a job names them).
pub struct Zkeys {
    dir: PathBuf,
    resident: Kept<ZkeyId, CircomKey>,
}

/// A prepared key's memory against its files' size: points decoded, some
/// with endomorphism images, coefficients, NTT roots, constraints.
const RESIDENT_PER_FILE_BYTE: usize = 3;

/// The largest key file (or R1CS beside it) a `zkey_path` may name: far
/// above a 2^24-constraint circuit's key, below what would exhaust memory
/// on reading it.
pub const MAX_KEY_FILE_BYTES: u64 = 16 << 30;

/// A key file named by path: a regular file (a device such as /dev/zero
/// never ends, a FIFO blocks its reader), read whole, within
/// [`MAX_KEY_FILE_BYTES`].
fn read_key_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file (a device, FIFO or directory is never read as a key)".into());
    }
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(format!("{} bytes, more than the {MAX_KEY_FILE_BYTES} a key file may hold", meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(format!("it grew past the {MAX_KEY_FILE_BYTES} bytes a key file may hold while it was read"));
    }
    Ok(bytes)
}

impl Zkeys {
    pub fn new(dir: PathBuf) -> Zkeys {
        Zkeys { dir, resident: Kept::new(resident::ZKEY_BYTES) }
    }

    /// Make a prepared key resident, counted by its files' size.
    fn hold(&self, id: ZkeyId, key: CircomKey, files: usize) -> Arc<CircomKey> {
        let key = Arc::new(key);
        self.resident.insert(id, Arc::clone(&key), RESIDENT_PER_FILE_BYTE * files);
        key
    }

    fn file(&self, id: &ZkeyId, extension: &str) -> PathBuf {
        self.dir.join(format!("{}.{extension}", hex_encode(&id.0)))
    }

    /// Check a key (and the circuit's R1CS, when given: it must be the
    /// key's), keep both, and make the key resident.
    pub fn upload(&self, zkey: &[u8], r1cs: &[u8], engines: &Engines) -> Result<Uploaded, WorkError> {
        self.keep(zkey, r1cs, R1csFit::Required, engines)
    }

    /// A key file on the server's machine, kept as an upload (with the
    /// R1CS beside it when that is the key's circuit); returns its id.
    pub fn adopt(&self, path: &Path, engines: &Engines) -> Result<ZkeyId, WorkError> {
        let bad = |e: String| BadPayload::new("groth16.zkey_path", format!("{}: {e}", path.display()));
        let zkey = read_key_file(path).map_err(bad)?;
        let r1cs = circom::r1cs_beside(path).and_then(|p| read_key_file(&p).ok()).unwrap_or_default();
        // The key's faults are the path's: the caller named no `zkey` field.
        self.keep(&zkey, &r1cs, R1csFit::IfItFits, engines).map(|u| u.id).map_err(|e| match e {
            WorkError::Bad(b) if b.field == "zkey" => WorkError::Bad(bad(b.reason)),
            other => other,
        })
    }

    fn keep(&self, zkey: &[u8], r1cs: &[u8], fit: R1csFit, engines: &Engines) -> Result<Uploaded, WorkError> {
        let id = ZkeyId(*blake3::hash(zkey).as_bytes());
        // A resident key is enough unless this upload brings an R1CS other
        // than the one kept with it: that one is checked (and refused if it
        // is not the key's circuit) like a first upload's.
        let kept_r1cs =
            |key: &CircomKey| key.has_r1cs() && std::fs::read(self.file(&id, "r1cs")).is_ok_and(|k| k == r1cs);
        if let Some(key) = self.lookup(&id).filter(|key| r1cs.is_empty() || kept_r1cs(key)) {
            return Ok(Uploaded { id, key });
        }
        let key = self.prepare(&id, zkey, r1cs, fit, engines)?;
        std::fs::create_dir_all(&self.dir)
            .and_then(|()| crate::fsutil::write_atomically(&self.file(&id, "zkey"), zkey, 0o600))
            .and_then(|()| match key.has_r1cs() {
                true => crate::fsutil::write_atomically(&self.file(&id, "r1cs"), r1cs, 0o600),
                false => Ok(()),
            })
            .map_err(|e| WorkError::Internal(format!("keeping {id} in {}: {e}", self.dir.display())))?;
        let key = self.hold(id, key, zkey.len() + r1cs.len());
        Ok(Uploaded { id, key })
    }

    fn prepare(
        &self,
        id: &ZkeyId,
        zkey: &[u8],
        r1cs: &[u8],
        fit: R1csFit,
        engines: &Engines,
    ) -> Result<CircomKey, WorkError> {
        let name = id.to_string();
        let zkey = circom::load_zkey_bytes(&name, zkey, id.0, Some(&self.dir)).map_err(|e| bad("zkey", e))?;
        let circuit = match r1cs.is_empty() {
            true => None,
            false => match R1cs::parse_for_key(&format!("{name}.r1cs"), r1cs, &zkey) {
                Ok(circuit) => Some(circuit),
                Err(_) if fit == R1csFit::IfItFits => None,
                Err(e) => return Err(bad("r1cs", e)),
            },
        };
        CircomKey::prepare(&engines.msm, zkey, circuit).map_err(|e| WorkError::Internal(e.to_string()))
    }

    fn lookup(&self, id: &ZkeyId) -> Option<Arc<CircomKey>> {
        self.resident.get(id)
    }

    /// Whether the key is resident or kept on disk.
    pub fn knows(&self, id: &ZkeyId) -> bool {
        self.lookup(id).is_some() || self.file(id, "zkey").is_file()
    }

    /// The resident key, loaded from disk again after a restart or an evict.
    pub fn get(&self, id: &ZkeyId, engines: &Engines) -> Result<Arc<CircomKey>, WorkError> {
        self.resident.get_or_load(*id, || {
            let read = |extension: &str| std::fs::read(self.file(id, extension));
            let zkey = read("zkey").map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    WorkError::Precondition(format!("{id} is not on this server; upload it (UploadZkey)"))
                }
                _ => WorkError::Internal(format!("{id}: reading its kept file: {e}")),
            })?;
            if ZkeyId(*blake3::hash(&zkey).as_bytes()) != *id {
                return Err(WorkError::Internal(format!("the kept file of {id} is damaged (its digest differs)")));
            }
            let r1cs = read("r1cs").unwrap_or_default();
            let key = self.prepare(id, &zkey, &r1cs, R1csFit::Required, engines)?;
            Ok((key, RESIDENT_PER_FILE_BYTE * (zkey.len() + r1cs.len())))
        })
    }

    /// Drop a key from memory (and the GPU, once no running job holds it);
    /// it stays on disk. False when it was not resident.
    pub fn evict(&self, id: &ZkeyId) -> bool {
        self.resident.remove(id)
    }

    pub fn resident(&self) -> Vec<ZkeyId> {
        self.resident.keys()
    }
}

fn bad(field: &str, e: CircomError) -> WorkError {
    WorkError::Bad(BadPayload::new(field, e.to_string()))
}

/// A checked Groth16 job.
pub(super) struct Work {
    id: ZkeyId,
    witness: Witness,
}

/// Check a job: its key is known here, its witness decodes (and fits the
/// key, when the key is resident). A path must have been adopted already.
pub(super) fn parse(job: &Groth16Job, zkeys: &Zkeys) -> Result<Work, BadPayload> {
    let id = match &job.key {
        Some(Key::ZkeyId(text)) => ZkeyId::parse(text)
            .ok_or_else(|| BadPayload::new("groth16.zkey_id", format!("{text:?}: expected zkey:<64 hex digits>")))?,
        Some(Key::ZkeyPath(_)) => {
            return Err(BadPayload::new("groth16.zkey_path", "a path is read when the job is submitted"))
        }
        None => return Err(BadPayload::new("groth16", "no key: give zkey_id (from UploadZkey) or zkey_path")),
    };
    if !zkeys.knows(&id) {
        return Err(BadPayload::new("groth16.zkey_id", format!("{id} is not on this server; upload it (UploadZkey)")));
    }
    let witness =
        Witness::parse("the witness", &job.witness).map_err(|e| BadPayload::new("groth16.witness", e.to_string()))?;
    if let Some(key) = zkeys.lookup(&id) {
        if witness.values.len() != key.n_vars {
            let e = CircomError::WitnessLength { expected: key.n_vars, got: witness.values.len() };
            return Err(BadPayload::new("groth16.witness", e.to_string()));
        }
    }
    Ok(Work { id, witness })
}

/// Which backend ran each stage, by the stage's name.
pub(super) type StageBackends = Vec<(&'static str, ResolvedBackend)>;

/// Prove; `Ok(None)` when cancelled at a stage boundary. Returns the
/// result and where its quotient and its MSMs (G1 and G2) ran.
pub(super) fn run(
    work: Work,
    engines: &Engines,
    progress: &dyn Progress,
) -> Result<Option<(Groth16Result, StageBackends)>, WorkError> {
    if !progress.stage("load key") {
        return Ok(None);
    }
    let key = engines.zkeys.get(&work.id, engines)?;
    if !progress.stage("prove") {
        return Ok(None);
    }
    let backend = engines.msm.backend();
    let _device = engines.device_stage(backend);
    let mut stages = ProveStages::default();
    let (proof, public) = key.prove(&engines.msm, &work.witness, &mut stages).map_err(|e| match e {
        CircomError::Prove(e) => WorkError::Internal(e.to_string()),
        CircomError::Ntt(e) => WorkError::Internal(e.to_string()),
        // The job is recorded with its key's id, whichever way it was named.
        e @ CircomError::KeyInconsistent => WorkError::Bad(BadPayload::new("groth16.zkey_id", e.to_string())),
        other => WorkError::Bad(BadPayload::new("groth16.witness", other.to_string())),
    })?;
    let quotient = stages.quotient_backend().unwrap_or(ResolvedBackend::Cpu);
    let result = Groth16Result { proof_json: text::proof(&proof), public_json: text::public(&public) };
    let g1 = stages.msm_g1_backend().unwrap_or(ResolvedBackend::Cpu);
    let g2 = stages.msm_g2_backend().unwrap_or(ResolvedBackend::Cpu);
    Ok(Some((result, vec![("quotient", quotient), ("msm_g1", g1), ("msm_g2", g2)])))
}
