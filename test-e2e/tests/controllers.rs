//! The controller manager and the scheduler seen through kubectl, on a real
//! single-node ferrokube cluster: Deployments (rollout, scale, update,
//! history, undo, pause/resume, restart), cascading and namespace deletion,
//! per-namespace defaults, StatefulSets with volume claim templates,
//! DaemonSets, Jobs (plain and Indexed), CronJobs, Service endpoints, and
//! scheduling (binding, nodeSelector, taints, anti-affinity).
//!
//! Pods here never name a node: the scheduler binds them to the cluster's
//! only node, `<cluster>-control-plane`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use test_e2e::{
    assert_contains, condition, describe_output, eventually, items, name_of, Checks, Cluster,
};

const POD_START: Duration = Duration::from_secs(90);

fn node_name(c: &Cluster) -> String {
    format!("{}-control-plane", c.name)
}

/// `kubectl -n <ns> <args>`, asserting success; returns stdout.
fn k(c: &Cluster, ns: &str, args: &[&str]) -> String {
    let mut a = vec!["-n", ns];
    a.extend_from_slice(args);
    c.kubectl_ok(&a)
}

/// `kubectl -n <ns> <args> -o json`, parsed.
fn kj(c: &Cluster, ns: &str, args: &[&str]) -> Value {
    let mut a = vec!["-n", ns];
    a.extend_from_slice(args);
    c.kubectl_json(&a)
}

/// `kubectl -n <ns> apply -f -` with `yaml`.
fn apply(c: &Cluster, ns: &str, yaml: &str) -> String {
    c.kubectl_stdin_ok(&["-n", ns, "apply", "-f", "-"], yaml)
}

fn terminating(v: &Value) -> bool {
    !v["metadata"]["deletionTimestamp"].is_null()
}

/// Pods matching `selector` that are not being deleted.
fn live_pods(c: &Cluster, ns: &str, selector: &str) -> Vec<Value> {
    items(&kj(c, ns, &["get", "pods", "-l", selector]))
        .into_iter()
        .filter(|p| !terminating(p))
        .collect()
}

/// Every pod matching `selector`, terminating or not.
fn all_pods(c: &Cluster, ns: &str, selector: &str) -> Vec<Value> {
    items(&kj(c, ns, &["get", "pods", "-l", selector]))
}

fn is_ready(p: &Value) -> bool {
    condition(p, "Ready")["status"] == "True"
}

fn names(objs: &[Value]) -> BTreeSet<String> {
    objs.iter().map(name_of).collect()
}

/// Wait for exactly `n` live pods matching `selector`, all Ready.
fn wait_ready_pods(c: &Cluster, ns: &str, selector: &str, n: usize) -> Vec<Value> {
    eventually(&format!("{n} ready pods {selector}"), POD_START, || {
        let ps = live_pods(c, ns, selector);
        if ps.len() == n && ps.iter().all(is_ready) {
            Ok(ps)
        } else {
            Err(format!(
                "pods: {:?}",
                ps.iter()
                    .map(|p| (name_of(p), is_ready(p), p["status"]["phase"].clone()))
                    .collect::<Vec<_>>()
            ))
        }
    })
}

/// `kubectl rollout status <what>`: must report success.
/// For a StatefulSet (whose `rollingUpdate.partition` defaults to 0) kubectl
/// prints "partitioned roll out complete: N new pods have been updated...".
fn rollout_status(c: &Cluster, ns: &str, what: &str) -> String {
    let out = k(c, ns, &["rollout", "status", what, "--timeout=55s"]);
    let last = out.lines().last().unwrap_or("");
    let (kind, name) = what.split_once('/').expect("kind/name");
    let ok = match kind {
        "deployment" => last == format!("deployment \"{name}\" successfully rolled out"),
        "daemonset" => last == format!("daemon set \"{name}\" successfully rolled out"),
        "statefulset" => last.starts_with("partitioned roll out complete: "),
        _ => panic!("rollout_status: unknown kind {kind}"),
    };
    assert!(ok, "unexpected `rollout status {what}` output:\n{out}");
    out
}

/// Events in `ns` (core/v1, as `kubectl get events` shows them).
fn events(c: &Cluster, ns: &str) -> Vec<Value> {
    items(&kj(c, ns, &["get", "events"]))
}

/// Wait for an event on `object` with `reason` whose message satisfies `pred`.
fn wait_event(
    c: &Cluster,
    ns: &str,
    object: &str,
    reason: &str,
    pred: impl Fn(&str) -> bool,
) -> String {
    eventually(
        &format!("event {reason} on {object}"),
        Duration::from_secs(60),
        || {
            let evs = events(c, ns);
            evs.iter()
                .filter(|e| e["involvedObject"]["name"] == object && e["reason"] == reason)
                .filter_map(|e| e["message"].as_str())
                .find(|m| pred(m))
                .map(str::to_string)
                .ok_or_else(|| {
                    format!(
                        "events: {:?}",
                        evs.iter()
                            .map(|e| format!(
                                "{} {} {}",
                                e["involvedObject"]["name"], e["reason"], e["message"]
                            ))
                            .collect::<Vec<_>>()
                    )
                })
        },
    )
}

fn deployment_yaml(name: &str, replicas: u32) -> String {
    test_e2e::deployment_manifest(
        name,
        replicas,
        r#"      containers:
      - name: c
        image: busybox
        command: ["sleep", "3600"]
"#,
    )
}

/// ReplicaSets owned by (or labelled for) deployment `app`.
fn replicasets(c: &Cluster, ns: &str, app: &str) -> Vec<Value> {
    items(&kj(c, ns, &["get", "rs", "-l", &format!("app={app}")]))
}

/// Value of env var `var` in a pod's container via `kubectl exec`;
/// `None` if unset. (The busybox image has no `printenv`.)
fn pod_env(c: &Cluster, ns: &str, pod: &str, var: &str) -> Option<String> {
    let script = format!("echo \"${{{var}-__unset__}}\"");
    let out = k(c, ns, &["exec", pod, "--", "sh", "-c", &script]);
    match out.trim() {
        "__unset__" => None,
        v => Some(v.to_string()),
    }
}

/// Revisions listed by `kubectl rollout history`.
fn history_revisions(c: &Cluster, ns: &str, what: &str) -> Vec<u32> {
    k(c, ns, &["rollout", "history", what])
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

fn annotation(o: &Value, key: &str) -> String {
    o["metadata"]["annotations"][key]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Deployments end to end, cascading deletion in all three modes, namespace
/// deletion and the objects every new namespace gets.
#[test]
fn deployments_cascading_and_namespaces() {
    let c = Cluster::create();
    let mut t = Checks::new("deployments_cascading_and_namespaces");
    let ns = "deploy";
    c.create_namespace(ns);

    t.check(
        "a new namespace gets the default ServiceAccount and kube-root-ca.crt",
        || {
            c.create_namespace("fresh");
            let sa = eventually("default ServiceAccount", Duration::from_secs(30), || {
                let out = c.kubectl(&["-n", "fresh", "get", "serviceaccount", "default"]);
                if out.status.success() {
                    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
                } else {
                    Err(describe_output("get sa default", &out))
                }
            });
            assert_contains(&sa, "default");
            let ca = eventually("kube-root-ca.crt", Duration::from_secs(30), || {
                let out = c.kubectl(&[
                    "-n",
                    "fresh",
                    "get",
                    "configmap",
                    "kube-root-ca.crt",
                    "-o",
                    r"jsonpath={.data.ca\.crt}",
                ]);
                if out.status.success() {
                    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
                } else {
                    Err(describe_output("get cm kube-root-ca.crt", &out))
                }
            });
            let cluster_ca = std::fs::read_to_string(c.pki("ca.crt")).expect("reading ca.crt");
            assert!(
                ca.starts_with("-----BEGIN CERTIFICATE-----"),
                "kube-root-ca.crt ca.crt: {ca}"
            );
            assert_eq!(
                ca.trim(),
                cluster_ca.trim(),
                "kube-root-ca.crt must hold the cluster CA"
            );
        },
    );

    t.check(
        "a Deployment rolls out and `rollout status` returns",
        || {
            let out = apply(&c, ns, &deployment_yaml("web", 3));
            assert_contains(&out, "deployment.apps/web created");
            rollout_status(&c, ns, "deployment/web");
            let d = kj(&c, ns, &["get", "deployment", "web"]);
            assert_eq!(d["status"]["readyReplicas"], 3, "{}", d["status"]);
            assert_eq!(d["status"]["availableReplicas"], 3, "{}", d["status"]);
            assert_eq!(d["status"]["updatedReplicas"], 3, "{}", d["status"]);
            assert_eq!(
                condition(&d, "Available")["reason"],
                "MinimumReplicasAvailable",
                "{}",
                d["status"]
            );
            assert_eq!(
                condition(&d, "Progressing")["reason"],
                "NewReplicaSetAvailable",
                "{}",
                d["status"]
            );
            let table = k(&c, ns, &["get", "deployment", "web", "--no-headers"]);
            let cols: Vec<&str> = table.split_whitespace().collect();
            assert_eq!(&cols[..4], ["web", "3/3", "3", "3"], "{table}");
            // One ReplicaSet owned by the Deployment, three pods owned by it,
            // all bound to the node by the scheduler.
            let rss = replicasets(&c, ns, "web");
            assert_eq!(rss.len(), 1, "{rss:?}");
            let rs = &rss[0];
            assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
            assert_eq!(rs["metadata"]["ownerReferences"][0]["name"], "web");
            assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
            let pods = live_pods(&c, ns, "app=web");
            assert_eq!(pods.len(), 3);
            for p in &pods {
                assert_eq!(p["status"]["phase"], "Running", "{}", name_of(p));
                assert_eq!(p["spec"]["nodeName"], node_name(&c).as_str());
                assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
                assert_eq!(
                    p["metadata"]["ownerReferences"][0]["name"],
                    rs["metadata"]["name"]
                );
                assert!(name_of(p).starts_with(&format!("{}-", name_of(rs))));
            }
        },
    );

    t.check("ScalingReplicaSet and SuccessfulCreate events", || {
        let rs = name_of(&replicasets(&c, ns, "web")[0]);
        let msg = wait_event(&c, ns, "web", "ScalingReplicaSet", |m| {
            m.starts_with("Scaled up replica set ")
        });
        assert_eq!(msg, format!("Scaled up replica set {rs} from 0 to 3"));
        let msg = wait_event(&c, ns, &rs, "SuccessfulCreate", |_| true);
        assert!(
            msg.starts_with(&format!("Created pod: {rs}-")),
            "SuccessfulCreate message: {msg}"
        );
    });

    t.check("kubectl scale up and down", || {
        let out = k(&c, ns, &["scale", "deployment/web", "--replicas=5"]);
        assert_eq!(out.trim(), "deployment.apps/web scaled");
        wait_ready_pods(&c, ns, "app=web", 5);
        rollout_status(&c, ns, "deployment/web");
        let rs = name_of(&replicasets(&c, ns, "web")[0]);
        wait_event(&c, ns, "web", "ScalingReplicaSet", |m| {
            m == format!("Scaled up replica set {rs} from 3 to 5")
        });
        let out = k(&c, ns, &["scale", "deployment/web", "--replicas=2"]);
        assert_eq!(out.trim(), "deployment.apps/web scaled");
        eventually("2 web pods", Duration::from_secs(60), || {
            let n = live_pods(&c, ns, "app=web").len();
            let ready =
                kj(&c, ns, &["get", "deployment", "web"])["status"]["readyReplicas"].clone();
            if n == 2 && ready == 2 {
                Ok(())
            } else {
                Err(format!("{n} live pods, readyReplicas {ready}"))
            }
        });
        wait_event(&c, ns, "web", "ScalingReplicaSet", |m| {
            m == format!("Scaled down replica set {rs} from 5 to 2")
        });
    });

    t.check("kubectl set image rolls out a new ReplicaSet", || {
        let old_rs = name_of(&replicasets(&c, ns, "web")[0]);
        let out = k(
            &c,
            ns,
            &[
                "set",
                "image",
                "deployment/web",
                "c=docker.io/library/busybox:latest",
            ],
        );
        assert_eq!(out.trim(), "deployment.apps/web image updated");
        rollout_status(&c, ns, "deployment/web");
        let rss = replicasets(&c, ns, "web");
        assert_eq!(rss.len(), 2, "{:?}", names(&rss));
        let new = rss.iter().find(|r| name_of(r) != old_rs).unwrap();
        let old = rss.iter().find(|r| name_of(r) == old_rs).unwrap();
        assert_eq!(new["spec"]["replicas"], 2);
        assert_eq!(old["spec"]["replicas"], 0);
        assert_eq!(annotation(new, "deployment.kubernetes.io/revision"), "2");
        let pods = wait_ready_pods(&c, ns, "app=web", 2);
        for p in &pods {
            assert_eq!(
                p["spec"]["containers"][0]["image"],
                "docker.io/library/busybox:latest"
            );
            assert!(name_of(p).starts_with(&name_of(new)), "{}", name_of(p));
        }
    });

    t.check("kubectl set env rolls out and the pods see it", || {
        let out = k(&c, ns, &["set", "env", "deployment/web", "COLOR=blue"]);
        assert_eq!(out.trim(), "deployment.apps/web env updated");
        rollout_status(&c, ns, "deployment/web");
        let pods = wait_ready_pods(&c, ns, "app=web", 2);
        for p in &pods {
            assert_eq!(
                pod_env(&c, ns, &name_of(p), "COLOR").as_deref(),
                Some("blue")
            );
        }
        assert_eq!(replicasets(&c, ns, "web").len(), 3);
    });

    t.check("kubectl rollout history lists the revisions", || {
        assert_eq!(history_revisions(&c, ns, "deployment/web"), vec![1, 2, 3]);
        let rev3 = k(
            &c,
            ns,
            &["rollout", "history", "deployment/web", "--revision=3"],
        );
        assert_contains(&rev3, "COLOR:");
        assert_contains(&rev3, "blue");
        let rev2 = k(
            &c,
            ns,
            &["rollout", "history", "deployment/web", "--revision=2"],
        );
        assert!(!rev2.contains("COLOR"), "{rev2}");
        assert_contains(&rev2, "docker.io/library/busybox:latest");
    });

    t.check(
        "kubectl rollout undo goes back to the previous revision",
        || {
            let out = k(&c, ns, &["rollout", "undo", "deployment/web"]);
            assert_eq!(out.trim(), "deployment.apps/web rolled back");
            rollout_status(&c, ns, "deployment/web");
            let d = kj(&c, ns, &["get", "deployment", "web"]);
            assert_eq!(annotation(&d, "deployment.kubernetes.io/revision"), "4");
            assert!(
                d["spec"]["template"]["spec"]["containers"][0]["env"].is_null(),
                "{}",
                d["spec"]["template"]
            );
            // Revision 2 became revision 4.
            assert_eq!(history_revisions(&c, ns, "deployment/web"), vec![1, 3, 4]);
            let pods = wait_ready_pods(&c, ns, "app=web", 2);
            for p in &pods {
                assert_eq!(
                    pod_env(&c, ns, &name_of(p), "COLOR"),
                    None,
                    "{}",
                    name_of(p)
                );
                assert_eq!(
                    p["spec"]["containers"][0]["image"],
                    "docker.io/library/busybox:latest"
                );
            }
        },
    );

    t.check(
        "a paused Deployment does not roll out until resumed",
        || {
            let out = k(&c, ns, &["rollout", "pause", "deployment/web"]);
            assert_eq!(out.trim(), "deployment.apps/web paused");
            eventually("DeploymentPaused", Duration::from_secs(30), || {
                let d = kj(&c, ns, &["get", "deployment", "web"]);
                if condition(&d, "Progressing")["reason"] == "DeploymentPaused" {
                    Ok(())
                } else {
                    Err(format!("{}", d["status"]))
                }
            });
            let rs_before = names(&replicasets(&c, ns, "web"));
            let pods_before = names(&live_pods(&c, ns, "app=web"));
            k(&c, ns, &["set", "env", "deployment/web", "COLOR=red"]);
            std::thread::sleep(Duration::from_secs(4));
            assert_eq!(names(&replicasets(&c, ns, "web")), rs_before);
            assert_eq!(names(&live_pods(&c, ns, "app=web")), pods_before);
            for p in &pods_before {
                assert_eq!(pod_env(&c, ns, p, "COLOR"), None, "{p}");
            }
            let out = k(&c, ns, &["rollout", "resume", "deployment/web"]);
            assert_eq!(out.trim(), "deployment.apps/web resumed");
            rollout_status(&c, ns, "deployment/web");
            let pods = wait_ready_pods(&c, ns, "app=web", 2);
            for p in &pods {
                assert!(
                    !pods_before.contains(&name_of(p)),
                    "{} survived",
                    name_of(p)
                );
                assert_eq!(
                    pod_env(&c, ns, &name_of(p), "COLOR").as_deref(),
                    Some("red")
                );
            }
            assert_eq!(replicasets(&c, ns, "web").len(), rs_before.len() + 1);
        },
    );

    t.check("kubectl rollout restart replaces every pod", || {
        let before = names(&live_pods(&c, ns, "app=web"));
        assert_eq!(before.len(), 2);
        let out = k(&c, ns, &["rollout", "restart", "deployment/web"]);
        assert_eq!(out.trim(), "deployment.apps/web restarted");
        rollout_status(&c, ns, "deployment/web");
        let d = kj(&c, ns, &["get", "deployment", "web"]);
        assert!(
            !annotation(&d["spec"]["template"], "kubectl.kubernetes.io/restartedAt").is_empty(),
            "{}",
            d["spec"]["template"]
        );
        eventually("old pods gone", Duration::from_secs(60), || {
            let now = names(&all_pods(&c, ns, "app=web"));
            if now.is_disjoint(&before) && now.len() == 2 {
                Ok(())
            } else {
                Err(format!("before {before:?}, now {now:?}"))
            }
        });
        wait_ready_pods(&c, ns, "app=web", 2);
    });

    // Cascading deletion: three Deployments, one per mode.
    let cns = "cascade";
    c.create_namespace(cns);
    for m in ["bg", "fg", "orphan"] {
        apply(&c, cns, &deployment_yaml(&format!("casc-{m}"), 2));
    }

    t.check(
        "delete --cascade=background removes ReplicaSets and pods",
        || {
            rollout_status(&c, cns, "deployment/casc-bg");
            let out = k(
                &c,
                cns,
                &["delete", "deployment", "casc-bg", "--cascade=background"],
            );
            assert_eq!(out.trim(), "deployment.apps \"casc-bg\" deleted");
            eventually("casc-bg dependents gone", Duration::from_secs(60), || {
                let rs = replicasets(&c, cns, "casc-bg");
                let pods = all_pods(&c, cns, "app=casc-bg");
                if rs.is_empty() && pods.is_empty() {
                    Ok(())
                } else {
                    Err(format!("rs {:?}, pods {:?}", names(&rs), names(&pods)))
                }
            });
        },
    );

    t.check(
        "delete --cascade=foreground removes the dependents before the owner",
        || {
            rollout_status(&c, cns, "deployment/casc-fg");
            let out = k(
                &c,
                cns,
                &[
                    "delete",
                    "deployment",
                    "casc-fg",
                    "--cascade=foreground",
                    "--wait=false",
                ],
            );
            assert_eq!(out.trim(), "deployment.apps \"casc-fg\" deleted");
            // Still there, waiting for its dependents.
            let d = kj(&c, cns, &["get", "deployment", "casc-fg"]);
            assert!(
                !d["metadata"]["deletionTimestamp"].is_null(),
                "{}",
                d["metadata"]
            );
            assert!(
                d["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f == "foregroundDeletion")),
                "{}",
                d["metadata"]
            );
            eventually("casc-fg gone", Duration::from_secs(60), || {
                let out = c.kubectl(&["-n", cns, "get", "deployment", "casc-fg"]);
                if !out.status.success()
                    && String::from_utf8_lossy(&out.stderr).contains("NotFound")
                {
                    Ok(())
                } else {
                    Err(describe_output("get deployment casc-fg", &out))
                }
            });
            // Once the owner is gone, nothing it owned is left.
            let rs = replicasets(&c, cns, "casc-fg");
            let pods = all_pods(&c, cns, "app=casc-fg");
            assert!(rs.is_empty(), "ReplicaSets left: {:?}", names(&rs));
            assert!(pods.is_empty(), "pods left: {:?}", names(&pods));
        },
    );

    t.check(
        "delete --cascade=orphan leaves the ReplicaSet and pods running",
        || {
            rollout_status(&c, cns, "deployment/casc-orphan");
            let rs_before = replicasets(&c, cns, "casc-orphan");
            assert_eq!(rs_before.len(), 1);
            let pods_before = names(&live_pods(&c, cns, "app=casc-orphan"));
            assert_eq!(pods_before.len(), 2);
            let out = k(
                &c,
                cns,
                &["delete", "deployment", "casc-orphan", "--cascade=orphan"],
            );
            assert_eq!(out.trim(), "deployment.apps \"casc-orphan\" deleted");
            let out = c.kubectl(&["-n", cns, "get", "deployment", "casc-orphan"]);
            assert!(!out.status.success(), "{}", describe_output("get", &out));
            let rs = eventually("orphaned ReplicaSet", Duration::from_secs(30), || {
                let rss = replicasets(&c, cns, "casc-orphan");
                match rss.as_slice() {
                    [rs] if rs["metadata"]["ownerReferences"]
                        .as_array()
                        .is_none_or(|o| o.is_empty()) =>
                    {
                        Ok(rs.clone())
                    }
                    _ => Err(format!("{rss:?}")),
                }
            });
            assert_eq!(name_of(&rs), name_of(&rs_before[0]));
            assert!(!terminating(&rs));
            // The pods are untouched and still owned by the (now orphaned) RS.
            std::thread::sleep(Duration::from_secs(3));
            let pods = live_pods(&c, cns, "app=casc-orphan");
            assert_eq!(names(&pods), pods_before);
            for p in &pods {
                assert!(is_ready(p), "{}", name_of(p));
                assert_eq!(p["metadata"]["ownerReferences"][0]["name"], name_of(&rs));
            }
            let rs = kj(&c, cns, &["get", "rs", &name_of(&rs)]);
            assert_eq!(rs["status"]["readyReplicas"], 2, "{}", rs["status"]);
        },
    );

    t.check("deleting a namespace removes everything in it", || {
        let dns = "doomed";
        c.create_namespace(dns);
        apply(&c, dns, &deployment_yaml("app", 2));
        k(
            &c,
            dns,
            &["create", "configmap", "settings", "--from-literal=a=b"],
        );
        k(
            &c,
            dns,
            &["create", "service", "clusterip", "app", "--tcp=80:8080"],
        );
        rollout_status(&c, dns, "deployment/app");
        assert_eq!(live_pods(&c, dns, "app=app").len(), 2);
        let out = c.kubectl_ok(&["delete", "namespace", dns, "--wait=false"]);
        assert_eq!(out.trim(), "namespace \"doomed\" deleted");
        // Its pods take a moment to stop, so it is still there, Terminating.
        let phase = c.kubectl_ok(&["get", "namespace", dns, "-o", "jsonpath={.status.phase}"]);
        assert_eq!(phase, "Terminating");
        eventually("namespace doomed gone", Duration::from_secs(90), || {
            let out = c.kubectl(&["get", "namespace", dns]);
            if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound") {
                Ok(())
            } else {
                Err(describe_output("get namespace doomed", &out))
            }
        });
        let all = c.kubectl_json(&[
            "get",
            "pods,replicasets,deployments,configmaps,services",
            "-A",
        ]);
        let left: Vec<String> = items(&all)
            .iter()
            .filter(|o| o["metadata"]["namespace"] == dns)
            .map(|o| format!("{}/{}", o["kind"], name_of(o)))
            .collect();
        assert!(left.is_empty(), "left in deleted namespace: {left:?}");
    });

    t.finish();
}

fn sts_yaml(dir: &std::path::Path) -> String {
    let mut y = String::new();
    for i in 0..3 {
        y.push_str(&format!(
            r#"apiVersion: v1
kind: PersistentVolume
metadata:
  name: e2e-pv-{i}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  persistentVolumeReclaimPolicy: Retain
  hostPath:
    path: {}/pv-{i}
    type: DirectoryOrCreate
---
"#,
            dir.display()
        ));
    }
    y.push_str(
        r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector: {app: sts}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  replicas: 3
  serviceName: web
  selector:
    matchLabels: {app: sts}
  template:
    metadata:
      labels: {app: sts}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: ["sleep", "3600"]
        readinessProbe:
          exec: {command: ["true"]}
          initialDelaySeconds: 2
          periodSeconds: 1
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: manual
      resources: {requests: {storage: 1Mi}}
"#,
    );
    y
}

/// StatefulSets, DaemonSets, Jobs, CronJobs and Service endpoints.
#[test]
fn workloads_jobs_and_endpoints() {
    let c = Cluster::create();
    let mut t = Checks::new("workloads_jobs_and_endpoints");
    let ns = "work";
    c.create_namespace(ns);

    // The CronJob goes first: its first run is up to a minute away.
    apply(
        &c,
        ns,
        r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          terminationGracePeriodSeconds: 1
          containers:
          - name: c
            image: busybox
            command: ["sh", "-c", "echo tick"]
"#,
    );
    let cron_created = Instant::now();

    t.check(
        "a StatefulSet comes up in order with stable names and its PVCs",
        || {
            let out = apply(&c, ns, &sts_yaml(c.home()));
            assert_contains(&out, "statefulset.apps/web created");
            let out = rollout_status(&c, ns, "statefulset/web");
            assert_contains(
                &out,
                "partitioned roll out complete: 3 new pods have been updated",
            );
            let pods = wait_ready_pods(&c, ns, "app=sts", 3);
            assert_eq!(
                names(&pods),
                ["web-0", "web-1", "web-2"].map(String::from).into()
            );
            // OrderedReady: web-N+1 is created only once web-N is Ready.
            let get = |n: &str| kj(&c, ns, &["get", "pod", n]);
            for (a, b) in [("web-0", "web-1"), ("web-1", "web-2")] {
                let pa = get(a);
                let pb = get(b);
                let ready_a = condition(&pa, "Ready")["lastTransitionTime"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let created_b = pb["metadata"]["creationTimestamp"].as_str().unwrap_or("");
                assert!(!ready_a.is_empty() && !created_b.is_empty());
                assert!(
                    created_b >= ready_a.as_str(),
                    "{b} created at {created_b}, before {a} was Ready at {ready_a}"
                );
            }
            for i in 0..3 {
                let pod = format!("web-{i}");
                let host = k(&c, ns, &["exec", &pod, "--", "hostname"]);
                assert_eq!(host.trim(), pod);
                let pvc = kj(&c, ns, &["get", "pvc", &format!("data-web-{i}")]);
                assert_eq!(pvc["status"]["phase"], "Bound", "{}", pvc["status"]);
                assert!(
                    pvc["spec"]["volumeName"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("e2e-pv-"),
                    "{}",
                    pvc["spec"]
                );
                let p = get(&pod);
                let vols = p["spec"]["volumes"].to_string();
                assert_contains(&vols, &format!("\"claimName\":\"data-web-{i}\""));
            }
        },
    );

    t.check(
        "a StatefulSet pod is replaced under its name with its volume",
        || {
            k(
                &c,
                ns,
                &["exec", "web-1", "--", "sh", "-c", "hostname > /data/who"],
            );
            let uid = kj(&c, ns, &["get", "pod", "web-1"])["metadata"]["uid"].clone();
            k(&c, ns, &["delete", "pod", "web-1"]);
            let p = eventually("web-1 recreated and Ready", POD_START, || {
                let out = c.kubectl(&["-n", ns, "get", "pod", "web-1", "-o", "json"]);
                let p: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
                if out.status.success() && p["metadata"]["uid"] != uid && is_ready(&p) {
                    Ok(p)
                } else {
                    Err(format!("{}", p["status"]))
                }
            });
            assert_eq!(name_of(&p), "web-1");
            let who = k(&c, ns, &["exec", "web-1", "--", "cat", "/data/who"]);
            assert_eq!(who.trim(), "web-1");
        },
    );

    t.check(
        "a StatefulSet scales down highest ordinal first and keeps its PVCs",
        || {
            let out = k(&c, ns, &["scale", "statefulset/web", "--replicas=1"]);
            assert_eq!(out.trim(), "statefulset.apps/web scaled");
            // Poll the pods: web-1 must not start terminating while web-2 is
            // still there, and we must see web-2 going while web-1 still runs
            // (sleep ignores SIGTERM, so each pod takes its 1s grace period).
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut states = Vec::new();
            let mut saw_web2_first = false;
            loop {
                let pods = all_pods(&c, ns, "app=sts");
                let get = |n: &str| pods.iter().find(|p| name_of(p) == n);
                let state: Vec<String> = pods
                    .iter()
                    .map(|p| format!("{}{}", name_of(p), if terminating(p) { "(T)" } else { "" }))
                    .collect();
                if states.last() != Some(&state) {
                    states.push(state.clone());
                }
                let web1_going = get("web-1").is_none_or(terminating);
                assert!(
                    !(web1_going && get("web-2").is_some()),
                    "web-1 went before web-2 was gone: {states:?}"
                );
                if get("web-2").is_some_and(terminating)
                    && get("web-1").is_some_and(|p| !terminating(p))
                {
                    saw_web2_first = true;
                }
                if names(&pods) == ["web-0".to_string()].into() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out scaling down: {states:?}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(
                saw_web2_first,
                "never saw web-2 terminating alone: {states:?}"
            );
            assert!(is_ready(&kj(&c, ns, &["get", "pod", "web-0"])));
            let pvcs = names(&items(&kj(&c, ns, &["get", "pvc"])));
            for i in 0..3 {
                assert!(pvcs.contains(&format!("data-web-{i}")), "{pvcs:?}");
            }
        },
    );

    t.check("a DaemonSet runs one pod on the node", || {
        apply(
            &c,
            ns,
            r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: ["sleep", "3600"]
"#,
        );
        rollout_status(&c, ns, "daemonset/agent");
        let ds = kj(&c, ns, &["get", "daemonset", "agent"]);
        let nodes = items(&c.kubectl_json(&["get", "nodes"])).len();
        assert_eq!(nodes, 1);
        assert_eq!(
            ds["status"]["desiredNumberScheduled"], 1,
            "{}",
            ds["status"]
        );
        assert_eq!(ds["status"]["numberReady"], 1, "{}", ds["status"]);
        let pods = wait_ready_pods(&c, ns, "app=agent", 1);
        assert_eq!(pods[0]["spec"]["nodeName"], node_name(&c).as_str());
        assert_eq!(
            pods[0]["metadata"]["ownerReferences"][0]["kind"],
            "DaemonSet"
        );
        // A deleted daemon pod comes back.
        let first = name_of(&pods[0]);
        k(&c, ns, &["delete", "pod", &first]);
        eventually("daemon pod replaced", POD_START, || {
            let ps = live_pods(&c, ns, "app=agent");
            match ps.as_slice() {
                [p] if name_of(p) != first && is_ready(p) => Ok(()),
                _ => Err(format!("{:?}", names(&ps))),
            }
        });
    });

    t.check("a Job with 3 completions completes", || {
        apply(
            &c,
            ns,
            r#"apiVersion: batch/v1
kind: Job
metadata:
  name: count
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "echo done"]
"#,
        );
        let out = k(
            &c,
            ns,
            &[
                "wait",
                "--for=condition=complete",
                "job/count",
                "--timeout=55s",
            ],
        );
        assert_eq!(out.trim(), "job.batch/count condition met");
        let j = kj(&c, ns, &["get", "job", "count"]);
        assert_eq!(j["status"]["succeeded"], 3, "{}", j["status"]);
        assert!(j["status"]["completionTime"].is_string(), "{}", j["status"]);
        let pods = all_pods(&c, ns, "job-name=count");
        let done = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Succeeded")
            .count();
        assert_eq!(done, 3, "{:?}", names(&pods));
        for p in &pods {
            assert_eq!(k(&c, ns, &["logs", &name_of(p)]).trim(), "done");
        }
        let row = k(&c, ns, &["get", "job", "count", "--no-headers"]);
        assert_contains(&row, "3/3");
        wait_event(&c, ns, "count", "Completed", |m| m == "Job completed");
    });

    t.check(
        "an Indexed Job gives each pod its JOB_COMPLETION_INDEX",
        || {
            apply(
                &c,
                ns,
                r#"apiVersion: batch/v1
kind: Job
metadata:
  name: idx
spec:
  completions: 3
  parallelism: 3
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "echo index=$JOB_COMPLETION_INDEX host=$(hostname)"]
"#,
            );
            let out = k(
                &c,
                ns,
                &[
                    "wait",
                    "--for=condition=complete",
                    "job/idx",
                    "--timeout=55s",
                ],
            );
            assert_eq!(out.trim(), "job.batch/idx condition met");
            let j = kj(&c, ns, &["get", "job", "idx"]);
            assert_eq!(j["status"]["completedIndexes"], "0-2", "{}", j["status"]);
            let mut seen = BTreeSet::new();
            for p in all_pods(&c, ns, "job-name=idx") {
                if p["status"]["phase"] != "Succeeded" {
                    continue;
                }
                let i = annotation(&p, "batch.kubernetes.io/job-completion-index");
                let log = k(&c, ns, &["logs", &name_of(&p)]);
                assert_eq!(log.trim(), format!("index={i} host=idx-{i}"));
                seen.insert(i);
            }
            assert_eq!(seen, ["0", "1", "2"].map(String::from).into());
        },
    );

    t.check(
        "Service endpoints and EndpointSlices follow ready pods",
        || {
            apply(
                &c,
                ns,
                r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: ep
spec:
  replicas: 2
  selector:
    matchLabels: {app: ep}
  template:
    metadata:
      labels: {app: ep}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: ["sleep", "3600"]
        readinessProbe:
          exec: {command: ["test", "-f", "/tmp/ready"]}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: ep
spec:
  selector: {app: ep}
  ports: [{name: http, port: 80, targetPort: 8080}]
"#,
            );
            // Both pods running but not ready: only notReadyAddresses.
            let pods = eventually("2 running ep pods with IPs", POD_START, || {
                let ps = live_pods(&c, ns, "app=ep");
                if ps.len() == 2
                    && ps.iter().all(|p| {
                        p["status"]["phase"] == "Running" && p["status"]["podIP"].is_string()
                    })
                {
                    Ok(ps)
                } else {
                    Err(format!("{:?}", names(&ps)))
                }
            });
            let ip = |p: &Value| p["status"]["podIP"].as_str().unwrap().to_string();
            let (a, b) = (&pods[0], &pods[1]);
            let addrs = |key: &str| -> BTreeSet<String> {
                let e = kj(&c, ns, &["get", "endpoints", "ep"]);
                e["subsets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|s| s[key].as_array().cloned().unwrap_or_default())
                    .filter_map(|a| a["ip"].as_str().map(str::to_string))
                    .collect()
            };
            let slice_ready = || -> Vec<(String, bool)> {
                let s = kj(
                    &c,
                    ns,
                    &[
                        "get",
                        "endpointslices",
                        "-l",
                        "kubernetes.io/service-name=ep",
                    ],
                );
                let mut v: Vec<(String, bool)> = items(&s)
                    .iter()
                    .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
                    .map(|e| {
                        (
                            e["addresses"][0].as_str().unwrap_or("").to_string(),
                            e["conditions"]["ready"] == true,
                        )
                    })
                    .collect();
                v.sort();
                v
            };
            let sorted = |mut v: Vec<(String, bool)>| {
                v.sort();
                v
            };
            eventually(
                "endpoints with 2 not-ready addresses",
                Duration::from_secs(30),
                || {
                    let (r, nr) = (addrs("addresses"), addrs("notReadyAddresses"));
                    let want: BTreeSet<String> = [ip(a), ip(b)].into();
                    let sl = slice_ready();
                    if r.is_empty()
                        && nr == want
                        && sl == sorted(vec![(ip(a), false), (ip(b), false)])
                    {
                        Ok(())
                    } else {
                        Err(format!("ready {r:?}, not ready {nr:?}, slice {sl:?}"))
                    }
                },
            );
            // Make one pod ready.
            k(&c, ns, &["exec", &name_of(a), "--", "touch", "/tmp/ready"]);
            eventually("one ready address", Duration::from_secs(30), || {
                let (r, nr) = (addrs("addresses"), addrs("notReadyAddresses"));
                let sl = slice_ready();
                if r == [ip(a)].into()
                    && nr == [ip(b)].into()
                    && sl == sorted(vec![(ip(a), true), (ip(b), false)])
                {
                    Ok(())
                } else {
                    Err(format!("ready {r:?}, not ready {nr:?}, slice {sl:?}"))
                }
            });
            let e = kj(&c, ns, &["get", "endpoints", "ep"]);
            assert_eq!(e["subsets"][0]["ports"][0]["port"], 8080, "{e}");
            let table = k(&c, ns, &["get", "endpoints", "ep", "--no-headers"]);
            assert_contains(&table, &format!("{}:8080", ip(a)));
            // A deleted pod leaves the endpoints.
            k(&c, ns, &["delete", "pod", &name_of(a)]);
            eventually(
                "deleted pod gone from endpoints",
                Duration::from_secs(60),
                || {
                    let (r, nr) = (addrs("addresses"), addrs("notReadyAddresses"));
                    let sl = slice_ready();
                    if !r.contains(&ip(a))
                        && !nr.contains(&ip(a))
                        && !sl.iter().any(|(i, _)| *i == ip(a))
                        && nr.contains(&ip(b))
                    {
                        Ok(())
                    } else {
                        Err(format!("ready {r:?}, not ready {nr:?}, slice {sl:?}"))
                    }
                },
            );
        },
    );

    t.check("a CronJob fires and its Job completes", || {
        let left = Duration::from_secs(150).saturating_sub(cron_created.elapsed());
        let job = eventually(
            "a Job from CronJob tick",
            left.max(Duration::from_secs(30)),
            || {
                let jobs = items(&kj(&c, ns, &["get", "jobs"]));
                jobs.iter()
                    .find(|j| {
                        j["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
                            && j["metadata"]["ownerReferences"][0]["name"] == "tick"
                            && condition(j, "Complete")["status"] == "True"
                    })
                    .cloned()
                    .ok_or_else(|| format!("jobs: {:?}", names(&jobs)))
            },
        );
        let jname = name_of(&job);
        let suffix = jname.strip_prefix("tick-").unwrap_or("");
        assert!(
            !suffix.is_empty() && suffix.chars().all(|ch| ch.is_ascii_digit()),
            "job name {jname}"
        );
        // It ran at a whole minute after the CronJob was created.
        let cj = kj(&c, ns, &["get", "cronjob", "tick"]);
        let cj_created = cj["metadata"]["creationTimestamp"].as_str().unwrap_or("");
        let scheduled = annotation(&job, "batch.kubernetes.io/cronjob-scheduled-timestamp");
        assert!(
            scheduled.ends_with(":00Z") && scheduled.as_str() > cj_created,
            "scheduled at {scheduled:?}, CronJob created at {cj_created}"
        );
        let job_created = job["metadata"]["creationTimestamp"].as_str().unwrap_or("");
        assert!(
            job_created >= scheduled.as_str(),
            "job created {job_created}, scheduled {scheduled}"
        );
        let pods = all_pods(&c, ns, &format!("job-name={jname}"));
        assert!(!pods.is_empty());
        let log = k(&c, ns, &["logs", &name_of(&pods[0])]);
        assert_eq!(log.trim(), "tick");
        wait_event(&c, ns, "tick", "SuccessfulCreate", |m| {
            m == format!("Created job {jname}")
        });
        let cj = eventually("lastSuccessfulTime", Duration::from_secs(30), || {
            let cj = kj(&c, ns, &["get", "cronjob", "tick"]);
            if cj["status"]["lastSuccessfulTime"].is_string() {
                Ok(cj)
            } else {
                Err(format!("{}", cj["status"]))
            }
        });
        assert!(
            cj["status"]["lastScheduleTime"].is_string(),
            "{}",
            cj["status"]
        );
    });

    t.finish();
}

/// The pod's single FailedScheduling message, waited for.
fn failed_scheduling(c: &Cluster, ns: &str, pod: &str) -> String {
    wait_event(c, ns, pod, "FailedScheduling", |_| true)
}

/// Wait until the pod is Pending and PodScheduled=False/Unschedulable.
fn wait_unschedulable(c: &Cluster, ns: &str, pod: &str) -> Value {
    eventually(
        &format!("{pod} Unschedulable"),
        Duration::from_secs(60),
        || {
            let p = kj(c, ns, &["get", "pod", pod]);
            let cond = condition(&p, "PodScheduled");
            if p["status"]["phase"] == "Pending"
                && cond["status"] == "False"
                && cond["reason"] == "Unschedulable"
            {
                Ok(p)
            } else {
                Err(format!("{}", p["status"]))
            }
        },
    )
}

fn wait_running_on_node(c: &Cluster, ns: &str, pod: &str) -> Value {
    eventually(&format!("{pod} running on the node"), POD_START, || {
        let p = kj(c, ns, &["get", "pod", pod]);
        if p["spec"]["nodeName"] == node_name(c).as_str() && p["status"]["phase"] == "Running" {
            Ok(p)
        } else {
            Err(format!(
                "nodeName {}, status {}",
                p["spec"]["nodeName"], p["status"]
            ))
        }
    })
}

fn sleeper(name: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  terminationGracePeriodSeconds: 1
{extra_spec}  containers:
  - name: c
    image: busybox
    command: ["sleep", "3600"]
"#
    )
}

/// The scheduler: binding, nodeSelector, taints and pod anti-affinity.
#[test]
fn scheduler_placement() {
    let c = Cluster::create();
    let mut t = Checks::new("scheduler_placement");
    let ns = "sched";
    c.create_namespace(ns);
    let node = node_name(&c);

    t.check("a pod without nodeName is bound to the node", || {
        let out = k(
            &c,
            ns,
            &["run", "plain", "--image=busybox", "--", "sleep", "3600"],
        );
        assert_eq!(out.trim(), "pod/plain created");
        let p = wait_running_on_node(&c, ns, "plain");
        assert_eq!(condition(&p, "PodScheduled")["status"], "True");
        let msg = wait_event(&c, ns, "plain", "Scheduled", |_| true);
        assert_eq!(msg, format!("Successfully assigned {ns}/plain to {node}"));
        let wide = k(
            &c,
            ns,
            &["get", "pod", "plain", "-o", "wide", "--no-headers"],
        );
        assert_contains(&wide, &node);
    });

    t.check(
        "a nodeSelector no node matches leaves the pod Pending",
        || {
            apply(
                &c,
                ns,
                &sleeper("picky", "  nodeSelector: {disktype: ssd}\n"),
            );
            let p = wait_unschedulable(&c, ns, "picky");
            assert!(p["spec"]["nodeName"].is_null(), "{}", p["spec"]);
            let cond_msg = condition(&p, "PodScheduled")["message"]
                .as_str()
                .unwrap_or("")
                .to_string();
            assert!(
                cond_msg.starts_with("0/1 nodes are available"),
                "PodScheduled message: {cond_msg}"
            );
            let msg = failed_scheduling(&c, ns, "picky");
            assert!(
                msg.starts_with("0/1 nodes are available"),
                "FailedScheduling message: {msg}"
            );
            assert_contains(&msg, "didn't match Pod's node affinity/selector");
            let row = k(&c, ns, &["get", "pod", "picky", "--no-headers"]);
            assert_contains(&row, "Pending");
        },
    );

    t.check("labelling the node lets the pending pod schedule", || {
        let out = c.kubectl_ok(&["label", "node", &node, "disktype=ssd"]);
        assert_eq!(out.trim(), format!("node/{node} labeled"));
        wait_running_on_node(&c, ns, "picky");
    });
    let _ = c.kubectl(&["label", "node", &node, "disktype-"]);

    t.check("a NoSchedule taint keeps non-tolerating pods off the node", || {
        let out = c.kubectl_ok(&["taint", "nodes", &node, "dedicated=e2e:NoSchedule"]);
        assert_eq!(out.trim(), format!("node/{node} tainted"));
        apply(&c, ns, &sleeper("intolerant", ""));
        apply(
            &c,
            ns,
            &sleeper(
                "tolerant",
                "  tolerations:\n  - {key: dedicated, operator: Equal, value: e2e, effect: NoSchedule}\n",
            ),
        );
        wait_running_on_node(&c, ns, "tolerant");
        wait_unschedulable(&c, ns, "intolerant");
        let msg = failed_scheduling(&c, ns, "intolerant");
        assert!(msg.starts_with("0/1 nodes are available"), "{msg}");
        assert_contains(&msg, "untolerated taint");
        // Pods already on the node are not affected by NoSchedule.
        let p = kj(&c, ns, &["get", "pod", "plain"]);
        assert_eq!(p["status"]["phase"], "Running");
    });

    t.check("removing the taint schedules the pending pod", || {
        let out = c.kubectl_ok(&["taint", "nodes", &node, "dedicated=e2e:NoSchedule-"]);
        assert_eq!(out.trim(), format!("node/{node} untainted"));
        wait_running_on_node(&c, ns, "intolerant");
    });
    let _ = c.kubectl(&["taint", "nodes", &node, "dedicated-"]);

    t.check("required node affinity is honoured both ways", || {
        let affinity = |op: &str| {
            format!(
                "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions:\n          - {{key: kubernetes.io/hostname, operator: {op}, values: [{node}]}}\n"
            )
        };
        apply(&c, ns, &sleeper("affine", &affinity("In")));
        apply(&c, ns, &sleeper("averse", &affinity("NotIn")));
        wait_running_on_node(&c, ns, "affine");
        wait_unschedulable(&c, ns, "averse");
        let msg = failed_scheduling(&c, ns, "averse");
        assert!(msg.starts_with("0/1 nodes are available"), "{msg}");
        assert_contains(&msg, "didn't match Pod's node affinity/selector");
    });

    t.check("topology spread: a missing topology label blocks DoNotSchedule only", || {
        let spread = |when: &str| {
            format!(
                "  topologySpreadConstraints:\n  - maxSkew: 1\n    topologyKey: topology.e2e.ferrokube.dev/rack\n    whenUnsatisfiable: {when}\n    labelSelector: {{matchLabels: {{spread: e2e}}}}\n"
            )
        };
        let with_label = |name: &str, when: &str| {
            sleeper(name, &spread(when)).replacen(
                &format!("labels: {{app: {name}}}"),
                &format!("labels: {{app: {name}, spread: e2e}}"),
                1,
            )
        };
        apply(&c, ns, &with_label("spread-hard", "DoNotSchedule"));
        apply(&c, ns, &with_label("spread-soft", "ScheduleAnyway"));
        wait_running_on_node(&c, ns, "spread-soft");
        wait_unschedulable(&c, ns, "spread-hard");
        let msg = failed_scheduling(&c, ns, "spread-hard");
        assert!(msg.starts_with("0/1 nodes are available"), "{msg}");
        assert_contains(&msg, "didn't match pod topology spread constraints");
    });

    t.check("a pod asking for more CPU than the node has stays Pending", || {
        apply(
            &c,
            ns,
            &sleeper("huge", "").replace(
                "    command: [\"sleep\", \"3600\"]\n",
                "    command: [\"sleep\", \"3600\"]\n    resources: {requests: {cpu: \"100000\"}}\n",
            ),
        );
        wait_unschedulable(&c, ns, "huge");
        let msg = failed_scheduling(&c, ns, "huge");
        assert!(msg.starts_with("0/1 nodes are available"), "{msg}");
        assert_contains(&msg, "Insufficient cpu");
    });

    t.check(
        "required pod anti-affinity leaves the second replica Pending",
        || {
            apply(
                &c,
                ns,
                r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: solo
spec:
  replicas: 2
  selector:
    matchLabels: {app: solo}
  template:
    metadata:
      labels: {app: solo}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector:
              matchLabels: {app: solo}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: c
        image: busybox
        command: ["sleep", "3600"]
"#,
            );
            let (running, pending) =
                eventually("one solo pod running, one pending", POD_START, || {
                    let ps = live_pods(&c, ns, "app=solo");
                    let running: Vec<&Value> = ps
                        .iter()
                        .filter(|p| p["status"]["phase"] == "Running")
                        .collect();
                    let pending: Vec<&Value> = ps
                        .iter()
                        .filter(|p| {
                            condition(p, "PodScheduled")["reason"] == "Unschedulable"
                                && p["spec"]["nodeName"].is_null()
                        })
                        .collect();
                    if ps.len() == 2 && running.len() == 1 && pending.len() == 1 {
                        Ok((name_of(running[0]), name_of(pending[0])))
                    } else {
                        Err(format!(
                            "{:?}",
                            ps.iter()
                                .map(|p| (
                                    name_of(p),
                                    p["spec"]["nodeName"].clone(),
                                    p["status"].clone()
                                ))
                                .collect::<Vec<_>>()
                        ))
                    }
                });
            let msg = failed_scheduling(&c, ns, &pending);
            assert!(msg.starts_with("0/1 nodes are available"), "{msg}");
            assert_contains(&msg, "anti-affinity");
            // It stays that way.
            std::thread::sleep(Duration::from_secs(3));
            let p = kj(&c, ns, &["get", "pod", &pending]);
            assert!(p["spec"]["nodeName"].is_null(), "{}", p["spec"]);
            let r = kj(&c, ns, &["get", "pod", &running]);
            assert_eq!(r["spec"]["nodeName"], node.as_str());
            let d = kj(&c, ns, &["get", "deployment", "solo"]);
            assert_eq!(d["status"]["availableReplicas"], 1, "{}", d["status"]);
        },
    );

    t.check("a higher-priority pod preempts a lower-priority one", || {
        let node_obj = c.kubectl_json(&["get", "node", &node]);
        let cpu = node_obj["status"]["allocatable"]["cpu"]
            .as_str()
            .unwrap_or_else(|| panic!("no allocatable cpu: {}", node_obj["status"]));
        let millis: u64 = match cpu.strip_suffix('m') {
            Some(m) => m.parse().unwrap(),
            None => cpu.parse::<u64>().unwrap() * 1000,
        };
        let req = format!("{}m", millis * 6 / 10);
        let with_cpu = |name: &str, extra: &str| {
            sleeper(name, extra).replace(
                "    command: [\"sleep\", \"3600\"]\n",
                &format!("    command: [\"sleep\", \"3600\"]\n    resources: {{requests: {{cpu: \"{req}\"}}}}\n"),
            )
        };
        c.kubectl_stdin_ok(
            &["apply", "-f", "-"],
            "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: e2e-high\nvalue: 1000000\n",
        );
        apply(&c, ns, &with_cpu("victim", ""));
        let v = wait_running_on_node(&c, ns, "victim");
        let victim_uid = v["metadata"]["uid"].clone();
        apply(&c, ns, &with_cpu("preemptor", "  priorityClassName: e2e-high\n"));
        let p = wait_running_on_node(&c, ns, "preemptor");
        assert_eq!(p["spec"]["priority"], 1000000, "{}", p["spec"]);
        let msg = wait_event(&c, ns, "victim", "Preempted", |_| true);
        assert_contains(&msg, &node);
        // The victim is gone (it was a bare pod: nothing recreates it).
        let out = c.kubectl(&["-n", ns, "get", "pod", "victim", "-o", "json"]);
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                v["metadata"]["uid"] != victim_uid || terminating(&v),
                "victim still running: {}",
                v["status"]
            );
        }
    });

    t.finish();
}
