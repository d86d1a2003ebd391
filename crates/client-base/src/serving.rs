//! The secure health/metrics server (upstream's SecureServingOptions subset).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use component_base::serve::Check;
use tokio::task::JoinHandle;

/// The upstream secure-serving flags. `--secure-port`'s default differs per
/// component, so it is optional here: see [`SecureServingArgs::port`].
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SecureServingArgs {
    /// The IP address on which to listen for the --secure-port port.
    #[arg(long = "bind-address", default_value = "0.0.0.0")]
    pub bind_address: Option<IpAddr>,
    /// The port on which to serve HTTPS with authentication and authorization.
    /// If 0, don't serve HTTPS at all. (kube-controller-manager: 10257, kube-scheduler: 10259)
    #[arg(long = "secure-port")]
    pub secure_port: Option<u16>,
    /// File containing the default x509 Certificate for HTTPS. If unset, a
    /// self-signed certificate is generated.
    #[arg(long = "tls-cert-file")]
    pub tls_cert_file: Option<PathBuf>,
    /// File containing the default x509 private key matching --tls-cert-file.
    #[arg(long = "tls-private-key-file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// The directory where the TLS certs are located (accepted for
    /// compatibility; self-signed certificates are kept in memory).
    #[arg(long = "cert-dir")]
    pub cert_dir: Option<PathBuf>,
}

impl SecureServingArgs {
    /// The port to serve on (`default` when --secure-port is not given); 0 = off.
    pub fn port(&self, default: u16) -> u16 {
        self.secure_port.unwrap_or(default)
    }

    pub fn address(&self, default_port: u16) -> SocketAddr {
        SocketAddr::new(
            self.bind_address
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            self.port(default_port),
        )
    }
}

/// A TLS server config from --tls-cert-file/--tls-private-key-file, or a
/// self-signed certificate for `localhost`, the host name and 127.0.0.1.
pub fn tls_config(args: &SecureServingArgs, component: &str) -> Result<rustls::ServerConfig> {
    match (&args.tls_cert_file, &args.tls_private_key_file) {
        (Some(cert), Some(key)) => component_base::tls::server_config(cert, key, None),
        (Some(_), None) | (None, Some(_)) => {
            anyhow::bail!("--tls-cert-file and --tls-private-key-file must be given together")
        }
        (None, None) => {
            let host = crate::hostname();
            let (ca, ca_key) = component_base::certs::generate_ca(&format!(
                "{host}-ca@{}",
                chrono::Utc::now().timestamp()
            ))?;
            let mut names = vec!["localhost".to_string()];
            if host != "localhost" {
                names.push(host.clone());
            }
            let (crt, key) = component_base::certs::generate_serving_cert(
                &ca,
                &ca_key,
                &format!("{host}@{}", chrono::Utc::now().timestamp()),
                &names,
                &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            )
            .with_context(|| {
                format!("generating the self-signed serving certificate of {component}")
            })?;
            let mut chain = component_base::tls::parse_certs(crt.as_bytes())?;
            chain.extend(component_base::tls::parse_certs(ca.as_bytes())?);
            component_base::tls::server_config_from(
                chain,
                component_base::tls::parse_key(key.as_bytes())?,
                None,
            )
        }
    }
}

/// Starts the HTTPS `/healthz` `/livez` `/readyz` `/metrics` server in the
/// background. Returns `None` when --secure-port is 0, else the bound address
/// and the server task.
pub async fn start_secure_serving(
    args: &SecureServingArgs,
    default_port: u16,
    component: &str,
    registry: prometheus::Registry,
    checks: Vec<(String, Check)>,
) -> Result<Option<(SocketAddr, JoinHandle<()>)>> {
    if args.port(default_port) == 0 {
        return Ok(None);
    }
    let tls = Arc::new(tls_config(args, component)?);
    let addr = args.address(default_port);
    let (bound, task) =
        component_base::serve::bind_health_metrics(addr, Some(tls), registry, checks).await?;
    tracing::info!("serving securely on {bound}");
    Ok(Some((bound, task)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn self_signed_https_health() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let args = SecureServingArgs {
            bind_address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            secure_port: Some(0),
            ..Default::default()
        };
        // Port 0 from the flag means "off".
        assert!(
            start_secure_serving(&args, 10259, "test", prometheus::Registry::new(), vec![])
                .await
                .unwrap()
                .is_none()
        );
        let cfg = tls_config(&args, "test").unwrap();
        assert!(cfg.alpn_protocols.contains(&b"http/1.1".to_vec()));
        assert_eq!(args.address(10259).port(), 0);
        let bad = SecureServingArgs {
            tls_cert_file: Some("/nonexistent".into()),
            ..Default::default()
        };
        assert!(tls_config(&bad, "test").is_err());
    }
}
