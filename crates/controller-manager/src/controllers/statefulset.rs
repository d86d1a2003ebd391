//! The statefulset controller (upstream pkg/controller/statefulset): pods named
//! `<set>-<ordinal>` with stable hostname/subdomain, one PVC per
//! volumeClaimTemplate and ordinal (`<claim>-<set>-<ordinal>`), OrderedReady
//! (one at a time, in order, waiting for Running and Ready) or Parallel pod
//! management, RollingUpdate (highest ordinal first, down to the partition) or
//! OnDelete, ControllerRevisions with currentRevision / updateRevision, and the
//! PVC retention policy (whenDeleted / whenScaled: Delete sets owner references
//! so the garbage collector removes the claims).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use client_base::events::{object_ref, EventType, Recorder};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use tokio_util::sync::CancellationToken;

use super::history;
use super::podutil::is_not_found;
use super::replicaset::{adopt_patch, release_patch};
use super::workload_utils::{self as wu, ClaimAction};
use crate::informers::{key_of, split_key, Informer, Notification};
use crate::workqueue::WorkQueue;
use crate::ControllerContext;

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

pub async fn run(ctx: ControllerContext) -> Result<()> {
    let c = StatefulSetController {
        client: ctx.client.clone(),
        sets: ctx.informers.get(),
        pods: ctx.informers.get(),
        revisions: ctx.informers.get(),
        recorder: ctx.recorder("statefulset-controller"),
        queue: WorkQueue::new(),
    };
    c.run(ctx.options.concurrent_statefulset_syncs, ctx.stop.clone())
        .await
}

/// The ordinal in a pod name `<set>-<n>`, if the pod belongs to `set`.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let rest = pod.strip_prefix(set)?.strip_prefix('-')?;
    if rest.is_empty()
        || !rest.bytes().all(|b| b.is_ascii_digit())
        || (rest.len() > 1 && rest.starts_with('0'))
    {
        return None;
    }
    rest.parse().ok()
}

pub fn pod_name(set: &str, ord: i32) -> String {
    format!("{set}-{ord}")
}

pub fn claim_name(claim: &str, set: &str, ord: i32) -> String {
    format!("{claim}-{set}-{ord}")
}

fn set_name(s: &StatefulSet) -> String {
    s.metadata.name.clone().unwrap_or_default()
}

fn start_ordinal(s: &StatefulSet) -> i32 {
    s.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
}

fn replicas(s: &StatefulSet) -> i32 {
    s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn is_parallel(s: &StatefulSet) -> bool {
    s.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        == Some("Parallel")
}

fn is_on_delete(s: &StatefulSet) -> bool {
    s.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete")
}

fn partition(s: &StatefulSet) -> i32 {
    s.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
}

fn max_unavailable(s: &StatefulSet) -> i32 {
    let r = replicas(s);
    let v = s
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.as_ref());
    wu::scaled_value(v, "1", r, true).max(1)
}

fn min_ready(s: &StatefulSet) -> i32 {
    s.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

fn running_and_ready(p: &Pod) -> bool {
    wu::pod_phase(p) == "Running" && wu::is_pod_ready(p)
}

/// The pod a set wants at `ord` from `template` (upstream newVersionedStatefulSetPod).
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ord: i32) -> Pod {
    let name = set_name(set);
    let owner = wu::new_controller_ref(&set.metadata, "apps/v1", "StatefulSet");
    let mut pod = wu::pod_from_template(template, Some(owner));
    let pname = pod_name(&name, ord);
    pod.metadata.name = Some(pname.clone());
    pod.metadata.namespace = set.metadata.namespace.clone();
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), pname.clone());
    labels.insert(POD_INDEX_LABEL.into(), ord.to_string());
    labels.insert(history::CONTROLLER_REVISION_HASH.into(), revision.into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(pname.clone());
    if let Some(svc) = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty())
    {
        spec.subdomain = Some(svc);
    }
    // storage: one claim per template, replacing a volume of the same name
    for ct in set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default()
    {
        let cname = ct.metadata.name.clone().unwrap_or_default();
        let vol = Volume {
            name: cname.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&cname, &name, ord),
                read_only: None,
            }),
            ..Default::default()
        };
        let vols = spec.volumes.get_or_insert_with(Vec::new);
        vols.retain(|v| v.name != cname);
        vols.push(vol);
    }
    pod
}

/// The claims a pod at `ord` needs.
pub fn claims_for(set: &StatefulSet, ord: i32) -> Vec<PersistentVolumeClaim> {
    let name = set_name(set);
    let sel_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    let when_deleted = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref())
        .and_then(|p| p.when_deleted.as_deref())
        == Some("Delete");
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|mut c| {
            let cname = c.metadata.name.clone().unwrap_or_default();
            c.metadata.name = Some(claim_name(&cname, &name, ord));
            c.metadata.namespace = set.metadata.namespace.clone();
            let l = c.metadata.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in &sel_labels {
                l.insert(k.clone(), v.clone());
            }
            c.metadata.resource_version = None;
            c.metadata.uid = None;
            if when_deleted {
                let mut r = wu::new_controller_ref(&set.metadata, "apps/v1", "StatefulSet");
                r.controller = None;
                r.block_owner_deletion = Some(true);
                c.metadata.owner_references = Some(vec![r]);
            }
            c.status = None;
            c
        })
        .collect()
}

/// Upstream's status computation over the set's pods.
pub fn compute_status(
    set: &StatefulSet,
    pods: &[&Pod],
    current: &str,
    update: &str,
    collision: Option<i32>,
    now: k8s_openapi::jiff::Timestamp,
) -> StatefulSetStatus {
    let mut st = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        collision_count: collision,
        current_revision: Some(current.to_string()),
        update_revision: Some(update.to_string()),
        replicas: 0,
        ready_replicas: Some(0),
        available_replicas: Some(0),
        current_replicas: Some(0),
        updated_replicas: Some(0),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    let (mut ready, mut avail, mut cur, mut upd) = (0, 0, 0, 0);
    for p in pods {
        st.replicas += 1;
        if running_and_ready(p) {
            ready += 1;
            if wu::is_pod_available(p, min_ready(set), now) {
                avail += 1;
            }
        }
        if p.metadata.deletion_timestamp.is_none() {
            if history::pod_revision(p) == Some(current) {
                cur += 1;
            }
            if history::pod_revision(p) == Some(update) {
                upd += 1;
            }
        }
    }
    st.ready_replicas = Some(ready);
    st.available_replicas = Some(avail);
    st.current_replicas = Some(cur);
    st.updated_replicas = Some(upd);
    // a finished rolling update makes the update revision current
    if !is_on_delete(set) && upd == st.replicas && ready == st.replicas {
        st.current_revision = Some(update.to_string());
        st.current_replicas = Some(upd);
    }
    st
}

/// What one sync does next.
#[derive(Debug, PartialEq)]
pub enum Step {
    Create(i32),
    Delete(String),
}

/// The pod operations of one sync (upstream updateStatefulSet), given the pods
/// by name. `want_rev(ord)` is the revision a missing pod is created at.
pub fn plan(
    set: &StatefulSet,
    pods: &BTreeMap<String, &Pod>,
    update_rev: &str,
    now: k8s_openapi::jiff::Timestamp,
) -> Vec<Step> {
    let name = set_name(set);
    let start = start_ordinal(set);
    let n = replicas(set).max(0);
    let monotonic = !is_parallel(set);
    let healthy = |p: &Pod| running_and_ready(p) && wu::is_pod_available(p, min_ready(set), now);
    let mut steps = vec![];
    // replicas in order
    for ord in start..start.saturating_add(n) {
        let pn = pod_name(&name, ord);
        match pods.get(&pn) {
            None => {
                steps.push(Step::Create(ord));
                if monotonic {
                    return steps;
                }
            }
            Some(p) => {
                if matches!(wu::pod_phase(p), "Failed" | "Succeeded")
                    && p.metadata.deletion_timestamp.is_none()
                {
                    steps.push(Step::Delete(pn));
                    if monotonic {
                        return steps;
                    }
                    continue;
                }
                if monotonic && (p.metadata.deletion_timestamp.is_some() || !healthy(p)) {
                    return steps;
                }
            }
        }
    }
    if monotonic && !steps.is_empty() {
        return steps;
    }
    // condemned: highest ordinal first
    let mut condemned: Vec<(i32, &Pod)> = pods
        .iter()
        .filter_map(|(pn, p)| ordinal_of(&name, pn).map(|o| (o, *p)))
        .filter(|(o, _)| *o < start || *o >= start.saturating_add(n))
        .collect();
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));
    for (_, p) in &condemned {
        if p.metadata.deletion_timestamp.is_some() {
            if monotonic {
                return steps;
            }
            continue;
        }
        steps.push(Step::Delete(p.metadata.name.clone().unwrap_or_default()));
        if monotonic {
            return steps;
        }
    }
    if !steps.is_empty() || !condemned.is_empty() {
        return steps;
    }
    if is_on_delete(set) {
        return steps;
    }
    // rolling update: highest ordinal first down to the partition, maxUnavailable at a time
    let mut unavailable = (start..start.saturating_add(n))
        .filter(|o| {
            pods.get(&pod_name(&name, *o))
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some() || !healthy(p))
        })
        .count() as i32;
    let max_unavail = max_unavailable(set);
    let part = partition(set);
    for ord in (start..start.saturating_add(n)).rev() {
        if ord.saturating_sub(start) < part {
            break;
        }
        let Some(p) = pods.get(&pod_name(&name, ord)) else {
            continue;
        };
        if history::pod_revision(p) != Some(update_rev) && p.metadata.deletion_timestamp.is_none() {
            if unavailable >= max_unavail && healthy(p) {
                break;
            }
            if healthy(p) {
                unavailable += 1;
            }
            steps.push(Step::Delete(p.metadata.name.clone().unwrap_or_default()));
            if unavailable >= max_unavail {
                break;
            }
        }
    }
    steps
}

#[derive(Clone)]
pub struct StatefulSetController {
    client: kube::Client,
    sets: Informer<StatefulSet>,
    pods: Informer<Pod>,
    revisions: Informer<ControllerRevision>,
    recorder: Recorder,
    queue: WorkQueue<String>,
}

impl StatefulSetController {
    fn enqueue_all(&self) {
        self.queue.add_all(self.sets.keys());
    }

    fn enqueue_for_pod(&self, pod: &Pod) {
        self.queue.add_all(wu::controller_keys_for(
            &pod.metadata,
            "StatefulSet",
            &self.sets,
            |o| o.spec.as_ref().map(|s| &s.selector),
        ));
    }

    pub async fn run(self, workers: usize, stop: CancellationToken) -> Result<()> {
        let mut ssub = self.sets.subscribe();
        let mut psub = self.pods.subscribe();
        let this = self.clone();
        let s = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = s.cancelled() => break,
                    n = ssub.recv() => match n {
                        None => break,
                        Some(Notification::Resync) => this.enqueue_all(),
                        Some(n) => if let Some(o) = n.object() { this.queue.add(key_of(o.as_ref())) },
                    },
                    n = psub.recv() => match n {
                        None => break,
                        Some(Notification::Resync) => this.enqueue_all(),
                        Some(Notification::Updated { old, new }) => {
                            if old.metadata.labels != new.metadata.labels { this.enqueue_for_pod(&old) }
                            this.enqueue_for_pod(&new)
                        }
                        Some(n) => if let Some(o) = n.object() { this.enqueue_for_pod(o) },
                    },
                }
            }
        });
        self.sets.wait_synced().await;
        self.pods.wait_synced().await;
        self.revisions.wait_synced().await;
        self.enqueue_all();
        wu::run_sync_workers(
            self.clone(),
            self.queue.clone(),
            workers,
            stop,
            "statefulset",
            |this, key| async move { this.sync(&key).await },
        )
        .await;
        Ok(())
    }

    /// Current and update revisions, creating the update revision when needed.
    async fn sync_revisions(
        &self,
        set: &StatefulSet,
    ) -> Result<(ControllerRevision, ControllerRevision, Option<i32>)> {
        let ns = set.metadata.namespace.clone().unwrap_or_default();
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let revs = history::owned_revisions(&self.revisions, &ns, &uid);
        let template = set
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let mut collision = set.status.as_ref().and_then(|s| s.collision_count);
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &ns);
        let update = history::ensure_revision(
            &api,
            &revs,
            &set.metadata,
            "StatefulSet",
            &template,
            &mut collision,
        )
        .await?;
        let cur_name = set.status.as_ref().and_then(|s| s.current_revision.clone());
        let current = cur_name
            .and_then(|n| {
                revs.iter()
                    .find(|r| r.metadata.name.as_deref() == Some(n.as_str()))
                    .cloned()
            })
            .unwrap_or_else(|| update.clone());
        // truncate history: keep revisionHistoryLimit unused revisions (a
        // stateful pod's label holds its revision's name)
        let in_use = history::revisions_in_use(&self.pods, &ns, &uid);
        let limit = set.spec.as_ref().and_then(|s| s.revision_history_limit);
        history::truncate_history(&api, &revs, limit, |r| {
            let n = r.metadata.name.clone().unwrap_or_default();
            n == current.metadata.name.clone().unwrap_or_default()
                || n == update.metadata.name.clone().unwrap_or_default()
                || in_use.contains(&n)
        })
        .await;
        Ok((current, update, collision))
    }

    pub async fn sync(&self, key: &str) -> Result<()> {
        let (ns, name) = split_key(key);
        let ns = ns.unwrap_or_default().to_string();
        let Some(set) = self.sets.get(Some(&ns), name) else {
            return Ok(());
        };
        let set: StatefulSet = (*set).clone();
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let sel = set.spec.as_ref().map(|s| s.selector.clone());
        let deleting = set.metadata.deletion_timestamp.is_some();
        let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        // claim pods (a pod of this set must also carry a matching name)
        let mut owned: Vec<Pod> = vec![];
        let owner = wu::new_controller_ref(&set.metadata, "apps/v1", "StatefulSet");
        for p in self.pods.list_namespaced(&ns) {
            let matches = !wu::selector_is_empty(sel.as_ref())
                && wu::selector_matches(sel.as_ref(), p.metadata.labels.as_ref())
                && ordinal_of(name, p.metadata.name.as_deref().unwrap_or_default()).is_some();
            let pn = p.metadata.name.clone().unwrap_or_default();
            match wu::claim_action(&p.metadata, &uid, matches, deleting) {
                ClaimAction::Keep => owned.push((*p).clone()),
                ClaimAction::Release => {
                    let _ = pod_api
                        .patch(
                            &pn,
                            &PatchParams::default(),
                            &Patch::Merge(release_patch(&p.metadata, &uid)),
                        )
                        .await;
                }
                ClaimAction::Adopt => {
                    if let Ok(np) = pod_api
                        .patch(
                            &pn,
                            &PatchParams::default(),
                            &Patch::Merge(adopt_patch(&p.metadata, owner.clone())),
                        )
                        .await
                    {
                        owned.push(np);
                    }
                }
                ClaimAction::Ignore => {}
            }
        }
        let (current, update, collision) = self.sync_revisions(&set).await?;
        let cur_name = current.metadata.name.clone().unwrap_or_default();
        let upd_name = update.metadata.name.clone().unwrap_or_default();
        let now = wu::now();
        if !deleting {
            let by_name: BTreeMap<String, &Pod> = owned
                .iter()
                .map(|p| (p.metadata.name.clone().unwrap_or_default(), p))
                .collect();
            let steps = plan(&set, &by_name, &upd_name, now);
            let cur_template = history::revision_template(&current).unwrap_or_else(|| {
                set.spec
                    .as_ref()
                    .map(|s| s.template.clone())
                    .unwrap_or_default()
            });
            let upd_template = set
                .spec
                .as_ref()
                .map(|s| s.template.clone())
                .unwrap_or_default();
            let part = partition(&set);
            let start = start_ordinal(&set);
            let cur_replicas = set
                .status
                .as_ref()
                .and_then(|s| s.current_replicas)
                .unwrap_or(0);
            for step in steps {
                match step {
                    Step::Create(ord) => {
                        // below the partition new pods get the current revision
                        // (upstream newVersionedStatefulSetPod; OnDelete always uses the update revision)
                        let has_ru = set
                            .spec
                            .as_ref()
                            .and_then(|s| s.update_strategy.as_ref())
                            .and_then(|u| u.rolling_update.as_ref())
                            .is_some();
                        let idx = ord.saturating_sub(start);
                        let use_current = !is_on_delete(&set)
                            && if has_ru {
                                idx < part
                            } else {
                                idx < cur_replicas
                            };
                        let (t, rev) = if use_current {
                            (&cur_template, &cur_name)
                        } else {
                            (&upd_template, &upd_name)
                        };
                        self.create_pod(&set, t, rev, ord).await?;
                    }
                    Step::Delete(pn) => {
                        if let Some(p) = by_name.get(&pn) {
                            match wu::pod_phase(p) {
                                "Failed" => self.recorder.event(
                                    &object_ref(&set),
                                    EventType::Warning,
                                    "RecreatingFailedPod",
                                    format!(
                                        "StatefulSet {ns}/{name} is recreating failed Pod {pn}"
                                    ),
                                ),
                                "Succeeded" => self.recorder.event(
                                    &object_ref(&set),
                                    EventType::Normal,
                                    "RecreatingTerminatedPod",
                                    format!(
                                        "StatefulSet {ns}/{name} is recreating terminated Pod {pn}"
                                    ),
                                ),
                                _ => {}
                            }
                        }
                        self.delete_pod(&set, &pn).await?;
                    }
                }
            }
        }
        let refs: Vec<&Pod> = owned.iter().collect();
        let st = compute_status(&set, &refs, &cur_name, &upd_name, collision, now);
        if wu::status_changed(&st, set.status.as_ref()) {
            let mut obj = set.clone();
            obj.status = Some(st.clone());
            let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &ns);
            wu::replace_status(&api, name, &obj).await?;
        }
        if min_ready(&set) > 0 && st.ready_replicas != st.available_replicas {
            self.queue
                .add_after(key.to_string(), Duration::from_secs(min_ready(&set) as u64));
        }
        Ok(())
    }

    async fn create_pod(
        &self,
        set: &StatefulSet,
        template: &PodTemplateSpec,
        rev: &str,
        ord: i32,
    ) -> Result<()> {
        let ns = set.metadata.namespace.clone().unwrap_or_default();
        let sname = set_name(set);
        let pod = new_pod(set, template, rev, ord);
        let pname = pod.metadata.name.clone().unwrap_or_default();
        let pvc_api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        for c in claims_for(set, ord) {
            let cname = c.metadata.name.clone().unwrap_or_default();
            match pvc_api.create(&PostParams::default(), &c).await {
                Ok(_) => self.recorder.event(
                    &object_ref(set),
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("create Claim {cname} Pod {pname} in StatefulSet {sname} success"),
                ),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    self.recorder.event(&object_ref(set), EventType::Warning, "FailedCreate", format!("create Claim {cname} for Pod {pname} in StatefulSet {sname} failed error: {e}"));
                    return Err(e.into());
                }
            }
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        match api.create(&PostParams::default(), &pod).await {
            Ok(_) => {
                self.recorder.event(
                    &object_ref(set),
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("create Pod {pname} in StatefulSet {sname} successful"),
                );
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => {
                self.recorder.event(
                    &object_ref(set),
                    EventType::Warning,
                    "FailedCreate",
                    format!("create Pod {pname} in StatefulSet {sname} failed error: {e}"),
                );
                Err(e.into())
            }
        }
    }

    async fn delete_pod(&self, set: &StatefulSet, pname: &str) -> Result<()> {
        let ns = set.metadata.namespace.clone().unwrap_or_default();
        let sname = set_name(set);
        // whenScaled: Delete — condemned pods own their claims so the GC removes them
        let when_scaled = set
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref())
            .and_then(|p| p.when_scaled.as_deref())
            == Some("Delete");
        if when_scaled {
            if let (Some(ord), Some(pod)) =
                (ordinal_of(&sname, pname), self.pods.get(Some(&ns), pname))
            {
                let start = start_ordinal(set);
                if ord >= start.saturating_add(replicas(set)) || ord < start {
                    let pvc_api: Api<PersistentVolumeClaim> =
                        Api::namespaced(self.client.clone(), &ns);
                    for c in claims_for(set, ord) {
                        let cname = c.metadata.name.clone().unwrap_or_default();
                        if let Ok(Some(cur)) = pvc_api.get_opt(&cname).await {
                            let mut refs: Vec<OwnerReference> =
                                cur.metadata.owner_references.clone().unwrap_or_default();
                            if !refs
                                .iter()
                                .any(|r| Some(&r.uid) == pod.metadata.uid.as_ref())
                            {
                                let mut r = wu::new_controller_ref(&pod.metadata, "v1", "Pod");
                                r.controller = None;
                                refs.push(r);
                                let _ = pvc_api
                                    .patch(&cname, &PatchParams::default(), &Patch::Merge(serde_json::json!({"metadata": {"ownerReferences": refs}})))
                                    .await;
                            }
                        }
                    }
                }
            }
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        match api.delete(pname, &DeleteParams::default()).await {
            Ok(_) => {
                self.recorder.event(
                    &object_ref(set),
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("delete Pod {pname} in StatefulSet {sname} successful"),
                );
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => {
                self.recorder.event(
                    &object_ref(set),
                    EventType::Warning,
                    "FailedDelete",
                    format!("delete Pod {pname} in StatefulSet {sname} failed error: {e}"),
                );
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        RollingUpdateStatefulSetStrategy, StatefulSetSpec, StatefulSetUpdateStrategy,
    };
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn set(replicas: i32, parallel: bool) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(StatefulSetSpec {
                replicas: Some(replicas),
                service_name: Some("nginx".into()),
                pod_management_policy: Some(
                    if parallel { "Parallel" } else { "OrderedReady" }.into(),
                ),
                selector: LabelSelector {
                    match_labels: Some([("app".to_string(), "web".to_string())].into()),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "web".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec::default()),
                },
                volume_claim_templates: Some(vec![PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some("www".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                }]),
                update_strategy: Some(StatefulSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateStatefulSetStrategy {
                        partition: Some(0),
                        max_unavailable: None,
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, rev: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                labels: Some(
                    [(
                        history::CONTROLLER_REVISION_HASH.to_string(),
                        rev.to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(wu::testing::pod_status(
                if ready { "Running" } else { "Pending" },
                ready,
            )),
        }
    }

    #[test]
    fn ordinals() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-01"), None);
        assert_eq!(ordinal_of("web", "webx-1"), None);
        assert_eq!(ordinal_of("web", "web-a"), None);
    }

    #[test]
    fn identity_and_storage() {
        let s = set(3, false);
        let p = new_pod(&s, &s.spec.as_ref().unwrap().template, "web-abc", 1);
        assert_eq!(p.metadata.name.as_deref(), Some("web-1"));
        let l = p.metadata.labels.as_ref().unwrap();
        assert_eq!(l[POD_NAME_LABEL], "web-1");
        assert_eq!(l[POD_INDEX_LABEL], "1");
        assert_eq!(l[history::CONTROLLER_REVISION_HASH], "web-abc");
        let spec = p.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-1"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        assert_eq!(
            spec.volumes.unwrap()[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            "www-web-1"
        );
        let c = claims_for(&s, 1);
        assert_eq!(c[0].metadata.name.as_deref(), Some("www-web-1"));
        assert_eq!(c[0].metadata.labels.as_ref().unwrap()["app"], "web");
    }

    #[test]
    fn ordered_creation_waits() {
        let s = set(3, false);
        let now = wu::now();
        let none = BTreeMap::new();
        assert_eq!(plan(&s, &none, "r1", now), vec![Step::Create(0)]);
        let p0 = pod("web-0", "r1", false);
        let m: BTreeMap<String, &Pod> = [("web-0".to_string(), &p0)].into();
        assert_eq!(plan(&s, &m, "r1", now), vec![]);
        let p0 = pod("web-0", "r1", true);
        let m: BTreeMap<String, &Pod> = [("web-0".to_string(), &p0)].into();
        assert_eq!(plan(&s, &m, "r1", now), vec![Step::Create(1)]);
        let p = set(3, true);
        assert_eq!(
            plan(&p, &none, "r1", now),
            vec![Step::Create(0), Step::Create(1), Step::Create(2)]
        );
    }

    #[test]
    fn scale_down_and_rolling_update() {
        let s = set(1, false);
        let now = wu::now();
        let (a, b, c) = (
            pod("web-0", "r1", true),
            pod("web-1", "r1", true),
            pod("web-2", "r1", true),
        );
        let m: BTreeMap<String, &Pod> = [
            ("web-0".to_string(), &a),
            ("web-1".to_string(), &b),
            ("web-2".to_string(), &c),
        ]
        .into();
        assert_eq!(plan(&s, &m, "r1", now), vec![Step::Delete("web-2".into())]);
        let s = set(3, false);
        assert_eq!(plan(&s, &m, "r2", now), vec![Step::Delete("web-2".into())]);
        let c2 = pod("web-2", "r2", true);
        let m: BTreeMap<String, &Pod> = [
            ("web-0".to_string(), &a),
            ("web-1".to_string(), &b),
            ("web-2".to_string(), &c2),
        ]
        .into();
        assert_eq!(plan(&s, &m, "r2", now), vec![Step::Delete("web-1".into())]);
        let mut sp = set(3, false);
        sp.spec
            .as_mut()
            .unwrap()
            .update_strategy
            .as_mut()
            .unwrap()
            .rolling_update
            .as_mut()
            .unwrap()
            .partition = Some(2);
        assert_eq!(plan(&sp, &m, "r2", now), vec![]);
        let refs = vec![&a, &b, &c2];
        let st = compute_status(&s, &refs, "r1", "r2", None, now);
        assert_eq!(
            (
                st.replicas,
                st.current_replicas,
                st.updated_replicas,
                st.ready_replicas
            ),
            (3, Some(2), Some(1), Some(3))
        );
    }
}
