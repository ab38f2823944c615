//! Many machines, one queue: jobs kept in PostgreSQL (docs/SCALE_OUT.md).
//!
//! [`Queue`] is the job store: jobs accepted idempotently, claimed by
//! workers with `FOR UPDATE SKIP LOCKED` under a lease renewed by
//! heartbeat, completed in one transaction only while the lease is the
//! claimer's, and put back (or failed, past their most attempts) when a
//! lease expires. [`notices`] wakes waiters through `LISTEN/NOTIFY`.
//! [`worker`] is `cvm worker`: stateless processes that run the compute
//! kinds on their own engines.

pub mod blobs;
pub mod committer;
mod connect;
pub mod front;
mod notices;
mod outage;
mod prover;
mod queue;
mod schema;
pub mod worker;

pub use notices::{Heard, Notice, Notices, Waiter};
pub use queue::{Claimed, KindCount, NewJob, Queue, Reaped, Renewal, Submitted, WorkerRow};
pub use schema::VERSION as SCHEMA_VERSION;

use crate::service::error::with_causes;

/// What went wrong with the cluster's database.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("the cluster's database, {doing}: {}", with_causes(source))]
    Db {
        doing: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{0}")]
    Schema(String),
    #[error("request id {request_id:?} already names job {job} with a different payload")]
    Conflict { request_id: String, job: u64 },
    #[error("no job {0}")]
    NotFound(u64),
    #[error("job {job} in the cluster's database is damaged: {reason}")]
    Damaged { job: u64, reason: String },
    #[error("{0}")]
    Config(String),
}

impl ClusterError {
    fn db(doing: impl Into<String>, source: tokio_postgres::Error) -> ClusterError {
        ClusterError::Db { doing: doing.into(), source }
    }

    /// Whether the database is away for now (no connection, or one it
    /// closed, or it is shutting down or starting), rather than refusing
    /// the statement: what is worth waiting for.
    pub fn is_unavailable(&self) -> bool {
        let ClusterError::Db { source, .. } = self else { return false };
        match source.as_db_error() {
            None => true,
            // Class 08 (connection exception), 57P01-57P03 (shutdown, crash, cannot connect now).
            Some(e) => e.code().code().starts_with("08") || matches!(e.code().code(), "57P01" | "57P02" | "57P03"),
        }
    }
}
