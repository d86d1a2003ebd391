//! kube-proxy: programs Services into the node's packet filter (nftables).
//!
//! * [`model`]: Services and EndpointSlices → service ports and endpoints;
//! * [`rules`]: the `ip kube-proxy` table upstream's nftables mode builds,
//!   rendered as one atomic `nft -f` transaction (full or partial);
//! * [`nft`]: running `nft` on the node or in a named netns;
//! * [`proxier`]: watches (Services, EndpointSlices, own Node) and the
//!   bounded-frequency sync loop;
//! * [`health`]: `/healthz` `/livez` and the per-Service health-check ports;
//! * [`conntrack`]: stale UDP conntrack entries;
//! * [`metrics`], [`options`].
//!
//! [`run`] is the daemon; [`start`] runs it in-process and returns the bound
//! addresses (tests).

pub mod conntrack;
pub mod hash;
pub mod health;
pub mod metrics;
pub mod model;
pub mod nft;
pub mod options;
pub mod proxier;
pub mod rules;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::options::{Options, Settings};
use crate::rules::Ruleset;

pub use crate::model::{Endpoint, ServiceEndpoints, ServicePort};
pub use crate::nft::apply;
pub use crate::rules::{NodePortAddresses, RuleConfig};

/// Render the complete transaction (recreating the table) for `services`.
pub fn render_ruleset(cfg: &RuleConfig, services: &[ServiceEndpoints]) -> String {
    rules::build(cfg, services).render_recreate()
}

/// Build the ruleset model for `services` (to render partial transactions).
pub fn build_ruleset(cfg: &RuleConfig, services: &[ServiceEndpoints]) -> Ruleset {
    rules::build(cfg, services)
}

/// Run kube-proxy until SIGTERM/SIGINT (rules stay in place).
pub async fn run(opts: Options) -> Result<()> {
    let stop = CancellationToken::new();
    component_base::signals::cancel_on_signal(&stop);
    run_until(opts, stop).await
}

/// Run kube-proxy until `stop` is cancelled.
pub async fn run_until(opts: Options, stop: CancellationToken) -> Result<()> {
    let running = start(opts, stop).await?;
    running.wait().await;
    Ok(())
}

/// A kube-proxy started by [`start`].
pub struct Running {
    pub healthz_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    pub proxier: Option<Arc<proxier::Proxier>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    sync: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Wait until the sync loop ends (after the stop token is cancelled).
    pub async fn wait(mut self) {
        if let Some(s) = self.sync.take() {
            let _ = s.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(s) = self.sync.take() {
            s.abort();
        }
    }
}

async fn client(settings: &Settings) -> Result<kube::Client> {
    let mut config = client_base::client::load_config(settings.kubeconfig.as_deref()).await?;
    if let Some(m) = &settings.master {
        config.cluster_url = m
            .parse()
            .with_context(|| format!("invalid --master {m:?}"))?;
    }
    kube::Client::try_from(config).context("building the API client")
}

/// Start kube-proxy in the background: servers bound, watches and the sync
/// loop running until `stop`. With `--cleanup` it removes the rules and
/// returns a `Running` with nothing to wait for.
pub async fn start(opts: Options, stop: CancellationToken) -> Result<Running> {
    let settings = opts.settings()?;
    if settings.cleanup {
        nft::apply(&rules::render_delete(), settings.netns.as_deref())
            .await
            .context("removing the kube-proxy table")?;
        tracing::info!("removed the {} {} table", rules::FAMILY, rules::TABLE);
        return Ok(Running {
            healthz_addr: None,
            metrics_addr: None,
            proxier: None,
            tasks: Vec::new(),
            sync: None,
        });
    }
    tracing::info!(
        hostname = %settings.hostname,
        cluster_cidr = ?settings.cluster_cidr,
        sync_period = ?settings.sync_period,
        min_sync_period = ?settings.min_sync_period,
        "starting kube-proxy in nftables mode"
    );
    let client = client(&settings).await?;
    let metrics = Arc::new(metrics::Metrics::new());
    let health = health::ProxierHealth::new(settings.sync_period * 2);
    let mut tasks = Vec::new();
    let mut metrics_addr = None;
    if let Some(addr) = settings.metrics_bind_address {
        let (a, t) = component_base::serve::bind_health_metrics(
            addr,
            None,
            metrics.registry.clone(),
            vec![],
        )
        .await?;
        metrics_addr = Some(a);
        tasks.push(t);
    }
    let mut healthz_addr = None;
    if let Some(addr) = settings.healthz_bind_address {
        let (a, t) = health::start_healthz(addr, health.clone(), metrics.clone()).await?;
        healthz_addr = Some(a);
        tasks.push(t);
    }
    let proxier = proxier::Proxier::new(settings, metrics, health);
    tasks.extend(proxier.spawn_watches(client, stop.clone()));
    let sync = tokio::spawn(proxier.clone().sync_loop(stop));
    Ok(Running {
        healthz_addr,
        metrics_addr,
        proxier: Some(proxier),
        tasks,
        sync: Some(sync),
    })
}
