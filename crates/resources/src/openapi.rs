//! OpenAPI v2/v3 documents built from the registrations and api-schemas/.
//!
//! * [`openapi_v2`]: the swagger 2.0 document of `/openapi/v2` (all
//!   definitions, every resource's paths, shared query parameters under
//!   `parameters`).
//! * [`openapi_v3_paths`]: the `/openapi/v3` index, one entry per
//!   group/version (plus `api`, `apis`, `apis/<group>` and `version`), each
//!   with a `?hash=` of its document.
//! * [`openapi_v3_group_version`]: one OpenAPI 3.0 document, with only the
//!   schemas its paths reach under `components.schemas`.
//!
//! What kubectl 1.32 relies on (and the tests check):
//! * field validation support: for the object's GVK, the PATCH operation of
//!   every path carrying that `x-kubernetes-group-version-kind` (an object)
//!   lists an inline parameter named `fieldValidation` (v3 GV document, with a
//!   v2 fallback where `$ref`s to `#/parameters/..` are resolved);
//! * `kubectl apply`'s strategic merge patch: the PATCH request body accepts
//!   `application/strategic-merge-patch+json` and the component schema with
//!   `x-kubernetes-group-version-kind` (a list) carries the
//!   `x-kubernetes-patch-*` extensions;
//! * `kubectl explain`: the GVK is read from the get/post/put/patch/delete
//!   operations of `/<prefix>/<resource>`, `.../{name}` or the namespaced
//!   equivalents, then the component schema whose GVK list contains it is walked
//!   through `properties`, `items`, `additionalProperties`, `$ref` and `allOf`.

use std::collections::{BTreeMap, BTreeSet};

use apimachinery::schema::Schemas;
use serde_json::{json, Map, Value};

use crate::{ResourceInfo, Subresource};

/// `info.version` of every document.
pub const API_VERSION_STRING: &str = "v1.33.0";

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";

const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];
const PRODUCES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
const PRODUCES_WATCH: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
];
const PRODUCES_DISCOVERY: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

/// Query and path parameters: (name, in, type, description).
const PARAMETERS: &[(&str, &str, &str, &str)] = &[
    ("allowWatchBookmarks", "query", "boolean", "Ask for BOOKMARK watch events. Servers may ignore the request; clients must not rely on receiving bookmarks. Ignored unless watch is set."),
    ("continue", "query", "string", "The continue token of a previous paginated list response, to fetch the next chunk of results."),
    ("dryRun", "query", "string", "When present, modifications are not persisted. The only valid value is All: all dry-run stages are processed."),
    ("fieldManager", "query", "string", "Name of the actor making the change, recorded in managedFields. Required for apply patches; at most 128 printable characters."),
    ("fieldSelector", "query", "string", "Restrict the returned objects by their fields, e.g. metadata.name=foo. Defaults to everything."),
    ("fieldValidation", "query", "string", "How unknown or duplicate fields in the request body are handled: Ignore drops them silently, Warn drops them and returns a warning for each, Strict fails the request. Defaults to Warn; Strict when the client asks for server-side validation."),
    ("force", "query", "boolean", "For apply patches: take ownership of fields other managers own instead of failing with a conflict. Must not be set for other patch types."),
    ("gracePeriodSeconds", "query", "integer", "Seconds before the object is deleted; must be non-negative, zero deletes immediately. Unset uses the resource's default."),
    ("ignoreStoreReadErrorWithClusterBreakingPotential", "query", "boolean", "Delete an object whose stored data can no longer be read or decoded. Dangerous: it bypasses finalizers and other safeguards."),
    ("labelSelector", "query", "string", "Restrict the returned objects by their labels. Defaults to everything."),
    ("limit", "query", "integer", "The maximum number of objects to return in one list response; more may be fetched with the returned continue token."),
    ("name", "path", "string", "name of the object"),
    ("namespace", "path", "string", "object name and auth scope, such as for teams and projects"),
    ("orphanDependents", "query", "boolean", "Deprecated in favour of propagationPolicy: whether dependents are orphaned (true) or deleted by the garbage collector (false)."),
    ("pretty", "query", "string", "If 'true', the output is pretty printed."),
    ("propagationPolicy", "query", "string", "Whether and how garbage collection is applied: Orphan, Background or Foreground."),
    ("resourceVersion", "query", "string", "Constrain the resource versions a list or watch may serve; see the resource version semantics of the API. Defaults to unset (most recent)."),
    ("resourceVersionMatch", "query", "string", "How resourceVersion applies to list calls: Exact or NotOlderThan. Only valid together with resourceVersion."),
    ("sendInitialEvents", "query", "boolean", "With watch=true, start the watch with synthetic ADDED events for the current state, followed by a BOOKMARK marking the end of that initial state."),
    ("timeoutSeconds", "query", "integer", "Timeout for the list or watch call, regardless of activity."),
    ("watch", "query", "boolean", "Watch for changes to the described resources and return them as a stream of add, update and remove notifications. Specify resourceVersion."),
];

const LIST_PARAMS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const CREATE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const DELETE_PARAMS: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
];
const DELETE_COLLECTION_PARAMS: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];

fn parameter(name: &str) -> (&'static str, &'static str, &'static str) {
    PARAMETERS
        .iter()
        .find(|p| p.0 == name)
        .map(|p| (p.1, p.2, p.3))
        .unwrap_or(("query", "string", ""))
}

/// The v2 global parameter key of a query/path parameter.
fn parameter_key(name: &str) -> String {
    let (location, _, _) = parameter(name);
    format!("{location}-{name}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Gvk {
    group: String,
    version: String,
    kind: String,
}

impl Gvk {
    fn new(group: &str, version: &str, kind: &str) -> Self {
        Gvk {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
        }
    }
    fn to_json(&self) -> Value {
        json!({ "group": self.group, "kind": self.kind, "version": self.version })
    }
}

#[derive(Debug, Clone)]
struct Body {
    definition: String,
    patch: bool,
    required: bool,
}

#[derive(Debug, Clone)]
struct Op {
    method: &'static str,
    action: &'static str,
    id: String,
    description: String,
    tag: String,
    gvk: Option<Gvk>,
    query: Vec<&'static str>,
    body: Option<Body>,
    /// (status code, response schema definition)
    responses: Vec<(&'static str, Option<String>)>,
    produces: &'static [&'static str],
}

#[derive(Debug, Clone, Default)]
struct PathSpec {
    /// path-level parameters ("name", "namespace", "pretty")
    params: Vec<&'static str>,
    ops: Vec<Op>,
}

/// "apps" → "Apps", "rbac.authorization.k8s.io" → "RbacAuthorization", "" → "Core".
fn group_ident(group: &str) -> String {
    if group.is_empty() {
        return "Core".to_string();
    }
    let trimmed = group.strip_suffix(".k8s.io").unwrap_or(group);
    trimmed.split(['.', '-']).map(capitalize).collect()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn gv_prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// "api/v1" / "apis/apps/v1" for a resource.
fn gv_path(group: &str, version: &str) -> String {
    gv_prefix(group, version)
        .trim_start_matches('/')
        .to_string()
}

/// The list definition name of a kind definition: io.k8s.api.core.v1.Pod → ...PodList.
fn list_definition(r: &ResourceInfo) -> String {
    match r.definition.rsplit_once('.') {
        Some((package, _)) => format!("{package}.{}", r.list_kind()),
        None => r.list_kind(),
    }
}

fn op(
    method: &'static str,
    action: &'static str,
    id: String,
    description: String,
    tag: &str,
) -> Op {
    Op {
        method,
        action,
        id,
        description,
        tag: tag.to_string(),
        gvk: None,
        query: Vec::new(),
        body: None,
        responses: Vec::new(),
        produces: PRODUCES,
    }
}

fn ok_responses(codes: &[&'static str], def: &str) -> Vec<(&'static str, Option<String>)> {
    codes.iter().map(|c| (*c, Some(def.to_string()))).collect()
}

/// Every path of one resource, keyed by URL path.
fn resource_paths(r: &ResourceInfo, out: &mut BTreeMap<String, PathSpec>) {
    let prefix = gv_prefix(r.group, r.version);
    let g = group_ident(r.group);
    let v = capitalize(r.version);
    let tag = lower_first(&format!("{g}{v}"));
    let gvk = Gvk::new(r.group, r.version, r.kind);
    let kind = r.kind;
    let list_def = list_definition(r);
    let def = r.definition;
    let (ns_seg, ns_word) = if r.namespaced {
        ("/namespaces/{namespace}", "Namespaced")
    } else {
        ("", "")
    };
    let base_params: Vec<&'static str> = if r.namespaced {
        vec!["namespace", "pretty"]
    } else {
        vec!["pretty"]
    };
    let item_params: Vec<&'static str> = if r.namespaced {
        vec!["name", "namespace", "pretty"]
    } else {
        vec!["name", "pretty"]
    };
    let with_gvk = |mut o: Op, gvk: &Gvk| {
        o.gvk = Some(gvk.clone());
        o
    };
    let list_op = |id: String| {
        let mut list = op(
            "get",
            "list",
            id,
            format!("list or watch objects of kind {kind}"),
            &tag,
        );
        list.query = LIST_PARAMS.to_vec();
        list.responses = ok_responses(&["200"], &list_def);
        list.produces = PRODUCES_WATCH;
        with_gvk(list, &gvk)
    };
    // read, then (when writable) replace and patch, of the item or of a
    // subresource: `of` is "" or "<what> of ".
    let read_replace_patch =
        |spec: &mut PathSpec, suffix: &str, of: &str, def: &str, gvk: &Gvk, writable: bool| {
            let mut read = op(
                "get",
                "get",
                format!("read{g}{v}{ns_word}{kind}{suffix}"),
                format!("read {of}the specified {kind}"),
                &tag,
            );
            read.responses = ok_responses(&["200"], def);
            spec.ops.push(with_gvk(read, gvk));
            if writable {
                spec.ops.push(with_gvk(
                    replace_op(
                        &format!("replace{g}{v}{ns_word}{kind}{suffix}"),
                        &format!("replace {of}the specified {kind}"),
                        def,
                        &tag,
                    ),
                    gvk,
                ));
                spec.ops.push(with_gvk(
                    patch_op(
                        &format!("patch{g}{v}{ns_word}{kind}{suffix}"),
                        &format!("partially update {of}the specified {kind}"),
                        def,
                        &tag,
                    ),
                    gvk,
                ));
            }
        };

    // Collection: list, create, deletecollection.
    let collection = format!("{prefix}{ns_seg}/{}", r.plural);
    let mut spec = PathSpec {
        params: base_params.clone(),
        ops: Vec::new(),
    };
    spec.ops.push(list_op(format!("list{g}{v}{ns_word}{kind}")));
    if !r.read_only {
        spec.ops.push(with_gvk(
            create_op(
                &format!("create{g}{v}{ns_word}{kind}"),
                &format!("create a {kind}"),
                def,
                &tag,
            ),
            &gvk,
        ));
        let mut dc = op(
            "delete",
            "deletecollection",
            format!("delete{g}{v}Collection{ns_word}{kind}"),
            format!("delete collection of {kind}"),
            &tag,
        );
        dc.query = DELETE_COLLECTION_PARAMS.to_vec();
        dc.body = Some(Body {
            definition: DELETE_OPTIONS.to_string(),
            patch: false,
            required: false,
        });
        dc.responses = ok_responses(&["200"], STATUS);
        spec.ops.push(with_gvk(dc, &gvk));
    }
    out.insert(collection, spec);

    // Item: read, replace, patch, delete.
    let item = format!("{prefix}{ns_seg}/{}/{{name}}", r.plural);
    let mut spec = PathSpec {
        params: item_params.clone(),
        ops: Vec::new(),
    };
    read_replace_patch(&mut spec, "", "", def, &gvk, !r.read_only);
    if !r.read_only {
        let mut del = op(
            "delete",
            "delete",
            format!("delete{g}{v}{ns_word}{kind}"),
            format!("delete a {kind}"),
            &tag,
        );
        del.query = DELETE_PARAMS.to_vec();
        del.body = Some(Body {
            definition: DELETE_OPTIONS.to_string(),
            patch: false,
            required: false,
        });
        del.responses = ok_responses(&["200", "202"], STATUS);
        spec.ops.push(with_gvk(del, &gvk));
    }
    out.insert(item.clone(), spec);

    // All namespaces.
    if r.namespaced {
        let mut spec = PathSpec {
            params: vec!["pretty"],
            ops: Vec::new(),
        };
        spec.ops
            .push(list_op(format!("list{g}{v}{kind}ForAllNamespaces")));
        out.insert(format!("{prefix}/{}", r.plural), spec);
    }

    // Deprecated watch endpoints.
    let watch_op = |id: String, action: &'static str, description: String| {
        let mut w = op("get", action, id, description, &tag);
        w.query = LIST_PARAMS.to_vec();
        w.responses = ok_responses(&["200"], WATCH_EVENT);
        w.produces = PRODUCES_WATCH;
        w.gvk = Some(gvk.clone());
        w
    };
    out.insert(
        format!("{prefix}/watch{ns_seg}/{}", r.plural),
        PathSpec {
            params: base_params.clone(),
            ops: vec![watch_op(
                format!("watch{g}{v}{ns_word}{kind}List"),
                "watchlist",
                format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
            )],
        },
    );
    out.insert(
        format!("{prefix}/watch{ns_seg}/{}/{{name}}", r.plural),
        PathSpec {
            params: item_params.clone(),
            ops: vec![watch_op(
                format!("watch{g}{v}{ns_word}{kind}"),
                "watch",
                format!("watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."),
            )],
        },
    );
    if r.namespaced {
        out.insert(
            format!("{prefix}/watch/{}", r.plural),
            PathSpec {
                params: vec!["pretty"],
                ops: vec![watch_op(
                    format!("watch{g}{v}{kind}ListForAllNamespaces"),
                    "watchlist",
                    format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
                )],
            },
        );
    }

    // Subresources.
    for sub in r.subresources {
        let suffix = capitalize(sub.name());
        let path = format!("{item}/{}", sub.name());
        let mut spec = PathSpec {
            params: item_params.clone(),
            ops: Vec::new(),
        };
        match sub {
            Subresource::Status | Subresource::EphemeralContainers => {
                let what = if *sub == Subresource::Status {
                    "status"
                } else {
                    "ephemeralcontainers"
                };
                let of = format!("{what} of ");
                read_replace_patch(&mut spec, &suffix, &of, def, &gvk, !r.read_only);
            }
            Subresource::Scale => {
                let scale = "io.k8s.api.autoscaling.v1.Scale";
                let scale_gvk = Gvk::new("autoscaling", "v1", "Scale");
                read_replace_patch(&mut spec, "Scale", "scale of ", scale, &scale_gvk, true);
            }
            Subresource::Binding | Subresource::Eviction | Subresource::Token => {
                let (sub_def, sub_gvk) = if *sub == Subresource::Binding {
                    ("io.k8s.api.core.v1.Binding", Gvk::new("", "v1", "Binding"))
                } else if *sub == Subresource::Token {
                    (
                        "io.k8s.api.authentication.v1.TokenRequest",
                        Gvk::new("authentication.k8s.io", "v1", "TokenRequest"),
                    )
                } else {
                    (
                        "io.k8s.api.policy.v1.Eviction",
                        Gvk::new("policy", "v1", "Eviction"),
                    )
                };
                spec.ops.push(with_gvk(
                    create_op(
                        &format!("create{g}{v}{ns_word}{kind}{suffix}"),
                        &format!("create {} of a {kind}", sub_gvk.kind),
                        sub_def,
                        &tag,
                    ),
                    &sub_gvk,
                ));
            }
            Subresource::Finalize => {
                spec.ops.push(with_gvk(
                    replace_op(
                        &format!("replace{g}{v}{ns_word}{kind}Finalize"),
                        &format!("replace finalize of the specified {kind}"),
                        def,
                        &tag,
                    ),
                    &gvk,
                ));
            }
            // Streams relayed to the kubelet: served, but not described
            // here (kubectl does not read their OpenAPI).
            Subresource::Log
            | Subresource::Exec
            | Subresource::Attach
            | Subresource::PortForward
            | Subresource::Proxy => continue,
        }
        out.insert(path, spec);
    }
}

fn create_op(id: &str, description: &str, def: &str, tag: &str) -> Op {
    let mut o = op("post", "post", id.to_string(), description.to_string(), tag);
    o.query = CREATE_PARAMS.to_vec();
    o.body = Some(Body {
        definition: def.to_string(),
        patch: false,
        required: true,
    });
    o.responses = ok_responses(&["200", "201", "202"], def);
    o
}

fn replace_op(id: &str, description: &str, def: &str, tag: &str) -> Op {
    let mut o = op("put", "put", id.to_string(), description.to_string(), tag);
    o.query = CREATE_PARAMS.to_vec();
    o.body = Some(Body {
        definition: def.to_string(),
        patch: false,
        required: true,
    });
    o.responses = ok_responses(&["200", "201"], def);
    o
}

fn patch_op(id: &str, description: &str, def: &str, tag: &str) -> Op {
    let mut o = op(
        "patch",
        "patch",
        id.to_string(),
        description.to_string(),
        tag,
    );
    o.query = PATCH_PARAMS.to_vec();
    o.body = Some(Body {
        definition: PATCH.to_string(),
        patch: true,
        required: true,
    });
    o.responses = ok_responses(&["200", "201"], def);
    o
}

fn discovery_op(id: &str, description: &str, tag: &str, def: &str) -> PathSpec {
    let mut o = op("get", "", id.to_string(), description.to_string(), tag);
    o.responses = ok_responses(&["200"], def);
    o.produces = PRODUCES_DISCOVERY;
    PathSpec {
        params: Vec::new(),
        ops: vec![o],
    }
}

/// The discovery path of a v3 document key ("api", "apis", "apis/apps",
/// "api/v1", "apis/apps/v1", "version").
fn discovery_paths(key: &str, out: &mut BTreeMap<String, PathSpec>) {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        ["api"] => {
            out.insert(
                "/api/".into(),
                discovery_op(
                    "getCoreAPIVersions",
                    "get available API versions",
                    "core",
                    &format!("{META}.APIVersions"),
                ),
            );
        }
        ["apis"] => {
            out.insert(
                "/apis/".into(),
                discovery_op(
                    "getAPIVersions",
                    "get available API versions",
                    "apis",
                    &format!("{META}.APIGroupList"),
                ),
            );
        }
        ["version"] => {
            out.insert(
                "/version/".into(),
                discovery_op(
                    "getCodeVersion",
                    "get the version information for this server",
                    "version",
                    "io.k8s.apimachinery.pkg.version.Info",
                ),
            );
        }
        ["apis", group] => {
            let g = group_ident(group);
            out.insert(
                format!("/apis/{group}/"),
                discovery_op(
                    &format!("get{g}APIGroup"),
                    "get information of a group",
                    &lower_first(&g),
                    &format!("{META}.APIGroup"),
                ),
            );
        }
        ["api", version] => {
            let v = capitalize(version);
            out.insert(
                format!("/api/{version}/"),
                discovery_op(
                    &format!("getCore{v}APIResources"),
                    "get available resources",
                    &format!("core{v}"),
                    &format!("{META}.APIResourceList"),
                ),
            );
        }
        ["apis", group, version] => {
            let g = group_ident(group);
            let v = capitalize(version);
            out.insert(
                format!("/apis/{group}/{version}/"),
                discovery_op(
                    &format!("get{g}{v}APIResources"),
                    "get available resources",
                    &lower_first(&format!("{g}{v}")),
                    &format!("{META}.APIResourceList"),
                ),
            );
        }
        _ => {}
    }
}

/// Every v3 document key the registrations give, sorted.
fn v3_keys(resources: &[&ResourceInfo]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    if !resources.is_empty() {
        keys.insert("version".to_string());
        keys.insert("api".to_string());
        keys.insert("apis".to_string());
    }
    for r in resources {
        keys.insert(gv_path(r.group, r.version));
        if !r.group.is_empty() {
            keys.insert(format!("apis/{}", r.group));
        }
    }
    keys
}

/// The paths of one v3 document key.
fn paths_for_key(resources: &[&ResourceInfo], key: &str) -> BTreeMap<String, PathSpec> {
    let mut out = BTreeMap::new();
    discovery_paths(key, &mut out);
    for r in resources {
        if gv_path(r.group, r.version) == key {
            resource_paths(r, &mut out);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// v2
// ---------------------------------------------------------------------------

fn schema_ref_v2(def: &str) -> Value {
    json!({ "$ref": format!("#/definitions/{def}") })
}

fn response_description(code: &str) -> &'static str {
    match code {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        _ => "Unauthorized",
    }
}

fn op_v2(o: &Op) -> Value {
    let mut m = Map::new();
    let consumes: Vec<&str> = if o.body.as_ref().is_some_and(|b| b.patch) {
        PATCH_TYPES.to_vec()
    } else {
        vec!["*/*"]
    };
    m.insert("consumes".into(), json!(consumes));
    m.insert("description".into(), json!(o.description));
    m.insert("operationId".into(), json!(o.id));
    let mut params = Vec::new();
    if let Some(b) = &o.body {
        params.push(
            json!({ "in": "body", "name": "body", "required": b.required, "schema": schema_ref_v2(&b.definition) }),
        );
    }
    for q in &o.query {
        params.push(json!({ "$ref": format!("#/parameters/{}", parameter_key(q)) }));
    }
    if !params.is_empty() {
        m.insert("parameters".into(), Value::Array(params));
    }
    m.insert("produces".into(), json!(o.produces));
    let responses = op_responses(o, |code, def| {
        let mut r = Map::new();
        r.insert("description".into(), json!(response_description(code)));
        if let Some(d) = def {
            r.insert("schema".into(), schema_ref_v2(d));
        }
        r
    });
    m.insert("responses".into(), responses);
    m.insert("schemes".into(), json!(["https"]));
    insert_op_extensions(&mut m, o);
    Value::Object(m)
}

/// An operation's responses, each code's entry built by `entry`, then 401.
fn op_responses(o: &Op, entry: impl Fn(&str, Option<&String>) -> Map<String, Value>) -> Value {
    let mut responses = Map::new();
    for (code, def) in &o.responses {
        responses.insert(
            (*code).to_string(),
            Value::Object(entry(code, def.as_ref())),
        );
    }
    responses.insert("401".into(), json!({ "description": "Unauthorized" }));
    Value::Object(responses)
}

/// The tags and `x-kubernetes-*` fields that end every operation.
fn insert_op_extensions(m: &mut Map<String, Value>, o: &Op) {
    m.insert("tags".into(), json!([o.tag]));
    if !o.action.is_empty() {
        m.insert("x-kubernetes-action".into(), json!(o.action));
    }
    if let Some(g) = &o.gvk {
        m.insert("x-kubernetes-group-version-kind".into(), g.to_json());
    }
}

fn path_item_v2(spec: &PathSpec) -> Value {
    let mut m = Map::new();
    for o in sorted_ops(spec) {
        m.insert(o.method.into(), op_v2(o));
    }
    if !spec.params.is_empty() {
        let params: Vec<Value> = spec
            .params
            .iter()
            .map(|p| json!({ "$ref": format!("#/parameters/{}", parameter_key(p)) }))
            .collect();
        m.insert("parameters".into(), Value::Array(params));
    }
    Value::Object(m)
}

/// Operations in a fixed method order.
fn sorted_ops(spec: &PathSpec) -> Vec<&Op> {
    let order = ["delete", "get", "patch", "post", "put"];
    let mut ops: Vec<&Op> = spec.ops.iter().collect();
    ops.sort_by_key(|o| {
        order
            .iter()
            .position(|m| *m == o.method)
            .unwrap_or(order.len())
    });
    ops
}

fn v2_parameters() -> Value {
    let mut m = Map::new();
    let mut entries: Vec<(String, Value)> = PARAMETERS
        .iter()
        .map(|(name, location, ty, description)| {
            let mut p = Map::new();
            p.insert("description".into(), json!(description));
            p.insert("in".into(), json!(location));
            p.insert("name".into(), json!(name));
            if *location == "path" {
                p.insert("required".into(), json!(true));
            }
            p.insert("type".into(), json!(ty));
            p.insert("uniqueItems".into(), json!(true));
            (parameter_key(name), Value::Object(p))
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in entries {
        m.insert(k, v);
    }
    Value::Object(m)
}

/// The swagger 2.0 document served at `/openapi/v2` (JSON).
pub fn openapi_v2(resources: &[&ResourceInfo]) -> Value {
    let mut paths = BTreeMap::new();
    for key in v3_keys(resources) {
        paths.append(&mut paths_for_key(resources, &key));
    }
    let mut path_map = Map::new();
    for (p, spec) in &paths {
        path_map.insert(p.clone(), path_item_v2(spec));
    }
    json!({
        "definitions": Value::Object(Schemas::embedded().definitions().clone()),
        "info": { "title": "Kubernetes", "version": API_VERSION_STRING },
        "parameters": v2_parameters(),
        "paths": Value::Object(path_map),
        "security": [{ "BearerToken": [] }],
        "securityDefinitions": {
            "BearerToken": { "description": "Bearer Token authentication", "in": "header", "name": "authorization", "type": "apiKey" },
        },
        "swagger": "2.0",
    })
}

// ---------------------------------------------------------------------------
// v3
// ---------------------------------------------------------------------------

fn schema_ref_v3(def: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{def}") })
}

fn parameter_v3(name: &str) -> Value {
    let (location, ty, description) = parameter(name);
    let mut p = Map::new();
    p.insert("description".into(), json!(description));
    p.insert("in".into(), json!(location));
    p.insert("name".into(), json!(name));
    if location == "path" {
        p.insert("required".into(), json!(true));
    }
    p.insert("schema".into(), json!({ "type": ty, "uniqueItems": true }));
    Value::Object(p)
}

fn op_v3(o: &Op) -> Value {
    let mut m = Map::new();
    m.insert("description".into(), json!(o.description));
    m.insert("operationId".into(), json!(o.id));
    if !o.query.is_empty() {
        m.insert(
            "parameters".into(),
            Value::Array(o.query.iter().map(|q| parameter_v3(q)).collect()),
        );
    }
    if let Some(b) = &o.body {
        let types: Vec<&str> = if b.patch {
            PATCH_TYPES.to_vec()
        } else {
            vec!["*/*"]
        };
        let mut content = Map::new();
        for t in types {
            content.insert(
                t.to_string(),
                json!({ "schema": schema_ref_v3(&b.definition) }),
            );
        }
        let mut body = Map::new();
        body.insert("content".into(), Value::Object(content));
        if b.required {
            body.insert("required".into(), json!(true));
        }
        m.insert("requestBody".into(), Value::Object(body));
    }
    let responses = op_responses(o, |code, def| {
        let mut r = Map::new();
        if let Some(d) = def {
            let mut content = Map::new();
            for t in o.produces {
                content.insert((*t).to_string(), json!({ "schema": schema_ref_v3(d) }));
            }
            r.insert("content".into(), Value::Object(content));
        }
        r.insert("description".into(), json!(response_description(code)));
        r
    });
    m.insert("responses".into(), responses);
    insert_op_extensions(&mut m, o);
    Value::Object(m)
}

fn path_item_v3(spec: &PathSpec) -> Value {
    let mut m = Map::new();
    for o in sorted_ops(spec) {
        m.insert(o.method.into(), op_v3(o));
    }
    if !spec.params.is_empty() {
        m.insert(
            "parameters".into(),
            Value::Array(spec.params.iter().map(|p| parameter_v3(p)).collect()),
        );
    }
    Value::Object(m)
}

/// A v2 schema in OpenAPI 3.0 form: refs into components, `$ref`s with
/// siblings wrapped in `allOf`, and int-or-string / Quantity as `oneOf`.
fn schema_to_v3(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let reference = o.get("$ref").and_then(Value::as_str).map(|r| {
                let name = r.rsplit('/').next().unwrap_or(r);
                schema_ref_v3(name)
            });
            let mut m = Map::new();
            for (k, child) in o {
                if k == "$ref" && reference.is_some() {
                    continue;
                }
                // enum/default/example hold data, not schemas.
                let converted = if k == "enum" || k == "default" || k == "example" {
                    child.clone()
                } else {
                    schema_to_v3(child)
                };
                m.insert(k.clone(), converted);
            }
            match reference {
                Some(r) if m.is_empty() => r,
                Some(r) => {
                    m.insert("allOf".into(), json!([r]));
                    Value::Object(m)
                }
                None => Value::Object(m),
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(schema_to_v3).collect()),
        other => other.clone(),
    }
}

fn definition_to_v3(name: &str, def: &Value) -> Value {
    let description = def.get("description").cloned();
    let special = match name {
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => Some(
            json!({ "format": "int-or-string", "oneOf": [{ "type": "integer" }, { "type": "string" }] }),
        ),
        "io.k8s.apimachinery.pkg.api.resource.Quantity" => {
            Some(json!({ "oneOf": [{ "type": "string" }, { "type": "number" }] }))
        }
        _ => None,
    };
    match special {
        Some(mut s) => {
            if let (Some(d), Some(o)) = (description, s.as_object_mut()) {
                o.insert("description".into(), d);
            }
            s
        }
        None => schema_to_v3(def),
    }
}

/// Definition names reachable from `roots` through `$ref`s.
fn reachable(schemas: &Schemas, roots: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                    out.push(r.rsplit('/').next().unwrap_or(r).to_string());
                }
                for (k, child) in o {
                    if k != "enum" && k != "default" && k != "example" {
                        refs(child, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
            _ => {}
        }
    }
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots.into_iter().collect();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(def) = schemas.get(&name) {
            refs(def, &mut todo);
        }
    }
    seen
}

/// The OpenAPI 3.0 document of one `/openapi/v3/<key>` entry: "api/v1",
/// "apis/apps/v1", or the discovery documents "api", "apis", "apis/<group>",
/// "version". `None` for keys the registrations do not serve.
pub fn openapi_v3_group_version(resources: &[&ResourceInfo], gv_path: &str) -> Option<Value> {
    let key = gv_path.trim_matches('/');
    if !v3_keys(resources).contains(key) {
        return None;
    }
    Some(v3_document(resources, key))
}

fn v3_document(resources: &[&ResourceInfo], key: &str) -> Value {
    let schemas = Schemas::embedded();
    let paths = paths_for_key(resources, key);
    let mut roots = Vec::new();
    for spec in paths.values() {
        for o in &spec.ops {
            if let Some(b) = &o.body {
                roots.push(b.definition.clone());
            }
            roots.extend(o.responses.iter().filter_map(|(_, d)| d.clone()));
        }
    }
    let mut components = Map::new();
    for name in reachable(schemas, roots) {
        if let Some(def) = schemas.get(&name) {
            components.insert(name.clone(), definition_to_v3(&name, def));
        }
    }
    let mut path_map = Map::new();
    for (p, spec) in &paths {
        path_map.insert(p.clone(), path_item_v3(spec));
    }
    json!({
        "components": {
            "schemas": Value::Object(components),
            "securitySchemes": {
                "BearerToken": { "description": "Bearer Token authentication", "in": "header", "name": "authorization", "type": "apiKey" },
            },
        },
        "info": { "title": "Kubernetes", "version": API_VERSION_STRING },
        "openapi": "3.0.0",
        "paths": Value::Object(path_map),
        "security": [{ "BearerToken": [] }],
    })
}

/// Every v3 document, keyed like the index ("api/v1", "apis/apps/v1", ...).
/// Handlers should build this once and cache it with the bytes they serve.
pub fn openapi_v3_documents(resources: &[&ResourceInfo]) -> BTreeMap<String, Value> {
    v3_keys(resources)
        .into_iter()
        .map(|k| {
            let doc = v3_document(resources, &k);
            (k, doc)
        })
        .collect()
}

/// FNV-1a 64 of `serde_json::to_vec(doc)`, as 16 upper-case hex digits: the
/// `hash` query parameter (and a suitable ETag) of a v3 document.
pub fn document_hash(doc: &Value) -> String {
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// The `/openapi/v3` index:
/// `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=..."}, ...}}`.
pub fn openapi_v3_paths(resources: &[&ResourceInfo]) -> Value {
    let mut paths = Map::new();
    for (key, doc) in openapi_v3_documents(resources) {
        let url = format!("/openapi/v3/{key}?hash={}", document_hash(&doc));
        paths.insert(key, json!({ "serverRelativeURL": url }));
    }
    json!({ "paths": Value::Object(paths) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::DEPLOYMENTS;

    static PODS: ResourceInfo = ResourceInfo {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        short_names: &["po"],
        categories: &["all"],
        namespaced: true,
        definition: "io.k8s.api.core.v1.Pod",
        subresources: &[
            Subresource::Status,
            Subresource::Binding,
            Subresource::Eviction,
            Subresource::EphemeralContainers,
        ],
        read_only: false,
        storage_segment: "pods",
        storage_api_version: "v1",
    };
    static NAMESPACES: ResourceInfo = ResourceInfo {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        short_names: &["ns"],
        categories: &[],
        namespaced: false,
        definition: "io.k8s.api.core.v1.Namespace",
        subresources: &[Subresource::Status, Subresource::Finalize],
        read_only: false,
        storage_segment: "namespaces",
        storage_api_version: "v1",
    };
    static COMPONENT_STATUSES: ResourceInfo = ResourceInfo {
        group: "",
        version: "v1",
        kind: "ComponentStatus",
        plural: "componentstatuses",
        singular: "componentstatus",
        short_names: &["cs"],
        categories: &[],
        namespaced: false,
        definition: "io.k8s.api.core.v1.ComponentStatus",
        subresources: &[],
        read_only: true,
        storage_segment: "componentstatuses",
        storage_api_version: "v1",
    };
    static CLUSTER_ROLES: ResourceInfo = ResourceInfo {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        singular: "clusterrole",
        short_names: &[],
        categories: &[],
        namespaced: false,
        definition: "io.k8s.api.rbac.v1.ClusterRole",
        subresources: &[],
        read_only: false,
        storage_segment: "clusterroles",
        storage_api_version: "rbac.authorization.k8s.io/v1",
    };

    fn sample() -> Vec<&'static ResourceInfo> {
        vec![
            &PODS,
            &NAMESPACES,
            &COMPONENT_STATUSES,
            &DEPLOYMENTS,
            &CLUSTER_ROLES,
        ]
    }

    /// Every `$ref` in `doc` resolves inside `doc` (JSON pointer after '#').
    fn assert_refs_resolve(doc: &Value) {
        fn walk(v: &Value, doc: &Value, bad: &mut Vec<String>) {
            match v {
                Value::Object(o) => {
                    if let Some(Value::String(r)) = o.get("$ref") {
                        let ok = r.strip_prefix('#').and_then(|p| doc.pointer(p)).is_some();
                        if !ok {
                            bad.push(r.clone());
                        }
                    }
                    for (k, c) in o {
                        if k != "enum" && k != "default" && k != "example" {
                            walk(c, doc, bad);
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|c| walk(c, doc, bad)),
                _ => {}
            }
        }
        let mut bad = Vec::new();
        walk(doc, doc, &mut bad);
        bad.sort();
        bad.dedup();
        assert!(bad.is_empty(), "unresolved refs: {bad:?}");
    }

    fn param_names_v2(doc: &Value, params: &Value) -> Vec<String> {
        params
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let p = match p.get("$ref").and_then(Value::as_str) {
                    Some(r) => doc.pointer(r.trim_start_matches('#'))?,
                    None => p,
                };
                p.get("name").and_then(Value::as_str).map(str::to_string)
            })
            .collect()
    }

    #[test]
    fn v2_has_paths_and_resolvable_refs() {
        let doc = openapi_v2(&sample());
        assert_eq!(doc["swagger"], "2.0");
        assert_eq!(doc["info"]["version"], API_VERSION_STRING);
        let paths = &doc["paths"];
        for p in [
            "/api/v1/namespaces/{namespace}/pods",
            "/api/v1/namespaces/{namespace}/pods/{name}",
            "/api/v1/namespaces/{namespace}/pods/{name}/status",
            "/api/v1/namespaces/{namespace}/pods/{name}/binding",
            "/api/v1/namespaces/{namespace}/pods/{name}/eviction",
            "/api/v1/namespaces/{namespace}/pods/{name}/ephemeralcontainers",
            "/api/v1/pods",
            "/api/v1/watch/namespaces/{namespace}/pods",
            "/api/v1/watch/namespaces/{namespace}/pods/{name}",
            "/api/v1/watch/pods",
            "/api/v1/namespaces",
            "/api/v1/namespaces/{name}",
            "/api/v1/namespaces/{name}/finalize",
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}",
            "/api/v1/",
            "/apis/apps/v1/",
            "/apis/apps/",
            "/api/",
            "/apis/",
            "/version/",
        ] {
            assert!(paths.get(p).is_some(), "missing path {p}");
        }
        let patch = &paths["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-action"], "patch");
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "", "kind": "Pod", "version": "v1"})
        );
        assert_eq!(patch["operationId"], "patchCoreV1NamespacedPod");
        let consumes = patch["consumes"].as_array().cloned().unwrap_or_default();
        for t in PATCH_TYPES {
            assert!(consumes.contains(&json!(t)), "{t}");
        }
        let names = param_names_v2(&doc, &patch["parameters"]);
        for n in ["body", "dryRun", "fieldManager", "fieldValidation", "force"] {
            assert!(names.contains(&n.to_string()), "{n} in {names:?}");
        }
        let list = &paths["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["get"];
        assert_eq!(list["operationId"], "listRbacAuthorizationV1ClusterRole");
        assert_eq!(
            list["responses"]["200"]["schema"]["$ref"],
            "#/definitions/io.k8s.api.rbac.v1.ClusterRoleList"
        );
        let names = param_names_v2(&doc, &list["parameters"]);
        for n in [
            "labelSelector",
            "fieldSelector",
            "limit",
            "continue",
            "resourceVersion",
            "watch",
        ] {
            assert!(names.contains(&n.to_string()), "{n}");
        }
        let scale = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["put"];
        assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
        // Read-only resources serve get/list only.
        let cs = &paths["/api/v1/componentstatuses/{name}"];
        assert!(cs.get("get").is_some() && cs.get("patch").is_none() && cs.get("delete").is_none());
        assert!(paths["/api/v1/componentstatuses"].get("post").is_none());
        // Definitions carry GVKs.
        assert_eq!(
            doc["definitions"]["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "Pod", "version": "v1"}])
        );
        assert_refs_resolve(&doc);
    }

    #[test]
    fn v3_index_lists_group_versions_with_stable_hashes() {
        let idx = openapi_v3_paths(&sample());
        let paths = idx["paths"].as_object().cloned().unwrap_or_default();
        for k in [
            "api/v1",
            "apis/apps/v1",
            "apis/rbac.authorization.k8s.io/v1",
            "api",
            "apis",
            "apis/apps",
            "version",
        ] {
            let url = paths
                .get(k)
                .and_then(|p| p["serverRelativeURL"].as_str())
                .unwrap_or_default()
                .to_string();
            assert!(
                url.starts_with(&format!("/openapi/v3/{k}?hash=")),
                "{k}: {url}"
            );
        }
        assert_eq!(idx, openapi_v3_paths(&sample()));
        let doc = openapi_v3_group_version(&sample(), "apis/apps/v1");
        let hash = doc.as_ref().map(document_hash).unwrap_or_default();
        assert_eq!(
            paths["apis/apps/v1"]["serverRelativeURL"],
            format!("/openapi/v3/apis/apps/v1?hash={hash}")
        );
        assert!(openapi_v3_group_version(&sample(), "apis/batch/v1").is_none());
        assert!(openapi_v3_group_version(&sample(), "nonsense").is_none());
        assert!(openapi_v3_paths(&[])["paths"]
            .as_object()
            .is_some_and(Map::is_empty));
    }

    #[test]
    fn v3_group_version_document() {
        let doc = openapi_v3_group_version(&sample(), "api/v1").unwrap_or(Value::Null);
        assert_eq!(doc["openapi"], "3.0.0");
        assert_refs_resolve(&doc);
        let schemas = doc["components"]["schemas"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(schemas.contains_key("io.k8s.api.core.v1.Pod"));
        assert!(schemas.contains_key("io.k8s.api.core.v1.Container"));
        assert!(schemas.contains_key("io.k8s.api.policy.v1.Eviction"));
        // Only reachable schemas.
        assert!(!schemas.contains_key("io.k8s.api.apps.v1.Deployment"));
        assert!(doc["paths"]
            .get("/apis/apps/v1/namespaces/{namespace}/deployments")
            .is_none());
        // IntOrString / Quantity in v3 form.
        assert!(schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
            .get("oneOf")
            .is_some());
        assert!(schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]
            .get("type")
            .is_none());
        // $ref with siblings is wrapped in allOf.
        let meta = &schemas["io.k8s.api.core.v1.Pod"]["properties"]["metadata"];
        assert_eq!(
            meta["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        // Patch metadata survives.
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");

        let doc = openapi_v3_group_version(&sample(), "/apis/apps/v1/").unwrap_or(Value::Null);
        assert!(doc["components"]["schemas"]
            .get("io.k8s.api.autoscaling.v1.Scale")
            .is_some());
        assert_refs_resolve(&doc);
        for key in ["api", "apis", "apis/apps", "version"] {
            let d = openapi_v3_group_version(&sample(), key).unwrap_or(Value::Null);
            assert!(
                d["paths"].as_object().is_some_and(|p| !p.is_empty()),
                "{key}"
            );
            assert_refs_resolve(&d);
        }
    }

    /// kubectl's supportsQueryParamV3: every PATCH operation carrying the GVK
    /// lists `fieldValidation` inline; kubectl apply needs the SMP content type.
    #[test]
    fn v3_field_validation_support_as_kubectl_checks_it() {
        for (key, gvk) in [
            (
                "api/v1",
                json!({"group": "", "kind": "Pod", "version": "v1"}),
            ),
            (
                "api/v1",
                json!({"group": "", "kind": "Namespace", "version": "v1"}),
            ),
            (
                "apis/apps/v1",
                json!({"group": "apps", "kind": "Deployment", "version": "v1"}),
            ),
        ] {
            let doc = openapi_v3_group_version(&sample(), key).unwrap_or(Value::Null);
            let mut seen = 0;
            for (_, item) in doc["paths"].as_object().into_iter().flatten() {
                let Some(patch) = item.get("patch") else {
                    continue;
                };
                if patch["x-kubernetes-group-version-kind"] != gvk {
                    continue;
                }
                seen += 1;
                let names: Vec<&str> = patch["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                assert!(names.contains(&"fieldValidation"), "{gvk}: {names:?}");
                assert!(patch["requestBody"]["content"]
                    .get("application/strategic-merge-patch+json")
                    .is_some());
            }
            assert!(seen > 0, "no PATCH for {gvk}");
            // The component schema with that GVK in its list exists.
            let found = doc["components"]["schemas"]
                .as_object()
                .into_iter()
                .flatten()
                .any(|(_, s)| {
                    s["x-kubernetes-group-version-kind"]
                        .as_array()
                        .is_some_and(|l| l.contains(&gvk))
                });
            assert!(found, "{gvk}");
        }
    }

    /// What `kubectl explain pods.spec.containers` does with the document.
    #[test]
    fn v3_explain_walk() {
        let doc = openapi_v3_group_version(&sample(), "api/v1").unwrap_or(Value::Null);
        // GVK from the first search path that has one.
        let gvk = [
            "/api/v1/pods",
            "/api/v1/pods/{name}",
            "/api/v1/namespaces/{namespace}/pods",
        ]
        .iter()
        .filter_map(|p| doc["paths"].get(*p))
        .flat_map(|item| {
            ["get", "post", "put", "patch", "delete"]
                .into_iter()
                .filter_map(move |m| item.get(m))
        })
        .find_map(|op| op.get("x-kubernetes-group-version-kind").cloned())
        .unwrap_or(Value::Null);
        assert_eq!(gvk, json!({"group": "", "kind": "Pod", "version": "v1"}));
        let schemas = doc["components"]["schemas"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let resolve = |s: &Value| -> Value {
            let mut s = s.clone();
            for _ in 0..8 {
                if let Some(r) = s.get("$ref").and_then(Value::as_str) {
                    s = schemas
                        .get(r.rsplit('/').next().unwrap_or(r))
                        .cloned()
                        .unwrap_or(Value::Null);
                } else if let Some(first) = s.get("allOf").and_then(|a| a.get(0)) {
                    s = first.clone();
                } else if let Some(items) = s.get("items") {
                    s = items.clone();
                } else {
                    break;
                }
            }
            s
        };
        let mut cur = schemas
            .values()
            .find(|s| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|l| l.contains(&gvk))
            })
            .cloned()
            .unwrap_or(Value::Null);
        for field in ["spec", "containers"] {
            cur = resolve(&cur["properties"][field]);
        }
        assert!(cur["properties"].get("image").is_some());
        assert!(cur["properties"].get("resources").is_some());
    }

    #[test]
    fn group_idents() {
        assert_eq!(group_ident(""), "Core");
        assert_eq!(group_ident("apps"), "Apps");
        assert_eq!(
            group_ident("rbac.authorization.k8s.io"),
            "RbacAuthorization"
        );
        assert_eq!(
            group_ident("flowcontrol.apiserver.k8s.io"),
            "FlowcontrolApiserver"
        );
        assert_eq!(group_ident("apiextensions.k8s.io"), "Apiextensions");
    }

    #[test]
    fn registered_resources_have_definitions() {
        let schemas = Schemas::embedded();
        for s in crate::all() {
            let info = s.info();
            assert!(
                schemas.has(info.definition),
                "{} has no definition {}",
                info.kind,
                info.definition
            );
            assert!(
                schemas.has(&list_definition(info)),
                "{} has no list definition",
                info.kind
            );
        }
    }
}
