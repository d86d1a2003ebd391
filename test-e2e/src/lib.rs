//! End-to-end harness: real ferrokube clusters started through the
//! `ferrokube` CLI, driven with stock `kubectl` (and `curl` for raw HTTP).
//!
//! * [`Cluster::create`] runs `$FERROKUBE_BIN_DIR/ferrokube create cluster`
//!   with a private `FERROKUBE_HOME` and `KUBECONFIG`; dropping the value
//!   runs `ferrokube delete cluster`.
//! * `kubectl*` helpers run `/usr/bin/kubectl` against that cluster with a
//!   bounded run time and return what a user would see.
//! * [`Checks`] runs named sub-steps, keeps going after a failing one and
//!   reports every failure at the end (one cluster per test function, many
//!   checks per cluster).
//!
//! Without `FERROKUBE_BIN_DIR` the harness panics: the suite never passes
//! vacuously.

use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The kubectl under test, unless `FERROKUBE_E2E_KUBECTL` names another.
/// (On this image /usr/bin/kubectl is gcloud's version dispatcher, which
/// runs the kubectl matching the server's minor version.)
pub const KUBECTL: &str = "/usr/bin/kubectl";

/// `$FERROKUBE_E2E_KUBECTL` or [`KUBECTL`].
pub fn kubectl_path() -> PathBuf {
    std::env::var_os("FERROKUBE_E2E_KUBECTL")
        .filter(|k| !k.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(KUBECTL))
}
/// Upper bound for one ordinary kubectl invocation.
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound for `ferrokube create cluster` (its own `--wait` is 120s).
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(150);
/// Upper bound for `ferrokube delete cluster`.
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(60);

/// `$FERROKUBE_BIN_DIR`, which must hold `ferrokube` and `kube-apiserver`.
/// Panics with instructions when unset or incomplete.
pub fn bin_dir() -> PathBuf {
    let dir = match std::env::var_os("FERROKUBE_BIN_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "FERROKUBE_BIN_DIR is not set: the e2e suite needs the release binaries. \
             Run `make build` and then `make test`, or \
             `FERROKUBE_BIN_DIR=$PWD/_output/bin cargo nextest run --release -p test-e2e`"
        ),
    };
    for bin in ["ferrokube", "kube-apiserver"] {
        let p = dir.join(bin);
        assert!(
            p.is_file(),
            "FERROKUBE_BIN_DIR={} does not contain `{bin}` (run `make build`)",
            dir.display()
        );
    }
    dir
}

/// Run `cmd` (optionally feeding `stdin`), killing it after `timeout`.
/// Panics if it cannot be started or runs over time.
pub fn run_with_timeout(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("stdin piped");
        let input = input.to_vec();
        // A writer thread: a child that stops reading must not block us.
        thread::spawn(move || {
            let _ = w.write_all(&input);
        });
    }
    let out_reader = spawn_reader(child.stdout.take().expect("stdout piped"));
    let err_reader = spawn_reader(child.stderr.take().expect("stderr piped"));
    let Some(status) = wait_timeout(&mut child, timeout) else {
        let _ = child.kill();
        let _ = child.wait();
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        panic!(
            "timed out after {timeout:?}: {what}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        )
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

fn spawn_reader(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Wait for `child` for at most `timeout`; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) => {}
            Err(e) => panic!("waiting for child: {e}"),
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Human-readable summary of a finished command.
pub fn describe_output(what: &str, out: &Output) -> String {
    format!(
        "`{what}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The last `n` lines of a file (empty if unreadable).
pub fn tail_file(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

static CLUSTER_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A running ferrokube cluster owned by this process.
pub struct Cluster {
    pub name: String,
    /// Private `FERROKUBE_HOME` (and scratch space: kubectl cache, files).
    home: tempfile::TempDir,
    bin_dir: PathBuf,
    /// The kubeconfig ferrokube merged the cluster into.
    pub kubeconfig: PathBuf,
    /// Context name (`ferrokube-<name>`).
    pub context: String,
    deleted: bool,
}

impl Cluster {
    /// Start a cluster; panics with the CLI's output if that fails.
    pub fn create() -> Cluster {
        Self::try_create().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start a cluster with extra `create cluster` flags (e.g. `--nodes 3`).
    pub fn create_with(extra: &[&str]) -> Cluster {
        Self::try_create_with(extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start a cluster, returning a descriptive error on failure.
    pub fn try_create() -> Result<Cluster, String> {
        Self::try_create_with(&[])
    }

    /// [`Cluster::try_create`] with extra `create cluster` flags.
    pub fn try_create_with(extra: &[&str]) -> Result<Cluster, String> {
        let bin_dir = bin_dir();
        let home = tempfile::Builder::new()
            .prefix("ferrokube-e2e-")
            .tempdir()
            .map_err(|e| format!("creating temp FERROKUBE_HOME: {e}"))?;
        let seq = CLUSTER_SEQ.fetch_add(1, Ordering::SeqCst);
        let name = format!("e2e-{}-{seq}", std::process::id());
        let kubeconfig = home.path().join("kubeconfig");
        let mut c = Cluster {
            context: format!("ferrokube-{name}"),
            name,
            home,
            bin_dir,
            kubeconfig,
            deleted: false,
        };
        let started = Instant::now();
        let name = c.name.clone();
        let mut args = vec!["create", "cluster", "--name", &name, "--wait", "120s"];
        args.extend_from_slice(extra);
        let out = c.ferrokube(&args, CREATE_TIMEOUT);
        if !out.status.success() {
            let msg = format!(
                "{}\n--- kube-apiserver log tail ---\n{}",
                describe_output("ferrokube create cluster", &out),
                tail_file(&c.dir().join("logs/kube-apiserver.log"), 40)
            );
            c.deleted = true; // create cleans up after itself on failure
            let _ = c.ferrokube(
                &["delete", "cluster", "--name", &c.name.clone()],
                DELETE_TIMEOUT,
            );
            return Err(msg);
        }
        eprintln!(
            "[e2e] cluster {} ready in {:?} ({})",
            c.name,
            started.elapsed(),
            c.server()
        );
        Ok(c)
    }

    /// Run the ferrokube CLI with this cluster's environment.
    pub fn ferrokube(&self, args: &[&str], timeout: Duration) -> Output {
        let mut cmd = Command::new(self.bin_dir.join("ferrokube"));
        cmd.args(args)
            .env("FERROKUBE_HOME", self.home.path())
            .env("FERROKUBE_BIN_DIR", &self.bin_dir)
            .env("KUBECONFIG", &self.kubeconfig);
        run_with_timeout(cmd, None, timeout)
    }

    /// `$FERROKUBE_HOME`.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `$FERROKUBE_HOME/clusters/<name>`.
    pub fn dir(&self) -> PathBuf {
        self.home.path().join("clusters").join(&self.name)
    }

    /// A scratch file path inside the cluster's temp home.
    pub fn scratch(&self, file: &str) -> PathBuf {
        self.home.path().join(file)
    }

    /// `cluster.json` as JSON.
    pub fn state(&self) -> Value {
        let p = self.dir().join("cluster.json");
        let data = std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
        serde_json::from_slice(&data).unwrap_or_else(|e| panic!("parsing {}: {e}", p.display()))
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server(&self) -> String {
        self.state()["server"]
            .as_str()
            .expect("cluster.json: server")
            .to_string()
    }

    /// A named port from `cluster.json` (`apiserver`, `etcd-client`, ...).
    pub fn port(&self, name: &str) -> u16 {
        let st = self.state();
        st["ports"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("cluster.json has no port {name}: {st}")) as u16
    }

    /// `http://127.0.0.1:<etcd client port>`.
    pub fn etcd_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port("etcd-client"))
    }

    /// Pid of a component (`etcd`, `kube-apiserver`) from `cluster.json`.
    pub fn pid(&self, component: &str) -> i32 {
        let st = self.state();
        st["processes"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == component))
            .and_then(|p| p["pid"].as_i64())
            .unwrap_or_else(|| panic!("cluster.json has no process {component}: {st}"))
            as i32
    }

    /// A file of the cluster PKI (`ca.crt`, `admin.crt`, `admin.key`).
    pub fn pki(&self, file: &str) -> PathBuf {
        self.dir().join("pki").join(file)
    }

    /// Path of a component's log.
    pub fn log_file(&self, component: &str) -> PathBuf {
        self.dir().join("logs").join(format!("{component}.log"))
    }

    fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubectl_path());
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.home.path().join("kube-cache"))
            .env_remove("KUBECTL_KUBERC");
        cmd
    }

    /// Run kubectl; returns whatever happened (bounded by [`KUBECTL_TIMEOUT`]).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        run_with_timeout(self.kubectl_command(args), None, KUBECTL_TIMEOUT)
    }

    /// Run kubectl with `stdin` as its standard input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        run_with_timeout(
            self.kubectl_command(args),
            Some(stdin.as_bytes()),
            KUBECTL_TIMEOUT,
        )
    }

    /// Run kubectl, assert success, return stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "{}",
            describe_output(&format!("kubectl {}", args.join(" ")), &out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run kubectl with stdin, assert success, return stdout.
    pub fn kubectl_stdin_ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.kubectl_stdin(args, stdin);
        assert!(
            out.status.success(),
            "{}\n--- stdin ---\n{stdin}",
            describe_output(&format!("kubectl {}", args.join(" ")), &out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run kubectl, assert failure, return stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "expected failure but {}",
            describe_output(&format!("kubectl {}", args.join(" ")), &out)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Run kubectl with stdin, assert failure, return stderr.
    pub fn kubectl_stdin_err(&self, args: &[&str], stdin: &str) -> String {
        let out = self.kubectl_stdin(args, stdin);
        assert!(
            !out.status.success(),
            "expected failure but {}\n--- stdin ---\n{stdin}",
            describe_output(&format!("kubectl {}", args.join(" ")), &out)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `kubectl <args> -o json`, parsed.
    pub fn kubectl_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let out = self.kubectl_ok(&a);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("kubectl {} -o json: {e}\n{out}", args.join(" ")))
    }

    /// `kubectl apply -f -` with `yaml`; asserts success, returns stdout.
    pub fn apply_yaml(&self, yaml: &str) -> String {
        self.kubectl_stdin_ok(&["apply", "-f", "-"], yaml)
    }

    /// Start a long-running kubectl (e.g. `get -w`); stdout and stderr piped.
    pub fn spawn_kubectl(&self, args: &[&str]) -> Child {
        let mut cmd = self.kubectl_command(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start kubectl {}: {e}", args.join(" ")))
    }

    /// Create a namespace with kubectl.
    pub fn create_namespace(&self, ns: &str) {
        let out = self.kubectl_ok(&["create", "namespace", ns]);
        assert_eq!(out.trim(), format!("namespace/{ns} created"));
        // Pods need the namespace's default ServiceAccount, which the
        // controller-manager creates a moment later (as upstream).
        eventually(
            "the default ServiceAccount",
            Duration::from_secs(30),
            || {
                let out = self.kubectl(&["-n", ns, "get", "serviceaccount", "default"]);
                if out.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).to_string())
                }
            },
        );
    }

    /// Raw HTTPS request with curl, authenticated with the admin client
    /// certificate. `body` is sent as the request body. Returns (HTTP
    /// status, response body).
    pub fn curl(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<&[u8]>,
    ) -> (u16, String) {
        self.curl_with(&[], method, path, content_type, body)
    }

    /// [`curl`](Self::curl) with extra curl flags (e.g. `--http1.1`).
    pub fn curl_with(
        &self,
        extra: &[&str],
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<&[u8]>,
    ) -> (u16, String) {
        let body_file = self.scratch(&format!(
            "curl-body-{}",
            CLUSTER_SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let resp_file = self.scratch("curl-response");
        let mut cmd = Command::new("curl");
        cmd.arg("-sS")
            .arg("--max-time")
            .arg("30")
            .arg("--cacert")
            .arg(self.pki("ca.crt"))
            .arg("--cert")
            .arg(self.pki("admin.crt"))
            .arg("--key")
            .arg(self.pki("admin.key"))
            .args(["-X", method])
            .args(["-H", &format!("Content-Type: {content_type}")])
            .args(["-H", "Accept: application/json"])
            .arg("-o")
            .arg(&resp_file)
            .args(["-w", "%{http_code}"])
            .args(extra);
        if let Some(b) = body {
            std::fs::write(&body_file, b).expect("writing curl body");
            cmd.arg("--data-binary")
                .arg(format!("@{}", body_file.display()));
        }
        cmd.arg(format!("{}{path}", self.server()));
        let out = run_with_timeout(cmd, None, Duration::from_secs(40));
        let _ = std::fs::remove_file(&body_file);
        let code: u16 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        let resp = std::fs::read(&resp_file)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let _ = std::fs::remove_file(&resp_file);
        assert!(
            code != 0,
            "curl {method} {path} got no HTTP status\n{}",
            describe_output("curl", &out)
        );
        (code, resp)
    }

    /// Tear the cluster down now (also done on drop).
    pub fn delete(&mut self) {
        if self.deleted {
            return;
        }
        self.deleted = true;
        let out = self.ferrokube(
            &["delete", "cluster", "--name", &self.name.clone()],
            DELETE_TIMEOUT,
        );
        if !out.status.success() {
            eprintln!(
                "[e2e] {}",
                describe_output("ferrokube delete cluster", &out)
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if thread::panicking() && !self.deleted {
            eprintln!(
                "[e2e] test failed; last lines of the kube-apiserver log:\n{}",
                tail_file(&self.log_file("kube-apiserver"), 60)
            );
        }
        self.delete();
    }
}

/// Lines of a child's stdout, delivered through a channel so they can be
/// awaited with a timeout.
pub struct LineReader {
    rx: mpsc::Receiver<String>,
    /// Everything read so far (for failure messages).
    pub seen: Vec<String>,
}

impl LineReader {
    pub fn new(r: impl Read + Send + 'static) -> LineReader {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(r).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LineReader {
            rx,
            seen: Vec::new(),
        }
    }

    /// Wait up to `timeout` for a line satisfying `pred`; returns it.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }
}

/// Named sub-steps of one test: each runs even if an earlier one failed,
/// and [`Checks::finish`] fails the test listing every failed step.
pub struct Checks {
    suite: String,
    passed: Vec<String>,
    failed: Vec<(String, String)>,
}

impl Checks {
    pub fn new(suite: &str) -> Checks {
        Checks {
            suite: suite.to_string(),
            passed: vec![],
            failed: vec![],
        }
    }

    /// Run one check; a panic inside marks it failed.
    pub fn check(&mut self, name: &str, f: impl FnOnce()) {
        let start = Instant::now();
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(()) => {
                eprintln!("[e2e] ok   {}/{name} ({:.1?})", self.suite, start.elapsed());
                self.passed.push(name.to_string());
            }
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "<non-string panic>".into());
                eprintln!(
                    "[e2e] FAIL {}/{name} ({:.1?}): {msg}",
                    self.suite,
                    start.elapsed()
                );
                self.failed.push((name.to_string(), msg));
            }
        }
    }

    /// Fail (panic) if any check failed.
    pub fn finish(self) {
        if self.failed.is_empty() {
            eprintln!(
                "[e2e] {}: all {} checks passed",
                self.suite,
                self.passed.len()
            );
            return;
        }
        let mut msg = format!(
            "{}: {} of {} checks failed:\n",
            self.suite,
            self.failed.len(),
            self.failed.len() + self.passed.len()
        );
        for (name, why) in &self.failed {
            msg.push_str(&format!("\n=== {name}\n{why}\n"));
        }
        panic!("{msg}");
    }
}

/// Assert that `haystack` contains `needle`, showing both on failure.
#[track_caller]
pub fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected to find {needle:?} in:\n{haystack}"
    );
}

/// Assert that `haystack` does not contain `needle`.
#[track_caller]
pub fn assert_not_contains(haystack: &str, needle: &str) {
    assert!(
        !haystack.contains(needle),
        "did not expect {needle:?} in:\n{haystack}"
    );
}

/// Whitespace-separated columns of each non-empty line.
pub fn table(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Poll `f` every half second until it returns `Ok`, or panic with its last
/// error after `timeout`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// `.items` of a list.
pub fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// `.metadata.name`.
pub fn name_of(v: &Value) -> String {
    v["metadata"]["name"].as_str().unwrap_or("").to_string()
}

/// The status condition of type `ty` (Null when absent).
pub fn condition<'a>(o: &'a Value, ty: &str) -> &'a Value {
    o["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty))
        .unwrap_or(&Value::Null)
}

/// An apps/v1 Deployment `name` with label `app: <name>`, `replicas` and a
/// pod spec given as YAML lines at pod-spec indentation (six spaces), e.g.
/// `"      containers:\n      - name: c\n        image: busybox\n"`.
pub fn deployment_manifest(name: &str, replicas: u32, pod_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n{pod_spec}"
    )
}
