//! What an operator does with a store that will not open: `cvm store check`
//! reads everything and lists each problem; `cvm store recover
//! --to-last-good` keeps the log up to the last batch before the first
//! damage and moves everything after it aside (never deleting it).

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable};

use crate::content_id::{hex_encode, ContentId};

use super::checkpoint::meta_u64;
use super::durable::builder;
use super::log::frame::FrameKey;
use super::log::{report, segments, sync_dir, FileTail};
use super::rows::ROWS_NAME;
use super::tables::{
    read_frame_key, read_spent_row, row_format, RowFormat, BATCHES, BATCHES_NAME, CONTENT, FRAME_KEY, HEAD, META, ROWS,
    SPENT, SPENT_NAME,
};
use super::{BatchRecord, RegisterStore, StoreError};

/// What `check` found.
#[derive(Debug, Default, serde::Serialize)]
pub struct CheckReport {
    /// The batch the tables hold everything up to.
    pub checkpoint: Option<u64>,
    /// The last batch, and the state root, once the whole store opened.
    pub head: Option<u64>,
    #[serde(with = "crate::resource::serde_hex_opt")]
    pub state_root: Option<Vec<u8>>,
    pub registers: Option<usize>,
    pub files: Vec<LogFileSummary>,
    /// Every problem found, each naming where; empty for a sound store.
    pub problems: Vec<String>,
    /// What the check could not do, and why (not problems).
    pub notes: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct LogFileSummary {
    pub path: PathBuf,
    /// The first and last batch of its whole frames.
    pub batches: Option<(u64, u64)>,
    pub status: String,
}

impl CheckReport {
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// At most this many problems of one table are listed one by one.
const LISTED: usize = 10;

/// Read the store in `dir` and report every problem found. Nothing is
/// changed, except that a database file left mid-commit by a crash is
/// repaired as any writer would (no batch changes). A writer may run beside.
pub fn check(dir: &Path) -> CheckReport {
    let mut report = CheckReport::default();
    let db_path = RegisterStore::file_in(dir);
    if !db_path.is_file() {
        report.problems.push(format!("{} does not exist", db_path.display()));
        return report;
    }
    // redb panics on some damaged pages: that is a problem found, too.
    let key = match super::durable::guarded(&db_path, || check_tables(&db_path, &mut report)) {
        Ok(key) => key,
        Err(e) => {
            report.problems.push(format!("{}: {e}", db_path.display()));
            FrameKey([0; 32])
        }
    };
    check_log(dir, key, &mut report);
    check_whole_file(&db_path, &mut report);
    if report.problems.is_empty() {
        match RegisterStore::open_read_only(dir) {
            Ok(store) => {
                report.head = Some(store.head());
                report.state_root = Some(store.state_root().to_vec());
                report.registers = Some(store.len());
            }
            Err(e) => report.problems.push(format!("opening the store: {e}")),
        }
    }
    report
}

/// redb's own check of the whole database file (its pages' checksums and
/// allocator state, which reading the rows does not cover): the one a
/// writer runs when it opens. Opening the store's file for writing would
/// change it, so the check runs on a copy in the temporary directory; a
/// copy the store's writer changed while it was made is not judged.
fn check_whole_file(path: &Path, report: &mut CheckReport) {
    let left_out = |why: String| format!("{}: redb's check of the whole file was left out: {why}", path.display());
    let stamp = |path: &Path| std::fs::metadata(path).and_then(|m| Ok((m.len(), m.modified()?)));
    let scratch = std::env::temp_dir().join(format!(
        "cvm-store-check-{}-{}.redb",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
    ));
    let before = stamp(path);
    if let Err(e) = std::fs::copy(path, &scratch) {
        let _ = std::fs::remove_file(&scratch);
        report.notes.push(left_out(format!("copying it to {} failed: {e}", scratch.display())));
        return;
    }
    if before.is_err() || before.ok() != stamp(path).ok() {
        let _ = std::fs::remove_file(&scratch);
        report.notes.push(left_out(
            "its writer changed it while it was copied (that writer ran the check when it opened it); run the \
             check again when the store is not in use"
                .into(),
        ));
        return;
    }
    // The writer's own open, errors and panics on damaged pages included.
    match super::durable::open_checked(&scratch, path) {
        Ok(db) => drop(db),
        Err(e) => report.problems.push(format!("redb's check of the whole file (so no writer can open it): {e}")),
    }
    let _ = std::fs::remove_file(&scratch);
}

/// Every row of the tables decoded and checked; returns the frame key.
fn check_tables(path: &Path, report: &mut CheckReport) -> Result<FrameKey, StoreError> {
    let db = super::durable::open_read_only(path)?;
    let rx = db.begin_read()?;
    let meta = rx.open_table(META)?;
    let format = row_format(&meta)?;
    if format == RowFormat::Plain {
        report.problems.push(
            "the tables' rows carry no checksums (written by an earlier version; the next writer adds them)".into(),
        );
    }
    report.checkpoint = Some(meta.get(HEAD)?.map(|v| meta_u64(v.value(), "head")).transpose()?.unwrap_or(0));
    let key = match meta.get(FRAME_KEY)? {
        Some(v) => FrameKey(read_frame_key(v.value())?),
        None => FrameKey([0; 32]),
    };
    let mut problems = Vec::new();
    for row in rx.open_table(ROWS)?.iter()? {
        let (k, v) = row?;
        let decoded = format.open(ROWS_NAME, k.value(), v.value()).and_then(|value| {
            let mut d = super::codec::Decoder::new(value, "register row");
            while !d.at_end() {
                d.register()?;
            }
            Ok(())
        });
        problems.extend(decoded.err().map(|e| format!("register row {}: {e}", k.value())));
    }
    for row in rx.open_table(SPENT)?.iter()? {
        let (k, v) = row?;
        let decoded = format.open(SPENT_NAME, k.value(), v.value()).and_then(read_spent_row);
        problems.extend(decoded.err().map(|e| format!("spent row of batch {}: {e}", k.value())));
    }
    for row in rx.open_table(BATCHES)?.iter()? {
        let (k, v) = row?;
        let decoded = format.open(BATCHES_NAME, k.value(), v.value()).and_then(BatchRecord::decode);
        match decoded {
            Ok(record) if record.number != k.value() => {
                problems.push(format!("the record filed as batch {} is batch {}", k.value(), record.number))
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("record of batch {}: {e}", k.value())),
        }
    }
    for row in rx.open_table(CONTENT)?.iter()? {
        let (k, v) = row?;
        let actual = ContentId::of_encoding(v.value());
        if actual.as_bytes().as_slice() != k.value() {
            problems.push(format!("content cid:blake3:{} holds bytes that hash to {actual}", hex_encode(k.value())));
        }
    }
    let count = problems.len();
    report.problems.extend(problems.into_iter().take(LISTED));
    if count > LISTED {
        report.problems.push(format!("… and {} more problems in the tables", count - LISTED));
    }
    Ok(key)
}

/// Every log file read, and the batches across them in sequence.
fn check_log(dir: &Path, key: FrameKey, report: &mut CheckReport) {
    let files = match log_files(dir) {
        Ok(files) => files,
        Err(e) => return report.problems.push(format!("listing the log: {e}")),
    };
    let mut last: Option<u64> = report.checkpoint;
    for path in files {
        let file = match super::log::report(&path, key) {
            Ok(file) => file,
            Err(e) => {
                report.problems.push(e.to_string());
                continue;
            }
        };
        for &(number, offset) in &file.frames {
            if let Some(previous) = last.filter(|&l| number > l && number != l + 1) {
                report.problems.push(format!(
                    "{} byte {offset}: batch {number} follows batch {previous}: batches are missing",
                    path.display()
                ));
            }
            last = Some(last.map_or(number, |l| l.max(number)));
        }
        for &(number, offset) in &file.repaired_seals {
            report.notes.push(format!(
                "{} byte {offset}: the leading seal of batch {number}'s frame is damaged; its trailing seal and \
                 payload are whole, so the batch is kept, and the next writer rewrites the seal (a damaged \
                 disk or a stray write: check the device)",
                path.display()
            ));
        }
        let status = match &file.tail {
            FileTail::Clean => "whole".to_string(),
            FileTail::Torn { at } => {
                format!("whole up to byte {at}; an unfinished frame after it (a commit cut short) is cut off on the next write")
            }
            FileTail::Damaged { error, .. } => {
                report.problems.push(error.to_string());
                "damaged".to_string()
            }
        };
        let batches = file.frames.first().zip(file.frames.last()).map(|(a, b)| (a.0, b.0));
        report.files.push(LogFileSummary { path, batches, status });
    }
}

/// The log's files in order: the segments, then `store.log` if it exists.
fn log_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let log = RegisterStore::log_in(dir);
    let mut files = segments(&log)?;
    if log.exists() {
        files.push(log);
    }
    Ok(files)
}

/// What `recover_to_last_good` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Recovery {
    /// The last batch the log keeps.
    pub last_good: u64,
    /// Where the bytes after the damage went (None: nothing was damaged).
    pub aside: Option<PathBuf>,
    pub moved: Vec<PathBuf>,
    /// Batches whose frames were found after the damage: they are no longer
    /// part of the store (their bytes are in `aside`).
    pub lost: Vec<u64>,
}

/// Cut the log at its first damage (or missing batch) and move everything
/// from there into `dir/recovered-<unix time>/`; the store then opens at
/// the last batch before it. Takes the store's writer lock while it works.
pub fn recover_to_last_good(dir: &Path) -> Result<Recovery, StoreError> {
    let db_path = RegisterStore::file_in(dir);
    if !db_path.is_file() {
        return Err(StoreError::Missing {
            dir: dir.display().to_string(),
            reason: "there is no store.redb: recovery works on the log of an existing store".into(),
        });
    }
    // The writer lock: no other process appends while the log is cut.
    let db = builder().set_check_integrity_on_open(true).open(&db_path)?;
    let rx = db.begin_read()?;
    let meta = rx.open_table(META)?;
    let head = meta.get(HEAD)?.map(|v| meta_u64(v.value(), "head")).transpose()?.unwrap_or(0);
    let key = match meta.get(FRAME_KEY)? {
        Some(v) => FrameKey(read_frame_key(v.value())?),
        None => FrameKey([0; 32]),
    };
    drop((meta, rx));
    let files = log_files(dir)?;
    let mut last_good = head;
    let mut cut: Option<(usize, usize)> = None;
    let mut lost = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let file = report(path, key)?;
        let is_log = i + 1 == files.len() && path == &RegisterStore::log_in(dir);
        for &(number, offset) in &file.frames {
            if cut.is_some() {
                lost.push(number);
            } else if number > head && number != last_good + 1 {
                cut = Some((i, offset));
                lost.push(number);
            } else {
                last_good = last_good.max(number);
            }
        }
        if cut.is_none() {
            cut = match file.tail {
                FileTail::Clean => None,
                FileTail::Torn { .. } if is_log => None,
                FileTail::Torn { at } => Some((i, at)),
                FileTail::Damaged { offset, error } => {
                    // The damaged frame held the next batch.
                    lost.push(last_good + 1);
                    if let StoreError::LogDamaged { later, .. } = &error {
                        lost.extend(later.iter().filter(|&&n| n > last_good));
                    }
                    Some((i, offset))
                }
            };
        }
    }
    lost.sort_unstable();
    lost.dedup();
    let Some((file, offset)) = cut else {
        return Ok(Recovery { last_good, ..Default::default() });
    };
    let aside = set_aside(dir, &files, file, offset)?;
    drop(db);
    let moved = files[file..].to_vec();
    Ok(Recovery { last_good, aside: Some(aside), moved, lost })
}

/// Move `files[file]` from `offset` on, and every later file, into a new
/// `recovered-<unix time>` directory in `dir`.
fn set_aside(dir: &Path, files: &[PathBuf], file: usize, offset: usize) -> Result<PathBuf, StoreError> {
    let io =
        |path: &Path, e: std::io::Error| StoreError::Io { path: path.display().to_string(), reason: e.to_string() };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut aside = dir.join(format!("recovered-{now}"));
    let mut n = 1;
    while aside.exists() {
        aside = dir.join(format!("recovered-{now}-{n}"));
        n += 1;
    }
    std::fs::create_dir(&aside).map_err(|e| io(&aside, e))?;
    let damaged = &files[file];
    let bytes = std::fs::read(damaged).map_err(|e| io(damaged, e))?;
    let name = damaged.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let copy = aside.join(format!("{name}.from-byte-{offset}"));
    std::fs::write(&copy, &bytes[offset.min(bytes.len())..])
        .and_then(|()| std::fs::File::open(&copy)?.sync_all())
        .map_err(|e| io(&copy, e))?;
    sync_dir(&copy).map_err(|e| io(&aside, e))?;
    if offset == 0 {
        std::fs::remove_file(damaged).map_err(|e| io(damaged, e))?;
    } else {
        let f = std::fs::OpenOptions::new().write(true).open(damaged).map_err(|e| io(damaged, e))?;
        f.set_len(offset as u64).and_then(|()| f.sync_all()).map_err(|e| io(damaged, e))?;
    }
    for later in &files[file + 1..] {
        let to = aside.join(later.file_name().unwrap_or_default());
        std::fs::rename(later, &to).map_err(|e| io(later, e))?;
    }
    sync_dir(&copy).map_err(|e| io(&aside, e))?;
    sync_dir(damaged).map_err(|e| io(dir, e))?;
    Ok(aside)
}
