//! What uploads keep in memory between jobs (base sets, zkeys), bounded in
//! bytes. Past the bound the least recently used entries leave memory:
//! their files stay in the data dir, and the next job that names one loads
//! it again. A job that holds an entry keeps it alive until it ends.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Memory kept for uploaded base sets (decoded points and the GPU copy's
/// host side).
pub const BASE_SET_BYTES: usize = 4 << 30;

/// Memory kept for uploaded zkeys (decoded points, coefficients, NTT roots,
/// the circuit's constraints).
pub const ZKEY_BYTES: usize = 8 << 30;

pub struct Resident<K, V> {
    budget: usize,
    inner: Mutex<Entries<K, V>>,
    /// A gate per key being loaded: jobs that miss the same entry at once
    /// load it once (a zkey takes seconds and gigabytes), the others wait.
    loading: Mutex<HashMap<K, Arc<Mutex<()>>>>,
}

struct Entries<K, V> {
    map: HashMap<K, Entry<V>>,
    bytes: usize,
    /// Ticks on every use: an entry's last use orders the evictions.
    clock: u64,
}

struct Entry<V> {
    value: Arc<V>,
    bytes: usize,
    used: u64,
}

impl<K: Copy + Eq + Hash + Ord, V> Resident<K, V> {
    pub fn new(budget: usize) -> Self {
        Resident {
            budget,
            inner: Mutex::new(Entries { map: HashMap::new(), bytes: 0, clock: 0 }),
            loading: Mutex::default(),
        }
    }

    /// The entry, or the value `load` makes (with its size in bytes) kept
    /// and returned. While one caller loads a key, others asking for it
    /// wait and then find it kept; if the load fails, the next one tries.
    pub fn get_or_load<E>(&self, key: K, load: impl FnOnce() -> Result<(V, usize), E>) -> Result<Arc<V>, E> {
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        let gates = || self.loading.lock().unwrap_or_else(|p| p.into_inner());
        let gate = Arc::clone(gates().entry(key).or_default());
        let loading = gate.lock().unwrap_or_else(|p| p.into_inner());
        let answer = match self.get(&key) {
            Some(value) => Ok(value),
            None => load().map(|(value, bytes)| {
                let value = Arc::new(value);
                self.insert(key, Arc::clone(&value), bytes);
                value
            }),
        };
        let mut gates = gates();
        drop(loading);
        drop(gate);
        // Every caller clones the gate under this lock and drops its clone
        // under it: the map's alone means no one else waits on it.
        if gates.get(&key).is_some_and(|gate| Arc::strong_count(gate) == 1) {
            gates.remove(&key);
        }
        drop(gates);
        answer
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry, counted as used now.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let mut entries = self.entries();
        entries.clock += 1;
        let now = entries.clock;
        let entry = entries.map.get_mut(key)?;
        entry.used = now;
        Some(Arc::clone(&entry.value))
    }

    /// Keep `value` (about `bytes` of memory), then drop the least recently
    /// used others until the kept entries fit the budget. An entry larger
    /// than the budget alone is still kept: the job that loaded it needs it.
    pub fn insert(&self, key: K, value: Arc<V>, bytes: usize) {
        // Dropped once the lock is released: freeing gigabytes of points
        // (and device buffers) must not hold up every other lookup.
        let mut gone = Vec::new();
        {
            let mut entries = self.entries();
            entries.clock += 1;
            let used = entries.clock;
            if let Some(old) = entries.map.insert(key, Entry { value, bytes, used }) {
                entries.bytes -= old.bytes;
                gone.push(old);
            }
            entries.bytes += bytes;
            while entries.bytes > self.budget {
                let oldest =
                    entries.map.iter().filter(|(k, _)| **k != key).min_by_key(|(_, e)| e.used).map(|(k, _)| *k);
                let Some(oldest) = oldest else { break };
                let evicted = entries.map.remove(&oldest).expect("found");
                entries.bytes -= evicted.bytes;
                tracing::info!(bytes = evicted.bytes, "an upload left memory (least recently used); its file stays");
                gone.push(evicted);
            }
        }
        drop(gone);
    }

    /// Drop an entry from memory; false when it was not kept.
    pub fn remove(&self, key: &K) -> bool {
        let mut entries = self.entries();
        match entries.map.remove(key) {
            Some(gone) => {
                entries.bytes -= gone.bytes;
                true
            }
            None => false,
        }
    }

    /// The keys kept, in order.
    pub fn keys(&self) -> Vec<K> {
        let mut keys: Vec<K> = self.entries().map.keys().copied().collect();
        keys.sort();
        keys
    }

    /// Bytes kept, as counted.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.entries().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entries_leave_once_the_budget_is_passed() {
        let kept = Resident::<u8, &str>::new(100);
        kept.insert(1, Arc::new("one"), 40);
        kept.insert(2, Arc::new("two"), 40);
        assert_eq!(kept.get(&1).as_deref(), Some(&"one"), "1 is now the more recent");
        kept.insert(3, Arc::new("three"), 40);
        assert_eq!(kept.keys(), vec![1, 3], "2 was the least recently used");
        assert_eq!(kept.bytes(), 80);

        // Held by a job, an entry outlives its eviction.
        let held = kept.get(&1).expect("kept");
        kept.insert(4, Arc::new("four"), 90);
        assert_eq!(kept.keys(), vec![4], "the others leave; the new one stays though it alone is too large");
        assert_eq!(*held, "one");
        assert_eq!(kept.bytes(), 90);

        // Inserting a key again replaces its count.
        kept.insert(4, Arc::new("four"), 10);
        assert_eq!(kept.bytes(), 10);
        assert!(kept.remove(&4));
        assert!(!kept.remove(&4));
        assert_eq!(kept.bytes(), 0);
        assert!(kept.get(&4).is_none());
    }

    #[test]
    fn callers_missing_the_same_entry_at_once_load_it_once() {
        let kept = Resident::<u8, u32>::new(100);
        let loads = std::sync::atomic::AtomicU32::new(0);
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    barrier.wait();
                    let value = kept.get_or_load(7, || {
                        loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        Ok::<_, ()>((42, 10))
                    });
                    assert_eq!(value.as_deref(), Ok(&42));
                });
            }
        });
        assert_eq!(loads.into_inner(), 1);
        assert_eq!(kept.bytes(), 10);
        assert!(kept.loading.lock().unwrap().is_empty(), "no gate is left behind");

        // A failed load keeps nothing, and the next caller loads again.
        assert_eq!(kept.get_or_load(8, || Err("damaged")), Err("damaged"));
        assert_eq!(kept.get_or_load(8, || Ok::<_, ()>((1, 1))).as_deref(), Ok(&1));
    }
}
