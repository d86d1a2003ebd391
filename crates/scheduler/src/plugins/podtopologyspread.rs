//! PodTopologySpread: `topologySpreadConstraints` (DoNotSchedule filters,
//! ScheduleAnyway scores), plus upstream's system default constraints
//! (hostname maxSkew 3, zone maxSkew 5, ScheduleAnyway) for pods that
//! belong to a controller and declare none.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::nodeaffinity::required_matches;
use super::prelude::*;
use crate::framework::types::label_selector_matches;

pub const NAME: &str = "PodTopologySpread";
pub const ERR_CONSTRAINTS: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

#[derive(Debug, Clone)]
pub struct Constraint {
    pub max_skew: i64,
    pub topology_key: String,
    pub hard: bool,
    pub selector: LabelSelector,
    pub min_domains: i64,
}

/// Upstream's system defaults (used when `defaultingType: System`).
pub fn system_default_constraints(selector: LabelSelector) -> Vec<Constraint> {
    vec![
        Constraint {
            max_skew: 3,
            topology_key: "kubernetes.io/hostname".into(),
            hard: false,
            selector: selector.clone(),
            min_domains: 1,
        },
        Constraint {
            max_skew: 5,
            topology_key: "topology.kubernetes.io/zone".into(),
            hard: false,
            selector,
            min_domains: 1,
        },
    ]
}

pub struct PodTopologySpread;

fn constraints(pod: &PodInfo) -> Vec<Constraint> {
    let declared = pod
        .spec()
        .and_then(|s| s.topology_spread_constraints.as_ref());
    if let Some(cs) = declared.filter(|c| !c.is_empty()) {
        return cs
            .iter()
            .map(|c| {
                let mut selector = c.label_selector.clone().unwrap_or_default();
                // matchLabelKeys: AND the pod's own values of these keys.
                for k in c.match_label_keys.iter().flatten() {
                    if let Some(v) = pod.labels.get(k) {
                        selector
                            .match_labels
                            .get_or_insert_with(BTreeMap::new)
                            .insert(k.clone(), v.clone());
                    }
                }
                Constraint {
                    max_skew: c.max_skew as i64,
                    topology_key: c.topology_key.clone(),
                    hard: c.when_unsatisfiable == "DoNotSchedule",
                    selector,
                    min_domains: c.min_domains.unwrap_or(1) as i64,
                }
            })
            .collect();
    }
    // Defaults apply to pods owned by a controller; the selector is the
    // pod's own labels (an approximation of upstream's selector merged
    // from the owning Services/ReplicaSets/StatefulSets).
    let owned = pod
        .pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true));
    if !owned || pod.labels.is_empty() {
        return vec![];
    }
    system_default_constraints(LabelSelector {
        match_labels: Some(pod.labels.clone()),
        match_expressions: None,
    })
}

fn counts_for(
    c: &Constraint,
    pod: &PodInfo,
    snap: &Snapshot,
    only_eligible: bool,
) -> HashMap<String, i64> {
    let mut m: HashMap<String, i64> = HashMap::new();
    for node in &snap.nodes {
        let Some(v) = node.labels.get(&c.topology_key) else {
            continue;
        };
        if only_eligible && !required_matches(pod, node) {
            continue;
        }
        let n = node
            .pods
            .iter()
            .filter(|p| {
                !p.terminating
                    && p.namespace == pod.namespace
                    && label_selector_matches(Some(&c.selector), &p.labels)
            })
            .count() as i64;
        *m.entry(v.clone()).or_default() += n;
    }
    m
}

struct FilterState(Vec<(Constraint, HashMap<String, i64>)>);
struct ScoreState(Vec<(Constraint, HashMap<String, i64>, f64)>);

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let hard: Vec<Constraint> = constraints(pod).into_iter().filter(|c| c.hard).collect();
        if hard.is_empty() {
            return (None, Status::skip());
        }
        let st = hard.into_iter().map(|c| {
            let m = counts_for(&c, pod, snap, true);
            (c, m)
        });
        state.write(NAME, FilterState(st.collect()));
        (None, Status::success())
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(FilterState(cs)) = state.read::<FilterState>(NAME) else {
            return Status::success();
        };
        for (c, counts) in cs {
            let Some(v) = node.labels.get(&c.topology_key) else {
                return Status::unresolvable(ERR_MISSING_LABEL);
            };
            let self_match = label_selector_matches(Some(&c.selector), &pod.labels) as i64;
            let mut min = counts.values().copied().min().unwrap_or(0);
            if (counts.len() as i64) < c.min_domains {
                min = 0;
            }
            let matched = counts.get(v).copied().unwrap_or(0);
            if matched + self_match - min > c.max_skew {
                return Status::unschedulable(ERR_CONSTRAINTS);
            }
        }
        Status::success()
    }
}

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[Arc<NodeInfo>],
        snap: &Snapshot,
    ) -> Status {
        let soft: Vec<Constraint> = constraints(pod).into_iter().filter(|c| !c.hard).collect();
        if soft.is_empty() {
            return Status::skip();
        }
        let st = soft
            .into_iter()
            .map(|c| {
                let m = counts_for(&c, pod, snap, true);
                let w = ((m.len() + 2) as f64).ln();
                (c, m, w)
            })
            .collect();
        state.write(NAME, ScoreState(st));
        Status::success()
    }
}

impl ScorePlugin for PodTopologySpread {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(ScoreState(cs)) = state.read::<ScoreState>(NAME) else {
            return 0;
        };
        let mut s = 0.0;
        for (c, counts, w) in cs {
            if let Some(v) = node.labels.get(&c.topology_key) {
                s += counts.get(v).copied().unwrap_or(0) as f64 * w + (c.max_skew - 1) as f64;
            }
        }
        s.round() as i64
    }
    fn normalize(&self, state: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        if state.read::<ScoreState>(NAME).is_none() {
            return;
        }
        let (min, max) = (
            scores.iter().copied().min().unwrap_or(0),
            scores.iter().copied().max().unwrap_or(0),
        );
        for s in scores.iter_mut() {
            *s = if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use k8s_openapi::api::core::v1::TopologySpreadConstraint;

    fn spread(skew: i32, key: &str) -> TopologySpreadConstraint {
        TopologySpreadConstraint {
            max_skew: skew,
            topology_key: key.into(),
            when_unsatisfiable: "DoNotSchedule".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                match_expressions: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn skew_above_max_is_rejected_and_missing_labels_unresolvable() {
        let web = || pod("x").label("app", "web");
        let snap = Snapshot::from_nodes(vec![
            node("a").label("zone", "1").with_pod(web()).info(),
            node("b").label("zone", "2").info(),
            node("c").info(),
        ]);
        let p = pod("p")
            .label("app", "web")
            .spread(spread(1, "zone"))
            .info();
        let mut st = CycleState::default();
        let (_, s) = PodTopologySpread.pre_filter(&mut st, &p, &snap);
        assert!(s.is_success());
        let r: Vec<Status> = snap
            .nodes
            .iter()
            .map(|n| PodTopologySpread.filter(&st, &p, n))
            .collect();
        assert_eq!(r[0].reasons, vec![ERR_CONSTRAINTS]);
        assert!(r[1].is_success());
        assert_eq!(r[2].code, Code::UnschedulableAndUnresolvable);
        assert_eq!(r[2].reasons, vec![ERR_MISSING_LABEL]);
    }
}
