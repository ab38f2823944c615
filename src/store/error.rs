//! Store failures.

use crate::error::ExecutionError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store database error: {0}")]
    Database(String),
    #[error("store file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("corrupt {what}{}: {reason}", at_byte(offset))]
    Corrupt {
        what: String,
        /// Where in `what` the damage was found, when a decoder knows it.
        offset: Option<usize>,
        reason: String,
    },
    #[error(
        "batch log {path} is damaged at byte {offset}: {reason}{}; nothing was changed. `cvm store check` \
         reports every problem; `cvm store recover --to-last-good` keeps the batches before the damage and \
         moves the rest aside",
        later_batches(later)
    )]
    LogDamaged { path: String, offset: usize, reason: String, later: Vec<u64> },
    #[error("state root after replay is {found} but the store's head batch {batch} recorded {expected}")]
    RootMismatch { batch: u64, expected: String, found: String },
    #[error(
        "the batch log has a gap: batch {expected} should come next but the next frame holds batch {found} (a \
         segment file is missing or damaged)"
    )]
    LogGap { expected: u64, found: u64 },
    #[error("content {id} is damaged: its stored bytes hash to {actual} (storing the right bytes again repairs it)")]
    ContentMismatch { id: String, actual: String },
    #[error("no usable store in {dir}: {reason}")]
    Missing { dir: String, reason: String },
    #[error(
        "the store is open for writing by {holder}: one writer at a time. Wait for it to finish (or, if it is a \
         `cvm serve`, send the batch to it with `cvm submit`); the read commands (cvm state, export, store check, \
         and the simulation and verification modes) run beside it"
    )]
    Busy { holder: String },
    #[error("the store was opened read-only: it cannot be written")]
    ReadOnly,
    #[error("hashing through the pool failed: {0}")]
    Hash(#[from] crate::hash::HashError),
}

fn later_batches(later: &[u64]) -> String {
    match (later.first(), later.last()) {
        (Some(first), Some(last)) if first == last => format!(" (a seal after it names batch {first})"),
        (Some(first), Some(last)) => format!(" (seals after it name batches {first} to {last})"),
        _ => String::new(),
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Database(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<StoreError> for ExecutionError {
    fn from(e: StoreError) -> Self {
        ExecutionError::StateCommitmentError { reason: e.to_string() }
    }
}

fn at_byte(offset: &Option<usize>) -> String {
    offset.map(|at| format!(" at byte {at}")).unwrap_or_default()
}
