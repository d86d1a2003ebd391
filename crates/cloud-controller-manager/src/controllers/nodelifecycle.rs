//! The cloud node lifecycle controller (upstream controllers/nodelifecycle):
//! every `--node-monitor-period`, a node that is not Ready is checked
//! against the cloud: gone → the Node is deleted (event `DeletingNode`);
//! shut down → it gets the `node.cloudprovider.kubernetes.io/shutdown`
//! NoSchedule taint, which goes again once the node is Ready.

use std::sync::Arc;

use anyhow::Result;
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::api::DeleteParams;
use kube::Api;

use super::util::{self, SHUTDOWN_TAINT};
use crate::cloud::Instances;
use crate::Context;
use client_base::events::{node_ref, EventType, Recorder};
use controller_manager::informers::Informer;

/// What to do about one node.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    RemoveShutdownTaint,
    AddShutdownTaint,
    Delete,
}

/// Decides from the node's readiness and what the cloud says (`exists`,
/// `shutdown` are only asked for nodes that are not Ready).
pub fn decide(node: &Node, exists: Option<bool>, shutdown: Option<bool>) -> Action {
    let tainted = util::has_taint(node, SHUTDOWN_TAINT);
    if util::is_ready(node) {
        return if tainted {
            Action::RemoveShutdownTaint
        } else {
            Action::Nothing
        };
    }
    match (exists, shutdown) {
        (Some(false), _) => Action::Delete,
        (Some(true), Some(true)) if !tainted => Action::AddShutdownTaint,
        _ => Action::Nothing,
    }
}

async fn monitor(
    api: &Api<Node>,
    nodes: &Informer<Node>,
    instances: &Arc<dyn Instances>,
    recorder: &Recorder,
) {
    for node in nodes.list() {
        let name = util::name(&node);
        let (mut exists, mut shutdown) = (None, None);
        if !util::is_ready(&node) {
            match instances.instance_exists(&node).await {
                Ok(e) => exists = Some(e),
                Err(e) => {
                    tracing::warn!("error checking if node {name} exists: {e:#}");
                    continue;
                }
            }
            if exists == Some(true) {
                match instances.instance_shutdown(&node).await {
                    Ok(s) => shutdown = Some(s),
                    Err(e) => tracing::warn!("error checking if node {name} is shutdown: {e:#}"),
                }
            }
        }
        let res = match decide(&node, exists, shutdown) {
            Action::Nothing => Ok(()),
            Action::RemoveShutdownTaint => {
                let t: Vec<Taint> = util::taints(&node)
                    .into_iter()
                    .filter(|t| t.key != SHUTDOWN_TAINT)
                    .collect();
                util::set_taints(api, &node, &t).await
            }
            Action::AddShutdownTaint => {
                let mut t = util::taints(&node);
                t.push(Taint {
                    key: SHUTDOWN_TAINT.into(),
                    effect: "NoSchedule".into(),
                    value: None,
                    time_added: None,
                });
                util::set_taints(api, &node, &t).await
            }
            Action::Delete => {
                tracing::info!(
                    "deleting node since it is no longer present in cloud provider: {name}"
                );
                let mut r = node_ref(&name);
                r.uid = node.metadata.uid.clone();
                recorder.event(
                    &r,
                    EventType::Normal,
                    "DeletingNode",
                    format!("Deleting node {name} because it does not exist in the cloud provider"),
                );
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => Ok(()),
                    Err(e) if util::is_not_found(&e) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        };
        if let Err(e) = res {
            tracing::warn!("cloud-node-lifecycle: node {name}: {e:#}");
        }
    }
}

/// The cloud node lifecycle controller.
pub async fn run(ctx: Context) -> Result<()> {
    let Some(instances) = ctx.cloud.instances_v2() else {
        tracing::warn!(
            "cloud-node-lifecycle-controller: the cloud provider does not support instances"
        );
        ctx.stop.cancelled().await;
        return Ok(());
    };
    let nodes = ctx.informers.get::<Node>();
    tokio::select! {
        _ = ctx.stop.cancelled() => return Ok(()),
        _ = nodes.wait_synced() => {}
    }
    let api: Api<Node> = Api::all(ctx.client.clone());
    let recorder = ctx.recorder("cloud-node-lifecycle-controller");
    let mut tick = tokio::time::interval(
        ctx.options
            .node_monitor_period
            .max(std::time::Duration::from_millis(100)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.stop.cancelled() => return Ok(()),
            _ = tick.tick() => monitor(&api, &nodes, &instances, &recorder).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};

    fn node(ready: Option<&str>, tainted: bool) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some("n".into());
        n.status = Some(NodeStatus {
            conditions: ready.map(|r| {
                vec![NodeCondition {
                    type_: "Ready".into(),
                    status: r.into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        });
        if tainted {
            n.spec = Some(NodeSpec {
                taints: Some(vec![Taint {
                    key: SHUTDOWN_TAINT.into(),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            });
        }
        n
    }

    #[test]
    fn decisions() {
        assert_eq!(
            decide(&node(Some("True"), false), None, None),
            Action::Nothing
        );
        assert_eq!(
            decide(&node(Some("True"), true), None, None),
            Action::RemoveShutdownTaint
        );
        assert_eq!(
            decide(&node(Some("False"), false), Some(false), None),
            Action::Delete
        );
        assert_eq!(
            decide(&node(None, false), Some(false), None),
            Action::Delete
        );
        assert_eq!(
            decide(&node(Some("Unknown"), false), Some(true), Some(true)),
            Action::AddShutdownTaint
        );
        assert_eq!(
            decide(&node(Some("Unknown"), true), Some(true), Some(true)),
            Action::Nothing
        );
        assert_eq!(
            decide(&node(Some("False"), false), Some(true), Some(false)),
            Action::Nothing
        );
        assert_eq!(
            decide(&node(Some("False"), false), None, None),
            Action::Nothing
        );
    }
}
