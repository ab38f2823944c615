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
//!
//! One large MSM can also be shared ([`Share::split`]): the device takes
//! its first points and the CPU the rest, sized so both are expected to
//! finish together (the device after its queue). That is chosen when it is
//! expected to beat the better side alone by a tenth and each part has at
//! least [`MIN_SPLIT_PART`] points: on the H200 figures above, the CPU's
//! fifth of a 2^22-point MSM would save a fifth of its time. A large MSM
//! whose size the CPU has never run lends it a 64th of its points, to get
//! the CPU's figure without a whole large run there.

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
/// The fewest points either side takes of a shared MSM: below it the
/// device's fixed cost a run outweighs the per-point figures.
pub const MIN_SPLIT_PART: usize = 1 << 14;
/// A shared MSM's expected time, at most this many 1024ths of the better
/// side's alone (a tenth less).
const SPLIT_WORTH: u128 = 921;
/// Of a large MSM the CPU has no figure for, the CPU takes 1/EXPLORE_SHARE.
const EXPLORE_SHARE: usize = 64;

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
    /// [`MIN_SPLIT_PART`], lowered by tests.
    min_part: usize,
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

    /// The points this side takes.
    pub fn points(&self) -> usize {
        self.points
    }
}

/// A [`Ticket`] that reports back however its part ends: dropped without
/// [`Booked::finish`] (its part panicked), it reports a failure, so the
/// device part's expected time does not stay in the queue and send every
/// later MSM to the CPU.
pub struct Booked<'a> {
    share: &'a Share,
    ticket: Option<Ticket>,
}

impl<'a> Booked<'a> {
    pub fn new(share: &'a Share, ticket: Ticket) -> Self {
        Booked { share, ticket: Some(ticket) }
    }

    pub fn ticket(&self) -> &Ticket {
        self.ticket.as_ref().expect("a booked ticket until it is finished")
    }

    /// Report how the part went (see [`Share::finished`]).
    pub fn finish(mut self, ok: bool) {
        if let Some(ticket) = self.ticket.take() {
            self.share.finished(ticket, ok);
        }
    }
}

impl Drop for Booked<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.share.finished(ticket, false);
        }
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
            min_part: MIN_SPLIT_PART,
        }
    }

    /// The same policy with smaller shared parts (tests on small MSMs).
    #[cfg(test)]
    pub fn with_min_part(mut self, points: usize) -> Self {
        self.min_part = points;
        self
    }

    /// Expected nanoseconds of device work booked and not yet back.
    #[cfg(test)]
    pub fn queued(&self) -> u64 {
        self.queued_ns.load(Ordering::Relaxed)
    }

    /// Nanoseconds a point, as the figures keep them (times 1024), for
    /// every size: a test's stand-in for measurements.
    #[cfg(test)]
    pub fn assume(&self, curve: Curve, device: u64, cpu: u64) {
        for (rates, rate) in [(&self.device, device), (&self.cpu, cpu)] {
            for slot in &rates[curve as usize].rates {
                slot.store(rate, Ordering::Relaxed);
            }
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

    /// Under [`SharePolicy::Measured`], tickets for sharing one MSM of
    /// `points`: the device's part (its first points) and the CPU's (the
    /// rest), when that is expected to be worth it (see the module
    /// comment); `None` runs it whole, as [`Share::choose`] says.
    pub fn split(&self, curve: Curve, points: usize) -> Option<(Ticket, Ticket)> {
        if self.policy != SharePolicy::Measured {
            return None;
        }
        let index = curve as usize;
        let queued = self.queued_ns.load(Ordering::Relaxed);
        let device = self.device[index].estimate(points)?;
        let on_device = match self.cpu[index].estimate(points) {
            Some(cpu) => device_part(device, cpu, queued, points, self.min_part)?,
            None => explore_part(points, self.min_part)?,
        };
        let own = self.device[index].estimate(on_device).unwrap_or(0);
        self.queued_ns.fetch_add(own, Ordering::Relaxed);
        let started = Instant::now();
        let device = Ticket { curve, points: on_device, side: Side::Device, queued: own, started };
        let cpu = Ticket { curve, points: points - on_device, side: Side::Cpu, queued: 0, started };
        Some((device, cpu))
    }

    /// Record how a chosen MSM went: `ok` is false when it failed (no
    /// figure is kept from a failed run; the device's queue is released
    /// either way).
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
            Side::Cpu if ok => self.cpu[index].record(ticket.points, now - ticket.started),
            Side::Cpu => {}
        }
    }
}

/// The device's part of a shared MSM of `points`, given each side's
/// expected nanoseconds for the whole and the device's queue: the CPU
/// takes x points so that x·C/n = q + (n − x)·D/n, both finishing at
/// C·(q + D)/(C + D). `None` unless that beats the better side alone by
/// a tenth and both parts have `min_part` points.
fn device_part(device: u64, cpu: u64, queued: u64, points: usize, min_part: usize) -> Option<usize> {
    let (device, cpu, queued, n) = (device as u128, cpu as u128, queued as u128, points as u128);
    if cpu <= queued {
        return None;
    }
    let together = cpu * (queued + device) / (cpu + device);
    let alone = cpu.min(queued + device);
    let on_device = (n * (cpu - queued) / (cpu + device)) as usize;
    let worth = together * 1024 <= alone * SPLIT_WORTH;
    (worth && on_device >= min_part && points - on_device >= min_part).then_some(on_device)
}

/// The device's part when the CPU has no figure yet: all but a
/// 1/[`EXPLORE_SHARE`], when that share has `min_part` points.
fn explore_part(points: usize, min_part: usize) -> Option<usize> {
    let on_cpu = points / EXPLORE_SHARE;
    (on_cpu >= min_part).then_some(points - on_cpu)
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
    fn a_shared_msm_finishes_both_parts_together_when_that_is_worth_it() {
        let n = 1 << 22;
        // The H200's 0.4 s against a CPU's 1.6 s: the CPU takes a fifth.
        let on_device = device_part(400, 1600, 0, n, MIN_SPLIT_PART).unwrap();
        assert_eq!(on_device, n * 4 / 5);
        // Both parts take 320 (of 400 alone): 1600·(n − s)/n = 400·s/n.
        assert_eq!(1600 * (n - on_device) as u64 / n as u64, 320);
        // A queue of 200 ahead on the device moves work to the CPU:
        // x·1600/n = 200 + (n − x)·400/n.
        let queued = device_part(400, 1600, 200, n, MIN_SPLIT_PART).unwrap();
        assert_eq!(queued, n * 7 / 10);
        // A CPU ten times slower saves less than a tenth: whole.
        assert_eq!(device_part(400, 4000, 0, n, MIN_SPLIT_PART), None);
        assert!(device_part(400, 3500, 0, n, MIN_SPLIT_PART).is_some());
        // A CPU that finishes before the device's queue empties: whole.
        assert_eq!(device_part(400, 1600, 1600, n, MIN_SPLIT_PART), None);
        // Equal sides split in halves, unless a half is below the minimum.
        assert_eq!(device_part(100, 100, 0, 1 << 16, MIN_SPLIT_PART), Some(1 << 15));
        assert_eq!(device_part(100, 100, 0, 1 << 14, MIN_SPLIT_PART), None);
        assert_eq!(device_part(100, 300, 0, 1 << 16, MIN_SPLIT_PART), Some(3 << 14));
        assert_eq!(device_part(100, 300, 0, (1 << 16) - 4, MIN_SPLIT_PART), None, "the CPU's part is too small");
        // Exploring the CPU: a 64th, when that is a part's minimum.
        assert_eq!(explore_part(1 << 20, MIN_SPLIT_PART), Some((1 << 20) - (1 << 14)));
        assert_eq!(explore_part((1 << 20) - 1, MIN_SPLIT_PART), None);
    }

    #[test]
    fn sharing_books_the_devices_part_in_its_queue() {
        let share = Share::new(SharePolicy::Measured);
        assert!(share.split(Curve::G1, 1 << 20).is_none(), "nothing measured: the device whole");
        // 1 and 3 ns a point (times 1024).
        share.assume(Curve::G1, 1024, 3 * 1024);
        let (device, cpu) = share.split(Curve::G1, 1 << 20).expect("shared");
        assert_eq!((device.side(), device.points, cpu.side(), cpu.points), (Side::Device, 3 << 18, Side::Cpu, 1 << 18));
        assert_eq!(share.queued_ns.load(Ordering::Relaxed), 3 << 18, "the device's part, 1 ns a point");
        share.finished(device, true);
        share.finished(cpu, true);
        assert_eq!(share.queued_ns.load(Ordering::Relaxed), 0);
        assert!(Share::new(SharePolicy::DeviceOnly).split(Curve::G1, 1 << 20).is_none());
        // Measured device, unmeasured CPU: a 64th to the CPU.
        let explore = Share::new(SharePolicy::Measured);
        explore.device[0].rates[20].store(1024, Ordering::Relaxed);
        let (device, cpu) = explore.split(Curve::G1, 1 << 20).expect("explored");
        assert_eq!((device.points, cpu.points), ((1 << 20) - (1 << 14), 1 << 14));
        assert!(explore.split(Curve::G2, 1 << 20).is_none(), "G2 has its own figures");
    }

    #[test]
    fn a_part_that_panics_releases_its_booking_and_records_no_figure() {
        let share = Share::new(SharePolicy::Measured);
        share.assume(Curve::G1, 1024, 3 * 1024);
        let (device, cpu) = share.split(Curve::G1, 1 << 20).expect("shared");
        let cpu_rate = share.cpu[0].estimate(1 << 18);
        let parts = (Booked::new(&share, device), Booked::new(&share, cpu));
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _parts = parts;
            panic!("a kernel bug");
        }));
        assert!(unwound.is_err());
        assert_eq!(share.queued_ns.load(Ordering::Relaxed), 0, "the device's queue is released");
        assert_eq!(share.cpu[0].estimate(1 << 18), cpu_rate, "no figure from a part that did not finish");
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
