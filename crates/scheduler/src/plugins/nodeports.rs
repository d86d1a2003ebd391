//! NodePorts: a pod's host ports must be free on the node (0.0.0.0
//! conflicts with every address of the same protocol and port).

use super::prelude::*;

pub const NAME: &str = "NodePorts";
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

fn conflicts(a: &crate::framework::types::HostPort, b: &crate::framework::types::HostPort) -> bool {
    a.0 == b.0 && a.2 == b.2 && (a.1 == b.1 || a.1 == "0.0.0.0" || b.1 == "0.0.0.0")
}

impl FilterPlugin for NodePorts {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if pod
            .host_ports
            .iter()
            .any(|w| node.used_ports.iter().any(|u| conflicts(w, u)))
        {
            Status::unschedulable(ERR_REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};

    #[test]
    fn host_ports_conflict() {
        let st = CycleState::default();
        let n = node("n").with_pod(pod("a").host_port(80)).info();
        assert_eq!(
            NodePorts
                .filter(&st, &pod("b").host_port(80).info(), &n)
                .code,
            Code::Unschedulable
        );
        assert!(NodePorts
            .filter(&st, &pod("b").host_port(81).info(), &n)
            .is_success());
        assert!(NodePorts.filter(&st, &pod("b").info(), &n).is_success());
    }
}
