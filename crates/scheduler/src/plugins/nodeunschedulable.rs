//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods
//! tolerating the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use super::prelude::*;
use crate::framework::types::tolerates;
use k8s_openapi::api::core::v1::Taint;

pub const NAME: &str = "NodeUnschedulable";
pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const ERR_REASON_UNKNOWN_CONDITION: &str = "node(s) had unknown conditions";
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if node.name.is_empty() {
            return Status::unresolvable(ERR_REASON_UNKNOWN_CONDITION);
        }
        if !node.unschedulable {
            return Status::success();
        }
        let taint = Taint {
            key: TAINT_NODE_UNSCHEDULABLE.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if pod.tolerations().iter().any(|t| tolerates(t, &taint)) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_UNSCHEDULABLE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};

    #[test]
    fn cordoned_nodes_reject_intolerant_pods() {
        let st = CycleState::default();
        let cases = [
            ("schedulable", pod("p"), node("n"), Code::Success),
            (
                "cordoned",
                pod("p"),
                node("n").unschedulable(),
                Code::UnschedulableAndUnresolvable,
            ),
            (
                "cordoned but tolerated",
                pod("p").toleration(TAINT_NODE_UNSCHEDULABLE, "Exists", "", "NoSchedule"),
                node("n").unschedulable(),
                Code::Success,
            ),
        ];
        for (name, p, n, want) in cases {
            assert_eq!(
                NodeUnschedulable.filter(&st, &p.info(), &n.info()).code,
                want,
                "{name}"
            );
        }
    }
}
