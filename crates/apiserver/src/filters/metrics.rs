//! RequestInfoLayer: parses what a request addresses (stored in request
//! extensions for the inner layers) and records apiserver_request_total,
//! apiserver_request_duration_seconds and the long-running gauge.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};

use super::BoxFut;
use crate::endpoints::request_info::{self, RequestInfo};
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct RequestInfoLayer {
    metrics: Arc<Metrics>,
}

impl RequestInfoLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        RequestInfoLayer { metrics }
    }
}

impl<S> Layer<S> for RequestInfoLayer {
    type Service = RequestInfoService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestInfoService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequestInfoService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

fn scope(info: &RequestInfo) -> &'static str {
    if !info.name.is_empty() {
        "resource"
    } else if !info.namespace.is_empty() {
        "namespace"
    } else {
        "cluster"
    }
}

/// The verb label upstream records: the HTTP method for writes and gets,
/// LIST and WATCH for collection reads.
fn canonical_verb(info: &RequestInfo) -> String {
    if !info.is_resource_request {
        return info.verb.to_ascii_uppercase();
    }
    match info.verb.as_str() {
        "create" => "POST",
        "update" => "PUT",
        "patch" => "PATCH",
        "delete" | "deletecollection" => "DELETE",
        "get" => "GET",
        "list" => "LIST",
        "watch" => "WATCH",
        other => return other.to_ascii_uppercase(),
    }
    .to_string()
}

fn watch_param(query: Option<&str>) -> bool {
    query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .any(|(k, v)| k == "watch" && (v == "true" || v == "1"))
        })
        .unwrap_or(false)
}

impl<S, B, RB> Service<http::Request<B>> for RequestInfoService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFut<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let info = request_info::parse(
            req.method(),
            req.uri().path(),
            watch_param(req.uri().query()),
        );
        let dry_run = req.uri().query().is_some_and(|q| q.contains("dryRun=All"));
        req.extensions_mut().insert(info.clone());
        let mut inner = super::take_ready(&mut self.inner);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let start = Instant::now();
            let long = info.is_long_running();
            let labels_long = [
                info.verb.as_str(),
                info.api_group.as_str(),
                info.api_version.as_str(),
                info.resource.as_str(),
                info.subresource.as_str(),
                scope(&info),
                "apiserver",
            ];
            if long {
                metrics.longrunning.with_label_values(&labels_long).inc();
            }
            let resp = inner.call(req).await;
            let verb = canonical_verb(&info);
            let (group, version, resource) = if info.is_resource_request {
                (
                    info.api_group.as_str(),
                    info.api_version.as_str(),
                    info.resource.as_str(),
                )
            } else {
                ("", "", "")
            };
            let dr = if dry_run { "All" } else { "" };
            if let Ok(r) = &resp {
                let code = r.status().as_u16().to_string();
                metrics
                    .request_total
                    .with_label_values(&[
                        &verb,
                        dr,
                        group,
                        version,
                        resource,
                        &info.subresource,
                        scope(&info),
                        "apiserver",
                        &code,
                    ])
                    .inc();
            }
            if !long {
                metrics
                    .request_duration
                    .with_label_values(&[
                        &verb,
                        dr,
                        group,
                        version,
                        resource,
                        &info.subresource,
                        scope(&info),
                        "apiserver",
                    ])
                    .observe(start.elapsed().as_secs_f64());
            } else {
                metrics.longrunning.with_label_values(&labels_long).dec();
            }
            resp
        })
    }
}
