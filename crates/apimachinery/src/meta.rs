//! Helpers over objects held as JSON values.
//!
//! Getters never fail: a missing or mistyped field reads as empty/absent.
//! Setters create `metadata` when missing (and replace a non-object
//! `metadata` or a non-object document with an object).

use serde_json::{Map, Value};

/// Letters used for generated name suffixes: no vowels (so no words) and no
/// characters that are easily confused (0/o, 1/l, 3/e).
pub const NAME_SUFFIX_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";
/// Length of the random suffix added to `generateName`.
pub const NAME_SUFFIX_LENGTH: usize = 5;
/// Longest generateName prefix kept before adding the suffix (upstream:
/// 63 - 5 = 58).
pub const MAX_GENERATED_NAME_PREFIX: usize = 58;

/// The `metadata` object, if present.
pub fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// The `metadata` object, created if missing.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(root) = obj else {
        unreachable!("just made an object")
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    match meta {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> &'a str {
    metadata(obj)
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.name`, or "".
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name")
}

/// `metadata.generateName`, or "".
pub fn generate_name(obj: &Value) -> &str {
    meta_str(obj, "generateName")
}

/// `metadata.namespace`, or "".
pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace")
}

/// `metadata.uid`, or "".
pub fn uid(obj: &Value) -> &str {
    meta_str(obj, "uid")
}

/// `metadata.resourceVersion`, or "".
pub fn resource_version(obj: &Value) -> &str {
    meta_str(obj, "resourceVersion")
}

/// `metadata.creationTimestamp`, if set.
pub fn creation_timestamp(obj: &Value) -> Option<&str> {
    metadata(obj)
        .and_then(|m| m.get("creationTimestamp"))
        .and_then(Value::as_str)
}

/// `metadata.labels`, if it is a map.
pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    metadata(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
}

/// `metadata.annotations`, if it is a map.
pub fn annotations(obj: &Value) -> Option<&Map<String, Value>> {
    metadata(obj)
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
}

/// One label's value.
pub fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    labels(obj).and_then(|m| m.get(key)).and_then(Value::as_str)
}

/// One annotation's value.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    annotations(obj)
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
}

/// `metadata.finalizers` (string entries only).
pub fn finalizers(obj: &Value) -> Vec<String> {
    metadata(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.deletionTimestamp`, if set.
pub fn deletion_timestamp(obj: &Value) -> Option<&str> {
    metadata(obj)
        .and_then(|m| m.get("deletionTimestamp"))
        .and_then(Value::as_str)
}

/// `metadata.deletionGracePeriodSeconds`, if set.
pub fn deletion_grace_period_seconds(obj: &Value) -> Option<i64> {
    metadata(obj)
        .and_then(|m| m.get("deletionGracePeriodSeconds"))
        .and_then(Value::as_i64)
}

/// `metadata.generation`, or 0.
pub fn generation(obj: &Value) -> i64 {
    metadata(obj)
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// `metadata.ownerReferences` (object entries only).
pub fn owner_references(obj: &Value) -> Vec<&Map<String, Value>> {
    metadata(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default()
}

/// The owner reference with `controller: true`, if any.
pub fn controller_ref(obj: &Value) -> Option<&Map<String, Value>> {
    owner_references(obj)
        .into_iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

/// `apiVersion`, or "".
pub fn api_version(obj: &Value) -> &str {
    obj.get("apiVersion").and_then(Value::as_str).unwrap_or("")
}

/// `kind`, or "".
pub fn kind(obj: &Value) -> &str {
    obj.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn set(obj: &mut Value, key: &str, v: Value) {
    metadata_mut(obj).insert(key.to_string(), v);
}

/// Sets `metadata.name`.
pub fn set_name(obj: &mut Value, v: &str) {
    set(obj, "name", Value::String(v.to_string()));
}

/// Sets `metadata.namespace`; an empty string removes it.
pub fn set_namespace(obj: &mut Value, v: &str) {
    if v.is_empty() {
        metadata_mut(obj).remove("namespace");
    } else {
        set(obj, "namespace", Value::String(v.to_string()));
    }
}

/// Sets `metadata.uid`.
pub fn set_uid(obj: &mut Value, v: &str) {
    set(obj, "uid", Value::String(v.to_string()));
}

/// Sets `metadata.resourceVersion`; an empty string removes it.
pub fn set_resource_version(obj: &mut Value, v: &str) {
    if v.is_empty() {
        metadata_mut(obj).remove("resourceVersion");
    } else {
        set(obj, "resourceVersion", Value::String(v.to_string()));
    }
}

/// Sets `metadata.generation`.
pub fn set_generation(obj: &mut Value, v: i64) {
    set(obj, "generation", Value::from(v));
}

/// Sets `metadata.creationTimestamp` (RFC 3339, e.g. from [`now_rfc3339`]).
pub fn set_creation_timestamp(obj: &mut Value, v: &str) {
    set(obj, "creationTimestamp", Value::String(v.to_string()));
}

/// Sets or clears `metadata.deletionTimestamp`.
pub fn set_deletion_timestamp(obj: &mut Value, v: Option<&str>) {
    match v {
        Some(v) => set(obj, "deletionTimestamp", Value::String(v.to_string())),
        None => {
            metadata_mut(obj).remove("deletionTimestamp");
        }
    }
}

/// Sets or clears `metadata.deletionGracePeriodSeconds`.
pub fn set_deletion_grace_period_seconds(obj: &mut Value, v: Option<i64>) {
    match v {
        Some(v) => set(obj, "deletionGracePeriodSeconds", Value::from(v)),
        None => {
            metadata_mut(obj).remove("deletionGracePeriodSeconds");
        }
    }
}

/// Sets `metadata.finalizers`; an empty list removes the field.
pub fn set_finalizers(obj: &mut Value, v: &[String]) {
    if v.is_empty() {
        metadata_mut(obj).remove("finalizers");
    } else {
        set(
            obj,
            "finalizers",
            Value::Array(v.iter().cloned().map(Value::String).collect()),
        );
    }
}

/// Sets one label, creating `metadata.labels` if needed.
pub fn set_label(obj: &mut Value, key: &str, value: &str) {
    set_in_map(obj, "labels", key, value);
}

/// Sets one annotation, creating `metadata.annotations` if needed.
pub fn set_annotation(obj: &mut Value, key: &str, value: &str) {
    set_in_map(obj, "annotations", key, value);
}

fn set_in_map(obj: &mut Value, field: &str, key: &str, value: &str) {
    let m = metadata_mut(obj);
    let entry = m
        .entry(field.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(map) = entry {
        map.insert(key.to_string(), Value::String(value.to_string()));
    }
}

/// The current UTC time as upstream serialises `metav1.Time`
/// (`2024-01-02T03:04:05Z`, second precision).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The current UTC time with microseconds, as `metav1.MicroTime`
/// (`2024-01-02T03:04:05.123456Z`).
pub fn now_rfc3339_micro() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Five random characters from [`NAME_SUFFIX_ALPHABET`], for `generateName`.
pub fn generate_name_suffix() -> String {
    let alphabet: Vec<char> = NAME_SUFFIX_ALPHABET.chars().collect();
    let n = alphabet.len();
    // Reject bytes past the largest multiple of the alphabet size so every
    // letter is equally likely.
    let limit = (256 / n) * n;
    let mut out = String::with_capacity(NAME_SUFFIX_LENGTH);
    while out.len() < NAME_SUFFIX_LENGTH {
        // A v4 UUID is 122 random bits; skip the two bytes holding the fixed
        // version and variant bits.
        let bytes = *uuid::Uuid::new_v4().as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if i == 6 || i == 8 || (*b as usize) >= limit {
                continue;
            }
            out.push(alphabet[*b as usize % n]);
            if out.len() == NAME_SUFFIX_LENGTH {
                break;
            }
        }
    }
    out
}

/// `prefix` (trimmed to 58 bytes) plus a random suffix, as upstream's
/// `SimpleNameGenerator`.
pub fn generate_name_from(prefix: &str) -> String {
    let mut cut = prefix.len().min(MAX_GENERATED_NAME_PREFIX);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &prefix[..cut], generate_name_suffix())
}

/// A fresh random UID (v4 UUID).
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn getters_read_metadata_fields() {
        let o = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7", "generation": 3,
            "labels": {"a": "b"}, "annotations": {"x": "y"}, "finalizers": ["f1", 5, "f2"],
            "deletionTimestamp": "2024-01-02T03:04:05Z", "deletionGracePeriodSeconds": 30,
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "controller": true}]
        }});
        assert_eq!(name(&o), "p");
        assert_eq!(namespace(&o), "ns");
        assert_eq!(uid(&o), "u");
        assert_eq!(resource_version(&o), "7");
        assert_eq!(generation(&o), 3);
        assert_eq!(labels(&o).unwrap()["a"], "b");
        assert_eq!(label(&o, "a"), Some("b"));
        assert_eq!(annotation(&o, "x"), Some("y"));
        assert_eq!(finalizers(&o), vec!["f1".to_string(), "f2".to_string()]);
        assert_eq!(deletion_timestamp(&o), Some("2024-01-02T03:04:05Z"));
        assert_eq!(deletion_grace_period_seconds(&o), Some(30));
        assert_eq!(creation_timestamp(&o), Some("2024-01-01T00:00:00Z"));
        assert_eq!(owner_references(&o).len(), 1);
        assert_eq!(controller_ref(&o).unwrap()["name"], "rs");
        assert_eq!(kind(&o), "Pod");
        assert_eq!(api_version(&o), "v1");
    }

    #[test]
    fn getters_on_bare_objects_are_empty() {
        let o = json!({});
        assert_eq!(name(&o), "");
        assert_eq!(generation(&o), 0);
        assert!(labels(&o).is_none());
        assert!(finalizers(&o).is_empty());
        assert!(deletion_timestamp(&o).is_none());
        assert_eq!(name(&json!("not an object")), "");
        assert_eq!(name(&json!({"metadata": 5})), "");
    }

    #[test]
    fn setters_create_metadata() {
        let mut o = json!({"kind": "ConfigMap"});
        set_name(&mut o, "cm");
        set_namespace(&mut o, "default");
        set_uid(&mut o, "u1");
        set_resource_version(&mut o, "12");
        set_generation(&mut o, 1);
        set_creation_timestamp(&mut o, "2024-01-02T03:04:05Z");
        set_deletion_timestamp(&mut o, Some("2024-01-03T00:00:00Z"));
        set_deletion_grace_period_seconds(&mut o, Some(0));
        set_finalizers(&mut o, &["a".to_string()]);
        set_label(&mut o, "app", "x");
        set_annotation(&mut o, "note", "y");
        assert_eq!(
            o["metadata"],
            json!({"name": "cm", "namespace": "default", "uid": "u1", "resourceVersion": "12", "generation": 1,
                   "creationTimestamp": "2024-01-02T03:04:05Z", "deletionTimestamp": "2024-01-03T00:00:00Z",
                   "deletionGracePeriodSeconds": 0, "finalizers": ["a"], "labels": {"app": "x"},
                   "annotations": {"note": "y"}})
        );
        set_deletion_timestamp(&mut o, None);
        set_deletion_grace_period_seconds(&mut o, None);
        set_finalizers(&mut o, &[]);
        set_namespace(&mut o, "");
        assert!(o["metadata"].get("deletionTimestamp").is_none());
        assert!(o["metadata"].get("finalizers").is_none());
        assert!(o["metadata"].get("namespace").is_none());
    }

    #[test]
    fn setters_repair_non_object_metadata() {
        let mut o = json!({"metadata": null});
        set_name(&mut o, "x");
        assert_eq!(name(&o), "x");
        let mut o = Value::Null;
        set_name(&mut o, "y");
        assert_eq!(name(&o), "y");
    }

    #[test]
    fn timestamps_use_second_precision_utc() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'));
        assert_eq!(&t[10..11], "T");
        assert!(chrono::DateTime::parse_from_rfc3339(&t).is_ok());
        let m = now_rfc3339_micro();
        assert_eq!(m.len(), 27, "{m}");
    }

    #[test]
    fn name_suffixes_use_the_upstream_alphabet() {
        for _ in 0..50 {
            let s = generate_name_suffix();
            assert_eq!(s.len(), 5);
            assert!(s.chars().all(|c| NAME_SUFFIX_ALPHABET.contains(c)), "{s}");
        }
        assert_ne!(generate_name_suffix(), generate_name_suffix());
    }

    #[test]
    fn generated_names_trim_long_prefixes() {
        let n = generate_name_from(&"a".repeat(70));
        assert_eq!(n.len(), 63);
        assert!(generate_name_from("web-").starts_with("web-"));
        assert_eq!(generate_name_from(&"é".repeat(40)).chars().count(), 29 + 5);
    }

    #[test]
    fn uids_are_uuids() {
        assert_eq!(new_uid().len(), 36);
    }
}
