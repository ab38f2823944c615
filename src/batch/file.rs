//! JSON batch files (format: docs/BATCH_FORMAT.md): parsing with precise
//! errors, and preparing a batch for execution. Everything that can fail is
//! checked before anything is written, so a bad file changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capability::{CapabilityError, CapabilityToken, KeyRing, RootKey};
use crate::content_id::ContentId;
use crate::context::{DomainId, ExecutionContext, Timestamp};
use crate::resource::Operation;
use crate::store::{RegisterStore, StoreError};
use crate::vm::Program;

/// The token field's value that asks for a root token minted from the
/// local key ring.
pub const MINT: &str = "mint";

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchFile {
    /// The domain the batch runs in.
    pub domain: DomainId,
    /// A capability token in text form, or "mint".
    pub token: String,
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Seconds since the Unix epoch: "now" for expiry and time conditions.
    pub timestamp: Timestamp,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Cross-domain grants in text form.
    #[serde(default)]
    pub grants: Vec<String>,
    /// Logic programs to store before the batch runs: TEL sources (`.tel`,
    /// compiled) or encoded programs, as paths relative to the batch file.
    #[serde(default)]
    pub programs: Vec<String>,
    pub ops: Vec<Operation>,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchFileError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax { path: String, line: usize, column: usize, message: String },
    #[error("{path}: field `{field}`: {reason}")]
    Token { path: String, field: String, reason: String },
    #[error("{path}: program {program}: {reason}")]
    Program { path: String, program: String, reason: String },
    #[error("key ring {path}: {reason}")]
    KeyRing { path: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BatchFile {
    pub fn read(path: &Path) -> Result<BatchFile, BatchFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BatchFileError::Read { path: path.display().to_string(), reason: e.to_string() })?;
        BatchFile::parse(&text, &path.display().to_string())
    }

    /// Parse batch-file text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<BatchFile, BatchFileError> {
        serde_json::from_str(text).map_err(|e| BatchFileError::Syntax {
            path: origin.to_string(),
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        })
    }
}

/// serde_json appends " at line L column C"; the error shows it up front.
/// Numbers beyond u64 reach serde as floats, so say what the range is.
fn strip_position(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    };
    if message.contains("expected u64") {
        format!("{message} (this field is a whole number from 0 to {})", u64::MAX)
    } else {
        message.to_string()
    }
}

/// A batch ready to run, with notes on what preparing it did.
pub struct PreparedBatch {
    pub ops: Vec<Operation>,
    pub ctx: ExecutionContext,
    pub keys: KeyRing,
    pub notices: Vec<String>,
    pub programs: Vec<(String, ContentId)>,
}

/// Check everything in `file` (tokens, grants, programs), then create the
/// domain's root key if the token is "mint" and the key ring has none, and
/// store the programs. `base` resolves program paths.
pub fn prepare(
    file: BatchFile,
    origin: &str,
    base: &Path,
    store: &mut RegisterStore,
    keys_path: &Path,
) -> Result<PreparedBatch, BatchFileError> {
    let token_err = |field: String, e: CapabilityError| BatchFileError::Token {
        path: origin.to_string(),
        field,
        reason: e.to_string(),
    };
    let mut keys = KeyRing::load_or_empty(keys_path)
        .map_err(|e| BatchFileError::KeyRing { path: keys_path.display().to_string(), reason: e.to_string() })?;
    let given = if file.token == MINT {
        None
    } else {
        Some(CapabilityToken::from_text(&file.token).map_err(|e| token_err("token".into(), e))?)
    };
    let grants = file
        .grants
        .iter()
        .enumerate()
        .map(|(i, g)| CapabilityToken::from_text(g).map_err(|e| token_err(format!("grants[{i}]"), e)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut compiled = Vec::with_capacity(file.programs.len());
    for program in &file.programs {
        compiled.push((
            program.clone(),
            load_program(&base.join(program)).map_err(|reason| BatchFileError::Program {
                path: origin.to_string(),
                program: program.clone(),
                reason,
            })?,
        ));
    }

    // Checks done: now the writes.
    let mut notices = Vec::new();
    let token = match given {
        Some(t) => t,
        None => {
            if !keys.contains(&file.domain) {
                keys.insert(file.domain.clone(), RootKey::generate());
                keys.save(keys_path).map_err(|e| BatchFileError::KeyRing {
                    path: keys_path.display().to_string(),
                    reason: e.to_string(),
                })?;
                notices.push(format!(
                    "created a root key for domain {} in {} (the domain had none)",
                    file.domain,
                    keys_path.display()
                ));
            }
            let root = keys.get(&file.domain).ok_or_else(|| BatchFileError::KeyRing {
                path: keys_path.display().to_string(),
                reason: format!("no root key for domain {}", file.domain),
            })?;
            CapabilityToken::mint_random(root, file.domain.clone())
        }
    };
    let mut programs = Vec::with_capacity(compiled.len());
    for (name, bytes) in compiled {
        programs.push((name, store.put_content(&bytes)?));
    }
    let trace_id = file.trace_id.unwrap_or_else(|| format!("{origin}@{}", file.timestamp));
    let ctx = ExecutionContext {
        domain_id: file.domain,
        trace_id,
        capability_token: token,
        timestamp: file.timestamp,
        environment: file.environment,
        cross_domain_grants: grants,
    };
    Ok(PreparedBatch { ops: file.ops, ctx, keys, notices, programs })
}

/// Read a program: TEL source is compiled; anything else must be a valid
/// program encoding. Returns the canonical encoding.
fn load_program(path: &PathBuf) -> Result<Vec<u8>, String> {
    let is_tel = path.extension().is_some_and(|e| e == "tel");
    if is_tel {
        let source = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let program = crate::tel::compile(&source).map_err(|e| format!("{}:{e}", path.display()))?;
        Ok(program.encode())
    } else {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Program::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(bytes)
    }
}
