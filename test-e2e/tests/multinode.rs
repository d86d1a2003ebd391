//! A three-node ferrokube cluster (`create cluster --nodes 3`: one tainted
//! control-plane node and two workers) through kubectl: a node whose
//! kubelet dies goes NotReady, its pods are evicted and replaced on the
//! other worker, and it recovers when the kubelet is back; a second
//! kube-scheduler and kube-controller-manager take over leadership when the
//! first ones are killed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use test_e2e::{condition, eventually, items, name_of, Checks, Cluster};

const POD_START: Duration = Duration::from_secs(90);

fn worker(c: &Cluster, i: usize) -> String {
    if i <= 1 {
        format!("{}-worker", c.name)
    } else {
        format!("{}-worker{i}", c.name)
    }
}

fn node_ready(c: &Cluster, node: &str) -> String {
    let n = c.kubectl_json(&["get", "node", node, "-o", "json"]);
    condition(&n, "Ready")["status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn taint_keys(c: &Cluster, node: &str) -> Vec<String> {
    let n = c.kubectl_json(&["get", "node", node, "-o", "json"]);
    n["spec"]["taints"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t["key"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Live (not terminating) Running+Ready pods of `app`, as (name, node).
fn running_pods(c: &Cluster, app: &str) -> Vec<(String, String)> {
    items(&c.kubectl_json(&["get", "pods", "-l", &format!("app={app}"), "-o", "json"]))
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| condition(p, "Ready")["status"] == "True")
        .map(|p| {
            (
                name_of(&p),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn lease_holder(c: &Cluster, name: &str) -> String {
    let l = c.kubectl_json(&["-n", "kube-system", "get", "lease", name, "-o", "json"]);
    l["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn sigkill(pid: i32) {
    // SAFETY: kill(2) with a pid we read from cluster.json / spawned.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// A second instance of a control-plane daemon, killed on drop.
struct Standby(Child);

impl Drop for Standby {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start another instance of `component` with the command line ferrokube
/// recorded for it, on a free secure port, logging to `<component>-2.log`.
fn start_standby(c: &Cluster, component: &str) -> Standby {
    let st = c.state();
    let p = st["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == component))
        .unwrap_or_else(|| panic!("no {component} in cluster.json"));
    let cmdline: Vec<String> = p["cmdline"]
        .as_array()
        .expect("cmdline")
        .iter()
        .map(|a| a.as_str().unwrap_or("").to_string())
        .collect();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let args: Vec<String> = cmdline[1..]
        .iter()
        .map(|a| {
            if a.starts_with("--secure-port=") {
                format!("--secure-port={port}")
            } else {
                a.clone()
            }
        })
        .collect();
    let log = std::fs::File::create(c.dir().join(format!("logs/{component}-2.log"))).unwrap();
    let child = Command::new(&cmdline[0])
        .args(&args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting a second {component}: {e}"));
    Standby(child)
}

fn web_deployment(name: &str, replicas: u32) -> String {
    // Tolerating unreachable/not-ready for 2 s only, so eviction follows the
    // NoExecute taints quickly (the default toleration is 300 s).
    test_e2e::deployment_manifest(
        name,
        replicas,
        r#"      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      containers:
      - name: c
        image: busybox:stable
        imagePullPolicy: IfNotPresent
        command: [sleep, "3600"]
"#,
    )
}

#[test]
fn node_failure_and_leader_failover() {
    let c = Cluster::create_with(&["--nodes", "3"]);
    let mut checks = Checks::new("multinode");
    let (w1, w2) = (worker(&c, 1), worker(&c, 2));
    let cp = format!("{}-control-plane", c.name);
    // Standby daemons live until the end of the test (killed on drop).
    let mut standbys: Vec<Standby> = Vec::new();

    checks.check("three Ready nodes; the control plane is tainted", || {
        let nodes = items(&c.kubectl_json(&["get", "nodes", "-o", "json"]));
        let mut names: Vec<String> = nodes.iter().map(name_of).collect();
        names.sort();
        let mut want = vec![cp.clone(), w1.clone(), w2.clone()];
        want.sort();
        assert_eq!(names, want);
        for n in &names {
            assert_eq!(node_ready(&c, n), "True", "{n}");
        }
        assert!(taint_keys(&c, &cp).contains(&"node-role.kubernetes.io/control-plane".into()));
        let out = c.ferrokube(
            &["get", "nodes", "--name", &c.name],
            Duration::from_secs(10),
        );
        let listed = String::from_utf8_lossy(&out.stdout).to_string();
        for n in &names {
            assert!(listed.lines().any(|l| l == n), "{listed}");
        }
    });

    checks.check("a Deployment spreads over both workers", || {
        c.kubectl_stdin_ok(&["apply", "-f", "-"], &web_deployment("web", 4));
        let pods = eventually("4 running web pods", POD_START, || {
            let ps = running_pods(&c, "web");
            if ps.len() == 4 {
                Ok(ps)
            } else {
                Err(format!("{ps:?}"))
            }
        });
        assert!(pods.iter().all(|(_, n)| n == &w1 || n == &w2), "{pods:?}");
        assert!(pods.iter().any(|(_, n)| n == &w1), "{pods:?}");
    });

    checks.check(
        "a killed kubelet: node NotReady, pods evicted and replaced",
        || {
            let kubelet = format!("kubelet-{w1}");
            sigkill(c.pid(&kubelet));
            let started = Instant::now();
            // --node-monitor-grace-period is 50 s (upstream's default).
            eventually(
                "the node to go Unknown",
                Duration::from_secs(120),
                || match node_ready(&c, &w1).as_str() {
                    "Unknown" => Ok(()),
                    s => Err(format!("Ready={s}")),
                },
            );
            eprintln!("[e2e] node Unknown after {:?}", started.elapsed());
            let nodes = c.kubectl_ok(&["get", "nodes"]);
            assert!(
                nodes
                    .lines()
                    .any(|l| l.starts_with(&w1) && l.contains("NotReady")),
                "{nodes}"
            );
            eventually(
                "the unreachable NoExecute taint",
                Duration::from_secs(30),
                || {
                    let t = taint_keys(&c, &w1);
                    if t.contains(&"node.kubernetes.io/unreachable".into()) {
                        Ok(())
                    } else {
                        Err(format!("{t:?}"))
                    }
                },
            );
            let pods = eventually("4 running web pods on the other worker", POD_START, || {
                let ps = running_pods(&c, "web");
                if ps.len() == 4 && ps.iter().all(|(_, n)| n == &w2) {
                    Ok(ps)
                } else {
                    Err(format!("{ps:?}"))
                }
            });
            assert_eq!(pods.len(), 4);
            let events = c.kubectl_ok(&["get", "events", "-A"]);
            assert!(
                events.contains("TaintManagerEviction") || events.contains("NodeNotReady"),
                "{events}"
            );
        },
    );

    checks.check("the node recovers when its kubelet is back", || {
        let out = c.ferrokube(
            &["restart", "kubelet", "--name", &c.name, "--node", &w1],
            Duration::from_secs(120),
        );
        assert!(out.status.success(), "{out:?}");
        eventually(
            "the node Ready without the taint",
            Duration::from_secs(60),
            || {
                let t = taint_keys(&c, &w1);
                if node_ready(&c, &w1) == "True"
                    && !t.contains(&"node.kubernetes.io/unreachable".into())
                {
                    Ok(())
                } else {
                    Err(format!("taints {t:?}"))
                }
            },
        );
        // The evicted pods were only marked for deletion while the kubelet
        // was gone; back, it stops them and they disappear.
        eventually(
            "no web pod left on the recovered node",
            Duration::from_secs(60),
            || {
                let all = items(&c.kubectl_json(&["get", "pods", "-l", "app=web", "-o", "json"]));
                let left: Vec<String> = all
                    .iter()
                    .filter(|p| p["spec"]["nodeName"] == w1.as_str())
                    .map(name_of)
                    .collect();
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{left:?}"))
                }
            },
        );
    });

    checks.check("kube-scheduler leader failover", || {
        let first = lease_holder(&c, "kube-scheduler");
        assert!(!first.is_empty());
        standbys.push(start_standby(&c, "kube-scheduler"));
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(
            lease_holder(&c, "kube-scheduler"),
            first,
            "the standby must not act"
        );
        sigkill(c.pid("kube-scheduler"));
        let second = eventually("a new scheduler leader", Duration::from_secs(40), || {
            let h = lease_holder(&c, "kube-scheduler");
            if !h.is_empty() && h != first {
                Ok(h)
            } else {
                Err(h)
            }
        });
        assert_ne!(second, first);
        c.kubectl_ok(&[
            "run",
            "after-failover",
            "--image=busybox:stable",
            "--restart=Never",
            "--",
            "sleep",
            "3600",
        ]);
        eventually("the new leader schedules a pod", POD_START, || {
            let p = c.kubectl_json(&["get", "pod", "after-failover", "-o", "json"]);
            match p["spec"]["nodeName"].as_str() {
                Some(n) if !n.is_empty() => Ok(()),
                _ => Err(format!("{}", p["status"])),
            }
        });
    });

    checks.check("kube-controller-manager leader failover", || {
        let first = lease_holder(&c, "kube-controller-manager");
        assert!(!first.is_empty());
        standbys.push(start_standby(&c, "kube-controller-manager"));
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(lease_holder(&c, "kube-controller-manager"), first);
        sigkill(c.pid("kube-controller-manager"));
        eventually(
            "a new controller-manager leader",
            Duration::from_secs(40),
            || {
                let h = lease_holder(&c, "kube-controller-manager");
                if !h.is_empty() && h != first {
                    Ok(h)
                } else {
                    Err(h)
                }
            },
        );
        c.kubectl_ok(&["scale", "deployment", "web", "--replicas=5"]);
        eventually("the new leader scales the Deployment", POD_START, || {
            let ps = running_pods(&c, "web");
            if ps.len() == 5 {
                Ok(())
            } else {
                Err(format!("{ps:?}"))
            }
        });
    });

    checks.finish();
    drop(standbys);
}
