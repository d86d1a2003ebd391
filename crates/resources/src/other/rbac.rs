//! rbac.authorization.k8s.io/v1: roles, rolebindings, clusterroles,
//! clusterrolebindings. Roles have no printer upstream, so they get the
//! default table (Name, Created At).
//!
//! Object names are path segments (colons are fine: `system:controller:x`).

use crate::strategy::column;
use crate::util::{arr_at, ensure_obj, ptr_str};
use apimachinery::validation::validate_label_selector;
use apimachinery::validation::{is_dns1123_subdomain, is_valid_path_segment_name};
use std::sync::Arc;

use apimachinery::validation::NameValidator;
use apimachinery::FieldError;
use serde_json::Value;

use super::common::{
    created_at_cell, created_at_columns, go_string_slice, invalid_raw, parse_selector, s,
};
use crate::strategy::{age_cell, age_column, ResourceInfo, Strategy, TableColumn};

pub fn all() -> Vec<Arc<dyn Strategy>> {
    vec![
        Arc::new(ClusterRoleBindings),
        Arc::new(ClusterRoles),
        Arc::new(RoleBindings),
        Arc::new(Roles),
    ]
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

macro_rules! rbac_info {
    ($name:ident, $kind:literal, $plural:literal, $singular:literal, $namespaced:literal) => {
        static $name: ResourceInfo = ResourceInfo {
            group: RBAC_GROUP,
            version: "v1",
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short_names: &[],
            categories: &[],
            namespaced: $namespaced,
            definition: concat!("io.k8s.api.rbac.v1.", $kind),
            subresources: &[],
            read_only: false,
            storage_segment: $plural,
            storage_api_version: "rbac.authorization.k8s.io/v1",
        };
    };
}

rbac_info!(ROLES, "Role", "roles", "role", true);
rbac_info!(
    ROLEBINDINGS,
    "RoleBinding",
    "rolebindings",
    "rolebinding",
    true
);
rbac_info!(
    CLUSTERROLES,
    "ClusterRole",
    "clusterroles",
    "clusterrole",
    false
);
rbac_info!(
    CLUSTERROLEBINDINGS,
    "ClusterRoleBinding",
    "clusterrolebindings",
    "clusterrolebinding",
    false
);

pub struct Roles;
pub struct RoleBindings;
pub struct ClusterRoles;
pub struct ClusterRoleBindings;

fn validate_rules(obj: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, rule) in arr_at(obj, "/rules").iter().enumerate() {
        let p = format!("rules[{i}]");
        let len = |k: &str| arr_at(rule, &format!("/{k}")).len();
        if len("verbs") == 0 {
            errs.push(FieldError::required(
                format!("{p}.verbs"),
                "verbs must contain at least one value",
            ));
        }
        if len("nonResourceURLs") > 0 {
            let urls = go_string_slice(rule.get("nonResourceURLs"));
            if namespaced {
                errs.push(invalid_raw(
                    format!("{p}.nonResourceURLs"),
                    &urls,
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if len("apiGroups") > 0 || len("resources") > 0 || len("resourceNames") > 0 {
                errs.push(invalid_raw(
                    format!("{p}.nonResourceURLs"),
                    &urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if len("apiGroups") == 0 {
            errs.push(FieldError::required(
                format!("{p}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if len("resources") == 0 {
            errs.push(FieldError::required(
                format!("{p}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    errs
}

fn validate_binding(obj: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let api_group = ptr_str(obj, "/roleRef/apiGroup").unwrap_or("");
    if api_group != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            api_group,
            &[RBAC_GROUP],
        ));
    }
    let kind = ptr_str(obj, "/roleRef/kind").unwrap_or("");
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind) {
        errs.push(FieldError::not_supported("roleRef.kind", kind, kinds));
    }
    let name = ptr_str(obj, "/roleRef/name").unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        for m in is_valid_path_segment_name(name) {
            errs.push(FieldError::invalid("roleRef.name", name, m));
        }
    }
    for (i, subject) in arr_at(obj, "/subjects").iter().enumerate() {
        let p = format!("subjects[{i}]");
        let name = ptr_str(subject, "/name").unwrap_or("");
        let group = ptr_str(subject, "/apiGroup").unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        }
        match ptr_str(subject, "/kind").unwrap_or("") {
            "ServiceAccount" => {
                if !name.is_empty() {
                    for m in is_dns1123_subdomain(name) {
                        errs.push(FieldError::invalid(format!("{p}.name"), name, m));
                    }
                }
                if !group.is_empty() {
                    errs.push(FieldError::not_supported(
                        format!("{p}.apiGroup"),
                        group,
                        &[""],
                    ));
                }
                if !namespaced && ptr_str(subject, "/namespace").unwrap_or("").is_empty() {
                    errs.push(FieldError::required(format!("{p}.namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != RBAC_GROUP {
                    errs.push(FieldError::not_supported(
                        format!("{p}.apiGroup"),
                        group,
                        &[RBAC_GROUP],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{p}.kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    errs
}

fn role_ref_unchanged(new: &Value, old: &Value) -> Option<FieldError> {
    if new.get("roleRef") == old.get("roleRef") {
        return None;
    }
    let r = new.get("roleRef").cloned().unwrap_or(Value::Null);
    let repr = format!(
        "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
        ptr_str(&r, "/apiGroup").unwrap_or(""),
        ptr_str(&r, "/kind").unwrap_or(""),
        ptr_str(&r, "/name").unwrap_or("")
    );
    Some(invalid_raw("roleRef", &repr, "cannot change roleRef"))
}

/// `SetDefaults_{Cluster,}RoleBinding` and `SetDefaults_Subject`.
fn default_binding(obj: &mut Value) {
    if let Some(rr) = ensure_obj(obj, "roleRef") {
        if rr
            .get("apiGroup")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            rr.insert("apiGroup".into(), s(RBAC_GROUP));
        }
    }
    if let Some(subjects) = obj.get_mut("subjects").and_then(Value::as_array_mut) {
        for sub in subjects.iter_mut().filter_map(Value::as_object_mut) {
            if sub
                .get("apiGroup")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                match sub.get("kind").and_then(Value::as_str) {
                    Some("ServiceAccount") => {
                        sub.insert("apiGroup".into(), s(""));
                    }
                    Some("User" | "Group") => {
                        sub.insert("apiGroup".into(), s(RBAC_GROUP));
                    }
                    _ => {}
                }
            }
        }
    }
}

fn binding_columns() -> Vec<TableColumn> {
    vec![
        column("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.", 0),
        age_column(),
        column("Users", "string", "Users in the roleBinding", 1),
        column("Groups", "string", "Groups in the roleBinding", 1),
        column("ServiceAccounts", "string", "ServiceAccounts in the roleBinding", 1),
    ]
}

/// `printRoleBinding`: Kind/Name, age, then users, groups and
/// `namespace:name` service accounts.
fn binding_row(obj: &Value) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        ptr_str(obj, "/roleRef/kind").unwrap_or(""),
        ptr_str(obj, "/roleRef/name").unwrap_or("")
    );
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for sub in arr_at(obj, "/subjects") {
        let name = ptr_str(sub, "/name").unwrap_or("").to_string();
        match ptr_str(sub, "/kind").unwrap_or("") {
            "ServiceAccount" => sas.push(format!(
                "{}:{name}",
                ptr_str(sub, "/namespace").unwrap_or("")
            )),
            "User" => users.push(name),
            "Group" => groups.push(name),
            _ => {}
        }
    }
    vec![
        s(role),
        age_cell(obj),
        s(users.join(", ")),
        s(groups.join(", ")),
        s(sas.join(", ")),
    ]
}

impl Strategy for Roles {
    fn info(&self) -> &ResourceInfo {
        &ROLES
    }
    fn name_validator(&self) -> NameValidator {
        NameValidator::PathSegment
    }
    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_rules(obj, true)
    }
    fn table_columns(&self) -> Vec<TableColumn> {
        created_at_columns()
    }
    fn table_row(&self, obj: &Value) -> Vec<Value> {
        vec![created_at_cell(obj)]
    }
}

impl Strategy for ClusterRoles {
    fn info(&self) -> &ResourceInfo {
        &CLUSTERROLES
    }
    fn name_validator(&self) -> NameValidator {
        NameValidator::PathSegment
    }
    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = validate_rules(obj, false);
        for (i, sel) in arr_at(obj, "/aggregationRule/clusterRoleSelectors")
            .iter()
            .enumerate()
        {
            let p = format!("aggregationRule.clusterRoleSelectors[{i}]");
            errs.extend(validate_label_selector(sel, &p));
            if parse_selector(Some(sel)).is_err() {
                errs.push(FieldError::invalid(
                    p,
                    sel.clone(),
                    "invalid label selector.",
                ));
            }
        }
        errs
    }
    fn table_columns(&self) -> Vec<TableColumn> {
        created_at_columns()
    }
    fn table_row(&self, obj: &Value) -> Vec<Value> {
        vec![created_at_cell(obj)]
    }
}

impl Strategy for RoleBindings {
    fn info(&self) -> &ResourceInfo {
        &ROLEBINDINGS
    }
    fn name_validator(&self) -> NameValidator {
        NameValidator::PathSegment
    }
    fn default(&self, obj: &mut Value) {
        default_binding(obj);
    }
    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_binding(obj, true)
    }
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_binding(new, true);
        errs.extend(role_ref_unchanged(new, old));
        errs
    }
    fn table_columns(&self) -> Vec<TableColumn> {
        binding_columns()
    }
    fn table_row(&self, obj: &Value) -> Vec<Value> {
        binding_row(obj)
    }
}

impl Strategy for ClusterRoleBindings {
    fn info(&self) -> &ResourceInfo {
        &CLUSTERROLEBINDINGS
    }
    fn name_validator(&self) -> NameValidator {
        NameValidator::PathSegment
    }
    fn default(&self, obj: &mut Value) {
        default_binding(obj);
    }
    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_binding(obj, false)
    }
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_binding(new, false);
        errs.extend(role_ref_unchanged(new, old));
        errs
    }
    fn table_columns(&self) -> Vec<TableColumn> {
        let mut c = binding_columns();
        c[2].description = "Users in the clusterRoleBinding";
        c[3].description = "Groups in the clusterRoleBinding";
        c[4].description = "ServiceAccounts in the clusterRoleBinding";
        c
    }
    fn table_row(&self, obj: &Value) -> Vec<Value> {
        binding_row(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rolebinding_defaults_and_row() {
        let mut rb = json!({"metadata": {"name": "rb", "namespace": "default"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "default"}, {"kind": "Group", "name": "devs"}]});
        RoleBindings.default(&mut rb);
        assert_eq!(rb["roleRef"]["apiGroup"], RBAC_GROUP);
        assert_eq!(rb["subjects"][0]["apiGroup"], RBAC_GROUP);
        assert_eq!(rb["subjects"][1]["apiGroup"], "");
        assert!(RoleBindings.validate(&rb).is_empty());
        let row = RoleBindings.table_row(&rb);
        assert_eq!(row[0], "ClusterRole/view");
        assert_eq!(
            row[2..],
            [json!("alice"), json!("devs"), json!("default:sa")]
        );
        let mut changed = rb.clone();
        changed["roleRef"]["name"] = json!("edit");
        assert_eq!(
            RoleBindings.validate_update(&changed, &rb)[0].to_string(),
            "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"
        );
    }

    #[test]
    fn role_rules_need_verbs_and_default_table() {
        let r = json!({"metadata": {"name": "r", "creationTimestamp": "2024-05-01T10:00:00Z"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]});
        assert_eq!(
            Roles.validate(&r)[0].to_string(),
            "rules[0].verbs: Required value: verbs must contain at least one value"
        );
        assert_eq!(Roles.table_row(&r), vec![json!("2024-05-01T10:00:00Z")]);
        assert_eq!(Roles.table_columns()[0].name, "Created At");
        let cr = json!({"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]});
        assert!(ClusterRoles.validate(&cr).is_empty());
        assert_eq!(Roles.validate(&cr)[0].to_string(), "rules[0].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs");
    }

    #[test]
    fn clusterrolebinding_requires_sa_namespace() {
        let crb = json!({"roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "x"}, "subjects": [{"kind": "ServiceAccount", "name": "sa"}]});
        let errs: Vec<String> = ClusterRoleBindings
            .validate(&crb)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            vec![
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\""
                    .to_string(),
                "subjects[0].namespace: Required value".to_string(),
            ]
        );
    }
}
