//! The cluster zone: a snapshot of Services and EndpointSlices turned into
//! DNS answers, following the Kubernetes DNS-based service discovery
//! specification (schema 1.1.0) as CoreDNS's kubernetes plugin serves it
//! (`pods insecure`, reverse lookups that fall through to the upstream
//! resolvers when the address is unknown).
//!
//! Everything here is pure: [`Snapshot::build`] indexes the objects and
//! [`Snapshot::lookup`] answers one question.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The DNS schema version this server implements (`dns-version.<zone>`).
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The label EndpointSlices carry to name their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The legacy annotation that publishes not-ready endpoints.
const TOLERATE_UNREADY: &str = "service.alpha.kubernetes.io/tolerate-unready-endpoints";

/// A Service port (or an EndpointSlice port for headless Services).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortEntry {
    /// Lowercased port name ("" when unnamed).
    pub name: String,
    /// Lowercased protocol: tcp, udp or sctp.
    pub proto: String,
    pub port: u16,
}

/// One published endpoint address of a headless Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointEntry {
    pub ip: IpAddr,
    /// The endpoint's hostname, or its dashed address when it has none.
    pub host: String,
    /// The ports of the EndpointSlice the address came from.
    pub ports: Vec<PortEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// A Service with cluster IPs (one per family).
    ClusterIp(Vec<IpAddr>),
    /// clusterIP: None.
    Headless,
    /// type: ExternalName.
    ExternalName(Name),
}

#[derive(Debug, Clone)]
pub struct ServiceEntry {
    pub name: String,
    pub namespace: String,
    pub kind: ServiceKind,
    pub ports: Vec<PortEntry>,
    /// Published endpoints (headless Services only).
    pub endpoints: Vec<EndpointEntry>,
}

/// What to do with a question.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// We are authoritative (or know the reverse address): here is the answer.
    Answer(Answer),
    /// Not ours: ask the upstream resolvers.
    Forward,
}

/// An authoritative answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// The CNAME target (ExternalName Services) the caller should resolve
    /// further for the same type.
    pub chase: Option<Name>,
}

impl Answer {
    fn new(rcode: ResponseCode) -> Self {
        Answer {
            rcode,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            chase: None,
        }
    }
}

/// An indexed, immutable view of the cluster's Services and endpoints.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The cluster domain, lowercase, without the trailing dot.
    zone: String,
    zone_labels: Vec<String>,
    zone_name: Name,
    ttl: u32,
    serial: u32,
    /// namespace → name → service.
    services: HashMap<String, HashMap<String, ServiceEntry>>,
    /// address → PTR targets.
    reverse: HashMap<IpAddr, Vec<Name>>,
    /// The cluster IPs of kube-system/kube-dns (for `ns.dns.<zone>`).
    dns_ips: Vec<IpAddr>,
}

/// Parse a dashed address (`10-1-2-3`, `fd00--1`) as CoreDNS's insecure pod
/// records do.
pub fn parse_dashed_ip(label: &str) -> Option<IpAddr> {
    if label.is_empty() || label.len() > 63 {
        return None;
    }
    if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    if label.contains('.') {
        return None;
    }
    label
        .replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// The dashed form of an address, the hostname of an endpoint without one.
pub fn dashed_ip(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The reverse-lookup name of an address, when `labels` (lowercase, without
/// the root) is one under in-addr.arpa or ip6.arpa.
pub fn parse_reverse(labels: &[&str]) -> Option<IpAddr> {
    match labels {
        [d, c, b, a, "in-addr", "arpa"] => {
            let mut octets = [0u8; 4];
            for (o, l) in octets.iter_mut().zip([a, b, c, d]) {
                if l.is_empty() || l.len() > 3 || (l.len() > 1 && l.starts_with('0')) {
                    return None;
                }
                *o = l.parse().ok()?;
            }
            Some(IpAddr::V4(Ipv4Addr::from(octets)))
        }
        [nibbles @ .., "ip6", "arpa"] if nibbles.len() == 32 => {
            let mut v: u128 = 0;
            for l in nibbles.iter().rev() {
                if l.len() != 1 {
                    return None;
                }
                let d = u128::from(l.chars().next()?.to_digit(16)?);
                v = (v << 4) | d;
            }
            Some(IpAddr::V6(Ipv6Addr::from(v)))
        }
        _ => None,
    }
}

fn name(s: &str) -> Option<Name> {
    let fq = if s.ends_with('.') {
        s.to_string()
    } else {
        format!("{s}.")
    };
    Name::from_ascii(fq).ok()
}

fn ip_record(owner: &Name, ttl: u32, ip: IpAddr) -> Record {
    let data = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner.clone(), ttl, data)
}

fn family_matches(qtype: RecordType, ip: &IpAddr) -> bool {
    matches!(
        (qtype, ip),
        (RecordType::A, IpAddr::V4(_)) | (RecordType::AAAA, IpAddr::V6(_)) | (RecordType::ANY, _)
    )
}

fn port_entry(name: Option<&str>, proto: Option<&str>, port: Option<i32>) -> Option<PortEntry> {
    let port = u16::try_from(port?).ok()?;
    Some(PortEntry {
        name: name.unwrap_or_default().to_ascii_lowercase(),
        proto: proto.unwrap_or("TCP").to_ascii_lowercase(),
        port,
    })
}

impl Snapshot {
    /// Index `services` and `slices` for the cluster domain `zone`.
    pub fn build(
        zone: &str,
        ttl: u32,
        serial: u32,
        services: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
    ) -> Snapshot {
        let zone = zone.trim_end_matches('.').to_ascii_lowercase();
        let zone_labels: Vec<String> = zone
            .split('.')
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        let zone_name = name(&zone).unwrap_or_else(Name::root);

        // Published endpoints per (namespace, service).
        let mut eps: HashMap<(String, String), Vec<(EndpointEntry, bool)>> = HashMap::new();
        for slice in slices {
            let meta = &slice.metadata;
            let (Some(ns), Some(svc)) = (
                meta.namespace.as_deref(),
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    .map(String::as_str),
            ) else {
                continue;
            };
            let ports: Vec<PortEntry> = slice
                .ports
                .iter()
                .flatten()
                .filter_map(|p| port_entry(p.name.as_deref(), p.protocol.as_deref(), p.port))
                .collect();
            let list = eps.entry((ns.to_string(), svc.to_string())).or_default();
            for ep in &slice.endpoints {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                for addr in &ep.addresses {
                    let Ok(ip) = addr.parse::<IpAddr>() else {
                        continue; // FQDN endpoints have no address records
                    };
                    let host = ep
                        .hostname
                        .as_deref()
                        .filter(|h| !h.is_empty())
                        .map(str::to_ascii_lowercase)
                        .unwrap_or_else(|| dashed_ip(&ip));
                    list.push((
                        EndpointEntry {
                            ip,
                            host,
                            ports: ports.clone(),
                        },
                        ready,
                    ));
                }
            }
        }

        let mut snap = Snapshot {
            zone,
            zone_labels,
            zone_name,
            ttl,
            serial,
            services: HashMap::new(),
            reverse: HashMap::new(),
            dns_ips: Vec::new(),
        };

        for svc in services {
            let (Some(ns), Some(svc_name)) = (
                svc.metadata.namespace.as_deref(),
                svc.metadata.name.as_deref(),
            ) else {
                continue;
            };
            let ns = ns.to_ascii_lowercase();
            let svc_name = svc_name.to_ascii_lowercase();
            let Some(spec) = svc.spec.as_ref() else {
                continue;
            };
            let ports: Vec<PortEntry> = spec
                .ports
                .iter()
                .flatten()
                .filter_map(|p| port_entry(p.name.as_deref(), p.protocol.as_deref(), Some(p.port)))
                .collect();
            let fqdn = format!("{svc_name}.{ns}.svc.{}", snap.zone);
            let kind = if spec.type_.as_deref() == Some("ExternalName") {
                match spec
                    .external_name
                    .as_deref()
                    .map(str::to_ascii_lowercase)
                    .and_then(|e| name(&e))
                {
                    Some(target) => ServiceKind::ExternalName(target),
                    None => continue,
                }
            } else if spec.cluster_ip.as_deref() == Some("None") {
                ServiceKind::Headless
            } else {
                let mut ips: Vec<IpAddr> = spec
                    .cluster_ips
                    .iter()
                    .flatten()
                    .chain(spec.cluster_ip.iter())
                    .filter_map(|s| s.parse().ok())
                    .collect();
                let mut seen = Vec::new();
                ips.retain(|ip| {
                    if seen.contains(ip) {
                        false
                    } else {
                        seen.push(*ip);
                        true
                    }
                });
                ServiceKind::ClusterIp(ips)
            };
            let mut endpoints = Vec::new();
            if kind == ServiceKind::Headless {
                let publish_all = spec.publish_not_ready_addresses == Some(true)
                    || svc
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(TOLERATE_UNREADY))
                        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                if let Some(list) = eps.get(&(ns.clone(), svc_name.clone())) {
                    for (ep, ready) in list {
                        if !(*ready || publish_all) {
                            continue;
                        }
                        if endpoints
                            .iter()
                            .any(|e: &EndpointEntry| e.ip == ep.ip && e.host == ep.host)
                        {
                            continue;
                        }
                        endpoints.push(ep.clone());
                    }
                }
                for ep in &endpoints {
                    if let Some(target) = name(&format!("{}.{fqdn}", ep.host)) {
                        snap.reverse.entry(ep.ip).or_default().push(target);
                    }
                }
            }
            if let ServiceKind::ClusterIp(ips) = &kind {
                if let Some(target) = name(&fqdn) {
                    for ip in ips {
                        snap.reverse.entry(*ip).or_default().push(target.clone());
                    }
                }
                if ns == "kube-system" && svc_name == "kube-dns" {
                    snap.dns_ips = ips.clone();
                }
            }
            snap.services.entry(ns.clone()).or_default().insert(
                svc_name.clone(),
                ServiceEntry {
                    name: svc_name,
                    namespace: ns,
                    kind,
                    ports,
                    endpoints,
                },
            );
        }
        for targets in snap.reverse.values_mut() {
            targets.sort_by_key(|n| n.to_ascii());
            targets.dedup();
        }
        snap
    }

    /// An empty zone.
    pub fn empty(zone: &str, ttl: u32) -> Snapshot {
        Snapshot::build(zone, ttl, 0, &[], &[])
    }

    /// The cluster domain (lowercase, no trailing dot).
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The zone's SOA record.
    pub fn soa(&self) -> Record {
        let mname = name(&format!("ns.dns.{}", self.zone)).unwrap_or_else(Name::root);
        let rname = name(&format!("hostmaster.{}", self.zone)).unwrap_or_else(Name::root);
        Record::from_rdata(
            self.zone_name.clone(),
            self.ttl,
            RData::SOA(SOA::new(
                mname,
                rname,
                self.serial,
                7200,
                1800,
                86400,
                self.ttl,
            )),
        )
    }

    /// Whether `qname` is the cluster domain or below it.
    pub fn in_zone(&self, qname: &Name) -> bool {
        self.relative_labels(qname).is_some()
    }

    /// The lowercase labels of `qname` left of the cluster domain, or None
    /// when it is outside.
    fn relative_labels(&self, qname: &Name) -> Option<Vec<String>> {
        let labels: Vec<String> = qname
            .iter()
            .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
            .collect();
        if labels.len() < self.zone_labels.len() {
            return None;
        }
        let split = labels.len() - self.zone_labels.len();
        if labels[split..] != self.zone_labels[..] {
            return None;
        }
        Some(labels[..split].to_vec())
    }

    fn nxdomain(&self) -> Answer {
        let mut a = Answer::new(ResponseCode::NXDomain);
        a.authorities.push(self.soa());
        a
    }

    fn nodata(&self) -> Answer {
        let mut a = Answer::new(ResponseCode::NoError);
        a.authorities.push(self.soa());
        a
    }

    fn with_answers(&self, answers: Vec<Record>) -> Answer {
        if answers.is_empty() {
            return self.nodata();
        }
        let mut a = Answer::new(ResponseCode::NoError);
        a.answers = answers;
        a
    }

    fn service(&self, ns: &str, svc: &str) -> Option<&ServiceEntry> {
        self.services.get(ns).and_then(|m| m.get(svc))
    }

    fn fqdn(&self, svc: &ServiceEntry) -> Option<Name> {
        name(&format!("{}.{}.svc.{}", svc.name, svc.namespace, self.zone))
    }

    /// Answer one question. `qname` is used as given for the owner of the
    /// answers (so 0x20 case randomisation survives).
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Lookup {
        match self.relative_labels(qname) {
            Some(rel) => {
                let rel: Vec<&str> = rel.iter().map(String::as_str).collect();
                Lookup::Answer(self.lookup_zone(qname, &rel, qtype))
            }
            None => self.lookup_reverse(qname, qtype),
        }
    }

    fn lookup_reverse(&self, qname: &Name, qtype: RecordType) -> Lookup {
        if qtype != RecordType::PTR {
            return Lookup::Forward;
        }
        let labels: Vec<String> = qname
            .iter()
            .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
            .collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let Some(ip) = parse_reverse(&labels) else {
            return Lookup::Forward;
        };
        match self.reverse.get(&ip) {
            Some(targets) if !targets.is_empty() => {
                let mut a = Answer::new(ResponseCode::NoError);
                a.answers = targets
                    .iter()
                    .map(|t| {
                        Record::from_rdata(qname.clone(), self.ttl, RData::PTR(PTR(t.clone())))
                    })
                    .collect();
                Lookup::Answer(a)
            }
            _ => Lookup::Forward,
        }
    }

    fn lookup_zone(&self, qname: &Name, rel: &[&str], qtype: RecordType) -> Answer {
        let ttl = self.ttl;
        match rel {
            [] => match qtype {
                RecordType::SOA => self.with_answers(vec![self.soa()]),
                RecordType::NS | RecordType::ANY => {
                    let Some(ns) = name(&format!("ns.dns.{}", self.zone)) else {
                        return self.nodata();
                    };
                    let mut a = self.with_answers(vec![Record::from_rdata(
                        qname.clone(),
                        ttl,
                        RData::NS(NS(ns.clone())),
                    )]);
                    if qtype == RecordType::ANY {
                        a.answers.push(self.soa());
                    }
                    a.additionals = self
                        .dns_ips
                        .iter()
                        .map(|ip| ip_record(&ns, ttl, *ip))
                        .collect();
                    a
                }
                _ => self.nodata(),
            },
            ["dns-version"] => match qtype {
                RecordType::TXT | RecordType::ANY => self.with_answers(vec![Record::from_rdata(
                    qname.clone(),
                    ttl,
                    RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
                )]),
                _ => self.nodata(),
            },
            ["svc"] | ["pod"] | ["dns"] => self.nodata(),
            ["ns", "dns"] => {
                if self.dns_ips.is_empty() {
                    return self.nxdomain();
                }
                self.with_answers(
                    self.dns_ips
                        .iter()
                        .filter(|ip| family_matches(qtype, ip))
                        .map(|ip| ip_record(qname, ttl, *ip))
                        .collect(),
                )
            }
            [ns, "svc"] => {
                if self.services.get(*ns).is_some_and(|m| !m.is_empty()) {
                    self.nodata()
                } else {
                    self.nxdomain()
                }
            }
            [svc, ns, "svc"] => match self.service(ns, svc) {
                Some(s) => self.service_records(qname, s, qtype),
                None => self.nxdomain(),
            },
            [label, svc, ns, "svc"] => match self.service(ns, svc) {
                None => self.nxdomain(),
                Some(s) if label.starts_with('_') => {
                    // `_tcp.<svc>...`: an empty non-terminal when a named
                    // port uses that protocol.
                    let proto = &label[1..];
                    if self
                        .srv_ports(s)
                        .iter()
                        .any(|p| !p.name.is_empty() && p.proto == proto)
                    {
                        self.nodata()
                    } else {
                        self.nxdomain()
                    }
                }
                Some(s) => {
                    let eps: Vec<&EndpointEntry> =
                        s.endpoints.iter().filter(|e| e.host == *label).collect();
                    if eps.is_empty() {
                        return self.nxdomain();
                    }
                    self.with_answers(
                        eps.iter()
                            .filter(|e| family_matches(qtype, &e.ip))
                            .map(|e| ip_record(qname, ttl, e.ip))
                            .collect(),
                    )
                }
            },
            [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                match self.service(ns, svc) {
                    Some(s) => self.port_records(qname, s, &port[1..], &proto[1..], qtype),
                    None => self.nxdomain(),
                }
            }
            [_ns, "pod"] => self.nodata(),
            [ip, _ns, "pod"] => match parse_dashed_ip(ip) {
                Some(ip) => self.with_answers(if family_matches(qtype, &ip) {
                    vec![ip_record(qname, ttl, ip)]
                } else {
                    vec![]
                }),
                None => self.nxdomain(),
            },
            _ => self.nxdomain(),
        }
    }

    /// The ports SRV records are built from: the Service's, or for headless
    /// Services the endpoints' (their target ports).
    fn srv_ports(&self, s: &ServiceEntry) -> Vec<PortEntry> {
        match s.kind {
            ServiceKind::Headless => {
                let mut out: Vec<PortEntry> = Vec::new();
                for p in s.endpoints.iter().flat_map(|e| e.ports.iter()) {
                    if !out.contains(p) {
                        out.push(p.clone());
                    }
                }
                out
            }
            _ => s.ports.clone(),
        }
    }

    fn service_records(&self, qname: &Name, s: &ServiceEntry, qtype: RecordType) -> Answer {
        let ttl = self.ttl;
        match &s.kind {
            ServiceKind::ExternalName(target) => {
                let mut a = self.with_answers(vec![Record::from_rdata(
                    qname.clone(),
                    ttl,
                    RData::CNAME(CNAME(target.clone())),
                )]);
                if qtype != RecordType::CNAME {
                    a.chase = Some(target.clone());
                }
                a
            }
            ServiceKind::ClusterIp(ips) => match qtype {
                RecordType::SRV => {
                    let Some(target) = self.fqdn(s) else {
                        return self.nodata();
                    };
                    let weight = srv_weight(s.ports.len());
                    let mut a = self.with_answers(
                        s.ports
                            .iter()
                            .map(|p| {
                                Record::from_rdata(
                                    qname.clone(),
                                    ttl,
                                    RData::SRV(SRV::new(0, weight, p.port, target.clone())),
                                )
                            })
                            .collect(),
                    );
                    if !a.answers.is_empty() {
                        a.additionals = ips.iter().map(|ip| ip_record(&target, ttl, *ip)).collect();
                    }
                    a
                }
                _ => self.with_answers(
                    ips.iter()
                        .filter(|ip| family_matches(qtype, ip))
                        .map(|ip| ip_record(qname, ttl, *ip))
                        .collect(),
                ),
            },
            ServiceKind::Headless => {
                if s.endpoints.is_empty() {
                    // The specification: no ready endpoints → NXDOMAIN.
                    return self.nxdomain();
                }
                match qtype {
                    RecordType::SRV => {
                        let mut records = Vec::new();
                        let mut additionals = Vec::new();
                        let n = s.endpoints.iter().map(|e| e.ports.len()).sum();
                        let weight = srv_weight(n);
                        for ep in &s.endpoints {
                            let Some(target) = self
                                .fqdn(s)
                                .and_then(|f| name(&format!("{}.{}", ep.host, f)))
                            else {
                                continue;
                            };
                            for p in &ep.ports {
                                records.push(Record::from_rdata(
                                    qname.clone(),
                                    ttl,
                                    RData::SRV(SRV::new(0, weight, p.port, target.clone())),
                                ));
                            }
                            if !ep.ports.is_empty() {
                                additionals.push(ip_record(&target, ttl, ep.ip));
                            }
                        }
                        let mut a = self.with_answers(records);
                        a.additionals = additionals;
                        a
                    }
                    _ => self.with_answers(
                        s.endpoints
                            .iter()
                            .filter(|e| family_matches(qtype, &e.ip))
                            .map(|e| ip_record(qname, ttl, e.ip))
                            .collect(),
                    ),
                }
            }
        }
    }

    fn port_records(
        &self,
        qname: &Name,
        s: &ServiceEntry,
        port: &str,
        proto: &str,
        qtype: RecordType,
    ) -> Answer {
        let ttl = self.ttl;
        let matches = |p: &PortEntry| !p.name.is_empty() && p.name == port && p.proto == proto;
        let Some(fqdn) = self.fqdn(s) else {
            return self.nxdomain();
        };
        match &s.kind {
            ServiceKind::ExternalName(target) => {
                // CoreDNS answers SRV for named ports of ExternalName
                // Services pointing at the external name.
                let ports: Vec<&PortEntry> = s.ports.iter().filter(|p| matches(p)).collect();
                if ports.is_empty() {
                    return self.nxdomain();
                }
                if !matches!(qtype, RecordType::SRV | RecordType::ANY) {
                    return self.nodata();
                }
                let weight = srv_weight(ports.len());
                self.with_answers(
                    ports
                        .iter()
                        .map(|p| {
                            Record::from_rdata(
                                qname.clone(),
                                ttl,
                                RData::SRV(SRV::new(0, weight, p.port, target.clone())),
                            )
                        })
                        .collect(),
                )
            }
            ServiceKind::ClusterIp(ips) => {
                let ports: Vec<&PortEntry> = s.ports.iter().filter(|p| matches(p)).collect();
                if ports.is_empty() {
                    return self.nxdomain();
                }
                if !matches!(qtype, RecordType::SRV | RecordType::ANY) {
                    return self.nodata();
                }
                let weight = srv_weight(ports.len());
                let mut a = self.with_answers(
                    ports
                        .iter()
                        .map(|p| {
                            Record::from_rdata(
                                qname.clone(),
                                ttl,
                                RData::SRV(SRV::new(0, weight, p.port, fqdn.clone())),
                            )
                        })
                        .collect(),
                );
                a.additionals = ips.iter().map(|ip| ip_record(&fqdn, ttl, *ip)).collect();
                a
            }
            ServiceKind::Headless => {
                // One SRV per endpoint (and matching endpoint port), its
                // target the endpoint's name under the Service.
                let mut targets: BTreeMap<usize, (Name, u16, IpAddr)> = BTreeMap::new();
                for (i, ep) in s.endpoints.iter().enumerate() {
                    if let Some(p) = ep.ports.iter().find(|p| matches(p)) {
                        if let Some(t) = name(&format!("{}.{}", ep.host, fqdn)) {
                            targets.insert(i, (t, p.port, ep.ip));
                        }
                    }
                }
                if targets.is_empty() {
                    return self.nxdomain();
                }
                if !matches!(qtype, RecordType::SRV | RecordType::ANY) {
                    return self.nodata();
                }
                let weight = srv_weight(targets.len());
                let mut a = Answer::new(ResponseCode::NoError);
                for (t, port, ip) in targets.into_values() {
                    a.answers.push(Record::from_rdata(
                        qname.clone(),
                        ttl,
                        RData::SRV(SRV::new(0, weight, port, t.clone())),
                    ));
                    a.additionals.push(ip_record(&t, ttl, ip));
                }
                a
            }
        }
    }
}

/// Equal weights summing to (about) 100, as CoreDNS gives records of the
/// same priority.
fn srv_weight(n: usize) -> u16 {
    if n == 0 {
        return 100;
    }
    u16::try_from((100 / n).max(1)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use kube::api::ObjectMeta;
    use std::collections::BTreeMap;

    fn meta(ns: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..Default::default()
        }
    }

    fn port(name: &str, proto: &str, port: i32) -> ServicePort {
        ServicePort {
            name: (!name.is_empty()).then(|| name.to_string()),
            protocol: Some(proto.into()),
            port,
            ..Default::default()
        }
    }

    fn cluster_ip(ns: &str, name: &str, ips: &[&str], ports: Vec<ServicePort>) -> Arc<Service> {
        Arc::new(Service {
            metadata: meta(ns, name),
            spec: Some(ServiceSpec {
                cluster_ip: ips.first().map(|s| s.to_string()),
                cluster_ips: Some(ips.iter().map(|s| s.to_string()).collect()),
                ports: Some(ports),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn headless(ns: &str, name: &str, publish: bool, ports: Vec<ServicePort>) -> Arc<Service> {
        Arc::new(Service {
            metadata: meta(ns, name),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                cluster_ips: Some(vec!["None".into()]),
                ports: Some(ports),
                publish_not_ready_addresses: Some(publish),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn external(ns: &str, name: &str, target: &str) -> Arc<Service> {
        Arc::new(Service {
            metadata: meta(ns, name),
            spec: Some(ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some(target.into()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn slice(
        ns: &str,
        svc: &str,
        family: &str,
        eps: &[(&str, Option<&str>, Option<bool>)],
        ports: &[(&str, &str, i32)],
    ) -> Arc<EndpointSlice> {
        let mut m = meta(ns, &format!("{svc}-abc"));
        m.labels = Some(BTreeMap::from([(
            SERVICE_NAME_LABEL.to_string(),
            svc.to_string(),
        )]));
        Arc::new(EndpointSlice {
            metadata: m,
            address_type: family.into(),
            endpoints: eps
                .iter()
                .map(|(ip, host, ready)| Endpoint {
                    addresses: vec![ip.to_string()],
                    hostname: host.map(String::from),
                    conditions: Some(EndpointConditions {
                        ready: *ready,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p, port)| EndpointPort {
                        name: Some(n.to_string()),
                        protocol: Some(p.to_string()),
                        port: Some(*port),
                        ..Default::default()
                    })
                    .collect(),
            ),
        })
    }

    fn snap() -> Snapshot {
        let services = vec![
            cluster_ip(
                "default",
                "web",
                &["10.96.0.20"],
                vec![port("http", "TCP", 80), port("", "UDP", 53)],
            ),
            cluster_ip("default", "dual", &["10.96.0.21", "fd00::21"], vec![]),
            cluster_ip("kube-system", "kube-dns", &["10.96.0.10"], vec![]),
            headless("default", "db", false, vec![port("pg", "TCP", 5432)]),
            headless("default", "empty", false, vec![]),
            headless("default", "all", true, vec![]),
            external("default", "ext", "www.example.com"),
            external("default", "alias", "web.default.svc.cluster.local"),
        ];
        let slices = vec![
            slice(
                "default",
                "db",
                "IPv4",
                &[
                    ("10.0.0.1", Some("db-0"), Some(true)),
                    ("10.0.0.2", None, None),
                    ("10.0.0.3", Some("db-2"), Some(false)),
                ],
                &[("pg", "TCP", 15432)],
            ),
            slice(
                "default",
                "all",
                "IPv4",
                &[("10.0.1.1", None, Some(false))],
                &[],
            ),
            slice("default", "gone", "IPv4", &[("10.0.2.1", None, None)], &[]),
        ];
        Snapshot::build("cluster.local", 5, 42, &services, &slices)
    }

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn answer(s: &Snapshot, q: &str, t: RecordType) -> Answer {
        match s.lookup(&n(q), t) {
            Lookup::Answer(a) => a,
            Lookup::Forward => panic!("{q} {t} forwarded"),
        }
    }

    fn rdata(a: &Answer) -> Vec<String> {
        let mut v: Vec<String> = a.answers.iter().map(|r| r.data.to_string()).collect();
        v.sort();
        v
    }

    fn assert_nx(a: &Answer) {
        assert_eq!(a.rcode, ResponseCode::NXDomain);
        assert!(a.answers.is_empty());
        assert_eq!(a.authorities.len(), 1);
        assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(a.authorities[0].name, n("cluster.local."));
        assert_eq!(a.authorities[0].ttl, 5);
    }

    fn assert_nodata(a: &Answer) {
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert!(a.answers.is_empty(), "{:?}", a.answers);
        assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn cluster_ip_records() {
        let s = snap();
        let a = answer(&s, "web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert_eq!(rdata(&a), vec!["10.96.0.20"]);
        assert_eq!(a.answers[0].ttl, 5);
        // Case-insensitive; the owner keeps the question's case.
        let a = answer(&s, "WEB.Default.SVC.cluster.LOCAL.", RecordType::A);
        assert_eq!(rdata(&a), vec!["10.96.0.20"]);
        assert_eq!(
            a.answers[0].name.to_ascii(),
            "WEB.Default.SVC.cluster.LOCAL."
        );
        // AAAA of an IPv4-only service: NODATA.
        assert_nodata(&answer(
            &s,
            "web.default.svc.cluster.local.",
            RecordType::AAAA,
        ));
        let a = answer(&s, "dual.default.svc.cluster.local.", RecordType::AAAA);
        assert_eq!(rdata(&a), vec!["fd00::21"]);
        let a = answer(&s, "dual.default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&a), vec!["10.96.0.21"]);
    }

    #[test]
    fn srv_records() {
        let s = snap();
        let a = answer(
            &s,
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(rdata(&a), vec!["0 100 80 web.default.svc.cluster.local."]);
        assert_eq!(a.additionals.len(), 1);
        assert_eq!(a.additionals[0].data.to_string(), "10.96.0.20");
        // Unknown port or protocol: NXDOMAIN; other types: NODATA.
        assert_nx(&answer(
            &s,
            "_http._udp.web.default.svc.cluster.local.",
            RecordType::SRV,
        ));
        assert_nx(&answer(
            &s,
            "_nope._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
        ));
        assert_nodata(&answer(
            &s,
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::A,
        ));
        assert_nodata(&answer(
            &s,
            "_tcp.web.default.svc.cluster.local.",
            RecordType::A,
        ));
        // SRV on the service name: every port.
        let a = answer(&s, "web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(a.answers.len(), 2);
        // Headless: one per ready endpoint, target the endpoint's name, the
        // endpoint port.
        let a = answer(
            &s,
            "_pg._tcp.db.default.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(
            rdata(&a),
            vec![
                "0 50 15432 10-0-0-2.db.default.svc.cluster.local.",
                "0 50 15432 db-0.db.default.svc.cluster.local.",
            ]
        );
        assert_eq!(a.additionals.len(), 2);
    }

    #[test]
    fn headless_records() {
        let s = snap();
        let a = answer(&s, "db.default.svc.cluster.local.", RecordType::A);
        // Ready (and unknown readiness) only.
        assert_eq!(rdata(&a), vec!["10.0.0.1", "10.0.0.2"]);
        let a = answer(&s, "db-0.db.default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&a), vec!["10.0.0.1"]);
        let a = answer(&s, "10-0-0-2.db.default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&a), vec!["10.0.0.2"]);
        assert_nx(&answer(
            &s,
            "db-2.db.default.svc.cluster.local.",
            RecordType::A,
        ));
        assert_nodata(&answer(
            &s,
            "db-0.db.default.svc.cluster.local.",
            RecordType::AAAA,
        ));
        // No ready endpoints: NXDOMAIN (the specification).
        assert_nx(&answer(
            &s,
            "empty.default.svc.cluster.local.",
            RecordType::A,
        ));
        // publishNotReadyAddresses publishes not-ready ones.
        let a = answer(&s, "all.default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&a), vec!["10.0.1.1"]);
    }

    #[test]
    fn external_name() {
        let s = snap();
        let a = answer(&s, "ext.default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&a), vec!["www.example.com."]);
        assert_eq!(a.answers[0].record_type(), RecordType::CNAME);
        assert_eq!(a.chase, Some(n("www.example.com.")));
        let a = answer(&s, "ext.default.svc.cluster.local.", RecordType::CNAME);
        assert_eq!(a.chase, None);
        let a = answer(&s, "alias.default.svc.cluster.local.", RecordType::A);
        assert_eq!(a.chase, Some(n("web.default.svc.cluster.local.")));
    }

    #[test]
    fn pods() {
        let s = snap();
        let a = answer(&s, "10-244-1-7.default.pod.cluster.local.", RecordType::A);
        assert_eq!(rdata(&a), vec!["10.244.1.7"]);
        let a = answer(&s, "fd00--7.any.pod.cluster.local.", RecordType::AAAA);
        assert_eq!(rdata(&a), vec!["fd00::7"]);
        assert_nodata(&answer(
            &s,
            "10-244-1-7.default.pod.cluster.local.",
            RecordType::AAAA,
        ));
        assert_nx(&answer(
            &s,
            "10-244-1-777.default.pod.cluster.local.",
            RecordType::A,
        ));
        assert_nx(&answer(&s, "foo.default.pod.cluster.local.", RecordType::A));
        assert_nodata(&answer(&s, "default.pod.cluster.local.", RecordType::A));
    }

    #[test]
    fn reverse() {
        let s = snap();
        let a = answer(&s, "20.0.96.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(rdata(&a), vec!["web.default.svc.cluster.local."]);
        let a = answer(&s, "1.0.0.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(rdata(&a), vec!["db-0.db.default.svc.cluster.local."]);
        let a = answer(&s, "2.0.0.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(rdata(&a), vec!["10-0-0-2.db.default.svc.cluster.local."]);
        let v6 = "1.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
        let a = answer(&s, v6, RecordType::PTR);
        assert_eq!(rdata(&a), vec!["dual.default.svc.cluster.local."]);
        // Unknown addresses and other types fall through to the upstreams.
        assert!(matches!(
            s.lookup(&n("9.9.9.9.in-addr.arpa."), RecordType::PTR),
            Lookup::Forward
        ));
        assert!(matches!(
            s.lookup(&n("20.0.96.10.in-addr.arpa."), RecordType::A),
            Lookup::Forward
        ));
        assert!(matches!(
            s.lookup(&n("example.com."), RecordType::A),
            Lookup::Forward
        ));
        assert!(matches!(
            s.lookup(&n("local."), RecordType::A),
            Lookup::Forward
        ));
    }

    #[test]
    fn zone_names() {
        let s = snap();
        assert_nx(&answer(
            &s,
            "nope.default.svc.cluster.local.",
            RecordType::A,
        ));
        assert_nx(&answer(&s, "web.nope.svc.cluster.local.", RecordType::A));
        assert_nx(&answer(&s, "a.b.c.d.e.f.cluster.local.", RecordType::A));
        assert_nx(&answer(&s, "nope.cluster.local.", RecordType::A));
        assert_nodata(&answer(&s, "default.svc.cluster.local.", RecordType::A));
        assert_nx(&answer(&s, "nope.svc.cluster.local.", RecordType::A));
        assert_nodata(&answer(&s, "svc.cluster.local.", RecordType::A));
        assert_nodata(&answer(&s, "cluster.local.", RecordType::A));
        let a = answer(&s, "cluster.local.", RecordType::SOA);
        assert_eq!(
            rdata(&a),
            vec!["ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5"]
        );
        let a = answer(&s, "cluster.local.", RecordType::NS);
        assert_eq!(rdata(&a), vec!["ns.dns.cluster.local."]);
        assert_eq!(a.additionals[0].data.to_string(), "10.96.0.10");
        let a = answer(&s, "ns.dns.cluster.local.", RecordType::A);
        assert_eq!(rdata(&a), vec!["10.96.0.10"]);
        let a = answer(&s, "dns-version.cluster.local.", RecordType::TXT);
        assert_eq!(rdata(&a), vec!["1.1.0"]);
    }

    #[test]
    fn other_domain() {
        let s = Snapshot::build(
            "corp.example.",
            30,
            1,
            &[cluster_ip("a", "b", &["10.0.0.9"], vec![])],
            &[],
        );
        let a = answer(&s, "b.a.svc.corp.example.", RecordType::A);
        assert_eq!(rdata(&a), vec!["10.0.0.9"]);
        assert_eq!(a.answers[0].ttl, 30);
        assert!(matches!(
            s.lookup(&n("b.a.svc.cluster.local."), RecordType::A),
            Lookup::Forward
        ));
    }

    #[test]
    fn dashed() {
        assert_eq!(parse_dashed_ip("1-2-3-4"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(parse_dashed_ip("01-2-3-4"), None);
        assert_eq!(parse_dashed_ip("1-2-3"), None);
        assert_eq!(parse_dashed_ip("--1"), Some("::1".parse().unwrap()));
        assert_eq!(parse_dashed_ip(""), None);
        assert_eq!(dashed_ip(&"fd00::1".parse().unwrap()), "fd00--1");
        assert_eq!(
            parse_reverse(&["4", "3", "2", "1", "in-addr", "arpa"]),
            Some("1.2.3.4".parse().unwrap())
        );
        assert_eq!(
            parse_reverse(&["04", "3", "2", "1", "in-addr", "arpa"]),
            None
        );
        assert_eq!(parse_reverse(&["3", "2", "1", "in-addr", "arpa"]), None);
    }
}
