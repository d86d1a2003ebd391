//! Creating and deleting a controller's pods (upstream pkg/controller
//! RealPodControl and slowStartBatch), shared by the replicaset,
//! replicationcontroller and daemonset controllers: the pod made from the
//! controller's template, creations in slow-start batches and deletions, each
//! raising the controller's [`Expectations`] and recording upstream's
//! SuccessfulCreate / FailedCreate / SuccessfulDelete / FailedDelete events.

use client_base::events::{EventType, Recorder};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::Api;

use super::podutil::{err_message, is_not_found};
use super::workload_utils::{self as wu, Expectations};

/// A new pod of the `api_version`/`kind` controller `owner` from its
/// `template` (upstream GetPodFromTemplate): controlled by the owner, in its
/// namespace, named `<owner>-<random>` by the apiserver.
pub fn pod_for_owner(
    template: &PodTemplateSpec,
    owner: &ObjectMeta,
    api_version: &str,
    kind: &str,
) -> Pod {
    let owner_ref = wu::new_controller_ref(owner, api_version, kind);
    let mut pod = wu::pod_from_template(template, Some(owner_ref));
    pod.metadata.generate_name = Some(wu::pod_generate_name(
        owner.name.as_deref().unwrap_or_default(),
    ));
    pod.metadata.namespace = owner.namespace.clone();
    pod
}

/// Pod creation and deletion on behalf of one controller object.
pub struct PodControl<'a> {
    /// The pods of the controller's namespace.
    pub api: &'a Api<Pod>,
    pub recorder: &'a Recorder,
    /// The controller object the events are about.
    pub oref: &'a ObjectReference,
    pub expectations: &'a Expectations,
    /// The controller's queue key (what its expectations are kept under).
    pub key: &'a str,
}

impl PodControl<'_> {
    /// Creates `pods` in slow-start batches (1, 2, 4, ...), each created pod
    /// expected and recorded (SuccessfulCreate), each failure recorded
    /// (FailedCreate). A batch with a failure ends the creations: the last
    /// error is returned.
    pub async fn create_pods(&self, pods: Vec<Pod>) -> Option<kube::Error> {
        let mut remaining = pods.as_slice();
        for batch in wu::slow_start_batches(pods.len(), 1) {
            let (now, rest) = remaining.split_at(batch);
            remaining = rest;
            let creates = now
                .iter()
                .map(|pod| async move { self.api.create(&PostParams::default(), pod).await });
            let mut err = None;
            for r in futures::future::join_all(creates).await {
                match r {
                    Ok(p) => {
                        let pn = p.metadata.name.clone().unwrap_or_default();
                        self.expectations.expect_create(self.key, &pn);
                        self.recorder.event(
                            self.oref,
                            EventType::Normal,
                            "SuccessfulCreate",
                            format!("Created pod: {pn}"),
                        );
                    }
                    Err(e) => {
                        self.recorder.event(
                            self.oref,
                            EventType::Warning,
                            "FailedCreate",
                            format!("Error creating: {}", err_message(&e)),
                        );
                        err = Some(e);
                    }
                }
            }
            if err.is_some() {
                return err;
            }
        }
        None
    }

    /// Deletes the pods named `names` at once, each deletion expected first;
    /// recorded as SuccessfulDelete or FailedDelete (a pod already gone is
    /// neither). Returns the last error.
    pub async fn delete_pods(&self, names: &[String]) -> Option<kube::Error> {
        let deletes = names.iter().map(|pn| {
            self.expectations.expect_delete(self.key, pn);
            async move { (pn, self.api.delete(pn, &DeleteParams::default()).await) }
        });
        let mut err = None;
        for (pn, r) in futures::future::join_all(deletes).await {
            match r {
                Ok(_) => self.recorder.event(
                    self.oref,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {pn}"),
                ),
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    self.recorder.event(
                        self.oref,
                        EventType::Warning,
                        "FailedDelete",
                        format!("Error deleting: {}", err_message(&e)),
                    );
                    err = Some(e);
                }
            }
        }
        err
    }
}
