//! The kubelet: registers its Node, runs the pods bound to it in a CRI
//! runtime (containerd), reports their status, and serves the kubelet API
//! on :10250.
//!
//! [`run`] is the whole daemon; `main.rs` only parses flags.

pub mod env;
pub mod logs;
pub mod node;
pub mod options;
pub mod pods;
pub mod probes;
pub mod runtime;
pub mod server;
pub mod volumes;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};

pub use options::{KubeletConfig, KubeletConfiguration, Options};

/// Builds the API client from a kubeconfig file (or the inferred config).
pub async fn kube_client(kubeconfig: Option<&Path>) -> Result<kube::Client> {
    let config = match kubeconfig {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)
                .with_context(|| format!("reading kubeconfig {}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", p.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no --kubeconfig and no inferable client configuration")?,
    };
    kube::Client::try_from(config).context("building the API client")
}

/// Waits for the runtime to answer Version, retrying while it is not up.
async fn wait_for_runtime(
    rt: &runtime::Runtime,
    endpoint: &str,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<cri::runtime::v1::VersionResponse> {
    let mut logged = false;
    loop {
        match rt.version().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                if !logged {
                    tracing::warn!(
                        "container runtime at {endpoint} not available yet: {e}; retrying"
                    );
                    logged = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.wait_for(|v| *v) => anyhow::bail!("interrupted while waiting for the container runtime"),
                }
            }
        }
    }
}

/// Runs the kubelet until SIGTERM/SIGINT. Containers keep running when the
/// kubelet exits; a restarted kubelet adopts them.
pub async fn run(opts: Options) -> Result<()> {
    let cfg = Arc::new(opts.resolve()?);
    run_with_config(cfg).await
}

/// [`run`] with an already resolved configuration.
pub async fn run_with_config(cfg: Arc<KubeletConfig>) -> Result<()> {
    // One signal watcher for the whole process, installed first.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signal_tx = stop_tx.clone();
    tokio::spawn(async move {
        component_base::signals::shutdown_signal().await;
        let _ = signal_tx.send(true);
    });
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::fs::create_dir_all(&cfg.root_dir)
        .with_context(|| format!("creating {}", cfg.root_dir.display()))?;
    std::fs::create_dir_all(&cfg.pod_logs_dir)
        .with_context(|| format!("creating {}", cfg.pod_logs_dir.display()))?;
    tracing::info!(node = %cfg.node_name, runtime = %cfg.container_runtime_endpoint, root_dir = %cfg.root_dir.display(), "starting kubelet");

    let client = kube_client(cfg.kubeconfig.as_deref()).await?;
    let rt = runtime::Runtime::connect_lazy(&cfg.container_runtime_endpoint)?;
    let version = wait_for_runtime(&rt, &cfg.container_runtime_endpoint, stop_rx.clone()).await?;
    let runtime_name = if version.runtime_name.is_empty() {
        "containerd".to_string()
    } else {
        version.runtime_name.clone()
    };
    tracing::info!(runtime = %runtime_name, version = %version.runtime_version, api = %version.runtime_api_version, "container runtime connected");

    let node_ips = if cfg.node_ips.is_empty() {
        node::default_node_ip().into_iter().collect()
    } else {
        cfg.node_ips.clone()
    };
    let host_ips: Vec<String> = node_ips.iter().map(|ip| ip.to_string()).collect();
    let info = node::HostInfo::read(&cfg.root_dir);

    let recorder = pods::events::Recorder::start(client.clone(), cfg.node_name.clone());
    let exec: Arc<dyn probes::ExecRunner> = Arc::new(runtime::CriExecRunner {
        runtime: rt.clone(),
    });
    let probe_manager = Arc::new(probes::ProbeManager::new(exec));
    let volumes = Arc::new(volumes::VolumeManager::new(
        client.clone(),
        cfg.root_dir.clone(),
        cfg.node_name.clone(),
    ));
    let ctx = Arc::new(pods::Context::new(
        cfg.clone(),
        client.clone(),
        rt.clone(),
        runtime_name.clone(),
        host_ips,
        info.memory_bytes,
        volumes,
        probe_manager,
        recorder.clone(),
    ));
    ctx.set_node_allocatable(node::allocatable(&info, cfg.max_pods, &cfg.eviction_hard));

    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };

    // Node registration, status and lease.
    let nm = Arc::new(node::NodeManager {
        cfg: cfg.clone(),
        client: client.clone(),
        runtime: rt.clone(),
        recorder,
        info,
        node_ips,
        runtime_version: format!("{}://{}", runtime_name, version.runtime_version),
    });
    let ctx_n = ctx.clone();
    let node_task = tokio::spawn(nm.run(
        move |uid, alloc| {
            ctx_n.set_node_uid(uid);
            ctx_n.set_node_allocatable(alloc);
        },
        stop_rx.clone(),
    ));

    // Kubelet API server and healthz.
    let ctx_p = ctx.clone();
    let deps = server::ServerDeps {
        runtime: rt.rt.clone(),
        pods: Arc::new(move || ctx_p.pods()),
        pod_logs_dir: cfg.pod_logs_dir.clone(),
        node_name: cfg.node_name.clone(),
        registry: prometheus::Registry::new(),
        root_dir: cfg.root_dir.clone(),
    };
    let server_cfg = server::ServerConfig {
        address: cfg.address,
        port: cfg.port,
        tls_cert_file: cfg.tls_cert_file.clone(),
        tls_private_key_file: cfg.tls_private_key_file.clone(),
        client_ca_file: cfg.client_ca_file.clone(),
    };
    let mut server_task = tokio::spawn(server::serve(server_cfg, deps, stopped(stop_rx.clone())));
    if cfg.healthz_port != 0 {
        let addr = SocketAddr::new(cfg.healthz_bind_address, cfg.healthz_port);
        let fut = server::serve_healthz(addr, Arc::new(|| true), stopped(stop_rx.clone()));
        tokio::spawn(async move {
            if let Err(e) = fut.await {
                tracing::warn!("healthz server: {e:#}");
            }
        });
    }

    // Pods, until a signal (or the API server fails).
    let manager = pods::PodManager::new(ctx.clone());
    let mut result = Ok(());
    tokio::select! {
        _ = manager.run(stopped(stop_rx.clone())) => {}
        r = &mut server_task => {
            result = match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.context("kubelet server")),
                Err(e) => Err(anyhow::anyhow!("kubelet server task: {e}")),
            };
        }
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), node_task).await;
    tracing::info!("kubelet stopped");
    result
}
