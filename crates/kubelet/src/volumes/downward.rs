//! Downward API values shared by env vars and downwardAPI volumes:
//! pod field paths (`metadata.labels['app']`) and container resources
//! (`limits.memory` with a divisor).

use apimachinery::quantity::Quantity;
use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use std::collections::BTreeMap;

/// Go's `%q` rendering of a string (as `strconv.Quote`).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            ' ' => out.push(' '),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_ascii() => out.push(c),
            c if c.is_control() || c.is_whitespace() || is_format_char(c) => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_format_char(c: char) -> bool {
    matches!(c as u32, 0xad | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x2064 | 0xfeff)
}

/// `key="value"` lines in key order, as upstream renders labels and
/// annotations for the downward API.
pub fn format_map(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Splits `metadata.labels['key']` into (`metadata.labels`, `key`).
pub fn split_subscript(path: &str) -> Option<(&str, &str)> {
    if !path.ends_with("']") {
        return None;
    }
    let open = path.find("['")?;
    let sub = &path[open + 2..path.len() - 2];
    Some((&path[..open], sub))
}

/// The value of a metadata field path of a pod (what a downwardAPI volume
/// file may reference).
pub fn extract_field_path(pod: &Pod, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    if let Some((base, key)) = split_subscript(path) {
        let map = match base {
            "metadata.annotations" => meta.annotations.as_ref(),
            "metadata.labels" => meta.labels.as_ref(),
            _ => return Err(format!("fieldPath {path:?} does not support subscript")),
        };
        return Ok(map.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    let empty = BTreeMap::new();
    Ok(match path {
        "metadata.annotations" => format_map(meta.annotations.as_ref().unwrap_or(&empty)),
        "metadata.labels" => format_map(meta.labels.as_ref().unwrap_or(&empty)),
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        _ => return Err(format!("unsupported fieldPath: {path}")),
    })
}

/// Checks the API version and field label of a downward API field selector
/// and returns the internal field path (upstream `ConvertDownwardAPIFieldLabel`).
pub fn convert_field_label(api_version: Option<&str>, path: &str) -> Result<String, String> {
    let version = api_version.filter(|v| !v.is_empty()).unwrap_or("v1");
    if version != "v1" {
        return Err(format!("unsupported pod version: {version}"));
    }
    if let Some((base, _)) = split_subscript(path) {
        if base == "metadata.annotations" || base == "metadata.labels" {
            return Ok(path.to_string());
        }
        return Err(format!("field label does not support subscript: {base}"));
    }
    match path {
        "spec.host" => Ok("spec.nodeName".into()),
        "metadata.annotations"
        | "metadata.labels"
        | "metadata.name"
        | "metadata.namespace"
        | "metadata.uid"
        | "spec.nodeName"
        | "spec.restartPolicy"
        | "spec.serviceAccountName"
        | "spec.schedulerName"
        | "status.phase"
        | "status.hostIP"
        | "status.hostIPs"
        | "status.podIP"
        | "status.podIPs" => Ok(path.to_string()),
        _ => Err(format!("field label not supported: {path}")),
    }
}

/// Finds a container (regular or init) by name.
pub fn find_container<'a>(pod: &'a Pod, name: &str) -> Result<&'a Container, String> {
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == name)
        .ok_or_else(|| format!("container {name} not found"))
}

fn parse(q: &ApiQuantity) -> Quantity {
    Quantity::parse(q.0.trim()).unwrap_or_default()
}

fn ceil_div(a: i128, b: i128) -> i128 {
    if b == 0 {
        return 0;
    }
    let q = a / b;
    if (a % b != 0) && ((a < 0) == (b < 0)) {
        q + 1
    } else {
        q
    }
}

/// The value of a container resource for the downward API. Limits the
/// container leaves unset (cpu, memory, ephemeral-storage) default to the
/// node's allocatable, as upstream does.
pub fn resource_value(
    fs: &ResourceFieldSelector,
    container: &Container,
    allocatable: &BTreeMap<String, ApiQuantity>,
) -> Result<String, String> {
    let divisor = fs
        .divisor
        .as_ref()
        .map(parse)
        .filter(|d| !d.is_zero())
        .unwrap_or_else(|| Quantity::new(1, apimachinery::quantity::Format::DecimalSI));
    let resources = container.resources.as_ref();
    let limits = resources.and_then(|r| r.limits.as_ref());
    let requests = resources.and_then(|r| r.requests.as_ref());
    let (kind, name) = fs
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource : {}", fs.resource))?;
    let get = |list: Option<&BTreeMap<String, ApiQuantity>>, default_alloc: bool| -> Quantity {
        let v = list
            .and_then(|l| l.get(name))
            .map(parse)
            .filter(|q| !q.is_zero());
        match v {
            Some(v) => v,
            None if default_alloc => allocatable.get(name).map(parse).unwrap_or_default(),
            None => Quantity::default(),
        }
    };
    let value = match kind {
        "limits" => get(
            limits,
            matches!(name, "cpu" | "memory" | "ephemeral-storage"),
        ),
        "requests" => get(requests, false),
        _ => return Err(format!("unsupported container resource : {}", fs.resource)),
    };
    let out = match name {
        "cpu" => ceil_div(value.milli_value(), divisor.milli_value()),
        "memory" | "ephemeral-storage" => ceil_div(value.value(), divisor.value()),
        n if n.starts_with("hugepages-") => ceil_div(value.value(), divisor.value()),
        _ => return Err(format!("unsupported container resource : {}", fs.resource)),
    };
    Ok(out.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    #[test]
    fn quoting_and_maps() {
        assert_eq!(go_quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(go_quote("é\u{1}"), "\"é\\x01\"");
        let m: BTreeMap<String, String> =
            [("b".into(), "2".into()), ("a".into(), "x y".into())].into();
        assert_eq!(format_map(&m), "a=\"x y\"\nb=\"2\"");
    }

    #[test]
    fn field_labels() {
        assert_eq!(
            convert_field_label(None, "spec.host").unwrap(),
            "spec.nodeName"
        );
        assert_eq!(
            convert_field_label(Some("v2"), "metadata.name").unwrap_err(),
            "unsupported pod version: v2"
        );
        assert_eq!(
            convert_field_label(None, "metadata.foo").unwrap_err(),
            "field label not supported: metadata.foo"
        );
        assert!(convert_field_label(None, "metadata.labels['a']").is_ok());
    }

    #[test]
    fn resources_with_divisor_and_allocatable() {
        let c = Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                limits: Some([("memory".to_string(), ApiQuantity("64Mi".into()))].into()),
                requests: Some([("cpu".to_string(), ApiQuantity("250m".into()))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let alloc: BTreeMap<String, ApiQuantity> =
            [("cpu".to_string(), ApiQuantity("3".into()))].into();
        let sel = |r: &str, d: Option<&str>| ResourceFieldSelector {
            resource: r.into(),
            divisor: d.map(|d| ApiQuantity(d.into())),
            container_name: None,
        };
        assert_eq!(
            resource_value(&sel("limits.memory", None), &c, &alloc).unwrap(),
            "67108864"
        );
        assert_eq!(
            resource_value(&sel("limits.memory", Some("1Mi")), &c, &alloc).unwrap(),
            "64"
        );
        assert_eq!(
            resource_value(&sel("limits.memory", Some("1G")), &c, &alloc).unwrap(),
            "1"
        );
        assert_eq!(
            resource_value(&sel("requests.cpu", None), &c, &alloc).unwrap(),
            "1"
        );
        assert_eq!(
            resource_value(&sel("requests.cpu", Some("1m")), &c, &alloc).unwrap(),
            "250"
        );
        assert_eq!(
            resource_value(&sel("limits.cpu", None), &c, &alloc).unwrap(),
            "3"
        );
        assert_eq!(
            resource_value(&sel("limits.gpu", None), &c, &alloc).unwrap_err(),
            "unsupported container resource : limits.gpu"
        );
    }
}
