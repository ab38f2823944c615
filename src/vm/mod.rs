//! The resource VM: a register machine that runs resource logic programs.
//!
//! A program is decoded once with full validation ([`Program::decode`]) and
//! then run by an [`Interpreter`] for one resource of an operation (its
//! [`LogicInput`]): 16 registers of 64 bits, a 32-bit address space of
//! regions (see [`memory`]), an instruction budget, and a hash pool for
//! BLAKE3 digests and Poseidon values (the interpreter files requests and
//! never hashes inline).
//!
//! # Outcomes and errors
//! | what happens | result |
//! |---|---|
//! | `ACCEPT` | `Ok(LogicOutcome)` with the instruction count and the deferred digest assertions |
//! | `REJECT reason, code`, or running off the end of the code | `InvalidResourceState { id, state, reason: "rejected by logic cid:… at pc 0x…: code K: reason" }` |
//! | more instructions than the budget | `Timeout { program: logic cid, budget }` |
//! | a load from an unreadable region (others without permission, unmapped) or a store outside scratch | `MemoryAccessViolation { pc, address, access: "read"/"write", reason }` |
//! | a malformed encoding | `InvalidInstruction { offset: byte offset in the encoding, reason }` |
//! | a trap while running: arithmetic overflow, division by zero, `ASSERT_DIGEST` on a value that is not one of this run's handles or on an expected digest that is not 32 bytes, `POSEIDON` inputs that are not 1 to 16 whole 32-byte elements or hold one at or above the field's modulus | `InvalidInstruction { offset: byte offset of the instruction in the encoding (16 + pc), reason }` |
//! | a deferred digest assertion that fails when the pool has flushed | `StateCommitmentError { reason }` from [`DeferredAssertion::check`] |
//!
//! The pc is the byte offset of an instruction in the code section; jump
//! targets are such offsets too.
//!
//! The interpreter never panics, whatever program it decodes: every register
//! index is validated at decode, arithmetic is checked, and every memory
//! access goes through a bounds-checked view.

mod deferred;
mod interpreter;
pub mod isa;
pub mod memory;
mod program;
mod trace;

pub use deferred::{DeferredAssertion, Request};
pub use interpreter::{
    Filings, Interpreter, LogicInput, LogicOutcome, Role, TracedRun, BYTES_PER_UNIT, DEFAULT_BUDGET,
    UNITS_PER_PERMUTATION,
};
pub use isa::{BinOp, Compare, Instruction, Reg, INSTRUCTION_SIZE, MAX_POSEIDON_INPUTS, REGISTER_COUNT};
pub use program::{Program, FORMAT_VERSION, HEADER_SIZE, MAGIC, MAX_INSTRUCTIONS};
pub use trace::{Access, ExecutionTrace, MemoryEffect, RegisterWrite, TraceStep, MAX_TRACED_STEPS};
