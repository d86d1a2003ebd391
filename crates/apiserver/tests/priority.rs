//! Integration tests: the Priority admission plugin and the built-in
//! PriorityClasses, against the apiserver in-process on a real etcd.

use apiserver::testing::TestServer;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{json, Value};

fn pod(name: &str, spec_extra: Value) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn class(name: &str, value: i64, extra: Value) -> PriorityClass {
    let mut pc = json!({"metadata": {"name": name}, "value": value});
    if let (Some(o), Some(extra)) = (pc.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            o.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(pc).unwrap()
}

/// The API error of a call that must fail: (code, reason, message).
fn api_err<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String, String) {
    match r {
        Err(kube::Error::Api(e)) => (e.code, e.reason, e.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn priority_admission_and_builtin_priority_classes() {
    let srv = TestServer::start().await.unwrap();
    let client = srv.client().await.unwrap();
    let pcs: Api<PriorityClass> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let system_pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let pp = PostParams::default();

    // The bootstrap created the two built-in classes.
    let node_critical = pcs.get("system-node-critical").await.unwrap();
    assert_eq!(node_critical.value, 2_000_001_000);
    assert!(!node_critical.global_default.unwrap_or(false));
    assert_eq!(
        node_critical.preemption_policy.as_deref(),
        Some("PreemptLowerPriority")
    );
    assert!(!node_critical.description.unwrap_or_default().is_empty());
    let cluster_critical = pcs.get("system-cluster-critical").await.unwrap();
    assert_eq!(cluster_critical.value, 2_000_000_000);
    assert!(!cluster_critical.description.unwrap_or_default().is_empty());

    // No class and no global default: priority 0, PreemptLowerPriority, no class name.
    let p = pods.create(&pp, &pod("plain", json!({}))).await.unwrap();
    let spec = p.spec.unwrap();
    assert_eq!(spec.priority, Some(0));
    assert_eq!(
        spec.preemption_policy.as_deref(),
        Some("PreemptLowerPriority")
    );
    assert_eq!(spec.priority_class_name, None);

    // A priority that is not the computed one is refused, even without a class.
    let (code, reason, msg) = api_err(
        pods.create(&pp, &pod("self-prio", json!({"priority": 7})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        msg,
        "pods \"self-prio\" is forbidden: the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 0 from the given PriorityClass name"
    );
    // The computed value itself may be given.
    pods.create(&pp, &pod("zero-prio", json!({"priority": 0})))
        .await
        .unwrap();

    // A user class: the pod gets its value and preemption policy.
    pcs.create(
        &pp,
        &class(
            "high",
            1000,
            json!({"preemptionPolicy": "Never", "description": "high"}),
        ),
    )
    .await
    .unwrap();
    let p = pods
        .create(&pp, &pod("high-pod", json!({"priorityClassName": "high"})))
        .await
        .unwrap();
    let spec = p.spec.unwrap();
    assert_eq!(spec.priority, Some(1000));
    assert_eq!(spec.preemption_policy.as_deref(), Some("Never"));
    assert_eq!(spec.priority_class_name.as_deref(), Some("high"));
    pods.create(
        &pp,
        &pod(
            "high-same",
            json!({"priorityClassName": "high", "priority": 1000, "preemptionPolicy": "Never"}),
        ),
    )
    .await
    .unwrap();

    // Mismatching priority or preemption policy for the class.
    let (code, _, msg) = api_err(
        pods.create(
            &pp,
            &pod(
                "high-5",
                json!({"priorityClassName": "high", "priority": 5}),
            ),
        )
        .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        msg,
        "pods \"high-5\" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"
    );
    let (code, _, msg) = api_err(
        pods.create(
            &pp,
            &pod(
                "high-preempt",
                json!({"priorityClassName": "high", "preemptionPolicy": "PreemptLowerPriority"}),
            ),
        )
        .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        msg,
        "pods \"high-preempt\" is forbidden: the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; priority admission controller computed Never from the given PriorityClass name"
    );

    // An unknown class.
    let (code, reason, msg) = api_err(
        pods.create(&pp, &pod("x", json!({"priorityClassName": "foo"})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        msg,
        "pods \"x\" is forbidden: no PriorityClass with name foo was found"
    );

    // NamespaceLifecycle runs first, as upstream: a missing namespace is
    // reported before the unknown class.
    let nowhere: Api<Pod> = Api::namespaced(client.clone(), "nowhere");
    let (code, reason, _) = api_err(
        nowhere
            .create(&pp, &pod("x", json!({"priorityClassName": "foo"})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (404, "NotFound"));

    // The system classes resolve in kube-system and, as upstream since
    // v1.17, in any other namespace too (ResourceQuota is what limits them).
    let p = system_pods
        .create(
            &pp,
            &pod(
                "node-agent",
                json!({"priorityClassName": "system-node-critical"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.spec.unwrap().priority, Some(2_000_001_000));
    let p = pods
        .create(
            &pp,
            &pod(
                "cluster-addon",
                json!({"priorityClassName": "system-cluster-critical"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.spec.unwrap().priority, Some(2_000_000_000));

    // An update that leaves priority and preemptionPolicy out keeps them.
    let mut cur = pods.get("high-pod").await.unwrap();
    if let Some(spec) = cur.spec.as_mut() {
        spec.priority = None;
        spec.preemption_policy = None;
    }
    cur.metadata.labels = Some([("k".to_string(), "v".to_string())].into());
    let updated = pods.replace("high-pod", &pp, &cur).await.unwrap();
    assert_eq!(updated.metadata.labels.unwrap()["k"], "v");
    let spec = updated.spec.unwrap();
    assert_eq!(spec.priority, Some(1000));
    assert_eq!(spec.preemption_policy.as_deref(), Some("Never"));

    // PriorityClass rules: user values are capped, `system-` names reserved.
    let (code, reason, msg) = api_err(
        pcs.create(&pp, &class("huge", 1_000_000_001, json!({})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(
        msg.contains(
            "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"
        ),
        "{msg}"
    );
    pcs.create(&pp, &class("top", 1_000_000_000, json!({})))
        .await
        .unwrap();
    let (code, _, msg) = api_err(pcs.create(&pp, &class("system-mine", 5, json!({}))).await);
    assert_eq!(code, 422);
    assert!(
        msg.contains("metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"),
        "{msg}"
    );

    // Only one global default.
    pcs.create(&pp, &class("dflt", 50, json!({"globalDefault": true})))
        .await
        .unwrap();
    let (code, reason, msg) = api_err(
        pcs.create(&pp, &class("dflt2", 60, json!({"globalDefault": true})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        msg,
        "priorityclasses.scheduling.k8s.io \"dflt2\" is forbidden: PriorityClass dflt is already marked as default. Only one default can exist"
    );
    // The default itself may be updated; another class may not become default.
    let mut d = pcs.get("dflt").await.unwrap();
    d.description = Some("the default".into());
    pcs.replace("dflt", &pp, &d).await.unwrap();
    let mut h = pcs.get("high").await.unwrap();
    h.global_default = Some(true);
    let (code, _, msg) = api_err(pcs.replace("high", &pp, &h).await);
    assert_eq!(code, 403);
    assert!(
        msg.ends_with(
            "PriorityClass dflt is already marked as default. Only one default can exist"
        ),
        "{msg}"
    );

    // Pods without a class now get the default class. (A consistent list
    // first: the plugin reads the default from the watch cache, like
    // upstream's informer.)
    pcs.list(&ListParams::default()).await.unwrap();
    let p = pods
        .create(&pp, &pod("defaulted", json!({})))
        .await
        .unwrap();
    let spec = p.spec.unwrap();
    assert_eq!(spec.priority_class_name.as_deref(), Some("dflt"));
    assert_eq!(spec.priority, Some(50));
    assert_eq!(
        spec.preemption_policy.as_deref(),
        Some("PreemptLowerPriority")
    );
    let (code, _, msg) = api_err(
        pods.create(&pp, &pod("defaulted-7", json!({"priority": 7})))
            .await,
    );
    assert_eq!(code, 403);
    assert!(
        msg.ends_with(
            "priority admission controller computed 50 from the given PriorityClass name"
        ),
        "{msg}"
    );

    srv.stop().await.unwrap();
}
