//! The `local` provider's `--cloud-config` (YAML or JSON).
//!
//! ```yaml
//! clusterName: dev              # providerID ferrokube://dev/<node>, zone "dev"
//! bridge: fkbr3                 # the cluster bridge: every route goes through it
//! nodeSubnet: 10.200.3.0/24     # node addresses (eth0 in the netns) live here
//! loadBalancerPool: 10.200.3.200-10.200.3.250   # or a CIDR; comma-separated list allowed
//! netnsPrefix: fk-              # node X runs in network namespace fk-X
//! netns: {}                     # explicit node name -> netns name overrides
//! nodeInterface: eth0           # the node's interface inside its netns
//! routeProtocol: 147            # kernel route protocol tagging our routes
//! netnsDir: /run/netns          # where named network namespaces live
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use serde::Deserialize;

use super::pool::IpRanges;

/// The default kernel route protocol number of our routes (unassigned in
/// /etc/iproute2/rt_protos).
pub const DEFAULT_ROUTE_PROTOCOL: u8 = 147;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub cluster_name: Option<String>,
    #[serde(default)]
    pub bridge: Option<String>,
    #[serde(default)]
    pub node_subnet: Option<String>,
    #[serde(default)]
    pub load_balancer_pool: Option<String>,
    #[serde(default)]
    pub netns_prefix: Option<String>,
    #[serde(default)]
    pub netns: BTreeMap<String, String>,
    #[serde(default)]
    pub node_interface: Option<String>,
    #[serde(default)]
    pub route_protocol: Option<u8>,
    #[serde(default)]
    pub netns_dir: Option<PathBuf>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub cluster_name: String,
    pub bridge: String,
    pub node_subnet: Ipv4Net,
    pub pool: Option<IpRanges>,
    pub netns_prefix: String,
    pub netns: BTreeMap<String, String>,
    pub node_interface: String,
    pub route_protocol: u8,
    pub netns_dir: PathBuf,
}

fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && s != "."
        && s != ".."
}

/// Names we accept as (parts of) netns names: what a node name may contain.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        && !s.starts_with('.')
}

impl LocalConfig {
    /// Parses YAML or JSON; `default_cluster` is `--cluster-name`.
    pub fn parse(text: &str, default_cluster: &str) -> Result<LocalConfig> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            serde_yaml::from_str(text).context("parsing the local cloud config")?
        };
        Self::from_raw(raw, default_cluster)
    }

    pub fn from_raw(raw: RawConfig, default_cluster: &str) -> Result<LocalConfig> {
        let cluster_name = raw
            .cluster_name
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| default_cluster.to_string());
        let Some(bridge) = raw.bridge.filter(|s| !s.is_empty()) else {
            bail!("cloud config: bridge is required");
        };
        if !valid_ifname(&bridge) {
            bail!("cloud config: invalid bridge name {bridge:?}");
        }
        let Some(subnet) = raw.node_subnet.filter(|s| !s.is_empty()) else {
            bail!("cloud config: nodeSubnet is required");
        };
        let node_subnet: Ipv4Net = subnet
            .trim()
            .parse()
            .with_context(|| format!("cloud config: invalid nodeSubnet {subnet:?}"))?;
        let node_subnet = node_subnet.trunc();
        let pool = match raw.load_balancer_pool.filter(|s| !s.trim().is_empty()) {
            None => None,
            Some(p) => {
                let r = IpRanges::parse(&p).context("cloud config: loadBalancerPool")?;
                for (a, b) in r.ranges() {
                    if !node_subnet.contains(&Ipv4Addr::from(*a))
                        || !node_subnet.contains(&Ipv4Addr::from(*b))
                    {
                        bail!("cloud config: loadBalancerPool {p:?} is not inside nodeSubnet {node_subnet}");
                    }
                }
                Some(r)
            }
        };
        let netns_prefix = raw.netns_prefix.unwrap_or_else(|| "fk-".into());
        if !netns_prefix.is_empty() && !valid_name(&netns_prefix) {
            bail!("cloud config: invalid netnsPrefix {netns_prefix:?}");
        }
        for (n, ns) in &raw.netns {
            if !valid_name(ns) {
                bail!("cloud config: invalid netns name {ns:?} for node {n:?}");
            }
        }
        let node_interface = raw.node_interface.unwrap_or_else(|| "eth0".into());
        if !valid_ifname(&node_interface) {
            bail!("cloud config: invalid nodeInterface {node_interface:?}");
        }
        let route_protocol = raw.route_protocol.unwrap_or(DEFAULT_ROUTE_PROTOCOL);
        if route_protocol <= 4 {
            bail!("cloud config: routeProtocol {route_protocol} is reserved by the kernel");
        }
        Ok(LocalConfig {
            cluster_name,
            bridge,
            node_subnet,
            pool,
            netns_prefix,
            netns: raw.netns,
            node_interface,
            route_protocol,
            netns_dir: raw.netns_dir.unwrap_or_else(|| "/run/netns".into()),
        })
    }

    /// The netns of node `node` (None for names that cannot be netns names).
    pub fn netns_of(&self, node: &str) -> Option<String> {
        if let Some(ns) = self.netns.get(node) {
            return Some(ns.clone());
        }
        if !valid_name(node) {
            return None;
        }
        let ns = format!("{}{node}", self.netns_prefix);
        (ns.len() <= 255).then_some(ns)
    }

    /// The providerID of node `node`.
    pub fn provider_id(&self, node: &str) -> String {
        format!("ferrokube://{}/{node}", self.cluster_name)
    }

    /// The node name in a providerID of this cluster.
    pub fn node_of_provider_id<'a>(&self, provider_id: &'a str) -> Option<&'a str> {
        let rest = provider_id.strip_prefix("ferrokube://")?;
        let (cluster, node) = rest.split_once('/')?;
        (cluster == self.cluster_name && !node.is_empty()).then_some(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yaml_and_json() {
        let c = LocalConfig::parse(
            "clusterName: dev\nbridge: fkbr3\nnodeSubnet: 10.200.3.0/24\nloadBalancerPool: 10.200.3.200-10.200.3.250\n",
            "kubernetes",
        )
        .unwrap();
        assert_eq!(c.cluster_name, "dev");
        assert_eq!(
            c.netns_of("dev-control-plane").unwrap(),
            "fk-dev-control-plane"
        );
        assert_eq!(c.provider_id("n1"), "ferrokube://dev/n1");
        assert_eq!(c.node_of_provider_id("ferrokube://dev/n1"), Some("n1"));
        assert_eq!(c.node_of_provider_id("ferrokube://other/n1"), None);
        assert_eq!(c.route_protocol, DEFAULT_ROUTE_PROTOCOL);
        assert_eq!(c.pool.as_ref().unwrap().size(), 51);
        let j = LocalConfig::parse(
            r#"{"bridge":"fkbr4","nodeSubnet":"10.200.4.0/24","loadBalancerPool":"10.200.4.192/28","netns":{"a":"custom"}}"#,
            "k",
        )
        .unwrap();
        assert_eq!(j.cluster_name, "k");
        assert_eq!(j.netns_of("a").unwrap(), "custom");
        assert!(j.netns_of("../etc").is_none());
        // Pool outside the subnet, bad bridge, unknown fields.
        assert!(LocalConfig::parse(
            "bridge: b\nnodeSubnet: 10.0.0.0/24\nloadBalancerPool: 10.0.1.0/28",
            "k"
        )
        .is_err());
        assert!(LocalConfig::parse("bridge: 'a b'\nnodeSubnet: 10.0.0.0/24", "k").is_err());
        assert!(LocalConfig::parse("bridge: b\nnodeSubnet: 10.0.0.0/24\nfoo: 1", "k").is_err());
    }
}
