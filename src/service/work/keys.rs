//! Proving key sets kept resident between jobs (their G1 bases on the GPU
//! when there is one): loaded on first use or by Preload, dropped by Evict.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::WorkError;
use crate::prove::{check_ops_per_proof, ProvingSystem};
use crate::Backend;

pub struct KeySets {
    data_dir: PathBuf,
    backend: Backend,
    resident: Mutex<BTreeMap<usize, Arc<ProvingSystem>>>,
    /// One load at a time: two jobs needing a new set load it once.
    loading: Mutex<()>,
}

impl KeySets {
    pub fn new(data_dir: PathBuf, backend: Backend) -> KeySets {
        KeySets { data_dir, backend, resident: Mutex::new(BTreeMap::new()), loading: Mutex::new(()) }
    }

    fn lookup(&self, ops_per_proof: usize) -> Option<Arc<ProvingSystem>> {
        self.resident.lock().unwrap_or_else(|p| p.into_inner()).get(&ops_per_proof).cloned()
    }

    /// The key set for `ops_per_proof`, loaded (or set up, the first time on
    /// this data dir) if it is not resident.
    pub fn get(&self, ops_per_proof: usize) -> Result<Arc<ProvingSystem>, WorkError> {
        check_ops_per_proof(ops_per_proof)
            .map_err(|e| WorkError::Bad(super::BadPayload::new("ops_per_proof", e.to_string())))?;
        if let Some(set) = self.lookup(ops_per_proof) {
            return Ok(set);
        }
        let _loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = self.lookup(ops_per_proof) {
            return Ok(set);
        }
        let system = ProvingSystem::load_or_setup(&self.data_dir, ops_per_proof, self.backend, |notice| {
            tracing::info!("{notice}");
        })
        .map_err(|e| WorkError::Internal(format!("loading the proving keys ({ops_per_proof} ops per proof): {e}")))?;
        let system = Arc::new(system);
        self.resident.lock().unwrap_or_else(|p| p.into_inner()).insert(ops_per_proof, system.clone());
        Ok(system)
    }

    /// Drop a resident set; true if it was resident.
    pub fn evict(&self, ops_per_proof: usize) -> bool {
        self.resident.lock().unwrap_or_else(|p| p.into_inner()).remove(&ops_per_proof).is_some()
    }

    /// The resident sets' sizes (ops per proof).
    pub fn resident(&self) -> Vec<usize> {
        self.resident.lock().unwrap_or_else(|p| p.into_inner()).keys().copied().collect()
    }
}
