//! Server-side printing: meta.k8s.io/v1 Table and PartialObjectMetadata.

use resources::Strategy;
use serde_json::{json, Map, Value};

/// includeObject query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

pub fn partial_metadata_list(items: &[Value], list_meta: Value) -> Value {
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "items": items.iter().map(partial_metadata).collect::<Vec<_>>(),
    })
}

/// The standard Name column definition.
pub fn name_column() -> Value {
    json!({
        "name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        "priority": 0
    })
}

fn column_defs(strategy: &dyn Strategy) -> Vec<Value> {
    let mut cols = if strategy.name_column_first() {
        vec![name_column()]
    } else {
        Vec::new()
    };
    for c in strategy.table_columns() {
        cols.push(json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}));
    }
    cols
}

/// One row for an object.
pub fn row(strategy: &dyn Strategy, obj: &Value, include: IncludeObject) -> Value {
    let mut cells = if strategy.name_column_first() {
        vec![strategy.name_cell(obj)]
    } else {
        Vec::new()
    };
    cells.extend(strategy.table_row(obj));
    let mut r = Map::new();
    r.insert("cells".into(), Value::Array(cells));
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            r.insert("object".into(), partial_metadata(obj));
        }
        IncludeObject::Object => {
            r.insert("object".into(), obj.clone());
        }
    }
    Value::Object(r)
}

/// A Table of `objs` with the given list metadata.
pub fn table(
    strategy: &dyn Strategy,
    objs: &[Value],
    list_meta: Value,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "rows": objs.iter().map(|o| row(strategy, o, include)).collect::<Vec<_>>(),
    });
    if with_columns {
        t["columnDefinitions"] = Value::Array(column_defs(strategy));
    } else {
        t["columnDefinitions"] = Value::Null;
    }
    t
}
