//! End-to-end tests of the `ferrokube` CLI.
//!
//! * `lifecycle_with_stand_in_apiserver` runs real etcd and a stand-in
//!   kube-apiserver (`openssl s_server` serving `/readyz` with the cluster's
//!   serving certificate) to exercise create/get/delete, two clusters side
//!   by side and kubeconfig merging, independently of the real apiserver.
//! * `real_cluster_with_kubectl` runs the real kube-apiserver from
//!   `$FERROKUBE_BIN_DIR` and drives it with stock kubectl. When
//!   `FERROKUBE_BIN_DIR` is set (as `make test` does) a missing binary is a
//!   failure; when it is unset the test is skipped with a message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    kubeconfig: PathBuf,
    bin_dir: Option<PathBuf>,
    ferrokube: PathBuf,
}

impl Env {
    fn new(bin_dir: Option<PathBuf>, ferrokube: PathBuf) -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = tmp.path().join("home");
        let kubeconfig = tmp.path().join("kube").join("config");
        Env {
            _tmp: tmp,
            home,
            kubeconfig,
            bin_dir,
            ferrokube,
        }
    }

    fn cmd(&self, program: &Path, args: &[&str]) -> Output {
        let mut c = Command::new(program);
        c.args(args)
            .env("FERROKUBE_HOME", &self.home)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("FERROKUBE_CLUSTER_NAME");
        match &self.bin_dir {
            Some(d) => c.env("FERROKUBE_BIN_DIR", d),
            None => c.env_remove("FERROKUBE_BIN_DIR"),
        };
        let out = c
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
        eprintln!(
            "$ {} {}\n--- exit {:?}\n{}{}",
            program.display(),
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ferrokube(&self, args: &[&str]) -> Output {
        self.cmd(&self.ferrokube.clone(), args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ferrokube(args);
        assert!(out.status.success(), "ferrokube {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn state(&self, name: &str) -> serde_json::Value {
        let p = self.home.join("clusters").join(name).join("cluster.json");
        serde_json::from_slice(&std::fs::read(&p).expect("cluster.json")).expect("valid json")
    }

    fn kubeconfig_yaml(&self) -> serde_yaml::Value {
        serde_yaml::from_str(&std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig"))
            .expect("yaml")
    }
}

/// Deletes the named clusters even if the test panics.
struct Cleanup<'a>(&'a Env, Vec<&'static str>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for n in &self.1 {
            let _ = self.0.ferrokube(&["delete", "cluster", "--name", n]);
        }
    }
}

fn running(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}

fn pids(state: &serde_json::Value) -> Vec<i64> {
    state["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .map(|p| p["pid"].as_i64().expect("pid"))
        .collect()
}

fn names(v: &serde_yaml::Value, key: &str) -> Vec<String> {
    v[key]
        .as_sequence()
        .map(|l| {
            l.iter()
                .filter_map(|e| e["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn bin_dir_from_env() -> Option<PathBuf> {
    std::env::var_os("FERROKUBE_BIN_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

const STAND_IN_APISERVER: &str = r#"#!/usr/bin/env bash
# Stand-in kube-apiserver: serves GET /readyz -> "ok" over TLS with the
# cluster's serving certificate.
set -eu
for a in "$@"; do
  case "$a" in
    --secure-port=*) port=${a#*=} ;;
    --tls-cert-file=*) cert=${a#*=} ;;
    --tls-private-key-file=*) key=${a#*=} ;;
  esac
done
www="$(dirname "$cert")/../stand-in-www"
mkdir -p "$www"
printf ok > "$www/readyz"
cd "$www"
exec openssl s_server -quiet -accept "127.0.0.1:$port" -cert "$cert" -key "$key" -WWW
"#;

#[test]
fn lifecycle_with_stand_in_apiserver() {
    if which("etcd").is_none() {
        assert!(
            bin_dir_from_env().is_none(),
            "etcd is not on PATH: run `make deps`"
        );
        eprintln!("SKIP: etcd is not on PATH (run `make deps`)");
        return;
    }
    if which("openssl").is_none() {
        eprintln!("SKIP: openssl is not installed; it stands in for kube-apiserver here");
        return;
    }
    let bins = tempfile::tempdir().unwrap();
    let fake = bins.path().join("kube-apiserver");
    std::fs::write(&fake, STAND_IN_APISERVER).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

    let env = Env::new(
        Some(bins.path().to_path_buf()),
        PathBuf::from(env!("CARGO_BIN_EXE_ferrokube")),
    );
    let _cleanup = Cleanup(&env, vec!["alpha", "beta"]);

    let out = env.ferrokube(&["get", "clusters"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No ferrokube clusters found."));

    env.ok(&["create", "cluster", "--name", "alpha", "--wait", "60s"]);
    env.ok(&["create", "cluster", "--name", "beta", "--wait", "1m"]);

    // Side by side: different ports and state dirs, all processes running.
    let (a, b) = (env.state("alpha"), env.state("beta"));
    assert_ne!(a["ports"]["apiserver"], b["ports"]["apiserver"]);
    assert_ne!(a["ports"]["etcd-client"], b["ports"]["etcd-client"]);
    let (a_pids, b_pids) = (pids(&a), pids(&b));
    assert_eq!(a_pids.len(), 2);
    assert!(a_pids.iter().chain(&b_pids).all(|p| running(*p)));
    for name in ["alpha", "beta"] {
        let dir = env.home.join("clusters").join(name);
        for f in [
            "pki/ca.crt",
            "pki/ca.key",
            "pki/apiserver.crt",
            "pki/admin.crt",
            "pki/admin.key",
            "tokens.csv",
            "kubeconfig",
            "pids/etcd.pid",
            "pids/kube-apiserver.pid",
            "logs/etcd.log",
        ] {
            assert!(dir.join(f).is_file(), "{name}: missing {f}");
        }
    }

    assert_eq!(env.ok(&["get", "clusters"]), "alpha\nbeta\n");
    let kc = env.ok(&["get", "kubeconfig", "--name", "alpha"]);
    assert!(
        kc.contains(&format!(
            "server: https://127.0.0.1:{}",
            a["ports"]["apiserver"]
        )),
        "{kc}"
    );
    assert!(kc.contains("client-certificate-data:") && kc.contains("certificate-authority-data:"));

    // Merged into $KUBECONFIG, current-context = the last created.
    let merged = env.kubeconfig_yaml();
    assert_eq!(
        names(&merged, "contexts"),
        ["ferrokube-alpha", "ferrokube-beta"]
    );
    assert_eq!(merged["current-context"].as_str(), Some("ferrokube-beta"));

    // Creating an existing cluster fails and leaves it intact.
    let out = env.ferrokube(&["create", "cluster", "--name", "alpha"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cluster 'alpha' already exists"));
    assert!(a_pids.iter().all(|p| running(*p)));

    env.ok(&["delete", "cluster", "--name", "alpha"]);
    assert!(
        a_pids.iter().all(|p| !running(*p)),
        "alpha's processes stopped"
    );
    assert!(b_pids.iter().all(|p| running(*p)), "beta untouched");
    assert!(!env.home.join("clusters").join("alpha").exists());
    let merged = env.kubeconfig_yaml();
    assert_eq!(names(&merged, "clusters"), ["ferrokube-beta"]);
    assert_eq!(merged["current-context"].as_str(), Some("ferrokube-beta"));
    assert_eq!(env.ok(&["get", "clusters"]), "beta\n");

    // Deleting again (or a cluster that never existed) succeeds.
    env.ok(&["delete", "cluster", "--name", "alpha"]);
    env.ok(&["delete", "cluster", "--name", "never-was"]);

    env.ok(&["delete", "cluster", "--name", "beta"]);
    assert!(b_pids.iter().all(|p| !running(*p)));
    let merged = env.kubeconfig_yaml();
    assert!(names(&merged, "users").is_empty());
    assert_eq!(merged["current-context"].as_str(), Some(""));
    let out = env.ferrokube(&["get", "kubeconfig", "--name", "beta"]);
    assert!(!out.status.success());
}

#[test]
fn create_fails_cleanly_when_apiserver_dies() {
    if which("etcd").is_none() {
        assert!(
            bin_dir_from_env().is_none(),
            "etcd is not on PATH: run `make deps`"
        );
        eprintln!("SKIP: etcd is not on PATH (run `make deps`)");
        return;
    }
    let bins = tempfile::tempdir().unwrap();
    let fake = bins.path().join("kube-apiserver");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'F0000 stand-in apiserver refusing to start'\nexit 3\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = Env::new(
        Some(bins.path().to_path_buf()),
        PathBuf::from(env!("CARGO_BIN_EXE_ferrokube")),
    );
    let _cleanup = Cleanup(&env, vec!["doomed"]);
    let out = env.ferrokube(&["create", "cluster", "--name", "doomed", "--wait", "30s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kube-apiserver exited before becoming ready"),
        "{err}"
    );
    assert!(
        err.contains("F0000 stand-in apiserver refusing to start"),
        "log tail shown: {err}"
    );
    assert!(
        !env.home.join("clusters").join("doomed").exists(),
        "state cleaned up"
    );
    assert!(!env.kubeconfig.exists(), "kubeconfig untouched");
}

#[test]
fn real_cluster_with_kubectl() {
    let Some(bin_dir) = bin_dir_from_env() else {
        eprintln!(
            "SKIP: FERROKUBE_BIN_DIR is not set (run via `make test`, or set it to _output/bin)"
        );
        return;
    };
    let apiserver = bin_dir.join("kube-apiserver");
    assert!(
        apiserver.is_file(),
        "FERROKUBE_BIN_DIR={} has no kube-apiserver: build it with `make build`",
        bin_dir.display()
    );
    let kubectl = which("kubectl").expect("kubectl is not on PATH");
    let ferrokube = Some(bin_dir.join("ferrokube"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ferrokube")));
    let env = Env::new(Some(bin_dir), ferrokube);
    let _cleanup = Cleanup(&env, vec!["e2e"]);

    env.ok(&["create", "cluster", "--name", "e2e", "--wait", "2m"]);
    let st = env.state("e2e");
    let cluster_pids = pids(&st);

    let out = env.cmd(&kubectl, &["get", "ns"]);
    assert!(out.status.success(), "kubectl get ns failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for ns in ["default", "kube-system"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.split_whitespace().next() == Some(ns)),
            "namespace {ns} missing:\n{stdout}"
        );
    }
    // The exported kubeconfig works on its own too.
    let own = env.home.join("clusters").join("e2e").join("kubeconfig");
    let out = env.cmd(
        &kubectl,
        &[
            "--kubeconfig",
            own.to_str().unwrap(),
            "get",
            "--raw",
            "/readyz",
        ],
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");

    env.ok(&["delete", "cluster", "--name", "e2e"]);
    assert!(cluster_pids.iter().all(|p| !running(*p)));
    assert!(!env.home.join("clusters").join("e2e").exists());
    assert_eq!(env.kubeconfig_yaml()["current-context"].as_str(), Some(""));
}
