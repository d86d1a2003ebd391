//! The scheduler's view of pods and nodes: precomputed requests, ports and
//! affinity terms ([`PodInfo`]), per-node aggregates ([`NodeInfo`]) and the
//! per-cycle [`Snapshot`]; plus the matching helpers plugins share
//! (label selectors, node selector terms, tolerations).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use apimachinery::quantity::Quantity;
use k8s_openapi::api::core::v1::{
    Container, Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodAffinityTerm, Taint,
    Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Default requests used for scoring pods that request nothing (upstream:
/// 100m CPU, 200 MiB memory), so empty pods still spread.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Compute resources (CPU in millicores, the rest in units).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub allowed_pod_number: i64,
    pub scalar: BTreeMap<String, i64>,
}

fn qty(q: &KQuantity, milli: bool) -> i64 {
    match Quantity::parse(&q.0) {
        Ok(v) => {
            let n = if milli { v.milli_value() } else { v.value() };
            n.clamp(0, i64::MAX as i128) as i64
        }
        Err(_) => 0,
    }
}

impl Resource {
    pub fn from_list(list: Option<&BTreeMap<String, KQuantity>>) -> Resource {
        let mut r = Resource::default();
        for (k, v) in list.into_iter().flatten() {
            match k.as_str() {
                "cpu" => r.milli_cpu = qty(v, true),
                "memory" => r.memory = qty(v, false),
                "ephemeral-storage" => r.ephemeral_storage = qty(v, false),
                "pods" => r.allowed_pod_number = qty(v, false),
                _ if k.starts_with("hugepages-") || k.contains('/') => {
                    r.scalar.insert(k.clone(), qty(v, false));
                }
                _ => {}
            }
        }
        r
    }
    pub fn add(&mut self, o: &Resource) {
        self.milli_cpu = self.milli_cpu.saturating_add(o.milli_cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(o.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.saturating_add(o.allowed_pod_number);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = e.saturating_add(*v);
        }
    }
    pub fn sub(&mut self, o: &Resource) {
        self.milli_cpu = self.milli_cpu.saturating_sub(o.milli_cpu);
        self.memory = self.memory.saturating_sub(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(o.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.saturating_sub(o.allowed_pod_number);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = e.saturating_sub(*v);
        }
    }
    /// Element-wise maximum.
    pub fn max_with(&mut self, o: &Resource) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.allowed_pod_number,
            _ => self.scalar.get(name).copied().unwrap_or(0),
        }
    }
}

fn container_requests(c: &Container) -> Resource {
    let res = c.resources.as_ref();
    // Limits default requests when only limits are set (apiserver defaulting
    // normally does this already).
    let mut r = Resource::from_list(res.and_then(|r| r.limits.as_ref()));
    let req = Resource::from_list(res.and_then(|r| r.requests.as_ref()));
    if res.and_then(|r| r.requests.as_ref()).is_some() {
        let lim = r.clone();
        r = req;
        for (k, v) in lim.scalar {
            r.scalar.entry(k).or_insert(v);
        }
        if r.milli_cpu == 0 {
            r.milli_cpu = lim.milli_cpu;
        }
        if r.memory == 0 {
            r.memory = lim.memory;
        }
    }
    r
}

/// The effective requests of a pod: the larger of (regular containers +
/// sidecars) and each init container (plus the sidecars started before
/// it), plus pod overhead.
pub fn pod_requests(pod: &Pod) -> Resource {
    let Some(spec) = pod.spec.as_ref() else {
        return Resource::default();
    };
    let mut sum = Resource::default();
    for c in &spec.containers {
        sum.add(&container_requests(c));
    }
    let mut sidecars = Resource::default();
    let mut init_max = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            sum.add(&r);
            init_max.max_with(&sidecars);
        } else {
            let mut t = sidecars.clone();
            t.add(&r);
            init_max.max_with(&t);
        }
    }
    sum.max_with(&init_max);
    if let Some(o) = spec.overhead.as_ref() {
        sum.add(&Resource::from_list(Some(o)));
    }
    sum
}

/// A host port a pod uses: (protocol, hostIP, port).
pub type HostPort = (String, String, i32);

/// A pod with what the plugins need precomputed.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub priority: i32,
    pub requests: Resource,
    /// CPU/memory with the scoring defaults applied to zero requests.
    pub non_zero_cpu: i64,
    pub non_zero_mem: i64,
    pub host_ports: Vec<HostPort>,
    pub node_name: String,
    pub required_affinity: Vec<PodAffinityTerm>,
    pub required_anti_affinity: Vec<PodAffinityTerm>,
    /// (weight, term)
    pub preferred_affinity: Vec<(i32, PodAffinityTerm)>,
    pub preferred_anti_affinity: Vec<(i32, PodAffinityTerm)>,
    pub terminating: bool,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let requests = pod_requests(&pod);
        let mut non_zero_cpu = 0;
        let mut non_zero_mem = 0;
        for c in spec.map(|s| &s.containers[..]).unwrap_or(&[]) {
            let r = container_requests(c);
            non_zero_cpu += if r.milli_cpu == 0 {
                DEFAULT_MILLI_CPU_REQUEST
            } else {
                r.milli_cpu
            };
            non_zero_mem += if r.memory == 0 {
                DEFAULT_MEMORY_REQUEST
            } else {
                r.memory
            };
        }
        non_zero_cpu = non_zero_cpu.max(requests.milli_cpu);
        non_zero_mem = non_zero_mem.max(requests.memory);
        let mut host_ports = Vec::new();
        for c in spec.map(|s| &s.containers[..]).unwrap_or(&[]) {
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                    let ip = p
                        .host_ip
                        .clone()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "0.0.0.0".into());
                    host_ports.push((p.protocol.clone().unwrap_or_else(|| "TCP".into()), ip, hp));
                }
            }
        }
        let aff = spec.and_then(|s| s.affinity.as_ref());
        let pa = aff.and_then(|a| a.pod_affinity.as_ref());
        let paa = aff.and_then(|a| a.pod_anti_affinity.as_ref());
        PodInfo {
            key: format!("{namespace}/{name}"),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            node_name: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            required_affinity: pa
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .clone()
                })
                .unwrap_or_default(),
            required_anti_affinity: paa
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .clone()
                })
                .unwrap_or_default(),
            preferred_affinity: pa
                .and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(|v| {
                    v.iter()
                        .map(|w| (w.weight, w.pod_affinity_term.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            preferred_anti_affinity: paa
                .and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(|v| {
                    v.iter()
                        .map(|w| (w.weight, w.pod_affinity_term.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            namespace,
            name,
            requests,
            non_zero_cpu,
            non_zero_mem,
            host_ports,
            pod,
        }
    }

    pub fn spec(&self) -> Option<&k8s_openapi::api::core::v1::PodSpec> {
        self.pod.spec.as_ref()
    }

    pub fn tolerations(&self) -> &[Toleration] {
        self.spec()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or(&[])
    }

    pub fn has_affinity_terms(&self) -> bool {
        !self.required_affinity.is_empty()
            || !self.required_anti_affinity.is_empty()
            || !self.preferred_affinity.is_empty()
            || !self.preferred_anti_affinity.is_empty()
    }
}

/// A node and the pods on it (bound or assumed).
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resource,
    pub requested: Resource,
    pub non_zero_cpu: i64,
    pub non_zero_mem: i64,
    pub pods: Vec<Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
    /// How many of `pods` have (anti-)affinity terms (lets InterPodAffinity
    /// skip nodes cheaply).
    pub affinity_pods: usize,
    /// image name → size in bytes, from node.status.images.
    pub images: HashMap<String, i64>,
}

impl NodeInfo {
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let spec = node.spec.as_ref();
        let mut images = HashMap::new();
        for img in node
            .status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
        {
            for n in img.names.iter().flatten() {
                images.insert(normalize_image(n), img.size_bytes.unwrap_or(0));
            }
        }
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: spec.and_then(|s| s.taints.clone()).unwrap_or_default(),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            allocatable: Resource::from_list(
                node.status.as_ref().and_then(|s| s.allocatable.as_ref()),
            ),
            requested: Resource::default(),
            non_zero_cpu: 0,
            non_zero_mem: 0,
            pods: Vec::new(),
            used_ports: Vec::new(),
            affinity_pods: 0,
            images,
            node,
        }
    }

    /// Replace the node object, keeping its pods.
    pub fn set_node(&mut self, node: Arc<Node>) {
        let mut fresh = NodeInfo::new(node);
        fresh.pods = std::mem::take(&mut self.pods);
        fresh.requested = std::mem::take(&mut self.requested);
        fresh.non_zero_cpu = self.non_zero_cpu;
        fresh.non_zero_mem = self.non_zero_mem;
        fresh.used_ports = std::mem::take(&mut self.used_ports);
        fresh.affinity_pods = self.affinity_pods;
        *self = fresh;
    }

    pub fn add_pod(&mut self, p: Arc<PodInfo>) {
        let mut r = p.requests.clone();
        r.allowed_pod_number = 0;
        self.requested.add(&r);
        self.non_zero_cpu = self.non_zero_cpu.saturating_add(p.non_zero_cpu);
        self.non_zero_mem = self.non_zero_mem.saturating_add(p.non_zero_mem);
        self.used_ports.extend(p.host_ports.iter().cloned());
        if p.has_affinity_terms() {
            self.affinity_pods += 1;
        }
        self.pods.push(p);
    }

    /// Remove a pod by key; true when it was there.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.key == key) else {
            return false;
        };
        let p = self.pods.swap_remove(i);
        let mut r = p.requests.clone();
        r.allowed_pod_number = 0;
        self.requested.sub(&r);
        self.non_zero_cpu = self.non_zero_cpu.saturating_sub(p.non_zero_cpu);
        self.non_zero_mem = self.non_zero_mem.saturating_sub(p.non_zero_mem);
        if p.has_affinity_terms() {
            self.affinity_pods -= 1;
        }
        for hp in &p.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        true
    }
}

/// `busybox` → `docker.io/library/busybox:latest`, as node image lists use.
pub fn normalize_image(name: &str) -> String {
    let mut n = name.to_string();
    let last = n.rsplit('/').next().unwrap_or("");
    if !last.contains(':') && !last.contains('@') {
        n.push_str(":latest");
    }
    let first = n.split('/').next().unwrap_or("");
    if !n.contains('/') {
        n = format!("docker.io/library/{n}");
    } else if !(first.contains('.') || first.contains(':') || first == "localhost") {
        n = format!("docker.io/{n}");
    }
    n
}

/// The nodes of one scheduling cycle, in a stable order.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub nodes: Vec<Arc<NodeInfo>>,
    pub index: HashMap<String, usize>,
}

impl Snapshot {
    pub fn from_nodes(nodes: Vec<NodeInfo>) -> Snapshot {
        let nodes: Vec<_> = nodes.into_iter().map(Arc::new).collect();
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        Snapshot { nodes, index }
    }
    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }
}

// ---- matching helpers ----

/// Does a metav1.LabelSelector match `labels`? A missing selector matches
/// nothing; an empty one matches everything.
pub fn label_selector_matches(
    sel: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(sel) = sel else { return false };
    for (k, v) in sel.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return false;
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let have = labels.get(&e.key);
        let vals = e.values.as_deref().unwrap_or(&[]);
        let ok = match e.operator.as_str() {
            "In" => have.is_some_and(|h| vals.contains(h)),
            "NotIn" => have.is_none_or(|h| !vals.contains(h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn node_requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let vals = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| vals.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !vals.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(t)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                vals.first().and_then(|t| t.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > t
            } else {
                v < t
            }
        }
        _ => false,
    }
}

/// One NodeSelectorTerm: all expressions (labels) and fields
/// (`metadata.name`) must match; an empty term matches nothing.
pub fn node_selector_term_matches(t: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or(&[]);
    let fields = t.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| node_requirement_matches(r, node.labels.get(&r.key).map(String::as_str)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && node_requirement_matches(r, Some(&node.name)))
}

/// Terms are ORed.
pub fn node_selector_terms_match(terms: &[NodeSelectorTerm], node: &NodeInfo) -> bool {
    terms.iter().any(|t| node_selector_term_matches(t, node))
}

/// Does `tol` tolerate `taint` (upstream's ToleratesTaint)?
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = tol.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    let key = tol.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => tol.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// The first taint (with an effect accepted by `filter`) that no toleration tolerates.
pub fn find_untolerated<'a>(
    taints: &'a [Taint],
    tols: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| filter(t))
        .find(|t| !tols.iter().any(|tol| tolerates(tol, t)))
}

/// Namespaces a PodAffinityTerm applies to: its `namespaces`, or the pod's
/// own namespace when both `namespaces` and `namespaceSelector` are unset.
/// An empty namespaceSelector (`{}`) means all namespaces (None here).
pub fn term_namespaces(term: &PodAffinityTerm, pod_ns: &str) -> Option<Vec<String>> {
    let ns = term.namespaces.clone().unwrap_or_default();
    match &term.namespace_selector {
        Some(sel)
            if sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty()) =>
        {
            None
        }
        _ if ns.is_empty() => Some(vec![pod_ns.to_string()]),
        _ => Some(ns),
    }
}

/// Does `term` (from a pod in `term_ns`) select `target`?
pub fn term_matches_pod(term: &PodAffinityTerm, term_ns: &str, target: &PodInfo) -> bool {
    if let Some(nss) = term_namespaces(term, term_ns) {
        if !nss.iter().any(|n| n == &target.namespace) {
            return false;
        }
    }
    label_selector_matches(term.label_selector.as_ref(), &target.labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

    fn q(s: &str) -> KQuantity {
        KQuantity(s.into())
    }

    #[test]
    fn pod_requests_take_the_init_container_maximum() {
        let c = |cpu: &str| Container {
            resources: Some(ResourceRequirements {
                requests: Some([("cpu".to_string(), q(cpu))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![c("100m"), c("200m")],
                init_containers: Some(vec![c("1")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(pod_requests(&pod).milli_cpu, 1000);
    }

    #[test]
    fn toleration_matching_follows_operator_and_effect() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        let tol = |k: &str, op: &str, v: &str, e: &str| Toleration {
            key: Some(k.into()),
            operator: Some(op.into()),
            value: Some(v.into()),
            effect: Some(e.into()),
            toleration_seconds: None,
        };
        assert!(tolerates(&tol("k", "Equal", "v", "NoSchedule"), &taint));
        assert!(tolerates(&tol("k", "Exists", "", ""), &taint));
        assert!(tolerates(&tol("", "Exists", "", ""), &taint));
        assert!(!tolerates(&tol("k", "Equal", "w", "NoSchedule"), &taint));
        assert!(!tolerates(&tol("k", "Equal", "v", "NoExecute"), &taint));
    }

    #[test]
    fn images_are_normalised_like_the_runtime_reports_them() {
        assert_eq!(
            normalize_image("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize_image("foo/bar:1"), "docker.io/foo/bar:1");
        assert_eq!(
            normalize_image("registry.k8s.io/pause:3.10"),
            "registry.k8s.io/pause:3.10"
        );
    }
}
