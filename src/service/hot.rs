//! Queued jobs' work, kept in memory from their accept to their start, so
//! that their runner need not read their payload back from the job store
//! and check it again (the store keeps it too: that is what a restart
//! runs). Bounded in bytes (counted as the payload's encoded size); work
//! that does not fit is read back as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The largest payload kept (encoded bytes).
pub const HOT_PAYLOAD_BYTES: usize = 64 << 20;
/// The most payload bytes kept at once.
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
    /// Make room for a payload of `size` encoded bytes; false when it is too
    /// large or the room is taken (then it is not kept).
    pub fn reserve(&self, size: usize) -> bool {
        if size > HOT_PAYLOAD_BYTES {
            return false;
        }
        let before = self.bytes.fetch_add(size, Ordering::Relaxed);
        if before + size > HOT_TOTAL_BYTES {
            self.release(size);
            return false;
        }
        true
    }

    /// Give back room reserved for a payload that will not be kept.
    pub fn release(&self, size: usize) {
        self.bytes.fetch_sub(size, Ordering::Relaxed);
    }

    /// Keep a job's work whose room was reserved.
    pub fn insert(&self, id: u64, payload: T, size: usize) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).insert(id, (payload, size));
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
        assert!(!hot.reserve(HOT_PAYLOAD_BYTES + 1), "too large to keep");
        let n = HOT_TOTAL_BYTES / HOT_PAYLOAD_BYTES;
        for id in 0..n as u64 {
            assert!(hot.reserve(HOT_PAYLOAD_BYTES));
            hot.insert(id, (), HOT_PAYLOAD_BYTES);
        }
        assert!(!hot.reserve(1), "full");
        assert_eq!(hot.bytes(), HOT_TOTAL_BYTES);
        assert!(hot.take(0).is_some());
        assert!(hot.take(0).is_none(), "taken once");
        assert!(hot.reserve(HOT_PAYLOAD_BYTES), "room given back");
        hot.release(HOT_PAYLOAD_BYTES);
        assert_eq!(hot.bytes(), HOT_TOTAL_BYTES - HOT_PAYLOAD_BYTES);
    }
}
