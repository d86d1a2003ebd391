//! The add-on manifest (hack/addons/local-path.yaml) and its per-cluster
//! configuration: `ferrokube create cluster` gives every node its own base
//! directory (its nodes share the host's filesystem) by replacing the
//! ConfigMap's `config.json` before creating the objects.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::config::{Config, DEFAULT_NODE_KEY};

/// The add-on's objects as shipped (every node not listed uses
/// /var/local-path-provisioner).
pub const MANIFEST: &str = include_str!("../../../hack/addons/local-path.yaml");

/// The namespace and name of the ConfigMap holding `config.json`.
pub const CONFIG_NAMESPACE: &str = "local-path-storage";
pub const CONFIG_NAME: &str = "local-path-config";

/// A `config.json` with one base directory per node (`nodes`: node name →
/// directory) and, when given, a directory for nodes not listed (without
/// one, claims on unlisted nodes fail to provision).
pub fn node_path_config<I, N, P>(nodes: I, default: Option<&str>) -> Result<String>
where
    I: IntoIterator<Item = (N, P)>,
    N: Into<String>,
    P: Into<String>,
{
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (n, p) in nodes {
        let n = n.into();
        if map.insert(n.clone(), p.into()).is_some() {
            bail!("node {n} is listed twice");
        }
    }
    let mut entries = Vec::new();
    if let Some(d) = default {
        entries.push(serde_json::json!({"node": DEFAULT_NODE_KEY, "paths": [d]}));
    }
    for (n, p) in map {
        entries.push(serde_json::json!({"node": n, "paths": [p]}));
    }
    let json = serde_json::to_string_pretty(&serde_json::json!({ "nodePathMap": entries }))?;
    Config::parse(&json).context("the generated configuration")?;
    Ok(json)
}

/// `manifest` (multi-document YAML) with the `config.json` of the
/// local-path-config ConfigMap replaced by `config_json`, re-serialized
/// (comments are dropped).
pub fn manifest_with_config(manifest: &str, config_json: &str) -> Result<String> {
    Config::parse(config_json)?;
    let mut out = String::new();
    let mut replaced = false;
    for doc in serde_yaml::Deserializer::from_str(manifest) {
        let mut v = serde_yaml::Value::deserialize(doc).context("parsing the manifest")?;
        if v.is_null() {
            continue;
        }
        let is_config = v["kind"].as_str() == Some("ConfigMap")
            && v["metadata"]["name"].as_str() == Some(CONFIG_NAME)
            && v["metadata"]["namespace"].as_str() == Some(CONFIG_NAMESPACE);
        if is_config {
            v["data"]["config.json"] = serde_yaml::Value::String(config_json.to_string());
            replaced = true;
        }
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&v)?);
    }
    if !replaced {
        bail!("the manifest has no ConfigMap {CONFIG_NAMESPACE}/{CONFIG_NAME}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_node_configuration_in_the_manifest() {
        let cfg = node_path_config(
            [
                ("c-worker", "/h/clusters/c/nodes/c-worker/local-path"),
                (
                    "c-control-plane",
                    "/h/clusters/c/nodes/c-control-plane/local-path",
                ),
            ],
            None,
        )
        .unwrap();
        let parsed = Config::parse(&cfg).unwrap();
        assert_eq!(
            parsed.base_path_for("c-worker", "pvc-1").unwrap(),
            "/h/clusters/c/nodes/c-worker/local-path"
        );
        assert!(parsed.base_path_for("other", "pvc-1").is_err());
        assert!(node_path_config([("a", "/x"), ("a", "/y")], None).is_err());
        assert!(node_path_config([("a", "relative")], None).is_err());

        let m = manifest_with_config(MANIFEST, &cfg).unwrap();
        let mut found = false;
        let mut kinds = 0;
        for doc in serde_yaml::Deserializer::from_str(&m) {
            let v = serde_yaml::Value::deserialize(doc).unwrap();
            kinds += 1;
            if v["kind"].as_str() == Some("StorageClass") {
                assert_eq!(
                    v["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"]
                        .as_str(),
                    Some("true")
                );
            }
            if v["kind"].as_str() == Some("ConfigMap") {
                assert_eq!(v["data"]["config.json"].as_str(), Some(cfg.as_str()));
                found = true;
            }
        }
        assert!(found);
        assert_eq!(kinds, 9);
        // The shipped default.
        let shipped = manifest_with_config(
            MANIFEST,
            &node_path_config(Vec::<(String, String)>::new(), Some("/d")).unwrap(),
        )
        .unwrap();
        assert!(shipped.contains("DEFAULT_PATH_FOR_NON_LISTED_NODES"));
        assert!(manifest_with_config("kind: Namespace\n", &cfg).is_err());
    }
}
