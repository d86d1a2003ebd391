//! The nftables ruleset kube-proxy wants, built from the service ports and
//! their endpoints, laid out as upstream's nftables proxier lays out its
//! `ip kube-proxy` table, and rendered as one `nft -f` transaction (a full
//! rewrite or only what changed since the last one).
//!
//! ```text
//! filter-prerouting (filter, prerouting, -110): ct state new jump firewall-check
//! filter-input      (filter, input, -110):      ct state new jump endpoints-check
//! filter-forward    (filter, forward, -110):    ct state new jump endpoints-check
//! filter-output     (filter, output, -110):     ct state new jump endpoints-check / firewall-check
//! nat-prerouting, nat-output (nat, -100):        jump services
//! nat-postrouting   (nat, postrouting, 100):    jump masquerading
//! services:        ip daddr . meta l4proto . th dport vmap @service-ips
//!                  ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
//! service-<hash>-<ns>/<name>/<proto>/<port>: masquerade marks, affinity, numgen random vmap
//! external-...: masquerade / short-circuits, then the cluster or local chain
//! endpoint-<hash>-...__<ip>/<port>: hairpin mark, affinity update, dnat
//! endpoints-check: @no-endpoint-services / @no-endpoint-nodeports → reject-chain or drop
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::hash::hash_and_truncate;
use crate::model::{categorize, Endpoint, ServiceEndpoints, ServicePort};

/// The table's family and name.
pub const FAMILY: &str = "ip";
pub const TABLE: &str = "kube-proxy";

pub const SERVICES_CHAIN: &str = "services";
pub const SERVICE_IPS_MAP: &str = "service-ips";
pub const SERVICE_NODEPORTS_MAP: &str = "service-nodeports";
pub const NODEPORT_IPS_SET: &str = "nodeport-ips";
pub const ENDPOINTS_CHECK_CHAIN: &str = "endpoints-check";
pub const NO_ENDPOINT_SERVICES_MAP: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS_MAP: &str = "no-endpoint-nodeports";
pub const REJECT_CHAIN: &str = "reject-chain";
pub const FIREWALL_IPS_MAP: &str = "firewall-ips";
pub const FIREWALL_CHECK_CHAIN: &str = "firewall-check";
pub const MARK_MASQ_CHAIN: &str = "mark-for-masquerade";
pub const MASQUERADING_CHAIN: &str = "masquerading";

/// Upstream's default masquerade bit (`--masquerade-bit`, 14 → 0x4000).
pub const DEFAULT_MASQUERADE_BIT: u8 = 14;

/// Where NodePorts are accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodePortAddresses {
    /// Every local address (`fib daddr type local`), except loopback.
    All,
    /// These addresses (the node's IPs by default).
    Ips(Vec<Ipv4Addr>),
}

/// Node-level settings of the ruleset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleConfig {
    /// Traffic from outside this range to a ClusterIP is masqueraded, and
    /// pod traffic to external IPs short-circuits externalTrafficPolicy.
    pub cluster_cidr: Option<Ipv4Net>,
    /// Masquerade all traffic to ClusterIPs.
    pub masquerade_all: bool,
    pub masquerade_bit: u8,
    pub node_port_addresses: NodePortAddresses,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            cluster_cidr: None,
            masquerade_all: false,
            masquerade_bit: DEFAULT_MASQUERADE_BIT,
            node_port_addresses: NodePortAddresses::Ips(Vec::new()),
        }
    }
}

/// A chain: base chains carry their hook declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// e.g. `type filter hook input priority -110 ; policy accept ;`
    pub base: Option<String>,
    pub rules: Vec<String>,
}

/// `set` or `map`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetKind {
    Set,
    Map,
}

impl SetKind {
    fn as_str(self) -> &'static str {
        match self {
            SetKind::Set => "set",
            SetKind::Map => "map",
        }
    }
}

/// A set or map with its declaration and (unless the kernel fills it, as
/// with affinity sets) its elements: key → value (maps) or key → None.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    pub kind: SetKind,
    pub decl: String,
    pub elements: BTreeMap<String, Option<String>>,
    /// Filled by the datapath (`update @set`): never flushed.
    pub dynamic: bool,
}

/// The whole table's desired content.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: BTreeMap<String, Chain>,
    pub sets: BTreeMap<String, Set>,
}

/// Names of the chains and sets that exist in the kernel's table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Existing {
    pub chains: BTreeSet<String>,
    pub sets: BTreeMap<String, SetKind>,
}

impl Existing {
    /// What `rs` leaves in the kernel once applied.
    pub fn of(rs: &Ruleset) -> Existing {
        Existing {
            chains: rs.chains.keys().cloned().collect(),
            sets: rs.sets.iter().map(|(k, s)| (k.clone(), s.kind)).collect(),
        }
    }

    /// Parse `nft list table ip kube-proxy` output.
    pub fn parse_listing(text: &str) -> Existing {
        let mut e = Existing::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(kw), Some(name), Some("{")) = (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let name = name.trim_matches('"').to_string();
            match kw {
                "chain" => {
                    e.chains.insert(name);
                }
                "set" => {
                    e.sets.insert(name, SetKind::Set);
                }
                "map" => {
                    e.sets.insert(name, SetKind::Map);
                }
                _ => {}
            }
        }
        e
    }
}

/// Per-service-port chain names.
#[derive(Clone, Debug)]
struct PortChains {
    cluster: String,
    local: String,
    external: String,
    firewall: String,
}

fn port_chains(sp: &ServicePort) -> PortChains {
    let base = hash_and_truncate(&format!(
        "{}/{}/{}/{}",
        sp.namespace,
        sp.name,
        sp.protocol.as_str(),
        sp.port_name
    ));
    PortChains {
        cluster: format!("service-{base}"),
        local: format!("local-{base}"),
        external: format!("external-{base}"),
        firewall: format!("firewall-{base}"),
    }
}

/// `(endpoint chain, affinity set)` names of an endpoint of `sp`.
fn endpoint_names(sp: &ServicePort, ep: &Endpoint) -> (String, String) {
    let base = hash_and_truncate(&format!(
        "{}/{}/{}/{}__{}/{}",
        sp.namespace,
        sp.name,
        sp.protocol.as_str(),
        sp.port_name,
        ep.ip,
        ep.port
    ));
    (format!("endpoint-{base}"), format!("affinity-{base}"))
}

/// The chain names upstream gives a service port: `service-HASH-ns/name/proto/port`.
pub fn service_chain_name(sp: &ServicePort) -> String {
    port_chains(sp).cluster
}

/// `endpoint-HASH-ns/name/proto/port__ip/port`.
pub fn endpoint_chain_name(sp: &ServicePort, ep: &Endpoint) -> String {
    endpoint_names(sp, ep).0
}

fn base_chain(kind: &str, hook: &str, priority: i32) -> Chain {
    Chain {
        base: Some(format!(
            "type {kind} hook {hook} priority {priority} ; policy accept ;"
        )),
        rules: Vec::new(),
    }
}

fn chain(rules: Vec<String>) -> Chain {
    Chain { base: None, rules }
}

fn map(decl: &str) -> Set {
    Set {
        kind: SetKind::Map,
        decl: decl.to_string(),
        elements: BTreeMap::new(),
        dynamic: false,
    }
}

/// Build the ruleset for `services` (each with all its endpoints).
pub fn build(cfg: &RuleConfig, services: &[ServiceEndpoints]) -> Ruleset {
    let mut rs = Ruleset::default();
    let mark = format!("{:#010x}", 1u32 << u32::from(cfg.masquerade_bit.min(31)));
    let ipvx = "ipv4_addr";
    let tuple_map = format!("type {ipvx} . inet_proto . inet_service : verdict ;");
    let port_map = "type inet_proto . inet_service : verdict ;";

    // Base chains and the fixed jumps.
    let mut c = base_chain("filter", "prerouting", -110);
    c.rules
        .push(format!("ct state new jump {FIREWALL_CHECK_CHAIN}"));
    rs.chains.insert("filter-prerouting".into(), c);
    for hook in ["input", "forward"] {
        let mut c = base_chain("filter", hook, -110);
        c.rules
            .push(format!("ct state new jump {ENDPOINTS_CHECK_CHAIN}"));
        rs.chains.insert(format!("filter-{hook}"), c);
    }
    let mut c = base_chain("filter", "output", -110);
    c.rules
        .push(format!("ct state new jump {ENDPOINTS_CHECK_CHAIN}"));
    c.rules
        .push(format!("ct state new jump {FIREWALL_CHECK_CHAIN}"));
    rs.chains.insert("filter-output".into(), c);
    for hook in ["prerouting", "output"] {
        let mut c = base_chain("nat", hook, -100);
        c.rules.push(format!("jump {SERVICES_CHAIN}"));
        rs.chains.insert(format!("nat-{hook}"), c);
    }
    let mut c = base_chain("nat", "postrouting", 100);
    c.rules.push(format!("jump {MASQUERADING_CHAIN}"));
    rs.chains.insert("nat-postrouting".into(), c);

    rs.chains.insert(
        MARK_MASQ_CHAIN.into(),
        chain(vec![format!("meta mark set meta mark or {mark}")]),
    );
    rs.chains.insert(
        MASQUERADING_CHAIN.into(),
        chain(vec![
            format!("meta mark and {mark} == 0 return"),
            format!("meta mark set meta mark xor {mark}"),
            "masquerade fully-random".into(),
        ]),
    );
    rs.chains
        .insert(REJECT_CHAIN.into(), chain(vec!["reject".into()]));

    let nodeport_match = match &cfg.node_port_addresses {
        NodePortAddresses::All => "fib daddr type local ip daddr != 127.0.0.0/8".to_string(),
        NodePortAddresses::Ips(ips) => {
            let mut set = Set {
                kind: SetKind::Set,
                decl: format!("type {ipvx} ; comment \"IPs that accept NodePort traffic\" ;"),
                elements: BTreeMap::new(),
                dynamic: false,
            };
            for ip in ips.iter().filter(|ip| !ip.is_loopback()) {
                set.elements.insert(ip.to_string(), None);
            }
            rs.sets.insert(NODEPORT_IPS_SET.into(), set);
            format!("ip daddr @{NODEPORT_IPS_SET}")
        }
    };
    rs.chains.insert(
        ENDPOINTS_CHECK_CHAIN.into(),
        chain(vec![
            format!("ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES_MAP}"),
            format!("{nodeport_match} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS_MAP}"),
        ]),
    );
    rs.chains.insert(
        FIREWALL_CHECK_CHAIN.into(),
        chain(vec![format!(
            "ip daddr . meta l4proto . th dport vmap @{FIREWALL_IPS_MAP}"
        )]),
    );
    rs.chains.insert(
        SERVICES_CHAIN.into(),
        chain(vec![
            format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS_MAP}"),
            format!("{nodeport_match} meta l4proto . th dport vmap @{SERVICE_NODEPORTS_MAP}"),
        ]),
    );
    for name in [NO_ENDPOINT_SERVICES_MAP, FIREWALL_IPS_MAP, SERVICE_IPS_MAP] {
        rs.sets.insert(name.into(), map(&tuple_map));
    }
    for name in [NO_ENDPOINT_NODEPORTS_MAP, SERVICE_NODEPORTS_MAP] {
        rs.sets.insert(name.into(), map(port_map));
    }

    for se in services {
        add_service_port(cfg, &mut rs, se);
    }
    rs
}

fn insert_element(rs: &mut Ruleset, set: &str, key: String, value: String) {
    if let Some(s) = rs.sets.get_mut(set) {
        // Two services claiming the same external IP and port: the first wins.
        s.elements.entry(key).or_insert(Some(value));
    }
}

fn add_service_port(cfg: &RuleConfig, rs: &mut Ruleset, se: &ServiceEndpoints) {
    let sp = &se.service;
    let proto = sp.protocol.as_str();
    let names = port_chains(sp);
    let cat = categorize(sp, &se.endpoints);
    let key = |ip: Ipv4Addr| format!("{ip} . {proto} . {}", sp.port);

    let uses_cluster_chain = !cat.cluster.is_empty() && sp.uses_cluster_endpoints();
    let uses_local_chain = !cat.local.is_empty() && sp.uses_local_endpoints();
    let has_endpoints = cat.has_any;

    let (internal_chain, has_internal) = if sp.internal_local {
        (names.local.clone(), has_endpoints && !cat.local.is_empty())
    } else {
        (names.cluster.clone(), has_endpoints)
    };
    let (external_policy_chain, has_external) = if sp.external_local {
        (names.local.clone(), has_endpoints && !cat.local.is_empty())
    } else {
        (names.cluster.clone(), has_endpoints)
    };
    let uses_external_chain = has_endpoints && sp.externally_accessible();

    let reject = format!("goto {REJECT_CHAIN}");
    let (internal_verdict, external_verdict) = if !has_endpoints {
        (reject.clone(), reject)
    } else {
        ("drop".to_string(), "drop".to_string())
    };

    // ClusterIP.
    if has_internal {
        insert_element(
            rs,
            SERVICE_IPS_MAP,
            key(sp.cluster_ip),
            format!("goto {internal_chain}"),
        );
    } else {
        insert_element(
            rs,
            NO_ENDPOINT_SERVICES_MAP,
            key(sp.cluster_ip),
            internal_verdict,
        );
    }

    // External IPs and load-balancer ingress IPs.
    let uses_firewall =
        !sp.load_balancer_ips.is_empty() && !sp.load_balancer_source_ranges.is_empty();
    for ip in sp.external_ips.iter().chain(sp.load_balancer_ips.iter()) {
        if has_endpoints {
            insert_element(
                rs,
                SERVICE_IPS_MAP,
                key(*ip),
                format!("goto {}", names.external),
            );
        }
        if !has_external {
            insert_element(
                rs,
                NO_ENDPOINT_SERVICES_MAP,
                key(*ip),
                external_verdict.clone(),
            );
        }
    }
    if uses_firewall {
        let sources: Vec<String> = sp
            .load_balancer_source_ranges
            .iter()
            .map(|n| n.to_string())
            .collect();
        rs.chains.insert(
            names.firewall.clone(),
            chain(vec![format!(
                "ip saddr != {{ {} }} drop",
                sources.join(", ")
            )]),
        );
        for ip in &sp.load_balancer_ips {
            insert_element(
                rs,
                FIREWALL_IPS_MAP,
                key(*ip),
                format!("goto {}", names.firewall),
            );
        }
    }

    // NodePort.
    if let Some(np) = sp.node_port {
        let k = format!("{proto} . {np}");
        if has_endpoints {
            insert_element(
                rs,
                SERVICE_NODEPORTS_MAP,
                k.clone(),
                format!("goto {}", names.external),
            );
        }
        if !has_external {
            insert_element(rs, NO_ENDPOINT_NODEPORTS_MAP, k, external_verdict.clone());
        }
    }

    // Policy chains (service-/local-): masquerade marks, affinity, load balancing.
    let masq_rule = if cfg.masquerade_all {
        Some(format!(
            "ip daddr {} {proto} dport {} jump {MARK_MASQ_CHAIN}",
            sp.cluster_ip, sp.port
        ))
    } else {
        cfg.cluster_cidr.map(|cidr| {
            format!(
                "ip daddr {} {proto} dport {} ip saddr != {cidr} jump {MARK_MASQ_CHAIN}",
                sp.cluster_ip, sp.port
            )
        })
    };
    if uses_cluster_chain {
        let mut rules = Vec::new();
        if has_internal && internal_chain == names.cluster {
            rules.extend(masq_rule.clone());
        }
        rules.extend(balance_rules(sp, &cat.cluster));
        rs.chains.insert(names.cluster.clone(), chain(rules));
    }
    if uses_local_chain {
        let mut rules = Vec::new();
        if has_internal && internal_chain == names.local {
            rules.extend(masq_rule);
        }
        rules.extend(balance_rules(sp, &cat.local));
        rs.chains.insert(names.local.clone(), chain(rules));
    }

    // external- chain.
    if uses_external_chain {
        let mut rules = Vec::new();
        if !sp.external_local {
            rules.push(format!("jump {MARK_MASQ_CHAIN}"));
        } else {
            if let Some(cidr) = cfg.cluster_cidr {
                rules.push(format!(
                    "ip saddr {cidr} goto {} comment \"short-circuit pod traffic\"",
                    names.cluster
                ));
            }
            rules.push(format!(
                "fib saddr type local jump {MARK_MASQ_CHAIN} comment \"masquerade local traffic\""
            ));
            rules.push(format!(
                "fib saddr type local goto {} comment \"short-circuit local traffic\"",
                names.cluster
            ));
        }
        if has_external {
            rules.push(format!("goto {external_policy_chain}"));
        }
        rs.chains.insert(names.external.clone(), chain(rules));
    }

    // Endpoint chains (and affinity sets).
    for ep in &cat.reachable {
        let (ep_chain, affinity) = endpoint_names(sp, ep);
        let mut rules = vec![format!("ip saddr {} jump {MARK_MASQ_CHAIN}", ep.ip)];
        if let Some(timeout) = sp.affinity_timeout {
            rs.sets.insert(
                affinity.clone(),
                Set {
                    kind: SetKind::Set,
                    decl: format!("type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ;"),
                    elements: BTreeMap::new(),
                    dynamic: true,
                },
            );
            rules.push(format!("update @{affinity} {{ ip saddr }}"));
        }
        rules.push(format!("meta l4proto {proto} dnat to {}", ep.addr()));
        rs.chains.insert(ep_chain, chain(rules));
    }
}

fn balance_rules(sp: &ServicePort, endpoints: &[Endpoint]) -> Vec<String> {
    let mut rules = Vec::new();
    if sp.affinity_timeout.is_some() {
        for ep in endpoints {
            let (ep_chain, affinity) = endpoint_names(sp, ep);
            rules.push(format!("ip saddr @{affinity} goto {ep_chain}"));
        }
    }
    let elements: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| format!("{i} : goto {}", endpoint_names(sp, ep).0))
        .collect();
    if !elements.is_empty() {
        rules.push(format!(
            "numgen random mod {} vmap {{ {} }}",
            endpoints.len(),
            elements.join(", ")
        ));
    }
    rules
}

fn obj(kind: &str, name: &str) -> String {
    format!("{kind} {FAMILY} {TABLE} {name}")
}

/// The transaction that deletes the table (if present).
pub fn render_delete() -> String {
    format!("add table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n")
}

impl Ruleset {
    /// The transaction that replaces whatever the table holds with this
    /// ruleset: delete the table and recreate it.
    pub fn render_recreate(&self) -> String {
        let mut out = render_delete();
        out.push_str(&self.render(None, &Existing::default()).unwrap_or_default());
        out
    }

    /// The transaction taking the table from `existing` (and, when known,
    /// the previously applied ruleset `prev`: then only what changed is
    /// written) to this ruleset. Stale chains and sets are deleted. `None`
    /// when a set's declaration changed (the caller recreates the table).
    pub fn render(&self, prev: Option<&Ruleset>, existing: &Existing) -> Option<String> {
        self.render_with(prev, existing, true)
    }

    /// [`Ruleset::render`], optionally keeping stale chains (flushed, so
    /// unreferenced, but not deleted): kernels before 6.2 only notice a
    /// little later that a chain a removed map element pointed to is
    /// unreferenced, so deleting it in the same transaction fails there.
    /// Deleting stale affinity sets is always fine.
    pub fn render_with(
        &self,
        prev: Option<&Ruleset>,
        existing: &Existing,
        delete_stale_chains: bool,
    ) -> Option<String> {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "add table {FAMILY} {TABLE} {{ comment \"rules for kube-proxy\" ; }}"
        );
        let chain_changed = |name: &str, c: &Chain| -> bool {
            match prev {
                Some(p) => p.chains.get(name) != Some(c) || !existing.chains.contains(name),
                None => true,
            }
        };
        let set_changed = |name: &str, s: &Set| -> bool {
            match prev {
                Some(p) => p.sets.get(name) != Some(s) || !existing.sets.contains_key(name),
                None => true,
            }
        };
        if let Some(p) = prev {
            for (name, s) in &self.sets {
                if let Some(old) = p.sets.get(name) {
                    if old.decl != s.decl || old.kind != s.kind {
                        return None;
                    }
                }
            }
            for (name, c) in &self.chains {
                if let Some(old) = p.chains.get(name) {
                    if old.base != c.base {
                        return None;
                    }
                }
            }
        }
        // 1. Chains and sets that must exist (adding an existing one is a no-op).
        for (name, c) in &self.chains {
            if chain_changed(name, c) {
                match &c.base {
                    Some(b) => {
                        let _ = writeln!(out, "add {} {{ {b} }}", obj("chain", name));
                    }
                    None => {
                        let _ = writeln!(out, "add {}", obj("chain", name));
                    }
                }
            }
        }
        for (name, s) in &self.sets {
            if !existing.sets.contains_key(name) || prev.is_none() {
                let _ = writeln!(out, "add {} {{ {} }}", obj(s.kind.as_str(), name), s.decl);
            }
        }
        // 2. Flush what is rewritten, and stale chains (so nothing references
        //    what gets deleted at the end).
        for (name, c) in &self.chains {
            if chain_changed(name, c) && existing.chains.contains(name) {
                let _ = writeln!(out, "flush {}", obj("chain", name));
            }
        }
        let stale_chains: Vec<&String> = existing
            .chains
            .iter()
            .filter(|n| !self.chains.contains_key(*n))
            .collect();
        for name in &stale_chains {
            let _ = writeln!(out, "flush {}", obj("chain", name));
        }
        for (name, s) in &self.sets {
            if !s.dynamic && set_changed(name, s) && existing.sets.contains_key(name) {
                let _ = writeln!(out, "flush {}", obj(s.kind.as_str(), name));
            }
        }
        // 3. Rules and elements.
        for (name, c) in &self.chains {
            if chain_changed(name, c) {
                for r in &c.rules {
                    let _ = writeln!(out, "add rule {FAMILY} {TABLE} {name} {r}");
                }
            }
        }
        for (name, s) in &self.sets {
            if s.dynamic || !set_changed(name, s) || s.elements.is_empty() {
                continue;
            }
            let elems: Vec<String> = s
                .elements
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k} : {v}"),
                    None => k.clone(),
                })
                .collect();
            for chunk in elems.chunks(500) {
                let _ = writeln!(
                    out,
                    "add element {FAMILY} {TABLE} {name} {{ {} }}",
                    chunk.join(", ")
                );
            }
        }
        // 4. Delete what is no longer wanted.
        if delete_stale_chains {
            for name in &stale_chains {
                let _ = writeln!(out, "delete {}", obj("chain", name));
            }
        }
        for (name, kind) in &existing.sets {
            if !self.sets.contains_key(name) {
                let _ = writeln!(out, "delete {}", obj(kind.as_str(), name));
            }
        }
        Some(out)
    }

    /// Chains in `existing` this ruleset does not have.
    pub fn stale_chains(&self, existing: &Existing) -> BTreeSet<String> {
        existing
            .chains
            .iter()
            .filter(|c| !self.chains.contains_key(*c))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    pub(crate) fn sp(ns: &str, name: &str, ip: &str, port: u16) -> ServicePort {
        ServicePort {
            namespace: ns.into(),
            name: name.into(),
            port_name: "p".into(),
            protocol: Protocol::Tcp,
            cluster_ip: ip.parse().unwrap(),
            port,
            node_port: None,
            external_ips: vec![],
            load_balancer_ips: vec![],
            load_balancer_source_ranges: vec![],
            affinity_timeout: None,
            internal_local: false,
            external_local: false,
            health_check_node_port: None,
        }
    }

    pub(crate) fn ep(ip: &str, port: u16) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port,
            ready: true,
            serving: true,
            terminating: false,
            local: false,
        }
    }

    #[test]
    fn upstream_chain_name() {
        // The example in upstream's comments.
        let mut s = sp("ns1", "svc1", "10.0.0.1", 80);
        s.port_name = "p80".into();
        assert_eq!(service_chain_name(&s), "service-ULMVA6XW-ns1/svc1/tcp/p80");
    }

    fn one(service: ServicePort, endpoints: Vec<Endpoint>) -> Vec<ServiceEndpoints> {
        vec![ServiceEndpoints { service, endpoints }]
    }

    fn elem<'a>(rs: &'a Ruleset, set: &str, key: &str) -> Option<&'a str> {
        rs.sets[set].elements.get(key)?.as_deref()
    }

    fn cfg() -> RuleConfig {
        RuleConfig {
            cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
            node_port_addresses: NodePortAddresses::Ips(vec!["10.200.0.10".parse().unwrap()]),
            ..Default::default()
        }
    }

    #[test]
    fn base_layout() {
        let rs = build(&cfg(), &[]);
        for c in [
            "filter-prerouting",
            "filter-input",
            "filter-forward",
            "filter-output",
            "nat-prerouting",
            "nat-output",
            "nat-postrouting",
            "services",
            "endpoints-check",
            "firewall-check",
            "mark-for-masquerade",
            "masquerading",
            "reject-chain",
        ] {
            assert!(rs.chains.contains_key(c), "{c}");
        }
        assert_eq!(
            rs.chains["filter-input"].base.as_deref(),
            Some("type filter hook input priority -110 ; policy accept ;")
        );
        assert_eq!(
            rs.chains["nat-postrouting"].rules,
            vec!["jump masquerading".to_string()]
        );
        assert_eq!(
            rs.chains["masquerading"].rules,
            vec![
                "meta mark and 0x00004000 == 0 return".to_string(),
                "meta mark set meta mark xor 0x00004000".into(),
                "masquerade fully-random".into()
            ]
        );
        assert_eq!(
            rs.sets["nodeport-ips"].elements.keys().collect::<Vec<_>>(),
            vec!["10.200.0.10"]
        );
        assert!(rs.chains["services"].rules[1].starts_with("ip daddr @nodeport-ips"));
        // All local addresses.
        let all = build(
            &RuleConfig {
                node_port_addresses: NodePortAddresses::All,
                ..cfg()
            },
            &[],
        );
        assert!(!all.sets.contains_key("nodeport-ips"));
        assert!(all.chains["services"].rules[1].starts_with("fib daddr type local"));
    }

    #[test]
    fn cluster_ip_load_balancing() {
        let s = sp("ns", "web", "10.96.0.10", 80);
        let rs = build(
            &cfg(),
            &one(
                s.clone(),
                vec![ep("10.244.0.5", 8080), ep("10.244.0.6", 8080)],
            ),
        );
        let svc_chain = service_chain_name(&s);
        assert_eq!(
            elem(&rs, SERVICE_IPS_MAP, "10.96.0.10 . tcp . 80"),
            Some(format!("goto {svc_chain}").as_str())
        );
        let rules = &rs.chains[&svc_chain].rules;
        assert_eq!(
            rules[0],
            "ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade"
        );
        let e0 = endpoint_chain_name(&s, &ep("10.244.0.5", 8080));
        let e1 = endpoint_chain_name(&s, &ep("10.244.0.6", 8080));
        assert_eq!(
            rules[1],
            format!("numgen random mod 2 vmap {{ 0 : goto {e0}, 1 : goto {e1} }}")
        );
        assert!(e0.starts_with("endpoint-") && e0.ends_with("-ns/web/tcp/p__10.244.0.5/8080"));
        assert_eq!(
            rs.chains[&e0].rules,
            vec![
                "ip saddr 10.244.0.5 jump mark-for-masquerade".to_string(),
                "meta l4proto tcp dnat to 10.244.0.5:8080".into()
            ]
        );
        assert!(rs.sets[NO_ENDPOINT_SERVICES_MAP].elements.is_empty());
        // Without a cluster CIDR there is no masquerade rule; with
        // masquerade-all it matches every source.
        let rs = build(
            &RuleConfig {
                cluster_cidr: None,
                ..cfg()
            },
            &one(s.clone(), vec![ep("10.244.0.5", 8080)]),
        );
        assert!(rs.chains[&svc_chain].rules[0].starts_with("numgen"));
        let rs = build(
            &RuleConfig {
                masquerade_all: true,
                ..cfg()
            },
            &one(s, vec![ep("10.244.0.5", 8080)]),
        );
        assert_eq!(
            rs.chains[&svc_chain].rules[0],
            "ip daddr 10.96.0.10 tcp dport 80 jump mark-for-masquerade"
        );
    }

    #[test]
    fn no_endpoints_rejects() {
        let mut s = sp("ns", "web", "10.96.0.10", 80);
        s.node_port = Some(30080);
        s.external_ips = vec!["192.0.2.1".parse().unwrap()];
        let rs = build(&cfg(), &one(s.clone(), vec![]));
        assert_eq!(
            elem(&rs, NO_ENDPOINT_SERVICES_MAP, "10.96.0.10 . tcp . 80"),
            Some("goto reject-chain")
        );
        assert_eq!(
            elem(&rs, NO_ENDPOINT_SERVICES_MAP, "192.0.2.1 . tcp . 80"),
            Some("goto reject-chain")
        );
        assert_eq!(
            elem(&rs, NO_ENDPOINT_NODEPORTS_MAP, "tcp . 30080"),
            Some("goto reject-chain")
        );
        assert!(rs.sets[SERVICE_IPS_MAP].elements.is_empty());
        assert!(!rs.chains.contains_key(&service_chain_name(&s)));
        // Not-ready endpoints are no endpoints.
        let mut e = ep("10.244.0.5", 8080);
        e.ready = false;
        e.serving = false;
        let rs = build(&cfg(), &one(s, vec![e]));
        assert_eq!(
            elem(&rs, NO_ENDPOINT_SERVICES_MAP, "10.96.0.10 . tcp . 80"),
            Some("goto reject-chain")
        );
    }

    #[test]
    fn terminating_fallback() {
        let s = sp("ns", "web", "10.96.0.10", 80);
        let mut term = ep("10.244.0.7", 8080);
        term.ready = false;
        term.terminating = true;
        let mut gone = ep("10.244.0.8", 8080);
        gone.ready = false;
        gone.serving = false;
        gone.terminating = true;
        let rs = build(&cfg(), &one(s.clone(), vec![term.clone(), gone.clone()]));
        let rules = &rs.chains[&service_chain_name(&s)].rules;
        assert!(rules[1].starts_with("numgen random mod 1 "), "{rules:?}");
        assert!(rs.chains.contains_key(&endpoint_chain_name(&s, &term)));
        assert!(!rs.chains.contains_key(&endpoint_chain_name(&s, &gone)));
        // With a ready endpoint the terminating one is not used.
        let rs = build(
            &cfg(),
            &one(s.clone(), vec![term.clone(), ep("10.244.0.5", 8080)]),
        );
        assert!(!rs.chains.contains_key(&endpoint_chain_name(&s, &term)));
    }

    #[test]
    fn node_port_external_and_lb() {
        let mut s = sp("ns", "web", "10.96.0.10", 80);
        s.node_port = Some(30080);
        s.external_ips = vec!["192.0.2.1".parse().unwrap()];
        s.load_balancer_ips = vec!["198.51.100.7".parse().unwrap()];
        s.load_balancer_source_ranges = vec!["203.0.113.0/24".parse().unwrap()];
        let rs = build(&cfg(), &one(s.clone(), vec![ep("10.244.0.5", 8080)]));
        let base = &service_chain_name(&s)["service-".len()..];
        let ext = format!("external-{base}");
        assert_eq!(
            elem(&rs, SERVICE_NODEPORTS_MAP, "tcp . 30080"),
            Some(format!("goto {ext}").as_str())
        );
        assert_eq!(
            elem(&rs, SERVICE_IPS_MAP, "192.0.2.1 . tcp . 80"),
            Some(format!("goto {ext}").as_str())
        );
        assert_eq!(
            elem(&rs, SERVICE_IPS_MAP, "198.51.100.7 . tcp . 80"),
            Some(format!("goto {ext}").as_str())
        );
        assert_eq!(
            rs.chains[&ext].rules,
            vec![
                "jump mark-for-masquerade".to_string(),
                format!("goto service-{base}")
            ]
        );
        let fw = format!("firewall-{base}");
        assert_eq!(
            elem(&rs, FIREWALL_IPS_MAP, "198.51.100.7 . tcp . 80"),
            Some(format!("goto {fw}").as_str())
        );
        assert_eq!(
            rs.chains[&fw].rules,
            vec!["ip saddr != { 203.0.113.0/24 } drop".to_string()]
        );
    }

    #[test]
    fn external_traffic_policy_local() {
        let mut s = sp("ns", "web", "10.96.0.10", 80);
        s.node_port = Some(30080);
        s.external_local = true;
        let mut local = ep("10.244.0.5", 8080);
        local.local = true;
        let remote = ep("10.244.9.9", 8080);
        let base = service_chain_name(&s)["service-".len()..].to_string();
        let rs = build(&cfg(), &one(s.clone(), vec![local.clone(), remote.clone()]));
        let ext = &rs.chains[&format!("external-{base}")].rules;
        assert_eq!(
            ext,
            &vec![
                format!("ip saddr 10.244.0.0/16 goto service-{base} comment \"short-circuit pod traffic\""),
                "fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\"".into(),
                format!("fib saddr type local goto service-{base} comment \"short-circuit local traffic\""),
                format!("goto local-{base}"),
            ]
        );
        // local- balances only over the local endpoint; service- over both.
        let lrules = &rs.chains[&format!("local-{base}")].rules;
        assert!(lrules[0].starts_with("numgen random mod 1 "), "{lrules:?}");
        assert!(lrules[0].contains(&endpoint_chain_name(&s, &local)));
        assert!(rs.chains[&format!("service-{base}")].rules[1].starts_with("numgen random mod 2 "));
        // Without local endpoints external traffic is dropped (not rejected)
        // and the external chain still short-circuits cluster traffic.
        let rs = build(&cfg(), &one(s.clone(), vec![remote]));
        assert_eq!(
            elem(&rs, NO_ENDPOINT_NODEPORTS_MAP, "tcp . 30080"),
            Some("drop")
        );
        assert_eq!(rs.chains[&format!("external-{base}")].rules.len(), 3);
        assert!(!rs.chains.contains_key(&format!("local-{base}")));
    }

    #[test]
    fn internal_traffic_policy_local() {
        let mut s = sp("ns", "web", "10.96.0.10", 80);
        s.internal_local = true;
        let base = service_chain_name(&s)["service-".len()..].to_string();
        let rs = build(&cfg(), &one(s.clone(), vec![ep("10.244.9.9", 8080)]));
        assert_eq!(
            elem(&rs, NO_ENDPOINT_SERVICES_MAP, "10.96.0.10 . tcp . 80"),
            Some("drop")
        );
        assert!(!rs.chains.contains_key(&format!("service-{base}")));
        let mut local = ep("10.244.0.5", 8080);
        local.local = true;
        let rs = build(&cfg(), &one(s, vec![local, ep("10.244.9.9", 8080)]));
        assert_eq!(
            elem(&rs, SERVICE_IPS_MAP, "10.96.0.10 . tcp . 80"),
            Some(format!("goto local-{base}").as_str())
        );
        assert!(rs.chains[&format!("local-{base}")].rules[1].starts_with("numgen random mod 1 "));
    }

    #[test]
    fn session_affinity() {
        let mut s = sp("ns", "web", "10.96.0.10", 80);
        s.affinity_timeout = Some(600);
        let e = ep("10.244.0.5", 8080);
        let rs = build(&cfg(), &one(s.clone(), vec![e.clone()]));
        let ec = endpoint_chain_name(&s, &e);
        let aff = format!("affinity-{}", &ec["endpoint-".len()..]);
        let set = &rs.sets[&aff];
        assert!(set.dynamic);
        assert_eq!(
            set.decl,
            "type ipv4_addr ; flags dynamic,timeout ; timeout 600s ;"
        );
        let rules = &rs.chains[&service_chain_name(&s)].rules;
        assert_eq!(rules[1], format!("ip saddr @{aff} goto {ec}"));
        assert_eq!(
            rs.chains[&ec].rules[1],
            format!("update @{aff} {{ ip saddr }}")
        );
    }

    #[test]
    fn partial_render_only_touches_changes() {
        let s1 = sp("ns", "a", "10.96.0.10", 80);
        let s2 = sp("ns", "b", "10.96.0.11", 80);
        let before = build(
            &cfg(),
            &[
                ServiceEndpoints {
                    service: s1.clone(),
                    endpoints: vec![ep("10.244.0.5", 80)],
                },
                ServiceEndpoints {
                    service: s2.clone(),
                    endpoints: vec![ep("10.244.0.6", 80)],
                },
            ],
        );
        let after = build(
            &cfg(),
            &[
                ServiceEndpoints {
                    service: s1.clone(),
                    endpoints: vec![ep("10.244.0.7", 80)],
                },
                ServiceEndpoints {
                    service: s2.clone(),
                    endpoints: vec![ep("10.244.0.6", 80)],
                },
            ],
        );
        let tx = after.render(Some(&before), &Existing::of(&before)).unwrap();
        let c1 = service_chain_name(&s1);
        let c2 = service_chain_name(&s2);
        let old_ep = endpoint_chain_name(&s1, &ep("10.244.0.5", 80));
        let new_ep = endpoint_chain_name(&s1, &ep("10.244.0.7", 80));
        assert!(
            tx.contains(&format!("flush chain ip kube-proxy {c1}\n")),
            "{tx}"
        );
        assert!(!tx.contains(&c2), "{tx}");
        assert!(
            tx.contains(&format!("add chain ip kube-proxy {new_ep}\n")),
            "{tx}"
        );
        assert!(
            tx.contains(&format!("delete chain ip kube-proxy {old_ep}\n")),
            "{tx}"
        );
        assert!(!tx.contains("filter-input"), "{tx}");
        // Unchanged: nothing but the table.
        let tx = after.render(Some(&after), &Existing::of(&after)).unwrap();
        assert_eq!(tx.lines().count(), 1, "{tx}");
        // A changed set declaration needs a recreate.
        let mut s3 = s1.clone();
        s3.affinity_timeout = Some(5);
        let a = build(&cfg(), &one(s3.clone(), vec![ep("10.244.0.7", 80)]));
        s3.affinity_timeout = Some(6);
        let b = build(&cfg(), &one(s3, vec![ep("10.244.0.7", 80)]));
        assert!(b.render(Some(&a), &Existing::of(&a)).is_none());
    }

    #[test]
    fn stale_chains_can_wait() {
        let s1 = sp("ns", "a", "10.96.0.10", 80);
        let before = build(&cfg(), &one(s1.clone(), vec![ep("10.244.0.5", 80)]));
        let after = build(&cfg(), &[]);
        let existing = Existing::of(&before);
        let stale = after.stale_chains(&existing);
        assert!(stale.contains(&service_chain_name(&s1)));
        let tx = after.render_with(Some(&before), &existing, false).unwrap();
        assert!(tx.contains(&format!(
            "flush chain ip kube-proxy {}\n",
            service_chain_name(&s1)
        )));
        assert!(!tx.contains("delete chain"), "{tx}");
        // Next time: the kept chains are deleted.
        let mut existing = Existing::of(&after);
        existing.chains.extend(stale);
        let tx = after.render(Some(&after), &existing).unwrap();
        assert!(
            tx.contains(&format!(
                "delete chain ip kube-proxy {}\n",
                service_chain_name(&s1)
            )),
            "{tx}"
        );
    }

    #[test]
    fn listing_parse() {
        let text = "table ip kube-proxy {\n\tcomment \"rules for kube-proxy\"\n\tset nodeport-ips {\n\t\ttype ipv4_addr\n\t}\n\n\tmap service-ips {\n\t}\n\tchain services {\n\t}\n\tchain endpoint-X-ns/a/tcp/p__10.0.0.1/80 {\n\t}\n}\n";
        let e = Existing::parse_listing(text);
        assert_eq!(
            e.chains.iter().cloned().collect::<Vec<_>>(),
            vec![
                "endpoint-X-ns/a/tcp/p__10.0.0.1/80".to_string(),
                "services".into()
            ]
        );
        assert_eq!(e.sets.get("nodeport-ips"), Some(&SetKind::Set));
        assert_eq!(e.sets.get("service-ips"), Some(&SetKind::Map));
    }
}
