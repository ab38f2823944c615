//! Large inputs stored once in the cluster's database (`cvm_blobs`) and
//! cached by each machine: uploaded base sets and zkeys under their content
//! ids, published by the server that took the upload and fetched by any
//! machine that meets a job naming one it lacks; and the cluster's one
//! compliance key set per proof size, so every worker's proofs verify
//! under the same verifying key. The first machine to need a key set
//! publishes its own (setting one up if it has none); the others install
//! that one in place of theirs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{ClusterError, Queue};
use crate::prove::keys;
use crate::service::proto::job_payload::Kind as PayloadKind;
use crate::service::proto::{groth16_job, msm_job, Group, JobPayload};
use crate::service::work::groth16::ZkeyId;
use crate::service::work::{batch, msm, BaseSetId, Engines, WorkError};

/// What a machine has already checked against the cluster's blobs.
pub struct Cache {
    data_dir: PathBuf,
    /// Key sets (ops per proof) known to be the cluster's here.
    key_sets: Mutex<HashSet<usize>>,
    /// One key-set check at a time (two runners needing one do it once).
    syncing: tokio::sync::Mutex<()>,
}

impl Cache {
    pub fn new(data_dir: &Path) -> Cache {
        Cache {
            data_dir: data_dir.to_path_buf(),
            key_sets: Mutex::new(HashSet::new()),
            syncing: tokio::sync::Mutex::new(()),
        }
    }

    /// Make sure this machine holds what `payload` names: a base set or
    /// zkey uploaded elsewhere, or the cluster's key set for its proofs.
    pub async fn prepare(&self, queue: &Queue, engines: &Arc<Engines>, payload: &JobPayload) -> Result<(), WorkError> {
        fetch_uploads(queue, engines, payload).await?;
        match &payload.kind {
            Some(PayloadKind::ProveOps(job)) => {
                self.key_set(queue, engines, batch::ops_per_proof(job.ops_per_proof)).await?;
            }
            // The committer checks its batches' proofs with the cluster's keys.
            Some(PayloadKind::ExecuteBatch(job)) if !job.no_prove => {
                self.key_set(queue, engines, batch::ops_per_proof(job.ops_per_proof)).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Offer the key sets this machine's data dir holds to the cluster
    /// (a server's, at its start): each becomes the cluster's set for its
    /// size where the cluster has none yet, so a store that joins a cluster
    /// keeps proving with the keys its batches were proven with.
    pub async fn offer_local_sets(&self, queue: &Queue, engines: &Arc<Engines>) -> Result<(), WorkError> {
        let held = crate::prove::SUPPORTED_OPS_PER_PROOF
            .into_iter()
            .filter(|&k| keys::key_dir(&self.data_dir, k).join(keys::CIRCUIT_FILE).is_file());
        for ops in held.collect::<Vec<_>>() {
            self.sync_key_set(queue, engines, ops, true).await?;
        }
        Ok(())
    }

    /// Make this machine's key set for `ops` ops per proof the cluster's.
    pub async fn key_set(&self, queue: &Queue, engines: &Arc<Engines>, ops: usize) -> Result<(), WorkError> {
        self.sync_key_set(queue, engines, ops, false).await
    }

    /// [`Cache::key_set`]; `held_before` when the local set is one the data
    /// dir had before it joined (its store's batches may have been proven
    /// with it): such a set is never replaced. One made since (offered,
    /// and another machine's offer came first) is.
    async fn sync_key_set(
        &self,
        queue: &Queue,
        engines: &Arc<Engines>,
        ops: usize,
        held_before: bool,
    ) -> Result<(), WorkError> {
        if self.key_sets.lock().unwrap_or_else(|p| p.into_inner()).contains(&ops) {
            return Ok(());
        }
        let _one = self.syncing.lock().await;
        if self.key_sets.lock().unwrap_or_else(|p| p.into_inner()).contains(&ops) {
            return Ok(());
        }
        let dir = keys::key_dir(&self.data_dir, ops);
        let name = key_set_blob(&dir);
        let published = match queue.get_blob(&name).await.map_err(internal)? {
            Some(published) => published,
            None => {
                // None yet: this machine's (set up now if it has none) is offered.
                let local = {
                    let (engines, dir) = (engines.clone(), dir.clone());
                    blocking(move || {
                        engines.keys.get(ops)?;
                        keys::read_set(&dir).map_err(|e| WorkError::Internal(e.to_string()))
                    })
                    .await?
                };
                let offered = encode(&local);
                match queue.put_blob(&name, &offered).await.map_err(internal)? {
                    true => offered,
                    // Another machine's came first: that one is the cluster's.
                    false => queue.get_blob(&name).await.map_err(internal)?.unwrap_or(offered),
                }
            }
        };
        let files = decode(&published)
            .ok_or_else(|| WorkError::Internal(format!("the cluster's blob {name} is damaged: it does not decode")))?;
        let (engines, dir2) = (engines.clone(), dir.clone());
        let owns_store = held_before && crate::store::RegisterStore::file_in(&self.data_dir).exists();
        blocking(move || {
            let circuit = |files: &[(String, Vec<u8>)]| {
                files.iter().find(|(n, _)| n == keys::CIRCUIT_FILE).map(|(_, bytes)| bytes.clone())
            };
            let local = keys::read_set(&dir2).ok();
            if local.as_deref().and_then(circuit) != circuit(&files) {
                // A store's batches were proven with its own key set: replacing
                // it would leave them unverifiable (a worker's cache holds none).
                if local.is_some() && owns_store {
                    return Err(WorkError::Precondition(format!(
                        "{} holds this machine's own key set for {ops} ops per proof, which it had before it \
                         joined (its register store's batches may have been proven with it), and the cluster uses \
                         another (published by another machine first): installing the cluster's could leave \
                         those batches unverifiable. Give \
                         the cluster one key set: start this server first, so that the cluster takes its set, or \
                         copy its key set into the other machines' data dirs",
                        dir2.display()
                    )));
                }
                tracing::info!("installing the cluster's proving keys for {ops} ops per proof in {}", dir2.display());
                keys::install_set(&dir2, &files).map_err(|e| WorkError::Internal(e.to_string()))?;
                engines.keys.evict(ops);
            }
            Ok(())
        })
        .await?;
        self.key_sets.lock().unwrap_or_else(|p| p.into_inner()).insert(ops);
        Ok(())
    }
}

/// Fetch a base set or zkey a payload names, uploaded to another server
/// of the cluster, unless this machine has it.
pub async fn fetch_uploads(queue: &Queue, engines: &Arc<Engines>, payload: &JobPayload) -> Result<(), WorkError> {
    match &payload.kind {
        Some(PayloadKind::Msm(job)) => {
            if let Some(msm_job::Bases::BaseSetId(text)) = &job.bases {
                if let Some(id) = BaseSetId::parse(text) {
                    fetch_bases(queue, engines, id).await?;
                }
            }
        }
        Some(PayloadKind::Groth16(job)) => {
            if let Some(groth16_job::Key::ZkeyId(text)) = &job.key {
                if let Some(id) = ZkeyId::parse(text) {
                    fetch_zkey(queue, engines, id).await?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Publish an uploaded base set (its kept file: the group, then the points).
pub async fn publish_bases(
    queue: &Queue,
    id: &BaseSetId,
    group: Group,
    points: &[Vec<u8>],
) -> Result<(), ClusterError> {
    queue.put_blob(&id.to_string(), &msm::encode_set(group, points)).await.map(|_| ())
}

/// Publish an uploaded zkey (and its R1CS, when the upload had one).
pub async fn publish_zkey(queue: &Queue, id: &ZkeyId, zkey: &[u8], r1cs: &[u8]) -> Result<(), ClusterError> {
    queue.put_blob(&id.to_string(), zkey).await?;
    if !r1cs.is_empty() {
        queue.put_blob(&format!("{id}.r1cs"), r1cs).await?;
    }
    Ok(())
}

/// Remove a base set from the cluster and from this machine; whether
/// either held it. Other machines' copies go when a job next names it.
pub async fn remove_bases(queue: &Queue, engines: &Arc<Engines>, id: &BaseSetId) -> Result<bool, WorkError> {
    let removed = queue.delete_blob(&id.to_string()).await.map_err(internal)?;
    Ok(engines.bases.remove(id)? || removed)
}

/// Make sure this machine has the base set the cluster holds under `id`.
/// The cluster's copy decides: a set removed (by `RemoveBases` on any
/// server) is gone here too, whatever this machine kept.
async fn fetch_bases(queue: &Queue, engines: &Arc<Engines>, id: BaseSetId) -> Result<(), WorkError> {
    let gone = || WorkError::Precondition(format!("base set {id} is not in this cluster (removed, or never uploaded)"));
    if engines.bases.knows(&id) {
        if queue.has_blob(&id.to_string()).await.map_err(internal)? {
            return Ok(());
        }
        engines.bases.remove(&id)?;
        return Err(gone());
    }
    let Some(file) = queue.get_blob(&id.to_string()).await.map_err(internal)? else {
        return Err(gone());
    };
    let engines = engines.clone();
    blocking(move || {
        let damaged = || WorkError::Internal(format!("the cluster's copy of {id} is damaged"));
        let (group, points) = msm::decode_set(&file).ok_or_else(damaged)?;
        let (kept, _) = engines.bases.upload(group, &points, &engines)?;
        if kept != id {
            return Err(damaged());
        }
        Ok(())
    })
    .await
}

async fn fetch_zkey(queue: &Queue, engines: &Arc<Engines>, id: ZkeyId) -> Result<(), WorkError> {
    if engines.zkeys.knows(&id) {
        return Ok(());
    }
    let Some(zkey) = queue.get_blob(&id.to_string()).await.map_err(internal)? else {
        return Err(WorkError::Precondition(format!("{id} was never uploaded to this cluster")));
    };
    let r1cs = queue.get_blob(&format!("{id}.r1cs")).await.map_err(internal)?.unwrap_or_default();
    let engines = engines.clone();
    blocking(move || {
        let kept = engines.zkeys.upload(&zkey, &r1cs, &engines)?;
        if kept.id != id {
            return Err(WorkError::Internal(format!("the cluster's copy of {id} is damaged")));
        }
        Ok(())
    })
    .await
}

/// The blob name of the key set kept in `dir` (its directory's name:
/// circuit version and size).
fn key_set_blob(dir: &Path) -> String {
    format!("keys/{}", dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
}

/// Files in one blob: a count, then each name and its bytes, lengths
/// little-endian.
fn encode(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = (files.len() as u32).to_le_bytes().to_vec();
    for (name, bytes) in files {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

fn decode(mut bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = bytes.split_at_checked(n)?;
        *bytes = rest;
        Some(head)
    }
    let count = u32::from_le_bytes(take(&mut bytes, 4)?.try_into().ok()?);
    let mut files = Vec::new();
    for _ in 0..count.min(16) {
        let len = u32::from_le_bytes(take(&mut bytes, 4)?.try_into().ok()?) as usize;
        let name = String::from_utf8(take(&mut bytes, len)?.to_vec()).ok()?;
        let len = usize::try_from(u64::from_le_bytes(take(&mut bytes, 8)?.try_into().ok()?)).ok()?;
        files.push((name, take(&mut bytes, len)?.to_vec()));
    }
    (files.len() == count as usize && bytes.is_empty()).then_some(files)
}

/// A database that is away is `Unavailable` (the job waits for it), any
/// other error (one refusing the statement too) `Internal`.
fn internal(e: ClusterError) -> WorkError {
    match e.is_unavailable() {
        true => WorkError::Unavailable(e.to_string()),
        false => WorkError::Internal(e.to_string()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WorkError> + Send + 'static,
) -> Result<T, WorkError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(WorkError::Internal(format!("a task failed: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_set_blobs_round_trip_and_refuse_damage() {
        let files = vec![("a".to_string(), vec![1, 2, 3]), ("circuit.json".to_string(), b"{}".to_vec())];
        let bytes = encode(&files);
        assert_eq!(decode(&bytes), Some(files));
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None, "truncated");
        assert_eq!(decode(&[bytes.as_slice(), &[0]].concat()), None, "trailing bytes");
        assert_eq!(decode(&[]), None);
    }

    #[test]
    fn key_set_blobs_are_named_by_version_and_size() {
        let dir = keys::key_dir(Path::new("/data"), 4);
        assert!(key_set_blob(&dir).starts_with("keys/compliance-v") && key_set_blob(&dir).ends_with("-k4"));
    }
}
