//! Accepting connections for the daemons' TLS servers (the apiserver's
//! secure port, the kubelet's :10250): one policy for accept errors and
//! handshake timeouts.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to complete the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The next connection on `listener` (with `TCP_NODELAY` set), or `None`
/// once `shutdown` resolves. Accept errors (such as running out of file
/// descriptors) are logged and retried after 50 ms.
pub async fn next_connection<F>(
    listener: &TcpListener,
    shutdown: &mut F,
) -> Option<(TcpStream, SocketAddr)>
where
    F: Future<Output = ()> + Unpin,
{
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, remote)) => {
                    let _ = tcp.set_nodelay(true);
                    return Some((tcp, remote));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = &mut *shutdown => return None,
        }
    }
}

/// The server side of the TLS handshake on an accepted connection, bounded
/// by [`TLS_HANDSHAKE_TIMEOUT`]; `None` (logged at debug for a failed
/// handshake) when it does not complete.
pub async fn tls_handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    remote: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(t)) => Some(t),
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepts_until_shutdown() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut shutdown = Box::pin(async move {
            let _ = rx.await;
        });
        let _c = TcpStream::connect(addr).await.unwrap();
        let (tcp, _) = next_connection(&l, &mut shutdown).await.unwrap();
        assert!(tcp.nodelay().unwrap());
        tx.send(()).unwrap();
        assert!(next_connection(&l, &mut shutdown).await.is_none());
    }

    #[tokio::test]
    async fn failed_handshake_is_none() {
        use tokio::io::AsyncWriteExt;
        let (ca, ca_key) = crate::certs::generate_ca("ca").unwrap();
        let (crt, key) =
            crate::certs::generate_serving_cert(&ca, &ca_key, "srv", &["srv".into()], &[]).unwrap();
        let cfg = crate::tls::server_config_from(
            crate::tls::parse_certs(crt.as_bytes()).unwrap(),
            crate::tls::parse_key(key.as_bytes()).unwrap(),
            None,
        )
        .unwrap();
        let acceptor = TlsAcceptor::from(std::sync::Arc::new(cfg));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let (tcp, remote) = l.accept().await.unwrap();
        assert!(tls_handshake(&acceptor, tcp, remote).await.is_none());
    }
}
