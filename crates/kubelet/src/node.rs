//! The Node: registration (capacity and allocatable from the host, addresses,
//! nodeInfo, labels, taints), status updates (on change and every
//! nodeStatusReportFrequency, computed every nodeStatusUpdateFrequency) with
//! upstream's conditions, and the node Lease in kube-node-lease renewed
//! every 10 s.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use apimachinery::quantity::{Format, Quantity};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;

use crate::options::KubeletConfig;
use crate::pods::events::{node_ref, EventType, Recorder};
use crate::pods::time::{now_micro, now_time};
use crate::runtime::Runtime;

/// The version the kubelet reports (matches the apiserver's).
pub const KUBELET_VERSION: &str = "v1.33.0-ferrokube";

/// Facts about the host.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    pub cpus: u64,
    pub memory_bytes: u64,
    pub ephemeral_bytes: u64,
    /// hugepages-<size> → bytes.
    pub hugepages: BTreeMap<String, u64>,
    pub kernel_version: String,
    pub os_image: String,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub architecture: String,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// MemTotal in bytes from /proc/meminfo text.
pub fn parse_meminfo_total(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// PRETTY_NAME from /etc/os-release text.
pub fn parse_os_release(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

/// Total bytes of the filesystem holding `path`.
pub fn fs_capacity(path: &Path) -> u64 {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return 0;
    };
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid NUL-terminated path and out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    st.f_blocks as u64 * st.f_frsize as u64
}

pub fn go_arch() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
    .to_string()
}

impl HostInfo {
    pub fn read(root_dir: &Path) -> HostInfo {
        // SAFETY: sysconf has no memory-safety preconditions.
        let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        let cpus = if cpus > 0 {
            cpus as u64
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get() as u64)
                .unwrap_or(1)
        };
        let mut hugepages = BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(kb) = name
                    .strip_prefix("hugepages-")
                    .and_then(|s| s.strip_suffix("kB"))
                    .and_then(|s| s.parse::<u64>().ok())
                else {
                    continue;
                };
                let n: u64 = read_trim(&format!("/sys/kernel/mm/hugepages/{name}/nr_hugepages"))
                    .parse()
                    .unwrap_or(0);
                let size = Quantity::new(kb as i128 * 1024, Format::BinarySI).to_string();
                hugepages.insert(format!("hugepages-{size}"), n * kb * 1024);
            }
        }
        let machine_id = {
            let m = read_trim("/etc/machine-id");
            if m.is_empty() {
                read_trim("/var/lib/dbus/machine-id")
            } else {
                m
            }
        };
        let mut system_uuid = read_trim("/sys/class/dmi/id/product_uuid").to_lowercase();
        if system_uuid.is_empty() && machine_id.len() == 32 {
            let m = &machine_id;
            system_uuid = format!(
                "{}-{}-{}-{}-{}",
                &m[0..8],
                &m[8..12],
                &m[12..16],
                &m[16..20],
                &m[20..32]
            );
        }
        HostInfo {
            cpus,
            memory_bytes: parse_meminfo_total(
                &std::fs::read_to_string("/proc/meminfo").unwrap_or_default(),
            ),
            ephemeral_bytes: fs_capacity(root_dir),
            hugepages,
            kernel_version: read_trim("/proc/sys/kernel/osrelease"),
            os_image: parse_os_release(
                &std::fs::read_to_string("/etc/os-release").unwrap_or_default(),
            ),
            machine_id,
            system_uuid,
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            architecture: go_arch(),
        }
    }
}

fn q(v: Quantity) -> ApiQuantity {
    ApiQuantity(v.to_string())
}

/// Node capacity: cpu, memory, pods, ephemeral-storage, hugepages.
pub fn capacity(info: &HostInfo, max_pods: i32) -> BTreeMap<String, ApiQuantity> {
    let mut m = BTreeMap::new();
    m.insert(
        "cpu".into(),
        q(Quantity::new(info.cpus as i128, Format::DecimalSI)),
    );
    m.insert(
        "memory".into(),
        q(Quantity::new(info.memory_bytes as i128, Format::BinarySI)),
    );
    m.insert(
        "pods".into(),
        q(Quantity::new(max_pods as i128, Format::DecimalSI)),
    );
    m.insert(
        "ephemeral-storage".into(),
        q(Quantity::new(
            info.ephemeral_bytes as i128,
            Format::BinarySI,
        )),
    );
    for (k, v) in &info.hugepages {
        m.insert(k.clone(), q(Quantity::new(*v as i128, Format::BinarySI)));
    }
    m
}

/// A hard eviction threshold as bytes to reserve out of `capacity`.
fn threshold_bytes(v: &str, capacity: u64) -> u64 {
    let v = v.trim();
    if let Some(p) = v.strip_suffix('%') {
        let pct: f64 = p.trim().parse().unwrap_or(0.0);
        return (capacity as f64 * pct / 100.0) as u64;
    }
    Quantity::parse(v)
        .map(|q| q.value().max(0) as u64)
        .unwrap_or(0)
}

/// Allocatable: capacity minus the hard eviction thresholds (no reservations
/// are configured).
pub fn allocatable(
    info: &HostInfo,
    max_pods: i32,
    eviction_hard: &BTreeMap<String, String>,
) -> BTreeMap<String, ApiQuantity> {
    let mut m = capacity(info, max_pods);
    let hp: u64 = info.hugepages.values().sum();
    let mem_reserve = eviction_hard
        .get("memory.available")
        .map(|v| threshold_bytes(v, info.memory_bytes))
        .unwrap_or(0);
    let mem = info
        .memory_bytes
        .saturating_sub(mem_reserve)
        .saturating_sub(hp);
    m.insert(
        "memory".into(),
        q(Quantity::new(mem as i128, Format::BinarySI)),
    );
    let fs_reserve = eviction_hard
        .get("nodefs.available")
        .map(|v| threshold_bytes(v, info.ephemeral_bytes))
        .unwrap_or(0);
    let eph = info.ephemeral_bytes.saturating_sub(fs_reserve);
    m.insert(
        "ephemeral-storage".into(),
        q(Quantity::new(eph as i128, Format::BinarySI)),
    );
    m
}

/// The IPv4 address of the interface holding the default route, else the
/// first non-loopback address.
pub fn default_node_ip() -> Option<IpAddr> {
    if let Ok(s) = std::net::UdpSocket::bind("0.0.0.0:0") {
        if s.connect("192.0.2.1:9").is_ok() {
            if let Ok(a) = s.local_addr() {
                if !a.ip().is_unspecified() && !a.ip().is_loopback() {
                    return Some(a.ip());
                }
            }
        }
    }
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills ifap; freed below.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = ifap;
    while !cur.is_null() {
        // SAFETY: cur is a valid node of the list returned by getifaddrs.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr of the family it declares.
            let fam = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if fam == libc::AF_INET {
                // SAFETY: AF_INET addresses are sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() {
                    found = Some(IpAddr::V4(ip));
                    break;
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: ifap came from getifaddrs.
    unsafe { libc::freeifaddrs(ifap) };
    found
}

/// The node's addresses: InternalIP(s) then Hostname.
pub fn addresses(node_ips: &[IpAddr], hostname: &str) -> Vec<NodeAddress> {
    let mut v: Vec<NodeAddress> = node_ips
        .iter()
        .map(|ip| NodeAddress {
            type_: "InternalIP".into(),
            address: ip.to_string(),
        })
        .collect();
    v.push(NodeAddress {
        type_: "Hostname".into(),
        address: hostname.to_string(),
    });
    v
}

/// The labels the kubelet sets on its Node.
pub fn node_labels(cfg: &KubeletConfig) -> BTreeMap<String, String> {
    let arch = go_arch();
    let mut l = BTreeMap::new();
    l.insert("beta.kubernetes.io/arch".to_string(), arch.clone());
    l.insert("beta.kubernetes.io/os".to_string(), "linux".to_string());
    l.insert("kubernetes.io/arch".to_string(), arch);
    l.insert("kubernetes.io/hostname".to_string(), cfg.hostname.clone());
    l.insert("kubernetes.io/os".to_string(), "linux".to_string());
    for (k, v) in &cfg.node_labels {
        l.insert(k.clone(), v.clone());
    }
    l
}

/// The runtime's health as the Ready condition needs it: None when ready,
/// else the KubeletNotReady message.
pub fn runtime_problems(
    status: &Result<cri::runtime::v1::StatusResponse, String>,
) -> Option<String> {
    let st = match status {
        Ok(s) => s,
        Err(e) => {
            return Some(format!(
                "container runtime status check may not have completed yet: {e}"
            ))
        }
    };
    let conds = st
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut errs = Vec::new();
    for (ty, what) in [
        ("RuntimeReady", "container runtime not ready"),
        ("NetworkReady", "container runtime network not ready"),
    ] {
        match conds.iter().find(|c| c.r#type == ty) {
            Some(c) if c.status => {}
            Some(c) => errs.push(format!(
                "{what}: {ty}=false reason:{} message:{}",
                c.reason, c.message
            )),
            None => errs.push(format!("{what}: {ty} condition missing")),
        }
    }
    if errs.is_empty() {
        None
    } else {
        Some(errs.join(", "))
    }
}

fn cond(type_: &str, ok: bool, reason: &str, message: &str) -> NodeCondition {
    NodeCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        ..Default::default()
    }
}

/// The node conditions (without times).
pub fn conditions(runtime_problem: Option<&str>) -> Vec<NodeCondition> {
    vec![
        cond(
            "MemoryPressure",
            false,
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        cond(
            "DiskPressure",
            false,
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        cond(
            "PIDPressure",
            false,
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        match runtime_problem {
            None => cond(
                "Ready",
                true,
                "KubeletReady",
                "kubelet is posting ready status",
            ),
            Some(p) => cond("Ready", false, "KubeletNotReady", p),
        },
    ]
}

/// Keeps transition times of unchanged conditions and stamps heartbeats.
pub fn stamp_conditions(new: &mut [NodeCondition], old: &[NodeCondition]) {
    let now = now_time();
    for c in new.iter_mut() {
        c.last_heartbeat_time = Some(now.clone());
        c.last_transition_time = match old.iter().find(|o| o.type_ == c.type_) {
            Some(o) if o.status == c.status && o.last_transition_time.is_some() => {
                o.last_transition_time.clone()
            }
            _ => Some(now.clone()),
        };
    }
}

/// Keeps the Node registered, its status current and its Lease renewed.
pub struct NodeManager {
    pub cfg: Arc<KubeletConfig>,
    pub client: kube::Client,
    pub runtime: Runtime,
    pub recorder: Recorder,
    pub info: HostInfo,
    pub node_ips: Vec<IpAddr>,
    pub runtime_version: String,
}

impl NodeManager {
    fn base_status(
        &self,
        runtime_problem: Option<&str>,
        images: Vec<ContainerImage>,
    ) -> NodeStatus {
        NodeStatus {
            capacity: Some(capacity(&self.info, self.cfg.max_pods)),
            allocatable: Some(allocatable(
                &self.info,
                self.cfg.max_pods,
                &self.cfg.eviction_hard,
            )),
            conditions: Some(conditions(runtime_problem)),
            addresses: Some(addresses(&self.node_ips, &self.cfg.hostname)),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: self.cfg.port as i32,
                }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: self.info.architecture.clone(),
                boot_id: self.info.boot_id.clone(),
                container_runtime_version: self.runtime_version.clone(),
                kernel_version: self.info.kernel_version.clone(),
                kube_proxy_version: String::new(),
                kubelet_version: KUBELET_VERSION.into(),
                machine_id: self.info.machine_id.clone(),
                operating_system: "linux".into(),
                os_image: self.info.os_image.clone(),
                system_uuid: self.info.system_uuid.clone(),
                swap: None,
            }),
            images: if images.is_empty() {
                None
            } else {
                Some(images)
            },
            ..Default::default()
        }
    }

    async fn images(&self) -> Vec<ContainerImage> {
        let mut imgs = self.runtime.list_images().await.unwrap_or_default();
        imgs.sort_by_key(|i| std::cmp::Reverse(i.size));
        imgs.truncate(50);
        imgs.into_iter()
            .map(|i| {
                let mut names: Vec<String> = i.repo_digests.clone();
                names.extend(i.repo_tags.clone());
                ContainerImage {
                    names: Some(names),
                    size_bytes: Some(i.size as i64),
                }
            })
            .filter(|c| c.names.as_ref().is_some_and(|n| !n.is_empty()))
            .collect()
    }

    async fn runtime_problem(&self) -> Option<String> {
        let st = self.runtime.status().await.map_err(|e| e.to_string());
        runtime_problems(&st)
    }

    /// Creates the Node (or adopts an existing one, updating its labels).
    /// Returns the node's uid and the conditions it had.
    pub async fn register(&self) -> Result<(String, Vec<NodeCondition>)> {
        let api: Api<Node> = Api::all(self.client.clone());
        let name = &self.cfg.node_name;
        let mut annotations = BTreeMap::new();
        annotations.insert(
            "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
            "true".to_string(),
        );
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(node_labels(&self.cfg)),
                annotations: Some(annotations),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: if self.cfg.register_with_taints.is_empty() {
                    None
                } else {
                    Some(self.cfg.register_with_taints.clone())
                },
                ..Default::default()
            }),
            status: None,
        };
        let uid = match api.create(&PostParams::default(), &node).await {
            Ok(n) => {
                tracing::info!(node = %name, "successfully registered node");
                (n.metadata.uid.unwrap_or_default(), vec![])
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let patch = serde_json::json!({"metadata": {"labels": node_labels(&self.cfg)}});
                let n = api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .with_context(|| format!("updating existing node {name}"))?;
                tracing::info!(node = %name, "node already registered");
                let conds = n.status.and_then(|s| s.conditions).unwrap_or_default();
                (n.metadata.uid.unwrap_or_default(), conds)
            }
            Err(e) => return Err(e).with_context(|| format!("registering node {name}")),
        };
        Ok(uid)
    }

    async fn post_status(&self, status: &NodeStatus) -> Result<Node, kube::Error> {
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = serde_json::json!({"status": status});
        api.patch_status(
            &self.cfg.node_name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    }

    /// Hands spec.podCIDR to the runtime once it is set (node IPAM assigns
    /// it after registration); `applied` remembers what the runtime has.
    async fn sync_pod_cidr(&self, node: Option<Node>, applied: &mut Option<String>) {
        let node = match node {
            Some(n) => n,
            None if applied.is_some() => return,
            None => {
                let api: Api<Node> = Api::all(self.client.clone());
                match api.get(&self.cfg.node_name).await {
                    Ok(n) => n,
                    Err(_) => return,
                }
            }
        };
        let Some(cidr) = node.spec.and_then(|s| s.pod_cidr).filter(|c| !c.is_empty()) else {
            return;
        };
        if applied.as_deref() == Some(cidr.as_str()) {
            return;
        }
        match self.runtime.update_runtime_config(&cidr).await {
            Ok(()) => {
                tracing::info!(pod_cidr = %cidr, "updated the runtime's pod CIDR");
                *applied = Some(cidr);
            }
            Err(e) => tracing::warn!("updating the runtime's pod CIDR: {}", e.message()),
        }
    }

    /// Registers the node and keeps its status current until `shutdown`.
    /// `on_registered` gets the node uid and allocatable after each registration.
    pub async fn run(
        self: Arc<Self>,
        on_registered: impl Fn(String, BTreeMap<String, ApiQuantity>) + Send + Sync,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let nref = node_ref(&self.cfg.node_name);
        self.recorder
            .event(&nref, EventType::Normal, "Starting", "Starting kubelet.");
        let mut registered = false;
        let mut last_posted: Option<NodeStatus> = None;
        let mut last_post_at = Instant::now();
        let mut lease_task: Option<tokio::task::JoinHandle<()>> = None;
        let mut delay = Duration::from_millis(100);
        // Conditions as the API has them (transition times survive restarts).
        let mut api_conds: Vec<NodeCondition> = vec![];
        let mut pod_cidr: Option<String> = None;
        loop {
            if !registered {
                match self.register().await {
                    Ok((uid, conds)) => {
                        registered = true;
                        api_conds = conds;
                        on_registered(
                            uid.clone(),
                            allocatable(&self.info, self.cfg.max_pods, &self.cfg.eviction_hard),
                        );
                        if let Some(t) = lease_task.take() {
                            t.abort();
                        }
                        lease_task = Some(tokio::spawn(self.clone().lease_loop(uid)));
                        last_posted = None;
                    }
                    Err(e) => {
                        tracing::warn!("unable to register node: {e:#}");
                        delay = (delay * 2).min(Duration::from_secs(7));
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown.changed() => break,
                        }
                        continue;
                    }
                }
            }
            if pod_cidr.is_none() {
                self.sync_pod_cidr(None, &mut pod_cidr).await;
            }
            let problem = self.runtime_problem().await;
            let images = self.images().await;
            let mut status = self.base_status(problem.as_deref(), images);
            let old_conds = last_posted
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_else(|| api_conds.clone());
            let mut conds = status.conditions.take().unwrap_or_default();
            stamp_conditions(&mut conds, &old_conds);
            status.conditions = Some(conds);
            let changed = match &last_posted {
                None => true,
                Some(old) => strip_heartbeats(old) != strip_heartbeats(&status),
            };
            if changed || last_post_at.elapsed() >= self.cfg.node_status_report_frequency {
                match self.post_status(&status).await {
                    Ok(node) => {
                        self.sync_pod_cidr(Some(node), &mut pod_cidr).await;
                        self.status_events(last_posted.as_ref(), &status);
                        last_posted = Some(status);
                        last_post_at = Instant::now();
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        tracing::warn!("node {} not found; registering again", self.cfg.node_name);
                        registered = false;
                        continue;
                    }
                    Err(e) => tracing::warn!("error updating node status: {e}"),
                }
            }
            let period = if last_posted.as_ref().is_some_and(node_ready) {
                self.cfg.node_status_update_frequency
            } else {
                // Until ready, look more often so Ready shows up quickly.
                self.cfg
                    .node_status_update_frequency
                    .min(Duration::from_secs(1))
            };
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = shutdown.changed() => break,
            }
        }
        if let Some(t) = lease_task {
            t.abort();
        }
    }

    fn status_events(&self, old: Option<&NodeStatus>, new: &NodeStatus) {
        let nref = node_ref(&self.cfg.node_name);
        let name = &self.cfg.node_name;
        let old_conds = old.and_then(|s| s.conditions.clone()).unwrap_or_default();
        for c in new.conditions.as_deref().unwrap_or(&[]) {
            let prev = old_conds
                .iter()
                .find(|o| o.type_ == c.type_)
                .map(|o| o.status.as_str());
            if prev == Some(c.status.as_str()) {
                continue;
            }
            let reason = match (c.type_.as_str(), c.status.as_str()) {
                ("MemoryPressure", "False") => "NodeHasSufficientMemory",
                ("MemoryPressure", _) => "NodeHasInsufficientMemory",
                ("DiskPressure", "False") => "NodeHasNoDiskPressure",
                ("DiskPressure", _) => "NodeHasDiskPressure",
                ("PIDPressure", "False") => "NodeHasSufficientPID",
                ("PIDPressure", _) => "NodeHasInsufficientPID",
                ("Ready", "True") => "NodeReady",
                ("Ready", _) => "NodeNotReady",
                _ => continue,
            };
            self.recorder.event(
                &nref,
                EventType::Normal,
                reason,
                format!("Node {name} status is now: {reason}"),
            );
        }
        if old.is_none() {
            self.recorder.event(
                &nref,
                EventType::Normal,
                "NodeAllocatableEnforced",
                "Updated Node Allocatable limit across pods",
            );
        }
    }

    /// Keeps the node's Lease renewed.
    async fn lease_loop(self: Arc<Self>, node_uid: String) {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let name = self.cfg.node_name.clone();
        let duration = self.cfg.node_lease_duration_seconds;
        let renew = Duration::from_secs_f64((duration as f64 * 0.25).max(1.0));
        loop {
            let spec = LeaseSpec {
                holder_identity: Some(name.clone()),
                lease_duration_seconds: Some(duration),
                renew_time: Some(now_micro()),
                ..Default::default()
            };
            let patch = serde_json::json!({"spec": {
                "holderIdentity": spec.holder_identity,
                "leaseDurationSeconds": spec.lease_duration_seconds,
                "renewTime": spec.renew_time,
            }});
            let retry = match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => false,
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    let lease = Lease {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            namespace: Some("kube-node-lease".into()),
                            owner_references: Some(vec![OwnerReference {
                                api_version: "v1".into(),
                                kind: "Node".into(),
                                name: name.clone(),
                                uid: node_uid.clone(),
                                ..Default::default()
                            }]),
                            ..Default::default()
                        },
                        spec: Some(spec),
                    };
                    match api.create(&PostParams::default(), &lease).await {
                        Ok(_) => false,
                        Err(e) => {
                            tracing::warn!("failed to create lease kube-node-lease/{name}: {e}");
                            true
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("failed to renew lease kube-node-lease/{name}: {e}");
                    true
                }
            };
            tokio::time::sleep(if retry {
                Duration::from_millis(500).max(renew / 8)
            } else {
                renew
            })
            .await;
        }
    }
}

fn strip_heartbeats(s: &NodeStatus) -> NodeStatus {
    let mut s = s.clone();
    if let Some(c) = s.conditions.as_mut() {
        for c in c.iter_mut() {
            c.last_heartbeat_time = None;
            c.last_transition_time = None;
        }
    }
    s
}

fn node_ready(s: &NodeStatus) -> bool {
    s.conditions
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri::runtime::v1 as crirt;

    fn info() -> HostInfo {
        HostInfo {
            cpus: 2,
            memory_bytes: 24684084 * 1024,
            ephemeral_bytes: 100 * 1024 * 1024 * 1024,
            ..Default::default()
        }
    }

    #[test]
    fn host_parsing() {
        assert_eq!(
            parse_meminfo_total("MemTotal:       24684084 kB\nMemFree: 1 kB\n"),
            24684084 * 1024
        );
        assert_eq!(
            parse_os_release("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
    }

    #[test]
    fn capacity_and_allocatable() {
        let c = capacity(&info(), 110);
        assert_eq!(c["cpu"].0, "2");
        assert_eq!(c["memory"].0, "24684084Ki");
        assert_eq!(c["pods"].0, "110");
        assert_eq!(c["ephemeral-storage"].0, "100Gi");
        let ev: BTreeMap<String, String> = [
            ("memory.available".to_string(), "100Mi".to_string()),
            ("nodefs.available".to_string(), "10%".to_string()),
        ]
        .into();
        let a = allocatable(&info(), 110, &ev);
        assert_eq!(a["memory"].0, "24581684Ki");
        assert_eq!(a["ephemeral-storage"].0, "90Gi");
        assert_eq!(a["cpu"].0, "2");
    }

    #[test]
    fn ready_condition() {
        let ok = crirt::StatusResponse {
            status: Some(crirt::RuntimeStatus {
                conditions: vec![
                    crirt::RuntimeCondition {
                        r#type: "RuntimeReady".into(),
                        status: true,
                        ..Default::default()
                    },
                    crirt::RuntimeCondition {
                        r#type: "NetworkReady".into(),
                        status: true,
                        ..Default::default()
                    },
                ],
            }),
            ..Default::default()
        };
        assert_eq!(runtime_problems(&Ok(ok.clone())), None);
        let c = conditions(None);
        assert_eq!(c[3].reason.as_deref(), Some("KubeletReady"));
        assert_eq!(
            c[3].message.as_deref(),
            Some("kubelet is posting ready status")
        );
        let mut bad = ok;
        bad.status.as_mut().unwrap().conditions[1] = crirt::RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: false,
            reason: "NetworkPluginNotReady".into(),
            message: "Network plugin returns error: cni plugin not initialized".into(),
        };
        let p = runtime_problems(&Ok(bad)).unwrap();
        assert_eq!(
            p,
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"
        );
        let c = conditions(Some(&p));
        assert_eq!(
            (c[3].status.as_str(), c[3].reason.as_deref()),
            ("False", Some("KubeletNotReady"))
        );
        assert_eq!(c[0].reason.as_deref(), Some("KubeletHasSufficientMemory"));
    }

    #[test]
    fn transition_times() {
        let mut a = conditions(None);
        stamp_conditions(&mut a, &[]);
        let mut b = conditions(None);
        let mut old = a.clone();
        old[3].last_transition_time = Some(crate::pods::time::time_from_nanos(0));
        stamp_conditions(&mut b, &old);
        assert_eq!(
            b[3].last_transition_time,
            Some(crate::pods::time::time_from_nanos(0))
        );
    }
}
