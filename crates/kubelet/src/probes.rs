//! Container probes (liveness, readiness, startup) with upstream semantics:
//! one task per (container, probe kind); exec through the runtime, httpGet,
//! tcpSocket and grpc from the kubelet (which shares the pods' network).
//!
//! - Probing starts `initialDelaySeconds` after the container started and
//!   repeats every `periodSeconds` (default 10), each attempt bounded by
//!   `timeoutSeconds` (default 1).
//! - A result only takes effect after `successThreshold` (1) consecutive
//!   successes or `failureThreshold` (3) consecutive failures.
//! - Readiness is false until the first success; liveness and readiness
//!   wait for the startup probe to succeed; once a startup probe succeeded
//!   it stops; a liveness or startup failure puts the container on hold
//!   (the kubelet restarts it, with a new container id).
//! - Every failed attempt yields an `Unhealthy` event
//!   (`Liveness probe failed: HTTP probe failed with statuscode: 500`).

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::debug;

/// The User-Agent of HTTP and gRPC probes.
pub const USER_AGENT: &str = "kube-probe/1.33";
const MAX_BODY: usize = 10 * 1024;
const MAX_EVENTS: usize = 1024;

/// Runs a command in a container (CRI ExecSync): exit code and combined
/// output. Return `Err(ExecTimeout.into())` when the runtime reports the
/// deadline was exceeded.
#[async_trait::async_trait]
pub trait ExecRunner: Send + Sync {
    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> anyhow::Result<(i32, Vec<u8>)>;
}

/// The error an [`ExecRunner`] returns when the command ran out of time.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("command timed out")]
pub struct ExecTimeout;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    /// `Liveness`, `Readiness`, `Startup` (as in event messages).
    pub fn as_str(&self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// An event for the kubelet to record on the pod (type Warning).
#[derive(Debug, Clone)]
pub struct ProbeEvent {
    pub pod_uid: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub container_name: String,
    pub container_id: String,
    pub kind: ProbeKind,
    /// `Unhealthy` or `ProbeWarning`.
    pub reason: &'static str,
    /// `Liveness probe failed: ...`,
    /// `Readiness probe errored and resulted in unknown state: ...`,
    /// `Readiness probe warning: ...`.
    pub message: String,
}

/// One attempt's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Success(String),
    /// Counts as success; the message is reported as a ProbeWarning event.
    Warning(String),
    Failure(String),
    /// The probe could not be run (bad port, runtime error): state unchanged.
    Unknown(String),
}

struct ContainerState {
    pod_uid: String,
    has_readiness: bool,
    ready: bool,
    started: bool,
    liveness_failed: Option<String>,
    startup_failed: Option<String>,
    started_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

struct Inner {
    exec: Arc<dyn ExecRunner>,
    containers: Mutex<HashMap<String, ContainerState>>,
    changes: watch::Sender<u64>,
    events: Mutex<VecDeque<ProbeEvent>>,
}

impl Inner {
    fn bump(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn push_event(&self, ev: ProbeEvent) {
        let mut q = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= MAX_EVENTS {
            q.pop_front();
        }
        q.push_back(ev);
    }

    /// Applies a state change to a container; bumps the change counter if
    /// anything changed.
    fn update(&self, id: &str, f: impl FnOnce(&mut ContainerState) -> bool) {
        let changed = {
            let mut c = self.containers.lock().unwrap_or_else(|e| e.into_inner());
            match c.get_mut(id) {
                Some(st) => f(st),
                None => false,
            }
        };
        if changed {
            self.bump();
        }
    }
}

/// Runs and tracks the probes of the node's containers.
pub struct ProbeManager {
    inner: Arc<Inner>,
}

impl Drop for ProbeManager {
    fn drop(&mut self) {
        let mut c = self
            .inner
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (_, st) in c.drain() {
            for t in st.tasks {
                t.abort();
            }
        }
    }
}

/// Static facts a probe worker needs.
#[derive(Clone)]
pub(crate) struct Target {
    pod_uid: String,
    pod_namespace: String,
    pod_name: String,
    container_name: String,
    container_id: String,
    pod_ip: Option<String>,
    container: Container,
}

impl ProbeManager {
    pub fn new(exec: Arc<dyn ExecRunner>) -> Self {
        let (tx, _) = watch::channel(0u64);
        ProbeManager {
            inner: Arc::new(Inner {
                exec,
                containers: Mutex::new(HashMap::new()),
                changes: tx,
                events: Mutex::new(VecDeque::new()),
            }),
        }
    }

    /// Starts probing a container that just started. Idempotent per
    /// container id. Must be called inside a tokio runtime.
    pub fn add_container(
        &self,
        pod: &Pod,
        container: &Container,
        container_id: &str,
        pod_ip: Option<String>,
    ) {
        self.add_container_started_at(pod, container, container_id, pod_ip, SystemTime::now());
    }

    /// As [`add_container`](Self::add_container), with the container's real
    /// start time (for containers adopted after a kubelet restart).
    pub fn add_container_started_at(
        &self,
        pod: &Pod,
        container: &Container,
        container_id: &str,
        pod_ip: Option<String>,
        started_at: SystemTime,
    ) {
        let mut all = self
            .inner
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if all.contains_key(container_id) {
            return;
        }
        let has_startup = container.startup_probe.is_some();
        let (started_tx, started_rx) = watch::channel(!has_startup);
        let target = Target {
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            pod_namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            pod_name: pod.metadata.name.clone().unwrap_or_default(),
            container_name: container.name.clone(),
            container_id: container_id.to_string(),
            pod_ip: pod_ip.filter(|ip| !ip.is_empty()),
            container: container.clone(),
        };
        let mut tasks = Vec::new();
        for (kind, probe) in [
            (ProbeKind::Startup, &container.startup_probe),
            (ProbeKind::Liveness, &container.liveness_probe),
            (ProbeKind::Readiness, &container.readiness_probe),
        ] {
            if let Some(probe) = probe {
                let worker = Worker {
                    inner: self.inner.clone(),
                    kind,
                    probe: probe.clone(),
                    target: target.clone(),
                    started_at,
                    started_rx: started_rx.clone(),
                };
                tasks.push(tokio::spawn(worker.run()));
            }
        }
        all.insert(
            container_id.to_string(),
            ContainerState {
                pod_uid: target.pod_uid.clone(),
                has_readiness: container.readiness_probe.is_some(),
                ready: false,
                started: !has_startup,
                liveness_failed: None,
                startup_failed: None,
                started_tx,
                tasks,
            },
        );
    }

    /// Stops probing a container and forgets its results.
    pub fn remove_container(&self, container_id: &str) {
        let st = self
            .inner
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(container_id);
        if let Some(st) = st {
            for t in st.tasks {
                t.abort();
            }
        }
    }

    /// Stops probing every container of a pod.
    pub fn remove_pod(&self, pod_uid: &str) {
        let mut all = self
            .inner
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let ids: Vec<String> = all
            .iter()
            .filter(|(_, s)| s.pod_uid == pod_uid)
            .map(|(k, _)| k.clone())
            .collect();
        for id in ids {
            if let Some(st) = all.remove(&id) {
                for t in st.tasks {
                    t.abort();
                }
            }
        }
    }

    /// Whether the container is ready: its readiness probe succeeded (and it
    /// has started), or it has no readiness probe and has started.
    pub fn readiness(&self, container_id: &str) -> bool {
        let all = self
            .inner
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match all.get(container_id) {
            Some(st) if st.has_readiness => st.started && st.ready,
            Some(st) => st.started,
            None => true,
        }
    }

    /// Whether the container's startup probe succeeded (true without one).
    pub fn started(&self, container_id: &str) -> bool {
        let all = self
            .inner
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.get(container_id).map(|s| s.started).unwrap_or(true)
    }

    /// The last probe output when the liveness probe failed
    /// `failureThreshold` times: the container must be restarted.
    pub fn liveness_failed(&self, container_id: &str) -> Option<String> {
        let all = self
            .inner
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.get(container_id)
            .and_then(|s| s.liveness_failed.clone())
    }

    /// As [`liveness_failed`](Self::liveness_failed) for the startup probe.
    pub fn startup_failed(&self, container_id: &str) -> Option<String> {
        let all = self
            .inner
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.get(container_id).and_then(|s| s.startup_failed.clone())
    }

    /// A counter bumped whenever a readiness/started/liveness result changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Events since the last call, oldest first.
    pub fn take_events(&self) -> Vec<ProbeEvent> {
        let mut q = self.inner.events.lock().unwrap_or_else(|e| e.into_inner());
        q.drain(..).collect()
    }
}

/// Consecutive-result counting against success/failure thresholds.
#[derive(Debug, Default)]
struct Tracker {
    last: Option<bool>,
    run: u32,
}

impl Tracker {
    /// Records one attempt; returns the result to publish once its run
    /// reaches the threshold.
    fn observe(
        &mut self,
        success: bool,
        success_threshold: u32,
        failure_threshold: u32,
    ) -> Option<bool> {
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            success_threshold
        } else {
            failure_threshold
        };
        (self.run >= threshold).then_some(success)
    }
}

fn positive(v: Option<i32>, default: i32) -> i32 {
    match v {
        Some(v) if v > 0 => v,
        _ => default,
    }
}

struct Worker {
    inner: Arc<Inner>,
    kind: ProbeKind,
    probe: Probe,
    target: Target,
    started_at: SystemTime,
    started_rx: watch::Receiver<bool>,
}

impl Worker {
    async fn run(mut self) {
        let period = Duration::from_secs(positive(self.probe.period_seconds, 10) as u64);
        let timeout = Duration::from_secs(positive(self.probe.timeout_seconds, 1) as u64);
        let success_threshold = positive(self.probe.success_threshold, 1) as u32;
        let failure_threshold = positive(self.probe.failure_threshold, 3) as u32;
        let initial_delay =
            Duration::from_secs(self.probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);

        // The container's start on the runtime clock.
        let now = tokio::time::Instant::now();
        let age = SystemTime::now()
            .duration_since(self.started_at)
            .unwrap_or_default();
        let start = now.checked_sub(age).unwrap_or(now);

        if self.kind != ProbeKind::Startup && self.started_rx.wait_for(|s| *s).await.is_err() {
            return;
        }
        tokio::time::sleep_until(start + initial_delay).await;

        let mut tracker = Tracker::default();
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let result = run_probe(&self.inner.exec, &self.probe, &self.target, timeout).await;
            debug!(container = %self.target.container_name, id = %self.target.container_id,
                kind = self.kind.as_str(), ?result, "probe result");
            let success = match &result {
                ProbeResult::Success(_) => true,
                ProbeResult::Warning(msg) => {
                    self.event(
                        "ProbeWarning",
                        format!("{} probe warning: {msg}", self.kind.as_str()),
                    );
                    true
                }
                ProbeResult::Failure(msg) => {
                    self.event(
                        "Unhealthy",
                        format!("{} probe failed: {msg}", self.kind.as_str()),
                    );
                    false
                }
                ProbeResult::Unknown(msg) => {
                    self.event(
                        "Unhealthy",
                        format!(
                            "{} probe errored and resulted in unknown state: {msg}",
                            self.kind.as_str()
                        ),
                    );
                    continue;
                }
            };
            let Some(outcome) = tracker.observe(success, success_threshold, failure_threshold)
            else {
                continue;
            };
            let message = match &result {
                ProbeResult::Failure(m) => m.clone(),
                _ => String::new(),
            };
            let id = self.target.container_id.clone();
            match (self.kind, outcome) {
                (ProbeKind::Readiness, ready) => self.inner.update(&id, |st| {
                    let changed = st.ready != ready;
                    st.ready = ready;
                    changed
                }),
                (ProbeKind::Liveness, true) => {}
                (ProbeKind::Liveness, false) => {
                    self.inner.update(&id, |st| {
                        st.liveness_failed = Some(message);
                        true
                    });
                    return; // on hold until the container is replaced
                }
                (ProbeKind::Startup, true) => {
                    self.inner.update(&id, |st| {
                        st.started = true;
                        st.started_tx.send_replace(true);
                        true
                    });
                    return; // startup probing ends once started
                }
                (ProbeKind::Startup, false) => {
                    self.inner.update(&id, |st| {
                        st.startup_failed = Some(message);
                        true
                    });
                    return;
                }
            }
        }
    }

    fn event(&self, reason: &'static str, message: String) {
        self.inner.push_event(ProbeEvent {
            pod_uid: self.target.pod_uid.clone(),
            pod_namespace: self.target.pod_namespace.clone(),
            pod_name: self.target.pod_name.clone(),
            container_name: self.target.container_name.clone(),
            container_id: self.target.container_id.clone(),
            kind: self.kind,
            reason,
            message,
        });
    }
}

/// Resolves a probe port: a container port name, else a number.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let n = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => match container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(s.as_str()))
        {
            Some(p) => p.container_port,
            None => s
                .parse::<i32>()
                .map_err(|_| format!("strconv.Atoi: parsing {s:?}: invalid syntax"))?,
        },
    };
    if n > 0 && n < 65536 {
        Ok(n as u16)
    } else {
        Err(format!("invalid port number: {n}"))
    }
}

fn host_for(explicit: Option<&str>, target: &Target) -> Result<String, String> {
    match explicit.filter(|h| !h.is_empty()) {
        Some(h) => Ok(h.to_string()),
        None => target
            .pod_ip
            .clone()
            .ok_or_else(|| "pod IP is not known".to_string()),
    }
}

/// `host:port`, bracketing IPv6 literals.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Go-style text of a dial error.
fn dial_error(addr: &str, e: &std::io::Error) -> String {
    let mut msg = e.to_string();
    if let Some(i) = msg.find(" (os error") {
        msg.truncate(i);
    }
    let msg = match msg.chars().next() {
        Some(c) => c.to_lowercase().collect::<String>() + &msg[c.len_utf8()..],
        None => msg,
    };
    if e.raw_os_error().is_some() {
        format!("dial tcp {addr}: connect: {msg}")
    } else {
        format!("dial tcp {addr}: {msg}")
    }
}

async fn dial(addr: &str, deadline: tokio::time::Instant) -> Result<TcpStream, String> {
    let connect = async {
        match addr.parse::<SocketAddr>() {
            Ok(sa) => TcpStream::connect(sa).await,
            Err(_) => TcpStream::connect(addr).await,
        }
    };
    match tokio::time::timeout_at(deadline, connect).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(dial_error(addr, &e)),
        Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// Runs one probe attempt.
pub(crate) async fn run_probe(
    exec: &Arc<dyn ExecRunner>,
    probe: &Probe,
    target: &Target,
    timeout: Duration,
) -> ProbeResult {
    if let Some(e) = &probe.exec {
        let static_env: Vec<(String, String)> = target
            .container
            .env
            .iter()
            .flatten()
            .filter(|v| v.value_from.is_none())
            .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default()))
            .collect();
        let cmd: Vec<String> = e
            .command
            .iter()
            .flatten()
            .map(|c| crate::env::expand(c, &static_env))
            .collect();
        let joined = cmd.join(" ");
        let call = exec.exec_sync(&target.container_id, cmd, timeout);
        return match tokio::time::timeout(timeout + Duration::from_secs(2), call).await {
            Err(_) => ProbeResult::Failure(format!("command {joined:?} timed out")),
            Ok(Err(err)) if err.downcast_ref::<ExecTimeout>().is_some() => {
                ProbeResult::Failure(format!("command {joined:?} timed out"))
            }
            Ok(Err(err)) => ProbeResult::Unknown(err.to_string()),
            Ok(Ok((0, out))) => ProbeResult::Success(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok((_, out))) => ProbeResult::Failure(String::from_utf8_lossy(&out).into_owned()),
        };
    }
    if let Some(h) = &probe.http_get {
        let port = match resolve_port(&h.port, &target.container) {
            Ok(p) => p,
            Err(e) => return ProbeResult::Unknown(e),
        };
        let host = match host_for(h.host.as_deref(), target) {
            Ok(h) => h,
            Err(e) => return ProbeResult::Unknown(e),
        };
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return ProbeResult::Unknown(format!("unsupported scheme {scheme:?}"));
        }
        let mut path = h.path.clone().unwrap_or_default();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let url = format!("{scheme}://{}{path}", join_host_port(&host, port));
        let headers: Vec<(String, String)> = h
            .http_headers
            .iter()
            .flatten()
            .map(|hd| (hd.name.clone(), hd.value.clone()))
            .collect();
        return http_probe(&url, &headers, timeout).await;
    }
    if let Some(t) = &probe.tcp_socket {
        let port = match resolve_port(&t.port, &target.container) {
            Ok(p) => p,
            Err(e) => return ProbeResult::Unknown(e),
        };
        let host = match host_for(t.host.as_deref(), target) {
            Ok(h) => h,
            Err(e) => return ProbeResult::Unknown(e),
        };
        let addr = join_host_port(&host, port);
        return match dial(&addr, tokio::time::Instant::now() + timeout).await {
            Ok(_) => ProbeResult::Success(String::new()),
            Err(e) => ProbeResult::Failure(e),
        };
    }
    if let Some(g) = &probe.grpc {
        if g.port <= 0 || g.port >= 65536 {
            return ProbeResult::Unknown(format!("invalid port number: {}", g.port));
        }
        let host = match host_for(None, target) {
            Ok(h) => h,
            Err(e) => return ProbeResult::Unknown(e),
        };
        let addr = join_host_port(&host, g.port as u16);
        return grpc_probe(&addr, g.service.as_deref().unwrap_or(""), timeout).await;
    }
    ProbeResult::Unknown("missing probe handler".into())
}

// ---------------------------------------------------------------- HTTP

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connector that accepts any server certificate (probes do not verify,
/// as upstream).
fn insecure_tls() -> Result<tokio_rustls::TlsConnector, String> {
    let config = component_base::tls::insecure_client_builder()
        .map_err(|e| e.to_string())?
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// One GET; returns the status and up to 10 KiB of body, or an error text
/// without the `Get "url": ` prefix.
async fn http_get_once(
    url: &url::Url,
    headers: &[(String, String)],
    deadline: tokio::time::Instant,
) -> Result<(u16, Option<String>, String), String> {
    let host = url
        .host_str()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = join_host_port(&host, port);
    let tcp = dial(&addr, deadline).await?;
    let io: Box<dyn Io> = if url.scheme() == "https" {
        let connector = insecure_tls()?;
        let name =
            rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
        match tokio::time::timeout_at(deadline, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => Box::new(s),
            Ok(Err(e)) => return Err(format!("remote error: {e}")),
            Err(_) => return Err("net/http: TLS handshake timeout".into()),
        }
    } else {
        Box::new(tcp)
    };
    let exchange = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
        let conn_task = tokio::spawn(conn);
        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let mut req = hyper::Request::get(target);
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if !has("host") {
            req = req.header(hyper::header::HOST, url.authority());
        }
        if !has("user-agent") {
            req = req.header(hyper::header::USER_AGENT, USER_AGENT);
        }
        if !has("accept") {
            req = req.header(hyper::header::ACCEPT, "*/*");
        }
        req = req.header(hyper::header::CONNECTION, "close");
        for (k, v) in headers {
            // An empty User-Agent value removes the header, as in Go.
            if k.eq_ignore_ascii_case("user-agent") && v.is_empty() {
                continue;
            }
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        while buf.len() < MAX_BODY {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(d) = frame.data_ref() {
                        buf.extend_from_slice(d);
                    }
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => break,
            }
        }
        buf.truncate(MAX_BODY);
        conn_task.abort();
        Ok((status, location, String::from_utf8_lossy(&buf).into_owned()))
    };
    match tokio::time::timeout_at(deadline, exchange).await {
        Ok(r) => r,
        Err(_) => {
            Err("context deadline exceeded (Client.Timeout exceeded while awaiting headers)".into())
        }
    }
}

/// An HTTP(S) GET probe: 200..=399 succeeds; redirects to the same host are
/// followed (up to 10), others end the probe with a warning.
pub async fn http_probe(url: &str, headers: &[(String, String)], timeout: Duration) -> ProbeResult {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut current = match url::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return ProbeResult::Unknown(format!("parse {url:?}: {e}")),
    };
    let original_host = current.host_str().unwrap_or("").to_string();
    let mut redirects = 0;
    loop {
        let (status, location, body) = match http_get_once(&current, headers, deadline).await {
            Ok(r) => r,
            Err(e) => {
                let shown = if redirects == 0 {
                    url.to_string()
                } else {
                    current.to_string()
                };
                return ProbeResult::Failure(format!("Get {shown:?}: {e}"));
            }
        };
        if (300..400).contains(&status) {
            if let Some(next) = location.and_then(|l| current.join(&l).ok()) {
                if next.host_str().unwrap_or("") == original_host
                    && (next.scheme() == "http" || next.scheme() == "https")
                {
                    redirects += 1;
                    if redirects > 10 {
                        return ProbeResult::Failure(format!(
                            "Get {:?}: stopped after 10 redirects",
                            next.as_str()
                        ));
                    }
                    current = next;
                    continue;
                }
            }
            return ProbeResult::Warning(format!(
                "Probe terminated redirects, Response body: {body}"
            ));
        }
        if (200..400).contains(&status) {
            return ProbeResult::Success(body);
        }
        return ProbeResult::Failure(format!("HTTP probe failed with statuscode: {status}"));
    }
}

// ---------------------------------------------------------------- gRPC

fn grpc_code_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}

/// `HealthCheckRequest{service}` as a length-prefixed gRPC message.
fn encode_health_request(service: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        let mut len = service.len();
        loop {
            let b = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                msg.push(b);
                break;
            }
            msg.push(b | 0x80);
        }
        msg.extend_from_slice(service.as_bytes());
    }
    let mut out = vec![0u8];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(&msg);
    out
}

fn read_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The `status` of a length-prefixed `HealthCheckResponse`.
fn decode_health_response(body: &[u8]) -> Option<u64> {
    if body.len() < 5 || body[0] != 0 {
        return None;
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let msg = body.get(5..5 + len)?;
    let mut pos = 0;
    let mut status = 0;
    while pos < msg.len() {
        let key = read_varint(msg, &mut pos)?;
        match key & 7 {
            0 => {
                let v = read_varint(msg, &mut pos)?;
                if key >> 3 == 1 {
                    status = v;
                }
            }
            1 => pos += 8,
            2 => {
                let l = read_varint(msg, &mut pos)? as usize;
                pos += l;
            }
            5 => pos += 4,
            _ => return None,
        }
    }
    Some(status)
}

fn serving_status_name(s: u64) -> &'static str {
    match s {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// A `grpc.health.v1.Health/Check` probe over plaintext HTTP/2.
pub async fn grpc_probe(addr: &str, service: &str, timeout: Duration) -> ProbeResult {
    let deadline = tokio::time::Instant::now() + timeout;
    let secs = timeout.as_secs();
    let connect = async {
        let tcp = dial(addr, deadline).await?;
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())
    };
    let connect_timeout = || {
        ProbeResult::Failure(format!(
            "timeout: failed to connect service {addr:?} within {secs}s: context deadline exceeded"
        ))
    };
    let (mut sender, conn) = match tokio::time::timeout_at(deadline, connect).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) if e.ends_with("i/o timeout") => return connect_timeout(),
        Ok(Err(e)) => {
            return ProbeResult::Failure(format!(
                "error: failed to connect service at {addr:?}: {e}"
            ))
        }
        Err(_) => return connect_timeout(),
    };
    let conn_task = tokio::spawn(conn);
    let call = async {
        let req = hyper::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
            .header(hyper::header::CONTENT_TYPE, "application/grpc")
            .header(hyper::header::TE, "trailers")
            .header(hyper::header::USER_AGENT, USER_AGENT)
            .header("grpc-timeout", format!("{}m", timeout.as_millis().max(1)))
            .body(Full::new(Bytes::from(encode_health_request(service))))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let collected = body.collect().await.map_err(|e| e.to_string())?;
        let trailers = collected.trailers().cloned();
        let bytes = collected.to_bytes();
        let find = |name: &str| -> Option<String> {
            trailers
                .as_ref()
                .and_then(|t| t.get(name))
                .or_else(|| parts.headers.get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let code: u32 = match find("grpc-status") {
            Some(s) => s.trim().parse().unwrap_or(2),
            None if parts.status != hyper::StatusCode::OK => 14,
            None => 0,
        };
        let message = find("grpc-message")
            .map(|m| {
                percent_encoding::percent_decode_str(&m)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        Ok::<_, String>((code, message, bytes))
    };
    let outcome = tokio::time::timeout_at(deadline, call).await;
    conn_task.abort();
    match outcome {
        Err(_) => ProbeResult::Failure(format!("timeout: health rpc did not complete within {secs}s")),
        Ok(Err(e)) => ProbeResult::Failure(format!("error: health rpc probe failed: {e}")),
        Ok(Ok((12, msg, _))) => ProbeResult::Failure(format!(
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {msg}"
        )),
        Ok(Ok((4, _, _))) => {
            ProbeResult::Failure(format!("timeout: health rpc did not complete within {secs}s"))
        }
        Ok(Ok((code, msg, _))) if code != 0 => ProbeResult::Failure(format!(
            "error: health rpc probe failed: rpc error: code = {} desc = {msg}",
            grpc_code_name(code)
        )),
        Ok(Ok((_, _, body))) => match decode_health_response(&body) {
            Some(1) => ProbeResult::Success("service is serving".into()),
            Some(s) => ProbeResult::Failure(format!(
                "service unhealthy (responded with {:?})",
                serving_status_name(s)
            )),
            None => ProbeResult::Failure(
                "error: health rpc probe failed: rpc error: code = Internal desc = grpc: failed to unmarshal the received message".into(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerPort, ExecAction, GRPCAction, HTTPGetAction, TCPSocketAction,
    };
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Replays scripted exit codes per command name ("live", "ready", "start").
    struct FakeExec {
        script: Mutex<HashMap<String, VecDeque<i32>>>,
        calls: AtomicUsize,
    }

    impl FakeExec {
        fn new(script: &[(&str, &[i32])]) -> Arc<Self> {
            Arc::new(FakeExec {
                script: Mutex::new(
                    script
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.iter().copied().collect()))
                        .collect(),
                ),
                calls: AtomicUsize::new(0),
            })
        }
    }

    #[async_trait::async_trait]
    impl ExecRunner for FakeExec {
        async fn exec_sync(
            &self,
            _id: &str,
            cmd: Vec<String>,
            _timeout: Duration,
        ) -> anyhow::Result<(i32, Vec<u8>)> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if cmd[0] == "hang" {
                return Err(ExecTimeout.into());
            }
            let mut s = self.script.lock().unwrap();
            let q = s.entry(cmd[0].clone()).or_default();
            let code = if q.len() > 1 {
                q.pop_front().unwrap()
            } else {
                q.front().copied().unwrap_or(0)
            };
            Ok((code, format!("{} exited {code}", cmd[0]).into_bytes()))
        }
    }

    fn exec_probe(cmd: &str, failure: i32, success: i32) -> Probe {
        Probe {
            exec: Some(ExecAction {
                command: Some(vec![cmd.into()]),
            }),
            period_seconds: Some(1),
            failure_threshold: Some(failure),
            success_threshold: Some(success),
            ..Default::default()
        }
    }

    fn pod() -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some("p".into()),
                namespace: Some("default".into()),
                uid: Some("uid-1".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Sleeps until `secs` after `t0` (virtual time).
    async fn at(t0: tokio::time::Instant, secs: f64) {
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(secs)).await;
    }

    #[test]
    fn tracker_thresholds() {
        let mut t = Tracker::default();
        assert_eq!(t.observe(false, 1, 3), None);
        assert_eq!(t.observe(false, 1, 3), None);
        assert_eq!(t.observe(true, 2, 3), None);
        assert_eq!(t.observe(true, 2, 3), Some(true));
        assert_eq!(t.observe(false, 2, 3), None);
        assert_eq!(t.observe(false, 2, 3), None);
        assert_eq!(t.observe(false, 2, 3), Some(false));
        assert_eq!(t.observe(false, 2, 3), Some(false));
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_and_liveness_thresholds() {
        // Attempts at t=0,1,2,...  readiness: fail, ok, ok, fail...; liveness: ok, ok, fail...
        let exec = FakeExec::new(&[("ready", &[1, 0, 0, 1]), ("live", &[0, 0, 1])]);
        let pm = ProbeManager::new(exec.clone());
        let mut changes = pm.changes();
        let c = Container {
            name: "c".into(),
            readiness_probe: Some(exec_probe("ready", 3, 2)),
            liveness_probe: Some(exec_probe("live", 3, 1)),
            ..Default::default()
        };
        let t0 = tokio::time::Instant::now();
        pm.add_container(&pod(), &c, "cid", Some("10.0.0.1".into()));
        pm.add_container(&pod(), &c, "cid", Some("10.0.0.1".into())); // idempotent
        assert!(!pm.readiness("cid"));
        assert!(pm.started("cid"));
        at(t0, 1.5).await;
        assert!(
            !pm.readiness("cid"),
            "one success is below successThreshold 2"
        );
        assert!(!changes.has_changed().unwrap());
        at(t0, 2.5).await;
        assert!(pm.readiness("cid"));
        assert!(changes.has_changed().unwrap());
        changes.borrow_and_update();
        at(t0, 3.5).await; // readiness failed once (t3), liveness twice (t2, t3)
        assert!(pm.readiness("cid"));
        assert_eq!(pm.liveness_failed("cid"), None);
        at(t0, 4.5).await; // liveness: third failure at t4
        assert_eq!(pm.liveness_failed("cid").as_deref(), Some("live exited 1"));
        assert!(pm.readiness("cid"));
        at(t0, 5.5).await; // readiness: third failure at t5
        assert!(!pm.readiness("cid"));
        assert!(changes.has_changed().unwrap());
        let events = pm.take_events();
        assert!(events.iter().any(|e| e.reason == "Unhealthy"
            && e.message == "Liveness probe failed: live exited 1"
            && e.kind == ProbeKind::Liveness
            && e.pod_name == "p"
            && e.container_id == "cid"));
        assert!(events
            .iter()
            .any(|e| e.message == "Readiness probe failed: ready exited 1"));
        assert!(pm.take_events().is_empty());
        // The liveness worker is on hold: only readiness keeps probing.
        let before = exec.calls.load(Ordering::SeqCst);
        at(t0, 8.5).await;
        assert_eq!(exec.calls.load(Ordering::SeqCst) - before, 3);
        pm.remove_pod("uid-1");
        assert!(pm.readiness("cid"), "unknown containers count as ready");
        assert_eq!(pm.liveness_failed("cid"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn startup_gates_other_probes_and_initial_delay() {
        let exec = FakeExec::new(&[("start", &[1, 1, 0]), ("live", &[0]), ("ready", &[0])]);
        let pm = ProbeManager::new(exec.clone());
        let mut ready = exec_probe("ready", 3, 1);
        ready.initial_delay_seconds = Some(5);
        let c = Container {
            name: "c".into(),
            startup_probe: Some(exec_probe("start", 5, 1)),
            liveness_probe: Some(exec_probe("live", 3, 1)),
            readiness_probe: Some(ready),
            ..Default::default()
        };
        let t0 = tokio::time::Instant::now();
        pm.add_container(&pod(), &c, "cid", None);
        assert!(!pm.started("cid"));
        at(t0, 1.5).await;
        assert!(!pm.started("cid"));
        assert!(!pm.readiness("cid"));
        assert_eq!(
            exec.calls.load(Ordering::SeqCst),
            2,
            "only the startup probe runs"
        );
        at(t0, 2.5).await; // startup succeeded at t2; liveness starts probing
        assert!(pm.started("cid"));
        assert_eq!(exec.calls.load(Ordering::SeqCst), 4);
        assert!(
            !pm.readiness("cid"),
            "readiness waits for its initial delay"
        );
        at(t0, 4.5).await;
        assert!(!pm.readiness("cid"));
        at(t0, 5.5).await; // first readiness attempt at t5
        assert!(pm.readiness("cid"));
        assert_eq!(pm.startup_failed("cid"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn startup_failure() {
        let exec = FakeExec::new(&[("start", &[1])]);
        let pm = ProbeManager::new(exec);
        let c = Container {
            name: "c".into(),
            startup_probe: Some(exec_probe("start", 2, 1)),
            ..Default::default()
        };
        let t0 = tokio::time::Instant::now();
        pm.add_container(&pod(), &c, "cid", None);
        at(t0, 1.5).await;
        assert_eq!(pm.startup_failed("cid").as_deref(), Some("start exited 1"));
        assert!(!pm.started("cid"));
        assert!(!pm.readiness("cid"));
    }

    #[tokio::test(start_paused = true)]
    async fn adopted_container_initial_delay_counts_from_start() {
        let exec = FakeExec::new(&[("ready", &[0])]);
        let pm = ProbeManager::new(exec.clone());
        let mut ready = exec_probe("ready", 3, 1);
        ready.initial_delay_seconds = Some(30);
        let c = Container {
            name: "c".into(),
            readiness_probe: Some(ready),
            ..Default::default()
        };
        let t0 = tokio::time::Instant::now();
        let started = SystemTime::now() - Duration::from_secs(60);
        pm.add_container_started_at(&pod(), &c, "cid", None, started);
        at(t0, 0.5).await;
        assert!(pm.readiness("cid"));
    }

    fn target(container: Container) -> Target {
        Target {
            pod_uid: "u".into(),
            pod_namespace: "default".into(),
            pod_name: "p".into(),
            container_name: container.name.clone(),
            container_id: "cid".into(),
            pod_ip: Some("127.0.0.1".into()),
            container,
        }
    }

    #[tokio::test]
    async fn exec_timeout_and_env_expansion() {
        let exec: Arc<dyn ExecRunner> = FakeExec::new(&[]);
        let c = Container {
            name: "c".into(),
            env: Some(vec![k8s_openapi::api::core::v1::EnvVar {
                name: "CMD".into(),
                value: Some("hang".into()),
                value_from: None,
            }]),
            ..Default::default()
        };
        let mut p = exec_probe("$(CMD)", 1, 1);
        p.exec
            .as_mut()
            .unwrap()
            .command
            .as_mut()
            .unwrap()
            .push("-c".into());
        let r = run_probe(&exec, &p, &target(c), Duration::from_secs(1)).await;
        assert_eq!(
            r,
            ProbeResult::Failure("command \"hang -c\" timed out".into())
        );
    }

    /// Serves one canned HTTP response per connection; records requests.
    async fn http_server(responses: Vec<String>) -> (u16, Arc<Mutex<Vec<String>>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            for resp in responses {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                seen2
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                s.write_all(resp.as_bytes()).await.unwrap();
                s.shutdown().await.ok();
            }
        });
        (port, seen)
    }

    fn resp(status: &str, extra: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn http_probe_on(port: IntOrString, path: &str) -> Probe {
        Probe {
            http_get: Some(HTTPGetAction {
                port,
                path: Some(path.into()),
                http_headers: Some(vec![k8s_openapi::api::core::v1::HTTPHeader {
                    name: "X-Probe".into(),
                    value: "yes".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn http_statuses_redirects_and_named_ports() {
        let exec: Arc<dyn ExecRunner> = FakeExec::new(&[]);
        let (port, seen) = http_server(vec![
            resp("500 Internal Server Error", "", "boom"),
            resp("302 Found", "Location: /ok\r\n", ""),
            resp("200 OK", "", "fine"),
            resp(
                "301 Moved",
                "Location: http://elsewhere.example/\r\n",
                "bye",
            ),
        ])
        .await;
        let c = Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: port as i32,
                ..Default::default()
            }]),
            ..Default::default()
        };
        let t = target(c);
        let p = http_probe_on(IntOrString::String("http".into()), "/healthz");
        let r = run_probe(&exec, &p, &t, Duration::from_secs(2)).await;
        assert_eq!(
            r,
            ProbeResult::Failure("HTTP probe failed with statuscode: 500".into())
        );
        let r = run_probe(&exec, &p, &t, Duration::from_secs(2)).await;
        assert_eq!(r, ProbeResult::Success("fine".into()));
        let r = run_probe(&exec, &p, &t, Duration::from_secs(2)).await;
        assert_eq!(
            r,
            ProbeResult::Warning("Probe terminated redirects, Response body: bye".into())
        );
        let reqs = seen.lock().unwrap().clone();
        assert!(
            reqs[0].starts_with("GET /healthz HTTP/1.1\r\n"),
            "{}",
            reqs[0]
        );
        let lower = reqs[0].to_ascii_lowercase();
        assert!(
            lower.contains("user-agent: kube-probe/1.33\r\n"),
            "{}",
            reqs[0]
        );
        assert!(lower.contains("x-probe: yes\r\n"));
        assert!(lower.contains(&format!("host: 127.0.0.1:{port}\r\n")));
        assert!(reqs[1].starts_with("GET /healthz HTTP/1.1"), "{}", reqs[1]);
        assert!(reqs[2].starts_with("GET /ok HTTP/1.1"), "{}", reqs[2]);

        let bad = http_probe_on(IntOrString::String("nope".into()), "/");
        assert!(
            matches!(run_probe(&exec, &bad, &t, Duration::from_secs(1)).await,
            ProbeResult::Unknown(m) if m == "strconv.Atoi: parsing \"nope\": invalid syntax")
        );
    }

    #[tokio::test]
    async fn http_and_tcp_connection_errors_and_timeouts() {
        let exec: Arc<dyn ExecRunner> = FakeExec::new(&[]);
        // A port with nothing listening.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t = target(Container {
            name: "c".into(),
            ..Default::default()
        });
        let p = http_probe_on(IntOrString::Int(closed as i32), "/x");
        let r = run_probe(&exec, &p, &t, Duration::from_secs(1)).await;
        assert_eq!(
            r,
            ProbeResult::Failure(format!(
                "Get \"http://127.0.0.1:{closed}/x\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
            ))
        );
        let tcp = Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(closed as i32),
                host: None,
            }),
            ..Default::default()
        };
        let r = run_probe(&exec, &tcp, &t, Duration::from_secs(1)).await;
        assert_eq!(
            r,
            ProbeResult::Failure(format!(
                "dial tcp 127.0.0.1:{closed}: connect: connection refused"
            ))
        );

        // Accepts but never answers: the HTTP probe times out.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (s, _) = l.accept().await.unwrap();
                held.push(s);
            }
        });
        let tcp = Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(port as i32),
                host: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            run_probe(&exec, &tcp, &t, Duration::from_secs(1)).await,
            ProbeResult::Success(String::new())
        );
        let p = http_probe_on(IntOrString::Int(port as i32), "/");
        let r = run_probe(&exec, &p, &t, Duration::from_millis(300)).await;
        assert_eq!(
            r,
            ProbeResult::Failure(format!(
                "Get \"http://127.0.0.1:{port}/\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        );
    }

    #[tokio::test]
    async fn https_without_verification() {
        use component_base::{certs, tls};
        let (ca, ca_key) = certs::generate_ca("probe-test-ca").unwrap();
        let (cert, key) = certs::generate_serving_cert(
            &ca,
            &ca_key,
            "server",
            &[],
            &["127.0.0.1".parse().unwrap()],
        )
        .unwrap();
        let cfg = tls::server_config_from(
            tls::parse_certs(cert.as_bytes()).unwrap(),
            tls::parse_key(key.as_bytes()).unwrap(),
            None,
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut s = acceptor.accept(s).await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(resp("204 No Content", "", "").as_bytes())
                .await
                .unwrap();
            s.shutdown().await.ok();
        });
        let r = http_probe(
            &format!("https://127.0.0.1:{port}/"),
            &[],
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(r, ProbeResult::Success(String::new()));
    }

    /// A minimal gRPC health server over h2c answering with `status`.
    async fn grpc_server(status: u8, grpc_status: &'static str) -> u16 {
        use http_body_util::StreamBody;
        use hyper::body::Frame;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| async move {
                            assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            assert_eq!(&body[..], &encode_health_request("svc")[..]);
                            let msg: Vec<u8> = vec![0, 0, 0, 0, 2, 0x08, status];
                            let mut trailers = hyper::HeaderMap::new();
                            trailers.insert("grpc-status", grpc_status.parse().unwrap());
                            trailers.insert("grpc-message", "not%20here".parse().unwrap());
                            let frames = vec![
                                Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(msg))),
                                Ok(Frame::trailers(trailers)),
                            ];
                            let resp = hyper::Response::builder()
                                .header("content-type", "application/grpc")
                                .body(StreamBody::new(futures::stream::iter(frames)))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        },
                    );
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn grpc_health() {
        let exec: Arc<dyn ExecRunner> = FakeExec::new(&[]);
        let t = target(Container {
            name: "c".into(),
            ..Default::default()
        });
        let probe = |port: u16| Probe {
            grpc: Some(GRPCAction {
                port: port as i32,
                service: Some("svc".into()),
            }),
            ..Default::default()
        };
        let serving = grpc_server(1, "0").await;
        assert_eq!(
            run_probe(&exec, &probe(serving), &t, Duration::from_secs(2)).await,
            ProbeResult::Success("service is serving".into())
        );
        let not_serving = grpc_server(2, "0").await;
        assert_eq!(
            run_probe(&exec, &probe(not_serving), &t, Duration::from_secs(2)).await,
            ProbeResult::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        let unimpl = grpc_server(0, "12").await;
        assert_eq!(
            run_probe(&exec, &probe(unimpl), &t, Duration::from_secs(2)).await,
            ProbeResult::Failure(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): not here".into()
            )
        );
        assert_eq!(decode_health_response(&[0, 0, 0, 0, 0]), Some(0));
    }
}
