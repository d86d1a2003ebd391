//! hack/addons/dns.yaml is accepted by the apiserver with strict field
//! validation, and describes what cluster-dns needs.

use apiserver::testing::TestServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Api;

const MANIFEST: &str = include_str!("../../../hack/addons/dns.yaml");

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
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Service"
        ]
    );

    let svc: Service = Api::namespaced(client.clone(), "kube-system")
        .get("kube-dns")
        .await
        .unwrap();
    let spec = svc.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
    let ports: Vec<(String, i32, String)> = spec
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port, p.protocol.unwrap()))
        .collect();
    assert_eq!(
        ports,
        [
            ("dns".to_string(), 53, "UDP".to_string()),
            ("dns-tcp".to_string(), 53, "TCP".to_string()),
            ("metrics".to_string(), 9153, "TCP".to_string()),
        ]
    );
    let dep: Deployment = Api::namespaced(client.clone(), "kube-system")
        .get("cluster-dns")
        .await
        .unwrap();
    let pod = dep.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    assert_eq!(pod.service_account_name.as_deref(), Some("cluster-dns"));
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("registry.k8s.io/ferrokube/cluster-dns:latest")
    );
    assert!(c
        .args
        .as_ref()
        .unwrap()
        .contains(&"--cluster-domain=cluster.local".to_string()));
    // The flags in the manifest are ones the binary accepts.
    use clap::Parser;
    let mut argv = vec!["cluster-dns".to_string()];
    argv.extend(c.args.clone().unwrap());
    cluster_dns::options::Options::try_parse_from(argv).expect("manifest args parse");
    drop(server);
}
