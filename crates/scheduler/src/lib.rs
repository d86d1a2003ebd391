//! kube-scheduler: assigns pending pods to nodes through a plugin
//! framework modelled on upstream's (see `framework`), configured by a
//! KubeSchedulerConfiguration (`config`), with leader election and the
//! secure health/metrics server from `client_base`.

pub mod cache;
pub mod config;
pub mod framework;
pub mod listers;
pub mod metrics;
pub mod options;
pub mod plugins;
pub mod queue;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::config::KubeSchedulerConfiguration;
use crate::options::{Options, DEFAULT_SECURE_PORT};

/// Run kube-scheduler until a shutdown signal (or lost leadership).
pub async fn run(opts: Options) -> Result<()> {
    let stop = CancellationToken::new();
    component_base::signals::cancel_on_signal(&stop);
    run_until(opts, stop).await
}

/// Run kube-scheduler until `stop` is cancelled.
pub async fn run_until(opts: Options, stop: CancellationToken) -> Result<()> {
    let cfg = match &opts.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            KubeSchedulerConfiguration::parse(&text)
                .with_context(|| format!("loading {}", p.display()))?
        }
        None => KubeSchedulerConfiguration::default(),
    };
    let kubeconfig = opts.kubeconfig.clone().or_else(|| {
        cfg.client_connection
            .as_ref()
            .and_then(|c| c.kubeconfig.clone())
            .map(Into::into)
    });
    let client = client_base::client::kube_client(kubeconfig.as_deref()).await?;
    let (listers, writers) = listers::Listers::new();
    let frameworks = cfg.frameworks(&listers)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let _server = client_base::serving::start_secure_serving(
        &opts.secure_serving,
        DEFAULT_SECURE_PORT,
        "kube-scheduler",
        metrics.registry.clone(),
        vec![],
    )
    .await?;
    let recorder =
        client_base::events::Recorder::start(client.clone(), config::DEFAULT_SCHEDULER_NAME, None);
    let backoff = (
        Duration::from_secs(cfg.pod_initial_backoff_seconds.unwrap_or(1)),
        Duration::from_secs(cfg.pod_max_backoff_seconds.unwrap_or(10)),
    );
    let sched = scheduler::Scheduler::new(
        client.clone(),
        frameworks,
        listers,
        recorder,
        metrics,
        backoff,
    );
    client_base::leader::run(
        client,
        &opts.leader_election,
        "kube-scheduler",
        stop,
        move |leading| async move { sched.run(writers, leading).await },
    )
    .await
}
