//! The plain-HTTP servers kube-proxy runs: the proxier's `/healthz` and
//! `/livez` on `--healthz-bind-address`, and one health-check server per
//! `healthCheckNodePort` of LoadBalancer Services with
//! `externalTrafficPolicy: Local` (200 while this node has local endpoints,
//! 503 otherwise, so load balancers only send traffic where it is served).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The proxier's health as upstream's ProxierHealthServer tracks it: a sync
/// was queued and not done within the health timeout → unhealthy.
pub struct ProxierHealth {
    timeout: Duration,
    inner: Mutex<HealthInner>,
}

#[derive(Default)]
struct HealthInner {
    last_updated: Option<(Instant, SystemTime)>,
    last_queued: Option<Instant>,
    node_eligible: bool,
}

impl ProxierHealth {
    pub fn new(timeout: Duration) -> Arc<ProxierHealth> {
        Arc::new(ProxierHealth {
            timeout,
            inner: Mutex::new(HealthInner {
                node_eligible: true,
                ..Default::default()
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A sync was requested.
    pub fn queued(&self) {
        let mut i = self.lock();
        // Keep the oldest still-pending request.
        let pending = match (i.last_queued, i.last_updated) {
            (Some(q), Some((u, _))) => q > u,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !pending {
            i.last_queued = Some(Instant::now());
        }
    }

    /// A sync succeeded.
    pub fn updated(&self) {
        let mut i = self.lock();
        i.last_updated = Some((Instant::now(), SystemTime::now()));
    }

    pub fn set_node_eligible(&self, eligible: bool) {
        self.lock().node_eligible = eligible;
    }

    /// Whether the rules are current: synced at least once, and no queued
    /// change has waited longer than the timeout.
    pub fn is_healthy(&self) -> bool {
        let i = self.lock();
        let Some((updated, _)) = i.last_updated else {
            return false;
        };
        match i.last_queued {
            Some(q) if q > updated => q.elapsed() < self.timeout,
            _ => true,
        }
    }

    fn body(&self) -> (bool, bool, String) {
        let healthy = self.is_healthy();
        let i = self.lock();
        let last = i.last_updated.map(|(_, t)| rfc3339(t)).unwrap_or_default();
        let body = serde_json::json!({
            "lastUpdated": last,
            "currentTime": rfc3339(SystemTime::now()),
            "nodeEligible": i.node_eligible,
        })
        .to_string();
        (healthy, i.node_eligible, body)
    }
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn response(status: StatusCode, ctype: &str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp.headers_mut().insert(
        http::header::HeaderName::from_static("x-content-type-options"),
        http::HeaderValue::from_static("nosniff"),
    );
    resp
}

async fn serve<F>(listener: TcpListener, handler: Arc<F>)
where
    F: Fn(&str) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    loop {
        let (tcp, _peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("health server accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req.uri().path())) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// Serve `/healthz` and `/livez` on `addr` in the background; returns the
/// bound address.
pub async fn start_healthz(
    addr: SocketAddr,
    health: Arc<ProxierHealth>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding healthz server to {addr}"))?;
    let local = listener.local_addr()?;
    let handler = Arc::new(move |path: &str| {
        let (healthy, eligible, body) = health.body();
        match path.trim_end_matches('/') {
            "/healthz" => {
                let ok = healthy && eligible;
                let status = if ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                metrics
                    .healthz_total
                    .with_label_values(&[status.as_str()])
                    .inc();
                response(status, "application/json", body)
            }
            "/livez" => {
                let status = if healthy {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                metrics
                    .livez_total
                    .with_label_values(&[status.as_str()])
                    .inc();
                response(status, "application/json", body)
            }
            _ => response(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "404 page not found\n".into(),
            ),
        }
    });
    Ok((local, tokio::spawn(serve(listener, handler))))
}

/// What a service health-check port reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceHealth {
    pub namespace: String,
    pub name: String,
    pub local_endpoints: usize,
}

/// The per-Service health-check servers, reconciled after every sync.
pub struct ServiceHealthServers {
    bind_ip: std::net::IpAddr,
    proxier: Arc<ProxierHealth>,
    servers: BTreeMap<u16, (Arc<Mutex<ServiceHealth>>, JoinHandle<()>)>,
}

impl ServiceHealthServers {
    pub fn new(bind_ip: std::net::IpAddr, proxier: Arc<ProxierHealth>) -> Self {
        ServiceHealthServers {
            bind_ip,
            proxier,
            servers: BTreeMap::new(),
        }
    }

    /// Make the servers match `wanted` (port → service and its local
    /// endpoint count): start new ones, stop removed ones, update counts.
    pub async fn sync(&mut self, wanted: BTreeMap<u16, ServiceHealth>) {
        let gone: Vec<u16> = self
            .servers
            .keys()
            .filter(|p| !wanted.contains_key(p))
            .copied()
            .collect();
        for p in gone {
            if let Some((_, task)) = self.servers.remove(&p) {
                task.abort();
                tracing::info!(port = p, "stopped service health check server");
            }
        }
        for (port, h) in wanted {
            if let Some((state, _)) = self.servers.get(&port) {
                *state.lock().unwrap_or_else(|e| e.into_inner()) = h;
                continue;
            }
            let addr = SocketAddr::new(self.bind_ip, port);
            let listener = match TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(%addr, service = %format!("{}/{}", h.namespace, h.name), "cannot open health check port: {e}");
                    continue;
                }
            };
            let state = Arc::new(Mutex::new(h));
            let s = state.clone();
            let proxier = self.proxier.clone();
            let handler = Arc::new(move |_path: &str| {
                let h = s.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let proxy_healthy = proxier.is_healthy();
                let body = serde_json::json!({
                    "service": {"namespace": h.namespace, "name": h.name},
                    "localEndpoints": h.local_endpoints,
                    "serviceProxyHealthy": proxy_healthy,
                })
                .to_string();
                let status = if h.local_endpoints > 0 && proxy_healthy {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                response(status, "application/json", body)
            });
            tracing::info!(port, "started service health check server");
            self.servers
                .insert(port, (state, tokio::spawn(serve(listener, handler))));
        }
    }

    /// The ports being served.
    pub fn ports(&self) -> Vec<u16> {
        self.servers.keys().copied().collect()
    }
}

impl Drop for ServiceHealthServers {
    fn drop(&mut self) {
        for (_, (_, task)) in std::mem::take(&mut self.servers) {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out[9..12].parse().unwrap();
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    #[test]
    fn proxier_health_states() {
        let h = ProxierHealth::new(Duration::from_millis(50));
        assert!(!h.is_healthy(), "never synced");
        h.queued();
        h.updated();
        assert!(h.is_healthy());
        h.queued();
        assert!(h.is_healthy(), "pending but recent");
        std::thread::sleep(Duration::from_millis(80));
        assert!(!h.is_healthy(), "pending too long");
        h.updated();
        assert!(h.is_healthy());
    }

    #[tokio::test]
    async fn healthz_endpoints() {
        let h = ProxierHealth::new(Duration::from_secs(60));
        let m = Arc::new(crate::metrics::Metrics::new());
        let (addr, task) = start_healthz("127.0.0.1:0".parse().unwrap(), h.clone(), m.clone())
            .await
            .unwrap();
        assert_eq!(get(addr, "/healthz").await.0, 503);
        h.updated();
        let (code, body) = get(addr, "/healthz").await;
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["nodeEligible"], true);
        assert!(v["lastUpdated"].as_str().unwrap().ends_with('Z'));
        assert!(v["currentTime"].is_string());
        h.set_node_eligible(false);
        assert_eq!(get(addr, "/healthz").await.0, 503);
        assert_eq!(get(addr, "/livez").await.0, 200);
        assert_eq!(get(addr, "/nope").await.0, 404);
        assert_eq!(m.healthz_total.with_label_values(&["503"]).get(), 2);
        task.abort();
    }

    #[tokio::test]
    async fn service_health_ports() {
        let h = ProxierHealth::new(Duration::from_secs(60));
        h.updated();
        let mut servers = ServiceHealthServers::new("127.0.0.1".parse().unwrap(), h);
        // A free port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let entry = |n| ServiceHealth {
            namespace: "default".into(),
            name: "lb".into(),
            local_endpoints: n,
        };
        servers.sync([(port, entry(2))].into()).await;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let (code, body) = get(addr, "/").await;
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["service"]["namespace"], "default");
        assert_eq!(v["service"]["name"], "lb");
        assert_eq!(v["localEndpoints"], 2);
        servers.sync([(port, entry(0))].into()).await;
        let (code, body) = get(addr, "/").await;
        assert_eq!(code, 503, "{body}");
        assert_eq!(servers.ports(), vec![port]);
        servers.sync(BTreeMap::new()).await;
        assert!(servers.ports().is_empty());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
