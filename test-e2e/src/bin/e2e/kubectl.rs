//! kubectl bound to a kubeconfig, context and namespace, with `Result`s
//! instead of panics (a failing step fails its test, not the suite).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct Kubectl {
    kubeconfig: PathBuf,
    context: Option<String>,
    ns: Option<String>,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path, context: Option<&str>, ns: Option<&str>) -> Kubectl {
        Kubectl {
            kubeconfig: kubeconfig.to_path_buf(),
            context: context.map(String::from),
            ns: ns.map(String::from),
        }
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(test_e2e::kubectl_path());
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        if let Some(c) = &self.context {
            cmd.args(["--context", c]);
        }
        if let Some(ns) = &self.ns {
            cmd.args(["-n", ns]);
        }
        cmd.args(args).env_remove("KUBECTL_KUBERC");
        cmd
    }

    /// Run kubectl; the whole output, whatever the exit status.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        test_e2e::run_with_timeout(self.command(args), stdin.map(str::as_bytes), TIMEOUT)
    }

    /// Run kubectl; stdout on success, an error with stderr otherwise.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args, None);
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Run kubectl expecting failure; stderr.
    pub fn err(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args, None);
        if out.status.success() {
            bail!(
                "kubectl {} succeeded unexpectedly: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// `kubectl apply -f -`.
    pub fn apply(&self, yaml: &str) -> Result<String> {
        let out = self.run(&["apply", "-f", "-"], Some(yaml));
        if !out.status.success() {
            bail!(
                "kubectl apply failed: {}\n--- manifest ---\n{yaml}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl <args> -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> Result<Value> {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let out = self.ok(&a)?;
        serde_json::from_str(&out).with_context(|| format!("kubectl {} -o json", args.join(" ")))
    }

    /// Start a long-running kubectl (port-forward) with piped output.
    pub fn spawn(&self, args: &[&str]) -> Result<std::process::Child> {
        use std::process::Stdio;
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting kubectl {}", args.join(" ")))
    }

    /// Wait for pods matching `selector` to be Ready (`kubectl wait`).
    pub fn wait_ready(&self, what: &str, timeout: Duration) -> Result<()> {
        self.ok(&[
            "wait",
            "--for=condition=Ready",
            what,
            &format!("--timeout={}s", timeout.as_secs()),
        ])
        .map(|_| ())
    }
}

/// Poll `f` every half second until it returns `Ok`, or fail with its last
/// error after `timeout`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => {
                return Err(anyhow!(
                    "timed out after {timeout:?} waiting for {what}: {e:#}"
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Fail with `msg` unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(anyhow!(msg()))
    }
}
