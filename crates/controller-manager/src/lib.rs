//! kube-controller-manager: the control loops that make desired state real.
//!
//! * [`options`]: the upstream flags;
//! * [`informers`]: shared informers (one watch per resource per process);
//! * [`workqueue`]: client-go style work queues and workers;
//! * [`controllers`]: the controllers and their registry
//!   ([`controllers::all`]); each is a [`ControllerDescriptor`] whose start
//!   function gets a [`ControllerContext`];
//! * [`run`]: the daemon (secure health/metrics serving, leader election,
//!   then every enabled controller).

pub mod controllers;
pub mod discovery;
pub mod informers;
pub mod metrics;
pub mod options;
pub mod workqueue;

use std::sync::Arc;

use anyhow::{bail, Result};
use client_base::events::Recorder;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::informers::InformerFactory;
use crate::options::Options;

/// What every controller gets.
#[derive(Clone)]
pub struct ControllerContext {
    /// The API client.
    pub client: kube::Client,
    /// The shared informers: `ctx.informers.get::<Pod>()`.
    pub informers: InformerFactory,
    /// The command-line options (concurrency, CIDRs, grace periods...).
    pub options: Arc<Options>,
    /// Cancelled when the controller must stop (leadership lost, shutdown).
    pub stop: CancellationToken,
    /// The cluster CA bundle (PEM): --root-ca-file, else the kubeconfig's CA.
    pub root_ca: Option<Arc<String>>,
    /// The metrics registry served on /metrics.
    pub metrics: prometheus::Registry,
}

impl ControllerContext {
    /// An event recorder whose source component is `component` (upstream
    /// names like "replicaset-controller", "deployment-controller").
    pub fn recorder(&self, component: &str) -> Recorder {
        Recorder::start(self.client.clone(), component.to_string(), None)
    }
}

/// A controller's start function: runs the controller until its context's
/// stop token fires (returning earlier is allowed; an error is logged).
/// Generic over the context so cloud-controller-manager registers its
/// controllers the same way.
pub type StartFn<C = ControllerContext> = fn(C) -> BoxFuture<'static, Result<()>>;

/// A registered controller.
pub struct ControllerDescriptor<C = ControllerContext> {
    /// The canonical upstream name, e.g. "replicaset-controller".
    pub name: &'static str,
    /// Other names accepted by --controllers, e.g. "replicaset".
    pub aliases: &'static [&'static str],
    /// Only started when named explicitly in --controllers.
    pub disabled_by_default: bool,
    pub start: StartFn<C>,
}

impl<C> Clone for ControllerDescriptor<C> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<C> Copy for ControllerDescriptor<C> {}

impl<C> ControllerDescriptor<C> {
    pub const fn new(
        name: &'static str,
        aliases: &'static [&'static str],
        start: StartFn<C>,
    ) -> Self {
        ControllerDescriptor {
            name,
            aliases,
            disabled_by_default: false,
            start,
        }
    }

    pub const fn disabled_by_default(mut self) -> Self {
        self.disabled_by_default = true;
        self
    }
}

/// The controllers --controllers enables (upstream semantics: `*` = every
/// controller on by default, `foo` = enable foo, `-foo` = disable foo; names
/// and aliases both accepted; unknown names are an error).
pub fn enabled_controllers<C>(
    all: &[ControllerDescriptor<C>],
    flags: &[String],
) -> Result<Vec<ControllerDescriptor<C>>> {
    select_controllers(all, flags, controllers::NOT_IMPLEMENTED)
}

/// [`enabled_controllers`] with the names that are upstream's but not
/// implemented here (accepted with a warning).
pub fn select_controllers<C>(
    all: &[ControllerDescriptor<C>],
    flags: &[String],
    not_implemented: &[&str],
) -> Result<Vec<ControllerDescriptor<C>>> {
    let canonical = |n: &str| -> Option<&'static str> {
        all.iter()
            .find(|d| d.name == n || d.aliases.contains(&n))
            .map(|d| d.name)
    };
    let mut enabled = Vec::new();
    let mut disabled = Vec::new();
    let mut star = false;
    for f in flags {
        let f = f.trim();
        if f == "*" {
            star = true;
            continue;
        }
        let (neg, n) = match f.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, f),
        };
        let Some(c) = canonical(n) else {
            if not_implemented.contains(&n) {
                tracing::warn!(
                    "controller {n:?} is not implemented by this controller-manager; ignoring"
                );
                continue;
            }
            bail!("{n:?} is not in the list of known controllers");
        };
        if neg {
            disabled.push(c);
        } else {
            enabled.push(c);
        }
    }
    Ok(all
        .iter()
        .filter(|d| {
            if enabled.contains(&d.name) {
                return true;
            }
            if disabled.contains(&d.name) {
                return false;
            }
            star && !d.disabled_by_default
        })
        .copied()
        .collect())
}

/// Runs the controller-manager until SIGTERM/SIGINT (Ok) or until the
/// leader lease is lost (Err, like upstream's exit).
pub async fn run(opts: Options) -> Result<()> {
    let stop = CancellationToken::new();
    component_base::signals::cancel_on_signal(&stop);
    run_until(opts, stop).await
}

/// Like [`run`], stopping when `stop` fires (tests run it in-process).
pub async fn run_until(opts: Options, stop: CancellationToken) -> Result<()> {
    let all = controllers::all();
    let mut enabled = enabled_controllers(&all, &opts.controllers)?;
    if !opts.enable_garbage_collector {
        enabled.retain(|d| d.name != controllers::GARBAGE_COLLECTOR);
    }
    let mut config = client_base::client::load_config(opts.kubeconfig.as_deref()).await?;
    if let Some(master) = opts.master.as_deref().filter(|m| !m.is_empty()) {
        config.cluster_url = master
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid --master {master:?}: {e}"))?;
    }
    let mut root_ca = client_base::client::ca_bundle_pem(&config);
    if let Some(p) = &opts.root_ca_file {
        root_ca = Some(
            std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("reading --root-ca-file {}: {e}", p.display()))?,
        );
    }
    let client = kube::Client::try_from(config)?;
    let metrics = metrics::registry().clone();
    let server = client_base::serving::start_secure_serving(
        &opts.secure_serving,
        options::DEFAULT_SECURE_PORT,
        "kube-controller-manager",
        metrics.clone(),
        vec![(
            "leaderElection".to_string(),
            client_base::leader::health_check(std::time::Duration::from_secs(20)),
        )],
    )
    .await?;
    let opts = Arc::new(opts);
    let ctx_client = client.clone();
    let res = client_base::leader::run(
        client,
        &opts.leader_election.clone(),
        "kube-controller-manager",
        stop.clone(),
        move |token| {
            let ctx = ControllerContext {
                informers: InformerFactory::new(ctx_client.clone(), token.clone()),
                client: ctx_client,
                options: opts,
                stop: token,
                root_ca: root_ca.map(Arc::new),
                metrics,
            };
            async move { start_controllers(ctx, enabled).await }
        },
    )
    .await;
    if let Some((_, task)) = server {
        task.abort();
    }
    res
}

async fn start_controllers(
    ctx: ControllerContext,
    enabled: Vec<ControllerDescriptor>,
) -> Result<()> {
    let stop = ctx.stop.clone();
    run_controllers(ctx, &stop, enabled).await
}

/// Start every controller in `enabled` with a clone of `ctx`, wait for
/// `stop`, then give them 5 s to finish.
pub async fn run_controllers<C: Clone + Send + 'static>(
    ctx: C,
    stop: &CancellationToken,
    enabled: Vec<ControllerDescriptor<C>>,
) -> Result<()> {
    let mut tasks = Vec::new();
    for d in enabled {
        tracing::info!(controller = d.name, "Starting controller");
        let fut = (d.start)(ctx.clone());
        tasks.push(tokio::spawn(async move {
            match fut.await {
                Ok(()) => tracing::debug!(controller = d.name, "controller stopped"),
                Err(e) => tracing::error!(controller = d.name, "controller failed: {e:#}"),
            }
        }));
    }
    stop.cancelled().await;
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        futures::future::join_all(tasks),
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: Vec<ControllerDescriptor>) -> Vec<&'static str> {
        v.into_iter().map(|d| d.name).collect()
    }

    #[test]
    fn controllers_flag() {
        let all = controllers::all();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let every = names(enabled_controllers(&all, &s(&["*"])).unwrap());
        assert!(every.contains(&"namespace-controller"));
        let no_ns = names(enabled_controllers(&all, &s(&["*", "-namespace"])).unwrap());
        assert!(!no_ns.contains(&"namespace-controller"));
        assert!(no_ns.contains(&"garbage-collector-controller"));
        let only = names(enabled_controllers(&all, &s(&["serviceaccount"])).unwrap());
        assert_eq!(only, vec!["serviceaccount-controller"]);
        assert!(enabled_controllers(&all, &s(&["nope"])).is_err());
        // kubeadm's command line: known upstream names are accepted.
        let kubeadm = names(
            enabled_controllers(&all, &s(&["*", "bootstrapsigner", "tokencleaner"])).unwrap(),
        );
        assert_eq!(kubeadm, every);
        // Canonical names work too, and `-x` wins over `*`.
        let no_gc =
            names(enabled_controllers(&all, &s(&["-garbage-collector-controller", "*"])).unwrap());
        assert!(!no_gc.contains(&"garbage-collector-controller"));
    }
}
