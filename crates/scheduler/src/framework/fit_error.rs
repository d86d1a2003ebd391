//! Why a pod fits no node, in upstream's message form:
//! `0/3 nodes are available: 1 node(s) had untolerated taint {a: b}, 2
//! Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is
//! not helpful for scheduling.`

use std::collections::{BTreeSet, HashMap};

use super::Status;

/// What the filters said about every node of a failed cycle.
#[derive(Debug, Clone, Default)]
pub struct Diagnosis {
    /// node name → the rejecting status.
    pub node_to_status: HashMap<String, Status>,
    /// Set when a PreFilter plugin rejected the pod for all nodes.
    pub pre_filter_msg: String,
    /// The PostFilter (preemption) outcome, e.g. `preemption: ...`.
    pub post_filter_msg: String,
    /// Plugins that rejected the pod (drive re-queueing).
    pub unschedulable_plugins: BTreeSet<&'static str>,
}

/// No node fits the pod.
#[derive(Debug, Clone)]
pub struct FitError {
    pub num_all_nodes: usize,
    pub diagnosis: Diagnosis,
    /// Status applied to nodes absent from `node_to_status` (e.g. after a
    /// PreFilter rejection, or "Preemption is not helpful" in preemption).
    pub absent_nodes_reason: Option<String>,
}

/// `"{count} {reason}"` for every reason, sorted as strings, joined by ", ".
pub fn reasons_histogram<'a>(
    statuses: impl Iterator<Item = &'a Status>,
    absent: Option<(&str, usize)>,
) -> String {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for s in statuses {
        for r in &s.reasons {
            *counts.entry(r.as_str()).or_default() += 1;
        }
    }
    if let Some((r, n)) = absent.filter(|(_, n)| *n > 0) {
        *counts.entry(r).or_default() += n;
    }
    let mut v: Vec<String> = counts
        .into_iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    v.sort();
    v.join(", ")
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        if !self.diagnosis.pre_filter_msg.is_empty() {
            write!(f, " {}.", self.diagnosis.pre_filter_msg)?;
        } else {
            let absent = self
                .num_all_nodes
                .saturating_sub(self.diagnosis.node_to_status.len());
            let h = reasons_histogram(
                self.diagnosis.node_to_status.values(),
                self.absent_nodes_reason.as_deref().map(|r| (r, absent)),
            );
            if !h.is_empty() {
                write!(f, " {h}.")?;
            }
        }
        if !self.diagnosis.post_filter_msg.is_empty() {
            write!(f, " {}", self.diagnosis.post_filter_msg)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;

    #[test]
    fn message_counts_and_sorts_reasons_like_upstream() {
        let mut d = Diagnosis::default();
        d.node_to_status.insert(
            "a".into(),
            Status::unresolvable("node(s) had untolerated taint {k: v}"),
        );
        d.node_to_status
            .insert("b".into(), Status::unschedulable("Insufficient cpu"));
        d.node_to_status.insert(
            "c".into(),
            Status::with_reasons(
                Code::Unschedulable,
                vec!["Insufficient cpu".into(), "Insufficient memory".into()],
            ),
        );
        d.post_filter_msg =
            "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
                .into();
        let e = FitError {
            num_all_nodes: 3,
            diagnosis: d,
            absent_nodes_reason: None,
        };
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint {k: v}, \
             2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn prefilter_rejection_replaces_the_node_histogram() {
        let d = Diagnosis {
            pre_filter_msg: "pod has unbound immediate PersistentVolumeClaims".into(),
            ..Default::default()
        };
        let e = FitError {
            num_all_nodes: 2,
            diagnosis: d,
            absent_nodes_reason: None,
        };
        assert_eq!(
            e.to_string(),
            "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."
        );
    }

    #[test]
    fn absent_nodes_get_the_default_reason() {
        let e = FitError {
            num_all_nodes: 3,
            diagnosis: Diagnosis::default(),
            absent_nodes_reason: Some("Preemption is not helpful for scheduling".into()),
        };
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
    }
}
