//! policy/v1 poddisruptionbudgets.

use crate::strategy::column;
use crate::util::{i64_at, is_set, ptr_str};
use apimachinery::validation::validate_label_selector;
use std::sync::Arc;

use apimachinery::FieldError;
use serde_json::Value;

use super::common::{
    int_or_string_text, nonnegative, not_more_than_100_percent, s, validate_positive_int_or_percent,
};
use crate::strategy::{age_cell, age_column, ResourceInfo, Strategy, Subresource, TableColumn};

pub fn all() -> Vec<Arc<dyn Strategy>> {
    vec![Arc::new(PodDisruptionBudgets)]
}

static PDBS: ResourceInfo = ResourceInfo {
    group: "policy",
    version: "v1",
    kind: "PodDisruptionBudget",
    plural: "poddisruptionbudgets",
    singular: "poddisruptionbudget",
    short_names: &["pdb"],
    categories: &[],
    namespaced: true,
    definition: "io.k8s.api.policy.v1.PodDisruptionBudget",
    subresources: &[Subresource::Status],
    read_only: false,
    storage_segment: "poddisruptionbudgets",
    storage_api_version: "policy/v1",
};

pub struct PodDisruptionBudgets;

fn validate_spec(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let min = obj.pointer("/spec/minAvailable").filter(|v| !v.is_null());
    let max = obj.pointer("/spec/maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
        errs.push(FieldError::invalid(
            "spec",
            spec,
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (v, p) in [(min, "spec.minAvailable"), (max, "spec.maxUnavailable")] {
        if let Some(v) = v {
            errs.extend(validate_positive_int_or_percent(v, p));
            errs.extend(not_more_than_100_percent(v, p));
        }
    }
    errs.extend(validate_label_selector(
        obj.pointer("/spec/selector").unwrap_or(&Value::Null),
        "spec.selector",
    ));
    if let Some(p) = ptr_str(obj, "/spec/unhealthyPodEvictionPolicy") {
        if p != "IfHealthyBudget" && p != "AlwaysAllow" {
            errs.push(FieldError::not_supported(
                "spec.unhealthyPodEvictionPolicy",
                p,
                &["AlwaysAllow", "IfHealthyBudget"],
            ));
        }
    }
    errs
}

impl Strategy for PodDisruptionBudgets {
    fn info(&self) -> &ResourceInfo {
        &PDBS
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_spec(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_spec(new);
        if new.get("status") != old.get("status") {
            for f in [
                "disruptionsAllowed",
                "currentHealthy",
                "desiredHealthy",
                "expectedPods",
            ] {
                errs.extend(nonnegative(
                    new,
                    &format!("/status/{f}"),
                    &format!("status.{f}"),
                ));
            }
            if is_set(new.pointer("/status/observedGeneration")) {
                errs.extend(nonnegative(
                    new,
                    "/status/observedGeneration",
                    "status.observedGeneration",
                ));
            }
        }
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column(
                "Min Available",
                "string",
                "The minimum number of pods that must be available.",
                0,
            ),
            column(
                "Max Unavailable",
                "string",
                "The maximum number of pods that may be unavailable.",
                0,
            ),
            column(
                "Allowed Disruptions",
                "integer",
                "Calculated number of pods that may be disrupted at this time.",
                0,
            ),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let text = |p: &str| match obj.pointer(p).filter(|v| !v.is_null()) {
            Some(v) => int_or_string_text(v),
            None => "N/A".to_string(),
        };
        vec![
            s(text("/spec/minAvailable")),
            s(text("/spec/maxUnavailable")),
            Value::from(i64_at(obj, "/status/disruptionsAllowed").unwrap_or(0)),
            age_cell(obj),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pdb_rejects_both_bounds_and_prints_them() {
        let p = json!({"metadata": {"name": "x"}, "spec": {"minAvailable": 1, "maxUnavailable": "50%", "selector": {"matchLabels": {"app": "x"}}}});
        let errs: Vec<String> = PodDisruptionBudgets
            .validate(&p)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("spec: Invalid value: ")
                && errs[0].ends_with("minAvailable and maxUnavailable cannot be both set")
        );
        let row = PodDisruptionBudgets.table_row(&p);
        assert_eq!(row[..3], [json!("1"), json!("50%"), json!(0)]);
        let only = json!({"spec": {"maxUnavailable": 1}});
        assert_eq!(PodDisruptionBudgets.table_row(&only)[0], "N/A");
    }
}
