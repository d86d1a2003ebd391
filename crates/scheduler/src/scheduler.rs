//! The scheduler proper: informers feeding the cache and the queue, the
//! scheduling cycle (snapshot → PreFilter → Filter → PostFilter → Score →
//! Reserve → assume), the asynchronous binding cycle (PreBind → Bind), and
//! failure handling (PodScheduled=False, FailedScheduling events, requeue).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use client_base::events::Recorder;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::cache::{is_terminal, Cache};
use crate::config::DEFAULT_SCHEDULER_NAME;
use crate::framework::fit_error::{Diagnosis, FitError};
use crate::framework::runtime::{Framework, PostFilterContext};
use crate::framework::{Code, CycleState, PodInfo, Snapshot};
use crate::listers::{Listers, Writers};
use crate::metrics::Metrics;
use crate::queue::{QueuedPod, SchedulingQueue};

/// Bindings in flight at once (each is one POST pods/binding).
pub const MAX_CONCURRENT_BINDINGS: usize = 64;

/// Why a cycle did not place the pod.
#[derive(Debug)]
pub enum ScheduleError {
    /// No node fits (PodScheduled reason Unschedulable).
    Fit(Box<FitError>),
    /// Anything else (reason SchedulerError; retried with back-off).
    Error(String),
}

pub struct Scheduler {
    client: kube::Client,
    profiles: HashMap<String, Arc<Framework>>,
    pub queue: Arc<SchedulingQueue>,
    cache: Mutex<Cache>,
    listers: Listers,
    recorder: Recorder,
    pub metrics: Arc<Metrics>,
    binds: Arc<Semaphore>,
    next_start: AtomicUsize,
    rng: AtomicU64,
    /// node → pods nominated to it by preemption.
    nominated: Mutex<HashMap<String, Vec<Arc<PodInfo>>>>,
}

fn pod_key(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or("default"),
        p.metadata.name.as_deref().unwrap_or("")
    )
}

impl Scheduler {
    pub fn new(
        client: kube::Client,
        frameworks: Vec<Arc<Framework>>,
        listers: Listers,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        backoff: (Duration, Duration),
    ) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            client,
            profiles: frameworks
                .into_iter()
                .map(|f| (f.scheduler_name.clone(), f))
                .collect(),
            queue: Arc::new(SchedulingQueue::new(backoff.0, backoff.1)),
            cache: Mutex::new(Cache::default()),
            listers,
            recorder,
            metrics,
            binds: Arc::new(Semaphore::new(MAX_CONCURRENT_BINDINGS)),
            next_start: AtomicUsize::new(0),
            rng: AtomicU64::new(0x9E37_79B9_7F4A_7C15 ^ std::process::id() as u64),
            nominated: Mutex::new(HashMap::new()),
        })
    }

    /// Run informers and the scheduling loop until `stop`.
    pub async fn run(self: Arc<Self>, writers: Writers, stop: CancellationToken) -> Result<()> {
        let (pods_synced_tx, mut pods_synced) = tokio::sync::watch::channel(false);
        let (nodes_synced_tx, mut nodes_synced) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(self.clone().watch_nodes(nodes_synced_tx)));
        tasks.push(tokio::spawn(self.clone().watch_pods(pods_synced_tx)));
        let c = &self.client;
        tasks.push(spawn_reflector(
            Api::<PersistentVolumeClaim>::all(c.clone()),
            writers.pvcs,
            Some(self.queue.clone()),
        ));
        tasks.push(spawn_reflector(
            Api::<PersistentVolume>::all(c.clone()),
            writers.pvs,
            Some(self.queue.clone()),
        ));
        tasks.push(spawn_reflector(
            Api::<StorageClass>::all(c.clone()),
            writers.storage_classes,
            Some(self.queue.clone()),
        ));
        tasks.push(spawn_reflector(
            Api::<PodDisruptionBudget>::all(c.clone()),
            writers.pdbs,
            None,
        ));
        let this = self.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                this.queue.flush();
                let p = this.queue.pending();
                let g = &this.metrics.pending_pods;
                g.with_label_values(&["active"]).set(p.active as i64);
                g.with_label_values(&["backoff"]).set(p.backoff as i64);
                g.with_label_values(&["unschedulable"])
                    .set(p.unschedulable as i64);
                g.with_label_values(&["gated"]).set(p.gated as i64);
            }
        }));
        let synced = async {
            let _ = pods_synced.wait_for(|v| *v).await;
            let _ = nodes_synced.wait_for(|v| *v).await;
        };
        tokio::select! {
            _ = synced => {}
            _ = stop.cancelled() => {}
        }
        tracing::info!(profiles = ?self.profiles.keys().collect::<Vec<_>>(), "caches synced; scheduling");
        let mut snap = Snapshot::default();
        loop {
            let qp = tokio::select! {
                _ = stop.cancelled() => break,
                qp = self.queue.pop() => qp,
            };
            let Some(qp) = qp else { break };
            self.clone().schedule_one(qp, &mut snap).await;
        }
        self.queue.close();
        for t in tasks {
            t.abort();
        }
        Ok(())
    }

    async fn watch_pods(self: Arc<Self>, synced: tokio::sync::watch::Sender<bool>) {
        let api: Api<Pod> = Api::all(self.client.clone());
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut seen: Option<HashSet<String>> = None;
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Init) => seen = Some(HashSet::new()),
                Ok(Event::InitApply(p)) => {
                    if let Some(s) = seen.as_mut() {
                        s.insert(pod_key(&p));
                    }
                    self.on_pod(p);
                }
                Ok(Event::InitDone) => {
                    if let Some(seen) = seen.take() {
                        let gone: Vec<String> = {
                            let c = self.cache.lock().unwrap();
                            c.pod_keys()
                                .into_iter()
                                .filter(|k| !seen.contains(k))
                                .collect()
                        };
                        for k in gone {
                            self.on_pod_gone(&k);
                        }
                    }
                    let _ = synced.send(true);
                }
                Ok(Event::Apply(p)) => self.on_pod(p),
                Ok(Event::Delete(p)) => self.on_pod_gone(&pod_key(&p)),
                Err(e) => tracing::warn!(error = %e, "pod watch"),
            }
        }
    }

    fn on_pod(&self, mut pod: Pod) {
        // managedFields are never read here and are most of a small pod.
        pod.metadata.managed_fields = None;
        let key = pod_key(&pod);
        let assigned = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        let nominated = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.clone())
            .filter(|n| !n.is_empty());
        self.set_nominated(
            &key,
            if assigned || pod.metadata.deletion_timestamp.is_some() {
                None
            } else {
                nominated.map(|n| (n, &pod))
            },
        );
        if assigned {
            self.queue.delete(&key);
            let freed = self.cache.lock().unwrap().upsert_pod(Arc::new(pod));
            if freed {
                self.queue.move_all_to_active_or_backoff();
            }
            return;
        }
        if self.cache.lock().unwrap().is_assumed_or_bound(&key) {
            // Assumed and binding: the bound object will follow.
            return;
        }
        if pod.metadata.deletion_timestamp.is_some() || is_terminal(&pod) {
            self.queue.delete(&key);
            return;
        }
        let name = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(DEFAULT_SCHEDULER_NAME);
        // Pods naming another scheduler are left alone.
        if let Some(fw) = self.profiles.get(name) {
            self.queue
                .add(Arc::new(PodInfo::new(Arc::new(pod))), fw.clone());
        }
    }

    /// Track pods nominated to a node by preemption: their room is kept
    /// for them against pods of lower priority.
    fn set_nominated(&self, key: &str, to: Option<(String, &Pod)>) {
        let mut m = self.nominated.lock().unwrap();
        for v in m.values_mut() {
            v.retain(|p| p.key != key);
        }
        m.retain(|_, v| !v.is_empty());
        if let Some((node, pod)) = to {
            m.entry(node)
                .or_default()
                .push(Arc::new(PodInfo::new(Arc::new(pod.clone()))));
        }
    }

    /// `snap` with nominated pods of at least `pod`'s priority added to
    /// their nodes (None when there are none).
    fn with_nominated(&self, pod: &PodInfo, snap: &Snapshot) -> Option<Snapshot> {
        let m = self.nominated.lock().unwrap();
        if m.is_empty() {
            return None;
        }
        let cache = self.cache.lock().unwrap();
        let mut out: Option<Snapshot> = None;
        for (node, pods) in m.iter() {
            let Some(&i) = snap.index.get(node) else {
                continue;
            };
            let add: Vec<&Arc<PodInfo>> = pods
                .iter()
                .filter(|p| {
                    p.key != pod.key
                        && p.priority >= pod.priority
                        && !cache.is_assumed_or_bound(&p.key)
                })
                .collect();
            if add.is_empty() {
                continue;
            }
            let s = out.get_or_insert_with(|| snap.clone());
            let mut ni = (*s.nodes[i]).clone();
            for p in add {
                ni.add_pod(p.clone());
            }
            s.nodes[i] = Arc::new(ni);
        }
        out
    }

    fn on_pod_gone(&self, key: &str) {
        self.set_nominated(key, None);
        self.queue.delete(key);
        let freed = self.cache.lock().unwrap().remove_pod(key);
        if freed {
            self.queue.move_all_to_active_or_backoff();
        }
    }

    async fn watch_nodes(self: Arc<Self>, synced: tokio::sync::watch::Sender<bool>) {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut seen: Option<HashSet<String>> = None;
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Init) => seen = Some(HashSet::new()),
                Ok(Event::InitApply(mut n)) | Ok(Event::Apply(mut n)) => {
                    n.metadata.managed_fields = None;
                    if let Some(s) = seen.as_mut() {
                        s.insert(n.metadata.name.clone().unwrap_or_default());
                    }
                    let changed = self.cache.lock().unwrap().upsert_node(Arc::new(n));
                    if changed {
                        self.queue.move_all_to_active_or_backoff();
                    }
                }
                Ok(Event::InitDone) => {
                    if let Some(seen) = seen.take() {
                        let mut c = self.cache.lock().unwrap();
                        for n in c.node_names() {
                            if !seen.contains(&n) {
                                c.remove_node(&n);
                            }
                        }
                    }
                    let _ = synced.send(true);
                }
                Ok(Event::Delete(n)) => {
                    self.cache
                        .lock()
                        .unwrap()
                        .remove_node(n.metadata.name.as_deref().unwrap_or(""));
                }
                Err(e) => tracing::warn!(error = %e, "node watch"),
            }
        }
    }

    #[cfg(test)]
    fn on_node_for_test(&self, n: Node) {
        self.cache.lock().unwrap().upsert_node(Arc::new(n));
    }

    /// One scheduling cycle for `qp`; binding continues in the background.
    async fn schedule_one(self: Arc<Self>, qp: QueuedPod, snap: &mut Snapshot) {
        let start = Instant::now();
        let fw = qp.framework.clone();
        let pod = qp.info.clone();
        self.cache.lock().unwrap().update_snapshot(snap);
        let mut state = CycleState::default();
        match self.schedule_pod(&fw, &pod, snap, &mut state) {
            Ok(node) => {
                self.cache.lock().unwrap().assume(&pod, &node);
                let s = fw.run_reserve(&state, &pod, &node);
                if !s.is_success() {
                    self.cache.lock().unwrap().forget(&pod.key);
                    self.fail(&qp, ScheduleError::Error(s.message()), None, start);
                    return;
                }
                let Ok(permit) = self.binds.clone().acquire_owned().await else {
                    return;
                };
                let this = self.clone();
                tokio::spawn(async move {
                    this.bind(qp, node, state, start).await;
                    drop(permit);
                });
            }
            Err(ScheduleError::Fit(mut fe)) => {
                let mut nominated = None;
                if fw.has_post_filter() {
                    let pdbs = self.listers.pdbs.state();
                    let ctx = PostFilterContext {
                        framework: &fw,
                        state: &state,
                        snapshot: snap,
                        diagnosis: &fe.diagnosis,
                        client: &self.client,
                        pdbs: &pdbs,
                        recorder: &self.recorder,
                    };
                    self.metrics.preemption_attempts.inc();
                    let (n, s) = fw.run_post_filter(&ctx, &pod).await;
                    if s.code == Code::Error {
                        tracing::warn!(pod = %pod.key, error = %s.message(), "preemption");
                    } else if !s.is_success() {
                        fe.diagnosis.post_filter_msg = s.message();
                    }
                    if let Some(n) = &n {
                        tracing::info!(pod = %pod.key, node = %n, "preemption: nominated node");
                    }
                    nominated = n;
                }
                self.fail(&qp, ScheduleError::Fit(fe), nominated, start);
            }
            Err(e) => self.fail(&qp, e, None, start),
        }
    }

    /// Pick a node for `pod` (no side effects besides `state`).
    pub fn schedule_pod(
        &self,
        fw: &Framework,
        pod: &PodInfo,
        snap: &Snapshot,
        state: &mut CycleState,
    ) -> Result<String, ScheduleError> {
        let n = snap.nodes.len();
        if n == 0 {
            return Err(ScheduleError::Error(
                "no nodes available to schedule pods".into(),
            ));
        }
        let with_nominated = self.with_nominated(pod, snap);
        let snap = with_nominated.as_ref().unwrap_or(snap);
        let (pre, s) = fw.run_pre_filter(state, pod, snap);
        if !s.is_success() {
            if s.code == Code::Error {
                return Err(ScheduleError::Error(s.message()));
            }
            let mut diagnosis = Diagnosis {
                pre_filter_msg: s.message(),
                ..Default::default()
            };
            diagnosis.unschedulable_plugins.insert(s.plugin);
            return Err(ScheduleError::Fit(Box::new(FitError {
                num_all_nodes: n,
                diagnosis,
                absent_nodes_reason: None,
            })));
        }
        // A node nominated by an earlier preemption is tried first.
        if let Some(nn) = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
        {
            if let Some(ni) = snap.get(nn) {
                if pre.as_ref().is_none_or(|p| p.contains(nn))
                    && fw.run_filter(state, pod, ni).is_success()
                {
                    return Ok(nn.to_string());
                }
            }
        }
        let (cands, start): (Vec<usize>, usize) = match &pre {
            Some(set) => {
                let mut v: Vec<usize> = set
                    .iter()
                    .filter_map(|name| snap.index.get(name).copied())
                    .collect();
                v.sort_unstable();
                (v, 0)
            }
            None => (
                (0..n).collect(),
                self.next_start.load(Ordering::Relaxed) % n,
            ),
        };
        let (feasible, diagnosis, processed) =
            fw.find_nodes_that_fit(state, pod, snap, &cands, start);
        if pre.is_none() {
            self.next_start
                .store((start + processed) % n, Ordering::Relaxed);
        }
        if feasible.is_empty() {
            let absent = (cands.len() < n)
                .then(|| "node(s) didn't satisfy plugin(s) [NodeAffinity]".to_string());
            return Err(ScheduleError::Fit(Box::new(FitError {
                num_all_nodes: n,
                diagnosis,
                absent_nodes_reason: absent,
            })));
        }
        if feasible.len() == 1 {
            return Ok(feasible[0].name.clone());
        }
        let scores = fw.prioritize(state, pod, &feasible, snap);
        Ok(feasible[self.select_host(&scores)].name.clone())
    }

    /// Highest score; ties broken uniformly at random (reservoir sampling).
    fn select_host(&self, scores: &[i64]) -> usize {
        let mut best = 0;
        let mut ties = 1u64;
        for (i, s) in scores.iter().enumerate().skip(1) {
            if *s > scores[best] {
                best = i;
                ties = 1;
            } else if *s == scores[best] {
                ties += 1;
                if self.next_rand() % ties == 0 {
                    best = i;
                }
            }
        }
        best
    }

    fn next_rand(&self) -> u64 {
        // xorshift64*; quality is irrelevant, only spread.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    async fn bind(self: Arc<Self>, qp: QueuedPod, node: String, state: CycleState, start: Instant) {
        let fw = qp.framework.clone();
        let pod = qp.info.clone();
        let bind_start = Instant::now();
        let mut s = fw.run_pre_bind(&state, &self.client, &pod.pod, &node).await;
        if s.is_success() {
            s = fw.run_bind(&self.client, &pod.pod, &node).await;
        }
        if s.is_success() {
            self.metrics
                .binding_duration
                .observe(bind_start.elapsed().as_secs_f64());
            self.queue.done(&pod.key);
            let profile = fw.scheduler_name.as_str();
            self.metrics
                .schedule_attempts
                .with_label_values(&["scheduled", profile])
                .inc();
            self.metrics
                .attempt_duration
                .with_label_values(&["scheduled", profile])
                .observe(start.elapsed().as_secs_f64());
            self.metrics
                .pod_scheduling_attempts
                .observe(qp.attempts as f64);
            if let Some(t) = qp.initial_attempt {
                let a = qp.attempts.min(15).to_string();
                self.metrics
                    .pod_scheduling_sli_duration
                    .with_label_values(&[a.as_str()])
                    .observe(t.elapsed().as_secs_f64());
            }
            tracing::debug!(pod = %pod.key, %node, "bound");
            self.recorder.normal(
                &*pod.pod,
                "Scheduled",
                format!("Successfully assigned {} to {node}", pod.key),
            );
            return;
        }
        self.cache.lock().unwrap().forget(&pod.key);
        fw.run_unreserve(&state, &pod, &node);
        let msg = s.message();
        if msg.contains("NotFound") || msg.contains("not found") && msg.contains("pods") {
            self.queue.delete(&pod.key);
            return;
        }
        // Another binder (or an earlier attempt) may already have bound it:
        // the informer will tell; otherwise it is retried with back-off.
        self.queue.move_all_to_active_or_backoff();
        self.fail(
            &qp,
            ScheduleError::Error(format!("running Bind plugin \"{}\": {msg}", s.plugin)),
            None,
            start,
        );
    }

    fn fail(&self, qp: &QueuedPod, err: ScheduleError, nominated: Option<String>, start: Instant) {
        let pod = &qp.info;
        let profile = qp.framework.scheduler_name.as_str();
        let (result, reason, msg) = match &err {
            ScheduleError::Fit(fe) => ("unschedulable", "Unschedulable", fe.to_string()),
            ScheduleError::Error(m) => ("error", "SchedulerError", m.clone()),
        };
        self.queue
            .requeue_failed(&pod.key, matches!(err, ScheduleError::Fit(_)));
        self.metrics
            .schedule_attempts
            .with_label_values(&[result, profile])
            .inc();
        self.metrics
            .attempt_duration
            .with_label_values(&[result, profile])
            .observe(start.elapsed().as_secs_f64());
        tracing::debug!(pod = %pod.key, %msg, "unable to schedule pod");
        self.recorder
            .warning(&*pod.pod, "FailedScheduling", msg.clone());
        // Skip the write when the condition already says the same.
        let status = pod.pod.status.as_ref();
        let same = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
            .is_some_and(|c| {
                c.status == "False"
                    && c.reason.as_deref() == Some(reason)
                    && c.message.as_deref() == Some(msg.as_str())
            });
        let nominated_changed = nominated.is_some()
            && nominated.as_deref() != status.and_then(|s| s.nominated_node_name.as_deref());
        if same && !nominated_changed {
            return;
        }
        let mut st = serde_json::json!({"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": reason, "message": msg,
            "lastProbeTime": null,
            "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }]});
        if let Some(n) = nominated {
            st["nominatedNodeName"] = serde_json::Value::String(n);
        }
        let patch = serde_json::json!({"status": st});
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let name = pod.name.clone();
        tokio::spawn(async move {
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                tracing::debug!(error = %e, pod = %name, "updating PodScheduled condition");
            }
        });
    }
}

fn spawn_reflector<K>(
    api: Api<K>,
    writer: Writer<K>,
    queue: Option<Arc<SchedulingQueue>>,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    client_base::watch::spawn_reflector(api, writer, move |ev| {
        if matches!(ev, Event::Apply(_) | Event::Delete(_)) {
            if let Some(q) = &queue {
                q.move_all_to_active_or_backoff();
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KubeSchedulerConfiguration;
    use crate::plugins::testing::{node, pod};

    fn scheduler() -> (Arc<Scheduler>, Arc<Framework>) {
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap();
        let (listers, _w) = Listers::new();
        let fws = KubeSchedulerConfiguration::default()
            .frameworks(&listers)
            .unwrap();
        let fw = fws[0].clone();
        let s = Scheduler::new(
            client,
            fws,
            listers,
            Recorder::disabled(),
            Arc::new(Metrics::new()),
            (Duration::from_secs(1), Duration::from_secs(10)),
        );
        (s, fw)
    }

    fn place(s: &Scheduler, fw: &Framework, p: PodInfo) -> Result<String, ScheduleError> {
        let mut snap = Snapshot::default();
        s.cache.lock().unwrap().update_snapshot(&mut snap);
        s.schedule_pod(fw, &p, &snap, &mut CycleState::default())
    }

    #[tokio::test]
    async fn unschedulable_message_has_the_upstream_form() {
        let (s, fw) = scheduler();
        s.on_node_for_test(
            node("a")
                .alloc("1", "1Gi", "110")
                .taint("dedicated", "gpu", "NoSchedule")
                .obj(),
        );
        s.on_node_for_test(node("b").alloc("1", "1Gi", "110").obj());
        s.on_node_for_test(node("c").alloc("1", "1Gi", "110").obj());
        let err = place(&s, &fw, pod("p").req("2", "").info()).unwrap_err();
        let ScheduleError::Fit(fe) = err else {
            panic!("not a fit error")
        };
        assert_eq!(fe.to_string(), "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu.");
    }

    #[tokio::test]
    async fn assumed_pods_take_capacity_and_selectors_steer() {
        let (s, fw) = scheduler();
        s.on_node_for_test(
            node("a")
                .alloc("1", "1Gi", "110")
                .label("disk", "ssd")
                .obj(),
        );
        s.on_node_for_test(node("b").alloc("1", "1Gi", "110").obj());
        let first = place(
            &s,
            &fw,
            pod("p1")
                .req("600m", "")
                .node_selector("disk", "ssd")
                .info(),
        )
        .unwrap();
        assert_eq!(first, "a");
        s.cache
            .lock()
            .unwrap()
            .assume(&pod("p1").req("600m", "").info(), "a");
        // a is now too full for another 600m pod; b has no ssd label.
        let err = place(
            &s,
            &fw,
            pod("p2")
                .req("600m", "")
                .node_selector("disk", "ssd")
                .info(),
        )
        .unwrap_err();
        let ScheduleError::Fit(fe) = err else {
            panic!("not a fit error")
        };
        assert_eq!(
            fe.to_string(),
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector."
        );
        // Without the selector it lands on b.
        assert_eq!(
            place(&s, &fw, pod("p3").req("600m", "").info()).unwrap(),
            "b"
        );
    }

    #[tokio::test]
    async fn pods_for_other_schedulers_are_left_alone() {
        let (s, _fw) = scheduler();
        let mut p = pod("mine").obj();
        s.on_pod(p.clone());
        p.metadata.name = Some("theirs".into());
        p.spec.as_mut().unwrap().scheduler_name = Some("other".into());
        s.on_pod(p);
        assert!(s.queue.contains("default/mine"));
        assert!(!s.queue.contains("default/theirs"));
    }

    /// Cycle cost over 5000 nodes (run with `--ignored --nocapture`).
    #[tokio::test]
    #[ignore]
    async fn cycle_cost_with_5000_nodes() {
        let (s, fw) = scheduler();
        for i in 0..5000 {
            s.on_node_for_test(
                node(&format!("n{i:05}"))
                    .alloc("4", "16Gi", "110")
                    .label("bench", "sched")
                    .obj(),
            );
        }
        let mut snap = Snapshot::default();
        let t = Instant::now();
        let n = 500;
        for i in 0..n {
            let p = pod(&format!("p{i}"))
                .req("100m", "100Mi")
                .node_selector("bench", "sched")
                .info();
            s.cache.lock().unwrap().update_snapshot(&mut snap);
            let node = s
                .schedule_pod(&fw, &p, &snap, &mut CycleState::default())
                .unwrap();
            s.cache.lock().unwrap().assume(&p, &node);
        }
        eprintln!(
            "{:.3} ms per pod",
            t.elapsed().as_secs_f64() * 1000.0 / n as f64
        );
    }
}
