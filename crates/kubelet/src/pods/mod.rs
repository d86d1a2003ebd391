//! The pod manager: pods bound to this node (watched in the API with
//! `spec.nodeName=<node>`) and static pods (from --pod-manifest-path, with
//! mirror pods in the API), one worker task per pod ([`worker`]).
//!
//! The manager also relists the runtime every second and kicks the workers of
//! pods whose containers changed (upstream's PLEG), drains probe events, and
//! garbage-collects orphaned sandboxes, dead containers and unused images.

pub mod actions;
pub mod backoff;
pub mod container;
pub mod events;
pub mod gc;
pub mod hooks;
pub mod images;
pub mod sandbox;
pub mod spec;
pub mod static_pods;
pub mod status;
pub mod svcenv;
pub mod time;
mod worker;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, PodStatus, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::Api;
use tokio::sync::{watch, Notify};

use crate::options::KubeletConfig;
use crate::probes::ProbeManager;
use crate::runtime::{Runtime, POD_UID_LABEL};
use crate::volumes::VolumeManager;
use events::{EventType, Recorder};
use images::ImageManager;
use sandbox::DnsSettings;

/// What a worker is told about its pod: the latest object (with the mirror
/// pod for static pods), or that it is gone (with the last object seen).
#[derive(Clone)]
pub enum PodUpdate {
    Present(Arc<Pod>, Option<Arc<Pod>>),
    Removed(Arc<Pod>),
}

/// Everything the workers share.
pub struct Context {
    pub cfg: Arc<KubeletConfig>,
    pub client: kube::Client,
    pub runtime: Runtime,
    /// "containerd" (from CRI Version): the containerID scheme.
    pub runtime_name: String,
    pub node_name: String,
    /// The node's IPs (hostIP/hostIPs of every pod).
    pub host_ips: Vec<String>,
    pub memory_capacity: u64,
    pub dns: DnsSettings,
    pub volumes: Arc<VolumeManager>,
    pub probes: Arc<ProbeManager>,
    pub recorder: Recorder,
    pub images: ImageManager,
    /// The Node object's uid once registered (owner of mirror pods).
    pub node_uid: RwLock<Option<String>>,
    pub allocatable: RwLock<BTreeMap<String, ApiQuantity>>,
    services_cache: Mutex<HashMap<String, (Instant, Vec<Service>)>>,
    /// The pods as the kubelet runs them, with the status last computed (for /pods).
    view: RwLock<HashMap<String, Pod>>,
}

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: Arc<KubeletConfig>,
        client: kube::Client,
        runtime: Runtime,
        runtime_name: String,
        host_ips: Vec<String>,
        memory_capacity: u64,
        volumes: Arc<VolumeManager>,
        probes: Arc<ProbeManager>,
        recorder: Recorder,
    ) -> Self {
        let dns = DnsSettings {
            cluster_dns: cfg.cluster_dns.clone(),
            cluster_domain: cfg.cluster_domain.clone(),
            host: sandbox::ResolvConf::load(cfg.resolv_conf.as_deref()),
        };
        let images = ImageManager::new(
            runtime.clone(),
            client.clone(),
            recorder.clone(),
            cfg.serialize_image_pulls,
        );
        Context {
            node_name: cfg.node_name.clone(),
            cfg,
            client,
            runtime,
            runtime_name,
            host_ips,
            memory_capacity,
            dns,
            volumes,
            probes,
            recorder,
            images,
            node_uid: RwLock::new(None),
            allocatable: RwLock::new(BTreeMap::new()),
            services_cache: Mutex::new(HashMap::new()),
            view: RwLock::new(HashMap::new()),
        }
    }

    pub fn node_allocatable(&self) -> BTreeMap<String, ApiQuantity> {
        self.allocatable
            .read()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    pub fn set_node_allocatable(&self, a: BTreeMap<String, ApiQuantity>) {
        self.volumes.set_node_allocatable(a.clone());
        if let Ok(mut w) = self.allocatable.write() {
            *w = a;
        }
    }

    pub fn set_node_uid(&self, uid: String) {
        if let Ok(mut w) = self.node_uid.write() {
            *w = Some(uid);
        }
    }

    fn node_uid(&self) -> Option<String> {
        self.node_uid.read().ok().and_then(|u| u.clone())
    }

    /// Records the pod with its latest computed status (for /pods).
    pub(crate) fn publish(&self, pod: &Pod, status: &PodStatus) {
        let mut p = pod.clone();
        p.status = Some(status.clone());
        if let Ok(mut v) = self.view.write() {
            if let Some(uid) = p.metadata.uid.clone() {
                v.insert(uid, p);
            }
        }
    }

    fn view_upsert(&self, pod: &Pod) {
        if let Ok(mut v) = self.view.write() {
            if let Some(uid) = pod.metadata.uid.clone() {
                match v.get_mut(&uid) {
                    Some(existing) => {
                        let status = existing.status.take();
                        *existing = pod.clone();
                        if status.is_some() {
                            existing.status = status;
                        }
                    }
                    None => {
                        v.insert(uid, pod.clone());
                    }
                }
            }
        }
    }

    fn view_remove(&self, uid: &str) {
        if let Ok(mut v) = self.view.write() {
            v.remove(uid);
        }
    }

    /// The pods this kubelet runs.
    pub fn pods(&self) -> Vec<Pod> {
        let mut v: Vec<Pod> = self
            .view
            .read()
            .map(|v| v.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| {
            (spec::namespace(a), spec::name(a)).cmp(&(spec::namespace(b), spec::name(b)))
        });
        v
    }
}

struct WorkerHandle {
    tx: watch::Sender<PodUpdate>,
    kick: Arc<Notify>,
    join: tokio::task::JoinHandle<()>,
}

/// Runs the pods of this node.
pub struct PodManager {
    ctx: Arc<Context>,
    workers: HashMap<String, WorkerHandle>,
    api_pods: HashMap<String, Arc<Pod>>,
    static_pods: HashMap<String, Arc<Pod>>,
    static_seen: HashMap<String, String>,
    /// Whether the API pod list has been read once (orphan GC waits for it).
    synced: bool,
    fingerprints: HashMap<String, u64>,
    mirror_ops: HashMap<String, Instant>,
    /// Pods refused by admission (OutOfpods): never started here.
    rejected: HashSet<String>,
}

impl PodManager {
    pub fn new(ctx: Arc<Context>) -> Self {
        PodManager {
            ctx,
            workers: HashMap::new(),
            api_pods: HashMap::new(),
            static_pods: HashMap::new(),
            static_seen: HashMap::new(),
            synced: false,
            fingerprints: HashMap::new(),
            mirror_ops: HashMap::new(),
            rejected: HashSet::new(),
        }
    }

    /// The mirror pod (in the API) of a static pod.
    fn mirror_of(&self, static_pod: &Pod) -> Option<Arc<Pod>> {
        self.api_pods
            .values()
            .find(|p| {
                spec::is_mirror(p)
                    && p.metadata.name == static_pod.metadata.name
                    && spec::namespace(p) == spec::namespace(static_pod)
                    && static_pods::mirror_hash(p) == static_pod.metadata.uid.as_deref()
            })
            .cloned()
    }

    /// Tells the worker of `uid` (starting one if needed) about its pod.
    fn dispatch(&mut self, uid: &str, last: Option<Arc<Pod>>) {
        let update = if let Some(p) = self.static_pods.get(uid).cloned() {
            Some(PodUpdate::Present(p.clone(), self.mirror_of(&p)))
        } else {
            self.api_pods
                .get(uid)
                .filter(|p| !spec::is_mirror(p))
                .map(|p| PodUpdate::Present(p.clone(), None))
        };
        match update {
            Some(u) => {
                if let PodUpdate::Present(p, _) = &u {
                    self.ctx.view_upsert(p);
                }
                match self.workers.get(uid) {
                    Some(w) if !w.join.is_finished() => {
                        w.tx.send_replace(u);
                    }
                    _ => {
                        if let PodUpdate::Present(p, None) = &u {
                            if self.rejected.contains(uid) || self.refuse(p) {
                                self.rejected.insert(uid.to_string());
                                return;
                            }
                        }
                        let (tx, rx) = watch::channel(u);
                        let kick = Arc::new(Notify::new());
                        let worker = worker::Worker::new(
                            self.ctx.clone(),
                            uid.to_string(),
                            rx,
                            kick.clone(),
                        );
                        let join = tokio::spawn(worker.run());
                        self.workers
                            .insert(uid.to_string(), WorkerHandle { tx, kick, join });
                    }
                }
            }
            None => {
                self.rejected.remove(uid);
                self.ctx.view_remove(uid);
                if let Some(w) = self.workers.get(uid) {
                    let last = last.or_else(|| match &*w.tx.borrow() {
                        PodUpdate::Present(p, _) => Some(p.clone()),
                        PodUpdate::Removed(p) => Some(p.clone()),
                    });
                    if let Some(p) = last {
                        w.tx.send_replace(PodUpdate::Removed(p));
                    }
                }
            }
        }
    }

    /// Pod admission as upstream's: a new pod that would take the node over
    /// `maxPods` running pods is failed with reason OutOfpods (and never
    /// started). Pods already started somewhere (status.startTime) are not
    /// re-admitted, so a restarted kubelet keeps what it runs.
    fn refuse(&self, pod: &Arc<Pod>) -> bool {
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed"))
            || pod.metadata.deletion_timestamp.is_some()
            || status.is_some_and(|s| s.start_time.is_some())
        {
            return false;
        }
        let used = self
            .workers
            .values()
            .filter(|w| !w.join.is_finished())
            .count();
        let capacity = usize::try_from(self.ctx.cfg.max_pods).unwrap_or(0);
        if used < capacity {
            return false;
        }
        let message = format!(
            "Node didn't have enough resource: pods, requested: 1, used: {used}, capacity: {capacity}"
        );
        tracing::info!(pod = %spec::full_name(pod), "{message}");
        self.ctx
            .recorder
            .pod_event(pod, EventType::Warning, "OutOfpods", message.clone());
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), spec::namespace(pod));
        let name = spec::name(pod).to_string();
        let patch = serde_json::json!({
            "metadata": {"uid": pod.metadata.uid},
            "status": {"phase": "Failed", "reason": "OutOfpods", "message": message},
        });
        tokio::spawn(async move {
            let pp = kube::api::PatchParams::default();
            if let Err(e) = api
                .patch_status(&name, &pp, &kube::api::Patch::Merge(&patch))
                .await
            {
                tracing::warn!(pod = %name, "rejecting pod: {e}");
            }
        });
        true
    }

    /// Runs until `shutdown` resolves. Containers keep running afterwards.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let api: Api<Pod> = Api::all(self.ctx.client.clone());
        let wc =
            watcher::Config::default().fields(&format!("spec.nodeName={}", self.ctx.node_name));
        let mut stream = watcher(api, wc).default_backoff().boxed();
        let mut init_buf: Option<HashMap<String, Arc<Pod>>> = None;

        let mut relist = tokio::time::interval(Duration::from_secs(1));
        relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut statics = tokio::time::interval(Duration::from_secs(5));
        statics.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // First collection shortly after start (orphans of a kubelet restart), then every minute.
        let mut gc_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(10),
            Duration::from_secs(60),
        );
        gc_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut image_gc = gc::ImageGc::new();
        tokio::pin!(shutdown);

        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                ev = stream.try_next() => {
                    match ev {
                        Ok(Some(ev)) => self.on_watch_event(ev, &mut init_buf).await,
                        Ok(None) => {
                            tracing::warn!("pod watch ended; restarting");
                            let api: Api<Pod> = Api::all(self.ctx.client.clone());
                            let wc = watcher::Config::default().fields(&format!("spec.nodeName={}", self.ctx.node_name));
                            stream = watcher(api, wc).default_backoff().boxed();
                        }
                        Err(e) => tracing::warn!("pod watch: {e}"),
                    }
                }
                _ = relist.tick() => {
                    self.relist().await;
                    self.drain_probe_events();
                    self.reap();
                }
                _ = statics.tick() => {
                    self.sync_static_pods();
                    if self.synced {
                        self.reconcile_mirrors().await;
                    }
                }
                _ = gc_tick.tick() => {
                    if self.synced {
                        let known: HashSet<String> = self.known_uids();
                        gc::collect(&self.ctx, &known, &mut image_gc).await;
                    }
                }
            }
        }
        for (_, w) in self.workers.drain() {
            w.join.abort();
        }
    }

    fn known_uids(&self) -> HashSet<String> {
        let mut known: HashSet<String> = self.static_pods.keys().cloned().collect();
        known.extend(
            self.api_pods
                .iter()
                .filter(|(_, p)| !spec::is_mirror(p))
                .map(|(k, _)| k.clone()),
        );
        // Pods whose workers are still cleaning up are not orphans yet.
        known.extend(
            self.workers
                .iter()
                .filter(|(_, w)| !w.join.is_finished())
                .map(|(k, _)| k.clone()),
        );
        known
    }

    async fn on_watch_event(
        &mut self,
        ev: watcher::Event<Pod>,
        init_buf: &mut Option<HashMap<String, Arc<Pod>>>,
    ) {
        match ev {
            watcher::Event::Init => *init_buf = Some(HashMap::new()),
            watcher::Event::InitApply(p) => {
                if let (Some(buf), Some(uid)) = (init_buf.as_mut(), p.metadata.uid.clone()) {
                    buf.insert(uid, Arc::new(p));
                }
            }
            watcher::Event::InitDone => {
                let buf = init_buf.take().unwrap_or_default();
                let old = std::mem::replace(&mut self.api_pods, buf);
                for (uid, p) in &old {
                    if !self.api_pods.contains_key(uid) {
                        self.on_api_change(uid, Some(p.clone()));
                    }
                }
                let uids: Vec<String> = self.api_pods.keys().cloned().collect();
                for uid in uids {
                    self.on_api_change(&uid, None);
                }
                if !self.synced {
                    tracing::info!(pods = self.api_pods.len(), "initial pod list received");
                }
                self.synced = true;
                self.reconcile_mirrors().await;
            }
            watcher::Event::Apply(p) => {
                let Some(uid) = p.metadata.uid.clone() else {
                    return;
                };
                let mirror = spec::is_mirror(&p);
                self.api_pods.insert(uid.clone(), Arc::new(p));
                self.on_api_change(&uid, None);
                if mirror && self.synced {
                    self.reconcile_mirrors().await;
                }
            }
            watcher::Event::Delete(p) => {
                let Some(uid) = p.metadata.uid.clone() else {
                    return;
                };
                let mirror = spec::is_mirror(&p);
                self.api_pods.remove(&uid);
                self.on_api_change(&uid, Some(Arc::new(p)));
                if mirror && self.synced {
                    self.reconcile_mirrors().await;
                }
            }
        }
    }

    /// An API pod changed: its worker (or, for a mirror pod, the static pod's worker).
    fn on_api_change(&mut self, uid: &str, last: Option<Arc<Pod>>) {
        let pod = self.api_pods.get(uid).cloned().or(last.clone());
        if let Some(p) = pod.as_ref().filter(|p| spec::is_mirror(p)) {
            if let Some(hash) = static_pods::mirror_hash(p).map(String::from) {
                if self.static_pods.contains_key(&hash) {
                    self.dispatch(&hash, None);
                }
            }
            return;
        }
        self.dispatch(uid, last);
    }

    fn sync_static_pods(&mut self) {
        let Some(dir) = self.ctx.cfg.pod_manifest_path.clone() else {
            return;
        };
        let new = static_pods::read_dir(&dir, &self.ctx.node_name, &mut self.static_seen);
        let old_uids: Vec<String> = self.static_pods.keys().cloned().collect();
        let changed: Vec<String> = new
            .iter()
            .filter(|(uid, p)| {
                self.static_pods
                    .get(*uid)
                    .map(|o| o.as_ref() != *p)
                    .unwrap_or(true)
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        let removed: Vec<(String, Arc<Pod>)> = old_uids
            .iter()
            .filter(|u| !new.contains_key(*u))
            .filter_map(|u| self.static_pods.get(u).map(|p| (u.clone(), p.clone())))
            .collect();
        for (uid, p) in new {
            if changed.contains(&uid) {
                self.static_pods.insert(uid, Arc::new(p));
            }
        }
        for (uid, p) in removed {
            tracing::info!(pod = %spec::full_name(&p), "static pod removed");
            self.static_pods.remove(&uid);
            self.dispatch(&uid, Some(p));
        }
        for uid in changed {
            self.dispatch(&uid, None);
        }
    }

    /// Creates missing mirror pods and deletes stale ones.
    async fn reconcile_mirrors(&mut self) {
        let node_uid = self.ctx.node_uid();
        let now = Instant::now();
        self.mirror_ops
            .retain(|_, t| now.duration_since(*t) < Duration::from_secs(10));
        // Stale mirrors: no static pod with that hash, or being deleted.
        let stale: Vec<Arc<Pod>> = self
            .api_pods
            .values()
            .filter(|p| spec::is_mirror(p))
            .filter(|p| {
                let hash = static_pods::mirror_hash(p).unwrap_or("");
                p.metadata.deletion_timestamp.is_some() || !self.static_pods.contains_key(hash)
            })
            .cloned()
            .collect();
        for m in stale {
            let key = format!("delete:{}", spec::uid(&m));
            if self.mirror_ops.contains_key(&key) {
                continue;
            }
            self.mirror_ops.insert(key, now);
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), spec::namespace(&m));
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: m.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(spec::name(&m), &dp).await {
                Ok(_) => tracing::info!(pod = %spec::full_name(&m), "deleted mirror pod"),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => tracing::warn!(pod = %spec::full_name(&m), "deleting mirror pod: {e}"),
            }
        }
        // Missing mirrors.
        let statics: Vec<Arc<Pod>> = self.static_pods.values().cloned().collect();
        for sp in statics {
            if self.mirror_of(&sp).is_some() {
                continue;
            }
            let clash = self.api_pods.values().any(|p| {
                p.metadata.name == sp.metadata.name
                    && spec::namespace(p) == spec::namespace(&sp)
                    && !spec::is_mirror(p)
            });
            if clash {
                continue;
            }
            let key = format!("create:{}", spec::uid(&sp));
            if self.mirror_ops.contains_key(&key) {
                continue;
            }
            let m = static_pods::mirror_pod(&sp, &self.ctx.node_name, node_uid.as_deref());
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), spec::namespace(&sp));
            match api.create(&PostParams::default(), &m).await {
                Ok(_) => tracing::info!(pod = %spec::full_name(&sp), "created mirror pod"),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    // Back off a little before trying again.
                    self.mirror_ops.insert(key, now);
                    tracing::warn!(pod = %spec::full_name(&sp), "creating mirror pod: {e}");
                }
            }
        }
    }

    /// Relists the runtime and kicks the workers of pods whose containers changed.
    async fn relist(&mut self) {
        let rt = &self.ctx.runtime;
        let (containers, sandboxes) =
            match tokio::join!(rt.list_containers(&[], None), rt.list_pod_sandboxes(&[])) {
                (Ok(c), Ok(s)) => (c, s),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::debug!("relisting the runtime: {e}");
                    return;
                }
            };
        let mut fp: HashMap<String, std::collections::hash_map::DefaultHasher> = HashMap::new();
        for s in &sandboxes {
            if let Some(uid) = s.labels.get(POD_UID_LABEL) {
                let h = fp.entry(uid.clone()).or_default();
                s.id.hash(h);
                s.state.hash(h);
            }
        }
        for c in &containers {
            if let Some(uid) = c.labels.get(POD_UID_LABEL) {
                let h = fp.entry(uid.clone()).or_default();
                c.id.hash(h);
                c.state.hash(h);
            }
        }
        let new: HashMap<String, u64> = fp.into_iter().map(|(k, h)| (k, h.finish())).collect();
        for (uid, f) in &new {
            if self.fingerprints.get(uid) != Some(f) {
                if let Some(w) = self.workers.get(uid) {
                    w.kick.notify_one();
                }
            }
        }
        for uid in self.fingerprints.keys() {
            if !new.contains_key(uid) {
                if let Some(w) = self.workers.get(uid) {
                    w.kick.notify_one();
                }
            }
        }
        self.fingerprints = new;
    }

    fn drain_probe_events(&self) {
        for ev in self.ctx.probes.take_events() {
            let pod = self
                .api_pods
                .get(&ev.pod_uid)
                .or_else(|| self.static_pods.get(&ev.pod_uid))
                .cloned();
            let Some(pod) = pod else { continue };
            self.ctx.recorder.container_event(
                &pod,
                &ev.container_name,
                EventType::Warning,
                ev.reason,
                ev.message,
            );
        }
    }

    /// Forgets finished workers of pods that are gone.
    fn reap(&mut self) {
        let done: Vec<String> = self
            .workers
            .iter()
            .filter(|(uid, w)| {
                w.join.is_finished()
                    && !self.api_pods.contains_key(*uid)
                    && !self.static_pods.contains_key(*uid)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for uid in done {
            self.workers.remove(&uid);
        }
    }
}
