//! storage.k8s.io/v1: storageclasses, csidrivers, csinodes,
//! volumeattachments (all cluster-scoped).

use crate::strategy::column;
use crate::util::{arr_at, ensure_obj, immutable, is_set, ptr_bool, ptr_str, set_default};
use apimachinery::validation::{is_dns1123_subdomain, is_qualified_name};
use std::collections::BTreeSet;
use std::sync::Arc;

use apimachinery::FieldError;
use serde_json::{Map, Value};

use super::common::s;
use crate::strategy::{age_cell, age_column, ResourceInfo, Strategy, Subresource, TableColumn};

pub fn all() -> Vec<Arc<dyn Strategy>> {
    vec![
        Arc::new(CsiDrivers),
        Arc::new(CsiNodes),
        Arc::new(StorageClasses),
        Arc::new(VolumeAttachments),
    ]
}

macro_rules! storage_info {
    ($name:ident, $kind:literal, $plural:literal, $singular:literal, $short:expr, $subs:expr) => {
        static $name: ResourceInfo = ResourceInfo {
            group: "storage.k8s.io",
            version: "v1",
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short_names: $short,
            categories: &[],
            namespaced: false,
            definition: concat!("io.k8s.api.storage.v1.", $kind),
            subresources: $subs,
            read_only: false,
            storage_segment: $plural,
            storage_api_version: "storage.k8s.io/v1",
        };
    };
}

storage_info!(
    STORAGECLASSES,
    "StorageClass",
    "storageclasses",
    "storageclass",
    &["sc"],
    &[]
);
storage_info!(CSIDRIVERS, "CSIDriver", "csidrivers", "csidriver", &[], &[]);
storage_info!(CSINODES, "CSINode", "csinodes", "csinode", &[], &[]);
storage_info!(
    VOLUMEATTACHMENTS,
    "VolumeAttachment",
    "volumeattachments",
    "volumeattachment",
    &[],
    &[Subresource::Status]
);

// ---------------------------------------------------------------------------
// StorageClasses
// ---------------------------------------------------------------------------

pub struct StorageClasses;

fn validate_storage_class(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let provisioner = ptr_str(obj, "/provisioner").unwrap_or("");
    if provisioner.is_empty() {
        errs.push(FieldError::required("provisioner", ""));
    } else {
        for m in is_qualified_name(&provisioner.to_lowercase()) {
            errs.push(FieldError::invalid("provisioner", provisioner, m));
        }
    }
    let size: usize = obj
        .get("parameters")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                .sum()
        })
        .unwrap_or(0);
    if size > 256 * 1024 {
        errs.push(FieldError::too_long("parameters", 256 * 1024));
    }
    if let Some(rp) = ptr_str(obj, "/reclaimPolicy") {
        if rp != "Delete" && rp != "Retain" {
            errs.push(FieldError::not_supported(
                "reclaimPolicy",
                rp,
                &["Delete", "Retain"],
            ));
        }
    }
    if let Some(m) = ptr_str(obj, "/volumeBindingMode") {
        if m != "Immediate" && m != "WaitForFirstConsumer" {
            errs.push(FieldError::not_supported(
                "volumeBindingMode",
                m,
                &["Immediate", "WaitForFirstConsumer"],
            ));
        }
    } else if is_set(obj.get("volumeBindingMode")) {
        errs.push(FieldError::required("volumeBindingMode", ""));
    }
    errs
}

impl Strategy for StorageClasses {
    fn info(&self) -> &ResourceInfo {
        &STORAGECLASSES
    }

    fn default(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            set_default(m, "reclaimPolicy", s("Delete"));
            set_default(m, "volumeBindingMode", s("Immediate"));
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_storage_class(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_storage_class(new);
        let empty_map = Value::Object(Map::new());
        let params = |v: &Value| {
            v.get("parameters")
                .filter(|p| !p.is_null())
                .cloned()
                .unwrap_or_else(|| empty_map.clone())
        };
        if params(new) != params(old) {
            errs.push(FieldError::forbidden(
                "parameters",
                "updates to parameters are forbidden.",
            ));
        }
        if new.get("provisioner") != old.get("provisioner") {
            errs.push(FieldError::forbidden(
                "provisioner",
                "updates to provisioner are forbidden.",
            ));
        }
        if new.get("reclaimPolicy") != old.get("reclaimPolicy") {
            errs.push(FieldError::forbidden(
                "reclaimPolicy",
                "updates to reclaimPolicy are forbidden.",
            ));
        }
        errs.extend(immutable(
            new.get("volumeBindingMode"),
            old.get("volumeBindingMode"),
            "volumeBindingMode",
        ));
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Provisioner", "string", "provisioner indicates the type of the provisioner.", 0),
            column("ReclaimPolicy", "string", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete.", 0),
            column("VolumeBindingMode", "string", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature.", 0),
            column("AllowVolumeExpansion", "string", "allowVolumeExpansion shows whether the storage class allow volume expand.", 0),
            age_column(),
        ]
    }

    /// Upstream also suffixes the Name cell with " (default)" for the default
    /// class; the Name column is the store's.
    fn table_row(&self, obj: &Value) -> Vec<Value> {
        vec![
            s(ptr_str(obj, "/provisioner").unwrap_or("")),
            s(ptr_str(obj, "/reclaimPolicy").unwrap_or("Delete")),
            s(ptr_str(obj, "/volumeBindingMode").unwrap_or("Immediate")),
            Value::Bool(ptr_bool(obj, "/allowVolumeExpansion").unwrap_or(false)),
            age_cell(obj),
        ]
    }
}

// ---------------------------------------------------------------------------
// CSIDrivers
// ---------------------------------------------------------------------------

pub struct CsiDrivers;

fn validate_csi_driver(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !is_set(obj.pointer("/spec/attachRequired")) {
        errs.push(FieldError::required("spec.attachRequired", ""));
    }
    if !is_set(obj.pointer("/spec/podInfoOnMount")) {
        errs.push(FieldError::required("spec.podInfoOnMount", ""));
    }
    if !is_set(obj.pointer("/spec/storageCapacity")) {
        errs.push(FieldError::required("spec.storageCapacity", ""));
    }
    if !is_set(obj.pointer("/spec/requiresRepublish")) {
        errs.push(FieldError::required("spec.requiresRepublish", ""));
    }
    if let Some(p) = ptr_str(obj, "/spec/fsGroupPolicy") {
        if !matches!(p, "File" | "None" | "ReadWriteOnceWithFSType") {
            errs.push(FieldError::not_supported(
                "spec.fsGroupPolicy",
                p,
                &["File", "None", "ReadWriteOnceWithFSType"],
            ));
        }
    }
    for (i, m) in arr_at(obj, "/spec/volumeLifecycleModes").iter().enumerate() {
        let m = m.as_str().unwrap_or("");
        if m != "Persistent" && m != "Ephemeral" {
            errs.push(FieldError::not_supported(
                format!("spec.volumeLifecycleModes[{i}]"),
                m,
                &["Ephemeral", "Persistent"],
            ));
        }
    }
    let mut audiences = BTreeSet::new();
    for (i, t) in arr_at(obj, "/spec/tokenRequests").iter().enumerate() {
        let a = ptr_str(t, "/audience").unwrap_or("");
        if !audiences.insert(a.to_string()) {
            errs.push(FieldError::duplicate(
                format!("spec.tokenRequests[{i}].audience"),
                a,
            ));
        }
    }
    errs
}

impl Strategy for CsiDrivers {
    fn info(&self) -> &ResourceInfo {
        &CSIDRIVERS
    }

    fn default(&self, obj: &mut Value) {
        let Some(spec) = ensure_obj(obj, "spec") else {
            return;
        };
        set_default(spec, "attachRequired", Value::Bool(true));
        set_default(spec, "podInfoOnMount", Value::Bool(false));
        set_default(spec, "storageCapacity", Value::Bool(false));
        set_default(spec, "fsGroupPolicy", s("ReadWriteOnceWithFSType"));
        set_default(spec, "requiresRepublish", Value::Bool(false));
        set_default(spec, "seLinuxMount", Value::Bool(false));
        if spec
            .get("volumeLifecycleModes")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            spec.insert(
                "volumeLifecycleModes".into(),
                Value::Array(vec![s("Persistent")]),
            );
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_csi_driver(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_csi_driver(new);
        // Upstream's path really is "attachedRequired".
        errs.extend(immutable(
            new.pointer("/spec/attachRequired"),
            old.pointer("/spec/attachRequired"),
            "spec.attachedRequired",
        ));
        errs.extend(immutable(
            new.pointer("/spec/fsGroupPolicy"),
            old.pointer("/spec/fsGroupPolicy"),
            "spec.fsGroupPolicy",
        ));
        errs.extend(immutable(
            new.pointer("/spec/volumeLifecycleModes"),
            old.pointer("/spec/volumeLifecycleModes"),
            "spec.volumeLifecycleModes",
        ));
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("AttachRequired", "boolean", "attachRequired indicates this CSI volume driver requires an attach operation (because it implements the CSI ControllerPublishVolume() method), and that the Kubernetes attach detach controller should call the attach volume interface which checks the volumeattachment status and waits until the volume is attached before proceeding to mounting.", 0),
            column("PodInfoOnMount", "boolean", "podInfoOnMount indicates this CSI volume driver requires additional pod information (like podName, podUID, etc.) during mount operations, if set to true.", 0),
            column("StorageCapacity", "boolean", "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity that the driver deployment will report by creating CSIStorageCapacity objects with capacity information, if set to true.", 0),
            column("TokenRequests", "string", "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for to do necessary authentication.", 0),
            column("RequiresRepublish", "boolean", "requiresRepublish indicates the CSI driver wants `NodePublishVolume` being periodically called to reflect any possible change in the mounted volume.", 0),
            column("Modes", "string", "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports.", 0),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let modes: Vec<&str> = arr_at(obj, "/spec/volumeLifecycleModes")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let modes = if modes.is_empty() {
            "<none>".to_string()
        } else {
            modes.join(",")
        };
        let tokens = match obj.pointer("/spec/tokenRequests").and_then(Value::as_array) {
            None => "<unset>".to_string(),
            Some(t) => t
                .iter()
                .map(|t| ptr_str(t, "/audience").unwrap_or(""))
                .collect::<Vec<_>>()
                .join(","),
        };
        vec![
            Value::Bool(ptr_bool(obj, "/spec/attachRequired").unwrap_or(true)),
            Value::Bool(ptr_bool(obj, "/spec/podInfoOnMount").unwrap_or(false)),
            Value::Bool(ptr_bool(obj, "/spec/storageCapacity").unwrap_or(false)),
            s(tokens),
            Value::Bool(ptr_bool(obj, "/spec/requiresRepublish").unwrap_or(false)),
            s(modes),
            age_cell(obj),
        ]
    }
}

// ---------------------------------------------------------------------------
// CSINodes
// ---------------------------------------------------------------------------

pub struct CsiNodes;

impl Strategy for CsiNodes {
    fn info(&self) -> &ResourceInfo {
        &CSINODES
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let mut names = BTreeSet::new();
        for (i, d) in arr_at(obj, "/spec/drivers").iter().enumerate() {
            let p = format!("spec.drivers[{i}]");
            let name = ptr_str(d, "/name").unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(format!("{p}.name"), ""));
            } else {
                for m in is_dns1123_subdomain(&name.to_lowercase()) {
                    errs.push(FieldError::invalid(format!("{p}.name"), name, m));
                }
                if !names.insert(name.to_string()) {
                    errs.push(FieldError::duplicate(format!("{p}.name"), name));
                }
            }
            if ptr_str(d, "/nodeID").unwrap_or("").is_empty() {
                errs.push(FieldError::required(format!("{p}.nodeID"), ""));
            }
        }
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column(
                "Drivers",
                "integer",
                "Drivers indicates the number of CSI drivers registered on the node",
                0,
            ),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        vec![
            Value::from(arr_at(obj, "/spec/drivers").len()),
            age_cell(obj),
        ]
    }
}

// ---------------------------------------------------------------------------
// VolumeAttachments
// ---------------------------------------------------------------------------

pub struct VolumeAttachments;

fn validate_volume_attachment(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let attacher = ptr_str(obj, "/spec/attacher").unwrap_or("");
    if attacher.is_empty() {
        errs.push(FieldError::required("spec.attacher", ""));
    } else {
        for m in is_dns1123_subdomain(&attacher.to_lowercase()) {
            errs.push(FieldError::invalid("spec.attacher", attacher, m));
        }
    }
    let pv = obj
        .pointer("/spec/source/persistentVolumeName")
        .filter(|v| !v.is_null());
    let inline = obj
        .pointer("/spec/source/inlineVolumeSpec")
        .filter(|v| !v.is_null());
    match (pv, inline) {
        (None, None) | (Some(_), Some(_)) => errs.push(FieldError::required(
            "spec.source",
            "must specify exactly one of inlineVolumeSpec and persistentVolumeName",
        )),
        (Some(pv), None) => {
            let name = pv.as_str().unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(
                    "spec.source.persistentVolumeName",
                    "must specify non empty persistentVolumeName",
                ));
            }
        }
        (None, Some(_)) => {}
    }
    let node = ptr_str(obj, "/spec/nodeName").unwrap_or("");
    if node.is_empty() {
        errs.push(FieldError::required("spec.nodeName", ""));
    } else {
        for m in is_dns1123_subdomain(node) {
            errs.push(FieldError::invalid("spec.nodeName", node, m));
        }
    }
    errs
}

impl Strategy for VolumeAttachments {
    fn info(&self) -> &ResourceInfo {
        &VOLUMEATTACHMENTS
    }

    fn bumps_generation(&self) -> bool {
        false
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_volume_attachment(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_volume_attachment(new);
        if new.get("spec") != old.get("spec") {
            errs.push(FieldError::invalid(
                "spec",
                new.get("spec").cloned().unwrap_or(Value::Null),
                "field is immutable",
            ));
        }
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        let mut attacher = column("Attacher", "string", "attacher indicates the name of the volume driver that MUST handle this request. This is the name returned by GetPluginName().", 0);
        attacher.format = "name";
        vec![
            attacher,
            column("PV", "string", "persistentVolumeName represents the name of the persistent volume to attach.", 0),
            column("Node", "string", "nodeName represents the node that the volume should be attached to.", 0),
            column("Attached", "boolean", "attached indicates the volume is successfully attached. This field must only be set by the entity completing the attach operation, i.e. the external-attacher.", 0),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        vec![
            s(ptr_str(obj, "/spec/attacher").unwrap_or("")),
            s(ptr_str(obj, "/spec/source/persistentVolumeName").unwrap_or("")),
            s(ptr_str(obj, "/spec/nodeName").unwrap_or("")),
            Value::Bool(ptr_bool(obj, "/status/attached").unwrap_or(false)),
            age_cell(obj),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn storageclass_defaults_and_forbidden_updates() {
        let mut sc = json!({"metadata": {"name": "standard"}, "provisioner": "kubernetes.io/no-provisioner", "parameters": {"type": "ssd"}});
        StorageClasses.default(&mut sc);
        assert_eq!(sc["reclaimPolicy"], "Delete");
        assert_eq!(sc["volumeBindingMode"], "Immediate");
        assert!(StorageClasses.validate(&sc).is_empty());
        let row = StorageClasses.table_row(&sc);
        assert_eq!(
            row[..4],
            [
                json!("kubernetes.io/no-provisioner"),
                json!("Delete"),
                json!("Immediate"),
                json!(false)
            ]
        );
        let mut n = sc.clone();
        n["provisioner"] = json!("example.com/other");
        n["parameters"] = json!({"type": "hdd"});
        let errs: Vec<String> = StorageClasses
            .validate_update(&n, &sc)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            vec![
                "parameters: Forbidden: updates to parameters are forbidden.".to_string(),
                "provisioner: Forbidden: updates to provisioner are forbidden.".to_string(),
            ]
        );
        assert_eq!(
            StorageClasses.validate(&json!({}))[0].to_string(),
            "provisioner: Required value"
        );
    }

    #[test]
    fn csidriver_defaults_and_row() {
        let mut d = json!({"metadata": {"name": "csi.example.com"}, "spec": {}});
        CsiDrivers.default(&mut d);
        assert!(CsiDrivers.validate(&d).is_empty());
        assert_eq!(
            CsiDrivers.table_row(&d)[..6],
            [
                json!(true),
                json!(false),
                json!(false),
                json!("<unset>"),
                json!(false),
                json!("Persistent")
            ]
        );
    }

    #[test]
    fn volumeattachment_needs_a_source() {
        let va =
            json!({"spec": {"attacher": "csi.example.com", "nodeName": "node-1", "source": {}}});
        assert_eq!(
            VolumeAttachments.validate(&va)[0].to_string(),
            "spec.source: Required value: must specify exactly one of inlineVolumeSpec and persistentVolumeName"
        );
    }
}
