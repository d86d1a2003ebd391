//! Server tests that need no runtime: the CRI channel points at nothing, so
//! CRI calls fail and the code paths that do not depend on them are checked
//! (authentication, routing, pods, container logs from the log directory).

use super::*;
use component_base::certs;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus,
    PodSpec, PodStatus,
};

struct Fixture {
    addr: SocketAddr,
    ca: String,
    client: (String, String),
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn pod() -> Pod {
    Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("uid-1".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![
                Container {
                    name: "app".into(),
                    ..Default::default()
                },
                Container {
                    name: "side".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }),
        status: Some(PodStatus {
            container_statuses: Some(vec![
                ContainerStatus {
                    name: "app".into(),
                    container_id: Some("containerd://abc".into()),
                    state: Some(ContainerState {
                        running: Some(ContainerStateRunning::default()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ContainerStatus {
                    name: "side".into(),
                    state: Some(ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some("ContainerCreating".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
    }
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_key) = certs::generate_ca("ca").unwrap();
    let (crt, key) = certs::generate_serving_cert(
        &ca,
        &ca_key,
        "node",
        &["localhost".into()],
        &[IpAddr::from([127, 0, 0, 1])],
    )
    .unwrap();
    let client = certs::generate_client_cert(&ca, &ca_key, "kube-apiserver", &[]).unwrap();
    let tls = component_base::tls::server_config_from(
        component_base::tls::parse_certs(crt.as_bytes()).unwrap(),
        component_base::tls::parse_key(key.as_bytes()).unwrap(),
        Some(component_base::tls::parse_certs(ca.as_bytes()).unwrap()),
    )
    .unwrap();
    let logs = dir.path().join("pod-logs");
    let cdir = logs.join("default_web_uid-1").join("app");
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::write(
        cdir.join("0.log"),
        "2024-01-01T00:00:01Z stdout F hello\n2024-01-01T00:00:02Z stderr F world\n",
    )
    .unwrap();
    let deps = ServerDeps {
        runtime: RuntimeServiceClient::new(
            cri::connect_lazy(&format!(
                "unix://{}",
                dir.path().join("none.sock").display()
            ))
            .unwrap(),
        ),
        pods: Arc::new(|| vec![pod()]),
        pod_logs_dir: logs,
        node_name: "node".into(),
        registry: prometheus::Registry::new(),
        root_dir: dir.path().to_path_buf(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_listener(
        listener,
        Arc::new(tls),
        true,
        deps,
        async move {
            let _ = rx.await;
        },
    ));
    Fixture {
        addr,
        ca,
        client,
        _dir: dir,
        stop: Some(tx),
    }
}

async fn get(
    f: &Fixture,
    method: &str,
    path: &str,
    with_cert: bool,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let ca = component_base::tls::parse_certs(f.ca.as_bytes()).unwrap();
    let client = with_cert.then(|| {
        (
            component_base::tls::parse_certs(f.client.0.as_bytes()).unwrap(),
            component_base::tls::parse_key(f.client.1.as_bytes()).unwrap(),
        )
    });
    let cfg = component_base::tls::client_config_from(&ca, client).unwrap();
    let tcp = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let r = s
        .send_request(b.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let code = r.status().as_u16();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn authentication_and_routes() {
    let f = start().await;
    assert_eq!(
        get(&f, "GET", "/healthz", false, &[]).await,
        (200, "ok".into())
    );
    assert_eq!(get(&f, "GET", "/pods", false, &[]).await.0, 401);
    let (code, body) = get(&f, "GET", "/pods", true, &[]).await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["kind"], "PodList");
    assert_eq!(v["items"][0]["metadata"]["name"], "web");
    assert_eq!(get(&f, "GET", "/nope", true, &[]).await.0, 404);
    let (code, body) = get(&f, "GET", "/metrics", true, &[]).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn container_logs() {
    let f = start().await;
    let (code, body) = get(&f, "GET", "/containerLogs/default/web/app", true, &[]).await;
    assert_eq!((code, body.as_str()), (200, "hello\nworld\n"));
    let (code, body) = get(
        &f,
        "GET",
        "/containerLogs/default/web/app?tailLines=1&timestamps=true",
        true,
        &[],
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "2024-01-01T00:00:02Z world\n"));
    let (code, body) = get(&f, "GET", "/containerLogs/default/web/side", true, &[]).await;
    assert_eq!(code, 400);
    assert_eq!(
        body.trim_end(),
        r#"container "side" in pod "web" is waiting to start: ContainerCreating"#
    );
    let (code, body) = get(
        &f,
        "GET",
        "/containerLogs/default/web/app?previous=true",
        true,
        &[],
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        body.trim_end(),
        r#"previous terminated container "app" in pod "web" not found"#
    );
    assert_eq!(
        get(&f, "GET", "/containerLogs/default/web/nope", true, &[]).await,
        (404, "container \"nope\" not found in pod \"web\"\n".into())
    );
    assert_eq!(
        get(&f, "GET", "/containerLogs/default/other/app", true, &[]).await,
        (404, "pod \"other\" does not exist\n".into())
    );
    assert_eq!(
        get(
            &f,
            "GET",
            "/containerLogs/default/web/app?tailLines=-1",
            true,
            &[]
        )
        .await
        .0,
        422
    );
}

#[tokio::test]
async fn streaming_preconditions() {
    let f = start().await;
    let (code, body) = get(&f, "POST", "/exec/default/web/app?command=ls", true, &[]).await;
    assert_eq!(code, 400);
    assert_eq!(
        body.trim_end(),
        "you must specify at least 1 of stdin, stdout, stderr"
    );
    let (code, body) = get(
        &f,
        "POST",
        "/exec/default/web/app?command=ls&output=1",
        true,
        &[],
    )
    .await;
    assert_eq!((code, body.trim_end()), (400, "Upgrade request required"));
    let (code, body) = get(&f, "POST", "/exec/default/gone/app?output=1", true, &[]).await;
    assert_eq!((code, body.trim_end()), (404, "pod does not exist"));
    let up = [("connection", "Upgrade"), ("upgrade", "SPDY/3.1")];
    // The runtime is unreachable: a 500 with the CRI error, not a hang or a panic.
    let (code, _) = get(&f, "POST", "/exec/default/web/app?output=1", true, &up).await;
    assert_eq!(code, 500);
    let (code, _) = get(&f, "POST", "/portForward/default/web", true, &up).await;
    assert_eq!(code, 500);
}
