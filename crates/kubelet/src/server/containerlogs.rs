//! `GET /containerLogs/{ns}/{pod}/{container}`: which attempt's log file to
//! read follows the container's status as upstream's kubelet decides it
//! (`validateContainerLogStatus`); the file itself is read by [`crate::logs`].

use std::path::PathBuf;
use std::sync::Arc;

use cri::runtime::v1::{ContainerState, ContainerStatusRequest};
use futures::StreamExt;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::{bare_container_id, text, Body, State};
use crate::logs::{self, LogOptions, RunningCheck};

/// The container ID whose logs to return, or the upstream error message.
pub fn container_for_logs(pod: &Pod, container: &str, previous: bool) -> Result<String, String> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    let status = pod.status.as_ref();
    let find = |list: Option<&Vec<ContainerStatus>>| {
        list.and_then(|l| l.iter().find(|c| c.name == container).cloned())
    };
    let cs = status
        .and_then(|s| {
            find(s.container_statuses.as_ref())
                .or_else(|| find(s.init_container_statuses.as_ref()))
                .or_else(|| find(s.ephemeral_container_statuses.as_ref()))
        })
        .ok_or_else(|| format!("container {container:?} in pod {pod_name:?} is not available"))?;
    let last_term = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let state = cs.state.clone().unwrap_or_default();
    let terminated_msg = || format!("container {container:?} in pod {pod_name:?} is terminated");
    let nonempty = |s: Option<&String>| s.filter(|s| !s.is_empty()).cloned();
    if previous {
        return last_term
            .and_then(|t| nonempty(t.container_id.as_ref()))
            .ok_or_else(|| {
                format!("previous terminated container {container:?} in pod {pod_name:?} not found")
            });
    }
    if state.running.is_some() {
        return nonempty(cs.container_id.as_ref()).ok_or_else(terminated_msg);
    }
    if let Some(t) = &state.terminated {
        return nonempty(t.container_id.as_ref())
            .or_else(|| nonempty(cs.container_id.as_ref()))
            .or_else(|| last_term.and_then(|t| nonempty(t.container_id.as_ref())))
            .ok_or_else(terminated_msg);
    }
    if let Some(t) = last_term {
        return nonempty(t.container_id.as_ref()).ok_or_else(terminated_msg);
    }
    if let Some(w) = &state.waiting {
        let reason = w.reason.clone().unwrap_or_default();
        return Err(match reason.as_str() {
            "ErrImagePull" => format!(
                "container {container:?} in pod {pod_name:?} is waiting to start: image can't be pulled"
            ),
            "ImagePullBackOff" => format!(
                "container {container:?} in pod {pod_name:?} is waiting to start: trying and failing to pull image"
            ),
            _ => format!("container {container:?} in pod {pod_name:?} is waiting to start: {reason}"),
        });
    }
    Err(format!(
        "container {container:?} in pod {pod_name:?} is waiting to start - no logs yet"
    ))
}

fn container_in_spec(pod: &Pod, name: &str) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers.iter().any(|c| c.name == name)
            || s.init_containers
                .as_ref()
                .is_some_and(|l| l.iter().any(|c| c.name == name))
            || s.ephemeral_containers
                .as_ref()
                .is_some_and(|l| l.iter().any(|c| c.name == name))
    })
}

/// When the runtime no longer knows the container, its log may still be on
/// disk: the newest attempt (or the one before it for `previous`).
fn fallback_log_path(state: &State, pod: &Pod, container: &str, previous: bool) -> Option<PathBuf> {
    let dir = logs::pod_log_dir(
        &state.deps.pod_logs_dir,
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or(""),
    );
    let attempts = logs::container_attempts(&dir, container);
    let idx = attempts.len().checked_sub(if previous { 2 } else { 1 })?;
    Some(logs::container_log_path(&dir, container, attempts[idx]))
}

pub async fn serve(
    state: &Arc<State>,
    ns: &str,
    pod_name: &str,
    container: &str,
    query: &str,
) -> Response<Body> {
    if pod_name.is_empty() {
        return text(400, r#"{"message": "Missing podID."}"#);
    }
    if container.is_empty() {
        return text(400, r#"{"message": "Missing container name."}"#);
    }
    if ns.is_empty() {
        return text(400, r#"{"message": "Missing podNamespace."}"#);
    }
    let opts = match LogOptions::from_query(query) {
        Ok(o) => o,
        Err(_) => return text(400, r#"{"message": "Unable to decode query."}"#),
    };
    if !opts.validate().is_empty() {
        return text(422, r#"{"message": "Invalid request."}"#);
    }
    let Some(pod) = state.find_pod(ns, pod_name) else {
        return text(404, format!("pod {pod_name:?} does not exist"));
    };
    if !container_in_spec(&pod, container) {
        return text(
            404,
            format!("container {container:?} not found in pod {pod_name:?}"),
        );
    }
    let id = match container_for_logs(&pod, container, opts.previous) {
        Ok(id) => bare_container_id(&id).to_string(),
        Err(m) => return text(400, m),
    };
    let mut rt = state.runtime();
    let path = match rt
        .container_status(ContainerStatusRequest {
            container_id: id.clone(),
            verbose: false,
        })
        .await
    {
        Ok(r) => r
            .into_inner()
            .status
            .map(|s| s.log_path)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
        Err(e) => {
            tracing::debug!(container = %id, error = %e, "container status for logs");
            None
        }
    };
    let Some(path) = path.or_else(|| fallback_log_path(state, &pod, container, opts.previous))
    else {
        return text(
            400,
            format!("unable to retrieve container logs for containerd://{id}"),
        );
    };
    let running: RunningCheck = {
        let rt = state.runtime();
        let id = id.clone();
        Arc::new(move || {
            let mut rt = rt.clone();
            let id = id.clone();
            Box::pin(async move {
                match rt
                    .container_status(ContainerStatusRequest {
                        container_id: id,
                        verbose: false,
                    })
                    .await
                {
                    Ok(r) => r.into_inner().status.is_some_and(|s| {
                        s.state == ContainerState::ContainerRunning as i32
                            || s.state == ContainerState::ContainerCreated as i32
                    }),
                    Err(_) => false,
                }
            })
        })
    };
    let stream = match logs::read_logs(path.clone(), opts, running).await {
        Ok(s) => s,
        Err(e) => {
            return text(
                400,
                format!(
                    "failed to open log file {:?}: {e}",
                    path.display().to_string()
                ),
            )
        }
    };
    let body = StreamBody::new(stream.map(|r| r.map(hyper::body::Frame::data)));
    Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(BodyExt::boxed(body))
        .unwrap_or_else(|_| text(500, "building response"))
}
