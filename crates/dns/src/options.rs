//! cluster-dns flags.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "cluster-dns",
    about = "The cluster DNS server: answers for Services and pods under the cluster domain and forwards everything else."
)]
pub struct Options {
    /// Path to a kubeconfig file (without one: the in-cluster config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The cluster domain this server is authoritative for.
    #[arg(long = "cluster-domain", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The address DNS is served on (UDP and TCP).
    #[arg(long = "dns-bind-address", default_value = "0.0.0.0")]
    pub dns_bind_address: IpAddr,
    /// The DNS port (UDP and TCP); 0 picks a free one.
    #[arg(long = "dns-port", default_value_t = 53)]
    pub dns_port: u16,
    /// The resolv.conf whose nameservers answer names outside the cluster
    /// domain. (`nameserver IP:PORT` is accepted as an extension.)
    #[arg(long = "upstream-resolv-conf", default_value = "/etc/resolv.conf")]
    pub upstream_resolv_conf: PathBuf,
    /// The address the health, readiness and metrics servers listen on.
    #[arg(long = "http-bind-address", default_value = "0.0.0.0")]
    pub http_bind_address: IpAddr,
    /// Port of the liveness server (/health, /healthz); 0 picks a free one.
    #[arg(long = "health-port", default_value_t = 8080)]
    pub health_port: u16,
    /// Port of the readiness server (/ready, /readyz); 0 picks a free one.
    #[arg(long = "ready-port", default_value_t = 8181)]
    pub ready_port: u16,
    /// Port of the Prometheus metrics server (/metrics); 0 picks a free one.
    #[arg(long = "metrics-port", default_value_t = 9153)]
    pub metrics_port: u16,
    /// TTL (seconds) of the records under the cluster domain.
    #[arg(long, default_value_t = 5)]
    pub ttl: u32,
    /// Timeout of one upstream attempt, in milliseconds.
    #[arg(long = "upstream-timeout-ms", default_value_t = 2000)]
    pub upstream_timeout_ms: u64,
    /// Log verbosity.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,
}
