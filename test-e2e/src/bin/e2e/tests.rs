//! The suite's tests, by group. Each covers a user story of the README or
//! docs/: what a user types and what they see.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::kubectl::{ensure, eventually};
use crate::{Ctx, Test, TestOutcome};

const POD_START: Duration = Duration::from_secs(120);

/// The images the suite runs: busybox for clients and workloads, the
/// project's HTTP test server for backends (overridable for other clusters).
fn busybox() -> String {
    std::env::var("E2E_BUSYBOX_IMAGE").unwrap_or_else(|_| "busybox:stable".into())
}
fn server_image() -> String {
    std::env::var("E2E_SERVER_IMAGE")
        .unwrap_or_else(|_| "docker.io/ferrokube/test-server:latest".into())
}

pub fn all() -> Vec<Test> {
    macro_rules! t {
        ($g:literal, $n:literal, $f:path) => {
            Test {
                group: $g,
                name: $n,
                run: $f,
            }
        };
    }
    vec![
        t!(
            "api-machinery",
            "namespaces isolate names",
            namespaces_isolate
        ),
        t!(
            "api-machinery",
            "bad input gets a Kubernetes error and changes nothing",
            bad_input
        ),
        t!(
            "api-machinery",
            "an operator written with kube-rs reconciles, updates and is garbage-collected",
            operator_loop
        ),
        t!(
            "apps",
            "a Deployment of three replicas behind a Service",
            deployment_behind_service
        ),
        t!(
            "apps",
            "rolling update and rollback",
            rolling_update_and_rollback
        ),
        t!("apps", "a Job runs to completion", job_completes),
        t!(
            "node",
            "ConfigMaps and Secrets from literals, consumed as env and volumes",
            configmaps_and_secrets
        ),
        t!(
            "node",
            "logs, exec and port-forward",
            logs_exec_port_forward
        ),
        t!(
            "node",
            "node failure and recovery",
            node_failure_and_recovery
        ),
        t!(
            "network",
            "a Pod and a Service: by ClusterIP and by DNS name",
            pod_and_service
        ),
        t!("network", "pods reach each other across nodes", pod_to_pod),
        t!(
            "storage",
            "a PersistentVolume and a claim: data outlives the pod",
            pv_and_pvc
        ),
        t!(
            "storage",
            "a claim of the default StorageClass is provisioned",
            dynamic_provisioning
        ),
        t!("cli", "the README's kubectl commands", readme_commands),
        t!(
            "scheduling",
            "nodeSelector and taints steer pods",
            node_selector_and_taints
        ),
    ]
}

// ---------------------------------------------------------------------------
// Helpers.

fn pod_yaml(name: &str, labels: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n{spec}")
}

/// A busybox pod named `client` that sleeps; waits until Ready.
fn client_pod(c: &Ctx, node: Option<&str>) -> Result<()> {
    let node = node
        .map(|n| format!("  nodeName: {n}\n"))
        .unwrap_or_default();
    c.k.apply(&pod_yaml(
        "client",
        "role: client",
        &format!(
            "{node}  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: {}\n    command: [sleep, \"3600\"]\n",
            busybox()
        ),
    ))?;
    c.k.wait_ready("pod/client", POD_START)
}

/// `wget -qO- URL` in the client pod.
fn fetch(c: &Ctx, url: &str) -> Result<String> {
    c.k.ok(&["exec", "client", "--", "wget", "-qO-", url])
        .map(|s| s.trim().to_string())
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"].as_str().unwrap_or("").to_string()
}

fn ready_nodes(c: &Ctx) -> Result<Vec<Value>> {
    Ok(items(&c.k.json(&["get", "nodes"])?)
        .into_iter()
        .filter(|n| {
            n["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .collect())
}

/// Ready nodes a plain pod may land on (no NoSchedule/NoExecute taints).
fn schedulable_nodes(c: &Ctx) -> Result<Vec<String>> {
    Ok(ready_nodes(c)?
        .into_iter()
        .filter(|n| n["spec"]["unschedulable"] != true)
        .filter(|n| {
            !n["spec"]["taints"].as_array().is_some_and(|ts| {
                ts.iter()
                    .any(|t| t["effect"] == "NoSchedule" || t["effect"] == "NoExecute")
            })
        })
        .map(|n| name_of(&n))
        .collect())
}

fn server_deployment(name: &str, replicas: u32) -> String {
    test_e2e::deployment_manifest(
        name,
        replicas,
        &format!(
            r#"      containers:
      - name: server
        image: {image}
        ports: [{{containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /readyz, port: 8080}}
          periodSeconds: 1
"#,
            image = server_image()
        ),
    )
}

// ---------------------------------------------------------------------------
// api-machinery

fn namespaces_isolate(c: &Ctx) -> TestOutcome {
    let other = format!("{}-other", c.ns);
    c.k.ok(&["create", "namespace", &other])?;
    let res = (|| -> Result<()> {
        c.k.ok(&["create", "configmap", "same", "--from-literal=who=first"])?;
        c.k.ok(&[
            "-n",
            &other,
            "create",
            "configmap",
            "same",
            "--from-literal=who=second",
        ])?;
        let a =
            c.k.ok(&["get", "configmap", "same", "-o", "jsonpath={.data.who}"])?;
        let b = c.k.ok(&[
            "-n",
            &other,
            "get",
            "configmap",
            "same",
            "-o",
            "jsonpath={.data.who}",
        ])?;
        ensure(a == "first" && b == "second", || format!("{a} / {b}"))?;
        let e =
            c.k.err(&["create", "configmap", "same", "--from-literal=who=again"])?;
        ensure(
            e.contains("AlreadyExists") || e.contains("already exists"),
            || e.clone(),
        )?;
        c.k.ok(&[
            "delete",
            "namespace",
            &other,
            "--wait=true",
            "--timeout=60s",
        ])?;
        let e = c.k.err(&["-n", &other, "get", "configmap", "same"])?;
        ensure(e.contains("NotFound") || e.contains("not found"), || {
            e.clone()
        })?;
        let a =
            c.k.ok(&["get", "configmap", "same", "-o", "jsonpath={.data.who}"])?;
        ensure(a == "first", || a.clone())
    })();
    let _ = c.k.ok(&[
        "delete",
        "namespace",
        &other,
        "--wait=false",
        "--ignore-not-found",
    ]);
    res.map(|_| None)
}

fn bad_input(c: &Ctx) -> TestOutcome {
    let out = c.k.run(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n"),
    );
    let e = String::from_utf8_lossy(&out.stderr);
    ensure(
        !out.status.success() && e.contains("Invalid value: \"Bad_Name\""),
        || e.to_string(),
    )?;
    let out = c.k.run(
        &["create", "--validate=strict", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\nsurprise: 1\n"),
    );
    let e = String::from_utf8_lossy(&out.stderr);
    ensure(
        !out.status.success() && e.contains("unknown field \"surprise\""),
        || e.to_string(),
    )?;
    let list = c.k.ok(&["get", "configmaps", "-o", "name"])?;
    ensure(!list.contains("configmap/ok"), || list.clone())?;
    Ok(None)
}

fn operator_loop(c: &Ctx) -> TestOutcome {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
    use kube::runtime::controller::{Action, Controller};
    use kube::runtime::watcher;
    use kube::{Api, Resource, ResourceExt};
    use std::sync::Arc;

    const ROLE: &str = "e2e.ferrokube.dev/role";

    async fn reconcile(
        src: Arc<ConfigMap>,
        api: Arc<Api<ConfigMap>>,
    ) -> Result<Action, kube::Error> {
        let name = format!("{}-copy", src.name_any());
        let mut copy = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(ROLE.to_string(), "copy".to_string())].into()),
                owner_references: src.controller_owner_ref(&()).map(|o| vec![o]),
                ..Default::default()
            },
            data: src.data.clone(),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &copy).await {
            Err(kube::Error::Api(s)) if s.code == 409 => {
                copy.metadata.owner_references = None;
                let patch = serde_json::json!({"data": copy.data});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            r => {
                r?;
            }
        }
        Ok(Action::await_change())
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(&c.kubeconfig)?;
        let opts = kube::config::KubeConfigOptions {
            context: c.context.clone(),
            ..Default::default()
        };
        let client =
            kube::Client::try_from(kube::Config::from_custom_kubeconfig(kc, &opts).await?)?;
        let api: Api<ConfigMap> = Api::namespaced(client, &c.ns);
        let shared = Arc::new(api.clone());
        let controller = Controller::new(
            api.clone(),
            watcher::Config::default().labels(&format!("{ROLE}=source")),
        )
        .owns(
            api.clone(),
            watcher::Config::default().labels(&format!("{ROLE}=copy")),
        )
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            shared,
        )
        .for_each(|_| async {});
        let handle = tokio::spawn(controller);

        let src: ConfigMap = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "labels": {ROLE: "source"}},
            "data": {"color": "blue"}
        }))?;
        api.create(&PostParams::default(), &src).await?;
        let wait_copy = |want: &'static str| {
            let api = api.clone();
            async move {
                for _ in 0..60 {
                    if let Ok(cm) = api.get("settings-copy").await {
                        if cm
                            .data
                            .as_ref()
                            .and_then(|d| d.get("color"))
                            .map(String::as_str)
                            == Some(want)
                        {
                            return Ok(cm);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(anyhow!("settings-copy never had color={want}"))
            }
        };
        let copy = wait_copy("blue").await?;
        let owner = copy.owner_references().first().map(|o| o.name.clone());
        ensure(owner.as_deref() == Some("settings"), || {
            format!("owner {owner:?}")
        })?;
        // Seen through kubectl too.
        let shown = c.k.ok(&[
            "get",
            "configmap",
            "settings-copy",
            "-o",
            "jsonpath={.data.color}",
        ])?;
        ensure(shown == "blue", || shown.clone())?;
        api.patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"data": {"color": "green"}})),
        )
        .await?;
        wait_copy("green").await?;
        handle.abort();
        // Deleting the owner removes the copy (garbage collector).
        c.k.ok(&["delete", "configmap", "settings"])?;
        eventually(
            "the copy to be garbage-collected",
            Duration::from_secs(60),
            || {
                let out = c.k.ok(&["get", "configmaps", "-o", "name"])?;
                ensure(!out.contains("settings-copy"), || out.clone())
            },
        )?;
        anyhow::Ok(None)
    })
}

// ---------------------------------------------------------------------------
// apps

fn deployment_behind_service(c: &Ctx) -> TestOutcome {
    c.k.apply(&server_deployment("web", 3))?;
    c.k.ok(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ])?;
    c.k.ok(&["rollout", "status", "deployment/web", "--timeout=120s"])?;
    let pods: BTreeSet<String> = items(&c.k.json(&["get", "pods", "-l", "app=web"])?)
        .iter()
        .map(name_of)
        .collect();
    ensure(pods.len() == 3, || format!("{pods:?}"))?;
    let eps = eventually("three endpoints", Duration::from_secs(30), || {
        let e = c.k.json(&["get", "endpoints", "web"])?;
        let n = e["subsets"][0]["addresses"].as_array().map_or(0, Vec::len);
        ensure(n == 3, || format!("{n} endpoints"))
    });
    eps?;
    client_pod(c, None)?;
    let mut seen = BTreeSet::new();
    for _ in 0..15 {
        seen.insert(fetch(
            c,
            &format!("http://web.{}.svc.cluster.local/hostname", c.ns),
        )?);
    }
    ensure(seen.is_subset(&pods) && seen.len() >= 2, || {
        format!("{seen:?} of {pods:?}")
    })?;
    Ok(None)
}

fn rolling_update_and_rollback(c: &Ctx) -> TestOutcome {
    c.k.ok(&[
        "create",
        "deployment",
        "app",
        "--image=busybox:latest",
        "--replicas=2",
        "--",
        "sleep",
        "3600",
    ])?;
    c.k.ok(&["rollout", "status", "deployment/app", "--timeout=120s"])?;
    c.k.ok(&["set", "image", "deployment/app", "busybox=busybox:stable"])?;
    c.k.ok(&["rollout", "status", "deployment/app", "--timeout=120s"])?;
    // Old pods may still be terminating: look at the live ones.
    eventually("only new pods", Duration::from_secs(60), || {
        let live: Vec<String> = items(&c.k.json(&["get", "pods", "-l", "app=app"])?)
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| {
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        ensure(
            live.len() == 2 && live.iter().all(|i| i == "busybox:stable"),
            || format!("{live:?}"),
        )
    })?;
    let history = c.k.ok(&["rollout", "history", "deployment/app"])?;
    ensure(history.contains("1 ") && history.contains("2 "), || {
        history.clone()
    })?;
    c.k.ok(&["rollout", "undo", "deployment/app"])?;
    c.k.ok(&["rollout", "status", "deployment/app", "--timeout=120s"])?;
    let image = c.k.ok(&[
        "get",
        "deployment",
        "app",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])?;
    ensure(image == "busybox:latest", || image.clone())?;
    Ok(None)
}

fn job_completes(c: &Ctx) -> TestOutcome {
    c.k.ok(&[
        "create",
        "job",
        "pi",
        &format!("--image={}", busybox()),
        "--",
        "sh",
        "-c",
        "echo done",
    ])?;
    c.k.ok(&[
        "wait",
        "--for=condition=Complete",
        "job/pi",
        "--timeout=120s",
    ])?;
    let logs = c.k.ok(&["logs", "job/pi"])?;
    ensure(logs.trim() == "done", || logs.clone())?;
    Ok(None)
}

// ---------------------------------------------------------------------------
// node

fn configmaps_and_secrets(c: &Ctx) -> TestOutcome {
    c.k.ok(&[
        "create",
        "configmap",
        "app-config",
        "--from-literal=greeting=hello",
        "--from-literal=mode=fast",
    ])?;
    c.k.ok(&[
        "create",
        "secret",
        "generic",
        "app-secret",
        "--from-literal=password=s3cr3t",
    ])?;
    c.k.apply(&pod_yaml(
        "consumer",
        "app: consumer",
        &format!(
            r#"  containers:
  - name: c
    image: {}
    command: [sleep, "3600"]
    envFrom: [{{configMapRef: {{name: app-config}}}}]
    env:
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: app-secret, key: password}}}}
    volumeMounts:
    - {{name: config, mountPath: /etc/app}}
    - {{name: secret, mountPath: /etc/secret, readOnly: true}}
  volumes:
  - {{name: config, configMap: {{name: app-config}}}}
  - {{name: secret, secret: {{secretName: app-secret}}}}
"#,
            busybox()
        ),
    ))?;
    c.k.wait_ready("pod/consumer", POD_START)?;
    let env = c.k.ok(&["exec", "consumer", "--", "env"])?;
    for want in ["greeting=hello", "mode=fast", "PASSWORD=s3cr3t"] {
        ensure(env.lines().any(|l| l == want), || {
            format!("no {want} in\n{env}")
        })?;
    }
    let file =
        c.k.ok(&["exec", "consumer", "--", "cat", "/etc/app/greeting"])?;
    ensure(file == "hello", || file.clone())?;
    let secret =
        c.k.ok(&["exec", "consumer", "--", "cat", "/etc/secret/password"])?;
    ensure(secret == "s3cr3t", || secret.clone())?;
    // A change to the ConfigMap reaches the mounted file.
    c.k.ok(&[
        "patch",
        "configmap",
        "app-config",
        "-p",
        r#"{"data":{"greeting":"bonjour"}}"#,
    ])?;
    eventually(
        "the volume to follow the ConfigMap",
        Duration::from_secs(90),
        || {
            let f =
                c.k.ok(&["exec", "consumer", "--", "cat", "/etc/app/greeting"])?;
            ensure(f == "bonjour", || f.clone())
        },
    )?;
    Ok(None)
}

fn logs_exec_port_forward(c: &Ctx) -> TestOutcome {
    c.k.ok(&[
        "run",
        "hello",
        &format!("--image={}", busybox()),
        "--",
        "sh",
        "-c",
        "echo hello from the pod; sleep 3600",
    ])?;
    c.k.wait_ready("pod/hello", POD_START)?;
    let logs = eventually("the pod's output", Duration::from_secs(30), || {
        let l = c.k.ok(&["logs", "hello"])?;
        ensure(l.contains("hello from the pod"), || l.clone()).map(|_| l)
    })?;
    ensure(logs.trim() == "hello from the pod", || logs.clone())?;
    let out =
        c.k.ok(&["exec", "hello", "--", "sh", "-c", "echo $((6*7))"])?;
    ensure(out.trim() == "42", || out.clone())?;
    let r =
        c.k.run(&["exec", "hello", "--", "sh", "-c", "exit 3"], None);
    ensure(r.status.code() == Some(3), || format!("{:?}", r.status))?;

    c.k.apply(&pod_yaml(
        "web",
        "app: web",
        &format!(
            "  containers:\n  - name: web\n    image: {}\n    ports: [{{containerPort: 8080}}]\n    readinessProbe: {{httpGet: {{path: /readyz, port: 8080}}, periodSeconds: 1}}\n",
            server_image()
        ),
    ))?;
    c.k.wait_ready("pod/web", POD_START)?;
    let mut child = c.k.spawn(&["port-forward", "pod/web", ":8080"])?;
    let res = (|| -> Result<String> {
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line)?;
        // Keep draining kubectl's output: a closed pipe would kill it at its
        // next "Handling connection" line.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        // "Forwarding from 127.0.0.1:PORT -> 8080"
        let port: u16 = line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow!("no port in {line:?}"))?;
        // The server may still be starting behind the tunnel: retry.
        eventually(
            "an answer through the tunnel",
            Duration::from_secs(20),
            || {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                write!(s, "GET /hostname HTTP/1.0\r\nHost: x\r\n\r\n")?;
                let mut body = String::new();
                s.read_to_string(&mut body)?;
                ensure(body.starts_with("HTTP/1."), || body.clone()).map(|_| body)
            },
        )
    })();
    let _ = child.kill();
    let _ = child.wait();
    let body = res?;
    ensure(
        body.ends_with("web") || body.trim_end().ends_with("web"),
        || body.clone(),
    )?;
    Ok(None)
}

fn node_failure_and_recovery(c: &Ctx) -> TestOutcome {
    let Some(cluster) = &c.ferrokube_cluster else {
        return Ok(Some("needs --ferrokube-cluster to break a node".into()));
    };
    let nodes = schedulable_nodes(c)?;
    if nodes.len() < 2 {
        return Ok(Some(format!(
            "needs two schedulable nodes, found {nodes:?}"
        )));
    }
    let victim = nodes[0].clone();
    c.k.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: survivor}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: survivor}}}}
  template:
    metadata: {{labels: {{app: survivor}}}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
      - {{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}}
      - {{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}}
      affinity:
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            preference: {{matchExpressions: [{{key: kubernetes.io/hostname, operator: In, values: [{victim}]}}]}}
      containers:
      - {{name: c, image: "{}", command: [sleep, "3600"]}}
"#,
        busybox()
    ))?;
    c.k.ok(&["rollout", "status", "deployment/survivor", "--timeout=120s"])?;
    // Break the node: kill its kubelet (the machine's agent dies).
    let home = std::env::var_os("FERROKUBE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".ferrokube"))
        })
        .ok_or_else(|| anyhow!("no FERROKUBE_HOME or HOME"))?;
    let state: Value = serde_json::from_slice(
        &std::fs::read(home.join("clusters").join(cluster).join("cluster.json"))
            .context("reading the cluster's state")?,
    )?;
    let pid = state["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == format!("kubelet-{victim}")))
        .and_then(|p| p["pid"].as_i64())
        .ok_or_else(|| anyhow!("no kubelet recorded for {victim}"))?;
    // SAFETY: kill(2) on the kubelet pid ferrokube recorded.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    let recover = || -> Result<()> {
        let ferrokube = test_e2e::bin_dir().join("ferrokube");
        let out = std::process::Command::new(ferrokube)
            .args(["restart", "kubelet", "--name", cluster, "--node", &victim])
            .output()?;
        ensure(out.status.success(), || {
            String::from_utf8_lossy(&out.stderr).to_string()
        })
    };
    let res = (|| -> Result<()> {
        eventually("the node to go NotReady", Duration::from_secs(150), || {
            let n = c.k.json(&["get", "node", &victim])?;
            let ready = n["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .map(|c| c["status"].clone());
            ensure(ready != Some(Value::from("True")), || format!("{ready:?}"))
        })?;
        eventually(
            "both replicas running elsewhere",
            Duration::from_secs(120),
            || {
                let pods = items(&c.k.json(&["get", "pods", "-l", "app=survivor"])?);
                let live: Vec<&Value> = pods
                    .iter()
                    .filter(|p| {
                        p["metadata"]["deletionTimestamp"].is_null()
                            && p["status"]["phase"] == "Running"
                    })
                    .collect();
                ensure(
                    live.len() == 2
                        && live
                            .iter()
                            .all(|p| p["spec"]["nodeName"] != victim.as_str()),
                    || format!("{} running", live.len()),
                )
            },
        )?;
        Ok(())
    })();
    recover()?;
    res?;
    eventually("the node Ready again", Duration::from_secs(90), || {
        let n = c.k.json(&["get", "node", &victim])?;
        let ok = n["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        let tainted = n["spec"]["taints"].as_array().is_some_and(|ts| {
            ts.iter()
                .any(|t| t["key"] == "node.kubernetes.io/unreachable")
        });
        ensure(ok && !tainted, || "not recovered yet".into())
    })?;
    Ok(None)
}

// ---------------------------------------------------------------------------
// network

fn pod_and_service(c: &Ctx) -> TestOutcome {
    c.k.apply(&pod_yaml(
        "backend",
        "app: backend",
        &format!(
            "  containers:\n  - name: web\n    image: {}\n    ports: [{{containerPort: 8080}}]\n    readinessProbe: {{httpGet: {{path: /readyz, port: 8080}}, periodSeconds: 1}}\n",
            server_image()
        ),
    ))?;
    c.k.apply("apiVersion: v1\nkind: Service\nmetadata:\n  name: backend\nspec:\n  selector: {app: backend}\n  ports: [{port: 80, targetPort: 8080}]\n")?;
    c.k.wait_ready("pod/backend", POD_START)?;
    client_pod(c, None)?;
    let ip = c.k.ok(&[
        "get",
        "service",
        "backend",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ])?;
    let by_ip = eventually("the ClusterIP to answer", Duration::from_secs(30), || {
        fetch(c, &format!("http://{ip}/hostname"))
    })?;
    ensure(by_ip == "backend", || by_ip.clone())?;
    let by_name = eventually("the DNS name to answer", Duration::from_secs(30), || {
        fetch(
            c,
            &format!("http://backend.{}.svc.cluster.local/hostname", c.ns),
        )
    })?;
    ensure(by_name == "backend", || by_name.clone())?;
    let short = fetch(c, "http://backend/echo?msg=short-name")?;
    ensure(short == "short-name", || short.clone())?;
    let lookup = c.k.ok(&[
        "exec",
        "client",
        "--",
        "nslookup",
        "kubernetes.default.svc.cluster.local",
    ])?;
    ensure(
        lookup.contains("10.96.0.1") || lookup.contains("Address"),
        || lookup.clone(),
    )?;
    Ok(None)
}

fn pod_to_pod(c: &Ctx) -> TestOutcome {
    let nodes = schedulable_nodes(c)?;
    if nodes.len() < 2 {
        return Ok(Some(format!(
            "needs two schedulable nodes, found {nodes:?}"
        )));
    }
    c.k.apply(&pod_yaml(
        "far",
        "app: far",
        &format!(
            "  nodeName: {}\n  containers:\n  - name: web\n    image: {}\n",
            nodes[1],
            server_image()
        ),
    ))?;
    c.k.wait_ready("pod/far", POD_START)?;
    client_pod(c, Some(&nodes[0]))?;
    let ip =
        c.k.ok(&["get", "pod", "far", "-o", "jsonpath={.status.podIP}"])?;
    let client_ip =
        c.k.ok(&["get", "pod", "client", "-o", "jsonpath={.status.podIP}"])?;
    let host = fetch(c, &format!("http://{ip}:8080/hostname"))?;
    ensure(host == "far", || host.clone())?;
    let seen = fetch(c, &format!("http://{ip}:8080/clientip"))?;
    ensure(seen.starts_with(&format!("{client_ip}:")), || {
        format!("{seen} vs {client_ip}")
    })?;
    Ok(None)
}

// ---------------------------------------------------------------------------
// storage

fn pv_and_pvc(c: &Ctx) -> TestOutcome {
    let pv = format!("{}-pv", c.ns);
    let dir = format!("/tmp/{pv}");
    c.k.apply(&format!(
        r#"apiVersion: v1
kind: PersistentVolume
metadata: {{name: {pv}, labels: {{e2e: "{ns}"}}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  persistentVolumeReclaimPolicy: Delete
  hostPath: {{path: {dir}, type: DirectoryOrCreate}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data}}
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 500Mi}}}}
  selector: {{matchLabels: {{e2e: "{ns}"}}}}
"#,
        ns = c.ns
    ))?;
    let res = (|| -> Result<()> {
        eventually("the claim to bind", Duration::from_secs(60), || {
            let phase =
                c.k.ok(&["get", "pvc", "data", "-o", "jsonpath={.status.phase}"])?;
            ensure(phase == "Bound", || phase.clone())
        })?;
        let writer = |name: &str, cmd: &str, node: Option<&str>| {
            let node = node
                .map(|n| format!("  nodeName: {n}\n"))
                .unwrap_or_default();
            pod_yaml(
                name,
                "app: storage",
                &format!(
                    "{node}  restartPolicy: Never\n  containers:\n  - name: c\n    image: {}\n    command: [sh, -c, '{cmd}']\n    volumeMounts: [{{name: data, mountPath: /data}}]\n  volumes:\n  - {{name: data, persistentVolumeClaim: {{claimName: data}}}}\n",
                    busybox()
                ),
            )
        };
        c.k.apply(&writer("writer", "echo persisted > /data/file", None))?;
        c.k.ok(&[
            "wait",
            "--for=jsonpath={.status.phase}=Succeeded",
            "pod/writer",
            "--timeout=120s",
        ])?;
        let node =
            c.k.ok(&["get", "pod", "writer", "-o", "jsonpath={.spec.nodeName}"])?;
        c.k.ok(&["delete", "pod", "writer"])?;
        c.k.apply(&writer("reader", "cat /data/file", Some(&node)))?;
        c.k.ok(&[
            "wait",
            "--for=jsonpath={.status.phase}=Succeeded",
            "pod/reader",
            "--timeout=120s",
        ])?;
        let out = c.k.ok(&["logs", "reader"])?;
        ensure(out.trim() == "persisted", || out.clone())
    })();
    let _ =
        c.k.ok(&["delete", "pod", "--all", "--wait=true", "--timeout=60s"]);
    let _ = c.k.ok(&["delete", "pvc", "data", "--wait=false"]);
    let _ = c.k.ok(&["delete", "pv", &pv, "--wait=false"]);
    res.map(|_| None)
}

fn dynamic_provisioning(c: &Ctx) -> TestOutcome {
    let classes = items(&c.k.json(&["get", "storageclasses"])?);
    let default = classes.iter().find(|sc| {
        sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    });
    let Some(default) = default else {
        return Ok(Some("the cluster has no default StorageClass".into()));
    };
    let class = name_of(default);
    c.k.apply(&format!(
        r#"apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: dyn}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 100Mi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: user}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: {}
    command: [sh, -c, 'echo ok > /data/f && cat /data/f']
    volumeMounts: [{{name: d, mountPath: /data}}]
  volumes:
  - {{name: d, persistentVolumeClaim: {{claimName: dyn}}}}
"#,
        busybox()
    ))?;
    let sc = c.k.ok(&[
        "get",
        "pvc",
        "dyn",
        "-o",
        "jsonpath={.spec.storageClassName}",
    ])?;
    ensure(sc == class, || format!("class {sc:?}, default {class:?}"))?;
    c.k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/user",
        "--timeout=120s",
    ])?;
    let phase =
        c.k.ok(&["get", "pvc", "dyn", "-o", "jsonpath={.status.phase}"])?;
    ensure(phase == "Bound", || phase.clone())?;
    let pv =
        c.k.ok(&["get", "pvc", "dyn", "-o", "jsonpath={.spec.volumeName}"])?;
    c.k.ok(&["delete", "pod", "user"])?;
    c.k.ok(&["delete", "pvc", "dyn"])?;
    // Reclaim policy Delete: the volume goes with the claim.
    eventually(
        "the provisioned volume to be deleted",
        Duration::from_secs(60),
        || {
            let out = c.k.ok(&["get", "pv", "-o", "name"])?;
            ensure(!out.contains(&pv), || out.clone())
        },
    )?;
    Ok(None)
}

// ---------------------------------------------------------------------------
// cli

fn readme_commands(c: &Ctx) -> TestOutcome {
    // The README's commands, as printed (in this test's namespace).
    c.k.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=3",
        "--",
        "sleep",
        "3600",
    ])?;
    c.k.ok(&["rollout", "status", "deployment/web", "--timeout=120s"])?;
    c.k.ok(&["scale", "deployment/web", "--replicas=1"])?;
    eventually("one replica", Duration::from_secs(60), || {
        let n = c.k.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.replicas}",
        ])?;
        ensure(n == "1", || n.clone())
    })?;
    c.k.ok(&["expose", "deployment", "web", "--port=80"])?;
    let svc = c.k.ok(&["get", "service", "web"])?;
    ensure(svc.contains("ClusterIP") && svc.contains("80/TCP"), || {
        svc.clone()
    })?;
    c.k.ok(&[
        "run",
        "hello",
        "--image=busybox",
        "--",
        "sh",
        "-c",
        "while true; do echo hello; sleep 5; done",
    ])?;
    c.k.wait_ready("pod/hello", POD_START)?;
    eventually("hello in the logs", Duration::from_secs(30), || {
        let l = c.k.ok(&["logs", "hello"])?;
        ensure(l.contains("hello"), || l.clone())
    })?;
    let out =
        c.k.ok(&["exec", "hello", "--", "sh", "-c", "echo inside"])?;
    ensure(out.trim() == "inside", || out.clone())?;
    let got = c.k.ok(&["get", "all"])?;
    for want in ["deployment.apps/web", "service/web", "pod/hello"] {
        ensure(got.contains(want), || format!("no {want} in\n{got}"))?;
    }
    Ok(None)
}

// ---------------------------------------------------------------------------
// scheduling

fn node_selector_and_taints(c: &Ctx) -> TestOutcome {
    let nodes = schedulable_nodes(c)?;
    let Some(target) = nodes.last().cloned() else {
        bail!("no schedulable node");
    };
    let label = format!("e2e-{}", c.ns);
    c.k.ok(&[
        "label",
        "node",
        &target,
        &format!("e2e.ferrokube.dev/pick={label}"),
    ])?;
    let res = (|| -> Result<()> {
        c.k.apply(&pod_yaml(
            "picky",
            "app: picky",
            &format!(
                "  nodeSelector: {{e2e.ferrokube.dev/pick: {label}}}\n  containers:\n  - name: c\n    image: {}\n    command: [sleep, \"3600\"]\n",
                busybox()
            ),
        ))?;
        c.k.wait_ready("pod/picky", POD_START)?;
        let node =
            c.k.ok(&["get", "pod", "picky", "-o", "jsonpath={.spec.nodeName}"])?;
        ensure(node == target, || format!("{node} != {target}"))?;
        c.k.apply(&pod_yaml(
            "nowhere",
            "app: nowhere",
            &format!(
                "  nodeSelector: {{e2e.ferrokube.dev/pick: no-such-node}}\n  containers:\n  - name: c\n    image: {}\n",
                busybox()
            ),
        ))?;
        let msg = eventually("FailedScheduling", Duration::from_secs(30), || {
            let ev = c.k.ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=nowhere,reason=FailedScheduling",
                "-o",
                "jsonpath={.items[*].message}",
            ])?;
            ensure(ev.contains("nodes are available"), || ev.clone()).map(|_| ev)
        })?;
        ensure(
            msg.contains("didn't match Pod's node affinity/selector"),
            || msg.clone(),
        )?;
        // A NoSchedule taint keeps new pods off unless they tolerate it.
        c.k.ok(&[
            "taint",
            "node",
            &target,
            &format!("e2e.ferrokube.dev/taint={label}:NoSchedule"),
        ])?;
        c.k.apply(&pod_yaml(
            "tolerant",
            "app: tolerant",
            &format!(
                "  nodeSelector: {{e2e.ferrokube.dev/pick: {label}}}\n  tolerations: [{{key: e2e.ferrokube.dev/taint, operator: Exists, effect: NoSchedule}}]\n  containers:\n  - name: c\n    image: {}\n    command: [sleep, \"3600\"]\n",
                busybox()
            ),
        ))?;
        c.k.apply(&pod_yaml(
            "intolerant",
            "app: intolerant",
            &format!(
                "  nodeSelector: {{e2e.ferrokube.dev/pick: {label}}}\n  containers:\n  - name: c\n    image: {}\n",
                busybox()
            ),
        ))?;
        c.k.wait_ready("pod/tolerant", POD_START)?;
        let msg = eventually(
            "FailedScheduling for the intolerant pod",
            Duration::from_secs(30),
            || {
                let ev = c.k.ok(&[
                    "get",
                    "events",
                    "--field-selector",
                    "involvedObject.name=intolerant,reason=FailedScheduling",
                    "-o",
                    "jsonpath={.items[*].message}",
                ])?;
                ensure(ev.contains("untolerated taint"), || ev.clone()).map(|_| ev)
            },
        )?;
        ensure(msg.contains("e2e.ferrokube.dev/taint"), || msg.clone())
    })();
    let _ =
        c.k.ok(&["taint", "node", &target, "e2e.ferrokube.dev/taint-"]);
    let _ =
        c.k.ok(&["label", "node", &target, "e2e.ferrokube.dev/pick-"]);
    res.map(|_| None)
}
