//! Detached daemon processes: what to run (a [`Component`]), starting it in
//! its own session, recognising it again later by pid, and stopping it.

use std::ffi::OsString;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// How to tell that a component is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Readiness {
    /// No check: started is ready.
    None,
    /// `GET http://127.0.0.1:<port>/health` reports `"health":"true"`.
    EtcdHealth { port: u16 },
    /// `GET https://127.0.0.1:<port>/readyz` returns 200 `ok` (TLS verified
    /// against the cluster CA, authenticated with the admin client cert).
    ApiserverReadyz { port: u16 },
    /// The unix socket at `path` accepts connections (containerd).
    UnixSocket { path: PathBuf },
    /// `GET http://<addr><path>` returns 200 (the registry's `/v2/`).
    Http { addr: String, path: String },
    /// The Node named `node` reports condition Ready=True in the API served
    /// on 127.0.0.1:<port> (the kubelet).
    NodeReady { port: u16, node: String },
}

/// A daemon to run: adding one to a cluster is adding one of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    pub name: String,
    pub binary: PathBuf,
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    pub log_file: PathBuf,
    pub readiness: Readiness,
    /// Run it inside this network namespace (`/run/netns/<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
}

/// A started component, as recorded in `cluster.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunningProcess {
    pub name: String,
    pub pid: i32,
    /// Kernel start time (clock ticks after boot, /proc/<pid>/stat field 22):
    /// with the pid it identifies the process across pid reuse.
    #[serde(default)]
    pub start_time: Option<u64>,
    /// The full command line it was started with.
    pub cmdline: Vec<String>,
    pub log_file: PathBuf,
}

/// Where to find a daemon binary: `$FERROKUBE_BIN_DIR`, then the directory
/// of the running executable, then `$PATH`.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("FERROKUBE_BIN_DIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    if let Some(d) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        dirs.push(d);
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .or_else(|| find_in_path(name))
        // Daemons run with the cluster directory as working directory.
        .map(|p| std::path::absolute(&p).unwrap_or(p))
}

/// Look `name` up on `$PATH` (or the usual default path when unset).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path: OsString = std::env::var_os("PATH")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Start `c` detached: in its own session (so it outlives us and signals to
/// our terminal do not reach it), stdin from /dev/null, stdout and stderr
/// appended to its log file.
pub fn spawn(c: &Component, cwd: &Path) -> Result<RunningProcess> {
    if let Some(dir) = c.log_file.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&c.log_file)
        .with_context(|| format!("opening {}", c.log_file.display()))?;
    let log2 = log.try_clone()?;
    // Opened before forking: the child only calls setns on it.
    let netns = match &c.netns {
        Some(ns) => {
            let path = Path::new("/run/netns").join(ns);
            Some(
                fs::File::open(&path)
                    .with_context(|| format!("opening network namespace {}", path.display()))?,
            )
        }
        None => None,
    };
    let netns_fd = netns.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    let mut cmd = Command::new(&c.binary);
    cmd.args(&c.args)
        .envs(c.env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    // SAFETY: setsid and setns are async-signal-safe system calls and touch
    // no memory of the parent; the fd stays open until after the fork.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if let Some(fd) = netns_fd {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {} ({})", c.name, c.binary.display()))?;
    let pid = i32::try_from(child.id()).map_err(|_| anyhow!("pid out of range"))?;
    // The child is deliberately not waited for: it is a detached daemon.
    drop(child);
    drop(netns);
    let mut cmdline = vec![c.binary.to_string_lossy().into_owned()];
    cmdline.extend(c.args.iter().cloned());
    Ok(RunningProcess {
        name: c.name.clone(),
        pid,
        start_time: start_time(pid),
        cmdline,
        log_file: c.log_file.clone(),
    })
}

/// Fields of /proc/<pid>/stat after the command name: (state, starttime).
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ')' : field 3 (state) is index 0, field 22 (starttime) index 19.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

fn start_time(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|(_, t)| t)
}

fn proc_cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// Reap `pid` if it is an exited child of ours (harmless otherwise).
fn reap(pid: i32) {
    let _ = nix::sys::wait::waitpid(
        Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
}

/// Whether `pid` exists and is not a zombie.
pub fn pid_running(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    reap(pid);
    matches!(proc_stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

impl RunningProcess {
    /// Whether the recorded process is still running and is still the one
    /// we started, not a different process that reused the pid. With a
    /// recorded start time, the kernel start time must match (pid + start
    /// time identify a process for the life of the machine, even one that
    /// re-exec'd). Without one, /proc/<pid>/cmdline must be the recorded
    /// command line or mention `marker` (the cluster directory).
    pub fn is_alive(&self, marker: &str) -> bool {
        if !pid_running(self.pid) {
            return false;
        }
        if let Some(want) = self.start_time {
            return start_time(self.pid) == Some(want);
        }
        match proc_cmdline(self.pid) {
            Some(cmd) if !self.cmdline.is_empty() && cmd == self.cmdline => true,
            Some(cmd) => !marker.is_empty() && cmd.iter().any(|a| a.contains(marker)),
            None => false,
        }
    }

    /// SIGTERM the process (and its process group), wait up to `grace`,
    /// then SIGKILL. Returns true if it had to be killed. A process that is
    /// not ours (see [`is_alive`](Self::is_alive)) is left alone.
    pub fn stop(&self, marker: &str, grace: Duration) -> bool {
        if !self.is_alive(marker) {
            return false;
        }
        signal_group(self.pid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !pid_running(self.pid) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.is_alive(marker) {
            signal_group(self.pid, Signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(5);
            while pid_running(self.pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            return true;
        }
        false
    }
}

/// Signal the process group led by `pid` (our daemons are session leaders),
/// falling back to the process alone.
fn signal_group(pid: i32, sig: Signal) {
    if pid <= 1 {
        return;
    }
    if kill(Pid::from_raw(-pid), sig).is_err() {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// The last `n` lines of a log file (empty when unreadable).
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(data) = fs::read(path) else {
        return String::new();
    };
    let start = data.len().saturating_sub(256 * 1024);
    let text = String::from_utf8_lossy(&data[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(dir: &Path, name: &str, script: &str) -> Component {
        Component {
            name: name.into(),
            binary: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into(), dir.display().to_string()],
            env: vec![("FERROKUBE_TEST".into(), "1".into())],
            log_file: dir.join("logs").join(format!("{name}.log")),
            readiness: Readiness::None,
            netns: None,
        }
    }

    #[test]
    fn spawn_identify_stop() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().display().to_string();
        let c = sleeper(
            dir.path(),
            "s",
            "echo started $FERROKUBE_TEST; exec sleep 300",
        );
        let p = spawn(&c, dir.path()).unwrap();
        assert!(p.start_time.is_some());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !tail(&c.log_file, 5).contains("started 1") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(tail(&c.log_file, 5).contains("started 1"));
        // The echo comes before the exec: wait until the shell has become
        // `sleep`.
        while proc_cmdline(p.pid).is_some_and(|c| c.first().is_some_and(|a| a != "sleep"))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The start time identifies it, even after the script exec'd.
        assert!(p.is_alive("/definitely/not/there"));
        // A wrong start time means a different process.
        let mut other = p.clone();
        other.start_time = Some(p.start_time.unwrap() + 1);
        assert!(!other.is_alive(""));
        // Without a start time the command line decides: after exec it is
        // "sleep 300", neither the recorded one nor mentioning the marker.
        let mut no_time = p.clone();
        no_time.start_time = None;
        assert!(!no_time.is_alive("/definitely/not/there"));
        no_time.cmdline = proc_cmdline(p.pid).unwrap();
        assert!(no_time.is_alive(""));
        let same = p.clone();
        assert!(!other.stop("", Duration::from_secs(1)));
        assert!(pid_running(p.pid));

        assert!(
            !same.stop(&marker, Duration::from_secs(10)),
            "SIGTERM suffices"
        );
        assert!(!pid_running(p.pid));
        assert!(!same.is_alive(""));
    }

    #[test]
    fn stop_escalates_to_sigkill() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().display().to_string();
        let c = sleeper(
            dir.path(),
            "stubborn",
            "trap '' TERM; echo ready; while true; do sleep 0.1; done",
        );
        let p = spawn(&c, dir.path()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !tail(&c.log_file, 5).contains("ready") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(p.is_alive(&marker));
        assert!(
            p.stop(&marker, Duration::from_millis(500)),
            "needed SIGKILL"
        );
        assert!(!pid_running(p.pid));
    }

    #[test]
    fn missing_things() {
        assert!(!pid_running(0));
        assert!(!pid_running(-5));
        assert!(!pid_running(i32::MAX));
        assert_eq!(tail(Path::new("/nonexistent"), 5), "");
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("definitely-not-a-binary-ferrokube").is_none());
        let bad = Component {
            name: "bad".into(),
            binary: PathBuf::from("/nonexistent/bin"),
            args: vec![],
            env: vec![],
            log_file: std::env::temp_dir()
                .join(format!("ferrokube-bad-{}.log", std::process::id())),
            readiness: Readiness::None,
            netns: None,
        };
        assert!(spawn(&bad, Path::new("/")).is_err());
        let _ = fs::remove_file(&bad.log_file);
    }
}
