//! Node lifecycle controller (upstream pkg/controller/nodelifecycle) and the
//! taint eviction controller (pkg/controller/tainteviction):
//!
//! * a node whose kubelet stopped posting status (Ready heartbeat and node
//!   Lease) for `--node-monitor-grace-period` (`--node-startup-grace-period`
//!   before its first status) gets its conditions set to Unknown
//!   (NodeStatusUnknown / NodeStatusNeverUpdated), a NodeNotReady event, and its
//!   pods marked not ready;
//! * NoExecute taints `node.kubernetes.io/not-ready` / `unreachable` follow the
//!   Ready condition, added through a per-zone rate limiter
//!   (`--node-eviction-rate`, `--secondary-node-eviction-rate` for partially
//!   disrupted zones) and not at all when every zone is fully disrupted;
//! * NoSchedule taints follow the node conditions (not-ready, unreachable,
//!   memory/disk/pid-pressure, network-unavailable, unschedulable);
//! * the taint eviction controller deletes pods that do not tolerate a NoExecute
//!   taint of their node, at once or after their tolerationSeconds, with the
//!   DisruptionTarget condition (DeletionByTaintManager).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition, Taint};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;

use super::podutil::{self, api_time, to_utc};
use crate::informers::{Informer, Notification};
use crate::ControllerContext;
use client_base::events::{node_ref, EventType, Recorder};

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// The conditions the controller owns when the kubelet is silent.
const WATCHED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

pub fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

fn cond_status<'a>(node: &'a Node, t: &str) -> Option<&'a str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| c.status.as_str())
}

/// The conditions after the kubelet has been silent too long: every watched
/// condition Unknown (heartbeat kept), missing ones added. None when nothing changes.
pub fn unknown_conditions(node: &Node, now: DateTime<Utc>) -> Option<Vec<NodeCondition>> {
    let mut conds: Vec<NodeCondition> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for t in WATCHED_CONDITIONS {
        match conds.iter_mut().find(|c| c.type_ == t) {
            Some(c) => {
                if c.status != "Unknown" {
                    c.status = "Unknown".into();
                    c.reason = Some("NodeStatusUnknown".into());
                    c.message = Some("Kubelet stopped posting node status.".into());
                    c.last_transition_time = Some(api_time(now));
                    changed = true;
                }
            }
            None => {
                conds.push(NodeCondition {
                    type_: t.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(api_time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conds)
}

/// The NoExecute taint the Ready condition calls for.
pub fn desired_no_execute(node: &Node) -> Option<&'static str> {
    match ready_status(node) {
        Some("False") => Some(TAINT_NOT_READY),
        Some("Unknown") => Some(TAINT_UNREACHABLE),
        _ => None,
    }
}

/// The NoSchedule taints the conditions call for (upstream TaintNodesByCondition).
pub fn desired_no_schedule(node: &Node) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    match ready_status(node) {
        Some("False") => {
            out.insert(TAINT_NOT_READY);
        }
        Some("Unknown") => {
            out.insert(TAINT_UNREACHABLE);
        }
        _ => {}
    }
    for (c, t) in [
        ("MemoryPressure", TAINT_MEMORY_PRESSURE),
        ("DiskPressure", TAINT_DISK_PRESSURE),
        ("PIDPressure", TAINT_PID_PRESSURE),
        ("NetworkUnavailable", TAINT_NETWORK_UNAVAILABLE),
    ] {
        if cond_status(node, c) == Some("True") {
            out.insert(t);
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        out.insert(TAINT_UNSCHEDULABLE);
    }
    out
}

const NO_SCHEDULE_KEYS: [&str; 7] = [
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    TAINT_MEMORY_PRESSURE,
    TAINT_DISK_PRESSURE,
    TAINT_PID_PRESSURE,
    TAINT_NETWORK_UNAVAILABLE,
    TAINT_UNSCHEDULABLE,
];

/// The node's taints with the controller-managed ones of `effect` replaced by
/// `want` (existing ones kept as they are, new ones stamped `now`). None when unchanged.
pub fn reconcile_taints(
    node: &Node,
    effect: &str,
    managed: &[&str],
    want: &BTreeSet<&str>,
    now: DateTime<Utc>,
) -> Option<Vec<Taint>> {
    let cur: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut out: Vec<Taint> = cur
        .iter()
        .filter(|t| {
            !(t.effect == effect
                && managed.contains(&t.key.as_str())
                && !want.contains(t.key.as_str()))
        })
        .cloned()
        .collect();
    for k in want {
        if !out.iter().any(|t| t.effect == effect && t.key == *k) {
            out.push(Taint {
                key: (*k).into(),
                effect: effect.into(),
                value: None,
                time_added: (effect == "NoExecute").then(|| api_time(now)),
            });
        }
    }
    (out != cur).then_some(out)
}

pub fn zone_of(node: &Node) -> String {
    let l = node.metadata.labels.as_ref();
    let region = l
        .and_then(|l| l.get(REGION_LABEL))
        .cloned()
        .unwrap_or_default();
    let zone = l
        .and_then(|l| l.get(ZONE_LABEL))
        .cloned()
        .unwrap_or_default();
    if region.is_empty() && zone.is_empty() {
        String::new()
    } else {
        format!("{region}:\0:{zone}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    Initial,
    Normal,
    PartialDisruption,
    FullDisruption,
}

/// Upstream ComputeZoneState: full disruption when no node is ready, partial when
/// more than two are not ready and their share reaches the threshold.
pub fn zone_state(ready: usize, not_ready: usize, unhealthy_threshold: f32) -> ZoneState {
    if ready == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2
        && (not_ready as f32) / ((ready + not_ready) as f32) >= unhealthy_threshold
    {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// When a pod on a node with these NoExecute taints must go: None = never
/// (tolerated forever or no taint), Some(t) = at t (now when not tolerated).
/// `since` is when each taint was added (or first seen).
pub fn eviction_time(pod: &Pod, taints: &[Taint], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let taints: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if taints.is_empty() {
        return None;
    }
    let tols: Vec<_> = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| {
            t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "NoExecute")
        })
        .collect();
    let mut at: Option<DateTime<Utc>> = None;
    for taint in taints {
        let matching: Vec<_> = tols
            .iter()
            .filter(|t| podutil::tolerates(t, taint))
            .collect();
        if matching.is_empty() {
            return Some(now);
        }
        // The shortest tolerationSeconds among the matching tolerations (none = forever).
        let secs = matching.iter().filter_map(|t| t.toleration_seconds).min();
        if let Some(s) = secs {
            let since = taint.time_added.as_ref().map(to_utc).unwrap_or(now);
            let t = since + chrono::Duration::seconds(s.max(0));
            at = Some(at.map_or(t, |a| a.min(t)));
        }
    }
    at
}

// ---------------------------------------------------------------- node lifecycle controller

/// What the controller last saw of a node's kubelet, and when (local clock:
/// upstream compares observation times, not the kubelet's timestamps).
struct Health {
    heartbeat: Option<i64>,
    lease_renew: Option<i64>,
    probe: Instant,
    ready: Option<String>,
}

/// A token bucket (burst 1) per zone for adding NoExecute taints.
struct Limiter {
    tokens: f64,
    last: Instant,
}

impl Limiter {
    fn try_take(&mut self, qps: f32) -> bool {
        if qps <= 0.0 {
            return false;
        }
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * qps as f64).min(1.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The node lifecycle controller ("node-lifecycle-controller").
pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let nodes = ctx.informers.get::<Node>();
    let pods = ctx.informers.get::<Pod>();
    let leases = ctx.informers.get::<Lease>();
    let mut n_sub = nodes.subscribe();
    nodes.wait_synced().await;
    pods.wait_synced().await;
    leases.wait_synced().await;
    let recorder = ctx.recorder("node-controller");
    let opts = ctx.options.clone();
    let period = opts.node_monitor_period.max(Duration::from_millis(200));
    let mut health: HashMap<String, Health> = HashMap::new();
    let mut limiters: HashMap<String, Limiter> = HashMap::new();
    let mut master_disruption = false;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
            n = n_sub.recv() => {
                match n {
                    // Condition-driven NoSchedule taints react at once.
                    Some(Notification::Added(n)) | Some(Notification::Updated { new: n, .. }) => {
                        if let Err(e) = no_schedule_pass(&ctx.client, &n).await {
                            tracing::debug!("node-lifecycle: tainting {:?}: {e}", n.metadata.name);
                        }
                    }
                    Some(Notification::Deleted(n)) => {
                        let name = n.metadata.name.clone().unwrap_or_default();
                        if health.remove(&name).is_some() {
                            recorder.event(
                                &node_ref(&name),
                                EventType::Normal,
                                "RemovingNode",
                                format!("Node {name} event: Removing Node {name} from Controller"),
                            );
                        }
                    }
                    Some(Notification::Resync) => {}
                    None => return Ok(()),
                }
                continue;
            }
        }
        let all = nodes.list();
        let now = Utc::now();
        // 1. Health: mark silent nodes Unknown.
        for node in &all {
            let name = node.metadata.name.clone().unwrap_or_default();
            let hb = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0.as_second()));
            let lease = leases.get(Some("kube-node-lease"), &name).and_then(|l| {
                l.spec
                    .as_ref()?
                    .renew_time
                    .as_ref()
                    .map(|t| t.0.as_microsecond())
            });
            let h = health.entry(name.clone()).or_insert_with(|| {
                recorder.event(
                    &node_ref(&name),
                    EventType::Normal,
                    "RegisteredNode",
                    format!("Node {name} event: Registered Node {name} in Controller"),
                );
                Health {
                    heartbeat: hb,
                    lease_renew: lease,
                    probe: Instant::now(),
                    ready: ready_status(node).map(String::from),
                }
            });
            if h.heartbeat != hb || h.lease_renew != lease {
                h.heartbeat = hb;
                h.lease_renew = lease;
                h.probe = Instant::now();
            }
            let grace = if ready_status(node).is_none() {
                opts.node_startup_grace_period
            } else {
                opts.node_monitor_grace_period
            };
            if h.probe.elapsed() > grace {
                if let Some(conds) = unknown_conditions(node, now) {
                    let mut upd = (**node).clone();
                    if let Some(st) = upd.status.as_mut() {
                        st.conditions = Some(conds);
                    } else {
                        upd.status = Some(k8s_openapi::api::core::v1::NodeStatus {
                            conditions: Some(conds),
                            ..Default::default()
                        });
                    }
                    let api: Api<Node> = Api::all(ctx.client.clone());
                    match api
                        .replace_status(&name, &PostParams::default(), &upd)
                        .await
                    {
                        Ok(_) => tracing::info!(
                            "node {name} hasn't been updated for {:?}: conditions set to Unknown",
                            h.probe.elapsed()
                        ),
                        Err(e) => tracing::debug!("node-lifecycle: updating {name} status: {e}"),
                    }
                }
            }
            // Ready transitions: events and pods marked not ready.
            let now_ready = ready_status(node).map(String::from);
            if now_ready != h.ready {
                let was_ready = h.ready.as_deref() == Some("True");
                h.ready = now_ready.clone();
                if now_ready.as_deref() == Some("True") {
                    recorder.event(
                        &node_ref(&name),
                        EventType::Normal,
                        "NodeReady",
                        format!("Node {name} status is now: NodeReady"),
                    );
                } else if was_ready {
                    recorder.event(
                        &node_ref(&name),
                        EventType::Normal,
                        "NodeNotReady",
                        format!("Node {name} status is now: NodeNotReady"),
                    );
                }
            }
            if now_ready.as_deref() != Some("True") && now_ready.is_some() {
                mark_pods_not_ready(&ctx.client, &pods, &recorder, &name).await;
            }
        }
        // 2. Zone states and NoExecute taints.
        let mut zones: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for node in &all {
            let e = zones.entry(zone_of(node)).or_default();
            if ready_status(node) == Some("True") {
                e.0 += 1
            } else {
                e.1 += 1
            }
        }
        let states: BTreeMap<String, ZoneState> = zones
            .iter()
            .map(|(z, (r, n))| (z.clone(), zone_state(*r, *n, opts.unhealthy_zone_threshold)))
            .collect();
        let all_full =
            !states.is_empty() && states.values().all(|s| *s == ZoneState::FullDisruption);
        if all_full != master_disruption {
            master_disruption = all_full;
            if all_full {
                tracing::warn!("Controller detected that all Nodes are not-Ready. Entering master disruption mode.");
            } else {
                tracing::info!("Controller detected that some Nodes are Ready. Exiting master disruption mode.");
            }
        }
        for node in &all {
            let name = node.metadata.name.clone().unwrap_or_default();
            let zone = zone_of(node);
            let want: BTreeSet<&str> = if master_disruption {
                BTreeSet::new()
            } else {
                desired_no_execute(node).into_iter().collect()
            };
            let has_want = want.iter().all(|k| {
                node.spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|ts| ts.iter().any(|t| t.key == *k && t.effect == "NoExecute"))
            });
            if !has_want {
                let qps = match states.get(&zone) {
                    Some(ZoneState::PartialDisruption) => {
                        if all.len() as i32 <= opts.large_cluster_size_threshold {
                            0.0
                        } else {
                            opts.secondary_node_eviction_rate
                        }
                    }
                    _ => opts.node_eviction_rate,
                };
                let lim = limiters.entry(zone.clone()).or_insert_with(|| Limiter {
                    tokens: 1.0,
                    last: Instant::now(),
                });
                if !lim.try_take(qps) {
                    continue;
                }
            }
            if let Some(taints) = reconcile_taints(
                node,
                "NoExecute",
                &[TAINT_NOT_READY, TAINT_UNREACHABLE],
                &want,
                now,
            ) {
                if let Err(e) = patch_taints(&ctx.client, node, taints).await {
                    tracing::debug!("node-lifecycle: NoExecute taints of {name}: {e}");
                }
            }
        }
        // 3. NoSchedule taints (also done on every node event).
        for node in &all {
            if let Err(e) = no_schedule_pass(&ctx.client, node).await {
                tracing::debug!("node-lifecycle: tainting {:?}: {e}", node.metadata.name);
            }
        }
    }
}

async fn no_schedule_pass(client: &kube::Client, node: &Node) -> anyhow::Result<()> {
    let want = desired_no_schedule(node);
    if let Some(taints) = reconcile_taints(node, "NoSchedule", &NO_SCHEDULE_KEYS, &want, Utc::now())
    {
        patch_taints(client, node, taints).await?;
    }
    Ok(())
}

async fn patch_taints(
    client: &kube::Client,
    node: &Node,
    taints: Vec<Taint>,
) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": node.metadata.resource_version},
        "spec": {"taints": taints},
    });
    api.patch(
        node.metadata.name.as_deref().unwrap_or(""),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Sets Ready=False on the pods of a node that is not ready (upstream MarkPodsNotReady).
async fn mark_pods_not_ready(
    client: &kube::Client,
    pods: &Informer<Pod>,
    recorder: &Recorder,
    node: &str,
) {
    let on_node =
        pods.filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node));
    for pod in on_node {
        if podutil::is_terminal(&pod) || !podutil::is_ready(&pod) {
            continue;
        }
        let mut conds: Vec<PodCondition> = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        for c in conds.iter_mut().filter(|c| c.type_ == "Ready") {
            c.status = "False".into();
            c.last_transition_time = Some(podutil::now_time());
        }
        let api: Api<Pod> = Api::namespaced(
            client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": pod.metadata.resource_version},
            "status": {"conditions": conds},
        });
        let name = pod.metadata.name.clone().unwrap_or_default();
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => recorder.warning(pod.as_ref(), "NodeNotReady", "Node is not ready"),
            Err(e) => tracing::debug!("node-lifecycle: marking pod {name} not ready: {e}"),
        }
    }
}

// ---------------------------------------------------------------- taint eviction controller

/// Adds (or refreshes) the DisruptionTarget condition before a pod is deleted.
pub async fn add_disruption_target(api: &Api<Pod>, pod: &Pod, reason: &str, message: &str) {
    let conds = podutil::conditions_with_disruption_target(pod, reason, message);
    let patch = serde_json::json!({"status": {"conditions": conds}});
    let name = pod.metadata.name.clone().unwrap_or_default();
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::debug!("adding DisruptionTarget to {name}: {e}");
    }
}

/// The taint eviction controller ("taint-eviction-controller").
pub async fn run_taint_eviction(ctx: ControllerContext) -> anyhow::Result<()> {
    let nodes = ctx.informers.get::<Node>();
    let pods = ctx.informers.get::<Pod>();
    nodes.wait_synced().await;
    pods.wait_synced().await;
    let recorder = ctx.recorder("taint-eviction-controller");
    let scheduled: Arc<Mutex<HashMap<String, DateTime<Utc>>>> = Default::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let tainted: HashMap<String, Vec<Taint>> = nodes
            .list()
            .iter()
            .filter_map(|n| {
                let ts: Vec<Taint> = n
                    .spec
                    .as_ref()?
                    .taints
                    .as_ref()?
                    .iter()
                    .filter(|t| t.effect == "NoExecute")
                    .cloned()
                    .collect();
                (!ts.is_empty()).then(|| (n.metadata.name.clone().unwrap_or_default(), ts))
            })
            .collect();
        if tainted.is_empty() {
            scheduled.lock().unwrap_or_else(|e| e.into_inner()).clear();
            continue;
        }
        let now = Utc::now();
        let candidates = pods.filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some_and(|n| tainted.contains_key(n))
                && !podutil::is_terminating(p)
        });
        let mut due = Vec::new();
        {
            let mut sched = scheduled.lock().unwrap_or_else(|e| e.into_inner());
            let mut seen = BTreeSet::new();
            for pod in &candidates {
                let node = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default();
                let key = format!(
                    "{}/{}",
                    pod.metadata.namespace.as_deref().unwrap_or(""),
                    pod.metadata.name.as_deref().unwrap_or("")
                );
                let Some(at) = eviction_time(pod, &tainted[&node], now) else {
                    continue;
                };
                seen.insert(key.clone());
                let at = *sched.entry(key).or_insert(at);
                if at <= now {
                    due.push(pod.clone());
                }
            }
            sched.retain(|k, _| seen.contains(k));
        }
        for pod in due {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            recorder.normal(
                pod.as_ref(),
                "TaintManagerEviction",
                format!("Marking for deletion Pod {ns}/{name}"),
            );
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
            add_disruption_target(
                &api,
                &pod,
                "DeletionByTaintManager",
                "Taint manager: deleting due to NoExecute taint",
            )
            .await;
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if podutil::is_not_found(&e) => {}
                Err(e) => tracing::info!("taint-eviction: deleting {ns}/{name}: {e}"),
            }
            scheduled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&format!("{ns}/{name}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, PodSpec, Toleration};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(ready: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                conditions: ready.map(|r| {
                    vec![NodeCondition {
                        type_: "Ready".into(),
                        status: r.into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn unknown_after_silence() {
        let n = node(Some("True"));
        let conds = unknown_conditions(&n, Utc::now()).unwrap();
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        let mem = conds.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
        assert_eq!(mem.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        let mut n2 = n.clone();
        n2.status.as_mut().unwrap().conditions = Some(conds);
        assert!(unknown_conditions(&n2, Utc::now()).is_none());
    }

    #[test]
    fn taints_follow_ready() {
        let now = Utc::now();
        let n = node(Some("Unknown"));
        let want: BTreeSet<&str> = desired_no_execute(&n).into_iter().collect();
        let t = reconcile_taints(
            &n,
            "NoExecute",
            &[TAINT_NOT_READY, TAINT_UNREACHABLE],
            &want,
            now,
        )
        .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].key, TAINT_UNREACHABLE);
        assert!(t[0].time_added.is_some());
        let mut n2 = node(Some("True"));
        n2.spec.as_mut().unwrap().taints = Some(t);
        let t2 = reconcile_taints(
            &n2,
            "NoExecute",
            &[TAINT_NOT_READY, TAINT_UNREACHABLE],
            &BTreeSet::new(),
            now,
        )
        .unwrap();
        assert!(t2.is_empty());
        let ns = desired_no_schedule(&node(Some("False")));
        assert!(ns.contains(TAINT_NOT_READY));
    }

    #[test]
    fn zones() {
        assert_eq!(zone_state(0, 1, 0.55), ZoneState::FullDisruption);
        assert_eq!(zone_state(1, 1, 0.55), ZoneState::Normal);
        assert_eq!(zone_state(1, 3, 0.55), ZoneState::PartialDisruption);
    }

    #[test]
    fn eviction_respects_toleration_seconds() {
        let now = Utc::now();
        let taint = Taint {
            key: TAINT_UNREACHABLE.into(),
            effect: "NoExecute".into(),
            time_added: Some(api_time(now)),
            value: None,
        };
        let mut pod = Pod {
            spec: Some(PodSpec::default()),
            ..Default::default()
        };
        assert_eq!(
            eviction_time(&pod, std::slice::from_ref(&taint), now),
            Some(now)
        );
        pod.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
            key: Some(TAINT_UNREACHABLE.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(30),
            ..Default::default()
        }]);
        let at = eviction_time(&pod, std::slice::from_ref(&taint), now).unwrap();
        assert_eq!(
            (at - api_time(now).0.as_second().pipe_secs()).num_seconds(),
            30
        );
        pod.spec.as_mut().unwrap().tolerations.as_mut().unwrap()[0].toleration_seconds = None;
        assert_eq!(eviction_time(&pod, &[taint], now), None);
    }

    trait PipeSecs {
        fn pipe_secs(self) -> DateTime<Utc>;
    }
    impl PipeSecs for i64 {
        fn pipe_secs(self) -> DateTime<Utc> {
            DateTime::from_timestamp(self, 0).unwrap()
        }
    }
}
