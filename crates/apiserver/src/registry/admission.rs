//! Admission: plugins that run around every write. Each plugin has two
//! phases, as upstream's mutating and validating admission: `mutate` sees
//! the object before the strategy prepares and validates it (create) or
//! right after the request's change is applied (update of the main
//! resource), and may change it; `admit` runs after validation, before
//! storage, and only accepts or refuses. The chain: NamespaceLifecycle,
//! Priority.

use std::sync::Arc;

use apimachinery::errors::{ApiError, GroupResource};
use resources::ResourceInfo;
use serde_json::{json, Value};
use storage::cache::WatchCache;
use storage::EtcdStorage;

use super::context::RequestContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// One admission plugin.
#[async_trait::async_trait]
pub trait AdmissionPlugin: Send + Sync {
    fn name(&self) -> &'static str;
    /// The mutating phase (create, and update of the main resource only:
    /// never for subresources). Default: no change.
    async fn mutate(
        &self,
        _op: Operation,
        _info: &ResourceInfo,
        _obj: &mut Value,
        _old: Option<&Value>,
        _ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        Ok(())
    }
    /// The validating phase.
    async fn admit(
        &self,
        op: Operation,
        info: &ResourceInfo,
        obj: &Value,
        old: Option<&Value>,
        ctx: &RequestContext,
    ) -> Result<(), ApiError>;
}

/// The ordered admission chain.
#[derive(Default)]
pub struct Admission {
    plugins: Vec<Arc<dyn AdmissionPlugin>>,
}

impl Admission {
    pub fn new(plugins: Vec<Arc<dyn AdmissionPlugin>>) -> Self {
        Admission { plugins }
    }
    pub async fn mutate(
        &self,
        op: Operation,
        info: &ResourceInfo,
        obj: &mut Value,
        old: Option<&Value>,
        ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        for p in &self.plugins {
            p.mutate(op, info, obj, old, ctx).await?;
        }
        Ok(())
    }
    pub async fn admit(
        &self,
        op: Operation,
        info: &ResourceInfo,
        obj: &Value,
        old: Option<&Value>,
        ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        for p in &self.plugins {
            p.admit(op, info, obj, old, ctx).await?;
        }
        Ok(())
    }
}

/// The namespaces that always exist and may not be deleted.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// NamespaceLifecycle: no new objects in a missing or terminating namespace;
/// the system namespaces cannot be deleted.
pub struct NamespaceLifecycle {
    storage: EtcdStorage,
    /// The namespaces watch cache: lookups are served from it, falling back
    /// to etcd only for a namespace the cache has not seen yet.
    namespaces: Arc<WatchCache>,
    namespaces_key_root: String,
}

impl NamespaceLifecycle {
    pub fn new(storage: EtcdStorage, namespaces: Arc<WatchCache>) -> Self {
        let namespaces_key_root = format!("{}/namespaces/", storage.prefix().trim_end_matches('/'));
        NamespaceLifecycle {
            storage,
            namespaces,
            namespaces_key_root,
        }
    }

    async fn lookup(&self, ns: &str) -> Result<Option<Value>, ApiError> {
        let key = format!("{}{ns}", self.namespaces_key_root);
        if let Ok(Some(c)) = self.namespaces.get(&key, None).await {
            return Ok(Some((*c.object).clone()));
        }
        let kv = self.storage.get(&key).await.map_err(ApiError::internal)?;
        Ok(kv.map(|kv| serde_json::from_slice(&kv.value).unwrap_or(Value::Null)))
    }
}

#[async_trait::async_trait]
impl AdmissionPlugin for NamespaceLifecycle {
    fn name(&self) -> &'static str {
        "NamespaceLifecycle"
    }

    async fn admit(
        &self,
        op: Operation,
        info: &ResourceInfo,
        obj: &Value,
        _old: Option<&Value>,
        _ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        if info.group.is_empty() && info.plural == "namespaces" {
            if op == Operation::Delete {
                let name = apimachinery::meta::name(obj);
                if SYSTEM_NAMESPACES.contains(&name) {
                    return Err(ApiError::forbidden(
                        &GroupResource::new("", "namespaces"),
                        name,
                        "this namespace may not be deleted",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Creates are checked in the mutating phase, as upstream (where this
    /// plugin is the first mutating one): a missing or terminating namespace
    /// is reported before other plugins' and validation's errors.
    async fn mutate(
        &self,
        op: Operation,
        info: &ResourceInfo,
        obj: &mut Value,
        _old: Option<&Value>,
        _ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        if op != Operation::Create
            || !info.namespaced
            || (info.group.is_empty() && info.plural == "namespaces")
        {
            return Ok(());
        }
        let ns = apimachinery::meta::namespace(obj);
        let Some(nsobj) = self.lookup(ns).await? else {
            return Err(ApiError::not_found(
                &GroupResource::new("", "namespaces"),
                ns,
            ));
        };
        let terminating = nsobj.pointer("/metadata/deletionTimestamp").is_some()
            || nsobj.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating");
        if terminating {
            let mut e = ApiError::forbidden(
                &info.group_resource(),
                apimachinery::meta::name(obj),
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            );
            if let Some(d) = e.details.as_mut() {
                d["causes"] = json!([{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]);
            }
            return Err(e);
        }
        Ok(())
    }
}
