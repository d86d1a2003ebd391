//! Service-account tokens: TokenRequest (serviceaccounts/token), the JWT
//! authenticator, and the ServiceAccount admission plugin.

use std::time::Duration;

use apiserver::testing::{TestServer, SA_ISSUER};
use base64::Engine;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{json, Value};

async fn server() -> TestServer {
    TestServer::start_with(1, vec!["--enable-admission-plugins=ServiceAccount".into()])
        .await
        .unwrap()
}

async fn bearer_client(srv: &TestServer, token: &str) -> kube::Client {
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let kc = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user: {{token: {token}}}\ncontexts:\n- name: t\n  context: {{cluster: t, user: u}}\ncurrent-context: t\n",
        srv.url(),
        b(&srv.pki.ca_pem)
    );
    let kc = kube::config::Kubeconfig::from_yaml(&kc).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

async fn list_pods_status(c: &kube::Client, ns: &str) -> u16 {
    match Api::<Pod>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        Ok(_) => 200,
        Err(kube::Error::Api(e)) => e.code,
        Err(e) => panic!("transport error {e:?}"),
    }
}

/// Poll until listing pods with the token answers `want` (caches catch up).
async fn wait_status(c: &kube::Client, ns: &str, want: u16) {
    let mut last = 0;
    for _ in 0..100 {
        last = list_pods_status(c, ns).await;
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("listing pods answered {last}, want {want}");
}

async fn setup_ns(c: &kube::Client, ns: &str, accounts: &[&str]) {
    let nss: Api<Namespace> = Api::all(c.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
    )
    .await
    .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(c.clone(), ns);
    for a in accounts {
        sas.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": a}})).unwrap(),
        )
        .await
        .unwrap();
    }
}

fn claims_of(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .unwrap();
    serde_json::from_slice(&b).unwrap()
}

fn token_request(
    audiences: &[&str],
    exp: Option<i64>,
    bound: Option<(&str, &str, &str)>,
) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            audiences: audiences.iter().map(|s| s.to_string()).collect(),
            expiration_seconds: exp,
            bound_object_ref: bound.map(|(kind, name, uid)| BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some(kind.into()),
                name: Some(name.into()),
                uid: (!uid.is_empty()).then(|| uid.to_string()),
            }),
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn token_request_issues_jwts_that_authenticate_as_the_service_account() {
    let srv = server().await;
    let admin = srv.client().await.unwrap();
    let ns = "sa-token";
    setup_ns(&admin, ns, &["default", "robot"]).await;
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let robot = sas.get("robot").await.unwrap();
    let robot_uid = robot.metadata.uid.clone().unwrap();

    // Defaults: the API audiences (the issuer) and one hour.
    let tr = sas
        .create_token_request(
            "robot",
            &PostParams::default(),
            &token_request(&[], None, None),
        )
        .await
        .unwrap();
    assert_eq!(tr.spec.audiences, vec![SA_ISSUER.to_string()]);
    assert_eq!(tr.spec.expiration_seconds, Some(3600));
    let status = tr.status.unwrap();
    let c = claims_of(&status.token);
    assert_eq!(c["iss"], SA_ISSUER);
    assert_eq!(c["sub"], "system:serviceaccount:sa-token:robot");
    assert_eq!(c["aud"], json!([SA_ISSUER]));
    assert_eq!(c["kubernetes.io"]["namespace"], ns);
    assert_eq!(
        c["kubernetes.io"]["serviceaccount"],
        json!({"name": "robot", "uid": robot_uid})
    );
    let (iat, exp, nbf) = (
        c["iat"].as_i64().unwrap(),
        c["exp"].as_i64().unwrap(),
        c["nbf"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);
    assert_eq!(nbf, iat);
    assert!(!c["jti"].as_str().unwrap().is_empty());
    let expires = status.expiration_timestamp.0.as_second();
    assert!((expires - exp).abs() <= 1, "{expires} vs {exp}");

    // The token lists pods, and is the service account.
    let as_robot = bearer_client(&srv, &status.token).await;
    assert_eq!(list_pods_status(&as_robot, ns).await, 200);
    let state = srv.running.as_ref().unwrap().state.clone();
    let authn = apiserver::serviceaccount::Authenticator {
        tokens: state.service_accounts.clone(),
        registry: state.registry.clone(),
    };
    let user = authn.authenticate(&status.token).await.unwrap().unwrap();
    assert_eq!(user.name, "system:serviceaccount:sa-token:robot");
    assert_eq!(user.uid, robot_uid);
    assert_eq!(
        user.groups,
        vec![
            "system:serviceaccounts",
            "system:serviceaccounts:sa-token",
            "system:authenticated"
        ]
    );
    // The admin's static token and client certificate still work.
    let static_token = bearer_client(&srv, &srv.pki.admin_token).await;
    assert_eq!(list_pods_status(&static_token, ns).await, 200);
    assert_eq!(list_pods_status(&admin, ns).await, 200);

    // Validation and binding errors.
    let err = |r: Result<TokenRequest, kube::Error>| match r {
        Err(kube::Error::Api(e)) => (e.code, e.message),
        other => panic!("expected an API error, got {other:?}"),
    };
    let (code, msg) = err(sas
        .create_token_request(
            "robot",
            &PostParams::default(),
            &token_request(&[], Some(599), None),
        )
        .await);
    assert_eq!(code, 422, "{msg}");
    assert!(
        msg.contains("may not specify a duration less than 10 minutes"),
        "{msg}"
    );
    let (code, _) = err(sas
        .create_token_request(
            "nobody",
            &PostParams::default(),
            &token_request(&[], None, None),
        )
        .await);
    assert_eq!(code, 404);
    let (code, msg) = err(sas
        .create_token_request(
            "robot",
            &PostParams::default(),
            &token_request(&[], None, Some(("ConfigMap", "x", ""))),
        )
        .await);
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("cannot bind token to object of type"), "{msg}");

    // A token for another audience is not for the API.
    let other_aud = sas
        .create_token_request(
            "robot",
            &PostParams::default(),
            &token_request(&["vault"], None, None),
        )
        .await
        .unwrap();
    let c = bearer_client(&srv, &other_aud.status.unwrap().token).await;
    assert_eq!(list_pods_status(&c, ns).await, 401);

    // Deleting the service account revokes its tokens.
    sas.delete("robot", &DeleteParams::default()).await.unwrap();
    wait_status(&as_robot, ns, 401).await;
    // Recreated under the same name: a new uid, the old token stays dead.
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "robot"}})).unwrap(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(list_pods_status(&as_robot, ns).await, 401);
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn pod_bound_tokens_die_with_the_pod() {
    let srv = server().await;
    let admin = srv.client().await.unwrap();
    let ns = "sa-bound";
    setup_ns(&admin, ns, &["default", "robot"]).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let pod_uid = pod.metadata.uid.clone().unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);

    // The uid must match; the pod must run as the account.
    let r = sas
        .create_token_request(
            "robot",
            &PostParams::default(),
            &token_request(&[], None, Some(("Pod", "p", "wrong"))),
        )
        .await;
    assert!(
        matches!(r, Err(kube::Error::Api(ref e)) if e.code == 409),
        "{r:?}"
    );
    let r = sas
        .create_token_request(
            "default",
            &PostParams::default(),
            &token_request(&[], None, Some(("Pod", "p", ""))),
        )
        .await;
    assert!(
        matches!(r, Err(kube::Error::Api(ref e)) if e.code == 400),
        "{r:?}"
    );

    // What the kubelet asks for: 3607 s, bound to the pod, extended to a
    // year with warnafter at the requested expiry.
    let tr = sas
        .create_token_request(
            "robot",
            &PostParams::default(),
            &token_request(&[], Some(3607), Some(("Pod", "p", &pod_uid))),
        )
        .await
        .unwrap();
    assert_eq!(tr.spec.expiration_seconds, Some(3607));
    let token = tr.status.unwrap().token;
    let c = claims_of(&token);
    assert_eq!(
        c["kubernetes.io"]["pod"],
        json!({"name": "p", "uid": pod_uid})
    );
    let iat = c["iat"].as_i64().unwrap();
    assert_eq!(c["exp"].as_i64().unwrap() - iat, 365 * 24 * 3600);
    assert_eq!(
        c["kubernetes.io"]["warnafter"].as_i64().unwrap() - iat,
        3607
    );

    let as_pod = bearer_client(&srv, &token).await;
    assert_eq!(list_pods_status(&as_pod, ns).await, 200);
    let state = srv.running.as_ref().unwrap().state.clone();
    let authn = apiserver::serviceaccount::Authenticator {
        tokens: state.service_accounts.clone(),
        registry: state.registry.clone(),
    };
    let user = authn.authenticate(&token).await.unwrap().unwrap();
    assert_eq!(
        user.extra.get("authentication.kubernetes.io/pod-name"),
        Some(&vec!["p".to_string()])
    );

    // Deleting the (unscheduled) pod removes it at once: the token dies.
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    wait_status(&as_pod, ns, 401).await;
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn garbage_expired_and_foreign_tokens_are_401() {
    let srv = server().await;
    for token in [
        "garbage",
        "a.b.c",
        // A well-formed but unsigned token claiming our issuer.
        &format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
                json!({"iss": SA_ISSUER, "sub": "system:serviceaccount:default:default", "aud": [SA_ISSUER], "exp": 9999999999i64}).to_string()
            )
        ),
    ] {
        let c = bearer_client(&srv, token).await;
        assert_eq!(list_pods_status(&c, "default").await, 401, "{token}");
    }
    // Expired: signed with the server's own key, an hour in the past.
    let state = srv.running.as_ref().unwrap().state.clone();
    let now = chrono_now();
    let claims = apiserver::serviceaccount::Claims {
        aud: vec![SA_ISSUER.into()],
        exp: now - 3600,
        iat: now - 7200,
        iss: SA_ISSUER.into(),
        jti: String::new(),
        kubernetes: Default::default(),
        nbf: now - 7200,
        sub: "system:serviceaccount:default:default".into(),
    };
    let expired = state.service_accounts.sign(&claims).unwrap();
    let c = bearer_client(&srv, &expired).await;
    assert_eq!(list_pods_status(&c, "default").await, 401);
    srv.stop().await.unwrap();
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn admission_defaults_the_account_and_mounts_the_api_access_volume() {
    let srv = server().await;
    let admin = srv.client().await.unwrap();
    let ns = "sa-admission";
    setup_ns(&admin, ns, &["default"]).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "c", "image": "busybox"}],
        },
    }))
    .unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let v = serde_json::to_value(&pod).unwrap();
    assert_eq!(v["spec"]["serviceAccountName"], "default");
    let vols = v["spec"]["volumes"].as_array().unwrap();
    assert_eq!(vols.len(), 1);
    let name = vols[0]["name"].as_str().unwrap();
    assert!(
        name.starts_with("kube-api-access-") && name.len() == "kube-api-access-".len() + 5,
        "{name}"
    );
    assert_eq!(
        vols[0]["projected"],
        json!({
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        })
    );
    let mount = json!([{"name": name, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]);
    assert_eq!(v["spec"]["containers"][0]["volumeMounts"], mount);
    assert_eq!(v["spec"]["initContainers"][0]["volumeMounts"], mount);

    // automountServiceAccountToken: false on the pod: nothing mounted.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "q"},
        "spec": {"automountServiceAccountToken": false, "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    let v = serde_json::to_value(pods.create(&PostParams::default(), &pod).await.unwrap()).unwrap();
    assert_eq!(v["spec"]["serviceAccountName"], "default");
    assert!(
        v["spec"]
            .get("volumes")
            .is_none_or(|x| x.as_array().is_none_or(|a| a.is_empty())),
        "{v}"
    );
    assert!(v["spec"]["containers"][0]
        .get("volumeMounts")
        .is_none_or(|m| m.as_array().is_none_or(|a| a.is_empty())));

    // ... or on the service account.
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "quiet"}, "automountServiceAccountToken": false}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "r"},
        "spec": {"serviceAccountName": "quiet", "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    let v = serde_json::to_value(pods.create(&PostParams::default(), &pod).await.unwrap()).unwrap();
    assert!(
        v["spec"]
            .get("volumes")
            .is_none_or(|x| x.as_array().is_none_or(|a| a.is_empty())),
        "{v}"
    );

    // The deprecated serviceAccount field names the account too.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "old-style"},
        "spec": {"serviceAccount": "quiet", "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    let v = serde_json::to_value(pods.create(&PostParams::default(), &pod).await.unwrap()).unwrap();
    assert_eq!(v["spec"]["serviceAccountName"], "quiet");
    assert_eq!(v["spec"]["serviceAccount"], "quiet");

    // Mirror pods are not changed, and may not use secrets.
    let mirror = |volumes: Value| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"generateName": "m-", "annotations": {"kubernetes.io/config.mirror": "x"}},
            "spec": {"nodeName": "n", "volumes": volumes, "containers": [{"name": "c", "image": "busybox"}]},
        }))
        .unwrap()
    };
    let v = serde_json::to_value(
        pods.create(&PostParams::default(), &mirror(json!([])))
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        v["spec"]["containers"][0]
            .get("volumeMounts")
            .is_none_or(|m| m.as_array().is_none_or(|a| a.is_empty())),
        "{v}"
    );
    match pods
        .create(
            &PostParams::default(),
            &mirror(json!([{"name": "s", "secret": {"secretName": "s"}}])),
        )
        .await
    {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 403);
            assert!(
                e.message.contains("a mirror pod may not reference secrets"),
                "{}",
                e.message
            );
        }
        other => panic!("expected 403, got {other:?}"),
    }

    // A missing service account is refused.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "spec": {"serviceAccountName": "ghost", "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    match pods.create(&PostParams::default(), &pod).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 403);
            assert!(
                e.message
                    .contains("error looking up service account sa-admission/ghost"),
                "{}",
                e.message
            );
        }
        other => panic!("expected 403, got {other:?}"),
    }

    // serviceaccounts/token is in discovery.
    let disc: Value = admin
        .request(http::Request::get("/api/v1").body(Vec::new()).unwrap())
        .await
        .unwrap();
    let token = disc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "serviceaccounts/token")
        .cloned()
        .expect("serviceaccounts/token in discovery");
    assert_eq!(token["verbs"], json!(["create"]));
    assert_eq!(token["group"], "authentication.k8s.io");
    assert_eq!(token["kind"], "TokenRequest");
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn secret_bound_tokens_and_the_maximum_expiration() {
    use k8s_openapi::api::core::v1::Secret;
    let srv = TestServer::start_with(
        1,
        vec![
            "--enable-admission-plugins=ServiceAccount".into(),
            "--service-account-max-token-expiration=2h".into(),
        ],
    )
    .await
    .unwrap();
    let admin = srv.client().await.unwrap();
    let ns = "sa-secret";
    setup_ns(&admin, ns, &["robot"]).await;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "s"}})).unwrap(),
        )
        .await
        .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let tr = sas
        .create_token_request(
            "robot",
            &PostParams::default(),
            &token_request(&[], Some(10 * 3600), Some(("Secret", "s", ""))),
        )
        .await
        .unwrap();
    // Shortened to --service-account-max-token-expiration.
    assert_eq!(tr.spec.expiration_seconds, Some(7200));
    let token = tr.status.unwrap().token;
    let c = claims_of(&token);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        7200
    );
    assert_eq!(c["kubernetes.io"]["secret"]["name"], "s");
    let as_sa = bearer_client(&srv, &token).await;
    assert_eq!(list_pods_status(&as_sa, ns).await, 200);
    secrets.delete("s", &DeleteParams::default()).await.unwrap();
    wait_status(&as_sa, ns, 401).await;
    srv.stop().await.unwrap();
}

/// `kubectl create token` (protobuf request from the typed client).
#[tokio::test]
async fn kubectl_create_token() {
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let srv = server().await;
    let admin = srv.client().await.unwrap();
    let ns = "sa-kubectl";
    setup_ns(&admin, ns, &["default", "robot"]).await;
    let kc = srv.kubeconfig_file().unwrap();
    let out = tokio::process::Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kc.display()))
        .args([
            "create",
            "token",
            "robot",
            "-n",
            ns,
            "--duration=20m",
            "--audience",
            SA_ISSUER,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let c = claims_of(&token);
    assert_eq!(c["sub"], "system:serviceaccount:sa-kubectl:robot");
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        1200
    );
    let as_robot = bearer_client(&srv, &token).await;
    assert_eq!(list_pods_status(&as_robot, ns).await, 200);
    srv.stop().await.unwrap();
}
