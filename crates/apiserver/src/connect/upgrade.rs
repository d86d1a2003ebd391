//! Forwarding requests to a kubelet: plain requests with their response
//! streamed back, and `Connection: Upgrade` requests (SPDY/3.1, WebSocket)
//! spliced byte for byte after the kubelet's `101 Switching Protocols`.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::endpoints::ResBody;

/// A body that ends (instead of failing) when the wrapped body errors: the
/// server's response bodies cannot fail, and a broken backend stream just
/// ends the client's stream.
pub struct EndOnError<B>(pub B);

impl<B> Body for EndOnError<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match Pin::new(&mut self.0).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
            Poll::Ready(Some(Err(e))) => {
                tracing::debug!(error = %e, "backend stream ended with an error");
                Poll::Ready(None)
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// Whether the request asks to switch protocols (`Connection: upgrade`).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Whether the upgrade asked for is WebSocket.
pub fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        })
}

/// Headers not forwarded to the kubelet: hop-by-hop ones (the upgrade's
/// Connection/Upgrade are kept) and the client's credentials.
fn skip_request_header(name: &header::HeaderName, upgrade: bool) -> bool {
    match name.as_str() {
        "host"
        | "authorization"
        | "proxy-authorization"
        | "proxy-connection"
        | "keep-alive"
        | "te"
        | "trailer"
        | "impersonate-user"
        | "impersonate-group"
        | "impersonate-uid" => true,
        "connection" | "upgrade" => !upgrade,
        "transfer-encoding" | "content-length" => upgrade,
        _ => false,
    }
}

/// Hop-by-hop response headers dropped when relaying a plain response.
fn skip_response_header(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
    )
}

/// Send a request over `io` (a connection to the kubelet) and return its
/// response; the connection is driven by a background task for as long as
/// the response body is read.
pub async fn send<IO, B>(io: IO, req: Request<B>) -> Result<Response<Incoming>, hyper::Error>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "kubelet connection ended");
        }
    });
    sender.send_request(req).await
}

/// Relay a plain (non-upgraded) kubelet response, streaming its body.
pub fn relay(resp: Response<Incoming>) -> Response<ResBody> {
    let (mut parts, body) = resp.into_parts();
    let names: Vec<header::HeaderName> = parts.headers.keys().cloned().collect();
    for n in names {
        if skip_response_header(&n) {
            parts.headers.remove(&n);
        }
    }
    Response::from_parts(parts, EndOnError(body).boxed())
}

/// Build the request forwarded to the kubelet from the client's headers.
pub fn forward_request<B>(
    method: &http::Method,
    headers: &HeaderMap,
    authority: &str,
    path_and_query: &str,
    body: B,
) -> Result<Request<B>, http::Error> {
    let upgrade = is_upgrade_request(headers);
    let mut b = Request::builder()
        .method(method.clone())
        .uri(path_and_query);
    if let Some(h) = b.headers_mut() {
        for (k, v) in headers {
            if !skip_request_header(k, upgrade) {
                h.append(k.clone(), v.clone());
            }
        }
        if let Ok(v) = HeaderValue::from_str(authority) {
            h.insert(header::HOST, v);
        }
    }
    b.body(body)
}

/// Forward an upgrade request over `io`; on `101` answer the client with the
/// kubelet's 101 (its headers intact) and splice the two connections.
pub async fn proxy_upgrade<IO>(
    mut req: Request<Incoming>,
    io: IO,
    authority: &str,
    path_and_query: &str,
) -> Result<Response<ResBody>, String>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let client_upgrade = hyper::upgrade::on(&mut req);
    let out = forward_request(
        req.method(),
        req.headers(),
        authority,
        path_and_query,
        http_body_util::Empty::<Bytes>::new(),
    )
    .map_err(|e| e.to_string())?;
    let mut resp = send(io, out)
        .await
        .map_err(|e| format!("error sending request: {e}"))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The kubelet's refusal goes back as it is (status, headers, body).
        let (parts, body) = resp.into_parts();
        return Ok(Response::from_parts(parts, EndOnError(body).boxed()));
    }
    let backend_upgrade = hyper::upgrade::on(&mut resp);
    let mut r = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    if let Some(h) = r.headers_mut() {
        for (k, v) in resp.headers() {
            h.append(k.clone(), v.clone());
        }
    }
    tokio::spawn(async move {
        match tokio::join!(client_upgrade, backend_upgrade) {
            (Ok(c), Ok(b)) => {
                let mut c = TokioIo::new(c);
                let mut b = TokioIo::new(b);
                if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut b).await {
                    tracing::debug!(error = %e, "upgraded stream ended");
                }
            }
            (c, b) => tracing::debug!(
                client_ok = c.is_ok(),
                backend_ok = b.is_ok(),
                "upgrade did not complete"
            ),
        }
    });
    r.body(crate::endpoints::full(Bytes::new()))
        .map_err(|e| e.to_string())
}
