//! kube-proxy flags and the KubeProxyConfiguration file
//! (`kubeproxy.config.k8s.io/v1alpha1`), with upstream names and defaults.
//! Flags given on the command line win over the file.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use ipnet::Ipv4Net;
use serde::Deserialize;

pub const DEFAULT_HEALTHZ_BIND_ADDRESS: &str = "0.0.0.0:10256";
pub const DEFAULT_METRICS_BIND_ADDRESS: &str = "127.0.0.1:10249";
pub const DEFAULT_SYNC_PERIOD: Duration = Duration::from_secs(30);
pub const DEFAULT_MIN_SYNC_PERIOD: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Parser)]
#[command(
    name = "kube-proxy",
    about = "The Kubernetes network proxy: programs Services into the node's nftables."
)]
pub struct Options {
    /// Path to kubeconfig file with authorization information.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The path to the KubeProxyConfiguration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The address of the Kubernetes API server (overrides the kubeconfig).
    #[arg(long)]
    pub master: Option<String>,
    /// Which proxy mode to use: 'nftables' (default); 'iptables' and 'ipvs'
    /// are not implemented.
    #[arg(long = "proxy-mode")]
    pub proxy_mode: Option<String>,
    /// The CIDR range of the pods in the cluster; traffic to ClusterIPs from
    /// outside it is masqueraded.
    #[arg(long = "cluster-cidr")]
    pub cluster_cidr: Option<String>,
    /// The name of this node (instead of the host name).
    #[arg(long = "hostname-override")]
    pub hostname_override: Option<String>,
    /// CIDRs (or "primary") of the addresses NodePorts are accepted on;
    /// default: the node's IPs.
    #[arg(long = "nodeport-addresses", value_delimiter = ',')]
    pub nodeport_addresses: Option<Vec<String>>,
    /// ip:port of the health check server ("" disables). Default 0.0.0.0:10256.
    #[arg(long = "healthz-bind-address")]
    pub healthz_bind_address: Option<String>,
    /// ip:port of the metrics server ("" disables). Default 127.0.0.1:10249.
    #[arg(long = "metrics-bind-address")]
    pub metrics_bind_address: Option<String>,
    /// Masquerade all traffic sent to ClusterIPs.
    #[arg(long = "masquerade-all", num_args = 0..=1, default_missing_value = "true")]
    pub masquerade_all: Option<bool>,
    /// The mark bit used for packets to masquerade (0-31).
    #[arg(long = "masquerade-bit")]
    pub masquerade_bit: Option<u8>,
    /// Longest time between full syncs of the rules (e.g. 30s).
    #[arg(long = "sync-period", alias = "iptables-sync-period", value_parser = parse_duration)]
    pub sync_period: Option<Duration>,
    /// Shortest time between syncs (e.g. 1s).
    #[arg(long = "min-sync-period", alias = "iptables-min-sync-period", value_parser = parse_duration)]
    pub min_sync_period: Option<Duration>,
    /// Remove kube-proxy's rules and exit.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub cleanup: Option<bool>,
    /// Run the node tools (nft, conntrack) in this network namespace
    /// (`ip netns exec`); for tests.
    #[arg(long, hide = true)]
    pub netns: Option<String>,
    /// Log verbosity.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    component_base::duration::parse(s).map_err(|e| e.to_string())
}

/// KubeProxyConfiguration (the fields kube-proxy uses; the rest are
/// accepted and ignored).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeProxyConfiguration {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub client_connection: Option<ClientConnection>,
    pub hostname_override: Option<String>,
    pub bind_address: Option<String>,
    pub healthz_bind_address: Option<String>,
    pub metrics_bind_address: Option<String>,
    pub mode: Option<String>,
    #[serde(rename = "clusterCIDR")]
    pub cluster_cidr: Option<String>,
    pub node_port_addresses: Option<Vec<String>>,
    pub sync_period: Option<String>,
    pub min_sync_period: Option<String>,
    pub nftables: Option<ModeConfig>,
    pub iptables: Option<ModeConfig>,
    pub conntrack: Option<serde_json::Value>,
    pub detect_local_mode: Option<String>,
    pub detect_local: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConnection {
    pub kubeconfig: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModeConfig {
    pub sync_period: Option<String>,
    pub min_sync_period: Option<String>,
    pub masquerade_all: Option<bool>,
    pub masquerade_bit: Option<i32>,
}

impl KubeProxyConfiguration {
    pub fn parse(text: &str) -> Result<Self> {
        let cfg: KubeProxyConfiguration =
            serde_yaml::from_str(text).context("decoding KubeProxyConfiguration")?;
        if let Some(kind) = &cfg.kind {
            if kind != "KubeProxyConfiguration" {
                bail!("unexpected kind {kind:?}, want KubeProxyConfiguration");
            }
        }
        if let Some(v) = &cfg.api_version {
            if v != "kubeproxy.config.k8s.io/v1alpha1" {
                bail!("unsupported apiVersion {v:?}, want kubeproxy.config.k8s.io/v1alpha1");
            }
        }
        Ok(cfg)
    }
}

/// The effective settings (flags over file over defaults), validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kubeconfig: Option<PathBuf>,
    pub master: Option<String>,
    pub hostname: String,
    pub cluster_cidr: Option<Ipv4Net>,
    /// None: the node's IPs; Some: CIDRs ("primary" adds the node's IPs).
    pub nodeport_cidrs: Option<Vec<Ipv4Net>>,
    pub nodeport_primary: bool,
    pub healthz_bind_address: Option<SocketAddr>,
    pub metrics_bind_address: Option<SocketAddr>,
    pub masquerade_all: bool,
    pub masquerade_bit: u8,
    pub sync_period: Duration,
    pub min_sync_period: Duration,
    pub cleanup: bool,
    pub netns: Option<String>,
}

fn parse_bind(s: &str, what: &str) -> Result<Option<SocketAddr>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(Some(a));
    }
    // An IP alone keeps the default port (as upstream accepts for these flags).
    if let Ok(ip) = s.parse::<IpAddr>() {
        let port = match what {
            "healthz" => 10256,
            _ => 10249,
        };
        return Ok(Some(SocketAddr::new(ip, port)));
    }
    bail!("invalid {what} bind address {s:?}: want ip:port")
}

fn dur(s: Option<&String>) -> Result<Option<Duration>> {
    s.map(|s| component_base::duration::parse(s).map_err(|e| anyhow::anyhow!("{e}")))
        .transpose()
}

impl Options {
    /// Merge flags, config file and defaults.
    pub fn settings(&self) -> Result<Settings> {
        let file = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                KubeProxyConfiguration::parse(&text)
                    .with_context(|| format!("loading {}", p.display()))?
            }
            None => KubeProxyConfiguration::default(),
        };
        let mode = self
            .proxy_mode
            .clone()
            .or(file.mode.clone())
            .unwrap_or_default();
        match mode.as_str() {
            "" | "nftables" => {}
            "iptables" | "ipvs" | "kernelspace" => bail!(
                "proxy mode {mode:?} is not supported by this kube-proxy; use --proxy-mode=nftables"
            ),
            other => bail!("invalid proxy mode {other:?}: want nftables"),
        }
        let nft = file.nftables.clone().unwrap_or_default();
        let hostname = self
            .hostname_override
            .clone()
            .or(file.hostname_override.clone())
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(client_base::hostname)
            .trim()
            .to_lowercase();
        let cluster_cidr = match self
            .cluster_cidr
            .clone()
            .or(file.cluster_cidr.clone())
            .filter(|s| !s.trim().is_empty())
        {
            None => None,
            Some(s) => {
                // Dual-stack lists: use the IPv4 one.
                let mut v4 = None;
                for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    if part.contains(':') {
                        continue;
                    }
                    let n: Ipv4Net = part
                        .parse()
                        .with_context(|| format!("invalid cluster CIDR {part:?}"))?;
                    v4.get_or_insert(n.trunc());
                }
                v4
            }
        };
        let np = self
            .nodeport_addresses
            .clone()
            .or(file.node_port_addresses.clone())
            .unwrap_or_default();
        let mut nodeport_primary = false;
        let mut cidrs = Vec::new();
        for a in np.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            if a == "primary" {
                nodeport_primary = true;
            } else if a.contains(':') {
                continue;
            } else {
                let n: Ipv4Net = a
                    .parse()
                    .with_context(|| format!("invalid --nodeport-addresses entry {a:?}"))?;
                cidrs.push(n.trunc());
            }
        }
        let nodeport_cidrs = if cidrs.is_empty() { None } else { Some(cidrs) };
        let healthz = self
            .healthz_bind_address
            .clone()
            .or(file.healthz_bind_address.clone())
            .unwrap_or_else(|| DEFAULT_HEALTHZ_BIND_ADDRESS.into());
        let metrics = self
            .metrics_bind_address
            .clone()
            .or(file.metrics_bind_address.clone())
            .unwrap_or_else(|| DEFAULT_METRICS_BIND_ADDRESS.into());
        let sync_period = match self.sync_period {
            Some(d) => d,
            None => dur(nft.sync_period.as_ref().or(file.sync_period.as_ref()))?
                .unwrap_or(DEFAULT_SYNC_PERIOD),
        };
        let min_sync_period = match self.min_sync_period {
            Some(d) => d,
            None => dur(nft
                .min_sync_period
                .as_ref()
                .or(file.min_sync_period.as_ref()))?
            .unwrap_or(DEFAULT_MIN_SYNC_PERIOD),
        };
        if sync_period.is_zero() {
            bail!("syncPeriod must be greater than 0");
        }
        if min_sync_period > sync_period {
            bail!(
                "minSyncPeriod ({min_sync_period:?}) must not exceed syncPeriod ({sync_period:?})"
            );
        }
        let masquerade_bit = match self.masquerade_bit {
            Some(b) => i32::from(b),
            None => nft.masquerade_bit.unwrap_or(14),
        };
        if !(0..=31).contains(&masquerade_bit) {
            bail!("masqueradeBit must be between 0 and 31, got {masquerade_bit}");
        }
        Ok(Settings {
            kubeconfig: self.kubeconfig.clone().or_else(|| {
                file.client_connection
                    .as_ref()
                    .and_then(|c| c.kubeconfig.clone())
                    .filter(|s| !s.is_empty())
                    .map(Into::into)
            }),
            master: self.master.clone().filter(|m| !m.is_empty()),
            hostname,
            cluster_cidr,
            nodeport_cidrs,
            nodeport_primary,
            healthz_bind_address: parse_bind(&healthz, "healthz")?,
            metrics_bind_address: parse_bind(&metrics, "metrics")?,
            masquerade_all: self.masquerade_all.or(nft.masquerade_all).unwrap_or(false),
            masquerade_bit: masquerade_bit as u8,
            sync_period,
            min_sync_period,
            cleanup: self.cleanup.unwrap_or(false),
            netns: self.netns.clone().filter(|n| !n.is_empty()),
        })
    }
}

/// Whether `ip` is a usable NodePort address.
pub fn nodeport_ip_ok(ip: &Ipv4Addr) -> bool {
    !ip.is_loopback() && !ip.is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Options {
        let mut v = vec!["kube-proxy"];
        v.extend_from_slice(args);
        Options::parse_from(v)
    }

    #[test]
    fn defaults() {
        let s = opts(&[]).settings().unwrap();
        assert_eq!(
            s.healthz_bind_address,
            Some("0.0.0.0:10256".parse().unwrap())
        );
        assert_eq!(
            s.metrics_bind_address,
            Some("127.0.0.1:10249".parse().unwrap())
        );
        assert_eq!(s.sync_period, Duration::from_secs(30));
        assert_eq!(s.min_sync_period, Duration::from_secs(1));
        assert_eq!(s.masquerade_bit, 14);
        assert!(s.nodeport_cidrs.is_none());
        assert!(!s.hostname.is_empty());
    }

    #[test]
    fn modes() {
        assert!(opts(&["--proxy-mode=nftables"]).settings().is_ok());
        let e = opts(&["--proxy-mode=iptables"]).settings().unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        assert!(opts(&["--proxy-mode=bogus"]).settings().is_err());
    }

    #[test]
    fn flags_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(
            &p,
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n\
             mode: nftables\nclusterCIDR: 10.244.0.0/16\nhostnameOverride: Node-A\n\
             nodePortAddresses: [10.200.0.0/24, primary]\nhealthzBindAddress: 127.0.0.1:0\n\
             metricsBindAddress: \"\"\nconntrack:\n  maxPerCore: 0\n\
             nftables:\n  syncPeriod: 10s\n  minSyncPeriod: 100ms\n  masqueradeAll: true\n",
        )
        .unwrap();
        let s = opts(&["--config", p.to_str().unwrap()]).settings().unwrap();
        assert_eq!(s.hostname, "node-a");
        assert_eq!(s.cluster_cidr, Some("10.244.0.0/16".parse().unwrap()));
        assert_eq!(
            s.nodeport_cidrs,
            Some(vec!["10.200.0.0/24".parse().unwrap()])
        );
        assert!(s.nodeport_primary);
        assert_eq!(s.healthz_bind_address, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(s.metrics_bind_address, None);
        assert_eq!(s.sync_period, Duration::from_secs(10));
        assert_eq!(s.min_sync_period, Duration::from_millis(100));
        assert!(s.masquerade_all);
        // Flags win.
        let s = opts(&[
            "--config",
            p.to_str().unwrap(),
            "--hostname-override=other",
            "--cluster-cidr=10.128.0.0/14,fd00::/64",
            "--min-sync-period=0s",
        ])
        .settings()
        .unwrap();
        assert_eq!(s.hostname, "other");
        assert_eq!(s.cluster_cidr, Some("10.128.0.0/14".parse().unwrap()));
        assert_eq!(s.min_sync_period, Duration::ZERO);
        std::fs::write(&p, "kind: KubeSchedulerConfiguration\n").unwrap();
        assert!(opts(&["--config", p.to_str().unwrap()]).settings().is_err());
    }
}
