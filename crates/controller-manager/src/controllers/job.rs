//! Job controller (upstream pkg/controller/job): completions, parallelism,
//! backoffLimit (with exponential pod re-creation back-off), activeDeadlineSeconds,
//! Indexed completion mode (completedIndexes, backoffLimitPerIndex/failedIndexes),
//! podFailurePolicy, successPolicy, suspend/resume, and pod tracking through the
//! `batch.kubernetes.io/job-tracking` finalizer and status.uncountedTerminatedPods.
//! Conditions: SuccessCriteriaMet/Complete, FailureTarget/Failed, Suspended.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::podutil::{self, api_time, to_utc};

pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
pub const INDEX_FAILURE_COUNT_ANNOTATION: &str = "batch.kubernetes.io/job-index-failure-count";
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
pub const DEFAULT_BACKOFF_LIMIT: i32 = 6;
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(360);

// ---------------------------------------------------------------- helpers

pub fn is_indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

pub fn has_condition(job: &Job, type_: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// Finished: Complete or Failed is True. Returns the type and its transition time.
pub fn finished(job: &Job) -> Option<(String, Option<DateTime<Utc>>)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find_map(|c| {
            ((c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
                .then(|| (c.type_.clone(), c.last_transition_time.as_ref().map(to_utc)))
        })
}

/// The failures of the pod's index before this pod (its
/// job-index-failure-count annotation, 0 when absent).
fn index_failure_count(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INDEX_FAILURE_COUNT_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn pod_index(pod: &Pod) -> Option<i32> {
    let v = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(COMPLETION_INDEX_ANNOTATION))
        .or_else(|| {
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(COMPLETION_INDEX_ANNOTATION))
        })?;
    v.parse::<i32>().ok().filter(|i| *i >= 0)
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

/// Parses an index interval list like "1,3-5,7".
pub fn parse_indexes(s: Option<&str>) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    if b >= a && b - a < 1_000_000 {
                        out.extend(a..=b);
                    }
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    out.insert(a);
                }
            }
        }
    }
    out
}

/// Formats indexes as an interval list ("1,3-5,7").
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// The time a pod finished (latest container finishedAt, else its Ready condition transition).
fn finish_time(pod: &Pod) -> Option<DateTime<Utc>> {
    let st = pod.status.as_ref()?;
    let from_containers = st
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| {
            c.state
                .as_ref()?
                .terminated
                .as_ref()?
                .finished_at
                .as_ref()
                .map(to_utc)
        })
        .max();
    from_containers.or_else(|| {
        st.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .and_then(|c| c.last_transition_time.as_ref().map(to_utc))
    })
}

/// Back-off before re-creating pods after `failures` failures (10s doubling, at most 6m).
pub fn backoff_delay(failures: i32) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let shift = (failures - 1).min(10) as u32;
    (BACKOFF_BASE * 2u32.pow(shift)).min(BACKOFF_MAX)
}

fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(api_time(now)),
        last_transition_time: Some(api_time(now)),
    }
}

/// Sets a condition; keeps the transition time when the status doesn't change.
/// Returns whether anything changed.
pub fn set_condition(status: &mut JobStatus, cond: JobCondition) -> bool {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == cond.type_) {
        if c.status == cond.status && c.reason == cond.reason && c.message == cond.message {
            return false;
        }
        let keep_time = c.status == cond.status;
        let t = c.last_transition_time.clone();
        *c = cond;
        if keep_time {
            c.last_transition_time = t;
        }
        return true;
    }
    conds.push(cond);
    true
}

fn condition<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

// ---------------------------------------------------------------- pod failure policy

/// What a podFailurePolicy rule says about a failed pod.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyAction {
    FailJob(String),
    FailIndex,
    Ignore,
    Count,
}

/// Evaluates spec.podFailurePolicy for a failed pod: the first matching rule wins;
/// no match means Count.
pub fn match_pod_failure_policy(job: &Job, pod: &Pod) -> PolicyAction {
    let Some(policy) = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref())
    else {
        return PolicyAction::Count;
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let st = pod.status.as_ref();
    for (i, rule) in policy.rules.iter().enumerate() {
        let mut matched: Option<String> = None;
        if let Some(req) = &rule.on_exit_codes {
            let statuses = st
                .map(|s| {
                    s.init_container_statuses
                        .iter()
                        .flatten()
                        .chain(s.container_statuses.iter().flatten())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            for cs in statuses {
                if req.container_name.as_deref().is_some_and(|n| n != cs.name) {
                    continue;
                }
                let Some(code) = cs
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| t.exit_code)
                else {
                    continue;
                };
                if code == 0 {
                    continue;
                }
                let hit = match req.operator.as_str() {
                    "In" => req.values.contains(&code),
                    "NotIn" => !req.values.contains(&code),
                    _ => false,
                };
                if hit {
                    matched = Some(format!(
                        "Container {} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {i}",
                        cs.name, rule.action
                    ));
                    break;
                }
            }
        } else if let Some(pats) = &rule.on_pod_conditions {
            for pat in pats {
                let status = pat.status.as_str();
                if podutil::condition(pod, &pat.type_).is_some_and(|c| c.status == status) {
                    matched = Some(format!(
                        "Pod {ns}/{name} has condition {} matching {} rule at index {i}",
                        pat.type_, rule.action
                    ));
                    break;
                }
            }
        }
        if let Some(msg) = matched {
            return match rule.action.as_str() {
                "FailJob" => PolicyAction::FailJob(msg),
                "FailIndex" => PolicyAction::FailIndex,
                "Ignore" => PolicyAction::Ignore,
                _ => PolicyAction::Count,
            };
        }
    }
    PolicyAction::Count
}

// ---------------------------------------------------------------- sync plan

#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

impl JobEvent {
    fn normal(reason: &'static str, message: impl Into<String>) -> Self {
        JobEvent {
            warning: false,
            reason,
            message: message.into(),
        }
    }
    fn warning(reason: &'static str, message: impl Into<String>) -> Self {
        JobEvent {
            warning: true,
            reason,
            message: message.into(),
        }
    }
}

/// Everything one sync of a Job wants done.
#[derive(Debug, Default)]
pub struct JobPlan {
    /// Status to write first, holding newly terminated pods in uncountedTerminatedPods
    /// (None when it equals the current status).
    pub interim_status: Option<JobStatus>,
    /// Pods (names) to strip the tracking finalizer from.
    pub remove_finalizers: Vec<String>,
    /// Active pods (names) to delete.
    pub delete: Vec<String>,
    /// Pods to create: `Some(index)` for Indexed jobs, `None` otherwise.
    pub create: Vec<Option<i32>>,
    /// The final status (counts moved out of uncountedTerminatedPods once the
    /// finalizers are gone).
    pub status: JobStatus,
    pub events: Vec<JobEvent>,
    pub requeue_after: Option<Duration>,
    /// Failures so far per index (backoffLimitPerIndex): the value of the
    /// `batch.kubernetes.io/job-index-failure-count` annotation of a re-created pod.
    pub index_failures: BTreeMap<i32, i32>,
}

/// Computes one sync of `job` given all of its pods.
pub fn plan(job: &Job, pods: &[&Pod], now: DateTime<Utc>) -> JobPlan {
    let mut p = JobPlan::default();
    if job
        .spec
        .as_ref()
        .and_then(|s| s.backoff_limit_per_index)
        .is_some()
    {
        for q in pods
            .iter()
            .filter(|q| podutil::phase(q) == "Failed" || podutil::is_terminating(q))
        {
            if let Some(i) = pod_index(q) {
                let e = p.index_failures.entry(i).or_insert(0);
                *e = (*e).max(index_failure_count(q) + 1);
            }
        }
    }
    let spec = job.spec.clone().unwrap_or_default();
    let old_status = job.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    let indexed = is_indexed(job);
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let backoff_limit = spec.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT);
    let suspended = spec.suspend == Some(true);
    let job_name = job.metadata.name.clone().unwrap_or_default();

    if finished(job).is_some() {
        p.remove_finalizers = pods
            .iter()
            .filter(|q| has_finalizer(q))
            .filter_map(|q| q.metadata.name.clone())
            .collect();
        status.uncounted_terminated_pods = None;
        p.status = status;
        return p;
    }

    // --- account for terminated pods (finalizer tracking)
    let mut unc_succ: BTreeSet<String> = old_status
        .uncounted_terminated_pods
        .as_ref()
        .and_then(|u| u.succeeded.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut unc_fail: BTreeSet<String> = old_status
        .uncounted_terminated_pods
        .as_ref()
        .and_then(|u| u.failed.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut completed_idx = parse_indexes(old_status.completed_indexes.as_deref());
    let mut failed_idx = parse_indexes(old_status.failed_indexes.as_deref());
    let per_index = spec.backoff_limit_per_index;
    let mut fail_job: Option<(String, String)> = None; // (reason, message)
    let mut newly_failed_times: Vec<DateTime<Utc>> = Vec::new();

    for pod in pods {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if !has_finalizer(pod) || unc_succ.contains(&uid) || unc_fail.contains(&uid) {
            continue;
        }
        let ph = podutil::phase(pod);
        let terminating = podutil::is_terminating(pod);
        if ph == "Succeeded" {
            unc_succ.insert(uid);
            if indexed {
                if let Some(i) = pod_index(pod).filter(|i| completions.is_none_or(|c| *i < c)) {
                    completed_idx.insert(i);
                }
            }
            continue;
        }
        let only_failed = spec.pod_failure_policy.is_some()
            || spec.pod_replacement_policy.as_deref() == Some("Failed");
        let counts_failed = ph == "Failed" || (terminating && !only_failed && !suspended);
        if counts_failed {
            match match_pod_failure_policy(job, pod) {
                PolicyAction::Ignore => {
                    p.remove_finalizers
                        .push(pod.metadata.name.clone().unwrap_or_default());
                    continue;
                }
                PolicyAction::FailJob(msg) => {
                    if fail_job.is_none() {
                        fail_job = Some(("PodFailurePolicy".into(), msg));
                    }
                }
                PolicyAction::FailIndex => {
                    if let Some(i) = pod_index(pod) {
                        failed_idx.insert(i);
                    }
                }
                PolicyAction::Count => {
                    if let (true, Some(limit), Some(i)) = (indexed, per_index, pod_index(pod)) {
                        if index_failure_count(pod) + 1 > limit {
                            failed_idx.insert(i);
                        }
                    }
                }
            }
            newly_failed_times.push(finish_time(pod).unwrap_or(now));
            unc_fail.insert(uid);
        } else if terminating && suspended && ph != "Running" && ph != "Pending" {
            p.remove_finalizers
                .push(pod.metadata.name.clone().unwrap_or_default());
        }
    }
    // Pods deleted on suspend without reaching a terminal phase: drop their finalizer.
    if suspended {
        for pod in pods {
            if podutil::is_terminating(pod) && has_finalizer(pod) && !podutil::is_terminal(pod) {
                p.remove_finalizers
                    .push(pod.metadata.name.clone().unwrap_or_default());
            }
        }
    }

    let uncounted_nonempty = !unc_succ.is_empty() || !unc_fail.is_empty();
    let mut interim = old_status.clone();
    interim.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: (!unc_succ.is_empty()).then(|| unc_succ.iter().cloned().collect()),
        failed: (!unc_fail.is_empty()).then(|| unc_fail.iter().cloned().collect()),
    });
    if interim.uncounted_terminated_pods != old_status.uncounted_terminated_pods
        && (uncounted_nonempty || old_status.uncounted_terminated_pods.is_some())
    {
        p.interim_status = Some(interim);
    }
    for pod in pods {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if has_finalizer(pod) && (unc_succ.contains(&uid) || unc_fail.contains(&uid)) {
            p.remove_finalizers
                .push(pod.metadata.name.clone().unwrap_or_default());
        }
    }
    p.remove_finalizers.sort();
    p.remove_finalizers.dedup();

    // Final counts (assuming the finalizers go).
    let succeeded = old_status.succeeded.unwrap_or(0) + unc_succ.len() as i32;
    let failed = old_status.failed.unwrap_or(0) + unc_fail.len() as i32;
    status.succeeded = Some(succeeded);
    status.failed = Some(failed);
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    if indexed {
        status.completed_indexes = Some(format_indexes(&completed_idx));
        if per_index.is_some() {
            status.failed_indexes = Some(format_indexes(&failed_idx));
        }
    }

    // --- current pods
    let active: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|q| podutil::is_active(q))
        .collect();
    let terminating = pods
        .iter()
        .filter(|q| podutil::is_terminating(q) && !podutil::is_terminal(q))
        .count() as i32;
    status.active = Some(active.len() as i32);
    status.ready = Some(active.iter().filter(|q| podutil::is_ready(q)).count() as i32);
    status.terminating = Some(terminating);

    // --- suspend / resume
    if suspended {
        for q in &active {
            p.delete.push(q.metadata.name.clone().unwrap_or_default());
        }
        if set_condition(
            &mut status,
            new_condition("Suspended", "True", "JobSuspended", "Job suspended", now),
        ) {
            p.events
                .push(JobEvent::normal("Suspended", "Job suspended"));
        }
        status.active = Some(0);
        status.ready = Some(0);
        p.status = status;
        return p;
    }
    if condition(&status, "Suspended").is_some() {
        set_condition(
            &mut status,
            new_condition("Suspended", "False", "JobResumed", "Job resumed", now),
        );
        p.events.push(JobEvent::normal("Resumed", "Job resumed"));
        status.start_time = Some(api_time(now));
    }
    if status.start_time.is_none() {
        status.start_time = Some(api_time(now));
    }
    let start = status.start_time.as_ref().map(to_utc).unwrap_or(now);

    // --- failure / success criteria
    let mut target: Option<(String, String)> = condition(&status, "FailureTarget").map(|c| {
        (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    });
    let mut success: Option<(String, String)> = condition(&status, "SuccessCriteriaMet").map(|c| {
        (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    });
    if target.is_none() && success.is_none() {
        if let Some(f) = fail_job {
            target = Some(f);
        } else if per_index.is_none() && failed > backoff_limit {
            target = Some((
                "BackoffLimitExceeded".into(),
                "Job has reached the specified backoff limit".into(),
            ));
        } else if let Some(ads) = spec.active_deadline_seconds {
            if now >= start + chrono::Duration::seconds(ads) {
                target = Some((
                    "DeadlineExceeded".into(),
                    "Job was active longer than specified deadline".into(),
                ));
            } else {
                let left = (start + chrono::Duration::seconds(ads) - now)
                    .to_std()
                    .unwrap_or_default();
                p.requeue_after = Some(left);
            }
        }
        if target.is_none() && indexed && per_index.is_some() {
            if let Some(max) = spec.max_failed_indexes {
                if failed_idx.len() as i32 > max {
                    target = Some((
                        "MaxFailedIndexesExceeded".into(),
                        "Job has exceeded the specified maximal number of failed indexes".into(),
                    ));
                }
            }
            let c = completions.unwrap_or(0);
            if target.is_none()
                && !failed_idx.is_empty()
                && (completed_idx.len() + failed_idx.len()) as i32 >= c
            {
                target = Some(("FailedIndexes".into(), "Job has failed indexes".into()));
            }
        }
        if target.is_none() {
            success = success_criteria(job, succeeded, &completed_idx, active.len());
        }
    }

    if let Some((reason, message)) = target {
        if set_condition(
            &mut status,
            new_condition("FailureTarget", "True", &reason, &message, now),
        ) {
            p.events
                .push(JobEvent::warning(event_reason(&reason), message.clone()));
        }
        for q in &active {
            p.delete.push(q.metadata.name.clone().unwrap_or_default());
        }
        if active.is_empty() && terminating == 0 {
            set_condition(
                &mut status,
                new_condition("Failed", "True", &reason, &message, now),
            );
        }
        status.active = Some(0);
        status.ready = Some(0);
        p.status = status;
        return p;
    }
    if let Some((reason, message)) = success {
        set_condition(
            &mut status,
            new_condition("SuccessCriteriaMet", "True", &reason, &message, now),
        );
        for q in &active {
            p.delete.push(q.metadata.name.clone().unwrap_or_default());
        }
        if active.is_empty() && terminating == 0 {
            set_condition(
                &mut status,
                new_condition("Complete", "True", &reason, &message, now),
            );
            status.completion_time = Some(api_time(now));
            p.events
                .push(JobEvent::normal("Completed", "Job completed"));
        }
        status.active = Some(0);
        status.ready = Some(0);
        p.status = status;
        return p;
    }

    // --- manage active pods
    let wait = if !newly_failed_times.is_empty() || failed > 0 {
        let last_fail = pods
            .iter()
            .filter(|q| podutil::phase(q) == "Failed")
            .filter_map(|q| finish_time(q))
            .chain(newly_failed_times.iter().copied())
            .max();
        match last_fail {
            Some(t) => {
                let until =
                    t + chrono::Duration::from_std(backoff_delay(failed)).unwrap_or_default();
                (until > now).then(|| (until - now).to_std().unwrap_or_default())
            }
            None => None,
        }
    } else {
        None
    };

    if indexed {
        let c = completions.unwrap_or(0);
        let mut seen: BTreeSet<i32> = BTreeSet::new();
        let mut sorted = active.clone();
        sorted.sort_by_key(|q| {
            (
                !podutil::is_ready(q),
                q.metadata.creation_timestamp.as_ref().map(to_utc),
            )
        });
        for q in &sorted {
            match pod_index(q) {
                Some(i)
                    if i < c
                        && !completed_idx.contains(&i)
                        && !failed_idx.contains(&i)
                        && seen.insert(i) => {}
                _ => p.delete.push(q.metadata.name.clone().unwrap_or_default()),
            }
        }
        let active_ok = seen.len() as i32;
        let want = parallelism
            .min(c - completed_idx.len() as i32 - failed_idx.len() as i32)
            .max(0);
        if active_ok > want {
            // Drop the highest indexes first.
            let extra: Vec<i32> = seen
                .iter()
                .rev()
                .take((active_ok - want) as usize)
                .copied()
                .collect();
            for q in &sorted {
                if pod_index(q).is_some_and(|i| extra.contains(&i)) {
                    p.delete.push(q.metadata.name.clone().unwrap_or_default());
                }
            }
        } else if active_ok < want {
            if let Some(w) = wait {
                p.requeue_after = Some(p.requeue_after.map_or(w, |r| r.min(w)));
            } else {
                let free = (0..c).filter(|i| {
                    !completed_idx.contains(i) && !failed_idx.contains(i) && !seen.contains(i)
                });
                p.create = free.take((want - active_ok) as usize).map(Some).collect();
            }
        }
    } else {
        let want = match completions {
            Some(c) => parallelism.min((c - succeeded).max(0)),
            None if succeeded > 0 => 0.min(active.len() as i32),
            None => parallelism,
        };
        let n = active.len() as i32;
        if n > want && !(completions.is_none() && succeeded > 0) {
            let mut sorted = active.clone();
            // Unscheduled, pending, not ready, then newest go first.
            sorted.sort_by_key(|q| {
                (
                    q.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some(),
                    podutil::phase(q) == "Running",
                    podutil::is_ready(q),
                    std::cmp::Reverse(q.metadata.creation_timestamp.as_ref().map(to_utc)),
                )
            });
            for q in sorted.iter().take((n - want) as usize) {
                p.delete.push(q.metadata.name.clone().unwrap_or_default());
            }
        } else if n < want {
            if let Some(w) = wait {
                p.requeue_after = Some(p.requeue_after.map_or(w, |r| r.min(w)));
            } else {
                p.create = vec![None; (want - n) as usize];
            }
        }
    }
    let _ = job_name;
    p.status = status;
    p
}

fn event_reason(reason: &str) -> &'static str {
    match reason {
        "BackoffLimitExceeded" => "BackoffLimitExceeded",
        "DeadlineExceeded" => "DeadlineExceeded",
        "PodFailurePolicy" => "PodFailurePolicy",
        "MaxFailedIndexesExceeded" => "MaxFailedIndexesExceeded",
        "FailedIndexes" => "FailedIndexes",
        _ => "Failed",
    }
}

/// Whether the job met its success criteria: completions reached (all indexes
/// for Indexed), a successPolicy rule, or (no completions) a success with nothing left running.
fn success_criteria(
    job: &Job,
    succeeded: i32,
    completed: &BTreeSet<i32>,
    active: usize,
) -> Option<(String, String)> {
    let spec = job.spec.as_ref()?;
    if let Some(sp) = &spec.success_policy {
        for (i, rule) in sp.rules.iter().enumerate() {
            let mut ok = true;
            let mut scope = completed.clone();
            if let Some(si) = &rule.succeeded_indexes {
                let want = parse_indexes(Some(si));
                ok &= want.is_subset(completed);
                scope = completed.intersection(&want).copied().collect();
            }
            if let Some(n) = rule.succeeded_count {
                ok &= scope.len() as i32 >= n;
            }
            if ok && (rule.succeeded_indexes.is_some() || rule.succeeded_count.is_some()) {
                return Some((
                    "SuccessPolicy".into(),
                    format!("Matched rules at index {i}"),
                ));
            }
        }
    }
    let reached = match (is_indexed(job), spec.completions) {
        (true, Some(c)) => completed.len() as i32 >= c,
        (false, Some(c)) => succeeded >= c,
        (_, None) => succeeded > 0 && active == 0,
    };
    reached.then(|| {
        (
            "CompletionsReached".into(),
            "Reached expected number of succeeded pods".into(),
        )
    })
}

// ---------------------------------------------------------------- pod template

pub fn job_owner_ref(job: &Job) -> OwnerReference {
    OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job.metadata.name.clone().unwrap_or_default(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The pod a Job creates (for `index` in Indexed mode): template labels and
/// annotations, the index annotation/label, hostname and JOB_COMPLETION_INDEX,
/// the tracking finalizer and the controller reference.
pub fn new_pod(job: &Job, index: Option<i32>) -> Pod {
    let tmpl: PodTemplateSpec = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let tmeta = tmpl.metadata.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let mut spec = tmpl.spec.unwrap_or_default();
    let generate_name = match index {
        Some(i) => {
            labels.insert(COMPLETION_INDEX_ANNOTATION.into(), i.to_string());
            annotations.insert(COMPLETION_INDEX_ANNOTATION.into(), i.to_string());
            if spec.hostname.as_deref().unwrap_or("").is_empty() {
                let mut h = format!("{name}-{i}");
                h.truncate(63);
                spec.hostname = Some(h.trim_end_matches('-').to_string());
            }
            let env = EnvVar {
                name: COMPLETION_INDEX_ENV.into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.labels['{COMPLETION_INDEX_ANNOTATION}']"),
                    }),
                    ..Default::default()
                }),
            };
            for c in spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten())
            {
                let envs = c.env.get_or_insert_with(Vec::new);
                if !envs.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
                    envs.push(env.clone());
                }
            }
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(vec![TRACKING_FINALIZER.into()]),
            owner_references: Some(vec![job_owner_ref(job)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Adds the per-index failure count annotation for a re-created index.
pub fn set_index_failure_count(pod: &mut Pod, count: i32) {
    pod.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(INDEX_FAILURE_COUNT_ANNOTATION.into(), count.to_string());
}

// ---------------------------------------------------------------- controller

use std::sync::Arc;

use client_base::events::Recorder;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Api;

use crate::informers::{owner_queue, split_key, Informer};
use crate::workqueue::{run_workers, WorkQueue};
use crate::ControllerContext;

fn owner_job_key(pod: &Pod) -> Option<String> {
    podutil::controller_key(&pod.metadata, |o| {
        o.kind == "Job" && o.api_version.starts_with("batch/")
    })
}

/// The job controller ("job-controller").
pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let jobs = ctx.informers.get::<Job>();
    let pods = ctx.informers.get::<Pod>();
    let queue = owner_queue(&jobs, &pods, ctx.stop.clone(), owner_job_key).await;
    let recorder = ctx.recorder("job-controller");
    let workers = ctx.options.concurrent_job_syncs.max(1);
    let client = ctx.client.clone();
    let q2 = queue.clone();
    run_workers(
        queue,
        workers,
        ctx.stop.clone(),
        "job-controller",
        move |key: String| {
            let (client, jobs, recorder, queue) =
                (client.clone(), jobs.clone(), recorder.clone(), q2.clone());
            async move { sync_job(&client, &jobs, &recorder, &queue, &key).await }
        },
    )
    .await;
    Ok(())
}

async fn sync_job(
    client: &kube::Client,
    jobs: &Informer<Job>,
    recorder: &Recorder,
    queue: &WorkQueue<String>,
    key: &str,
) -> anyhow::Result<()> {
    let (ns, name) = split_key(key);
    let ns = ns.unwrap_or("default");
    let Some(cached) = jobs.get_by_key(key) else {
        return Ok(());
    };
    if cached.metadata.deletion_timestamp.is_some() && finished(&cached).is_none() {
        // Being deleted: let the garbage collector take the pods; just release finalizers.
    }
    let job_api: Api<Job> = Api::namespaced(client.clone(), ns);
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    // Live state: the pod cache may lag behind our own creations.
    let mut job: Job = match job_api.get(name).await {
        Ok(j) => j,
        Err(e) if podutil::is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if job
        .spec
        .as_ref()
        .and_then(|s| s.managed_by.as_deref())
        .is_some_and(|m| m != "kubernetes.io/job-controller")
    {
        return Ok(());
    }
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let sel = job
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .map(podutil::label_selector_string)
        .unwrap_or_default();
    let lp = if sel.is_empty() {
        ListParams::default().labels(&format!("batch.kubernetes.io/controller-uid={uid}"))
    } else {
        ListParams::default().labels(&sel)
    };
    let all = pod_api.list(&lp).await?.items;
    let owned: Vec<&Pod> = all
        .iter()
        .filter(|p| podutil::controller_ref(&p.metadata).is_some_and(|o| o.uid == uid))
        .collect();
    let now = Utc::now();
    let was_finished = finished(&job).is_some();
    let plan = plan(&job, &owned, now);

    // 1. Record newly terminated pods as uncounted before touching their finalizers.
    if let Some(interim) = plan.interim_status.clone() {
        job.status = Some(interim);
        job = job_api
            .replace_status(name, &PostParams::default(), &job)
            .await?;
    }
    // 2. Release finalizers.
    let mut release_failed = false;
    for pname in &plan.remove_finalizers {
        let Some(pod) = owned
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(pname.as_str()))
        else {
            continue;
        };
        let rest: Vec<String> = pod
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != TRACKING_FINALIZER)
            .cloned()
            .collect();
        let patch = serde_json::json!({"metadata": {"finalizers": rest, "resourceVersion": pod.metadata.resource_version}});
        match pod_api
            .patch(pname, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if podutil::is_not_found(&e) => {}
            Err(e) => {
                tracing::debug!("job {key}: removing finalizer of {pname}: {e}");
                release_failed = true;
            }
        }
    }
    if release_failed {
        anyhow::bail!("could not remove the tracking finalizer of every pod");
    }
    // 3. Delete and create pods.
    for pname in &plan.delete {
        match pod_api.delete(pname, &DeleteParams::default()).await {
            Ok(_) => recorder.normal(&job, "SuccessfulDelete", format!("Deleted pod: {pname}")),
            Err(e) if podutil::is_not_found(&e) => {}
            Err(e) => {
                recorder.warning(&job, "FailedDelete", format!("Error deleting: {e}"));
                return Err(e.into());
            }
        }
    }
    // Slow start like upstream: batches of 1, 2, 4, ... stopping at the first error.
    let mut create_err = None;
    let mut created = 0usize;
    let mut batch = 1usize;
    while created < plan.create.len() && create_err.is_none() {
        let chunk = &plan.create[created..(created + batch).min(plan.create.len())];
        let creates = chunk.iter().map(|idx| {
            let mut pod = new_pod(&job, *idx);
            if let Some(n) = idx.and_then(|i| plan.index_failures.get(&i)) {
                set_index_failure_count(&mut pod, *n);
            }
            let pod_api = pod_api.clone();
            async move { pod_api.create(&PostParams::default(), &pod).await }
        });
        for r in futures::future::join_all(creates).await {
            match r {
                Ok(p) => recorder.normal(
                    &job,
                    "SuccessfulCreate",
                    format!("Created pod: {}", p.metadata.name.unwrap_or_default()),
                ),
                Err(e) => {
                    recorder.warning(&job, "FailedCreate", format!("Error creating: {e}"));
                    create_err = Some(e);
                }
            }
        }
        created += chunk.len();
        batch *= 2;
    }
    // 4. Final status.
    let mut status = plan.status.clone();
    if created > 0 {
        let ok = created as i32 - i32::from(create_err.is_some());
        status.active = Some(status.active.unwrap_or(0) + ok.max(0));
    }
    if job.status.as_ref() != Some(&status) {
        job.status = Some(status);
        job_api
            .replace_status(name, &PostParams::default(), &job)
            .await?;
    }
    for ev in &plan.events {
        if ev.warning {
            recorder.warning(&job, ev.reason, ev.message.clone());
        } else {
            recorder.normal(&job, ev.reason, ev.message.clone());
        }
    }
    if !was_finished && finished(&job).is_some() {
        tracing::info!("job {key} finished");
    }
    if let Some(e) = create_err {
        return Err(e.into());
    }
    if let Some(d) = plan.requeue_after {
        queue.add_after(key.to_string(), d + Duration::from_millis(100));
    }
    let _ = Arc::new(());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{
        JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
    };
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };

    fn job(completions: Option<i32>, parallelism: i32) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                namespace: Some("default".into()),
                uid: Some("juid".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                completions,
                parallelism: Some(parallelism),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn jpod(name: &str, phase: &str, index: Option<i32>) -> Pod {
        let mut p = Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("u-{name}")),
                namespace: Some("default".into()),
                finalizers: Some(vec![TRACKING_FINALIZER.into()]),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        };
        if let Some(i) = index {
            p.metadata.annotations =
                Some([(COMPLETION_INDEX_ANNOTATION.to_string(), i.to_string())].into());
        }
        p
    }

    #[test]
    fn indexes_roundtrip() {
        let s = parse_indexes(Some("0,2-4,7"));
        assert_eq!(s, [0, 2, 3, 4, 7].into_iter().collect());
        assert_eq!(format_indexes(&s), "0,2-4,7");
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }

    #[test]
    fn creates_up_to_parallelism() {
        let j = job(Some(5), 2);
        let p = plan(&j, &[], Utc::now());
        assert_eq!(p.create.len(), 2);
        assert!(p.status.start_time.is_some());
        let a = jpod("a", "Running", None);
        let p = plan(&j, &[&a], Utc::now());
        assert_eq!(p.create.len(), 1);
    }

    #[test]
    fn success_counts_and_completes() {
        let mut j = job(Some(2), 2);
        let a = jpod("a", "Succeeded", None);
        let b = jpod("b", "Succeeded", None);
        let p = plan(&j, &[&a, &b], Utc::now());
        assert_eq!(p.remove_finalizers, vec!["a".to_string(), "b".to_string()]);
        assert!(p.interim_status.is_some());
        assert_eq!(p.status.succeeded, Some(2));
        assert!(p
            .status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Complete"));
        assert!(p
            .status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .any(|c| c.type_ == "SuccessCriteriaMet"));
        assert!(p.events.iter().any(|e| e.reason == "Completed"));
        // A second sync sees counted pods (finalizer removed) and doesn't double count.
        j.status = Some(p.status.clone());
        let mut a2 = a.clone();
        a2.metadata.finalizers = None;
        let p2 = plan(&j, &[&a2], Utc::now());
        assert_eq!(p2.status.succeeded, Some(2));
    }

    #[test]
    fn backoff_limit_exceeded() {
        let mut j = job(Some(1), 1);
        j.spec.as_mut().unwrap().backoff_limit = Some(0);
        let a = jpod("a", "Failed", None);
        let p = plan(&j, &[&a], Utc::now());
        let conds = p.status.conditions.unwrap();
        assert!(conds
            .iter()
            .any(|c| c.type_ == "FailureTarget"
                && c.reason.as_deref() == Some("BackoffLimitExceeded")));
        assert!(conds.iter().any(|c| c.type_ == "Failed"));
        assert!(p
            .events
            .iter()
            .any(|e| e.warning && e.reason == "BackoffLimitExceeded"));
    }

    #[test]
    fn failure_backoff_delays_recreation() {
        let j = job(Some(1), 1);
        let a = jpod("a", "Failed", None);
        let p = plan(&j, &[&a], Utc::now());
        assert!(p.create.is_empty());
        assert!(p.requeue_after.is_some());
        assert_eq!(backoff_delay(1), Duration::from_secs(10));
        assert_eq!(backoff_delay(3), Duration::from_secs(40));
        assert_eq!(backoff_delay(30), BACKOFF_MAX);
    }

    #[test]
    fn deadline_exceeded() {
        let mut j = job(Some(1), 1);
        j.spec.as_mut().unwrap().active_deadline_seconds = Some(5);
        j.status = Some(JobStatus {
            start_time: Some(api_time(Utc::now() - chrono::Duration::seconds(10))),
            ..Default::default()
        });
        let a = jpod("a", "Running", None);
        let p = plan(&j, &[&a], Utc::now());
        assert_eq!(p.delete, vec!["a".to_string()]);
        let conds = p.status.conditions.unwrap();
        assert!(
            conds
                .iter()
                .any(|c| c.type_ == "FailureTarget"
                    && c.reason.as_deref() == Some("DeadlineExceeded"))
        );
        assert!(!conds.iter().any(|c| c.type_ == "Failed"));
    }

    #[test]
    fn indexed_creates_missing_indexes() {
        let mut j = job(Some(4), 4);
        j.spec.as_mut().unwrap().completion_mode = Some("Indexed".into());
        let a = jpod("a", "Succeeded", Some(0));
        let b = jpod("b", "Running", Some(2));
        let p = plan(&j, &[&a, &b], Utc::now());
        assert_eq!(p.create, vec![Some(1), Some(3)]);
        assert_eq!(p.status.completed_indexes.as_deref(), Some("0"));
        let pod = new_pod(&j, Some(3));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-3-"));
        assert_eq!(pod.spec.unwrap().hostname.as_deref(), Some("pi-3"));
    }

    #[test]
    fn pod_failure_policy_fail_job() {
        let mut j = job(Some(1), 1);
        j.spec.as_mut().unwrap().pod_failure_policy = Some(PodFailurePolicy {
            rules: vec![PodFailurePolicyRule {
                action: "FailJob".into(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: None,
                    operator: "In".into(),
                    values: vec![42],
                }),
                on_pod_conditions: None,
            }],
        });
        let mut a = jpod("a", "Failed", None);
        a.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            name: "main".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 42,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let p = plan(&j, &[&a], Utc::now());
        let conds = p.status.conditions.unwrap();
        let f = conds.iter().find(|c| c.type_ == "Failed").unwrap();
        assert_eq!(f.reason.as_deref(), Some("PodFailurePolicy"));
        assert!(f
            .message
            .as_deref()
            .unwrap()
            .contains("exit code 42 matching FailJob rule at index 0"));
    }

    #[test]
    fn backoff_limit_per_index() {
        let mut j = job(Some(2), 2);
        let spec = j.spec.as_mut().unwrap();
        spec.completion_mode = Some("Indexed".into());
        spec.backoff_limit_per_index = Some(1);
        let a = jpod("a", "Failed", Some(0));
        let p = plan(&j, &[&a], Utc::now());
        assert_eq!(p.index_failures.get(&0), Some(&1));
        assert_eq!(p.status.failed_indexes.as_deref(), Some(""));
        let mut b = jpod("b", "Failed", Some(0));
        set_index_failure_count(&mut b, 1);
        let p = plan(&j, &[&b], Utc::now());
        assert_eq!(p.status.failed_indexes.as_deref(), Some("0"));
    }

    #[test]
    fn suspend_deletes_active() {
        let mut j = job(Some(1), 1);
        j.spec.as_mut().unwrap().suspend = Some(true);
        let a = jpod("a", "Running", None);
        let p = plan(&j, &[&a], Utc::now());
        assert_eq!(p.delete, vec!["a".to_string()]);
        assert!(p.events.iter().any(|e| e.reason == "Suspended"));
    }
}
