//! Minimal HTTPS requests to the cluster's apiserver on 127.0.0.1 with the
//! admin credentials: reading a Node and patching its labels. (One request
//! per connection, HTTP/1.1, `Connection: close`.)

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status code and (de-chunked) body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Send one request to `https://127.0.0.1:<port><path>`.
pub async fn request(
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    timeout: Duration,
) -> Result<Response> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let fut = async {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let name = ServerName::try_from("127.0.0.1").map_err(|e| anyhow!("{e}"))?;
        let mut stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {addr}"))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ferrokube\r\nAccept: application/json\r\nConnection: close\r\n"
        );
        if let Some((ctype, data)) = body {
            req.push_str(&format!(
                "Content-Type: {ctype}\r\nContent-Length: {}\r\n",
                data.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if let Some((_, data)) = body {
            bytes.extend_from_slice(data);
        }
        stream.write_all(&bytes).await?;
        stream.flush().await?;
        let mut raw = Vec::new();
        // A server closing without close_notify still gave us the response.
        match stream.read_to_end(&mut raw).await {
            Ok(_) => {}
            Err(e) if !raw.is_empty() => tracing::debug!("reading response: {e}"),
            Err(e) => return Err(e).context("reading response"),
        }
        parse_response(&raw)
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| anyhow!("{method} {path} timed out after {timeout:?}"))?
}

/// Parse an HTTP/1.1 response read until EOF.
pub fn parse_response(raw: &[u8]) -> Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("incomplete HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunked body"))?;
        let size_str = String::from_utf8_lossy(&data[..eol]);
        let size_str = size_str.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|_| anyhow!("bad chunk size {size_str:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

/// Whether Node `node` exists, and whether its Ready condition is True.
pub async fn node_status(
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    node: &str,
) -> Result<Option<bool>> {
    let resp = request(
        port,
        tls,
        "GET",
        &format!("/api/v1/nodes/{node}"),
        None,
        Duration::from_secs(5),
    )
    .await?;
    match resp.status {
        404 => Ok(None),
        200 => {
            let v: serde_json::Value =
                serde_json::from_slice(&resp.body).context("parsing Node")?;
            let ready = v["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            Ok(Some(ready))
        }
        s => bail!(
            "GET node {node}: HTTP {s}: {}",
            String::from_utf8_lossy(&resp.body)
        ),
    }
}

/// Set labels on Node `node` (a JSON merge patch).
pub async fn label_node(
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    node: &str,
    labels: &[(&str, &str)],
) -> Result<()> {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    let patch = serde_json::json!({ "metadata": { "labels": labels } });
    let body = serde_json::to_vec(&patch)?;
    let resp = request(
        port,
        tls,
        "PATCH",
        &format!("/api/v1/nodes/{node}"),
        Some(("application/merge-patch+json", &body)),
        Duration::from_secs(10),
    )
    .await?;
    if resp.status != 200 {
        bail!(
            "labelling node {node}: HTTP {}: {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"abcde"[..]));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }
}
