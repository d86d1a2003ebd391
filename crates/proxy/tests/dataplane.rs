//! The generated ruleset programs a real dataplane: a throw-away network
//! namespace gets the `ip kube-proxy` table (`ip netns exec NS nft -f -`),
//! and connections made inside it reach the Service's backends, are refused
//! at once without endpoints, and stop being handled once the Service is
//! gone. Needs root (as CI runs).

mod common;

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use common::Netns;
use proxy::model::Protocol;
use proxy::rules::{build, Existing};
use proxy::{Endpoint, NodePortAddresses, RuleConfig, ServiceEndpoints, ServicePort};

fn sp(name: &str, cluster_ip: &str, port: u16) -> ServicePort {
    ServicePort {
        namespace: "default".into(),
        name: name.into(),
        port_name: "http".into(),
        protocol: Protocol::Tcp,
        cluster_ip: cluster_ip.parse().unwrap(),
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

fn ep(ip: &str, port: u16) -> Endpoint {
    Endpoint {
        ip: ip.parse().unwrap(),
        port,
        ready: true,
        serving: true,
        terminating: false,
        local: true,
    }
}

fn cfg() -> RuleConfig {
    RuleConfig {
        cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
        node_port_addresses: NodePortAddresses::Ips(vec!["10.200.0.10".parse().unwrap()]),
        ..Default::default()
    }
}

#[test]
fn cluster_ip_nodeport_reject_and_removal() {
    let ns = Netns::new(&["10.244.1.5", "10.244.1.6"], "10.200.0.10");
    ns.serve("10.244.1.5:8080", "backend-a");
    ns.serve("10.244.1.6:8080", "backend-b");
    // Without rules the backend answers directly.
    assert_eq!(ns.get("10.244.1.5:8080").unwrap(), "backend-a");

    let mut web = sp("web", "10.96.0.10", 80);
    web.node_port = Some(30080);
    let empty = sp("empty", "10.96.0.11", 80);
    let services = vec![
        ServiceEndpoints {
            service: web.clone(),
            endpoints: vec![ep("10.244.1.5", 8080), ep("10.244.1.6", 8080)],
        },
        ServiceEndpoints {
            service: empty.clone(),
            endpoints: vec![],
        },
    ];
    let rs = build(&cfg(), &services);
    proxy::nft::apply_blocking(&rs.render_recreate(), Some(&ns.name)).unwrap();
    let table = ns.table();
    assert!(table.contains("chain services"), "{table}");
    assert!(
        table.contains("chain service-") && table.contains("default/web/tcp/http"),
        "{table}"
    );

    // ClusterIP: random load balancing reaches both backends.
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        seen.insert(ns.get("10.96.0.10:80").expect("connect to ClusterIP"));
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen,
        BTreeSet::from(["backend-a".to_string(), "backend-b".to_string()])
    );

    // NodePort on the node's address.
    let r = ns.get("10.200.0.10:30080").expect("connect to NodePort");
    assert!(r.starts_with("backend-"), "{r}");

    // No endpoints: refused at once (reject), not a timeout.
    let t = Instant::now();
    let err = ns.get("10.96.0.11:80").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

    // Scale down to one backend: a partial transaction.
    let services2 = vec![
        ServiceEndpoints {
            service: web.clone(),
            endpoints: vec![ep("10.244.1.6", 8080)],
        },
        services[1].clone(),
    ];
    let rs2 = build(&cfg(), &services2);
    let tx = rs2.render(Some(&rs), &Existing::of(&rs)).unwrap();
    assert!(!tx.contains("chain ip kube-proxy services"), "{tx}");
    proxy::nft::apply_blocking(&tx, Some(&ns.name)).unwrap();
    for _ in 0..10 {
        assert_eq!(ns.get("10.96.0.10:80").unwrap(), "backend-b");
    }
    assert!(!ns.table().contains("10.244.1.5/8080"), "{}", ns.table());

    // Remove the web Service: its chains go away; the empty one stays.
    let rs3 = build(&cfg(), &services2[1..]);
    let tx = rs3.render(Some(&rs2), &Existing::of(&rs2)).unwrap();
    proxy::nft::apply_blocking(&tx, Some(&ns.name)).unwrap();
    let table = ns.table();
    assert!(!table.contains("default/web"), "{table}");
    assert!(table.contains("10.96.0.11 . tcp . 80"), "{table}");
    assert_eq!(
        Existing::parse_listing(&table),
        Existing::of(&rs3),
        "kernel table matches the model"
    );

    // A full in-place rewrite from the listing converges too.
    let tx = rs.render(None, &Existing::parse_listing(&table)).unwrap();
    proxy::nft::apply_blocking(&tx, Some(&ns.name)).unwrap();
    assert_eq!(Existing::parse_listing(&ns.table()), Existing::of(&rs));
    assert!(ns.get("10.96.0.10:80").unwrap().starts_with("backend-"));

    // Cleanup removes only our table.
    proxy::nft::apply_blocking(&proxy::rules::render_delete(), Some(&ns.name)).unwrap();
    assert_eq!(ns.table(), "");
}

#[test]
fn session_affinity_sticks() {
    let ns = Netns::new(&["10.244.2.5", "10.244.2.6"], "10.200.0.11");
    ns.serve("10.244.2.5:8080", "a");
    ns.serve("10.244.2.6:8080", "b");
    let mut s = sp("sticky", "10.96.0.20", 80);
    s.affinity_timeout = Some(60);
    let rs = build(
        &cfg(),
        &[ServiceEndpoints {
            service: s,
            endpoints: vec![ep("10.244.2.5", 8080), ep("10.244.2.6", 8080)],
        }],
    );
    proxy::nft::apply_blocking(&rs.render_recreate(), Some(&ns.name)).unwrap();
    let first = ns.get("10.96.0.20:80").unwrap();
    for _ in 0..15 {
        assert_eq!(ns.get("10.96.0.20:80").unwrap(), first);
    }
    // The affinity set survives a partial and a full in-place sync.
    let tx = rs
        .render(None, &Existing::parse_listing(&ns.table()))
        .unwrap();
    proxy::nft::apply_blocking(&tx, Some(&ns.name)).unwrap();
    for _ in 0..5 {
        assert_eq!(ns.get("10.96.0.20:80").unwrap(), first);
    }
}

/// The node topology ferrokube builds: pods in their own netns on a bridge
/// of the node netns, which holds kube-proxy's table. A pod reaches another
/// pod through a ClusterIP (the reply is bridged, so br_netfilter's
/// conntrack un-DNATs it), and a pod reaches itself through its own
/// Service (hairpin: masqueraded to the bridge address).
#[test]
fn pods_on_a_bridge_and_hairpin() {
    let node = Netns::bare();
    node.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
    node.exec(&["ip", "addr", "add", "10.244.5.1/24", "dev", "br0"]);
    node.exec(&["ip", "link", "set", "br0", "up"]);
    node.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    // Nodes have a default route; the service CIDR needs one to be reachable.
    node.exec(&["ip", "route", "add", "10.96.0.0/16", "dev", "br0"]);
    let client = node.add_pod("br0", "vetha", "10.244.5.10", "10.244.5.1");
    let server = node.add_pod("br0", "vethb", "10.244.5.11", "10.244.5.1");
    server.serve("0.0.0.0:8080", "pod-b");
    assert_eq!(client.get("10.244.5.11:8080").unwrap(), "pod-b");

    // An outside host on the node's network (eth0, 10.200.0.10).
    let outside = Netns::bare();
    node.exec(&[
        "ip",
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "ext0",
        "netns",
        &outside.name,
    ]);
    node.exec(&["ip", "addr", "add", "10.200.0.10/24", "dev", "eth0"]);
    node.exec(&["ip", "link", "set", "eth0", "up"]);
    outside.exec(&["ip", "addr", "add", "10.200.0.99/24", "dev", "ext0"]);
    outside.exec(&["ip", "link", "set", "ext0", "up"]);
    outside.exec(&["ip", "route", "add", "192.0.2.0/24", "via", "10.200.0.10"]);

    let mut svc = sp("b", "10.96.0.50", 80);
    svc.node_port = Some(30080);
    svc.external_ips = vec!["192.0.2.1".parse().unwrap()];
    let mut backend = ep("10.244.5.11", 8080);
    let rs = build(
        &cfg(),
        &[ServiceEndpoints {
            service: svc.clone(),
            endpoints: vec![backend.clone()],
        }],
    );
    proxy::nft::apply_blocking(&rs.render_recreate(), Some(&node.name)).unwrap();
    assert_eq!(
        client.get("10.96.0.50:80").expect("pod to ClusterIP"),
        "pod-b"
    );
    assert_eq!(server.get("10.96.0.50:80").expect("hairpin"), "pod-b");
    // The node itself (host network) reaches the ClusterIP too.
    assert_eq!(
        node.get("10.96.0.50:80").expect("node to ClusterIP"),
        "pod-b"
    );
    // From outside: the NodePort and the external IP (masqueraded).
    assert_eq!(
        outside
            .get("10.200.0.10:30080")
            .expect("NodePort from outside"),
        "pod-b"
    );
    assert_eq!(
        outside
            .get("192.0.2.1:80")
            .expect("external IP from outside"),
        "pod-b"
    );

    // externalTrafficPolicy Local without a local endpoint: outside traffic
    // is dropped (times out), pods still short-circuit to the Service.
    svc.external_local = true;
    backend.local = false;
    let rs2 = build(
        &cfg(),
        &[ServiceEndpoints {
            service: svc.clone(),
            endpoints: vec![backend.clone()],
        }],
    );
    let tx = rs2.render(Some(&rs), &Existing::of(&rs)).unwrap();
    proxy::nft::apply_blocking(&tx, Some(&node.name)).unwrap();
    let err = outside.get("10.200.0.10:30080").unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
        "{err}"
    );
    assert_eq!(client.get("10.96.0.50:80").unwrap(), "pod-b");
    // With the endpoint local, outside traffic is served again.
    backend.local = true;
    let rs3 = build(
        &cfg(),
        &[ServiceEndpoints {
            service: svc,
            endpoints: vec![backend],
        }],
    );
    let tx = rs3.render(Some(&rs2), &Existing::of(&rs2)).unwrap();
    proxy::nft::apply_blocking(&tx, Some(&node.name)).unwrap();
    assert_eq!(outside.get("10.200.0.10:30080").unwrap(), "pod-b");
}

fn udp_roundtrip(s: &std::net::UdpSocket) -> std::io::Result<String> {
    s.send(b"ping")?;
    let mut buf = [0u8; 64];
    let n = s.recv(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// UDP Services: DNAT works, a Service without endpoints rejects (ICMP),
/// and when the endpoint changes the stale conntrack entry of a running
/// "connection" is deleted so it moves to the new endpoint (needs the
/// conntrack CLI; skipped without it).
#[test]
fn udp_service_and_stale_conntrack() {
    let ns = Netns::new(&["10.244.6.5", "10.244.6.6"], "10.200.0.13");
    ns.serve_udp("10.244.6.5:5353", "a");
    ns.serve_udp("10.244.6.6:5353", "b");
    let mut dns = sp("dns", "10.96.0.60", 53);
    dns.protocol = Protocol::Udp;
    let mut none = sp("none", "10.96.0.61", 53);
    none.protocol = Protocol::Udp;
    let old = vec![
        ServiceEndpoints {
            service: dns.clone(),
            endpoints: vec![ep("10.244.6.5", 5353)],
        },
        ServiceEndpoints {
            service: none,
            endpoints: vec![],
        },
    ];
    let rs = build(&cfg(), &old);
    proxy::nft::apply_blocking(&rs.render_recreate(), Some(&ns.name)).unwrap();
    let sock = ns.udp_socket("10.96.0.60:53");
    assert_eq!(udp_roundtrip(&sock).unwrap(), "a");
    let rejected = ns.udp_socket("10.96.0.61:53");
    // Rejected in the output hook: the send itself fails (EPERM) or the
    // ICMP port-unreachable comes back (ECONNREFUSED); never a timeout.
    let err = udp_roundtrip(&rejected).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::ConnectionRefused | ErrorKind::PermissionDenied
        ),
        "{err}"
    );

    // The endpoint moves to b; the old flow still points at a.
    let mut new = old.clone();
    new[0].endpoints = vec![ep("10.244.6.6", 5353)];
    let rs2 = build(&cfg(), &new);
    let tx = rs2.render(Some(&rs), &Existing::of(&rs)).unwrap();
    proxy::nft::apply_blocking(&tx, Some(&ns.name)).unwrap();
    assert_eq!(
        udp_roundtrip(&sock).unwrap(),
        "a",
        "conntrack keeps the flow"
    );
    if !proxy::conntrack::available() {
        eprintln!("conntrack CLI missing: skipping the stale entry check");
        return;
    }
    let flushes = proxy::conntrack::stale_flushes(&old, &new);
    assert!(!flushes.is_empty());
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(proxy::conntrack::run(&flushes, Some(&ns.name)));
    assert_eq!(udp_roundtrip(&sock).unwrap(), "b", "stale entry deleted");
}

/// A thousand Services with three endpoints each: one transaction, and a
/// one-endpoint change is a small partial transaction.
#[test]
fn many_services() {
    let ns = Netns::bare();
    let services: Vec<ServiceEndpoints> = (0..1000u32)
        .map(|i| {
            let ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
            let mut s = sp(&format!("svc-{i}"), &ip, 80);
            s.node_port = Some(30000 + i as u16);
            ServiceEndpoints {
                service: s,
                endpoints: (0..3)
                    .map(|k| ep(&format!("10.244.{}.{}", i / 200, (i % 200) + k + 1), 8080))
                    .collect(),
            }
        })
        .collect();
    let rs = build(&cfg(), &services);
    let t = Instant::now();
    proxy::nft::apply_blocking(&rs.render_recreate(), Some(&ns.name)).unwrap();
    let full = t.elapsed();
    assert_eq!(Existing::parse_listing(&ns.table()), Existing::of(&rs));
    let mut changed = services.clone();
    changed[500].endpoints.pop();
    let rs2 = build(&cfg(), &changed);
    let tx = rs2.render(Some(&rs), &Existing::of(&rs)).unwrap();
    assert!(tx.lines().count() < 20, "{tx}");
    let t = Instant::now();
    proxy::nft::apply_blocking(&tx, Some(&ns.name)).unwrap();
    let partial = t.elapsed();
    eprintln!("full {full:?}, partial {partial:?}");
    assert!(partial < full, "partial {partial:?} full {full:?}");
}

mod syncs {
    //! The proxier's own syncs (Services and EndpointSlices as the watches
    //! deliver them): a partial sync after one endpoint change sends only
    //! that Service's changes, and chains of deleted Services go away.

    use super::*;
    use clap::Parser;
    use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus, Service, ServiceSpec};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::api::ObjectMeta;
    use proxy::proxier::{Proxier, Syncer};
    use std::sync::Arc;

    fn service(name: &str, ip: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(vec![k8s_openapi::api::core::v1::ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn slice(svc: &str, ips: &[String]) -> EndpointSlice {
        let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
        crate::common::ready_slice(svc, &format!("{svc}-1"), &ips)
    }

    fn ips(i: usize) -> Vec<String> {
        (1..=3)
            .map(|k| format!("10.244.{}.{}", 100 + i, k))
            .collect()
    }

    /// Every chain and set of `tx` that is not node-level belongs to `svc`.
    fn only_touches(tx: &str, svc: &str) {
        for line in tx.lines() {
            if line.starts_with("add table") {
                continue;
            }
            assert!(
                line.contains(&format!("/{svc}/")),
                "line not about {svc}: {line}\n{tx}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn partial_syncs_send_only_changes() {
        let ns = Netns::new(&["10.244.7.5", "10.244.7.6"], "10.200.0.14");
        ns.serve("10.244.7.5:8080", "backend-a");
        ns.serve("10.244.7.6:8080", "backend-b");
        // A chain left over by an earlier kube-proxy run: the first (full)
        // sync removes it.
        let leftover = "service-AAAAAAAA-default/gone/tcp/http";
        proxy::nft::apply_blocking(
            &format!("add table ip kube-proxy\nadd chain ip kube-proxy {leftover}\n"),
            Some(&ns.name),
        )
        .unwrap();

        let settings = proxy::options::Options::parse_from([
            "kube-proxy",
            "--netns",
            &ns.name,
            "--hostname-override",
            "node-a",
            "--cluster-cidr",
            "10.244.0.0/16",
        ])
        .settings()
        .unwrap();
        let proxier = Proxier::new(
            settings,
            Arc::new(proxy::metrics::Metrics::new()),
            proxy::health::ProxierHealth::new(Duration::from_secs(60)),
        );
        proxier.set_node(Some(Node {
            metadata: ObjectMeta {
                name: Some("node-a".into()),
                ..Default::default()
            },
            status: Some(NodeStatus {
                addresses: Some(vec![NodeAddress {
                    type_: "InternalIP".into(),
                    address: "10.200.0.14".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }));
        let mut services: Vec<Service> = (0..20)
            .map(|i| service(&format!("svc-{i}"), &format!("10.96.7.{}", i + 1)))
            .collect();
        services.push(service("web", "10.96.7.100"));
        proxier.replace_services(services);
        let mut slices: Vec<EndpointSlice> = (0..20)
            .map(|i| slice(&format!("svc-{i}"), &ips(i)))
            .collect();
        slices.push(slice("web", &["10.244.7.5".to_string()]));
        proxier.replace_slices(slices);

        let mut syncer = Syncer::new(proxier.clone());
        syncer.sync(true).await.unwrap();
        let in_kernel = || Existing::parse_listing(&ns.table());
        let wanted = |s: &Syncer| Existing::of(s.ruleset().unwrap());
        assert_eq!(in_kernel(), wanted(&syncer));
        assert!(!ns.table().contains(leftover));
        assert_eq!(ns.get("10.96.7.100:80").unwrap(), "backend-a");

        // One endpoint of svc-7 changes: only svc-7's chains and map.
        let mut changed = ips(7);
        changed[1] = "10.244.107.9".into();
        proxier.upsert_slice(slice("svc-7", &changed));
        syncer.sync(false).await.unwrap();
        let tx = syncer.last_partial_transaction().to_string();
        eprintln!("one endpoint of svc-7 changed:\n{tx}");
        only_touches(&tx, "svc-7");
        assert!(tx.contains("__10.244.107.9/8080"), "{tx}");
        assert!(
            tx.lines().count() < 12,
            "a handful of commands, not the table: {tx}"
        );
        assert_eq!(in_kernel(), wanted(&syncer));
        let table = ns.table();
        assert!(table.contains("10.244.107.9:8080") && !table.contains("10.244.107.2:8080"));

        // No change: nothing is sent.
        syncer.sync(false).await.unwrap();
        assert_eq!(syncer.last_partial_transaction(), "");

        // The web backend moves: traffic follows after a partial sync.
        proxier.upsert_slice(slice("web", &["10.244.7.6".to_string()]));
        syncer.sync(false).await.unwrap();
        only_touches(syncer.last_partial_transaction(), "web");
        for _ in 0..5 {
            assert_eq!(ns.get("10.96.7.100:80").unwrap(), "backend-b");
        }

        // svc-3 is deleted: its chains and map go (at the latest with the
        // next sync, on kernels that need the deletion deferred).
        proxier.remove_service(&("default".to_string(), "svc-3".to_string()));
        proxier.remove_slice(&("default".to_string(), "svc-3-1".to_string()));
        syncer.sync(false).await.unwrap();
        let tx = syncer.last_partial_transaction().to_string();
        eprintln!("svc-3 deleted:\n{tx}");
        only_touches(
            &tx.lines()
                .filter(|l| !l.contains("element ip kube-proxy service-ips"))
                .collect::<Vec<_>>()
                .join("\n"),
            "svc-3",
        );
        assert!(
            tx.contains("delete element ip kube-proxy service-ips { 10.96.7.4 . tcp . 80 }"),
            "{tx}"
        );
        syncer.sync(false).await.unwrap();
        let table = ns.table();
        assert!(!table.contains("/svc-3/"), "{table}");
        assert_eq!(in_kernel(), wanted(&syncer));
        // Its ClusterIP is no longer handled; the others still are.
        assert!(!table.contains("10.96.7.4 "), "{table}");
        assert!(table.contains("10.96.7.5 . tcp . 80"), "{table}");

        // A later full sync over the table changes nothing visible.
        syncer.sync(true).await.unwrap();
        assert_eq!(in_kernel(), wanted(&syncer));
        assert_eq!(ns.get("10.96.7.100:80").unwrap(), "backend-b");
    }
}
