//! Creating, deleting and inspecting clusters.

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use component_base::{http_client, tls};

use crate::kubeconfig;
use crate::pki::{self, Pki};
use crate::ports::pick_free_ports;
use crate::process::{self, Component, Readiness, RunningProcess};
use crate::state::{self, ClusterState, Layout};
use crate::Output;

/// How long a stopped daemon gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long etcd gets to come up when `--wait 0` asked not to wait.
const ETCD_MIN_WAIT: Duration = Duration::from_secs(60);
/// Lines of a daemon's log shown when it fails.
const LOG_TAIL_LINES: usize = 40;

/// Options of `create cluster`.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub name: String,
    pub wait: Duration,
    pub kubeconfig: Option<PathBuf>,
    pub retain: bool,
}

/// The loopback ports a cluster uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub apiserver: u16,
}

impl Ports {
    pub fn pick() -> Result<Ports> {
        let p = pick_free_ports(3)?;
        Ok(Ports {
            etcd_client: p[0],
            etcd_peer: p[1],
            apiserver: p[2],
        })
    }
    fn to_map(self) -> BTreeMap<String, u16> {
        BTreeMap::from([
            ("etcd-client".to_string(), self.etcd_client),
            ("etcd-peer".to_string(), self.etcd_peer),
            ("apiserver".to_string(), self.apiserver),
        ])
    }
}

/// Binaries the control plane runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
}

impl Binaries {
    /// etcd from `$PATH` (the Debian `etcd-server` package); ferrokube's own
    /// daemons from `$FERROKUBE_BIN_DIR`, beside this executable, or `$PATH`.
    pub fn find() -> Result<Binaries> {
        let etcd = process::find_in_path("etcd").ok_or_else(|| {
            anyhow!("cannot find `etcd` on PATH; install it with `make deps` (Debian package etcd-server)")
        })?;
        let kube_apiserver = process::find_binary("kube-apiserver").ok_or_else(|| {
            anyhow!(
                "cannot find `kube-apiserver` next to {} or on PATH; build it with `make build`",
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "ferrokube".into())
            )
        })?;
        Ok(Binaries {
            etcd,
            kube_apiserver,
        })
    }
}

/// The control-plane daemons of a cluster, in start order. New daemons are
/// new entries here.
pub fn control_plane(layout: &Layout, ports: Ports, bins: &Binaries) -> Vec<Component> {
    let pki = |f: &str| layout.pki_file(f).display().to_string();
    let etcd_client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let etcd_peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    let etcd_name = format!("ferrokube-{}", layout.name);
    vec![
        Component {
            name: "etcd".into(),
            binary: bins.etcd.clone(),
            args: vec![
                format!("--name={etcd_name}"),
                format!("--data-dir={}", layout.etcd_data().display()),
                format!("--listen-client-urls={etcd_client}"),
                format!("--advertise-client-urls={etcd_client}"),
                format!("--listen-peer-urls={etcd_peer}"),
                format!("--initial-advertise-peer-urls={etcd_peer}"),
                format!("--initial-cluster={etcd_name}={etcd_peer}"),
                "--initial-cluster-state=new".into(),
                format!("--initial-cluster-token={etcd_name}"),
                "--logger=zap".into(),
                "--log-outputs=stderr".into(),
            ],
            env: vec![],
            log_file: layout.log_file("etcd"),
            readiness: Readiness::EtcdHealth {
                port: ports.etcd_client,
            },
        },
        Component {
            name: "kube-apiserver".into(),
            binary: bins.kube_apiserver.clone(),
            args: vec![
                format!("--etcd-servers={etcd_client}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", ports.apiserver),
                "--advertise-address=127.0.0.1".into(),
                format!("--tls-cert-file={}", pki("apiserver.crt")),
                format!("--tls-private-key-file={}", pki("apiserver.key")),
                format!("--client-ca-file={}", pki("ca.crt")),
                format!("--token-auth-file={}", layout.tokens().display()),
                format!("--service-cluster-ip-range={}", pki::SERVICE_CIDR),
                "--service-node-port-range=30000-32767".into(),
                "-v=2".into(),
            ],
            env: vec![],
            log_file: layout.log_file("kube-apiserver"),
            readiness: Readiness::ApiserverReadyz {
                port: ports.apiserver,
            },
        },
    ]
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// One readiness probe.
async fn probe(r: &Readiness, client: &Arc<rustls::ClientConfig>) -> Result<bool> {
    let timeout = Duration::from_secs(3);
    match r {
        Readiness::None => Ok(true),
        Readiness::EtcdHealth { port } => {
            let resp = http_client::get(loopback(*port), "/health", None, timeout).await?;
            let body = String::from_utf8_lossy(&resp.body);
            Ok(resp.status == 200 && body.replace(' ', "").contains("\"health\":\"true\""))
        }
        Readiness::ApiserverReadyz { port } => {
            let resp = http_client::get(
                loopback(*port),
                "/readyz",
                Some((client.clone(), "127.0.0.1")),
                timeout,
            )
            .await?;
            Ok(resp.status == 200 && String::from_utf8_lossy(&resp.body).trim() == "ok")
        }
    }
}

/// Poll until `c` is ready, it dies, or `deadline` passes.
async fn wait_ready(
    c: &Component,
    p: &RunningProcess,
    client: &Arc<rustls::ClientConfig>,
    deadline: Instant,
) -> Result<()> {
    loop {
        let last_err = match probe(&c.readiness, client).await {
            Ok(true) => return Ok(()),
            Ok(false) => "not ready yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        // We started it ourselves moments ago, so a live pid is ours.
        if !process::pid_running(p.pid) {
            bail!("{} exited before becoming ready", c.name);
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out waiting for {} to become ready (last probe: {last_err})",
                c.name
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn admin_client(pki: &Pki) -> Result<Arc<rustls::ClientConfig>> {
    let ca = tls::parse_certs(pki.ca_pem.as_bytes())?;
    let chain = tls::parse_certs(pki.admin_cert_pem.as_bytes())?;
    let key = tls::parse_key(pki.admin_key_pem.as_bytes())?;
    let mut cfg = tls::client_config_from(&ca, Some((chain, key)))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Refuse if a live cluster of this name exists; clear a stale one.
fn claim_dir(layout: &Layout) -> Result<()> {
    let already = || anyhow!("cluster '{}' already exists", layout.name);
    if layout.dir.exists() {
        let live = match ClusterState::load(layout) {
            Ok(Some(st)) => !st.live_processes(layout).is_empty(),
            Ok(None) => false,
            Err(_) => false,
        } || !orphan_processes(layout, None).is_empty();
        if live {
            return Err(already());
        }
        tracing::info!("removing stale state of cluster '{}'", layout.name);
        fs::remove_dir_all(&layout.dir)
            .with_context(|| format!("removing stale {}", layout.dir.display()))?;
    }
    if let Some(parent) = layout.dir.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    match fs::create_dir(&layout.dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(already()),
        Err(e) => Err(e).with_context(|| format!("creating {}", layout.dir.display())),
    }
}

/// Processes named only by pid files (e.g. cluster.json lost), recognised
/// by their command line mentioning the cluster directory.
fn orphan_processes(layout: &Layout, known: Option<&ClusterState>) -> Vec<RunningProcess> {
    let Ok(entries) = fs::read_dir(layout.pids()) else {
        return vec![];
    };
    let marker = layout.marker();
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e
                .file_name()
                .to_string_lossy()
                .strip_suffix(".pid")?
                .to_string();
            let pid: i32 = fs::read_to_string(e.path()).ok()?.trim().parse().ok()?;
            if known.is_some_and(|st| st.processes.iter().any(|p| p.pid == pid)) {
                return None;
            }
            let p = RunningProcess {
                name: name.clone(),
                pid,
                start_time: None,
                cmdline: vec![],
                log_file: layout.log_file(&name),
            };
            p.is_alive(&marker).then_some(p)
        })
        .collect()
}

/// Stop every process of a cluster, newest first. Returns the names of the
/// processes that were running.
fn stop_all(layout: &Layout, st: Option<&ClusterState>) -> Vec<String> {
    let marker = layout.marker();
    let mut procs: Vec<RunningProcess> = st.map(|s| s.processes.clone()).unwrap_or_default();
    procs.extend(orphan_processes(layout, st));
    let mut stopped = Vec::new();
    for p in procs.iter().rev() {
        if p.is_alive(&marker) {
            tracing::debug!("stopping {} (pid {})", p.name, p.pid);
            if p.stop(&marker, STOP_GRACE) {
                tracing::warn!("{} (pid {}) did not stop on SIGTERM; killed", p.name, p.pid);
            }
            stopped.push(p.name.clone());
        }
    }
    stopped
}

/// `ferrokube create cluster`.
pub async fn create(opts: &CreateOptions, out: &Output) -> Result<()> {
    state::validate_name(&opts.name)?;
    let home = state::ferrokube_home()?;
    let layout = Layout::new(&home, &opts.name);
    // Resolve everything that can fail cheaply before touching anything.
    let bins = Binaries::find()?;
    let kubeconfig_path = kubeconfig::resolve_path(opts.kubeconfig.as_deref())?;
    claim_dir(&layout)?;
    out.status(&format!("Creating cluster \"{}\" ...", opts.name));

    let res = create_in(&layout, &bins, opts, &kubeconfig_path, out).await;
    if let Err(e) = res {
        if opts.retain {
            out.status(&format!(
                "Leaving the failed cluster's state in {} (--retain); remove it with `ferrokube delete cluster --name {}`",
                layout.dir.display(),
                opts.name
            ));
        } else {
            let st = ClusterState::load(&layout).ok().flatten();
            stop_all(&layout, st.as_ref());
            let _ = fs::remove_dir_all(&layout.dir);
        }
        return Err(e);
    }
    Ok(())
}

async fn create_in(
    layout: &Layout,
    bins: &Binaries,
    opts: &CreateOptions,
    kubeconfig_path: &Path,
    out: &Output,
) -> Result<()> {
    let started = Instant::now();
    let pki = out.step("Generating certificates", || pki::generate(layout))?;
    let ports = Ports::pick()?;
    let server = format!("https://127.0.0.1:{}", ports.apiserver);
    let mut st = ClusterState {
        name: opts.name.clone(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        server: server.clone(),
        ports: ports.to_map(),
        processes: vec![],
        kubeconfigs: vec![],
    };
    fs::create_dir_all(layout.logs())?;
    st.save(layout)?;

    let kcfg = kubeconfig::build(
        &opts.name,
        &server,
        &pki.ca_pem,
        &pki.admin_cert_pem,
        &pki.admin_key_pem,
    );
    kubeconfig::write_file(&layout.kubeconfig(), &kubeconfig::to_yaml(&kcfg)?)?;

    let client = admin_client(&pki)?;
    let deadline = started + opts.wait;
    for c in control_plane(layout, ports, bins) {
        out.begin(&format!("Starting {}", c.name));
        let p = match process::spawn(&c, &layout.dir) {
            Ok(p) => p,
            Err(e) => {
                out.end(false);
                return Err(e);
            }
        };
        st.processes.push(p.clone());
        st.save(layout)?;
        let wait = match c.readiness {
            Readiness::None => None,
            Readiness::EtcdHealth { .. } if opts.wait.is_zero() => {
                Some(Instant::now() + ETCD_MIN_WAIT)
            }
            Readiness::EtcdHealth { .. } => Some(deadline),
            Readiness::ApiserverReadyz { .. } if opts.wait.is_zero() => None,
            Readiness::ApiserverReadyz { .. } => Some(deadline),
        };
        if let Some(deadline) = wait {
            if let Err(e) = wait_ready(&c, &p, &client, deadline).await {
                out.end(false);
                let tail = process::tail(&c.log_file, LOG_TAIL_LINES);
                bail!(
                    "{e:#}\n--- last {LOG_TAIL_LINES} lines of {} ---\n{tail}\n---",
                    c.log_file.display()
                );
            }
        }
        out.end(true);
    }
    if !opts.wait.is_zero() {
        out.status(&format!(
            " • Ready after {}",
            crate::duration::format(Duration::from_secs(started.elapsed().as_secs()))
        ));
    }

    kubeconfig::merge_into_file(kubeconfig_path, &kcfg)
        .with_context(|| format!("merging kubeconfig into {}", kubeconfig_path.display()))?;
    st.kubeconfigs.push(kubeconfig_path.to_path_buf());
    st.save(layout)?;
    let ctx = kubeconfig::context_name(&opts.name);
    out.status(&format!("Set kubectl context to \"{ctx}\""));
    out.status(&format!(
        "You can now use your cluster with:\n\nkubectl cluster-info --context {ctx}\n"
    ));
    Ok(())
}

/// `ferrokube delete cluster`. Deleting a cluster that does not exist
/// succeeds.
pub fn delete(name: &str, explicit_kubeconfig: Option<&Path>, out: &Output) -> Result<()> {
    state::validate_name(name)?;
    let home = state::ferrokube_home()?;
    let layout = Layout::new(&home, name);
    out.status(&format!("Deleting cluster \"{name}\" ..."));
    let st = ClusterState::load(&layout).unwrap_or_else(|e| {
        tracing::warn!("ignoring unreadable state: {e:#}");
        None
    });
    let stopped = stop_all(&layout, st.as_ref());

    let mut paths: Vec<PathBuf> = st
        .as_ref()
        .map(|s| s.kubeconfigs.clone())
        .unwrap_or_default();
    match kubeconfig::resolve_path(explicit_kubeconfig) {
        Ok(p) => paths.insert(0, p),
        Err(e) => tracing::debug!("no kubeconfig to clean: {e:#}"),
    }
    let ctx = kubeconfig::context_name(name);
    let mut errors = Vec::new();
    let mut seen = Vec::new();
    for p in paths {
        if seen.contains(&p) {
            continue;
        }
        if let Err(e) = kubeconfig::remove_from_file(&p, &ctx) {
            errors.push(format!("{}: {e:#}", p.display()));
        }
        seen.push(p);
    }

    if layout.dir.exists() {
        fs::remove_dir_all(&layout.dir)
            .with_context(|| format!("removing {}", layout.dir.display()))?;
    }
    if !stopped.is_empty() {
        out.status(&format!("Deleted processes: [{}]", stopped.join(" ")));
    }
    if !errors.is_empty() {
        bail!("failed to update kubeconfig: {}", errors.join("; "));
    }
    Ok(())
}

/// `ferrokube get clusters`.
pub fn list() -> Result<Vec<String>> {
    state::list_clusters(&state::ferrokube_home()?)
}

fn existing_layout(name: &str) -> Result<Layout> {
    state::validate_name(name)?;
    let layout = Layout::new(&state::ferrokube_home()?, name);
    if !layout.kubeconfig().is_file() {
        bail!("could not locate a cluster named '{name}'. Use the --name option to select a different cluster");
    }
    Ok(layout)
}

/// `ferrokube get kubeconfig`.
pub fn get_kubeconfig(name: &str) -> Result<String> {
    let layout = existing_layout(name)?;
    fs::read_to_string(layout.kubeconfig())
        .with_context(|| format!("reading {}", layout.kubeconfig().display()))
}

/// `ferrokube export kubeconfig`.
pub fn export_kubeconfig(name: &str, explicit: Option<&Path>, out: &Output) -> Result<()> {
    let text = get_kubeconfig(name)?;
    let layout = existing_layout(name)?;
    let cfg = kubeconfig::parse(&text)?;
    let path = kubeconfig::resolve_path(explicit)?;
    kubeconfig::merge_into_file(&path, &cfg)?;
    if let Ok(Some(mut st)) = ClusterState::load(&layout) {
        if !st.kubeconfigs.contains(&path) {
            st.kubeconfigs.push(path.clone());
            let _ = st.save(&layout);
        }
    }
    out.status(&format!(
        "Set kubectl context to \"{}\"",
        kubeconfig::context_name(name)
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_plane_flags() {
        let layout = Layout::new(Path::new("/h"), "c");
        let bins = Binaries {
            etcd: "/usr/bin/etcd".into(),
            kube_apiserver: "/b/kube-apiserver".into(),
        };
        let ports = Ports {
            etcd_client: 1,
            etcd_peer: 2,
            apiserver: 3,
        };
        let cs = control_plane(&layout, ports, &bins);
        assert_eq!(
            cs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["etcd", "kube-apiserver"]
        );
        let api = &cs[1].args;
        for want in [
            "--etcd-servers=http://127.0.0.1:1",
            "--bind-address=127.0.0.1",
            "--secure-port=3",
            "--advertise-address=127.0.0.1",
            "--tls-cert-file=/h/clusters/c/pki/apiserver.crt",
            "--tls-private-key-file=/h/clusters/c/pki/apiserver.key",
            "--client-ca-file=/h/clusters/c/pki/ca.crt",
            "--token-auth-file=/h/clusters/c/tokens.csv",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--service-node-port-range=30000-32767",
            "-v=2",
        ] {
            assert!(api.iter().any(|a| a == want), "missing {want}");
        }
        assert!(cs[0]
            .args
            .contains(&"--data-dir=/h/clusters/c/etcd".to_string()));
        assert!(cs[0]
            .args
            .contains(&"--listen-peer-urls=http://127.0.0.1:2".to_string()));
        assert_eq!(
            cs[1].log_file,
            PathBuf::from("/h/clusters/c/logs/kube-apiserver.log")
        );
        // Every component's command line names the cluster dir, so it can be
        // recognised later.
        for c in &cs {
            assert!(
                c.args.iter().any(|a| a.contains(&layout.marker())),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn orphans_found_by_pid_file_and_marker() {
        let home = tempfile::tempdir().unwrap();
        let layout = Layout::new(home.path(), "orph");
        claim_dir(&layout).unwrap();
        let c = Component {
            name: "sleeper".into(),
            binary: PathBuf::from("/bin/sh"),
            // $0 is the cluster dir, so the command line carries the marker.
            args: vec!["-c".into(), "sleep 300; true".into(), layout.marker()],
            env: vec![],
            log_file: layout.log_file("sleeper"),
            readiness: Readiness::None,
        };
        let p = process::spawn(&c, &layout.dir).unwrap();
        // Only a pid file survives (cluster.json lost).
        fs::create_dir_all(layout.pids()).unwrap();
        fs::write(layout.pid_file("sleeper"), format!("{}\n", p.pid)).unwrap();
        fs::write(layout.pid_file("bogus"), "not a pid").unwrap();
        fs::write(layout.pid_file("init"), "1").unwrap();
        let found = orphan_processes(&layout, None);
        assert_eq!(found.iter().map(|p| p.pid).collect::<Vec<_>>(), [p.pid]);
        // A live cluster cannot be claimed again.
        let err = claim_dir(&layout).unwrap_err().to_string();
        assert_eq!(err, "cluster 'orph' already exists");
        assert_eq!(stop_all(&layout, None), ["sleeper"]);
        assert!(!process::pid_running(p.pid));
        // Now it is stale: claiming clears and recreates it.
        claim_dir(&layout).unwrap();
        assert!(!layout.pids().exists());
    }
}
