//! Shared informers: one list+watch per resource per process, a local cache
//! and client-go style notifications (added / updated with the old object /
//! deleted). Controllers get them from [`InformerFactory`]; asking twice for
//! the same resource returns the same informer.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject};
use kube::core::{PartialObjectMeta, TypeMeta};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// What changed. `Resync` tells a subscriber that it missed notifications
/// (it lagged behind) and should re-enqueue everything from the cache.
#[derive(Debug)]
pub enum Notification<K> {
    Added(Arc<K>),
    Updated { old: Arc<K>, new: Arc<K> },
    Deleted(Arc<K>),
    Resync,
}

impl<K> Clone for Notification<K> {
    fn clone(&self) -> Self {
        match self {
            Notification::Added(k) => Notification::Added(k.clone()),
            Notification::Updated { old, new } => Notification::Updated {
                old: old.clone(),
                new: new.clone(),
            },
            Notification::Deleted(k) => Notification::Deleted(k.clone()),
            Notification::Resync => Notification::Resync,
        }
    }
}

impl<K> Notification<K> {
    /// The object concerned (the new one for updates).
    pub fn object(&self) -> Option<&Arc<K>> {
        match self {
            Notification::Added(k) | Notification::Deleted(k) => Some(k),
            Notification::Updated { new, .. } => Some(new),
            Notification::Resync => None,
        }
    }
}

/// The cache key of an object: `namespace/name` or `name` (client-go's
/// MetaNamespaceKeyFunc).
pub fn key_of<K: Resource>(obj: &K) -> String {
    match obj.meta().namespace.as_deref().filter(|s| !s.is_empty()) {
        Some(ns) => format!("{ns}/{}", obj.name_any()),
        None => obj.name_any(),
    }
}

/// The work queue of a controller of `owners` that also watches the `owned`
/// objects they control (client-go's "enqueue the controller of" pattern):
/// subscribes to both informers, waits for both caches, queues every owner and
/// spawns the event handlers until `stop` or an informer ends. An owner added
/// or updated enqueues its key, a change to an owned object enqueues the key
/// `owner_key` derives from it, and a resync of either re-enqueues every
/// owner. Deleted owners are not enqueued (their dependents go by GC).
pub async fn owner_queue<O, D>(
    owners: &Informer<O>,
    owned: &Informer<D>,
    stop: CancellationToken,
    owner_key: fn(&D) -> Option<String>,
) -> crate::workqueue::WorkQueue<String>
where
    O: Resource + Clone + Send + Sync + 'static,
    D: Clone + Send + Sync + 'static,
{
    owner_queue_with(owners, owned, stop, move |n| {
        n.object().and_then(|d| owner_key(d))
    })
    .await
}

/// [`owner_queue`] for controllers that react to some changes of the owned
/// objects only: `owner_key` gets the whole notification (never a `Resync`,
/// which re-enqueues every owner).
pub async fn owner_queue_with<O, D>(
    owners: &Informer<O>,
    owned: &Informer<D>,
    stop: CancellationToken,
    owner_key: impl Fn(&Notification<D>) -> Option<String> + Send + 'static,
) -> crate::workqueue::WorkQueue<String>
where
    O: Resource + Clone + Send + Sync + 'static,
    D: Clone + Send + Sync + 'static,
{
    let mut owner_sub = owners.subscribe();
    let mut owned_sub = owned.subscribe();
    owners.wait_synced().await;
    owned.wait_synced().await;
    let queue = crate::workqueue::WorkQueue::new();
    queue.add_all(owners.keys());
    let (owners, q) = (owners.clone(), queue.clone());
    tokio::spawn(async move {
        let enqueue_all = || q.add_all(owners.keys());
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                n = owner_sub.recv() => match n {
                    Some(Notification::Resync) => enqueue_all(),
                    Some(Notification::Deleted(_)) => {}
                    Some(n) => if let Some(o) = n.object() { q.add(key_of(o.as_ref())) },
                    None => break,
                },
                n = owned_sub.recv() => match n {
                    Some(Notification::Resync) => enqueue_all(),
                    Some(n) => if let Some(k) = owner_key(&n) { q.add(k) },
                    None => break,
                },
            }
        }
    });
    queue
}

/// Splits a key made by [`key_of`] into (namespace, name).
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, key),
    }
}

struct Inner<K> {
    store: RwLock<HashMap<String, Arc<K>>>,
    tx: broadcast::Sender<Notification<K>>,
    synced: watch::Sender<bool>,
}

/// A shared informer for one resource (all namespaces).
pub struct Informer<K> {
    inner: Arc<Inner<K>>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            inner: self.inner.clone(),
        }
    }
}

/// A subscription to an informer's notifications.
pub struct Subscription<K> {
    rx: broadcast::Receiver<Notification<K>>,
}

impl<K: Clone> Subscription<K> {
    /// The next notification; `None` when the informer stopped. After a lag,
    /// yields [`Notification::Resync`] once.
    pub async fn recv(&mut self) -> Option<Notification<K>> {
        match self.rx.recv().await {
            Ok(n) => Some(n),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Notification::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

const CHANNEL: usize = 2048;

fn new_inner<K>() -> Arc<Inner<K>> {
    let (tx, _) = broadcast::channel(CHANNEL);
    let (synced, _) = watch::channel(false);
    Arc::new(Inner {
        store: RwLock::new(HashMap::new()),
        tx,
        synced,
    })
}

impl<K> Informer<K>
where
    K: Resource + Clone + Send + Sync + 'static,
{
    /// Replaces the whole cache (a fresh list), notifying the differences,
    /// and marks the informer synced.
    fn replace_all(&self, fresh: HashMap<String, Arc<K>>) {
        let old = {
            let mut store = self.inner.store.write().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *store, fresh.clone())
        };
        for (k, new) in &fresh {
            match old.get(k) {
                None => self.send(Notification::Added(new.clone())),
                Some(o) if o.resource_version() != new.resource_version() => {
                    self.send(Notification::Updated {
                        old: o.clone(),
                        new: new.clone(),
                    })
                }
                Some(_) => {}
            }
        }
        for (k, o) in old {
            if !fresh.contains_key(&k) {
                self.send(Notification::Deleted(o));
            }
        }
        self.inner.synced.send_replace(true);
    }

    /// An added or modified object.
    fn apply(&self, new: Arc<K>) {
        let old = self
            .inner
            .store
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key_of(new.as_ref()), new.clone());
        match old {
            None => self.send(Notification::Added(new)),
            Some(o) if o.resource_version() != new.resource_version() => {
                self.send(Notification::Updated { old: o, new })
            }
            Some(_) => {}
        }
    }

    /// A deleted object.
    fn remove(&self, obj: Arc<K>) {
        let k = key_of(obj.as_ref());
        let old = self
            .inner
            .store
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&k);
        self.send(Notification::Deleted(old.unwrap_or(obj)));
    }

    fn send(&self, n: Notification<K>) {
        let _ = self.inner.tx.send(n);
    }
}

impl<K> Informer<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn spawn(
        stream: futures::stream::BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>,
        stop: CancellationToken,
        label: String,
    ) -> Informer<K> {
        let me = Informer { inner: new_inner() };
        let run = me.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = run.run(stream, label) => {}
                _ = stop.cancelled() => {}
            }
        });
        me
    }

    async fn run(
        &self,
        mut stream: futures::stream::BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>,
        label: String,
    ) {
        let mut init: HashMap<String, Arc<K>> = HashMap::new();
        while let Some(ev) = stream.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::debug!("informer {label}: watch error: {e}");
                    continue;
                }
            };
            match ev {
                watcher::Event::Init => init.clear(),
                watcher::Event::InitApply(obj) => {
                    init.insert(key_of(&obj), Arc::new(obj));
                }
                watcher::Event::InitDone => self.replace_all(std::mem::take(&mut init)),
                watcher::Event::Apply(obj) => self.apply(Arc::new(obj)),
                watcher::Event::Delete(obj) => self.remove(Arc::new(obj)),
            }
        }
    }
}

/// Metadata-only objects (what the garbage collector tracks).
pub type MetaObject = PartialObjectMeta<DynamicObject>;

impl Informer<MetaObject> {
    /// A metadata view fed by another informer of the same resource (no
    /// second watch).
    fn derived<K>(
        src: Informer<K>,
        types: TypeMeta,
        stop: CancellationToken,
    ) -> Informer<MetaObject>
    where
        K: Resource + Clone + Send + Sync + 'static,
    {
        let me = Informer { inner: new_inner() };
        let out = me.clone();
        let mut sub = src.subscribe();
        let to_meta = move |k: &K| {
            Arc::new(PartialObjectMeta {
                types: Some(types.clone()),
                metadata: k.meta().clone(),
                _phantom: std::marker::PhantomData,
            })
        };
        let relist = {
            let (src, to_meta) = (src.clone(), to_meta.clone());
            move || {
                src.list()
                    .iter()
                    .map(|k| {
                        let m: Arc<MetaObject> = to_meta(k);
                        (key_of(m.as_ref()), m)
                    })
                    .collect::<HashMap<_, _>>()
            }
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = src.wait_synced() => {}
            }
            out.replace_all(relist());
            loop {
                let n = tokio::select! {
                    _ = stop.cancelled() => return,
                    n = sub.recv() => n,
                };
                match n {
                    None => return,
                    Some(Notification::Added(k)) => out.apply(to_meta(&k)),
                    Some(Notification::Updated { new, .. }) => out.apply(to_meta(&new)),
                    Some(Notification::Deleted(k)) => out.remove(to_meta(&k)),
                    Some(Notification::Resync) => out.replace_all(relist()),
                }
            }
        });
        me
    }
}

impl<K: Clone> Informer<K> {
    /// Subscribe to notifications. Subscribe before [`Informer::wait_synced`]
    /// returns, then list the cache, to not miss anything.
    pub fn subscribe(&self) -> Subscription<K> {
        Subscription {
            rx: self.inner.tx.subscribe(),
        }
    }

    /// Whether the initial list has been received.
    pub fn has_synced(&self) -> bool {
        *self.inner.synced.borrow()
    }

    /// Waits for the initial list.
    pub async fn wait_synced(&self) {
        let mut rx = self.inner.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// The cached object with this key (`namespace/name` or `name`).
    pub fn get_by_key(&self, key: &str) -> Option<Arc<K>> {
        self.inner
            .store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// The cached object `namespace/name` (namespace `None` for cluster-scoped).
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        match namespace {
            Some(ns) if !ns.is_empty() => self.get_by_key(&format!("{ns}/{name}")),
            _ => self.get_by_key(name),
        }
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.inner
            .store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Every cached key.
    pub fn keys(&self) -> Vec<String> {
        self.inner
            .store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The cached objects of one namespace.
    pub fn list_namespaced(&self, namespace: &str) -> Vec<Arc<K>> {
        let prefix = format!("{namespace}/");
        self.inner
            .store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The cached objects matching a predicate.
    pub fn filter(&self, mut f: impl FnMut(&K) -> bool) -> Vec<Arc<K>> {
        self.inner
            .store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|v| f(v))
            .cloned()
            .collect()
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum FactoryKey {
    Typed(TypeId),
    Dynamic(String),
    Metadata(String),
}

/// Creates informers on demand and shares them: one watch per resource.
#[derive(Clone)]
pub struct InformerFactory {
    client: kube::Client,
    stop: CancellationToken,
    informers: Arc<Mutex<HashMap<FactoryKey, Box<dyn Any + Send + Sync>>>>,
    /// "apiVersion/plural" → makes a metadata view of an existing informer.
    derivers: Arc<Mutex<HashMap<String, Deriver>>>,
}

type Deriver = Arc<dyn Fn(CancellationToken) -> Informer<MetaObject> + Send + Sync>;

impl InformerFactory {
    pub fn new(client: kube::Client, stop: CancellationToken) -> InformerFactory {
        InformerFactory {
            client,
            stop,
            informers: Arc::new(Mutex::new(HashMap::new())),
            derivers: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The shared informer of a typed resource (all namespaces), started on
    /// first use.
    pub fn get<K>(&self) -> Informer<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let key = FactoryKey::Typed(TypeId::of::<K>());
        let mut map = self.informers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(inf) = map.get(&key).and_then(|b| b.downcast_ref::<Informer<K>>()) {
            return inf.clone();
        }
        let inf = Informer::<K>::spawn(
            watcher(
                Api::<K>::all(self.client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .boxed(),
            self.stop.clone(),
            K::plural(&()).into_owned(),
        );
        map.insert(key, Box::new(inf.clone()));
        let types = TypeMeta {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
        };
        let src = inf.clone();
        self.derivers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                format!("{}/{}", K::api_version(&()), K::plural(&())),
                Arc::new(move |stop| Informer::derived(src.clone(), types.clone(), stop)),
            );
        inf
    }

    /// The shared informer of any resource (e.g. from discovery), as
    /// `DynamicObject`s, started on first use.
    pub fn dynamic(&self, ar: &ApiResource) -> Informer<DynamicObject> {
        let key = FactoryKey::Dynamic(format!("{}/{}", ar.api_version, ar.plural));
        let mut map = self.informers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(inf) = map
            .get(&key)
            .and_then(|b| b.downcast_ref::<Informer<DynamicObject>>())
        {
            return inf.clone();
        }
        let inf = Informer::<DynamicObject>::spawn(
            watcher(
                Api::<DynamicObject>::all_with(self.client.clone(), ar),
                watcher::Config::default(),
            )
            .default_backoff()
            .boxed(),
            self.stop.clone(),
            format!("{}/{}", ar.api_version, ar.plural),
        );
        map.insert(key, Box::new(inf.clone()));
        let types = TypeMeta {
            api_version: ar.api_version.clone(),
            kind: ar.kind.clone(),
        };
        let src = inf.clone();
        self.derivers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                format!("{}/{}", ar.api_version, ar.plural),
                Arc::new(move |stop| Informer::derived(src.clone(), types.clone(), stop)),
            );
        inf
    }

    /// The shared metadata-only informer (PartialObjectMetadata) of any
    /// resource, started on first use (the garbage collector's view). When a
    /// typed or dynamic informer of the resource exists already, this is a
    /// view of it (no second watch).
    pub fn metadata(&self, ar: &ApiResource) -> Informer<PartialObjectMeta<DynamicObject>> {
        let key = FactoryKey::Metadata(format!("{}/{}", ar.api_version, ar.plural));
        let mut map = self.informers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(inf) = map
            .get(&key)
            .and_then(|b| b.downcast_ref::<Informer<PartialObjectMeta<DynamicObject>>>())
        {
            return inf.clone();
        }
        let deriver = self
            .derivers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&format!("{}/{}", ar.api_version, ar.plural))
            .cloned();
        if let Some(d) = deriver {
            let inf = d(self.stop.clone());
            map.insert(key, Box::new(inf.clone()));
            return inf;
        }
        let inf = Informer::<PartialObjectMeta<DynamicObject>>::spawn(
            watcher(
                Api::<PartialObjectMeta<DynamicObject>>::all_with(self.client.clone(), ar),
                watcher::Config::default(),
            )
            .default_backoff()
            .boxed(),
            self.stop.clone(),
            format!("{}/{} (metadata)", ar.api_version, ar.plural),
        );
        map.insert(key, Box::new(inf.clone()));
        inf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use std::time::Duration;

    fn cm(name: &str, rv: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(name.into());
        c.metadata.namespace = Some("ns".into());
        c.metadata.resource_version = Some(rv.into());
        c.metadata.uid = Some(format!("uid-{name}"));
        c
    }

    fn describe<K: Resource>(n: &Notification<K>) -> String {
        match n {
            Notification::Added(k) => format!("+{}", k.name_any()),
            Notification::Updated { new, .. } => format!("~{}", new.name_any()),
            Notification::Deleted(k) => format!("-{}", k.name_any()),
            Notification::Resync => "resync".into(),
        }
    }

    #[tokio::test]
    async fn cache_and_notifications_follow_the_watch() {
        use watcher::Event::*;
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let stop = CancellationToken::new();
        let inf = Informer::<ConfigMap>::spawn(rx.boxed(), stop.clone(), "test".into());
        let mut sub = inf.subscribe();
        let meta = Informer::derived(
            inf.clone(),
            TypeMeta {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
            },
            stop.clone(),
        );
        let mut meta_sub = meta.subscribe();
        assert!(!inf.has_synced());
        for ev in [
            Init,
            InitApply(cm("a", "1")),
            InitDone,
            Apply(cm("a", "2")),
            Apply(cm("a", "2")),
            Apply(cm("b", "3")),
            Delete(cm("a", "2")),
            // A re-list: b unchanged, c new.
            Init,
            InitApply(cm("b", "3")),
            InitApply(cm("c", "4")),
            InitDone,
        ] {
            tx.unbounded_send(Ok(ev)).unwrap();
        }
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(describe(&sub.recv().await.unwrap()));
        }
        assert_eq!(seen, ["+a", "~a", "+b", "-a", "+c"]);
        inf.wait_synced().await;
        let mut keys = inf.keys();
        keys.sort();
        assert_eq!(keys, ["ns/b", "ns/c"]);
        assert_eq!(
            inf.get(Some("ns"), "c")
                .unwrap()
                .metadata
                .resource_version
                .as_deref(),
            Some("4")
        );
        assert_eq!(inf.list_namespaced("ns").len(), 2);
        assert!(inf.list_namespaced("other").is_empty());
        // The metadata view converges to the same content.
        meta.wait_synced().await;
        let mut last = Vec::new();
        while last.len() < 2 || meta.keys().len() != 2 {
            let n = tokio::time::timeout(Duration::from_secs(2), meta_sub.recv())
                .await
                .expect("meta notification")
                .unwrap();
            last.push(describe(&n));
        }
        let m = meta.get(Some("ns"), "b").unwrap();
        assert_eq!(m.types.as_ref().unwrap().kind, "ConfigMap");
        assert_eq!(m.metadata.uid.as_deref(), Some("uid-b"));
        stop.cancel();
    }

    #[test]
    fn keys() {
        assert_eq!(key_of(&cm("a", "1")), "ns/a");
        assert_eq!(split_key("ns/a"), (Some("ns"), "a"));
        assert_eq!(split_key("node1"), (None, "node1"));
    }
}
