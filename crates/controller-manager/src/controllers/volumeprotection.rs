//! PVC and PV protection controllers (upstream
//! pkg/controller/volume/pvcprotection and pvprotection):
//! * every live PVC carries the `kubernetes.io/pvc-protection` finalizer; a
//!   deleted PVC keeps it while a non-terminal pod of its namespace uses it
//!   (directly or as the generic ephemeral volume `<pod>-<volume>`);
//! * every live PV carries `kubernetes.io/pv-protection`; a deleted PV keeps it
//!   while it is Bound.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::Api;

use super::podutil;
use crate::informers::{key_of, split_key, Informer, Notification};
use crate::workqueue::{run_workers, WorkQueue};
use crate::ControllerContext;

pub const PVC_FINALIZER: &str = "kubernetes.io/pvc-protection";
pub const PV_FINALIZER: &str = "kubernetes.io/pv-protection";

/// The claims a pod uses (persistentVolumeClaim volumes and generic ephemeral volumes).
pub fn pod_claims(pod: &Pod) -> Vec<String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some(c.claim_name.clone())
            } else {
                v.ephemeral.as_ref().map(|_| format!("{name}-{}", v.name))
            }
        })
        .collect()
}

fn has(finalizers: Option<&Vec<String>>, f: &str) -> bool {
    finalizers.into_iter().flatten().any(|x| x == f)
}

/// The finalizer list patch (with resourceVersion for optimistic concurrency).
fn finalizer_patch(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    f: &str,
    add: bool,
) -> serde_json::Value {
    let mut list: Vec<String> = meta.finalizers.clone().unwrap_or_default();
    list.retain(|x| x != f);
    if add {
        list.push(f.into());
    }
    serde_json::json!({"metadata": {"finalizers": list, "resourceVersion": meta.resource_version}})
}

/// The PVC protection controller ("persistentvolumeclaim-protection-controller").
pub async fn run_pvc(ctx: ControllerContext) -> anyhow::Result<()> {
    let pvcs = ctx.informers.get::<PersistentVolumeClaim>();
    let pods = ctx.informers.get::<Pod>();
    let mut c_sub = pvcs.subscribe();
    let mut p_sub = pods.subscribe();
    pvcs.wait_synced().await;
    pods.wait_synced().await;
    let queue: WorkQueue<String> = WorkQueue::new();
    queue.add_all(pvcs.keys());
    {
        let (pvcs, queue, stop) = (pvcs.clone(), queue.clone(), ctx.stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    n = c_sub.recv() => match n {
                        Some(Notification::Deleted(_)) => {}
                        Some(Notification::Resync) => queue.add_all(pvcs.keys()),
                        Some(n) => if let Some(o) = n.object() { queue.add(key_of(o.as_ref())) },
                        None => break,
                    },
                    n = p_sub.recv() => match n {
                        // A pod going away (or finishing) may release a claim being deleted.
                        Some(Notification::Deleted(p)) | Some(Notification::Updated { new: p, .. }) => {
                            let ns = p.metadata.namespace.clone().unwrap_or_default();
                            for c in pod_claims(&p) {
                                if pvcs.get(Some(&ns), &c).is_some_and(|c| c.metadata.deletion_timestamp.is_some()) {
                                    queue.add(format!("{ns}/{c}"));
                                }
                            }
                        }
                        Some(_) => {}
                        None => break,
                    },
                }
            }
        });
    }
    let client = ctx.client.clone();
    run_workers(
        queue,
        1,
        ctx.stop.clone(),
        "persistentvolumeclaim-protection-controller",
        move |key: String| {
            let (client, pvcs, pods) = (client.clone(), pvcs.clone(), pods.clone());
            async move { sync_pvc(&client, &pvcs, &pods, &key).await }
        },
    )
    .await;
    Ok(())
}

async fn sync_pvc(
    client: &kube::Client,
    pvcs: &Informer<PersistentVolumeClaim>,
    pods: &Informer<Pod>,
    key: &str,
) -> anyhow::Result<()> {
    let (ns, name) = split_key(key);
    let ns = ns.unwrap_or("default");
    let Some(pvc) = pvcs.get_by_key(key) else {
        return Ok(());
    };
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let has_f = has(pvc.metadata.finalizers.as_ref(), PVC_FINALIZER);
    if pvc.metadata.deletion_timestamp.is_none() {
        if !has_f {
            api.patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&finalizer_patch(&pvc.metadata, PVC_FINALIZER, true)),
            )
            .await?;
        }
        return Ok(());
    }
    if !has_f {
        return Ok(());
    }
    let in_use = |list: &[Arc<Pod>]| {
        list.iter()
            .any(|p| !podutil::is_terminal(p) && pod_claims(p).iter().any(|c| c == name))
    };
    if in_use(&pods.list_namespaced(ns)) {
        return Ok(());
    }
    // The cache may lag: confirm with a live list before letting the claim go.
    let live: Vec<Arc<Pod>> = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(Arc::new)
        .collect();
    if in_use(&live) {
        return Ok(());
    }
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&finalizer_patch(&pvc.metadata, PVC_FINALIZER, false)),
    )
    .await?;
    Ok(())
}

/// The PV protection controller ("persistentvolume-protection-controller").
pub async fn run_pv(ctx: ControllerContext) -> anyhow::Result<()> {
    let pvs = ctx.informers.get::<PersistentVolume>();
    let mut sub = pvs.subscribe();
    pvs.wait_synced().await;
    let queue: WorkQueue<String> = WorkQueue::new();
    queue.add_all(pvs.keys());
    {
        let (pvs, queue, stop) = (pvs.clone(), queue.clone(), ctx.stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    n = sub.recv() => match n {
                        Some(Notification::Deleted(_)) => {}
                        Some(Notification::Resync) => queue.add_all(pvs.keys()),
                        Some(n) => if let Some(o) = n.object() { queue.add(key_of(o.as_ref())) },
                        None => break,
                    },
                }
            }
        });
    }
    let client = ctx.client.clone();
    run_workers(
        queue,
        1,
        ctx.stop.clone(),
        "persistentvolume-protection-controller",
        move |key: String| {
            let (client, pvs) = (client.clone(), pvs.clone());
            async move {
                let Some(pv) = pvs.get_by_key(&key) else {
                    return Ok(());
                };
                let api: Api<PersistentVolume> = Api::all(client);
                let has_f = has(pv.metadata.finalizers.as_ref(), PV_FINALIZER);
                if pv.metadata.deletion_timestamp.is_none() {
                    if !has_f {
                        api.patch(
                            &key,
                            &PatchParams::default(),
                            &Patch::Merge(&finalizer_patch(&pv.metadata, PV_FINALIZER, true)),
                        )
                        .await?;
                    }
                    return Ok(());
                }
                let bound = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
                if has_f && !bound {
                    api.patch(
                        &key,
                        &PatchParams::default(),
                        &Patch::Merge(&finalizer_patch(&pv.metadata, PV_FINALIZER, false)),
                    )
                    .await?;
                }
                Ok(())
            }
        },
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        EphemeralVolumeSource, PersistentVolumeClaimVolumeSource, PodSpec, Volume,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn claims_of_a_pod() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                volumes: Some(vec![
                    Volume {
                        name: "data".into(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: "c1".into(),
                            read_only: None,
                        }),
                        ..Default::default()
                    },
                    Volume {
                        name: "scratch".into(),
                        ephemeral: Some(EphemeralVolumeSource::default()),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            status: None,
        };
        assert_eq!(
            pod_claims(&pod),
            vec!["c1".to_string(), "p-scratch".to_string()]
        );
        let meta = ObjectMeta {
            finalizers: Some(vec!["x".into()]),
            ..Default::default()
        };
        assert_eq!(
            finalizer_patch(&meta, PVC_FINALIZER, true)["metadata"]["finalizers"],
            serde_json::json!(["x", PVC_FINALIZER])
        );
    }
}
