//! A client-go style work queue: an item is never processed by two workers
//! at once, adding an item already queued is a no-op, adding one that is
//! being processed queues it again after [`WorkQueue::done`], with per-item
//! exponential back-off (5 ms doubling up to 1000 s) for failures and delayed
//! adds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

struct State<T> {
    queue: VecDeque<T>,
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
    shutting_down: bool,
}

struct Inner<T> {
    name: std::sync::OnceLock<String>,
    state: Mutex<State<T>>,
    notify: Notify,
    base_delay: Duration,
    max_delay: Duration,
}

/// A de-duplicating, rate-limited work queue. Cloning shares the queue.
pub struct WorkQueue<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        WorkQueue {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Hash + Eq + Clone + Send + Sync + 'static> Default for WorkQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Hash + Eq + Clone + Send + Sync + 'static> WorkQueue<T> {
    /// A queue with client-go's default per-item back-off (5 ms .. 1000 s).
    pub fn new() -> Self {
        Self::with_backoff(Duration::from_millis(5), Duration::from_secs(1000))
    }

    pub fn with_backoff(base_delay: Duration, max_delay: Duration) -> Self {
        WorkQueue {
            inner: Arc::new(Inner {
                name: std::sync::OnceLock::new(),
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    dirty: HashSet::new(),
                    processing: HashSet::new(),
                    failures: HashMap::new(),
                    shutting_down: false,
                }),
                notify: Notify::new(),
                base_delay,
                max_delay,
            }),
        }
    }

    /// Names the queue for the workqueue_* metrics (first name wins;
    /// [`run_workers`] sets it).
    pub fn set_name(&self, name: &str) {
        let _ = self.inner.name.set(name.to_string());
    }

    fn metrics(&self) -> Option<(&'static crate::metrics::WorkqueueMetrics, &str)> {
        self.inner
            .name
            .get()
            .map(|n| (crate::metrics::workqueue(), n.as_str()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds every one of `items` (e.g. all of an informer's keys, for a resync).
    pub fn add_all(&self, items: impl IntoIterator<Item = T>) {
        for item in items {
            self.add(item);
        }
    }

    /// Queues `item` (no-op when already queued).
    pub fn add(&self, item: T) {
        let mut s = self.lock();
        if s.shutting_down || s.dirty.contains(&item) {
            return;
        }
        s.dirty.insert(item.clone());
        if s.processing.contains(&item) {
            return;
        }
        s.queue.push_back(item);
        let depth = s.queue.len();
        drop(s);
        if let Some((m, n)) = self.metrics() {
            m.adds.with_label_values(&[n]).inc();
            m.depth.with_label_values(&[n]).set(depth as i64);
        }
        self.inner.notify.notify_one();
    }

    /// Queues `item` after `delay`.
    pub fn add_after(&self, item: T, delay: Duration) {
        if delay.is_zero() {
            return self.add(item);
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(item);
        });
    }

    /// Queues `item` after its back-off (which doubles with each call until
    /// [`WorkQueue::forget`]).
    pub fn add_rate_limited(&self, item: T) {
        let n = {
            let mut s = self.lock();
            let n = s.failures.entry(item.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if let Some((m, name)) = self.metrics() {
            m.retries.with_label_values(&[name]).inc();
        }
        let exp = (n - 1).min(30);
        let delay = self
            .inner
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.inner.max_delay);
        self.add_after(item, delay);
    }

    /// Clears the back-off of `item`.
    pub fn forget(&self, item: &T) {
        self.lock().failures.remove(item);
    }

    /// How many times `item` failed since it was last forgotten.
    pub fn num_requeues(&self, item: &T) -> u32 {
        self.lock().failures.get(item).copied().unwrap_or(0)
    }

    /// The number of queued items.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next item to process (mark it [`WorkQueue::done`] afterwards);
    /// `None` after [`WorkQueue::shutdown`].
    pub async fn get(&self) -> Option<T> {
        loop {
            let notified = self.inner.notify.notified();
            {
                let mut s = self.lock();
                if s.shutting_down {
                    return None;
                }
                if let Some(item) = s.queue.pop_front() {
                    s.dirty.remove(&item);
                    s.processing.insert(item.clone());
                    let more = !s.queue.is_empty();
                    let depth = s.queue.len();
                    drop(s);
                    if let Some((m, n)) = self.metrics() {
                        m.depth.with_label_values(&[n]).set(depth as i64);
                    }
                    if more {
                        self.inner.notify.notify_one();
                    }
                    return Some(item);
                }
            }
            notified.await;
        }
    }

    /// Marks `item` processed; re-queues it if it was added meanwhile.
    pub fn done(&self, item: &T) {
        let mut s = self.lock();
        s.processing.remove(item);
        if s.dirty.contains(item) {
            s.queue.push_back(item.clone());
            drop(s);
            self.inner.notify.notify_one();
        }
    }

    /// Stops the queue: every pending and future `get` returns `None`.
    pub fn shutdown(&self) {
        self.lock().shutting_down = true;
        self.inner.notify.notify_waiters();
    }
}

/// Runs `workers` workers on `queue` until `stop` fires: each takes an item,
/// runs `sync(item)`, forgets it on success and re-queues it with back-off
/// on error (logged). Returns when all workers have stopped.
pub async fn run_workers<T, F, Fut>(
    queue: WorkQueue<T>,
    workers: usize,
    stop: CancellationToken,
    name: &'static str,
    sync: F,
) where
    T: Hash + Eq + Clone + Send + Sync + std::fmt::Debug + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    queue.set_name(name);
    let sync = Arc::new(sync);
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let sync = sync.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(item) = queue.get().await {
                match sync(item.clone()).await {
                    Ok(()) => queue.forget(&item),
                    Err(e) => {
                        tracing::info!("{name}: error syncing {item:?}: {e:#}");
                        queue.add_rate_limited(item.clone());
                    }
                }
                queue.done(&item);
            }
        }));
    }
    stop.cancelled().await;
    queue.shutdown();
    for t in tasks {
        let _ = t.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_and_requeues_while_processing() {
        let q: WorkQueue<&'static str> = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.get().await.unwrap();
        assert_eq!(a, "a");
        q.add("a");
        assert_eq!(q.len(), 1);
        q.done(&"a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await, Some("b"));
        assert_eq!(q.get().await, Some("a"));
        q.shutdown();
        assert_eq!(q.get().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_and_rate_limited_adds() {
        let q: WorkQueue<u32> =
            WorkQueue::with_backoff(Duration::from_millis(10), Duration::from_millis(40));
        q.add_after(1, Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(q.is_empty());
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(q.get().await, Some(1));
        q.done(&1);
        // Back-off doubles per failure, capped, and forget resets it.
        for _ in 0..4 {
            q.add_rate_limited(2);
        }
        assert_eq!(q.num_requeues(&2), 4);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(q.get().await, Some(2));
        q.done(&2);
        q.forget(&2);
        assert_eq!(q.num_requeues(&2), 0);
    }

    #[tokio::test]
    async fn workers_retry_failures_until_success() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let q: WorkQueue<&'static str> =
            WorkQueue::with_backoff(Duration::from_millis(1), Duration::from_millis(5));
        let stop = CancellationToken::new();
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let s = stop.clone();
        q.add("x");
        let task = tokio::spawn(run_workers(q.clone(), 2, stop.clone(), "test", move |_k| {
            let c = c.clone();
            let s = s.clone();
            async move {
                if c.fetch_add(1, Ordering::SeqCst) < 2 {
                    anyhow::bail!("not yet")
                }
                s.cancel();
                Ok(())
            }
        }));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
