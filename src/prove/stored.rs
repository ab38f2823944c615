//! Checking stored batch proofs with the verifying keys alone: which key set
//! proved a batch follows from its proofs (their slot count is the key
//! set's ops per proof), loaded from the data dir on first use. Nothing is
//! set up or written, and the proving keys are never read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ark_bn254::Bn254;
use ark_groth16::{prepare_verifying_key, PreparedVerifyingKey};

use super::circuit::CIRCUIT_VERSION;
use super::keys::{self, KeyMetadata};
use super::pipeline::{decode_record, key_id, record_key_id, SYSTEM_NAME};
use super::proof_system::ProofSystem;
use super::system::verify_with;
use super::witness::OpWitness;
use super::ProveError;
use crate::store::ProofRecord;

pub struct StoredKeys {
    data_dir: PathBuf,
    loaded: Mutex<HashMap<usize, Arc<PreparedVerifyingKey<Bn254>>>>,
}

impl StoredKeys {
    pub fn new(data_dir: &Path) -> Self {
        StoredKeys { data_dir: data_dir.to_path_buf(), loaded: Mutex::default() }
    }

    /// The verifying key of the key set for `ops_per_proof`, checked to be
    /// one made for this build's circuit version and size.
    pub fn verifying_key(&self, ops_per_proof: usize) -> Result<Arc<PreparedVerifyingKey<Bn254>>, ProveError> {
        if let Some(key) = self.loaded.lock().unwrap_or_else(|e| e.into_inner()).get(&ops_per_proof) {
            return Ok(key.clone());
        }
        super::check_ops_per_proof(ops_per_proof)?;
        let dir = keys::key_dir(&self.data_dir, ops_per_proof);
        let missing = |what: &str| ProveError::Keys {
            path: dir.clone(),
            reason: format!(
                "{what}: the proofs were made with the key set for {ops_per_proof} ops per proof, which this data \
                 dir does not hold"
            ),
        };
        let meta_bytes = std::fs::read(dir.join(keys::CIRCUIT_FILE)).map_err(|_| missing("no circuit.json"))?;
        let meta: KeyMetadata = serde_json::from_slice(&meta_bytes)
            .map_err(|e| ProveError::Keys { path: dir.clone(), reason: format!("circuit.json is not valid: {e}") })?;
        if meta.circuit_version != CIRCUIT_VERSION || meta.ops_per_proof != ops_per_proof {
            return Err(ProveError::Keys {
                path: dir,
                reason: format!(
                    "made for circuit v{} with {} ops per proof, not v{CIRCUIT_VERSION} with {ops_per_proof}",
                    meta.circuit_version, meta.ops_per_proof
                ),
            });
        }
        let vk_path = dir.join(keys::VERIFYING_KEY_FILE);
        let vk_bytes = std::fs::read(&vk_path).map_err(|_| missing("no verifying key"))?;
        if let Some(recorded) = &meta.verifying_key_blake3 {
            if blake3::hash(&vk_bytes).to_hex().as_str() != recorded {
                return Err(ProveError::Keys {
                    path: dir,
                    reason: format!(
                        "{} is not the verifying key made at setup (its BLAKE3 differs)",
                        keys::VERIFYING_KEY_FILE
                    ),
                });
            }
        }
        let key = Arc::new(prepare_verifying_key(&keys::load_verifying_key(&vk_path)?));
        self.loaded.lock().unwrap_or_else(|e| e.into_inner()).insert(ops_per_proof, key.clone());
        Ok(key)
    }

    /// Check every proof of a batch-log record; returns how many there are.
    /// A record that names its key set must name the one found here.
    pub fn verify_record(&self, record: &ProofRecord) -> Result<usize, ProveError> {
        let proofs = decode_record(record)?;
        for (i, proof) in proofs.iter().enumerate() {
            let key = self.verifying_key(proof.slots())?;
            if let Some(made_with) = record_key_id(record) {
                let here = key_id(&key.vk);
                if here != made_with {
                    return Err(ProveError::Keys {
                        path: keys::key_dir(&self.data_dir, proof.slots()),
                        reason: format!(
                            "the proofs were made with key set {}, but the data dir's key set for {} ops per proof is \
                             {} (was it replaced by `cvm setup --force`?)",
                            crate::content_id::hex_encode(&made_with),
                            proof.slots(),
                            crate::content_id::hex_encode(&here)
                        ),
                    });
                }
            }
            verify_with(&key, proof)
                .map_err(|e| ProveError::Rejected(format!("proof {i} of {}: {e}", proofs.len())))?;
        }
        Ok(proofs.len())
    }
}

impl ProofSystem for StoredKeys {
    fn name(&self) -> String {
        SYSTEM_NAME.into()
    }

    fn prove(&self, _witnesses: &[OpWitness]) -> Result<ProofRecord, ProveError> {
        Err(ProveError::CannotProve(
            "only verifying keys are loaded: this proof system checks stored proofs and proves nothing".into(),
        ))
    }

    fn verify(&self, record: &ProofRecord) -> Result<(), ProveError> {
        self.verify_record(record).map(|_| ())
    }
}
