//! Generates `api-schemas/protobuf.json`: the protobuf field map that
//! `apimachinery::protobuf` uses to turn `application/vnd.kubernetes.protobuf`
//! request bodies into JSON objects.
//!
//! Run: `cargo run -p schema-gen --bin proto-map` (or pass the k8s-pb source
//! directory as the only argument, or set `K8S_PB_SRC`).
//!
//! Field numbers and wire types come from the prost-generated sources of the
//! `k8s-pb` crate (an optional, never-compiled dependency of schema-gen, so
//! that `cargo metadata` can locate and download it). Every message struct is
//! read with a line-oriented parser: its `#[prost(...)]` attributes give the
//! kind and tag, the Rust type that follows gives the referenced message.
//!
//! JSON field names, and which messages exist at all in the served API, come
//! from `api-schemas/definitions.json` (v1.33). A message is kept when its
//! definition is there, or when a kept field references it. Fields whose
//! definition exists but lacks the property (newer than v1.33) are dropped, as
//! a v1.33 apiserver would ignore them.
//!
//! Output, keyed by OpenAPI definition name, then by tag:
//! `{"json": name, "kind": k, "repeated": bool, "omitempty": bool}` plus
//! `"msg"` for `message` fields and `"key"`/`"value"` (and `"msg"` for a
//! message value) for `map` fields. `omitempty` marks the scalar fields that
//! upstream's JSON leaves out when they hold the zero value: Go value fields
//! tagged `omitempty`. Go's protobuf marshaller writes such fields even when
//! zero, so the decoder must drop the zero to reproduce upstream's JSON. It is
//! false for fields the definition lists as required (no `omitempty`) and
//! for the pointer fields listed in [`POINTERS`] (nil is absent on the wire,
//! a present zero is meaningful and emitted). `"inline": true` marks a Go
//! embedded struct (`json:",inline"`): a message on the wire whose fields
//! belong to the enclosing JSON object (Volume's VolumeSource, the
//! LocalObjectReference of key selectors, Probe's handler, ...).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

/// Go pointer-typed scalar fields (`*int32`, `*bool`, `*string`, ...) of the
/// served types: present with a zero value means "explicitly zero", which
/// upstream's JSON keeps. Keyed by definition name; JSON property names.
const POINTERS: &[(&str, &[&str])] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        &["deletionGracePeriodSeconds"],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
        &["controller", "blockOwnerDeletion"],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
        &["remainingItemCount"],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        &[
            "gracePeriodSeconds",
            "orphanDependents",
            "propagationPolicy",
            "ignoreStoreReadErrorWithClusterBreakingPotential",
        ],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.Preconditions",
        &["uid", "resourceVersion"],
    ),
    (
        "io.k8s.api.core.v1.AzureDiskVolumeSource",
        &["cachingMode", "fsType", "readOnly", "kind"],
    ),
    (
        "io.k8s.api.core.v1.CSIVolumeSource",
        &["readOnly", "fsType"],
    ),
    ("io.k8s.api.core.v1.ClientIPConfig", &["timeoutSeconds"]),
    (
        "io.k8s.api.core.v1.ClusterTrustBundleProjection",
        &["name", "signerName", "optional"],
    ),
    ("io.k8s.api.core.v1.ConfigMap", &["immutable"]),
    ("io.k8s.api.core.v1.ConfigMapEnvSource", &["optional"]),
    ("io.k8s.api.core.v1.ConfigMapKeySelector", &["optional"]),
    ("io.k8s.api.core.v1.ConfigMapProjection", &["optional"]),
    (
        "io.k8s.api.core.v1.ConfigMapVolumeSource",
        &["defaultMode", "optional"],
    ),
    ("io.k8s.api.core.v1.Container", &["restartPolicy"]),
    (
        "io.k8s.api.core.v1.ContainerStatus",
        &["started", "stopSignal"],
    ),
    ("io.k8s.api.core.v1.DownwardAPIVolumeFile", &["mode"]),
    (
        "io.k8s.api.core.v1.DownwardAPIVolumeSource",
        &["defaultMode"],
    ),
    ("io.k8s.api.core.v1.EndpointAddress", &["nodeName"]),
    ("io.k8s.api.core.v1.EndpointPort", &["appProtocol"]),
    ("io.k8s.api.core.v1.EphemeralContainer", &["restartPolicy"]),
    ("io.k8s.api.core.v1.FCVolumeSource", &["lun"]),
    ("io.k8s.api.core.v1.GRPCAction", &["service"]),
    (
        "io.k8s.api.core.v1.GlusterfsPersistentVolumeSource",
        &["endpointsNamespace"],
    ),
    ("io.k8s.api.core.v1.HostPathVolumeSource", &["type"]),
    (
        "io.k8s.api.core.v1.ISCSIPersistentVolumeSource",
        &["initiatorName"],
    ),
    ("io.k8s.api.core.v1.ISCSIVolumeSource", &["initiatorName"]),
    ("io.k8s.api.core.v1.KeyToPath", &["mode"]),
    ("io.k8s.api.core.v1.Lifecycle", &["stopSignal"]),
    ("io.k8s.api.core.v1.LoadBalancerIngress", &["ipMode"]),
    ("io.k8s.api.core.v1.LocalVolumeSource", &["fsType"]),
    (
        "io.k8s.api.core.v1.NodeFeatures",
        &["supplementalGroupsPolicy"],
    ),
    (
        "io.k8s.api.core.v1.NodeRuntimeHandlerFeatures",
        &["recursiveReadOnlyMounts", "userNamespaces"],
    ),
    ("io.k8s.api.core.v1.NodeSwapStatus", &["capacity"]),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
        &[
            "storageClassName",
            "volumeMode",
            "volumeAttributesClassName",
        ],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        &["currentVolumeAttributesClassName"],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeSpec",
        &["volumeMode", "volumeAttributesClassName"],
    ),
    ("io.k8s.api.core.v1.PodDNSConfigOption", &["value"]),
    (
        "io.k8s.api.core.v1.PodResourceClaim",
        &["resourceClaimName", "resourceClaimTemplateName"],
    ),
    (
        "io.k8s.api.core.v1.PodResourceClaimStatus",
        &["resourceClaimName"],
    ),
    (
        "io.k8s.api.core.v1.PodSecurityContext",
        &[
            "runAsUser",
            "runAsGroup",
            "runAsNonRoot",
            "fsGroup",
            "fsGroupChangePolicy",
            "supplementalGroupsPolicy",
            "seLinuxChangePolicy",
        ],
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        &[
            "terminationGracePeriodSeconds",
            "activeDeadlineSeconds",
            "automountServiceAccountToken",
            "shareProcessNamespace",
            "priority",
            "runtimeClassName",
            "enableServiceLinks",
            "preemptionPolicy",
            "setHostnameAsFQDN",
            "hostUsers",
        ],
    ),
    ("io.k8s.api.core.v1.PortStatus", &["error"]),
    (
        "io.k8s.api.core.v1.Probe",
        &["terminationGracePeriodSeconds"],
    ),
    ("io.k8s.api.core.v1.ProjectedVolumeSource", &["defaultMode"]),
    (
        "io.k8s.api.core.v1.ReplicationControllerSpec",
        &["replicas"],
    ),
    ("io.k8s.api.core.v1.SeccompProfile", &["localhostProfile"]),
    ("io.k8s.api.core.v1.AppArmorProfile", &["localhostProfile"]),
    ("io.k8s.api.core.v1.Secret", &["immutable"]),
    ("io.k8s.api.core.v1.SecretEnvSource", &["optional"]),
    ("io.k8s.api.core.v1.SecretKeySelector", &["optional"]),
    ("io.k8s.api.core.v1.SecretProjection", &["optional"]),
    (
        "io.k8s.api.core.v1.SecretVolumeSource",
        &["defaultMode", "optional"],
    ),
    (
        "io.k8s.api.core.v1.SecurityContext",
        &[
            "privileged",
            "runAsUser",
            "runAsGroup",
            "runAsNonRoot",
            "readOnlyRootFilesystem",
            "allowPrivilegeEscalation",
            "procMount",
        ],
    ),
    (
        "io.k8s.api.core.v1.ServiceAccount",
        &["automountServiceAccountToken"],
    ),
    (
        "io.k8s.api.core.v1.ServiceAccountTokenProjection",
        &["expirationSeconds"],
    ),
    ("io.k8s.api.core.v1.ServicePort", &["appProtocol"]),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        &[
            "allocateLoadBalancerNodePorts",
            "loadBalancerClass",
            "internalTrafficPolicy",
            "ipFamilyPolicy",
            "trafficDistribution",
        ],
    ),
    ("io.k8s.api.core.v1.Toleration", &["tolerationSeconds"]),
    (
        "io.k8s.api.core.v1.TopologySpreadConstraint",
        &["minDomains", "nodeAffinityPolicy", "nodeTaintsPolicy"],
    ),
    (
        "io.k8s.api.core.v1.TypedLocalObjectReference",
        &["apiGroup"],
    ),
    (
        "io.k8s.api.core.v1.TypedObjectReference",
        &["apiGroup", "namespace"],
    ),
    (
        "io.k8s.api.core.v1.VolumeMount",
        &["mountPropagation", "recursiveReadOnly"],
    ),
    (
        "io.k8s.api.core.v1.VolumeMountStatus",
        &["recursiveReadOnly"],
    ),
    (
        "io.k8s.api.core.v1.WindowsSecurityContextOptions",
        &[
            "gmsaCredentialSpecName",
            "gmsaCredentialSpec",
            "runAsUserName",
            "hostProcess",
        ],
    ),
    (
        "io.k8s.api.apps.v1.DaemonSetSpec",
        &["revisionHistoryLimit"],
    ),
    ("io.k8s.api.apps.v1.DaemonSetStatus", &["collisionCount"]),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        &[
            "replicas",
            "revisionHistoryLimit",
            "progressDeadlineSeconds",
        ],
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        &["terminatingReplicas", "collisionCount"],
    ),
    ("io.k8s.api.apps.v1.ReplicaSetSpec", &["replicas"]),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        &["terminatingReplicas"],
    ),
    (
        "io.k8s.api.apps.v1.RollingUpdateStatefulSetStrategy",
        &["partition"],
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetSpec",
        &["replicas", "revisionHistoryLimit"],
    ),
    ("io.k8s.api.apps.v1.StatefulSetStatus", &["collisionCount"]),
    (
        "io.k8s.api.batch.v1.CronJobSpec",
        &[
            "timeZone",
            "startingDeadlineSeconds",
            "suspend",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
        ],
    ),
    (
        "io.k8s.api.batch.v1.JobSpec",
        &[
            "parallelism",
            "completions",
            "activeDeadlineSeconds",
            "backoffLimit",
            "backoffLimitPerIndex",
            "maxFailedIndexes",
            "manualSelector",
            "ttlSecondsAfterFinished",
            "completionMode",
            "suspend",
            "podReplacementPolicy",
            "managedBy",
        ],
    ),
    (
        "io.k8s.api.batch.v1.JobStatus",
        &["terminating", "ready", "failedIndexes"],
    ),
    (
        "io.k8s.api.batch.v1.PodFailurePolicyOnExitCodesRequirement",
        &["containerName"],
    ),
    (
        "io.k8s.api.batch.v1.SuccessPolicyRule",
        &["succeededIndexes", "succeededCount"],
    ),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetSpec",
        &["unhealthyPodEvictionPolicy"],
    ),
    (
        "io.k8s.api.autoscaling.v1.HorizontalPodAutoscalerSpec",
        &["minReplicas", "targetCPUUtilizationPercentage"],
    ),
    (
        "io.k8s.api.autoscaling.v1.HorizontalPodAutoscalerStatus",
        &["observedGeneration", "currentCPUUtilizationPercentage"],
    ),
    (
        "io.k8s.api.autoscaling.v2.HPAScalingRules",
        &["stabilizationWindowSeconds", "selectPolicy"],
    ),
    (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec",
        &["minReplicas"],
    ),
    (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
        &["observedGeneration"],
    ),
    (
        "io.k8s.api.autoscaling.v2.MetricTarget",
        &["averageUtilization"],
    ),
    (
        "io.k8s.api.autoscaling.v2.MetricValueStatus",
        &["averageUtilization"],
    ),
    ("io.k8s.api.networking.v1.HTTPIngressPath", &["pathType"]),
    (
        "io.k8s.api.networking.v1.IngressClassParametersReference",
        &["apiGroup", "scope", "namespace"],
    ),
    ("io.k8s.api.networking.v1.IngressPortStatus", &["error"]),
    (
        "io.k8s.api.networking.v1.IngressSpec",
        &["ingressClassName"],
    ),
    (
        "io.k8s.api.networking.v1.NetworkPolicyPort",
        &["protocol", "endPort"],
    ),
    (
        "io.k8s.api.coordination.v1.LeaseSpec",
        &[
            "holderIdentity",
            "leaseDurationSeconds",
            "leaseTransitions",
            "strategy",
            "preferredHolder",
        ],
    ),
    (
        "io.k8s.api.discovery.v1.Endpoint",
        &["hostname", "nodeName", "zone"],
    ),
    (
        "io.k8s.api.discovery.v1.EndpointConditions",
        &["ready", "serving", "terminating"],
    ),
    (
        "io.k8s.api.discovery.v1.EndpointPort",
        &["name", "protocol", "port", "appProtocol"],
    ),
    (
        "io.k8s.api.storage.v1.StorageClass",
        &["reclaimPolicy", "allowVolumeExpansion", "volumeBindingMode"],
    ),
    (
        "io.k8s.api.storage.v1.CSIDriverSpec",
        &[
            "attachRequired",
            "podInfoOnMount",
            "storageCapacity",
            "fsGroupPolicy",
            "requiresRepublish",
            "seLinuxMount",
            "nodeAllocatableUpdatePeriodSeconds",
        ],
    ),
    ("io.k8s.api.storage.v1.VolumeNodeResources", &["count"]),
    (
        "io.k8s.api.storage.v1.VolumeAttachmentSource",
        &["persistentVolumeName"],
    ),
    ("io.k8s.api.storage.v1.VolumeError", &["errorCode"]),
    (
        "io.k8s.api.scheduling.v1.PriorityClass",
        &["preemptionPolicy"],
    ),
    (
        "io.k8s.api.certificates.v1.CertificateSigningRequestSpec",
        &["expirationSeconds"],
    ),
    (
        "io.k8s.api.authentication.v1.TokenRequestSpec",
        &["expirationSeconds"],
    ),
    (
        "io.k8s.api.admissionregistration.v1.MutatingWebhook",
        &[
            "failurePolicy",
            "matchPolicy",
            "sideEffects",
            "timeoutSeconds",
            "reinvocationPolicy",
        ],
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingWebhook",
        &[
            "failurePolicy",
            "matchPolicy",
            "sideEffects",
            "timeoutSeconds",
        ],
    ),
    (
        "io.k8s.api.admissionregistration.v1.WebhookClientConfig",
        &["url"],
    ),
    (
        "io.k8s.api.admissionregistration.v1.ServiceReference",
        &["path", "port"],
    ),
    (
        "io.k8s.api.admissionregistration.v1.RuleWithOperations",
        &["scope"],
    ),
    (
        "io.k8s.api.admissionregistration.v1.MatchResources",
        &["matchPolicy"],
    ),
    (
        "io.k8s.api.admissionregistration.v1.ParamRef",
        &["parameterNotFoundAction"],
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec",
        &["failurePolicy"],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps",
        &[
            "$ref",
            "maximum",
            "minimum",
            "maxLength",
            "minLength",
            "maxItems",
            "minItems",
            "multipleOf",
            "maxProperties",
            "minProperties",
            "x-kubernetes-preserve-unknown-fields",
            "x-kubernetes-list-type",
            "x-kubernetes-map-type",
        ],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionVersion",
        &["deprecationWarning"],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceSubresourceScale",
        &["labelSelectorPath"],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.WebhookClientConfig",
        &["url"],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.ServiceReference",
        &["path", "port"],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.ValidationRule",
        &["reason", "optionalOldSelf"],
    ),
    (
        "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.ServiceReference",
        &["port"],
    ),
    (
        "io.k8s.api.flowcontrol.v1.LimitedPriorityLevelConfiguration",
        &[
            "nominalConcurrencyShares",
            "lendablePercent",
            "borrowingLimitPercent",
        ],
    ),
    (
        "io.k8s.api.flowcontrol.v1.ExemptPriorityLevelConfiguration",
        &["nominalConcurrencyShares", "lendablePercent"],
    ),
];

/// Messages always kept even without a definition of their own: the decoder
/// needs them (wrappers serialized as something other than an object).
const EXTRA_ROOTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.runtime.Unknown",
    "io.k8s.apimachinery.pkg.runtime.TypeMeta",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Duration",
];

#[derive(Debug, Clone)]
struct RawField {
    rust_name: String,
    tag: u32,
    kind: String,
    repeated: bool,
    /// Map value kind (`string`, `bytes`, `message`).
    value: Option<String>,
    /// Referenced message (definition name), for messages and message-valued maps.
    msg: Option<String>,
}

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let src = match std::env::args()
        .nth(1)
        .or_else(|| std::env::var("K8S_PB_SRC").ok())
    {
        Some(s) => PathBuf::from(s),
        None => locate_k8s_pb(&root)?,
    };
    let defs_path = root.join("api-schemas/definitions.json");
    let defs: Map<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(&defs_path)
            .with_context(|| format!("reading {}", defs_path.display()))?,
    )
    .context("parsing definitions.json")?;

    // prost spells `ClientIPConfig` as `ClientIpConfig`: match definitions
    // case-insensitively.
    let defs_ci: BTreeMap<String, String> = defs
        .keys()
        .map(|k| (k.to_ascii_lowercase(), k.clone()))
        .collect();
    let mut renames: BTreeMap<String, String> = BTreeMap::new();
    let mut messages: BTreeMap<String, Vec<RawField>> = BTreeMap::new();
    let mut files = Vec::new();
    collect_files(&src, &mut files)?;
    files.sort();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap_or(file);
        let mut module: Vec<String> = rel
            .parent()
            .map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        match rel.file_name().and_then(|f| f.to_str()) {
            Some("mod.rs") => {}
            Some("lib.rs") if module.is_empty() => continue,
            Some(other) => module.push(other.trim_end_matches(".rs").to_string()),
            None => continue,
        }
        if module.is_empty() {
            continue;
        }
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for (rust, proto, fields) in
            parse_file(&text, &module).with_context(|| format!("parsing {}", file.display()))?
        {
            let by_rust = def_name(&module, &rust);
            let by_proto = def_name(&module, &proto);
            let def = defs_ci
                .get(&by_rust.to_ascii_lowercase())
                .cloned()
                .unwrap_or(by_proto);
            renames.insert(by_rust, def.clone());
            if messages.insert(def.clone(), fields).is_some() {
                bail!("duplicate message {def}");
            }
        }
    }
    // Field references were resolved with Rust names; map them to proto names.
    for fields in messages.values_mut() {
        for f in fields {
            if let Some(m) = f.msg.as_mut() {
                *m = renames
                    .get(m)
                    .cloned()
                    .with_context(|| format!("unknown message {m}"))?;
            }
        }
    }
    eprintln!(
        "proto-map: {} messages parsed from {}",
        messages.len(),
        src.display()
    );

    // Keep the messages the served API defines, plus what they reference.
    // Go embedded structs (`json:",inline"`) are message fields on the wire
    // and flattened in JSON. A message that exists only inlined (no
    // definition of its own, e.g. EphemeralContainerCommon) takes its JSON
    // names and required/pointer facts from the definition that inlines it.
    let mut owner: BTreeMap<String, String> = messages
        .keys()
        .filter(|k| plain_props(&defs, k).is_some())
        .map(|k| (k.clone(), k.clone()))
        .collect();
    loop {
        let mut changed = false;
        for (name, fields) in &messages {
            let Some(o) = owner.get(name).cloned() else {
                continue;
            };
            let props = plain_props(&defs, &o);
            for f in fields {
                if let (Some(props), Some(m)) = (props, &f.msg) {
                    if is_inline(f, props, &messages) && !owner.contains_key(m) {
                        owner.insert(m.clone(), o.clone());
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }

    let mut keep: BTreeSet<String> = BTreeSet::new();
    let mut queue: Vec<String> = messages
        .keys()
        .filter(|k| defs.contains_key(*k) || EXTRA_ROOTS.contains(&k.as_str()))
        .cloned()
        .collect();
    let mut out: BTreeMap<String, BTreeMap<u32, Value>> = BTreeMap::new();
    let pointers: BTreeMap<&str, &[&str]> = POINTERS.iter().copied().collect();
    let mut used_pointers: BTreeSet<(String, String)> = BTreeSet::new();
    let mut dropped = 0usize;
    let verbose = std::env::var_os("PROTO_MAP_VERBOSE").is_some();
    while let Some(name) = queue.pop() {
        if !keep.insert(name.clone()) {
            continue;
        }
        let Some(fields) = messages.get(&name) else {
            bail!("referenced message {name} not found in k8s-pb sources");
        };
        let def_name = owner.get(&name).cloned();
        let props = def_name.as_deref().and_then(|d| plain_props(&defs, d));
        let required: BTreeSet<&str> = def_name
            .as_deref()
            .and_then(|d| defs.get(d))
            .and_then(|d| d.get("required"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut entry = BTreeMap::new();
        for f in fields {
            let mut inline = false;
            let json_name = match props {
                Some(props) => {
                    let want = normalize(&f.rust_name);
                    match props.keys().find(|p| normalize(p) == want) {
                        Some(p) => p.clone(),
                        None if is_inline(f, props, &messages) => {
                            inline = true;
                            if verbose {
                                eprintln!(
                                    "proto-map: {name}: field {} (tag {}) inlined",
                                    f.rust_name, f.tag
                                );
                            }
                            lower_camel(&f.rust_name)
                        }
                        None => {
                            dropped += 1;
                            if verbose {
                                eprintln!(
                                    "proto-map: {name}: field {} (tag {}) not in v1.33, dropped",
                                    f.rust_name, f.tag
                                );
                            }
                            continue;
                        }
                    }
                }
                None => lower_camel(&f.rust_name),
            };
            let scalar = !matches!(f.kind.as_str(), "message" | "map") && !f.repeated;
            let is_pointer = def_name
                .as_deref()
                .and_then(|d| pointers.get(d))
                .is_some_and(|p| p.contains(&json_name.as_str()));
            if is_pointer {
                used_pointers.insert((def_name.clone().unwrap_or_default(), json_name.clone()));
            }
            // Only definitions we know the Go shape of get omitempty; fields
            // of wrapper messages (Time, Quantity, ...) are always kept.
            let omitempty =
                scalar && props.is_some() && !required.contains(json_name.as_str()) && !is_pointer;
            let mut v = Map::new();
            v.insert("json".into(), json!(json_name));
            v.insert("kind".into(), json!(f.kind));
            v.insert("repeated".into(), json!(f.repeated));
            v.insert("omitempty".into(), json!(omitempty));
            if inline {
                v.insert("inline".into(), json!(true));
            }
            if f.kind == "map" {
                v.insert("key".into(), json!("string"));
                v.insert("value".into(), json!(f.value.clone().unwrap_or_default()));
            }
            if let Some(m) = &f.msg {
                v.insert("msg".into(), json!(m));
                if !keep.contains(m) {
                    queue.push(m.clone());
                }
            }
            entry.insert(f.tag, Value::Object(v));
        }
        out.insert(name, entry);
    }
    for (def, fields) in POINTERS {
        for f in *fields {
            if !used_pointers.contains(&(def.to_string(), f.to_string())) {
                eprintln!("proto-map: warning: pointer field {def}.{f} matched no protobuf field");
            }
        }
    }
    let missing: Vec<&String> = defs
        .iter()
        .filter(|(k, v)| {
            !out.contains_key(*k) && is_plain_object_def(v.as_object()) && k.starts_with("io.k8s.")
        })
        .map(|(k, _)| k)
        .collect();
    eprintln!(
        "proto-map: {} messages kept, {} newer-than-v1.33 fields dropped, {} object definitions without a protobuf message",
        out.len(),
        dropped,
        missing.len()
    );
    if std::env::var_os("PROTO_MAP_VERBOSE").is_some() {
        for m in missing {
            eprintln!("proto-map:   no message: {m}");
        }
    }

    let mut text = String::from("{\n");
    let total = out.len();
    for (i, (name, fields)) in out.iter().enumerate() {
        text.push_str(&format!("  {}: {{", serde_json::to_string(name)?));
        let n = fields.len();
        for (j, (tag, v)) in fields.iter().enumerate() {
            text.push_str(&format!("\n    \"{tag}\": {}", serde_json::to_string(v)?));
            if j + 1 < n {
                text.push(',');
            }
        }
        if n > 0 {
            text.push_str("\n  ");
        }
        text.push('}');
        if i + 1 < total {
            text.push(',');
        }
        text.push('\n');
    }
    text.push_str("}\n");
    let out_path = root.join("api-schemas/protobuf.json");
    std::fs::write(&out_path, text).with_context(|| format!("writing {}", out_path.display()))?;
    eprintln!("proto-map: wrote {}", out_path.display());
    Ok(())
}

/// The properties of an object definition (None for wrappers such as Time
/// or Quantity, whose protobuf fields have no JSON counterpart).
fn plain_props<'a>(defs: &'a Map<String, Value>, name: &str) -> Option<&'a Map<String, Value>> {
    defs.get(name)?.get("properties")?.as_object()
}

/// Whether a message field not named in the definition's properties is a Go
/// embedded struct: its name is the embedded type's name (Go's rule), or
/// the embedded message's own fields are among the definition's properties
/// (Probe's `handler`, a ProbeHandler).
fn is_inline(
    f: &RawField,
    props: &Map<String, Value>,
    messages: &BTreeMap<String, Vec<RawField>>,
) -> bool {
    let want = normalize(&f.rust_name);
    if f.kind != "message" || f.repeated || props.keys().any(|p| normalize(p) == want) {
        return false;
    }
    let Some(m) = &f.msg else { return false };
    let type_name = m.rsplit('.').next().unwrap_or_default();
    if normalize(type_name) == want {
        return true;
    }
    messages.get(m).is_some_and(|inner| {
        inner.iter().any(|g| {
            props
                .keys()
                .any(|p| normalize(p) == normalize(&g.rust_name))
        })
    })
}

/// An object definition with properties (not a string/int wrapper such as
/// Time or Quantity, whose protobuf fields have no JSON counterpart).
fn is_plain_object_def(def: Option<&Map<String, Value>>) -> bool {
    def.is_some_and(|d| d.contains_key("properties"))
}

/// Locates k8s-pb 0.9 through `cargo metadata` (which also downloads it).
fn locate_k8s_pb(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--features",
            "schema-gen/k8s-pb",
        ])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    for p in meta["packages"]
        .as_array()
        .context("cargo metadata: no packages")?
    {
        if p["name"] == "k8s-pb" && p["version"].as_str().is_some_and(|v| v.starts_with("0.9.")) {
            let manifest = PathBuf::from(p["manifest_path"].as_str().context("no manifest_path")?);
            return Ok(manifest
                .parent()
                .context("manifest without parent")?
                .join("src"));
        }
    }
    bail!("k8s-pb 0.9 not found in cargo metadata (is it a dependency of schema-gen?)")
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            collect_files(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// Module path + struct name → OpenAPI definition name.
fn def_name(module: &[String], name: &str) -> String {
    let mut parts = vec!["io".to_string(), "k8s".to_string()];
    for (i, m) in module.iter().enumerate() {
        parts.push(if i == 0 {
            m.replace('_', "-")
        } else {
            m.clone()
        });
    }
    parts.push(name.to_string());
    parts.join(".")
}

fn normalize(s: &str) -> String {
    s.trim_start_matches("r#")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn lower_camel(s: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in s.trim_start_matches("r#").chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses the message structs of one prost-generated file: (Rust name,
/// best guess at the proto name, fields).
fn parse_file(text: &str, module: &[String]) -> Result<Vec<(String, String, Vec<RawField>)>> {
    let mut out = Vec::new();
    let mut current: Option<((String, String), String)> = None;
    // First word of the doc comment block before the current item.
    let mut doc_word: Option<String> = None;
    let mut in_doc = false;
    for line in text.lines() {
        let t = line.trim();
        if current.is_none() {
            if let Some(doc) = t.strip_prefix("///") {
                if !in_doc {
                    doc_word = doc.split_whitespace().next().map(str::to_string);
                }
                in_doc = true;
                continue;
            }
            in_doc = false;
        }
        if t.starts_with("//") || t.starts_with("#[doc") {
            continue;
        }
        if let Some((name, body)) = current.as_mut() {
            if line.starts_with('}') {
                let fields =
                    parse_body(body, module).with_context(|| format!("struct {}", name.0))?;
                let (rust, proto) = std::mem::take(name);
                out.push((rust, proto, fields));
                current = None;
            } else {
                body.push(' ');
                body.push_str(t);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let rust: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let tail = rest[rust.len()..].trim();
            // prost renames `HTTPIngressPath` to `HttpIngressPath`; the doc
            // comment usually starts with the proto name.
            let name = match doc_word.take() {
                Some(w) if w.eq_ignore_ascii_case(&rust) => w,
                _ => rust.clone(),
            };
            if tail == "{}" {
                out.push((rust, name, Vec::new()));
            } else if tail == "{" {
                current = Some(((rust, name), String::new()));
            }
        }
    }
    if let Some(((name, _), _)) = current {
        bail!("unterminated struct {name}");
    }
    Ok(out)
}

fn parse_body(body: &str, module: &[String]) -> Result<Vec<RawField>> {
    let mut fields = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("#[prost(") {
        let after = &rest[start + "#[prost(".len()..];
        let end = after.find(")]").context("unterminated #[prost(")?;
        let attr = &after[..end];
        let mut tail = &after[end + 2..];
        // Skip other attributes.
        loop {
            tail = tail.trim_start();
            if tail.starts_with("#[") && !tail.starts_with("#[prost(") {
                let e = tail.find(']').context("unterminated attribute")?;
                tail = &tail[e + 1..];
            } else {
                break;
            }
        }
        let decl = tail.strip_prefix("pub ").context("field without pub")?;
        let colon = decl.find(':').context("field without type")?;
        let rust_name = decl[..colon].trim().to_string();
        let ty_start = &decl[colon + 1..];
        let mut depth = 0i32;
        let mut ty_end = ty_start.len();
        for (i, c) in ty_start.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                ',' if depth == 0 => {
                    ty_end = i;
                    break;
                }
                _ => {}
            }
        }
        // rustfmt leaves a trailing comma inside multi-line generics.
        let ty: String = ty_start[..ty_end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .replace(",>", ">");
        fields.push(
            parse_field(attr, &rust_name, &ty, module)
                .with_context(|| format!("field {rust_name}"))?,
        );
        rest = &ty_start[ty_end..];
    }
    Ok(fields)
}

fn parse_field(attr: &str, rust_name: &str, ty: &str, module: &[String]) -> Result<RawField> {
    let mut kind = None;
    let mut repeated = false;
    let mut tag = None;
    let mut value = None;
    for item in split_top(attr) {
        let item = item.trim();
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
            None => (item, None),
        };
        match (k, v) {
            ("tag", Some(v)) => tag = Some(v.parse::<u32>().context("bad tag")?),
            ("btree_map" | "map" | "hash_map", Some(v)) => {
                let (key, val) = v.split_once(',').context("bad map attribute")?;
                if key.trim() != "string" {
                    bail!("map key kind {key} unsupported");
                }
                kind = Some("map".to_string());
                value = Some(val.trim().to_string());
            }
            ("bytes", _) => kind = Some("bytes".to_string()),
            ("optional" | "required" | "boxed" | "packed", _) => {}
            ("repeated", None) => repeated = true,
            (
                "string" | "bool" | "int32" | "int64" | "double" | "float" | "message" | "uint32"
                | "uint64" | "sint32" | "sint64" | "fixed32" | "fixed64" | "sfixed32" | "sfixed64",
                None,
            ) => kind = Some(k.to_string()),
            _ => bail!("unsupported prost attribute item `{item}`"),
        }
    }
    let kind = kind.context("no kind")?;
    if !matches!(
        kind.as_str(),
        "string" | "bool" | "int32" | "int64" | "double" | "float" | "bytes" | "message" | "map"
    ) {
        bail!("field kind {kind} not supported by the decoder");
    }
    if let Some(v) = &value {
        if !matches!(v.as_str(), "string" | "bytes" | "message") {
            bail!("map value kind {v} not supported by the decoder");
        }
    }
    let msg = if kind == "message" {
        Some(resolve(unwrap_type(ty), module)?)
    } else if value.as_deref() == Some("message") {
        let inner = ty
            .strip_prefix("::prost::alloc::collections::BTreeMap<")
            .or_else(|| ty.strip_prefix("::std::collections::HashMap<"))
            .and_then(|s| s.strip_suffix('>'))
            .context("map type")?;
        let (_, v) = split_generic_pair(inner).context("map type arguments")?;
        Some(resolve(unwrap_type(v), module)?)
    } else {
        None
    };
    Ok(RawField {
        rust_name: rust_name.to_string(),
        tag: tag.context("no tag")?,
        kind,
        repeated,
        value,
        msg,
    })
}

/// Splits on commas outside double quotes.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_str = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_str = !in_str,
            ',' if !in_str => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn split_generic_pair(s: &str) -> Option<(&str, &str)> {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth == 0 => return Some((&s[..i], s[i + 1..].trim_end_matches(','))),
            _ => {}
        }
    }
    None
}

fn unwrap_type(mut ty: &str) -> &str {
    const WRAPPERS: &[&str] = &[
        "::core::option::Option<",
        "::prost::alloc::vec::Vec<",
        "::prost::alloc::boxed::Box<",
        "Option<",
        "Vec<",
        "Box<",
    ];
    loop {
        let mut changed = false;
        for w in WRAPPERS {
            if let Some(inner) = ty.strip_prefix(w).and_then(|s| s.strip_suffix('>')) {
                ty = inner;
                changed = true;
            }
        }
        if !changed {
            return ty;
        }
    }
}

/// Resolves a Rust type path relative to `module` into a definition name.
fn resolve(path: &str, module: &[String]) -> Result<String> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let (name, prefix) = segs.split_last().context("empty type path")?;
    let mut m: Vec<String> = module.to_vec();
    let mut iter = prefix.iter().peekable();
    if iter.peek() == Some(&&"crate") {
        m.clear();
        iter.next();
    }
    for s in iter {
        if *s == "super" {
            m.pop().context("super beyond crate root")?;
        } else {
            m.push(s.to_string());
        }
    }
    if m.is_empty() {
        bail!("type {path} resolves to the crate root");
    }
    Ok(def_name(&m, name))
}
