//! PersistentVolumes and PersistentVolumeClaims.

use apimachinery::validation::validate_label_selector;
use apimachinery::FieldError;
use serde_json::{json, Map, Value};

use super::quantity::{canonicalize_list, qty_string, Qty};
use crate::strategy::{
    age_cell, age_column, column, ResourceInfo, Strategy, Subresource, TableColumn,
};
use crate::util::*;

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];

/// `RWO,ROX,RWX,RWOP` in upstream's fixed order.
pub(crate) fn access_modes_cell(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|x| x.as_str() == Some(m));
    let mut out = Vec::new();
    for (mode, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if has(mode) {
            out.push(short);
        }
    }
    out.join(",")
}

fn validate_access_modes(modes: &[Value], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (mut rwop, mut other) = (false, false);
    for m in modes {
        let m = m.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&m) {
            errs.push(FieldError::not_supported(path, m, ACCESS_MODES));
        }
        if m == "ReadWriteOncePod" {
            rwop = true;
        } else if ACCESS_MODES.contains(&m) {
            other = true;
        }
    }
    if rwop && other {
        errs.push(FieldError::forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    errs
}

// ---------------------------------------------------------------------------
// PersistentVolumeClaims
// ---------------------------------------------------------------------------

/// SetDefaults_PersistentVolumeClaimSpec (also used for ephemeral volume
/// claim templates and StatefulSet volumeClaimTemplates).
pub fn default_pvc_spec(spec: &mut Value) {
    default_ptr(spec, "volumeMode", json!("Filesystem"));
    if let Some(r) = spec.get_mut("resources") {
        canonicalize_list(r.get_mut("requests"), false);
        canonicalize_list(r.get_mut("limits"), false);
    }
}

fn validate_data_source(ds: &Value, path: &str, with_namespace: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if s(ds, "name").is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    }
    let kind = s(ds, "kind");
    if kind.is_empty() {
        errs.push(FieldError::required(format!("{path}.kind"), ""));
    }
    let group = s(ds, "apiGroup");
    if group.is_empty() && kind != "PersistentVolumeClaim" {
        errs.push(FieldError::invalid(
            path,
            kind,
            "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
        ));
    }
    if !group.is_empty() {
        errs.extend(invalid_each(
            &format!("{path}.apiGroup"),
            group,
            apimachinery::validation::is_dns1123_subdomain(group),
        ));
    }
    if with_namespace {
        let ns = s(ds, "namespace");
        if !ns.is_empty() {
            errs.extend(invalid_each(
                &format!("{path}.namespace"),
                ns,
                apimachinery::validation::is_dns1123_label(ns),
            ));
        }
    }
    errs
}

/// Upstream `ValidatePersistentVolumeClaimSpec` at `path`.
pub fn validate_pvc_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let modes = arr(spec, "accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.accessModes"),
            "at least 1 access mode is required",
        ));
    }
    if let Some(sel) = spec.get("selector").filter(|v| !v.is_null()) {
        errs.extend(validate_label_selector(sel, &format!("{path}.selector")));
    }
    errs.extend(validate_access_modes(modes, &format!("{path}.accessModes")));
    let sp = format!("{path}.resources[storage]");
    match spec.pointer("/resources/requests/storage") {
        None | Some(Value::Null) => errs.push(FieldError::required(&sp, "")),
        Some(v) => match Qty::from_json(v) {
            None => errs.push(FieldError::invalid(&sp, v.clone(), "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")),
            Some(q) if !q.is_positive() => errs.push(FieldError::invalid(&sp, q.canonical(), "must be greater than zero")),
            _ => {}
        },
    }
    if let Some(sc) = spec
        .get("storageClassName")
        .and_then(Value::as_str)
        .filter(|x| !x.is_empty())
    {
        errs.extend(validate_class_name(sc, &format!("{path}.storageClassName")));
    }
    if has(spec, "volumeMode") {
        let vm = s(spec, "volumeMode");
        if !VOLUME_MODES.contains(&vm) {
            errs.push(FieldError::not_supported(
                format!("{path}.volumeMode"),
                vm,
                VOLUME_MODES,
            ));
        }
    }
    let ds = spec.get("dataSource").filter(|v| !v.is_null());
    let dsr = spec.get("dataSourceRef").filter(|v| !v.is_null());
    if let Some(ds) = ds {
        errs.extend(validate_data_source(
            ds,
            &format!("{path}.dataSource"),
            false,
        ));
    }
    if let Some(dsr) = dsr {
        errs.extend(validate_data_source(
            dsr,
            &format!("{path}.dataSourceRef"),
            true,
        ));
    }
    match (ds, dsr) {
        (Some(_), Some(r)) if !s(r, "namespace").is_empty() => {
            errs.push(FieldError::invalid(
                path,
                format!("{path}.dataSource"),
                "may not be specified when dataSourceRef.namespace is specified",
            ));
        }
        (Some(d), Some(r))
            if s(d, "apiGroup") != s(r, "apiGroup")
                || s(d, "kind") != s(r, "kind")
                || s(d, "name") != s(r, "name") =>
        {
            errs.push(FieldError::invalid(
                path,
                format!("{path}.dataSource"),
                "must match dataSourceRef",
            ));
        }
        _ => {}
    }
    errs
}

fn validate_pvc_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_meta_finalizers(new);
    errs.extend(validate_pvc_spec(
        new.get("spec").unwrap_or(&Value::Null),
        "spec",
    ));
    let mut new_spec = new.get("spec").cloned().unwrap_or(json!({}));
    let mut old_spec = old.get("spec").cloned().unwrap_or(json!({}));
    let beta = "/metadata/annotations/volume.beta.kubernetes.io~1storage-class";
    // A claim may be bound once: volumeName changes from "" are allowed.
    if str_at(old, "/spec/volumeName").is_empty() {
        if let Some(o) = old_spec.as_object_mut() {
            match new_spec.get("volumeName") {
                Some(v) => {
                    o.insert("volumeName".into(), v.clone());
                }
                None => {
                    o.remove("volumeName");
                }
            }
        }
    }
    // storageClassName may be set once when the old claim had none (or the
    // same class in the beta annotation).
    let old_class = old
        .pointer("/spec/storageClassName")
        .filter(|v| !v.is_null());
    let new_class = new
        .pointer("/spec/storageClassName")
        .filter(|v| !v.is_null());
    let old_beta = old.pointer(beta).and_then(Value::as_str);
    if old_class.is_none() {
        if let Some(nc) = new_class.and_then(Value::as_str) {
            if old_beta.is_none_or(|b| b == nc) {
                if let Some(o) = new_spec.as_object_mut() {
                    o.remove("storageClassName");
                }
            }
        }
    }
    if old.pointer(beta) != new.pointer(beta) {
        errs.push(FieldError::invalid(
            "metadata.annotations.volume.beta.kubernetes.io/storage-class",
            new.pointer(beta).cloned().unwrap_or(json!("")),
            "field is immutable",
        ));
    }
    // Bound claims may resize.
    if str_at(new, "/status/phase") == "Bound" {
        if let Some(req) = new_spec
            .pointer_mut("/resources/requests")
            .and_then(Value::as_object_mut)
        {
            match old.pointer("/spec/resources/requests/storage") {
                Some(v) => {
                    req.insert("storage".into(), v.clone());
                }
                None => {
                    req.remove("storage");
                }
            }
        }
    }
    for spec in [&mut new_spec, &mut old_spec] {
        if let Some(o) = spec.as_object_mut() {
            o.remove("volumeAttributesClassName");
        }
    }
    if !sem_eq(Some(&new_spec), Some(&old_spec)) {
        let diff = diff_lines("core.PersistentVolumeClaimSpec", &old_spec, &new_spec);
        errs.push(FieldError::forbidden("spec", format!("spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n{diff}")));
    }
    let size = |v: &Value, ptr: &str| {
        v.pointer(ptr)
            .and_then(Qty::from_json)
            .unwrap_or(Qty::zero())
    };
    let (old_size, new_size) = (
        size(old, "/spec/resources/requests/storage"),
        size(new, "/spec/resources/requests/storage"),
    );
    let status_size = size(old, "/status/capacity/storage");
    if new_size < old_size && new_size <= status_size {
        errs.push(FieldError::forbidden(
            "spec.resources.requests.storage",
            "field can not be less than status.capacity",
        ));
    }
    errs.extend(immutable(
        new.pointer("/spec/volumeMode"),
        old.pointer("/spec/volumeMode"),
        "volumeMode",
    ));
    if old
        .pointer("/spec/volumeAttributesClassName")
        .is_some_and(|v| !v.is_null())
        && !sem_eq(
            new.pointer("/spec/volumeAttributesClassName"),
            old.pointer("/spec/volumeAttributesClassName"),
        )
    {
        errs.push(FieldError::forbidden(
            "spec.volumeAttributesClassName",
            "update is forbidden when the VolumeAttributesClass feature gate is disabled",
        ));
    }
    errs
}

/// The storage class of a PV or PVC: the beta annotation, else
/// `spec.storageClassName` (upstream's `GetPersistentVolume(Claim)Class`).
fn storage_class(obj: &Value) -> String {
    if let Some(c) = obj
        .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .and_then(Value::as_str)
    {
        return c.to_string();
    }
    str_at(obj, "/spec/storageClassName").to_string()
}

pub(crate) struct PvcStrategy {
    info: ResourceInfo,
}

impl PvcStrategy {
    pub(crate) fn new() -> Self {
        PvcStrategy {
            info: super::core_info(
                "PersistentVolumeClaim",
                "persistentvolumeclaims",
                "persistentvolumeclaim",
                &["pvc"],
                &[],
                true,
                &[Subresource::Status],
                "persistentvolumeclaims",
            ),
        }
    }
}

impl Strategy for PvcStrategy {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn bumps_generation(&self) -> bool {
        false
    }

    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            default_pvc_spec(spec);
        }
        if let Some(status) = ensure_obj(obj, "status") {
            if status
                .get("phase")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                status.insert("phase".into(), json!("Pending"));
            }
            if let Some(c) = status.get_mut("capacity") {
                canonicalize_list(Some(c), false);
            }
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        if let Some(o) = obj.as_object_mut() {
            o.insert("status".into(), json!({ "phase": "Pending" }));
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = validate_meta_finalizers(obj);
        errs.extend(validate_pvc_spec(
            obj.get("spec").unwrap_or(&Value::Null),
            "spec",
        ));
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        validate_pvc_update(new, old)
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Status", "string", "phase represents the current phase of PersistentVolumeClaim.", 0),
            column("Volume", "string", "volumeName is the binding reference to the PersistentVolume backing this claim.", 0),
            column("Capacity", "string", "capacity represents the actual resources of the underlying volume.", 0),
            column("Access Modes", "string", "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1", 0),
            column("StorageClass", "string", "StorageClass of the pvc", 0),
            column("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc", 0),
            age_column(),
            column("VolumeMode", "string", "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.", 1),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let deleting = obj
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null());
        let phase = if deleting {
            "Terminating".to_string()
        } else {
            str_at(obj, "/status/phase").to_string()
        };
        let volume = str_at(obj, "/spec/volumeName");
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (
                qty_string(obj.pointer("/status/capacity/storage")),
                access_modes_cell(arr_at(obj, "/status/accessModes")),
            )
        };
        let vac = obj
            .pointer("/spec/volumeAttributesClassName")
            .and_then(Value::as_str)
            .unwrap_or("<unset>");
        let vm = obj
            .pointer("/spec/volumeMode")
            .and_then(Value::as_str)
            .unwrap_or("<unset>");
        vec![
            json!(phase),
            json!(volume),
            json!(capacity),
            json!(modes),
            json!(storage_class(obj)),
            json!(vac),
            age_cell(obj),
            json!(vm),
        ]
    }
}

// ---------------------------------------------------------------------------
// PersistentVolumes
// ---------------------------------------------------------------------------

const PV_SOURCES: &[(&str, &str)] = &[
    ("hostPath", "hostPath"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("nfs", "nfs"),
    ("rbd", "rbd"),
    ("quobyte", "quobyte"),
    ("cephfs", "cephFS"),
    ("iscsi", "iscsi"),
    ("cinder", "cinder"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("scaleIO", "scaleIO"),
    ("local", "local"),
    ("storageos", "storageos"),
    ("csi", "csi"),
];

fn default_pv_sources(spec: &mut Value) {
    with_mut(spec, "hostPath", |h| default_ptr(h, "type", json!("")));
    with_mut(spec, "iscsi", |i| {
        default_str(i, "iscsiInterface", "default")
    });
    with_mut(spec, "rbd", |r| {
        default_str(r, "pool", "rbd");
        default_str(r, "user", "admin");
        default_str(r, "keyring", "/etc/ceph/keyring");
    });
    with_mut(spec, "azureDisk", |a| {
        default_ptr(a, "cachingMode", json!("ReadWrite"));
        default_ptr(a, "kind", json!("Shared"));
        default_ptr(a, "fsType", json!("ext4"));
        default_ptr(a, "readOnly", json!(false));
    });
    with_mut(spec, "scaleIO", |x| {
        default_str(x, "storageMode", "ThinProvisioned");
        default_str(x, "fsType", "xfs");
    });
}

fn validate_pv(pv: &Value) -> Vec<FieldError> {
    let mut errs = validate_meta_finalizers(pv);
    let spec = pv.get("spec").unwrap_or(&Value::Null);
    let modes = arr(spec, "accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required("spec.accessModes", ""));
    }
    errs.extend(validate_access_modes(modes, "spec.accessModes"));
    let empty = Map::new();
    let cap = spec
        .get("capacity")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if cap.is_empty() {
        errs.push(FieldError::required("spec.capacity", ""));
    }
    if !cap.contains_key("storage") || cap.len() > 1 {
        errs.push(FieldError::not_supported(
            "spec.capacity",
            Value::Object(cap.clone()),
            &["storage"],
        ));
    }
    for k in sorted_keys(cap) {
        let p = format!("spec.capacity[{k}]");
        match cap.get(k.as_str()).and_then(Qty::from_json) {
            None => errs.push(FieldError::invalid(&p, cap.get(k.as_str()).cloned().unwrap_or(Value::Null), "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")),
            Some(q) => {
                if q.is_negative() {
                    errs.push(FieldError::invalid(&p, json!(q.nanos() / 1_000_000_000), "must be a valid resource quantity"));
                }
                if !q.is_positive() {
                    errs.push(FieldError::invalid(&p, q.canonical(), "must be greater than zero"));
                }
            }
        }
    }
    let policy = s(spec, "persistentVolumeReclaimPolicy");
    if !policy.is_empty() && !["Delete", "Recycle", "Retain"].contains(&policy) {
        errs.push(FieldError::not_supported(
            "spec.persistentVolumeReclaimPolicy",
            policy,
            &["Delete", "Recycle", "Retain"],
        ));
    }
    let mut affinity = false;
    if let Some(na) = spec.get("nodeAffinity").filter(|v| !v.is_null()) {
        affinity = true;
        if !has(na, "required") {
            errs.push(FieldError::required(
                "spec.nodeAffinity.required",
                "must specify required node constraints",
            ));
        }
    }
    let mut count = 0;
    for (key, err_name) in PV_SOURCES {
        let Some(src) = spec.get(*key).filter(|v| !v.is_null()) else {
            continue;
        };
        if count > 0 && *key != "flexVolume" {
            errs.push(FieldError::forbidden(
                format!("spec.{err_name}"),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        let p = format!("spec.{key}");
        match *key {
            "hostPath" if s(src, "path").is_empty() => {
                errs.push(FieldError::required(format!("{p}.path"), ""));
            }
            "nfs" => errs.extend(validate_nfs_source(src, &p)),
            "local" => {
                if s(src, "path").is_empty() {
                    errs.push(FieldError::required(format!("{p}.path"), ""));
                }
                if !affinity {
                    errs.push(FieldError::required(
                        "spec.nodeAffinity",
                        "Local volume requires node affinity",
                    ));
                }
            }
            "csi" => {
                if s(src, "driver").is_empty() {
                    errs.push(FieldError::required(format!("{p}.driver"), ""));
                }
                if s(src, "volumeHandle").is_empty() {
                    errs.push(FieldError::required(format!("{p}.volumeHandle"), ""));
                }
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(FieldError::required("spec", "must specify a volume type"));
    }
    let hp = str_at(spec, "/hostPath/path");
    if has(spec, "hostPath")
        && hp.trim_end_matches('/').is_empty()
        && !hp.is_empty()
        && policy == "Recycle"
    {
        errs.push(FieldError::forbidden(
            "spec.persistentVolumeReclaimPolicy",
            "may not be 'recycle' for a hostPath mount of '/'",
        ));
    }
    let sc = s(spec, "storageClassName");
    if !sc.is_empty() {
        errs.extend(validate_class_name(sc, "spec.storageClassName"));
    }
    if has(spec, "volumeMode") {
        let vm = s(spec, "volumeMode");
        if !VOLUME_MODES.contains(&vm) {
            errs.push(FieldError::not_supported(
                "spec.volumeMode",
                vm,
                VOLUME_MODES,
            ));
        }
    }
    errs
}

fn pv_source(spec: &Value) -> Value {
    let mut m = Map::new();
    for (k, _) in PV_SOURCES {
        if let Some(v) = spec.get(*k).filter(|v| !v.is_null()) {
            m.insert((*k).to_string(), v.clone());
        }
    }
    Value::Object(m)
}

fn validate_pv_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_pv(new);
    let nspec = new.get("spec").unwrap_or(&Value::Null);
    let ospec = old.get("spec").unwrap_or(&Value::Null);
    let mut nsrc = pv_source(nspec);
    let osrc = pv_source(ospec);
    // A CSI controllerExpandSecretRef may be added later.
    if ospec
        .pointer("/csi/controllerExpandSecretRef")
        .is_none_or(Value::is_null)
    {
        if let Some(csi) = nsrc.get_mut("csi").and_then(Value::as_object_mut) {
            csi.remove("controllerExpandSecretRef");
        }
    }
    if !sem_eq(Some(&nsrc), Some(&osrc)) {
        let diff = diff_lines("core.PersistentVolumeSource", &osrc, &nsrc);
        errs.push(FieldError::forbidden(
            "spec.persistentvolumesource",
            format!("spec.persistentvolumesource is immutable after creation\n{diff}"),
        ));
    }
    errs.extend(immutable(
        nspec.get("volumeMode"),
        ospec.get("volumeMode"),
        "volumeMode",
    ));
    if has(ospec, "nodeAffinity") && !sem_eq(nspec.get("nodeAffinity"), ospec.get("nodeAffinity")) {
        errs.push(FieldError::invalid(
            "nodeAffinity",
            nspec.get("nodeAffinity").cloned().unwrap_or(Value::Null),
            "field is immutable",
        ));
    }
    errs
}

pub(crate) struct PvStrategy {
    info: ResourceInfo,
}

impl PvStrategy {
    pub(crate) fn new() -> Self {
        PvStrategy {
            info: super::core_info(
                "PersistentVolume",
                "persistentvolumes",
                "persistentvolume",
                &["pv"],
                &[],
                false,
                &[Subresource::Status],
                "persistentvolumes",
            ),
        }
    }
}

impl Strategy for PvStrategy {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn bumps_generation(&self) -> bool {
        false
    }

    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            if spec.is_object() {
                default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
                default_ptr(spec, "volumeMode", json!("Filesystem"));
                canonicalize_list(spec.get_mut("capacity"), false);
                default_pv_sources(spec);
            }
        }
        if let Some(status) = ensure_obj(obj, "status") {
            if status
                .get("phase")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                status.insert("phase".into(), json!("Pending"));
            }
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        if let Some(o) = obj.as_object_mut() {
            o.insert(
                "status".into(),
                json!({ "phase": "Pending", "lastPhaseTransitionTime": now_rfc3339() }),
            );
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_pv(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        validate_pv_update(new, old)
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity", 0),
            column("Access Modes", "string", "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes", 0),
            column("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming", 0),
            column("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase", 0),
            column("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding", 0),
            column("StorageClass", "string", "StorageClass of the pv", 0),
            column("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv", 0),
            column("Reason", "string", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.", 0),
            age_column(),
            column("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec.", 1),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let claim = match obj.pointer("/spec/claimRef").filter(|v| v.is_object()) {
            Some(c) => format!("{}/{}", s(c, "namespace"), s(c, "name")),
            None => String::new(),
        };
        let deleting = obj
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null());
        let phase = if deleting {
            "Terminating".to_string()
        } else {
            str_at(obj, "/status/phase").to_string()
        };
        let vac = obj
            .pointer("/spec/volumeAttributesClassName")
            .and_then(Value::as_str)
            .unwrap_or("<unset>");
        let vm = obj
            .pointer("/spec/volumeMode")
            .and_then(Value::as_str)
            .unwrap_or("<unset>");
        vec![
            json!(qty_string(obj.pointer("/spec/capacity/storage"))),
            json!(access_modes_cell(arr_at(obj, "/spec/accessModes"))),
            json!(str_at(obj, "/spec/persistentVolumeReclaimPolicy")),
            json!(phase),
            json!(claim),
            json!(storage_class(obj)),
            json!(vac),
            json!(str_at(obj, "/status/reason")),
            age_cell(obj),
            json!(vm),
        ]
    }
}
