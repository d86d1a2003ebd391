//! Resource request handlers: one generic path for every registered
//! resource, dispatching on verb and subresource to the [`Store`].

use std::collections::HashMap;
use std::sync::Arc;

use apimachinery::errors::{success_status, ApiError};
use apimachinery::fields::FieldSelector;
use apimachinery::labels::Selector;
use apimachinery::schema::Schemas;
use apimachinery::{meta, patch};
use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::{json, Value};

use super::negotiation::{self, Output};
use super::request_info::RequestInfo;
use super::table::{self, IncludeObject};
use super::{error_response, ResBody};
use crate::registry::context::{FieldValidation, RequestContext, UserInfo};
use crate::registry::store::{DeleteOptions, ListOptions, Store};
use crate::server::ApiState;

/// Upstream's request body limit: 3 MiB.
pub const MAX_REQUEST_BODY_BYTES: usize = 3 * 1024 * 1024;

pub type Query = HashMap<String, String>;

pub fn parse_query(q: Option<&str>) -> Query {
    let mut m = HashMap::new();
    if let Some(q) = q {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            m.insert(k.into_owned(), v.into_owned());
        }
    }
    m
}

fn truthy(q: &Query, k: &str) -> bool {
    matches!(
        q.get(k).map(String::as_str),
        Some("true") | Some("1") | Some("")
    )
}

/// Parse list/watch options from the query.
pub fn list_options(q: &Query) -> Result<ListOptions, ApiError> {
    let label_selector = match q.get("labelSelector") {
        Some(s) => Selector::parse(s)
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
        None => Selector::default(),
    };
    let field_selector = match q.get("fieldSelector") {
        Some(s) => FieldSelector::parse(s).map_err(ApiError::bad_request)?,
        None => FieldSelector::default(),
    };
    let limit = match q.get("limit") {
        Some(l) if !l.is_empty() => Some(
            l.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        ),
        _ => None,
    };
    let send_initial_events = match q.get("sendInitialEvents").map(String::as_str) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    };
    let rvm = q
        .get("resourceVersionMatch")
        .cloned()
        .filter(|s| !s.is_empty());
    if let Some(m) = &rvm {
        if m != "NotOlderThan" && m != "Exact" {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
        if q.get("resourceVersion")
            .map(|s| s.is_empty())
            .unwrap_or(true)
            && send_initial_events.is_none()
        {
            return Err(ApiError::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
    }
    Ok(ListOptions {
        label_selector,
        field_selector,
        limit,
        continue_token: q.get("continue").cloned().filter(|s| !s.is_empty()),
        resource_version: q.get("resourceVersion").cloned(),
        resource_version_match: rvm,
        allow_watch_bookmarks: truthy(q, "allowWatchBookmarks"),
        send_initial_events,
        timeout_seconds: q.get("timeoutSeconds").and_then(|s| s.parse().ok()),
    })
}

fn field_manager(q: &Query, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        if m.len() > 128 {
            return Err(ApiError::bad_request(
                "fieldManager: Too long: may not be more than 128 bytes",
            ));
        }
        return Ok(m.clone());
    }
    let ua = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    Ok(ua.split('/').next().unwrap_or("unknown").to_string())
}

pub fn request_context(
    user: UserInfo,
    q: &Query,
    headers: &HeaderMap,
) -> Result<RequestContext, ApiError> {
    let mut ctx = RequestContext::new(user);
    match q.get("dryRun").map(String::as_str) {
        None | Some("") => {}
        Some("All") => ctx.dry_run = true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}: supported values: \"All\""
            )))
        }
    }
    ctx.field_validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Strict") => FieldValidation::Strict,
        Some("Warn") => FieldValidation::Warn,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            )))
        }
    };
    ctx.field_manager = field_manager(q, headers)?;
    Ok(ctx)
}

/// Everything a resource handler needs from the request.
pub struct ResourceRequest {
    pub info: RequestInfo,
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Query,
    pub body: Bytes,
    pub user: UserInfo,
}

/// Strict/Warn/Ignore field validation of a decoded body (and its raw bytes).
fn check_fields(
    store: &Store,
    ctx: &RequestContext,
    raw: Option<&[u8]>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let info = store.info();
    let schemas = Schemas::embedded();
    let mut problems: Vec<String> = Vec::new();
    if let Some(raw) = raw {
        if raw.first().is_some_and(|b| *b == b'{')
            || raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        {
            if let Ok(d) = apimachinery::schema::duplicate_fields(raw) {
                problems.extend(d.into_iter().map(|f| format!("duplicate field {f:?}")));
            }
        }
    }
    if schemas.has(info.definition) {
        // Upstream reports at most 100 unknown fields.
        problems.extend(
            schemas
                .unknown_fields(info.definition, obj)
                .into_iter()
                .take(100)
                .map(|f| format!("unknown field {f:?}")),
        );
    }
    if problems.is_empty() {
        return Ok(());
    }
    match ctx.field_validation {
        FieldValidation::Strict => Err(ApiError::bad_request(format!(
            "{kind} in version {ver:?} cannot be handled as a {kind}: strict decoding error: {}",
            problems.join(", "),
            kind = info.kind,
            ver = info.version
        ))),
        FieldValidation::Warn => {
            for p in problems {
                ctx.warn(p);
            }
            schemas.prune(info.definition, obj);
            Ok(())
        }
        FieldValidation::Ignore => {
            schemas.prune(info.definition, obj);
            Ok(())
        }
    }
}

/// Check apiVersion/kind of a body against the endpoint.
fn check_type_meta(store: &Store, obj: &mut Value) -> Result<(), ApiError> {
    let info = store.info();
    let Some(m) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    };
    if let Some(av) = m.get("apiVersion").and_then(Value::as_str) {
        if !av.is_empty() && av != info.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                info.api_version()
            )));
        }
    }
    if let Some(k) = m.get("kind").and_then(Value::as_str) {
        if !k.is_empty() && k != info.kind {
            return Err(ApiError::bad_request(format!(
                "{k} in version {:?} cannot be handled as a {}: the kind in the data ({k}) does not match the expected kind ({})",
                info.version, info.kind, info.kind
            )));
        }
    }
    m.insert("apiVersion".into(), Value::String(info.api_version()));
    m.insert("kind".into(), Value::String(info.kind.to_string()));
    Ok(())
}

/// Encode an object (or list) for the client, applying as=Table/PartialObjectMetadata.
fn respond_object(
    store: &Store,
    req: &ResourceRequest,
    code: u16,
    obj: Value,
    ctx: Option<&RequestContext>,
) -> http::Response<ResBody> {
    let accept = req
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let (out, enc) = match negotiation::parse_accept(accept) {
        Ok(x) => x,
        Err(e) => return error_response(&e),
    };
    let include = IncludeObject::parse(req.query.get("includeObject").map(String::as_str));
    let v = match out {
        Output::Object => obj,
        Output::Table if obj.get("kind").and_then(Value::as_str) == Some(store.info().kind) => {
            let rv = meta::resource_version(&obj).to_string();
            table::table(
                store.strategy.as_ref(),
                &[obj],
                json!({"resourceVersion": rv}),
                include,
                true,
            )
        }
        Output::PartialMetadata
            if obj.get("kind").and_then(Value::as_str) == Some(store.info().kind) =>
        {
            table::partial_metadata(&obj)
        }
        _ => obj,
    };
    let (bytes, ct) = negotiation::encode(&v, enc);
    let mut b = http::Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, ct);
    if let Some(ctx) = ctx {
        for w in ctx.take_warnings() {
            let hv = format!("299 - {}", serde_json::to_string(&w).unwrap_or_default());
            b = b.header("Warning", hv);
        }
    }
    b.body(super::full(bytes))
        .unwrap_or_else(|_| error_response(&ApiError::internal("response")))
}

fn list_meta(rv: i64, cont: Option<String>, remaining: Option<i64>) -> Value {
    let mut m = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        m["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        m["remainingItemCount"] = json!(r);
    }
    m
}

fn respond_list(
    store: &Store,
    req: &ResourceRequest,
    items: Vec<Value>,
    lm: Value,
) -> http::Response<ResBody> {
    let accept = req
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let (out, enc) = match negotiation::parse_accept(accept) {
        Ok(x) => x,
        Err(e) => return error_response(&e),
    };
    let include = IncludeObject::parse(req.query.get("includeObject").map(String::as_str));
    let v = match out {
        Output::Object => json!({
            "kind": store.info().list_kind(),
            "apiVersion": store.info().api_version(),
            "metadata": lm,
            "items": items,
        }),
        Output::Table => table::table(store.strategy.as_ref(), &items, lm, include, true),
        Output::PartialMetadata => table::partial_metadata_list(&items, lm),
    };
    let (bytes, ct) = negotiation::encode(&v, enc);
    http::Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, ct)
        .body(super::full(bytes))
        .unwrap_or_else(|_| error_response(&ApiError::internal("response")))
}

fn decode(req: &ResourceRequest) -> Result<Value, ApiError> {
    let ct = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    negotiation::decode_body(ct, &req.body)
}

fn delete_options(req: &ResourceRequest) -> Result<DeleteOptions, ApiError> {
    let mut o = DeleteOptions::default();
    if !req.body.iter().all(|b| b.is_ascii_whitespace()) {
        let v = decode(req)?;
        o.grace_period_seconds = v.get("gracePeriodSeconds").and_then(Value::as_i64);
        o.propagation_policy = v
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string);
        o.orphan_dependents = v.get("orphanDependents").and_then(Value::as_bool);
        o.precondition_uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        o.precondition_resource_version = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    if let Some(g) = req.query.get("gracePeriodSeconds") {
        o.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        );
    }
    if let Some(p) = req.query.get("propagationPolicy") {
        o.propagation_policy = Some(p.clone());
    }
    if let Some(p) = req.query.get("orphanDependents") {
        o.orphan_dependents = Some(p == "true");
    }
    Ok(o)
}

fn body_dry_run(req: &ResourceRequest) -> bool {
    if req.body.is_empty() {
        return false;
    }
    serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|v| v.get("dryRun").cloned())
        .and_then(|d| d.as_array().cloned())
        .is_some_and(|d| d.iter().any(|x| x == "All"))
}

/// Supported patch content types.
fn patch_type(req: &ResourceRequest) -> Result<&'static str, ApiError> {
    let ct = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "application/json-patch+json" => Ok("json"),
        "application/merge-patch+json" => Ok("merge"),
        "application/strategic-merge-patch+json" => Ok("strategic"),
        other => Err(ApiError::unsupported_media_type(
            other,
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ],
        )),
    }
}

fn apply_patch(
    store: &Store,
    kind: &str,
    old: &Value,
    patch_body: &Value,
) -> Result<Value, ApiError> {
    match kind {
        "json" => patch::try_apply_json_patch(old, patch_body).map_err(|e| match e {
            patch::JsonPatchError::Decode(m) => ApiError::bad_request(m),
            patch::JsonPatchError::TooManyOperations(_) => {
                ApiError::request_entity_too_large(MAX_REQUEST_BODY_BYTES)
            }
            // Upstream answers a failed operation (e.g. a failing "test") with its
            // generic 422 message; the operation's error is logged, not sent.
            patch::JsonPatchError::Apply(m) => {
                tracing::debug!(error = %m, "json patch did not apply");
                ApiError::new(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                )
            }
        }),
        "merge" => patch::apply_merge_patch(old, patch_body).map_err(ApiError::bad_request),
        _ => {
            let schemas = Schemas::embedded();
            let pm = schemas.patch_meta(store.info().definition);
            patch::apply_strategic_merge_patch(old, patch_body, &pm).map_err(|e| {
                if e.contains("invalid JSON document") || e.contains("lists of lists") {
                    ApiError::bad_request(e)
                } else {
                    ApiError::invalid(
                        store.info().kind,
                        store.info().group,
                        "",
                        &[apimachinery::FieldError::invalid("patch", Value::Null, e)],
                    )
                }
            })
        }
    }
}

/// Scale subresource: autoscaling/v1 Scale over spec.replicas.
fn to_scale(obj: &Value) -> Value {
    let sel = obj
        .pointer("/spec/selector")
        .map(|s| {
            if s.get("matchLabels").is_some() || s.get("matchExpressions").is_some() {
                Selector::from_label_selector(s)
                    .map(|x| x.to_string())
                    .unwrap_or_default()
            } else if let Some(m) = s.as_object() {
                // replicationcontrollers: a plain map selector
                let mut parts: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                parts.sort();
                parts.join(",")
            } else {
                String::new()
            }
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta::name(obj),
            "namespace": meta::namespace(obj),
            "uid": meta::uid(obj),
            "resourceVersion": meta::resource_version(obj),
            "creationTimestamp": obj.pointer("/metadata/creationTimestamp").cloned().unwrap_or(Value::Null),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {"replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0), "selector": sel},
    })
}

fn subresource_supported(store: &Store, sub: &str) -> bool {
    store.info().subresources.iter().any(|s| s.name() == sub)
}

/// Serve a resource request.
pub async fn serve_resource(
    state: &Arc<ApiState>,
    req: ResourceRequest,
) -> http::Response<ResBody> {
    match serve_resource_inner(state, &req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn serve_resource_inner(
    state: &Arc<ApiState>,
    req: &ResourceRequest,
) -> Result<http::Response<ResBody>, ApiError> {
    let info = &req.info;
    // POST /api/v1/namespaces/{ns}/bindings is pods/binding by body name.
    let (resource, name, sub) =
        if info.resource == "bindings" && info.api_group.is_empty() && info.verb == "create" {
            let body = decode(req)?;
            (
                "pods".to_string(),
                meta::name(&body).to_string(),
                "binding".to_string(),
            )
        } else {
            (
                info.resource.clone(),
                info.name.clone(),
                info.subresource.clone(),
            )
        };
    let store = state
        .registry
        .get(&info.api_group, &info.api_version, &resource)
        .ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })?;
    let ri = store.info();
    if !sub.is_empty() && !subresource_supported(&store, &sub) {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    if !ri.namespaced && !info.namespace.is_empty() && resource != "namespaces" {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let ns = info.namespace.as_str();
    if ri.read_only && !matches!(info.verb.as_str(), "get" | "list" | "watch") {
        return Err(ApiError::method_not_supported(
            &ri.group_resource(),
            &info.verb,
        ));
    }
    if ri.read_only {
        return crate::componentstatus::serve(state, &store, req).await;
    }
    // Writes to a single object need its name: PUT/PATCH on a collection is 405.
    if name.is_empty() && matches!(info.verb.as_str(), "update" | "patch") {
        return Err(ApiError::method_not_supported(
            &ri.group_resource(),
            &info.verb,
        ));
    }
    let mut ctx = request_context(req.user.clone(), &req.query, &req.headers)?;
    match (info.verb.as_str(), sub.as_str()) {
        ("get", "") | ("get", "status") => {
            let obj = store.get(ns, &name).await?;
            Ok(respond_object(&store, req, 200, obj, None))
        }
        ("get", "scale") => {
            let obj = store.get(ns, &name).await?;
            Ok(super::json_response(200, &to_scale(&obj)))
        }
        ("list", "") => {
            let opts = list_options(&req.query)?;
            let r = store.list(ns, &opts).await?;
            let lm = list_meta(r.resource_version, r.continue_token, r.remaining_item_count);
            Ok(respond_list(&store, req, r.items, lm))
        }
        ("watch", "") => {
            let opts = list_options(&req.query)?;
            super::watch::serve_watch(state, store.clone(), ns, opts, req).await
        }
        ("create", "") => {
            let mut obj = decode(req)?;
            check_type_meta(&store, &mut obj)?;
            check_fields(&store, &ctx, Some(&req.body), &mut obj)?;
            if !name.is_empty() {
                return Err(ApiError::method_not_supported(
                    &ri.group_resource(),
                    "create",
                ));
            }
            if ri.namespaced {
                let body_ns = meta::namespace(&obj);
                if !body_ns.is_empty() && body_ns != ns {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
            }
            let created = store.create(&ctx, ns, obj).await?;
            Ok(respond_object(&store, req, 201, created, Some(&ctx)))
        }
        ("create", "binding") => {
            let body = decode(req)?;
            crate::subresources::bind_pod(&store, &ctx, ns, &name, &body).await?;
            Ok(super::json_response(201, &success_status(None)))
        }
        ("create", "token") => {
            let body = decode(req)?;
            let out = crate::serviceaccount::token::create_token(
                &state.registry,
                &state.service_accounts,
                &ctx,
                ns,
                &name,
                &body,
            )
            .await?;
            Ok(respond_object(&store, req, 201, out, Some(&ctx)))
        }
        ("create", "eviction") => {
            let body = decode(req)?;
            let mut opts = DeleteOptions::default();
            if let Some(d) = body.get("deleteOptions") {
                opts.grace_period_seconds = d.get("gracePeriodSeconds").and_then(Value::as_i64);
                opts.precondition_uid = d
                    .pointer("/preconditions/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                opts.precondition_resource_version = d
                    .pointer("/preconditions/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            store.delete(&ctx, ns, &name, &opts).await?;
            Ok(super::json_response(201, &success_status(None)))
        }
        ("update", "") | ("update", "status") | ("update", "finalize") => {
            let mut obj = decode(req)?;
            check_type_meta(&store, &mut obj)?;
            check_fields(&store, &ctx, Some(&req.body), &mut obj)?;
            let (out, created) = store.update(&ctx, ns, &name, &sub, obj).await?;
            Ok(respond_object(
                &store,
                req,
                if created { 201 } else { 200 },
                out,
                Some(&ctx),
            ))
        }
        ("update", "scale") | ("patch", "scale") => {
            let body = decode(req)?;
            let kind = if info.verb == "patch" {
                Some(patch_type(req)?)
            } else {
                None
            };
            let (out, _) = store
                .guaranteed_update(&ctx, ns, &name, "", |old| {
                    let old =
                        old.ok_or_else(|| ApiError::not_found(&ri.group_resource(), &name))?;
                    let scale = match kind {
                        Some(k) => apply_patch_plain(k, &to_scale(old), &body)?,
                        None => body.clone(),
                    };
                    let replicas = scale
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    let mut new = old.clone();
                    let rv = scale
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    meta::set_resource_version(&mut new, rv);
                    new["spec"]["replicas"] = json!(replicas);
                    Ok(new)
                })
                .await?;
            Ok(super::json_response(200, &to_scale(&out)))
        }
        ("patch", "") | ("patch", "status") | ("patch", "finalize") => {
            let kind = patch_type(req)?;
            let patch_body = decode(req)?;
            if kind != "json" && !patch_body.is_object() {
                return Err(ApiError::bad_request(
                    "the body of the patch must be a JSON object",
                ));
            }
            let (out, _) = store
                .guaranteed_update(&ctx, ns, &name, &sub, |old| {
                    let old =
                        old.ok_or_else(|| ApiError::not_found(&ri.group_resource(), &name))?;
                    let mut base = old.clone();
                    // The current resourceVersion is the base; a patch may pin one.
                    if let Some(m) = base.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("resourceVersion");
                    }
                    let mut new = apply_patch(&store, kind, &base, &patch_body)?;
                    check_type_meta(&store, &mut new)?;
                    check_fields(&store, &ctx, None, &mut new)?;
                    Ok(new)
                })
                .await?;
            Ok(respond_object(&store, req, 200, out, Some(&ctx)))
        }
        ("delete", "") => {
            if body_dry_run(req) {
                ctx.dry_run = true;
            }
            let opts = delete_options(req)?;
            let (obj, gone) = store.delete(&ctx, ns, &name, &opts).await?;
            if gone && store.strategy.default_grace_period(&obj).is_none() {
                let mut details = json!({"name": name, "kind": ri.plural, "uid": meta::uid(&obj)});
                if !ri.group.is_empty() {
                    details["group"] = json!(ri.group);
                }
                Ok(super::json_response(200, &success_status(Some(details))))
            } else {
                Ok(respond_object(&store, req, 200, obj, Some(&ctx)))
            }
        }
        ("deletecollection", "") => {
            if body_dry_run(req) {
                ctx.dry_run = true;
            }
            let lopts = list_options(&req.query)?;
            let dopts = delete_options(req)?;
            let items = store.delete_collection(&ctx, ns, &lopts, &dopts).await?;
            let lm = json!({});
            Ok(respond_list(&store, req, items, lm))
        }
        (verb, _) => Err(ApiError::method_not_supported(&ri.group_resource(), verb)),
    }
}

fn apply_patch_plain(kind: &str, old: &Value, body: &Value) -> Result<Value, ApiError> {
    match kind {
        "json" => patch::apply_json_patch(old, body),
        _ => patch::apply_merge_patch(old, body),
    }
    .map_err(ApiError::bad_request)
}
