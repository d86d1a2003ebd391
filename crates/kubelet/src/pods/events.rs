//! Kubelet events: the shared recorder of `client_base::events` (core/v1
//! Events with upstream's aggregation and spam filter), with source
//! `kubelet` on this node, plus references to pods and their containers.

use k8s_openapi::api::core::v1::{ObjectReference, Pod};

use super::spec;

pub use client_base::events::{node_ref, EventType};

/// Cloneable handle for emitting events.
#[derive(Clone)]
pub struct Recorder(client_base::events::Recorder);

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

impl Recorder {
    /// Starts the background writer (source `kubelet`, host `node_name`).
    pub fn start(client: kube::Client, node_name: String) -> Recorder {
        Recorder(client_base::events::Recorder::start(
            client,
            "kubelet",
            Some(node_name),
        ))
    }

    /// A recorder that drops everything (tests).
    pub fn disabled() -> Recorder {
        Recorder(client_base::events::Recorder::disabled())
    }

    pub fn event(
        &self,
        obj: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.0.event(obj, type_, reason, message)
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
