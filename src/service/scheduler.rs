//! The queues: one bounded priority queue per job kind, and the runners'
//! wait for work.
//!
//! A submit first reserves a place ([`Scheduler::reserve`]): a full queue
//! refuses at once (load shedding, not buffering), before anything is
//! written. The place becomes a queued job once the journal has recorded it.
//!
//! Jobs that need a proving key set name it: among queued jobs of equal
//! priority, one using the set the kind's last job used goes first (a set
//! is served back to back while it is loaded), up to [`SAME_SET_RUN`] in a
//! row past older jobs, so other sets are not starved.

use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::proto::JobKind;

/// The most jobs taken in a row ahead of older ones for sharing a key set.
pub const SAME_SET_RUN: u32 = 16;

/// A queued job's order: higher priority first, then lower id (earlier).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    priority: i32,
    id: u64,
    /// The key set it uses (0: none).
    set: u32,
    /// Unix ms after which it is not started (0: none); see [`Scheduler::take_expired`].
    deadline: u64,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.priority.cmp(&other.priority).then(other.id.cmp(&self.id))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Entry>,
    /// Places reserved by submits whose journal write is under way.
    reserved: usize,
    running: usize,
    /// The key set the last job taken used, and how many were taken in a
    /// row ahead of older jobs for it.
    last_set: u32,
    streak: u32,
}

impl Queue {
    /// The next job: the most urgent, except that among jobs of its
    /// priority one using the last job's key set goes first (bounded).
    fn pop_next(&mut self) -> Option<Entry> {
        let top = *self.heap.peek()?;
        if self.last_set != 0 && top.set != self.last_set && self.streak < SAME_SET_RUN {
            let same = self.heap.iter().filter(|e| e.priority == top.priority && e.set == self.last_set).max().copied();
            if let Some(same) = same {
                self.heap.retain(|e| e.id != same.id);
                self.streak += 1;
                return Some(same);
            }
        }
        let entry = self.heap.pop()?;
        self.streak = 0;
        if entry.set != 0 {
            self.last_set = entry.set;
        }
        Some(entry)
    }
}

struct State {
    queues: BTreeMap<i32, Queue>,
    closed: bool,
    /// One wait per set of kinds that runners take: a new job wakes one
    /// runner that can run it, and no other.
    waits: Vec<(Vec<JobKind>, Arc<Condvar>)>,
}

impl State {
    fn wait_for(&mut self, kinds: &[JobKind]) -> Arc<Condvar> {
        if let Some((_, ready)) = self.waits.iter().find(|(k, _)| k == kinds) {
            return ready.clone();
        }
        let ready = Arc::new(Condvar::new());
        self.waits.push((kinds.to_vec(), ready.clone()));
        ready
    }

    /// Wake one runner of each set of kinds that includes `kind`.
    fn wake(&self, kind: JobKind) {
        for (kinds, ready) in &self.waits {
            if kinds.contains(&kind) {
                ready.notify_one();
            }
        }
    }
}

/// The queue of one kind was full.
#[derive(Debug, PartialEq, Eq)]
pub struct QueueFull {
    pub kind: JobKind,
    pub depth: usize,
}

/// How loaded one kind is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    pub queued: usize,
    pub running: usize,
}

pub struct Scheduler {
    depth: usize,
    state: Mutex<State>,
}

impl Scheduler {
    /// Queues holding at most `depth` jobs each.
    pub fn new(depth: usize) -> Scheduler {
        Scheduler { depth, state: Mutex::new(State { queues: BTreeMap::new(), closed: false, waits: Vec::new() }) }
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place in `kind`'s queue, or [`QueueFull`].
    pub fn reserve(&self, kind: JobKind) -> Result<Reservation<'_>, QueueFull> {
        let mut state = self.lock();
        let queue = state.queues.entry(kind as i32).or_default();
        if queue.heap.len() + queue.reserved >= self.depth {
            return Err(QueueFull { kind, depth: self.depth });
        }
        queue.reserved += 1;
        Ok(Reservation { scheduler: self, kind, used: false })
    }

    /// Queue a job recovered at start (past the depth if need be: it was
    /// accepted); `deadline` as [`Reservation::enqueue`]'s.
    pub fn requeue(&self, kind: JobKind, id: u64, priority: i32, deadline: u64) {
        let mut state = self.lock();
        state.queues.entry(kind as i32).or_default().heap.push(Entry { priority, id, set: 0, deadline });
        state.wake(kind);
    }

    /// Take out of their queues the jobs whose deadline is at or before
    /// `now` (Unix ms), so that they stop holding places that new jobs are
    /// refused for; their ends are the caller's.
    pub fn take_expired(&self, now: u64) -> Vec<(JobKind, u64)> {
        let mut state = self.lock();
        let mut expired = Vec::new();
        for (&kind, queue) in state.queues.iter_mut() {
            let Ok(kind) = JobKind::try_from(kind) else { continue };
            if !queue.heap.iter().any(|e| e.deadline != 0 && e.deadline <= now) {
                continue;
            }
            queue.heap.retain(|e| {
                let passed = e.deadline != 0 && e.deadline <= now;
                if passed {
                    expired.push((kind, e.id));
                }
                !passed
            });
        }
        expired
    }

    /// Take a queued job out of its queue; false if it was not queued.
    pub fn remove(&self, kind: JobKind, id: u64) -> bool {
        let mut state = self.lock();
        let Some(queue) = state.queues.get_mut(&(kind as i32)) else { return false };
        let before = queue.heap.len();
        queue.heap.retain(|e| e.id != id);
        before != queue.heap.len()
    }

    /// Jobs of its kind ahead of `id` in the queue.
    pub fn position(&self, kind: JobKind, id: u64) -> Option<usize> {
        let state = self.lock();
        let queue = state.queues.get(&(kind as i32))?;
        let me = *queue.heap.iter().find(|e| e.id == id)?;
        Some(queue.heap.iter().filter(|e| **e > me).count())
    }

    /// Wait for the most urgent job among `kinds`: the highest priority,
    /// then the oldest. None once the scheduler is closed.
    pub fn take(&self, kinds: &[JobKind]) -> Option<(JobKind, u64)> {
        let mut state = self.lock();
        let ready = state.wait_for(kinds);
        loop {
            if state.closed {
                return None;
            }
            let best = kinds
                .iter()
                .filter_map(|k| state.queues.get(&(*k as i32)).and_then(|q| q.heap.peek()).map(|e| (*k, *e)))
                .max_by_key(|(_, e)| *e);
            if let Some((kind, _)) = best {
                let queue = state.queues.get_mut(&(kind as i32)).expect("peeked");
                let entry = queue.pop_next().expect("peeked");
                queue.running += 1;
                return Some((kind, entry.id));
            }
            state = ready.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The most urgent queued job of `kind`, without waiting (None: none
    /// queued, or closed). It counts as running like one [`Scheduler::take`] gave.
    pub fn take_queued(&self, kind: JobKind) -> Option<u64> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        let queue = state.queues.get_mut(&(kind as i32))?;
        let entry = queue.pop_next()?;
        queue.running += 1;
        Some(entry.id)
    }

    /// A runner's place for a job of `kind` to run at once on the caller's
    /// thread, as if a runner had taken it: given only when no job of
    /// `kind` waits (priorities and queue order stand) and fewer than
    /// `runners` jobs of `kinds` (the kinds the runners share) are running.
    /// It counts as running until dropped.
    pub fn run_now(&self, kind: JobKind, kinds: &[JobKind], runners: usize) -> Option<RunningNow<'_>> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        let running: usize = kinds.iter().filter_map(|k| state.queues.get(&(*k as i32))).map(|q| q.running).sum();
        let queue = state.queues.entry(kind as i32).or_default();
        if !queue.heap.is_empty() || running >= runners {
            return None;
        }
        queue.running += 1;
        Some(RunningNow { scheduler: self, kind })
    }

    /// A job taken by [`Scheduler::take`] has ended or stopped.
    pub fn finished(&self, kind: JobKind) {
        let mut state = self.lock();
        if let Some(queue) = state.queues.get_mut(&(kind as i32)) {
            queue.running = queue.running.saturating_sub(1);
        }
    }

    pub fn load(&self, kind: JobKind) -> Load {
        let state = self.lock();
        state
            .queues
            .get(&(kind as i32))
            .map_or(Load::default(), |q| Load { queued: q.heap.len() + q.reserved, running: q.running })
    }

    /// Wake every runner and hand out no more work.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        for (_, ready) in &state.waits {
            ready.notify_all();
        }
    }
}

/// A job running at once ([`Scheduler::run_now`]); dropped, it has finished.
pub struct RunningNow<'a> {
    scheduler: &'a Scheduler,
    kind: JobKind,
}

impl Drop for RunningNow<'_> {
    fn drop(&mut self) {
        self.scheduler.finished(self.kind);
    }
}

/// A reserved place; dropped unused, it is given back.
pub struct Reservation<'a> {
    scheduler: &'a Scheduler,
    kind: JobKind,
    used: bool,
}

impl Reservation<'_> {
    /// The job is recorded: queue it (`set`: the key set it uses, or 0;
    /// `deadline`: the Unix ms after which [`Scheduler::take_expired`]
    /// takes it out, or 0). Returns the jobs ahead of it.
    pub fn enqueue(mut self, id: u64, priority: i32, set: u32, deadline: u64) -> usize {
        self.used = true;
        let mut state = self.scheduler.lock();
        let queue = state.queues.entry(self.kind as i32).or_default();
        queue.reserved -= 1;
        let entry = Entry { priority, id, set, deadline };
        let ahead = queue.heap.iter().filter(|e| **e > entry).count();
        queue.heap.push(entry);
        state.wake(self.kind);
        ahead
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.used {
            let mut state = self.scheduler.lock();
            if let Some(queue) = state.queues.get_mut(&(self.kind as i32)) {
                queue.reserved -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_refuses_and_a_dropped_reservation_frees_its_place() {
        let s = Scheduler::new(2);
        let a = s.reserve(JobKind::Hash).unwrap();
        let b = s.reserve(JobKind::Hash).unwrap();
        assert_eq!(s.reserve(JobKind::Hash).err(), Some(QueueFull { kind: JobKind::Hash, depth: 2 }));
        assert!(s.reserve(JobKind::Msm).is_ok(), "each kind has its own queue");
        drop(b);
        assert_eq!(a.enqueue(1, 0, 0, 0), 0);
        assert!(s.reserve(JobKind::Hash).is_ok());
    }

    #[test]
    fn jobs_past_their_deadline_are_taken_out_of_their_queues() {
        let s = Scheduler::new(3);
        s.reserve(JobKind::Hash).unwrap().enqueue(1, 0, 0, 100);
        s.reserve(JobKind::Hash).unwrap().enqueue(2, 0, 0, 0);
        s.reserve(JobKind::Hash).unwrap().enqueue(3, 0, 0, 200);
        s.requeue(JobKind::Msm, 4, 0, 50);
        assert!(s.reserve(JobKind::Hash).is_err(), "full");
        assert_eq!(s.take_expired(99), vec![(JobKind::Msm, 4)]);
        assert_eq!(s.take_expired(150), vec![(JobKind::Hash, 1)]);
        assert!(s.reserve(JobKind::Hash).is_ok(), "its place is free");
        assert_eq!(s.position(JobKind::Hash, 3), Some(1));
    }

    #[test]
    fn higher_priority_first_then_submission_order() {
        let s = Scheduler::new(10);
        for (id, priority) in [(1, 0), (2, 5), (3, 0), (4, 5)] {
            s.reserve(JobKind::Hash).unwrap().enqueue(id, priority, 0, 0);
        }
        assert_eq!(s.position(JobKind::Hash, 3), Some(3));
        assert!(s.remove(JobKind::Hash, 3));
        let order: Vec<u64> = (0..3).map(|_| s.take(&[JobKind::Hash]).unwrap().1).collect();
        assert_eq!(order, vec![2, 4, 1]);
        assert_eq!(s.load(JobKind::Hash), Load { queued: 0, running: 3 });
    }

    #[test]
    fn jobs_sharing_a_key_set_run_back_to_back_within_a_priority_and_a_bound() {
        let s = Scheduler::new(100);
        // Sets alternate in submission order; one urgent job uses set 8.
        for id in 1..=6u64 {
            s.reserve(JobKind::ProveOps).unwrap().enqueue(id, 0, if id % 2 == 1 { 4 } else { 8 }, 0);
        }
        s.reserve(JobKind::ProveOps).unwrap().enqueue(7, 5, 8, 0);
        let order: Vec<u64> = (0..7).map(|_| s.take(&[JobKind::ProveOps]).unwrap().1).collect();
        assert_eq!(order, vec![7, 2, 4, 6, 1, 3, 5], "priority first, then set 8 while it is loaded");

        // A stream of one set does not starve another for ever.
        let s = Scheduler::new(100);
        s.reserve(JobKind::ProveOps).unwrap().enqueue(1, 0, 4, 0);
        assert_eq!(s.take(&[JobKind::ProveOps]).unwrap().1, 1);
        s.reserve(JobKind::ProveOps).unwrap().enqueue(2, 0, 8, 0);
        for id in 3..40 {
            s.reserve(JobKind::ProveOps).unwrap().enqueue(id, 0, 4, 0);
        }
        let order: Vec<u64> = (0..=SAME_SET_RUN).map(|_| s.take(&[JobKind::ProveOps]).unwrap().1).collect();
        assert_eq!(*order.last().unwrap(), 2, "{order:?}");
    }

    #[test]
    fn a_job_wakes_a_runner_of_its_kind() {
        let s = std::sync::Arc::new(Scheduler::new(4));
        let runners: Vec<_> = [JobKind::Hash, JobKind::Msm]
            .into_iter()
            .map(|kind| {
                let s = s.clone();
                std::thread::spawn(move || s.take(&[kind]))
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.reserve(JobKind::Msm).unwrap().enqueue(7, 0, 0, 0);
        s.reserve(JobKind::Hash).unwrap().enqueue(8, 0, 0, 0);
        let taken: Vec<_> = runners.into_iter().map(|r| r.join().unwrap()).collect();
        assert_eq!(taken, vec![Some((JobKind::Hash, 8)), Some((JobKind::Msm, 7))]);
    }

    #[test]
    fn a_job_runs_at_once_only_with_a_runner_free_and_none_of_its_kind_waiting() {
        let s = Scheduler::new(4);
        let kinds = [JobKind::Hash, JobKind::Msm];
        let first = s.run_now(JobKind::Hash, &kinds, 2).expect("both runners free");
        assert_eq!(s.load(JobKind::Hash), Load { queued: 0, running: 1 });
        s.reserve(JobKind::Msm).unwrap().enqueue(1, 0, 0, 0);
        assert_eq!(s.take(&kinds), Some((JobKind::Msm, 1)));
        assert!(s.run_now(JobKind::Hash, &kinds, 2).is_none(), "both runners busy");
        drop(first);
        assert_eq!(s.load(JobKind::Hash), Load { queued: 0, running: 0 });
        s.reserve(JobKind::Hash).unwrap().enqueue(2, 0, 0, 0);
        assert!(s.run_now(JobKind::Hash, &kinds, 2).is_none(), "a hash job waits: it goes first");
        assert!(s.run_now(JobKind::Hash, &kinds, 0).is_none());
        assert_eq!(s.take(&kinds), Some((JobKind::Hash, 2)));
        s.finished(JobKind::Msm);
        assert!(s.run_now(JobKind::Hash, &kinds, 2).is_some(), "one runner free, nothing waiting");
        s.close();
        assert!(s.run_now(JobKind::Hash, &kinds, 2).is_none(), "closed");
    }

    #[test]
    fn close_wakes_a_waiting_runner() {
        let s = std::sync::Arc::new(Scheduler::new(1));
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || s.take(&[JobKind::Hash]))
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.close();
        assert_eq!(waiter.join().unwrap(), None);
    }
}
