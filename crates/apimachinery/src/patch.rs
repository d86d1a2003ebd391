//! The three PATCH engines: JSON patch (RFC 6902), JSON merge patch
//! (RFC 7386) and Kubernetes strategic merge patch.
//!
//! Strategic merge patch follows upstream's `strategicpatch` package as the
//! apiserver runs it (parallel delete lists merged, unmatched nulls ignored):
//!
//! * maps merge recursively; a `null` value deletes the key;
//! * `$patch: replace` in a map replaces the whole map, `$patch: delete`
//!   empties it;
//! * `$retainKeys: [..]` drops every original key not listed;
//! * lists follow [`PatchMeta::list_strategy`]: replaced wholesale, merged by
//!   a key (items with the same key merge, new ones are added, `$patch:
//!   delete` items remove, a `$patch: replace` item makes the rest of the
//!   list replace the original), or merged as a set of primitives;
//! * `$deleteFromPrimitiveList/<field>: [..]` removes values from a list;
//! * `$setElementOrder/<field>: [..]` fixes the final order, as `kubectl
//!   apply` sends it.
//!
//! Ordering of merged lists mirrors upstream: items named in the patch come
//! in patch order, items only on the server keep their relative position.
//! Directive keys never survive into the result.

use serde_json::{Map, Value};
use std::collections::HashMap;

// ---------------------------------------------------------------------------
// JSON patch
// ---------------------------------------------------------------------------

/// Upstream's cap on the number of operations in one JSON patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10000;

/// Why a JSON patch failed, so the caller can pick the HTTP status
/// (upstream: 400 for a malformed patch, 413 for too many operations, 422
/// when the operations do not apply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonPatchError {
    /// The body is not a list of operations.
    Decode(String),
    /// More than [`MAX_JSON_PATCH_OPERATIONS`] operations.
    TooManyOperations(usize),
    /// An operation could not be applied to the document.
    Apply(String),
}

impl std::fmt::Display for JsonPatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonPatchError::Decode(m) | JsonPatchError::Apply(m) => f.write_str(m),
            JsonPatchError::TooManyOperations(n) => {
                write!(f, "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got: {n}")
            }
        }
    }
}

impl std::error::Error for JsonPatchError {}

fn go_json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Applies an RFC 6902 patch, reporting which kind of failure happened.
pub fn try_apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, JsonPatchError> {
    let Value::Array(ops_json) = patch else {
        return Err(JsonPatchError::Decode(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            go_json_type(patch)
        )));
    };
    if ops_json.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(JsonPatchError::TooManyOperations(ops_json.len()));
    }
    let ops: Vec<json_patch::PatchOperation> = ops_json
        .iter()
        .enumerate()
        .map(|(i, op)| {
            serde_json::from_value(op.clone()).map_err(|e| {
                JsonPatchError::Decode(format!("invalid JSON patch operation {i}: {e}"))
            })
        })
        .collect::<Result<_, _>>()?;
    let mut out = doc.clone();
    json_patch::patch(&mut out, &ops)
        .map_err(|e| JsonPatchError::Apply(describe_json_patch_error(&ops, &e)))?;
    Ok(out)
}

/// Applies an RFC 6902 JSON patch (`application/json-patch+json`).
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, String> {
    try_apply_json_patch(doc, patch).map_err(|e| e.to_string())
}

/// Words a failed operation the way upstream's JSON patch library does.
fn describe_json_patch_error(
    ops: &[json_patch::PatchOperation],
    e: &json_patch::PatchError,
) -> String {
    use json_patch::{PatchErrorKind as K, PatchOperation as Op};
    let path = e.path.as_str();
    let Some(op) = ops.get(e.operation) else {
        return e.to_string();
    };
    match (op, &e.kind) {
        (Op::Test(_), K::TestFailed) => format!("testing value {path} failed: test failed"),
        (Op::Test(_), _) => {
            format!("test operation does not apply: is missing path: {path}: missing value")
        }
        (Op::Add(_), _) => {
            format!("add operation does not apply: doc is missing path: \"{path}\": missing value")
        }
        (Op::Remove(_), _) => format!(
            "remove operation does not apply: doc is missing path: \"{path}\": missing value"
        ),
        (Op::Replace(_), _) => {
            format!("replace operation does not apply: doc is missing key: {path}: missing value")
        }
        (Op::Move(m), K::InvalidFromPointer) => {
            format!(
                "move operation does not apply: doc is missing from path: {}: missing value",
                m.from.as_str()
            )
        }
        (Op::Move(_), K::CannotMoveInsideItself) => {
            format!(
                "move operation does not apply: cannot move {path} into one of its own children"
            )
        }
        (Op::Move(_), _) => format!(
            "move operation does not apply: doc is missing destination path: {path}: missing value"
        ),
        (Op::Copy(c), K::InvalidFromPointer) => {
            format!(
                "copy operation does not apply: doc is missing from path: {}: missing value",
                c.from.as_str()
            )
        }
        (Op::Copy(_), _) => format!(
            "copy operation does not apply: doc is missing destination path: {path}: missing value"
        ),
    }
}

// ---------------------------------------------------------------------------
// JSON merge patch
// ---------------------------------------------------------------------------

/// Applies an RFC 7386 merge patch (`application/merge-patch+json`): `null`
/// deletes, objects merge recursively, anything else replaces. For an API
/// object the patch itself must be a JSON object.
pub fn apply_merge_patch(doc: &Value, patch: &Value) -> Result<Value, String> {
    if !patch.is_object() {
        return Err("Invalid JSON Patch".to_string());
    }
    let mut out = doc.clone();
    merge_value(&mut out, patch);
    Ok(out)
}

fn merge_value(doc: &mut Value, patch: &Value) {
    let Value::Object(pm) = patch else {
        *doc = patch.clone();
        return;
    };
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    if let Value::Object(dm) = doc {
        for (k, v) in pm {
            if v.is_null() {
                dm.remove(k);
            } else {
                merge_value(dm.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Strategic merge patch
// ---------------------------------------------------------------------------

/// How a list field merges, as the schema's x-kubernetes-patch-strategy / patch-merge-key say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the original (no patch strategy).
    Replace,
    /// `patchStrategy: merge` with `patchMergeKey: <key>` (list of objects).
    MergeByKey(String),
    /// `patchStrategy: merge` on a list of scalars (set union).
    MergePrimitives,
}

/// Where a strategic merge patch learns each list field's strategy.
pub trait PatchMeta {
    /// `path` = field names from the object root, array indices omitted, e.g. ["spec","template","spec","containers"].
    fn list_strategy(&self, path: &[String]) -> ListStrategy;
    /// whether the field at path has patch strategy retainKeys (e.g. volumes, deployment strategy)
    ///
    /// Informational: like upstream, the engine honours a `$retainKeys`
    /// directive wherever the patch carries one.
    fn retain_keys(&self, path: &[String]) -> bool {
        let _ = path;
        false
    }
}

/// Every list is replaced (what upstream does for types without patch
/// metadata).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPatchMeta;

impl PatchMeta for NoPatchMeta {
    fn list_strategy(&self, _path: &[String]) -> ListStrategy {
        ListStrategy::Replace
    }
}

/// A table of list strategies keyed by dotted path
/// (`spec.template.spec.containers`); unknown paths replace.
#[derive(Debug, Clone, Default)]
pub struct PatchMetaTable {
    lists: HashMap<String, ListStrategy>,
    retain: Vec<String>,
}

impl PatchMetaTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares `path` a list of objects merged on `key`.
    pub fn merge_key(mut self, path: &str, key: &str) -> Self {
        self.lists
            .insert(path.to_string(), ListStrategy::MergeByKey(key.to_string()));
        self
    }

    /// Declares `path` a list of scalars merged as a set.
    pub fn merge_primitives(mut self, path: &str) -> Self {
        self.lists
            .insert(path.to_string(), ListStrategy::MergePrimitives);
        self
    }

    /// Declares `path` as carrying the retainKeys strategy.
    pub fn retain_keys_at(mut self, path: &str) -> Self {
        self.retain.push(path.to_string());
        self
    }
}

impl PatchMeta for PatchMetaTable {
    fn list_strategy(&self, path: &[String]) -> ListStrategy {
        self.lists
            .get(&path.join("."))
            .cloned()
            .unwrap_or(ListStrategy::Replace)
    }
    fn retain_keys(&self, path: &[String]) -> bool {
        self.retain.contains(&path.join("."))
    }
}

const DIRECTIVE_MARKER: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

const ERR_BAD_JSON_DOC: &str = "invalid JSON document";
const ERR_NO_LIST_OF_LISTS: &str = "lists of lists are not supported";
const ERR_BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const ERR_BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_BAD_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";

/// Applies a strategic merge patch (`application/strategic-merge-patch+json`).
/// Both the document and the patch must be JSON objects.
pub fn apply_strategic_merge_patch(
    doc: &Value,
    patch: &Value,
    meta: &dyn PatchMeta,
) -> Result<Value, String> {
    let (Value::Object(d), Value::Object(p)) = (doc, patch) else {
        return Err(ERR_BAD_JSON_DOC.to_string());
    };
    let mut path = Vec::new();
    let merged = merge_map(d.clone(), p.clone(), &mut path, meta)?;
    Ok(Value::Object(merged))
}

/// Renders a value like Go's `%v` of decoded JSON, for error messages.
fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_fmt(&m[*k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

fn err_no_merge_key(m: &Map<String, Value>, key: &str) -> String {
    format!(
        "map: {} does not contain declared merge key: {key}",
        go_fmt(&Value::Object(m.clone()))
    )
}

fn err_bad_patch_type(t: &Value, m: &Map<String, Value>) -> String {
    format!(
        "unknown patch type: {} in map: {}",
        go_fmt(t),
        go_fmt(&Value::Object(m.clone()))
    )
}

/// JSON equality that treats 80 and 80.0 alike (Go decodes both as float64).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || (x.as_f64().is_some() && x.as_f64() == y.as_f64())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn same_kind(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn child(path: &[String], key: &str) -> Vec<String> {
    let mut p = path.to_vec();
    p.push(key.to_string());
    p
}

/// Takes a patch value for a field the original does not have: objects and
/// lists are merged into nothing so that directives and nulls disappear.
fn clean_value(v: Value, path: &mut Vec<String>, meta: &dyn PatchMeta) -> Result<Value, String> {
    match v {
        Value::Object(m) => Ok(Value::Object(merge_map(Map::new(), m, path, meta)?)),
        Value::Array(items) => {
            let strategy = meta.list_strategy(path);
            Ok(Value::Array(merge_list(
                Vec::new(),
                items,
                &strategy,
                path,
                meta,
            )?))
        }
        other => Ok(other),
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    path: &mut Vec<String>,
    meta: &dyn PatchMeta,
) -> Result<Map<String, Value>, String> {
    if let Some(directive) = patch.get(DIRECTIVE_MARKER).cloned() {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE_MARKER);
                merge_map(Map::new(), patch, path, meta)
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(err_bad_patch_type(&directive, &patch)),
        };
    }

    // $retainKeys: keep only the listed keys of the original.
    if let Some(retain) = patch.remove(RETAIN_KEYS) {
        let Value::Array(retain) = retain else {
            return Err(ERR_BAD_RETAIN_KEYS.to_string());
        };
        let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
        for (k, v) in &patch {
            if v.is_null()
                || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
                || k.starts_with(SET_ELEMENT_ORDER)
            {
                continue;
            }
            if !listed(k) {
                return Err(ERR_BAD_RETAIN_KEYS.to_string());
            }
        }
        original.retain(|k, _| listed(k));
    }

    // $setElementOrder/<field>, together with the field's own patch list.
    let order_keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in order_keys {
        let order = patch.remove(&key).unwrap_or(Value::Null);
        let Value::Array(order) = order else {
            return Err(ERR_BAD_SET_ELEMENT_ORDER.to_string());
        };
        let field = key[SET_ELEMENT_ORDER.len()..].to_string();
        let field_path = child(path, &field);
        let strategy = meta.list_strategy(&field_path);
        let merge_key = match &strategy {
            ListStrategy::MergeByKey(k) => Some(k.as_str()),
            _ => None,
        };
        let orig_list = match original.get(&field) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => {
                return Err(format!(
                    "expected a list for field {field:?}, but the original is not a list"
                ))
            }
        };
        let patch_list = match patch.remove(&field) {
            None => None,
            Some(Value::Array(a)) => Some(a),
            Some(_) => return Err(ERR_BAD_SET_ELEMENT_ORDER.to_string()),
        };
        if let Some(pl) = &patch_list {
            validate_patch_with_set_order(pl, &order, merge_key)?;
        }
        let mut fp = field_path.clone();
        let merged = match (orig_list.clone(), patch_list) {
            (Some(o), Some(p)) => merge_list(o, p, &strategy, &mut fp, meta)?,
            (Some(o), None) => o,
            (None, Some(p)) => merge_list(Vec::new(), p, &strategy, &mut fp, meta)?,
            (None, None) => continue,
        };
        let server_order = orig_list.unwrap_or_default();
        let (in_order, server_only) = partition(merged, &order, merge_key)?;
        let in_order = sort_by_order(in_order, &order, merge_key);
        let both = merge_sorted(server_only, in_order, &server_order, merge_key);
        original.insert(field, Value::Array(both));
    }

    for (k, patch_v) in patch {
        if let Some(field) = k.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let Value::Array(to_delete) = patch_v else {
                return Err(ERR_BAD_PRIMITIVE_LIST.to_string());
            };
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|item| !to_delete.iter().any(|d| json_eq(d, item)));
            }
            continue;
        }
        if patch_v.is_null() {
            original.remove(&k);
            continue;
        }
        path.push(k.clone());
        let result = match original.remove(&k) {
            Some(Value::Object(o)) if patch_v.is_object() => {
                let Value::Object(p) = patch_v else {
                    unreachable!("checked to be an object")
                };
                merge_map(o, p, path, meta).map(Value::Object)
            }
            Some(Value::Array(o)) if patch_v.is_array() => {
                let Value::Array(p) = patch_v else {
                    unreachable!("checked to be an array")
                };
                let strategy = meta.list_strategy(path);
                merge_list(o, p, &strategy, path, meta).map(Value::Array)
            }
            _ => clean_value(patch_v, path, meta),
        };
        path.pop();
        original.insert(k, result?);
    }
    Ok(original)
}

/// Merges two lists under `strategy`.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    strategy: &ListStrategy,
    path: &mut Vec<String>,
    meta: &dyn PatchMeta,
) -> Result<Vec<Value>, String> {
    if *strategy == ListStrategy::Replace {
        return patch
            .into_iter()
            .map(|v| clean_value(v, path, meta))
            .collect();
    }
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    // All elements must share one type, and lists of lists are not supported.
    let mut first: Option<&Value> = None;
    for v in original.iter().chain(patch.iter()) {
        match first {
            None => {
                if v.is_array() {
                    return Err(ERR_NO_LIST_OF_LISTS.to_string());
                }
                first = Some(v);
            }
            Some(f) if !same_kind(f, v) => {
                return Err(format!(
                    "list element types are not identical: [{} {}]",
                    go_fmt(&Value::Array(original.clone())),
                    go_fmt(&Value::Array(patch.clone()))
                ));
            }
            _ => {}
        }
    }
    let maps = first.is_some_and(Value::is_object);

    if !maps {
        // Set union of scalars, then upstream's ordering.
        let mut merged: Vec<Value> = Vec::new();
        for v in original.iter().chain(patch.iter()) {
            if !merged.iter().any(|m| json_eq(m, v)) {
                merged.push(v.clone());
            }
        }
        let (in_patch, server_only) = partition(merged, &patch, None)?;
        let in_patch = sort_by_order(in_patch, &patch, None);
        return Ok(merge_sorted(server_only, in_patch, &original, None));
    }

    let ListStrategy::MergeByKey(merge_key) = strategy else {
        return Err(format!(
            "cannot merge lists without merge key for {}",
            path.join(".")
        ));
    };
    let merge_key = merge_key.as_str();

    // Special elements first: deletions and a replace marker.
    let mut original = original;
    let mut plain: Vec<Map<String, Value>> = Vec::new();
    let mut replace = false;
    for v in patch {
        let Value::Object(item) = v else { continue };
        match item.get(DIRECTIVE_MARKER) {
            None => plain.push(item),
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let Some(key_value) = item.get(merge_key) else {
                        return Err(err_no_merge_key(&item, merge_key));
                    };
                    original.retain(|o| !o.get(merge_key).is_some_and(|ov| json_eq(ov, key_value)));
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err("merging lists cannot yet be specified in the patch".to_string())
                }
                _ => return Err(err_bad_patch_type(d, &item)),
            },
        }
    }
    if replace {
        return plain
            .into_iter()
            .map(|m| merge_map(Map::new(), m, path, meta).map(Value::Object))
            .collect();
    }

    let server_order = original.clone();
    let mut merged = original;
    let mut patch_order: Vec<Value> = Vec::with_capacity(plain.len());
    for item in plain {
        let Some(key_value) = item.get(merge_key).cloned() else {
            return Err(err_no_merge_key(&item, merge_key));
        };
        patch_order.push(Value::Object(item.clone()));
        let found = merged
            .iter()
            .position(|o| o.get(merge_key).is_some_and(|ov| json_eq(ov, &key_value)));
        match found {
            Some(i) => {
                let base = match std::mem::take(&mut merged[i]) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                merged[i] = Value::Object(merge_map(base, item, path, meta)?);
            }
            None => merged.push(Value::Object(merge_map(Map::new(), item, path, meta)?)),
        }
    }
    let (in_patch, server_only) = partition(merged, &patch_order, Some(merge_key))?;
    let in_patch = sort_by_order(in_patch, &patch_order, Some(merge_key));
    Ok(merge_sorted(
        server_only,
        in_patch,
        &server_order,
        Some(merge_key),
    ))
}

/// Index of `item` in `list`, matching on the merge key for maps.
fn index_in(list: &[Value], item: &Value, merge_key: Option<&str>) -> Option<usize> {
    match merge_key {
        Some(k) => {
            let want = item.get(k)?;
            list.iter()
                .position(|v| v.get(k).is_some_and(|have| json_eq(have, want)))
        }
        None => list.iter().position(|v| json_eq(v, item)),
    }
}

/// Splits `items` into those present in `by` and the rest.
fn partition(
    items: Vec<Value>,
    by: &[Value],
    merge_key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut present = Vec::new();
    let mut rest = Vec::new();
    for v in items {
        if let Some(k) = merge_key {
            match &v {
                Value::Object(m) if !m.contains_key(k) => return Err(err_no_merge_key(m, k)),
                Value::Object(_) => {}
                other => {
                    return Err(format!(
                        "expected a map in the list, but received {}",
                        go_fmt(other)
                    ))
                }
            }
        }
        if index_in(by, &v, merge_key).is_some() {
            present.push(v);
        } else {
            rest.push(v);
        }
    }
    Ok((present, rest))
}

/// Stable sort by position in `order`; items not found go last.
fn sort_by_order(mut items: Vec<Value>, order: &[Value], merge_key: Option<&str>) -> Vec<Value> {
    items.sort_by_key(|v| index_in(order, v, merge_key).unwrap_or(usize::MAX));
    items
}

/// Interleaves server-only items (`left`) into the patch items (`right`):
/// relative order inside each side is kept, and a server-only item goes
/// before a patch item only when the server list has it earlier.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut l = left.into_iter().peekable();
    let mut r = right.into_iter().peekable();
    loop {
        let take_left = match (l.peek(), r.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => {
                matches!((index_in(server_order, a, merge_key), index_in(server_order, b, merge_key)), (Some(i), Some(j)) if i < j)
            }
        };
        let next = if take_left { l.next() } else { r.next() };
        out.extend(next);
    }
    out
}

/// Checks that the patch list's items appear in the `$setElementOrder` list
/// in the same relative order (deletions ignored).
fn validate_patch_with_set_order(
    patch: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<(), String> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = patch
        .iter()
        .filter(|v| {
            merge_key.is_none() || v.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some("delete")
        })
        .collect();
    let key_equal = |a: &Value, b: &Value| -> Result<bool, String> {
        match merge_key {
            None => Ok(json_eq(a, b)),
            Some(k) => {
                let (Value::Object(am), Value::Object(bm)) = (a, b) else {
                    return Err(ERR_BAD_SET_ELEMENT_ORDER.to_string());
                };
                let av = am.get(k).ok_or_else(|| err_no_merge_key(am, k))?;
                let bv = bm.get(k).ok_or_else(|| err_no_merge_key(bm, k))?;
                Ok(json_eq(av, bv))
            }
        }
    };
    let (mut pi, mut oi) = (0, 0);
    while pi < non_delete.len() && oi < order.len() {
        if non_delete[pi].get(DIRECTIVE_MARKER).is_some() {
            pi += 1;
            continue;
        }
        if key_equal(non_delete[pi], &order[oi])? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < non_delete.len() && oi >= order.len() {
        return Err(format!(
            "The order in patch list:\n{}\n doesn't match $setElementOrder list:\n{}\n",
            go_fmt(&Value::Array(patch.to_vec())),
            go_fmt(&Value::Array(order.to_vec()))
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_meta() -> PatchMetaTable {
        PatchMetaTable::new()
            .merge_key("spec.containers", "name")
            .merge_key("spec.containers.ports", "containerPort")
            .merge_key("spec.containers.env", "name")
            .merge_key("spec.template.spec.containers", "name")
            .merge_key("spec.template.spec.containers.ports", "containerPort")
            .merge_key("spec.template.spec.volumes", "name")
            .merge_primitives("metadata.finalizers")
            .retain_keys_at("spec.template.spec.volumes")
    }

    fn smp(doc: Value, patch: Value) -> Value {
        apply_strategic_merge_patch(&doc, &patch, &pod_meta()).unwrap()
    }

    // ----- JSON patch -----

    #[test]
    fn json_patch_adds_replaces_and_removes() {
        let doc = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 1}});
        let patch = json!([
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/metadata/labels/y", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/x"},
            {"op": "test", "path": "/metadata/name", "value": "a"}
        ]);
        let out = apply_json_patch(&doc, &patch).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(out["metadata"]["labels"], json!({"y": "2"}));
    }

    #[test]
    fn json_patch_appends_with_dash() {
        let doc = json!({"spec": {"containers": [{"name": "a"}]}});
        let patch = json!([{"op": "add", "path": "/spec/containers/-", "value": {"name": "b"}}]);
        let out = apply_json_patch(&doc, &patch).unwrap();
        assert_eq!(out["spec"]["containers"][1]["name"], "b");
    }

    #[test]
    fn json_patch_errors_explain_the_failing_operation() {
        let doc = json!({"metadata": {"name": "a"}});
        let e = apply_json_patch(
            &doc,
            &json!([{"op": "replace", "path": "/spec/x", "value": 1}]),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "replace operation does not apply: doc is missing key: /spec/x: missing value"
        );
        let e = apply_json_patch(&doc, &json!([{"op": "remove", "path": "/metadata/labels"}]))
            .unwrap_err();
        assert!(e.starts_with("remove operation does not apply"), "{e}");
        let e = apply_json_patch(
            &doc,
            &json!([{"op": "test", "path": "/metadata/name", "value": "b"}]),
        )
        .unwrap_err();
        assert_eq!(e, "testing value /metadata/name failed: test failed");
        let e = apply_json_patch(&doc, &json!([{"op": "add", "path": "/a/b", "value": 1}]))
            .unwrap_err();
        assert_eq!(
            e,
            "add operation does not apply: doc is missing path: \"/a/b\": missing value"
        );
    }

    #[test]
    fn json_patch_decode_errors_are_distinguished() {
        let doc = json!({});
        assert_eq!(
            try_apply_json_patch(&doc, &json!({"op": "add"})).unwrap_err(),
            JsonPatchError::Decode(
                "json: cannot unmarshal object into Go value of type jsonpatch.Patch".to_string()
            )
        );
        assert!(matches!(
            try_apply_json_patch(&doc, &json!([{"op": "frob", "path": "/a"}])),
            Err(JsonPatchError::Decode(_))
        ));
        assert!(matches!(
            try_apply_json_patch(&doc, &json!([{"op": "remove", "path": "/a"}])),
            Err(JsonPatchError::Apply(_))
        ));
        let many: Vec<Value> = (0..10001)
            .map(|_| json!({"op": "test", "path": "", "value": {}}))
            .collect();
        assert_eq!(
            try_apply_json_patch(&doc, &Value::Array(many)).unwrap_err(),
            JsonPatchError::TooManyOperations(10001)
        );
    }

    #[test]
    fn json_patch_failure_leaves_input_untouched() {
        let doc = json!({"a": 1});
        let _ = apply_json_patch(
            &doc,
            &json!([{"op": "replace", "path": "/a", "value": 2}, {"op": "remove", "path": "/zz"}]),
        );
        assert_eq!(doc, json!({"a": 1}));
    }

    // ----- merge patch -----

    #[test]
    fn merge_patch_follows_rfc7386() {
        let doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "x"}, {"name": "y"}]}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"containers": [{"name": "z"}]}});
        let out = apply_merge_patch(&doc, &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(out["spec"]["containers"], json!([{"name": "z"}]));
    }

    #[test]
    fn merge_patch_drops_nulls_in_new_objects() {
        let out = apply_merge_patch(&json!({}), &json!({"spec": {"a": null, "b": 1}})).unwrap();
        assert_eq!(out, json!({"spec": {"b": 1}}));
    }

    #[test]
    fn merge_patch_must_be_an_object() {
        assert!(apply_merge_patch(&json!({}), &json!([1])).is_err());
        assert!(apply_merge_patch(&json!({}), &json!("x")).is_err());
    }

    #[test]
    fn kubectl_scale_style_merge_patch() {
        let out = apply_merge_patch(
            &json!({"spec": {"replicas": 1, "selector": {}}}),
            &json!({"spec": {"replicas": 5}}),
        )
        .unwrap();
        assert_eq!(out["spec"], json!({"replicas": 5, "selector": {}}));
    }

    // ----- strategic merge patch: maps -----

    #[test]
    fn maps_merge_and_null_deletes() {
        let out = smp(
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1}}),
            json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"replicas": 2}}),
        );
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"replicas": 2}})
        );
    }

    #[test]
    fn null_for_missing_key_is_ignored() {
        let out = smp(
            json!({"a": 1}),
            json!({"b": null, "c": {"d": null, "e": 1}}),
        );
        assert_eq!(out, json!({"a": 1, "c": {"e": 1}}));
    }

    #[test]
    fn patch_replace_directive_replaces_a_map() {
        let out = smp(
            json!({"spec": {"selector": {"a": "1", "b": "2"}}}),
            json!({"spec": {"selector": {"$patch": "replace", "c": "3"}}}),
        );
        assert_eq!(out, json!({"spec": {"selector": {"c": "3"}}}));
    }

    #[test]
    fn patch_delete_directive_empties_a_map() {
        let out = smp(
            json!({"spec": {"selector": {"a": "1"}, "x": 1}}),
            json!({"spec": {"selector": {"$patch": "delete"}}}),
        );
        assert_eq!(out, json!({"spec": {"selector": {}, "x": 1}}));
    }

    #[test]
    fn unknown_map_directive_is_an_error() {
        let e = apply_strategic_merge_patch(
            &json!({}),
            &json!({"spec": {"$patch": "frob"}}),
            &pod_meta(),
        )
        .unwrap_err();
        assert_eq!(e, "unknown patch type: frob in map: map[$patch:frob]");
    }

    #[test]
    fn retain_keys_drops_unlisted_original_keys() {
        // kubectl apply switching a Deployment strategy from RollingUpdate to Recreate.
        let doc = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        assert_eq!(
            smp(doc, patch),
            json!({"spec": {"strategy": {"type": "Recreate"}}})
        );
    }

    #[test]
    fn retain_keys_must_cover_the_patch() {
        let e = apply_strategic_merge_patch(
            &json!({"a": {}}),
            &json!({"a": {"$retainKeys": ["x"], "y": 1}}),
            &pod_meta(),
        )
        .unwrap_err();
        assert_eq!(e, "invalid patch format of retainKeys");
    }

    #[test]
    fn retain_keys_on_volumes_switch_source() {
        let doc =
            json!({"spec": {"template": {"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"volumes": [
            {"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}
        ]}}}});
        assert_eq!(
            smp(doc, patch)["spec"]["template"]["spec"]["volumes"],
            json!([{"name": "v", "configMap": {"name": "cm"}}])
        );
    }

    #[test]
    fn documents_must_be_objects() {
        assert_eq!(
            apply_strategic_merge_patch(&json!({}), &json!([]), &NoPatchMeta).unwrap_err(),
            "invalid JSON document"
        );
        assert!(apply_strategic_merge_patch(&json!([]), &json!({}), &NoPatchMeta).is_err());
    }

    // ----- strategic merge patch: lists -----

    #[test]
    fn lists_without_strategy_are_replaced() {
        let out = smp(
            json!({"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}}),
            json!({"spec": {"tolerations": [{"key": "c"}]}}),
        );
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "c"}]));
    }

    #[test]
    fn merge_by_key_merges_matching_items_and_puts_new_ones_first() {
        // The "kubectl patch" docs example: adding a second container.
        let doc = json!({"spec": {"template": {"spec": {"containers": [{"name": "patch-demo-ctr", "image": "nginx"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}}});
        assert_eq!(
            smp(doc, patch)["spec"]["template"]["spec"]["containers"],
            json!([{"name": "patch-demo-ctr-2", "image": "redis"}, {"name": "patch-demo-ctr", "image": "nginx"}])
        );
    }

    #[test]
    fn merge_by_key_updates_in_place() {
        let doc = json!({"spec": {"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80}]}, {"name": "b", "image": "y"}]}});
        let patch = json!({"spec": {"containers": [{"name": "b", "image": "z"}]}});
        assert_eq!(
            smp(doc, patch)["spec"]["containers"],
            json!([{"name": "a", "image": "x", "ports": [{"containerPort": 80}]}, {"name": "b", "image": "z"}])
        );
    }

    #[test]
    fn nested_merge_lists_merge_too() {
        let doc = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]}]}});
        assert_eq!(
            smp(doc, patch)["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}])
        );
    }

    #[test]
    fn delete_directive_removes_items_by_key() {
        let doc = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
        let patch = json!({"spec": {"containers": [{"$patch": "delete", "name": "b"}]}});
        assert_eq!(
            smp(doc, patch)["spec"]["containers"],
            json!([{"name": "a"}, {"name": "c"}])
        );
    }

    #[test]
    fn replace_directive_in_list_replaces_the_list() {
        let doc = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}});
        let patch =
            json!({"spec": {"containers": [{"name": "c", "image": "y"}, {"$patch": "replace"}]}});
        assert_eq!(
            smp(doc, patch)["spec"]["containers"],
            json!([{"name": "c", "image": "y"}])
        );
    }

    #[test]
    fn list_items_need_the_merge_key() {
        let e = apply_strategic_merge_patch(
            &json!({"spec": {"containers": [{"name": "a"}]}}),
            &json!({"spec": {"containers": [{"image": "x"}]}}),
            &pod_meta(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "map: map[image:x] does not contain declared merge key: name"
        );
    }

    #[test]
    fn merge_primitives_union_the_values() {
        let out = smp(
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["c", "a"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
    }

    #[test]
    fn delete_from_primitive_list_removes_values() {
        let out = smp(
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
        );
        assert_eq!(out["metadata"], json!({"finalizers": ["a", "c"]}));
        let out = smp(
            json!({"metadata": {}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
        );
        assert_eq!(out["metadata"], json!({}));
    }

    #[test]
    fn set_element_order_reorders_lists() {
        let doc = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            smp(doc, patch)["spec"]["containers"],
            json!([{"name": "c"}, {"name": "a"}, {"name": "b"}])
        );
    }

    #[test]
    fn set_element_order_interleaves_server_only_items_by_server_position() {
        // The server-only "sidecar" sits before "b" on the server, so it stays
        // ahead of it; the patch's own items follow $setElementOrder.
        let doc =
            json!({"spec": {"containers": [{"name": "a"}, {"name": "sidecar"}, {"name": "b"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "b", "image": "new"}]
        }});
        assert_eq!(
            smp(doc, patch)["spec"]["containers"],
            json!([{"name": "sidecar"}, {"name": "b", "image": "new"}, {"name": "a"}])
        );
    }

    #[test]
    fn set_element_order_for_primitives_with_deletions() {
        // kubectl apply: finalizers [a, b] -> [c, a]
        let doc = json!({"metadata": {"finalizers": ["a", "b"]}});
        let patch = json!({"metadata": {
            "$setElementOrder/finalizers": ["c", "a"],
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "finalizers": ["c"]
        }});
        assert_eq!(
            smp(doc, patch)["metadata"],
            json!({"finalizers": ["c", "a"]})
        );
    }

    #[test]
    fn set_element_order_must_agree_with_the_patch_list() {
        let doc = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b"}, {"name": "a"}]
        }});
        let e = apply_strategic_merge_patch(&doc, &patch, &pod_meta()).unwrap_err();
        assert!(e.starts_with("The order in patch list:"), "{e}");
    }

    #[test]
    fn kubectl_client_side_apply_removes_and_updates_containers() {
        let doc = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "x"}, {"name": "b", "image": "b"}
        ]}}}});
        let patch = json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"a"}],"containers":[{"$patch":"delete","name":"b"},{"image":"y","name":"a"}]}}}});
        let out = smp(doc, patch);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "y"}])
        );
        assert!(!out.to_string().contains('$'));
    }

    #[test]
    fn kubectl_apply_annotation_update_and_field_removal() {
        let doc = json!({
            "metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{old}"}, "labels": {"app": "web", "old": "x"}},
            "spec": {"replicas": 2, "paused": true}
        });
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{new}"}, "labels": {"old": null}},
            "spec": {"paused": null, "replicas": 3}
        });
        let out = smp(doc, patch);
        assert_eq!(
            out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
            "{new}"
        );
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(out["spec"], json!({"replicas": 3}));
    }

    #[test]
    fn set_element_order_adds_list_missing_from_the_original() {
        let doc = json!({"spec": {}});
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                                    "containers": [{"name": "a"}, {"name": "b", "$patch": "delete"}]}});
        assert_eq!(
            smp(doc, patch)["spec"]["containers"],
            json!([{"name": "a"}])
        );
    }

    #[test]
    fn directives_in_new_items_are_stripped() {
        let doc = json!({"spec": {"containers": []}});
        let patch = json!({"spec": {"containers": [{"name": "a", "env": [{"name": "X", "$patch": "delete"}], "resources": {"$patch": "replace", "limits": {"cpu": "1"}}}]}});
        let out = smp(doc, patch);
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "env": [], "resources": {"limits": {"cpu": "1"}}}])
        );
    }

    #[test]
    fn type_changes_take_the_patch_value() {
        let out = smp(
            json!({"spec": {"a": "str", "b": [1]}}),
            json!({"spec": {"a": {"x": 1}, "b": "now-a-string"}}),
        );
        assert_eq!(out["spec"], json!({"a": {"x": 1}, "b": "now-a-string"}));
    }

    #[test]
    fn mixed_element_types_are_rejected() {
        let e = apply_strategic_merge_patch(
            &json!({"metadata": {"finalizers": ["a"]}}),
            &json!({"metadata": {"finalizers": [1]}}),
            &pod_meta(),
        )
        .unwrap_err();
        assert!(e.starts_with("list element types are not identical"), "{e}");
        let e = apply_strategic_merge_patch(
            &json!({"metadata": {"finalizers": [["a"]]}}),
            &json!({"metadata": {"finalizers": [["b"]]}}),
            &pod_meta(),
        )
        .unwrap_err();
        assert_eq!(e, "lists of lists are not supported");
    }

    #[test]
    fn numeric_merge_keys_match_across_number_representations() {
        let doc = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80.0, "name": "x"}]}]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "protocol": "UDP"}]}]}});
        let out = smp(doc, patch);
        assert_eq!(
            out["spec"]["containers"][0]["ports"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn maps_of_objects_in_lists_without_merge_key_error() {
        let meta = PatchMetaTable::new().merge_primitives("spec.things");
        let e = apply_strategic_merge_patch(
            &json!({"spec": {"things": [{"a": 1}]}}),
            &json!({"spec": {"things": [{"a": 2}]}}),
            &meta,
        )
        .unwrap_err();
        assert_eq!(e, "cannot merge lists without merge key for spec.things");
    }

    #[test]
    fn patch_meta_sees_paths_without_indices() {
        use std::cell::RefCell;
        struct Recorder(RefCell<Vec<String>>);
        impl PatchMeta for Recorder {
            fn list_strategy(&self, path: &[String]) -> ListStrategy {
                self.0.borrow_mut().push(path.join("."));
                if path.last().map(String::as_str) == Some("containers") {
                    ListStrategy::MergeByKey("name".into())
                } else {
                    ListStrategy::Replace
                }
            }
        }
        let rec = Recorder(RefCell::new(Vec::new()));
        let doc =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["x"]}]}}}});
        let patch =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["y"]}]}}}});
        let out = apply_strategic_merge_patch(&doc, &patch, &rec).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["y"])
        );
        let seen = rec.0.borrow();
        assert!(seen.contains(&"spec.template.spec.containers".to_string()));
        assert!(seen.contains(&"spec.template.spec.containers.args".to_string()));
    }

    #[test]
    fn the_input_documents_are_not_modified() {
        let doc = json!({"a": {"b": 1}});
        let patch = json!({"a": {"b": null}});
        let _ = smp(doc.clone(), patch.clone());
        assert_eq!(doc, json!({"a": {"b": 1}}));
    }

    #[test]
    fn hostile_patches_do_not_panic() {
        let doc = json!({"spec": {"containers": [{"name": "a"}], "x": [1, 2]}, "metadata": {"finalizers": ["a"]}});
        let patches = [
            json!({"$patch": 5}),
            json!({"$retainKeys": "x"}),
            json!({"spec": {"$setElementOrder/containers": "x"}}),
            json!({"spec": {"$setElementOrder/containers": [1, 2]}}),
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [5]}}),
            json!({"spec": {"$setElementOrder/x": [{"a": 1}]}}),
            json!({"spec": {"containers": [{"$patch": "delete"}]}}),
            json!({"spec": {"containers": [{"$patch": 1, "name": "a"}]}}),
            json!({"spec": {"containers": [{"$patch": "merge", "name": "a"}]}}),
            json!({"spec": {"containers": [1, 2]}}),
            json!({"spec": {"$deleteFromPrimitiveList/x": "a"}}),
            json!({"metadata": {"$setElementOrder/finalizers": [["a"]]}}),
            json!({"$setElementOrder/": []}),
        ];
        for p in patches {
            let _ = apply_strategic_merge_patch(&doc, &p, &pod_meta());
        }
    }
}
