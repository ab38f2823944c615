//! The service's Prometheus metrics, served as text on `--metrics` (`/metrics`).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

fn latency() -> Histogram {
    // 0.5 ms to about 4.5 minutes.
    Histogram::new(exponential_buckets(0.0005, 2.0, 20))
}

pub struct Metrics {
    registry: Registry,
    accepted: Family<Labels, Counter>,
    finished: Family<Labels, Counter>,
    rejected: Family<Labels, Counter>,
    auth_rejected: Family<Labels, Counter>,
    queued: Family<Labels, Gauge>,
    running: Family<Labels, Gauge>,
    stages: Family<Labels, Histogram, fn() -> Histogram>,
    pub bytes_hashed: Counter,
    pub msm_points: Counter,
    pub proofs: Counter,
    pub gpu_fallbacks: Counter,
    pub end_write_failures: Counter,
    pub leases_lost: Counter,
    pub run_at_once: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cvm");
        let m = Metrics {
            accepted: Family::default(),
            finished: Family::default(),
            rejected: Family::default(),
            auth_rejected: Family::default(),
            queued: Family::default(),
            running: Family::default(),
            stages: Family::new_with_constructor(latency as fn() -> Histogram),
            bytes_hashed: Counter::default(),
            msm_points: Counter::default(),
            proofs: Counter::default(),
            gpu_fallbacks: Counter::default(),
            end_write_failures: Counter::default(),
            leases_lost: Counter::default(),
            run_at_once: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("jobs_accepted", "Jobs durably accepted, by kind", m.accepted.clone());
        registry.register("jobs_finished", "Jobs ended, by kind and outcome", m.finished.clone());
        registry.register(
            "jobs_rejected",
            "Submits refused (nothing recorded), by kind and reason",
            m.rejected.clone(),
        );
        registry.register("auth_rejections", "Calls refused for their credentials, by reason", m.auth_rejected.clone());
        registry.register("queue_depth", "Jobs waiting, by kind", m.queued.clone());
        registry.register("jobs_running", "Jobs running, by kind", m.running.clone());
        registry.register(
            "stage_seconds",
            "Time in each stage (queue_wait, hash, msm, execute, prove, commit)",
            m.stages.clone(),
        );
        registry.register("hashed_bytes", "Bytes hashed by hash jobs", m.bytes_hashed.clone());
        registry.register("msm_points", "Points summed by MSM jobs", m.msm_points.clone());
        registry.register("proofs", "Groth16 proofs made", m.proofs.clone());
        registry.register("gpu_fallbacks", "GPU work recomputed on the CPU", m.gpu_fallbacks.clone());
        registry.register(
            "jobs_run_at_once",
            "Small hash and Merkle jobs run on submit, their accept recording their end",
            m.run_at_once.clone(),
        );
        registry.register(
            "end_write_failures",
            "Job ends that could not be written to the job store (the job runs again)",
            m.end_write_failures.clone(),
        );
        registry.register(
            "leases_lost",
            "Cluster jobs whose lease this process lost before their end was written (they run again)",
            m.leases_lost.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn accepted(&self, kind: &str) {
        self.accepted.get_or_create(&vec![("kind", kind.to_string())]).inc();
    }

    pub fn finished(&self, kind: &str, outcome: &str) {
        self.finished.get_or_create(&vec![("kind", kind.to_string()), ("outcome", outcome.to_string())]).inc();
    }

    pub fn rejected(&self, kind: &str, reason: &str) {
        self.rejected.get_or_create(&vec![("kind", kind.to_string()), ("reason", reason.to_string())]).inc();
    }

    pub fn auth_rejected(&self, reason: &str) {
        self.auth_rejected.get_or_create(&vec![("reason", reason.to_string())]).inc();
    }

    pub fn stage_seconds(&self, stage: &str, seconds: f64) {
        self.stages.get_or_create(&vec![("stage", stage.to_string())]).observe(seconds);
    }

    /// A committed batch's stages (execute, hash, and prove and commit
    /// where it had them), from its own timings.
    pub fn batch_stages(&self, timings: &crate::store::StageTimings) {
        let seconds = |us: u64| us as f64 / 1e6;
        self.stage_seconds("execute", seconds(timings.execute_us));
        self.stage_seconds("hash", seconds(timings.hash_us));
        if timings.prove_us > 0 {
            self.stage_seconds("prove", seconds(timings.prove_us));
        }
        if timings.commit_us > 0 {
            self.stage_seconds("commit", seconds(timings.commit_us));
        }
    }

    /// Set the queue gauges of one kind (just before a scrape).
    pub fn load(&self, kind: &str, queued: usize, running: usize) {
        self.queued.get_or_create(&vec![("kind", kind.to_string())]).set(queued as i64);
        self.running.get_or_create(&vec![("kind", kind.to_string())]).set(running as i64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

/// A running job's stage clock: a stage's time ends when the next stage
/// begins (or the job ends), and goes into the stage histogram.
pub struct StageClock {
    metrics: Arc<Metrics>,
    current: Mutex<Option<(String, Instant)>>,
}

impl StageClock {
    pub fn new(metrics: Arc<Metrics>) -> StageClock {
        StageClock { metrics, current: Mutex::new(None) }
    }

    /// `name` begins; the stage before it ends.
    pub fn begin(&self, name: &str) {
        self.end();
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((name.to_string(), Instant::now()));
    }

    /// The current stage ends unmeasured (its time is measured elsewhere).
    pub fn forget(&self) {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// The current stage ends (none runs until the next `begin`).
    pub fn end(&self) {
        if let Some((stage, began)) = self.current.lock().unwrap_or_else(|p| p.into_inner()).take() {
            self.metrics.stage_seconds(&stage, began.elapsed().as_secs_f64());
        }
    }
}
