//! The core/v1 resources (group "", version v1): one strategy per resource
//! with upstream's discovery facts, defaulting, validation, field selectors
//! and table printing.
//!
//! PodSpec helpers other workload groups need are public here:
//! [`default_pod_template_spec`], [`validate_pod_template_spec`],
//! [`validate_pod_spec`], [`default_pvc_spec`], [`validate_pvc_spec`],
//! [`container_cells`], [`format_labels`], [`compute_qos`], and, for the
//! pods/ephemeralcontainers subresource, [`prepare_ephemeral_containers_update`]
//! and [`validate_ephemeral_containers_update`].

mod cluster;
mod config;
mod pod;
mod quantity;
mod rc;
mod service;
mod storage;

#[cfg(test)]
mod tests;

use crate::strategy::{ResourceInfo, Subresource};
use crate::Strategy;
use std::sync::Arc;

pub(crate) use cluster::{event_cells, event_columns, event_reporting_errors};
pub use pod::{
    compute_qos, container_cells, default_pod, default_pod_spec, default_pod_template_spec,
    format_labels, prepare_ephemeral_containers_update, validate_ephemeral_containers_update,
    validate_pod_spec, validate_pod_template_spec,
};
pub use storage::{default_pvc_spec, validate_pvc_spec};

/// ObjectMeta's description of `name`, for Name columns we declare ourselves.
pub(crate) const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// A core/v1 ResourceInfo; `definition` is `io.k8s.api.core.v1.<Kind>`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn core_info(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    namespaced: bool,
    subresources: &'static [Subresource],
    storage_segment: &'static str,
) -> ResourceInfo {
    let definition: &'static str = match kind {
        "Namespace" => "io.k8s.api.core.v1.Namespace",
        "Pod" => "io.k8s.api.core.v1.Pod",
        "Service" => "io.k8s.api.core.v1.Service",
        "Endpoints" => "io.k8s.api.core.v1.Endpoints",
        "ConfigMap" => "io.k8s.api.core.v1.ConfigMap",
        "Secret" => "io.k8s.api.core.v1.Secret",
        "ServiceAccount" => "io.k8s.api.core.v1.ServiceAccount",
        "Node" => "io.k8s.api.core.v1.Node",
        "Event" => "io.k8s.api.core.v1.Event",
        "PersistentVolume" => "io.k8s.api.core.v1.PersistentVolume",
        "PersistentVolumeClaim" => "io.k8s.api.core.v1.PersistentVolumeClaim",
        "ReplicationController" => "io.k8s.api.core.v1.ReplicationController",
        "ResourceQuota" => "io.k8s.api.core.v1.ResourceQuota",
        "LimitRange" => "io.k8s.api.core.v1.LimitRange",
        "PodTemplate" => "io.k8s.api.core.v1.PodTemplate",
        "ComponentStatus" => "io.k8s.api.core.v1.ComponentStatus",
        _ => "",
    };
    ResourceInfo {
        group: "",
        version: "v1",
        kind,
        plural,
        singular,
        short_names,
        categories,
        namespaced,
        definition,
        subresources,
        read_only: false,
        storage_segment,
        storage_api_version: "v1",
    }
}

/// Every core/v1 resource, in upstream's discovery order (by resource name).
pub fn all() -> Vec<Arc<dyn Strategy>> {
    vec![
        Arc::new(cluster::ComponentStatusStrategy::new()),
        Arc::new(config::ConfigMapStrategy::new()),
        Arc::new(service::EndpointsStrategy::new()),
        Arc::new(cluster::EventStrategy::new()),
        Arc::new(config::LimitRangeStrategy::new()),
        Arc::new(cluster::NamespaceStrategy::new()),
        Arc::new(cluster::NodeStrategy::new()),
        Arc::new(storage::PvcStrategy::new()),
        Arc::new(storage::PvStrategy::new()),
        Arc::new(pod::PodStrategy::new()),
        Arc::new(pod::PodTemplateStrategy::new()),
        Arc::new(rc::ReplicationControllerStrategy::new()),
        Arc::new(config::ResourceQuotaStrategy::new()),
        Arc::new(config::SecretStrategy::new()),
        Arc::new(config::ServiceAccountStrategy::new()),
        Arc::new(service::ServiceStrategy::new()),
    ]
}
