//! scheduling.k8s.io/v1 priorityclasses.

use crate::strategy::column;
use crate::util::{i64_at, immutable, ptr_bool, ptr_str, set_default};
use std::sync::Arc;

use apimachinery::FieldError;
use serde_json::Value;

use super::common::s;
use crate::strategy::{age_cell, age_column, ResourceInfo, Strategy, TableColumn};

pub fn all() -> Vec<Arc<dyn Strategy>> {
    vec![Arc::new(PriorityClasses)]
}

static PRIORITYCLASSES: ResourceInfo = ResourceInfo {
    group: "scheduling.k8s.io",
    version: "v1",
    kind: "PriorityClass",
    plural: "priorityclasses",
    singular: "priorityclass",
    short_names: &["pc"],
    categories: &[],
    namespaced: false,
    definition: "io.k8s.api.scheduling.v1.PriorityClass",
    subresources: &[],
    read_only: false,
    storage_segment: "priorityclasses",
    storage_api_version: "scheduling.k8s.io/v1",
};

/// The highest value a PriorityClass not named `system-*` may have.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;
/// Names starting with this are reserved for [`SYSTEM_CLASSES`].
pub const SYSTEM_PRIORITY_CLASS_PREFIX: &str = "system-";
/// The built-in PriorityClasses (name, value); neither is a global default.
pub const SYSTEM_CLASSES: [(&str, i64); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

pub struct PriorityClasses;

fn preemption_policy_errors(obj: &Value) -> Vec<FieldError> {
    match ptr_str(obj, "/preemptionPolicy") {
        Some(p) if p != "PreemptLowerPriority" && p != "Never" => {
            vec![FieldError::not_supported(
                "preemptionPolicy",
                p,
                &["PreemptLowerPriority", "Never"],
            )]
        }
        _ => Vec::new(),
    }
}

impl Strategy for PriorityClasses {
    fn info(&self) -> &ResourceInfo {
        &PRIORITYCLASSES
    }

    fn default(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            set_default(m, "preemptionPolicy", s("PreemptLowerPriority"));
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let name = ptr_str(obj, "/metadata/name").unwrap_or("");
        let value = i64_at(obj, "/value").unwrap_or(0);
        if name.starts_with(SYSTEM_PRIORITY_CLASS_PREFIX) {
            let global_default = ptr_bool(obj, "/globalDefault").unwrap_or(false);
            let err = match SYSTEM_CLASSES.iter().find(|(n, _)| *n == name) {
                None => Some(format!("{name} is not a known system priority class")),
                Some((_, v)) if *v != value => {
                    Some(format!("value of {name} PriorityClass must be {v}"))
                }
                Some(_) if global_default => Some(format!(
                    "globalDefault of {name} PriorityClass must be false"
                )),
                Some(_) => None,
            };
            if let Some(e) = err {
                errs.push(FieldError::forbidden(
                    "metadata.name",
                    format!("priority class names with '{SYSTEM_PRIORITY_CLASS_PREFIX}' prefix are reserved for system use only. error: {e}"),
                ));
            }
        } else if value > HIGHEST_USER_DEFINABLE_PRIORITY {
            errs.push(FieldError::forbidden(
                "value",
                format!("maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"),
            ));
        }
        errs.extend(preemption_policy_errors(obj));
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if i64_at(new, "/value").unwrap_or(0) != i64_at(old, "/value").unwrap_or(0) {
            errs.push(FieldError::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        errs.extend(immutable(
            new.get("preemptionPolicy"),
            old.get("preemptionPolicy"),
            "preemptionPolicy",
        ));
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Value", "integer", "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec.", 0),
            column("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority.", 0),
            age_column(),
            column("PreemptionPolicy", "string", "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.", 0),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        vec![
            Value::from(i64_at(obj, "/value").unwrap_or(0)),
            Value::Bool(ptr_bool(obj, "/globalDefault").unwrap_or(false)),
            age_cell(obj),
            s(ptr_str(obj, "/preemptionPolicy").unwrap_or("")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn priorityclass_value_is_immutable_and_defaults_preemption() {
        let mut pc = json!({"metadata": {"name": "high"}, "value": 1000});
        PriorityClasses.default(&mut pc);
        assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
        assert!(PriorityClasses.validate(&pc).is_empty());
        let mut n = pc.clone();
        n["value"] = json!(2000);
        assert_eq!(
            PriorityClasses.validate_update(&n, &pc)[0].to_string(),
            "value: Forbidden: may not be changed in an update."
        );
        assert_eq!(
            PriorityClasses.table_row(&pc)[..2],
            [json!(1000), json!(false)]
        );
        let sys = json!({"metadata": {"name": "system-foo"}, "value": 1});
        assert!(PriorityClasses.validate(&sys)[0]
            .to_string()
            .ends_with("error: system-foo is not a known system priority class"));
        let wrong = json!({"metadata": {"name": "system-node-critical"}, "value": 5});
        assert!(PriorityClasses.validate(&wrong)[0]
            .to_string()
            .ends_with("error: value of system-node-critical PriorityClass must be 2000001000"));
        let dflt = json!({"metadata": {"name": "system-cluster-critical"}, "value": 2_000_000_000, "globalDefault": true});
        assert!(PriorityClasses.validate(&dflt)[0].to_string().ends_with(
            "error: globalDefault of system-cluster-critical PriorityClass must be false"
        ));
        let ok = json!({"metadata": {"name": "system-cluster-critical"}, "value": 2_000_000_000});
        assert!(PriorityClasses.validate(&ok).is_empty());
        let big = json!({"metadata": {"name": "big"}, "value": 1_000_000_001});
        assert_eq!(
            PriorityClasses.validate(&big)[0].to_string(),
            "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"
        );
    }
}
