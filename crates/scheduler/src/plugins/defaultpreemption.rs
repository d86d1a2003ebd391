//! DefaultPreemption: when no node fits, find the node where evicting the
//! fewest, lowest-priority pods (respecting PodDisruptionBudgets where
//! possible) makes room, delete those victims and nominate the node.

use std::collections::HashMap;

use async_trait::async_trait;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use super::prelude::*;
use crate::framework::fit_error::{Diagnosis, FitError};
use crate::framework::runtime::PostFilterContext;
use crate::framework::types::label_selector_matches;

pub const NAME: &str = "DefaultPreemption";
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

pub struct DefaultPreemption;

/// Victims on one node.
#[derive(Debug)]
pub struct Candidate {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
    pub pdb_violations: usize,
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        Some(self)
    }
}

fn violates_pdb(
    p: &PodInfo,
    pdbs: &[Arc<PodDisruptionBudget>],
    allowed: &mut HashMap<String, i32>,
) -> bool {
    let mut violating = false;
    for pdb in pdbs {
        if pdb.metadata.namespace.as_deref() != Some(p.namespace.as_str()) {
            continue;
        }
        let sel = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
        // An empty selector matches nothing for PDBs in policy/v1 only when
        // nil; `{}` matches every pod.
        if !label_selector_matches(sel, &p.labels) {
            continue;
        }
        let key = pdb.metadata.name.clone().unwrap_or_default();
        let left = allowed.entry(key).or_insert_with(|| {
            pdb.status
                .as_ref()
                .map(|s| s.disruptions_allowed)
                .unwrap_or(0)
        });
        *left -= 1;
        if *left < 0 {
            violating = true;
        }
    }
    violating
}

/// The fewest lower-priority pods to remove from `node` so `pod` fits.
pub fn select_victims(
    ctx: &PostFilterContext<'_>,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Option<Candidate> {
    let mut ni = node.clone();
    let mut lower: Vec<Arc<PodInfo>> = ni
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if lower.is_empty() {
        return None;
    }
    for p in &lower {
        ni.remove_pod(&p.key);
    }
    if !ctx.framework.run_filter(ctx.state, pod, &ni).is_success() {
        return None;
    }
    // Most important first, so they are the first to be reprieved.
    lower.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| start_time(a).cmp(&start_time(b)))
    });
    let mut allowed = HashMap::new();
    let (violating, ok): (Vec<_>, Vec<_>) = lower
        .into_iter()
        .partition(|p| violates_pdb(p, ctx.pdbs, &mut allowed));
    let mut victims = Vec::new();
    let mut pdb_violations = 0;
    for (group, is_violating) in [(violating, true), (ok, false)] {
        for p in group {
            ni.add_pod(p.clone());
            if !ctx.framework.run_filter(ctx.state, pod, &ni).is_success() {
                ni.remove_pod(&p.key);
                if is_violating {
                    pdb_violations += 1;
                }
                victims.push(p);
            }
        }
    }
    Some(Candidate {
        node: node.name.clone(),
        victims,
        pdb_violations,
    })
}

fn start_time(p: &PodInfo) -> Option<k8s_openapi::jiff::Timestamp> {
    p.pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
}

/// Upstream's ordering: fewest PDB violations, lowest highest-victim
/// priority, smallest priority sum, fewest victims.
pub fn pick_best(mut cands: Vec<Candidate>) -> Option<Candidate> {
    cands.sort_by_key(|c| {
        let top = c
            .victims
            .iter()
            .map(|v| v.priority)
            .max()
            .unwrap_or(i32::MIN);
        let sum: i64 = c
            .victims
            .iter()
            .map(|v| v.priority as i64 + i32::MAX as i64 + 1)
            .sum();
        (c.pdb_violations, top, sum, c.victims.len())
    });
    cands.into_iter().next()
}

#[async_trait]
impl PostFilterPlugin for DefaultPreemption {
    async fn post_filter(
        &self,
        ctx: &PostFilterContext<'_>,
        pod: &PodInfo,
    ) -> (Option<String>, Status) {
        let spec = pod.spec();
        if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
            return (
                None,
                Status::unschedulable("preemption: not eligible due to preemptionPolicy=Never."),
            );
        }
        if let Some(nn) = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty())
        {
            let terminating = ctx.snapshot.get(nn).is_some_and(|n| {
                n.pods
                    .iter()
                    .any(|p| p.terminating && p.priority < pod.priority)
            });
            if terminating {
                return (
                    None,
                    Status::unschedulable(
                        "preemption: not eligible due to a terminating pod on the nominated node.",
                    ),
                );
            }
        }
        let mut diag = Diagnosis::default();
        let mut cands = Vec::new();
        for node in &ctx.snapshot.nodes {
            match ctx.diagnosis.node_to_status.get(&node.name) {
                Some(s) if s.code == Code::Unschedulable => match select_victims(ctx, pod, node) {
                    Some(c) => cands.push(c),
                    None => {
                        diag.node_to_status
                            .insert(node.name.clone(), Status::unschedulable(NO_VICTIMS));
                    }
                },
                _ => {}
            }
        }
        let Some(best) = pick_best(cands) else {
            let fe = FitError {
                num_all_nodes: ctx.snapshot.nodes.len(),
                diagnosis: diag,
                absent_nodes_reason: Some(NOT_HELPFUL.into()),
            };
            return (None, Status::unschedulable(format!("preemption: {fe}")));
        };
        for v in &best.victims {
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &v.namespace);
            let cond = serde_json::json!({"status": {"conditions": [{
                "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                "message": format!("{}: preempting to accommodate a higher priority pod", ctx.framework.scheduler_name),
                "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            }]}});
            let _ = api
                .patch_status(&v.name, &PatchParams::default(), &Patch::Strategic(&cond))
                .await;
            match api.delete(&v.name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return (None, Status::error(format!("preempting {}: {e}", v.key))),
            }
            ctx.recorder.normal(
                &*v.pod,
                "Preempted",
                format!("Preempted by pod {} on node {}", pod.uid, best.node),
            );
        }
        (Some(best.node), Status::success())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::pod;

    #[test]
    fn best_candidate_has_lowest_victims() {
        let v = |n: &str, p: i32| Arc::new(pod(n).priority(p).info());
        let c = pick_best(vec![
            Candidate {
                node: "a".into(),
                victims: vec![v("x", 10)],
                pdb_violations: 0,
            },
            Candidate {
                node: "b".into(),
                victims: vec![v("y", 1), v("z", 1)],
                pdb_violations: 0,
            },
            Candidate {
                node: "c".into(),
                victims: vec![v("w", 0)],
                pdb_violations: 1,
            },
        ])
        .unwrap();
        assert_eq!(c.node, "b");
    }
}
