//! causality-vm: a resource VM with capability tokens, a deferred hash pool
//! and GPU-accelerated Groth16 proving. See `docs/ARCHITECTURE.md`.

pub mod backend;
pub mod batch;
pub mod capability;
pub mod clock;
pub mod content_id;
pub mod context;
pub mod crypto;
pub mod digest_map;
pub mod error;
pub mod fsutil;
pub mod gpu;
pub mod hash;
pub mod layers;
pub mod msm;
pub mod prove;
pub mod resource;
pub mod store;
pub mod tel;
pub mod tuning;
pub mod vm;

pub use backend::{Backend, ResolvedBackend};
pub use content_id::ContentId;
pub use context::{DomainId, ExecutionContext, ExecutionMode};
pub use error::ExecutionError;
