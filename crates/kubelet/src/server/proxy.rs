//! Upgrade-aware proxying: forward a client's `Connection: Upgrade` request
//! (SPDY/3.1 or WebSocket) to a backend and, once the backend answers
//! `101 Switching Protocols`, splice bytes both ways. Any other backend
//! answer is passed back to the client unchanged.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{text, Body};

/// Whether the request asks to switch protocols (`Connection: upgrade`).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Hop-by-hop headers that must not be forwarded, except the ones that make
/// the upgrade (Connection and Upgrade are rebuilt explicitly).
fn skip_request_header(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "authorization"
            | "proxy-authorization"
            | "proxy-connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "content-length"
    )
}

/// Send `req` (an upgrade request) over `io` to `path_and_query` on
/// `authority` and relay the outcome. `io` is an established connection to
/// the backend (plain TCP or TLS).
pub async fn proxy_upgrade<IO>(
    mut req: Request<Incoming>,
    io: IO,
    authority: &str,
    path_and_query: &str,
) -> Response<Body>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let client_upgrade = hyper::upgrade::on(&mut req);
    let (mut sender, conn) = match tokio::time::timeout(
        Duration::from_secs(30),
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(io)),
    )
    .await
    {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return text(500, format!("error dialing backend: {e}")),
        Err(_) => return text(500, "error dialing backend: timeout"),
    };
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "backend connection ended");
        }
    });
    let mut b = Request::builder()
        .method(req.method().clone())
        .uri(path_and_query);
    if let Some(h) = b.headers_mut() {
        for (k, v) in req.headers() {
            if !skip_request_header(k) {
                h.append(k.clone(), v.clone());
            }
        }
        if let Ok(v) = HeaderValue::from_str(authority) {
            h.insert(header::HOST, v);
        }
    }
    let out = match b.body(Empty::<Bytes>::new()) {
        Ok(r) => r,
        Err(e) => return text(500, format!("building backend request: {e}")),
    };
    let mut resp = match sender.send_request(out).await {
        Ok(r) => r,
        Err(e) => return text(500, format!("error sending request to backend: {e}")),
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = resp.into_parts();
        let body = body.map_err(std::io::Error::other).boxed();
        return Response::from_parts(parts, body);
    }
    let backend_upgrade = hyper::upgrade::on(&mut resp);
    let mut r = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    if let Some(h) = r.headers_mut() {
        for (k, v) in resp.headers() {
            h.append(k.clone(), v.clone());
        }
    }
    tokio::spawn(async move {
        let (c, b) = tokio::join!(client_upgrade, backend_upgrade);
        match (c, b) {
            (Ok(c), Ok(b)) => {
                let mut c = TokioIo::new(c);
                let mut b = TokioIo::new(b);
                match tokio::io::copy_bidirectional(&mut c, &mut b).await {
                    Ok((up, down)) => {
                        tracing::debug!(up, down, "upgraded stream finished")
                    }
                    Err(e) => tracing::debug!(error = %e, "upgraded stream ended"),
                }
            }
            (c, b) => tracing::debug!(
                client_ok = c.is_ok(),
                backend_ok = b.is_ok(),
                "upgrade did not complete"
            ),
        }
    });
    r.body(super::empty())
        .unwrap_or_else(|_| text(500, "building upgrade response"))
}
