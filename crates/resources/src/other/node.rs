//! node.k8s.io/v1 runtimeclasses.

use crate::strategy::column;
use crate::util::{immutable, ptr_str};
use apimachinery::validation::is_dns1123_label;
use std::sync::Arc;

use apimachinery::FieldError;
use serde_json::Value;

use super::common::s;
use crate::strategy::{age_cell, age_column, ResourceInfo, Strategy, TableColumn};

pub fn all() -> Vec<Arc<dyn Strategy>> {
    vec![Arc::new(RuntimeClasses)]
}

static RUNTIMECLASSES: ResourceInfo = ResourceInfo {
    group: "node.k8s.io",
    version: "v1",
    kind: "RuntimeClass",
    plural: "runtimeclasses",
    singular: "runtimeclass",
    short_names: &[],
    categories: &[],
    namespaced: false,
    definition: "io.k8s.api.node.v1.RuntimeClass",
    subresources: &[],
    read_only: false,
    storage_segment: "runtimeclasses",
    storage_api_version: "node.k8s.io/v1",
};

pub struct RuntimeClasses;

fn validate_handler(obj: &Value) -> Vec<FieldError> {
    let handler = ptr_str(obj, "/handler").unwrap_or("");
    is_dns1123_label(handler)
        .into_iter()
        .map(|m| FieldError::invalid("handler", handler, m))
        .collect()
}

impl Strategy for RuntimeClasses {
    fn info(&self) -> &ResourceInfo {
        &RUNTIMECLASSES
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_handler(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_handler(new);
        errs.extend(immutable(new.get("handler"), old.get("handler"), "handler"));
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Handler", "string", "handler specifies the underlying runtime and configuration that the CRI implementation will use to handle pods of this class.", 0),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        vec![s(ptr_str(obj, "/handler").unwrap_or("")), age_cell(obj)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runtimeclass_handler_is_a_dns_label_and_immutable() {
        let rc = json!({"metadata": {"name": "gvisor"}, "handler": "runsc"});
        assert!(RuntimeClasses.validate(&rc).is_empty());
        assert_eq!(RuntimeClasses.table_row(&rc)[0], "runsc");
        let mut n = rc.clone();
        n["handler"] = json!("kata");
        assert_eq!(
            RuntimeClasses.validate_update(&n, &rc)[0].to_string(),
            "handler: Invalid value: \"kata\": field is immutable"
        );
    }
}
