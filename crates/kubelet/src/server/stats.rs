//! `/stats/summary` (upstream's Summary API), `/metrics/resource` and
//! `/metrics/cadvisor`.
//!
//! Node figures come from the host: CPU from `/proc/stat`, memory from
//! `/proc/meminfo` and `/proc/vmstat`, the filesystem of the kubelet's root
//! directory from `statvfs`, network from `/proc/net/dev` (the node's
//! network namespace). Pod and container figures come from the runtime's
//! cgroup accounting through CRI `ListContainerStats` /
//! `ListPodSandboxStats` (pods without sandbox stats sum their containers).
//! CPU rates (`usageNanoCores`) are taken from the runtime when it gives
//! them, else computed here from successive cumulative samples.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use cri::runtime::v1::{
    ContainerFilter, ContainerState, ContainerStateValue, ContainerStats,
    ListContainerStatsRequest, ListContainersRequest, ListPodSandboxRequest,
    ListPodSandboxStatsRequest, PodSandboxFilter, PodSandboxState, PodSandboxStateValue,
    PodSandboxStats,
};
use http::Response;
use serde_json::{json, Map, Value};

use super::streaming::{LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};
use super::{full, json as json_response, text, Body, State};

const NANOS: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct RateState {
    t: u64,
    usage: u64,
    rate: Option<u64>,
    seen: u64,
}

/// Keeps previous cumulative CPU samples to derive rates.
#[derive(Default)]
pub struct Collector {
    rates: Mutex<HashMap<String, RateState>>,
}

impl Collector {
    /// Rate in nanocores for `key` given cumulative `usage` ns at time `t` ns.
    fn rate(&self, key: &str, t: u64, usage: u64) -> Option<u64> {
        let Ok(mut m) = self.rates.lock() else {
            return None;
        };
        match m.get_mut(key) {
            None => {
                m.insert(
                    key.to_string(),
                    RateState {
                        t,
                        usage,
                        rate: None,
                        seen: t,
                    },
                );
                None
            }
            Some(s) => {
                s.seen = t;
                let dt = t.saturating_sub(s.t);
                // Recompute over at least 1 s (100 ms for the first rate).
                let min = if s.rate.is_some() { NANOS } else { NANOS / 10 };
                if dt >= min {
                    let r =
                        (usage.saturating_sub(s.usage) as u128 * NANOS as u128 / dt as u128) as u64;
                    *s = RateState {
                        t,
                        usage,
                        rate: Some(r),
                        seen: t,
                    };
                }
                s.rate
            }
        }
    }

    fn has_rate(&self, key: &str) -> bool {
        self.rates
            .lock()
            .map(|m| m.get(key).is_some_and(|s| s.rate.is_some()))
            .unwrap_or(false)
    }

    fn prune(&self, now: u64) {
        if let Ok(mut m) = self.rates.lock() {
            m.retain(|_, s| now.saturating_sub(s.seen) < 600 * NANOS);
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Cpu {
    pub time: u64,
    pub nano_cores: Option<u64>,
    pub core_ns: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub time: u64,
    pub available: Option<u64>,
    pub usage: Option<u64>,
    pub working_set: Option<u64>,
    pub rss: Option<u64>,
    pub page_faults: Option<u64>,
    pub major_page_faults: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Fs {
    pub time: u64,
    pub available: Option<u64>,
    pub capacity: Option<u64>,
    pub used: Option<u64>,
    pub inodes_free: Option<u64>,
    pub inodes: Option<u64>,
    pub inodes_used: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Iface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_errors: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ContainerSummary {
    pub name: String,
    pub start: u64,
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
    pub rootfs: Option<Fs>,
    pub logs: Option<Fs>,
}

#[derive(Debug, Clone, Default)]
pub struct PodSummary {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub start: u64,
    pub containers: Vec<ContainerSummary>,
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
    pub network: Option<(u64, Vec<Iface>)>,
    pub processes: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct NodeSummary {
    pub name: String,
    pub start: u64,
    pub cpu: Cpu,
    pub memory: Memory,
    pub fs: Fs,
    pub network: Option<(u64, Vec<Iface>)>,
    pub kubelet: (Cpu, Memory),
    pub max_pid: Option<u64>,
    pub cur_proc: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub node: NodeSummary,
    pub pods: Vec<PodSummary>,
    /// The runtime's stats could not be read.
    pub scrape_error: bool,
}

fn now_ns() -> u64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(0).max(0) as u64
}

fn rfc3339(ns: u64) -> String {
    let t: DateTime<Utc> = Utc.timestamp_nanos(ns as i64);
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

/// Cumulative busy CPU time of the host in ns, and boot time (ns since epoch).
pub fn parse_proc_stat(s: &str, tck: u64) -> (Option<u64>, Option<u64>) {
    let mut busy = None;
    let mut btime = None;
    for line in s.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
                // user nice system idle iowait irq softirq steal
                if v.len() >= 4 {
                    let get = |i: usize| v.get(i).copied().unwrap_or(0);
                    let ticks = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
                    busy = Some(ticks.saturating_mul(NANOS) / tck.max(1));
                }
            }
            Some("btime") => {
                btime = f
                    .next()
                    .and_then(|x| x.parse::<u64>().ok())
                    .map(|s| s * NANOS)
            }
            _ => {}
        }
    }
    (busy, btime)
}

/// `/proc/meminfo` values in bytes, by name.
pub fn parse_meminfo(s: &str) -> HashMap<String, u64> {
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let mut it = v.split_whitespace();
            let n: u64 = it.next()?.parse().ok()?;
            let mult = if it.next() == Some("kB") { 1024 } else { 1 };
            Some((k.trim().to_string(), n * mult))
        })
        .collect()
}

fn parse_vmstat(s: &str) -> HashMap<String, u64> {
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Interfaces from `/proc/net/dev`, without loopback.
pub fn parse_net_dev(s: &str) -> Vec<Iface> {
    s.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim().to_string();
            if name == "lo" {
                return None;
            }
            let v: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if v.len() < 11 {
                return None;
            }
            Some(Iface {
                name,
                rx_bytes: v[0],
                rx_errors: v[2],
                tx_bytes: v[8],
                tx_errors: v[10],
            })
        })
        .collect()
}

fn statvfs(path: &Path) -> Option<Fs> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    let blocks = st.f_blocks as u64;
    Some(Fs {
        time: now_ns(),
        capacity: Some(blocks * frsize),
        available: Some(st.f_bavail as u64 * frsize),
        used: Some(blocks.saturating_sub(st.f_bfree as u64) * frsize),
        inodes: Some(st.f_files as u64),
        inodes_free: Some(st.f_ffree as u64),
        inodes_used: Some((st.f_files as u64).saturating_sub(st.f_ffree as u64)),
    })
}

/// Bytes used by the files under `dir` (not following symlinks).
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

fn node_cpu(c: &Collector) -> (Cpu, u64) {
    let now = now_ns();
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let (busy, btime) = parse_proc_stat(&s, clk_tck());
    let nano_cores = busy.and_then(|b| c.rate("node", now, b));
    (
        Cpu {
            time: now,
            nano_cores,
            core_ns: busy,
        },
        btime.unwrap_or(0),
    )
}

fn node_memory() -> Memory {
    let m = parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
    let v = parse_vmstat(&std::fs::read_to_string("/proc/vmstat").unwrap_or_default());
    let total = m.get("MemTotal").copied();
    let free = m.get("MemFree").copied().unwrap_or(0);
    let usage = total.map(|t| t.saturating_sub(free));
    let inactive_file = m.get("Inactive(file)").copied().unwrap_or(0);
    let ws = usage.map(|u| u.saturating_sub(inactive_file));
    Memory {
        time: now_ns(),
        available: total.zip(ws).map(|(t, w)| t.saturating_sub(w)),
        usage,
        working_set: ws,
        rss: m.get("AnonPages").copied(),
        page_faults: v.get("pgfault").copied(),
        major_page_faults: v.get("pgmajfault").copied(),
    }
}

fn kubelet_self(c: &Collector) -> (Cpu, Memory) {
    let now = now_ns();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command: utime is the 14th field, stime the 15th.
    let cpu_ns = stat.rsplit_once(')').and_then(|(_, rest)| {
        let f: Vec<&str> = rest.split_whitespace().collect();
        let u: u64 = f.get(11)?.parse().ok()?;
        let s: u64 = f.get(12)?.parse().ok()?;
        Some((u + s).saturating_mul(NANOS) / clk_tck())
    });
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = parse_meminfo(&status).get("VmRSS").copied();
    (
        Cpu {
            time: now,
            nano_cores: cpu_ns.and_then(|n| c.rate("kubelet", now, n)),
            core_ns: cpu_ns,
        },
        Memory {
            time: now,
            usage: rss,
            working_set: rss,
            rss,
            ..Default::default()
        },
    )
}

fn uval(v: &Option<cri::runtime::v1::UInt64Value>) -> Option<u64> {
    v.as_ref().map(|x| x.value)
}

fn cri_cpu(c: &Collector, key: &str, cpu: &Option<cri::runtime::v1::CpuUsage>) -> Option<Cpu> {
    let cpu = cpu.as_ref()?;
    let t = if cpu.timestamp > 0 {
        cpu.timestamp as u64
    } else {
        now_ns()
    };
    let core_ns = uval(&cpu.usage_core_nano_seconds);
    let ours = core_ns.and_then(|u| c.rate(key, t, u));
    let nano_cores = uval(&cpu.usage_nano_cores).filter(|n| *n > 0).or(ours);
    Some(Cpu {
        time: t,
        nano_cores,
        core_ns,
    })
}

fn cri_memory(m: &Option<cri::runtime::v1::MemoryUsage>) -> Option<Memory> {
    let m = m.as_ref()?;
    Some(Memory {
        time: if m.timestamp > 0 {
            m.timestamp as u64
        } else {
            now_ns()
        },
        available: uval(&m.available_bytes).filter(|v| *v > 0),
        usage: uval(&m.usage_bytes),
        working_set: uval(&m.working_set_bytes),
        rss: uval(&m.rss_bytes),
        page_faults: uval(&m.page_faults),
        major_page_faults: uval(&m.major_page_faults),
    })
}

fn sum_cpu(list: &[&Cpu]) -> Option<Cpu> {
    if list.is_empty() {
        return None;
    }
    let add = |f: fn(&Cpu) -> Option<u64>| -> Option<u64> {
        list.iter()
            .map(|c| f(c))
            .try_fold(0u64, |a, v| v.map(|v| a + v))
    };
    Some(Cpu {
        time: list.iter().map(|c| c.time).max().unwrap_or(0),
        nano_cores: add(|c| c.nano_cores),
        core_ns: add(|c| c.core_ns),
    })
}

fn sum_memory(list: &[&Memory]) -> Option<Memory> {
    if list.is_empty() {
        return None;
    }
    let add = |f: fn(&Memory) -> Option<u64>| -> Option<u64> {
        list.iter()
            .map(|c| f(c))
            .try_fold(0u64, |a, v| v.map(|v| a + v))
    };
    Some(Memory {
        time: list.iter().map(|c| c.time).max().unwrap_or(0),
        available: None,
        usage: add(|m| m.usage),
        working_set: add(|m| m.working_set),
        rss: add(|m| m.rss),
        page_faults: add(|m| m.page_faults),
        major_page_faults: add(|m| m.major_page_faults),
    })
}

/// Gather the summary once.
async fn collect(state: &State) -> Summary {
    let c = &state.stats;
    let (cpu, boot) = node_cpu(c);
    let net = parse_net_dev(&std::fs::read_to_string("/proc/net/dev").unwrap_or_default());
    let cur_proc = std::fs::read_dir("/proc").ok().map(|rd| {
        rd.flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            })
            .count() as u64
    });
    let node = NodeSummary {
        name: state.deps.node_name.clone(),
        start: boot,
        cpu,
        memory: node_memory(),
        fs: statvfs(&state.deps.root_dir).unwrap_or_default(),
        network: Some((now_ns(), net)),
        kubelet: kubelet_self(c),
        max_pid: std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        cur_proc,
    };
    let mut rt = state.runtime();
    let mut scrape_error = false;
    let sandboxes = match rt
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                state: Some(PodSandboxStateValue {
                    state: PodSandboxState::SandboxReady as i32,
                }),
                ..Default::default()
            }),
        })
        .await
    {
        Ok(r) => r.into_inner().items,
        Err(e) => {
            tracing::debug!(error = %e, "listing sandboxes for stats");
            scrape_error = true;
            Vec::new()
        }
    };
    let containers = match rt
        .list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                state: Some(ContainerStateValue {
                    state: ContainerState::ContainerRunning as i32,
                }),
                ..Default::default()
            }),
        })
        .await
    {
        Ok(r) => r.into_inner().containers,
        Err(_) => {
            scrape_error = true;
            Vec::new()
        }
    };
    let cstats: HashMap<String, ContainerStats> = match rt
        .list_container_stats(ListContainerStatsRequest { filter: None })
        .await
    {
        Ok(r) => r
            .into_inner()
            .stats
            .into_iter()
            .filter_map(|s| Some((s.attributes.as_ref()?.id.clone(), s)))
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "listing container stats");
            scrape_error = true;
            HashMap::new()
        }
    };
    // Sandbox stats are optional (older runtimes do not implement them).
    let sstats: HashMap<String, PodSandboxStats> = match rt
        .list_pod_sandbox_stats(ListPodSandboxStatsRequest { filter: None })
        .await
    {
        Ok(r) => r
            .into_inner()
            .stats
            .into_iter()
            .filter_map(|s| Some((s.attributes.as_ref()?.id.clone(), s)))
            .collect(),
        Err(_) => HashMap::new(),
    };
    let mut pods = Vec::new();
    for sb in sandboxes {
        let md = sb.metadata.clone().unwrap_or_default();
        let label = |k: &str, dflt: &str| {
            sb.labels
                .get(k)
                .cloned()
                .unwrap_or_else(|| dflt.to_string())
        };
        let ns = label(LABEL_POD_NAMESPACE, &md.namespace);
        let name = label(LABEL_POD_NAME, &md.name);
        let uid = label(LABEL_POD_UID, &md.uid);
        let pod_dir = crate::logs::pod_log_dir(&state.deps.pod_logs_dir, &ns, &name, &uid);
        let mut cs: Vec<ContainerSummary> = Vec::new();
        for ctr in containers.iter().filter(|x| x.pod_sandbox_id == sb.id) {
            let cname = ctr
                .labels
                .get(LABEL_CONTAINER_NAME)
                .cloned()
                .or_else(|| ctr.metadata.as_ref().map(|m| m.name.clone()))
                .unwrap_or_default();
            let st = cstats.get(&ctr.id);
            let rootfs = st.and_then(|s| s.writable_layer.as_ref()).map(|w| Fs {
                time: if w.timestamp > 0 {
                    w.timestamp as u64
                } else {
                    now_ns()
                },
                used: uval(&w.used_bytes),
                inodes_used: uval(&w.inodes_used),
                capacity: node.fs.capacity,
                available: node.fs.available,
                inodes: node.fs.inodes,
                inodes_free: node.fs.inodes_free,
            });
            let logs_used = du(&pod_dir.join(&cname));
            cs.push(ContainerSummary {
                name: cname,
                start: ctr.created_at.max(0) as u64,
                cpu: st.and_then(|s| cri_cpu(c, &ctr.id, &s.cpu)),
                memory: st.and_then(|s| cri_memory(&s.memory)),
                rootfs,
                logs: Some(Fs {
                    time: now_ns(),
                    used: Some(logs_used),
                    capacity: node.fs.capacity,
                    available: node.fs.available,
                    inodes: node.fs.inodes,
                    inodes_free: node.fs.inodes_free,
                    inodes_used: None,
                }),
            });
        }
        let linux = sstats.get(&sb.id).and_then(|s| s.linux.as_ref());
        let cpu = linux
            .and_then(|l| cri_cpu(c, &format!("pod/{}", sb.id), &l.cpu))
            .filter(|c| c.core_ns.is_some())
            .or_else(|| sum_cpu(&cs.iter().filter_map(|c| c.cpu.as_ref()).collect::<Vec<_>>()));
        let memory = linux
            .and_then(|l| cri_memory(&l.memory))
            .filter(|m| m.working_set.is_some())
            .or_else(|| {
                sum_memory(
                    &cs.iter()
                        .filter_map(|c| c.memory.as_ref())
                        .collect::<Vec<_>>(),
                )
            });
        let network = linux.and_then(|l| l.network.as_ref()).map(|n| {
            let conv = |i: &cri::runtime::v1::NetworkInterfaceUsage| Iface {
                name: i.name.clone(),
                rx_bytes: uval(&i.rx_bytes).unwrap_or(0),
                rx_errors: uval(&i.rx_errors).unwrap_or(0),
                tx_bytes: uval(&i.tx_bytes).unwrap_or(0),
                tx_errors: uval(&i.tx_errors).unwrap_or(0),
            };
            let mut ifs: Vec<Iface> = n.interfaces.iter().map(conv).collect();
            if ifs.is_empty() {
                ifs.extend(n.default_interface.iter().map(conv));
            }
            (n.timestamp.max(0) as u64, ifs)
        });
        let processes = linux
            .and_then(|l| l.process.as_ref())
            .and_then(|p| uval(&p.process_count));
        pods.push(PodSummary {
            namespace: ns,
            name,
            uid,
            start: sb.created_at.max(0) as u64,
            containers: cs,
            cpu,
            memory,
            network,
            processes,
        });
    }
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    c.prune(now_ns());
    Summary {
        node,
        pods,
        scrape_error,
    }
}

/// Gather the summary; the first time, sample twice so CPU rates exist.
pub(crate) async fn gather(state: &State) -> Summary {
    if !state.stats.has_rate("node") {
        let _ = collect(state).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    collect(state).await
}

fn put(m: &mut Map<String, Value>, k: &str, v: Option<u64>) {
    if let Some(v) = v {
        m.insert(k.into(), json!(v));
    }
}

fn cpu_json(c: &Cpu) -> Value {
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339(c.time)));
    put(&mut m, "usageNanoCores", c.nano_cores);
    put(&mut m, "usageCoreNanoSeconds", c.core_ns);
    Value::Object(m)
}

fn memory_json(x: &Memory) -> Value {
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339(x.time)));
    put(&mut m, "availableBytes", x.available);
    put(&mut m, "usageBytes", x.usage);
    put(&mut m, "workingSetBytes", x.working_set);
    put(&mut m, "rssBytes", x.rss);
    put(&mut m, "pageFaults", x.page_faults);
    put(&mut m, "majorPageFaults", x.major_page_faults);
    Value::Object(m)
}

fn fs_json(f: &Fs) -> Value {
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339(f.time)));
    put(&mut m, "availableBytes", f.available);
    put(&mut m, "capacityBytes", f.capacity);
    put(&mut m, "usedBytes", f.used);
    put(&mut m, "inodesFree", f.inodes_free);
    put(&mut m, "inodes", f.inodes);
    put(&mut m, "inodesUsed", f.inodes_used);
    Value::Object(m)
}

fn iface_json(i: &Iface) -> Value {
    json!({"name": i.name, "rxBytes": i.rx_bytes, "rxErrors": i.rx_errors, "txBytes": i.tx_bytes, "txErrors": i.tx_errors})
}

fn network_json((t, ifs): &(u64, Vec<Iface>)) -> Value {
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339(*t)));
    let primary = ifs.iter().find(|i| i.name == "eth0").or(ifs.first());
    if let Some(Value::Object(p)) = primary.map(iface_json) {
        m.extend(p);
    }
    m.insert(
        "interfaces".into(),
        Value::Array(ifs.iter().map(iface_json).collect()),
    );
    Value::Object(m)
}

/// The Summary API JSON. `cpu_and_memory_only` drops fs and network figures.
pub fn summary_json(s: &Summary, cpu_and_memory_only: bool) -> Value {
    let n = &s.node;
    let mut pods_cpu = Vec::new();
    let mut pods_mem = Vec::new();
    for p in &s.pods {
        if let Some(c) = &p.cpu {
            pods_cpu.push(c);
        }
        if let Some(m) = &p.memory {
            pods_mem.push(m);
        }
    }
    let mut system = vec![json!({
        "name": "kubelet",
        "startTime": rfc3339(n.start),
        "cpu": cpu_json(&n.kubelet.0),
        "memory": memory_json(&n.kubelet.1),
    })];
    let mut pods_sc = Map::new();
    pods_sc.insert("name".into(), json!("pods"));
    pods_sc.insert("startTime".into(), json!(rfc3339(n.start)));
    if let Some(c) = sum_cpu(&pods_cpu) {
        pods_sc.insert("cpu".into(), cpu_json(&c));
    }
    if let Some(m) = sum_memory(&pods_mem) {
        let mut m = m;
        m.available = n.memory.available;
        pods_sc.insert("memory".into(), memory_json(&m));
    }
    system.push(Value::Object(pods_sc));
    let mut node = Map::new();
    node.insert("nodeName".into(), json!(n.name));
    node.insert("systemContainers".into(), Value::Array(system));
    node.insert("startTime".into(), json!(rfc3339(n.start)));
    node.insert("cpu".into(), cpu_json(&n.cpu));
    node.insert("memory".into(), memory_json(&n.memory));
    if !cpu_and_memory_only {
        if let Some(net) = &n.network {
            node.insert("network".into(), network_json(net));
        }
        node.insert("fs".into(), fs_json(&n.fs));
        let mut rl = Map::new();
        rl.insert("time".into(), json!(rfc3339(now_ns())));
        put(&mut rl, "maxpid", n.max_pid);
        put(&mut rl, "curproc", n.cur_proc);
        node.insert("rlimit".into(), Value::Object(rl));
    }
    let pods: Vec<Value> = s
        .pods
        .iter()
        .map(|p| {
            let mut m = Map::new();
            m.insert(
                "podRef".into(),
                json!({"name": p.name, "namespace": p.namespace, "uid": p.uid}),
            );
            m.insert("startTime".into(), json!(rfc3339(p.start)));
            let containers: Vec<Value> = p
                .containers
                .iter()
                .map(|c| {
                    let mut cm = Map::new();
                    cm.insert("name".into(), json!(c.name));
                    cm.insert("startTime".into(), json!(rfc3339(c.start)));
                    if let Some(x) = &c.cpu {
                        cm.insert("cpu".into(), cpu_json(x));
                    }
                    if let Some(x) = &c.memory {
                        cm.insert("memory".into(), memory_json(x));
                    }
                    if !cpu_and_memory_only {
                        if let Some(x) = &c.rootfs {
                            cm.insert("rootfs".into(), fs_json(x));
                        }
                        if let Some(x) = &c.logs {
                            cm.insert("logs".into(), fs_json(x));
                        }
                    }
                    Value::Object(cm)
                })
                .collect();
            m.insert("containers".into(), Value::Array(containers));
            if let Some(x) = &p.cpu {
                m.insert("cpu".into(), cpu_json(x));
            }
            if let Some(x) = &p.memory {
                m.insert("memory".into(), memory_json(x));
            }
            if !cpu_and_memory_only {
                if let Some(net) = &p.network {
                    m.insert("network".into(), network_json(net));
                }
                m.insert("volume".into(), json!([]));
                let used: u64 = p
                    .containers
                    .iter()
                    .map(|c| {
                        c.rootfs.as_ref().and_then(|f| f.used).unwrap_or(0)
                            + c.logs.as_ref().and_then(|f| f.used).unwrap_or(0)
                    })
                    .sum();
                m.insert(
                    "ephemeral-storage".into(),
                    fs_json(&Fs {
                        time: now_ns(),
                        available: n.fs.available,
                        capacity: n.fs.capacity,
                        used: Some(used),
                        inodes_free: n.fs.inodes_free,
                        inodes: n.fs.inodes,
                        inodes_used: None,
                    }),
                );
            }
            if let Some(pc) = p.processes {
                m.insert("process_stats".into(), json!({"process_count": pc}));
            }
            Value::Object(m)
        })
        .collect();
    json!({"node": Value::Object(node), "pods": pods})
}

pub(crate) async fn summary(state: &State, query: &str) -> Response<Body> {
    let only = url::form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k == "only_cpu_and_memory" && v == "true");
    let s = gather(state).await;
    json_response(200, &summary_json(&s, only))
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn secs(ns: u64) -> f64 {
    ns as f64 / NANOS as f64
}

/// Upstream's `/metrics/resource` (what metrics-server scrapes).
pub fn resource_metrics_text(s: &Summary) -> String {
    let mut o = String::new();
    let ms = |ns: u64| ns / 1_000_000;
    let _ = writeln!(o, "# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds\n# TYPE container_cpu_usage_seconds_total counter");
    for p in &s.pods {
        for c in &p.containers {
            if let Some(cpu) = c.cpu.as_ref().filter(|c| c.core_ns.is_some()) {
                let _ = writeln!(o, "container_cpu_usage_seconds_total{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}} {} {}", esc(&c.name), esc(&p.namespace), esc(&p.name), secs(cpu.core_ns.unwrap_or(0)), ms(cpu.time));
            }
        }
    }
    let _ = writeln!(o, "# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes\n# TYPE container_memory_working_set_bytes gauge");
    for p in &s.pods {
        for c in &p.containers {
            if let Some(m) = c.memory.as_ref().filter(|m| m.working_set.is_some()) {
                let _ = writeln!(o, "container_memory_working_set_bytes{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}} {} {}", esc(&c.name), esc(&p.namespace), esc(&p.name), m.working_set.unwrap_or(0), ms(m.time));
            }
        }
    }
    let _ = writeln!(o, "# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds\n# TYPE container_start_time_seconds gauge");
    for p in &s.pods {
        for c in &p.containers {
            let _ = writeln!(
                o,
                "container_start_time_seconds{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}} {}",
                esc(&c.name),
                esc(&p.namespace),
                esc(&p.name),
                secs(c.start)
            );
        }
    }
    let n = &s.node;
    let _ = writeln!(o, "# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds\n# TYPE node_cpu_usage_seconds_total counter");
    if let Some(c) = n.cpu.core_ns {
        let _ = writeln!(
            o,
            "node_cpu_usage_seconds_total {} {}",
            secs(c),
            ms(n.cpu.time)
        );
    }
    let _ = writeln!(o, "# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes\n# TYPE node_memory_working_set_bytes gauge");
    if let Some(w) = n.memory.working_set {
        let _ = writeln!(
            o,
            "node_memory_working_set_bytes {} {}",
            w,
            ms(n.memory.time)
        );
    }
    let _ = writeln!(o, "# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds\n# TYPE pod_cpu_usage_seconds_total counter");
    for p in &s.pods {
        if let Some(c) = p.cpu.as_ref().and_then(|c| c.core_ns.map(|v| (v, c.time))) {
            let _ = writeln!(
                o,
                "pod_cpu_usage_seconds_total{{namespace=\"{}\",pod=\"{}\"}} {} {}",
                esc(&p.namespace),
                esc(&p.name),
                secs(c.0),
                ms(c.1)
            );
        }
    }
    let _ = writeln!(o, "# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes\n# TYPE pod_memory_working_set_bytes gauge");
    for p in &s.pods {
        if let Some(m) = p
            .memory
            .as_ref()
            .and_then(|m| m.working_set.map(|v| (v, m.time)))
        {
            let _ = writeln!(
                o,
                "pod_memory_working_set_bytes{{namespace=\"{}\",pod=\"{}\"}} {} {}",
                esc(&p.namespace),
                esc(&p.name),
                m.0,
                ms(m.1)
            );
        }
    }
    let _ = writeln!(o, "# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise\n# TYPE resource_scrape_error gauge\nresource_scrape_error {}", u8::from(s.scrape_error));
    o
}

/// Picks one figure from CPU and memory stats.
type Pick = dyn Fn(Option<&Cpu>, Option<&Memory>) -> Option<f64>;

/// A small subset of cAdvisor's metrics, per container and for the root ("/").
pub fn cadvisor_metrics_text(s: &Summary) -> String {
    let mut o = String::new();
    let rows = |o: &mut String, name: &str, help: &str, kind: &str, f: &Pick| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        if let Some(v) = f(Some(&s.node.cpu), Some(&s.node.memory)) {
            let _ = writeln!(o, "{name}{{container=\"\",id=\"/\",image=\"\",name=\"\",namespace=\"\",pod=\"\"}} {v}");
        }
        for p in &s.pods {
            for c in &p.containers {
                if let Some(v) = f(c.cpu.as_ref(), c.memory.as_ref()) {
                    let _ = writeln!(o, "{name}{{container=\"{}\",id=\"\",image=\"\",name=\"\",namespace=\"{}\",pod=\"{}\"}} {v}", esc(&c.name), esc(&p.namespace), esc(&p.name));
                }
            }
        }
    };
    rows(
        &mut o,
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        "counter",
        &|c, _| c.and_then(|c| c.core_ns).map(secs),
    );
    rows(
        &mut o,
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        "gauge",
        &|_, m| m.and_then(|m| m.working_set).map(|v| v as f64),
    );
    rows(
        &mut o,
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        "gauge",
        &|_, m| m.and_then(|m| m.usage).map(|v| v as f64),
    );
    rows(
        &mut o,
        "container_memory_rss",
        "Size of RSS in bytes.",
        "gauge",
        &|_, m| m.and_then(|m| m.rss).map(|v| v as f64),
    );
    o
}

fn prom(body: String) -> Response<Body> {
    Response::builder()
        .status(200)
        .header(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(full(body))
        .unwrap_or_else(|_| text(500, "encoding metrics"))
}

pub(crate) async fn resource_metrics(state: &State) -> Response<Body> {
    prom(resource_metrics_text(&gather(state).await))
}

pub(crate) async fn cadvisor_metrics(state: &State) -> Response<Body> {
    prom(cadvisor_metrics_text(&gather(state).await))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_parsers() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 1 2 3 4\nbtime 1700000000\n";
        let (busy, btime) = parse_proc_stat(stat, 100);
        assert_eq!(busy, Some(161 * NANOS / 100));
        assert_eq!(btime, Some(1_700_000_000 * NANOS));
        let mi = parse_meminfo("MemTotal:       16000 kB\nMemFree:  4000 kB\nHugePages_Total: 0\n");
        assert_eq!(mi["MemTotal"], 16000 * 1024);
        assert_eq!(mi["HugePages_Total"], 0);
        let dev = "Inter-|   Receive  |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n  eth0: 1000 10 2 0 0 0 0 0 2000 20 3 0 0 0 0 0\n";
        let ifs = parse_net_dev(dev);
        assert_eq!(ifs.len(), 1);
        assert_eq!(
            (
                ifs[0].rx_bytes,
                ifs[0].rx_errors,
                ifs[0].tx_bytes,
                ifs[0].tx_errors
            ),
            (1000, 2, 2000, 3)
        );
    }

    #[test]
    fn rates_from_cumulative_samples() {
        let c = Collector::default();
        assert_eq!(c.rate("k", 0, 0), None);
        // Half a core over 200 ms.
        assert_eq!(c.rate("k", 200_000_000, 100_000_000), Some(500_000_000));
        // Within a second of the last rate: the cached value.
        assert_eq!(c.rate("k", 300_000_000, 300_000_000), Some(500_000_000));
        assert_eq!(
            c.rate("k", 1_200_000_000, 1_100_000_000),
            Some(1_000_000_000)
        );
        c.prune(10_000 * NANOS);
        assert!(!c.has_rate("k"));
    }

    #[test]
    fn summary_shape() {
        let s = Summary {
            node: NodeSummary {
                name: "n1".into(),
                cpu: Cpu {
                    time: 1,
                    nano_cores: Some(5),
                    core_ns: Some(10),
                },
                memory: Memory {
                    time: 1,
                    working_set: Some(7),
                    usage: Some(9),
                    ..Default::default()
                },
                ..Default::default()
            },
            pods: vec![PodSummary {
                namespace: "default".into(),
                name: "p".into(),
                uid: "u".into(),
                containers: vec![ContainerSummary {
                    name: "c".into(),
                    cpu: Some(Cpu {
                        time: 1,
                        nano_cores: Some(3),
                        core_ns: Some(4_000_000_000),
                    }),
                    memory: Some(Memory {
                        time: 1,
                        working_set: Some(2),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                cpu: Some(Cpu {
                    time: 1,
                    nano_cores: Some(3),
                    core_ns: Some(4_000_000_000),
                }),
                memory: Some(Memory {
                    time: 1,
                    working_set: Some(2),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            scrape_error: false,
        };
        let v = summary_json(&s, false);
        assert_eq!(v["node"]["nodeName"], "n1");
        assert_eq!(v["node"]["cpu"]["usageNanoCores"], 5);
        assert_eq!(v["node"]["memory"]["workingSetBytes"], 7);
        assert_eq!(v["pods"][0]["podRef"]["name"], "p");
        assert_eq!(
            v["pods"][0]["containers"][0]["cpu"]["usageCoreNanoSeconds"],
            4_000_000_000u64
        );
        assert!(v["node"]["fs"].is_object());
        let v = summary_json(&s, true);
        assert!(v["node"].get("fs").is_none());
        let m = resource_metrics_text(&s);
        assert!(m.contains("container_cpu_usage_seconds_total{container=\"c\",namespace=\"default\",pod=\"p\"} 4 "), "{m}");
        assert!(m.contains("resource_scrape_error 0"));
        let m = cadvisor_metrics_text(&s);
        assert!(
            m.contains("container_memory_working_set_bytes{container=\"c\""),
            "{m}"
        );
    }
}
