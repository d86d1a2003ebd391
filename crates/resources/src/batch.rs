//! batch/v1: jobs and cronjobs. Defaults follow `pkg/apis/batch/v1/defaults.go`,
//! validation `pkg/apis/batch/validation`, the generated job selector
//! `pkg/registry/batch/job/strategy.go`, and the cron schedule grammar the
//! robfig/cron v3 standard parser accepts.

use crate::core::container_cells;
use crate::strategy::column;
use crate::strategy::{parse_time, since};
use crate::util::{arr_at, ensure_obj, i64_at, immutable, is_set, ptr_bool, ptr_str, set_default};
use apimachinery::validation::is_dns1123_label;
use apimachinery::validation::validate_label_selector;
use std::sync::Arc;

use apimachinery::FieldError;
use serde_json::{Map, Value};

use crate::other::common::{
    format_label_selector, go_label_selector, go_string_map, invalid_omit, invalid_raw,
    nonnegative, parse_selector, s, selector_immutable, template_labels_mismatch,
    validate_pod_template, CONTAINERS_DESC, IMAGES_DESC,
};
use crate::strategy::{
    age_cell, age_column, human_duration, ResourceInfo, Strategy, Subresource, TableColumn,
};

pub fn all() -> Vec<Arc<dyn Strategy>> {
    vec![Arc::new(CronJobs), Arc::new(Jobs)]
}

const LEGACY_JOB_NAME: &str = "job-name";
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

static JOBS: ResourceInfo = ResourceInfo {
    group: "batch",
    version: "v1",
    kind: "Job",
    plural: "jobs",
    singular: "job",
    short_names: &[],
    categories: &["all"],
    namespaced: true,
    definition: "io.k8s.api.batch.v1.Job",
    subresources: &[Subresource::Status],
    read_only: false,
    storage_segment: "jobs",
    storage_api_version: "batch/v1",
};

pub struct Jobs;

/// Adds the job-name / controller-uid labels to the pod template and selects
/// on controller-uid, unless `spec.manualSelector` is true. Labels the user
/// already set are kept (a conflict is then reported by validation).
pub fn generate_job_selector(job: &mut Value) {
    if ptr_bool(job, "/spec/manualSelector") == Some(true) {
        return;
    }
    let name = ptr_str(job, "/metadata/name").unwrap_or("").to_string();
    let uid = ptr_str(job, "/metadata/uid").unwrap_or("").to_string();
    let Some(spec) = ensure_obj(job, "spec") else {
        return;
    };
    let Some(template) = obj_mut_in(spec, "template") else {
        return;
    };
    let Some(meta) = obj_mut_in(template, "metadata") else {
        return;
    };
    if let Some(labels) = obj_mut_in(meta, "labels") {
        for (k, v) in [
            (LEGACY_JOB_NAME, &name),
            (JOB_NAME, &name),
            (LEGACY_CONTROLLER_UID, &uid),
            (CONTROLLER_UID, &uid),
        ] {
            if !labels.contains_key(k) {
                labels.insert(k.to_string(), s(v.as_str()));
            }
        }
    }
    let Some(spec) = job.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(selector) = obj_mut_in(spec, "selector") else {
        return;
    };
    if let Some(ml) = obj_mut_in(selector, "matchLabels") {
        if !ml.contains_key(CONTROLLER_UID) {
            ml.insert(CONTROLLER_UID.to_string(), s(uid));
        }
    }
}

/// `m[key]` as an object, created when missing or null.
fn obj_mut_in<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let slot = m.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// `SetDefaults_Job` plus the template defaults.
fn default_job_spec(spec: &mut Map<String, Value>) {
    if !is_set(spec.get("completions")) && !is_set(spec.get("parallelism")) {
        spec.insert("completions".into(), Value::from(1));
        spec.insert("parallelism".into(), Value::from(1));
    }
    set_default(spec, "parallelism", Value::from(1));
    if !is_set(spec.get("backoffLimit")) {
        let limit = if is_set(spec.get("backoffLimitPerIndex")) {
            i64::from(i32::MAX)
        } else {
            6
        };
        spec.insert("backoffLimit".into(), Value::from(limit));
    }
    set_default(spec, "completionMode", s("NonIndexed"));
    set_default(spec, "suspend", Value::Bool(false));
    if !is_set(spec.get("podReplacementPolicy")) {
        let p = if is_set(spec.get("podFailurePolicy")) {
            "Failed"
        } else {
            "TerminatingOrFailed"
        };
        spec.insert("podReplacementPolicy".into(), s(p));
    }
    set_default(spec, "manualSelector", Value::Bool(false));
    default_pod_failure_policy(spec);
    if let Some(t) = spec.get_mut("template") {
        crate::other::common::default_pod_template(t);
    }
}

fn default_pod_failure_policy(spec: &mut Map<String, Value>) {
    let rules = spec
        .get_mut("podFailurePolicy")
        .and_then(|p| p.get_mut("rules"))
        .and_then(Value::as_array_mut);
    for rule in rules.into_iter().flatten() {
        if let Some(conds) = rule
            .get_mut("onPodConditions")
            .and_then(Value::as_array_mut)
        {
            for c in conds.iter_mut().filter_map(Value::as_object_mut) {
                if c.get("status")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    c.insert("status".into(), s("True"));
                }
            }
        }
    }
}

/// `ValidateHasLabel` on the pod template.
fn has_label(job: &Value, key: &str, expected: &str) -> Option<FieldError> {
    let labels = job.pointer("/spec/template/metadata/labels");
    let path = format!("spec.template.metadata.labels[{key}]");
    match labels.and_then(|l| l.get(key)).and_then(Value::as_str) {
        None => Some(FieldError::required(path, format!("must be '{expected}'"))),
        Some(v) if v != expected => Some(invalid_raw(
            path,
            &go_string_map(labels),
            &format!("must be '{expected}'"),
        )),
        Some(_) => None,
    }
}

/// `validateGeneratedSelector`.
fn validate_generated_selector(job: &Value, require_prefixed: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if ptr_bool(job, "/spec/manualSelector") == Some(true) {
        return errs;
    }
    let Some(sel) = job.pointer("/spec/selector").filter(|v| !v.is_null()) else {
        return errs;
    };
    let uid = ptr_str(job, "/metadata/uid").unwrap_or("");
    let name = ptr_str(job, "/metadata/name").unwrap_or("");
    if uid.is_empty() {
        errs.push(FieldError::required("metadata.uid", ""));
    }
    errs.extend(has_label(job, LEGACY_CONTROLLER_UID, uid));
    errs.extend(has_label(job, LEGACY_JOB_NAME, name));
    let mut expected = Map::new();
    if require_prefixed {
        errs.extend(has_label(job, CONTROLLER_UID, uid));
        errs.extend(has_label(job, JOB_NAME, name));
        expected.insert(CONTROLLER_UID.to_string(), s(uid));
        expected.insert(JOB_NAME.to_string(), s(name));
    }
    expected.insert(LEGACY_CONTROLLER_UID.to_string(), s(uid));
    expected.insert(LEGACY_JOB_NAME.to_string(), s(name));
    if let Ok(selector) = parse_selector(Some(sel)) {
        if !selector.matches(Some(&expected)) {
            errs.push(invalid_raw(
                "spec.selector",
                &go_label_selector(sel),
                "`selector` not auto-generated",
            ));
        }
    }
    errs
}

/// `validateJobSpec` (everything but the selector) for a spec at `path`.
fn validate_job_spec_body(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for f in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        errs.extend(nonnegative(spec, &format!("/{f}"), &format!("{path}.{f}")));
    }
    let completions = i64_at(spec, "/completions");
    let parallelism = i64_at(spec, "/parallelism");
    let bl_per_index = i64_at(spec, "/backoffLimitPerIndex");
    let max_failed = i64_at(spec, "/maxFailedIndexes");
    if max_failed.is_some() && bl_per_index.is_none() {
        errs.push(FieldError::required(
            format!("{path}.backoffLimitPerIndex"),
            "when maxFailedIndexes is specified",
        ));
    }
    if let Some(mb) = ptr_str(spec, "/managedBy") {
        errs.extend(crate::other::common::domain_prefixed_path_errors(
            mb,
            &format!("{path}.managedBy"),
        ));
        if mb.len() > 63 {
            errs.push(FieldError::too_long(format!("{path}.managedBy"), 63));
        }
    }
    let mode = ptr_str(spec, "/completionMode");
    if let Some(m) = mode {
        if m != "NonIndexed" && m != "Indexed" {
            errs.push(FieldError::not_supported(
                format!("{path}.completionMode"),
                m,
                &["NonIndexed", "Indexed"],
            ));
        }
        if m == "Indexed" {
            if completions.is_none() {
                errs.push(FieldError::required(
                    format!("{path}.completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = parallelism.filter(|p| *p > 100_000) {
                errs.push(FieldError::invalid(
                    format!("{path}.parallelism"),
                    p,
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
            if let (Some(c), Some(mf)) = (completions, max_failed) {
                if mf > c {
                    errs.push(FieldError::invalid(
                        format!("{path}.maxFailedIndexes"),
                        mf,
                        "must be less than or equal to completions",
                    ));
                }
            }
            if let Some(mf) = max_failed.filter(|m| *m > 100_000) {
                errs.push(FieldError::invalid(
                    format!("{path}.maxFailedIndexes"),
                    mf,
                    "must be less than or equal to 100000",
                ));
            }
        }
    }
    if mode.is_none_or(|m| m == "NonIndexed") {
        if let Some(b) = bl_per_index {
            errs.push(FieldError::invalid(
                format!("{path}.backoffLimitPerIndex"),
                b,
                "requires indexed completion mode",
            ));
        }
        if let Some(mf) = max_failed {
            errs.push(FieldError::invalid(
                format!("{path}.maxFailedIndexes"),
                mf,
                "requires indexed completion mode",
            ));
        }
    }
    if let Some(sp) = spec.get("successPolicy").filter(|v| !v.is_null()) {
        if mode != Some("Indexed") {
            errs.push(FieldError::invalid(
                format!("{path}.successPolicy"),
                sp.clone(),
                "requires indexed completion mode",
            ));
        } else if arr_at(sp, "/rules").is_empty() {
            errs.push(FieldError::required(
                format!("{path}.successPolicy.rules"),
                "at least one rules must be specified when the successPolicy is specified",
            ));
        }
    }
    let has_pfp = is_set(spec.get("podFailurePolicy"));
    if let Some(prp) = ptr_str(spec, "/podReplacementPolicy") {
        if has_pfp {
            if prp != "Failed" {
                errs.push(FieldError::not_supported(
                    format!("{path}.podReplacementPolicy"),
                    prp,
                    &["Failed"],
                ));
            }
        } else if prp != "Failed" && prp != "TerminatingOrFailed" {
            errs.push(FieldError::not_supported(
                format!("{path}.podReplacementPolicy"),
                prp,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    errs.extend(validate_pod_template(
        spec.get("template"),
        &format!("{path}.template"),
    ));
    let rp = ptr_str(spec, "/template/spec/restartPolicy").unwrap_or("");
    let rp_path = format!("{path}.template.spec.restartPolicy");
    if rp == "Always" || rp.is_empty() {
        errs.push(FieldError::required(
            rp_path,
            "valid values: \"OnFailure\", \"Never\"",
        ));
    } else if rp != "OnFailure" && rp != "Never" {
        errs.push(FieldError::not_supported(
            rp_path,
            rp,
            &["OnFailure", "Never"],
        ));
    } else if has_pfp && rp != "Never" {
        errs.push(FieldError::invalid(
            rp_path,
            rp,
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
    errs
}

fn validate_job(job: &Value, require_prefixed: bool) -> Vec<FieldError> {
    let mut errs = validate_generated_selector(job, require_prefixed);
    errs.extend(validate_job_spec(job));
    if ptr_str(job, "/spec/completionMode") == Some("Indexed") {
        if let Some(c) = i64_at(job, "/spec/completions").filter(|c| *c > 0) {
            let name = ptr_str(job, "/metadata/name").unwrap_or("");
            let host = format!("{name}-{}", c - 1);
            if !is_dns1123_label(&host).is_empty() {
                errs.push(FieldError::invalid(
                    "metadata.name",
                    name,
                    format!("will not able to create pod with invalid DNS label: {host}"),
                ));
            }
        }
    }
    errs
}

/// `ValidateJobSpec`: the body plus the selector checks.
fn validate_job_spec(job: &Value) -> Vec<FieldError> {
    let spec = job.get("spec").cloned().unwrap_or(Value::Null);
    let mut errs = validate_job_spec_body(&spec, "spec");
    let sel = spec.get("selector").filter(|v| !v.is_null());
    match sel {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => errs.extend(validate_label_selector(sel, "spec.selector")),
    }
    if let (Some(_), Ok(selector)) = (sel, parse_selector(sel)) {
        errs.extend(template_labels_mismatch(
            &selector,
            spec.pointer("/template/metadata/labels"),
        ));
    }
    errs
}

fn condition_true(job: &Value, kind: &str) -> bool {
    arr_at(job, "/status/conditions").iter().any(|c| {
        c.get("type").and_then(Value::as_str) == Some(kind)
            && c.get("status").and_then(Value::as_str) == Some("True")
    })
}

fn job_finished(job: &Value) -> bool {
    condition_true(job, "Complete") || condition_true(job, "Failed")
}

/// The status rules a `/status` write must satisfy (JobManagedBy is on in 1.33).
fn validate_job_status_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for f in ["active", "succeeded", "failed", "ready", "terminating"] {
        errs.extend(nonnegative(
            new,
            &format!("/status/{f}"),
            &format!("status.{f}"),
        ));
    }
    let changed = |p: &str| new.pointer(p) != old.pointer(p);
    let complete = condition_true(new, "Complete");
    let failed = condition_true(new, "Failed");
    let finished = complete || failed;
    let finished_changed = finished != job_finished(old);
    let complete_changed = complete != condition_true(old, "Complete");
    if (complete_changed || failed != condition_true(old, "Failed")) && complete && failed {
        errs.push(invalid_omit(
            "status.conditions",
            "cannot set Complete=True and Failed=true conditions",
        ));
    }
    let completion_changed = complete_changed || changed("/status/completionTime");
    if completion_changed && is_set(new.pointer("/status/completionTime")) && !complete {
        errs.push(FieldError::invalid(
            "status.completionTime",
            new.pointer("/status/completionTime")
                .cloned()
                .unwrap_or(Value::Null),
            "cannot set completionTime when there is no Complete=True condition",
        ));
    }
    if completion_changed && !is_set(new.pointer("/status/completionTime")) && complete {
        errs.push(FieldError::required(
            "status.completionTime",
            "completionTime is required for Complete jobs",
        ));
    }
    if finished_changed || changed("/status/active") {
        if let Some(a) = i64_at(new, "/status/active").filter(|a| *a > 0 && finished) {
            errs.push(FieldError::invalid(
                "status.active",
                a,
                "active>0 is invalid for finished job",
            ));
        }
    }
    if (finished_changed || changed("/status/startTime"))
        && finished
        && !is_set(new.pointer("/status/startTime"))
    {
        errs.push(FieldError::required(
            "status.startTime",
            "startTime is required for finished job",
        ));
    }
    if let (Some(st), Some(ct)) = (
        ptr_str(new, "/status/startTime").and_then(parse_time),
        ptr_str(new, "/status/completionTime").and_then(parse_time),
    ) {
        if (changed("/status/startTime") || changed("/status/completionTime")) && ct < st {
            errs.push(FieldError::invalid(
                "status.completionTime",
                new.pointer("/status/completionTime")
                    .cloned()
                    .unwrap_or(Value::Null),
                "completionTime cannot be set before startTime",
            ));
        }
    }
    for kind in ["Failed", "Complete", "FailureTarget"] {
        if condition_true(old, kind) && !condition_true(new, kind) {
            errs.push(invalid_omit(
                "status.conditions",
                &format!("cannot disable the terminal {kind}=True condition"),
            ));
        }
    }
    if i64_at(new, "/status/failed").unwrap_or(0) < i64_at(old, "/status/failed").unwrap_or(0) {
        errs.push(FieldError::invalid(
            "status.failed",
            i64_at(new, "/status/failed").unwrap_or(0),
            "cannot decrease the failed counter",
        ));
    }
    let indexed = ptr_str(new, "/spec/completionMode") == Some("Indexed");
    let elastic = indexed && i64_at(new, "/spec/completions") == i64_at(new, "/spec/parallelism");
    if !elastic
        && i64_at(new, "/status/succeeded").unwrap_or(0)
            < i64_at(old, "/status/succeeded").unwrap_or(0)
    {
        errs.push(FieldError::invalid(
            "status.succeeded",
            i64_at(new, "/status/succeeded").unwrap_or(0),
            "cannot decrease the succeeded counter",
        ));
    }
    if let (Some(o), n) = (
        ptr_str(old, "/status/completionTime"),
        ptr_str(new, "/status/completionTime"),
    ) {
        if n.is_some_and(|n| n != o) {
            errs.push(FieldError::invalid(
                "status.completionTime",
                new.pointer("/status/completionTime")
                    .cloned()
                    .unwrap_or(Value::Null),
                "completionTime cannot be mutated",
            ));
        }
    }
    errs
}

impl Strategy for Jobs {
    fn info(&self) -> &ResourceInfo {
        &JOBS
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        generate_job_selector(obj);
    }

    fn default(&self, obj: &mut Value) {
        let template_labels = obj
            .pointer("/spec/template/metadata/labels")
            .filter(|l| l.is_object())
            .cloned();
        if let Some(spec) = ensure_obj(obj, "spec") {
            default_job_spec(spec);
        }
        // Job labels default to the template's when unset.
        if let Some(labels) = template_labels {
            if let Some(meta) = ensure_obj(obj, "metadata") {
                let empty = meta
                    .get("labels")
                    .and_then(Value::as_object)
                    .is_none_or(Map::is_empty);
                if empty {
                    meta.insert("labels".into(), labels);
                }
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_job(obj, true)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let old_labels = old.pointer("/spec/template/metadata/labels");
        let require_prefixed = old_labels.and_then(|l| l.get(JOB_NAME)).is_some()
            && old_labels.and_then(|l| l.get(CONTROLLER_UID)).is_some();
        let mut errs = validate_job(new, require_prefixed);
        // ValidateJobSpecUpdate re-runs the spec validation; upstream's message
        // (ErrorList.ToAggregate) shows each repeated error once.
        for e in validate_job_spec(new) {
            if !errs.contains(&e) {
                errs.push(e);
            }
        }
        errs.extend(validate_completions_update(new, old));
        errs.extend(selector_immutable(new, old));
        errs.extend(validate_template_update(new, old));
        for f in [
            "completionMode",
            "podFailurePolicy",
            "backoffLimitPerIndex",
            "managedBy",
            "successPolicy",
        ] {
            let p = format!("/spec/{f}");
            errs.extend(immutable(
                new.pointer(&p),
                old.pointer(&p),
                &format!("spec.{f}"),
            ));
        }
        if new.get("status") != old.get("status") {
            errs.extend(validate_job_status_update(new, old));
        }
        errs
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        vec![(
            "status.successful",
            i64_at(obj, "/status/succeeded").unwrap_or(0).to_string(),
        )]
    }

    fn selectable_field_names(&self) -> &'static [&'static str] {
        &["status.successful"]
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Status", "string", "Status of the job.", 0),
            column("Completions", "string", "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.", 0),
            column("Duration", "string", "Time required to complete the job.", 0),
            age_column(),
            column("Containers", "string", CONTAINERS_DESC, 1),
            column("Images", "string", IMAGES_DESC, 1),
            column("Selector", "string", "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", 1),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let succeeded = i64_at(obj, "/status/succeeded").unwrap_or(0);
        let completions = match i64_at(obj, "/spec/completions") {
            Some(c) => format!("{succeeded}/{c}"),
            None => match i64_at(obj, "/spec/parallelism").unwrap_or(0) {
                p if p > 1 => format!("{succeeded}/1 of {p}"),
                _ => format!("{succeeded}/1"),
            },
        };
        let start = ptr_str(obj, "/status/startTime").and_then(parse_time);
        let end = ptr_str(obj, "/status/completionTime").and_then(parse_time);
        let duration = match (start, end) {
            (None, _) => String::new(),
            (Some(st), None) => human_duration(chrono::Utc::now().signed_duration_since(st)),
            (Some(st), Some(ct)) => human_duration(ct.signed_duration_since(st)),
        };
        let status = if condition_true(obj, "Complete") {
            "Complete"
        } else if condition_true(obj, "Failed") {
            "Failed"
        } else if is_set(obj.pointer("/metadata/deletionTimestamp")) {
            "Terminating"
        } else if condition_true(obj, "Suspended") {
            "Suspended"
        } else if condition_true(obj, "FailureTarget") {
            "FailureTarget"
        } else if condition_true(obj, "SuccessCriteriaMet") {
            "SuccessCriteriaMet"
        } else {
            "Running"
        };
        let (names, images) = container_cells(arr_at(obj, "/spec/template/spec/containers"));
        vec![
            s(status),
            s(completions),
            s(duration),
            age_cell(obj),
            s(names),
            s(images),
            s(format_label_selector(obj.pointer("/spec/selector"))),
        ]
    }
}

/// `validateCompletions` with elastic indexed jobs (GA): completions of an
/// Indexed job may change together with parallelism.
fn validate_completions_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let n = new.pointer("/spec/completions");
    let o = old.pointer("/spec/completions");
    let indexed = ptr_str(new, "/spec/completionMode") == Some("Indexed");
    if !indexed {
        return immutable(n, o, "spec.completions").into_iter().collect();
    }
    if n == o {
        return Vec::new();
    }
    let Some(c) = i64_at(new, "/spec/completions") else {
        return Vec::new();
    };
    if Some(c) != i64_at(new, "/spec/parallelism") {
        return vec![FieldError::invalid(
            "spec.completions",
            c,
            "can only be modified in tandem with spec.parallelism",
        )];
    }
    Vec::new()
}

/// The pod template is immutable, except scheduling directives of a job
/// that is suspended and never started.
fn validate_template_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut nt = new
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let mut ot = old
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let mutable =
        ptr_bool(old, "/spec/suspend") == Some(true) && !is_set(old.pointer("/status/startTime"));
    if mutable {
        for t in [&mut nt, &mut ot] {
            if let Some(spec) = t.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("nodeSelector");
                spec.remove("tolerations");
                spec.remove("schedulingGates");
                if let Some(aff) = spec.get_mut("affinity").and_then(Value::as_object_mut) {
                    aff.remove("nodeAffinity");
                }
                if spec
                    .get("affinity")
                    .and_then(Value::as_object)
                    .is_some_and(Map::is_empty)
                {
                    spec.remove("affinity");
                }
            }
            if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("labels");
                meta.remove("annotations");
            }
        }
    }
    if nt == ot {
        return Vec::new();
    }
    vec![FieldError::invalid(
        "spec.template",
        new.pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null),
        "field is immutable",
    )]
}

// ---------------------------------------------------------------------------
// CronJobs
// ---------------------------------------------------------------------------

static CRONJOBS: ResourceInfo = ResourceInfo {
    group: "batch",
    version: "v1",
    kind: "CronJob",
    plural: "cronjobs",
    singular: "cronjob",
    short_names: &["cj"],
    categories: &["all"],
    namespaced: true,
    definition: "io.k8s.api.batch.v1.CronJob",
    subresources: &[Subresource::Status],
    read_only: false,
    storage_segment: "cronjobs",
    storage_api_version: "batch/v1",
};

pub struct CronJobs;

impl Strategy for CronJobs {
    fn info(&self) -> &ResourceInfo {
        &CRONJOBS
    }

    fn default(&self, obj: &mut Value) {
        let Some(spec) = ensure_obj(obj, "spec") else {
            return;
        };
        if spec
            .get("concurrencyPolicy")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            spec.insert("concurrencyPolicy".into(), s("Allow"));
        }
        set_default(spec, "suspend", Value::Bool(false));
        set_default(spec, "successfulJobsHistoryLimit", Value::from(3));
        set_default(spec, "failedJobsHistoryLimit", Value::from(1));
        if let Some(js) = obj
            .pointer_mut("/spec/jobTemplate/spec")
            .and_then(Value::as_object_mut)
        {
            default_pod_failure_policy(js);
            if let Some(t) = js.get_mut("template") {
                crate::other::common::default_pod_template(t);
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = validate_cronjob_spec(obj, None);
        let name = ptr_str(obj, "/metadata/name").unwrap_or("");
        if name.len() > 52 {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                "must be no more than 52 characters",
            ));
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        // Status writes add nothing beyond metadata upstream.
        validate_cronjob_spec(new, Some(old))
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.", 0),
            column("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process.", 0),
            column("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions. Defaults to false.", 0),
            column("Active", "integer", "A list of pointers to currently running jobs.", 0),
            column("Last Schedule", "string", "Information when was the last time the job was successfully scheduled.", 0),
            age_column(),
            column("Containers", "string", CONTAINERS_DESC, 1),
            column("Images", "string", IMAGES_DESC, 1),
            column("Selector", "string", "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", 1),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let last = match ptr_str(obj, "/status/lastScheduleTime") {
            Some(t) => since(Some(t)),
            None => "<none>".to_string(),
        };
        let suspend = match ptr_bool(obj, "/spec/suspend") {
            Some(b) => Value::Bool(b),
            None => s("<unset>"),
        };
        let (names, images) = container_cells(arr_at(
            obj,
            "/spec/jobTemplate/spec/template/spec/containers",
        ));
        vec![
            s(ptr_str(obj, "/spec/schedule").unwrap_or("")),
            s(ptr_str(obj, "/spec/timeZone").unwrap_or("<none>")),
            suspend,
            Value::from(arr_at(obj, "/status/active").len()),
            s(last),
            age_cell(obj),
            s(names),
            s(images),
            s(format_label_selector(
                obj.pointer("/spec/jobTemplate/spec/selector"),
            )),
        ]
    }
}

fn validate_cronjob_spec(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let schedule = ptr_str(obj, "/spec/schedule").unwrap_or("");
    let tz = obj.pointer("/spec/timeZone").filter(|v| !v.is_null());
    if schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else {
        let allow_tz = old
            .and_then(|o| ptr_str(o, "/spec/schedule"))
            .is_some_and(|s| s.contains("TZ"));
        if let Err(e) = validate_schedule(schedule) {
            errs.push(FieldError::invalid("spec.schedule", schedule, e));
        }
        if allow_tz && schedule.contains("TZ") && tz.is_some() {
            errs.push(FieldError::invalid(
                "spec.schedule",
                schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && schedule.contains("TZ") {
            errs.push(FieldError::invalid(
                "spec.schedule",
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    errs.extend(nonnegative(
        obj,
        "/spec/startingDeadlineSeconds",
        "spec.startingDeadlineSeconds",
    ));
    let old_tz = old
        .and_then(|o| o.pointer("/spec/timeZone"))
        .filter(|v| !v.is_null());
    if old.is_none() || old_tz != tz {
        errs.extend(validate_time_zone(tz));
    }
    match ptr_str(obj, "/spec/concurrencyPolicy").unwrap_or("") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
        other => errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let jt_spec = obj
        .pointer("/spec/jobTemplate/spec")
        .cloned()
        .unwrap_or(Value::Null);
    errs.extend(validate_job_spec_body(&jt_spec, "spec.jobTemplate.spec"));
    if let Some(sel) = jt_spec.get("selector").filter(|v| !v.is_null()) {
        errs.push(invalid_raw(
            "spec.jobTemplate.spec.selector",
            &go_label_selector(sel),
            "`selector` will be auto-generated",
        ));
    }
    if ptr_bool(&jt_spec, "/manualSelector") == Some(true) {
        errs.push(FieldError::not_supported(
            "spec.jobTemplate.spec.manualSelector",
            true,
            &["nil", "false"],
        ));
    }
    errs.extend(nonnegative(
        obj,
        "/spec/successfulJobsHistoryLimit",
        "spec.successfulJobsHistoryLimit",
    ));
    errs.extend(nonnegative(
        obj,
        "/spec/failedJobsHistoryLimit",
        "spec.failedJobsHistoryLimit",
    ));
    errs
}

/// `validateTimeZone`: IANA names only, known to the tz database.
fn validate_time_zone(tz: Option<&Value>) -> Vec<FieldError> {
    let Some(tz) = tz else { return Vec::new() };
    let path = "spec.timeZone";
    let Some(name) = tz.as_str() else {
        return vec![FieldError::invalid(
            path,
            tz.clone(),
            "timeZone must be nil or non-empty string",
        )];
    };
    if name.is_empty() {
        return vec![FieldError::invalid(
            path,
            name,
            "timeZone must be nil or non-empty string",
        )];
    }
    for part in name.split('/') {
        let ok_chars = !part.is_empty()
            && part.len() <= 14
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'));
        if part == "." || part == ".." || part.starts_with('-') || !ok_chars {
            return vec![FieldError::invalid(
                path,
                name,
                format!("unknown time zone {name}"),
            )];
        }
    }
    let mut errs = Vec::new();
    if name.eq_ignore_ascii_case("Local") {
        errs.push(FieldError::invalid(
            path,
            name,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    if !time_zone_known(name) {
        errs.push(FieldError::invalid(
            path,
            name,
            format!("unknown time zone {name}"),
        ));
    }
    errs
}

/// Whether Go's `time.LoadLocation` (with the embedded tz database) knows
/// the zone: the system zoneinfo when present, else the IANA area prefixes.
fn time_zone_known(name: &str) -> bool {
    if name == "UTC" || name == "Local" {
        return true;
    }
    let dir = std::path::Path::new("/usr/share/zoneinfo");
    if dir.is_dir() {
        return dir.join(name).is_file();
    }
    const AREAS: &[&str] = &[
        "Africa",
        "America",
        "Antarctica",
        "Arctic",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
        "Etc",
    ];
    const SINGLES: &[&str] = &[
        "GMT",
        "UCT",
        "Universal",
        "Zulu",
        "EST",
        "MST",
        "HST",
        "EST5EDT",
        "CST6CDT",
        "MST7MDT",
        "PST8PDT",
        "CET",
        "EET",
        "WET",
        "MET",
    ];
    match name.split_once('/') {
        Some((area, rest)) => AREAS.contains(&area) && !rest.is_empty(),
        None => SINGLES.contains(&name),
    }
}

// ---------------------------------------------------------------------------
// Cron schedules (robfig/cron v3 ParseStandard)
// ---------------------------------------------------------------------------

struct Bounds {
    min: u64,
    max: u64,
    names: &'static [(&'static str, u64)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// Validates a CronJob schedule as the standard cron parser upstream uses
/// does: five fields or a descriptor (`@daily`, `@every 1h30m`, ...), with an
/// optional `TZ=`/`CRON_TZ=` prefix. The error text is the parser's.
pub fn validate_schedule(spec: &str) -> Result<(), String> {
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let mut spec = spec.to_string();
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let eq = spec.find('=').unwrap_or(0);
        let Some(sp) = spec.find(' ') else {
            let loc = spec.get(eq + 1..).unwrap_or("");
            return Err(format!(
                "provided bad location {loc}: unknown time zone {loc}"
            ));
        };
        let loc = spec.get(eq + 1..sp).unwrap_or("").to_string();
        if !loc.is_empty() && !time_zone_known(&loc) {
            return Err(format!(
                "provided bad location {loc}: unknown time zone {loc}"
            ));
        }
        spec = spec.get(sp..).unwrap_or("").trim().to_string();
    }
    if spec.starts_with('@') {
        return parse_descriptor(&spec);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    for (f, b) in fields.iter().zip([&MINUTES, &HOURS, &DOM, &MONTHS, &DOW]) {
        for expr in f.split(',').filter(|e| !e.is_empty()) {
            check_range(expr, b)?;
        }
    }
    Ok(())
}

fn parse_descriptor(d: &str) -> Result<(), String> {
    match d {
        "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight" | "@hourly" => {
            Ok(())
        }
        _ => match d.strip_prefix("@every ") {
            Some(dur) => {
                parse_go_duration(dur).map_err(|e| format!("failed to parse duration {d}: {e}"))
            }
            None => Err(format!("unrecognized descriptor: {d}")),
        },
    }
}

fn check_range(expr: &str, b: &Bounds) -> Result<(), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end);
    if low_and_high[0] == "*" || low_and_high[0] == "?" {
        start = b.min;
        end = b.max;
    } else {
        start = parse_int_or_name(low_and_high[0], b.names)?;
        end = match low_and_high.len() {
            1 => start,
            2 => parse_int_or_name(low_and_high[1], b.names)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = must_parse_int(range_and_step[1])?;
            if single {
                end = b.max;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(())
}

fn parse_int_or_name(expr: &str, names: &[(&str, u64)]) -> Result<u64, String> {
    let lower = expr.to_ascii_lowercase();
    if let Some((_, n)) = names.iter().find(|(k, _)| *k == lower) {
        return Ok(*n);
    }
    must_parse_int(expr)
}

/// `mustParseInt`: Go's `strconv.Atoi` plus a sign check.
fn must_parse_int(expr: &str) -> Result<u64, String> {
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: invalid syntax"
        ));
    }
    let n: i64 = expr.parse().map_err(|_| {
        format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: value out of range"
        )
    })?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    Ok(n as u64)
}

/// Go's `time.ParseDuration` grammar (only whether it parses matters here).
fn parse_go_duration(orig: &str) -> Result<(), String> {
    let invalid = || format!("time: invalid duration {orig:?}");
    let mut s = orig.strip_prefix(['+', '-']).unwrap_or(orig);
    if s == "0" {
        return Ok(());
    }
    if s.is_empty() {
        return Err(invalid());
    }
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut rest = &s[int_len..];
        let mut frac_len = 0;
        if let Some(r) = rest.strip_prefix('.') {
            frac_len = r.bytes().take_while(u8::is_ascii_digit).count();
            rest = &r[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {orig:?}"));
        }
        if !matches!(unit, "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h") {
            return Err(format!("time: unknown unit {unit:?} in duration {orig:?}"));
        }
        s = &rest[unit_len..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job() -> Value {
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "0b5e1c9a-1111-2222-3333-444455556666"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}}
        })
    }

    fn create(obj: &mut Value) -> Vec<String> {
        Jobs.prepare_for_create(obj);
        Jobs.default(obj);
        Jobs.validate(obj).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn job_selector_is_generated_from_the_uid() {
        let mut j = job();
        let errs = create(&mut j);
        assert!(errs.is_empty(), "{errs:?}");
        let uid = "0b5e1c9a-1111-2222-3333-444455556666";
        assert_eq!(
            j["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        );
        let labels = &j["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["controller-uid"], uid);
        assert_eq!(labels["batch.kubernetes.io/controller-uid"], uid);
        assert_eq!(labels["job-name"], "pi");
        assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
        assert_eq!(
            j["metadata"]["labels"], *labels,
            "job labels default to the template's"
        );
    }

    #[test]
    fn job_defaults_match_upstream() {
        let mut j = job();
        create(&mut j);
        let spec = &j["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["manualSelector"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    }

    #[test]
    fn job_restart_policy_must_not_be_always() {
        let mut j = job();
        j["spec"]["template"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("restartPolicy");
        let errs = create(&mut j);
        assert_eq!(
            errs,
            vec!["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"".to_string()]
        );
    }

    #[test]
    fn manual_selector_must_be_given_and_match() {
        let mut j = job();
        j["spec"]["manualSelector"] = json!(true);
        let errs = create(&mut j);
        assert!(
            errs.contains(&"spec.selector: Required value".to_string()),
            "{errs:?}"
        );
    }

    #[test]
    fn job_template_is_immutable() {
        let mut old = job();
        create(&mut old);
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:5");
        let errs: Vec<String> = Jobs
            .validate_update(&new, &old)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("spec.template: Invalid value: ")
                && errs[0].ends_with(": field is immutable")
        );
    }

    #[test]
    fn job_table_row_shows_status_and_completions() {
        let mut j = job();
        create(&mut j);
        j["status"] = json!({"succeeded": 1, "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:00:05Z",
            "conditions": [{"type": "Complete", "status": "True"}]});
        let row = Jobs.table_row(&j);
        assert_eq!(row[0], "Complete");
        assert_eq!(row[1], "1/1");
        assert_eq!(row[2], "5s");
        assert_eq!(row.len(), Jobs.table_columns().len());
        assert_eq!(
            Jobs.selectable_fields(&j),
            vec![("status.successful", "1".to_string())]
        );
    }

    #[test]
    fn cron_schedules_parse_like_robfig() {
        for ok in [
            "*/5 * * * *",
            "0 0 * * 0",
            "15 2 1 jan-mar mon,fri",
            "@hourly",
            "@every 1h30m",
            "0 */2 1-31/2 * ?",
        ] {
            assert_eq!(validate_schedule(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            validate_schedule("invalid"),
            Err("expected exactly 5 fields, found 1: [invalid]".into())
        );
        assert_eq!(
            validate_schedule("60 * * * *"),
            Err("end of range (60) above maximum (59): 60".into())
        );
        assert_eq!(
            validate_schedule("* * 0 * *"),
            Err("beginning of range (0) below minimum (1): 0".into())
        );
        assert_eq!(
            validate_schedule("* * * * 7"),
            Err("end of range (7) above maximum (6): 7".into())
        );
        assert_eq!(
            validate_schedule("a * * * *"),
            Err("failed to parse int from a: strconv.Atoi: parsing \"a\": invalid syntax".into())
        );
        assert_eq!(
            validate_schedule("@often"),
            Err("unrecognized descriptor: @often".into())
        );
        assert_eq!(
            validate_schedule("@every x"),
            Err("failed to parse duration @every x: time: invalid duration \"x\"".into())
        );
        assert_eq!(
            validate_schedule("*/0 * * * *"),
            Err("step of range should be a positive number: */0".into())
        );
    }

    #[test]
    fn cronjob_defaults_and_validation() {
        let mut cj = json!({
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}
        });
        CronJobs.default(&mut cj);
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["suspend"], false);
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
        assert!(CronJobs.validate(&cj).is_empty());
        cj["spec"]["schedule"] = json!("bad");
        cj["spec"]["timeZone"] = json!("Mars/Olympus");
        let errs: Vec<String> = CronJobs
            .validate(&cj)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            vec![
                "spec.schedule: Invalid value: \"bad\": expected exactly 5 fields, found 1: [bad]"
                    .to_string(),
                "spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus"
                    .to_string(),
            ]
        );
        cj["spec"]["schedule"] = json!("TZ=UTC 0 * * * *");
        cj["spec"].as_object_mut().unwrap().remove("timeZone");
        let errs: Vec<String> = CronJobs
            .validate(&cj)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs, vec!["spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead".to_string()]);
    }

    #[test]
    fn cronjob_table_row() {
        let cj = json!({"metadata": {"name": "hello"}, "spec": {"schedule": "@daily", "suspend": false, "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}}});
        let row = CronJobs.table_row(&cj);
        assert_eq!(
            row[..5],
            [
                json!("@daily"),
                json!("<none>"),
                json!(false),
                json!(0),
                json!("<none>")
            ]
        );
        assert_eq!(row[8], "<none>");
        assert_eq!(row.len(), CronJobs.table_columns().len());
    }
}
