//! Pure computation of a Service's core/v1 Endpoints (upstream
//! pkg/controller/endpoint): ready/not-ready addresses, named ports,
//! publishNotReadyAddresses, headless services, repacked subsets.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, ObjectReference, Pod, Service,
};

use super::podutil;

pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
pub const MAX_ADDRESSES: usize = 1000;

pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// Whether the controllers manage endpoints for this service: it has a selector
/// (an empty or missing selector means endpoints are managed by hand).
pub fn has_selector(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty())
        && svc.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("ExternalName")
}

pub fn selects(svc: &Service, pod: &Pod) -> bool {
    let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    !sel.is_empty()
        && svc.metadata.namespace == pod.metadata.namespace
        && podutil::map_selector_matches(sel, pod.metadata.labels.as_ref())
}

pub fn primary_family(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
        .map(|s| s.as_str())
        .unwrap_or("IPv4")
}

pub fn pod_target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The pod's DNS hostname in the service: spec.hostname when spec.subdomain is the service.
pub fn pod_hostname(svc: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let host = spec.hostname.as_ref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && pod.metadata.namespace == svc.metadata.namespace)
        .then(|| host.clone())
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PortKey(String, i32, String, Option<String>);

impl PortKey {
    fn to_port(&self) -> EndpointPort {
        EndpointPort {
            name: (!self.0.is_empty()).then(|| self.0.clone()),
            port: self.1,
            protocol: Some(self.2.clone()),
            app_protocol: self.3.clone(),
        }
    }
}

/// The subsets of the Endpoints for `svc` given the candidate pods (only those it selects are used).
/// Returns the subsets and whether they were truncated at MAX_ADDRESSES.
pub fn compute_subsets(svc: &Service, pods: &[&Pod]) -> (Vec<EndpointSubset>, bool) {
    let Some(spec) = svc.spec.as_ref() else {
        return (vec![], false);
    };
    let tolerate_unready = spec.publish_not_ready_addresses == Some(true);
    let family = primary_family(svc);
    let ports = spec.ports.as_deref().unwrap_or(&[]);
    let headless = is_headless(svc);
    // ip -> (address, ready, ports)
    let mut addrs: BTreeMap<String, (EndpointAddress, bool, BTreeSet<PortKey>)> = BTreeMap::new();
    for pod in pods.iter().copied() {
        if !selects(svc, pod) || !podutil::should_be_in_endpoints(pod, tolerate_unready) {
            continue;
        }
        let Some(ip) = podutil::pod_ip_for_family(pod, family) else {
            continue;
        };
        let ready = tolerate_unready || podutil::is_ready(pod);
        let addr = EndpointAddress {
            ip: ip.clone(),
            hostname: pod_hostname(svc, pod),
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            target_ref: Some(pod_target_ref(pod)),
        };
        let mut pset = BTreeSet::new();
        for sp in ports {
            if let Some(n) = podutil::find_port(pod, sp) {
                pset.insert(PortKey(
                    sp.name.clone().unwrap_or_default(),
                    n,
                    sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    sp.app_protocol.clone(),
                ));
            }
        }
        if pset.is_empty() && !(ports.is_empty() && headless) {
            continue;
        }
        let entry = addrs
            .entry(ip)
            .or_insert_with(|| (addr, ready, BTreeSet::new()));
        entry.1 |= ready;
        entry.2.extend(pset);
    }
    let total = addrs.len();
    let truncated = total > MAX_ADDRESSES;
    // Group by identical port sets (upstream RepackSubsets).
    let mut groups: BTreeMap<BTreeSet<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    let mut ready_kept = 0usize;
    let mut notready_kept = 0usize;
    // When truncating keep ready addresses first.
    let (ready_list, notready_list): (Vec<_>, Vec<_>) =
        addrs.into_values().partition(|(_, r, _)| *r);
    for (addr, _, ps) in ready_list {
        if ready_kept >= MAX_ADDRESSES {
            break;
        }
        ready_kept += 1;
        groups.entry(ps).or_default().0.push(addr);
    }
    for (addr, _, ps) in notready_list {
        if ready_kept + notready_kept >= MAX_ADDRESSES {
            break;
        }
        notready_kept += 1;
        groups.entry(ps).or_default().1.push(addr);
    }
    let mut subsets: Vec<EndpointSubset> = groups
        .into_iter()
        .map(|(ps, (mut ready, mut notready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            notready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!notready.is_empty()).then_some(notready),
                ports: (!ps.is_empty()).then(|| ps.iter().map(PortKey::to_port).collect()),
            }
        })
        .collect();
    subsets.sort_by_key(|s| {
        s.addresses
            .as_ref()
            .or(s.not_ready_addresses.as_ref())
            .and_then(|a| a.first())
            .map(|a| a.ip.clone())
    });
    (subsets, truncated)
}

/// The labels the Endpoints object carries: the service's, plus the headless marker.
pub fn endpoints_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

/// Normalises subsets for comparison (None vs empty).
pub fn subsets_equal(a: Option<&Vec<EndpointSubset>>, b: &[EndpointSubset]) -> bool {
    let a = a.map(|v| v.as_slice()).unwrap_or(&[]);
    a == b
}

// ---------------------------------------------------------------- controller

use std::sync::Arc;

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::Api;

use crate::informers::{key_of, split_key, Informer, Notification};
use crate::workqueue::{run_workers, WorkQueue};
use crate::ControllerContext;

/// Enqueues the services (of the pod's namespace) selecting a pod, old or new.
pub fn enqueue_pod_services(
    services: &Informer<Service>,
    queue: &WorkQueue<String>,
    n: &Notification<Pod>,
) {
    let pods: Vec<&Arc<Pod>> = match n {
        Notification::Added(p) | Notification::Deleted(p) => vec![p],
        Notification::Updated { old, new } => {
            // Only changes that matter for endpoints.
            if old.metadata.labels == new.metadata.labels
                && old
                    .status
                    .as_ref()
                    .map(|s| (&s.pod_ip, &s.pod_ips, &s.phase, &s.conditions))
                    == new
                        .status
                        .as_ref()
                        .map(|s| (&s.pod_ip, &s.pod_ips, &s.phase, &s.conditions))
                && old.metadata.deletion_timestamp == new.metadata.deletion_timestamp
                && old
                    .spec
                    .as_ref()
                    .map(|s| (&s.node_name, &s.hostname, &s.subdomain))
                    == new
                        .spec
                        .as_ref()
                        .map(|s| (&s.node_name, &s.hostname, &s.subdomain))
            {
                return;
            }
            vec![old, new]
        }
        Notification::Resync => {
            queue.add_all(services.keys());
            return;
        }
    };
    let ns = pods[0].metadata.namespace.clone().unwrap_or_default();
    for svc in services.list_namespaced(&ns) {
        if pods.iter().any(|p| selects(&svc, p)) {
            queue.add(key_of(svc.as_ref()));
        }
    }
}

/// The endpoints controller ("endpoints-controller").
pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<Pod>();
    let endpoints = ctx.informers.get::<Endpoints>();
    let mut s_sub = services.subscribe();
    let mut p_sub = pods.subscribe();
    let mut e_sub = endpoints.subscribe();
    services.wait_synced().await;
    pods.wait_synced().await;
    endpoints.wait_synced().await;
    let queue: WorkQueue<String> = WorkQueue::new();
    queue.add_all(services.keys());
    // Endpoints left behind by deleted services.
    for e in endpoints.list() {
        if services.get_by_key(&key_of(e.as_ref())).is_none() {
            queue.add(key_of(e.as_ref()));
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
                        // Someone changed or deleted an Endpoints object: re-assert it.
                        Some(Notification::Updated { new, .. }) => queue.add(key_of(new.as_ref())),
                        Some(Notification::Deleted(e)) => queue.add(key_of(e.as_ref())),
                        Some(_) => {}
                        None => break,
                    },
                }
            }
        });
    }
    let workers = ctx.options.concurrent_endpoint_syncs.max(1);
    let client = ctx.client.clone();
    run_workers(
        queue,
        workers,
        ctx.stop.clone(),
        "endpoints-controller",
        move |key: String| {
            let (client, services, pods, endpoints) = (
                client.clone(),
                services.clone(),
                pods.clone(),
                endpoints.clone(),
            );
            async move { sync_endpoints(&client, &services, &pods, &endpoints, &key).await }
        },
    )
    .await;
    Ok(())
}

async fn sync_endpoints(
    client: &kube::Client,
    services: &Informer<Service>,
    pods: &Informer<Pod>,
    endpoints: &Informer<Endpoints>,
    key: &str,
) -> anyhow::Result<()> {
    let (ns, name) = split_key(key);
    let ns = ns.unwrap_or("default");
    let api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    let Some(svc) = services.get_by_key(key) else {
        // The service is gone: so are its endpoints.
        if endpoints.get_by_key(key).is_some() {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if podutil::is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(());
    };
    if !has_selector(&svc) {
        return Ok(());
    }
    let ns_pods = pods.list_namespaced(ns);
    let refs: Vec<&Pod> = ns_pods.iter().map(|p| p.as_ref()).collect();
    let (subsets, truncated) = compute_subsets(&svc, &refs);
    let labels = endpoints_labels(&svc);
    let current = endpoints.get_by_key(key);
    let mut annotations = current
        .as_ref()
        .and_then(|e| e.metadata.annotations.clone())
        .unwrap_or_default();
    annotations.remove("endpoints.kubernetes.io/last-change-trigger-time");
    if truncated {
        annotations.insert(OVER_CAPACITY_ANNOTATION.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY_ANNOTATION);
    }
    if let Some(cur) = &current {
        let cur_ann = cur.metadata.annotations.clone().unwrap_or_default();
        if subsets_equal(cur.subsets.as_ref(), &subsets)
            && cur.metadata.labels.clone().unwrap_or_default() == labels
            && cur_ann.get(OVER_CAPACITY_ANNOTATION) == annotations.get(OVER_CAPACITY_ANNOTATION)
        {
            return Ok(());
        }
        let mut upd = (**cur).clone();
        upd.metadata.labels = Some(labels);
        upd.metadata.annotations = Some(annotations);
        upd.subsets = Some(subsets);
        api.replace(name, &PostParams::default(), &upd).await?;
    } else {
        let obj = Endpoints {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(ns.to_string()),
                labels: Some(labels),
                annotations: (!annotations.is_empty()).then_some(annotations),
                ..Default::default()
            },
            subsets: Some(subsets),
        };
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            // Our cache is behind: retry with the live object.
            Err(e) if podutil::is_conflict(&e) => {
                anyhow::bail!("endpoints {key} already exist; retrying")
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    pub fn pod(name: &str, ip: &str, ready: bool, port_name: &str, port: i32) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some(port_name.into()),
                        container_port: port,
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some(ip.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    pub fn svc(cluster_ip: &str, publish: bool) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(cluster_ip.into()),
                selector: Some([("app".to_string(), "web".to_string())].into()),
                publish_not_ready_addresses: Some(publish),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    target_port: Some(IntOrString::String("http".into())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::{pod, svc};
    use super::*;

    #[test]
    fn ready_and_not_ready_grouped_by_ports() {
        let a = pod("a", "10.0.0.2", true, "http", 8080);
        let b = pod("b", "10.0.0.1", false, "http", 8080);
        let c = pod("c", "10.0.0.3", true, "http", 9090);
        let d = pod("d", "10.0.0.4", true, "other", 9090); // no matching named port
        let (subsets, trunc) = compute_subsets(&svc("10.96.0.10", false), &[&a, &b, &c, &d]);
        assert!(!trunc);
        assert_eq!(subsets.len(), 2);
        let s0 = &subsets[0];
        assert_eq!(s0.ports.as_ref().unwrap()[0].port, 8080);
        assert_eq!(s0.addresses.as_ref().unwrap()[0].ip, "10.0.0.2");
        assert_eq!(s0.not_ready_addresses.as_ref().unwrap()[0].ip, "10.0.0.1");
        assert_eq!(subsets[1].ports.as_ref().unwrap()[0].port, 9090);
        assert_eq!(
            subsets[1].ports.as_ref().unwrap()[0].name.as_deref(),
            Some("http")
        );
    }

    #[test]
    fn publish_not_ready_makes_all_ready() {
        let b = pod("b", "10.0.0.1", false, "http", 8080);
        let (subsets, _) = compute_subsets(&svc("10.96.0.10", true), &[&b]);
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 1);
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn headless_without_ports_and_hostname() {
        let mut s = svc("None", false);
        s.spec.as_mut().unwrap().ports = None;
        let mut a = pod("a", "10.0.0.2", true, "http", 8080);
        a.spec.as_mut().unwrap().hostname = Some("a".into());
        a.spec.as_mut().unwrap().subdomain = Some("web".into());
        let (subsets, _) = compute_subsets(&s, &[&a]);
        assert_eq!(subsets.len(), 1);
        assert!(subsets[0].ports.is_none());
        assert_eq!(
            subsets[0].addresses.as_ref().unwrap()[0]
                .hostname
                .as_deref(),
            Some("a")
        );
        assert!(endpoints_labels(&s).contains_key(HEADLESS_LABEL));
    }
}
