//! End-to-end tests of the `ferrokube` CLI.
//!
//! * `lifecycle_with_stand_in_apiserver` runs real etcd and a stand-in
//!   kube-apiserver (`openssl s_server` serving `/readyz` with the cluster's
//!   serving certificate) to exercise create/get/delete, two clusters side
//!   by side and kubeconfig merging, independently of the real apiserver.
//!   These use `--control-plane-only` (no nodes), but still get the
//!   cluster network (bridge, nftables guard) and the image registry.
//! * `node_with_stand_in_kubelet` runs a full node (network namespace,
//!   containerd, images loaded and pushed to the registry) with the real
//!   kube-apiserver and a stand-in kubelet that registers its Node with
//!   curl from inside the node's namespace, then checks that delete leaves
//!   nothing behind.
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
    images_dir: Option<PathBuf>,
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
            images_dir: None,
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
        match &self.images_dir {
            Some(d) => c.env("FERROKUBE_IMAGES_DIR", d),
            None => c.env_remove("FERROKUBE_IMAGES_DIR"),
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

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn nft_table_exists(cluster: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", "ip", &format!("ferrokube-{cluster}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Mount points at or below `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .collect()
}

/// Idle stand-ins for kube-controller-manager and kube-scheduler, so these
/// tests exercise ferrokube itself (the real daemons have their own tests).
fn stand_in_control_loops(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for name in [
        "kube-controller-manager",
        "kube-scheduler",
        "cloud-controller-manager",
        "kube-proxy",
    ] {
        let f = dir.join(name);
        std::fs::write(&f, "#!/bin/sh\nexec sleep 100000\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
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
    if !is_root() {
        eprintln!("SKIP: not root (clusters create network namespaces, bridges, nftables rules)");
        return;
    }
    let bins = tempfile::tempdir().unwrap();
    let fake = bins.path().join("kube-apiserver");
    std::fs::write(&fake, STAND_IN_APISERVER).unwrap();
    stand_in_control_loops(bins.path());
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

    env.ok(&[
        "create",
        "cluster",
        "--name",
        "alpha",
        "--wait",
        "60s",
        "--control-plane-only",
    ]);
    env.ok(&[
        "create",
        "cluster",
        "--name",
        "beta",
        "--wait",
        "1m",
        "--control-plane-only",
    ]);

    // Side by side: different ports, indexes, bridges and state dirs, all
    // processes running.
    let (a, b) = (env.state("alpha"), env.state("beta"));
    assert_ne!(a["ports"]["apiserver"], b["ports"]["apiserver"]);
    assert_ne!(a["ports"]["etcd-client"], b["ports"]["etcd-client"]);
    assert_ne!(a["ports"]["registry"], b["ports"]["registry"]);
    let (ai, bi) = (
        a["index"].as_u64().expect("index"),
        b["index"].as_u64().expect("index"),
    );
    assert_ne!(ai, bi);
    for (st, i) in [(&a, ai), (&b, bi)] {
        assert!(link_exists(&format!("fkbr{i}")), "bridge fkbr{i}");
        assert_eq!(
            st["registry"].as_str().unwrap(),
            format!("10.200.{i}.1:{}", st["ports"]["registry"])
        );
        assert!(st["nodes"].as_array().unwrap().is_empty());
    }
    assert!(nft_table_exists("alpha") && nft_table_exists("beta"));
    let (a_pids, b_pids) = (pids(&a), pids(&b));
    assert_eq!(
        a_pids.len(),
        6,
        "etcd, kube-apiserver, kube-controller-manager, kube-scheduler, cloud-controller-manager, registry"
    );
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
            "pids/registry.pid",
            "logs/etcd.log",
            "registry/config.yml",
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
    assert!(!link_exists(&format!("fkbr{ai}")) && !nft_table_exists("alpha"));
    assert!(link_exists(&format!("fkbr{bi}")) && nft_table_exists("beta"));
    let merged = env.kubeconfig_yaml();
    assert_eq!(names(&merged, "clusters"), ["ferrokube-beta"]);
    assert_eq!(merged["current-context"].as_str(), Some("ferrokube-beta"));
    assert_eq!(env.ok(&["get", "clusters"]), "beta\n");

    // Deleting again (or a cluster that never existed) succeeds.
    env.ok(&["delete", "cluster", "--name", "alpha"]);
    env.ok(&["delete", "cluster", "--name", "never-was"]);

    env.ok(&["delete", "cluster", "--name", "beta"]);
    assert!(b_pids.iter().all(|p| !running(*p)));
    assert!(!link_exists(&format!("fkbr{bi}")) && !nft_table_exists("beta"));
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
    stand_in_control_loops(bins.path());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    if !is_root() {
        eprintln!("SKIP: not root (clusters create network namespaces, bridges, nftables rules)");
        return;
    }
    let env = Env::new(
        Some(bins.path().to_path_buf()),
        PathBuf::from(env!("CARGO_BIN_EXE_ferrokube")),
    );
    let _cleanup = Cleanup(&env, vec!["doomed"]);
    let out = env.ferrokube(&[
        "create",
        "cluster",
        "--name",
        "doomed",
        "--wait",
        "30s",
        "--control-plane-only",
    ]);
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
    assert!(!nft_table_exists("doomed"), "guard removed");
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

/// Stand-in kubelet: registers its Node as Ready through the apiserver's
/// bridge address with the node's client certificate (so it proves the
/// node namespace reaches the apiserver through the guard), then sleeps.
const STAND_IN_KUBELET: &str = r#"#!/usr/bin/env bash
set -eu
for a in "$@"; do
  case "$a" in
    --kubeconfig=*) kc=${a#*=} ;;
    --hostname-override=*) node=${a#*=} ;;
    --node-ip=*) ip=${a#*=} ;;
  esac
done
dir=$(dirname "$kc")
server=$(sed -n 's/^ *server: //p' "$kc")
echo "stand-in kubelet: node $node at $ip, apiserver $server"
c=(curl -sS --max-time 10 --cacert "$dir/pki/ca.crt" --cert "$dir/pki/kubelet-client.crt" --key "$dir/pki/kubelet-client.key")
status='"status":{"addresses":[{"type":"InternalIP","address":"'$ip'"}],"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"stand-in kubelet"}]}'
for i in $(seq 1 50); do
  if "${c[@]}" -X POST -H 'Content-Type: application/json' \
      -d '{"apiVersion":"v1","kind":"Node","metadata":{"name":"'$node'"},'"$status"'}' \
      "$server/api/v1/nodes"; then break; fi
  sleep 0.2
done
echo
"${c[@]}" -X PATCH -H 'Content-Type: application/merge-patch+json' -d "{$status}" \
  "$server/api/v1/nodes/$node/status"
echo
exec sleep 100000
"#;

/// Write a one-layer OCI image archive named `name` (uncompressed layer
/// holding /hello.txt) to `path`.
fn write_oci_archive(path: &Path, name: &str) {
    fn tar(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut data = Vec::new();
        for (name, content) in entries {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..108].copy_from_slice(b"0000644\0");
            h[108..116].copy_from_slice(b"0000000\0");
            h[116..124].copy_from_slice(b"0000000\0");
            h[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
            h[136..148].copy_from_slice(b"00000000000\0");
            h[156] = b'0';
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            data.extend_from_slice(&h);
            data.extend_from_slice(content);
            data.resize(data.len().div_ceil(512) * 512, 0);
        }
        data.extend_from_slice(&[0u8; 1024]);
        data
    }
    fn sha256(data: &[u8]) -> String {
        let mut child = Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sha256sum");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }
    let layer = tar(&[("hello.txt", format!("hello from {name}\n").into_bytes())]);
    let layer_digest = sha256(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/hello"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{layer_digest}"]}}}}"#
    )
    .into_bytes();
    let config_digest = sha256(&config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    )
    .into_bytes();
    let manifest_digest = sha256(&manifest);
    let tag = name.rsplit(':').next().unwrap();
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{manifest_digest}","size":{},"platform":{{"architecture":"amd64","os":"linux"}},"annotations":{{"io.containerd.image.name":"{name}","org.opencontainers.image.ref.name":"{tag}"}}}}]}}"#,
        manifest.len()
    )
    .into_bytes();
    let archive = tar(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json", index),
        (&format!("blobs/sha256/{layer_digest}"), layer.clone()),
        (&format!("blobs/sha256/{config_digest}"), config.clone()),
        (&format!("blobs/sha256/{manifest_digest}"), manifest.clone()),
    ]);
    std::fs::write(path, archive).unwrap();
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn node_with_stand_in_kubelet() {
    let required = [
        "etcd",
        "containerd",
        "ctr",
        "runc",
        "docker-registry",
        "skopeo",
        "nft",
        "curl",
        "sha256sum",
    ];
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|b| which(b).is_none())
        .collect();
    if !missing.is_empty() {
        assert!(
            bin_dir_from_env().is_none(),
            "missing {missing:?}: run `make deps`"
        );
        eprintln!("SKIP: missing {missing:?} (run `make deps`)");
        return;
    }
    if !is_root() {
        eprintln!("SKIP: not root (clusters create network namespaces, bridges, nftables rules)");
        return;
    }
    // The real kube-apiserver: from $FERROKUBE_BIN_DIR, else beside this
    // test's ferrokube binary.
    let ferrokube = PathBuf::from(env!("CARGO_BIN_EXE_ferrokube"));
    let apiserver = bin_dir_from_env()
        .unwrap_or_else(|| ferrokube.parent().unwrap().to_path_buf())
        .join("kube-apiserver");
    if !apiserver.is_file() {
        assert!(
            bin_dir_from_env().is_none(),
            "no kube-apiserver in FERROKUBE_BIN_DIR: run `make build`"
        );
        eprintln!("SKIP: no kube-apiserver built (cargo build -p apiserver)");
        return;
    }
    let bins = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&apiserver, bins.path().join("kube-apiserver")).unwrap();
    stand_in_control_loops(bins.path());
    let kubelet = bins.path().join("kubelet");
    std::fs::write(&kubelet, STAND_IN_KUBELET).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&kubelet, std::fs::Permissions::from_mode(0o755)).unwrap();
    let images = tempfile::tempdir().unwrap();
    write_oci_archive(
        &images.path().join("pause.tar"),
        "registry.k8s.io/pause:3.10",
    );
    write_oci_archive(
        &images.path().join("busybox.tar"),
        "docker.io/library/busybox:latest",
    );

    let mut env = Env::new(Some(bins.path().to_path_buf()), ferrokube);
    env.images_dir = Some(images.path().to_path_buf());
    let _cleanup = Cleanup(&env, vec!["fk-node-test"]);
    let name = "fk-node-test";
    let node = "fk-node-test-control-plane";
    env.ok(&["create", "cluster", "--name", name, "--wait", "90s"]);
    let st = env.state(name);
    let dir = env.home.join("clusters").join(name);
    let n = st["index"].as_u64().unwrap();
    assert_eq!(
        env.ok(&["get", "nodes", "--name", name]),
        format!("{node}\n")
    );
    let nd = &st["nodes"][0];
    assert_eq!(nd["name"], node);
    assert_eq!(nd["netns"], format!("fk-{node}"));
    assert_eq!(nd["ip"], format!("10.200.{n}.10"));
    let sock = nd["containerdSocket"].as_str().unwrap().to_string();
    let names: Vec<&str> = st["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "cloud-controller-manager",
            "registry",
            &format!("containerd-{node}"),
            &format!("kubelet-{node}"),
            &format!("kube-proxy-{node}")
        ]
    );
    let all_pids = pids(&st);

    // containerd and the kubelet run inside the node's namespace.
    let netns = std::fs::metadata(format!("/run/netns/fk-{node}")).expect("node netns");
    use std::os::unix::fs::MetadataExt;
    for pid in &all_pids[6..] {
        let ns = std::fs::metadata(format!("/proc/{pid}/ns/net")).unwrap();
        assert_eq!(ns.ino(), netns.ino(), "pid {pid} in the node namespace");
    }
    let eth0 = run_ok(
        "ip",
        &[
            "-n",
            &format!("fk-{node}"),
            "-o",
            "-4",
            "addr",
            "show",
            "eth0",
        ],
    );
    assert!(eth0.contains(&format!("10.200.{n}.10/24")), "{eth0}");
    assert!(link_exists(&format!("fkbr{n}")) && nft_table_exists(name));
    for f in [
        "containerd/config.toml",
        "containerd/certs.d/docker.io/hosts.toml",
        "containerd/certs.d/registry.k8s.io/hosts.toml",
        "containerd/certs.d/quay.io/hosts.toml",
        "containerd/cni-template.json",
        "kubelet-config.yaml",
        "kubelet.kubeconfig",
        "pki/kubelet.crt",
        "pki/kubelet-client.crt",
    ] {
        assert!(
            dir.join("nodes").join(node).join(f).is_file(),
            "missing {f}"
        );
    }

    // Images: imported into the node with the extra tags, and in the registry.
    let ctr_images =
        |sock: &str| run_ok("ctr", &["-a", sock, "-n", "k8s.io", "images", "ls", "-q"]);
    let listed = ctr_images(&sock);
    for img in [
        "registry.k8s.io/pause:3.10",
        "registry.k8s.io/pause:3.9",
        "docker.io/library/busybox:latest",
        "docker.io/library/busybox:stable",
    ] {
        assert!(listed.lines().any(|l| l == img), "{img} not in\n{listed}");
    }
    let registry = st["registry"].as_str().unwrap().to_string();
    let tags = run_ok(
        "curl",
        &["-sS", &format!("http://{registry}/v2/pause/tags/list")],
    );
    assert!(
        tags.contains("\"3.10\"") && tags.contains("\"3.9\""),
        "{tags}"
    );
    // Pulls of mirrored registries go to the cluster registry.
    let hosts = dir.join("nodes").join(node).join("containerd/certs.d");
    run_ok(
        "ctr",
        &[
            "-a",
            &sock,
            "-n",
            "k8s.io",
            "images",
            "rm",
            "docker.io/library/busybox:stable",
        ],
    );
    run_ok(
        "ip",
        &[
            "netns",
            "exec",
            &format!("fk-{node}"),
            "ctr",
            "-a",
            &sock,
            "-n",
            "k8s.io",
            "images",
            "pull",
            "--hosts-dir",
            hosts.to_str().unwrap(),
            "docker.io/library/busybox:stable",
        ],
    );
    assert!(ctr_images(&sock)
        .lines()
        .any(|l| l == "docker.io/library/busybox:stable"));

    // The stand-in kubelet registered; create labelled the node.
    let pki = dir.join("pki");
    let node_json = run_ok(
        "curl",
        &[
            "-sS",
            "--cacert",
            pki.join("ca.crt").to_str().unwrap(),
            "--cert",
            pki.join("admin.crt").to_str().unwrap(),
            "--key",
            pki.join("admin.key").to_str().unwrap(),
            &format!(
                "https://127.0.0.1:{}/api/v1/nodes/{node}",
                st["ports"]["apiserver"]
            ),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&node_json).expect("node json");
    assert_eq!(
        v["metadata"]["labels"]["node-role.kubernetes.io/control-plane"], "",
        "{node_json}"
    );

    // load image-archive: a docker-archive this time.
    let extra = images.path().join("extra-oci.tar");
    write_oci_archive(&extra, "docker.io/ferrokube/extra:1");
    let docker_archive = images.path().join("extra-docker.tar");
    run_ok(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--quiet",
            &format!("oci-archive:{}", extra.display()),
            &format!(
                "docker-archive:{}:ferrokube/extra:1",
                docker_archive.display()
            ),
        ],
    );
    env.ok(&[
        "load",
        "image-archive",
        docker_archive.to_str().unwrap(),
        "--name",
        name,
    ]);
    assert!(ctr_images(&sock)
        .lines()
        .any(|l| l == "docker.io/ferrokube/extra:1"));
    let tags = run_ok(
        "curl",
        &[
            "-sS",
            &format!("http://{registry}/v2/ferrokube/extra/tags/list"),
        ],
    );
    assert!(tags.contains("\"1\""), "{tags}");
    let out = env.ferrokube(&["load", "image-archive", "/nonexistent.tar", "--name", name]);
    assert!(!out.status.success());

    // The node's cgroupRoot exists for its kubelet.
    let cgroup_roots = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| h.path())
        .chain([PathBuf::from("/sys/fs/cgroup")])
        .filter(|h| h.join("ferrokube").join(name).join(node).is_dir())
        .count();
    assert!(cgroup_roots > 0, "no cgroup /ferrokube/{name}/{node}");
    assert!(dir.join(format!("logs/kubelet-{node}.log")).is_file());
    assert!(dir.join(format!("logs/containerd-{node}.log")).is_file());

    // Delete leaves nothing behind.
    env.ok(&["delete", "cluster", "--name", name]);
    assert!(all_pids.iter().all(|p| !running(*p)));
    assert!(!Path::new(&format!("/run/netns/fk-{node}")).exists());
    assert!(!link_exists(&format!("fkbr{n}")));
    assert!(!link_exists(&format!("fk{n}n0")));
    assert!(!nft_table_exists(name));
    assert!(mounts_under(&dir).is_empty(), "{:?}", mounts_under(&dir));
    assert!(!dir.exists());
    assert!(!Path::new(&sock).exists());
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let cg = hierarchy.path().join("ferrokube").join(name);
        assert!(!cg.exists(), "{} left", cg.display());
    }
    assert!(!Path::new("/sys/fs/cgroup/ferrokube").join(name).exists());
    assert_eq!(env.ok(&["get", "nodes", "--name", name]), "");
}
