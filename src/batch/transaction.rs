//! How a batch treats failures and what it may write.

use std::sync::Arc;

use crate::context::ExecutionMode;
use crate::error::ExecutionError;
use crate::hash::HashBackend;
use crate::vm::DEFAULT_BUDGET;

use crate::prove::ProofSystem;

/// What happens after an operation fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum FailurePolicy {
    /// Stop at the first failure; later operations are skipped.
    FailFast,
    /// Run every operation and report each failure.
    #[default]
    Continue,
}

/// What is committed when some operations failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum CommitPolicy {
    /// Commit the effects of the operations that succeeded.
    #[default]
    Partial,
    /// Commit only if every operation succeeded; otherwise roll back the whole batch.
    AllOrNothing,
}

/// Hash requests and digest assertions a batch's logic programs may file in
/// one pass, all operations together. Each is held (a digest, and an
/// assertion's 112 bytes) until the batch's flush, and one operation's runs
/// may each file as many as their budget allows, so without this a batch
/// of small operations running loops could take any amount of memory.
/// Past it the batch fails as a whole (an error naming the operation that passed it). About
/// four for each operation of the largest batch a file may hold.
pub const MAX_LOGIC_FILINGS: usize = 1 << 22;

/// Trace steps a batch keeps in all (about 150 MB), when it traces: each
/// operation's logic runs keep their share of it ([`crate::vm::MAX_TRACED_STEPS`]
/// at most, two a run at least: the first step and the last), so tracing a
/// large batch does not take memory without bound.
pub const MAX_BATCH_TRACED_STEPS: usize = 1 << 20;

#[derive(Clone)]
pub struct TransactionContext {
    pub mode: ExecutionMode,
    pub on_failure: FailurePolicy,
    pub commit: CommitPolicy,
    /// Instruction budget of each logic run.
    pub budget: u64,
    /// Proves batches in ProofGeneration mode and verifies stored batch
    /// proofs; without one, ProofGeneration records witnesses only.
    pub proof_system: Option<Arc<dyn ProofSystem>>,
    /// Told the number of operations executed so far (a progress bar).
    pub progress: Option<Arc<dyn Fn(usize) + Send + Sync>>,
    /// The most seconds a batch's timestamp may lie from this machine's
    /// clock, either way (None: not checked). A batch from the past could
    /// use a token that has expired; one from the future would hold every
    /// later batch back (committed timestamps never decrease).
    pub max_clock_skew: Option<u64>,
    /// Record every logic run's instruction trace whatever the mode (Debug
    /// mode always does): a simulation to step through before committing.
    pub trace: bool,
    /// Where the batch's hashes are computed: its filings and flushes, and
    /// the state tree's staging (the CPU unless the caller picks a GPU).
    pub hashing: HashBackend,
    /// The caller's name for this batch (a service job's request id), kept
    /// in its batch record so a retry after a crash can tell it committed.
    pub request_id: Option<String>,
    /// Hash requests and digest assertions the batch's logic programs may
    /// file ([`MAX_LOGIC_FILINGS`] unless lowered, as tests do).
    pub max_logic_filings: usize,
    /// Asked at the batch's last stage boundaries with their name, before
    /// its proofs ("proofs") and before its commit ("commit"): `true` stops
    /// it there and commits nothing of it (a service job cancelled while it
    /// runs). None: never stopped.
    pub stop: Option<StopCheck>,
}

/// See [`TransactionContext::stop`].
pub type StopCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl Default for TransactionContext {
    fn default() -> Self {
        TransactionContext {
            mode: ExecutionMode::Standard,
            on_failure: FailurePolicy::Continue,
            commit: CommitPolicy::Partial,
            budget: DEFAULT_BUDGET,
            proof_system: None,
            progress: None,
            max_clock_skew: None,
            trace: false,
            hashing: HashBackend::cpu(),
            request_id: None,
            max_logic_filings: MAX_LOGIC_FILINGS,
            stop: None,
        }
    }
}

impl TransactionContext {
    pub fn new(mode: ExecutionMode) -> Self {
        TransactionContext { mode, ..Default::default() }
    }
    pub fn fail_fast(mut self) -> Self {
        self.on_failure = FailurePolicy::FailFast;
        self
    }
    pub fn all_or_nothing(mut self) -> Self {
        self.commit = CommitPolicy::AllOrNothing;
        self
    }
    pub fn with_budget(mut self, budget: u64) -> Self {
        self.budget = budget;
        self
    }
    pub fn with_progress(mut self, progress: Arc<dyn Fn(usize) + Send + Sync>) -> Self {
        self.progress = Some(progress);
        self
    }
    /// Whether the batch must stop before `boundary` ([`Self::stop`]): then
    /// the error that ends it, which says so.
    pub fn stopped_before(&self, boundary: &str) -> Result<(), ExecutionError> {
        match self.stop.as_ref().is_some_and(|stop| stop(boundary)) {
            false => Ok(()),
            true => Err(ExecutionError::StateCommitmentError {
                reason: format!("stopped before its {boundary} (cancelled): nothing of the batch is committed"),
            }),
        }
    }

    pub fn with_max_clock_skew(mut self, seconds: u64) -> Self {
        self.max_clock_skew = Some(seconds);
        self
    }
    /// Hash on `backend` (see [`HashBackend::select`]).
    pub fn with_hashing(mut self, backend: HashBackend) -> Self {
        self.hashing = backend;
        self
    }
    pub fn with_proof_system(mut self, system: Arc<dyn ProofSystem>) -> Self {
        self.proof_system = Some(system);
        self
    }
}

impl std::fmt::Debug for TransactionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionContext")
            .field("mode", &self.mode)
            .field("on_failure", &self.on_failure)
            .field("commit", &self.commit)
            .field("budget", &self.budget)
            .field("proof_system", &self.proof_system.as_ref().map(|p| p.name()))
            .field("max_clock_skew", &self.max_clock_skew)
            .field("hashing", &self.hashing)
            .field("max_logic_filings", &self.max_logic_filings)
            .field("stop", &self.stop.is_some())
            .finish()
    }
}
