//! A batch's proofs made by the cluster's workers: each proof's operations
//! go out as a `ProveOps` sub-job (named by the batch's request id, the
//! proof's place and its operations' digest, so a batch run again after a
//! crash finds the proofs already made), the committer waits for all of
//! them, and the record it returns is checked against the cluster's key
//! set before anything commits.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;

use super::outage::outlasting;
use super::{ClusterError, NewJob, Queue, Renewal};
use crate::prove::ops_document::OpsDocument;
use crate::prove::pipeline::{encode_record, key_id};
use crate::prove::snarkjs::{proof_from_json, public_from_json};
use crate::prove::system::BatchProof;
use crate::prove::{OpWitness, ProofSystem, ProveError, ProveStages, ProvingSystem};
use crate::resource::Operation;
use crate::service::proto::job_payload::Kind as PayloadKind;
use crate::service::proto::{job_result, JobKind, JobPayload, JobState, ProveOpsJob};
use crate::service::work::{KeySet, Progress, Stop};
use crate::store::ProofRecord;

pub struct ClusterProver {
    /// The cluster's key set, resident here: checks the proofs, and proves
    /// a batch with no operations (its one proof of empty slots).
    pub system: Arc<ProvingSystem>,
    pub queue: Queue,
    pub runtime: tokio::runtime::Handle,
    /// The batch job's request id (its proofs' sub-jobs are named after it).
    pub request_id: String,
    /// The batch's domain, recorded on its proofs' sub-jobs (a token limited
    /// to other domains neither sees nor cancels them).
    pub domain: String,
    pub max_attempts: u32,
    /// The batch job's: the wait for its proofs ends when it is cancelled
    /// or loses its lease.
    pub progress: Arc<dyn Progress + Send + Sync>,
    /// The batch job's lease, renewed once more just before the commit.
    pub lease: Lease,
}

/// Which attempt of which job holds a lease, and for how long a renewal takes it.
pub struct Lease {
    pub job: u64,
    pub worker: String,
    pub attempt: u32,
    pub length: Duration,
}

/// How long the committer waits between looks at its sub-jobs (their
/// notifications wake it sooner).
const LOOK: Duration = Duration::from_secs(1);

/// The longest pause between tries while the database is away.
const MOST_PAUSE: Duration = Duration::from_secs(10);

/// A worker's proof (job `id`) must be of proof `i`'s operations, `chunk`:
/// it is checked against the key when the batch commits, and here against
/// the public inputs the chunk gives.
fn check_chunk_proof(id: u64, i: usize, proof: &BatchProof, chunk: &[OpWitness], k: usize) -> Result<(), ProveError> {
    let expected = crate::prove::witness::chunk_public_inputs(chunk, i * k, k)?;
    if proof.ops != chunk.len() || proof.public_inputs != expected {
        return Err(ProveError::Rejected(format!(
            "proof job {id} proves other operations than proof {i} of the batch ({} operations and their public \
             inputs asked for, {} given)",
            chunk.len(),
            proof.ops
        )));
    }
    Ok(())
}

impl ClusterProver {
    async fn prove_remotely(&self, witnesses: &[OpWitness]) -> Result<Vec<BatchProof>, ProveError> {
        let k = self.system.ops_per_proof();
        if !self.progress.stage("prove") {
            self.stop_if_asked(&[]).await?;
            return Err(cancelled());
        }
        let mut waiter = self.queue.notices().subscribe();
        let mut ids = Vec::new();
        let chunks: Vec<&[OpWitness]> = witnesses.chunks(k).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let document = serde_json::to_vec(&OpsDocument::of(chunk))
                .map_err(|e| ProveError::Synthesis(format!("writing proof {i}'s operations: {e}")))?;
            let payload = JobPayload {
                kind: Some(PayloadKind::ProveOps(ProveOpsJob { witnesses_json: document, ops_per_proof: k as u32 })),
            }
            .encode_to_vec();
            let digest = blake3::hash(&payload).to_hex();
            let request_id = format!("{}#proof-{i}-of-{}-{}", self.request_id, chunks.len(), &digest[..16]);
            let job = NewJob {
                request_id: &request_id,
                kind: JobKind::ProveOps,
                // A batch waits on these: they go before independent proof jobs.
                priority: 1,
                deadline_unix_ms: 0,
                max_attempts: self.max_attempts,
                key_set: &KeySet::Ops(k).name(),
                domain: &self.domain,
                payload: &payload,
            };
            // Idempotent on its request id: a retry names the same job.
            let submitted = self.retrying(&format!("submitting proof {i}"), &ids, || self.queue.submit(&job)).await?;
            ids.push(submitted.id());
        }
        let mut proofs = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            let job = loop {
                let job = self.retrying(&format!("reading proof job {id}"), &ids, || self.queue.get(id)).await?;
                match job {
                    Some(job) if matches!(job.state(), JobState::Queued | JobState::Running) => {}
                    Some(job) => break job,
                    None => return Err(ProveError::Synthesis(format!("proof job {id} is gone from the queue"))),
                }
                // The next read looks at the batch job's stop first.
                waiter.next(LOOK).await;
            };
            if job.state() != JobState::Succeeded {
                let error = job.error.map(|e| format!("{}: {}", e.code, e.message)).unwrap_or_default();
                return Err(ProveError::Synthesis(format!("proof {i} (job {id}) did not succeed: {error}")));
            }
            let Some(job_result::Kind::ProveOps(result)) = job.result.and_then(|r| r.kind) else {
                return Err(ProveError::Synthesis(format!("proof job {id} returned no proofs")));
            };
            let proof = parse_proof(id, &result.proofs_json)?;
            check_chunk_proof(id, i, &proof, chunks[i], k)?;
            proofs.push(proof);
        }
        if !self.progress.stage("commit") {
            self.stop_if_asked(&ids).await?;
            return Err(cancelled());
        }
        // The keeper renews the lease in the background and may not know yet
        // that a database outage cost it: a renewal now makes sure this
        // attempt still owns the job before it commits (a reaped job's next
        // attempt would otherwise commit it too).
        let Lease { job, worker, attempt, length } = &self.lease;
        let renew = || self.queue.renew(*job, worker, *attempt, *length, Some("commit"));
        if self.retrying("renewing the batch job's lease before its commit", &ids, renew).await? == Renewal::Lost {
            return Err(ProveError::Synthesis(
                "the batch job's lease was lost while its proofs were made: another attempt owns it now".into(),
            ));
        }
        Ok(proofs)
    }

    /// `call` until it answers, unless the batch job must stop first: a
    /// database that is away is waited for, not taken for a failed proof
    /// (an outage longer than the lease ends the wait through the lost
    /// lease); other errors end the batch.
    async fn retrying<T, F: std::future::Future<Output = Result<T, ClusterError>>>(
        &self,
        doing: &str,
        ids: &[u64],
        call: impl Fn() -> F,
    ) -> Result<T, ProveError> {
        self.stop_if_asked(ids).await?;
        let away = |e: &ClusterError| matches!(e, ClusterError::Db { .. }) && self.progress.stopping().is_none();
        match outlasting(doing, MOST_PAUSE, call, away).await {
            Ok(value) => Ok(value),
            Err(e) => {
                self.stop_if_asked(ids).await?;
                Err(ProveError::Synthesis(format!("{doing}: {e}")))
            }
        }
    }

    /// End the wait when the batch job must stop. Cancelled, it cancels
    /// its proof jobs (those running stop at their next stage); its lease
    /// lost, it leaves them to the attempt that owns the job now, which
    /// names the same jobs.
    async fn stop_if_asked(&self, ids: &[u64]) -> Result<(), ProveError> {
        match self.progress.stopping() {
            None => Ok(()),
            Some(Stop::LeaseLost) => Err(ProveError::Synthesis("the batch job's lease was lost".into())),
            Some(Stop::Cancelled) => {
                for &id in ids {
                    if let Err(e) = self.queue.cancel(id).await {
                        tracing::warn!("cancelling proof job {id}: {e}");
                    }
                }
                Err(cancelled())
            }
        }
    }
}

fn cancelled() -> ProveError {
    ProveError::Synthesis("the batch job was cancelled while its proofs were made".into())
}

/// The one proof of a sub-job's proofs document.
fn parse_proof(id: u64, json: &str) -> Result<BatchProof, ProveError> {
    let bad = |reason: String| ProveError::Rejected(format!("proof job {id}'s document: {reason}"));
    let document: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let [entry] = document["proofs"].as_array().map(Vec::as_slice).unwrap_or_default() else {
        return Err(bad("expected exactly one proof".into()));
    };
    Ok(BatchProof {
        proof: proof_from_json(&entry["proof"]).map_err(|e| bad(e.to_string()))?,
        public_inputs: public_from_json(&entry["public"]).map_err(|e| bad(e.to_string()))?,
        ops: entry["ops"].as_u64().ok_or_else(|| bad("no ops count".into()))? as usize,
    })
}

impl ProofSystem for ClusterProver {
    fn name(&self) -> String {
        self.system.name()
    }

    fn prove(&self, witnesses: &[OpWitness]) -> Result<ProofRecord, ProveError> {
        if witnesses.is_empty() {
            return ProofSystem::prove(&*self.system, witnesses);
        }
        let proofs = self.runtime.block_on(self.prove_remotely(witnesses))?;
        Ok(encode_record(&proofs, &key_id(self.system.verifying_key())))
    }

    fn prove_timed(&self, witnesses: &[OpWitness]) -> Result<(ProofRecord, Option<ProveStages>), ProveError> {
        let record = self.prove(witnesses)?;
        let proofs = witnesses.len().div_ceil(self.system.ops_per_proof()).max(1) as u64;
        Ok((record, Some(ProveStages { proofs, ..ProveStages::default() })))
    }

    fn verify(&self, record: &ProofRecord) -> Result<(), ProveError> {
        ProofSystem::verify(&*self.system, record)
    }

    fn admits(&self, op: &Operation) -> Result<(), ProveError> {
        self.system.admits(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{LifecycleState, OperationKind, ResourceRegister};
    use crate::{ContentId, DomainId};

    fn create(seed: u8) -> OpWitness {
        let register = ResourceRegister {
            id: ContentId([seed; 32]),
            logic: ContentId([0xAB; 32]),
            domain: DomainId::new("test-domain"),
            fungibility_domain: "gold".into(),
            quantity: 10,
            metadata: Default::default(),
            contents: vec![seed],
            state: LifecycleState::Active,
            nullifier_key_commitment: crate::prove::nullifier_key_commitment(&[seed; 32]),
            controller: "alice".into(),
            version: 0,
        };
        OpWitness { kind: OperationKind::Create, consumed: vec![], created: vec![register], updated: None }
    }

    #[test]
    fn a_workers_proof_of_other_operations_is_rejected() {
        let batch = [create(1), create(2), create(3)];
        let chunks: Vec<&[OpWitness]> = batch.chunks(2).collect();
        let proof_of = |i: usize| BatchProof {
            proof: Default::default(),
            public_inputs: crate::prove::witness::chunk_public_inputs(chunks[i], i * 2, 2).unwrap(),
            ops: chunks[i].len(),
        };
        assert!(check_chunk_proof(7, 0, &proof_of(0), chunks[0], 2).is_ok());
        assert!(check_chunk_proof(8, 1, &proof_of(1), chunks[1], 2).is_ok());
        // Another chunk's proof, or the right inputs with another count.
        let err = check_chunk_proof(8, 1, &proof_of(0), chunks[1], 2).unwrap_err().to_string();
        assert!(err.contains("proof job 8 proves other operations than proof 1"), "{err}");
        let mut short = proof_of(0);
        short.ops = 1;
        assert!(check_chunk_proof(7, 0, &short, chunks[0], 2).is_err());
    }
}
