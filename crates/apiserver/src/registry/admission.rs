//! Admission: plugins that run around every write. Each plugin has two
//! phases, as upstream's mutating and validating admission: `mutate` sees
//! the object before the strategy prepares and validates it (create) or
//! right after the request's change is applied (update of the main
//! resource), and may change it; `admit` runs after validation, before
//! storage, and only accepts or refuses. The chain: NamespaceLifecycle,
//! ServiceAccount, Priority (--disable-admission-plugins takes plugins out).

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
    /// The validating phase. Default: admit.
    async fn admit(
        &self,
        _op: Operation,
        _info: &ResourceInfo,
        _obj: &Value,
        _old: Option<&Value>,
        _ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        Ok(())
    }
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

    async fn lookup(&self, ns: &str) -> Result<Option<Arc<Value>>, ApiError> {
        let key = format!("{}{ns}", self.namespaces_key_root);
        if let Ok(Some(c)) = self.namespaces.get(&key, None).await {
            return Ok(Some(c.object));
        }
        let kv = self.storage.get(&key).await.map_err(ApiError::internal)?;
        Ok(kv.map(|kv| Arc::new(serde_json::from_slice(&kv.value).unwrap_or(Value::Null))))
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

/// The annotations that make a StorageClass the default (GA and beta).
pub const DEFAULT_CLASS_ANNOTATIONS: &[&str] = &[
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// Whether a claim already names a class (`spec.storageClassName` present,
/// even empty, or the beta `volume.beta.kubernetes.io/storage-class`).
pub fn claim_has_class(claim: &Value) -> bool {
    claim
        .pointer("/spec/storageClassName")
        .is_some_and(|v| !v.is_null())
        || claim
            .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
            .is_some()
}

/// The default StorageClass among `classes`: annotated is-default-class
/// "true"; with several, the newest (then the first by name), as upstream.
pub fn default_storage_class<'a>(classes: impl IntoIterator<Item = &'a Value>) -> Option<String> {
    classes
        .into_iter()
        .filter(|c| {
            DEFAULT_CLASS_ANNOTATIONS.iter().any(|a| {
                c.pointer(&format!("/metadata/annotations/{}", a.replace('/', "~1")))
                    .and_then(Value::as_str)
                    == Some("true")
            })
        })
        .map(|c| {
            let created = c
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            (created, apimachinery::meta::name(c).to_string())
        })
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1)))
        .map(|(_, name)| name)
}

/// DefaultStorageClass: a PersistentVolumeClaim created without a class
/// gets the default StorageClass (read from the storageclasses watch
/// cache); without a default class it is left as it is.
pub struct DefaultStorageClass {
    classes: Arc<WatchCache>,
    key_root: String,
}

impl DefaultStorageClass {
    pub fn new(storage: &EtcdStorage, classes: Arc<WatchCache>) -> Self {
        let key_root = format!("{}/storageclasses/", storage.prefix().trim_end_matches('/'));
        DefaultStorageClass { classes, key_root }
    }
}

#[async_trait::async_trait]
impl AdmissionPlugin for DefaultStorageClass {
    fn name(&self) -> &'static str {
        "DefaultStorageClass"
    }

    async fn mutate(
        &self,
        op: Operation,
        info: &ResourceInfo,
        obj: &mut Value,
        _old: Option<&Value>,
        _ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        if op != Operation::Create
            || !info.group.is_empty()
            || info.plural != "persistentvolumeclaims"
            || claim_has_class(obj)
        {
            return Ok(());
        }
        let (items, _) =
            self.classes.list(&self.key_root, None).await.map_err(|e| {
                ApiError::internal(format!("failed to get default storage class: {e}"))
            })?;
        if let Some(name) = default_storage_class(items.iter().map(|c| &*c.object)) {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("storageClassName".into(), Value::String(name));
            } else if let Some(o) = obj.as_object_mut() {
                o.insert("spec".into(), json!({"storageClassName": name}));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod default_storage_class_tests {
    use super::*;

    fn class(name: &str, created: &str, default: Option<&str>) -> Value {
        let mut c = json!({"metadata": {"name": name, "creationTimestamp": created}});
        if let Some(d) = default {
            c["metadata"]["annotations"] =
                json!({"storageclass.kubernetes.io/is-default-class": d});
        }
        c
    }

    #[test]
    fn picks_the_newest_default_class() {
        let a = class("a", "2025-01-01T00:00:00Z", Some("true"));
        let b = class("b", "2025-02-01T00:00:00Z", Some("true"));
        let c = class("c", "2025-03-01T00:00:00Z", Some("false"));
        let d = class("d", "2025-04-01T00:00:00Z", None);
        assert_eq!(default_storage_class([&a, &b, &c, &d]), Some("b".into()));
        assert_eq!(default_storage_class([&c, &d]), None);
        let beta = json!({"metadata": {"name": "e", "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "true"}}});
        assert_eq!(default_storage_class([&beta]), Some("e".into()));
    }

    /// The plugin on a real etcd and watch cache: a claim without a class
    /// gets the default one; one with a class (even "") keeps it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fills_the_default_class_from_the_cache() {
        if !storage::testing::etcd_available() {
            eprintln!("etcd not available; skipping");
            return;
        }
        let etcd = storage::testing::EtcdProcess::start();
        let storage = EtcdStorage::connect(&etcd.config()).await.unwrap();
        let prefix = format!("{}/storageclasses/", storage.prefix().trim_end_matches('/'));
        for c in [
            class("slow", "2025-01-01T00:00:00Z", None),
            class("standard", "2025-01-02T00:00:00Z", Some("true")),
        ] {
            let name = apimachinery::meta::name(&c).to_string();
            storage
                .put_unconditional(&format!("{prefix}{name}"), serde_json::to_vec(&c).unwrap())
                .await
                .unwrap();
        }
        let cache = WatchCache::start(storage.clone(), prefix, 16);
        let plugin = DefaultStorageClass::new(&storage, cache);
        let pvcs = resources::all()
            .into_iter()
            .map(|s| s.info().clone())
            .find(|i| i.group.is_empty() && i.plural == "persistentvolumeclaims")
            .unwrap();
        let ctx = RequestContext::new(super::super::context::UserInfo::anonymous());
        let mut claim = json!({"metadata": {"name": "c", "namespace": "default"}, "spec": {}});
        plugin
            .mutate(Operation::Create, &pvcs, &mut claim, None, &ctx)
            .await
            .unwrap();
        assert_eq!(claim["spec"]["storageClassName"], "standard");
        let mut empty = json!({"metadata": {"name": "c"}, "spec": {"storageClassName": ""}});
        plugin
            .mutate(Operation::Create, &pvcs, &mut empty, None, &ctx)
            .await
            .unwrap();
        assert_eq!(empty["spec"]["storageClassName"], "");
        let mut update = json!({"metadata": {"name": "c"}, "spec": {}});
        plugin
            .mutate(Operation::Update, &pvcs, &mut update, None, &ctx)
            .await
            .unwrap();
        assert!(update["spec"].get("storageClassName").is_none());
    }

    #[test]
    fn claims_with_a_class_keep_it() {
        assert!(!claim_has_class(&json!({"spec": {}})));
        assert!(!claim_has_class(
            &json!({"spec": {"storageClassName": null}})
        ));
        assert!(claim_has_class(&json!({"spec": {"storageClassName": ""}})));
        assert!(claim_has_class(
            &json!({"metadata": {"annotations": {"volume.beta.kubernetes.io/storage-class": "x"}}, "spec": {}})
        ));
    }
}
