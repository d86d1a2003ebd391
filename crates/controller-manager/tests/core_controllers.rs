//! The controller-manager in-process against an in-process apiserver on a
//! real etcd (apiserver::testing::TestServer): namespace deletion, cascading
//! deletion in the three modes, default service accounts and the root CA
//! ConfigMap, and leader election failover.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::testing::TestServer;
use clap::Parser;
use controller_manager::options::Options;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::Api;
use tokio_util::sync::CancellationToken;

struct Env {
    server: TestServer,
    client: kube::Client,
    stop: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(controllers: &str) -> Env {
    let server = TestServer::start().await.expect("test apiserver");
    let kubeconfig = server.kubeconfig_file().unwrap();
    let client = server.client().await.unwrap();
    let opts = Options::parse_from([
        "kube-controller-manager".to_string(),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--leader-elect=false".into(),
        "--secure-port=0".into(),
        format!("--controllers={controllers}"),
    ]);
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = controller_manager::run_until(opts, s).await {
            panic!("controller-manager failed: {e:#}");
        }
    });
    Env {
        server,
        client,
        stop,
    }
}

async fn eventually<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn cm(name: &str, owner: Option<(&ConfigMap, bool)>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: owner.map(|(o, block)| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: o.metadata.name.clone().unwrap(),
                    uid: o.metadata.uid.clone().unwrap(),
                    block_owner_deletion: Some(block),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".into(), "v".into())])),
        ..Default::default()
    }
}

async fn create_ns(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_service_account_and_root_ca_in_every_namespace() {
    let env = start("serviceaccount,root-ca-cert-publisher").await;
    create_ns(&env.client, "fresh").await;
    for ns in ["default", "kube-system", "fresh"] {
        let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), ns);
        eventually(&format!("default SA in {ns}"), 20, || {
            let sas = sas.clone();
            async move { matches!(sas.get_opt("default").await, Ok(Some(_))) }
        })
        .await;
        let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), ns);
        let ca = env.server.pki.ca_pem.clone();
        eventually(&format!("kube-root-ca.crt in {ns}"), 20, || {
            let (cms, ca) = (cms.clone(), ca.clone());
            async move {
                match cms.get_opt("kube-root-ca.crt").await {
                    Ok(Some(cm)) => cm
                        .data
                        .and_then(|d| d.get("ca.crt").cloned())
                        .map(|c| c.trim() == ca.trim())
                        .unwrap_or(false),
                    _ => false,
                }
            }
        })
        .await;
    }
    // Deleted → recreated; tampered → reset.
    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), "fresh");
    let old_uid = sas.get("default").await.unwrap().metadata.uid;
    sas.delete("default", &DeleteParams::default())
        .await
        .unwrap();
    eventually("default SA recreated", 20, || {
        let (sas, old_uid) = (sas.clone(), old_uid.clone());
        async move {
            matches!(sas.get_opt("default").await, Ok(Some(sa)) if sa.metadata.uid != old_uid)
        }
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "fresh");
    cms.patch(
        "kube-root-ca.crt",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"ca.crt": "garbage"}})),
    )
    .await
    .unwrap();
    let ca = env.server.pki.ca_pem.clone();
    eventually("kube-root-ca.crt reset", 20, || {
        let (cms, ca) = (cms.clone(), ca.clone());
        async move {
            matches!(cms.get_opt("kube-root-ca.crt").await,
                Ok(Some(cm)) if cm.data.as_ref().and_then(|d| d.get("ca.crt")).map(|c| c.trim() == ca.trim()).unwrap_or(false))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_removes_its_content_then_the_namespace() {
    let env = start("namespace,serviceaccount").await;
    create_ns(&env.client, "doomed").await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "doomed");
    cms.create(&PostParams::default(), &cm("a", None))
        .await
        .unwrap();
    let mut held = cm("held", None);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), "doomed");
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("s".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let nss: Api<Namespace> = Api::all(env.client.clone());
    nss.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    // The finalizer holds one ConfigMap: the conditions say so.
    eventually("NamespaceFinalizersRemaining", 20, || {
        let nss = nss.clone();
        async move {
            let Ok(ns) = nss.get("doomed").await else { return false };
            let conds = ns.status.and_then(|s| s.conditions).unwrap_or_default();
            conds.iter().any(|c| {
                c.type_ == "NamespaceFinalizersRemaining"
                    && c.status == "True"
                    && c.message.as_deref()
                        == Some("Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances")
            }) && conds.iter().any(|c| {
                c.type_ == "NamespaceContentRemaining"
                    && c.status == "True"
                    && c.reason.as_deref() == Some("SomeResourcesRemain")
            })
        }
    })
    .await;
    assert!(secrets.get_opt("s").await.unwrap().is_none());
    assert!(cms.get_opt("a").await.unwrap().is_none());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("namespace gone", 30, || {
        let nss = nss.clone();
        async move { matches!(nss.get_opt("doomed").await, Ok(None)) }
    })
    .await;
}

async fn gone(api: &Api<ConfigMap>, name: &str) -> bool {
    matches!(api.get_opt(name).await, Ok(None))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascading_deletion_background_foreground_orphan() {
    cascading("garbagecollector").await
}

/// Same, with the ConfigMap graph fed by the root-ca publisher's typed
/// ConfigMap informer (a metadata view, no second watch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascading_deletion_through_shared_typed_informers() {
    cascading("garbagecollector,root-ca-cert-publisher").await
}

async fn cascading(controllers: &str) {
    let env = start(controllers).await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let pp = PostParams::default();
    let family = |prefix: &'static str| {
        let api = api.clone();
        async move {
            let owner = api
                .create(&PostParams::default(), &cm(prefix, None))
                .await
                .unwrap();
            api.create(
                &PostParams::default(),
                &cm(&format!("{prefix}-blocking"), Some((&owner, true))),
            )
            .await
            .unwrap();
            api.create(
                &PostParams::default(),
                &cm(&format!("{prefix}-plain"), Some((&owner, false))),
            )
            .await
            .unwrap();
            owner
        }
    };

    // Background: owner goes at once, dependents follow.
    family("bg").await;
    api.delete("bg", &DeleteParams::background()).await.unwrap();
    eventually("background dependents deleted", 30, || {
        let api = api.clone();
        async move { gone(&api, "bg-blocking").await && gone(&api, "bg-plain").await }
    })
    .await;

    // Foreground: the owner waits for its blocking dependent.
    family("fg").await;
    let mut hold = api.get("fg-blocking").await.unwrap();
    hold.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.replace("fg-blocking", &pp, &hold).await.unwrap();
    api.delete("fg", &DeleteParams::foreground()).await.unwrap();
    eventually("foreground: plain dependent deleted", 30, || {
        let api = api.clone();
        async move { gone(&api, "fg-plain").await }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let owner = api
        .get("fg")
        .await
        .expect("owner waits for its blocking dependent");
    assert!(owner.metadata.deletion_timestamp.is_some());
    assert_eq!(
        owner.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    api.patch(
        "fg-blocking",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("foreground owner deleted", 30, || {
        let api = api.clone();
        async move { gone(&api, "fg").await && gone(&api, "fg-blocking").await }
    })
    .await;

    // Orphan: dependents stay, without the owner reference.
    family("or").await;
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    api.delete("or", &dp).await.unwrap();
    eventually("orphaned owner deleted", 30, || {
        let api = api.clone();
        async move { gone(&api, "or").await }
    })
    .await;
    for d in ["or-blocking", "or-plain"] {
        let dep = api.get(d).await.expect("orphaned dependent kept");
        assert!(
            dep.metadata.owner_references.unwrap_or_default().is_empty(),
            "{d}"
        );
    }

    // A dependent created with an owner that never existed is collected.
    let mut ghost = cm("ghost-child", None);
    ghost.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "ghost".into(),
        uid: "00000000-0000-0000-0000-000000000000".into(),
        ..Default::default()
    }]);
    api.create(&pp, &ghost).await.unwrap();
    eventually("dangling dependent deleted", 30, || {
        let api = api.clone();
        async move { gone(&api, "ghost-child").await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_only_one_leads_and_the_other_takes_over() {
    let server = TestServer::start().await.expect("test apiserver");
    let client = server.client().await.unwrap();
    let args = client_base::leader::LeaderElectionArgs {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(500),
        ..Default::default()
    };
    let a_leads = Arc::new(AtomicBool::new(false));
    let b_leads = Arc::new(AtomicBool::new(false));
    let spawn = |flag: Arc<AtomicBool>| {
        let (client, args) = (client.clone(), args.clone());
        tokio::spawn(async move {
            client_base::leader::run(
                client,
                &args,
                "test-component",
                CancellationToken::new(),
                move |t| async move {
                    flag.store(true, Ordering::SeqCst);
                    t.cancelled().await;
                    Ok(())
                },
            )
            .await
        })
    };
    let a = spawn(a_leads.clone());
    eventually("a leads", 10, || {
        let a = a_leads.clone();
        async move { a.load(Ordering::SeqCst) }
    })
    .await;
    let _b = spawn(b_leads.clone());
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !b_leads.load(Ordering::SeqCst),
        "b must not lead while a renews"
    );
    // "kill -9" a: no release.
    a.abort();
    let killed = Instant::now();
    eventually("b takes over", 10, || {
        let b = b_leads.clone();
        async move { b.load(Ordering::SeqCst) }
    })
    .await;
    assert!(killed.elapsed() < Duration::from_secs(3) + Duration::from_millis(1500));
    let lease: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let l = lease.get("test-component").await.unwrap();
    let spec = l.spec.unwrap();
    assert_eq!(spec.lease_transitions, Some(1));
    assert!(spec.holder_identity.unwrap().contains('_'));
}

/// Kills the child process when dropped (also when a test fails).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two kube-controller-manager processes: only the leader acts; after
/// `kill -9` of the leader the other takes over within the lease duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controller_managers_fail_over_after_kill() {
    let server = TestServer::start().await.expect("test apiserver");
    let client = server.client().await.unwrap();
    let kubeconfig = server.kubeconfig_file().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spawn = |name: &str| {
        let log = dir.path().join(format!("{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_kube-controller-manager"))
            .args([
                format!("--kubeconfig={}", kubeconfig.display()),
                "--secure-port=0".into(),
                "--controllers=serviceaccount".into(),
                "--leader-elect-lease-duration=4s".into(),
                "--leader-elect-renew-deadline=3s".into(),
                "--leader-elect-retry-period=500ms".into(),
            ])
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        (KillOnDrop(child), log)
    };
    let leads = |log: &std::path::Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("successfully acquired lease")
    };
    let (a, a_log) = spawn("a");
    eventually("a leads", 20, || {
        let l = a_log.clone();
        async move { leads(&l) }
    })
    .await;
    let (_b, b_log) = spawn("b");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!leads(&b_log), "b must wait while a renews");
    let ns = |name: &str| {
        let name = name.to_string();
        let client = client.clone();
        async move { create_ns(&client, &name).await }
    };
    ns("under-a").await;
    let sas = |n: &str| Api::<ServiceAccount>::namespaced(client.clone(), n);
    eventually("a acts", 20, || {
        let s = sas("under-a");
        async move { matches!(s.get_opt("default").await, Ok(Some(_))) }
    })
    .await;
    drop(a); // SIGKILL: no lease release
    let killed = Instant::now();
    eventually("b takes over", 20, || {
        let l = b_log.clone();
        async move { leads(&l) }
    })
    .await;
    assert!(
        killed.elapsed() < Duration::from_secs(4 + 3),
        "took {:?}",
        killed.elapsed()
    );
    ns("under-b").await;
    eventually("b acts", 20, || {
        let s = sas("under-b");
        async move { matches!(s.get_opt("default").await, Ok(Some(_))) }
    })
    .await;
}
