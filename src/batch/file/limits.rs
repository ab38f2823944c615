//! What a batch may carry: every name within what the encodings hold, and
//! every field a logic program reads within what the VM can address, so
//! nothing is truncated or silently out of a program's sight.

use std::collections::BTreeMap;

use crate::context::check_name;
use crate::resource::{NewResource, Operation, ResourceUpdate};
use crate::vm::memory::{MAX_ENV_ENTRIES, WINDOW};

/// A logic program sees each byte field through one window of its memory.
pub const MAX_FIELD_BYTES: usize = WINDOW as usize;
pub const MAX_KEY_BYTES: usize = 256;
pub const MAX_METADATA_ENTRIES: usize = 256;
pub const MAX_TRACE_ID_BYTES: usize = 1024;
pub const MAX_OPS: usize = 1 << 20;
pub const MAX_GRANTS: usize = 64;
pub const MAX_PROGRAMS: usize = 256;
/// The most resources (inputs and outputs) one transfer may move: each one's
/// logic sees all the others, as many as a program can address. (Each run
/// also lists the others, so the work grows with the square of the count.)
pub const MAX_TRANSFER_RESOURCES: usize = crate::vm::memory::MAX_OTHERS as usize + 1;

/// `Err("path: reason")` for the first field over its limit.
pub(super) fn check(file: &super::BatchFile) -> Result<(), String> {
    if let Some(trace) = &file.trace_id {
        at("trace_id", check_len("the trace id", trace, MAX_TRACE_ID_BYTES))?;
    }
    at("environment", check_environment(&file.environment))?;
    let counted = [("ops", file.ops.len(), MAX_OPS), ("grants", file.grants.len(), MAX_GRANTS)];
    let programs = [
        ("programs", file.programs.len(), MAX_PROGRAMS),
        ("inline_programs", file.inline_programs.len(), MAX_PROGRAMS),
    ];
    for (field, count, max) in counted.into_iter().chain(programs) {
        if count > max {
            return Err(format!("{field}: {count} entries; at most {max} are allowed"));
        }
    }
    for (i, op) in file.ops.iter().enumerate() {
        check_op(op).map_err(|e| format!("ops[{i}].{e}"))?;
    }
    Ok(())
}

/// The environment a context may carry: as many entries as a logic program
/// can address, each key and value within a window.
pub fn check_environment(environment: &BTreeMap<String, String>) -> Result<(), String> {
    check_entries(environment, MAX_ENV_ENTRIES, "logic programs can address")
}

fn check_op(op: &Operation) -> Result<(), String> {
    match op {
        Operation::Create { resource } => at("resource", check_new(resource)),
        Operation::Update { changes, .. } => at("changes", check_update(changes)),
        Operation::Transfer { inputs, outputs } => {
            let moved = inputs.len() + outputs.len();
            if moved > MAX_TRANSFER_RESOURCES {
                return Err(format!(
                    "outputs: {} inputs and {} outputs; a transfer moves at most {MAX_TRANSFER_RESOURCES} resources \
                     (each one's logic sees all the others)",
                    inputs.len(),
                    outputs.len()
                ));
            }
            outputs.iter().enumerate().try_for_each(|(i, o)| check_new(o).map_err(|e| format!("outputs[{i}].{e}")))
        }
        Operation::Read { .. } | Operation::Delete { .. } | Operation::Verify { .. } => Ok(()),
    }
}

fn check_new(r: &NewResource) -> Result<(), String> {
    at("fungibility_domain", check_name("the fungibility domain", &r.fungibility_domain))?;
    at("controller", check_name("the controller", &r.controller))?;
    at("metadata", check_metadata(&r.metadata))?;
    at("contents", check_bytes(&r.contents))
}

fn check_update(u: &ResourceUpdate) -> Result<(), String> {
    if let Some(controller) = &u.controller {
        at("controller", check_name("the controller", controller))?;
    }
    if let Some(metadata) = &u.metadata {
        at("metadata", check_metadata(metadata))?;
    }
    match &u.contents {
        Some(contents) => at("contents", check_bytes(contents)),
        None => Ok(()),
    }
}

fn check_metadata(metadata: &BTreeMap<String, String>) -> Result<(), String> {
    check_entries(metadata, MAX_METADATA_ENTRIES, "a resource holds")
}

/// At most `max` entries (`holds` says whose limit that is), each key 1 to
/// [`MAX_KEY_BYTES`] bytes and each value within a window.
fn check_entries(entries: &BTreeMap<String, String>, max: usize, holds: &str) -> Result<(), String> {
    if entries.len() > max {
        return Err(format!("{} entries; {holds} {max}, so at most that many are allowed", entries.len()));
    }
    for (key, value) in entries {
        if key.is_empty() {
            return Err("an entry has an empty key".into());
        }
        check_len(&format!("the key {:?}", abbreviated(key)), key, MAX_KEY_BYTES)?;
        check_len(&format!("the value of {:?}", abbreviated(key)), value, MAX_FIELD_BYTES)?;
    }
    Ok(())
}

fn check_bytes(bytes: &[u8]) -> Result<(), String> {
    match bytes.len() > MAX_FIELD_BYTES {
        true => {
            Err(format!("{} bytes; logic programs see at most {MAX_FIELD_BYTES}, so no more are allowed", bytes.len()))
        }
        false => Ok(()),
    }
}

fn check_len(what: &str, text: &str, max: usize) -> Result<(), String> {
    match text.len() > max {
        true => Err(format!("{what} is {} bytes long; at most {max} are allowed", text.len())),
        false => Ok(()),
    }
}

fn at(field: &str, checked: Result<(), String>) -> Result<(), String> {
    checked.map_err(|e| format!("{field}: {e}"))
}

/// The first characters of a long text, for messages.
fn abbreviated(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}
