//! cloud-controller-manager flags (upstream names and defaults).

use std::path::PathBuf;
use std::time::Duration;

use client_base::leader::LeaderElectionArgs;
use client_base::serving::SecureServingArgs;

fn parse_duration(s: &str) -> Result<Duration, String> {
    component_base::duration::parse(s).map_err(|e| e.to_string())
}

/// The default secure port of cloud-controller-manager.
pub const DEFAULT_SECURE_PORT: u16 = 10258;

#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "cloud-controller-manager",
    about = "The Cloud controller manager is a daemon that embeds the cloud specific control loops shipped with Kubernetes."
)]
pub struct Options {
    /// Path to kubeconfig file with authorization and master location information.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The address of the Kubernetes API server (overrides any value in kubeconfig).
    #[arg(long)]
    pub master: Option<String>,
    /// Number for the log level verbosity.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,

    #[command(flatten)]
    pub leader_election: LeaderElectionArgs,
    #[command(flatten)]
    pub secure_serving: SecureServingArgs,

    /// The provider for cloud services. Supported: "local" (the host is the cloud).
    #[arg(long = "cloud-provider", default_value = "")]
    pub cloud_provider: String,
    /// The path to the cloud provider configuration file (YAML or JSON).
    #[arg(long = "cloud-config")]
    pub cloud_config: Option<PathBuf>,

    /// A list of controllers to enable. '*' enables all on-by-default
    /// controllers, 'foo' enables the controller named 'foo', '-foo' disables
    /// the controller named 'foo'. All controllers: cloud-node,
    /// cloud-node-lifecycle, route, service.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,

    /// The instance prefix for the cluster.
    #[arg(long = "cluster-name", default_value = "kubernetes")]
    pub cluster_name: String,
    /// CIDR Range for Pods in cluster.
    #[arg(long = "cluster-cidr")]
    pub cluster_cidr: Option<String>,
    /// Should CIDRs for Pods be allocated and set on the cloud provider (the
    /// route controller only runs when this and --configure-cloud-routes are true).
    #[arg(long = "allocate-node-cidrs", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub allocate_node_cidrs: bool,
    /// Should CIDRs allocated by allocate-node-cidrs be configured on the cloud provider.
    #[arg(long = "configure-cloud-routes", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub configure_cloud_routes: bool,
    /// The period for syncing NodeStatus in cloud-node-lifecycle-controller.
    #[arg(long = "node-monitor-period", default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,
    /// The period for reconciling routes created for Nodes by cloud provider.
    #[arg(long = "route-reconciliation-period", default_value = "10s", value_parser = parse_duration)]
    pub route_reconciliation_period: Duration,
    /// Specifies how often the controller updates nodes' status.
    #[arg(long = "node-status-update-frequency", default_value = "5m0s", value_parser = parse_duration)]
    pub node_status_update_frequency: Duration,
    /// The number of services that are allowed to sync concurrently.
    #[arg(long = "concurrent-service-syncs", default_value_t = 1)]
    pub concurrent_service_syncs: usize,
    /// The number of workers concurrently synchronizing nodes.
    #[arg(long = "concurrent-node-syncs", default_value_t = 1)]
    pub concurrent_node_syncs: usize,
    /// Deprecated; accepted for compatibility.
    #[arg(long = "node-sync-period", value_parser = parse_duration)]
    pub node_sync_period: Option<Duration>,
    /// The resync period in reflectors (accepted; unused).
    #[arg(long = "min-resync-period", default_value = "12h0m0s", value_parser = parse_duration)]
    pub min_resync_period: Duration,
    /// QPS to use while talking with kubernetes apiserver (accepted; unused).
    #[arg(long = "kube-api-qps", default_value_t = 20.0)]
    pub kube_api_qps: f32,
    /// Burst to use while talking with kubernetes apiserver (accepted; unused).
    #[arg(long = "kube-api-burst", default_value_t = 30)]
    pub kube_api_burst: i32,
    /// If true, use individual service account credentials for each controller (accepted; unused).
    #[arg(long = "use-service-account-credentials", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub use_service_account_credentials: bool,
    /// The plugin to use when cloud provider is set to external (accepted; unused).
    #[arg(long = "external-cloud-volume-plugin")]
    pub external_cloud_volume_plugin: Option<String>,
    /// kubeconfig for token reviews (accepted; health and metrics are served without authentication).
    #[arg(long = "authentication-kubeconfig")]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// kubeconfig for subject access reviews (accepted; unused).
    #[arg(long = "authorization-kubeconfig")]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// Client CA for incoming requests (accepted; unused).
    #[arg(long = "client-ca-file")]
    pub client_ca_file: Option<PathBuf>,
    /// Enable profiling via web interface host:port/debug/pprof/ (accepted; unused).
    #[arg(long = "profiling", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub profiling: bool,
}

impl Options {
    /// Options with every default (tests).
    pub fn defaults() -> Options {
        <Options as clap::Parser>::parse_from(["cloud-controller-manager"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn parses_upstream_flags() {
        let d = Options::defaults();
        assert_eq!(d.controllers, vec!["*"]);
        assert!(d.leader_election.leader_elect);
        assert!(d.configure_cloud_routes);
        assert!(!d.allocate_node_cidrs);
        assert_eq!(d.node_monitor_period, Duration::from_secs(5));
        assert_eq!(d.route_reconciliation_period, Duration::from_secs(10));
        assert_eq!(d.concurrent_service_syncs, 1);
        let o = Options::parse_from([
            "ccm",
            "--cloud-provider=local",
            "--cloud-config=/tmp/c.yaml",
            "--controllers=*,-route",
            "--leader-elect=false",
            "--secure-port=0",
            "--cluster-cidr=10.131.0.0/16",
            "--allocate-node-cidrs=true",
            "--configure-cloud-routes=false",
            "--route-reconciliation-period=1s",
            "-v=3",
        ]);
        assert_eq!(o.cloud_provider, "local");
        assert_eq!(o.controllers, vec!["*", "-route"]);
        assert!(o.allocate_node_cidrs && !o.configure_cloud_routes);
        assert_eq!(o.route_reconciliation_period, Duration::from_secs(1));
        assert_eq!(o.verbosity, 3);
    }
}
