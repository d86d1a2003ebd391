//! Subresources that are not plain status writes: pods/binding.

use apimachinery::errors::ApiError;
use apimachinery::{meta, FieldError};
use serde_json::{json, Value};

use crate::registry::context::RequestContext;
use crate::registry::store::Store;

/// pods/binding: set spec.nodeName once, and the PodScheduled condition.
pub async fn bind_pod(
    store: &Store,
    ctx: &RequestContext,
    ns: &str,
    name: &str,
    binding: &Value,
) -> Result<(), ApiError> {
    let target = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if target.is_empty() {
        return Err(ApiError::invalid(
            "Binding",
            "",
            name,
            &[FieldError::required("target.name", "")],
        ));
    }
    if binding
        .pointer("/target/kind")
        .and_then(Value::as_str)
        .is_some_and(|k| !k.is_empty() && k != "Node")
    {
        return Err(ApiError::invalid(
            "Binding",
            "",
            name,
            &[FieldError::not_supported(
                "target.kind",
                binding["target"]["kind"].clone(),
                &["Node", "<empty>"],
            )],
        ));
    }
    let gr = store.gr();
    let uid_pre = binding
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_string);
    store
        .guaranteed_update(ctx, ns, name, "status-binding", |old| {
            let old = old.ok_or_else(|| ApiError::not_found(&gr, name))?;
            if meta::deletion_timestamp(old).is_some() {
                return Err(ApiError::conflict(&gr, name, "pod is being deleted, cannot be assigned to a host"));
            }
            if let Some(u) = &uid_pre {
                if u != meta::uid(old) {
                    return Err(ApiError::conflict(&gr, name, "precondition UID mismatch"));
                }
            }
            let cur = old.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
            if !cur.is_empty() {
                return Err(ApiError::conflict(&gr, name, &format!("pod {name} is already assigned to node {cur:?}")));
            }
            let mut new = old.clone();
            new["spec"]["nodeName"] = json!(target);
            let mut conds: Vec<Value> = new.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
            conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
            conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": meta::now_rfc3339()}));
            if !new.get("status").is_some_and(Value::is_object) {
                new["status"] = json!({});
            }
            new["status"]["conditions"] = Value::Array(conds);
            Ok(new)
        })
        .await?;
    Ok(())
}
