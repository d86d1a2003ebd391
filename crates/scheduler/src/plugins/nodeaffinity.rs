//! NodeAffinity: `spec.nodeSelector` and required node affinity must match
//! the node; preferred terms add their weights to the score.

use std::collections::HashSet;

use super::prelude::*;
use crate::framework::types::{node_selector_term_matches, node_selector_terms_match};

pub const NAME: &str = "NodeAffinity";
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";

pub struct NodeAffinity;

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

fn required_terms(pod: &PodInfo) -> Option<&[k8s_openapi::api::core::v1::NodeSelectorTerm]> {
    pod.spec()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| &r.node_selector_terms[..])
}

/// Does the pod's nodeSelector and required node affinity match `node`?
pub fn required_matches(pod: &PodInfo, node: &NodeInfo) -> bool {
    if let Some(sel) = pod.spec().and_then(|s| s.node_selector.as_ref()) {
        if sel.iter().any(|(k, v)| node.labels.get(k) != Some(v)) {
            return false;
        }
    }
    required_terms(pod).is_none_or(|terms| node_selector_terms_match(terms, node))
}

impl PreFilterPlugin for NodeAffinity {
    fn pre_filter(
        &self,
        _: &mut CycleState,
        pod: &PodInfo,
        _: &Snapshot,
    ) -> (PreFilterResult, Status) {
        // Terms that pin metadata.name narrow the candidate nodes (what the
        // DaemonSet controller sets).
        let Some(terms) = required_terms(pod) else {
            return (None, Status::success());
        };
        let mut names = HashSet::new();
        for t in terms {
            let pinned: Vec<&String> = t
                .match_fields
                .iter()
                .flatten()
                .filter(|f| f.key == "metadata.name" && f.operator == "In")
                .flat_map(|f| f.values.iter().flatten())
                .collect();
            if pinned.is_empty() {
                return (None, Status::success());
            }
            names.extend(pinned.into_iter().cloned());
        }
        (Some(names), Status::success())
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if required_matches(pod, node) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_POD)
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        pod.spec()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|prefs| {
                prefs
                    .iter()
                    .filter(|p| p.weight != 0 && node_selector_term_matches(&p.preference, node))
                    .map(|p| p.weight as i64)
                    .sum()
            })
            .unwrap_or(0)
    }
    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        default_normalize_score(MAX_NODE_SCORE, false, scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity as NA, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
        PreferredSchedulingTerm,
    };

    fn term(key: &str, op: &str, vals: &[&str]) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: Some(vals.iter().map(|s| s.to_string()).collect()),
            }]),
            match_fields: None,
        }
    }

    #[test]
    fn node_selector_and_required_affinity_filter() {
        let st = CycleState::default();
        let ssd = node("a").label("disk", "ssd").info();
        let hdd = node("b").label("disk", "hdd").info();
        let p = pod("p").node_selector("disk", "ssd").info();
        assert!(NodeAffinity.filter(&st, &p, &ssd).is_success());
        let s = NodeAffinity.filter(&st, &p, &hdd);
        assert_eq!(
            (s.code, s.reasons),
            (
                Code::UnschedulableAndUnresolvable,
                vec![ERR_REASON_POD.to_string()]
            )
        );
        let aff = Affinity {
            node_affinity: Some(NA {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![term("disk", "NotIn", &["ssd"])],
                }),
                preferred_during_scheduling_ignored_during_execution: None,
            }),
            ..Default::default()
        };
        let p = pod("p").affinity(aff).info();
        assert!(!NodeAffinity.filter(&st, &p, &ssd).is_success());
        assert!(NodeAffinity.filter(&st, &p, &hdd).is_success());
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let st = CycleState::default();
        let aff = Affinity {
            node_affinity: Some(NA {
                required_during_scheduling_ignored_during_execution: None,
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    PreferredSchedulingTerm {
                        weight: 10,
                        preference: term("zone", "In", &["a"]),
                    },
                    PreferredSchedulingTerm {
                        weight: 30,
                        preference: term("disk", "Exists", &[]),
                    },
                ]),
            }),
            ..Default::default()
        };
        let p = pod("p").affinity(aff).info();
        let mut s = vec![
            NodeAffinity.score(&st, &p, &node("a").label("zone", "a").info()),
            NodeAffinity.score(
                &st,
                &p,
                &node("b").label("zone", "a").label("disk", "x").info(),
            ),
            NodeAffinity.score(&st, &p, &node("c").info()),
        ];
        assert_eq!(s, vec![10, 40, 0]);
        NodeAffinity.normalize(&st, &p, &mut s);
        assert_eq!(s, vec![25, 100, 0]);
    }
}
