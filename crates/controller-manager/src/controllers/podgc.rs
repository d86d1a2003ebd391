//! Pod garbage collector (upstream pkg/controller/podgc), every 20 s:
//! * terminated pods (Succeeded/Failed) beyond `--terminated-pod-gc-threshold`
//!   are deleted, oldest first;
//! * pods bound to a node that no longer exists (absent for the 40 s
//!   quarantine and confirmed by the API) get DisruptionTarget
//!   (DeletionByPodGC), phase Failed, and are force-deleted;
//! * terminating pods that were never scheduled are force-deleted;
//! * terminating pods on a not-ready node tainted `node.kubernetes.io/out-of-service`
//!   are force-deleted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::Api;

use super::nodelifecycle::ready_status;
use super::podutil::{self, to_utc};
use crate::ControllerContext;

pub const GC_CHECK_PERIOD: Duration = Duration::from_secs(20);
pub const QUARANTINE: Duration = Duration::from_secs(40);
pub const OUT_OF_SERVICE_TAINT: &str = "node.kubernetes.io/out-of-service";

/// The terminated pods to delete to get back to `threshold` (oldest first).
pub fn terminated_to_delete<'a>(pods: &[&'a Pod], threshold: i32) -> Vec<&'a Pod> {
    if threshold <= 0 {
        return vec![];
    }
    let mut term: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| podutil::is_terminal(p) && !podutil::is_terminating(p))
        .collect();
    let excess = term.len() as i64 - threshold as i64;
    if excess <= 0 {
        return vec![];
    }
    term.sort_by_key(|p| {
        (
            p.metadata.creation_timestamp.as_ref().map(to_utc),
            p.metadata.name.clone(),
        )
    });
    term.into_iter().take(excess as usize).collect()
}

/// Pods that are being deleted but were never scheduled.
pub fn unscheduled_terminating<'a>(pods: &[&'a Pod]) -> Vec<&'a Pod> {
    pods.iter()
        .copied()
        .filter(|p| {
            podutil::is_terminating(p)
                && p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_none_or(|n| n.is_empty())
        })
        .collect()
}

fn node_of(p: &Pod) -> Option<&str> {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// The pod GC controller ("pod-garbage-collector-controller").
pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let pods = ctx.informers.get::<Pod>();
    let nodes = ctx.informers.get::<Node>();
    pods.wait_synced().await;
    nodes.wait_synced().await;
    let threshold = ctx.options.terminated_pod_gc_threshold;
    let node_api: Api<Node> = Api::all(ctx.client.clone());
    // Nodes seen missing, and since when.
    let mut missing_since: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(GC_CHECK_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let all: Vec<Arc<Pod>> = pods.list();
        let refs: Vec<&Pod> = all.iter().map(|p| p.as_ref()).collect();

        // Terminating pods on out-of-service nodes.
        for p in &refs {
            if !podutil::is_terminating(p) || podutil::is_terminal(p) {
                continue;
            }
            let Some(n) = node_of(p).and_then(|n| nodes.get(None, n)) else {
                continue;
            };
            let oos = n
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .is_some_and(|ts| {
                    ts.iter()
                        .any(|t| t.key == OUT_OF_SERVICE_TAINT && t.effect == "NoExecute")
                });
            if oos && ready_status(&n) != Some("True") {
                force_delete(
                    &ctx.client,
                    p,
                    Some(("DeletionByPodGC", "PodGC: node is out of service")),
                    true,
                )
                .await;
            }
        }

        // Terminated pods over the threshold.
        for p in terminated_to_delete(&refs, threshold) {
            force_delete(&ctx.client, p, None, false).await;
        }

        // Orphaned pods: their node is gone.
        let present: HashSet<String> = nodes.keys().into_iter().collect();
        let mut wanted: HashSet<String> = HashSet::new();
        for p in &refs {
            if let Some(n) = node_of(p) {
                if !present.contains(n) {
                    wanted.insert(n.to_string());
                }
            }
        }
        missing_since.retain(|n, _| wanted.contains(n));
        let mut gone: HashSet<String> = HashSet::new();
        for n in &wanted {
            let since = *missing_since.entry(n.clone()).or_insert_with(Instant::now);
            if since.elapsed() < QUARANTINE {
                continue;
            }
            match node_api.get(n).await {
                Err(e) if podutil::is_not_found(&e) => {
                    gone.insert(n.clone());
                }
                _ => {
                    missing_since.remove(n);
                }
            }
        }
        for p in &refs {
            if node_of(p).is_some_and(|n| gone.contains(n)) {
                tracing::info!(
                    "PodGC is force deleting Pod {:?}/{:?}: node no longer exists",
                    p.metadata.namespace,
                    p.metadata.name
                );
                force_delete(
                    &ctx.client,
                    p,
                    Some(("DeletionByPodGC", "PodGC: node no longer exists")),
                    true,
                )
                .await;
            }
        }

        // Terminating pods never scheduled.
        for p in unscheduled_terminating(&refs) {
            force_delete(&ctx.client, p, None, false).await;
        }
    }
}

/// Optionally marks the pod Failed with a DisruptionTarget condition, then deletes it with grace 0.
async fn force_delete(
    client: &kube::Client,
    pod: &Pod,
    cond: Option<(&str, &str)>,
    mark_failed: bool,
) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    if let Some((reason, message)) = cond {
        if !podutil::is_terminal(pod) {
            let conds = podutil::conditions_with_disruption_target(pod, reason, message);
            let mut st = serde_json::json!({"conditions": conds});
            if mark_failed {
                st["phase"] = "Failed".into();
            }
            if let Err(e) = api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&serde_json::json!({"status": st})),
                )
                .await
            {
                tracing::debug!("podgc: marking {ns}/{name} failed: {e}");
            }
        }
    }
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => tracing::info!("podgc: deleted pod {ns}/{name}"),
        Err(e) if podutil::is_not_found(&e) => {}
        Err(e) => tracing::info!("podgc: deleting pod {ns}/{name}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, phase: &str, age: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(podutil::api_time(
                    chrono::Utc::now() - chrono::Duration::seconds(age),
                )),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn oldest_terminated_first() {
        let a = pod("a", "Succeeded", 30);
        let b = pod("b", "Failed", 100);
        let c = pod("c", "Running", 200);
        let d = pod("d", "Succeeded", 10);
        let del = terminated_to_delete(&[&a, &b, &c, &d], 1);
        let names: Vec<_> = del
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, vec!["b", "a"]);
        assert!(terminated_to_delete(&[&a, &b], 0).is_empty());
        let mut e = pod("e", "Pending", 1);
        e.metadata.deletion_timestamp = Some(podutil::now_time());
        assert_eq!(unscheduled_terminating(&[&e, &a]).len(), 1);
    }
}
