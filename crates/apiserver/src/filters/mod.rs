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

/// Take the service instance `poll_ready` readied and leave a clone in its
/// place: the readied instance is the one that must be called (tower's
/// clone-and-swap idiom), while the clone serves the next request.
pub(crate) fn take_ready<S: Clone>(slot: &mut S) -> S {
    let clone = slot.clone();
    std::mem::replace(slot, clone)
}
