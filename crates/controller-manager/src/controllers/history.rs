//! ControllerRevisions for StatefulSets and DaemonSets (upstream
//! pkg/controller/history): the revision data is the strategic-merge patch
//! `{"spec":{"template":{..., "$patch":"replace"}}}` that `kubectl rollout undo`
//! applies back; revisions are named `<owner>-<hash>` and numbered.
//!
//! Both controllers keep their history the same way: [`owned_revisions`] lists
//! it, [`ensure_revision`] finds or creates the revision of the current
//! template (renumbering an older equal one on a rollback, counting hash
//! collisions), and [`truncate_history`] deletes the oldest unused revisions
//! beyond `revisionHistoryLimit`. What the pods carry in their
//! `controller-revision-hash` label differs: a StatefulSet's pods carry the
//! revision's name, a DaemonSet's pods its hash.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, PostParams};
use kube::Api;

use super::workload_utils as wu;
use crate::informers::Informer;

pub const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";

/// The patch stored in a revision for a template.
pub fn template_patch(template: &PodTemplateSpec) -> serde_json::Value {
    let mut t = serde_json::to_value(template).unwrap_or_default();
    if let Some(o) = t.as_object_mut() {
        o.insert("$patch".into(), "replace".into());
    }
    serde_json::json!({"spec": {"template": t}})
}

/// The hash naming a revision with this data.
pub fn hash_revision(data: &serde_json::Value, collision: Option<i32>) -> String {
    wu::compute_hash(data, collision)
}

/// A new (unsaved) revision of `owner` with `data`.
pub fn new_revision(
    owner_meta: &ObjectMeta,
    owner_ref: OwnerReference,
    labels: Option<BTreeMap<String, String>>,
    data: serde_json::Value,
    revision: i64,
    collision: Option<i32>,
) -> ControllerRevision {
    let hash = hash_revision(&data, collision);
    let mut labels = labels.unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH.into(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{hash}",
                owner_meta.name.as_deref().unwrap_or_default()
            )),
            namespace: owner_meta.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner_ref]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

/// Whether two revisions hold the same data.
pub fn equal_revision(a: &ControllerRevision, data: &serde_json::Value) -> bool {
    a.data.as_ref().map(|d| &d.0) == Some(data)
}

/// Revisions sorted by revision number, then name.
pub fn sort_revisions(revs: &mut [ControllerRevision]) {
    revs.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

pub fn next_revision(revs: &[ControllerRevision]) -> i64 {
    revs.iter().map(|r| r.revision).max().unwrap_or(0) + 1
}

/// The `controller-revision-hash` label of an object (a revision or a pod).
pub fn revision_label(meta: &ObjectMeta) -> Option<&str> {
    meta.labels
        .as_ref()?
        .get(CONTROLLER_REVISION_HASH)
        .map(|s| s.as_str())
}

/// The revision a pod was made from: its `controller-revision-hash` label.
pub fn pod_revision(pod: &Pod) -> Option<&str> {
    revision_label(&pod.metadata)
}

/// The revisions the owner with `uid` controls in `ns`, sorted with
/// [`sort_revisions`] (upstream ListControllerRevisions + SortControllerRevisions).
pub fn owned_revisions(
    revisions: &Informer<ControllerRevision>,
    ns: &str,
    uid: &str,
) -> Vec<ControllerRevision> {
    let mut revs: Vec<ControllerRevision> = revisions
        .list_namespaced(ns)
        .into_iter()
        .filter(|r| wu::is_controlled_by(&r.metadata, uid))
        .map(|r| (*r).clone())
        .collect();
    sort_revisions(&mut revs);
    revs
}

/// The [`pod_revision`] labels of the pods the owner with `uid` controls in
/// `ns`: the revisions still in use.
pub fn revisions_in_use(pods: &Informer<Pod>, ns: &str, uid: &str) -> Vec<String> {
    pods.list_namespaced(ns)
        .iter()
        .filter(|p| wu::is_controlled_by(&p.metadata, uid))
        .filter_map(|p| pod_revision(p).map(String::from))
        .collect()
}

/// The revision of `template` for the `kind` (apps/v1) object `owner`, whose
/// history is `revs` (from [`owned_revisions`]); upstream statefulset
/// getStatefulSetRevisions / daemonset constructHistory:
/// - the newest revision holding the same data, when it is the newest of all;
/// - an older revision holding it (a rollback) gets the next revision number;
/// - otherwise a new revision `<owner>-<hash>` is created; while that name is
///   taken by a revision that is not an equal one of this owner,
///   `collision` (the owner's status.collisionCount) is incremented and the
///   hash recomputed.
pub async fn ensure_revision(
    api: &Api<ControllerRevision>,
    revs: &[ControllerRevision],
    owner: &ObjectMeta,
    kind: &str,
    template: &PodTemplateSpec,
    collision: &mut Option<i32>,
) -> anyhow::Result<ControllerRevision> {
    let uid = owner.uid.clone().unwrap_or_default();
    let data = template_patch(template);
    let next = next_revision(revs);
    match revs.iter().rposition(|r| equal_revision(r, &data)) {
        Some(i) if i == revs.len() - 1 => Ok(revs[i].clone()),
        Some(i) => {
            // rolled back to an older revision: it becomes the newest
            let mut r = revs[i].clone();
            r.revision = next;
            Ok(api
                .replace(
                    r.metadata.name.as_deref().unwrap_or_default(),
                    &PostParams::default(),
                    &r,
                )
                .await?)
        }
        None => {
            let labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
            let owner_ref = wu::new_controller_ref(owner, "apps/v1", kind);
            loop {
                let rev = new_revision(
                    owner,
                    owner_ref.clone(),
                    labels.clone(),
                    data.clone(),
                    next,
                    *collision,
                );
                match api.create(&PostParams::default(), &rev).await {
                    Ok(r) => return Ok(r),
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        let existing = api
                            .get(rev.metadata.name.as_deref().unwrap_or_default())
                            .await?;
                        if equal_revision(&existing, &data)
                            && wu::is_controlled_by(&existing.metadata, &uid)
                        {
                            return Ok(existing);
                        }
                        *collision = Some(collision.unwrap_or(0).saturating_add(1));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// Upstream truncateHistory: of the revisions in `revs` (oldest first) that
/// `live` does not keep (the current and update revisions, those pods still
/// use), deletes the oldest beyond `limit` (revisionHistoryLimit, default 10).
/// Failed deletes are left for a later sync.
pub async fn truncate_history(
    api: &Api<ControllerRevision>,
    revs: &[ControllerRevision],
    limit: Option<i32>,
    live: impl Fn(&ControllerRevision) -> bool,
) {
    let limit = limit.unwrap_or(10).max(0) as usize;
    let unused: Vec<&ControllerRevision> = revs.iter().filter(|r| !live(r)).collect();
    if unused.len() > limit {
        for r in unused.iter().take(unused.len() - limit) {
            let _ = api
                .delete(
                    r.metadata.name.as_deref().unwrap_or_default(),
                    &DeleteParams::default(),
                )
                .await;
        }
    }
}

/// The template a revision holds.
pub fn revision_template(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let d = rev.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    let mut d = d;
    if let Some(o) = d.as_object_mut() {
        o.remove("$patch");
    }
    serde_json::from_value(d).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_roundtrip() {
        let t = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("a".to_string(), "b".to_string())].into()),
                ..Default::default()
            }),
            spec: None,
        };
        let data = template_patch(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let owner = ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        };
        let r = new_revision(
            &owner,
            OwnerReference::default(),
            t.metadata.as_ref().unwrap().labels.clone(),
            data.clone(),
            1,
            None,
        );
        assert!(r.metadata.name.as_ref().unwrap().starts_with("web-"));
        assert!(equal_revision(&r, &data));
        assert_eq!(revision_template(&r), Some(t));
        assert_eq!(next_revision(&[r]), 2);
    }
}
