//! Namespaces, Nodes, core/v1 Events and ComponentStatuses.

use std::collections::{BTreeSet, HashSet};

use apimachinery::validation::{
    is_dns1123_subdomain, is_qualified_name, is_valid_label_value, NameValidator,
};
use apimachinery::FieldError;
use serde_json::{json, Value};

use super::quantity::{canonicalize_list, Qty};
use crate::strategy::{
    age_cell, age_column, column, since, ResourceInfo, Strategy, Subresource, TableColumn,
};
use crate::util::*;

// ---------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------

pub(crate) struct NamespaceStrategy {
    info: ResourceInfo,
}

impl NamespaceStrategy {
    pub(crate) fn new() -> Self {
        NamespaceStrategy {
            info: super::core_info(
                "Namespace",
                "namespaces",
                "namespace",
                &["ns"],
                &[],
                false,
                &[Subresource::Status, Subresource::Finalize],
                "namespaces",
            ),
        }
    }
}

/// Upstream `validateFinalizerName` for spec.finalizers entries.
fn validate_finalizer_name(name: &str, path: &str) -> Vec<FieldError> {
    let mut errs = invalid_each(path, name, is_qualified_name(name));
    errs.extend(validate_kube_finalizer_name(name, path));
    errs
}

impl Strategy for NamespaceStrategy {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn bumps_generation(&self) -> bool {
        false
    }

    fn name_validator(&self) -> NameValidator {
        NameValidator::Label
    }

    fn default(&self, obj: &mut Value) {
        let name = str_at(obj, "/metadata/name").to_string();
        if !name.is_empty() {
            if let Some(meta) = ensure_obj(obj, "metadata") {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if labels.is_null() {
                    *labels = json!({});
                }
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), json!(name));
                }
            }
        }
        if let Some(status) = ensure_obj(obj, "status") {
            let empty = status
                .get("phase")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty();
            if empty {
                status.insert("phase".into(), json!("Active"));
            }
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        if let Some(o) = obj.as_object_mut() {
            o.insert("status".into(), json!({ "phase": "Active" }));
        }
        if let Some(spec) = ensure_obj(obj, "spec") {
            let list = spec.entry("finalizers").or_insert_with(|| json!([]));
            if !list.is_array() {
                *list = json!([]);
            }
            if let Some(list) = list.as_array_mut() {
                if !list.iter().any(|f| f.as_str() == Some("kubernetes")) {
                    list.push(json!("kubernetes"));
                }
            }
        }
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        // spec.finalizers only change through the finalize subresource.
        let old_fin = old.pointer("/spec/finalizers").cloned();
        if let Some(spec) = ensure_obj(new, "spec") {
            match old_fin {
                Some(f) => {
                    spec.insert("finalizers".into(), f);
                }
                None => {
                    spec.remove("finalizers");
                }
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = validate_meta_finalizers(obj);
        for f in arr_at(obj, "/spec/finalizers") {
            errs.extend(validate_finalizer_name(
                f.as_str().unwrap_or(""),
                "spec.finalizers",
            ));
        }
        errs
    }

    fn validate_update(&self, new: &Value, _old: &Value) -> Vec<FieldError> {
        let mut errs = validate_meta_finalizers(new);
        for (i, f) in arr_at(new, "/spec/finalizers").iter().enumerate() {
            errs.extend(validate_finalizer_name(
                f.as_str().unwrap_or(""),
                &format!("spec.finalizers[{i}]"),
            ));
        }
        let deleting = new
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null());
        let phase = str_at(new, "/status/phase");
        if !deleting && phase != "Active" {
            errs.push(FieldError::invalid(
                "status.Phase",
                phase,
                "may only be 'Active' if `deletionTimestamp` is empty",
            ));
        } else if deleting && phase != "Terminating" {
            errs.push(FieldError::invalid(
                "status.Phase",
                phase,
                "may only be 'Terminating' if `deletionTimestamp` is not empty",
            ));
        }
        errs
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        vec![("status.phase", str_at(obj, "/status/phase").to_string())]
    }

    fn selectable_field_names(&self) -> &'static [&'static str] {
        &["status.phase"]
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Status", "string", "The status of the namespace", 0),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        vec![json!(str_at(obj, "/status/phase")), age_cell(obj)]
    }

    fn hold_deletion(&self, obj: &mut Value) -> bool {
        if let Some(status) = ensure_obj(obj, "status") {
            status.insert("phase".into(), json!("Terminating"));
        }
        !arr_at(obj, "/spec/finalizers").is_empty()
    }
}

// ---------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------

pub(crate) struct NodeStrategy {
    info: ResourceInfo,
}

impl NodeStrategy {
    pub(crate) fn new() -> Self {
        NodeStrategy {
            info: super::core_info(
                "Node",
                "nodes",
                "node",
                &["no"],
                &[],
                false,
                &[Subresource::Status, Subresource::Proxy],
                "minions",
            ),
        }
    }
}

fn validate_node_taints(taints: &[Value], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for (i, t) in taints.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let key = s(t, "key");
        errs.extend(invalid_each(
            &format!("{ip}.key"),
            key,
            is_qualified_name(key),
        ));
        let msgs = is_valid_label_value(s(t, "value"));
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                format!("{ip}.value"),
                s(t, "value"),
                msgs.join(";"),
            ));
        }
        let effect = s(t, "effect");
        if effect.is_empty() {
            errs.push(FieldError::required(format!("{ip}.effect"), ""));
        } else if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
            errs.push(FieldError::not_supported(
                format!("{ip}.effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
        if !seen.insert((key.to_string(), effect.to_string())) {
            let mut e = FieldError::duplicate(&ip, t.clone());
            e.detail = "taints must be unique by key and effect pair".to_string();
            errs.push(e);
        }
    }
    errs
}

fn validate_node_resources(node: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in ["capacity", "allocatable"] {
        if let Some(m) = obj_at(node, &format!("/status/{key}")) {
            for k in sorted_keys(m) {
                let p = format!("status.{key}.{k}");
                match m.get(k.as_str()).and_then(Qty::from_json) {
                    Some(q) if q.is_negative() => errs.push(FieldError::invalid(
                        &p,
                        q.canonical(),
                        "must be greater than or equal to 0",
                    )),
                    Some(q) if is_integer_resource_name(k) && !q.is_integer() => {
                        errs.push(FieldError::invalid(&p, q.canonical(), "must be an integer"))
                    }
                    _ => {}
                }
            }
        }
    }
    errs
}

fn validate_node(node: &Value) -> Vec<FieldError> {
    let mut errs = validate_meta_finalizers(node);
    // Upstream reports spec.taints under metadata.taints.
    errs.extend(validate_node_taints(
        arr_at(node, "/spec/taints"),
        "metadata.taints",
    ));
    errs.extend(validate_node_resources(node));
    let cidrs = arr_at(node, "/spec/podCIDRs");
    for (i, c) in cidrs.iter().enumerate() {
        errs.extend(validate_cidr(
            &format!("spec.podCIDRs[{i}]"),
            c.as_str().unwrap_or(""),
        ));
    }
    if cidrs.len() > 1 {
        let v6: Vec<bool> = cidrs
            .iter()
            .filter_map(|c| c.as_str()?.parse::<ipnet::IpNet>().ok())
            .map(|n| matches!(n, ipnet::IpNet::V6(_)))
            .collect();
        if cidrs.len() > 2 || v6.len() != 2 || v6.first() == v6.get(1) {
            errs.push(FieldError::invalid(
                "spec.podCIDRs",
                json!(cidrs),
                "may specify no more than one CIDR for each IP family",
            ));
        }
        let mut seen = HashSet::new();
        for (i, c) in cidrs.iter().enumerate() {
            let c = c.as_str().unwrap_or("");
            if !seen.insert(c) {
                errs.push(FieldError::duplicate(format!("spec.podCIDRs[{i}]"), c));
            }
        }
    }
    errs
}

fn node_status_cell(node: &Value) -> String {
    let mut status: Vec<String> = Vec::new();
    if let Some(c) = arr_at(node, "/status/conditions")
        .iter()
        .rev()
        .find(|c| s(c, "type") == "Ready")
    {
        status.push(if s(c, "status") == "True" {
            "Ready".to_string()
        } else {
            "NotReady".to_string()
        });
    }
    if status.is_empty() {
        status.push("Unknown".to_string());
    }
    if bool_at(node, "/spec/unschedulable") {
        status.push("SchedulingDisabled".to_string());
    }
    status.join(",")
}

fn node_roles_cell(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    if let Some(labels) = obj_at(node, "/metadata/labels") {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                let v = v.as_str().unwrap_or("");
                if !v.is_empty() {
                    roles.insert(v.to_string());
                }
            }
        }
    }
    if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

fn node_address(node: &Value, kind: &str) -> String {
    arr_at(node, "/status/addresses")
        .iter()
        .find(|a| s(a, "type") == kind)
        .map(|a| s(a, "address").to_string())
        .unwrap_or_else(|| "<none>".to_string())
}

fn unknown_if_empty(v: &str) -> String {
    if v.is_empty() {
        "<unknown>".to_string()
    } else {
        v.to_string()
    }
}

/// The Status, Roles ... cells of a node (exposed for tests).
pub(crate) fn node_cells(node: &Value) -> (String, String) {
    (node_status_cell(node), node_roles_cell(node))
}

impl Strategy for NodeStrategy {
    fn reset_status_on_create(&self) -> bool {
        false
    }

    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn bumps_generation(&self) -> bool {
        false
    }

    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            let single = spec
                .get("podCIDR")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let first = spec
                .get("podCIDRs")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .map(str::to_string);
            match first {
                // v1's singular field wins when both are set and differ.
                Some(f) if !single.is_empty() && f != single => {
                    spec.insert("podCIDRs".into(), json!([single]));
                }
                Some(f) => {
                    spec.insert("podCIDR".into(), json!(f));
                }
                None if !single.is_empty() => {
                    spec.insert("podCIDRs".into(), json!([single]));
                }
                None => {}
            }
        }
        if let Some(status) = obj.get_mut("status") {
            canonicalize_list(status.get_mut("capacity"), false);
            canonicalize_list(status.get_mut("allocatable"), false);
            if let Some(st) = status.as_object_mut() {
                if st.get("allocatable").is_none_or(Value::is_null) {
                    if let Some(cap) = st.get("capacity").filter(|c| c.is_object()).cloned() {
                        st.insert("allocatable".into(), cap);
                    }
                }
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_node(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_meta_finalizers(new);
        errs.extend(validate_node_resources(new));
        let mut seen = HashSet::new();
        for (i, a) in arr_at(new, "/status/addresses").iter().enumerate() {
            if !seen.insert((s(a, "type").to_string(), s(a, "address").to_string())) {
                errs.push(FieldError::duplicate(
                    format!("status.addresses[{i}]"),
                    a.clone(),
                ));
            }
        }
        let old_cidrs = arr_at(old, "/spec/podCIDRs");
        let new_cidrs = arr_at(new, "/spec/podCIDRs");
        if !old_cidrs.is_empty() {
            if old_cidrs.len() != new_cidrs.len() {
                errs.push(FieldError::forbidden(
                    "spec.podCIDRs",
                    "node updates may not change podCIDR except from \"\" to valid",
                ));
            } else {
                for (o, n) in old_cidrs.iter().zip(new_cidrs) {
                    if o != n {
                        errs.push(FieldError::forbidden(
                            "spec.podCIDRs",
                            "node updates may not change podCIDR except from \"\" to valid",
                        ));
                    }
                }
            }
        }
        let old_pid = str_at(old, "/spec/providerID");
        if !old_pid.is_empty() && old_pid != str_at(new, "/spec/providerID") {
            errs.push(FieldError::forbidden(
                "spec.providerID",
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
        errs.extend(validate_node_taints(
            arr_at(new, "/spec/taints"),
            "metadata.taints",
        ));
        if str_at(new, "/spec/externalID") != str_at(old, "/spec/externalID") {
            errs.push(FieldError::forbidden(
                "spec.externalID",
                "may not be updated",
            ));
        }
        for (i, c) in new_cidrs.iter().enumerate() {
            errs.extend(validate_cidr(
                &format!("spec.podCIDRs[{i}]"),
                c.as_str().unwrap_or(""),
            ));
        }
        errs
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        vec![(
            "spec.unschedulable",
            bool_at(obj, "/spec/unschedulable").to_string(),
        )]
    }

    fn selectable_field_names(&self) -> &'static [&'static str] {
        &["spec.unschedulable"]
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        const ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";
        vec![
            column("Status", "string", "The status of the node", 0),
            column("Roles", "string", "The roles of the node", 0),
            age_column(),
            column("Version", "string", "Kubelet Version reported by the node.", 0),
            column("Internal-IP", "string", ADDRESSES, 1),
            column("External-IP", "string", ADDRESSES, 1),
            column("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", 1),
            column("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
            column("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).", 1),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let (status, roles) = node_cells(obj);
        vec![
            json!(status),
            json!(roles),
            age_cell(obj),
            json!(str_at(obj, "/status/nodeInfo/kubeletVersion")),
            json!(node_address(obj, "InternalIP")),
            json!(node_address(obj, "ExternalIP")),
            json!(unknown_if_empty(str_at(obj, "/status/nodeInfo/osImage"))),
            json!(unknown_if_empty(str_at(
                obj,
                "/status/nodeInfo/kernelVersion"
            ))),
            json!(unknown_if_empty(str_at(
                obj,
                "/status/nodeInfo/containerRuntimeVersion"
            ))),
        ]
    }
}

// ---------------------------------------------------------------------------
// Events (core/v1)
// ---------------------------------------------------------------------------

pub(crate) struct EventStrategy {
    info: ResourceInfo,
}

impl EventStrategy {
    pub(crate) fn new() -> Self {
        EventStrategy {
            info: super::core_info(
                "Event",
                "events",
                "event",
                &["ev"],
                &[],
                true,
                &[],
                "events",
            ),
        }
    }
}

/// The parts of upstream's `legacyValidateEvent` for events with an
/// eventTime that both event APIs share: reportingInstance, action and
/// reason are required and at most 128 characters, message at most 1024.
pub(crate) fn event_reporting_errors(
    reporting_instance: &str,
    action: &str,
    reason: &str,
    message: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (field, v) in [
        ("reportingInstance", reporting_instance),
        ("action", action),
        ("reason", reason),
    ] {
        if v.is_empty() {
            errs.push(FieldError::required(field, ""));
        }
        if v.len() > 128 {
            errs.push(FieldError::invalid(
                field,
                "",
                "can have at most 128 characters",
            ));
        }
    }
    if message.len() > 1024 {
        errs.push(FieldError::invalid(
            "message",
            "",
            "can have at most 1024 characters",
        ));
    }
    errs
}

/// Upstream `legacyValidateEvent` as it applies to core/v1 requests.
fn validate_event(ev: &Value) -> Vec<FieldError> {
    let mut errs = validate_meta_finalizers(ev);
    let ns = str_at(ev, "/metadata/namespace");
    let involved_ns = str_at(ev, "/involvedObject/namespace");
    let event_time = ev
        .get("eventTime")
        .is_some_and(|t| !t.is_null() && t.as_str() != Some(""));
    if !event_time {
        if involved_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                errs.push(FieldError::invalid(
                    "involvedObject.namespace",
                    involved_ns,
                    "does not match event.namespace",
                ));
            }
        } else if ns != involved_ns {
            errs.push(FieldError::invalid(
                "involvedObject.namespace",
                involved_ns,
                "does not match event.namespace",
            ));
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(FieldError::invalid(
                "involvedObject.namespace",
                involved_ns,
                "does not match event.namespace",
            ));
        }
        let rc = s(ev, "reportingComponent");
        if rc.is_empty() {
            errs.push(FieldError::required("reportingComponent", ""));
        }
        errs.extend(invalid_each(
            "reportingComponent",
            rc,
            is_qualified_name(rc),
        ));
        errs.extend(event_reporting_errors(
            s(ev, "reportingInstance"),
            s(ev, "action"),
            s(ev, "reason"),
            s(ev, "message"),
        ));
    }
    errs.extend(invalid_each("namespace", ns, is_dns1123_subdomain(ns)));
    errs
}

/// Cells of an event row, in the column order (exposed for tests).
pub(crate) fn event_cells(ev: &Value) -> Vec<Value> {
    let first_ts = s(ev, "firstTimestamp");
    let first = if first_ts.is_empty() {
        since(Some(s(ev, "eventTime")))
    } else {
        since(Some(first_ts))
    };
    let last_ts = s(ev, "lastTimestamp");
    let mut last = if last_ts.is_empty() {
        first.clone()
    } else {
        since(Some(last_ts))
    };
    let mut count = ev.get("count").and_then(as_i64).unwrap_or(0);
    if let Some(series) = ev.get("series").filter(|x| x.is_object()) {
        last = since(Some(s(series, "lastObservedTime")));
        count = series.get("count").and_then(as_i64).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let kind = str_at(ev, "/involvedObject/kind").to_lowercase();
    let name = str_at(ev, "/involvedObject/name");
    let target = if name.is_empty() {
        kind
    } else {
        format!("{kind}/{name}")
    };
    let component = [str_at(ev, "/source/component"), s(ev, "reportingComponent")]
        .into_iter()
        .find(|x| !x.is_empty())
        .unwrap_or("");
    let host = [str_at(ev, "/source/host"), s(ev, "reportingInstance")]
        .into_iter()
        .find(|x| !x.is_empty())
        .unwrap_or("");
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(s(ev, "type")),
        json!(s(ev, "reason")),
        json!(target),
        json!(str_at(ev, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(ev, "message").trim()),
        json!(first),
        json!(count),
        json!(str_at(ev, "/metadata/name")),
    ]
}

/// Upstream's event printer columns: Name is last and wide-only.
pub(crate) fn event_columns() -> Vec<TableColumn> {
    vec![
            column("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded.", 0),
            column("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future", 0),
            column("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.", 0),
            column("Object", "string", "The object that this event is about.", 0),
            column("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.", 1),
            column("Source", "string", "The component reporting this event. Should be a short machine understandable string.", 1),
            column("Message", "string", "A human-readable description of the status of this operation.", 0),
            column("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)", 1),
            column("Count", "string", "The number of times this event has occurred.", 1),
            TableColumn {
                name: "Name",
                type_: "string",
                format: "name",
                description: super::NAME_DESCRIPTION,
                priority: 1,
            },
        ]
}

impl Strategy for EventStrategy {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_event(obj)
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let component = str_at(obj, "/source/component");
        let source = if component.is_empty() {
            s(obj, "reportingComponent")
        } else {
            component
        };
        vec![
            (
                "involvedObject.kind",
                str_at(obj, "/involvedObject/kind").to_string(),
            ),
            (
                "involvedObject.namespace",
                str_at(obj, "/involvedObject/namespace").to_string(),
            ),
            (
                "involvedObject.name",
                str_at(obj, "/involvedObject/name").to_string(),
            ),
            (
                "involvedObject.uid",
                str_at(obj, "/involvedObject/uid").to_string(),
            ),
            (
                "involvedObject.apiVersion",
                str_at(obj, "/involvedObject/apiVersion").to_string(),
            ),
            (
                "involvedObject.resourceVersion",
                str_at(obj, "/involvedObject/resourceVersion").to_string(),
            ),
            (
                "involvedObject.fieldPath",
                str_at(obj, "/involvedObject/fieldPath").to_string(),
            ),
            ("reason", s(obj, "reason").to_string()),
            (
                "reportingComponent",
                s(obj, "reportingComponent").to_string(),
            ),
            ("source", source.to_string()),
            ("type", s(obj, "type").to_string()),
        ]
    }

    fn selectable_field_names(&self) -> &'static [&'static str] {
        &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]
    }

    /// Upstream's event table has no leading Name column: Name is the last,
    /// wide-only column (see the report to the lead: the store puts a Name
    /// column first for every resource).
    fn table_columns(&self) -> Vec<TableColumn> {
        event_columns()
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        event_cells(obj)
    }

    fn name_column_first(&self) -> bool {
        false
    }
}

// ---------------------------------------------------------------------------
// ComponentStatuses
// ---------------------------------------------------------------------------

pub(crate) struct ComponentStatusStrategy {
    info: ResourceInfo,
}

impl ComponentStatusStrategy {
    pub(crate) fn new() -> Self {
        let mut info = super::core_info(
            "ComponentStatus",
            "componentstatuses",
            "componentstatus",
            &["cs"],
            &[],
            false,
            &[],
            "componentstatuses",
        );
        info.read_only = true;
        ComponentStatusStrategy { info }
    }
}

impl Strategy for ComponentStatusStrategy {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Status", "string", "Status of the component conditions", 0),
            column(
                "Message",
                "string",
                "Message of the component conditions",
                0,
            ),
            column("Error", "string", "Error of the component conditions", 0),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let mut status = "Unknown";
        let mut message = "";
        let mut error = "";
        if let Some(c) = arr(obj, "conditions")
            .iter()
            .find(|c| s(c, "type") == "Healthy")
        {
            status = if s(c, "status") == "True" {
                "Healthy"
            } else {
                "Unhealthy"
            };
            message = s(c, "message");
            error = s(c, "error");
        }
        vec![json!(status), json!(message), json!(error)]
    }
}
