//! `e2e`: a conformance-style suite against any cluster a kubeconfig
//! reaches (a ferrokube cluster or another), through stock kubectl and
//! kube-rs. Tests are grouped like upstream's (api-machinery, apps, node,
//! network, storage, cli, scheduling); each runs in its own namespace. The
//! report lists every test with its outcome and time, then the line
//! `N passed, M failed`; `--junit FILE` also writes JUnit XML.
//!
//! ```text
//! e2e [--kubeconfig FILE] [--context NAME] [--junit FILE] [--focus TEXT]...
//!     [--skip TEXT]... [--ferrokube-cluster NAME] [--list]
//! ```
//!
//! Disruptive tests (node failure) need a way to break a node: with
//! `--ferrokube-cluster NAME` they use the `ferrokube` CLI and the cluster's
//! state; elsewhere they are reported as skipped.

mod kubectl;
mod report;
mod tests;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};

use kubectl::Kubectl;
use report::{Outcome, TestResult};

/// What a test gets.
pub struct Ctx {
    /// kubectl bound to the test's own namespace.
    pub k: Kubectl,
    pub ns: String,
    pub ferrokube_cluster: Option<String>,
    pub kubeconfig: PathBuf,
    pub context: Option<String>,
}

/// A test's result: `Err` fails it, `Ok(Some(reason))` skips it.
pub type TestOutcome = Result<Option<String>>;

pub struct Test {
    pub group: &'static str,
    pub name: &'static str,
    pub run: fn(&Ctx) -> TestOutcome,
}

struct Opts {
    kubeconfig: PathBuf,
    context: Option<String>,
    junit: Option<PathBuf>,
    focus: Vec<String>,
    skip: Vec<String>,
    ferrokube_cluster: Option<String>,
    list: bool,
}

fn parse_opts() -> Result<Opts> {
    let default_kc = std::env::var_os("KUBECONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config")))
        .ok_or_else(|| anyhow!("no --kubeconfig, $KUBECONFIG or $HOME"))?;
    let mut o = Opts {
        kubeconfig: default_kc,
        context: None,
        junit: None,
        focus: vec![],
        skip: vec![],
        ferrokube_cluster: None,
        list: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--kubeconfig" => o.kubeconfig = val()?.into(),
            "--context" => o.context = Some(val()?),
            "--junit" => o.junit = Some(val()?.into()),
            "--focus" => o.focus.push(val()?),
            "--skip" => o.skip.push(val()?),
            "--ferrokube-cluster" => o.ferrokube_cluster = Some(val()?),
            "--list" => o.list = true,
            "-h" | "--help" => {
                println!(
                    "e2e [--kubeconfig FILE] [--context NAME] [--junit FILE] [--focus TEXT]... [--skip TEXT]... [--ferrokube-cluster NAME] [--list]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(o)
}

fn full_name(t: &Test) -> String {
    format!("[{}] {}", t.group, t.name)
}

fn selected(o: &Opts, t: &Test) -> bool {
    let n = full_name(t);
    (o.focus.is_empty() || o.focus.iter().any(|f| n.contains(f.as_str())))
        && !o.skip.iter().any(|s| n.contains(s.as_str()))
}

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("e2e: {e:#}");
            std::process::exit(2);
        }
    };
    let all = tests::all();
    if opts.list {
        for t in &all {
            println!("{}", full_name(t));
        }
        return;
    }
    let admin = Kubectl::new(&opts.kubeconfig, opts.context.as_deref(), None);
    if let Err(e) = admin.ok(&["version", "-o", "json"]) {
        eprintln!("e2e: the cluster does not answer: {e:#}");
        std::process::exit(2);
    }
    let run_id = format!("{:x}", std::process::id() % 0xffff);
    let mut results = Vec::new();
    for (i, t) in all.iter().enumerate().filter(|(_, t)| selected(&opts, t)) {
        let ns = format!("e2e-{}-{i}-{run_id}", t.group);
        let started = Instant::now();
        let outcome = match admin.ok(&["create", "namespace", &ns]) {
            Err(e) => Err(anyhow!("creating namespace {ns}: {e:#}")),
            Ok(_) => {
                // Pods need the namespace's default ServiceAccount, which the
                // controller-manager creates a moment later (as upstream).
                let _ = kubectl::eventually(
                    "the default ServiceAccount",
                    std::time::Duration::from_secs(30),
                    || admin.ok(&["-n", &ns, "get", "serviceaccount", "default"]),
                );
                let ctx = Ctx {
                    k: Kubectl::new(&opts.kubeconfig, opts.context.as_deref(), Some(&ns)),
                    ns: ns.clone(),
                    ferrokube_cluster: opts.ferrokube_cluster.clone(),
                    kubeconfig: opts.kubeconfig.clone(),
                    context: opts.context.clone(),
                };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (t.run)(&ctx)))
                    .unwrap_or_else(|p| {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "panicked".into());
                        Err(anyhow!("panicked: {msg}"))
                    });
                let _ = admin.ok(&["delete", "namespace", &ns, "--wait=false"]);
                r
            }
        };
        let elapsed = started.elapsed();
        let (outcome, message) = match outcome {
            Ok(None) => (Outcome::Passed, String::new()),
            Ok(Some(why)) => (Outcome::Skipped, why),
            Err(e) => (Outcome::Failed, format!("{e:#}")),
        };
        let r = TestResult {
            group: t.group.to_string(),
            name: t.name.to_string(),
            outcome,
            elapsed,
            message,
        };
        println!("{}", r.line());
        results.push(r);
    }
    println!();
    print!("{}", report::summary(&results));
    if let Some(path) = &opts.junit {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(path, report::junit(&results)) {
            eprintln!("e2e: writing {}: {e}", path.display());
            std::process::exit(2);
        }
        println!("JUnit report: {}", path.display());
    }
    if results.iter().any(|r| r.outcome == Outcome::Failed) {
        std::process::exit(1);
    }
}
