//! Stock kubectl against a ferrokube cluster started with the `ferrokube`
//! CLI. Each test function owns one cluster (nextest runs every test in its
//! own process) and runs many named checks against it; a failing check does
//! not stop the others, and the test fails listing all failed checks.
//!
//! Run: `make build && FERROKUBE_BIN_DIR=$PWD/_output/bin cargo nextest run --release -p test-e2e`

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use test_e2e::{
    assert_contains, assert_not_contains, table, wait_timeout, Checks, Cluster, LineReader,
};

const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

fn names_of(list: &Value) -> BTreeSet<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|i| {
            i["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn assert_has_system_namespaces(names: &BTreeSet<String>) {
    for ns in SYSTEM_NAMESPACES {
        assert!(names.contains(ns), "namespace {ns} missing from {names:?}");
    }
}

/// Read-only views: `get` output formats, discovery, explain, raw GETs.
#[test]
fn get_output_formats_and_discovery() {
    let c = Cluster::create();
    let mut t = Checks::new("get_output_formats_and_discovery");

    t.check("get ns: default table", || {
        let out = c.kubectl_ok(&["get", "ns"]);
        let rows = table(&out);
        assert_eq!(rows[0], ["NAME", "STATUS", "AGE"], "header of:\n{out}");
        for ns in SYSTEM_NAMESPACES {
            let row = rows
                .iter()
                .find(|r| r[0] == ns)
                .unwrap_or_else(|| panic!("no row for {ns} in:\n{out}"));
            assert_eq!(row.len(), 3, "row {row:?} of:\n{out}");
            assert_eq!(row[1], "Active", "row {row:?}");
        }
    });

    t.check("get ns -o wide", || {
        let out = c.kubectl_ok(&["get", "ns", "-o", "wide"]);
        let rows = table(&out);
        assert_eq!(rows[0][..3], ["NAME", "STATUS", "AGE"], "header of:\n{out}");
        for ns in SYSTEM_NAMESPACES {
            assert!(
                rows.iter().any(|r| r[0] == ns),
                "no row for {ns} in:\n{out}"
            );
        }
    });

    t.check("get ns -o yaml", || {
        let out = c.kubectl_ok(&["get", "ns", "-o", "yaml"]);
        let v: Value =
            serde_yaml::from_str(&out).unwrap_or_else(|e| panic!("not YAML ({e}):\n{out}"));
        assert_eq!(v["kind"], "List", "{out}");
        assert_eq!(v["apiVersion"], "v1", "{out}");
        assert_has_system_namespaces(&names_of(&v));
        assert!(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["kind"] == "Namespace" && i["apiVersion"] == "v1"),
            "items lack kind/apiVersion:\n{out}"
        );
    });

    t.check("get ns -o json", || {
        let v = c.kubectl_json(&["get", "ns"]);
        assert_eq!(v["kind"], "List");
        assert_has_system_namespaces(&names_of(&v));
        let def = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == "default")
            .unwrap();
        assert_eq!(def["status"]["phase"], "Active", "{def}");
        assert!(def["metadata"]["uid"].is_string(), "{def}");
        assert!(def["metadata"]["creationTimestamp"].is_string(), "{def}");
        assert!(def["metadata"]["resourceVersion"].is_string(), "{def}");
    });

    t.check("get ns -o jsonpath", || {
        let out = c.kubectl_ok(&["get", "ns", "-o", "jsonpath={.items[*].metadata.name}"]);
        let names: BTreeSet<String> = out.split_whitespace().map(str::to_string).collect();
        assert_has_system_namespaces(&names);
        let phase = c.kubectl_ok(&["get", "ns", "default", "-o", "jsonpath={.status.phase}"]);
        assert_eq!(phase, "Active");
    });

    t.check("get ns -o custom-columns", || {
        let out = c.kubectl_ok(&[
            "get",
            "ns",
            "-o",
            "custom-columns=NAME:.metadata.name,PHASE:.status.phase",
        ]);
        let rows = table(&out);
        assert_eq!(rows[0], ["NAME", "PHASE"], "{out}");
        for ns in SYSTEM_NAMESPACES {
            assert!(
                rows.contains(&vec![ns.to_string(), "Active".to_string()]),
                "no row for {ns} in:\n{out}"
            );
        }
    });

    t.check("get ns -o name", || {
        let out = c.kubectl_ok(&["get", "ns", "-o", "name"]);
        let lines: BTreeSet<&str> = out.lines().collect();
        for ns in SYSTEM_NAMESPACES {
            assert!(lines.contains(format!("namespace/{ns}").as_str()), "{out}");
        }
    });

    t.check(
        "get ns by label selector (kubernetes.io/metadata.name)",
        || {
            let out = c.kubectl_ok(&[
                "get",
                "ns",
                "-l",
                "kubernetes.io/metadata.name=kube-public",
                "-o",
                "name",
            ]);
            assert_eq!(out.trim(), "namespace/kube-public");
        },
    );

    t.check("get ns by field selector", || {
        let out = c.kubectl_ok(&[
            "get",
            "ns",
            "--field-selector",
            "metadata.name=default",
            "-o",
            "name",
        ]);
        assert_eq!(out.trim(), "namespace/default");
    });

    t.check("version shows server v1.33", || {
        // /usr/bin/kubectl is gcloud's dispatcher: it runs the kubectl
        // matching the server's minor version, so the client line varies.
        let out = c.kubectl_ok(&["version"]);
        assert_contains(&out, "Client Version: v1.");
        assert_contains(&out, "Server Version: v1.33");
    });

    t.check("cluster-info", || {
        let out = c.kubectl_ok(&["cluster-info"]);
        assert_contains(&out, "Kubernetes control plane");
        assert_contains(&out, &c.server());
    });

    t.check("api-versions includes v1 and apps/v1", || {
        let out = c.kubectl_ok(&["api-versions"]);
        let lines: BTreeSet<&str> = out.lines().collect();
        for gv in ["v1", "apps/v1", "batch/v1"] {
            assert!(lines.contains(gv), "{gv} missing from:\n{out}");
        }
    });

    t.check(
        "api-resources lists pods/deployments with short names",
        || {
            let out = c.kubectl_ok(&["api-resources"]);
            let rows = table(&out);
            assert_eq!(
                rows[0],
                ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
                "{out}"
            );
            let want: [&[&str]; 5] = [
                &["pods", "po", "v1", "true", "Pod"],
                &["deployments", "deploy", "apps/v1", "true", "Deployment"],
                &["namespaces", "ns", "v1", "false", "Namespace"],
                &["configmaps", "cm", "v1", "true", "ConfigMap"],
                &["services", "svc", "v1", "true", "Service"],
            ];
            for w in want {
                assert!(
                    rows.iter().any(|r| r == w),
                    "row {w:?} missing from:\n{out}"
                );
            }
        },
    );

    t.check("api-resources --namespaced=false -o name", || {
        let out = c.kubectl_ok(&["api-resources", "--namespaced=false", "-o", "name"]);
        let lines: BTreeSet<&str> = out.lines().collect();
        assert!(lines.contains("namespaces"), "{out}");
        assert!(!lines.contains("pods"), "{out}");
    });

    t.check("explain pods.spec.containers", || {
        let out = c.kubectl_ok(&["explain", "pods.spec.containers"]);
        assert_contains(&out, "KIND:");
        assert_contains(&out, "Pod");
        assert_contains(&out, "VERSION:");
        assert_contains(&out, "FIELD: containers <[]Container>");
        assert_contains(&out, "DESCRIPTION:");
        assert_contains(&out, "FIELDS:");
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with("image") && l.contains("<string>")),
            "no `image <string>` field line in:\n{out}"
        );
    });

    t.check("explain deployment.spec.replicas", || {
        let out = c.kubectl_ok(&["explain", "deployment.spec.replicas"]);
        assert_contains(&out, "Deployment");
        assert_contains(&out, "apps");
        assert_contains(&out, "v1");
        assert_contains(&out, "Number of desired pods");
        assert_contains(&out, "FIELD: replicas <integer>");
    });

    t.check("get all -A shows service/kubernetes", || {
        let out = c.kubectl_ok(&["get", "all", "-A"]);
        let row = table(&out)
            .into_iter()
            .find(|r| r.get(1).map(String::as_str) == Some("service/kubernetes"))
            .unwrap_or_else(|| panic!("no service/kubernetes row in:\n{out}"));
        assert_eq!(row[0], "default", "{row:?}");
        assert_eq!(row[2], "ClusterIP", "{row:?}");
    });

    t.check("get svc kubernetes", || {
        let v = c.kubectl_json(&["get", "svc", "kubernetes", "-n", "default"]);
        assert_eq!(v["spec"]["type"], "ClusterIP", "{v}");
        assert_eq!(v["spec"]["ports"][0]["port"], 443, "{v}");
        assert!(
            v["spec"]["clusterIP"]
                .as_str()
                .is_some_and(|ip| ip.starts_with("10.96.")),
            "{v}"
        );
    });

    t.check("get --raw list", || {
        let out = c.kubectl_ok(&["get", "--raw", "/api/v1/namespaces/default/configmaps"]);
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(v["kind"], "ConfigMapList", "{out}");
        assert_eq!(v["apiVersion"], "v1", "{out}");
        assert!(v["metadata"]["resourceVersion"].is_string(), "{out}");
        assert!(v["items"].is_array(), "{out}");
    });

    t.check("get --raw /version /healthz /readyz /livez", || {
        let v: Value = serde_json::from_str(&c.kubectl_ok(&["get", "--raw", "/version"])).unwrap();
        assert_eq!(v["major"], "1", "{v}");
        assert!(
            v["gitVersion"]
                .as_str()
                .is_some_and(|s| s.starts_with("v1.33")),
            "{v}"
        );
        for p in ["/healthz", "/readyz", "/livez"] {
            assert_eq!(c.kubectl_ok(&["get", "--raw", p]).trim(), "ok", "{p}");
        }
    });

    t.check("get --raw not found", || {
        let err = c.kubectl_err(&["get", "--raw", "/api/v1/namespaces/default/configmaps/nope"]);
        assert_contains(
            &err,
            "Error from server (NotFound): configmaps \"nope\" not found",
        );
        let err = c.kubectl_err(&["get", "--raw", "/apis/nonexistent.example.com/v1/things"]);
        assert_contains(
            &err,
            "Error from server (NotFound): the server could not find the requested resource",
        );
    });

    t.finish();
}

/// Imperative ConfigMap/Secret workflow: create, describe, label, annotate,
/// delete, wait, dry-run, watch.
#[test]
fn configmaps_secrets_and_watch() {
    let c = Cluster::create();
    let mut t = Checks::new("configmaps_secrets_and_watch");
    let ns = "imperative";
    c.create_namespace(ns);

    t.check("create configmap --from-literal", || {
        let out = c.kubectl_ok(&[
            "create",
            "configmap",
            "x",
            "-n",
            ns,
            "--from-literal=a=1",
            "--from-literal=b=two",
        ]);
        assert_eq!(out.trim(), "configmap/x created");
        let v = c.kubectl_json(&["get", "configmap", "x", "-n", ns]);
        assert_eq!(v["data"], json!({"a": "1", "b": "two"}), "{v}");
        assert_eq!(v["metadata"]["namespace"], ns);
        assert_eq!(v["kind"], "ConfigMap");
    });

    t.check("get configmap table", || {
        let out = c.kubectl_ok(&["get", "configmaps", "-n", ns]);
        let rows = table(&out);
        assert_eq!(rows[0], ["NAME", "DATA", "AGE"], "{out}");
        let row = rows
            .iter()
            .find(|r| r[0] == "x")
            .unwrap_or_else(|| panic!("no x in:\n{out}"));
        assert_eq!(row[1], "2", "{out}");
    });

    t.check("create secret generic (data base64)", || {
        let out = c.kubectl_ok(&[
            "create",
            "secret",
            "generic",
            "s",
            "-n",
            ns,
            "--from-literal=p=q",
        ]);
        assert_eq!(out.trim(), "secret/s created");
        let v = c.kubectl_json(&["get", "secret", "s", "-n", ns]);
        assert_eq!(v["type"], "Opaque", "{v}");
        assert_eq!(v["data"], json!({"p": "cQ=="}), "{v}");
        let out = c.kubectl_ok(&["get", "secret", "s", "-n", ns]);
        let rows = table(&out);
        assert_eq!(rows[0], ["NAME", "TYPE", "DATA", "AGE"], "{out}");
        assert_eq!(rows[1][..3], ["s", "Opaque", "1"], "{out}");
    });

    t.check("describe configmap", || {
        let out = c.kubectl_ok(&["describe", "configmap", "x", "-n", ns]);
        let field = |k: &str| {
            out.lines()
                .find(|l| l.starts_with(&format!("{k}:")))
                .map(|l| l[k.len() + 1..].trim().to_string())
                .unwrap_or_else(|| panic!("no {k}: line in:\n{out}"))
        };
        assert_eq!(field("Name"), "x");
        assert_eq!(field("Namespace"), ns);
        assert_eq!(field("Labels"), "<none>");
        assert_eq!(field("Annotations"), "<none>");
        // kubectl prints data keys in Go map order, which varies between runs.
        assert_contains(&out, "Data\n====\n");
        assert_contains(&out, "a:\n----\n1\n");
        assert_contains(&out, "b:\n----\ntwo\n");
        assert_contains(&out, "BinaryData\n====");
    });

    t.check("describe secret hides values", || {
        let out = c.kubectl_ok(&["describe", "secret", "s", "-n", ns]);
        assert_contains(&out, "Type:  Opaque");
        assert_contains(&out, "p:  1 bytes");
    });

    t.check("label add / overwrite / remove", || {
        assert_eq!(
            c.kubectl_ok(&["label", "configmap", "x", "-n", ns, "env=prod"])
                .trim(),
            "configmap/x labeled"
        );
        let err = c.kubectl_err(&["label", "configmap", "x", "-n", ns, "env=dev"]);
        assert_contains(
            &err,
            "'env' already has a value (prod), and --overwrite is false",
        );
        assert_eq!(
            c.kubectl_ok(&[
                "label",
                "configmap",
                "x",
                "-n",
                ns,
                "env=dev",
                "--overwrite"
            ])
            .trim(),
            "configmap/x labeled"
        );
        let v = c.kubectl_json(&["get", "configmap", "x", "-n", ns]);
        assert_eq!(v["metadata"]["labels"], json!({"env": "dev"}), "{v}");
        let out = c.kubectl_ok(&["get", "configmaps", "-n", ns, "-l", "env=dev", "-o", "name"]);
        assert_eq!(out.trim(), "configmap/x");
        let out = c.kubectl_ok(&["get", "configmaps", "-n", ns, "--show-labels"]);
        assert_contains(&out, "env=dev");
        assert_eq!(
            c.kubectl_ok(&["label", "configmap", "x", "-n", ns, "env-"])
                .trim(),
            "configmap/x unlabeled"
        );
        let v = c.kubectl_json(&["get", "configmap", "x", "-n", ns]);
        assert!(
            v["metadata"]["labels"].get("env").is_none(),
            "label env still present: {}",
            v["metadata"]
        );
    });

    t.check("annotate add / overwrite / remove", || {
        assert_eq!(
            c.kubectl_ok(&["annotate", "configmap", "x", "-n", ns, "note=hello"])
                .trim(),
            "configmap/x annotated"
        );
        let err = c.kubectl_err(&["annotate", "configmap", "x", "-n", ns, "note=bye"]);
        assert_contains(&err, "--overwrite is false");
        assert_contains(&err, "'note' already has a value (hello)");
        assert_eq!(
            c.kubectl_ok(&[
                "annotate",
                "configmap",
                "x",
                "-n",
                ns,
                "note=bye",
                "--overwrite"
            ])
            .trim(),
            "configmap/x annotated"
        );
        let v = c.kubectl_json(&["get", "configmap", "x", "-n", ns]);
        assert_eq!(v["metadata"]["annotations"]["note"], "bye", "{v}");
        assert_eq!(
            c.kubectl_ok(&["annotate", "configmap", "x", "-n", ns, "note-"])
                .trim(),
            "configmap/x annotated"
        );
        let v = c.kubectl_json(&["get", "configmap", "x", "-n", ns]);
        assert!(
            v["metadata"]["annotations"].get("note").is_none(),
            "annotation still present: {}",
            v["metadata"]
        );
    });

    t.check("create --dry-run=server stores nothing", || {
        let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\ndata:\n  k: v\n";
        let out = c.kubectl_stdin_ok(
            &["create", "-n", ns, "-f", "-", "--dry-run=server"],
            manifest,
        );
        assert_eq!(out.trim(), "configmap/dry created (server dry run)");
        let out = c.kubectl_stdin_ok(
            &[
                "create",
                "-n",
                ns,
                "-f",
                "-",
                "--dry-run=server",
                "-o",
                "json",
            ],
            manifest,
        );
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(v["metadata"]["name"], "dry", "{out}");
        assert_eq!(v["metadata"]["namespace"], ns, "{out}");
        assert_eq!(v["data"], json!({"k": "v"}), "{out}");
        assert!(
            v["metadata"]["creationTimestamp"].is_string(),
            "server fields not filled in: {out}"
        );
        let err = c.kubectl_err(&["get", "configmap", "dry", "-n", ns]);
        assert_contains(
            &err,
            "Error from server (NotFound): configmaps \"dry\" not found",
        );
        let out = c.kubectl_ok(&[
            "create",
            "configmap",
            "dry2",
            "-n",
            ns,
            "--from-literal=a=b",
            "--dry-run=server",
        ]);
        assert_eq!(out.trim(), "configmap/dry2 created (server dry run)");
        c.kubectl_err(&["get", "configmap", "dry2", "-n", ns]);
    });

    t.check("delete configmap --wait", || {
        c.kubectl_ok(&[
            "create",
            "configmap",
            "gone",
            "-n",
            ns,
            "--from-literal=a=1",
        ]);
        let out = c.kubectl_ok(&["delete", "configmap", "gone", "-n", ns, "--wait"]);
        assert_eq!(out.trim(), "configmap \"gone\" deleted");
        let err = c.kubectl_err(&["get", "configmap", "gone", "-n", ns]);
        assert_contains(
            &err,
            "Error from server (NotFound): configmaps \"gone\" not found",
        );
        let err = c.kubectl_err(&["delete", "configmap", "gone", "-n", ns]);
        assert_contains(
            &err,
            "Error from server (NotFound): configmaps \"gone\" not found",
        );
    });

    t.check("delete secret", || {
        let out = c.kubectl_ok(&["delete", "secret", "s", "-n", ns]);
        assert_eq!(out.trim(), "secret \"s\" deleted");
    });

    t.check("wait --for=delete while deleting in background", || {
        c.kubectl_ok(&["create", "configmap", "y", "-n", ns, "--from-literal=a=1"]);
        let mut waiter = c.spawn_kubectl(&[
            "wait",
            "--for=delete",
            "configmap/y",
            "-n",
            ns,
            "--timeout=30s",
        ]);
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            waiter.try_wait().unwrap().is_none(),
            "kubectl wait returned before the delete: {:?}",
            waiter.wait_with_output()
        );
        let out = c.kubectl_ok(&["delete", "configmap", "y", "-n", ns, "--wait=false"]);
        assert_eq!(out.trim(), "configmap \"y\" deleted");
        let status = wait_timeout(&mut waiter, Duration::from_secs(40));
        if status.is_none() {
            let _ = waiter.kill();
        }
        let out = waiter.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            status.is_some_and(|s| s.success()),
            "kubectl wait: {status:?}\n{stdout}\n{stderr}"
        );
        assert_eq!(
            stdout.trim(),
            "configmap/y condition met",
            "stderr: {stderr}"
        );
    });

    t.check("get configmaps -w sees later changes", || {
        c.kubectl_ok(&["create", "configmap", "w0", "-n", ns, "--from-literal=a=1"]);
        let mut child =
            c.spawn_kubectl(&["get", "configmaps", "-n", ns, "-w", "--output-watch-events"]);
        let mut lines = LineReader::new(child.stdout.take().unwrap());
        let stderr = child.stderr.take().unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let first = lines.wait_for(Duration::from_secs(15), |l| {
                l.split_whitespace().nth(1) == Some("w0")
            });
            assert!(
                first.is_some(),
                "initial listing never showed w0; got {:?}",
                lines.seen
            );
            assert_eq!(
                table(&lines.seen[0].clone())[0][..2],
                ["EVENT", "NAME"],
                "{:?}",
                lines.seen
            );
            assert_eq!(first.unwrap().split_whitespace().next(), Some("ADDED"));
            c.kubectl_ok(&["create", "configmap", "w1", "-n", ns, "--from-literal=a=1"]);
            let added = lines.wait_for(Duration::from_secs(10), |l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() >= 2 && cols[0] == "ADDED" && cols[1] == "w1"
            });
            assert!(added.is_some(), "no ADDED w1 event; got {:?}", lines.seen);
            c.kubectl_ok(&["label", "configmap", "w0", "-n", ns, "seen=yes"]);
            let modified = lines.wait_for(Duration::from_secs(10), |l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() >= 2 && cols[0] == "MODIFIED" && cols[1] == "w0"
            });
            assert!(
                modified.is_some(),
                "no MODIFIED w0 event; got {:?}",
                lines.seen
            );
            c.kubectl_ok(&["delete", "configmap", "w1", "-n", ns]);
            let deleted = lines.wait_for(Duration::from_secs(10), |l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() >= 2 && cols[0] == "DELETED" && cols[1] == "w1"
            });
            assert!(
                deleted.is_some(),
                "no DELETED w1 event; got {:?}",
                lines.seen
            );
        }));
        let _ = child.kill();
        let _ = child.wait();
        if let Err(e) = result {
            let mut err = String::new();
            let mut stderr = stderr;
            let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
            eprintln!("kubectl get -w stderr:\n{err}");
            std::panic::resume_unwind(e);
        }
    });

    t.check("get configmaps -w -o name (plain watch)", || {
        let mut child = c.spawn_kubectl(&["get", "configmaps", "-n", ns, "-w", "-o", "name"]);
        let mut lines = LineReader::new(child.stdout.take().unwrap());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert!(
                lines
                    .wait_for(Duration::from_secs(15), |l| l == "configmap/w0")
                    .is_some(),
                "initial listing never showed w0: {:?}",
                lines.seen
            );
            c.kubectl_ok(&["create", "configmap", "w2", "-n", ns, "--from-literal=a=1"]);
            assert!(
                lines
                    .wait_for(Duration::from_secs(10), |l| l == "configmap/w2")
                    .is_some(),
                "watch never showed w2: {:?}",
                lines.seen
            );
        }));
        let _ = child.kill();
        let _ = child.wait();
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    });

    t.finish();
}

const DEPLOYMENT_V1: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
    tier: frontend
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: nginx:1.25
        ports:
        - containerPort: 80
          name: http
        - containerPort: 9090
          name: metrics
        env:
        - name: MODE
          value: one
      - name: sidecar
        image: busybox:1.36
        command: ["sleep", "3600"]
"#;

/// V1 with: replicas changed, label `tier` removed, env MODE changed and
/// LEVEL added, port 9090 removed.
const DEPLOYMENT_V2: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: nginx:1.25
        ports:
        - containerPort: 80
          name: http
        env:
        - name: MODE
          value: two
        - name: LEVEL
          value: debug
      - name: sidecar
        image: busybox:1.36
        command: ["sleep", "3600"]
"#;

fn container<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap_or_else(|| panic!("no containers: {d}"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| {
            panic!(
                "no container {name}: {}",
                d["spec"]["template"]["spec"]["containers"]
            )
        })
}

/// Declarative workflow: apply / re-apply with removals, and every patch type.
#[test]
fn apply_and_patch() {
    let c = Cluster::create();
    let mut t = Checks::new("apply_and_patch");
    let ns = "declarative";
    c.create_namespace(ns);

    t.check("apply creates a Deployment", || {
        let out = c.kubectl_stdin_ok(&["apply", "-n", ns, "-f", "-"], DEPLOYMENT_V1);
        assert_eq!(out.trim(), "deployment.apps/web created");
        let d = c.kubectl_json(&["get", "deployment", "web", "-n", ns]);
        assert_eq!(d["spec"]["replicas"], 1, "{d}");
        assert_eq!(
            d["metadata"]["labels"],
            json!({"app": "web", "tier": "frontend"}),
            "{d}"
        );
        assert_eq!(d["metadata"]["generation"], 1, "{d}");
        let last = d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap_or_else(|| panic!("no last-applied annotation: {}", d["metadata"]));
        let last: Value = serde_json::from_str(last).unwrap();
        assert_eq!(last["spec"]["replicas"], 1);
        // Server-side defaulting of the Deployment.
        assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate", "{d}");
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10, "{d}");
        let app = container(&d, "app");
        assert_eq!(app["ports"][0]["protocol"], "TCP", "{app}");
        assert_eq!(app["imagePullPolicy"], "IfNotPresent", "{app}");
        assert_eq!(
            app["terminationMessagePath"], "/dev/termination-log",
            "{app}"
        );
    });

    t.check("apply again unchanged", || {
        let out = c.kubectl_stdin_ok(&["apply", "-n", ns, "-f", "-"], DEPLOYMENT_V1);
        assert_eq!(out.trim(), "deployment.apps/web unchanged");
    });

    t.check(
        "apply changed manifest: change, add, remove label, remove port",
        || {
            let out = c.kubectl_stdin_ok(&["apply", "-n", ns, "-f", "-"], DEPLOYMENT_V2);
            assert_eq!(out.trim(), "deployment.apps/web configured");
            let d = c.kubectl_json(&["get", "deployment", "web", "-n", ns]);
            assert_eq!(d["spec"]["replicas"], 2, "changed field: {}", d["spec"]);
            assert_eq!(
                d["metadata"]["labels"],
                json!({"app": "web"}),
                "label removal: {}",
                d["metadata"]
            );
            let app = container(&d, "app");
            assert_eq!(
                app["env"],
                json!([{"name": "MODE", "value": "two"}, {"name": "LEVEL", "value": "debug"}]),
                "env change/add: {app}"
            );
            let ports: Vec<&Value> = app["ports"].as_array().unwrap().iter().collect();
            assert_eq!(ports.len(), 1, "port 9090 not removed: {}", app["ports"]);
            assert_eq!(ports[0]["containerPort"], 80, "{}", app["ports"]);
            assert_eq!(ports[0]["name"], "http", "{}", app["ports"]);
            let sidecar = container(&d, "sidecar");
            assert_eq!(sidecar["image"], "busybox:1.36", "{sidecar}");
            assert_eq!(d["metadata"]["generation"], 2, "{}", d["metadata"]);
            let last: Value = serde_json::from_str(
                d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(
                last["spec"]["replicas"], 2,
                "last-applied not updated: {last}"
            );
        },
    );

    t.check("apply ConfigMap then remove a data key", || {
        let v1 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n  b: \"2\"\n";
        let v2 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n  c: \"3\"\n";
        assert_eq!(c.kubectl_stdin_ok(&["apply", "-n", ns, "-f", "-"], v1).trim(), "configmap/settings created");
        assert_eq!(c.kubectl_stdin_ok(&["apply", "-n", ns, "-f", "-"], v2).trim(), "configmap/settings configured");
        let v = c.kubectl_json(&["get", "configmap", "settings", "-n", ns]);
        assert_eq!(v["data"], json!({"a": "1", "c": "3"}), "{v}");
    });

    t.check("apply keeps fields set by others", || {
        // A label added imperatively is not in last-applied, so re-applying
        // must keep it.
        c.kubectl_ok(&["label", "configmap", "settings", "-n", ns, "owner=ops"]);
        let v3 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"9\"\n  c: \"3\"\n";
        assert_eq!(c.kubectl_stdin_ok(&["apply", "-n", ns, "-f", "-"], v3).trim(), "configmap/settings configured");
        let v = c.kubectl_json(&["get", "configmap", "settings", "-n", ns]);
        assert_eq!(v["data"], json!({"a": "9", "c": "3"}), "{v}");
        assert_eq!(v["metadata"]["labels"]["owner"], "ops", "{v}");
    });

    t.check("client-side apply records managedFields", || {
        let d = c.kubectl_json(&[
            "get",
            "deployment",
            "web",
            "-n",
            ns,
            "--show-managed-fields",
        ]);
        let mf = d["metadata"]["managedFields"]
            .as_array()
            .unwrap_or_else(|| panic!("no managedFields: {}", d["metadata"]));
        assert!(
            mf.iter()
                .any(|m| m["manager"] == "kubectl-client-side-apply" && m["operation"] == "Update"),
            "no kubectl-client-side-apply entry: {}",
            d["metadata"]["managedFields"]
        );
    });

    // Server-side apply (application/apply-patch+yaml) is not served yet: it is
    // its own later issue, and its checks arrive with it.

    t.check("patch --type=json", || {
        let out = c.kubectl_ok(&[
            "patch",
            "deployment",
            "web",
            "-n",
            ns,
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":3},{"op":"add","path":"/metadata/labels/patched","value":"json"}]"#,
        ]);
        assert_eq!(out.trim(), "deployment.apps/web patched");
        let d = c.kubectl_json(&["get", "deployment", "web", "-n", ns]);
        assert_eq!(d["spec"]["replicas"], 3, "{}", d["spec"]);
        assert_eq!(d["metadata"]["labels"]["patched"], "json", "{}", d["metadata"]);
    });

    t.check("patch --type=json failing test op", || {
        let err = c.kubectl_err(&[
            "patch",
            "deployment",
            "web",
            "-n",
            ns,
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/spec/replicas","value":42},{"op":"replace","path":"/spec/replicas","value":7}]"#,
        ]);
        // Upstream: 422 Invalid with the generic message and empty details.
        assert_eq!(
            err.trim(),
            "The request is invalid: the server rejected our request due to an error in our request"
        );
        let d = c.kubectl_json(&["get", "deployment", "web", "-n", ns]);
        assert_eq!(d["spec"]["replicas"], 3, "failed patch was applied: {}", d["spec"]);
    });

    t.check("patch --type=merge", || {
        let out = c.kubectl_ok(&[
            "patch",
            "deployment",
            "web",
            "-n",
            ns,
            "--type=merge",
            "-p",
            r#"{"metadata":{"annotations":{"merged":"yes"},"labels":{"patched":null}},"spec":{"minReadySeconds":5}}"#,
        ]);
        assert_eq!(out.trim(), "deployment.apps/web patched");
        let d = c.kubectl_json(&["get", "deployment", "web", "-n", ns]);
        assert_eq!(d["spec"]["minReadySeconds"], 5, "{}", d["spec"]);
        assert_eq!(d["metadata"]["annotations"]["merged"], "yes", "{}", d["metadata"]);
        assert!(d["metadata"]["labels"].get("patched").is_none(), "null did not delete: {}", d["metadata"]);
        assert_eq!(d["spec"]["replicas"], 3);
    });

    t.check("patch --type=strategic merges containers by name", || {
        let out = c.kubectl_ok(&[
            "patch",
            "deployment",
            "web",
            "-n",
            ns,
            "--type=strategic",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"nginx:1.27"}]}}}}"#,
        ]);
        assert_eq!(out.trim(), "deployment.apps/web patched");
        let d = c.kubectl_json(&["get", "deployment", "web", "-n", ns]);
        let app = container(&d, "app");
        assert_eq!(app["image"], "nginx:1.27", "{app}");
        assert_eq!(app["env"][1]["name"], "LEVEL", "env lost: {app}");
        assert_eq!(app["ports"][0]["containerPort"], 80, "ports lost: {app}");
        let sidecar = container(&d, "sidecar");
        assert_eq!(sidecar["image"], "busybox:1.36", "other container changed: {sidecar}");
    });

    t.check("patch (default strategic) with $patch: delete", || {
        let out = c.kubectl_ok(&[
            "patch",
            "deployment",
            "web",
            "-n",
            ns,
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#,
        ]);
        assert_eq!(out.trim(), "deployment.apps/web patched");
        let d = c.kubectl_json(&["get", "deployment", "web", "-n", ns]);
        let names: Vec<&str> = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["app"], "{}", d["spec"]["template"]["spec"]);
    });

    t.check("patch with no change", || {
        let out = c.kubectl_ok(&[
            "patch",
            "deployment",
            "web",
            "-n",
            ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":3}}"#,
        ]);
        assert_eq!(out.trim(), "deployment.apps/web patched (no change)");
    });

    t.check("scale deployment", || {
        let out = c.kubectl_ok(&["scale", "deployment", "web", "-n", ns, "--replicas=4"]);
        assert_eq!(out.trim(), "deployment.apps/web scaled");
        let d = c.kubectl_json(&["get", "deployment", "web", "-n", ns]);
        assert_eq!(d["spec"]["replicas"], 4);
    });

    t.check("get deployment table", || {
        let out = c.kubectl_ok(&["get", "deployments", "-n", ns]);
        let rows = table(&out);
        assert_eq!(
            rows[0],
            ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            "{out}"
        );
        assert_eq!(rows[1][0], "web", "{out}");
        let out = c.kubectl_ok(&["get", "deployments", "-n", ns, "-o", "wide"]);
        let rows = table(&out);
        assert_eq!(
            rows[0],
            [
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR"
            ],
            "{out}"
        );
        assert_contains(&out, "nginx:1.27");
        assert_contains(&out, "app=web");
    });

    t.check("delete -f manifest", || {
        let out = c.kubectl_stdin_ok(&["delete", "-n", ns, "-f", "-"], DEPLOYMENT_V2);
        assert_eq!(out.trim(), "deployment.apps \"web\" deleted");
        let err = c.kubectl_err(&["get", "deployment", "web", "-n", ns]);
        assert_contains(
            &err,
            "Error from server (NotFound): deployments.apps \"web\" not found",
        );
    });

    t.finish();
}

/// Error paths: what the user sees on stderr, and raw HTTP status codes.
#[test]
fn errors() {
    let c = Cluster::create();
    let mut t = Checks::new("errors");
    let ns = "errs";
    c.create_namespace(ns);

    t.check("get missing configmap → NotFound", || {
        let err = c.kubectl_err(&["get", "configmap", "nope", "-n", ns]);
        assert_eq!(
            err.trim(),
            "Error from server (NotFound): configmaps \"nope\" not found"
        );
    });

    t.check("get unknown resource type", || {
        let err = c.kubectl_err(&["get", "frobnicators"]);
        assert_contains(
            &err,
            "error: the server doesn't have a resource type \"frobnicators\"",
        );
    });

    t.check("create twice → AlreadyExists", || {
        let m = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\ndata:\n  a: b\n";
        assert_eq!(c.kubectl_stdin_ok(&["create", "-n", ns, "-f", "-"], m).trim(), "configmap/dup created");
        let err = c.kubectl_stdin_err(&["create", "-n", ns, "-f", "-"], m);
        assert_eq!(
            err.trim(),
            "Error from server (AlreadyExists): error when creating \"STDIN\": configmaps \"dup\" already exists"
        );
        let err = c.kubectl_err(&["create", "configmap", "dup", "-n", ns]);
        assert_eq!(err.trim(), "error: failed to create configmap: configmaps \"dup\" already exists");
        let err = c.kubectl_err(&["create", "namespace", ns]);
        assert_eq!(err.trim(), format!("Error from server (AlreadyExists): namespaces \"{ns}\" already exists"));
    });

    t.check("invalid name → Invalid value", || {
        let err = c.kubectl_err(&["create", "configmap", "Bad_Name", "-n", ns]);
        assert_contains(&err, "is invalid");
        assert_contains(&err, "Invalid value: \"Bad_Name\"");
        assert_contains(
            &err,
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        );
    });

    t.check("invalid object via create -f → Invalid", || {
        let m = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: bad\nspec:\n  replicas: -1\n  selector:\n    matchLabels:\n      app: a\n  template:\n    metadata:\n      labels:\n        app: b\n    spec:\n      containers:\n      - name: c\n        image: x\n";
        let err = c.kubectl_stdin_err(&["create", "-n", ns, "-f", "-"], m);
        assert_eq!(
            err.trim_end(),
            "The Deployment \"bad\" is invalid: \n\
             * spec.replicas: Invalid value: -1: must be greater than or equal to 0\n\
             * spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"b\"}: `selector` does not match template `labels`"
        );
    });

    t.check("unknown field → strict decoding error (apply)", || {
        let m =
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\nbogus: 1\ndata:\n  a: b\n";
        let err = c.kubectl_stdin_err(&["apply", "-n", ns, "-f", "-"], m);
        assert_contains(&err, "strict decoding error: unknown field \"bogus\"");
        assert_contains(&err, "Error from server (BadRequest)");
        c.kubectl_err(&["get", "configmap", "strict", "-n", ns]);
    });

    t.check("unknown nested field → strict decoding error (create)", || {
        let m = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: strict\nspec:\n  selector:\n    matchLabels:\n      app: a\n  template:\n    metadata:\n      labels:\n        app: a\n    spec:\n      containers:\n      - name: c\n        image: x\n        imagePullPolicyy: Always\n";
        let err = c.kubectl_stdin_err(&["create", "-n", ns, "-f", "-"], m);
        assert_contains(
            &err,
            "Error from server (BadRequest): error when creating \"STDIN\": Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.template.spec.containers[0].imagePullPolicyy\"",
        );
    });

    t.check("unknown field accepted with --validate=false", || {
        let m =
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lax\nbogus: 1\ndata:\n  a: b\n";
        let out = c.kubectl_stdin_ok(&["create", "-n", ns, "-f", "-", "--validate=false"], m);
        assert_eq!(out.trim(), "configmap/lax created");
    });

    t.check("malformed YAML through apply → error", || {
        let m = "apiVersion: v1\nkind: ConfigMap\nmetadata: [name: broken\n  data: {\n";
        let err = c.kubectl_stdin_err(&["apply", "-n", ns, "-f", "-"], m);
        assert_contains(&err, "error");
        assert_not_contains(&err, "created");
        c.kubectl_err(&["get", "configmap", "broken", "-n", ns]);
    });

    t.check("create in missing namespace → NotFound namespaces", || {
        let m = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: orphan\ndata:\n  a: b\n";
        let err = c.kubectl_stdin_err(&["create", "-n", "ghost", "-f", "-"], m);
        assert_eq!(
            err.trim(),
            "Error from server (NotFound): error when creating \"STDIN\": namespaces \"ghost\" not found"
        );
        let err = c.kubectl_err(&["create", "configmap", "orphan", "-n", "ghost"]);
        assert_eq!(err.trim(), "error: failed to create configmap: namespaces \"ghost\" not found");
    });

    t.check("namespace mismatch between flag and manifest", || {
        let m = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mm\n  namespace: default\n";
        let err = c.kubectl_stdin_err(&["create", "-n", ns, "-f", "-"], m);
        assert_contains(
            &err,
            "the namespace from the provided object \"default\" does not match the namespace",
        );
    });

    t.check("raw GET not found via kubectl get --raw", || {
        let err = c.kubectl_err(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/{ns}/configmaps/nope"),
        ]);
        assert_contains(
            &err,
            "Error from server (NotFound): configmaps \"nope\" not found",
        );
    });

    t.check("curl PATCH text/plain → 415 Status", || {
        let (code, body) = c.curl(
            "PATCH",
            &format!("/api/v1/namespaces/{ns}/configmaps/dup"),
            "text/plain",
            Some(b"data: {a: c}"),
        );
        assert_eq!(code, 415, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
        assert_eq!(v["kind"], "Status", "{body}");
        assert_eq!(v["apiVersion"], "v1", "{body}");
        assert_eq!(v["status"], "Failure", "{body}");
        assert_eq!(v["reason"], "UnsupportedMediaType", "{body}");
        assert_eq!(v["code"], 415, "{body}");
        assert_eq!(
            v["message"],
            // Upstream also lists application/apply-patch+yaml, which arrives with server-side apply.
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json",
            "{body}"
        );
    });

    t.check("curl POST text/plain → 415 Status", || {
        let (code, body) = c.curl(
            "POST",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            "text/plain",
            Some(b"hello"),
        );
        assert_eq!(code, 415, "{body}");
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
        assert_eq!(v["kind"], "Status", "{body}");
        assert_eq!(v["reason"], "UnsupportedMediaType", "{body}");
        assert_eq!(v["code"], 415, "{body}");
    });

    t.check("curl POST 4 MiB body → 413 Status (HTTP/1.1)", || {
        // curl 7.88 over HTTP/2 reports "Stream error in the HTTP/2 framing
        // layer" when the server answers before reading the whole body and
        // then resets the stream, so the raw check uses HTTP/1.1; the
        // kubectl check below covers HTTP/2.
        let big = "x".repeat(4 << 20);
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "huge"}, "data": {"a": big}});
        let (code, body) = c.curl_with(
            &["--http1.1"],
            "POST",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            "application/json",
            Some(serde_json::to_vec(&obj).unwrap().as_slice()),
        );
        assert_eq!(code, 413, "{}", &body[..body.len().min(2000)]);
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
        assert_eq!(v["kind"], "Status", "{body}");
        assert_eq!(v["reason"], "RequestEntityTooLarge", "{body}");
        assert_eq!(v["code"], 413, "{body}");
        assert_eq!(v["message"], "Request entity too large: limit is 3145728", "{body}");
        c.kubectl_err(&["get", "configmap", "huge", "-n", ns]);
    });

    t.check("kubectl create of a 4 MiB object → RequestEntityTooLarge", || {
        let big = "x".repeat(4 << 20);
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "huge"}, "data": {"a": big}});
        let path = c.scratch("huge.json");
        std::fs::write(&path, serde_json::to_vec(&obj).unwrap()).unwrap();
        let err = c.kubectl_err(&["create", "-n", ns, "-f", path.to_str().unwrap()]);
        assert_eq!(
            err.trim(),
            format!(
                "Error from server (RequestEntityTooLarge): error when creating \"{}\": Request entity too large: limit is 3145728",
                path.display()
            )
        );
    });

    t.check("curl GET with bad Accept → 406", || {
        let (code, body) = {
            // curl() always sends Accept: application/json; use a raw call.
            let mut cmd = std::process::Command::new("curl");
            cmd.args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
                .arg("--cacert")
                .arg(c.pki("ca.crt"))
                .arg("--cert")
                .arg(c.pki("admin.crt"))
                .arg("--key")
                .arg(c.pki("admin.key"))
                .args(["-H", "Accept: application/x-frobnicate"])
                .arg(format!("{}/api/v1/namespaces/{ns}/configmaps", c.server()));
            let out = test_e2e::run_with_timeout(cmd, None, Duration::from_secs(30));
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
            (code.trim().parse::<u16>().unwrap_or(0), body.to_string())
        };
        assert_eq!(code, 406, "{body}");
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
        assert_eq!(v["reason"], "NotAcceptable", "{body}");
    });

    t.finish();
}
