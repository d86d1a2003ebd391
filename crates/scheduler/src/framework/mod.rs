//! The plugin-facing scheduling framework: result [`Status`]es, the
//! per-cycle [`CycleState`], and one small trait per extension point.
//!
//! A plugin implements [`Plugin`] (its name) and, through the `as_*`
//! accessors, whichever extension points it takes part in. The
//! [`runtime::Framework`] owns ordering and short-circuiting.

pub mod fit_error;
pub mod runtime;
pub mod types;

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;

pub use types::{NodeInfo, PodInfo, Resource, Snapshot};

/// Highest score a Score plugin may give after normalisation.
pub const MAX_NODE_SCORE: i64 = 100;

/// The outcome of running a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The plugin ran and accepts the pod (or node).
    Success,
    /// An internal error: the pod is retried with back-off; not a property
    /// of the node.
    Error,
    /// The pod does not fit now but might after preemption or other cluster
    /// changes: goes to the unschedulable queue and is considered by
    /// preemption.
    Unschedulable,
    /// The pod cannot fit on this node and preemption would not help
    /// (e.g. a node-affinity mismatch): preemption skips such nodes.
    UnschedulableAndUnresolvable,
    /// A Permit plugin asks the pod to wait (not used by in-tree plugins here).
    Wait,
    /// The plugin has nothing to do for this pod: its later extension
    /// points are skipped for this cycle.
    Skip,
    /// The pod waits for something outside the scheduler (e.g. a volume);
    /// re-queued only by a matching event.
    Pending,
}

/// A plugin's verdict: a [`Code`], human-readable reasons (these are what
/// the FailedScheduling message counts), and the plugin that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<String>,
    pub plugin: &'static str,
}

impl Status {
    pub fn success() -> Status {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }
    pub fn new(code: Code, reason: impl Into<String>) -> Status {
        Status {
            code,
            reasons: vec![reason.into()],
            plugin: "",
        }
    }
    pub fn with_reasons(code: Code, reasons: Vec<String>) -> Status {
        Status {
            code,
            reasons,
            plugin: "",
        }
    }
    pub fn unschedulable(reason: impl Into<String>) -> Status {
        Status::new(Code::Unschedulable, reason)
    }
    pub fn unresolvable(reason: impl Into<String>) -> Status {
        Status::new(Code::UnschedulableAndUnresolvable, reason)
    }
    pub fn error(reason: impl Into<String>) -> Status {
        Status::new(Code::Error, reason)
    }
    pub fn skip() -> Status {
        Status {
            code: Code::Skip,
            reasons: Vec::new(),
            plugin: "",
        }
    }
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }
    pub fn is_skip(&self) -> bool {
        self.code == Code::Skip
    }
    /// Unschedulable or UnschedulableAndUnresolvable.
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable | Code::Pending
        )
    }
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
    pub fn with_plugin(mut self, plugin: &'static str) -> Status {
        self.plugin = plugin;
        self
    }
}

/// Per-cycle data written by PreFilter/PreScore and read by Filter/Score,
/// keyed by plugin name. Read-only once filtering starts (filters run in
/// parallel).
#[derive(Default)]
pub struct CycleState {
    data: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
    /// Plugins that returned Skip at PreFilter (their Filter is not run).
    pub skip_filter: HashSet<&'static str>,
    /// Plugins that returned Skip at PreScore (their Score is not run).
    pub skip_score: HashSet<&'static str>,
}

impl CycleState {
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, v: T) {
        self.data.insert(key, Box::new(v));
    }
    pub fn read<T: Any + Send + Sync>(&self, key: &'static str) -> Option<&T> {
        self.data.get(key).and_then(|b| b.downcast_ref::<T>())
    }
}

/// What a PreFilter plugin can say about the nodes worth filtering:
/// `Some(names)` narrows the candidates (e.g. NodeName, NodeAffinity
/// over `metadata.name`), `None` leaves them all.
pub type PreFilterResult = Option<HashSet<String>>;

/// Every plugin has a name; the `as_*` accessors say which extension
/// points it implements.
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueuePlugin> {
        None
    }
    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        None
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        None
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        None
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        None
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        None
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        None
    }
    fn as_reserve(&self) -> Option<&dyn ReservePlugin> {
        None
    }
    fn as_pre_bind(&self) -> Option<&dyn PreBindPlugin> {
        None
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        None
    }
}

/// Decides whether a pod may enter the active queue at all (e.g.
/// scheduling gates). A rejected pod waits in the unschedulable pool until
/// it is updated.
pub trait PreEnqueuePlugin: Plugin {
    fn pre_enqueue(&self, pod: &Pod) -> Status;
}

/// Orders the active queue: `less(a, b)` means `a` is popped first.
pub trait QueueSortPlugin: Plugin {
    fn less(&self, a: &PodInfo, a_ts: u64, b: &PodInfo, b_ts: u64) -> bool;
}

/// Runs once per cycle before filtering; may compute state and narrow the
/// node set. Unschedulable here fails the pod for every node.
pub trait PreFilterPlugin: Plugin {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status);
}

/// Decides whether `pod` fits `node`. Must use only `node` (which may
/// include nominated or hypothetically removed pods), never the snapshot
/// directly, so preemption can reuse it. Called in parallel.
pub trait FilterPlugin: Plugin {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// Runs when no node fits (e.g. preemption). Returns the nominated node,
/// if it made room somewhere.
#[async_trait]
pub trait PostFilterPlugin: Plugin {
    async fn post_filter(
        &self,
        ctx: &runtime::PostFilterContext<'_>,
        pod: &PodInfo,
    ) -> (Option<String>, Status);
}

/// Runs once per cycle over the feasible nodes before scoring.
pub trait PreScorePlugin: Plugin {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status;
}

/// Ranks a feasible node. Raw scores may be any range; `normalize` maps
/// them to 0..=[`MAX_NODE_SCORE`] over all feasible nodes.
pub trait ScorePlugin: Plugin {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64;
    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, _scores: &mut [i64]) {}
}

/// Reserve/Unreserve around the assumed placement. Unreserve must be
/// idempotent: it may run after a partial Reserve.
pub trait ReservePlugin: Plugin {
    fn reserve(&self, state: &CycleState, pod: &PodInfo, node: &str) -> Status;
    fn unreserve(&self, _state: &CycleState, _pod: &PodInfo, _node: &str) {}
}

/// Work before binding (e.g. binding volumes). Runs in the binding cycle.
#[async_trait]
pub trait PreBindPlugin: Plugin {
    async fn pre_bind(
        &self,
        state: &CycleState,
        client: &kube::Client,
        pod: &Pod,
        node: &str,
    ) -> Status;
}

/// Binds the pod. Returning Skip passes to the next binder.
#[async_trait]
pub trait BindPlugin: Plugin {
    async fn bind(&self, client: &kube::Client, pod: &Pod, node: &str) -> Status;
}

/// Scale `scores` to 0..=MAX_NODE_SCORE by the highest one; `reverse` makes
/// the highest raw score the worst (upstream's DefaultNormalizeScore).
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [i64]) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = max_priority);
        }
        return;
    }
    for s in scores.iter_mut() {
        let mut v = max_priority * *s / max;
        if reverse {
            v = max_priority - v;
        }
        *s = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_scales_to_the_max_and_reverses() {
        let mut s = vec![0, 5, 10];
        default_normalize_score(100, false, &mut s);
        assert_eq!(s, vec![0, 50, 100]);
        let mut s = vec![0, 5, 10];
        default_normalize_score(100, true, &mut s);
        assert_eq!(s, vec![100, 50, 0]);
        let mut s = vec![0, 0];
        default_normalize_score(100, true, &mut s);
        assert_eq!(s, vec![100, 100]);
    }
}
