//! networking.k8s.io/v1: ingresses, ingressclasses and networkpolicies.

use crate::strategy::column;
use crate::util::{
    arr_at, as_i64, ensure_obj, i64_at, immutable, is_set, is_valid_port_name, is_valid_port_num,
    ptr_str, set_default,
};
use apimachinery::validation::validate_label_selector;
use apimachinery::validation::{
    is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_valid_path_segment_name,
};
use std::collections::BTreeSet;
use std::sync::Arc;

use apimachinery::FieldError;
use serde_json::{Map, Value};

use super::common::{domain_prefixed_path_errors, format_label_selector, invalid_raw, s};
use crate::strategy::{age_cell, age_column, ResourceInfo, Strategy, Subresource, TableColumn};

pub fn all() -> Vec<Arc<dyn Strategy>> {
    vec![
        Arc::new(IngressClasses),
        Arc::new(Ingresses),
        Arc::new(NetworkPolicies),
    ]
}

// ---------------------------------------------------------------------------
// Ingresses
// ---------------------------------------------------------------------------

static INGRESSES: ResourceInfo = ResourceInfo {
    group: "networking.k8s.io",
    version: "v1",
    kind: "Ingress",
    plural: "ingresses",
    singular: "ingress",
    short_names: &["ing"],
    categories: &[],
    namespaced: true,
    definition: "io.k8s.api.networking.v1.Ingress",
    subresources: &[Subresource::Status],
    read_only: false,
    storage_segment: "ingress",
    storage_api_version: "networking.k8s.io/v1",
};

pub struct Ingresses;

/// A host name or a `*.`-wildcard of one.
fn host_errors(host: &str, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if host.parse::<std::net::IpAddr>().is_ok() {
        errs.push(FieldError::invalid(
            path,
            host,
            "must be a DNS name, not an IP address",
        ));
    }
    if host.contains('*') {
        let rest = host.strip_prefix("*.").unwrap_or("");
        if rest.is_empty() || !is_dns1123_subdomain(rest).is_empty() {
            errs.push(FieldError::invalid(
                path,
                host,
                "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ));
        }
    } else {
        for m in is_dns1123_subdomain(host) {
            errs.push(FieldError::invalid(path, host, m));
        }
    }
    errs
}

fn typed_local_ref_errors(r: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(g) = ptr_str(r, "/apiGroup").filter(|g| !g.is_empty()) {
        for m in is_dns1123_subdomain(g) {
            errs.push(FieldError::invalid(format!("{path}.apiGroup"), g, m));
        }
    }
    for (f, msg) in [("kind", "kind is required"), ("name", "name is required")] {
        let v = ptr_str(r, &format!("/{f}")).unwrap_or("");
        if v.is_empty() {
            errs.push(FieldError::required(format!("{path}.{f}"), msg));
        } else {
            for m in is_valid_path_segment_name(v) {
                errs.push(FieldError::invalid(format!("{path}.{f}"), v, m));
            }
        }
    }
    errs
}

fn backend_errors(b: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let resource = b.get("resource").filter(|v| !v.is_null());
    let service = b.get("service").filter(|v| !v.is_null());
    match (resource, service) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => errs.extend(typed_local_ref_errors(r, &format!("{path}.resource"))),
        (None, Some(svc)) => {
            let name = ptr_str(svc, "/name").unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(format!("{path}.service.name"), ""));
            } else {
                for m in is_dns1035_label(name) {
                    errs.push(FieldError::invalid(format!("{path}.service.name"), name, m));
                }
            }
            let port_name = ptr_str(svc, "/port/name").unwrap_or("");
            let port_num = i64_at(svc, "/port/number").unwrap_or(0);
            if !port_name.is_empty() && port_num != 0 {
                errs.push(FieldError::invalid(
                    path,
                    "",
                    "cannot set both port name & port number",
                ));
            } else if !port_name.is_empty() {
                for m in is_valid_port_name(port_name) {
                    errs.push(FieldError::invalid(
                        format!("{path}.service.port.name"),
                        port_name,
                        m,
                    ));
                }
            } else if port_num != 0 {
                for m in is_valid_port_num(port_num) {
                    errs.push(FieldError::invalid(
                        format!("{path}.service.port.number"),
                        port_num,
                        m,
                    ));
                }
            } else {
                errs.push(FieldError::required(
                    path,
                    "port name or number is required",
                ));
            }
        }
        (None, None) => errs.push(FieldError::invalid(
            path,
            "",
            "resource or service backend is required",
        )),
    }
    errs
}

fn http_path_errors(p: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(pt) = ptr_str(p, "/pathType") else {
        return vec![FieldError::required(
            format!("{path}.pathType"),
            "pathType must be specified",
        )];
    };
    let http_path = ptr_str(p, "/path").unwrap_or("");
    let pp = format!("{path}.path");
    match pt {
        "Exact" | "Prefix" => {
            if !http_path.starts_with('/') {
                errs.push(FieldError::invalid(
                    &pp,
                    http_path,
                    "must be an absolute path",
                ));
            }
            if !http_path.is_empty() {
                for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                    if http_path.contains(seq) {
                        errs.push(FieldError::invalid(
                            &pp,
                            http_path,
                            format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suf in ["/..", "/."] {
                    if http_path.ends_with(suf) {
                        errs.push(FieldError::invalid(
                            &pp,
                            http_path,
                            format!("cannot end with '{suf}'"),
                        ));
                    }
                }
            }
        }
        "ImplementationSpecific" => {
            if !http_path.is_empty() && !http_path.starts_with('/') {
                errs.push(FieldError::invalid(
                    &pp,
                    http_path,
                    "must be an absolute path",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            format!("{path}.pathType"),
            other,
            &["Exact", "ImplementationSpecific", "Prefix"],
        )),
    }
    errs.extend(backend_errors(
        p.get("backend").unwrap_or(&Value::Null),
        &format!("{path}.backend"),
    ));
    errs
}

fn validate_ingress_spec(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rules = arr_at(obj, "/spec/rules");
    let default_backend = obj.pointer("/spec/defaultBackend").filter(|v| !v.is_null());
    if rules.is_empty() && default_backend.is_none() {
        let repr = if obj.pointer("/spec/rules").is_some_and(Value::is_array) {
            "[]networking.IngressRule{}"
        } else {
            "[]networking.IngressRule(nil)"
        };
        errs.push(invalid_raw(
            "spec",
            repr,
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default_backend {
        errs.extend(backend_errors(b, "spec.defaultBackend"));
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = format!("spec.rules[{i}]");
        if let Some(host) = ptr_str(rule, "/host").filter(|h| !h.is_empty()) {
            errs.extend(host_errors(host, &format!("{rp}.host")));
        }
        if let Some(http) = rule.get("http").filter(|v| !v.is_null()) {
            let paths = arr_at(http, "/paths");
            if paths.is_empty() {
                errs.push(FieldError::required(format!("{rp}.http.paths"), ""));
            }
            for (pi, p) in paths.iter().enumerate() {
                errs.extend(http_path_errors(p, &format!("{rp}.http.paths[{pi}]")));
            }
        }
    }
    for (i, tls) in arr_at(obj, "/spec/tls").iter().enumerate() {
        for (hi, host) in arr_at(tls, "/hosts").iter().enumerate() {
            if let Some(h) = host.as_str() {
                errs.extend(host_errors(h, &format!("spec.tls[{i}].hosts[{hi}]")));
            }
        }
    }
    if let Some(c) = ptr_str(obj, "/spec/ingressClassName") {
        for m in is_dns1123_subdomain(c) {
            errs.push(FieldError::invalid("spec.ingressClassName", c, m));
        }
    }
    errs
}

impl Strategy for Ingresses {
    fn info(&self) -> &ResourceInfo {
        &INGRESSES
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_ingress_spec(obj)
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column(
                "Class",
                "string",
                "The name of the IngressClass resource that should be used for additional configuration",
                0,
            ),
            column("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule", 0),
            column("Address", "string", "Address is a list containing ingress points for the load-balancer", 0),
            column("Ports", "string", "Ports of TLS configurations that open", 0),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let class = ptr_str(obj, "/spec/ingressClassName").unwrap_or("<none>");
        let rules = arr_at(obj, "/spec/rules");
        let mut hosts: Vec<&str> = Vec::new();
        let mut more = false;
        for r in rules {
            if hosts.len() == 3 {
                more = true;
            }
            if !more {
                if let Some(h) = ptr_str(r, "/host").filter(|h| !h.is_empty()) {
                    hosts.push(h);
                }
            }
        }
        let hosts = if hosts.is_empty() {
            "*".to_string()
        } else if more {
            format!("{} + {} more...", hosts.join(","), rules.len() - 3)
        } else {
            hosts.join(",")
        };
        let address: BTreeSet<String> = arr_at(obj, "/status/loadBalancer/ingress")
            .iter()
            .filter_map(|i| {
                ptr_str(i, "/ip")
                    .filter(|v| !v.is_empty())
                    .or(ptr_str(i, "/hostname").filter(|v| !v.is_empty()))
                    .map(str::to_string)
            })
            .collect();
        let ports = if arr_at(obj, "/spec/tls").is_empty() {
            "80"
        } else {
            "80, 443"
        };
        vec![
            s(class),
            s(hosts),
            s(address.into_iter().collect::<Vec<_>>().join(",")),
            s(ports),
            age_cell(obj),
        ]
    }
}

// ---------------------------------------------------------------------------
// IngressClasses
// ---------------------------------------------------------------------------

static INGRESSCLASSES: ResourceInfo = ResourceInfo {
    group: "networking.k8s.io",
    version: "v1",
    kind: "IngressClass",
    plural: "ingressclasses",
    singular: "ingressclass",
    short_names: &[],
    categories: &[],
    namespaced: false,
    definition: "io.k8s.api.networking.v1.IngressClass",
    subresources: &[],
    read_only: false,
    storage_segment: "ingressclasses",
    storage_api_version: "networking.k8s.io/v1",
};

pub struct IngressClasses;

fn validate_ingress_class(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let controller = ptr_str(obj, "/spec/controller").unwrap_or("");
    if controller.len() > 250 {
        errs.push(FieldError::too_long("spec.controller", 250));
    }
    errs.extend(domain_prefixed_path_errors(controller, "spec.controller"));
    if let Some(params) = obj.pointer("/spec/parameters").filter(|v| !v.is_null()) {
        let p = "spec.parameters";
        errs.extend(typed_local_ref_errors(params, p));
        match ptr_str(params, "/scope") {
            None => errs.push(FieldError::required(format!("{p}.scope"), "")),
            Some("Namespace") => match ptr_str(params, "/namespace") {
                None => errs.push(FieldError::required(
                    format!("{p}.namespace"),
                    "`parameters.scope` is set to 'Namespace'",
                )),
                Some(ns) => {
                    for m in is_dns1123_label(ns) {
                        errs.push(FieldError::invalid(format!("{p}.namespace"), ns, m));
                    }
                }
            },
            Some("Cluster") => {
                if is_set(params.get("namespace")) {
                    errs.push(FieldError::forbidden(
                        format!("{p}.namespace"),
                        "`parameters.scope` is set to 'Cluster'",
                    ));
                }
            }
            Some(other) => errs.push(FieldError::not_supported(
                format!("{p}.scope"),
                other,
                &["Cluster", "Namespace"],
            )),
        }
    }
    errs
}

impl Strategy for IngressClasses {
    fn info(&self) -> &ResourceInfo {
        &INGRESSCLASSES
    }

    fn bumps_generation(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        if let Some(params) = obj
            .pointer_mut("/spec/parameters")
            .and_then(Value::as_object_mut)
        {
            set_default(params, "scope", s("Cluster"));
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_ingress_class(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_ingress_class(new);
        errs.extend(immutable(
            new.pointer("/spec/controller"),
            old.pointer("/spec/controller"),
            "spec.controller",
        ));
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column(
                "Controller",
                "string",
                "Controller that is responsible for handling this class",
                0,
            ),
            column(
                "Parameters",
                "string",
                "A reference to a resource with additional parameters",
                0,
            ),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let params = match obj.pointer("/spec/parameters").filter(|v| v.is_object()) {
            None => "<none>".to_string(),
            Some(p) => {
                let mut out = ptr_str(p, "/kind").unwrap_or("").to_string();
                if let Some(g) = ptr_str(p, "/apiGroup") {
                    out = format!("{out}.{g}");
                }
                format!("{out}/{}", ptr_str(p, "/name").unwrap_or(""))
            }
        };
        vec![
            s(ptr_str(obj, "/spec/controller").unwrap_or("")),
            s(params),
            age_cell(obj),
        ]
    }
}

// ---------------------------------------------------------------------------
// NetworkPolicies
// ---------------------------------------------------------------------------

static NETWORKPOLICIES: ResourceInfo = ResourceInfo {
    group: "networking.k8s.io",
    version: "v1",
    kind: "NetworkPolicy",
    plural: "networkpolicies",
    singular: "networkpolicy",
    short_names: &["netpol"],
    categories: &[],
    namespaced: true,
    definition: "io.k8s.api.networking.v1.NetworkPolicy",
    subresources: &[],
    read_only: false,
    storage_segment: "networkpolicies",
    storage_api_version: "networking.k8s.io/v1",
};

pub struct NetworkPolicies;

fn np_port_errors(port: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(proto) = ptr_str(port, "/protocol") {
        if !matches!(proto, "TCP" | "UDP" | "SCTP") {
            errs.push(FieldError::not_supported(
                format!("{path}.protocol"),
                proto,
                &["TCP", "UDP", "SCTP"],
            ));
        }
    }
    let end = i64_at(port, "/endPort");
    match port.get("port").filter(|v| !v.is_null()) {
        Some(Value::String(name)) => {
            if let Some(e) = end {
                errs.push(FieldError::invalid(
                    format!("{path}.endPort"),
                    e,
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for m in is_valid_port_name(name) {
                errs.push(FieldError::invalid(
                    format!("{path}.port"),
                    name.as_str(),
                    m,
                ));
            }
        }
        Some(v) => {
            let n = as_i64(v).unwrap_or(0);
            for m in is_valid_port_num(n) {
                errs.push(FieldError::invalid(format!("{path}.port"), n, m));
            }
            if let Some(e) = end {
                if e < n {
                    errs.push(FieldError::invalid(
                        format!("{path}.endPort"),
                        n,
                        "must be greater than or equal to `port`",
                    ));
                }
                for m in is_valid_port_num(e) {
                    errs.push(FieldError::invalid(format!("{path}.endPort"), e, m));
                }
            }
        }
        None => {
            if let Some(e) = end {
                errs.push(FieldError::invalid(
                    format!("{path}.endPort"),
                    e,
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
    errs
}

fn cidr_error(cidr: &str) -> Option<String> {
    if cidr.parse::<ipnet::IpNet>().is_err() {
        Some("must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)".to_string())
    } else {
        None
    }
}

fn np_peer_errors(peer: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut num = 0;
    for key in ["podSelector", "namespaceSelector"] {
        if let Some(sel) = peer.get(key).filter(|v| !v.is_null()) {
            num += 1;
            errs.extend(validate_label_selector(sel, &format!("{path}.{key}")));
        }
    }
    let ip_block = peer.get("ipBlock").filter(|v| !v.is_null());
    if let Some(b) = ip_block {
        num += 1;
        let bp = format!("{path}.ipBlock");
        let cidr = ptr_str(b, "/cidr").unwrap_or("");
        if cidr.is_empty() {
            errs.push(FieldError::required(format!("{bp}.cidr"), ""));
        } else if let Some(m) = cidr_error(cidr) {
            errs.push(FieldError::invalid(format!("{bp}.cidr"), cidr, m));
        }
        let parent = cidr.parse::<ipnet::IpNet>().ok();
        for (i, e) in arr_at(b, "/except").iter().enumerate() {
            let e = e.as_str().unwrap_or("");
            let ep = format!("{bp}.except[{i}]");
            if let Some(m) = cidr_error(e) {
                errs.push(FieldError::invalid(&ep, e, m));
                continue;
            }
            if let (Some(parent), Ok(child)) = (parent, e.parse::<ipnet::IpNet>()) {
                let within =
                    parent.contains(&child.network()) && child.prefix_len() > parent.prefix_len();
                if !within {
                    errs.push(FieldError::invalid(
                        &ep,
                        e,
                        "must be a strict subset of `cidr`",
                    ));
                }
            }
        }
    }
    if num == 0 {
        errs.push(FieldError::required(path, "must specify a peer"));
    } else if num > 1 && ip_block.is_some() {
        errs.push(FieldError::forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
    errs
}

fn validate_network_policy(obj: &Value) -> Vec<FieldError> {
    let mut errs = validate_label_selector(
        obj.pointer("/spec/podSelector").unwrap_or(&Value::Null),
        "spec.podSelector",
    );
    for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in arr_at(obj, &format!("/spec/{dir}")).iter().enumerate() {
            let rp = format!("spec.{dir}[{i}]");
            for (pi, port) in arr_at(rule, "/ports").iter().enumerate() {
                errs.extend(np_port_errors(port, &format!("{rp}.ports[{pi}]")));
            }
            for (pi, peer) in arr_at(rule, &format!("/{peers}")).iter().enumerate() {
                errs.extend(np_peer_errors(peer, &format!("{rp}.{peers}[{pi}]")));
            }
        }
    }
    let types = arr_at(obj, "/spec/policyTypes");
    if types.len() > 2 {
        errs.push(FieldError::invalid(
            "spec.policyTypes",
            Value::Array(types.to_vec()),
            "may not specify more than two policyTypes",
        ));
        return errs;
    }
    for (i, t) in types.iter().enumerate() {
        let t = t.as_str().unwrap_or("");
        if t != "Ingress" && t != "Egress" {
            errs.push(FieldError::not_supported(
                format!("spec.policyTypes[{i}]"),
                t,
                &["Ingress", "Egress"],
            ));
        }
    }
    errs
}

impl Strategy for NetworkPolicies {
    fn info(&self) -> &ResourceInfo {
        &NETWORKPOLICIES
    }

    fn bumps_generation(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        let Some(spec) = ensure_obj(obj, "spec") else {
            return;
        };
        set_default(spec, "podSelector", Value::Object(Map::new()));
        for dir in ["ingress", "egress"] {
            if let Some(rules) = spec.get_mut(dir).and_then(Value::as_array_mut) {
                for rule in rules.iter_mut() {
                    if let Some(ports) = rule.get_mut("ports").and_then(Value::as_array_mut) {
                        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                            set_default(p, "protocol", s("TCP"));
                        }
                    }
                }
            }
        }
        if spec
            .get("policyTypes")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            let mut types = vec![s("Ingress")];
            if spec
                .get("egress")
                .and_then(Value::as_array)
                .is_some_and(|e| !e.is_empty())
            {
                types.push(s("Egress"));
            }
            spec.insert("policyTypes".into(), Value::Array(types));
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_network_policy(obj)
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Pod-Selector", "string", "Selects the pods to which this NetworkPolicy object applies. The array of ingress rules is applied to any pods selected by this field. Multiple network policies can select the same set of pods. In this case, the ingress rules for each are combined additively. This field is NOT optional and follows standard label selector semantics. An empty podSelector matches all pods in this namespace.", 0),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let sel = obj
            .pointer("/spec/podSelector")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        vec![s(format_label_selector(Some(&sel))), age_cell(obj)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ingress_requires_path_type_and_a_backend() {
        let ing = json!({"metadata": {"name": "x"}, "spec": {"rules": [{"host": "example.com", "http": {"paths": [{"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}});
        let errs: Vec<String> = Ingresses
            .validate(&ing)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            vec![
                "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"
                    .to_string()
            ]
        );
        let empty = json!({"spec": {}});
        assert_eq!(
            Ingresses.validate(&empty)[0].to_string(),
            "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"
        );
    }

    #[test]
    fn ingress_row() {
        let ing = json!({"spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}], "tls": [{"hosts": ["a.example.com"]}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.2"}, {"hostname": "lb.example.com"}]}}});
        let row = Ingresses.table_row(&ing);
        assert_eq!(
            row[..4],
            [
                json!("nginx"),
                json!("a.example.com,b.example.com"),
                json!("10.0.0.2,lb.example.com"),
                json!("80, 443")
            ]
        );
        assert_eq!(
            Ingresses.table_row(&json!({"spec": {}}))[..2],
            [json!("<none>"), json!("*")]
        );
    }

    #[test]
    fn ingressclass_controller_is_required_and_immutable() {
        let ic = json!({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx", "parameters": {"kind": "Config", "name": "c"}}});
        let mut d = ic.clone();
        IngressClasses.default(&mut d);
        assert_eq!(d["spec"]["parameters"]["scope"], "Cluster");
        assert!(IngressClasses.validate(&d).is_empty());
        assert_eq!(IngressClasses.table_row(&d)[1], "Config/c");
        let mut n = d.clone();
        n["spec"]["controller"] = json!("example.com/other");
        assert_eq!(
            IngressClasses.validate_update(&n, &d)[0].to_string(),
            "spec.controller: Invalid value: \"example.com/other\": field is immutable"
        );
        assert_eq!(
            IngressClasses.validate(&json!({"spec": {}}))[0].to_string(),
            "spec.controller: Required value"
        );
    }

    #[test]
    fn networkpolicy_defaults_policy_types_and_protocols() {
        let mut np = json!({"spec": {"podSelector": {"matchLabels": {"app": "db"}}, "egress": [{"ports": [{"port": 5432}]}]}});
        NetworkPolicies.default(&mut np);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
        assert!(NetworkPolicies.validate(&np).is_empty());
        assert_eq!(NetworkPolicies.table_row(&np)[0], "app=db");
        let mut empty = json!({"spec": {}});
        NetworkPolicies.default(&mut empty);
        assert_eq!(NetworkPolicies.table_row(&empty)[0], "<none>");
    }
}
