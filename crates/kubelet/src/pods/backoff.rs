//! Per-key exponential back-off (upstream flowcontrol.Backoff as the kubelet
//! uses it): 10 s doubling to 300 s; an entry idle for twice the maximum is
//! forgotten.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
struct Entry {
    delay: Duration,
    last_update: SystemTime,
}

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(INITIAL, MAX)
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    fn expired(&self, e: &Entry, now: SystemTime) -> bool {
        now.duration_since(e.last_update).unwrap_or_default() > self.max * 2
    }

    /// The current delay for `key`, if any.
    pub fn get(&self, key: &str, now: SystemTime) -> Option<Duration> {
        self.entries
            .get(key)
            .filter(|e| !self.expired(e, now))
            .map(|e| e.delay)
    }

    /// If `key` is backing off relative to `since` (e.g. the container's
    /// finish time), the remaining wait and the current delay.
    pub fn in_backoff_since(
        &self,
        key: &str,
        since: SystemTime,
        now: SystemTime,
    ) -> Option<(Duration, Duration)> {
        let e = self.entries.get(key)?;
        if self.expired(e, now) {
            return None;
        }
        let elapsed = now.duration_since(since).unwrap_or_default();
        if elapsed < e.delay {
            Some((e.delay - elapsed, e.delay))
        } else {
            None
        }
    }

    /// Whether `key` is backing off relative to its last recorded attempt.
    pub fn in_backoff_since_update(&self, key: &str, now: SystemTime) -> bool {
        match self.entries.get(key) {
            Some(e) if !self.expired(e, now) => {
                now.duration_since(e.last_update).unwrap_or_default() < e.delay
            }
            _ => false,
        }
    }

    /// Records an attempt: the first sets the initial delay, later ones double it.
    pub fn next(&mut self, key: &str, now: SystemTime) {
        let initial = self.initial;
        let max = self.max;
        let expired = self
            .entries
            .get(key)
            .map(|e| self.expired(e, now))
            .unwrap_or(true);
        let e = self.entries.entry(key.to_string()).or_insert(Entry {
            delay: initial,
            last_update: now,
        });
        if expired {
            e.delay = initial;
        } else {
            e.delay = (e.delay * 2).min(max);
        }
        e.last_update = now;
    }

    /// Sets the delay of `key` if it has none (e.g. from a restart count
    /// after a kubelet restart).
    pub fn seed(&mut self, key: &str, delay: Duration, now: SystemTime) {
        if self.get(key, now).is_none() {
            self.entries.insert(
                key.to_string(),
                Entry {
                    delay: delay.min(self.max),
                    last_update: now,
                },
            );
        }
    }

    /// The delay after `restarts` restarts: initial × 2^(restarts-1), capped.
    pub fn delay_for_restarts(&self, restarts: i32) -> Duration {
        if restarts <= 0 {
            return Duration::ZERO;
        }
        let mut d = self.initial;
        for _ in 1..restarts.min(16) {
            d = (d * 2).min(self.max);
        }
        d.min(self.max)
    }

    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    pub fn gc(&mut self, now: SystemTime) {
        let max2 = self.max * 2;
        self.entries
            .retain(|_, e| now.duration_since(e.last_update).unwrap_or_default() <= max2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_and_cap() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut b = Backoff::default();
        assert!(b.in_backoff_since("c", t0, t0).is_none());
        b.next("c", t0);
        assert_eq!(b.get("c", t0), Some(Duration::from_secs(10)));
        // Finished 3 s ago with a 10 s delay: 7 s left.
        let now = t0 + Duration::from_secs(3);
        assert_eq!(
            b.in_backoff_since("c", t0, now),
            Some((Duration::from_secs(7), Duration::from_secs(10)))
        );
        assert!(b
            .in_backoff_since("c", t0, t0 + Duration::from_secs(11))
            .is_none());
        let mut t = t0;
        let mut seen = vec![];
        for _ in 0..7 {
            t += Duration::from_secs(1);
            b.next("c", t);
            seen.push(b.get("c", t).unwrap().as_secs());
        }
        assert_eq!(seen, vec![20, 40, 80, 160, 300, 300, 300]);
        // Idle for more than 2×max: forgotten.
        let later = t + Duration::from_secs(601);
        assert!(b.get("c", later).is_none());
        b.next("c", later);
        assert_eq!(b.get("c", later), Some(Duration::from_secs(10)));
    }
}
