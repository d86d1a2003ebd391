//! ConfigMaps, Secrets, ServiceAccounts, ResourceQuotas and LimitRanges.

use std::collections::{BTreeSet, HashMap};

use apimachinery::FieldError;
use serde_json::{json, Map, Value};

use super::quantity::{canonicalize_list, Qty};
use crate::strategy::{
    age_cell, age_column, column, ResourceInfo, Strategy, Subresource, TableColumn,
};
use crate::util::*;

/// Upstream `MaxSecretSize` (also the ConfigMap limit): 1 MiB.
const MAX_SECRET_SIZE: usize = 1024 * 1024;

// ---------------------------------------------------------------------------
// ConfigMaps
// ---------------------------------------------------------------------------

pub(crate) struct ConfigMapStrategy {
    info: ResourceInfo,
}

impl ConfigMapStrategy {
    pub(crate) fn new() -> Self {
        ConfigMapStrategy {
            info: super::core_info(
                "ConfigMap",
                "configmaps",
                "configmap",
                &["cm"],
                &[],
                true,
                &[],
                "configmaps",
            ),
        }
    }
}

fn validate_config_map(cm: &Value) -> Vec<FieldError> {
    let mut errs = validate_meta_finalizers(cm);
    let mut total = 0usize;
    let binary = obj_at(cm, "/binaryData");
    if let Some(data) = obj_at(cm, "/data") {
        for k in sorted_keys(data) {
            let p = format!("data[{k}]");
            errs.extend(invalid_each(&p, k, is_config_map_key(k)));
            if binary.is_some_and(|b| b.contains_key(k.as_str())) {
                errs.push(FieldError::invalid(
                    &p,
                    k.as_str(),
                    "duplicate of key present in binaryData",
                ));
            }
            total += data
                .get(k.as_str())
                .and_then(Value::as_str)
                .map(str::len)
                .unwrap_or(0);
        }
    }
    if let Some(b) = binary {
        for k in sorted_keys(b) {
            errs.extend(invalid_each(
                &format!("binaryData[{k}]"),
                k,
                is_config_map_key(k),
            ));
            total += b
                .get(k.as_str())
                .and_then(Value::as_str)
                .map(base64_decoded_len)
                .unwrap_or(0);
        }
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("", MAX_SECRET_SIZE));
    }
    errs
}

/// The `immutable: true` rules shared by ConfigMaps and Secrets.
fn validate_immutable_data(new: &Value, old: &Value, keys: &[&str]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old.get("immutable").and_then(Value::as_bool) == Some(true) {
        if new.get("immutable").and_then(Value::as_bool) != Some(true) {
            errs.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        for k in keys {
            if !sem_eq(new.get(*k), old.get(*k)) {
                errs.push(FieldError::forbidden(
                    *k,
                    "field is immutable when `immutable` is set",
                ));
            }
        }
    }
    errs
}

impl Strategy for ConfigMapStrategy {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_config_map(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_immutable_data(new, old, &["data", "binaryData"]);
        errs.extend(validate_config_map(new));
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Data", "string", "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.", 0),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let n = obj_at(obj, "/data").map(Map::len).unwrap_or(0)
            + obj_at(obj, "/binaryData").map(Map::len).unwrap_or(0);
        vec![json!(n), age_cell(obj)]
    }
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

pub(crate) struct SecretStrategy {
    info: ResourceInfo,
}

impl SecretStrategy {
    pub(crate) fn new() -> Self {
        SecretStrategy {
            info: super::core_info(
                "Secret",
                "secrets",
                "secret",
                &[],
                &[],
                true,
                &[],
                "secrets",
            ),
        }
    }
}

/// Decodes standard base64; `None` when malformed.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0u32;
    let t = text.trim_end_matches('=');
    for c in t.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn validate_secret(secret: &Value) -> Vec<FieldError> {
    let mut errs = validate_meta_finalizers(secret);
    let empty = Map::new();
    let data = obj_at(secret, "/data").unwrap_or(&empty);
    let mut total = 0usize;
    for k in sorted_keys(data) {
        errs.extend(invalid_each(&format!("data[{k}]"), k, is_config_map_key(k)));
        total += data
            .get(k.as_str())
            .and_then(Value::as_str)
            .map(base64_decoded_len)
            .unwrap_or(0);
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("data", MAX_SECRET_SIZE));
    }
    let check_json = |key: &str, errs: &mut Vec<FieldError>| match data.get(key) {
        None => errs.push(FieldError::required(format!("data[{key}]"), "")),
        Some(v) => {
            let bytes = v.as_str().and_then(base64_decode).unwrap_or_default();
            if let Err(e) = serde_json::from_slice::<Map<String, Value>>(&bytes) {
                errs.push(FieldError::invalid(
                    format!("data[{key}]"),
                    "<secret contents redacted>",
                    e.to_string(),
                ));
            }
        }
    };
    match s(secret, "type") {
        "kubernetes.io/service-account-token"
            if str_at(
                secret,
                "/metadata/annotations/kubernetes.io~1service-account.name",
            )
            .is_empty() =>
        {
            errs.push(FieldError::required(
                "metadata.annotations[kubernetes.io/service-account.name]",
                "",
            ));
        }
        "kubernetes.io/dockercfg" => check_json(".dockercfg", &mut errs),
        "kubernetes.io/dockerconfigjson" => check_json(".dockerconfigjson", &mut errs),
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            errs.push(FieldError::required("data[username]", ""));
            errs.push(FieldError::required("data[password]", ""));
        }
        "kubernetes.io/ssh-auth"
            if data
                .get("ssh-privatekey")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty() =>
        {
            errs.push(FieldError::required("data[ssh-privatekey]", ""));
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !data.contains_key(k) {
                    errs.push(FieldError::required(format!("data[{k}]"), ""));
                }
            }
        }
        _ => {}
    }
    errs
}

impl Strategy for SecretStrategy {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn default(&self, obj: &mut Value) {
        default_str(obj, "type", "Opaque");
        // stringData is write-only: it overwrites data and is not stored.
        let Some(o) = obj.as_object_mut() else { return };
        let Some(sd) = o.remove("stringData") else {
            return;
        };
        let Some(sd) = sd.as_object().filter(|m| !m.is_empty()) else {
            return;
        };
        let data = o.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        if let Some(d) = data.as_object_mut() {
            for (k, v) in sd {
                let text = match v {
                    Value::String(x) => x.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                d.insert(k.clone(), json!(base64_encode(text.as_bytes())));
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_secret(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = immutable(new.get("type"), old.get("type"), "type");
        errs.extend(validate_immutable_data(new, old, &["data"]));
        errs.extend(validate_secret(new));
        errs
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        vec![("type", s(obj, "type").to_string())]
    }

    fn selectable_field_names(&self) -> &'static [&'static str] {
        &["type"]
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Type", "string", "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types", 0),
            column("Data", "string", "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4", 0),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        vec![
            json!(s(obj, "type")),
            json!(obj_at(obj, "/data").map(Map::len).unwrap_or(0)),
            age_cell(obj),
        ]
    }
}

// ---------------------------------------------------------------------------
// ServiceAccounts
// ---------------------------------------------------------------------------

pub(crate) struct ServiceAccountStrategy {
    info: ResourceInfo,
}

impl ServiceAccountStrategy {
    pub(crate) fn new() -> Self {
        ServiceAccountStrategy {
            info: super::core_info(
                "ServiceAccount",
                "serviceaccounts",
                "serviceaccount",
                &["sa"],
                &[],
                true,
                &[Subresource::Token],
                "serviceaccounts",
            ),
        }
    }
}

impl Strategy for ServiceAccountStrategy {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_meta_finalizers(obj)
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret", 0),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        vec![json!(arr(obj, "secrets").len()), age_cell(obj)]
    }
}

// ---------------------------------------------------------------------------
// ResourceQuotas
// ---------------------------------------------------------------------------

pub(crate) struct ResourceQuotaStrategy {
    info: ResourceInfo,
}

impl ResourceQuotaStrategy {
    pub(crate) fn new() -> Self {
        ResourceQuotaStrategy {
            info: super::core_info(
                "ResourceQuota",
                "resourcequotas",
                "resourcequota",
                &["quota"],
                &[],
                true,
                &[Subresource::Status],
                "resourcequotas",
            ),
        }
    }
}

const STANDARD_QUOTA_RESOURCES: &[&str] = &[
    "pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "persistentvolumeclaims",
    "services",
    "services.loadbalancers",
    "services.nodeports",
    "secrets",
    "configmaps",
    "replicationcontrollers",
    "resourcequotas",
];

const POD_COMPUTE_QUOTA_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "limits.cpu",
    "limits.memory",
    "requests.cpu",
    "requests.memory",
];

fn validate_quota_resource_name(name: &str, path: &str) -> Vec<FieldError> {
    let mut errs = validate_resource_name(name, path);
    if !name.contains('/')
        && !STANDARD_QUOTA_RESOURCES.contains(&name)
        && !name.starts_with("requests.hugepages-")
    {
        errs.push(FieldError::invalid(
            path,
            name,
            "must be a standard resource for quota",
        ));
    }
    errs
}

fn validate_quota_list(list: Option<&Map<String, Value>>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(list) = list else { return errs };
    for k in sorted_keys(list) {
        let p = format!("{path}[{k}]");
        errs.extend(validate_quota_resource_name(k, &p));
        match list.get(k.as_str()).and_then(Qty::from_json) {
            None => errs.push(FieldError::invalid(&p, list.get(k.as_str()).cloned().unwrap_or(Value::Null), "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")),
            Some(q) => {
                if q.is_negative() {
                    errs.push(FieldError::invalid(&p, q.canonical(), "must be greater than or equal to 0"));
                }
                if is_integer_resource_name(k) && q.milli() % 1000 != 0 {
                    errs.push(FieldError::invalid(&p, q.canonical(), "must be an integer"));
                }
            }
        }
    }
    errs
}

fn scope_valid_for(scope: &str, resource: &str) -> bool {
    match scope {
        "Terminating"
        | "NotTerminating"
        | "NotBestEffort"
        | "PriorityClass"
        | "CrossNamespacePodAffinity" => {
            resource == "pods" || POD_COMPUTE_QUOTA_RESOURCES.contains(&resource)
        }
        "BestEffort" => resource == "pods",
        _ => true,
    }
}

const STANDARD_SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

fn validate_quota_spec(spec: &Value) -> Vec<FieldError> {
    let mut errs = validate_quota_list(spec.get("hard").and_then(Value::as_object), "spec.hard");
    let hard: BTreeSet<&str> = spec
        .get("hard")
        .and_then(Value::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let scopes = arr(spec, "scopes");
    let scopes_value = spec.get("scopes").cloned().unwrap_or(Value::Null);
    let mut set = BTreeSet::new();
    for sc in scopes {
        let sc = sc.as_str().unwrap_or("");
        if !STANDARD_SCOPES.contains(&sc) {
            errs.push(FieldError::invalid(
                "spec.scopes",
                scopes_value.clone(),
                "unsupported scope",
            ));
        }
        for r in &hard {
            if STANDARD_QUOTA_RESOURCES.contains(r) && !scope_valid_for(sc, r) {
                errs.push(FieldError::invalid(
                    "spec.scopes",
                    scopes_value.clone(),
                    "unsupported scope applied to resource",
                ));
            }
        }
        set.insert(sc);
    }
    let conflicting = |a: &str, b: &str, set: &BTreeSet<&str>| set.contains(a) && set.contains(b);
    for (a, b) in [
        ("BestEffort", "NotBestEffort"),
        ("Terminating", "NotTerminating"),
    ] {
        if conflicting(a, b, &set) {
            errs.push(FieldError::invalid(
                "spec.scopes",
                scopes_value.clone(),
                "conflicting scopes",
            ));
        }
    }
    if let Some(sel) = spec.get("scopeSelector").filter(|v| !v.is_null()) {
        let p = "spec.scopeSelector.matchExpressions";
        let mut set = BTreeSet::new();
        for req in arr(sel, "matchExpressions") {
            let name = s(req, "scopeName");
            let op = s(req, "operator");
            if !STANDARD_SCOPES.contains(&name) {
                errs.push(FieldError::invalid(
                    format!("{p}.scopeName"),
                    name,
                    "unsupported scope",
                ));
            }
            for r in &hard {
                if STANDARD_QUOTA_RESOURCES.contains(r) && !scope_valid_for(name, r) {
                    errs.push(FieldError::invalid(
                        p,
                        sel.clone(),
                        "unsupported scope applied to resource",
                    ));
                }
            }
            if matches!(
                name,
                "BestEffort"
                    | "NotBestEffort"
                    | "Terminating"
                    | "NotTerminating"
                    | "CrossNamespacePodAffinity"
            ) && op != "Exists"
            {
                errs.push(FieldError::invalid(format!("{p}.operator"), op, "must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity"));
            }
            let values = arr(req, "values");
            match op {
                "In" | "NotIn" => {
                    if values.is_empty() {
                        errs.push(FieldError::required(format!("{p}.values"), "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"));
                    }
                }
                "Exists" | "DoesNotExist" => {
                    if !values.is_empty() {
                        errs.push(FieldError::invalid(format!("{p}.values"), Value::Array(values.to_vec()), "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"));
                    }
                }
                other => errs.push(FieldError::invalid(
                    format!("{p}.operator"),
                    other,
                    "not a valid selector operator",
                )),
            }
            set.insert(name);
        }
        for (a, b) in [
            ("BestEffort", "NotBestEffort"),
            ("Terminating", "NotTerminating"),
        ] {
            if conflicting(a, b, &set) {
                errs.push(FieldError::invalid(
                    p,
                    scopes_value.clone(),
                    "conflicting scopes",
                ));
            }
        }
    }
    errs
}

/// `requests.cpu: 500m/1, pods: 2/10` split into the Request and Limit cells.
pub(crate) fn quota_cells(q: &Value) -> (String, String) {
    let empty = Map::new();
    let hard = obj_at(q, "/status/hard").unwrap_or(&empty);
    let used = obj_at(q, "/status/used").unwrap_or(&empty);
    let mut req = Vec::new();
    let mut lim = Vec::new();
    for k in sorted_keys(hard) {
        let cell = format!(
            "{k}: {}/{}",
            super::quantity::qty_string(used.get(k.as_str())),
            super::quantity::qty_string(hard.get(k.as_str()))
        );
        if k.split('.').count() > 1 && k.split('.').next() == Some("limits") {
            lim.push(cell);
        } else {
            req.push(cell);
        }
    }
    (req.join(", "), lim.join(", "))
}

impl Strategy for ResourceQuotaStrategy {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn bumps_generation(&self) -> bool {
        false
    }

    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            canonicalize_list(spec.get_mut("hard"), false);
        }
        if let Some(status) = obj.get_mut("status") {
            canonicalize_list(status.get_mut("hard"), false);
            canonicalize_list(status.get_mut("used"), false);
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = validate_meta_finalizers(obj);
        errs.extend(validate_quota_spec(obj.get("spec").unwrap_or(&Value::Null)));
        errs.extend(validate_quota_list(
            obj_at(obj, "/status/hard"),
            "status.hard",
        ));
        errs.extend(validate_quota_list(
            obj_at(obj, "/status/used"),
            "status.used",
        ));
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_meta_finalizers(new);
        errs.extend(validate_quota_spec(new.get("spec").unwrap_or(&Value::Null)));
        let set = |v: &Value| -> BTreeSet<String> {
            arr_at(v, "/spec/scopes")
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        };
        if set(new) != set(old) {
            errs.push(FieldError::invalid(
                "spec.scopes",
                new.pointer("/spec/scopes").cloned().unwrap_or(Value::Null),
                "field is immutable",
            ));
        }
        errs.extend(validate_quota_list(
            obj_at(new, "/status/hard"),
            "status.hard",
        ));
        errs.extend(validate_quota_list(
            obj_at(new, "/status/used"),
            "status.used",
        ));
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume.", 0),
            column("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.", 0),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let (req, lim) = quota_cells(obj);
        vec![json!(req), json!(lim), age_cell(obj)]
    }
}

// ---------------------------------------------------------------------------
// LimitRanges
// ---------------------------------------------------------------------------

pub(crate) struct LimitRangeStrategy {
    info: ResourceInfo,
}

impl LimitRangeStrategy {
    pub(crate) fn new() -> Self {
        LimitRangeStrategy {
            info: super::core_info(
                "LimitRange",
                "limitranges",
                "limitrange",
                &["limits"],
                &[],
                true,
                &[],
                "limitranges",
            ),
        }
    }
}

const LIMIT_KEYS: &[&str] = &[
    "max",
    "min",
    "default",
    "defaultRequest",
    "maxLimitRequestRatio",
];

/// SetDefaults_LimitRangeItem: for Container items, default ← max and
/// defaultRequest ← default, then ← min, for each missing resource.
fn default_limit_item(item: &mut Value) {
    for k in LIMIT_KEYS {
        canonicalize_list(item.get_mut(*k), false);
    }
    if s(item, "type") != "Container" {
        return;
    }
    let get = |item: &Value, k: &str| {
        item.get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let mut default = get(item, "default");
    let mut default_req = get(item, "defaultRequest");
    for (k, v) in get(item, "max") {
        default.entry(k).or_insert(v);
    }
    for (k, v) in &default {
        default_req.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in get(item, "min") {
        default_req.entry(k).or_insert(v);
    }
    if let Some(o) = item.as_object_mut() {
        if !default.is_empty() {
            o.insert("default".into(), Value::Object(default));
        }
        if !default_req.is_empty() {
            o.insert("defaultRequest".into(), Value::Object(default_req));
        }
    }
}

fn validate_limit_range(lr: &Value) -> Vec<FieldError> {
    let mut errs = validate_meta_finalizers(lr);
    let mut types = BTreeSet::new();
    for (i, item) in arr_at(lr, "/spec/limits").iter().enumerate() {
        let ip = format!("spec.limits[{i}]");
        let t = s(item, "type");
        let tp = format!("{ip}.type");
        let name_errs = invalid_each(&tp, t, apimachinery::validation::is_qualified_name(t));
        if !name_errs.is_empty() {
            errs.extend(name_errs);
        } else if !t.contains('/') && !["Pod", "Container", "PersistentVolumeClaim"].contains(&t) {
            errs.push(FieldError::invalid(
                &tp,
                t,
                "must be a standard limit type or fully qualified",
            ));
        }
        if !types.insert(t) {
            errs.push(FieldError::duplicate(&tp, t));
        }
        let mut q: HashMap<&str, HashMap<String, Qty>> = HashMap::new();
        let mut keys = BTreeSet::new();
        let check_name = |name: &str, path: &str| {
            if matches!(t, "Pod" | "Container") {
                validate_container_resource_name(name, path)
            } else {
                validate_resource_name(name, path)
            }
        };
        for k in LIMIT_KEYS {
            let Some(m) = item.get(*k).and_then(Value::as_object) else {
                continue;
            };
            if t == "Pod" && (*k == "default" || *k == "defaultRequest") {
                if !m.is_empty() {
                    errs.push(FieldError::forbidden(
                        format!("{ip}.{k}"),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
                continue;
            }
            for name in sorted_keys(m) {
                errs.extend(check_name(name, &format!("{ip}.{k}[{name}]")));
                keys.insert(name.clone());
                if let Some(v) = m.get(name.as_str()).and_then(Qty::from_json) {
                    q.entry(k).or_default().insert(name.clone(), v);
                }
            }
        }
        if t == "PersistentVolumeClaim" {
            let has_storage = |k: &str| {
                item.get(k)
                    .and_then(Value::as_object)
                    .is_some_and(|m| m.contains_key("storage"))
            };
            if !has_storage("min") && !has_storage("max") {
                errs.push(FieldError::required(
                    format!("{ip}.limits"),
                    "either minimum or maximum storage value is required, but neither was provided",
                ));
            }
        }
        let get = |k: &str, name: &str| q.get(k).and_then(|m| m.get(name)).copied();
        for name in &keys {
            let (min, max, def, def_req, ratio) = (
                get("min", name),
                get("max", name),
                get("default", name),
                get("defaultRequest", name),
                get("maxLimitRequestRatio", name),
            );
            if let (Some(mn), Some(mx)) = (min, max) {
                if mn > mx {
                    errs.push(FieldError::invalid(
                        format!("{ip}.min[{name}]"),
                        mn.canonical(),
                        format!(
                            "min value {} is greater than max value {}",
                            mn.canonical(),
                            mx.canonical()
                        ),
                    ));
                }
            }
            if let (Some(dr), Some(mn)) = (def_req, min) {
                if mn > dr {
                    errs.push(FieldError::invalid(
                        format!("{ip}.defaultRequest[{name}]"),
                        dr.canonical(),
                        format!(
                            "min value {} is greater than default request value {}",
                            mn.canonical(),
                            dr.canonical()
                        ),
                    ));
                }
            }
            if let (Some(dr), Some(mx)) = (def_req, max) {
                if dr > mx {
                    errs.push(FieldError::invalid(
                        format!("{ip}.defaultRequest[{name}]"),
                        dr.canonical(),
                        format!(
                            "default request value {} is greater than max value {}",
                            dr.canonical(),
                            mx.canonical()
                        ),
                    ));
                }
            }
            if let (Some(dr), Some(d)) = (def_req, def) {
                if dr > d {
                    errs.push(FieldError::invalid(
                        format!("{ip}.defaultRequest[{name}]"),
                        dr.canonical(),
                        format!(
                            "default request value {} is greater than default limit value {}",
                            dr.canonical(),
                            d.canonical()
                        ),
                    ));
                }
            }
            if let (Some(d), Some(mn)) = (def, min) {
                if mn > d {
                    errs.push(FieldError::invalid(
                        format!("{ip}.default[{name}]"),
                        mn.canonical(),
                        format!(
                            "min value {} is greater than default value {}",
                            mn.canonical(),
                            d.canonical()
                        ),
                    ));
                }
            }
            if let (Some(d), Some(mx)) = (def, max) {
                if d > mx {
                    errs.push(FieldError::invalid(
                        format!("{ip}.default[{name}]"),
                        mx.canonical(),
                        format!(
                            "default value {} is greater than max value {}",
                            d.canonical(),
                            mx.canonical()
                        ),
                    ));
                }
            }
            if let Some(r) = ratio {
                if r.nanos() < 1_000_000_000 {
                    errs.push(FieldError::invalid(
                        format!("{ip}.maxLimitRequestRatio[{name}]"),
                        r.canonical(),
                        format!("ratio {} is less than 1", r.canonical()),
                    ));
                }
                if let (Some(mn), Some(mx)) = (min, max) {
                    if mn.nanos() > 0 {
                        let limit = mx.nanos() as f64 / mn.nanos() as f64;
                        let rv = r.nanos() as f64 / 1e9;
                        if rv > limit {
                            errs.push(FieldError::invalid(
                                format!("{ip}.maxLimitRequestRatio[{name}]"),
                                r.canonical(),
                                format!(
                                    "ratio {} is greater than max/min = {limit:.6}",
                                    r.canonical()
                                ),
                            ));
                        }
                    }
                }
            }
            if !is_overcommit_allowed(name) {
                if let (Some(d), Some(dr)) = (def, def_req) {
                    if d != dr {
                        errs.push(FieldError::invalid(
                            format!("{ip}.defaultRequest[{name}]"),
                            dr.canonical(),
                            format!(
                                "default value {} must equal to defaultRequest value {} in {name}",
                                d.canonical(),
                                dr.canonical()
                            ),
                        ));
                    }
                }
            }
        }
    }
    errs
}

impl Strategy for LimitRangeStrategy {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            each_mut(spec, "limits", default_limit_item);
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_limit_range(obj)
    }

    /// No printer upstream: the default table of Name and Created At.
    fn table_columns(&self) -> Vec<TableColumn> {
        vec![TableColumn {
            name: "Created At",
            type_: "date",
            format: "",
            description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            priority: 0,
        }]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        vec![json!(str_at(obj, "/metadata/creationTimestamp"))]
    }
}
