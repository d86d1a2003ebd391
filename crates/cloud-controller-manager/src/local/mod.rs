//! The `local` cloud provider: the host is the cloud.
//!
//! * an instance is a network namespace: node `X` exists iff
//!   `<netnsDir>/<netnsPrefix>X` exists; it is shut down when its
//!   interface (`eth0`) is missing or down; its addresses are the interface's
//!   IPv4 addresses (InternalIP) plus its name (Hostname);
//! * routes are kernel routes in the host's main table on the cluster bridge,
//!   tagged with our route protocol number: `<podCIDR> via <nodeIP>`;
//! * a load balancer is an address from the pool with a host route
//!   `<ip>/32` over the serving nodes (ECMP; `unreachable` when there is none).

pub mod config;
pub mod host;
pub mod pool;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use async_trait::async_trait;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Node, NodeAddress, Service,
};

use crate::cloud::{
    CloudError, CloudProvider, InstanceMetadata, Instances, LoadBalancer, Route, Routes, Zone,
    Zones,
};
pub use config::LocalConfig;
use pool::IpPool;

/// The provider name (`--cloud-provider=local`).
pub const PROVIDER_NAME: &str = "local";
/// The instance type of every node.
pub const INSTANCE_TYPE: &str = "ferrokube-node";
/// The region of every node.
pub const REGION: &str = "local";
/// The finalizer of the service controller (used to recognise services whose
/// addresses must be restored).
const LB_FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";

struct Inner {
    cfg: LocalConfig,
    pool: Option<Mutex<IpPool>>,
}

/// The local provider. Cloning shares it.
#[derive(Clone)]
pub struct LocalCloud {
    inner: Arc<Inner>,
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn svc_owner(svc: &Service) -> String {
    match svc.metadata.uid.as_deref().filter(|u| !u.is_empty()) {
        Some(u) => u.to_string(),
        None => format!(
            "{}/{}",
            svc.metadata.namespace.as_deref().unwrap_or_default(),
            svc.metadata.name.as_deref().unwrap_or_default()
        ),
    }
}

fn ingress_ips(svc: &Service) -> Vec<Ipv4Addr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .map(|i| {
            i.iter()
                .filter_map(|x| x.ip.as_deref())
                .filter_map(|ip| ip.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn lb_status(ip: Ipv4Addr) -> LoadBalancerStatus {
    LoadBalancerStatus {
        ingress: Some(vec![LoadBalancerIngress {
            ip: Some(ip.to_string()),
            ip_mode: Some("VIP".into()),
            ..Default::default()
        }]),
    }
}

/// The IPv4 InternalIP addresses of a node.
pub fn internal_ips(node: &Node) -> Vec<Ipv4Addr> {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .map(|a| {
            a.iter()
                .filter(|a| a.type_ == "InternalIP")
                .filter_map(|a| a.address.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl LocalCloud {
    pub fn new(cfg: LocalConfig) -> LocalCloud {
        let pool = cfg.pool.clone().map(|r| Mutex::new(IpPool::new(r)));
        LocalCloud {
            inner: Arc::new(Inner { cfg, pool }),
        }
    }

    /// Reads `--cloud-config` (None: an empty config, which fails validation).
    pub fn from_file(path: Option<&std::path::Path>, default_cluster: &str) -> Result<LocalCloud> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| anyhow!("reading --cloud-config {}: {e}", p.display()))?,
            None => bail!("the local cloud provider needs --cloud-config"),
        };
        Ok(LocalCloud::new(LocalConfig::parse(&text, default_cluster)?))
    }

    pub fn config(&self) -> &LocalConfig {
        &self.inner.cfg
    }

    fn cfg(&self) -> &LocalConfig {
        &self.inner.cfg
    }

    fn pool(&self) -> Result<std::sync::MutexGuard<'_, IpPool>> {
        let p = self
            .inner
            .pool
            .as_ref()
            .ok_or_else(|| anyhow!("no loadBalancerPool configured"))?;
        Ok(p.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The instance name of a node: from a providerID of ours, else its name.
    /// Errors for a providerID of another provider or cluster.
    fn instance_name(&self, node: &Node) -> Result<String> {
        let name = node.metadata.name.clone().unwrap_or_default();
        match node
            .spec
            .as_ref()
            .and_then(|s| s.provider_id.as_deref())
            .filter(|p| !p.is_empty())
        {
            None => Ok(name),
            Some(p) => match self.cfg().node_of_provider_id(p) {
                Some(n) => Ok(n.to_string()),
                None => bail!("providerID {p:?} of node {name} does not belong to this cloud"),
            },
        }
    }

    fn netns(&self, node_name: &str) -> Result<String> {
        self.cfg()
            .netns_of(node_name)
            .ok_or_else(|| anyhow!("node name {node_name:?} cannot name a network namespace"))
    }

    fn exists(&self, node_name: &str) -> Result<bool> {
        let ns = self.netns(node_name)?;
        Ok(host::netns_exists(&self.cfg().netns_dir, &ns))
    }

    /// The node's IPv4 addresses on its interface, inside the node subnet.
    async fn node_ips(&self, node_name: &str) -> Result<Option<host::Iface>> {
        let ns = self.netns(node_name)?;
        if !host::netns_exists(&self.cfg().netns_dir, &ns) {
            return Err(CloudError::InstanceNotFound.into());
        }
        let iface = host::netns_iface(&ns, &self.cfg().node_interface).await?;
        Ok(iface.map(|mut i| {
            i.ipv4.retain(|ip| self.cfg().node_subnet.contains(ip));
            i
        }))
    }

    /// The next hop to a node: an InternalIP inside the node subnet, from the
    /// route's addresses or the node's netns.
    async fn next_hop(&self, route: &Route) -> Result<Ipv4Addr> {
        let subnet = self.cfg().node_subnet;
        if let Some(ip) = route
            .target_node_addresses
            .iter()
            .filter(|a| a.type_ == "InternalIP")
            .filter_map(|a| a.address.parse::<Ipv4Addr>().ok())
            .find(|ip| subnet.contains(ip))
        {
            return Ok(ip);
        }
        if route.target_node.is_empty() {
            bail!("route to {} has no target node", route.destination_cidr);
        }
        match self.node_ips(&route.target_node).await? {
            Some(i) if !i.ipv4.is_empty() => Ok(i.ipv4[0]),
            _ => bail!(
                "node {} has no address in {subnet} on {}",
                route.target_node,
                self.cfg().node_interface
            ),
        }
    }

    fn route_dst(&self, cidr: &str) -> Result<Ipv4Net> {
        let dst: Ipv4Net = cidr
            .trim()
            .parse()
            .map_err(|_| anyhow!("unsupported route destination {cidr:?} (IPv4 CIDRs only)"))?;
        let dst = dst.trunc();
        if overlaps(&dst, &self.cfg().node_subnet) {
            bail!(
                "refusing a route to {dst}: it overlaps the node subnet {}",
                self.cfg().node_subnet
            );
        }
        Ok(dst)
    }

    fn is_lb_route(&self, dst: &Ipv4Net) -> bool {
        dst.prefix_len() == 32
            && self
                .cfg()
                .pool
                .as_ref()
                .is_some_and(|p| p.contains(dst.addr()))
    }

    /// The next hops of a load balancer: the nodes' InternalIPs in the subnet.
    fn lb_hops(&self, nodes: &[Node]) -> Vec<Ipv4Addr> {
        let mut hops: Vec<Ipv4Addr> = nodes
            .iter()
            .flat_map(internal_ips)
            .filter(|ip| self.cfg().node_subnet.contains(ip))
            .collect();
        hops.sort();
        hops.dedup();
        hops
    }

    async fn install_lb_route(&self, ip: Ipv4Addr, nodes: &[Node]) -> Result<()> {
        let hops = self.lb_hops(nodes);
        host::replace_route(
            Ipv4Net::from(ip),
            &hops,
            &self.cfg().bridge,
            self.cfg().route_protocol,
        )
        .await
    }
}

impl CloudProvider for LocalCloud {
    fn provider_name(&self) -> &str {
        PROVIDER_NAME
    }
    fn instances_v2(&self) -> Option<Arc<dyn Instances>> {
        Some(Arc::new(self.clone()))
    }
    fn routes(&self) -> Option<Arc<dyn Routes>> {
        Some(Arc::new(self.clone()))
    }
    fn load_balancer(&self) -> Option<Arc<dyn LoadBalancer>> {
        self.inner
            .pool
            .is_some()
            .then(|| Arc::new(self.clone()) as Arc<dyn LoadBalancer>)
    }
    fn zones(&self) -> Option<Arc<dyn Zones>> {
        Some(Arc::new(self.clone()))
    }
}

#[async_trait]
impl Instances for LocalCloud {
    async fn instance_exists(&self, node: &Node) -> Result<bool> {
        let name = self.instance_name(node)?;
        self.exists(&name)
    }

    async fn instance_shutdown(&self, node: &Node) -> Result<bool> {
        let name = self.instance_name(node)?;
        match self.node_ips(&name).await {
            Ok(Some(i)) => Ok(!i.up),
            Ok(None) => Ok(true),
            Err(e) => Err(e),
        }
    }

    async fn instance_metadata(&self, node: &Node) -> Result<InstanceMetadata> {
        let name = self.instance_name(node)?;
        let iface = self.node_ips(&name).await?;
        let mut addrs: Vec<NodeAddress> = iface
            .map(|i| i.ipv4)
            .unwrap_or_default()
            .into_iter()
            .map(|ip| NodeAddress {
                type_: "InternalIP".into(),
                address: ip.to_string(),
            })
            .collect();
        addrs.push(NodeAddress {
            type_: "Hostname".into(),
            address: node.metadata.name.clone().unwrap_or(name.clone()),
        });
        Ok(InstanceMetadata {
            provider_id: self.cfg().provider_id(&name),
            instance_type: INSTANCE_TYPE.into(),
            node_addresses: addrs,
            zone: self.cfg().cluster_name.clone(),
            region: REGION.into(),
            additional_labels: Default::default(),
        })
    }
}

#[async_trait]
impl Zones for LocalCloud {
    async fn get_zone(&self) -> Result<Zone> {
        Ok(Zone {
            failure_domain: self.cfg().cluster_name.clone(),
            region: REGION.into(),
        })
    }
    async fn get_zone_by_provider_id(&self, provider_id: &str) -> Result<Zone> {
        if self.cfg().node_of_provider_id(provider_id).is_none() {
            return Err(CloudError::InstanceNotFound.into());
        }
        self.get_zone().await
    }
    async fn get_zone_by_node_name(&self, _node_name: &str) -> Result<Zone> {
        self.get_zone().await
    }
}

#[async_trait]
impl Routes for LocalCloud {
    async fn list_routes(&self, _cluster_name: &str) -> Result<Vec<Route>> {
        let bridge = &self.cfg().bridge;
        let routes = host::list_routes(self.cfg().route_protocol).await?;
        Ok(routes
            .into_iter()
            .filter(|r| !self.is_lb_route(&r.dst) && !overlaps(&r.dst, &self.cfg().node_subnet))
            .filter(|r| !r.hops.is_empty() && r.hops.iter().all(|(_, d)| d == bridge))
            .map(|r| Route {
                name: r.dst.to_string(),
                target_node: String::new(),
                target_node_addresses: r
                    .hops
                    .iter()
                    .map(|(ip, _)| NodeAddress {
                        type_: "InternalIP".into(),
                        address: ip.to_string(),
                    })
                    .collect(),
                destination_cidr: r.dst.to_string(),
                blackhole: false,
            })
            .collect())
    }

    async fn create_route(
        &self,
        _cluster_name: &str,
        _name_hint: &str,
        route: &Route,
    ) -> Result<()> {
        let dst = self.route_dst(&route.destination_cidr)?;
        if self.is_lb_route(&dst) {
            bail!("refusing a route to {dst}: it is in the load balancer pool");
        }
        let via = self.next_hop(route).await?;
        host::replace_route(dst, &[via], &self.cfg().bridge, self.cfg().route_protocol).await
    }

    async fn delete_route(&self, _cluster_name: &str, route: &Route) -> Result<()> {
        let dst = self.route_dst(&route.destination_cidr)?;
        if self.is_lb_route(&dst) {
            bail!("refusing to delete {dst}: it is a load balancer route");
        }
        host::delete_route(dst, self.cfg().route_protocol).await
    }
}

#[async_trait]
impl LoadBalancer for LocalCloud {
    async fn get_load_balancer(
        &self,
        _cluster_name: &str,
        service: &Service,
    ) -> Result<Option<LoadBalancerStatus>> {
        Ok(self.pool()?.get(&svc_owner(service)).map(lb_status))
    }

    async fn ensure_load_balancer(
        &self,
        _cluster_name: &str,
        service: &Service,
        nodes: &[Node],
    ) -> Result<LoadBalancerStatus> {
        let requested = match service
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_ip.as_deref())
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => Some(
                s.parse::<Ipv4Addr>()
                    .map_err(|_| anyhow!("invalid spec.loadBalancerIP {s:?}"))?,
            ),
        };
        let ip = self
            .pool()?
            .assign(&svc_owner(service), requested, &ingress_ips(service))?;
        self.install_lb_route(ip, nodes).await?;
        Ok(lb_status(ip))
    }

    async fn update_load_balancer(
        &self,
        _cluster_name: &str,
        service: &Service,
        nodes: &[Node],
    ) -> Result<()> {
        let ip = self
            .pool()?
            .get(&svc_owner(service))
            .ok_or_else(|| anyhow!("the load balancer does not exist"))?;
        self.install_lb_route(ip, nodes).await
    }

    async fn ensure_load_balancer_deleted(
        &self,
        _cluster_name: &str,
        service: &Service,
    ) -> Result<()> {
        let ips: Vec<Ipv4Addr> = {
            let mut pool = self.pool()?;
            let mut ips: Vec<Ipv4Addr> = pool.release(&svc_owner(service)).into_iter().collect();
            for ip in ingress_ips(service) {
                if pool.contains(ip) && pool.owner_of(ip).is_none() && !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
            ips
        };
        for ip in ips {
            host::delete_route(Ipv4Net::from(ip), self.cfg().route_protocol).await?;
        }
        Ok(())
    }

    async fn restore(&self, _cluster_name: &str, services: &[Service]) -> Result<()> {
        {
            let mut pool = self.pool()?;
            for svc in services {
                let spec = svc.spec.as_ref();
                let wants = spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
                    && spec.and_then(|s| s.load_balancer_class.as_ref()).is_none();
                let ours = svc
                    .metadata
                    .finalizers
                    .as_ref()
                    .is_some_and(|f| f.iter().any(|x| x == LB_FINALIZER));
                if !(wants || ours) {
                    continue;
                }
                for ip in ingress_ips(svc) {
                    if pool.reserve(&svc_owner(svc), ip) {
                        break;
                    }
                }
            }
        }
        // Routes of ours to pool addresses nobody holds are leftovers.
        let routes = host::list_routes(self.cfg().route_protocol).await?;
        for r in routes.iter().filter(|r| self.is_lb_route(&r.dst)) {
            let held = self.pool()?.owner_of(r.dst.addr()).is_some();
            if !held {
                tracing::info!("removing stale load balancer route {}", r.dst);
                host::delete_route(r.dst, self.cfg().route_protocol).await?;
            }
        }
        Ok(())
    }
}
