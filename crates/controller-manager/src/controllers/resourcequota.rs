//! Resource quota controller (upstream pkg/controller/resourcequota): keeps
//! `status.hard` = `spec.hard` and `status.used` for every named resource:
//! object counts (pods, services, services.loadbalancers, services.nodeports,
//! persistentvolumeclaims, configmaps, secrets, replicationcontrollers,
//! resourcequotas, `count/<resource>[.<group>]`), compute resources of
//! non-terminal pods (cpu/memory/ephemeral-storage and any `requests.X` /
//! `limits.X`), storage requests (also per storage class), with the quota
//! scopes Terminating, NotTerminating, BestEffort, NotBestEffort and
//! PriorityClass (scopeSelector). Re-synced on quota, pod, service and PVC
//! changes and every `--resource-quota-sync-period`.

use std::collections::{BTreeMap, HashSet};

use apimachinery::quantity::{Format, Quantity as Q};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, Pod, ResourceQuota, ScopedResourceSelectorRequirement, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ApiResource, DynamicObject, ListParams, PostParams};
use kube::Api;

use super::podutil;
use crate::informers::{key_of, split_key, Informer, Notification};
use crate::workqueue::{run_workers, WorkQueue};
use crate::ControllerContext;

fn nanos(q: &Quantity) -> i128 {
    Q::parse(&q.0).map(|q| q.nanos()).unwrap_or(0)
}

/// A quantity string from nanos (milli precision, rounded up).
pub fn quantity_from_nanos(n: i128, binary: bool) -> Quantity {
    let milli = n / 1_000_000 + i128::from(n % 1_000_000 != 0);
    let fmt = if binary {
        Format::BinarySI
    } else {
        Format::DecimalSI
    };
    let q = if milli % 1000 == 0 {
        Q::new(milli / 1000, fmt)
    } else {
        Q::new_milli(milli, fmt)
    };
    Quantity(q.to_string())
}

fn is_memory_like(name: &str) -> bool {
    name.contains("memory") || name.contains("storage") || name.starts_with("hugepages-")
}

/// A pod's effective requests or limits: max(sum of app containers and
/// sidecars, largest init container) plus overhead.
pub fn pod_resources(pod: &Pod, limits: bool) -> BTreeMap<String, i128> {
    let mut sum: BTreeMap<String, i128> = BTreeMap::new();
    let Some(spec) = pod.spec.as_ref() else {
        return sum;
    };
    let get = |c: &k8s_openapi::api::core::v1::Container| -> BTreeMap<String, i128> {
        let r = c.resources.as_ref();
        let m = if limits {
            r.and_then(|r| r.limits.as_ref())
        } else {
            r.and_then(|r| r.requests.as_ref())
        };
        m.into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), nanos(v)))
            .collect()
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    for c in spec.containers.iter().chain(sidecars) {
        for (k, v) in get(c) {
            *sum.entry(k).or_default() += v;
        }
    }
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() != Some("Always"))
    {
        for (k, v) in get(c) {
            let e = sum.entry(k).or_default();
            *e = (*e).max(v);
        }
    }
    for (k, v) in spec.overhead.iter().flatten() {
        *sum.entry(k.clone()).or_default() += nanos(v);
    }
    sum
}

pub fn is_best_effort(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .all(|c| {
            c.resources.as_ref().is_none_or(|r| {
                r.requests.as_ref().is_none_or(|m| m.is_empty())
                    && r.limits.as_ref().is_none_or(|m| m.is_empty())
            })
        })
}

fn selector_matches(req: &ScopedResourceSelectorRequirement, pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let values = req.values.as_deref().unwrap_or(&[]);
    let val: Option<String> = match req.scope_name.as_str() {
        "PriorityClass" => spec.and_then(|s| s.priority_class_name.clone()),
        "Terminating" => return spec.and_then(|s| s.active_deadline_seconds).is_some(),
        "NotTerminating" => return spec.and_then(|s| s.active_deadline_seconds).is_none(),
        "BestEffort" => return is_best_effort(pod),
        "NotBestEffort" => return !is_best_effort(pod),
        _ => return true,
    };
    match req.operator.as_str() {
        "In" => val.is_some_and(|v| values.contains(&v)),
        "NotIn" => val.is_none_or(|v| !values.contains(&v)),
        "Exists" => val.is_some(),
        "DoesNotExist" => val.is_none(),
        _ => false,
    }
}

/// Whether a pod falls under every scope of the quota.
pub fn pod_in_scope(quota: &ResourceQuota, pod: &Pod) -> bool {
    let spec = quota.spec.as_ref();
    for scope in spec.and_then(|s| s.scopes.as_ref()).into_iter().flatten() {
        let req = ScopedResourceSelectorRequirement {
            scope_name: scope.clone(),
            operator: "Exists".into(),
            values: None,
        };
        if !selector_matches(&req, pod) {
            return false;
        }
    }
    for req in spec
        .and_then(|s| s.scope_selector.as_ref())
        .and_then(|s| s.match_expressions.as_ref())
        .into_iter()
        .flatten()
    {
        if !selector_matches(req, pod) {
            return false;
        }
    }
    true
}

fn has_scopes(quota: &ResourceQuota) -> bool {
    let spec = quota.spec.as_ref();
    spec.and_then(|s| s.scopes.as_ref())
        .is_some_and(|s| !s.is_empty())
        || spec
            .and_then(|s| s.scope_selector.as_ref())
            .and_then(|s| s.match_expressions.as_ref())
            .is_some_and(|m| !m.is_empty())
}

/// Usage of the resources computable from pods, services and PVCs. Other
/// object counts are looked up by the caller (`counts`).
pub fn compute_used(
    quota: &ResourceQuota,
    pods: &[&Pod],
    services: &[&Service],
    pvcs: &[&PersistentVolumeClaim],
    counts: &BTreeMap<String, i128>,
) -> BTreeMap<String, Quantity> {
    let hard = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let live: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| !podutil::is_terminal(p) && pod_in_scope(quota, p))
        .collect();
    let scoped = has_scopes(quota);
    let mut used = BTreeMap::new();
    for name in hard.keys() {
        let (n, binary): (i128, bool) = match name.as_str() {
            "pods" | "count/pods" => (live.len() as i128 * 1_000_000_000, false),
            _ if name.starts_with("requests.")
                || name.starts_with("limits.")
                || ["cpu", "memory", "ephemeral-storage"].contains(&name.as_str()) =>
            {
                if name == "requests.storage" {
                    if scoped {
                        continue;
                    }
                    (pvcs.iter().map(|c| pvc_storage(c)).sum(), true)
                } else {
                    let (lim, res) = match name.split_once('.') {
                        Some(("limits", r)) => (true, r),
                        Some(("requests", r)) => (false, r),
                        _ => (false, name.as_str()),
                    };
                    (
                        live.iter()
                            .map(|p| pod_resources(p, lim).get(res).copied().unwrap_or(0))
                            .sum(),
                        is_memory_like(res),
                    )
                }
            }
            _ if scoped => continue,
            "services" | "count/services" => (services.len() as i128 * 1_000_000_000, false),
            "services.loadbalancers" => (
                services
                    .iter()
                    .filter(|s| {
                        s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
                    })
                    .count() as i128
                    * 1_000_000_000,
                false,
            ),
            "services.nodeports" => (
                services
                    .iter()
                    .filter(|s| {
                        matches!(
                            s.spec.as_ref().and_then(|s| s.type_.as_deref()),
                            Some("NodePort") | Some("LoadBalancer")
                        )
                    })
                    .map(|s| {
                        s.spec
                            .as_ref()
                            .and_then(|s| s.ports.as_ref())
                            .map(|p| p.iter().filter(|p| p.node_port.is_some()).count())
                            .unwrap_or(0)
                    })
                    .sum::<usize>() as i128
                    * 1_000_000_000,
                false,
            ),
            "persistentvolumeclaims" | "count/persistentvolumeclaims" => {
                (pvcs.len() as i128 * 1_000_000_000, false)
            }
            other
                if other.ends_with(".storageclass.storage.k8s.io/requests.storage")
                    || other.ends_with(".storageclass.storage.k8s.io/persistentvolumeclaims") =>
            {
                let (sc, what) = other
                    .split_once(".storageclass.storage.k8s.io/")
                    .unwrap_or(("", ""));
                let in_class: Vec<&&PersistentVolumeClaim> = pvcs
                    .iter()
                    .filter(|c| {
                        c.spec
                            .as_ref()
                            .and_then(|s| s.storage_class_name.as_deref())
                            == Some(sc)
                    })
                    .collect();
                if what == "requests.storage" {
                    (in_class.iter().map(|c| pvc_storage(c)).sum(), true)
                } else {
                    (in_class.len() as i128 * 1_000_000_000, false)
                }
            }
            other => match counts.get(other) {
                Some(c) => (*c * 1_000_000_000, false),
                None => continue,
            },
        };
        used.insert(name.clone(), quantity_from_nanos(n, binary));
    }
    used
}

fn pvc_storage(c: &PersistentVolumeClaim) -> i128 {
    c.spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(nanos)
        .unwrap_or(0)
}

/// The API resource behind an object-count quota name (`configmaps`,
/// `count/deployments.apps`); None for the ones computed from the caches.
fn count_resource(name: &str) -> Option<(String, String)> {
    let res = match name {
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => name,
        n => n.strip_prefix("count/")?,
    };
    let (plural, group) = res.split_once('.').unwrap_or((res, ""));
    if group.is_empty() && ["pods", "services", "persistentvolumeclaims"].contains(&plural) {
        return None;
    }
    Some((plural.to_string(), group.to_string()))
}

async fn api_resource(client: &kube::Client, plural: &str, group: &str) -> Option<ApiResource> {
    if group.is_empty() {
        return Some(ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: String::new(),
            plural: plural.into(),
        });
    }
    let g = kube::discovery::group(client, group).await.ok()?;
    g.recommended_resources()
        .into_iter()
        .map(|(ar, _)| ar)
        .find(|ar| ar.plural == plural)
}

/// The resource quota controller ("resourcequota-controller").
pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let quotas = ctx.informers.get::<ResourceQuota>();
    let pods = ctx.informers.get::<Pod>();
    let services = ctx.informers.get::<Service>();
    let pvcs = ctx.informers.get::<PersistentVolumeClaim>();
    let mut q_sub = quotas.subscribe();
    let mut p_sub = pods.subscribe();
    let mut s_sub = services.subscribe();
    let mut c_sub = pvcs.subscribe();
    quotas.wait_synced().await;
    pods.wait_synced().await;
    services.wait_synced().await;
    pvcs.wait_synced().await;
    let queue: WorkQueue<String> = WorkQueue::new();
    queue.add_all(quotas.keys());
    {
        let (quotas, queue, stop) = (quotas.clone(), queue.clone(), ctx.stop.clone());
        let period = ctx
            .options
            .resource_quota_sync_period
            .max(std::time::Duration::from_secs(5));
        tokio::spawn(async move {
            let enqueue_ns = |ns: Option<&String>| {
                let ns = ns.cloned().unwrap_or_default();
                for q in quotas.list_namespaced(&ns) {
                    queue.add(key_of(q.as_ref()));
                }
            };
            let mut resync = tokio::time::interval(period);
            resync.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = resync.tick() => queue.add_all(quotas.keys()),
                    n = q_sub.recv() => match n {
                        Some(Notification::Resync) => queue.add_all(quotas.keys()),
                        Some(Notification::Updated { old, new }) => if old.spec != new.spec || new.status.is_none() { queue.add(key_of(new.as_ref())) },
                        Some(Notification::Added(q)) => queue.add(key_of(q.as_ref())),
                        Some(Notification::Deleted(_)) => {}
                        None => break,
                    },
                    n = p_sub.recv() => match n {
                        Some(Notification::Updated { old, new }) => {
                            if podutil::is_terminal(&old) != podutil::is_terminal(&new) || old.spec != new.spec {
                                enqueue_ns(new.metadata.namespace.as_ref())
                            }
                        }
                        Some(n) => if let Some(p) = n.object() { enqueue_ns(p.metadata.namespace.as_ref()) },
                        None => break,
                    },
                    n = s_sub.recv() => match n {
                        Some(n) => if let Some(s) = n.object() { enqueue_ns(s.metadata.namespace.as_ref()) },
                        None => break,
                    },
                    n = c_sub.recv() => match n {
                        Some(n) => if let Some(c) = n.object() { enqueue_ns(c.metadata.namespace.as_ref()) },
                        None => break,
                    },
                }
            }
        });
    }
    let workers = ctx.options.concurrent_resource_quota_syncs.max(1);
    let client = ctx.client.clone();
    run_workers(
        queue,
        workers,
        ctx.stop.clone(),
        "resourcequota-controller",
        move |key: String| {
            let (client, quotas, pods, services, pvcs) = (
                client.clone(),
                quotas.clone(),
                pods.clone(),
                services.clone(),
                pvcs.clone(),
            );
            async move { sync_quota(&client, &quotas, &pods, &services, &pvcs, &key).await }
        },
    )
    .await;
    Ok(())
}

async fn sync_quota(
    client: &kube::Client,
    quotas: &Informer<ResourceQuota>,
    pods: &Informer<Pod>,
    services: &Informer<Service>,
    pvcs: &Informer<PersistentVolumeClaim>,
    key: &str,
) -> anyhow::Result<()> {
    let (ns, name) = split_key(key);
    let ns = ns.unwrap_or("default");
    let Some(quota) = quotas.get_by_key(key) else {
        return Ok(());
    };
    let hard = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let mut counts = BTreeMap::new();
    let mut seen = HashSet::new();
    for res in hard.keys() {
        let Some((plural, group)) = count_resource(res) else {
            continue;
        };
        if !seen.insert(res.clone()) {
            continue;
        }
        let Some(ar) = api_resource(client, &plural, &group).await else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        match api.list_metadata(&ListParams::default()).await {
            Ok(l) => {
                counts.insert(res.clone(), l.items.len() as i128);
            }
            Err(e) => tracing::debug!("resourcequota {key}: counting {res}: {e}"),
        }
    }
    let p = pods.list_namespaced(ns);
    let s = services.list_namespaced(ns);
    let c = pvcs.list_namespaced(ns);
    let used = compute_used(
        &quota,
        &p.iter().map(|x| x.as_ref()).collect::<Vec<_>>(),
        &s.iter().map(|x| x.as_ref()).collect::<Vec<_>>(),
        &c.iter().map(|x| x.as_ref()).collect::<Vec<_>>(),
        &counts,
    );
    let st = quota.status.clone().unwrap_or_default();
    let same_hard = st.hard.clone().unwrap_or_default() == hard;
    let same_used = st
        .used
        .clone()
        .unwrap_or_default()
        .iter()
        .all(|(k, v)| used.get(k).is_some_and(|u| nanos(u) == nanos(v)))
        && st.used.as_ref().map(|u| u.len()).unwrap_or(0) == used.len();
    if same_hard && same_used {
        return Ok(());
    }
    let mut upd = (*quota).clone();
    upd.status = Some(k8s_openapi::api::core::v1::ResourceQuotaStatus {
        hard: Some(hard),
        used: Some(used),
    });
    let api: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
    api.replace_status(name, &PostParams::default(), &upd)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, PodSpec, PodStatus, ResourceQuotaSpec, ResourceRequirements,
    };

    fn pod(cpu: &str, mem: &str, phase: &str) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some(
                            [
                                ("cpu".to_string(), Quantity(cpu.into())),
                                ("memory".to_string(), Quantity(mem.into())),
                            ]
                            .into(),
                        ),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn sums_requests_of_live_pods() {
        let q = ResourceQuota {
            spec: Some(ResourceQuotaSpec {
                hard: Some(
                    [
                        ("pods", "10"),
                        ("requests.cpu", "2"),
                        ("requests.memory", "1Gi"),
                        ("services", "5"),
                        ("configmaps", "3"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.into())))
                    .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        let a = pod("250m", "64Mi", "Running");
        let b = pod("500m", "64Mi", "Pending");
        let c = pod("1", "1Gi", "Succeeded");
        let counts: BTreeMap<String, i128> = [("configmaps".to_string(), 2)].into();
        let used = compute_used(&q, &[&a, &b, &c], &[], &[], &counts);
        assert_eq!(used["pods"].0, "2");
        assert_eq!(used["requests.cpu"].0, "750m");
        assert_eq!(used["requests.memory"].0, "128Mi");
        assert_eq!(used["services"].0, "0");
        assert_eq!(used["configmaps"].0, "2");
        assert!(is_best_effort(&Pod {
            spec: Some(PodSpec::default()),
            ..Default::default()
        }));
    }
}
