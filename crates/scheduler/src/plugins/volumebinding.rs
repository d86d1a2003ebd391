//! VolumeBinding (basics): a pod's PVCs must exist; unbound claims of an
//! Immediate class block scheduling; a bound PV's node affinity must match
//! the node; WaitForFirstConsumer claims need an available static PV that
//! fits the node or a provisioner, and are bound/annotated in PreBind.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, Patch, PatchParams};

use super::prelude::*;
use crate::framework::types::node_selector_terms_match;
use crate::listers::Listers;

pub const NAME: &str = "VolumeBinding";
pub const ERR_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
pub const ERR_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
pub const ERR_BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

pub struct VolumeBinding {
    pub listers: Listers,
}

struct State {
    bound: Vec<Arc<PersistentVolumeClaim>>,
    delayed: Vec<Arc<PersistentVolumeClaim>>,
    /// node → (claim, static PV) chosen by Filter for that node.
    matches: std::sync::Mutex<std::collections::HashMap<String, Vec<(String, String)>>>,
}

pub fn pod_claims(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v.persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.clone())
                .or_else(|| {
                    // Generic ephemeral volumes: the claim is <pod>-<volume>.
                    v.ephemeral.as_ref().map(|_| {
                        format!("{}-{}", pod.metadata.name.as_deref().unwrap_or(""), v.name)
                    })
                })
        })
        .collect()
}

fn pv_fits_node(pv: &PersistentVolume, node: &NodeInfo) -> bool {
    pv.spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .is_none_or(|r| node_selector_terms_match(&r.node_selector_terms, node))
}

fn class_of(pvc: &PersistentVolumeClaim) -> String {
    pvc.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

impl VolumeBinding {
    fn static_match(
        &self,
        pvc: &PersistentVolumeClaim,
        node: &NodeInfo,
    ) -> Option<Arc<PersistentVolume>> {
        let want = pvc
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| {
                Resource::from_list(Some(&[("ephemeral-storage".to_string(), q.clone())].into()))
                    .ephemeral_storage
            })
            .unwrap_or(0);
        let modes = pvc
            .spec
            .as_ref()
            .and_then(|s| s.access_modes.clone())
            .unwrap_or_default();
        self.listers.pvs.state().into_iter().find(|pv| {
            let Some(s) = pv.spec.as_ref() else {
                return false;
            };
            let phase = pv
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .unwrap_or("");
            let cap = s
                .capacity
                .as_ref()
                .and_then(|c| c.get("storage"))
                .map(|q| {
                    Resource::from_list(Some(
                        &[("ephemeral-storage".to_string(), q.clone())].into(),
                    ))
                    .ephemeral_storage
                })
                .unwrap_or(0);
            s.claim_ref.is_none()
                && phase == "Available"
                && s.storage_class_name.clone().unwrap_or_default() == class_of(pvc)
                && cap >= want
                && modes
                    .iter()
                    .all(|m| s.access_modes.iter().flatten().any(|x| x == m))
                && pv_fits_node(pv, node)
        })
    }
}

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_bind(&self) -> Option<&dyn PreBindPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for VolumeBinding {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let claims = pod_claims(&pod.pod);
        if claims.is_empty() {
            return (None, Status::skip());
        }
        let mut st = State {
            bound: vec![],
            delayed: vec![],
            matches: Default::default(),
        };
        for c in claims {
            let Some(pvc) = self.listers.pvc(&pod.namespace, &c) else {
                return (
                    None,
                    Status::unresolvable(format!("persistentvolumeclaim \"{c}\" not found")),
                );
            };
            if pvc.metadata.deletion_timestamp.is_some() {
                return (
                    None,
                    Status::unresolvable(format!("persistentvolumeclaim \"{c}\" is being deleted")),
                );
            }
            let bound = pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .is_some_and(|v| !v.is_empty());
            if bound {
                st.bound.push(pvc);
                continue;
            }
            let wffc = self
                .listers
                .storage_class(&class_of(&pvc))
                .is_some_and(|sc| {
                    sc.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
                });
            if !wffc {
                return (None, Status::unresolvable(ERR_UNBOUND_IMMEDIATE));
            }
            st.delayed.push(pvc);
        }
        state.write(NAME, st);
        (None, Status::success())
    }
}

impl FilterPlugin for VolumeBinding {
    fn filter(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Status {
        let Some(st) = state.read::<State>(NAME) else {
            return Status::success();
        };
        for pvc in &st.bound {
            let vn = pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.clone())
                .unwrap_or_default();
            if let Some(pv) = self.listers.pv(&vn) {
                if !pv_fits_node(&pv, node) {
                    return Status::unresolvable(ERR_NODE_CONFLICT);
                }
            }
        }
        let mut chosen = Vec::new();
        for pvc in &st.delayed {
            if let Some(pv) = self.static_match(pvc, node).filter(|pv| {
                !chosen
                    .iter()
                    .any(|(_, n)| Some(n) == pv.metadata.name.as_ref())
            }) {
                chosen.push((
                    pvc.metadata.name.clone().unwrap_or_default(),
                    pv.metadata.name.clone().unwrap_or_default(),
                ));
                continue;
            }
            let provisioner = self
                .listers
                .storage_class(&class_of(pvc))
                .map(|sc| sc.provisioner.clone())
                .unwrap_or_default();
            if provisioner.is_empty() || provisioner == NO_PROVISIONER {
                return Status::unresolvable(ERR_BIND_CONFLICT);
            }
        }
        if !chosen.is_empty() {
            st.matches.lock().unwrap().insert(node.name.clone(), chosen);
        }
        Status::success()
    }
}

#[async_trait]
impl PreBindPlugin for VolumeBinding {
    async fn pre_bind(
        &self,
        state: &CycleState,
        client: &kube::Client,
        pod: &Pod,
        node: &str,
    ) -> Status {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
        let pvs: Api<PersistentVolume> = Api::all(client.clone());
        let statics: Vec<(String, String)> = state
            .read::<State>(NAME)
            .and_then(|st| st.matches.lock().unwrap().get(node).cloned())
            .unwrap_or_default();
        let mut waiting = Vec::new();
        for c in pod_claims(pod) {
            let Some(pvc) = self.listers.pvc(&ns, &c) else {
                continue;
            };
            if pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .is_some_and(|v| !v.is_empty())
            {
                continue;
            }
            if let Some((_, pv)) = statics.iter().find(|(claim, _)| claim == &c) {
                // Static binding: pre-bind the PV to the claim; the PV
                // controller completes the claim side.
                let patch = serde_json::json!({"spec": {"claimRef": {
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": c,
                    "uid": pvc.metadata.uid, "resourceVersion": pvc.metadata.resource_version,
                }}, "metadata": {"annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}}});
                if let Err(e) = pvs
                    .patch(pv, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    return Status::error(format!("binding volumes: persistentvolume {pv}: {e}"));
                }
            } else {
                let patch =
                    serde_json::json!({"metadata": {"annotations": {ANN_SELECTED_NODE: node}}});
                if let Err(e) = pvcs
                    .patch(&c, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    return Status::error(format!(
                        "annotating persistentvolumeclaim {ns}/{c}: {e}"
                    ));
                }
            }
            waiting.push(c);
        }
        // Wait (like upstream's bindTimeoutSeconds, 600 s) for the PV
        // controller or a provisioner to bind the claims.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
        for c in waiting {
            loop {
                match pvcs.get_opt(&c).await {
                    Ok(Some(p))
                        if p.spec
                            .as_ref()
                            .and_then(|s| s.volume_name.as_deref())
                            .is_some_and(|v| !v.is_empty()) =>
                    {
                        break
                    }
                    Ok(None) => {
                        return Status::error(format!("persistentvolumeclaim \"{c}\" not found"))
                    }
                    _ => {}
                }
                if tokio::time::Instant::now() > deadline {
                    return Status::error(format!(
                        "binding volumes: context deadline exceeded (claim {c})"
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
        Status::success()
    }
}
