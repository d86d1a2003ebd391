//! The controllers and their registry.
//!
//! To add a controller: write `src/controllers/<name>.rs` with
//! `pub async fn run(ctx: ControllerContext) -> anyhow::Result<()>`, add its
//! `pub mod <name>;` line below and one [`ControllerDescriptor`] line in
//! [`all`] (canonical upstream name + aliases).

use crate::ControllerDescriptor;

pub mod garbagecollector;
pub mod namespace;
pub mod rootcacertpublisher;
pub mod serviceaccount;
// C3
pub mod clusterroleaggregation;
pub mod cronjob;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslicemirroring;
pub mod job;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod podutil;
pub mod pvbinder;
pub mod resourcequota;
pub mod ttl_after_finished;
pub mod volumeprotection;

// C2
pub mod daemonset;
pub mod deployment;
pub mod deployment_util;
pub mod history;
pub mod pod_control;
pub mod replicaset;
pub mod statefulset;
pub mod workload_utils;

pub const GARBAGE_COLLECTOR: &str = "garbage-collector-controller";

/// Upstream controller names (and aliases) this controller-manager does not
/// implement: --controllers accepts them (with a warning) so upstream
/// command lines (e.g. kubeadm's `--controllers=*,bootstrapsigner,tokencleaner`) work.
pub const NOT_IMPLEMENTED: &[&str] = &[
    "bootstrap-signer-controller",
    "bootstrapsigner",
    "token-cleaner-controller",
    "tokencleaner",
    "serviceaccount-token-controller",
    "serviceaccount-token",
    "horizontal-pod-autoscaler-controller",
    "horizontalpodautoscaling",
    "certificatesigningrequest-signing-controller",
    "csrsigning",
    "certificatesigningrequest-approving-controller",
    "csrapproving",
    "certificatesigningrequest-cleaner-controller",
    "csrcleaner",
    "ttl-controller",
    "ttl",
    "persistentvolume-attach-detach-controller",
    "attachdetach",
    "persistentvolume-expander-controller",
    "persistentvolume-expander",
    "ephemeral-volume-controller",
    "ephemeral-volume",
    "service-lb-controller",
    "service",
    "node-route-controller",
    "route",
    "cloud-node-lifecycle-controller",
    "cloud-node-lifecycle",
    "storageversion-garbage-collector-controller",
    "storage-version-gc",
    "resourceclaim-controller",
    "resource-claim-controller",
    "legacy-serviceaccount-token-cleaner-controller",
    "legacy-service-account-token-cleaner",
    "validatingadmissionpolicy-status-controller",
    "validatingadmissionpolicy-status",
    "service-cidr-controller",
    "kube-apiserver-serving-clustertrustbundle-publisher-controller",
    "selinux-warning-controller",
    "volumeattributesclass-protection-controller",
    "device-taint-eviction-controller",
    "storageversion-migrator-controller",
];

/// Every controller this controller-manager knows, with upstream names.
pub fn all() -> Vec<ControllerDescriptor> {
    vec![
        ControllerDescriptor::new("namespace-controller", &["namespace"], |c| {
            Box::pin(namespace::run(c))
        }),
        ControllerDescriptor::new(GARBAGE_COLLECTOR, &["garbagecollector"], |c| {
            Box::pin(garbagecollector::run(c))
        }),
        ControllerDescriptor::new("serviceaccount-controller", &["serviceaccount"], |c| {
            Box::pin(serviceaccount::run(c))
        }),
        ControllerDescriptor::new(
            "root-ca-certificate-publisher-controller",
            &["root-ca-cert-publisher"],
            |c| Box::pin(rootcacertpublisher::run(c)),
        ),
        // C3
        ControllerDescriptor::new("endpoints-controller", &["endpoint"], |c| {
            Box::pin(endpoints::run(c))
        }),
        ControllerDescriptor::new("endpointslice-controller", &["endpointslice"], |c| {
            Box::pin(endpointslice::run(c))
        }),
        ControllerDescriptor::new(
            "endpointslice-mirroring-controller",
            &["endpointslicemirroring"],
            |c| Box::pin(endpointslicemirroring::run(c)),
        ),
        ControllerDescriptor::new("job-controller", &["job"], |c| Box::pin(job::run(c))),
        ControllerDescriptor::new("node-lifecycle-controller", &["nodelifecycle"], |c| {
            Box::pin(nodelifecycle::run(c))
        }),
        ControllerDescriptor::new("taint-eviction-controller", &[], |c| {
            Box::pin(nodelifecycle::run_taint_eviction(c))
        }),
        ControllerDescriptor::new("node-ipam-controller", &["nodeipam"], |c| {
            Box::pin(nodeipam::run(c))
        }),
        ControllerDescriptor::new("pod-garbage-collector-controller", &["podgc"], |c| {
            Box::pin(podgc::run(c))
        }),
        ControllerDescriptor::new("cronjob-controller", &["cronjob"], |c| {
            Box::pin(cronjob::run(c))
        }),
        ControllerDescriptor::new(
            "ttl-after-finished-controller",
            &["ttl-after-finished"],
            |c| Box::pin(ttl_after_finished::run(c)),
        ),
        ControllerDescriptor::new("resourcequota-controller", &["resourcequota"], |c| {
            Box::pin(resourcequota::run(c))
        }),
        ControllerDescriptor::new("disruption-controller", &["disruption"], |c| {
            Box::pin(disruption::run(c))
        }),
        ControllerDescriptor::new(
            "persistentvolumeclaim-protection-controller",
            &["pvc-protection"],
            |c| Box::pin(volumeprotection::run_pvc(c)),
        ),
        ControllerDescriptor::new(
            "persistentvolume-protection-controller",
            &["pv-protection"],
            |c| Box::pin(volumeprotection::run_pv(c)),
        ),
        ControllerDescriptor::new(
            "clusterrole-aggregation-controller",
            &["clusterrole-aggregation"],
            |c| Box::pin(clusterroleaggregation::run(c)),
        ),
        ControllerDescriptor::new(
            "persistentvolume-binder-controller",
            &["persistentvolume-binder"],
            |c| Box::pin(pvbinder::run(c)),
        ),
        // C2
        ControllerDescriptor::new("replicaset-controller", &["replicaset"], |c| {
            Box::pin(replicaset::run(c))
        }),
        ControllerDescriptor::new("deployment-controller", &["deployment"], |c| {
            Box::pin(deployment::run(c))
        }),
        ControllerDescriptor::new("statefulset-controller", &["statefulset"], |c| {
            Box::pin(statefulset::run(c))
        }),
        ControllerDescriptor::new("daemonset-controller", &["daemonset"], |c| {
            Box::pin(daemonset::run(c))
        }),
        ControllerDescriptor::new(
            "replicationcontroller-controller",
            &["replicationcontroller"],
            |c| Box::pin(replicaset::run_replication_controller(c)),
        ),
    ]
}
