//! kube-proxy in-process against an in-process apiserver: Services and
//! EndpointSlices created through the API reach the rules of a test netns
//! (the hidden --netns flag) within about a second, endpoint changes move
//! traffic, a deleted Service loses its chains, and /healthz and /metrics
//! answer.

mod common;

use std::time::{Duration, Instant};

use apiserver::testing::TestServer;
use clap::Parser;
use common::Netns;
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeStatus, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::Api;
use tokio_util::sync::CancellationToken;

fn service(name: &str, node_port: bool) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(if node_port { "NodePort" } else { "ClusterIP" }.into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                protocol: Some("TCP".into()),
                target_port: Some(
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080),
                ),
                ..Default::default()
            }]),
            selector: Some([("app".to_string(), name.to_string())].into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn slice(svc: &str, name: &str, ips: &[&str]) -> EndpointSlice {
    common::ready_slice(svc, name, ips)
}

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_to_rules() {
    component_base::logging::init(2);
    let ns = Netns::new(&["10.244.3.5", "10.244.3.6"], "10.200.0.12");
    ns.serve("10.244.3.5:8080", "one");
    ns.serve("10.244.3.6:8080", "two");

    let server = TestServer::start().await.expect("test apiserver");
    let kubeconfig = server.kubeconfig_file().unwrap();
    let client = server.client().await.unwrap();

    // The own Node, with its InternalIP (for NodePorts).
    let nodes: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some("node-a".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let mut n = nodes.get("node-a").await.unwrap();
    n.status = Some(NodeStatus {
        addresses: Some(vec![NodeAddress {
            type_: "InternalIP".into(),
            address: "10.200.0.12".into(),
        }]),
        ..Default::default()
    });
    nodes
        .replace_status("node-a", &PostParams::default(), &n)
        .await
        .unwrap();

    let opts = proxy::options::Options::parse_from([
        "kube-proxy".to_string(),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--hostname-override=node-a".into(),
        "--cluster-cidr=10.244.0.0/16".into(),
        "--healthz-bind-address=127.0.0.1:0".into(),
        "--metrics-bind-address=127.0.0.1:0".into(),
        format!("--netns={}", ns.name),
        "-v=4".into(),
    ]);
    let stop = CancellationToken::new();
    let running = proxy::start(opts, stop.clone())
        .await
        .expect("kube-proxy starts");
    let healthz = running.healthz_addr.unwrap();
    let metrics = running.metrics_addr.unwrap();

    // The initial sync programs the table (the kubernetes Service is there).
    eventually("initial sync", Duration::from_secs(20), || async {
        ns.table().contains("chain services")
    })
    .await;
    let (code, body) = http_get(healthz, "/healthz").await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["nodeEligible"], true);
    assert!(
        v["lastUpdated"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );

    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");

    // A NodePort Service without endpoints: rejected.
    let svc = services
        .create(&PostParams::default(), &service("web", true))
        .await
        .unwrap();
    let cip = svc.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    let node_port = svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
        .node_port
        .unwrap();
    let target = format!("{cip}:80");
    let t = target.clone();
    let nsn = ns.name.clone();
    eventually(
        "service without endpoints rejected",
        Duration::from_secs(5),
        || {
            let t = t.clone();
            let table = ns.table();
            let _ = &nsn;
            async move {
                table.contains(&format!(
                    "{} . tcp . 80 : goto reject-chain",
                    t.trim_end_matches(":80")
                ))
            }
        },
    )
    .await;
    let err = ns.get(&target).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");

    // Endpoints appear: traffic reaches the backend, well within a second.
    slices
        .create(
            &PostParams::default(),
            &slice("web", "web-1", &["10.244.3.5"]),
        )
        .await
        .unwrap();
    let took = eventually(
        "ClusterIP reaches backend one",
        Duration::from_secs(5),
        || {
            let r = ns.get(&target);
            async move { r.as_deref().ok() == Some("one") }
        },
    )
    .await;
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(ns.get(&format!("10.200.0.12:{node_port}")).unwrap(), "one");

    // The endpoint moves: the next connections go to the new backend.
    let mut s = slices.get("web-1").await.unwrap();
    s.endpoints = slice("web", "web-1", &["10.244.3.6"]).endpoints;
    slices
        .replace("web-1", &PostParams::default(), &s)
        .await
        .unwrap();
    let took = eventually(
        "ClusterIP reaches backend two",
        Duration::from_secs(5),
        || {
            let r = ns.get(&target);
            async move { r.as_deref().ok() == Some("two") }
        },
    )
    .await;
    assert!(took < Duration::from_millis(1500), "took {took:?}");

    // Deleting the Service removes its chains.
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "chains of the deleted service gone",
        Duration::from_secs(5),
        || {
            let table = ns.table();
            async move { !table.contains("default/web/") && table.contains("chain services") }
        },
    )
    .await;

    let (code, body) = http_get(metrics, "/metrics").await;
    assert_eq!(code, 200);
    for name in [
        "kubeproxy_sync_proxy_rules_duration_seconds_bucket",
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
        "kubeproxy_sync_proxy_rules_endpoint_changes_total",
        "kubeproxy_sync_proxy_rules_service_changes_total",
        "kubeproxy_sync_full_proxy_rules_duration_seconds",
        "kubeproxy_sync_partial_proxy_rules_duration_seconds",
    ] {
        assert!(body.contains(name), "{name} missing:\n{body}");
    }
    let (code, _) = http_get(healthz, "/livez").await;
    assert_eq!(code, 200);

    // Stopping leaves the rules in place.
    stop.cancel();
    running.wait().await;
    assert!(ns.table().contains("chain services"));
}

/// The kube-proxy binary: syncs, serves /healthz, and on SIGTERM exits 0
/// leaving its rules in place (as upstream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_sigterm_leaves_rules() {
    let ns = Netns::bare();
    let server = TestServer::start().await.expect("test apiserver");
    let kubeconfig = server.kubeconfig_file().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kube-proxy"))
        .args([
            format!("--kubeconfig={}", kubeconfig.display()),
            "--hostname-override=node-b".into(),
            format!("--healthz-bind-address=127.0.0.1:{port}"),
            "--metrics-bind-address=".into(),
            format!("--netns={}", ns.name),
        ])
        .spawn()
        .expect("start kube-proxy");
    let healthz: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    eventually("healthy", Duration::from_secs(20), || async {
        match tokio::net::TcpStream::connect(healthz).await {
            Ok(_) => http_get(healthz, "/healthz").await.0 == 200,
            Err(_) => false,
        }
    })
    .await;
    assert!(ns.table().contains("chain services"));
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(ns.table().contains("chain services"), "rules left in place");
}
