//! `ExecuteBatch` jobs: a batch in `cvm run`'s format (programs inline)
//! executed, proven and committed to the server's store on the thread that
//! owns it, in submission order; the batch jobs queued together run as one
//! pipeline (a batch proven and committed while the next executes).
//!
//! Exactly once: the batch record carries the job's request id. A job
//! interrupted by a crash is looked for in the batches committed since it
//! started before it runs again; if it committed, its result is rebuilt
//! from its record instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::keys::KeySets;
use super::{BadPayload, Engines, Progress, WorkError};
use crate::batch::file::{check_inline, clock_skew_refusal, BatchFile, BatchTime, CheckedBatch, Keys, PreparedBatch};
use crate::batch::{execute_batches, BatchJob, Content, TransactionContext};
use crate::prove::{ProofSystem, ProvingSystem, StoredKeys};
use crate::service::proto::{ExecuteBatchJob, ExecuteBatchResult};
use crate::store::{BatchRecord, RegisterStore};
use crate::ExecutionMode;

/// The default operations per proof (as `cvm run`'s).
pub const DEFAULT_OPS_PER_PROOF: usize = 4;

/// The ops per proof a job asks for, 0 meaning the default.
pub fn ops_per_proof(requested: u32) -> usize {
    match requested {
        0 => DEFAULT_OPS_PER_PROOF,
        k => k as usize,
    }
}

/// A checked batch job (checked at submit, and handed to its runner as it
/// is when it is still in memory then: a large batch is parsed once).
pub struct Parsed {
    checked: CheckedBatch,
    mode: ExecutionMode,
    ops_per_proof: usize,
    fail_fast: bool,
    all_or_nothing: bool,
    no_prove: bool,
}

impl Parsed {
    /// Refuse a batch dated more than `skew` seconds from this server's
    /// clock (at submit only: a job accepted runs whenever it comes up).
    /// A batch from the future would hold every later batch of every domain
    /// back, since committed timestamps never go back.
    pub fn check_clock(&self, skew: Option<u64>) -> Result<(), BadPayload> {
        let (Some(skew), BatchTime::At(timestamp)) = (skew, self.checked.timestamp()) else { return Ok(()) };
        match clock_skew_refusal(timestamp, crate::batch::file::now(), skew) {
            None => Ok(()),
            Some(refusal) => Err(BadPayload::new(
                "execute_batch.batch_json",
                format!("timestamp: {refusal} (use \"timestamp\": \"now\", or the server's --max-clock-skew)"),
            )),
        }
    }

    /// The batch's domain.
    pub fn domain(&self) -> &crate::resource::DomainId {
        self.checked.domain()
    }

    /// About how many bytes of memory it holds beyond its text's.
    pub fn resident_overhead(&self) -> usize {
        self.checked.resident_overhead()
    }
}

/// What a batch job's batch is called in its errors and its default trace
/// id (`request ID@TIMESTAMP`), the same at submit and after a restart.
pub fn origin(request_id: &str) -> String {
    format!("request {request_id}")
}

pub fn parse(job: &ExecuteBatchJob, origin: &str) -> Result<Parsed, BadPayload> {
    let text = std::str::from_utf8(&job.batch_json)
        .map_err(|e| BadPayload::new("execute_batch.batch_json", format!("not UTF-8 text: {e}")))?;
    let mode = match job.mode.as_str() {
        "" => ExecutionMode::Standard,
        text => text.parse().map_err(|e: String| BadPayload::new("execute_batch.mode", e))?,
    };
    if mode == ExecutionMode::Debug {
        return Err(BadPayload::new("execute_batch.mode", "debug mode steps interactively: run it with `cvm run`"));
    }
    let ops_per_proof = ops_per_proof(job.ops_per_proof);
    crate::prove::check_ops_per_proof(ops_per_proof)
        .map_err(|e| BadPayload::new("execute_batch.ops_per_proof", e.to_string()))?;
    let file =
        BatchFile::parse(text, origin).map_err(|e| BadPayload::new("execute_batch.batch_json", e.to_string()))?;
    let checked = check_inline(file, origin).map_err(|e| BadPayload::new("execute_batch.batch_json", e.to_string()))?;
    Ok(Parsed {
        checked,
        mode,
        ops_per_proof,
        fail_fast: job.fail_fast,
        all_or_nothing: job.all_or_nothing,
        no_prove: job.no_prove,
    })
}

/// The store and what batch jobs need beside it.
pub struct BatchRunner {
    pub store: RegisterStore,
    data_dir: PathBuf,
    pub keys: Arc<KeySets>,
}

impl BatchRunner {
    pub fn open(data_dir: &Path, keys: Arc<KeySets>) -> Result<BatchRunner, crate::store::StoreError> {
        Ok(BatchRunner { store: RegisterStore::open(data_dir)?, data_dir: data_dir.to_path_buf(), keys })
    }

    /// The batch a job with `request_id` committed after batch `since`, if any.
    pub fn committed(&self, request_id: &str, since: u64) -> Result<Option<BatchRecord>, WorkError> {
        for number in since + 1..=self.store.head() {
            let record =
                self.store.batch(number).map_err(|e| WorkError::Internal(format!("reading batch {number}: {e}")))?;
            if let Some(record) = record.filter(|r| r.request_id.as_deref() == Some(request_id)) {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    /// Make a checked batch ready to run: its domain key, its transaction
    /// (its proving keys loaded: the stage "load keys"). None when the job
    /// was cancelled at a stage boundary.
    pub fn prepare(
        &self,
        parsed: Parsed,
        request_id: &str,
        engines: &Engines,
        progress: &dyn Progress,
    ) -> Result<Option<Prepared>, WorkError> {
        let Parsed { checked, mode, ops_per_proof, fail_fast, all_or_nothing, no_prove } = parsed;
        let keys_path = self.data_dir.join("keys.json");
        let keys = match mode.writes_store() {
            true => Keys::Create(&keys_path),
            false => Keys::ReadOnly(&keys_path),
        };
        let batch = checked
            .prepare(keys)
            .map_err(|e| WorkError::Bad(BadPayload::new("execute_batch.batch_json", e.to_string())))?;
        let mut tx = TransactionContext::new(mode);
        tx.hashing = engines.hashing.clone();
        tx.request_id = Some(request_id.to_string());
        if fail_fast {
            tx = tx.fail_fast();
        }
        if all_or_nothing {
            tx = tx.all_or_nothing();
        }
        let mut system = None;
        match mode {
            _ if no_prove => {}
            ExecutionMode::Standard | ExecutionMode::ProofGeneration => {
                if !progress.stage("load keys") {
                    return Ok(None);
                }
                let keys = self.keys.get(ops_per_proof)?;
                tx = tx.with_proof_system(keys.clone());
                system = Some(keys);
            }
            ExecutionMode::Verification => tx = tx.with_proof_system(Arc::new(StoredKeys::new(&self.data_dir))),
            ExecutionMode::Simulation | ExecutionMode::Debug => {}
        }
        let content = batch.content();
        Ok(Some(Prepared { batch, tx, content, system }))
    }

    /// Execute, prove and commit prepared batches in order, pipelined as
    /// `execute_batches` does (batch n is proven and committed while n+1
    /// executes). Each result is `cvm run --json`'s, with the proofs made.
    pub fn execute(&mut self, prepared: &[Prepared]) -> Vec<Result<Executed, WorkError>> {
        let jobs: Vec<BatchJob<'_>> = prepared
            .iter()
            .map(|p| BatchJob::new(&p.batch.keys, &p.batch.ops, &p.batch.ctx, &p.tx).with_programs(&p.content))
            .collect();
        execute_batches(&mut self.store, &jobs)
            .into_iter()
            .map(|outcome| match outcome {
                Ok(result) => {
                    let json = serde_json::to_string_pretty(&result)
                        .map_err(|e| WorkError::Internal(format!("writing the result: {e}")))?;
                    let proofs = result.metadata.prove_stages.as_ref().map_or(0, |p| p.proofs);
                    let timings = result.metadata.timings;
                    let b = &result.metadata.backends;
                    // As a hash job says it: a flush the GPU failed was hashed by the
                    // CPU (the batch's own `hash` says where flushes were sent).
                    let hash = b.hash.map(|on| if b.hash_fallbacks > 0 { crate::ResolvedBackend::Cpu } else { on });
                    let backends =
                        [("execute", b.execute), ("hash", hash), ("prove", b.prove), ("quotient", b.quotient)]
                            .into_iter()
                            .filter_map(|(name, on)| on.map(|on| super::stage(name, on)))
                            .collect();
                    Ok(Executed { result: ExecuteBatchResult { result_json: json }, proofs, timings, backends })
                }
                Err(e) => Err(WorkError::Precondition(format!(
                    "the batch could not be committed; the store is unchanged by it: {e}"
                ))),
            })
            .collect()
    }
}

/// A batch ready to run.
pub struct Prepared {
    batch: PreparedBatch,
    tx: TransactionContext,
    content: Vec<Content>,
    /// The resident key set it proves with, when it proves.
    system: Option<Arc<ProvingSystem>>,
}

/// A batch executed (proven, committed): its result, the proofs made, and
/// the time of each stage.
pub struct Executed {
    pub result: ExecuteBatchResult,
    pub proofs: u64,
    pub timings: crate::store::StageTimings,
    /// Where each stage that ran, ran (the batch's own `backends`).
    pub backends: Vec<super::StageBackend>,
}

impl Prepared {
    /// Stop the batch before its proofs or its commit, committing nothing,
    /// once `cancelled` says so (a job cancelled while it runs): its
    /// outcome is then an error saying where it stopped, which the caller,
    /// knowing the job was cancelled, ends as a cancellation. `cancelled`
    /// is told the stage the batch is about to begin (`prove`, `commit`).
    pub fn stop_when(&mut self, cancelled: impl Fn(&str) -> bool + Send + Sync + 'static) {
        self.tx.stop = Some(Arc::new(move |boundary: &str| {
            cancelled(match boundary {
                "proofs" => "prove",
                other => other,
            })
        }));
    }

    /// Prove through `wrap` of the resident key set instead of on it here
    /// (a cluster's workers prove, this key set checks); no-op when the
    /// batch does not prove.
    pub fn prove_with(&mut self, wrap: impl FnOnce(Arc<ProvingSystem>) -> Arc<dyn ProofSystem>) {
        if let Some(system) = self.system.clone() {
            self.tx.proof_system = Some(wrap(system));
        }
    }
}

/// The result of a batch that committed before a crash lost its job's
/// result: what its record holds.
pub fn recovered_result(record: &BatchRecord) -> ExecuteBatchResult {
    let value = serde_json::json!({ "recovered_from_batch_record": true, "record": record });
    ExecuteBatchResult { result_json: serde_json::to_string_pretty(&value).unwrap_or_default() }
}
