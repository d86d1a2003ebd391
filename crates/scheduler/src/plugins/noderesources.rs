//! NodeResourcesFit: the pod's requests must fit the node's allocatable
//! minus what its pods request; scored by the configured strategy
//! (LeastAllocated by default, MostAllocated, RequestedToCapacityRatio).
//! NodeResourcesBalancedAllocation: prefer nodes whose CPU and memory use
//! stay balanced.

use super::prelude::*;

pub const FIT_NAME: &str = "NodeResourcesFit";
pub const BALANCED_NAME: &str = "NodeResourcesBalancedAllocation";

/// How NodeResourcesFit scores.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoringStrategy {
    LeastAllocated,
    MostAllocated,
    /// (utilization 0..=100, score 0..=10) points, piecewise linear.
    RequestedToCapacityRatio(Vec<(i64, i64)>),
}

/// (resource name, weight)
pub type ResourceWeights = Vec<(String, i64)>;

pub struct NodeResourcesFit {
    pub strategy: ScoringStrategy,
    pub resources: ResourceWeights,
}

impl Default for NodeResourcesFit {
    fn default() -> Self {
        NodeResourcesFit {
            strategy: ScoringStrategy::LeastAllocated,
            resources: default_resources(),
        }
    }
}

pub fn default_resources() -> ResourceWeights {
    vec![("cpu".into(), 1), ("memory".into(), 1)]
}

impl NodeResourcesFit {
    /// From the plugin's `args` (NodeResourcesFitArgs).
    pub fn from_args(args: Option<&serde_json::Value>) -> NodeResourcesFit {
        let mut p = NodeResourcesFit::default();
        let Some(ss) = args.and_then(|a| a.get("scoringStrategy")) else {
            return p;
        };
        if let Some(rs) = ss.get("resources").and_then(|r| r.as_array()) {
            p.resources = rs
                .iter()
                .filter_map(|r| {
                    Some((
                        r.get("name")?.as_str()?.to_string(),
                        r.get("weight").and_then(|w| w.as_i64()).unwrap_or(1),
                    ))
                })
                .collect();
        }
        p.strategy = match ss.get("type").and_then(|t| t.as_str()) {
            Some("MostAllocated") => ScoringStrategy::MostAllocated,
            Some("RequestedToCapacityRatio") => {
                let shape = ss
                    .pointer("/requestedToCapacityRatio/shape")
                    .and_then(|s| s.as_array())
                    .map(|pts| {
                        pts.iter()
                            .filter_map(|p| {
                                Some((p.get("utilization")?.as_i64()?, p.get("score")?.as_i64()?))
                            })
                            .collect()
                    })
                    .unwrap_or_else(|| vec![(0, 10), (100, 0)]);
                ScoringStrategy::RequestedToCapacityRatio(shape)
            }
            _ => ScoringStrategy::LeastAllocated,
        };
        p
    }
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        FIT_NAME
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

/// The reasons a pod does not fit `node`'s free resources.
pub fn insufficient_resources(pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
    let mut out = Vec::new();
    if node.pods.len() as i64 >= node.allocatable.allowed_pod_number {
        out.push("Too many pods".to_string());
    }
    let r = &pod.requests;
    let a = &node.allocatable;
    let u = &node.requested;
    if r.milli_cpu > 0 && r.milli_cpu > a.milli_cpu.saturating_sub(u.milli_cpu) {
        out.push("Insufficient cpu".into());
    }
    if r.memory > 0 && r.memory > a.memory.saturating_sub(u.memory) {
        out.push("Insufficient memory".into());
    }
    if r.ephemeral_storage > 0
        && r.ephemeral_storage > a.ephemeral_storage.saturating_sub(u.ephemeral_storage)
    {
        out.push("Insufficient ephemeral-storage".into());
    }
    for (k, v) in &r.scalar {
        if *v > 0
            && *v > a.scalar.get(k).copied().unwrap_or(0) - u.scalar.get(k).copied().unwrap_or(0)
        {
            out.push(format!("Insufficient {k}"));
        }
    }
    out
}

impl FilterPlugin for NodeResourcesFit {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let r = insufficient_resources(pod, node);
        if r.is_empty() {
            Status::success()
        } else {
            Status::with_reasons(Code::Unschedulable, r)
        }
    }
}

/// (requested including the pod, allocatable) of one resource for scoring.
fn requested_and_alloc(pod: &PodInfo, node: &NodeInfo, name: &str) -> (i64, i64) {
    match name {
        "cpu" => (
            node.non_zero_cpu + pod.non_zero_cpu,
            node.allocatable.milli_cpu,
        ),
        "memory" => (
            node.non_zero_mem + pod.non_zero_mem,
            node.allocatable.memory,
        ),
        _ => (
            node.requested.get(name) + pod.requests.get(name),
            node.allocatable.get(name),
        ),
    }
}

fn piecewise(shape: &[(i64, i64)], x: i64) -> i64 {
    // Shape scores are 0..=10; scale to MAX_NODE_SCORE.
    let pts: Vec<(i64, i64)> = shape
        .iter()
        .map(|(u, s)| (*u, s * MAX_NODE_SCORE / 10))
        .collect();
    let Some(first) = pts.first() else { return 0 };
    if x <= first.0 {
        return first.1;
    }
    for w in pts.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if x <= x1 {
            if x1 == x0 {
                return y1;
            }
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
        }
    }
    pts.last().unwrap().1
}

impl ScorePlugin for NodeResourcesFit {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let (mut total, mut weights) = (0i64, 0i64);
        for (name, w) in &self.resources {
            let (req, alloc) = requested_and_alloc(pod, node, name);
            if alloc == 0 {
                continue;
            }
            let s = match &self.strategy {
                ScoringStrategy::LeastAllocated => {
                    if req > alloc {
                        0
                    } else {
                        (alloc - req) * MAX_NODE_SCORE / alloc
                    }
                }
                ScoringStrategy::MostAllocated => req.min(alloc) * MAX_NODE_SCORE / alloc,
                ScoringStrategy::RequestedToCapacityRatio(shape) => {
                    piecewise(shape, (req.min(alloc) * 100) / alloc)
                }
            };
            total += s * w;
            weights += w;
        }
        if weights == 0 {
            0
        } else {
            total / weights
        }
    }
}

/// NodeResourcesBalancedAllocation.
pub struct BalancedAllocation {
    pub resources: ResourceWeights,
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        BALANCED_NAME
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl ScorePlugin for BalancedAllocation {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let fractions: Vec<f64> = self
            .resources
            .iter()
            .filter_map(|(name, _)| {
                let (req, alloc) = requested_and_alloc(pod, node, name);
                (alloc > 0).then(|| (req as f64 / alloc as f64).min(1.0))
            })
            .collect();
        if fractions.is_empty() {
            return 0;
        }
        let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
        let var =
            fractions.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / fractions.len() as f64;
        ((1.0 - var.sqrt()) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};

    #[test]
    fn filter_reports_every_insufficient_resource() {
        let st = CycleState::default();
        let n = node("n")
            .alloc("1", "1Gi", "2")
            .with_pod(pod("a").req("500m", "512Mi"))
            .info();
        assert!(NodeResourcesFit::default()
            .filter(&st, &pod("p").req("500m", "512Mi").info(), &n)
            .is_success());
        let s = NodeResourcesFit::default().filter(&st, &pod("p").req("600m", "600Mi").info(), &n);
        assert_eq!(s.reasons, vec!["Insufficient cpu", "Insufficient memory"]);
        let full = node("n").alloc("1", "1Gi", "1").with_pod(pod("a")).info();
        assert_eq!(
            NodeResourcesFit::default()
                .filter(&st, &pod("p").info(), &full)
                .reasons,
            vec!["Too many pods"]
        );
    }

    #[test]
    fn least_allocated_prefers_emptier_nodes_and_most_allocated_fuller() {
        let st = CycleState::default();
        let p = pod("p").req("1", "1Gi").info();
        let empty = node("e").alloc("4", "4Gi", "110").info();
        let busy = node("b")
            .alloc("4", "4Gi", "110")
            .with_pod(pod("x").req("2", "2Gi"))
            .info();
        let least = NodeResourcesFit::default();
        assert_eq!(least.score(&st, &p, &empty), 75);
        assert_eq!(least.score(&st, &p, &busy), 25);
        let most = NodeResourcesFit {
            strategy: ScoringStrategy::MostAllocated,
            resources: default_resources(),
        };
        assert_eq!(most.score(&st, &p, &busy), 75);
        let ratio = NodeResourcesFit::from_args(Some(
            &serde_json::json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
            "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}}}),
        ));
        assert_eq!(ratio.score(&st, &p, &busy), 75);
    }

    #[test]
    fn balanced_allocation_prefers_equal_fractions() {
        let st = CycleState::default();
        let b = BalancedAllocation {
            resources: default_resources(),
        };
        let n = node("n").alloc("4", "4Gi", "110").info();
        assert_eq!(b.score(&st, &pod("p").req("2", "2Gi").info(), &n), 100);
        assert_eq!(b.score(&st, &pod("p").req("4", "1Gi").info(), &n), 62);
    }
}
