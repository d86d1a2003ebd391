//! Pure decisions and object construction: which claims to provision,
//! the volume's directory, the PersistentVolume and the helper pods.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use k8s_openapi::api::core::v1::{
    Container, HostPathVolumeSource, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, Pod, PodSpec,
    Toleration, Volume, VolumeMount, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Set by the PV controller on claims an external provisioner should serve.
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The same, as older PV controllers set it.
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// Set by the scheduler on WaitForFirstConsumer claims.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Names the provisioner that created a volume.
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The node label volumes are pinned with.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// Label on helper pods.
pub const HELPER_LABEL: &str = "local-path-provisioner.ferrokube.dev/helper";

/// What to do with a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimAction {
    /// Not ours, already bound, or not ready yet.
    Skip,
    /// Provision on this node.
    Provision { node: String },
    /// Ours, but it cannot be served (Immediate binding: no node).
    Refuse(String),
}

fn annotations(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.annotations.clone().unwrap_or_default()
}

/// The claim's storage class name ("" when none).
pub fn claim_class(c: &PersistentVolumeClaim) -> String {
    c.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

/// The external-provisioner decision for a claim: it must name this
/// provisioner in `volume.kubernetes.io/storage-provisioner` (or the beta
/// annotation), have no volume yet, not be deleted, and its class must be
/// ours; WaitForFirstConsumer claims wait for `selected-node`.
pub fn claim_action(
    claim: &PersistentVolumeClaim,
    class: Option<&StorageClass>,
    provisioner: &str,
) -> ClaimAction {
    if claim.metadata.deletion_timestamp.is_some() {
        return ClaimAction::Skip;
    }
    let spec = claim.spec.clone().unwrap_or_default();
    if spec.volume_name.as_deref().is_some_and(|v| !v.is_empty()) {
        return ClaimAction::Skip;
    }
    if claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound") {
        return ClaimAction::Skip;
    }
    let ann = annotations(&claim.metadata);
    let requested = ann
        .get(ANN_STORAGE_PROVISIONER)
        .or_else(|| ann.get(ANN_BETA_STORAGE_PROVISIONER));
    if requested.map(String::as_str) != Some(provisioner) {
        return ClaimAction::Skip;
    }
    let Some(class) = class.filter(|c| c.provisioner == provisioner) else {
        return ClaimAction::Skip;
    };
    match ann.get(ANN_SELECTED_NODE).filter(|n| !n.is_empty()) {
        Some(node) => ClaimAction::Provision { node: node.clone() },
        None if class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer") => {
            ClaimAction::Skip
        }
        None => ClaimAction::Refuse(format!(
            "configuration error, no node was specified: StorageClass {:?} must use volumeBindingMode WaitForFirstConsumer",
            class.metadata.name.as_deref().unwrap_or("")
        )),
    }
}

/// The volume name for a claim (the external provisioners' convention).
pub fn pv_name(claim: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", claim.metadata.uid.as_deref().unwrap_or(""))
}

/// The volume's directory under `base`: `<pv>_<namespace>_<claim>`, as
/// Rancher's provisioner names them.
pub fn volume_path(base: &str, pv: &str, claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}_{}_{}",
        base.trim_end_matches('/'),
        pv,
        claim.metadata.namespace.as_deref().unwrap_or(""),
        claim.metadata.name.as_deref().unwrap_or("")
    )
}

/// The value volumes are pinned with: the node's `kubernetes.io/hostname`
/// label, else its name.
pub fn node_hostname(node_name: &str, node: Option<&Node>) -> String {
    node.and_then(|n| n.metadata.labels.as_ref())
        .and_then(|l| l.get(LABEL_HOSTNAME))
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| node_name.to_string())
}

/// The PersistentVolume for `claim` at `path` on the node whose hostname
/// label is `hostname`.
pub fn build_pv(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    provisioner: &str,
    path: &str,
    hostname: &str,
) -> Result<PersistentVolume> {
    let spec = claim.spec.clone().unwrap_or_default();
    let mode = spec
        .volume_mode
        .clone()
        .unwrap_or_else(|| "Filesystem".into());
    if mode != "Filesystem" {
        bail!("volumeMode {mode} is not supported (only Filesystem)");
    }
    let modes = spec.access_modes.clone().unwrap_or_default();
    if modes.is_empty() {
        bail!("the claim has no access modes");
    }
    if let Some(m) = modes
        .iter()
        .find(|m| *m != "ReadWriteOnce" && *m != "ReadWriteOncePod")
    {
        bail!("access mode {m} is not supported: a local path only supports ReadWriteOnce and ReadWriteOncePod");
    }
    let Some(size) = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
    else {
        bail!("the claim requests no storage");
    };
    let name = pv_name(claim);
    Ok(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name),
            annotations: Some(BTreeMap::from([(
                ANN_PROVISIONED_BY.to_string(),
                provisioner.to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_string(), size)])),
            access_modes: Some(modes),
            volume_mode: Some(mode),
            storage_class_name: class.metadata.name.clone(),
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "Delete".into()),
            ),
            mount_options: class.mount_options.clone().filter(|m| !m.is_empty()),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: claim.metadata.namespace.clone(),
                name: claim.metadata.name.clone(),
                uid: claim.metadata.uid.clone(),
                resource_version: claim.metadata.resource_version.clone(),
                field_path: None,
            }),
            host_path: Some(HostPathVolumeSource {
                path: path.to_string(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: LABEL_HOSTNAME.into(),
                            operator: "In".into(),
                            values: Some(vec![hostname.to_string()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            ..Default::default()
        }),
        status: None,
    })
}

/// What deleting a volume needs: the directory and the node value it is
/// pinned to (`kubernetes.io/hostname`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeLocation {
    pub path: String,
    pub hostname: String,
}

/// Whether this provisioner should delete `pv` now: it made it, it is
/// Released and its reclaim policy is Delete.
pub fn should_delete(pv: &PersistentVolume, provisioner: &str) -> bool {
    pv.metadata.deletion_timestamp.is_none()
        && pv
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANN_PROVISIONED_BY))
            .map(String::as_str)
            == Some(provisioner)
        && pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released")
        && pv
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            == Some("Delete")
}

/// Where a volume made by [`build_pv`] lives.
pub fn volume_location(pv: &PersistentVolume) -> Result<VolumeLocation> {
    let spec = pv.spec.clone().unwrap_or_default();
    let path = spec
        .host_path
        .map(|h| h.path)
        .or(spec.local.map(|l| l.path))
        .filter(|p| !p.is_empty());
    let Some(path) = path else {
        bail!("the volume has no hostPath or local path");
    };
    let hostname = spec
        .node_affinity
        .and_then(|a| a.required)
        .into_iter()
        .flat_map(|r| r.node_selector_terms)
        .flat_map(|t| t.match_expressions.unwrap_or_default())
        .find(|e| e.key == LABEL_HOSTNAME && e.operator == "In")
        .and_then(|e| e.values.unwrap_or_default().into_iter().next());
    let Some(hostname) = hostname else {
        bail!("the volume has no {LABEL_HOSTNAME} node affinity");
    };
    Ok(VolumeLocation { path, hostname })
}

/// Which helper pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelperAction {
    Create,
    Delete,
}

impl HelperAction {
    pub fn as_str(self) -> &'static str {
        match self {
            HelperAction::Create => "create",
            HelperAction::Delete => "delete",
        }
    }
}

/// The helper pod's name for a volume.
pub fn helper_pod_name(action: HelperAction, pv: &str) -> String {
    let name = format!("helper-pod-{}-{}", action.as_str(), pv);
    // Object names are at most 253 characters; pv names are short anyway.
    name.chars().take(253).collect()
}

/// The command a helper pod runs for a volume directory (no shell: the path
/// is one argument).
pub fn helper_command(action: HelperAction, path: &str) -> Vec<String> {
    match action {
        HelperAction::Create => vec![
            "mkdir".into(),
            "-m".into(),
            "0777".into(),
            "-p".into(),
            path.into(),
        ],
        HelperAction::Delete => vec!["rm".into(), "-rf".into(), path.into()],
    }
}

/// The directory a helper pod mounts for `path`: its parent (the base
/// directory), at the same path inside the container.
pub fn helper_mount_dir(path: &str) -> Result<String> {
    let trimmed = path.trim_end_matches('/');
    let parent = match trimmed.rfind('/') {
        Some(i) => &trimmed[..i],
        None => "",
    };
    if !trimmed.starts_with('/') || parent.is_empty() || trimmed[parent.len() + 1..].is_empty() {
        bail!("refusing to work on {path:?}: it must be a directory below a base directory");
    }
    if trimmed.split('/').any(|c| c == ".." || c == ".") {
        bail!("refusing to work on {path:?}: relative components");
    }
    Ok(parent.to_string())
}

/// A short-lived pod on `node` (by name, bypassing the scheduler) that runs
/// [`helper_command`] with the base directory mounted from the host.
pub fn helper_pod(
    action: HelperAction,
    pv: &str,
    path: &str,
    node: &str,
    namespace: &str,
    image: &str,
) -> Result<Pod> {
    let mount = helper_mount_dir(path)?;
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(helper_pod_name(action, pv)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (HELPER_LABEL.to_string(), action.as_str().to_string()),
                (
                    "app".to_string(),
                    "local-path-provisioner-helper".to_string(),
                ),
            ])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.to_string()),
            restart_policy: Some("Never".into()),
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(0),
            tolerations: Some(vec![Toleration {
                operator: Some("Exists".into()),
                ..Default::default()
            }]),
            containers: vec![Container {
                name: "helper".into(),
                image: Some(image.to_string()),
                image_pull_policy: Some("IfNotPresent".into()),
                command: Some(helper_command(action, path)),
                volume_mounts: Some(vec![VolumeMount {
                    name: "data".into(),
                    mount_path: mount.clone(),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            volumes: Some(vec![Volume {
                name: "data".into(),
                host_path: Some(HostPathVolumeSource {
                    path: mount,
                    type_: Some("DirectoryOrCreate".into()),
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, VolumeResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    const P: &str = "rancher.io/local-path";

    fn class(mode: &str, reclaim: Option<&str>) -> StorageClass {
        StorageClass {
            metadata: ObjectMeta {
                name: Some("standard".into()),
                ..Default::default()
            },
            provisioner: P.into(),
            volume_binding_mode: Some(mode.into()),
            reclaim_policy: reclaim.map(Into::into),
            ..Default::default()
        }
    }

    fn claim(ann: &[(&str, &str)]) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data".into()),
                namespace: Some("ns1".into()),
                uid: Some("1234".into()),
                resource_version: Some("7".into()),
                annotations: Some(
                    ann.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: Some("standard".into()),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        Quantity("1Gi".into()),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn which_claims_are_provisioned() {
        let wffc = class("WaitForFirstConsumer", None);
        let imm = class("Immediate", None);
        let ours = (ANN_STORAGE_PROVISIONER, P);
        let node = (ANN_SELECTED_NODE, "n1");
        assert_eq!(
            claim_action(&claim(&[ours, node]), Some(&wffc), P),
            ClaimAction::Provision { node: "n1".into() }
        );
        // The beta annotation is enough.
        assert_eq!(
            claim_action(
                &claim(&[(ANN_BETA_STORAGE_PROVISIONER, P), node]),
                Some(&wffc),
                P
            ),
            ClaimAction::Provision { node: "n1".into() }
        );
        // Waiting for the scheduler.
        assert_eq!(
            claim_action(&claim(&[ours]), Some(&wffc), P),
            ClaimAction::Skip
        );
        // Not annotated (yet), annotated for someone else, class of someone else.
        assert_eq!(
            claim_action(&claim(&[node]), Some(&wffc), P),
            ClaimAction::Skip
        );
        assert_eq!(
            claim_action(
                &claim(&[(ANN_STORAGE_PROVISIONER, "other"), node]),
                Some(&wffc),
                P
            ),
            ClaimAction::Skip
        );
        let mut other = wffc.clone();
        other.provisioner = "other".into();
        assert_eq!(
            claim_action(&claim(&[ours, node]), Some(&other), P),
            ClaimAction::Skip
        );
        assert_eq!(
            claim_action(&claim(&[ours, node]), None, P),
            ClaimAction::Skip
        );
        // Immediate: refused without a node.
        assert!(matches!(
            claim_action(&claim(&[ours]), Some(&imm), P),
            ClaimAction::Refuse(m) if m.contains("no node was specified")
        ));
        // Already bound.
        let mut bound = claim(&[ours, node]);
        bound.spec.as_mut().unwrap().volume_name = Some("pv".into());
        assert_eq!(claim_action(&bound, Some(&wffc), P), ClaimAction::Skip);
    }

    #[test]
    fn persistent_volume() {
        let c = claim(&[]);
        let name = pv_name(&c);
        assert_eq!(name, "pvc-1234");
        let path = volume_path("/var/lp/", &name, &c);
        assert_eq!(path, "/var/lp/pvc-1234_ns1_data");
        let pv = build_pv(&c, &class("WaitForFirstConsumer", None), P, &path, "host-1").unwrap();
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-1234"));
        assert_eq!(
            pv.metadata.annotations.as_ref().unwrap()[ANN_PROVISIONED_BY],
            P
        );
        let s = pv.spec.as_ref().unwrap();
        assert_eq!(s.capacity.as_ref().unwrap()["storage"].0, "1Gi");
        assert_eq!(
            s.access_modes.as_deref(),
            Some(&["ReadWriteOnce".to_string()][..])
        );
        assert_eq!(s.storage_class_name.as_deref(), Some("standard"));
        assert_eq!(
            s.persistent_volume_reclaim_policy.as_deref(),
            Some("Delete")
        );
        assert_eq!(s.volume_mode.as_deref(), Some("Filesystem"));
        let r = s.claim_ref.as_ref().unwrap();
        assert_eq!(
            (r.namespace.as_deref(), r.name.as_deref(), r.uid.as_deref()),
            (Some("ns1"), Some("data"), Some("1234"))
        );
        let hp = s.host_path.as_ref().unwrap();
        assert_eq!(hp.path, path);
        assert_eq!(hp.type_.as_deref(), Some("DirectoryOrCreate"));
        assert_eq!(
            volume_location(&pv).unwrap(),
            VolumeLocation {
                path: path.clone(),
                hostname: "host-1".into()
            }
        );
        // Retain from the class.
        let pv = build_pv(
            &c,
            &class("WaitForFirstConsumer", Some("Retain")),
            P,
            &path,
            "h",
        )
        .unwrap();
        assert_eq!(
            pv.spec.unwrap().persistent_volume_reclaim_policy.as_deref(),
            Some("Retain")
        );
        // Unsupported claims.
        let mut rwx = c.clone();
        rwx.spec.as_mut().unwrap().access_modes = Some(vec!["ReadWriteMany".into()]);
        assert!(build_pv(&rwx, &class("Immediate", None), P, &path, "h").is_err());
        let mut block = c.clone();
        block.spec.as_mut().unwrap().volume_mode = Some("Block".into());
        assert!(build_pv(&block, &class("Immediate", None), P, &path, "h").is_err());
        let mut nosize = c.clone();
        nosize.spec.as_mut().unwrap().resources = None;
        assert!(build_pv(&nosize, &class("Immediate", None), P, &path, "h").is_err());
    }

    #[test]
    fn hostname_label_or_name() {
        let mut n = Node::default();
        assert_eq!(node_hostname("n1", None), "n1");
        assert_eq!(node_hostname("n1", Some(&n)), "n1");
        n.metadata.labels = Some(BTreeMap::from([(LABEL_HOSTNAME.into(), "h1".into())]));
        assert_eq!(node_hostname("n1", Some(&n)), "h1");
    }

    #[test]
    fn helper_pods() {
        let p = helper_pod(
            HelperAction::Create,
            "pvc-1",
            "/var/lp/pvc-1_ns_c",
            "n1",
            "local-path-storage",
            "busybox",
        )
        .unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("helper-pod-create-pvc-1"));
        let s = p.spec.unwrap();
        assert_eq!(s.node_name.as_deref(), Some("n1"));
        assert_eq!(s.restart_policy.as_deref(), Some("Never"));
        let c = &s.containers[0];
        assert_eq!(
            c.command.as_deref().unwrap(),
            ["mkdir", "-m", "0777", "-p", "/var/lp/pvc-1_ns_c"]
        );
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].mount_path, "/var/lp");
        assert_eq!(
            s.volumes.as_ref().unwrap()[0]
                .host_path
                .as_ref()
                .unwrap()
                .path,
            "/var/lp"
        );
        assert_eq!(
            helper_command(HelperAction::Delete, "/var/lp/x"),
            ["rm", "-rf", "/var/lp/x"]
        );
        for bad in ["/", "/x", "rel/x", "/a/../b", "/a/./b", ""] {
            assert!(helper_mount_dir(bad).is_err(), "{bad}");
        }
        assert_eq!(helper_mount_dir("/a/b/c/").unwrap(), "/a/b");
    }

    #[test]
    fn deletion_decision() {
        let c = claim(&[]);
        let mut pv = build_pv(&c, &class("WaitForFirstConsumer", None), P, "/b/x", "h").unwrap();
        assert!(!should_delete(&pv, P));
        pv.status = Some(k8s_openapi::api::core::v1::PersistentVolumeStatus {
            phase: Some("Released".into()),
            ..Default::default()
        });
        assert!(should_delete(&pv, P));
        assert!(!should_delete(&pv, "other"));
        pv.spec.as_mut().unwrap().persistent_volume_reclaim_policy = Some("Retain".into());
        assert!(!should_delete(&pv, P));
    }
}
