//! Large payloads and results as files beside the job store
//! (`<data-dir>/job-blobs/`), the store keeping a reference (length, BLAKE3
//! digest, file name) in their place.
//!
//! redb copies a large value into its pages and rewrites them when it is
//! freed: a 32 MB result took a commit of about 300 ms, holding every other
//! job's accept behind it. A file is written and synced by the thread that
//! made the value, before the commit that refers to it, and removed only
//! after the commit that drops the reference is durable; files no record
//! refers to (from a crash between the two) are removed when the store
//! opens.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Values at least this large are kept in files.
pub const BLOB_BYTES: usize = 1 << 20;

const INLINE: u8 = 0;
const BLOB: u8 = 1;

/// A value kept in a file: where, how long, and its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRef {
    pub name: String,
    pub len: u64,
    pub digest: [u8; 32],
}

/// A value as a store table holds it: inline, or a reference to its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    Inline(Vec<u8>),
    Blob(BlobRef),
}

impl Stored {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Stored::Inline(bytes) => {
                let mut out = Vec::with_capacity(1 + bytes.len());
                out.push(INLINE);
                out.extend_from_slice(bytes);
                out
            }
            Stored::Blob(blob) => {
                let mut out = vec![BLOB];
                out.extend_from_slice(&blob.len.to_le_bytes());
                out.extend_from_slice(&blob.digest);
                out.extend_from_slice(blob.name.as_bytes());
                out
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Stored, String> {
        match bytes.split_first() {
            Some((&INLINE, rest)) => Ok(Stored::Inline(rest.to_vec())),
            Some((&BLOB, rest)) if rest.len() > 40 => {
                let (len, rest) = rest.split_at(8);
                let (digest, name) = rest.split_at(32);
                let name = std::str::from_utf8(name).map_err(|_| "a blob reference's name is not UTF-8".to_string())?;
                if !valid_name(name) {
                    return Err(format!("a blob reference names {name:?}, not a blob file"));
                }
                Ok(Stored::Blob(BlobRef {
                    name: name.to_string(),
                    len: u64::from_le_bytes(len.try_into().expect("8 bytes")),
                    digest: digest.try_into().expect("32 bytes"),
                }))
            }
            Some((tag, _)) => Err(format!("unknown value tag {tag}")),
            None => Err("an empty value".into()),
        }
    }

    /// The file this value is kept in, if any.
    pub fn blob_name(&self) -> Option<&str> {
        match self {
            Stored::Blob(blob) => Some(&blob.name),
            Stored::Inline(_) => None,
        }
    }
}

/// Blob file names: digits and one dash (never a path).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_digit() || b == b'-')
}

#[derive(Debug)]
pub struct Blobs {
    dir: PathBuf,
    next: AtomicU64,
}

impl Blobs {
    pub fn open(data_dir: &Path) -> std::io::Result<Blobs> {
        let dir = data_dir.join("job-blobs");
        crate::fsutil::create_dir_durably(&dir)?;
        // Payloads hold tokens and witnesses' keys: owner-only, as the socket is.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Ok(Blobs { dir, next: AtomicU64::new(started as u64) })
    }

    /// Keep `bytes` as a value: in a synced file when large, else inline.
    pub fn store(&self, bytes: Vec<u8>) -> std::io::Result<Stored> {
        if bytes.len() < BLOB_BYTES {
            return Ok(Stored::Inline(bytes));
        }
        let name = format!("{}-{}", std::process::id(), self.next.fetch_add(1, Ordering::Relaxed));
        let path = self.dir.join(&name);
        let mut file =
            std::os::unix::fs::OpenOptionsExt::mode(std::fs::OpenOptions::new().write(true).create_new(true), 0o600)
                .open(&path)?;
        if let Err(e) = file.write_all(&bytes).and_then(|()| file.sync_all()) {
            // A part written to a full disk would keep it full until the next open's sweep.
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        // The file's name must be as durable as the record that will name it.
        File::open(&self.dir)?.sync_all()?;
        Ok(Stored::Blob(BlobRef { name, len: bytes.len() as u64, digest: *blake3::hash(&bytes).as_bytes() }))
    }

    /// A value's bytes, checked against its reference.
    pub fn load(&self, stored: Stored) -> Result<Vec<u8>, String> {
        let blob = match stored {
            Stored::Inline(bytes) => return Ok(bytes),
            Stored::Blob(blob) => blob,
        };
        let path = self.dir.join(&blob.name);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if bytes.len() as u64 != blob.len {
            return Err(format!("{}: {} bytes where {} were written", path.display(), bytes.len(), blob.len));
        }
        if *blake3::hash(&bytes).as_bytes() != blob.digest {
            return Err(format!("{}: its bytes do not match the digest recorded for them", path.display()));
        }
        Ok(bytes)
    }

    /// Remove files no longer referred to (best effort: a file left behind
    /// is removed at the next open).
    pub fn remove(&self, names: &[String]) {
        for name in names {
            if let Err(e) = std::fs::remove_file(self.dir.join(name)) {
                tracing::warn!("removing the job store's blob {name}: {e}");
            }
        }
    }

    /// Remove every file not in `referred` (at open: a crash can leave a
    /// file whose record was never committed).
    pub fn sweep(&self, referred: &HashSet<String>) -> std::io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !referred.contains(&name) {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_values_go_to_checked_files_and_small_ones_stay_inline() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let small = blobs.store(vec![7; 100]).unwrap();
        assert_eq!(small, Stored::Inline(vec![7; 100]));
        let large = blobs.store(vec![9; BLOB_BYTES]).unwrap();
        let name = large.blob_name().unwrap().to_string();
        for stored in [&small, &large] {
            assert_eq!(&Stored::decode(&stored.encode()).unwrap(), stored);
        }
        assert_eq!(blobs.load(large.clone()).unwrap(), vec![9; BLOB_BYTES]);

        // A damaged file is refused, naming it.
        let path = dir.path().join("job-blobs").join(&name);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = blobs.load(large.clone()).unwrap_err();
        assert!(err.contains(&name) && err.contains("do not match"), "{err}");

        // Files no record refers to are swept.
        let other = blobs.store(vec![1; BLOB_BYTES]).unwrap();
        let referred: HashSet<String> = [name.clone()].into();
        assert_eq!(blobs.sweep(&referred).unwrap(), 1);
        assert!(path.exists());
        assert!(blobs.load(other).is_err());
    }

    #[test]
    fn references_that_are_not_blob_names_are_refused() {
        let mut bytes = vec![BLOB];
        bytes.extend_from_slice(&5u64.to_le_bytes());
        bytes.extend_from_slice(&[0; 32]);
        bytes.extend_from_slice(b"../jobs.redb");
        assert!(Stored::decode(&bytes).unwrap_err().contains("not a blob file"));
        assert!(Stored::decode(&[7, 1, 2]).unwrap_err().contains("unknown value tag 7"));
        assert!(Stored::decode(&[]).is_err());
    }
}
