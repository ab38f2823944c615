//! The buckets of one (window, chunk) task, accumulated in affine
//! coordinates through batched additions.
//!
//! A point whose bucket already has an addition in flight is queued and
//! retried after the next batch; when the queue is full (many points for
//! few buckets, e.g. repeated bases or small scalars) it goes to a
//! projective overflow bucket instead. So do doublings and P + (-P): they
//! are rare and the projective formulas handle them, keeping the batch free
//! of special cases.
//!
//! Few buckets (a top window with a small digit range) would keep batches
//! small, one inversion for every few additions: such a task keeps several
//! replicas of its buckets, sends consecutive points to different replicas,
//! and folds the replicas together before the reduction.

use ark_ec::short_weierstrass::{Affine, Projective, SWCurveConfig};
use ark_ec::AffineRepr;
use ark_ff::Zero;

use super::batch_affine::AffineBatch;
use super::field::FastSub;
use super::reduce;

/// Bucket slots (buckets times replicas) that allow full batches.
const FULL_SLOTS: usize = 4096;
/// Replicas only where every slot still gets this many points on average.
const POINTS_PER_SLOT: usize = 16;
/// Below this many slots batches stay too small to amortise an inversion:
/// accumulate projectively instead.
const MIN_AFFINE_SLOTS: usize = 32;

/// Whether `slots` bucket slots accumulate in batched affine additions.
pub fn accumulates_affinely(slots: usize) -> bool {
    slots >= MIN_AFFINE_SLOTS
}

pub struct BucketAccumulator<'a, P: SWCurveConfig<BaseField: FastSub>> {
    /// `replicas` copies of the buckets, one after another.
    slots: Vec<Affine<P>>,
    buckets: usize,
    replicas: usize,
    next_replica: usize,
    affine: bool,
    busy: Vec<bool>,
    /// Allocated on first use: most tasks never touch it.
    overflow: Vec<Projective<P>>,
    batch: AffineBatch<'a, P>,
    batch_capacity: usize,
    queue: Vec<(u32, &'a Affine<P>, bool)>,
    queue_capacity: usize,
}

/// Batch sizes: large enough to amortise the inversion (~250 multiplications),
/// small enough that few points collide with an in-flight bucket and the
/// batch stays in L1/L2.
pub fn batch_capacity(slots: usize) -> usize {
    (slots / 4).clamp(1, 1024)
}

/// How many copies of `buckets` buckets a task adding `points` points keeps.
pub fn replicas(buckets: usize, points: usize) -> usize {
    let wanted = FULL_SLOTS.div_ceil(buckets.max(1));
    let affordable = points / (POINTS_PER_SLOT * buckets.max(1));
    wanted.min(affordable).max(1)
}

impl<'a, P: SWCurveConfig<BaseField: FastSub>> BucketAccumulator<'a, P> {
    /// Buckets for about `points` additions.
    pub fn new(buckets: usize, points: usize) -> Self {
        let replicas = replicas(buckets, points);
        let slots = buckets * replicas;
        let batch_capacity = batch_capacity(slots);
        BucketAccumulator {
            slots: vec![Affine::<P>::zero(); slots],
            buckets,
            replicas,
            next_replica: 0,
            affine: accumulates_affinely(slots),
            busy: vec![false; slots],
            overflow: Vec::new(),
            batch: AffineBatch::with_capacity(batch_capacity),
            batch_capacity,
            queue: Vec::with_capacity(batch_capacity),
            queue_capacity: batch_capacity,
        }
    }

    /// `bucket += point`, or `bucket -= point` when `negate` (the point is finite).
    #[inline]
    pub fn add(&mut self, bucket: u32, point: &'a Affine<P>, negate: bool) {
        let mut slot = bucket;
        if self.replicas > 1 {
            slot += (self.next_replica * self.buckets) as u32;
            self.next_replica = if self.next_replica + 1 == self.replicas { 0 } else { self.next_replica + 1 };
        }
        self.place(slot, point, negate);
        if self.batch.len() >= self.batch_capacity {
            self.flush();
            self.retry_queue();
        }
    }

    fn place(&mut self, bucket: u32, point: &'a Affine<P>, negate: bool) {
        let index = bucket as usize;
        if !self.affine {
            self.add_overflow(index, point, negate);
            return;
        }
        if self.busy[index] {
            if self.queue.len() < self.queue_capacity {
                self.queue.push((bucket, point, negate));
            } else {
                self.add_overflow(index, point, negate);
            }
            return;
        }
        let current = &mut self.slots[index];
        if current.is_zero() {
            *current = Affine::new_unchecked(point.x, point.y.neg_if(negate));
        } else if current.x == point.x {
            // Doubling or cancellation: not expressible in the batch formula.
            self.add_overflow(index, point, negate);
        } else {
            self.busy[index] = true;
            self.batch.push(bucket, point, negate);
        }
    }

    fn add_overflow(&mut self, index: usize, point: &Affine<P>, negate: bool) {
        if self.overflow.is_empty() {
            self.overflow = vec![Projective::<P>::zero(); self.slots.len()];
        }
        if negate {
            self.overflow[index] -= point;
        } else {
            self.overflow[index] += point;
        }
    }

    fn flush(&mut self) {
        for &index in self.batch.indices() {
            self.busy[index as usize] = false;
        }
        self.batch.apply(&mut self.slots);
    }

    /// Give queued points another chance now that their buckets are free.
    fn retry_queue(&mut self) {
        let queued = std::mem::take(&mut self.queue);
        for &(bucket, point, negate) in &queued {
            self.place(bucket, point, negate);
            if self.batch.len() >= self.batch_capacity {
                self.flush();
            }
        }
        // Keep the allocation; entries queued meanwhile go after the retried ones.
        let mut queued = queued;
        queued.clear();
        queued.append(&mut self.queue);
        self.queue = queued;
    }

    /// Finish all pending work and return sum_b (b + 1) * bucket_b.
    pub fn finish(mut self) -> Projective<P> {
        while !self.batch.is_empty() || !self.queue.is_empty() {
            self.flush();
            self.retry_queue();
        }
        if self.overflow.is_empty() {
            let (buckets, copies) = self.slots.split_at_mut(self.buckets);
            for copy in copies.chunks(self.buckets) {
                reduce::add_all(buckets, copy);
            }
            return reduce::weighted_sum(buckets);
        }
        // Each bucket: its slot in every replica, affine and overflow parts.
        let (slots, overflow, buckets) = (&self.slots, &self.overflow, self.buckets);
        reduce::running_sum((0..buckets).map(|index| {
            (index..slots.len())
                .step_by(buckets)
                .fold(Projective::<P>::zero(), |sum, slot| sum + slots[slot] + overflow[slot])
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bn254::{Fr, G1Affine, G1Projective};
    use ark_ec::CurveGroup;
    use ark_ff::UniformRand;
    use rand::{Rng, SeedableRng};

    fn naive(buckets: usize, adds: &[(u32, G1Affine)]) -> G1Projective {
        let mut sums = vec![G1Projective::zero(); buckets];
        for (b, p) in adds {
            sums[*b as usize] += p;
        }
        sums.iter().enumerate().map(|(i, s)| *s * Fr::from(i as u64 + 1)).sum()
    }

    fn run(buckets: usize, adds: &[(u32, G1Affine)]) -> G1Projective {
        let mut acc = BucketAccumulator::<ark_bn254::g1::Config>::new(buckets, adds.len());
        for (b, p) in adds {
            acc.add(*b, p, false);
        }
        acc.finish()
    }

    /// The same additions, every other one sent as -(-p) through the sign flag.
    fn run_signed(buckets: usize, adds: &[(u32, G1Affine)]) -> G1Projective {
        let negated: Vec<G1Affine> = adds.iter().map(|(_, p)| -*p).collect();
        let mut acc = BucketAccumulator::<ark_bn254::g1::Config>::new(buckets, adds.len());
        for (i, (b, p)) in adds.iter().enumerate() {
            if i % 2 == 0 {
                acc.add(*b, &negated[i], true);
            } else {
                acc.add(*b, p, false);
            }
        }
        acc.finish()
    }

    #[test]
    fn random_points_match_naive_buckets() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let adds: Vec<(u32, G1Affine)> =
            (0..3000).map(|_| (rng.gen_range(0..64), G1Projective::rand(&mut rng).into_affine())).collect();
        assert_eq!(run(64, &adds), naive(64, &adds));
        assert_eq!(run_signed(64, &adds), naive(64, &adds));
    }

    /// A top window's few buckets: replicated, then folded before the reduction.
    #[test]
    fn few_buckets_for_many_points_are_replicated_and_folded() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let points: Vec<G1Affine> = (0..200).map(|_| G1Projective::rand(&mut rng).into_affine()).collect();
        let adds: Vec<(u32, G1Affine)> =
            (0..6000).map(|_| (rng.gen_range(0..20), points[rng.gen_range(0..200)])).collect();
        assert_eq!(replicas(20, adds.len()), 18);
        assert_eq!(run(20, &adds), naive(20, &adds));
        assert_eq!(run_signed(20, &adds), naive(20, &adds));
    }

    #[test]
    fn repeated_points_negations_and_single_bucket() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
        let p = G1Projective::rand(&mut rng).into_affine();
        let q = G1Projective::rand(&mut rng).into_affine();
        let mut adds = Vec::new();
        for i in 0..2000u32 {
            // Same point many times into one bucket (queue + overflow path),
            // P and -P pairs (cancellation), doublings.
            adds.push((0, p));
            adds.push((1, if i % 2 == 0 { q } else { -q }));
            adds.push((2 + i % 3, p));
            adds.push((5, -p));
        }
        assert_eq!(run(8, &adds), naive(8, &adds));
        assert_eq!(run_signed(8, &adds), naive(8, &adds));
    }
}
