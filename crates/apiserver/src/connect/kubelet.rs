//! How the apiserver reaches a node's kubelet: its address from the Node
//! object (`--kubelet-preferred-address-types`, the kubelet endpoint port),
//! and TLS with `--kubelet-client-certificate`/`--kubelet-client-key`,
//! verifying the kubelet's serving certificate against
//! `--kubelet-certificate-authority` (or not at all without one, as upstream).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use apimachinery::errors::ApiError;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::options::Options;

/// Upstream's default kubelet port.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

type ClientCert = (
    Vec<CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

fn insecure_config(client: Option<ClientCert>) -> anyhow::Result<rustls::ClientConfig> {
    // No `--kubelet-certificate-authority` (or `insecureSkipTLSVerifyBackend`):
    // any kubelet certificate is accepted; signatures are still checked.
    let b = component_base::tls::insecure_client_builder()?;
    let mut cfg = match client {
        Some((chain, key)) => b
            .with_client_auth_cert(chain, key)
            .context("kubelet client certificate and key do not match")?,
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Connection settings for kubelets.
#[derive(Clone)]
pub struct KubeletClient {
    tls: Arc<rustls::ClientConfig>,
    insecure: Arc<rustls::ClientConfig>,
    preferred: Vec<String>,
    timeout: Duration,
}

impl Default for KubeletClient {
    /// No client certificate, no verification of kubelet certificates.
    fn default() -> Self {
        // Building a config from the ring provider's defaults cannot fail.
        let insecure = Arc::new(insecure_config(None).expect("default TLS client configuration"));
        KubeletClient {
            tls: insecure.clone(),
            insecure,
            preferred: default_address_types(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Upstream's default `--kubelet-preferred-address-types`.
pub fn default_address_types() -> Vec<String> {
    [
        "Hostname",
        "InternalDNS",
        "InternalIP",
        "ExternalDNS",
        "ExternalIP",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl KubeletClient {
    /// Build from the `--kubelet-*` flags.
    pub fn from_options(opts: &Options) -> anyhow::Result<KubeletClient> {
        let client = match (&opts.kubelet_client_certificate, &opts.kubelet_client_key) {
            (Some(c), Some(k)) => Some((
                component_base::tls::load_certs(c)?,
                component_base::tls::load_key(k)?,
            )),
            (None, None) => None,
            _ => anyhow::bail!(
                "--kubelet-client-certificate and --kubelet-client-key must be given together"
            ),
        };
        let insecure = Arc::new(insecure_config(
            client.as_ref().map(|(c, k)| (c.clone(), k.clone_key())),
        )?);
        let tls = match &opts.kubelet_certificate_authority {
            Some(ca) => {
                let ca = component_base::tls::load_certs(ca)?;
                let mut cfg = component_base::tls::client_config_from(&ca, client)?;
                cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
                Arc::new(cfg)
            }
            None => insecure.clone(),
        };
        let preferred = if opts.kubelet_preferred_address_types.is_empty() {
            default_address_types()
        } else {
            opts.kubelet_preferred_address_types.clone()
        };
        Ok(KubeletClient {
            tls,
            insecure,
            preferred,
            timeout: opts.kubelet_timeout,
        })
    }

    /// The kubelet's host and port from its Node object.
    pub fn location(&self, node: &Value) -> Result<(String, u16), ApiError> {
        let addrs: Vec<(String, String)> = node
            .pointer("/status/addresses")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| {
                        Some((
                            x.get("type")?.as_str()?.to_string(),
                            x.get("address")?.as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let host = self
            .preferred
            .iter()
            .find_map(|t| {
                addrs
                    .iter()
                    .find(|(at, a)| at == t && !a.is_empty())
                    .map(|(_, a)| a.clone())
            })
            .ok_or_else(|| {
                let known: Vec<String> =
                    addrs.iter().map(|(t, a)| format!("{{{t} {a}}}")).collect();
                ApiError::new(
                    500,
                    "",
                    format!(
                        "no preferred addresses found; known addresses: [{}]",
                        known.join(" ")
                    ),
                )
            })?;
        let port = node
            .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
            .and_then(Value::as_u64)
            .filter(|p| *p > 0 && *p <= u16::MAX as u64)
            .map(|p| p as u16)
            .unwrap_or(DEFAULT_KUBELET_PORT);
        Ok((host, port))
    }

    /// `host:port` as it appears in a URL.
    pub fn authority(host: &str, port: u16) -> String {
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }

    /// Open a TLS connection to a kubelet.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        insecure: bool,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "i/o timeout"))??;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let cfg = if insecure {
            self.insecure.clone()
        } else {
            self.tls.clone()
        };
        tokio::time::timeout(
            self.timeout.max(Duration::from_secs(10)),
            tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
        )
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timeout"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn location_follows_preferred_address_types() {
        let mut k = KubeletClient::default();
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10255}}
        }});
        assert_eq!(k.location(&node).unwrap(), ("n1".to_string(), 10255));
        k.preferred = vec!["InternalIP".into(), "Hostname".into()];
        assert_eq!(k.location(&node).unwrap(), ("10.0.0.5".to_string(), 10255));
        let bare =
            json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.6"}]}});
        assert_eq!(k.location(&bare).unwrap().1, DEFAULT_KUBELET_PORT);
        let e = k
            .location(
                &json!({"status": {"addresses": [{"type": "ExternalIP", "address": "1.2.3.4"}]}}),
            )
            .unwrap_err();
        assert_eq!(
            e.message,
            "no preferred addresses found; known addresses: [{ExternalIP 1.2.3.4}]"
        );
        assert_eq!(KubeletClient::authority("::1", 5), "[::1]:5");
    }
}
