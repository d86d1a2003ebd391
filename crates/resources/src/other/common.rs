//! Helpers shared by the apps, batch and other-group strategies: table
//! cells, thin wrappers over `apimachinery::labels::Selector`, the few
//! validators apimachinery does not carry, Go-style value rendering for
//! upstream's messages and the pod-template hooks into core/v1.
//!
//! JSON access and the validators core/v1 shares live in [`crate::util`];
//! name and label validation is `apimachinery::validation`'s.

use crate::util::{arr_at, as_i64, i64_at, ptr_str};
use apimachinery::labels::Selector;
use apimachinery::validation::{is_dns1123_subdomain, regex_error};
use apimachinery::{FieldError, FieldErrorType};
use serde_json::Value;
use std::collections::BTreeMap;

use crate::strategy::{column, parse_time, TableColumn};

// ---------------------------------------------------------------------------
// Table helpers
// ---------------------------------------------------------------------------

pub(crate) const CREATION_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
pub(crate) const CONTAINERS_DESC: &str = "Names of each container in the template.";
pub(crate) const IMAGES_DESC: &str = "Images referenced by each container in the template.";

pub(crate) fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
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
    arr_at(obj, "/metadata/ownerReferences")
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

/// `metav1.LabelSelectorAsSelector`: absent or null is the selector that
/// matches nothing.
pub(crate) fn parse_selector(sel: Option<&Value>) -> Result<Selector, String> {
    Selector::from_label_selector(sel.unwrap_or(&Value::Null))
}

/// Upstream's "`selector` does not match template `labels`" check: an
/// Invalid error at `spec.template.metadata.labels` (printed as a Go map)
/// when `selector` does not select `labels`.
pub(crate) fn template_labels_mismatch(
    selector: &Selector,
    labels: Option<&Value>,
) -> Option<FieldError> {
    if selector.matches(labels.and_then(Value::as_object)) {
        return None;
    }
    Some(invalid_raw(
        "spec.template.metadata.labels",
        &go_string_map(labels),
        "`selector` does not match template `labels`",
    ))
}

/// `spec.selector` may not change after creation (apps/v1 workloads, jobs);
/// the new selector is printed as a Go struct.
pub(crate) fn selector_immutable(new: &Value, old: &Value) -> Option<FieldError> {
    let n = new.pointer("/spec/selector").filter(|v| !v.is_null());
    let o = old.pointer("/spec/selector").filter(|v| !v.is_null());
    if n == o {
        return None;
    }
    let repr = n.map(go_label_selector).unwrap_or_else(|| "null".into());
    Some(invalid_raw("spec.selector", &repr, "field is immutable"))
}

/// `metav1.FormatLabelSelector`: `<none>` for an empty selector, `<error>`
/// for an invalid one.
pub(crate) fn format_label_selector(sel: Option<&Value>) -> String {
    match parse_selector(sel) {
        Err(_) => "<error>".to_string(),
        Ok(s) => {
            let r = s.to_string();
            if r.is_empty() {
                "<none>".to_string()
            } else {
                r
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Validators apimachinery does not carry
// ---------------------------------------------------------------------------

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
    let mut errs: Vec<FieldError> = is_dns1123_subdomain(host)
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

/// `ValidateNonnegativeField` on the integer at `ptr` (absent = fine).
pub(crate) fn nonnegative(obj: &Value, ptr: &str, path: &str) -> Vec<FieldError> {
    match i64_at(obj, ptr) {
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
        let mut l = json!({"app": "web"});
        assert!(sel.matches(l.as_object()));
        l["tier"] = json!("db");
        assert!(!sel.matches(l.as_object()));
        assert!(!parse_selector(None).unwrap().matches(l.as_object()));
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

    /// The apimachinery validators that replaced this module's copies.
    #[test]
    fn name_validators_report_upstream_messages() {
        use apimachinery::validation::{
            is_dns1123_label, is_qualified_name, is_valid_label_value, is_valid_path_segment_name,
        };
        assert!(is_dns1123_label("ok-name").is_empty());
        assert!(
            is_dns1123_label("Bad_Name")[0].starts_with("a lowercase RFC 1123 label must consist")
        );
        assert!(is_qualified_name("example.com/app").is_empty());
        assert_eq!(is_qualified_name("a/b/c").len(), 1);
        assert!(is_valid_label_value("").is_empty());
        assert_eq!(
            is_valid_path_segment_name("a/b"),
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
