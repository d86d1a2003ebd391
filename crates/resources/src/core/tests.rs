//! Unit tests for the core/v1 strategies.

use serde_json::{json, Value};

use super::quantity::Qty;
use super::*;
use crate::Strategy;

fn strategy(plural: &str) -> Arc<dyn Strategy> {
    all()
        .into_iter()
        .find(|s| s.info().plural == plural)
        .expect("registered")
}

/// Runs the create pipeline's hooks in the store's order.
fn create(plural: &str, mut obj: Value) -> (Value, Vec<String>) {
    let s = strategy(plural);
    s.prepare_for_create(&mut obj);
    s.default(&mut obj);
    let errs = s.validate(&obj).iter().map(ToString::to_string).collect();
    (obj, errs)
}

fn update(plural: &str, mut new: Value, old: &Value) -> (Value, Vec<String>) {
    let s = strategy(plural);
    s.prepare_for_update(&mut new, old);
    s.default(&mut new);
    let errs = s
        .validate_update(&new, old)
        .iter()
        .map(ToString::to_string)
        .collect();
    (new, errs)
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"}, "spec": {"containers": containers}})
}

fn minimal_pod() -> Value {
    pod(json!([{"name": "nginx", "image": "nginx"}]))
}

#[test]
fn defaults_applied_to_a_minimal_pod_match_what_upstream_returns() {
    let (p, errs) = create("pods", minimal_pod());
    assert!(errs.is_empty(), "{errs:?}");
    let c = &p["spec"]["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["resources"], json!({}));
    let spec = &p["spec"];
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["securityContext"], json!({}));
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["priority"], 0);
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["serviceAccount"], "default");
    assert_eq!(
        spec["tolerations"],
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ])
    );
    assert_eq!(
        p["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
    // Defaulting is idempotent.
    let mut again = p.clone();
    strategy("pods").default(&mut again);
    assert_eq!(again, p);
}

#[test]
fn existing_tolerations_for_the_default_taints_are_kept() {
    let mut p = minimal_pod();
    p["spec"]["tolerations"] = json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]);
    let (p, _) = create("pods", p);
    let tol = p["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(tol.len(), 2);
    assert_eq!(tol[0]["tolerationSeconds"], 10);
    assert_eq!(tol[1]["key"], "node.kubernetes.io/unreachable");
}

#[test]
fn image_pull_policy_depends_on_the_tag() {
    for (image, latest) in [
        ("nginx", true),
        ("nginx:latest", true),
        ("nginx:1.25", false),
        ("registry.example.com:5000/team/app", true),
        ("registry.example.com:5000/team/app:v2", false),
        ("busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", false),
        ("busybox:latest@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true),
        ("", false),
        ("Nginx", false),
    ] {
        assert_eq!(pod::image_latest_for_tests(image), latest, "{image}");
    }
}

#[test]
fn probes_ports_volumes_and_env_get_their_defaults() {
    let mut p = pod(json!([{
        "name": "app", "image": "app:1",
        "ports": [{"containerPort": 8080}],
        "livenessProbe": {"httpGet": {"port": 8080}},
        "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 5},
        "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "resources": {"limits": {"cpu": "1000m", "memory": 134217728}},
        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "scratch", "mountPath": "/tmp"}]
    }]));
    p["spec"]["volumes"] =
        json!([{"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "scratch"}]);
    let (p, errs) = create("pods", p);
    assert!(errs.is_empty(), "{errs:?}");
    let c = &p["spec"]["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
    assert_eq!(c["readinessProbe"]["grpc"]["service"], "");
    assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    assert_eq!(
        c["resources"]["limits"],
        json!({"cpu": "1", "memory": "134217728"})
    );
    assert_eq!(
        c["resources"]["requests"],
        json!({"cpu": "1", "memory": "134217728"})
    );
    assert_eq!(p["spec"]["volumes"][0]["configMap"]["defaultMode"], 420);
    assert_eq!(p["spec"]["volumes"][1]["emptyDir"], json!({}));
    assert_eq!(p["status"]["qosClass"], "Guaranteed");
}

#[test]
fn qos_class_follows_requests_and_limits() {
    let spec = |res: Value| json!({"containers": [{"name": "a", "image": "a", "resources": res}]});
    assert_eq!(compute_qos(&spec(json!({}))), "BestEffort");
    assert_eq!(
        compute_qos(&spec(json!({"requests": {"cpu": "100m"}}))),
        "Burstable"
    );
    assert_eq!(
        compute_qos(&spec(
            json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
        )),
        "Guaranteed"
    );
    assert_eq!(
        compute_qos(&spec(
            json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
        )),
        "Burstable"
    );
    assert_eq!(
        compute_qos(&spec(
            json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1"}})
        )),
        "Burstable"
    );
}

#[test]
fn a_pod_without_containers_is_rejected() {
    let (_, errs) = create("pods", pod(json!([])));
    assert_eq!(errs, vec!["spec.containers: Required value"]);
}

#[test]
fn pod_validation_reports_upstream_messages() {
    let mut p = pod(json!([
        {"name": "Web", "image": "nginx", "ports": [{"containerPort": 70000}]},
        {"name": "side", "volumeMounts": [{"name": "missing", "mountPath": "/data"}],
         "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
        {"name": "side", "image": "busybox"}
    ]));
    p["spec"]["restartPolicy"] = json!("Sometimes");
    let (_, errs) = create("pods", p);
    let has = |needle: &str| errs.iter().any(|e| e.starts_with(needle));
    assert!(has("spec.containers[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"), "{errs:#?}");
    assert!(has("spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"), "{errs:#?}");
    assert!(has("spec.containers[1].image: Required value"), "{errs:#?}");
    assert!(
        has("spec.containers[1].volumeMounts[0].name: Not found: \"missing\""),
        "{errs:#?}"
    );
    assert!(has("spec.containers[1].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"), "{errs:#?}");
    assert!(
        has("spec.containers[2].name: Duplicate value: \"side\""),
        "{errs:#?}"
    );
    assert!(has("spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""), "{errs:#?}");
}

#[test]
fn init_container_names_must_not_clash_with_containers() {
    let mut p = minimal_pod();
    p["spec"]["initContainers"] = json!([{"name": "nginx", "image": "busybox"}]);
    let (_, errs) = create("pods", p);
    assert_eq!(
        errs,
        vec!["spec.initContainers[0].name: Duplicate value: \"nginx\""]
    );
}

#[test]
fn volumes_need_unique_names_and_a_single_source() {
    let mut p = minimal_pod();
    p["spec"]["volumes"] = json!([
        {"name": "a", "emptyDir": {}},
        {"name": "a", "emptyDir": {}},
        {"name": "b", "emptyDir": {}, "hostPath": {"path": "/x"}}
    ]);
    let (_, errs) = create("pods", p);
    assert!(
        errs.contains(&"spec.volumes[1].name: Duplicate value: \"a\"".to_string()),
        "{errs:#?}"
    );
    assert!(
        errs.contains(
            &"spec.volumes[2].hostPath: Forbidden: may not specify more than 1 volume type"
                .to_string()
        ),
        "{errs:#?}"
    );
}

#[test]
fn pod_updates_may_only_change_images_and_a_few_fields() {
    let (old, _) = create("pods", minimal_pod());
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    new["spec"]["activeDeadlineSeconds"] = json!(60);
    if let Some(t) = new["spec"]["tolerations"].as_array_mut() {
        t.push(json!({"key": "dedicated", "operator": "Exists"}));
    }
    let (_, errs) = update("pods", new, &old);
    assert!(errs.is_empty(), "{errs:?}");

    let mut new = old.clone();
    new["spec"]["nodeName"] = json!("node-1");
    let (_, errs) = update("pods", new, &old);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
    ));
    assert!(errs[0].contains("nodeName"));

    let mut new = old.clone();
    new["spec"]["tolerations"] = json!([]);
    let (_, errs) = update("pods", new, &old);
    assert_eq!(errs, vec!["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]);

    let mut new = old.clone();
    if let Some(c) = new["spec"]["containers"].as_array_mut() {
        c.push(json!({"name": "two", "image": "busybox"}));
    }
    let (_, errs) = update("pods", new, &old);
    assert_eq!(
        errs,
        vec!["spec.containers: Forbidden: pod updates may not add or remove containers"]
    );
}

#[test]
fn pods_select_on_upstream_fields() {
    let (p, _) = create("pods", minimal_pod());
    let s = strategy("pods");
    let fields = s.selectable_fields(&p);
    let get = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    assert_eq!(get("status.phase").as_deref(), Some("Pending"));
    assert_eq!(get("spec.hostNetwork").as_deref(), Some("false"));
    assert_eq!(get("spec.nodeName").as_deref(), Some(""));
    for (name, _) in &fields {
        assert!(s.selectable_field_names().contains(name));
    }
}

fn status_cell(p: &Value) -> (String, String, String) {
    pod::pod_ready_status_restarts(p)
}

#[test]
fn pod_status_column_follows_upstream_print_pod() {
    let (p, _) = create("pods", minimal_pod());
    assert_eq!(
        status_cell(&p),
        ("0/1".into(), "Pending".into(), "0".into())
    );

    let mut running = p.clone();
    running["status"] = json!({"phase": "Running", "containerStatuses": [{"name": "nginx", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}]});
    assert_eq!(
        status_cell(&running),
        ("1/1".into(), "Running".into(), "0".into())
    );

    let finished = (chrono::Utc::now() - chrono::TimeDelta::minutes(5)).to_rfc3339();
    let mut crash = p.clone();
    crash["status"] = json!({"phase": "Running", "containerStatuses": [{
        "name": "nginx", "ready": false, "restartCount": 5,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": finished}}
    }]});
    assert_eq!(
        status_cell(&crash),
        ("0/1".into(), "CrashLoopBackOff".into(), "5 (5m ago)".into())
    );

    let mut init = p.clone();
    init["spec"]["initContainers"] = json!([{"name": "setup", "image": "busybox"}]);
    init["status"] = json!({"phase": "Pending", "initContainerStatuses": [{"name": "setup", "ready": false, "restartCount": 0, "state": {"running": {}}}]});
    assert_eq!(status_cell(&init).1, "Init:0/1");

    let mut init_failed = init.clone();
    init_failed["status"]["initContainerStatuses"][0]["state"] =
        json!({"terminated": {"exitCode": 2}});
    assert_eq!(status_cell(&init_failed).1, "Init:ExitCode:2");

    let mut done = p.clone();
    done["status"] = json!({"phase": "Succeeded", "containerStatuses": [{"name": "nginx", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]});
    assert_eq!(status_cell(&done).1, "Completed");

    let mut deleting = running.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    assert_eq!(status_cell(&deleting).1, "Terminating");

    let mut gated = p.clone();
    gated["status"]["conditions"] =
        json!([{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]);
    assert_eq!(status_cell(&gated).1, "SchedulingGated");
}

#[test]
fn pod_table_has_upstream_columns_and_wide_cells() {
    let s = strategy("pods");
    let names: Vec<&str> = s.table_columns().iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    let (p, _) = create("pods", minimal_pod());
    let row = s.table_row(&p);
    assert_eq!(row.len(), names.len());
    assert_eq!(row[4], "<none>");
    assert_eq!(row[7], "<none>");
    assert_eq!(s.default_grace_period(&p), Some(0));
    let mut scheduled = p.clone();
    scheduled["spec"]["nodeName"] = json!("node-1");
    assert_eq!(s.default_grace_period(&scheduled), Some(30));
}

fn service(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

#[test]
fn services_get_upstream_defaults() {
    let (svc, errs) = create(
        "services",
        service(
            json!({"selector": {"app": "web"}, "ports": [{"port": 80}], "clusterIP": "10.96.0.10"}),
        ),
    );
    assert!(errs.is_empty(), "{errs:?}");
    let spec = &svc["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(
        spec["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert_eq!(spec["clusterIPs"], json!(["10.96.0.10"]));
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert!(spec.get("externalTrafficPolicy").is_none());
    assert_eq!(svc["status"], json!({"loadBalancer": {}}));

    let (np, _) = create(
        "services",
        service(
            json!({"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}], "clusterIP": "10.96.0.11"}),
        ),
    );
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(np["spec"]["ports"][0]["targetPort"], "http");

    let (ext, errs) = create(
        "services",
        service(json!({"type": "ExternalName", "externalName": "example.com"})),
    );
    assert!(errs.is_empty(), "{errs:?}");
    assert!(ext["spec"].get("ipFamilies").is_none());
}

#[test]
fn service_validation_reports_upstream_messages() {
    let (_, errs) = create("services", service(json!({"clusterIP": "10.96.0.10"})));
    assert_eq!(errs, vec!["spec.ports: Required value"]);

    let (_, errs) = create("services", service(json!({"clusterIP": "None"})));
    assert!(errs.is_empty(), "headless services need no ports: {errs:?}");

    let (_, errs) = create(
        "services",
        service(json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}, {"port": 443}]})),
    );
    assert_eq!(
        errs,
        vec![
            "spec.ports[0].name: Required value",
            "spec.ports[1].name: Required value"
        ]
    );

    let (_, errs) = create(
        "services",
        service(json!({"type": "Magic", "clusterIP": "10.96.0.10", "ports": [{"port": 0}]})),
    );
    assert!(
        errs.contains(
            &"spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"
                .to_string()
        ),
        "{errs:?}"
    );
    assert!(errs.contains(&"spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"".to_string()), "{errs:?}");
}

#[test]
fn a_service_keeps_its_cluster_ip_on_update() {
    let (old, _) = create(
        "services",
        service(json!({"ports": [{"port": 80}], "clusterIP": "10.96.0.10"})),
    );
    // kubectl apply sends the spec without the allocated values.
    let (new, errs) = update(
        "services",
        service(json!({"ports": [{"port": 8080}]})),
        &old,
    );
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(new["spec"]["clusterIP"], "10.96.0.10");
    assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.10"]));

    let (_, errs) = update(
        "services",
        service(json!({"ports": [{"port": 80}], "clusterIP": "10.96.0.99"})),
        &old,
    );
    assert_eq!(
        errs,
        vec!["spec.clusterIPs[0]: Invalid value: [\"10.96.0.99\"]: may not change once set"]
    );
}

#[test]
fn service_port_and_external_ip_cells_match_kubectl() {
    let svc = service(
        json!({"type": "NodePort", "clusterIPs": ["10.0.0.1"], "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}),
    );
    assert_eq!(service::service_ports_cell(&svc), "80:30080/TCP,53/UDP");
    assert_eq!(service::service_external_ip_cell(&svc), "<none>");
    let lb = service(json!({"type": "LoadBalancer", "ports": [{"port": 443, "protocol": "TCP"}]}));
    assert_eq!(service::service_external_ip_cell(&lb), "<pending>");
    let mut lb2 = lb.clone();
    lb2["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"}]}});
    assert_eq!(
        service::service_external_ip_cell(&lb2),
        "203.0.113.7,lb.example.com"
    );
    assert_eq!(service::service_ports_cell(&service(json!({}))), "<none>");

    let s = strategy("services");
    let row = s.table_row(&svc);
    assert_eq!(row[0], "NodePort");
    assert_eq!(row[1], "10.0.0.1");
    assert_eq!(row[5], "<none>");
}

#[test]
fn endpoints_cell_lists_three_and_counts_the_rest() {
    let ep = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}, {"ip": "10.0.0.5"}], "ports": [{"port": 80}]}]});
    assert_eq!(
        service::endpoints_cell(&ep),
        "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more..."
    );
    assert_eq!(service::endpoints_cell(&json!({})), "<none>");
}

#[test]
fn node_status_and_roles_columns_match_kubectl() {
    let node = json!({
        "metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": "", "kubernetes.io/role": "infra"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}],
                   "nodeInfo": {"kubeletVersion": "v1.33.0"}}
    });
    assert_eq!(
        cluster::node_cells(&node),
        (
            "Ready,SchedulingDisabled".to_string(),
            "control-plane,infra,worker".to_string()
        )
    );
    let bare = json!({"metadata": {"name": "n2"}});
    assert_eq!(
        cluster::node_cells(&bare),
        ("Unknown".to_string(), "<none>".to_string())
    );
    let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    assert_eq!(cluster::node_cells(&not_ready).0, "NotReady");

    let row = strategy("nodes").table_row(&node);
    assert_eq!(row[3], "v1.33.0");
    assert_eq!(row[4], "192.168.1.10");
    assert_eq!(row[5], "<none>");
    assert_eq!(row[6], "<unknown>");
}

#[test]
fn namespaces_start_active_with_the_kubernetes_finalizer() {
    let (ns, errs) = create("namespaces", json!({"metadata": {"name": "team-a"}}));
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team-a"
    );
    let s = strategy("namespaces");
    assert_eq!(s.table_row(&ns)[0], "Active");
    let mut deleting = ns.clone();
    assert!(s.hold_deletion(&mut deleting));
    assert_eq!(deleting["status"]["phase"], "Terminating");
}

#[test]
fn secrets_default_to_opaque_and_fold_string_data_into_data() {
    let (sec, errs) = create(
        "secrets",
        json!({"metadata": {"name": "s"}, "stringData": {"user": "admin"}, "data": {"pw": "c2VjcmV0"}}),
    );
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(sec["type"], "Opaque");
    assert_eq!(sec["data"], json!({"pw": "c2VjcmV0", "user": "YWRtaW4="}));
    assert!(sec.get("stringData").is_none());

    let (_, errs) = create(
        "secrets",
        json!({"metadata": {"name": "s"}, "data": {"bad key": "eA=="}}),
    );
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters"));

    let mut changed = sec.clone();
    changed["type"] = json!("kubernetes.io/tls");
    let (_, errs) = update("secrets", changed, &sec);
    assert!(
        errs.contains(
            &"type: Invalid value: \"kubernetes.io/tls\": field is immutable".to_string()
        ),
        "{errs:?}"
    );
}

#[test]
fn config_map_keys_and_immutability_are_checked() {
    let (cm, errs) = create(
        "configmaps",
        json!({"metadata": {"name": "c"}, "data": {"a.conf": "x"}, "binaryData": {"a.conf": "eA=="}, "immutable": true}),
    );
    assert_eq!(
        errs,
        vec!["data[a.conf]: Invalid value: \"a.conf\": duplicate of key present in binaryData"]
    );
    let mut new = cm.clone();
    new["binaryData"] = json!({});
    new["data"] = json!({"a.conf": "y"});
    let (_, errs) = update("configmaps", new, &cm);
    assert!(
        errs.contains(&"data: Forbidden: field is immutable when `immutable` is set".to_string()),
        "{errs:?}"
    );
    assert_eq!(strategy("configmaps").table_row(&cm)[0], 2);
}

#[test]
fn replication_controllers_default_their_selector_from_the_template() {
    let rc = json!({"metadata": {"name": "rc"}, "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
    let (rc, errs) = create("replicationcontrollers", rc);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(rc["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(rc["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(rc["spec"]["replicas"], 1);
    assert_eq!(rc["spec"]["template"]["spec"]["restartPolicy"], "Always");

    let bad = json!({"metadata": {"name": "rc"}, "spec": {"selector": {"app": "db"}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "web", "image": "nginx"}]}}}});
    let (_, errs) = create("replicationcontrollers", bad);
    assert_eq!(
        errs,
        vec![
            "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
        ]
    );
    let row = strategy("replicationcontrollers").table_row(&rc);
    assert_eq!(row[0], 1);
    assert_eq!(row[4], "web");
    assert_eq!(row[5], "nginx");
    assert_eq!(row[6], "app=web");
}

#[test]
fn persistent_volumes_and_claims_print_like_kubectl() {
    let (pv, errs) = create(
        "persistentvolumes",
        json!({"metadata": {"name": "pv1"}, "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"], "hostPath": {"path": "/data"}, "claimRef": {"namespace": "default", "name": "data"}}}),
    );
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pv["status"]["phase"], "Pending");
    let row = strategy("persistentvolumes").table_row(&pv);
    assert_eq!(row[0], "10Gi");
    assert_eq!(row[1], "RWO,RWX");
    assert_eq!(row[4], "default/data");
    assert_eq!(row[6], "<unset>");

    let (_, errs) = create(
        "persistentvolumeclaims",
        json!({"metadata": {"name": "data"}, "spec": {}}),
    );
    assert_eq!(
        errs,
        vec![
            "spec.accessModes: Required value: at least 1 access mode is required",
            "spec.resources[storage]: Required value"
        ]
    );
    let (pvc, errs) = create(
        "persistentvolumeclaims",
        json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(pvc["status"]["phase"], "Pending");
    assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
    let mut grown = pvc.clone();
    grown["spec"]["storageClassName"] = json!("fast");
    grown["spec"]["accessModes"] = json!(["ReadWriteMany"]);
    let (_, errs) = update("persistentvolumeclaims", grown, &pvc);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"));
}

#[test]
fn events_print_last_seen_type_reason_object_and_message() {
    let ev = json!({
        "metadata": {"name": "web.17a", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "fieldPath": "spec.containers{web}"},
        "reason": "Pulled", "type": "Normal", "message": "Successfully pulled image \"nginx\"\n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z"
    });
    let cells = cluster::event_cells(&ev);
    assert_eq!(cells[1], "Normal");
    assert_eq!(cells[3], "pod/web");
    assert_eq!(cells[4], "spec.containers{web}");
    assert_eq!(cells[5], "kubelet, node-1");
    assert_eq!(cells[6], "Successfully pulled image \"nginx\"");
    assert_eq!(cells[8], 1);
    assert_eq!(cells[9], "web.17a");
    assert_eq!(strategy("events").table_columns().len(), cells.len());
    let (_, errs) = create("events", ev.clone());
    assert!(errs.is_empty(), "{errs:?}");
    let mut other_ns = ev;
    other_ns["involvedObject"]["namespace"] = json!("kube-system");
    let (_, errs) = create("events", other_ns);
    assert_eq!(errs, vec!["involvedObject.namespace: Invalid value: \"kube-system\": does not match event.namespace"]);
}

#[test]
fn resource_quota_cells_split_requests_and_limits() {
    let q = json!({"status": {"hard": {"pods": "10", "limits.cpu": "2", "requests.cpu": "1"}, "used": {"pods": "3", "requests.cpu": "500m"}}});
    assert_eq!(
        config::quota_cells(&q),
        (
            "pods: 3/10, requests.cpu: 500m/1".to_string(),
            "limits.cpu: 0/2".to_string()
        )
    );
    let (_, errs) = create(
        "resourcequotas",
        json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1.5", "widgets": "1"}}}),
    );
    assert_eq!(
        errs,
        vec![
            "spec.hard[pods]: Invalid value: \"1500m\": must be an integer",
            "spec.hard[widgets]: Invalid value: \"widgets\": must be a standard resource type or fully qualified",
            "spec.hard[widgets]: Invalid value: \"widgets\": must be a standard resource for quota",
        ]
    );
}

#[test]
fn limit_ranges_default_container_requests_and_limits() {
    let (lr, errs) = create(
        "limitranges",
        json!({"metadata": {"name": "l"}, "spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}}]}}),
    );
    assert!(errs.is_empty(), "{errs:?}");
    let item = &lr["spec"]["limits"][0];
    assert_eq!(item["default"], json!({"cpu": "2"}));
    assert_eq!(
        item["defaultRequest"],
        json!({"cpu": "2", "memory": "64Mi"})
    );
    let cols = strategy("limitranges").table_columns();
    assert_eq!((cols[0].name, cols[0].type_), ("Created At", "date"));
}

#[test]
fn quantities_print_in_canonical_form() {
    for (input, out) in [
        ("1000m", "1"),
        ("1500m", "1500m"),
        ("0.5", "500m"),
        ("2000", "2k"),
        ("1536Mi", "1536Mi"),
        ("1Gi", "1Gi"),
        ("2048Ki", "2Mi"),
        ("512Ki", "512Ki"),
        ("0.5Gi", "512Mi"),
        ("1e3", "1e3"),
        ("0", "0"),
        ("100", "100"),
    ] {
        assert_eq!(
            Qty::parse(input).map(|q| q.canonical()).as_deref(),
            Some(out),
            "{input}"
        );
    }
    assert!(Qty::parse("1.5.5").is_none());
    assert!(Qty::parse("abc").is_none());
    assert!(Qty::parse("").is_none());
    assert_eq!(
        Qty::parse("0.0001")
            .map(|q| q.round_up_milli().canonical())
            .as_deref(),
        Some("1m")
    );
    assert!(Qty::parse("1Gi") > Qty::parse("1G"));
}

#[test]
fn every_core_resource_has_upstream_discovery_facts() {
    let facts: Vec<(&str, &str, Vec<&str>, bool, &str)> = all()
        .iter()
        .map(|s| {
            let i = s.info();
            assert_eq!(i.group, "");
            assert_eq!(i.version, "v1");
            assert_eq!(i.storage_api_version, "v1");
            assert_eq!(i.definition, format!("io.k8s.api.core.v1.{}", i.kind));
            (
                i.plural,
                i.kind,
                i.short_names.to_vec(),
                i.namespaced,
                i.storage_segment,
            )
        })
        .collect();
    let find = |p: &str| facts.iter().find(|f| f.0 == p).cloned().expect("present");
    assert_eq!(find("pods"), ("pods", "Pod", vec!["po"], true, "pods"));
    assert_eq!(
        find("services"),
        ("services", "Service", vec!["svc"], true, "services/specs")
    );
    assert_eq!(
        find("endpoints"),
        (
            "endpoints",
            "Endpoints",
            vec!["ep"],
            true,
            "services/endpoints"
        )
    );
    assert_eq!(
        find("nodes"),
        ("nodes", "Node", vec!["no"], false, "minions")
    );
    assert_eq!(
        find("replicationcontrollers"),
        (
            "replicationcontrollers",
            "ReplicationController",
            vec!["rc"],
            true,
            "controllers"
        )
    );
    assert_eq!(find("resourcequotas").2, vec!["quota"]);
    assert_eq!(find("limitranges").2, vec!["limits"]);
    assert_eq!(find("componentstatuses").2, vec!["cs"]);
    assert_eq!(facts.len(), 16);
    assert!(strategy("componentstatuses").info().read_only);
    for p in ["pods", "services", "replicationcontrollers"] {
        assert_eq!(strategy(p).info().categories, &["all"]);
    }
    // Every table row has one cell per column.
    for s in all() {
        let empty = json!({});
        assert_eq!(
            s.table_row(&empty).len(),
            s.table_columns().len(),
            "{}",
            s.info().plural
        );
    }
}

#[test]
fn hostile_shapes_do_not_panic() {
    let junk = [
        json!(null),
        json!(1),
        json!("x"),
        json!([]),
        json!({"spec": 5}),
        json!({"spec": {"containers": "no", "volumes": [1, null, {"name": 3}]}}),
        json!({"metadata": [], "status": "x", "spec": {"ports": [{"port": "x"}], "template": []}}),
    ];
    for s in all() {
        for j in &junk {
            let mut obj = j.clone();
            s.prepare_for_create(&mut obj);
            s.default(&mut obj);
            let _ = s.validate(&obj);
            let mut upd = j.clone();
            s.prepare_for_update(&mut upd, &obj);
            s.default(&mut upd);
            let _ = s.validate_update(&upd, &obj);
            let _ = s.validate_update(&obj, j);
            let _ = s.table_row(&obj);
            let _ = s.selectable_fields(&obj);
            let _ = s.default_grace_period(&obj);
        }
    }
}

#[test]
fn finished_containers_of_never_restarting_pods_stay_finished() {
    let mut p = minimal_pod();
    p["spec"]["restartPolicy"] = json!("Never");
    let (mut old, _) = create("pods", p);
    old["status"]["containerStatuses"] = json!([{"name": "nginx", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0}}}]);
    let mut new = old.clone();
    new["status"]["containerStatuses"][0]["state"] = json!({"running": {}});
    let errs: Vec<String> = strategy("pods")
        .validate_update(&new, &old)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errs, vec!["status.containerStatuses[0].state: Forbidden: may not be transitioned to non-terminated state"]);
    let mut bad_ip = old.clone();
    bad_ip["status"]["podIPs"] = json!([{"ip": "10.0.0.300"}]);
    let errs: Vec<String> = strategy("pods")
        .validate_update(&bad_ip, &old)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errs, vec!["status.podIPs[0]: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]);
}

#[test]
fn load_balancer_ingress_is_only_for_load_balancers() {
    let (old, _) = create(
        "services",
        service(json!({"ports": [{"port": 80}], "clusterIP": "10.96.0.10"})),
    );
    let mut new = old.clone();
    new["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}});
    let errs: Vec<String> = strategy("services")
        .validate_update(&new, &old)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errs, vec!["status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'"]);
}
