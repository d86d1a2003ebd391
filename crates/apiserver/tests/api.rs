//! Integration tests: the apiserver in-process on a real etcd, driven by kube-rs.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use apiserver::testing::TestServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use serde_json::json;

fn cm(name: &str, v: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": v}})).unwrap()
}

#[tokio::test]
async fn configmap_crud_uses_upstream_errors_and_resource_versions() {
    let srv = TestServer::start().await.unwrap();
    let client = srv.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &cm("a", "1"))
        .await
        .unwrap();
    let rv1 = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());

    let err = api
        .create(&PostParams::default(), &cm("a", "1"))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(e) => {
            assert_eq!(e.code, 409);
            assert_eq!(e.reason, "AlreadyExists");
            assert_eq!(e.message, "configmaps \"a\" already exists");
        }
        other => panic!("unexpected {other:?}"),
    }

    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.data = Some(BTreeMap::from([("k".to_string(), "2".to_string())]));
    let updated = api
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(updated.metadata.resource_version.unwrap(), rv1);

    stale.data = Some(BTreeMap::from([("k".to_string(), "3".to_string())]));
    match api
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err()
    {
        kube::Error::Api(e) => {
            assert_eq!(e.code, 409);
            assert_eq!(e.reason, "Conflict");
            assert!(
                e.message.contains("the object has been modified"),
                "{}",
                e.message
            );
        }
        other => panic!("unexpected {other:?}"),
    }

    // merge patch, then get sees it
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "y"}})),
    )
    .await
    .unwrap();
    let got = api.get("a").await.unwrap();
    assert_eq!(got.data.unwrap().get("x").map(String::as_str), Some("y"));

    api.delete("a", &DeleteParams::default()).await.unwrap();
    match api.get("a").await.unwrap_err() {
        kube::Error::Api(e) => {
            assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
            assert_eq!(e.message, "configmaps \"a\" not found");
        }
        other => panic!("unexpected {other:?}"),
    }
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn bootstrap_creates_system_namespaces_and_the_kubernetes_service() {
    let srv = TestServer::start().await.unwrap();
    let client = srv.client().await.unwrap();
    let ns: Api<Namespace> = Api::all(client.clone());
    let names: HashSet<String> = ns
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    for want in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(names.contains(want), "{want} missing from {names:?}");
    }
    let svc: Api<Service> = Api::namespaced(client.clone(), "default");
    let k = svc.get("kubernetes").await.unwrap();
    assert_eq!(k.spec.unwrap().cluster_ip.as_deref(), Some("10.96.0.1"));
    // System namespaces cannot be deleted.
    match ns
        .delete("kube-system", &DeleteParams::default())
        .await
        .unwrap_err()
    {
        kube::Error::Api(e) => assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden")),
        other => panic!("unexpected {other:?}"),
    }
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn create_in_missing_namespace_is_not_found() {
    let srv = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await.unwrap(), "nope");
    match api
        .create(&PostParams::default(), &cm("a", "1"))
        .await
        .unwrap_err()
    {
        kube::Error::Api(e) => {
            assert_eq!(e.code, 404);
            assert_eq!(e.message, "namespaces \"nope\" not found");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Nothing was written.
    let all: Api<ConfigMap> = Api::all(srv.client().await.unwrap());
    assert!(all
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .all(|c| c.metadata.namespace.as_deref() != Some("nope")));
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn services_get_distinct_cluster_ips_that_survive_restart() {
    let mut srv = TestServer::start().await.unwrap();
    let svc: Api<Service> = Api::namespaced(srv.client().await.unwrap(), "default");
    let mk = |n: &str| -> Service {
        serde_json::from_value(json!({"metadata": {"name": n}, "spec": {"ports": [{"port": 80}], "selector": {"app": n}}})).unwrap()
    };
    let mut ips = HashSet::new();
    for i in 0..5 {
        let s = svc
            .create(&PostParams::default(), &mk(&format!("s{i}")))
            .await
            .unwrap();
        assert!(ips.insert(s.spec.unwrap().cluster_ip.unwrap()));
    }
    srv.restart().await.unwrap();
    let svc: Api<Service> = Api::namespaced(srv.client().await.unwrap(), "default");
    for i in 5..10 {
        let s = svc
            .create(&PostParams::default(), &mk(&format!("s{i}")))
            .await
            .unwrap();
        assert!(
            ips.insert(s.spec.unwrap().cluster_ip.unwrap()),
            "an IP was allocated twice"
        );
    }
    // Asking for a taken IP is Invalid, and writes nothing.
    let taken = ips.iter().next().unwrap().clone();
    let dup: Service = serde_json::from_value(
        json!({"metadata": {"name": "dup"}, "spec": {"clusterIP": taken, "ports": [{"port": 80}]}}),
    )
    .unwrap();
    match svc.create(&PostParams::default(), &dup).await.unwrap_err() {
        kube::Error::Api(e) => {
            assert_eq!(e.code, 422);
            assert!(
                e.message.contains("provided IP is already allocated"),
                "{}",
                e.message
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(svc.get_opt("dup").await.unwrap().is_none());
    // Deleting releases the IP for reuse.
    let s0 = svc
        .get("s0")
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    svc.delete("s0", &DeleteParams::default()).await.unwrap();
    let again: Service = serde_json::from_value(
        json!({"metadata": {"name": "again"}, "spec": {"clusterIP": s0, "ports": [{"port": 80}]}}),
    )
    .unwrap();
    svc.create(&PostParams::default(), &again).await.unwrap();
    srv.stop().await.unwrap();
}

/// The kube-rs reflector keeps an exact copy of ConfigMaps through an
/// apiserver restart and a 410 Expired (objects written to etcd while the
/// apiserver is down are older than the new watch cache's window).
#[tokio::test]
async fn reflector_keeps_exact_copy_through_restart_and_410() {
    let mut srv = TestServer::start().await.unwrap();
    let client = srv.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..20 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), "0"))
            .await
            .unwrap();
    }
    let (reader, writer) = reflector::store::<ConfigMap>();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let seen2 = seen.clone();
    let relists = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let relists2 = relists.clone();
    let cfg = watcher::Config::default();
    let stream = reflector::reflector(writer, watcher(api.clone(), cfg)).default_backoff();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            if let Ok(watcher::Event::Init) = &ev {
                relists2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            if let Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::Delete(o)) = &ev {
                seen2.lock().unwrap().push((
                    o.metadata.name.clone().unwrap_or_default(),
                    o.metadata.resource_version.clone().unwrap_or_default(),
                ));
            }
        }
    });
    reader.wait_until_ready().await.unwrap();

    async fn converge(api: &Api<ConfigMap>, reader: &reflector::Store<ConfigMap>) {
        for _ in 0..200 {
            let server: BTreeMap<String, String> = api
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|c| {
                    (
                        c.metadata.name.unwrap(),
                        c.metadata.resource_version.unwrap(),
                    )
                })
                .collect();
            let local: BTreeMap<String, String> = reader
                .state()
                .iter()
                .map(|c| {
                    (
                        c.metadata.name.clone().unwrap(),
                        c.metadata.resource_version.clone().unwrap(),
                    )
                })
                .collect();
            if server == local {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("reflector did not converge to the server's state");
    }

    for i in 0..5 {
        api.patch(
            &format!("c{i}"),
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "1"}})),
        )
        .await
        .unwrap();
    }
    api.delete("c19", &DeleteParams::default()).await.unwrap();
    converge(&api, &reader).await;

    // Restart: the watch resumes from its resourceVersion.
    srv.restart().await.unwrap();
    api.create(&PostParams::default(), &cm("after-restart", "x"))
        .await
        .unwrap();
    converge(&api, &reader).await;

    let relists_before = relists.load(std::sync::atomic::Ordering::SeqCst);
    // Write behind the apiserver's back while it is down, so the reflector's
    // resourceVersion predates the new watch cache: it gets 410 and relists.
    if let Some(r) = srv.running.take() {
        r.shutdown().await.unwrap();
    }
    let st = storage::EtcdStorage::connect(&srv.etcd[0].config())
        .await
        .unwrap();
    let raw = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "behind", "namespace": "default", "uid": "u-behind", "creationTimestamp": "2024-01-01T00:00:00Z"}, "data": {"k": "raw"}});
    st.create(
        "/registry/configmaps/default/behind",
        serde_json::to_vec(&raw).unwrap(),
        &[],
    )
    .await
    .unwrap();
    let old = st
        .get("/registry/configmaps/default/c1")
        .await
        .unwrap()
        .unwrap();
    st.delete(
        "/registry/configmaps/default/c1",
        Some(old.mod_revision),
        &[],
    )
    .await
    .unwrap();
    let rev = st.current_revision().await.unwrap();
    st.compact(rev).await.unwrap();
    srv.restart().await.unwrap();
    converge(&api, &reader).await;
    let local: HashSet<String> = reader
        .state()
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert!(local.contains("behind") && !local.contains("c1"));
    // The watch could not resume (410 Expired): the reflector relisted.
    assert!(
        relists.load(std::sync::atomic::Ordering::SeqCst) > relists_before,
        "no relist after the compaction"
    );

    // No (name, resourceVersion) was delivered twice as a watch event.
    let seen = seen.lock().unwrap().clone();
    let mut uniq = HashSet::new();
    for s in &seen {
        assert!(uniq.insert(s.clone()), "duplicate event {s:?}");
    }
    task.abort();
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn three_member_etcd_keeps_serving_when_one_member_dies() {
    let mut srv = TestServer::start_with(3, vec![]).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await.unwrap(), "default");
    api.create(&PostParams::default(), &cm("before", "1"))
        .await
        .unwrap();
    srv.etcd[0].kill();
    let mut ok = false;
    for _ in 0..50 {
        if api
            .create(&PostParams::default(), &cm("after", "1"))
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ok, "writes failed with one of three members down");
    assert_eq!(api.get("before").await.unwrap().data.unwrap()["k"], "1");
    srv.stop().await.unwrap();
}
