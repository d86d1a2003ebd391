//! TaintToleration: NoSchedule/NoExecute taints must be tolerated; nodes
//! with fewer untolerated PreferNoSchedule taints score higher.

use super::prelude::*;
use crate::framework::types::{find_untolerated, tolerates};

pub const NAME: &str = "TaintToleration";

pub struct TaintToleration;

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match find_untolerated(&node.taints, pod.tolerations(), |t| {
            t.effect == "NoSchedule" || t.effect == "NoExecute"
        }) {
            None => Status::success(),
            Some(t) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            )),
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let tols: Vec<_> = pod
            .tolerations()
            .iter()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
            })
            .collect();
        node.taints
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule" && !tols.iter().any(|tol| tolerates(tol, t)))
            .count() as i64
    }
    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        default_normalize_score(MAX_NODE_SCORE, true, scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};

    #[test]
    fn untolerated_taints_reject_with_upstream_reason() {
        let st = CycleState::default();
        let n = node("n").taint("dedicated", "gpu", "NoSchedule").info();
        let s = TaintToleration.filter(&st, &pod("p").info(), &n);
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(
            s.reasons,
            vec!["node(s) had untolerated taint {dedicated: gpu}"]
        );
        let p = pod("p")
            .toleration("dedicated", "Equal", "gpu", "NoSchedule")
            .info();
        assert!(TaintToleration.filter(&st, &p, &n).is_success());
        let soft = node("n").taint("a", "b", "PreferNoSchedule").info();
        assert!(TaintToleration
            .filter(&st, &pod("p").info(), &soft)
            .is_success());
    }

    #[test]
    fn prefer_no_schedule_lowers_the_score() {
        let st = CycleState::default();
        let p = pod("p").info();
        let mut s = vec![
            TaintToleration.score(&st, &p, &node("a").info()),
            TaintToleration.score(
                &st,
                &p,
                &node("b").taint("x", "", "PreferNoSchedule").info(),
            ),
        ];
        TaintToleration.normalize(&st, &p, &mut s);
        assert_eq!(s, vec![100, 0]);
    }
}
