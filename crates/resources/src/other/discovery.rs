//! discovery.k8s.io/v1 endpointslices.

use crate::strategy::column;
use crate::util::{arr_at, immutable, ptr_str, set_default};
use apimachinery::validation::{is_dns1123_label, is_dns1123_subdomain, is_qualified_name};
use std::collections::BTreeSet;
use std::sync::Arc;

use apimachinery::{FieldError, FieldErrorType};
use serde_json::Value;

use super::common::s;
use crate::strategy::{age_cell, age_column, ResourceInfo, Strategy, TableColumn};

pub fn all() -> Vec<Arc<dyn Strategy>> {
    vec![Arc::new(EndpointSlices)]
}

static ENDPOINTSLICES: ResourceInfo = ResourceInfo {
    group: "discovery.k8s.io",
    version: "v1",
    kind: "EndpointSlice",
    plural: "endpointslices",
    singular: "endpointslice",
    short_names: &[],
    categories: &[],
    namespaced: true,
    definition: "io.k8s.api.discovery.v1.EndpointSlice",
    subresources: &[],
    read_only: false,
    storage_segment: "endpointslices",
    storage_api_version: "discovery.k8s.io/v1",
};

const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 20000;

pub struct EndpointSlices;

fn too_many(path: &str, actual: usize, max: usize) -> FieldError {
    FieldError {
        kind: FieldErrorType::TooMany,
        field: path.to_string(),
        value: Some(Value::from(actual)),
        detail: format!("must have at most {max} items"),
    }
}

fn validate_address(addr: &str, addr_type: &str, path: &str) -> Vec<FieldError> {
    match addr_type {
        "IPv4" if addr.parse::<std::net::Ipv4Addr>().is_err() => {
            return vec![FieldError::invalid(
                path,
                addr,
                "must be a valid IPv4 address",
            )];
        }
        "IPv6" if addr.parse::<std::net::Ipv6Addr>().is_err() => {
            return vec![FieldError::invalid(
                path,
                addr,
                "must be a valid IPv6 address",
            )];
        }
        "FQDN" => {
            if addr.is_empty() {
                return vec![FieldError::required(path, "")];
            }
            let name = addr.strip_suffix('.').unwrap_or(addr);
            let errs = is_dns1123_subdomain(name);
            if !errs.is_empty() {
                return vec![FieldError::invalid(path, name, errs.join(","))];
            }
            if name.split('.').count() < 2 {
                return vec![FieldError::invalid(
                    path,
                    name,
                    "should be a domain with at least two segments separated by dots",
                )];
            }
            for label in name.split('.') {
                let errs = is_dns1123_label(label);
                if !errs.is_empty() {
                    return vec![FieldError::invalid(path, label, errs.join(","))];
                }
            }
        }
        _ => {}
    }
    Vec::new()
}

fn validate_endpoints(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let endpoints = arr_at(obj, "/endpoints");
    if endpoints.len() > MAX_ENDPOINTS {
        errs.push(too_many("endpoints", endpoints.len(), MAX_ENDPOINTS));
        return errs;
    }
    let addr_type = ptr_str(obj, "/addressType").unwrap_or("");
    for (i, ep) in endpoints.iter().enumerate() {
        let p = format!("endpoints[{i}]");
        let addresses = arr_at(ep, "/addresses");
        if addresses.is_empty() {
            errs.push(FieldError::required(
                format!("{p}.addresses"),
                "must contain at least 1 address",
            ));
        } else if addresses.len() > MAX_ADDRESSES {
            errs.push(too_many(
                &format!("{p}.addresses"),
                addresses.len(),
                MAX_ADDRESSES,
            ));
        }
        for (ai, a) in addresses.iter().enumerate() {
            errs.extend(validate_address(
                a.as_str().unwrap_or(""),
                addr_type,
                &format!("{p}.addresses[{ai}]"),
            ));
        }
        if let Some(n) = ptr_str(ep, "/nodeName") {
            for m in is_dns1123_subdomain(n) {
                errs.push(FieldError::invalid(format!("{p}.nodeName"), n, m));
            }
        }
        if let Some(h) = ptr_str(ep, "/hostname") {
            for m in is_dns1123_label(h) {
                errs.push(FieldError::invalid(format!("{p}.hostname"), h, m));
            }
        }
    }
    errs
}

fn validate_ports(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ports = arr_at(obj, "/ports");
    if ports.len() > MAX_PORTS {
        errs.push(too_many("ports", ports.len(), MAX_PORTS));
        return errs;
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = format!("ports[{i}]");
        let name = ptr_str(port, "/name").unwrap_or("");
        if !name.is_empty() {
            for m in is_dns1123_label(name) {
                errs.push(FieldError::invalid(format!("{p}.name"), name, m));
            }
        }
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(format!("{p}.name"), name));
        }
        match ptr_str(port, "/protocol") {
            None => errs.push(FieldError::required(format!("{p}.protocol"), "")),
            Some("TCP" | "UDP" | "SCTP") => {}
            Some(other) => errs.push(FieldError::not_supported(
                format!("{p}.protocol"),
                other,
                &["SCTP", "TCP", "UDP"],
            )),
        }
        if let Some(ap) = ptr_str(port, "/appProtocol") {
            for m in is_qualified_name(ap) {
                errs.push(FieldError::invalid(format!("{p}.appProtocol"), ap, m));
            }
        }
    }
    errs
}

fn validate_address_type(obj: &Value) -> Vec<FieldError> {
    match ptr_str(obj, "/addressType").unwrap_or("") {
        "" => vec![FieldError::required("addressType", "")],
        "IPv4" | "IPv6" | "FQDN" => Vec::new(),
        other => vec![FieldError::not_supported(
            "addressType",
            other,
            &["FQDN", "IPv4", "IPv6"],
        )],
    }
}

/// Up to three items then `+ N more...`, `<unset>` when empty.
fn list_with_more(items: Vec<String>, count: usize) -> String {
    const MAX: usize = 3;
    let shown: Vec<String> = items.into_iter().take(MAX).collect();
    let ret = shown.join(",");
    if count > MAX {
        return format!("{ret} + {} more...", count - MAX);
    }
    if ret.is_empty() {
        "<unset>".to_string()
    } else {
        ret
    }
}

impl Strategy for EndpointSlices {
    fn info(&self) -> &ResourceInfo {
        &ENDPOINTSLICES
    }

    fn bumps_generation(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        if let Some(ports) = obj.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                set_default(p, "name", s(""));
                set_default(p, "protocol", s("TCP"));
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = validate_address_type(obj);
        errs.extend(validate_endpoints(obj));
        errs.extend(validate_ports(obj));
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_endpoints(new);
        errs.extend(validate_ports(new));
        errs.extend(immutable(
            new.get("addressType"),
            old.get("addressType"),
            "addressType",
        ));
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("AddressType", "string", "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation.", 0),
            column("Ports", "string", "ports specifies the list of network ports exposed by each endpoint in this slice.", 0),
            column("Endpoints", "string", "endpoints is a list of unique endpoints in this slice.", 0),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let ports = arr_at(obj, "/ports");
        let port_items: Vec<String> = ports
            .iter()
            .map(|p| {
                match (
                    p.get("port").and_then(Value::as_i64),
                    p.get("name").and_then(Value::as_str),
                ) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(name)) => name.to_string(),
                    (None, None) => "*".to_string(),
                }
            })
            .collect();
        let addrs: Vec<String> = arr_at(obj, "/endpoints")
            .iter()
            .flat_map(|e| {
                arr_at(e, "/addresses")
                    .iter()
                    .map(|a| a.as_str().unwrap_or("").to_string())
            })
            .collect();
        let count = addrs.len();
        vec![
            s(ptr_str(obj, "/addressType").unwrap_or("")),
            s(list_with_more(port_items, ports.len())),
            s(list_with_more(addrs, count)),
            age_cell(obj),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpointslice_address_type_is_required_and_supported() {
        let mut e = json!({"metadata": {"name": "x"}, "endpoints": []});
        assert_eq!(
            EndpointSlices.validate(&e)[0].to_string(),
            "addressType: Required value"
        );
        e["addressType"] = json!("IPv5");
        assert_eq!(
            EndpointSlices.validate(&e)[0].to_string(),
            "addressType: Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""
        );
    }

    #[test]
    fn endpointslice_limits_endpoints() {
        let eps: Vec<Value> = (0..1001)
            .map(|_| json!({"addresses": ["10.0.0.1"]}))
            .collect();
        let e = json!({"addressType": "IPv4", "endpoints": eps});
        assert_eq!(
            EndpointSlices.validate(&e)[0].to_string(),
            "endpoints: Too many: 1001: must have at most 1000 items"
        );
    }

    #[test]
    fn endpointslice_row_and_defaults() {
        let mut e = json!({"metadata": {"name": "x"}, "addressType": "IPv4",
            "ports": [{"port": 80}], "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]});
        EndpointSlices.default(&mut e);
        assert_eq!(
            e["ports"][0],
            json!({"port": 80, "name": "", "protocol": "TCP"})
        );
        assert!(EndpointSlices.validate(&e).is_empty());
        let row = EndpointSlices.table_row(&e);
        assert_eq!(row[1], "80");
        assert_eq!(row[2], "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...");
        assert_eq!(
            EndpointSlices.table_row(&json!({"addressType": "IPv4"}))[1],
            "<unset>"
        );
    }
}
