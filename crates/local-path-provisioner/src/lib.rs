//! local-path-provisioner: dynamic hostPath PersistentVolumes on the node a
//! claim's pod was scheduled to, following the external-provisioner
//! protocol and the behaviour of Rancher's local-path-provisioner (what kind
//! and k3s ship as their default class).
//!
//! * The PV controller marks claims of a class whose provisioner is this
//!   one with `volume.kubernetes.io/storage-provisioner`; for
//!   WaitForFirstConsumer classes the scheduler adds
//!   `volume.kubernetes.io/selected-node` once it picked a node for the pod.
//!   Claims of an Immediate class are refused (ProvisioningFailed): a local
//!   directory needs the consumer's node.
//! * Provisioning: the base directory for the node comes from the
//!   configuration's `nodePathMap` ([`config`]); a helper pod pinned to the
//!   node (`spec.nodeName`) with the base directory mounted from the host
//!   runs `mkdir -m 0777 -p <base>/<pv>_<ns>_<claim>`; once it Succeeded the
//!   PersistentVolume is created ([`volume::build_pv`]: hostPath, capacity
//!   and access modes of the claim, the class's reclaim policy, claimRef
//!   pre-set, node affinity on `kubernetes.io/hostname`,
//!   `pv.kubernetes.io/provisioned-by`), which the PV controller binds.
//!   Events on the claim: Provisioning, ProvisioningSucceeded,
//!   ProvisioningFailed.
//! * Deletion: a volume this provisioner made that is Released with reclaim
//!   policy Delete gets a helper pod running `rm -rf` on its directory, then
//!   the PersistentVolume is deleted. Retain volumes are left alone.
//!
//! Helper pods are ordinary pods in `--namespace`: their success is their
//! `status.phase` (Succeeded), which whatever runs them reports (the
//! kubelet, or a test standing in for it).

pub mod addon;
pub mod config;
pub mod options;
pub mod volume;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::{Api, ResourceExt};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use client_base::events::Recorder;

use crate::config::Config;
use crate::options::Options;
use crate::volume::{ClaimAction, HelperAction};

/// Retry back-off after a failed provisioning or deletion.
const BACKOFF_START: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(120);

/// Run until a shutdown signal.
pub async fn run(opts: Options) -> Result<()> {
    let stop = CancellationToken::new();
    component_base::signals::cancel_on_signal(&stop);
    run_until(opts, stop).await
}

/// Run until `stop` is cancelled (under leader election unless
/// `--leader-elect=false`).
pub async fn run_until(opts: Options, stop: CancellationToken) -> Result<()> {
    anyhow::ensure!(
        !opts.provisioner_name.is_empty(),
        "--provisioner-name must not be empty"
    );
    // Fail early on a broken configuration (it is read again later).
    Config::load(opts.config.as_deref())?;
    let client = client_base::client::kube_client(opts.kubeconfig.as_deref()).await?;
    let le = opts.leader_election();
    tracing::info!(
        provisioner = %opts.provisioner_name,
        namespace = %opts.namespace,
        "starting local-path-provisioner"
    );
    let c = client.clone();
    client_base::leader::run(client, &le, options::LEASE_NAME, stop, move |token| {
        let ctrl = Arc::new(Controller::new(c, opts));
        async move { ctrl.run(token).await }
    })
    .await
}

#[derive(Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
}

/// The provisioning and deletion loops.
pub struct Controller {
    client: kube::Client,
    opts: Options,
    recorder: Recorder,
    /// Keys ("provision/<claim uid>", "delete/<pv>") with a task running.
    in_flight: Mutex<HashSet<String>>,
    backoff: Mutex<HashMap<String, Backoff>>,
    /// Claims refused (Immediate binding), by uid and resourceVersion: one
    /// event per version.
    refused: Mutex<HashSet<(String, String)>>,
    changed: Arc<Notify>,
}

fn api_code(e: &anyhow::Error) -> Option<u16> {
    match e.downcast_ref::<kube::Error>() {
        Some(kube::Error::Api(s)) => Some(s.code),
        _ => None,
    }
}

fn kube_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl Controller {
    pub fn new(client: kube::Client, opts: Options) -> Self {
        let recorder = Recorder::start(client.clone(), opts.provisioner_name.clone(), None);
        Controller {
            client,
            opts,
            recorder,
            in_flight: Mutex::new(HashSet::new()),
            backoff: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashSet::new()),
            changed: Arc::new(Notify::new()),
        }
    }

    /// Watches claims, volumes and classes and works until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) -> Result<()> {
        let (claims, claims_w) = reflector::store::<PersistentVolumeClaim>();
        let (volumes, volumes_w) = reflector::store::<PersistentVolume>();
        let (classes, classes_w) = reflector::store::<StorageClass>();
        client_base::watch::spawn_notifying(
            Api::all(self.client.clone()),
            claims_w,
            self.changed.clone(),
        );
        client_base::watch::spawn_notifying(
            Api::all(self.client.clone()),
            volumes_w,
            self.changed.clone(),
        );
        client_base::watch::spawn_notifying(
            Api::all(self.client.clone()),
            classes_w,
            self.changed.clone(),
        );
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = async {
                let _ = claims.wait_until_ready().await;
                let _ = volumes.wait_until_ready().await;
                let _ = classes.wait_until_ready().await;
            } => {}
        }
        tracing::info!("caches synced; provisioning");
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            self.sync(&claims, &volumes, &classes, &mut tasks);
            while tasks.try_join_next().is_some() {}
            let wait = self.next_wake();
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            // Let bursts of events settle.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tasks.abort_all();
        Ok(())
    }

    fn next_wake(&self) -> Duration {
        let now = Instant::now();
        let mut wait = self.opts.resync_period.max(Duration::from_secs(1));
        for b in self.backoff.lock().unwrap().values() {
            if let Some(at) = b.retry_at {
                wait = wait.min(at.saturating_duration_since(now) + Duration::from_millis(10));
            }
        }
        wait
    }

    /// Claims a key for a task unless one runs or it is backing off.
    fn begin(&self, key: &str) -> bool {
        if let Some(at) = self
            .backoff
            .lock()
            .unwrap()
            .get(key)
            .and_then(|b| b.retry_at)
        {
            if Instant::now() < at {
                return false;
            }
        }
        self.in_flight.lock().unwrap().insert(key.to_string())
    }

    fn finish(&self, key: &str, ok: bool) {
        {
            let mut backoff = self.backoff.lock().unwrap();
            if ok {
                backoff.remove(key);
            } else {
                let b = backoff.entry(key.to_string()).or_default();
                let delay = BACKOFF_START
                    .saturating_mul(1u32 << b.failures.min(16))
                    .min(BACKOFF_MAX);
                b.failures += 1;
                b.retry_at = Some(Instant::now() + delay);
            }
        }
        self.in_flight.lock().unwrap().remove(key);
        self.changed.notify_one();
    }

    fn sync(
        self: &Arc<Self>,
        claims: &Store<PersistentVolumeClaim>,
        volumes: &Store<PersistentVolume>,
        classes: &Store<StorageClass>,
        tasks: &mut tokio::task::JoinSet<()>,
    ) {
        let name = &self.opts.provisioner_name;
        for claim in claims.state() {
            let class_name = volume::claim_class(&claim);
            let class = (!class_name.is_empty())
                .then(|| classes.get(&ObjectRef::new(&class_name)))
                .flatten();
            match volume::claim_action(&claim, class.as_deref(), name) {
                ClaimAction::Skip => {}
                ClaimAction::Refuse(msg) => {
                    let id = (
                        claim.uid().unwrap_or_default(),
                        claim.resource_version().unwrap_or_default(),
                    );
                    if self.refused.lock().unwrap().insert(id) {
                        self.recorder.warning(
                            claim.as_ref(),
                            "ProvisioningFailed",
                            format!(
                                "cannot provision a volume of StorageClass {class_name:?}: {msg}"
                            ),
                        );
                    }
                }
                ClaimAction::Provision { node } => {
                    let pv = volume::pv_name(&claim);
                    if volumes.get(&ObjectRef::new(&pv)).is_some() {
                        continue;
                    }
                    let key = format!("provision/{}", claim.uid().unwrap_or_default());
                    if !self.begin(&key) {
                        continue;
                    }
                    let this = self.clone();
                    let class = class.expect("claim_action checked the class");
                    tasks.spawn(async move {
                        let res = this.provision(&claim, &class, &node).await;
                        if let Err(e) = &res {
                            tracing::warn!(claim = %format!("{}/{}", claim.namespace().unwrap_or_default(), claim.name_any()), "provisioning failed: {e:#}");
                            this.recorder.warning(
                                claim.as_ref(),
                                "ProvisioningFailed",
                                format!(
                                    "provisioning a volume of StorageClass {:?} failed: {e:#}",
                                    class.name_any()
                                ),
                            );
                        }
                        this.finish(&key, res.is_ok());
                    });
                }
            }
        }
        for pv in volumes.state() {
            if !volume::should_delete(&pv, name) {
                continue;
            }
            let key = format!("delete/{}", pv.name_any());
            if !self.begin(&key) {
                continue;
            }
            let this = self.clone();
            tasks.spawn(async move {
                let res = this.delete(&pv).await;
                if let Err(e) = &res {
                    tracing::warn!(volume = %pv.name_any(), "deleting the volume failed: {e:#}");
                    this.recorder
                        .warning(pv.as_ref(), "VolumeFailedDelete", format!("{e:#}"));
                }
                this.finish(&key, res.is_ok());
            });
        }
    }

    /// Provisions a volume for `claim` on `node`.
    pub async fn provision(
        &self,
        claim: &PersistentVolumeClaim,
        class: &StorageClass,
        node: &str,
    ) -> Result<()> {
        let ns = claim.namespace().unwrap_or_default();
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        // The cache may be behind: provision only what still needs it.
        let Some(live) = claims.get_opt(&claim.name_any()).await? else {
            return Ok(());
        };
        if live.uid() != claim.uid() {
            return Ok(());
        }
        let node_now = match volume::claim_action(&live, Some(class), &self.opts.provisioner_name) {
            ClaimAction::Provision { node } => node,
            _ => return Ok(()),
        };
        if node_now != node {
            return Ok(()); // the next pass sees the new node
        }
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let pv_name = volume::pv_name(&live);
        if pvs.get_opt(&pv_name).await?.is_some() {
            return Ok(());
        }
        self.recorder.normal(
            &live,
            "Provisioning",
            format!(
                "Provisioning a local path volume for claim {ns}/{} on node {node}",
                live.name_any()
            ),
        );
        let node_obj = Api::<Node>::all(self.client.clone())
            .get_opt(node)
            .await?
            .with_context(|| format!("selected node {node:?} not found"))?;
        let hostname = volume::node_hostname(node, Some(&node_obj));
        let config = Config::load(self.opts.config.as_deref())?;
        let base = config.base_path_for(node, &pv_name)?;
        let path = volume::volume_path(&base, &pv_name, &live);
        let pv = volume::build_pv(&live, class, &self.opts.provisioner_name, &path, &hostname)?;
        tracing::info!(claim = %format!("{ns}/{}", live.name_any()), %node, %path, "creating volume directory");
        self.run_helper(HelperAction::Create, &pv_name, &path, node)
            .await?;
        match pvs.create(&PostParams::default(), &pv).await {
            Ok(_) => {}
            Err(e) if kube_code(&e) == Some(409) => {}
            Err(e) => return Err(e).context("creating the PersistentVolume"),
        }
        tracing::info!(volume = %pv_name, claim = %format!("{ns}/{}", live.name_any()), "provisioned");
        self.recorder.normal(
            &live,
            "ProvisioningSucceeded",
            format!("Provisioned volume {pv_name} at {path} on node {node}"),
        );
        Ok(())
    }

    /// Removes a Released volume's directory, then the volume.
    pub async fn delete(&self, pv: &PersistentVolume) -> Result<()> {
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let name = pv.name_any();
        let Some(live) = pvs.get_opt(&name).await? else {
            return Ok(());
        };
        if live.uid() != pv.uid() || !volume::should_delete(&live, &self.opts.provisioner_name) {
            return Ok(());
        }
        let loc = volume::volume_location(&live)?;
        match self.node_for(&loc.hostname).await? {
            Some(node) => {
                tracing::info!(volume = %name, %node, path = %loc.path, "removing volume directory");
                self.run_helper(HelperAction::Delete, &name, &loc.path, &node)
                    .await?;
            }
            None => {
                tracing::warn!(volume = %name, hostname = %loc.hostname, "the volume's node is gone; deleting the volume without cleaning its directory");
            }
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: live.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match pvs.delete(&name, &dp).await {
            Ok(_) => {}
            Err(e) if kube_code(&e) == Some(404) => {}
            Err(e) => return Err(e).context("deleting the PersistentVolume"),
        }
        tracing::info!(volume = %name, "deleted");
        Ok(())
    }

    /// The node whose name or `kubernetes.io/hostname` label is `hostname`.
    async fn node_for(&self, hostname: &str) -> Result<Option<String>> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        if nodes.get_opt(hostname).await?.is_some() {
            return Ok(Some(hostname.to_string()));
        }
        let list = nodes
            .list(&ListParams::default().labels(&format!("{}={hostname}", volume::LABEL_HOSTNAME)))
            .await?;
        Ok(list.items.first().map(|n| n.name_any()))
    }

    /// Runs a helper pod to completion; it is removed afterwards whatever
    /// happened.
    pub async fn run_helper(
        &self,
        action: HelperAction,
        pv: &str,
        path: &str,
        node: &str,
    ) -> Result<()> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.opts.namespace);
        let pod = volume::helper_pod(
            action,
            pv,
            path,
            node,
            &self.opts.namespace,
            &self.opts.helper_image,
        )?;
        let name = pod.name_any();
        // A leftover from an earlier attempt: start afresh.
        remove_pod(&pods, &name).await?;
        pods.create(&PostParams::default(), &pod)
            .await
            .with_context(|| format!("creating helper pod {}/{name}", self.opts.namespace))?;
        let res = wait_pod_done(&pods, &name, self.opts.helper_pod_timeout).await;
        if let Err(e) = remove_pod(&pods, &name).await {
            tracing::warn!(pod = %name, "removing helper pod: {e:#}");
        }
        res.with_context(|| format!("helper pod {}/{name} on node {node}", self.opts.namespace))
    }
}

/// Deletes a pod at once and waits until it is gone.
async fn remove_pod(pods: &Api<Pod>, name: &str) -> Result<()> {
    match pods
        .delete(name, &DeleteParams::default().grace_period(0))
        .await
    {
        Ok(_) => {}
        Err(e) if kube_code(&e) == Some(404) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while pods.get_opt(name).await?.is_some() {
        if Instant::now() > deadline {
            bail!("pod {name} is still there after being deleted");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// Waits for a pod to reach Succeeded (Ok) or Failed (Err).
async fn wait_pod_done(pods: &Api<Pod>, name: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let pod = match pods.get_opt(name).await {
            Ok(Some(p)) => p,
            Ok(None) => bail!("the pod disappeared"),
            Err(e) => {
                let e = anyhow::Error::from(e);
                if api_code(&e).is_some() {
                    return Err(e);
                }
                tracing::debug!("reading helper pod {name}: {e:#}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let status = pod.status.clone().unwrap_or_default();
        match status.phase.as_deref() {
            Some("Succeeded") => return Ok(()),
            Some("Failed") => {
                let term = status
                    .container_statuses
                    .iter()
                    .flatten()
                    .filter_map(|c| c.state.as_ref()?.terminated.clone())
                    .next();
                let detail = match term {
                    Some(t) => format!(
                        "exit code {}{}{}",
                        t.exit_code,
                        t.reason.map(|r| format!(", {r}")).unwrap_or_default(),
                        t.message.map(|m| format!(": {m}")).unwrap_or_default()
                    ),
                    None => status.message.unwrap_or_default(),
                };
                bail!("failed ({detail})");
            }
            _ => {}
        }
        if Instant::now() > deadline {
            bail!("did not complete within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
