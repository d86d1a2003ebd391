//! Helpers shared by the controllers: node conditions, taints, patches.

use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

/// The taint the kubelet registers with under `--cloud-provider=external`.
pub const UNINITIALIZED_TAINT: &str = "node.cloudprovider.kubernetes.io/uninitialized";
/// The taint of nodes whose instance is shut down.
pub const SHUTDOWN_TAINT: &str = "node.cloudprovider.kubernetes.io/shutdown";

pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// The status of the node's condition `t` ("Unknown" when absent).
pub fn condition_status<'a>(node: &'a Node, t: &str) -> Option<&'a str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| c.status.as_str())
}

pub fn is_ready(node: &Node) -> bool {
    condition_status(node, "Ready") == Some("True")
}

pub fn taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

pub fn has_taint(node: &Node, key: &str) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| t.iter().any(|t| t.key == key))
}

pub fn name(node: &Node) -> String {
    node.metadata.name.clone().unwrap_or_default()
}

/// Replaces the node's taints, conditional on the resourceVersion we read.
pub async fn set_taints(api: &Api<Node>, node: &Node, taints: &[Taint]) -> anyhow::Result<()> {
    let patch = json!({
        "metadata": {"resourceVersion": node.metadata.resource_version},
        "spec": {"taints": taints},
    });
    api.patch(&name(node), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Whether the error is a 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
