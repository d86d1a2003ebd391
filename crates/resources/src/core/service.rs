//! Services and Endpoints: upstream's SetDefaults_Service, the parts of the
//! service REST/allocator that shape the object (clusterIP ↔ clusterIPs,
//! ipFamilies/ipFamilyPolicy on a single-stack IPv4 cluster, keeping
//! allocated values on update, wiping type-dependent fields), ValidateService
//! and its update rules, and the printers.
//!
//! The store allocates clusterIPs and nodePorts; this file only checks that
//! what is present is well formed.

use std::collections::HashSet;

use apimachinery::validation::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, validate_labels,
};
use apimachinery::FieldError;
use serde_json::{json, Value};

use super::pod::format_labels;
use crate::strategy::{
    age_cell, age_column, column, ResourceInfo, Strategy, Subresource, TableColumn,
};
use crate::util::*;

fn svc_type(svc: &Value) -> &str {
    str_at(svc, "/spec/type")
}

/// clusterIPs, falling back to the singular field.
fn cluster_ips(svc: &Value) -> Vec<String> {
    let list: Vec<String> = arr_at(svc, "/spec/clusterIPs")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if list.is_empty() {
        let one = str_at(svc, "/spec/clusterIP");
        if !one.is_empty() {
            return vec![one.to_string()];
        }
    }
    list
}

fn is_headless(svc: &Value) -> bool {
    let ips = cluster_ips(svc);
    ips.len() == 1 && ips.first().is_some_and(|ip| ip == "None")
}

fn needs_cluster_ip(svc: &Value) -> bool {
    svc_type(svc) != "ExternalName"
}

fn needs_node_port(svc: &Value) -> bool {
    match svc_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => {
            svc.pointer("/spec/allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false)
        }
        _ => false,
    }
}

fn needs_hc_node_port(svc: &Value) -> bool {
    svc_type(svc) == "LoadBalancer" && str_at(svc, "/spec/externalTrafficPolicy") == "Local"
}

/// Upstream `ExternallyAccessible`.
fn externally_accessible(svc: &Value) -> bool {
    matches!(svc_type(svc), "LoadBalancer" | "NodePort")
        || (svc_type(svc) == "ClusterIP" && !arr_at(svc, "/spec/externalIPs").is_empty())
}

fn has_selector(svc: &Value) -> bool {
    obj_at(svc, "/spec/selector").is_some_and(|m| !m.is_empty())
}

/// SetDefaults_Service plus the family fields the allocator fills in for a
/// single-stack IPv4 cluster.
fn default_service(svc: &mut Value) {
    let Some(spec) = svc.get_mut("spec") else {
        return;
    };
    if !spec.is_object() {
        return;
    }
    default_str(spec, "sessionAffinity", "None");
    match s(spec, "sessionAffinity") {
        "None" => {
            if let Some(o) = spec.as_object_mut() {
                o.remove("sessionAffinityConfig");
            }
        }
        "ClientIP"
            if spec
                .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
                .is_none_or(Value::is_null) =>
        {
            if let Some(o) = spec.as_object_mut() {
                o.insert(
                    "sessionAffinityConfig".into(),
                    json!({ "clientIP": { "timeoutSeconds": 10800 } }),
                );
            }
        }
        _ => {}
    }
    default_str(spec, "type", "ClusterIP");
    each_mut(spec, "ports", |p| {
        default_str(p, "protocol", "TCP");
        let unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::String(x)) => x.is_empty(),
            Some(v) => as_i64(v) == Some(0),
        };
        if unset {
            let port = p.get("port").cloned().unwrap_or(json!(0));
            if let Some(o) = p.as_object_mut() {
                o.insert("targetPort".into(), port);
            }
        }
    });
    let t = s(spec, "type").to_string();
    let accessible = matches!(t.as_str(), "LoadBalancer" | "NodePort")
        || (t == "ClusterIP" && !arr(spec, "externalIPs").is_empty());
    if accessible {
        default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(t.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        default_ptr(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if t == "LoadBalancer" {
        default_ptr(spec, "allocateLoadBalancerNodePorts", json!(true));
    }

    // clusterIP given alone (old clients): mirror it into clusterIPs.
    let cip = s(spec, "clusterIP").to_string();
    if !cip.is_empty() && arr(spec, "clusterIPs").is_empty() {
        if let Some(o) = spec.as_object_mut() {
            o.insert("clusterIPs".into(), json!([cip]));
        }
    }

    if t != "ExternalName" {
        let ips: Vec<String> = arr(spec, "clusterIPs")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let headless = ips.len() == 1 && ips.first().is_some_and(|ip| ip == "None");
        let selectorless = spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(|m| m.is_empty());
        if headless && selectorless {
            default_ptr(spec, "ipFamilyPolicy", json!("RequireDualStack"));
        }
        default_ptr(spec, "ipFamilyPolicy", json!("SingleStack"));
        if arr(spec, "ipFamilies").is_empty() {
            let mut fams: Vec<&str> = ips
                .iter()
                .filter_map(|ip| parse_ip_sloppy(ip))
                .map(|ip| if ip.is_ipv6() { "IPv6" } else { "IPv4" })
                .collect();
            if fams.is_empty() {
                fams.push("IPv4");
            }
            if let Some(o) = spec.as_object_mut() {
                o.insert("ipFamilies".into(), json!(fams));
            }
        }
    }

    if t == "LoadBalancer" {
        if let Some(ingress) = svc
            .pointer_mut("/status/loadBalancer/ingress")
            .and_then(Value::as_array_mut)
        {
            for ing in ingress {
                if !s(ing, "ip").is_empty() {
                    default_ptr(ing, "ipMode", json!("VIP"));
                }
            }
        }
    }
    if let Some(status) = ensure_obj(svc, "status") {
        status.entry("loadBalancer").or_insert_with(|| json!({}));
    }
}

fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    sem_eq(a, b)
}

/// Upstream `patchAllocatedValues`: values the client did not send but the
/// old object has allocated are carried over.
fn patch_allocated_values(new: &mut Value, old: &Value) {
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
            if spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                if let Some(v) = old.pointer("/spec/clusterIP").filter(|v| !v.is_null()) {
                    spec.insert("clusterIP".into(), v.clone());
                }
            }
            let empty = spec
                .get("clusterIPs")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
            if empty && !arr_at(old, "/spec/clusterIPs").is_empty() {
                spec.insert(
                    "clusterIPs".into(),
                    old.pointer("/spec/clusterIPs")
                        .cloned()
                        .unwrap_or(Value::Null),
                );
            }
            for key in ["ipFamilies", "ipFamilyPolicy"] {
                if spec.get(key).is_none_or(Value::is_null) {
                    if let Some(v) = old
                        .pointer(&format!("/spec/{key}"))
                        .filter(|v| !v.is_null())
                    {
                        spec.insert(key.into(), v.clone());
                    }
                }
            }
        }
    }
    if needs_node_port(old) && needs_node_port(new) {
        let used = |svc: &Value| -> HashSet<i64> {
            arr_at(svc, "/spec/ports")
                .iter()
                .filter_map(|p| p.get("nodePort").and_then(as_i64))
                .filter(|n| *n != 0)
                .collect()
        };
        let in_both: HashSet<i64> = used(old).intersection(&used(new)).copied().collect();
        let by_name: Vec<(String, i64)> = arr_at(old, "/spec/ports")
            .iter()
            .map(|p| {
                (
                    s(p, "name").to_string(),
                    p.get("nodePort").and_then(as_i64).unwrap_or(0),
                )
            })
            .collect();
        if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports {
                if p.get("nodePort").and_then(as_i64).unwrap_or(0) != 0 {
                    continue;
                }
                let name = s(p, "name").to_string();
                if let Some((_, np)) = by_name.iter().find(|(n, _)| *n == name) {
                    if *np != 0 && !in_both.contains(np) {
                        if let Some(o) = p.as_object_mut() {
                            o.insert("nodePort".into(), json!(np));
                        }
                    }
                }
            }
        }
    }
    if needs_hc_node_port(old) && needs_hc_node_port(new) {
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
            if spec
                .get("healthCheckNodePort")
                .and_then(as_i64)
                .unwrap_or(0)
                == 0
            {
                if let Some(v) = old.pointer("/spec/healthCheckNodePort") {
                    spec.insert("healthCheckNodePort".into(), v.clone());
                }
            }
        }
    }
}

/// Upstream `NormalizeClusterIPs` for an update.
fn normalize_cluster_ips(new: &mut Value, old: &Value) {
    let old_ips = old.pointer("/spec/clusterIPs").cloned();
    let old_ip = str_at(old, "/spec/clusterIP").to_string();
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let new_ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let new_ips_empty = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if old_ips
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
        && new_ips_empty
        && old_ip == new_ip
    {
        if let Some(v) = old_ips.clone() {
            spec.insert("clusterIPs".into(), v);
        }
    }
    if old_ip != new_ip {
        let same_ips = same(spec.get("clusterIPs"), old_ips.as_ref());
        if !old_ip.is_empty() && new_ip.is_empty() {
            if same_ips {
                spec.remove("clusterIPs");
            }
        } else if same_ips {
            spec.insert("clusterIPs".into(), json!([new_ip]));
        }
    }
}

/// Upstream `dropTypeDependentFields`: wipe what the new type no longer uses,
/// when the client left it as it was.
fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    let new_needs_ip = needs_cluster_ip(new);
    // Upstream's strategy looks at the type only here (the allocate flag
    // matters to allocation, not to wiping).
    let np_type = |svc: &Value| matches!(svc_type(svc), "NodePort" | "LoadBalancer");
    let new_needs_np = np_type(new);
    let new_needs_hc = needs_hc_node_port(new);
    let new_lb = svc_type(new) == "LoadBalancer";
    let new_accessible = externally_accessible(new);
    // No net-new node ports: the new set is a subset of the old one.
    let same_node_ports = {
        let ports = |svc: &Value| -> HashSet<i64> {
            arr_at(svc, "/spec/ports")
                .iter()
                .filter_map(|p| p.get("nodePort").and_then(as_i64))
                .filter(|n| *n != 0)
                .collect()
        };
        ports(new).is_subset(&ports(old))
    };
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let old_spec = old.get("spec").cloned().unwrap_or(Value::Null);
    if needs_cluster_ip(old) && !new_needs_ip {
        if same(spec.get("clusterIPs"), old_spec.get("clusterIPs"))
            && same(spec.get("clusterIP"), old_spec.get("clusterIP"))
        {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        if same(spec.get("ipFamilies"), old_spec.get("ipFamilies")) {
            spec.remove("ipFamilies");
        }
        if same(spec.get("ipFamilyPolicy"), old_spec.get("ipFamilyPolicy")) {
            spec.remove("ipFamilyPolicy");
        }
    }
    if np_type(old) && !new_needs_np && same_node_ports {
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports {
                if let Some(o) = p.as_object_mut() {
                    o.remove("nodePort");
                }
            }
        }
    }
    if needs_hc_node_port(old)
        && !new_needs_hc
        && same(
            spec.get("healthCheckNodePort"),
            old_spec.get("healthCheckNodePort"),
        )
    {
        spec.remove("healthCheckNodePort");
    }
    if svc_type(old) == "LoadBalancer" && !new_lb {
        if spec
            .get("allocateLoadBalancerNodePorts")
            .is_some_and(|v| !v.is_null())
            && same(
                spec.get("allocateLoadBalancerNodePorts"),
                old_spec.get("allocateLoadBalancerNodePorts"),
            )
        {
            spec.remove("allocateLoadBalancerNodePorts");
        }
        if same(
            spec.get("loadBalancerClass"),
            old_spec.get("loadBalancerClass"),
        ) {
            spec.remove("loadBalancerClass");
        }
    }
    if externally_accessible(old)
        && !new_accessible
        && same(
            spec.get("externalTrafficPolicy"),
            old_spec.get("externalTrafficPolicy"),
        )
    {
        spec.remove("externalTrafficPolicy");
    }
    if !new_lb {
        if let Some(status) = new.get_mut("status").and_then(Value::as_object_mut) {
            status.insert("loadBalancer".into(), json!({}));
        }
    }
}

/// Upstream `ValidateServiceClusterIPsRelatedFields` and the parts of
/// `ValidateConditionalService`/the allocator that depend on the cluster
/// being single-stack IPv4.
fn validate_cluster_ips_related(svc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if svc_type(svc) == "ExternalName" {
        return errs;
    }
    let spec = svc.get("spec").unwrap_or(&Value::Null);
    let cip = s(spec, "clusterIP");
    let ips: Vec<&str> = arr(spec, "clusterIPs")
        .iter()
        .map(|v| v.as_str().unwrap_or(""))
        .collect();
    let ips_value = spec.get("clusterIPs").cloned().unwrap_or(json!([]));
    if !cip.is_empty() {
        if let Some(first) = ips.first() {
            if *first != cip {
                errs.push(FieldError::invalid(
                    "spec.clusterIPs",
                    ips_value.clone(),
                    "first value must match `clusterIP`",
                ));
            }
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            ips_value.clone(),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let mut seen = HashSet::new();
    for (i, f) in arr(spec, "ipFamilies").iter().enumerate() {
        let f = f.as_str().unwrap_or("");
        if !["IPv4", "IPv6"].contains(&f) {
            errs.push(FieldError::not_supported(
                format!("spec.ipFamilies[{i}]"),
                f,
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(f) {
            errs.push(FieldError::duplicate(format!("spec.ipFamilies[{i}]"), f));
        }
    }
    let policy = s(spec, "ipFamilyPolicy");
    if has(spec, "ipFamilyPolicy")
        && !["PreferDualStack", "RequireDualStack", "SingleStack"].contains(&policy)
    {
        errs.push(FieldError::not_supported(
            "spec.ipFamilyPolicy",
            policy,
            &["PreferDualStack", "RequireDualStack", "SingleStack"],
        ));
    }
    let mut bad = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && *ip == "None" {
            if ips.len() > 1 {
                bad = true;
                errs.push(FieldError::invalid(
                    "spec.clusterIPs",
                    ips_value.clone(),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        let e = validate_ip(&format!("spec.clusterIPs[{i}]"), ip);
        bad |= !e.is_empty();
        errs.extend(e);
    }
    if ips.len() > 2 {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            ips_value.clone(),
            "may only hold up to 2 values",
        ));
    }
    if bad {
        return errs;
    }
    if ips.len() > 1 {
        let v6: Vec<bool> = ips
            .iter()
            .filter_map(|ip| parse_ip_sloppy(ip))
            .map(|ip| ip.is_ipv6())
            .collect();
        let dual = v6.len() == 2 && v6.first() != v6.get(1);
        if !dual {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                ips_value.clone(),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    let fams: Vec<&str> = arr(spec, "ipFamilies")
        .iter()
        .map(|v| v.as_str().unwrap_or(""))
        .collect();
    if !is_headless(svc) {
        for (i, ip) in ips.iter().enumerate() {
            let Some(fam) = fams.get(i) else { break };
            let is6 = parse_ip_sloppy(ip).is_some_and(|x| x.is_ipv6());
            if *fam == "IPv4" && is6 {
                errs.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    *ip,
                    format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if *fam == "IPv6" && !is6 {
                errs.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    *ip,
                    format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    // This cluster serves IPv4 only.
    let headless_selectorless = is_headless(svc) && !has_selector(svc);
    if !headless_selectorless {
        if policy == "RequireDualStack" {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                policy,
                "this cluster is not configured for dual-stack services",
            ));
        }
        for (i, f) in fams.iter().enumerate() {
            if *f == "IPv6" {
                errs.push(FieldError::invalid(
                    format!("spec.ipFamilies[{i}]"),
                    *f,
                    "not configured on this cluster",
                ));
            }
        }
        if fams.len() > 1 {
            errs.push(FieldError::invalid("spec.ipFamilies", json!(fams), "when multiple IP families are specified, the value of `ipFamilyPolicy` must be 'RequireDualStack' or 'PreferDualStack'"));
        }
    }
    errs
}

/// Upstream `ValidateService`.
pub(crate) fn validate_service(svc: &Value) -> Vec<FieldError> {
    let mut errs = validate_meta_finalizers(svc);
    let spec = svc.get("spec").unwrap_or(&Value::Null);
    let t = s(spec, "type");
    let ports = arr(spec, "ports");
    let headless = is_headless(svc);

    let ann = |k: &str| {
        svc.pointer(&format!("/metadata/annotations/{}", k.replace('/', "~1")))
            .and_then(Value::as_str)
    };
    if let (Some(mode), Some(hints)) = (
        ann("service.kubernetes.io/topology-mode"),
        ann("service.kubernetes.io/topology-aware-hints"),
    ) {
        if mode != hints {
            errs.push(FieldError::invalid("metadata.annotations[service.kubernetes.io/topology-mode]", mode, "must match annotations[service.kubernetes.io/topology-aware-hints] when both are specified"));
        }
    }

    if ports.is_empty() && !headless && t != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let first_ip = cluster_ips(svc).into_iter().next().unwrap_or_default();
    match t {
        "LoadBalancer" => {
            for (i, p) in ports.iter().enumerate() {
                let port = p.get("port").and_then(as_i64).unwrap_or(0);
                if port == 10250 {
                    errs.push(FieldError::invalid(
                        format!("spec.ports[{i}]"),
                        port,
                        "may not expose port 10250 externally since it is used by kubelet",
                    ));
                }
            }
            if headless {
                errs.push(FieldError::invalid(
                    "spec.clusterIPs[0]",
                    first_ip.as_str(),
                    "may not be set to 'None' for LoadBalancer services",
                ));
            }
        }
        "NodePort" if headless => {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                first_ip.as_str(),
                "may not be set to 'None' for NodePort services",
            ));
        }
        "ExternalName" => {
            if !arr(spec, "clusterIPs").is_empty() || !s(spec, "clusterIP").is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            if !arr(spec, "ipFamilies").is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.ipFamilies",
                    "may not be set for ExternalName services",
                ));
            }
            if has(spec, "ipFamilyPolicy") {
                errs.push(FieldError::forbidden(
                    "spec.ipFamilyPolicy",
                    "may not be set for ExternalName services",
                ));
            }
            let name = s(spec, "externalName");
            let cname = name.strip_suffix('.').unwrap_or(name);
            if cname.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                errs.extend(invalid_each(
                    "spec.externalName",
                    cname,
                    is_dns1123_subdomain(cname),
                ));
            }
        }
        _ => {}
    }

    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        let name = s(p, "name");
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(format!("{pp}.name"), ""));
        } else if !name.is_empty() {
            errs.extend(invalid_each(
                &format!("{pp}.name"),
                name,
                is_dns1123_label(name),
            ));
            if !names.insert(name) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), name));
            }
        }
        let port = p.get("port").and_then(as_i64).unwrap_or(0);
        for msg in is_valid_port_num(port) {
            errs.push(FieldError::invalid(format!("{pp}.port"), port, msg));
        }
        errs.extend(validate_protocol(p, &format!("{pp}.protocol")));
        errs.extend(validate_port_num_or_name(
            p.get("targetPort"),
            &format!("{pp}.targetPort"),
        ));
        if has(p, "appProtocol") {
            let ap = s(p, "appProtocol");
            errs.extend(invalid_each(
                &format!("{pp}.appProtocol"),
                ap,
                is_qualified_name(ap),
            ));
        }
    }

    if has(spec, "selector") {
        errs.extend(validate_labels(spec.get("selector"), "spec.selector"));
    }
    match s(spec, "sessionAffinity") {
        "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
        "ClientIP" => match spec.get("sessionAffinityConfig").filter(|v| !v.is_null()) {
            None => errs.push(FieldError::required(
                "spec.sessionAffinityConfig",
                "when session affinity type is ClientIP",
            )),
            Some(c) => match c.get("clientIP").filter(|v| !v.is_null()) {
                None => errs.push(FieldError::required(
                    "spec.sessionAffinityConfig.clientIP",
                    "when session affinity type is ClientIP",
                )),
                Some(ci) => match ci.get("timeoutSeconds").and_then(as_i64) {
                    None => errs.push(FieldError::required(
                        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                        "when session affinity type is ClientIP",
                    )),
                    Some(v) if v <= 0 || v > 86400 => errs.push(FieldError::invalid(
                        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                        v,
                        "must be greater than 0 and less than 86400",
                    )),
                    _ => {}
                },
            },
        },
        "None" => {
            if has(spec, "sessionAffinityConfig") {
                errs.push(FieldError::forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            other,
            &["ClientIP", "None"],
        )),
    }

    errs.extend(validate_cluster_ips_related(svc));

    for (i, ip) in arr(spec, "externalIPs").iter().enumerate() {
        let p = format!("spec.externalIPs[{i}]");
        let ip = ip.as_str().unwrap_or("");
        let e = validate_ip(&p, ip);
        if e.is_empty() {
            errs.extend(validate_non_special_ip(ip, &p));
        } else {
            errs.extend(e);
        }
    }

    match t {
        "" => errs.push(FieldError::required("spec.type", "")),
        "ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort" => {}
        other => errs.push(FieldError::not_supported(
            "spec.type",
            other,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    if t == "ClusterIP" {
        for (i, p) in ports.iter().enumerate() {
            if p.get("nodePort").and_then(as_i64).unwrap_or(0) != 0 {
                errs.push(FieldError::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let np = p.get("nodePort").and_then(as_i64).unwrap_or(0);
        if np == 0 {
            continue;
        }
        if !node_ports.insert((s(p, "protocol"), np)) {
            errs.push(FieldError::duplicate(
                format!("spec.ports[{i}].nodePort"),
                np,
            ));
        }
    }
    let mut port_keys = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let key = (
            s(p, "protocol"),
            p.get("port").and_then(as_i64).unwrap_or(0),
        );
        if !port_keys.insert(key) {
            errs.push(FieldError::duplicate(
                format!("spec.ports[{i}]"),
                json!({ "port": key.1, "protocol": key.0 }),
            ));
        }
    }

    let ranges = arr(spec, "loadBalancerSourceRanges");
    if !ranges.is_empty() {
        if t != "LoadBalancer" {
            errs.push(FieldError::forbidden(
                "spec.LoadBalancerSourceRanges",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            errs.extend(validate_cidr(
                &format!("spec.LoadBalancerSourceRanges[{i}]"),
                r.as_str().unwrap_or("").trim(),
            ));
        }
    } else if let Some(val) = ann("service.beta.kubernetes.io/load-balancer-source-ranges") {
        let p = "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]";
        if t != "LoadBalancer" {
            errs.push(FieldError::forbidden(
                p,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        let val = val.trim();
        if !val.is_empty() {
            for c in val.split(',') {
                errs.extend(validate_cidr(p, c.trim()));
            }
        }
    }
    if has(spec, "allocateLoadBalancerNodePorts") && t != "LoadBalancer" {
        errs.push(FieldError::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if t == "LoadBalancer" && !has(spec, "allocateLoadBalancerNodePorts") {
        errs.push(FieldError::required("allocateLoadBalancerNodePorts", ""));
    }
    if has(spec, "loadBalancerClass") {
        let c = s(spec, "loadBalancerClass");
        if t != "LoadBalancer" {
            errs.push(FieldError::invalid(
                "spec.loadBalancerClass",
                c,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        } else {
            errs.extend(invalid_each(
                "spec.loadBalancerClass",
                c,
                is_qualified_name(c),
            ));
        }
    }

    let etp = s(spec, "externalTrafficPolicy");
    if !externally_accessible(svc) {
        if !etp.is_empty() {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(FieldError::required("spec.externalTrafficPolicy", ""));
    } else if !["Cluster", "Local"].contains(&etp) {
        errs.push(FieldError::not_supported(
            "spec.externalTrafficPolicy",
            etp,
            &["Cluster", "Local"],
        ));
    }
    let hc = spec
        .get("healthCheckNodePort")
        .and_then(as_i64)
        .unwrap_or(0);
    if !needs_hc_node_port(svc) {
        if hc != 0 {
            errs.push(FieldError::invalid("spec.healthCheckNodePort", hc, "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"));
        }
    } else if hc == 0 {
        errs.push(FieldError::required("spec.healthCheckNodePort", ""));
    } else {
        for msg in is_valid_port_num(hc) {
            errs.push(FieldError::invalid("spec.healthCheckNodePort", hc, msg));
        }
    }

    match spec.get("internalTrafficPolicy").filter(|v| !v.is_null()) {
        None => {
            if matches!(t, "NodePort" | "LoadBalancer" | "ClusterIP") {
                errs.push(FieldError::required("spec.internalTrafficPolicy", ""));
            }
        }
        Some(v) => {
            let v = v.as_str().unwrap_or("");
            if !["Cluster", "Local"].contains(&v) {
                errs.push(FieldError::not_supported(
                    "spec.internalTrafficPolicy",
                    v,
                    &["Cluster", "Local"],
                ));
            }
        }
    }
    if has(spec, "trafficDistribution") {
        let td = s(spec, "trafficDistribution");
        if td != "PreferClose" {
            errs.push(FieldError::not_supported(
                "spec.trafficDistribution",
                td,
                &["PreferClose"],
            ));
        }
    }
    errs
}

fn str_list(svc: &Value, ptr: &str) -> Vec<String> {
    arr_at(svc, ptr)
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect()
}

/// The update rules upstream applies alike to `spec.clusterIPs` and
/// `spec.ipFamilies`, quirks included. `(field, what, per_index)`: the list,
/// its entries' name in messages, and whether a changed entry is reported at
/// its own index (ipFamilies always report `[0]`). `value` is printed by the
/// changed-entry and "can not be unset" errors, `ips_value` (the new
/// clusterIPs) by the others, whose SingleStack error always sits at
/// `spec.clusterIPs[0]`.
fn dual_stack_list_update(
    new: &Value,
    old: &Value,
    (field, what, per_index): (&str, &str, bool),
    value: &Value,
    ips_value: &Value,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (n, o) = (
        str_list(new, &format!("/spec/{field}")),
        str_list(old, &format!("/spec/{field}")),
    );
    let first = format!("spec.{field}[0]");
    let first_changed = matches!((n.first(), o.first()), (Some(a), Some(b)) if a != b);
    if n.len() == o.len() {
        for (i, x) in o.iter().enumerate() {
            if n.get(i) != Some(x) {
                let path = if per_index {
                    format!("spec.{field}[{i}]")
                } else {
                    first.clone()
                };
                errs.push(FieldError::invalid(
                    path,
                    value.clone(),
                    "may not change once set",
                ));
            }
        }
    } else if o.len() > n.len() {
        if n.is_empty() {
            errs.push(FieldError::invalid(
                first.as_str(),
                value.clone(),
                format!("primary {what} can not be unset"),
            ));
        }
        if first_changed {
            errs.push(FieldError::invalid(
                first.as_str(),
                ips_value.clone(),
                "may not change once set",
            ));
        }
        if n.len() == 1 && str_at(new, "/spec/ipFamilyPolicy") != "SingleStack" {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                ips_value.clone(),
                format!("`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary {what}"),
            ));
        }
    } else if first_changed {
        errs.push(FieldError::invalid(
            first,
            ips_value.clone(),
            "may not change once set",
        ));
    }
    errs
}

/// Upstream `ValidateServiceUpdate` (minus metadata, which the store checks).
pub(crate) fn validate_service_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let external_name = svc_type(new) == "ExternalName" || svc_type(old) == "ExternalName";
    let (new_headless, old_headless) = (is_headless(new), is_headless(old));
    let ips_value = new
        .pointer("/spec/clusterIPs")
        .cloned()
        .unwrap_or(json!([]));
    if !(external_name || new_headless && old_headless) {
        errs.extend(dual_stack_list_update(
            new,
            old,
            ("clusterIPs", "clusterIP", true),
            &ips_value,
            &ips_value,
        ));
    }
    if !external_name && new_headless == old_headless && !new_headless {
        let fams_value = new
            .pointer("/spec/ipFamilies")
            .cloned()
            .unwrap_or(json!([]));
        errs.extend(dual_stack_list_update(
            new,
            old,
            ("ipFamilies", "ipFamily", false),
            &fams_value,
            &ips_value,
        ));
    }
    // loadBalancerClass is immutable while the service stays a LoadBalancer.
    if svc_type(old) == "LoadBalancer"
        && svc_type(new) == "LoadBalancer"
        && !sem_eq(
            new.pointer("/spec/loadBalancerClass"),
            old.pointer("/spec/loadBalancerClass"),
        )
    {
        errs.push(FieldError::invalid(
            "spec.loadBalancerClass",
            new.pointer("/spec/loadBalancerClass")
                .cloned()
                .unwrap_or(Value::Null),
            "may not change once set",
        ));
    }
    if needs_hc_node_port(old)
        && needs_hc_node_port(new)
        && i64_at(new, "/spec/healthCheckNodePort") != i64_at(old, "/spec/healthCheckNodePort")
    {
        errs.push(FieldError::forbidden(
            "spec.healthCheckNodePort",
            "field is immutable",
        ));
    }
    errs.extend(validate_service(new));
    errs.extend(validate_load_balancer_status(new));
    errs
}

/// Upstream `ValidateLoadBalancerStatus` (the status subresource goes through
/// `validate_update` too). A missing ipMode is accepted: upstream defaults it
/// to VIP when the status is decoded.
fn validate_load_balancer_status(svc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ingress = arr_at(svc, "/status/loadBalancer/ingress");
    if ingress.is_empty() {
        return errs;
    }
    if svc_type(svc) != "LoadBalancer" {
        errs.push(FieldError::forbidden(
            "status.loadBalancer.ingress",
            "may only be used when `spec.type` is 'LoadBalancer'",
        ));
        return errs;
    }
    for (i, ing) in ingress.iter().enumerate() {
        let p = format!("status.loadBalancer.ingress[{i}]");
        let ip = s(ing, "ip");
        if !ip.is_empty() {
            errs.extend(validate_ip(&format!("{p}.ip"), ip));
        }
        if has(ing, "ipMode") {
            let mode = s(ing, "ipMode");
            if ip.is_empty() {
                errs.push(FieldError::forbidden(
                    format!("{p}.ipMode"),
                    "may not be specified when `ip` is not set",
                ));
            } else if !["Proxy", "VIP"].contains(&mode) {
                errs.push(FieldError::not_supported(
                    format!("{p}.ipMode"),
                    mode,
                    &["Proxy", "VIP"],
                ));
            }
        }
        let host = s(ing, "hostname");
        if !host.is_empty() {
            errs.extend(invalid_each(
                &format!("{p}.hostname"),
                host,
                is_dns1123_subdomain(host),
            ));
            if parse_ip_sloppy(host).is_some() {
                errs.push(FieldError::invalid(
                    format!("{p}.hostname"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    errs
}

/// `80:30080/TCP,443/TCP` (upstream `makePortString`).
pub(crate) fn service_ports_cell(svc: &Value) -> String {
    let parts: Vec<String> = arr_at(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(as_i64).unwrap_or(0);
            let proto = s(p, "protocol");
            let np = p.get("nodePort").and_then(as_i64).unwrap_or(0);
            if np > 0 {
                format!("{port}:{np}/{proto}")
            } else {
                format!("{port}/{proto}")
            }
        })
        .collect();
    if parts.is_empty() {
        "<none>".to_string()
    } else {
        parts.join(",")
    }
}

/// The External-IP cell (upstream `getServiceExternalIP`, wide form).
pub(crate) fn service_external_ip_cell(svc: &Value) -> String {
    let external: Vec<String> = str_list(svc, "/spec/externalIPs");
    match svc_type(svc) {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".to_string()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut lb: Vec<String> = arr_at(svc, "/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| {
                    if !s(i, "ip").is_empty() {
                        Some(s(i, "ip").to_string())
                    } else if !s(i, "hostname").is_empty() {
                        Some(s(i, "hostname").to_string())
                    } else {
                        None
                    }
                })
                .collect();
            lb.sort();
            lb.dedup();
            if !external.is_empty() {
                let mut all = lb;
                all.extend(external);
                return all.join(",");
            }
            if lb.is_empty() {
                "<pending>".to_string()
            } else {
                lb.join(",")
            }
        }
        "ExternalName" => str_at(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

pub(crate) struct ServiceStrategy {
    info: ResourceInfo,
}

impl ServiceStrategy {
    pub(crate) fn new() -> Self {
        ServiceStrategy {
            info: super::core_info(
                "Service",
                "services",
                "service",
                &["svc"],
                &["all"],
                true,
                &[Subresource::Status],
                "services/specs",
            ),
        }
    }
}

impl Strategy for ServiceStrategy {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn bumps_generation(&self) -> bool {
        false
    }

    fn name_validator(&self) -> apimachinery::validation::NameValidator {
        apimachinery::validation::NameValidator::Dns1035Label
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        default_service(obj);
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        patch_allocated_values(new, old);
        normalize_cluster_ips(new, old);
        drop_type_dependent_fields(new, old);
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_service(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        validate_service_update(new, old)
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        vec![
            ("spec.clusterIP", str_at(obj, "/spec/clusterIP").to_string()),
            ("spec.type", svc_type(obj).to_string()),
        ]
    }

    fn selectable_field_names(&self) -> &'static [&'static str] {
        &["spec.clusterIP", "spec.type"]
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Type", "string", "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types", 0),
            column("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies", 0),
            column("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.", 0),
            column("Port(s)", "string", "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies", 0),
            age_column(),
            column("Selector", "string", "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/", 1),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let cluster_ip = cluster_ips(obj)
            .into_iter()
            .next()
            .unwrap_or_else(|| "<none>".to_string());
        vec![
            json!(svc_type(obj)),
            json!(cluster_ip),
            json!(service_external_ip_cell(obj)),
            json!(service_ports_cell(obj)),
            age_cell(obj),
            json!(format_labels(obj.pointer("/spec/selector"))),
        ]
    }
}

// ---------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------

fn validate_endpoints(ep: &Value) -> Vec<FieldError> {
    let mut errs = validate_meta_finalizers(ep);
    for (i, ss) in arr(ep, "subsets").iter().enumerate() {
        let p = format!("subsets[{i}]");
        if arr(ss, "addresses").is_empty() && arr(ss, "notReadyAddresses").is_empty() {
            errs.push(FieldError::required(
                &p,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for key in ["addresses", "notReadyAddresses"] {
            for (j, a) in arr(ss, key).iter().enumerate() {
                let ap = format!("{p}.{key}[{j}]");
                let ip = s(a, "ip");
                errs.extend(validate_ip(&format!("{ap}.ip"), ip));
                let hn = s(a, "hostname");
                if !hn.is_empty() {
                    errs.extend(invalid_each(
                        &format!("{ap}.hostname"),
                        hn,
                        is_dns1123_label(hn),
                    ));
                }
                if has(a, "nodeName") {
                    let nn = s(a, "nodeName");
                    errs.extend(invalid_each(
                        &format!("{ap}.nodeName"),
                        nn,
                        is_dns1123_subdomain(nn),
                    ));
                }
                errs.extend(validate_non_special_ip(ip, &format!("{ap}.ip")));
            }
        }
        let ports = arr(ss, "ports");
        for (j, port) in ports.iter().enumerate() {
            let pp = format!("{p}.ports[{j}]");
            let name = s(port, "name");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(format!("{pp}.name"), ""));
            } else if !name.is_empty() {
                errs.extend(invalid_each(
                    &format!("{pp}.name"),
                    name,
                    is_dns1123_label(name),
                ));
            }
            let n = port.get("port").and_then(as_i64).unwrap_or(0);
            for msg in is_valid_port_num(n) {
                errs.push(FieldError::invalid(format!("{pp}.port"), n, msg));
            }
            errs.extend(validate_protocol(port, &format!("{pp}.protocol")));
            if has(port, "appProtocol") {
                let ap = s(port, "appProtocol");
                errs.extend(invalid_each(
                    &format!("{pp}.appProtocol"),
                    ap,
                    is_qualified_name(ap),
                ));
            }
        }
    }
    errs
}

/// `10.0.0.1:80,10.0.0.2:80 + 3 more...` (upstream `formatEndpoints`).
pub(crate) fn endpoints_cell(ep: &Value) -> String {
    let subsets = arr(ep, "subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let addrs = arr(ss, "addresses");
        let ports = arr(ss, "ports");
        if ports.is_empty() {
            count += addrs.len();
            for a in addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(s(a, "ip").to_string());
            }
            continue;
        }
        for port in ports {
            count += addrs.len();
            for a in addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                let ip = s(a, "ip");
                let n = port.get("port").and_then(as_i64).unwrap_or(0);
                list.push(if ip.contains(':') {
                    format!("[{ip}]:{n}")
                } else {
                    format!("{ip}:{n}")
                });
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count.saturating_sub(MAX))
    } else {
        ret
    }
}

pub(crate) struct EndpointsStrategy {
    info: ResourceInfo,
}

impl EndpointsStrategy {
    pub(crate) fn new() -> Self {
        EndpointsStrategy {
            info: super::core_info(
                "Endpoints",
                "endpoints",
                "endpoints",
                &["ep"],
                &[],
                true,
                &[],
                "services/endpoints",
            ),
        }
    }
}

impl Strategy for EndpointsStrategy {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        each_mut(obj, "subsets", |ss| {
            each_mut(ss, "ports", |p| default_str(p, "protocol", "TCP"))
        });
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_endpoints(obj)
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Endpoints", "string", "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.", 0),
            age_column(),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        vec![json!(endpoints_cell(obj)), age_cell(obj)]
    }
}
