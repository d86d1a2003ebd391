//! Add-ons `create cluster` deploys once the nodes are up: manifests
//! compiled into the binary (hack/addons/), created through the API with
//! kube-rs, as `kubectl create -f` would (objects that exist are kept).

use std::path::Path;

use anyhow::Result;
use kube::Api;

/// Cluster DNS: the `kube-dns` Service (10.96.0.10) and its Deployment.
pub const DNS: &str = include_str!("../../../hack/addons/dns.yaml");

/// Local-path storage (StorageClass `standard`, the default): the
/// provisioner's manifest with a directory per node under the cluster's
/// state (every node of a local cluster shares the host's filesystem).
pub fn local_path(cluster_dir: &Path, nodes: &[String]) -> Result<String> {
    use local_path_provisioner::addon;
    let cfg = addon::node_path_config(
        nodes.iter().map(|n| {
            (
                n.clone(),
                cluster_dir
                    .join("nodes")
                    .join(n)
                    .join("local-path")
                    .display()
                    .to_string(),
            )
        }),
        Some(&cluster_dir.join("local-path").display().to_string()),
    )?;
    addon::manifest_with_config(addon::MANIFEST, &cfg)
}

/// The add-on Deployments `create cluster` waits for.
pub const DEPLOYMENTS: &[(&str, &str)] = &[
    ("kube-system", "cluster-dns"),
    ("local-path-storage", "local-path-provisioner"),
];

/// How long a Deployment may go unobserved before waiting is pointless.
const NO_CONTROLLER_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Wait until each Deployment `(namespace, name)` has an available replica.
pub async fn wait_available(
    kubeconfig: &Path,
    deployments: &[(&str, &str)],
    deadline: std::time::Instant,
) -> Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    let client = client_base::client::kube_client(Some(kubeconfig)).await?;
    let started = std::time::Instant::now();
    for (ns, name) in deployments {
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        loop {
            let last = match api.get(name).await {
                Ok(d)
                    if d.status
                        .as_ref()
                        .and_then(|s| s.observed_generation)
                        .is_none()
                        && started.elapsed() > NO_CONTROLLER_AFTER =>
                {
                    anyhow::bail!(
                        "no controller has acted on deployment {ns}/{name} after {}s",
                        NO_CONTROLLER_AFTER.as_secs()
                    );
                }
                Ok(d) => {
                    let avail = d
                        .status
                        .as_ref()
                        .and_then(|s| s.available_replicas)
                        .unwrap_or(0);
                    if avail > 0 {
                        break;
                    }
                    "no available replica yet".to_string()
                }
                Err(e) => e.to_string(),
            };
            if std::time::Instant::now() >= deadline {
                anyhow::bail!("timed out waiting for deployment {ns}/{name}: {last}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
    Ok(())
}

/// Create every object of the multi-document YAML `manifests`.
pub async fn apply(kubeconfig: &Path, manifests: &str) -> Result<()> {
    let client = client_base::client::kube_client(Some(kubeconfig)).await?;
    client_base::manifests::create_all(&client, manifests).await?;
    Ok(())
}
