//! The controllers, registered by their upstream names (`--controllers`
//! takes the names or the short aliases).

pub mod node;
pub mod nodelifecycle;
pub mod route;
pub mod service;
pub mod util;

use crate::ControllerDescriptor;

pub const CLOUD_NODE: &str = "cloud-node-controller";
pub const CLOUD_NODE_LIFECYCLE: &str = "cloud-node-lifecycle-controller";
pub const SERVICE_LB: &str = "service-lb-controller";
pub const NODE_ROUTE: &str = "node-route-controller";

/// Every controller, in upstream's start order.
pub fn all() -> Vec<ControllerDescriptor> {
    vec![
        ControllerDescriptor::new(CLOUD_NODE, &["cloud-node"], |c| Box::pin(node::run(c))),
        ControllerDescriptor::new(CLOUD_NODE_LIFECYCLE, &["cloud-node-lifecycle"], |c| {
            Box::pin(nodelifecycle::run(c))
        }),
        ControllerDescriptor::new(SERVICE_LB, &["service"], |c| Box::pin(service::run(c))),
        ControllerDescriptor::new(NODE_ROUTE, &["route"], |c| Box::pin(route::run(c))),
    ]
}
