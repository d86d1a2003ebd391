//! Pod volumes: sets them up on disk with upstream's layout
//! (`<root-dir>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>`), resolves
//! a container's volumeMounts into host paths for CRI, and tears a pod's
//! volumes down.
//!
//! Supported: emptyDir (disk, or tmpfs for medium Memory), hostPath (with
//! type checks), configMap, secret, downwardAPI, projected (configMap,
//! secret, downwardAPI, serviceAccountToken through the TokenRequest API,
//! see [`token`]),
//! persistentVolumeClaim and generic ephemeral volumes bound to hostPath or
//! local PersistentVolumes. API-backed contents are written with an atomic
//! writer, so calling [`VolumeManager::setup_pod`] on every pod sync is how
//! ConfigMap and Secret updates, and refreshed tokens, reach running
//! containers.

pub mod atomic_writer;
pub mod downward;
pub mod mount;
pub mod source;
pub mod token;

pub use atomic_writer::FileProjection;
pub use source::ObjectSource;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, HostPathVolumeSource, KeyToPath, Pod, Secret,
    ServiceAccountTokenProjection, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tracing::{debug, warn};

/// Default file mode of configMap/secret/downwardAPI/projected files.
const DEFAULT_MODE: i32 = 0o644;

const PLUGIN_EMPTY_DIR: &str = "kubernetes.io~empty-dir";
const PLUGIN_CONFIGMAP: &str = "kubernetes.io~configmap";
const PLUGIN_SECRET: &str = "kubernetes.io~secret";
const PLUGIN_DOWNWARD_API: &str = "kubernetes.io~downward-api";
const PLUGIN_PROJECTED: &str = "kubernetes.io~projected";

/// One bind mount for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub host_path: PathBuf,
    pub container_path: String,
    pub readonly: bool,
    pub selinux_relabel: bool,
    pub propagation: Propagation,
}

/// Mount propagation; `as i32` gives the CRI `MountPropagation` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Private = 0,
    HostToContainer = 1,
    Bidirectional = 2,
}

/// A volume that could not be set up, or a mount that cannot be made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VolumeError {
    /// Reported as a FailedMount event.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
    SetUp { volume: String, message: String },
    /// Building a container's mounts failed (CreateContainerConfigError).
    #[error("{0}")]
    Mount(String),
}

impl VolumeError {
    /// The event / container-state reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            VolumeError::SetUp { .. } => "FailedMount",
            VolumeError::Mount(_) => "CreateContainerConfigError",
        }
    }
}

/// Where a set-up volume lives and how it is mounted.
#[derive(Debug, Clone)]
struct Resolved {
    path: PathBuf,
    /// The plugin forces a read-only mount (API data volumes, readOnly claims).
    readonly: bool,
    /// The kubelet manages the directory (SELinux relabel allowed).
    managed: bool,
}

/// Sets up, resolves and tears down pod volumes.
pub struct VolumeManager {
    source: Arc<dyn ObjectSource>,
    root_dir: PathBuf,
    node_name: String,
    allocatable: RwLock<BTreeMap<String, ApiQuantity>>,
    /// Where each set-up volume lives, by pod uid (claims need it: their
    /// location comes from the API).
    resolved: Mutex<HashMap<String, HashMap<String, Resolved>>>,
    pod_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Cleared once a tmpfs mount for secret/projected volumes was refused.
    tmpfs_for_api_data: AtomicBool,
    /// Service-account tokens of projected volumes.
    tokens: token::TokenManager,
}

/// Go-style rendering of an I/O error: `mkdir /x: permission denied`.
fn go_io_err(op: &str, path: &Path, e: &io::Error) -> String {
    let mut msg = e.to_string();
    if let Some(i) = msg.find(" (os error") {
        msg.truncate(i);
    }
    let mut chars = msg.chars();
    let msg = match chars.next() {
        Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
        None => msg,
    };
    format!("{op} {}: {msg}", path.display())
}

fn valid_volume_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

impl VolumeManager {
    /// A manager reading API objects through `client`.
    pub fn new(client: kube::Client, root_dir: PathBuf, node_name: String) -> Self {
        Self::with_source(Arc::new(client), root_dir, node_name)
    }

    /// A manager reading API objects from `source`.
    pub fn with_source(
        source: Arc<dyn ObjectSource>,
        root_dir: PathBuf,
        node_name: String,
    ) -> Self {
        VolumeManager {
            source,
            root_dir,
            node_name,
            allocatable: RwLock::new(BTreeMap::new()),
            resolved: Mutex::new(HashMap::new()),
            pod_locks: Mutex::new(HashMap::new()),
            tmpfs_for_api_data: AtomicBool::new(true),
            tokens: token::TokenManager::default(),
        }
    }

    /// The node's allocatable resources, used for downwardAPI
    /// resourceFieldRef limits a container leaves unset.
    pub fn set_node_allocatable(&self, alloc: BTreeMap<String, ApiQuantity>) {
        if let Ok(mut a) = self.allocatable.write() {
            *a = alloc;
        }
    }

    /// The node name this manager serves.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// `<root-dir>/pods/<uid>`.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root_dir.join("pods").join(uid)
    }

    fn volumes_dir(&self, uid: &str) -> PathBuf {
        self.pod_dir(uid).join("volumes")
    }

    fn plugin_dir(&self, uid: &str, plugin: &str, name: &str) -> PathBuf {
        self.volumes_dir(uid).join(plugin).join(name)
    }

    /// `<root-dir>/pods/<uid>/containers/<name>`, created (for termination
    /// message files).
    pub fn container_dir(&self, uid: &str, container: &str) -> io::Result<PathBuf> {
        let dir = self.pod_dir(uid).join("containers").join(container);
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750))?;
        Ok(dir)
    }

    /// Pod uids with a directory under `<root-dir>/pods`.
    pub fn pods_on_disk(&self) -> Vec<String> {
        let Ok(rd) = fs::read_dir(self.root_dir.join("pods")) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn pod_lock(&self, uid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.pod_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(uid.to_string()).or_default().clone()
    }

    fn make_pod_dirs(&self, uid: &str) -> io::Result<()> {
        for dir in [
            self.pod_dir(uid),
            self.volumes_dir(uid),
            self.pod_dir(uid).join("plugins"),
        ] {
            if !dir.is_dir() {
                fs::create_dir_all(&dir)?;
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o750))?;
            }
        }
        Ok(())
    }

    /// Sets up every volume of the pod. Idempotent and cheap when nothing
    /// changed; API-backed volumes are refreshed. All volumes are attempted;
    /// the first failure is returned.
    pub async fn setup_pod(&self, pod: &Pod) -> Result<(), VolumeError> {
        let uid = pod
            .metadata
            .uid
            .clone()
            .filter(|u| valid_volume_name(u))
            .ok_or_else(|| VolumeError::Mount("pod has no uid".into()))?;
        let lock = self.pod_lock(&uid);
        let _guard = lock.lock().await;
        if let Err(e) = self.make_pod_dirs(&uid) {
            return Err(VolumeError::Mount(go_io_err(
                "mkdir",
                &self.pod_dir(&uid),
                &e,
            )));
        }
        let mut first_err = None;
        let mut resolved = HashMap::new();
        for vol in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            match self.setup_volume(pod, &uid, vol).await {
                Ok(r) => {
                    resolved.insert(vol.name.clone(), r);
                }
                Err(message) => {
                    warn!(pod = %pod_ref(pod), volume = %vol.name, "volume setup failed: {message}");
                    if first_err.is_none() {
                        first_err = Some(VolumeError::SetUp {
                            volume: vol.name.clone(),
                            message,
                        });
                    }
                }
            }
        }
        {
            let mut all = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
            let entry = all.entry(uid).or_default();
            for (k, v) in resolved {
                entry.insert(k, v);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn setup_volume(&self, pod: &Pod, uid: &str, vol: &Volume) -> Result<Resolved, String> {
        if !valid_volume_name(&vol.name) {
            return Err(format!("invalid volume name {:?}", vol.name));
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        if let Some(ed) = &vol.empty_dir {
            let dir = self.plugin_dir(uid, PLUGIN_EMPTY_DIR, &vol.name);
            let medium = ed.medium.as_deref().unwrap_or("");
            match medium {
                "" => self.ensure_dir(&dir, 0o777)?,
                "Memory" => {
                    self.ensure_dir(&dir, 0o777)?;
                    if !mount::is_mount_point(&dir) {
                        let size = ed
                            .size_limit
                            .as_ref()
                            .and_then(|q| apimachinery::quantity::Quantity::parse(&q.0).ok())
                            .map(|q| q.value())
                            .filter(|v| *v > 0)
                            .or_else(|| self.allocatable_value("memory"))
                            .map(|v| v.clamp(0, u64::MAX as i128) as u64);
                        mount::mount_tmpfs(&dir, size).map_err(|e| {
                            format!("mount of tmpfs on {} failed: {e}", dir.display())
                        })?;
                        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o777));
                    }
                }
                m => return Err(format!("unsupported emptyDir medium {m:?}")),
            }
            return Ok(Resolved {
                path: dir,
                readonly: false,
                managed: true,
            });
        }
        if let Some(hp) = &vol.host_path {
            check_host_path(hp)?;
            return Ok(Resolved {
                path: PathBuf::from(&hp.path),
                readonly: false,
                managed: false,
            });
        }
        if let Some(cm_src) = &vol.config_map {
            let dir = self.plugin_dir(uid, PLUGIN_CONFIGMAP, &vol.name);
            self.ensure_dir(&dir, 0o777)?;
            let optional = cm_src.optional.unwrap_or(false);
            let cm = self.get_config_map(ns, &cm_src.name, optional).await?;
            let default_mode = cm_src.default_mode.unwrap_or(DEFAULT_MODE);
            let payload =
                config_map_payload(cm_src.items.as_deref(), cm.as_ref(), default_mode, optional)?;
            write_payload(&dir, &payload)?;
            return Ok(Resolved {
                path: dir,
                readonly: true,
                managed: true,
            });
        }
        if let Some(s_src) = &vol.secret {
            let dir = self.plugin_dir(uid, PLUGIN_SECRET, &vol.name);
            self.ensure_memory_dir(&dir)?;
            let optional = s_src.optional.unwrap_or(false);
            let name = s_src.secret_name.as_deref().unwrap_or("");
            let secret = self.get_secret(ns, name, optional).await?;
            let default_mode = s_src.default_mode.unwrap_or(DEFAULT_MODE);
            let payload = secret_payload(
                s_src.items.as_deref(),
                secret.as_ref(),
                default_mode,
                optional,
            )?;
            write_payload(&dir, &payload)?;
            return Ok(Resolved {
                path: dir,
                readonly: true,
                managed: true,
            });
        }
        if let Some(da) = &vol.downward_api {
            let dir = self.plugin_dir(uid, PLUGIN_DOWNWARD_API, &vol.name);
            self.ensure_dir(&dir, 0o777)?;
            let default_mode = da.default_mode.unwrap_or(DEFAULT_MODE);
            let payload = self.downward_payload(pod, da.items.as_deref(), default_mode)?;
            write_payload(&dir, &payload)?;
            return Ok(Resolved {
                path: dir,
                readonly: true,
                managed: true,
            });
        }
        if let Some(pr) = &vol.projected {
            let dir = self.plugin_dir(uid, PLUGIN_PROJECTED, &vol.name);
            self.ensure_memory_dir(&dir)?;
            let default_mode = pr.default_mode.unwrap_or(DEFAULT_MODE);
            let mut payload = BTreeMap::new();
            let mut errors = Vec::new();
            for src in pr.sources.iter().flatten() {
                let part = if let Some(cm_src) = &src.config_map {
                    let optional = cm_src.optional.unwrap_or(false);
                    match self.get_config_map(ns, &cm_src.name, optional).await {
                        Ok(cm) => config_map_payload(
                            cm_src.items.as_deref(),
                            cm.as_ref(),
                            default_mode,
                            optional,
                        ),
                        Err(e) => Err(e),
                    }
                } else if let Some(s_src) = &src.secret {
                    let optional = s_src.optional.unwrap_or(false);
                    match self.get_secret(ns, &s_src.name, optional).await {
                        Ok(s) => secret_payload(
                            s_src.items.as_deref(),
                            s.as_ref(),
                            default_mode,
                            optional,
                        ),
                        Err(e) => Err(e),
                    }
                } else if let Some(d) = &src.downward_api {
                    self.downward_payload(pod, d.items.as_deref(), default_mode)
                } else if let Some(t) = &src.service_account_token {
                    self.service_account_token_payload(pod, t, default_mode)
                        .await
                } else {
                    debug!(pod = %pod_ref(pod), volume = %vol.name, "skipping unsupported projection");
                    Ok(BTreeMap::new())
                };
                match part {
                    Ok(p) => payload.extend(p),
                    Err(e) => errors.push(e),
                }
            }
            if !errors.is_empty() {
                return Err(aggregate(errors));
            }
            write_payload(&dir, &payload)?;
            return Ok(Resolved {
                path: dir,
                readonly: true,
                managed: true,
            });
        }
        if let Some(pvc) = &vol.persistent_volume_claim {
            let (path, managed) = self.claim_path(ns, &pvc.claim_name).await?;
            return Ok(Resolved {
                path,
                readonly: pvc.read_only.unwrap_or(false),
                managed,
            });
        }
        if vol.ephemeral.is_some() {
            let pod_name = pod.metadata.name.as_deref().unwrap_or("");
            let claim = format!("{pod_name}-{}", vol.name);
            let (path, managed) = self.claim_path(ns, &claim).await?;
            return Ok(Resolved {
                path,
                readonly: false,
                managed,
            });
        }
        Err("volume type not supported by this kubelet (supported: emptyDir, hostPath, configMap, secret, downwardAPI, projected, persistentVolumeClaim, ephemeral)".into())
    }

    /// A projected serviceAccountToken: a token for the pod's service
    /// account, bound to the pod, with the source's audience (else the API
    /// audiences) and expiration.
    async fn service_account_token_payload(
        &self,
        pod: &Pod,
        t: &ServiceAccountTokenProjection,
        default_mode: i32,
    ) -> Result<BTreeMap<String, FileProjection>, String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| {
                s.service_account_name
                    .as_deref()
                    .or(s.service_account.as_deref())
            })
            .filter(|s| !s.is_empty())
            .unwrap_or("default");
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: t
                    .audience
                    .iter()
                    .filter(|a| !a.is_empty())
                    .cloned()
                    .collect(),
                expiration_seconds: t.expiration_seconds,
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..Default::default()
        };
        let tr = self
            .tokens
            .get(self.source.as_ref(), ns, sa, &request)
            .await?;
        let token = tr.status.map(|s| s.token).unwrap_or_default();
        let mut payload = BTreeMap::new();
        payload.insert(
            t.path.clone(),
            FileProjection {
                data: token.into_bytes(),
                mode: default_mode as u32,
            },
        );
        Ok(payload)
    }

    fn allocatable_value(&self, name: &str) -> Option<i128> {
        let a = self.allocatable.read().ok()?;
        let q = a.get(name)?;
        apimachinery::quantity::Quantity::parse(&q.0)
            .ok()
            .map(|q| q.value())
    }

    fn ensure_dir(&self, dir: &Path, mode: u32) -> Result<(), String> {
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(dir).map_err(|e| go_io_err("mkdir", dir, &e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))
            .map_err(|e| go_io_err("chmod", dir, &e))
    }

    /// A directory on tmpfs when the kubelet may mount (secrets stay off
    /// disk, as upstream), a plain directory otherwise.
    fn ensure_memory_dir(&self, dir: &Path) -> Result<(), String> {
        self.ensure_dir(dir, 0o777)?;
        if self.tmpfs_for_api_data.load(Ordering::Relaxed) && !mount::is_mount_point(dir) {
            if let Err(e) = mount::mount_tmpfs(dir, None) {
                if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
                    warn!("cannot mount tmpfs for secret volumes ({e}); writing them to disk");
                    self.tmpfs_for_api_data.store(false, Ordering::Relaxed);
                } else {
                    return Err(format!("mount of tmpfs on {} failed: {e}", dir.display()));
                }
            } else {
                let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o777));
            }
        }
        Ok(())
    }

    async fn get_config_map(
        &self,
        ns: &str,
        name: &str,
        optional: bool,
    ) -> Result<Option<ConfigMap>, String> {
        match self.source.config_map(ns, name).await? {
            Some(cm) => Ok(Some(cm)),
            None if optional => Ok(None),
            None => Err(format!("configmap {name:?} not found")),
        }
    }

    async fn get_secret(
        &self,
        ns: &str,
        name: &str,
        optional: bool,
    ) -> Result<Option<Secret>, String> {
        match self.source.secret(ns, name).await? {
            Some(s) => Ok(Some(s)),
            None if optional => Ok(None),
            None => Err(format!("secret {name:?} not found")),
        }
    }

    /// Resolves a claim to the path of its bound hostPath/local volume.
    async fn claim_path(&self, ns: &str, claim: &str) -> Result<(PathBuf, bool), String> {
        let wrap = |e: String| format!("error processing PVC {ns}/{claim}: {e}");
        let pvc = self
            .source
            .pvc(ns, claim)
            .await
            .map_err(|e| wrap(format!("failed to fetch PVC from API server: {e}")))?
            .ok_or_else(|| {
                wrap(format!(
                    "failed to fetch PVC from API server: persistentvolumeclaims {claim:?} not found"
                ))
            })?;
        let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        let pv_name = pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        if !bound || pv_name.is_empty() {
            return Err(wrap("PVC is not bound".into()));
        }
        let pv = self
            .source
            .pv(&pv_name)
            .await
            .map_err(|e| wrap(format!("failed to fetch PV {pv_name:?} from API server: {e}")))?
            .ok_or_else(|| {
                wrap(format!(
                    "failed to fetch PV {pv_name:?} from API server: persistentvolumes {pv_name:?} not found"
                ))
            })?;
        let spec = pv.spec.unwrap_or_default();
        if let Some(claim_ref) = &spec.claim_ref {
            let uid_ok = match (&claim_ref.uid, &pvc.metadata.uid) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            if claim_ref.name.as_deref() != Some(claim) || !uid_ok {
                return Err(wrap(format!(
                    "PV {pv_name:?} is bound to a different claim"
                )));
            }
        }
        if let Some(hp) = &spec.host_path {
            check_host_path(hp)?;
            return Ok((PathBuf::from(&hp.path), false));
        }
        if let Some(local) = &spec.local {
            let p = PathBuf::from(&local.path);
            if fs::metadata(&p).is_err() {
                return Err(format!("path {:?} does not exist", local.path));
            }
            return Ok((p, true));
        }
        Err(format!(
            "persistent volume {pv_name:?} is neither hostPath nor local: not supported by this kubelet"
        ))
    }

    fn downward_payload(
        &self,
        pod: &Pod,
        items: Option<&[DownwardAPIVolumeFile]>,
        default_mode: i32,
    ) -> Result<BTreeMap<String, FileProjection>, String> {
        let alloc = self
            .allocatable
            .read()
            .map(|a| a.clone())
            .unwrap_or_default();
        let mut payload = BTreeMap::new();
        let mut errors = Vec::new();
        for item in items.unwrap_or_default() {
            let mode = item.mode.unwrap_or(default_mode) as u32;
            let value = if let Some(f) = &item.field_ref {
                downward::extract_field_path(pod, &f.field_path)
            } else if let Some(r) = &item.resource_field_ref {
                let name = r.container_name.as_deref().unwrap_or("");
                downward::find_container(pod, name)
                    .and_then(|c| downward::resource_value(r, c, &alloc))
            } else {
                Ok(String::new())
            };
            match value {
                Ok(v) => {
                    payload.insert(
                        item.path.clone(),
                        FileProjection {
                            data: v.into_bytes(),
                            mode,
                        },
                    );
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(aggregate(errors));
        }
        Ok(payload)
    }

    /// The container's volume mounts (no /etc/hosts or termination log).
    pub fn container_mounts(
        &self,
        pod: &Pod,
        container: &Container,
    ) -> Result<Vec<MountSpec>, VolumeError> {
        self.container_mounts_with_env(pod, container, &[])
    }

    /// As [`container_mounts`](Self::container_mounts), expanding
    /// `subPathExpr` against the container's environment.
    pub fn container_mounts_with_env(
        &self,
        pod: &Pod,
        container: &Container,
        env: &[(String, String)],
    ) -> Result<Vec<MountSpec>, VolumeError> {
        let uid = pod.metadata.uid.as_deref().unwrap_or("");
        let volumes: HashMap<&str, &Volume> = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .map(|v| (v.name.as_str(), v))
            .collect();
        let cached = {
            let all = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
            all.get(uid).cloned().unwrap_or_default()
        };
        let mut out = Vec::new();
        for m in container.volume_mounts.iter().flatten() {
            let missing = || {
                VolumeError::Mount(format!(
                    "cannot find volume {:?} to mount into container {:?}",
                    m.name, container.name
                ))
            };
            let vol = volumes.get(m.name.as_str()).ok_or_else(missing)?;
            let resolved = match self.static_resolve(uid, vol) {
                Some(r) => r,
                None => cached.get(&m.name).cloned().ok_or_else(missing)?,
            };
            let mut sub_path = m.sub_path.clone().unwrap_or_default();
            if let Some(expr) = m.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
                sub_path = expand_sub_path_expr(expr, env).map_err(VolumeError::Mount)?;
            }
            let mut host_path = resolved.path.clone();
            if !sub_path.is_empty() {
                host_path = resolve_sub_path(&resolved.path, &sub_path, &m.name, &container.name)?;
            }
            let propagation = match m.mount_propagation.as_deref() {
                None | Some("None") => Propagation::Private,
                Some("HostToContainer") => Propagation::HostToContainer,
                Some("Bidirectional") => Propagation::Bidirectional,
                Some(other) => {
                    return Err(VolumeError::Mount(format!(
                        "invalid MountPropagation mode: {other:?}"
                    )))
                }
            };
            let mut container_path = m.mount_path.clone();
            if !container_path.starts_with('/') {
                container_path.insert(0, '/');
            }
            out.push(MountSpec {
                host_path,
                container_path,
                readonly: m.read_only.unwrap_or(false) || resolved.readonly,
                selinux_relabel: resolved.managed,
                propagation,
            });
        }
        Ok(out)
    }

    /// The location of a volume that needs no API lookup.
    fn static_resolve(&self, uid: &str, vol: &Volume) -> Option<Resolved> {
        let at = |plugin: &str, readonly: bool| Resolved {
            path: self.plugin_dir(uid, plugin, &vol.name),
            readonly,
            managed: true,
        };
        if vol.empty_dir.is_some() {
            Some(at(PLUGIN_EMPTY_DIR, false))
        } else if let Some(hp) = &vol.host_path {
            Some(Resolved {
                path: PathBuf::from(&hp.path),
                readonly: false,
                managed: false,
            })
        } else if vol.config_map.is_some() {
            Some(at(PLUGIN_CONFIGMAP, true))
        } else if vol.secret.is_some() {
            Some(at(PLUGIN_SECRET, true))
        } else if vol.downward_api.is_some() {
            Some(at(PLUGIN_DOWNWARD_API, true))
        } else if vol.projected.is_some() {
            Some(at(PLUGIN_PROJECTED, true))
        } else {
            None
        }
    }

    /// Unmounts everything mounted under the pod directory and removes it.
    pub async fn teardown_pod(&self, pod_uid: &str) -> anyhow::Result<()> {
        if !valid_volume_name(pod_uid) {
            anyhow::bail!("invalid pod uid {pod_uid:?}");
        }
        let lock = self.pod_lock(pod_uid);
        {
            let _guard = lock.lock().await;
            let dir = self.pod_dir(pod_uid);
            if fs::symlink_metadata(&dir).is_ok() {
                for m in mount::mounts_under(&dir) {
                    component_base::mounts::unmount(&m)
                        .map_err(|e| anyhow::anyhow!("unmount {}: {e}", m.display()))?;
                }
                let left = mount::mounts_under(&dir);
                if !left.is_empty() {
                    anyhow::bail!(
                        "pod directory {} still has mounts: {:?}",
                        dir.display(),
                        left
                    );
                }
                fs::remove_dir_all(&dir)
                    .map_err(|e| anyhow::anyhow!("{}", go_io_err("remove", &dir, &e)))?;
            }
            self.resolved
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(pod_uid);
            self.tokens.forget_pod(pod_uid);
        }
        self.pod_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(pod_uid);
        Ok(())
    }

    /// Writes the pod's managed hosts file (`<pod dir>/etc-hosts`) and
    /// returns its path, to be mounted read-write at /etc/hosts. Pods on the
    /// host network get the node's /etc/hosts behind their own header.
    pub fn write_etc_hosts(
        &self,
        pod: &Pod,
        pod_ips: &[String],
        cluster_domain: &str,
    ) -> io::Result<PathBuf> {
        let uid = pod.metadata.uid.as_deref().unwrap_or("");
        if !valid_volume_name(uid) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "pod has no uid",
            ));
        }
        self.make_pod_dirs(uid)?;
        let path = self.pod_dir(uid).join("etc-hosts");
        let spec = pod.spec.clone().unwrap_or_default();
        let aliases = spec.host_aliases.clone().unwrap_or_default();
        let mut content = String::new();
        if spec.host_network.unwrap_or(false) {
            content.push_str("# Kubernetes-managed hosts file (host network).\n");
            content.push_str(&fs::read_to_string("/etc/hosts").unwrap_or_default());
        } else {
            let (hostname, domain) = pod_hostname_and_domain(pod, cluster_domain);
            content.push_str("# Kubernetes-managed hosts file.\n");
            content.push_str("127.0.0.1\tlocalhost\n");
            content.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
            content.push_str("fe00::0\tip6-localnet\n");
            content.push_str("fe00::0\tip6-mcastprefix\n");
            content.push_str("fe00::1\tip6-allnodes\n");
            content.push_str("fe00::2\tip6-allrouters\n");
            for ip in pod_ips {
                if domain.is_empty() {
                    content.push_str(&format!("{ip}\t{hostname}\n"));
                } else {
                    content.push_str(&format!("{ip}\t{hostname}.{domain}\t{hostname}\n"));
                }
            }
        }
        if !aliases.is_empty() {
            content.push_str("\n# Entries added by HostAliases.\n");
            for a in &aliases {
                let names = a.hostnames.clone().unwrap_or_default().join("\t");
                content.push_str(&format!("{}\t{names}\n", a.ip));
            }
        }
        if fs::read(&path).ok().as_deref() != Some(content.as_bytes()) {
            fs::write(&path, content)?;
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        Ok(path)
    }
}

/// The pod's hostname (spec.hostname or its name, at most 63 characters)
/// and domain (`<subdomain>.<ns>.svc.<cluster domain>` with a subdomain).
pub fn pod_hostname_and_domain(pod: &Pod, cluster_domain: &str) -> (String, String) {
    let spec = pod.spec.as_ref();
    let mut hostname = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    if hostname.len() > 63 {
        let mut cut = 63;
        while !hostname.is_char_boundary(cut) {
            cut -= 1;
        }
        hostname.truncate(cut);
        while hostname.ends_with('-') || hostname.ends_with('.') {
            hostname.pop();
        }
    }
    let domain = match spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())
    {
        Some(sub) => format!(
            "{sub}.{}.svc.{cluster_domain}",
            pod.metadata.namespace.as_deref().unwrap_or("default")
        ),
        None => String::new(),
    };
    (hostname, domain)
}

fn pod_ref(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// Upstream's error aggregate: one message alone, several in brackets.
fn aggregate(errors: Vec<String>) -> String {
    if errors.len() == 1 {
        errors.into_iter().next().unwrap_or_default()
    } else {
        format!("[{}]", errors.join(", "))
    }
}

fn write_payload(dir: &Path, payload: &BTreeMap<String, FileProjection>) -> Result<(), String> {
    atomic_writer::write(dir, payload)
        .map(|_| ())
        .map_err(|e| format!("error writing payload to {}: {e}", dir.display()))
}

fn config_map_payload(
    items: Option<&[KeyToPath]>,
    cm: Option<&ConfigMap>,
    default_mode: i32,
    optional: bool,
) -> Result<BTreeMap<String, FileProjection>, String> {
    let empty_s = BTreeMap::new();
    let empty_b = BTreeMap::new();
    let data = cm.and_then(|c| c.data.as_ref()).unwrap_or(&empty_s);
    let binary = cm.and_then(|c| c.binary_data.as_ref()).unwrap_or(&empty_b);
    let mut payload = BTreeMap::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                payload.insert(
                    k.clone(),
                    FileProjection {
                        data: v.clone().into_bytes(),
                        mode: default_mode as u32,
                    },
                );
            }
            for (k, v) in binary {
                payload.insert(
                    k.clone(),
                    FileProjection {
                        data: v.0.clone(),
                        mode: default_mode as u32,
                    },
                );
            }
        }
        Some(items) => {
            for ktp in items {
                let content = if let Some(v) = data.get(&ktp.key) {
                    v.clone().into_bytes()
                } else if let Some(v) = binary.get(&ktp.key) {
                    v.0.clone()
                } else if optional {
                    continue;
                } else {
                    return Err(format!(
                        "configmap references non-existent config key: {}",
                        ktp.key
                    ));
                };
                let mode = ktp.mode.unwrap_or(default_mode) as u32;
                payload.insert(
                    ktp.path.clone(),
                    FileProjection {
                        data: content,
                        mode,
                    },
                );
            }
        }
    }
    Ok(payload)
}

fn secret_payload(
    items: Option<&[KeyToPath]>,
    secret: Option<&Secret>,
    default_mode: i32,
    optional: bool,
) -> Result<BTreeMap<String, FileProjection>, String> {
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .and_then(|s| s.data.as_ref())
        .map(|d| d.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .unwrap_or_default();
    // stringData is write-only in the API, but honour it if a source has it.
    if let Some(sd) = secret.and_then(|s| s.string_data.as_ref()) {
        for (k, v) in sd {
            data.insert(k.clone(), v.clone().into_bytes());
        }
    }
    let mut payload = BTreeMap::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                payload.insert(
                    k,
                    FileProjection {
                        data: v,
                        mode: default_mode as u32,
                    },
                );
            }
        }
        Some(items) => {
            for ktp in items {
                let Some(content) = data.get(&ktp.key) else {
                    if optional {
                        continue;
                    }
                    return Err(format!("references non-existent secret key: {}", ktp.key));
                };
                let mode = ktp.mode.unwrap_or(default_mode) as u32;
                payload.insert(
                    ktp.path.clone(),
                    FileProjection {
                        data: content.clone(),
                        mode,
                    },
                );
            }
        }
    }
    Ok(payload)
}

/// Checks a hostPath against its declared type, creating it for the
/// `...OrCreate` types.
fn check_host_path(hp: &HostPathVolumeSource) -> Result<(), String> {
    let path = Path::new(&hp.path);
    let ty = hp.type_.as_deref().unwrap_or("");
    let md = fs::metadata(path).ok();
    let ft = md.as_ref().map(|m| m.file_type());
    let is_dir = ft.map(|t| t.is_dir()).unwrap_or(false);
    let fail = |what: &str| {
        Err(format!(
            "hostPath type check failed: {} is not a {what}",
            hp.path
        ))
    };
    match ty {
        "" => Ok(()),
        "DirectoryOrCreate" | "Directory" => {
            if ty == "DirectoryOrCreate" && md.is_none() && fs::symlink_metadata(path).is_err() {
                fs::create_dir_all(path).map_err(|e| go_io_err("mkdir", path, &e))?;
                let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o755));
                return Ok(());
            }
            if is_dir {
                Ok(())
            } else {
                fail("directory")
            }
        }
        "FileOrCreate" | "File" => {
            if ty == "FileOrCreate" && md.is_none() && fs::symlink_metadata(path).is_err() {
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| go_io_err("open", path, &e))?;
                let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o644));
                return Ok(());
            }
            if md.is_some() && !is_dir {
                Ok(())
            } else {
                fail("file")
            }
        }
        "Socket" => match ft {
            Some(t) if t.is_socket() => Ok(()),
            _ => fail("socket file"),
        },
        "CharDevice" => match ft {
            Some(t) if t.is_char_device() => Ok(()),
            _ => fail("character device"),
        },
        "BlockDevice" => match ft {
            Some(t) if t.is_block_device() => Ok(()),
            _ => fail("block device"),
        },
        other => Err(format!("{other} is an invalid volume type")),
    }
}

/// Expands `$(VAR)` in a subPathExpr; every referenced variable must have
/// a non-empty value.
fn expand_sub_path_expr(expr: &str, env: &[(String, String)]) -> Result<String, String> {
    let map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut missing = std::collections::BTreeSet::new();
    let out = crate::env::expand_with(expr, &mut |name: &str| match map.get(name) {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => {
            missing.insert(name.to_string());
            String::new()
        }
    });
    if !missing.is_empty() {
        return Err(format!(
            "missing value for {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(out)
}

/// Resolves `sub_path` inside `volume`, creating missing directories, and
/// refusing anything (`..`, absolute paths, symlinks) that leaves the volume.
fn resolve_sub_path(
    volume: &Path,
    sub_path: &str,
    mount_name: &str,
    container_name: &str,
) -> Result<PathBuf, VolumeError> {
    if Path::new(sub_path).is_absolute() {
        return Err(VolumeError::Mount(format!(
            "error SubPath `{sub_path}` must not be an absolute path"
        )));
    }
    if Path::new(sub_path)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return Err(VolumeError::Mount(format!(
            "unable to provision SubPath `{sub_path}`: must not contain '..'"
        )));
    }
    let prepare_err = || {
        VolumeError::Mount(format!(
            "failed to prepare subPath for volumeMount {mount_name:?} of container {container_name:?}"
        ))
    };
    let create_err = || {
        VolumeError::Mount(format!(
            "failed to create subPath directory for volumeMount {mount_name:?} of container {container_name:?}"
        ))
    };
    let base = fs::canonicalize(volume).map_err(|_| prepare_err())?;
    let target = volume.join(sub_path);
    if fs::symlink_metadata(&target).is_err() {
        let perm = fs::metadata(&base)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o755);
        let mut cur = base.clone();
        for c in Path::new(sub_path).components() {
            let Component::Normal(name) = c else { continue };
            let next = cur.join(name);
            if fs::symlink_metadata(&next).is_ok() {
                let canon = fs::canonicalize(&next).map_err(|_| create_err())?;
                if !canon.starts_with(&base) {
                    warn!(path = %next.display(), "subPath escapes its volume");
                    return Err(create_err());
                }
                cur = canon;
            } else {
                match fs::create_dir(&next) {
                    Ok(()) => {
                        let _ = fs::set_permissions(&next, fs::Permissions::from_mode(perm));
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(_) => return Err(create_err()),
                }
                cur = next;
            }
        }
    }
    let canon = fs::canonicalize(&target).map_err(|_| prepare_err())?;
    if !canon.starts_with(&base) {
        warn!(path = %target.display(), "subPath escapes its volume");
        return Err(prepare_err());
    }
    Ok(canon)
}

#[cfg(test)]
mod tests;
