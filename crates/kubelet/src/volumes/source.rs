//! Where volume and env setup read ConfigMaps, Secrets and claims from.
//!
//! The kubelet reads them straight from the API server; unit tests hand in
//! an in-memory source instead.

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolume, PersistentVolumeClaim, Secret, ServiceAccount,
};
use kube::api::{Api, PostParams};

/// Object lookups by name. `Ok(None)` means the object does not exist;
/// `Err` carries a message for any other failure.
#[async_trait]
pub trait ObjectSource: Send + Sync {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, String>;
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, String>;
    async fn pvc(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, String>;
    async fn pv(&self, name: &str) -> Result<Option<PersistentVolume>, String>;
    /// POST serviceaccounts/<name>/token: a token for the account as `request` asks.
    async fn service_account_token(
        &self,
        _namespace: &str,
        _name: &str,
        _request: &TokenRequest,
    ) -> Result<TokenRequest, String> {
        Err("service account tokens are not available from this source".into())
    }
}

fn api_error(kind: &str, namespace: &str, name: &str, err: kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message,
        other => format!("failed to get {kind} {namespace}/{name}: {other}"),
    }
}

#[async_trait]
impl ObjectSource for kube::Client {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, String> {
        Api::<ConfigMap>::namespaced(self.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| api_error("configmap", namespace, name, e))
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, String> {
        Api::<Secret>::namespaced(self.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| api_error("secret", namespace, name, e))
    }

    async fn pvc(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, String> {
        Api::<PersistentVolumeClaim>::namespaced(self.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| api_error("persistentvolumeclaim", namespace, name, e))
    }

    async fn pv(&self, name: &str) -> Result<Option<PersistentVolume>, String> {
        Api::<PersistentVolume>::all(self.clone())
            .get_opt(name)
            .await
            .map_err(|e| api_error("persistentvolume", "", name, e))
    }

    async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, String> {
        Api::<ServiceAccount>::namespaced(self.clone(), namespace)
            .create_token_request(name, &PostParams::default(), request)
            .await
            .map_err(|e| match e {
                kube::Error::Api(status) => status.message,
                other => {
                    format!("failed to create token for serviceaccount {namespace}/{name}: {other}")
                }
            })
    }
}

/// An in-memory source for tests.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct FakeSource {
    pub config_maps: std::collections::BTreeMap<(String, String), ConfigMap>,
    pub secrets: std::collections::BTreeMap<(String, String), Secret>,
    pub pvcs: std::collections::BTreeMap<(String, String), PersistentVolumeClaim>,
    pub pvs: std::collections::BTreeMap<String, PersistentVolume>,
    /// Token requests served, in order: (namespace, account, request).
    pub token_requests: Vec<(String, String, TokenRequest)>,
    /// When set, token requests fail with this message.
    pub token_error: Option<String>,
    /// When set, issued tokens expire this many seconds from now (whatever
    /// their requested lifetime).
    pub token_expires_in: Option<i64>,
}

#[cfg(test)]
impl FakeSource {
    pub fn add_config_map(&mut self, ns: &str, name: &str, data: &[(&str, &str)]) {
        let cm = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        };
        self.config_maps.insert((ns.into(), name.into()), cm);
    }

    pub fn add_secret(&mut self, ns: &str, name: &str, data: &[(&str, &[u8])]) {
        let s = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        self.secrets.insert((ns.into(), name.into()), s);
    }
}

#[cfg(test)]
#[async_trait]
impl ObjectSource for std::sync::Mutex<FakeSource> {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, String> {
        let s = self.lock().unwrap();
        Ok(s.config_maps.get(&(namespace.into(), name.into())).cloned())
    }
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, String> {
        let s = self.lock().unwrap();
        Ok(s.secrets.get(&(namespace.into(), name.into())).cloned())
    }
    async fn pvc(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, String> {
        let s = self.lock().unwrap();
        Ok(s.pvcs.get(&(namespace.into(), name.into())).cloned())
    }
    async fn pv(&self, name: &str) -> Result<Option<PersistentVolume>, String> {
        let s = self.lock().unwrap();
        Ok(s.pvs.get(name).cloned())
    }
    /// Issues `token-<n>` (n = requests so far), valid for the requested
    /// seconds (default 3600), or fails with `token_error`.
    async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, String> {
        let mut s = self.lock().unwrap();
        if let Some(e) = &s.token_error {
            return Err(e.clone());
        }
        s.token_requests
            .push((namespace.into(), name.into(), request.clone()));
        let mut out = request.clone();
        let ttl = request.spec.expiration_seconds.unwrap_or(3600);
        out.spec.expiration_seconds = Some(ttl);
        let lifetime = s.token_expires_in.unwrap_or(ttl);
        let exp = k8s_openapi::jiff::Timestamp::now()
            + k8s_openapi::jiff::SignedDuration::from_secs(lifetime);
        out.status = Some(k8s_openapi::api::authentication::v1::TokenRequestStatus {
            token: format!("token-{}", s.token_requests.len()),
            expiration_timestamp: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(exp),
        });
        Ok(out)
    }
}
