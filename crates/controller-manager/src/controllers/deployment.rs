//! The deployment controller (upstream pkg/controller/deployment): owns replica
//! sets named `<deployment>-<pod-template-hash>`, rolls out template changes with
//! the RollingUpdate (maxSurge / maxUnavailable) or Recreate strategy, keeps
//! revisionHistoryLimit old replica sets, scales proportionally, honours
//! paused and progressDeadlineSeconds, and writes the Available / Progressing /
//! ReplicaFailure conditions `kubectl rollout status` reads. A rollback
//! (`kubectl rollout undo`) is a template change back to an old replica set's
//! template: that replica set becomes the new one and gets the next revision.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use client_base::events::{object_ref, EventType, Recorder};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use tokio_util::sync::CancellationToken;

use super::deployment_util as du;
use super::podutil::{err_message, is_conflict, is_not_found};
use super::replicaset::{adopt_patch, release_patch};
use super::workload_utils::{self as wu, ClaimAction};
use crate::informers::{key_of, split_key, Informer, InformerFactory, Notification};
use crate::workqueue::WorkQueue;
use crate::ControllerContext;

/// The deployment controller ("deployment-controller").
pub async fn run(ctx: ControllerContext) -> Result<()> {
    let c = DeploymentController {
        client: ctx.client.clone(),
        deployments: ctx.informers.get::<Deployment>(),
        rss: ctx.informers.get::<ReplicaSet>(),
        pods: ctx.informers.get::<Pod>(),
        recorder: ctx.recorder("deployment-controller"),
        queue: WorkQueue::new(),
    };
    c.run(ctx.options.concurrent_deployment_syncs, ctx.stop.clone())
        .await
}

#[derive(Clone)]
pub struct DeploymentController {
    client: kube::Client,
    deployments: Informer<Deployment>,
    rss: Informer<ReplicaSet>,
    pods: Informer<Pod>,
    recorder: Recorder,
    queue: WorkQueue<String>,
}

fn name_of(m: &ObjectMeta) -> String {
    m.name.clone().unwrap_or_default()
}

impl DeploymentController {
    pub fn new(client: kube::Client, factory: &InformerFactory, recorder: Recorder) -> Self {
        DeploymentController {
            client,
            deployments: factory.get(),
            rss: factory.get(),
            pods: factory.get(),
            recorder,
            queue: WorkQueue::new(),
        }
    }

    fn enqueue_all(&self) {
        self.queue.add_all(self.deployments.keys());
    }

    fn enqueue_for_rs(&self, rs: &ReplicaSet) {
        self.queue.add_all(wu::controller_keys_for(
            &rs.metadata,
            "Deployment",
            &self.deployments,
            |o| o.spec.as_ref().map(|s| &s.selector),
        ));
    }

    fn enqueue_for_pod(&self, pod: &Pod) {
        // Only Recreate waits on pods (old pods gone before the new replica set scales up).
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let Some(r) = wu::controller_of(&pod.metadata) else {
            return;
        };
        if r.kind != "ReplicaSet" {
            return;
        }
        let Some(rs) = self.rss.get(Some(&ns), &r.name) else {
            return;
        };
        if let Some(dr) = wu::controller_of(&rs.metadata) {
            if dr.kind == "Deployment" {
                if let Some(d) = self.deployments.get(Some(&ns), &dr.name) {
                    if du::is_recreate(&d) {
                        self.queue.add(key_of(d.as_ref()));
                    }
                }
            }
        }
    }

    pub async fn run(self, workers: usize, stop: CancellationToken) -> Result<()> {
        let mut dsub = self.deployments.subscribe();
        let mut rsub = self.rss.subscribe();
        let mut psub = self.pods.subscribe();
        let this = self.clone();
        let s = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = s.cancelled() => break,
                    n = dsub.recv() => match n {
                        None => break,
                        Some(Notification::Resync) => this.enqueue_all(),
                        Some(n) => if let Some(o) = n.object() { this.queue.add(key_of(o.as_ref())) },
                    },
                    n = rsub.recv() => match n {
                        None => break,
                        Some(Notification::Resync) => this.enqueue_all(),
                        Some(Notification::Updated { old, new }) => {
                            if old.metadata.labels != new.metadata.labels
                                || wu::controller_of(&old.metadata).map(|r| &r.uid) != wu::controller_of(&new.metadata).map(|r| &r.uid)
                            {
                                this.enqueue_for_rs(&old);
                            }
                            this.enqueue_for_rs(&new);
                        }
                        Some(n) => if let Some(o) = n.object() { this.enqueue_for_rs(o) },
                    },
                    n = psub.recv() => match n {
                        None => break,
                        Some(Notification::Deleted(p)) => this.enqueue_for_pod(&p),
                        Some(Notification::Updated { new, .. }) if !wu::is_pod_active(&new) => this.enqueue_for_pod(&new),
                        _ => {}
                    },
                }
            }
        });
        self.deployments.wait_synced().await;
        self.rss.wait_synced().await;
        self.pods.wait_synced().await;
        self.enqueue_all();
        wu::run_sync_workers(
            self.clone(),
            self.queue.clone(),
            workers,
            stop,
            "deployment",
            |this, key| async move { this.sync(&key).await },
        )
        .await;
        Ok(())
    }

    /// One sync of `namespace/name`.
    pub async fn sync(&self, key: &str) -> Result<()> {
        let (ns, name) = split_key(key);
        let ns = ns.unwrap_or_default().to_string();
        let Some(d) = self.deployments.get(Some(&ns), name) else {
            return Ok(());
        };
        let mut d: Deployment = (*d).clone();
        let selector = d.spec.as_ref().map(|s| s.selector.clone());
        if wu::selector_is_empty(selector.as_ref()) {
            self.recorder.event(
                &object_ref(&d),
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            if d.status.as_ref().and_then(|s| s.observed_generation) < d.metadata.generation {
                let mut st = d.status.clone().unwrap_or_default();
                st.observed_generation = d.metadata.generation;
                self.write_status(&d, st).await?;
            }
            return Ok(());
        }
        let mut rss = self.claim_replica_sets(&d, selector.as_ref()).await;
        if d.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only(&d, &rss).await;
        }
        // paused / resumed condition
        if du::progress_deadline(&d).is_some() {
            let st = d.status.clone().unwrap_or_default();
            let cur = du::get_condition(&st, du::PROGRESSING);
            let paused = du::is_paused(&d);
            let cond = if paused
                && cur.is_none_or(|c| c.reason.as_deref() != Some(du::PAUSED_REASON))
            {
                Some(du::new_condition(
                    du::PROGRESSING,
                    "Unknown",
                    du::PAUSED_REASON,
                    "Deployment is paused".into(),
                    wu::now(),
                ))
            } else if !paused && cur.is_some_and(|c| c.reason.as_deref() == Some(du::PAUSED_REASON))
            {
                Some(du::new_condition(
                    du::PROGRESSING,
                    "Unknown",
                    du::RESUMED_REASON,
                    "Deployment is resumed".into(),
                    wu::now(),
                ))
            } else {
                None
            };
            if let Some(c) = cond {
                self.write_condition(&mut d, c).await?;
            }
        }
        if du::is_paused(&d) {
            return self.sync_scale(&mut d, &mut rss).await;
        }
        if self.is_scaling_event(&d, &rss) {
            return self.sync_scale(&mut d, &mut rss).await;
        }
        if du::is_recreate(&d) {
            self.rollout_recreate(&mut d, &mut rss).await
        } else {
            self.rollout_rolling(&mut d, &mut rss).await
        }
    }

    async fn claim_replica_sets(
        &self,
        d: &Deployment,
        selector: Option<&LabelSelector>,
    ) -> Vec<ReplicaSet> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let deleting = d.metadata.deletion_timestamp.is_some();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
        let owner = wu::new_controller_ref(&d.metadata, "apps/v1", "Deployment");
        let mut out = vec![];
        for rs in self.rss.list_namespaced(&ns) {
            let matches = wu::selector_matches(selector, rs.metadata.labels.as_ref());
            match wu::claim_action(&rs.metadata, &uid, matches, deleting) {
                ClaimAction::Keep => out.push((*rs).clone()),
                ClaimAction::Release => {
                    let _ = api
                        .patch(
                            &name_of(&rs.metadata),
                            &PatchParams::default(),
                            &Patch::Merge(release_patch(&rs.metadata, &uid)),
                        )
                        .await;
                }
                ClaimAction::Adopt => {
                    match api
                        .patch(
                            &name_of(&rs.metadata),
                            &PatchParams::default(),
                            &Patch::Merge(adopt_patch(&rs.metadata, owner.clone())),
                        )
                        .await
                    {
                        Ok(n) => out.push(n),
                        Err(e) => tracing::info!(
                            "deployment: adopting replica set {ns}/{}: {e}",
                            name_of(&rs.metadata)
                        ),
                    }
                }
                ClaimAction::Ignore => {}
            }
        }
        out
    }

    async fn write_status(
        &self,
        d: &Deployment,
        status: DeploymentStatus,
    ) -> Result<Option<Deployment>> {
        if d.status
            .as_ref()
            .is_some_and(|s| du::status_equal(s, &status))
        {
            return Ok(None);
        }
        let mut obj = d.clone();
        obj.status = Some(status);
        let api: Api<Deployment> = Api::namespaced(
            self.client.clone(),
            d.metadata.namespace.as_deref().unwrap_or_default(),
        );
        match api
            .replace_status(&name_of(&d.metadata), &PostParams::default(), &obj)
            .await
        {
            Ok(n) => Ok(Some(n)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets `cond` in the deployment's status and writes it; `d` becomes the
    /// written deployment.
    async fn write_condition(&self, d: &mut Deployment, cond: DeploymentCondition) -> Result<()> {
        let mut st = d.status.clone().unwrap_or_default();
        du::set_condition(&mut st, cond);
        if let Some(nd) = self.write_status(d, st).await? {
            *d = nd;
        }
        Ok(())
    }

    async fn sync_status_only(&self, d: &Deployment, rss: &[ReplicaSet]) -> Result<()> {
        let new_rs = du::find_new_rs(d, rss).cloned();
        let all: Vec<&ReplicaSet> = rss.iter().collect();
        let st = du::calculate_status(d, &all, new_rs.as_ref(), wu::now());
        self.write_status(d, st).await?;
        Ok(())
    }

    /// Whether the deployment's replicas changed since the active replica sets were
    /// last annotated with desired-replicas.
    fn is_scaling_event(&self, d: &Deployment, rss: &[ReplicaSet]) -> bool {
        let want = du::d_replicas(d).to_string();
        rss.iter().filter(|r| du::rs_replicas(r) > 0).any(|r| {
            r.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(du::DESIRED_REPLICAS))
                .is_some_and(|v| *v != want)
        })
    }

    /// Finds (and with `create`, creates) the new replica set and syncs the revision
    /// annotations of the replica set and the deployment. Returns the new replica
    /// set's index in `rss`.
    async fn new_rs_and_sync_revision(
        &self,
        d: &mut Deployment,
        rss: &mut Vec<ReplicaSet>,
        create: bool,
    ) -> Result<Option<usize>> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
        let existing = du::find_new_rs(d, rss).map(|r| r.metadata.uid.clone());
        let idx = existing.and_then(|uid| rss.iter().position(|r| r.metadata.uid == uid));
        let old: Vec<ReplicaSet> = rss
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != idx)
            .map(|(_, r)| r.clone())
            .collect();
        let new_revision = du::max_revision(&old) + 1;
        let now = wu::now();
        if let Some(i) = idx {
            let mut rs = rss[i].clone();
            let mut changed = du::set_new_rs_annotations(d, &mut rs, new_revision, true);
            let mrs = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            if let Some(spec) = rs.spec.as_mut() {
                if spec.min_ready_seconds != mrs {
                    spec.min_ready_seconds = mrs;
                    changed = true;
                }
            }
            if changed {
                rs = api
                    .replace(&name_of(&rs.metadata), &PostParams::default(), &rs)
                    .await?;
                rss[i] = rs.clone();
            }
            let rev = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(du::REVISION))
                .cloned()
                .unwrap_or_default();
            self.set_deployment_revision(d, &rev).await?;
            let st = d.status.clone().unwrap_or_default();
            if du::progress_deadline(d).is_some()
                && du::get_condition(&st, du::PROGRESSING).is_none()
            {
                let c = du::new_condition(
                    du::PROGRESSING,
                    "True",
                    du::FOUND_NEW_RS_REASON,
                    format!("Found new replica set {:?}", name_of(&rs.metadata)),
                    now,
                );
                self.write_condition(d, c).await?;
            }
            return Ok(Some(i));
        }
        if !create {
            return Ok(None);
        }
        // create the new replica set
        let spec = d.spec.clone().unwrap_or_default();
        let hash = du::template_hash(d);
        let mut template = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(du::POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(du::POD_TEMPLATE_HASH.into(), hash.clone());
        let dname = name_of(&d.metadata);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{dname}-{hash}")),
                namespace: Some(ns.clone()),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                owner_references: Some(vec![wu::new_controller_ref(
                    &d.metadata,
                    "apps/v1",
                    "Deployment",
                )]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let all_refs: Vec<&ReplicaSet> = rss.iter().collect();
        let replicas = du::new_rs_new_replicas(d, &all_refs, 0);
        rs.spec.as_mut().unwrap().replicas = Some(replicas);
        du::set_new_rs_annotations(d, &mut rs, new_revision, false);
        let created = match api.create(&PostParams::default(), &rs).await {
            Ok(c) => c,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Already exists: ours with the same template (stale cache), or a hash collision.
                let cur = api.get(&name_of(&rs.metadata)).await?;
                let ours = wu::is_controlled_by(
                    &cur.metadata,
                    d.metadata.uid.as_deref().unwrap_or_default(),
                );
                let same = cur
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| {
                        wu::templates_equal_ignoring_label(t, &spec.template, du::POD_TEMPLATE_HASH)
                    });
                if ours && same {
                    rss.push(cur);
                    return Ok(Some(rss.len() - 1));
                }
                let mut st = d.status.clone().unwrap_or_default();
                st.collision_count = Some(st.collision_count.unwrap_or(0).saturating_add(1));
                self.write_status(d, st).await?;
                anyhow::bail!("hash collision for replica set {}", name_of(&rs.metadata));
            }
            Err(e) => {
                let msg = err_message(&e);
                if du::progress_deadline(d).is_some() {
                    let c = du::new_condition(
                        du::PROGRESSING,
                        "False",
                        du::FAILED_RS_CREATE_REASON,
                        msg.clone(),
                        now,
                    );
                    self.write_condition(d, c).await?;
                }
                self.recorder.event(
                    &object_ref(d),
                    EventType::Warning,
                    du::FAILED_RS_CREATE_REASON,
                    msg,
                );
                return Err(e.into());
            }
        };
        if replicas > 0 {
            self.recorder.event(
                &object_ref(d),
                EventType::Normal,
                "ScalingReplicaSet",
                format!(
                    "Scaled up replica set {} from 0 to {replicas}",
                    name_of(&created.metadata)
                ),
            );
        }
        self.set_deployment_revision(d, &new_revision.to_string())
            .await?;
        if du::progress_deadline(d).is_some() {
            let c = du::new_condition(
                du::PROGRESSING,
                "True",
                du::NEW_RS_REASON,
                format!("Created new replica set {:?}", name_of(&created.metadata)),
                now,
            );
            self.write_condition(d, c).await?;
        }
        rss.push(created);
        Ok(Some(rss.len() - 1))
    }

    async fn set_deployment_revision(&self, d: &mut Deployment, rev: &str) -> Result<()> {
        if rev.is_empty()
            || d.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(du::REVISION))
                .map(|s| s.as_str())
                == Some(rev)
        {
            return Ok(());
        }
        let api: Api<Deployment> = Api::namespaced(
            self.client.clone(),
            d.metadata.namespace.as_deref().unwrap_or_default(),
        );
        // Through /status, as upstream: annotations on the main resource
        // would bump the Deployment's generation.
        let patch = serde_json::json!({"metadata": {"annotations": {du::REVISION: rev}}});
        match api
            .patch_status(
                &name_of(&d.metadata),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(n) => {
                *d = n;
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Scales a replica set (and refreshes its replicas annotations), with the
    /// ScalingReplicaSet event. Returns whether the size changed.
    async fn scale_rs(&self, d: &Deployment, rs: &mut ReplicaSet, new_scale: i32) -> Result<bool> {
        let cur = du::rs_replicas(rs);
        let mut copy = rs.clone();
        let size_changed = cur != new_scale;
        let ann_changed = du::set_replicas_annotations(
            &mut copy,
            du::d_replicas(d),
            du::d_replicas(d).saturating_add(du::max_surge(d)),
        );
        if !size_changed && !ann_changed {
            return Ok(false);
        }
        copy.spec.get_or_insert_with(Default::default).replicas = Some(new_scale);
        let api: Api<ReplicaSet> = Api::namespaced(
            self.client.clone(),
            rs.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let updated = api
            .replace(&name_of(&rs.metadata), &PostParams::default(), &copy)
            .await?;
        *rs = updated;
        if size_changed {
            let op = if new_scale > cur { "up" } else { "down" };
            self.recorder.event(
                &object_ref(d),
                EventType::Normal,
                "ScalingReplicaSet",
                format!(
                    "Scaled {op} replica set {} from {cur} to {new_scale}",
                    name_of(&rs.metadata)
                ),
            );
        }
        Ok(size_changed)
    }

    /// Scaling only (paused deployments and scaling events): upstream `sync`.
    async fn sync_scale(&self, d: &mut Deployment, rss: &mut Vec<ReplicaSet>) -> Result<()> {
        let new_idx = self.new_rs_and_sync_revision(d, rss, false).await?;
        self.scale(d, rss, new_idx).await?;
        if du::is_paused(d) {
            self.cleanup(d, rss, new_idx).await;
        }
        let all: Vec<&ReplicaSet> = rss.iter().collect();
        let new_rs = new_idx.map(|i| &rss[i]);
        let st = du::calculate_status(d, &all, new_rs, wu::now());
        self.write_status(d, st).await?;
        Ok(())
    }

    async fn scale(
        &self,
        d: &Deployment,
        rss: &mut [ReplicaSet],
        new_idx: Option<usize>,
    ) -> Result<()> {
        let desired = du::d_replicas(d);
        let active: Vec<usize> = (0..rss.len())
            .filter(|i| du::rs_replicas(&rss[*i]) > 0)
            .collect();
        // a single active (or else the newest) replica set takes the whole size
        let single = match active.len() {
            0 => new_idx
                .or_else(|| (0..rss.len()).max_by(|a, b| du::by_creation(&rss[*a], &rss[*b]))),
            1 => Some(active[0]),
            _ => None,
        };
        if let Some(i) = single {
            if du::rs_replicas(&rss[i]) != desired {
                self.scale_rs(d, &mut rss[i], desired).await?;
            }
            return Ok(());
        }
        // saturated new replica set: old ones go to zero
        if let Some(ni) = new_idx {
            let n = &rss[ni];
            let desired_ann = n
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(du::DESIRED_REPLICAS))
                .and_then(|v| v.parse::<i32>().ok());
            if du::rs_replicas(n) == desired
                && desired_ann == Some(desired)
                && du::rs_available(n) == desired
            {
                for i in active {
                    if i != ni {
                        self.scale_rs(d, &mut rss[i], 0).await?;
                    }
                }
                return Ok(());
            }
        }
        if du::is_recreate(d) {
            return Ok(());
        }
        let refs: Vec<&ReplicaSet> = active.iter().map(|i| &rss[*i]).collect();
        let sizes = du::proportional_sizes(d, &refs);
        for i in active {
            let n = name_of(&rss[i].metadata);
            if let Some(s) = sizes.get(&n) {
                self.scale_rs(d, &mut rss[i], *s).await?;
            }
        }
        Ok(())
    }

    async fn rollout_rolling(&self, d: &mut Deployment, rss: &mut Vec<ReplicaSet>) -> Result<()> {
        let Some(ni) = self.new_rs_and_sync_revision(d, rss, true).await? else {
            return Ok(());
        };
        let desired = du::d_replicas(d);
        // scale up the new replica set
        let nr = du::rs_replicas(&rss[ni]);
        if nr != desired {
            let target = if nr > desired {
                desired
            } else {
                let all: Vec<&ReplicaSet> = rss.iter().collect();
                du::new_rs_new_replicas(d, &all, nr)
            };
            if self.scale_rs(d, &mut rss[ni], target).await? {
                return self.sync_rollout_status(d, rss, Some(ni)).await;
            }
        }
        // scale down old replica sets
        let old_idx: Vec<usize> = (0..rss.len())
            .filter(|i| *i != ni && du::rs_replicas(&rss[*i]) > 0)
            .collect();
        if !old_idx.is_empty() {
            let all: Vec<&ReplicaSet> = rss.iter().collect();
            let max_down = du::max_scaled_down(d, &all, Some(&rss[ni]));
            if max_down > 0 {
                let mut scaled = false;
                let old: Vec<&ReplicaSet> = old_idx.iter().map(|i| &rss[*i]).collect();
                let cleanup = du::cleanup_unhealthy(&old, max_down);
                let mut targets: Vec<(usize, i32)> =
                    cleanup.into_iter().map(|(j, s)| (old_idx[j], s)).collect();
                for (i, s) in targets.drain(..) {
                    if self.scale_rs(d, &mut rss[i], s).await? {
                        scaled = true;
                    }
                }
                let all: Vec<&ReplicaSet> = rss.iter().collect();
                let old: Vec<&ReplicaSet> = old_idx.iter().map(|i| &rss[*i]).collect();
                let down: Vec<(usize, i32)> = du::rolling_scale_down(d, &all, &old)
                    .into_iter()
                    .map(|(j, s)| (old_idx[j], s))
                    .collect();
                for (i, s) in down {
                    if self.scale_rs(d, &mut rss[i], s).await? {
                        scaled = true;
                    }
                }
                if scaled {
                    return self.sync_rollout_status(d, rss, Some(ni)).await;
                }
            }
        }
        let all: Vec<&ReplicaSet> = rss.iter().collect();
        let st = du::calculate_status(d, &all, Some(&rss[ni]), wu::now());
        if du::deployment_complete(d, &st) {
            self.cleanup(d, rss, Some(ni)).await;
        }
        self.sync_rollout_status(d, rss, Some(ni)).await
    }

    async fn rollout_recreate(&self, d: &mut Deployment, rss: &mut Vec<ReplicaSet>) -> Result<()> {
        let mut new_idx = self.new_rs_and_sync_revision(d, rss, false).await?;
        let old_idx: Vec<usize> = (0..rss.len()).filter(|i| Some(*i) != new_idx).collect();
        let mut scaled = false;
        for i in &old_idx {
            if du::rs_replicas(&rss[*i]) > 0 && self.scale_rs(d, &mut rss[*i], 0).await? {
                scaled = true;
            }
        }
        if scaled {
            return self.sync_rollout_status(d, rss, new_idx).await;
        }
        // wait for old pods to be gone
        let old_uids: Vec<String> = old_idx
            .iter()
            .filter_map(|i| rss[*i].metadata.uid.clone())
            .collect();
        let old_running = old_idx.iter().any(|i| du::rs_status_replicas(&rss[*i]) > 0)
            || self
                .pods
                .list_namespaced(d.metadata.namespace.as_deref().unwrap_or_default())
                .iter()
                .any(|p| {
                    wu::controller_of(&p.metadata).is_some_and(|r| old_uids.contains(&r.uid))
                        && !matches!(wu::pod_phase(p), "Failed" | "Succeeded")
                });
        if old_running {
            return self.sync_rollout_status(d, rss, new_idx).await;
        }
        if new_idx.is_none() {
            new_idx = self.new_rs_and_sync_revision(d, rss, true).await?;
        }
        if let Some(ni) = new_idx {
            let desired = du::d_replicas(d);
            if self.scale_rs(d, &mut rss[ni], desired).await? {
                return self.sync_rollout_status(d, rss, new_idx).await;
            }
            let all: Vec<&ReplicaSet> = rss.iter().collect();
            let st = du::calculate_status(d, &all, Some(&rss[ni]), wu::now());
            if du::deployment_complete(d, &st) {
                self.cleanup(d, rss, Some(ni)).await;
            }
        }
        self.sync_rollout_status(d, rss, new_idx).await
    }

    async fn sync_rollout_status(
        &self,
        d: &Deployment,
        rss: &[ReplicaSet],
        new_idx: Option<usize>,
    ) -> Result<()> {
        let all: Vec<&ReplicaSet> = rss.iter().collect();
        let now = wu::now();
        let st = du::rollout_status(d, &all, new_idx.map(|i| &rss[i]), now);
        let key = key_of(d);
        if let Some(after) = du::requeue_stuck_after(d, &st, now) {
            self.queue
                .add_after(key.clone(), Duration::from_secs(after as u64));
        }
        // requeue while new pods are ready but not yet available (minReadySeconds)
        let mrs = d
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        if mrs > 0 && st.ready_replicas != st.available_replicas {
            self.queue.add_after(key, Duration::from_secs(mrs as u64));
        }
        self.write_status(d, st).await?;
        Ok(())
    }

    /// Deletes the oldest replica sets beyond revisionHistoryLimit (only fully scaled
    /// down, observed ones).
    async fn cleanup(&self, d: &Deployment, rss: &[ReplicaSet], new_idx: Option<usize>) {
        let limit = d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0) as usize;
        let mut old: Vec<&ReplicaSet> = rss
            .iter()
            .enumerate()
            .filter(|(i, r)| Some(*i) != new_idx && r.metadata.deletion_timestamp.is_none())
            .map(|(_, r)| r)
            .collect();
        if old.len() <= limit {
            return;
        }
        let diff = old.len() - limit;
        old.sort_by(|a, b| du::by_revision(a, b));
        let api: Api<ReplicaSet> = Api::namespaced(
            self.client.clone(),
            d.metadata.namespace.as_deref().unwrap_or_default(),
        );
        for rs in old.into_iter().take(diff) {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if du::rs_status_replicas(rs) != 0
                || du::rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            if let Err(e) = api
                .delete(&name_of(&rs.metadata), &DeleteParams::default())
                .await
            {
                if !is_not_found(&e) && !is_conflict(&e) {
                    tracing::info!(
                        "deployment: deleting old replica set {}: {e}",
                        name_of(&rs.metadata)
                    );
                }
            }
        }
    }
}
