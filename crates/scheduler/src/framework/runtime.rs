//! The framework runtime of one profile: which plugins run at which
//! extension point, in which order and with which score weight, and the
//! `run_*` methods that own ordering and short-circuiting.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::fit_error::Diagnosis;
use super::{Code, CycleState, NodeInfo, Plugin, PodInfo, Snapshot, Status, MAX_NODE_SCORE};

/// Below this many nodes, filter on the calling thread.
const PARALLEL_THRESHOLD: usize = 64;
/// Upstream's minimum number of feasible nodes to look for.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// Everything a PostFilter plugin (preemption) may look at.
pub struct PostFilterContext<'a> {
    pub framework: &'a Framework,
    pub state: &'a CycleState,
    pub snapshot: &'a Snapshot,
    pub diagnosis: &'a Diagnosis,
    pub client: &'a kube::Client,
    pub pdbs: &'a [Arc<PodDisruptionBudget>],
    pub recorder: &'a client_base::events::Recorder,
}

/// The plugins of one profile, per extension point.
pub struct Framework {
    /// The profile's `schedulerName`.
    pub scheduler_name: String,
    /// 0 = adaptive (upstream's default).
    pub percentage_of_nodes_to_score: usize,
    plugins: Vec<Arc<dyn Plugin>>,
    pre_enqueue: Vec<usize>,
    queue_sort: Option<usize>,
    pre_filter: Vec<usize>,
    filter: Vec<usize>,
    post_filter: Vec<usize>,
    pre_score: Vec<usize>,
    score: Vec<(usize, i64)>,
    reserve: Vec<usize>,
    pre_bind: Vec<usize>,
    bind: Vec<usize>,
}

impl Framework {
    /// `plugins` in order, with their score weights (ignored for non-Score plugins).
    pub fn new(
        scheduler_name: &str,
        plugins: Vec<(Arc<dyn Plugin>, i64)>,
        percentage: usize,
    ) -> Framework {
        let entries = plugins
            .into_iter()
            .map(|(p, w)| (p, w, Vec::new()))
            .collect();
        Framework::with_points(scheduler_name, entries, percentage)
    }

    /// Like [`Framework::new`], with extension points (config names such as
    /// `filter`, `score`) at which each plugin is disabled.
    pub fn with_points(
        scheduler_name: &str,
        plugins: Vec<(Arc<dyn Plugin>, i64, Vec<String>)>,
        percentage: usize,
    ) -> Framework {
        let mut fw = Framework {
            scheduler_name: scheduler_name.to_string(),
            percentage_of_nodes_to_score: percentage,
            plugins: Vec::new(),
            pre_enqueue: vec![],
            queue_sort: None,
            pre_filter: vec![],
            filter: vec![],
            post_filter: vec![],
            pre_score: vec![],
            score: vec![],
            reserve: vec![],
            pre_bind: vec![],
            bind: vec![],
        };
        for (i, (p, w, off)) in plugins.into_iter().enumerate() {
            let on = |point: &str| !off.iter().any(|o| o == point);
            if p.as_pre_enqueue().is_some() && on("preEnqueue") {
                fw.pre_enqueue.push(i);
            }
            if p.as_queue_sort().is_some() && on("queueSort") && fw.queue_sort.is_none() {
                fw.queue_sort = Some(i);
            }
            if p.as_pre_filter().is_some() && on("preFilter") {
                fw.pre_filter.push(i);
            }
            if p.as_filter().is_some() && on("filter") {
                fw.filter.push(i);
            }
            if p.as_post_filter().is_some() && on("postFilter") {
                fw.post_filter.push(i);
            }
            if p.as_pre_score().is_some() && on("preScore") {
                fw.pre_score.push(i);
            }
            if p.as_score().is_some() && on("score") {
                fw.score.push((i, w.max(1)));
            }
            if p.as_reserve().is_some() && on("reserve") {
                fw.reserve.push(i);
            }
            if p.as_pre_bind().is_some() && on("preBind") {
                fw.pre_bind.push(i);
            }
            if p.as_bind().is_some() && on("bind") {
                fw.bind.push(i);
            }
            fw.plugins.push(p);
        }
        fw
    }

    /// Plugin names per extension point (for logs and tests).
    pub fn plugin_names(&self) -> Vec<&'static str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }

    pub fn has_post_filter(&self) -> bool {
        !self.post_filter.is_empty()
    }

    /// All PreEnqueue plugins must pass for the pod to become active.
    pub fn run_pre_enqueue(&self, pod: &Pod) -> Status {
        for &i in &self.pre_enqueue {
            let p = &self.plugins[i];
            let s = p.as_pre_enqueue().unwrap().pre_enqueue(pod);
            if !s.is_success() {
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// Queue order (PrioritySort): true when `a` goes first. Without a
    /// QueueSort plugin, FIFO.
    pub fn less(&self, a: &PodInfo, a_ts: u64, b: &PodInfo, b_ts: u64) -> bool {
        match self.queue_sort {
            Some(i) => self.plugins[i]
                .as_queue_sort()
                .unwrap()
                .less(a, a_ts, b, b_ts),
            None => a_ts < b_ts,
        }
    }

    /// Runs every PreFilter; the node sets they return are intersected.
    /// The first rejection ends the cycle for all nodes.
    pub fn run_pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
    ) -> (Option<HashSet<String>>, Status) {
        let mut result: Option<HashSet<String>> = None;
        for &i in &self.pre_filter {
            let p = &self.plugins[i];
            let (r, s) = p.as_pre_filter().unwrap().pre_filter(state, pod, snap);
            if s.is_skip() {
                state.skip_filter.insert(p.name());
                continue;
            }
            if !s.is_success() {
                return (None, s.with_plugin(p.name()));
            }
            if let Some(set) = r {
                result = Some(match result {
                    None => set,
                    Some(prev) => prev.intersection(&set).cloned().collect(),
                });
            }
        }
        (result, Status::success())
    }

    /// Filters in order; the first non-success is the node's status.
    pub fn run_filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        for &i in &self.filter {
            let p = &self.plugins[i];
            if state.skip_filter.contains(p.name()) {
                continue;
            }
            let s = p.as_filter().unwrap().filter(state, pod, node);
            if !s.is_success() {
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// How many feasible nodes to look for before stopping (upstream's
    /// adaptive percentageOfNodesToScore).
    pub fn num_feasible_nodes_to_find(&self, all: usize) -> usize {
        if all < MIN_FEASIBLE_NODES_TO_FIND {
            return all;
        }
        let mut pct = self.percentage_of_nodes_to_score;
        if pct == 0 {
            pct = 50usize
                .saturating_sub(all / 125)
                .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
        }
        if pct >= 100 {
            return all;
        }
        (all * pct / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
    }

    /// Filter `candidates` (indices into the snapshot) starting at `start`
    /// (rotating, so every node gets its turn), in parallel for large
    /// clusters. Returns the feasible nodes, the diagnosis and how many
    /// nodes were examined.
    pub fn find_nodes_that_fit(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
        candidates: &[usize],
        start: usize,
    ) -> (Vec<Arc<NodeInfo>>, Diagnosis, usize) {
        let n = candidates.len();
        let want = self.num_feasible_nodes_to_find(n);
        let mut diagnosis = Diagnosis::default();
        if n == 0 {
            return (vec![], diagnosis, 0);
        }
        let order = |k: usize| candidates[(start + k) % n];
        if self.filter.is_empty() {
            let nodes: Vec<_> = (0..want).map(|k| snap.nodes[order(k)].clone()).collect();
            return (nodes, diagnosis, want);
        }
        let found = AtomicUsize::new(0);
        let processed = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, Arc<NodeInfo>)>> = Mutex::new(Vec::new());
        let failures: Mutex<Vec<(String, Status)>> = Mutex::new(Vec::new());
        let work = |range: std::ops::Range<usize>| {
            let mut ok = Vec::new();
            let mut bad = Vec::new();
            for k in range {
                if found.load(Ordering::Relaxed) >= want {
                    break;
                }
                processed.fetch_add(1, Ordering::Relaxed);
                let node = &snap.nodes[order(k)];
                let s = self.run_filter(state, pod, node);
                if s.is_success() {
                    if found.fetch_add(1, Ordering::Relaxed) < want {
                        ok.push((k, node.clone()));
                    }
                } else {
                    bad.push((node.name.clone(), s));
                }
            }
            results.lock().unwrap().extend(ok);
            failures.lock().unwrap().extend(bad);
        };
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(16);
        if n < PARALLEL_THRESHOLD || threads <= 1 {
            work(0..n);
        } else {
            // Interleaved chunks keep the rotation roughly in order while
            // letting every worker stop once enough nodes are found.
            let chunk = 16usize;
            let next = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| loop {
                        let c = next.fetch_add(chunk, Ordering::Relaxed);
                        if c >= n || found.load(Ordering::Relaxed) >= want {
                            break;
                        }
                        work(c..(c + chunk).min(n));
                    });
                }
            });
        }
        let mut ok = results.into_inner().unwrap();
        ok.sort_by_key(|(k, _)| *k);
        for (name, s) in failures.into_inner().unwrap() {
            if s.code != Code::Error {
                diagnosis.unschedulable_plugins.insert(s.plugin);
            }
            diagnosis.node_to_status.insert(name, s);
        }
        (
            ok.into_iter().map(|(_, n)| n).collect(),
            diagnosis,
            processed.into_inner(),
        )
    }

    /// PostFilter plugins until one nominates a node.
    pub async fn run_post_filter(
        &self,
        ctx: &PostFilterContext<'_>,
        pod: &PodInfo,
    ) -> (Option<String>, Status) {
        let mut msgs = Vec::new();
        for &i in &self.post_filter {
            let p = &self.plugins[i];
            let (nominated, s) = p.as_post_filter().unwrap().post_filter(ctx, pod).await;
            if s.is_success() {
                return (nominated, s);
            }
            if s.code == Code::Error {
                return (None, s.with_plugin(p.name()));
            }
            msgs.extend(s.reasons);
        }
        (None, Status::with_reasons(Code::Unschedulable, msgs))
    }

    /// PreScore, Score, NormalizeScore and weights; returns the total score
    /// of each node in `nodes`.
    pub fn prioritize(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        snap: &Snapshot,
    ) -> Vec<i64> {
        let mut totals = vec![0i64; nodes.len()];
        if self.score.is_empty() || nodes.len() <= 1 {
            return totals;
        }
        for &i in &self.pre_score {
            let p = &self.plugins[i];
            let s = p.as_pre_score().unwrap().pre_score(state, pod, nodes, snap);
            if s.is_skip() {
                state.skip_score.insert(p.name());
            }
        }
        let state = &*state;
        for &(i, weight) in &self.score {
            let p = &self.plugins[i];
            if state.skip_score.contains(p.name()) {
                continue;
            }
            let sp = p.as_score().unwrap();
            let mut scores: Vec<i64> = nodes.iter().map(|n| sp.score(state, pod, n)).collect();
            sp.normalize(state, pod, &mut scores);
            for (t, s) in totals.iter_mut().zip(scores) {
                *t += s.clamp(0, MAX_NODE_SCORE) * weight;
            }
        }
        totals
    }

    /// Reserve in order; on failure, Unreserve everything (in reverse).
    pub fn run_reserve(&self, state: &CycleState, pod: &PodInfo, node: &str) -> Status {
        for (k, &i) in self.reserve.iter().enumerate() {
            let p = &self.plugins[i];
            let s = p.as_reserve().unwrap().reserve(state, pod, node);
            if !s.is_success() {
                for &j in self.reserve[..=k].iter().rev() {
                    self.plugins[j]
                        .as_reserve()
                        .unwrap()
                        .unreserve(state, pod, node);
                }
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    pub fn run_unreserve(&self, state: &CycleState, pod: &PodInfo, node: &str) {
        for &i in self.reserve.iter().rev() {
            self.plugins[i]
                .as_reserve()
                .unwrap()
                .unreserve(state, pod, node);
        }
    }

    pub async fn run_pre_bind(
        &self,
        state: &CycleState,
        client: &kube::Client,
        pod: &Pod,
        node: &str,
    ) -> Status {
        for &i in &self.pre_bind {
            let p = &self.plugins[i];
            let s = p
                .as_pre_bind()
                .unwrap()
                .pre_bind(state, client, pod, node)
                .await;
            if !s.is_success() && !s.is_skip() {
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// The first binder that does not Skip binds the pod.
    pub async fn run_bind(&self, client: &kube::Client, pod: &Pod, node: &str) -> Status {
        for &i in &self.bind {
            let p = &self.plugins[i];
            let s = p.as_bind().unwrap().bind(client, pod, node).await;
            if s.is_skip() {
                continue;
            }
            return s.with_plugin(p.name());
        }
        Status::error("no bind plugin bound the pod")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_percentage_matches_upstream() {
        let fw = Framework::new("default-scheduler", vec![], 0);
        assert_eq!(fw.num_feasible_nodes_to_find(50), 50);
        assert_eq!(fw.num_feasible_nodes_to_find(1000), 420);
        assert_eq!(fw.num_feasible_nodes_to_find(5000), 500);
        let fw = Framework::new("x", vec![], 100);
        assert_eq!(fw.num_feasible_nodes_to_find(5000), 5000);
    }
}
