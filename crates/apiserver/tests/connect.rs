//! pods/log, pods/exec and nodes/proxy through the apiserver to a fake
//! kubelet (HTTPS): options and container checks, streamed logs, kubelet
//! errors mapped as upstream, upgrades spliced, WebSocket v5 refused so
//! clients fall back to SPDY.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use apiserver::testing::TestServer;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, LogParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Seen = Arc<Mutex<Vec<String>>>;

async fn fake_kubelet_handler(
    seen: Seen,
    mut req: http::Request<Incoming>,
) -> Result<http::Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>, Infallible> {
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    seen.lock().unwrap().push(format!("{} {pq}", req.method()));
    let path = req.uri().path().to_string();
    let full = |code: u16, s: &str| {
        http::Response::builder()
            .status(code)
            .body(Full::new(Bytes::from(s.to_string())).boxed())
            .unwrap()
    };
    if path == "/containerLogs/default/web/app" {
        return Ok(full(200, "line a\nline b\n"));
    }
    if path == "/containerLogs/default/web/side" {
        return Ok(full(
            400,
            "container \"side\" in pod \"web\" is waiting to start: ContainerCreating",
        ));
    }
    if path == "/exec/default/web/app" {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 64];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let up: Vec<u8> = buf[..n].to_ascii_uppercase();
                    if io.write_all(&up).await.is_err() {
                        break;
                    }
                }
            }
        });
        return Ok(http::Response::builder()
            .status(101)
            .header("connection", "Upgrade")
            .header("upgrade", "SPDY/3.1")
            .header("x-stream-protocol-version", "v4.channel.k8s.io")
            .body(Empty::new().boxed())
            .unwrap());
    }
    if path == "/stats/summary" {
        return Ok(full(200, r#"{"node":{"nodeName":"n1"}}"#));
    }
    Ok(full(404, "404 page not found\n"))
}

async fn start_fake_kubelet(seen: Seen) -> u16 {
    let (ca, ca_key) = component_base::certs::generate_ca("kubelet-ca").unwrap();
    let (crt, key) = component_base::certs::generate_serving_cert(
        &ca,
        &ca_key,
        "n1",
        &[],
        &["127.0.0.1".parse().unwrap()],
    )
    .unwrap();
    let mut cfg = component_base::tls::server_config_from(
        component_base::tls::parse_certs(crt.as_bytes()).unwrap(),
        component_base::tls::parse_key(key.as_bytes()).unwrap(),
        None,
    )
    .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc =
                    hyper::service::service_fn(move |r| fake_kubelet_handler(seen.clone(), r));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    port
}

/// A raw HTTP/1.1 exchange with the apiserver as the admin; returns the
/// response head and the stream for what follows.
async fn raw(
    ts: &TestServer,
    request: &str,
) -> (
    String,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) {
    let ca = component_base::tls::parse_certs(ts.pki.ca_pem.as_bytes()).unwrap();
    let client = (
        component_base::tls::parse_certs(ts.pki.admin_cert_pem.as_bytes()).unwrap(),
        component_base::tls::parse_key(ts.pki.admin_key_pem.as_bytes()).unwrap(),
    );
    let mut cfg = component_base::tls::client_config_from(&ca, Some(client)).unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", ts.port))
        .await
        .unwrap();
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(
            rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await.unwrap() == 0 {
            break;
        }
        head.push(b[0]);
    }
    (String::from_utf8_lossy(&head).into_owned(), s)
}

#[tokio::test]
async fn connect_subresources_reach_the_kubelet() {
    let Ok(ts) = TestServer::start_with(
        1,
        vec!["--kubelet-preferred-address-types=InternalIP,Hostname".into()],
    )
    .await
    else {
        eprintln!("etcd not available; skipping");
        return;
    };
    let seen: Seen = Arc::default();
    let kport = start_fake_kubelet(seen.clone()).await;
    let client = ts.client().await.unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap(),
        )
        .await
        .unwrap();
    nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": kport}}
            }})),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"nodeName": "n1",
            "containers": [{"name": "app", "image": "busybox"}, {"name": "side", "image": "busybox"}]}}))
        .unwrap(),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "solo"}, "spec": {
            "containers": [{"name": "c", "image": "busybox"}]}}))
        .unwrap(),
    )
    .await
    .unwrap();

    // Logs stream through, with the options passed on as the kubelet takes them.
    let lp = LogParams {
        container: Some("app".into()),
        tail_lines: Some(5),
        timestamps: true,
        ..Default::default()
    };
    assert_eq!(pods.logs("web", &lp).await.unwrap(), "line a\nline b\n");
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|s| s == "GET /containerLogs/default/web/app?tailLines=5&timestamps=true"));
    // The kubelet's 400 becomes a BadRequest with its message.
    let err = pods
        .logs(
            "web",
            &LogParams {
                container: Some("side".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 400);
            assert_eq!(
                s.message,
                "container \"side\" in pod \"web\" is waiting to start: ContainerCreating"
            );
        }
        e => panic!("unexpected {e:?}"),
    }
    // No container named with two containers: upstream's message.
    match pods.logs("web", &LogParams::default()).await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!(
            s.message,
            "a container name must be specified for pod web, choose one of: [app side]"
        ),
        e => panic!("unexpected {e:?}"),
    }
    // Invalid options: 422 PodLogOptions.
    match pods
        .logs(
            "web",
            &LogParams {
                container: Some("app".into()),
                limit_bytes: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(
                s.message
                    .contains("limitBytes: Invalid value: 0: must be greater than 0"),
                "{}",
                s.message
            );
        }
        e => panic!("unexpected {e:?}"),
    }
    // An unscheduled pod has no logs yet (empty), and cannot be exec'd into.
    assert_eq!(pods.logs("solo", &LogParams::default()).await.unwrap(), "");

    // exec: the SPDY upgrade is spliced to the kubelet.
    let (head, mut s) = raw(
        &ts,
        "POST /api/v1/namespaces/default/pods/web/exec?command=ls&container=app&stdout=true&stdin=true HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );
    s.write_all(b"hello").await.unwrap();
    let mut got = [0u8; 5];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"HELLO");
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|x| x == "POST /exec/default/web/app?command=ls&input=1&output=1"));

    // WebSocket offering only v5: refused before reaching the kubelet (clients fall back to SPDY).
    let (head, _) = raw(
        &ts,
        "GET /api/v1/namespaces/default/pods/web/exec?command=ls&container=app&stdout=true HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    // Without an upgrade: 400 as upstream.
    let (head, _) = raw(
        &ts,
        "POST /api/v1/namespaces/default/pods/web/exec?command=ls&container=app&stdout=true HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let (head, _) = raw(
        &ts,
        "POST /api/v1/namespaces/default/pods/solo/exec?command=ls&stdout=true HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");

    // nodes/proxy forwards the path.
    let v: serde_json::Value = client
        .request(
            http::Request::get("/api/v1/nodes/n1/proxy/stats/summary")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(v["node"]["nodeName"], "n1");
    ts.stop().await.unwrap();
}
