//! A node: its containerd (config, CNI, registry mirrors) and kubelet
//! (KubeletConfiguration, kubeconfig), each run inside the node's network
//! namespace. Everything here is per node, so more nodes are a loop.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use crate::config::NodeConfig;
use crate::kubeconfig;
use crate::net;
use crate::pki::{self, NodePki, Pki};
use crate::process::{Component, Readiness};
use crate::state::{Layout, NodeLayout, NodeRole, NodeState};

/// The sandbox (pause) image every containerd uses; ferrokube loads it.
pub const SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// Where Debian's containernetworking-plugins put the CNI plugins.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// The cluster DNS Service IP and domain the kubelet hands to pods.
pub const CLUSTER_DNS: &str = "10.96.0.10";
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// Registries whose pulls go to the cluster's registry.
pub const MIRRORED_REGISTRIES: &[(&str, &str)] = &[
    ("docker.io", "https://registry-1.docker.io"),
    ("registry.k8s.io", "https://registry.k8s.io"),
    ("quay.io", "https://quay.io"),
];
/// PATH for node daemons (runc and the shims are in /usr/sbin, /usr/bin).
pub const NODE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The kubelet's read-only healthz port (on 127.0.0.1 in the node).
pub const KUBELET_HEALTHZ_PORT: u16 = 10248;
pub const KUBELET_PORT: u16 = 10250;
/// The label kubeadm puts on control-plane nodes.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// Node names as kind names them: `<cluster>-control-plane`, then
/// `<cluster>-worker`, `<cluster>-worker2`, ...
pub fn node_name(cluster: &str, role: NodeRole, worker_ordinal: usize) -> String {
    match role {
        NodeRole::ControlPlane => format!("{cluster}-control-plane"),
        NodeRole::Worker if worker_ordinal <= 1 => format!("{cluster}-worker"),
        NodeRole::Worker => format!("{cluster}-worker{worker_ordinal}"),
    }
}

/// The nodes of a cluster with index `n`, as `config` declares them
/// (control plane first). With workers, the control-plane node gets
/// kubeadm's NoSchedule taint, as in a kind cluster.
pub fn plan_nodes(cluster: &str, n: u8, config: &[NodeConfig]) -> Vec<NodeState> {
    let has_workers = config.iter().any(|c| c.role == NodeRole::Worker);
    let mut worker = 0;
    config
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let k = k as u8;
            let ordinal = if c.role == NodeRole::Worker {
                worker += 1;
                worker
            } else {
                0
            };
            let name = node_name(cluster, c.role, ordinal);
            let mut taints = c.taints.clone();
            if c.role == NodeRole::ControlPlane && has_workers {
                taints.push(format!("{CONTROL_PLANE_LABEL}:NoSchedule"));
            }
            NodeState {
                netns: net::netns_name(&name),
                ip: net::node_ip(n, k).to_string(),
                labels: c.labels.clone(),
                taints,
                port_mappings: c.extra_port_mappings.clone(),
                host_veth: net::host_veth(n, k),
                containerd_socket: net::containerd_socket(n, k),
                name,
                role: c.role,
                index: k,
            }
        })
        .collect()
}

/// The cgroup (relative to every hierarchy's root) all of a cluster's pods
/// live under.
pub fn cluster_cgroup(cluster: &str) -> String {
    format!("/ferrokube/{cluster}")
}

/// A node's `cgroupRoot`.
pub fn node_cgroup_root(cluster: &str, node: &str) -> String {
    format!("{}/{node}", cluster_cgroup(cluster))
}

fn toml_str(s: &str) -> String {
    // TOML basic strings share JSON's escapes for what paths can contain.
    serde_json::Value::String(s.to_string()).to_string()
}

fn p(path: &Path) -> String {
    toml_str(&path.to_string_lossy())
}

/// Whether this process may lower OOM score adjustments (CAP_SYS_RESOURCE,
/// which containerd and runc inherit). Without it (e.g. in a container
/// that drops it) runc fails to create sandboxes (oom_score_adj -998) unless
/// containerd clamps the values: `restrict_oom_score_adj`.
pub fn can_lower_oom_score_adj() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// containerd's config.toml (version 2, containerd 1.6) for a node.
pub fn containerd_config(node: &NodeLayout, st: &NodeState) -> String {
    containerd_config_with(node, st, !can_lower_oom_score_adj())
}

/// [`containerd_config`] with `restrict_oom_score_adj` given.
pub fn containerd_config_with(
    node: &NodeLayout,
    st: &NodeState,
    restrict_oom_score_adj: bool,
) -> String {
    let sock = &st.containerd_socket;
    let run = sock.parent().unwrap_or(Path::new("/run/ferrokube"));
    format!(
        r#"# Generated by ferrokube for node {name}.
version = 2
root = {root}
state = {state}
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = {sock}

[ttrpc]
  address = {ttrpc}

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {sandbox}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = {restrict_oom_score_adj}
  enable_selinux = false
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = {runc_root}

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {cni_bin}
    conf_dir = {cni_conf}
    max_conf_num = 1
    conf_template = {cni_template}

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = {certs_d}
"#,
        name = node.name,
        root = p(&node.containerd_root()),
        state = p(&node.containerd_state()),
        sock = p(sock),
        ttrpc = toml_str(&format!("{}.ttrpc", sock.display())),
        opt = p(&node.containerd().join("opt")),
        sandbox = toml_str(SANDBOX_IMAGE),
        runc_root = p(&run.join("runc")),
        cni_bin = toml_str(CNI_BIN_DIR),
        cni_conf = p(&node.cni_conf_dir()),
        cni_template = p(&node.cni_template()),
        certs_d = p(&node.certs_d()),
    )
}

/// `certs.d/<registry>/hosts.toml`: pull and resolve through the cluster's
/// registry over plain HTTP. The registry is also the `server`, so nothing
/// falls back to `upstream` on the internet (an air-gapped mirror: a missing
/// image fails at once instead of after a DNS timeout, and no lookup leaves
/// the node).
pub fn hosts_toml(upstream: &str, mirror: &str) -> String {
    let mirror = toml_str(&format!("http://{mirror}"));
    format!(
        "# Generated by ferrokube: mirror of {}.\nserver = {mirror}\n\n[host.{mirror}]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n",
        upstream
    )
}

/// The node's CNI network as a containerd `conf_template`: bridge `cni0`
/// with host-local IPAM on the node's podCIDR, which containerd fills in
/// from the kubelet's UpdateRuntimeConfig (the podCIDR node IPAM gave the
/// Node), and portmap for hostPort. No masquerade here: pod traffic keeps
/// its source address across nodes; what leaves the cluster is masqueraded
/// by the node's own rule (net::setup_node).
pub fn cni_template(node: &NodeLayout) -> String {
    let data_dir = node.cni_cache_dir().join("networks");
    format!(
        r#"{{
  "cniVersion": "1.0.0",
  "name": "ferrokube",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "ranges": [{{{{range $i, $range := .PodCIDRRanges}}}}{{{{if $i}}}}, {{{{end}}}}[{{"subnet": "{{{{$range}}}}"}}]{{{{end}}}}],
        "routes": [{{"dst": "0.0.0.0/0"}}],
        "dataDir": {data_dir}
      }}
    }},
    {{
      "type": "portmap",
      "capabilities": {{"portMappings": true}},
      "snat": true
    }}
  ]
}}
"#,
        data_dir = serde_json::to_string(&data_dir).unwrap_or_else(|_| "\"\"".into())
    )
}

/// The node's KubeletConfiguration (kubelet.config.k8s.io/v1beta1).
pub fn kubelet_config(cluster: &str, node: &NodeLayout, st: &NodeState) -> String {
    let v = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "0.0.0.0",
        "port": KUBELET_PORT,
        "tlsCertFile": node.pki_file("kubelet.crt"),
        "tlsPrivateKeyFile": node.pki_file("kubelet.key"),
        "authentication": {
            "x509": { "clientCAFile": node.pki_file("ca.crt") },
            "anonymous": { "enabled": false },
        },
        "cgroupRoot": node_cgroup_root(cluster, &st.name),
        "clusterDNS": [CLUSTER_DNS],
        "clusterDomain": CLUSTER_DOMAIN,
        "staticPodPath": node.manifests(),
        "podLogsDir": node.pod_logs(),
        "containerRuntimeEndpoint": format!("unix://{}", st.containerd_socket.display()),
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "maxPods": 110,
    });
    serde_yaml::to_string(&v).unwrap_or_default()
}

/// The kubelet's kubeconfig (kubeadm's kubelet.conf shape), pointing at the
/// apiserver through the cluster bridge.
pub fn kubelet_kubeconfig(server: &str, pki: &Pki, node: &str, np: &NodePki) -> Result<String> {
    let user = pki::node_user(node);
    let v = kubeconfig::build_named(
        "kubernetes",
        &user,
        &format!("{user}@kubernetes"),
        server,
        &pki.ca_pem,
        &np.client_cert_pem,
        &np.client_key_pem,
    );
    kubeconfig::to_yaml(&v)
}

/// Write everything a node's daemons read: PKI, containerd config, registry
/// hosts, CNI config, KubeletConfiguration, kubeconfig, and the directories.
pub fn write_files(
    layout: &Layout,
    st: &NodeState,
    pki: &Pki,
    apiserver_port: u16,
    gateway: &str,
    registry: Option<&str>,
) -> Result<()> {
    let node = layout.node(&st.name);
    for d in [
        node.containerd_root(),
        node.containerd_state(),
        node.certs_d(),
        node.cni_conf_dir(),
        node.cni_cache_dir(),
        node.kubelet_root(),
        node.pod_logs(),
        node.manifests(),
    ] {
        fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    if let Some(dir) = st.containerd_socket.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let link = node.containerd_socket_link();
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&st.containerd_socket, &link)
        .with_context(|| format!("linking {}", link.display()))?;

    let ip = st
        .ip
        .parse()
        .with_context(|| format!("node address {:?}", st.ip))?;
    let np = pki::generate_node(pki, &node, ip)?;
    let server = format!("https://{gateway}:{apiserver_port}");
    write(
        &node.kubelet_kubeconfig(),
        &kubelet_kubeconfig(&server, pki, &st.name, &np)?,
    )?;
    write(&node.containerd_config(), &containerd_config(&node, st))?;
    if let Some(mirror) = registry {
        for (host, upstream) in MIRRORED_REGISTRIES {
            let dir = node.certs_d().join(host);
            fs::create_dir_all(&dir)?;
            write(&dir.join("hosts.toml"), &hosts_toml(upstream, mirror))?;
        }
    }
    // containerd renders the network config from the template once the
    // node has its podCIDR; a config from before (a restart) stays valid.
    write(&node.cni_template(), &cni_template(&node))?;
    write(
        &node.kubelet_config(),
        &kubelet_config(&layout.name, &node, st),
    )?;
    Ok(())
}

fn write(path: &Path, content: &str) -> Result<()> {
    fs::write(path, content).with_context(|| format!("writing {}", path.display()))
}

/// Process names of a node's daemons (unique within the cluster: pid files).
pub fn containerd_process(node: &str) -> String {
    format!("containerd-{node}")
}
pub fn kubelet_process(node: &str) -> String {
    format!("kubelet-{node}")
}

/// The node's containerd.
pub fn containerd_component(layout: &Layout, st: &NodeState, containerd: &Path) -> Component {
    let node = layout.node(&st.name);
    Component {
        name: containerd_process(&st.name),
        binary: containerd.to_path_buf(),
        args: vec![
            "--config".into(),
            node.containerd_config().display().to_string(),
        ],
        env: vec![("PATH".into(), NODE_PATH.into())],
        log_file: layout.log_file(&containerd_process(&st.name)),
        readiness: Readiness::UnixSocket {
            path: st.containerd_socket.clone(),
        },
        netns: Some(st.netns.clone()),
    }
}

/// The node's kubelet (upstream flags).
pub fn kubelet_component(
    layout: &Layout,
    st: &NodeState,
    kubelet: &Path,
    apiserver_port: u16,
    external_cloud: bool,
) -> Component {
    let node = layout.node(&st.name);
    Component {
        name: kubelet_process(&st.name),
        binary: kubelet.to_path_buf(),
        args: vec![
            format!("--kubeconfig={}", node.kubelet_kubeconfig().display()),
            format!("--config={}", node.kubelet_config().display()),
            format!("--root-dir={}", node.kubelet_root().display()),
            // Also in the config file; kubeadm passes it as a flag too.
            format!(
                "--container-runtime-endpoint=unix://{}",
                st.containerd_socket.display()
            ),
            format!("--hostname-override={}", st.name),
            format!("--node-ip={}", st.ip),
            "-v=2".into(),
        ]
        .into_iter()
        // The cloud-controller-manager's local provider initializes it.
        .chain(external_cloud.then(|| "--cloud-provider=external".to_string()))
        .chain((!st.labels.is_empty()).then(|| {
            let l: Vec<String> = st.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("--node-labels={}", l.join(","))
        }))
        .chain(
            (!st.taints.is_empty())
                .then(|| format!("--register-with-taints={}", st.taints.join(","))),
        )
        .collect(),
        env: vec![("PATH".into(), NODE_PATH.into())],
        log_file: layout.log_file(&kubelet_process(&st.name)),
        readiness: Readiness::NodeReady {
            port: apiserver_port,
            node: st.name.clone(),
        },
        netns: Some(st.netns.clone()),
    }
}

pub fn kube_proxy_process(node: &str) -> String {
    format!("kube-proxy-{node}")
}

/// The node's kube-proxy (nftables mode), in the node's namespace, with
/// the cluster's kube-proxy identity.
pub fn kube_proxy_component(
    layout: &Layout,
    st: &NodeState,
    kube_proxy: &Path,
    cluster_cidr: &str,
) -> Component {
    Component {
        name: kube_proxy_process(&st.name),
        binary: kube_proxy.to_path_buf(),
        args: vec![
            format!(
                "--kubeconfig={}",
                layout.component_kubeconfig("kube-proxy").display()
            ),
            "--proxy-mode=nftables".into(),
            format!("--hostname-override={}", st.name),
            format!("--cluster-cidr={cluster_cidr}"),
            format!("--nodeport-addresses={}/32", st.ip),
            "-v=2".into(),
        ],
        env: vec![("PATH".into(), NODE_PATH.into())],
        log_file: layout.log_file(&kube_proxy_process(&st.name)),
        readiness: Readiness::None,
        netns: Some(st.netns.clone()),
    }
}

/// The cluster's registry: Debian's `docker-registry` (distribution 2.x).
pub fn registry_config(layout: &Layout, addr: &str) -> String {
    format!(
        "# Generated by ferrokube.\nversion: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
        toml_str(&layout.registry_data().to_string_lossy())
    )
}

pub fn registry_component(layout: &Layout, registry: &Path, addr: &str) -> Component {
    Component {
        name: "registry".into(),
        binary: registry.to_path_buf(),
        args: vec![
            "serve".into(),
            layout.registry_config().display().to_string(),
        ],
        env: vec![],
        log_file: layout.log_file("registry"),
        readiness: Readiness::Http {
            addr: addr.to_string(),
            path: "/v2/".into(),
        },
        netns: None,
    }
}

/// Where a node's daemons are found.
#[derive(Debug, Clone)]
pub struct NodeBinaries {
    pub containerd: PathBuf,
    /// `None` while kube-proxy is not built: Services then only exist in
    /// the API.
    pub kube_proxy: Option<PathBuf>,
    /// `None` while the kubelet is not built: the node then runs
    /// containerd only.
    pub kubelet: Option<PathBuf>,
    pub registry: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (Layout, NodeState) {
        let layout = Layout::new(Path::new("/h"), "c");
        let st = plan_nodes("c", 3, &[NodeConfig::new(NodeRole::ControlPlane)]).remove(0);
        (layout, st)
    }

    #[test]
    fn node_plan() {
        let mut worker = NodeConfig::new(NodeRole::Worker);
        worker.labels.insert("tier".into(), "db".into());
        let nodes = plan_nodes(
            "c",
            3,
            &[
                NodeConfig::new(NodeRole::ControlPlane),
                worker,
                NodeConfig::new(NodeRole::Worker),
            ],
        );
        assert_eq!(
            nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["c-control-plane", "c-worker", "c-worker2"]
        );
        assert_eq!(nodes[0].role, NodeRole::ControlPlane);
        assert_eq!(nodes[0].ip, "10.200.3.10");
        assert_eq!(nodes[2].ip, "10.200.3.12");
        assert_eq!(
            nodes[0].taints,
            ["node-role.kubernetes.io/control-plane:NoSchedule"]
        );
        assert!(nodes[1].taints.is_empty());
        let kc = kubelet_component(
            &Layout::new(Path::new("/h"), "c"),
            &nodes[1],
            Path::new("/b/kubelet"),
            6443,
            true,
        );
        assert!(kc.args.iter().any(|a| a == "--node-labels=tier=db"));
        assert!(kc.args.iter().any(|a| a == "--cloud-provider=external"));
        assert_eq!(nodes[0].netns, "fk-c-control-plane");
        assert_eq!(nodes[1].host_veth, "fk3n1");
        assert_eq!(
            nodes[0].containerd_socket,
            net::run_dir().join("c3/n0/containerd.sock")
        );
    }

    #[test]
    fn containerd_toml() {
        let (layout, st) = fixture();
        let node = layout.node(&st.name);
        let c = containerd_config(&node, &st);
        for want in [
            "root = \"/h/clusters/c/nodes/c-control-plane/containerd/root\"",
            "state = \"/h/clusters/c/nodes/c-control-plane/containerd/state\"",
            "sandbox_image = \"registry.k8s.io/pause:3.10\"",
            "snapshotter = \"overlayfs\"",
            "SystemdCgroup = false",
            "runtime_type = \"io.containerd.runc.v2\"",
            "bin_dir = \"/usr/lib/cni\"",
            "conf_dir = \"/h/clusters/c/nodes/c-control-plane/cni/net.d\"",
            "config_path = \"/h/clusters/c/nodes/c-control-plane/containerd/certs.d\"",
            "stream_server_address = \"127.0.0.1\"",
            "netns_mounts_under_state_dir = true",
        ] {
            assert!(c.contains(want), "missing {want}\n{c}");
        }
        assert!(containerd_config_with(&node, &st, true).contains("restrict_oom_score_adj = true"));
        assert!(
            containerd_config_with(&node, &st, false).contains("restrict_oom_score_adj = false")
        );
        let h = hosts_toml("https://registry-1.docker.io", "10.200.3.1:5000");
        assert!(h.contains("server = \"http://10.200.3.1:5000\""), "{h}");
        assert!(h.contains("[host.\"http://10.200.3.1:5000\"]"));
    }

    #[test]
    fn cni_and_kubelet_config() {
        let (layout, st) = fixture();
        let node = layout.node(&st.name);
        // What containerd renders for podCIDR 10.131.0.0/24 must be JSON.
        let t = cni_template(&node);
        let rendered = t.replace(
            "{{range $i, $range := .PodCIDRRanges}}{{if $i}}, {{end}}[{\"subnet\": \"{{$range}}\"}]{{end}}",
            "[{\"subnet\": \"10.131.0.0/24\"}]",
        );
        let v: serde_json::Value = serde_json::from_str(&rendered).unwrap();
        assert_eq!(v["plugins"][0]["type"], "bridge");
        assert_eq!(v["plugins"][0]["bridge"], "cni0");
        assert_eq!(v["plugins"][0]["ipMasq"], false);
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.131.0.0/24"
        );
        assert_eq!(v["plugins"][1]["type"], "portmap");
        assert!(containerd_config(&node, &st).contains(
            "conf_template = \"/h/clusters/c/nodes/c-control-plane/containerd/cni-template.json\""
        ));
        let k: serde_yaml::Value = serde_yaml::from_str(&kubelet_config("c", &node, &st)).unwrap();
        assert_eq!(k["kind"].as_str(), Some("KubeletConfiguration"));
        assert_eq!(k["port"].as_u64(), Some(10250));
        assert_eq!(
            k["cgroupRoot"].as_str(),
            Some("/ferrokube/c/c-control-plane")
        );
        assert_eq!(k["clusterDNS"][0].as_str(), Some("10.96.0.10"));
        assert_eq!(
            k["authentication"]["x509"]["clientCAFile"].as_str(),
            Some("/h/clusters/c/nodes/c-control-plane/pki/ca.crt")
        );
        assert!(k["containerRuntimeEndpoint"]
            .as_str()
            .unwrap()
            .starts_with("unix:///"));
        let kc = kubelet_component(&layout, &st, Path::new("/b/kubelet"), 6443, false);
        assert_eq!(kc.netns.as_deref(), Some("fk-c-control-plane"));
        for want in [
            "--kubeconfig=/h/clusters/c/nodes/c-control-plane/kubelet.kubeconfig",
            "--config=/h/clusters/c/nodes/c-control-plane/kubelet-config.yaml",
            "--root-dir=/h/clusters/c/nodes/c-control-plane/kubelet",
            "--hostname-override=c-control-plane",
            "--node-ip=10.200.3.10",
        ] {
            assert!(kc.args.iter().any(|a| a == want), "missing {want}");
        }
        let r = registry_config(&layout, "10.200.3.1:5000");
        assert!(r.contains("rootdirectory: \"/h/clusters/c/registry/data\""));
        assert!(r.contains("addr: 10.200.3.1:5000"));
    }
}
