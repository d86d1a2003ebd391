//! Creating the objects of a multi-document YAML manifest through the API,
//! as `kubectl create --validate=strict -f` does: the kind is resolved by
//! discovery, unknown fields are refused, objects that exist are kept.

use anyhow::{anyhow, Context, Result};
use kube::api::DynamicObject;
use kube::discovery::Scope;
use kube::{Api, ResourceExt};
use serde::Deserialize;

/// Create every object of `manifests` in order; returns their kinds.
pub async fn create_all(client: &kube::Client, manifests: &str) -> Result<Vec<String>> {
    let mut kinds = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(manifests).enumerate() {
        let v = serde_yaml::Value::deserialize(doc).context("parsing the manifests")?;
        if v.is_null() {
            continue;
        }
        let obj: DynamicObject =
            serde_yaml::from_value(v).with_context(|| format!("document {i}"))?;
        let tm = obj
            .types
            .clone()
            .ok_or_else(|| anyhow!("document {i} has no apiVersion/kind"))?;
        let gvk = kube::core::GroupVersionKind::try_from(&tm)
            .map_err(|e| anyhow!("document {i}: {e}"))?;
        let (ar, caps) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .with_context(|| format!("discovering {}/{}", tm.api_version, tm.kind))?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                obj.namespace().as_deref().unwrap_or("default"),
                &ar,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        let req = http::Request::post(format!("{}?fieldValidation=Strict", api.resource_url()))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&obj)?)?;
        match client.request::<serde_json::Value>(req).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(e).with_context(|| format!("creating {} {}", tm.kind, obj.name_any()))
            }
        }
        kinds.push(tm.kind.clone());
    }
    Ok(kinds)
}
