//! The pod status the kubelet reports, computed purely from the pod spec, the
//! runtime's view of the pod, probe results and the reasons of failed start
//! attempts (upstream generateAPIPodStatus / getPhase / the condition generators).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
    VolumeMountStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::spec;
use super::time::time_from_nanos;

/// Runtime state of a container as far as the status needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CState {
    Created,
    Running,
    Exited,
    Unknown,
}

/// One container instance in the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeContainer {
    pub id: String,
    pub name: String,
    pub sandbox_id: String,
    pub state: CState,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    /// Runtime message plus termination message.
    pub message: String,
    pub restart_count: i32,
    pub hash: String,
    pub image: String,
    pub image_ref: String,
    pub log_path: String,
    pub annotations: HashMap<String, String>,
}

impl RuntimeContainer {
    pub fn is_running(&self) -> bool {
        self.state == CState::Running
    }
}

/// The runtime's view of a pod.
#[derive(Debug, Clone, Default)]
pub struct PodRuntime {
    /// Sandbox ids, newest first.
    pub sandbox_ids: Vec<String>,
    /// Whether the newest sandbox is ready.
    pub sandbox_ready: bool,
    pub sandbox_attempt: u32,
    pub pod_ips: Vec<String>,
    /// All container instances, newest first.
    pub containers: Vec<RuntimeContainer>,
}

impl PodRuntime {
    /// The newest instance of a container.
    pub fn latest(&self, name: &str) -> Option<&RuntimeContainer> {
        self.containers.iter().find(|c| c.name == name)
    }
    /// The instance before the newest.
    pub fn previous(&self, name: &str) -> Option<&RuntimeContainer> {
        self.containers.iter().filter(|c| c.name == name).nth(1)
    }
    pub fn running(&self) -> impl Iterator<Item = &RuntimeContainer> {
        self.containers
            .iter()
            .filter(|c| c.state == CState::Running)
    }
}

/// A phase the kubelet imposes (active deadline).
#[derive(Debug, Clone)]
pub struct ForcedPhase {
    pub phase: String,
    pub reason: String,
    pub message: String,
}

/// Everything [`compute`] needs.
pub struct StatusInput<'a> {
    pub pod: &'a Pod,
    pub runtime: &'a PodRuntime,
    /// Reasons of failed (re)start attempts, by container name.
    pub waiting: &'a HashMap<String, (String, String)>,
    /// Readiness / started results by container id.
    pub ready: &'a dyn Fn(&str) -> bool,
    pub started: &'a dyn Fn(&str) -> bool,
    pub host_ips: &'a [String],
    pub runtime_name: &'a str,
    pub forced: Option<&'a ForcedPhase>,
    /// The pod is being deleted or otherwise finished: no restarts.
    pub pod_is_terminal: bool,
    pub now: Time,
}

fn waiting(reason: &str, message: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()).filter(|s| !s.is_empty()),
            message: Some(message.to_string()).filter(|s| !s.is_empty()),
        }),
        ..Default::default()
    }
}

fn convert_state(rc: &RuntimeContainer, cid: &str) -> ContainerState {
    match rc.state {
        CState::Running => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time_from_nanos(rc.started_at)),
            }),
            ..Default::default()
        },
        CState::Exited => ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: Some(cid.to_string()),
                exit_code: rc.exit_code,
                reason: Some(if rc.reason.is_empty() {
                    if rc.exit_code == 0 {
                        "Completed".into()
                    } else {
                        "Error".into()
                    }
                } else {
                    rc.reason.clone()
                }),
                message: Some(rc.message.clone()).filter(|s| !s.is_empty()),
                started_at: (rc.started_at > 0).then(|| time_from_nanos(rc.started_at)),
                finished_at: (rc.finished_at > 0).then(|| time_from_nanos(rc.finished_at)),
                signal: None,
            }),
            ..Default::default()
        },
        CState::Created | CState::Unknown => waiting("", ""),
    }
}

/// Whether a container that is not running will be (re)started (upstream ShouldContainerBeRestarted).
pub fn should_restart(
    pod: &Pod,
    c: &Container,
    latest: Option<&RuntimeContainer>,
    pod_is_terminal: bool,
) -> bool {
    if pod_is_terminal || pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let Some(rc) = latest else { return true };
    match rc.state {
        CState::Running => false,
        CState::Created | CState::Unknown => true,
        CState::Exited => {
            if spec::is_sidecar(c) {
                return true;
            }
            match spec::restart_policy(pod) {
                "Never" => false,
                "OnFailure" => rc.exit_code != 0,
                _ => true,
            }
        }
    }
}

fn volume_mount_statuses(c: &Container) -> Option<Vec<VolumeMountStatus>> {
    let mounts = c.volume_mounts.as_ref()?;
    if mounts.is_empty() {
        return None;
    }
    Some(
        mounts
            .iter()
            .map(|m| {
                let ro = m.read_only.unwrap_or(false);
                VolumeMountStatus {
                    name: m.name.clone(),
                    mount_path: m.mount_path.clone(),
                    read_only: Some(ro),
                    recursive_read_only: ro.then(|| "Disabled".to_string()),
                }
            })
            .collect(),
    )
}

fn container_statuses(
    input: &StatusInput<'_>,
    specs: &[Container],
    is_init: bool,
) -> Vec<ContainerStatus> {
    let pod = input.pod;
    let has_init = !spec::init_containers(pod).is_empty();
    let old: HashMap<&str, &ContainerStatus> = pod
        .status
        .as_ref()
        .and_then(|s| {
            if is_init {
                s.init_container_statuses.as_ref()
            } else {
                s.container_statuses.as_ref()
            }
        })
        .map(|v| v.iter().map(|s| (s.name.as_str(), s)).collect())
        .unwrap_or_default();
    let default_reason = if has_init {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let mut out = Vec::with_capacity(specs.len());
    for c in specs {
        let image = c.image.clone().unwrap_or_default();
        let mut st = ContainerStatus {
            name: c.name.clone(),
            image: image.clone(),
            state: Some(waiting(default_reason, "")),
            volume_mounts: volume_mount_statuses(c),
            ..Default::default()
        };
        let latest = input.runtime.latest(&c.name);
        match latest {
            None => {
                if let Some(o) = old.get(c.name.as_str()) {
                    if o.state
                        .as_ref()
                        .and_then(|s| s.terminated.as_ref())
                        .is_some()
                    {
                        st = (*o).clone();
                    } else {
                        st.restart_count = o.restart_count;
                        st.last_state = o.last_state.clone();
                    }
                }
            }
            Some(rc) => {
                let cid = format!("{}://{}", input.runtime_name, rc.id);
                st.container_id = Some(cid.clone());
                st.restart_count = rc.restart_count;
                if !rc.image.is_empty() && !rc.image.starts_with("sha256:") {
                    st.image = rc.image.clone();
                }
                st.image_id = rc.image_ref.clone();
                st.state = Some(convert_state(rc, &cid));
                if let Some(prev) = input.runtime.previous(&c.name) {
                    let pcid = format!("{}://{}", input.runtime_name, prev.id);
                    st.last_state = Some(convert_state(prev, &pcid));
                } else if let Some(o) = old.get(c.name.as_str()) {
                    // Keep the last termination across garbage collection of the old instance.
                    if o.container_id.as_deref() == Some(cid.as_str()) {
                        st.last_state = o.last_state.clone();
                    }
                }
            }
        }
        if st.last_state.is_none() {
            st.last_state = Some(ContainerState::default());
        }
        // A container that failed to (re)start shows why, with its last termination.
        let exited_ok_init = is_init
            && !spec::is_sidecar(c)
            && latest.is_some_and(|rc| rc.state == CState::Exited && rc.exit_code == 0);
        if !exited_ok_init && should_restart(pod, c, latest, input.pod_is_terminal) {
            if let Some((reason, message)) = input.waiting.get(&c.name) {
                if st
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .is_some()
                {
                    st.last_state = st.state.take();
                }
                st.state = Some(waiting(reason, message));
            }
        }
        let running_id = latest.filter(|rc| rc.is_running()).map(|rc| rc.id.as_str());
        st.ready = running_id.is_some_and(|id| (input.ready)(id));
        st.started = Some(running_id.is_some_and(|id| (input.started)(id)));
        out.push(st);
    }
    if !is_init {
        out.sort_by(|a, b| a.name.cmp(&b.name));
    }
    out
}

fn state_running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|s| s.running.is_some())
}
fn state_terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.state.as_ref().and_then(|s| s.terminated.as_ref())
}
fn state_waiting(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|s| s.waiting.is_some())
}
fn last_terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.last_state.as_ref().and_then(|s| s.terminated.as_ref())
}

/// Whether any regular container has started (is running or has terminated).
fn any_regular_started(pod: &Pod, statuses: &[ContainerStatus]) -> bool {
    spec::containers(pod).iter().any(|c| {
        statuses.iter().any(|s| {
            s.name == c.name
                && (state_running(s)
                    || state_terminated(s).is_some()
                    || last_terminated(s).is_some())
        })
    })
}

/// Upstream getPhase.
pub fn phase(
    pod: &Pod,
    init: &[ContainerStatus],
    regular: &[ContainerStatus],
    pod_is_terminal: bool,
) -> &'static str {
    let find =
        |list: &'_ [ContainerStatus], name: &str| list.iter().find(|s| s.name == name).cloned();
    let mut pending_init = 0;
    let mut failed_init = 0;
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in spec::init_containers(pod) {
        let Some(s) = find(init, &c.name) else {
            if spec::is_sidecar(c) {
                unknown += 1;
            } else {
                pending_init += 1;
            }
            continue;
        };
        if spec::is_sidecar(c) {
            if state_running(&s) {
                if s.started != Some(true) {
                    pending_init += 1;
                }
                running += 1;
            } else if state_terminated(&s).is_some() {
            } else if state_waiting(&s) {
                if last_terminated(&s).is_none() {
                    pending_init += 1;
                    waiting += 1;
                }
            } else {
                pending_init += 1;
                unknown += 1;
            }
            continue;
        }
        if state_running(&s) {
            pending_init += 1;
        } else if let Some(t) = state_terminated(&s) {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if state_waiting(&s) {
            match last_terminated(&s) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    for c in spec::containers(pod) {
        let Some(s) = find(regular, &c.name) else {
            unknown += 1;
            continue;
        };
        if state_running(&s) {
            running += 1;
        } else if let Some(t) = state_terminated(&s) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state_waiting(&s) {
            if last_terminated(&s).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }
    let policy = spec::restart_policy(pod);
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    if (pending_init > 0 && !any_regular_started(pod, regular)) || waiting > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal && !spec::is_static(pod) {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.map(String::from),
        message,
        ..Default::default()
    }
}

/// The Initialized condition (upstream GeneratePodInitializedCondition).
fn initialized_condition(
    pod: &Pod,
    init: &[ContainerStatus],
    regular: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let mut incomplete = Vec::new();
    for c in spec::init_containers(pod) {
        let s = init.iter().find(|s| s.name == c.name);
        let done = match s {
            None => false,
            Some(s) if spec::is_sidecar(c) => s.started == Some(true),
            Some(s) => state_terminated(s).is_some_and(|t| t.exit_code == 0),
        };
        if !done {
            incomplete.push(c.name.clone());
        }
    }
    if phase == "Succeeded" && incomplete.is_empty() {
        return condition("Initialized", true, Some("PodCompleted"), None);
    }
    if incomplete.is_empty() || any_regular_started(pod, regular) {
        return condition("Initialized", true, None, None);
    }
    condition(
        "Initialized",
        false,
        Some("ContainersNotInitialized"),
        Some(format!(
            "containers with incomplete status: [{}]",
            incomplete.join(" ")
        )),
    )
}

/// The ContainersReady condition (upstream GenerateContainersReadyCondition).
fn containers_ready_condition(
    pod: &Pod,
    init: &[ContainerStatus],
    regular: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    for c in spec::init_containers(pod)
        .iter()
        .filter(|c| spec::is_sidecar(c))
    {
        match init.iter().find(|s| s.name == c.name) {
            Some(s) if s.ready => {}
            Some(_) => unready.push(c.name.clone()),
            None => unknown.push(c.name.clone()),
        }
    }
    for c in spec::containers(pod) {
        match regular.iter().find(|s| s.name == c.name) {
            Some(s) if s.ready => {}
            Some(_) => unready.push(c.name.clone()),
            None => unknown.push(c.name.clone()),
        }
    }
    if phase == "Succeeded" && unknown.is_empty() {
        return condition("ContainersReady", false, Some("PodCompleted"), None);
    }
    let mut msgs = Vec::new();
    if !unknown.is_empty() {
        msgs.push(format!(
            "containers with unknown status: [{}]",
            unknown.join(" ")
        ));
    }
    if !unready.is_empty() {
        msgs.push(format!(
            "containers with unready status: [{}]",
            unready.join(" ")
        ));
    }
    if msgs.is_empty() {
        condition("ContainersReady", true, None, None)
    } else {
        condition(
            "ContainersReady",
            false,
            Some("ContainersNotReady"),
            Some(msgs.join(", ")),
        )
    }
}

/// The Ready condition (upstream GeneratePodReadyCondition), honouring readiness gates.
fn ready_condition(
    pod: &Pod,
    containers_ready: &PodCondition,
    conditions: &[PodCondition],
) -> PodCondition {
    if containers_ready.status != "True" {
        let mut c = containers_ready.clone();
        c.type_ = "Ready".into();
        return c;
    }
    let mut unready = Vec::new();
    for g in pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or(&[])
    {
        match conditions.iter().find(|c| c.type_ == g.condition_type) {
            None => unready.push(format!(
                "corresponding condition of pod readiness gate \"{}\" does not exist.",
                g.condition_type
            )),
            Some(c) if c.status != "True" => unready.push(format!(
                "the status of pod readiness gate \"{}\" is not \"True\", but {}",
                g.condition_type, c.status
            )),
            _ => {}
        }
    }
    if unready.is_empty() {
        condition("Ready", true, None, None)
    } else {
        condition(
            "Ready",
            false,
            Some("ReadinessGatesNotReady"),
            Some(unready.join(", ")),
        )
    }
}

const KUBELET_CONDITIONS: [&str; 5] = [
    "PodScheduled",
    "Ready",
    "Initialized",
    "ContainersReady",
    "PodReadyToStartContainers",
];

/// Computes the pod's status.
pub fn compute(input: &StatusInput<'_>) -> PodStatus {
    let pod = input.pod;
    let old = pod.status.clone().unwrap_or_default();
    let init = container_statuses(input, spec::init_containers(pod), true);
    let regular = container_statuses(input, spec::containers(pod), false);

    let api_terminal = matches!(old.phase.as_deref(), Some("Succeeded") | Some("Failed"));
    let mut phase = phase(pod, &init, &regular, input.pod_is_terminal).to_string();
    let mut reason = None;
    let mut message = None;
    if let Some(f) = input.forced {
        phase = f.phase.clone();
        reason = Some(f.reason.clone());
        message = Some(f.message.clone());
    }
    if api_terminal {
        phase = old.phase.clone().unwrap_or_default();
    }
    if old.phase.as_deref() == Some(phase.as_str()) && input.forced.is_none() {
        reason = old.reason.clone();
        message = old.message.clone();
    }

    // Conditions not owned by the kubelet are kept.
    let mut conditions: Vec<PodCondition> = old
        .conditions
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
        .collect();
    let sandbox_ok = input.runtime.sandbox_ready && !(phase == "Succeeded" || phase == "Failed");
    conditions.push(condition(
        "PodReadyToStartContainers",
        sandbox_ok,
        None,
        None,
    ));
    conditions.push(initialized_condition(pod, &init, &regular, &phase));
    let cr = containers_ready_condition(pod, &init, &regular, &phase);
    let ready = ready_condition(pod, &cr, &conditions);
    conditions.push(ready);
    conditions.push(cr);
    conditions.push(condition("PodScheduled", true, None, None));
    // Keep transition times of conditions whose status did not change.
    for c in conditions.iter_mut() {
        if c.last_transition_time.is_some() && !KUBELET_CONDITIONS.contains(&c.type_.as_str()) {
            continue;
        }
        let prev = old
            .conditions
            .as_ref()
            .and_then(|v| v.iter().find(|o| o.type_ == c.type_));
        c.last_transition_time = match prev {
            Some(p) if p.status == c.status && p.last_transition_time.is_some() => {
                p.last_transition_time.clone()
            }
            _ => Some(input.now.clone()),
        };
    }

    let mut pod_ips: Vec<String> = input.runtime.pod_ips.clone();
    if spec::host_network(pod) {
        pod_ips = input.host_ips.to_vec();
    }
    if pod_ips.is_empty() {
        pod_ips = old
            .pod_ips
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.ip)
            .collect();
    }

    PodStatus {
        phase: Some(phase),
        reason,
        message,
        conditions: Some(conditions),
        container_statuses: Some(regular),
        init_container_statuses: if spec::init_containers(pod).is_empty() {
            None
        } else {
            Some(init)
        },
        host_ip: input.host_ips.first().cloned(),
        host_ips: if input.host_ips.is_empty() {
            None
        } else {
            Some(
                input
                    .host_ips
                    .iter()
                    .map(|ip| HostIP { ip: ip.clone() })
                    .collect(),
            )
        },
        pod_ip: pod_ips.first().cloned(),
        pod_ips: if pod_ips.is_empty() {
            None
        } else {
            Some(pod_ips.into_iter().map(|ip| PodIP { ip }).collect())
        },
        start_time: old.start_time.clone().or_else(|| Some(input.now.clone())),
        qos_class: Some(spec::qos_class(pod).to_string()),
        nominated_node_name: old.nominated_node_name.clone(),
        ephemeral_container_statuses: old.ephemeral_container_statuses.clone(),
        resource_claim_statuses: old.resource_claim_statuses.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn t(n: i64) -> Time {
        time_from_nanos(n * 1_000_000_000)
    }

    fn pod(init: &[&str], containers: &[&str], policy: &str) -> Pod {
        let mk = |n: &&str| Container {
            name: n.to_string(),
            image: Some("busybox".into()),
            ..Default::default()
        };
        let mut p = Pod::default();
        p.metadata.name = Some("p".into());
        p.metadata.namespace = Some("default".into());
        p.metadata.uid = Some("u".into());
        p.spec = Some(PodSpec {
            init_containers: if init.is_empty() {
                None
            } else {
                Some(init.iter().map(mk).collect())
            },
            containers: containers.iter().map(mk).collect(),
            restart_policy: Some(policy.into()),
            ..Default::default()
        });
        p
    }

    fn rc(
        name: &str,
        id: &str,
        state: CState,
        exit: i32,
        created: i64,
        restarts: i32,
    ) -> RuntimeContainer {
        RuntimeContainer {
            id: id.into(),
            name: name.into(),
            sandbox_id: "s".into(),
            state,
            created_at: created,
            started_at: created * 1_000_000_000 + 1,
            finished_at: if state == CState::Exited {
                created * 1_000_000_000 + 2_000_000_000
            } else {
                0
            },
            exit_code: exit,
            reason: String::new(),
            message: String::new(),
            restart_count: restarts,
            hash: String::new(),
            image: "docker.io/library/busybox:latest".into(),
            image_ref: "docker.io/library/busybox@sha256:1".into(),
            log_path: String::new(),
            annotations: HashMap::new(),
        }
    }

    fn run(
        pod: &Pod,
        rt: &PodRuntime,
        waiting: &HashMap<String, (String, String)>,
        ready: bool,
    ) -> PodStatus {
        let r = move |_: &str| ready;
        let s = |_: &str| true;
        compute(&StatusInput {
            pod,
            runtime: rt,
            waiting,
            ready: &r,
            started: &s,
            host_ips: &["10.200.0.10".to_string()],
            runtime_name: "containerd",
            forced: None,
            pod_is_terminal: false,
            now: t(100),
        })
    }

    fn cond<'a>(s: &'a PodStatus, ty: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == ty)
            .unwrap()
    }

    #[test]
    fn pending_before_anything_runs() {
        let p = pod(&[], &["a"], "Always");
        let s = run(&p, &PodRuntime::default(), &HashMap::new(), false);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ContainerCreating")
        );
        assert_eq!(cs.started, Some(false));
        assert_eq!(cond(&s, "PodReadyToStartContainers").status, "False");
        assert_eq!(
            cond(&s, "Ready").reason.as_deref(),
            Some("ContainersNotReady")
        );
        assert_eq!(
            cond(&s, "Ready").message.as_deref(),
            Some("containers with unready status: [a]")
        );
        assert_eq!(cond(&s, "PodScheduled").status, "True");
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
        assert_eq!(s.host_ip.as_deref(), Some("10.200.0.10"));
        let order: Vec<_> = s
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(
            order,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled"
            ]
        );
    }

    #[test]
    fn running_and_ready() {
        let p = pod(&[], &["b", "a"], "Always");
        let rt = PodRuntime {
            sandbox_ids: vec!["s".into()],
            sandbox_ready: true,
            pod_ips: vec!["10.128.0.5".into()],
            containers: vec![
                rc("a", "1", CState::Running, 0, 1, 0),
                rc("b", "2", CState::Running, 0, 1, 0),
            ],
            ..Default::default()
        };
        let s = run(&p, &rt, &HashMap::new(), true);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.128.0.5"));
        assert_eq!(cond(&s, "Ready").status, "True");
        let cs = s.container_statuses.as_ref().unwrap();
        assert_eq!(cs[0].name, "a");
        assert_eq!(cs[0].container_id.as_deref(), Some("containerd://1"));
        assert_eq!(cs[0].image, "docker.io/library/busybox:latest");
        assert_eq!(cs[0].image_id, "docker.io/library/busybox@sha256:1");
        assert!(cs[0].ready);
    }

    #[test]
    fn crash_loop() {
        let p = pod(&[], &["a"], "Always");
        let rt = PodRuntime {
            sandbox_ids: vec!["s".into()],
            sandbox_ready: true,
            containers: vec![
                rc("a", "2", CState::Exited, 1, 2, 1),
                rc("a", "1", CState::Exited, 1, 1, 0),
            ],
            ..Default::default()
        };
        let mut w = HashMap::new();
        w.insert(
            "a".to_string(),
            (
                "CrashLoopBackOff".to_string(),
                "back-off 10s restarting failed container=a pod=p_default(u)".to_string(),
            ),
        );
        let s = run(&p, &rt, &w, false);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.restart_count, 1);
        let wst = cs.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(wst.reason.as_deref(), Some("CrashLoopBackOff"));
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 1);
        assert_eq!(last.reason.as_deref(), Some("Error"));
        assert_eq!(last.container_id.as_deref(), Some("containerd://2"));
    }

    #[test]
    fn completion_phases() {
        let rt = |exit| PodRuntime {
            containers: vec![rc("a", "1", CState::Exited, exit, 1, 0)],
            ..Default::default()
        };
        let s = run(&pod(&[], &["a"], "Never"), &rt(0), &HashMap::new(), false);
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
        assert_eq!(
            cond(&s, "Initialized").reason.as_deref(),
            Some("PodCompleted")
        );
        let term = s.container_statuses.as_ref().unwrap()[0]
            .state
            .as_ref()
            .unwrap()
            .terminated
            .clone()
            .unwrap();
        assert_eq!(term.reason.as_deref(), Some("Completed"));
        assert_eq!(
            run(&pod(&[], &["a"], "Never"), &rt(2), &HashMap::new(), false)
                .phase
                .as_deref(),
            Some("Failed")
        );
        assert_eq!(
            run(
                &pod(&[], &["a"], "OnFailure"),
                &rt(2),
                &HashMap::new(),
                false
            )
            .phase
            .as_deref(),
            Some("Running")
        );
        assert_eq!(
            run(
                &pod(&[], &["a"], "OnFailure"),
                &rt(0),
                &HashMap::new(),
                false
            )
            .phase
            .as_deref(),
            Some("Succeeded")
        );
        assert_eq!(
            run(&pod(&[], &["a"], "Always"), &rt(0), &HashMap::new(), false)
                .phase
                .as_deref(),
            Some("Running")
        );
    }

    #[test]
    fn init_containers() {
        let p = pod(&["i1", "i2"], &["a"], "Always");
        let rt = PodRuntime {
            sandbox_ready: true,
            containers: vec![rc("i1", "1", CState::Running, 0, 1, 0)],
            ..Default::default()
        };
        let s = run(&p, &rt, &HashMap::new(), false);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let ic = cond(&s, "Initialized");
        assert_eq!(ic.status, "False");
        assert_eq!(ic.reason.as_deref(), Some("ContainersNotInitialized"));
        assert_eq!(
            ic.message.as_deref(),
            Some("containers with incomplete status: [i1 i2]")
        );
        let ics = s.init_container_statuses.as_ref().unwrap();
        assert_eq!(ics[0].name, "i1");
        assert_eq!(
            ics[1]
                .state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );

        // A failed init container with restartPolicy Never fails the pod.
        let p = pod(&["i1"], &["a"], "Never");
        let rt = PodRuntime {
            containers: vec![rc("i1", "1", CState::Exited, 3, 1, 0)],
            ..Default::default()
        };
        assert_eq!(
            run(&p, &rt, &HashMap::new(), false).phase.as_deref(),
            Some("Failed")
        );
        // All init done: initialized.
        let p = pod(&["i1"], &["a"], "Always");
        let rt = PodRuntime {
            sandbox_ready: true,
            containers: vec![
                rc("a", "2", CState::Running, 0, 2, 0),
                rc("i1", "1", CState::Exited, 0, 1, 0),
            ],
            ..Default::default()
        };
        let s = run(&p, &rt, &HashMap::new(), true);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Initialized").status, "True");
        assert_eq!(cond(&s, "Ready").status, "True");
    }

    #[test]
    fn transition_times_kept() {
        let p0 = pod(&[], &["a"], "Always");
        let rt = PodRuntime {
            sandbox_ready: true,
            containers: vec![rc("a", "1", CState::Running, 0, 1, 0)],
            ..Default::default()
        };
        let s1 = run(&p0, &rt, &HashMap::new(), true);
        let mut p1 = p0.clone();
        p1.status = Some(s1.clone());
        let r = |_: &str| true;
        let s2 = compute(&StatusInput {
            pod: &p1,
            runtime: &rt,
            waiting: &HashMap::new(),
            ready: &r,
            started: &r,
            host_ips: &["10.200.0.10".to_string()],
            runtime_name: "containerd",
            forced: None,
            pod_is_terminal: false,
            now: t(200),
        });
        assert_eq!(s1, s2);
    }

    #[test]
    fn api_terminal_phase_sticks() {
        let mut p = pod(&[], &["a"], "Always");
        p.status = Some(PodStatus {
            phase: Some("Failed".into()),
            reason: Some("DeadlineExceeded".into()),
            ..Default::default()
        });
        let s = run(&p, &PodRuntime::default(), &HashMap::new(), false);
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(s.reason.as_deref(), Some("DeadlineExceeded"));
    }
}
