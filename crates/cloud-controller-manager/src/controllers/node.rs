//! The cloud node controller (upstream controllers/node): a node registered
//! with the `node.cloudprovider.kubernetes.io/uninitialized` taint gets its
//! providerID, instance-type / zone / region labels (GA and legacy beta
//! keys) and addresses from the cloud, then loses the taint (event
//! `Synced`). Initialized nodes get their addresses refreshed every
//! `--node-status-update-frequency` and their beta labels reconciled from
//! the GA ones.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use k8s_openapi::api::core::v1::{Node, NodeAddress};
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};

use super::util::{self, UNINITIALIZED_TAINT};
use crate::cloud::{InstanceMetadata, Instances};
use crate::Context;
use client_base::events::{node_ref, EventType, Recorder};
use controller_manager::informers::{Informer, Notification};
use controller_manager::workqueue::{run_workers, WorkQueue};

pub const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
pub const LABEL_INSTANCE_TYPE_BETA: &str = "beta.kubernetes.io/instance-type";
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
pub const LABEL_ZONE_BETA: &str = "failure-domain.beta.kubernetes.io/zone";
pub const LABEL_REGION: &str = "topology.kubernetes.io/region";
pub const LABEL_REGION_BETA: &str = "failure-domain.beta.kubernetes.io/region";
/// The node IP the kubelet was given (--node-ip) under an external cloud provider.
pub const ANNOTATION_PROVIDED_IP: &str = "alpha.kubernetes.io/provided-node-ip";

/// Orders `addrs` so the addresses matching the kubelet's provided node IP(s)
/// come first and are the only ones of their type. Errors when a provided IP
/// is not among the cloud's addresses.
pub fn apply_provided_node_ip(node: &Node, addrs: Vec<NodeAddress>) -> Result<Vec<NodeAddress>> {
    let Some(provided) = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_PROVIDED_IP))
        .filter(|s| !s.is_empty())
    else {
        return Ok(addrs);
    };
    let mut first: Vec<NodeAddress> = Vec::new();
    for ip in provided.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let want: std::net::IpAddr = ip
            .parse()
            .map_err(|_| anyhow!("invalid {ANNOTATION_PROVIDED_IP} {ip:?}"))?;
        let matching: Vec<&NodeAddress> = addrs
            .iter()
            .filter(|a| a.address.parse::<std::net::IpAddr>().ok() == Some(want))
            .collect();
        if matching.is_empty() {
            bail!("failed to get node address from cloud provider that matches ip: {ip}");
        }
        for m in matching {
            if !first.contains(m) {
                first.push(m.clone());
            }
        }
    }
    let types: Vec<String> = first.iter().map(|a| a.type_.clone()).collect();
    let rest: Vec<NodeAddress> = addrs
        .into_iter()
        .filter(|a| !types.contains(&a.type_) && !first.contains(a))
        .collect();
    first.extend(rest);
    Ok(first)
}

/// The addresses the node should have, None when they are what it has.
pub fn desired_addresses(node: &Node, meta: &InstanceMetadata) -> Result<Option<Vec<NodeAddress>>> {
    let mut addrs = meta.node_addresses.clone();
    if addrs.is_empty() {
        return Ok(None);
    }
    let current: Vec<NodeAddress> = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.clone())
        .unwrap_or_default();
    if !addrs.iter().any(|a| a.type_ == "Hostname") {
        addrs.extend(current.iter().filter(|a| a.type_ == "Hostname").cloned());
    }
    let addrs = apply_provided_node_ip(node, addrs)?;
    Ok((addrs != current).then_some(addrs))
}

fn is_kubernetes_label(k: &str) -> bool {
    let prefix = k.split_once('/').map(|(p, _)| p).unwrap_or("");
    ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|d| prefix == *d || prefix.ends_with(&format!(".{d}")))
}

/// The merge patch that initializes an uninitialized node: providerID
/// (only when unset), the cloud labels and every taint but the
/// uninitialized one, conditional on the node's resourceVersion.
pub fn init_patch(node: &Node, meta: &InstanceMetadata) -> Result<Value> {
    // The provided node IP must be valid before the taint goes.
    apply_provided_node_ip(node, meta.node_addresses.clone())?;
    let current_labels = node.metadata.labels.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    if !meta.instance_type.is_empty() {
        labels.insert(LABEL_INSTANCE_TYPE.into(), meta.instance_type.clone());
        labels.insert(LABEL_INSTANCE_TYPE_BETA.into(), meta.instance_type.clone());
    }
    if !meta.zone.is_empty() {
        labels.insert(LABEL_ZONE.into(), meta.zone.clone());
        labels.insert(LABEL_ZONE_BETA.into(), meta.zone.clone());
    }
    if !meta.region.is_empty() {
        labels.insert(LABEL_REGION.into(), meta.region.clone());
        labels.insert(LABEL_REGION_BETA.into(), meta.region.clone());
    }
    for (k, v) in &meta.additional_labels {
        if is_kubernetes_label(k) || current_labels.contains_key(k) {
            continue;
        }
        labels.insert(k.clone(), v.clone());
    }
    let taints: Vec<_> = util::taints(node)
        .into_iter()
        .filter(|t| t.key != UNINITIALIZED_TAINT)
        .collect();
    let mut spec = json!({"taints": taints});
    let has_provider_id = node
        .spec
        .as_ref()
        .and_then(|s| s.provider_id.as_deref())
        .is_some_and(|p| !p.is_empty());
    if !has_provider_id {
        if meta.provider_id.is_empty() {
            bail!(
                "cloud provider does not set node provider ID for node {}",
                util::name(node)
            );
        }
        spec["providerID"] = json!(meta.provider_id);
    }
    Ok(json!({
        "metadata": {
            "resourceVersion": node.metadata.resource_version,
            "labels": labels,
        },
        "spec": spec,
    }))
}

/// The beta labels to (re)set from their GA counterparts on initialized nodes.
pub fn reconcile_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (primary, secondary) in [
        (LABEL_ZONE, LABEL_ZONE_BETA),
        (LABEL_REGION, LABEL_REGION_BETA),
        (LABEL_INSTANCE_TYPE, LABEL_INSTANCE_TYPE_BETA),
    ] {
        if let Some(v) = labels.get(primary) {
            if labels.get(secondary) != Some(v) {
                out.insert(secondary.to_string(), v.clone());
            }
        }
    }
    out
}

async fn patch_addresses(api: &Api<Node>, node: &Node, meta: &InstanceMetadata) -> Result<()> {
    if let Some(addrs) = desired_addresses(node, meta)? {
        let patch = json!({"status": {"addresses": addrs}});
        api.patch_status(
            &util::name(node),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(())
}

struct Controller {
    api: Api<Node>,
    nodes: Informer<Node>,
    instances: Arc<dyn Instances>,
    recorder: Recorder,
}

impl Controller {
    async fn sync(&self, name: &str) -> Result<()> {
        let Some(node) = self.nodes.get(None, name) else {
            return Ok(());
        };
        if !util::has_taint(&node, UNINITIALIZED_TAINT) {
            let labels = node.metadata.labels.clone().unwrap_or_default();
            let fix = reconcile_labels(&labels);
            if !fix.is_empty() {
                let patch = json!({"metadata": {"labels": fix}});
                self.api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            return Ok(());
        }
        tracing::info!("Initializing node {name} with cloud provider");
        let meta = self
            .instances
            .instance_metadata(&node)
            .await
            .map_err(|e| anyhow!("failed to get instance metadata for node {name}: {e:#}"))?;
        let patch = init_patch(&node, &meta)
            .map_err(|e| anyhow!("failed to get node modifiers from cloud provider: {e:#}"))?;
        let updated = self
            .api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        if let Err(e) = patch_addresses(&self.api, &updated, &meta).await {
            tracing::warn!("updating addresses of node {name}: {e:#}");
        }
        tracing::info!("Successfully initialized node {name} with cloud provider");
        let mut r = node_ref(name);
        r.uid = node.metadata.uid.clone();
        self.recorder
            .event(&r, EventType::Normal, "Synced", "Node synced successfully");
        Ok(())
    }

    async fn update_all_addresses(&self) {
        for node in self.nodes.list() {
            if util::has_taint(&node, UNINITIALIZED_TAINT) {
                continue;
            }
            let meta = match self.instances.instance_metadata(&node).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!("instance metadata of node {}: {e:#}", util::name(&node));
                    continue;
                }
            };
            if let Err(e) = patch_addresses(&self.api, &node, &meta).await {
                tracing::warn!("updating addresses of node {}: {e:#}", util::name(&node));
            }
        }
    }
}

/// The cloud node controller.
pub async fn run(ctx: Context) -> Result<()> {
    let Some(instances) = ctx.cloud.instances_v2() else {
        tracing::warn!("cloud-node-controller: the cloud provider does not support instances");
        ctx.stop.cancelled().await;
        return Ok(());
    };
    let nodes = ctx.informers.get::<Node>();
    let mut sub = nodes.subscribe();
    tokio::select! {
        _ = ctx.stop.cancelled() => return Ok(()),
        _ = nodes.wait_synced() => {}
    }
    let c = Arc::new(Controller {
        api: Api::all(ctx.client.clone()),
        nodes: nodes.clone(),
        instances,
        recorder: ctx.recorder("cloud-node-controller"),
    });
    let queue: WorkQueue<String> = WorkQueue::new();
    for n in nodes.list() {
        queue.add(util::name(&n));
    }
    {
        let (queue, stop, nodes) = (queue.clone(), ctx.stop.clone(), nodes.clone());
        tokio::spawn(async move {
            loop {
                let n = tokio::select! {
                    _ = stop.cancelled() => return,
                    n = sub.recv() => n,
                };
                match n {
                    Some(Notification::Added(n)) | Some(Notification::Updated { new: n, .. }) => {
                        queue.add(util::name(&n))
                    }
                    Some(Notification::Deleted(_)) => {}
                    Some(Notification::Resync) => {
                        for n in nodes.list() {
                            queue.add(util::name(&n));
                        }
                    }
                    None => return,
                }
            }
        });
    }
    {
        let (c, stop) = (c.clone(), ctx.stop.clone());
        let period = ctx
            .options
            .node_status_update_frequency
            .max(std::time::Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => c.update_all_addresses().await,
                }
            }
        });
    }
    run_workers(
        queue,
        ctx.options.concurrent_node_syncs,
        ctx.stop.clone(),
        "cloud-node",
        move |name: String| {
            let c = c.clone();
            async move { c.sync(&name).await }
        },
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, Taint};

    fn addr(t: &str, a: &str) -> NodeAddress {
        NodeAddress {
            type_: t.into(),
            address: a.into(),
        }
    }

    fn node() -> Node {
        let mut n = Node::default();
        n.metadata.name = Some("n1".into());
        n.metadata.resource_version = Some("42".into());
        n.metadata.labels = Some(BTreeMap::from([("mine".to_string(), "x".to_string())]));
        n.spec = Some(NodeSpec {
            taints: Some(vec![
                Taint {
                    key: UNINITIALIZED_TAINT.into(),
                    value: Some("true".into()),
                    effect: "NoSchedule".into(),
                    time_added: None,
                },
                Taint {
                    key: "other".into(),
                    effect: "NoExecute".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        });
        n.status = Some(NodeStatus {
            addresses: Some(vec![addr("Hostname", "n1"), addr("InternalIP", "10.0.0.9")]),
            ..Default::default()
        });
        n
    }

    fn meta() -> InstanceMetadata {
        InstanceMetadata {
            provider_id: "ferrokube://c/n1".into(),
            instance_type: "ferrokube-node".into(),
            node_addresses: vec![addr("InternalIP", "10.0.0.10")],
            zone: "c".into(),
            region: "local".into(),
            additional_labels: BTreeMap::from([
                ("node.kubernetes.io/foo".to_string(), "no".to_string()),
                ("example.com/rack".to_string(), "r1".to_string()),
                ("mine".to_string(), "overwritten?".to_string()),
            ]),
        }
    }

    #[test]
    fn init_patch_sets_cloud_fields_and_drops_the_taint() {
        let p = init_patch(&node(), &meta()).unwrap();
        assert_eq!(p["spec"]["providerID"], "ferrokube://c/n1");
        assert_eq!(p["metadata"]["resourceVersion"], "42");
        let l = &p["metadata"]["labels"];
        assert_eq!(l[LABEL_INSTANCE_TYPE], "ferrokube-node");
        assert_eq!(l[LABEL_INSTANCE_TYPE_BETA], "ferrokube-node");
        assert_eq!(l[LABEL_ZONE], "c");
        assert_eq!(l[LABEL_ZONE_BETA], "c");
        assert_eq!(l[LABEL_REGION], "local");
        assert_eq!(l[LABEL_REGION_BETA], "local");
        assert_eq!(l["example.com/rack"], "r1");
        assert!(l.get("node.kubernetes.io/foo").is_none());
        assert!(l.get("mine").is_none());
        let taints = p["spec"]["taints"].as_array().unwrap();
        assert_eq!(taints.len(), 1);
        assert_eq!(taints[0]["key"], "other");
        // An existing providerID is kept.
        let mut n = node();
        n.spec.as_mut().unwrap().provider_id = Some("ferrokube://c/old".into());
        assert!(init_patch(&n, &meta()).unwrap()["spec"]
            .get("providerID")
            .is_none());
        // No providerID anywhere is an error.
        let mut m = meta();
        m.provider_id.clear();
        assert!(init_patch(&node(), &m).is_err());
    }

    #[test]
    fn addresses_keep_hostname_and_honour_the_provided_ip() {
        let d = desired_addresses(&node(), &meta()).unwrap().unwrap();
        assert_eq!(
            d,
            vec![addr("InternalIP", "10.0.0.10"), addr("Hostname", "n1")]
        );
        let mut n = node();
        n.status.as_mut().unwrap().addresses = Some(d.clone());
        assert_eq!(desired_addresses(&n, &meta()).unwrap(), None);
        let mut m = meta();
        m.node_addresses = vec![
            addr("InternalIP", "10.0.0.10"),
            addr("InternalIP", "10.0.0.11"),
            addr("ExternalIP", "1.2.3.4"),
        ];
        n.metadata.annotations = Some(BTreeMap::from([(
            ANNOTATION_PROVIDED_IP.to_string(),
            "10.0.0.11".to_string(),
        )]));
        let d = desired_addresses(&n, &m).unwrap().unwrap();
        assert_eq!(
            d,
            vec![
                addr("InternalIP", "10.0.0.11"),
                addr("ExternalIP", "1.2.3.4"),
                addr("Hostname", "n1")
            ]
        );
        n.metadata.annotations = Some(BTreeMap::from([(
            ANNOTATION_PROVIDED_IP.to_string(),
            "10.9.9.9".to_string(),
        )]));
        assert!(desired_addresses(&n, &m).is_err());
        assert!(init_patch(&n, &m).is_err());
    }

    #[test]
    fn beta_labels_follow_ga_labels() {
        let l = BTreeMap::from([
            (LABEL_ZONE.to_string(), "z".to_string()),
            (LABEL_ZONE_BETA.to_string(), "old".to_string()),
            (LABEL_REGION.to_string(), "r".to_string()),
            (LABEL_REGION_BETA.to_string(), "r".to_string()),
        ]);
        let fix = reconcile_labels(&l);
        assert_eq!(fix.len(), 1);
        assert_eq!(fix[LABEL_ZONE_BETA], "z");
    }
}
