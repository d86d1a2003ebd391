//! The scheduler cache: nodes with the pods bound (or assumed) to them.
//! Assumed pods are added as soon as a node is chosen, so the next cycle
//! sees the capacity taken before the binding reaches the apiserver.
//! [`Cache::update_snapshot`] refreshes the per-cycle [`Snapshot`] by
//! replacing only the nodes that changed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::framework::{NodeInfo, PodInfo, Snapshot};

#[derive(Default)]
pub struct Cache {
    nodes: HashMap<String, Arc<NodeInfo>>,
    /// pod key → (node, assumed).
    pod_node: HashMap<String, (String, bool)>,
    /// Pods bound to nodes we have not seen yet.
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    dirty: HashSet<String>,
    structure_changed: bool,
}

pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

impl Cache {
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Add or update a node; true when something scheduling-relevant changed.
    pub fn upsert_node(&mut self, node: Arc<Node>) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        self.dirty.insert(name.clone());
        match self.nodes.get_mut(&name) {
            Some(ni) => {
                let old = &ni.node;
                let relevant = old.spec != node.spec
                    || old.metadata.labels != node.metadata.labels
                    || old.status.as_ref().map(|s| &s.allocatable)
                        != node.status.as_ref().map(|s| &s.allocatable)
                    || old.status.as_ref().map(|s| &s.images)
                        != node.status.as_ref().map(|s| &s.images);
                Arc::make_mut(ni).set_node(node);
                relevant
            }
            None => {
                let mut ni = NodeInfo::new(node);
                for p in self.orphans.remove(&name).unwrap_or_default() {
                    ni.add_pod(p);
                }
                self.nodes.insert(name, Arc::new(ni));
                self.structure_changed = true;
                true
            }
        }
    }

    pub fn remove_node(&mut self, name: &str) {
        if let Some(ni) = self.nodes.remove(name) {
            // Keep its pods' accounting in case the node comes back.
            self.orphans.insert(name.to_string(), ni.pods.clone());
            self.structure_changed = true;
        }
    }

    fn attach(&mut self, node: &str, p: Arc<PodInfo>) {
        self.dirty.insert(node.to_string());
        match self.nodes.get_mut(node) {
            Some(ni) => Arc::make_mut(ni).add_pod(p),
            None => self.orphans.entry(node.to_string()).or_default().push(p),
        }
    }

    fn detach(&mut self, node: &str, key: &str) {
        self.dirty.insert(node.to_string());
        match self.nodes.get_mut(node) {
            Some(ni) => {
                Arc::make_mut(ni).remove_pod(key);
            }
            None => {
                if let Some(v) = self.orphans.get_mut(node) {
                    v.retain(|p| p.key != key);
                }
            }
        }
    }

    /// An assigned pod seen by the informer (confirms an assumed one).
    /// Terminal pods are removed. Returns true when capacity was freed.
    pub fn upsert_pod(&mut self, pod: Arc<Pod>) -> bool {
        let info = Arc::new(PodInfo::new(pod.clone()));
        let prev = self.pod_node.remove(&info.key);
        if let Some((node, _)) = &prev {
            self.detach(node, &info.key);
        }
        if is_terminal(&pod) || info.node_name.is_empty() {
            return prev.is_some();
        }
        let node = info.node_name.clone();
        self.pod_node
            .insert(info.key.clone(), (node.clone(), false));
        self.attach(&node, info);
        false
    }

    pub fn remove_pod(&mut self, key: &str) -> bool {
        match self.pod_node.remove(key) {
            Some((node, _)) => {
                self.detach(&node, key);
                true
            }
            None => false,
        }
    }

    /// Count `pod` on `node` before it is bound.
    pub fn assume(&mut self, pod: &PodInfo, node: &str) -> Arc<PodInfo> {
        let mut obj = (*pod.pod).clone();
        if let Some(s) = obj.spec.as_mut() {
            s.node_name = Some(node.to_string());
        }
        let info = Arc::new(PodInfo::new(Arc::new(obj)));
        if let Some((old, _)) = self.pod_node.remove(&info.key) {
            self.detach(&old, &info.key);
        }
        self.pod_node
            .insert(info.key.clone(), (node.to_string(), true));
        self.attach(node, info.clone());
        info
    }

    /// The binding failed: drop the assumed pod.
    pub fn forget(&mut self, key: &str) {
        if let Some((node, true)) = self.pod_node.get(key).cloned() {
            self.pod_node.remove(key);
            self.detach(&node, key);
        }
    }

    pub fn is_assumed_or_bound(&self, key: &str) -> bool {
        self.pod_node.contains_key(key)
    }

    /// All pod keys known (for relist clean-up).
    pub fn pod_keys(&self) -> Vec<String> {
        self.pod_node.keys().cloned().collect()
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// Bring `snap` up to date.
    pub fn update_snapshot(&mut self, snap: &mut Snapshot) {
        if self.structure_changed || snap.nodes.len() != self.nodes.len() {
            let mut names: Vec<&String> = self.nodes.keys().collect();
            names.sort();
            snap.nodes = names.iter().map(|n| self.nodes[*n].clone()).collect();
            snap.index = names
                .iter()
                .enumerate()
                .map(|(i, n)| ((*n).clone(), i))
                .collect();
            self.structure_changed = false;
        } else {
            for name in &self.dirty {
                if let (Some(i), Some(ni)) = (snap.index.get(name), self.nodes.get(name)) {
                    snap.nodes[*i] = ni.clone();
                }
            }
        }
        self.dirty.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};

    #[test]
    fn assumed_pods_count_until_forgotten_and_snapshot_follows() {
        let mut c = Cache::default();
        c.upsert_node(Arc::new(node("a").obj()));
        c.upsert_node(Arc::new(node("b").obj()));
        let mut snap = Snapshot::default();
        c.update_snapshot(&mut snap);
        assert_eq!(snap.nodes.len(), 2);
        let p = pod("p").req("1", "").info();
        c.assume(&p, "a");
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("a").unwrap().requested.milli_cpu, 1000);
        // The informer confirms it, then it terminates.
        let mut bound = pod("p").req("1", "").node_name("a").obj();
        c.upsert_pod(Arc::new(bound.clone()));
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("a").unwrap().pods.len(), 1);
        bound.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        assert!(c.upsert_pod(Arc::new(bound)));
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("a").unwrap().pods.len(), 0);
        // A forgotten assumption frees the node.
        c.assume(&p, "b");
        c.forget(&p.key);
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("b").unwrap().requested.milli_cpu, 0);
    }
}
