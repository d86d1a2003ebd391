//! kube-scheduler flags (upstream names and defaults).

use std::path::PathBuf;

use clap::Parser;
use client_base::leader::LeaderElectionArgs;
use client_base::serving::SecureServingArgs;

/// Upstream's secure port for kube-scheduler.
pub const DEFAULT_SECURE_PORT: u16 = 10259;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "kube-scheduler",
    about = "The Kubernetes scheduler: assigns pods to nodes."
)]
pub struct Options {
    /// Path to a kubeconfig file with authorization and master location.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The path to the KubeSchedulerConfiguration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override the API server address in the kubeconfig.
    #[arg(long)]
    pub master: Option<String>,
    #[command(flatten)]
    pub leader_election: LeaderElectionArgs,
    #[command(flatten)]
    pub secure_serving: SecureServingArgs,
    /// QPS to use while talking with the apiserver (accepted for
    /// compatibility; the client is not rate limited).
    #[arg(long = "kube-api-qps", default_value_t = 50.0)]
    pub kube_api_qps: f32,
    #[arg(long = "kube-api-burst", default_value_t = 100)]
    pub kube_api_burst: i32,
    /// Accepted for compatibility.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub profiling: bool,
    /// Log verbosity.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,
}
