//! A minimal one-shot HTTP/1.1 GET client (plain or TLS), for readiness
//! polling and probes where a full client library would be overkill.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The response of [`get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

/// GET `path` from `addr`. With `tls`, the connection is TLS and the server
/// certificate is verified for `server_name` (a DNS name or an IP literal).
/// The whole exchange (connect, handshake, response body) is bounded by
/// `timeout`.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    tls: Option<(Arc<ClientConfig>, &str)>,
    timeout: Duration,
) -> Result<Response> {
    let fut = async {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let _ = tcp.set_nodelay(true);
        let req = http::Request::get(path)
            .header(http::header::HOST, addr.to_string())
            .header(http::header::USER_AGENT, "ferrokube")
            .body(Empty::<Bytes>::new())
            .context("building request")?;
        match tls {
            Some((cfg, name)) => {
                let name = ServerName::try_from(name.to_string())
                    .map_err(|e| anyhow!("invalid server name {name:?}: {e}"))?;
                let stream = tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, tcp)
                    .await
                    .with_context(|| format!("TLS handshake with {addr}"))?;
                send(stream, req).await
            }
            None => send(tcp, req).await,
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| anyhow!("GET {path} from {addr} timed out after {timeout:?}"))?
}

async fn send<S>(io: S, req: http::Request<Empty<Bytes>>) -> Result<Response>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .context("HTTP handshake")?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let resp = sender.send_request(req).await.context("sending request")?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .context("reading response body")?
            .to_bytes();
        Ok(Response { status, body })
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn get_plain_and_errors() {
        let registry = prometheus::Registry::new();
        let (addr, task) = crate::serve::bind_health_metrics(
            "127.0.0.1:0".parse().unwrap(),
            None,
            registry,
            vec![],
        )
        .await
        .unwrap();
        let r = get(addr, "/readyz", None, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"ok");
        task.abort();
        // Connection refused is an error, not a panic.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = l.local_addr().unwrap();
        drop(l);
        assert!(get(dead, "/", None, Duration::from_secs(2)).await.is_err());
    }
}
