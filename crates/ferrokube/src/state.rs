//! On-disk layout of a cluster: `$FERROKUBE_HOME/clusters/<name>/`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::process::RunningProcess;

/// `$FERROKUBE_HOME`, else `$HOME/.ferrokube`.
pub fn ferrokube_home() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("FERROKUBE_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".ferrokube")),
        None => bail!("neither FERROKUBE_HOME nor HOME is set"),
    }
}

/// Cluster names follow kind's rule: lowercase letters, digits, '-' and
/// '.', at most 50 characters, and not starting with '.' or '-'.
pub fn validate_name(name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let ok = !name.is_empty()
        && name.len() <= 50
        && ok_chars
        && !name.starts_with(['.', '-'])
        && name != "."
        && name != "..";
    if !ok {
        bail!(
            "'{name}' is not a valid cluster name, cluster names must match `^[a-z0-9]([a-z0-9.-]*)$` and be at most 50 characters"
        );
    }
    Ok(())
}

/// Paths of one cluster's state.
#[derive(Debug, Clone)]
pub struct Layout {
    pub name: String,
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(home: &Path, name: &str) -> Layout {
        Layout {
            name: name.to_string(),
            dir: home.join("clusters").join(name),
        }
    }
    pub fn pki(&self) -> PathBuf {
        self.dir.join("pki")
    }
    pub fn pki_file(&self, file: &str) -> PathBuf {
        self.pki().join(file)
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    pub fn log_file(&self, component: &str) -> PathBuf {
        self.logs().join(format!("{component}.log"))
    }
    pub fn pids(&self) -> PathBuf {
        self.dir.join("pids")
    }
    pub fn pid_file(&self, component: &str) -> PathBuf {
        self.pids().join(format!("{component}.pid"))
    }
    pub fn etcd_data(&self) -> PathBuf {
        self.dir.join("etcd")
    }
    pub fn tokens(&self) -> PathBuf {
        self.dir.join("tokens.csv")
    }
    /// `<stem>.conf`: a control-plane daemon's kubeconfig (kubeadm's names).
    pub fn component_kubeconfig(&self, stem: &str) -> PathBuf {
        self.dir.join(format!("{stem}.conf"))
    }
    /// The cloud-controller-manager's `--cloud-config`.
    pub fn cloud_config(&self) -> PathBuf {
        self.dir.join("cloud-config.yaml")
    }
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
    pub fn cluster_json(&self) -> PathBuf {
        self.dir.join("cluster.json")
    }
    /// The string every component's command line contains.
    pub fn marker(&self) -> String {
        self.dir.display().to_string()
    }
    pub fn nodes_dir(&self) -> PathBuf {
        self.dir.join("nodes")
    }
    /// The state directory of one node.
    pub fn node(&self, node: &str) -> NodeLayout {
        NodeLayout {
            name: node.to_string(),
            dir: self.nodes_dir().join(node),
        }
    }
    /// The local registry's directory (config and storage).
    pub fn registry(&self) -> PathBuf {
        self.dir.join("registry")
    }
    pub fn registry_config(&self) -> PathBuf {
        self.registry().join("config.yml")
    }
    pub fn registry_data(&self) -> PathBuf {
        self.registry().join("data")
    }
}

/// Paths of one node's state: `<cluster dir>/nodes/<node>/`.
#[derive(Debug, Clone)]
pub struct NodeLayout {
    pub name: String,
    pub dir: PathBuf,
}

impl NodeLayout {
    pub fn containerd(&self) -> PathBuf {
        self.dir.join("containerd")
    }
    pub fn containerd_root(&self) -> PathBuf {
        self.containerd().join("root")
    }
    pub fn containerd_state(&self) -> PathBuf {
        self.containerd().join("state")
    }
    pub fn containerd_config(&self) -> PathBuf {
        self.containerd().join("config.toml")
    }
    /// `containerd/certs.d`: containerd's registry `config_path`.
    pub fn certs_d(&self) -> PathBuf {
        self.containerd().join("certs.d")
    }
    /// A symlink to the containerd socket (the socket itself lives in a
    /// short path under /run: unix socket paths are limited to 107 bytes).
    pub fn containerd_socket_link(&self) -> PathBuf {
        self.containerd().join("containerd.sock")
    }
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.dir.join("cni").join("net.d")
    }
    pub fn cni_cache_dir(&self) -> PathBuf {
        self.dir.join("cni").join("cache")
    }
    /// The kubelet's `--root-dir`.
    pub fn kubelet_root(&self) -> PathBuf {
        self.dir.join("kubelet")
    }
    pub fn pod_logs(&self) -> PathBuf {
        self.dir.join("pod-logs")
    }
    /// `staticPodPath`.
    pub fn manifests(&self) -> PathBuf {
        self.dir.join("manifests")
    }
    /// The CNI config template containerd renders once the kubelet hands
    /// it the node's podCIDR.
    pub fn cni_template(&self) -> PathBuf {
        self.containerd().join("cni-template.json")
    }
    pub fn kubelet_config(&self) -> PathBuf {
        self.dir.join("kubelet-config.yaml")
    }
    pub fn kubelet_kubeconfig(&self) -> PathBuf {
        self.dir.join("kubelet.kubeconfig")
    }
    pub fn pki(&self) -> PathBuf {
        self.dir.join("pki")
    }
    pub fn pki_file(&self, file: &str) -> PathBuf {
        self.pki().join(file)
    }
}

/// The role of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    ControlPlane,
    Worker,
}

/// One node of a cluster, as recorded in `cluster.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    pub name: String,
    pub role: NodeRole,
    /// 0-based position in the cluster (addresses derive from it).
    pub index: u8,
    /// The network namespace (`/run/netns/<netns>`) containerd and the
    /// kubelet run in.
    pub netns: String,
    /// The node's address on the cluster bridge.
    pub ip: String,
    /// Labels the kubelet registers the node with.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Taints the kubelet registers the node with (`key[=value]:Effect`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<String>,
    /// Host ports relayed to this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<crate::config::PortMapping>,
    /// The host end of the node's veth pair.
    pub host_veth: String,
    /// containerd's socket.
    pub containerd_socket: PathBuf,
}

/// `cluster.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterState {
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// Named ports: `etcd-client`, `etcd-peer`, `apiserver`, ...
    pub ports: BTreeMap<String, u16>,
    /// Started daemons, in start order.
    pub processes: Vec<RunningProcess>,
    /// Kubeconfig files this cluster was merged into (cleaned on delete).
    #[serde(default)]
    pub kubeconfigs: Vec<PathBuf>,
    /// The machine-wide cluster index `n` (bridge `fkbr<n>`, node subnet
    /// 10.200.n.0/24, pod CIDR 10.(128+n).0.0/16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u8>,
    /// The local registry's `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The cluster's nodes, in creation order.
    #[serde(default)]
    pub nodes: Vec<NodeState>,
}

impl ClusterState {
    pub fn load(layout: &Layout) -> Result<Option<ClusterState>> {
        let path = layout.cluster_json();
        match fs::read(&path) {
            Ok(data) => Ok(Some(
                serde_json::from_slice(&data)
                    .with_context(|| format!("parsing {}", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Write `cluster.json` and the pid files.
    pub fn save(&self, layout: &Layout) -> Result<()> {
        fs::create_dir_all(layout.pids())?;
        for p in &self.processes {
            fs::write(layout.pid_file(&p.name), format!("{}\n", p.pid))
                .with_context(|| format!("writing pid file for {}", p.name))?;
        }
        let path = layout.cluster_json();
        let tmp = layout.dir.join(".cluster.json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Processes that are still running (and still ours).
    pub fn live_processes(&self, layout: &Layout) -> Vec<&RunningProcess> {
        let marker = layout.marker();
        self.processes
            .iter()
            .filter(|p| p.is_alive(&marker))
            .collect()
    }
}

/// Names of the clusters under `home`, sorted.
pub fn list_clusters(home: &Path) -> Result<Vec<String>> {
    let dir = home.join("clusters");
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("cluster.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["ferrokube", "a", "a-b.c", "0", "x1"] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            "A",
            "a_b",
            "-a",
            ".a",
            "..",
            "a/b",
            "a b",
            &"x".repeat(51),
            "é",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn state_round_trip_and_listing() {
        let home = tempfile::tempdir().unwrap();
        assert!(list_clusters(home.path()).unwrap().is_empty());
        let layout = Layout::new(home.path(), "a");
        assert!(ClusterState::load(&layout).unwrap().is_none());
        fs::create_dir_all(&layout.dir).unwrap();
        let mut st = ClusterState {
            name: "a".into(),
            ..Default::default()
        };
        st.ports.insert("apiserver".into(), 1234);
        st.processes.push(RunningProcess {
            name: "etcd".into(),
            pid: 999_999_999,
            start_time: Some(1),
            cmdline: vec!["etcd".into()],
            log_file: layout.log_file("etcd"),
        });
        st.save(&layout).unwrap();
        assert_eq!(ClusterState::load(&layout).unwrap().unwrap(), st);
        assert_eq!(
            fs::read_to_string(layout.pid_file("etcd")).unwrap(),
            "999999999\n"
        );
        assert!(st.live_processes(&layout).is_empty());
        // A directory without cluster.json is not a cluster.
        fs::create_dir_all(home.path().join("clusters").join("junk")).unwrap();
        assert_eq!(list_clusters(home.path()).unwrap(), ["a"]);
        fs::write(layout.cluster_json(), "{not json").unwrap();
        assert!(ClusterState::load(&layout).is_err());
    }
}
