//! apps/v1: deployments, replicasets, statefulsets, daemonsets and
//! controllerrevisions. Defaults follow `pkg/apis/apps/v1/defaults.go`,
//! validation `pkg/apis/apps/validation`, tables the internal printers.

use crate::core::{container_cells, format_labels};
use crate::strategy::column;
use crate::util::{
    arr_at, ensure_obj, i64_at, immutable, is_set, obj_path_mut, ptr_str, set_default,
    without_meta_status,
};
use apimachinery::validation::{validate_label_selector, validate_labels};
use std::sync::Arc;

use apimachinery::FieldError;
use serde_json::{Map, Value};

use crate::other::common::{
    controller_ref, default_pod_template, format_label_selector, go_label_selector,
    int_or_percent_value, invalid_raw, nonnegative, not_more_than_100_percent, parse_selector, s,
    selector_immutable, template_labels_mismatch, validate_pod_template,
    validate_positive_int_or_percent, CONTAINERS_DESC, IMAGES_DESC,
};
use crate::strategy::{age_cell, age_column, ResourceInfo, Strategy, Subresource, TableColumn};

pub fn all() -> Vec<Arc<dyn Strategy>> {
    vec![
        Arc::new(ControllerRevisions),
        Arc::new(DaemonSets),
        Arc::new(Deployments),
        Arc::new(ReplicaSets),
        Arc::new(StatefulSets),
    ]
}

// ---------------------------------------------------------------------------
// Shared workload pieces
// ---------------------------------------------------------------------------

/// Template/selector checks shared by deployments and replicasets
/// (`ValidatePodTemplateSpecForReplicaSet` and the selector preamble).
fn validate_selector_and_template(obj: &Value, kind_word: &str, rs_like: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let sel = obj.pointer("/spec/selector").filter(|v| !v.is_null());
    match sel {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            errs.extend(validate_label_selector(sel, "spec.selector"));
            if selector_is_empty(sel) {
                errs.push(invalid_raw(
                    "spec.selector",
                    &go_label_selector(sel),
                    &format!("empty selector is invalid for {kind_word}"),
                ));
            }
        }
    }
    match parse_selector(sel) {
        Err(_) => {
            let repr = sel.map(go_label_selector).unwrap_or_else(|| "null".into());
            errs.push(invalid_raw(
                "spec.selector",
                &repr,
                if rs_like {
                    "invalid label selector"
                } else {
                    ""
                },
            ));
        }
        Ok(selector) => {
            let template = obj.pointer("/spec/template");
            if let Some(t) = template.filter(|t| t.is_object()) {
                if !selector.is_empty() {
                    errs.extend(template_labels_mismatch(
                        &selector,
                        t.pointer("/metadata/labels"),
                    ));
                }
            }
            errs.extend(validate_pod_template(template, "spec.template"));
            errs.extend(restart_always(obj, "ReplicaSet"));
        }
    }
    errs
}

fn selector_is_empty(sel: &Value) -> bool {
    let ml = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map_or(0, Map::len);
    let me = sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    ml + me == 0
}

/// Workload templates must restart Always and may not set activeDeadlineSeconds.
fn restart_always(obj: &Value, kind: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rp = ptr_str(obj, "/spec/template/spec/restartPolicy").unwrap_or("");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            rp,
            &["Always"],
        ));
    }
    if is_set(obj.pointer("/spec/template/spec/activeDeadlineSeconds")) {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    errs
}

fn status_changed(new: &Value, old: &Value) -> bool {
    new.get("status") != old.get("status")
}

/// Upstream's status checks on update of a replicated workload, run only
/// when the status changed: non-negative counters, counters not above
/// `status.replicas`, `availableReplicas` not above `readyReplicas` (named
/// `ready_name` in the message; `None` skips the check) and, with
/// `collision`, a `collisionCount` that does not go down.
fn validate_status_update(
    new: &Value,
    old: &Value,
    nonneg: &[&str],
    not_above_replicas: &[&str],
    ready_name: Option<&str>,
    collision: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !status_changed(new, old) {
        return errs;
    }
    for f in nonneg {
        errs.extend(nonnegative(
            new,
            &format!("/status/{f}"),
            &format!("status.{f}"),
        ));
    }
    let replicas = i64_at(new, "/status/replicas").unwrap_or(0);
    for f in not_above_replicas {
        if let Some(n) = i64_at(new, &format!("/status/{f}")) {
            if n > replicas {
                errs.push(FieldError::invalid(
                    format!("status.{f}"),
                    n,
                    "cannot be greater than status.replicas",
                ));
            }
        }
    }
    if let (Some(ready_name), Some(a), Some(r)) = (
        ready_name,
        i64_at(new, "/status/availableReplicas"),
        i64_at(new, "/status/readyReplicas"),
    ) {
        if a > r {
            errs.push(FieldError::invalid(
                "status.availableReplicas",
                a,
                format!("cannot be greater than {ready_name}"),
            ));
        }
    }
    if collision {
        errs.extend(collision_not_decremented(new, old));
    }
    errs
}

fn collision_not_decremented(new: &Value, old: &Value) -> Option<FieldError> {
    let o = i64_at(old, "/status/collisionCount")?;
    let n = i64_at(new, "/status/collisionCount");
    if n.is_none_or(|n| n < o) {
        return Some(FieldError::invalid(
            "status.collisionCount",
            n.unwrap_or(0),
            "cannot be decremented",
        ));
    }
    None
}

fn ready_of(obj: &Value) -> Value {
    s(format!(
        "{}/{}",
        i64_at(obj, "/status/readyReplicas").unwrap_or(0),
        i64_at(obj, "/spec/replicas").unwrap_or(0)
    ))
}

fn i(obj: &Value, p: &str) -> Value {
    Value::from(i64_at(obj, p).unwrap_or(0))
}

fn containers_and_images(obj: &Value) -> (Value, Value) {
    let (n, im) = container_cells(arr_at(obj, "/spec/template/spec/containers"));
    (s(n), s(im))
}

// ---------------------------------------------------------------------------
// Deployments
// ---------------------------------------------------------------------------

pub(crate) static DEPLOYMENTS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "Deployment",
    plural: "deployments",
    singular: "deployment",
    short_names: &["deploy"],
    categories: &["all"],
    namespaced: true,
    definition: "io.k8s.api.apps.v1.Deployment",
    subresources: &[Subresource::Status, Subresource::Scale],
    read_only: false,
    storage_segment: "deployments",
    storage_api_version: "apps/v1",
};

pub struct Deployments;

impl Strategy for Deployments {
    fn info(&self) -> &ResourceInfo {
        &DEPLOYMENTS
    }

    fn default(&self, obj: &mut Value) {
        let Some(spec) = ensure_obj(obj, "spec") else {
            return;
        };
        set_default(spec, "replicas", Value::from(1));
        set_default(spec, "revisionHistoryLimit", Value::from(10));
        set_default(spec, "progressDeadlineSeconds", Value::from(600));
        if let Some(strategy) = obj_path_mut(obj, &["spec", "strategy"]) {
            if strategy
                .get("type")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                strategy.insert("type".into(), s("RollingUpdate"));
            }
            if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                set_default(strategy, "rollingUpdate", Value::Object(Map::new()));
                if let Some(ru) = strategy
                    .get_mut("rollingUpdate")
                    .and_then(Value::as_object_mut)
                {
                    set_default(ru, "maxUnavailable", s("25%"));
                    set_default(ru, "maxSurge", s("25%"));
                }
            }
        }
        if let Some(t) = obj.pointer_mut("/spec/template") {
            default_pod_template(t);
        }
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        // Annotation changes bump the generation too (they are copied to the
        // replica sets); spec changes are the store's business.
        let annotations_changed =
            new.pointer("/metadata/annotations") != old.pointer("/metadata/annotations");
        if annotations_changed && without_meta_status(new) == without_meta_status(old) {
            if let Some(g) = i64_at(old, "/metadata/generation") {
                if let Some(meta) = ensure_obj(new, "metadata") {
                    meta.insert("generation".into(), Value::from(g + 1));
                }
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = nonnegative(obj, "/spec/replicas", "spec.replicas");
        errs.extend(validate_selector_and_template(obj, "deployment", true));
        errs.extend(validate_deployment_strategy(obj));
        errs.extend(nonnegative(
            obj,
            "/spec/minReadySeconds",
            "spec.minReadySeconds",
        ));
        errs.extend(nonnegative(
            obj,
            "/spec/revisionHistoryLimit",
            "spec.revisionHistoryLimit",
        ));
        if let Some(pds) = i64_at(obj, "/spec/progressDeadlineSeconds") {
            errs.extend(nonnegative(
                obj,
                "/spec/progressDeadlineSeconds",
                "spec.progressDeadlineSeconds",
            ));
            if pds <= i64_at(obj, "/spec/minReadySeconds").unwrap_or(0) {
                errs.push(FieldError::invalid(
                    "spec.progressDeadlineSeconds",
                    pds,
                    "must be greater than minReadySeconds",
                ));
            }
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        errs.extend(selector_immutable(new, old));
        errs.extend(validate_status_update(
            new,
            old,
            &[
                "observedGeneration",
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
                "unavailableReplicas",
                "collisionCount",
            ],
            &["updatedReplicas", "readyReplicas", "availableReplicas"],
            Some("readyReplicas"),
            true,
        ));
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Ready", "string", "Number of the pod with ready state", 0),
            column("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec.", 0),
            column("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.", 0),
            age_column(),
            column("Containers", "string", CONTAINERS_DESC, 1),
            column("Images", "string", IMAGES_DESC, 1),
            column("Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.", 1),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let (names, images) = containers_and_images(obj);
        let selector = match parse_selector(obj.pointer("/spec/selector")) {
            Ok(sel) => sel.to_string(),
            Err(_) => "<invalid>".to_string(),
        };
        vec![
            ready_of(obj),
            i(obj, "/status/updatedReplicas"),
            i(obj, "/status/availableReplicas"),
            age_cell(obj),
            names,
            images,
            s(selector),
        ]
    }
}

fn validate_deployment_strategy(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let strategy = obj
        .pointer("/spec/strategy")
        .cloned()
        .unwrap_or(Value::Null);
    let ru = strategy.get("rollingUpdate").filter(|v| !v.is_null());
    match strategy.get("type").and_then(Value::as_str).unwrap_or("") {
        "Recreate" => {
            if ru.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match ru {
            None => errs.push(FieldError::required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let mu = ru.get("maxUnavailable").cloned().unwrap_or(Value::from(0));
                let ms = ru.get("maxSurge").cloned().unwrap_or(Value::from(0));
                errs.extend(validate_positive_int_or_percent(
                    &mu,
                    "spec.strategy.rollingUpdate.maxUnavailable",
                ));
                errs.extend(validate_positive_int_or_percent(
                    &ms,
                    "spec.strategy.rollingUpdate.maxSurge",
                ));
                if int_or_percent_value(&mu) == 0 && int_or_percent_value(&ms) == 0 {
                    errs.push(FieldError::invalid(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        mu.clone(),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                errs.extend(not_more_than_100_percent(
                    &mu,
                    "spec.strategy.rollingUpdate.maxUnavailable",
                ));
            }
        },
        _ => errs.push(FieldError::not_supported(
            "spec.strategy",
            strategy.clone(),
            &["Recreate", "RollingUpdate"],
        )),
    }
    errs
}

// ---------------------------------------------------------------------------
// ReplicaSets
// ---------------------------------------------------------------------------

static REPLICASETS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "ReplicaSet",
    plural: "replicasets",
    singular: "replicaset",
    short_names: &["rs"],
    categories: &["all"],
    namespaced: true,
    definition: "io.k8s.api.apps.v1.ReplicaSet",
    subresources: &[Subresource::Status, Subresource::Scale],
    read_only: false,
    storage_segment: "replicasets",
    storage_api_version: "apps/v1",
};

pub struct ReplicaSets;

impl Strategy for ReplicaSets {
    fn info(&self) -> &ResourceInfo {
        &REPLICASETS
    }

    fn default(&self, obj: &mut Value) {
        let Some(spec) = ensure_obj(obj, "spec") else {
            return;
        };
        set_default(spec, "replicas", Value::from(1));
        if let Some(t) = obj.pointer_mut("/spec/template") {
            default_pod_template(t);
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = nonnegative(obj, "/spec/replicas", "spec.replicas");
        errs.extend(nonnegative(
            obj,
            "/spec/minReadySeconds",
            "spec.minReadySeconds",
        ));
        // Upstream's message really says "deployment" here.
        errs.extend(validate_selector_and_template(obj, "deployment", true));
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        errs.extend(selector_immutable(new, old));
        errs.extend(validate_status_update(
            new,
            old,
            &[
                "replicas",
                "fullyLabeledReplicas",
                "readyReplicas",
                "availableReplicas",
                "observedGeneration",
            ],
            &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"],
            Some("readyReplicas"),
            false,
        ));
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Desired", "integer", "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller", 0),
            column("Current", "integer", "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller", 0),
            column("Ready", "integer", "The number of ready replicas for this replica set.", 0),
            age_column(),
            column("Containers", "string", CONTAINERS_DESC, 1),
            column("Images", "string", IMAGES_DESC, 1),
            column("Selector", "string", "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", 1),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let (names, images) = containers_and_images(obj);
        vec![
            i(obj, "/spec/replicas"),
            i(obj, "/status/replicas"),
            i(obj, "/status/readyReplicas"),
            age_cell(obj),
            names,
            images,
            s(format_label_selector(obj.pointer("/spec/selector"))),
        ]
    }
}

// ---------------------------------------------------------------------------
// StatefulSets
// ---------------------------------------------------------------------------

static STATEFULSETS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "StatefulSet",
    plural: "statefulsets",
    singular: "statefulset",
    short_names: &["sts"],
    categories: &["all"],
    namespaced: true,
    definition: "io.k8s.api.apps.v1.StatefulSet",
    subresources: &[Subresource::Status, Subresource::Scale],
    read_only: false,
    storage_segment: "statefulsets",
    storage_api_version: "apps/v1",
};

pub struct StatefulSets;

impl Strategy for StatefulSets {
    fn info(&self) -> &ResourceInfo {
        &STATEFULSETS
    }

    fn default(&self, obj: &mut Value) {
        let Some(spec) = ensure_obj(obj, "spec") else {
            return;
        };
        if spec
            .get("podManagementPolicy")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            spec.insert("podManagementPolicy".into(), s("OrderedReady"));
        }
        set_default(spec, "replicas", Value::from(1));
        set_default(spec, "revisionHistoryLimit", Value::from(10));
        if let Some(us) = obj_path_mut(obj, &["spec", "updateStrategy"]) {
            if us
                .get("type")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                us.insert("type".into(), s("RollingUpdate"));
                set_default(us, "rollingUpdate", Value::Object(Map::new()));
            }
            if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                if let Some(ru) = us.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                    set_default(ru, "partition", Value::from(0));
                }
            }
        }
        if let Some(p) = obj_path_mut(obj, &["spec", "persistentVolumeClaimRetentionPolicy"]) {
            for k in ["whenDeleted", "whenScaled"] {
                if p.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                    p.insert(k.into(), s("Retain"));
                }
            }
        }
        if let Some(t) = obj.pointer_mut("/spec/template") {
            default_pod_template(t);
        }
        if let Some(vcts) = obj
            .pointer_mut("/spec/volumeClaimTemplates")
            .and_then(Value::as_array_mut)
        {
            for pvc in vcts.iter_mut() {
                if let Some(spec) = pvc.get_mut("spec") {
                    crate::core::default_pvc_spec(spec);
                }
                if let Some(st) = ensure_obj(pvc, "status") {
                    set_default(st, "phase", s("Pending"));
                }
            }
        }
    }

    /// `ValidateStatefulSetName`: pod hostnames derive from it.
    fn name_validator(&self) -> apimachinery::validation::NameValidator {
        apimachinery::validation::NameValidator::Label
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_statefulset_spec(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_statefulset_spec(new);
        let mutable = [
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
        ];
        let rest = |v: &Value| -> Map<String, Value> {
            v.get("spec")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| !mutable.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        if rest(new) != rest(old) {
            errs.push(FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
        errs.extend(validate_status_update(
            new,
            old,
            &[
                "replicas",
                "readyReplicas",
                "currentReplicas",
                "updatedReplicas",
                "availableReplicas",
                "observedGeneration",
                "collisionCount",
            ],
            &[
                "readyReplicas",
                "currentReplicas",
                "updatedReplicas",
                "availableReplicas",
            ],
            Some("status.readyReplicas"),
            true,
        ));
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Ready", "string", "Number of the pod with ready state", 0),
            age_column(),
            column("Containers", "string", CONTAINERS_DESC, 1),
            column("Images", "string", IMAGES_DESC, 1),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let (names, images) = containers_and_images(obj);
        vec![ready_of(obj), age_cell(obj), names, images]
    }
}

fn validate_statefulset_spec(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match ptr_str(obj, "/spec/podManagementPolicy").unwrap_or("") {
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let us = obj
        .pointer("/spec/updateStrategy")
        .cloned()
        .unwrap_or(Value::Null);
    let ru = us.get("rollingUpdate").filter(|v| !v.is_null());
    match us.get("type").and_then(Value::as_str).unwrap_or("") {
        "" => errs.push(FieldError::required("spec.updateStrategy", "")),
        "OnDelete" => {
            if let Some(ru) = ru {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    ru.clone(),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = ru {
                errs.extend(nonnegative(
                    ru,
                    "/partition",
                    "spec.updateStrategy.rollingUpdate.partition",
                ));
                if let Some(mu) = ru.get("maxUnavailable").filter(|v| !v.is_null()) {
                    let p = "spec.updateStrategy.rollingUpdate.maxUnavailable";
                    errs.extend(validate_positive_int_or_percent(mu, p));
                    if int_or_percent_value(mu) == 0 {
                        errs.push(FieldError::invalid(p, mu.clone(), "cannot be 0"));
                    }
                    errs.extend(not_more_than_100_percent(mu, p));
                }
            }
        }
        _ => errs.push(FieldError::invalid(
            "spec.updateStrategy",
            us.clone(),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    if let Some(p) = obj
        .pointer("/spec/persistentVolumeClaimRetentionPolicy")
        .filter(|v| !v.is_null())
    {
        for k in ["whenDeleted", "whenScaled"] {
            let v = p.get(k).and_then(Value::as_str).unwrap_or("");
            if v != "Retain" && v != "Delete" {
                errs.push(FieldError::not_supported(
                    format!("spec.persistentVolumeClaimRetentionPolicy.{k}"),
                    v,
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    errs.extend(nonnegative(obj, "/spec/replicas", "spec.replicas"));
    errs.extend(nonnegative(
        obj,
        "/spec/minReadySeconds",
        "spec.minReadySeconds",
    ));
    errs.extend(nonnegative(
        obj,
        "/spec/ordinals/start",
        "spec.ordinals.start",
    ));
    let sel = obj.pointer("/spec/selector").filter(|v| !v.is_null());
    match sel {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            errs.extend(validate_label_selector(sel, "spec.selector"));
            if selector_is_empty(sel) {
                errs.push(invalid_raw(
                    "spec.selector",
                    &go_label_selector(sel),
                    "empty selector is invalid for statefulset",
                ));
            }
        }
    }
    match parse_selector(sel) {
        Err(_) => {
            let repr = sel.map(go_label_selector).unwrap_or_else(|| "null".into());
            errs.push(invalid_raw("spec.selector", &repr, ""));
        }
        Ok(selector) => {
            let template = obj.pointer("/spec/template").filter(|t| t.is_object());
            match template {
                None => errs.push(FieldError::required("spec.template", "")),
                Some(t) => {
                    if !selector.is_empty() {
                        errs.extend(template_labels_mismatch(
                            &selector,
                            t.pointer("/metadata/labels"),
                        ));
                    }
                    errs.extend(validate_labels(
                        t.pointer("/metadata/labels"),
                        "spec.template.labels",
                    ));
                }
            }
        }
    }
    let rp = ptr_str(obj, "/spec/template/spec/restartPolicy").unwrap_or("");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            rp,
            &["Always"],
        ));
    }
    if is_set(obj.pointer("/spec/template/spec/activeDeadlineSeconds")) {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in StatefulSet is not Supported",
        ));
    }
    errs
}

// ---------------------------------------------------------------------------
// DaemonSets
// ---------------------------------------------------------------------------

static DAEMONSETS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "DaemonSet",
    plural: "daemonsets",
    singular: "daemonset",
    short_names: &["ds"],
    categories: &["all"],
    namespaced: true,
    definition: "io.k8s.api.apps.v1.DaemonSet",
    subresources: &[Subresource::Status],
    read_only: false,
    storage_segment: "daemonsets",
    storage_api_version: "apps/v1",
};

pub struct DaemonSets;

/// v1 carries the internal `spec.templateGeneration` in this annotation; the
/// server owns it: 1 on create, +1 whenever the pod template changes.
const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

fn set_template_generation(obj: &mut Value, g: i64) {
    if let Some(anns) = obj_path_mut(obj, &["metadata", "annotations"]) {
        anns.insert(TEMPLATE_GENERATION.into(), s(g.to_string()));
    }
}

impl Strategy for DaemonSets {
    fn info(&self) -> &ResourceInfo {
        &DAEMONSETS
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        set_template_generation(obj, 1);
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        let old_gen = old
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(TEMPLATE_GENERATION))
            .and_then(Value::as_str)
            .and_then(|g| g.parse::<i64>().ok())
            .unwrap_or(0);
        // Compare defaulted templates: the old one is stored defaulted.
        let mut new_template = new
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        default_pod_template(&mut new_template);
        let changed = Some(&new_template) != old.pointer("/spec/template");
        set_template_generation(new, if changed { old_gen + 1 } else { old_gen });
    }

    fn default(&self, obj: &mut Value) {
        let Some(spec) = ensure_obj(obj, "spec") else {
            return;
        };
        set_default(spec, "revisionHistoryLimit", Value::from(10));
        if let Some(us) = obj_path_mut(obj, &["spec", "updateStrategy"]) {
            if us
                .get("type")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                us.insert("type".into(), s("RollingUpdate"));
            }
            if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                set_default(us, "rollingUpdate", Value::Object(Map::new()));
                if let Some(ru) = us.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                    set_default(ru, "maxUnavailable", Value::from(1));
                    set_default(ru, "maxSurge", Value::from(0));
                }
            }
        }
        if let Some(t) = obj.pointer_mut("/spec/template") {
            default_pod_template(t);
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let sel = obj.pointer("/spec/selector").filter(|v| !v.is_null());
        errs.extend(validate_label_selector(
            sel.unwrap_or(&Value::Null),
            "spec.selector",
        ));
        if let Ok(selector) = parse_selector(sel) {
            errs.extend(template_labels_mismatch(
                &selector,
                obj.pointer("/spec/template/metadata/labels"),
            ));
        }
        if let Some(sel) = sel {
            if selector_is_empty(sel) {
                errs.push(invalid_raw(
                    "spec.selector",
                    &go_label_selector(sel),
                    "empty selector is invalid for daemonset",
                ));
            }
        }
        errs.extend(validate_pod_template(
            obj.pointer("/spec/template"),
            "spec.template",
        ));
        errs.extend(restart_always(obj, "DaemonSet"));
        errs.extend(nonnegative(
            obj,
            "/spec/minReadySeconds",
            "spec.minReadySeconds",
        ));
        errs.extend(nonnegative(
            obj,
            "/spec/templateGeneration",
            "spec.templateGeneration",
        ));
        errs.extend(validate_daemonset_update_strategy(obj));
        errs.extend(nonnegative(
            obj,
            "/spec/revisionHistoryLimit",
            "spec.revisionHistoryLimit",
        ));
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        errs.extend(selector_immutable(new, old));
        errs.extend(validate_status_update(
            new,
            old,
            &[
                "currentNumberScheduled",
                "numberMisscheduled",
                "desiredNumberScheduled",
                "numberReady",
                "observedGeneration",
                "updatedNumberScheduled",
                "numberAvailable",
                "numberUnavailable",
                "collisionCount",
            ],
            &[],
            None,
            true,
        ));
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Desired", "integer", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/", 0),
            column("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/", 0),
            column("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.", 0),
            column("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod", 0),
            column("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)", 0),
            column("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/", 0),
            age_column(),
            column("Containers", "string", CONTAINERS_DESC, 1),
            column("Images", "string", IMAGES_DESC, 1),
            column("Selector", "string", "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", 1),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let (names, images) = containers_and_images(obj);
        vec![
            i(obj, "/status/desiredNumberScheduled"),
            i(obj, "/status/currentNumberScheduled"),
            i(obj, "/status/numberReady"),
            i(obj, "/status/updatedNumberScheduled"),
            i(obj, "/status/numberAvailable"),
            s(format_labels(
                obj.pointer("/spec/template/spec/nodeSelector"),
            )),
            age_cell(obj),
            names,
            images,
            s(format_label_selector(obj.pointer("/spec/selector"))),
        ]
    }
}

fn validate_daemonset_update_strategy(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let us = obj
        .pointer("/spec/updateStrategy")
        .cloned()
        .unwrap_or(Value::Null);
    match us.get("type").and_then(Value::as_str).unwrap_or("") {
        "OnDelete" => {}
        "RollingUpdate" => match us.get("rollingUpdate").filter(|v| !v.is_null()) {
            None => errs.push(FieldError::required(
                "spec.updateStrategy.rollingUpdate",
                "",
            )),
            Some(ru) => {
                let p = "spec.updateStrategy.rollingUpdate";
                let mu = ru.get("maxUnavailable").cloned().unwrap_or(Value::from(0));
                let ms = ru.get("maxSurge").cloned().unwrap_or(Value::from(0));
                errs.extend(validate_positive_int_or_percent(
                    &mu,
                    &format!("{p}.maxUnavailable"),
                ));
                errs.extend(validate_positive_int_or_percent(
                    &ms,
                    &format!("{p}.maxSurge"),
                ));
                errs.extend(not_more_than_100_percent(
                    &mu,
                    &format!("{p}.maxUnavailable"),
                ));
                errs.extend(not_more_than_100_percent(&ms, &format!("{p}.maxSurge")));
                let has_unavailable = int_or_percent_value(&mu) != 0;
                let has_surge = int_or_percent_value(&ms) != 0;
                if has_unavailable && has_surge {
                    errs.push(FieldError::invalid(
                        format!("{p}.maxSurge"),
                        ms.clone(),
                        "may not be set when maxUnavailable is non-zero",
                    ));
                } else if !has_unavailable && !has_surge {
                    errs.push(FieldError::required(
                        format!("{p}.maxUnavailable"),
                        "cannot be 0 when maxSurge is 0",
                    ));
                }
            }
        },
        _ => errs.push(FieldError::not_supported(
            "spec.updateStrategy",
            us.clone(),
            &["RollingUpdate", "OnDelete"],
        )),
    }
    errs
}

// ---------------------------------------------------------------------------
// ControllerRevisions
// ---------------------------------------------------------------------------

static CONTROLLERREVISIONS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "ControllerRevision",
    plural: "controllerrevisions",
    singular: "controllerrevision",
    short_names: &[],
    categories: &[],
    namespaced: true,
    definition: "io.k8s.api.apps.v1.ControllerRevision",
    subresources: &[],
    read_only: false,
    storage_segment: "controllerrevisions",
    storage_api_version: "apps/v1",
};

pub struct ControllerRevisions;

impl Strategy for ControllerRevisions {
    fn info(&self) -> &ResourceInfo {
        &CONTROLLERREVISIONS
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if !is_set(obj.get("data")) {
            errs.push(FieldError::required("data", "data is mandatory"));
        }
        errs.extend(nonnegative(obj, "/revision", "revision"));
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        errs.extend(immutable(new.get("data"), old.get("data"), "data"));
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Controller", "string", "Controller of the object", 0),
            column(
                "Revision",
                "string",
                "Revision indicates the revision of the state represented by Data.",
                0,
            ),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let controller = match controller_ref(obj) {
            None => "<none>".to_string(),
            Some(r) => {
                let api_version = r.get("apiVersion").and_then(Value::as_str).unwrap_or("");
                let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
                let name = r.get("name").and_then(Value::as_str).unwrap_or("");
                let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                let gk = if group.is_empty() {
                    kind.to_string()
                } else {
                    format!("{kind}.{group}")
                };
                if gk.is_empty() {
                    name.to_string()
                } else {
                    format!("{}/{name}", gk.to_lowercase())
                }
            }
        };
        vec![s(controller), i(obj, "/revision"), age_cell(obj)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}
            }
        })
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn deployment_defaults_fill_upstream_values() {
        let mut d = deployment();
        Deployments.default(&mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let again = d.clone();
        Deployments.default(&mut d);
        assert_eq!(d, again, "defaulting is idempotent");
        assert!(
            Deployments.validate(&d).is_empty(),
            "{:?}",
            messages(&Deployments.validate(&d))
        );
    }

    #[test]
    fn deployment_selector_mismatch_uses_upstream_message() {
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
        Deployments.default(&mut d);
        let m = messages(&Deployments.validate(&d));
        assert!(m.contains(&"spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`".to_string()), "{m:?}");
    }

    #[test]
    fn deployment_requires_selector_and_nonnegative_replicas() {
        let mut d = deployment();
        d["spec"].as_object_mut().unwrap().remove("selector");
        d["spec"]["replicas"] = json!(-1);
        Deployments.default(&mut d);
        let m = messages(&Deployments.validate(&d));
        assert!(
            m.contains(
                &"spec.replicas: Invalid value: -1: must be greater than or equal to 0".to_string()
            ),
            "{m:?}"
        );
        assert!(
            m.contains(&"spec.selector: Required value".to_string()),
            "{m:?}"
        );
        assert!(m.contains(&"spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`".to_string()), "{m:?}");
    }

    #[test]
    fn deployment_selector_is_immutable() {
        let mut old = deployment();
        Deployments.default(&mut old);
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "x"}});
        new["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
        let m = messages(&Deployments.validate_update(&new, &old));
        assert_eq!(m, vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable".to_string()]);
    }

    #[test]
    fn deployment_rolling_update_both_zero_is_rejected() {
        let mut d = deployment();
        d["spec"]["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}});
        Deployments.default(&mut d);
        let m = messages(&Deployments.validate(&d));
        assert_eq!(
            m,
            vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"
                .to_string()]
        );
    }

    #[test]
    fn deployment_table_row_shows_ready_and_selector() {
        let mut d = deployment();
        Deployments.default(&mut d);
        d["status"] = json!({"readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1});
        let row = Deployments.table_row(&d);
        assert_eq!(row[0], "1/1");
        assert_eq!(row[1], 1);
        assert_eq!(row[4], "nginx");
        assert_eq!(row[5], "nginx:1.25");
        assert_eq!(row[6], "app=web");
        assert_eq!(row.len(), Deployments.table_columns().len());
    }

    #[test]
    fn statefulset_defaults_and_forbidden_updates() {
        let mut s = deployment();
        s["kind"] = json!("StatefulSet");
        StatefulSets.default(&mut s);
        assert_eq!(s["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            s["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            s["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert!(StatefulSets.validate(&s).is_empty());
        let mut new = s.clone();
        new["spec"]["serviceName"] = json!("other");
        let m = messages(&StatefulSets.validate_update(&new, &s));
        assert_eq!(m.len(), 1);
        assert!(
            m[0].starts_with("spec: Forbidden: updates to statefulset spec for fields other than")
        );
    }

    #[test]
    fn daemonset_defaults_and_table() {
        let mut d = deployment();
        DaemonSets.prepare_for_create(&mut d);
        DaemonSets.default(&mut d);
        assert_eq!(d["metadata"]["annotations"][TEMPLATE_GENERATION], "1");
        let mut same = d.clone();
        same["metadata"]["annotations"][TEMPLATE_GENERATION] = json!("7");
        DaemonSets.prepare_for_update(&mut same, &d);
        assert_eq!(same["metadata"]["annotations"][TEMPLATE_GENERATION], "1");
        let mut changed = d.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        DaemonSets.prepare_for_update(&mut changed, &d);
        assert_eq!(changed["metadata"]["annotations"][TEMPLATE_GENERATION], "2");
        assert_eq!(
            d["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert!(
            DaemonSets.validate(&d).is_empty(),
            "{:?}",
            messages(&DaemonSets.validate(&d))
        );
        let row = DaemonSets.table_row(&d);
        assert_eq!(row[5], "<none>");
        assert_eq!(row.len(), DaemonSets.table_columns().len());
    }

    #[test]
    fn replicaset_table_row() {
        let mut r = deployment();
        ReplicaSets.default(&mut r);
        r["status"] = json!({"replicas": 1, "readyReplicas": 0});
        assert_eq!(
            ReplicaSets.table_row(&r)[..3],
            [json!(1), json!(1), json!(0)]
        );
    }

    #[test]
    fn controllerrevision_names_its_controller() {
        let cr = json!({"metadata": {"name": "web-1", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true, "uid": "x"}]}, "revision": 2, "data": {}});
        let row = ControllerRevisions.table_row(&cr);
        assert_eq!(row[0], "statefulset.apps/web");
        assert_eq!(row[1], 2);
        assert!(ControllerRevisions.validate(&cr).is_empty());
    }
}
