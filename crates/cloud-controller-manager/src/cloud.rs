//! The cloud provider interface, shaped like upstream's
//! `k8s.io/cloud-provider` `Interface`: instances (the InstancesV2 flavour:
//! exists / shutdown / metadata), routes, load balancers and zones. A
//! provider returns `None` for what it does not support.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{LoadBalancerStatus, Node, NodeAddress, Service};

/// Errors with a meaning to the controllers.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The instance does not exist (upstream `cloudprovider.InstanceNotFound`).
    #[error("instance not found")]
    InstanceNotFound,
    /// The feature is implemented by another component (upstream `ImplementedElsewhere`).
    #[error("implemented by alternate to cloud provider")]
    ImplementedElsewhere,
}

/// What the cloud knows about a node's instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceMetadata {
    /// `<provider>://<id>`, stored in `spec.providerID`.
    pub provider_id: String,
    /// `node.kubernetes.io/instance-type`.
    pub instance_type: String,
    /// The node's addresses (InternalIP, ExternalIP, Hostname...).
    pub node_addresses: Vec<NodeAddress>,
    /// `topology.kubernetes.io/zone`.
    pub zone: String,
    /// `topology.kubernetes.io/region`.
    pub region: String,
    /// Extra labels (keys in kubernetes.io / k8s.io namespaces are dropped).
    pub additional_labels: BTreeMap<String, String>,
}

/// A zone (upstream `cloudprovider.Zone`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    pub failure_domain: String,
    pub region: String,
}

/// A route to a node's pod CIDR (upstream `cloudprovider.Route`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Route {
    /// The provider's name of the route (may be empty).
    pub name: String,
    /// The node the route sends traffic to (may be empty when the provider
    /// only knows the next hop: then `target_node_addresses` holds it).
    pub target_node: String,
    /// The node's addresses (the next hop is one of them).
    pub target_node_addresses: Vec<NodeAddress>,
    /// The destination (a node's pod CIDR).
    pub destination_cidr: String,
    /// A route whose target is gone.
    pub blackhole: bool,
}

/// Instances (upstream InstancesV2).
#[async_trait]
pub trait Instances: Send + Sync {
    /// Whether the node's instance exists.
    async fn instance_exists(&self, node: &Node) -> anyhow::Result<bool>;
    /// Whether the node's instance is shut down.
    async fn instance_shutdown(&self, node: &Node) -> anyhow::Result<bool>;
    /// The instance's metadata.
    async fn instance_metadata(&self, node: &Node) -> anyhow::Result<InstanceMetadata>;
}

/// Routes in the cloud network.
#[async_trait]
pub trait Routes: Send + Sync {
    /// Every route this provider manages for the cluster.
    async fn list_routes(&self, cluster_name: &str) -> anyhow::Result<Vec<Route>>;
    /// Creates (or replaces) a route; `name_hint` is the node's UID.
    async fn create_route(
        &self,
        cluster_name: &str,
        name_hint: &str,
        route: &Route,
    ) -> anyhow::Result<()>;
    /// Deletes a route (one returned by `list_routes`).
    async fn delete_route(&self, cluster_name: &str, route: &Route) -> anyhow::Result<()>;
}

/// Load balancers for `type: LoadBalancer` Services.
#[async_trait]
pub trait LoadBalancer: Send + Sync {
    /// The status of the service's load balancer, `None` when it does not exist.
    async fn get_load_balancer(
        &self,
        cluster_name: &str,
        service: &Service,
    ) -> anyhow::Result<Option<LoadBalancerStatus>>;
    /// The provider's name of the service's load balancer.
    fn get_load_balancer_name(&self, _cluster_name: &str, service: &Service) -> String {
        default_load_balancer_name(service)
    }
    /// Creates or updates the load balancer to send traffic to `nodes`.
    async fn ensure_load_balancer(
        &self,
        cluster_name: &str,
        service: &Service,
        nodes: &[Node],
    ) -> anyhow::Result<LoadBalancerStatus>;
    /// Updates the set of nodes the load balancer sends traffic to.
    async fn update_load_balancer(
        &self,
        cluster_name: &str,
        service: &Service,
        nodes: &[Node],
    ) -> anyhow::Result<()>;
    /// Deletes the load balancer (no error when it does not exist).
    async fn ensure_load_balancer_deleted(
        &self,
        cluster_name: &str,
        service: &Service,
    ) -> anyhow::Result<()>;
    /// ferrokube extension: called once, before anything else, with every
    /// Service in the cluster, so a provider that keeps no state of its own
    /// can recover its allocations (from status.loadBalancer.ingress).
    async fn restore(&self, _cluster_name: &str, _services: &[Service]) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Zones.
#[async_trait]
pub trait Zones: Send + Sync {
    /// The zone of the instance this process runs on.
    async fn get_zone(&self) -> anyhow::Result<Zone>;
    async fn get_zone_by_provider_id(&self, provider_id: &str) -> anyhow::Result<Zone>;
    async fn get_zone_by_node_name(&self, node_name: &str) -> anyhow::Result<Zone>;
}

/// A cloud provider (upstream `cloudprovider.Interface`).
pub trait CloudProvider: Send + Sync {
    /// The provider's name (`--cloud-provider`).
    fn provider_name(&self) -> &str;
    fn instances_v2(&self) -> Option<Arc<dyn Instances>>;
    fn routes(&self) -> Option<Arc<dyn Routes>>;
    fn load_balancer(&self) -> Option<Arc<dyn LoadBalancer>>;
    fn zones(&self) -> Option<Arc<dyn Zones>>;
    /// Whether the provider has a cluster id (upstream `HasClusterID`).
    fn has_cluster_id(&self) -> bool {
        true
    }
}

/// Upstream's default load balancer name: "a" + the UID without dashes,
/// at most 32 characters.
pub fn default_load_balancer_name(service: &Service) -> String {
    let uid: String = service
        .metadata
        .uid
        .as_deref()
        .unwrap_or_default()
        .chars()
        .filter(|c| *c != '-')
        .collect();
    let mut name = format!("a{uid}");
    name.truncate(32);
    name
}
