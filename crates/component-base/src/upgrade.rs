//! Relaying HTTP/1.1 requests to a backend over an established connection,
//! including `Connection: Upgrade` requests (SPDY/3.1, WebSocket): the
//! backend's `101 Switching Protocols` goes back to the client with its
//! headers intact and the two connections are then spliced byte for byte.
//! Used by the apiserver (to kubelets) and the kubelet (to the runtime's
//! streaming server).

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Why a request could not be relayed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The forwarded request could not be built (bad target or header).
    #[error("{0}")]
    Request(#[from] http::Error),
    /// Sending the request or reading the response head failed.
    #[error("error sending request: {0}")]
    Send(#[source] hyper::Error),
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

/// Headers not forwarded to the backend: hop-by-hop ones (an upgrade's
/// Connection/Upgrade are kept, its body framing is not) and the client's
/// credentials.
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

/// Build the request forwarded to the backend (`authority` becomes its Host)
/// from the client's method and headers, without the headers
/// [`skip_request_header`] drops.
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

/// Send a request over `io` (a connection to the backend) and return its
/// response; the connection is driven by a background task for as long as
/// the response body is read (or the upgraded stream lives).
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
            tracing::debug!(error = %e, "backend connection ended");
        }
    });
    sender.send_request(req).await
}

/// The body of [`proxy_upgrade`]'s answer: empty for a `101`, the backend's
/// own body when it refused the upgrade.
pub type UpgradeBody = Either<Empty<Bytes>, Incoming>;

/// Forward the client's upgrade request over `io` to `path_and_query` on
/// `authority`. On `101` the answer is the backend's 101 (its headers
/// intact, an empty body) and, once both sides have switched, a background
/// task copies bytes both ways until either side closes. Any other answer
/// is the backend's response as it is (status, headers, body).
pub async fn proxy_upgrade<IO>(
    mut req: Request<Incoming>,
    io: IO,
    authority: &str,
    path_and_query: &str,
) -> Result<Response<UpgradeBody>, Error>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let client_upgrade = hyper::upgrade::on(&mut req);
    let out = forward_request(
        req.method(),
        req.headers(),
        authority,
        path_and_query,
        Empty::<Bytes>::new(),
    )?;
    let mut resp = send(io, out).await.map_err(Error::Send)?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(resp.map(Either::Right));
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
                match tokio::io::copy_bidirectional(&mut c, &mut b).await {
                    Ok((up, down)) => tracing::debug!(up, down, "upgraded stream finished"),
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
    Ok(r.body(Either::Left(Empty::new()))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// A backend that answers upgrades to `/echo` with 101 and echoes the
    /// upgraded stream, and everything else with 403 "no".
    async fn backend() -> std::net::SocketAddr {
        use http_body_util::Full;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = l.accept().await.unwrap();
                let svc = hyper::service::service_fn(|mut req: Request<Incoming>| async move {
                    if req.uri().path() != "/echo" || !is_upgrade_request(req.headers()) {
                        return Response::builder()
                            .status(403)
                            .body(Full::new(Bytes::from("no")));
                    }
                    assert_eq!(req.headers()["host"], "backend:1");
                    assert!(req.headers().get("authorization").is_none());
                    let on = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        let mut io = TokioIo::new(on.await.unwrap());
                        let (mut r, mut w) = tokio::io::split(&mut io);
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    });
                    Response::builder()
                        .status(101)
                        .header("connection", "Upgrade")
                        .header("upgrade", "SPDY/3.1")
                        .header("x-stream-protocol-version", "v4.channel.k8s.io")
                        .body(Full::new(Bytes::new()))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades(),
                );
            }
        });
        addr
    }

    /// A front server relaying every request to `backend` with
    /// [`proxy_upgrade`]; returns its address.
    async fn front(backend: std::net::SocketAddr) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = l.accept().await.unwrap();
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                    let io = tokio::net::TcpStream::connect(backend).await.unwrap();
                    let pq = req.uri().path().to_string();
                    proxy_upgrade(req, io, "backend:1", &pq).await
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades(),
                );
            }
        });
        addr
    }

    /// Send a raw upgrade request for `path`; returns the response head and
    /// the stream.
    async fn raw_upgrade(
        addr: std::net::SocketAddr,
        path: &str,
    ) -> (String, tokio::net::TcpStream) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: front\r\nAuthorization: Bearer x\r\n\
             Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            assert_eq!(s.read(&mut b).await.unwrap(), 1, "{head:?}");
            head.push(b[0]);
        }
        (String::from_utf8(head).unwrap().to_ascii_lowercase(), s)
    }

    #[tokio::test]
    async fn relays_upgrades_and_refusals() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let front = front(backend().await).await;

        let (head, mut s) = raw_upgrade(front, "/echo").await;
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("upgrade: spdy/3.1"), "{head}");
        assert!(
            head.contains("x-stream-protocol-version: v4.channel.k8s.io"),
            "{head}"
        );
        s.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");

        let (head, mut s) = raw_upgrade(front, "/other").await;
        assert!(head.starts_with("http/1.1 403"), "{head}");
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"no");
    }

    #[test]
    fn detects_upgrades() {
        assert!(is_upgrade_request(&headers(&[(
            "connection",
            "keep-alive, Upgrade"
        )])));
        assert!(!is_upgrade_request(&headers(&[("connection", "close")])));
        assert!(is_websocket(&headers(&[("upgrade", "WebSocket")])));
        assert!(!is_websocket(&headers(&[("upgrade", "SPDY/3.1")])));
    }

    #[test]
    fn forwarded_headers() {
        let client = headers(&[
            ("host", "apiserver"),
            ("authorization", "Bearer x"),
            ("impersonate-user", "u"),
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("content-length", "0"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
        ]);
        let r = forward_request(
            &http::Method::POST,
            &client,
            "node:10250",
            "/exec/a/b/c",
            (),
        )
        .unwrap();
        let names: Vec<&str> = r.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            ["connection", "upgrade", "x-stream-protocol-version", "host"]
        );
        assert_eq!(r.headers()["host"], "node:10250");
        assert_eq!(r.uri(), "/exec/a/b/c");

        // A plain request keeps its body framing and drops Connection.
        let client = headers(&[("connection", "close"), ("content-length", "3")]);
        let r = forward_request(&http::Method::PUT, &client, "n", "/x", ()).unwrap();
        let names: Vec<&str> = r.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-length", "host"]);
    }
}
