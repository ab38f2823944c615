//! `cvm tel compile FILE` and `cvm tel check FILE`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use causality_vm::tel::{self, TelError};
use causality_vm::vm::Program;
use causality_vm::ContentId;

use crate::Globals;

#[derive(clap::Subcommand)]
pub enum TelCommand {
    /// Compile a TEL file: print the program's ContentId and its disassembly.
    Compile {
        /// The TEL source file.
        file: PathBuf,
        /// Also write the encoded program (the bytes its ContentId hashes) here.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Check a TEL file for errors without printing the program.
    Check {
        /// The TEL source file.
        file: PathBuf,
    },
}

pub fn run(globals: &Globals, cmd: TelCommand) -> anyhow::Result<i32> {
    match cmd {
        TelCommand::Compile { file, out } => {
            let Some(program) = compile_file(globals, &file)? else { return Ok(1) };
            let encoding = program.encode();
            let id = ContentId::of_encoding(&encoding);
            if let Some(out) = &out {
                std::fs::write(out, &encoding).with_context(|| format!("writing {}", out.display()))?;
            }
            if globals.json {
                let json = serde_json::json!({
                    "file": file.display().to_string(),
                    "content_id": id.to_string(),
                    "size": encoding.len(),
                    "instructions": program.instructions().len(),
                    "disassembly": program.disassemble(),
                });
                println!("{}", serde_json::to_string_pretty(&json)?);
            } else {
                println!("{id}");
                print!("{}", program.disassemble());
            }
            Ok(0)
        }
        TelCommand::Check { file } => {
            let Some(program) = compile_file(globals, &file)? else { return Ok(1) };
            if globals.json {
                let json = serde_json::json!({ "file": file.display().to_string(), "ok": true,
                    "content_id": ContentId::of_encoding(&program.encode()).to_string() });
                println!("{json}");
            } else if !globals.quiet {
                println!("{}: ok ({} instructions)", file.display(), program.instructions().len());
            }
            Ok(0)
        }
    }
}

/// The compiled program, or `None` after printing the TEL error (with the
/// file, line and column, and the offending line).
fn compile_file(globals: &Globals, file: &Path) -> anyhow::Result<Option<Program>> {
    let source = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    match tel::compile(&source) {
        Ok(program) => Ok(Some(program)),
        Err(err) => {
            report(globals, file, &source, &err);
            Ok(None)
        }
    }
}

fn report(globals: &Globals, file: &Path, source: &str, err: &TelError) {
    if globals.json {
        let json = serde_json::json!({ "file": file.display().to_string(), "ok": false,
            "error": { "line": err.line, "column": err.col, "message": err.message } });
        println!("{json}");
    } else {
        eprintln!("{}:{}", file.display(), err.render(source));
    }
}
