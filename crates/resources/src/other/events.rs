//! events.k8s.io/v1 events. They share storage with core/v1 events (etcd
//! segment `events`, stored as `v1`); `to_storage`/`from_storage` convert
//! field by field as `pkg/apis/events/v1/conversion.go` does:
//!
//! | events.k8s.io/v1          | core/v1            |
//! |---------------------------|--------------------|
//! | regarding                 | involvedObject     |
//! | note                      | message            |
//! | reportingController       | reportingComponent |
//! | reportingInstance         | reportingInstance  |
//! | deprecatedSource          | source             |
//! | deprecatedFirstTimestamp  | firstTimestamp     |
//! | deprecatedLastTimestamp   | lastTimestamp      |
//! | deprecatedCount           | count              |
//! | eventTime, series, related, action, reason, type (same names) |
//!
//! Output follows Go's JSON encoding of each version: always-present
//! struct fields (`regarding`, `deprecatedSource`, timestamps as `null`) are
//! emitted, empty `omitempty` fields are not.

use crate::core::event_reporting_errors;
use crate::util::{i64_at, immutable, is_set, ptr_str, str_at};
use apimachinery::validation::{is_dns1123_subdomain, is_qualified_name};
use std::sync::Arc;

use apimachinery::FieldError;
use serde_json::{Map, Value};

use super::common::s;
use crate::strategy::{ResourceInfo, Strategy, TableColumn};

pub fn all() -> Vec<Arc<dyn Strategy>> {
    vec![Arc::new(Events)]
}

static EVENTS: ResourceInfo = ResourceInfo {
    group: "events.k8s.io",
    version: "v1",
    kind: "Event",
    plural: "events",
    singular: "event",
    short_names: &["ev"],
    categories: &[],
    namespaced: true,
    definition: "io.k8s.api.events.v1.Event",
    subresources: &[],
    read_only: false,
    storage_segment: "events",
    storage_api_version: "v1",
};

pub struct Events;

fn get<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    m.get(k).filter(|v| !v.is_null())
}

/// Copy `from[src]` to `out[dst]` when it is a non-empty string (omitempty).
fn copy_str(out: &mut Map<String, Value>, dst: &str, from: &Map<String, Value>, src: &str) {
    if let Some(v) = get(from, src)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        out.insert(dst.into(), s(v));
    }
}

/// Copy a pointer/struct field when present (omitempty pointers).
fn copy_opt(out: &mut Map<String, Value>, dst: &str, from: &Map<String, Value>, src: &str) {
    if let Some(v) = get(from, src) {
        out.insert(dst.into(), v.clone());
    }
}

/// A struct-valued field Go always emits (`{}` when empty).
fn copy_struct(out: &mut Map<String, Value>, dst: &str, from: &Map<String, Value>, src: &str) {
    let v = get(from, src)
        .filter(|v| v.is_object())
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    out.insert(dst.into(), v);
}

/// A `metav1.Time`/`MicroTime` Go always emits (`null` when zero).
fn copy_time(out: &mut Map<String, Value>, dst: &str, from: &Map<String, Value>, src: &str) {
    out.insert(dst.into(), get(from, src).cloned().unwrap_or(Value::Null));
}

fn copy_count(out: &mut Map<String, Value>, dst: &str, from: &Map<String, Value>, src: &str) {
    if let Some(n) = get(from, src).filter(|v| v.as_i64() != Some(0)) {
        out.insert(dst.into(), n.clone());
    }
}

/// events.k8s.io/v1 Event -> core/v1 Event.
pub fn events_to_core(ev: &Value) -> Value {
    let empty = Map::new();
    let m = ev.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    out.insert("apiVersion".into(), s("v1"));
    out.insert("kind".into(), s("Event"));
    copy_opt(&mut out, "metadata", m, "metadata");
    copy_struct(&mut out, "involvedObject", m, "regarding");
    copy_str(&mut out, "reason", m, "reason");
    copy_str(&mut out, "message", m, "note");
    copy_struct(&mut out, "source", m, "deprecatedSource");
    copy_time(&mut out, "firstTimestamp", m, "deprecatedFirstTimestamp");
    copy_time(&mut out, "lastTimestamp", m, "deprecatedLastTimestamp");
    copy_count(&mut out, "count", m, "deprecatedCount");
    copy_str(&mut out, "type", m, "type");
    copy_time(&mut out, "eventTime", m, "eventTime");
    copy_opt(&mut out, "series", m, "series");
    copy_str(&mut out, "action", m, "action");
    copy_opt(&mut out, "related", m, "related");
    out.insert(
        "reportingComponent".into(),
        s(get(m, "reportingController")
            .and_then(Value::as_str)
            .unwrap_or("")),
    );
    out.insert(
        "reportingInstance".into(),
        s(get(m, "reportingInstance")
            .and_then(Value::as_str)
            .unwrap_or("")),
    );
    Value::Object(out)
}

/// core/v1 Event -> events.k8s.io/v1 Event.
pub fn core_to_events(ev: &Value) -> Value {
    let empty = Map::new();
    let m = ev.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    out.insert("apiVersion".into(), s("events.k8s.io/v1"));
    out.insert("kind".into(), s("Event"));
    copy_opt(&mut out, "metadata", m, "metadata");
    copy_time(&mut out, "eventTime", m, "eventTime");
    copy_opt(&mut out, "series", m, "series");
    copy_str(&mut out, "reportingController", m, "reportingComponent");
    copy_str(&mut out, "reportingInstance", m, "reportingInstance");
    copy_str(&mut out, "action", m, "action");
    copy_str(&mut out, "reason", m, "reason");
    copy_struct(&mut out, "regarding", m, "involvedObject");
    copy_opt(&mut out, "related", m, "related");
    copy_str(&mut out, "note", m, "message");
    copy_str(&mut out, "type", m, "type");
    copy_struct(&mut out, "deprecatedSource", m, "source");
    copy_time(&mut out, "deprecatedFirstTimestamp", m, "firstTimestamp");
    copy_time(&mut out, "deprecatedLastTimestamp", m, "lastTimestamp");
    copy_count(&mut out, "deprecatedCount", m, "count");
    Value::Object(out)
}

/// `legacyValidateEvent` on the core form.
fn legacy_validate(core: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ns = ptr_str(core, "/metadata/namespace").unwrap_or("");
    let involved_ns = ptr_str(core, "/involvedObject/namespace").unwrap_or("");
    let mismatch = || {
        FieldError::invalid(
            "involvedObject.namespace",
            involved_ns,
            "does not match event.namespace",
        )
    };
    if !is_set(core.get("eventTime")) {
        if involved_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                errs.push(mismatch());
            }
        } else if ns != involved_ns {
            errs.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(mismatch());
        }
        let rc = ptr_str(core, "/reportingComponent").unwrap_or("");
        if rc.is_empty() {
            errs.push(FieldError::required("reportingController", ""));
        }
        for m in is_qualified_name(rc) {
            errs.push(FieldError::invalid("reportingController", rc, m));
        }
        errs.extend(event_reporting_errors(
            str_at(core, "/reportingInstance"),
            str_at(core, "/action"),
            str_at(core, "/reason"),
            str_at(core, "/message"),
        ));
    }
    for m in is_dns1123_subdomain(ns) {
        errs.push(FieldError::invalid("namespace", ns, m));
    }
    errs
}

fn validate_series(core: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(series) = core.get("series").filter(|v| !v.is_null()) {
        if i64_at(series, "/count").unwrap_or(0) < 2 {
            errs.push(FieldError::invalid(
                "series.count",
                "",
                "should be at least 2",
            ));
        }
        if !is_set(series.get("lastObservedTime")) {
            errs.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
    errs
}

impl Strategy for Events {
    fn info(&self) -> &ResourceInfo {
        &EVENTS
    }

    /// `ValidateEventCreate` for events.k8s.io/v1: the legacy checks plus the
    /// strict ones. Paths are the core field names, as upstream reports them.
    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let core = events_to_core(obj);
        let mut errs = legacy_validate(&core);
        errs.extend(validate_series(&core));
        if !is_set(core.get("eventTime")) {
            errs.push(FieldError::required("eventTime", ""));
        }
        let t = ptr_str(&core, "/type").unwrap_or("");
        if t != "Normal" && t != "Warning" {
            errs.push(FieldError::invalid(
                "type",
                "",
                format!("has invalid value: {t}"),
            ));
        }
        if is_set(core.get("firstTimestamp")) {
            errs.push(FieldError::invalid(
                "firstTimestamp",
                "",
                "needs to be unset",
            ));
        }
        if is_set(core.get("lastTimestamp")) {
            errs.push(FieldError::invalid(
                "lastTimestamp",
                "",
                "needs to be unset",
            ));
        }
        if i64_at(&core, "/count").unwrap_or(0) != 0 {
            errs.push(FieldError::invalid("count", "", "needs to be unset"));
        }
        if !ptr_str(&core, "/source/component").unwrap_or("").is_empty()
            || !ptr_str(&core, "/source/host").unwrap_or("").is_empty()
        {
            errs.push(FieldError::invalid("source", "", "needs to be unset"));
        }
        errs
    }

    /// `ValidateEventUpdate` for events.k8s.io/v1.
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let n = events_to_core(new);
        let o = events_to_core(old);
        let mut errs = legacy_validate(&n);
        if n.get("series") != o.get("series") {
            errs.extend(validate_series(&n));
        }
        for (f, path) in [
            ("involvedObject", "involvedObject"),
            ("reason", "reason"),
            ("message", "message"),
            ("source", "source"),
            ("firstTimestamp", "firstTimestamp"),
            ("lastTimestamp", "lastTimestamp"),
            ("count", "count"),
            ("reason", "reason"),
            ("type", "type"),
            ("eventTime", "eventTime"),
            ("action", "action"),
            ("related", "related"),
            ("reportingComponent", "reportingController"),
            ("reportingInstance", "reportingInstance"),
        ] {
            errs.extend(immutable(n.get(f), o.get(f), path));
        }
        errs
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let g = |p: &str| ptr_str(obj, p).unwrap_or("").to_string();
        let reporting = g("/reportingController");
        let source = match ptr_str(obj, "/deprecatedSource/component").filter(|c| !c.is_empty()) {
            Some(c) => c.to_string(),
            None => reporting.clone(),
        };
        vec![
            ("reason", g("/reason")),
            ("regarding.kind", g("/regarding/kind")),
            ("regarding.namespace", g("/regarding/namespace")),
            ("regarding.name", g("/regarding/name")),
            ("regarding.uid", g("/regarding/uid")),
            ("regarding.apiVersion", g("/regarding/apiVersion")),
            ("regarding.resourceVersion", g("/regarding/resourceVersion")),
            ("regarding.fieldPath", g("/regarding/fieldPath")),
            ("reportingController", reporting),
            ("source", source),
            ("type", g("/type")),
        ]
    }

    fn selectable_field_names(&self) -> &'static [&'static str] {
        &[
            "reason",
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reportingController",
            "source",
            "type",
        ]
    }

    /// The same printer as core/v1 events (Name last, wide-only).
    fn table_columns(&self) -> Vec<TableColumn> {
        crate::core::event_columns()
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        crate::core::event_cells(&events_to_core(obj))
    }

    fn name_column_first(&self) -> bool {
        false
    }

    fn to_storage(&self, obj: Value) -> Value {
        events_to_core(&obj)
    }

    fn from_storage(&self, obj: Value) -> Value {
        core_to_events(&obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn new_event() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.17a", "namespace": "default"},
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2024-01-01T00:01:00.000000Z"},
            "reportingController": "example.com/ctl",
            "reportingInstance": "ctl-1",
            "action": "Scale",
            "reason": "Scaled",
            "regarding": {"kind": "Deployment", "namespace": "default", "name": "web", "apiVersion": "apps/v1"},
            "related": {"kind": "Pod", "name": "web-1"},
            "note": "scaled up",
            "type": "Normal",
            "deprecatedSource": {},
            "deprecatedFirstTimestamp": null,
            "deprecatedLastTimestamp": null
        })
    }

    #[test]
    fn event_conversion_round_trips() {
        let ev = new_event();
        let core = events_to_core(&ev);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["message"], "scaled up");
        assert_eq!(core["reportingComponent"], "example.com/ctl");
        assert_eq!(core["reportingInstance"], "ctl-1");
        assert_eq!(core["firstTimestamp"], Value::Null);
        assert_eq!(core["source"], json!({}));
        assert!(core.get("count").is_none());
        assert_eq!(core_to_events(&core), ev);
        assert!(
            Events.validate(&ev).is_empty(),
            "{:?}",
            Events.validate(&ev)
        );
    }

    #[test]
    fn core_event_reads_with_deprecated_fields() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "x", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "Pulled", "message": "pulled image",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:10Z",
            "count": 3, "type": "Normal", "eventTime": null, "reportingComponent": "", "reportingInstance": ""
        });
        let ev = core_to_events(&core);
        assert_eq!(ev["deprecatedCount"], 3);
        assert_eq!(ev["deprecatedSource"]["component"], "kubelet");
        assert_eq!(ev["deprecatedFirstTimestamp"], "2024-01-01T00:00:00Z");
        assert_eq!(ev["regarding"]["kind"], "Pod");
        assert!(ev.get("reportingController").is_none());
        assert_eq!(events_to_core(&ev), core);
        let row = Events.table_row(&ev);
        assert_eq!(row[3], "pod/p");
        assert_eq!(row[5], "kubelet, node-1");
        assert_eq!(row[8], 3);
        let f = Events.selectable_fields(&ev);
        assert!(f.contains(&("source", "kubelet".to_string())));
        assert!(f.contains(&("regarding.name", "p".to_string())));
    }

    #[test]
    fn strict_validation_rejects_deprecated_fields() {
        let mut ev = new_event();
        ev["deprecatedCount"] = json!(2);
        ev.as_object_mut().unwrap().remove("eventTime");
        let errs: Vec<String> = Events
            .validate(&ev)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            errs.contains(&"eventTime: Required value".to_string()),
            "{errs:?}"
        );
        assert!(
            errs.contains(&"count: Invalid value: \"\": needs to be unset".to_string()),
            "{errs:?}"
        );
    }
}
