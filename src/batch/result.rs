//! What a batch returns.

use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::backend::ResolvedBackend;
use crate::content_id::ContentId;
use crate::context::ExecutionMode;
use crate::error::ExecutionError;
use crate::resource::{OperationKind, ResourceId, ResourceRegister};
use crate::store::{BatchDelta, StageTimings};
use crate::vm::{ExecutionTrace, Role};

use super::transaction::{CommitPolicy, FailurePolicy};
use crate::prove::{OpWitness, ProveStages};

/// What a successful operation did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OpOutcome {
    pub created: Vec<ResourceId>,
    pub consumed: Vec<ResourceId>,
    #[serde(serialize_with = "hex_list")]
    pub nullifiers: Vec<[u8; 32]>,
    /// Updated registers with their new version.
    pub updated: Vec<(ResourceId, u64)>,
    /// The register a Read returned.
    pub read: Option<ResourceRegister>,
    /// What a Verify established.
    pub verified: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpStatus {
    Succeeded(Box<OpOutcome>),
    Failed(ExecutionError),
    /// Not run: an earlier operation failed under fail-fast.
    Skipped,
}

impl Serialize for OpStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self {
            OpStatus::Succeeded(outcome) => {
                m.serialize_entry("status", "succeeded")?;
                m.serialize_entry("outcome", outcome)?;
            }
            OpStatus::Failed(e) => {
                m.serialize_entry("status", "failed")?;
                m.serialize_entry("error", e.kind())?;
                m.serialize_entry("message", &e.to_string())?;
            }
            OpStatus::Skipped => m.serialize_entry("status", "skipped")?,
        }
        m.end()
    }
}

/// One logic run's instruction trace (Debug mode).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogicTrace {
    pub role: Role,
    /// The subject's id; `None` for a resource being created (its id is
    /// known only after the hash flush).
    pub resource: Option<ResourceId>,
    pub program: ContentId,
    pub trace: ExecutionTrace,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OperationResult {
    pub index: usize,
    pub kind: OperationKind,
    #[serde(flatten)]
    pub status: OpStatus,
    /// Instructions its logic runs executed.
    pub instructions: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub traces: Vec<LogicTrace>,
}

impl OperationResult {
    pub fn succeeded(&self) -> bool {
        matches!(self.status, OpStatus::Succeeded(_))
    }
    pub fn error(&self) -> Option<&ExecutionError> {
        match &self.status {
            OpStatus::Failed(e) => Some(e),
            _ => None,
        }
    }
    pub fn outcome(&self) -> Option<&OpOutcome> {
        match &self.status {
            OpStatus::Succeeded(o) => Some(o.as_ref()),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BatchMetadata {
    pub trace_id: String,
    pub mode: ExecutionMode,
    pub on_failure: FailurePolicy,
    pub commit_policy: CommitPolicy,
    pub ops_count: usize,
    /// The batch number the commit got; `None` when nothing was written.
    pub batch_number: Option<u64>,
    /// Whether the batch's effects were written to the store.
    pub committed: bool,
    /// All-or-nothing batch with a failure: nothing was written.
    pub rolled_back: bool,
    #[serde(serialize_with = "hex32")]
    pub state_root_before: [u8; 32],
    /// After the commit, or what it would be (Simulation); `None` when no
    /// root was computed (Verification, or nothing to commit).
    #[serde(serialize_with = "hex32_opt")]
    pub state_root_after: Option<[u8; 32]>,
    /// Simulation: what the batch would change.
    pub would_change: Option<ChangeSet>,
    /// ProofGeneration: what the prover needs, per successful operation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<OpWitness>,
    pub timings: StageTimings,
    /// The prove stage's breakdown, when the batch was proven by a system
    /// that measures it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prove_stages: Option<ProveStages>,
    /// Times the batch was re-executed because a digest-dependent check
    /// failed an operation at the flush.
    pub reruns: usize,
    /// Where each stage ran.
    pub backends: StageBackends,
}

/// Which backend ran each stage of a batch: `cpu` or `gpu` (None: the
/// stage did not run).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StageBackends {
    /// The VM and the operations' checks: always the CPU.
    pub execute: Option<ResolvedBackend>,
    /// Threads of the rayon pool the batch executed on.
    pub execute_threads: usize,
    /// Operations of the final pass executed side by side on that pool
    /// (the others ran in order; the results are the same either way).
    pub ran_ahead: usize,
    /// The hash pool's flushes (ids, nullifiers, commitments, the state tree).
    pub hash: Option<ResolvedBackend>,
    /// The proofs' MSMs.
    pub prove: Option<ResolvedBackend>,
    /// The proofs' quotient polynomials (their NTTs): the GPU only when
    /// every proof's transforms ran there.
    pub quotient: Option<ResolvedBackend>,
    /// Hash flushes (or Merkle roots) the GPU failed and the CPU recomputed,
    /// with the same results: `hash` still says where they were sent.
    pub hash_fallbacks: u64,
    /// Hash requests and Merkle leaves the GPU digested for this batch.
    pub hashed_on_gpu: u64,
    /// Poseidon requests (nullifier-key openings, logic programs' POSEIDON) the GPU resolved.
    pub poseidon_on_gpu: u64,
    /// Those the CPU lanes resolved (every one on the CPU backend; on the
    /// GPU, flushes under its minimum and any the GPU failed). Both count
    /// work that ran, so operations run ahead of a failure count too.
    pub poseidon_on_cpu: u64,
}

/// A delta in a readable form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangeSet {
    pub upserts: Vec<Arc<ResourceRegister>>,
    pub removed: Vec<ResourceId>,
    #[serde(serialize_with = "hex_list")]
    pub nullifiers: Vec<[u8; 32]>,
}

impl From<&BatchDelta> for ChangeSet {
    fn from(d: &BatchDelta) -> Self {
        ChangeSet { upserts: d.upserts.clone(), removed: d.removed.clone(), nullifiers: d.nullifiers.clone() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BatchExecutionResult {
    pub results: Vec<OperationResult>,
    /// Operations that succeeded (whether or not the batch committed; see
    /// `metadata.committed`).
    pub success_count: usize,
    pub metadata: BatchMetadata,
}

fn hex32<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::content_id::hex_encode(v))
}

fn hex32_opt<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_some(&crate::content_id::hex_encode(v)),
        None => s.serialize_none(),
    }
}

fn hex_list<S: Serializer>(v: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| crate::content_id::hex_encode(x)))
}
