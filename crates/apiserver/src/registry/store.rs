//! The generic registry: one implementation of get/list/watch/create/update/
//! patch/delete/deletecollection for every resource, configured only by the
//! resource's [`Strategy`]. Pipelines (see docs/architecture.md):
//!
//! create: system meta → mutating admission → strategy.prepare_for_create →
//!         default → allocate → validate → admission → storage txn (key
//!         absent, claims absent)
//! update: read → transform (PUT body / patch) → keep system meta → status
//!         split → prepare_for_update → mutating admission (main resource
//!         only) → default → generation → allocate → validate_update →
//!         admission → no-op check → CAS on mod revision
//! delete: preconditions → graceful period / finalizers → CAS delete

use std::sync::Arc;

use apimachinery::errors::{ApiError, GroupResource};
use apimachinery::fields::FieldSelector;
use apimachinery::labels::Selector;
use apimachinery::{meta, validation, FieldError};
use resources::{ResourceInfo, Strategy};
use serde_json::{json, Value};
use storage::cache::{CachedObject, WatchCache, WatchItem};
use storage::{EtcdStorage, Revision, StorageError};

use super::admission::{Admission, Operation};
use super::context::RequestContext;
use super::managed_fields;

/// Chooses and releases values a resource must hold uniquely across the
/// cluster (Service ClusterIPs and NodePorts). Claims are etcd keys written
/// in the same transaction as the object, so nothing is ever double-allocated,
/// even across apiserver restarts.
#[async_trait::async_trait]
pub trait Allocator: Send + Sync {
    /// Fill in values the object needs (`old` on update).
    async fn allocate(&self, obj: &mut Value, old: Option<&Value>) -> Result<(), ApiError>;
    /// The claim keys the object holds.
    fn claims(&self, obj: &Value) -> Vec<String>;
    /// Turn a failed claim into the user-facing error (a requested value that is taken).
    fn claim_taken(&self, obj: &Value, key: &str) -> ApiError;
}

/// Options of a list or watch (query parameters, parsed).
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label_selector: Selector,
    pub field_selector: FieldSelector,
    pub limit: Option<i64>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub timeout_seconds: Option<u64>,
}

/// A page of a list.
#[derive(Debug)]
pub struct ListResult {
    pub items: Vec<Value>,
    pub resource_version: Revision,
    pub continue_token: Option<String>,
    pub remaining_item_count: Option<i64>,
}

/// Options of a delete (metav1.DeleteOptions).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub propagation_policy: Option<String>,
    pub orphan_dependents: Option<bool>,
}

/// A watch event on the wire: type and object.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub event_type: &'static str,
    /// Shared with the watch cache when presenting the stored object
    /// changes nothing (see [`Store::present_shared`]).
    pub object: Arc<Value>,
    /// The object's JSON, when the cache has it encoded already.
    pub encoded: Option<Arc<[u8]>>,
}

/// The registry for one served group/version/resource.
pub struct Store {
    pub strategy: Arc<dyn Strategy>,
    /// `info().api_version()`, computed once.
    api_version: String,
    /// Whether the served version is the storage version, so that the
    /// storage conversions are the identity (the two resources that convert,
    /// events.k8s.io Events and autoscaling/v1 HPAs, are stored at another
    /// version).
    identity_conversion: bool,
    storage: EtcdStorage,
    cache: Arc<WatchCache>,
    key_root: String,
    admission: Arc<Admission>,
    allocator: Option<Arc<dyn Allocator>>,
}

fn storage_err(gr: &GroupResource, name: &str, e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound { .. } => ApiError::not_found(gr, name),
        StorageError::AlreadyExists { .. } => ApiError::already_exists(gr, name),
        StorageError::Conflict { .. } => ApiError::conflict_modified(gr, name),
        StorageError::Expired { requested, oldest } => {
            ApiError::expired(format!("too old resource version: {requested} ({oldest})"))
        }
        StorageError::TooLargeResourceVersion { requested, current } => {
            let mut e = ApiError::timeout();
            e.message = format!("Too large resource version: {requested}, current: {current}");
            e.retry_after = Some(1);
            e.details = Some(
                json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
            );
            e
        }
        StorageError::Unavailable(m) => ApiError::service_unavailable(m),
        other => ApiError::internal(other),
    }
}

fn parse_rv(s: &str) -> Result<Revision, ApiError> {
    s.parse::<Revision>()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))
}

/// Equality of two JSON maps, leaving out the keys `skip` names and
/// comparing the values of the keys `special` names with `eq` (JSON object
/// equality does not depend on key order).
fn map_eq_with(
    a: &serde_json::Map<String, Value>,
    b: &serde_json::Map<String, Value>,
    skip: &dyn Fn(&str) -> bool,
    special: &dyn Fn(&str, &Value, &Value) -> Option<bool>,
) -> bool {
    let count = |m: &serde_json::Map<String, Value>| m.keys().filter(|k| !skip(k)).count();
    if count(a) != count(b) {
        return false;
    }
    a.iter()
        .filter(|(k, _)| !skip(k))
        .all(|(k, av)| match b.get(k) {
            None => false,
            Some(bv) => special(k, av, bv).unwrap_or_else(|| av == bv),
        })
}

/// Whether everything outside metadata and status (what a generation bump
/// tracks) is equal in `a` and `b`.
fn same_spec_part(a: &Value, b: &Value) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(am), Some(bm)) => map_eq_with(
            am,
            bm,
            &|k| matches!(k, "metadata" | "status" | "apiVersion" | "kind"),
            &|_, _, _| None,
        ),
        _ => a == b,
    }
}

/// Equality ignoring resourceVersion and managedFields timestamps: a no-op write.
fn same_content(a: &Value, b: &Value) -> bool {
    // managedFields entries compare without their "time".
    let managed_fields_eq = |x: &Value, y: &Value| -> bool {
        match (x, y) {
            (Value::Array(xs), Value::Array(ys)) => {
                xs.len() == ys.len()
                    && xs.iter().zip(ys).all(|(xe, ye)| match (xe, ye) {
                        (Value::Object(xo), Value::Object(yo)) => {
                            map_eq_with(xo, yo, &|k| k == "time", &|_, _, _| None)
                        }
                        _ => xe == ye,
                    })
            }
            // Only arrays have their entries' times left out.
            (Value::Array(_), _) | (_, Value::Array(_)) => false,
            _ => x == y,
        }
    };
    let metadata_eq = |x: &Value, y: &Value| -> bool {
        match (x, y) {
            (Value::Object(xm), Value::Object(ym)) => {
                map_eq_with(xm, ym, &|k| k == "resourceVersion", &|k, xv, yv| {
                    (k == "managedFields").then(|| managed_fields_eq(xv, yv))
                })
            }
            _ => x == y,
        }
    };
    match (a.as_object(), b.as_object()) {
        (Some(am), Some(bm)) => map_eq_with(am, bm, &|_| false, &|k, x, y| {
            (k == "metadata").then(|| metadata_eq(x, y))
        }),
        _ => a == b,
    }
}

impl Store {
    pub fn new(
        strategy: Arc<dyn Strategy>,
        storage: EtcdStorage,
        cache: Arc<WatchCache>,
        admission: Arc<Admission>,
        allocator: Option<Arc<dyn Allocator>>,
    ) -> Self {
        let key_root = format!(
            "{}/{}/",
            storage.prefix().trim_end_matches('/'),
            strategy.info().storage_segment
        );
        let info = strategy.info();
        let api_version = info.api_version();
        let identity_conversion = info.storage_api_version == api_version;
        Store {
            strategy,
            api_version,
            identity_conversion,
            storage,
            cache,
            key_root,
            admission,
            allocator,
        }
    }

    pub fn info(&self) -> &ResourceInfo {
        self.strategy.info()
    }

    pub fn gr(&self) -> GroupResource {
        self.info().group_resource()
    }

    pub fn cache(&self) -> &Arc<WatchCache> {
        &self.cache
    }

    fn key(&self, ns: &str, name: &str) -> String {
        if self.info().namespaced {
            format!("{}{}/{}", self.key_root, ns, name)
        } else {
            format!("{}{}", self.key_root, name)
        }
    }

    fn prefix_for(&self, ns: &str) -> String {
        if self.info().namespaced && !ns.is_empty() {
            format!("{}{}/", self.key_root, ns)
        } else {
            self.key_root.clone()
        }
    }

    /// Storage form → served form, with resourceVersion set.
    fn present(&self, stored: &Value, rv: Revision) -> Value {
        self.present_owned(stored.clone(), rv)
    }

    fn present_owned(&self, stored: Value, rv: Revision) -> Value {
        let mut v = if self.identity_conversion {
            stored
        } else {
            self.strategy.from_storage(stored)
        };
        if let Some(m) = v.as_object_mut() {
            m.insert("apiVersion".into(), Value::String(self.api_version.clone()));
            m.insert("kind".into(), Value::String(self.info().kind.to_string()));
        }
        meta::set_resource_version(&mut v, &rv.to_string());
        v
    }

    /// [`Store::present`] of a cached object, sharing it when presenting
    /// would change nothing (no conversion; apiVersion, kind and
    /// resourceVersion already as they would be set: inserting an existing
    /// key keeps its position, so the result would be equal and serialize
    /// to the same bytes).
    pub fn present_shared(&self, stored: &Arc<Value>, rv: Revision) -> Arc<Value> {
        if self.presents_unchanged(stored, rv) {
            stored.clone()
        } else {
            Arc::new(self.present(stored, rv))
        }
    }

    fn presents_unchanged(&self, stored: &Value, rv: Revision) -> bool {
        self.identity_conversion
            && stored.get("apiVersion").and_then(Value::as_str) == Some(self.api_version.as_str())
            && stored.get("kind").and_then(Value::as_str) == Some(self.info().kind)
            && stored
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .is_some_and(|s| s == rv.to_string())
    }

    fn decode(&self, bytes: &[u8], rv: Revision) -> Result<Value, ApiError> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::internal(format!("decoding stored object: {e}")))?;
        Ok(self.present_owned(v, rv))
    }

    fn encode(&self, obj: &Value) -> Result<Vec<u8>, ApiError> {
        const NOT_STORED: [&str; 2] = ["resourceVersion", "selfLink"];
        if self.identity_conversion {
            // As below without copying anything.
            if let Some(root) = obj.as_object() {
                if let Some(md) = root.get("metadata").and_then(Value::as_object) {
                    if NOT_STORED.iter().any(|k| md.contains_key(*k)) {
                        let metadata =
                            super::MapEntries(super::entries_after_remove(md, &NOT_STORED));
                        return serde_json::to_vec(&WithMetadata { root, metadata })
                            .map_err(ApiError::internal);
                    }
                }
            }
            return serde_json::to_vec(obj).map_err(ApiError::internal);
        }
        let mut v = self.strategy.to_storage(obj.clone());
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in NOT_STORED {
                m.remove(k);
            }
        }
        serde_json::to_vec(&v).map_err(ApiError::internal)
    }

    /// Read one object straight from etcd (a consistent read).
    pub async fn get(&self, ns: &str, name: &str) -> Result<Value, ApiError> {
        match self.storage.get(&self.key(ns, name)).await {
            Ok(Some(kv)) => self.decode(&kv.value, kv.mod_revision),
            Ok(None) => Err(ApiError::not_found(&self.gr(), name)),
            Err(e) => Err(storage_err(&self.gr(), name, e)),
        }
    }

    /// Read one object from the watch cache, falling back to etcd when the
    /// cache has not seen it (as upstream's informer-with-live-lookup
    /// getters do). `Ok(None)`: it does not exist.
    pub async fn get_cached(&self, ns: &str, name: &str) -> Result<Option<Value>, ApiError> {
        let key = self.key(ns, name);
        if let Ok(Some(c)) = self.cache.get(&key, None).await {
            return Ok(Some(self.present(&c.object, c.revision)));
        }
        match self.get(ns, name).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The field values a field selector can address.
    pub fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        match field {
            "metadata.name" => Some(meta::name(obj).to_string()),
            "metadata.namespace" => Some(meta::namespace(obj).to_string()),
            f => self
                .strategy
                .selectable_fields(obj)
                .into_iter()
                .find(|(k, _)| *k == f)
                .map(|(_, v)| v),
        }
    }

    /// Reject selectors on fields this resource cannot select by.
    pub fn check_field_selector(&self, sel: &FieldSelector) -> Result<(), ApiError> {
        for f in sel.fields() {
            if f != "metadata.name"
                && f != "metadata.namespace"
                && !self.strategy.selectable_field_names().contains(&f)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {f}"
                )));
            }
        }
        Ok(())
    }

    pub fn matches(&self, obj: &Value, opts: &ListOptions) -> bool {
        opts.label_selector.matches(meta::labels(obj))
            && opts
                .field_selector
                .matches(&|f: &str| self.field_value(obj, f))
    }

    async fn consistent_revision(&self) -> Result<Revision, ApiError> {
        self.storage
            .current_revision()
            .await
            .map_err(|e| storage_err(&self.gr(), "", e))
    }

    /// List objects, served from the watch cache (consistent reads wait for
    /// the cache to catch up to etcd's current revision).
    pub async fn list(&self, ns: &str, opts: &ListOptions) -> Result<ListResult, ApiError> {
        self.check_field_selector(&opts.field_selector)?;
        let mut start_after: Option<String> = None;
        let mut min_rev = match opts.resource_version.as_deref() {
            None | Some("") => Some(self.consistent_revision().await?),
            Some("0") => None,
            Some(rv) => Some(parse_rv(rv)?),
        };
        if let Some(tok) = &opts.continue_token {
            let (rv, start) = decode_continue(tok)?;
            min_rev = Some(rv);
            start_after = Some(start);
        }
        let (objects, rev) = self
            .cache
            .list(&self.prefix_for(ns), min_rev)
            .await
            .map_err(|e| storage_err(&self.gr(), "", e))?;
        let mut items = Vec::new();
        let mut last_key = None;
        let mut remaining = 0i64;
        let limit = opts.limit.filter(|l| *l > 0).map(|l| l as usize);
        for CachedObject {
            key,
            object,
            revision,
        } in objects.iter()
        {
            if let Some(s) = &start_after {
                if key.as_str() <= s.as_str() {
                    continue;
                }
            }
            let v = self.present(object, *revision);
            if !self.matches(&v, opts) {
                continue;
            }
            if let Some(l) = limit {
                if items.len() >= l {
                    remaining += 1;
                    continue;
                }
            }
            last_key = Some(key.clone());
            items.push(v);
        }
        let continue_token = if remaining > 0 {
            last_key.map(|k| encode_continue(rev, &k))
        } else {
            None
        };
        Ok(ListResult {
            items,
            resource_version: rev,
            remaining_item_count: if continue_token.is_some()
                && opts.label_selector.is_empty()
                && opts.field_selector.is_empty()
            {
                Some(remaining)
            } else {
                None
            },
            continue_token,
        })
    }

    /// Fill system metadata for a new object and run the create pipeline up
    /// to (not including) storage. Returns the object to store.
    async fn prepare_create(
        &self,
        ctx: &RequestContext,
        ns: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        let info = self.info();
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the object provided is not a JSON object",
            ));
        }
        if obj.get("metadata").map(|m| !m.is_object()).unwrap_or(true) {
            obj["metadata"] = json!({});
        }
        if info.namespaced {
            meta::set_namespace(&mut obj, ns);
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        if !meta::resource_version(&obj).is_empty() {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            m.remove("selfLink");
            m.remove("managedFields");
            m.remove("generation");
        }
        if meta::name(&obj).is_empty() {
            if let Some(g) = obj
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .filter(|g| !g.is_empty())
            {
                let name = format!("{g}{}", meta::generate_name_suffix());
                meta::set_name(&mut obj, &name);
            }
        }
        meta::set_uid(&mut obj, &uuid::Uuid::new_v4().to_string());
        meta::set_creation_timestamp(&mut obj, &meta::now_rfc3339());
        if self.strategy.reset_status_on_create() {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        // Mutating admission sees the object before the strategy prepares
        // and validates it, as upstream's mutating admission runs first.
        self.admission
            .mutate(Operation::Create, info, &mut obj, None, ctx)
            .await?;
        self.strategy.prepare_for_create(&mut obj);
        self.strategy.default(&mut obj);
        if self.strategy.bumps_generation() {
            meta::set_generation(&mut obj, 1);
        }
        if let Some(a) = &self.allocator {
            a.allocate(&mut obj, None).await?;
        }
        let mut errs = validation::validate_object_meta(
            &obj["metadata"],
            info.namespaced,
            self.strategy.name_validator(),
        );
        if !ctx.internal {
            errs.extend(self.strategy.validate(&obj));
        }
        if !errs.is_empty() {
            return Err(self.invalid(&obj, &errs));
        }
        self.admission
            .admit(Operation::Create, info, &obj, None, ctx)
            .await?;
        managed_fields::record_update(
            &mut obj,
            None,
            &ctx.field_manager,
            &info.api_version(),
            "",
            &meta::now_rfc3339(),
        );
        Ok(obj)
    }

    fn invalid(&self, obj: &Value, errs: &[FieldError]) -> ApiError {
        ApiError::invalid(self.info().kind, self.info().group, meta::name(obj), errs)
    }

    /// POST: create an object.
    pub async fn create(
        &self,
        ctx: &RequestContext,
        ns: &str,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let generated = meta::name(&obj).is_empty();
        // Only a generated name or an allocation can make us try again;
        // otherwise the one attempt may consume the object.
        let may_retry = generated || self.allocator.is_some();
        let mut obj = Some(obj);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let input = if may_retry { obj.clone() } else { obj.take() }
                .ok_or_else(|| ApiError::internal("create retried without its object"))?;
            let prepared = self.prepare_create(ctx, ns, input).await?;
            let name = meta::name(&prepared).to_string();
            if ctx.dry_run {
                return Ok(self
                    .strategy
                    .from_storage(self.strategy.to_storage(prepared)));
            }
            let claims: Vec<(String, Vec<u8>)> = self
                .allocator
                .as_ref()
                .map(|a| {
                    a.claims(&prepared)
                        .into_iter()
                        .map(|k| (k, name.clone().into_bytes()))
                        .collect()
                })
                .unwrap_or_default();
            let bytes = self.encode(&prepared)?;
            match self
                .storage
                .create(&self.key(ns, &name), bytes, &claims)
                .await
            {
                Ok(rev) => {
                    // Answer with what a read will return (conversions applied).
                    let mut out = self
                        .strategy
                        .from_storage(self.strategy.to_storage(prepared));
                    meta::set_resource_version(&mut out, &rev.to_string());
                    return Ok(out);
                }
                Err(StorageError::AlreadyExists { .. }) if generated && attempts < 8 => continue,
                Err(StorageError::ClaimTaken { key }) => {
                    if let (Some(a), Some(obj)) = (&self.allocator, &obj) {
                        let e = a.claim_taken(obj, &key);
                        if e.code == 409 && attempts < 8 {
                            continue; // we chose a value that raced: choose again
                        }
                        return Err(e);
                    }
                    return Err(ApiError::internal(format!("claim {key} taken")));
                }
                Err(e) => return Err(storage_err(&self.gr(), &name, e)),
            }
        }
    }

    /// The shared read-modify-write loop of update and patch. `transform`
    /// gets the current object (None when absent) and returns the desired
    /// one; a conflict with a concurrent writer retries unless the client
    /// pinned a resourceVersion.
    pub async fn guaranteed_update<F>(
        &self,
        ctx: &RequestContext,
        ns: &str,
        name: &str,
        subresource: &str,
        mut transform: F,
    ) -> Result<(Value, bool), ApiError>
    where
        F: FnMut(Option<&Value>) -> Result<Value, ApiError>,
    {
        let gr = self.gr();
        let key = self.key(ns, name);
        // As upstream's cacher: the first attempt starts from the watch
        // cache's copy (no etcd read); if that copy was stale, the write's
        // compare-and-swap fails, and any failure or no-op seen from it is
        // confirmed from etcd by the next attempt.
        // (A dry run writes nothing that would reveal a stale copy.)
        let mut try_cache = self.cache.is_ready() && !ctx.dry_run;
        for _ in 0..16 {
            let cached = if std::mem::take(&mut try_cache) {
                self.cache.get(&key, None).await.ok().flatten()
            } else {
                None
            };
            let from_cache = cached.is_some();
            let (old, mod_revision): (Arc<Value>, Revision) = match cached {
                Some(c) => (self.present_shared(&c.object, c.revision), c.revision),
                None => {
                    let current = self
                        .storage
                        .get(&key)
                        .await
                        .map_err(|e| storage_err(&gr, name, e))?;
                    let Some(kv) = current else {
                        if !self.strategy.allow_create_on_update() || !subresource.is_empty() {
                            return Err(ApiError::not_found(&gr, name));
                        }
                        let new = transform(None)?;
                        return match self.create(ctx, ns, new).await {
                            Ok(v) => Ok((v, true)),
                            Err(e) if e.reason == "AlreadyExists" => continue,
                            Err(e) => Err(e),
                        };
                    };
                    (
                        Arc::new(self.decode(&kv.value, kv.mod_revision)?),
                        kv.mod_revision,
                    )
                }
            };
            let warnings = if from_cache {
                ctx.warnings.lock().map(|w| w.len()).unwrap_or(0)
            } else {
                0
            };
            // Ok(None): try again (a conflict, or what the cache showed
            // needs confirming).
            let attempt: Result<Option<(Value, bool)>, ApiError> = async {
                let mut new = transform(Some(&*old))?;
                if !new.is_object() {
                    return Err(ApiError::bad_request(
                        "the object provided is not a JSON object",
                    ));
                }
                // A client-supplied resourceVersion is a precondition.
                let client_rv = meta::resource_version(&new).to_string();
                let pinned = !client_rv.is_empty();
                if pinned && client_rv != mod_revision.to_string() {
                    return Err(ApiError::conflict_modified(&gr, name));
                }
                if meta::name(&new).is_empty() {
                    meta::set_name(&mut new, name);
                }
                if meta::name(&new) != name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({}) does not match the name on the URL ({name})",
                        meta::name(&new)
                    )));
                }
                let new = self.prepare_update(ctx, ns, new, &old, subresource).await?;
                if same_content(&new, &old) {
                    // A no-op only against the object as etcd has it.
                    return Ok((!from_cache).then(|| (Arc::unwrap_or_clone(old), false)));
                }
                // Removing the last finalizer of an object being deleted deletes it.
                if meta::deletion_timestamp(&new).is_some()
                    && meta::finalizers(&new).is_empty()
                    && !self.is_graceful_pending(&new)
                    && !self.strategy.hold_deletion(&mut new.clone())
                {
                    if ctx.dry_run {
                        return Ok(Some((new, false)));
                    }
                    let claims = self
                        .allocator
                        .as_ref()
                        .map(|a| a.claims(&old))
                        .unwrap_or_default();
                    match self.storage.delete(&key, Some(mod_revision), &claims).await {
                        Ok(rev) => {
                            let mut out = new;
                            meta::set_resource_version(&mut out, &rev.to_string());
                            return Ok(Some((out, false)));
                        }
                        Err(StorageError::Conflict { .. }) if !pinned => return Ok(None),
                        Err(e) => return Err(storage_err(&gr, name, e)),
                    }
                }
                if ctx.dry_run {
                    return Ok(Some((new, false)));
                }
                let (add, release) = match &self.allocator {
                    Some(a) => {
                        let o: std::collections::BTreeSet<String> =
                            a.claims(&old).into_iter().collect();
                        let n: std::collections::BTreeSet<String> =
                            a.claims(&new).into_iter().collect();
                        (
                            n.difference(&o)
                                .map(|k| (k.clone(), name.as_bytes().to_vec()))
                                .collect::<Vec<_>>(),
                            o.difference(&n).cloned().collect::<Vec<_>>(),
                        )
                    }
                    None => (Vec::new(), Vec::new()),
                };
                let bytes = self.encode(&new)?;
                match self
                    .storage
                    .update(&key, bytes, Some(mod_revision), &add, &release)
                    .await
                {
                    Ok(rev) => {
                        let mut out = new;
                        meta::set_resource_version(&mut out, &rev.to_string());
                        Ok(Some((out, false)))
                    }
                    Err(StorageError::Conflict { .. }) if !pinned => Ok(None),
                    Err(StorageError::ClaimTaken { key }) => Err(self
                        .allocator
                        .as_ref()
                        .map(|a| a.claim_taken(&new, &key))
                        .unwrap_or_else(|| ApiError::internal(key))),
                    Err(e) => Err(storage_err(&gr, name, e)),
                }
            }
            .await;
            match attempt {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => {}
                Err(e) if !from_cache => return Err(e),
                Err(_) => {}
            }
            if from_cache {
                // Not confirmed by etcd: forget what the attempt said.
                if let Ok(mut w) = ctx.warnings.lock() {
                    w.truncate(warnings);
                }
            }
        }
        Err(ApiError::conflict_modified(&gr, name))
    }

    /// Pods being gracefully deleted keep existing (with finalizers gone)
    /// until the kubelet confirms or the grace period is 0.
    fn is_graceful_pending(&self, obj: &Value) -> bool {
        self.strategy.default_grace_period(obj).is_some()
            && obj
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                > 0
    }

    async fn prepare_update(
        &self,
        ctx: &RequestContext,
        _ns: &str,
        mut new: Value,
        old: &Value,
        subresource: &str,
    ) -> Result<Value, ApiError> {
        let info = self.info();
        if new.get("metadata").map(|m| !m.is_object()).unwrap_or(true) {
            new["metadata"] = json!({});
        }
        if let Some(m) = new.as_object_mut() {
            m.insert("apiVersion".into(), Value::String(info.api_version()));
            m.insert("kind".into(), Value::String(info.kind.to_string()));
        }
        // System metadata is the server's.
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
        ] {
            match old["metadata"].get(f) {
                Some(v) => {
                    new["metadata"][f] = v.clone();
                }
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(f);
                    }
                }
            }
        }
        if let Some(m) = new["metadata"].as_object_mut() {
            m.remove("managedFields");
            m.remove("selfLink");
        }
        if let Some(mf) = old.pointer("/metadata/managedFields") {
            new["metadata"]["managedFields"] = mf.clone();
        }
        match subresource {
            "status" => {
                // Only status changes through /status; metadata and spec stay.
                let status = new.get("status").cloned();
                let mut merged = old.clone();
                match status {
                    Some(s) => merged["status"] = s,
                    None => {
                        if let Some(m) = merged.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                merged["metadata"]["resourceVersion"] = new["metadata"]["resourceVersion"].clone();
                // As upstream, annotations written through /status are kept
                // (the deployment controller records the revision this way,
                // without bumping the generation); labels are not.
                match new.pointer("/metadata/annotations") {
                    Some(a) => merged["metadata"]["annotations"] = a.clone(),
                    None => {
                        if let Some(m) = merged["metadata"].as_object_mut() {
                            m.remove("annotations");
                        }
                    }
                }
                new = merged;
            }
            "finalize" => {
                // namespaces/finalize changes spec.finalizers only.
                let fins = new.pointer("/spec/finalizers").cloned();
                let mut merged = old.clone();
                match fins {
                    Some(f) => merged["spec"]["finalizers"] = f,
                    None => {
                        if let Some(spec) = merged.get_mut("spec").and_then(Value::as_object_mut) {
                            spec.remove("finalizers");
                        }
                    }
                }
                merged["metadata"]["resourceVersion"] = new["metadata"]["resourceVersion"].clone();
                new = merged;
            }
            "" => {
                if self.strategy.has_status() {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                // A client cannot start deletion by update, nor add finalizers to a deleting object it did not have.
                self.strategy.prepare_for_update(&mut new, old);
            }
            _ => {}
        }
        if subresource.is_empty() {
            self.admission
                .mutate(Operation::Update, info, &mut new, Some(old), ctx)
                .await?;
        }
        self.strategy.default(&mut new);
        if self.strategy.bumps_generation() && !same_spec_part(&new, old) {
            meta::set_generation(&mut new, meta::generation(old) + 1);
        }
        if subresource.is_empty() {
            if let Some(a) = &self.allocator {
                a.allocate(&mut new, Some(old)).await?;
            }
        }
        let mut errs = validation::validate_object_meta(
            &new["metadata"],
            info.namespaced,
            self.strategy.name_validator(),
        );
        errs.extend(validation::validate_object_meta_update(
            &new["metadata"],
            &old["metadata"],
        ));
        // Binding is the server's own assignment of spec.nodeName: not a user spec update.
        if subresource != "status-binding" && !ctx.internal {
            errs.extend(self.strategy.validate_update(&new, old));
        }
        if !errs.is_empty() {
            return Err(self.invalid(&new, &errs));
        }
        self.admission
            .admit(Operation::Update, info, &new, Some(old), ctx)
            .await?;
        let sub = if subresource == "status-binding" {
            "binding"
        } else {
            subresource
        };
        managed_fields::record_update(
            &mut new,
            Some(old),
            &ctx.field_manager,
            &info.api_version(),
            sub,
            &meta::now_rfc3339(),
        );
        Ok(new)
    }

    /// PUT: replace an object (or its status).
    pub async fn update(
        &self,
        ctx: &RequestContext,
        ns: &str,
        name: &str,
        subresource: &str,
        obj: Value,
    ) -> Result<(Value, bool), ApiError> {
        let mut obj = obj;
        if self.info().namespaced {
            let body_ns = meta::namespace(&obj).to_string();
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta::set_namespace(&mut obj, ns);
        }
        self.guaranteed_update(ctx, ns, name, subresource, |_old| Ok(obj.clone()))
            .await
    }

    /// DELETE one object. Returns the object and whether it is gone now
    /// (false: it has a deletionTimestamp and waits for finalizers or its grace period).
    pub async fn delete(
        &self,
        ctx: &RequestContext,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<(Value, bool), ApiError> {
        let gr = self.gr();
        for _ in 0..16 {
            let kv = self
                .storage
                .get(&self.key(ns, name))
                .await
                .map_err(|e| storage_err(&gr, name, e))?
                .ok_or_else(|| ApiError::not_found(&gr, name))?;
            let mut obj = self.decode(&kv.value, kv.mod_revision)?;
            if let Some(uid) = &opts.precondition_uid {
                if uid != meta::uid(&obj) {
                    return Err(ApiError::conflict(
                        &gr,
                        name,
                        &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta::uid(&obj)),
                    ));
                }
            }
            if let Some(rv) = &opts.precondition_resource_version {
                if rv != meta::resource_version(&obj) {
                    return Err(ApiError::conflict(
                        &gr,
                        name,
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                            meta::resource_version(&obj)
                        ),
                    ));
                }
            }
            self.admission
                .admit(Operation::Delete, self.info(), &obj, None, ctx)
                .await?;
            let mut finalizers = meta::finalizers(&obj);
            let policy = opts
                .propagation_policy
                .clone()
                .or_else(|| match opts.orphan_dependents {
                    Some(true) => Some("Orphan".into()),
                    Some(false) => Some("Background".into()),
                    None => None,
                });
            let mut changed_finalizers = false;
            match policy.as_deref() {
                Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                    finalizers.retain(|f| f != "orphan");
                    finalizers.push("foregroundDeletion".into());
                    changed_finalizers = true;
                }
                Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => {
                    finalizers.retain(|f| f != "foregroundDeletion");
                    finalizers.push("orphan".into());
                    changed_finalizers = true;
                }
                Some("Background") => {
                    let n = finalizers.len();
                    finalizers.retain(|f| f != "orphan" && f != "foregroundDeletion");
                    changed_finalizers = n != finalizers.len();
                }
                Some(p) if !matches!(p, "Foreground" | "Orphan" | "Background") => {
                    return Err(ApiError::invalid(
                        "DeleteOptions",
                        "",
                        "",
                        &[FieldError::not_supported(
                            "propagationPolicy",
                            p,
                            &["Foreground", "Background", "Orphan"],
                        )],
                    ));
                }
                _ => {}
            }
            // Graceful deletion (pods): a bound pod gets a deletionTimestamp in the future.
            let mut grace = None;
            if let Some(default) = self.strategy.default_grace_period(&obj) {
                let mut g = opts.grace_period_seconds.unwrap_or(default).max(0);
                let bound = obj
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty());
                let phase = obj
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !bound || phase == "Failed" || phase == "Succeeded" {
                    g = 0;
                }
                if let Some(cur) = obj
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                {
                    g = g.min(cur);
                }
                grace = Some(g);
            }
            let held = self.strategy.hold_deletion(&mut obj);
            let pending = held || !finalizers.is_empty() || grace.is_some_and(|g| g > 0);
            if pending {
                let already = meta::deletion_timestamp(&obj).is_some();
                let cur_grace = obj
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64);
                let new_grace = grace.unwrap_or(0);
                if already && !changed_finalizers && cur_grace == Some(new_grace) && !held {
                    return Ok((obj, false));
                }
                meta::set_finalizers(&mut obj, &finalizers);
                let now = chrono::Utc::now();
                if !already || cur_grace.is_some_and(|c| new_grace < c) {
                    let ts = (now + chrono::Duration::seconds(new_grace))
                        .format("%Y-%m-%dT%H:%M:%SZ")
                        .to_string();
                    meta::set_deletion_timestamp(&mut obj, Some(&ts));
                }
                meta::set_deletion_grace_period_seconds(&mut obj, Some(new_grace));
                if meta::generation(&obj) > 0 && !already {
                    let g = meta::generation(&obj) + 1;
                    meta::set_generation(&mut obj, g);
                }
                if ctx.dry_run {
                    return Ok((obj, false));
                }
                let bytes = self.encode(&obj)?;
                match self
                    .storage
                    .update(&self.key(ns, name), bytes, Some(kv.mod_revision), &[], &[])
                    .await
                {
                    Ok(rev) => {
                        meta::set_resource_version(&mut obj, &rev.to_string());
                        return Ok((obj, false));
                    }
                    Err(StorageError::Conflict { .. }) => continue,
                    Err(e) => return Err(storage_err(&gr, name, e)),
                }
            }
            if ctx.dry_run {
                return Ok((obj, true));
            }
            let claims = self
                .allocator
                .as_ref()
                .map(|a| a.claims(&obj))
                .unwrap_or_default();
            match self
                .storage
                .delete(&self.key(ns, name), Some(kv.mod_revision), &claims)
                .await
            {
                Ok(_) => return Ok((obj, true)),
                Err(StorageError::Conflict { .. }) => continue,
                Err(StorageError::NotFound { .. }) => return Err(ApiError::not_found(&gr, name)),
                Err(e) => return Err(storage_err(&gr, name, e)),
            }
        }
        Err(ApiError::conflict_modified(&gr, name))
    }

    /// DELETE on the collection: every matching object.
    pub async fn delete_collection(
        &self,
        ctx: &RequestContext,
        ns: &str,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let items = self.list(ns, list).await?.items;
        let mut out = Vec::new();
        for item in items {
            match self
                .delete(ctx, meta::namespace(&item), meta::name(&item), opts)
                .await
            {
                Ok((v, _)) => out.push(v),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Start a watch. Returns the initial events to send (for RV "" / "0" /
    /// sendInitialEvents) and the live receiver.
    pub async fn watch(
        &self,
        ns: &str,
        opts: &ListOptions,
    ) -> Result<
        (
            Vec<WatchEvent>,
            Revision,
            tokio::sync::mpsc::Receiver<WatchItem>,
        ),
        ApiError,
    > {
        self.check_field_selector(&opts.field_selector)?;
        let rv = opts.resource_version.clone().unwrap_or_default();
        let send_initial = opts
            .send_initial_events
            .unwrap_or(rv.is_empty() || rv == "0");
        let mut initial = Vec::new();
        let from = if send_initial {
            let min = if rv.is_empty() {
                Some(self.consistent_revision().await?)
            } else if rv == "0" {
                None
            } else {
                Some(parse_rv(&rv)?)
            };
            let (objects, rev) = self
                .cache
                .list(&self.prefix_for(ns), min)
                .await
                .map_err(|e| storage_err(&self.gr(), "", e))?;
            for o in objects.iter() {
                let v = self.present_shared(&o.object, o.revision);
                if self.matches(&v, opts) {
                    initial.push(WatchEvent {
                        event_type: "ADDED",
                        object: v,
                        encoded: None,
                    });
                }
            }
            rev
        } else {
            parse_rv(&rv)?
        };
        let rx = self
            .cache
            .watch(&self.prefix_for(ns), from)
            .map_err(|e| storage_err(&self.gr(), "", e))?;
        Ok((initial, from, rx))
    }

    /// Turn a cache event into what this watcher sees (label/field filtering
    /// with transitions: an object leaving the selection is DELETED for it).
    pub fn filter_event(
        &self,
        ev: &storage::cache::CacheEvent,
        opts: &ListOptions,
    ) -> Option<WatchEvent> {
        use storage::cache::EventType;
        let everything = opts.label_selector.is_empty() && opts.field_selector.is_empty();
        // Without a conversion, presenting changes only apiVersion, kind and
        // resourceVersion, which no selector looks at: match the stored form.
        let matches_stored = |stored: &Arc<Value>| {
            everything
                || if self.identity_conversion {
                    self.matches(stored, opts)
                } else {
                    self.matches(&self.present(stored, ev.revision), opts)
                }
        };
        let cur_match = matches_stored(&ev.object);
        let prev_match = ev.prev.as_ref().map(matches_stored);
        let event_type = match ev.event_type {
            EventType::Added => cur_match.then_some("ADDED"),
            EventType::Deleted => (cur_match || prev_match == Some(true)).then_some("DELETED"),
            EventType::Modified => match (prev_match.unwrap_or(true), cur_match) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
        }?;
        let object = self.present_shared(&ev.object, ev.revision);
        // The cache's encoding is of the stored form: good when presenting
        // changed nothing (the object is then the cache's own).
        let encoded = Arc::ptr_eq(&object, &ev.object).then(|| ev.encoded());
        Some(WatchEvent {
            event_type,
            object,
            encoded,
        })
    }

    pub fn count(&self) -> usize {
        self.cache.count()
    }

    pub fn bookmark(&self, rev: Revision) -> WatchEvent {
        WatchEvent {
            event_type: "BOOKMARK",
            object: Arc::new(
                json!({"kind": self.info().kind, "apiVersion": self.info().api_version(), "metadata": {"resourceVersion": rev.to_string()}}),
            ),
            encoded: None,
        }
    }
}

/// A JSON object serialized with another value in place of its "metadata"
/// (the same bytes as the object with that metadata substituted).
struct WithMetadata<'a, M> {
    root: &'a serde_json::Map<String, Value>,
    metadata: M,
}

impl<M: serde::Serialize> serde::Serialize for WithMetadata<'_, M> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.root.len()))?;
        for (k, v) in self.root {
            if k == "metadata" {
                m.serialize_entry(k, &self.metadata)?;
            } else {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

/// Continue tokens: base64 of {"v":"meta.k8s.io/v1","rv":N,"start":"<key>"} as upstream.
fn encode_continue(rev: Revision, last_key: &str) -> String {
    use base64::Engine;
    let tok = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": format!("{last_key}\u{0}")});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tok.to_string())
}

fn decode_continue(tok: &str) -> Result<(Revision, String), ApiError> {
    use base64::Engine;
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
    let start = v
        .get("start")
        .and_then(Value::as_str)
        .ok_or_else(bad)?
        .trim_end_matches('\u{0}')
        .to_string();
    Ok((rv, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copying definitions these functions replace.
    fn spec_part(obj: &Value) -> Value {
        let mut v = obj.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
            m.remove("apiVersion");
            m.remove("kind");
        }
        v
    }

    fn strip(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(Value::Array(mf)) = m.get_mut("managedFields") {
                for e in mf.iter_mut() {
                    if let Some(o) = e.as_object_mut() {
                        o.remove("time");
                    }
                }
            }
        }
        v
    }

    #[test]
    fn comparisons_agree_with_copying_ones() {
        let base = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "resourceVersion": "5", "managedFields": [
                {"manager": "m", "time": "t1", "fieldsV1": {"f:spec": {}}}, "odd"]},
            "spec": {"nodeName": ""}, "status": {"phase": "Pending"},
        });
        let variants = [
            base.clone(),
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "a", "resourceVersion": "6", "managedFields": [
                    {"manager": "m", "time": "t2", "fieldsV1": {"f:spec": {}}}, "odd"]},
                "spec": {"nodeName": ""}, "status": {"phase": "Pending"}}),
            json!({"kind": "Pod", "apiVersion": "v2",
                "metadata": {"name": "a", "managedFields": [
                    {"manager": "m", "fieldsV1": {"f:spec": {}}}, "odd"]},
                "spec": {"nodeName": ""}, "status": {"phase": "Running"}}),
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "a", "resourceVersion": "5", "managedFields": [
                    {"manager": "n", "time": "t1", "fieldsV1": {"f:spec": {}}}, "odd"]},
                "spec": {"nodeName": "x"}, "status": {"phase": "Pending"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "managedFields": {}},
                "spec": {"nodeName": ""}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": "odd", "spec": {"nodeName": ""}}),
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"nodeName": ""}, "extra": 1}),
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"nodeName": ""}}),
            json!([1, 2]),
            json!(null),
        ];
        for a in &variants {
            for b in &variants {
                assert_eq!(
                    same_spec_part(a, b),
                    spec_part(a) == spec_part(b),
                    "spec {a} {b}"
                );
                assert_eq!(same_content(a, b), strip(a) == strip(b), "content {a} {b}");
            }
        }
    }
}
