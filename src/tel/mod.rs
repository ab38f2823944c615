//! TEL, the Temporal Effect Language: a small textual language for resource
//! logic that compiles to VM programs. The language is described with
//! examples in `docs/TEL.md`.
//!
//! source → [`lexer`] → tokens → [`parser`] → rules → [`check`] (names and
//! types) → code generation → [`Program`]. Every error carries the line and
//! column where it was found and prints as `LINE:COL: message`.
//!
//! Two code generators, chosen by the file's first line: TEL 1 ([`codegen`],
//! the default) compiles each expression straight to instructions and its
//! output never changes, so a program keeps its ContentId across releases;
//! TEL 2 (`tel 2;`, [`fold`] then [`codegen_v2`]) folds constants, drops
//! dead rules, compiles conditions to branches, keeps loaded values in
//! registers across the rules and uses the VM's fused format-2 instructions.
//! Both decide every operation the same way, except near the instruction
//! budget: TEL 2 runs fewer instructions, so a run that exhausts its budget
//! under TEL 1 may finish under TEL 2.

mod ast;
mod check;
mod codegen;
mod codegen_v2;
mod emit;
mod error;
mod fold;
mod lexer;
mod parser;

pub use error::TelError;

use crate::vm::Program;

/// Which code generator compiles a file (its `tel N;` line; 1 without one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TelVersion {
    /// Straight translation; the bytes of every program are frozen.
    V1,
    /// The optimizing generator; programs use program format 2.
    V2,
}

impl TelVersion {
    pub fn number(self) -> u64 {
        match self {
            TelVersion::V1 => 1,
            TelVersion::V2 => 2,
        }
    }
}

/// Compile TEL source to a validated VM program, with the code generator
/// its `tel N;` line names (TEL 1 without one).
pub fn compile(source: &str) -> Result<Program, TelError> {
    compile_versioned(source, None)
}

/// Compile with `version`'s code generator whatever the file's `tel N;`
/// line says: to compare the generators on the same rules.
pub fn compile_as(source: &str, version: TelVersion) -> Result<Program, TelError> {
    compile_versioned(source, Some(version))
}

/// The version a source's `tel N;` line asks for (V1 without one).
pub fn version_of(source: &str) -> Result<TelVersion, TelError> {
    let tokens = lexer::lex(source)?;
    requested(&parser::parse(&tokens)?)
}

fn compile_versioned(source: &str, forced: Option<TelVersion>) -> Result<Program, TelError> {
    let tokens = lexer::lex(source)?;
    let parsed = parser::parse(&tokens)?;
    let version = match forced {
        Some(version) => version,
        None => requested(&parsed)?,
    };
    let typed = check::check(&parsed.rules)?;
    match version {
        TelVersion::V1 => codegen::generate(&typed),
        TelVersion::V2 => codegen_v2::generate(&fold::rules(&typed)),
    }
}

fn requested(parsed: &parser::Parsed) -> Result<TelVersion, TelError> {
    match parsed.version {
        None | Some((_, 1)) => Ok(TelVersion::V1),
        Some((_, 2)) => Ok(TelVersion::V2),
        Some((pos, n)) => Err(TelError::at(pos, format!("unsupported TEL version {n}: this compiler knows 1 and 2"))),
    }
}
