//! The etcd watch session behind [`EtcdStorage::watch`] and the watch cache.
//!
//! One task per watch owns an etcd watch stream. It
//! * resumes transparently after transient failures (from the revision after
//!   the last one delivered) with exponential backoff,
//! * reports compaction of the needed history as [`StorageError::Expired`],
//! * asks etcd for progress notifications every second (and right away when
//!   somebody waits for a revision), so that the consumer learns how far the
//!   store has advanced even when nothing under its prefix changes.
//!
//! Progress answers to explicit requests are only forwarded once a *later*
//! progress answer arrived: some etcd versions (before 3.4.25 / 3.5.8) may send
//! such an answer ahead of events that were already queued for the stream. By the
//! time a second answer comes back after a full round trip, those events have
//! been delivered. Periodic per-watcher notifications are always in order and
//! are forwarded immediately.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{EventType as EtcdEventType, WatchOptions, WatchResponse};
use futures::StreamExt;
use tokio::sync::{mpsc, Notify};

use crate::etcd::{convert_kv, map_etcd_error};
use crate::{EtcdStorage, Result, Revision, StorageError, StorageEvent};

/// Interval of progress requests while nobody waits for a revision.
const IDLE_PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Minimum spacing of progress requests while somebody waits for a revision.
const EAGER_PROGRESS_INTERVAL: Duration = Duration::from_millis(20);
/// Tick of the session's timer.
const TICK: Duration = Duration::from_millis(100);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Buffer between the session task and its consumer (in batches).
const CHANNEL_CAPACITY: usize = 64;
/// etcd's watch id of progress answers that belong to no particular watcher.
const BROADCAST_WATCH_ID: i64 = -1;

/// Lets waiters ask a watch session for progress notifications right now.
#[derive(Clone, Default)]
pub(crate) struct ProgressRequester {
    waiters: Arc<AtomicUsize>,
    notify: Arc<Notify>,
}

/// Keeps eager progress requests going while alive.
pub(crate) struct ProgressWanted {
    req: ProgressRequester,
}

impl ProgressRequester {
    /// Registers a waiter: the session requests progress eagerly until the guard is dropped.
    pub(crate) fn want(&self) -> ProgressWanted {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_one();
        ProgressWanted { req: self.clone() }
    }

    fn eager(&self) -> bool {
        self.waiters.load(Ordering::SeqCst) > 0
    }
}

impl Drop for ProgressWanted {
    fn drop(&mut self) {
        self.req.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts a watch session for keys under `key_prefix` delivering batches (one per
/// etcd revision group) of events with revision `> from`.
pub(crate) fn spawn_watch(
    storage: EtcdStorage,
    key_prefix: String,
    from: Revision,
    progress: ProgressRequester,
) -> mpsc::Receiver<Result<Vec<StorageEvent>>> {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let mut session = Session {
            storage,
            key_prefix,
            last: from,
            tx,
            progress,
            member: 0,
        };
        session.run().await;
    });
    rx
}

struct Session {
    storage: EtcdStorage,
    key_prefix: String,
    /// Every event with a revision `<= last` has been delivered.
    last: Revision,
    tx: mpsc::Sender<Result<Vec<StorageEvent>>>,
    progress: ProgressRequester,
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
                    tracing::warn!(prefix = %self.key_prefix, revision = self.last, %reason, "etcd watch interrupted; resuming");
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
        let opts = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_progress_notify()
            .with_start_revision(self.last + 1);
        let (member, mut client) = self.storage.watch_client();
        self.member = member;
        let stream = tokio::select! {
            _ = self.tx.closed() => return End::Stop,
            r = tokio::time::timeout(Duration::from_secs(30), client.watch(self.key_prefix.as_str(), Some(opts))) => r,
        };
        let stream = match stream {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return End::Retry(map_etcd_error(e).to_string()),
            Err(_) => return End::Retry("timed out establishing the watch".into()),
        };
        let (mut sender, mut responses) = stream.split();
        let mut created = false;
        // A progress revision from an explicit request, waiting for confirmation.
        let mut pending: Option<Revision> = None;
        let mut last_request = Instant::now();
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            let mut request_now = false;
            tokio::select! {
                _ = self.tx.closed() => return End::Stop,
                _ = ticker.tick() => {
                    let interval = if self.progress.eager() { EAGER_PROGRESS_INTERVAL } else { IDLE_PROGRESS_INTERVAL };
                    request_now = created && last_request.elapsed() >= interval;
                }
                _ = self.progress.notify.notified() => {
                    request_now = created && last_request.elapsed() >= EAGER_PROGRESS_INTERVAL;
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
                        request_now = true;
                    }
                    if resp.events().is_empty() {
                        if resp.created() {
                            continue;
                        }
                        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
                        if resp.watch_id() == BROADCAST_WATCH_ID {
                            // Answer to an explicit request: confirm the previous one.
                            if let Some(p) = pending.take() {
                                if !self.progress_to(p).await {
                                    return End::Stop;
                                }
                            }
                            pending = (rev > self.last).then_some(rev);
                            if pending.is_some() && self.progress.eager() {
                                request_now = true;
                            }
                        } else {
                            if !self.progress_to(rev).await {
                                return End::Stop;
                            }
                            if pending.is_some_and(|p| p <= self.last) {
                                pending = None;
                            }
                        }
                    } else {
                        let batch = convert_events(&resp);
                        if let Some(min) = batch.iter().map(StorageEvent::revision).min() {
                            if min <= self.last {
                                eprintln!("DEBUG premature progress: event {min} after progress/last {}", self.last);
                            }
                        }
                        if let Some(max) = batch.iter().map(StorageEvent::revision).max() {
                            self.last = self.last.max(max);
                        }
                        if !batch.is_empty() && !self.send(Ok(batch)).await {
                            return End::Stop;
                        }
                        if pending.is_some_and(|p| p <= self.last) {
                            pending = None;
                        }
                    }
                }
            }
            if request_now {
                last_request = Instant::now();
                if let Err(e) = sender.request_progress().await {
                    return End::Retry(format!("requesting progress: {e}"));
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
