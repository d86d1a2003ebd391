//! Definitions k8s-openapi does not generate: the `<Kind>List` types (its
//! `List<T>` is generic and has no schema) and the meta.k8s.io Table /
//! PartialObjectMetadata types the apiserver returns for `as=Table` requests.

use serde_json::{json, Map, Value};

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/definitions/{name}") })
}

fn with_description(mut v: Value, description: &str) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert("description".into(), Value::String(description.into()));
    }
    v
}

/// The `apiVersion` and `kind` property schemas of a kind definition (taken
/// from the kind itself so the wording matches the rest of the document).
fn type_meta(kind_def: Option<&Value>) -> (Value, Value) {
    let prop = |name: &str| {
        kind_def
            .and_then(|d| d.pointer(&format!("/properties/{name}")))
            .cloned()
            .unwrap_or_else(|| json!({ "type": "string" }))
    };
    (prop("apiVersion"), prop("kind"))
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!([{ "group": group, "kind": kind, "version": version }])
}

/// `io.k8s.api.core.v1.PodList` for the kind `io.k8s.api.core.v1.Pod`.
pub fn list_definition(
    kind_def_name: &str,
    kind_def: Option<&Value>,
    kind: &str,
    group: &str,
    version: &str,
    list_kind: &str,
) -> (String, Value) {
    let package = kind_def_name
        .rsplit_once('.')
        .map(|(p, _)| p)
        .unwrap_or(kind_def_name);
    let name = format!("{package}.{list_kind}");
    let (api_version, kind_prop) = type_meta(kind_def);
    let def = json!({
        "description": format!("{list_kind} is a list of {kind} objects."),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": api_version,
            "items": {
                "description": format!("Items is the list of {kind} objects."),
                "type": "array",
                "items": r(kind_def_name),
            },
            "kind": kind_prop,
            "metadata": with_description(r(&format!("{META}.ListMeta")), "Standard list metadata."),
        },
        "x-kubernetes-group-version-kind": gvk(group, version, list_kind),
    });
    (name, def)
}

/// Table, TableColumnDefinition, TableRow, TableRowCondition,
/// PartialObjectMetadata and PartialObjectMetadataList.
pub fn meta_definitions(status_def: Option<&Value>) -> Map<String, Value> {
    let (api_version, kind) = type_meta(status_def);
    let mut out = Map::new();
    out.insert(
        format!("{META}.Table"),
        json!({
            "description": "Table is a tabular representation of a set of API resources, returned when a client asks for the Table form of a list or get response.",
            "type": "object",
            "required": ["columnDefinitions", "rows"],
            "properties": {
                "apiVersion": api_version,
                "columnDefinitions": {
                    "description": "columnDefinitions describes each column of the rows.",
                    "type": "array",
                    "items": r(&format!("{META}.TableColumnDefinition")),
                },
                "kind": kind,
                "metadata": with_description(r(&format!("{META}.ListMeta")), "Standard list metadata."),
                "rows": {
                    "description": "rows holds one entry per returned object.",
                    "type": "array",
                    "items": r(&format!("{META}.TableRow")),
                },
            },
            "x-kubernetes-group-version-kind": [
                { "group": "meta.k8s.io", "kind": "Table", "version": "v1" },
                { "group": "meta.k8s.io", "kind": "Table", "version": "v1beta1" },
            ],
        }),
    );
    out.insert(
        format!("{META}.TableColumnDefinition"),
        json!({
            "description": "TableColumnDefinition describes one column of a Table.",
            "type": "object",
            "required": ["name", "type", "format", "description", "priority"],
            "properties": {
                "description": { "description": "description is a human readable explanation of the column.", "type": "string" },
                "format": { "description": "format is an optional OpenAPI format hint for the column, e.g. \"name\" for the name column.", "type": "string" },
                "name": { "description": "name is the column header.", "type": "string" },
                "priority": { "description": "priority orders columns by importance: 0 is shown by default, higher values only in wider views.", "type": "integer", "format": "int32" },
                "type": { "description": "type is an OpenAPI type name: string, integer, number, boolean or date.", "type": "string" },
            },
        }),
    );
    out.insert(
        format!("{META}.TableRow"),
        json!({
            "description": "TableRow is one row of a Table.",
            "type": "object",
            "required": ["cells"],
            "properties": {
                "cells": {
                    "description": "cells holds one value per column definition, in order; a value may be a string, number, boolean, object, array or null.",
                    "type": "array",
                    "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                },
                "conditions": {
                    "description": "conditions describe extra properties of the row.",
                    "type": "array",
                    "items": r(&format!("{META}.TableRowCondition")),
                },
                "object": with_description(
                    r("io.k8s.apimachinery.pkg.runtime.RawExtension"),
                    "object is the full object or its PartialObjectMetadata, depending on the includeObject option.",
                ),
            },
        }),
    );
    out.insert(
        format!("{META}.TableRowCondition"),
        json!({
            "description": "TableRowCondition is a condition of a Table row.",
            "type": "object",
            "required": ["type", "status"],
            "properties": {
                "message": { "description": "message is a human readable explanation of the condition.", "type": "string" },
                "reason": { "description": "reason is a machine readable reason for the condition.", "type": "string" },
                "status": { "description": "status is True, False or Unknown.", "type": "string" },
                "type": { "description": "type is the condition type, e.g. Completed.", "type": "string" },
            },
        }),
    );
    let (api_version, kind) = type_meta(status_def);
    out.insert(
        format!("{META}.PartialObjectMetadata"),
        json!({
            "description": "PartialObjectMetadata is an object reduced to its type and object metadata.",
            "type": "object",
            "properties": {
                "apiVersion": api_version,
                "kind": kind,
                "metadata": with_description(r(&format!("{META}.ObjectMeta")), "Standard object's metadata."),
            },
            "x-kubernetes-group-version-kind": [
                { "group": "meta.k8s.io", "kind": "PartialObjectMetadata", "version": "v1" },
                { "group": "meta.k8s.io", "kind": "PartialObjectMetadata", "version": "v1beta1" },
            ],
        }),
    );
    let (api_version, kind) = type_meta(status_def);
    out.insert(
        format!("{META}.PartialObjectMetadataList"),
        json!({
            "description": "PartialObjectMetadataList is a list of PartialObjectMetadata.",
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": api_version,
                "items": {
                    "description": "items is the list of objects.",
                    "type": "array",
                    "items": r(&format!("{META}.PartialObjectMetadata")),
                },
                "kind": kind,
                "metadata": with_description(r(&format!("{META}.ListMeta")), "Standard list metadata."),
            },
            "x-kubernetes-group-version-kind": [
                { "group": "meta.k8s.io", "kind": "PartialObjectMetadataList", "version": "v1" },
                { "group": "meta.k8s.io", "kind": "PartialObjectMetadataList", "version": "v1beta1" },
            ],
        }),
    );
    out
}
