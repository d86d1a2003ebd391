//! Strategic-merge-patch metadata.
//!
//! k8s-openapi's schemars output has no `x-kubernetes-patch-*` extensions, but
//! its generated `impl DeepMerge` bodies say how each list merges
//! (`merge_strategies::list::map(&mut self.containers, .., &[|lhs, rhs| lhs.name == rhs.name], ..)`,
//! `list::set`, `list::atomic`). That information follows the server-side-apply
//! list types, which is *not* the same thing as the strategic-merge-patch
//! strategy: many `list::map`/`list::set` lists (FlowSchemaStatus.conditions,
//! ResourceRequirements.claims, rbac verbs, ...) have no patch strategy
//! upstream and are replaced wholesale by a strategic merge patch, while a few
//! `atomic` ones do merge. So the patch strategies come from [`SMP_FIELDS`], a
//! hand list of upstream's `patchStrategy`/`patchMergeKey` struct tags, and the
//! parsed DeepMerge source is used to check it: every merge key in the list
//! must be the first key k8s-openapi merges that list on.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

/// How k8s-openapi merges one list field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListMerge {
    Atomic,
    Set,
    /// JSON names of the key fields, in k8s-openapi's order.
    Map(Vec<String>),
}

/// Parsed k8s-openapi sources: per definition, the JSON name of every Rust
/// field and the merge strategy of every list field (keyed by JSON name).
#[derive(Debug, Default)]
pub struct Sources {
    /// definition → rust field ident → JSON name
    pub fields: BTreeMap<String, BTreeMap<String, String>>,
    /// definition → JSON field → (merge, rust idents of the map keys)
    pub lists: BTreeMap<String, BTreeMap<String, (ListMerge, Vec<String>)>>,
    /// (definition, kind) of every `impl crate::Resource for`.
    pub resources: Vec<(String, String)>,
}

/// Locates k8s-openapi's `src/v1_33` through `cargo metadata`.
pub fn locate_sources() -> Result<std::path::PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .context("running cargo metadata")?;
    anyhow::ensure!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let packages = meta["packages"]
        .as_array()
        .context("cargo metadata: no packages")?;
    for p in packages {
        if p["name"] == "k8s-openapi"
            && p["version"]
                .as_str()
                .is_some_and(|v| v.starts_with("0.29."))
        {
            let manifest = p["manifest_path"].as_str().context("no manifest_path")?;
            let dir = Path::new(manifest)
                .parent()
                .context("manifest has no parent")?;
            return Ok(dir.join("src").join("v1_33"));
        }
    }
    anyhow::bail!("k8s-openapi 0.29 not found in cargo metadata")
}

/// Reads every generated file below `dir`.
pub fn parse_sources(dir: &Path) -> Result<Sources> {
    let mut files = Vec::new();
    collect_rs(dir, &mut files)?;
    files.sort();
    let mut src = Sources::default();
    for f in files {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        parse_file(&text, &mut src);
    }
    Ok(src)
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn parse_file(text: &str, src: &mut Sources) {
    const MARK: &str = "// Generated from definition ";
    let Some(start) = text.find(MARK) else { return };
    let rest = &text[start + MARK.len()..];
    let def: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    if def.is_empty() {
        return;
    }

    // `"jsonName" => Field::Key_rust_ident,` lines of the Deserialize impl.
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((lhs, rhs)) = line.split_once(" => Field::Key_") else {
            continue;
        };
        let json = lhs.trim().trim_matches('"');
        let ident = rhs.trim_end_matches(',').trim();
        if !json.is_empty() && !ident.is_empty() {
            fields.insert(ident.to_string(), json.to_string());
        }
    }

    // `merge_strategies::list::<kind>(&mut self.<ident>, other.<ident>[, &[|lhs, rhs| lhs.<key> == rhs.<key>, ...]]`
    let mut lists = BTreeMap::new();
    const CALL: &str = "crate::merge_strategies::list::";
    let mut pos = 0;
    while let Some(i) = text[pos..].find(CALL) {
        let at = pos + i + CALL.len();
        pos = at;
        let kind: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let Some(self_at) = text[at..].find("&mut self.") else {
            continue;
        };
        let ident_start = at + self_at + "&mut self.".len();
        let ident: String = text[ident_start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let merge = match kind.as_str() {
            "atomic" => ListMerge::Atomic,
            "set" => ListMerge::Set,
            "map" => ListMerge::Map(Vec::new()),
            _ => continue,
        };
        // The key closures live between `&[` and the matching `]`.
        let mut keys = Vec::new();
        if merge == ListMerge::Map(Vec::new()) {
            if let Some(open) = text[ident_start..].find("&[") {
                let body_start = ident_start + open + 2;
                if let Some(close) = text[body_start..].find("],") {
                    let body = &text[body_start..body_start + close];
                    for part in body.split("lhs.").skip(1) {
                        let k: String = part
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !k.is_empty() && !keys.contains(&k) {
                            keys.push(k);
                        }
                    }
                }
            }
        }
        let Some(json) = fields.get(&ident).cloned() else {
            continue;
        };
        lists.insert(json, (merge, keys));
    }

    // `impl crate::Resource for X { ... const KIND: &'static str = "Pod"; ... }`
    if let Some(i) = text.find("impl crate::Resource for ") {
        if let Some(k) = text[i..].find("const KIND: &'static str = \"") {
            let s = i + k + "const KIND: &'static str = \"".len();
            let kind: String = text[s..].chars().take_while(|c| *c != '"').collect();
            src.resources.push((def.clone(), kind));
        }
    }

    src.fields.insert(def.clone(), fields);
    if !lists.is_empty() {
        src.lists.insert(def, lists);
    }
}

impl Sources {
    /// k8s-openapi's merge strategy of `def.field`, with map keys as JSON names
    /// (resolved against the list's item definition `item_def`).
    pub fn list_merge(&self, def: &str, field: &str, item_def: Option<&str>) -> Option<ListMerge> {
        let (merge, keys) = self.lists.get(def)?.get(field)?;
        Some(match merge {
            ListMerge::Map(_) => {
                let names = item_def.and_then(|d| self.fields.get(d));
                ListMerge::Map(
                    keys.iter()
                        .map(|k| {
                            names
                                .and_then(|n| n.get(k))
                                .cloned()
                                .unwrap_or_else(|| k.clone())
                        })
                        .collect(),
                )
            }
            other => other.clone(),
        })
    }
}

/// Upstream's strategic-merge-patch struct tags on the served API types:
/// (definition, JSON field, patchStrategy, patchMergeKey).
pub const SMP_FIELDS: &[(&str, &str, &str, Option<&str>)] = &[
    // meta
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        "merge",
        None,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "merge",
        Some("uid"),
    ),
    // core/v1 containers
    ("io.k8s.api.core.v1.Container", "env", "merge", Some("name")),
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        "merge",
        Some("containerPort"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        "merge",
        Some("devicePath"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        "merge",
        Some("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "env",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        "merge",
        Some("containerPort"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        "merge",
        Some("devicePath"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        "merge",
        Some("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.ContainerStatus",
        "allocatedResourcesStatus",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.ContainerStatus",
        "volumeMounts",
        "merge",
        Some("mountPath"),
    ),
    // core/v1 pods
    (
        "io.k8s.api.core.v1.PodSpec",
        "containers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "hostAliases",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "imagePullSecrets",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "resourceClaims",
        "merge,retainKeys",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "schedulingGates",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "merge",
        Some("topologyKey"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        "merge,retainKeys",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "hostIPs",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "podIPs",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "resourceClaimStatuses",
        "merge,retainKeys",
        Some("name"),
    ),
    // core/v1 others
    (
        "io.k8s.api.core.v1.ComponentStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", "merge", None),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "addresses",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.ReplicationControllerStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.ServiceAccount",
        "secrets",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        "merge",
        Some("port"),
    ),
    (
        "io.k8s.api.core.v1.ServiceStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    // apps/v1
    (
        "io.k8s.api.apps.v1.DaemonSetStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        "retainKeys",
        None,
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    // autoscaling, batch, policy
    (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.batch.v1.JobStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetSpec",
        "selector",
        "replace",
        None,
    ),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    // networking, storage
    (
        "io.k8s.api.networking.v1.ServiceCIDRStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.networking.v1beta1.ServiceCIDRStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.storage.v1.CSINodeSpec",
        "drivers",
        "merge",
        Some("name"),
    ),
    // admissionregistration
    (
        "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration",
        "webhooks",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration",
        "webhooks",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.admissionregistration.v1.MutatingWebhook",
        "matchConditions",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingWebhook",
        "matchConditions",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec",
        "matchConditions",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec",
        "variables",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.admissionregistration.v1beta1.ValidatingAdmissionPolicySpec",
        "matchConditions",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.admissionregistration.v1beta1.ValidatingAdmissionPolicySpec",
        "variables",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.admissionregistration.v1alpha1.MutatingAdmissionPolicySpec",
        "matchConditions",
        "merge",
        Some("name"),
    ),
    // resource.k8s.io
    (
        "io.k8s.api.resource.v1alpha3.ResourceClaimStatus",
        "reservedFor",
        "merge",
        Some("uid"),
    ),
    (
        "io.k8s.api.resource.v1beta1.ResourceClaimStatus",
        "reservedFor",
        "merge",
        Some("uid"),
    ),
    (
        "io.k8s.api.resource.v1beta2.ResourceClaimStatus",
        "reservedFor",
        "merge",
        Some("uid"),
    ),
    // aggregator, storage migration
    (
        "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.storagemigration.v1alpha1.StorageVersionMigrationStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
];
