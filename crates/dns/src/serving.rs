//! The plain-HTTP health (/health, /healthz), readiness (/ready, /readyz)
//! and metrics (/metrics) servers, on the ports CoreDNS uses.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A route table: path → (status, content type, body).
pub type Routes = Arc<dyn Fn(&str) -> Option<(StatusCode, &'static str, String)> + Send + Sync>;

/// Bind `addr` (port 0 picks a free one) and serve `routes` until `stop`.
pub async fn bind(addr: SocketAddr, routes: Routes, stop: CancellationToken) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding HTTP server to {addr}"))?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (tcp, _peer) = tokio::select! {
                _ = stop.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "http accept");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let routes = routes.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let routes = routes.clone();
                    async move { Ok::<_, Infallible>(respond(&routes, &req)) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok(local)
}

fn respond<B>(routes: &Routes, req: &Request<B>) -> Response<Full<Bytes>> {
    let (status, ctype, body) =
        if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "method not allowed\n".to_string(),
            )
        } else {
            routes(req.uri().path()).unwrap_or((
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "404 page not found\n".to_string(),
            ))
        };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}
