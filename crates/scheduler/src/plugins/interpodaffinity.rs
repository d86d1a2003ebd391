//! InterPodAffinity: required pod affinity / anti-affinity of the incoming
//! pod, the required anti-affinity of pods already placed (symmetry), and
//! preferred terms for scoring, all over topology domains (node label
//! key=value).

use std::collections::HashMap;

use super::prelude::*;
use crate::framework::types::term_matches_pod;

pub const NAME: &str = "InterPodAffinity";
pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// Weight of existing pods' required affinity terms in scoring (upstream's
/// default hardPodAffinityWeight).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

type Topology = (String, String);

#[derive(Default)]
struct PreFilterState {
    /// Domains where an existing pod's required anti-affinity rejects us.
    existing_anti: HashMap<Topology, i64>,
    /// Domains with pods matching all our required affinity terms.
    affinity: HashMap<Topology, i64>,
    /// Domains with pods matching one of our required anti-affinity terms.
    anti: HashMap<Topology, i64>,
}

pub struct InterPodAffinity;

impl Plugin for InterPodAffinity {
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

fn topo(node: &NodeInfo, key: &str) -> Option<Topology> {
    node.labels.get(key).map(|v| (key.to_string(), v.clone()))
}

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let mut st = PreFilterState::default();
        let own = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
        for node in &snap.nodes {
            if node.affinity_pods == 0 && !own {
                continue;
            }
            for ex in &node.pods {
                for t in &ex.required_anti_affinity {
                    if term_matches_pod(t, &ex.namespace, pod) {
                        if let Some(tp) = topo(node, &t.topology_key) {
                            *st.existing_anti.entry(tp).or_default() += 1;
                        }
                    }
                }
                if !pod.required_affinity.is_empty()
                    && pod
                        .required_affinity
                        .iter()
                        .all(|t| term_matches_pod(t, &pod.namespace, ex))
                {
                    for t in &pod.required_affinity {
                        if let Some(tp) = topo(node, &t.topology_key) {
                            *st.affinity.entry(tp).or_default() += 1;
                        }
                    }
                }
                for t in &pod.required_anti_affinity {
                    if term_matches_pod(t, &pod.namespace, ex) {
                        if let Some(tp) = topo(node, &t.topology_key) {
                            *st.anti.entry(tp).or_default() += 1;
                        }
                    }
                }
            }
        }
        if st.existing_anti.is_empty() && !own {
            return (None, Status::skip());
        }
        state.write(NAME, st);
        (None, Status::success())
    }
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(st) = state.read::<PreFilterState>(NAME) else {
            return Status::success();
        };
        if !pod.required_affinity.is_empty() {
            let all_ok = pod.required_affinity.iter().all(|t| {
                topo(node, &t.topology_key)
                    .is_some_and(|tp| st.affinity.get(&tp).is_some_and(|c| *c > 0))
            });
            if !all_ok {
                // The first pod of a group may land anywhere its own terms
                // would match it, if no pod matches yet.
                let self_match = pod
                    .required_affinity
                    .iter()
                    .all(|t| term_matches_pod(t, &pod.namespace, pod));
                let keys_present = pod
                    .required_affinity
                    .iter()
                    .all(|t| node.labels.contains_key(&t.topology_key));
                if !(st.affinity.is_empty() && self_match && keys_present) {
                    return Status::unresolvable(ERR_AFFINITY);
                }
            }
        }
        for t in &pod.required_anti_affinity {
            if topo(node, &t.topology_key)
                .is_some_and(|tp| st.anti.get(&tp).is_some_and(|c| *c > 0))
            {
                return Status::unschedulable(ERR_ANTI_AFFINITY);
            }
        }
        if node.labels.iter().any(|(k, v)| {
            st.existing_anti
                .get(&(k.clone(), v.clone()))
                .is_some_and(|c| *c > 0)
        }) {
            return Status::unschedulable(ERR_EXISTING_ANTI_AFFINITY);
        }
        Status::success()
    }
}

struct ScoreState(HashMap<Topology, i64>);

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[Arc<NodeInfo>],
        snap: &Snapshot,
    ) -> Status {
        let own = !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        let mut m: HashMap<Topology, i64> = HashMap::new();
        let mut add = |node: &NodeInfo, key: &str, w: i64| {
            if let Some(tp) = topo(node, key) {
                *m.entry(tp).or_default() += w;
            }
        };
        for node in &snap.nodes {
            if node.affinity_pods == 0 && !own {
                continue;
            }
            for ex in &node.pods {
                for (w, t) in &pod.preferred_affinity {
                    if term_matches_pod(t, &pod.namespace, ex) {
                        add(node, &t.topology_key, *w as i64);
                    }
                }
                for (w, t) in &pod.preferred_anti_affinity {
                    if term_matches_pod(t, &pod.namespace, ex) {
                        add(node, &t.topology_key, -(*w as i64));
                    }
                }
                for t in &ex.required_affinity {
                    if term_matches_pod(t, &ex.namespace, pod) {
                        add(node, &t.topology_key, HARD_POD_AFFINITY_WEIGHT);
                    }
                }
                for (w, t) in &ex.preferred_affinity {
                    if term_matches_pod(t, &ex.namespace, pod) {
                        add(node, &t.topology_key, *w as i64);
                    }
                }
                for (w, t) in &ex.preferred_anti_affinity {
                    if term_matches_pod(t, &ex.namespace, pod) {
                        add(node, &t.topology_key, -(*w as i64));
                    }
                }
            }
        }
        if m.is_empty() {
            return Status::skip();
        }
        state.write(NAME, ScoreState(m));
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(ScoreState(m)) = state.read::<ScoreState>(NAME) else {
            return 0;
        };
        node.labels
            .iter()
            .map(|(k, v)| m.get(&(k.clone(), v.clone())).copied().unwrap_or(0))
            .sum()
    }
    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        let (min, max) = (
            scores.iter().copied().min().unwrap_or(0),
            scores.iter().copied().max().unwrap_or(0),
        );
        for s in scores.iter_mut() {
            *s = if max > min {
                MAX_NODE_SCORE * (*s - min) / (max - min)
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use k8s_openapi::api::core::v1::{Affinity, PodAffinity, PodAffinityTerm, PodAntiAffinity};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn term(app: &str) -> PodAffinityTerm {
        PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), app.to_string())].into()),
                match_expressions: None,
            }),
            topology_key: "kubernetes.io/hostname".into(),
            ..Default::default()
        }
    }

    fn run(p: &PodInfo, nodes: Vec<NodeInfo>) -> Vec<Status> {
        let snap = Snapshot::from_nodes(nodes);
        let mut st = CycleState::default();
        let (_, s) = InterPodAffinity.pre_filter(&mut st, p, &snap);
        snap.nodes
            .iter()
            .map(|n| {
                if s.is_skip() {
                    Status::success()
                } else {
                    InterPodAffinity.filter(&st, p, n)
                }
            })
            .collect()
    }

    #[test]
    fn anti_affinity_keeps_replicas_apart() {
        let anti = Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![term("web")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = pod("p").label("app", "web").affinity(anti.clone()).info();
        let r = run(
            &p,
            vec![
                node("a").with_pod(pod("x").label("app", "web")).info(),
                node("b").info(),
            ],
        );
        assert_eq!(r[0].reasons, vec![ERR_ANTI_AFFINITY]);
        assert!(r[1].is_success());
        // Symmetry: an existing pod's anti-affinity rejects us.
        let p = pod("p").label("app", "web").info();
        let r = run(
            &p,
            vec![
                node("a")
                    .with_pod(pod("x").label("app", "web").affinity(anti))
                    .info(),
                node("b").info(),
            ],
        );
        assert_eq!(r[0].reasons, vec![ERR_EXISTING_ANTI_AFFINITY]);
        assert!(r[1].is_success());
    }

    #[test]
    fn affinity_requires_a_matching_pod_in_the_domain() {
        let aff = Affinity {
            pod_affinity: Some(PodAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![term("db")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = pod("p").affinity(aff.clone()).info();
        let r = run(
            &p,
            vec![
                node("a").with_pod(pod("x").label("app", "db")).info(),
                node("b").info(),
            ],
        );
        assert!(r[0].is_success());
        assert_eq!(
            (r[1].code, r[1].reasons.clone()),
            (
                Code::UnschedulableAndUnresolvable,
                vec![ERR_AFFINITY.to_string()]
            )
        );
        // No matching pod anywhere, but the pod matches itself: allowed.
        let p = pod("p").label("app", "db").affinity(aff).info();
        let r = run(&p, vec![node("a").info()]);
        assert!(r[0].is_success());
    }
}
