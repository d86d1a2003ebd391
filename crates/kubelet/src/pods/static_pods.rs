//! Static pods from --pod-manifest-path (staticPodPath), and their mirror
//! pods in the API.

use std::collections::HashMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::spec::{
    self, CONFIG_HASH_ANNOTATION, CONFIG_MIRROR_ANNOTATION, CONFIG_SEEN_ANNOTATION,
    CONFIG_SOURCE_ANNOTATION,
};

/// Parses one manifest into a static pod for `node`. `seen` is the
/// config.seen timestamp to record.
pub fn parse_manifest(text: &str, source: &str, node: &str, seen: &str) -> Result<Pod, String> {
    let value: serde_json::Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        let y: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        serde_json::to_value(y).map_err(|e| e.to_string())?
    };
    if value.get("kind").and_then(|k| k.as_str()) != Some("Pod") {
        return Err("manifest is not a Pod".into());
    }
    let mut pod: Pod = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let name = pod
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or("pod has no name")?;
    if pod.spec.is_none() {
        return Err("pod has no spec".into());
    }
    // The uid is a hash of the content, the node and the source, so an
    // unchanged manifest keeps its uid across kubelet restarts.
    let mut h = Vec::with_capacity(text.len() + node.len() + source.len() + 16);
    h.extend_from_slice(text.as_bytes());
    h.extend_from_slice(format!("host:{node}").as_bytes());
    h.extend_from_slice(format!("file:{source}").as_bytes());
    let uid = spec::fnv1a128_hex(&h);
    pod.metadata.name = Some(format!("{name}-{node}"));
    if pod.metadata.namespace.as_deref().unwrap_or("").is_empty() {
        pod.metadata.namespace = Some("default".into());
    }
    pod.metadata.uid = Some(uid.clone());
    pod.metadata.resource_version = None;
    pod.metadata.creation_timestamp = None;
    let ann = pod
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    ann.insert(CONFIG_HASH_ANNOTATION.into(), uid);
    ann.insert(CONFIG_SOURCE_ANNOTATION.into(), "file".into());
    ann.insert(CONFIG_SEEN_ANNOTATION.into(), seen.into());
    if let Some(s) = pod.spec.as_mut() {
        s.node_name = Some(node.into());
    }
    pod.status = Some(PodStatus {
        phase: Some("Pending".into()),
        ..Default::default()
    });
    Ok(pod)
}

/// Reads every manifest in `dir` (hidden files skipped). Unreadable or
/// invalid files are logged and skipped. `seen` maps uid → first-seen time
/// (kept stable across polls).
pub fn read_dir(
    dir: &Path,
    node: &str,
    seen: &mut HashMap<String, String>,
) -> HashMap<String, Pod> {
    let mut out = HashMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("reading static pod directory {}: {e}", dir.display());
            }
            return out;
        }
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    let now = super::time::now_time();
    let now_s = serde_json::to_value(&now)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    for p in paths {
        let fname = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
        if fname.starts_with('.') || !p.is_file() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let source = p.to_string_lossy().into_owned();
        match parse_manifest(&text, &source, node, "") {
            Ok(mut pod) => {
                let uid = spec::uid(&pod).to_string();
                let s = seen
                    .entry(uid.clone())
                    .or_insert_with(|| now_s.clone())
                    .clone();
                pod.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(CONFIG_SEEN_ANNOTATION.into(), s);
                if out.values().any(|o: &Pod| {
                    o.metadata.name == pod.metadata.name
                        && o.metadata.namespace == pod.metadata.namespace
                }) {
                    tracing::warn!(
                        "static pod {fname}: duplicate pod name {:?}, ignored",
                        pod.metadata.name
                    );
                    continue;
                }
                out.insert(uid, pod);
            }
            Err(e) => tracing::warn!("static pod manifest {}: {e}", p.display()),
        }
    }
    seen.retain(|k, _| out.contains_key(k));
    out
}

/// The mirror pod to create in the API for a static pod.
pub fn mirror_pod(static_pod: &Pod, node_name: &str, node_uid: Option<&str>) -> Pod {
    let mut m = static_pod.clone();
    m.metadata.uid = None;
    m.metadata.resource_version = None;
    m.metadata.creation_timestamp = None;
    m.metadata.managed_fields = None;
    let hash = spec::uid(static_pod).to_string();
    m.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(CONFIG_MIRROR_ANNOTATION.into(), hash);
    if let Some(uid) = node_uid {
        m.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node_name.into(),
            uid: uid.into(),
            controller: Some(false),
            block_owner_deletion: None,
        }]);
    }
    m.status = None;
    m
}

/// The static pod uid a mirror pod stands for.
pub fn mirror_hash(mirror: &Pod) -> Option<&str> {
    spec::annotation(mirror, CONFIG_MIRROR_ANNOTATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n";

    #[test]
    fn manifest() {
        let p = parse_manifest(M, "/m/web.yaml", "node1", "t").unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("web-node1"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        assert!(spec::is_static(&p));
        assert_eq!(
            spec::annotation(&p, CONFIG_HASH_ANNOTATION),
            p.metadata.uid.as_deref()
        );
        assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some("node1"));
        let again = parse_manifest(M, "/m/web.yaml", "node1", "t2").unwrap();
        assert_eq!(p.metadata.uid, again.metadata.uid);
        let other = parse_manifest(
            &M.replace("busybox", "busybox:1"),
            "/m/web.yaml",
            "node1",
            "t",
        )
        .unwrap();
        assert_ne!(p.metadata.uid, other.metadata.uid);
        assert!(parse_manifest("kind: Service\n", "x", "n", "t").is_err());

        let m = mirror_pod(&p, "node1", Some("nu"));
        assert!(m.metadata.uid.is_none());
        assert_eq!(mirror_hash(&m), p.metadata.uid.as_deref());
        assert!(spec::is_mirror(&m));
        assert_eq!(
            m.metadata.owner_references.as_ref().unwrap()[0].kind,
            "Node"
        );
    }

    #[test]
    fn directory() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.yaml"), M).unwrap();
        std::fs::write(d.path().join(".hidden.yaml"), M).unwrap();
        std::fs::write(d.path().join("bad.yaml"), "kind: Pod\n").unwrap();
        let mut seen = HashMap::new();
        let pods = read_dir(d.path(), "n", &mut seen);
        assert_eq!(pods.len(), 1);
        assert_eq!(seen.len(), 1);
    }
}
