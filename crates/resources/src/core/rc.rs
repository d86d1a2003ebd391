//! ReplicationControllers.

use apimachinery::FieldError;
use serde_json::{json, Value};

use super::pod::{
    container_cells, default_pod_template_spec, format_labels, validate_pod_template_spec,
};
use crate::strategy::{
    age_cell, age_column, column, ResourceInfo, Strategy, Subresource, TableColumn,
};
use crate::util::*;

pub(crate) struct ReplicationControllerStrategy {
    info: ResourceInfo,
}

impl ReplicationControllerStrategy {
    pub(crate) fn new() -> Self {
        ReplicationControllerStrategy {
            info: super::core_info(
                "ReplicationController",
                "replicationcontrollers",
                "replicationcontroller",
                &["rc"],
                &["all"],
                true,
                &[Subresource::Status, Subresource::Scale],
                "controllers",
            ),
        }
    }
}

/// SetDefaults_ReplicationController: selector and labels from the
/// template's labels when empty, one replica, and the template's defaults.
fn default_rc(rc: &mut Value) {
    let tpl_labels = rc
        .pointer("/spec/template/metadata/labels")
        .filter(|v| v.is_object())
        .cloned();
    if let Some(labels) = tpl_labels {
        if let Some(spec) = rc.get_mut("spec").and_then(Value::as_object_mut) {
            if spec
                .get("selector")
                .and_then(Value::as_object)
                .is_none_or(|m| m.is_empty())
            {
                spec.insert("selector".into(), labels.clone());
            }
        }
        if let Some(meta) = ensure_obj(rc, "metadata") {
            if meta
                .get("labels")
                .and_then(Value::as_object)
                .is_none_or(|m| m.is_empty())
            {
                meta.insert("labels".into(), labels);
            }
        }
    }
    if let Some(spec) = rc.get_mut("spec") {
        default_ptr(spec, "replicas", json!(1));
        if let Some(t) = spec.get_mut("template") {
            default_pod_template_spec(t);
        }
    }
}

fn validate_rc_spec(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in ["minReadySeconds", "replicas"] {
        let v = spec.get(key).and_then(as_i64).unwrap_or(0);
        if v < 0 {
            errs.push(FieldError::invalid(
                format!("spec.{key}"),
                v,
                "must be greater than or equal to 0",
            ));
        }
    }
    let selector = spec
        .get("selector")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty());
    if selector.is_none() {
        errs.push(FieldError::required("spec.selector", ""));
    }
    // minReadySeconds/replicas were checked above in upstream's order; the
    // template comes last.
    let Some(tpl) = spec.get("template").filter(|t| !t.is_null()) else {
        errs.push(FieldError::required("spec.template", ""));
        return errs;
    };
    if let Some(sel) = selector {
        let labels = tpl.pointer("/metadata/labels").and_then(Value::as_object);
        let matches = sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
        if !matches {
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                tpl.pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(Value::Null),
                "`selector` does not match template `labels`",
            ));
        }
    }
    errs.extend(validate_pod_template_spec(tpl, "spec.template"));
    let rp = str_at(tpl, "/spec/restartPolicy");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            rp,
            &["Always"],
        ));
    }
    if tpl
        .pointer("/spec/activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicationController is not Supported",
        ));
    }
    errs
}

impl Strategy for ReplicationControllerStrategy {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn default(&self, obj: &mut Value) {
        default_rc(obj);
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = validate_meta_finalizers(obj);
        errs.extend(validate_rc_spec(obj.get("spec").unwrap_or(&Value::Null)));
        errs
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        vec![(
            "status.replicas",
            i64_at(obj, "/status/replicas").unwrap_or(0).to_string(),
        )]
    }

    fn selectable_field_names(&self) -> &'static [&'static str] {
        &["status.replicas"]
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Desired", "integer", "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller", 0),
            column("Current", "integer", "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller", 0),
            column("Ready", "integer", "The number of ready replicas for this replication controller.", 0),
            age_column(),
            column("Containers", "string", "Names of each container in the template.", 1),
            column("Images", "string", "Images referenced by each container in the template.", 1),
            column("Selector", "string", "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", 1),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let (names, images) = container_cells(arr_at(obj, "/spec/template/spec/containers"));
        vec![
            json!(i64_at(obj, "/spec/replicas").unwrap_or(0)),
            json!(i64_at(obj, "/status/replicas").unwrap_or(0)),
            json!(i64_at(obj, "/status/readyReplicas").unwrap_or(0)),
            age_cell(obj),
            json!(names),
            json!(images),
            json!(format_labels(obj.pointer("/spec/selector"))),
        ]
    }
}
