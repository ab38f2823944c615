//! `Hash` and `MerkleRoot` jobs on the server's hash backend.

use super::{BadPayload, Engines, WorkError};
use crate::hash::{HashError, HashPool};
use crate::service::proto::hash_message::Mode;
use crate::service::proto::{HashJob, HashResult, MerkleRootJob, MerkleRootResult};
use crate::ResolvedBackend;

/// A checked hash job, borrowed from the payload.
pub(super) enum Messages<'a> {
    OneByOne(Vec<Message<'a>>),
    /// Plain messages of `message_len` bytes, end to end.
    Packed {
        data: &'a [u8],
        message_len: usize,
    },
}

/// One message of a hash job, borrowed from the payload.
pub(super) enum Message<'a> {
    Plain(&'a [u8]),
    Keyed(&'a [u8; 32], &'a [u8]),
    DeriveKey(&'a str, &'a [u8]),
}

pub(super) fn parse_hash(job: &HashJob) -> Result<Messages<'_>, BadPayload> {
    if job.packed.is_empty() && job.message_len == 0 {
        return parse_messages(job).map(Messages::OneByOne);
    }
    if !job.messages.is_empty() {
        return Err(BadPayload::new("hash", "both messages and packed are set; send one or the other"));
    }
    let message_len = job.message_len as usize;
    if message_len == 0 {
        return Err(BadPayload::new("hash.message_len", "0; packed messages need their length"));
    }
    if !job.packed.len().is_multiple_of(message_len) {
        return Err(BadPayload::new(
            "hash.packed",
            format!("{} bytes, not a whole number of {message_len}-byte messages", job.packed.len()),
        ));
    }
    Ok(Messages::Packed { data: &job.packed, message_len })
}

fn parse_messages(job: &HashJob) -> Result<Vec<Message<'_>>, BadPayload> {
    job.messages
        .iter()
        .enumerate()
        .map(|(i, m)| match &m.mode {
            None => Ok(Message::Plain(&m.data)),
            Some(Mode::Key(key)) => {
                let key = <&[u8; 32]>::try_from(key.as_slice()).map_err(|_| {
                    BadPayload::new(format!("hash.messages[{i}].key"), format!("{} bytes; a key is 32", key.len()))
                })?;
                Ok(Message::Keyed(key, &m.data))
            }
            Some(Mode::DeriveKeyContext(context)) if context.is_empty() => {
                Err(BadPayload::new(format!("hash.messages[{i}].derive_key_context"), "empty; a context names its use"))
            }
            Some(Mode::DeriveKeyContext(context)) => Ok(Message::DeriveKey(context, &m.data)),
        })
        .collect()
}

pub(super) fn parse_leaves(job: &MerkleRootJob) -> Result<Vec<[u8; 32]>, BadPayload> {
    job.leaves
        .iter()
        .enumerate()
        .map(|(i, leaf)| {
            <[u8; 32]>::try_from(leaf.as_slice()).map_err(|_| {
                BadPayload::new(format!("merkle_root.leaves[{i}]"), format!("{} bytes; a leaf is 32", leaf.len()))
            })
        })
        .collect()
}

/// The digests in order, and where they were computed.
pub(super) fn run_hash(messages: &Messages<'_>, engines: &Engines) -> Result<(HashResult, ResolvedBackend), WorkError> {
    match messages {
        Messages::OneByOne(messages) => run_messages(messages, engines),
        Messages::Packed { data, message_len } => run_packed(data, *message_len, engines),
    }
}

fn run_packed(data: &[u8], message_len: usize, engines: &Engines) -> Result<(HashResult, ResolvedBackend), WorkError> {
    let (packed_digests, ran) = hash_stage(engines, "hashing", |pool| {
        let range = pool.hash_fixed(data, message_len)?;
        pool.flush()?;
        pool.get_range(range)
            .map(|digests| digests.as_flattened().to_vec())
            .ok_or(HashError::UnknownHandle(range.start))
    })?;
    Ok((HashResult { digests: Vec::new(), packed_digests }, ran))
}

fn run_messages(messages: &[Message<'_>], engines: &Engines) -> Result<(HashResult, ResolvedBackend), WorkError> {
    let (digests, ran) = hash_stage(engines, "hashing", |pool| {
        let bytes: usize = messages.iter().map(message_len).sum();
        pool.reserve(messages.len(), bytes);
        let handles: Vec<_> = messages
            .iter()
            .map(|m| match m {
                Message::Plain(data) => pool.hash(data),
                Message::Keyed(key, data) => pool.keyed_hash(key, data),
                Message::DeriveKey(context, material) => pool.derive_key(context, material),
            })
            .collect();
        pool.flush()?;
        handles.into_iter().map(|h| pool.get(h).map(|d| d.to_vec()).ok_or(HashError::UnknownHandle(h.0))).collect()
    })?;
    Ok((HashResult { digests, packed_digests: Vec::new() }, ran))
}

/// A job's hash stage on a pool of the server's backend, holding the device
/// for all of it (filing requests can flush too); returns where it ran (the
/// CPU if any of it fell back there).
fn hash_stage<T>(
    engines: &Engines,
    what: &str,
    work: impl FnOnce(&mut HashPool) -> Result<T, HashError>,
) -> Result<(T, ResolvedBackend), WorkError> {
    let mut pool = HashPool::on(&engines.hashing);
    let backend = pool.backend();
    let out = {
        let _device = engines.device_stage(backend);
        work(&mut pool).map_err(|e| WorkError::Internal(format!("{what}: {e}")))?
    };
    let ran = if pool.gpu_fallbacks() > 0 { ResolvedBackend::Cpu } else { backend };
    Ok((out, ran))
}

fn message_len(m: &Message<'_>) -> usize {
    match m {
        Message::Plain(d) | Message::Keyed(_, d) | Message::DeriveKey(_, d) => d.len(),
    }
}

pub(super) fn run_merkle(
    leaves: &[[u8; 32]],
    engines: &Engines,
) -> Result<(MerkleRootResult, ResolvedBackend), WorkError> {
    let (root, ran) = hash_stage(engines, "the Merkle root", |pool| pool.merkle_root(leaves))?;
    Ok((MerkleRootResult { root: root.to_vec() }, ran))
}
