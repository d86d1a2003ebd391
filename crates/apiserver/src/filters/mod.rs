//! Cross-cutting concerns as tower layers around the API handler, outermost
//! first: request info + metrics, authentication, authorization, max
//! in-flight, request timeout. Each is an `XLayer` making an `X<S>` service.

pub mod authn;
pub mod authz;
pub mod inflight;
pub mod metrics;
pub mod timeout;

use std::future::Future;
use std::pin::Pin;

/// Boxed response future used by every filter.
pub type BoxFut<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;
