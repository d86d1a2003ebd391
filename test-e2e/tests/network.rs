//! Services on a three-node ferrokube cluster (`--nodes 3`) through kubectl:
//! pod to pod across nodes, ClusterIP by IP and by DNS name (cluster DNS),
//! session affinity, NodePort and LoadBalancer from the host, traffic policy
//! Local, Services without endpoints, backends following a scale, deleted
//! Services, a kube-proxy restart, and a node whose namespace is removed.
//!
//! All traffic stays on this machine: the host only talks to the cluster
//! bridge's addresses (nodes and LoadBalancer IPs), pods to each other.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_e2e::{condition, eventually, items, name_of, Checks, Cluster};

const POD_START: Duration = Duration::from_secs(90);

fn worker(c: &Cluster, i: usize) -> String {
    if i <= 1 {
        format!("{}-worker", c.name)
    } else {
        format!("{}-worker{i}", c.name)
    }
}

fn node_ip(c: &Cluster, node: &str) -> String {
    let n = c.kubectl_json(&["get", "node", node, "-o", "json"]);
    n["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
        .and_then(|a| a["address"].as_str())
        .unwrap_or_else(|| panic!("node {node} has no InternalIP: {n}"))
        .to_string()
}

/// A plain HTTP/1.0 GET from the host with a short timeout; the body.
fn host_get(addr: &str, path: &str) -> Result<String, String> {
    host_get_within(addr, path, Duration::from_secs(2))
}

/// [`host_get`] with the given connect timeout.
fn host_get_within(addr: &str, path: &str, connect: Duration) -> Result<String, String> {
    let sa: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s =
        TcpStream::connect_timeout(&sa, connect).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)
        .map_err(|e| format!("read {addr}: {e}"))?;
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("{addr}{path}: {head}"));
    }
    Ok(body.trim().to_string())
}

/// `wget -qO- URL` inside pod `client`; stdout on success, stderr otherwise.
fn pod_get(c: &Cluster, url: &str) -> Result<String, String> {
    let out = c.kubectl(&["exec", "client", "--", "wget", "-qO-", url]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn ready_pods(c: &Cluster, selector: &str) -> Vec<Value> {
    items(&c.kubectl_json(&["get", "pods", "-l", selector, "-o", "json"]))
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| condition(p, "Ready")["status"] == "True")
        .collect()
}

fn wait_ready_pods(c: &Cluster, selector: &str, n: usize) -> Vec<Value> {
    eventually(&format!("{n} ready pods {selector}"), POD_START, || {
        let ps = ready_pods(c, selector);
        if ps.len() == n {
            Ok(ps)
        } else {
            Err(format!("{} ready", ps.len()))
        }
    })
}

fn service(c: &Cluster, name: &str) -> Value {
    c.kubectl_json(&["get", "service", name, "-o", "json"])
}

fn node_port(c: &Cluster, name: &str) -> u16 {
    service(c, name)["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .unwrap_or_else(|| panic!("service {name} has no nodePort")) as u16
}

const WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: docker.io/ferrokube/test-server:latest
        ports: [{containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /readyz, port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: web-sticky
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: web-np
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: web-lb
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: nobody
spec:
  type: NodePort
  selector: {app: nobody-here}
  ports: [{port: 80, targetPort: 8080}]
"#;

#[test]
fn services_across_nodes() {
    // A kind config: three nodes, a label, and a host port mapped to a
    // NodePort on the first worker.
    let host_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let cfg = std::env::temp_dir().join(format!("fk-net-{}.yaml", std::process::id()));
    std::fs::write(
        &cfg,
        format!(
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n  extraPortMappings:\n  - {{containerPort: 30080, hostPort: {host_port}, listenAddress: 127.0.0.1}}\n- role: worker\n  labels: {{tier: backend}}\n"
        ),
    )
    .unwrap();
    let c = Cluster::create_with(&["--config", cfg.to_str().unwrap()]);
    let _ = std::fs::remove_file(&cfg);
    let mut t = Checks::new("network");
    let (w1, w2) = (worker(&c, 1), worker(&c, 2));
    let (ip1, ip2) = (node_ip(&c, &w1), node_ip(&c, &w2));

    c.kubectl_stdin_ok(&["apply", "-f", "-"], WEB);
    c.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: {w1}
  terminationGracePeriodSeconds: 0
  containers: [{{name: c, image: busybox:stable, command: [sleep, "3600"]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: far, labels: {{app: far}}}}
spec:
  nodeName: {w2}
  containers: [{{name: c, image: docker.io/ferrokube/test-server:latest}}]
"#
        ),
    );
    wait_ready_pods(&c, "app=web", 3);
    eventually("client and far Running", POD_START, || {
        let ok = ["client", "far"].iter().all(|p| {
            let v = c.kubectl_json(&["get", "pod", p, "-o", "json"]);
            condition(&v, "Ready")["status"] == "True"
        });
        if ok {
            Ok(())
        } else {
            Err("not ready".into())
        }
    });
    let web_pods: BTreeSet<String> = ready_pods(&c, "app=web").iter().map(name_of).collect();

    t.check("pod to pod across nodes", || {
        let far = c.kubectl_json(&["get", "pod", "far", "-o", "json"]);
        let ip = far["status"]["podIP"].as_str().unwrap().to_string();
        assert_eq!(
            pod_get(&c, &format!("http://{ip}:8080/hostname")).unwrap(),
            "far"
        );
        // The source address is the client pod's own: no NAT between pods.
        let client = c.kubectl_json(&["get", "pod", "client", "-o", "json"]);
        let cip = client["status"]["podIP"].as_str().unwrap();
        let seen = pod_get(&c, &format!("http://{ip}:8080/clientip")).unwrap();
        assert!(seen.starts_with(&format!("{cip}:")), "{seen} vs {cip}");
    });

    t.check("the config's labels and host port mapping", || {
        let labelled = c.kubectl_ok(&["get", "nodes", "-l", "tier=backend", "-o", "name"]);
        assert_eq!(labelled.trim(), format!("node/{w2}"));
        c.kubectl_stdin_ok(
            &["apply", "-f", "-"],
            "apiVersion: v1\nkind: Service\nmetadata: {name: web-mapped}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]\n",
        );
        let body = eventually("the mapped host port", Duration::from_secs(15), || {
            host_get(&format!("127.0.0.1:{host_port}"), "/hostname")
        });
        assert!(web_pods.contains(&body), "{body}");
    });

    t.check("ClusterIP by IP spreads over the backends", || {
        let ip = service(&c, "web")["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .to_string();
        let mut seen = BTreeSet::new();
        for _ in 0..20 {
            seen.insert(pod_get(&c, &format!("http://{ip}/hostname")).unwrap());
        }
        assert!(seen.is_subset(&web_pods), "{seen:?} vs {web_pods:?}");
        assert!(seen.len() >= 2, "one backend only: {seen:?}");
    });

    t.check("ClusterIP by DNS name", || {
        eventually("cluster DNS Ready", POD_START, || {
            let out = c.kubectl_ok(&["-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns"]);
            if out.lines().skip(1).any(|l| l.contains(" 1/1 ")) {
                Ok(())
            } else {
                Err(out)
            }
        });
        let body = eventually("DNS answers", Duration::from_secs(30), || {
            pod_get(&c, "http://web.default.svc.cluster.local/hostname")
        });
        assert!(web_pods.contains(&body), "{body}");
        // The search path makes the short name work too.
        let body = pod_get(&c, "http://web/hostname").unwrap();
        assert!(web_pods.contains(&body), "{body}");
        let out = c.kubectl_ok(&[
            "exec",
            "client",
            "--",
            "nslookup",
            "web.default.svc.cluster.local",
        ]);
        let ip = service(&c, "web")["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(out.contains(&ip), "{out}");
        let rc = c.kubectl_ok(&["exec", "client", "--", "cat", "/etc/resolv.conf"]);
        assert!(rc.contains("nameserver 10.96.0.10"), "{rc}");
        assert!(
            rc.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
            "{rc}"
        );
        assert!(rc.contains("ndots:5"), "{rc}");
    });

    t.check("session affinity keeps one backend", || {
        let ip = service(&c, "web-sticky")["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .to_string();
        let seen: BTreeSet<String> = (0..10)
            .map(|_| pod_get(&c, &format!("http://{ip}/hostname")).unwrap())
            .collect();
        assert_eq!(seen.len(), 1, "{seen:?}");
    });

    t.check("NodePort from the host on every node", || {
        let np = node_port(&c, "web-np");
        let cp_ip = node_ip(&c, &format!("{}-control-plane", c.name));
        for ip in [&cp_ip, &ip1, &ip2] {
            let body = eventually(
                &format!("NodePort on {ip}"),
                Duration::from_secs(10),
                || host_get(&format!("{ip}:{np}"), "/hostname"),
            );
            assert!(web_pods.contains(&body), "{body}");
        }
    });

    t.check("LoadBalancer IP from the host", || {
        let lb = eventually(
            "an ingress IP",
            Duration::from_secs(30),
            || match service(&c, "web-lb")["status"]["loadBalancer"]["ingress"][0]["ip"].as_str() {
                Some(ip) => Ok(ip.to_string()),
                None => Err("none yet".into()),
            },
        );
        let body = eventually(
            "the LoadBalancer IP answers",
            Duration::from_secs(15),
            || host_get(&format!("{lb}:80"), "/hostname"),
        );
        assert!(web_pods.contains(&body), "{body}");
        let svc = c.kubectl_ok(&["get", "service", "web-lb"]);
        assert!(svc.contains(&lb), "{svc}");
    });

    t.check("externalTrafficPolicy Local", || {
        c.kubectl_stdin_ok(
            &["apply", "-f", "-"],
            r#"apiVersion: v1
kind: Service
metadata:
  name: far-local
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: far}
  ports: [{port: 80, targetPort: 8080}]
"#,
        );
        let np = node_port(&c, "far-local");
        let body = eventually(
            "the local endpoint's node answers",
            Duration::from_secs(10),
            || host_get(&format!("{ip2}:{np}"), "/hostname"),
        );
        assert_eq!(body, "far");
        // A node without a local endpoint does not forward external traffic.
        assert!(host_get(&format!("{ip1}:{np}"), "/hostname").is_err());
        // healthCheckNodePort is not allocated for NodePort, only for
        // LoadBalancer Services: check it there.
        c.kubectl_ok(&[
            "patch",
            "service",
            "far-local",
            "-p",
            r#"{"spec":{"type":"LoadBalancer"}}"#,
        ]);
        let hc = eventually("a healthCheckNodePort", Duration::from_secs(10), || {
            service(&c, "far-local")["spec"]["healthCheckNodePort"]
                .as_u64()
                .ok_or_else(|| "none".to_string())
        });
        eventually(
            "health check 200 on the endpoint's node",
            Duration::from_secs(10),
            || host_get(&format!("{ip2}:{hc}"), "/healthz"),
        );
        let other = host_get(&format!("{ip1}:{hc}"), "/healthz");
        assert!(
            other.as_ref().is_err_and(|e| e.contains("503")),
            "{other:?}"
        );
    });

    t.check("a Service without endpoints rejects at once", || {
        let np = node_port(&c, "nobody");
        let start = Instant::now();
        let e = host_get(&format!("{ip1}:{np}"), "/").unwrap_err();
        assert!(e.contains("refused"), "{e}");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        let ip = service(&c, "nobody")["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .to_string();
        let e = pod_get(&c, &format!("http://{ip}/")).unwrap_err();
        assert!(e.contains("refused"), "{e}");
    });

    t.check("scaling changes the backends within a second", || {
        let np = node_port(&c, "web-np");
        c.kubectl_ok(&["scale", "deployment", "web", "--replicas=1"]);
        let left = eventually("one web endpoint", Duration::from_secs(30), || {
            let eps = c.kubectl_json(&["get", "endpoints", "web", "-o", "json"]);
            let n: Vec<String> = eps["subsets"][0]["addresses"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|a| a["targetRef"]["name"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if n.len() == 1 {
                Ok(n[0].clone())
            } else {
                Err(format!("{n:?}"))
            }
        });
        // From the moment the Endpoints show one address, rounds of six
        // requests (300 ms connect timeout: a stale backend shows as an
        // error) until a round is answered by the remaining pod only.
        let seen_at = Instant::now();
        let took = loop {
            let replies: Vec<Result<String, String>> = (0..6)
                .map(|_| {
                    host_get_within(
                        &format!("{ip1}:{np}"),
                        "/hostname",
                        Duration::from_millis(300),
                    )
                })
                .collect();
            if replies.iter().all(|r| r.as_deref() == Ok(left.as_str())) {
                break seen_at.elapsed();
            }
            assert!(
                seen_at.elapsed() < Duration::from_secs(5),
                "backends still stale after 5 s: {replies:?}"
            );
        };
        eprintln!("[e2e] rules followed the endpoints in {took:?}");
        // kubectl's view of the Endpoints lags by a few hundred ms itself.
        assert!(took < Duration::from_millis(1500), "{took:?}");
    });

    t.check("deleting a Service removes its rules", || {
        let np = node_port(&c, "web-np");
        c.kubectl_ok(&["delete", "service", "web-np"]);
        eventually(
            "the NodePort to stop answering",
            Duration::from_secs(5),
            || match host_get(&format!("{ip1}:{np}"), "/hostname") {
                Err(_) => Ok(()),
                Ok(b) => Err(b),
            },
        );
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &format!("fk-{w1}"),
                "nft",
                "list",
                "table",
                "ip",
                "kube-proxy",
            ])
            .output()
            .unwrap();
        let rules = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(rules.contains("default/web/"), "{rules}");
        assert!(!rules.contains("default/web-np/"), "{rules}");
    });

    t.check("traffic keeps flowing through a kube-proxy restart", || {
        let lb = eventually(
            "an ingress IP",
            Duration::from_secs(30),
            || match service(&c, "web-lb")["status"]["loadBalancer"]["ingress"][0]["ip"].as_str() {
                Some(ip) => Ok(ip.to_string()),
                None => Err("none yet".into()),
            },
        );
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let addr = format!("{lb}:80");
        let prober = std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, Vec::new());
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                match host_get(&addr, "/hostname") {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e),
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (ok, failed)
        });
        let out = c.ferrokube(
            &["restart", "kube-proxy", "--name", &c.name],
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "{out:?}");
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (ok, failed) = prober.join().unwrap();
        assert!(ok > 10, "{ok} ok, {failed:?}");
        assert!(failed.is_empty(), "{failed:?}");
    });

    t.check("a node whose namespace is removed disappears", || {
        // The machine is gone: its daemons die with it, then its namespace.
        for daemon in ["kubelet", "kube-proxy", "containerd"] {
            let pid = c.pid(&format!("{daemon}-{w2}"));
            // SAFETY: kill(2) on a pid ferrokube recorded for this cluster.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let st = std::process::Command::new("ip")
            .args(["netns", "delete", &format!("fk-{w2}")])
            .status()
            .unwrap();
        assert!(st.success());
        eventually("the node to be deleted", Duration::from_secs(150), || {
            let nodes = c.kubectl_ok(&["get", "nodes", "-o", "name"]);
            if nodes.contains(&w2) {
                Err(nodes)
            } else {
                Ok(())
            }
        });
    });

    t.finish();
}
