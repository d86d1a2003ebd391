//! Read-only caches (kube reflector stores) of the objects plugins look up
//! besides pods and nodes. Each is fed by one watch in [`crate::scheduler`].

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::reflector::{self, ObjectRef, Store};

#[derive(Clone)]
pub struct Listers {
    pub pvcs: Store<PersistentVolumeClaim>,
    pub pvs: Store<PersistentVolume>,
    pub storage_classes: Store<StorageClass>,
    pub pdbs: Store<PodDisruptionBudget>,
}

/// The writers feeding [`Listers`].
pub struct Writers {
    pub pvcs: reflector::store::Writer<PersistentVolumeClaim>,
    pub pvs: reflector::store::Writer<PersistentVolume>,
    pub storage_classes: reflector::store::Writer<StorageClass>,
    pub pdbs: reflector::store::Writer<PodDisruptionBudget>,
}

impl Listers {
    pub fn new() -> (Listers, Writers) {
        let (pvcs, w1) = reflector::store();
        let (pvs, w2) = reflector::store();
        let (storage_classes, w3) = reflector::store();
        let (pdbs, w4) = reflector::store();
        (
            Listers {
                pvcs,
                pvs,
                storage_classes,
                pdbs,
            },
            Writers {
                pvcs: w1,
                pvs: w2,
                storage_classes: w3,
                pdbs: w4,
            },
        )
    }

    pub fn pvc(&self, ns: &str, name: &str) -> Option<std::sync::Arc<PersistentVolumeClaim>> {
        self.pvcs.get(&ObjectRef::new(name).within(ns))
    }
    pub fn pv(&self, name: &str) -> Option<std::sync::Arc<PersistentVolume>> {
        self.pvs.get(&ObjectRef::new(name))
    }
    pub fn storage_class(&self, name: &str) -> Option<std::sync::Arc<StorageClass>> {
        self.storage_classes.get(&ObjectRef::new(name))
    }
}
