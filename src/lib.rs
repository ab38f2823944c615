//! causality-vm: a resource VM with capability tokens, a deferred hash pool
//! and GPU-accelerated Groth16 proving. See `docs/ARCHITECTURE.md`.

pub mod backend;
pub mod batch;
pub mod bounded;
pub mod capability;
pub mod clock;
pub mod content_id;
pub mod context;
pub mod crypto;
pub(crate) mod digest_map;
pub mod error;
pub(crate) mod fsutil;
pub mod gpu;
pub mod hash;
#[cfg(test)]
mod layers;
pub mod msm;
pub mod ntt;
pub mod prove;
pub mod resource;
#[cfg(feature = "service")]
pub mod service;
pub mod store;
pub mod tel;
pub mod tuning;
pub mod vm;

// The types a user of the library starts from; the modules hold the rest.
pub use backend::{Backend, ResolvedBackend};
pub use batch::{execute_batch, execute_batches, BatchExecutionResult, TransactionContext};
pub use capability::{CapabilityToken, KeyRing};
pub use content_id::ContentId;
pub use context::{DomainId, ExecutionContext, ExecutionMode};
pub use error::ExecutionError;
pub use hash::{HashBackend, HashPool};
pub use msm::MsmEngine;
pub use prove::ProvingSystem;
pub use resource::{Operation, ResourceRegister};
pub use store::RegisterStore;
pub use tuning::Tuning;
