//! kube-apiserver as a library: `run` starts a server from [`Options`], so
//! tests can run it in-process. See docs/architecture.md for the request path.

pub mod bootstrap;
pub mod componentstatus;
pub mod connect;
pub mod endpoints;
pub mod filters;
pub mod metrics;
pub mod options;
pub mod registry;
pub mod server;
pub mod serviceaccount;
pub mod subresources;
#[cfg(feature = "testing")]
pub mod testing;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
pub use options::Options;

/// A started apiserver (in-process): its address and a handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub state: Arc<server::ApiState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stop gracefully and wait for the server loop to end.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.context("server task")?
    }
}

fn tls_config(opts: &Options) -> anyhow::Result<rustls::ServerConfig> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match (&opts.tls_cert_file, &opts.tls_private_key_file) {
        (Some(c), Some(k)) => {
            component_base::tls::server_config(c, k, opts.client_ca_file.as_deref())
        }
        _ => anyhow::bail!("--tls-cert-file and --tls-private-key-file are required (HTTPS only)"),
    }
}

/// Start the apiserver and return once it is listening.
pub async fn start(opts: Options) -> anyhow::Result<Running> {
    let tls = Arc::new(tls_config(&opts)?);
    let tokens = match &opts.token_auth_file {
        Some(p) => filters::authn::TokenFile::load(p)
            .with_context(|| format!("reading --token-auth-file {}", p.display()))?,
        None => filters::authn::TokenFile::default(),
    };
    let sa_tokens = Arc::new(
        serviceaccount::ServiceAccountTokens::from_options(&opts)
            .context("service account token options")?,
    );
    let metrics = Arc::new(metrics::Metrics::new());
    let cfg = storage::EtcdConfig {
        endpoints: opts.etcd_servers.clone(),
        prefix: opts.etcd_prefix.clone(),
        ca_file: opts.etcd_cafile.clone(),
        cert_file: opts.etcd_certfile.clone(),
        key_file: opts.etcd_keyfile.clone(),
    };
    let storage = storage::EtcdStorage::connect(&cfg)
        .await
        .context("connecting to etcd")?;
    {
        let m = metrics.clone();
        storage.set_observer(Arc::new(
            move |op: &'static str, typ: &str, d: std::time::Duration| m.observe_etcd(op, typ, d),
        ));
    }
    if !opts.etcd_compaction_interval.is_zero() {
        storage.spawn_compactor(opts.etcd_compaction_interval);
    }
    let alloc = Arc::new(registry::service_alloc::ServiceAllocator::new(
        storage.clone(),
        &opts.service_cluster_ip_range,
        &opts.service_node_port_range,
    )?);
    let reg = Arc::new(registry::Registry::new(
        storage.clone(),
        alloc,
        &opts.disable_admission_plugins,
    ));
    let listener = tokio::net::TcpListener::bind((opts.bind_address, opts.secure_port))
        .await
        .with_context(|| format!("listening on {}:{}", opts.bind_address, opts.secure_port))?;
    let addr = listener.local_addr()?;
    let advertise: IpAddr = opts.advertise_address.unwrap_or_else(|| {
        if opts.bind_address.is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            opts.bind_address
        }
    });
    let mut state = server::ApiState::new(
        reg.clone(),
        metrics.clone(),
        storage.clone(),
        format!("{advertise}:{}", addr.port()),
    );
    state.kubelet = connect::kubelet::KubeletClient::from_options(&opts)
        .context("kubelet client configuration")?;
    state.service_accounts = sa_tokens.clone();
    let state = Arc::new(state);
    // Object counts for apiserver_storage_objects.
    {
        let reg = reg.clone();
        let m = metrics.clone();
        tokio::spawn(async move {
            loop {
                for s in &reg.stores {
                    let i = s.info();
                    let label = if i.group.is_empty() {
                        i.plural.to_string()
                    } else {
                        format!("{}.{}", i.plural, i.group)
                    };
                    m.storage_objects
                        .with_label_values(&[&label])
                        .set(s.count() as i64);
                }
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            }
        });
    }
    {
        let reg = reg.clone();
        let st = state.clone();
        let port = addr.port();
        tokio::spawn(async move {
            reg.wait_ready().await;
            bootstrap::run(reg, advertise, port, move || {
                st.bootstrapped.store(true, Ordering::SeqCst)
            })
            .await;
        });
    }
    let serve_opts = server::ServeOptions {
        tls,
        tokens: Arc::new(tokens),
        service_account_authn: (!sa_tokens.issuers.is_empty() && !sa_tokens.verify_keys.is_empty())
            .then(|| {
                Arc::new(serviceaccount::Authenticator {
                    tokens: sa_tokens.clone(),
                    registry: reg.clone(),
                })
            }),
        anonymous: opts.anonymous_auth,
        max_readonly: opts.max_requests_inflight,
        max_mutating: opts.max_mutating_requests_inflight,
        request_timeout: opts.request_timeout,
        metrics,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let st = state.clone();
    let task = tokio::spawn(async move {
        server::serve(st, listener, serve_opts, async move {
            let _ = stop_rx.await;
        })
        .await
    });
    tracing::info!(%addr, "serving securely");
    Ok(Running {
        addr,
        state,
        stop: Some(stop_tx),
        task,
    })
}

/// Run until SIGTERM/SIGINT, then shut down gracefully.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let running = start(opts).await?;
    component_base::signals::shutdown_signal().await;
    tracing::info!("received termination signal");
    running.shutdown().await
}
