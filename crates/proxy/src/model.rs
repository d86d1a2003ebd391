//! What kube-proxy needs from the API objects: Services split into service
//! ports ([`ServicePort`]) and EndpointSlices into per-port endpoints
//! ([`Endpoint`]). Anything malformed is skipped with a log, never a panic.
//! IPv4 only (the proxier programs the `ip` family).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// Services carrying this label belong to another proxy.
pub const LABEL_SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// Set on the EndpointSlices of headless Services.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// The Service an EndpointSlice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// When the change that produced an EndpointSlice happened.
pub const ANNOTATION_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// Upstream's default ClientIP affinity timeout (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The lower-case name nftables (and chain names) use.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One port of a Service, with everything the rules need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    /// The port's name ("" for a single unnamed port).
    pub port_name: String,
    pub protocol: Protocol,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub node_port: Option<u16>,
    pub external_ips: Vec<Ipv4Addr>,
    pub load_balancer_ips: Vec<Ipv4Addr>,
    pub load_balancer_source_ranges: Vec<Ipv4Net>,
    /// ClientIP session affinity with this timeout (seconds).
    pub affinity_timeout: Option<u32>,
    /// internalTrafficPolicy: Local.
    pub internal_local: bool,
    /// externalTrafficPolicy: Local (only for externally reachable services).
    pub external_local: bool,
    pub health_check_node_port: Option<u16>,
}

impl ServicePort {
    /// `namespace/name:port` (upstream's ServicePortName string).
    pub fn key(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.name, self.port_name)
    }

    /// NodePort, LoadBalancer or external IPs.
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some()
            || !self.load_balancer_ips.is_empty()
            || !self.external_ips.is_empty()
    }

    /// Whether any traffic uses the cluster-wide endpoints (even with
    /// externalTrafficPolicy Local, pod and host traffic short-circuits to
    /// them).
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_local || self.externally_accessible()
    }

    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_local || (self.external_local && self.externally_accessible())
    }
}

/// One endpoint of a service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// On this node.
    pub local: bool,
}

impl Endpoint {
    /// `ip:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

fn ns_name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Whether kube-proxy handles this Service at all (not ExternalName, not
/// headless, not claimed by another proxy). Logs nothing.
pub fn is_proxied(svc: &Service) -> bool {
    if svc
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(LABEL_SERVICE_PROXY_NAME))
    {
        return false;
    }
    let Some(spec) = svc.spec.as_ref() else {
        return false;
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return false;
    }
    match spec.cluster_ip.as_deref() {
        None | Some("") | Some("None") => false,
        Some(_) => true,
    }
}

/// Names end up in nftables chain names: only what the API allows for
/// namespace, Service and port names (letters, digits, `-`, `.`, `_`).
fn safe_name(s: &str) -> bool {
    s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

fn parse_v4(s: &str) -> Option<Ipv4Addr> {
    s.trim().parse().ok()
}

/// The service ports of a Service (empty when it is not proxied or
/// malformed; bad ports are skipped with a log).
pub fn service_ports(svc: &Service) -> Vec<ServicePort> {
    let mut out = Vec::new();
    if !is_proxied(svc) {
        return out;
    }
    let (namespace, name) = ns_name(&svc.metadata);
    if !safe_name(&namespace) || !safe_name(&name) || name.is_empty() {
        tracing::info!(namespace = %namespace, name = %name, "invalid Service name, skipping");
        return out;
    }
    let Some(spec) = svc.spec.as_ref() else {
        return out;
    };
    // The IPv4 cluster IP (clusterIPs lists every family).
    let cluster_ip = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .find_map(|s| parse_v4(s));
    let Some(cluster_ip) = cluster_ip else {
        tracing::debug!(service = %format!("{namespace}/{name}"), "no IPv4 cluster IP, skipping");
        return out;
    };
    let type_ = spec.type_.as_deref().unwrap_or("ClusterIP");
    let external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|s| parse_v4(s))
        .collect();
    let load_balancer_ips: Vec<Ipv4Addr> = if type_ == "LoadBalancer" {
        svc.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            // ipMode Proxy means the load balancer delivers to the node
            // itself; kube-proxy does not capture those IPs.
            .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
            .filter_map(|i| i.ip.as_deref().and_then(parse_v4))
            .collect()
    } else {
        Vec::new()
    };
    let load_balancer_source_ranges: Vec<Ipv4Net> = if type_ == "LoadBalancer" {
        spec.load_balancer_source_ranges
            .iter()
            .flatten()
            .filter_map(|s| s.trim().parse::<Ipv4Net>().ok().map(|n| n.trunc()))
            .collect()
    } else {
        Vec::new()
    };
    let affinity_timeout = if spec.session_affinity.as_deref() == Some("ClientIP") {
        let t = spec
            .session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .filter(|t| *t > 0)
            .map(|t| t as u32)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT);
        Some(t)
    } else {
        None
    };
    let externally_reachable =
        type_ == "NodePort" || type_ == "LoadBalancer" || !external_ips.is_empty();
    let external_local =
        externally_reachable && spec.external_traffic_policy.as_deref() == Some("Local");
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let health_check_node_port = if type_ == "LoadBalancer" && external_local {
        spec.health_check_node_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
    } else {
        None
    };
    for p in spec.ports.iter().flatten() {
        let Some(protocol) = Protocol::parse(p.protocol.as_deref()) else {
            tracing::info!(service = %format!("{namespace}/{name}"), protocol = ?p.protocol, "unsupported protocol, skipping port");
            continue;
        };
        let Some(port) = u16::try_from(p.port).ok().filter(|p| *p != 0) else {
            tracing::info!(service = %format!("{namespace}/{name}"), port = p.port, "invalid port, skipping");
            continue;
        };
        let node_port = if type_ == "NodePort" || type_ == "LoadBalancer" {
            p.node_port
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0)
        } else {
            None
        };
        let port_name = p.name.clone().unwrap_or_default();
        if !safe_name(&port_name) {
            tracing::info!(service = %format!("{namespace}/{name}"), port = %port_name, "invalid port name, skipping");
            continue;
        }
        out.push(ServicePort {
            namespace: namespace.clone(),
            name: name.clone(),
            port_name,
            protocol,
            cluster_ip,
            port,
            node_port,
            external_ips: external_ips.clone(),
            load_balancer_ips: load_balancer_ips.clone(),
            load_balancer_source_ranges: load_balancer_source_ranges.clone(),
            affinity_timeout,
            internal_local,
            external_local,
            health_check_node_port,
        });
    }
    out
}

/// `(namespace, service name)` of an EndpointSlice, when it names one and
/// is an IPv4 slice kube-proxy uses.
pub fn slice_service(slice: &EndpointSlice) -> Option<(String, String)> {
    if slice.address_type != "IPv4" {
        return None;
    }
    let labels = slice.metadata.labels.as_ref()?;
    if labels.contains_key(LABEL_HEADLESS) {
        return None;
    }
    let svc = labels.get(LABEL_SERVICE_NAME)?;
    Some((
        slice.metadata.namespace.clone().unwrap_or_default(),
        svc.clone(),
    ))
}

/// The endpoints of `sp` from the Service's slices, deduplicated by
/// address and sorted (so the rules are stable).
pub fn endpoints_for(sp: &ServicePort, slices: &[&EndpointSlice], hostname: &str) -> Vec<Endpoint> {
    let mut by_addr: BTreeMap<(Ipv4Addr, u16), Endpoint> = BTreeMap::new();
    for slice in slices {
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.clone().unwrap_or_default() == sp.port_name
                && Protocol::parse(p.protocol.as_deref()) == Some(sp.protocol)
        }) else {
            continue;
        };
        let Some(port) = port
            .port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
        else {
            continue;
        };
        for ep in &slice.endpoints {
            let Some(ip) = ep.addresses.first().and_then(|a| parse_v4(a)) else {
                continue;
            };
            let cond = ep.conditions.as_ref();
            let ready = cond.and_then(|c| c.ready).unwrap_or(true);
            let serving = cond.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
            let local = ep.node_name.as_deref() == Some(hostname);
            by_addr.entry((ip, port)).or_insert(Endpoint {
                ip,
                port,
                ready,
                serving,
                terminating,
                local,
            });
        }
    }
    by_addr.into_values().collect()
}

/// The endpoints each traffic policy uses (upstream's CategorizeEndpoints,
/// without topology hints).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Categorized {
    pub cluster: Vec<Endpoint>,
    pub local: Vec<Endpoint>,
    /// cluster ∪ local: every endpoint that gets a chain.
    pub reachable: Vec<Endpoint>,
    /// Any usable endpoint anywhere in the cluster.
    pub has_any: bool,
}

pub fn categorize(sp: &ServicePort, endpoints: &[Endpoint]) -> Categorized {
    let mut c = Categorized::default();
    if sp.uses_cluster_endpoints() {
        c.cluster = endpoints.iter().filter(|e| e.ready).cloned().collect();
        if c.cluster.is_empty() {
            // No ready endpoints anywhere: fall back to serving terminating ones.
            c.cluster = endpoints
                .iter()
                .filter(|e| e.serving && e.terminating)
                .cloned()
                .collect();
        }
        c.has_any = !c.cluster.is_empty();
    }
    if !sp.uses_local_endpoints() {
        c.reachable = c.cluster.clone();
        return c;
    }
    let mut local_ready = false;
    let mut local_serving_terminating = false;
    for e in endpoints {
        if e.ready {
            c.has_any = true;
            local_ready |= e.local;
        } else if e.serving && e.terminating {
            c.has_any = true;
            local_serving_terminating |= e.local;
        }
    }
    if local_ready {
        c.local = endpoints
            .iter()
            .filter(|e| e.local && e.ready)
            .cloned()
            .collect();
    } else if local_serving_terminating {
        c.local = endpoints
            .iter()
            .filter(|e| e.local && e.serving && e.terminating)
            .cloned()
            .collect();
    }
    if !sp.uses_cluster_endpoints() {
        c.reachable = c.local.clone();
        return c;
    }
    let mut seen = BTreeSet::new();
    for e in c.cluster.iter().chain(c.local.iter()) {
        if seen.insert((e.ip, e.port)) {
            c.reachable.push(e.clone());
        }
    }
    c
}

/// A service port with its endpoints: the input of the rule generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEndpoints {
    pub service: ServicePort,
    pub endpoints: Vec<Endpoint>,
}

/// The service ports of `svc` with their endpoints from `slices` (the
/// slices of that Service), sorted by key.
pub fn service_entries(
    svc: &Service,
    slices: &[&EndpointSlice],
    hostname: &str,
) -> Vec<ServiceEndpoints> {
    let mut out: Vec<ServiceEndpoints> = service_ports(svc)
        .into_iter()
        .map(|sp| {
            let endpoints = endpoints_for(&sp, slices, hostname);
            ServiceEndpoints {
                service: sp,
                endpoints,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.service.port_name, a.service.protocol).cmp(&(&b.service.port_name, b.service.protocol))
    });
    out
}

/// Join services and slices into [`ServiceEndpoints`] (sorted by key).
pub fn join<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    hostname: &str,
) -> Vec<ServiceEndpoints> {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in slices {
        if let Some(key) = slice_service(s) {
            by_service.entry(key).or_default().push(s);
        }
    }
    let mut out = Vec::new();
    for svc in services {
        for sp in service_ports(svc) {
            let slices = by_service
                .get(&(sp.namespace.clone(), sp.name.clone()))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let endpoints = endpoints_for(&sp, slices, hostname);
            out.push(ServiceEndpoints {
                service: sp,
                endpoints,
            });
        }
    }
    out.sort_by(|a, b| {
        (a.service.key(), a.service.protocol).cmp(&(b.service.key(), b.service.protocol))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).unwrap()
    }

    fn web() -> serde_json::Value {
        json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"],
                "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP"},
                    {"name": "dns", "port": 53, "protocol": "UDP"}
                ]
            }
        })
    }

    #[test]
    fn ports_of_a_service() {
        let ports = service_ports(&svc(web()));
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].key(), "default/web:http");
        assert_eq!(ports[0].protocol, Protocol::Tcp);
        assert_eq!(ports[1].protocol, Protocol::Udp);
        assert_eq!(
            ports[0].cluster_ip,
            "10.96.0.10".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(ports[0].node_port, None);
        assert!(!ports[0].externally_accessible());
    }

    #[test]
    fn skipped_services() {
        let mut v = web();
        v["spec"]["clusterIP"] = json!("None");
        v["spec"]["clusterIPs"] = json!(["None"]);
        assert!(service_ports(&svc(v)).is_empty(), "headless");
        let mut v = web();
        v["spec"]["type"] = json!("ExternalName");
        v["spec"]["externalName"] = json!("example.com");
        assert!(service_ports(&svc(v)).is_empty(), "ExternalName");
        let mut v = web();
        v["metadata"]["labels"] = json!({"service.kubernetes.io/service-proxy-name": "other"});
        assert!(service_ports(&svc(v)).is_empty(), "other proxy");
        let mut v = web();
        v["spec"]["clusterIP"] = json!("fd00::10");
        v["spec"]["clusterIPs"] = json!(["fd00::10"]);
        assert!(service_ports(&svc(v)).is_empty(), "IPv6 only");
        assert!(service_ports(&svc(json!({"metadata": {"name": "x"}}))).is_empty());
        let mut v = web();
        v["metadata"]["name"] = json!("we b");
        assert!(service_ports(&svc(v)).is_empty(), "bad name");
    }

    #[test]
    fn malformed_ports_are_skipped() {
        let mut v = web();
        v["spec"]["ports"] = json!([
            {"name": "a", "port": 70000},
            {"name": "b", "port": 0},
            {"name": "c", "port": 80, "protocol": "ICMP"},
            {"name": "d", "port": 81, "nodePort": -5},
            {"name": "e", "port": 82},
            {"name": "f; drop", "port": 83}
        ]);
        v["spec"]["type"] = json!("NodePort");
        let ports = service_ports(&svc(v));
        let names: Vec<&str> = ports.iter().map(|p| p.port_name.as_str()).collect();
        assert_eq!(names, vec!["d", "e"]);
        assert_eq!(ports[0].node_port, None);
        assert_eq!(ports[1].protocol, Protocol::Tcp);
    }

    #[test]
    fn load_balancer_and_policies() {
        let mut v = web();
        v["spec"]["type"] = json!("LoadBalancer");
        v["spec"]["ports"] = json!([{"name": "http", "port": 80, "nodePort": 30080}]);
        v["spec"]["externalTrafficPolicy"] = json!("Local");
        v["spec"]["internalTrafficPolicy"] = json!("Local");
        v["spec"]["healthCheckNodePort"] = json!(32000);
        v["spec"]["externalIPs"] = json!(["192.0.2.1", "not-an-ip"]);
        v["spec"]["sessionAffinity"] = json!("ClientIP");
        v["spec"]["loadBalancerSourceRanges"] = json!(["203.0.113.7/24"]);
        v["status"] = json!({"loadBalancer": {"ingress": [
            {"ip": "198.51.100.7"}, {"hostname": "lb.example.com"},
            {"ip": "198.51.100.8", "ipMode": "Proxy"}
        ]}});
        let p = &service_ports(&svc(v.clone()))[0];
        assert_eq!(p.node_port, Some(30080));
        assert_eq!(
            p.external_ips,
            vec!["192.0.2.1".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(
            p.load_balancer_ips,
            vec!["198.51.100.7".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(
            p.load_balancer_source_ranges,
            vec!["203.0.113.0/24".parse::<Ipv4Net>().unwrap()]
        );
        assert!(p.external_local && p.internal_local);
        assert_eq!(p.health_check_node_port, Some(32000));
        assert_eq!(p.affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
        v["spec"]["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 60}});
        assert_eq!(service_ports(&svc(v))[0].affinity_timeout, Some(60));
        // eTP Local does not apply to a plain ClusterIP Service.
        let mut v = web();
        v["spec"]["externalTrafficPolicy"] = json!("Local");
        assert!(!service_ports(&svc(v))[0].external_local);
    }

    #[test]
    fn endpoints_from_slices() {
        let s1 = slice(json!({
            "metadata": {"name": "web-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                      {"name": "dns", "port": 5353, "protocol": "UDP"}],
            "endpoints": [
                {"addresses": ["10.244.0.6"], "conditions": {"ready": true}, "nodeName": "node-a"},
                {"addresses": ["10.244.0.5"], "nodeName": "node-b"},
                {"addresses": ["10.244.0.7"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["bogus"]},
                {"addresses": []}
            ]
        }));
        let s2 = slice(json!({
            "metadata": {"name": "web-2", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["10.244.0.5"]}, {"addresses": ["10.244.0.9"]}]
        }));
        let v6 = slice(json!({
            "metadata": {"name": "web-3", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv6",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["fd00::1"]}]
        }));
        let other = slice(json!({
            "metadata": {"name": "x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "other"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 1}],
            "endpoints": [{"addresses": ["10.1.1.1"]}]
        }));
        let s = svc(web());
        let joined = join([&s], [&s1, &s2, &v6, &other], "node-a");
        assert_eq!(joined.len(), 2);
        let dns = &joined[0];
        assert_eq!(dns.service.port_name, "dns");
        assert_eq!(dns.endpoints.len(), 3);
        assert!(dns.endpoints.iter().all(|e| e.port == 5353));
        let http = &joined[1];
        let addrs: Vec<String> = http.endpoints.iter().map(Endpoint::addr).collect();
        assert_eq!(
            addrs,
            vec![
                "10.244.0.5:8080",
                "10.244.0.6:8080",
                "10.244.0.7:8080",
                "10.244.0.9:8080"
            ]
        );
        let e6 = &http.endpoints[1];
        assert!(e6.ready && e6.serving && !e6.terminating && e6.local);
        let e7 = &http.endpoints[2];
        assert!(!e7.ready && e7.serving && e7.terminating && !e7.local);
        let cat = categorize(&http.service, &http.endpoints);
        assert_eq!(cat.cluster.len(), 3);
        assert!(cat.has_any);
    }

    #[test]
    fn headless_slices_ignored() {
        let s = slice(json!({
            "metadata": {"name": "h", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "h",
                                    "service.kubernetes.io/headless": ""}},
            "addressType": "IPv4",
            "endpoints": []
        }));
        assert_eq!(slice_service(&s), None);
    }
}
