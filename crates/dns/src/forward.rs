//! Forwarding names outside the cluster domain to the upstream resolvers of
//! a resolv.conf: UDP first, TCP when the answer is truncated, the next
//! upstream on timeouts and errors, SERVFAIL (decided by the caller) when
//! none answers.
//!
//! Loops are avoided three ways: upstreams that are this server's own
//! listening address are dropped; a query that comes back to us with the id
//! and question of one we are forwarding right now is refused (a transparent
//! relay back to us); and, as CoreDNS's loop plugin does, a probe for a
//! random name is sent upstream at start: if it arrives back here, the
//! upstreams lead to ourselves and forwarding is switched off (SERVFAIL)
//! instead of bouncing queries around.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hickory_proto::op::{Message, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::metrics::Metrics;

/// The nameservers of a resolv.conf, in order. `nameserver IP` uses port
/// 53; `nameserver IP:PORT` / `nameserver [IPv6]:PORT` are accepted too.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next() else { continue };
        // A zone index (fe80::1%eth0) is not supported by SocketAddr parsing
        // of plain addresses; drop it.
        let parsed = if let Ok(sa) = addr.parse::<SocketAddr>() {
            Some(sa)
        } else {
            addr.split('%')
                .next()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        };
        if let Some(sa) = parsed {
            if !out.contains(&sa) {
                out.push(sa);
            }
        }
    }
    out
}

/// Whether sending to `upstream` would reach this server listening on
/// `local`.
pub fn is_self(upstream: &SocketAddr, local: &SocketAddr) -> bool {
    if upstream.port() != local.port() {
        return false;
    }
    let up = upstream.ip();
    let lo = local.ip();
    if up == lo {
        return true;
    }
    if lo.is_unspecified() {
        // Bound to every address: loopback and unspecified targets are us;
        // so are the host's own addresses, which we cannot list cheaply
        // here, and are left to the runtime loop check.
        return up.is_loopback()
            || up.is_unspecified()
            || matches!((lo, up), (IpAddr::V6(_), IpAddr::V4(v4)) if v4.is_loopback());
    }
    false
}

/// Read the upstreams of `path`, minus this server's own addresses.
pub fn load_upstreams(path: &Path, local: &[SocketAddr]) -> Result<Vec<SocketAddr>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading upstream resolv.conf {}", path.display()))?;
    let all = parse_resolv_conf(&text);
    let (ours, upstreams): (Vec<SocketAddr>, Vec<SocketAddr>) = all
        .into_iter()
        .partition(|u| local.iter().any(|l| is_self(u, l)));
    for u in ours {
        tracing::warn!(upstream = %u, "not forwarding to an upstream that is this server (forwarding loop)");
    }
    Ok(upstreams)
}

pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    /// (id, lowercase question name, type) of queries in flight upstream.
    inflight: Mutex<HashSet<(u16, String, u16)>>,
    counter: AtomicU64,
    seed: std::collections::hash_map::RandomState,
    metrics: Arc<Metrics>,
    /// The random name of the loop probe (lowercase, fully qualified).
    probe: String,
    /// Set once the probe came back: forwarding is off.
    looped: AtomicBool,
}

struct InflightGuard<'a> {
    fwd: &'a Forwarder,
    key: (u16, String, u16),
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.fwd.inflight.lock() {
            set.remove(&self.key);
        }
    }
}

/// Upper bound of a DNS message over TCP.
const MAX_TCP: usize = 65535;

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration, metrics: Arc<Metrics>) -> Forwarder {
        let mut f = Forwarder {
            upstreams,
            timeout,
            inflight: Mutex::new(HashSet::new()),
            counter: AtomicU64::new(0),
            seed: std::collections::hash_map::RandomState::new(),
            metrics,
            probe: String::new(),
            looped: AtomicBool::new(false),
        };
        f.probe = format!(
            "{:016x}.{:016x}.cluster-dns-loop-probe.",
            f.random_u64(),
            f.random_u64()
        );
        f
    }

    /// The loop probe's name.
    pub fn probe_name(&self) -> &str {
        &self.probe
    }

    /// Whether the loop probe came back to us (forwarding is then off).
    pub fn loop_detected(&self) -> bool {
        self.looped.load(Ordering::SeqCst)
    }

    /// Called when a query for `qname` (lowercase, fully qualified) arrives:
    /// true when it is our own loop probe, which switches forwarding off.
    pub fn check_probe(&self, qname: &str) -> bool {
        if qname != self.probe {
            return false;
        }
        if !self.looped.swap(true, Ordering::SeqCst) {
            tracing::error!(
                upstreams = ?self.upstreams,
                "forwarding loop detected: the upstream nameservers send our queries back to us; \
                 names outside the cluster domain will get SERVFAIL (fix --upstream-resolv-conf)"
            );
        }
        true
    }

    /// Send the loop probe upstream (once, at start).
    pub async fn send_probe(&self) {
        if self.upstreams.is_empty() {
            return;
        }
        let mut q = Message::query();
        q.metadata.recursion_desired = true;
        let Ok(name) = hickory_proto::rr::Name::from_ascii(&self.probe) else {
            return;
        };
        q.add_query(hickory_proto::op::Query::query(
            name,
            hickory_proto::rr::RecordType::HINFO,
        ));
        if let Ok(bytes) = q.to_vec() {
            let _ = self
                .forward(
                    &bytes,
                    &self.probe,
                    u16::from(hickory_proto::rr::RecordType::HINFO),
                )
                .await;
        }
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Whether a query with this id and question is one we sent upstream
    /// and that came back to us.
    pub fn is_looping(&self, id: u16, qname: &str, qtype: u16) -> bool {
        self.inflight
            .lock()
            .map(|s| s.contains(&(id, qname.to_string(), qtype)))
            .unwrap_or(false)
    }

    fn random_id(&self) -> u16 {
        self.random_u64() as u16
    }

    fn random_u64(&self) -> u64 {
        let mut h = self.seed.build_hasher();
        h.write_u64(self.counter.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        h.finish()
    }

    /// Send the wire-format `query` (its question `qname`/`qtype`) upstream
    /// and return the wire-format response with the query's original id.
    pub async fn forward(&self, query: &[u8], qname: &str, qtype: u16) -> Result<Vec<u8>> {
        if query.len() < 12 {
            bail!("short query");
        }
        if self.upstreams.is_empty() {
            bail!("no upstream nameservers");
        }
        if self.loop_detected() {
            bail!("forwarding is off: the upstreams loop back to this server");
        }
        let orig_id = u16::from_be_bytes([query[0], query[1]]);
        let mut last_err = anyhow!("no upstream answered");
        for upstream in &self.upstreams {
            let id = self.random_id();
            let key = (id, qname.to_ascii_lowercase(), qtype);
            let inserted = self
                .inflight
                .lock()
                .map(|mut s| s.insert(key.clone()))
                .unwrap_or(false);
            let _guard = inserted.then(|| InflightGuard { fwd: self, key });
            let mut out = query.to_vec();
            out[..2].copy_from_slice(&id.to_be_bytes());
            let to = upstream.to_string();
            self.metrics
                .forward_requests
                .with_label_values(&[&to])
                .inc();
            match self.exchange(*upstream, &out, id).await {
                Ok(mut resp) => {
                    let rcode = Message::from_vec(&resp)
                        .map(|m| m.metadata.response_code.to_str().to_string())
                        .unwrap_or_else(|_| "FORMERR".into());
                    self.metrics
                        .forward_responses
                        .with_label_values(&[&to, &rcode])
                        .inc();
                    resp[..2].copy_from_slice(&orig_id.to_be_bytes());
                    return Ok(resp);
                }
                Err(e) => {
                    tracing::debug!(upstream = %upstream, error = %e, "upstream failed");
                    last_err = e;
                }
            }
        }
        Err(last_err)
    }

    async fn exchange(&self, upstream: SocketAddr, query: &[u8], id: u16) -> Result<Vec<u8>> {
        let resp = tokio::time::timeout(self.timeout, udp_exchange(upstream, query, id))
            .await
            .map_err(|_| anyhow!("timeout after {:?}", self.timeout))??;
        // TC bit: retry over TCP.
        if resp.len() >= 3 && resp[2] & 0x02 != 0 {
            return tokio::time::timeout(self.timeout * 2, tcp_exchange(upstream, query, id))
                .await
                .map_err(|_| anyhow!("TCP timeout"))?;
        }
        Ok(resp)
    }
}

fn matches_query(resp: &[u8], query: &[u8], id: u16) -> bool {
    if resp.len() < 12 || u16::from_be_bytes([resp[0], resp[1]]) != id {
        return false;
    }
    // Must be a response to the same question.
    let (Ok(r), Ok(q)) = (Message::from_vec(resp), Message::from_vec(query)) else {
        // An unparseable answer with the right id: still hand it back so
        // the client sees what the upstream said (FORMERR and the like).
        return resp[2] & 0x80 != 0;
    };
    if r.metadata.message_type != MessageType::Response {
        return false;
    }
    match (r.queries.first(), q.queries.first()) {
        (Some(rq), Some(qq)) => {
            rq.query_type == qq.query_type && rq.name.to_lowercase() == qq.name.to_lowercase()
        }
        (None, _) => true,
        _ => false,
    }
}

async fn udp_exchange(upstream: SocketAddr, query: &[u8], id: u16) -> Result<Vec<u8>> {
    let bind: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(upstream).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; MAX_TCP];
    loop {
        let n = sock.recv(&mut buf).await?;
        if matches_query(&buf[..n], query, id) {
            return Ok(buf[..n].to_vec());
        }
    }
}

async fn tcp_exchange(upstream: SocketAddr, query: &[u8], id: u16) -> Result<Vec<u8>> {
    let mut s = TcpStream::connect(upstream).await?;
    let len = u16::try_from(query.len()).context("query too long")?;
    let mut out = Vec::with_capacity(query.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(query);
    s.write_all(&out).await?;
    loop {
        let n = s.read_u16().await? as usize;
        let mut buf = vec![0u8; n];
        s.read_exact(&mut buf).await?;
        if matches_query(&buf, query, id) {
            return Ok(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let text = "# comment\nsearch a b\nnameserver 10.0.0.1\nnameserver  127.0.0.2:5353 # x\n\
                    nameserver fe80::1%eth0\nnameserver [::1]:54\nnameserver bogus\noptions ndots:5\nnameserver 10.0.0.1\n";
        let got = parse_resolv_conf(text);
        assert_eq!(
            got,
            vec![
                "10.0.0.1:53".parse().unwrap(),
                "127.0.0.2:5353".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap(),
                "[::1]:54".parse().unwrap(),
            ]
        );
    }

    #[test]
    fn self_detection() {
        let any: SocketAddr = "0.0.0.0:53".parse().unwrap();
        assert!(is_self(&"127.0.0.1:53".parse().unwrap(), &any));
        assert!(is_self(&"127.0.0.53:53".parse().unwrap(), &any));
        assert!(!is_self(&"127.0.0.53:5353".parse().unwrap(), &any));
        assert!(!is_self(&"10.0.0.1:53".parse().unwrap(), &any));
        let lo: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        assert!(is_self(&"127.0.0.1:5300".parse().unwrap(), &lo));
        assert!(!is_self(&"127.0.0.2:5300".parse().unwrap(), &lo));
    }
}
