//! Files the program rewrites (the key ring, the proving keys): replaced
//! atomically and durably, under an exclusive lock so that two processes
//! changing the same file never lose each other's change.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The directory `path` lies in ("." for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Make renames and new files in `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Create `dir` (and its parents) if missing, durably: a power cut must not
/// take back a directory that holds committed files, so the directory it
/// was made in is synced too.
pub fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    // The directories to make, nearest first.
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    // Each new directory's entry lives in its parent.
    for made in missing {
        sync_dir(&parent_dir(made))?;
    }
    Ok(())
}

/// Create `path` empty and owner-only (mode 0600) if it is missing, or
/// make it owner-only if it exists: for files that hold secrets.
#[cfg(all(unix, feature = "service"))]
pub fn owner_only_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        }
        Err(e) => Err(e),
    }
}

/// Make a file just created (or opened with `create`) durable by name: its
/// directory entry is synced.
pub fn sync_entry(file: &Path) -> std::io::Result<()> {
    sync_dir(&parent_dir(file))
}

/// An exclusive lock on `<path>.lock`, held until the guard is dropped.
/// Every writer of `path` takes it, so a read-change-write is never
/// interleaved with another.
pub struct FileLock {
    _file: File,
}

impl FileLock {
    pub fn acquire(path: &Path) -> std::io::Result<FileLock> {
        let dir = parent_dir(path);
        std::fs::create_dir_all(&dir)?;
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(dir.join(name))?;
        file.lock()?;
        Ok(FileLock { _file: file })
    }
}

/// Replace `path` with `bytes`: written to a temporary file beside it
/// (created with `mode` on Unix), synced, renamed over `path`, and the
/// directory synced, so a crash leaves the old file or the new one.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = parent_dir(path);
    let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let unique: u64 = rand::random();
    let temp = dir.join(format!(".{name}.tmp-{}-{unique:016x}", std::process::id()));
    let written = (|| {
        let mut file = create_with_mode(&temp, mode)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        sync_dir(&dir)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(unix)]
fn create_with_mode(path: &Path, mode: u32) -> std::io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    // The umask may have cleared bits the mode asks for, or kept ones it does not.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(file)
}

#[cfg(not(unix))]
fn create_with_mode(path: &Path, _mode: u32) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_made_with_their_missing_parents_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a").join("b").join("c");
        create_dir_durably(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_durably(&deep).unwrap();
        let file = deep.join("f");
        std::fs::write(&file, b"x").unwrap();
        sync_entry(&file).unwrap();
        let occupied = deep.join("f").join("g");
        assert!(create_dir_durably(&occupied).is_err(), "a file where a directory should be");
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring.json");
        write_atomically(&path, b"one", 0o600).unwrap();
        write_atomically(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["ring.json"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    /// Threads that each add one line under the lock lose none.
    #[test]
    fn changes_under_the_lock_are_never_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list");
        std::thread::scope(|scope| {
            for n in 0..8 {
                let path = &path;
                scope.spawn(move || {
                    let _lock = FileLock::acquire(path).unwrap();
                    let mut text = std::fs::read_to_string(path).unwrap_or_default();
                    text.push_str(&format!("{n}\n"));
                    write_atomically(path, text.as_bytes(), 0o644).unwrap();
                });
            }
        });
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 8);
    }
}
