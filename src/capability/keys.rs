//! Domain root keys and the key ring that maps each domain to its key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use rand::RngCore;

use super::CapabilityError;
use crate::content_id::{hex_decode_32, hex_encode};
use crate::resource::DomainId;

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
        let entries: UniqueEntries = serde_json::from_str(&text).map_err(|e| {
            format_error(format!(
                "expected a JSON object mapping domain names to 64-digit hex keys (line {}, column {}): {e}",
                e.line(),
                e.column()
            ))
        })?;
        let mut ring = KeyRing::new();
        for (domain, hex) in entries.0 {
            let domain =
                DomainId::parse(&domain).map_err(|reason| format_error(format!("entry {domain:?}: {reason}")))?;
            let key =
                hex_decode_32(&hex).map_err(|reason| format_error(format!("key of domain {domain:?}: {reason}")))?;
            ring.insert(domain, RootKey(key));
        }
        Ok(ring)
    }

    /// Change the ring stored at `path` without losing a change another
    /// process makes at the same time: under an exclusive lock, read it
    /// again, apply `change`, and replace the file atomically. Returns
    /// what `change` returns, and the ring as written.
    pub fn update<R>(
        path: &Path,
        change: impl FnOnce(&mut KeyRing) -> Result<R, CapabilityError>,
    ) -> Result<(R, KeyRing), CapabilityError> {
        let _lock = crate::fsutil::FileLock::acquire(path).map_err(|source| CapabilityError::KeyRingIo {
            path: path.to_path_buf(),
            action: "locking it",
            source,
        })?;
        let mut ring = KeyRing::load_or_empty(path)?;
        let outcome = change(&mut ring)?;
        ring.save(path)?;
        Ok((outcome, ring))
    }

    /// The key of `domain` in the ring at `path`, created (and the ring
    /// saved, under its lock) if it has none; `true` when it was created.
    pub fn key_for(path: &Path, domain: &DomainId) -> Result<(RootKey, bool, KeyRing), CapabilityError> {
        let ring = KeyRing::load_or_empty(path)?;
        if let Some(key) = ring.get(domain) {
            return Ok((key.clone(), false, ring));
        }
        let (created, ring) = KeyRing::update(path, |ring| {
            let created = !ring.contains(domain);
            if created {
                ring.insert(domain.clone(), RootKey::generate());
            }
            Ok(created)
        })?;
        let key = ring.get(domain).cloned().expect("the domain's key was just stored");
        Ok((key, created, ring))
    }

    /// `load`, or an empty ring when `path` does not exist yet.
    pub fn load_or_empty(path: &Path) -> Result<Self, CapabilityError> {
        if path.exists() {
            KeyRing::load(path)
        } else {
            Ok(KeyRing::new())
        }
    }

    /// Write the ring to `path` atomically and durably, readable by its
    /// owner only. Two writers must hold the ring's lock ([`KeyRing::update`]).
    pub fn save(&self, path: &Path) -> Result<(), CapabilityError> {
        let entries: BTreeMap<&str, String> = self.keys.iter().map(|(d, k)| (d.as_str(), k.to_hex())).collect();
        let mut text = serde_json::to_string_pretty(&entries)
            .map_err(|e| CapabilityError::KeyRingFormat { path: path.to_path_buf(), reason: e.to_string() })?;
        text.push('\n');
        std::fs::create_dir_all(crate::fsutil::parent_dir(path)).map_err(|source| CapabilityError::KeyRingIo {
            path: path.to_path_buf(),
            action: "creating its directory",
            source,
        })?;
        crate::fsutil::write_atomically(path, text.as_bytes(), 0o600).map_err(|source| CapabilityError::KeyRingIo {
            path: path.to_path_buf(),
            action: "writing it",
            source,
        })
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

/// The key ring's entries, a domain named twice refused: serde keeps the
/// last of two silently, and which key a domain has must never be a guess.
struct UniqueEntries(BTreeMap<String, String>);

impl<'de> serde::Deserialize<'de> for UniqueEntries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = UniqueEntries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of domain names and keys")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueEntries, A::Error> {
                let mut entries = BTreeMap::new();
                while let Some((domain, key)) = map.next_entry::<String, String>()? {
                    if entries.contains_key(&domain) {
                        return Err(serde::de::Error::custom(format!("domain {domain:?} is named twice")));
                    }
                    entries.insert(domain, key);
                }
                Ok(UniqueEntries(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}
