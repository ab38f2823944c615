//! What each job kind does: its payload checked into typed work (at submit,
//! so a malformed payload is refused before anything is recorded, and again
//! when the job runs), and the work run on the server's engines.

pub mod batch;
pub mod groth16;
mod hash;
pub mod keys;
pub(crate) mod msm;
pub mod prove_ops;
mod resident;

use std::sync::Arc;

use super::proto::job_payload::Kind as PayloadKind;
use super::proto::{job_result, msm_job, HashMessage, JobKind, JobPayload, JobResult, StageBackend};
use crate::hash::HashBackend;
use crate::msm::MsmEngine;
use crate::ResolvedBackend;

pub use msm::{BaseSetId, BaseSets};

/// A payload that cannot be run: which field and why (INVALID_ARGUMENT).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct BadPayload {
    pub field: String,
    pub reason: String,
}

impl BadPayload {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> BadPayload {
        BadPayload { field: field.into(), reason: reason.into() }
    }
}

/// Why a job that started did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// The payload does not hold up (found only when running: a base set
    /// that is not there any more, say).
    #[error("{0}")]
    Bad(#[from] BadPayload),
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    Internal(String),
    /// Given up on after its attempts (a batch job whose committers kept
    /// stopping, found not committed).
    #[error("{0}")]
    Aborted(String),
    /// What the job needs from elsewhere (a cluster's database) is away
    /// for now: not a failure of the job (its runner waits and tries again).
    #[error("{0}")]
    Unavailable(String),
}

impl WorkError {
    /// The gRPC code name the job's error carries.
    pub fn code(&self) -> &'static str {
        match self {
            WorkError::Bad(_) => "INVALID_ARGUMENT",
            WorkError::Precondition(_) => "FAILED_PRECONDITION",
            WorkError::Internal(_) => "INTERNAL",
            WorkError::Aborted(_) => "ABORTED",
            WorkError::Unavailable(_) => "UNAVAILABLE",
        }
    }
}

/// The engines jobs run on, made once when the server starts.
pub struct Engines {
    pub hashing: HashBackend,
    pub msm: Arc<MsmEngine>,
    pub bases: BaseSets,
    /// Uploaded snarkjs keys, resident between Groth16 jobs.
    pub zkeys: groth16::Zkeys,
    /// Proving key sets kept between jobs.
    pub keys: std::sync::Arc<keys::KeySets>,
    /// One hash or Groth16 stage at a time uses the GPU (its stages are
    /// large already); CPU work of other jobs runs beside it. MSM jobs do
    /// not take it: the MSM engine places each MSM itself, counting its
    /// device's queue (`msm::share`).
    pub device: std::sync::Mutex<()>,
    /// Batch jobs dated further than this from the server's clock are
    /// refused at submit (None: no limit).
    pub max_clock_skew: Option<u64>,
}

impl Engines {
    /// The engines for `backend`, their caches (proving keys, base sets,
    /// zkeys) in `data_dir`.
    pub fn open(data_dir: &std::path::Path, backend: crate::Backend) -> Result<Engines, String> {
        let hashing = crate::hash::HashBackend::select(backend).map_err(|e| e.to_string())?;
        let msm = MsmEngine::new(backend).map_err(|e| e.to_string())?;
        Ok(Engines {
            hashing,
            msm: Arc::new(msm),
            bases: BaseSets::new(data_dir.join("bases")),
            zkeys: groth16::Zkeys::new(data_dir.join("zkeys")),
            keys: Arc::new(keys::KeySets::new(data_dir.to_path_buf(), backend)),
            device: std::sync::Mutex::new(()),
            max_clock_skew: Some(crate::batch::file::DEFAULT_MAX_CLOCK_SKEW),
        })
    }

    /// Hold the GPU for one stage (a no-op lock on the CPU).
    fn device_stage(&self, backend: ResolvedBackend) -> Option<std::sync::MutexGuard<'_, ()>> {
        (backend == ResolvedBackend::Gpu).then(|| self.device.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The kind of job a payload asks for.
pub fn kind_of(payload: &JobPayload) -> Result<JobKind, BadPayload> {
    match &payload.kind {
        Some(PayloadKind::ExecuteBatch(_)) => Ok(JobKind::ExecuteBatch),
        Some(PayloadKind::ProveOps(_)) => Ok(JobKind::ProveOps),
        Some(PayloadKind::Hash(_)) => Ok(JobKind::Hash),
        Some(PayloadKind::MerkleRoot(_)) => Ok(JobKind::MerkleRoot),
        Some(PayloadKind::Msm(_)) => Ok(JobKind::Msm),
        Some(PayloadKind::Groth16(_)) => Ok(JobKind::Groth16),
        None => Err(no_job()),
    }
}

/// Check a payload without running it (at submit). A batch comes back
/// parsed, for its runner.
pub fn check(payload: &JobPayload, engines: &Engines, request_id: &str) -> Result<Option<batch::Parsed>, BadPayload> {
    match &payload.kind {
        Some(PayloadKind::Hash(job)) => hash::parse_hash(job).map(|_| None),
        Some(PayloadKind::MerkleRoot(job)) => hash::parse_leaves(job).map(|_| None),
        Some(PayloadKind::Msm(job)) => msm::parse(job, &engines.bases).map(|_| None),
        Some(PayloadKind::ExecuteBatch(job)) => batch::parse(job, &batch::origin(request_id)).map(Some),
        Some(PayloadKind::ProveOps(job)) => prove_ops::parse(job).map(|_| None),
        Some(PayloadKind::Groth16(job)) => groth16::parse(job, &engines.zkeys).map(|_| None),
        None => Err(no_job()),
    }
}

/// The proving key set a job uses: the scheduler, and a cluster's claims,
/// serve jobs that share a set back to back. Batch jobs keep their
/// submission order, so they name none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySet {
    None,
    /// The compliance keys for this many ops per proof.
    Ops(usize),
    /// An uploaded zkey.
    Zkey(groth16::ZkeyId),
}

impl KeySet {
    pub fn of(payload: &JobPayload) -> KeySet {
        match &payload.kind {
            Some(PayloadKind::ProveOps(job)) => KeySet::Ops(batch::ops_per_proof(job.ops_per_proof)),
            Some(PayloadKind::Groth16(super::proto::Groth16Job {
                key: Some(super::proto::groth16_job::Key::ZkeyId(id)),
                ..
            })) => groth16::ZkeyId::parse(id).map_or(KeySet::None, KeySet::Zkey),
            _ => KeySet::None,
        }
    }

    /// The scheduler's tag: 0 for none.
    pub fn tag(&self) -> u32 {
        match self {
            KeySet::None => 0,
            KeySet::Ops(k) => *k as u32,
            KeySet::Zkey(id) => id.key_set(),
        }
    }

    /// Its name, as a cluster's jobs name theirs and its workers the sets
    /// they hold: "ops:K", a zkey's id; "" for none.
    pub fn name(&self) -> String {
        match self {
            KeySet::None => String::new(),
            KeySet::Ops(k) => format!("ops:{k}"),
            KeySet::Zkey(id) => id.to_string(),
        }
    }
}

/// A payload as it is recorded: a Groth16 job's key named by a path on
/// this machine is read and kept now, and the job names it by its id (so
/// a restart or a changed file cannot change what the job proves).
pub fn adopt_paths(mut payload: JobPayload, engines: &Engines) -> Result<JobPayload, WorkError> {
    use super::proto::groth16_job::Key;
    if let Some(PayloadKind::Groth16(job)) = &mut payload.kind {
        if let Some(Key::ZkeyPath(path)) = &job.key {
            let id = engines.zkeys.adopt(std::path::Path::new(path), engines)?;
            job.key = Some(Key::ZkeyId(id.to_string()));
        }
    }
    Ok(payload)
}

/// A job's work as its runner takes it: the payload, or a batch already parsed.
pub enum Ready {
    Payload(JobPayload),
    Batch(Box<batch::Parsed>),
}

impl Ready {
    /// About how many bytes of memory the work holds, given its payload's
    /// encoded size: a protobuf element can be 2 bytes on the wire and 60
    /// in memory (an empty hash message), so what keeps decoded work in
    /// memory ([`super::hot::Hot`]) must count this, not the wire size.
    pub fn resident_bytes(&self, encoded: usize) -> usize {
        use std::mem::size_of;
        // An allocation's header and rounding, for each element that has one.
        const ALLOCATION: usize = 16;
        let elements = |count: usize, each: usize| count * (each + ALLOCATION);
        let held = match self {
            Ready::Batch(parsed) => parsed.resident_overhead(),
            Ready::Payload(payload) => match &payload.kind {
                Some(PayloadKind::Hash(job)) => elements(job.messages.len(), size_of::<HashMessage>()),
                Some(PayloadKind::MerkleRoot(job)) => elements(job.leaves.len(), size_of::<Vec<u8>>()),
                Some(PayloadKind::Msm(job)) => {
                    let points = match &job.bases {
                        Some(msm_job::Bases::InlineBases(list)) => list.points.len(),
                        _ => 0,
                    };
                    elements(points + job.scalars.len(), size_of::<Vec<u8>>())
                }
                _ => 0,
            },
        };
        encoded + held
    }

    /// A batch job's batch: as parsed at submit, or parsed now from its
    /// payload (read back from the job store).
    pub fn into_batch(self, origin: &str) -> Result<batch::Parsed, WorkError> {
        match self {
            Ready::Batch(parsed) => Ok(*parsed),
            Ready::Payload(JobPayload { kind: Some(PayloadKind::ExecuteBatch(job)) }) => {
                Ok(batch::parse(&job, origin)?)
            }
            Ready::Payload(_) => Err(WorkError::Internal("a batch job's payload holds no batch".into())),
        }
    }
}

fn no_job() -> BadPayload {
    BadPayload::new("payload", "no job: set one of execute_batch, prove_ops, hash, merkle_root, msm, groth16")
}

/// What a running job reports and checks between stages.
pub trait Progress {
    /// A new stage begins; false when the job was cancelled (stop here).
    fn stage(&self, name: &str) -> bool;

    /// The share of the current stage done (0 to 1), told between steps
    /// of a long stage (a ProveOps job's proofs); false when the job was
    /// cancelled (stop here, as at a stage's start).
    fn progress(&self, _done: f64) -> bool {
        true
    }

    /// Why the job must stop now, if it must: for work that waits on
    /// others between its stages.
    fn stopping(&self) -> Option<Stop> {
        None
    }
}

/// Why a running job stops before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Its cancellation was asked for: what it started for others ends too.
    Cancelled,
    /// Another attempt owns it now: what it started is that attempt's.
    LeaseLost,
}

/// A job's result, and the proofs it made (for the metrics).
pub struct Done {
    pub result: JobResult,
    pub proofs: u64,
}

/// Run a job. `Ok(None)` means it was cancelled at a stage boundary. Work
/// that panics (a bug) fails this job alone, with the panic's message: the
/// runner that ran it goes on to the next job instead of ending with it
/// (a compute job changes nothing outside itself, so nothing is left half
/// done).
pub fn run(payload: &JobPayload, engines: &Engines, progress: &dyn Progress) -> Result<Option<Done>, WorkError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_unguarded(payload, engines, progress))).unwrap_or_else(
        |panic| {
            let text = crate::error::panic_text(&*panic);
            Err(WorkError::Internal(format!("the job's work panicked ({text}); the server goes on with other jobs")))
        },
    )
}

fn run_unguarded(payload: &JobPayload, engines: &Engines, progress: &dyn Progress) -> Result<Option<Done>, WorkError> {
    let mut proofs = 0;
    let (kind, backends) = match &payload.kind {
        Some(PayloadKind::Hash(job)) => {
            let messages = hash::parse_hash(job)?;
            if !progress.stage("hash") {
                return Ok(None);
            }
            let (digests, backend) = hash::run_hash(&messages, engines)?;
            (job_result::Kind::Hash(digests), vec![stage("hash", backend)])
        }
        Some(PayloadKind::MerkleRoot(job)) => {
            let leaves = hash::parse_leaves(job)?;
            if !progress.stage("hash") {
                return Ok(None);
            }
            let (root, backend) = hash::run_merkle(&leaves, engines)?;
            (job_result::Kind::MerkleRoot(root), vec![stage("hash", backend)])
        }
        Some(PayloadKind::Msm(job)) => {
            msm::check_still_held(job, &engines.bases)?;
            let work = msm::parse(job, &engines.bases)?;
            if !progress.stage("msm") {
                return Ok(None);
            }
            let (point, backend) = msm::run(work, engines)?;
            (job_result::Kind::Msm(point), vec![stage("msm", backend)])
        }
        Some(PayloadKind::ProveOps(job)) => {
            let parsed = prove_ops::parse(job)?;
            let Some((result, backend, quotient, made)) = prove_ops::run(parsed, &engines.keys, progress)? else {
                return Ok(None);
            };
            proofs = made;
            (job_result::Kind::ProveOps(result), vec![stage("prove", backend), stage("quotient", quotient)])
        }
        Some(PayloadKind::Groth16(job)) => {
            let work = groth16::parse(job, &engines.zkeys)?;
            let Some((result, backends)) = groth16::run(work, engines, progress)? else {
                return Ok(None);
            };
            proofs = 1;
            (job_result::Kind::Groth16(result), backends.into_iter().map(|(name, on)| stage(name, on)).collect())
        }
        Some(PayloadKind::ExecuteBatch(_)) => {
            return Err(WorkError::Internal("batch jobs run on the store's runner, not here".into()))
        }
        None => return Err(no_job().into()),
    };
    Ok(Some(Done { result: JobResult { kind: Some(kind), backends }, proofs }))
}

pub(super) fn stage(name: &str, backend: ResolvedBackend) -> StageBackend {
    StageBackend { stage: name.into(), backend: backend_name(backend).into() }
}

pub fn backend_name(backend: ResolvedBackend) -> &'static str {
    match backend {
        ResolvedBackend::Cpu => "cpu",
        ResolvedBackend::Gpu => "gpu",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::proto::{HashJob, MerkleRootJob};
    use prost::Message;

    /// Decoded work is counted at what it holds in memory: a million empty
    /// hash messages are 2 MB on the wire and over 60 MB decoded.
    #[test]
    fn decoded_work_counts_its_memory_not_its_wire_size() {
        let messages = vec![HashMessage::default(); 1 << 20];
        let payload = JobPayload { kind: Some(PayloadKind::Hash(HashJob { messages, ..HashJob::default() })) };
        let encoded = payload.encoded_len();
        assert!(encoded <= (2 << 20) + 16, "{encoded}");
        let resident = Ready::Payload(payload).resident_bytes(encoded);
        assert!(resident >= (1 << 20) * std::mem::size_of::<HashMessage>(), "{resident}");
        assert!(resident > 30 * encoded, "{resident} against {encoded}");

        let leaves = vec![vec![7u8; 32]; 1000];
        let payload = JobPayload { kind: Some(PayloadKind::MerkleRoot(MerkleRootJob { leaves })) };
        let encoded = payload.encoded_len();
        let resident = Ready::Payload(payload).resident_bytes(encoded);
        assert!(resident >= 1000 * (32 + std::mem::size_of::<Vec<u8>>()), "{resident}");
    }
}
