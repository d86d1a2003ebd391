//! EndpointSlice controller (upstream pkg/controller/endpointslice): one set of
//! discovery.k8s.io/v1 EndpointSlices per Service with a selector and per IP
//! family, endpoints grouped by their resolved port set, at most
//! `--max-endpoints-per-slice` (100) endpoints per slice, ready/serving/terminating
//! conditions, placeholder slice when nothing matches.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::endpoints::{is_headless, pod_hostname, pod_target_ref, selects, HEADLESS_LABEL};
use super::podutil;

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
pub const DEFAULT_MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The port set of an endpoint group, in canonical (sorted) order.
pub type PortsKey = Vec<(String, i32, String, Option<String>)>;

fn ports_key(ports: Option<&Vec<EndpointPort>>) -> PortsKey {
    let mut k: PortsKey = ports
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or(0),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone(),
            )
        })
        .collect();
    k.sort();
    k
}

fn key_to_ports(k: &PortsKey) -> Vec<EndpointPort> {
    k.iter()
        .map(|(name, port, proto, app)| EndpointPort {
            name: Some(name.clone()),
            port: Some(*port),
            protocol: Some(proto.clone()),
            app_protocol: app.clone(),
        })
        .collect()
}

/// The families the service's slices use (IPv4 unless the service says otherwise).
pub fn address_types(svc: &Service) -> Vec<String> {
    let fams: Vec<String> = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.clone())
        .unwrap_or_default();
    if fams.is_empty() {
        vec!["IPv4".into()]
    } else {
        fams
    }
}

/// Identity of an endpoint across syncs: its target pod UID, else its first address.
fn endpoint_id(e: &Endpoint) -> String {
    e.target_ref
        .as_ref()
        .and_then(|r| r.uid.clone())
        .or_else(|| e.addresses.first().cloned())
        .unwrap_or_default()
}

/// The desired endpoints of one address family, grouped by port set.
pub fn desired_endpoints(
    svc: &Service,
    pods: &[&Pod],
    family: &str,
    zone_of: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<PortsKey, Vec<Endpoint>> {
    let mut out: BTreeMap<PortsKey, Vec<Endpoint>> = BTreeMap::new();
    let Some(spec) = svc.spec.as_ref() else {
        return out;
    };
    let publish = spec.publish_not_ready_addresses == Some(true);
    let svc_ports = spec.ports.as_deref().unwrap_or(&[]);
    let headless = is_headless(svc);
    for pod in pods.iter().copied() {
        if !selects(svc, pod) || !podutil::should_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(ip) = podutil::pod_ip_for_family(pod, family) else {
            continue;
        };
        let mut ports: Vec<EndpointPort> = Vec::new();
        for sp in svc_ports {
            if let Some(n) = podutil::find_port(pod, sp) {
                ports.push(EndpointPort {
                    name: Some(sp.name.clone().unwrap_or_default()),
                    port: Some(n),
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                });
            }
        }
        if ports.is_empty() && !(svc_ports.is_empty() && headless) {
            continue;
        }
        let terminating = podutil::is_terminating(pod);
        let serving = publish || podutil::is_ready(pod);
        let ready = publish || (serving && !terminating);
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        let ep = Endpoint {
            addresses: vec![ip],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: pod_hostname(svc, pod),
            zone: node.as_deref().and_then(zone_of),
            node_name: node,
            target_ref: Some(pod_target_ref(pod)),
            ..Default::default()
        };
        out.entry(ports_key(Some(&ports))).or_default().push(ep);
    }
    for eps in out.values_mut() {
        eps.sort_by_key(endpoint_id);
    }
    out
}

/// Labels of a managed slice: the service's labels (minus reserved ones), the
/// service name, the managed-by marker and the headless marker.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = svc
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| {
            k.as_str() != SERVICE_NAME_LABEL
                && k.as_str() != MANAGED_BY_LABEL
                && k.as_str() != HEADLESS_LABEL
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(
        SERVICE_NAME_LABEL.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    if is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

pub fn service_owner_ref(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The generateName prefix of a service's slices (the name shortened to leave room for the suffix).
pub fn slice_prefix(svc_name: &str) -> String {
    let mut p = svc_name.to_string();
    if p.len() > 57 {
        p.truncate(57);
    }
    format!("{p}-")
}

fn new_slice(
    svc: &Service,
    family: &str,
    ports: Option<Vec<EndpointPort>>,
    eps: Vec<Endpoint>,
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(slice_prefix(svc.metadata.name.as_deref().unwrap_or(""))),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(slice_labels(svc)),
            owner_references: Some(vec![service_owner_ref(svc)]),
            ..Default::default()
        },
        address_type: family.into(),
        endpoints: eps,
        ports,
    }
}

/// What to do to the API to make a service's slices match.
#[derive(Default, Debug)]
pub struct SlicePlan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<String>,
}

fn is_placeholder(s: &EndpointSlice) -> bool {
    s.endpoints.is_empty() && s.ports.as_ref().is_none_or(|p| p.is_empty())
}

/// Reconcile the existing managed slices of one service and family with the desired
/// endpoints. Endpoints stay in the slice they are in when possible; new ones fill
/// free room first, then new slices; emptied slices are deleted; one placeholder
/// slice is kept when there is nothing at all.
pub fn reconcile(
    svc: &Service,
    family: &str,
    existing: &[EndpointSlice],
    desired: &BTreeMap<PortsKey, Vec<Endpoint>>,
    max_per_slice: usize,
) -> SlicePlan {
    let max = max_per_slice.max(1);
    let mut plan = SlicePlan::default();
    let want_labels = slice_labels(svc);
    let existing: Vec<&EndpointSlice> = existing
        .iter()
        .filter(|s| s.address_type == family)
        .collect();
    let total_desired: usize = desired.values().map(|v| v.len()).sum();

    if total_desired == 0 {
        // Keep (or make) exactly one placeholder.
        let mut kept = false;
        for s in &existing {
            let name = s.metadata.name.clone().unwrap_or_default();
            if !kept && is_placeholder(s) {
                kept = true;
                if s.metadata.labels.as_ref() != Some(&want_labels) {
                    let mut u = (*s).clone();
                    u.metadata.labels = Some(want_labels.clone());
                    plan.update.push(u);
                }
            } else {
                plan.delete.push(name);
            }
        }
        if !kept {
            plan.create.push(new_slice(svc, family, None, vec![]));
        }
        return plan;
    }

    let mut by_key: HashMap<PortsKey, Vec<&EndpointSlice>> = HashMap::new();
    let mut placeholders: Vec<&EndpointSlice> = Vec::new();
    for s in &existing {
        let k = ports_key(s.ports.as_ref());
        if is_placeholder(s) {
            placeholders.push(s);
        } else if desired.contains_key(&k) {
            by_key.entry(k).or_default().push(s);
        } else {
            plan.delete
                .push(s.metadata.name.clone().unwrap_or_default());
        }
    }

    for (key, eps) in desired {
        let mut want: BTreeMap<String, &Endpoint> =
            eps.iter().map(|e| (endpoint_id(e), e)).collect();
        // Existing slices of this port set: keep the endpoints still wanted.
        let mut slices: Vec<(EndpointSlice, bool)> = Vec::new();
        let mut olds = by_key.remove(key).unwrap_or_default();
        olds.sort_by_key(|s| s.metadata.name.clone());
        for s in olds {
            let mut changed = s.metadata.labels.as_ref() != Some(&want_labels);
            let mut kept: Vec<Endpoint> = Vec::new();
            for e in &s.endpoints {
                if kept.len() >= max {
                    changed = true;
                    continue;
                }
                match want.remove(&endpoint_id(e)) {
                    Some(w) => {
                        if w != e {
                            changed = true;
                        }
                        kept.push(w.clone());
                    }
                    None => changed = true,
                }
            }
            let mut ns = s.clone();
            ns.endpoints = kept;
            ns.metadata.labels = Some(want_labels.clone());
            slices.push((ns, changed));
        }
        // Fill free room in existing slices, then new slices.
        let mut rest: Vec<&Endpoint> = want.into_values().collect();
        for (s, changed) in slices.iter_mut() {
            while s.endpoints.len() < max {
                let Some(e) = rest.pop() else { break };
                s.endpoints.push(e.clone());
                *changed = true;
            }
        }
        for (s, changed) in slices {
            if s.endpoints.is_empty() {
                plan.delete
                    .push(s.metadata.name.clone().unwrap_or_default());
            } else if changed {
                plan.update.push(s);
            }
        }
        rest.reverse();
        for chunk in rest.chunks(max) {
            let eps: Vec<Endpoint> = chunk.iter().map(|e| (*e).clone()).collect();
            plan.create
                .push(new_slice(svc, family, Some(key_to_ports(key)), eps));
        }
    }
    // A placeholder becomes the first new slice rather than being replaced.
    for ph in placeholders {
        if plan.create.is_empty() {
            plan.delete
                .push(ph.metadata.name.clone().unwrap_or_default());
            continue;
        }
        let c = plan.create.remove(0);
        let mut u = ph.clone();
        u.metadata.labels = c.metadata.labels;
        u.endpoints = c.endpoints;
        u.ports = c.ports;
        plan.update.push(u);
    }
    plan
}

/// Names of the families the service no longer uses whose slices must go.
pub fn stale_family_slices(svc: &Service, existing: &[EndpointSlice]) -> Vec<String> {
    let fams: BTreeSet<String> = address_types(svc).into_iter().collect();
    existing
        .iter()
        .filter(|s| !fams.contains(&s.address_type))
        .filter_map(|s| s.metadata.name.clone())
        .collect()
}

// ---------------------------------------------------------------- controller

use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, PostParams};
use kube::Api;

use super::endpoints::{enqueue_pod_services, has_selector};
use crate::informers::{key_of, split_key, Informer, Notification};
use crate::workqueue::{run_workers, WorkQueue};
use crate::ControllerContext;

/// The `namespace/service` key of a slice `manager` manages (its
/// managed-by and service-name labels), None for other slices.
pub fn service_key_if_managed_by(s: &EndpointSlice, manager: &str) -> Option<String> {
    let labels = s.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY_LABEL).map(|s| s.as_str()) != Some(manager) {
        return None;
    }
    let svc = labels.get(SERVICE_NAME_LABEL)?;
    Some(format!(
        "{}/{svc}",
        s.metadata.namespace.as_deref().unwrap_or("")
    ))
}

fn managed_service_key(s: &EndpointSlice) -> Option<String> {
    service_key_if_managed_by(s, MANAGED_BY)
}

/// The endpointslice controller ("endpointslice-controller").
pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<Pod>();
    let slices = ctx.informers.get::<EndpointSlice>();
    let nodes = ctx.informers.get::<Node>();
    let mut s_sub = services.subscribe();
    let mut p_sub = pods.subscribe();
    let mut e_sub = slices.subscribe();
    let mut n_sub = nodes.subscribe();
    services.wait_synced().await;
    pods.wait_synced().await;
    slices.wait_synced().await;
    nodes.wait_synced().await;
    let queue: WorkQueue<String> = WorkQueue::new();
    queue.add_all(services.keys());
    for s in slices.list() {
        if let Some(k) = managed_service_key(&s) {
            queue.add(k);
        }
    }
    {
        let (services, queue, stop) = (services.clone(), queue.clone(), ctx.stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    n = s_sub.recv() => match n {
                        Some(Notification::Resync) => queue.add_all(services.keys()),
                        Some(n) => if let Some(o) = n.object() { queue.add(key_of(o.as_ref())) },
                        None => break,
                    },
                    n = p_sub.recv() => match n {
                        Some(n) => enqueue_pod_services(&services, &queue, &n),
                        None => break,
                    },
                    n = e_sub.recv() => match n {
                        Some(Notification::Added(_)) => {}
                        Some(Notification::Resync) => queue.add_all(services.keys()),
                        Some(n) => if let Some(k) = n.object().and_then(|o| managed_service_key(o)) { queue.add(k) },
                        None => break,
                    },
                    n = n_sub.recv() => match n {
                        // Zone labels feed endpoint.zone.
                        Some(Notification::Updated { old, new }) if old.metadata.labels != new.metadata.labels => {
                            queue.add_all(services.keys())
                        }
                        Some(_) => {}
                        None => break,
                    },
                }
            }
        });
    }
    let workers = ctx.options.concurrent_service_endpoint_syncs.max(1);
    let max = (ctx.options.max_endpoints_per_slice.max(1) as usize).min(1000);
    let client = ctx.client.clone();
    let tracker: Tracker = Default::default();
    run_workers(
        queue,
        workers,
        ctx.stop.clone(),
        "endpointslice-controller",
        move |key: String| {
            let (client, services, pods, slices, nodes, tracker) = (
                client.clone(),
                services.clone(),
                pods.clone(),
                slices.clone(),
                nodes.clone(),
                tracker.clone(),
            );
            async move {
                sync_slices(
                    &client, &services, &pods, &slices, &nodes, &tracker, &key, max,
                )
                .await
            }
        },
    )
    .await;
    Ok(())
}

/// Slices this controller created or deleted that the cache must show before
/// the service is synced again (upstream's EndpointSliceTracker role): a stale
/// cache would otherwise make duplicate slices.
type Tracker = std::sync::Arc<
    std::sync::Mutex<HashMap<String, (Vec<String>, Vec<String>, std::time::Instant)>>,
>;

#[allow(clippy::too_many_arguments)]
async fn sync_slices(
    client: &kube::Client,
    services: &Informer<Service>,
    pods: &Informer<Pod>,
    slices: &Informer<EndpointSlice>,
    nodes: &Informer<Node>,
    tracker: &Tracker,
    key: &str,
    max: usize,
) -> anyhow::Result<()> {
    let (ns, name) = split_key(key);
    let ns = ns.unwrap_or("default");
    {
        let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((created, deleted, at)) = t.get(key) {
            let caught_up = created.iter().all(|n| slices.get(Some(ns), n).is_some())
                && deleted.iter().all(|n| slices.get(Some(ns), n).is_none());
            if caught_up || at.elapsed() > std::time::Duration::from_secs(10) {
                t.remove(key);
            } else {
                anyhow::bail!("waiting for the slice cache to catch up");
            }
        }
    }
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let mine: Vec<EndpointSlice> = slices
        .list_namespaced(ns)
        .into_iter()
        .filter(|s| managed_service_key(s).as_deref() == Some(key))
        .map(|s| (*s).clone())
        .collect();
    let svc = services.get_by_key(key).filter(|s| has_selector(s));
    let Some(svc) = svc else {
        // Service gone (or no longer selects pods): remove our slices.
        for s in &mine {
            if let Some(n) = &s.metadata.name {
                match api.delete(n, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(e) if podutil::is_not_found(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let _ = name;
        return Ok(());
    };
    // Slices owned by an older incarnation of the service go.
    let uid = svc.metadata.uid.clone().unwrap_or_default();
    let (mine, stale): (Vec<EndpointSlice>, Vec<EndpointSlice>) = mine
        .into_iter()
        .partition(|s| podutil::controller_ref(&s.metadata).is_none_or(|o| o.uid == uid));
    let ns_pods = pods.list_namespaced(ns);
    let refs: Vec<&Pod> = ns_pods.iter().map(|p| p.as_ref()).collect();
    let zone_of = |node: &str| -> Option<String> {
        nodes.get(None, node).and_then(|n| {
            n.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("topology.kubernetes.io/zone").cloned())
        })
    };
    let mut plan = SlicePlan::default();
    plan.delete
        .extend(stale.iter().filter_map(|s| s.metadata.name.clone()));
    plan.delete.extend(stale_family_slices(&svc, &mine));
    for fam in address_types(&svc) {
        let desired = desired_endpoints(&svc, &refs, &fam, &zone_of);
        let p = reconcile(&svc, &fam, &mine, &desired, max);
        plan.create.extend(p.create);
        plan.update.extend(p.update);
        plan.delete.extend(p.delete);
    }
    let pp = PostParams::default();
    let mut created = Vec::new();
    let result = apply_plan(&api, &pp, plan, &mut created).await;
    if !created.is_empty() {
        tracker.lock().unwrap_or_else(|e| e.into_inner()).insert(
            key.to_string(),
            (created, vec![], std::time::Instant::now()),
        );
    }
    result
}

async fn apply_plan(
    api: &Api<EndpointSlice>,
    pp: &PostParams,
    plan: SlicePlan,
    created: &mut Vec<String>,
) -> anyhow::Result<()> {
    for s in plan.create {
        let c = api.create(pp, &s).await?;
        created.extend(c.metadata.name);
    }
    for s in plan.update {
        let n = s.metadata.name.clone().unwrap_or_default();
        api.replace(&n, pp, &s).await?;
    }
    for n in plan.delete {
        match api.delete(&n, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if podutil::is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::endpoints::tests_support::{pod, svc};

    fn names(n: usize) -> Vec<Pod> {
        (0..n)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    &format!("10.0.{}.{}", i / 250, i % 250 + 1),
                    i % 2 == 0,
                    "http",
                    8080,
                )
            })
            .collect()
    }

    #[test]
    fn conditions_and_chunking() {
        let s = svc("10.96.0.10", false);
        let pods = names(250);
        let refs: Vec<&Pod> = pods.iter().collect();
        let d = desired_endpoints(&s, &refs, "IPv4", &|_| Some("z1".into()));
        assert_eq!(d.len(), 1);
        let eps = d.values().next().unwrap();
        assert_eq!(eps.len(), 250);
        assert_eq!(eps[0].zone.as_deref(), Some("z1"));
        let plan = reconcile(&s, "IPv4", &[], &d, 100);
        assert_eq!(plan.create.len(), 3);
        assert!(plan.create.iter().all(|c| c.endpoints.len() <= 100));
        assert_eq!(
            plan.create[0].metadata.labels.as_ref().unwrap()[SERVICE_NAME_LABEL],
            "web"
        );
        assert_eq!(
            plan.create[0].metadata.labels.as_ref().unwrap()[MANAGED_BY_LABEL],
            MANAGED_BY
        );

        // Existing slices keep their endpoints; removing pods updates only the affected slice.
        let mut existing = plan.create.clone();
        for (i, e) in existing.iter_mut().enumerate() {
            e.metadata.name = Some(format!("web-{i}"));
        }
        let fewer: Vec<&Pod> = pods.iter().skip(1).collect();
        let d2 = desired_endpoints(&s, &fewer, "IPv4", &|_| Some("z1".into()));
        let plan2 = reconcile(&s, "IPv4", &existing, &d2, 100);
        assert!(plan2.create.is_empty());
        assert!(plan2.delete.is_empty());
        assert_eq!(plan2.update.len(), 1);
    }

    #[test]
    fn terminating_and_placeholder() {
        let s = svc("10.96.0.10", false);
        let mut p = pod("a", "10.0.0.1", true, "http", 8080);
        p.metadata.deletion_timestamp = Some(podutil::now_time());
        let d = desired_endpoints(&s, &[&p], "IPv4", &|_| None);
        let c = d.values().next().unwrap()[0].conditions.clone().unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(false), Some(true), Some(true))
        );
        let plan = reconcile(&s, "IPv4", &[], &BTreeMap::new(), 100);
        assert_eq!(plan.create.len(), 1);
        assert!(plan.create[0].endpoints.is_empty());
        // The placeholder is reused once there are endpoints.
        let mut ph = plan.create[0].clone();
        ph.metadata.name = Some("web-ph".into());
        let p2 = pod("b", "10.0.0.2", true, "http", 8080);
        let d2 = desired_endpoints(&s, &[&p2], "IPv4", &|_| None);
        let plan2 = reconcile(&s, "IPv4", &[ph], &d2, 100);
        assert!(plan2.create.is_empty() && plan2.delete.is_empty());
        assert_eq!(plan2.update[0].metadata.name.as_deref(), Some("web-ph"));
        assert_eq!(plan2.update[0].endpoints.len(), 1);
    }
}
