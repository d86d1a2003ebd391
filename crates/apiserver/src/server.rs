//! The HTTPS server: TLS (rustls, h2 + http/1.1), the filter stack, routing
//! of non-resource paths (health, version, discovery, OpenAPI, metrics) and
//! graceful shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apimachinery::errors::ApiError;
use bytes::Bytes;
use component_base::accept;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use storage::EtcdStorage;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceBuilder;

use crate::endpoints::handlers::{self, ResourceRequest, MAX_REQUEST_BODY_BYTES};
use crate::endpoints::request_info::RequestInfo;
use crate::endpoints::{discovery, error_response, json_response, text_response, ResBody};
use crate::filters::authn::{AuthnLayer, PeerIdentity, TokenFile};
use crate::filters::authz::AuthzLayer;
use crate::filters::inflight::MaxInFlightLayer;
use crate::filters::metrics::RequestInfoLayer;
use crate::filters::timeout::TimeoutLayer;
use crate::metrics::Metrics;
use crate::registry::context::UserInfo;
use crate::registry::Registry;

/// Shared state of a running apiserver.
pub struct ApiState {
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub storage: EtcdStorage,
    /// Flips to true on shutdown: watches end, /readyz fails.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// "ip:port" advertised in /api.
    pub server_address: String,
    pub bootstrapped: AtomicBool,
    /// How to reach kubelets (pods/log, exec, attach, portforward, nodes/proxy).
    pub kubelet: crate::connect::kubelet::KubeletClient,
    /// Service-account token issuing (serviceaccounts/token) and keys.
    pub service_accounts: Arc<crate::serviceaccount::ServiceAccountTokens>,
    openapi_cache: Mutex<HashMap<String, Bytes>>,
}

impl ApiState {
    pub fn new(
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        storage: EtcdStorage,
        server_address: String,
    ) -> Self {
        let (tx, _) = tokio::sync::watch::channel(false);
        ApiState {
            registry,
            metrics,
            storage,
            shutdown: tx,
            server_address,
            bootstrapped: AtomicBool::new(false),
            kubelet: Default::default(),
            service_accounts: Arc::new(crate::serviceaccount::ServiceAccountTokens::disabled()),
            openapi_cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, key: &str, make: impl FnOnce() -> Option<serde_json::Value>) -> Option<Bytes> {
        if let Some(b) = self
            .openapi_cache
            .lock()
            .ok()
            .and_then(|c| c.get(key).cloned())
        {
            return Some(b);
        }
        let v = make()?;
        let b = Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
        if let Ok(mut c) = self.openapi_cache.lock() {
            c.insert(key.to_string(), b.clone());
        }
        Some(b)
    }
}

/// Version reported by /version.
pub fn version_info() -> serde_json::Value {
    serde_json::json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0-ferrokube",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
    })
}

async fn health(state: &Arc<ApiState>, path: &str, verbose: bool) -> http::Response<ResBody> {
    let kind = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("healthz")
        .to_string();
    let only = path
        .trim_start_matches('/')
        .split('/')
        .nth(1)
        .map(str::to_string);
    let mut checks: Vec<(&str, Result<(), String>)> = vec![("ping", Ok(()))];
    let etcd = match tokio::time::timeout(Duration::from_secs(2), state.storage.health()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("etcd health check timed out".into()),
    };
    checks.push(("etcd", etcd));
    if kind == "readyz" {
        let boot = if state.bootstrapped.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("not finished".to_string())
        };
        checks.push(("poststarthook/bootstrap-controller", boot));
        let down = if *state.shutdown.borrow() {
            Err("shutting down".to_string())
        } else {
            Ok(())
        };
        checks.push(("shutdown", down));
    }
    if let Some(o) = &only {
        return match checks
            .iter()
            .find(|(n, _)| n == o || format!("poststarthook/{o}") == *n)
        {
            Some((_, Ok(()))) => text_response(200, "ok"),
            Some((n, Err(e))) => {
                text_response(500, format!("internal server error: {n} failed: {e}\n"))
            }
            None => text_response(404, "404 page not found\n"),
        };
    }
    let failed = checks.iter().any(|(_, r)| r.is_err());
    if !failed && !verbose {
        return text_response(200, "ok");
    }
    let mut out = String::new();
    for (n, r) in &checks {
        match r {
            Ok(()) => out.push_str(&format!("[+]{n} ok\n")),
            Err(_) => out.push_str(&format!("[-]{n} failed: reason withheld\n")),
        }
    }
    if failed {
        out.push_str(&format!("{kind} check failed\n"));
        text_response(500, out)
    } else {
        out.push_str(&format!("{kind} check passed\n"));
        text_response(200, out)
    }
}

fn bytes_json(b: Bytes) -> http::Response<ResBody> {
    http::Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(crate::endpoints::full(b))
        .unwrap_or_else(|_| error_response(&ApiError::internal("response")))
}

fn not_found_page() -> http::Response<ResBody> {
    text_response(404, "404 page not found\n")
}

async fn serve_nonresource(
    state: &Arc<ApiState>,
    req: &http::Request<Incoming>,
) -> http::Response<ResBody> {
    let path = req.uri().path().trim_end_matches('/');
    let path = if path.is_empty() { "/" } else { path };
    let query = handlers::parse_query(req.uri().query());
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    if !matches!(*req.method(), http::Method::GET | http::Method::HEAD) {
        return error_response(&ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ));
    }
    let reg = &state.registry;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["healthz", ..] | ["livez", ..] | ["readyz", ..] => {
            health(state, path, query.contains_key("verbose")).await
        }
        ["version"] => json_response(200, &version_info()),
        ["metrics"] => http::Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
            .body(crate::endpoints::full(state.metrics.render()))
            .unwrap_or_else(|_| not_found_page()),
        ["api"] => match discovery::wants_aggregated(accept) {
            Some(v) => aggregated(discovery::aggregated(reg, true, v), v),
            None => json_response(200, &discovery::api_versions(&state.server_address)),
        },
        ["apis"] => match discovery::wants_aggregated(accept) {
            Some(v) => aggregated(discovery::aggregated(reg, false, v), v),
            None => json_response(200, &discovery::api_group_list(reg)),
        },
        ["api", v] => discovery::api_resource_list(reg, "", v)
            .map(|d| json_response(200, &d))
            .unwrap_or_else(not_found_status),
        ["apis", g] => discovery::api_group(reg, g)
            .map(|d| json_response(200, &d))
            .unwrap_or_else(not_found_status),
        ["apis", g, v] => discovery::api_resource_list(reg, g, v)
            .map(|d| json_response(200, &d))
            .unwrap_or_else(not_found_status),
        ["openapi", "v2"] if !accepts_json(accept) => {
            // kubectl asks for the protobuf form only; we serve JSON.
            error_response(&ApiError::not_acceptable(&["application/json"]))
        }
        ["openapi", "v2"] => {
            let infos: Vec<resources::ResourceInfo> =
                reg.stores.iter().map(|s| s.info().clone()).collect();
            match state.cached("v2", || {
                Some(resources::openapi::openapi_v2(
                    &infos.iter().collect::<Vec<_>>(),
                ))
            }) {
                Some(b) => bytes_json(b),
                None => not_found_page(),
            }
        }
        ["openapi", "v3"] => {
            let infos: Vec<resources::ResourceInfo> =
                reg.stores.iter().map(|s| s.info().clone()).collect();
            match state.cached("v3", || {
                Some(resources::openapi::openapi_v3_paths(
                    &infos.iter().collect::<Vec<_>>(),
                ))
            }) {
                Some(b) => bytes_json(b),
                None => not_found_page(),
            }
        }
        ["openapi", "v3", rest @ ..] => {
            let gv = rest.join("/");
            let infos: Vec<resources::ResourceInfo> =
                reg.stores.iter().map(|s| s.info().clone()).collect();
            match state.cached(&format!("v3/{gv}"), || {
                resources::openapi::openapi_v3_group_version(&infos.iter().collect::<Vec<_>>(), &gv)
            }) {
                Some(b) => {
                    let mut r = bytes_json(b);
                    r.headers_mut().insert(
                        http::header::CACHE_CONTROL,
                        http::HeaderValue::from_static("public, immutable"),
                    );
                    r
                }
                None => not_found_page(),
            }
        }
        _ => not_found_page(),
    }
}

fn accepts_json(accept: Option<&str>) -> bool {
    match accept {
        None => true,
        Some(a) => {
            a.trim().is_empty()
                || a.split(',').any(|p| {
                    let m = p.split(';').next().unwrap_or("").trim();
                    m == "application/json" || m == "*/*" || m == "application/*"
                })
        }
    }
}

fn not_found_status() -> http::Response<ResBody> {
    error_response(&ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    ))
}

fn aggregated(v: serde_json::Value, version: &str) -> http::Response<ResBody> {
    let mut r = json_response(200, &v);
    let ct = format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList");
    if let Ok(h) = http::HeaderValue::from_str(&ct) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, h);
    }
    r
}

/// The innermost service: routes to resource handlers or non-resource paths.
async fn route(state: Arc<ApiState>, req: http::Request<Incoming>) -> http::Response<ResBody> {
    let info = req
        .extensions()
        .get::<RequestInfo>()
        .cloned()
        .unwrap_or_default();
    if !info.is_resource_request {
        return serve_nonresource(&state, &req).await;
    }
    if crate::connect::handles(&info) {
        // Streamed both ways (and upgraded): the body is not read here.
        return crate::connect::serve(&state, req, &info).await;
    }
    let user = req
        .extensions()
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_else(UserInfo::anonymous);
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BODY_BYTES) {
        // Refuse before reading: the client learns at once (no 100-continue, no upload).
        return error_response(&ApiError::request_entity_too_large(MAX_REQUEST_BODY_BYTES));
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BODY_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return error_response(&ApiError::request_entity_too_large(MAX_REQUEST_BODY_BYTES));
            }
            return error_response(&ApiError::bad_request(format!(
                "error reading request body: {e}"
            )));
        }
    };
    let rr = ResourceRequest {
        query: handlers::parse_query(parts.uri.query()),
        method: parts.method,
        headers: parts.headers,
        body,
        user,
        info,
    };
    handlers::serve_resource(&state, rr).await
}

/// Build the full service stack for one connection.
fn make_service(
    state: Arc<ApiState>,
    opts: &ServeOptions,
    peer: PeerIdentity,
) -> impl tower::Service<
    http::Request<Incoming>,
    Response = http::Response<ResBody>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
       + Send {
    let inner = tower::service_fn(move |req: http::Request<Incoming>| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(route(state, req).await) }
    });
    let peer_layer = tower::util::MapRequestLayer::new(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        req
    });
    ServiceBuilder::new()
        .layer(peer_layer)
        .layer(RequestInfoLayer::new(opts.metrics.clone()))
        .layer(AuthnLayer::new(
            opts.tokens.clone(),
            opts.service_account_authn.clone(),
            opts.anonymous,
        ))
        .layer(AuthzLayer)
        .layer(MaxInFlightLayer::new(
            opts.max_readonly,
            opts.max_mutating,
            opts.metrics.clone(),
        ))
        .layer(TimeoutLayer::new(opts.request_timeout))
        .service(inner)
}

/// What the server loop needs besides the state.
#[derive(Clone)]
pub struct ServeOptions {
    pub tls: Arc<rustls::ServerConfig>,
    pub tokens: Arc<TokenFile>,
    /// Service-account JWTs (None: not accepted).
    pub service_account_authn: Option<Arc<crate::serviceaccount::Authenticator>>,
    pub anonymous: bool,
    pub max_readonly: usize,
    pub max_mutating: usize,
    pub request_timeout: Duration,
    pub metrics: Arc<Metrics>,
}

/// Accept connections until `shutdown` resolves, then stop accepting, end
/// watches and let in-flight requests finish (up to 60 s).
pub async fn serve(
    state: Arc<ApiState>,
    listener: TcpListener,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(opts.tls.clone());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    while let Some((tcp, remote)) = accept::next_connection(&listener, &mut shutdown).await {
        let acceptor = acceptor.clone();
        let state = state.clone();
        let opts = opts.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let Some(tls) = accept::tls_handshake(&acceptor, tcp, remote).await else {
                return;
            };
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(component_base::tls::peer_identity)
                .map(|(cn, groups)| UserInfo {
                    name: cn,
                    uid: String::new(),
                    groups,
                    extra: Default::default(),
                });
            let svc = make_service(state, &opts, PeerIdentity(peer));
            let hyper_svc = hyper_util::service::TowerToHyperService::new(svc);
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), hyper_svc);
            let conn = watcher.watch(conn.into_owned());
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection ended with error");
            }
        });
    }
    tracing::info!("shutting down: no new connections; closing watches and draining requests");
    let _ = state.shutdown.send(true);
    match tokio::time::timeout(Duration::from_secs(60), graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections drained"),
        Err(_) => tracing::warn!("timed out draining connections"),
    }
    Ok(())
}
