//! `make bench`: performance figures of a ferrokube cluster started with the
//! `ferrokube` CLI (real etcd + kube-apiserver processes). Prints figures;
//! asserts nothing. Method and results: docs/performance.md.
//!
//! 1. ConfigMap (1 KiB) create throughput and latency at 1/16/64 concurrent
//!    clients through the apiserver (kube-rs), and raw etcd puts of the same
//!    bytes at the same concurrency against the cluster's etcd.
//! 2. Watch fan-out: N watchers on ConfigMaps of one namespace; per round
//!    one create, time from the create response until every watcher has
//!    received the ADDED event.
//! 3. kube-apiserver RSS: idle, after creating 10k ConfigMaps, at the end.
//!
//! 4. Scheduler throughput: N fake Nodes (API objects only), M pods, first
//!    create to last bound; kube-scheduler RSS at rest.
//!
//! Options (all optional): --creates N (2000) --levels 1,16,64
//! --watchers N (1000) --rounds N (20) --rss-objects N (10000)
//! --sched-nodes N (5000) --sched-pods N (10000; 0 skips) --sched-only

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use test_e2e::Cluster;

#[path = "bench/net.rs"]
mod net;

#[derive(Debug, Clone)]
struct Opts {
    creates: usize,
    levels: Vec<usize>,
    watchers: usize,
    rounds: usize,
    rss_objects: usize,
    pods: usize,
    pod_rate: f64,
    sched_nodes: usize,
    sched_pods: usize,
    sched_only: bool,
    deploy_replicas: usize,
    net_only: bool,
    net_services: usize,
    net_endpoints: usize,
    net_creates: usize,
}

impl Opts {
    fn parse() -> Result<Opts> {
        let mut o = Opts {
            creates: 2000,
            levels: vec![1, 16, 64],
            watchers: 1000,
            rounds: 20,
            rss_objects: 10_000,
            pods: 100,
            pod_rate: 10.0,
            sched_nodes: 5000,
            sched_pods: 10_000,
            sched_only: false,
            deploy_replicas: 1000,
            net_only: false,
            net_services: 1000,
            net_endpoints: 10,
            net_creates: 3,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut val = || args.next().ok_or_else(|| anyhow!("{a} needs a value"));
            match a.as_str() {
                "--creates" => o.creates = val()?.parse()?,
                "--watchers" => o.watchers = val()?.parse()?,
                "--rounds" => o.rounds = val()?.parse()?,
                "--rss-objects" => o.rss_objects = val()?.parse()?,
                "--pods" => o.pods = val()?.parse()?,
                "--pod-rate" => o.pod_rate = val()?.parse()?,
                "--sched-nodes" => o.sched_nodes = val()?.parse()?,
                "--sched-pods" => o.sched_pods = val()?.parse()?,
                "--sched-only" => o.sched_only = true,
                "--deploy-replicas" => o.deploy_replicas = val()?.parse()?,
                "--net-only" => o.net_only = true,
                "--net-services" => o.net_services = val()?.parse()?,
                "--net-endpoints" => o.net_endpoints = val()?.parse()?,
                "--net-creates" => o.net_creates = val()?.parse()?,
                "--levels" => {
                    o.levels = val()?
                        .split(',')
                        .map(|s| s.trim().parse())
                        .collect::<Result<_, _>>()?
                }
                "-h" | "--help" => {
                    println!(
                        "bench [--creates N] [--levels 1,16,64] [--watchers N] [--rounds N] [--rss-objects N] [--pods N] [--pod-rate PER_SEC (0: all at once)] [--sched-nodes N] [--sched-pods N (0: skip)] [--deploy-replicas N (0: skip)] [--sched-only (scheduler and Deployment figures only)] [--net-only (networking figures only)] [--net-services N (1000; 0 skips networking)] [--net-endpoints N (10)] [--net-creates N (3)]"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other}"),
            }
        }
        Ok(o)
    }
}

/// Latency sample set.
#[derive(Debug, Clone, Default)]
struct Lat {
    samples: Vec<Duration>,
}

impl Lat {
    fn new(mut samples: Vec<Duration>) -> Lat {
        samples.sort();
        Lat { samples }
    }
    fn pct(&self, p: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        let idx = ((p / 100.0) * self.samples.len() as f64).ceil() as usize;
        self.samples[idx.clamp(1, self.samples.len()) - 1]
    }
    fn max(&self) -> Duration {
        self.samples.last().copied().unwrap_or_default()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Result of one create-throughput run.
#[derive(Debug, Clone)]
struct Run {
    ops: usize,
    errors: usize,
    elapsed: Duration,
    lat: Lat,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

const PAYLOAD_LEN: usize = 1024;

fn payload() -> String {
    // 1 KiB of printable, incompressible-ish text.
    let mut s = String::with_capacity(PAYLOAD_LEN);
    let mut x: u32 = 0x1234_5678;
    while s.len() < PAYLOAD_LEN {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        s.push(char::from(b'a' + (x % 26) as u8));
    }
    s
}

fn configmap(name: &str, ns: &str, data: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("payload".to_string(), data.to_string())])),
        ..Default::default()
    }
}

async fn kube_client(cluster: &Cluster) -> Result<Client> {
    let kc = Kubeconfig::read_from(&cluster.kubeconfig).context("reading kubeconfig")?;
    let opts = KubeConfigOptions {
        context: Some(cluster.context.clone()),
        ..Default::default()
    };
    let cfg = Config::from_custom_kubeconfig(kc, &opts)
        .await
        .context("loading kubeconfig")?;
    Ok(Client::try_from(cfg)?)
}

async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    // Pods need the namespace's "default" ServiceAccount (ServiceAccount
    // admission); the controller-manager makes it, but may be paused here.
    let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), name);
    let default_sa: k8s_openapi::api::core::v1::ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "default"}}))?;
    match sa.create(&PostParams::default(), &default_sa).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e).context("creating the default ServiceAccount"),
    }
    Ok(())
}

/// `n` ConfigMap creates in `ns` by `concurrency` workers.
async fn api_creates(client: &Client, ns: &str, concurrency: usize, n: usize, data: &str) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let next = next.clone();
        let first_error = first_error.clone();
        let data = data.to_string();
        let ns = ns.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let pp = PostParams::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let cm = configmap(&format!("cm-{i}"), &ns, &data);
                let t = Instant::now();
                match api.create(&pp, &cm).await {
                    Ok(_) => lat.push(t.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error
                            .lock()
                            .unwrap()
                            .get_or_insert_with(|| e.to_string());
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::with_capacity(n);
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.expect("worker panicked");
        all.extend(lat);
        errors += e;
    }
    let elapsed = start.elapsed();
    if let Some(e) = first_error.lock().unwrap().take() {
        eprintln!("  !! {errors} apiserver create errors; first: {e}");
    }
    Run {
        ops: all.len(),
        errors,
        elapsed,
        lat: Lat::new(all),
    }
}

/// `n` raw etcd puts of `value` under `prefix` by `concurrency` workers
/// sharing one client (one gRPC channel), like the apiserver's.
async fn etcd_puts(
    etcd: &etcd_client::Client,
    prefix: &str,
    concurrency: usize,
    n: usize,
    value: &[u8],
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let mut kv = etcd.kv_client();
        let next = next.clone();
        let value = value.to_vec();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut first = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                match kv.put(format!("{prefix}/{i}"), value.clone(), None).await {
                    Ok(_) => lat.push(t.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first.get_or_insert(e.to_string());
                    }
                }
            }
            (lat, errors, first)
        }));
    }
    let mut all = Vec::with_capacity(n);
    let mut errors = 0;
    for t in tasks {
        let (lat, e, first) = t.await.expect("worker panicked");
        if let Some(f) = first {
            eprintln!("  !! etcd put error: {f}");
        }
        all.extend(lat);
        errors += e;
    }
    Run {
        ops: all.len(),
        errors,
        elapsed: start.elapsed(),
        lat: Lat::new(all),
    }
}

/// VmRSS and VmHWM of a process, in KiB.
fn rss_kib(pid: i32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| {
        format!("reading /proc/{pid}/status (is kube-apiserver still running?)")
    })?;
    let field = |k: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(k))
            .ok_or_else(|| anyhow!("no {k} in status"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .ok_or_else(|| anyhow!("bad {line}"))?
            .parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: i32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = &stat[stat.rfind(')').ok_or_else(|| anyhow!("bad stat"))? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) are indices 11 and 12 after ')'.
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// CPU used by the apiserver, etcd and this process during a phase.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    apiserver: Duration,
    etcd: Duration,
    client: Duration,
}

struct CpuMeter {
    pids: [i32; 3],
    start: [Duration; 3],
}

impl CpuMeter {
    fn start(api_pid: i32, etcd_pid: i32) -> CpuMeter {
        let pids = [api_pid, etcd_pid, std::process::id() as i32];
        let start = pids.map(|p| cpu_time(p).unwrap_or_default());
        CpuMeter { pids, start }
    }
    fn stop(&self) -> Cpu {
        let now = self.pids.map(|p| cpu_time(p).unwrap_or_default());
        Cpu {
            apiserver: now[0].saturating_sub(self.start[0]),
            etcd: now[1].saturating_sub(self.start[1]),
            client: now[2].saturating_sub(self.start[2]),
        }
    }
}

fn us_per_op(d: Duration, ops: usize) -> String {
    if ops == 0 {
        return "-".into();
    }
    format!("{:.0}", d.as_secs_f64() * 1e6 / ops as f64)
}

/// etcd's gRPC counters by method (`grpc_server_handled_total`, plus
/// `Watch` messages sent), scraped from `http://127.0.0.1:<port>/metrics`.
fn etcd_rpc_counts(port: u16) -> Result<BTreeMap<String, f64>> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        conn,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    conn.read_to_string(&mut text)?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let (name, want) = if line.starts_with("grpc_server_handled_total{") {
            ("handled", None)
        } else if line.starts_with("grpc_server_msg_sent_total{") {
            ("sent", Some("Watch"))
        } else {
            continue;
        };
        let Some(m) = line
            .split("grpc_method=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        else {
            continue;
        };
        if want.is_some_and(|w| w != m) || (name == "handled" && m == "Watch") {
            continue;
        }
        let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let key = if name == "sent" {
            "Watch events".to_string()
        } else {
            m.to_string()
        };
        *out.entry(key).or_insert(0.0) += v;
    }
    Ok(out)
}

fn rpc_delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, ops: usize) -> String {
    let mut parts = Vec::new();
    for (k, v) in after {
        let d = v - before.get(k).copied().unwrap_or(0.0);
        if d > 0.0 {
            parts.push(format!("{k} {:.2}", d / ops.max(1) as f64));
        }
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Watch fan-out result.
struct WatchResult {
    watchers: usize,
    rounds: usize,
    connect: Duration,
    /// Per round: create response → last watcher received.
    all_delivered: Lat,
    /// Per round: create request sent → last watcher received.
    all_delivered_from_request: Lat,
    /// Per (watcher, round): create response → received (0 if earlier).
    per_watcher: Lat,
    incomplete_rounds: usize,
    failed_watchers: usize,
}

async fn watch_fanout(
    client: &Client,
    watch_client: &Client,
    watchers: usize,
    rounds: usize,
) -> Result<WatchResult> {
    let ns = "bench-watch";
    create_namespace(client, ns).await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let list = api.list_metadata(&ListParams::default()).await?;
    let rv = list.metadata.resource_version.clone().unwrap_or_default();

    // (watcher, object name, receipt time); watcher failures as name "".
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String, Instant)>();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let connect_start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..watchers {
        let wapi: Api<ConfigMap> = Api::namespaced(watch_client.clone(), ns);
        let tx = tx.clone();
        let ready_tx = ready_tx.clone();
        let rv = rv.clone();
        handles.push(tokio::spawn(async move {
            let wp = WatchParams::default().timeout(290);
            let stream = match wapi.watch(&wp, &rv).await {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(WatchEvent::Added(cm)) => {
                        let now = Instant::now();
                        let _ = tx.send((w, cm.metadata.name.unwrap_or_default(), now));
                    }
                    Ok(WatchEvent::Error(e)) => {
                        eprintln!("  !! watcher {w}: error event {e:?}");
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("  !! watcher {w}: {e}");
                        break;
                    }
                }
            }
            let _ = tx.send((w, String::new(), Instant::now()));
        }));
    }
    drop(ready_tx);
    let mut connected = 0;
    let mut failed = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while connected + failed < watchers {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(Ok(()))) => connected += 1,
            Ok(Some(Err(e))) => {
                if failed == 0 {
                    eprintln!("  !! watch failed to start: {e}");
                }
                failed += 1;
            }
            Ok(None) => break,
            Err(_) => bail!("only {connected} of {watchers} watches started within 120s"),
        }
    }
    let connect = connect_start.elapsed();
    eprintln!("  {connected} watches started in {connect:.2?} ({failed} failed)");
    if connected == 0 {
        bail!("no watch could be started");
    }

    let mut dead: HashSet<usize> = HashSet::new();
    let mut all_delivered = Vec::new();
    let mut all_from_req = Vec::new();
    let mut per_watcher = Vec::new();
    let mut incomplete = 0;
    // Round 0 is a warm-up and not counted.
    for r in 0..=rounds {
        let name = format!("round-{r}");
        let t_req = Instant::now();
        api.create(&PostParams::default(), &configmap(&name, ns, "x"))
            .await?;
        let t_resp = Instant::now();
        let mut got: HashSet<usize> = HashSet::new();
        let mut last = t_resp;
        let mut delays = Vec::with_capacity(connected);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got.len() + dead.len() < connected {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                // A watcher whose stream ended.
                Ok(Some((w, n, _))) if n.is_empty() => {
                    dead.insert(w);
                }
                Ok(Some((w, n, at))) => {
                    if n == name && got.insert(w) {
                        last = last.max(at);
                        delays.push(at.saturating_duration_since(t_resp));
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        if got.len() < connected - dead.len() {
            incomplete += 1;
            eprintln!(
                "  !! round {r}: only {} of {} watchers received the event within 10s",
                got.len(),
                connected - dead.len()
            );
        } else if r > 0 {
            all_delivered.push(last.saturating_duration_since(t_resp));
            all_from_req.push(last.saturating_duration_since(t_req));
            per_watcher.extend(delays);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for h in &handles {
        h.abort();
    }
    Ok(WatchResult {
        watchers: connected,
        rounds,
        connect,
        all_delivered: Lat::new(all_delivered),
        all_delivered_from_request: Lat::new(all_from_req),
        per_watcher: Lat::new(per_watcher),
        incomplete_rounds: incomplete,
        failed_watchers: failed + dead.len(),
    })
}

fn main() -> Result<()> {
    let opts = Opts::parse()?;
    if std::env::var_os("FERROKUBE_BIN_DIR").is_none() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../_output/bin");
        eprintln!("FERROKUBE_BIN_DIR not set; using {}", dir.display());
        std::env::set_var("FERROKUBE_BIN_DIR", dir);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut res = Ok(());
    if !opts.net_only {
        eprintln!("== starting cluster");
        let cluster = Cluster::create();
        res = rt.block_on(run(&cluster, &opts));
        drop(cluster);
    }
    if opts.net_services > 0 && (opts.net_only || !opts.sched_only) {
        eprintln!("== networking: 3-node clusters, kube-proxy, ClusterIP");
        match rt.block_on(net::run(
            opts.net_services,
            opts.net_endpoints,
            opts.net_creates,
        )) {
            Ok(f) => f.print(),
            Err(e) => println!("Networking: FAILED: {e:#}"),
        }
    }
    drop(rt);
    res
}

async fn run(cluster: &Cluster, opts: &Opts) -> Result<()> {
    let api_pid = cluster.pid("kube-apiserver");
    let etcd_pid = cluster.pid("etcd");
    let etcd_port = cluster.port("etcd-client");
    let client = kube_client(cluster).await?;
    if opts.sched_only {
        let kcm_rss = control_plane_rss(cluster, "kube-controller-manager").await;
        {
            let _paused = Paused::new(cluster, "kube-controller-manager");
            let r =
                scheduler_throughput(cluster, &client, opts.sched_nodes, opts.sched_pods).await?;
            r.print();
        }
        deployment_figures(cluster, &client, opts.deploy_replicas, kcm_rss).await;
        return Ok(());
    }
    let kcm_rss = control_plane_rss(cluster, "kube-controller-manager").await;
    let data = payload();
    let sample = serde_json::to_vec(&configmap("cm-00000", "bench-api-64", &data))?;

    // (3a) idle RSS.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle_rss, _) = rss_kib(api_pid)?;
    let (etcd_idle_rss, _) = rss_kib(etcd_pid)?;
    eprintln!(
        "== idle: kube-apiserver RSS {} MiB (etcd {} MiB)",
        mib(idle_rss),
        mib(etcd_idle_rss)
    );

    // (0) pod startup on the node (after the idle figure).
    let pods = if opts.pods > 0 {
        eprintln!("== pod startup: {} pods on one node", opts.pods);
        Some(pod_startup(cluster, &client, opts.pods, opts.pod_rate).await)
    } else {
        None
    };

    // (3b) RSS after N ConfigMaps.
    eprintln!(
        "== creating {} ConfigMaps for the RSS figure",
        opts.rss_objects
    );
    create_namespace(&client, "bench-rss").await?;
    let fill = api_creates(&client, "bench-rss", 64, opts.rss_objects, &data).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_full, hwm_full) = rss_kib(api_pid)?;
    eprintln!(
        "  {} created in {:.2?} ({:.0}/s); RSS {} MiB (peak {} MiB)",
        fill.ops,
        fill.elapsed,
        fill.per_sec(),
        mib(rss_full),
        mib(hwm_full)
    );

    // (1) create throughput, apiserver vs etcd.
    let etcd = etcd_client::Client::connect([cluster.etcd_endpoint()], None)
        .await
        .context("connecting to etcd")?;
    let mut rows = Vec::new();
    for &level in &opts.levels {
        let ns = format!("bench-api-{level}");
        create_namespace(&client, &ns).await?;
        eprintln!("== {level} clients: {} apiserver creates", opts.creates);
        let meter = CpuMeter::start(api_pid, etcd_pid);
        let rpc_before = etcd_rpc_counts(etcd_port).unwrap_or_default();
        let api = api_creates(&client, &ns, level, opts.creates, &data).await;
        let api_cpu = meter.stop();
        let rpcs = rpc_delta(
            &rpc_before,
            &etcd_rpc_counts(etcd_port).unwrap_or_default(),
            api.ops,
        );
        eprintln!("   etcd RPCs per create: {rpcs}");
        eprintln!(
            "   {:.0}/s p50 {} ms p99 {} ms",
            api.per_sec(),
            ms(api.lat.pct(50.0)),
            ms(api.lat.pct(99.0))
        );
        eprintln!("== {level} clients: {} etcd puts", opts.creates);
        let meter = CpuMeter::start(api_pid, etcd_pid);
        let raw = etcd_puts(
            &etcd,
            &format!("/ferrokube-bench/{level}"),
            level,
            opts.creates,
            &sample,
        )
        .await;
        let raw_cpu = meter.stop();
        eprintln!(
            "   {:.0}/s p50 {} ms p99 {} ms",
            raw.per_sec(),
            ms(raw.lat.pct(50.0)),
            ms(raw.lat.pct(99.0))
        );
        rows.push((level, api, raw, api_cpu, raw_cpu, rpcs));
    }

    // (2) watch fan-out.
    eprintln!("== {} watchers, {} rounds", opts.watchers, opts.rounds);
    let watch_client = kube_client(cluster).await?;
    let watch = watch_fanout(&client, &watch_client, opts.watchers, opts.rounds).await;
    let (rss_end, hwm_end) = rss_kib(api_pid)?;

    // Summary.
    println!();
    println!("## ferrokube benchmark summary");
    println!();
    println!(
        "ConfigMap create, {} B payload ({} B JSON), {} creates per level; etcd: raw puts of the same bytes",
        PAYLOAD_LEN,
        sample.len(),
        opts.creates
    );
    println!();
    println!("| clients | apiserver creates/s | p50 ms | p99 ms | etcd puts/s | p50 ms | p99 ms | apiserver/etcd |");
    println!("|--------:|--------------------:|-------:|-------:|------------:|-------:|-------:|---------------:|");
    for (level, api, raw, ..) in &rows {
        println!(
            "| {level} | {:.0}{} | {} | {} | {:.0}{} | {} | {} | {:.2} |",
            api.per_sec(),
            if api.errors > 0 {
                format!(" ({} errors)", api.errors)
            } else {
                String::new()
            },
            ms(api.lat.pct(50.0)),
            ms(api.lat.pct(99.0)),
            raw.per_sec(),
            if raw.errors > 0 {
                format!(" ({} errors)", raw.errors)
            } else {
                String::new()
            },
            ms(raw.lat.pct(50.0)),
            ms(raw.lat.pct(99.0)),
            api.per_sec() / raw.per_sec()
        );
    }
    println!();
    println!("CPU time per operation in µs (user+system, from /proc/<pid>/stat; the client is this bench process)");
    println!();
    println!("| clients | apiserver path: apiserver | etcd | client | raw etcd path: etcd | client | etcd RPCs per create via apiserver |");
    println!("|--------:|--------------------------:|-----:|-------:|--------------------:|-------:|------------------------------------|");
    for (level, api, raw, api_cpu, raw_cpu, rpcs) in &rows {
        println!(
            "| {level} | {} | {} | {} | {} | {} | {rpcs} |",
            us_per_op(api_cpu.apiserver, api.ops),
            us_per_op(api_cpu.etcd, api.ops),
            us_per_op(api_cpu.client, api.ops),
            us_per_op(raw_cpu.etcd, raw.ops),
            us_per_op(raw_cpu.client, raw.ops)
        );
    }
    println!();
    match &watch {
        Ok(w) => {
            println!(
                "Watch fan-out: {} watchers (started in {:.2?}, {} failed/ended), {} rounds, {} incomplete",
                w.watchers, w.connect, w.failed_watchers, w.rounds, w.incomplete_rounds
            );
            println!();
            println!("| measure | p50 ms | p99 ms | max ms |");
            println!("|---------|-------:|-------:|-------:|");
            println!(
                "| all delivered (from create response) | {} | {} | {} |",
                ms(w.all_delivered.pct(50.0)),
                ms(w.all_delivered.pct(99.0)),
                ms(w.all_delivered.max())
            );
            println!(
                "| all delivered (from create request) | {} | {} | {} |",
                ms(w.all_delivered_from_request.pct(50.0)),
                ms(w.all_delivered_from_request.pct(99.0)),
                ms(w.all_delivered_from_request.max())
            );
            println!(
                "| per watcher (from create response) | {} | {} | {} |",
                ms(w.per_watcher.pct(50.0)),
                ms(w.per_watcher.pct(99.0)),
                ms(w.per_watcher.max())
            );
        }
        Err(e) => println!("Watch fan-out: FAILED: {e:#}"),
    }
    println!();
    println!("| kube-apiserver RSS | MiB |");
    println!("|--------------------|----:|");
    println!("| idle (fresh cluster) | {} |", mib(idle_rss));
    println!(
        "| after {} ConfigMaps | {} (peak {}) |",
        fill.ops,
        mib(rss_full),
        mib(hwm_full)
    );
    println!(
        "| end of run (all objects, after watch test) | {} (peak {}) |",
        mib(rss_end),
        mib(hwm_end)
    );
    println!();
    match &pods {
        Some(Ok(p)) => {
            println!(
                "Pod startup (create request to Running seen through a watch), {} pods, warm image, created {}",
                p.lat.samples.len(),
                if p.rate > 0.0 { format!("at {} per second", p.rate) } else { format!("all at once ({POD_CONCURRENCY} concurrent creates)") }
            );
            println!();
            println!("| measure | value |");
            println!("|---------|------:|");
            println!("| p50 ms | {} |", ms(p.lat.pct(50.0)));
            println!("| p99 ms | {} |", ms(p.lat.pct(99.0)));
            println!("| max ms | {} |", ms(p.lat.max()));
            println!(
                "| kubelet RSS with the pods running, MiB | {} |",
                mib(p.kubelet_rss)
            );
            println!();
            let p99 = p.lat.pct(99.0);
            println!(
                "target pod startup p99 ≤ 1.5 s: {} ms {}",
                ms(p99),
                if p99 <= Duration::from_millis(1500) {
                    "MET"
                } else {
                    "NOT MET"
                }
            );
            println!(
                "target kubelet RSS with {} pods ≤ 30 MiB: {} MiB {}",
                p.lat.samples.len(),
                mib(p.kubelet_rss),
                if p.kubelet_rss <= 30 * 1024 {
                    "MET"
                } else {
                    "NOT MET"
                }
            );
            println!();
        }
        Some(Err(e)) => println!("Pod startup: FAILED: {e:#}\n"),
        None => {}
    }
    if let Some((_, api, raw, ..)) = rows.iter().find(|r| r.0 == 64) {
        let ratio = api.per_sec() / raw.per_sec();
        println!(
            "target apiserver/etcd ≥ 0.70 at 64 clients: {:.2} {}",
            ratio,
            if ratio >= 0.7 { "MET" } else { "NOT MET" }
        );
    }
    if let Ok(w) = &watch {
        let p99 = w.all_delivered.pct(99.0);
        println!(
            "target watch all-delivered p99 ≤ 100 ms: {} ms {}",
            ms(p99),
            if p99 <= Duration::from_millis(100) && w.incomplete_rounds == 0 {
                "MET"
            } else {
                "NOT MET"
            }
        );
    }
    println!(
        "target idle RSS ≤ 40 MiB: {} MiB {}",
        mib(idle_rss),
        if idle_rss <= 40 * 1024 {
            "MET"
        } else {
            "NOT MET"
        }
    );
    if opts.sched_pods > 0 {
        eprintln!(
            "== scheduler throughput: {} nodes, {} pods",
            opts.sched_nodes, opts.sched_pods
        );
        // As upstream's scheduler_perf: API objects only, no controllers.
        // The controller-manager is paused meanwhile (its node lifecycle
        // controller would taint the heartbeat-less fake nodes).
        let _paused = Paused::new(cluster, "kube-controller-manager");
        match scheduler_throughput(cluster, &client, opts.sched_nodes, opts.sched_pods).await {
            Ok(r) => r.print(),
            Err(e) => println!("Scheduler throughput: FAILED: {e:#}"),
        }
    }
    deployment_figures(cluster, &client, opts.deploy_replicas, kcm_rss).await;
    watch.map(|_| ())
}

/// RSS (KiB) of a cluster daemon after it settled, if the cluster runs it.
async fn control_plane_rss(cluster: &Cluster, component: &str) -> Option<u64> {
    let has = cluster.state()["processes"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["name"] == component));
    if !has {
        return None;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    rss_kib(cluster.pid(component)).ok().map(|(rss, _)| rss)
}

/// The 1000-replica Deployment figure and the controller-manager's RSS.
async fn deployment_figures(
    cluster: &Cluster,
    client: &Client,
    replicas: usize,
    kcm_rss: Option<u64>,
) {
    if let Some(rss) = kcm_rss {
        println!();
        println!(
            "target kube-controller-manager RSS at rest ≤ 12 MiB: {} MiB {}",
            mib(rss),
            if rss <= 12 * 1024 { "MET" } else { "NOT MET" }
        );
    }
    if replicas == 0 {
        return;
    }
    eprintln!("== Deployment of {replicas} replicas");
    match deployment_rollout(cluster, client, replicas).await {
        Ok((created, bound, kcm_peak)) => {
            println!();
            println!(
                "Deployment of {replicas} replicas on fake nodes (API objects only), from the Deployment create"
            );
            println!();
            println!("| measure | value |");
            println!("|---------|------:|");
            println!("| all pods exist, s | {:.2} |", created.as_secs_f64());
            println!("| all pods bound, s | {:.2} |", bound.as_secs_f64());
            if let Some(p) = kcm_peak {
                println!("| kube-controller-manager RSS after, MiB | {} |", mib(p));
            }
        }
        Err(e) => println!("Deployment of {replicas} replicas: FAILED: {e:#}"),
    }
}

/// Creates fake nodes for `replicas` pods and a Deployment selecting them;
/// returns the time until all pods existed and until all were bound.
async fn deployment_rollout(
    cluster: &Cluster,
    client: &Client,
    replicas: usize,
) -> Result<(Duration, Duration, Option<u64>)> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{DeleteParams, Patch, PatchParams};

    let node_api: Api<Node> = Api::all(client.clone());
    let nodes = replicas.div_ceil(100).max(1);
    for i in 0..nodes {
        let name = format!("bench-deploy-node-{i:03}");
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"bench": "deploy", "kubernetes.io/hostname": name}},
        }))?;
        node_api.create(&PostParams::default(), &node).await?;
        let status = serde_json::json!({"status": {
            "capacity": {"cpu": "32", "memory": "64Gi", "pods": "110"},
            "allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "bench"}],
        }});
        node_api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
    }
    let ns = "bench-deploy";
    create_namespace(client, ns).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut stream = pods
        .watch(&WatchParams::default().labels("app=bench-deploy"), "0")
        .await?
        .boxed();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "bench-deploy"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bench-deploy"}},
            "template": {
                "metadata": {"labels": {"app": "bench-deploy"}},
                "spec": {
                    "nodeSelector": {"bench": "deploy"},
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}],
                }
            }
        }
    }))?;
    let start = Instant::now();
    deploys.create(&PostParams::default(), &d).await?;
    let mut seen = HashSet::new();
    let mut bound = HashSet::new();
    let mut all_created = None;
    let deadline = start + Duration::from_secs(600);
    while bound.len() < replicas {
        let ev = match tokio::time::timeout_at(deadline.into(), stream.next()).await {
            Ok(Some(ev)) => ev?,
            Ok(None) => bail!("the watch ended"),
            Err(_) => bail!("{} of {replicas} pods bound after 600 s", bound.len()),
        };
        let (WatchEvent::Added(p) | WatchEvent::Modified(p)) = ev else {
            continue;
        };
        let name = p.metadata.name.clone().unwrap_or_default();
        seen.insert(name.clone());
        if all_created.is_none() && seen.len() >= replicas {
            all_created = Some(start.elapsed());
        }
        if p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
        {
            bound.insert(name);
        }
    }
    let all_bound = start.elapsed();
    let kcm_after = cluster.state()["processes"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["name"] == "kube-controller-manager"))
        .then(|| {
            rss_kib(cluster.pid("kube-controller-manager"))
                .ok()
                .map(|r| r.0)
        })
        .flatten();
    let _ = deploys
        .delete("bench-deploy", &DeleteParams::default())
        .await;
    let _ = pods
        .delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default(),
        )
        .await;
    let _ = node_api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("bench=deploy"),
        )
        .await;
    Ok((all_created.unwrap_or(all_bound), all_bound, kcm_after))
}

/// Pods created at once by the pod-startup benchmark.
const POD_CONCURRENCY: usize = 10;

struct PodStartup {
    lat: Lat,
    kubelet_rss: u64,
    rate: f64,
}

fn bench_pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "startup"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "sleep",
                "image": "docker.io/library/busybox:latest",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"]
            }]
        }
    }))
    .expect("static pod manifest")
}

/// Creation-to-Running latency of `n` pods on the cluster's node (image
/// already present), seen through one watch; then the kubelet's RSS with
/// all of them running. The pods are deleted afterwards.
async fn pod_startup(
    cluster: &Cluster,
    client: &Client,
    n: usize,
    rate: f64,
) -> Result<PodStartup> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let node = format!("{}-control-plane", cluster.name);
    let ns = "bench-pods";
    create_namespace(client, ns).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);

    // Warm the image (and the node) with one pod first.
    let running = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    pods.create(&PostParams::default(), &bench_pod("warmup", &node))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if running(&pods.get("warmup").await?) {
            break;
        }
        if Instant::now() > deadline {
            bail!("warm-up pod did not reach Running in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut stream = pods
        .watch(&WatchParams::default().labels("bench=startup"), "0")
        .await?
        .boxed();
    let watcher = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut seen: HashMap<String, Duration> = HashMap::new();
            while let Some(ev) = stream.next().await {
                let (WatchEvent::Added(p) | WatchEvent::Modified(p)) = ev? else {
                    continue;
                };
                let name = p.metadata.name.clone().unwrap_or_default();
                if name == "warmup" || seen.contains_key(&name) || !running(&p) {
                    continue;
                }
                let Some(t0) = sent.lock().unwrap().get(&name).copied() else {
                    continue;
                };
                seen.insert(name, t0.elapsed());
                if seen.len() == n {
                    break;
                }
            }
            anyhow::Ok(seen)
        })
    };
    let names: Vec<String> = (0..n).map(|i| format!("pod-{i:04}")).collect();
    // At `rate` pods per second (a steady stream, as upstream's density
    // tests measure latency), or all at once when `rate` is 0.
    let started = Instant::now();
    futures::stream::iter(names.iter().cloned().enumerate())
        .then(|(i, name)| async move {
            if rate > 0.0 {
                let at = started + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(at.into()).await;
            }
            name
        })
        .for_each_concurrent(POD_CONCURRENCY, |name| {
            let pods = pods.clone();
            let sent = sent.clone();
            let node = node.clone();
            async move {
                sent.lock().unwrap().insert(name.clone(), Instant::now());
                if let Err(e) = pods
                    .create(&PostParams::default(), &bench_pod(&name, &node))
                    .await
                {
                    eprintln!("  create {name}: {e}");
                }
            }
        })
        .await;
    let seen = tokio::time::timeout(Duration::from_secs(300), watcher)
        .await
        .map_err(|_| anyhow!("not all {n} pods reached Running within 300 s"))???;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (kubelet_rss, _) = rss_kib(cluster.pid(&format!("kubelet-{node}")))?;
    let lat = Lat::new(seen.into_values().collect());
    eprintln!(
        "  p50 {} ms p99 {} ms; kubelet RSS {} MiB",
        ms(lat.pct(50.0)),
        ms(lat.pct(99.0)),
        mib(kubelet_rss)
    );
    let _ = pods
        .delete_collection(&Default::default(), &ListParams::default())
        .await;
    Ok(PodStartup {
        lat,
        kubelet_rss,
        rate,
    })
}

/// Scheduler throughput result.
struct SchedThroughput {
    nodes: usize,
    pods: usize,
    bound: usize,
    elapsed: Duration,
    sched_rss_idle: u64,
    sched_rss_end: u64,
    /// Pods already pending when the scheduler starts: (bound, start →
    /// last bound), i.e. the scheduler's own rate without the create path.
    backlog: Option<(usize, Duration)>,
}

impl SchedThroughput {
    fn per_sec(&self) -> f64 {
        self.bound as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn print(&self) {
        println!();
        println!(
            "Scheduler throughput: {} fake nodes (API objects only), {} pods (100m CPU, 100Mi each), \
             first create to last bound; scheduler API client: no QPS limit, ≤ 64 bindings in flight",
            self.nodes, self.pods
        );
        println!();
        println!("| measure | value |");
        println!("|---------|------:|");
        println!("| pods bound | {} |", self.bound);
        println!(
            "| first create → last bound, s | {:.2} |",
            self.elapsed.as_secs_f64()
        );
        println!("| pods/s | {:.0} |", self.per_sec());
        if let Some((n, d)) = self.backlog {
            println!(
                "| backlog of {n} pending pods: scheduler start → last bound, s | {:.2} |",
                d.as_secs_f64()
            );
            println!(
                "| backlog pods/s | {:.0} |",
                n as f64 / d.as_secs_f64().max(1e-9)
            );
        }
        println!(
            "| kube-scheduler RSS at rest, MiB | {} |",
            mib(self.sched_rss_idle)
        );
        println!(
            "| kube-scheduler RSS after the run, MiB | {} |",
            mib(self.sched_rss_end)
        );
        println!();
        println!(
            "target scheduler throughput ≥ 1000 pods/s: {:.0} {}",
            self.per_sec(),
            if self.per_sec() >= 1000.0 && self.bound == self.pods {
                "MET"
            } else {
                "NOT MET"
            }
        );
        println!(
            "target kube-scheduler RSS at rest ≤ 12 MiB: {} MiB {}",
            mib(self.sched_rss_idle),
            if self.sched_rss_idle <= 12 * 1024 {
                "MET"
            } else {
                "NOT MET"
            }
        );
    }
}

/// Kills the scheduler this benchmark started (if any) on drop.
struct ChildGuard(Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_scheduler(cluster: &Cluster, log_name: &str) -> Result<std::process::Child> {
    let bin = test_e2e::bin_dir().join("kube-scheduler");
    let log = std::fs::File::create(cluster.scratch(log_name))?;
    std::process::Command::new(&bin)
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .args(["--secure-port", "0", "--leader-elect=false"])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// Creates `n` pods named `<prefix>-NNNNN` selecting the fake nodes, 64 at a time.
async fn create_sched_pods(api: &Api<Pod>, prefix: &str, n: usize) {
    futures::stream::iter(0..n)
        .for_each_concurrent(64, |i| {
            let api = api.clone();
            async move {
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("{prefix}-{i:05}"), "labels": {"batch": prefix}},
                    "spec": {
                        "nodeSelector": {"bench": "sched"},
                        "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                            "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}],
                    }
                }))
                .expect("static pod");
                if let Err(e) = api.create(&PostParams::default(), &pod).await {
                    eprintln!("  create pod {prefix}-{i}: {e}");
                }
            }
        })
        .await;
}

/// Watches pods labelled `batch=<prefix>` until `n` are bound; returns how
/// many were bound and when the last one was seen.
async fn watch_bound(
    api: &Api<Pod>,
    prefix: &str,
    n: usize,
) -> Result<tokio::task::JoinHandle<Result<(usize, Instant)>>> {
    let mut stream = api
        .watch(
            &WatchParams::default().labels(&format!("batch={prefix}")),
            "0",
        )
        .await?
        .boxed();
    Ok(tokio::spawn(async move {
        let mut bound = HashSet::new();
        let mut last = Instant::now();
        while let Some(ev) = stream.next().await {
            let (WatchEvent::Added(p) | WatchEvent::Modified(p)) = ev? else {
                continue;
            };
            if p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty())
                && bound.insert(p.metadata.name.clone().unwrap_or_default())
            {
                last = Instant::now();
                if bound.len() == n {
                    break;
                }
            }
        }
        anyhow::Ok((bound.len(), last))
    }))
}

/// `nodes` fake Nodes (labelled `bench=sched`, Ready, 4 CPU / 16 GiB / 110
/// pods), then `pods` pods selecting them, created by 64 workers; measures
/// from the first create to the last pod seen bound through a watch. Uses
/// the cluster's kube-scheduler, or starts one from FERROKUBE_BIN_DIR; in
/// the latter case also measures draining a backlog of `pods` pods created
/// while the scheduler was stopped.
async fn scheduler_throughput(
    cluster: &Cluster,
    client: &Client,
    nodes: usize,
    pods: usize,
) -> Result<SchedThroughput> {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{DeleteParams, Patch, PatchParams};

    let has_own = cluster.state()["processes"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["name"] == "kube-scheduler"));
    let mut guard = ChildGuard(None);
    let sched_pid = if has_own {
        cluster.pid("kube-scheduler")
    } else {
        let child = spawn_scheduler(cluster, "bench-kube-scheduler.log")?;
        let pid = child.id() as i32;
        guard.0 = Some(child);
        pid
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (sched_rss_idle, _) = rss_kib(sched_pid)?;
    eprintln!(
        "== scheduler: RSS at rest {} MiB; creating {nodes} fake nodes",
        mib(sched_rss_idle)
    );

    let node_api: Api<Node> = Api::all(client.clone());
    let names: Vec<String> = (0..nodes).map(|i| format!("bench-node-{i:05}")).collect();
    let t0 = Instant::now();
    futures::stream::iter(names.clone())
        .for_each_concurrent(64, |name| {
            let api = node_api.clone();
            async move {
                let node: Node = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {"bench": "sched", "kubernetes.io/hostname": name,
                        "topology.kubernetes.io/zone": format!("zone-{}", name.len() % 3)}},
                }))
                .expect("static node");
                if let Err(e) = api.create(&PostParams::default(), &node).await {
                    eprintln!("  create node {name}: {e}");
                    return;
                }
                let status = serde_json::json!({"status": {
                    "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                    "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "bench"}],
                }});
                if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await {
                    eprintln!("  node status {name}: {e}");
                }
            }
        })
        .await;
    eprintln!(
        "  nodes ready in {:.2?}; creating {pods} pods",
        t0.elapsed()
    );

    let ns = "bench-sched";
    create_namespace(client, ns).await?;
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let watcher = watch_bound(&pod_api, "live", pods).await?;
    let start = Instant::now();
    create_sched_pods(&pod_api, "live", pods).await;
    eprintln!("  {pods} pods created in {:.2?}", start.elapsed());
    let (bound, last) = match tokio::time::timeout(Duration::from_secs(600), watcher).await {
        Ok(r) => r??,
        Err(_) => bail!("not all {pods} pods were bound within 600 s"),
    };
    let elapsed = last.saturating_duration_since(start);
    let (sched_rss_end, _) = rss_kib(sched_pid)?;
    eprintln!(
        "  {bound} bound in {:.2?} ({:.0}/s)",
        elapsed,
        bound as f64 / elapsed.as_secs_f64()
    );

    let mut backlog = None;
    if let Some(mut child) = guard.0.take() {
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("== backlog: {pods} pods created with the scheduler stopped");
        create_sched_pods(&pod_api, "backlog", pods).await;
        let watcher = watch_bound(&pod_api, "backlog", pods).await?;
        let start = Instant::now();
        guard.0 = Some(spawn_scheduler(cluster, "bench-kube-scheduler-2.log")?);
        match tokio::time::timeout(Duration::from_secs(600), watcher).await {
            Ok(Ok(Ok((n, last)))) => {
                let d = last.saturating_duration_since(start);
                eprintln!(
                    "  {n} bound in {:.2?} ({:.0}/s, including scheduler start-up)",
                    d,
                    n as f64 / d.as_secs_f64()
                );
                backlog = Some((n, d));
            }
            _ => eprintln!("  backlog not drained within 600 s"),
        }
    }

    // Clean up: pods on fake nodes go at once (grace period 0), then nodes.
    let _ = pod_api
        .delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default(),
        )
        .await;
    let _ = node_api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("bench=sched"),
        )
        .await;
    drop(guard);
    Ok(SchedThroughput {
        nodes,
        pods,
        bound,
        elapsed,
        sched_rss_idle,
        sched_rss_end,
        backlog,
    })
}

/// SIGSTOPs a cluster daemon (if the cluster runs it) until dropped.
struct Paused(Option<i32>);

impl Paused {
    fn new(cluster: &Cluster, component: &str) -> Paused {
        let pid = cluster.state()["processes"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == component))
            .and_then(|p| p["pid"].as_i64())
            .map(|p| p as i32);
        if let Some(pid) = pid {
            // SAFETY: plain kill(2) on a pid this cluster started.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        }
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }
}
