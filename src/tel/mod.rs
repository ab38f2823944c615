//! TEL, the Temporal Effect Language: a small textual language for resource
//! logic that compiles to VM programs. The language is described with
//! examples in `docs/TEL.md`.
//!
//! source → [`lexer`] → tokens → [`parser`] → rules → [`check`] (names and
//! types) → [`codegen`] → [`Program`]. Every error carries the line and
//! column where it was found and prints as `LINE:COL: message`.

mod ast;
mod check;
mod codegen;
mod error;
mod lexer;
mod parser;

pub use error::TelError;

use crate::vm::Program;

/// Compile TEL source to a validated VM program.
pub fn compile(source: &str) -> Result<Program, TelError> {
    let tokens = lexer::lex(source)?;
    let rules = parser::parse(&tokens)?;
    let typed = check::check(&rules)?;
    codegen::generate(&typed)
}
