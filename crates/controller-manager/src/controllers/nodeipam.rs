//! Node IPAM controller (upstream pkg/controller/nodeipam, RangeAllocator):
//! with `--allocate-node-cidrs`, every node gets `spec.podCIDR(s)` carved out
//! of `--cluster-cidr` (one per family, `--node-cidr-mask-size[-ipv4|-ipv6]`,
//! defaults /24 and /64); CIDRs already on nodes are honoured, deleted nodes
//! give theirs back; exhaustion is a CIDRNotAvailable event.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::Api;

use crate::informers::Notification;
use crate::ControllerContext;
use client_base::events::{node_ref, EventType};

/// The subnets of one cluster CIDR.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: IpNet,
    mask: u8,
    max: u128,
    used: BTreeSet<u128>,
    next: u128,
}

fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

impl CidrSet {
    pub fn new(cluster: IpNet, mask: u8) -> anyhow::Result<CidrSet> {
        let cluster = cluster.trunc();
        let bits = match cluster {
            IpNet::V4(_) => 32,
            IpNet::V6(_) => 128,
        };
        if mask < cluster.prefix_len() || mask > bits {
            anyhow::bail!("node CIDR mask size /{mask} does not fit cluster CIDR {cluster}");
        }
        if mask - cluster.prefix_len() > 16 {
            anyhow::bail!("the difference between the cluster CIDR {cluster} mask and the node mask /{mask} must be at most 16");
        }
        Ok(CidrSet {
            cluster,
            mask,
            max: 1u128 << (mask - cluster.prefix_len()),
            used: BTreeSet::new(),
            next: 0,
        })
    }

    pub fn is_v6(&self) -> bool {
        matches!(self.cluster, IpNet::V6(_))
    }

    fn subnet(&self, i: u128) -> IpNet {
        let bits: u32 = if self.is_v6() { 128 } else { 32 };
        let base = ip_to_u128(self.cluster.network());
        let addr = base + (i << (bits - self.mask as u32));
        let ip = if self.is_v6() {
            IpAddr::V6(Ipv6Addr::from(addr))
        } else {
            IpAddr::V4(Ipv4Addr::from(addr as u32))
        };
        IpNet::new(ip, self.mask).expect("valid prefix")
    }

    fn index_of(&self, net: &IpNet) -> Option<u128> {
        if net.prefix_len() != self.mask
            || !self.cluster.contains(&net.network())
            || self.is_v6() != matches!(net, IpNet::V6(_))
        {
            return None;
        }
        let bits: u32 = if self.is_v6() { 128 } else { 32 };
        Some(
            (ip_to_u128(net.network()) - ip_to_u128(self.cluster.network()))
                >> (bits - self.mask as u32),
        )
    }

    /// The next free subnet.
    pub fn allocate(&mut self) -> Option<IpNet> {
        for k in 0..self.max {
            let i = (self.next + k) % self.max;
            if !self.used.contains(&i) {
                self.used.insert(i);
                self.next = (i + 1) % self.max;
                return Some(self.subnet(i));
            }
        }
        None
    }

    /// Marks a subnet used (it must be exactly one of ours).
    pub fn occupy(&mut self, net: &IpNet) -> bool {
        match self.index_of(net) {
            Some(i) => {
                self.used.insert(i);
                true
            }
            None => false,
        }
    }

    pub fn release(&mut self, net: &IpNet) {
        if let Some(i) = self.index_of(net) {
            self.used.remove(&i);
        }
    }
}

/// Builds the per-family sets from the flags.
pub fn cidr_sets(
    cluster_cidr: &str,
    mask: Option<u8>,
    mask_v4: Option<u8>,
    mask_v6: Option<u8>,
) -> anyhow::Result<Vec<CidrSet>> {
    let nets: Vec<IpNet> = cluster_cidr
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .map_err(|e| anyhow::anyhow!("invalid --cluster-cidr {s:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    if nets.is_empty() || nets.len() > 2 {
        anyhow::bail!("--cluster-cidr must hold one CIDR or one per IP family");
    }
    nets.iter()
        .map(|n| {
            let m = match n {
                IpNet::V4(_) => mask_v4
                    .or(if nets.len() == 1 { mask } else { None })
                    .unwrap_or(24),
                IpNet::V6(_) => mask_v6
                    .or(if nets.len() == 1 { mask } else { None })
                    .unwrap_or(64),
            };
            CidrSet::new(*n, m)
        })
        .collect()
}

fn node_cidrs(node: &Node) -> Vec<String> {
    let spec = node.spec.as_ref();
    let mut v: Vec<String> = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    if v.is_empty() {
        if let Some(c) = spec
            .and_then(|s| s.pod_cidr.clone())
            .filter(|c| !c.is_empty())
        {
            v.push(c);
        }
    }
    v
}

/// The node IPAM controller ("node-ipam-controller").
pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    if !ctx.options.allocate_node_cidrs {
        tracing::info!(
            "node-ipam-controller: --allocate-node-cidrs is false; not allocating pod CIDRs"
        );
        ctx.stop.cancelled().await;
        return Ok(());
    }
    let Some(cluster) = ctx.options.cluster_cidr.clone().filter(|c| !c.is_empty()) else {
        anyhow::bail!("--allocate-node-cidrs needs --cluster-cidr");
    };
    let mut sets = cidr_sets(
        &cluster,
        ctx.options.node_cidr_mask_size,
        ctx.options.node_cidr_mask_size_ipv4,
        ctx.options.node_cidr_mask_size_ipv6,
    )?;
    let nodes = ctx.informers.get::<Node>();
    let mut sub = nodes.subscribe();
    nodes.wait_synced().await;
    let recorder = ctx.recorder("cidrAllocator");
    let mut owned: HashMap<String, Vec<IpNet>> = HashMap::new();
    for n in nodes.list() {
        let name = n.metadata.name.clone().unwrap_or_default();
        for c in node_cidrs(&n) {
            if let Ok(net) = c.parse::<IpNet>() {
                if sets.iter_mut().any(|s| s.occupy(&net)) {
                    owned.entry(name.clone()).or_default().push(net);
                }
            }
        }
    }
    let api: Api<Node> = Api::all(ctx.client.clone());
    let mut pending: Vec<std::sync::Arc<Node>> = nodes.list();
    let mut retry = tokio::time::interval(std::time::Duration::from_secs(10));
    loop {
        for node in std::mem::take(&mut pending) {
            let name = node.metadata.name.clone().unwrap_or_default();
            if !node_cidrs(&node).is_empty() || node.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if let Some(prev) = owned.get(&name) {
                if prev.len() == sets.len() {
                    // Allocated but the cache hasn't caught up (or the patch failed): re-send.
                    let cidrs: Vec<String> = prev.iter().map(|n| n.to_string()).collect();
                    let _ = patch_cidrs(&api, &name, &cidrs).await;
                    continue;
                }
            }
            let mut got = Vec::new();
            for s in sets.iter_mut() {
                match s.allocate() {
                    Some(n) => got.push(n),
                    None => break,
                }
            }
            if got.len() != sets.len() {
                for (s, n) in sets.iter_mut().zip(&got) {
                    s.release(n);
                }
                recorder.event(
                    &node_ref(&name),
                    EventType::Normal,
                    "CIDRNotAvailable",
                    format!("Node {name} status is now: CIDRNotAvailable"),
                );
                continue;
            }
            let cidrs: Vec<String> = got.iter().map(|n| n.to_string()).collect();
            match patch_cidrs(&api, &name, &cidrs).await {
                Ok(()) => {
                    tracing::info!("node-ipam: set node {name} PodCIDR to {cidrs:?}");
                    owned.insert(name, got);
                }
                Err(e) => {
                    for (s, n) in sets.iter_mut().zip(&got) {
                        s.release(n);
                    }
                    recorder.event(
                        &node_ref(&name),
                        EventType::Warning,
                        "CIDRAssignmentFailed",
                        format!("Node {name} status is now: CIDRAssignmentFailed"),
                    );
                    tracing::info!("node-ipam: patching {name}: {e}");
                }
            }
        }
        tokio::select! {
            _ = ctx.stop.cancelled() => return Ok(()),
            _ = retry.tick() => pending = nodes.list().into_iter().filter(|n| node_cidrs(n).is_empty()).collect(),
            n = sub.recv() => match n {
                Some(Notification::Added(n)) | Some(Notification::Updated { new: n, .. }) => pending.push(n),
                Some(Notification::Deleted(n)) => {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    let mut nets = owned.remove(&name).unwrap_or_default();
                    nets.extend(node_cidrs(&n).iter().filter_map(|c| c.parse::<IpNet>().ok()));
                    for net in nets {
                        // Only release when no other node holds it.
                        if !owned.values().flatten().any(|o| *o == net) {
                            for s in sets.iter_mut() {
                                s.release(&net);
                            }
                        }
                    }
                }
                Some(Notification::Resync) => pending = nodes.list(),
                None => return Ok(()),
            },
        }
    }
}

async fn patch_cidrs(api: &Api<Node>, name: &str, cidrs: &[String]) -> anyhow::Result<()> {
    let patch = serde_json::json!({"spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_and_reuses() {
        let mut s = CidrSet::new("10.244.0.0/22".parse().unwrap(), 24).unwrap();
        assert!(s.occupy(&"10.244.1.0/24".parse().unwrap()));
        assert_eq!(s.allocate().unwrap().to_string(), "10.244.0.0/24");
        assert_eq!(s.allocate().unwrap().to_string(), "10.244.2.0/24");
        assert_eq!(s.allocate().unwrap().to_string(), "10.244.3.0/24");
        assert!(s.allocate().is_none());
        s.release(&"10.244.2.0/24".parse().unwrap());
        assert_eq!(s.allocate().unwrap().to_string(), "10.244.2.0/24");
        assert!(!s.occupy(&"10.245.0.0/24".parse().unwrap()));
    }

    #[test]
    fn dual_stack_flags() {
        let sets = cidr_sets("10.244.0.0/16,fd00:10:244::/56", None, None, None).unwrap();
        assert_eq!(sets.len(), 2);
        let mut v6 = sets[1].clone();
        assert_eq!(v6.allocate().unwrap().to_string(), "fd00:10:244::/64");
        assert_eq!(v6.allocate().unwrap().to_string(), "fd00:10:244:1::/64");
        assert!(cidr_sets("10.0.0.0/8", Some(30), None, None).is_err());
    }
}
