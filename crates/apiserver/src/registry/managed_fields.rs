//! managedFields bookkeeping for Update operations (create, update, patch,
//! status writes): each manager owns the fields it last changed, in the
//! FieldsV1 encoding (`f:<field>`, `k:{"name":"x"}` for keyed list items,
//! `v:<value>` for set items, `.` for a list item itself).

use serde_json::{json, Map, Value};

/// Keys that identify items in well-known keyed lists (merge keys).
const LIST_KEYS: &[&str] = &[
    "name",
    "containerPort",
    "port",
    "mountPath",
    "devicePath",
    "ip",
    "type",
    "key",
    "topologyKey",
];

fn item_key(item: &Value) -> Option<String> {
    let obj = item.as_object()?;
    for k in LIST_KEYS {
        if let Some(v) = obj.get(*k) {
            if v.is_string() || v.is_number() {
                let mut m = Map::new();
                m.insert((*k).to_string(), v.clone());
                // containerPort/port lists are keyed with protocol too, as upstream.
                if (*k == "containerPort" || *k == "port") && obj.contains_key("protocol") {
                    m.insert("protocol".into(), obj["protocol"].clone());
                }
                return Some(format!("k:{}", Value::Object(m)));
            }
        }
    }
    None
}

const IGNORED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// The field set of `v` (FieldsV1 shape), limited to fields that differ from `old` when given.
fn field_set(v: &Value, old: Option<&Value>, top: bool) -> Option<Value> {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                if top && (k == "apiVersion" || k == "kind") {
                    continue;
                }
                let old_child = old.and_then(|o| o.get(k));
                if let (Some(oc), true) = (old_child, old.is_some()) {
                    if oc == child {
                        continue;
                    }
                }
                let sub = if top && k == "metadata" {
                    // The metadata without IGNORED_META, copying only the rest
                    // (managedFields can be large).
                    let strip = |v: &Value| match v {
                        Value::Object(o) => Value::Object(
                            super::entries_after_remove(o, IGNORED_META)
                                .into_iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                        ),
                        other => other.clone(),
                    };
                    let mm = strip(child);
                    let old_mm = old_child.map(strip);
                    if mm.as_object().is_some_and(|o| o.is_empty()) {
                        continue;
                    }
                    field_set(&mm, old_mm.as_ref(), false)
                } else {
                    field_set(
                        child,
                        if old.is_some() {
                            old_child.or(Some(&Value::Null))
                        } else {
                            None
                        },
                        false,
                    )
                };
                match sub {
                    Some(s) => {
                        out.insert(format!("f:{k}"), s);
                    }
                    None => continue,
                }
            }
            // An unchanged nested object contributes nothing to an update.
            if out.is_empty() && !top && old.is_some_and(Value::is_object) {
                return None;
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => {
            // Every item's key, when every item has one (computed once).
            let keys: Option<Vec<String>> = items.iter().map(item_key).collect();
            if let Some(keys) = keys.filter(|_| !items.is_empty()) {
                let mut out = Map::new();
                let old_items: Option<Vec<(Option<String>, &Value)>> = old
                    .and_then(|o| o.as_array())
                    .map(|oi| oi.iter().map(|o| (item_key(o), o)).collect());
                for (it, key) in items.iter().zip(keys) {
                    let old_it = old_items.as_ref().and_then(|oi| {
                        oi.iter()
                            .find(|(k, _)| k.as_deref() == Some(key.as_str()))
                            .map(|(_, o)| *o)
                    });
                    if old.is_some() && old_it == Some(it) {
                        continue;
                    }
                    let mut sub = field_set(
                        it,
                        if old.is_some() {
                            old_it.or(Some(&Value::Null))
                        } else {
                            None
                        },
                        false,
                    )
                    .unwrap_or_else(|| json!({}));
                    if let Some(o) = sub.as_object_mut() {
                        o.insert(".".into(), json!({}));
                    }
                    out.insert(key, sub);
                }
                if out.is_empty() && old.is_some() {
                    return None;
                }
                Some(Value::Object(out))
            } else {
                // Atomic or primitive lists are owned whole.
                Some(json!({}))
            }
        }
        _ => Some(json!({})),
    }
}

fn merge_sets(a: &mut Value, b: Value) {
    if let (Some(am), Value::Object(bm)) = (a.as_object_mut(), b) {
        for (k, v) in bm {
            match am.get_mut(&k) {
                Some(existing) => merge_sets(existing, v),
                None => {
                    am.insert(k, v);
                }
            }
        }
    }
}

/// Remove from `a` the leaves present in `b`; returns whether `a` is now empty.
fn subtract_sets(a: &mut Value, b: &Value) -> bool {
    if let (Some(am), Some(bm)) = (a.as_object_mut(), b.as_object()) {
        for (k, v) in bm {
            let remove = match am.get_mut(k) {
                Some(existing) => {
                    let leaf = v
                        .as_object()
                        .is_some_and(|o| o.is_empty() || (o.len() == 1 && o.contains_key(".")));
                    leaf || subtract_sets(existing, v)
                }
                None => false,
            };
            if remove {
                am.remove(k);
            }
        }
        am.is_empty() || (am.len() == 1 && am.contains_key("."))
    } else {
        true
    }
}

/// Record an Update by `manager` on `new` (whose previous state is `old`).
/// `subresource` is "" or "status". Keeps other managers' entries, taking
/// from them the fields this operation changed.
pub fn record_update(
    new: &mut Value,
    old: Option<&Value>,
    manager: &str,
    api_version: &str,
    subresource: &str,
    now: &str,
) {
    let mut entries: Vec<Value> = old
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // A client may send managedFields; upstream keeps them when valid. We keep the stored ones.
    let changed = match field_set(new, old, true) {
        Some(s) => s,
        None => json!({}),
    };
    if changed.as_object().is_some_and(|m| m.is_empty()) && old.is_some() {
        set_managed(new, entries);
        return;
    }
    for e in entries.iter_mut() {
        let same = e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Update")
            && e.get("subresource").and_then(Value::as_str).unwrap_or("") == subresource;
        if !same {
            if let Some(fs) = e.get_mut("fieldsV1") {
                subtract_sets(fs, &changed);
            }
        }
    }
    entries.retain(|e| {
        e.get("fieldsV1")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
    });
    let pos = entries.iter().position(|e| {
        e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Update")
            && e.get("subresource").and_then(Value::as_str).unwrap_or("") == subresource
    });
    let mut entry = match pos {
        Some(p) => entries.remove(p),
        None => {
            json!({"manager": manager, "operation": "Update", "apiVersion": api_version, "fieldsType": "FieldsV1", "fieldsV1": {}})
        }
    };
    if let Some(fs) = entry.get_mut("fieldsV1") {
        merge_sets(fs, changed);
    }
    entry["time"] = Value::String(now.to_string());
    entry["apiVersion"] = Value::String(api_version.to_string());
    if !subresource.is_empty() {
        entry["subresource"] = Value::String(subresource.to_string());
    }
    entries.push(entry);
    set_managed(new, entries);
}

fn set_managed(obj: &mut Value, entries: Vec<Value>) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_records_every_set_field_for_the_manager() {
        let mut obj = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","labels":{"x":"1"}},"data":{"k":"v"}});
        record_update(
            &mut obj,
            None,
            "kubectl-create",
            "v1",
            "",
            "2024-01-01T00:00:00Z",
        );
        let mf = &obj["metadata"]["managedFields"][0];
        assert_eq!(mf["manager"], "kubectl-create");
        assert_eq!(
            mf["fieldsV1"],
            json!({"f:data":{"f:k":{}},"f:metadata":{"f:labels":{"f:x":{}}}})
        );
    }

    #[test]
    fn update_moves_changed_fields_to_the_new_manager() {
        let mut old = json!({"metadata":{"name":"a"},"data":{"k":"v","j":"w"}});
        record_update(&mut old, None, "creator", "v1", "", "t");
        let mut new = old.clone();
        new["data"]["k"] = json!("changed");
        record_update(&mut new, Some(&old), "editor", "v1", "", "t2");
        let mfs = new["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mfs.len(), 2);
        assert_eq!(mfs[0]["fieldsV1"], json!({"f:data":{"f:j":{}}}));
        assert_eq!(mfs[1]["manager"], "editor");
        assert_eq!(mfs[1]["fieldsV1"], json!({"f:data":{"f:k":{}}}));
    }

    #[test]
    fn keyed_lists_use_k_entries() {
        let mut obj = json!({"spec":{"containers":[{"name":"c","image":"i"}]}});
        record_update(&mut obj, None, "m", "v1", "", "t");
        // No metadata: nothing to record into, and no panic.
        assert!(obj.get("metadata").is_none());
        let mut obj = json!({"metadata":{},"spec":{"containers":[{"name":"c","image":"i"}]}});
        record_update(&mut obj, None, "m", "v1", "", "t");
        assert_eq!(
            obj["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:spec":{"f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:image":{},"f:name":{}}}}})
        );
    }
}
