//! cloud-controller-manager: the cloud-specific control loops of upstream's
//! `k8s.io/cloud-provider`, over a [`cloud::CloudProvider`]:
//!
//! * [`options`]: the upstream flags;
//! * [`cloud`]: the provider interface (instances, routes, load balancers, zones);
//! * [`local`]: the `local` provider, where the host is the cloud (nodes are
//!   network namespaces, routes and load balancers are host routes);
//! * [`controllers`]: cloud-node, cloud-node-lifecycle, route (node-route)
//!   and service (service-lb) controllers;
//! * [`run`]: the daemon (secure health/metrics serving on 10258, leader
//!   election on the `cloud-controller-manager` Lease, then the controllers).
//!
//! The informers and work queues are kube-controller-manager's
//! ([`controller_manager::informers`], [`controller_manager::workqueue`]).

pub mod cloud;
pub mod controllers;
pub mod local;
pub mod options;

use std::sync::Arc;

use anyhow::{bail, Result};
use client_base::events::Recorder;
use controller_manager::informers::InformerFactory;
use tokio_util::sync::CancellationToken;

use crate::cloud::CloudProvider;
use crate::options::Options;

/// What every controller gets.
#[derive(Clone)]
pub struct Context {
    pub client: kube::Client,
    pub informers: InformerFactory,
    pub options: Arc<Options>,
    pub cloud: Arc<dyn CloudProvider>,
    /// The cluster name handed to the provider.
    pub cluster_name: String,
    /// Cancelled when the controller must stop.
    pub stop: CancellationToken,
}

impl Context {
    pub fn recorder(&self, component: &str) -> Recorder {
        Recorder::start(self.client.clone(), component.to_string(), None)
    }
}

/// A registered controller (kube-controller-manager's descriptor over this
/// manager's [`Context`]).
pub type ControllerDescriptor = controller_manager::ControllerDescriptor<Context>;

/// The controllers --controllers enables (`*` = all, `foo` = enable,
/// `-foo` = disable; names and aliases accepted; unknown names are an error).
pub fn enabled_controllers(
    all: &[ControllerDescriptor],
    flags: &[String],
) -> Result<Vec<ControllerDescriptor>> {
    controller_manager::select_controllers(all, flags, &[])
}

/// The cloud provider `--cloud-provider` / `--cloud-config` name.
pub fn new_cloud(opts: &Options) -> Result<Arc<dyn CloudProvider>> {
    match opts.cloud_provider.as_str() {
        local::PROVIDER_NAME => Ok(Arc::new(local::LocalCloud::from_file(
            opts.cloud_config.as_deref(),
            &opts.cluster_name,
        )?)),
        "" => bail!("--cloud-provider cannot be empty (supported: \"local\")"),
        other => bail!("cloud provider could not be initialized: unknown cloud provider {other:?} (supported: \"local\")"),
    }
}

/// Runs until SIGTERM/SIGINT (Ok) or until the leader lease is lost (Err).
pub async fn run(opts: Options) -> Result<()> {
    let stop = CancellationToken::new();
    component_base::signals::cancel_on_signal(&stop);
    run_until(opts, stop).await
}

/// Like [`run`] with the given provider (tests, or providers not built in).
pub async fn run_with_cloud(
    opts: Options,
    cloud: Arc<dyn CloudProvider>,
    stop: CancellationToken,
) -> Result<()> {
    let enabled = enabled_controllers(&controllers::all(), &opts.controllers)?;
    let mut config = client_base::client::load_config(opts.kubeconfig.as_deref()).await?;
    if let Some(master) = opts.master.as_deref().filter(|m| !m.is_empty()) {
        config.cluster_url = master
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid --master {master:?}: {e}"))?;
    }
    let client = kube::Client::try_from(config)?;
    let metrics = controller_manager::metrics::registry().clone();
    let server = client_base::serving::start_secure_serving(
        &opts.secure_serving,
        options::DEFAULT_SECURE_PORT,
        "cloud-controller-manager",
        metrics,
        vec![(
            "leaderElection".to_string(),
            client_base::leader::health_check(std::time::Duration::from_secs(20)),
        )],
    )
    .await?;
    let cluster_name = opts.cluster_name.clone();
    let opts = Arc::new(opts);
    let ctx_client = client.clone();
    let res = client_base::leader::run(
        client,
        &opts.leader_election.clone(),
        "cloud-controller-manager",
        stop.clone(),
        move |token| {
            let ctx = Context {
                informers: InformerFactory::new(ctx_client.clone(), token.clone()),
                client: ctx_client,
                options: opts,
                cloud,
                cluster_name,
                stop: token,
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

/// Like [`run`], stopping when `stop` fires (tests run it in-process).
pub async fn run_until(opts: Options, stop: CancellationToken) -> Result<()> {
    let cloud = new_cloud(&opts)?;
    run_with_cloud(opts, cloud, stop).await
}

async fn start_controllers(ctx: Context, enabled: Vec<ControllerDescriptor>) -> Result<()> {
    let stop = ctx.stop.clone();
    controller_manager::run_controllers(ctx, &stop, enabled).await
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
        assert_eq!(enabled_controllers(&all, &s(&["*"])).unwrap().len(), 4);
        let no_route = names(enabled_controllers(&all, &s(&["*", "-route"])).unwrap());
        assert!(!no_route.contains(&"node-route-controller"));
        assert!(no_route.contains(&"service-lb-controller"));
        let only = names(enabled_controllers(&all, &s(&["cloud-node", "service"])).unwrap());
        assert_eq!(only, vec!["cloud-node-controller", "service-lb-controller"]);
        assert!(enabled_controllers(&all, &s(&["nope"])).is_err());
        let canon = names(
            enabled_controllers(&all, &s(&["-cloud-node-lifecycle-controller", "*"])).unwrap(),
        );
        assert!(!canon.contains(&"cloud-node-lifecycle-controller"));
    }

    #[test]
    fn cloud_provider_flag() {
        let mut o = Options::defaults();
        assert!(new_cloud(&o).is_err());
        o.cloud_provider = "aws".into();
        assert!(new_cloud(&o).is_err());
    }
}
