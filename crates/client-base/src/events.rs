//! Event recording (core/v1 Events, as upstream's client-go record package
//! writes them). [`Recorder::event`] never blocks: events go through a bounded
//! queue to a background task that creates them, or bumps `count` on a recent
//! identical event (upstream's correlator aggregates repeats the same way),
//! dropping identical events beyond the correlator's spam-filter budget.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use tokio::sync::mpsc;

/// The event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

struct Pending {
    obj: ObjectReference,
    type_: EventType,
    reason: String,
    message: String,
}

/// Cloneable handle for emitting events.
#[derive(Clone)]
pub struct Recorder {
    tx: Option<mpsc::Sender<Pending>>,
}

/// An object reference to any typed object (apiVersion, kind, namespace,
/// name, uid, resourceVersion).
pub fn object_ref<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: obj.meta().name.clone(),
        namespace: obj.meta().namespace.clone(),
        uid: obj.meta().uid.clone(),
        resource_version: obj.meta().resource_version.clone(),
        field_path: None,
    }
}

/// An object reference to a node (upstream uses the node name as its UID).
pub fn node_ref(node: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.into()),
        uid: Some(node.into()),
        ..Default::default()
    }
}

fn now_time() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

impl Recorder {
    /// Starts the background writer. `component` is the event source
    /// (e.g. "replicaset-controller", "default-scheduler", "kubelet");
    /// `host` the source host (the node name for the kubelet; empty otherwise).
    pub fn start(
        client: kube::Client,
        component: impl Into<String>,
        host: Option<String>,
    ) -> Recorder {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(client, component.into(), host, rx));
        Recorder { tx: Some(tx) }
    }

    /// A recorder that drops everything (tests).
    pub fn disabled() -> Recorder {
        Recorder { tx: None }
    }

    /// Records an event about `obj`.
    pub fn event(
        &self,
        obj: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let message = message.into();
        tracing::debug!(kind = ?obj.kind, namespace = ?obj.namespace, object = ?obj.name, reason, %message, "event");
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(Pending {
                obj: obj.clone(),
                type_,
                reason: reason.into(),
                message,
            });
        }
    }

    /// Records an event about a typed object.
    pub fn object_event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.event(&object_ref(obj), type_, reason, message)
    }

    /// `Normal` event about a typed object.
    pub fn normal<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.object_event(obj, EventType::Normal, reason, message)
    }

    /// `Warning` event about a typed object.
    pub fn warning<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.object_event(obj, EventType::Warning, reason, message)
    }
}

type Key = (String, String, String, String, EventType, String, String);

struct Seen {
    namespace: String,
    name: String,
    count: i32,
    at: Instant,
}

const AGGREGATE_WINDOW: Duration = Duration::from_secs(600);

/// Spam filter as client-go's event correlator: per identical event, a
/// token bucket of 25 that refills one token every 5 minutes, so an object
/// stuck in a loop (a pod in back-off, say) does not write an event on
/// every sync.
const SPAM_BURST: f64 = 25.0;
const SPAM_REFILL: Duration = Duration::from_secs(300);

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full() -> Bucket {
        Bucket {
            tokens: SPAM_BURST,
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let refill = self.at.elapsed().as_secs_f64() / SPAM_REFILL.as_secs_f64();
        self.tokens = (self.tokens + refill).min(SPAM_BURST);
        self.at = Instant::now();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

async fn run(
    client: kube::Client,
    component: String,
    host: Option<String>,
    mut rx: mpsc::Receiver<Pending>,
) {
    let mut seen: HashMap<Key, Seen> = HashMap::new();
    let mut buckets: HashMap<Key, Bucket> = HashMap::new();
    while let Some(p) = rx.recv().await {
        let namespace = p
            .obj
            .namespace
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into());
        let key: Key = (
            p.obj.kind.clone().unwrap_or_default(),
            p.obj.uid.clone().unwrap_or_default(),
            p.obj.name.clone().unwrap_or_default(),
            p.obj.field_path.clone().unwrap_or_default(),
            p.type_,
            p.reason.clone(),
            p.message.clone(),
        );
        if buckets.len() > 4096 {
            buckets.retain(|_, b| b.at.elapsed() < SPAM_REFILL * 25);
        }
        if !buckets
            .entry(key.clone())
            .or_insert_with(Bucket::full)
            .take()
        {
            continue;
        }
        if seen.len() > 4096 {
            seen.retain(|_, s| s.at.elapsed() < AGGREGATE_WINDOW);
            if seen.len() > 4096 {
                seen.clear();
            }
        }
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        if let Some(s) = seen
            .get_mut(&key)
            .filter(|s| s.at.elapsed() < AGGREGATE_WINDOW)
        {
            s.count += 1;
            s.at = Instant::now();
            let patch = serde_json::json!({"count": s.count, "lastTimestamp": now_time()});
            match api
                .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => continue,
                Err(e) => tracing::debug!("updating event {}/{}: {e}", s.namespace, s.name),
            }
        }
        let name = format!(
            "{}.{:x}",
            p.obj.name.clone().unwrap_or_default(),
            unix_nanos()
        );
        let now = now_time();
        let ev = Event {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: p.obj.clone(),
            reason: Some(p.reason.clone()),
            message: Some(p.message.clone()),
            type_: Some(p.type_.as_str().into()),
            source: Some(EventSource {
                component: Some(component.clone()),
                host: host.clone(),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            reporting_component: Some(component.clone()),
            reporting_instance: Some(host.clone().unwrap_or_else(crate::hostname)),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &ev).await {
            Ok(created) => {
                seen.insert(
                    key,
                    Seen {
                        namespace,
                        name: created.name_any(),
                        count: 1,
                        at: Instant::now(),
                    },
                );
            }
            Err(e) => tracing::debug!("creating event {}: {e}", p.reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spam_filter_allows_a_burst_then_drops() {
        let mut b = Bucket::full();
        let allowed = (0..40).filter(|_| b.take()).count();
        assert_eq!(allowed, 25);
    }
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn references() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.uid = Some("u".into());
        let r = object_ref(&pod);
        assert_eq!(r.kind.as_deref(), Some("Pod"));
        assert_eq!(r.api_version.as_deref(), Some("v1"));
        assert_eq!(r.namespace.as_deref(), Some("ns"));
        assert_eq!(r.uid.as_deref(), Some("u"));
        assert_eq!(node_ref("n").uid.as_deref(), Some("n"));
        // A disabled recorder swallows events.
        Recorder::disabled().normal(&pod, "Scheduled", "ok");
    }
}
