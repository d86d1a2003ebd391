//! The remaining built-in groups: coordination.k8s.io, discovery.k8s.io,
//! events.k8s.io, policy, autoscaling (v2 and v1 sharing storage),
//! networking.k8s.io, rbac.authorization.k8s.io, storage.k8s.io,
//! scheduling.k8s.io, node.k8s.io and certificates.k8s.io.

use crate::Strategy;
use std::sync::Arc;

pub mod autoscaling;
pub mod certificates;
pub(crate) mod common;
pub mod coordination;
pub mod discovery;
pub mod events;
pub mod networking;
pub mod node;
pub mod policy;
pub mod rbac;
pub mod scheduling;
pub mod storage;

/// Every resource of these groups, groups in upstream's discovery priority
/// order, resources of a group by name.
pub fn all() -> Vec<Arc<dyn Strategy>> {
    let mut v: Vec<Arc<dyn Strategy>> = Vec::new();
    v.extend(events::all());
    v.extend(autoscaling::all());
    v.extend(certificates::all());
    v.extend(networking::all());
    v.extend(policy::all());
    v.extend(rbac::all());
    v.extend(storage::all());
    v.extend(scheduling::all());
    v.extend(coordination::all());
    v.extend(node::all());
    v.extend(discovery::all());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mine() -> Vec<Arc<dyn Strategy>> {
        let mut v = crate::apps::all();
        v.extend(crate::batch::all());
        v.extend(all());
        v
    }

    #[test]
    fn every_row_matches_its_columns_and_odd_input_does_not_panic() {
        let odd = [
            json!({}),
            json!(null),
            json!([]),
            json!("x"),
            json!({"spec": 5, "status": "x", "metadata": []}),
            json!({"spec": {"template": 1, "selector": "x", "metrics": [1], "rules": [null]}, "subjects": [1], "endpoints": "x"}),
        ];
        for st in mine() {
            let cols = st.table_columns().len();
            for o in &odd {
                let mut d = o.clone();
                st.prepare_for_create(&mut d);
                st.default(&mut d);
                let _ = st.validate(&d);
                let _ = st.validate_update(&d, o);
                let _ = st.selectable_fields(&d);
                let _ = st.from_storage(st.to_storage(d.clone()));
                assert_eq!(
                    st.table_row(&d).len(),
                    cols,
                    "{} row/column mismatch",
                    st.info().plural
                );
            }
        }
    }

    #[test]
    fn shared_storage_is_declared_consistently() {
        let infos: Vec<_> = mine().iter().map(|s| s.info().clone()).collect();
        let hpas: Vec<_> = infos
            .iter()
            .filter(|i| i.plural == "horizontalpodautoscalers")
            .collect();
        assert_eq!(hpas.len(), 2);
        assert!(hpas
            .iter()
            .all(|i| i.storage_segment == "horizontalpodautoscalers"
                && i.storage_api_version == "autoscaling/v2"));
        let ev = infos
            .iter()
            .find(|i| i.group == "events.k8s.io")
            .map(|i| (i.storage_segment, i.storage_api_version));
        assert_eq!(ev, Some(("events", "v1")));
        let ing = infos
            .iter()
            .find(|i| i.plural == "ingresses")
            .map(|i| i.storage_segment);
        assert_eq!(ing, Some("ingress"));
        for i in &infos {
            assert!(i.definition.starts_with("io.k8s.api."), "{}", i.definition);
            assert!(i.definition.ends_with(i.kind), "{}", i.definition);
        }
    }
}
