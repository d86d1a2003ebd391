//! Stale UDP conntrack entries. UDP "connections" live on in conntrack after
//! their endpoint is gone (and packets to a service without endpoints are
//! rejected and remembered), so after a sync, as upstream does:
//!
//! * for each UDP service port whose endpoint went away, delete the entries
//!   DNATed to that endpoint (by service IP and by NodePort);
//! * for each UDP service port that just got its first endpoint, delete the
//!   entries to the service IPs and NodePort.
//!
//! Uses the `conntrack` CLI; without it this is skipped (debug log).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::Stdio;

use crate::model::{categorize, Protocol, ServiceEndpoints};

/// One `conntrack -D` filter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flush {
    /// Entries to `ip:port` (original destination).
    ServiceIp { ip: Ipv4Addr, port: u16 },
    /// Entries to a NodePort.
    NodePort { port: u16 },
    /// Entries to `ip:port` DNATed to `endpoint`.
    ServiceIpEndpoint {
        ip: Ipv4Addr,
        port: u16,
        endpoint: Ipv4Addr,
    },
    /// Entries to a NodePort DNATed to `endpoint`.
    NodePortEndpoint { port: u16, endpoint: Ipv4Addr },
}

impl Flush {
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec!["-D".into(), "-p".into(), "udp".into()];
        match self {
            Flush::ServiceIp { ip, port } => {
                a.extend(["--orig-dst".into(), ip.to_string()]);
                a.extend(["--orig-port-dst".into(), port.to_string()]);
            }
            Flush::NodePort { port } => {
                a.extend(["--orig-port-dst".into(), port.to_string()]);
            }
            Flush::ServiceIpEndpoint { ip, port, endpoint } => {
                a.extend(["--orig-dst".into(), ip.to_string()]);
                a.extend(["--orig-port-dst".into(), port.to_string()]);
                a.extend(["--dst-nat".into(), endpoint.to_string()]);
            }
            Flush::NodePortEndpoint { port, endpoint } => {
                a.extend(["--orig-port-dst".into(), port.to_string()]);
                a.extend(["--dst-nat".into(), endpoint.to_string()]);
            }
        }
        a
    }
}

type Key = (String, Protocol);

fn udp_ports(services: &[ServiceEndpoints]) -> BTreeMap<Key, &ServiceEndpoints> {
    services
        .iter()
        .filter(|s| s.service.protocol == Protocol::Udp)
        .map(|s| ((s.service.key(), s.service.protocol), s))
        .collect()
}

/// What to flush going from `old` to `new`.
pub fn stale_flushes(old: &[ServiceEndpoints], new: &[ServiceEndpoints]) -> Vec<Flush> {
    let old = udp_ports(old);
    let new = udp_ports(new);
    let mut out = BTreeSet::new();
    for (key, n) in &new {
        let sp = &n.service;
        let ips: Vec<Ipv4Addr> = std::iter::once(sp.cluster_ip)
            .chain(sp.external_ips.iter().copied())
            .chain(sp.load_balancer_ips.iter().copied())
            .collect();
        let new_reachable: BTreeSet<Ipv4Addr> = categorize(sp, &n.endpoints)
            .reachable
            .iter()
            .map(|e| e.ip)
            .collect();
        let old_reachable: BTreeSet<Ipv4Addr> = old
            .get(key)
            .map(|o| {
                categorize(&o.service, &o.endpoints)
                    .reachable
                    .iter()
                    .map(|e| e.ip)
                    .collect()
            })
            .unwrap_or_default();
        if old_reachable.is_empty() && !new_reachable.is_empty() {
            for ip in &ips {
                out.insert(Flush::ServiceIp {
                    ip: *ip,
                    port: sp.port,
                });
            }
            if let Some(np) = sp.node_port {
                out.insert(Flush::NodePort { port: np });
            }
        }
        for gone in old_reachable.difference(&new_reachable) {
            for ip in &ips {
                out.insert(Flush::ServiceIpEndpoint {
                    ip: *ip,
                    port: sp.port,
                    endpoint: *gone,
                });
            }
            if let Some(np) = sp.node_port {
                out.insert(Flush::NodePortEndpoint {
                    port: np,
                    endpoint: *gone,
                });
            }
        }
    }
    // Service ports that disappeared: their endpoints' entries go too.
    for (key, o) in &old {
        if new.contains_key(key) {
            continue;
        }
        let sp = &o.service;
        for e in categorize(sp, &o.endpoints).reachable {
            out.insert(Flush::ServiceIpEndpoint {
                ip: sp.cluster_ip,
                port: sp.port,
                endpoint: e.ip,
            });
        }
    }
    out.into_iter().collect()
}

/// Whether the `conntrack` binary is available.
pub fn available() -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join("conntrack").is_file()))
        .unwrap_or(false)
}

/// Run the flushes (`conntrack -D ...`), in `netns` when given.
pub async fn run(flushes: &[Flush], netns: Option<&str>) {
    if flushes.is_empty() {
        return;
    }
    if !available() {
        tracing::debug!(
            count = flushes.len(),
            "conntrack binary not found; not clearing stale UDP entries"
        );
        return;
    }
    for f in flushes {
        let args = f.args();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        match crate::nft::command(netns, "conntrack", &argv)
            .stdin(Stdio::null())
            .output()
            .await
        {
            // Exit status 1 means no entry matched.
            Ok(out) => tracing::debug!(args = ?args, status = %out.status, "conntrack"),
            Err(e) => tracing::debug!(args = ?args, "conntrack failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, ServicePort};

    fn se(proto: Protocol, eps: &[&str]) -> ServiceEndpoints {
        ServiceEndpoints {
            service: ServicePort {
                namespace: "kube-system".into(),
                name: "dns".into(),
                port_name: "dns".into(),
                protocol: proto,
                cluster_ip: "10.96.0.10".parse().unwrap(),
                port: 53,
                node_port: Some(30053),
                external_ips: vec![],
                load_balancer_ips: vec![],
                load_balancer_source_ranges: vec![],
                affinity_timeout: None,
                internal_local: false,
                external_local: false,
                health_check_node_port: None,
            },
            endpoints: eps
                .iter()
                .map(|ip| Endpoint {
                    ip: ip.parse().unwrap(),
                    port: 53,
                    ready: true,
                    serving: true,
                    terminating: false,
                    local: false,
                })
                .collect(),
        }
    }

    #[test]
    fn flushes() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        // First endpoint: clear entries cached while there were none.
        let f = stale_flushes(
            &[se(Protocol::Udp, &[])],
            &[se(Protocol::Udp, &["10.244.0.5"])],
        );
        assert_eq!(
            f,
            vec![
                Flush::ServiceIp {
                    ip: ip("10.96.0.10"),
                    port: 53
                },
                Flush::NodePort { port: 30053 }
            ]
        );
        // An endpoint goes away.
        let f = stale_flushes(
            &[se(Protocol::Udp, &["10.244.0.5", "10.244.0.6"])],
            &[se(Protocol::Udp, &["10.244.0.6"])],
        );
        assert_eq!(
            f,
            vec![
                Flush::ServiceIpEndpoint {
                    ip: ip("10.96.0.10"),
                    port: 53,
                    endpoint: ip("10.244.0.5")
                },
                Flush::NodePortEndpoint {
                    port: 30053,
                    endpoint: ip("10.244.0.5")
                }
            ]
        );
        assert_eq!(
            f[0].args().join(" "),
            "-D -p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --dst-nat 10.244.0.5"
        );
        // TCP needs nothing.
        assert!(stale_flushes(
            &[se(Protocol::Tcp, &["10.244.0.5"])],
            &[se(Protocol::Tcp, &[])]
        )
        .is_empty());
        // The service goes away.
        let f = stale_flushes(&[se(Protocol::Udp, &["10.244.0.5"])], &[]);
        assert_eq!(f.len(), 1);
    }
}
