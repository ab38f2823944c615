//! The append-only batch log: the durable commit of one batch is one framed
//! append to `store.log`, never a B-tree write.
//!
//! The frame format and how a file is read back (a torn tail told from
//! damage) are in [`frame`]. An append syncs twice: once the payload and
//! its trailing seal are written, then again once the leading seal is, so
//! a valid leading seal always stands before a durable payload.
//!
//! The delta comes first in a frame's payload so it can be written ahead
//! ([`BatchLog::write_ahead`]): a commit writes it, hashes it and starts its
//! writeback while the batch's state root is still being computed; the
//! append then writes only the record and the seals, and its syncs wait for
//! little more than those. A delta written ahead is not part of the log
//! until its seals are: a crash before leaves a torn tail, and a delta
//! never framed is overwritten by the next one or cut off.
//!
//! Opening for appending cuts a torn tail off (a commit cut short by a
//! crash: the store is at the previous batch) and rewrites a damaged
//! leading seal read from its trailing one; damage is an error naming the
//! file, the byte and the batches after it, and nothing is changed.
//! Read-only opens change nothing at all.
//!
//! A checkpoint starts by rotating the log: `store.log` is renamed to a
//! segment `store.log.<first batch in it>` and appends continue in a fresh
//! `store.log`, while the segment's batches are folded into redb on another
//! thread (`super::checkpoint`, from their encodings kept in memory) and the
//! segment is deleted once the checkpoint has committed. Segments are read
//! only on open. They hold only whole frames (rotated between appends), so
//! a torn tail in one is damage too.

pub(super) mod frame;

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::delta::EncodedDelta;
use super::{BatchDelta, BatchRecord, StoreError};
use frame::{FrameKey, RawFrame, Seal, Tail, SEAL};

pub(super) struct BatchLog {
    file: File,
    path: PathBuf,
    key: FrameKey,
    /// The whole frames' length: where the next frame starts.
    bytes: u64,
    /// A delta written ahead at `bytes + SEAL`, not framed yet.
    ahead: Option<Ahead>,
    /// Where the file ends: past `bytes` while a delta written ahead (maybe
    /// one given up on) lies there.
    end: u64,
    /// An append failed and its frame could not be cut back (and synced):
    /// it may be whole on disk, so whether its batch committed is known
    /// only after a reopen, and nothing more is appended until then.
    uncertain: bool,
    /// Tests: the next append fails after writing part of its frame.
    #[cfg(test)]
    pub fail_next_append: bool,
    /// Tests: cutting a failed frame back fails.
    #[cfg(test)]
    pub fail_cut_back: bool,
}

/// A delta written ahead and its checksum so far.
struct Ahead {
    ticket: AheadTicket,
    len: u64,
    hasher: blake3::Hasher,
}

/// Which delta [`BatchLog::write_ahead`] wrote: an append framing the same
/// delta with it writes only the rest of the frame. Unique in the process,
/// so no other log's (or reopened log's) delta is taken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AheadTicket(u64);

static TICKETS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

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
    /// Open (or create) the log for appending, returning its whole frames
    /// in order. A torn tail is cut off (with a warning), a damaged leading
    /// seal rewritten from the trailing one; damage is an error and changes
    /// nothing.
    pub fn open(path: &Path, key: FrameKey) -> Result<(BatchLog, Vec<Frame>), StoreError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io(path, e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(|e| io(path, e))?;
        let scan = frame::scan(&data, &key);
        let tail = scan.tail.map_err(|damage| damaged(path, damage))?;
        let frames = decode_all(path, &scan.frames)?;
        for raw in &scan.frames {
            if let Some(seal) = raw.repaired {
                tracing::warn!(path = %path.display(), offset = raw.offset, batch = seal.number,
                    "a frame's leading seal is damaged; its trailing seal and payload are whole: rewriting it");
                file.write_all_at(&seal.encode(&key), raw.offset as u64).map_err(|e| io(path, e))?;
            }
        }
        if let Tail::Torn { at } = tail {
            tracing::warn!(
                path = %path.display(),
                kept = at,
                discarded = data.len() - at,
                "batch log ends in a frame that was never finished (a commit cut short): discarding it"
            );
            file.set_len(at as u64).map_err(|e| io(path, e))?;
        }
        if tail != Tail::Clean || scan.frames.iter().any(|f| f.repaired.is_some()) {
            file.sync_all().map_err(|e| io(path, e))?;
        }
        let log = BatchLog {
            file,
            path: path.to_path_buf(),
            key,
            bytes: scan.end as u64,
            ahead: None,
            end: scan.end as u64,
            uncertain: false,
            #[cfg(test)]
            fail_next_append: false,
            #[cfg(test)]
            fail_cut_back: false,
        };
        Ok((log, frames))
    }

    /// Append one batch durably (written and fsynced when this returns Ok).
    /// Returns the frame's size.
    #[cfg(test)]
    pub fn append(&mut self, record: &BatchRecord, delta: &BatchDelta) -> Result<u64, StoreError> {
        self.append_encoded(record, &delta.encode(), None)
    }

    /// Write `delta` where the next frame's payload starts, hash it, and
    /// start its writeback, before the batch's record is known. Nothing is
    /// synced and the log is unchanged until an append frames it.
    pub fn write_ahead(&mut self, delta: &[u8]) -> Result<AheadTicket, StoreError> {
        self.check_certain()?;
        let ticket = AheadTicket(TICKETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let hasher = self.write_delta(delta)?;
        start_writeback(&self.file, self.bytes + SEAL as u64, delta.len() as u64);
        self.ahead = Some(Ahead { ticket, len: delta.len() as u64, hasher });
        Ok(ticket)
    }

    /// Write `delta` where the next frame's payload starts (dropping any
    /// delta written ahead before); returns its checksum so far.
    fn write_delta(&mut self, delta: &[u8]) -> Result<blake3::Hasher, StoreError> {
        self.ahead = None;
        let at = self.bytes + SEAL as u64;
        self.end = self.end.max(at + delta.len() as u64);
        self.file.write_all_at(delta, at).map_err(|e| io(&self.path, e))?;
        let mut hasher = blake3::Hasher::new();
        // Both cores: the delta of a 10k-transfer batch is megabytes.
        hasher.update_rayon(delta);
        Ok(hasher)
    }

    /// [`BatchLog::append`] with the delta already encoded (a commit encodes
    /// it while the batch is staged), and written ahead if `ahead` is the
    /// ticket of its [`BatchLog::write_ahead`] (else it is written here).
    pub fn append_encoded(
        &mut self,
        record: &BatchRecord,
        delta: &[u8],
        ahead: Option<AheadTicket>,
    ) -> Result<u64, StoreError> {
        self.check_certain()?;
        let hashed = match self.ahead.take() {
            Some(written) if Some(written.ticket) == ahead && written.len == delta.len() as u64 => Ok(written.hasher),
            _ => self.write_delta(delta),
        };
        let framed = hashed.and_then(|hasher| self.frame(record, hasher, delta.len() as u64));
        match framed {
            Ok(bytes) => Ok(bytes),
            // Cut back (durably) whatever part of the frame reached the file:
            // once its first sync is done, the frame reads whole from its
            // trailing seal, so a failure reported with it left there would
            // be a batch that commits at the next open.
            Err(e) if self.cut_back() => Err(e),
            Err(e) => {
                self.uncertain = true;
                Err(StoreError::Io {
                    path: self.path.display().to_string(),
                    reason: format!(
                        "{e}; and the frame could not be cut back off the log, so batch {} may have committed: \
                         reopen the store to know (nothing more is appended until then)",
                        record.number
                    ),
                })
            }
        }
    }

    /// Whether an append failed with its outcome unknown until a reopen.
    pub fn uncertain(&self) -> bool {
        self.uncertain
    }

    fn check_certain(&self) -> Result<(), StoreError> {
        match self.uncertain {
            true => Err(StoreError::Io {
                path: self.path.display().to_string(),
                reason: "an earlier append failed and could not be cut back: reopen the store before appending".into(),
            }),
            false => Ok(()),
        }
    }

    /// Write the rest of the frame around a delta written at its place:
    /// the record and the trailing seal, sync, then the leading seal, sync.
    /// `hasher` holds the checksum of the delta, `delta_len` bytes long.
    fn frame(&mut self, record: &BatchRecord, hasher: blake3::Hasher, delta_len: u64) -> Result<u64, StoreError> {
        let (seal, tail) = frame_tail(record, hasher, delta_len, &self.key);
        let bytes = (SEAL + tail.len()) as u64 + delta_len;
        let frame_end = self.bytes + bytes;
        // Bytes of a longer delta written ahead and given up on are cut off
        // first: after the trailing seal they would read as damage to a
        // reader scanning meanwhile (or to an open after a crash).
        let written = (if self.end > frame_end { self.file.set_len(frame_end) } else { Ok(()) })
            .and_then(|()| self.file.write_all_at(&tail, self.bytes + SEAL as u64 + delta_len))
            .and_then(|()| self.injected_failure())
            .and_then(|()| self.file.sync_data())
            .and_then(|()| self.file.write_all_at(&seal, self.bytes))
            .and_then(|()| self.file.sync_data());
        written.map_err(|e| io(&self.path, e))?;
        self.bytes = frame_end;
        self.end = frame_end;
        Ok(bytes)
    }

    /// Cut the file back to its whole frames, durably; false if that
    /// failed (a tail left behind is a torn frame to the next open, or, if
    /// its first sync was done, a whole one).
    fn cut_back(&mut self) -> bool {
        self.ahead = None;
        if self.end <= self.bytes {
            return true;
        }
        let cut =
            self.failed_cut_back().and_then(|()| self.file.set_len(self.bytes)).and_then(|()| self.file.sync_data());
        if cut.is_ok() {
            self.end = self.bytes;
        }
        cut.is_ok()
    }

    #[cfg(test)]
    fn failed_cut_back(&mut self) -> std::io::Result<()> {
        match self.fail_cut_back {
            true => Err(std::io::Error::other("injected cut failure")),
            false => Ok(()),
        }
    }

    #[cfg(not(test))]
    fn failed_cut_back(&mut self) -> std::io::Result<()> {
        Ok(())
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
        self.cut_back();
        if self.end > self.bytes {
            return Err(StoreError::Io {
                path: self.path.display().to_string(),
                reason: "could not cut a delta written ahead off the log before rotating it".into(),
            });
        }
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
                self.end = 0;
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

impl Drop for BatchLog {
    /// A delta written ahead and never framed is cut off, so the next open
    /// does not take it for a torn frame.
    fn drop(&mut self) {
        self.cut_back();
    }
}

/// The error for damage found in the log file `path`.
fn damaged(path: &Path, damage: frame::Damage) -> StoreError {
    StoreError::LogDamaged {
        path: path.display().to_string(),
        offset: damage.offset,
        reason: damage.reason,
        later: damage.later.iter().map(|&(number, _)| number).collect(),
    }
}

/// Decode raw frames; a seal's batch number must be its record's.
fn decode_all(path: &Path, raw: &[RawFrame<'_>]) -> Result<Vec<Frame>, StoreError> {
    raw.iter()
        .map(|raw| {
            let frame = decode(raw).map_err(|e| StoreError::LogDamaged {
                path: path.display().to_string(),
                offset: raw.offset,
                reason: format!("a whole frame does not decode: {e}"),
                later: Vec::new(),
            })?;
            match raw.number {
                Some(number) if number != frame.record.number => Err(StoreError::LogDamaged {
                    path: path.display().to_string(),
                    offset: raw.offset,
                    reason: format!("the frame is sealed as batch {number} but holds batch {}", frame.record.number),
                    later: Vec::new(),
                }),
                _ => Ok(frame),
            }
        })
        .collect()
}

fn decode(raw: &RawFrame<'_>) -> Result<Frame, StoreError> {
    let encoded = EncodedDelta::read(raw.delta.to_vec())?;
    Ok(Frame { record: BatchRecord::decode(raw.record)?, delta: encoded.decode()?, encoded, bytes: raw.bytes })
}

/// Read the log at `path` without changing anything (a read-only open): its
/// whole frames; a torn tail is left out, damage is an error. A missing
/// file is an empty log.
pub(super) fn read_log(path: &Path, key: FrameKey) -> Result<Vec<Frame>, StoreError> {
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path, e)),
    };
    let scan = frame::scan(&data, &key);
    scan.tail.map_err(|damage| damaged(path, damage))?;
    decode_all(path, &scan.frames)
}

/// Read a rotated segment and decode its frames. Any damage (a torn tail
/// too: a segment was written whole before it was rotated) is an error.
pub(super) fn read_segment(path: &Path, key: FrameKey) -> Result<Vec<Frame>, StoreError> {
    let data = std::fs::read(path).map_err(|e| io(path, e))?;
    let scan = frame::scan(&data, &key);
    match scan.tail.map_err(|damage| damaged(path, damage))? {
        Tail::Clean => decode_all(path, &scan.frames),
        Tail::Torn { at } => Err(damaged(
            path,
            frame::Damage {
                offset: at,
                reason: "a segment ends in an unfinished frame (segments hold whole frames only)".into(),
                later: Vec::new(),
            },
        )),
    }
}

/// What a file of the log holds, for `cvm store check` and recovery: its
/// whole frames (batch number, where each starts) and how it ends.
pub(super) struct FileReport {
    pub frames: Vec<(u64, usize)>,
    /// Frames (batch, offset) whose leading seal is damaged and was read
    /// from the trailing one: whole, rewritten by the next writer.
    pub repaired_seals: Vec<(u64, usize)>,
    pub tail: FileTail,
}

pub(super) enum FileTail {
    Clean,
    /// An unfinished last frame from `at` (a commit cut short).
    Torn {
        at: usize,
    },
    /// Damage at `offset`: nothing from there on can be trusted.
    Damaged {
        offset: usize,
        error: StoreError,
    },
}

/// Read `path` and report on it, whatever it holds.
pub(super) fn report(path: &Path, key: FrameKey) -> Result<FileReport, StoreError> {
    let data = std::fs::read(path).map_err(|e| io(path, e))?;
    let scan = frame::scan(&data, &key);
    let mut frames = Vec::with_capacity(scan.frames.len());
    let repaired_seals = scan.frames.iter().filter_map(|raw| Some((raw.repaired?.number, raw.offset))).collect();
    for raw in &scan.frames {
        match decode(raw) {
            Ok(frame) => frames.push((frame.record.number, raw.offset)),
            Err(e) => {
                let damage = frame::Damage {
                    offset: raw.offset,
                    reason: format!("a whole frame does not decode: {e}"),
                    later: vec![],
                };
                let tail = FileTail::Damaged { offset: raw.offset, error: damaged(path, damage) };
                return Ok(FileReport { frames, repaired_seals, tail });
            }
        }
    }
    let tail = match scan.tail {
        Ok(Tail::Clean) => FileTail::Clean,
        Ok(Tail::Torn { at }) => FileTail::Torn { at },
        Err(damage) => FileTail::Damaged { offset: damage.offset, error: damaged(path, damage) },
    };
    Ok(FileReport { frames, repaired_seals, tail })
}

/// Ask the kernel to start writing `len` bytes at `at` back to the device
/// now (Linux), so the commit's fsync finds them mostly written. Only a
/// hint: an error changes nothing.
fn start_writeback(file: &File, at: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(at), Ok(len)) = (i64::try_from(at), i64::try_from(len)) else { return };
        // SAFETY: a plain syscall on an open descriptor; no memory is passed.
        unsafe { libc::sync_file_range(file.as_raw_fd(), at, len, libc::SYNC_FILE_RANGE_WRITE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, at, len);
}

/// Make renames and new files in `file`'s directory durable.
pub(super) fn sync_dir(file: &Path) -> std::io::Result<()> {
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
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        let name = entry.file_name();
        let first = name.to_str().and_then(|n| n.strip_prefix(&prefix)).and_then(|n| n.parse::<u64>().ok());
        // Only files are segments (a directory of that name is not ours).
        if let (Some(first), true) = (first, entry.file_type().is_ok_and(|t| t.is_file())) {
            found.push((first, entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

/// A frame's leading seal and the end of its payload (the record, its
/// length, then the trailing seal), given the checksum of the delta before them.
fn frame_tail(
    record: &BatchRecord,
    mut hasher: blake3::Hasher,
    delta_len: u64,
    key: &FrameKey,
) -> ([u8; SEAL], Vec<u8>) {
    let mut tail = record.encode();
    let record_len = u32::try_from(tail.len()).expect("a batch record is far below 4 GiB");
    tail.extend_from_slice(&record_len.to_le_bytes());
    hasher.update(&tail);
    let seal =
        Seal { number: record.number, len: delta_len + tail.len() as u64, checksum: *hasher.finalize().as_bytes() }
            .encode(key);
    tail.extend_from_slice(&seal);
    (seal, tail)
}

#[cfg(test)]
pub(super) fn encode_frame(record: &BatchRecord, delta: &BatchDelta, key: &FrameKey) -> Vec<u8> {
    let delta = delta.encode();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&delta);
    let (seal, tail) = frame_tail(record, hasher, delta.len() as u64, key);
    [&seal[..], &delta, &tail].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: FrameKey = FrameKey([3; 32]);

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
        let (mut log, frames) = BatchLog::open(&path, KEY).unwrap();
        assert!(frames.is_empty());
        for n in 1..=3u8 {
            log.append(&record(n as u64), &delta(n)).unwrap();
        }
        drop(log);
        let (mut log, frames) = BatchLog::open(&path, KEY).unwrap();
        let numbers: Vec<u64> = frames.iter().map(|f| f.record.number).collect();
        assert_eq!(numbers, [1, 2, 3]);
        assert_eq!(frames[2].delta, delta(3));
        log.append(&record(4), &delta(4)).unwrap();
        let segment = segment_path(&path, 1);
        log.rotate(&segment).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        log.append(&record(5), &delta(5)).unwrap();
        drop(log);
        let (_, frames) = BatchLog::open(&path, KEY).unwrap();
        assert_eq!(frames.iter().map(|f| f.record.number).collect::<Vec<_>>(), [5]);
        assert_eq!(segments(&path).unwrap(), std::slice::from_ref(&segment));
        let rotated = read_segment(&segment, KEY).unwrap();
        assert_eq!(rotated.iter().map(|f| f.record.number).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(rotated[3].delta, delta(4));
    }

    #[test]
    fn segments_are_listed_in_batch_order_and_damage_in_one_is_an_error() {
        let (_dir, path, mut log) = fresh_log();
        for first in [9u64, 10, 2] {
            log.append(&record(first), &delta(1)).unwrap();
            log.rotate(&segment_path(&path, first)).unwrap();
        }
        std::fs::write(path.with_file_name("store.log.x"), b"not a segment").unwrap();
        let listed = segments(&path).unwrap();
        assert_eq!(listed, [2, 9, 10].map(|n| segment_path(&path, n)));
        let mut bytes = std::fs::read(&listed[0]).unwrap();
        bytes.pop();
        std::fs::write(&listed[0], &bytes).unwrap();
        let err = read_segment(&listed[0], KEY).err().expect("a torn segment is an error").to_string();
        assert!(err.contains("store.log.2") && err.contains("damaged at byte"), "{err}");
    }

    /// An empty log in a directory of its own (kept while the directory is).
    fn fresh_log() -> (tempfile::TempDir, PathBuf, BatchLog) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.log");
        let (log, _) = BatchLog::open(&path, KEY).unwrap();
        (dir, path, log)
    }

    fn numbers(frames: &[Frame]) -> Vec<u64> {
        frames.iter().map(|f| f.record.number).collect()
    }

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    /// A frame as logs wrote them before the delta came first: the
    /// length-prefixed record, then the delta, and no flag in the length.
    fn record_first_frame(record: &BatchRecord, delta: &BatchDelta) -> Vec<u8> {
        let mut payload = super::super::codec::Encoder::with_capacity(64);
        payload.bytes(&record.encode());
        payload.buf.extend_from_slice(&delta.encode());
        frame::encode_v1(&payload.buf, false)
    }

    #[test]
    fn frames_written_record_first_are_still_read_and_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.log");
        let old = [record_first_frame(&record(1), &delta(1)), record_first_frame(&record(2), &delta(2))].concat();
        std::fs::write(&path, &old).unwrap();
        let (mut log, frames) = BatchLog::open(&path, KEY).unwrap();
        assert_eq!(numbers(&frames), [1, 2]);
        assert_eq!((frames[1].delta.clone(), frames[1].record.trace_id.as_str()), (delta(2), "t2"));
        log.append(&record(3), &delta(3)).unwrap();
        drop(log);
        let (_, frames) = BatchLog::open(&path, KEY).unwrap();
        assert_eq!(numbers(&frames), [1, 2, 3]);
        assert_eq!(frames[2].delta, delta(3));
    }

    #[test]
    fn a_delta_written_ahead_is_framed_by_its_append() {
        let (_dir, path, mut log) = fresh_log();
        log.append(&record(1), &delta(1)).unwrap();
        let encoded = delta(7).encode();
        let ticket = log.write_ahead(&encoded).unwrap();
        // Not part of the log until framed: a crash now leaves batch 1.
        assert_eq!(numbers(&BatchLog::open(&path, KEY).unwrap().1), [1]);
        let (mut log, _) = BatchLog::open(&path, KEY).unwrap();
        let ticket_again = log.write_ahead(&encoded).unwrap();
        assert_ne!(ticket, ticket_again);
        let bytes = log.append_encoded(&record(2), &encoded, Some(ticket_again)).unwrap();
        assert_eq!(bytes, encode_frame(&record(2), &delta(7), &KEY).len() as u64);
        drop(log);
        let (_, frames) = BatchLog::open(&path, KEY).unwrap();
        assert_eq!(numbers(&frames), [1, 2]);
        assert_eq!(frames[1].delta, delta(7));
        let whole = encode_frame(&record(1), &delta(1), &KEY).len() as u64 + bytes;
        assert_eq!(file_len(&path), whole);
    }

    /// A delta written ahead that its append does not frame (another was
    /// written since, or the append brings a different one), or that is
    /// given up on, never reaches the log: overwritten, or cut off.
    #[test]
    fn a_delta_written_ahead_and_given_up_never_reaches_the_log() {
        let (_dir, path, mut log) = fresh_log();
        let (big, small) = (delta(40).encode(), delta(3).encode());
        // Superseded by a later write-ahead: the append writes its own delta.
        let first = log.write_ahead(&big).unwrap();
        log.write_ahead(&small).unwrap();
        log.append_encoded(&record(1), &big, Some(first)).unwrap();
        // A longer delta given up on, then a shorter one appended: cut to the frame.
        log.write_ahead(&big).unwrap();
        log.append_encoded(&record(2), &small, None).unwrap();
        // Given up on, then the log closed.
        log.write_ahead(&big).unwrap();
        drop(log);
        let (mut log, frames) = BatchLog::open(&path, KEY).unwrap();
        assert_eq!(numbers(&frames), [1, 2]);
        assert_eq!((frames[0].delta.clone(), frames[1].delta.clone()), (delta(40), delta(3)));
        let whole =
            (encode_frame(&record(1), &delta(40), &KEY).len() + encode_frame(&record(2), &delta(3), &KEY).len()) as u64;
        assert_eq!(file_len(&path), whole, "nothing follows the last frame");
        // Given up on, then the log rotated: the segment holds whole frames only.
        log.write_ahead(&big).unwrap();
        let segment = segment_path(&path, 1);
        log.rotate(&segment).unwrap();
        assert_eq!(numbers(&read_segment(&segment, KEY).unwrap()), [1, 2]);
        // A failed append after a write-ahead cuts the file back.
        let ticket = log.write_ahead(&small).unwrap();
        log.fail_next_append = true;
        assert!(log.append_encoded(&record(3), &small, Some(ticket)).is_err());
        assert_eq!(file_len(&path), 0);
        log.append(&record(3), &delta(3)).unwrap();
        drop(log);
        assert_eq!(numbers(&BatchLog::open(&path, KEY).unwrap().1), [3]);
    }

    /// An append that fails once its frame may be whole on disk, and whose
    /// frame cannot be cut back, says the batch may have committed and
    /// refuses every later append until the log is reopened (which tells).
    #[test]
    fn a_failed_append_that_cannot_be_cut_back_leaves_the_log_uncertain() {
        let (_dir, path, mut log) = fresh_log();
        log.append(&record(1), &delta(1)).unwrap();
        log.fail_next_append = true;
        log.fail_cut_back = true;
        let err = log.append(&record(2), &delta(2)).unwrap_err().to_string();
        assert!(err.contains("batch 2 may have committed"), "{err}");
        assert!(log.uncertain());
        let refused = log.append(&record(2), &delta(2)).unwrap_err().to_string();
        assert!(refused.contains("reopen the store before appending"), "{refused}");
        assert!(log.write_ahead(&delta(2).encode()).is_err());
        log.fail_cut_back = false;
        drop(log);
        let (log, frames) = BatchLog::open(&path, KEY).unwrap();
        assert!(!log.uncertain());
        assert_eq!(numbers(&frames), [1], "the failed frame was cut off when the log closed");
    }

    /// Every way a crash can leave the last append (the payload written in
    /// part or whole, the leading seal not yet or half written) reopens at
    /// the batch before or, with the payload durable, at the new one; the
    /// log then appends on.
    #[test]
    fn a_crash_mid_append_reopens_at_a_batch_boundary() {
        let (_dir, path, mut log) = fresh_log();
        log.append(&record(1), &delta(1)).unwrap();
        log.append(&record(2), &delta(2)).unwrap();
        drop(log);
        let whole = std::fs::read(&path).unwrap();
        let first = encode_frame(&record(1), &delta(1), &KEY).len();
        let mut unsealed = whole.clone();
        unsealed[first..first + SEAL].fill(0);
        let mut states: Vec<(Vec<u8>, u64)> =
            (first + SEAL..whole.len()).map(|cut| (unsealed[..cut].to_vec(), 1)).collect();
        states.push((unsealed.clone(), 2));
        for half in [1, 30, 63] {
            let mut half_sealed = whole.clone();
            half_sealed[first + half..first + SEAL].fill(0);
            states.push((half_sealed, 2));
        }
        for (bytes, head) in states {
            std::fs::write(&path, &bytes).unwrap();
            let (mut log, frames) = BatchLog::open(&path, KEY).unwrap();
            assert_eq!(numbers(&frames), (1..=head).collect::<Vec<_>>());
            let kept = if head == 1 { first } else { whole.len() } as u64;
            assert_eq!(file_len(&path), kept, "the torn tail is cut off");
            if head == 2 {
                assert_eq!(std::fs::read(&path).unwrap(), whole, "the leading seal is rewritten");
                continue;
            }
            // Appending after the cut continues a whole log.
            log.append(&record(2), &delta(2)).unwrap();
            drop(log);
            let (_, frames) = BatchLog::open(&path, KEY).unwrap();
            assert_eq!(numbers(&frames), [1, 2]);
        }
    }

    /// Damage is an error naming the file and the byte, and opening
    /// changes nothing: not the damaged frame, not the frames after it.
    #[test]
    fn damage_is_an_error_and_changes_nothing() {
        let (_dir, path, mut log) = fresh_log();
        for n in 1..=4 {
            log.append(&record(n), &delta(n as u8)).unwrap();
        }
        drop(log);
        let whole = std::fs::read(&path).unwrap();
        let second = encode_frame(&record(1), &delta(1), &KEY).len();
        for at in [second + SEAL + 5, whole.len() - SEAL - 2] {
            let mut flipped = whole.clone();
            flipped[at] ^= 0x01;
            std::fs::write(&path, &flipped).unwrap();
            let err = BatchLog::open(&path, KEY).err().expect("damage is an error").to_string();
            assert!(err.contains("store.log") && err.contains("damaged at byte"), "{err}");
            assert_eq!(std::fs::read(&path).unwrap(), flipped, "nothing changed");
            assert!(read_log(&path, KEY).is_err());
        }
        // A damaged seal is read past from the other one; a writer rewrites it.
        let mut flipped = whole.clone();
        flipped[second + 16] ^= 0x01;
        std::fs::write(&path, &flipped).unwrap();
        assert_eq!(numbers(&read_log(&path, KEY).unwrap()), [1, 2, 3, 4]);
        assert_eq!(std::fs::read(&path).unwrap(), flipped, "a read-only open changes nothing");
        drop(BatchLog::open(&path, KEY).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), whole, "a writer rewrites the seal");
        // Cut inside the last frame after its leading seal: truncation, not a crash.
        std::fs::write(&path, &whole[..whole.len() - 10]).unwrap();
        let err = BatchLog::open(&path, KEY).err().expect("truncation is damage").to_string();
        assert!(err.contains("truncated"), "{err}");
    }
}
