//! ControllerRevisions for StatefulSets and DaemonSets (upstream
//! pkg/controller/history): the revision data is the strategic-merge patch
//! `{"spec":{"template":{..., "$patch":"replace"}}}` that `kubectl rollout undo`
//! applies back; revisions are named `<owner>-<hash>` and numbered.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;

use super::workload_utils as wu;

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
