//! exec, attach and port-forward: the runtime's streaming server does the
//! protocol work (SPDY/3.1 and WebSocket channel.k8s.io, portforward.k8s.io);
//! the kubelet asks CRI for a one-time URL there and proxies the client's
//! upgrade request to it. Also `/run` (a synchronous exec).

use std::collections::HashMap;
use std::sync::Arc;

use component_base::upgrade::{self, is_upgrade_request};
use cri::runtime::v1::{
    AttachRequest, Container, ContainerFilter, ContainerState, ContainerStateValue, ExecRequest,
    ExecSyncRequest, ListContainersRequest, ListPodSandboxRequest, PodSandboxFilter,
    PodSandboxState, PodSandboxStateValue, PortForwardRequest,
};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{text, Body, State};

pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// Which streams a remote command attaches (`input`, `output`, `error`, `tty`
/// = "1", as the apiserver sends them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

fn query_multi(query: &str) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        m.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    m
}

/// Upstream's `remotecommand.NewOptions`.
pub fn stream_options(q: &HashMap<String, Vec<String>>) -> Result<StreamOptions, String> {
    let one = |k: &str| q.get(k).and_then(|v| v.first()).is_some_and(|v| v == "1");
    let tty = one("tty");
    let stdin = one("input");
    let stdout = one("output");
    // A TTY merges stderr into stdout.
    let stderr = one("error") && !tty;
    if !stdin && !stdout && !stderr {
        return Err("you must specify at least 1 of stdin, stdout, stderr".into());
    }
    Ok(StreamOptions {
        stdin,
        stdout,
        stderr,
        tty,
    })
}

/// The running container `name` of the pod (of that uid when given; a
/// static pod's containers may carry another uid than its mirror pod), newest
/// first when several match.
async fn find_container(
    state: &State,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
    name: &str,
) -> Result<Option<Container>, tonic::Status> {
    if let Some(c) = list_running(state, ns, pod, uid, name).await? {
        return Ok(Some(c));
    }
    if uid.is_some_and(|u| !u.is_empty()) {
        return list_running(state, ns, pod, None, name).await;
    }
    Ok(None)
}

async fn list_running(
    state: &State,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
    name: &str,
) -> Result<Option<Container>, tonic::Status> {
    let mut labels = HashMap::new();
    labels.insert(LABEL_POD_NAMESPACE.to_string(), ns.to_string());
    labels.insert(LABEL_POD_NAME.to_string(), pod.to_string());
    labels.insert(LABEL_CONTAINER_NAME.to_string(), name.to_string());
    if let Some(u) = uid.filter(|u| !u.is_empty()) {
        labels.insert(LABEL_POD_UID.to_string(), u.to_string());
    }
    let mut list = state
        .runtime()
        .list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                state: Some(ContainerStateValue {
                    state: ContainerState::ContainerRunning as i32,
                }),
                label_selector: labels,
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .containers;
    list.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    Ok(list.into_iter().next())
}

/// upstream `streaming.WriteError`: gRPC NotFound → 404, ResourceExhausted →
/// 429, anything else 500; the body is the message.
fn cri_error(e: &tonic::Status) -> Response<Body> {
    let code = match e.code() {
        tonic::Code::NotFound => 404,
        tonic::Code::ResourceExhausted => 429,
        _ => 500,
    };
    let mut r = text(code, e.message().to_string());
    if code == 429 {
        r.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("30"),
        );
    }
    r
}

/// Proxy the upgrade to a runtime streaming URL (http://host:port/path).
async fn proxy_to(req: Request<Incoming>, url: &str) -> Response<Body> {
    let Ok(u) = url.parse::<http::Uri>() else {
        return text(500, format!("invalid streaming URL {url:?}"));
    };
    let Some(host) = u.host() else {
        return text(500, format!("invalid streaming URL {url:?}"));
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = u.port_u16().unwrap_or(80);
    if u.scheme_str() == Some("https") {
        return text(500, "TLS streaming servers are not supported");
    }
    let tcp = match tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return text(500, format!("error dialing backend: {e}")),
        Err(_) => return text(500, "error dialing backend: timeout"),
    };
    let _ = tcp.set_nodelay(true);
    let authority = u.authority().map(|a| a.to_string()).unwrap_or_default();
    let pq = u
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    match upgrade::proxy_upgrade(req, tcp, &authority, &pq).await {
        Ok(resp) => resp.map(|b| b.map_err(std::io::Error::other).boxed()),
        Err(upgrade::Error::Request(e)) => text(500, format!("building backend request: {e}")),
        Err(upgrade::Error::Send(e)) => text(500, format!("error sending request to backend: {e}")),
    }
}

/// The uid of the pod the kubelet runs (checked against `uid` when given).
fn pod_uid(state: &State, ns: &str, pod: &str, uid: Option<&str>) -> Option<String> {
    let found = state.find_pod(ns, pod)?.metadata.uid.unwrap_or_default();
    match uid {
        Some(u) if !u.is_empty() && u != found => None,
        _ => Some(found),
    }
}

pub async fn exec(
    state: &Arc<State>,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
    container: &str,
    query: &str,
) -> Response<Body> {
    let q = query_multi(query);
    let opts = match stream_options(&q) {
        Ok(o) => o,
        Err(e) => return text(400, e),
    };
    let Some(uid) = pod_uid(state, ns, pod, uid) else {
        return text(404, "pod does not exist");
    };
    if !is_upgrade_request(req.headers()) {
        return text(400, "Upgrade request required");
    }
    let cmd = q.get("command").cloned().unwrap_or_default();
    let c = match find_container(state, ns, pod, Some(&uid), container).await {
        Ok(Some(c)) => c,
        Ok(None) => return text(500, format!("container not found ({container:?})")),
        Err(e) => return cri_error(&e),
    };
    let url = match state
        .runtime()
        .exec(ExecRequest {
            container_id: c.id,
            cmd,
            tty: opts.tty,
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
        })
        .await
    {
        Ok(r) => r.into_inner().url,
        Err(e) => return cri_error(&e),
    };
    proxy_to(req, &url).await
}

pub async fn attach(
    state: &Arc<State>,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
    container: &str,
    query: &str,
) -> Response<Body> {
    let q = query_multi(query);
    let opts = match stream_options(&q) {
        Ok(o) => o,
        Err(e) => return text(400, e),
    };
    let Some(uid) = pod_uid(state, ns, pod, uid) else {
        return text(404, "pod does not exist");
    };
    if !is_upgrade_request(req.headers()) {
        return text(400, "Upgrade request required");
    }
    let c = match find_container(state, ns, pod, Some(&uid), container).await {
        Ok(Some(c)) => c,
        Ok(None) => return text(500, format!("container not found ({container:?})")),
        Err(e) => return cri_error(&e),
    };
    let url = match state
        .runtime()
        .attach(AttachRequest {
            container_id: c.id,
            stdin: opts.stdin,
            tty: opts.tty,
            stdout: opts.stdout,
            stderr: opts.stderr,
        })
        .await
    {
        Ok(r) => r.into_inner().url,
        Err(e) => return cri_error(&e),
    };
    proxy_to(req, &url).await
}

/// Ports from `port` query values (repeatable, or comma-separated).
pub fn ports(q: &HashMap<String, Vec<String>>) -> Result<Vec<i32>, String> {
    let mut out = Vec::new();
    for v in q.get("port").into_iter().flatten() {
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => out.push(n as i32),
                _ => return Err(format!("unable to parse {p:?} as a port")),
            }
        }
    }
    Ok(out)
}

pub async fn port_forward(
    state: &Arc<State>,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
    query: &str,
) -> Response<Body> {
    let q = query_multi(query);
    let ports = match ports(&q) {
        Ok(p) => p,
        Err(e) => return text(400, e),
    };
    let Some(uid) = pod_uid(state, ns, pod, uid) else {
        return text(404, "pod does not exist");
    };
    if !is_upgrade_request(req.headers()) {
        return text(400, "Upgrade request required");
    }
    let mut by_uid = HashMap::new();
    by_uid.insert(LABEL_POD_UID.to_string(), uid.clone());
    let mut by_name = HashMap::new();
    by_name.insert(LABEL_POD_NAMESPACE.to_string(), ns.to_string());
    by_name.insert(LABEL_POD_NAME.to_string(), pod.to_string());
    let mut sandboxes = Vec::new();
    for labels in [by_uid, by_name] {
        sandboxes = match state
            .runtime()
            .list_pod_sandbox(ListPodSandboxRequest {
                filter: Some(PodSandboxFilter {
                    state: Some(PodSandboxStateValue {
                        state: PodSandboxState::SandboxReady as i32,
                    }),
                    label_selector: labels,
                    ..Default::default()
                }),
            })
            .await
        {
            Ok(r) => r.into_inner().items,
            Err(e) => return cri_error(&e),
        };
        if !sandboxes.is_empty() {
            break;
        }
    }
    let Some(sb) = sandboxes.into_iter().max_by_key(|s| s.created_at) else {
        return text(500, format!("pod not found (\"{pod}_{ns}\")"));
    };
    let url = match state
        .runtime()
        .port_forward(PortForwardRequest {
            pod_sandbox_id: sb.id,
            port: ports,
        })
        .await
    {
        Ok(r) => r.into_inner().url,
        Err(e) => return cri_error(&e),
    };
    proxy_to(req, &url).await
}

/// `POST /run/...?cmd=a b c`: run a command and return its combined output.
pub async fn run(
    state: &Arc<State>,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
    container: &str,
    query: &str,
) -> Response<Body> {
    let q = query_multi(query);
    let cmd: Vec<String> = q
        .get("cmd")
        .and_then(|v| v.first())
        .map(|c| c.split(' ').map(str::to_string).collect())
        .unwrap_or_default();
    let Some(uid) = pod_uid(state, ns, pod, uid) else {
        return text(404, "pod does not exist");
    };
    let c = match find_container(state, ns, pod, Some(&uid), container).await {
        Ok(Some(c)) => c,
        Ok(None) => return text(500, format!("container not found ({container:?})")),
        Err(e) => return cri_error(&e),
    };
    match state
        .runtime()
        .exec_sync(ExecSyncRequest {
            container_id: c.id,
            cmd,
            timeout: 0,
        })
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            let mut out = r.stdout;
            out.extend_from_slice(&r.stderr);
            Response::builder()
                .status(200)
                .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(super::full(out))
                .unwrap_or_else(|_| text(500, "building response"))
        }
        Err(e) => cri_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_options_as_upstream() {
        let q = query_multi("input=1&output=1&error=1&tty=1&command=sh");
        let o = stream_options(&q).unwrap();
        assert!(o.stdin && o.stdout && o.tty && !o.stderr);
        let q = query_multi("command=ls&output=true");
        assert_eq!(
            stream_options(&q).unwrap_err(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        let q = query_multi("error=1");
        assert!(stream_options(&q).unwrap().stderr);
    }

    #[test]
    fn port_parsing() {
        assert_eq!(
            ports(&query_multi("port=80&port=8080,9090")).unwrap(),
            vec![80, 8080, 9090]
        );
        assert!(ports(&query_multi("")).unwrap().is_empty());
        assert!(ports(&query_multi("port=x")).is_err());
        assert!(ports(&query_multi("port=0")).is_err());
    }
}
