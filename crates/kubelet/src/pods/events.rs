//! Event recording (core/v1 Events, as upstream's kubelet writes them).
//! `Recorder::event` never blocks: events go through a bounded queue to a
//! background task that creates them, or bumps `count` on a recent identical
//! event (upstream's correlator aggregates repeats the same way).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use tokio::sync::mpsc;

use super::spec;
use crate::pods::time::{now_time, unix_nanos};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
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

/// An object reference to a pod (optionally one of its containers).
pub fn pod_ref(pod: &Pod, field_path: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: Some(spec::namespace(pod).to_string()),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path,
    }
}

/// The field path of a container: `spec.containers{name}` or `spec.initContainers{name}`.
pub fn container_field_path(pod: &Pod, container: &str) -> String {
    if spec::init_containers(pod)
        .iter()
        .any(|c| c.name == container)
    {
        format!("spec.initContainers{{{container}}}")
    } else {
        format!("spec.containers{{{container}}}")
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

impl Recorder {
    /// Starts the background writer.
    pub fn start(client: kube::Client, node_name: String) -> Recorder {
        let (tx, rx) = mpsc::channel(2048);
        tokio::spawn(run(client, node_name, rx));
        Recorder { tx: Some(tx) }
    }

    /// A recorder that drops everything (tests).
    pub fn disabled() -> Recorder {
        Recorder { tx: None }
    }

    pub fn event(
        &self,
        obj: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let message = message.into();
        tracing::debug!(object = ?obj.name, reason, %message, "event");
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(Pending {
                obj: obj.clone(),
                type_,
                reason: reason.into(),
                message,
            });
        }
    }

    /// An event about a pod.
    pub fn pod_event(&self, pod: &Pod, type_: EventType, reason: &str, message: impl Into<String>) {
        self.event(&pod_ref(pod, None), type_, reason, message)
    }

    /// An event about one of a pod's containers.
    pub fn container_event(
        &self,
        pod: &Pod,
        container: &str,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.event(
            &pod_ref(pod, Some(container_field_path(pod, container))),
            type_,
            reason,
            message,
        )
    }
}

type Key = (String, String, String, EventType, String, String);

struct Seen {
    namespace: String,
    name: String,
    count: i32,
    at: Instant,
}

const AGGREGATE_WINDOW: Duration = Duration::from_secs(600);

/// Spam filter as client-go's event correlator: per identical event, a
/// token bucket of 25 that refills one token every 5 minutes, so a pod in
/// back-off does not write an event on every sync.
const SPAM_BURST: f64 = 25.0;
const SPAM_REFILL: Duration = Duration::from_secs(300);

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
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

async fn run(client: kube::Client, node_name: String, mut rx: mpsc::Receiver<Pending>) {
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
        let allowed = buckets
            .entry(key.clone())
            .or_insert(Bucket {
                tokens: SPAM_BURST,
                at: Instant::now(),
            })
            .take();
        if !allowed {
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
                component: Some("kubelet".into()),
                host: Some(node_name.clone()),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(node_name.clone()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &ev).await {
            Ok(_) => {
                seen.insert(
                    key,
                    Seen {
                        namespace,
                        name,
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
        let mut b = Bucket {
            tokens: SPAM_BURST,
            at: Instant::now(),
        };
        let allowed = (0..40).filter(|_| b.take()).count();
        assert_eq!(allowed, 25);
    }
}
