//! coordination.k8s.io/v1 leases.

use crate::strategy::column;
use crate::util::{i64_at, ptr_str};
use std::sync::Arc;

use apimachinery::FieldError;
use serde_json::Value;

use super::common::s;
use crate::strategy::{age_cell, age_column, ResourceInfo, Strategy, TableColumn};

pub fn all() -> Vec<Arc<dyn Strategy>> {
    vec![Arc::new(Leases)]
}

static LEASES: ResourceInfo = ResourceInfo {
    group: "coordination.k8s.io",
    version: "v1",
    kind: "Lease",
    plural: "leases",
    singular: "lease",
    short_names: &[],
    categories: &[],
    namespaced: true,
    definition: "io.k8s.api.coordination.v1.Lease",
    subresources: &[],
    read_only: false,
    storage_segment: "leases",
    storage_api_version: "coordination.k8s.io/v1",
};

pub struct Leases;

impl Strategy for Leases {
    fn info(&self) -> &ResourceInfo {
        &LEASES
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Some(d) = i64_at(obj, "/spec/leaseDurationSeconds").filter(|d| *d <= 0) {
            errs.push(FieldError::invalid(
                "spec.leaseDurationSeconds",
                d,
                "must be greater than 0",
            ));
        }
        if let Some(t) = i64_at(obj, "/spec/leaseTransitions").filter(|t| *t < 0) {
            errs.push(FieldError::invalid(
                "spec.leaseTransitions",
                t,
                "must be greater than or equal to 0",
            ));
        }
        let strategy = ptr_str(obj, "/spec/strategy").unwrap_or("");
        if ptr_str(obj, "/spec/preferredHolder").is_some_and(|p| !p.is_empty())
            && strategy.is_empty()
        {
            errs.push(FieldError::forbidden(
                "spec.preferredHolder",
                "may only be specified if `strategy` is defined",
            ));
        }
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Holder", "string", "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.", 0),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        vec![
            s(ptr_str(obj, "/spec/holderIdentity").unwrap_or("")),
            age_cell(obj),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lease_row_shows_holder_and_duration_must_be_positive() {
        let l = json!({"metadata": {"name": "kube-scheduler"}, "spec": {"holderIdentity": "node-1_abc", "leaseDurationSeconds": 0}});
        assert_eq!(Leases.table_row(&l)[0], "node-1_abc");
        let errs: Vec<String> = Leases
            .validate(&l)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            vec!["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0".to_string()]
        );
    }
}
