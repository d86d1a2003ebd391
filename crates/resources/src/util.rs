//! Helpers shared by all strategies: tolerant JSON access (objects come
//! from users, so nothing here panics on a wrong shape), the smaller
//! upstream validators that apimachinery does not carry (ports, IPs, config
//! keys, environment variable names, resource names), and a structural diff
//! used in "may not change" messages.

use apimachinery::validation::{is_dns1123_subdomain, is_qualified_name};
use apimachinery::FieldError;
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

/// The string at a JSON pointer, or "" when absent or not a string.
pub(crate) fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The string at a JSON pointer, if it is a string.
pub(crate) fn ptr_str<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// The boolean at a JSON pointer, if it is one.
pub(crate) fn ptr_bool(v: &Value, ptr: &str) -> Option<bool> {
    v.pointer(ptr).and_then(Value::as_bool)
}

/// The string member `key` of an object, or "".
pub(crate) fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The array at a JSON pointer, or an empty slice.
pub(crate) fn arr_at<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The array member `key`, or an empty slice.
pub(crate) fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The object at a JSON pointer.
pub(crate) fn obj_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a Map<String, Value>> {
    v.pointer(ptr).and_then(Value::as_object)
}

/// An integer at a JSON pointer (integral floats accepted).
pub(crate) fn i64_at(v: &Value, ptr: &str) -> Option<i64> {
    v.pointer(ptr).and_then(as_i64)
}

pub(crate) fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        }),
        _ => None,
    }
}

/// A boolean at a JSON pointer; false when absent.
pub(crate) fn bool_at(v: &Value, ptr: &str) -> bool {
    v.pointer(ptr).and_then(Value::as_bool).unwrap_or(false)
}

/// Present and not null.
pub(crate) fn is_set(v: Option<&Value>) -> bool {
    !matches!(v, None | Some(Value::Null))
}

/// Whether the member is present and not null.
pub(crate) fn has(v: &Value, key: &str) -> bool {
    is_set(v.get(key))
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

/// Keys of an object in sorted order (upstream iterates Go maps, whose order
/// is random; sorting keeps our messages stable).
pub(crate) fn sorted_keys(m: &Map<String, Value>) -> Vec<&String> {
    let mut k: Vec<&String> = m.keys().collect();
    k.sort();
    k
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// The object under `key`, created when missing or null; `None` when `v` is
/// not an object or the member has another type.
pub(crate) fn ensure_obj<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let o = v.as_object_mut()?;
    let e = o
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if e.is_null() {
        *e = Value::Object(Map::new());
    }
    e.as_object_mut()
}

/// Walks/creates nested objects along `keys` (see [`ensure_obj`]).
pub(crate) fn obj_path_mut<'a>(
    v: &'a mut Value,
    keys: &[&str],
) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for k in keys {
        ensure_obj(cur, k)?;
        cur = cur.get_mut(*k)?;
    }
    cur.as_object_mut()
}

/// Sets `m[key] = val` when the key is missing or null (a Go pointer field).
pub(crate) fn set_default(m: &mut Map<String, Value>, key: &str, val: Value) {
    if !is_set(m.get(key)) {
        m.insert(key.to_string(), val);
    }
}

/// Sets a string member when it is absent, null or "" (Go's zero value).
pub(crate) fn default_str(v: &mut Value, key: &str, val: &str) {
    if let Some(o) = v.as_object_mut() {
        let empty = match o.get(key) {
            None | Some(Value::Null) => true,
            Some(Value::String(x)) => x.is_empty(),
            _ => false,
        };
        if empty {
            o.insert(key.to_string(), Value::String(val.to_string()));
        }
    }
}

/// Sets an integer member when it is absent, null or 0 (Go's zero value).
pub(crate) fn default_int(v: &mut Value, key: &str, val: i64) {
    if let Some(o) = v.as_object_mut() {
        let zero = match o.get(key) {
            None | Some(Value::Null) => true,
            Some(x) => as_i64(x) == Some(0),
        };
        if zero {
            o.insert(key.to_string(), Value::from(val));
        }
    }
}

/// Sets a member when it is absent or null (a Go pointer field).
pub(crate) fn default_ptr(v: &mut Value, key: &str, val: Value) {
    if let Some(o) = v.as_object_mut() {
        set_default(o, key, val);
    }
}

/// Calls `f` on every element of the array member `key`.
pub(crate) fn each_mut(v: &mut Value, key: &str, mut f: impl FnMut(&mut Value)) {
    if let Some(a) = v.get_mut(key).and_then(Value::as_array_mut) {
        for x in a {
            f(x);
        }
    }
}

/// Calls `f` on the object member `key` when present.
pub(crate) fn with_mut(v: &mut Value, key: &str, f: impl FnOnce(&mut Value)) {
    if let Some(x) = v.get_mut(key) {
        if x.is_object() {
            f(x);
        }
    }
}

/// Now, as the RFC 3339 second-precision timestamp the API uses.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Standard base64 (RFC 4648 with padding), for Secret stringData.
pub(crate) fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Length in bytes of standard base64 `text` once decoded (for the Secret
/// size limit); counts what it can when the text is malformed.
pub(crate) fn base64_decoded_len(text: &str) -> usize {
    let t = text.trim_end_matches('=');
    t.len() * 3 / 4
}

// ---------------------------------------------------------------------------
// Validators missing from apimachinery (messages as upstream's)
// ---------------------------------------------------------------------------

/// `must be between 1 and 65535, inclusive`.
pub(crate) fn is_valid_port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

pub(crate) fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// An IANA_SVC_NAME (container port names, named target ports).
pub(crate) fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push("must be no more than 15 characters".to_string());
    }
    if port.is_empty()
        || !port
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !port.bytes().any(|b| b.is_ascii_lowercase()) {
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

/// A port's `protocol` (container, service and endpoint ports): required,
/// and one of SCTP, TCP, UDP.
pub(crate) fn validate_protocol(port: &Value, path: &str) -> Option<FieldError> {
    let proto = s(port, "protocol");
    if proto.is_empty() {
        Some(FieldError::required(path, ""))
    } else if !["SCTP", "TCP", "UDP"].contains(&proto) {
        Some(FieldError::not_supported(
            path,
            proto,
            &["SCTP", "TCP", "UDP"],
        ))
    } else {
        None
    }
}

/// Upstream `ValidatePortNumOrName` for an int-or-string port.
pub(crate) fn validate_port_num_or_name(port: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match port {
        Some(Value::String(name)) => {
            for msg in is_valid_port_name(name) {
                errs.push(FieldError::invalid(path, name.as_str(), msg));
            }
        }
        Some(v @ Value::Number(_)) => {
            let n = as_i64(v).unwrap_or(0);
            for msg in is_valid_port_num(n) {
                errs.push(FieldError::invalid(path, n, msg));
            }
        }
        None | Some(Value::Null) => {
            for msg in is_valid_port_num(0) {
                errs.push(FieldError::invalid(path, 0, msg));
            }
        }
        Some(other) => errs.push(FieldError::invalid(
            path,
            other.clone(),
            "must be an integer or a string",
        )),
    }
    errs
}

/// Parses an IP the way Go's `ParseIPSloppy` does (leading zeros allowed in
/// IPv4 octets).
pub(crate) fn parse_ip_sloppy(s: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Some(ip);
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        octets[i] = p.parse::<u8>().ok()?;
    }
    Some(std::net::IpAddr::from(octets))
}

/// Upstream `IsValidIP` (returns field errors at `path`).
pub(crate) fn validate_ip(path: &str, value: &str) -> Vec<FieldError> {
    if parse_ip_sloppy(value).is_some() {
        Vec::new()
    } else {
        vec![FieldError::invalid(
            path,
            value,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        )]
    }
}

/// Upstream `IsValidCIDR`.
pub(crate) fn validate_cidr(path: &str, value: &str) -> Vec<FieldError> {
    if value.parse::<ipnet::IpNet>().is_ok() {
        Vec::new()
    } else {
        vec![FieldError::invalid(
            path,
            value,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        )]
    }
}

/// Upstream `ValidateNonSpecialIP` (endpoints and external IPs).
pub(crate) fn validate_non_special_ip(value: &str, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(ip) = parse_ip_sloppy(value) else {
        errs.push(FieldError::invalid(
            path,
            value,
            "must be a valid IP address",
        ));
        return errs;
    };
    if ip.is_unspecified() {
        errs.push(FieldError::invalid(
            path,
            value,
            format!("may not be unspecified ({value})"),
        ));
    }
    if ip.is_loopback() {
        errs.push(FieldError::invalid(
            path,
            value,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    let (link_local_unicast, link_local_multicast) = match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            (
                o[0] == 169 && o[1] == 254,
                o[0] == 224 && o[1] == 0 && o[2] == 0,
            )
        }
        std::net::IpAddr::V6(v6) => {
            let seg = v6.segments();
            ((seg[0] & 0xffc0) == 0xfe80, (seg[0] & 0xff0f) == 0xff02)
        }
    };
    if link_local_unicast {
        errs.push(FieldError::invalid(
            path,
            value,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if link_local_multicast {
        errs.push(FieldError::invalid(
            path,
            value,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errs
}

/// Upstream's NFS volume source checks (pod volumes and PVs): a server and
/// an absolute path.
pub(crate) fn validate_nfs_source(src: &Value, p: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if s(src, "server").is_empty() {
        errs.push(FieldError::required(format!("{p}.server"), ""));
    }
    let np = s(src, "path");
    if np.is_empty() {
        errs.push(FieldError::required(format!("{p}.path"), ""));
    } else if !np.starts_with('/') {
        errs.push(FieldError::invalid(
            format!("{p}.path"),
            np,
            "must be an absolute path",
        ));
    }
    errs
}

/// Upstream `IsConfigMapKey` (ConfigMap/Secret data keys).
pub(crate) fn is_config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        errs.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
                .to_string(),
        );
    }
    if value == "." {
        errs.push("must not be '.'".to_string());
    } else if value == ".." {
        errs.push("must not be '..'".to_string());
    } else if value.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// Upstream `IsRelaxedEnvVarName` (RelaxedEnvironmentVariableValidation is
/// on by default since 1.32).
pub(crate) fn is_env_var_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.is_empty() {
        errs.push("environment variable name must be non-empty".to_string());
    }
    if value.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        errs.push("a valid environment variable name must consist only of printable ASCII characters other than '='".to_string());
    }
    errs
}

/// Invalid errors at `path` for each message.
pub(crate) fn invalid_each(path: &str, value: &str, msgs: Vec<String>) -> Vec<FieldError> {
    msgs.into_iter()
        .map(|m| FieldError::invalid(path, value, m))
        .collect()
}

/// Upstream `validateKubeFinalizerName` for finalizers without a `/`.
pub(crate) fn validate_kube_finalizer_name(name: &str, path: &str) -> Vec<FieldError> {
    if !name.contains('/') && !matches!(name, "kubernetes" | "orphan" | "foregroundDeletion") {
        return vec![FieldError::invalid(
            path,
            name,
            "name is neither a standard finalizer name nor is it fully qualified",
        )];
    }
    Vec::new()
}

/// The core-only part of upstream's `ValidateObjectMeta`: every
/// metadata.finalizers entry without a `/` must be a standard one.
pub(crate) fn validate_meta_finalizers(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, f) in arr_at(obj, "/metadata/finalizers").iter().enumerate() {
        if let Some(f) = f.as_str() {
            errs.extend(validate_kube_finalizer_name(
                f,
                &format!("metadata.finalizers[{i}]"),
            ));
        }
    }
    errs
}

/// Upstream `ValidateImmutableField`: `<path>: Invalid value: <new>: field is immutable`.
pub(crate) fn immutable(new: Option<&Value>, old: Option<&Value>, path: &str) -> Vec<FieldError> {
    let n = new.filter(|v| !v.is_null());
    let o = old.filter(|v| !v.is_null());
    if n != o {
        vec![FieldError::invalid(
            path,
            n.cloned().unwrap_or(Value::Null),
            "field is immutable",
        )]
    } else {
        Vec::new()
    }
}

// ---------------------------------------------------------------------------
// Resource names (upstream helper.IsStandard*ResourceName)
// ---------------------------------------------------------------------------

const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

pub(crate) fn is_hugepage_name(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_standard_resource_name(name: &str) -> bool {
    STANDARD_RESOURCES.contains(&name)
        || is_hugepage_name(name)
        || name.starts_with("requests.hugepages-")
        || name.starts_with("limits.hugepages-")
}

/// No `/`, or in the `kubernetes.io/` namespace.
pub(crate) fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Resources whose request may be below the limit.
pub(crate) fn is_overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !is_hugepage_name(name)
}

fn is_extended_resource_name(name: &str) -> bool {
    if is_native_resource(name) || name.starts_with("requests.") {
        return false;
    }
    is_qualified_name(&format!("requests.{name}")).is_empty()
}

/// Upstream `validateResourceName`.
pub(crate) fn validate_resource_name(name: &str, path: &str) -> Vec<FieldError> {
    let errs = invalid_each(path, name, is_qualified_name(name));
    if !errs.is_empty() {
        return errs;
    }
    if !name.contains('/') && !is_standard_resource_name(name) {
        return vec![FieldError::invalid(
            path,
            name,
            "must be a standard resource type or fully qualified",
        )];
    }
    errs
}

/// Upstream `validateContainerResourceName`.
pub(crate) fn validate_container_resource_name(name: &str, path: &str) -> Vec<FieldError> {
    let mut errs = validate_resource_name(name, path);
    if !name.contains('/') {
        if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !is_hugepage_name(name) {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native_resource(name) && !is_extended_resource_name(name) {
        errs.push(FieldError::invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
    errs
}

/// Resources counted in whole units (upstream `IsIntegerResourceName`).
pub(crate) fn is_integer_resource_name(name: &str) -> bool {
    matches!(
        name,
        "pods"
            | "services"
            | "replicationcontrollers"
            | "resourcequotas"
            | "secrets"
            | "configmaps"
            | "persistentvolumeclaims"
            | "services.nodeports"
            | "services.loadbalancers"
    ) || name.starts_with("count/")
        || is_extended_resource_name(name)
}

/// Upstream `ValidateClassName` (storage classes etc. are DNS subdomains).
pub(crate) fn validate_class_name(name: &str, path: &str) -> Vec<FieldError> {
    invalid_each(path, name, is_dns1123_subdomain(name))
}

// ---------------------------------------------------------------------------
// Semantic comparison and a readable diff for "may not change" messages
// ---------------------------------------------------------------------------

/// Drops what Go's semantic equality treats as unset: nulls, "", false, 0,
/// empty lists and empty maps (recursively), so `{}` and `{"a": []}` compare
/// equal as they do upstream.
pub(crate) fn normalized(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Bool(false) => None,
        Value::String(x) if x.is_empty() => None,
        Value::Number(n) if n.as_f64() == Some(0.0) => None,
        Value::Array(a) => {
            if a.is_empty() {
                None
            } else {
                // Elements keep their position: map them to null rather than drop.
                Some(Value::Array(
                    a.iter()
                        .map(|x| normalized(x).unwrap_or(Value::Null))
                        .collect(),
                ))
            }
        }
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                if let Some(n) = normalized(x) {
                    out.insert(k.clone(), n);
                }
            }
            if out.is_empty() {
                None
            } else {
                Some(Value::Object(out))
            }
        }
        other => Some(other.clone()),
    }
}

/// Whether two values are equal under Go's semantic equality (see `normalized`).
pub(crate) fn sem_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    a.and_then(normalized) == b.and_then(normalized)
}

/// A compact `- old` / `+ new` listing of the leaves that differ, in the
/// spirit of upstream's cmp.Diff output that follows "may not change" errors.
pub(crate) fn diff_lines(type_name: &str, old: &Value, new: &Value) -> String {
    let mut lines = Vec::new();
    diff_into("", old.clone(), new.clone(), &mut lines);
    let mut out = format!("  {type_name}{{\n");
    for l in lines.iter().take(20) {
        out.push_str(l);
        out.push('\n');
    }
    if lines.len() > 20 {
        out.push_str(&format!(
            "  \t... // {} more differences\n",
            lines.len() - 20
        ));
    }
    out.push_str("  }\n");
    out
}

fn diff_into(path: &str, old: Value, new: Value, out: &mut Vec<String>) {
    let (o, n) = (normalized(&old), normalized(&new));
    if o == n {
        return;
    }
    match (o, n) {
        (Some(Value::Object(om)), Some(Value::Object(nm))) => {
            let mut keys: Vec<String> = om.keys().chain(nm.keys()).cloned().collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff_into(
                    &p,
                    om.get(&k).cloned().unwrap_or(Value::Null),
                    nm.get(&k).cloned().unwrap_or(Value::Null),
                    out,
                );
            }
        }
        (Some(Value::Array(oa)), Some(Value::Array(na))) if oa.len() == na.len() => {
            for (i, (x, y)) in oa.into_iter().zip(na).enumerate() {
                diff_into(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (o, n) => {
            if let Some(o) = o {
                out.push(format!("- \t{path}: {o}"));
            }
            if let Some(n) = n {
                out.push(format!("+ \t{path}: {n}"));
            }
        }
    }
}
