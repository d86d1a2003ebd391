//! autoscaling horizontalpodautoscalers: v2 (the storage version) and v1,
//! which shares the `horizontalpodautoscalers` storage through the
//! conversion of `pkg/apis/autoscaling/v1/conversion.go`:
//!
//! * `spec.targetCPUUtilizationPercentage` <-> a Resource `cpu` metric with an
//!   `averageUtilization` target (v1 with neither gets the 80% default);
//! * other v2 metrics travel in the `autoscaling.alpha.kubernetes.io/metrics`
//!   annotation (v1 MetricSpec JSON), current metrics in `.../current-metrics`,
//!   conditions in `.../conditions`, `spec.behavior` in `.../behavior` (Go
//!   field names, as upstream marshals its internal type).
//!
//! Simplifications: quantities are carried as given (no canonicalisation),
//! and required-but-zero v1 quantity fields are written as `"0"`.

use crate::strategy::column;
use crate::util::{arr_at, as_i64, ensure_obj, i64_at, ptr_str, set_default};
use apimachinery::validation::{is_dns1123_label, is_valid_path_segment_name};
use std::sync::Arc;

use apimachinery::FieldError;
use serde_json::{json, Map, Value};

use super::common::{nonnegative, s};
use crate::strategy::{age_cell, age_column, ResourceInfo, Strategy, Subresource, TableColumn};

pub fn all() -> Vec<Arc<dyn Strategy>> {
    vec![
        Arc::new(HorizontalPodAutoscalersV2),
        Arc::new(HorizontalPodAutoscalersV1),
    ]
}

const METRICS_ANN: &str = "autoscaling.alpha.kubernetes.io/metrics";
const CURRENT_METRICS_ANN: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS_ANN: &str = "autoscaling.alpha.kubernetes.io/conditions";
const BEHAVIOR_ANN: &str = "autoscaling.alpha.kubernetes.io/behavior";
const ROUND_TRIP_ANNS: [&str; 6] = [
    METRICS_ANN,
    CURRENT_METRICS_ANN,
    CONDITIONS_ANN,
    BEHAVIOR_ANN,
    "autoscaling.alpha.kubernetes.io/scale-down-tolerance",
    "autoscaling.alpha.kubernetes.io/scale-up-tolerance",
];
const DEFAULT_CPU_UTILIZATION: i64 = 80;

static HPA_V2: ResourceInfo = ResourceInfo {
    group: "autoscaling",
    version: "v2",
    kind: "HorizontalPodAutoscaler",
    plural: "horizontalpodautoscalers",
    singular: "horizontalpodautoscaler",
    short_names: &["hpa"],
    categories: &["all"],
    namespaced: true,
    definition: "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
    subresources: &[Subresource::Status],
    read_only: false,
    storage_segment: "horizontalpodautoscalers",
    storage_api_version: "autoscaling/v2",
};

static HPA_V1: ResourceInfo = ResourceInfo {
    group: "autoscaling",
    version: "v1",
    kind: "HorizontalPodAutoscaler",
    plural: "horizontalpodautoscalers",
    singular: "horizontalpodautoscaler",
    short_names: &["hpa"],
    categories: &["all"],
    namespaced: true,
    definition: "io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler",
    subresources: &[Subresource::Status],
    read_only: false,
    storage_segment: "horizontalpodautoscalers",
    storage_api_version: "autoscaling/v2",
};

pub struct HorizontalPodAutoscalersV2;
pub struct HorizontalPodAutoscalersV1;

// ---------------------------------------------------------------------------
// Small JSON builders
// ---------------------------------------------------------------------------

/// Insert `v` under `k` unless it is absent/null.
fn put(m: &mut Map<String, Value>, k: &str, v: Option<&Value>) {
    if let Some(v) = v.filter(|v| !v.is_null()) {
        m.insert(k.to_string(), v.clone());
    }
}

/// A non-pointer Go quantity: written as "0" when unset.
fn put_qty(m: &mut Map<String, Value>, k: &str, v: Option<&Value>) {
    m.insert(
        k.to_string(),
        v.filter(|v| !v.is_null())
            .cloned()
            .unwrap_or_else(|| s("0")),
    );
}

fn at<'a>(v: &'a Value, p: &str) -> Option<&'a Value> {
    v.pointer(p).filter(|v| !v.is_null())
}

fn is_cpu_utilization(m: &Value) -> bool {
    ptr_str(m, "/type") == Some("Resource")
        && ptr_str(m, "/resource/name") == Some("cpu")
        && at(m, "/resource/target/averageUtilization").is_some()
}

// ---------------------------------------------------------------------------
// Metric specs and statuses
// ---------------------------------------------------------------------------

/// A v2 metric spec (`side` "target") or status (`side` "current") in v1's
/// shape, whose fields are named `<side>Value`, `<side>AverageValue`, ...
/// The status's resource and external quantities are non-pointers in v1
/// (written as "0" when unset) where the spec's are pointers.
fn metric_v2_to_v1(m: &Value, side: &str) -> Value {
    let status = side == "current";
    let put_status_qty = |x: &mut Map<String, Value>, k: &str, v: Option<&Value>| {
        if status {
            put_qty(x, k, v)
        } else {
            put(x, k, v)
        }
    };
    let key = |f: &str| format!("{side}{f}");
    let src = |f: &str| format!("/{side}/{f}");
    let mut out = Map::new();
    put(&mut out, "type", m.get("type"));
    if let Some(o) = at(m, "/object") {
        let mut x = Map::new();
        x.insert(
            "target".into(),
            o.get("describedObject")
                .cloned()
                .unwrap_or_else(|| json!({"kind": "", "name": ""})),
        );
        x.insert(
            "metricName".into(),
            s(ptr_str(o, "/metric/name").unwrap_or("")),
        );
        put_qty(&mut x, &key("Value"), at(o, &src("value")));
        put(&mut x, "selector", at(o, "/metric/selector"));
        put(&mut x, "averageValue", at(o, &src("averageValue")));
        out.insert("object".into(), Value::Object(x));
    }
    if let Some(p) = at(m, "/pods") {
        let mut x = Map::new();
        x.insert(
            "metricName".into(),
            s(ptr_str(p, "/metric/name").unwrap_or("")),
        );
        put_qty(&mut x, &key("AverageValue"), at(p, &src("averageValue")));
        put(&mut x, "selector", at(p, "/metric/selector"));
        out.insert("pods".into(), Value::Object(x));
    }
    for k in ["resource", "containerResource"] {
        if let Some(r) = m.get(k).filter(|v| !v.is_null()) {
            let mut x = Map::new();
            x.insert("name".into(), s(ptr_str(r, "/name").unwrap_or("")));
            put(
                &mut x,
                &key("AverageUtilization"),
                at(r, &src("averageUtilization")),
            );
            put_status_qty(&mut x, &key("AverageValue"), at(r, &src("averageValue")));
            if k == "containerResource" {
                x.insert(
                    "container".into(),
                    s(ptr_str(r, "/container").unwrap_or("")),
                );
            }
            out.insert(k.into(), Value::Object(x));
        }
    }
    if let Some(e) = at(m, "/external") {
        let mut x = Map::new();
        x.insert(
            "metricName".into(),
            s(ptr_str(e, "/metric/name").unwrap_or("")),
        );
        put(&mut x, "metricSelector", at(e, "/metric/selector"));
        put_status_qty(&mut x, &key("Value"), at(e, &src("value")));
        put(&mut x, &key("AverageValue"), at(e, &src("averageValue")));
        out.insert("external".into(), Value::Object(x));
    }
    Value::Object(out)
}

/// The status fields v1 and v2 share: observedGeneration, lastScaleTime and
/// the replica counts (non-pointers, 0 when unset).
fn status_counts(status: &Value) -> Map<String, Value> {
    let mut st = Map::new();
    put(
        &mut st,
        "observedGeneration",
        status.get("observedGeneration"),
    );
    put(&mut st, "lastScaleTime", status.get("lastScaleTime"));
    for k in ["currentReplicas", "desiredReplicas"] {
        st.insert(k.into(), status.get(k).cloned().unwrap_or(Value::from(0)));
    }
    st
}

fn metric_identifier(name: Option<&Value>, selector: Option<&Value>) -> Value {
    let mut id = Map::new();
    id.insert(
        "name".into(),
        name.filter(|v| !v.is_null())
            .cloned()
            .unwrap_or_else(|| s("")),
    );
    put(&mut id, "selector", selector);
    Value::Object(id)
}

fn metric_spec_v1_to_v2(m: &Value) -> Value {
    let mut out = Map::new();
    put(&mut out, "type", m.get("type"));
    if let Some(o) = at(m, "/object") {
        let mut target = Map::new();
        let avg = at(o, "/averageValue");
        target.insert(
            "type".into(),
            s(if avg.is_some() {
                "AverageValue"
            } else {
                "Value"
            }),
        );
        put_qty(&mut target, "value", at(o, "/targetValue"));
        put(&mut target, "averageValue", avg);
        out.insert(
            "object".into(),
            json!({
                "describedObject": o.get("target").cloned().unwrap_or_else(|| json!({"kind": "", "name": ""})),
                "target": Value::Object(target),
                "metric": metric_identifier(o.get("metricName"), o.get("selector")),
            }),
        );
    }
    if let Some(p) = at(m, "/pods") {
        let mut target = Map::new();
        target.insert("type".into(), s("AverageValue"));
        put_qty(&mut target, "averageValue", at(p, "/targetAverageValue"));
        out.insert(
            "pods".into(),
            json!({"metric": metric_identifier(p.get("metricName"), p.get("selector")), "target": Value::Object(target)}),
        );
    }
    for key in ["resource", "containerResource"] {
        if let Some(r) = m.get(key).filter(|v| !v.is_null()) {
            let util = at(r, "/targetAverageUtilization");
            let mut target = Map::new();
            target.insert(
                "type".into(),
                s(if util.is_some() {
                    "Utilization"
                } else {
                    "AverageValue"
                }),
            );
            put(&mut target, "averageUtilization", util);
            put(&mut target, "averageValue", at(r, "/targetAverageValue"));
            let mut x = Map::new();
            x.insert("name".into(), s(ptr_str(r, "/name").unwrap_or("")));
            if key == "containerResource" {
                x.insert(
                    "container".into(),
                    s(ptr_str(r, "/container").unwrap_or("")),
                );
            }
            x.insert("target".into(), Value::Object(target));
            out.insert(key.into(), Value::Object(x));
        }
    }
    if let Some(e) = at(m, "/external") {
        let value = at(e, "/targetValue");
        let mut target = Map::new();
        target.insert(
            "type".into(),
            s(if value.is_some() {
                "Value"
            } else {
                "AverageValue"
            }),
        );
        put(&mut target, "value", value);
        put(&mut target, "averageValue", at(e, "/targetAverageValue"));
        out.insert(
            "external".into(),
            json!({"metric": metric_identifier(e.get("metricName"), e.get("metricSelector")), "target": Value::Object(target)}),
        );
    }
    Value::Object(out)
}

fn metric_status_v1_to_v2(m: &Value) -> Value {
    let mut out = Map::new();
    put(&mut out, "type", m.get("type"));
    if let Some(o) = at(m, "/object") {
        let mut current = Map::new();
        put_qty(&mut current, "value", at(o, "/currentValue"));
        put(&mut current, "averageValue", at(o, "/averageValue"));
        out.insert(
            "object".into(),
            json!({
                "describedObject": o.get("target").cloned().unwrap_or_else(|| json!({"kind": "", "name": ""})),
                "current": Value::Object(current),
                "metric": metric_identifier(o.get("metricName"), o.get("selector")),
            }),
        );
    }
    if let Some(p) = at(m, "/pods") {
        let mut current = Map::new();
        put_qty(&mut current, "averageValue", at(p, "/currentAverageValue"));
        out.insert(
            "pods".into(),
            json!({"metric": metric_identifier(p.get("metricName"), p.get("selector")), "current": Value::Object(current)}),
        );
    }
    for key in ["resource", "containerResource"] {
        if let Some(r) = m.get(key).filter(|v| !v.is_null()) {
            let mut current = Map::new();
            put_qty(&mut current, "averageValue", at(r, "/currentAverageValue"));
            put(
                &mut current,
                "averageUtilization",
                at(r, "/currentAverageUtilization"),
            );
            let mut x = Map::new();
            x.insert("name".into(), s(ptr_str(r, "/name").unwrap_or("")));
            if key == "containerResource" {
                x.insert(
                    "container".into(),
                    s(ptr_str(r, "/container").unwrap_or("")),
                );
            }
            x.insert("current".into(), Value::Object(current));
            out.insert(key.into(), Value::Object(x));
        }
    }
    if let Some(e) = at(m, "/external") {
        let mut current = Map::new();
        put_qty(&mut current, "value", at(e, "/currentValue"));
        put(&mut current, "averageValue", at(e, "/currentAverageValue"));
        out.insert(
            "external".into(),
            json!({"metric": metric_identifier(e.get("metricName"), e.get("metricSelector")), "current": Value::Object(current)}),
        );
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------
// Behavior (annotation uses Go field names)
// ---------------------------------------------------------------------------

fn rules_to_go(r: Option<&Value>) -> Value {
    let Some(r) = r.filter(|v| v.is_object()) else {
        return Value::Null;
    };
    let policies: Vec<Value> = arr_at(r, "/policies")
        .iter()
        .map(|p| {
            json!({
                "Type": p.get("type").cloned().unwrap_or_else(|| s("")),
                "Value": p.get("value").cloned().unwrap_or(Value::from(0)),
                "PeriodSeconds": p.get("periodSeconds").cloned().unwrap_or(Value::from(0)),
            })
        })
        .collect();
    json!({
        "StabilizationWindowSeconds": r.get("stabilizationWindowSeconds").cloned().unwrap_or(Value::Null),
        "SelectPolicy": r.get("selectPolicy").cloned().unwrap_or(Value::Null),
        "Policies": if r.get("policies").is_some_and(Value::is_array) { Value::Array(policies) } else { Value::Null },
        "Tolerance": r.get("tolerance").cloned().unwrap_or(Value::Null),
    })
}

fn behavior_to_go(b: &Value) -> Value {
    json!({"ScaleUp": rules_to_go(b.get("scaleUp")), "ScaleDown": rules_to_go(b.get("scaleDown"))})
}

/// Field lookup as Go's `encoding/json` does: exact, then case-insensitive.
fn go_field<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    m.get(name)
        .or_else(|| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

fn rules_from_go(v: Option<&Value>) -> Option<Value> {
    let m = v?.as_object()?;
    let mut out = Map::new();
    put(
        &mut out,
        "stabilizationWindowSeconds",
        go_field(m, "StabilizationWindowSeconds"),
    );
    put(&mut out, "selectPolicy", go_field(m, "SelectPolicy"));
    if let Some(ps) = go_field(m, "Policies").and_then(Value::as_array) {
        let policies: Vec<Value> = ps
            .iter()
            .filter_map(Value::as_object)
            .map(|p| {
                json!({
                    "type": go_field(p, "Type").cloned().unwrap_or_else(|| s("")),
                    "value": go_field(p, "Value").cloned().unwrap_or(Value::from(0)),
                    "periodSeconds": go_field(p, "PeriodSeconds").cloned().unwrap_or(Value::from(0)),
                })
            })
            .collect();
        out.insert("policies".into(), Value::Array(policies));
    }
    put(&mut out, "tolerance", go_field(m, "Tolerance"));
    Some(Value::Object(out))
}

fn behavior_from_go(enc: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(enc).ok()?;
    let m = v.as_object()?;
    let mut out = Map::new();
    if let Some(up) = rules_from_go(go_field(m, "ScaleUp")) {
        out.insert("scaleUp".into(), up);
    }
    if let Some(down) = rules_from_go(go_field(m, "ScaleDown")) {
        out.insert("scaleDown".into(), down);
    }
    if out.is_empty() {
        None
    } else {
        Some(Value::Object(out))
    }
}

// ---------------------------------------------------------------------------
// Whole-object conversion
// ---------------------------------------------------------------------------

/// Metadata with the round-trip annotations removed (`annotations` dropped
/// when that leaves it empty).
fn metadata_without_round_trip(obj: &Value) -> (Map<String, Value>, Map<String, Value>) {
    let mut meta = obj
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let anns = meta
        .get("annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut kept = anns.clone();
    for k in ROUND_TRIP_ANNS {
        kept.remove(k);
    }
    if kept.is_empty() {
        meta.remove("annotations");
    } else {
        meta.insert("annotations".into(), Value::Object(kept));
    }
    (meta, anns)
}

fn set_annotation(meta: &mut Map<String, Value>, key: &str, val: String) {
    let slot = meta
        .entry("annotations".to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Some(m) = slot.as_object_mut() {
        m.insert(key.to_string(), s(val));
    }
}

/// autoscaling/v2 -> autoscaling/v1.
pub fn hpa_v2_to_v1(obj: &Value) -> Value {
    let (mut meta, _) = metadata_without_round_trip(obj);
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let status = obj.get("status").filter(|v| v.is_object());

    let mut out_spec = Map::new();
    put(&mut out_spec, "scaleTargetRef", spec.get("scaleTargetRef"));
    put(&mut out_spec, "minReplicas", spec.get("minReplicas"));
    put(&mut out_spec, "maxReplicas", spec.get("maxReplicas"));
    let metrics = arr_at(&spec, "/metrics");
    if let Some(cpu) = metrics.iter().find(|m| {
        ptr_str(m, "/type") == Some("Resource") && ptr_str(m, "/resource/name") == Some("cpu")
    }) {
        put(
            &mut out_spec,
            "targetCPUUtilizationPercentage",
            at(cpu, "/resource/target/averageUtilization"),
        );
    }
    let others: Vec<Value> = metrics
        .iter()
        .filter(|m| !is_cpu_utilization(m))
        .map(|m| metric_v2_to_v1(m, "target"))
        .collect();
    if !others.is_empty() {
        set_annotation(&mut meta, METRICS_ANN, Value::Array(others).to_string());
    }
    if let Some(b) = spec.get("behavior").filter(|v| v.is_object()) {
        set_annotation(&mut meta, BEHAVIOR_ANN, behavior_to_go(b).to_string());
    }

    let mut out = Map::new();
    out.insert("kind".into(), s("HorizontalPodAutoscaler"));
    out.insert("apiVersion".into(), s("autoscaling/v1"));
    if let Some(status) = status {
        let mut st = status_counts(status);
        let current = arr_at(status, "/currentMetrics");
        for m in current {
            if ptr_str(m, "/type") == Some("Resource")
                && ptr_str(m, "/resource/name") == Some("cpu")
            {
                put(
                    &mut st,
                    "currentCPUUtilizationPercentage",
                    at(m, "/resource/current/averageUtilization"),
                );
            }
        }
        if !current.is_empty() {
            let enc: Vec<Value> = current
                .iter()
                .map(|m| metric_v2_to_v1(m, "current"))
                .collect();
            set_annotation(
                &mut meta,
                CURRENT_METRICS_ANN,
                Value::Array(enc).to_string(),
            );
        }
        let conditions = arr_at(status, "/conditions");
        if !conditions.is_empty() {
            set_annotation(
                &mut meta,
                CONDITIONS_ANN,
                Value::Array(conditions.to_vec()).to_string(),
            );
        }
        out.insert("metadata".into(), Value::Object(meta));
        out.insert("spec".into(), Value::Object(out_spec));
        out.insert("status".into(), Value::Object(st));
    } else {
        out.insert("metadata".into(), Value::Object(meta));
        out.insert("spec".into(), Value::Object(out_spec));
    }
    Value::Object(out)
}

/// autoscaling/v1 -> autoscaling/v2 (with the explicit 80% CPU default when
/// no metric is given, as the v1 conversion applies).
pub fn hpa_v1_to_v2(obj: &Value) -> Value {
    let (meta, anns) = metadata_without_round_trip(obj);
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let status = obj.get("status").filter(|v| v.is_object());
    let ann = |k: &str| anns.get(k).and_then(Value::as_str);

    let mut out_spec = Map::new();
    put(&mut out_spec, "scaleTargetRef", spec.get("scaleTargetRef"));
    put(&mut out_spec, "minReplicas", spec.get("minReplicas"));
    put(&mut out_spec, "maxReplicas", spec.get("maxReplicas"));
    let cpu_metric = |util: &Value| json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": util}}});
    let mut metrics: Vec<Value> = Vec::new();
    if let Some(enc) = ann(METRICS_ANN) {
        if let Ok(Value::Array(others)) = serde_json::from_str::<Value>(enc) {
            metrics.extend(others.iter().map(metric_spec_v1_to_v2));
        }
    }
    if let Some(t) = at(&spec, "/targetCPUUtilizationPercentage") {
        metrics.push(cpu_metric(t));
    }
    if metrics.is_empty() {
        metrics.push(cpu_metric(&Value::from(DEFAULT_CPU_UTILIZATION)));
    }
    out_spec.insert("metrics".into(), Value::Array(metrics));
    if let Some(b) = ann(BEHAVIOR_ANN).and_then(behavior_from_go) {
        out_spec.insert("behavior".into(), b);
    }

    let mut out = Map::new();
    out.insert("kind".into(), s("HorizontalPodAutoscaler"));
    out.insert("apiVersion".into(), s("autoscaling/v2"));
    out.insert("metadata".into(), Value::Object(meta));
    out.insert("spec".into(), Value::Object(out_spec));
    if let Some(status) = status {
        let mut st = status_counts(status);
        let from_ann =
            ann(CURRENT_METRICS_ANN).and_then(|enc| serde_json::from_str::<Value>(enc).ok());
        if let Some(Value::Array(current)) = from_ann {
            st.insert(
                "currentMetrics".into(),
                Value::Array(current.iter().map(metric_status_v1_to_v2).collect()),
            );
        } else if let Some(u) = at(status, "/currentCPUUtilizationPercentage") {
            st.insert(
                "currentMetrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": u}}}]),
            );
        }
        if let Some(Ok(Value::Array(conds))) =
            ann(CONDITIONS_ANN).map(serde_json::from_str::<Value>)
        {
            st.insert("conditions".into(), Value::Array(conds));
        }
        out.insert("status".into(), Value::Object(st));
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------
// Defaults and validation (on the v2 form)
// ---------------------------------------------------------------------------

fn default_rules(rules: Option<&mut Value>, up: bool) -> Value {
    let mut defaults = if up {
        json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}]})
    } else {
        json!({"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]})
    };
    if let (Some(from), Some(to)) = (
        rules.and_then(|r| r.as_object_mut()),
        defaults.as_object_mut(),
    ) {
        for k in [
            "selectPolicy",
            "stabilizationWindowSeconds",
            "policies",
            "tolerance",
        ] {
            if let Some(v) = from.get(k).filter(|v| !v.is_null()) {
                to.insert(k.to_string(), v.clone());
            }
        }
    }
    defaults
}

fn default_v2(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    set_default(spec, "minReplicas", Value::from(1));
    if spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]),
        );
    }
    if let Some(b) = spec.get_mut("behavior").and_then(Value::as_object_mut) {
        let up = default_rules(b.get_mut("scaleUp"), true);
        let down = default_rules(b.get_mut("scaleDown"), false);
        b.insert("scaleUp".into(), up);
        b.insert("scaleDown".into(), down);
    }
}

fn cross_version_ref(r: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for f in ["kind", "name"] {
        let v = r
            .and_then(|r| r.get(f))
            .and_then(Value::as_str)
            .unwrap_or("");
        if v.is_empty() {
            errs.push(FieldError::required(format!("{path}.{f}"), ""));
        } else {
            for m in is_valid_path_segment_name(v) {
                errs.push(FieldError::invalid(format!("{path}.{f}"), v, m));
            }
        }
    }
    errs
}

fn quantity_positive(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64().is_some_and(|f| f > 0.0),
        Value::String(q) => {
            let t = q.trim();
            !t.starts_with('-') && t.chars().any(|c| c.is_ascii_digit() && c != '0')
        }
        _ => false,
    }
}

fn metric_target(t: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let t = t.cloned().unwrap_or(Value::Null);
    let ty = ptr_str(&t, "/type").unwrap_or("");
    if ty.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.type"),
            "must specify a metric target type",
        ));
    }
    if !matches!(ty, "Utilization" | "Value" | "AverageValue") {
        errs.push(FieldError::invalid(
            format!("{path}.type"),
            ty,
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    for f in ["value", "averageValue"] {
        if let Some(v) = at(&t, &format!("/{f}")) {
            if !quantity_positive(v) {
                errs.push(FieldError::invalid(
                    format!("{path}.{f}"),
                    v.clone(),
                    "must be positive",
                ));
            }
        }
    }
    if let Some(u) = i64_at(&t, "/averageUtilization").filter(|u| *u < 1) {
        errs.push(FieldError::invalid(
            format!("{path}.averageUtilization"),
            u,
            "must be greater than 0",
        ));
    }
    errs
}

fn metric_identifier_errs(m: &Value, path: &str) -> Vec<FieldError> {
    let name = ptr_str(m, "/metric/name").unwrap_or("");
    if name.is_empty() {
        return vec![FieldError::required(
            format!("{path}.metric.name"),
            "must specify a metric name",
        )];
    }
    is_valid_path_segment_name(name)
        .into_iter()
        .map(|e| FieldError::invalid(format!("{path}.metric.name"), name, e))
        .collect()
}

fn metric_spec_errs(m: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    const TYPES: [&str; 5] = [
        "ContainerResource",
        "External",
        "Object",
        "Pods",
        "Resource",
    ];
    let ty = ptr_str(m, "/type").unwrap_or("");
    if ty.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.type"),
            "must specify a metric source type",
        ));
    }
    if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(
            format!("{path}.type"),
            ty,
            &TYPES,
        ));
    }
    let present: Vec<&str> = [
        "object",
        "external",
        "pods",
        "resource",
        "containerResource",
    ]
    .into_iter()
    .filter(|k| at(m, &format!("/{k}")).is_some())
    .collect();
    if let Some(first) = present.first() {
        let src = m.get(*first).cloned().unwrap_or(Value::Null);
        let p = format!("{path}.{first}");
        match *first {
            "object" => {
                errs.extend(cross_version_ref(
                    src.get("describedObject"),
                    &format!("{p}.describedObject"),
                ));
                errs.extend(metric_identifier_errs(&src, &p));
                errs.extend(metric_target(src.get("target"), &format!("{p}.target")));
                if at(&src, "/target/value").is_none() && at(&src, "/target/averageValue").is_none()
                {
                    errs.push(FieldError::required(
                        format!("{p}.target.averageValue"),
                        "must set either a target value or averageValue",
                    ));
                }
            }
            "external" => {
                errs.extend(metric_identifier_errs(&src, &p));
                errs.extend(metric_target(src.get("target"), &format!("{p}.target")));
                let v = at(&src, "/target/value").is_some();
                let a = at(&src, "/target/averageValue").is_some();
                if !v && !a {
                    errs.push(FieldError::required(
                        format!("{p}.target.averageValue"),
                        "must set either a target value for metric or a per-pod target",
                    ));
                }
                if v && a {
                    errs.push(FieldError::forbidden(
                        format!("{p}.target.value"),
                        "may not set both a target value for metric and a per-pod target",
                    ));
                }
            }
            "pods" => {
                errs.extend(metric_identifier_errs(&src, &p));
                errs.extend(metric_target(src.get("target"), &format!("{p}.target")));
                if at(&src, "/target/averageValue").is_none() {
                    errs.push(FieldError::required(
                        format!("{p}.target.averageValue"),
                        "must specify a positive target averageValue",
                    ));
                }
            }
            _ => {
                let name = ptr_str(&src, "/name").unwrap_or("");
                if name.is_empty() {
                    errs.push(FieldError::required(
                        format!("{p}.name"),
                        "must specify a resource name",
                    ));
                }
                if *first == "containerResource" {
                    let c = ptr_str(&src, "/container").unwrap_or("");
                    if c.is_empty() {
                        errs.push(FieldError::required(
                            format!("{p}.container"),
                            "must specify a container",
                        ));
                    } else {
                        errs.extend(
                            is_dns1123_label(c)
                                .into_iter()
                                .map(|e| FieldError::invalid(format!("{p}.container"), c, e)),
                        );
                    }
                }
                errs.extend(metric_target(src.get("target"), &format!("{p}.target")));
                let u = at(&src, "/target/averageUtilization").is_some();
                let a = at(&src, "/target/averageValue").is_some();
                if !u && !a {
                    errs.push(FieldError::required(
                        format!("{p}.target.averageUtilization"),
                        "must set either a target raw value or a target utilization",
                    ));
                }
                if u && a {
                    errs.push(FieldError::forbidden(
                        format!("{p}.target.averageValue"),
                        "may not set both a target raw value and a target utilization",
                    ));
                }
            }
        }
    }
    let expected = match ty {
        "Object" => Some("object"),
        "Pods" => Some("pods"),
        "Resource" => Some("resource"),
        "External" => Some("external"),
        "ContainerResource" => Some("containerResource"),
        _ => None,
    };
    if let Some(e) = expected {
        if at(m, &format!("/{e}")).is_none() {
            errs.push(FieldError::required(
                format!("{path}.{e}"),
                "must populate information for the given metric source",
            ));
        }
    } else if !ty.is_empty() {
        errs.push(FieldError::not_supported(
            format!("{path}.type"),
            ty,
            &TYPES,
        ));
    }
    if present.len() != 1 {
        for k in present.iter().filter(|k| Some(**k) != expected) {
            errs.push(FieldError::forbidden(
                format!("{path}.{k}"),
                "must populate the given metric source only",
            ));
        }
    }
    errs
}

fn scaling_rules_errs(r: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(r) = r.filter(|v| v.is_object()) else {
        return errs;
    };
    if let Some(w) = i64_at(r, "/stabilizationWindowSeconds") {
        if w < 0 {
            errs.push(FieldError::invalid(
                format!("{path}.stabilizationWindowSeconds"),
                w,
                "must be greater than or equal to zero",
            ));
        } else if w > 3600 {
            errs.push(FieldError::invalid(
                format!("{path}.stabilizationWindowSeconds"),
                w,
                "must be less than or equal to 3600",
            ));
        }
    }
    if let Some(sp) = ptr_str(r, "/selectPolicy") {
        if !matches!(sp, "Max" | "Min" | "Disabled") {
            errs.push(FieldError::not_supported(
                format!("{path}.selectPolicy"),
                sp,
                &["Disabled", "Max", "Min"],
            ));
        }
    }
    let policies = arr_at(r, "/policies");
    if policies.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, p) in policies.iter().enumerate() {
        let pp = format!("{path}.policies[{i}]");
        let ty = ptr_str(p, "/type").unwrap_or("");
        if ty != "Pods" && ty != "Percent" {
            errs.push(FieldError::not_supported(
                format!("{pp}.type"),
                ty,
                &["Percent", "Pods"],
            ));
        }
        let v = i64_at(p, "/value").unwrap_or(0);
        if v <= 0 {
            errs.push(FieldError::invalid(
                format!("{pp}.value"),
                v,
                "must be greater than zero",
            ));
        }
        let ps = i64_at(p, "/periodSeconds").unwrap_or(0);
        if ps <= 0 {
            errs.push(FieldError::invalid(
                format!("{pp}.periodSeconds"),
                ps,
                "must be greater than zero",
            ));
        }
        if ps > 1800 {
            errs.push(FieldError::invalid(
                format!("{pp}.periodSeconds"),
                ps,
                "must be less than or equal to 1800",
            ));
        }
    }
    errs
}

/// `ValidateHorizontalPodAutoscaler` on the v2 form.
fn validate_v2(obj: &Value, min_lower_bound: i64) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let min = i64_at(obj, "/spec/minReplicas");
    let max = i64_at(obj, "/spec/maxReplicas").unwrap_or(0);
    if let Some(m) = min.filter(|m| *m < min_lower_bound) {
        errs.push(FieldError::invalid(
            "spec.minReplicas",
            m,
            format!("must be greater than or equal to {min_lower_bound}"),
        ));
    }
    if max < 1 {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            max,
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|m| max < m) {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            max,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    errs.extend(cross_version_ref(
        obj.pointer("/spec/scaleTargetRef"),
        "spec.scaleTargetRef",
    ));
    let metrics = arr_at(obj, "/spec/metrics");
    let mut has_object_or_external = false;
    for (i, m) in metrics.iter().enumerate() {
        errs.extend(metric_spec_errs(m, &format!("spec.metrics[{i}]")));
        has_object_or_external |= matches!(ptr_str(m, "/type"), Some("Object" | "External"));
    }
    if min == Some(0) && !has_object_or_external {
        errs.push(FieldError::forbidden(
            "spec.metrics",
            "must specify at least one Object or External metric to support scaling to zero replicas",
        ));
    }
    if let Some(b) = obj.pointer("/spec/behavior").filter(|v| v.is_object()) {
        errs.extend(scaling_rules_errs(
            b.get("scaleUp"),
            "spec.behavior.scaleUp",
        ));
        errs.extend(scaling_rules_errs(
            b.get("scaleDown"),
            "spec.behavior.scaleDown",
        ));
    }
    errs
}

fn validate_v2_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let lower = if i64_at(old, "/spec/minReplicas") == Some(0) {
        0
    } else {
        1
    };
    let mut errs = validate_v2(new, lower);
    if new.get("status") != old.get("status") {
        errs.extend(nonnegative(
            new,
            "/status/currentReplicas",
            "status.currentReplicas",
        ));
        errs.extend(nonnegative(
            new,
            "/status/desiredReplicas",
            "status.desiredReplicas",
        ));
    }
    errs
}

// ---------------------------------------------------------------------------
// Table
// ---------------------------------------------------------------------------

fn qty(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(q)) => q.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// `formatHPAMetrics` on the v2 form.
fn format_metrics(obj: &Value) -> String {
    let specs = arr_at(obj, "/spec/metrics");
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let statuses = arr_at(obj, "/status/currentMetrics");
    let mut list = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let st = statuses.get(i);
        let status_of = |k: &str| st.and_then(|s| at(s, &format!("/{k}")));
        let item = match ptr_str(spec, "/type").unwrap_or("") {
            "External" | "Object" => {
                let key = if ptr_str(spec, "/type") == Some("External") {
                    "external"
                } else {
                    "object"
                };
                if let Some(avg) = at(spec, &format!("/{key}/target/averageValue")) {
                    let cur = status_of(key)
                        .and_then(|s| at(s, "/current/averageValue"))
                        .map_or("<unknown>".into(), |v| qty(Some(v)));
                    format!("{cur}/{} (avg)", qty(Some(avg)))
                } else {
                    let cur =
                        status_of(key).map_or("<unknown>".into(), |s| qty(at(s, "/current/value")));
                    format!("{cur}/{}", qty(at(spec, &format!("/{key}/target/value"))))
                }
            }
            "Pods" => {
                let cur = status_of("pods")
                    .map_or("<unknown>".into(), |s| qty(at(s, "/current/averageValue")));
                format!("{cur}/{}", qty(at(spec, "/pods/target/averageValue")))
            }
            ty @ ("Resource" | "ContainerResource") => {
                let key = if ty == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let name = ptr_str(spec, &format!("/{key}/name")).unwrap_or("");
                if let Some(avg) = at(spec, &format!("/{key}/target/averageValue")) {
                    let cur = status_of(key)
                        .map_or("<unknown>".into(), |s| qty(at(s, "/current/averageValue")));
                    format!("{name}: {cur}/{}", qty(Some(avg)))
                } else {
                    let cur = status_of(key)
                        .and_then(|s| at(s, "/current/averageUtilization"))
                        .and_then(as_i64)
                        .map_or("<unknown>".into(), |u| format!("{u}%"));
                    let target = i64_at(spec, &format!("/{key}/target/averageUtilization"))
                        .map_or("<auto>".into(), |u| format!("{u}%"));
                    format!("{name}: {cur}/{target}")
                }
            }
            _ => "<unknown type>".to_string(),
        };
        list.push(item);
    }
    let count = list.len();
    if count > 2 {
        list.truncate(2);
        return format!("{} + {} more...", list.join(", "), count - 2);
    }
    list.join(", ")
}

fn hpa_columns() -> Vec<TableColumn> {
    vec![
        column("Reference", "string", "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count.", 0),
        column("Targets", "string", "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond.", 0),
        column("MinPods", "string", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available.", 0),
        column("MaxPods", "string", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas.", 0),
        column("Replicas", "string", "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.", 0),
        age_column(),
    ]
}

fn hpa_row(v2: &Value) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        ptr_str(v2, "/spec/scaleTargetRef/kind").unwrap_or(""),
        ptr_str(v2, "/spec/scaleTargetRef/name").unwrap_or("")
    );
    let min = i64_at(v2, "/spec/minReplicas").map_or("<unset>".to_string(), |m| m.to_string());
    vec![
        s(reference),
        s(format_metrics(v2)),
        s(min),
        Value::from(i64_at(v2, "/spec/maxReplicas").unwrap_or(0)),
        Value::from(i64_at(v2, "/status/currentReplicas").unwrap_or(0)),
        age_cell(v2),
    ]
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

impl Strategy for HorizontalPodAutoscalersV2 {
    fn info(&self) -> &ResourceInfo {
        &HPA_V2
    }

    fn default(&self, obj: &mut Value) {
        default_v2(obj);
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_v2(obj, 1)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        validate_v2_update(new, old)
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        hpa_columns()
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        hpa_row(obj)
    }
}

impl Strategy for HorizontalPodAutoscalersV1 {
    fn info(&self) -> &ResourceInfo {
        &HPA_V1
    }

    fn default(&self, obj: &mut Value) {
        if let Some(spec) = ensure_obj(obj, "spec") {
            set_default(spec, "minReplicas", Value::from(1));
        }
    }

    /// Validated in the v2 form, so errors carry upstream's internal paths
    /// (`spec.metrics[0].resource.target.averageUtilization`).
    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_v2(&hpa_v1_to_v2(obj), 1)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        validate_v2_update(&hpa_v1_to_v2(new), &hpa_v1_to_v2(old))
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        hpa_columns()
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        hpa_row(&hpa_v1_to_v2(obj))
    }

    fn to_storage(&self, obj: Value) -> Value {
        let mut v2 = hpa_v1_to_v2(&obj);
        default_v2(&mut v2);
        v2
    }

    fn from_storage(&self, obj: Value) -> Value {
        hpa_v2_to_v1(&obj)
    }
}

/// True when the v2 object carries only what v1 can express without
/// annotations (used by tests).
#[cfg(test)]
fn only_cpu(v2: &Value) -> bool {
    arr_at(v2, "/spec/metrics").iter().all(is_cpu_utilization)
        && v2.pointer("/spec/behavior").is_none_or(Value::is_null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2() -> Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "annotations": {"team": "a"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2, "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}}
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}}
            },
            "status": {"currentReplicas": 2, "desiredReplicas": 2,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 30, "averageValue": "100m"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"}]}
        })
    }

    #[test]
    fn hpa_v2_to_v1_and_back_round_trips() {
        let orig = v2();
        let v1 = hpa_v2_to_v1(&orig);
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 30);
        let anns = v1["metadata"]["annotations"].as_object().unwrap();
        assert_eq!(anns["team"], "a");
        let metrics: Value = serde_json::from_str(anns[METRICS_ANN].as_str().unwrap()).unwrap();
        assert_eq!(
            metrics,
            json!([{"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "1k"}}])
        );
        let behavior: Value = serde_json::from_str(anns[BEHAVIOR_ANN].as_str().unwrap()).unwrap();
        assert_eq!(behavior["ScaleDown"]["StabilizationWindowSeconds"], 60);
        assert_eq!(behavior["ScaleUp"], Value::Null);

        let back = hpa_v1_to_v2(&v1);
        assert_eq!(back["metadata"], orig["metadata"]);
        // Other metrics come first, the CPU metric last (upstream's order).
        assert_eq!(back["spec"]["metrics"][0], orig["spec"]["metrics"][1]);
        assert_eq!(back["spec"]["metrics"][1], orig["spec"]["metrics"][0]);
        assert_eq!(back["spec"]["behavior"], orig["spec"]["behavior"]);
        assert_eq!(
            back["status"]["currentMetrics"],
            orig["status"]["currentMetrics"]
        );
        assert_eq!(back["status"]["conditions"], orig["status"]["conditions"]);
    }

    #[test]
    fn hpa_v1_gets_the_default_cpu_target_in_storage() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 3}});
        let mut v1d = v1.clone();
        HorizontalPodAutoscalersV1.default(&mut v1d);
        assert!(HorizontalPodAutoscalersV1.validate(&v1d).is_empty());
        let stored = HorizontalPodAutoscalersV1.to_storage(v1d);
        assert!(only_cpu(&stored));
        assert_eq!(
            stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(stored["spec"]["minReplicas"], 1);
        let read = HorizontalPodAutoscalersV1.from_storage(stored.clone());
        assert_eq!(
            read["spec"],
            json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 80})
        );
        assert!(read["metadata"].get("annotations").is_none());
        assert_eq!(
            HorizontalPodAutoscalersV1.table_row(&read)[1],
            "cpu: <unknown>/80%"
        );
        assert_eq!(
            HorizontalPodAutoscalersV2.table_row(&stored)[..4],
            [
                json!("Deployment/web"),
                json!("cpu: <unknown>/80%"),
                json!("1"),
                json!(3)
            ]
        );
    }

    #[test]
    fn hpa_validation_messages() {
        let mut h = v2();
        h["spec"]["minReplicas"] = json!(5);
        h["spec"]["maxReplicas"] = json!(3);
        h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] = json!(0);
        let errs: Vec<String> = HorizontalPodAutoscalersV2
            .validate(&h)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            vec![
                "spec.maxReplicas: Invalid value: 3: must be greater than or equal to `minReplicas`".to_string(),
                "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn hpa_behavior_defaults() {
        let mut h = json!({"spec": {"behavior": {"scaleUp": {"stabilizationWindowSeconds": 10}}}});
        HorizontalPodAutoscalersV2.default(&mut h);
        assert_eq!(
            h["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"],
            10
        );
        assert_eq!(
            h["spec"]["behavior"]["scaleUp"]["policies"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert!(h["spec"]["behavior"]["scaleDown"]
            .get("stabilizationWindowSeconds")
            .is_none());
        assert_eq!(h["spec"]["minReplicas"], 1);
    }

    #[test]
    fn hpa_targets_column_formats_many_metrics() {
        let mut h = v2();
        h["spec"]["metrics"].as_array_mut().unwrap().push(json!({"type": "External", "external": {"metric": {"name": "q"}, "target": {"type": "Value", "value": "5"}}}));
        assert_eq!(format_metrics(&h), "cpu: 30%/50%, <unknown>/1k + 1 more...");
    }
}
