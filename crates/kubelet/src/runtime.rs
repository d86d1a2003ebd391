//! A thin wrapper over the CRI runtime and image clients: one helper per call
//! the kubelet makes, each bounded by a timeout, with errors rendered the way
//! upstream shows them (`rpc error: code = NotFound desc = ...`).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use cri::runtime::v1 as crirt;
use cri::runtime::v1::{
    image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient,
};
use tonic::transport::Channel;

/// Label keys the kubelet puts on sandboxes and containers (as upstream).
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// Set on sandboxes, as upstream does.
pub const CONTAINER_TYPE_LABEL: &str = "io.cri-containerd.kind";

/// Annotation keys on containers (as upstream).
pub const CONTAINER_HASH_ANNOTATION: &str = "io.kubernetes.container.hash";
pub const CONTAINER_RESTART_COUNT_ANNOTATION: &str = "io.kubernetes.container.restartCount";
pub const CONTAINER_TERMINATION_MESSAGE_PATH_ANNOTATION: &str =
    "io.kubernetes.container.terminationMessagePath";
pub const CONTAINER_TERMINATION_MESSAGE_POLICY_ANNOTATION: &str =
    "io.kubernetes.container.terminationMessagePolicy";
pub const CONTAINER_PORTS_ANNOTATION: &str = "io.kubernetes.container.ports";
pub const POD_TERMINATION_GRACE_PERIOD_ANNOTATION: &str =
    "io.kubernetes.pod.terminationGracePeriod";
pub const POD_DELETION_GRACE_PERIOD_ANNOTATION: &str = "io.kubernetes.pod.deletionGracePeriod";
/// Our own annotation: the host file backing the container's termination message.
pub const TERMINATION_MESSAGE_FILE_ANNOTATION: &str =
    "io.ferrokube.container.terminationMessageFile";
/// Our own annotation: set on a container killed by the kubelet with its reason.
pub const KILL_REASON_ANNOTATION: &str = "io.ferrokube.container.killReason";

/// Default deadline for ordinary CRI calls (upstream: 2 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Deadline for quick read calls.
const SHORT_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline for image pulls.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// Renders a gRPC status as Go's grpc library does in its error strings.
pub fn status_string(s: &tonic::Status) -> String {
    format!("rpc error: code = {:?} desc = {}", s.code(), s.message())
}

/// An error from a CRI call.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("{}", status_string(.0))]
    Status(tonic::Status),
    #[error("CRI call {0} timed out after {1:?}")]
    Timeout(&'static str, Duration),
}

impl CriError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, CriError::Status(s) if s.code() == tonic::Code::NotFound)
    }
    /// The runtime's own message, without the gRPC prefix.
    pub fn message(&self) -> String {
        match self {
            CriError::Status(s) => s.message().to_string(),
            other => other.to_string(),
        }
    }
}

/// Cloneable handle to the runtime and image services.
#[derive(Clone)]
pub struct Runtime {
    pub rt: RuntimeServiceClient<Channel>,
    pub img: ImageServiceClient<Channel>,
}

async fn call<T, F>(name: &'static str, timeout: Duration, fut: F) -> Result<T, CriError>
where
    F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(CriError::Status(s)),
        Err(_) => Err(CriError::Timeout(name, timeout)),
    }
}

fn labels(sel: &[(&str, &str)]) -> HashMap<String, String> {
    sel.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Runtime {
    /// A handle over a lazily connected channel (the runtime need not be up yet).
    pub fn connect_lazy(endpoint: &str) -> Result<Self> {
        let ch = cri::connect_lazy(endpoint)?;
        Ok(Self::from_channel(ch))
    }

    pub fn from_channel(ch: Channel) -> Self {
        // Large responses (ListContainers with many containers, images) exceed
        // tonic's default 4 MiB decode limit only in extreme cases; be generous.
        let rt = RuntimeServiceClient::new(ch.clone()).max_decoding_message_size(64 << 20);
        let img = ImageServiceClient::new(ch).max_decoding_message_size(64 << 20);
        Runtime { rt, img }
    }

    pub async fn version(&self) -> Result<crirt::VersionResponse, CriError> {
        let mut c = self.rt.clone();
        call(
            "Version",
            SHORT_TIMEOUT,
            c.version(crirt::VersionRequest {
                version: "v1".into(),
            }),
        )
        .await
    }

    pub async fn status(&self) -> Result<crirt::StatusResponse, CriError> {
        let mut c = self.rt.clone();
        call(
            "Status",
            SHORT_TIMEOUT,
            c.status(crirt::StatusRequest { verbose: false }),
        )
        .await
    }

    /// Hands the node's pod CIDR to the runtime (containerd renders its CNI
    /// config template from it).
    pub async fn update_runtime_config(&self, pod_cidr: &str) -> Result<(), CriError> {
        let mut c = self.rt.clone();
        call(
            "UpdateRuntimeConfig",
            SHORT_TIMEOUT,
            c.update_runtime_config(crirt::UpdateRuntimeConfigRequest {
                runtime_config: Some(crirt::RuntimeConfig {
                    network_config: Some(crirt::NetworkConfig {
                        pod_cidr: pod_cidr.to_string(),
                    }),
                }),
            }),
        )
        .await
        .map(|_| ())
    }

    pub async fn run_pod_sandbox(
        &self,
        config: crirt::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let mut c = self.rt.clone();
        let req = crirt::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        Ok(
            call("RunPodSandbox", DEFAULT_TIMEOUT * 2, c.run_pod_sandbox(req))
                .await?
                .pod_sandbox_id,
        )
    }

    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        let mut c = self.rt.clone();
        let req = crirt::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        call("StopPodSandbox", DEFAULT_TIMEOUT, c.stop_pod_sandbox(req))
            .await
            .map(|_| ())
    }

    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        let mut c = self.rt.clone();
        let req = crirt::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        match call(
            "RemovePodSandbox",
            DEFAULT_TIMEOUT,
            c.remove_pod_sandbox(req),
        )
        .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// The sandbox's status, `None` when it does not exist.
    pub async fn pod_sandbox_status(
        &self,
        id: &str,
    ) -> Result<Option<crirt::PodSandboxStatus>, CriError> {
        let mut c = self.rt.clone();
        let req = crirt::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        };
        match call("PodSandboxStatus", SHORT_TIMEOUT, c.pod_sandbox_status(req)).await {
            Ok(r) => Ok(r.status),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sandboxes matching all the given labels.
    pub async fn list_pod_sandboxes(
        &self,
        sel: &[(&str, &str)],
    ) -> Result<Vec<crirt::PodSandbox>, CriError> {
        let mut c = self.rt.clone();
        let filter = crirt::PodSandboxFilter {
            label_selector: labels(sel),
            ..Default::default()
        };
        let req = crirt::ListPodSandboxRequest {
            filter: Some(filter),
        };
        Ok(
            call("ListPodSandbox", SHORT_TIMEOUT, c.list_pod_sandbox(req))
                .await?
                .items,
        )
    }

    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: crirt::ContainerConfig,
        sandbox_config: crirt::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let mut c = self.rt.clone();
        let req = crirt::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        Ok(
            call("CreateContainer", DEFAULT_TIMEOUT, c.create_container(req))
                .await?
                .container_id,
        )
    }

    pub async fn start_container(&self, id: &str) -> Result<(), CriError> {
        let mut c = self.rt.clone();
        let req = crirt::StartContainerRequest {
            container_id: id.into(),
        };
        call("StartContainer", DEFAULT_TIMEOUT, c.start_container(req))
            .await
            .map(|_| ())
    }

    /// Stops a container: SIGTERM (or the image's stop signal), then SIGKILL
    /// after `grace_secs`.
    pub async fn stop_container(&self, id: &str, grace_secs: i64) -> Result<(), CriError> {
        let mut c = self.rt.clone();
        let grace_secs = grace_secs.max(0);
        let req = crirt::StopContainerRequest {
            container_id: id.into(),
            timeout: grace_secs,
        };
        let deadline = DEFAULT_TIMEOUT + Duration::from_secs(grace_secs as u64);
        match call("StopContainer", deadline, c.stop_container(req)).await {
            Err(e) if e.is_not_found() => Ok(()),
            r => r.map(|_| ()),
        }
    }

    pub async fn remove_container(&self, id: &str) -> Result<(), CriError> {
        let mut c = self.rt.clone();
        let req = crirt::RemoveContainerRequest {
            container_id: id.into(),
        };
        match call("RemoveContainer", DEFAULT_TIMEOUT, c.remove_container(req)).await {
            Err(e) if e.is_not_found() => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Containers matching all the given labels (and the sandbox, if given).
    pub async fn list_containers(
        &self,
        sel: &[(&str, &str)],
        sandbox_id: Option<&str>,
    ) -> Result<Vec<crirt::Container>, CriError> {
        let mut c = self.rt.clone();
        let filter = crirt::ContainerFilter {
            label_selector: labels(sel),
            pod_sandbox_id: sandbox_id.unwrap_or_default().into(),
            ..Default::default()
        };
        let req = crirt::ListContainersRequest {
            filter: Some(filter),
        };
        Ok(
            call("ListContainers", SHORT_TIMEOUT, c.list_containers(req))
                .await?
                .containers,
        )
    }

    /// The container's status, `None` when it does not exist.
    pub async fn container_status(
        &self,
        id: &str,
    ) -> Result<Option<crirt::ContainerStatus>, CriError> {
        let mut c = self.rt.clone();
        let req = crirt::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        match call("ContainerStatus", SHORT_TIMEOUT, c.container_status(req)).await {
            Ok(r) => Ok(r.status),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Runs a command in a container and waits for it (at most `timeout`,
    /// enforced by the runtime and, with a margin, by us).
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<crirt::ExecSyncResponse, CriError> {
        let mut c = self.rt.clone();
        let secs = timeout.as_secs_f64().ceil() as i64;
        let req = crirt::ExecSyncRequest {
            container_id: id.into(),
            cmd,
            timeout: secs,
        };
        let deadline = if secs > 0 {
            timeout + Duration::from_secs(5)
        } else {
            Duration::from_secs(24 * 3600)
        };
        call("ExecSync", deadline, c.exec_sync(req)).await
    }

    /// The image's record, `None` when it is not present.
    pub async fn image_status(&self, image: &str) -> Result<Option<crirt::Image>, CriError> {
        let mut c = self.img.clone();
        let req = crirt::ImageStatusRequest {
            image: Some(crirt::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            verbose: false,
        };
        match call("ImageStatus", SHORT_TIMEOUT, c.image_status(req)).await {
            Ok(r) => Ok(r.image),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Pulls an image; returns the image reference (id) the runtime stored.
    pub async fn pull_image(
        &self,
        image: &str,
        auth: Option<crirt::AuthConfig>,
        sandbox_config: Option<crirt::PodSandboxConfig>,
    ) -> Result<String, CriError> {
        let mut c = self.img.clone();
        let req = crirt::PullImageRequest {
            image: Some(crirt::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            auth,
            sandbox_config,
        };
        Ok(call("PullImage", PULL_TIMEOUT, c.pull_image(req))
            .await?
            .image_ref)
    }

    pub async fn list_images(&self) -> Result<Vec<crirt::Image>, CriError> {
        let mut c = self.img.clone();
        Ok(call(
            "ListImages",
            SHORT_TIMEOUT,
            c.list_images(crirt::ListImagesRequest { filter: None }),
        )
        .await?
        .images)
    }

    pub async fn remove_image(&self, image: &str) -> Result<(), CriError> {
        let mut c = self.img.clone();
        let req = crirt::RemoveImageRequest {
            image: Some(crirt::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
        };
        match call("RemoveImage", DEFAULT_TIMEOUT, c.remove_image(req)).await {
            Err(e) if e.is_not_found() => Ok(()),
            r => r.map(|_| ()),
        }
    }

    pub async fn image_fs_info(&self) -> Result<crirt::ImageFsInfoResponse, CriError> {
        let mut c = self.img.clone();
        call(
            "ImageFsInfo",
            SHORT_TIMEOUT,
            c.image_fs_info(crirt::ImageFsInfoRequest {}),
        )
        .await
    }
}

/// Runs probe and hook commands through CRI ExecSync.
#[derive(Clone)]
pub struct CriExecRunner {
    pub runtime: Runtime,
}

impl CriExecRunner {
    /// Exit code and combined stdout+stderr of `cmd` in the container.
    pub async fn run(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<(i32, Vec<u8>)> {
        let r = self.runtime.exec_sync(container_id, cmd, timeout).await?;
        let mut out = r.stdout;
        out.extend_from_slice(&r.stderr);
        Ok((r.exit_code, out))
    }
}

#[async_trait::async_trait]
impl crate::probes::ExecRunner for CriExecRunner {
    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<(i32, Vec<u8>)> {
        self.run(container_id, cmd, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_error_strings() {
        let s = tonic::Status::not_found("image \"x\" not found");
        assert_eq!(
            status_string(&s),
            "rpc error: code = NotFound desc = image \"x\" not found"
        );
        assert!(CriError::Status(s).is_not_found());
    }
}
