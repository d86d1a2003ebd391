//! The in-tree plugins, one per module, and the registry that builds them
//! by their upstream names.

pub mod defaultbinder;
pub mod defaultpreemption;
pub mod imagelocality;
pub mod interpodaffinity;
pub mod nodeaffinity;
pub mod nodename;
pub mod nodeports;
pub mod noderesources;
pub mod nodeunschedulable;
pub mod podtopologyspread;
pub mod queuesort;
pub mod schedulinggates;
pub mod tainttoleration;
pub mod volumebinding;
pub mod volumerestrictions;

#[cfg(test)]
pub mod testing;

use std::sync::Arc;

use crate::framework::Plugin;
use crate::listers::Listers;

/// What plugin modules need in scope.
pub(crate) mod prelude {
    pub use std::sync::Arc;

    pub use k8s_openapi::api::core::v1::Pod;

    pub use crate::framework::{
        default_normalize_score, BindPlugin, Code, CycleState, FilterPlugin, NodeInfo, Plugin,
        PodInfo, PostFilterPlugin, PreBindPlugin, PreEnqueuePlugin, PreFilterPlugin,
        PreFilterResult, PreScorePlugin, QueueSortPlugin, Resource, ScorePlugin, Snapshot, Status,
        MAX_NODE_SCORE,
    };
}

/// Upstream's default plugin set (v1 MultiPoint order) with score weights.
pub const DEFAULT_PLUGINS: &[(&str, i64)] = &[
    ("SchedulingGates", 0),
    ("PrioritySort", 0),
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("VolumeRestrictions", 0),
    ("VolumeBinding", 0),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("DefaultBinder", 0),
];

/// Build a plugin by name with its `args` (pluginConfig); None if unknown.
pub fn new_plugin(
    name: &str,
    args: Option<&serde_json::Value>,
    listers: &Listers,
) -> Option<Arc<dyn Plugin>> {
    Some(match name {
        queuesort::NAME => Arc::new(queuesort::PrioritySort),
        schedulinggates::NAME => Arc::new(schedulinggates::SchedulingGates),
        nodeunschedulable::NAME => Arc::new(nodeunschedulable::NodeUnschedulable),
        nodename::NAME => Arc::new(nodename::NodeName),
        tainttoleration::NAME => Arc::new(tainttoleration::TaintToleration),
        nodeaffinity::NAME => Arc::new(nodeaffinity::NodeAffinity),
        nodeports::NAME => Arc::new(nodeports::NodePorts),
        noderesources::FIT_NAME => Arc::new(noderesources::NodeResourcesFit::from_args(args)),
        noderesources::BALANCED_NAME => {
            let resources = args
                .and_then(|a| a.get("resources"))
                .and_then(|r| r.as_array())
                .map(|rs| {
                    rs.iter()
                        .filter_map(|r| {
                            Some((
                                r.get("name")?.as_str()?.to_string(),
                                r.get("weight").and_then(|w| w.as_i64()).unwrap_or(1),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_else(noderesources::default_resources);
            Arc::new(noderesources::BalancedAllocation { resources })
        }
        volumerestrictions::NAME => Arc::new(volumerestrictions::VolumeRestrictions {
            listers: listers.clone(),
        }),
        volumebinding::NAME => Arc::new(volumebinding::VolumeBinding {
            listers: listers.clone(),
        }),
        podtopologyspread::NAME => Arc::new(podtopologyspread::PodTopologySpread),
        interpodaffinity::NAME => Arc::new(interpodaffinity::InterPodAffinity),
        defaultpreemption::NAME => Arc::new(defaultpreemption::DefaultPreemption),
        imagelocality::NAME => Arc::new(imagelocality::ImageLocality),
        defaultbinder::NAME => Arc::new(defaultbinder::DefaultBinder),
        _ => return None,
    })
}
