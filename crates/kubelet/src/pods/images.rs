//! Making sure a container's image is present (upstream EnsureImageExists):
//! pull policy, pull secrets, per-image back-off and the upstream events and
//! waiting reasons (ErrImagePull, ImagePullBackOff, ErrImageNeverPull).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use base64::Engine as _;
use cri::runtime::v1 as crirt;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::Api;

use super::backoff::Backoff;
use super::events::{EventType, Recorder};
use super::spec;
use crate::runtime::Runtime;

/// Why an image is not available; `reason()` is the container waiting reason.
#[derive(Debug, Clone)]
pub enum ImageError {
    ErrImagePull(String),
    ImagePullBackOff(String),
    ErrImageNeverPull(String),
    InvalidImageName(String),
}

impl ImageError {
    pub fn reason(&self) -> &'static str {
        match self {
            ImageError::ErrImagePull(_) => "ErrImagePull",
            ImageError::ImagePullBackOff(_) => "ImagePullBackOff",
            ImageError::ErrImageNeverPull(_) => "ErrImageNeverPull",
            ImageError::InvalidImageName(_) => "InvalidImageName",
        }
    }
    pub fn message(&self) -> &str {
        match self {
            ImageError::ErrImagePull(m)
            | ImageError::ImagePullBackOff(m)
            | ImageError::ErrImageNeverPull(m)
            | ImageError::InvalidImageName(m) => m,
        }
    }
}

pub struct ImageManager {
    runtime: Runtime,
    client: kube::Client,
    recorder: Recorder,
    backoff: Mutex<Backoff>,
    last_error: Mutex<HashMap<String, String>>,
    serialize: Option<tokio::sync::Mutex<()>>,
}

/// The registry host of an image reference ("docker.io" for Docker Hub names).
pub fn registry_host(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".to_string(),
    }
}

fn normalize_registry_key(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        h => h.to_string(),
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    if let Some(suffix) = pattern.strip_prefix("*.") {
        host.ends_with(&format!(".{suffix}"))
    } else {
        pattern == host
    }
}

/// A plausible image reference: non-empty, no whitespace, lower-case repository.
pub fn valid_image_name(image: &str) -> bool {
    let image = image.trim();
    if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let name = image.split('@').next().unwrap_or(image);
    let (host, rest) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest)
        }
        _ => ("", name),
    };
    let _ = host;
    let repo = match rest.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => rest,
    };
    !repo.is_empty()
        && !repo.chars().any(|c| c.is_ascii_uppercase())
        && !repo.starts_with('/')
        && !repo.ends_with('/')
}

/// Credentials for `image` from dockerconfigjson / dockercfg secrets.
pub fn credentials_for(image: &str, secrets: &[Secret]) -> Vec<crirt::AuthConfig> {
    let host = registry_host(image);
    let mut out = Vec::new();
    for s in secrets {
        let data = s.data.clone().unwrap_or_default();
        let entries: Option<serde_json::Map<String, serde_json::Value>> =
            if let Some(b) = data.get(".dockerconfigjson") {
                serde_json::from_slice::<serde_json::Value>(&b.0)
                    .ok()
                    .and_then(|v| v.get("auths").and_then(|a| a.as_object().cloned()))
            } else if let Some(b) = data.get(".dockercfg") {
                serde_json::from_slice::<serde_json::Value>(&b.0)
                    .ok()
                    .and_then(|v| v.as_object().cloned())
            } else {
                None
            };
        for (key, v) in entries.unwrap_or_default() {
            if !host_matches(&normalize_registry_key(&key), &host) {
                continue;
            }
            let get = |k: &str| {
                v.get(k)
                    .and_then(|x| x.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let mut username = get("username");
            let mut password = get("password");
            let auth = get("auth");
            if username.is_empty() && !auth.is_empty() {
                if let Ok(dec) = base64::engine::general_purpose::STANDARD.decode(auth.as_bytes()) {
                    if let Some((u, p)) = String::from_utf8_lossy(&dec).split_once(':') {
                        username = u.to_string();
                        password = p.to_string();
                    }
                }
            }
            out.push(crirt::AuthConfig {
                username,
                password,
                auth,
                server_address: key.clone(),
                identity_token: get("identitytoken"),
                registry_token: get("registrytoken"),
            });
        }
    }
    out
}

impl ImageManager {
    pub fn new(
        runtime: Runtime,
        client: kube::Client,
        recorder: Recorder,
        serialize: bool,
    ) -> Self {
        ImageManager {
            runtime,
            client,
            recorder,
            backoff: Mutex::new(Backoff::default()),
            last_error: Mutex::new(HashMap::new()),
            serialize: serialize.then(|| tokio::sync::Mutex::new(())),
        }
    }

    async fn pull_secrets(&self, pod: &Pod) -> Vec<Secret> {
        let names: Vec<String> = pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return vec![];
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), spec::namespace(pod));
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for n in names {
            match api.get_opt(&n).await {
                Ok(Some(s)) => out.push(s),
                _ => missing.push(n),
            }
        }
        if !missing.is_empty() {
            self.recorder.pod_event(
                pod,
                EventType::Warning,
                "FailedToRetrieveImagePullSecret",
                format!(
                    "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                    missing.join(", ")
                ),
            );
        }
        out
    }

    /// Returns the image reference to create the container from.
    pub async fn ensure_image(
        &self,
        pod: &Pod,
        c: &Container,
        sandbox_config: &crirt::PodSandboxConfig,
    ) -> Result<String, ImageError> {
        let raw = c.image.clone().unwrap_or_default();
        let ev = |t: EventType, reason: &str, msg: String| {
            self.recorder.container_event(pod, &c.name, t, reason, msg)
        };
        if !valid_image_name(&raw) {
            let msg = format!("Failed to apply default image tag {raw:?}: couldn't parse image name {raw:?}: invalid reference format");
            ev(EventType::Warning, "InspectFailed", msg.clone());
            return Err(ImageError::InvalidImageName(msg));
        }
        let image = spec::default_image_tag(&raw);
        let present = match self.runtime.image_status(&image).await {
            Ok(img) => img,
            Err(e) => {
                let msg = format!("Failed to inspect image {raw:?}: {e}");
                ev(EventType::Warning, "InspectFailed", msg.clone());
                return Err(ImageError::ErrImagePull(msg));
            }
        };
        let policy = spec::pull_policy(c);
        let should_pull = match policy {
            "Never" => false,
            "IfNotPresent" => present.is_none(),
            _ => true,
        };
        if !should_pull {
            return match present {
                Some(img) => {
                    ev(
                        EventType::Normal,
                        "Pulled",
                        format!("Container image {raw:?} already present on machine"),
                    );
                    Ok(img.id)
                }
                None => {
                    let msg =
                        format!("Container image {raw:?} is not present with pull policy of Never");
                    ev(EventType::Warning, "ErrImageNeverPull", msg.clone());
                    Err(ImageError::ErrImageNeverPull(msg))
                }
            };
        }
        let key = format!("{}_{}", spec::uid(pod), image);
        let now = SystemTime::now();
        {
            let b = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
            if b.in_backoff_since_update(&key, now) {
                drop(b);
                ev(
                    EventType::Normal,
                    "BackOff",
                    format!("Back-off pulling image {raw:?}"),
                );
                let prev = self
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&key)
                    .cloned();
                let msg = match prev {
                    Some(p) => format!("Back-off pulling image {raw:?}: ErrImagePull: {p}"),
                    None => format!("Back-off pulling image {raw:?}"),
                };
                return Err(ImageError::ImagePullBackOff(msg));
            }
        }
        let _guard = match &self.serialize {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        ev(
            EventType::Normal,
            "Pulling",
            format!("Pulling image {raw:?}"),
        );
        let start = Instant::now();
        let secrets = self.pull_secrets(pod).await;
        let creds = credentials_for(&image, &secrets);
        let mut result = if creds.is_empty() {
            self.runtime
                .pull_image(&image, None, Some(sandbox_config.clone()))
                .await
        } else {
            let mut last = None;
            for cred in creds {
                match self
                    .runtime
                    .pull_image(&image, Some(cred), Some(sandbox_config.clone()))
                    .await
                {
                    Ok(r) => {
                        last = Some(Ok(r));
                        break;
                    }
                    Err(e) => last = Some(Err(e)),
                }
            }
            last.unwrap_or_else(|| {
                Err(crate::runtime::CriError::Timeout(
                    "PullImage",
                    std::time::Duration::ZERO,
                ))
            })
        };
        // Some runtimes return an empty reference; look the image up then.
        if let Ok(r) = &result {
            if r.is_empty() {
                result = match self.runtime.image_status(&image).await {
                    Ok(Some(img)) => Ok(img.id),
                    _ => Ok(image.clone()),
                };
            }
        }
        match result {
            Ok(image_ref) => {
                let took = start.elapsed();
                let size = match self.runtime.image_status(&image_ref).await {
                    Ok(Some(img)) => img.size,
                    _ => 0,
                };
                let secs = format!("{:.3}s", took.as_secs_f64());
                ev(
                    EventType::Normal,
                    "Pulled",
                    format!("Successfully pulled image {raw:?} in {secs} ({secs} including waiting). Image size: {size} bytes."),
                );
                self.backoff
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .reset(&key);
                self.last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                Ok(image_ref)
            }
            Err(e) => {
                let msg = e.to_string();
                ev(
                    EventType::Warning,
                    "Failed",
                    format!("Failed to pull image {raw:?}: {msg}"),
                );
                self.backoff
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .next(&key, SystemTime::now());
                let mut le = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
                if le.len() > 4096 {
                    le.clear();
                }
                le.insert(key, msg.clone());
                Err(ImageError::ErrImagePull(msg))
            }
        }
    }

    /// Forgets a pod's back-off state.
    pub fn forget_pod(&self, pod_uid: &str) {
        let prefix = format!("{pod_uid}_");
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| !k.starts_with(&prefix));
        self.backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .gc(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn image_names() {
        assert!(valid_image_name("busybox"));
        assert!(valid_image_name("localhost:5000/a/b:1@sha256:00"));
        assert!(!valid_image_name("BusyBox"));
        assert!(!valid_image_name("busy box"));
        assert!(!valid_image_name(""));
    }

    #[test]
    fn hosts() {
        assert_eq!(registry_host("busybox"), "docker.io");
        assert_eq!(registry_host("library/busybox:1"), "docker.io");
        assert_eq!(
            registry_host("registry.k8s.io/pause:3.10"),
            "registry.k8s.io"
        );
        assert_eq!(registry_host("localhost:5000/x"), "localhost:5000");
        assert_eq!(
            normalize_registry_key("https://index.docker.io/v1/"),
            "docker.io"
        );
    }

    #[test]
    fn docker_config_json() {
        let cfg = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": base64::engine::general_purpose::STANDARD.encode("u:p")},
            "quay.io": {"username": "q", "password": "w"}
        }});
        let s = Secret {
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(
                [(
                    ".dockerconfigjson".to_string(),
                    ByteString(serde_json::to_vec(&cfg).unwrap()),
                )]
                .into(),
            ),
            ..Default::default()
        };
        let c = credentials_for("busybox", std::slice::from_ref(&s));
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].username.as_str(), c[0].password.as_str()), ("u", "p"));
        let c = credentials_for("quay.io/x/y", std::slice::from_ref(&s));
        assert_eq!(c[0].username, "q");
        assert!(credentials_for("ghcr.io/x", &[s]).is_empty());
    }
}
