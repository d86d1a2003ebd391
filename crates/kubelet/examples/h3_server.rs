//! Dev harness (H3): runs one busybox pod in a containerd through CRI (host
//! network, no CNI) and serves the kubelet API for it.
//!
//!   h3_server <cri-socket> <pki-dir> <pod-logs-dir> <port>
//!
//! pki-dir must hold ca.crt/ca.key; kubelet.crt/key and a client cert
//! (apiserver-kubelet-client.crt/key) are created there.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cri::runtime::v1::runtime_service_client::RuntimeServiceClient;
use cri::runtime::v1::*;
use k8s_openapi::api::core::v1::Pod;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber_init();
    let a: Vec<String> = std::env::args().collect();
    let sock = a[1].clone();
    let pki = PathBuf::from(&a[2]);
    let logs = PathBuf::from(&a[3]);
    let port: u16 = a[4].parse()?;
    let ch = cri::connect(&sock).await?;
    let mut rt = RuntimeServiceClient::new(ch.clone());
    let (ns, name, uid) = ("default", "web", "uid-web-1");
    let mut labels = HashMap::new();
    labels.insert("io.kubernetes.pod.name".to_string(), name.to_string());
    labels.insert("io.kubernetes.pod.namespace".to_string(), ns.to_string());
    labels.insert("io.kubernetes.pod.uid".to_string(), uid.to_string());
    let log_dir = logs.join(format!("{ns}_{name}_{uid}"));
    std::fs::create_dir_all(&log_dir)?;
    // Leftovers of an earlier run.
    let old_sbs = rt
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                label_selector: labels.clone(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .items;
    for s in old_sbs {
        let _ = rt
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: s.id.clone(),
            })
            .await;
        let _ = rt
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: s.id,
            })
            .await;
    }
    let _ = std::fs::remove_dir_all(&log_dir);
    std::fs::create_dir_all(&log_dir)?;
    let sb_cfg = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: ns.into(),
            attempt: 0,
        }),
        log_directory: log_dir.display().to_string(),
        labels: labels.clone(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sb = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(sb_cfg.clone()),
            runtime_handler: String::new(),
        })
        .await?
        .into_inner()
        .pod_sandbox_id;
    println!("sandbox {sb}");
    let mk = |cname: &str, args: Vec<&str>, attempt: u32| {
        let mut l = labels.clone();
        l.insert("io.kubernetes.container.name".into(), cname.into());
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: cname.into(),
                attempt,
            }),
            image: Some(ImageSpec {
                image: "docker.io/library/busybox:latest".into(),
                ..Default::default()
            }),
            command: args.iter().map(|s| s.to_string()).collect(),
            labels: l,
            log_path: format!("{cname}/{attempt}.log"),
            stdin: true,
            ..Default::default()
        }
    };
    let app_args = vec![
        "sh",
        "-c",
        "i=0; while true; do echo line $i; echo err $i >&2; i=$((i+1)); sleep 1; done",
    ];
    // A first attempt that exits, then the running one (for --previous).
    let old = rt
        .create_container(CreateContainerRequest {
            pod_sandbox_id: sb.clone(),
            config: Some(mk(
                "app",
                vec!["sh", "-c", "echo previous attempt; exit 3"],
                0,
            )),
            sandbox_config: Some(sb_cfg.clone()),
        })
        .await?
        .into_inner()
        .container_id;
    rt.start_container(StartContainerRequest {
        container_id: old.clone(),
    })
    .await?;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let app = rt
        .create_container(CreateContainerRequest {
            pod_sandbox_id: sb.clone(),
            config: Some(mk("app", app_args, 1)),
            sandbox_config: Some(sb_cfg.clone()),
        })
        .await?
        .into_inner()
        .container_id;
    rt.start_container(StartContainerRequest {
        container_id: app.clone(),
    })
    .await?;
    let web = rt
        .create_container(CreateContainerRequest {
            pod_sandbox_id: sb.clone(),
            config: Some(mk(
                "http",
                vec!["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 18080 -h /www"],
                0,
            )),
            sandbox_config: Some(sb_cfg.clone()),
        })
        .await?
        .into_inner()
        .container_id;
    rt.start_container(StartContainerRequest {
        container_id: web.clone(),
    })
    .await?;
    println!("containers app={app} http={web} old={old}");
    let pod_json = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": uid},
        "spec": {"containers": [{"name": "app", "image": "busybox"}, {"name": "http", "image": "busybox"}], "nodeName": "h3-node"},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "app", "containerID": format!("containerd://{app}"), "ready": true, "restartCount": 1, "image": "busybox", "imageID": "",
             "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}},
             "lastState": {"terminated": {"exitCode": 3, "containerID": format!("containerd://{old}")}}},
            {"name": "http", "containerID": format!("containerd://{web}"), "ready": true, "restartCount": 0, "image": "busybox", "imageID": "",
             "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}
        ]}
    });
    let pod: Pod = serde_json::from_value(pod_json)?;
    let pods = Arc::new(Mutex::new(vec![pod]));
    // Certificates.
    let ca = std::fs::read_to_string(pki.join("ca.crt"))?;
    let ca_key = std::fs::read_to_string(pki.join("ca.key"))?;
    let (c, k) = component_base::certs::generate_serving_cert(
        &ca,
        &ca_key,
        "h3-node",
        &["localhost".into()],
        &["127.0.0.1".parse()?],
    )?;
    std::fs::write(pki.join("kubelet.crt"), c)?;
    std::fs::write(pki.join("kubelet.key"), k)?;
    let (c, k) = component_base::certs::generate_client_cert(
        &ca,
        &ca_key,
        "kube-apiserver-kubelet-client",
        &["system:masters".into()],
    )?;
    std::fs::write(pki.join("apiserver-kubelet-client.crt"), c)?;
    std::fs::write(pki.join("apiserver-kubelet-client.key"), k)?;
    let registry = prometheus::Registry::new();
    let p2 = pods.clone();
    let deps = kubelet::server::ServerDeps {
        runtime: rt.clone(),
        pods: Arc::new(move || p2.lock().unwrap().clone()),
        pod_logs_dir: logs.clone(),
        node_name: "h3-node".into(),
        registry,
        root_dir: logs.clone(),
    };
    let cfg = kubelet::server::ServerConfig {
        address: "127.0.0.1".parse()?,
        port,
        tls_cert_file: Some(pki.join("kubelet.crt")),
        tls_private_key_file: Some(pki.join("kubelet.key")),
        client_ca_file: Some(pki.join("ca.crt")),
    };
    let res = kubelet::server::serve(cfg, deps, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    println!("server ended: {res:?}; cleaning up");
    let _ = rt
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: sb.clone(),
        })
        .await;
    let _ = rt
        .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await;
    Ok(())
}

fn tracing_subscriber_init() {
    component_base::logging::init(4);
}
