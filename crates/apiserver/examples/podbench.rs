//! Pod create + bind benchmark of kube-apiserver (docs/performance.md §5,
//! apiserver side only).
//!
//! Starts a real etcd (`storage::testing`) and the `kube-apiserver` binary
//! as a child process (ServiceAccount admission on), creates a namespace
//! with its `default` ServiceAccount, then N small pods (one container with
//! requests) from C concurrent workers through one kube-rs client, then
//! binds them all through pods/binding, and prints creates/s, binds/s and
//! the CPU (user + system) kube-apiserver and etcd used per operation.
//!
//! ```text
//! cargo build --release -p apiserver --bin kube-apiserver --example podbench
//! target/release/examples/podbench [--pods N (10000)] [--clients C (64)] [--warmup N (500)]
//! ```
//!
//! `--configmaps N` (0) adds a phase of N ConfigMap creates with 1 KiB of
//! data (docs/performance.md section 1), after the pods, without watchers.
//! `--watchers N` (2) pod watches on the namespace stay open meanwhile, as
//! the scheduler's and the bench's. `--apiserver PATH` (default: `kube-apiserver` next to the example's
//! directory, i.e. target/release/kube-apiserver). With `--perf DIR`, each
//! phase runs under `perf record -g -p <apiserver pid>` into
//! `DIR/create.data` and `DIR/bind.data`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::json;

struct Opts {
    pods: usize,
    clients: usize,
    warmup: usize,
    apiserver: PathBuf,
    perf: Option<PathBuf>,
    watchers: usize,
    configmaps: usize,
}

fn parse() -> anyhow::Result<Opts> {
    let exe = std::env::current_exe()?;
    let mut o = Opts {
        pods: 10_000,
        clients: 64,
        warmup: 500,
        apiserver: exe
            .parent()
            .and_then(|p| p.parent())
            .map(|p| p.join("kube-apiserver"))
            .unwrap_or_else(|| PathBuf::from("kube-apiserver")),
        perf: None,
        watchers: 2,
        configmaps: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().context("missing value");
        match a.as_str() {
            "--pods" => o.pods = val()?.parse()?,
            "--clients" => o.clients = val()?.parse()?,
            "--warmup" => o.warmup = val()?.parse()?,
            "--apiserver" => o.apiserver = val()?.into(),
            "--perf" => o.perf = Some(val()?.into()),
            "--watchers" => o.watchers = val()?.parse()?,
            "--configmaps" => o.configmaps = val()?.parse()?,
            other => anyhow::bail!(
                "unknown argument {other}; usage: podbench [--pods N] [--clients C] [--warmup N] [--apiserver PATH] [--perf DIR] [--watchers N] [--configmaps N]"
            ),
        }
    }
    Ok(o)
}

/// utime + stime of a process, in microseconds.
fn cpu_us(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
    let hz = 100; // USER_HZ on Linux
    ticks * 1_000_000 / hz
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "podbench"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}],
        }
    }))
    .expect("static pod")
}

struct Perf(Option<std::process::Child>);

impl Perf {
    fn start(dir: &Option<PathBuf>, name: &str, pid: u32) -> Perf {
        let Some(dir) = dir else { return Perf(None) };
        let _ = std::fs::create_dir_all(dir);
        let child = std::process::Command::new("perf")
            .args([
                "record",
                "-g",
                "-q",
                "-F",
                "999",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(dir.join(format!("{name}.data")))
            .spawn()
            .ok();
        std::thread::sleep(Duration::from_millis(300));
        Perf(child)
    }
    fn stop(self) {
        if let Some(mut c) = self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let _ = c.wait();
        }
    }
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Phase {
    name: &'static str,
    /// kube-apiserver VmRSS at the end of the phase, KiB.
    rss: u64,
    n: usize,
    wall: Duration,
    api_cpu: u64,
    etcd_cpu: u64,
    errors: usize,
}

impl Phase {
    fn print(&self) {
        println!(
            "{:<7} {:>6} ops  {:>7.2} s  {:>7.0} ops/s  apiserver {:>5.0} us/op  etcd {:>5.0} us/op  apiserver RSS {:>4} MiB  errors {}",
            self.name,
            self.n,
            self.wall.as_secs_f64(),
            self.n as f64 / self.wall.as_secs_f64(),
            self.api_cpu as f64 / self.n as f64,
            self.etcd_cpu as f64 / self.n as f64,
            self.rss / 1024,
            self.errors
        );
    }
}

async fn run_phase<F, Fut>(
    name: &'static str,
    n: usize,
    clients: usize,
    api_pid: u32,
    etcd_pid: u32,
    f: F,
) -> Phase
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let errors = std::sync::atomic::AtomicUsize::new(0);
    let (a0, e0) = (cpu_us(api_pid), cpu_us(etcd_pid));
    let t0 = Instant::now();
    futures::stream::iter(0..n)
        .for_each_concurrent(clients, |i| {
            let fut = f(i);
            let errors = &errors;
            async move {
                if let Err(e) = fut.await {
                    if errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 5 {
                        eprintln!("  {name} {i}: {e:#}");
                    }
                }
            }
        })
        .await;
    let wall = t0.elapsed();
    Phase {
        name,
        rss: rss_kib(api_pid),
        n,
        wall,
        api_cpu: cpu_us(api_pid) - a0,
        etcd_cpu: cpu_us(etcd_pid) - e0,
        errors: errors.into_inner(),
    }
}

async fn bench(
    client: &kube::Client,
    ns: &str,
    o: &Opts,
    n: usize,
    api_pid: u32,
    etcd_pid: u32,
    perf: bool,
) -> anyhow::Result<(Phase, Phase)> {
    let nsapi: Api<Namespace> = Api::all(client.clone());
    nsapi
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await?;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "default"}}))?,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    // Pod watchers (as the scheduler and the bench have): every create and
    // bind is a watch event encoded for each of them.
    let mut watchers = Vec::new();
    for _ in 0..o.watchers {
        let mut stream = pods
            .watch(&kube::api::WatchParams::default(), "0")
            .await?
            .boxed();
        watchers.push(tokio::spawn(async move {
            let mut n = 0usize;
            while let Some(ev) = stream.next().await {
                if ev.is_err() {
                    break;
                }
                n += 1;
            }
            n
        }));
    }
    let perf_dir = if perf { o.perf.clone() } else { None };

    let p = Perf::start(&perf_dir, "create", api_pid);
    let create = run_phase("create", n, o.clients, api_pid, etcd_pid, |i| {
        let pods = pods.clone();
        async move {
            pods.create(&PostParams::default(), &pod(&format!("p-{i:05}")))
                .await?;
            Ok(())
        }
    })
    .await;
    p.stop();

    let p = Perf::start(&perf_dir, "bind", api_pid);
    let bind = run_phase("bind", n, o.clients, api_pid, etcd_pid, |i| {
        let pods = pods.clone();
        async move {
            let name = format!("p-{i:05}");
            let b = json!({"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": format!("node-{}", i % 100)}});
            let req = http::Request::post(format!(
                "/api/v1/namespaces/{ns}/pods/{name}/binding"
            ))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&b)?)?;
            let _: serde_json::Value = pods.clone().into_client().request(req).await?;
            Ok(())
        }
    })
    .await;
    p.stop();
    for w in watchers {
        w.abort();
    }
    Ok((create, bind))
}

/// N ConfigMap creates (1 KiB of data each) in a fresh namespace.
async fn configmaps(
    client: &kube::Client,
    o: &Opts,
    api_pid: u32,
    etcd_pid: u32,
) -> anyhow::Result<Phase> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let nsapi: Api<Namespace> = Api::all(client.clone());
    nsapi
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "configmaps"}}))?,
        )
        .await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "configmaps");
    let value = "x".repeat(1024);
    Ok(
        run_phase("cm", o.configmaps, o.clients, api_pid, etcd_pid, |i| {
            let cms = cms.clone();
            let value = value.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": format!("cm-{i:05}")},
                    "data": {"value": value},
                }))?;
                cms.create(&PostParams::default(), &cm).await?;
                Ok(())
            }
        })
        .await,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = parse()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let etcd = storage::testing::EtcdProcess::try_start()?;
    let etcd_pid = etcd.pid().context("etcd pid")?;
    let pki = apiserver::testing::Pki::generate()?;
    let port = free_port();
    let log = std::fs::File::create(pki.path("apiserver.log"))?;
    let mut child = std::process::Command::new(&o.apiserver)
        .args([
            format!("--etcd-servers={}", etcd.endpoint()),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!("--tls-cert-file={}", pki.path("apiserver.crt").display()),
            format!(
                "--tls-private-key-file={}",
                pki.path("apiserver.key").display()
            ),
            format!("--client-ca-file={}", pki.path("ca.crt").display()),
            format!("--token-auth-file={}", pki.path("tokens.csv").display()),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            format!("--service-account-issuer={}", apiserver::testing::SA_ISSUER),
            format!(
                "--service-account-key-file={}",
                pki.path("sa.pub").display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                pki.path("sa.key").display()
            ),
        ])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", o.apiserver.display()))?;
    let api_pid = child.id();
    let result = async {
        let kc = kube::config::Kubeconfig::from_yaml(
            &pki.kubeconfig(&format!("https://127.0.0.1:{port}")),
        )?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        let client = kube::Client::try_from(cfg)?;
        let mut ready = false;
        for _ in 0..300 {
            let req = http::Request::get("/readyz").body(Vec::new())?;
            if let Ok(s) = client.request_text(req).await {
                if s.trim() == "ok" {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::ensure!(ready, "apiserver not ready");
        println!(
            "kube-apiserver pid {api_pid}, etcd pid {etcd_pid}; {} pods, {} clients",
            o.pods, o.clients
        );
        if o.warmup > 0 {
            let (c, b) = bench(&client, "warmup", &o, o.warmup, api_pid, etcd_pid, false).await?;
            print!("warmup: ");
            c.print();
            print!("warmup: ");
            b.print();
        }
        let (c, b) = bench(&client, "bench", &o, o.pods, api_pid, etcd_pid, true).await?;
        c.print();
        b.print();
        if o.configmaps > 0 {
            configmaps(&client, &o, api_pid, etcd_pid).await?.print();
        }
        anyhow::Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    if result.is_err() {
        eprintln!(
            "apiserver log: {}",
            std::fs::read_to_string(pki.path("apiserver.log")).unwrap_or_default()
        );
    }
    drop(etcd);
    result
}
