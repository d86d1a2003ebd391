//! Forwarding requests to a kubelet over `component_base::upgrade`: plain
//! requests with their response streamed back (hop-by-hop headers dropped),
//! and `Connection: Upgrade` requests (SPDY/3.1, WebSocket) spliced byte for
//! byte after the kubelet's `101 Switching Protocols`.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
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

/// Forward an upgrade request over `io`; on `101` answer the client with the
/// kubelet's 101 (its headers intact) and splice the two connections; any
/// other answer goes back as it is.
pub async fn proxy_upgrade<IO>(
    req: Request<Incoming>,
    io: IO,
    authority: &str,
    path_and_query: &str,
) -> Result<Response<ResBody>, String>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let resp = component_base::upgrade::proxy_upgrade(req, io, authority, path_and_query)
        .await
        .map_err(|e| e.to_string())?;
    Ok(resp.map(|b| EndOnError(b).boxed()))
}
