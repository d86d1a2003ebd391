//! cluster-dns in-process against an in-process apiserver on a real etcd
//! (apiserver::testing::TestServer), queried over UDP and TCP on loopback,
//! with a fake upstream resolver on loopback for forwarding.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::testing::TestServer;
use clap::Parser;
use cluster_dns::options::Options;
use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

const BIG_COUNT: u8 = 60;

/// A fake upstream: www.example.com A → 192.0.2.10, big.example.com → 60
/// A records (truncated over UDP, whole over TCP), slow.example.com → no
/// answer, anything else → NXDOMAIN.
async fn fake_upstream() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let ip: IpAddr = "127.0.0.2".parse().unwrap();
    let udp = match UdpSocket::bind((ip, 0)).await {
        Ok(s) => s,
        Err(_) => UdpSocket::bind(("127.0.0.1", 0)).await.unwrap(),
    };
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    let udp_count = Arc::new(AtomicUsize::new(0));
    let tcp_count = Arc::new(AtomicUsize::new(0));
    let uc = udp_count.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                continue;
            };
            uc.fetch_add(1, Ordering::SeqCst);
            if let Some(resp) = upstream_answer(&buf[..n], true) {
                let _ = udp.send_to(&resp, peer).await;
            }
        }
    });
    let tc = tcp_count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = tcp.accept().await else {
                continue;
            };
            tc.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(len) = s.read_u16().await else { return };
                let mut buf = vec![0u8; len as usize];
                if s.read_exact(&mut buf).await.is_err() {
                    return;
                }
                if let Some(resp) = upstream_answer(&buf, false) {
                    let mut out = (resp.len() as u16).to_be_bytes().to_vec();
                    out.extend_from_slice(&resp);
                    let _ = s.write_all(&out).await;
                }
            });
        }
    });
    (addr, udp_count, tcp_count)
}

fn upstream_answer(req: &[u8], udp: bool) -> Option<Vec<u8>> {
    let req = Message::from_vec(req).ok()?;
    let q = req.queries.first()?.clone();
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.add_query(q.clone());
    match q.name.to_lowercase().to_ascii().as_str() {
        "www.example.com." if q.query_type == RecordType::A => {
            resp.add_answer(Record::from_rdata(
                q.name.clone(),
                300,
                RData::A(A::new(192, 0, 2, 10)),
            ));
        }
        "big.example.com." => {
            if udp {
                resp.metadata.truncation = true;
            } else {
                for i in 0..BIG_COUNT {
                    resp.add_answer(Record::from_rdata(
                        q.name.clone(),
                        300,
                        RData::A(A::new(192, 0, 2, i)),
                    ));
                }
            }
        }
        "slow.example.com." => return None,
        _ => resp.metadata.response_code = ResponseCode::NXDomain,
    }
    resp.to_vec().ok()
}

fn query_bytes(name: &str, t: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

async fn udp_raw(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

async fn udp(server: SocketAddr, name: &str, t: RecordType) -> Message {
    let q = query_bytes(name, t, false);
    let resp = udp_raw(server, &q, Duration::from_secs(5))
        .await
        .expect("UDP answer");
    let m = Message::from_vec(&resp).unwrap();
    assert_eq!(&resp[..2], &q[..2], "id echoed");
    assert_eq!(m.metadata.message_type, MessageType::Response);
    m
}

async fn tcp(server: SocketAddr, name: &str, t: RecordType) -> Message {
    let q = query_bytes(name, t, false);
    let mut s = TcpStream::connect(server).await.unwrap();
    let mut out = (q.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&q);
    s.write_all(&out).await.unwrap();
    let len = tokio::time::timeout(Duration::from_secs(5), s.read_u16())
        .await
        .expect("TCP answer")
        .unwrap();
    let mut buf = vec![0u8; len as usize];
    s.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

fn data(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    (out[9..12].parse().unwrap(), out)
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("default".into()),
        ..Default::default()
    }
}

fn port(name: &str, proto: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        protocol: Some(proto.into()),
        port,
        ..Default::default()
    }
}

fn svc(name: &str, spec: ServiceSpec) -> Service {
    Service {
        metadata: meta(name),
        spec: Some(spec),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_cluster_zone_and_forwards() {
    let server = TestServer::start().await.expect("test apiserver");
    let kubeconfig = server.kubeconfig_file().unwrap();
    let client = server.client().await.unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    let web = services
        .create(
            &pp,
            &svc(
                "web",
                ServiceSpec {
                    ports: Some(vec![port("http", "TCP", 80), port("dns", "UDP", 53)]),
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
    let web_ip: IpAddr = web
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap()
        .parse()
        .unwrap();
    services
        .create(
            &pp,
            &svc(
                "db",
                ServiceSpec {
                    cluster_ip: Some("None".into()),
                    ports: Some(vec![port("pg", "TCP", 5432)]),
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
    let mut m = meta("db-abcde");
    m.labels = Some(BTreeMap::from([(
        "kubernetes.io/service-name".to_string(),
        "db".to_string(),
    )]));
    let ep = |ip: &str, host: Option<&str>, ready: bool| Endpoint {
        addresses: vec![ip.into()],
        hostname: host.map(String::from),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            ..Default::default()
        }),
        ..Default::default()
    };
    slices
        .create(
            &pp,
            &EndpointSlice {
                metadata: m,
                address_type: "IPv4".into(),
                endpoints: vec![
                    ep("10.1.0.1", Some("db-0"), true),
                    ep("10.1.0.2", None, true),
                    ep("10.1.0.3", Some("db-2"), false),
                ],
                ports: Some(vec![EndpointPort {
                    name: Some("pg".into()),
                    protocol: Some("TCP".into()),
                    port: Some(5432),
                    ..Default::default()
                }]),
            },
        )
        .await
        .unwrap();
    services
        .create(
            &pp,
            &svc(
                "ext",
                ServiceSpec {
                    type_: Some("ExternalName".into()),
                    external_name: Some("www.example.com".into()),
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();

    let (upstream, upstream_udp, upstream_tcp) = fake_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("search example.com\nnameserver {upstream}\noptions ndots:5\n"),
    )
    .unwrap();

    let opts = Options::parse_from([
        "cluster-dns".to_string(),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--dns-bind-address=127.0.0.1".into(),
        "--dns-port=0".into(),
        "--http-bind-address=127.0.0.1".into(),
        "--health-port=0".into(),
        "--ready-port=0".into(),
        "--metrics-port=0".into(),
        "--upstream-timeout-ms=500".into(),
        format!("--upstream-resolv-conf={}", resolv.display()),
    ]);
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let running = cluster_dns::start(opts, stop.clone()).await.unwrap();
    let dns = running.dns_addr;
    assert!(
        running.ready.load(Ordering::SeqCst),
        "synced before serving"
    );

    // ClusterIP A over UDP and TCP, case-insensitively.
    for m in [
        udp(dns, "web.default.svc.cluster.local.", RecordType::A).await,
        tcp(dns, "WEB.default.SVC.cluster.local.", RecordType::A).await,
    ] {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(data(&m), vec![web_ip.to_string()]);
        assert_eq!(m.answers[0].ttl, 5);
    }
    let m = udp(dns, "web.default.svc.cluster.local.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);

    // SRV of a named port.
    let m = udp(
        dns,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(data(&m), vec!["0 100 80 web.default.svc.cluster.local."]);
    let m = tcp(
        dns,
        "_dns._udp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(data(&m), vec!["0 100 53 web.default.svc.cluster.local."]);

    // Headless: ready endpoints, hostnames, SRV per endpoint.
    let m = udp(dns, "db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(data(&m), vec!["10.1.0.1", "10.1.0.2"]);
    let m = udp(dns, "db-0.db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(data(&m), vec!["10.1.0.1"]);
    let m = udp(
        dns,
        "_pg._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(
        data(&m),
        vec![
            "0 50 5432 10-1-0-2.db.default.svc.cluster.local.",
            "0 50 5432 db-0.db.default.svc.cluster.local.",
        ]
    );
    assert_eq!(m.additionals.len(), 2);

    // PTR of a ClusterIP and of a headless endpoint.
    let IpAddr::V4(v4) = web_ip else {
        panic!("IPv4 cluster IP expected")
    };
    let o = v4.octets();
    let m = udp(
        dns,
        &format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0]),
        RecordType::PTR,
    )
    .await;
    assert_eq!(data(&m), vec!["web.default.svc.cluster.local."]);
    let m = tcp(dns, "1.0.1.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(data(&m), vec!["db-0.db.default.svc.cluster.local."]);

    // ExternalName: CNAME, and the target resolved through the upstream.
    let m = udp(dns, "ext.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(m.answers[0].data.to_string(), "www.example.com.");
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.answers[1].data.to_string(), "192.0.2.10");
    let m = udp(dns, "ext.default.svc.cluster.local.", RecordType::CNAME).await;
    assert_eq!(data(&m), vec!["www.example.com."]);

    // Pods (insecure): any well-formed dashed address.
    let m = udp(dns, "10-244-0-5.default.pod.cluster.local.", RecordType::A).await;
    assert_eq!(data(&m), vec!["10.244.0.5"]);

    // NXDOMAIN with the zone's SOA.
    for m in [
        udp(dns, "nope.default.svc.cluster.local.", RecordType::A).await,
        tcp(dns, "web.nope.svc.cluster.local.", RecordType::A).await,
        udp(dns, "db-2.db.default.svc.cluster.local.", RecordType::A).await,
    ] {
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.metadata.authoritative);
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities.len(), 1);
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(m.authorities[0].name.to_ascii(), "cluster.local.");
    }

    // A Service created now is answered within a couple of seconds.
    let late = services
        .create(
            &pp,
            &svc(
                "late",
                ServiceSpec {
                    ports: Some(vec![port("http", "TCP", 80)]),
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
    let late_ip = late.spec.unwrap().cluster_ip.unwrap();
    let created = Instant::now();
    loop {
        let m = udp(dns, "late.default.svc.cluster.local.", RecordType::A).await;
        if data(&m) == vec![late_ip.clone()] {
            break;
        }
        assert!(
            created.elapsed() < Duration::from_secs(2),
            "late Service not answered within 2s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Forwarding: answers, NXDOMAIN passed through, TCP after truncation,
    // SERVFAIL when the upstream does not answer.
    let m = udp(dns, "www.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(data(&m), vec!["192.0.2.10"]);
    assert!(!m.metadata.authoritative);
    let m = tcp(dns, "WWW.example.com.", RecordType::A).await;
    assert_eq!(data(&m), vec!["192.0.2.10"]);
    let m = udp(dns, "nx.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let tcp_before = upstream_tcp.load(Ordering::SeqCst);
    let m = tcp(dns, "big.example.com.", RecordType::A).await;
    assert_eq!(m.answers.len(), usize::from(BIG_COUNT));
    assert!(
        upstream_tcp.load(Ordering::SeqCst) > tcp_before,
        "retried over TCP"
    );
    // Over UDP without EDNS the client gets TC and no records.
    let m = udp(dns, "big.example.com.", RecordType::A).await;
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty());
    let m = udp(dns, "slow.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    // Unknown reverse addresses fall through to the upstream.
    let before = upstream_udp.load(Ordering::SeqCst);
    let m = udp(dns, "9.9.9.9.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(upstream_udp.load(Ordering::SeqCst) > before);

    // Malformed input never kills the server.
    assert!(udp_raw(dns, &[1, 2, 3], Duration::from_millis(500))
        .await
        .is_none());
    let junk = [
        0xab, 0xcd, 0x01, 0x00, 0x00, 0x05, 0xff, 0xff, 0, 0, 0, 0, 7, 7, 7,
    ];
    let resp = udp_raw(dns, &junk, Duration::from_secs(5))
        .await
        .expect("FORMERR");
    let m = Message::from_vec(&resp).unwrap();
    assert_eq!(m.metadata.id, 0xabcd);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    let mut s = TcpStream::connect(dns).await.unwrap();
    s.write_all(&[0, 20, 1, 2, 3]).await.unwrap();
    drop(s);
    let m = udp(dns, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(data(&m), vec![web_ip.to_string()]);

    // Health, readiness, metrics.
    assert_eq!(http_get(running.health_addr, "/health").await.0, 200);
    assert_eq!(http_get(running.ready_addr, "/ready").await.0, 200);
    let (code, body) = http_get(running.metrics_addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("coredns_dns_requests_total{"), "{body}");
    assert!(body.contains("coredns_dns_responses_total{"), "{body}");
    assert!(body.contains("coredns_forward_requests_total{"), "{body}");

    stop.cancel();
    drop(server);
}
