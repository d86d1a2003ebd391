//! The service controller (upstream controllers/service): `type:
//! LoadBalancer` Services without a `spec.loadBalancerClass` get a load
//! balancer from the cloud, guarded by the
//! `service.kubernetes.io/load-balancer-cleanup` finalizer, with
//! status.loadBalancer.ingress set from it; when the Service goes or stops
//! wanting one, the load balancer is deleted and the finalizer removed.
//! Events: EnsuringLoadBalancer, EnsuredLoadBalancer, DeletingLoadBalancer,
//! DeletedLoadBalancer, SyncLoadBalancerFailed, UpdatedLoadBalancer,
//! UpdateLoadBalancerFailed, UnAvailableLoadBalancer.
//!
//! The nodes handed to the provider are the Ready nodes not excluded from
//! load balancers; for `externalTrafficPolicy: Local` only those with a ready
//! endpoint of the Service (from its EndpointSlices), as a health-checking
//! load balancer would see it. Node and endpoint changes update the load
//! balancers' node sets.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use k8s_openapi::api::core::v1::{LoadBalancerStatus, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

use super::util;
use crate::cloud::LoadBalancer;
use crate::Context;
use client_base::events::Recorder;
use controller_manager::informers::{key_of, split_key, Informer, Notification};
use controller_manager::workqueue::{run_workers, WorkQueue};

pub const LB_FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";
pub const LABEL_EXCLUDE_LB: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
pub const TAINT_TO_BE_DELETED: &str = "ToBeDeletedByClusterAutoscaler";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// How often every load balancer's node set is re-applied.
const NODE_SYNC_PERIOD: Duration = Duration::from_secs(100);

pub fn wants_load_balancer(svc: &Service) -> bool {
    let spec = svc.spec.as_ref();
    spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
        && spec.and_then(|s| s.load_balancer_class.as_ref()).is_none()
}

pub fn has_finalizer(svc: &Service) -> bool {
    svc.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == LB_FINALIZER))
}

/// The load balancer must go: the Service holds our finalizer and is being
/// deleted or no longer wants one.
pub fn needs_cleanup(svc: &Service) -> bool {
    has_finalizer(svc) && (svc.metadata.deletion_timestamp.is_some() || !wants_load_balancer(svc))
}

/// Whether a change of the Service calls for a full sync.
pub fn needs_update(old: &Service, new: &Service) -> bool {
    if wants_load_balancer(old) != wants_load_balancer(new) {
        return true;
    }
    if !wants_load_balancer(new) {
        return false;
    }
    let project = |s: &Service| {
        let spec = s.spec.clone().unwrap_or_default();
        json!({
            "uid": s.metadata.uid,
            "annotations": s.metadata.annotations,
            "type": spec.type_,
            "ports": spec.ports,
            "sessionAffinity": spec.session_affinity,
            "sourceRanges": spec.load_balancer_source_ranges,
            "lbIP": spec.load_balancer_ip,
            "externalIPs": spec.external_ips,
            "etp": spec.external_traffic_policy,
            "hcnp": spec.health_check_node_port,
            "families": spec.ip_families,
            "class": spec.load_balancer_class,
        })
    };
    project(old) != project(new)
}

/// A node that can serve load balancer traffic.
pub fn node_eligible(node: &Node) -> bool {
    util::is_ready(node)
        && node.metadata.deletion_timestamp.is_none()
        && !node
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(LABEL_EXCLUDE_LB))
        && !util::has_taint(node, TAINT_TO_BE_DELETED)
}

/// The nodes with a ready endpoint of the service.
pub fn nodes_with_local_endpoints(
    svc: &Service,
    slices: &[Arc<EndpointSlice>],
) -> BTreeSet<String> {
    let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
    let name = svc.metadata.name.as_deref().unwrap_or_default();
    slices
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
        .filter(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .map(String::as_str)
                == Some(name)
        })
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .filter_map(|e| e.node_name.clone())
        .collect()
}

fn is_local(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.external_traffic_policy.as_deref())
        == Some("Local")
}

/// The nodes the service's load balancer sends traffic to, sorted by name.
pub fn load_balancer_nodes(
    svc: &Service,
    nodes: &[Arc<Node>],
    slices: &[Arc<EndpointSlice>],
) -> Vec<Node> {
    let local = is_local(svc).then(|| nodes_with_local_endpoints(svc, slices));
    let mut out: Vec<Node> = nodes
        .iter()
        .filter(|n| node_eligible(n))
        .filter(|n| {
            local
                .as_ref()
                .is_none_or(|l| l.contains(n.metadata.name.as_deref().unwrap_or_default()))
        })
        .map(|n| (**n).clone())
        .collect();
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

fn lb_status(svc: &Service) -> LoadBalancerStatus {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.clone())
        .unwrap_or_default()
}

fn status_empty(s: &LoadBalancerStatus) -> bool {
    s.ingress.as_ref().is_none_or(|i| i.is_empty())
}

struct Controller {
    client: kube::Client,
    services: Informer<Service>,
    nodes: Informer<Node>,
    slices: Informer<EndpointSlice>,
    lb: Arc<dyn LoadBalancer>,
    cluster_name: String,
    recorder: Recorder,
    /// Keys due a full sync (the Service itself changed).
    full: Mutex<HashSet<String>>,
    /// The node set last applied per Service key.
    hosts: Mutex<HashMap<String, Vec<String>>>,
    /// The last Service seen per key with a load balancer (to clean up
    /// after a Service deleted behind our back).
    seen: Mutex<HashMap<String, Arc<Service>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Controller {
    fn api(&self, ns: &str) -> Api<Service> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn lb_nodes(&self, svc: &Service) -> Vec<Node> {
        load_balancer_nodes(svc, &self.nodes.list(), &self.slices.list())
    }

    async fn sync(&self, key: &str) -> Result<()> {
        let full = lock(&self.full).remove(key);
        let Some(svc) = self.services.get_by_key(key) else {
            let old = lock(&self.seen).remove(key);
            lock(&self.hosts).remove(key);
            if let Some(old) = old {
                self.lb
                    .ensure_load_balancer_deleted(&self.cluster_name, &old)
                    .await?;
            }
            return Ok(());
        };
        if wants_load_balancer(&svc) || has_finalizer(&svc) {
            lock(&self.seen).insert(key.to_string(), svc.clone());
        }
        if needs_cleanup(&svc) {
            return self.delete_lb(key, &svc).await.inspect_err(|e| {
                self.recorder.warning(
                    svc.as_ref(),
                    "SyncLoadBalancerFailed",
                    format!("Error syncing load balancer: {e:#}"),
                )
            });
        }
        if !wants_load_balancer(&svc) || svc.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let exists = self
            .lb
            .get_load_balancer(&self.cluster_name, &svc)
            .await?
            .is_some();
        if full || !has_finalizer(&svc) || status_empty(&lb_status(&svc)) || !exists {
            return self.ensure_lb(key, &svc).await.inspect_err(|e| {
                self.recorder.warning(
                    svc.as_ref(),
                    "SyncLoadBalancerFailed",
                    format!("Error syncing load balancer: {e:#}"),
                )
            });
        }
        self.update_hosts(key, &svc).await
    }

    async fn ensure_lb(&self, key: &str, svc: &Arc<Service>) -> Result<()> {
        let (ns, name) = split_key(key);
        let ns = ns.unwrap_or_default();
        tracing::info!("Ensuring load balancer for service {key}");
        self.recorder.normal(
            svc.as_ref(),
            "EnsuringLoadBalancer",
            "Ensuring load balancer",
        );
        if !has_finalizer(svc) {
            update_finalizers(&self.api(ns), name, svc, true)
                .await
                .map_err(|e| anyhow!("failed to add load balancer cleanup finalizer: {e:#}"))?;
        }
        let nodes = self.lb_nodes(svc);
        if nodes.is_empty() {
            self.recorder.warning(
                svc.as_ref(),
                "UnAvailableLoadBalancer",
                "There are no available nodes for LoadBalancer",
            );
        }
        let status = self
            .lb
            .ensure_load_balancer(&self.cluster_name, svc, &nodes)
            .await
            .map_err(|e| anyhow!("failed to ensure load balancer: {e:#}"))?;
        self.recorder
            .normal(svc.as_ref(), "EnsuredLoadBalancer", "Ensured load balancer");
        lock(&self.hosts).insert(key.to_string(), node_names(&nodes));
        if status != lb_status(svc) {
            let patch = json!({"status": {"loadBalancer": status}});
            self.api(ns)
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Ok(())
    }

    async fn update_hosts(&self, key: &str, svc: &Arc<Service>) -> Result<()> {
        let nodes = self.lb_nodes(svc);
        let names = node_names(&nodes);
        let changed = lock(&self.hosts).get(key) != Some(&names);
        match self
            .lb
            .update_load_balancer(&self.cluster_name, svc, &nodes)
            .await
        {
            Ok(()) => {
                if changed {
                    self.recorder.normal(
                        svc.as_ref(),
                        "UpdatedLoadBalancer",
                        "Updated load balancer with new hosts",
                    );
                    lock(&self.hosts).insert(key.to_string(), names);
                }
                Ok(())
            }
            Err(e) => {
                self.recorder.warning(
                    svc.as_ref(),
                    "UpdateLoadBalancerFailed",
                    format!("Error updating load balancer with new hosts {names:?}: {e:#}"),
                );
                Err(e)
            }
        }
    }

    async fn delete_lb(&self, key: &str, svc: &Arc<Service>) -> Result<()> {
        let (ns, name) = split_key(key);
        let ns = ns.unwrap_or_default();
        let exists = self
            .lb
            .get_load_balancer(&self.cluster_name, svc)
            .await?
            .is_some();
        if exists {
            tracing::info!("Deleting existing load balancer for service {key}");
            self.recorder.normal(
                svc.as_ref(),
                "DeletingLoadBalancer",
                "Deleting load balancer",
            );
        }
        self.lb
            .ensure_load_balancer_deleted(&self.cluster_name, svc)
            .await
            .map_err(|e| anyhow!("failed to delete load balancer: {e:#}"))?;
        lock(&self.hosts).remove(key);
        if svc.metadata.deletion_timestamp.is_none() && !status_empty(&lb_status(svc)) {
            let patch = json!({"status": {"loadBalancer": {"ingress": null}}});
            self.api(ns)
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        update_finalizers(&self.api(ns), name, svc, false)
            .await
            .map_err(|e| anyhow!("failed to remove load balancer cleanup finalizer: {e:#}"))?;
        lock(&self.seen).remove(key);
        self.recorder
            .normal(svc.as_ref(), "DeletedLoadBalancer", "Deleted load balancer");
        Ok(())
    }
}

/// Adds or removes our finalizer, conditional on the resourceVersion; on a
/// conflict the Service is read again and the change retried. A Service
/// that is gone is fine when removing.
async fn update_finalizers(api: &Api<Service>, name: &str, svc: &Service, add: bool) -> Result<()> {
    let mut cur = svc.clone();
    for _ in 0..5 {
        let mut f = cur.metadata.finalizers.clone().unwrap_or_default();
        let had = f.iter().any(|x| x == LB_FINALIZER);
        if had == add {
            return Ok(());
        }
        if add {
            f.push(LB_FINALIZER.to_string());
        } else {
            f.retain(|x| x != LB_FINALIZER);
        }
        let patch = json!({"metadata": {
            "resourceVersion": cur.metadata.resource_version,
            "finalizers": f,
        }});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if util::is_not_found(&e) && !add => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => match api.get_opt(name).await? {
                Some(fresh) if fresh.metadata.uid == svc.metadata.uid => cur = fresh,
                _ if !add => return Ok(()),
                _ => anyhow::bail!("the service was deleted"),
            },
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("too many conflicts")
}

fn node_names(nodes: &[Node]) -> Vec<String> {
    nodes.iter().map(util::name).collect()
}

fn lb_node_relevant(old: &Node, new: &Node) -> bool {
    node_eligible(old) != node_eligible(new)
        || old.status.as_ref().and_then(|s| s.addresses.as_ref())
            != new.status.as_ref().and_then(|s| s.addresses.as_ref())
}

/// The service controller.
pub async fn run(ctx: Context) -> Result<()> {
    let Some(lb) = ctx.cloud.load_balancer() else {
        tracing::warn!("service controller: the cloud provider does not support load balancers");
        ctx.stop.cancelled().await;
        return Ok(());
    };
    let services = ctx.informers.get::<Service>();
    let nodes = ctx.informers.get::<Node>();
    let slices = ctx.informers.get::<EndpointSlice>();
    let mut svc_sub = services.subscribe();
    let mut node_sub = nodes.subscribe();
    let mut slice_sub = slices.subscribe();
    tokio::select! {
        _ = ctx.stop.cancelled() => return Ok(()),
        _ = async { services.wait_synced().await; nodes.wait_synced().await; slices.wait_synced().await } => {}
    }
    let all: Vec<Service> = services.list().iter().map(|s| (**s).clone()).collect();
    // Until the provider knows what is allocated, nothing can be synced.
    loop {
        match lb.restore(&ctx.cluster_name, &all).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!("service controller: restoring load balancers: {e:#}");
                tokio::select! {
                    _ = ctx.stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
    }
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        services: services.clone(),
        nodes: nodes.clone(),
        slices: slices.clone(),
        lb,
        cluster_name: ctx.cluster_name.clone(),
        recorder: ctx.recorder("service-controller"),
        full: Mutex::new(HashSet::new()),
        hosts: Mutex::new(HashMap::new()),
        seen: Mutex::new(HashMap::new()),
    });
    let queue: WorkQueue<String> = WorkQueue::new();
    let enqueue_full = {
        let (c, queue) = (c.clone(), queue.clone());
        move |svc: &Service| {
            let key = key_of(svc);
            lock(&c.full).insert(key.clone());
            queue.add(key);
        }
    };
    let enqueue_all_lbs = {
        let (services, queue) = (services.clone(), queue.clone());
        move || {
            for s in services.list() {
                if wants_load_balancer(&s) || has_finalizer(&s) {
                    queue.add(key_of(s.as_ref()));
                }
            }
        }
    };
    for s in services.list() {
        if wants_load_balancer(&s) || needs_cleanup(&s) {
            enqueue_full(&s);
        }
    }
    {
        let (stop, queue, services) = (ctx.stop.clone(), queue.clone(), services.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(NODE_SYNC_PERIOD);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => enqueue_all_lbs(),
                    n = svc_sub.recv() => match n {
                        None => return,
                        Some(Notification::Added(s)) => {
                            if wants_load_balancer(&s) || needs_cleanup(&s) { enqueue_full(&s) }
                        }
                        Some(Notification::Updated { old, new }) => {
                            if needs_update(&old, &new) || needs_cleanup(&new) { enqueue_full(&new) }
                        }
                        Some(Notification::Deleted(s)) => queue.add(key_of(s.as_ref())),
                        Some(Notification::Resync) => {
                            for s in services.list() {
                                if wants_load_balancer(&s) || needs_cleanup(&s) { enqueue_full(&s) }
                            }
                        }
                    },
                    n = node_sub.recv() => match n {
                        None => return,
                        Some(Notification::Updated { old, new }) if !lb_node_relevant(&old, &new) => {}
                        Some(_) => enqueue_all_lbs(),
                    },
                    n = slice_sub.recv() => match n {
                        None => return,
                        Some(Notification::Resync) => enqueue_all_lbs(),
                        Some(n) => {
                            let Some(es) = n.object() else { continue };
                            let ns = es.metadata.namespace.clone().unwrap_or_default();
                            let Some(name) = es.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) else { continue };
                            if let Some(s) = services.get(Some(&ns), name) {
                                if is_local(&s) && wants_load_balancer(&s) {
                                    queue.add(key_of(s.as_ref()));
                                }
                            }
                        }
                    },
                }
            }
        });
    }
    run_workers(
        queue,
        ctx.options.concurrent_service_syncs,
        ctx.stop.clone(),
        "service",
        move |key: String| {
            let c = c.clone();
            async move { c.sync(&key).await }
        },
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
    use std::collections::BTreeMap;

    fn svc(t: &str, class: Option<&str>, etp: Option<&str>) -> Service {
        let mut s = Service::default();
        s.metadata.name = Some("web".into());
        s.metadata.namespace = Some("default".into());
        s.metadata.uid = Some("u1".into());
        s.spec = Some(ServiceSpec {
            type_: Some(t.into()),
            load_balancer_class: class.map(Into::into),
            external_traffic_policy: etp.map(Into::into),
            ..Default::default()
        });
        s
    }

    fn node(name: &str, ready: bool, excluded: bool) -> Arc<Node> {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        if excluded {
            n.metadata.labels = Some(BTreeMap::from([(
                LABEL_EXCLUDE_LB.to_string(),
                String::new(),
            )]));
        }
        n.status = Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        Arc::new(n)
    }

    fn slice(svc: &str, eps: &[(&str, Option<bool>)]) -> Arc<EndpointSlice> {
        let mut s = EndpointSlice::default();
        s.metadata.namespace = Some("default".into());
        s.metadata.labels = Some(BTreeMap::from([(
            SERVICE_NAME_LABEL.to_string(),
            svc.to_string(),
        )]));
        s.endpoints = eps
            .iter()
            .map(|(n, r)| Endpoint {
                node_name: Some(n.to_string()),
                conditions: Some(EndpointConditions {
                    ready: *r,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        Arc::new(s)
    }

    #[test]
    fn which_services_want_load_balancers() {
        assert!(wants_load_balancer(&svc("LoadBalancer", None, None)));
        assert!(!wants_load_balancer(&svc(
            "LoadBalancer",
            Some("x/y"),
            None
        )));
        assert!(!wants_load_balancer(&svc("ClusterIP", None, None)));
        let mut s = svc("ClusterIP", None, None);
        assert!(!needs_cleanup(&s));
        s.metadata.finalizers = Some(vec![LB_FINALIZER.into()]);
        assert!(needs_cleanup(&s));
        let mut s = svc("LoadBalancer", None, None);
        s.metadata.finalizers = Some(vec![LB_FINALIZER.into()]);
        assert!(!needs_cleanup(&s));
        let a = svc("LoadBalancer", None, None);
        let mut b = a.clone();
        assert!(!needs_update(&a, &b));
        b.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
        assert!(needs_update(&a, &b));
        assert!(needs_update(&a, &svc("ClusterIP", None, None)));
        // Status or finalizer changes alone are not updates.
        let mut c = a.clone();
        c.metadata.finalizers = Some(vec![LB_FINALIZER.into()]);
        assert!(!needs_update(&a, &c));
    }

    #[test]
    fn node_sets() {
        let nodes = vec![
            node("b", true, false),
            node("a", true, false),
            node("c", false, false),
            node("d", true, true),
        ];
        let names = |v: Vec<Node>| v.iter().map(util::name).collect::<Vec<_>>();
        let cluster = svc("LoadBalancer", None, Some("Cluster"));
        assert_eq!(
            names(load_balancer_nodes(&cluster, &nodes, &[])),
            vec!["a", "b"]
        );
        let local = svc("LoadBalancer", None, Some("Local"));
        let slices = vec![
            slice("web", &[("b", None), ("c", Some(true)), ("a", Some(false))]),
            slice("other", &[("a", Some(true))]),
        ];
        assert_eq!(
            names(load_balancer_nodes(&local, &nodes, &slices)),
            vec!["b"]
        );
        assert!(load_balancer_nodes(&local, &nodes, &[]).is_empty());
    }
}
