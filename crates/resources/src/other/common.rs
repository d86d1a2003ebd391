//! Helpers shared by the apps, batch and other-group strategies: JSON access,
//! table cells, label selectors, name validation, Go-style value rendering and
//! a pod-template fallback.
//!
//! Several of these duplicate what `apimachinery::{validation, labels}` and the
//! core/v1 strategy are expected to expose; they are kept small and private so
//! the call sites can be switched over once those exist.

use apimachinery::{FieldError, FieldErrorType};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::strategy::{human_duration, TableColumn};

// ---------------------------------------------------------------------------
// JSON access
// ---------------------------------------------------------------------------

/// The string at a JSON pointer, if it is a string.
pub(crate) fn ptr_str<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

/// The integer at a JSON pointer (also accepting integral floats).
pub(crate) fn ptr_i64(v: &Value, p: &str) -> Option<i64> {
    v.pointer(p).and_then(as_i64)
}

pub(crate) fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        _ => None,
    }
}

pub(crate) fn ptr_bool(v: &Value, p: &str) -> Option<bool> {
    v.pointer(p).and_then(Value::as_bool)
}

/// The array at a JSON pointer, or an empty slice.
pub(crate) fn ptr_arr<'a>(v: &'a Value, p: &str) -> &'a [Value] {
    v.pointer(p)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Present and not null.
pub(crate) fn is_set(v: Option<&Value>) -> bool {
    !matches!(v, None | Some(Value::Null))
}

/// `v[key]` as an object, created when missing or null. `None` when `v` is not
/// an object or `v[key]` holds something else (left alone for validation).
pub(crate) fn obj_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let m = v.as_object_mut()?;
    let slot = m.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// Walk/create nested objects along `keys`.
pub(crate) fn obj_path_mut<'a>(
    v: &'a mut Value,
    keys: &[&str],
) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for k in keys {
        let m = cur.as_object_mut()?;
        let slot = m.entry(k.to_string()).or_insert(Value::Null);
        if slot.is_null() {
            *slot = Value::Object(Map::new());
        }
        cur = slot;
    }
    cur.as_object_mut()
}

/// Set `m[key] = val` when the key is missing or null.
pub(crate) fn set_default(m: &mut Map<String, Value>, key: &str, val: Value) {
    if !is_set(m.get(key)) {
        m.insert(key.to_string(), val);
    }
}

/// Everything but metadata and status (what a spec change is made of).
pub(crate) fn without_meta_status(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------
// Table helpers
// ---------------------------------------------------------------------------

pub(crate) fn column(
    name: &'static str,
    type_: &'static str,
    description: &'static str,
    priority: i32,
) -> TableColumn {
    TableColumn {
        name,
        type_,
        format: "",
        description,
        priority,
    }
}

pub(crate) const CREATION_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
pub(crate) const CONTAINERS_DESC: &str = "Names of each container in the template.";
pub(crate) const IMAGES_DESC: &str = "Images referenced by each container in the template.";

pub(crate) fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

/// Upstream's `translateTimestampSince`: human duration since the timestamp,
/// `<unknown>` when unset or unparseable.
pub(crate) fn since(ts: Option<&str>) -> String {
    match ts.and_then(parse_time) {
        Some(t) => human_duration(chrono::Utc::now().signed_duration_since(t)),
        None => "<unknown>".to_string(),
    }
}

pub(crate) fn parse_time(ts: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Container names and images of a pod spec, comma separated (upstream's
/// `layoutContainerCells`).
pub(crate) fn container_cells(pod_spec: Option<&Value>) -> (String, String) {
    let containers = pod_spec
        .and_then(|p| p.get("containers"))
        .and_then(Value::as_array);
    let mut names = Vec::new();
    let mut images = Vec::new();
    for c in containers.map(Vec::as_slice).unwrap_or(&[]) {
        names.push(
            c.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        );
        images.push(
            c.get("image")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        );
    }
    (names.join(","), images.join(","))
}

/// The columns of upstream's default table convertor (resources without a
/// printer, e.g. roles): Name (added by the store) and Created At.
pub(crate) fn created_at_columns() -> Vec<TableColumn> {
    vec![column("Created At", "date", CREATION_DESC, 0)]
}

/// creationTimestamp in RFC 3339 UTC, as the default table convertor prints it.
pub(crate) fn created_at_cell(obj: &Value) -> Value {
    let t = ptr_str(obj, "/metadata/creationTimestamp").and_then(parse_time);
    match t {
        Some(t) => s(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        // Go formats the zero time.
        None => s("0001-01-01T00:00:00Z"),
    }
}

/// `metav1.GetControllerOf`: the owner reference with controller=true.
pub(crate) fn controller_ref(obj: &Value) -> Option<&Value> {
    ptr_arr(obj, "/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

// ---------------------------------------------------------------------------
// Labels and label selectors
// ---------------------------------------------------------------------------

/// A JSON object of strings as an ordered map; `None` when absent or null.
/// Non-string values are skipped (structural validation is not ours).
pub(crate) fn string_map(v: Option<&Value>) -> Option<BTreeMap<String, String>> {
    match v {
        Some(Value::Object(m)) => Some(
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect(),
        ),
        _ => None,
    }
}

/// `labels.FormatLabels`: `k=v,k2=v2`, `<none>` when empty.
pub(crate) fn format_labels(m: Option<&BTreeMap<String, String>>) -> String {
    match m {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SelOp {
    Equals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone)]
pub(crate) struct Requirement {
    pub key: String,
    pub op: SelOp,
    pub values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self.op {
            SelOp::Equals | SelOp::In => labels
                .get(&self.key)
                .is_some_and(|v| self.values.contains(v)),
            SelOp::NotIn => labels
                .get(&self.key)
                .is_none_or(|v| !self.values.contains(v)),
            SelOp::Exists => labels.contains_key(&self.key),
            SelOp::DoesNotExist => !labels.contains_key(&self.key),
        }
    }

    fn render(&self) -> String {
        let mut vals = self.values.clone();
        vals.sort();
        match self.op {
            SelOp::Equals => format!("{}={}", self.key, vals.join(",")),
            SelOp::In => format!("{} in ({})", self.key, vals.join(",")),
            SelOp::NotIn => format!("{} notin ({})", self.key, vals.join(",")),
            SelOp::Exists => self.key.clone(),
            SelOp::DoesNotExist => format!("!{}", self.key),
        }
    }
}

/// A parsed `metav1.LabelSelector`. `None` requirements = the nil selector
/// (matches nothing); an empty list matches everything.
#[derive(Debug, Clone)]
pub(crate) struct Selector {
    pub reqs: Option<Vec<Requirement>>,
}

impl Selector {
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match &self.reqs {
            None => false,
            Some(r) => r.iter().all(|r| r.matches(labels)),
        }
    }
    /// `labels.Selector.Empty()`: true for the match-everything selector
    /// only (the nil selector matches nothing and is not empty).
    pub(crate) fn is_empty(&self) -> bool {
        self.reqs.as_ref().is_some_and(Vec::is_empty)
    }
    /// `labels.Selector.String()`: requirements sorted by key.
    pub(crate) fn render(&self) -> String {
        match &self.reqs {
            None => String::new(),
            Some(r) => {
                let mut r = r.clone();
                r.sort_by(|a, b| a.key.cmp(&b.key));
                r.iter()
                    .map(Requirement::render)
                    .collect::<Vec<_>>()
                    .join(",")
            }
        }
    }
}

/// `metav1.LabelSelectorAsSelector`.
pub(crate) fn parse_selector(sel: Option<&Value>) -> Result<Selector, String> {
    let sel = match sel {
        None | Some(Value::Null) => return Ok(Selector { reqs: None }),
        Some(s) => s,
    };
    let mut reqs = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            let v = v.as_str().unwrap_or_default().to_string();
            check_requirement(k, SelOp::Equals, std::slice::from_ref(&v))?;
            reqs.push(Requirement {
                key: k.clone(),
                op: SelOp::Equals,
                values: vec![v],
            });
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let key = e
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let op_s = e.get("operator").and_then(Value::as_str).unwrap_or("");
        let op = match op_s {
            "In" => SelOp::In,
            "NotIn" => SelOp::NotIn,
            "Exists" => SelOp::Exists,
            "DoesNotExist" => SelOp::DoesNotExist,
            other => return Err(format!("{other:?} is not a valid label selector operator")),
        };
        let values: Vec<String> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        check_requirement(&key, op, &values)?;
        reqs.push(Requirement { key, op, values });
    }
    Ok(Selector { reqs: Some(reqs) })
}

fn check_requirement(key: &str, op: SelOp, values: &[String]) -> Result<(), String> {
    if let Some(m) = qualified_name_errors(key).into_iter().next() {
        return Err(format!("key: Invalid value: {key:?}: {m}"));
    }
    match op {
        SelOp::In | SelOp::NotIn if values.is_empty() => {
            return Err(
                "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
                    .into(),
            )
        }
        SelOp::Equals if values.len() != 1 => {
            return Err(
                "values: Invalid value: []: exact-match compatibility requires one single value"
                    .into(),
            )
        }
        SelOp::Exists | SelOp::DoesNotExist if !values.is_empty() => {
            return Err(
                "values: Invalid value: []: values set must be empty for exists and does not exist"
                    .into(),
            )
        }
        _ => {}
    }
    for v in values {
        if let Some(m) = label_value_errors(v).into_iter().next() {
            return Err(format!("values[0]: Invalid value: {v:?}: {m}"));
        }
    }
    Ok(())
}

/// `metav1.FormatLabelSelector`: `<none>` for an empty selector, `<error>`
/// for an invalid one.
pub(crate) fn format_label_selector(sel: Option<&Value>) -> String {
    match parse_selector(sel) {
        Err(_) => "<error>".to_string(),
        Ok(s) => {
            let r = s.render();
            if r.is_empty() {
                "<none>".to_string()
            } else {
                r
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Name and label validation (apimachinery util/validation)
// ---------------------------------------------------------------------------

fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = msg.to_string();
    if examples.is_empty() {
        out.push_str(&format!(" (regex used for validation is '{fmt}')"));
        return out;
    }
    out.push_str(" (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn dns_label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
}

pub(crate) const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

/// `validation.IsDNS1123Label`.
pub(crate) fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !dns_label_ok(s) {
        errs.push(regex_error(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errs
}

/// `validation.IsDNS1123Subdomain`.
pub(crate) fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if s.is_empty() || !s.split('.').all(dns_label_ok) {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

fn qname_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

const QNAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QNAME_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// `validation.IsQualifiedName` (label keys, annotation keys, provisioner names).
pub(crate) fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain_errors(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QNAME_MSG, QNAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !qname_ok(name) {
        errs.push(format!(
            "name part {}",
            regex_error(QNAME_MSG, QNAME_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

/// `validation.IsValidLabelValue`.
pub(crate) fn label_value_errors(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !v.is_empty() && !qname_ok(v) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// `validation.IsDNS1035Label` (service names).
pub(crate) fn dns1035_label_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    let b = s.as_bytes();
    let ok = !b.is_empty() && b[0].is_ascii_lowercase() && dns_label_ok(s);
    if !ok {
        errs.push(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            "[a-z]([-a-z0-9]*[a-z0-9])?",
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// `validation.IsValidPortNum`.
pub(crate) fn port_num_errors(n: i64) -> Vec<String> {
    if (1..=65535).contains(&n) {
        Vec::new()
    } else {
        vec!["must be between 1 and 65535, inclusive".to_string()]
    }
}

/// `validation.IsValidPortName` (IANA_SVC_NAME).
pub(crate) fn port_name_errors(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push(max_len_error(15));
    }
    if port.is_empty()
        || !port
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// `validation.IsDomainPrefixedPath` (ingress class controllers, job managedBy).
pub(crate) fn domain_prefixed_path_errors(v: &str, path: &str) -> Vec<FieldError> {
    if v.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let (host, rest) = match v.split_once('/') {
        Some((h, r)) if !h.is_empty() && !r.is_empty() => (h, r),
        _ => {
            return vec![FieldError::invalid(
                path,
                v,
                "must be a domain-prefixed path (such as \"acme.io/foo\")",
            )]
        }
    };
    let mut errs: Vec<FieldError> = dns1123_subdomain_errors(host)
        .into_iter()
        .map(|m| FieldError::invalid(path, host, m))
        .collect();
    if !rest
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c))
    {
        errs.push(FieldError::invalid(
            path,
            rest,
            regex_error("Invalid path", "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+", &[]),
        ));
    }
    errs
}

/// `path.IsValidPathSegmentName`.
pub(crate) fn path_segment_errors(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    let mut errs = Vec::new();
    for illegal in ["/", "%"] {
        if name.contains(illegal) {
            errs.push(format!("may not contain '{illegal}'"));
        }
    }
    errs
}

/// `ValidateLabels` on a label map at `path`.
pub(crate) fn validate_labels(labels: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(m) = labels.and_then(Value::as_object) {
        for (k, v) in m {
            for msg in qualified_name_errors(k) {
                errs.push(FieldError::invalid(path, k.as_str(), msg));
            }
            let val = v.as_str().unwrap_or_default();
            for msg in label_value_errors(val) {
                errs.push(FieldError::invalid(path, val, msg));
            }
        }
    }
    errs
}

/// `ValidateLabelSelector` (meta/v1/validation).
pub(crate) fn validate_label_selector(
    sel: Option<&Value>,
    path: &str,
    allow_invalid_values: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return errs;
    };
    errs.extend(validate_labels(
        sel.get("matchLabels"),
        &format!("{path}.matchLabels"),
    ));
    for (i, e) in ptr_arr(sel, "/matchExpressions").iter().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
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
            other => errs.push(FieldError::invalid(
                format!("{p}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        for msg in qualified_name_errors(key) {
            errs.push(FieldError::invalid(format!("{p}.key"), key, msg));
        }
        if !allow_invalid_values {
            for (vi, v) in values.iter().enumerate() {
                let v = v.as_str().unwrap_or_default();
                for msg in label_value_errors(v) {
                    errs.push(FieldError::invalid(format!("{p}.values[{vi}]"), v, msg));
                }
            }
        }
    }
    errs
}

/// `ValidateNonnegativeField` on the integer at `ptr` (absent = fine).
pub(crate) fn nonnegative(obj: &Value, ptr: &str, path: &str) -> Vec<FieldError> {
    match ptr_i64(obj, ptr) {
        Some(n) if n < 0 => vec![FieldError::invalid(
            path,
            n,
            "must be greater than or equal to 0",
        )],
        _ => Vec::new(),
    }
}

/// An Invalid error whose value is rendered verbatim (Go's `%#v` of a
/// struct), not JSON-quoted.
pub(crate) fn invalid_raw(path: impl Into<String>, repr: &str, detail: &str) -> FieldError {
    FieldError {
        kind: FieldErrorType::Invalid,
        field: path.into(),
        value: None,
        detail: if detail.is_empty() {
            repr.to_string()
        } else {
            format!("{repr}: {detail}")
        },
    }
}

/// An Invalid error that prints no value (upstream's `field.OmitValueType{}`).
pub(crate) fn invalid_omit(path: impl Into<String>, detail: &str) -> FieldError {
    FieldError {
        kind: FieldErrorType::Invalid,
        field: path.into(),
        value: None,
        detail: detail.to_string(),
    }
}

/// `ValidateImmutableField` for JSON values: "field is immutable" when they
/// differ (absent and null are the same).
pub(crate) fn immutable(
    new: Option<&Value>,
    old: Option<&Value>,
    path: &str,
) -> Option<FieldError> {
    let n = new.filter(|v| !v.is_null());
    let o = old.filter(|v| !v.is_null());
    if n == o {
        return None;
    }
    Some(match n {
        None => invalid_raw(path, "null", "field is immutable"),
        Some(v) => FieldError::invalid(path, v.clone(), "field is immutable"),
    })
}

// ---------------------------------------------------------------------------
// Go `%#v` rendering of the few values upstream prints in messages
// ---------------------------------------------------------------------------

/// `map[string]string{"a":"b"}`, `map[string]string(nil)` for absent.
pub(crate) fn go_string_map(v: Option<&Value>) -> String {
    match string_map(v) {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
            format!("map[string]string{{{}}}", inner.join(", "))
        }
    }
}

/// `[]string{"a", "b"}`, `[]string(nil)` for absent.
pub(crate) fn go_string_slice(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        None => "[]string(nil)".to_string(),
        Some(a) => {
            let inner: Vec<String> = a
                .iter()
                .map(|s| format!("{:?}", s.as_str().unwrap_or_default()))
                .collect();
            format!("[]string{{{}}}", inner.join(", "))
        }
    }
}

/// `v1.LabelSelector{MatchLabels:..., MatchExpressions:...}`.
pub(crate) fn go_label_selector(sel: &Value) -> String {
    let exprs = match sel.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(a) => {
            let inner: Vec<String> = a
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{}}}",
                        e.get("key").and_then(Value::as_str).unwrap_or_default(),
                        e.get("operator")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                        go_string_slice(e.get("values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", inner.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}",
        go_string_map(sel.get("matchLabels")),
        exprs
    )
}

// ---------------------------------------------------------------------------
// IntOrString
// ---------------------------------------------------------------------------

fn go_int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{s:?}}}"),
        other => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            as_i64(other).unwrap_or(0)
        ),
    }
}

/// `intstr.IntOrString.String()`.
pub(crate) fn int_or_string_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => as_i64(other).unwrap_or(0).to_string(),
    }
}

fn percent_value(s: &str) -> Option<i64> {
    let digits = s.strip_suffix('%')?;
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `getIntOrPercentValue`.
pub(crate) fn int_or_percent_value(v: &Value) -> i64 {
    match v {
        Value::String(s) => percent_value(s).unwrap_or_else(|| s.parse().unwrap_or(0)),
        other => as_i64(other).unwrap_or(0),
    }
}

/// `ValidatePositiveIntOrPercent`.
pub(crate) fn validate_positive_int_or_percent(v: &Value, path: &str) -> Vec<FieldError> {
    match v {
        Value::String(s) => {
            if percent_value(s).is_none() {
                vec![invalid_raw(
                    path,
                    &go_int_or_string(v),
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                )]
            } else {
                Vec::new()
            }
        }
        Value::Number(_) => match as_i64(v) {
            Some(n) if n < 0 => vec![FieldError::invalid(
                path,
                n,
                "must be greater than or equal to 0",
            )],
            _ => Vec::new(),
        },
        _ => vec![invalid_raw(
            path,
            &go_int_or_string(v),
            "must be an integer or percentage (e.g '5%%')",
        )],
    }
}

/// `IsNotMoreThan100Percent`.
pub(crate) fn not_more_than_100_percent(v: &Value, path: &str) -> Vec<FieldError> {
    match v.as_str().and_then(percent_value) {
        Some(p) if p > 100 => vec![invalid_raw(
            path,
            &go_int_or_string(v),
            "must not be greater than 100%",
        )],
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Pod templates (core/v1's defaulting and validation)
// ---------------------------------------------------------------------------

/// The core/v1 PodTemplateSpec defaults (`SetDefaults_PodSpec` and nested).
pub(crate) fn default_pod_template(template: &mut Value) {
    crate::core::default_pod_template_spec(template);
}

/// `ValidatePodTemplateSpec` at `path`; a missing template is Required.
pub(crate) fn validate_pod_template(template: Option<&Value>, path: &str) -> Vec<FieldError> {
    match template.filter(|t| t.is_object()) {
        None => vec![FieldError::required(path, "")],
        Some(t) => crate::core::validate_pod_template_spec(t, path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selector_renders_sorted_requirements() {
        let sel = json!({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]}]});
        assert_eq!(format_label_selector(Some(&sel)), "a=1,b=2,c in (x,y)");
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(
            format_label_selector(Some(
                &json!({"matchExpressions": [{"key": "a", "operator": "Bad"}]})
            )),
            "<error>"
        );
    }

    #[test]
    fn selector_matching_follows_operators() {
        let sel = parse_selector(Some(&json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}))).unwrap();
        let mut l = BTreeMap::new();
        l.insert("app".to_string(), "web".to_string());
        assert!(sel.matches(&l));
        l.insert("tier".to_string(), "db".to_string());
        assert!(!sel.matches(&l));
        assert!(!parse_selector(None).unwrap().matches(&l));
    }

    #[test]
    fn go_rendering_matches_upstream_shape() {
        let sel = json!({"matchLabels": {"app": "x"}});
        assert_eq!(
            go_label_selector(&sel),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
        assert_eq!(go_string_map(None), "map[string]string(nil)");
    }

    #[test]
    fn name_validators_report_upstream_messages() {
        assert!(dns1123_label_errors("ok-name").is_empty());
        assert!(dns1123_label_errors("Bad_Name")[0]
            .starts_with("a lowercase RFC 1123 label must consist"));
        assert!(qualified_name_errors("example.com/app").is_empty());
        assert_eq!(qualified_name_errors("a/b/c").len(), 1);
        assert!(label_value_errors("").is_empty());
        assert_eq!(
            path_segment_errors("a/b"),
            vec!["may not contain '/'".to_string()]
        );
    }

    #[test]
    fn int_or_percent_validation() {
        assert!(validate_positive_int_or_percent(&json!("25%"), "p").is_empty());
        assert_eq!(
            validate_positive_int_or_percent(&json!(-1), "p")[0].to_string(),
            "p: Invalid value: -1: must be greater than or equal to 0"
        );
        assert!(not_more_than_100_percent(&json!("150%"), "p")[0]
            .to_string()
            .ends_with("must not be greater than 100%"));
        assert_eq!(int_or_percent_value(&json!("25%")), 25);
    }
}
