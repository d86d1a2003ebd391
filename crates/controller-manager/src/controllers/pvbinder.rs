//! Persistent volume binder (upstream pkg/controller/volume/persistentvolume,
//! static binding and claim/volume phases; dynamic provisioning is left to
//! external provisioners, as upstream does for CSI):
//! * a Pending claim is bound to the smallest Available volume with the same
//!   storage class and volume mode, every requested access mode, enough
//!   capacity and matching the claim's selector (a volume pre-bound to the
//!   claim through claimRef, or named by the claim's volumeName, first);
//!   WaitForFirstConsumer claims wait for the scheduler's
//!   `volume.kubernetes.io/selected-node` and then need a volume whose node
//!   affinity admits that node;
//! * without a volume: ExternalProvisioning (the class has a provisioner:
//!   the claim gets `volume.kubernetes.io/storage-provisioner`),
//!   WaitForFirstConsumer, or FailedBinding events;
//! * volumes whose claim is gone become Released, then are deleted (Delete),
//!   kept (Retain) or made Available again (Recycle); Delete volumes of an
//!   external provisioner (`pv.kubernetes.io/provisioned-by`) are left to
//!   it; bound claims whose volume is gone become Lost (ClaimLost).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, ObjectReference, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::Api;

use super::podutil;
use crate::informers::{Informer, Notification};
use crate::ControllerContext;
use client_base::events::Recorder;

pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

fn claim_class(c: &PersistentVolumeClaim) -> String {
    c.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

fn pv_class(v: &PersistentVolume) -> String {
    v.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

fn quantity_nanos(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> i128 {
    q.and_then(|q| apimachinery::quantity::Quantity::parse(&q.0).ok())
        .map(|q| q.nanos())
        .unwrap_or(0)
}

fn pv_capacity(v: &PersistentVolume) -> i128 {
    quantity_nanos(
        v.spec
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage")),
    )
}

fn claim_request(c: &PersistentVolumeClaim) -> i128 {
    quantity_nanos(
        c.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage")),
    )
}

fn pv_claim_ref(v: &PersistentVolume) -> Option<&ObjectReference> {
    v.spec.as_ref()?.claim_ref.as_ref()
}

fn claim_ref_is(r: &ObjectReference, c: &PersistentVolumeClaim) -> bool {
    r.namespace == c.metadata.namespace
        && r.name == c.metadata.name
        && r.uid
            .as_ref()
            .is_none_or(|u| u.is_empty() || Some(u) == c.metadata.uid.as_ref())
}

/// Whether a node satisfies a volume's required node affinity.
pub fn pv_fits_node(v: &PersistentVolume, node: Option<&Node>) -> bool {
    let Some(req) = v
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    else {
        return true;
    };
    let Some(node) = node else { return false };
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let name = node.metadata.name.clone().unwrap_or_default();
    req.node_selector_terms.iter().any(|term| {
        term.match_expressions.iter().flatten().all(|e| {
            let val = labels.get(&e.key);
            let vals = e.values.as_deref().unwrap_or(&[]);
            match e.operator.as_str() {
                "In" => val.is_some_and(|v| vals.contains(v)),
                "NotIn" => val.is_none_or(|v| !vals.contains(v)),
                "Exists" => val.is_some(),
                "DoesNotExist" => val.is_none(),
                "Gt" | "Lt" => {
                    let (Some(v), Some(w)) = (
                        val.and_then(|v| v.parse::<i64>().ok()),
                        vals.first().and_then(|w| w.parse::<i64>().ok()),
                    ) else {
                        return false;
                    };
                    if e.operator == "Gt" {
                        v > w
                    } else {
                        v < w
                    }
                }
                _ => false,
            }
        }) && term.match_fields.iter().flatten().all(|f| {
            let vals = f.values.as_deref().unwrap_or(&[]);
            f.key == "metadata.name"
                && match f.operator.as_str() {
                    "In" => vals.contains(&name),
                    "NotIn" => !vals.contains(&name),
                    _ => false,
                }
        })
    })
}

/// The best volume for a claim (see the module docs), if any.
pub fn find_match<'a>(
    claim: &PersistentVolumeClaim,
    volumes: &[&'a PersistentVolume],
    node: Option<Option<&Node>>,
) -> Option<&'a PersistentVolume> {
    let spec = claim.spec.as_ref()?;
    // Pre-bound volume first.
    if let Some(v) = volumes
        .iter()
        .find(|v| pv_claim_ref(v).is_some_and(|r| claim_ref_is(r, claim)))
    {
        return Some(v);
    }
    let class = claim_class(claim);
    let mode = spec
        .volume_mode
        .clone()
        .unwrap_or_else(|| "Filesystem".into());
    let want_modes = spec.access_modes.clone().unwrap_or_default();
    let req = claim_request(claim);
    let mut best: Option<&PersistentVolume> = None;
    for v in volumes.iter().copied() {
        let Some(vs) = v.spec.as_ref() else { continue };
        if v.metadata.deletion_timestamp.is_some() || pv_claim_ref(v).is_some() {
            continue;
        }
        if let Some(name) = spec.volume_name.as_deref().filter(|n| !n.is_empty()) {
            if v.metadata.name.as_deref() != Some(name) {
                continue;
            }
        }
        if pv_class(v) != class
            || vs
                .volume_mode
                .clone()
                .unwrap_or_else(|| "Filesystem".into())
                != mode
        {
            continue;
        }
        let have = vs.access_modes.clone().unwrap_or_default();
        if !want_modes.iter().all(|m| have.contains(m)) || pv_capacity(v) < req {
            continue;
        }
        if let Some(sel) = &spec.selector {
            if !podutil::label_selector_matches(sel, v.metadata.labels.as_ref()) {
                continue;
            }
        }
        if let Some(node) = node {
            if !pv_fits_node(v, node) {
                continue;
            }
        }
        if best.is_none_or(|b| pv_capacity(v) < pv_capacity(b)) {
            best = Some(v);
        }
    }
    best
}

/// Whether a volume was made by an external provisioner
/// (`pv.kubernetes.io/provisioned-by` names one outside `kubernetes.io/`):
/// its deletion is left to that provisioner.
pub fn provisioned_externally(v: &PersistentVolume) -> bool {
    v.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_PROVISIONED_BY))
        .is_some_and(|p| !p.is_empty() && !p.starts_with("kubernetes.io/"))
}

fn claim_phase(c: &PersistentVolumeClaim) -> &str {
    c.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// The persistent volume binder ("persistentvolume-binder-controller").
pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let pvcs = ctx.informers.get::<PersistentVolumeClaim>();
    let pvs = ctx.informers.get::<PersistentVolume>();
    let classes = ctx.informers.get::<StorageClass>();
    let nodes = ctx.informers.get::<Node>();
    let mut c_sub = pvcs.subscribe();
    let mut v_sub = pvs.subscribe();
    pvcs.wait_synced().await;
    pvs.wait_synced().await;
    classes.wait_synced().await;
    nodes.wait_synced().await;
    let recorder = ctx.recorder("persistentvolume-controller");
    let period = ctx
        .options
        .pvclaimbinder_sync_period
        .clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(period);
    let mut warned: BTreeMap<String, String> = BTreeMap::new();
    loop {
        if let Err(e) = sync_all(
            &ctx.client,
            &pvcs,
            &pvs,
            &classes,
            &nodes,
            &recorder,
            &mut warned,
        )
        .await
        {
            tracing::debug!("persistentvolume-binder: {e:#}");
        }
        // Batch bursts of notifications.
        tokio::select! {
            _ = ctx.stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
            n = c_sub.recv() => if n.is_none() { return Ok(()) },
            n = v_sub.recv() => if n.is_none() { return Ok(()) },
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Ok(Some(
            Notification::Added(_)
            | Notification::Updated { .. }
            | Notification::Deleted(_)
            | Notification::Resync,
        )) = tokio::time::timeout(Duration::from_millis(1), c_sub.recv()).await
        {}
    }
}

async fn sync_all(
    client: &kube::Client,
    pvcs: &Informer<PersistentVolumeClaim>,
    pvs: &Informer<PersistentVolume>,
    classes: &Informer<StorageClass>,
    nodes: &Informer<Node>,
    recorder: &Recorder,
    warned: &mut BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let pv_api: Api<PersistentVolume> = Api::all(client.clone());
    let claims = pvcs.list();
    let volumes = pvs.list();
    let mut taken: Vec<String> = Vec::new();
    // Claims.
    for claim in &claims {
        if claim.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let ns = claim.metadata.namespace.clone().unwrap_or_default();
        let name = claim.metadata.name.clone().unwrap_or_default();
        let key = format!("{ns}/{name}");
        let c_api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
        let bound_to = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty());
        if claim_phase(claim) == "Bound" {
            if let Some(v) = &bound_to {
                if pvs.get(None, v).is_none() && pv_api.get_opt(v).await?.is_none() {
                    let patch = serde_json::json!({"status": {"phase": "Lost"}});
                    c_api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await?;
                    recorder.warning(
                        claim.as_ref(),
                        "ClaimLost",
                        "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                    );
                }
            }
            continue;
        }
        let class_name = claim_class(claim);
        let class = (!class_name.is_empty())
            .then(|| classes.get(None, &class_name))
            .flatten();
        let wait_first = class
            .as_ref()
            .and_then(|c| c.volume_binding_mode.as_deref())
            == Some("WaitForFirstConsumer");
        let selected = claim
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANN_SELECTED_NODE))
            .cloned();
        let node_filter: Option<Option<std::sync::Arc<Node>>> = if wait_first {
            match &selected {
                Some(n) => Some(nodes.get(None, n)),
                None => {
                    if warned.get(&key).map(|s| s.as_str()) != Some("WaitForFirstConsumer") {
                        recorder.normal(
                            claim.as_ref(),
                            "WaitForFirstConsumer",
                            "waiting for first consumer to be created before binding",
                        );
                        warned.insert(key.clone(), "WaitForFirstConsumer".into());
                    }
                    continue;
                }
            }
        } else {
            None
        };
        let avail: Vec<&PersistentVolume> = volumes
            .iter()
            .map(|v| v.as_ref())
            .filter(|v| !taken.iter().any(|t| Some(t) == v.metadata.name.as_ref()))
            .collect();
        let nf = node_filter.as_ref().map(|n| n.as_deref());
        let Some(pv) = find_match(claim, &avail, nf) else {
            let provisioner = class
                .as_ref()
                .map(|c| c.provisioner.clone())
                .filter(|p| p != NO_PROVISIONER);
            match provisioner {
                Some(p) => {
                    let has = claim
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(ANN_STORAGE_PROVISIONER))
                        == Some(&p);
                    if !has {
                        let patch = serde_json::json!({"metadata": {"annotations": {ANN_STORAGE_PROVISIONER: p, ANN_BETA_STORAGE_PROVISIONER: p}}});
                        c_api
                            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await?;
                    }
                    if warned.get(&key).map(|s| s.as_str()) != Some("ExternalProvisioning") {
                        recorder.normal(claim.as_ref(), "ExternalProvisioning", format!("Waiting for a volume to be created either by the external provisioner '{p}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."));
                        warned.insert(key.clone(), "ExternalProvisioning".into());
                    }
                }
                None => {
                    if warned.get(&key).map(|s| s.as_str()) != Some("FailedBinding") {
                        let msg = if class_name.is_empty() {
                            "no persistent volumes available for this claim and no storage class is set".to_string()
                        } else if class.is_none() {
                            format!("storageclass.storage.k8s.io {class_name:?} not found")
                        } else {
                            "no persistent volumes available for this claim".to_string()
                        };
                        recorder.normal(claim.as_ref(), "FailedBinding", msg);
                        warned.insert(key.clone(), "FailedBinding".into());
                    }
                }
            }
            continue;
        };
        let pv_name = pv.metadata.name.clone().unwrap_or_default();
        taken.push(pv_name.clone());
        warned.remove(&key);
        // 1. The volume points at the claim.
        let cref = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("PersistentVolumeClaim".into()),
            namespace: Some(ns.clone()),
            name: Some(name.clone()),
            uid: claim.metadata.uid.clone(),
            resource_version: claim.metadata.resource_version.clone(),
            field_path: None,
        };
        let mut patch = serde_json::json!({"metadata": {"resourceVersion": pv.metadata.resource_version}, "spec": {"claimRef": cref}});
        if pv_claim_ref(pv).is_none() {
            patch["metadata"]["annotations"] = serde_json::json!({ANN_BOUND_BY_CONTROLLER: "yes"});
        }
        pv_api
            .patch(&pv_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        pv_api
            .patch_status(
                &pv_name,
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"status": {"phase": "Bound"}})),
            )
            .await?;
        // 2. The claim points at the volume.
        let mut ann = serde_json::json!({ANN_BIND_COMPLETED: "yes"});
        if bound_to.is_none() {
            ann[ANN_BOUND_BY_CONTROLLER] = "yes".into();
        }
        let patch =
            serde_json::json!({"metadata": {"annotations": ann}, "spec": {"volumeName": pv_name}});
        c_api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let vs = pv.spec.clone().unwrap_or_default();
        let st = serde_json::json!({"status": {"phase": "Bound", "accessModes": vs.access_modes, "capacity": vs.capacity}});
        c_api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&st))
            .await?;
        tracing::info!("persistentvolume-binder: bound claim {key} to volume {pv_name}");
    }
    // Volumes.
    for v in &volumes {
        let vname = v.metadata.name.clone().unwrap_or_default();
        if v.metadata.deletion_timestamp.is_some() || taken.contains(&vname) {
            continue;
        }
        let phase = v
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending");
        match pv_claim_ref(v) {
            None => {
                if phase != "Available" {
                    pv_api
                        .patch_status(
                            &vname,
                            &PatchParams::default(),
                            &Patch::Merge(&serde_json::json!({"status": {"phase": "Available"}})),
                        )
                        .await?;
                }
            }
            Some(r) => {
                let ns = r.namespace.clone().unwrap_or_default();
                let cname = r.name.clone().unwrap_or_default();
                let claim = pvcs.get(Some(&ns), &cname);
                let gone = match &claim {
                    Some(c) => r
                        .uid
                        .as_ref()
                        .is_some_and(|u| !u.is_empty() && Some(u) != c.metadata.uid.as_ref()),
                    None => {
                        // Confirm with the API before releasing.
                        let live = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns)
                            .get_opt(&cname)
                            .await?;
                        match live {
                            Some(c) => r.uid.as_ref().is_some_and(|u| {
                                !u.is_empty() && Some(u) != c.metadata.uid.as_ref()
                            }),
                            None => r.uid.as_ref().is_some_and(|u| !u.is_empty()),
                        }
                    }
                };
                if !gone {
                    continue;
                }
                let policy = v
                    .spec
                    .as_ref()
                    .and_then(|s| s.persistent_volume_reclaim_policy.clone())
                    .unwrap_or_else(|| "Retain".into());
                if phase != "Released" && phase != "Failed" {
                    pv_api
                        .patch_status(
                            &vname,
                            &PatchParams::default(),
                            &Patch::Merge(&serde_json::json!({"status": {"phase": "Released"}})),
                        )
                        .await?;
                }
                match policy.as_str() {
                    // An external provisioner deletes what it provisioned
                    // (its storage first, then the volume), as upstream.
                    "Delete" if provisioned_externally(v) => {}
                    "Delete" => match pv_api.delete(&vname, &DeleteParams::default()).await {
                        Ok(_) => tracing::info!(
                            "persistentvolume-binder: deleted released volume {vname}"
                        ),
                        Err(e) if podutil::is_not_found(&e) => {}
                        Err(e) => return Err(e.into()),
                    },
                    "Recycle" => {
                        let patch = serde_json::json!({"spec": {"claimRef": null}});
                        pv_api
                            .patch(&vname, &PatchParams::default(), &Patch::Merge(&patch))
                            .await?;
                        recorder.normal(
                            v.as_ref(),
                            "RecyclerPod",
                            "Recycler pod: volume made available again",
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimSpec, PersistentVolumeSpec, VolumeResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pv(name: &str, size: &str, class: &str) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                capacity: Some([("storage".to_string(), Quantity(size.into()))].into()),
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: Some(class.into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pvc(size: &str, class: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("c".into()),
                namespace: Some("default".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: Some(class.into()),
                resources: Some(VolumeResourceRequirements {
                    requests: Some([("storage".to_string(), Quantity(size.into()))].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn external_volumes_are_deleted_by_their_provisioner() {
        let mut v = pv("a", "1Gi", "std");
        assert!(!provisioned_externally(&v));
        v.metadata.annotations = Some(
            [(
                ANN_PROVISIONED_BY.to_string(),
                "rancher.io/local-path".to_string(),
            )]
            .into(),
        );
        assert!(provisioned_externally(&v));
        v.metadata.annotations = Some(
            [(
                ANN_PROVISIONED_BY.to_string(),
                "kubernetes.io/host-path".to_string(),
            )]
            .into(),
        );
        assert!(!provisioned_externally(&v));
    }

    #[test]
    fn smallest_fitting_volume() {
        let (a, b, c, d) = (
            pv("a", "10Gi", "std"),
            pv("b", "2Gi", "std"),
            pv("c", "1Gi", "std"),
            pv("d", "2Gi", "fast"),
        );
        let claim = pvc("1500Mi", "std");
        assert_eq!(
            find_match(&claim, &[&a, &b, &c, &d], None)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("b")
        );
        assert!(find_match(&pvc("20Gi", "std"), &[&a, &b], None).is_none());
        let mut pre = pv("p", "1Gi", "other");
        pre.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
            namespace: Some("default".into()),
            name: Some("c".into()),
            ..Default::default()
        });
        assert_eq!(
            find_match(&claim, &[&a, &pre], None)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("p")
        );
    }
}
