//! The cloud-controller-manager in-process against an in-process apiserver
//! (apiserver::testing::TestServer) with the `local` provider on a test
//! bridge and a test network namespace created here (root only; every
//! address stays inside 10.255.<x>.0/24 on that bridge):
//! node initialization, pod CIDR routes and NetworkUnavailable, a
//! LoadBalancer Service's address and host route and their cleanup, and the
//! deletion of a NotReady node whose namespace is gone.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use apiserver::testing::TestServer;
use clap::Parser;
use cloud_controller_manager::options::Options;
use k8s_openapi::api::core::v1::{Event, Node, NodeSpec, Service, ServicePort, ServiceSpec, Taint};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const PROTO: &str = "147";

fn sh(args: &[&str]) -> (bool, String) {
    match Command::new("ip").args(args).output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

fn must(args: &[&str]) {
    let (ok, out) = sh(args);
    assert!(ok, "ip {}: {out}", args.join(" "));
}

/// The host side: a bridge, a node netns with a veth into it. Removed on drop.
struct Host {
    x: u32,
    bridge: String,
    veth: String,
    netns: String,
    node: String,
    netns_gone: bool,
}

impl Host {
    fn create() -> Host {
        let pid = std::process::id();
        let x = pid % 200 + 20;
        let h = Host {
            x,
            bridge: format!("fkccm{}", pid % 1000),
            veth: format!("vccm{}", pid % 100000),
            node: format!("ccm{pid}-n1"),
            netns: format!("fk-ccm{pid}-n1"),
            netns_gone: false,
        };
        h.cleanup();
        must(&["link", "add", &h.bridge, "type", "bridge"]);
        must(&["addr", "add", &format!("10.255.{x}.1/26"), "dev", &h.bridge]);
        must(&["link", "set", &h.bridge, "up"]);
        must(&["netns", "add", &h.netns]);
        must(&[
            "link", "add", &h.veth, "type", "veth", "peer", "name", "eth0", "netns", &h.netns,
        ]);
        must(&["link", "set", &h.veth, "master", &h.bridge, "up"]);
        must(&[
            "-n",
            &h.netns,
            "addr",
            "add",
            &format!("10.255.{x}.10/26"),
            "dev",
            "eth0",
        ]);
        must(&["-n", &h.netns, "link", "set", "eth0", "up"]);
        h
    }

    fn subnet(&self) -> String {
        format!("10.255.{}.0/24", self.x)
    }

    fn cleanup(&self) {
        let subnet = self.subnet();
        let _ = sh(&["route", "flush", "root", &subnet, "proto", PROTO]);
        let _ = sh(&["link", "del", &self.veth]);
        if !self.netns_gone {
            let _ = sh(&["netns", "del", &self.netns]);
        }
        let _ = sh(&["link", "del", &self.bridge]);
    }

    /// Our routes in the test subnet, one per line.
    fn routes(&self) -> String {
        sh(&[
            "-4",
            "route",
            "show",
            "proto",
            PROTO,
            "root",
            &self.subnet(),
        ])
        .1
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.cleanup();
    }
}

struct Env {
    host: Host,
    client: kube::Client,
    stop: CancellationToken,
    opts: Options,
    _server: TestServer,
    _dir: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
        // Let the controllers stop before the host side goes.
        std::thread::sleep(Duration::from_millis(500));
    }
}

async fn start() -> Env {
    let host = Host::create();
    let x = host.x;
    let server = TestServer::start().await.expect("test apiserver");
    let kubeconfig = server.kubeconfig_file().unwrap();
    let client = server.client().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cloud.yaml");
    std::fs::write(
        &cfg,
        format!(
            "clusterName: ccmtest\nbridge: {}\nnodeSubnet: 10.255.{x}.0/26\nloadBalancerPool: 10.255.{x}.40-10.255.{x}.50\n",
            host.bridge
        ),
    )
    .unwrap();
    let opts = Options::parse_from([
        "cloud-controller-manager".to_string(),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--cloud-provider=local".into(),
        format!("--cloud-config={}", cfg.display()),
        "--leader-elect=false".into(),
        "--secure-port=0".into(),
        "--cluster-name=ccmtest".into(),
        format!("--cluster-cidr=10.255.{x}.128/25"),
        "--allocate-node-cidrs=true".into(),
        "--route-reconciliation-period=1s".into(),
        "--node-monitor-period=1s".into(),
        "--node-status-update-frequency=2s".into(),
    ]);
    let stop = spawn_ccm(&opts);
    Env {
        host,
        client,
        stop,
        opts,
        _server: server,
        _dir: dir,
    }
}

fn spawn_ccm(opts: &Options) -> CancellationToken {
    let stop = CancellationToken::new();
    let (s, opts) = (stop.clone(), opts.clone());
    tokio::spawn(async move {
        if let Err(e) = cloud_controller_manager::run_until(opts, s).await {
            panic!("cloud-controller-manager failed: {e:#}");
        }
    });
    stop
}

impl Env {
    /// Stops the cloud-controller-manager and starts a fresh one.
    async fn restart(&mut self) {
        self.stop.cancel();
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.stop = spawn_ccm(&self.opts);
    }
}

fn lb_service(name: &str, f: impl FnOnce(&mut ServiceSpec)) -> Service {
    let mut spec = ServiceSpec {
        type_: Some("LoadBalancer".into()),
        selector: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
        ports: Some(vec![ServicePort {
            port: 80,
            ..Default::default()
        }]),
        ..Default::default()
    };
    f(&mut spec);
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(spec),
        ..Default::default()
    }
}

/// The service's ingress IP once it has exactly one with ipMode VIP and our finalizer.
async fn lb_ip_of(services: &Api<Service>, name: &str) -> Option<String> {
    let s = services.get(name).await.ok()?;
    let ours = s
        .metadata
        .finalizers
        .unwrap_or_default()
        .iter()
        .any(|f| f == "service.kubernetes.io/load-balancer-cleanup");
    let ing = s
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|l| l.ingress)
        .unwrap_or_default();
    (ours && ing.len() == 1 && ing[0].ip_mode.as_deref() == Some("VIP"))
        .then(|| ing[0].ip.clone())
        .flatten()
}

async fn wait_lb_ip(services: &Api<Service>, name: &str, want: &str) {
    eventually(&format!("{name} gets {want}"), 30, || {
        let services = services.clone();
        async move { lb_ip_of(&services, name).await.as_deref() == Some(want) }
    })
    .await;
}

async fn eventually<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn set_ready(nodes: &Api<Node>, name: &str, ready: bool) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let p = json!({"status": {"conditions": [{
        "type": "Ready",
        "status": if ready { "True" } else { "False" },
        "reason": "Test",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(&p))
        .await
        .unwrap();
}

async fn has_event(client: &kube::Client, ns: Option<&str>, name: &str, reason: &str) -> bool {
    let api: Api<Event> = match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    api.list(&Default::default()).await.is_ok_and(|l| {
        l.items.iter().any(|e| {
            e.reason.as_deref() == Some(reason) && e.involved_object.name.as_deref() == Some(name)
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_cloud_end_to_end() {
    let mut env = start().await;
    let x = env.host.x;
    let node_name = env.host.node.clone();
    let nodes: Api<Node> = Api::all(env.client.clone());

    // 1. An uninitialized node is initialized from its netns.
    nodes
        .create(
            &PostParams::default(),
            &Node {
                metadata: ObjectMeta {
                    name: Some(node_name.clone()),
                    ..Default::default()
                },
                spec: Some(NodeSpec {
                    taints: Some(vec![Taint {
                        key: "node.cloudprovider.kubernetes.io/uninitialized".into(),
                        value: Some("true".into()),
                        effect: "NoSchedule".into(),
                        time_added: None,
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    set_ready(&nodes, &node_name, true).await;
    let node_ip = format!("10.255.{x}.10");
    eventually("node initialized", 30, || {
        let (nodes, name, ip) = (nodes.clone(), node_name.clone(), node_ip.clone());
        async move {
            let Ok(n) = nodes.get(&name).await else {
                return false;
            };
            let spec = n.spec.clone().unwrap_or_default();
            let labels = n.metadata.labels.clone().unwrap_or_default();
            let addrs = n
                .status
                .as_ref()
                .and_then(|s| s.addresses.clone())
                .unwrap_or_default();
            spec.provider_id.as_deref() == Some(&format!("ferrokube://ccmtest/{name}"))
                && !spec
                    .taints
                    .unwrap_or_default()
                    .iter()
                    .any(|t| t.key.contains("uninitialized"))
                && labels
                    .get("topology.kubernetes.io/zone")
                    .map(String::as_str)
                    == Some("ccmtest")
                && labels
                    .get("topology.kubernetes.io/region")
                    .map(String::as_str)
                    == Some("local")
                && labels
                    .get("node.kubernetes.io/instance-type")
                    .map(String::as_str)
                    == Some("ferrokube-node")
                && addrs
                    .iter()
                    .any(|a| a.type_ == "InternalIP" && a.address == ip)
                && addrs
                    .iter()
                    .any(|a| a.type_ == "Hostname" && a.address == name)
        }
    })
    .await;

    // 2. A pod CIDR gets a host route via the node, and NetworkUnavailable=False.
    let pod_cidr = format!("10.255.{x}.128/28");
    nodes
        .patch(
            &node_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}})),
        )
        .await
        .unwrap();
    let want_route = format!("{pod_cidr} via {node_ip} dev {}", env.host.bridge);
    eventually("pod CIDR route", 30, || {
        let r = env.host.routes();
        let w = want_route.clone();
        async move { r.contains(&w) }
    })
    .await;
    eventually("NetworkUnavailable=False", 30, || {
        let (nodes, name) = (nodes.clone(), node_name.clone());
        async move {
            nodes.get(&name).await.is_ok_and(|n| {
                n.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| {
                        c.type_ == "NetworkUnavailable"
                            && c.status == "False"
                            && c.reason.as_deref() == Some("RouteCreated")
                    })
            })
        }
    })
    .await;

    // 3. A LoadBalancer Service gets a pool address and a host route.
    let services: Api<Service> = Api::namespaced(env.client.clone(), "default");
    let pp = PostParams::default();
    services
        .create(&pp, &lb_service("web", |_| {}))
        .await
        .unwrap();
    let lb_ip = format!("10.255.{x}.40");
    wait_lb_ip(&services, "web", &lb_ip).await;
    let want_lb_route = format!("{lb_ip} via {node_ip} dev {}", env.host.bridge);
    eventually("load balancer route", 30, || {
        let r = env.host.routes();
        let w = want_lb_route.clone();
        async move { r.contains(&w) }
    })
    .await;
    eventually("EnsuredLoadBalancer event", 30, || {
        let c = env.client.clone();
        async move { has_event(&c, Some("default"), "web", "EnsuredLoadBalancer").await }
    })
    .await;

    // spec.loadBalancerIP inside the pool is honoured.
    let requested = format!("10.255.{x}.45");
    let r = requested.clone();
    services
        .create(
            &pp,
            &lb_service("web2", move |s| s.load_balancer_ip = Some(r)),
        )
        .await
        .unwrap();
    wait_lb_ip(&services, "web2", &requested).await;
    // A Service with a loadBalancerClass belongs to another controller.
    services
        .create(
            &pp,
            &lb_service("web-class", |s| {
                s.load_balancer_class = Some("example.com/other".into())
            }),
        )
        .await
        .unwrap();
    // externalTrafficPolicy Local: only nodes with a ready local endpoint.
    services
        .create(
            &pp,
            &lb_service("web-local", |s| {
                s.external_traffic_policy = Some("Local".into());
                // The apiserver does not allocate it (upstream does).
                s.health_check_node_port = Some(31000 + x as i32);
            }),
        )
        .await
        .unwrap();
    let local_ip = format!("10.255.{x}.41");
    wait_lb_ip(&services, "web-local", &local_ip).await;
    eventually("unreachable route without local endpoints", 30, || {
        let r = env.host.routes();
        let w = format!("unreachable {local_ip}");
        async move { r.contains(&w) }
    })
    .await;
    let slices: Api<EndpointSlice> = Api::namespaced(env.client.clone(), "default");
    slices
        .create(
            &pp,
            &EndpointSlice {
                metadata: ObjectMeta {
                    name: Some("web-local-1".into()),
                    labels: Some(BTreeMap::from([(
                        "kubernetes.io/service-name".to_string(),
                        "web-local".to_string(),
                    )])),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: vec![Endpoint {
                    addresses: vec![format!("10.255.{x}.130")],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        ..Default::default()
                    }),
                    node_name: Some(node_name.clone()),
                    ..Default::default()
                }],
                ports: None,
            },
        )
        .await
        .unwrap();
    eventually("route via the node with the endpoint", 30, || {
        let r = env.host.routes();
        let w = format!("{local_ip} via {node_ip} dev {}", env.host.bridge);
        async move { r.contains(&w) }
    })
    .await;
    let c = services.get("web-class").await.unwrap();
    assert!(c.metadata.finalizers.is_none(), "{:?}", c.metadata);
    assert!(c
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|l| l.ingress)
        .is_none());

    // A Service that stops being a LoadBalancer loses its address and route.
    services
        .patch(
            "web2",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "ClusterIP", "loadBalancerIP": null}})),
        )
        .await
        .unwrap();
    eventually("web2 cleaned up", 30, || {
        let services = services.clone();
        async move {
            services.get("web2").await.is_ok_and(|s| {
                s.metadata.finalizers.unwrap_or_default().is_empty()
                    && s.status
                        .and_then(|s| s.load_balancer)
                        .and_then(|l| l.ingress)
                        .unwrap_or_default()
                        .is_empty()
            })
        }
    })
    .await;
    let routes = env.host.routes();
    assert!(!routes.contains(&format!("{requested} ")), "{routes}");

    // 4. Allocations survive a restart: a new Service does not take a held address.
    env.restart().await;
    services
        .create(&pp, &lb_service("web3", |_| {}))
        .await
        .unwrap();
    wait_lb_ip(&services, "web3", &format!("10.255.{x}.42")).await;
    assert_eq!(lb_ip_of(&services, "web").await, Some(lb_ip.clone()));
    assert!(env.host.routes().contains(&want_lb_route));

    // 5. Deleting the Services removes their routes, then the finalizers.
    for name in ["web", "web2", "web3", "web-local", "web-class"] {
        services
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    eventually("services gone", 30, || {
        let services = services.clone();
        async move {
            services.list(&Default::default()).await.is_ok_and(|l| {
                l.items.iter().all(|s| {
                    !s.metadata
                        .name
                        .as_deref()
                        .unwrap_or_default()
                        .starts_with("web")
                })
            })
        }
    })
    .await;
    eventually("DeletedLoadBalancer event", 30, || {
        let c = env.client.clone();
        async move { has_event(&c, Some("default"), "web", "DeletedLoadBalancer").await }
    })
    .await;
    let routes = env.host.routes();
    for ip in [&lb_ip, &requested, &local_ip] {
        assert!(
            !routes.contains(&format!("{ip} ")),
            "load balancer route left behind: {routes}"
        );
    }

    // A NotReady node whose instance is shut down (eth0 down) gets the
    // shutdown taint, which goes once it is Ready again.
    let has_shutdown_taint = |nodes: Api<Node>, name: String| async move {
        nodes.get(&name).await.is_ok_and(|n| {
            n.spec
                .and_then(|s| s.taints)
                .unwrap_or_default()
                .iter()
                .any(|t| {
                    t.key == "node.cloudprovider.kubernetes.io/shutdown" && t.effect == "NoSchedule"
                })
        })
    };
    set_ready(&nodes, &node_name, false).await;
    must(&["-n", &env.host.netns, "link", "set", "eth0", "down"]);
    eventually("shutdown taint", 30, || {
        has_shutdown_taint(nodes.clone(), node_name.clone())
    })
    .await;
    must(&["-n", &env.host.netns, "link", "set", "eth0", "up"]);
    set_ready(&nodes, &node_name, true).await;
    eventually("shutdown taint removed", 30, || {
        let f = has_shutdown_taint(nodes.clone(), node_name.clone());
        async move { !f.await }
    })
    .await;

    // 6. A NotReady node whose netns is gone is deleted, and so is its route.
    set_ready(&nodes, &node_name, false).await;
    must(&["netns", "del", &env.host.netns]);
    env.host.netns_gone = true;
    eventually("node deleted", 30, || {
        let (nodes, name) = (nodes.clone(), node_name.clone());
        async move { matches!(nodes.get_opt(&name).await, Ok(None)) }
    })
    .await;
    eventually("pod CIDR route removed", 30, || {
        let r = env.host.routes();
        let c = pod_cidr.clone();
        async move { !r.contains(&c) }
    })
    .await;
    assert!(
        has_event(&env.client, None, &node_name, "DeletingNode").await
            || has_event(&env.client, Some("default"), &node_name, "DeletingNode").await
    );
}

/// With leader election on (the default), the controllers run under the
/// `cloud-controller-manager` Lease in kube-system.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_lease() {
    let server = TestServer::start().await.expect("test apiserver");
    let kubeconfig = server.kubeconfig_file().unwrap();
    let client = server.client().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cloud.json");
    // Only the cloud node controller, which leaves the host alone when there are no nodes.
    std::fs::write(
        &cfg,
        r#"{"bridge": "fkccm-none", "nodeSubnet": "10.255.255.0/26"}"#,
    )
    .unwrap();
    let opts = Options::parse_from([
        "cloud-controller-manager".to_string(),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--cloud-provider=local".into(),
        format!("--cloud-config={}", cfg.display()),
        "--controllers=cloud-node".into(),
        "--secure-port=0".into(),
        "--leader-elect-lease-duration=5s".into(),
        "--leader-elect-renew-deadline=3s".into(),
        "--leader-elect-retry-period=1s".into(),
    ]);
    let stop = spawn_ccm(&opts);
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-system");
    eventually("cloud-controller-manager lease", 30, || {
        let leases = leases.clone();
        async move {
            leases
                .get_opt("cloud-controller-manager")
                .await
                .ok()
                .flatten()
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
                .is_some_and(|h| !h.is_empty())
        }
    })
    .await;
    stop.cancel();
}
