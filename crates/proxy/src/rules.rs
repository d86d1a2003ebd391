//! The nftables ruleset kube-proxy wants, built from the service ports and
//! their endpoints, laid out as upstream's nftables proxier lays out its
//! `ip kube-proxy` table, and rendered as one `nft -f` transaction (a full
//! rewrite or only what changed since the last one).
//!
//! Each service port contributes a [`Fragment`] (its chains, its maps and
//! sets, its elements in the shared maps). A partial sync replaces the
//! fragments of the Services that changed ([`Ruleset::replace_fragments`])
//! and sends only the difference ([`Ruleset::render_delta`]); a full sync
//! rewrites everything ([`Ruleset::render_with`]).
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
//! service-<hash>-<ns>/<name>/<proto>/<port>: masquerade marks, affinity,
//!                  numgen random mod N vmap @service-<hash>-... (a map named like the chain)
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
    /// Shared-map elements by `(map, key)`: the value each owner (see
    /// [`fragment_owner`]) wants; the first owner's is in `sets`.
    claims: BTreeMap<(String, String), BTreeMap<String, String>>,
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

    /// Parse `nft list table ip kube-proxy` output, or listings of several
    /// tables (`nft list chains ip`): only our table's objects count.
    pub fn parse_listing(text: &str) -> Existing {
        let mut e = Existing::default();
        let ours = format!("table {FAMILY} {TABLE} {{");
        let mut inside = false;
        for line in text.lines() {
            if line.starts_with("table ") {
                inside = line.trim_end() == ours;
                continue;
            }
            if !inside {
                continue;
            }
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

/// `(endpoint chain, affinity set)` names by endpoint address (hashing
/// them once per endpoint).
type EndpointNames = BTreeMap<(Ipv4Addr, u16), (String, String)>;

fn names_of(names: &EndpointNames, sp: &ServicePort, ep: &Endpoint) -> (String, String) {
    names
        .get(&(ep.ip, ep.port))
        .cloned()
        .unwrap_or_else(|| endpoint_names(sp, ep))
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
    assemble(
        cfg,
        services
            .iter()
            .map(|se| (fragment_owner(&se.service), service_fragment(cfg, se))),
    )
}

/// The ruleset made of the node-level part and `fragments` (`(owner,
/// fragment)` pairs, see [`service_fragment`]).
pub fn assemble(
    cfg: &RuleConfig,
    fragments: impl IntoIterator<Item = (String, Fragment)>,
) -> Ruleset {
    let mut rs = base(cfg);
    for (owner, f) in fragments {
        rs.add_fragment(&owner, &f);
    }
    rs
}

/// The node-level part: base chains, the dispatch chains and the shared
/// maps (without elements).
fn base(cfg: &RuleConfig) -> Ruleset {
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

    rs
}

/// What one service port contributes to the ruleset: its own chains and
/// sets (load-balancing maps, affinity sets) and its elements in the
/// shared maps (`service-ips`, `service-nodeports`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fragment {
    pub chains: Vec<(String, Chain)>,
    pub sets: Vec<(String, Set)>,
    /// `(shared map, key, value)`.
    pub elements: Vec<(&'static str, String, String)>,
}

/// Which service port owns a fragment (also the order in which claims on
/// the same shared-map key are decided: the first owner wins).
pub fn fragment_owner(sp: &ServicePort) -> String {
    format!("{}\u{0}{}", sp.key(), sp.protocol.as_str())
}

/// The fragment of one service port.
pub fn service_fragment(cfg: &RuleConfig, se: &ServiceEndpoints) -> Fragment {
    let mut f = Fragment::default();
    let frag = &mut f;
    let sp = &se.service;
    let proto = sp.protocol.as_str();
    let names = port_chains(sp);
    let cat = categorize(sp, &se.endpoints);
    let ep_names: EndpointNames = cat
        .reachable
        .iter()
        .map(|ep| ((ep.ip, ep.port), endpoint_names(sp, ep)))
        .collect();
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
        frag.elements.push((
            SERVICE_IPS_MAP,
            key(sp.cluster_ip),
            format!("goto {internal_chain}"),
        ));
    } else {
        frag.elements.push((
            NO_ENDPOINT_SERVICES_MAP,
            key(sp.cluster_ip),
            internal_verdict,
        ));
    }

    // External IPs and load-balancer ingress IPs.
    let uses_firewall =
        !sp.load_balancer_ips.is_empty() && !sp.load_balancer_source_ranges.is_empty();
    for ip in sp.external_ips.iter().chain(sp.load_balancer_ips.iter()) {
        if has_endpoints {
            frag.elements.push((
                SERVICE_IPS_MAP,
                key(*ip),
                format!("goto {}", names.external),
            ));
        }
        if !has_external {
            frag.elements
                .push((NO_ENDPOINT_SERVICES_MAP, key(*ip), external_verdict.clone()));
        }
    }
    if uses_firewall {
        let sources: Vec<String> = sp
            .load_balancer_source_ranges
            .iter()
            .map(|n| n.to_string())
            .collect();
        frag.chains.push((
            names.firewall.clone(),
            chain(vec![format!(
                "ip saddr != {{ {} }} drop",
                sources.join(", ")
            )]),
        ));
        for ip in &sp.load_balancer_ips {
            frag.elements.push((
                FIREWALL_IPS_MAP,
                key(*ip),
                format!("goto {}", names.firewall),
            ));
        }
    }

    // NodePort.
    if let Some(np) = sp.node_port {
        let k = format!("{proto} . {np}");
        if has_endpoints {
            frag.elements.push((
                SERVICE_NODEPORTS_MAP,
                k.clone(),
                format!("goto {}", names.external),
            ));
        }
        if !has_external {
            frag.elements
                .push((NO_ENDPOINT_NODEPORTS_MAP, k, external_verdict.clone()));
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
        rules.extend(balance_rules(
            frag,
            &ep_names,
            &names.cluster,
            sp,
            &cat.cluster,
        ));
        frag.chains.push((names.cluster.clone(), chain(rules)));
    }
    if uses_local_chain {
        let mut rules = Vec::new();
        if has_internal && internal_chain == names.local {
            rules.extend(masq_rule);
        }
        rules.extend(balance_rules(frag, &ep_names, &names.local, sp, &cat.local));
        frag.chains.push((names.local.clone(), chain(rules)));
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
        frag.chains.push((names.external.clone(), chain(rules)));
    }

    // Endpoint chains (and affinity sets).
    for ep in &cat.reachable {
        let (ep_chain, affinity) = names_of(&ep_names, sp, ep);
        let mut rules = vec![format!("ip saddr {} jump {MARK_MASQ_CHAIN}", ep.ip)];
        if let Some(timeout) = sp.affinity_timeout {
            frag.sets.push((
                affinity.clone(),
                Set {
                    kind: SetKind::Set,
                    decl: format!("type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ;"),
                    elements: BTreeMap::new(),
                    dynamic: true,
                },
            ));
            rules.push(format!("update @{affinity} {{ ip saddr }}"));
        }
        rules.push(format!("meta l4proto {proto} dnat to {}", ep.addr()));
        frag.chains.push((ep_chain, chain(rules)));
    }
    f
}

/// The load-balancing rules of policy chain `chain` over `endpoints`: the
/// affinity checks, then `numgen random mod N vmap @MAP` with a named map
/// (called like the chain) from 0..N to the endpoint chains. A named map
/// rather than an inline anonymous one: the kernel walks the whole pending
/// transaction each time a rule binds an anonymous set, which makes a full
/// sync with thousands of services quadratic; a named map is also updated
/// with its elements alone.
fn balance_rules(
    frag: &mut Fragment,
    ep_names: &EndpointNames,
    chain: &str,
    sp: &ServicePort,
    endpoints: &[Endpoint],
) -> Vec<String> {
    let mut rules = Vec::new();
    if sp.affinity_timeout.is_some() {
        for ep in endpoints {
            let (ep_chain, affinity) = names_of(ep_names, sp, ep);
            rules.push(format!("ip saddr @{affinity} goto {ep_chain}"));
        }
    }
    if !endpoints.is_empty() {
        let mut map = Set {
            kind: SetKind::Map,
            decl: BALANCE_MAP_DECL.to_string(),
            elements: BTreeMap::new(),
            dynamic: false,
        };
        for (i, ep) in endpoints.iter().enumerate() {
            map.elements.insert(
                i.to_string(),
                Some(format!("goto {}", names_of(ep_names, sp, ep).0)),
            );
        }
        frag.sets.push((chain.to_string(), map));
        rules.push(format!(
            "numgen random mod {} vmap @{chain}",
            endpoints.len()
        ));
    }
    rules
}

/// The declaration of the load-balancing maps (the key's type is that of
/// `numgen`, whatever the modulus).
pub const BALANCE_MAP_DECL: &str = "typeof numgen random mod 1 : verdict ;";

/// `add element` commands for all of `s`'s elements (500 a command).
fn write_elements(out: &mut String, name: &str, s: &Set) {
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

fn obj(kind: &str, name: &str) -> String {
    format!("{kind} {FAMILY} {TABLE} {name}")
}

/// The transaction that deletes the table (if present).
pub fn render_delete() -> String {
    format!("add table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n")
}

/// What a partial update changed: the previous content of every chain,
/// set and shared-map element it touched (None: absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Before {
    pub chains: BTreeMap<String, Option<Chain>>,
    pub sets: BTreeMap<String, Option<Set>>,
    pub elements: BTreeMap<(String, String), Option<String>>,
}

impl Before {
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty() && self.sets.is_empty() && self.elements.is_empty()
    }
}

/// The objects `before` records (by name, with what was applied: None for
/// "did not exist") that `now` has and that differ, with their new value.
fn changed<'a, T: PartialEq>(
    before: &'a BTreeMap<String, Option<T>>,
    now: &'a BTreeMap<String, T>,
) -> Vec<(&'a String, &'a T)> {
    before
        .iter()
        .filter_map(|(name, old)| {
            let new = now.get(name)?;
            (old.as_ref() != Some(new)).then_some((name, new))
        })
        .collect()
}

/// The objects `before` records as applied that `now` no longer has, with
/// their old value.
fn gone<'a, T>(
    before: &'a BTreeMap<String, Option<T>>,
    now: &BTreeMap<String, T>,
) -> Vec<(&'a String, &'a T)> {
    before
        .iter()
        .filter_map(|(name, old)| match old {
            Some(old) if !now.contains_key(name) => Some((name, old)),
            _ => None,
        })
        .collect()
}

impl Ruleset {
    /// Add what the service port `owner` contributes.
    pub fn add_fragment(&mut self, owner: &str, f: &Fragment) {
        for (name, c) in &f.chains {
            self.chains.insert(name.clone(), c.clone());
        }
        for (name, s) in &f.sets {
            self.sets.insert(name.clone(), s.clone());
        }
        for (map, key, value) in &f.elements {
            let k = (map.to_string(), key.clone());
            self.claims
                .entry(k.clone())
                .or_default()
                .insert(owner.to_string(), value.clone());
            self.settle(&k);
        }
    }

    /// Remove what `owner` contributed (`f`, as added before).
    pub fn remove_fragment(&mut self, owner: &str, f: &Fragment) {
        for (name, _) in &f.chains {
            self.chains.remove(name);
        }
        for (name, _) in &f.sets {
            self.sets.remove(name);
        }
        for (map, key, _) in &f.elements {
            let k = (map.to_string(), key.clone());
            if let Some(c) = self.claims.get_mut(&k) {
                c.remove(owner);
                if c.is_empty() {
                    self.claims.remove(&k);
                }
            }
            self.settle(&k);
        }
    }

    /// Put the winning claim on `(map, key)` into the map.
    fn settle(&mut self, k: &(String, String)) {
        let winner = self.claims.get(k).and_then(|c| c.values().next()).cloned();
        if let Some(set) = self.sets.get_mut(&k.0) {
            match winner {
                Some(v) => {
                    set.elements.insert(k.1.clone(), Some(v));
                }
                None => {
                    set.elements.remove(&k.1);
                }
            }
        }
    }

    /// Replace the fragments `old` with `new` (`(owner, fragment)` pairs),
    /// remembering in `before` what everything they touch looked like
    /// before (the first time it is touched).
    pub fn replace_fragments(
        &mut self,
        old: &[(String, Fragment)],
        new: &[(String, Fragment)],
        before: &mut Before,
    ) {
        for (_, f) in old.iter().chain(new.iter()) {
            for (name, _) in &f.chains {
                if !before.chains.contains_key(name) {
                    before
                        .chains
                        .insert(name.clone(), self.chains.get(name).cloned());
                }
            }
            for (name, _) in &f.sets {
                if !before.sets.contains_key(name) {
                    before
                        .sets
                        .insert(name.clone(), self.sets.get(name).cloned());
                }
            }
            for (map, key, _) in &f.elements {
                let k = (map.to_string(), key.clone());
                if let std::collections::btree_map::Entry::Vacant(e) = before.elements.entry(k) {
                    e.insert(
                        self.sets
                            .get(*map)
                            .and_then(|s| s.elements.get(key).cloned().flatten()),
                    );
                }
            }
        }
        for (owner, f) in old {
            self.remove_fragment(owner, f);
        }
        for (owner, f) in new {
            self.add_fragment(owner, f);
        }
    }

    /// The partial transaction taking the kernel from `before` (applied
    /// last time, for the names it holds; everything else unchanged) to
    /// this ruleset: only the touched chains are flushed and rewritten,
    /// only touched map elements deleted or added. Chains that went away
    /// are flushed, and deleted when `delete_stale_chains` (see
    /// [`Ruleset::render_with`]); `pending` are chains flushed by an earlier
    /// sync but not deleted yet (deleted now unless wanted again). `None`
    /// when a set's declaration changed (the caller recreates the table).
    pub fn render_delta(
        &self,
        before: &Before,
        pending: &BTreeSet<String>,
        delete_stale_chains: bool,
    ) -> Option<String> {
        let mut out = String::new();
        for (name, old) in &before.sets {
            if let (Some(old), Some(new)) = (old, self.sets.get(name)) {
                if old.decl != new.decl || old.kind != new.kind {
                    return None;
                }
            }
        }
        let changed_chains = changed(&before.chains, &self.chains);
        let gone_chains: Vec<&String> = gone(&before.chains, &self.chains)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let changed_sets = changed(&before.sets, &self.sets);
        let gone_sets = gone(&before.sets, &self.sets);
        // (key, old value, new value) of the shared-map elements that change.
        type ElementChange<'a> = (&'a (String, String), &'a Option<String>, Option<&'a String>);
        let elements: Vec<ElementChange> = before
            .elements
            .iter()
            .filter_map(|(k, old)| {
                let new = self
                    .sets
                    .get(&k.0)
                    .and_then(|s| s.elements.get(&k.1))
                    .and_then(Option::as_ref);
                (old.as_ref() != new).then_some((k, old, new))
            })
            .collect();
        let pending: Vec<&String> = pending
            .iter()
            .filter(|n| !self.chains.contains_key(*n))
            .collect();
        if changed_chains.is_empty()
            && gone_chains.is_empty()
            && changed_sets.is_empty()
            && gone_sets.is_empty()
            && elements.is_empty()
            && (pending.is_empty() || !delete_stale_chains)
        {
            return Some(String::new());
        }
        let _ = writeln!(
            out,
            "add table {FAMILY} {TABLE} {{ comment \"rules for kube-proxy\" ; }}"
        );
        // 1. New chains and sets.
        for (name, _) in &changed_chains {
            if matches!(before.chains.get(*name), Some(None)) {
                let _ = writeln!(out, "add {}", obj("chain", name));
            }
        }
        for (name, s) in &changed_sets {
            if matches!(before.sets.get(*name), Some(None)) {
                let _ = writeln!(out, "add {} {{ {} }}", obj(s.kind.as_str(), name), s.decl);
            }
        }
        // 2. Flush what is rewritten or goes away (dropping references).
        for (name, _) in &changed_chains {
            if matches!(before.chains.get(*name), Some(Some(_))) {
                let _ = writeln!(out, "flush {}", obj("chain", name));
            }
        }
        for name in &gone_chains {
            let _ = writeln!(out, "flush {}", obj("chain", name));
        }
        for (name, s) in changed_sets.iter().chain(gone_sets.iter()) {
            if !s.dynamic && matches!(before.sets.get(*name), Some(Some(_))) {
                let _ = writeln!(out, "flush {}", obj(s.kind.as_str(), name));
            }
        }
        // 3. Shared-map elements that go away or change.
        for ((map, key), old, _) in &elements {
            if old.is_some() {
                let _ = writeln!(out, "delete element {FAMILY} {TABLE} {map} {{ {key} }}");
            }
        }
        // 4. Rules and elements.
        for (name, c) in &changed_chains {
            for r in &c.rules {
                let _ = writeln!(out, "add rule {FAMILY} {TABLE} {name} {r}");
            }
        }
        for (name, s) in &changed_sets {
            if !s.dynamic && !s.elements.is_empty() {
                write_elements(&mut out, name, s);
            }
        }
        for ((map, key), _, new) in &elements {
            if let Some(v) = new {
                let _ = writeln!(out, "add element {FAMILY} {TABLE} {map} {{ {key} : {v} }}");
            }
        }
        // 5. Delete what is no longer wanted.
        for (name, s) in &gone_sets {
            let _ = writeln!(out, "delete {}", obj(s.kind.as_str(), name));
        }
        if delete_stale_chains {
            for name in gone_chains.iter().chain(pending.iter()) {
                let _ = writeln!(out, "delete {}", obj("chain", name));
            }
        }
        Some(out)
    }

    /// The chains [`Ruleset::render_delta`] flushes because they went away.
    pub fn gone_chains(&self, before: &Before) -> BTreeSet<String> {
        gone(&before.chains, &self.chains)
            .into_iter()
            .map(|(name, _)| name.clone())
            .collect()
    }

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
        // 1. Chains and sets that must exist (adding an existing one is a
        //    no-op, but costs the kernel a transaction entry: regular chains
        //    the kernel holds are only flushed).
        for (name, c) in &self.chains {
            if chain_changed(name, c) && (c.base.is_some() || !existing.chains.contains(name)) {
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
        // Sets going away too: their elements may point at stale chains.
        for (name, kind) in &existing.sets {
            if !self.sets.contains_key(name) {
                let _ = writeln!(out, "flush {}", obj(kind.as_str(), name));
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
            write_elements(&mut out, name, s);
        }
        // 4. Delete what is no longer wanted (sets first: their rules are
        //    flushed, and their elements may reference stale chains).
        for (name, kind) in &existing.sets {
            if !self.sets.contains_key(name) {
                let _ = writeln!(out, "delete {}", obj(kind.as_str(), name));
            }
        }
        if delete_stale_chains {
            for name in &stale_chains {
                let _ = writeln!(out, "delete {}", obj("chain", name));
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
        assert_eq!(rules[1], format!("numgen random mod 2 vmap @{svc_chain}"));
        // The load-balancing map is named like the chain.
        let lb = &rs.sets[&svc_chain];
        assert_eq!(lb.decl, BALANCE_MAP_DECL);
        assert_eq!(
            lb.elements["0"].as_deref(),
            Some(format!("goto {e0}").as_str())
        );
        assert_eq!(
            lb.elements["1"].as_deref(),
            Some(format!("goto {e1}").as_str())
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
        let lmap = &rs.sets[&format!("local-{base}")];
        assert_eq!(
            lmap.elements.values().cloned().collect::<Vec<_>>(),
            vec![Some(format!("goto {}", endpoint_chain_name(&s, &local)))]
        );
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
        // Same number of endpoints: the service chain stays, its map changes.
        assert!(
            !tx.contains(&format!("flush chain ip kube-proxy {c1}\n")),
            "{tx}"
        );
        assert!(
            tx.contains(&format!("flush map ip kube-proxy {c1}\n")),
            "{tx}"
        );
        assert!(
            tx.contains(&format!(
                "add element ip kube-proxy {c1} {{ 0 : goto {new_ep} }}\n"
            )),
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

    fn frags(services: &[ServiceEndpoints]) -> Vec<(String, Fragment)> {
        services
            .iter()
            .map(|se| (fragment_owner(&se.service), service_fragment(&cfg(), se)))
            .collect()
    }

    fn many(n: u8) -> Vec<ServiceEndpoints> {
        (0..n)
            .map(|i| {
                let mut s = sp("ns", &format!("s{i}"), &format!("10.96.0.{}", i + 1), 80);
                s.node_port = Some(30000 + u16::from(i));
                ServiceEndpoints {
                    service: s,
                    endpoints: (1..=3)
                        .map(|k| ep(&format!("10.244.{i}.{k}"), 8080))
                        .collect(),
                }
            })
            .collect()
    }

    #[test]
    fn delta_after_one_endpoint_change() {
        let old = many(5);
        let mut rs = build(&cfg(), &old);
        let mut new = old.clone();
        new[2].endpoints[1] = ep("10.244.2.9", 8080);
        let mut before = Before::default();
        rs.replace_fragments(&frags(&old[2..3]), &frags(&new[2..3]), &mut before);
        // The same as building from scratch.
        assert_eq!(rs, build(&cfg(), &new));
        let tx = rs.render_delta(&before, &BTreeSet::new(), true).unwrap();
        let s2 = &new[2].service;
        let c2 = service_chain_name(s2);
        let gone = endpoint_chain_name(s2, &ep("10.244.2.2", 8080));
        let added = endpoint_chain_name(s2, &ep("10.244.2.9", 8080));
        let want = [
            "add table ip kube-proxy { comment \"rules for kube-proxy\" ; }".to_string(),
            format!("add chain ip kube-proxy {added}"),
            format!("flush chain ip kube-proxy {gone}"),
            format!("flush map ip kube-proxy {c2}"),
            format!("add rule ip kube-proxy {added} ip saddr 10.244.2.9 jump mark-for-masquerade"),
            format!("add rule ip kube-proxy {added} meta l4proto tcp dnat to 10.244.2.9:8080"),
            format!(
                "add element ip kube-proxy {c2} {{ 0 : goto {}, 1 : goto {added}, 2 : goto {} }}",
                endpoint_chain_name(s2, &ep("10.244.2.1", 8080)),
                endpoint_chain_name(s2, &ep("10.244.2.3", 8080)),
            ),
            format!("delete chain ip kube-proxy {gone}"),
        ];
        assert_eq!(tx.lines().collect::<Vec<_>>(), want, "{tx}");
        // Nothing of the other services, nor of the shared maps.
        for other in [&new[0], &new[1], &new[3], &new[4]] {
            assert!(!tx.contains(&format!("/{}/", other.service.name)), "{tx}");
        }
        assert!(
            !tx.contains("service-ips") && !tx.contains("nodeports"),
            "{tx}"
        );
        // Nothing changed: nothing to send.
        let mut before = Before::default();
        rs.replace_fragments(&frags(&new[1..2]), &frags(&new[1..2]), &mut before);
        assert_eq!(
            rs.render_delta(&before, &BTreeSet::new(), true).unwrap(),
            ""
        );
    }

    #[test]
    fn delta_removes_services_and_stale_chains() {
        let old = many(3);
        let mut rs = build(&cfg(), &old);
        let applied = rs.clone();
        let mut before = Before::default();
        rs.replace_fragments(&frags(&old[1..2]), &[], &mut before);
        assert_eq!(rs, build(&cfg(), &[old[0].clone(), old[2].clone()]));
        let s1 = &old[1].service;
        let stale: BTreeSet<String> = applied
            .chains
            .keys()
            .filter(|c| c.contains("/s1/"))
            .cloned()
            .collect();
        assert_eq!(stale.len(), 5, "service, external and 3 endpoint chains");
        assert_eq!(rs.gone_chains(&before), stale);
        // Kernels before 6.2: chains flushed, their deletion left for later.
        let tx = rs.render_delta(&before, &BTreeSet::new(), false).unwrap();
        for c in &stale {
            assert!(
                tx.contains(&format!("flush chain ip kube-proxy {c}\n")),
                "{tx}"
            );
        }
        assert!(!tx.contains("delete chain"), "{tx}");
        assert!(
            tx.contains("delete element ip kube-proxy service-ips { 10.96.0.2 . tcp . 80 }\n"),
            "{tx}"
        );
        assert!(
            tx.contains("delete element ip kube-proxy service-nodeports { tcp . 30001 }\n"),
            "{tx}"
        );
        let c1 = service_chain_name(s1);
        assert!(
            tx.contains(&format!("flush map ip kube-proxy {c1}\n")),
            "{tx}"
        );
        assert!(
            tx.contains(&format!("delete map ip kube-proxy {c1}\n")),
            "{tx}"
        );
        // The next sync, even without changes, deletes them.
        let tx = rs.render_delta(&Before::default(), &stale, true).unwrap();
        let want: Vec<String> = std::iter::once(
            "add table ip kube-proxy { comment \"rules for kube-proxy\" ; }".to_string(),
        )
        .chain(
            stale
                .iter()
                .map(|c| format!("delete chain ip kube-proxy {c}")),
        )
        .collect();
        assert_eq!(tx.lines().collect::<Vec<_>>(), want);
        // Unless the service came back meanwhile.
        let mut before = Before::default();
        rs.replace_fragments(&[], &frags(&old[1..2]), &mut before);
        let tx = rs.render_delta(&before, &stale, true).unwrap();
        assert!(!tx.contains("delete chain"), "{tx}");
        assert!(
            tx.contains(&format!("add rule ip kube-proxy {c1} ")),
            "{tx}"
        );
    }

    #[test]
    fn delta_shared_element_claims() {
        // Two services claim the same external IP and port: the first wins;
        // when it goes, the other's element replaces it.
        let mut a = sp("ns", "a", "10.96.0.1", 80);
        a.external_ips = vec!["192.0.2.1".parse().unwrap()];
        let mut b = sp("ns", "b", "10.96.0.2", 80);
        b.external_ips = vec!["192.0.2.1".parse().unwrap()];
        let both = vec![
            ServiceEndpoints {
                service: a.clone(),
                endpoints: vec![ep("10.244.0.1", 80)],
            },
            ServiceEndpoints {
                service: b.clone(),
                endpoints: vec![ep("10.244.0.2", 80)],
            },
        ];
        let mut rs = build(&cfg(), &both);
        let ext_a = format!("external-{}", &service_chain_name(&a)["service-".len()..]);
        let ext_b = format!("external-{}", &service_chain_name(&b)["service-".len()..]);
        assert_eq!(
            elem(&rs, SERVICE_IPS_MAP, "192.0.2.1 . tcp . 80"),
            Some(format!("goto {ext_a}").as_str())
        );
        let mut before = Before::default();
        rs.replace_fragments(&frags(&both[..1]), &[], &mut before);
        assert_eq!(rs, build(&cfg(), &both[1..]));
        let tx = rs.render_delta(&before, &BTreeSet::new(), true).unwrap();
        let del = tx
            .find("delete element ip kube-proxy service-ips { 192.0.2.1 . tcp . 80 }\n")
            .expect(&tx);
        let add = tx
            .find(&format!(
                "add element ip kube-proxy service-ips {{ 192.0.2.1 . tcp . 80 : goto {ext_b} }}\n"
            ))
            .expect(&tx);
        assert!(del < add, "{tx}");
    }

    /// Random changes applied fragment by fragment give the ruleset a
    /// build from scratch gives, and each delta is exactly the difference.
    #[test]
    fn delta_matches_rebuild() {
        let mut seed = 0x2545f4914f6cdd1du64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut model: Vec<Option<ServiceEndpoints>> = vec![None; 12];
        let mut rs = build(&cfg(), &[]);
        for _ in 0..300 {
            let i = rnd(12) as usize;
            let old = model[i].clone();
            let new = if rnd(5) == 0 {
                None
            } else {
                let mut s = sp("ns", &format!("s{i}"), &format!("10.96.0.{}", i + 1), 80);
                if rnd(2) == 0 {
                    s.node_port = Some(30000 + i as u16);
                }
                if rnd(3) == 0 {
                    // Shared external IPs: claims conflict.
                    s.external_ips = vec![format!("192.0.2.{}", rnd(3)).parse().unwrap()];
                }
                if rnd(4) == 0 {
                    s.affinity_timeout = Some(60);
                }
                if rnd(4) == 0 {
                    s.external_local = true;
                }
                let endpoints = (0..rnd(5))
                    .map(|k| {
                        let mut e = ep(&format!("10.244.{i}.{}", rnd(6) + k * 10), 8080);
                        e.local = rnd(2) == 0;
                        e.ready = rnd(5) != 0;
                        e
                    })
                    .collect();
                Some(ServiceEndpoints {
                    service: s,
                    endpoints,
                })
            };
            let applied = rs.clone();
            let mut before = Before::default();
            rs.replace_fragments(&frags(old.as_slice()), &frags(new.as_slice()), &mut before);
            model[i] = new;
            let all: Vec<ServiceEndpoints> = model.iter().flatten().cloned().collect();
            assert_eq!(rs, build(&cfg(), &all));
            let Some(tx) = rs.render_delta(&before, &BTreeSet::new(), true) else {
                // An affinity timeout change: the table is recreated.
                continue;
            };
            // What the delta touches is what the generic diff touches.
            let generic = rs.render(Some(&applied), &Existing::of(&applied)).unwrap();
            // (The generic diff rewrites shared maps whole.)
            let shared = [
                SERVICE_IPS_MAP,
                SERVICE_NODEPORTS_MAP,
                NO_ENDPOINT_SERVICES_MAP,
                NO_ENDPOINT_NODEPORTS_MAP,
                FIREWALL_IPS_MAP,
            ];
            let is_shared = |l: &str| {
                l.split_whitespace()
                    .nth(4)
                    .is_some_and(|name| shared.contains(&name))
            };
            let lines = |t: &str| {
                let mut v: Vec<String> = t
                    .lines()
                    .filter(|l| !l.starts_with("add table") && !is_shared(l))
                    // (The generic diff also flushes affinity sets it deletes.)
                    .filter(|l| !l.starts_with("flush set ip kube-proxy affinity-"))
                    .map(String::from)
                    .collect();
                v.sort();
                v
            };
            assert_eq!(lines(&tx), lines(&generic), "{tx}\n---\n{generic}");
            // Shared maps: exactly the elements that differ.
            let mut want = BTreeSet::new();
            for m in shared {
                let (old, new) = (&applied.sets[m].elements, &rs.sets[m].elements);
                for (k, v) in old {
                    if new.get(k) != Some(v) {
                        want.insert(format!("delete element ip kube-proxy {m} {{ {k} }}"));
                    }
                }
                for (k, v) in new {
                    if old.get(k) != Some(v) {
                        let v = v.as_deref().unwrap();
                        want.insert(format!("add element ip kube-proxy {m} {{ {k} : {v} }}"));
                    }
                }
            }
            let got: BTreeSet<String> = tx
                .lines()
                .filter(|l| is_shared(l))
                .map(String::from)
                .collect();
            assert_eq!(got, want, "{tx}");
        }
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
        // `nft -t list chains ip` and friends: every table of the family.
        let text = "table ip filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\ntable ip kube-proxy {\n\tchain services {\n\t}\n}\ntable ip other {\n\tmap m {\n\t\ttype ipv4_addr : verdict\n\t}\n}\ntable ip kube-proxy {\n\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t}\n}\n";
        let e = Existing::parse_listing(text);
        assert_eq!(
            e.chains.iter().cloned().collect::<Vec<_>>(),
            vec!["services".to_string()]
        );
        assert_eq!(
            e.sets.into_iter().collect::<Vec<_>>(),
            vec![("service-ips".to_string(), SetKind::Map)]
        );
    }
}
