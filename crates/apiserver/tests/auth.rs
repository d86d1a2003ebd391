//! Authentication and authorization at the front door.

use apiserver::testing::TestServer;
use base64::Engine;

async fn client_with_user(srv: &TestServer, user_yaml: &str) -> kube::Client {
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let kc = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user: {user_yaml}\ncontexts:\n- name: t\n  context: {{cluster: t, user: u}}\ncurrent-context: t\n",
        srv.url(),
        b(&srv.pki.ca_pem)
    );
    let kc = kube::config::Kubeconfig::from_yaml(&kc).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

async fn status_of(c: &kube::Client, path: &str) -> u16 {
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    match c.request_text(req).await {
        Ok(_) => 200,
        Err(kube::Error::Api(e)) => e.code,
        Err(e) => panic!("transport error {e:?}"),
    }
}

#[tokio::test]
async fn anonymous_is_401_unless_enabled_and_then_only_reads_public_paths() {
    let srv = TestServer::start().await.unwrap();
    let anon = client_with_user(&srv, "{}").await;
    assert_eq!(status_of(&anon, "/api/v1/namespaces").await, 401);
    assert_eq!(status_of(&anon, "/readyz").await, 401);
    let bad_token = client_with_user(&srv, "{token: not-a-token}").await;
    assert_eq!(status_of(&bad_token, "/api/v1/namespaces").await, 401);
    let token = client_with_user(&srv, &format!("{{token: {}}}", srv.pki.admin_token)).await;
    assert_eq!(status_of(&token, "/api/v1/namespaces").await, 200);
    // The admin client certificate authenticates too.
    assert_eq!(
        status_of(&srv.client().await.unwrap(), "/api/v1/namespaces").await,
        200
    );
    srv.stop().await.unwrap();

    let srv = TestServer::start_with(1, vec!["--anonymous-auth=true".into()])
        .await
        .unwrap();
    let anon = client_with_user(&srv, "{}").await;
    assert_eq!(status_of(&anon, "/readyz").await, 200);
    assert_eq!(status_of(&anon, "/version").await, 200);
    assert_eq!(status_of(&anon, "/api/v1/namespaces").await, 403);
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_ends_watches_cleanly() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, WatchParams};
    let srv = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await.unwrap(), "default");
    let mut w = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let stopping = tokio::spawn(srv.stop());
    // The stream ends (no hang) once the server shuts down.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(ev) = w.next().await {
            if ev.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "watch did not end on shutdown");
    stopping.await.unwrap().unwrap();
}
