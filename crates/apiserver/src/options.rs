//! Command-line flags, named as upstream kube-apiserver names them.

use clap::Parser;
use component_base::duration::parse as parse_duration;
use std::net::IpAddr;
use std::path::PathBuf;

/// kube-apiserver flags (the subset ferrokube implements, upstream names and defaults).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "kube-apiserver",
    about = "The Kubernetes API server validates and configures data for the api objects."
)]
pub struct Options {
    /// List of etcd servers to connect with (scheme://ip:port), comma separated.
    #[arg(long = "etcd-servers", value_delimiter = ',', required = true)]
    pub etcd_servers: Vec<String>,
    /// The prefix to prepend to all resource paths in etcd.
    #[arg(long = "etcd-prefix", default_value = "/registry")]
    pub etcd_prefix: String,
    /// SSL Certificate Authority file used to secure etcd communication.
    #[arg(long = "etcd-cafile")]
    pub etcd_cafile: Option<PathBuf>,
    /// SSL certification file used to secure etcd communication.
    #[arg(long = "etcd-certfile")]
    pub etcd_certfile: Option<PathBuf>,
    /// SSL key file used to secure etcd communication.
    #[arg(long = "etcd-keyfile")]
    pub etcd_keyfile: Option<PathBuf>,
    /// The interval of compaction requests (e.g. 5m, 30s). 0 disables compaction.
    #[arg(long = "etcd-compaction-interval", default_value = "5m", value_parser = parse_duration)]
    pub etcd_compaction_interval: std::time::Duration,
    /// The IP address on which to listen for the --secure-port port.
    #[arg(long = "bind-address", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// The port on which to serve HTTPS with authentication and authorization.
    #[arg(long = "secure-port", default_value_t = 6443)]
    pub secure_port: u16,
    /// File containing the default x509 Certificate for HTTPS.
    #[arg(long = "tls-cert-file")]
    pub tls_cert_file: Option<PathBuf>,
    /// File containing the default x509 private key matching --tls-cert-file.
    #[arg(long = "tls-private-key-file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// If set, any request presenting a client certificate signed by one of the authorities
    /// in the client-ca-file is authenticated with an identity corresponding to the CommonName.
    #[arg(long = "client-ca-file")]
    pub client_ca_file: Option<PathBuf>,
    /// If set, the file that will be used to secure the secure port of the API server via token authentication.
    #[arg(long = "token-auth-file")]
    pub token_auth_file: Option<PathBuf>,
    /// Enables anonymous requests to the secure port of the API server.
    #[arg(long = "anonymous-auth", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub anonymous_auth: bool,
    /// A CIDR notation IP range from which to assign service cluster IPs.
    #[arg(long = "service-cluster-ip-range", default_value = "10.0.0.0/24")]
    pub service_cluster_ip_range: String,
    /// A port range to reserve for services with NodePort visibility.
    #[arg(long = "service-node-port-range", default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// The IP address on which to advertise the apiserver to members of the cluster.
    #[arg(long = "advertise-address")]
    pub advertise_address: Option<IpAddr>,
    /// The maximum number of non-mutating requests in flight at a given time. 0 = no limit.
    #[arg(long = "max-requests-inflight", default_value_t = 400)]
    pub max_requests_inflight: usize,
    /// The maximum number of mutating requests in flight at a given time. 0 = no limit.
    #[arg(long = "max-mutating-requests-inflight", default_value_t = 200)]
    pub max_mutating_requests_inflight: usize,
    /// A duration that is the default request timeout (e.g. 60s); watches and other long-running requests are exempt.
    #[arg(long = "request-timeout", default_value = "1m", value_parser = parse_duration)]
    pub request_timeout: std::time::Duration,
    /// Time to wait for in-flight requests when shutting down.
    #[arg(long = "shutdown-delay-duration", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay_duration: std::time::Duration,
    /// Path to a client cert file for TLS to kubelets.
    #[arg(long = "kubelet-client-certificate")]
    pub kubelet_client_certificate: Option<PathBuf>,
    /// Path to a client key file for TLS to kubelets.
    #[arg(long = "kubelet-client-key")]
    pub kubelet_client_key: Option<PathBuf>,
    /// Path to a cert file for the certificate authority of kubelets' serving
    /// certificates; without it they are not verified.
    #[arg(long = "kubelet-certificate-authority")]
    pub kubelet_certificate_authority: Option<PathBuf>,
    /// List of the preferred NodeAddressTypes to use for kubelet connections.
    #[arg(
        long = "kubelet-preferred-address-types",
        value_delimiter = ',',
        default_value = "Hostname,InternalDNS,InternalIP,ExternalDNS,ExternalIP"
    )]
    pub kubelet_preferred_address_types: Vec<String>,
    /// Timeout for kubelet operations (connecting).
    #[arg(long = "kubelet-timeout", default_value = "5s", value_parser = parse_duration)]
    pub kubelet_timeout: std::time::Duration,
    /// Identifier of the service account token issuer: the `iss` claim of
    /// issued tokens. Repeatable: the first is used to sign, all are accepted.
    #[arg(long = "service-account-issuer", action = clap::ArgAction::Append)]
    pub service_account_issuer: Vec<String>,
    /// File containing PEM-encoded x509 RSA or ECDSA private or public keys,
    /// used to verify ServiceAccount tokens. Repeatable; defaults to
    /// --service-account-signing-key-file.
    #[arg(long = "service-account-key-file", action = clap::ArgAction::Append)]
    pub service_account_key_file: Vec<PathBuf>,
    /// Path to the file that contains the current private key of the service
    /// account token issuer (RSA, or ECDSA P-256/P-384 in PKCS#8).
    #[arg(long = "service-account-signing-key-file")]
    pub service_account_signing_key_file: Option<PathBuf>,
    /// The maximum validity duration of a token created by the service
    /// account token issuer (0: no maximum).
    #[arg(long = "service-account-max-token-expiration", default_value = "0s", value_parser = parse_duration)]
    pub service_account_max_token_expiration: std::time::Duration,
    /// Turns on projected service account expiration extension during token
    /// generation (tokens of the admission-injected volume live for a year,
    /// with a `warnafter` claim at the requested expiry).
    #[arg(long = "service-account-extend-token-expiration", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub service_account_extend_token_expiration: bool,
    /// Identifiers of the API: service account tokens must be bound to at
    /// least one. Defaults to the first --service-account-issuer.
    #[arg(long = "api-audiences", value_delimiter = ',')]
    pub api_audiences: Vec<String>,
    /// Admission plugins to enable in addition to the default-enabled ones
    /// (NamespaceLifecycle, ServiceAccount, Priority are all on by default).
    #[arg(long = "enable-admission-plugins", value_delimiter = ',')]
    pub enable_admission_plugins: Vec<String>,
    /// Admission plugins to disable although they are on by default.
    #[arg(long = "disable-admission-plugins", value_delimiter = ',')]
    pub disable_admission_plugins: Vec<String>,
    /// Number for the log level verbosity.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_flags_are_go_durations() {
        let etcd = "--etcd-servers=http://a:1";
        let o = Options::parse_from(["x", etcd]);
        assert_eq!(o.request_timeout.as_secs(), 60);
        assert_eq!(o.etcd_compaction_interval.as_secs(), 300);
        assert_eq!(o.kubelet_timeout.as_secs(), 5);
        let o = Options::parse_from(["x", etcd, "--request-timeout=1h30m"]);
        assert_eq!(o.request_timeout.as_secs(), 5400);
        let o = Options::parse_from(["x", etcd, "--kubelet-timeout=250ms"]);
        assert_eq!(o.kubelet_timeout.as_millis(), 250);
        let e = Options::try_parse_from(["x", etcd, "--request-timeout=5"]).unwrap_err();
        assert!(
            e.to_string().contains(r#"missing unit in duration "5""#),
            "{e}"
        );
    }

    #[test]
    fn service_account_flags() {
        let o = Options::parse_from([
            "x",
            "--etcd-servers=http://a:1",
            "--service-account-issuer=https://a",
            "--service-account-issuer=https://b",
            "--service-account-key-file=/k1",
            "--service-account-key-file=/k2",
            "--service-account-signing-key-file=/s",
            "--service-account-max-token-expiration=48h",
            "--api-audiences=x,y",
            "--disable-admission-plugins=ServiceAccount",
        ]);
        assert_eq!(o.service_account_issuer, vec!["https://a", "https://b"]);
        assert_eq!(o.service_account_key_file.len(), 2);
        assert_eq!(o.service_account_max_token_expiration.as_secs(), 48 * 3600);
        assert_eq!(o.api_audiences, vec!["x", "y"]);
        assert!(o.service_account_extend_token_expiration);
        assert_eq!(o.disable_admission_plugins, vec!["ServiceAccount"]);
    }

    #[test]
    fn anonymous_auth_accepts_bare_and_valued_forms() {
        let o = Options::parse_from([
            "x",
            "--etcd-servers=http://a:1,http://b:2",
            "--anonymous-auth",
        ]);
        assert!(o.anonymous_auth);
        assert_eq!(o.etcd_servers.len(), 2);
        let o = Options::parse_from(["x", "--etcd-servers=http://a:1", "--anonymous-auth=false"]);
        assert!(!o.anonymous_auth);
    }
}
