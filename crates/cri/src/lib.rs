//! CRI `runtime.v1` gRPC client, generated from our own
//! `proto/runtime/v1/api.proto` (wire-compatible with the Kubernetes CRI),
//! plus a connector for the runtime's unix socket.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use cri::runtime::v1::{runtime_service_client::RuntimeServiceClient, VersionRequest};
//! let channel = cri::connect("unix:///run/containerd/containerd.sock").await?;
//! let mut rt = RuntimeServiceClient::new(channel);
//! let v = rt.version(VersionRequest { version: "v1".into() }).await?.into_inner();
//! println!("{} {}", v.runtime_name, v.runtime_version);
//! # Ok(()) }
//! ```

use std::path::PathBuf;

use anyhow::Context as _;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

/// Generated messages and clients.
pub mod runtime {
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("runtime.v1");
    }
}

/// The socket path of a CRI endpoint: `unix:///path`, `unix:/path` or a plain path.
pub fn socket_path(endpoint: &str) -> anyhow::Result<PathBuf> {
    let path = if let Some(rest) = endpoint.strip_prefix("unix://") {
        rest
    } else if let Some(rest) = endpoint.strip_prefix("unix:") {
        rest
    } else if endpoint.contains("://") {
        anyhow::bail!("unsupported CRI endpoint {endpoint:?}: only unix sockets are supported");
    } else {
        endpoint
    };
    if path.is_empty() {
        anyhow::bail!("empty CRI endpoint");
    }
    Ok(PathBuf::from(path))
}

/// Connects a gRPC channel to the CRI runtime listening on a unix socket.
/// The channel reconnects by itself when the runtime restarts.
pub async fn connect(endpoint: &str) -> anyhow::Result<Channel> {
    let path = socket_path(endpoint)?;
    // The URI is only used for the :authority header; the connector ignores it.
    let channel = Endpoint::try_from("http://localhost")?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(&path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .with_context(|| format!("connecting to CRI runtime at {endpoint}"))?;
    Ok(channel)
}

/// Like [`connect`] but returns at once; the connection is made on first use
/// (and remade after failures), so a runtime that is not up yet is not an error.
pub fn connect_lazy(endpoint: &str) -> anyhow::Result<Channel> {
    let path = socket_path(endpoint)?;
    let channel = Endpoint::try_from("http://localhost")?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(&path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }));
    Ok(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            socket_path("unix:///run/c.sock").unwrap(),
            PathBuf::from("/run/c.sock")
        );
        assert_eq!(
            socket_path("unix:/run/c.sock").unwrap(),
            PathBuf::from("/run/c.sock")
        );
        assert_eq!(
            socket_path("/run/c.sock").unwrap(),
            PathBuf::from("/run/c.sock")
        );
        assert!(socket_path("tcp://1.2.3.4:5").is_err());
        assert!(socket_path("unix://").is_err());
    }
}
