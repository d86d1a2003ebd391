//! Networking benchmarks (`bench --net-only`, also part of a full run):
//! three-node `create cluster` time, kube-proxy sync times for 1000
//! Services × 10 endpoints (full sync, one endpoint change), and the TCP
//! connection rate through a ClusterIP against the pod IP directly.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use test_e2e::Cluster;

pub struct NetFigures {
    pub create: Vec<Duration>,
    pub full_sync: Option<Duration>,
    pub change_syncs: Vec<Duration>,
    pub services: usize,
    pub endpoints: usize,
    pub pod_rate: f64,
    pub cluster_ip_rate: f64,
}

fn pct(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let i = ((p / 100.0) * (s.len() as f64 - 1.0)).round() as usize;
    s[i.min(s.len() - 1)]
}

impl NetFigures {
    pub fn print(&self) {
        println!();
        println!(
            "Networking (3-node cluster: kube-proxy nftables mode, default minSyncPeriod 1 s)"
        );
        println!();
        println!("| measure | value |");
        println!("|---------|------:|");
        for (i, d) in self.create.iter().enumerate() {
            println!(
                "| create cluster --nodes 3 until all Ready, run {}, s | {:.2} |",
                i + 1,
                d.as_secs_f64()
            );
        }
        if let Some(d) = self.full_sync {
            println!(
                "| kube-proxy full sync, {} Services × {} endpoints, ms | {:.0} |",
                self.services,
                self.endpoints,
                d.as_secs_f64() * 1000.0
            );
        }
        if !self.change_syncs.is_empty() {
            println!(
                "| kube-proxy sync after one endpoint change at that size ({} changes), p50 / p99 ms | {:.1} / {:.1} |",
                self.change_syncs.len(),
                pct(&self.change_syncs, 50.0).as_secs_f64() * 1000.0,
                pct(&self.change_syncs, 99.0).as_secs_f64() * 1000.0
            );
        }
        println!("| TCP connects/s to the pod IP | {:.0} |", self.pod_rate);
        println!(
            "| TCP connects/s through the ClusterIP | {:.0} |",
            self.cluster_ip_rate
        );
        let ratio = self.cluster_ip_rate / self.pod_rate.max(1e-9);
        println!("| ClusterIP / pod IP | {ratio:.2} |");
        println!();
        let best = self.create.iter().min().copied().unwrap_or_default();
        println!(
            "target create cluster (3 nodes) ≤ 10 s: {:.2} s {}",
            best.as_secs_f64(),
            if !self.create.is_empty() && best <= Duration::from_secs(10) {
                "MET"
            } else {
                "NOT MET"
            }
        );
        if let Some(d) = self.full_sync {
            println!(
                "target kube-proxy full sync ≤ 1 s: {:.0} ms {}",
                d.as_secs_f64() * 1000.0,
                if d <= Duration::from_secs(1) {
                    "MET"
                } else {
                    "NOT MET"
                }
            );
        }
        if !self.change_syncs.is_empty() {
            let p99 = pct(&self.change_syncs, 99.0);
            println!(
                "target kube-proxy one-change sync p99 ≤ 50 ms: {:.1} ms {}",
                p99.as_secs_f64() * 1000.0,
                if p99 <= Duration::from_millis(50) {
                    "MET"
                } else {
                    "NOT MET"
                }
            );
        }
    }
}

/// Runs `f` on a thread inside network namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    let h = std::thread::spawn(move || {
        // SAFETY: setns on this thread only, with an fd we hold open.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(anyhow!("setns: {}", std::io::Error::last_os_error()));
        }
        Ok(f())
    });
    h.join().map_err(|_| anyhow!("netns thread panicked"))?
}

/// kube-proxy's metrics (127.0.0.1:10249 inside the node's namespace).
fn proxy_metrics(ns: &str) -> Result<String> {
    in_netns(ns, || -> Result<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect_timeout(
            &"127.0.0.1:10249".parse().unwrap(),
            Duration::from_secs(2),
        )?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")?;
        let mut b = String::new();
        s.read_to_string(&mut b)?;
        Ok(b)
    })?
}

/// (sum seconds, count) of a histogram in Prometheus text.
fn histogram(text: &str, name: &str) -> (f64, f64) {
    let get = |suffix: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}_{suffix} ")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (get("sum"), get("count"))
}

/// Connections per second to `addr` from inside `ns` over `secs`.
fn connect_rate(ns: &str, addr: std::net::SocketAddr, secs: u64) -> Result<f64> {
    in_netns(ns, move || {
        let end = Instant::now() + Duration::from_secs(secs);
        let start = Instant::now();
        let (mut ok, mut failed) = (0u64, 0u64);
        while Instant::now() < end {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(s) => {
                    drop(s);
                    ok += 1;
                }
                Err(_) => failed += 1,
            }
        }
        if failed > ok / 100 {
            return Err(anyhow!(
                "{failed} of {} connects to {addr} failed",
                ok + failed
            ));
        }
        Ok(ok as f64 / start.elapsed().as_secs_f64())
    })?
}

async fn client_for(c: &Cluster) -> Result<Client> {
    let kc = kube::config::Kubeconfig::read_from(&c.kubeconfig)?;
    let opts = kube::config::KubeConfigOptions {
        context: Some(c.context.clone()),
        ..Default::default()
    };
    Ok(Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &opts).await?,
    )?)
}

pub async fn run(services: usize, endpoints: usize, creates: usize) -> Result<NetFigures> {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;

    // (1) cluster creation, warm binaries; the last cluster stays for the rest.
    let mut create = Vec::new();
    let mut cluster = None;
    for i in 0..creates.max(1) {
        let t = Instant::now();
        let c = Cluster::create_with(&["--nodes", "3"]);
        create.push(t.elapsed());
        eprintln!("  create cluster --nodes 3 #{}: {:.2?}", i + 1, t.elapsed());
        if i + 1 < creates.max(1) {
            drop(c);
        } else {
            cluster = Some(c);
        }
    }
    let c = cluster.expect("a cluster");
    let client = client_for(&c).await?;
    let worker = format!("{}-worker", c.name);
    let ns_worker = format!("fk-{worker}");

    // (3) connection rate first, on a quiet cluster: a test-server pod on
    // worker2, connections from worker's namespace (host network).
    c.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: target, labels: {{app: target}}}}
spec:
  nodeName: {}-worker2
  containers: [{{name: s, image: docker.io/ferrokube/test-server:latest, readinessProbe: {{tcpSocket: {{port: 8081}}, periodSeconds: 1}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: target}}
spec:
  selector: {{app: target}}
  ports: [{{port: 8081, targetPort: 8081}}]
"#,
            c.name
        ),
    );
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/target",
        "--timeout=120s",
    ]);
    let pod_ip = c.kubectl_ok(&["get", "pod", "target", "-o", "jsonpath={.status.podIP}"]);
    let svc_ip = c.kubectl_ok(&[
        "get",
        "service",
        "target",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pod_addr = format!("{pod_ip}:8081").parse()?;
    let svc_addr = format!("{svc_ip}:8081").parse()?;
    // Warm up, then alternate to even out noise.
    connect_rate(&ns_worker, pod_addr, 1)?;
    let (mut pod_rate, mut svc_rate) = (0.0, 0.0);
    for _ in 0..2 {
        pod_rate += connect_rate(&ns_worker, pod_addr, 3)? / 2.0;
        svc_rate += connect_rate(&ns_worker, svc_addr, 3)? / 2.0;
    }
    eprintln!("  connects/s: pod IP {pod_rate:.0}, ClusterIP {svc_rate:.0}");

    // (2) kube-proxy at 1000 Services × 10 endpoints: selector-less
    // Services with their own EndpointSlices (addresses need not exist).
    eprintln!("  creating {services} Services × {endpoints} endpoints");
    let ns = "bench-proxy";
    c.kubectl_ok(&["create", "namespace", ns]);
    let svc_api: Api<Service> = Api::namespaced(client.clone(), ns);
    let eps_api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let slice = |i: usize, gen: usize| -> EndpointSlice {
        let eps: Vec<serde_json::Value> = (0..endpoints)
            .map(|e| {
                serde_json::json!({"addresses": [format!("10.250.{}.{}", (i * endpoints + e + gen) / 250 % 250, (i * endpoints + e + gen) % 250 + 1)],
                    "conditions": {"ready": true, "serving": true, "terminating": false}})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("s{i:04}-x"), "labels": {"kubernetes.io/service-name": format!("s{i:04}")}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": eps,
        }))
        .expect("static slice")
    };
    futures::stream::iter(0..services)
        .for_each_concurrent(32, |i| {
            let (svc_api, eps_api) = (svc_api.clone(), eps_api.clone());
            let s = slice(i, 0);
            async move {
                let svc: Service = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": format!("s{i:04}")},
                    "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
                }))
                .expect("static service");
                if let Err(e) = svc_api.create(&PostParams::default(), &svc).await {
                    eprintln!("  service s{i:04}: {e}");
                }
                if let Err(e) = eps_api.create(&PostParams::default(), &s).await {
                    eprintln!("  slice s{i:04}: {e}");
                }
            }
        })
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    // A full sync at this size: restart kube-proxy on the worker (its first
    // sync is full) and read the full-sync histogram.
    let out = c.ferrokube(
        &[
            "restart",
            "kube-proxy",
            "--name",
            &c.name,
            "--node",
            &worker,
        ],
        Duration::from_secs(60),
    );
    if !out.status.success() {
        bail!(
            "restart kube-proxy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let full_sync = loop {
        if let Ok(m) = proxy_metrics(&ns_worker) {
            let (sum, count) = histogram(&m, "kubeproxy_sync_full_proxy_rules_duration_seconds");
            if count >= 1.0 {
                break Some(Duration::from_secs_f64(sum / count));
            }
        }
        if Instant::now() > deadline {
            eprintln!("  no full sync seen");
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // One endpoint change at a time, spaced beyond minSyncPeriod; each
    // partial sync's duration from the histogram's sum.
    let mut change_syncs = Vec::new();
    let hname = "kubeproxy_sync_partial_proxy_rules_duration_seconds";
    for k in 0..40usize {
        let before = histogram(&proxy_metrics(&ns_worker)?, hname);
        let i = (k * 37) % services;
        let s = slice(i, k + 1);
        let patch = serde_json::json!({"endpoints": s.endpoints});
        eps_api
            .patch(
                &format!("s{i:04}-x"),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let after = histogram(&proxy_metrics(&ns_worker)?, hname);
            if after.1 >= before.1 + 1.0 {
                change_syncs.push(Duration::from_secs_f64(
                    ((after.0 - before.0) / (after.1 - before.1)).max(0.0),
                ));
                break;
            }
            if Instant::now() > deadline {
                eprintln!("  change {k}: no partial sync seen");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    drop(c);
    Ok(NetFigures {
        create,
        full_sync,
        change_syncs,
        services,
        endpoints,
        pod_rate,
        cluster_ip_rate: svc_rate,
    })
}
