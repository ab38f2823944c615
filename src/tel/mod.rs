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
    requested(&parser::parse(&tokens)?, source)
}

fn compile_versioned(source: &str, forced: Option<TelVersion>) -> Result<Program, TelError> {
    let tokens = lexer::lex(source)?;
    let parsed = parser::parse(&tokens)?;
    let version = match forced {
        Some(version) => version,
        None => requested(&parsed, source)?,
    };
    let typed = check::check(&parsed.rules)?;
    match version {
        TelVersion::V1 => codegen::generate(&typed),
        TelVersion::V2 => codegen_v2::generate(&fold::rules(&typed)),
    }
}

/// The version the `tel N;` line names. N is written as a bare `1` or `2`:
/// the lexer also reads `2s`, `2_` or `0002` as numbers, and a version line
/// has one spelling, as a program has one encoding.
fn requested(parsed: &parser::Parsed, source: &str) -> Result<TelVersion, TelError> {
    let Some((pos, n)) = parsed.version else { return Ok(TelVersion::V1) };
    let written: String = source
        .lines()
        .nth(pos.line.saturating_sub(1))
        .map(|line| {
            line.chars().skip(pos.col.saturating_sub(1)).take_while(|c| c.is_alphanumeric() || *c == '_').collect()
        })
        .unwrap_or_default();
    match (written.as_str(), n) {
        ("1", 1) => Ok(TelVersion::V1),
        ("2", 2) => Ok(TelVersion::V2),
        (_, 1 | 2) => Err(TelError::at(pos, format!("write the version as `tel {n};`, not `tel {written};`"))),
        _ => Err(TelError::at(pos, format!("unsupported TEL version {written}: this compiler knows 1 and 2"))),
    }
}
