//! The kubelet API server (HTTPS, :10250 by default).
//!
//! Clients authenticate with a certificate signed by the client CA
//! (`--client-ca-file` / `authentication.x509.clientCAFile`); any
//! authenticated client is authorized. Without a certificate a request gets
//! 401 (anonymous auth is off, as in a KubeletConfiguration's defaults).
//! `/healthz` needs no authentication.
//!
//! Endpoints, as upstream:
//! - `GET /healthz`, `GET /pods` (the pods this kubelet runs, a PodList),
//!   `GET /metrics` (the kubelet's registry), `GET /metrics/resource` and
//!   `GET /metrics/cadvisor` (CPU/memory usage), `GET /stats/summary`;
//! - `GET /containerLogs/{ns}/{pod}/{container}` with PodLogOptions;
//! - `GET|POST /exec/{ns}/{pod}[/{uid}]/{container}`, `/attach/...`,
//!   `/portForward/{ns}/{pod}[/{uid}]`: the runtime (CRI Exec/Attach/
//!   PortForward) hands out a URL on its own streaming server; the client's
//!   upgrade request (SPDY/3.1 or WebSocket) is proxied there;
//! - `POST /run/{ns}/{pod}[/{uid}]/{container}?cmd=...` (ExecSync).

mod containerlogs;
pub mod stats;
mod streaming;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use component_base::accept;
use cri::runtime::v1::runtime_service_client::RuntimeServiceClient;
use http::{Method, Request, Response};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::Pod;
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// Response body used by every handler (full or streamed).
pub type Body = BoxBody<Bytes, std::io::Error>;

pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

pub(crate) fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A plain-text response (what upstream's `http.Error` / restful `WriteError` send).
pub(crate) fn text(code: u16, msg: impl Into<String>) -> Response<Body> {
    let mut s: String = msg.into();
    if !s.ends_with('\n') && code >= 400 {
        s.push('\n');
    }
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("X-Content-Type-Options", "nosniff")
        .body(full(s))
        .unwrap_or_else(|_| Response::new(empty()))
}

pub(crate) fn json(code: u16, v: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(full(serde_json::to_vec(v).unwrap_or_default()))
        .unwrap_or_else(|_| Response::new(empty()))
}

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `--address` (default 0.0.0.0).
    pub address: IpAddr,
    /// `--port` (default 10250).
    pub port: u16,
    /// `--tls-cert-file`; without it a self-signed certificate is kept in
    /// `<root-dir>/pki/kubelet.crt` (as upstream).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    /// `--client-ca-file` (`authentication.x509.clientCAFile`): clients
    /// authenticate with a certificate chaining to it. Anonymous requests
    /// get 401 except `/healthz` (a KubeletConfiguration's default:
    /// `authentication.anonymous.enabled: false`).
    pub client_ca_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            address: IpAddr::from([0, 0, 0, 0]),
            port: 10250,
            tls_cert_file: None,
            tls_private_key_file: None,
            client_ca_file: None,
        }
    }
}

/// What the server reads from the rest of the kubelet.
#[derive(Clone)]
pub struct ServerDeps {
    pub runtime: RuntimeServiceClient<Channel>,
    /// The pods the kubelet runs, with the status it last computed.
    pub pods: Arc<dyn Fn() -> Vec<Pod> + Send + Sync>,
    pub pod_logs_dir: PathBuf,
    pub node_name: String,
    /// Served at /metrics.
    pub registry: prometheus::Registry,
    pub root_dir: PathBuf,
}

pub(crate) struct State {
    pub deps: ServerDeps,
    pub stats: stats::Collector,
    /// Whether clients must present a certificate from the client CA.
    pub authenticate: bool,
}

impl State {
    pub fn runtime(&self) -> RuntimeServiceClient<Channel> {
        self.deps.runtime.clone()
    }

    pub fn find_pod(&self, ns: &str, name: &str) -> Option<Pod> {
        (self.deps.pods)().into_iter().find(|p| {
            p.metadata.namespace.as_deref().unwrap_or("default") == ns
                && p.metadata.name.as_deref() == Some(name)
        })
    }
}

/// Load the serving certificate, or create and keep a self-signed one.
fn tls_config(cfg: &ServerConfig, deps: &ServerDeps) -> anyhow::Result<rustls::ServerConfig> {
    let (cert, key) = match (&cfg.tls_cert_file, &cfg.tls_private_key_file) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        (None, None) => self_signed(deps)?,
        _ => anyhow::bail!("--tls-cert-file and --tls-private-key-file must be given together"),
    };
    let mut c = component_base::tls::server_config(&cert, &key, cfg.client_ca_file.as_deref())?;
    // Upgrades (exec/attach/port-forward) need HTTP/1.1; kubectl negotiates it
    // for those anyway. Keep h2 for the rest.
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(c)
}

fn self_signed(deps: &ServerDeps) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = deps.root_dir.join("pki");
    let crt = dir.join("kubelet.crt");
    let key = dir.join("kubelet.key");
    if crt.exists() && key.exists() {
        return Ok((crt, key));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let host = deps.node_name.clone();
    let (ca, ca_key) = component_base::certs::generate_ca(&format!("{host}-ca"))?;
    let (c, k) = component_base::certs::generate_serving_cert(
        &ca,
        &ca_key,
        &host,
        &[host.clone(), "localhost".into()],
        &[IpAddr::from([127, 0, 0, 1])],
    )?;
    std::fs::write(&crt, format!("{c}{ca}"))?;
    std::fs::write(&key, k)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600));
    }
    Ok((crt, key))
}

/// Serve the kubelet API until `shutdown` resolves.
pub async fn serve(
    cfg: ServerConfig,
    deps: ServerDeps,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = Arc::new(tls_config(&cfg, &deps)?);
    let listener = TcpListener::bind((cfg.address, cfg.port))
        .await
        .with_context(|| format!("listening on {}:{}", cfg.address, cfg.port))?;
    if cfg.client_ca_file.is_none() {
        tracing::warn!(
            "no client CA file: every kubelet API request but /healthz will be refused (401)"
        );
    }
    tracing::info!(addr = %listener.local_addr()?, "kubelet server listening");
    serve_listener(listener, tls, true, deps, shutdown).await
}

/// Serve on an already bound listener (tests bind port 0).
pub async fn serve_listener(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    authenticate: bool,
    deps: ServerDeps,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let state = Arc::new(State {
        deps,
        stats: stats::Collector::default(),
        authenticate,
    });
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    while let Some((tcp, remote)) = accept::next_connection(&listener, &mut shutdown).await {
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let Some(tls) = accept::tls_handshake(&acceptor, tcp, remote).await else {
                return;
            };
            // rustls verified any presented certificate against the client CA.
            let authenticated = tls
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(state, authenticated, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(%remote, error = %e, "connection ended with error");
            }
        });
    }
    Ok(())
}

/// Plain-HTTP health endpoint (upstream's healthzPort 10248 on 127.0.0.1):
/// `/healthz` answers `ok` while `healthy()` holds.
pub async fn serve_healthz(
    addr: SocketAddr,
    healthy: Arc<dyn Fn() -> bool + Send + Sync>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    tokio::pin!(shutdown);
    while let Some((tcp, _)) = accept::next_connection(&listener, &mut shutdown).await {
        let healthy = healthy.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let ok = healthy();
                async move {
                    let p = req.uri().path().trim_end_matches('/');
                    let r = if p == "/healthz" || p.starts_with("/healthz/") {
                        if ok {
                            text(200, "ok")
                        } else {
                            text(
                                500,
                                "[-]syncloop failed: reason withheld\nhealthz check failed",
                            )
                        }
                    } else {
                        text(404, "404 page not found")
                    };
                    Ok::<_, Infallible>(r)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
    Ok(())
}

fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

async fn route(state: Arc<State>, authenticated: bool, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let trimmed = path.trim_end_matches('/');
    if trimmed == "/healthz" || path.starts_with("/healthz/") {
        return text(200, "ok");
    }
    if state.authenticate && !authenticated {
        return text(401, "Unauthorized");
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let segs = segments(&path);
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let get_or_post = get || req.method() == Method::POST;
    match segs.as_slice() {
        ["pods"] if get => pods(&state),
        ["metrics"] if get => metrics(&state),
        ["metrics", "resource"] if get => stats::resource_metrics(&state).await,
        ["metrics", "cadvisor"] if get => stats::cadvisor_metrics(&state).await,
        ["stats", "summary"] if get_or_post => stats::summary(&state, &query).await,
        ["containerLogs", ns, pod, container] if get => {
            containerlogs::serve(&state, ns, pod, container, &query).await
        }
        ["containerLogs", ..] if get => text(400, r#"{"message": "Missing podID."}"#),
        ["exec", ns, pod, container] if get_or_post => {
            streaming::exec(&state, req, ns, pod, None, container, &query).await
        }
        ["exec", ns, pod, uid, container] if get_or_post => {
            streaming::exec(&state, req, ns, pod, Some(uid), container, &query).await
        }
        ["attach", ns, pod, container] if get_or_post => {
            streaming::attach(&state, req, ns, pod, None, container, &query).await
        }
        ["attach", ns, pod, uid, container] if get_or_post => {
            streaming::attach(&state, req, ns, pod, Some(uid), container, &query).await
        }
        ["portForward", ns, pod] if get_or_post => {
            streaming::port_forward(&state, req, ns, pod, None, &query).await
        }
        ["portForward", ns, pod, uid] if get_or_post => {
            streaming::port_forward(&state, req, ns, pod, Some(uid), &query).await
        }
        ["run", ns, pod, container] if req.method() == Method::POST => {
            streaming::run(&state, ns, pod, None, container, &query).await
        }
        ["run", ns, pod, uid, container] if req.method() == Method::POST => {
            streaming::run(&state, ns, pod, Some(uid), container, &query).await
        }
        _ => text(404, "404 page not found"),
    }
}

fn pods(state: &State) -> Response<Body> {
    let items: Vec<serde_json::Value> = (state.deps.pods)()
        .into_iter()
        .filter_map(|p| serde_json::to_value(p).ok())
        .collect();
    json(
        200,
        &serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}),
    )
}

fn metrics(state: &State) -> Response<Body> {
    let enc = prometheus::TextEncoder::new();
    match enc.encode_to_string(&state.deps.registry.gather()) {
        Ok(s) => Response::builder()
            .status(200)
            .header(
                http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .body(full(s))
            .unwrap_or_else(|_| text(500, "encoding metrics")),
        Err(e) => text(500, e.to_string()),
    }
}

/// The id part of a `runtime://id` container ID.
pub(crate) fn bare_container_id(id: &str) -> &str {
    id.split_once("://").map(|(_, i)| i).unwrap_or(id)
}

#[cfg(test)]
mod tests;
