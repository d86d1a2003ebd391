//! schema-gen: writes api-schemas/definitions.json, the OpenAPI v2 definitions
//! of every Kubernetes v1.33 API type ferrokube knows, generated from
//! k8s-openapi 0.29's schemars impls plus:
//!
//! * `x-kubernetes-group-version-kind` on every kind and `<Kind>List`,
//!   DeleteOptions and WatchEvent (one entry per served group/version);
//! * `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` (see merge.rs);
//! * the `<Kind>List`, Table and PartialObjectMetadata definitions;
//! * upstream's v2 shapes for IntOrString / Quantity / JSON, and no
//!   k8s-openapi-only `required: [metadata]` on kinds.
//!
//! Usage: `cargo run --release -p schema-gen [-- OUTPUT_DIR]` (default: the
//! workspace's api-schemas/). The output is sorted and pretty-printed, so the
//! checked-in file only changes when k8s-openapi or this generator changes.

mod extra;
mod merge;
mod roots;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use k8s_openapi::schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

fn main() -> Result<()> {
    let out_dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../api-schemas"))
        });
    let verbose = std::env::var_os("SCHEMA_GEN_VERBOSE").is_some();

    let defs = generate(verbose)?;

    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let path = out_dir.join("definitions.json");
    let mut text = serde_json::to_string_pretty(&Value::Object(defs)).context("serializing")?;
    text.push('\n');
    std::fs::write(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {} ({} bytes)", path.display(), text.len());
    Ok(())
}

fn generate(verbose: bool) -> Result<Map<String, Value>> {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/definitions".into();
    settings.meta_schema = None;
    let mut generator = settings.into_generator();
    let roots = roots::register(&mut generator);
    let mut defs: Map<String, Value> = generator.take_definitions(true).into_iter().collect();

    let sources = merge::parse_sources(&merge::locate_sources()?)?;
    check_roots_complete(&sources, &defs)?;

    fix_k8s_openapi_shapes(&mut defs, &roots);
    add_gvks(&mut defs, &roots)?;
    add_lists(&mut defs, &roots);
    for (name, def) in extra::meta_definitions(defs.get(&format!("{META}.Status"))) {
        defs.insert(name, def);
    }
    add_patch_extensions(&mut defs, &sources, verbose)?;
    check_refs(&defs)?;

    let mut sorted = Value::Object(defs);
    sort_keys(&mut sorted);
    match sorted {
        Value::Object(m) => Ok(m),
        _ => bail!("definitions are not an object"),
    }
}

/// Every `impl crate::Resource` in the k8s-openapi sources must be in roots.rs.
fn check_roots_complete(sources: &merge::Sources, defs: &Map<String, Value>) -> Result<()> {
    let missing: Vec<&str> = sources
        .resources
        .iter()
        .map(|(d, _)| d.as_str())
        .filter(|d| !defs.contains_key(*d))
        .collect();
    if !missing.is_empty() {
        bail!("k8s-openapi resources missing from schema-gen/src/roots.rs: {missing:?}");
    }
    Ok(())
}

/// Undo the places where k8s-openapi's schemas differ from upstream's v2 document.
fn fix_k8s_openapi_shapes(defs: &mut Map<String, Value>, roots: &[roots::Root]) {
    if let Some(Value::Object(d)) = defs.get_mut("io.k8s.apimachinery.pkg.util.intstr.IntOrString")
    {
        d.remove("x-kubernetes-int-or-string");
        d.insert("type".into(), json!("string"));
        d.insert("format".into(), json!("int-or-string"));
    }
    if let Some(Value::Object(d)) = defs.get_mut("io.k8s.apimachinery.pkg.api.resource.Quantity") {
        d.remove("x-kubernetes-int-or-string");
        d.insert("type".into(), json!("string"));
    }
    if let Some(Value::Object(d)) =
        defs.get_mut("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON")
    {
        d.remove("type");
    }
    // k8s-openapi makes `metadata` required on every kind; upstream only on core/v1 Event.
    for root in roots {
        if root.definition == "io.k8s.api.core.v1.Event" {
            continue;
        }
        if let Some(Value::Object(d)) = defs.get_mut(&root.definition) {
            let now_empty = match d.get_mut("required") {
                Some(Value::Array(req)) => {
                    req.retain(|v| v != "metadata");
                    req.is_empty()
                }
                _ => false,
            };
            if now_empty {
                d.remove("required");
            }
        }
    }
}

fn add_gvk(def: &mut Value, entries: Vec<Value>) {
    if let Some(o) = def.as_object_mut() {
        o.insert(
            "x-kubernetes-group-version-kind".into(),
            Value::Array(entries),
        );
    }
}

fn gvk_entry(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

fn add_gvks(defs: &mut Map<String, Value>, roots: &[roots::Root]) -> Result<()> {
    // Several kinds share one definition only in theory; collect per definition.
    let mut per_def: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut group_versions: BTreeSet<(&str, &str)> = BTreeSet::new();
    for root in roots {
        per_def.entry(&root.definition).or_default().push(gvk_entry(
            root.group,
            root.version,
            root.kind,
        ));
        if root.kind != "Status" {
            group_versions.insert((root.group, root.version));
        }
    }
    for (name, entries) in per_def {
        let def = defs
            .get_mut(name)
            .with_context(|| format!("no definition for root {name}"))?;
        add_gvk(def, entries);
    }
    // DeleteOptions and WatchEvent are registered in every group/version.
    let gvs: Vec<(&str, &str)> = group_versions.into_iter().collect();
    for kind in ["DeleteOptions", "WatchEvent"] {
        let name = format!("{META}.{kind}");
        let def = defs
            .get_mut(&name)
            .with_context(|| format!("no definition {name}"))?;
        add_gvk(
            def,
            gvs.iter().map(|(g, v)| gvk_entry(g, v, kind)).collect(),
        );
    }
    Ok(())
}

fn add_lists(defs: &mut Map<String, Value>, roots: &[roots::Root]) {
    for root in roots {
        let Some(list_kind) = root.list_kind else {
            continue;
        };
        let (name, def) = extra::list_definition(
            &root.definition,
            defs.get(&root.definition),
            root.kind,
            root.group,
            root.version,
            list_kind,
        );
        defs.insert(name, def);
    }
}

/// The definition a `$ref` schema points to.
fn ref_target(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.strip_prefix("#/definitions/")
}

fn add_patch_extensions(
    defs: &mut Map<String, Value>,
    sources: &merge::Sources,
    verbose: bool,
) -> Result<()> {
    let mut marked: BTreeSet<(String, String)> = BTreeSet::new();
    for &(def, field, strategy, key) in merge::SMP_FIELDS {
        let Some(prop) = defs
            .get(def)
            .and_then(|d| d.pointer(&format!("/properties/{field}")))
        else {
            // Types k8s-openapi does not reach are fine to skip; a typo is not.
            if defs.contains_key(def) {
                bail!("{def} has no property {field}");
            }
            eprintln!("note: {def} not generated; skipping its patch strategy for {field}");
            continue;
        };
        let item_def = prop.get("items").and_then(ref_target).map(str::to_string);
        if let Some(key) = key {
            let item = item_def
                .as_deref()
                .with_context(|| format!("{def}.{field}: merge key on a non-object list"))?;
            let item_has_key = defs
                .get(item)
                .and_then(|d| d.pointer(&format!("/properties/{key}")))
                .is_some();
            if !item_has_key {
                bail!("{def}.{field}: merge key {key} is not a field of {item}");
            }
            match sources.list_merge(def, field, Some(item)) {
                Some(merge::ListMerge::Map(keys))
                    if keys.first().map(String::as_str) == Some(key) => {}
                other => {
                    eprintln!("warning: {def}.{field}: patch merge key {key} but k8s-openapi merges it as {other:?}")
                }
            }
        }
        let Some(Value::Object(p)) = defs
            .get_mut(def)
            .and_then(|d| d.pointer_mut(&format!("/properties/{field}")))
        else {
            continue;
        };
        p.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
        if let Some(key) = key {
            p.insert("x-kubernetes-patch-merge-key".into(), json!(key));
        }
        marked.insert((def.to_string(), field.to_string()));
    }
    if verbose {
        for (def, lists) in &sources.lists {
            for (field, (merge, _)) in lists {
                if *merge != merge::ListMerge::Atomic
                    && !marked.contains(&(def.clone(), field.clone()))
                    && defs.contains_key(def)
                {
                    eprintln!("info: {def}.{field}: k8s-openapi merges it as {merge:?}; no upstream patch strategy (replaced by SMP)");
                }
            }
        }
    }
    Ok(())
}

fn check_refs(defs: &Map<String, Value>) -> Result<()> {
    fn walk(v: &Value, defs: &Map<String, Value>, bad: &mut BTreeSet<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    match r.strip_prefix("#/definitions/") {
                        Some(name) if defs.contains_key(name) => {}
                        _ => {
                            bad.insert(r.clone());
                        }
                    }
                }
                for (k, child) in o {
                    // Skip the bodies of enum/default/example values: data, not schemas.
                    if k != "enum" && k != "default" && k != "example" {
                        walk(child, defs, bad);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, defs, bad)),
            _ => {}
        }
    }
    let mut bad = BTreeSet::new();
    for def in defs.values() {
        walk(def, defs, &mut bad);
    }
    if !bad.is_empty() {
        bail!("unresolved $refs: {bad:?}");
    }
    Ok(())
}

fn sort_keys(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let mut entries: Vec<(String, Value)> = std::mem::take(o).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, mut child) in entries {
                sort_keys(&mut child);
                o.insert(k, child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(sort_keys),
        _ => {}
    }
}
