//! Authorization. Until RBAC enforcement lands, every authenticated user may
//! do everything (upstream's AlwaysAllow); anonymous users (only with
//! --anonymous-auth) may read health, version and discovery, like upstream's
//! system:public-info-viewer and system:discovery roles.

use std::task::{Context, Poll};

use apimachinery::errors::{ApiError, GroupResource};
use tower::{Layer, Service};

use super::BoxFut;
use crate::endpoints::request_info::RequestInfo;
use crate::endpoints::{error_response, ResBody};
use crate::registry::context::UserInfo;

/// The decision for one request.
pub fn authorize(user: &UserInfo, info: &RequestInfo) -> Result<(), ApiError> {
    if !user.is_anonymous() {
        return Ok(());
    }
    let p = info.path.as_str();
    let public = [
        "/healthz", "/livez", "/readyz", "/version", "/api", "/apis", "/openapi",
    ];
    if !info.is_resource_request
        && public
            .iter()
            .any(|x| p == *x || p.starts_with(&format!("{x}/")))
    {
        return Ok(());
    }
    if info.is_resource_request {
        let gr = GroupResource::new(&info.api_group, &info.resource);
        let scope = if info.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", info.namespace)
        };
        let detail = format!(
            "User \"system:anonymous\" cannot {} resource {:?} in API group {:?} {scope}",
            info.verb, info.resource, info.api_group
        );
        return Err(ApiError::forbidden(&gr, &info.name, &detail));
    }
    Err(ApiError::new(
        403,
        "Forbidden",
        format!(
            "forbidden: User \"system:anonymous\" cannot {} path {:?}",
            info.verb, p
        ),
    ))
}

#[derive(Clone, Default)]
pub struct AuthzLayer;

impl<S> Layer<S> for AuthzLayer {
    type Service = Authz<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authz { inner }
    }
}

#[derive(Clone)]
pub struct Authz<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for Authz<S>
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
        let decision = match (
            req.extensions().get::<UserInfo>(),
            req.extensions().get::<RequestInfo>(),
        ) {
            (Some(u), Some(i)) => authorize(u, i),
            _ => Err(ApiError::unauthorized()),
        };
        if let Err(e) = decision {
            return Box::pin(async move { Ok(error_response(&e)) });
        }
        let mut inner = super::take_ready(&mut self.inner);
        Box::pin(async move { inner.call(req).await })
    }
}
