//! kube-controller-manager flags (the upstream names and defaults).

use std::path::PathBuf;
use std::time::Duration;

use client_base::leader::LeaderElectionArgs;
use client_base::serving::SecureServingArgs;

fn parse_duration(s: &str) -> Result<Duration, String> {
    component_base::duration::parse(s).map_err(|e| e.to_string())
}

/// The default secure port of kube-controller-manager.
pub const DEFAULT_SECURE_PORT: u16 = 10257;

#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "kube-controller-manager",
    about = "The Kubernetes controller manager is a daemon that embeds the core control loops shipped with Kubernetes."
)]
pub struct Options {
    /// Path to kubeconfig file with authorization and master location information.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The address of the Kubernetes API server (overrides any value in kubeconfig).
    #[arg(long)]
    pub master: Option<String>,
    /// The path to the configuration file (accepted; not read yet).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Number for the log level verbosity.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,

    #[command(flatten)]
    pub leader_election: LeaderElectionArgs,
    #[command(flatten)]
    pub secure_serving: SecureServingArgs,

    /// A list of controllers to enable. '*' enables all on-by-default
    /// controllers, 'foo' enables the controller named 'foo', '-foo' disables
    /// the controller named 'foo'.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,

    /// The instance prefix for the cluster.
    #[arg(long = "cluster-name", default_value = "kubernetes")]
    pub cluster_name: String,
    /// CIDR Range for Pods in cluster (comma-separated, one per IP family).
    #[arg(long = "cluster-cidr")]
    pub cluster_cidr: Option<String>,
    /// Should CIDRs for Pods be allocated and set on the cloud provider.
    #[arg(long = "allocate-node-cidrs", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub allocate_node_cidrs: bool,
    /// Mask size for node cidr in cluster.
    #[arg(long = "node-cidr-mask-size")]
    pub node_cidr_mask_size: Option<u8>,
    /// Mask size for IPv4 node cidr in dual-stack cluster (default 24).
    #[arg(long = "node-cidr-mask-size-ipv4")]
    pub node_cidr_mask_size_ipv4: Option<u8>,
    /// Mask size for IPv6 node cidr in dual-stack cluster (default 64).
    #[arg(long = "node-cidr-mask-size-ipv6")]
    pub node_cidr_mask_size_ipv6: Option<u8>,
    /// CIDR Range for Services in cluster.
    #[arg(long = "service-cluster-ip-range")]
    pub service_cluster_ip_range: Option<String>,

    /// Amount of time which we allow running Node to be unresponsive before
    /// marking it unhealthy.
    #[arg(long = "node-monitor-grace-period", default_value = "50s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// The period for syncing NodeStatus in cloud-node-lifecycle-controller.
    #[arg(long = "node-monitor-period", default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,
    /// Amount of time which we allow starting Node to be unresponsive before
    /// marking it unhealthy.
    #[arg(long = "node-startup-grace-period", default_value = "1m0s", value_parser = parse_duration)]
    pub node_startup_grace_period: Duration,
    /// Number of nodes per second on which pods are deleted in case of node
    /// failure when a zone is healthy.
    #[arg(long = "node-eviction-rate", default_value_t = 0.1)]
    pub node_eviction_rate: f32,
    /// Number of nodes per second on which pods are deleted in case of node
    /// failure when a zone is unhealthy.
    #[arg(long = "secondary-node-eviction-rate", default_value_t = 0.01)]
    pub secondary_node_eviction_rate: f32,
    /// Number of nodes from which node-lifecycle-controller treats the cluster as large.
    #[arg(long = "large-cluster-size-threshold", default_value_t = 50)]
    pub large_cluster_size_threshold: i32,
    /// Fraction of Nodes in a zone which needs to be not Ready for a zone to be treated as unhealthy.
    #[arg(long = "unhealthy-zone-threshold", default_value_t = 0.55)]
    pub unhealthy_zone_threshold: f32,

    /// Number of terminated pods that can exist before the terminated pod
    /// garbage collector starts deleting terminated pods. If <= 0, disabled.
    #[arg(long = "terminated-pod-gc-threshold", default_value_t = 12500)]
    pub terminated_pod_gc_threshold: i32,
    /// Enables the generic garbage collector.
    #[arg(long = "enable-garbage-collector", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub enable_garbage_collector: bool,
    /// The maximum number of endpoints that will be added to an EndpointSlice.
    #[arg(long = "max-endpoints-per-slice", default_value_t = 100)]
    pub max_endpoints_per_slice: i32,
    /// If set, this root certificate authority will be included in service
    /// account's token secret / the kube-root-ca.crt ConfigMap.
    #[arg(long = "root-ca-file")]
    pub root_ca_file: Option<PathBuf>,
    /// Filename containing a PEM-encoded private RSA or ECDSA key used to sign
    /// service account tokens (accepted; unused).
    #[arg(long = "service-account-private-key-file")]
    pub service_account_private_key_file: Option<PathBuf>,
    /// If true, use individual service account credentials for each controller (accepted; unused).
    #[arg(long = "use-service-account-credentials", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub use_service_account_credentials: bool,
    /// The period for syncing namespace life-cycle updates.
    #[arg(long = "namespace-sync-period", default_value = "5m0s", value_parser = parse_duration)]
    pub namespace_sync_period: Duration,
    /// The period for syncing quota usage status in the system.
    #[arg(long = "resource-quota-sync-period", default_value = "5m0s", value_parser = parse_duration)]
    pub resource_quota_sync_period: Duration,
    /// The resync period in reflectors will be random between MinResyncPeriod and 2*MinResyncPeriod.
    #[arg(long = "min-resync-period", default_value = "12h0m0s", value_parser = parse_duration)]
    pub min_resync_period: Duration,
    /// QPS to use while talking with kubernetes apiserver.
    #[arg(long = "kube-api-qps", default_value_t = 20.0)]
    pub kube_api_qps: f32,
    /// Burst to use while talking with kubernetes apiserver.
    #[arg(long = "kube-api-burst", default_value_t = 30)]
    pub kube_api_burst: i32,
    /// The period for syncing persistent volumes and persistent volume claims.
    #[arg(long = "pvclaimbinder-sync-period", default_value = "15s", value_parser = parse_duration)]
    pub pvclaimbinder_sync_period: Duration,

    /// kubeconfig file pointing at the 'core' kubernetes server with enough
    /// rights to create tokenreviews.authentication.k8s.io (accepted; the
    /// health and metrics endpoints are served without authentication).
    #[arg(long = "authentication-kubeconfig")]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// kubeconfig file pointing at the 'core' kubernetes server with enough
    /// rights to create subjectaccessreviews.authorization.k8s.io (accepted; unused).
    #[arg(long = "authorization-kubeconfig")]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// If set, any request presenting a client certificate signed by one of
    /// the authorities in the client-ca-file is authenticated (accepted; unused).
    #[arg(long = "client-ca-file")]
    pub client_ca_file: Option<PathBuf>,
    /// Root certificate bundle to use to verify client certificates on
    /// incoming requests before trusting usernames in headers (accepted; unused).
    #[arg(long = "requestheader-client-ca-file")]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Filename containing a PEM-encoded X509 CA certificate used to issue
    /// cluster-scoped certificates (accepted; unused).
    #[arg(long = "cluster-signing-cert-file")]
    pub cluster_signing_cert_file: Option<PathBuf>,
    /// Filename containing a PEM-encoded RSA or ECDSA private key used to sign
    /// cluster-scoped certificates (accepted; unused).
    #[arg(long = "cluster-signing-key-file")]
    pub cluster_signing_key_file: Option<PathBuf>,
    /// Enable profiling via web interface host:port/debug/pprof/ (accepted; unused).
    #[arg(long = "profiling", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub profiling: bool,

    #[arg(long = "concurrent-deployment-syncs", default_value_t = 5)]
    pub concurrent_deployment_syncs: usize,
    #[arg(long = "concurrent-replicaset-syncs", default_value_t = 5)]
    pub concurrent_replicaset_syncs: usize,
    #[arg(long = "concurrent-rc-syncs", default_value_t = 5)]
    pub concurrent_rc_syncs: usize,
    #[arg(long = "concurrent-statefulset-syncs", default_value_t = 5)]
    pub concurrent_statefulset_syncs: usize,
    #[arg(long = "concurrent-daemonset-syncs", default_value_t = 2)]
    pub concurrent_daemonset_syncs: usize,
    #[arg(long = "concurrent-job-syncs", default_value_t = 5)]
    pub concurrent_job_syncs: usize,
    #[arg(long = "concurrent-cron-job-syncs", default_value_t = 5)]
    pub concurrent_cron_job_syncs: usize,
    #[arg(long = "concurrent-endpoint-syncs", default_value_t = 5)]
    pub concurrent_endpoint_syncs: usize,
    #[arg(long = "concurrent-service-endpoint-syncs", default_value_t = 5)]
    pub concurrent_service_endpoint_syncs: usize,
    #[arg(long = "concurrent-namespace-syncs", default_value_t = 10)]
    pub concurrent_namespace_syncs: usize,
    #[arg(long = "concurrent-gc-syncs", default_value_t = 20)]
    pub concurrent_gc_syncs: usize,
    #[arg(long = "concurrent-serviceaccount-token-syncs", default_value_t = 5)]
    pub concurrent_serviceaccount_token_syncs: usize,
    #[arg(long = "concurrent-resource-quota-syncs", default_value_t = 5)]
    pub concurrent_resource_quota_syncs: usize,
    #[arg(long = "concurrent-ttl-after-finished-syncs", default_value_t = 5)]
    pub concurrent_ttl_after_finished_syncs: usize,
    #[arg(long = "concurrent-ephemeralvolume-syncs", default_value_t = 5)]
    pub concurrent_ephemeralvolume_syncs: usize,
    #[arg(
        long = "concurrent-horizontal-pod-autoscaler-syncs",
        default_value_t = 5
    )]
    pub concurrent_horizontal_pod_autoscaler_syncs: usize,
}

impl Options {
    /// Options with every default (tests).
    pub fn defaults() -> Options {
        <Options as clap::Parser>::parse_from(["kube-controller-manager"])
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
        assert_eq!(d.node_monitor_grace_period, Duration::from_secs(50));
        let o = Options::parse_from([
            "kcm",
            "--controllers=*,-namespace,job",
            "--leader-elect=false",
            "--leader-elect-lease-duration=5s",
            "--secure-port=0",
            "--cluster-cidr=10.244.0.0/16",
            "--allocate-node-cidrs=true",
            "--concurrent-deployment-syncs=3",
            "-v=4",
        ]);
        assert_eq!(o.controllers, vec!["*", "-namespace", "job"]);
        assert!(!o.leader_election.leader_elect);
        assert_eq!(o.leader_election.lease_duration, Duration::from_secs(5));
        assert_eq!(o.secure_serving.secure_port, Some(0));
        assert!(o.allocate_node_cidrs);
        assert_eq!(o.concurrent_deployment_syncs, 3);
        assert_eq!(o.verbosity, 4);
    }
}
