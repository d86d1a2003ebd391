//! `ferrokube create cluster --config FILE`: a kind-style cluster config
//! (`kind: Cluster`, `apiVersion: kind.x-k8s.io/v1alpha4`), so a kind config
//! of nodes with roles, labels and port mappings works unchanged. ferrokube
//! adds `taints` on nodes. Fields kind has but that mean nothing here
//! (`image`, `extraMounts`, `kubeadmConfigPatches`, ...) are accepted and
//! ignored with a warning; anything else is an error.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::state::NodeRole;

pub const API_VERSION: &str = "kind.x-k8s.io/v1alpha4";
pub const MAX_NODES: usize = crate::net::MAX_NODES as usize;

/// kind fields accepted and ignored (no container images or kubeadm here).
const IGNORED_NODE_FIELDS: &[&str] = &["image", "extraMounts", "kubeadmConfigPatches"];
const IGNORED_CLUSTER_FIELDS: &[&str] = &[
    "kubeadmConfigPatches",
    "kubeadmConfigPatchesJSON6902",
    "containerdConfigPatches",
    "containerdConfigPatchesJSON6902",
    "featureGates",
    "runtimeConfig",
];

/// A node as the config declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfig {
    pub role: NodeRole,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `key[=value]:Effect`, as the kubelet's --register-with-taints.
    #[serde(default)]
    pub taints: Vec<String>,
    #[serde(default)]
    pub extra_port_mappings: Vec<PortMapping>,
}

/// kind's extraPortMappings: a host port forwarded to a port on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub container_port: u16,
    pub host_port: u16,
    #[serde(default = "default_listen")]
    pub listen_address: String,
    #[serde(default = "default_protocol")]
    pub protocol: String,
}

fn default_listen() -> String {
    "0.0.0.0".into()
}
fn default_protocol() -> String {
    "TCP".into()
}

/// The parsed config: nodes (control plane first) and the warnings to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub name: Option<String>,
    pub nodes: Vec<NodeConfig>,
    pub warnings: Vec<String>,
}

impl ClusterConfig {
    /// `--nodes N`: one control-plane node and N-1 workers.
    pub fn with_nodes(total: usize) -> Result<ClusterConfig> {
        if total == 0 || total > MAX_NODES {
            bail!("--nodes must be between 1 and {MAX_NODES}");
        }
        let mut nodes = vec![NodeConfig::new(NodeRole::ControlPlane)];
        nodes.extend((1..total).map(|_| NodeConfig::new(NodeRole::Worker)));
        Ok(ClusterConfig {
            name: None,
            nodes,
            warnings: vec![],
        })
    }

    pub fn load(path: &Path) -> Result<ClusterConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading cluster config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid cluster config {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<ClusterConfig> {
        let v: serde_yaml::Value = serde_yaml::from_str(text).context("not YAML")?;
        let map = v
            .as_mapping()
            .context("expected a mapping at the top level")?;
        let mut warnings = Vec::new();
        let mut name = None;
        let mut nodes = Vec::new();
        let mut kind_ok = false;
        let mut version_ok = false;
        for (k, val) in map {
            let key = k.as_str().context("non-string key")?;
            match key {
                "kind" => {
                    kind_ok = val.as_str() == Some("Cluster");
                    if !kind_ok {
                        bail!("kind must be \"Cluster\", not {val:?}");
                    }
                }
                "apiVersion" => {
                    version_ok = val.as_str() == Some(API_VERSION);
                    if !version_ok {
                        bail!("apiVersion must be {API_VERSION:?}, not {val:?}");
                    }
                }
                "name" => {
                    name = Some(val.as_str().context("name must be a string")?.to_string());
                }
                "nodes" => {
                    let list = val.as_sequence().context("nodes must be a list")?;
                    for (i, n) in list.iter().enumerate() {
                        nodes.push(
                            parse_node(n, &mut warnings).with_context(|| format!("nodes[{i}]"))?,
                        );
                    }
                }
                "networking" => parse_networking(val, &mut warnings)?,
                k if IGNORED_CLUSTER_FIELDS.contains(&k) => {
                    warnings.push(format!("ignoring {k}: it has no meaning for ferrokube"))
                }
                other => bail!("unknown field {other:?}"),
            }
        }
        if !kind_ok || !version_ok {
            bail!("kind: Cluster and apiVersion: {API_VERSION} are required");
        }
        if nodes.is_empty() {
            nodes.push(NodeConfig::new(NodeRole::ControlPlane));
        }
        let cps = nodes
            .iter()
            .filter(|n| n.role == NodeRole::ControlPlane)
            .count();
        if cps != 1 {
            bail!("exactly one control-plane node is supported, the config has {cps}");
        }
        // The control plane comes first, as kind orders them.
        nodes.sort_by_key(|n| n.role != NodeRole::ControlPlane);
        if nodes.len() > MAX_NODES {
            bail!("at most {MAX_NODES} nodes are supported");
        }
        let mut host_ports = std::collections::BTreeSet::new();
        for m in nodes.iter().flat_map(|n| &n.extra_port_mappings) {
            if !host_ports.insert((m.host_port, m.protocol.clone())) {
                bail!("host port {} ({}) is mapped twice", m.host_port, m.protocol);
            }
        }
        Ok(ClusterConfig {
            name,
            nodes,
            warnings,
        })
    }
}

impl NodeConfig {
    pub fn new(role: NodeRole) -> NodeConfig {
        NodeConfig {
            role,
            labels: BTreeMap::new(),
            taints: vec![],
            extra_port_mappings: vec![],
        }
    }
}

fn parse_node(v: &serde_yaml::Value, warnings: &mut Vec<String>) -> Result<NodeConfig> {
    let map = v.as_mapping().context("a node must be a mapping")?;
    let mut clean = serde_yaml::Mapping::new();
    for (k, val) in map {
        let key = k.as_str().context("non-string key")?;
        match key {
            "role" | "labels" | "taints" | "extraPortMappings" => {
                clean.insert(k.clone(), val.clone());
            }
            k if IGNORED_NODE_FIELDS.contains(&k) => warnings.push(format!(
                "ignoring node field {k}: it has no meaning for ferrokube"
            )),
            other => bail!("unknown node field {other:?}"),
        }
    }
    if !clean.contains_key("role") {
        clean.insert("role".into(), "control-plane".into());
    }
    let n: NodeConfig = serde_yaml::from_value(serde_yaml::Value::Mapping(clean))?;
    for t in &n.taints {
        let ok = t.rsplit_once(':').is_some_and(|(k, e)| {
            !k.is_empty() && matches!(e, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        });
        if !ok {
            bail!(
                "invalid taint {t:?}: expected key[=value]:NoSchedule|PreferNoSchedule|NoExecute"
            );
        }
    }
    for m in &n.extra_port_mappings {
        if m.host_port == 0 || m.container_port == 0 {
            bail!("extraPortMappings need a containerPort and a hostPort");
        }
        if m.protocol != "TCP" {
            bail!(
                "extraPortMappings: only TCP is supported, not {}",
                m.protocol
            );
        }
        m.listen_address
            .parse::<std::net::IpAddr>()
            .with_context(|| format!("invalid listenAddress {:?}", m.listen_address))?;
    }
    Ok(n)
}

/// `networking`: the pod and service subnets are fixed per cluster (they
/// derive from the cluster's index so clusters run side by side), so only
/// the values ferrokube would pick anyway are accepted.
fn parse_networking(v: &serde_yaml::Value, warnings: &mut Vec<String>) -> Result<()> {
    let map = v.as_mapping().context("networking must be a mapping")?;
    for (k, val) in map {
        let key = k.as_str().context("non-string key")?;
        match key {
            "ipFamily" => {
                if val.as_str() != Some("ipv4") {
                    bail!("networking.ipFamily: only ipv4 is supported");
                }
            }
            "serviceSubnet" => {
                if val.as_str() != Some(crate::pki::SERVICE_CIDR) {
                    bail!(
                        "networking.serviceSubnet: only {} is supported",
                        crate::pki::SERVICE_CIDR
                    );
                }
            }
            "podSubnet" | "apiServerAddress" | "apiServerPort" | "kubeProxyMode"
            | "disableDefaultCNI" | "dnsSearch" => warnings.push(format!(
                "ignoring networking.{key}: ferrokube picks it per cluster"
            )),
            other => bail!("unknown field networking.{other}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_config() {
        let c = ClusterConfig::parse(
            r#"
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: worker
  labels: {tier: backend}
  taints: ["dedicated=db:NoSchedule"]
- role: control-plane
  image: kindest/node:v1.33.0
  extraPortMappings:
  - containerPort: 30080
    hostPort: 8080
"#,
        )
        .unwrap();
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.nodes[0].role, NodeRole::ControlPlane);
        assert_eq!(c.nodes[0].extra_port_mappings[0].host_port, 8080);
        assert_eq!(c.nodes[0].extra_port_mappings[0].listen_address, "0.0.0.0");
        assert_eq!(c.nodes[1].labels["tier"], "backend");
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn bad_configs() {
        for (text, want) in [
            ("kind: Pod\napiVersion: kind.x-k8s.io/v1alpha4\n", "kind must be"),
            ("kind: Cluster\napiVersion: v1\n", "apiVersion must be"),
            (
                "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodez: []\n",
                "unknown field \"nodez\"",
            ),
            (
                "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes: [{role: worker}]\n",
                "exactly one control-plane",
            ),
            (
                "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes: [{role: control-plane, taints: [\"x\"]}]\n",
                "invalid taint",
            ),
            (
                "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes: [{role: boss}]\n",
                "unknown variant",
            ),
        ] {
            let e = format!("{:#}", ClusterConfig::parse(text).unwrap_err());
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn nodes_shortcut() {
        let c = ClusterConfig::with_nodes(3).unwrap();
        assert_eq!(c.nodes.len(), 3);
        assert_eq!(c.nodes[0].role, NodeRole::ControlPlane);
        assert!(ClusterConfig::with_nodes(0).is_err());
    }
}
