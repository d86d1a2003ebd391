//! NodeName: a pod with `spec.nodeName` fits only that node.

use super::prelude::*;

pub const NAME: &str = "NodeName";
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if pod.node_name.is_empty() || pod.node_name == node.name {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};

    #[test]
    fn only_the_named_node_fits() {
        let st = CycleState::default();
        let n = node("a").info();
        assert!(NodeName.filter(&st, &pod("p").info(), &n).is_success());
        assert!(NodeName
            .filter(&st, &pod("p").node_name("a").info(), &n)
            .is_success());
        assert_eq!(
            NodeName
                .filter(&st, &pod("p").node_name("b").info(), &n)
                .code,
            Code::UnschedulableAndUnresolvable
        );
    }
}
