//! The per-resource watch cache.
//!
//! A [`WatchCache`] keeps the decoded objects under one key prefix (one
//! resource, e.g. `/registry/pods/`) in memory, plus a fixed-size window of
//! recent events. Lists, gets and watches of the resource are served from it;
//! etcd sees one list per resource (and one watch shared by all caches)
//! instead of one per client.
//!
//! Consistency model:
//! * The cache has a revision: every change with a revision `<=` it has been
//!   applied. All caches of one [`EtcdStorage`] are fed by one watch over the
//!   whole key space, so a cache's revision advances with every change of the
//!   store, even when its own resource is idle.
//! * Reads may ask for a minimum revision ("not older than"); they wait a bounded
//!   time for the cache to catch up.
//! * Watches replay buffered events after the requested revision and continue
//!   with live ones, in revision order, without gaps or duplicates (replay and
//!   registration happen under the same lock as event application).
//! * When the etcd watch cannot be resumed (history compacted), the cache relists
//!   and closes every watcher; clients re-watch and get
//!   [`StorageError::Expired`] if their revision is no longer covered.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use crate::hub::HubItem;
use crate::{EtcdStorage, KeyValue, Result, Revision, StorageError, StorageEvent};

/// How long reads wait for the cache to reach a requested revision.
const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long reads wait for the initial list before failing.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Room for live events in every watcher's channel (beyond its replay).
const WATCHER_BUFFER: usize = 1024;
/// How often watchers get progress notifications.
const PROGRESS_PERIOD: Duration = Duration::from_secs(1);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// An object held by the cache.
#[derive(Debug, Clone)]
pub struct CachedObject {
    /// The etcd key.
    pub key: String,
    /// The decoded JSON object, with `metadata.resourceVersion` set to `revision`.
    pub object: Arc<Value>,
    /// The mod revision of the key.
    pub revision: Revision,
}

/// Kind of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object was changed.
    Modified,
    /// The object was deleted.
    Deleted,
}

/// A change of one object.
#[derive(Debug, Clone)]
pub struct CacheEvent {
    /// What happened.
    pub event_type: EventType,
    /// The etcd key of the object.
    pub key: String,
    /// The new state; for [`EventType::Deleted`] the last state with
    /// `metadata.resourceVersion` set to the deletion revision.
    pub object: Arc<Value>,
    /// The state before the change (`None` for [`EventType::Added`]).
    pub prev: Option<Arc<Value>>,
    /// The revision of the change.
    pub revision: Revision,
    /// `object` as JSON, encoded once for all watchers (see [`CacheEvent::encoded`]).
    encoded: Arc<OnceLock<Arc<[u8]>>>,
}

impl CacheEvent {
    /// An event (its encoding is computed on first use).
    pub fn new(
        event_type: EventType,
        key: String,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
        revision: Revision,
    ) -> Self {
        CacheEvent {
            event_type,
            key,
            object,
            prev,
            revision,
            encoded: Arc::default(),
        }
    }

    /// The same event with an encoding of its own (not shared with the clones of `self`).
    fn unshared(self) -> Self {
        CacheEvent {
            encoded: Arc::default(),
            ..self
        }
    }

    /// `serde_json::to_vec(&*self.object)`, computed once and shared by
    /// every clone of this event (every watcher it is delivered to).
    pub fn encoded(&self) -> Arc<[u8]> {
        self.encoded
            .get_or_init(|| serde_json::to_vec(&*self.object).unwrap_or_default().into())
            .clone()
    }
}

/// What a cache watcher receives.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// An object changed.
    Event(CacheEvent),
    /// The cache has delivered everything up to this revision (basis for bookmarks).
    Progress(Revision),
}

/// In-memory cache of one resource (one key prefix), fed by one etcd watch.
pub struct WatchCache {
    shared: Arc<Shared>,
    task: AbortHandle,
}

struct Shared {
    storage: EtcdStorage,
    key_prefix: String,
    state: Mutex<State>,
    revision_tx: watch::Sender<Revision>,
    ready_tx: watch::Sender<bool>,
}

struct State {
    /// Objects by key.
    store: BTreeMap<String, CachedObject>,
    /// Recent events, oldest first.
    ring: VecDeque<CacheEvent>,
    capacity: usize,
    /// The ring holds every event with a revision `> oldest`.
    oldest: Revision,
    /// Every change with a revision `<= revision` has been applied.
    revision: Revision,
    ready: bool,
    watchers: Vec<Watcher>,
}

struct Watcher {
    prefix: String,
    /// Only events with a revision `> from` are delivered.
    from: Revision,
    /// Highest revision delivered (event or progress).
    last_sent: Revision,
    tx: mpsc::Sender<WatchItem>,
}

impl Watcher {
    /// Offers an item; `false` when the watcher must be dropped (gone or overflowing).
    fn offer(&mut self, item: WatchItem, rev: Revision) -> bool {
        match self.tx.try_send(item) {
            Ok(()) => {
                self.last_sent = self.last_sent.max(rev);
                true
            }
            Err(_) => false,
        }
    }
}

impl WatchCache {
    /// Creates the cache for keys under `key_prefix` (e.g. `"/registry/pods/"`)
    /// keeping the last `capacity` events for watch replay, and starts filling it
    /// in the background: list, then watch from the list revision. On watch
    /// failure it resumes; when the history is gone it relists (closing every
    /// watcher). Must be called within a Tokio runtime; the background task stops
    /// when the cache is dropped.
    pub fn start(storage: EtcdStorage, key_prefix: String, capacity: usize) -> Arc<Self> {
        let (revision_tx, _) = watch::channel(0);
        let (ready_tx, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            storage,
            key_prefix,
            state: Mutex::new(State {
                store: BTreeMap::new(),
                ring: VecDeque::new(),
                capacity: capacity.max(1),
                oldest: 0,
                revision: 0,
                ready: false,
                watchers: Vec::new(),
            }),
            revision_tx,
            ready_tx,
        });
        let task = tokio::spawn(run(shared.clone())).abort_handle();
        Arc::new(WatchCache { shared, task })
    }

    /// The key prefix this cache covers.
    pub fn key_prefix(&self) -> &str {
        &self.shared.key_prefix
    }

    /// Waits until the initial list has been loaded.
    pub async fn wait_ready(&self) {
        let mut rx = self.shared.ready_tx.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// Whether the initial list has been loaded.
    pub fn is_ready(&self) -> bool {
        *self.shared.ready_tx.borrow()
    }

    /// The revision the cache has caught up to.
    pub fn revision(&self) -> Revision {
        self.shared.lock().revision
    }

    /// Number of cached objects (for `apiserver_storage_objects`).
    pub fn count(&self) -> usize {
        self.shared.lock().store.len()
    }

    /// Waits (bounded, 3 s) until the cache has caught up to `rev`; otherwise
    /// fails with [`StorageError::TooLargeResourceVersion`].
    pub async fn wait_for_revision(&self, rev: Revision) -> Result<()> {
        self.ready_bounded().await?;
        self.shared.wait_for_revision(rev).await
    }

    async fn ready_bounded(&self) -> Result<()> {
        if self.is_ready() {
            return Ok(());
        }
        match tokio::time::timeout(READY_TIMEOUT, self.wait_ready()).await {
            Ok(()) => Ok(()),
            Err(_) => Err(StorageError::Unavailable(format!(
                "watch cache for {} is not initialized yet",
                self.shared.key_prefix
            ))),
        }
    }

    /// Snapshot of the objects under `key_prefix` (a namespace prefix such as
    /// `/registry/pods/default/` or the whole resource), sorted by key, with the
    /// cache revision it reflects. With `min_rev`, first waits (bounded) until the
    /// cache is at least at that revision ("not older than" semantics).
    pub async fn list(
        &self,
        key_prefix: &str,
        min_rev: Option<Revision>,
    ) -> Result<(Vec<CachedObject>, Revision)> {
        self.ready_bounded().await?;
        if let Some(rev) = min_rev {
            self.shared.wait_for_revision(rev).await?;
        }
        let state = self.shared.lock();
        let items = state
            .store
            .range::<str, _>((
                std::ops::Bound::Included(key_prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(key_prefix))
            .map(|(_, o)| o.clone())
            .collect();
        Ok((items, state.revision))
    }

    /// One object by key; with `min_rev`, first waits (bounded) until the cache is
    /// at least at that revision.
    pub async fn get(&self, key: &str, min_rev: Option<Revision>) -> Result<Option<CachedObject>> {
        self.ready_bounded().await?;
        if let Some(rev) = min_rev {
            self.shared.wait_for_revision(rev).await?;
        }
        Ok(self.shared.lock().store.get(key).cloned())
    }

    /// Watches keys under `key_prefix`: first the buffered events with a
    /// revision `> from`, then live ones, in revision order. If `from` is older
    /// than the buffered window, fails with [`StorageError::Expired`] whose
    /// `oldest` is the smallest `from` still accepted. A `from` ahead of the cache
    /// simply skips events up to it (use [`WatchCache::wait_for_revision`] first
    /// to bound how far ahead it may be).
    ///
    /// The receiver also gets [`WatchItem::Progress`] about once a second when
    /// the cache revision advanced past what it has seen. A receiver that falls
    /// more than ~1000 items behind is closed (the client must re-watch); the
    /// channel also closes when the cache relists.
    pub fn watch(&self, key_prefix: &str, from: Revision) -> Result<mpsc::Receiver<WatchItem>> {
        let mut state = self.shared.lock();
        if !state.ready {
            return Err(StorageError::Unavailable(format!(
                "watch cache for {} is not initialized yet",
                self.shared.key_prefix
            )));
        }
        if from < state.oldest {
            return Err(StorageError::Expired {
                requested: from,
                oldest: state.oldest,
            });
        }
        let replay: Vec<CacheEvent> = state
            .ring
            .iter()
            .filter(|e| e.revision > from && e.key.starts_with(key_prefix))
            .cloned()
            .collect();
        let (tx, rx) = mpsc::channel(replay.len() + WATCHER_BUFFER);
        let mut watcher = Watcher {
            prefix: key_prefix.to_string(),
            from,
            last_sent: from,
            tx,
        };
        for ev in replay {
            let rev = ev.revision;
            // Cannot fail: the channel has room for the whole replay.
            watcher.offer(WatchItem::Event(ev), rev);
        }
        state.watchers.push(watcher);
        Ok(rx)
    }

    /// Watches keys under `key_prefix` starting with the current state: one
    /// [`EventType::Added`] event per object (sorted by key, each carrying the
    /// object's own revision), then a [`WatchItem::Progress`] with the snapshot
    /// revision marking the end of the initial state, then live events after
    /// that revision. Used for watches without a resourceVersion (or with
    /// `sendInitialEvents`).
    pub async fn watch_with_initial_state(
        &self,
        key_prefix: &str,
        min_rev: Option<Revision>,
    ) -> Result<mpsc::Receiver<WatchItem>> {
        self.ready_bounded().await?;
        if let Some(rev) = min_rev {
            self.shared.wait_for_revision(rev).await?;
        }
        let mut state = self.shared.lock();
        let initial: Vec<CachedObject> = state
            .store
            .range::<str, _>((
                std::ops::Bound::Included(key_prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(key_prefix))
            .map(|(_, o)| o.clone())
            .collect();
        let rev = state.revision;
        let (tx, rx) = mpsc::channel(initial.len() + 1 + WATCHER_BUFFER);
        let mut watcher = Watcher {
            prefix: key_prefix.to_string(),
            from: rev,
            last_sent: 0,
            tx,
        };
        for obj in initial {
            let ev = CacheEvent::new(EventType::Added, obj.key, obj.object, None, obj.revision);
            watcher.offer(WatchItem::Event(ev), 0);
        }
        watcher.offer(WatchItem::Progress(rev), rev);
        state.watchers.push(watcher);
        Ok(rx)
    }
}

impl Drop for WatchCache {
    fn drop(&mut self) {
        self.task.abort();
        // Close every watcher so that their clients notice.
        self.shared.lock().watchers.clear();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn wait_for_revision(&self, rev: Revision) -> Result<()> {
        let mut rx = self.revision_tx.subscribe();
        if *rx.borrow() >= rev {
            return Ok(());
        }
        let reached = matches!(
            tokio::time::timeout(FRESHNESS_TIMEOUT, rx.wait_for(|r| *r >= rev)).await,
            Ok(Ok(_))
        );
        if reached {
            Ok(())
        } else {
            Err(StorageError::TooLargeResourceVersion {
                requested: rev,
                current: *self.revision_tx.borrow(),
            })
        }
    }

    /// Replaces the whole content after a (re)list at `rev`; closes all watchers.
    fn replace(&self, kvs: Vec<KeyValue>, rev: Revision) {
        let mut store = BTreeMap::new();
        for kv in kvs {
            if let Some(object) = decode(&kv.value, kv.mod_revision, &kv.key) {
                store.insert(
                    kv.key.clone(),
                    CachedObject {
                        key: kv.key,
                        object: Arc::new(object),
                        revision: kv.mod_revision,
                    },
                );
            }
        }
        let mut state = self.lock();
        state.store = store;
        state.ring.clear();
        state.oldest = rev;
        state.revision = state.revision.max(rev);
        if !state.watchers.is_empty() {
            tracing::info!(prefix = %self.key_prefix, watchers = state.watchers.len(), "watch cache relisted; closing watchers");
            state.watchers.clear();
        }
        state.ready = true;
        let current = state.revision;
        drop(state);
        self.revision_tx.send_replace(current);
        self.ready_tx.send_replace(true);
    }

    /// Applies a batch of watch events (one or more hub items, in order)
    /// atomically; afterwards the cache is at `revision`.
    fn apply(&self, batch: Vec<StorageEvent>, revision: Revision) {
        // Decode before taking the lock (readers wait on it).
        let batch: Vec<(StorageEvent, Option<Arc<Value>>)> = batch
            .into_iter()
            .map(|ev| {
                let object = match &ev {
                    StorageEvent::Put { kv, .. } => {
                        decode(&kv.value, kv.mod_revision, &kv.key).map(Arc::new)
                    }
                    _ => None,
                };
                (ev, object)
            })
            .collect();
        let mut state = self.lock();
        state.revision = state.revision.max(revision);
        for (ev, decoded) in batch {
            match ev {
                StorageEvent::Progress { revision } => {
                    state.revision = state.revision.max(revision);
                }
                StorageEvent::Put { kv, .. } => {
                    let rev = kv.mod_revision;
                    state.revision = state.revision.max(rev);
                    let Some(object) = decoded else {
                        continue;
                    };
                    let prev = state
                        .store
                        .insert(
                            kv.key.clone(),
                            CachedObject {
                                key: kv.key.clone(),
                                object: object.clone(),
                                revision: rev,
                            },
                        )
                        .map(|o| o.object);
                    let event_type = if prev.is_some() {
                        EventType::Modified
                    } else {
                        EventType::Added
                    };
                    state.push(CacheEvent::new(event_type, kv.key, object, prev, rev));
                }
                StorageEvent::Delete { key, revision, .. } => {
                    state.revision = state.revision.max(revision);
                    let Some(old) = state.store.remove(&key) else {
                        continue;
                    };
                    let mut last = (*old.object).clone();
                    set_resource_version(&mut last, revision);
                    state.push(CacheEvent::new(
                        EventType::Deleted,
                        key,
                        Arc::new(last),
                        Some(old.object),
                        revision,
                    ));
                }
            }
        }
        let current = state.revision;
        drop(state);
        self.revision_tx.send_if_modified(|r| {
            if *r < current {
                *r = current;
                true
            } else {
                false
            }
        });
    }

    /// Sends progress to watchers that have not seen the current revision and
    /// forgets closed watchers.
    fn broadcast_progress(&self) {
        let mut state = self.lock();
        let rev = state.revision;
        state.watchers.retain_mut(|w| {
            if w.tx.is_closed() {
                return false;
            }
            if rev > w.last_sent && rev > w.from {
                // A full channel only skips this notification; the next event decides.
                let _ = w.offer(WatchItem::Progress(rev), rev);
            }
            true
        });
    }
}

impl State {
    /// Records an event in the ring and hands it to the interested watchers.
    fn push(&mut self, ev: CacheEvent) {
        let rev = ev.revision;
        self.watchers.retain_mut(|w| {
            if rev <= w.from || !ev.key.starts_with(w.prefix.as_str()) {
                return !w.tx.is_closed();
            }
            w.offer(WatchItem::Event(ev.clone()), rev)
        });
        if self.ring.len() >= self.capacity {
            if let Some(old) = self.ring.pop_front() {
                self.oldest = self.oldest.max(old.revision);
            }
        }
        // The ring keeps no encoding: it is freed once the live watchers
        // have sent the event (replays are rare).
        self.ring.push_back(ev.unshared());
    }
}

/// Decodes a stored object and stamps its resourceVersion; `None` (logged) for
/// values that are not JSON objects.
fn decode(value: &[u8], rev: Revision, key: &str) -> Option<Value> {
    match serde_json::from_slice::<Value>(value) {
        Ok(mut v) if v.is_object() => {
            set_resource_version(&mut v, rev);
            Some(v)
        }
        Ok(_) => {
            tracing::warn!(key, "stored value is not a JSON object; ignoring it");
            None
        }
        Err(e) => {
            tracing::warn!(key, error = %e, "stored value is not valid JSON; ignoring it");
            None
        }
    }
}

fn set_resource_version(v: &mut Value, rev: Revision) {
    let Some(obj) = v.as_object_mut() else { return };
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(serde_json::Map::new());
    }
    if let Some(m) = meta.as_object_mut() {
        m.insert(
            "resourceVersion".to_string(),
            Value::String(rev.to_string()),
        );
    }
}

/// The cache's background task: list, watch, relist when needed.
async fn run(shared: Arc<Shared>) {
    let mut backoff = BACKOFF_START;
    loop {
        // Subscribe first, then list: the list is at a revision >= the
        // subscription point, so the events after the list are all delivered.
        let (_position, mut changes) = shared.storage.subscribe(&shared.key_prefix).await;
        let (kvs, listed) = match shared.storage.list(&shared.key_prefix).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(prefix = %shared.key_prefix, error = %e, "watch cache list failed; retrying");
                drop(changes);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_START;
        shared.replace(kvs, listed);
        tracing::debug!(prefix = %shared.key_prefix, revision = listed, "watch cache loaded");

        let mut ticker = tokio::time::interval(PROGRESS_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                item = changes.recv() => match item {
                    Some(HubItem { events, revision }) => {
                        // Changes up to the list revision are part of the list.
                        let mut events: Vec<StorageEvent> =
                            events.into_iter().filter(|e| e.revision() > listed).collect();
                        let mut revision = revision;
                        // Apply what else is queued in the same go: one lock
                        // and one wake-up of readers for the lot. (A closed
                        // channel shows at the next recv.)
                        while let Ok(more) = changes.try_recv() {
                            events.extend(more.events.into_iter().filter(|e| e.revision() > listed));
                            revision = revision.max(more.revision);
                        }
                        shared.apply(events, revision);
                    }
                    None => {
                        tracing::info!(prefix = %shared.key_prefix, "etcd watch restarted; watch cache relists");
                        break;
                    }
                },
                _ = ticker.tick() => shared.broadcast_progress(),
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_version_is_stamped() {
        let v = decode(br#"{"kind":"Pod","metadata":{"name":"a"}}"#, 42, "k").unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "42");
        let v = decode(br#"{"kind":"Pod"}"#, 7, "k").unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "7");
        assert!(decode(b"[1,2]", 1, "k").is_none());
        assert!(decode(b"not json", 1, "k").is_none());
    }

    fn event(key: &str, rev: Revision) -> CacheEvent {
        CacheEvent::new(
            EventType::Added,
            key.into(),
            Arc::new(serde_json::json!({})),
            None,
            rev,
        )
    }

    fn state(capacity: usize) -> State {
        State {
            store: BTreeMap::new(),
            ring: VecDeque::new(),
            capacity,
            oldest: 10,
            revision: 10,
            ready: true,
            watchers: Vec::new(),
        }
    }

    #[test]
    fn ring_overflow_moves_oldest() {
        let mut s = state(3);
        for rev in 11..=15 {
            s.push(event("/r/a", rev));
        }
        assert_eq!(s.ring.len(), 3);
        assert_eq!(s.oldest, 12);
        assert_eq!(s.ring.front().unwrap().revision, 13);
    }

    #[test]
    fn overflowing_watcher_is_dropped() {
        let mut s = state(100);
        let (tx, mut rx) = mpsc::channel(2);
        s.watchers.push(Watcher {
            prefix: "/r/".into(),
            from: 10,
            last_sent: 10,
            tx,
        });
        s.push(event("/r/a", 11));
        s.push(event("/x/a", 12)); // other prefix: not delivered
        s.push(event("/r/b", 13));
        assert_eq!(s.watchers.len(), 1);
        s.push(event("/r/c", 14)); // overflow
        assert!(s.watchers.is_empty());
        let mut got = Vec::new();
        while let Ok(WatchItem::Event(e)) = rx.try_recv() {
            got.push(e.revision);
        }
        assert_eq!(got, vec![11, 13]);
    }
}
