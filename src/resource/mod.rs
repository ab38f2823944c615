//! Resources: the register, its lifecycle, and the unified operations on it.

mod domain;
mod label;
mod lifecycle;
mod operation;
mod register;
pub(crate) mod serde_hex;
pub(crate) mod serde_hex32;
pub(crate) mod serde_hex_opt;

pub use domain::{check_name, DomainId, MAX_NAME_BYTES};
pub use label::Label;
pub use lifecycle::LifecycleState;
pub use operation::{ConsumedInput, Operation, OperationKind, ResourceUpdate, VerifyTarget};
pub use register::{
    nullifier_input, nullifier_key_commitment, NewResource, ResourceId, ResourceRegister, NULLIFIER_CONTEXT,
    NULLIFIER_KEY_COMMITMENT_CONTEXT,
};
