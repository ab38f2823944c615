//! The ten execution errors of the spec, each carrying the detail a user needs.

use crate::resource::{LifecycleState, ResourceId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutionError {
    /// The capability token does not grant what the operation needs.
    #[error("insufficient capabilities for {operation}: {reason}")]
    InsufficientCapabilities { operation: String, reason: String },

    /// A logic program touched memory its capabilities do not cover.
    #[error("memory access violation at pc {pc}: {access} of address {address}: {reason}")]
    MemoryAccessViolation { pc: usize, address: u32, access: String, reason: String },

    /// A logic program failed to decode or hit an instruction it may not run.
    #[error("invalid instruction at offset {offset}: {reason}")]
    InvalidInstruction { offset: usize, reason: String },

    /// A register or a program named by the operation does not exist.
    #[error("resource not found: {what}")]
    ResourceNotFound { what: String },

    /// The resource's lifecycle forbids the operation or transition.
    #[error("resource {id} is {state:?}: {reason}")]
    InvalidResourceState { id: ResourceId, state: LifecycleState, reason: String },

    /// The operation's domain is not the context's, or the domain is unknown.
    #[error("domain access error for domain {domain}: {reason}")]
    DomainAccessError { domain: String, reason: String },

    /// A logic program ran past its instruction budget.
    #[error(
        "timeout: logic program {program} used its budget of {budget} (one per instruction, and one per 64 bytes \
         it hashes or compares)"
    )]
    Timeout { program: String, budget: u64 },

    /// A proof could not be produced or did not verify.
    #[error("proof generation failed at {stage}: {reason}")]
    ProofGenerationError { stage: String, reason: String },

    /// The store could not commit, or a digest-dependent assertion failed at commit.
    #[error("state commitment failed: {reason}")]
    StateCommitmentError { reason: String },

    /// An operation reached into another domain without a grant for it.
    #[error("cross-domain operation from {from} into {to} denied: {reason}")]
    CrossDomainError { from: String, to: String, reason: String },
}

impl ExecutionError {
    /// A short stable name for the variant, used in JSON output and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ExecutionError::InsufficientCapabilities { .. } => "InsufficientCapabilities",
            ExecutionError::MemoryAccessViolation { .. } => "MemoryAccessViolation",
            ExecutionError::InvalidInstruction { .. } => "InvalidInstruction",
            ExecutionError::ResourceNotFound { .. } => "ResourceNotFound",
            ExecutionError::InvalidResourceState { .. } => "InvalidResourceState",
            ExecutionError::DomainAccessError { .. } => "DomainAccessError",
            ExecutionError::Timeout { .. } => "Timeout",
            ExecutionError::ProofGenerationError { .. } => "ProofGenerationError",
            ExecutionError::StateCommitmentError { .. } => "StateCommitmentError",
            ExecutionError::CrossDomainError { .. } => "CrossDomainError",
        }
    }
}

/// The message a panic carried (`panic!`'s text), for an error that reports it.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("no message")
}

thread_local! {
    /// How many [`catch_quietly`] calls this thread is inside.
    static QUIET: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Run `f`, catching a panic that the caller turns into an error of its
/// own (redb panics on some damaged files): the panic hook says nothing
/// for it, so the user reads that error, not a panic message and a
/// backtrace besides. Panics elsewhere, and on other threads, are printed
/// as before (the hook installed here hands them to the one it replaced).
pub fn catch_quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(|quiet| quiet.get()) == 0 {
                previous(info);
            }
        }));
    });
    QUIET.with(|quiet| quiet.set(quiet.get() + 1));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|quiet| quiet.set(quiet.get() - 1));
    caught
}
