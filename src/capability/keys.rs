//! Domain root keys and the key ring that maps each domain to its key.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;

use super::CapabilityError;
use crate::content_id::{hex_decode_32, hex_encode};
use crate::context::DomainId;

/// A domain's 32-byte root key: the only secret that can mint tokens for the
/// domain. `Debug` never shows it; the hex text form is explicit (`to_hex`).
#[derive(Clone, PartialEq, Eq)]
pub struct RootKey(pub [u8; 32]);

impl RootKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        RootKey(key)
    }

    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    pub fn from_hex(text: &str) -> Result<Self, CapabilityError> {
        hex_decode_32(text.trim()).map(RootKey).map_err(|reason| CapabilityError::BadKey { reason })
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}

impl Drop for RootKey {
    fn drop(&mut self) {
        // Best effort: do not leave the key in freed memory.
        for byte in self.0.iter_mut() {
            // SAFETY: `byte` is a valid, aligned, exclusive reference.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
}

/// Domain → root key. Stored as a JSON object `{"domain": "<64 hex>"}`,
/// written atomically with owner-only permissions.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: BTreeMap<DomainId, RootKey>,
}

impl KeyRing {
    pub fn new() -> Self {
        KeyRing::default()
    }

    /// Insert or replace the key of `domain`.
    pub fn insert(&mut self, domain: DomainId, key: RootKey) {
        self.keys.insert(domain, key);
    }

    pub fn get(&self, domain: &DomainId) -> Option<&RootKey> {
        self.keys.get(domain)
    }

    pub fn contains(&self, domain: &DomainId) -> bool {
        self.keys.contains_key(domain)
    }

    pub fn domains(&self) -> impl Iterator<Item = &DomainId> {
        self.keys.keys()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn load(path: &Path) -> Result<Self, CapabilityError> {
        let text = std::fs::read_to_string(path).map_err(|source| CapabilityError::KeyRingIo {
            path: path.to_path_buf(),
            action: "reading",
            source,
        })?;
        warn_if_readable_by_others(path);
        let format_error = |reason: String| CapabilityError::KeyRingFormat { path: path.to_path_buf(), reason };
        let entries: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| {
            format_error(format!(
                "expected a JSON object mapping domain names to 64-digit hex keys (line {}, column {}): {e}",
                e.line(),
                e.column()
            ))
        })?;
        let mut ring = KeyRing::new();
        for (domain, hex) in entries {
            if domain.is_empty() {
                return Err(format_error("empty domain name".to_string()));
            }
            let key =
                hex_decode_32(&hex).map_err(|reason| format_error(format!("key of domain {domain:?}: {reason}")))?;
            ring.insert(DomainId::new(domain), RootKey(key));
        }
        Ok(ring)
    }

    /// `load`, or an empty ring when `path` does not exist yet.
    pub fn load_or_empty(path: &Path) -> Result<Self, CapabilityError> {
        if path.exists() {
            KeyRing::load(path)
        } else {
            Ok(KeyRing::new())
        }
    }

    /// Write the ring to `path` atomically: a temporary file beside it with
    /// mode 0600, synced, then renamed over `path`.
    pub fn save(&self, path: &Path) -> Result<(), CapabilityError> {
        let io_error = |action: &'static str, source: std::io::Error| CapabilityError::KeyRingIo {
            path: path.to_path_buf(),
            action,
            source,
        };
        let entries: BTreeMap<&str, String> = self.keys.iter().map(|(d, k)| (d.as_str(), k.to_hex())).collect();
        let mut text = serde_json::to_string_pretty(&entries)
            .map_err(|e| CapabilityError::KeyRingFormat { path: path.to_path_buf(), reason: e.to_string() })?;
        text.push('\n');

        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| io_error("creating its directory", e))?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let written = (|| {
            let mut file = open_private(&temp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(io_error("writing the temporary file", e));
        }
        if let Err(e) = std::fs::rename(&temp, path) {
            let _ = std::fs::remove_file(&temp);
            return Err(io_error("renaming the temporary file into place", e));
        }
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Root keys mint any token of their domain: say so when others can read them.
#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "key ring {} has mode {mode:o}: other users may read its root keys (chmod 600 it)",
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    // `mode` applies only when the file is created; a stale temp file keeps its bits.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)
}
