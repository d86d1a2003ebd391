//! The daemonset controller (upstream pkg/controller/daemon): one pod per
//! eligible node. A node is eligible when it matches the template's
//! nodeSelector and required node affinity and every NoSchedule/NoExecute taint
//! is tolerated (the template's tolerations plus the default DaemonSet ones).
//! Pods are pinned with required node affinity on `metadata.name` (matchFields)
//! and left to the scheduler, like upstream. RollingUpdate (maxUnavailable)
//! and OnDelete, ControllerRevisions and the controller-revision-hash label.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::Result;
use client_base::events::{object_ref, EventType, Recorder};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodTemplateSpec, Taint, Toleration,
};
use kube::Api;
use tokio_util::sync::CancellationToken;

use super::history;
use super::pod_control::{pod_for_owner, PodControl};
use super::podutil;
use super::workload_utils as wu;
use crate::informers::{key_of, split_key, Informer, Notification};
use crate::workqueue::WorkQueue;
use crate::ControllerContext;

pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

pub async fn run(ctx: ControllerContext) -> Result<()> {
    let c = DaemonSetController {
        client: ctx.client.clone(),
        sets: ctx.informers.get(),
        pods: ctx.informers.get(),
        nodes: ctx.informers.get(),
        revisions: ctx.informers.get(),
        recorder: ctx.recorder("daemonset-controller"),
        exp: wu::Expectations::default(),
        queue: WorkQueue::new(),
    };
    c.run(ctx.options.concurrent_daemonset_syncs, ctx.stop.clone())
        .await
}

fn tol(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// The tolerations every daemon pod gets (upstream AddOrUpdateDaemonPodTolerations).
pub fn default_tolerations(host_network: bool) -> Vec<Toleration> {
    let mut v = vec![
        tol("node.kubernetes.io/not-ready", "NoExecute"),
        tol("node.kubernetes.io/unreachable", "NoExecute"),
        tol("node.kubernetes.io/disk-pressure", "NoSchedule"),
        tol("node.kubernetes.io/memory-pressure", "NoSchedule"),
        tol("node.kubernetes.io/pid-pressure", "NoSchedule"),
        tol("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        v.push(tol("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    v
}

/// The template with the default tolerations added (those already present by key
/// and effect are kept as written).
pub fn template_with_tolerations(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    let spec = t.spec.get_or_insert_with(Default::default);
    let host_network = spec.host_network.unwrap_or(false);
    let tols = spec.tolerations.get_or_insert_with(Vec::new);
    for d in default_tolerations(host_network) {
        if !tols.iter().any(|x| x.key == d.key && x.effect == d.effect) {
            tols.push(d);
        }
    }
    t
}

/// Required node affinity selecting exactly `node` (upstream
/// ReplaceDaemonSetPodNodeNameNodeAffinity).
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let mut a = affinity.unwrap_or_default();
    let na = a.node_affinity.get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
        }],
    });
    a
}

/// The node a daemon pod is for: spec.nodeName, else its metadata.name affinity.
pub fn pod_node(p: &Pod) -> Option<String> {
    let spec = p.spec.as_ref()?;
    if let Some(n) = spec.node_name.clone().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    for t in terms {
        for f in t.match_fields.iter().flatten() {
            if f.key == "metadata.name" && f.operator == "In" {
                if let Some(v) = f.values.as_ref().and_then(|v| v.first()) {
                    return Some(v.clone());
                }
            }
        }
    }
    None
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let vals = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| vals.contains(v)),
        "NotIn" => value.is_none_or(|v| !vals.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(w)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                vals.first().and_then(|w| w.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > w
            } else {
                v < w
            }
        }
        _ => false,
    }
}

/// Whether a node matches a pod's nodeSelector and required node affinity.
pub fn node_matches(t: &PodTemplateSpec, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let spec = match t.spec.as_ref() {
        Some(s) => s,
        None => return true,
    };
    for (k, v) in spec.node_selector.iter().flatten() {
        if labels.get(k) != Some(v) {
            return false;
        }
    }
    let req = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    if let Some(req) = req {
        let name = node.metadata.name.clone().unwrap_or_default();
        let any = req.node_selector_terms.iter().any(|term| {
            let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
            let fields = term.match_fields.as_deref().unwrap_or(&[]);
            if exprs.is_empty() && fields.is_empty() {
                return false;
            }
            exprs
                .iter()
                .all(|e| requirement_matches(e, labels.get(&e.key)))
                && fields
                    .iter()
                    .all(|f| f.key == "metadata.name" && requirement_matches(f, Some(&name)))
        });
        if !any {
            return false;
        }
    }
    true
}

/// (shouldRun, shouldContinueRunning) for a daemon pod on a node (upstream
/// NodeShouldRunDaemonPod): untolerated NoSchedule taints stop new pods,
/// untolerated NoExecute taints also evict running ones.
pub fn should_run(t: &PodTemplateSpec, node: &Node) -> (bool, bool) {
    if !node_matches(t, node) {
        return (false, false);
    }
    let tols = t
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let taints: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let tolerated = |taint: &Taint| tols.iter().any(|tl| podutil::tolerates(tl, taint));
    let mut run = true;
    for taint in &taints {
        match taint.effect.as_str() {
            "NoExecute" if !tolerated(taint) => return (false, false),
            "NoSchedule" if !tolerated(taint) => run = false,
            _ => {}
        }
    }
    (run, true)
}

/// What a sync does per node.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub create_on: Vec<String>,
    pub delete: Vec<String>,
    pub failed: Vec<(String, String)>,
}

/// Upstream manage(): creates for eligible nodes without a daemon pod, deletes
/// pods on ineligible nodes, duplicates (keeping the oldest) and failed pods.
pub fn plan_nodes(
    t: &PodTemplateSpec,
    nodes: &[&Node],
    by_node: &HashMap<String, Vec<&Pod>>,
    surge_hash: Option<&str>,
) -> Plan {
    let mut plan = Plan::default();
    let mut node_names = std::collections::HashSet::new();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        node_names.insert(name.clone());
        let (run, cont) = should_run(t, node);
        let pods: Vec<&Pod> = by_node.get(&name).cloned().unwrap_or_default();
        if run && pods.is_empty() {
            plan.create_on.push(name);
        } else if cont {
            let mut live = vec![];
            for p in pods {
                if p.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                if wu::pod_phase(p) == "Failed" {
                    plan.failed
                        .push((p.metadata.name.clone().unwrap_or_default(), name.clone()));
                    plan.delete
                        .push(p.metadata.name.clone().unwrap_or_default());
                    continue;
                }
                live.push(p);
            }
            if live.len() > 1 {
                live.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
                match surge_hash {
                    // surging: keep the oldest old pod and the newest updated pod
                    Some(h) => {
                        let newest_new = live
                            .iter()
                            .rev()
                            .find(|p| history::pod_revision(p) == Some(h))
                            .map(|p| p.metadata.name.clone());
                        let oldest_old = live
                            .iter()
                            .find(|p| history::pod_revision(p) != Some(h))
                            .map(|p| p.metadata.name.clone());
                        for p in &live {
                            if Some(p.metadata.name.clone()) != newest_new
                                && Some(p.metadata.name.clone()) != oldest_old
                            {
                                plan.delete
                                    .push(p.metadata.name.clone().unwrap_or_default());
                            }
                        }
                    }
                    None => {
                        for p in &live[1..] {
                            plan.delete
                                .push(p.metadata.name.clone().unwrap_or_default());
                        }
                    }
                }
            }
        } else {
            for p in pods {
                if p.metadata.deletion_timestamp.is_none() {
                    plan.delete
                        .push(p.metadata.name.clone().unwrap_or_default());
                }
            }
        }
    }
    // unscheduled pods for nodes that no longer exist
    for (n, pods) in by_node {
        if !node_names.contains(n) {
            for p in pods {
                let scheduled = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some_and(|x| !x.is_empty());
                if !scheduled && p.metadata.deletion_timestamp.is_none() {
                    plan.delete
                        .push(p.metadata.name.clone().unwrap_or_default());
                }
            }
        }
    }
    plan
}

/// The pods on `node` that pass `keep`.
fn pods_on<'a>(
    by_node: &HashMap<String, Vec<&'a Pod>>,
    node: &str,
    keep: impl Fn(&Pod) -> bool,
) -> Vec<&'a Pod> {
    by_node
        .get(node)
        .into_iter()
        .flatten()
        .copied()
        .filter(|p| keep(p))
        .collect()
}

/// Old pods to delete for a rolling update with maxUnavailable (maxSurge 0):
/// unavailable old pods first, then available ones while the budget allows.
pub fn rolling_deletes(
    nodes_should_run: &[String],
    by_node: &HashMap<String, Vec<&Pod>>,
    hash: &str,
    max_unavailable: i32,
    min_ready: i32,
    now: k8s_openapi::jiff::Timestamp,
) -> Vec<String> {
    let mut unavailable = 0;
    let mut old_available = vec![];
    let mut out = vec![];
    for n in nodes_should_run {
        let pods = pods_on(by_node, n, |p| p.metadata.deletion_timestamp.is_none());
        let Some(p) = pods.first() else {
            unavailable += 1;
            continue;
        };
        let avail = wu::is_pod_available(p, min_ready, now);
        if history::pod_revision(p) != Some(hash) {
            if avail {
                old_available.push(p.metadata.name.clone().unwrap_or_default());
            } else {
                out.push(p.metadata.name.clone().unwrap_or_default());
                unavailable += 1;
            }
        } else if !avail {
            unavailable += 1;
        }
    }
    for n in old_available {
        if unavailable >= max_unavailable {
            break;
        }
        out.push(n);
        unavailable += 1;
    }
    out
}

/// A surging rolling update (maxSurge > 0): returns (nodes to get an updated pod
/// next to the old one, old pods to delete once the updated pod is available).
pub fn surge_plan(
    nodes_should_run: &[String],
    by_node: &HashMap<String, Vec<&Pod>>,
    hash: &str,
    max_surge: i32,
    min_ready: i32,
    now: k8s_openapi::jiff::Timestamp,
) -> (Vec<String>, Vec<String>) {
    let mut create = vec![];
    let mut delete = vec![];
    let mut candidates = vec![];
    let mut surging = 0;
    for n in nodes_should_run {
        let pods = pods_on(by_node, n, |p| {
            p.metadata.deletion_timestamp.is_none() && wu::is_pod_active(p)
        });
        let new = pods.iter().find(|p| history::pod_revision(p) == Some(hash));
        let old = pods.iter().find(|p| history::pod_revision(p) != Some(hash));
        match (old, new) {
            (None, _) => {}
            (Some(o), None) => {
                if !wu::is_pod_available(o, min_ready, now) {
                    create.push(n.clone());
                } else {
                    candidates.push(n.clone());
                }
            }
            (Some(o), Some(nw)) => {
                surging += 1;
                if wu::is_pod_available(nw, min_ready, now) {
                    delete.push(o.metadata.name.clone().unwrap_or_default());
                }
            }
        }
    }
    let room = (max_surge - surging).max(0) as usize;
    create.extend(candidates.into_iter().take(room));
    (create, delete)
}

#[derive(Clone)]
pub struct DaemonSetController {
    client: kube::Client,
    sets: Informer<DaemonSet>,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    revisions: Informer<ControllerRevision>,
    recorder: Recorder,
    exp: wu::Expectations,
    queue: WorkQueue<String>,
}

impl DaemonSetController {
    fn enqueue_all(&self) {
        self.queue.add_all(self.sets.keys());
    }

    fn enqueue_for_pod(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        if let Some(r) = wu::controller_of(&pod.metadata) {
            if r.kind == "DaemonSet" {
                self.queue.add(wu::obj_key(&ns, &r.name));
            }
        }
    }

    pub async fn run(self, workers: usize, stop: CancellationToken) -> Result<()> {
        let mut ssub = self.sets.subscribe();
        let mut psub = self.pods.subscribe();
        let mut nsub = self.nodes.subscribe();
        let this = self.clone();
        let s = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = s.cancelled() => break,
                    n = ssub.recv() => match n {
                        None => break,
                        Some(Notification::Resync) => this.enqueue_all(),
                        Some(n) => if let Some(o) = n.object() { this.queue.add(key_of(o.as_ref())) },
                    },
                    n = psub.recv() => match n {
                        None => break,
                        Some(Notification::Resync) => this.enqueue_all(),
                        Some(n) => if let Some(o) = n.object() { this.enqueue_for_pod(o) },
                    },
                    n = nsub.recv() => match n {
                        None => break,
                        Some(Notification::Updated { old, new }) => {
                            if old.metadata.labels != new.metadata.labels
                                || old.spec.as_ref().map(|s| &s.taints) != new.spec.as_ref().map(|s| &s.taints)
                            {
                                this.enqueue_all()
                            }
                        }
                        Some(_) => this.enqueue_all(),
                    },
                }
            }
        });
        self.sets.wait_synced().await;
        self.pods.wait_synced().await;
        self.nodes.wait_synced().await;
        self.revisions.wait_synced().await;
        self.enqueue_all();
        wu::run_sync_workers(
            self.clone(),
            self.queue.clone(),
            workers,
            stop,
            "daemonset",
            |this, key| async move { this.sync(&key).await },
        )
        .await;
        Ok(())
    }

    /// The current revision's hash, creating the revision when needed.
    async fn sync_revision(&self, ds: &DaemonSet) -> Result<String> {
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let revs = history::owned_revisions(&self.revisions, &ns, &uid);
        let template = ds
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &ns);
        let mut collision = ds.status.as_ref().and_then(|s| s.collision_count);
        let cur = history::ensure_revision(
            &api,
            &revs,
            &ds.metadata,
            "DaemonSet",
            &template,
            &mut collision,
        )
        .await?;
        // history limit: drop the oldest revisions no pod uses (daemon pods
        // carry the revision's hash)
        let hash_of = |r: &ControllerRevision| {
            history::revision_label(&r.metadata)
                .unwrap_or_default()
                .to_string()
        };
        let in_use = history::revisions_in_use(&self.pods, &ns, &uid);
        let limit = ds.spec.as_ref().and_then(|s| s.revision_history_limit);
        history::truncate_history(&api, &revs, limit, |r| {
            r.metadata.name == cur.metadata.name || in_use.contains(&hash_of(r))
        })
        .await;
        Ok(hash_of(&cur))
    }

    pub async fn sync(&self, key: &str) -> Result<()> {
        let (ns, name) = split_key(key);
        let ns = ns.unwrap_or_default().to_string();
        let Some(ds) = self.sets.get(Some(&ns), name) else {
            self.exp.forget(key);
            return Ok(());
        };
        let ds: DaemonSet = (*ds).clone();
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let sel = ds.spec.as_ref().map(|s| s.selector.clone());
        if wu::selector_is_empty(sel.as_ref()) {
            self.recorder.event(
                &object_ref(&ds),
                EventType::Warning,
                "SelectingAll",
                "This daemon set is selecting all pods. A non-empty selector is required.",
            );
            return Ok(());
        }
        let hash = self.sync_revision(&ds).await?;
        let owned: Vec<std::sync::Arc<Pod>> = self
            .pods
            .list_namespaced(&ns)
            .into_iter()
            .filter(|p| wu::is_controlled_by(&p.metadata, &uid))
            .filter(|p| wu::selector_matches(sel.as_ref(), p.metadata.labels.as_ref()))
            .collect();
        let mut by_node: HashMap<String, Vec<&Pod>> = HashMap::new();
        for p in &owned {
            if let Some(n) = pod_node(p) {
                by_node.entry(n).or_default().push(p);
            }
        }
        let nodes = self.nodes.list();
        let node_refs: Vec<&Node> = nodes.iter().map(|n| n.as_ref()).collect();
        let template = template_with_tolerations(
            &ds.spec
                .as_ref()
                .map(|s| s.template.clone())
                .unwrap_or_default(),
        );
        let satisfied = self.exp.satisfied_by_pods(key, &self.pods, &ns);
        let now = wu::now();
        let min_ready = ds
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        if satisfied && ds.metadata.deletion_timestamp.is_none() {
            let rolling = ds
                .spec
                .as_ref()
                .and_then(|s| s.update_strategy.as_ref())
                .and_then(|u| u.type_.as_deref())
                != Some("OnDelete");
            let ms = ds
                .spec
                .as_ref()
                .and_then(|s| s.update_strategy.as_ref())
                .and_then(|u| u.rolling_update.as_ref())
                .and_then(|r| r.max_surge.as_ref());
            let should_count = node_refs
                .iter()
                .filter(|n| should_run(&template, n).0)
                .count() as i32;
            let max_surge = if rolling {
                wu::scaled_value(ms, "0", should_count, true)
            } else {
                0
            };
            let mut plan = plan_nodes(
                &template,
                &node_refs,
                &by_node,
                (max_surge > 0).then_some(hash.as_str()),
            );
            if rolling && max_surge > 0 {
                let should: Vec<String> = node_refs
                    .iter()
                    .filter(|n| should_run(&template, n).0)
                    .map(|n| n.metadata.name.clone().unwrap_or_default())
                    .collect();
                let (create, delete) =
                    surge_plan(&should, &by_node, &hash, max_surge, min_ready, now);
                for n in create {
                    if !plan.create_on.contains(&n) {
                        plan.create_on.push(n);
                    }
                }
                for d in delete {
                    if !plan.delete.contains(&d) {
                        plan.delete.push(d);
                    }
                }
            } else if rolling {
                let should: Vec<String> = node_refs
                    .iter()
                    .filter(|n| should_run(&template, n).0)
                    .map(|n| n.metadata.name.clone().unwrap_or_default())
                    .collect();
                let mu = ds
                    .spec
                    .as_ref()
                    .and_then(|s| s.update_strategy.as_ref())
                    .and_then(|u| u.rolling_update.as_ref())
                    .and_then(|r| r.max_unavailable.as_ref());
                let max_unavail = wu::scaled_value(mu, "1", should.len() as i32, true)
                    .max(if should.is_empty() { 0 } else { 1 });
                for d in rolling_deletes(&should, &by_node, &hash, max_unavail, min_ready, now) {
                    if !plan.delete.contains(&d) {
                        plan.delete.push(d);
                    }
                }
            }
            self.apply(&ds, key, &template, &hash, plan).await?;
        }
        // status
        let mut desired = 0;
        let (mut current, mut mis, mut ready, mut avail, mut updated) = (0, 0, 0, 0, 0);
        for node in &node_refs {
            let n = node.metadata.name.clone().unwrap_or_default();
            let (run, _) = should_run(&template, node);
            let pods = pods_on(&by_node, &n, wu::is_pod_active);
            if run {
                desired += 1;
                if let Some(p) = pods.first() {
                    current += 1;
                    if wu::is_pod_ready(p) {
                        ready += 1;
                        if wu::is_pod_available(p, min_ready, now) {
                            avail += 1;
                        }
                    }
                    if history::pod_revision(p) == Some(hash.as_str()) {
                        updated += 1;
                    }
                }
            } else if !pods.is_empty() {
                mis += 1;
            }
        }
        let st = DaemonSetStatus {
            current_number_scheduled: current,
            desired_number_scheduled: desired,
            number_misscheduled: mis,
            number_ready: ready,
            number_available: Some(avail),
            number_unavailable: Some(desired - avail).filter(|v| *v > 0),
            updated_number_scheduled: Some(updated),
            observed_generation: ds.metadata.generation,
            collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
            conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
        };
        if wu::status_changed(&st, ds.status.as_ref()) {
            let mut obj = ds.clone();
            obj.status = Some(st.clone());
            let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), &ns);
            wu::replace_status(&api, name, &obj).await?;
        }
        if min_ready > 0 && ready != avail {
            self.queue
                .add_after(key.to_string(), Duration::from_secs(min_ready as u64));
        }
        Ok(())
    }

    async fn apply(
        &self,
        ds: &DaemonSet,
        key: &str,
        template: &PodTemplateSpec,
        hash: &str,
        plan: Plan,
    ) -> Result<()> {
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let oref = object_ref(ds);
        for (pod, node) in &plan.failed {
            self.recorder.event(
                &oref,
                EventType::Warning,
                "FailedDaemonPod",
                format!("Found failed daemon pod {ns}/{pod} on node {node}, will try to kill it"),
            );
        }
        let control = PodControl {
            api: &api,
            recorder: &self.recorder,
            oref: &oref,
            expectations: &self.exp,
            key,
        };
        let delete_err = control.delete_pods(&plan.delete).await;
        let mut base = pod_for_owner(template, &ds.metadata, "apps/v1", "DaemonSet");
        let labels = base.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(history::CONTROLLER_REVISION_HASH.into(), hash.into());
        if let Some(g) = ds.metadata.generation {
            labels.insert(TEMPLATE_GENERATION_LABEL.into(), g.to_string());
        }
        let pods = plan
            .create_on
            .iter()
            .map(|node| {
                let mut pod = base.clone();
                if let Some(spec) = pod.spec.as_mut() {
                    spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
                }
                pod
            })
            .collect();
        match control.create_pods(pods).await.or(delete_err) {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, labels: &[(&str, &str)], taints: Vec<Taint>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            ..Default::default()
        }
    }

    fn template(sel: Option<(&str, &str)>) -> PodTemplateSpec {
        template_with_tolerations(&PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                node_selector: sel.map(|(k, v)| [(k.to_string(), v.to_string())].into()),
                ..Default::default()
            }),
        })
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    [(
                        history::CONTROLLER_REVISION_HASH.to_string(),
                        hash.to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                affinity: Some(pin_to_node(None, node)),
                ..Default::default()
            }),
            status: Some(wu::testing::pod_status("Running", ready)),
        }
    }

    /// Pods by the node they are on.
    fn by_node<'a>(pods: &[(&str, &'a Pod)]) -> HashMap<String, Vec<&'a Pod>> {
        let mut m: HashMap<String, Vec<&Pod>> = HashMap::new();
        for (n, p) in pods {
            m.entry(n.to_string()).or_default().push(p);
        }
        m
    }

    #[test]
    fn eligibility() {
        let t = template(Some(("disk", "ssd")));
        assert_eq!(
            should_run(&t, &node("a", &[("disk", "ssd")], vec![])),
            (true, true)
        );
        assert_eq!(should_run(&t, &node("b", &[], vec![])), (false, false));
        let t = template(None);
        // default tolerations cover not-ready, unschedulable
        assert_eq!(
            should_run(
                &t,
                &node(
                    "c",
                    &[],
                    vec![
                        taint("node.kubernetes.io/not-ready", "NoExecute"),
                        taint("node.kubernetes.io/unschedulable", "NoSchedule")
                    ]
                )
            ),
            (true, true)
        );
        assert_eq!(
            should_run(
                &t,
                &node(
                    "d",
                    &[],
                    vec![taint("node-role.kubernetes.io/control-plane", "NoSchedule")]
                )
            ),
            (false, true)
        );
        assert_eq!(
            should_run(&t, &node("e", &[], vec![taint("dedicated", "NoExecute")])),
            (false, false)
        );
    }

    #[test]
    fn pinning() {
        let p = pod("x", "node-1", "h", true);
        assert_eq!(pod_node(&p).as_deref(), Some("node-1"));
        let t = template(None);
        let n1 = node("node-1", &[], vec![]);
        let n2 = node("node-2", &[], vec![]);
        let by_node = by_node(&[("node-1", &p)]);
        let plan = plan_nodes(&t, &[&n1, &n2], &by_node, None);
        assert_eq!(plan.create_on, vec!["node-2".to_string()]);
        assert!(plan.delete.is_empty());
        let ts = template(Some(("k", "v")));
        let plan = plan_nodes(&ts, &[&n1, &n2], &by_node, None);
        assert_eq!(plan.delete, vec!["x".to_string()]);
    }

    #[test]
    fn rolling() {
        let a = pod("a", "n1", "old", true);
        let b = pod("b", "n2", "old", true);
        let mut by_node = by_node(&[("n1", &a), ("n2", &b)]);
        let nodes = vec!["n1".to_string(), "n2".to_string()];
        assert_eq!(
            rolling_deletes(&nodes, &by_node, "new", 1, 0, wu::now()).len(),
            1
        );
        let b2 = pod("b2", "n2", "new", false);
        by_node.insert("n2".into(), vec![&b2]);
        assert!(rolling_deletes(&nodes, &by_node, "new", 1, 0, wu::now()).is_empty());
    }

    #[test]
    fn surge() {
        let a = pod("a", "n1", "old", true);
        let b = pod("b", "n2", "old", true);
        let mut by_node = by_node(&[("n1", &a), ("n2", &b)]);
        let nodes = vec!["n1".to_string(), "n2".to_string()];
        let (c, d) = surge_plan(&nodes, &by_node, "new", 1, 0, wu::now());
        assert_eq!((c.len(), d.len()), (1, 0));
        let a2 = pod("a2", "n1", "new", true);
        by_node.get_mut("n1").unwrap().push(&a2);
        let (c, d) = surge_plan(&nodes, &by_node, "new", 1, 0, wu::now());
        assert_eq!((c, d), (vec![], vec!["a".to_string()]));
        // both pods survive the duplicate cleanup while surging
        let t = template(None);
        let n1 = node("n1", &[], vec![]);
        let n2 = node("n2", &[], vec![]);
        let plan = plan_nodes(&t, &[&n1, &n2], &by_node, Some("new"));
        assert!(plan.delete.is_empty());
        let plan = plan_nodes(&t, &[&n1, &n2], &by_node, None);
        assert_eq!(plan.delete.len(), 1);
    }
}
