//! kube-proxy sync times at scale, in a scratch network namespace (needs
//! root and `nft`; nothing outside the namespace is touched, and the
//! namespace is deleted at the end):
//!
//! ```text
//! cargo run --release -p proxy --example sync_bench -- [SERVICES] [ENDPOINTS] [CHANGES]
//! ```
//!
//! Defaults: 1000 Services × 10 endpoints, 40 changes. It creates the
//! namespace `fkperf-PID`, runs itself inside it (as kube-proxy runs in a
//! node's namespace: `nft` directly, no `ip netns exec`), feeds Services and
//! EndpointSlices to a [`proxy::proxier::Proxier`] as the watches would,
//! and times with [`proxy::proxier::Syncer`]:
//!
//! * the first sync (full, empty table);
//! * CHANGES partial syncs, each after one endpoint of one Service changed
//!   address (the change is reverted by another, uncounted sync; syncs are
//!   1 s apart as `--min-sync-period` spaces them, `FKPERF_GAP_MS=N` to
//!   change that): p50 / p99 of wall time and of CPU time (kube-proxy +
//!   `nft`), `FKPERF_ALL=1` prints each;
//! * a periodic full sync and the full sync of a restarted kube-proxy (no
//!   previous state, table in place);
//!
//! with each sync's phases (model snapshot, ruleset build, listing, rendering
//! the transaction, `nft -f`). At the end the kernel's table must hold
//! exactly the chains and sets wanted. `FKPERF_DUMP=DIR` writes the full
//! transaction (`full.nft`) and the in-place full rewrite (`inplace.nft`)
//! there, to time `nft -f` alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeStatus, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::ObjectMeta;
use proxy::health::ProxierHealth;
use proxy::metrics::Metrics;
use proxy::options::Options;
use proxy::proxier::{Proxier, Syncer};

fn service(i: usize) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(format!("svc-{i}")),
            namespace: Some("bench-proxy".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some(format!("10.96.{}.{}", i / 250, i % 250 + 1)),
            ports: Some(vec![ServicePort {
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

fn endpoint_ip(i: usize, k: usize, generation: usize) -> String {
    let n = i * 64 + k + generation * 16;
    format!("10.{}.{}.{}", 128 + n / 65536, (n / 256) % 256, n % 256)
}

fn slice(i: usize, endpoints: usize, changed: Option<(usize, usize)>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("svc-{i}-1")),
            namespace: Some("bench-proxy".into()),
            labels: Some([("kubernetes.io/service-name".to_string(), format!("svc-{i}"))].into()),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: (0..endpoints)
            .map(|k| {
                let generation = match changed {
                    Some((ck, g)) if ck == k => g,
                    _ => 0,
                };
                Endpoint {
                    addresses: vec![endpoint_ip(i, k, generation)],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        serving: Some(true),
                        terminating: Some(false),
                    }),
                    node_name: Some(if k % 3 == 0 { "node-a" } else { "node-b" }.into()),
                    ..Default::default()
                }
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(8080),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    }
}

fn pct(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    let i = ((p / 100.0) * (s.len() as f64 - 1.0)).round() as usize;
    s[i.min(s.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn sh(args: &[&str]) -> std::process::Output {
    std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run command")
}

struct Scratch(String);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.0]);
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: SERVICES ENDPOINTS CHANGES"))
        .collect();
    let services = args.first().copied().unwrap_or(1000);
    let endpoints = args.get(1).copied().unwrap_or(10);
    let changes = args.get(2).copied().unwrap_or(40);

    if let Ok(ns) = std::env::var("FKPERF_INSIDE") {
        // Re-executed inside the namespace (as kube-proxy runs in a node's
        // namespace): nft runs directly, not through `ip netns exec`.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(&ns, services, endpoints, changes));
        return;
    }
    let ns = format!("fkperf-{}", std::process::id());
    let out = sh(&["ip", "netns", "add", &ns]);
    assert!(
        out.status.success(),
        "ip netns add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _scratch = Scratch(ns.clone());
    sh(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);

    let me = std::env::current_exe().unwrap();
    let status = std::process::Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(me)
        .args(std::env::args().skip(1))
        .env("FKPERF_INSIDE", &ns)
        .status()
        .expect("ip netns exec");
    assert!(status.success());
}

/// CPU time (user + system) of the children waited for so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// CPU time (user + system) of this process.
fn self_cpu() -> Duration {
    // SAFETY: getrusage fills the struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

async fn run(ns: &str, services: usize, endpoints: usize, changes: usize) {
    let _ = ns;
    let settings = Options::parse_from([
        "kube-proxy",
        "--hostname-override",
        "node-a",
        "--cluster-cidr",
        "10.128.0.0/9",
    ])
    .settings()
    .unwrap();
    let proxier = Proxier::new(
        settings,
        Arc::new(Metrics::new()),
        ProxierHealth::new(Duration::from_secs(60)),
    );
    proxier.set_node(Some(Node {
        metadata: ObjectMeta {
            name: Some("node-a".into()),
            ..Default::default()
        },
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: "10.200.0.10".into(),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }));
    let t = Instant::now();
    proxier.replace_services((0..services).map(service).collect());
    proxier.replace_slices((0..services).map(|i| slice(i, endpoints, None)).collect());
    println!(
        "{services} Services x {endpoints} endpoints fed to the proxier in {}",
        ms(t.elapsed())
    );

    if let Some(dir) = std::env::var_os("FKPERF_DUMP") {
        // The full transaction, for timing `nft -f` alone.
        let model = proxy::model::join(
            (0..services).map(service).collect::<Vec<_>>().iter(),
            (0..services)
                .map(|i| slice(i, endpoints, None))
                .collect::<Vec<_>>()
                .iter(),
            "node-a",
        );
        let cfg = proxy::RuleConfig {
            cluster_cidr: Some("10.128.0.0/9".parse().unwrap()),
            node_port_addresses: proxy::NodePortAddresses::Ips(vec!["10.200.0.10"
                .parse()
                .unwrap()]),
            ..Default::default()
        };
        let text = proxy::render_ruleset(&cfg, &model);
        std::fs::write(std::path::Path::new(&dir).join("full.nft"), text).unwrap();
    }
    let mut syncer = Syncer::new(proxier.clone());
    let (t, c0, s0) = (Instant::now(), children_cpu(), self_cpu());
    syncer.sync(true).await.expect("first sync");
    let first = t.elapsed();
    println!(
        "first sync (full, empty table): {} (CPU: nft {}, kube-proxy {})",
        ms(first),
        ms(children_cpu() - c0),
        ms(self_cpu() - s0)
    );
    if let Some(p) = syncer.last_phases() {
        println!("  phases: {p}");
    }

    // Syncs are at least --min-sync-period (1 s) apart in kube-proxy; the
    // kernel finishes releasing what a transaction removed (after an RCU
    // grace period) in the background, and the next transaction waits for
    // that if it comes at once. FKPERF_GAP_MS sets the pause (default 1000).
    let gap = Duration::from_millis(
        std::env::var("FKPERF_GAP_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
    );
    let mut partial = Vec::new();
    let mut partial_cpu = Vec::new();
    for c in 0..changes {
        // One endpoint of one Service changes address.
        let i = (c * 7919) % services;
        let k = c % endpoints;
        proxier.upsert_slice(slice(i, endpoints, Some((k, 1 + c % 3))));
        let (t, c0, s0) = (Instant::now(), children_cpu(), self_cpu());
        syncer.sync(false).await.expect("partial sync");
        let d = t.elapsed();
        partial.push(d);
        partial_cpu.push(children_cpu() - c0 + self_cpu() - s0);
        if c == 0 {
            println!(
                "transaction of change 0:\n{}",
                syncer.last_partial_transaction()
            );
        }
        if c < 3 || c + 1 == changes {
            println!("change {c}: {}", ms(d));
            if let Some(p) = syncer.last_phases() {
                println!("  phases: {p}");
            }
        }
        // Put it back (another partial sync, not counted).
        tokio::time::sleep(gap).await;
        proxier.upsert_slice(slice(i, endpoints, None));
        syncer.sync(false).await.expect("partial sync");
        tokio::time::sleep(gap).await;
    }
    println!(
        "one-endpoint-change syncs ({changes}): p50 {} / p99 {} / max {}",
        ms(pct(&partial, 50.0)),
        ms(pct(&partial, 99.0)),
        ms(pct(&partial, 100.0))
    );
    if std::env::var_os("FKPERF_ALL").is_some() {
        let all: Vec<String> = partial
            .iter()
            .zip(&partial_cpu)
            .map(|(w, c)| format!("{:.0}/{:.0}", w.as_secs_f64() * 1e3, c.as_secs_f64() * 1e3))
            .collect();
        println!("  each (wall/CPU ms): {}", all.join(" "));
    }
    println!(
        "  CPU (nft + kube-proxy) of those syncs: p50 {} / p99 {}",
        ms(pct(&partial_cpu, 50.0)),
        ms(pct(&partial_cpu, 99.0))
    );

    let (t, c0, s0) = (Instant::now(), children_cpu(), self_cpu());
    syncer.sync(true).await.expect("periodic full sync");
    println!(
        "periodic full sync (table in place): {} (CPU: nft {}, kube-proxy {})",
        ms(t.elapsed()),
        ms(children_cpu() - c0),
        ms(self_cpu() - s0)
    );
    if let Some(p) = syncer.last_phases() {
        println!("  phases: {p}");
    }
    // A restarted kube-proxy: no previous state, the table in place.
    let mut restarted = Syncer::new(proxier.clone());
    let (t, c0, s0) = (Instant::now(), children_cpu(), self_cpu());
    restarted
        .sync(true)
        .await
        .expect("full sync after a restart");
    println!(
        "full sync after a restart (table in place): {} (CPU: nft {}, kube-proxy {})",
        ms(t.elapsed()),
        ms(children_cpu() - c0),
        ms(self_cpu() - s0)
    );
    if let Some(p) = restarted.last_phases() {
        println!("  phases: {p}");
    }
    if let Some(dir) = std::env::var_os("FKPERF_DUMP") {
        let rs = restarted.ruleset().unwrap();
        let tx = rs.render(None, &proxy::rules::Existing::of(rs)).unwrap();
        std::fs::write(std::path::Path::new(&dir).join("inplace.nft"), tx).unwrap();
    }
    let t = Instant::now();
    syncer.sync(false).await.expect("no-op sync");
    println!("sync without changes: {}", ms(t.elapsed()));

    // The kernel holds what the model says.
    let listing = proxy::nft::list_table(None).await.unwrap().unwrap();
    assert_eq!(
        proxy::rules::Existing::parse_listing(&listing),
        proxy::rules::Existing::of(syncer.ruleset().unwrap()),
        "kernel table and model differ"
    );
    let chains = listing
        .lines()
        .filter(|l| l.trim_start().starts_with("chain "))
        .count();
    let elements = listing.matches(" : goto service-").count();
    println!("kernel table: {chains} chains, {elements} service-ips elements (as wanted)");
    assert!(elements >= services, "every Service has its element");
}
