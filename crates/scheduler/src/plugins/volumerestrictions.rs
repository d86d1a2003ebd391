//! VolumeRestrictions: in-line disks that cannot be shared (GCE PD, EBS,
//! RBD, iSCSI) must not already be in use on the node, and a
//! ReadWriteOncePod claim may be used by one pod only.

use k8s_openapi::api::core::v1::Volume;

use super::prelude::*;
use super::volumebinding::pod_claims;
use crate::listers::Listers;

pub const NAME: &str = "VolumeRestrictions";
pub const ERR_DISK_CONFLICT: &str = "node(s) had no available disk";
pub const ERR_RWOP_CONFLICT: &str =
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode";

pub struct VolumeRestrictions {
    pub listers: Listers,
}

fn disk_id(v: &Volume) -> Option<String> {
    if let Some(g) = &v.gce_persistent_disk {
        return Some(format!("gce/{}", g.pd_name));
    }
    if let Some(a) = &v.aws_elastic_block_store {
        return Some(format!("aws/{}", a.volume_id));
    }
    if let Some(r) = &v.rbd {
        return Some(format!(
            "rbd/{}/{}",
            r.pool.as_deref().unwrap_or("rbd"),
            r.image
        ));
    }
    if let Some(i) = &v.iscsi {
        return Some(format!("iscsi/{}/{}/{}", i.target_portal, i.iqn, i.lun));
    }
    None
}

fn volumes(pod: &PodInfo) -> &[Volume] {
    pod.spec().and_then(|s| s.volumes.as_deref()).unwrap_or(&[])
}

impl Plugin for VolumeRestrictions {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for VolumeRestrictions {
    fn pre_filter(
        &self,
        _: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let rwop: Vec<String> = pod_claims(&pod.pod)
            .into_iter()
            .filter(|c| {
                self.listers.pvc(&pod.namespace, c).is_some_and(|p| {
                    p.spec
                        .as_ref()
                        .and_then(|s| s.access_modes.as_ref())
                        .is_some_and(|m| m.iter().any(|m| m == "ReadWriteOncePod"))
                })
            })
            .collect();
        let has_disks = volumes(pod).iter().any(|v| disk_id(v).is_some());
        if rwop.is_empty() && !has_disks {
            return (None, Status::skip());
        }
        for node in &snap.nodes {
            for other in &node.pods {
                if other.namespace == pod.namespace
                    && other.key != pod.key
                    && pod_claims(&other.pod).iter().any(|c| rwop.contains(c))
                {
                    return (None, Status::unschedulable(ERR_RWOP_CONFLICT));
                }
            }
        }
        (None, Status::success())
    }
}

impl FilterPlugin for VolumeRestrictions {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let mine: Vec<String> = volumes(pod).iter().filter_map(disk_id).collect();
        if mine.is_empty() {
            return Status::success();
        }
        for other in &node.pods {
            if volumes(other)
                .iter()
                .filter_map(disk_id)
                .any(|d| mine.contains(&d))
            {
                return Status::unschedulable(ERR_DISK_CONFLICT);
            }
        }
        Status::success()
    }
}
