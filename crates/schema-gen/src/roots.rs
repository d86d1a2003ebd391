//! The root types whose schemas (and everything they reach) go into
//! api-schemas/definitions.json: every `k8s_openapi::Resource` of v1_33 plus the
//! meta types the apiserver speaks (DeleteOptions, WatchEvent, Patch, ...).
//!
//! `main` cross-checks this list against the k8s-openapi sources (every
//! `impl crate::Resource for` must be covered), so a k8s-openapi upgrade that
//! adds a kind fails loudly instead of silently missing it.

use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};

/// One top-level kind: its definition name and group/version/kind.
#[derive(Debug, Clone)]
pub struct Root {
    pub definition: String,
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// `Some("PodList")` for listable kinds.
    pub list_kind: Option<&'static str>,
}

fn def_name<T: JsonSchema>() -> String {
    T::schema_name().into_owned()
}

fn resource<T: JsonSchema + k8s_openapi::Resource>(g: &mut SchemaGenerator, out: &mut Vec<Root>) {
    let _ = g.subschema_for::<T>();
    out.push(Root {
        definition: def_name::<T>(),
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        list_kind: None,
    });
}

fn listable<T: JsonSchema + k8s_openapi::ListableResource>(
    g: &mut SchemaGenerator,
    out: &mut Vec<Root>,
) {
    let _ = g.subschema_for::<T>();
    out.push(Root {
        definition: def_name::<T>(),
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        list_kind: Some(T::LIST_KIND),
    });
}

macro_rules! listable {
    ($g:expr, $out:expr; $($t:path),* $(,)?) => { $( listable::<$t>($g, $out); )* };
}
macro_rules! resource {
    ($g:expr, $out:expr; $($t:path),* $(,)?) => { $( resource::<$t>($g, $out); )* };
}
macro_rules! plain {
    ($g:expr; $($t:path),* $(,)?) => { $( let _ = $g.subschema_for::<$t>(); )* };
}

/// Registers every root type with the generator and returns the kinds.
pub fn register(g: &mut SchemaGenerator) -> Vec<Root> {
    use k8s_openapi::api;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
    use k8s_openapi::apimachinery::pkg::apis::meta;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration;

    let mut out = Vec::new();
    let o = &mut out;
    listable!(g, o;
        api::admissionregistration::v1::MutatingWebhookConfiguration,
        api::admissionregistration::v1::ValidatingAdmissionPolicy,
        api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
        api::admissionregistration::v1::ValidatingWebhookConfiguration,
        api::admissionregistration::v1alpha1::MutatingAdmissionPolicy,
        api::admissionregistration::v1alpha1::MutatingAdmissionPolicyBinding,
        api::admissionregistration::v1beta1::ValidatingAdmissionPolicy,
        api::admissionregistration::v1beta1::ValidatingAdmissionPolicyBinding,
        api::apiserverinternal::v1alpha1::StorageVersion,
        api::apps::v1::ControllerRevision,
        api::apps::v1::DaemonSet,
        api::apps::v1::Deployment,
        api::apps::v1::ReplicaSet,
        api::apps::v1::StatefulSet,
        api::autoscaling::v1::HorizontalPodAutoscaler,
        api::autoscaling::v2::HorizontalPodAutoscaler,
        api::batch::v1::CronJob,
        api::batch::v1::Job,
        api::certificates::v1::CertificateSigningRequest,
        api::certificates::v1alpha1::ClusterTrustBundle,
        api::certificates::v1beta1::ClusterTrustBundle,
        api::coordination::v1::Lease,
        api::coordination::v1alpha2::LeaseCandidate,
        api::coordination::v1beta1::LeaseCandidate,
        api::core::v1::ComponentStatus,
        api::core::v1::ConfigMap,
        api::core::v1::Endpoints,
        api::core::v1::Event,
        api::core::v1::LimitRange,
        api::core::v1::Namespace,
        api::core::v1::Node,
        api::core::v1::PersistentVolume,
        api::core::v1::PersistentVolumeClaim,
        api::core::v1::Pod,
        api::core::v1::PodTemplate,
        api::core::v1::ReplicationController,
        api::core::v1::ResourceQuota,
        api::core::v1::Secret,
        api::core::v1::Service,
        api::core::v1::ServiceAccount,
        api::discovery::v1::EndpointSlice,
        api::events::v1::Event,
        api::flowcontrol::v1::FlowSchema,
        api::flowcontrol::v1::PriorityLevelConfiguration,
        api::networking::v1::Ingress,
        api::networking::v1::IngressClass,
        api::networking::v1::IPAddress,
        api::networking::v1::NetworkPolicy,
        api::networking::v1::ServiceCIDR,
        api::networking::v1beta1::IPAddress,
        api::networking::v1beta1::ServiceCIDR,
        api::node::v1::RuntimeClass,
        api::policy::v1::PodDisruptionBudget,
        api::rbac::v1::ClusterRole,
        api::rbac::v1::ClusterRoleBinding,
        api::rbac::v1::Role,
        api::rbac::v1::RoleBinding,
        api::resource::v1alpha3::DeviceClass,
        api::resource::v1alpha3::DeviceTaintRule,
        api::resource::v1alpha3::ResourceClaim,
        api::resource::v1alpha3::ResourceClaimTemplate,
        api::resource::v1alpha3::ResourceSlice,
        api::resource::v1beta1::DeviceClass,
        api::resource::v1beta1::ResourceClaim,
        api::resource::v1beta1::ResourceClaimTemplate,
        api::resource::v1beta1::ResourceSlice,
        api::resource::v1beta2::DeviceClass,
        api::resource::v1beta2::ResourceClaim,
        api::resource::v1beta2::ResourceClaimTemplate,
        api::resource::v1beta2::ResourceSlice,
        api::scheduling::v1::PriorityClass,
        api::storage::v1::CSIDriver,
        api::storage::v1::CSINode,
        api::storage::v1::CSIStorageCapacity,
        api::storage::v1::StorageClass,
        api::storage::v1::VolumeAttachment,
        api::storage::v1alpha1::VolumeAttributesClass,
        api::storage::v1beta1::VolumeAttributesClass,
        api::storagemigration::v1alpha1::StorageVersionMigration,
        apiextensions::v1::CustomResourceDefinition,
        apiregistration::v1::APIService,
    );
    resource!(g, o;
        api::authentication::v1::SelfSubjectReview,
        api::authentication::v1::TokenRequest,
        api::authentication::v1::TokenReview,
        api::authorization::v1::LocalSubjectAccessReview,
        api::authorization::v1::SelfSubjectAccessReview,
        api::authorization::v1::SelfSubjectRulesReview,
        api::authorization::v1::SubjectAccessReview,
        api::autoscaling::v1::Scale,
        api::core::v1::Binding,
        api::policy::v1::Eviction,
        meta::v1::Status,
    );
    // Discovery documents: Resources in k8s-openapi, but upstream's OpenAPI
    // carries no group-version-kind for them.
    plain!(g;
        meta::v1::APIGroup,
        meta::v1::APIGroupList,
        meta::v1::APIResourceList,
        meta::v1::APIVersions,
        meta::v1::DeleteOptions,
        meta::v1::WatchEvent<api::core::v1::Pod>,
        meta::v1::Patch,
        meta::v1::ListMeta,
        meta::v1::Condition,
        meta::v1::LabelSelector,
        meta::v1::MicroTime,
        meta::v1::Time,
        k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
        k8s_openapi::apimachinery::pkg::runtime::RawExtension,
        k8s_openapi::apimachinery::pkg::version::Info,
    );
    out
}
