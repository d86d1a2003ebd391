//! The ServiceAccount admission plugin (upstream's `ServiceAccount`), for
//! pod creates (not subresources, not updates):
//!
//! - mirror pods (annotation `kubernetes.io/config.mirror`) are left
//!   unchanged, and refused (403) when they name a service account,
//!   reference secrets or project a service-account token;
//! - a pod without `spec.serviceAccountName` gets `default`;
//! - the service account must exist (403 `error looking up service account
//!   <ns>/<name>: ...`); `default` is looked up a few times, as upstream,
//!   since the serviceaccount controller creates it right after the
//!   namespace;
//! - unless `automountServiceAccountToken` is false (the pod's setting
//!   wins over the service account's), the projected volume
//!   `kube-api-access-<5 random>` (a 3607 s service-account token at
//!   `token`, `ca.crt` from the `kube-root-ca.crt` ConfigMap and the
//!   namespace from the downward API, defaultMode 420) is added and mounted
//!   read-only at /var/run/secrets/kubernetes.io/serviceaccount in every
//!   init container and container that has no mount at that path;
//! - a pod without imagePullSecrets gets the service account's.
//!
//! Service accounts are read from their watch cache, falling back to etcd.

use std::sync::Arc;

use apimachinery::errors::{ApiError, GroupResource};
use resources::ResourceInfo;
use serde_json::{json, Value};
use storage::cache::WatchCache;
use storage::EtcdStorage;

use super::admission::{AdmissionPlugin, Operation};
use super::context::RequestContext;

pub const DEFAULT_SERVICE_ACCOUNT_NAME: &str = "default";
pub const SERVICE_ACCOUNT_VOLUME_NAME: &str = "kube-api-access";
pub const DEFAULT_API_TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

pub struct ServiceAccountAdmission {
    storage: EtcdStorage,
    accounts: Arc<WatchCache>,
    key_root: String,
}

/// The projected volume the plugin injects.
pub fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": crate::serviceaccount::WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

fn should_automount(sa: &Value, pod: &Value) -> bool {
    if let Some(b) = pod
        .pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
    {
        return b;
    }
    sa.get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

/// Add the token volume and its mounts (upstream's mountServiceAccountToken).
pub fn mount_service_account_token(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let prefix = format!("{SERVICE_ACCOUNT_VOLUME_NAME}-");
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .filter_map(|v| v.get("name").and_then(Value::as_str))
                .find(|n| n.starts_with(&prefix))
                .map(str::to_string)
        });
    let has_volume = existing.is_some();
    let volume_name = existing
        .unwrap_or_else(|| format!("{prefix}{}", apimachinery::meta::generate_name_suffix()));
    let mount =
        json!({"name": volume_name, "readOnly": true, "mountPath": DEFAULT_API_TOKEN_MOUNT_PATH});
    let mut needs_volume = false;
    for field in ["initContainers", "containers"] {
        let Some(cs) = spec.get_mut(field).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in cs.iter_mut() {
            let Some(c) = c.as_object_mut() else { continue };
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            if !mounts.is_array() {
                *mounts = json!([]);
            }
            let Some(ms) = mounts.as_array_mut() else {
                continue;
            };
            if ms.iter().any(|m| {
                m.get("mountPath").and_then(Value::as_str) == Some(DEFAULT_API_TOKEN_MOUNT_PATH)
            }) {
                continue;
            }
            ms.push(mount.clone());
            needs_volume = true;
        }
    }
    if !has_volume && needs_volume {
        let vols = spec.entry("volumes").or_insert_with(|| json!([]));
        if !vols.is_array() {
            *vols = json!([]);
        }
        if let Some(vs) = vols.as_array_mut() {
            vs.push(token_volume(&volume_name));
        }
    }
}

fn pod_references_secrets(spec: &Value) -> bool {
    let arr = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if !arr(spec, "imagePullSecrets").is_empty() {
        return true;
    }
    for v in arr(spec, "volumes") {
        if v.get("secret").is_some() {
            return true;
        }
        for src in arr(v.get("projected").unwrap_or(&Value::Null), "sources") {
            if src.get("secret").is_some() {
                return true;
            }
        }
        for (_, plugin) in v.as_object().into_iter().flatten() {
            if plugin.get("secretRef").is_some_and(|r| !r.is_null()) {
                return true;
            }
        }
    }
    for field in ["initContainers", "containers", "ephemeralContainers"] {
        for c in arr(spec, field) {
            for e in arr(&c, "envFrom") {
                if e.get("secretRef").is_some() {
                    return true;
                }
            }
            for e in arr(&c, "env") {
                if e.pointer("/valueFrom/secretKeyRef").is_some() {
                    return true;
                }
            }
        }
    }
    false
}

impl ServiceAccountAdmission {
    pub fn new(storage: EtcdStorage, accounts: Arc<WatchCache>) -> Self {
        let key_root = format!(
            "{}/serviceaccounts/",
            storage.prefix().trim_end_matches('/')
        );
        ServiceAccountAdmission {
            storage,
            accounts,
            key_root,
        }
    }

    async fn lookup_once(&self, key: &str) -> Result<Option<Arc<Value>>, ApiError> {
        if let Ok(Some(c)) = self.accounts.get(key, None).await {
            return Ok(Some(c.object));
        }
        let kv = self.storage.get(key).await.map_err(ApiError::internal)?;
        Ok(kv.and_then(|kv| serde_json::from_slice(&kv.value).ok().map(Arc::new)))
    }

    /// The service account, retrying `default` (created by the controller
    /// right after its namespace) up to 10 times.
    async fn get_service_account(&self, ns: &str, name: &str) -> Result<Arc<Value>, String> {
        let key = format!("{}{ns}/{name}", self.key_root);
        let attempts = if name == DEFAULT_SERVICE_ACCOUNT_NAME {
            10
        } else {
            1
        };
        for i in 0..attempts {
            if i > 0 {
                let jitter = (uuid::Uuid::new_v4().as_u128() % 100) as u64;
                tokio::time::sleep(std::time::Duration::from_millis(100 + jitter)).await;
            }
            match self.lookup_once(&key).await {
                Ok(Some(sa)) => return Ok(sa),
                Ok(None) => {}
                Err(e) => return Err(e.message),
            }
        }
        Err(format!("serviceaccount {name:?} not found"))
    }
}

#[async_trait::async_trait]
impl AdmissionPlugin for ServiceAccountAdmission {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }

    async fn mutate(
        &self,
        op: Operation,
        info: &ResourceInfo,
        obj: &mut Value,
        _old: Option<&Value>,
        _ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        if op != Operation::Create || !info.group.is_empty() || info.plural != "pods" {
            return Ok(());
        }
        let gr = GroupResource::new("", "pods");
        let name = apimachinery::meta::name(obj).to_string();
        let forbidden = |detail: &str| ApiError::forbidden(&gr, &name, detail);
        let mirror = obj
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION));
        if mirror {
            // Checked here, before the pod strategy defaults the name.
            let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
            if spec
                .get("serviceAccountName")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
            {
                return Err(forbidden("a mirror pod may not reference service accounts"));
            }
            if pod_references_secrets(&spec) {
                return Err(forbidden("a mirror pod may not reference secrets"));
            }
            let projects_token = spec
                .get("volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.pointer("/projected/sources").and_then(Value::as_array))
                .flatten()
                .any(|s| s.get("serviceAccountToken").is_some());
            if projects_token {
                return Err(forbidden(
                    "a mirror pod may not use ServiceAccountToken volume projections",
                ));
            }
            return Ok(());
        }
        let ns = apimachinery::meta::namespace(obj).to_string();
        if !obj.get("spec").is_some_and(Value::is_object) {
            return Ok(());
        }
        // v1's deprecated `serviceAccount` stands in for an empty
        // serviceAccountName (upstream converts it on decoding).
        let field = |k: &str| {
            obj.pointer(&format!("/spec/{k}"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let sa_name = field("serviceAccountName")
            .or_else(|| field("serviceAccount"))
            .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT_NAME.to_string());
        obj["spec"]["serviceAccountName"] = json!(sa_name);
        let sa = self.get_service_account(&ns, &sa_name).await.map_err(|e| {
            forbidden(&format!(
                "error looking up service account {ns}/{sa_name}: {e}"
            ))
        })?;
        if should_automount(&sa, obj) {
            mount_service_account_token(obj);
        }
        let has_pull_secrets = obj
            .pointer("/spec/imagePullSecrets")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if !has_pull_secrets {
            if let Some(ps) = sa.get("imagePullSecrets").and_then(Value::as_array) {
                if !ps.is_empty() {
                    let names: Vec<Value> = ps
                        .iter()
                        .map(|p| json!({"name": p.get("name").cloned().unwrap_or(json!(""))}))
                        .collect();
                    obj["spec"]["imagePullSecrets"] = Value::Array(names);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_in_every_container_once() {
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "i"}],
            "containers": [
                {"name": "a"},
                {"name": "b", "volumeMounts": [{"name": "x", "mountPath": DEFAULT_API_TOKEN_MOUNT_PATH}]},
            ],
        }});
        mount_service_account_token(&mut pod);
        let vols = pod["spec"]["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 1);
        let vname = vols[0]["name"].as_str().unwrap().to_string();
        assert!(
            vname.starts_with("kube-api-access-") && vname.len() == 21,
            "{vname}"
        );
        assert_eq!(vols[0]["projected"]["defaultMode"], 420);
        assert_eq!(
            pod["spec"]["initContainers"][0]["volumeMounts"][0],
            json!({"name": vname, "readOnly": true, "mountPath": DEFAULT_API_TOKEN_MOUNT_PATH})
        );
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"][0]["name"],
            json!(vname)
        );
        assert_eq!(
            pod["spec"]["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        // Idempotent on an existing kube-api-access volume.
        mount_service_account_token(&mut pod);
        assert_eq!(pod["spec"]["volumes"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn pod_setting_wins_over_service_account() {
        let sa_off = json!({"automountServiceAccountToken": false});
        let pod_on = json!({"spec": {"automountServiceAccountToken": true}});
        assert!(should_automount(&sa_off, &pod_on));
        assert!(!should_automount(&sa_off, &json!({"spec": {}})));
        assert!(should_automount(&json!({}), &json!({"spec": {}})));
    }
}
