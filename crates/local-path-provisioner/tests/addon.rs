//! hack/addons/local-path.yaml is accepted by the apiserver with strict
//! field validation, and its configuration and flags are ones the
//! provisioner accepts.

use apiserver::testing::TestServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::{Api, ResourceExt};
use local_path_provisioner::config::{Config, DEFAULT_NODE_KEY};
use local_path_provisioner::options::Options;

const MANIFEST: &str = include_str!("../../../hack/addons/local-path.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addon_manifest_is_valid() {
    let server = TestServer::start().await.expect("test apiserver");
    let client = server.client().await.unwrap();
    let kinds = client_base::manifests::create_all(&client, MANIFEST)
        .await
        .expect("creating the manifest with strict validation");
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "ConfigMap",
            "Deployment",
            "StorageClass"
        ]
    );

    let sc: StorageClass = Api::all(client.clone()).get("standard").await.unwrap();
    assert_eq!(sc.provisioner, "rancher.io/local-path");
    assert_eq!(
        sc.volume_binding_mode.as_deref(),
        Some("WaitForFirstConsumer")
    );
    assert_eq!(sc.reclaim_policy.as_deref(), Some("Delete"));
    assert_eq!(
        sc.annotations()["storageclass.kubernetes.io/is-default-class"],
        "true"
    );

    let cm: ConfigMap = Api::namespaced(client.clone(), "local-path-storage")
        .get("local-path-config")
        .await
        .unwrap();
    let config = Config::parse(&cm.data.unwrap()["config.json"]).unwrap();
    assert_eq!(
        config.node_paths[DEFAULT_NODE_KEY],
        ["/var/local-path-provisioner"]
    );

    let dep: Deployment = Api::namespaced(client.clone(), "local-path-storage")
        .get("local-path-provisioner")
        .await
        .unwrap();
    let spec = dep.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.unwrap();
    assert!(pod
        .tolerations
        .unwrap()
        .iter()
        .any(|t| t.key.as_deref() == Some("node-role.kubernetes.io/control-plane")));
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("registry.k8s.io/ferrokube/local-path-provisioner:latest")
    );
    let mut argv = vec!["local-path-provisioner".to_string()];
    argv.extend(c.args.clone().unwrap());
    let opts = Options::parse_args(argv);
    assert_eq!(opts.provisioner_name, sc.provisioner);
    assert_eq!(
        opts.config.as_deref(),
        Some(std::path::Path::new("/etc/config/config.json"))
    );
    drop(server);
}
