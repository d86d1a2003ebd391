//! The scheduling queue: `active` (a heap ordered by the profile's
//! QueueSort plugin), `backoff` (pods waiting out 1 s → 10 s exponential
//! back-off after a failed attempt) and `unschedulable` (pods that failed
//! and wait for a cluster event, or at most five minutes). Gated pods
//! (PreEnqueue rejected) wait in `unschedulable` until updated.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::framework::runtime::Framework;
use crate::framework::PodInfo;

/// Upstream's podMaxInUnschedulablePodsDuration.
pub const MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(300);

/// A pod in the queue.
#[derive(Clone)]
pub struct QueuedPod {
    pub info: Arc<PodInfo>,
    pub framework: Arc<Framework>,
    /// Enqueue sequence number (FIFO among equals).
    pub timestamp: u64,
    pub attempts: u32,
    /// When the pod first entered the queue (for the e2e latency metric).
    pub initial_attempt: Option<Instant>,
    /// When it last failed (back-off is measured from here).
    pub last_failure: Option<Instant>,
    pub gated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Active,
    Backoff,
    Unschedulable,
    InFlight,
}

struct HeapItem {
    pod: Arc<PodInfo>,
    framework: Arc<Framework>,
    ts: u64,
    gen: u64,
}

impl PartialEq for HeapItem {
    fn eq(&self, o: &Self) -> bool {
        self.ts == o.ts && self.gen == o.gen
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for HeapItem {
    fn cmp(&self, o: &Self) -> CmpOrdering {
        // BinaryHeap is a max-heap: "greater" pops first.
        if self.framework.less(&self.pod, self.ts, &o.pod, o.ts) {
            CmpOrdering::Greater
        } else if self.framework.less(&o.pod, o.ts, &self.pod, self.ts) {
            CmpOrdering::Less
        } else {
            o.gen.cmp(&self.gen)
        }
    }
}

struct Entry {
    pod: QueuedPod,
    at: Where,
    gen: u64,
    since: Instant,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<HeapItem>,
    seq: u64,
    gen: u64,
    /// Bumped on every cluster event that may make pods schedulable.
    move_cycle: u64,
    /// The move cycle when each in-flight pod was popped.
    popped_at: HashMap<String, u64>,
    closed: bool,
}

/// Counts per sub-queue (for scheduler_pending_pods).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
    pub gated: usize,
}

pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl SchedulingQueue {
    pub fn new(initial_backoff: Duration, max_backoff: Duration) -> SchedulingQueue {
        SchedulingQueue {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            initial_backoff,
            max_backoff,
        }
    }

    /// Back-off after `attempts` failures: initial · 2^(attempts-1), capped.
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut d = self.initial_backoff;
        for _ in 1..attempts.max(1) {
            d = d.saturating_mul(2);
            if d >= self.max_backoff {
                return self.max_backoff;
            }
        }
        d.min(self.max_backoff)
    }

    fn push_active(inner: &mut Inner, key: &str) {
        inner.gen += 1;
        let gen = inner.gen;
        if let Some(e) = inner.entries.get_mut(key) {
            e.at = Where::Active;
            e.gen = gen;
            let item = HeapItem {
                pod: e.pod.info.clone(),
                framework: e.pod.framework.clone(),
                ts: e.pod.timestamp,
                gen,
            };
            inner.active.push(item);
        }
    }

    /// A new pending pod (or one seen again after a relist).
    pub fn add(&self, info: Arc<PodInfo>, framework: Arc<Framework>) {
        let mut g = self.inner.lock().unwrap();
        if let Some(e) = g.entries.get_mut(&info.key) {
            let was_gated = e.pod.gated;
            let changed = spec_changed(&e.pod.info, &info);
            e.pod.info = info.clone();
            let key = info.key.clone();
            if e.at == Where::InFlight {
                return;
            }
            if e.at == Where::Active {
                // Re-push so the heap sees the new object.
                Self::push_active(&mut g, &key);
                drop(g);
                self.notify.notify_one();
                return;
            }
            if changed && (was_gated || e.at == Where::Unschedulable) {
                let gated = !e.pod.framework.run_pre_enqueue(&info.pod).is_success();
                e.pod.gated = gated;
                if !gated {
                    self.activate_or_backoff(&mut g, &key);
                }
            }
            drop(g);
            self.notify.notify_one();
            return;
        }
        g.seq += 1;
        let gated = !framework.run_pre_enqueue(&info.pod).is_success();
        let key = info.key.clone();
        let qp = QueuedPod {
            timestamp: g.seq,
            info,
            framework,
            attempts: 0,
            initial_attempt: Some(Instant::now()),
            last_failure: None,
            gated,
        };
        g.entries.insert(
            key.clone(),
            Entry {
                pod: qp,
                at: Where::Unschedulable,
                gen: 0,
                since: Instant::now(),
            },
        );
        if !gated {
            Self::push_active(&mut g, &key);
            drop(g);
            self.notify.notify_one();
        }
    }

    /// The pod was deleted or got bound by someone else.
    pub fn delete(&self, key: &str) {
        let mut g = self.inner.lock().unwrap();
        g.entries.remove(key);
        g.popped_at.remove(key);
    }

    fn activate_or_backoff(&self, g: &mut Inner, key: &str) {
        let Some(e) = g.entries.get_mut(key) else {
            return;
        };
        let backing_off = e
            .pod
            .last_failure
            .is_some_and(|t| t.elapsed() < self.backoff_duration(e.pod.attempts));
        if backing_off {
            e.at = Where::Backoff;
        } else {
            Self::push_active(g, key);
        }
    }

    /// Wait for the next pod to schedule; None once closed.
    pub async fn pop(&self) -> Option<QueuedPod> {
        loop {
            let notified = self.notify.notified();
            {
                let mut g = self.inner.lock().unwrap();
                if g.closed {
                    return None;
                }
                while let Some(item) = g.active.pop() {
                    let key = item.pod.key.clone();
                    let fresh = g
                        .entries
                        .get(&key)
                        .is_some_and(|e| e.at == Where::Active && e.gen == item.gen);
                    if !fresh {
                        continue;
                    }
                    let mc = g.move_cycle;
                    g.popped_at.insert(key.clone(), mc);
                    let e = g.entries.get_mut(&key).unwrap();
                    e.at = Where::InFlight;
                    e.pod.attempts += 1;
                    return Some(e.pod.clone());
                }
            }
            notified.await;
        }
    }

    /// The cycle failed: back to backoff (if a move event happened while the
    /// pod was in flight, or the error was not "unschedulable") or the
    /// unschedulable pool.
    pub fn requeue_failed(&self, key: &str, unschedulable: bool) {
        let mut g = self.inner.lock().unwrap();
        let popped = g.popped_at.remove(key).unwrap_or(0);
        let moved = g.move_cycle > popped;
        let Some(e) = g.entries.get_mut(key) else {
            return;
        };
        e.pod.last_failure = Some(Instant::now());
        e.since = Instant::now();
        e.at = if unschedulable && !moved {
            Where::Unschedulable
        } else {
            Where::Backoff
        };
    }

    /// Scheduled (assumed): leaves the queue.
    pub fn done(&self, key: &str) {
        self.delete(key);
    }

    /// A cluster event (node added/changed, pod deleted...) may make
    /// unschedulable pods fit: move them to active or backoff.
    pub fn move_all_to_active_or_backoff(&self) {
        let mut g = self.inner.lock().unwrap();
        g.move_cycle += 1;
        let keys: Vec<String> = g
            .entries
            .iter()
            .filter(|(_, e)| e.at == Where::Unschedulable && !e.pod.gated)
            .map(|(k, _)| k.clone())
            .collect();
        let any = !keys.is_empty();
        for k in keys {
            self.activate_or_backoff(&mut g, &k);
        }
        drop(g);
        if any {
            self.notify.notify_waiters();
            self.notify.notify_one();
        }
    }

    /// Periodic work (every second): finished back-offs become active, pods
    /// unschedulable for longer than five minutes are retried.
    pub fn flush(&self) {
        let mut g = self.inner.lock().unwrap();
        let mut moved = false;
        let keys: Vec<(String, Where)> = g
            .entries
            .iter()
            .filter(|(_, e)| match e.at {
                Where::Backoff => e
                    .pod
                    .last_failure
                    .is_none_or(|t| t.elapsed() >= self.backoff_duration(e.pod.attempts)),
                Where::Unschedulable => !e.pod.gated && e.since.elapsed() >= MAX_IN_UNSCHEDULABLE,
                _ => false,
            })
            .map(|(k, e)| (k.clone(), e.at))
            .collect();
        for (k, at) in keys {
            moved = true;
            if at == Where::Backoff {
                Self::push_active(&mut g, &k);
            } else {
                self.activate_or_backoff(&mut g, &k);
            }
        }
        drop(g);
        if moved {
            self.notify.notify_one();
        }
    }

    pub fn pending(&self) -> Pending {
        let g = self.inner.lock().unwrap();
        let mut p = Pending::default();
        for e in g.entries.values() {
            match e.at {
                Where::Active | Where::InFlight => p.active += 1,
                Where::Backoff => p.backoff += 1,
                Where::Unschedulable if e.pod.gated => p.gated += 1,
                Where::Unschedulable => p.unschedulable += 1,
            }
        }
        p
    }

    pub fn contains(&self, key: &str) -> bool {
        self.inner.lock().unwrap().entries.contains_key(key)
    }

    pub fn close(&self) {
        self.inner.lock().unwrap().closed = true;
        self.notify.notify_waiters();
    }
}

/// Did anything the scheduler cares about change (not just status)?
fn spec_changed(old: &PodInfo, new: &PodInfo) -> bool {
    old.pod.spec != new.pod.spec || old.pod.metadata.labels != new.pod.metadata.labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::runtime::Framework;
    use crate::plugins::testing::pod;
    use crate::plugins::{queuesort::PrioritySort, schedulinggates::SchedulingGates};

    fn fw() -> Arc<Framework> {
        Arc::new(Framework::new(
            "default-scheduler",
            vec![(Arc::new(PrioritySort), 0), (Arc::new(SchedulingGates), 0)],
            0,
        ))
    }

    #[tokio::test]
    async fn pops_by_priority_then_fifo_and_holds_gated_pods() {
        let q = SchedulingQueue::new(Duration::from_secs(1), Duration::from_secs(10));
        let f = fw();
        q.add(Arc::new(pod("a").info()), f.clone());
        q.add(Arc::new(pod("gated").gate("g").info()), f.clone());
        q.add(Arc::new(pod("b").priority(5).info()), f.clone());
        q.add(Arc::new(pod("c").info()), f.clone());
        assert_eq!(q.pop().await.unwrap().info.name, "b");
        assert_eq!(q.pop().await.unwrap().info.name, "a");
        assert_eq!(q.pop().await.unwrap().info.name, "c");
        assert_eq!(q.pending().gated, 1);
        // Removing the gate activates it.
        q.add(Arc::new(pod("gated").info()), f.clone());
        assert_eq!(q.pop().await.unwrap().info.name, "gated");
    }

    #[tokio::test]
    async fn failed_pods_wait_for_an_event_or_back_off() {
        let q = SchedulingQueue::new(Duration::from_millis(1), Duration::from_millis(10));
        q.add(Arc::new(pod("a").info()), fw());
        let p = q.pop().await.unwrap();
        q.requeue_failed(&p.info.key, true);
        assert_eq!(q.pending().unschedulable, 1);
        std::thread::sleep(Duration::from_millis(5));
        q.move_all_to_active_or_backoff();
        assert_eq!(q.pending().active, 1);
        let p = q.pop().await.unwrap();
        assert_eq!(p.attempts, 2);
        // An event during the attempt sends it to backoff, not unschedulable.
        q.move_all_to_active_or_backoff();
        q.requeue_failed(&p.info.key, true);
        assert_eq!(q.pending().backoff, 1);
    }

    #[test]
    fn backoff_doubles_up_to_the_max() {
        let q = SchedulingQueue::new(Duration::from_secs(1), Duration::from_secs(10));
        let d: Vec<u64> = (1..=6).map(|a| q.backoff_duration(a).as_secs()).collect();
        assert_eq!(d, vec![1, 2, 4, 8, 10, 10]);
    }
}
