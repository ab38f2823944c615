//! Fault injection: a small store's files damaged one byte (or cut) at a
//! time, each opened read-only and for writing. Every fault is refused
//! with an error or opens to the same store, or (a log cut exactly between
//! frames, which no check can tell from fewer commits) to an earlier batch
//! whose state root is the one that batch recorded. Never a silently
//! different store.
//!
//! CI runs a seeded sample; `CVM_FAULT_SWEEP=full` runs every byte of the
//! log and every non-zero byte of the database (minutes).

use crate::batch_support;

use std::path::Path;

use batch_support::*;
use causality_vm::resource::Operation;
use causality_vm::store::repair;
use causality_vm::store::{Access, BatchRecord, RegisterStore, StoreError, StoreOptions};
use rand::{Rng, SeedableRng};

/// Everything a reader of the store can see.
#[derive(Debug, PartialEq)]
struct Snapshot {
    head: u64,
    root: [u8; 32],
    registers: Vec<causality_vm::resource::ResourceRegister>,
    nullifiers: usize,
    history: Vec<BatchRecord>,
}

fn snapshot(store: &RegisterStore) -> Result<Snapshot, StoreError> {
    Ok(Snapshot {
        head: store.head(),
        root: store.state_root(),
        registers: store.registers().cloned().collect(),
        nullifiers: store.nullifier_count(),
        // A batch's commit time is known only once its frame is written, so
        // the log's copy of its record says 0 until a checkpoint stores the
        // real one: not part of what must survive.
        history: store
            .history(100)?
            .into_iter()
            .map(|mut record| {
                record.timings.commit_us = 0;
                record
            })
            .collect(),
    })
}

/// A crashed store (no close-time checkpoint) of `batches` batches, the
/// first `checkpointed` of them folded into the database, the rest only in
/// the log; its files are copied into the returned directory.
fn small_store(batches: usize, checkpointed: usize) -> (tempfile::TempDir, Snapshot) {
    store_left(batches, checkpointed, Close::Crash)
}

/// How the writer of a test store leaves it.
#[derive(Clone, Copy, PartialEq)]
enum Close {
    /// As a crash would: the database then needs repair at the next open.
    Crash,
    /// Closed: the database holds its allocator state, which only redb's
    /// check of the whole file reads.
    Clean,
}

fn store_left(batches: usize, checkpointed: usize, close: Close) -> (tempfile::TempDir, Snapshot) {
    let mut f = Fixture::new();
    let mut owned = Vec::new();
    for n in 0..batches {
        if n == checkpointed {
            f.store.checkpoint().unwrap();
        }
        let seed = n as u64 + 1;
        let fresh = f.resource("gold", 10, seed);
        match owned.pop() {
            // Spend the previous batch's resource into this one's.
            Some((id, owner)) => {
                let result = f.standard(&[transfer(vec![input(id, owner)], vec![fresh.clone()])]);
                assert_eq!(result.success_count, 1, "{:#?}", result.results);
            }
            None => {
                f.create_all(std::slice::from_ref(&fresh));
            }
        }
        owned.push((id_of(&fresh), seed));
    }
    let expected = snapshot(&f.store).unwrap();
    assert_eq!(expected.head, batches as u64);
    let dir = f.dir.path().to_path_buf();
    let placeholder = tempfile::tempdir().unwrap();
    let store = std::mem::replace(&mut f.store, RegisterStore::open(placeholder.path()).unwrap());
    match close {
        Close::Crash => std::mem::forget(store),
        Close::Clean => drop(store),
    }
    let copy = tempfile::tempdir().unwrap();
    copy_files(&dir, copy.path());
    (copy, expected)
}

fn copy_files(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Flip(usize),
    Cut(usize),
}

/// What opening the damaged store gave: an error, or what it holds.
fn outcome(dir: &Path, access: Access) -> Result<Snapshot, String> {
    let opened = std::panic::catch_unwind(|| {
        RegisterStore::open_as(dir, StoreOptions::default(), access)
            .and_then(|store| snapshot(&store))
            .map_err(|e| e.to_string())
    });
    opened.unwrap_or_else(|_| panic!("opening {} panicked", dir.display()))
}

/// An opened store is acceptable if it is the original, or (a log cut at a
/// frame boundary) the original at an earlier batch, with that batch's root.
fn acceptable(found: &Snapshot, expected: &Snapshot, fault: Fault, file: &str) -> bool {
    if found == expected {
        return true;
    }
    let cut_log = matches!(fault, Fault::Cut(_)) && file == "store.log";
    let record = expected.history.iter().find(|r| r.number == found.head);
    cut_log
        && found.head < expected.head
        && record.is_some_and(|r| r.state_root_after == found.root)
        && found.history.as_slice() == &expected.history[(expected.head - found.head) as usize..]
}

/// A copy of `pristine` with `fault` applied to `file`.
fn damaged_copy(pristine: &Path, file: &str, fault: Fault) -> tempfile::TempDir {
    let trial = tempfile::tempdir().unwrap();
    copy_files(pristine, trial.path());
    let path = trial.path().join(file);
    let mut bytes = std::fs::read(&path).unwrap();
    match fault {
        Fault::Flip(at) => bytes[at] ^= 0x5a,
        Fault::Cut(at) => bytes.truncate(at),
    }
    std::fs::write(&path, &bytes).unwrap();
    trial
}

/// Apply `fault` to `file` in a copy of `pristine`, then open the copy
/// read-only and for writing; panics on a silently different store.
fn try_fault(pristine: &Path, expected: &Snapshot, file: &str, fault: Fault) -> [bool; 2] {
    let trial = damaged_copy(pristine, file, fault);
    let log_before = std::fs::read(RegisterStore::log_in(trial.path())).unwrap();
    let mut refused = [false; 2];
    for (i, access) in [Access::ReadOnly, Access::Write].into_iter().enumerate() {
        match outcome(trial.path(), access) {
            Ok(found) => assert!(
                acceptable(&found, expected, fault, file),
                "{file} {fault:?} opened {access:?} to a different store: head {} (expected {})",
                found.head,
                expected.head
            ),
            Err(e) => {
                refused[i] = true;
                // `cvm store check`, on its own copy of the damage, must see it too.
                let report = repair::check(damaged_copy(pristine, file, fault).path());
                assert!(
                    !report.is_sound(),
                    "{file} {fault:?}: opening {access:?} failed ({e}) but the check finds it sound"
                );
                if access == Access::Write && file == "store.log" {
                    let after = std::fs::read(RegisterStore::log_in(trial.path())).unwrap();
                    assert_eq!(after, log_before, "{fault:?}: a refused open changed the log");
                }
            }
        }
    }
    refused
}

/// Positions to damage in `bytes`: all of them for a full sweep, else a
/// seeded sample (half of them among the non-zero bytes).
fn positions(bytes: &[u8], sample: usize, seed: u64) -> Vec<usize> {
    if std::env::var("CVM_FAULT_SWEEP").as_deref() == Ok("full") {
        return (0..bytes.len()).filter(|&i| bytes[i] != 0 || bytes.len() < 1 << 16).collect();
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let nonzero: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != 0).collect();
    (0..sample)
        .map(|k| match k % 2 == 0 && !nonzero.is_empty() {
            true => nonzero[rng.gen_range(0..nonzero.len())],
            false => rng.gen_range(0..bytes.len()),
        })
        .collect()
}

fn sweep(file: &str, flips: usize, cuts: usize, seed: u64, close: Close) {
    let (pristine, expected) = store_left(8, 5, close);
    let bytes = std::fs::read(pristine.path().join(file)).unwrap();
    let mut refused = 0;
    let mut tried = 0;
    let faults = positions(&bytes, flips, seed)
        .into_iter()
        .map(Fault::Flip)
        .chain(positions(&bytes, cuts, seed + 1).into_iter().map(Fault::Cut));
    for fault in faults {
        tried += 1;
        refused += try_fault(pristine.path(), &expected, file, fault).iter().filter(|r| **r).count();
    }
    println!("{file}: {tried} faults, {refused} refused opens of {}", 2 * tried);
}

#[test]
fn every_sampled_fault_in_the_log_is_refused_or_harmless() {
    sweep("store.log", 160, 40, 1, Close::Crash);
}

#[test]
fn every_sampled_fault_in_the_database_is_refused_or_harmless() {
    sweep("store.redb", 160, 20, 2, Close::Crash);
}

/// A closed database's allocator state is read by no row: a flip there
/// stops every writer, so `store check` must run redb's whole-file check.
#[test]
fn every_sampled_fault_in_a_closed_database_is_refused_or_harmless() {
    sweep("store.redb", 160, 20, 3, Close::Clean);
}

/// The case: one byte of frame 4 of 10 changed. Opening is an
/// error naming the byte and the batches after it, in either mode, and
/// changes nothing; recovery keeps batches 1 to 3 and moves the rest aside.
#[test]
fn damage_mid_log_is_refused_until_recovered_to_the_last_good_batch() {
    let (dir, expected) = small_store(10, 0);
    let log = RegisterStore::log_in(dir.path());
    let original = std::fs::read(&log).unwrap();
    let fourth = frame_starts(&original)[3];
    for at in [fourth + 64 + 7, fourth + 16] {
        let mut damaged = original.clone();
        damaged[at] ^= 1;
        // A seal's length field is damage only with the other seal damaged too.
        if at < fourth + 64 {
            let end = frame_starts(&original)[4];
            damaged[end - 64 + 16] ^= 1;
        }
        std::fs::write(&log, &damaged).unwrap();
        for access in [Access::ReadOnly, Access::Write] {
            let err = outcome(dir.path(), access).expect_err("damage is an error");
            assert!(err.contains(&format!("damaged at byte {fourth}")), "{err}");
            assert!(err.contains("batches 4 to 10") || err.contains("batches 5 to 10"), "{err}");
            assert_eq!(std::fs::read(&log).unwrap(), damaged, "nothing was changed");
        }
        let report = repair::check(dir.path());
        assert!(!report.is_sound() && report.problems.iter().any(|p| p.contains("damaged at byte")), "{report:?}");
    }
    let recovery = repair::recover_to_last_good(dir.path()).unwrap();
    assert_eq!(recovery.last_good, 3);
    assert_eq!(recovery.lost, (4..=10).collect::<Vec<u64>>());
    let aside = recovery.aside.expect("the damaged part was moved aside");
    let kept: Vec<_> = std::fs::read_dir(&aside).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read(&kept[0]).unwrap().len(), original.len() - fourth);
    let store = RegisterStore::open(dir.path()).unwrap();
    let third = &expected.history[7];
    assert_eq!((store.head(), store.state_root()), (3, third.state_root_after));
    drop(store);
    assert!(repair::check(dir.path()).is_sound());
}

/// Where each frame starts in a log of format-2 frames.
fn frame_starts(log: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at < log.len() {
        starts.push(at);
        let len = u64::from_le_bytes(log[at + 16..at + 24].try_into().unwrap()) as usize;
        at += len + 128;
    }
    starts
}

#[test]
fn read_only_opens_change_nothing_and_need_an_existing_store() {
    let (dir, expected) = small_store(4, 2);
    let log = RegisterStore::log_in(dir.path());
    // A commit cut short: bytes after the last frame.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(&[0; 64]);
    bytes.extend_from_slice(&[9; 300]);
    std::fs::write(&log, &bytes).unwrap();
    let files = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap()))
            .collect();
        all.sort();
        all
    };
    // The crash left the database mid-commit: the first reader has it
    // repaired (no batch changes); the log is never touched.
    let log_bytes = std::fs::read(&log).unwrap();
    assert_eq!(snapshot(&RegisterStore::open_read_only(dir.path()).unwrap()).unwrap(), expected);
    assert_eq!(std::fs::read(&log).unwrap(), log_bytes, "the unfinished frame is left in place");
    let before = files(dir.path());
    let readers: Vec<RegisterStore> = (0..3).map(|_| RegisterStore::open_read_only(dir.path()).unwrap()).collect();
    for reader in &readers {
        assert_eq!(snapshot(reader).unwrap(), expected);
        assert!(!reader.writable());
    }
    drop(readers);
    assert_eq!(files(dir.path()), before, "reading changed the files");

    let missing = dir.path().join("no-such-dir");
    let err = RegisterStore::open_read_only(&missing).err().unwrap().to_string();
    assert!(err.contains("does not exist"), "{err}");
    assert!(!missing.exists());
    let empty = tempfile::tempdir().unwrap();
    let err = RegisterStore::open_read_only(empty.path()).err().unwrap().to_string();
    assert!(err.contains("no store.redb"), "{err}");
}

#[test]
fn a_reader_opens_beside_the_writer_and_sees_its_commits() {
    let mut f = Fixture::new();
    let a = f.resource("gold", 5, 1);
    f.create_all(&[a]);
    let reader = RegisterStore::open_read_only(f.dir.path()).unwrap();
    assert_eq!((reader.head(), reader.state_root()), (1, f.store.state_root()));
    let b = f.resource("gold", 6, 2);
    f.create_all(&[b]);
    f.store.checkpoint().unwrap();
    let later = RegisterStore::open_read_only(f.dir.path()).unwrap();
    assert_eq!((later.head(), later.state_root()), (2, f.store.state_root()));
    assert_eq!(reader.head(), 1, "a reader keeps the state it opened");
    let err = RegisterStore::open(f.dir.path()).err().expect("a second writer is refused").to_string();
    assert!(err.contains("open for writing by pid"), "{err}");
}

#[test]
fn a_lost_database_beside_its_log_is_an_error_not_an_empty_store() {
    let (dir, _) = small_store(3, 0);
    std::fs::remove_file(RegisterStore::file_in(dir.path())).unwrap();
    let err = RegisterStore::open(dir.path()).err().expect("refused").to_string();
    assert!(err.contains("store.redb is missing") && err.contains("log"), "{err}");
    assert!(!RegisterStore::file_in(dir.path()).exists(), "no empty database was created");
}

/// After a clean close the log is empty; a database then deleted or
/// emptied is still refused, not replaced by a new empty store.
#[test]
fn a_database_lost_after_a_clean_close_is_an_error_not_an_empty_store() {
    let mut f = Fixture::new();
    let a = f.resource("gold", 5, 1);
    f.create_all(&[a]);
    let dir = f.dir.path().to_path_buf();
    let placeholder = tempfile::tempdir().unwrap();
    drop(std::mem::replace(&mut f.store, RegisterStore::open(placeholder.path()).unwrap()));
    let db = RegisterStore::file_in(&dir);
    let saved = std::fs::read(&db).unwrap();
    std::fs::write(&db, b"").unwrap();
    let err = RegisterStore::open(&dir).err().expect("refused").to_string();
    assert!(err.contains("store.redb is empty") && err.contains("batch log"), "{err}");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "nothing was written");
    std::fs::remove_file(&db).unwrap();
    let err = RegisterStore::open(&dir).err().expect("refused").to_string();
    assert!(err.contains("store.redb is missing"), "{err}");
    assert!(RegisterStore::open_read_only(&dir).is_err());
    assert!(!db.exists(), "no empty database was created");
    std::fs::write(&db, saved).unwrap();
    assert_eq!(RegisterStore::open(&dir).unwrap().head(), 1, "restored, it opens");
}

/// Content whose bytes no longer hash to its id is an error wherever it
/// is read, an operation using it as logic fails, and storing the right
/// bytes again repairs it.
#[test]
fn damaged_content_is_refused_and_storing_it_again_repairs_it() {
    let mut f = Fixture::new();
    let reject = causality_vm::vm::Program::new(
        vec![causality_vm::vm::Instruction::Reject { reason: causality_vm::vm::Reg::ALL[0], code: 7 }],
        Vec::new(),
    )
    .unwrap()
    .encode();
    let id = f.store.put_content(&reject).unwrap();
    let dir = f.dir.path().to_path_buf();
    f.reopen();
    let placeholder = tempfile::tempdir().unwrap();
    drop(std::mem::replace(&mut f.store, RegisterStore::open(placeholder.path()).unwrap()));
    {
        // Patch the stored program into one that accepts everything.
        let db = redb::Database::open(RegisterStore::file_in(&dir)).unwrap();
        let tx = db.begin_write().unwrap();
        let table: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("content");
        tx.open_table(table).unwrap().insert(id.as_bytes().as_slice(), accept_program().encode().as_slice()).unwrap();
        tx.commit().unwrap();
    }
    f.store = RegisterStore::open(&dir).unwrap();
    let err = f.store.content(&id).expect_err("damaged content is an error").to_string();
    assert!(err.contains(&id.to_string()) && err.contains("damaged"), "{err}");
    let guarded = f.resource_with_logic(id, "gold", 1, 9);
    let result = f.standard(&[Operation::Create { resource: guarded.clone() }]);
    assert_eq!(result.success_count, 0, "its logic was not run as patched");
    assert!(!result.metadata.committed);
    assert_eq!(f.store.put_content(&reject).unwrap(), id);
    assert_eq!(f.store.content(&id).unwrap().unwrap().as_slice(), reject.as_slice());
    let result = f.standard(&[Operation::Create { resource: guarded }]);
    let failure = format!("{:?}", result.results[0].status);
    assert!(failure.contains("code 7") || failure.contains("7"), "{failure}");
    f.reopen();
    assert_eq!(f.store.content(&id).unwrap().unwrap().as_slice(), reject.as_slice(), "the repair is durable");
}
