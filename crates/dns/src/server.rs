//! The DNS front end: UDP and TCP listeners, request parsing, the answer
//! from the zone snapshot or the upstream resolvers, truncation, metrics.
//! Nothing a client sends can make this panic: undecodable messages get a
//! FORMERR (when they have a header) or are dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::forward::Forwarder;
use crate::metrics::Metrics;
use crate::records::{Lookup, Snapshot};

/// The UDP payload we advertise with EDNS.
const EDNS_PAYLOAD: u16 = 1232;
/// Concurrent UDP requests being answered (forwarding takes a while).
const MAX_UDP_INFLIGHT: usize = 1024;
/// Concurrent TCP connections.
const MAX_TCP_CONNS: usize = 256;
/// Idle time after which a TCP connection is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// CNAME hops followed inside the cluster zone.
const MAX_CHASE: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// What answers a request: the current zone snapshot and the forwarder.
pub struct Handler {
    pub snapshot: RwLock<Arc<Snapshot>>,
    pub forwarder: Forwarder,
    pub metrics: Arc<Metrics>,
    /// The `server` label of the metrics (`dns://:53`).
    pub server_label: String,
    /// Whether the snapshot reflects a full list of the API objects; until
    /// then names in the cluster zone get SERVFAIL (clients retry) rather
    /// than a cacheable NXDOMAIN.
    synced: AtomicBool,
}

fn header_only(req: &[u8], rcode: ResponseCode) -> Option<Vec<u8>> {
    if req.len() < 12 || req[2] & 0x80 != 0 {
        return None; // too short to answer, or a response: drop
    }
    let mut out = vec![0u8; 12];
    out[0] = req[0];
    out[1] = req[1];
    // QR=1, opcode copied, RD copied.
    out[2] = 0x80 | (req[2] & 0x78) | (req[2] & 0x01);
    out[3] = 0x80 | (rcode.low() & 0x0f); // RA
    Some(out)
}

fn type_label(t: RecordType) -> String {
    match t {
        RecordType::A
        | RecordType::AAAA
        | RecordType::CNAME
        | RecordType::MX
        | RecordType::NS
        | RecordType::PTR
        | RecordType::SOA
        | RecordType::SRV
        | RecordType::TXT
        | RecordType::ANY
        | RecordType::HTTPS
        | RecordType::SVCB
        | RecordType::CAA => t.to_string(),
        _ => "other".into(),
    }
}

impl Handler {
    pub fn new(
        snapshot: Snapshot,
        forwarder: Forwarder,
        metrics: Arc<Metrics>,
        server_label: String,
    ) -> Handler {
        Handler {
            snapshot: RwLock::new(Arc::new(snapshot)),
            forwarder,
            metrics,
            server_label,
            synced: AtomicBool::new(false),
        }
    }

    /// Replace the zone snapshot (built from synced stores).
    pub fn set_snapshot(&self, snap: Snapshot) {
        match self.snapshot.write() {
            Ok(mut s) => *s = Arc::new(snap),
            Err(p) => *p.into_inner() = Arc::new(snap),
        }
        self.synced.store(true, Ordering::SeqCst);
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Answer one wire-format request; None drops it.
    pub async fn handle(&self, req: &[u8], proto: Proto, peer: SocketAddr) -> Option<Vec<u8>> {
        let start = Instant::now();
        let msg = match Message::from_vec(req) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "malformed DNS message");
                self.metrics
                    .malformed
                    .with_label_values(&[proto.as_str()])
                    .inc();
                return header_only(req, ResponseCode::FormErr);
            }
        };
        if msg.metadata.message_type != MessageType::Query {
            return None;
        }
        let family = if peer.is_ipv6() { "2" } else { "1" };
        let snap = self.snapshot();
        let (zone_label, qtype_label) = match msg.queries.first() {
            Some(q) if snap.in_zone(&q.name) => {
                (format!("{}.", snap.zone()), type_label(q.query_type))
            }
            Some(q) => (".".to_string(), type_label(q.query_type)),
            None => (".".to_string(), "other".to_string()),
        };
        self.metrics
            .requests
            .with_label_values(&[
                &self.server_label,
                &zone_label,
                proto.as_str(),
                family,
                &qtype_label,
            ])
            .inc();
        let (resp, plugin) = self.respond(&snap, req, &msg, proto).await;
        let rcode = Message::from_vec(&resp)
            .map(|m| m.metadata.response_code.to_str().to_string())
            .unwrap_or_else(|_| "SERVFAIL".into());
        self.metrics
            .responses
            .with_label_values(&[&self.server_label, &zone_label, &rcode, plugin])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[&self.server_label, &zone_label, &qtype_label])
            .observe(start.elapsed().as_secs_f64());
        Some(resp)
    }

    fn base_response(&self, req: &Message) -> Message {
        let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.metadata.checking_disabled = req.metadata.checking_disabled;
        resp.metadata.recursion_available = true;
        resp.queries = req.queries.clone();
        if req.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_PAYLOAD);
            resp.edns = Some(edns);
        }
        resp
    }

    fn error(&self, req: &Message, rcode: ResponseCode) -> Vec<u8> {
        let mut resp = self.base_response(req);
        resp.metadata.response_code = rcode;
        encode(&resp, None)
    }

    async fn respond(
        &self,
        snap: &Snapshot,
        raw: &[u8],
        req: &Message,
        proto: Proto,
    ) -> (Vec<u8>, &'static str) {
        // What the client can take over UDP: 512, or its EDNS payload size.
        let limit = match proto {
            Proto::Udp => Some(usize::from(req.max_payload())),
            Proto::Tcp => None,
        };
        if req.metadata.op_code != OpCode::Query {
            return (self.error(req, ResponseCode::NotImp), "");
        }
        if req.queries.len() != 1 {
            return (self.error(req, ResponseCode::FormErr), "");
        }
        if let Some(edns) = &req.edns {
            if edns.version() > 0 {
                // BADVERS is an extended rcode, carried in the OPT record.
                let mut resp = self.base_response(req);
                resp.metadata.response_code = ResponseCode::BADVERS;
                return (encode(&resp, limit), "");
            }
        }
        let q = &req.queries[0];
        let qname_lower = q.name.to_lowercase().to_ascii();
        if self.forwarder.check_probe(&qname_lower) {
            return (self.error(req, ResponseCode::ServFail), "loop");
        }
        if self
            .forwarder
            .is_looping(req.metadata.id, &qname_lower, u16::from(q.query_type))
        {
            tracing::warn!(name = %qname_lower, "forwarding loop detected: the query came back to us");
            return (self.error(req, ResponseCode::ServFail), "loop");
        }
        if q.query_class != DNSClass::IN && q.query_class != DNSClass::ANY {
            if snap.in_zone(&q.name) {
                return (self.error(req, ResponseCode::Refused), "kubernetes");
            }
            return (self.forward_raw(req, raw, limit).await, "forward");
        }
        if matches!(q.query_type, RecordType::AXFR | RecordType::IXFR) {
            return (self.error(req, ResponseCode::Refused), "");
        }
        if !self.synced.load(Ordering::SeqCst) && snap.in_zone(&q.name) {
            return (self.error(req, ResponseCode::ServFail), "kubernetes");
        }
        match snap.lookup(&q.name, q.query_type) {
            Lookup::Forward => (self.forward_raw(req, raw, limit).await, "forward"),
            Lookup::Answer(mut ans) => {
                let mut resp = self.base_response(req);
                resp.metadata.authoritative = true;
                resp.metadata.response_code = ans.rcode;
                resp.answers.append(&mut ans.answers);
                resp.authorities.append(&mut ans.authorities);
                resp.additionals.append(&mut ans.additionals);
                let mut chase = ans.chase.take();
                let mut hops = 0;
                while let Some(target) = chase.take() {
                    hops += 1;
                    if hops > MAX_CHASE {
                        break;
                    }
                    if snap.in_zone(&target) {
                        if let Lookup::Answer(mut more) = snap.lookup(&target, q.query_type) {
                            resp.answers.append(&mut more.answers);
                            chase = more.chase.take();
                        }
                    } else {
                        resp.answers
                            .extend(self.resolve_upstream(&target, q.query_type).await);
                    }
                }
                (encode(&resp, limit), "kubernetes")
            }
        }
    }

    /// Resolve `name`/`qtype` through the upstreams (ExternalName targets).
    async fn resolve_upstream(
        &self,
        name: &Name,
        qtype: RecordType,
    ) -> Vec<hickory_proto::rr::Record> {
        let mut q = Message::query();
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(name.clone(), qtype));
        let Ok(bytes) = q.to_vec() else {
            return vec![];
        };
        match self
            .forwarder
            .forward(&bytes, &name.to_lowercase().to_ascii(), u16::from(qtype))
            .await
        {
            Ok(resp) => match Message::from_vec(&resp) {
                Ok(m) if m.metadata.response_code == ResponseCode::NoError => m.answers,
                _ => vec![],
            },
            Err(_) => vec![],
        }
    }

    async fn forward_raw(&self, req: &Message, raw: &[u8], limit: Option<usize>) -> Vec<u8> {
        let q = &req.queries[0];
        match self
            .forwarder
            .forward(
                raw,
                &q.name.to_lowercase().to_ascii(),
                u16::from(q.query_type),
            )
            .await
        {
            Ok(resp) => match limit {
                Some(max) if resp.len() > max => match Message::from_vec(&resp) {
                    Ok(m) => {
                        let mut t = m.truncate();
                        t.metadata.id = req.metadata.id;
                        encode(&t, None)
                    }
                    Err(_) => self.error(req, ResponseCode::ServFail),
                },
                _ => resp,
            },
            Err(e) => {
                tracing::debug!(name = %q.name, error = %e, "forwarding failed");
                self.error(req, ResponseCode::ServFail)
            }
        }
    }
}

/// Encode `msg`, truncating it (TC, no records) when it exceeds `limit`.
fn encode(msg: &Message, limit: Option<usize>) -> Vec<u8> {
    match msg.to_vec() {
        Ok(bytes) => match limit {
            Some(max) if bytes.len() > max => msg.truncate().to_vec().unwrap_or_default(),
            _ => bytes,
        },
        Err(e) => {
            tracing::warn!(error = %e, "encoding a DNS response");
            let mut fail = Message::response(msg.metadata.id, msg.metadata.op_code);
            fail.metadata.response_code = ResponseCode::ServFail;
            fail.metadata.recursion_desired = msg.metadata.recursion_desired;
            fail.metadata.recursion_available = true;
            fail.queries = msg.queries.clone();
            fail.to_vec().unwrap_or_default()
        }
    }
}

/// Serve UDP on `sock` until `stop`.
pub async fn serve_udp(sock: Arc<UdpSocket>, handler: Arc<Handler>, stop: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_UDP_INFLIGHT));
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok(v) => v,
                Err(e) => {
                    // ICMP errors of earlier sends surface here on Linux.
                    tracing::trace!(error = %e, "udp recv");
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many requests in flight, dropping");
            continue;
        };
        let req = buf[..n].to_vec();
        let sock = sock.clone();
        let handler = handler.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(resp) = handler.handle(&req, Proto::Udp, peer).await {
                if !resp.is_empty() {
                    if let Err(e) = sock.send_to(&resp, peer).await {
                        tracing::debug!(%peer, error = %e, "udp send");
                    }
                }
            }
        });
    }
}

/// Serve TCP on `listener` until `stop`.
pub async fn serve_tcp(listener: TcpListener, handler: Arc<Handler>, stop: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_TCP_CONNS));
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(error = %e, "tcp accept");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many TCP connections, closing");
            continue;
        };
        let handler = handler.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = stop.cancelled() => {}
                r = tcp_conn(stream, peer, handler) => {
                    if let Err(e) = r {
                        tracing::trace!(%peer, error = %e, "tcp connection ended");
                    }
                }
            }
        });
    }
}

async fn tcp_conn(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<Handler>,
) -> std::io::Result<()> {
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(l)) => usize::from(l),
            Ok(Err(_)) | Err(_) => return Ok(()),
        };
        let mut buf = vec![0u8; len];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return Ok(()),
        }
        let Some(resp) = handler.handle(&buf, Proto::Tcp, peer).await else {
            continue;
        };
        let Ok(rlen) = u16::try_from(resp.len()) else {
            continue;
        };
        let mut out = Vec::with_capacity(resp.len() + 2);
        out.extend_from_slice(&rlen.to_be_bytes());
        out.extend_from_slice(&resp);
        stream.write_all(&out).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::Forwarder;

    fn handler() -> Handler {
        let metrics = Arc::new(Metrics::new());
        let h = Handler::new(
            Snapshot::empty("cluster.local", 5),
            Forwarder::new(vec![], Duration::from_millis(10), metrics.clone()),
            metrics,
            "dns://:53".into(),
        );
        h.set_snapshot(Snapshot::empty("cluster.local", 5));
        h
    }

    fn query(name: &str, t: RecordType) -> Message {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:5555".parse().unwrap()
    }

    /// An upstream that relays every query back to our own server (a
    /// resolver whose own upstream is us) is found by the probe.
    #[tokio::test]
    async fn loop_probe() {
        let ours = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let our_addr = ours.local_addr().unwrap();
        let relay = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let relay_addr = relay.local_addr().unwrap();
        tokio::spawn(async move {
            let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut rbuf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = relay.recv_from(&mut buf).await else {
                    return;
                };
                // A resolver rewrites the id.
                buf[0] ^= 0x5a;
                let _ = back.send_to(&buf[..n], our_addr).await;
                if let Ok(Ok(m)) =
                    tokio::time::timeout(Duration::from_secs(1), back.recv(&mut rbuf)).await
                {
                    rbuf[0] ^= 0x5a;
                    let _ = relay.send_to(&rbuf[..m], from).await;
                }
            }
        });
        let metrics = Arc::new(Metrics::new());
        let h = Arc::new(Handler::new(
            Snapshot::empty("cluster.local", 5),
            Forwarder::new(
                vec![relay_addr],
                Duration::from_millis(500),
                metrics.clone(),
            ),
            metrics,
            "dns://:53".into(),
        ));
        h.set_snapshot(Snapshot::empty("cluster.local", 5));
        let stop = CancellationToken::new();
        tokio::spawn(serve_udp(ours, h.clone(), stop.clone()));
        assert!(!h.forwarder.loop_detected());
        h.forwarder.send_probe().await;
        assert!(h.forwarder.loop_detected());
        let q = query("example.com.", RecordType::A);
        let r = h
            .handle(&q.to_vec().unwrap(), Proto::Udp, peer())
            .await
            .unwrap();
        assert_eq!(
            Message::from_vec(&r).unwrap().metadata.response_code,
            ResponseCode::ServFail
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn servfail_until_synced() {
        let metrics = Arc::new(Metrics::new());
        let h = Handler::new(
            Snapshot::empty("cluster.local", 5),
            Forwarder::new(vec![], Duration::from_millis(10), metrics.clone()),
            metrics,
            "dns://:53".into(),
        );
        let q = query("x.default.svc.cluster.local.", RecordType::A);
        let r = h
            .handle(&q.to_vec().unwrap(), Proto::Udp, peer())
            .await
            .unwrap();
        assert_eq!(
            Message::from_vec(&r).unwrap().metadata.response_code,
            ResponseCode::ServFail
        );
        h.set_snapshot(Snapshot::empty("cluster.local", 5));
        let r = h
            .handle(&q.to_vec().unwrap(), Proto::Udp, peer())
            .await
            .unwrap();
        assert_eq!(
            Message::from_vec(&r).unwrap().metadata.response_code,
            ResponseCode::NXDomain
        );
    }

    #[tokio::test]
    async fn responses() {
        let h = handler();
        // In zone: NXDOMAIN, authoritative, SOA, RD copied, RA set.
        let q = query("x.default.svc.cluster.local.", RecordType::A);
        let r = h
            .handle(&q.to_vec().unwrap(), Proto::Udp, peer())
            .await
            .unwrap();
        let r = Message::from_vec(&r).unwrap();
        assert_eq!(r.metadata.id, q.metadata.id);
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert!(r.metadata.authoritative && r.metadata.recursion_desired);
        assert!(r.metadata.recursion_available);
        assert_eq!(r.queries, q.queries);
        assert_eq!(r.authorities.len(), 1);
        // Outside with no upstreams: SERVFAIL.
        let q = query("example.com.", RecordType::A);
        let r = h
            .handle(&q.to_vec().unwrap(), Proto::Tcp, peer())
            .await
            .unwrap();
        let r = Message::from_vec(&r).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
        // EDNS is answered with EDNS; version 1 gets BADVERS.
        let mut q = query("cluster.local.", RecordType::SOA);
        q.set_edns(Edns::new());
        let r = h
            .handle(&q.to_vec().unwrap(), Proto::Udp, peer())
            .await
            .unwrap();
        let r = Message::from_vec(&r).unwrap();
        assert!(r.edns.is_some());
        assert_eq!(r.answers.len(), 1);
        let mut e = Edns::new();
        e.set_version(1);
        q.set_edns(e);
        let r = h
            .handle(&q.to_vec().unwrap(), Proto::Udp, peer())
            .await
            .unwrap();
        let r = Message::from_vec(&r).unwrap();
        // BADVERS and BADSIG share the value 16.
        assert_eq!(r.metadata.response_code.high(), 1);
        assert_eq!(r.metadata.response_code.low(), 0);
        // Responses are dropped; other opcodes are NOTIMP; two questions
        // are FORMERR.
        let mut resp = query("cluster.local.", RecordType::SOA);
        resp.metadata.message_type = MessageType::Response;
        assert!(h
            .handle(&resp.to_vec().unwrap(), Proto::Udp, peer())
            .await
            .is_none());
        let mut n = query("cluster.local.", RecordType::SOA);
        n.metadata.op_code = OpCode::Notify;
        let r = h
            .handle(&n.to_vec().unwrap(), Proto::Udp, peer())
            .await
            .unwrap();
        assert_eq!(
            Message::from_vec(&r).unwrap().metadata.response_code,
            ResponseCode::NotImp
        );
        let mut two = query("cluster.local.", RecordType::SOA);
        two.add_query(Query::query(Name::from_ascii("a.").unwrap(), RecordType::A));
        let r = h
            .handle(&two.to_vec().unwrap(), Proto::Udp, peer())
            .await
            .unwrap();
        assert_eq!(
            Message::from_vec(&r).unwrap().metadata.response_code,
            ResponseCode::FormErr
        );
    }

    #[tokio::test]
    async fn garbage_never_panics() {
        let h = handler();
        let base = query("web.default.svc.cluster.local.", RecordType::A)
            .to_vec()
            .unwrap();
        // A cheap deterministic PRNG (xorshift) mutating a valid query.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..3000 {
            let mut b = base.clone();
            let flips = 1 + (next() % 6) as usize;
            for _ in 0..flips {
                let pos = (next() as usize) % b.len();
                b[pos] = next() as u8;
            }
            if i % 5 == 0 {
                b.truncate((next() as usize) % (b.len() + 1));
            }
            if i % 7 == 0 {
                b.extend((0..(next() % 40)).map(|_| next() as u8));
            }
            let _ = h.handle(&b, Proto::Udp, peer()).await;
        }
        for len in 0..64 {
            let b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = h.handle(&b, Proto::Tcp, peer()).await;
        }
    }
}
