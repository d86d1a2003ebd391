//! componentstatuses (read-only, deprecated upstream but served): etcd and
//! the scheduler's and controller-manager's health endpoints.

use std::sync::Arc;
use std::time::Duration;

use apimachinery::errors::ApiError;
use serde_json::{json, Value};

use crate::endpoints::handlers::ResourceRequest;
use crate::endpoints::{json_response, ResBody};
use crate::registry::store::Store;
use crate::server::ApiState;

fn status(name: &str, healthy: bool, message: &str, error: &str) -> Value {
    let mut cond = json!({"type": "Healthy", "status": if healthy { "True" } else { "False" }});
    if !message.is_empty() {
        cond["message"] = json!(message);
    }
    if !error.is_empty() {
        cond["error"] = json!(error);
    }
    json!({"kind": "ComponentStatus", "apiVersion": "v1", "metadata": {"name": name}, "conditions": [cond]})
}

async fn probe_port(name: &str, port: u16) -> Value {
    let url = format!("https://127.0.0.1:{port}/healthz");
    match tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    {
        Ok(Ok(_)) => status(name, true, "ok", ""),
        Ok(Err(e)) => {
            let reason = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                _ => e.to_string(),
            };
            status(
                name,
                false,
                "",
                &format!("Get \"{url}\": dial tcp 127.0.0.1:{port}: connect: {reason}"),
            )
        }
        Err(_) => status(
            name,
            false,
            "",
            &format!("Get \"{url}\": context deadline exceeded"),
        ),
    }
}

async fn all(state: &Arc<ApiState>) -> Vec<Value> {
    let etcd = match tokio::time::timeout(Duration::from_secs(2), state.storage.health()).await {
        Ok(Ok(())) => status("etcd-0", true, "ok", ""),
        Ok(Err(e)) => status("etcd-0", false, "", &e.to_string()),
        Err(_) => status("etcd-0", false, "", "context deadline exceeded"),
    };
    vec![
        probe_port("controller-manager", 10257).await,
        etcd,
        probe_port("scheduler", 10259).await,
    ]
}

pub async fn serve(
    state: &Arc<ApiState>,
    store: &Store,
    req: &ResourceRequest,
) -> Result<http::Response<ResBody>, ApiError> {
    let items = all(state).await;
    match req.info.verb.as_str() {
        "get" => items
            .into_iter()
            .find(|i| apimachinery::meta::name(i) == req.info.name)
            .map(|i| json_response(200, &i))
            .ok_or_else(|| ApiError::not_found(&store.gr(), &req.info.name)),
        "list" => {
            let accept = req
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            let (out, _) = crate::endpoints::negotiation::parse_accept(accept)?;
            if out == crate::endpoints::negotiation::Output::Table {
                let t = crate::endpoints::table::table(
                    store.strategy.as_ref(),
                    &items,
                    json!({}),
                    crate::endpoints::table::IncludeObject::Metadata,
                    true,
                );
                return Ok(json_response(200, &t));
            }
            Ok(json_response(
                200,
                &json!({"kind": "ComponentStatusList", "apiVersion": "v1", "metadata": {}, "items": items}),
            ))
        }
        v => Err(ApiError::method_not_supported(&store.gr(), v)),
    }
}
