//! MaxInFlightLayer: --max-requests-inflight and
//! --max-mutating-requests-inflight. Over the limit a request gets 429 with
//! Retry-After: 1 at once (upstream's behaviour without priority & fairness).
//! Long-running requests (watches) are not counted.

use std::sync::Arc;
use std::task::{Context, Poll};

use apimachinery::errors::ApiError;
use tokio::sync::Semaphore;
use tower::{Layer, Service};

use super::BoxFut;
use crate::endpoints::request_info::RequestInfo;
use crate::endpoints::{error_response, ResBody};
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct MaxInFlightLayer {
    readonly: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
    metrics: Arc<Metrics>,
}

impl MaxInFlightLayer {
    /// 0 disables a limit.
    pub fn new(max_readonly: usize, max_mutating: usize, metrics: Arc<Metrics>) -> Self {
        let sem = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n)));
        MaxInFlightLayer {
            readonly: sem(max_readonly),
            mutating: sem(max_mutating),
            metrics,
        }
    }
}

impl<S> Layer<S> for MaxInFlightLayer {
    type Service = MaxInFlight<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MaxInFlight {
            inner,
            cfg: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct MaxInFlight<S> {
    inner: S,
    cfg: MaxInFlightLayer,
}

impl<S, B> Service<http::Request<B>> for MaxInFlight<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFut<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let info = req
            .extensions()
            .get::<RequestInfo>()
            .cloned()
            .unwrap_or_default();
        let (sem, kind) = if info.is_mutating() {
            (&self.cfg.mutating, "mutating")
        } else {
            (&self.cfg.readonly, "readOnly")
        };
        let exempt = info.is_long_running()
            || info.path == "/healthz"
            || info.path == "/livez"
            || info.path == "/readyz";
        let permit = match sem {
            Some(s) if !exempt => match s.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    return Box::pin(async { Ok(error_response(&ApiError::too_many_requests())) })
                }
            },
            _ => None,
        };
        let gauge = self.cfg.metrics.inflight.with_label_values(&[kind]);
        if permit.is_some() {
            gauge.inc();
        }
        let mut inner = super::take_ready(&mut self.inner);
        Box::pin(async move {
            let r = inner.call(req).await;
            if permit.is_some() {
                gauge.dec();
            }
            drop(permit);
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::request_info;
    use tower::ServiceExt;

    fn req(method: http::Method, path: &str) -> http::Request<()> {
        let mut r = http::Request::builder()
            .method(method.clone())
            .uri(path)
            .body(())
            .unwrap();
        r.extensions_mut()
            .insert(request_info::parse(&method, path, false));
        r
    }

    #[tokio::test]
    async fn request_over_the_limit_gets_429_with_retry_after() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let g = gate.clone();
        let inner = tower::service_fn(move |_r: http::Request<()>| {
            let g = g.clone();
            async move {
                g.notified().await;
                Ok::<_, std::convert::Infallible>(crate::endpoints::text_response(200, "ok"))
            }
        });
        let svc = MaxInFlightLayer::new(1, 1, Arc::new(Metrics::new())).layer(inner);
        let first = tokio::spawn(
            svc.clone()
                .oneshot(req(http::Method::GET, "/api/v1/namespaces/a/configmaps")),
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let second = svc
            .clone()
            .oneshot(req(http::Method::GET, "/api/v1/namespaces/a/configmaps"))
            .await
            .unwrap();
        assert_eq!(second.status(), 429);
        assert_eq!(
            second.headers().get(http::header::RETRY_AFTER).unwrap(),
            "1"
        );
        // A mutating request has its own budget.
        let w = tokio::spawn(
            svc.clone()
                .oneshot(req(http::Method::POST, "/api/v1/namespaces/a/configmaps")),
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        gate.notify_waiters();
        assert_eq!(first.await.unwrap().unwrap().status(), 200);
        assert_eq!(w.await.unwrap().unwrap().status(), 200);
        // Capacity is released when requests finish.
        let g2 = gate.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            g2.notify_waiters();
        });
        assert_eq!(
            svc.oneshot(req(http::Method::GET, "/api/v1/namespaces/a/configmaps"))
                .await
                .unwrap()
                .status(),
            200
        );
    }
}
