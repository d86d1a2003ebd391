//! The etcd watch session behind [`EtcdStorage::watch`] and the watch hub.
//!
//! One task per watch owns an etcd watch stream. It
//! * resumes transparently after transient failures (from the revision after
//!   the last one delivered), with exponential backoff, on another member if
//!   the current one failed,
//! * reports compaction of the needed history as [`StorageError::Expired`],
//! * forwards etcd progress notifications as [`StorageEvent::Progress`].
//!
//! Progress notifications are only trustworthy when etcd sends them in order
//! with the events. Periodic per-watcher notifications always are. Answers to
//! explicit progress requests are not before etcd 3.4.25 / 3.5.8 (they may
//! overtake queued events), so explicit requests are only made to members
//! running a fixed version.

use std::time::{Duration, Instant};

use etcd_client::{EventType as EtcdEventType, WatchOptions, WatchResponse};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::etcd::{convert_kv, map_etcd_error};
use crate::{EtcdStorage, Result, Revision, StorageError, StorageEvent};

/// Interval of explicit progress requests (fixed etcd versions only).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Buffer between the session task and its consumer (in batches).
const CHANNEL_CAPACITY: usize = 64;
/// How long establishing a watch may take.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// What to watch.
#[derive(Clone, Debug)]
pub(crate) struct WatchSpec {
    /// Key prefix; empty for the whole key space.
    pub key_prefix: String,
    /// Ask etcd for previous values.
    pub prev_kv: bool,
    /// Ask for progress every second (when the member supports it safely).
    pub request_progress: bool,
}

/// Starts a watch session delivering batches (one per etcd response) of events
/// with revision `> from`.
pub(crate) fn spawn_watch(
    storage: EtcdStorage,
    spec: WatchSpec,
    from: Revision,
) -> mpsc::Receiver<Result<Vec<StorageEvent>>> {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let mut session = Session {
            storage,
            spec,
            last: from,
            tx,
            member: 0,
        };
        session.run().await;
    });
    rx
}

struct Session {
    storage: EtcdStorage,
    spec: WatchSpec,
    /// Every event with a revision `<= last` has been delivered.
    last: Revision,
    tx: mpsc::Sender<Result<Vec<StorageEvent>>>,
    /// The etcd member of the current connection.
    member: usize,
}

/// Why one connection of the session ended.
enum End {
    /// The consumer is gone or a final error was delivered: stop.
    Stop,
    /// Reconnect after a pause.
    Retry(String),
}

impl Session {
    async fn run(&mut self) {
        let mut backoff = BACKOFF_START;
        loop {
            let started = Instant::now();
            match self.connect_and_stream().await {
                End::Stop => return,
                End::Retry(reason) => {
                    self.storage.report_failure(self.member);
                    if started.elapsed() > Duration::from_secs(10) {
                        backoff = BACKOFF_START;
                    }
                    tracing::warn!(prefix = %self.spec.key_prefix, revision = self.last, %reason, "etcd watch interrupted; resuming");
                    tokio::select! {
                        _ = self.tx.closed() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    async fn send(&self, item: Result<Vec<StorageEvent>>) -> bool {
        self.tx.send(item).await.is_ok()
    }

    async fn connect_and_stream(&mut self) -> End {
        let mut opts = WatchOptions::new()
            .with_prefix()
            .with_progress_notify()
            .with_start_revision(self.last + 1);
        if self.spec.prev_kv {
            opts = opts.with_prev_key();
        }
        let (member, mut client) = self.storage.watch_client();
        self.member = member;
        let stream = tokio::select! {
            _ = self.tx.closed() => return End::Stop,
            r = tokio::time::timeout(ESTABLISH_TIMEOUT, client.watch(self.spec.key_prefix.as_str(), Some(opts))) => r,
        };
        let stream = match stream {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return End::Retry(map_etcd_error(e).to_string()),
            Err(_) => return End::Retry("timed out establishing the watch".into()),
        };
        let request_progress =
            self.spec.request_progress && self.storage.progress_requests_are_ordered(member).await;
        let (mut sender, mut responses) = stream.split();
        let mut created = false;
        let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            tokio::select! {
                _ = self.tx.closed() => return End::Stop,
                _ = ticker.tick(), if request_progress && created => {
                    if let Err(e) = sender.request_progress().await {
                        return End::Retry(format!("requesting progress: {e}"));
                    }
                }
                msg = responses.next() => {
                    let resp = match msg {
                        None => return End::Retry("watch stream closed by etcd".into()),
                        Some(Err(e)) => return End::Retry(map_etcd_error(e).to_string()),
                        Some(Ok(resp)) => resp,
                    };
                    if resp.canceled() {
                        return self.canceled(&resp).await;
                    }
                    if resp.created() {
                        created = true;
                    }
                    if resp.events().is_empty() {
                        if !resp.created() {
                            let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
                            if !self.progress_to(rev).await {
                                return End::Stop;
                            }
                        }
                        continue;
                    }
                    let batch = convert_events(&resp);
                    if let Some(max) = batch.iter().map(StorageEvent::revision).max() {
                        self.last = self.last.max(max);
                    }
                    if !batch.is_empty() && !self.send(Ok(batch)).await {
                        return End::Stop;
                    }
                }
            }
        }
    }

    /// Forwards a progress notification if it advances the stream.
    async fn progress_to(&mut self, rev: Revision) -> bool {
        if rev <= self.last {
            return true;
        }
        self.last = rev;
        self.send(Ok(vec![StorageEvent::Progress { revision: rev }]))
            .await
    }

    async fn canceled(&mut self, resp: &WatchResponse) -> End {
        let compacted = resp.compact_revision();
        if compacted > 0 {
            let err = StorageError::Expired {
                requested: self.last,
                oldest: compacted - 1,
            };
            let _ = self.send(Err(err)).await;
            return End::Stop;
        }
        let reason = resp.cancel_reason().to_string();
        End::Retry(if reason.is_empty() {
            "watch canceled by etcd".into()
        } else {
            reason
        })
    }
}

fn convert_events(resp: &WatchResponse) -> Vec<StorageEvent> {
    let mut out = Vec::with_capacity(resp.events().len());
    for ev in resp.events() {
        let Some(kv) = ev.kv() else { continue };
        let prev = ev.prev_kv().cloned().map(convert_kv);
        match ev.event_type() {
            EtcdEventType::Put => out.push(StorageEvent::Put {
                kv: convert_kv(kv.clone()),
                prev,
            }),
            EtcdEventType::Delete => {
                let kv = convert_kv(kv.clone());
                out.push(StorageEvent::Delete {
                    key: kv.key,
                    prev,
                    revision: kv.mod_revision,
                });
            }
        }
    }
    out
}

/// Whether etcd `version` answers progress requests in order with events
/// (fixed in 3.4.25 and 3.5.8).
pub(crate) fn ordered_progress_version(version: &str) -> bool {
    let mut parts = version.trim().trim_start_matches('v').split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u64>()
            .unwrap_or(0)
    });
    let (major, minor, patch) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    match (major, minor) {
        (3, 4) => patch >= 25,
        (3, 5) => patch >= 8,
        (3, m) => m >= 6,
        (m, _) => m > 3,
    }
}

#[cfg(test)]
mod tests {
    use super::ordered_progress_version;

    #[test]
    fn progress_ordering_versions() {
        assert!(!ordered_progress_version("3.4.23"));
        assert!(ordered_progress_version("3.4.25"));
        assert!(!ordered_progress_version("3.5.7"));
        assert!(ordered_progress_version("3.5.8"));
        assert!(ordered_progress_version("3.6.0"));
        assert!(ordered_progress_version("v3.6.4"));
        assert!(!ordered_progress_version("3.3.27"));
        assert!(!ordered_progress_version("garbage"));
    }
}
