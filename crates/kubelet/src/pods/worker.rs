//! One task per pod: brings the runtime in line with the pod (sandbox, init
//! containers, containers, restarts with back-off, probes, hooks), reports
//! status, and on deletion stops everything and finishes the deletion.
//! It re-syncs on pod updates, runtime changes (the relister kicks it),
//! probe changes, back-off expiry and periodically.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::Api;
use tokio::sync::{watch, Notify};

use super::actions::{self, Probes};
use super::backoff::Backoff;
use super::container::{container_config, verify_run_as_non_root, ContainerParams};
use super::events::EventType;
use super::sandbox::{effective_dns_policy, log_directory, sandbox_config, SandboxParams};
use super::spec;
use super::status::{self, CState, ForcedPhase, PodRuntime, RuntimeContainer, StatusInput};
use super::time::{now_secs, now_time};
use super::{Context, PodUpdate};
use crate::runtime::*;
use cri::runtime::v1 as crirt;

/// Minimum grace period given to a container being stopped (upstream).
const MIN_GRACE_SECONDS: i64 = 2;
/// Retry delay after errors.
const RETRY: Duration = Duration::from_secs(2);

pub(crate) struct Worker {
    ctx: Arc<Context>,
    uid: String,
    rx: watch::Receiver<PodUpdate>,
    kick: Arc<Notify>,
    backoff: Backoff,
    sandbox_backoff: Backoff,
    /// Why the last (re)start of a container failed: (reason, message).
    reasons: HashMap<String, (String, String)>,
    /// Container ids registered with the probe manager.
    probed: HashSet<String>,
    /// Termination messages of exited containers, by id.
    term_messages: HashMap<String, String>,
    /// The status last posted (or read back), and the uid of the object it went to.
    last_status: Option<PodStatus>,
    last_target: Option<String>,
    forced: Option<ForcedPhase>,
    /// Throttle for repeated warnings (FailedMount...): key → last time.
    warned: HashMap<String, std::time::Instant>,
    /// Terminated and deleted: nothing more to do.
    finished: bool,
}

struct ProbeView<'a>(&'a crate::probes::ProbeManager);

impl Probes for ProbeView<'_> {
    fn liveness_failed(&self, id: &str) -> Option<String> {
        self.0.liveness_failed(id)
    }
    fn startup_failed(&self, id: &str) -> Option<String> {
        self.0.startup_failed(id)
    }
    fn started(&self, id: &str) -> bool {
        self.0.started(id)
    }
}

fn has_probes(pod: &Pod) -> bool {
    spec::containers(pod)
        .iter()
        .chain(spec::init_containers(pod))
        .any(|c| {
            c.liveness_probe.is_some() || c.readiness_probe.is_some() || c.startup_probe.is_some()
        })
}

/// How often pods with configMap/secret/projected volumes are re-synced.
const API_VOLUME_REFRESH: Duration = Duration::from_secs(20);

fn has_api_volumes(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|v| {
            v.iter()
                .any(|v| v.config_map.is_some() || v.secret.is_some() || v.projected.is_some())
        })
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<(&'a Container, bool)> {
    spec::init_containers(pod)
        .iter()
        .find(|c| c.name == name)
        .map(|c| (c, true))
        .or_else(|| {
            spec::containers(pod)
                .iter()
                .find(|c| c.name == name)
                .map(|c| (c, false))
        })
}

fn nanos_to_system_time(n: i64) -> SystemTime {
    if n > 0 {
        UNIX_EPOCH + Duration::from_nanos(n as u64)
    } else {
        UNIX_EPOCH
    }
}

impl Worker {
    pub(crate) fn new(
        ctx: Arc<Context>,
        uid: String,
        rx: watch::Receiver<PodUpdate>,
        kick: Arc<Notify>,
    ) -> Self {
        Worker {
            ctx,
            uid,
            rx,
            kick,
            backoff: Backoff::default(),
            sandbox_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            reasons: HashMap::new(),
            probed: HashSet::new(),
            term_messages: HashMap::new(),
            last_status: None,
            last_target: None,
            forced: None,
            warned: HashMap::new(),
            finished: false,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut probe_rx = self.ctx.probes.changes();
        let mut next = Duration::ZERO;
        loop {
            if !next.is_zero() {
                let watch_probes = match &*self.rx.borrow() {
                    PodUpdate::Present(p, _) => has_probes(p),
                    PodUpdate::Removed(_) => false,
                };
                tokio::select! {
                    r = self.rx.changed() => {
                        if r.is_err() {
                            // The manager is gone (shutdown): leave containers running.
                            return;
                        }
                    }
                    _ = self.kick.notified() => {}
                    _ = tokio::time::sleep(next) => {}
                    r = probe_rx.changed(), if watch_probes => {
                        if r.is_err() {
                            probe_rx = self.ctx.probes.changes();
                        }
                    }
                }
            }
            let update = self.rx.borrow_and_update().clone();
            match update {
                PodUpdate::Removed(pod) => {
                    let res = std::panic::AssertUnwindSafe(self.terminate_removed(&pod))
                        .catch_unwind()
                        .await;
                    match res {
                        Ok(Ok(())) => return,
                        Ok(Err(e)) => {
                            tracing::warn!(pod = %spec::full_name(&pod), "cleaning up removed pod: {e:#}");
                            next = RETRY;
                        }
                        Err(_) => {
                            tracing::error!(pod = %spec::full_name(&pod), "panic while cleaning up removed pod");
                            next = RETRY * 5;
                        }
                    }
                }
                PodUpdate::Present(pod, mirror) => {
                    let res = std::panic::AssertUnwindSafe(self.sync(&pod, mirror.as_ref()))
                        .catch_unwind()
                        .await;
                    next = match res {
                        Ok(Ok(d)) => d,
                        Ok(Err(e)) => {
                            tracing::warn!(pod = %spec::full_name(&pod), "sync failed: {e:#}");
                            RETRY
                        }
                        Err(_) => {
                            tracing::error!(pod = %spec::full_name(&pod), "panic while syncing pod");
                            RETRY * 5
                        }
                    };
                    if next.is_zero() {
                        next = Duration::from_millis(1);
                    }
                }
            }
        }
    }

    fn warn_throttled(&mut self, key: &str, every: Duration) -> bool {
        let now = std::time::Instant::now();
        match self.warned.get(key) {
            Some(t) if now.duration_since(*t) < every => false,
            _ => {
                self.warned.insert(key.to_string(), now);
                true
            }
        }
    }

    /// Reads the pod's sandboxes and containers from the runtime.
    async fn observe(&mut self) -> anyhow::Result<PodRuntime> {
        let rt = &self.ctx.runtime;
        let uid = self.uid.clone();
        let sel = [(POD_UID_LABEL, uid.as_str())];
        let mut sandboxes = rt.list_pod_sandboxes(&sel).await?;
        sandboxes.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        let mut out = PodRuntime {
            sandbox_ids: sandboxes.iter().map(|s| s.id.clone()).collect(),
            ..Default::default()
        };
        if let Some(newest) = sandboxes.first() {
            out.sandbox_attempt = newest.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
            if newest.state == crirt::PodSandboxState::SandboxReady as i32 {
                if let Some(st) = rt.pod_sandbox_status(&newest.id).await? {
                    out.sandbox_ready = st.state == crirt::PodSandboxState::SandboxReady as i32;
                    if let Some(net) = st.network {
                        if !net.ip.is_empty() {
                            out.pod_ips.push(net.ip);
                        }
                        out.pod_ips.extend(
                            net.additional_ips
                                .into_iter()
                                .map(|p| p.ip)
                                .filter(|ip| !ip.is_empty()),
                        );
                    }
                }
            }
        }
        let mut containers = rt.list_containers(&sel, None).await?;
        containers.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        let mut per_name: HashMap<String, usize> = HashMap::new();
        for c in containers {
            let name = c
                .labels
                .get(CONTAINER_NAME_LABEL)
                .cloned()
                .unwrap_or_else(|| {
                    c.metadata
                        .as_ref()
                        .map(|m| m.name.clone())
                        .unwrap_or_default()
                });
            let n = per_name.entry(name.clone()).or_default();
            *n += 1;
            // Only the two newest instances of a name matter (current and last).
            if *n > 2 && c.state != crirt::ContainerState::ContainerRunning as i32 {
                continue;
            }
            let Some(st) = rt.container_status(&c.id).await? else {
                continue;
            };
            let state = match crirt::ContainerState::try_from(st.state) {
                Ok(crirt::ContainerState::ContainerCreated) => CState::Created,
                Ok(crirt::ContainerState::ContainerRunning) => CState::Running,
                Ok(crirt::ContainerState::ContainerExited) => CState::Exited,
                _ => CState::Unknown,
            };
            let restart_count = st
                .annotations
                .get(CONTAINER_RESTART_COUNT_ANNOTATION)
                .and_then(|s| s.parse().ok())
                .unwrap_or(st.metadata.as_ref().map(|m| m.attempt as i32).unwrap_or(0));
            let mut message = st.message.clone();
            if state == CState::Exited {
                let tm = match self.term_messages.get(&st.id) {
                    Some(m) => m.clone(),
                    None => {
                        let m = termination_message(&st);
                        if self.term_messages.len() > 256 {
                            self.term_messages.clear();
                        }
                        self.term_messages.insert(st.id.clone(), m.clone());
                        m
                    }
                };
                if !tm.is_empty() {
                    if !message.is_empty() {
                        message.push_str(": ");
                    }
                    message.push_str(&tm);
                }
            }
            out.containers.push(RuntimeContainer {
                id: st.id.clone(),
                name,
                sandbox_id: c.pod_sandbox_id.clone(),
                state,
                created_at: st.created_at,
                started_at: st.started_at,
                finished_at: st.finished_at,
                exit_code: st.exit_code,
                reason: st.reason.clone(),
                message,
                restart_count,
                hash: st
                    .annotations
                    .get(CONTAINER_HASH_ANNOTATION)
                    .cloned()
                    .unwrap_or_default(),
                image: st
                    .image
                    .as_ref()
                    .map(|i| i.image.clone())
                    .unwrap_or_default(),
                image_ref: if st.image_ref.is_empty() {
                    st.image_id.clone()
                } else {
                    st.image_ref.clone()
                },
                log_path: st.log_path.clone(),
                annotations: st.annotations.clone(),
            });
        }
        Ok(out)
    }

    /// Registers running containers with the probe manager (also adopts
    /// containers found after a kubelet restart) and forgets dead ones.
    fn register_probes(&mut self, pod: &Pod, rt: &PodRuntime) {
        let pod_ip = rt.pod_ips.first().cloned();
        let running: HashSet<String> = rt.running().map(|c| c.id.clone()).collect();
        for rc in rt.running() {
            if self.probed.contains(&rc.id) {
                continue;
            }
            if let Some((c, _)) = find_container(pod, &rc.name) {
                self.ctx.probes.add_container_started_at(
                    pod,
                    c,
                    &rc.id,
                    pod_ip.clone(),
                    nanos_to_system_time(rc.started_at),
                );
                self.probed.insert(rc.id.clone());
            }
        }
        let dead: Vec<String> = self
            .probed
            .iter()
            .filter(|id| !running.contains(*id))
            .cloned()
            .collect();
        for id in dead {
            self.ctx.probes.remove_container(&id);
            self.probed.remove(&id);
        }
    }

    async fn sync(
        &mut self,
        pod: &Arc<Pod>,
        mirror: Option<&Arc<Pod>>,
    ) -> anyhow::Result<Duration> {
        if pod.metadata.deletion_timestamp.is_some() {
            return self.sync_terminating(pod, mirror).await;
        }
        if self.finished {
            return Ok(self.ctx.cfg.sync_frequency);
        }
        let mut rt = self.observe().await?;
        self.register_probes(pod, &rt);
        let api_phase = status_source(pod, mirror)
            .status
            .as_ref()
            .and_then(|s| s.phase.clone());
        let api_terminal = matches!(api_phase.as_deref(), Some("Succeeded") | Some("Failed"));

        // Terminal pods: make sure nothing runs any more.
        if api_terminal || self.forced.is_some() {
            self.stop_everything(pod, &rt, spec::termination_grace_seconds(pod), None)
                .await;
            let rt = self.observe().await?;
            self.post_status(pod, mirror, &rt, true).await;
            return Ok(self.ctx.cfg.sync_frequency);
        }

        // activeDeadlineSeconds.
        let mut next = self.ctx.cfg.sync_frequency;
        if let Some(ads) = pod.spec.as_ref().and_then(|s| s.active_deadline_seconds) {
            let start = status_source(pod, mirror)
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0.as_second())
                .unwrap_or_else(now_secs);
            let remaining = start + ads - now_secs();
            if remaining <= 0 {
                let msg =
                    "Pod was active on the node longer than the specified deadline".to_string();
                self.ctx.recorder.pod_event(
                    pod,
                    EventType::Warning,
                    "DeadlineExceeded",
                    msg.clone(),
                );
                self.forced = Some(ForcedPhase {
                    phase: "Failed".into(),
                    reason: "DeadlineExceeded".into(),
                    message: msg,
                });
                self.stop_everything(pod, &rt, spec::termination_grace_seconds(pod), None)
                    .await;
                let rt = self.observe().await?;
                self.post_status(pod, mirror, &rt, true).await;
                return Ok(self.ctx.cfg.sync_frequency);
            }
            next = next.min(Duration::from_secs(remaining as u64));
        }

        // Volumes (also refreshes configMap/secret contents).
        if let Err(e) = self.ctx.volumes.setup_pod(pod).await {
            let msg = e.to_string();
            if self.warn_throttled(&format!("mount:{msg}"), Duration::from_secs(30)) {
                self.ctx
                    .recorder
                    .pod_event(pod, EventType::Warning, "FailedMount", msg.clone());
            }
            if !rt.sandbox_ready {
                tracing::info!(pod = %spec::full_name(pod), "volumes not ready: {msg}");
                self.post_status(pod, mirror, &rt, false).await;
                return Ok(RETRY);
            }
        }

        // Sandbox.
        let sandbox_params_attempt;
        if !rt.sandbox_ready {
            if !rt.sandbox_ids.is_empty() {
                // The sandbox died. With restartPolicy other than Always, a
                // pod whose containers all ran to completion is not restarted.
                let done = spec::restart_policy(pod) != "Always"
                    && !spec::containers(pod).is_empty()
                    && spec::containers(pod).iter().all(|c| {
                        rt.latest(&c.name)
                            .is_some_and(|r| r.state == CState::Exited)
                    });
                if done {
                    self.post_status(pod, mirror, &rt, false).await;
                    return Ok(self.ctx.cfg.sync_frequency);
                }
                let key = "sandbox-changed".to_string();
                if self.warn_throttled(&key, Duration::from_secs(10)) {
                    self.ctx.recorder.pod_event(
                        pod,
                        EventType::Normal,
                        "SandboxChanged",
                        "Pod sandbox changed, it will be killed and re-created.",
                    );
                }
                self.stop_everything(pod, &rt, spec::termination_grace_seconds(pod), None)
                    .await;
            }
            let now = SystemTime::now();
            if self.sandbox_backoff.in_backoff_since_update("sandbox", now) {
                self.post_status(pod, mirror, &rt, false).await;
                return Ok(RETRY);
            }
            sandbox_params_attempt = if rt.sandbox_ids.is_empty() {
                0
            } else {
                rt.sandbox_attempt + 1
            };
            let cfg = self.sandbox_config(pod, sandbox_params_attempt);
            let log_dir = log_directory(&self.ctx.cfg.pod_logs_dir, pod);
            if let Err(e) = std::fs::create_dir_all(&log_dir) {
                tracing::warn!("creating {}: {e}", log_dir.display());
            }
            if let (_, true) = effective_dns_policy(pod, &self.ctx.dns) {
                if self.warn_throttled("missing-dns", Duration::from_secs(300)) {
                    self.ctx.recorder.pod_event(
                        pod,
                        EventType::Warning,
                        "MissingClusterDNS",
                        "pod: \"".to_string() + &spec::full_name(pod) + "\". kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.",
                    );
                }
            }
            match self.ctx.runtime.run_pod_sandbox(cfg).await {
                Ok(id) => {
                    tracing::debug!(pod = %spec::full_name(pod), sandbox = %id, "sandbox created");
                    self.sandbox_backoff.reset("sandbox");
                }
                Err(e) => {
                    self.sandbox_backoff.next("sandbox", now);
                    self.ctx.recorder.pod_event(
                        pod,
                        EventType::Warning,
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: {e}"),
                    );
                    self.post_status(pod, mirror, &rt, false).await;
                    return Ok(RETRY);
                }
            }
            rt = self.observe().await?;
            if !rt.sandbox_ready {
                return Ok(RETRY);
            }
        } else {
            sandbox_params_attempt = rt.sandbox_attempt;
        }
        let sandbox_id = rt.sandbox_ids.first().cloned().unwrap_or_default();
        let sandbox_cfg = self.sandbox_config(pod, sandbox_params_attempt);

        // /etc/hosts.
        let hosts = if spec::host_network(pod) {
            None
        } else {
            match self
                .ctx
                .volumes
                .write_etc_hosts(pod, &rt.pod_ips, &self.ctx.dns.cluster_domain)
            {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(pod = %spec::full_name(pod), "writing etc-hosts: {e}");
                    None
                }
            }
        };

        // Containers.
        let acts = actions::compute(pod, &rt, &ProbeView(&self.ctx.probes));
        if !acts.kill.is_empty() {
            // Kills can take the whole grace period: report readiness first.
            self.post_status(pod, mirror, &rt, false).await;
        }
        let mut changed = false;
        for k in &acts.kill {
            let grace = find_container(pod, &k.name)
                .and_then(|(c, _)| {
                    let probe = if k.message.contains("liveness") {
                        c.liveness_probe.as_ref()
                    } else if k.message.contains("startup") {
                        c.startup_probe.as_ref()
                    } else {
                        None
                    };
                    probe.and_then(|p| p.termination_grace_period_seconds)
                })
                .unwrap_or_else(|| spec::termination_grace_seconds(pod));
            if let Some(rc) = rt.containers.iter().find(|c| c.id == k.id).cloned() {
                self.kill_container(pod, &rc, grace, Some(&k.message)).await;
                changed = true;
            }
        }
        let now = SystemTime::now();
        for s in &acts.start {
            let Some((c, _)) = find_container(pod, &s.name) else {
                continue;
            };
            let c = c.clone();
            if s.is_restart {
                let finished = s
                    .previous_finished_at
                    .map(nanos_to_system_time)
                    .unwrap_or(now);
                // After a kubelet restart, resume the back-off where the restart count says.
                if let Some(rc) = s.restart_count.filter(|rc| *rc > 1) {
                    let d = self.backoff.delay_for_restarts(rc - 1);
                    self.backoff.seed(&s.name, d, now);
                }
                if let Some((remaining, delay)) =
                    self.backoff.in_backoff_since(&s.name, finished, now)
                {
                    let msg = format!(
                        "back-off {} restarting failed container={} pod={}",
                        component_base::duration::format(delay),
                        s.name,
                        spec::full_name(pod)
                    );
                    self.ctx.recorder.container_event(
                        pod,
                        &s.name,
                        EventType::Warning,
                        "BackOff",
                        format!(
                            "Back-off restarting failed container {} in pod {}",
                            s.name,
                            spec::full_name(pod)
                        ),
                    );
                    self.reasons
                        .insert(s.name.clone(), ("CrashLoopBackOff".into(), msg));
                    next = next.min(remaining + Duration::from_millis(100));
                    if s.init {
                        break;
                    }
                    continue;
                }
                self.backoff.next(&s.name, now);
            }
            let restart_count = s
                .restart_count
                .unwrap_or_else(|| self.restart_count_from_logs(pod, &s.name));
            let started = self
                .start_container(
                    pod,
                    &c,
                    &sandbox_id,
                    &sandbox_cfg,
                    &rt,
                    restart_count,
                    hosts.as_deref(),
                )
                .await;
            changed = true;
            if !started {
                next = next.min(if s.is_restart {
                    Duration::from_secs(1)
                } else {
                    RETRY
                });
            }
            if s.init && !spec::is_sidecar(&c) {
                break;
            }
        }
        if changed {
            rt = self.observe().await?;
            self.register_probes(pod, &rt);
        }
        // ConfigMap/Secret contents are refreshed on every sync: sync often
        // enough for changes to reach the volumes within a minute.
        if has_api_volumes(pod) {
            next = next.min(API_VOLUME_REFRESH);
        }
        // Containers still waiting (image pull back-off etc.) need retries.
        if !self.reasons.is_empty() {
            next = next.min(Duration::from_secs(5));
        }
        self.post_status(pod, mirror, &rt, false).await;
        Ok(next)
    }

    fn sandbox_config(&self, pod: &Pod, attempt: u32) -> crirt::PodSandboxConfig {
        sandbox_config(
            pod,
            &SandboxParams {
                pod_logs_dir: &self.ctx.cfg.pod_logs_dir,
                cgroup_root: &self.ctx.cfg.cgroup_root,
                dns: &self.ctx.dns,
                attempt,
            },
        )
    }

    /// The restart count for a container with no instance in the runtime:
    /// one past the newest log file (so logs are not overwritten).
    fn restart_count_from_logs(&self, pod: &Pod, name: &str) -> i32 {
        let dir = log_directory(&self.ctx.cfg.pod_logs_dir, pod);
        crate::logs::container_attempts(&dir, name)
            .into_iter()
            .max()
            .map(|m| m as i32 + 1)
            .unwrap_or(0)
    }

    /// Pulls, creates and starts one container; records the failure reason
    /// (shown as the waiting reason) on failure. Returns whether it runs.
    #[allow(clippy::too_many_arguments)]
    async fn start_container(
        &mut self,
        pod: &Pod,
        c: &Container,
        sandbox_id: &str,
        sandbox_cfg: &crirt::PodSandboxConfig,
        rt: &PodRuntime,
        restart_count: i32,
        hosts: Option<&std::path::Path>,
    ) -> bool {
        let rec = self.ctx.recorder.clone();
        let fail = |this: &mut Self, reason: &str, msg: String, event: Option<String>| {
            if let Some(ev) = event {
                rec.container_event(pod, &c.name, EventType::Warning, "Failed", ev);
            }
            this.reasons
                .insert(c.name.clone(), (reason.to_string(), msg));
            false
        };

        // 1. Image.
        let image_ref = match self.ctx.images.ensure_image(pod, c, sandbox_cfg).await {
            Ok(r) => r,
            Err(e) => {
                let reason = e.reason();
                return fail(
                    self,
                    reason,
                    e.message().to_string(),
                    Some(format!("Error: {reason}")),
                );
            }
        };

        // 2. Environment and mounts.
        let pod_ips = rt.pod_ips.clone();
        let host_ips = self.ctx.host_ips.clone();
        let env_ctx = crate::env::EnvContext {
            node_name: self.ctx.node_name.clone(),
            host_ip: host_ips.first().cloned().unwrap_or_default(),
            host_ips: host_ips.clone(),
            pod_ip: if spec::host_network(pod) {
                host_ips.first().cloned().unwrap_or_default()
            } else {
                pod_ips.first().cloned().unwrap_or_default()
            },
            pod_ips: if spec::host_network(pod) {
                host_ips.clone()
            } else {
                pod_ips.clone()
            },
            node_allocatable: self.ctx.node_allocatable(),
            service_env: super::svcenv::service_env(&self.ctx, pod).await,
        };
        let env = match crate::env::container_env(&self.ctx.client, pod, c, &env_ctx).await {
            Ok(e) => e,
            Err(e) => {
                let msg = e.to_string();
                return fail(self, e.reason(), msg.clone(), Some(format!("Error: {msg}")));
            }
        };
        if let Err(msg) = self.check_non_root(pod, c, &image_ref).await {
            return fail(
                self,
                "CreateContainerConfigError",
                msg.clone(),
                Some(format!("Error: {msg}")),
            );
        }
        let mounts = match self.ctx.volumes.container_mounts_with_env(pod, c, &env) {
            Ok(m) => m,
            Err(e) => {
                let msg = e.to_string();
                return fail(self, e.reason(), msg.clone(), Some(format!("Error: {msg}")));
            }
        };
        let mut cri_mounts: Vec<crirt::Mount> = mounts
            .iter()
            .map(|m| crirt::Mount {
                container_path: m.container_path.clone(),
                host_path: m.host_path.to_string_lossy().into_owned(),
                readonly: m.readonly,
                selinux_relabel: false,
                propagation: m.propagation as i32,
                ..Default::default()
            })
            .collect();
        if let Some(h) = hosts {
            if !cri_mounts.iter().any(|m| m.container_path == "/etc/hosts") {
                cri_mounts.push(crirt::Mount {
                    container_path: "/etc/hosts".into(),
                    host_path: h.to_string_lossy().into_owned(),
                    ..Default::default()
                });
            }
        }
        let tmp = c
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        if !tmp.is_empty() {
            if let Ok(dir) = self.ctx.volumes.container_dir(&self.uid, &c.name) {
                let file = dir.join(format!("{:08x}", rand_u32()));
                if std::fs::File::create(&file).is_ok() {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666));
                    cri_mounts.push(crirt::Mount {
                        container_path: tmp.clone(),
                        host_path: file.to_string_lossy().into_owned(),
                        ..Default::default()
                    });
                }
            }
        }
        let log_dir = log_directory(&self.ctx.cfg.pod_logs_dir, pod).join(&c.name);
        if let Err(e) = std::fs::create_dir_all(&log_dir) {
            let msg = format!(
                "create container log directory for container {} failed: {e}",
                c.name
            );
            return fail(
                self,
                "CreateContainerConfigError",
                msg.clone(),
                Some(format!("Error: {msg}")),
            );
        }
        let restart_count = restart_count.max(0) as u32;
        // Do not overwrite a previous attempt's log.
        let _ = std::fs::remove_file(log_dir.join(format!("{restart_count}.log")));
        let cfg = container_config(
            pod,
            c,
            ContainerParams {
                restart_count,
                image_ref: &image_ref,
                env: &env,
                mounts: cri_mounts,
                memory_capacity: self.ctx.memory_capacity,
            },
        );

        // 3. Create and start.
        let id = match self
            .ctx
            .runtime
            .create_container(sandbox_id, cfg, sandbox_cfg.clone())
            .await
        {
            Ok(id) => id,
            Err(e) => {
                let msg = e.message();
                return fail(
                    self,
                    "CreateContainerError",
                    msg.clone(),
                    Some(format!("Error: {msg}")),
                );
            }
        };
        rec.container_event(
            pod,
            &c.name,
            EventType::Normal,
            "Created",
            format!("Created container: {}", c.name),
        );
        if let Err(e) = self.ctx.runtime.start_container(&id).await {
            let msg = e.message();
            let _ = self.ctx.runtime.remove_container(&id).await;
            return fail(
                self,
                "RunContainerError",
                msg.clone(),
                Some(format!("Error: {msg}")),
            );
        }
        rec.container_event(
            pod,
            &c.name,
            EventType::Normal,
            "Started",
            format!("Started container {}", c.name),
        );
        self.reasons.remove(&c.name);

        // 4. postStart hook.
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let pod_ip = pod_ips
                .first()
                .cloned()
                .or_else(|| host_ips.first().cloned());
            let timeout = Duration::from_secs(spec::termination_grace_seconds(pod).max(30) as u64);
            if let Err(msg) = super::hooks::run(
                &self.ctx.runtime,
                pod,
                c,
                &id,
                pod_ip.as_deref(),
                h,
                timeout,
            )
            .await
            {
                tracing::info!(pod = %spec::full_name(pod), container = %c.name, "postStart hook failed: {msg}");
                rec.container_event(
                    pod,
                    &c.name,
                    EventType::Warning,
                    "FailedPostStartHook",
                    "PostStartHook failed",
                );
                let now_ns = (SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()) as i64;
                let fake = RuntimeContainer {
                    id: id.clone(),
                    name: c.name.clone(),
                    sandbox_id: sandbox_id.into(),
                    state: CState::Running,
                    created_at: now_ns,
                    started_at: now_ns,
                    finished_at: 0,
                    exit_code: 0,
                    reason: String::new(),
                    message: String::new(),
                    restart_count: restart_count as i32,
                    hash: String::new(),
                    image: String::new(),
                    image_ref: String::new(),
                    log_path: String::new(),
                    annotations: HashMap::new(),
                };
                self.kill_container(
                    pod,
                    &fake,
                    spec::termination_grace_seconds(pod),
                    Some("FailedPostStartHook"),
                )
                .await;
                self.reasons
                    .insert(c.name.clone(), ("PostStartHookError".into(), msg));
                return false;
            }
        }
        let pod_ip = pod_ips.first().cloned();
        self.ctx.probes.add_container(pod, c, &id, pod_ip);
        self.probed.insert(id);
        true
    }

    async fn check_non_root(
        &self,
        pod: &Pod,
        c: &Container,
        image_ref: &str,
    ) -> Result<(), String> {
        let (user, _, non_root) = super::container::effective_user(pod, c);
        if !non_root || user.is_some() {
            return verify_run_as_non_root(pod, c, None, "");
        }
        let (uid, username) = match self.ctx.runtime.image_status(image_ref).await {
            Ok(Some(img)) => (img.uid.map(|u| u.value), img.username),
            _ => (None, String::new()),
        };
        // An image user given by name that is numeric counts as a uid.
        let (uid, username) = match (uid, username.parse::<i64>()) {
            (None, Ok(n)) => (Some(n), String::new()),
            (u, _) => (u, username),
        };
        verify_run_as_non_root(pod, c, uid, &username)
    }

    /// Stops one container: Killing event, preStop hook, then StopContainer
    /// with what is left of the grace period (at least 2 s).
    async fn kill_container(
        &mut self,
        pod: &Pod,
        rc: &RuntimeContainer,
        grace: i64,
        message: Option<&str>,
    ) {
        let msg = message
            .map(String::from)
            .unwrap_or_else(|| format!("Stopping container {}", rc.name));
        self.ctx
            .recorder
            .container_event(pod, &rc.name, EventType::Normal, "Killing", msg);
        kill_container(&self.ctx, pod, rc, grace).await;
        self.ctx.probes.remove_container(&rc.id);
        self.probed.remove(&rc.id);
    }

    /// Stops all running containers (regular ones in parallel, then
    /// sidecars in reverse order) and the sandboxes.
    async fn stop_everything(
        &mut self,
        pod: &Pod,
        rt: &PodRuntime,
        grace: i64,
        _reason: Option<&str>,
    ) {
        let running: Vec<RuntimeContainer> = rt.running().cloned().collect();
        if running.is_empty() && !rt.sandbox_ready {
            return;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(grace.max(0) as u64);
        let sidecars: Vec<&str> = spec::init_containers(pod)
            .iter()
            .filter(|c| spec::is_sidecar(c))
            .map(|c| c.name.as_str())
            .collect();
        let (side, main): (Vec<_>, Vec<_>) = running
            .into_iter()
            .partition(|rc| sidecars.contains(&rc.name.as_str()));
        for rc in &main {
            self.ctx.recorder.container_event(
                pod,
                &rc.name,
                EventType::Normal,
                "Killing",
                format!("Stopping container {}", rc.name),
            );
        }
        let ctx = self.ctx.clone();
        futures::future::join_all(main.iter().map(|rc| kill_container(&ctx, pod, rc, grace))).await;
        let mut side = side;
        side.sort_by_key(|rc| std::cmp::Reverse(sidecars.iter().position(|n| *n == rc.name)));
        for rc in &side {
            let left = deadline
                .saturating_duration_since(std::time::Instant::now())
                .as_secs() as i64;
            self.ctx.recorder.container_event(
                pod,
                &rc.name,
                EventType::Normal,
                "Killing",
                format!("Stopping container {}", rc.name),
            );
            kill_container(&ctx, pod, rc, left).await;
        }
        for rc in main.iter().chain(side.iter()) {
            self.ctx.probes.remove_container(&rc.id);
            self.probed.remove(&rc.id);
        }
        for id in &rt.sandbox_ids {
            if let Err(e) = self.ctx.runtime.stop_pod_sandbox(id).await {
                tracing::warn!(pod = %spec::full_name(pod), "stopping sandbox {id}: {e}");
            }
        }
    }

    /// Deletion requested: stop everything within the grace period, report
    /// the final status, clean up and complete the deletion in the API.
    async fn sync_terminating(
        &mut self,
        pod: &Arc<Pod>,
        mirror: Option<&Arc<Pod>>,
    ) -> anyhow::Result<Duration> {
        if self.finished {
            return Ok(Duration::from_secs(30));
        }
        let rt = self.observe().await?;
        let grace = spec::deletion_grace_seconds(pod);
        self.stop_everything(pod, &rt, grace, None).await;
        self.ctx.probes.remove_pod(&self.uid);
        let rt = self.observe().await?;
        self.post_status(pod, mirror, &rt, true).await;
        for id in &rt.sandbox_ids {
            if let Err(e) = self.ctx.runtime.remove_pod_sandbox(id).await {
                tracing::warn!(pod = %spec::full_name(pod), "removing sandbox {id}: {e}");
            }
        }
        super::gc::remove_pod_cgroups(&self.ctx.cfg.cgroup_root, &self.uid);
        if let Err(e) = self.ctx.volumes.teardown_pod(&self.uid).await {
            tracing::warn!(pod = %spec::full_name(pod), "tearing down volumes: {e:#}");
            return Ok(RETRY);
        }
        self.ctx.images.forget_pod(&self.uid);
        if !spec::is_static(pod) {
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), spec::namespace(pod));
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(self.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(spec::name(pod), &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => {
                    tracing::warn!(pod = %spec::full_name(pod), "deleting pod: {e}");
                    return Ok(RETRY);
                }
            }
        }
        tracing::info!(pod = %spec::full_name(pod), "pod terminated");
        self.finished = true;
        Ok(Duration::from_secs(30))
    }

    /// The pod is gone from its source: stop and remove everything.
    async fn terminate_removed(&mut self, pod: &Arc<Pod>) -> anyhow::Result<()> {
        let rt = self.observe().await?;
        let grace = spec::deletion_grace_seconds(pod);
        self.stop_everything(pod, &rt, grace, None).await;
        self.ctx.probes.remove_pod(&self.uid);
        for id in &rt.sandbox_ids {
            self.ctx.runtime.remove_pod_sandbox(id).await?;
        }
        super::gc::remove_pod_cgroups(&self.ctx.cfg.cgroup_root, &self.uid);
        self.ctx.volumes.teardown_pod(&self.uid).await?;
        self.ctx.images.forget_pod(&self.uid);
        tracing::info!(pod = %spec::full_name(pod), "pod removed");
        Ok(())
    }

    /// Computes the status and patches it when it changed.
    async fn post_status(
        &mut self,
        pod: &Pod,
        mirror: Option<&Arc<Pod>>,
        rt: &PodRuntime,
        terminal: bool,
    ) {
        let src = status_source(pod, mirror);
        // Base on what we posted last (the watch may lag), keeping conditions
        // written by others from the API copy.
        let mut base = (*src).clone();
        base.spec = pod.spec.clone();
        if let Some(last) = &self.last_status {
            let api_status = src.status.clone().unwrap_or_default();
            let mut merged = last.clone();
            let foreign: Vec<_> = api_status
                .conditions
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| {
                    !matches!(
                        c.type_.as_str(),
                        "PodScheduled"
                            | "Ready"
                            | "Initialized"
                            | "ContainersReady"
                            | "PodReadyToStartContainers"
                    )
                })
                .collect();
            let mut conds: Vec<_> = merged.conditions.take().unwrap_or_default();
            conds.retain(|c| {
                matches!(
                    c.type_.as_str(),
                    "PodScheduled"
                        | "Ready"
                        | "Initialized"
                        | "ContainersReady"
                        | "PodReadyToStartContainers"
                )
            });
            conds.extend(foreign);
            merged.conditions = Some(conds);
            if matches!(
                api_status.phase.as_deref(),
                Some("Succeeded") | Some("Failed")
            ) {
                merged.phase = api_status.phase.clone();
            }
            base.status = Some(merged);
        }
        let new = {
            let probes = &self.ctx.probes;
            let ready = |id: &str| probes.readiness(id);
            let started = |id: &str| probes.started(id);
            let input = StatusInput {
                pod: &base,
                runtime: rt,
                waiting: &self.reasons,
                ready: &ready,
                started: &started,
                host_ips: &self.ctx.host_ips,
                runtime_name: &self.ctx.runtime_name,
                forced: self.forced.as_ref(),
                pod_is_terminal: terminal,
                now: now_time(),
            };
            status::compute(&input)
        };
        let old = src.status.clone().unwrap_or_default();
        self.ctx.publish(pod, &new);
        let Some(target) = status_target(pod, mirror) else {
            // A static pod without its mirror yet: nothing to patch.
            return;
        };
        let same_target = self.last_target.as_deref() == Some(target.1.as_str());
        if (same_target && self.last_status.as_ref() == Some(&new)) || old == new {
            self.last_status = Some(new);
            self.last_target = Some(target.1);
            return;
        }
        let mut status_json = serde_json::to_value(&new).unwrap_or_default();
        if let (Some(obj), Ok(serde_json::Value::Object(oldj))) = (
            status_json.as_object_mut(),
            serde_json::to_value(src.status.clone().unwrap_or_default()),
        ) {
            for k in oldj.keys() {
                if !obj.contains_key(k) {
                    obj.insert(k.clone(), serde_json::Value::Null);
                }
            }
        }
        let patch = serde_json::json!({"metadata": {"uid": target.1}, "status": status_json});
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), spec::namespace(pod));
        match api
            .patch_status(
                spec::name(pod),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                tracing::debug!(pod = %spec::full_name(pod), phase = ?new.phase, "status updated");
                self.last_status = Some(new);
                self.last_target = Some(target.1);
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(pod = %spec::full_name(pod), "updating status: {e}");
                self.kick.notify_one();
            }
        }
    }
}

/// The pod whose API status we read: the mirror pod for static pods.
fn status_source<'a>(pod: &'a Pod, mirror: Option<&'a Arc<Pod>>) -> &'a Pod {
    if spec::is_static(pod) {
        if let Some(m) = mirror {
            return m;
        }
    }
    pod
}

/// (name, uid) of the API object to patch, if any.
fn status_target(pod: &Pod, mirror: Option<&Arc<Pod>>) -> Option<(String, String)> {
    if spec::is_static(pod) {
        let m = mirror?;
        return Some((spec::name(m).to_string(), spec::uid(m).to_string()));
    }
    Some((spec::name(pod).to_string(), spec::uid(pod).to_string()))
}

/// PreStop hook, then StopContainer with what is left of `grace`.
async fn kill_container(ctx: &Context, pod: &Pod, rc: &RuntimeContainer, grace: i64) {
    let mut grace = grace.max(0);
    if let Some((c, _)) = find_container(pod, &rc.name) {
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
            if grace > 0 {
                let start = std::time::Instant::now();
                let fut = super::hooks::run(
                    &ctx.runtime,
                    pod,
                    c,
                    &rc.id,
                    None,
                    h,
                    Duration::from_secs(grace as u64),
                );
                match tokio::time::timeout(Duration::from_secs(grace as u64), fut).await {
                    Ok(Err(msg)) => {
                        tracing::info!(pod = %spec::full_name(pod), container = %rc.name, "preStop hook failed: {msg}");
                        ctx.recorder.container_event(
                            pod,
                            &rc.name,
                            EventType::Warning,
                            "FailedPreStopHook",
                            "PreStopHook failed",
                        );
                    }
                    Ok(Ok(())) => {}
                    Err(_) => {
                        tracing::info!(pod = %spec::full_name(pod), container = %rc.name, "preStop hook did not complete in the grace period")
                    }
                }
                grace -= start.elapsed().as_secs() as i64;
            }
        }
    }
    let grace = grace.max(MIN_GRACE_SECONDS);
    if let Err(e) = ctx.runtime.stop_container(&rc.id, grace).await {
        tracing::warn!(pod = %spec::full_name(pod), container = %rc.name, "stopping container: {e}");
    }
}

/// The termination message of an exited container: the file mounted at its
/// terminationMessagePath, or the log tail (FallbackToLogsOnError).
fn termination_message(st: &crirt::ContainerStatus) -> String {
    const MAX: u64 = 4096;
    let path = st
        .annotations
        .get(CONTAINER_TERMINATION_MESSAGE_PATH_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| "/dev/termination-log".into());
    let policy = st
        .annotations
        .get(CONTAINER_TERMINATION_MESSAGE_POLICY_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let fallback =
        policy == "FallbackToLogsOnError" && st.exit_code != 0 && st.reason != "ContainerCannotRun";
    let mut msg = String::new();
    if let Some(m) = st.mounts.iter().find(|m| m.container_path == path) {
        if let Ok(data) = read_at_most(std::path::Path::new(&m.host_path), MAX) {
            msg = String::from_utf8_lossy(&data).into_owned();
        }
    }
    if msg.is_empty() && fallback && !st.log_path.is_empty() {
        msg = log_tail(std::path::Path::new(&st.log_path), 80, 2048);
    }
    msg
}

fn read_at_most(path: &std::path::Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len > max {
        f.seek(SeekFrom::Start(len - max))?;
    }
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The last `lines` log lines (at most `max` bytes) of a CRI log file, without the CRI prefixes.
fn log_tail(path: &std::path::Path, lines: usize, max: usize) -> String {
    let Ok(data) = read_at_most(path, 64 * 1024) else {
        return String::new();
    };
    let mut out: Vec<String> = Vec::new();
    let mut partial = String::new();
    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match crate::logs::parse_cri_line(line) {
            Ok(e) => {
                partial.push_str(&String::from_utf8_lossy(&e.content));
                if e.partial {
                    continue;
                }
                out.push(
                    std::mem::take(&mut partial)
                        .trim_end_matches('\n')
                        .to_string(),
                );
            }
            Err(_) => continue,
        }
    }
    let start = out.len().saturating_sub(lines);
    let mut s = out[start..].join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    if s.len() > max {
        let mut cut = s.len() - max;
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        s = s[cut..].to_string();
    }
    s
}

fn rand_u32() -> u32 {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let x = (n as u64) ^ ((std::process::id() as u64) << 32);
    spec::fnv1a32(&x.to_le_bytes())
}
