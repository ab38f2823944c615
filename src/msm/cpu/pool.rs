//! One long-lived rayon pool for the MSM engine: arkworks builds a fresh
//! pool on every call; we pay thread start-up once per process.

use std::sync::{Arc, OnceLock};

use rayon::ThreadPool;

static SHARED: OnceLock<Option<Arc<ThreadPool>>> = OnceLock::new();

/// The process-wide MSM pool, sized like rayon's global pool (honours
/// `RAYON_NUM_THREADS`). `None` if threads could not be spawned: callers
/// then run on the caller's rayon context.
pub fn shared() -> Option<Arc<ThreadPool>> {
    SHARED.get_or_init(|| build(rayon::current_num_threads())).clone()
}

/// A dedicated pool of `threads` threads.
pub fn build(threads: usize) -> Option<Arc<ThreadPool>> {
    match rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).thread_name(|i| format!("cvm-msm-{i}")).build() {
        Ok(pool) => Some(Arc::new(pool)),
        Err(err) => {
            tracing::warn!(%err, "could not start the MSM thread pool; using the caller's rayon pool");
            None
        }
    }
}
