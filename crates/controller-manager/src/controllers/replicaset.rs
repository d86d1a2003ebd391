//! The replicaset and replicationcontroller controllers (upstream
//! pkg/controller/replicaset; the replication controller reuses the same logic
//! over a ReplicationController seen as a ReplicaSet).
//!
//! A sync claims the pods (adopts matching orphans, releases owned pods that no
//! longer match the selector), creates pods from the template (slow start: 1, 2,
//! 4, ... at most 500 per sync) or deletes the lowest-ranked surplus pods, then
//! writes status (replicas, fullyLabeledReplicas, readyReplicas,
//! availableReplicas, observedGeneration, ReplicaFailure).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use client_base::events::Recorder;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{
    ObjectReference, Pod, PodTemplateSpec, ReplicationController, ReplicationControllerCondition,
    ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::Api;
use tokio_util::sync::CancellationToken;

use super::pod_control::{pod_for_owner, PodControl};
use super::podutil::{err_message, is_not_found};
use super::workload_utils::{self as wu, ClaimAction};
use crate::informers::{key_of, split_key, Informer, InformerFactory, Notification};
use crate::workqueue::WorkQueue;
use crate::ControllerContext;

/// The replicaset controller ("replicaset-controller").
pub async fn run(ctx: ControllerContext) -> Result<()> {
    let rec = ctx.recorder(Flavor::ReplicaSet.component());
    let c = ReplicaSetController::new(Flavor::ReplicaSet, ctx.client.clone(), &ctx.informers, rec);
    c.run(ctx.options.concurrent_replicaset_syncs, ctx.stop.clone())
        .await
}

/// The replicationcontroller controller ("replicationcontroller-controller").
pub async fn run_replication_controller(ctx: ControllerContext) -> Result<()> {
    let rec = ctx.recorder(Flavor::ReplicationController.component());
    let c = ReplicaSetController::new(
        Flavor::ReplicationController,
        ctx.client.clone(),
        &ctx.informers,
        rec,
    );
    c.run(ctx.options.concurrent_rc_syncs, ctx.stop.clone())
        .await
}

/// At most this many pods are created or deleted by one sync (upstream BurstReplicas).
pub const BURST_REPLICAS: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    ReplicaSet,
    ReplicationController,
}

impl Flavor {
    pub fn api_version(self) -> &'static str {
        match self {
            Flavor::ReplicaSet => "apps/v1",
            Flavor::ReplicationController => "v1",
        }
    }
    pub fn kind(self) -> &'static str {
        match self {
            Flavor::ReplicaSet => "ReplicaSet",
            Flavor::ReplicationController => "ReplicationController",
        }
    }
    pub fn component(self) -> &'static str {
        match self {
            Flavor::ReplicaSet => "replicaset-controller",
            Flavor::ReplicationController => "replication-controller",
        }
    }
}

/// A ReplicaSet or ReplicationController as the sync sees it.
#[derive(Clone, Debug)]
pub struct RsView {
    pub meta: ObjectMeta,
    pub replicas: i32,
    pub min_ready_seconds: i32,
    pub selector: Option<LabelSelector>,
    pub template: Option<PodTemplateSpec>,
    pub status: ReplicaSetStatus,
}

impl RsView {
    pub fn from_rs(rs: &ReplicaSet) -> RsView {
        let spec = rs.spec.clone().unwrap_or_default();
        RsView {
            meta: rs.metadata.clone(),
            replicas: spec.replicas.unwrap_or(1),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            selector: Some(spec.selector),
            template: spec.template,
            status: rs.status.clone().unwrap_or_default(),
        }
    }

    pub fn from_rc(rc: &ReplicationController) -> RsView {
        let spec = rc.spec.clone().unwrap_or_default();
        // An RC without selector selects its template's labels (apiserver defaulting).
        let sel = spec.selector.clone().or_else(|| {
            spec.template
                .as_ref()
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone())
        });
        let st = rc.status.clone().unwrap_or_default();
        RsView {
            meta: rc.metadata.clone(),
            replicas: spec.replicas.unwrap_or(1),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            selector: sel.filter(|s| !s.is_empty()).map(|m| LabelSelector {
                match_labels: Some(m),
                match_expressions: None,
            }),
            template: spec.template,
            status: ReplicaSetStatus {
                replicas: st.replicas,
                fully_labeled_replicas: st.fully_labeled_replicas,
                ready_replicas: st.ready_replicas,
                available_replicas: st.available_replicas,
                observed_generation: st.observed_generation,
                conditions: st.conditions.map(|cs| {
                    cs.into_iter()
                        .map(|c| ReplicaSetCondition {
                            type_: c.type_,
                            status: c.status,
                            reason: c.reason,
                            message: c.message,
                            last_transition_time: c.last_transition_time,
                        })
                        .collect()
                }),
                terminating_replicas: None,
            },
        }
    }
}

pub fn rc_status(s: &ReplicaSetStatus) -> ReplicationControllerStatus {
    ReplicationControllerStatus {
        replicas: s.replicas,
        fully_labeled_replicas: s.fully_labeled_replicas,
        ready_replicas: s.ready_replicas,
        available_replicas: s.available_replicas,
        observed_generation: s.observed_generation,
        conditions: s.conditions.clone().map(|cs| {
            cs.into_iter()
                .map(|c| ReplicationControllerCondition {
                    type_: c.type_,
                    status: c.status,
                    reason: c.reason,
                    message: c.message,
                    last_transition_time: c.last_transition_time,
                })
                .collect()
        }),
    }
}

/// The status a sync writes: counts over the active pods the controller owns, and
/// the ReplicaFailure condition from the last manage error (reason, message).
pub fn compute_status(
    rs: &RsView,
    active: &[&Pod],
    manage_err: Option<(&str, &str)>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let tlabels = rs
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut fully = 0;
    let mut ready = 0;
    let mut available = 0;
    for p in active {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        if tlabels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            fully += 1;
        }
        if wu::is_pod_ready(p) {
            ready += 1;
            if wu::is_pod_available(p, rs.min_ready_seconds, now) {
                available += 1;
            }
        }
    }
    let mut conditions: Vec<ReplicaSetCondition> = rs.status.conditions.clone().unwrap_or_default();
    let existing = conditions.iter().position(|c| c.type_ == "ReplicaFailure");
    match (manage_err, existing) {
        (Some((reason, msg)), None) => conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(msg.into()),
            last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
        }),
        (Some((reason, msg)), Some(i)) => {
            let c = &mut conditions[i];
            if c.reason.as_deref() != Some(reason) || c.message.as_deref() != Some(msg) {
                c.reason = Some(reason.into());
                c.message = Some(msg.into());
                c.last_transition_time =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
            }
        }
        (None, Some(i)) => {
            conditions.remove(i);
        }
        (None, None) => {}
    }
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        observed_generation: rs.meta.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: None,
    }
}

/// The pods a controller owns after claiming: owned pods that match its selector,
/// plus matching orphans it should adopt; and the owned pods it should release.
pub struct Claim<'a> {
    pub owned: Vec<&'a Pod>,
    pub adopt: Vec<&'a Pod>,
    pub release: Vec<&'a Pod>,
}

/// Upstream ClaimPods for a controller with `uid` and `selector` (a controller being
/// deleted neither adopts nor releases).
pub fn claim_pods<'a>(
    uid: &str,
    selector: Option<&LabelSelector>,
    deleting: bool,
    pods: &'a [Arc<Pod>],
) -> Claim<'a> {
    let mut c = Claim {
        owned: vec![],
        adopt: vec![],
        release: vec![],
    };
    for p in pods {
        let p: &Pod = p;
        let matches = wu::selector_matches(selector, p.metadata.labels.as_ref())
            && !wu::selector_is_empty(selector);
        match wu::claim_action(&p.metadata, uid, matches, deleting) {
            ClaimAction::Keep => c.owned.push(p),
            ClaimAction::Release => c.release.push(p),
            ClaimAction::Adopt => {
                c.adopt.push(p);
                c.owned.push(p);
            }
            ClaimAction::Ignore => {}
        }
    }
    c
}

/// Merge patch adding a controller reference to an orphan.
pub fn adopt_patch(obj: &ObjectMeta, owner: OwnerReference) -> serde_json::Value {
    let mut refs: Vec<OwnerReference> = obj.owner_references.clone().unwrap_or_default();
    refs.retain(|r| r.uid != owner.uid);
    refs.push(owner);
    serde_json::json!({"metadata": {"ownerReferences": refs, "uid": obj.uid}})
}

/// Merge patch removing the reference to `owner_uid`.
pub fn release_patch(obj: &ObjectMeta, owner_uid: &str) -> serde_json::Value {
    let refs: Vec<OwnerReference> = obj
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.uid != owner_uid)
        .collect();
    if refs.is_empty() {
        serde_json::json!({"metadata": {"ownerReferences": null, "uid": obj.uid}})
    } else {
        serde_json::json!({"metadata": {"ownerReferences": refs, "uid": obj.uid}})
    }
}

/// One replicaset or replicationcontroller controller.
#[derive(Clone)]
pub struct ReplicaSetController {
    flavor: Flavor,
    client: kube::Client,
    pods: Informer<Pod>,
    rss: Option<Informer<ReplicaSet>>,
    rcs: Option<Informer<ReplicationController>>,
    recorder: Recorder,
    exp: wu::Expectations,
    queue: WorkQueue<String>,
}

impl ReplicaSetController {
    pub fn new(
        flavor: Flavor,
        client: kube::Client,
        factory: &InformerFactory,
        recorder: Recorder,
    ) -> Self {
        ReplicaSetController {
            flavor,
            client,
            pods: factory.get::<Pod>(),
            rss: (flavor == Flavor::ReplicaSet).then(|| factory.get::<ReplicaSet>()),
            rcs: (flavor == Flavor::ReplicationController)
                .then(|| factory.get::<ReplicationController>()),
            recorder,
            exp: wu::Expectations::default(),
            queue: WorkQueue::new(),
        }
    }

    fn get(&self, key: &str) -> Option<(RsView, ObjectReference)> {
        match self.flavor {
            Flavor::ReplicaSet => self.rss.as_ref()?.get_by_key(key).map(|r| {
                (
                    RsView::from_rs(&r),
                    client_base::events::object_ref(r.as_ref()),
                )
            }),
            Flavor::ReplicationController => self.rcs.as_ref()?.get_by_key(key).map(|r| {
                (
                    RsView::from_rc(&r),
                    client_base::events::object_ref(r.as_ref()),
                )
            }),
        }
    }

    fn all(&self) -> Vec<RsView> {
        match self.flavor {
            Flavor::ReplicaSet => self
                .rss
                .as_ref()
                .map(|i| i.list().iter().map(|r| RsView::from_rs(r)).collect())
                .unwrap_or_default(),
            Flavor::ReplicationController => self
                .rcs
                .as_ref()
                .map(|i| i.list().iter().map(|r| RsView::from_rc(r)).collect())
                .unwrap_or_default(),
        }
    }

    fn enqueue_for_pod(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        if let Some(r) = wu::controller_of(&pod.metadata) {
            if r.kind == self.flavor.kind() {
                self.queue.add(wu::obj_key(&ns, &r.name));
            }
            return;
        }
        if wu::is_terminating(&pod.metadata) {
            return;
        }
        for rs in self.all() {
            if rs.meta.namespace.as_deref() == Some(ns.as_str())
                && !wu::selector_is_empty(rs.selector.as_ref())
                && wu::selector_matches(rs.selector.as_ref(), pod.metadata.labels.as_ref())
            {
                self.queue.add(wu::obj_key(
                    &ns,
                    rs.meta.name.as_deref().unwrap_or_default(),
                ));
            }
        }
    }

    fn enqueue_all(&self) {
        for rs in self.all() {
            self.queue.add(wu::obj_key(
                rs.meta.namespace.as_deref().unwrap_or_default(),
                rs.meta.name.as_deref().unwrap_or_default(),
            ));
        }
    }

    /// Enqueues the controller objects of `inf` as they change (all of them on
    /// a resync) until `stop`, and waits for `inf` to sync.
    async fn spawn_owner_events<K>(&self, inf: &Informer<K>, stop: &CancellationToken)
    where
        K: kube::Resource + Clone + Send + Sync + 'static,
    {
        let this = self.clone();
        let stop = stop.clone();
        let mut sub = inf.subscribe();
        tokio::spawn(async move {
            loop {
                let n = tokio::select! { n = sub.recv() => n, _ = stop.cancelled() => None };
                match n {
                    None => break,
                    Some(Notification::Resync) => this.enqueue_all(),
                    Some(n) => {
                        if let Some(o) = n.object() {
                            this.queue.add(key_of(o.as_ref()));
                        }
                    }
                }
            }
        });
        inf.wait_synced().await;
    }

    /// Runs the controller until `stop`.
    pub async fn run(self, workers: usize, stop: CancellationToken) -> Result<()> {
        let mut pod_sub = self.pods.subscribe();
        let this = self.clone();
        let s1 = stop.clone();
        tokio::spawn(async move {
            loop {
                let n = tokio::select! { n = pod_sub.recv() => n, _ = s1.cancelled() => None };
                let Some(n) = n else { break };
                match n {
                    Notification::Added(p) | Notification::Deleted(p) => this.enqueue_for_pod(&p),
                    Notification::Updated { old, new } => {
                        let oc = wu::controller_of(&old.metadata).map(|r| r.uid.clone());
                        let nc = wu::controller_of(&new.metadata).map(|r| r.uid.clone());
                        if oc != nc || old.metadata.labels != new.metadata.labels {
                            this.enqueue_for_pod(&old);
                        }
                        this.enqueue_for_pod(&new);
                    }
                    Notification::Resync => this.enqueue_all(),
                }
            }
        });
        match self.flavor {
            Flavor::ReplicaSet => {
                self.spawn_owner_events(self.rss.as_ref().expect("rs informer"), &stop)
                    .await
            }
            Flavor::ReplicationController => {
                self.spawn_owner_events(self.rcs.as_ref().expect("rc informer"), &stop)
                    .await
            }
        }
        self.pods.wait_synced().await;
        self.enqueue_all();
        let name = match self.flavor {
            Flavor::ReplicaSet => "replicaset",
            Flavor::ReplicationController => "replicationcontroller",
        };
        wu::run_sync_workers(
            self.clone(),
            self.queue.clone(),
            workers,
            stop,
            name,
            |this, key| async move { this.sync(&key).await },
        )
        .await;
        Ok(())
    }

    /// One sync of `namespace/name`.
    pub async fn sync(&self, key: &str) -> Result<()> {
        let (ns, name) = split_key(key);
        let ns = ns.unwrap_or_default().to_string();
        let Some((rs, oref)) = self.get(key) else {
            self.exp.forget(key);
            return Ok(());
        };
        let uid = rs.meta.uid.clone().unwrap_or_default();
        let deleting = rs.meta.deletion_timestamp.is_some();
        let pods = self.pods.list_namespaced(&ns);
        let claim = claim_pods(&uid, rs.selector.as_ref(), deleting, &pods);
        let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let owner = wu::new_controller_ref(&rs.meta, self.flavor.api_version(), self.flavor.kind());
        let mut adopted_failed = std::collections::HashSet::new();
        for p in &claim.adopt {
            let pn = p.metadata.name.clone().unwrap_or_default();
            if let Err(e) = pod_api
                .patch(
                    &pn,
                    &PatchParams::default(),
                    &Patch::Merge(adopt_patch(&p.metadata, owner.clone())),
                )
                .await
            {
                if !is_not_found(&e) {
                    tracing::info!("{}: adopting pod {ns}/{pn}: {e}", self.flavor.kind());
                }
                adopted_failed.insert(pn);
            }
        }
        for p in &claim.release {
            let pn = p.metadata.name.clone().unwrap_or_default();
            if let Err(e) = pod_api
                .patch(
                    &pn,
                    &PatchParams::default(),
                    &Patch::Merge(release_patch(&p.metadata, &uid)),
                )
                .await
            {
                if !is_not_found(&e) {
                    tracing::info!("{}: releasing pod {ns}/{pn}: {e}", self.flavor.kind());
                }
            }
        }
        let active: Vec<&Pod> = claim
            .owned
            .iter()
            .copied()
            .filter(|p| wu::is_pod_active(p))
            .filter(|p| !adopted_failed.contains(p.metadata.name.as_deref().unwrap_or_default()))
            .collect();

        let satisfied = self.exp.satisfied_by_pods(key, &self.pods, &ns);
        let mut manage_err: Option<(&'static str, String)> = None;
        if satisfied && !deleting {
            manage_err = self.manage(key, &ns, &rs, &oref, &active).await;
        }
        let status = compute_status(
            &rs,
            &active,
            manage_err.as_ref().map(|(r, m)| (*r, m.as_str())),
            wu::now(),
        );
        if wu::status_changed(&status, Some(&rs.status)) {
            self.write_status(&ns, name, &status).await?;
        }
        if rs.min_ready_seconds > 0 && status.ready_replicas != status.available_replicas {
            self.queue.add_after(
                key.to_string(),
                Duration::from_secs(rs.min_ready_seconds as u64),
            );
        }
        if let Some((_, m)) = manage_err {
            anyhow::bail!("{m}");
        }
        Ok(())
    }

    async fn write_status(&self, ns: &str, name: &str, status: &ReplicaSetStatus) -> Result<()> {
        match self.flavor {
            Flavor::ReplicaSet => {
                let Some(cur) = self.rss.as_ref().and_then(|i| i.get(Some(ns), name)) else {
                    return Ok(());
                };
                let mut obj = (*cur).clone();
                obj.status = Some(status.clone());
                let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
                wu::replace_status(&api, name, &obj).await
            }
            Flavor::ReplicationController => {
                let Some(cur) = self.rcs.as_ref().and_then(|i| i.get(Some(ns), name)) else {
                    return Ok(());
                };
                let mut obj = (*cur).clone();
                obj.status = Some(rc_status(status));
                let api: Api<ReplicationController> = Api::namespaced(self.client.clone(), ns);
                wu::replace_status(&api, name, &obj).await
            }
        }
    }

    async fn manage(
        &self,
        key: &str,
        ns: &str,
        rs: &RsView,
        oref: &ObjectReference,
        active: &[&Pod],
    ) -> Option<(&'static str, String)> {
        let diff = active.len() as i64 - i64::from(rs.replicas.max(0));
        let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let control = PodControl {
            api: &pod_api,
            recorder: &self.recorder,
            oref,
            expectations: &self.exp,
            key,
        };
        if diff < 0 {
            let template = rs.template.as_ref()?;
            let want = ((-diff) as usize).min(BURST_REPLICAS);
            let pod = pod_for_owner(
                template,
                &rs.meta,
                self.flavor.api_version(),
                self.flavor.kind(),
            );
            let err = control.create_pods(vec![pod; want]).await;
            return err.map(|e| ("FailedCreate", err_message(&e)));
        } else if diff > 0 {
            let n = (diff as usize).min(BURST_REPLICAS);
            let related = self.related_pods(ns, rs);
            let related_refs: Vec<&Pod> = related.iter().map(|p| p.as_ref()).collect();
            let victims: Vec<String> = wu::pods_to_delete(active, &related_refs, n)
                .iter()
                .map(|p| p.metadata.name.clone().unwrap_or_default())
                .collect();
            let err = control.delete_pods(&victims).await;
            return err.map(|e| ("FailedDelete", err_message(&e)));
        }
        None
    }

    /// Active pods of every controller sharing this one's controller owner (the
    /// replica sets of one Deployment), for the co-location ranking.
    fn related_pods(&self, ns: &str, rs: &RsView) -> Vec<Arc<Pod>> {
        let mut uids: Vec<String> = vec![rs.meta.uid.clone().unwrap_or_default()];
        if let (Some(owner), Some(inf)) = (wu::controller_of(&rs.meta), self.rss.as_ref()) {
            for other in inf.list_namespaced(ns) {
                if wu::controller_of(&other.metadata).is_some_and(|o| o.uid == owner.uid) {
                    uids.push(other.metadata.uid.clone().unwrap_or_default());
                }
            }
        }
        self.pods
            .list_namespaced(ns)
            .into_iter()
            .filter(|p| wu::is_pod_active(p))
            .filter(|p| wu::controller_of(&p.metadata).is_some_and(|r| uids.contains(&r.uid)))
            .collect()
    }
}

/// Labels selecting nothing are never used: a helper for the RC selector map.
pub fn rc_selector(m: &BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(m.clone()),
        match_expressions: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::PodSpec;

    fn rs(replicas: i32) -> RsView {
        RsView::from_rs(&ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some([("app".to_string(), "web".to_string())].into()),
                    ..Default::default()
                },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(
                            [
                                ("app".to_string(), "web".to_string()),
                                ("x".to_string(), "y".to_string()),
                            ]
                            .into(),
                        ),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec::default()),
                }),
                ..Default::default()
            }),
            status: None,
        })
    }

    fn pod(name: &str, labels: &[(&str, &str)], owner: Option<&str>, ready: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                owner_references: owner.map(|u| {
                    vec![OwnerReference {
                        uid: u.into(),
                        controller: Some(true),
                        kind: "ReplicaSet".into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(wu::testing::pod_status("Running", ready)),
        })
    }

    #[test]
    fn claims() {
        let pods = vec![
            pod("a", &[("app", "web")], Some("u1"), true),
            pod("b", &[("app", "other")], Some("u1"), true),
            pod("c", &[("app", "web")], None, false),
            pod("d", &[("app", "web")], Some("u2"), true),
        ];
        let r = rs(2);
        let c = claim_pods("u1", r.selector.as_ref(), false, &pods);
        let n = |v: &Vec<&Pod>| {
            v.iter()
                .map(|p| p.metadata.name.clone().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(n(&c.owned), vec!["a", "c"]);
        assert_eq!(n(&c.adopt), vec!["c"]);
        assert_eq!(n(&c.release), vec!["b"]);
    }

    #[test]
    fn status_counts() {
        let pods = [
            pod("a", &[("app", "web"), ("x", "y")], Some("u1"), true),
            pod("b", &[("app", "web")], Some("u1"), false),
        ];
        let refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
        let st = compute_status(&rs(2), &refs, None, wu::now());
        assert_eq!(st.replicas, 2);
        assert_eq!(st.fully_labeled_replicas, Some(1));
        assert_eq!(st.ready_replicas, Some(1));
        assert_eq!(st.available_replicas, Some(1));
        assert_eq!(st.observed_generation, Some(3));
        let st = compute_status(&rs(2), &refs, Some(("FailedCreate", "quota")), wu::now());
        let c = &st.conditions.unwrap()[0];
        assert_eq!(c.type_, "ReplicaFailure");
        assert_eq!(c.reason.as_deref(), Some("FailedCreate"));
    }

    #[test]
    fn patches() {
        let p = pod("a", &[], Some("u1"), true);
        let v = release_patch(&p.metadata, "u1");
        assert!(v["metadata"]["ownerReferences"].is_null());
        let o = OwnerReference {
            uid: "u9".into(),
            ..Default::default()
        };
        let v = adopt_patch(&p.metadata, o);
        assert_eq!(
            v["metadata"]["ownerReferences"].as_array().unwrap().len(),
            2
        );
    }
}
