//! Finding and removing what a cluster's nodes leave on the host besides
//! the daemons ferrokube started itself: containerd shims and container
//! processes, mounts (overlay rootfs, shm, netns bind mounts, tmpfs
//! volumes) and cgroups. All of it works from the host's view (/proc,
//! /proc/self/mountinfo, the cgroup hierarchies), so it also cleans up
//! after a crash that lost the cluster's state file.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use component_base::mounts::{mounts, MountInfo};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// `(dev, inode)` of a namespace file (nsfs bind mount or /proc/<pid>/ns/*).
pub fn ns_id(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// What identifies a cluster's leftover processes.
#[derive(Debug, Clone, Default)]
pub struct Leftovers {
    /// Network namespaces (node namespaces, pod namespaces).
    pub netns: HashSet<(u64, u64)>,
    /// cgroup path prefix (e.g. `/ferrokube/<cluster>`): a process in it or
    /// below, in any hierarchy, belongs to the cluster.
    pub cgroup_prefix: Option<String>,
    /// A containerd shim whose command line mentions one of these (the
    /// node's containerd socket, the cluster directory) is the cluster's.
    pub shim_markers: Vec<String>,
}

fn proc_cmdline(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn in_cgroup(pid: i32, prefix: &str) -> bool {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    text.lines().any(|l| {
        // hierarchy-id:controllers:path
        l.splitn(3, ':').nth(2).is_some_and(|p| {
            p == prefix
                || p.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    })
}

/// `(state, ppid)` from /proc/<pid>/stat.
fn stat_state_ppid(pid: i32) -> Option<(char, i32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

impl Leftovers {
    fn is_shim(&self, pid: i32) -> bool {
        if self.shim_markers.is_empty() {
            return false;
        }
        let cmd = proc_cmdline(pid);
        cmd.first().is_some_and(|c| c.contains("containerd-shim"))
            && cmd
                .iter()
                .any(|a| self.shim_markers.iter().any(|m| a.contains(m.as_str())))
    }

    /// Whether process `pid` itself belongs to the cluster: in one of its
    /// network namespaces or cgroups, or one of its containerd shims.
    pub fn matches(&self, pid: i32) -> bool {
        if !self.netns.is_empty() {
            if let Some(id) = ns_id(Path::new(&format!("/proc/{pid}/ns/net"))) {
                if self.netns.contains(&id) {
                    return true;
                }
            }
        }
        if let Some(prefix) = &self.cgroup_prefix {
            if in_cgroup(pid, prefix) {
                return true;
            }
        }
        self.is_shim(pid)
    }

    /// Live processes of the cluster (never ourselves or pid 1): those that
    /// [`matches`](Self::matches), plus the children of its shims (container
    /// init processes, wherever their namespaces and cgroups are). Shims
    /// come last.
    pub fn find(&self) -> Vec<i32> {
        let me = std::process::id() as i32;
        let Ok(entries) = fs::read_dir("/proc") else {
            return vec![];
        };
        let procs: Vec<(i32, i32)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| *pid > 1 && *pid != me)
            .filter_map(|pid| {
                let (state, ppid) = stat_state_ppid(pid)?;
                (state != 'Z' && state != 'X').then_some((pid, ppid))
            })
            .collect();
        let shims: HashSet<i32> = procs
            .iter()
            .map(|(pid, _)| *pid)
            .filter(|pid| self.is_shim(*pid))
            .collect();
        let mut out: Vec<i32> = procs
            .iter()
            .filter(|(pid, ppid)| {
                !shims.contains(pid) && (shims.contains(ppid) || self.matches(*pid))
            })
            .map(|(pid, _)| *pid)
            .collect();
        out.extend(shims);
        out
    }

    /// SIGKILL every matching process until none is left (or `timeout`).
    /// Returns how many were killed.
    pub fn kill_all(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut killed = HashSet::new();
        loop {
            let pids = self.find();
            if pids.is_empty() || Instant::now() >= deadline {
                if !pids.is_empty() {
                    tracing::warn!("processes still running after cleanup: {pids:?}");
                }
                return killed.len();
            }
            for pid in pids {
                tracing::debug!("killing leftover process {pid}: {:?}", proc_cmdline(pid));
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                // Reap it if it is our child.
                let _ = nix::sys::wait::waitpid(
                    Pid::from_raw(pid),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                );
                killed.insert(pid);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Mount points of every cgroup hierarchy (v1 controllers, named
/// hierarchies, and the v2 unified one).
pub fn cgroup_mounts(all: &[MountInfo]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = all
        .iter()
        .filter(|m| m.fs_type == "cgroup" || m.fs_type == "cgroup2")
        .map(|m| m.mount_point.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Remove cgroup directory `rel` (e.g. `ferrokube/<cluster>`) and all below
/// it in every hierarchy, deepest first; then its parent if left empty.
/// Returns the directories that could not be removed.
pub fn remove_cgroups(rel: &str) -> Vec<PathBuf> {
    let mut failed = Vec::new();
    for root in cgroup_mounts(&mounts()) {
        let top = root.join(rel);
        if !top.is_dir() {
            continue;
        }
        let mut dirs = Vec::new();
        collect_dirs(&top, &mut dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let mut ok = false;
            for _ in 0..20 {
                match fs::remove_dir(&d) {
                    Ok(()) => {
                        ok = true;
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        ok = true;
                        break;
                    }
                    // EBUSY while the last killed tasks are being released.
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            if !ok {
                failed.push(d);
            }
        }
        // The shared parent (`ferrokube`): only if nothing else is in it.
        if let Some(parent) = Path::new(rel)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            let _ = fs::remove_dir(root.join(parent));
        }
    }
    failed
}

/// Create cgroup directory `rel` (e.g. `ferrokube/<cluster>/<node>`) in
/// every hierarchy, as a node's `cgroupRoot` must exist before its kubelet
/// starts. New cpuset cgroups inherit their parent's CPUs and memory nodes
/// (cgroup v1 leaves them empty, and an empty cpuset takes no tasks).
pub fn create_cgroups(rel: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let rel = rel.trim_start_matches('/');
    for root in cgroup_mounts(&mounts()) {
        let mut dir = root.clone();
        for part in Path::new(rel).components() {
            let parent = dir.clone();
            dir.push(part);
            if dir.is_dir() {
                continue;
            }
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("creating cgroup {}", dir.display()))
                }
            }
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = fs::read_to_string(parent.join(f)) {
                    let _ = fs::write(dir.join(f), v.trim());
                }
            }
        }
    }
    Ok(())
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_hierarchies() {
        let all = component_base::mounts::parse_mountinfo(
            "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
33 22 0:43 / /h/cc rw - tmpfs tmpfs rw
34 22 0:44 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
35 22 0:45 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
36 22 0:44 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
",
        );
        assert_eq!(
            cgroup_mounts(&all),
            [
                PathBuf::from("/sys/fs/cgroup/memory"),
                PathBuf::from("/sys/fs/cgroup/unified")
            ]
        );
    }

    #[test]
    fn own_process_is_never_a_leftover() {
        let me = std::process::id() as i32;
        let l = Leftovers {
            netns: [ns_id(Path::new("/proc/self/ns/net")).unwrap()].into(),
            cgroup_prefix: None,
            shim_markers: vec![],
        };
        assert!(l.matches(me));
        assert!(!l.find().contains(&me));
    }
}
