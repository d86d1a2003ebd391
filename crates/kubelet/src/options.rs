//! Command-line flags (upstream names) and the KubeletConfiguration file
//! (`kubelet.config.k8s.io/v1beta1`, upstream field names). Flags override
//! the file; [`Options::resolve`] merges both with upstream defaults into a
//! [`KubeletConfig`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use k8s_openapi::api::core::v1::Taint;
use serde::{Deserialize, Serialize};

/// The kubelet's flags.
#[derive(Parser, Debug, Clone, Default)]
#[command(
    name = "kubelet",
    about = "The node agent: runs the pods bound to this node in a CRI runtime."
)]
pub struct Options {
    /// Path to a kubeconfig file, specifying how to connect to the API server.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The Kubelet will load its initial configuration from this file (a KubeletConfiguration).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// If non-empty, will use this string as identification instead of the actual hostname.
    #[arg(long = "hostname-override")]
    pub hostname_override: Option<String>,
    /// IP address (or comma-separated dual-stack IP addresses) of the node.
    #[arg(long = "node-ip")]
    pub node_ip: Option<String>,
    /// The endpoint of the remote runtime service (unix:///path).
    #[arg(long = "container-runtime-endpoint")]
    pub container_runtime_endpoint: Option<String>,
    /// Directory path for managing kubelet files (volume mounts, etc).
    #[arg(long = "root-dir")]
    pub root_dir: Option<PathBuf>,
    /// Path to the directory containing static pod files to run.
    #[arg(long = "pod-manifest-path")]
    pub pod_manifest_path: Option<PathBuf>,
    /// Optional root cgroup to use for pods.
    #[arg(long = "cgroup-root")]
    pub cgroup_root: Option<String>,
    /// Number of Pods that can run on this Kubelet.
    #[arg(long = "max-pods")]
    pub max_pods: Option<i32>,
    /// Labels to add when registering the node in the cluster (key=value pairs separated by ',').
    #[arg(long = "node-labels", value_delimiter = ',')]
    pub node_labels: Vec<String>,
    /// Register the node with the given list of taints ("<key>=<value>:<effect>", comma-separated).
    #[arg(long = "register-with-taints", value_delimiter = ',')]
    pub register_with_taints: Vec<String>,
    /// The provider for cloud services: "" (none) or "external" (a
    /// cloud-controller-manager initializes the node; it registers with the
    /// node.cloudprovider.kubernetes.io/uninitialized taint).
    #[arg(long = "cloud-provider", default_value = "")]
    pub cloud_provider: String,
    /// Comma-separated list of DNS server IP addresses for the pods.
    #[arg(long = "cluster-dns", value_delimiter = ',')]
    pub cluster_dns: Vec<String>,
    /// Domain for this cluster; containers search it in addition to the host's search domains.
    #[arg(long = "cluster-domain")]
    pub cluster_domain: Option<String>,
    /// File containing x509 Certificate for HTTPS.
    #[arg(long = "tls-cert-file")]
    pub tls_cert_file: Option<PathBuf>,
    /// File containing x509 private key matching --tls-cert-file.
    #[arg(long = "tls-private-key-file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Clients presenting a certificate signed by one of the authorities in this file are authenticated.
    #[arg(long = "client-ca-file")]
    pub client_ca_file: Option<PathBuf>,
    /// The port for the Kubelet to serve on.
    #[arg(long)]
    pub port: Option<u16>,
    /// The IP address for the Kubelet to serve on.
    #[arg(long)]
    pub address: Option<String>,
    /// Number for the log level verbosity.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,
}

/// The subset of `KubeletConfiguration` (kubelet.config.k8s.io/v1beta1) the
/// kubelet honours. Unknown fields are ignored, as upstream does for lenient
/// decoding of fields it does not use.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubeletConfiguration {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub address: Option<String>,
    pub port: Option<u16>,
    pub tls_cert_file: Option<String>,
    pub tls_private_key_file: Option<String>,
    pub authentication: Option<Authentication>,
    pub cgroup_root: Option<String>,
    #[serde(rename = "clusterDNS")]
    pub cluster_dns: Option<Vec<String>>,
    pub cluster_domain: Option<String>,
    pub static_pod_path: Option<String>,
    pub max_pods: Option<i32>,
    pub pod_logs_dir: Option<String>,
    pub container_runtime_endpoint: Option<String>,
    pub node_status_update_frequency: Option<String>,
    pub node_status_report_frequency: Option<String>,
    pub node_lease_duration_seconds: Option<i32>,
    pub register_with_taints: Option<Vec<Taint>>,
    #[serde(rename = "imageGCHighThresholdPercent")]
    pub image_gc_high_threshold_percent: Option<i32>,
    #[serde(rename = "imageGCLowThresholdPercent")]
    pub image_gc_low_threshold_percent: Option<i32>,
    pub healthz_port: Option<i32>,
    pub healthz_bind_address: Option<String>,
    pub sync_frequency: Option<String>,
    pub eviction_hard: Option<BTreeMap<String, String>>,
    pub resolv_conf: Option<String>,
    pub serialize_image_pulls: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    pub x509: Option<X509Authentication>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct X509Authentication {
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: Option<String>,
}

/// The taint a node registers with under an external cloud provider,
/// removed by the cloud-controller-manager once it initialized the node.
pub const UNINITIALIZED_TAINT: &str = "node.cloudprovider.kubernetes.io/uninitialized";

/// The effective configuration: flags over file over upstream defaults.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub kubeconfig: Option<PathBuf>,
    /// The node name (hostname-override, else the host name, lower-cased).
    pub node_name: String,
    /// The host name reported in the Hostname address.
    pub hostname: String,
    pub node_ips: Vec<IpAddr>,
    pub container_runtime_endpoint: String,
    pub root_dir: PathBuf,
    pub pod_manifest_path: Option<PathBuf>,
    /// The cgroup under which the kubepods hierarchy lives ("" = root).
    pub cgroup_root: String,
    pub max_pods: i32,
    pub node_labels: BTreeMap<String, String>,
    pub register_with_taints: Vec<Taint>,
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    pub pod_logs_dir: PathBuf,
    pub resolv_conf: Option<PathBuf>,
    pub address: IpAddr,
    pub port: u16,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    pub healthz_port: u16,
    pub healthz_bind_address: IpAddr,
    pub node_status_update_frequency: Duration,
    pub node_status_report_frequency: Duration,
    pub node_lease_duration_seconds: i32,
    pub sync_frequency: Duration,
    pub image_gc_high_threshold_percent: i32,
    pub image_gc_low_threshold_percent: i32,
    pub eviction_hard: BTreeMap<String, String>,
    pub serialize_image_pulls: bool,
    pub verbosity: u8,
}

impl KubeletConfiguration {
    /// Parses a KubeletConfiguration from YAML or JSON text.
    pub fn parse(text: &str) -> Result<Self> {
        let cfg: KubeletConfiguration = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).context("parsing KubeletConfiguration JSON")?
        } else {
            serde_yaml::from_str(text).context("parsing KubeletConfiguration YAML")?
        };
        if let Some(kind) = &cfg.kind {
            if kind != "KubeletConfiguration" {
                bail!("config file has kind {kind:?}, expected KubeletConfiguration");
            }
        }
        if let Some(av) = &cfg.api_version {
            if av != "kubelet.config.k8s.io/v1beta1" && av != "kubelet.config.k8s.io/v1" {
                bail!("config file has unsupported apiVersion {av:?}");
            }
        }
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading kubelet config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }
}

impl Options {
    /// Merges flags, the config file (if any) and defaults.
    pub fn resolve(&self) -> Result<KubeletConfig> {
        let file = match &self.config {
            Some(p) => KubeletConfiguration::load(p)?,
            None => KubeletConfiguration::default(),
        };
        self.resolve_with(file)
    }

    /// Like [`Options::resolve`] with an already parsed file.
    pub fn resolve_with(&self, file: KubeletConfiguration) -> Result<KubeletConfig> {
        let host = system_hostname();
        let node_name = self
            .hostname_override
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| host.clone())
            .trim()
            .to_lowercase();
        if node_name.is_empty() {
            bail!("cannot determine the node name: set --hostname-override");
        }
        let hostname = if self.hostname_override.is_some() {
            node_name.clone()
        } else {
            host.to_lowercase()
        };

        let node_ips = match &self.node_ip {
            Some(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<IpAddr>()
                        .with_context(|| format!("invalid --node-ip {s:?}"))
                })
                .collect::<Result<Vec<_>>>()?,
            None => vec![],
        };

        let dns_strings: Vec<String> = if !self.cluster_dns.is_empty() {
            self.cluster_dns.clone()
        } else {
            file.cluster_dns.clone().unwrap_or_default()
        };
        let cluster_dns = dns_strings
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpAddr>()
                    .with_context(|| format!("invalid cluster DNS address {s:?}"))
            })
            .collect::<Result<Vec<_>>>()?;

        let mut node_labels = BTreeMap::new();
        for l in &self.node_labels {
            let l = l.trim();
            if l.is_empty() {
                continue;
            }
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            node_labels.insert(k.trim().to_string(), v.trim().to_string());
        }

        let mut register_with_taints = if !self.register_with_taints.is_empty() {
            self.register_with_taints
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| parse_taint(s))
                .collect::<Result<Vec<_>>>()?
        } else {
            file.register_with_taints.clone().unwrap_or_default()
        };
        match self.cloud_provider.as_str() {
            "" => {}
            "external" => {
                if !register_with_taints
                    .iter()
                    .any(|t| t.key == UNINITIALIZED_TAINT)
                {
                    register_with_taints.push(Taint {
                        key: UNINITIALIZED_TAINT.into(),
                        value: Some("true".into()),
                        effect: "NoSchedule".into(),
                        time_added: None,
                    });
                }
            }
            other => bail!(
                "unknown --cloud-provider {other:?}: in-tree cloud providers are gone; use \"external\" or leave it empty"
            ),
        }

        let dur = |flag: &str, v: &Option<String>, default: Duration| -> Result<Duration> {
            match v {
                Some(s) => {
                    component_base::duration::parse(s).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
                }
                None => Ok(default),
            }
        };

        let address: IpAddr = self
            .address
            .clone()
            .or(file.address.clone())
            .unwrap_or_else(|| "0.0.0.0".into())
            .parse()
            .context("invalid address")?;
        let healthz_bind_address: IpAddr = file
            .healthz_bind_address
            .clone()
            .unwrap_or_else(|| "127.0.0.1".into())
            .parse()
            .context("invalid healthzBindAddress")?;
        let healthz_port = file.healthz_port.unwrap_or(10248);
        let healthz_port = u16::try_from(healthz_port).context("invalid healthzPort")?;

        let high = file.image_gc_high_threshold_percent.unwrap_or(85);
        let low = file.image_gc_low_threshold_percent.unwrap_or(80);
        if !(0..=100).contains(&high) || !(0..=100).contains(&low) || low > high {
            bail!("invalid image GC thresholds: high {high}, low {low}");
        }
        let max_pods = self.max_pods.or(file.max_pods).unwrap_or(110);
        if max_pods < 0 {
            bail!("invalid maxPods {max_pods}");
        }

        Ok(KubeletConfig {
            kubeconfig: self.kubeconfig.clone(),
            node_name,
            hostname,
            node_ips,
            container_runtime_endpoint: self
                .container_runtime_endpoint
                .clone()
                .or(file.container_runtime_endpoint.clone())
                .unwrap_or_else(|| "unix:///run/containerd/containerd.sock".into()),
            root_dir: self
                .root_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("/var/lib/kubelet")),
            pod_manifest_path: self
                .pod_manifest_path
                .clone()
                .or(file.static_pod_path.clone().map(PathBuf::from))
                .filter(|p| !p.as_os_str().is_empty()),
            cgroup_root: self
                .cgroup_root
                .clone()
                .or(file.cgroup_root.clone())
                .unwrap_or_default(),
            max_pods,
            node_labels,
            register_with_taints,
            cluster_dns,
            cluster_domain: self
                .cluster_domain
                .clone()
                .or(file.cluster_domain.clone())
                .unwrap_or_default()
                .trim_end_matches('.')
                .to_string(),
            pod_logs_dir: file
                .pod_logs_dir
                .clone()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/log/pods")),
            resolv_conf: match &file.resolv_conf {
                Some(s) if s.is_empty() => None,
                Some(s) => Some(PathBuf::from(s)),
                None => Some(PathBuf::from("/etc/resolv.conf")),
            },
            address,
            port: self.port.or(file.port).unwrap_or(10250),
            tls_cert_file: self
                .tls_cert_file
                .clone()
                .or(file.tls_cert_file.clone().map(PathBuf::from)),
            tls_private_key_file: self
                .tls_private_key_file
                .clone()
                .or(file.tls_private_key_file.clone().map(PathBuf::from)),
            client_ca_file: self.client_ca_file.clone().or(file
                .authentication
                .as_ref()
                .and_then(|a| a.x509.as_ref())
                .and_then(|x| x.client_ca_file.clone())
                .map(PathBuf::from)),
            healthz_port,
            healthz_bind_address,
            node_status_update_frequency: dur(
                "nodeStatusUpdateFrequency",
                &file.node_status_update_frequency,
                Duration::from_secs(10),
            )?,
            node_status_report_frequency: dur(
                "nodeStatusReportFrequency",
                &file.node_status_report_frequency,
                Duration::from_secs(300),
            )?,
            node_lease_duration_seconds: file.node_lease_duration_seconds.unwrap_or(40).max(1),
            sync_frequency: dur(
                "syncFrequency",
                &file.sync_frequency,
                Duration::from_secs(60),
            )?,
            image_gc_high_threshold_percent: high,
            image_gc_low_threshold_percent: low,
            eviction_hard: file
                .eviction_hard
                .clone()
                .unwrap_or_else(default_eviction_hard),
            serialize_image_pulls: file.serialize_image_pulls.unwrap_or(true),
            verbosity: self.verbosity,
        })
    }
}

fn default_eviction_hard() -> BTreeMap<String, String> {
    [
        ("memory.available", "100Mi"),
        ("nodefs.available", "10%"),
        ("nodefs.inodesFree", "5%"),
        ("imagefs.available", "15%"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The machine's host name.
pub fn system_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

/// Parses a taint in the `--register-with-taints` syntax: `key=value:Effect` or `key:Effect`.
pub fn parse_taint(s: &str) -> Result<Taint> {
    let s = s.trim();
    let (kv, effect) = s
        .rsplit_once(':')
        .with_context(|| format!("invalid taint spec {s:?}: missing effect"))?;
    let effect = effect.trim();
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        bail!("invalid taint effect {effect:?} in {s:?}, supported: NoSchedule, PreferNoSchedule, NoExecute");
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k.trim(), Some(v.trim().to_string())),
        None => (kv.trim(), None),
    };
    if key.is_empty() {
        bail!("invalid taint spec {s:?}: empty key");
    }
    Ok(Taint {
        key: key.to_string(),
        value: value.filter(|v| !v.is_empty()),
        effect: effect.to_string(),
        time_added: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints() {
        let t = parse_taint("node-role.kubernetes.io/control-plane:NoSchedule").unwrap();
        assert_eq!(t.key, "node-role.kubernetes.io/control-plane");
        assert_eq!(t.value, None);
        assert_eq!(t.effect, "NoSchedule");
        let t = parse_taint("a=b:NoExecute").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("a", Some("b"), "NoExecute")
        );
        assert!(parse_taint("a=b").is_err());
        assert!(parse_taint("a=b:Sometimes").is_err());
    }

    const YAML: &str = r#"
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 10.0.0.1
port: 10251
tlsCertFile: /pki/kubelet.crt
tlsPrivateKeyFile: /pki/kubelet.key
authentication:
  x509:
    clientCAFile: /pki/ca.crt
  webhook:
    enabled: true
cgroupRoot: /ferrokube
clusterDNS: ["10.96.0.10"]
clusterDomain: cluster.local
staticPodPath: /etc/kubernetes/manifests
maxPods: 50
podLogsDir: /tmp/pod-logs
containerRuntimeEndpoint: unix:///tmp/ctd.sock
nodeStatusUpdateFrequency: 5s
nodeStatusReportFrequency: 1m0s
nodeLeaseDurationSeconds: 20
registerWithTaints:
- key: dedicated
  value: infra
  effect: NoSchedule
imageGCHighThresholdPercent: 90
imageGCLowThresholdPercent: 70
healthzPort: 10258
healthzBindAddress: 0.0.0.0
syncFrequency: 30s
evictionHard:
  memory.available: 50Mi
someFieldWeIgnore: true
"#;

    #[test]
    fn config_file_and_flag_precedence() {
        let file = KubeletConfiguration::parse(YAML).unwrap();
        let opts = Options {
            hostname_override: Some("Node-A".into()),
            ..Default::default()
        };
        let c = opts.resolve_with(file.clone()).unwrap();
        assert_eq!(c.node_name, "node-a");
        assert_eq!(c.address.to_string(), "10.0.0.1");
        assert_eq!(c.port, 10251);
        assert_eq!(c.client_ca_file, Some(PathBuf::from("/pki/ca.crt")));
        assert_eq!(c.cgroup_root, "/ferrokube");
        assert_eq!(c.cluster_dns, vec!["10.96.0.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.cluster_domain, "cluster.local");
        assert_eq!(
            c.pod_manifest_path,
            Some(PathBuf::from("/etc/kubernetes/manifests"))
        );
        assert_eq!(c.max_pods, 50);
        assert_eq!(c.pod_logs_dir, PathBuf::from("/tmp/pod-logs"));
        assert_eq!(c.container_runtime_endpoint, "unix:///tmp/ctd.sock");
        assert_eq!(c.node_status_update_frequency, Duration::from_secs(5));
        assert_eq!(c.node_status_report_frequency, Duration::from_secs(60));
        assert_eq!(c.node_lease_duration_seconds, 20);
        assert_eq!(c.register_with_taints.len(), 1);
        assert_eq!(c.image_gc_high_threshold_percent, 90);
        assert_eq!(c.healthz_port, 10258);
        assert_eq!(c.sync_frequency, Duration::from_secs(30));
        assert_eq!(
            c.eviction_hard.get("memory.available").map(String::as_str),
            Some("50Mi")
        );

        // Flags win over the file.
        let opts = Options::try_parse_from([
            "kubelet",
            "--hostname-override=n1",
            "--port=11250",
            "--max-pods=7",
            "--cluster-dns=10.0.0.10,10.0.0.11",
            "--cluster-domain=example.org.",
            "--container-runtime-endpoint=unix:///run/x.sock",
            "--cgroup-root=/other",
            "--pod-manifest-path=/m",
            "--node-labels=a=b,c=d",
            "--register-with-taints=x=y:NoExecute",
            "--node-ip=10.200.0.10",
            "-v=4",
        ])
        .unwrap();
        let c = opts.resolve_with(file).unwrap();
        assert_eq!(c.port, 11250);
        assert_eq!(c.max_pods, 7);
        assert_eq!(c.cluster_dns.len(), 2);
        assert_eq!(c.cluster_domain, "example.org");
        assert_eq!(c.container_runtime_endpoint, "unix:///run/x.sock");
        assert_eq!(c.cgroup_root, "/other");
        assert_eq!(c.pod_manifest_path, Some(PathBuf::from("/m")));
        assert_eq!(c.node_labels.get("c").map(String::as_str), Some("d"));
        assert_eq!(c.register_with_taints[0].effect, "NoExecute");
        assert_eq!(c.node_ips, vec!["10.200.0.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.verbosity, 4);
    }

    #[test]
    fn defaults_and_json() {
        let file =
            KubeletConfiguration::parse(r#"{"kind":"KubeletConfiguration","maxPods":3}"#).unwrap();
        let c = Options {
            hostname_override: Some("n".into()),
            ..Default::default()
        }
        .resolve_with(file)
        .unwrap();
        assert_eq!(c.max_pods, 3);
        assert_eq!(c.port, 10250);
        assert_eq!(c.healthz_port, 10248);
        assert_eq!(c.root_dir, PathBuf::from("/var/lib/kubelet"));
        assert_eq!(c.pod_logs_dir, PathBuf::from("/var/log/pods"));
        assert_eq!(c.node_lease_duration_seconds, 40);
        assert_eq!(c.node_status_report_frequency, Duration::from_secs(300));
        assert!(KubeletConfiguration::parse("kind: Pod\n").is_err());
    }
}
