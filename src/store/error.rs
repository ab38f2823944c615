//! Store failures.

use crate::error::ExecutionError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store database error: {0}")]
    Database(String),
    #[error("store file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("corrupt {what} at byte {offset}: {reason}")]
    Corrupt { what: String, offset: usize, reason: String },
    #[error("state root after replay is {found} but the store's head batch {batch} recorded {expected}")]
    RootMismatch { batch: u64, expected: String, found: String },
    #[error("hashing through the pool failed: {0}")]
    Hash(#[from] crate::hash::HashError),
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
