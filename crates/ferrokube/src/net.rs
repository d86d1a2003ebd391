//! The host side of a cluster's network: the machine-wide cluster index, the
//! bridge `fkbr<n>`, the nftables guard, and each node's network namespace
//! joined to the bridge by a veth pair.
//!
//! Addressing for cluster index `n` (0..=63) and node `k` (0-based):
//! node subnet 10.200.n.0/24 with the gateway 10.200.n.1 on `fkbr<n>`, node
//! address 10.200.n.(10+k); cluster pod CIDR 10.(128+n).0.0/16, node pod
//! range 10.(128+n).k.0/24.
//!
//! Everything here shells out to iproute2 (`ip`) and nftables (`nft`), like
//! the CNI plugins and kind do, and is idempotent: setting up something that
//! exists and tearing down something that is gone both succeed.

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::pki;

/// How many clusters can exist side by side on one machine.
pub const MAX_CLUSTERS: u8 = 64;
/// The first node address is 10.200.n.(NODE_IP_OFFSET).
pub const NODE_IP_OFFSET: u8 = 10;
/// Nodes per cluster (10.200.n.10 .. 10.200.n.159; .200 .. .250 is the
/// LoadBalancer pool; node IPAM gives each node a /24 of the pod CIDR).
pub const MAX_NODES: u8 = 150;

pub fn bridge_name(n: u8) -> String {
    format!("fkbr{n}")
}
pub fn gateway_ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 200, n, 1)
}
pub fn node_subnet(n: u8) -> String {
    format!("10.200.{n}.0/24")
}
pub fn node_ip(n: u8, k: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 200, n, NODE_IP_OFFSET + k)
}
pub fn cluster_pod_cidr(n: u8) -> String {
    format!("10.{}.0.0/16", 128 + u16::from(n))
}
/// The LoadBalancer IP pool on the cluster network.
pub fn load_balancer_pool(n: u8) -> String {
    format!("10.200.{n}.200-10.200.{n}.250")
}
/// Node `X` runs in network namespace `fk-X`.
pub const NETNS_PREFIX: &str = "fk-";
/// The network namespace of a node (`/run/netns/<name>`). Node names start
/// with the cluster name, so this is `fk-<cluster>-<role...>`.
pub fn netns_name(node: &str) -> String {
    format!("fk-{node}")
}
/// The host end of node `k`'s veth pair (at most 15 bytes: `fk63n199`).
pub fn host_veth(n: u8, k: u8) -> String {
    format!("fk{n}n{k}")
}
/// The cluster's nftables table (family `ip`).
pub fn nft_table(cluster: &str) -> String {
    format!("ferrokube-{cluster}")
}

/// Machine-wide runtime state: `$FERROKUBE_RUN_DIR`, else `/run/ferrokube`.
/// It holds the cluster index claims (`index/<n>.json`) and short socket
/// paths (`c<n>/...`). Being on tmpfs, it goes away on reboot together with
/// the bridges and namespaces it describes.
pub fn run_dir() -> PathBuf {
    std::env::var_os("FERROKUBE_RUN_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/ferrokube"))
}

/// Short per-cluster runtime directory (sockets): `<run dir>/c<n>`.
pub fn cluster_run_dir(n: u8) -> PathBuf {
    run_dir().join(format!("c{n}"))
}

/// Node `k`'s containerd socket.
pub fn containerd_socket(n: u8, k: u8) -> PathBuf {
    cluster_run_dir(n)
        .join(format!("n{k}"))
        .join("containerd.sock")
}

// ---------------------------------------------------------------------------
// Cluster index claims.

/// `<run dir>/index/<n>.json`: which cluster directory owns index `n`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexClaim {
    pub name: String,
    pub dir: PathBuf,
}

/// An exclusive `flock` on `<dir>/lock`, released on drop.
pub struct Lock {
    _file: fs::File,
}

impl Lock {
    pub fn acquire(dir: &Path) -> Result<Lock> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("locking {}", path.display()));
        }
        Ok(Lock { _file: f })
    }
}

fn index_dir(run: &Path) -> PathBuf {
    run.join("index")
}

fn claim_path(run: &Path, n: u8) -> PathBuf {
    index_dir(run).join(format!("{n}.json"))
}

/// Every readable claim, by index.
pub fn claims(run: &Path) -> Vec<(u8, IndexClaim)> {
    let Ok(entries) = fs::read_dir(index_dir(run)) else {
        return vec![];
    };
    let mut out: Vec<(u8, IndexClaim)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n: u8 = e
                .file_name()
                .to_str()?
                .strip_suffix(".json")?
                .parse()
                .ok()?;
            let claim = serde_json::from_slice(&fs::read(e.path()).ok()?).ok()?;
            Some((n, claim))
        })
        .collect();
    out.sort_by_key(|(n, _)| *n);
    out
}

/// The index claimed for `dir`, if any.
pub fn find_claim(run: &Path, dir: &Path) -> Option<u8> {
    claims(run)
        .into_iter()
        .find(|(_, c)| c.dir == dir)
        .map(|(n, _)| n)
}

/// Claims whose cluster directory is gone (deleted by hand, or a delete
/// that crashed between removing the directory and releasing the index).
pub fn stale_claims(run: &Path) -> Vec<(u8, IndexClaim)> {
    claims(run)
        .into_iter()
        .filter(|(_, c)| !c.dir.exists())
        .collect()
}

/// Claim the first free index for the cluster `name` in `dir` (the caller
/// holds the [`Lock`] and has already cleared stale claims). `in_use`
/// reports indexes taken by something else (e.g. an existing bridge).
pub fn claim_index(run: &Path, name: &str, dir: &Path, in_use: impl Fn(u8) -> bool) -> Result<u8> {
    let existing = claims(run);
    if let Some((n, _)) = existing.iter().find(|(_, c)| c.dir == dir) {
        return Ok(*n);
    }
    if let Some((_, c)) = existing.iter().find(|(_, c)| c.name == name) {
        bail!(
            "cluster '{name}' already exists in {} (cluster names are machine-wide: they name network namespaces and nftables tables)",
            c.dir.display()
        );
    }
    let n = (0..MAX_CLUSTERS)
        .find(|n| !existing.iter().any(|(m, _)| m == n) && !in_use(*n))
        .ok_or_else(|| anyhow!("no free cluster index: {MAX_CLUSTERS} clusters exist"))?;
    fs::create_dir_all(index_dir(run))?;
    let claim = IndexClaim {
        name: name.to_string(),
        dir: dir.to_path_buf(),
    };
    let path = claim_path(run, n);
    let tmp = index_dir(run).join(format!(".{n}.json.tmp"));
    fs::write(&tmp, serde_json::to_vec(&claim)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(n)
}

/// Drop the claim of index `n` if `dir` owns it.
pub fn release_index(run: &Path, n: u8, dir: &Path) {
    let path = claim_path(run, n);
    let owned = fs::read(&path)
        .ok()
        .and_then(|d| serde_json::from_slice::<IndexClaim>(&d).ok())
        .is_some_and(|c| c.dir == dir);
    if owned {
        let _ = fs::remove_file(path);
    }
}

// ---------------------------------------------------------------------------
// Running commands.

/// Run a command, returning its stdout; a failure carries its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    run_with_input(program, args, None)
}

/// [`run`] with `input` on stdin.
pub fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {program} (is it installed? try `make deps`)"))?;
    if let Some(input) = input {
        let mut w = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        w.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

pub fn netns_path(ns: &str) -> PathBuf {
    Path::new("/run/netns").join(ns)
}

pub fn netns_exists(ns: &str) -> bool {
    netns_path(ns).exists()
}

/// Run `f` on a thread that has joined the network namespace `ns` (for
/// /proc/sys/net writes and socket binds inside it).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let path = netns_path(ns);
    let file = fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a valid fd; only this thread changes namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("entering network namespace {ns}"));
            }
            f()
        })
        .join()
        .map_err(|_| anyhow!("thread in network namespace {ns} panicked"))?
    })
}

// ---------------------------------------------------------------------------
// The guard.

/// The nftables ruleset of a cluster's guard, applied atomically with
/// `nft -f`: it (re)creates table `ip ferrokube-<cluster>` which
/// * drops forwarded packets from the cluster's node, pod and service
///   subnets unless they leave through the cluster bridge, so nothing of the
///   cluster leaks out even on a host that forwards;
/// * drops packets to the cluster's host ports (apiserver, registry) unless
///   they arrive on loopback or the cluster bridge.
pub fn guard_ruleset(cluster: &str, n: u8, host_ports: &[u16]) -> String {
    let table = nft_table(cluster);
    let bridge = bridge_name(n);
    let mut ports: Vec<String> = host_ports.iter().map(u16::to_string).collect();
    ports.sort();
    ports.dedup();
    let mut s = String::new();
    // Declaring then deleting makes the transaction work whether or not the
    // table exists; the whole file is one atomic transaction.
    s.push_str(&format!("table ip {table}\ndelete table ip {table}\n"));
    s.push_str(&format!("table ip {table} {{\n"));
    s.push_str("\tchain forward {\n");
    s.push_str("\t\ttype filter hook forward priority filter - 10; policy accept;\n");
    s.push_str(&format!(
        "\t\tip saddr {{ {}, {}, {} }} oifname != \"{bridge}\" drop\n",
        node_subnet(n),
        cluster_pod_cidr(n),
        pki::SERVICE_CIDR
    ));
    s.push_str("\t}\n");
    if !ports.is_empty() {
        s.push_str("\tchain input {\n");
        s.push_str("\t\ttype filter hook input priority filter - 10; policy accept;\n");
        s.push_str(&format!(
            "\t\ttcp dport {{ {} }} iifname != {{ \"lo\", \"{bridge}\" }} drop\n",
            ports.join(", ")
        ));
        s.push_str("\t}\n");
    }
    s.push_str("}\n");
    s
}

pub fn install_guard(cluster: &str, n: u8, host_ports: &[u16]) -> Result<()> {
    let rules = guard_ruleset(cluster, n, host_ports);
    run_with_input("nft", &["-f", "-"], Some(&rules))
        .with_context(|| format!("installing nftables table {}", nft_table(cluster)))?;
    Ok(())
}

pub fn guard_exists(cluster: &str) -> bool {
    run("nft", &["list", "table", "ip", &nft_table(cluster)]).is_ok()
}

pub fn remove_guard(cluster: &str) -> Result<()> {
    if guard_exists(cluster) {
        run("nft", &["delete", "table", "ip", &nft_table(cluster)])?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Bridge and nodes.

/// Create (or complete) the cluster bridge `fkbr<n>` with 10.200.n.1/24.
pub fn setup_bridge(n: u8) -> Result<()> {
    let br = bridge_name(n);
    if !link_exists(&br) {
        run("ip", &["link", "add", &br, "type", "bridge"])?;
    }
    let addr = format!("{}/24", gateway_ip(n));
    let have = run("ip", &["-o", "-4", "addr", "show", "dev", &br])?;
    if !have.contains(&format!(" {addr} ")) {
        run("ip", &["addr", "add", &addr, "dev", &br])?;
    }
    run("ip", &["link", "set", &br, "up"])?;
    Ok(())
}

pub fn remove_bridge(n: u8) -> Result<()> {
    delete_link(&bridge_name(n))
}

/// Delete a host link; one that is (or meanwhile got) gone is fine.
fn delete_link(name: &str) -> Result<()> {
    if !link_exists(name) {
        return Ok(());
    }
    match run("ip", &["link", "del", name]) {
        Err(_) if !link_exists(name) => Ok(()),
        r => r.map(|_| ()),
    }
}

/// What a node's network is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNet {
    pub netns: String,
    pub host_veth: String,
    pub ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub bridge: String,
    /// The cluster's pod CIDR (traffic from it to elsewhere is masqueraded).
    pub cluster_pod_cidr: String,
}

impl NodeNet {
    pub fn new(n: u8, k: u8, node: &str) -> NodeNet {
        NodeNet {
            netns: netns_name(node),
            host_veth: host_veth(n, k),
            ip: node_ip(n, k),
            gateway: gateway_ip(n),
            bridge: bridge_name(n),
            cluster_pod_cidr: cluster_pod_cidr(n),
        }
    }
}

/// Create the node's network namespace, its veth pair (host end on the
/// bridge, `eth0` inside with the node address), the default route via the
/// bridge, `lo` up, and IP forwarding inside (for the pods behind `cni0`).
pub fn setup_node(net: &NodeNet) -> Result<()> {
    let ns = net.netns.as_str();
    if !netns_exists(ns) {
        run("ip", &["netns", "add", ns])?;
    }
    let has_eth0 = run("ip", &["-n", ns, "-o", "link", "show", "eth0"]).is_ok();
    if !has_eth0 {
        if link_exists(&net.host_veth) {
            run("ip", &["link", "del", &net.host_veth])?;
        }
        run(
            "ip",
            &[
                "link",
                "add",
                &net.host_veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns,
            ],
        )?;
    }
    run(
        "ip",
        &["link", "set", &net.host_veth, "master", &net.bridge, "up"],
    )?;
    let addr = format!("{}/24", net.ip);
    let have = run("ip", &["-n", ns, "-o", "-4", "addr", "show", "dev", "eth0"])?;
    if !have.contains(&format!(" {addr} ")) {
        run("ip", &["-n", ns, "addr", "add", &addr, "dev", "eth0"])?;
    }
    run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
    run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
    let gw = net.gateway.to_string();
    run(
        "ip",
        &[
            "-n", ns, "route", "replace", "default", "via", &gw, "dev", "eth0",
        ],
    )?;
    in_netns(ns, || {
        fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .context("enabling net.ipv4.ip_forward in the node namespace")
    })?;
    run_with_input(
        "ip",
        &["netns", "exec", ns, "nft", "-f", "-"],
        Some(&node_masquerade_ruleset(&net.cluster_pod_cidr)),
    )
    .context("installing the node's masquerade rule")?;
    Ok(())
}

/// The node's own nftables table: pod traffic keeps its address inside the
/// cluster (pod to pod across nodes) and is masqueraded to the node's
/// address when it leaves the pod network (the apiserver, the registry).
pub fn node_masquerade_ruleset(cluster_pod_cidr: &str) -> String {
    format!(
        "table ip ferrokube-node\ndelete table ip ferrokube-node\ntable ip ferrokube-node {{\n\tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat + 10; policy accept;\n\t\tip saddr {cluster_pod_cidr} ip daddr != {cluster_pod_cidr} oifname \"eth0\" masquerade\n\t}}\n}}\n"
    )
}

/// Delete the node's namespace (which destroys its veth pair) and a
/// leftover host veth end.
pub fn teardown_node(netns: &str, host_veth: &str) -> Result<()> {
    let mut errors = Vec::new();
    if netns_exists(netns) {
        if let Err(e) = run("ip", &["netns", "delete", netns]) {
            errors.push(format!("{e:#}"));
        }
    }
    if !host_veth.is_empty() {
        // Deleting the namespace destroys the pair, asynchronously.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while link_exists(host_veth) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if let Err(e) = delete_link(host_veth) {
            errors.push(format!("{e:#}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("{}", errors.join("; "))
    }
}

/// Node namespaces of `cluster` that exist (for cleanup without state):
/// `fk-<cluster>-control-plane`, `fk-<cluster>-worker`, `fk-<cluster>-worker<N>`.
pub fn existing_node_netns(cluster: &str) -> Vec<String> {
    let prefix = format!("fk-{cluster}-");
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return vec![];
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| {
            name.strip_prefix(&prefix).is_some_and(|role| {
                role == "control-plane"
                    || role
                        .strip_prefix("worker")
                        .is_some_and(|d| d.chars().all(|c| c.is_ascii_digit()))
            })
        })
        .collect();
    out.sort();
    out
}

/// Host veth ends of cluster index `n` that exist.
pub fn existing_host_veths(n: u8) -> Vec<String> {
    let prefix = format!("fk{n}n");
    let Ok(entries) = fs::read_dir("/sys/class/net") else {
        return vec![];
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| {
            name.strip_prefix(&prefix)
                .is_some_and(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_digit()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addressing() {
        assert_eq!(bridge_name(3), "fkbr3");
        assert_eq!(gateway_ip(3).to_string(), "10.200.3.1");
        assert_eq!(node_ip(3, 0).to_string(), "10.200.3.10");
        assert_eq!(node_ip(63, 2).to_string(), "10.200.63.12");
        assert_eq!(cluster_pod_cidr(63), "10.191.0.0/16");
        assert_eq!(netns_name("x-control-plane"), "fk-x-control-plane");
        assert!(host_veth(MAX_CLUSTERS - 1, MAX_NODES - 1).len() <= 15);
    }

    #[test]
    fn guard_rules() {
        let r = guard_ruleset("a.b", 2, &[6443, 5000, 6443]);
        assert!(r.starts_with(
            "table ip ferrokube-a.b\ndelete table ip ferrokube-a.b\ntable ip ferrokube-a.b {\n"
        ));
        assert!(r.contains(
            "ip saddr { 10.200.2.0/24, 10.130.0.0/16, 10.96.0.0/16 } oifname != \"fkbr2\" drop"
        ));
        assert!(r.contains("tcp dport { 5000, 6443 } iifname != { \"lo\", \"fkbr2\" } drop"));
        assert!(!guard_ruleset("a", 0, &[]).contains("chain input"));
    }

    #[test]
    fn index_claims() {
        let run = tempfile::tempdir().unwrap();
        let run = run.path();
        let home = tempfile::tempdir().unwrap();
        let (da, db, dc) = (
            home.path().join("a"),
            home.path().join("b"),
            home.path().join("c"),
        );
        for d in [&da, &db, &dc] {
            fs::create_dir_all(d).unwrap();
        }
        let _l = Lock::acquire(run).unwrap();
        assert_eq!(claim_index(run, "a", &da, |_| false).unwrap(), 0);
        // Index 1 is taken by something else (e.g. a bridge).
        assert_eq!(claim_index(run, "b", &db, |n| n == 1).unwrap(), 2);
        // Idempotent for the same directory.
        assert_eq!(claim_index(run, "b", &db, |_| false).unwrap(), 2);
        // The same name from another home is refused.
        let err = claim_index(run, "a", &dc, |_| false).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(find_claim(run, &db), Some(2));
        release_index(run, 0, &dc); // not the owner: kept
        assert_eq!(find_claim(run, &da), Some(0));
        release_index(run, 0, &da);
        assert_eq!(find_claim(run, &da), None);
        assert_eq!(claim_index(run, "c", &dc, |_| false).unwrap(), 0);
        fs::remove_dir_all(&db).unwrap();
        assert_eq!(
            stale_claims(run)
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>(),
            [2]
        );
    }
}
