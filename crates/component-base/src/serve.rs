//! A tiny HTTP(S) server for the health and metrics endpoints every daemon
//! exposes: `/healthz`, `/livez`, `/readyz` (and `/<endpoint>/<check>`) in
//! the Kubernetes text format, and `/metrics` in the Prometheus text format.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A named health check; returns true when healthy.
pub type Check = Arc<dyn Fn() -> bool + Send + Sync>;

struct State {
    registry: prometheus::Registry,
    checks: Vec<(String, Check)>,
}

/// Bind `addr` and serve forever (until the returned future is dropped).
pub async fn serve_health_metrics(
    addr: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    registry: prometheus::Registry,
    checks: Vec<(String, Check)>,
) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding health/metrics server to {addr}"))?;
    run(listener, tls, registry, checks).await;
    Ok(())
}

/// Bind `addr` (port 0 picks a free port) and serve in a background task.
/// Returns the bound address and the task handle (abort it to stop).
pub async fn bind_health_metrics(
    addr: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    registry: prometheus::Registry,
    checks: Vec<(String, Check)>,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding health/metrics server to {addr}"))?;
    let local = listener.local_addr()?;
    Ok((local, tokio::spawn(run(listener, tls, registry, checks))))
}

async fn run(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    registry: prometheus::Registry,
    checks: Vec<(String, Check)>,
) {
    let state = Arc::new(State { registry, checks });
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("health server accept error: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&state, &req)) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let res = match acceptor {
                Some(acc) => match acc.accept(tcp).await {
                    Ok(stream) => builder.serve_connection(TokioIo::new(stream), svc).await,
                    Err(e) => {
                        tracing::debug!("TLS handshake with {peer} failed: {e}");
                        return;
                    }
                },
                None => builder.serve_connection(TokioIo::new(tcp), svc).await,
            };
            if let Err(e) = res {
                tracing::trace!("health connection from {peer} ended: {e}");
            }
        });
    }
}

fn respond<B>(state: &State, req: &Request<B>) -> Response<Full<Bytes>> {
    let (status, ctype, body) = if req.method() != Method::GET && req.method() != Method::HEAD {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n".to_string(),
        )
    } else {
        route(state, req.uri().path(), req.uri().query().unwrap_or(""))
    };
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

const TEXT: &str = "text/plain; charset=utf-8";

fn route(state: &State, path: &str, query: &str) -> (StatusCode, &'static str, String) {
    if path == "/metrics" {
        let encoder = prometheus::TextEncoder::new();
        return match encoder.encode_to_string(&state.registry.gather()) {
            Ok(s) => (
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                s,
            ),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("{e}\n")),
        };
    }
    let trimmed = path.trim_end_matches('/');
    for endpoint in ["healthz", "livez", "readyz"] {
        let prefix = format!("/{endpoint}");
        if trimmed == prefix {
            let verbose = query
                .split('&')
                .any(|kv| kv == "verbose" || kv.starts_with("verbose="));
            return health(state, endpoint, verbose);
        }
        if let Some(name) = trimmed.strip_prefix(&format!("{prefix}/")) {
            if name == "ping" {
                return (StatusCode::OK, TEXT, "ok".into());
            }
            return match state.checks.iter().find(|(n, _)| n == name) {
                Some((_, check)) if check() => (StatusCode::OK, TEXT, "ok".into()),
                Some((n, _)) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    TEXT,
                    format!("internal server error: {n} check failed\n"),
                ),
                None => (StatusCode::NOT_FOUND, TEXT, "404 page not found\n".into()),
            };
        }
    }
    (StatusCode::NOT_FOUND, TEXT, "404 page not found\n".into())
}

fn health(state: &State, endpoint: &str, verbose: bool) -> (StatusCode, &'static str, String) {
    let mut lines = vec!["[+]ping ok".to_string()];
    let mut failed = false;
    for (name, check) in &state.checks {
        if check() {
            lines.push(format!("[+]{name} ok"));
        } else {
            failed = true;
            lines.push(format!("[-]{name} failed: reason withheld"));
        }
    }
    if failed {
        let mut body = lines.join("\n");
        body.push_str(&format!("\n{endpoint} check failed\n"));
        (StatusCode::INTERNAL_SERVER_ERROR, TEXT, body)
    } else if verbose {
        let mut body = lines.join("\n");
        body.push_str(&format!("\n{endpoint} check passed\n"));
        (StatusCode::OK, TEXT, body)
    } else {
        (StatusCode::OK, TEXT, "ok".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
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

    #[tokio::test]
    async fn endpoints() {
        let registry = prometheus::Registry::new();
        let counter = prometheus::IntCounter::new("test_things_total", "things").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        counter.inc();
        let healthy = Arc::new(AtomicBool::new(true));
        let h = healthy.clone();
        let checks: Vec<(String, Check)> =
            vec![("etcd".into(), Arc::new(move || h.load(Ordering::SeqCst)))];
        let (addr, task) =
            bind_health_metrics("127.0.0.1:0".parse().unwrap(), None, registry, checks)
                .await
                .unwrap();

        assert_eq!(get(addr, "/healthz").await, (200, "ok".into()));
        assert_eq!(get(addr, "/readyz").await, (200, "ok".into()));
        let (code, body) = get(addr, "/livez?verbose").await;
        assert_eq!(code, 200);
        assert!(
            body.contains("[+]etcd ok") && body.contains("livez check passed"),
            "{body}"
        );
        let (code, body) = get(addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(body.contains("test_things_total 1"), "{body}");
        assert_eq!(get(addr, "/nope").await.0, 404);
        assert_eq!(get(addr, "/readyz/nope").await.0, 404);
        assert_eq!(get(addr, "/readyz/etcd").await.0, 200);

        healthy.store(false, Ordering::SeqCst);
        let (code, body) = get(addr, "/readyz").await;
        assert_eq!(code, 500);
        assert!(
            body.contains("[-]etcd failed") && body.contains("readyz check failed"),
            "{body}"
        );
        assert_eq!(get(addr, "/readyz/etcd").await.0, 500);
        task.abort();
    }

    #[tokio::test]
    async fn serves_tls() {
        let (ca, ca_key) = crate::certs::generate_ca("ca").unwrap();
        let (crt, key) =
            crate::certs::generate_serving_cert(&ca, &ca_key, "s", &["localhost".into()], &[])
                .unwrap();
        let cfg = crate::tls::server_config_from(
            crate::tls::parse_certs(crt.as_bytes()).unwrap(),
            crate::tls::parse_key(key.as_bytes()).unwrap(),
            None,
        )
        .unwrap();
        let (addr, task) = bind_health_metrics(
            "127.0.0.1:0".parse().unwrap(),
            Some(Arc::new(cfg)),
            prometheus::Registry::new(),
            vec![],
        )
        .await
        .unwrap();
        let client =
            crate::tls::client_config_from(&crate::tls::parse_certs(ca.as_bytes()).unwrap(), None)
                .unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut s = connector.connect(name, tcp).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.ends_with("ok"), "{out}");
        task.abort();
    }
}
