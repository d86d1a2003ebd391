//! Throw-away etcd processes for tests (of this crate and of others).
//!
//! ```no_run
//! # async fn demo() {
//! let etcd = storage::testing::EtcdProcess::start();
//! let storage = storage::EtcdStorage::connect(&etcd.config()).await.unwrap();
//! # }
//! ```
//!
//! The etcd binary is taken from `$FERROKUBE_ETCD_BIN`, else `/usr/bin/etcd`
//! if present, else `etcd` from `$PATH`. Every process listens on free
//! loopback ports, keeps its data in a temporary directory and is killed when
//! dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::EtcdConfig;

/// How long to wait for etcd to become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 3;

/// TLS material for an etcd process serving clients over https.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA that signed the server (and client) certificates.
    pub ca_file: PathBuf,
    /// Server certificate (must be valid for 127.0.0.1).
    pub cert_file: PathBuf,
    /// Server private key.
    pub key_file: PathBuf,
    /// Whether etcd requires client certificates signed by `ca_file`.
    pub client_cert_auth: bool,
}

/// A running etcd member; killed (by pid) on drop.
pub struct EtcdProcess {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    cluster: String,
    token: String,
    tls: Option<TlsFiles>,
    data_dir: tempfile::TempDir,
}

impl std::fmt::Debug for EtcdProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdProcess")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint())
            .field("pid", &self.pid())
            .finish()
    }
}

/// The etcd binary to run.
pub fn etcd_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("FERROKUBE_ETCD_BIN") {
        return PathBuf::from(p);
    }
    let debian = PathBuf::from("/usr/bin/etcd");
    if debian.exists() {
        debian
    } else {
        PathBuf::from("etcd")
    }
}

/// The `major.minor` version of the etcd binary (`None` if it cannot be run).
pub fn etcd_version() -> Option<(u64, u64)> {
    static VERSION: std::sync::OnceLock<Option<(u64, u64)>> = std::sync::OnceLock::new();
    *VERSION.get_or_init(|| {
        let out = Command::new(etcd_binary()).arg("--version").output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.starts_with("etcd Version:"))?;
        let mut parts = line.trim_start_matches("etcd Version:").trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    })
}

/// The flag setting the interval of etcd's periodic watch progress
/// notifications (test members use 1 s so that watches report progress even
/// on etcd versions whose answers to explicit progress requests are unusable).
fn progress_notify_flag() -> &'static str {
    match etcd_version() {
        Some((3, minor)) if minor < 6 => "--experimental-watch-progress-notify-interval",
        _ => "--watch-progress-notify-interval",
    }
}

/// Whether an etcd binary can be found (tests may skip themselves otherwise).
pub fn etcd_available() -> bool {
    Command::new(etcd_binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `n` distinct free loopback ports (all bound at once, then released).
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
}

impl EtcdProcess {
    /// Starts a single-member etcd and waits until it is healthy. Panics on failure.
    pub fn start() -> EtcdProcess {
        Self::try_start().unwrap_or_else(|e| panic!("starting etcd: {e}"))
    }

    /// Starts a single-member etcd and waits until it is healthy.
    pub fn try_start() -> std::io::Result<EtcdProcess> {
        Self::try_start_inner(None)
    }

    /// Starts a single-member etcd serving clients over https with the given
    /// certificates. Panics on failure.
    pub fn start_tls(tls: &TlsFiles) -> EtcdProcess {
        Self::try_start_inner(Some(tls)).unwrap_or_else(|e| panic!("starting etcd with TLS: {e}"))
    }

    fn try_start_inner(tls: Option<&TlsFiles>) -> std::io::Result<EtcdProcess> {
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            let ports = free_ports(2)?;
            let member = Member {
                name: "x".into(),
                client_port: ports[0],
                peer_port: ports[1],
            };
            let cluster = format!("x=http://127.0.0.1:{}", member.peer_port);
            let token = format!("t-{}-{}", std::process::id(), member.client_port);
            match Self::spawn(&member, &cluster, &token, tls) {
                Ok(mut p) => match p.wait_healthy(START_TIMEOUT) {
                    Ok(()) => return Ok(p),
                    Err(e) => last_err = Some(e),
                },
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| std::io::Error::other("etcd did not start")))
    }

    /// Starts an etcd cluster of `n` members and waits until all are healthy.
    /// Panics on failure.
    pub fn start_cluster(n: usize) -> Vec<EtcdProcess> {
        Self::try_start_cluster(n).unwrap_or_else(|e| panic!("starting etcd cluster: {e}"))
    }

    /// Starts an etcd cluster of `n` members and waits until all are healthy.
    pub fn try_start_cluster(n: usize) -> std::io::Result<Vec<EtcdProcess>> {
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            let ports = free_ports(2 * n)?;
            let members: Vec<Member> = (0..n)
                .map(|i| Member {
                    name: format!("m{i}"),
                    client_port: ports[2 * i],
                    peer_port: ports[2 * i + 1],
                })
                .collect();
            let cluster = members
                .iter()
                .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
                .collect::<Vec<_>>()
                .join(",");
            let token = format!("t-{}-{}", std::process::id(), members[0].client_port);
            let mut procs = Vec::new();
            let mut failed = None;
            for m in &members {
                match Self::spawn(m, &cluster, &token, None) {
                    Ok(p) => procs.push(p),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if failed.is_none() {
                for p in &mut procs {
                    if let Err(e) = p.wait_healthy(START_TIMEOUT) {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                None => return Ok(procs),
                Some(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| std::io::Error::other("etcd cluster did not start")))
    }

    fn spawn(
        m: &Member,
        cluster: &str,
        token: &str,
        tls: Option<&TlsFiles>,
    ) -> std::io::Result<EtcdProcess> {
        let data_dir = tempfile::Builder::new()
            .prefix("ferrokube-etcd-")
            .tempdir()?;
        let mut p = EtcdProcess {
            name: m.name.clone(),
            client_port: m.client_port,
            peer_port: m.peer_port,
            child: None,
            cluster: cluster.to_string(),
            token: token.to_string(),
            tls: tls.cloned(),
            data_dir,
        };
        p.launch()?;
        Ok(p)
    }

    fn launch(&mut self) -> std::io::Result<()> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.path().join("etcd.log"))?;
        let mut cmd = Command::new(etcd_binary());
        cmd.arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(self.data_dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(&self.cluster)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--heartbeat-interval")
            .arg("50")
            .arg("--election-timeout")
            .arg("500")
            .arg(progress_notify_flag())
            .arg("1s")
            .arg("--log-level")
            .arg("warn")
            .arg("--logger")
            .arg("zap")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(tls) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&tls.cert_file)
                .arg("--key-file")
                .arg(&tls.key_file)
                .arg("--trusted-ca-file")
                .arg(&tls.ca_file);
            if tls.client_cert_auth {
                cmd.arg("--client-cert-auth");
            }
        }
        self.child = Some(cmd.spawn()?);
        Ok(())
    }

    /// Restarts a killed (or running) member on the same ports with the same
    /// data, and waits until it is healthy (for a cluster member: until it
    /// rejoined a cluster with quorum).
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        self.launch()?;
        self.wait_healthy(START_TIMEOUT)
    }

    /// Waits until the member answers its `/health` endpoint (http members) or
    /// accepts TCP connections (https members), failing early if it exited.
    fn wait_healthy(&mut self, timeout: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Err(std::io::Error::other(format!(
                        "etcd exited with {status}; log:\n{}",
                        self.log()
                    )));
                }
            }
            let healthy = if self.tls.is_some() {
                self.tcp_ready()
            } else {
                self.http_health()
            };
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "etcd not healthy after {timeout:?}; log:\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    fn tcp_ready(&self) -> bool {
        TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok()
    }

    fn http_health(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = format!(
            "GET /health HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.client_port
        );
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains("\"health\":\"true\"")
    }

    /// The etcd log so far (for diagnostics).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// The member name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The peer port.
    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    /// The process id (`None` once killed).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// A storage configuration for this member (prefix `/registry`).
    pub fn config(&self) -> EtcdConfig {
        EtcdConfig {
            endpoints: vec![self.endpoint()],
            ..EtcdConfig::default()
        }
    }

    /// A storage configuration for all members of a cluster (prefix `/registry`).
    pub fn cluster_config(members: &[EtcdProcess]) -> EtcdConfig {
        EtcdConfig {
            endpoints: members.iter().map(|m| m.endpoint()).collect(),
            ..EtcdConfig::default()
        }
    }

    /// Kills the process (SIGKILL) and waits for it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
