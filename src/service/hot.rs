//! Queued jobs' work, kept in memory from their accept to their start, so
//! that their runner need not read their payload back from the job store
//! and check it again (the store keeps it too: that is what a restart
//! runs). Bounded in bytes (counted as the decoded work's memory, about:
//! `Ready::resident_bytes`, many times the wire size for small elements);
//! work that does not fit is read back as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The largest work kept (bytes of memory).
pub const HOT_PAYLOAD_BYTES: usize = 64 << 20;
/// The most bytes of work kept at once.
pub const HOT_TOTAL_BYTES: usize = 256 << 20;

pub struct Hot<T> {
    jobs: Mutex<HashMap<u64, (T, usize)>>,
    bytes: AtomicUsize,
}

impl<T> Default for Hot<T> {
    fn default() -> Self {
        Hot { jobs: Mutex::new(HashMap::new()), bytes: AtomicUsize::new(0) }
    }
}

impl<T> Hot<T> {
    /// Keep a job's work, counted as `size` bytes; false (and dropped) when
    /// it is too large or the room is taken.
    pub fn keep(&self, id: u64, work: T, size: usize) -> bool {
        if size > HOT_PAYLOAD_BYTES {
            return false;
        }
        let before = self.bytes.fetch_add(size, Ordering::Relaxed);
        if before + size > HOT_TOTAL_BYTES {
            self.release(size);
            return false;
        }
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).insert(id, (work, size));
        true
    }

    fn release(&self, size: usize) {
        self.bytes.fetch_sub(size, Ordering::Relaxed);
    }

    /// The job's work, if kept (it is kept no longer).
    pub fn take(&self, id: u64) -> Option<T> {
        let (payload, size) = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).remove(&id)?;
        self.release(size);
        Some(payload)
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_bounded_and_given_back() {
        let hot = Hot::<()>::default();
        assert!(!hot.keep(99, (), HOT_PAYLOAD_BYTES + 1), "too large to keep");
        assert!(hot.take(99).is_none());
        let n = HOT_TOTAL_BYTES / HOT_PAYLOAD_BYTES;
        for id in 0..n as u64 {
            assert!(hot.keep(id, (), HOT_PAYLOAD_BYTES));
        }
        assert!(!hot.keep(n as u64, (), 1), "full");
        assert!(hot.take(n as u64).is_none(), "not kept");
        assert_eq!(hot.bytes(), HOT_TOTAL_BYTES);
        assert!(hot.take(0).is_some());
        assert!(hot.take(0).is_none(), "taken once");
        assert_eq!(hot.bytes(), HOT_TOTAL_BYTES - HOT_PAYLOAD_BYTES);
        assert!(hot.keep(n as u64, (), HOT_PAYLOAD_BYTES), "room given back");
        assert_eq!(hot.bytes(), HOT_TOTAL_BYTES);
    }
}
