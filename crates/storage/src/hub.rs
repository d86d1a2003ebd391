//! The watch hub: one etcd watch over the whole key space, shared by all
//! watch caches of an [`EtcdStorage`].
//!
//! Because it sees every change of the store, in order, the hub knows exactly
//! how far the store has advanced; each cache receives the events under its
//! prefix together with the revision of every batch, so caches of idle
//! resources keep up with the store without relying on etcd progress
//! notifications (which older etcd versions may send ahead of pending events).
//!
//! A subscriber registered at hub position `p` receives every batch with a
//! revision `> p`. If the hub cannot resume its watch (history compacted) it
//! drops all subscribers (their channels close) and starts over from the
//! current revision; subscribers then subscribe again and relist.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::watch::{spawn_watch, WatchSpec};
use crate::{EtcdStorage, Revision, StorageEvent};

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often the hub checks whether it still has subscribers.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Changes under a subscriber's prefix, and the revision the store reached.
#[derive(Debug)]
pub(crate) struct HubItem {
    /// Events under the subscriber's prefix (possibly none).
    pub events: Vec<StorageEvent>,
    /// Every change up to this revision has been delivered.
    pub revision: Revision,
}

/// Shared state of the hub of one storage.
#[derive(Default)]
pub(crate) struct Hub {
    state: Mutex<HubState>,
    /// The hub position (`None` while (re)starting).
    position_tx: watch::Sender<Option<Revision>>,
}

#[derive(Default)]
struct HubState {
    running: bool,
    /// Every change up to this revision has been dispatched.
    position: Option<Revision>,
    /// Subscribers waiting for the hub to have a position.
    pending: usize,
    subs: Vec<Sub>,
}

struct Sub {
    prefix: String,
    tx: mpsc::UnboundedSender<HubItem>,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a subscriber for keys under `prefix`. Waits until the hub
    /// follows the store, then returns its position `p` and a channel that
    /// receives every batch after `p`. A list taken after this returns is at a
    /// revision `>= p`.
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        storage: &EtcdStorage,
        prefix: &str,
    ) -> (Revision, mpsc::UnboundedReceiver<HubItem>) {
        let mut position_rx = self.position_tx.subscribe();
        {
            let mut state = self.lock();
            state.pending += 1;
            if !state.running {
                state.running = true;
                tokio::spawn(run(self.clone(), storage.clone()));
            }
        }
        let _guard = PendingGuard(self);
        loop {
            {
                let mut state = self.lock();
                if let Some(position) = state.position {
                    let (tx, rx) = mpsc::unbounded_channel();
                    state.subs.push(Sub {
                        prefix: prefix.to_string(),
                        tx,
                    });
                    return (position, rx);
                }
            }
            if position_rx.changed().await.is_err() {
                // Cannot happen (the sender lives in `self`); avoid spinning anyway.
                tokio::time::sleep(BACKOFF_START).await;
            }
        }
    }

    fn set_position(&self, position: Option<Revision>) {
        self.lock().position = position;
        self.position_tx.send_replace(position);
    }

    /// Hands a batch to the subscribers.
    fn dispatch(&self, events: Vec<StorageEvent>) {
        let Some(revision) = events.iter().map(StorageEvent::revision).max() else {
            return;
        };
        let mut state = self.lock();
        if state.position.is_some_and(|p| revision <= p) {
            return;
        }
        state.position = Some(revision);
        state.subs.retain(|sub| {
            let mine: Vec<StorageEvent> = events
                .iter()
                .filter(|e| match e {
                    StorageEvent::Put { kv, .. } => kv.key.starts_with(sub.prefix.as_str()),
                    StorageEvent::Delete { key, .. } => key.starts_with(sub.prefix.as_str()),
                    StorageEvent::Progress { .. } => false,
                })
                .cloned()
                .collect();
            sub.tx
                .send(HubItem {
                    events: mine,
                    revision,
                })
                .is_ok()
        });
        drop(state);
        self.position_tx.send_replace(Some(revision));
    }

    /// Drops every subscriber (their channels close) and forgets the position.
    fn reset(&self) {
        let mut state = self.lock();
        state.subs.clear();
        state.position = None;
        drop(state);
        self.position_tx.send_replace(None);
    }

    /// Stops the hub if nobody uses it; `true` if it stopped.
    fn stop_if_unused(&self) -> bool {
        let mut state = self.lock();
        state.subs.retain(|s| !s.tx.is_closed());
        if state.subs.is_empty() && state.pending == 0 {
            state.running = false;
            state.position = None;
            drop(state);
            self.position_tx.send_replace(None);
            true
        } else {
            false
        }
    }
}

struct PendingGuard<'a>(&'a Hub);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.lock().pending -= 1;
    }
}

/// The hub task: find the current revision, watch everything after it, repeat
/// when the watch cannot be resumed; stop when nobody subscribes any more.
async fn run(hub: Arc<Hub>, storage: EtcdStorage) {
    let mut backoff = BACKOFF_START;
    loop {
        if hub.stop_if_unused() {
            return;
        }
        let start = match storage.current_revision().await {
            Ok(rev) => rev,
            Err(e) => {
                tracing::warn!(error = %e, "watch hub cannot read the etcd revision; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        hub.set_position(Some(start));
        let spec = WatchSpec {
            key_prefix: String::new(),
            prev_kv: false,
            request_progress: false,
        };
        let mut batches = spawn_watch(storage.clone(), spec, start);
        let mut idle = tokio::time::interval(IDLE_CHECK);
        idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                item = batches.recv() => match item {
                    Some(Ok(events)) => {
                        backoff = BACKOFF_START;
                        hub.dispatch(events);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "watch hub lost its etcd history; restarting (caches relist)");
                        break;
                    }
                    None => {
                        tracing::warn!("watch hub's etcd watch ended; restarting (caches relist)");
                        break;
                    }
                },
                _ = idle.tick() => {
                    if hub.stop_if_unused() {
                        return;
                    }
                }
            }
        }
        hub.reset();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
