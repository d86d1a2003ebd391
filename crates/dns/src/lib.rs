//! cluster-dns: the cluster DNS server for Services and pods.
//!
//! One kube-rs watch each on Services and EndpointSlices feeds reflector
//! stores; every change rebuilds an immutable [`records::Snapshot`] of the
//! cluster zone that the UDP/TCP front end ([`server`]) answers from.
//! Names outside the cluster domain (and reverse lookups of addresses the
//! cluster does not know) go to the nameservers of `--upstream-resolv-conf`
//! ([`forward`]). Health (/health), readiness (/ready) and Prometheus
//! metrics (/metrics) are served on CoreDNS's ports 8080, 8181 and 9153.

pub mod forward;
pub mod metrics;
pub mod options;
pub mod records;
pub mod server;
pub mod serving;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::Api;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::forward::Forwarder;
use crate::metrics::Metrics;
use crate::options::Options;
use crate::records::Snapshot;
use crate::server::Handler;

/// How long serving waits for the first list of Services and
/// EndpointSlices before answering from what it has.
const INITIAL_SYNC_WAIT: Duration = Duration::from_secs(5);

/// A started server (see [`start`]).
pub struct Running {
    /// Where DNS is served (the same port for UDP and TCP).
    pub dns_addr: SocketAddr,
    pub health_addr: SocketAddr,
    pub ready_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub handler: Arc<Handler>,
    pub ready: Arc<AtomicBool>,
}

/// Run until a shutdown signal.
pub async fn run(opts: Options) -> Result<()> {
    let stop = CancellationToken::new();
    component_base::signals::cancel_on_signal(&stop);
    run_until(opts, stop).await
}

/// Run until `stop` is cancelled.
pub async fn run_until(opts: Options, stop: CancellationToken) -> Result<()> {
    let running = start(opts, stop.clone()).await?;
    tracing::info!(addr = %running.dns_addr, "serving DNS (UDP and TCP)");
    stop.cancelled().await;
    Ok(())
}

/// Bind UDP and TCP on the same port (a free one when `port` is 0).
async fn bind_dns(addr: SocketAddr) -> Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        let udp = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding DNS (UDP) to {addr}"))?;
        let tcp = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding DNS (TCP) to {addr}"))?;
        return Ok((udp, tcp));
    }
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding DNS (UDP) to {addr}"))?;
        let local = udp.local_addr()?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::anyhow!(
        "no free port for both UDP and TCP on {}: {:?}",
        addr.ip(),
        last
    ))
}

fn unix_serial() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1)
}

/// Start everything in the background; returns once DNS is being served.
pub async fn start(opts: Options, stop: CancellationToken) -> Result<Running> {
    let zone = opts
        .cluster_domain
        .trim_end_matches('.')
        .to_ascii_lowercase();
    anyhow::ensure!(
        !zone.is_empty() && hickory_proto::rr::Name::from_ascii(format!("{zone}.")).is_ok(),
        "invalid --cluster-domain {:?}",
        opts.cluster_domain
    );
    let metrics = Arc::new(Metrics::new());
    let (udp, tcp) = bind_dns(SocketAddr::new(opts.dns_bind_address, opts.dns_port)).await?;
    let dns_addr = udp.local_addr()?;

    let upstreams = match forward::load_upstreams(&opts.upstream_resolv_conf, &[dns_addr]) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!("{e:#}; names outside {zone} will get SERVFAIL");
            vec![]
        }
    };
    tracing::info!(?upstreams, "upstream nameservers");
    let forwarder = Forwarder::new(
        upstreams,
        Duration::from_millis(opts.upstream_timeout_ms.max(1)),
        metrics.clone(),
    );
    let server_label = format!("dns://:{}", dns_addr.port());
    let handler = Arc::new(Handler::new(
        Snapshot::empty(&zone, opts.ttl),
        forwarder,
        metrics.clone(),
        server_label,
    ));

    // The API: one watch per resource, a snapshot rebuilt on changes.
    let client = client_base::client::kube_client(opts.kubeconfig.as_deref()).await?;
    let (svc_store, svc_writer) = reflector::store::<Service>();
    let (eps_store, eps_writer) = reflector::store::<EndpointSlice>();
    let changed = Arc::new(Notify::new());
    client_base::watch::spawn_notifying(
        Api::<Service>::all(client.clone()),
        svc_writer,
        changed.clone(),
    );
    client_base::watch::spawn_notifying(
        Api::<EndpointSlice>::all(client.clone()),
        eps_writer,
        changed.clone(),
    );
    let ready = Arc::new(AtomicBool::new(false));
    {
        let handler = handler.clone();
        let ready = ready.clone();
        let stop = stop.clone();
        let (svc_store, eps_store) = (svc_store.clone(), eps_store.clone());
        let zone = zone.clone();
        let ttl = opts.ttl;
        tokio::spawn(async move {
            let synced = async {
                let _ = svc_store.wait_until_ready().await;
                let _ = eps_store.wait_until_ready().await;
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = synced => {}
            }
            rebuild(&handler, &zone, ttl, &svc_store, &eps_store);
            ready.store(true, Ordering::SeqCst);
            tracing::info!("initial sync of Services and EndpointSlices done");
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = changed.notified() => {}
                }
                // Coalesce bursts of events into one rebuild.
                tokio::time::sleep(Duration::from_millis(20)).await;
                rebuild(&handler, &zone, ttl, &svc_store, &eps_store);
            }
        });
    }

    // Health, readiness, metrics.
    let health_addr = serving::bind(
        SocketAddr::new(opts.http_bind_address, opts.health_port),
        Arc::new(|path: &str| match path {
            "/health" | "/healthz" | "/livez" => Some((
                http::StatusCode::OK,
                "text/plain; charset=utf-8",
                "OK".into(),
            )),
            _ => None,
        }),
        stop.clone(),
    )
    .await?;
    let r = ready.clone();
    let ready_addr = serving::bind(
        SocketAddr::new(opts.http_bind_address, opts.ready_port),
        Arc::new(move |path: &str| match path {
            "/ready" | "/readyz" => Some(if r.load(Ordering::SeqCst) {
                (
                    http::StatusCode::OK,
                    "text/plain; charset=utf-8",
                    "OK".into(),
                )
            } else {
                (
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    "kubernetes\n".into(),
                )
            }),
            _ => None,
        }),
        stop.clone(),
    )
    .await?;
    let registry = metrics.registry.clone();
    let metrics_addr = serving::bind(
        SocketAddr::new(opts.http_bind_address, opts.metrics_port),
        Arc::new(move |path: &str| match path {
            "/metrics" => {
                let encoder = prometheus::TextEncoder::new();
                Some(match encoder.encode_to_string(&registry.gather()) {
                    Ok(s) => (
                        http::StatusCode::OK,
                        "text/plain; version=0.0.4; charset=utf-8",
                        s,
                    ),
                    Err(e) => (
                        http::StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain; charset=utf-8",
                        format!("{e}\n"),
                    ),
                })
            }
            _ => None,
        }),
        stop.clone(),
    )
    .await?;

    // Give the watches a moment to list before answering, so the first
    // queries do not see an empty zone.
    let deadline = tokio::time::Instant::now() + INITIAL_SYNC_WAIT;
    while !ready.load(Ordering::SeqCst) && tokio::time::Instant::now() < deadline {
        if stop.is_cancelled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !ready.load(Ordering::SeqCst) {
        tracing::warn!("Services and EndpointSlices not synced yet; serving anyway");
    }
    tokio::spawn(server::serve_udp(
        Arc::new(udp),
        handler.clone(),
        stop.clone(),
    ));
    tokio::spawn(server::serve_tcp(tcp, handler.clone(), stop.clone()));
    // The loop probe: if it comes back to us, forwarding is switched off.
    let h = handler.clone();
    tokio::spawn(async move { h.forwarder.send_probe().await });

    Ok(Running {
        dns_addr,
        health_addr,
        ready_addr,
        metrics_addr,
        handler,
        ready,
    })
}

fn rebuild(
    handler: &Handler,
    zone: &str,
    ttl: u32,
    svcs: &Store<Service>,
    slices: &Store<EndpointSlice>,
) {
    let snap = Snapshot::build(zone, ttl, unix_serial(), &svcs.state(), &slices.state());
    handler.set_snapshot(snap);
}
