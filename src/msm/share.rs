//! Which side of an engine with a device takes an MSM, by measured speed.
//!
//! On an H200 beside 16 Xeon cores a G1 MSM of 2^16 points takes about
//! 32 ms on the GPU (most of it fixed cost) against 79 ms for arkworks on
//! the cores (our IFMA engine is faster still), and 2^22 points 0.4 s
//! against 3.4 s; a batch of small proofs
//! proved 1.6× slower with every MSM on the GPU than with none
//! (docs/PERFORMANCE.md). So under [`SharePolicy::Measured`] each MSM goes
//! where it is expected to finish first: the device's expected time is its
//! queue (the MSMs sent there and not yet back) plus this MSM's own time;
//! the CPU's is its own time, as measured under the load of the moment.
//! Both times come from the engine's own MSMs: per group and per size
//! (log2 buckets), an average of the last few, scaled linearly from the
//! nearest measured size when this size has none yet. Before the CPU has a
//! figure, a small MSM (at most [`EXPLORE_MAX`] points) is run there once
//! to get one; a large one waits for the device. The device's first MSM of
//! each size is not counted: it pays for pipelines and workspace (4.6 s for
//! G2's first MSM on the H200, 0.1 s after), and a figure that high would
//! keep every later MSM off the device. Figures go stale as the load
//! changes, so every [`REPROBE`]-th decision of a group tries the side not
//! chosen (the device only when idle, the CPU only for a small MSM).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How an engine with a device shares MSMs with the CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SharePolicy {
    /// Every MSM on the device (the CPU only after a failure): what
    /// `--backend gpu` asks for.
    #[default]
    DeviceOnly,
    /// Each MSM where it is expected to finish first: what `auto` gets.
    Measured,
}

/// The two groups, which cost very differently per point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    G1,
    G2,
}

/// Where the engine sends one MSM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Device,
    Cpu,
}

/// Sizes up to 2^40 points, one bucket per power of two.
const BUCKETS: usize = 41;
/// The largest MSM run on the CPU only to measure it.
pub const EXPLORE_MAX: usize = 1 << 18;
/// Weight of a new sample in a bucket's average (of 1024).
const NEW_SAMPLE_WEIGHT: u64 = 300;
/// Every this many decisions of a group, the side not chosen is measured again.
pub const REPROBE: u64 = 32;

/// Per bucket, nanoseconds per point (scaled by 1024 for precision); 0 is
/// unmeasured. With `warm_up`, each bucket's first sample is dropped.
struct Rates {
    rates: [AtomicU64; BUCKETS],
    seen: [AtomicU64; BUCKETS],
    warm_up: bool,
}

impl Rates {
    fn new(warm_up: bool) -> Self {
        Rates {
            rates: std::array::from_fn(|_| AtomicU64::new(0)),
            seen: std::array::from_fn(|_| AtomicU64::new(0)),
            warm_up,
        }
    }

    fn bucket(points: usize) -> usize {
        (usize::BITS - points.max(1).leading_zeros() - 1).min(BUCKETS as u32 - 1) as usize
    }

    fn record(&self, points: usize, took: Duration) {
        if points == 0 {
            return;
        }
        let bucket = Rates::bucket(points);
        if self.seen[bucket].fetch_add(1, Ordering::Relaxed) == 0 && self.warm_up {
            return;
        }
        let sample = (took.as_nanos() as u64).saturating_mul(1024) / points as u64;
        let slot = &self.rates[bucket];
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
            Some(match old {
                0 => sample.max(1),
                old => ((old * (1024 - NEW_SAMPLE_WEIGHT) + sample * NEW_SAMPLE_WEIGHT) / 1024).max(1),
            })
        });
    }

    /// Expected nanoseconds for `points`, from the nearest measured bucket.
    fn estimate(&self, points: usize) -> Option<u64> {
        let at = Rates::bucket(points);
        let nearest = (0..BUCKETS)
            .filter_map(|b| Some((b.abs_diff(at), self.rates[b].load(Ordering::Relaxed))).filter(|(_, r)| *r > 0))
            .min_by_key(|(distance, _)| *distance)?;
        Some(nearest.1.saturating_mul(points.max(1) as u64) / 1024)
    }
}

/// The measurements and the device's queue of one engine.
pub struct Share {
    policy: SharePolicy,
    device: [Rates; 2],
    cpu: [Rates; 2],
    /// Expected nanoseconds of the MSMs sent to the device and not back.
    queued_ns: AtomicU64,
    /// Decisions per group, for the periodic re-measurement.
    decisions: [AtomicU64; 2],
    /// When the device last finished an MSM (nanoseconds since `epoch`):
    /// an MSM's own device time starts no earlier, so time spent waiting
    /// behind another is not counted as its cost.
    device_idle_since: AtomicU64,
    epoch: Instant,
}

/// A decision, to be reported back with [`Share::finished`].
pub struct Ticket {
    curve: Curve,
    points: usize,
    side: Side,
    queued: u64,
    started: Instant,
}

impl Ticket {
    pub fn side(&self) -> Side {
        self.side
    }
}

impl Share {
    pub fn new(policy: SharePolicy) -> Self {
        Share {
            policy,
            device: [Rates::new(true), Rates::new(true)],
            cpu: [Rates::new(false), Rates::new(false)],
            queued_ns: AtomicU64::new(0),
            decisions: [AtomicU64::new(0), AtomicU64::new(0)],
            device_idle_since: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    pub fn policy(&self) -> SharePolicy {
        self.policy
    }

    /// Choose the side for an MSM of `points` in `curve` (the engine has a device).
    pub fn choose(&self, curve: Curve, points: usize) -> Ticket {
        let index = curve as usize;
        let queued = self.queued_ns.load(Ordering::Relaxed);
        let on_device = self.device[index].estimate(points);
        let side = match self.policy {
            SharePolicy::DeviceOnly => Side::Device,
            SharePolicy::Measured => {
                let side = decide(on_device, self.cpu[index].estimate(points), queued, points);
                let reprobe = (self.decisions[index].fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(REPROBE);
                match side {
                    Side::Cpu if reprobe && queued == 0 => Side::Device,
                    Side::Device if reprobe && points <= EXPLORE_MAX => Side::Cpu,
                    side => side,
                }
            }
        };
        let queued = match side {
            Side::Device => {
                let own = on_device.unwrap_or(0);
                self.queued_ns.fetch_add(own, Ordering::Relaxed);
                own
            }
            Side::Cpu => 0,
        };
        Ticket { curve, points, side, queued, started: Instant::now() }
    }

    /// Record how a chosen MSM went: `ok` is false when the device failed
    /// it (no figure is kept from a failed run).
    pub fn finished(&self, ticket: Ticket, ok: bool) {
        let index = ticket.curve as usize;
        let now = Instant::now();
        match ticket.side {
            Side::Device => {
                let _ = self.queued_ns.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| {
                    Some(queued.saturating_sub(ticket.queued))
                });
                let now_ns = now.duration_since(self.epoch).as_nanos() as u64;
                let idle_since = self.device_idle_since.fetch_max(now_ns, Ordering::Relaxed);
                let began = ticket.started.duration_since(self.epoch).as_nanos() as u64;
                if ok {
                    let own = now_ns.saturating_sub(began.max(idle_since.min(now_ns)));
                    self.device[index].record(ticket.points, Duration::from_nanos(own));
                }
            }
            Side::Cpu => self.cpu[index].record(ticket.points, now - ticket.started),
        }
    }
}

/// The rule itself, apart from the bookkeeping (see the module comment).
fn decide(device: Option<u64>, cpu: Option<u64>, queued: u64, points: usize) -> Side {
    match (device, cpu) {
        (None, _) => Side::Device,
        (Some(_), None) if points <= EXPLORE_MAX => Side::Cpu,
        (Some(_), None) => Side::Device,
        (Some(device), Some(cpu)) if cpu < queued.saturating_add(device) => Side::Cpu,
        (Some(_), Some(_)) => Side::Device,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_measures_the_device_first_then_a_small_cpu_run() {
        assert_eq!(decide(None, None, 0, 1 << 20), Side::Device);
        assert_eq!(decide(None, Some(1), 0, 16), Side::Device);
        assert_eq!(decide(Some(100), None, 0, EXPLORE_MAX), Side::Cpu);
        assert_eq!(decide(Some(100), None, 0, EXPLORE_MAX + 1), Side::Device);
    }

    #[test]
    fn the_rule_picks_the_earlier_finish_counting_the_queue() {
        assert_eq!(decide(Some(30), Some(40), 0, 1 << 16), Side::Device);
        assert_eq!(decide(Some(30), Some(40), 20, 1 << 16), Side::Cpu);
        assert_eq!(decide(Some(50), Some(40), 0, 1 << 16), Side::Cpu);
    }

    #[test]
    fn rates_average_per_bucket_and_scale_from_the_nearest() {
        let rates = Rates::new(false);
        assert_eq!(rates.estimate(1000), None);
        rates.record(1 << 10, Duration::from_micros(1024));
        assert_eq!(rates.estimate(1 << 10), Some(1_024_000));
        // 2^12 points scaled from 2^10's 1 µs per point.
        assert_eq!(rates.estimate(1 << 12), Some(4_096_000));
        rates.record(1 << 10, Duration::from_micros(2048));
        let averaged = rates.estimate(1 << 10).unwrap();
        assert!(averaged > 1_024_000 && averaged < 2_048_000, "{averaged}");
        rates.record(0, Duration::from_secs(1));
        assert_eq!(Rates::bucket(0), 0);
    }

    #[test]
    fn the_devices_first_run_of_a_size_is_not_counted() {
        let rates = Rates::new(true);
        rates.record(1 << 10, Duration::from_secs(5));
        assert_eq!(rates.estimate(1 << 10), None, "pipelines and workspace, not the MSM");
        rates.record(1 << 10, Duration::from_micros(1024));
        assert_eq!(rates.estimate(1 << 10), Some(1_024_000));
        // Another size has its own warm-up, and meanwhile scales from this one.
        rates.record(1 << 12, Duration::from_secs(5));
        assert_eq!(rates.estimate(1 << 12), Some(4_096_000));
    }

    #[test]
    fn every_reprobe_th_decision_measures_the_other_side() {
        let share = Share::new(SharePolicy::Measured);
        share.device[0].rates[10].store(1024 * 1000, Ordering::Relaxed);
        share.cpu[0].rates[10].store(1024, Ordering::Relaxed);
        let sides: Vec<Side> = (0..2 * REPROBE)
            .map(|_| {
                let ticket = share.choose(Curve::G1, 1 << 10);
                let side = ticket.side();
                share.finished(ticket, false);
                side
            })
            .collect();
        for (i, side) in sides.iter().enumerate() {
            let expected = if (i as u64 + 1).is_multiple_of(REPROBE) { Side::Device } else { Side::Cpu };
            assert_eq!(*side, expected, "decision {i}");
        }
    }

    #[test]
    fn a_busy_device_sends_work_to_a_measured_cpu() {
        let share = Share::new(SharePolicy::Measured);
        // Nothing measured: the device.
        let first = share.choose(Curve::G1, 1 << 10);
        assert_eq!(first.side(), Side::Device);
        // A failed run leaves no figure.
        share.finished(first, false);
        // 1 ms and 2 ms for 2^10 points (ns per point, times 1024).
        share.device[0].rates[10].store(1_000_000, Ordering::Relaxed);
        share.cpu[0].rates[10].store(2_000_000, Ordering::Relaxed);
        // Device idle and faster: the device; while that one runs, the next
        // would wait 1 ms + 1 ms against the CPU's 2 ms: still the device;
        // a third would wait 3 ms: the CPU.
        let a = share.choose(Curve::G1, 1 << 10);
        let b = share.choose(Curve::G1, 1 << 10);
        let c = share.choose(Curve::G1, 1 << 10);
        assert_eq!((a.side(), b.side(), c.side()), (Side::Device, Side::Device, Side::Cpu));
        // G2 has its own figures: nothing measured yet.
        assert_eq!(share.choose(Curve::G2, 1 << 10).side(), Side::Device);
        for ticket in [a, b, c] {
            share.finished(ticket, true);
        }
        assert_eq!(share.queued_ns.load(Ordering::Relaxed), 0);
        let only = Share::new(SharePolicy::DeviceOnly);
        only.cpu[0].rates[0].store(1, Ordering::Relaxed);
        assert_eq!(only.choose(Curve::G1, 1).side(), Side::Device);
    }
}
