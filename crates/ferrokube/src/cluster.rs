//! Creating, deleting and inspecting clusters.
//!
//! A cluster is: a machine-wide index `n` (see [`crate::net`]), its PKI,
//! the nftables guard and bridge `fkbr<n>`, etcd and kube-apiserver in the
//! host network namespace, a local image registry on 10.200.n.1, and nodes.
//! Each node is a network namespace on the bridge running containerd and
//! the kubelet, with its state under `nodes/<node>/`.

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use component_base::{http_client, mounts, tls};

use crate::apiclient;
use crate::config::NodeConfig;
use crate::images::{self, Archive};
use crate::kubeconfig;
use crate::net;
use crate::node::{self, NodeBinaries};
use crate::pki::{self, Pki};
use crate::ports::pick_free_ports;
use crate::process::{self, Component, Readiness, RunningProcess};
use crate::state::{self, ClusterState, Layout, NodeRole, NodeState};
use crate::teardown::{self, Leftovers};
use crate::Output;

/// How long a stopped daemon gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long etcd gets to come up when `--wait 0` asked not to wait.
const ETCD_MIN_WAIT: Duration = Duration::from_secs(60);
/// How long the registry, containerd and node registration get at least,
/// whatever `--wait` says (creation needs them).
const NODE_MIN_WAIT: Duration = Duration::from_secs(60);
/// Lines of a daemon's log shown when it fails.
const LOG_TAIL_LINES: usize = 40;
/// Pass `--kubelet-client-certificate`, `--kubelet-client-key`,
/// `--kubelet-certificate-authority` and `--kubelet-preferred-address-types`
/// to kube-apiserver.
pub const APISERVER_KUBELET_CLIENT_FLAGS: bool = true;
/// Whether a missing `kubelet` binary fails `create cluster` (otherwise the
/// nodes run containerd only and a warning is printed).
pub const REQUIRE_KUBELET: bool = true;

/// Options of `create cluster`.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub name: String,
    pub wait: Duration,
    pub kubeconfig: Option<PathBuf>,
    pub retain: bool,
    /// No nodes: only the network, etcd, kube-apiserver and the registry.
    pub control_plane_only: bool,
    /// The nodes to create (`--config` / `--nodes`; control plane first).
    pub nodes: Vec<NodeConfig>,
}

/// The host ports a cluster uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub apiserver: u16,
    pub registry: u16,
    /// Secure ports of kube-controller-manager and kube-scheduler (upstream
    /// 10257 and 10259; free ports here so clusters can run side by side).
    pub controller_manager: u16,
    pub scheduler: u16,
    /// cloud-controller-manager's secure port (upstream 10258).
    pub cloud_controller_manager: u16,
}

impl Ports {
    pub fn pick() -> Result<Ports> {
        let p = pick_free_ports(7)?;
        Ok(Ports {
            etcd_client: p[0],
            etcd_peer: p[1],
            apiserver: p[2],
            registry: p[3],
            controller_manager: p[4],
            scheduler: p[5],
            cloud_controller_manager: p[6],
        })
    }
    fn to_map(self) -> BTreeMap<String, u16> {
        BTreeMap::from([
            ("etcd-client".to_string(), self.etcd_client),
            ("etcd-peer".to_string(), self.etcd_peer),
            ("apiserver".to_string(), self.apiserver),
            ("registry".to_string(), self.registry),
            (
                "kube-controller-manager".to_string(),
                self.controller_manager,
            ),
            ("kube-scheduler".to_string(), self.scheduler),
            (
                "cloud-controller-manager".to_string(),
                self.cloud_controller_manager,
            ),
        ])
    }
}

/// Binaries a cluster runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kube_scheduler: PathBuf,
    /// `docker-registry` (Debian package docker-registry).
    pub registry: PathBuf,
    /// containerd and the kubelet (`None` for a control-plane-only cluster).
    pub node: Option<NodeBinaries>,
    /// `None` when not built: nodes then register without the
    /// uninitialized taint and nothing programs cross-node routes.
    pub cloud_controller_manager: Option<PathBuf>,
}

fn from_path(name: &str, package: &str) -> Result<PathBuf> {
    process::find_in_path(name).ok_or_else(|| {
        anyhow!(
            "cannot find `{name}` on PATH; install it with `make deps` (Debian package {package})"
        )
    })
}

impl Binaries {
    /// etcd, docker-registry and containerd from `$PATH` (Debian packages);
    /// ferrokube's own daemons from `$FERROKUBE_BIN_DIR`, beside this
    /// executable, or `$PATH`.
    pub fn find(nodes: bool) -> Result<Binaries> {
        let etcd = from_path("etcd", "etcd-server")?;
        let own = |name: &str| {
            process::find_binary(name).ok_or_else(|| {
                anyhow!(
                    "cannot find `{name}` next to {} or on PATH; build it with `make build`",
                    std::env::current_exe()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|_| "ferrokube".into())
                )
            })
        };
        let kube_apiserver = own("kube-apiserver")?;
        let kube_controller_manager = own("kube-controller-manager")?;
        let kube_scheduler = own("kube-scheduler")?;
        let registry = from_path("docker-registry", "docker-registry")?;
        let node = if nodes {
            let containerd = from_path("containerd", "containerd")?;
            from_path("runc", "runc")?;
            from_path("ctr", "containerd")?;
            from_path("nft", "nftables")?;
            from_path("skopeo", "skopeo")?;
            if !Path::new(node::CNI_BIN_DIR).join("bridge").exists() {
                bail!(
                    "cannot find the CNI plugins in {}; install them with `make deps` (Debian package containernetworking-plugins)",
                    node::CNI_BIN_DIR
                );
            }
            let kubelet = process::find_binary("kubelet");
            if kubelet.is_none() && REQUIRE_KUBELET {
                bail!("cannot find `kubelet` next to kube-apiserver or on PATH; build it with `make build`");
            }
            Some(NodeBinaries {
                containerd,
                kubelet,
                kube_proxy: process::find_binary("kube-proxy"),
                registry: registry.clone(),
            })
        } else {
            from_path("nft", "nftables")?;
            None
        };
        from_path("ip", "iproute2")?;
        Ok(Binaries {
            etcd,
            kube_apiserver,
            kube_controller_manager,
            kube_scheduler,
            registry,
            node,
            cloud_controller_manager: process::find_binary("cloud-controller-manager"),
        })
    }

    /// The directory ferrokube's own daemons come from.
    pub fn bin_dir(&self) -> Option<&Path> {
        self.kube_apiserver.parent()
    }
}

/// The control-plane daemons of a cluster with index `n`, in start order.
/// New daemons are new entries here.
pub fn control_plane(layout: &Layout, ports: Ports, bins: &Binaries, n: u8) -> Vec<Component> {
    let pki = |f: &str| layout.pki_file(f).display().to_string();
    let etcd_client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let etcd_peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    let etcd_name = format!("ferrokube-{}", layout.name);
    let mut api_args = vec![
        format!("--etcd-servers={etcd_client}"),
        "--bind-address=0.0.0.0".into(),
        format!("--secure-port={}", ports.apiserver),
        format!("--advertise-address={}", net::gateway_ip(n)),
        format!("--tls-cert-file={}", pki("apiserver.crt")),
        format!("--tls-private-key-file={}", pki("apiserver.key")),
        format!("--client-ca-file={}", pki("ca.crt")),
        format!("--token-auth-file={}", layout.tokens().display()),
        format!("--service-cluster-ip-range={}", pki::SERVICE_CIDR),
        "--service-node-port-range=30000-32767".into(),
        // kubeadm's service-account key pair and issuer.
        format!("--service-account-issuer={}", pki::SERVICE_ACCOUNT_ISSUER),
        format!("--service-account-key-file={}", pki("sa.pub")),
        format!("--service-account-signing-key-file={}", pki("sa.key")),
    ];
    if APISERVER_KUBELET_CLIENT_FLAGS {
        api_args.extend([
            format!(
                "--kubelet-client-certificate={}",
                pki("apiserver-kubelet-client.crt")
            ),
            format!(
                "--kubelet-client-key={}",
                pki("apiserver-kubelet-client.key")
            ),
            format!("--kubelet-certificate-authority={}", pki("ca.crt")),
            // kubeadm's choice: node names do not resolve.
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname".into(),
        ]);
    }
    api_args.push("-v=2".into());
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
            netns: None,
        },
        Component {
            name: "kube-apiserver".into(),
            binary: bins.kube_apiserver.clone(),
            args: api_args,
            env: vec![],
            log_file: layout.log_file("kube-apiserver"),
            readiness: Readiness::ApiserverReadyz {
                port: ports.apiserver,
            },
            netns: None,
        },
        Component {
            name: "kube-controller-manager".into(),
            binary: bins.kube_controller_manager.clone(),
            args: vec![
                format!(
                    "--kubeconfig={}",
                    layout.component_kubeconfig("controller-manager").display()
                ),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", ports.controller_manager),
                format!("--root-ca-file={}", pki("ca.crt")),
                format!("--service-account-private-key-file={}", pki("sa.key")),
                format!("--cluster-cidr={}", net::cluster_pod_cidr(n)),
                "--allocate-node-cidrs=true".into(),
                format!("--service-cluster-ip-range={}", pki::SERVICE_CIDR),
                "--controllers=*".into(),
                "-v=2".into(),
            ],
            env: vec![],
            log_file: layout.log_file("kube-controller-manager"),
            readiness: Readiness::None,
            netns: None,
        },
        Component {
            name: "kube-scheduler".into(),
            binary: bins.kube_scheduler.clone(),
            args: vec![
                format!(
                    "--kubeconfig={}",
                    layout.component_kubeconfig("scheduler").display()
                ),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", ports.scheduler),
                "-v=2".into(),
            ],
            env: vec![],
            log_file: layout.log_file("kube-scheduler"),
            readiness: Readiness::None,
            netns: None,
        },
    ]
    .into_iter()
    .chain(bins.cloud_controller_manager.as_ref().map(|ccm| Component {
        name: "cloud-controller-manager".into(),
        binary: ccm.clone(),
        args: vec![
            format!(
                "--kubeconfig={}",
                layout.component_kubeconfig("cloud-controller-manager").display()
            ),
            "--cloud-provider=local".into(),
            format!("--cloud-config={}", layout.cloud_config().display()),
            format!("--cluster-name={}", layout.name),
            format!("--cluster-cidr={}", net::cluster_pod_cidr(n)),
            // kube-controller-manager's node IPAM assigns the podCIDRs; this
            // (with --configure-cloud-routes) turns the route controller on.
            "--allocate-node-cidrs=true".into(),
            "--configure-cloud-routes=true".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", ports.cloud_controller_manager),
            "-v=2".into(),
        ],
        env: vec![],
        log_file: layout.log_file("cloud-controller-manager"),
        readiness: Readiness::None,
        netns: None,
    }))
    .collect()
}

/// The local cloud provider's config (the cloud-controller-manager's
/// `--cloud-config`): where the nodes live and the LoadBalancer pool.
pub fn cloud_config(cluster: &str, n: u8) -> String {
    let v = serde_json::json!({
        "clusterName": cluster,
        "bridge": net::bridge_name(n),
        "nodeSubnet": net::node_subnet(n),
        "loadBalancerPool": net::load_balancer_pool(n),
        "netnsPrefix": net::NETNS_PREFIX,
    });
    serde_yaml::to_string(&v).unwrap_or_default()
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
        Readiness::UnixSocket { path } => {
            tokio::time::timeout(timeout, tokio::net::UnixStream::connect(path))
                .await
                .map_err(|_| anyhow!("connecting to {} timed out", path.display()))?
                .with_context(|| format!("connecting to {}", path.display()))?;
            Ok(true)
        }
        Readiness::Http { addr, path } => {
            let addr: SocketAddr = addr
                .parse()
                .with_context(|| format!("bad address {addr:?}"))?;
            let resp = http_client::get(addr, path, None, timeout).await?;
            Ok(resp.status == 200)
        }
        Readiness::NodeReady { port, node } => {
            Ok(apiclient::node_status(*port, client.clone(), node).await? == Some(true))
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
        teardown(layout).with_context(|| format!("removing stale {}", layout.dir.display()))?;
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

/// Whether index `n` may be torn down on behalf of the cluster in `dir`:
/// it claims it, or nobody does.
fn owns_index(run: &Path, n: u8, dir: &Path) -> bool {
    match net::claims(run).into_iter().find(|(m, _)| *m == n) {
        Some((_, c)) => c.dir == dir,
        None => true,
    }
}

/// Whether things named after cluster `name` (namespaces, nftables table,
/// cgroups) may be torn down on behalf of the cluster in `dir`: no other
/// existing cluster of that name claims an index.
fn owns_name(run: &Path, name: &str, dir: &Path) -> bool {
    !net::claims(run)
        .into_iter()
        .any(|(_, c)| c.name == name && c.dir != dir && c.dir.exists())
}

/// Remove everything of a cluster: its daemons (kubelets before
/// containerds, newest first), leftover shims and containers, mounts, node
/// namespaces and veths, the bridge, the nftables guard, cgroups, the
/// directory, and its index claim. Idempotent; works from partial state
/// (a crashed create, a lost cluster.json). Returns the names of the
/// daemons that were running.
pub fn teardown(layout: &Layout) -> Result<Vec<String>> {
    let st = ClusterState::load(layout).unwrap_or_else(|e| {
        tracing::warn!("ignoring unreadable state: {e:#}");
        None
    });
    let run = net::run_dir();
    let index = st
        .as_ref()
        .and_then(|s| s.index)
        .or_else(|| net::find_claim(&run, &layout.dir))
        .filter(|n| owns_index(&run, *n, &layout.dir));
    let by_name = owns_name(&run, &layout.name, &layout.dir);

    // What identifies the cluster's processes, gathered before anything is
    // removed.
    let mut node_nets: Vec<(String, String)> = st
        .as_ref()
        .map(|s| {
            s.nodes
                .iter()
                .map(|n| (n.netns.clone(), n.host_veth.clone()))
                .collect()
        })
        .unwrap_or_default();
    if by_name {
        for ns in net::existing_node_netns(&layout.name) {
            if !node_nets.iter().any(|(n, _)| *n == ns) {
                node_nets.push((ns, String::new()));
            }
        }
    }
    if let Some(n) = index {
        for veth in net::existing_host_veths(n) {
            if !node_nets.iter().any(|(_, v)| *v == veth) {
                node_nets.push((String::new(), veth));
            }
        }
    }
    let mut roots = vec![layout.dir.clone()];
    let mut leftovers = Leftovers {
        cgroup_prefix: by_name.then(|| node::cluster_cgroup(&layout.name)),
        shim_markers: vec![format!("{}/", layout.marker())],
        ..Default::default()
    };
    if let Some(n) = index {
        let run_dir = net::cluster_run_dir(n);
        leftovers
            .shim_markers
            .push(format!("{}/", run_dir.display()));
        roots.push(run_dir);
    }
    for (ns, _) in &node_nets {
        if !ns.is_empty() {
            if let Some(id) = teardown::ns_id(&net::netns_path(ns)) {
                leftovers.netns.insert(id);
            }
        }
    }
    for m in mounts::mounts_under(&mounts::mounts(), &roots) {
        if m.fs_type == "nsfs" {
            if let Some(id) = teardown::ns_id(&m.mount_point) {
                leftovers.netns.insert(id);
            }
        }
    }

    let stopped = stop_all(layout, st.as_ref());
    let killed = leftovers.kill_all(Duration::from_secs(15));
    if killed > 0 {
        tracing::debug!("killed {killed} leftover container processes");
    }
    let mut errors = Vec::new();
    let stuck = mounts::unmount_under(&roots);
    if !stuck.is_empty() {
        errors.push(format!("could not unmount {stuck:?}"));
    }
    for (ns, veth) in &node_nets {
        if let Err(e) = net::teardown_node(ns, veth) {
            errors.push(format!("{e:#}"));
        }
    }
    if let Some(n) = index {
        if let Err(e) = net::remove_bridge(n) {
            errors.push(format!("{e:#}"));
        }
    }
    if by_name {
        if let Err(e) = net::remove_guard(&layout.name) {
            errors.push(format!("{e:#}"));
        }
        let cg = node::cluster_cgroup(&layout.name);
        let failed = teardown::remove_cgroups(cg.trim_start_matches('/'));
        if !failed.is_empty() {
            errors.push(format!("could not remove cgroups {failed:?}"));
        }
    }
    if let Some(n) = index {
        let _ = fs::remove_dir_all(net::cluster_run_dir(n));
    }
    if layout.dir.exists() {
        if let Err(e) = fs::remove_dir_all(&layout.dir) {
            errors.push(format!("removing {}: {e}", layout.dir.display()));
        }
    }
    if let Some(n) = index {
        if errors.is_empty() {
            net::release_index(&run, n, &layout.dir);
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(stopped)
}

/// Claim a machine-wide cluster index for `layout`, first clearing the
/// claims of clusters whose directory is gone.
fn claim_index(layout: &Layout) -> Result<u8> {
    let run = net::run_dir();
    let _lock = net::Lock::acquire(&run)?;
    for (n, c) in net::stale_claims(&run) {
        tracing::info!(
            "cleaning up after cluster '{}' (index {n}), whose directory {} is gone",
            c.name,
            c.dir.display()
        );
        let stale = Layout {
            name: c.name.clone(),
            dir: c.dir.clone(),
        };
        if let Err(e) = teardown(&stale) {
            tracing::warn!("cleaning up cluster '{}': {e:#}", c.name);
        }
        net::release_index(&run, n, &c.dir);
    }
    net::claim_index(&run, &layout.name, &layout.dir, |n| {
        net::link_exists(&net::bridge_name(n))
    })
}

/// `ferrokube create cluster`.
pub async fn create(opts: &CreateOptions, out: &Output) -> Result<()> {
    state::validate_name(&opts.name)?;
    let home = state::ferrokube_home()?;
    let layout = Layout::new(&home, &opts.name);
    // Resolve everything that can fail cheaply before touching anything.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("creating a cluster needs root: it creates network namespaces, a bridge and nftables rules");
    }
    let bins = Binaries::find(!opts.control_plane_only)?;
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
        } else if let Err(te) = teardown(&layout) {
            tracing::warn!("cleaning up the failed cluster: {te:#}");
        }
        return Err(e);
    }
    Ok(())
}

/// Start `c`, record it, and wait for it until `wait` (if any).
async fn start(
    c: &Component,
    layout: &Layout,
    st: &mut ClusterState,
    client: &Arc<rustls::ClientConfig>,
    wait: Option<Instant>,
    msg: &str,
    out: &Output,
) -> Result<RunningProcess> {
    out.begin(msg);
    let p = match process::spawn(c, &layout.dir) {
        Ok(p) => p,
        Err(e) => {
            out.end(false);
            return Err(e);
        }
    };
    st.processes.push(p.clone());
    st.save(layout)?;
    if let Some(deadline) = wait {
        if let Err(e) = wait_ready(c, &p, client, deadline).await {
            out.end(false);
            return Err(with_log_tail(e, &c.log_file));
        }
    }
    out.end(true);
    Ok(p)
}

fn with_log_tail(e: anyhow::Error, log: &Path) -> anyhow::Error {
    let tail = process::tail(log, LOG_TAIL_LINES);
    anyhow!(
        "{e:#}\n--- last {LOG_TAIL_LINES} lines of {} ---\n{tail}\n---",
        log.display()
    )
}

async fn create_in(
    layout: &Layout,
    bins: &Binaries,
    opts: &CreateOptions,
    kubeconfig_path: &Path,
    out: &Output,
) -> Result<()> {
    let started = Instant::now();
    let deadline = started + opts.wait;
    let min_deadline = |d: Duration| (started + d).max(deadline);
    let n = claim_index(layout)?;
    let gateway = net::gateway_ip(n);
    let ports = Ports::pick()?;
    let server = format!("https://127.0.0.1:{}", ports.apiserver);
    let registry_addr = format!("{gateway}:{}", ports.registry);
    let nodes = if bins.node.is_some() {
        node::plan_nodes(&opts.name, n, &opts.nodes)
    } else {
        vec![]
    };
    let mut st = ClusterState {
        name: opts.name.clone(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        server: server.clone(),
        ports: ports.to_map(),
        processes: vec![],
        kubeconfigs: vec![],
        index: Some(n),
        registry: Some(registry_addr.clone()),
        nodes: nodes.clone(),
    };
    fs::create_dir_all(layout.logs())?;
    st.save(layout)?;

    let pki = out.step("Generating certificates", || {
        pki::generate(layout, &[IpAddr::V4(gateway)])
    })?;
    out.step("Setting up the network", || {
        // The guard goes first: the apiserver and registry listen beyond
        // loopback.
        net::install_guard(&opts.name, n, &[ports.apiserver, ports.registry])?;
        net::setup_bridge(n)
    })?;

    let kcfg = kubeconfig::build(
        &opts.name,
        &server,
        &pki.ca_pem,
        &pki.admin_cert_pem,
        &pki.admin_key_pem,
    );
    kubeconfig::write_file(&layout.kubeconfig(), &kubeconfig::to_yaml(&kcfg)?)?;

    // kubeadm's controller-manager.conf and scheduler.conf: their own
    // identities, talking to the apiserver over loopback.
    // kube-proxy runs in the nodes' namespaces: it reaches the apiserver
    // through the bridge.
    let bridge_server = format!("https://{gateway}:{}", ports.apiserver);
    for (user, stem, srv) in [
        (pki::CONTROLLER_MANAGER_USER, "controller-manager", &server),
        (pki::SCHEDULER_USER, "scheduler", &server),
        (
            pki::CLOUD_CONTROLLER_MANAGER_USER,
            "cloud-controller-manager",
            &server,
        ),
        (pki::KUBE_PROXY_USER, "kube-proxy", &bridge_server),
    ] {
        let (crt, key) = pki::generate_component(&pki, layout, user, stem)?;
        let kc = kubeconfig::build_named(
            "kubernetes",
            user,
            &format!("{user}@kubernetes"),
            srv,
            &pki.ca_pem,
            &crt,
            &key,
        );
        kubeconfig::write_file(
            &layout.component_kubeconfig(stem),
            &kubeconfig::to_yaml(&kc)?,
        )?;
    }

    fs::write(layout.cloud_config(), cloud_config(&opts.name, n))?;

    let client = admin_client(&pki)?;
    for c in control_plane(layout, ports, bins, n) {
        let wait = match c.readiness {
            Readiness::EtcdHealth { .. } => Some(min_deadline(ETCD_MIN_WAIT)),
            _ if opts.wait.is_zero() => None,
            _ => Some(deadline),
        };
        start(
            &c,
            layout,
            &mut st,
            &client,
            wait,
            &format!("Starting {}", c.name),
            out,
        )
        .await?;
    }

    // The registry, before any containerd can pull.
    fs::create_dir_all(layout.registry_data())?;
    fs::write(
        layout.registry_config(),
        node::registry_config(layout, &registry_addr),
    )?;
    let reg = node::registry_component(layout, &bins.registry, &registry_addr);
    start(
        &reg,
        layout,
        &mut st,
        &client,
        Some(min_deadline(NODE_MIN_WAIT)),
        "Starting the image registry",
        out,
    )
    .await?;

    let archives = if bins.node.is_some() {
        let archives = find_archives(bins, out)?;
        if !archives.is_empty() {
            out.step("Pushing images to the registry", || {
                archives
                    .iter()
                    .try_for_each(|a| images::push(&registry_addr, a))
            })?;
        }
        archives
    } else {
        vec![]
    };

    if let Some(nb) = &bins.node {
        for nd in &nodes {
            start_node_runtime(
                layout,
                nd,
                nb,
                &pki,
                ports,
                &registry_addr,
                &archives,
                &mut st,
                &client,
                min_deadline(NODE_MIN_WAIT),
                out,
            )
            .await?;
        }
        let mut kubelets = Vec::new();
        for nd in &nodes {
            if let Some(kubelet) = &nb.kubelet {
                teardown::create_cgroups(&node::node_cgroup_root(&opts.name, &nd.name))?;
                let c = node::kubelet_component(
                    layout,
                    nd,
                    kubelet,
                    ports.apiserver,
                    bins.cloud_controller_manager.is_some(),
                );
                let p = start(
                    &c,
                    layout,
                    &mut st,
                    &client,
                    None,
                    &format!("Starting kubelet on {}", nd.name),
                    out,
                )
                .await?;
                kubelets.push((nd, c, p));
            } else {
                out.status(&format!(
                    " • WARNING: no `kubelet` binary found (build it with `make build`); node {} runs containerd only",
                    nd.name
                ));
            }
        }
        if let Some(kp) = &nb.kube_proxy {
            for nd in &nodes {
                let c = node::kube_proxy_component(layout, nd, kp, &net::cluster_pod_cidr(n));
                start(
                    &c,
                    layout,
                    &mut st,
                    &client,
                    None,
                    &format!("Starting kube-proxy on {}", nd.name),
                    out,
                )
                .await?;
            }
        }
        for (nd, c, p) in &kubelets {
            out.begin(&format!("Waiting for node {} to register", nd.name));
            let r = wait_node(
                nd,
                c,
                p,
                &client,
                ports.apiserver,
                false,
                min_deadline(NODE_MIN_WAIT),
            )
            .await;
            out.end(r.is_ok());
            r.map_err(|e| with_log_tail(e, &c.log_file))?;
            if nd.role == NodeRole::ControlPlane {
                apiclient::label_node(
                    ports.apiserver,
                    client.clone(),
                    &nd.name,
                    &[(node::CONTROL_PLANE_LABEL, "")],
                )
                .await
                .with_context(|| format!("labelling node {}", nd.name))?;
            }
        }
        if !opts.wait.is_zero() {
            for (nd, c, p) in &kubelets {
                out.begin(&format!(
                    "Waiting ≤ {} for node {} to be Ready",
                    component_base::duration::format(opts.wait),
                    nd.name
                ));
                let r = wait_node(nd, c, p, &client, ports.apiserver, true, deadline).await;
                out.end(r.is_ok());
                r.map_err(|e| with_log_tail(e, &c.log_file))?;
            }
        }
    }
    let exe = std::env::current_exe().context("locating the ferrokube executable")?;
    for nd in &nodes {
        for m in &nd.port_mappings {
            let c = crate::forward::component(layout, nd, m, &exe);
            start(
                &c,
                layout,
                &mut st,
                &client,
                None,
                &format!(
                    "Mapping host port {}:{} to {}:{}",
                    m.listen_address, m.host_port, nd.name, m.container_port
                ),
                out,
            )
            .await?;
        }
    }
    if !nodes.is_empty() && bins.node.as_ref().is_some_and(|nb| nb.kubelet.is_some()) {
        out.begin("Deploying cluster DNS");
        let r = crate::addons::apply(&layout.kubeconfig(), crate::addons::DNS).await;
        out.end(r.is_ok());
        r?;
        out.begin("Deploying local-path storage (StorageClass standard)");
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let r = match crate::addons::local_path(&layout.dir, &names) {
            Ok(m) => crate::addons::apply(&layout.kubeconfig(), &m).await,
            Err(e) => Err(e),
        };
        out.end(r.is_ok());
        r?;
        if !opts.wait.is_zero() {
            out.begin("Waiting for the add-ons (cluster DNS, storage)");
            let r = crate::addons::wait_available(
                &layout.kubeconfig(),
                crate::addons::DEPLOYMENTS,
                deadline,
            )
            .await;
            out.end(r.is_ok());
            // As kind with CoreDNS: the cluster is up; say what is missing.
            if let Err(e) = r {
                out.status(&format!(
                    " • WARNING: the add-ons are not available yet: {e:#}"
                ));
            }
        }
    }
    if !opts.wait.is_zero() {
        out.status(&format!(
            " • Ready after {}",
            component_base::duration::format(Duration::from_secs(started.elapsed().as_secs()))
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

/// The image archives to load into every node (warns when there are none).
fn find_archives(bins: &Binaries, out: &Output) -> Result<Vec<Archive>> {
    let Some(dir) = images::images_dir(bins.bin_dir()) else {
        return Ok(vec![]);
    };
    if !dir.is_dir() {
        out.status(&format!(
            " • WARNING: no images directory {} (build the images with `make build`, or set FERROKUBE_IMAGES_DIR); pods cannot start until images are loaded with `ferrokube load image-archive`",
            dir.display()
        ));
        return Ok(vec![]);
    }
    images::archives_in(&dir)?
        .iter()
        .map(|p| images::inspect(p))
        .collect()
}

/// Prepare one node (namespace, files) and start its containerd with the
/// images loaded.
#[allow(clippy::too_many_arguments)]
async fn start_node_runtime(
    layout: &Layout,
    nd: &NodeState,
    nb: &NodeBinaries,
    pki: &Pki,
    ports: Ports,
    registry_addr: &str,
    archives: &[Archive],
    st: &mut ClusterState,
    client: &Arc<rustls::ClientConfig>,
    deadline: Instant,
    out: &Output,
) -> Result<()> {
    let n = st.index.unwrap_or_default();
    out.step(&format!("Preparing node {}", nd.name), || {
        net::setup_node(&net::NodeNet::new(n, nd.index, &nd.name))?;
        node::write_files(
            layout,
            nd,
            pki,
            ports.apiserver,
            &net::gateway_ip(n).to_string(),
            Some(registry_addr),
        )
    })?;
    let c = node::containerd_component(layout, nd, &nb.containerd);
    start(
        &c,
        layout,
        st,
        client,
        Some(deadline),
        &format!("Starting containerd on {}", nd.name),
        out,
    )
    .await?;
    if !archives.is_empty() {
        out.step(&format!("Loading images into {}", nd.name), || {
            archives
                .iter()
                .try_for_each(|a| images::import(&nd.containerd_socket, a))
        })?;
    }
    Ok(())
}

/// Wait until the Node of `nd` exists (and, with `ready`, is Ready).
async fn wait_node(
    nd: &NodeState,
    c: &Component,
    p: &RunningProcess,
    client: &Arc<rustls::ClientConfig>,
    port: u16,
    ready: bool,
    deadline: Instant,
) -> Result<()> {
    loop {
        let last = match apiclient::node_status(port, client.clone(), &nd.name).await {
            Ok(Some(true)) => return Ok(()),
            Ok(Some(false)) if !ready => return Ok(()),
            Ok(Some(false)) => "not Ready yet".to_string(),
            Ok(None) => "not registered yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if !process::pid_running(p.pid) {
            bail!("{} exited (node {}: {last})", c.name, nd.name);
        }
        if Instant::now() >= deadline {
            bail!("timed out waiting for node {} ({last})", nd.name);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `ferrokube delete cluster`. Deleting a cluster that does not exist
/// succeeds.
pub fn delete(name: &str, explicit_kubeconfig: Option<&Path>, out: &Output) -> Result<()> {
    state::validate_name(name)?;
    let home = state::ferrokube_home()?;
    let layout = Layout::new(&home, name);
    out.status(&format!("Deleting cluster \"{name}\" ..."));
    let st = ClusterState::load(&layout).ok().flatten();

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

    let stopped = teardown(&layout)?;
    if !stopped.is_empty() {
        out.status(&format!("Deleted processes: [{}]", stopped.join(" ")));
    }
    if !errors.is_empty() {
        bail!("failed to update kubeconfig: {}", errors.join("; "));
    }
    Ok(())
}

/// `ferrokube get nodes`: the cluster's node names.
pub fn get_nodes(name: &str) -> Result<Vec<String>> {
    state::validate_name(name)?;
    let layout = Layout::new(&state::ferrokube_home()?, name);
    Ok(ClusterState::load(&layout)?
        .map(|st| st.nodes.into_iter().map(|n| n.name).collect())
        .unwrap_or_default())
}

/// `ferrokube load image-archive`: import an OCI or docker archive into
/// every node's containerd and push it to the cluster's registry.
pub fn load_image_archive(name: &str, file: &Path, out: &Output) -> Result<()> {
    let layout = existing_layout(name)?;
    let st = ClusterState::load(&layout)?
        .ok_or_else(|| anyhow!("could not locate a cluster named '{name}'"))?;
    if !file.is_file() {
        bail!("image archive {} does not exist", file.display());
    }
    let archive = images::inspect(file)?;
    if st.nodes.is_empty() {
        bail!("cluster '{name}' has no nodes");
    }
    let names: Vec<&str> = archive.images.iter().map(|i| i.name.as_str()).collect();
    for nd in &st.nodes {
        images::import(&nd.containerd_socket, &archive)
            .with_context(|| format!("loading into node {}", nd.name))?;
    }
    if let Some(reg) = &st.registry {
        images::push(reg, &archive)?;
    }
    out.status(&format!(
        "Image: {names:?} loaded into nodes [{}]",
        st.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    ));
    Ok(())
}

/// The nodes `only` selects (all when `None`) of a loaded cluster.
fn selected_nodes(st: &ClusterState, name: &str, only: Option<&str>) -> Result<Vec<NodeState>> {
    let nodes: Vec<NodeState> = st
        .nodes
        .iter()
        .filter(|n| only.is_none_or(|o| o == n.name))
        .cloned()
        .collect();
    if nodes.is_empty() {
        bail!("cluster '{name}' has no node {}", only.unwrap_or("at all"));
    }
    Ok(nodes)
}

/// Stop the recorded process `pname` and start `component(binary)` in its
/// place (the binary from its recorded command line); returns the new
/// process and the component.
fn replace_process(
    layout: &Layout,
    st: &mut ClusterState,
    pname: &str,
    component: impl FnOnce(&Path) -> Component,
    out: &Output,
    what: &str,
) -> Result<(RunningProcess, Component)> {
    let Some(idx) = st.processes.iter().position(|p| p.name == pname) else {
        bail!("no {pname} process recorded");
    };
    let old = st.processes[idx].clone();
    let binary = old
        .cmdline
        .first()
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("no command line recorded for {pname}"))?;
    let c = component(&binary);
    out.begin(what);
    old.stop(&layout.marker(), STOP_GRACE);
    let p = match process::spawn(&c, &layout.dir) {
        Ok(p) => p,
        Err(e) => {
            out.end(false);
            return Err(e);
        }
    };
    st.processes[idx] = p.clone();
    st.save(layout)?;
    Ok((p, c))
}

/// `ferrokube restart kubelet`: stop each selected node's kubelet (SIGTERM,
/// then SIGKILL after the grace period), start it again with the same
/// command line, and wait until its Node is Ready again. Running pods are
/// left alone: the new kubelet adopts them from containerd.
pub async fn restart_kubelet(name: &str, only: Option<&str>, out: &Output) -> Result<()> {
    let layout = existing_layout(name)?;
    let mut st = ClusterState::load(&layout)?
        .ok_or_else(|| anyhow!("could not locate a cluster named '{name}'"))?;
    let nodes = selected_nodes(&st, name, only)?;
    let read = |f: &str| {
        fs::read_to_string(layout.pki_file(f))
            .with_context(|| format!("reading {}", layout.pki_file(f).display()))
    };
    let client = admin_client(&Pki {
        ca_pem: read("ca.crt")?,
        admin_cert_pem: read("admin.crt")?,
        admin_key_pem: read("admin.key")?,
        admin_token: String::new(),
        ca_key_pem: String::new(),
    })?;
    let port = *st
        .ports
        .get("apiserver")
        .ok_or_else(|| anyhow!("cluster.json has no apiserver port"))?;
    let external = st
        .processes
        .iter()
        .any(|p| p.name == "cloud-controller-manager");
    for nd in &nodes {
        let (p, c) = replace_process(
            &layout,
            &mut st,
            &node::kubelet_process(&nd.name),
            |bin| node::kubelet_component(&layout, nd, bin, port, external),
            out,
            &format!("Restarting kubelet on {}", nd.name),
        )?;
        let deadline = Instant::now() + NODE_MIN_WAIT;
        // The old kubelet's Ready status may still be current: wait for the
        // new process to renew it, then for Ready.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let r = wait_node(nd, &c, &p, &client, port, true, deadline).await;
        out.end(r.is_ok());
        r.map_err(|e| with_log_tail(e, &c.log_file))?;
    }
    Ok(())
}

/// `ferrokube restart kube-proxy`: stop each node's kube-proxy and start it
/// again with the same command line (its rules stay in place meanwhile).
pub fn restart_kube_proxy(name: &str, only: Option<&str>, out: &Output) -> Result<()> {
    let layout = existing_layout(name)?;
    let mut st = ClusterState::load(&layout)?
        .ok_or_else(|| anyhow!("could not locate a cluster named '{name}'"))?;
    let nodes = selected_nodes(&st, name, only)?;
    let cidr = net::cluster_pod_cidr(st.index.unwrap_or_default());
    for nd in &nodes {
        replace_process(
            &layout,
            &mut st,
            &node::kube_proxy_process(&nd.name),
            |bin| node::kube_proxy_component(&layout, nd, bin, &cidr),
            out,
            &format!("Restarting kube-proxy on {}", nd.name),
        )?;
        out.end(true);
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
            kube_controller_manager: "/b/kube-controller-manager".into(),
            kube_scheduler: "/b/kube-scheduler".into(),
            registry: "/usr/bin/docker-registry".into(),
            node: None,
            cloud_controller_manager: None,
        };
        let ports = Ports {
            etcd_client: 1,
            etcd_peer: 2,
            apiserver: 3,
            registry: 4,
            controller_manager: 5,
            scheduler: 6,
            cloud_controller_manager: 8,
        };
        let cs = control_plane(&layout, ports, &bins, 7);
        assert_eq!(
            cs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            [
                "etcd",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler"
            ]
        );
        let api = &cs[1].args;
        for want in [
            "--etcd-servers=http://127.0.0.1:1",
            "--bind-address=0.0.0.0",
            "--secure-port=3",
            "--advertise-address=10.200.7.1",
            "--tls-cert-file=/h/clusters/c/pki/apiserver.crt",
            "--tls-private-key-file=/h/clusters/c/pki/apiserver.key",
            "--client-ca-file=/h/clusters/c/pki/ca.crt",
            "--token-auth-file=/h/clusters/c/tokens.csv",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--service-node-port-range=30000-32767",
            "--kubelet-client-certificate=/h/clusters/c/pki/apiserver-kubelet-client.crt",
            "--kubelet-client-key=/h/clusters/c/pki/apiserver-kubelet-client.key",
            "--kubelet-certificate-authority=/h/clusters/c/pki/ca.crt",
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
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
            netns: None,
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
