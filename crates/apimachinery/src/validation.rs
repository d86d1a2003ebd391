//! Name and object-metadata validation with the messages upstream prints.
//!
//! The `is_*` checks return a list of human readable problems (empty when the
//! value is fine), exactly like `k8s.io/apimachinery/pkg/util/validation`.
//! The `validate_*` functions turn those into [`FieldError`]s with upstream
//! field paths (`metadata.name`, `metadata.labels`, ...).

use crate::errors::FieldError;
use once_cell::sync::Lazy;
use regex::Regex;
use serde_json::{Map, Value};

/// Longest DNS-1123 label (and DNS-1035 label, label value, name part).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Longest DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Longest label value.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// Upper bound on the summed size of all annotation keys and values (256 KiB).
pub const TOTAL_ANNOTATION_SIZE_LIMIT_B: usize = 256 * 1024;
/// Message for a field that may not change on update.
pub const FIELD_IMMUTABLE_ERROR_MSG: &str = "field is immutable";
/// Message for a negative count.
pub const IS_NEGATIVE_ERROR_MSG: &str = "must be greater than or equal to 0";

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

fn dns1123_subdomain_fmt() -> String {
    format!("{DNS1123_LABEL_FMT}(\\.{DNS1123_LABEL_FMT})*")
}

fn label_value_fmt() -> String {
    format!("({QUALIFIED_NAME_FMT})?")
}

fn anchored(fmt: &str) -> Regex {
    // The patterns are constants known to compile.
    Regex::new(&format!("^(?:{fmt})$")).expect("constant regex")
}

static DNS1123_LABEL_RE: Lazy<Regex> = Lazy::new(|| anchored(DNS1123_LABEL_FMT));
static DNS1123_SUBDOMAIN_RE: Lazy<Regex> = Lazy::new(|| anchored(&dns1123_subdomain_fmt()));
static DNS1035_LABEL_RE: Lazy<Regex> = Lazy::new(|| anchored(DNS1035_LABEL_FMT));
static QUALIFIED_NAME_RE: Lazy<Regex> = Lazy::new(|| anchored(QUALIFIED_NAME_FMT));
static LABEL_VALUE_RE: Lazy<Regex> = Lazy::new(|| anchored(&label_value_fmt()));

/// `must be no more than N characters`.
pub fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// Upstream `RegexError`: the message, the examples and the regex.
pub fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    // Upstream writes each example as "'x', " and joins them with " or ".
    let ex: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        ex.join(" or ")
    )
}

/// `must be non-empty`.
pub fn empty_error() -> String {
    "must be non-empty".to_string()
}

/// Checks an RFC 1123 label (namespace names, most "label" style names).
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !DNS1123_LABEL_RE.is_match(value) {
        if DNS1123_SUBDOMAIN_RE.is_match(value) {
            // A valid subdomain that is not a valid label can only be failing on dots.
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Checks an RFC 1123 subdomain (most object names).
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !DNS1123_SUBDOMAIN_RE.is_match(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR_MSG,
            &dns1123_subdomain_fmt(),
            &["example.com"],
        ));
    }
    errs
}

/// Checks an RFC 1035 label (service names).
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !DNS1035_LABEL_RE.is_match(value) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Checks a "qualified name": label keys, annotation keys, finalizers.
/// An optional DNS subdomain prefix and `/`, then a name of at most 63
/// characters.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {}", empty_error()));
            } else {
                for msg in is_dns1123_subdomain(prefix) {
                    errs.push(format!("prefix part {msg}"));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {}", empty_error()));
    } else if name.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(DNS1123_LABEL_MAX_LENGTH)
        ));
    }
    if !QUALIFIED_NAME_RE.is_match(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Checks a label value: empty, or up to 63 alphanumerics, `-`, `_`, `.`
/// starting and ending with an alphanumeric.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !LABEL_VALUE_RE.is_match(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR_MSG,
            &label_value_fmt(),
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Checks a name used as a single URL path segment: it may not be `.` or
/// `..` and may not contain `/` or `%`. Empty names are not reported.
pub fn is_valid_path_segment_name(value: &str) -> Vec<String> {
    for bad in [".", ".."] {
        if value == bad {
            return vec![format!("may not be '{bad}'")];
        }
    }
    is_valid_path_segment_prefix(value)
}

/// Like [`is_valid_path_segment_name`] for a prefix (generateName): only the
/// "may not contain" rules apply.
pub fn is_valid_path_segment_prefix(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    for bad in ["/", "%"] {
        if value.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// Which rule an object's `metadata.name` must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameValidator {
    /// RFC 1123 subdomain (pods, configmaps, deployments, ...).
    Subdomain,
    /// RFC 1123 label (namespaces, ...).
    Label,
    /// RFC 1035 label (services).
    Dns1035Label,
    /// Anything usable as a path segment (RBAC roles, ...).
    PathSegment,
}

/// Upstream quirk kept on purpose: a generateName prefix ending in `-` is
/// checked as if its last two characters were replaced by an `a`.
fn mask_trailing_dash(name: &str) -> String {
    if let Some(stripped) = name.strip_suffix('-') {
        let mut chars: Vec<char> = stripped.chars().collect();
        chars.pop();
        let mut s: String = chars.into_iter().collect();
        s.push('a');
        s
    } else {
        name.to_string()
    }
}

impl NameValidator {
    /// The problems with `name`; `prefix` is true for a `generateName`.
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        match self {
            NameValidator::PathSegment => {
                if prefix {
                    is_valid_path_segment_prefix(name)
                } else {
                    is_valid_path_segment_name(name)
                }
            }
            _ => {
                let name = if prefix {
                    mask_trailing_dash(name)
                } else {
                    name.to_string()
                };
                match self {
                    NameValidator::Subdomain => is_dns1123_subdomain(&name),
                    NameValidator::Label => is_dns1123_label(&name),
                    _ => is_dns1035_label(&name),
                }
            }
        }
    }
}

fn metadata_of(meta: &Value) -> Option<&Map<String, Value>> {
    let m = meta.as_object()?;
    match m.get("metadata") {
        Some(Value::Object(inner)) => Some(inner),
        _ => Some(m),
    }
}

fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Validates a `labels` map at `path` (upstream `ValidateLabels`).
pub fn validate_labels(labels: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(labels) = labels else { return errs };
    let map = match labels {
        Value::Null => return errs,
        Value::Object(m) => m,
        other => {
            errs.push(FieldError::invalid(
                path,
                other.clone(),
                "must be a map of string keys to string values",
            ));
            return errs;
        }
    };
    for (k, v) in map {
        for msg in is_qualified_name(k) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
        match v {
            Value::String(s) => {
                for msg in is_valid_label_value(s) {
                    errs.push(FieldError::invalid(path, s.as_str(), msg));
                }
            }
            other => errs.push(FieldError::invalid(path, other.clone(), "must be a string")),
        }
    }
    errs
}

/// Validates an `annotations` map at `path`: keys are qualified names (case
/// insensitive) and the total size stays within 256 KiB.
pub fn validate_annotations(annotations: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(annotations) = annotations else {
        return errs;
    };
    let map = match annotations {
        Value::Null => return errs,
        Value::Object(m) => m,
        other => {
            errs.push(FieldError::invalid(
                path,
                other.clone(),
                "must be a map of string keys to string values",
            ));
            return errs;
        }
    };
    let mut total: usize = 0;
    for (k, v) in map {
        for msg in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
        total = total.saturating_add(k.len());
        match v {
            Value::String(s) => total = total.saturating_add(s.len()),
            Value::Null => {}
            other => errs.push(FieldError::invalid(path, other.clone(), "must be a string")),
        }
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_B {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT_B));
    }
    errs
}

/// Splits an apiVersion into (group, version) as upstream's
/// `ParseGroupVersion`; `None` when it has more than one `/`.
fn parse_group_version(api_version: &str) -> Option<(&str, &str)> {
    if api_version.is_empty() {
        return Some(("", ""));
    }
    match api_version.split_once('/') {
        None => Some(("", api_version)),
        Some((g, v)) if !v.contains('/') => Some((g, v)),
        _ => None,
    }
}

/// Validates `ownerReferences` at `path`.
pub fn validate_owner_references(refs: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let list = match refs {
        None | Some(Value::Null) => return errs,
        Some(Value::Array(a)) => a,
        Some(other) => {
            errs.push(FieldError::invalid(
                path,
                other.clone(),
                "must be a list of owner references",
            ));
            return errs;
        }
    };
    let mut first_controller: Option<String> = None;
    for r in list {
        let Some(m) = r.as_object() else {
            errs.push(FieldError::invalid(
                path,
                r.clone(),
                "must be an owner reference object",
            ));
            continue;
        };
        let api_version = str_field(m, "apiVersion");
        let kind = str_field(m, "kind");
        let (group, version) = parse_group_version(api_version).unwrap_or(("", ""));
        if version.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.kind"),
                kind,
                "must not be empty",
            ));
        }
        let name = str_field(m, "name");
        if name.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.name"),
                name,
                "must not be empty",
            ));
        }
        let uid = str_field(m, "uid");
        if uid.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.uid"),
                uid,
                "must not be empty",
            ));
        }
        if group.is_empty() && version == "v1" && kind == "Event" {
            errs.push(FieldError::invalid(
                path,
                r.clone(),
                format!("{group}/{version}, Kind={kind} is disallowed from being an owner"),
            ));
        }
        if m.get("controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{kind}/{name}");
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    Value::Array(list.clone()),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// Validates `finalizers` at `path`: each a qualified name, and not both
/// `orphan` and `foregroundDeletion`.
pub fn validate_finalizers(finalizers: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let list = match finalizers {
        None | Some(Value::Null) => return errs,
        Some(Value::Array(a)) => a,
        Some(other) => {
            errs.push(FieldError::invalid(
                path,
                other.clone(),
                "must be a list of strings",
            ));
            return errs;
        }
    };
    let mut orphan = false;
    let mut foreground = false;
    for f in list {
        let Some(s) = f.as_str() else {
            errs.push(FieldError::invalid(path, f.clone(), "must be a string"));
            continue;
        };
        for msg in is_qualified_name(s) {
            errs.push(FieldError::invalid(path, s, msg));
        }
        orphan |= s == "orphan";
        foreground |= s == "foregroundDeletion";
    }
    if orphan && foreground {
        errs.push(FieldError::invalid(
            path,
            Value::Array(list.clone()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// Validates object metadata on create (upstream `ValidateObjectMeta`).
///
/// `meta` is the `metadata` object; passing the whole object also works (its
/// `metadata` member is used). Checks: name (or generateName) present and
/// well formed, namespace required/forbidden by scope, generation ≥ 0,
/// labels, annotations, ownerReferences and finalizers.
pub fn validate_object_meta(
    meta: &Value,
    namespaced: bool,
    name: NameValidator,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = Map::new();
    let m = match metadata_of(meta) {
        Some(m) => m,
        None if meta.is_null() => &empty,
        None => {
            errs.push(FieldError::invalid(
                "metadata",
                meta.clone(),
                "must be an object",
            ));
            return errs;
        }
    };

    let generate_name = str_field(m, "generateName");
    if !generate_name.is_empty() {
        for msg in name.check(generate_name, true) {
            errs.push(FieldError::invalid(
                "metadata.generateName",
                generate_name,
                msg,
            ));
        }
    }
    let obj_name = str_field(m, "name");
    if obj_name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for msg in name.check(obj_name, false) {
            errs.push(FieldError::invalid("metadata.name", obj_name, msg));
        }
    }

    let ns = str_field(m, "namespace");
    if namespaced {
        if ns.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            for msg in NameValidator::Label.check(ns, false) {
                errs.push(FieldError::invalid("metadata.namespace", ns, msg));
            }
        }
    } else if !ns.is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }

    if let Some(g) = m.get("generation").and_then(Value::as_i64) {
        if g < 0 {
            errs.push(FieldError::invalid(
                "metadata.generation",
                g,
                IS_NEGATIVE_ERROR_MSG,
            ));
        }
    }
    errs.extend(validate_labels(m.get("labels"), "metadata.labels"));
    errs.extend(validate_annotations(
        m.get("annotations"),
        "metadata.annotations",
    ));
    errs.extend(validate_owner_references(
        m.get("ownerReferences"),
        "metadata.ownerReferences",
    ));
    errs.extend(validate_finalizers(
        m.get("finalizers"),
        "metadata.finalizers",
    ));
    errs
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Validates metadata on update (upstream `ValidateObjectMetaUpdate`):
/// name, namespace, uid, creationTimestamp, deletionTimestamp and
/// deletionGracePeriodSeconds are immutable ("field is immutable"),
/// generation may not go down, no finalizer may be added once the old object
/// is being deleted, and labels/annotations/ownerReferences of the new object
/// are validated again.
///
/// Unlike upstream this does not insist on a non-empty resourceVersion: the
/// caller's precondition handling owns that.
pub fn validate_object_meta_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = Map::new();
    let n = metadata_of(new).unwrap_or(&empty);
    let o = metadata_of(old).unwrap_or(&empty);

    if o.get("deletionTimestamp").is_some_and(|v| !v.is_null()) {
        let old_f = string_list(o.get("finalizers"));
        let mut extra: Vec<String> = string_list(n.get("finalizers"))
            .into_iter()
            .filter(|f| !old_f.contains(f))
            .collect();
        extra.sort();
        extra.dedup();
        if !extra.is_empty() {
            let rendered: Vec<String> = extra.iter().map(|f| format!("{f:?}")).collect();
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    rendered.join(", ")
                ),
            ));
        }
    }

    let new_gen = n.get("generation").and_then(Value::as_i64).unwrap_or(0);
    let old_gen = o.get("generation").and_then(Value::as_i64).unwrap_or(0);
    if new_gen < old_gen {
        errs.push(FieldError::invalid(
            "metadata.generation",
            new_gen,
            "must not be decremented",
        ));
    }

    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        let nv = n.get(field).cloned().unwrap_or(Value::Null);
        let ov = o.get(field).cloned().unwrap_or(Value::Null);
        let same = nv == ov || (is_emptyish(&nv) && is_emptyish(&ov));
        if !same {
            errs.push(FieldError::invalid(
                format!("metadata.{field}"),
                nv,
                FIELD_IMMUTABLE_ERROR_MSG,
            ));
        }
    }

    errs.extend(validate_labels(n.get("labels"), "metadata.labels"));
    errs.extend(validate_annotations(
        n.get("annotations"),
        "metadata.annotations",
    ));
    errs.extend(validate_owner_references(
        n.get("ownerReferences"),
        "metadata.ownerReferences",
    ));
    errs
}

fn is_emptyish(v: &Value) -> bool {
    matches!(v, Value::Null) || v.as_str() == Some("")
}

/// Validates a `metav1.LabelSelector` at `path` (e.g. `spec.selector`).
/// A null/absent selector is fine.
pub fn validate_label_selector(sel: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let m = match sel {
        Value::Null => return errs,
        Value::Object(m) => m,
        other => {
            errs.push(FieldError::invalid(
                path,
                other.clone(),
                "must be a label selector object",
            ));
            return errs;
        }
    };
    errs.extend(validate_labels(
        m.get("matchLabels"),
        &format!("{path}.matchLabels"),
    ));
    let exprs = match m.get("matchExpressions") {
        None | Some(Value::Null) => return errs,
        Some(Value::Array(a)) => a,
        Some(other) => {
            errs.push(FieldError::invalid(
                format!("{path}.matchExpressions"),
                other.clone(),
                "must be a list",
            ));
            return errs;
        }
    };
    for (i, e) in exprs.iter().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        let empty = Map::new();
        let em = e.as_object().unwrap_or(&empty);
        let values: Vec<&Value> = em
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let op = str_field(em, "operator");
        match op {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        format!("{p}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        format!("{p}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            _ => errs.push(FieldError::invalid(
                format!("{p}.operator"),
                op,
                "not a valid selector operator",
            )),
        }
        let key = str_field(em, "key");
        for msg in is_qualified_name(key) {
            errs.push(FieldError::invalid(format!("{p}.key"), key, msg));
        }
        for (j, v) in values.iter().enumerate() {
            match v.as_str() {
                Some(s) => {
                    for msg in is_valid_label_value(s) {
                        errs.push(FieldError::invalid(format!("{p}.values[{j}]"), s, msg));
                    }
                }
                None => errs.push(FieldError::invalid(
                    format!("{p}.values[{j}]"),
                    (*v).clone(),
                    "must be a string",
                )),
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::FieldErrorType;
    use serde_json::json;

    #[test]
    fn subdomain_accepts_dotted_lowercase_names() {
        assert!(is_dns1123_subdomain("example.com").is_empty());
        assert!(is_dns1123_subdomain("a").is_empty());
        assert!(is_dns1123_subdomain("my-app.v1").is_empty());
    }

    #[test]
    fn subdomain_rejects_uppercase_with_upstream_message() {
        let errs = is_dns1123_subdomain("Foo");
        assert_eq!(
            errs,
            vec!["a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string()]
        );
    }

    #[test]
    fn subdomain_longer_than_253_reports_length() {
        let long = "a".repeat(254);
        assert_eq!(
            is_dns1123_subdomain(&long),
            vec!["must be no more than 253 characters".to_string()]
        );
    }

    #[test]
    fn label_with_dots_says_must_not_contain_dots() {
        assert_eq!(
            is_dns1123_label("a.b"),
            vec!["must not contain dots".to_string()]
        );
    }

    #[test]
    fn label_rejects_leading_dash_with_examples() {
        let e = is_dns1123_label("-a");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("a lowercase RFC 1123 label must consist of"));
        assert!(e[0].contains("(e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"));
    }

    #[test]
    fn dns1035_label_must_start_with_letter() {
        assert!(is_dns1035_label("abc-123").is_empty());
        let e = is_dns1035_label("1abc");
        assert!(e[0].starts_with("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character"));
    }

    #[test]
    fn qualified_name_accepts_prefixed_keys() {
        assert!(is_qualified_name("app").is_empty());
        assert!(is_qualified_name("app.kubernetes.io/name").is_empty());
        assert!(is_qualified_name("My_Key.1").is_empty());
    }

    #[test]
    fn qualified_name_reports_bad_prefix_and_name() {
        let e = is_qualified_name("Bad_Prefix/");
        assert_eq!(e.len(), 3);
        assert!(e[0].starts_with("prefix part a lowercase RFC 1123 subdomain"));
        assert_eq!(e[1], "name part must be non-empty");
        assert!(e[2].starts_with("name part must consist of alphanumeric characters"));
        let e = is_qualified_name("a/b/c");
        assert!(e[0].starts_with("a qualified name must consist of alphanumeric characters"));
        assert!(e[0].ends_with(
            "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ));
        let e = is_qualified_name("/x");
        assert_eq!(e, vec!["prefix part must be non-empty".to_string()]);
    }

    #[test]
    fn qualified_name_too_long_name_part() {
        let e = is_qualified_name(&"a".repeat(64));
        assert_eq!(
            e,
            vec!["name part must be no more than 63 characters".to_string()]
        );
    }

    #[test]
    fn label_values_may_be_empty_but_not_start_with_dash() {
        assert!(is_valid_label_value("").is_empty());
        assert!(is_valid_label_value("v1.2_x").is_empty());
        let e = is_valid_label_value("-x");
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"));
        assert_eq!(
            is_valid_label_value(&"a".repeat(64)),
            vec!["must be no more than 63 characters".to_string()]
        );
    }

    #[test]
    fn path_segment_names_forbid_dots_slash_and_percent() {
        assert_eq!(
            is_valid_path_segment_name(".."),
            vec!["may not be '..'".to_string()]
        );
        assert_eq!(
            is_valid_path_segment_name("."),
            vec!["may not be '.'".to_string()]
        );
        assert_eq!(
            is_valid_path_segment_name("a/b%c"),
            vec![
                "may not contain '/'".to_string(),
                "may not contain '%'".to_string()
            ]
        );
        assert!(is_valid_path_segment_name("system:admin").is_empty());
    }

    #[test]
    fn object_meta_requires_name() {
        let errs = validate_object_meta(
            &json!({"namespace": "default"}),
            true,
            NameValidator::Subdomain,
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
    }

    #[test]
    fn object_meta_accepts_the_whole_object_too() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default"}});
        assert!(validate_object_meta(&obj, true, NameValidator::Subdomain).is_empty());
    }

    #[test]
    fn object_meta_reports_invalid_name() {
        let errs = validate_object_meta(
            &json!({"name": "Bad_Name", "namespace": "default"}),
            true,
            NameValidator::Subdomain,
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].kind, FieldErrorType::Invalid);
        assert_eq!(errs[0].field, "metadata.name");
        assert!(errs[0].to_string().starts_with(
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ));
    }

    #[test]
    fn generate_name_with_trailing_dash_is_fine() {
        let errs = validate_object_meta(
            &json!({"generateName": "web-", "name": "web-abcde", "namespace": "ns"}),
            true,
            NameValidator::Label,
        );
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn namespace_required_for_namespaced_and_forbidden_for_cluster_scoped() {
        let errs = validate_object_meta(&json!({"name": "a"}), true, NameValidator::Subdomain);
        assert_eq!(errs[0].to_string(), "metadata.namespace: Required value");
        let errs = validate_object_meta(
            &json!({"name": "a", "namespace": "x"}),
            false,
            NameValidator::Subdomain,
        );
        assert_eq!(
            errs[0].to_string(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
    }

    #[test]
    fn labels_keys_and_values_are_checked() {
        let errs = validate_object_meta(
            &json!({"name": "a", "labels": {"bad key": "ok", "good": "-bad"}}),
            false,
            NameValidator::Subdomain,
        );
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].field, "metadata.labels");
        assert_eq!(errs[0].value, Some(json!("bad key")));
        assert_eq!(errs[1].value, Some(json!("-bad")));
    }

    #[test]
    fn annotations_are_case_insensitive_and_size_limited() {
        assert!(validate_annotations(
            Some(&json!({"Example.COM/Key": "v"})),
            "metadata.annotations"
        )
        .is_empty());
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_B);
        let errs = validate_annotations(Some(&json!({"k": big})), "metadata.annotations");
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
    }

    #[test]
    fn owner_references_need_all_identifying_fields() {
        let errs = validate_owner_references(
            Some(&json!([{"apiVersion": "", "kind": "", "name": "", "uid": ""}])),
            "metadata.ownerReferences",
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "metadata.ownerReferences.apiVersion",
                "metadata.ownerReferences.kind",
                "metadata.ownerReferences.name",
                "metadata.ownerReferences.uid"
            ]
        );
        assert_eq!(errs[0].detail, "version must not be empty");
    }

    #[test]
    fn only_one_owner_reference_may_be_controller() {
        let refs = json!([
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "2", "controller": true}
        ]);
        let errs = validate_owner_references(Some(&refs), "metadata.ownerReferences");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].detail.contains("for ReplicaSet/a and ReplicaSet/b"));
    }

    #[test]
    fn events_cannot_be_owners() {
        let refs = json!([{"apiVersion": "v1", "kind": "Event", "name": "a", "uid": "1"}]);
        let errs = validate_owner_references(Some(&refs), "metadata.ownerReferences");
        assert_eq!(
            errs[0].detail,
            "/v1, Kind=Event is disallowed from being an owner"
        );
    }

    #[test]
    fn finalizers_must_be_qualified_and_not_conflicting() {
        let errs = validate_finalizers(
            Some(&json!(["example.com/x", "bad finalizer"])),
            "metadata.finalizers",
        );
        assert_eq!(errs.len(), 1);
        let errs = validate_finalizers(
            Some(&json!(["orphan", "foregroundDeletion"])),
            "metadata.finalizers",
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].detail,
            "finalizer orphan and foregroundDeletion cannot be both set"
        );
    }

    #[test]
    fn negative_generation_is_invalid() {
        let errs = validate_object_meta(
            &json!({"name": "a", "generation": -1}),
            false,
            NameValidator::Subdomain,
        );
        assert_eq!(
            errs[0].to_string(),
            "metadata.generation: Invalid value: -1: must be greater than or equal to 0"
        );
    }

    #[test]
    fn update_rejects_changed_immutable_fields() {
        let old = json!({"metadata": {"name": "a", "namespace": "n", "uid": "u1", "creationTimestamp": "2024-01-01T00:00:00Z"}});
        let new = json!({"metadata": {"name": "a", "namespace": "n", "uid": "u2", "creationTimestamp": "2024-01-01T00:00:00Z"}});
        let errs = validate_object_meta_update(&new, &old);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "metadata.uid: Invalid value: \"u2\": field is immutable"
        );
        assert!(validate_object_meta_update(&old, &old).is_empty());
    }

    #[test]
    fn update_cannot_add_finalizers_while_deleting() {
        let old = json!({"metadata": {"name": "a", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["x/a"]}});
        let new = json!({"metadata": {"name": "a", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["x/a", "x/b"]}});
        let errs = validate_object_meta_update(&new, &old);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"x/b\"}"
        );
    }

    #[test]
    fn update_rejects_generation_decrement() {
        let old = json!({"metadata": {"name": "a", "generation": 3}});
        let new = json!({"metadata": {"name": "a", "generation": 2}});
        let errs = validate_object_meta_update(&new, &old);
        assert_eq!(errs[0].detail, "must not be decremented");
    }

    #[test]
    fn label_selector_validation_reports_upstream_messages() {
        let sel = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": []},
                {"key": "env", "operator": "Exists", "values": ["x"]},
                {"key": "bad key", "operator": "Bogus"}
            ]
        });
        let errs = validate_label_selector(&sel, "spec.selector");
        let rendered: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(rendered[0], "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'");
        assert_eq!(rendered[1], "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
        assert_eq!(rendered[2], "spec.selector.matchExpressions[2].operator: Invalid value: \"Bogus\": not a valid selector operator");
        assert!(rendered[3].starts_with("spec.selector.matchExpressions[2].key: Invalid value: \"bad key\": name part must consist of"));
        assert!(validate_label_selector(&Value::Null, "spec.selector").is_empty());
    }

    #[test]
    fn path_segment_validator_allows_colons() {
        assert!(NameValidator::PathSegment
            .check("system:controller:x", false)
            .is_empty());
        assert!(!NameValidator::PathSegment.check("a/b", true).is_empty());
    }
}
