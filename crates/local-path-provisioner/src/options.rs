//! local-path-provisioner flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The provisioner name kind and k3s register for their `standard` /
/// `local-path` classes. Using the same name means StorageClasses written
/// for kind (provisioner `rancher.io/local-path`) work unchanged here.
pub const DEFAULT_PROVISIONER_NAME: &str = "rancher.io/local-path";

/// The Lease this provisioner's replicas elect a leader on (in `--namespace`
/// unless `--leader-elect-resource-namespace` is given).
pub const LEASE_NAME: &str = "ferrokube.dev-local-path";

fn parse_duration(s: &str) -> Result<Duration, String> {
    component_base::duration::parse(s).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "local-path-provisioner",
    about = "Provisions hostPath PersistentVolumes on the node the claim's pod was scheduled to."
)]
pub struct Options {
    /// Path to a kubeconfig file (without one: the in-cluster config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The provisioner name StorageClasses refer to (`provisioner:`) and
    /// that is written to `pv.kubernetes.io/provisioned-by`.
    #[arg(long = "provisioner-name", env = "PROVISIONER_NAME", default_value = DEFAULT_PROVISIONER_NAME)]
    pub provisioner_name: String,
    /// The JSON configuration (`nodePathMap`), read again before every
    /// provisioning so ConfigMap updates apply without a restart. Without
    /// it every node uses /var/local-path-provisioner.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The image of the helper pods that create and remove directories
    /// (needs `mkdir` and `rm`).
    #[arg(
        long = "helper-image",
        default_value = "docker.io/library/busybox:latest"
    )]
    pub helper_image: String,
    /// The namespace helper pods run in (and the leader-election Lease's).
    #[arg(long, env = "POD_NAMESPACE", default_value = "local-path-storage")]
    pub namespace: String,
    /// How long a helper pod may take before provisioning or deletion fails
    /// (and is retried).
    #[arg(long = "helper-pod-timeout", default_value = "2m", value_parser = parse_duration)]
    pub helper_pod_timeout: Duration,
    /// How often all claims and volumes are looked at again besides watch
    /// events.
    #[arg(long = "resync-period", default_value = "30s", value_parser = parse_duration)]
    pub resync_period: Duration,
    #[command(flatten)]
    pub leader_election: client_base::leader::LeaderElectionArgs,
    /// Set by `main` when `--leader-elect-resource-namespace` was given;
    /// otherwise the Lease lives in `--namespace`.
    #[arg(skip)]
    pub lease_namespace_explicit: bool,
    /// Log verbosity.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,
}

impl Options {
    /// Parses the command line, remembering whether the lease namespace
    /// was given explicitly.
    pub fn parse_args<I, T>(args: I) -> Options
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Options::command()
            .mut_arg("resource_namespace", |a| {
                a.help("The namespace of the leader-election Lease (default: --namespace)")
                    .hide_default_value(true)
            })
            .get_matches_from(args);
        let mut opts = Options::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        opts.lease_namespace_explicit = matches.value_source("resource_namespace")
            == Some(clap::parser::ValueSource::CommandLine);
        opts
    }

    /// The leader-election settings with the Lease in `--namespace` unless
    /// its namespace was given.
    pub fn leader_election(&self) -> client_base::leader::LeaderElectionArgs {
        let mut le = self.leader_election.clone();
        if !self.lease_namespace_explicit {
            le.resource_namespace = self.namespace.clone();
        }
        le
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_lease_namespace() {
        let o = Options::parse_args(["local-path-provisioner"]);
        assert_eq!(o.provisioner_name, DEFAULT_PROVISIONER_NAME);
        assert_eq!(o.helper_image, "docker.io/library/busybox:latest");
        assert_eq!(o.helper_pod_timeout, Duration::from_secs(120));
        assert_eq!(o.leader_election().resource_namespace, o.namespace);
        let o = Options::parse_args([
            "local-path-provisioner",
            "--namespace=lp",
            "--leader-elect-resource-namespace=kube-system",
            "--provisioner-name=ferrokube.dev/local-path",
        ]);
        assert_eq!(o.namespace, "lp");
        assert_eq!(o.leader_election().resource_namespace, "kube-system");
        assert_eq!(o.provisioner_name, "ferrokube.dev/local-path");
    }
}
