//! The route controller (upstream controllers/route): every
//! `--route-reconciliation-period` (and soon after a node's pod CIDRs or
//! addresses change), each node's pod CIDRs get a cloud route to the node,
//! routes inside `--cluster-cidr` that no node wants any more are deleted,
//! and each node's `NetworkUnavailable` condition says whether its routes
//! exist (False/RouteCreated, or True/NoRouteCreated with a
//! `FailedToCreateRoute` event). Runs only with `--allocate-node-cidrs` and
//! `--configure-cloud-routes`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, NodeAddress};
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

use super::util;
use crate::cloud::{Route, Routes};
use crate::Context;
use client_base::events::{node_ref, EventType, Recorder};
use controller_manager::informers::{Informer, Notification};

/// Parses `--cluster-cidr` (comma-separated).
pub fn parse_cluster_cidrs(s: &str) -> Result<Vec<IpNet>> {
    let v: Vec<IpNet> = s
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| {
            x.parse::<IpNet>()
                .map(|n| n.trunc())
                .map_err(|e| anyhow!("invalid --cluster-cidr {x:?}: {e}"))
        })
        .collect::<Result<_>>()?;
    if v.is_empty() {
        bail!("--cluster-cidr is empty");
    }
    Ok(v)
}

fn within(cluster: &[IpNet], cidr: &IpNet) -> bool {
    cluster
        .iter()
        .any(|c| c.contains(&cidr.network()) && cidr.prefix_len() >= c.prefix_len())
}

/// The pod CIDRs of a node (spec.podCIDRs, else spec.podCIDR), normalized.
pub fn node_pod_cidrs(node: &Node) -> Vec<IpNet> {
    let spec = node.spec.as_ref();
    let mut v: Vec<String> = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    if v.is_empty() {
        if let Some(c) = spec.and_then(|s| s.pod_cidr.clone()) {
            v.push(c);
        }
    }
    let mut out: Vec<IpNet> = v
        .iter()
        .filter_map(|c| c.trim().parse::<IpNet>().ok())
        .map(|n| n.trunc())
        .collect();
    out.dedup();
    out
}

fn addresses(node: &Node) -> Vec<NodeAddress> {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.clone())
        .unwrap_or_default()
}

/// What reconciliation does.
#[derive(Debug, Default, PartialEq)]
pub struct RoutePlan {
    /// (node name, node uid, route) to create.
    pub create: Vec<(String, String, Route)>,
    /// Routes to delete.
    pub delete: Vec<Route>,
    /// Nodes whose routes are all in place already.
    pub complete: BTreeSet<String>,
}

fn route_matches(route: &Route, node: &Node) -> bool {
    let name = util::name(node);
    if !route.target_node.is_empty() {
        return route.target_node == name;
    }
    let mine: Vec<String> = addresses(node)
        .into_iter()
        .filter(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
        .collect();
    !route.target_node_addresses.is_empty()
        && route
            .target_node_addresses
            .iter()
            .all(|a| mine.contains(&a.address))
}

/// Plans the routes: one per (node, pod CIDR inside the cluster CIDRs, of an
/// IP family the cluster CIDRs have); existing routes inside the cluster
/// CIDRs that no node wants are deleted (unless a route to the same
/// destination is being created, which replaces it).
pub fn plan_routes(cluster: &[IpNet], nodes: &[Arc<Node>], existing: &[Route]) -> RoutePlan {
    let mut plan = RoutePlan::default();
    let mut wanted: HashMap<IpNet, &Node> = HashMap::new();
    for node in nodes {
        let name = util::name(node);
        let cidrs: Vec<IpNet> = node_pod_cidrs(node)
            .into_iter()
            .filter(|c| within(cluster, c))
            .collect();
        if cidrs.is_empty() {
            continue;
        }
        let mut all = true;
        for cidr in cidrs {
            wanted.insert(cidr, node);
            let have = existing.iter().any(|r| {
                r.destination_cidr.parse::<IpNet>().ok().map(|n| n.trunc()) == Some(cidr)
                    && route_matches(r, node)
            });
            if !have {
                all = false;
                plan.create.push((
                    name.clone(),
                    node.metadata.uid.clone().unwrap_or_default(),
                    Route {
                        name: String::new(),
                        target_node: name.clone(),
                        target_node_addresses: addresses(node),
                        destination_cidr: cidr.to_string(),
                        blackhole: false,
                    },
                ));
            }
        }
        if all {
            plan.complete.insert(name);
        }
    }
    let creating: BTreeSet<String> = plan
        .create
        .iter()
        .map(|(_, _, r)| r.destination_cidr.clone())
        .collect();
    for r in existing {
        let Ok(dst) = r.destination_cidr.parse::<IpNet>().map(|n| n.trunc()) else {
            continue;
        };
        if !within(cluster, &dst) || creating.contains(&dst.to_string()) {
            continue;
        }
        let keep = !r.blackhole && wanted.get(&dst).is_some_and(|n| route_matches(r, n));
        if !keep {
            plan.delete.push(r.clone());
        }
    }
    plan
}

/// The NetworkUnavailable condition patch, None when the node has the right status.
pub fn network_condition_patch(node: &Node, routes_created: bool) -> Option<serde_json::Value> {
    let cur = util::condition_status(node, "NetworkUnavailable");
    if routes_created && cur == Some("False") || !routes_created && cur == Some("True") {
        return None;
    }
    let now = util::now();
    let (status, reason, message) = if routes_created {
        ("False", "RouteCreated", "RouteController created a route")
    } else {
        (
            "True",
            "NoRouteCreated",
            "RouteController failed to create a route",
        )
    };
    Some(json!({"status": {"conditions": [{
        "type": "NetworkUnavailable",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
        "lastHeartbeatTime": now,
    }]}}))
}

struct Controller {
    api: Api<Node>,
    nodes: Informer<Node>,
    routes: Arc<dyn Routes>,
    cluster: Vec<IpNet>,
    cluster_name: String,
    recorder: Recorder,
}

impl Controller {
    async fn reconcile(&self) -> Result<()> {
        let existing = self.routes.list_routes(&self.cluster_name).await?;
        let nodes = self.nodes.list();
        let plan = plan_routes(&self.cluster, &nodes, &existing);
        for r in &plan.delete {
            tracing::info!(
                "Deleting route {} {} (target {:?})",
                r.name,
                r.destination_cidr,
                r.target_node
            );
            if let Err(e) = self.routes.delete_route(&self.cluster_name, r).await {
                tracing::warn!("could not delete route {}: {e:#}", r.destination_cidr);
            }
        }
        let mut failed: BTreeSet<String> = BTreeSet::new();
        let mut created: BTreeSet<String> = BTreeSet::new();
        for (node, uid, r) in &plan.create {
            let start = Instant::now();
            match self.routes.create_route(&self.cluster_name, uid, r).await {
                Ok(()) => {
                    tracing::info!(
                        "Created route for node {node} {} with hint {uid}",
                        r.destination_cidr
                    );
                    created.insert(node.clone());
                }
                Err(e) => {
                    let msg = format!(
                        "Could not create route {uid} {} for node {node} after {:?}: {e:#}",
                        r.destination_cidr,
                        start.elapsed()
                    );
                    tracing::warn!("{msg}");
                    let mut nr = node_ref(node);
                    nr.uid = Some(uid.clone());
                    self.recorder
                        .event(&nr, EventType::Warning, "FailedToCreateRoute", msg);
                    failed.insert(node.clone());
                }
            }
        }
        for node in &nodes {
            let name = util::name(node);
            let ok = if failed.contains(&name) {
                false
            } else if plan.complete.contains(&name) || created.contains(&name) {
                true
            } else {
                continue;
            };
            if let Some(p) = network_condition_patch(node, ok) {
                if let Err(e) = self
                    .api
                    .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&p))
                    .await
                {
                    if !util::is_not_found(&e) {
                        tracing::warn!("updating NetworkUnavailable of node {name}: {e}");
                    }
                }
            }
        }
        Ok(())
    }
}

fn route_relevant(old: &Node, new: &Node) -> bool {
    node_pod_cidrs(old) != node_pod_cidrs(new) || addresses(old) != addresses(new)
}

/// The route controller.
pub async fn run(ctx: Context) -> Result<()> {
    let o = &ctx.options;
    if !o.allocate_node_cidrs || !o.configure_cloud_routes {
        tracing::info!(
            "Will not configure cloud provider routes, --configure-cloud-routes: {}, --allocate-node-cidrs: {}",
            o.configure_cloud_routes,
            o.allocate_node_cidrs
        );
        ctx.stop.cancelled().await;
        return Ok(());
    }
    let Some(routes) = ctx.cloud.routes() else {
        tracing::warn!("route controller: the cloud provider does not support routes");
        ctx.stop.cancelled().await;
        return Ok(());
    };
    let cluster = parse_cluster_cidrs(o.cluster_cidr.as_deref().unwrap_or_default())
        .map_err(|e| anyhow!("route controller: {e}"))?;
    let nodes = ctx.informers.get::<Node>();
    let mut sub = nodes.subscribe();
    tokio::select! {
        _ = ctx.stop.cancelled() => return Ok(()),
        _ = nodes.wait_synced() => {}
    }
    let c = Controller {
        api: Api::all(ctx.client.clone()),
        nodes,
        routes,
        cluster,
        cluster_name: ctx.cluster_name.clone(),
        recorder: ctx.recorder("route_controller"),
    };
    let period = o
        .route_reconciliation_period
        .max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
            n = sub.recv() => {
                let relevant = match &n {
                    None => return Ok(()),
                    Some(Notification::Updated { old, new }) => route_relevant(old, new),
                    Some(_) => true,
                };
                if !relevant {
                    continue;
                }
                // Let a burst of changes settle.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        if let Err(e) = c.reconcile().await {
            tracing::warn!("route reconciliation failed: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};

    fn node(name: &str, cidr: Option<&str>, ip: &str) -> Arc<Node> {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.metadata.uid = Some(format!("uid-{name}"));
        n.spec = Some(NodeSpec {
            pod_cidr: cidr.map(Into::into),
            pod_cidrs: cidr.map(|c| vec![c.to_string()]),
            ..Default::default()
        });
        n.status = Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: ip.into(),
            }]),
            ..Default::default()
        });
        Arc::new(n)
    }

    fn existing(dst: &str, via: &str) -> Route {
        Route {
            name: dst.into(),
            destination_cidr: dst.into(),
            target_node_addresses: vec![NodeAddress {
                type_: "InternalIP".into(),
                address: via.into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn plans_creates_deletes_and_replacements() {
        let cluster = parse_cluster_cidrs("10.131.0.0/16").unwrap();
        let nodes = vec![
            node("a", Some("10.131.0.0/24"), "10.200.3.10"),
            node("b", Some("10.131.1.0/24"), "10.200.3.11"),
            node("c", Some("10.131.2.0/24"), "10.200.3.12"),
            node("d", None, "10.200.3.13"),
            // Outside the cluster CIDR: not ours to route.
            node("e", Some("192.168.0.0/24"), "10.200.3.14"),
        ];
        let have = vec![
            existing("10.131.0.0/24", "10.200.3.10"), // a: fine
            existing("10.131.1.0/24", "10.200.3.99"), // b: wrong next hop → replaced
            existing("10.131.9.0/24", "10.200.3.50"), // nobody's → deleted
            existing("172.16.0.0/24", "10.200.3.50"), // outside the cluster CIDR: untouched
        ];
        let p = plan_routes(&cluster, &nodes, &have);
        let created: Vec<(&str, &str)> = p
            .create
            .iter()
            .map(|(n, _, r)| (n.as_str(), r.destination_cidr.as_str()))
            .collect();
        assert_eq!(
            created,
            vec![("b", "10.131.1.0/24"), ("c", "10.131.2.0/24")]
        );
        assert_eq!(p.create[0].1, "uid-b");
        assert_eq!(p.create[0].2.target_node, "b");
        let deleted: Vec<&str> = p
            .delete
            .iter()
            .map(|r| r.destination_cidr.as_str())
            .collect();
        assert_eq!(deleted, vec!["10.131.9.0/24"]);
        assert_eq!(p.complete.iter().collect::<Vec<_>>(), vec!["a"]);
        // Everything in place: nothing to do.
        let have: Vec<Route> = vec![
            existing("10.131.0.0/24", "10.200.3.10"),
            existing("10.131.1.0/24", "10.200.3.11"),
            existing("10.131.2.0/24", "10.200.3.12"),
        ];
        let p = plan_routes(&cluster, &nodes, &have);
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert_eq!(p.complete.len(), 3);
    }

    #[test]
    fn network_condition() {
        let mut n = (*node("a", Some("10.131.0.0/24"), "10.0.0.1")).clone();
        let p = network_condition_patch(&n, true).unwrap();
        let c = &p["status"]["conditions"][0];
        assert_eq!(c["type"], "NetworkUnavailable");
        assert_eq!(c["status"], "False");
        assert_eq!(c["reason"], "RouteCreated");
        n.status.as_mut().unwrap().conditions = Some(vec![NodeCondition {
            type_: "NetworkUnavailable".into(),
            status: "False".into(),
            ..Default::default()
        }]);
        assert!(network_condition_patch(&n, true).is_none());
        assert_eq!(
            network_condition_patch(&n, false).unwrap()["status"]["conditions"][0]["reason"],
            "NoRouteCreated"
        );
    }
}
