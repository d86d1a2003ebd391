//! Watch streams: newline-delimited JSON `{"type":...,"object":...}` events
//! from the watch cache, filtered per watcher, with bookmarks, the
//! initial-events-end marker, timeouts and clean shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apimachinery::errors::ApiError;
use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::json;
use storage::cache::WatchItem;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::handlers::ResourceRequest;
use super::negotiation::{self, Output};
use super::table::{self, IncludeObject};
use super::ResBody;
use crate::registry::store::{ListOptions, Store, WatchEvent};
use crate::server::ApiState;

/// How often an idle watch with allowWatchBookmarks gets a BOOKMARK.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);
/// Upstream closes watches without timeoutSeconds after a random 30–60 min.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

pub async fn serve_watch(
    state: &Arc<ApiState>,
    store: Arc<Store>,
    ns: &str,
    opts: ListOptions,
    req: &ResourceRequest,
) -> Result<http::Response<ResBody>, ApiError> {
    let accept = req
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let (out, _enc) = negotiation::parse_accept(accept)?;
    let include = IncludeObject::parse(req.query.get("includeObject").map(String::as_str));
    if opts.send_initial_events == Some(true)
        && opts.resource_version_match.as_deref() != Some("NotOlderThan")
    {
        return Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            &[apimachinery::FieldError::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )],
        ));
    }
    let (initial, from, mut rx) = match store.watch(ns, &opts).await {
        Ok(x) => x,
        // Upstream answers a too-old watch with 200 and one ERROR event.
        Err(e) if e.code == 410 => {
            let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()}))
                .unwrap_or_default();
            line.push(b'\n');
            return http::Response::builder()
                .status(200)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(super::full(line))
                .map_err(ApiError::internal);
        }
        Err(e) => return Err(e),
    };
    let (tx, body_rx) =
        tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(64);
    let timeout = opts
        .timeout_seconds
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let mut shutdown = state.shutdown.subscribe();
    let metrics = state.metrics.clone();
    let info = store.info().clone();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut first_table = true;
        let encode = |ev: &WatchEvent, first: &mut bool| -> Bytes {
            let object = match out {
                Output::Object => return encode_event(ev),
                Output::Table if ev.event_type != "BOOKMARK" => {
                    let t = table::table(
                        store.strategy.as_ref(),
                        std::slice::from_ref(&*ev.object),
                        json!({"resourceVersion": apimachinery::meta::resource_version(&ev.object)}),
                        include,
                        *first,
                    );
                    *first = false;
                    t
                }
                Output::PartialMetadata if ev.event_type != "BOOKMARK" => {
                    table::partial_metadata(&ev.object)
                }
                _ => return encode_event(ev),
            };
            let mut line = serde_json::to_vec(&json!({"type": ev.event_type, "object": object}))
                .unwrap_or_default();
            line.push(b'\n');
            Bytes::from(line)
        };
        for ev in &initial {
            if tx
                .send(Ok(Frame::data(encode(ev, &mut first_table))))
                .await
                .is_err()
            {
                return;
            }
        }
        metrics.watch_events(&info, initial.len());
        let mut last_rv = from;
        if opts.send_initial_events == Some(true) {
            let mut b = store.bookmark(from);
            std::sync::Arc::make_mut(&mut b.object)["metadata"]["annotations"] =
                json!({"k8s.io/initial-events-end": "true"});
            if tx
                .send(Ok(Frame::data(encode(&b, &mut first_table))))
                .await
                .is_err()
            {
                return;
            }
        }
        let mut last_sent = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.changed() => break,
                _ = tx.closed() => break,
                item = rx.recv() => {
                    match item {
                        None => break,
                        Some(WatchItem::Event(ev)) => {
                            last_rv = ev.revision;
                            if let Some(we) = store.filter_event(&ev, &opts) {
                                if tx.send(Ok(Frame::data(encode(&we, &mut first_table)))).await.is_err() {
                                    break;
                                }
                                metrics.watch_events(&info, 1);
                                last_sent = Instant::now();
                            }
                        }
                        Some(WatchItem::Progress(rev)) => {
                            if rev > last_rv { last_rv = rev; }
                            if opts.allow_watch_bookmarks && last_sent.elapsed() >= BOOKMARK_EVERY {
                                let b = store.bookmark(last_rv);
                                if tx.send(Ok(Frame::data(encode(&b, &mut first_table)))).await.is_err() {
                                    break;
                                }
                                last_sent = Instant::now();
                            }
                        }
                    }
                }
            }
        }
    });
    let stream = ReceiverStream::new(body_rx);
    let body =
        StreamBody::new(stream.map(|f: Result<Frame<Bytes>, std::convert::Infallible>| f)).boxed();
    http::Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("Cache-Control", "no-cache, private")
        .body(body)
        .map_err(ApiError::internal)
}

/// One event line, `{"type":...,"object":...}` and a newline: the bytes
/// `serde_json::to_vec(&json!({"type": .., "object": ..}))` gives, without
/// copying the object (and with the cache's encoding of it when there is one).
fn encode_event(ev: &WatchEvent) -> Bytes {
    let mut line = Vec::with_capacity(
        ev.encoded.as_ref().map_or(1024, |e| e.len()) + ev.event_type.len() + 24,
    );
    line.extend_from_slice(b"{\"type\":");
    let _ = serde_json::to_writer(&mut line, ev.event_type);
    line.extend_from_slice(b",\"object\":");
    match &ev.encoded {
        Some(e) => line.extend_from_slice(e),
        None => {
            let _ = serde_json::to_writer(&mut line, &*ev.object);
        }
    }
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_line_is_the_json_of_type_and_object() {
        let object = json!({"kind": "Pod", "metadata": {"name": "a\"b", "labels": {"z": "1", "a": "2"}}, "spec": {}});
        let want = {
            let mut l = serde_json::to_vec(&json!({"type": "ADDED", "object": object})).unwrap();
            l.push(b'\n');
            l
        };
        let ev = WatchEvent {
            event_type: "ADDED",
            object: std::sync::Arc::new(object.clone()),
            encoded: None,
        };
        assert_eq!(encode_event(&ev).as_ref(), want.as_slice());
        let ev = WatchEvent {
            encoded: Some(serde_json::to_vec(&object).unwrap().into()),
            ..ev
        };
        assert_eq!(encode_event(&ev).as_ref(), want.as_slice());
    }
}
