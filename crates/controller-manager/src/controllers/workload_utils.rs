//! Helpers shared by the workload controllers (replicaset, replicationcontroller,
//! deployment, statefulset, daemonset): template hashing, label-selector matching,
//! controller owner references, pod state predicates, pod construction from a
//! template, the ranking used to pick pods to delete, the sync workers and
//! status writes they share, and controller expectations.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::podutil;

/// 32-bit FNV-1a.
pub fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Maps every character of `s` onto an alphabet without vowels and look-alike
/// characters, as upstream's `rand.SafeEncodeString` does for hashes used in names.
pub fn safe_encode_string(s: &str) -> String {
    s.bytes()
        .map(|b| SAFE_ALPHABET[(b as usize) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// Hash of a value (its canonical JSON) and an optional collision count, encoded
/// for use in object names and the pod-template-hash / controller-revision-hash labels.
pub fn compute_hash<T: serde::Serialize>(value: &T, collision_count: Option<i32>) -> String {
    let mut data = serde_json::to_vec(value).unwrap_or_default();
    if let Some(c) = collision_count {
        data.extend_from_slice(&(c as u32).to_le_bytes());
    }
    safe_encode_string(&fnv32a(&data).to_string())
}

/// Whether a typed label selector matches a label set. An empty selector matches
/// everything, a nil one (callers pass None) matches nothing.
pub fn selector_matches(
    sel: Option<&LabelSelector>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    sel.is_some_and(|s| podutil::label_selector_matches(s, labels))
}

/// Whether the selector selects nothing in particular (no labels, no expressions).
pub fn selector_is_empty(sel: Option<&LabelSelector>) -> bool {
    match sel {
        None => true,
        Some(s) => {
            s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && s.match_expressions.as_ref().is_none_or(|m| m.is_empty())
        }
    }
}

/// The controller owner reference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    podutil::controller_ref(meta)
}

/// The keys of the `kind` controllers in `owners` to sync after a change to
/// a dependent with `meta` (upstream resolveControllerRef and
/// getPodStatefulSets / getDeploymentsForReplicaSet): its controller when that
/// is a `kind`, none when another controller has it, and for an orphan every
/// controller of its namespace whose non-empty selector matches it (it may
/// be adopted).
pub fn controller_keys_for<O>(
    meta: &ObjectMeta,
    kind: &str,
    owners: &crate::informers::Informer<O>,
    selector: fn(&O) -> Option<&LabelSelector>,
) -> Vec<String>
where
    O: kube::Resource + Clone,
{
    let ns = meta.namespace.clone().unwrap_or_default();
    if let Some(r) = controller_of(meta) {
        return if r.kind == kind {
            vec![obj_key(&ns, &r.name)]
        } else {
            vec![]
        };
    }
    owners
        .list_namespaced(&ns)
        .iter()
        .filter(|o| {
            let sel = selector(o);
            !selector_is_empty(sel) && selector_matches(sel, meta.labels.as_ref())
        })
        .map(|o| crate::informers::key_of(o.as_ref()))
        .collect()
}

/// A controller owner reference (controller and blockOwnerDeletion true) to `owner`.
pub fn new_controller_ref(owner: &ObjectMeta, api_version: &str, kind: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `meta` is controlled by the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// What a controller does with an object its selector may match (upstream
/// ControllerRefManager.ClaimObject).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimAction {
    /// Controlled by this controller and matching: keep it.
    Keep,
    /// An orphan that matches: adopt it (add a controller reference).
    Adopt,
    /// Controlled by this controller but no longer matching: release it
    /// (remove the reference).
    Release,
    /// Another controller's, or nothing to do.
    Ignore,
}

/// The [`ClaimAction`] of the controller with `uid` for an object with `meta`
/// that its selector `matches` or not. A controller being deleted
/// (`owner_deleting`) neither adopts nor releases, and objects being deleted
/// are neither adopted nor released.
pub fn claim_action(
    meta: &ObjectMeta,
    uid: &str,
    matches: bool,
    owner_deleting: bool,
) -> ClaimAction {
    let settled = owner_deleting || is_terminating(meta);
    match controller_of(meta) {
        Some(r) if r.uid == uid => {
            if matches {
                ClaimAction::Keep
            } else if settled {
                ClaimAction::Ignore
            } else {
                ClaimAction::Release
            }
        }
        Some(_) => ClaimAction::Ignore,
        None if matches && !settled => ClaimAction::Adopt,
        None => ClaimAction::Ignore,
    }
}

pub fn is_terminating(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

pub fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Not terminated and not being deleted (upstream `IsPodActive`).
pub fn is_pod_active(pod: &Pod) -> bool {
    let p = pod_phase(pod);
    p != "Succeeded" && p != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When the pod last became ready, if it is ready.
pub fn pod_ready_since(pod: &Pod) -> Option<Timestamp> {
    let c = ready_condition(pod)?;
    if c.status != "True" {
        return None;
    }
    c.last_transition_time.as_ref().map(|t| t.0)
}

/// Ready for at least `min_ready_seconds` (upstream `IsPodAvailable`).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    match pod_ready_since(pod) {
        Some(t) => t.as_second() + i64::from(min_ready_seconds) <= now.as_second(),
        None => false,
    }
}

/// Seconds until a ready pod becomes available (for requeueing), if it is ready but not yet available.
pub fn seconds_until_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<i64> {
    if min_ready_seconds <= 0 || !is_pod_ready(pod) {
        return None;
    }
    let t = pod_ready_since(pod)?;
    let left = t.as_second() + i64::from(min_ready_seconds) - now.as_second();
    (left > 0).then_some(left)
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

pub fn now_time() -> Time {
    Time(Timestamp::now())
}

/// Scales an int-or-percent against `total` (upstream `GetScaledValueFromIntOrPercent`).
pub fn scaled_value(v: Option<&IntOrString>, default: &str, total: i32, round_up: bool) -> i32 {
    let s = match v {
        Some(IntOrString::Int(i)) => return *i,
        Some(IntOrString::String(s)) => s.as_str(),
        None => default,
    };
    let Some(p) = s.strip_suffix('%') else {
        return s.parse().unwrap_or(0);
    };
    let p: i64 = p.trim().parse().unwrap_or(0);
    let prod = p * i64::from(total);
    let v = if round_up {
        (prod + 99).div_euclid(100)
    } else {
        prod.div_euclid(100)
    };
    v as i32
}

/// Builds a pod from a controller's template: labels, annotations, finalizers and
/// spec from the template, a controller owner reference to the owner.
pub fn pod_from_template(template: &PodTemplateSpec, owner_ref: Option<OwnerReference>) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    let meta = ObjectMeta {
        labels: tmeta.labels,
        annotations: tmeta.annotations,
        finalizers: tmeta.finalizers,
        owner_references: owner_ref.map(|r| vec![r]),
        ..Default::default()
    };
    Pod {
        metadata: meta,
        spec: template.spec.clone(),
        status: None,
    }
}

/// Upstream's generateName prefix for pods of a controller: `<name>-`, trimmed so the
/// generated name stays a valid DNS subdomain.
pub fn pod_generate_name(controller_name: &str) -> String {
    let mut p = format!("{controller_name}-");
    if p.len() > 58 {
        p.truncate(58);
    }
    p
}

fn phase_rank(p: &str) -> u8 {
    match p {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

/// The controller.kubernetes.io/pod-deletion-cost annotation (0 when absent or invalid).
pub fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// Orders pods so that the ones to delete first come first (upstream
/// `ActivePodsWithRanks`): unassigned before assigned, Pending before Unknown before
/// Running, not ready before ready, lower pod-deletion-cost first, pods on nodes with more pods of the same
/// controller before others (`ranks`, higher first), recently ready before long ready,
/// more restarts before fewer, newer before older.
pub fn deletion_order(a: &Pod, rank_a: i32, b: &Pod, rank_b: i32) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
    };
    let (na, nb) = (node(a), node(b));
    if na.is_none() != nb.is_none() {
        return if na.is_none() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let (pa, pb) = (phase_rank(pod_phase(a)), phase_rank(pod_phase(b)));
    if pa != pb {
        return pa.cmp(&pb);
    }
    let (ra, rb) = (is_pod_ready(a), is_pod_ready(b));
    if ra != rb {
        return if !ra {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let (ca, cb) = (deletion_cost(a), deletion_cost(b));
    if ca != cb {
        return ca.cmp(&cb);
    }
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    if ra && rb {
        let (ta, tb) = (pod_ready_since(a), pod_ready_since(b));
        if ta != tb {
            // more recently ready first; unknown counts as newest
            return match (ta, tb) {
                (None, _) => Ordering::Less,
                (_, None) => Ordering::Greater,
                (Some(x), Some(y)) => y.cmp(&x),
            };
        }
    }
    let (ca, cb) = (restart_count(a), restart_count(b));
    if ca != cb {
        return cb.cmp(&ca);
    }
    let ct = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let (ta, tb) = (ct(a), ct(b));
    if ta != tb {
        return match (ta, tb) {
            (None, _) => Ordering::Less,
            (_, None) => Ordering::Greater,
            (Some(x), Some(y)) => y.cmp(&x),
        };
    }
    Ordering::Equal
}

/// Picks `diff` pods to delete from `pods` (all active pods of one controller);
/// `related` are all active pods of related controllers (same owner) used to rank
/// by co-location.
pub fn pods_to_delete<'a>(pods: &[&'a Pod], related: &[&Pod], diff: usize) -> Vec<&'a Pod> {
    if diff >= pods.len() {
        return pods.to_vec();
    }
    let mut per_node: BTreeMap<String, i32> = BTreeMap::new();
    for p in related {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
            if is_pod_active(p) {
                *per_node.entry(n).or_default() += 1;
            }
        }
    }
    let mut ranked: Vec<(&Pod, i32)> = pods
        .iter()
        .map(|p| {
            let r = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .and_then(|n| per_node.get(n).copied())
                .unwrap_or(0);
            (*p, r)
        })
        .collect();
    ranked.sort_by(|(a, ra), (b, rb)| deletion_order(a, *ra, b, *rb));
    ranked.into_iter().take(diff).map(|(p, _)| p).collect()
}

/// The slow-start batches upstream uses to create many pods: 1, 2, 4, ... capped by what's left.
pub fn slow_start_batches(count: usize, initial: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut remaining = count;
    let mut batch = initial.max(1);
    while remaining > 0 {
        let b = batch.min(remaining);
        out.push(b);
        remaining -= b;
        batch *= 2;
    }
    out
}

/// Strategic, order-independent equality of two pod templates ignoring the given label
/// (upstream `EqualIgnoreHash` for pod-template-hash).
pub fn templates_equal_ignoring_label(
    a: &PodTemplateSpec,
    b: &PodTemplateSpec,
    label: &str,
) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(m) = t.metadata.as_mut() {
            if let Some(l) = m.labels.as_mut() {
                l.remove(label);
                if l.is_empty() {
                    m.labels = None;
                }
            }
            if m.annotations.as_ref().is_some_and(|a| a.is_empty()) {
                m.annotations = None;
            }
        }
        if t.metadata
            .as_ref()
            .is_some_and(|m| *m == ObjectMeta::default())
        {
            t.metadata = None;
        }
        serde_json::to_value(&t).unwrap_or_default()
    };
    strip(a) == strip(b)
}

pub fn obj_key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// A sync result with optimistic-concurrency conflicts turned into a quiet
/// requeue (the informer brings the newer object; upstream logs these too but
/// they are expected with a lagging cache).
pub fn requeue_on_conflict(
    queue: &crate::workqueue::WorkQueue<String>,
    key: &str,
    res: anyhow::Result<()>,
) -> anyhow::Result<()> {
    match res {
        Err(e)
            if e.downcast_ref::<kube::Error>()
                .is_some_and(|k| matches!(k, kube::Error::Api(s) if s.code == 409)) =>
        {
            queue.add_after(key.to_string(), std::time::Duration::from_millis(200));
            Ok(())
        }
        other => other,
    }
}

/// Runs `workers` workers over `queue` (see [`run_workers`]) until `stop`,
/// each key synced by `sync(ctrl.clone(), key)`, with a sync's conflict turned
/// into a quiet requeue ([`requeue_on_conflict`]).
///
/// [`run_workers`]: crate::workqueue::run_workers
pub async fn run_sync_workers<C, F, Fut>(
    ctrl: C,
    queue: crate::workqueue::WorkQueue<String>,
    workers: usize,
    stop: tokio_util::sync::CancellationToken,
    name: &'static str,
    sync: F,
) where
    C: Clone + Send + Sync + 'static,
    F: Fn(C, String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let q = queue.clone();
    crate::workqueue::run_workers(queue, workers, stop, name, move |key: String| {
        let res = sync(ctrl.clone(), key.clone());
        let q = q.clone();
        async move { requeue_on_conflict(&q, &key, res.await) }
    })
    .await;
}

/// Whether a newly computed status differs from the object's `current` one
/// (compared as JSON; no status counts as the default one).
pub fn status_changed<S: serde::Serialize + Default + Clone>(new: &S, current: Option<&S>) -> bool {
    serde_json::to_value(new).ok()
        != serde_json::to_value(current.cloned().unwrap_or_default()).ok()
}

/// PUTs `obj`, carrying its new status, to its status subresource. The object
/// being gone or a conflict is not an error: the informer brings the change
/// and the object is synced again.
pub async fn replace_status<K>(api: &kube::Api<K>, name: &str, obj: &K) -> anyhow::Result<()>
where
    K: Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api
        .replace_status(name, &kube::api::PostParams::default(), obj)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if podutil::is_not_found(&e) || podutil::is_conflict(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// How long unobserved expectations are trusted (upstream ExpectationsTimeout).
pub const EXPECTATIONS_TTL: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Default)]
struct Expected {
    creates: std::collections::HashSet<String>,
    deletes: std::collections::HashSet<String>,
    since: Option<std::time::Instant>,
}

/// Controller expectations: the pods a controller created or deleted and has not
/// seen in its informer yet. While some are outstanding the controller does not
/// compute a new diff (it would double-create or double-delete).
#[derive(Default, Clone)]
pub struct Expectations {
    inner: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Expected>>>,
}

impl Expectations {
    pub fn expect_create(&self, key: &str, name: &str) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(key.to_string()).or_default();
        e.creates.insert(name.to_string());
        e.since.get_or_insert_with(std::time::Instant::now);
    }

    pub fn expect_delete(&self, key: &str, name: &str) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(key.to_string()).or_default();
        e.deletes.insert(name.to_string());
        e.since.get_or_insert_with(std::time::Instant::now);
    }

    pub fn forget(&self, key: &str) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// [`satisfied`](Self::satisfied) against the pods of `ns` in the pod
    /// informer (a pod being deleted counts as terminating).
    pub fn satisfied_by_pods(
        &self,
        key: &str,
        pods: &crate::informers::Informer<Pod>,
        ns: &str,
    ) -> bool {
        self.satisfied(key, |n| {
            pods.get(Some(ns), n).map(|p| is_terminating(&p.metadata))
        })
    }

    /// Whether everything expected has been observed. `state(name)` tells whether the
    /// informer has the pod: None = absent, Some(true) = present and terminating,
    /// Some(false) = present.
    pub fn satisfied(&self, key: &str, state: impl Fn(&str) -> Option<bool>) -> bool {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(e) = m.get_mut(key) else { return true };
        e.creates.retain(|n| state(n).is_none());
        e.deletes.retain(|n| state(n) == Some(false));
        let expired = e.since.is_some_and(|t| t.elapsed() > EXPECTATIONS_TTL);
        if e.creates.is_empty() && e.deletes.is_empty() || expired {
            m.remove(key);
            return true;
        }
        false
    }
}

/// Fixtures for the controllers' unit tests.
#[cfg(test)]
pub mod testing {
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};

    /// A pod status in `phase` with a Ready condition of `ready`.
    pub fn pod_status(phase: &str, ready: bool) -> PodStatus {
        PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(String::from),
                ..Default::default()
            }),
            status: Some(testing::pod_status(phase, ready)),
        }
    }

    #[test]
    fn fnv_and_encode() {
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(safe_encode_string("0123456789"), "456789bcdf");
        let h1 = compute_hash(&serde_json::json!({"a": 1}), None);
        let h2 = compute_hash(&serde_json::json!({"a": 1}), Some(1));
        assert_ne!(h1, h2);
        assert!(h1.chars().all(|c| SAFE_ALPHABET.contains(&(c as u8))));
    }

    #[test]
    fn selectors() {
        let mut labels = BTreeMap::new();
        labels.insert("app".to_string(), "web".to_string());
        labels.insert("tier".to_string(), "fe".to_string());
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["fe".into(), "be".into()]),
            }]),
        };
        assert!(selector_matches(Some(&sel), Some(&labels)));
        labels.insert("tier".into(), "db".into());
        assert!(!selector_matches(Some(&sel), Some(&labels)));
        assert!(!selector_matches(None, Some(&labels)));
        assert!(selector_matches(Some(&LabelSelector::default()), None));
    }

    #[test]
    fn scaled() {
        let p = IntOrString::String("25%".into());
        assert_eq!(scaled_value(Some(&p), "25%", 10, true), 3);
        assert_eq!(scaled_value(Some(&p), "25%", 10, false), 2);
        assert_eq!(scaled_value(None, "25%", 4, false), 1);
        assert_eq!(
            scaled_value(Some(&IntOrString::Int(2)), "25%", 10, false),
            2
        );
    }

    #[test]
    fn ranking() {
        let a = pod("a", Some("n1"), "Running", true);
        let b = pod("b", None, "Pending", false);
        let c = pod("c", Some("n1"), "Running", false);
        let d = pod("d", Some("n2"), "Pending", false);
        let all = vec![&a, &b, &c, &d];
        let del = pods_to_delete(&all, &all, 3);
        let names: Vec<_> = del
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, vec!["b", "d", "c"]);
    }

    #[test]
    fn claims() {
        let owned_by = |uid: Option<&str>, deleting: bool| ObjectMeta {
            owner_references: uid.map(|u| {
                vec![OwnerReference {
                    uid: u.into(),
                    controller: Some(true),
                    ..Default::default()
                }]
            }),
            deletion_timestamp: deleting.then(now_time),
            ..Default::default()
        };
        let mine = owned_by(Some("u"), false);
        assert_eq!(claim_action(&mine, "u", true, false), ClaimAction::Keep);
        assert_eq!(claim_action(&mine, "u", false, false), ClaimAction::Release);
        assert_eq!(claim_action(&mine, "u", false, true), ClaimAction::Ignore);
        let orphan = owned_by(None, false);
        assert_eq!(claim_action(&orphan, "u", true, false), ClaimAction::Adopt);
        assert_eq!(claim_action(&orphan, "u", true, true), ClaimAction::Ignore);
        assert_eq!(
            claim_action(&orphan, "u", false, false),
            ClaimAction::Ignore
        );
        let going = owned_by(None, true);
        assert_eq!(claim_action(&going, "u", true, false), ClaimAction::Ignore);
        let theirs = owned_by(Some("other"), false);
        assert_eq!(claim_action(&theirs, "u", true, false), ClaimAction::Ignore);
    }

    #[test]
    fn batches() {
        assert_eq!(slow_start_batches(10, 1), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(0, 1), Vec::<usize>::new());
    }
}
