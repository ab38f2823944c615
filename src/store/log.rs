//! The append-only batch log: the durable commit of one batch is one framed
//! append to `store.log` followed by an fsync, never a B-tree write.
//!
//! Frame: payload length (u64 LE) ‖ BLAKE3(payload) ‖ payload, where the
//! payload is the batch's [`BatchRecord`] encoding (length-prefixed) followed
//! by its [`BatchDelta`] encoding. A crash can only leave the last frame torn
//! (short, or with a checksum that does not match): opening discards it and
//! truncates the file to the last whole frame, so the store is at the
//! previous batch.
//!
//! A checkpoint starts by rotating the log: `store.log` is renamed to a
//! segment `store.log.<first batch in it>` and appends continue in a fresh
//! `store.log`, while the segment's batches are folded into redb on another
//! thread (`super::checkpoint`, from their encodings kept in memory) and the
//! segment is deleted once the checkpoint has committed. Segments are read
//! only on open.
//! Segments hold only whole frames (they are rotated between appends), so
//! damage in one is an error, never a torn tail.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::codec::{Decoder, Encoder};
use super::delta::EncodedDelta;
use super::{BatchDelta, BatchRecord, StoreError};

const HEADER: usize = 8 + 32;

pub(super) struct BatchLog {
    file: File,
    path: PathBuf,
    bytes: u64,
    /// Tests: the next append fails after writing part of its frame.
    #[cfg(test)]
    pub fail_next_append: bool,
}

/// One whole frame read back from the log.
pub(super) struct Frame {
    pub record: BatchRecord,
    pub delta: BatchDelta,
    /// The delta as encoded, for the checkpoint.
    pub encoded: EncodedDelta,
    pub bytes: u64,
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io { path: path.display().to_string(), reason: e.to_string() }
}

impl BatchLog {
    /// Open (or create) the log, returning its whole frames in order. A torn
    /// tail is cut off (and reported with a warning).
    pub fn open(path: &Path) -> Result<(BatchLog, Vec<Frame>), StoreError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io(path, e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(|e| io(path, e))?;
        let mut frames = Vec::new();
        let mut at = 0usize;
        while let Some((payload, next)) = whole_frame(&data, at) {
            frames.push(RawFrame::split(payload, next - at)?.decode()?);
            at = next;
        }
        if at < data.len() {
            tracing::warn!(
                path = %path.display(),
                kept = at,
                discarded = data.len() - at,
                "batch log ends in a torn frame (a crash during a commit): discarding it"
            );
            file.set_len(at as u64).map_err(|e| io(path, e))?;
            file.sync_all().map_err(|e| io(path, e))?;
        }
        file.seek(SeekFrom::End(0)).map_err(|e| io(path, e))?;
        let log = BatchLog {
            file,
            path: path.to_path_buf(),
            bytes: at as u64,
            #[cfg(test)]
            fail_next_append: false,
        };
        Ok((log, frames))
    }

    /// Append one batch durably (written and fsynced when this returns Ok).
    /// Returns the frame's size.
    #[cfg(test)]
    pub fn append(&mut self, record: &BatchRecord, delta: &BatchDelta) -> Result<u64, StoreError> {
        self.append_encoded(record, &delta.encode())
    }

    /// [`BatchLog::append`] with the delta already encoded (a commit encodes
    /// it while the batch is staged). The parts are written in place: the
    /// delta is megabytes, and copying it into one frame buffer cost as much
    /// as writing it.
    pub fn append_encoded(&mut self, record: &BatchRecord, delta: &[u8]) -> Result<u64, StoreError> {
        let (header, payload) = frame_head(record, delta);
        let written = self
            .file
            .write_all(&header)
            .and_then(|()| self.file.write_all(&payload))
            .and_then(|()| self.injected_failure())
            .and_then(|()| self.file.write_all(delta))
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Cut back whatever part of the frame reached the file so the log stays whole.
            let _ = self.file.set_len(self.bytes);
            let _ = self.file.seek(SeekFrom::End(0));
            return Err(io(&self.path, e));
        }
        let bytes = (header.len() + payload.len() + delta.len()) as u64;
        self.bytes += bytes;
        Ok(bytes)
    }

    #[cfg(test)]
    fn injected_failure(&mut self) -> std::io::Result<()> {
        match std::mem::take(&mut self.fail_next_append) {
            true => Err(std::io::Error::other("injected append failure")),
            false => Ok(()),
        }
    }

    #[cfg(not(test))]
    fn injected_failure(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    /// Rename the log to `segment` and continue in a fresh, empty file at
    /// the log's path; both names are synced into the directory before the
    /// next append can rely on them.
    pub fn rotate(&mut self, segment: &Path) -> Result<(), StoreError> {
        std::fs::rename(&self.path, segment).map_err(|e| io(&self.path, e))?;
        let fresh =
            OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&self.path).and_then(|file| {
                sync_dir(&self.path)?;
                Ok(file)
            });
        match fresh {
            Ok(file) => {
                self.file = file;
                self.bytes = 0;
                Ok(())
            }
            Err(e) => {
                // Keep appending to the old file under its old name.
                let _ = std::fs::rename(segment, &self.path);
                Err(io(&self.path, e))
            }
        }
    }
}

/// Make renames and new files in `file`'s directory durable.
fn sync_dir(file: &Path) -> std::io::Result<()> {
    match file.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

/// The segment that a log rotated at batch `first` becomes.
pub(super) fn segment_path(log: &Path, first: u64) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{first}"));
    log.with_file_name(name)
}

/// The rotated segments of `log` not yet folded into a checkpoint, oldest first.
pub(super) fn segments(log: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let dir = log.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let prefix = format!("{}.", log.file_name().unwrap_or_default().to_string_lossy());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let name = entry.file_name();
        let first = name.to_str().and_then(|n| n.strip_prefix(&prefix)).and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            found.push((first, entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

/// A whole frame in place: its size, its record's encoding and its delta's.
pub(super) struct RawFrame<'a> {
    pub bytes: u64,
    pub record: &'a [u8],
    pub delta: &'a [u8],
}

impl<'a> RawFrame<'a> {
    /// The checksummed `payload` of a frame `bytes` long: the length-prefixed
    /// record, then the delta.
    fn split(payload: &'a [u8], bytes: usize) -> Result<Self, StoreError> {
        let mut d = Decoder::new(payload, "batch log frame");
        let record = d.slice()?;
        Ok(RawFrame { bytes: bytes as u64, record, delta: d.rest() })
    }

    fn decode(&self) -> Result<Frame, StoreError> {
        let encoded = EncodedDelta::read(self.delta.to_vec())?;
        Ok(Frame { record: BatchRecord::decode(self.record)?, delta: encoded.decode()?, encoded, bytes: self.bytes })
    }
}

/// Every frame of a rotated segment's bytes. Any damage is an error: a
/// segment was written whole before it was rotated.
pub(super) fn segment_frames<'a>(path: &Path, data: &'a [u8]) -> Result<Vec<RawFrame<'a>>, StoreError> {
    let mut frames = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let Some((payload, next)) = whole_frame(data, at) else {
            return Err(StoreError::Corrupt {
                what: format!("batch log segment {}", path.display()),
                offset: at,
                reason: "a frame is truncated or fails its checksum".into(),
            });
        };
        frames.push(RawFrame::split(payload, next - at)?);
        at = next;
    }
    Ok(frames)
}

/// Read a rotated segment and decode its frames.
pub(super) fn read_segment(path: &Path) -> Result<Vec<Frame>, StoreError> {
    let data = std::fs::read(path).map_err(|e| io(path, e))?;
    segment_frames(path, &data)?.iter().map(RawFrame::decode).collect()
}

/// A frame's header (length ‖ checksum) and the start of its payload (the
/// length-prefixed record); the encoded delta follows them.
fn frame_head(record: &BatchRecord, delta: &[u8]) -> ([u8; HEADER], Vec<u8>) {
    let mut payload = Encoder::with_capacity(512);
    payload.bytes(&record.encode());
    let len = payload.buf.len() + delta.len();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&payload.buf);
    // Both cores: the delta of a 10k-transfer batch is about 5 MB.
    hasher.update_rayon(delta);
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(&(len as u64).to_le_bytes());
    header[8..].copy_from_slice(hasher.finalize().as_bytes());
    (header, payload.buf)
}

#[cfg(test)]
pub(super) fn encode_frame(record: &BatchRecord, delta: &BatchDelta) -> Vec<u8> {
    let delta = delta.encode();
    let (header, payload) = frame_head(record, &delta);
    [&header[..], &payload, &delta].concat()
}

/// The payload of the whole, checksum-valid frame at `at`, and where the next starts.
fn whole_frame(data: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let header = data.get(at..at.checked_add(HEADER)?)?;
    let len = usize::try_from(u64::from_le_bytes(header[..8].try_into().ok()?)).ok()?;
    let end = (at + HEADER).checked_add(len)?;
    let payload = data.get(at + HEADER..end)?;
    (blake3::hash(payload).as_bytes() == &header[8..]).then_some((payload, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(number: u64) -> BatchRecord {
        BatchRecord {
            number,
            trace_id: format!("t{number}"),
            state_root_after: [number as u8; 32],
            ..Default::default()
        }
    }

    fn delta(n: u8) -> BatchDelta {
        BatchDelta { upserts: Vec::new(), removed: Vec::new(), nullifiers: vec![[n; 32]; n as usize] }
    }

    #[test]
    fn frames_round_trip_and_reopen_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.log");
        let (mut log, frames) = BatchLog::open(&path).unwrap();
        assert!(frames.is_empty());
        for n in 1..=3u8 {
            log.append(&record(n as u64), &delta(n)).unwrap();
        }
        drop(log);
        let (mut log, frames) = BatchLog::open(&path).unwrap();
        let numbers: Vec<u64> = frames.iter().map(|f| f.record.number).collect();
        assert_eq!(numbers, [1, 2, 3]);
        assert_eq!(frames[2].delta, delta(3));
        log.append(&record(4), &delta(4)).unwrap();
        let segment = segment_path(&path, 1);
        log.rotate(&segment).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        log.append(&record(5), &delta(5)).unwrap();
        drop(log);
        let (_, frames) = BatchLog::open(&path).unwrap();
        assert_eq!(frames.iter().map(|f| f.record.number).collect::<Vec<_>>(), [5]);
        assert_eq!(segments(&path).unwrap(), std::slice::from_ref(&segment));
        let rotated = read_segment(&segment).unwrap();
        assert_eq!(rotated.iter().map(|f| f.record.number).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(rotated[3].delta, delta(4));
    }

    #[test]
    fn segments_are_listed_in_batch_order_and_damage_in_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.log");
        let (mut log, _) = BatchLog::open(&path).unwrap();
        for first in [9u64, 10, 2] {
            log.append(&record(first), &delta(1)).unwrap();
            log.rotate(&segment_path(&path, first)).unwrap();
        }
        std::fs::write(dir.path().join("store.log.x"), b"not a segment").unwrap();
        let listed = segments(&path).unwrap();
        assert_eq!(listed, [2, 9, 10].map(|n| segment_path(&path, n)));
        let mut bytes = std::fs::read(&listed[0]).unwrap();
        bytes.pop();
        std::fs::write(&listed[0], &bytes).unwrap();
        let err = read_segment(&listed[0]).err().expect("a torn segment is an error").to_string();
        assert!(err.contains("store.log.2") && err.contains("truncated or fails its checksum"), "{err}");
    }

    /// Every possible torn write of the last frame (each truncation length,
    /// and a flipped byte anywhere in it) is discarded; earlier frames stay.
    #[test]
    fn torn_tail_is_discarded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.log");
        let (mut log, _) = BatchLog::open(&path).unwrap();
        log.append(&record(1), &delta(1)).unwrap();
        log.append(&record(2), &delta(2)).unwrap();
        drop(log);
        let whole = std::fs::read(&path).unwrap();
        let first = encode_frame(&record(1), &delta(1)).len();
        let mut damaged: Vec<Vec<u8>> = (first..whole.len()).map(|cut| whole[..cut].to_vec()).collect();
        for i in first..whole.len() {
            let mut flipped = whole.clone();
            flipped[i] ^= 0x40;
            damaged.push(flipped);
        }
        for bytes in damaged {
            std::fs::write(&path, &bytes).unwrap();
            let (mut log, frames) = BatchLog::open(&path).unwrap();
            assert_eq!(frames.iter().map(|f| f.record.number).collect::<Vec<_>>(), [1]);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), first as u64, "the torn tail is cut off");
            // Appending after the cut continues a whole log.
            log.append(&record(2), &delta(2)).unwrap();
            drop(log);
            let (_, frames) = BatchLog::open(&path).unwrap();
            assert_eq!(frames.iter().map(|f| f.record.number).collect::<Vec<_>>(), [1, 2]);
        }
    }
}
