//! The API client.

use std::path::Path;

use anyhow::{Context, Result};

/// Loads the client configuration from a kubeconfig file, or (without one)
/// the in-cluster config / `$KUBECONFIG` / `~/.kube/config`.
pub async fn load_config(kubeconfig: Option<&Path>) -> Result<kube::Config> {
    match kubeconfig {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)
                .with_context(|| format!("reading kubeconfig {}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", p.display()))
        }
        None => kube::Config::infer()
            .await
            .context("no --kubeconfig and no inferable client configuration"),
    }
}

/// Builds the API client from a kubeconfig file (see [`load_config`]).
pub async fn kube_client(kubeconfig: Option<&Path>) -> Result<kube::Client> {
    let config = load_config(kubeconfig).await?;
    kube::Client::try_from(config).context("building the API client")
}

/// The cluster CA bundle (PEM) the client trusts, when the configuration
/// names one (`certificate-authority(-data)` of the kubeconfig, or the
/// in-cluster service account CA).
pub fn ca_bundle_pem(config: &kube::Config) -> Option<String> {
    let certs = config.root_cert.as_ref()?;
    if certs.is_empty() {
        return None;
    }
    let mut out = String::new();
    for der in certs {
        out.push_str(&der_to_pem("CERTIFICATE", der));
    }
    Some(out)
}

fn der_to_pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
