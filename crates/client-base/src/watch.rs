//! A kube-rs reflector as a background task: keeps a store current and
//! tells the caller about every event, retrying failed watches with
//! kube-rs's default back-off.

use futures::StreamExt;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;

/// Spawn a reflector of `api` into `writer`; `on_event` sees each event
/// after the store applied it.
pub fn spawn_reflector<K, F>(
    api: Api<K>,
    writer: Writer<K>,
    on_event: F,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    F: Fn(&Event<K>) + Send + 'static,
{
    tokio::spawn(async move {
        let stream = kube::runtime::reflector(
            writer,
            watcher::watcher(api, watcher::Config::default()).default_backoff(),
        );
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => on_event(&ev),
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed, retrying")
                }
            }
        }
    })
}

/// [`spawn_reflector`] that wakes `changed` on every event.
pub fn spawn_notifying<K>(
    api: Api<K>,
    writer: Writer<K>,
    changed: std::sync::Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    spawn_reflector(api, writer, move |_| changed.notify_one())
}
