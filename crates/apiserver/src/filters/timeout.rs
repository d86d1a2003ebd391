//! TimeoutLayer: --request-timeout (or a shorter `timeout` query parameter)
//! for everything but long-running requests; on expiry the client gets 504
//! with upstream's Timeout Status.

use std::task::{Context, Poll};
use std::time::Duration;

use apimachinery::errors::ApiError;
use tower::{Layer, Service};

use super::BoxFut;
use crate::endpoints::request_info::RequestInfo;
use crate::endpoints::{error_response, ResBody};

#[derive(Clone)]
pub struct TimeoutLayer {
    default: Duration,
}

impl TimeoutLayer {
    pub fn new(default: Duration) -> Self {
        TimeoutLayer { default }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            default: self.default,
        }
    }
}

#[derive(Clone)]
pub struct Timeout<S> {
    inner: S,
    default: Duration,
}

fn query_timeout(q: Option<&str>) -> Option<Duration> {
    let q = q?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "timeout")
        .and_then(|(_, v)| component_base::duration::parse(&v).ok())
}

impl<S, B> Service<http::Request<B>> for Timeout<S>
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
        let long = req
            .extensions()
            .get::<RequestInfo>()
            .is_some_and(|i| i.is_long_running());
        let mut limit = self.default;
        if let Some(t) = query_timeout(req.uri().query()) {
            if t > Duration::ZERO && t < limit {
                limit = t;
            }
        }
        let mut inner = super::take_ready(&mut self.inner);
        Box::pin(async move {
            if long || limit.is_zero() {
                return inner.call(req).await;
            }
            match tokio::time::timeout(limit, inner.call(req)).await {
                Ok(r) => r,
                Err(_) => Ok(error_response(&ApiError::timeout())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::request_info;
    use tower::ServiceExt;

    fn slow() -> impl tower::Service<
        http::Request<()>,
        Response = http::Response<ResBody>,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone
           + Send {
        tower::service_fn(|_r: http::Request<()>| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, std::convert::Infallible>(crate::endpoints::text_response(200, "ok"))
        })
    }

    fn req(path: &str) -> http::Request<()> {
        let (p, q) = path.split_once('?').unwrap_or((path, ""));
        let mut r = http::Request::builder().uri(path).body(()).unwrap();
        r.extensions_mut().insert(request_info::parse(
            &http::Method::GET,
            p,
            q.contains("watch=true"),
        ));
        r
    }

    #[tokio::test]
    async fn slow_request_gets_504_but_watches_are_exempt() {
        let svc = TimeoutLayer::new(Duration::from_millis(100)).layer(slow());
        let r = svc
            .clone()
            .oneshot(req("/api/v1/namespaces/a/configmaps"))
            .await
            .unwrap();
        assert_eq!(r.status(), 504);
        let r = svc
            .oneshot(req("/api/v1/namespaces/a/configmaps?watch=true"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}
