//! Pods really running on a ferrokube node (containerd through CRI, CNI
//! networking), driven with stock kubectl: logs, exec, attach, cp,
//! port-forward, probes, init containers, volumes, env, restarts, graceful
//! deletion, error reasons and the Node itself.
//!
//! Most pods here name their node in `spec.nodeName` (the single node of a
//! `ferrokube create cluster` is `<cluster>-control-plane`, as kind names
//! it), so these tests exercise the kubelet without depending on the
//! scheduler; the README's commands go through the scheduler.

use std::time::{Duration, Instant};

use serde_json::Value;
use test_e2e::{assert_contains, describe_output, eventually, Checks, Cluster, LineReader};

const POD_START: Duration = Duration::from_secs(90);

fn node_name(c: &Cluster) -> String {
    format!("{}-control-plane", c.name)
}

fn pod(c: &Cluster, name: &str) -> Value {
    c.kubectl_json(&["get", "pod", name, "-o", "json"])
}

fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("")
}

fn container_status<'a>(p: &'a Value, container: &str) -> &'a Value {
    p["status"]["containerStatuses"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == container))
        .unwrap_or(&Value::Null)
}

fn condition<'a>(p: &'a Value, ty: &str) -> &'a str {
    test_e2e::condition(p, ty)["status"].as_str().unwrap_or("")
}

/// Wait until the pod's Ready condition is True; returns the pod.
fn wait_ready(c: &Cluster, name: &str) -> Value {
    eventually(&format!("pod {name} Ready"), POD_START, || {
        let p = pod(c, name);
        if condition(&p, "Ready") == "True" {
            Ok(p)
        } else {
            Err(format!("status: {}", p["status"]))
        }
    })
}

/// Wait until a container's waiting reason is `reason`; returns the pod.
fn wait_waiting_reason(c: &Cluster, name: &str, container: &str, reason: &str) -> Value {
    eventually(
        &format!("pod {name} container {container} waiting with {reason}"),
        POD_START,
        || {
            let p = pod(c, name);
            if container_status(&p, container)["state"]["waiting"]["reason"] == reason {
                Ok(p)
            } else {
                Err(format!("status: {}", p["status"]))
            }
        },
    )
}

/// A pod manifest on this cluster's node; `spec` is YAML indented by four
/// spaces (the body of `spec:` after `nodeName`).
fn pod_yaml(c: &Cluster, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\nspec:\n  nodeName: {}\n{spec}",
        node_name(c)
    )
}

fn apply_pod(c: &Cluster, name: &str, spec: &str) {
    let out = c.kubectl_stdin_ok(&["apply", "-f", "-"], &pod_yaml(c, name, spec));
    assert_contains(&out, &format!("pod/{name}"));
}

/// Logs of a pod's container, as `kubectl logs` prints them.
fn logs(c: &Cluster, args: &[&str]) -> String {
    let mut a = vec!["logs"];
    a.extend_from_slice(args);
    c.kubectl_ok(&a)
}

/// Wait for a line in `kubectl port-forward`'s output and return the local port.
fn forwarded_port(reader: &mut LineReader) -> u16 {
    let line = reader
        .wait_for(Duration::from_secs(30), |l| {
            l.starts_with("Forwarding from 127.0.0.1:")
        })
        .unwrap_or_else(|| panic!("port-forward printed no address: {:?}", reader.seen));
    line.trim_start_matches("Forwarding from 127.0.0.1:")
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse port from {line:?}"))
}

/// A GET to a loopback port with curl; returns the body.
fn http_get(url: &str) -> Result<String, String> {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", url])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(describe_output("curl", &out))
    }
}

/// Streaming and interactive access to running containers.
#[test]
fn logs_exec_attach_cp_port_forward() {
    let c = Cluster::create();
    let mut t = Checks::new("logs_exec_attach_cp_port_forward");

    apply_pod(
        &c,
        "hello",
        r#"  containers:
  - name: hello
    image: busybox
    command: ["sh", "-c", "echo hello from busybox; echo to stderr >&2; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"]
"#,
    );
    apply_pod(
        &c,
        "web",
        r#"  containers:
  - name: web
    image: docker.io/ferrokube/test-server:latest
    ports:
    - containerPort: 8080
"#,
    );

    t.check("the README's commands work as printed", || {
        let out = c.kubectl_ok(&[
            "create",
            "deployment",
            "web-readme",
            "--image=busybox",
            "--replicas=3",
            "--",
            "sleep",
            "3600",
        ]);
        assert_eq!(out.trim(), "deployment.apps/web-readme created");
        let out = c.kubectl_ok(&[
            "rollout",
            "status",
            "deployment/web-readme",
            "--timeout=120s",
        ]);
        assert_contains(&out, "successfully rolled out");
        let out = c.kubectl_ok(&[
            "run",
            "readme",
            "--image=busybox",
            "--",
            "sh",
            "-c",
            "while true; do echo hello; sleep 5; done",
        ]);
        assert_eq!(out.trim(), "pod/readme created");
        let p = wait_ready(&c, "readme");
        assert_eq!(p["spec"]["nodeName"], node_name(&c).as_str());
        eventually("readme logs", Duration::from_secs(20), || {
            let out = logs(&c, &["readme"]);
            if out.starts_with("hello\n") {
                Ok(())
            } else {
                Err(out)
            }
        });
    });

    t.check("busybox pod becomes Running and Ready", || {
        let p = wait_ready(&c, "hello");
        assert_eq!(phase(&p), "Running");
        let cs = container_status(&p, "hello");
        assert_eq!(cs["ready"], true, "{cs}");
        assert_eq!(cs["started"], true, "{cs}");
        assert_eq!(cs["restartCount"], 0, "{cs}");
        assert!(
            cs["containerID"]
                .as_str()
                .unwrap_or("")
                .starts_with("containerd://"),
            "{cs}"
        );
        assert!(
            cs["imageID"].as_str().unwrap_or("").contains("sha256:"),
            "{cs}"
        );
        assert!(cs["state"]["running"]["startedAt"].is_string(), "{cs}");
        assert!(
            p["status"]["podIP"]
                .as_str()
                .unwrap_or("")
                .starts_with("10."),
            "{}",
            p["status"]
        );
        assert!(
            p["status"]["hostIP"]
                .as_str()
                .unwrap_or("")
                .starts_with("10.200."),
            "{}",
            p["status"]
        );
        assert_eq!(p["status"]["qosClass"], "BestEffort");
        assert!(p["status"]["startTime"].is_string());
        for ty in [
            "PodScheduled",
            "PodReadyToStartContainers",
            "Initialized",
            "ContainersReady",
            "Ready",
        ] {
            assert_eq!(condition(&p, ty), "True", "{ty} in {}", p["status"]);
        }
    });

    t.check("kubectl get pods -o wide shows the node and IP", || {
        let out = c.kubectl_ok(&["get", "pod", "hello", "-o", "wide"]);
        assert_contains(&out, "Running");
        assert_contains(&out, &node_name(&c));
    });

    t.check("kubectl logs shows stdout and stderr", || {
        let out = eventually("tick 2 in logs", Duration::from_secs(20), || {
            let out = logs(&c, &["hello"]);
            if out.contains("tick 2") {
                Ok(out)
            } else {
                Err(out)
            }
        });
        // stdout lines keep their order; stderr is a separate stream, so
        // its line may come before or after them.
        let stdout: Vec<&str> = out.lines().filter(|l| *l != "to stderr").collect();
        assert_eq!(stdout[..2], ["hello from busybox", "tick 0"], "{out}");
        assert!(out.lines().any(|l| l == "to stderr"), "{out}");
    });

    t.check("kubectl logs --tail, -c, --timestamps, --since", || {
        let out = logs(&c, &["hello", "--tail=1"]);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.starts_with("tick "), "{out}");
        let out = logs(&c, &["hello", "-c", "hello", "--timestamps", "--tail=2"]);
        for line in out.lines() {
            let (ts, rest) = line.split_once(' ').unwrap_or_else(|| panic!("{line}"));
            assert!(
                ts.len() >= 20 && ts.contains('T') && ts.ends_with('Z'),
                "timestamp {ts:?} in {out}"
            );
            assert!(rest.starts_with("tick "), "{out}");
        }
        let out = logs(&c, &["hello", "--since=1h"]);
        assert_contains(&out, "hello from busybox");
        let err = c.kubectl_err(&["logs", "hello", "-c", "nope"]);
        assert_contains(&err, "container nope is not valid for pod hello");
    });

    t.check("kubectl logs -f follows new lines", || {
        let mut child = c.spawn_kubectl(&["logs", "-f", "hello", "--tail=1"]);
        let mut r = LineReader::new(child.stdout.take().unwrap());
        let first = r
            .wait_for(Duration::from_secs(15), |l| l.starts_with("tick "))
            .unwrap_or_else(|| panic!("no first line: {:?}", r.seen));
        let n: u64 = first[5..].parse().unwrap();
        let later = format!("tick {}", n + 3);
        let got = r.wait_for(Duration::from_secs(20), |l| l == later);
        let _ = child.kill();
        let _ = child.wait();
        assert!(got.is_some(), "never saw {later:?}: {:?}", r.seen);
    });

    t.check("kubectl exec returns output and the exit code", || {
        let out = c.kubectl_ok(&["exec", "hello", "--", "sh", "-c", "echo out-$((6*7))"]);
        assert_eq!(out, "out-42\n");
        let out = c.kubectl(&["exec", "hello", "--", "sh", "-c", "echo partial; exit 3"]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            describe_output("exec", &out)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "partial\n");
        let out = c.kubectl_stdin_ok(&["exec", "-i", "hello", "--", "cat"], "from stdin\n");
        assert_eq!(out, "from stdin\n");
        let err = c.kubectl_err(&["exec", "hello", "--", "/does/not/exist"]);
        assert!(!err.is_empty());
    });

    t.check("kubectl exec -it gets a terminal", || {
        // `script` gives kubectl a pseudo-terminal, as a user's shell would.
        let kubeconfig = c.kubeconfig.display().to_string();
        let cmd = format!(
            "KUBECONFIG={kubeconfig} {} exec -it hello -- sh -c 'tty; echo cols=$(stty size)'",
            test_e2e::kubectl_path().display()
        );
        let out = test_e2e::run_with_timeout(
            {
                let mut s = std::process::Command::new("script");
                s.args(["-qec", &cmd, "/dev/null"]);
                s
            },
            None,
            Duration::from_secs(60),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            describe_output("script kubectl exec -it", &out)
        );
        assert_contains(&text, "/dev/pts/");
    });

    t.check("kubectl cp copies files in and out", || {
        let src = c.scratch("cp-in.txt");
        std::fs::write(&src, "copied through tar\n").unwrap();
        c.kubectl_ok(&["cp", src.to_str().unwrap(), "default/hello:/tmp/cp-in.txt"]);
        let out = c.kubectl_ok(&["exec", "hello", "--", "cat", "/tmp/cp-in.txt"]);
        assert_eq!(out, "copied through tar\n");
        let back = c.scratch("cp-out.txt");
        c.kubectl_ok(&["cp", "default/hello:/tmp/cp-in.txt", back.to_str().unwrap()]);
        assert_eq!(
            std::fs::read_to_string(&back).unwrap(),
            "copied through tar\n"
        );
    });

    t.check("kubectl attach reads a running container's output", || {
        let mut child = c.spawn_kubectl(&["attach", "hello"]);
        let mut r = LineReader::new(child.stdout.take().unwrap());
        let got = r.wait_for(Duration::from_secs(20), |l| l.starts_with("tick "));
        let _ = child.kill();
        let _ = child.wait();
        assert!(got.is_some(), "attach printed no ticks: {:?}", r.seen);
    });

    t.check(
        "kubectl port-forward serves HTTP from the test-server",
        || {
            wait_ready(&c, "web");
            let mut child = c.spawn_kubectl(&["port-forward", "pod/web", ":8080"]);
            let mut r = LineReader::new(child.stdout.take().unwrap());
            let port = forwarded_port(&mut r);
            let host = http_get(&format!("http://127.0.0.1:{port}/hostname"));
            let echo = http_get(&format!(
                "http://127.0.0.1:{port}/echo?msg=through-the-tunnel"
            ));
            let _ = child.kill();
            let _ = child.wait();
            assert_eq!(host.unwrap().trim(), "web");
            assert_eq!(echo.unwrap().trim(), "through-the-tunnel");
        },
    );

    t.finish();
}

/// Restart policies, probes, init containers, hooks and error reasons.
#[test]
fn lifecycle_probes_and_failures() {
    let c = Cluster::create();
    let mut t = Checks::new("lifecycle_probes_and_failures");

    apply_pod(
        &c,
        "init-order",
        r#"  initContainers:
  - name: first
    image: busybox
    command: ["sh", "-c", "echo first >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: busybox
    command: ["sh", "-c", "echo second >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "cat /work/order; echo main; sleep 3600"]
    volumeMounts: [{name: work, mountPath: /work}]
  volumes:
  - name: work
    emptyDir: {}
"#,
    );
    apply_pod(
        &c,
        "liveness",
        r#"  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "touch /tmp/healthy; sleep 4; rm /tmp/healthy; sleep 3600"]
    livenessProbe:
      exec: {command: ["cat", "/tmp/healthy"]}
      periodSeconds: 1
      failureThreshold: 2
"#,
    );
    apply_pod(
        &c,
        "readiness",
        r#"  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    readinessProbe:
      exec: {command: ["cat", "/tmp/ready"]}
      periodSeconds: 1
"#,
    );
    apply_pod(
        &c,
        "crasher",
        r#"  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "echo attempt at $(date +%s); exit 1"]
"#,
    );
    apply_pod(
        &c,
        "no-image",
        r#"  containers:
  - name: app
    image: docker.io/library/does-not-exist:v1
"#,
    );
    apply_pod(
        &c,
        "no-configmap",
        r#"  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    env:
    - name: FROM_MISSING
      valueFrom:
        configMapKeyRef: {name: missing-config, key: k}
"#,
    );
    apply_pod(
        &c,
        "succeeds",
        r#"  restartPolicy: Never
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "echo done"]
"#,
    );
    apply_pod(
        &c,
        "fails",
        r#"  restartPolicy: Never
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "exit 7"]
"#,
    );

    t.check(
        "init containers run in order before the main container",
        || {
            let p = wait_ready(&c, "init-order");
            let out = logs(&c, &["init-order", "-c", "main"]);
            assert_eq!(out, "first\nsecond\nmain\n");
            let inits = p["status"]["initContainerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(inits.len(), 2, "{}", p["status"]);
            for s in inits {
                assert_eq!(s["state"]["terminated"]["reason"], "Completed", "{s}");
                assert_eq!(s["state"]["terminated"]["exitCode"], 0, "{s}");
            }
            assert_eq!(condition(&p, "Initialized"), "True");
        },
    );

    t.check("a failing liveness probe restarts the container", || {
        let p = eventually("liveness restart", Duration::from_secs(90), || {
            let p = pod(&c, "liveness");
            if container_status(&p, "app")["restartCount"]
                .as_u64()
                .unwrap_or(0)
                >= 1
            {
                Ok(p)
            } else {
                Err(format!("{}", p["status"]))
            }
        });
        assert_eq!(phase(&p), "Running");
        let events = c.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=liveness",
        ]);
        assert_contains(&events, "Unhealthy");
        assert_contains(&events, "Liveness probe failed");
    });

    t.check("readiness gates Ready", || {
        let p = eventually("readiness pod running", POD_START, || {
            let p = pod(&c, "readiness");
            if container_status(&p, "app")["state"]["running"].is_object() {
                Ok(p)
            } else {
                Err(format!("{}", p["status"]))
            }
        });
        assert_eq!(phase(&p), "Running");
        std::thread::sleep(Duration::from_secs(3));
        let p = pod(&c, "readiness");
        assert_eq!(condition(&p, "Ready"), "False", "{}", p["status"]);
        assert_eq!(condition(&p, "ContainersReady"), "False");
        assert_eq!(container_status(&p, "app")["ready"], false);
        c.kubectl_ok(&[
            "exec",
            "readiness",
            "--",
            "/bin/sh",
            "-c",
            "touch /tmp/ready",
        ]);
        wait_ready(&c, "readiness");
    });

    t.check("repeated failures end in CrashLoopBackOff", || {
        let p = eventually("CrashLoopBackOff", Duration::from_secs(120), || {
            let p = pod(&c, "crasher");
            let cs = container_status(&p, "app");
            if cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
                && cs["restartCount"].as_u64().unwrap_or(0) >= 2
            {
                Ok(p)
            } else {
                Err(format!("{cs}"))
            }
        });
        let cs = container_status(&p, "app");
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1, "{cs}");
        assert_eq!(cs["lastState"]["terminated"]["reason"], "Error", "{cs}");
        assert_contains(
            cs["state"]["waiting"]["message"].as_str().unwrap_or(""),
            "back-off",
        );
        let out = c.kubectl_ok(&["get", "pod", "crasher"]);
        assert_contains(&out, "CrashLoopBackOff");
        let prev = logs(&c, &["crasher", "--previous"]);
        assert_contains(&prev, "attempt at ");
    });

    t.check(
        "a missing image reports ErrImagePull / ImagePullBackOff",
        || {
            let p = eventually("image pull failure", POD_START, || {
                let p = pod(&c, "no-image");
                let reason = container_status(&p, "app")["state"]["waiting"]["reason"].clone();
                if reason == "ErrImagePull" || reason == "ImagePullBackOff" {
                    Ok(p)
                } else {
                    Err(format!("{}", p["status"]))
                }
            });
            assert_eq!(phase(&p), "Pending");
            wait_waiting_reason(&c, "no-image", "app", "ImagePullBackOff");
            let events = c.kubectl_ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=no-image",
            ]);
            assert_contains(&events, "Failed");
        },
    );

    t.check(
        "a missing configmap reports CreateContainerConfigError",
        || {
            let p = wait_waiting_reason(&c, "no-configmap", "app", "CreateContainerConfigError");
            assert_eq!(
                container_status(&p, "app")["state"]["waiting"]["message"],
                "configmap \"missing-config\" not found"
            );
            // Creating the configmap lets the pod start.
            c.kubectl_ok(&[
                "create",
                "configmap",
                "missing-config",
                "--from-literal=k=v",
            ]);
            wait_ready(&c, "no-configmap");
        },
    );

    t.check("restartPolicy Never: Succeeded and Failed phases", || {
        let p = eventually("succeeds Succeeded", POD_START, || {
            let p = pod(&c, "succeeds");
            if phase(&p) == "Succeeded" {
                Ok(p)
            } else {
                Err(format!("{}", p["status"]))
            }
        });
        assert_eq!(
            container_status(&p, "app")["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(logs(&c, &["succeeds"]), "done\n");
        let p = eventually("fails Failed", POD_START, || {
            let p = pod(&c, "fails");
            if phase(&p) == "Failed" {
                Ok(p)
            } else {
                Err(format!("{}", p["status"]))
            }
        });
        assert_eq!(
            container_status(&p, "app")["state"]["terminated"]["exitCode"],
            7
        );
        assert_eq!(container_status(&p, "app")["restartCount"], 0);
    });

    t.check(
        "graceful deletion runs preStop and honours the grace period",
        || {
            let marker_dir = c.scratch("prestop");
            std::fs::create_dir_all(&marker_dir).unwrap();
            let spec = format!(
                r#"  terminationGracePeriodSeconds: 6
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "trap 'echo got TERM' TERM; while true; do sleep 1; done"]
    lifecycle:
      preStop:
        exec: {{command: ["sh", "-c", "echo prestop ran > /marker/prestop"]}}
    volumeMounts: [{{name: marker, mountPath: /marker}}]
  volumes:
  - name: marker
    hostPath: {{path: {}, type: Directory}}
"#,
                marker_dir.display()
            );
            apply_pod(&c, "graceful", &spec);
            wait_ready(&c, "graceful");
            let started = Instant::now();
            c.kubectl_ok(&["delete", "pod", "graceful", "--wait=true", "--timeout=60s"]);
            let took = started.elapsed();
            let marker = std::fs::read_to_string(marker_dir.join("prestop")).unwrap_or_default();
            assert_eq!(marker, "prestop ran\n");
            // The shell ignores SIGTERM, so the kubelet waits out the grace
            // period before SIGKILL.
            assert!(took >= Duration::from_secs(5), "deleted after {took:?}");
            assert!(took < Duration::from_secs(40), "deleted after {took:?}");
            let err = c.kubectl_err(&["get", "pod", "graceful"]);
            assert_contains(&err, "NotFound");
        },
    );

    t.finish();
}

/// The Node, volumes, env, and a kubelet restart.
#[test]
fn node_volumes_env_and_kubelet_restart() {
    let c = Cluster::create();
    let mut t = Checks::new("node_volumes_env_and_kubelet_restart");
    let node = node_name(&c);

    t.check("the node is Ready with the host's capacity", || {
        let out = c.kubectl_ok(&["get", "nodes"]);
        let row = out
            .lines()
            .find(|l| l.starts_with(&node))
            .unwrap_or_else(|| panic!("{out}"));
        assert_contains(row, " Ready ");
        assert_contains(row, "v1.33");
        let n = c.kubectl_json(&["get", "node", &node, "-o", "json"]);
        let cpus = std::thread::available_parallelism()
            .unwrap()
            .get()
            .to_string();
        assert_eq!(
            n["status"]["capacity"]["cpu"],
            cpus.as_str(),
            "{}",
            n["status"]
        );
        assert_eq!(n["status"]["capacity"]["pods"], "110");
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let kib = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap();
        assert_eq!(n["status"]["capacity"]["memory"], format!("{kib}Ki"));
        let d = c.kubectl_ok(&["describe", "node", &node]);
        // `kubectl describe` pads its columns to the widest row, and which
        // conditions are there (NetworkUnavailable comes from the route
        // controller) changes the widths: compare with runs of blanks folded.
        let folded: String = d
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n");
        for needle in [
            "\nReady True ",
            "KubeletReady",
            "\nMemoryPressure False ",
            "\nDiskPressure False ",
            "\nPIDPressure False ",
            "Container Runtime Version: containerd://",
            "Kubelet Version: v1.33",
            "InternalIP:",
            "ephemeral-storage:",
        ] {
            assert_contains(&folded, needle);
        }
        let lease = c.kubectl_json(&["get", "lease", "-n", "kube-node-lease", &node, "-o", "json"]);
        assert_eq!(lease["spec"]["holderIdentity"], node.as_str());
    });

    c.kubectl_ok(&[
        "create",
        "configmap",
        "app-config",
        "--from-literal=greeting=hello",
        "--from-literal=color=blue",
    ]);
    c.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "app-secret",
        "--from-literal=password=s3cret",
    ]);
    apply_pod(
        &c,
        "consumer",
        r#"  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "env | sort; sleep 3600"]
    resources:
      requests: {cpu: 250m, memory: 32Mi}
      limits: {cpu: 500m, memory: 64Mi}
    env:
    - name: MY_POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: MY_NAMESPACE
      valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
    - name: MY_NODE
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    - name: MY_POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: MY_APP_LABEL
      valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}
    - name: MY_MEM_LIMIT_MI
      valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
    - name: MY_CPU_REQUEST_M
      valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1m}}
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: app-config, key: greeting}}
    - name: COMPOSED
      value: "$(GREETING)-world"
    envFrom:
    - secretRef: {name: app-secret}
      prefix: SECRET_
    volumeMounts:
    - {name: config, mountPath: /etc/config}
    - {name: secret, mountPath: /etc/secret, readOnly: true}
    - {name: info, mountPath: /etc/podinfo}
  volumes:
  - name: config
    configMap:
      name: app-config
  - name: secret
    secret:
      secretName: app-secret
      defaultMode: 0400
  - name: info
    downwardAPI:
      items:
      - path: labels
        fieldRef: {fieldPath: metadata.labels}
"#,
    );

    t.check(
        "env from fieldRef, resourceFieldRef, configMap and secret",
        || {
            let p = wait_ready(&c, "consumer");
            assert_eq!(p["status"]["qosClass"], "Burstable");
            let out = logs(&c, &["consumer"]);
            let ip = p["status"]["podIP"].as_str().unwrap().to_string();
            for want in [
                "MY_POD_NAME=consumer".to_string(),
                "MY_NAMESPACE=default".to_string(),
                format!("MY_NODE={node}"),
                format!("MY_POD_IP={ip}"),
                "MY_APP_LABEL=consumer".to_string(),
                "MY_MEM_LIMIT_MI=64".to_string(),
                "MY_CPU_REQUEST_M=250".to_string(),
                "GREETING=hello".to_string(),
                "COMPOSED=hello-world".to_string(),
                "SECRET_password=s3cret".to_string(),
            ] {
                assert!(out.lines().any(|l| l == want), "{want:?} not in:\n{out}");
            }
        },
    );

    t.check(
        "configMap, secret and downwardAPI volumes hold the data",
        || {
            let out = c.kubectl_ok(&[
                "exec",
                "consumer",
                "--",
                "cat",
                "/etc/config/greeting",
                "/etc/config/color",
                "/etc/secret/password",
            ]);
            assert_eq!(out, "helloblues3cret");
            let out = c.kubectl_ok(&[
                "exec",
                "consumer",
                "--",
                "stat",
                "-L",
                "-c",
                "%a",
                "/etc/secret/password",
            ]);
            assert_eq!(out.trim(), "400");
            let out = c.kubectl_ok(&["exec", "consumer", "--", "cat", "/etc/podinfo/labels"]);
            assert_contains(&out, "app=\"consumer\"");
            let err = c.kubectl_err(&[
                "exec",
                "consumer",
                "--",
                "sh",
                "-c",
                "echo x > /etc/secret/new",
            ]);
            assert!(!err.is_empty());
        },
    );

    t.check("configMap and secret updates reach mounted volumes", || {
        c.kubectl_ok(&[
            "patch",
            "configmap",
            "app-config",
            "-p",
            r#"{"data":{"greeting":"updated"}}"#,
        ]);
        c.kubectl_ok(&[
            "patch",
            "secret",
            "app-secret",
            "-p",
            r#"{"stringData":{"password":"rotated"}}"#,
        ]);
        eventually("updated volume contents", Duration::from_secs(120), || {
            let out = c.kubectl_ok(&[
                "exec",
                "consumer",
                "--",
                "cat",
                "/etc/config/greeting",
                "/etc/secret/password",
            ]);
            if out == "updatedrotated" {
                Ok(())
            } else {
                Err(out)
            }
        });
    });

    t.check(
        "pod CPU and memory limits reach the container's cgroup",
        || {
            let out = c.kubectl_ok(&[
                "exec",
                "consumer",
                "--",
                "cat",
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            ]);
            assert_eq!(out.trim(), (64 * 1024 * 1024).to_string());
        },
    );

    t.check("a kubelet restart adopts running containers", || {
        let before = pod(&c, "consumer");
        let id_before = container_status(&before, "app")["containerID"].clone();
        let restarts_before = container_status(&before, "app")["restartCount"].clone();
        let out = c.ferrokube(
            &["restart", "kubelet", "--name", &c.name],
            Duration::from_secs(120),
        );
        assert!(
            out.status.success(),
            "{}",
            describe_output("ferrokube restart kubelet", &out)
        );
        // Give the new kubelet time to sync; nothing may be restarted.
        std::thread::sleep(Duration::from_secs(15));
        let after = wait_ready(&c, "consumer");
        assert_eq!(container_status(&after, "app")["containerID"], id_before);
        assert_eq!(
            container_status(&after, "app")["restartCount"],
            restarts_before
        );
        let out = c.kubectl_ok(&["exec", "consumer", "--", "echo", "still here"]);
        assert_eq!(out, "still here\n");
    });

    t.check(
        "images resolve through the cluster's registry mirror",
        || {
            // As on an air-gapped cluster with a mirror: imagePullPolicy Always
            // pulls docker.io and registry.k8s.io names from the local registry.
            apply_pod(
                &c,
                "mirrored",
                r#"  containers:
  - name: stable
    image: busybox:stable
    imagePullPolicy: Always
    command: ["sleep", "3600"]
  - name: pause
    image: registry.k8s.io/pause:3.9
    imagePullPolicy: Always
"#,
            );
            let p = wait_ready(&c, "mirrored");
            for name in ["stable", "pause"] {
                let cs = container_status(&p, name);
                assert!(cs["state"]["running"].is_object(), "{cs}");
                assert!(
                    cs["imageID"].as_str().unwrap_or("").contains("sha256:"),
                    "{cs}"
                );
            }
            let events = c.kubectl_ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=mirrored",
            ]);
            assert_contains(&events, "Successfully pulled image");
        },
    );

    t.check("deleting a pod removes its containers", || {
        c.kubectl_ok(&[
            "delete",
            "pod",
            "consumer",
            "--grace-period=1",
            "--wait=true",
            "--timeout=60s",
        ]);
        let err = c.kubectl_err(&["get", "pod", "consumer"]);
        assert_contains(&err, "NotFound");
    });

    t.finish();
}
