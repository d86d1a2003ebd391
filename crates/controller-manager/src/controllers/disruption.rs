//! Disruption controller (upstream pkg/controller/disruption): keeps each
//! PodDisruptionBudget's status (expectedPods, currentHealthy, desiredHealthy,
//! disruptionsAllowed, observedGeneration, disruptedPods) and its
//! DisruptionAllowed condition (SufficientPods / InsufficientPods / SyncFailed).
//! Percentages and maxUnavailable are resolved against the scale of the pods'
//! controllers (Deployment through its ReplicaSet, ReplicaSet, StatefulSet,
//! ReplicationController).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::PostParams;
use kube::Api;

use super::podutil::{self, api_time, to_utc};
use crate::informers::{key_of, split_key, Informer, Notification};
use crate::workqueue::{run_workers, WorkQueue};
use crate::ControllerContext;

/// How long an entry of status.disruptedPods is honoured.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// Resolves an int-or-percent against a total (percentages rounded up, like upstream).
pub fn scaled_value(v: &IntOrString, total: i32) -> Result<i32, String> {
    match v {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let p: i64 = s
                .strip_suffix('%')
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            Ok(((p * total as i64 + 99) / 100) as i32)
        }
    }
}

/// (expectedPods, desiredHealthy) for a PDB; `controller_scale` is only
/// consulted when a percentage or maxUnavailable needs it.
pub fn expectations(
    pdb: &PodDisruptionBudget,
    matching: usize,
    controller_scale: impl FnOnce() -> Result<i32, String>,
) -> Result<(i32, i32), String> {
    let spec = pdb.spec.clone().unwrap_or_default();
    if let Some(mu) = &spec.max_unavailable {
        let expected = controller_scale()?;
        let mu = scaled_value(mu, expected)?;
        return Ok((expected, (expected - mu).max(0)));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok((matching as i32, *n)),
        Some(v @ IntOrString::String(_)) => {
            let expected = controller_scale()?;
            Ok((expected, scaled_value(v, expected)?))
        }
        None => Ok((matching as i32, 1)),
    }
}

fn healthy(pod: &Pod) -> bool {
    !podutil::is_terminating(pod) && podutil::is_ready(pod)
}

/// The new status from the matching pods (disruptedPods pruned of pods that are gone,
/// deleted, or whose entry timed out).
pub fn compute_status(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    expected: Result<(i32, i32), String>,
    now: DateTime<Utc>,
) -> PodDisruptionBudgetStatus {
    let old = pdb.status.clone().unwrap_or_default();
    let mut disrupted: BTreeMap<String, k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> =
        BTreeMap::new();
    for (name, t) in old.disrupted_pods.clone().unwrap_or_default() {
        let alive = pods.iter().any(|p| {
            p.metadata.name.as_deref() == Some(name.as_str()) && !podutil::is_terminating(p)
        });
        if alive
            && to_utc(&t) + chrono::Duration::from_std(DELETION_TIMEOUT).unwrap_or_default() > now
        {
            disrupted.insert(name, t);
        }
    }
    let current = pods
        .iter()
        .filter(|p| healthy(p) && !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or("")))
        .count() as i32;
    let generation = pdb.metadata.generation;
    let (cond, status) = match expected {
        Ok((expected, desired)) => {
            let allowed = if expected <= 0 {
                0
            } else {
                (current - desired).max(0)
            };
            let (st, reason) = if allowed > 0 {
                ("True", "SufficientPods")
            } else {
                ("False", "InsufficientPods")
            };
            (
                (st, reason, String::new()),
                PodDisruptionBudgetStatus {
                    current_healthy: current,
                    desired_healthy: desired,
                    expected_pods: expected,
                    disruptions_allowed: allowed,
                    observed_generation: generation,
                    disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
                    conditions: None,
                },
            )
        }
        Err(msg) => (
            ("False", "SyncFailed", msg),
            PodDisruptionBudgetStatus {
                current_healthy: current,
                desired_healthy: old.desired_healthy,
                expected_pods: old.expected_pods,
                disruptions_allowed: 0,
                observed_generation: generation,
                disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
                conditions: None,
            },
        ),
    };
    let mut conds = old.conditions.clone().unwrap_or_default();
    let (st, reason, message) = cond;
    match conds.iter_mut().find(|c| c.type_ == "DisruptionAllowed") {
        Some(c) => {
            if c.status != st {
                c.last_transition_time = api_time(now);
            }
            c.status = st.into();
            c.reason = reason.into();
            c.message = message;
            c.observed_generation = generation;
        }
        None => conds.push(Condition {
            type_: "DisruptionAllowed".into(),
            status: st.into(),
            reason: reason.into(),
            message,
            last_transition_time: api_time(now),
            observed_generation: generation,
        }),
    }
    PodDisruptionBudgetStatus {
        conditions: Some(conds),
        ..status
    }
}

/// The disruption controller ("disruption-controller").
pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let pdbs = ctx.informers.get::<PodDisruptionBudget>();
    let pods = ctx.informers.get::<Pod>();
    let mut d_sub = pdbs.subscribe();
    let mut p_sub = pods.subscribe();
    pdbs.wait_synced().await;
    pods.wait_synced().await;
    let queue: WorkQueue<String> = WorkQueue::new();
    queue.add_all(pdbs.keys());
    {
        let (pdbs, queue, stop) = (pdbs.clone(), queue.clone(), ctx.stop.clone());
        tokio::spawn(async move {
            let mut resync = tokio::time::interval(Duration::from_secs(30));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = resync.tick() => queue.add_all(pdbs.keys()),
                    n = d_sub.recv() => match n {
                        Some(Notification::Deleted(_)) => {}
                        Some(Notification::Resync) => queue.add_all(pdbs.keys()),
                        Some(n) => if let Some(o) = n.object() { queue.add(key_of(o.as_ref())) },
                        None => break,
                    },
                    n = p_sub.recv() => match n {
                        Some(Notification::Resync) => queue.add_all(pdbs.keys()),
                        Some(n) => {
                            let Some(pod) = n.object() else { continue };
                            let ns = pod.metadata.namespace.clone().unwrap_or_default();
                            for pdb in pdbs.list_namespaced(&ns) {
                                let sel = pdb.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
                                if podutil::label_selector_matches(&sel, pod.metadata.labels.as_ref()) {
                                    queue.add(key_of(pdb.as_ref()));
                                }
                            }
                        }
                        None => break,
                    },
                }
            }
        });
    }
    let client = ctx.client.clone();
    run_workers(
        queue,
        1,
        ctx.stop.clone(),
        "disruption-controller",
        move |key: String| {
            let (client, pdbs, pods) = (client.clone(), pdbs.clone(), pods.clone());
            async move { sync_pdb(&client, &pdbs, &pods, &key).await }
        },
    )
    .await;
    Ok(())
}

/// The replicas (default 1) `replicas` reads from the `K` named `name` in
/// `ns`, fetched from the API.
async fn spec_replicas<K>(
    client: &kube::Client,
    ns: &str,
    name: &str,
    replicas: fn(K) -> Option<i32>,
) -> Result<i32, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let obj = Api::<K>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .map_err(|e| e.to_string())?;
    Ok(replicas(obj).unwrap_or(1))
}

/// The summed scale of the controllers of the pods.
async fn controllers_scale(client: &kube::Client, ns: &str, pods: &[&Pod]) -> Result<i32, String> {
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut total = 0;
    for pod in pods {
        let Some(c) = podutil::controller_ref(&pod.metadata) else {
            return Err(format!(
                "found no controllers for pod {:?}",
                pod.metadata.name.as_deref().unwrap_or("")
            ));
        };
        let (kind, name, uid) = match c.kind.as_str() {
            "ReplicaSet" => {
                let rs = Api::<ReplicaSet>::namespaced(client.clone(), ns)
                    .get(&c.name)
                    .await
                    .map_err(|e| e.to_string())?;
                match podutil::controller_ref(&rs.metadata).filter(|o| o.kind == "Deployment") {
                    Some(d) => ("Deployment".to_string(), d.name.clone(), d.uid.clone()),
                    None => ("ReplicaSet".to_string(), c.name.clone(), c.uid.clone()),
                }
            }
            k => (k.to_string(), c.name.clone(), c.uid.clone()),
        };
        if !seen.insert((kind.clone(), uid)) {
            continue;
        }
        let n = match kind.as_str() {
            "Deployment" => {
                spec_replicas(client, ns, &name, |d: Deployment| d.spec?.replicas).await?
            }
            "ReplicaSet" => {
                spec_replicas(client, ns, &name, |r: ReplicaSet| r.spec?.replicas).await?
            }
            "StatefulSet" => {
                spec_replicas(client, ns, &name, |s: StatefulSet| s.spec?.replicas).await?
            }
            "ReplicationController" => {
                spec_replicas(client, ns, &name, |r: ReplicationController| {
                    r.spec?.replicas
                })
                .await?
            }
            other => {
                return Err(format!(
                    "found no controllers for pod {:?} (controller kind {other} has no scale)",
                    pod.metadata.name.as_deref().unwrap_or("")
                ))
            }
        };
        total += n;
    }
    Ok(total)
}

async fn sync_pdb(
    client: &kube::Client,
    pdbs: &Informer<PodDisruptionBudget>,
    pods: &Informer<Pod>,
    key: &str,
) -> anyhow::Result<()> {
    let (ns, name) = split_key(key);
    let ns = ns.unwrap_or("default");
    let Some(pdb) = pdbs.get_by_key(key) else {
        return Ok(());
    };
    let sel = pdb.spec.as_ref().and_then(|s| s.selector.clone());
    let all = pods.list_namespaced(ns);
    // A nil selector matches nothing; an empty one everything.
    let matching: Vec<&Pod> = match &sel {
        None => vec![],
        Some(sel) => all
            .iter()
            .map(|p| p.as_ref())
            .filter(|p| podutil::label_selector_matches(sel, p.metadata.labels.as_ref()))
            .collect(),
    };
    let needs_scale = pdb.spec.as_ref().is_some_and(|s| {
        s.max_unavailable.is_some() || matches!(s.min_available, Some(IntOrString::String(_)))
    });
    let scale = if needs_scale {
        Some(controllers_scale(client, ns, &matching).await)
    } else {
        None
    };
    let expected = expectations(&pdb, matching.len(), || scale.unwrap_or(Ok(0)));
    let status = compute_status(&pdb, &matching, expected, Utc::now());
    let old = pdb.status.clone().unwrap_or_default();
    let strip = |s: &PodDisruptionBudgetStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = api_time(DateTime::<Utc>::default());
        }
        s
    };
    if strip(&old) == strip(&status) && old.conditions.is_some() {
        return Ok(());
    }
    let mut upd = (*pdb).clone();
    upd.status = Some(status);
    Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .replace_status(name, &PostParams::default(), &upd)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::workload_utils::testing::pod_status;
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ready_pod(name: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: None,
            status: Some(pod_status("Running", ready)),
        }
    }

    #[test]
    fn min_available_and_percent() {
        let pdb = PodDisruptionBudget {
            spec: Some(PodDisruptionBudgetSpec {
                min_available: Some(IntOrString::Int(2)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (a, b, c) = (
            ready_pod("a", true),
            ready_pod("b", true),
            ready_pod("c", true),
        );
        let st = compute_status(
            &pdb,
            &[&a, &b, &c],
            expectations(&pdb, 3, || Ok(3)),
            Utc::now(),
        );
        assert_eq!(
            (
                st.current_healthy,
                st.desired_healthy,
                st.expected_pods,
                st.disruptions_allowed
            ),
            (3, 2, 3, 1)
        );
        assert_eq!(st.conditions.unwrap()[0].reason, "SufficientPods");
        let pct = PodDisruptionBudget {
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::String("50%".into())),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(expectations(&pct, 3, || Ok(3)).unwrap(), (3, 1));
        assert_eq!(
            scaled_value(&IntOrString::String("34%".into()), 3).unwrap(),
            2
        );
        let d = ready_pod("d", false);
        let st = compute_status(&pdb, &[&a, &d], expectations(&pdb, 2, || Ok(2)), Utc::now());
        assert_eq!(st.disruptions_allowed, 0);
        assert_eq!(st.conditions.unwrap()[0].reason, "InsufficientPods");
    }
}
