//! Discovery documents: /api, /apis, per group and group-version, and the
//! aggregated apidiscovery.k8s.io/v2 form kubectl asks for first.

use resources::{ResourceInfo, Subresource};
use serde_json::{json, Value};

use crate::registry::Registry;

pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an Accept header asks for aggregated discovery (v2 or v2beta1).
pub fn wants_aggregated(accept: Option<&str>) -> Option<&'static str> {
    let accept = accept?;
    for part in accept.split(',') {
        let p: Vec<&str> = part.split(';').map(str::trim).collect();
        if p.first() != Some(&"application/json") {
            continue;
        }
        let has = |kv: &str| p.iter().any(|x| *x == kv);
        if has("g=apidiscovery.k8s.io") && has("as=APIGroupDiscoveryList") {
            if has("v=v2") {
                return Some("v2");
            }
            if has("v=v2beta1") {
                return Some("v2beta1");
            }
        }
        // Plain JSON listed before any aggregated form: the client prefers legacy.
        if p.len() == 1 {
            return None;
        }
    }
    None
}

fn verbs(info: &ResourceInfo) -> Vec<&'static str> {
    if info.read_only {
        vec!["get", "list"]
    } else {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

fn sub_verbs(s: Subresource) -> Vec<&'static str> {
    match s {
        Subresource::Status | Subresource::Scale | Subresource::EphemeralContainers => {
            vec!["get", "patch", "update"]
        }
        Subresource::Binding | Subresource::Eviction | Subresource::Token => vec!["create"],
        Subresource::Finalize => vec!["update"],
        Subresource::Log => vec!["get"],
        Subresource::Exec | Subresource::Attach | Subresource::PortForward => {
            vec!["create", "get"]
        }
        Subresource::Proxy => vec!["create", "delete", "get", "patch", "update"],
    }
}

fn sub_kind(info: &ResourceInfo, s: Subresource) -> (&'static str, &'static str, &'static str) {
    match s {
        Subresource::Scale => ("autoscaling", "v1", "Scale"),
        Subresource::Binding => ("", "v1", "Binding"),
        Subresource::Eviction => ("policy", "v1", "Eviction"),
        Subresource::Exec => ("", "v1", "PodExecOptions"),
        Subresource::Attach => ("", "v1", "PodAttachOptions"),
        Subresource::PortForward => ("", "v1", "PodPortForwardOptions"),
        Subresource::Proxy => ("", "v1", "NodeProxyOptions"),
        Subresource::Token => ("authentication.k8s.io", "v1", "TokenRequest"),
        _ => (info.group, info.version, info.kind),
    }
}

/// /api: APIVersions.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

/// /apis: APIGroupList.
pub fn api_group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_json(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// /apis/<group>: APIGroup.
pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    reg.groups()
        .into_iter()
        .find(|(g, _)| g == group && !g.is_empty())
        .map(|(g, vs)| {
            let mut v = group_json(&g, &vs);
            v["kind"] = json!("APIGroup");
            v["apiVersion"] = json!("v1");
            v
        })
}

/// /api/v1 or /apis/<g>/<v>: APIResourceList.
pub fn api_resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let stores = reg.stores_in(group, version);
    if stores.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for s in &stores {
        let i = s.info();
        let mut r = json!({
            "name": i.plural,
            "singularName": i.singular,
            "namespaced": i.namespaced,
            "kind": i.kind,
            "verbs": verbs(i),
        });
        if !i.short_names.is_empty() {
            r["shortNames"] = json!(i.short_names);
        }
        if !i.categories.is_empty() {
            r["categories"] = json!(i.categories);
        }
        resources.push(r);
        for sub in i.subresources {
            let (g, v, k) = sub_kind(i, *sub);
            let mut r = json!({
                "name": format!("{}/{}", i.plural, sub.name()),
                "singularName": "",
                "namespaced": i.namespaced,
                "kind": k,
                "verbs": sub_verbs(*sub),
            });
            if g != group || v != version {
                r["group"] = json!(g);
                r["version"] = json!(v);
            }
            resources.push(r);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn aggregated_version(reg: &Registry, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for s in reg.stores_in(group, version) {
        let i = s.info();
        let mut r = json!({
            "resource": i.plural,
            "responseKind": {"group": i.group, "version": i.version, "kind": i.kind},
            "scope": if i.namespaced { "Namespaced" } else { "Cluster" },
            "singularResource": i.singular,
            "verbs": verbs(i),
        });
        if !i.short_names.is_empty() {
            r["shortNames"] = json!(i.short_names);
        }
        if !i.categories.is_empty() {
            r["categories"] = json!(i.categories);
        }
        let subs: Vec<Value> = i
            .subresources
            .iter()
            .map(|sub| {
                let (g, v, k) = sub_kind(i, *sub);
                json!({"subresource": sub.name(), "responseKind": {"group": g, "version": v, "kind": k}, "verbs": sub_verbs(*sub)})
            })
            .collect();
        if !subs.is_empty() {
            r["subresources"] = Value::Array(subs);
        }
        resources.push(r);
    }
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

/// Aggregated discovery for /api (core only) or /apis (every named group).
pub fn aggregated(reg: &Registry, core: bool, version: &str) -> Value {
    let items: Vec<Value> = reg
        .groups()
        .iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, vs)| {
            json!({
                "metadata": {"name": g, "creationTimestamp": null},
                "versions": vs.iter().map(|v| aggregated_version(reg, g, v)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{version}"), "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_header_selects_aggregated_v2() {
        let a = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(wants_aggregated(Some(a)), Some("v2"));
        assert_eq!(wants_aggregated(Some("application/json")), None);
        assert_eq!(wants_aggregated(None), None);
    }
}
