//! JSON batch files (format: docs/BATCH_FORMAT.md): parsing with precise
//! errors, and preparing a batch for execution. Everything that can fail is
//! checked before anything is written, so a bad file changes nothing; the
//! programs a file brings are stored only when its batch commits.

mod limits;
mod locate;
mod programs;
mod strict;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::capability::{CapabilityError, CapabilityToken, KeyRing, RootKey};
use crate::content_id::ContentId;
use crate::context::{DomainId, ExecutionContext, Timestamp};
use crate::resource::Operation;

pub use limits::{
    check_environment, MAX_FIELD_BYTES, MAX_KEY_BYTES, MAX_METADATA_ENTRIES, MAX_OPS, MAX_TRANSFER_RESOURCES,
};
pub use programs::{inline_program, MAX_PROGRAM_BYTES};

/// The token field's value that asks for a root token minted from the
/// local key ring.
pub const MINT: &str = "mint";

/// The largest batch file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchFile {
    /// The domain the batch runs in.
    pub domain: DomainId,
    /// A capability token in text form, or "mint".
    pub token: String,
    #[serde(default)]
    pub trace_id: Option<String>,
    /// "Now" for expiry and time conditions: seconds since the Unix epoch,
    /// or `"now"` (the default): the time the batch is prepared.
    #[serde(default)]
    pub timestamp: BatchTime,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Cross-domain grants in text form.
    #[serde(default)]
    pub grants: Vec<String>,
    /// Logic programs the batch brings: TEL sources (`.tel`, compiled) or
    /// encoded programs, as paths inside the batch file's directory.
    #[serde(default)]
    pub programs: Vec<String>,
    /// Logic programs carried in the file itself (what a batch sent to
    /// `cvm serve` uses, having no directory to read from).
    #[serde(default)]
    pub inline_programs: Vec<InlineProgram>,
    pub ops: Vec<Operation>,
}

/// A program carried inline: TEL source, or an encoded program in hex.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct InlineProgram {
    /// What errors and notices call it.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
}

/// A batch's timestamp as written: a number, or `"now"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchTime {
    #[default]
    Now,
    At(Timestamp),
}

impl BatchTime {
    /// Seconds since the Unix epoch, `now` standing for "now".
    pub fn resolve(self, now: Timestamp) -> Timestamp {
        match self {
            BatchTime::Now => now,
            BatchTime::At(t) => t,
        }
    }
}

impl<'de> Deserialize<'de> for BatchTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            At(u64),
            Word(String),
        }
        match Written::deserialize(d).map_err(|_| {
            serde::de::Error::custom(format!("expected \"now\" or a whole number of seconds from 0 to {}", u64::MAX))
        })? {
            Written::At(t) => Ok(BatchTime::At(t)),
            Written::Word(w) if w == "now" => Ok(BatchTime::Now),
            Written::Word(w) => Err(serde::de::Error::custom(format!("expected \"now\" or a number, found {w:?}"))),
        }
    }
}

/// The current time, in seconds since the Unix epoch.
pub fn now() -> Timestamp {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Debug, thiserror::Error)]
pub enum BatchFileError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax { path: String, line: usize, column: usize, message: String },
    #[error("{path}: {field}: {reason}")]
    Invalid { path: String, field: String, reason: String },
    #[error("{path}: field `{field}`: {reason}")]
    Token { path: String, field: String, reason: String },
    #[error("{path}: program {program}: {reason}")]
    Program { path: String, program: String, reason: String },
    #[error(transparent)]
    KeyRing(#[from] CapabilityError),
}

impl BatchFile {
    /// Read and parse the batch file at `path` (`-`: standard input).
    pub fn read(path: &Path) -> Result<BatchFile, BatchFileError> {
        let origin = path.display().to_string();
        let read_err = |reason: String| BatchFileError::Read { path: origin.clone(), reason };
        let mut bytes = Vec::new();
        let read = match path == Path::new("-") {
            true => std::io::stdin().lock().take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes),
            false => std::fs::File::open(path).and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)),
        };
        read.map_err(|e| read_err(e.to_string()))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(read_err(format!("larger than {MAX_FILE_BYTES} bytes; split the batch")));
        }
        let text = String::from_utf8(bytes).map_err(|e| read_err(format!("not UTF-8 text: {e}")))?;
        BatchFile::parse(&text, &origin)
    }

    /// Parse batch-file text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<BatchFile, BatchFileError> {
        let syntax = |e: serde_json::Error| BatchFileError::Syntax {
            path: origin.to_string(),
            line: e.line().max(1),
            // serde_json says column 0 at the very start (an empty file); columns count from 1.
            column: e.column().max(1),
            message: strip_position(&e.to_string()),
        };
        if text.starts_with('\u{feff}') {
            return Err(BatchFileError::Syntax {
                path: origin.to_string(),
                line: 1,
                column: 1,
                message: "the file starts with a byte-order mark (U+FEFF), which JSON does not allow: save it as \
                          UTF-8 without one"
                    .into(),
            });
        }
        strict::check(text).map_err(syntax)?;
        let mut de = serde_json::Deserializer::from_str(text);
        let file: BatchFile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = e.path().to_string();
            if field == "." {
                return syntax(e.into_inner());
            }
            let e = e.into_inner();
            let message = strip_position(&e.to_string());
            // An operation's own error starts with the path inside it (taken
            // as one only where the text holds it: a metadata key may hold ": ").
            let inner = message.split_once(": ").filter(|(inner, _)| is_path(inner)).and_then(|(inner, rest)| {
                let full = format!("{field}.{inner}");
                locate::position(text, &full).map(|at| (full, rest.to_string(), at))
            });
            let (field, message, (line, column)) = match inner {
                Some(found) => found,
                None => {
                    let at = locate::position(text, &field).unwrap_or((e.line(), e.column()));
                    (field, message, at)
                }
            };
            BatchFileError::Syntax { path: origin.to_string(), line, column, message: format!("{field}: {message}") }
        })?;
        limits::check(&file).map_err(|e| {
            let (field, reason) = e.split_once(": ").unwrap_or(("batch", &e));
            BatchFileError::Invalid { path: origin.to_string(), field: field.to_string(), reason: reason.to_string() }
        })?;
        Ok(file)
    }
}

/// Whether `text` is a field path (`resource.quantity`, `outputs[1].nonce`).
fn is_path(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.[]".contains(&b))
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

/// Where a batch's domain key comes from when its token is "mint".
#[derive(Clone, Copy, Debug)]
pub enum Keys<'a> {
    /// The key ring file: a domain without a key gets one, stored there
    /// under the ring's lock.
    Create(&'a Path),
    /// The key ring file, only read: a domain without a key gets one for
    /// this run alone (simulation and verification write nothing).
    ReadOnly(&'a Path),
}

/// A program a batch brings: its name in the file, id and encoding.
#[derive(Clone, Debug)]
pub struct BatchProgram {
    pub name: String,
    pub id: ContentId,
    pub bytes: Arc<Vec<u8>>,
}

/// A batch ready to run, with notes on what preparing it did.
pub struct PreparedBatch {
    pub ops: Vec<Operation>,
    pub ctx: ExecutionContext,
    pub keys: KeyRing,
    pub notices: Vec<String>,
    /// Visible to the batch's operations; stored when it commits.
    pub programs: Vec<BatchProgram>,
}

impl PreparedBatch {
    /// The programs as content for [`super::BatchJob::programs`].
    pub fn content(&self) -> Vec<super::Content> {
        self.programs.iter().map(|p| (p.id, p.bytes.clone())).collect()
    }
}

/// A batch file with everything checked (tokens, grants, programs read and
/// compiled) and nothing written yet.
pub struct CheckedBatch {
    file: BatchFile,
    origin: String,
    given: Option<CapabilityToken>,
    grants: Vec<CapabilityToken>,
    programs: Vec<BatchProgram>,
}

impl CheckedBatch {
    /// The ids of the programs the batch brings (by path or inline).
    pub fn program_ids(&self) -> impl Iterator<Item = &ContentId> {
        self.programs.iter().map(|p| &p.id)
    }

    /// The timestamp as written (`"now"` is resolved when the batch runs).
    pub fn timestamp(&self) -> BatchTime {
        self.file.timestamp
    }
}

/// The most seconds a batch's timestamp may lie from the clock, either way,
/// unless the user says otherwise (`cvm run --max-clock-skew`, `cvm serve
/// --max-clock-skew`, `cvm check`).
pub const DEFAULT_MAX_CLOCK_SKEW: u64 = 300;

/// Why `timestamp` is refused `now`, when it lies more than `skew` seconds
/// from it, either way: a batch from the future would hold every later
/// batch back (committed timestamps never go back), and one from the past
/// could use a token that has expired since.
pub fn clock_skew_refusal(timestamp: Timestamp, now: Timestamp, skew: u64) -> Option<String> {
    if timestamp.abs_diff(now) <= skew {
        return None;
    }
    let (how, by) = match timestamp > now {
        true => ("ahead of", timestamp - now),
        false => ("behind", now - timestamp),
    };
    Some(format!(
        "the batch's timestamp {timestamp} is {by} s {how} this machine's clock ({now}); at most {skew} s are allowed"
    ))
}

/// Check everything in `file` (tokens, grants, programs: read from inside
/// `base`, the batch file's directory, and compiled). Writes nothing.
pub fn check(file: BatchFile, origin: &str, base: &Path) -> Result<CheckedBatch, BatchFileError> {
    let token_err = |field: String, e: CapabilityError| BatchFileError::Token {
        path: origin.to_string(),
        field,
        reason: e.to_string(),
    };
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
    let program_err = |(program, reason)| BatchFileError::Program { path: origin.to_string(), program, reason };
    let mut programs = programs::load_all(&file.programs, base).map_err(program_err)?;
    programs.extend(programs::load_inline(&file.inline_programs).map_err(program_err)?);
    Ok(CheckedBatch { file, origin: origin.to_string(), given, grants, programs })
}

/// [`check`] for a batch that brings its programs inline only (a service
/// job): program paths are refused, since there is no directory to read.
pub fn check_inline(file: BatchFile, origin: &str) -> Result<CheckedBatch, BatchFileError> {
    if let Some(name) = file.programs.first() {
        return Err(BatchFileError::Program {
            path: origin.to_string(),
            program: name.clone(),
            reason: "a batch sent to a server carries its programs in inline_programs, not as paths \
                     (`cvm submit` inlines them)"
                .into(),
        });
    }
    // No path is read: any directory will do.
    check(file, origin, Path::new("."))
}

impl CheckedBatch {
    /// The domain the batch's operations run in.
    pub fn domain(&self) -> &DomainId {
        &self.file.domain
    }

    /// About how many bytes of memory the checked batch holds beyond the
    /// bytes of its text (which bound its strings, contents and programs):
    /// its operations' fixed parts, and each map entry's node.
    pub fn resident_overhead(&self) -> usize {
        use crate::resource::{ConsumedInput, NewResource};
        use std::mem::size_of;
        const MAP_ENTRY: usize = 64;
        let resource = |r: &NewResource| size_of::<NewResource>() + MAP_ENTRY * r.metadata.len();
        let per_op = |op: &Operation| match op {
            Operation::Create { resource: r } => resource(r),
            Operation::Transfer { inputs, outputs } => {
                inputs.len() * size_of::<ConsumedInput>() + outputs.iter().map(resource).sum::<usize>()
            }
            Operation::Update { changes, .. } => MAP_ENTRY * changes.metadata.as_ref().map_or(0, |m| m.len()),
            _ => 0,
        };
        size_of::<Operation>() * self.file.ops.len()
            + self.file.ops.iter().map(per_op).sum::<usize>()
            + MAP_ENTRY * self.file.environment.len()
            + size_of::<BatchProgram>() * self.programs.len()
    }

    /// The batch ready to run: for a "mint" token, the domain's root key
    /// found or created as `keys` allows (the only write). The programs
    /// are stored when the batch commits.
    pub fn prepare(self, keys: Keys<'_>) -> Result<PreparedBatch, BatchFileError> {
        let CheckedBatch { file, origin, given, grants, programs } = self;
        let mut notices = Vec::new();
        let (token, ring) = match given {
            Some(token) => (token, load_ring(keys)?),
            None => {
                let (root, ring) = domain_key(keys, &file.domain, &mut notices)?;
                (CapabilityToken::mint_random(&root, file.domain.clone()), ring)
            }
        };
        let timestamp = file.timestamp.resolve(now());
        let trace_id = file.trace_id.unwrap_or_else(|| format!("{origin}@{timestamp}"));
        let ctx = ExecutionContext {
            domain_id: file.domain,
            trace_id,
            capability_token: token,
            timestamp,
            environment: file.environment,
            cross_domain_grants: grants,
        };
        Ok(PreparedBatch { ops: file.ops, ctx, keys: ring, notices, programs })
    }
}

/// [`check`], then [`CheckedBatch::prepare`].
pub fn prepare(file: BatchFile, origin: &str, base: &Path, keys: Keys<'_>) -> Result<PreparedBatch, BatchFileError> {
    check(file, origin, base)?.prepare(keys)
}

fn ring_path<'a>(keys: Keys<'a>) -> &'a Path {
    match keys {
        Keys::Create(path) | Keys::ReadOnly(path) => path,
    }
}

fn load_ring(keys: Keys<'_>) -> Result<KeyRing, BatchFileError> {
    Ok(KeyRing::load_or_empty(ring_path(keys))?)
}

/// The root key of `domain` for a minted token, and the key ring to verify with.
fn domain_key(
    keys: Keys<'_>,
    domain: &DomainId,
    notices: &mut Vec<String>,
) -> Result<(RootKey, KeyRing), BatchFileError> {
    match keys {
        Keys::Create(path) => {
            let (key, created, ring) = KeyRing::key_for(path, domain)?;
            if created {
                notices.push(format!(
                    "created a root key for domain {domain} in {} (the domain had none)",
                    path.display()
                ));
            }
            Ok((key, ring))
        }
        Keys::ReadOnly(path) => {
            let mut ring = KeyRing::load_or_empty(path)?;
            if let Some(key) = ring.get(domain) {
                return Ok((key.clone(), ring));
            }
            notices.push(format!(
                "domain {domain} has no root key in {}: this run uses a temporary one and writes nothing",
                path.display()
            ));
            let key = RootKey::generate();
            ring.insert(domain.clone(), key.clone());
            Ok((key, ring))
        }
    }
}

/// Where a batch file's relative program paths are resolved.
pub fn base_dir(batch_file: &Path) -> PathBuf {
    match batch_file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && batch_file != Path::new("-") => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
