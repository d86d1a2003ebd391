//! Per-resource behaviour: the only code a resource needs besides its
//! registration. The generic [apiserver `Store`] calls these hooks in a
//! fixed pipeline (see docs/architecture.md):
//!
//! create: decode → strict field check → `prepare_for_create` → `default` →
//!         system meta (uid, creationTimestamp, generation) → `validate` → storage
//! update: decode → strict field check → `prepare_for_update(new, old)` →
//!         `default` → generation bump if `bumps_generation` and spec changed →
//!         `validate_update` → storage (CAS on resourceVersion)
//! status: new = old with new.status (`status_prepare_for_update`) → `validate_update`

use apimachinery::FieldError;

use serde_json::Value;

/// Subresources a resource may expose beyond the main resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: the status half of a spec/status split.
    Status,
    /// `/scale`: autoscaling/v1 Scale over spec.replicas.
    Scale,
    /// pods/binding (and the pods-level `bindings`).
    Binding,
    /// namespaces/finalize: replaces spec.finalizers.
    Finalize,
    /// pods/eviction.
    Eviction,
    /// pods/ephemeralcontainers.
    EphemeralContainers,
    /// pods/log (streamed from the kubelet).
    Log,
    /// pods/exec, pods/attach, pods/portforward: upgraded connections the
    /// apiserver relays to the kubelet.
    Exec,
    Attach,
    PortForward,
    /// nodes/proxy: HTTP relayed to the kubelet.
    Proxy,
    /// serviceaccounts/token: TokenRequest (authentication.k8s.io/v1),
    /// create only; issues a signed service-account token.
    Token,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Finalize => "finalize",
            Subresource::Eviction => "eviction",
            Subresource::EphemeralContainers => "ephemeralcontainers",
            Subresource::Log => "log",
            Subresource::Exec => "exec",
            Subresource::Attach => "attach",
            Subresource::PortForward => "portforward",
            Subresource::Proxy => "proxy",
            Subresource::Token => "token",
        }
    }
}

/// Static facts about a served resource (one group/version/resource).
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// API group, "" for core.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Lower-case plural, the URL segment: "pods".
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    /// Discovery categories, e.g. &["all"] for what `kubectl get all` lists.
    pub categories: &'static [&'static str],
    pub namespaced: bool,
    /// OpenAPI definition name of the kind, e.g. "io.k8s.api.core.v1.Pod".
    pub definition: &'static str,
    pub subresources: &'static [Subresource],
    /// Read-only resources (componentstatuses) serve get/list only.
    pub read_only: bool,
    /// etcd key segment below the prefix; upstream's, e.g. "services/specs",
    /// "events", "horizontalpodautoscalers". Resources that share a segment
    /// (core and events.k8s.io events; autoscaling v1 and v2 HPAs) share storage:
    /// objects are stored at `storage_api_version` and converted on the way in and out.
    pub storage_segment: &'static str,
    /// apiVersion objects are stored at ("v1", "autoscaling/v2", ...).
    pub storage_api_version: &'static str,
}

impl ResourceInfo {
    /// "v1" or "apps/v1".
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
    pub fn group_resource(&self) -> apimachinery::errors::GroupResource {
        apimachinery::errors::GroupResource::new(self.group, self.plural)
    }
    pub fn has_subresource(&self, s: Subresource) -> bool {
        self.subresources.contains(&s)
    }
}

/// A column of a server-side printed Table (meta.k8s.io/v1 TableColumnDefinition).
#[derive(Debug, Clone)]
pub struct TableColumn {
    /// Upstream's column name: "Name", "Ready", "Status", "Restarts", "Age".
    pub name: &'static str,
    /// "string", "integer", "date", "number", "boolean".
    pub type_: &'static str,
    /// "name" for the Name column, "" otherwise.
    pub format: &'static str,
    pub description: &'static str,
    /// 0 = shown by default; 1 = shown with `-o wide` only.
    pub priority: i32,
}

/// Everything resource-specific. All methods have upstream-like defaults, so a
/// plain resource is `impl Strategy for X { fn info(..) }` and nothing else.
pub trait Strategy: Send + Sync + 'static {
    fn info(&self) -> &ResourceInfo;

    /// Whether the resource has a spec/status split: status is dropped on
    /// create/update of the main resource and written only via `/status`.
    fn has_status(&self) -> bool {
        self.info().has_subresource(Subresource::Status)
    }

    /// Whether create drops a client-supplied status (most spec/status
    /// resources). Nodes keep theirs: the kubelet registers with it.
    fn reset_status_on_create(&self) -> bool {
        self.has_status()
    }

    /// Whether metadata.generation starts at 1 and increments when anything
    /// outside metadata and status changes.
    fn bumps_generation(&self) -> bool {
        self.has_status()
    }

    /// Upstream defaulting (SetDefaults_*), applied on create and update
    /// (including after patches), before validation. Must be idempotent.
    fn default(&self, _obj: &mut Value) {}

    /// Clear fields a client may not set on create (status for spec/status
    /// resources is already cleared by the store).
    fn prepare_for_create(&self, _obj: &mut Value) {}

    /// Called on update of the main resource; status is already copied from
    /// `old` by the store for spec/status resources.
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}

    /// Validation on create. Metadata (name, labels, annotations, namespace)
    /// is validated by the store; this checks the rest.
    fn validate(&self, _obj: &Value) -> Vec<FieldError> {
        Vec::new()
    }

    /// Validation on update: default is `validate(new)`; override to add
    /// immutability checks (e.g. a Deployment's selector).
    fn validate_update(&self, new: &Value, _old: &Value) -> Vec<FieldError> {
        self.validate(new)
    }

    /// How metadata.name is validated (upstream's ValidateNameFunc):
    /// DNS-1123 subdomain for most resources, DNS-1123 label for namespaces,
    /// DNS-1035 label for services, path segment for RBAC objects.
    fn name_validator(&self) -> apimachinery::validation::NameValidator {
        apimachinery::validation::NameValidator::Subdomain
    }

    /// Whether PUT of a missing object creates it.
    fn allow_create_on_update(&self) -> bool {
        false
    }

    /// Field selector values besides metadata.name / metadata.namespace, which
    /// the store adds itself: e.g. pods give spec.nodeName, status.phase ...
    /// Unknown field labels in a selector are rejected with upstream's message,
    /// so this also declares which labels exist: `selectable_field_names`.
    fn selectable_fields(&self, _obj: &Value) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    fn selectable_field_names(&self) -> &'static [&'static str] {
        &[]
    }

    /// Server-side printing columns (after the Name column, which the store
    /// always puts first) and one row's cells for them. Default: Age.
    fn table_columns(&self) -> Vec<TableColumn> {
        vec![age_column()]
    }
    fn table_row(&self, obj: &Value) -> Vec<Value> {
        vec![age_cell(obj)]
    }

    /// Whether the table starts with the standard Name column. Printers
    /// that place the name elsewhere (events: a wide-only Name column last)
    /// return false and list every column, Name included, themselves.
    fn name_column_first(&self) -> bool {
        true
    }

    /// The Name cell (storage classes append " (default)").
    fn name_cell(&self, obj: &Value) -> Value {
        Value::String(apimachinery::meta::name(obj).to_string())
    }

    /// Conversion between this version and the storage version
    /// (`info().storage_api_version`); identity when they are equal.
    fn to_storage(&self, obj: Value) -> Value {
        obj
    }
    fn from_storage(&self, obj: Value) -> Value {
        obj
    }

    /// Conditions besides metadata.finalizers that keep a deleted object in
    /// place (namespaces: spec.finalizers). Called when deletion starts and
    /// whenever a deleting object is updated; may mutate the object (a
    /// namespace's status.phase becomes Terminating).
    fn hold_deletion(&self, _obj: &mut Value) -> bool {
        false
    }

    /// For graceful deletion (pods): the grace period to use when the client
    /// gives none. `None` means objects are deleted at once.
    fn default_grace_period(&self, _obj: &Value) -> Option<i64> {
        None
    }
}

/// A table column that is not the Name column.
pub(crate) fn column(
    name: &'static str,
    type_: &'static str,
    description: &'static str,
    priority: i32,
) -> TableColumn {
    TableColumn {
        name,
        type_,
        format: "",
        description,
        priority,
    }
}

pub fn age_column() -> TableColumn {
    TableColumn {
        name: "Age",
        type_: "string",
        format: "",
        description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
        priority: 0,
    }
}

/// Human duration since metadata.creationTimestamp, as kubectl prints it
/// (`5s`, `3m20s`, `4h`, `12d`), or `<unknown>`.
pub fn age_cell(obj: &Value) -> Value {
    let ts = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str);
    Value::String(since(ts))
}

/// Upstream's `translateTimestampSince`: human duration since the timestamp,
/// `<unknown>` when unset or unparseable.
pub(crate) fn since(ts: Option<&str>) -> String {
    match ts.and_then(parse_time) {
        Some(t) => human_duration(chrono::Utc::now().signed_duration_since(t)),
        None => "<unknown>".to_string(),
    }
}

/// An RFC 3339 timestamp, in UTC.
pub(crate) fn parse_time(ts: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Upstream's `duration.HumanDuration`.
pub fn human_duration(d: chrono::TimeDelta) -> String {
    let secs = d.num_seconds();
    if secs < -1 {
        return "<invalid>".to_string();
    }
    let secs = secs.max(0);
    if secs < 60 * 2 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        let days = hours / 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        let years = hours / 24 / 365;
        return if dy == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dy}d")
        };
    }
    format!("{}y", hours / 24 / 365)
}
