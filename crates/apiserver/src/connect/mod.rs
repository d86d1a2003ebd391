//! Connect subresources served by the node's kubelet: `pods/log`,
//! `pods/exec`, `pods/attach`, `pods/portforward` and `nodes/proxy`.
//!
//! The apiserver checks the request as upstream does (options, pod,
//! container, node), then forwards it to the kubelet (`/containerLogs`,
//! `/exec`, `/attach`, `/portForward`, or the proxied path) over TLS with
//! its kubelet client certificate. Log bodies are streamed back; upgrade
//! requests (SPDY/3.1 and WebSocket) are spliced after the kubelet's `101`.
//!
//! WebSocket: the container runtime's streaming server speaks the
//! `channel.k8s.io` protocols up to v4 (and v4 port-forward), not
//! `v5.channel.k8s.io` nor the SPDY-over-WebSocket port-forward tunnel
//! (`SPDY/3.1+portforward.k8s.io`). The subprotocols a client offers are
//! narrowed to those the runtime serves; when none remains the upgrade is
//! refused with a non-101 status, which makes kubectl (and client-go) fall
//! back to SPDY, exactly as against an apiserver without those features.

pub mod kubelet;
pub mod upgrade;

use std::collections::HashMap;
use std::sync::Arc;

use apimachinery::errors::ApiError;
use apimachinery::FieldError;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::endpoints::request_info::RequestInfo;
use crate::endpoints::{error_response, ResBody};
use crate::server::ApiState;
use component_base::upgrade::{forward_request, is_upgrade_request, is_websocket, send};
use kubelet::KubeletClient;
use upgrade::EndOnError;

/// Whether a request is one of the connect subresources served here.
pub fn handles(info: &RequestInfo) -> bool {
    info.is_resource_request
        && info.api_group.is_empty()
        && info.api_version == "v1"
        && !info.name.is_empty()
        && ((info.resource == "pods"
            && !info.namespace.is_empty()
            && matches!(
                info.subresource.as_str(),
                "log" | "exec" | "attach" | "portforward"
            ))
            || (info.resource == "nodes" && info.subresource == "proxy"))
}

/// Serve a connect subresource request.
pub async fn serve(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
    info: &RequestInfo,
) -> Response<ResBody> {
    let r = match (info.resource.as_str(), info.subresource.as_str()) {
        ("pods", "log") => pod_log(state, req, info).await,
        ("pods", "exec") | ("pods", "attach") => remote_command(state, req, info).await,
        ("pods", "portforward") => port_forward(state, req, info).await,
        ("nodes", "proxy") => node_proxy(state, req, info).await,
        _ => Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )),
    };
    r.unwrap_or_else(|e| error_response(&e))
}

type Query = HashMap<String, Vec<String>>;

fn parse_query(q: Option<&str>) -> Query {
    let mut m: Query = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        m.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    m
}

fn first<'a>(q: &'a Query, k: &str) -> Option<&'a str> {
    q.get(k).and_then(|v| v.first()).map(String::as_str)
}

/// Upstream's query-parameter bool: absent or "false"/"0" is false, anything
/// else (even empty) true.
fn query_bool(q: &Query, k: &str) -> bool {
    match first(q, k) {
        None => false,
        Some(v) => !(v == "0" || v.eq_ignore_ascii_case("false")),
    }
}

fn query_i64(q: &Query, k: &str) -> Result<Option<i64>, ApiError> {
    match first(q, k) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))
        }),
    }
}

fn gr(resource: &str) -> apimachinery::errors::GroupResource {
    apimachinery::errors::GroupResource::new("", resource)
}

async fn get_object(
    state: &ApiState,
    resource: &str,
    ns: &str,
    name: &str,
) -> Result<Value, ApiError> {
    let store = state.registry.get("", "v1", resource).ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    })?;
    store.get(ns, name).await
}

/// Container names in upstream's VisitContainers order.
fn container_names(pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for k in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(a) = pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array) {
            out.extend(
                a.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str))
                    .map(str::to_string),
            );
        }
    }
    out
}

/// Upstream's `validateContainer`: the named container must exist; with no
/// name, a pod with one container uses it.
pub fn validate_container(container: Option<&str>, pod: &Value) -> Result<String, ApiError> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    match container.filter(|c| !c.is_empty()) {
        Some(c) => {
            if container_names(pod).iter().any(|n| n == c) {
                Ok(c.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
        None => {
            let regular: Vec<&str> = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.get("name").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            match regular.len() {
                1 => Ok(regular[0].to_string()),
                0 => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}"
                ))),
                _ => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    container_names(pod).join(" ")
                ))),
            }
        }
    }
}

/// The kubelet of the pod's node: `(host, port)`, or `None` when unscheduled.
async fn pod_kubelet(state: &ApiState, pod: &Value) -> Result<Option<(String, u16)>, ApiError> {
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() {
        return Ok(None);
    }
    let n = get_object(state, "nodes", "", node).await?;
    state.kubelet.location(&n).map(Some)
}

/// Append `k=v` pairs sorted by key (as Go's `url.Values.Encode`).
fn encode(mut pairs: Vec<(&str, String)>) -> String {
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, &v);
    }
    s.finish()
}

fn with_query(path: String, q: String) -> String {
    if q.is_empty() {
        path
    } else {
        format!("{path}?{q}")
    }
}

fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
        .to_string()
        .replace("%2D", "-")
        .replace("%2E", ".")
        .replace("%5F", "_")
        .replace("%7E", "~")
}

/// A connection error as Go's net package words it.
fn go_net_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        ErrorKind::TimedOut => "i/o timeout".into(),
        ErrorKind::ConnectionReset => "read: connection reset by peer".into(),
        ErrorKind::HostUnreachable => "connect: no route to host".into(),
        ErrorKind::NetworkUnreachable => "connect: network is unreachable".into(),
        _ => e.to_string(),
    }
}

/// Upstream's error for a failed connection to the kubelet (an unknown-reason 500).
fn dial_error(method: &str, authority: &str, pq: &str, e: &std::io::Error) -> ApiError {
    ApiError::new(
        500,
        "",
        format!(
            "{method} \"https://{authority}{pq}\": dial tcp {authority}: {}",
            go_net_error(e)
        ),
    )
}

/// Upstream's `GenericHttpResponseChecker` for a failed kubelet response.
async fn check_response(
    resp: Response<Incoming>,
    resource: &str,
    name: &str,
) -> Result<Response<Incoming>, ApiError> {
    let code = resp.status().as_u16();
    if (200..=206).contains(&code) {
        return Ok(resp);
    }
    let body = Limited::new(resp.into_body(), 50_000)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).into_owned();
    Err(match code {
        500 => ApiError::internal(text),
        400 => ApiError::bad_request(text),
        _ => generic_server_response(code, resource, name, &text),
    })
}

/// Upstream's `NewGenericServerResponse` (no verb).
fn generic_server_response(code: u16, resource: &str, name: &str, server_msg: &str) -> ApiError {
    let (reason, msg) = match code {
        409 => ("Conflict", "the server reported a conflict".to_string()),
        404 => (
            "NotFound",
            "the server could not find the requested resource".to_string(),
        ),
        401 => (
            "Unauthorized",
            "the server has asked for the client to provide credentials".to_string(),
        ),
        403 => ("Forbidden", server_msg.to_string()),
        405 => (
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".to_string(),
        ),
        422 => (
            "Invalid",
            "the server rejected our request due to an error in our request".to_string(),
        ),
        504 => ("Timeout", "the server was unable to return a response in the time allotted, but may still be processing the request".to_string()),
        429 => ("TooManyRequests", "the server has received too many requests and has asked us to try again later".to_string()),
        c if c >= 500 => (
            "InternalError",
            format!("an error on the server ({server_msg:?}) has prevented the request from succeeding"),
        ),
        c => (
            "",
            format!("the server responded with the status code {c} but did not return more information"),
        ),
    };
    let mut e = ApiError::new(code, reason, format!("{msg} ( {resource} {name})"));
    e.details = Some(json!({"name": name, "kind": resource}));
    e
}

// ---------------------------------------------------------------- pods/log

async fn pod_log(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
    info: &RequestInfo,
) -> Result<Response<ResBody>, ApiError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiError::method_not_supported(&gr("pods/log"), &info.verb));
    }
    let q = parse_query(req.uri().query());
    let name = info.name.as_str();
    let tail = query_i64(&q, "tailLines")?;
    let limit = query_i64(&q, "limitBytes")?;
    let since_seconds = query_i64(&q, "sinceSeconds")?;
    let since_time = match first(&q, "sinceTime") {
        None | Some("") => None,
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| ApiError::bad_request(format!("parsing time {s:?}: {e}")))?
                .with_timezone(&chrono::Utc),
        ),
    };
    let mut errs = Vec::new();
    if let Some(t) = tail.filter(|t| *t < 0) {
        errs.push(FieldError::invalid(
            "tailLines",
            t,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(b) = limit.filter(|b| *b < 1) {
        errs.push(FieldError::invalid(
            "limitBytes",
            b,
            "must be greater than 0",
        ));
    }
    match (since_seconds, since_time) {
        (Some(_), Some(_)) => errs.push(FieldError::forbidden(
            "",
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        )),
        (Some(s), None) if s < 1 => errs.push(FieldError::invalid(
            "sinceSeconds",
            s,
            "must be greater than 0",
        )),
        _ => {}
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid("PodLogOptions", "", name, &errs));
    }
    let pod = get_object(state, "pods", &info.namespace, name).await?;
    let container = validate_container(first(&q, "container"), &pod)?;
    let Some((host, port)) = pod_kubelet(state, &pod).await? else {
        // Not scheduled yet: no logs.
        return Ok(text_plain(crate::endpoints::full(Bytes::new())));
    };
    let mut params: Vec<(&str, String)> = Vec::new();
    if query_bool(&q, "follow") {
        params.push(("follow", "true".into()));
    }
    if query_bool(&q, "previous") {
        params.push(("previous", "true".into()));
    }
    if query_bool(&q, "timestamps") {
        params.push(("timestamps", "true".into()));
    }
    if let Some(s) = since_seconds {
        params.push(("sinceSeconds", s.to_string()));
    }
    if let Some(t) = since_time {
        params.push((
            "sinceTime",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ));
    }
    if let Some(t) = tail {
        params.push(("tailLines", t.to_string()));
    }
    if let Some(b) = limit {
        params.push(("limitBytes", b.to_string()));
    }
    let pq = with_query(
        format!(
            "/containerLogs/{}/{}/{}",
            seg(&info.namespace),
            seg(name),
            seg(&container)
        ),
        encode(params),
    );
    let authority = KubeletClient::authority(&host, port);
    let insecure = query_bool(&q, "insecureSkipTLSVerifyBackend");
    let io = state
        .kubelet
        .connect(&host, port, insecure)
        .await
        .map_err(|e| dial_error("Get", &authority, &pq, &e))?;
    let out = forward_request(
        &Method::GET,
        &http::HeaderMap::new(),
        &authority,
        &pq,
        Empty::<Bytes>::new(),
    )
    .map_err(ApiError::internal)?;
    let resp = send(io, out)
        .await
        .map_err(|e| ApiError::new(500, "", format!("Get \"https://{authority}{pq}\": {e}")))?;
    let resp = check_response(resp, "pods/log", name).await?;
    Ok(text_plain(EndOnError(resp.into_body()).boxed()))
}

fn text_plain(body: ResBody) -> Response<ResBody> {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

// ---------------------------------------------------------------- exec, attach, portforward

/// WebSocket subprotocols the runtime's streaming server accepts.
const REMOTE_COMMAND_WS: &[&str] = &[
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];
const PORT_FORWARD_WS: &[&str] = &["v4.channel.k8s.io", "v4.base64.channel.k8s.io"];

/// Narrow a WebSocket upgrade's subprotocols to `supported`. Errors (a
/// non-101 answer, so clients fall back to SPDY) when none of those offered
/// is supported.
fn narrow_websocket_protocols(
    headers: &mut http::HeaderMap,
    supported: &[&str],
) -> Result<(), ApiError> {
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Ok(());
    }
    let keep: Vec<&String> = offered
        .iter()
        .filter(|p| supported.contains(&p.as_str()))
        .collect();
    if keep.is_empty() {
        return Err(ApiError::bad_request(format!(
            "none of the requested WebSocket subprotocols [{}] is supported by this server (supported: [{}]); use SPDY/3.1",
            offered.join(" "),
            supported.join(" ")
        )));
    }
    headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
    let joined = keep
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    Ok(())
}

/// Check the upgrade, connect to the kubelet and splice.
async fn proxy_stream(
    state: &Arc<ApiState>,
    mut req: Request<Incoming>,
    host: &str,
    port: u16,
    pq: String,
    ws_supported: &[&str],
) -> Result<Response<ResBody>, ApiError> {
    if !is_upgrade_request(req.headers()) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    if is_websocket(req.headers()) {
        narrow_websocket_protocols(req.headers_mut(), ws_supported)?;
    }
    let authority = KubeletClient::authority(host, port);
    let io = state
        .kubelet
        .connect(host, port, false)
        .await
        .map_err(|e| {
            ApiError::new(
                500,
                "",
                format!(
                    "error dialing backend: dial tcp {authority}: {}",
                    go_net_error(&e)
                ),
            )
        })?;
    upgrade::proxy_upgrade(req, io, &authority, &pq)
        .await
        .map_err(|e| ApiError::new(500, "", format!("error dialing backend: {e}")))
}

fn check_connect_method(
    req: &Request<Incoming>,
    resource: &str,
    verb: &str,
) -> Result<(), ApiError> {
    if req.method() == Method::GET || req.method() == Method::POST {
        Ok(())
    } else {
        Err(ApiError::method_not_supported(&gr(resource), verb))
    }
}

async fn remote_command(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
    info: &RequestInfo,
) -> Result<Response<ResBody>, ApiError> {
    let sub = info.subresource.as_str();
    check_connect_method(&req, &format!("pods/{sub}"), &info.verb)?;
    let q = parse_query(req.uri().query());
    let name = info.name.as_str();
    let pod = get_object(state, "pods", &info.namespace, name).await?;
    let container = validate_container(first(&q, "container"), &pod)?;
    let Some((host, port)) = pod_kubelet(state, &pod).await? else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let mut params: Vec<(&str, String)> = Vec::new();
    for (api, kubelet) in [
        ("stdin", "input"),
        ("stdout", "output"),
        ("stderr", "error"),
        ("tty", "tty"),
    ] {
        if query_bool(&q, api) {
            params.push((kubelet, "1".into()));
        }
    }
    if sub == "exec" {
        for c in q.get("command").into_iter().flatten() {
            params.push(("command", c.clone()));
        }
    }
    let pq = with_query(
        format!(
            "/{sub}/{}/{}/{}",
            seg(&info.namespace),
            seg(name),
            seg(&container)
        ),
        encode(params),
    );
    proxy_stream(state, req, &host, port, pq, REMOTE_COMMAND_WS).await
}

async fn port_forward(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
    info: &RequestInfo,
) -> Result<Response<ResBody>, ApiError> {
    check_connect_method(&req, "pods/portforward", &info.verb)?;
    let q = parse_query(req.uri().query());
    let name = info.name.as_str();
    let mut ports = Vec::new();
    for p in q.get("ports").into_iter().flatten() {
        for p in p.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let n: i64 = p.parse().map_err(|_| {
                ApiError::bad_request(format!("strconv.ParseInt: parsing {p:?}: invalid syntax"))
            })?;
            if !(1..=65535).contains(&n) {
                return Err(ApiError::bad_request(format!(
                    "port {n} must be in the range 1-65535"
                )));
            }
            ports.push(n.to_string());
        }
    }
    let pod = get_object(state, "pods", &info.namespace, name).await?;
    let Some((host, port)) = pod_kubelet(state, &pod).await? else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let mut params = Vec::new();
    if !ports.is_empty() {
        params.push(("port", ports.join(",")));
    }
    let pq = with_query(
        format!("/portForward/{}/{}", seg(&info.namespace), seg(name)),
        encode(params),
    );
    proxy_stream(state, req, &host, port, pq, PORT_FORWARD_WS).await
}

// ---------------------------------------------------------------- nodes/proxy

/// Split upstream's `[scheme:]name[:port]` node proxy id.
fn split_scheme_name_port(id: &str) -> Option<(Option<&str>, &str, Option<u16>)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [n] => (None, *n, None),
        [n, p] => (None, *n, Some(*p)),
        [s, n, p] if *s == "https" || *s == "http" || s.is_empty() => (
            Some(*s).filter(|s| !s.is_empty()),
            *n,
            Some(*p).filter(|p| !p.is_empty()),
        ),
        _ => return None,
    };
    if name.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((scheme, name, port))
}

async fn node_proxy(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
    info: &RequestInfo,
) -> Result<Response<ResBody>, ApiError> {
    let Some((scheme, node_name, port_req)) = split_scheme_name_port(&info.name) else {
        return Err(ApiError::bad_request(format!(
            "invalid node request {:?}",
            info.name
        )));
    };
    if scheme == Some("http") {
        return Err(ApiError::bad_request("only https is supported to kubelets"));
    }
    let node = get_object(state, "nodes", "", node_name).await?;
    let (host, kport) = state.kubelet.location(&node)?;
    let port = port_req.unwrap_or(kport);
    // The path after /api/v1/nodes/{name}/proxy, kept as the client encoded it.
    let rest = match req.uri().path().splitn(7, '/').nth(6) {
        Some(r) => format!("/{r}"),
        None => "/".to_string(),
    };
    let pq = match req.uri().query() {
        Some(q) if !q.is_empty() => format!("{rest}?{q}"),
        _ => rest,
    };
    let authority = KubeletClient::authority(&host, port);
    if is_upgrade_request(req.headers()) {
        let io = state
            .kubelet
            .connect(&host, port, false)
            .await
            .map_err(|e| {
                ApiError::new(
                    500,
                    "",
                    format!(
                        "error dialing backend: dial tcp {authority}: {}",
                        go_net_error(&e)
                    ),
                )
            })?;
        return upgrade::proxy_upgrade(req, io, &authority, &pq)
            .await
            .map_err(|e| {
                ApiError::new(
                    503,
                    "ServiceUnavailable",
                    format!("error trying to reach service: {e}"),
                )
            });
    }
    let io = state
        .kubelet
        .connect(&host, port, false)
        .await
        .map_err(|e| {
            ApiError::new(
                503,
                "ServiceUnavailable",
                format!(
                    "error trying to reach service: dial tcp {authority}: {}",
                    go_net_error(&e)
                ),
            )
        })?;
    let (parts, body) = req.into_parts();
    let out = forward_request(&parts.method, &parts.headers, &authority, &pq, body)
        .map_err(ApiError::internal)?;
    let resp = send(io, out).await.map_err(|e| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("error trying to reach service: {e}"),
        )
    })?;
    Ok(upgrade::relay(resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(init: &[&str], containers: &[&str]) -> Value {
        let mk = |ns: &[&str]| ns.iter().map(|n| json!({"name": n})).collect::<Vec<_>>();
        json!({"metadata": {"name": "p"}, "spec": {"initContainers": mk(init), "containers": mk(containers)}})
    }

    #[test]
    fn container_validation_as_upstream() {
        assert_eq!(validate_container(None, &pod(&[], &["a"])).unwrap(), "a");
        assert_eq!(
            validate_container(None, &pod(&["i"], &["a", "b"]))
                .unwrap_err()
                .message,
            "a container name must be specified for pod p, choose one of: [i a b]"
        );
        assert_eq!(
            validate_container(None, &pod(&[], &[]))
                .unwrap_err()
                .message,
            "a container name must be specified for pod p"
        );
        assert_eq!(
            validate_container(Some("i"), &pod(&["i"], &["a"])).unwrap(),
            "i"
        );
        let e = validate_container(Some("x"), &pod(&[], &["a"])).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "container x is not valid for pod p")
        );
    }

    #[test]
    fn websocket_protocols_are_narrowed_or_refused() {
        let mut h = http::HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v5.channel.k8s.io, v4.channel.k8s.io"),
        );
        narrow_websocket_protocols(&mut h, REMOTE_COMMAND_WS).unwrap();
        assert_eq!(h[header::SEC_WEBSOCKET_PROTOCOL], "v4.channel.k8s.io");
        let mut h = http::HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v5.channel.k8s.io"),
        );
        assert_eq!(
            narrow_websocket_protocols(&mut h, REMOTE_COMMAND_WS)
                .unwrap_err()
                .code,
            400
        );
        let mut h = http::HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("SPDY/3.1+portforward.k8s.io"),
        );
        assert!(narrow_websocket_protocols(&mut h, PORT_FORWARD_WS).is_err());
        let mut h = http::HeaderMap::new();
        assert!(narrow_websocket_protocols(&mut h, PORT_FORWARD_WS).is_ok());
    }

    #[test]
    fn queries_and_ids() {
        let q = parse_query(Some(
            "follow&previous=false&tailLines=5&command=a&command=b",
        ));
        assert!(query_bool(&q, "follow"));
        assert!(!query_bool(&q, "previous"));
        assert!(!query_bool(&q, "timestamps"));
        assert_eq!(query_i64(&q, "tailLines").unwrap(), Some(5));
        assert_eq!(q["command"], vec!["a", "b"]);
        assert!(query_i64(&parse_query(Some("tailLines=x")), "tailLines").is_err());
        assert_eq!(
            encode(vec![
                ("output", "1".into()),
                ("command", "ls -l".into()),
                ("input", "1".into())
            ]),
            "command=ls+-l&input=1&output=1"
        );
        assert_eq!(split_scheme_name_port("n1"), Some((None, "n1", None)));
        assert_eq!(
            split_scheme_name_port("n1:10255"),
            Some((None, "n1", Some(10255)))
        );
        assert_eq!(
            split_scheme_name_port("https:n1:"),
            Some((Some("https"), "n1", None))
        );
        assert_eq!(split_scheme_name_port("n1:x"), None);
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(seg("web-1.x_y"), "web-1.x_y");
    }

    #[test]
    fn generic_responses() {
        let e = generic_server_response(404, "pods/log", "p", "nope");
        assert_eq!(
            e.message,
            "the server could not find the requested resource ( pods/log p)"
        );
        let e = generic_server_response(502, "pods/log", "p", "bad");
        assert_eq!(e.reason, "InternalError");
    }
}
