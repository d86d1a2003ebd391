//! The provisioner in-process against an in-process apiserver (real etcd)
//! with kube-controller-manager's persistentvolume-binder: a claim of the
//! default class with a selected node gets a hostPath volume on that node
//! and ends Bound; deleting the claim removes the volume (reclaim Delete)
//! or keeps it (Retain); Immediate classes are refused. There is no
//! kubelet: the test checks each helper pod's spec, does what the pod would
//! do (creates or removes the directory) and reports the pod Succeeded
//! through the status subresource.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use apiserver::testing::TestServer;
use clap::Parser;
use k8s_openapi::api::core::v1::{
    Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    Pod, ServiceAccount, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use local_path_provisioner::options::Options;
use tokio_util::sync::CancellationToken;

const PROVISIONER: &str = "rancher.io/local-path";
const NS: &str = "local-path-storage";

struct Env {
    _server: TestServer,
    client: kube::Client,
    stop: CancellationToken,
    dir: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

async fn start(leader_elect: bool) -> Env {
    let server = TestServer::start().await.expect("test apiserver");
    let kubeconfig = server.kubeconfig_file().unwrap();
    let client = server.client().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();

    // kube-controller-manager's PV controller.
    let kcm = controller_manager::options::Options::parse_from([
        "kube-controller-manager".to_string(),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--leader-elect=false".into(),
        "--secure-port=0".into(),
        "--controllers=persistentvolume-binder,pvc-protection,pv-protection".into(),
    ]);
    let s = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = controller_manager::run_until(kcm, s).await {
            panic!("controller-manager failed: {e:#}");
        }
    });

    // Objects the add-on manifest and the cluster would provide.
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: meta(NS),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Helper pods run as the namespace's default service account.
    Api::<ServiceAccount>::namespaced(client.clone(), NS)
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta("default"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut node = Node {
        metadata: meta("node-1"),
        ..Default::default()
    };
    node.metadata.labels = Some(BTreeMap::from([(
        "kubernetes.io/hostname".into(),
        "host-1".into(),
    )]));
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        serde_json::json!({"nodePathMap": [
            {"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [dir.path().join("default")]},
            {"node": "node-1", "paths": [dir.path().join("node-1")]},
        ]})
        .to_string(),
    )
    .unwrap();

    let opts = Options::parse_args([
        "local-path-provisioner".to_string(),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--config={}", config.display()),
        format!("--namespace={NS}"),
        "--helper-image=busybox:test".into(),
        format!("--leader-elect={leader_elect}"),
    ]);
    let s = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = local_path_provisioner::run_until(opts, s).await {
            panic!("local-path-provisioner failed: {e:#}");
        }
    });
    Env {
        _server: server,
        client,
        stop,
        dir,
    }
}

async fn create_class(client: &kube::Client, name: &str, mode: &str, reclaim: &str, default: bool) {
    let mut sc = StorageClass {
        metadata: meta(name),
        provisioner: PROVISIONER.into(),
        volume_binding_mode: Some(mode.into()),
        reclaim_policy: Some(reclaim.into()),
        ..Default::default()
    };
    if default {
        sc.metadata.annotations = Some(BTreeMap::from([(
            "storageclass.kubernetes.io/is-default-class".into(),
            "true".into(),
        )]));
    }
    Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &sc)
        .await
        .unwrap();
}

async fn create_claim(
    client: &kube::Client,
    name: &str,
    class: &str,
    node: Option<&str>,
) -> PersistentVolumeClaim {
    let mut pvc = PersistentVolumeClaim {
        metadata: meta(name),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: Some(class.into()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), Quantity("1Gi".into()))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    };
    if let Some(n) = node {
        // What the scheduler's VolumeBinding PreBind does.
        pvc.metadata.annotations = Some(BTreeMap::from([(
            "volume.kubernetes.io/selected-node".into(),
            n.into(),
        )]));
    }
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pvc)
        .await
        .unwrap()
}

/// Waits for a helper pod, checks it, plays the kubelet (runs `effect` on
/// the host) and reports the pod Succeeded; returns the pod as created.
async fn complete_helper(client: &kube::Client, name: &str, effect: impl FnOnce(&Pod)) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod = eventually(&format!("helper pod {name}"), 30, || {
        let pods = pods.clone();
        async move { pods.get_opt(name).await.ok().flatten() }
    })
    .await;
    effect(&pod);
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"status": {"phase": "Succeeded"}})),
    )
    .await
    .unwrap();
    // The provisioner removes its helper pods.
    eventually(&format!("helper pod {name} removed"), 30, || {
        let pods = pods.clone();
        async move {
            pods.get_opt(name)
                .await
                .ok()
                .flatten()
                .is_none()
                .then_some(())
        }
    })
    .await;
    pod
}

fn check_helper(pod: &Pod, node: &str, base: &Path, command: &[&str]) {
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some(node));
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let c = &spec.containers[0];
    assert_eq!(c.image.as_deref(), Some("busybox:test"));
    assert_eq!(c.command.as_deref().unwrap(), command);
    let vol = &spec.volumes.as_ref().unwrap()[0];
    let hp = vol.host_path.as_ref().unwrap();
    assert_eq!(Path::new(&hp.path), base);
    let mount = &c.volume_mounts.as_ref().unwrap()[0];
    assert_eq!(mount.name, vol.name);
    assert_eq!(Path::new(&mount.mount_path), base);
}

async fn claim_events(client: &kube::Client, claim: &str) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(claim))
        .filter_map(|e| e.reason)
        .collect()
}

async fn wait_bound(client: &kube::Client, claim: &str) -> PersistentVolumeClaim {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    eventually(&format!("claim {claim} Bound"), 30, || {
        let pvcs = pvcs.clone();
        async move {
            pvcs.get_opt(claim)
                .await
                .ok()
                .flatten()
                .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisions_binds_and_deletes() {
    let env = start(true).await;
    let client = env.client.clone();
    create_class(&client, "standard", "WaitForFirstConsumer", "Delete", true).await;

    // A claim the scheduler has placed on node-1.
    let pvc = create_claim(&client, "data", "standard", Some("node-1")).await;
    let uid = pvc.uid().unwrap();
    let pv_name = format!("pvc-{uid}");
    let base: PathBuf = env.dir.path().join("node-1");
    let vol_dir = base.join(format!("{pv_name}_default_data"));

    let vd = vol_dir.clone();
    let create = complete_helper(
        &client,
        &format!("helper-pod-create-{pv_name}"),
        move |_| {
            std::fs::create_dir_all(&vd).unwrap();
        },
    )
    .await;
    let path = vol_dir.to_str().unwrap();
    check_helper(
        &create,
        "node-1",
        &base,
        &["mkdir", "-m", "0777", "-p", path],
    );

    // The PV controller annotated the claim for us; the volume exists and is bound.
    let bound = wait_bound(&client, "data").await;
    assert_eq!(
        bound.annotations()["volume.kubernetes.io/storage-provisioner"],
        PROVISIONER
    );
    assert_eq!(
        bound.spec.as_ref().unwrap().volume_name.as_deref(),
        Some(pv_name.as_str())
    );
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv = pvs.get(&pv_name).await.unwrap();
    assert_eq!(
        pv.annotations()["pv.kubernetes.io/provisioned-by"],
        PROVISIONER
    );
    let spec = pv.spec.clone().unwrap();
    assert_eq!(spec.capacity.as_ref().unwrap()["storage"].0, "1Gi");
    assert_eq!(spec.access_modes.as_deref().unwrap(), ["ReadWriteOnce"]);
    assert_eq!(spec.storage_class_name.as_deref(), Some("standard"));
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    let hp = spec.host_path.as_ref().unwrap();
    assert_eq!(hp.path, path);
    assert_eq!(hp.type_.as_deref(), Some("DirectoryOrCreate"));
    let cref = spec.claim_ref.as_ref().unwrap();
    assert_eq!(cref.namespace.as_deref(), Some("default"));
    assert_eq!(cref.name.as_deref(), Some("data"));
    assert_eq!(cref.uid.as_deref(), Some(uid.as_str()));
    let term = &spec
        .node_affinity
        .as_ref()
        .unwrap()
        .required
        .as_ref()
        .unwrap()
        .node_selector_terms[0];
    let expr = &term.match_expressions.as_ref().unwrap()[0];
    assert_eq!(expr.key, "kubernetes.io/hostname");
    assert_eq!(expr.operator, "In");
    assert_eq!(expr.values.as_deref().unwrap(), ["host-1"]);
    eventually("PV Bound", 30, || {
        let pvs = pvs.clone();
        let n = pv_name.clone();
        async move {
            let pv = pvs.get(&n).await.ok()?;
            (pv.status?.phase.as_deref() == Some("Bound")).then_some(())
        }
    })
    .await;
    eventually("provisioning events", 20, || {
        let client = client.clone();
        async move {
            let ev = claim_events(&client, "data").await;
            (ev.iter().any(|r| r == "Provisioning")
                && ev.iter().any(|r| r == "ProvisioningSucceeded"))
            .then_some(())
        }
    })
    .await;

    // Deleting the claim: the directory is removed, then the volume.
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), "default")
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    let vd = vol_dir.clone();
    let delete = complete_helper(
        &client,
        &format!("helper-pod-delete-{pv_name}"),
        move |_| {
            std::fs::remove_dir_all(&vd).unwrap();
        },
    )
    .await;
    check_helper(&delete, "node-1", &base, &["rm", "-rf", path]);
    eventually("PV deleted", 30, || {
        let pvs = pvs.clone();
        let n = pv_name.clone();
        async move { matches!(pvs.get_opt(&n).await, Ok(None)).then_some(()) }
    })
    .await;
    assert!(!vol_dir.exists());

    // Leader election ran on a Lease in the add-on's namespace.
    let lease = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), NS)
        .get("ferrokube.dev-local-path")
        .await
        .unwrap();
    assert!(lease.spec.unwrap().holder_identity.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_immediate_and_unlisted_nodes() {
    let env = start(false).await;
    let client = env.client.clone();
    create_class(&client, "keep", "WaitForFirstConsumer", "Retain", false).await;
    create_class(&client, "now", "Immediate", "Delete", false).await;

    // Immediate binding: refused, no helper pod, no volume.
    create_claim(&client, "immediate", "now", None).await;
    eventually("ProvisioningFailed", 30, || {
        let client = client.clone();
        async move {
            claim_events(&client, "immediate")
                .await
                .iter()
                .any(|r| r == "ProvisioningFailed")
                .then_some(())
        }
    })
    .await;

    // A node that is not listed uses the default path; the claim is not
    // annotated with a node yet, so nothing happens until it is.
    let mut node = Node {
        metadata: meta("node-2"),
        ..Default::default()
    };
    node.metadata.labels = Some(BTreeMap::from([(
        "kubernetes.io/hostname".into(),
        "node-2".into(),
    )]));
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    let pvc = create_claim(&client, "kept", "keep", None).await;
    let pv_name = format!("pvc-{}", pvc.uid().unwrap());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    assert!(pods
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty());
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), "default")
        .patch(
            "kept",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"metadata": {"annotations": {
                "volume.kubernetes.io/selected-node": "node-2"}}})),
        )
        .await
        .unwrap();
    // The first helper pod fails: reported, then retried.
    let helper = format!("helper-pod-create-{pv_name}");
    let first = eventually("first helper pod", 30, || {
        let pods = pods.clone();
        let h = helper.clone();
        async move { pods.get_opt(&h).await.ok().flatten() }
    })
    .await;
    pods.patch_status(
        &helper,
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"status": {
            "phase": "Failed",
            "containerStatuses": [{
                "name": "helper", "image": "busybox:test", "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "reason": "Error",
                    "message": "mkdir: permission denied"}},
            }],
        }})),
    )
    .await
    .unwrap();
    let failure = eventually("ProvisioningFailed for the failed helper", 30, || {
        let client = client.clone();
        async move {
            Api::<Event>::namespaced(client, "default")
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.involved_object.name.as_deref() == Some("kept")
                        && e.reason.as_deref() == Some("ProvisioningFailed")
                })
        }
    })
    .await;
    let msg = failure.message.unwrap_or_default();
    assert!(
        msg.contains("exit code 1") && msg.contains("permission denied"),
        "{msg}"
    );
    let base = env.dir.path().join("default");
    // The retry is a new pod under the same name.
    let create = eventually("retried helper pod", 30, || {
        let pods = pods.clone();
        let h = helper.clone();
        let old = first.uid();
        async move {
            pods.get_opt(&h)
                .await
                .ok()
                .flatten()
                .filter(|p| p.uid() != old)
        }
    })
    .await;
    assert!(create.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Failed"));
    let create = complete_helper(&client, &helper, |_| {}).await;
    let path = base.join(format!("{pv_name}_default_kept"));
    check_helper(
        &create,
        "node-2",
        &base,
        &["mkdir", "-m", "0777", "-p", path.to_str().unwrap()],
    );
    wait_bound(&client, "kept").await;

    // Retain: the volume stays Released and no helper pod runs.
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), "default")
        .delete("kept", &DeleteParams::default())
        .await
        .unwrap();
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    eventually("PV Released", 30, || {
        let pvs = pvs.clone();
        let n = pv_name.clone();
        async move {
            let pv = pvs.get(&n).await.ok()?;
            (pv.status?.phase.as_deref() == Some("Released")).then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(pvs.get_opt(&pv_name).await.unwrap().is_some());
    assert!(pods
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

/// The whole chain with kube-scheduler in-process: the VolumeBinding plugin
/// selects the node for the pod's unbound WaitForFirstConsumer claim, the
/// PV controller hands the claim to this provisioner, the volume is made
/// and bound, and only then is the pod bound to the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_selects_the_node() {
    let env = start(false).await;
    let client = env.client.clone();
    let kubeconfig = env._server.kubeconfig_file().unwrap();
    let sched = scheduler::options::Options::parse_from([
        "kube-scheduler".to_string(),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--leader-elect=false".into(),
        "--secure-port=0".into(),
    ]);
    let s = env.stop.clone();
    tokio::spawn(async move {
        if let Err(e) = scheduler::run_until(sched, s).await {
            panic!("kube-scheduler failed: {e:#}");
        }
    });
    // node-1 can take pods.
    Api::<Node>::all(client.clone())
        .patch_status(
            "node-1",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"status": {
                "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            }})),
        )
        .await
        .unwrap();
    create_class(&client, "standard", "WaitForFirstConsumer", "Delete", true).await;
    let pvc = create_claim(&client, "web", "standard", None).await;
    let pv_name = format!("pvc-{}", pvc.uid().unwrap());
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "web"}}],
        },
    }))
    .unwrap();
    // The pod needs the default service account (no controller runs here).
    let _ = Api::<ServiceAccount>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta("default"),
                ..Default::default()
            },
        )
        .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod).await.unwrap();

    let base = env.dir.path().join("node-1");
    let create = complete_helper(&client, &format!("helper-pod-create-{pv_name}"), |_| {}).await;
    let path = base.join(format!("{pv_name}_default_web"));
    check_helper(
        &create,
        "node-1",
        &base,
        &["mkdir", "-m", "0777", "-p", path.to_str().unwrap()],
    );
    let claim = wait_bound(&client, "web").await;
    assert_eq!(
        claim.annotations()["volume.kubernetes.io/selected-node"],
        "node-1"
    );
    eventually("pod bound to node-1", 30, || {
        let pods = pods.clone();
        async move {
            let p = pods.get("web").await.ok()?;
            (p.spec?.node_name.as_deref() == Some("node-1")).then_some(())
        }
    })
    .await;
}
