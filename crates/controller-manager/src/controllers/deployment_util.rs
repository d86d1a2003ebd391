//! Pure deployment logic (upstream pkg/controller/deployment/util): revisions and
//! annotations, max surge / max unavailable, new replica set sizing, proportional
//! scaling, conditions and status.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::workload_utils as wu;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
const REVISION_HISTORY_MAX_CHARS: usize = 2000;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const MIN_AVAILABLE_REASON: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE_REASON: &str = "MinimumReplicasUnavailable";
pub const NEW_RS_REASON: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
pub const RS_UPDATED_REASON: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
pub const PAUSED_REASON: &str = "DeploymentPaused";
pub const RESUMED_REASON: &str = "DeploymentResumed";
pub const FAILED_RS_CREATE_REASON: &str = "ReplicaSetCreateError";

/// Sum without overflow (replica counts come from API input).
pub fn sum32(it: impl Iterator<Item = i32>) -> i32 {
    it.fold(0i32, |a, b| a.saturating_add(b))
}

pub fn d_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

pub fn is_paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// (maxSurge, maxUnavailable) resolved against the desired replicas; both zero is
/// not allowed, so maxUnavailable becomes 1 (upstream ResolveFenceposts).
pub fn resolve_fenceposts(d: &Deployment) -> (i32, i32) {
    let desired = d_replicas(d);
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = wu::scaled_value(ru.and_then(|r| r.max_surge.as_ref()), "25%", desired, true);
    let mut unavail = wu::scaled_value(
        ru.and_then(|r| r.max_unavailable.as_ref()),
        "25%",
        desired,
        false,
    );
    if surge == 0 && unavail == 0 {
        unavail = 1;
    }
    (surge, unavail)
}

pub fn max_surge(d: &Deployment) -> i32 {
    if is_recreate(d) {
        return 0;
    }
    resolve_fenceposts(d).0
}

pub fn max_unavailable(d: &Deployment) -> i32 {
    let r = d_replicas(d);
    if is_recreate(d) || r == 0 {
        return 0;
    }
    resolve_fenceposts(d).1.min(r)
}

pub fn revision_of(meta_ann: Option<&BTreeMap<String, String>>) -> i64 {
    meta_ann
        .and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn rs_revision(rs: &ReplicaSet) -> i64 {
    revision_of(rs.metadata.annotations.as_ref())
}

pub fn max_revision(rss: &[ReplicaSet]) -> i64 {
    rss.iter().map(rs_revision).max().unwrap_or(0)
}

fn creation(rs: &ReplicaSet) -> Option<Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Oldest first, ties by name (upstream ReplicaSetsByCreationTimestamp).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    creation(a)
        .cmp(&creation(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Lowest revision first, ties by creation (upstream ReplicaSetsByRevision).
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_revision(a)
        .cmp(&rs_revision(b))
        .then_with(|| by_creation(a, b))
}

/// The replica set whose template equals the deployment's (ignoring the hash
/// label); the oldest one when several match.
pub fn find_new_rs<'a>(d: &Deployment, rss: &'a [ReplicaSet]) -> Option<&'a ReplicaSet> {
    let template = d
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut sorted: Vec<&ReplicaSet> = rss.iter().collect();
    sorted.sort_by(|a, b| by_creation(a, b));
    sorted.into_iter().find(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| wu::templates_equal_ignoring_label(t, &template, POD_TEMPLATE_HASH))
    })
}

/// The hash naming the new replica set of the deployment's current template.
pub fn template_hash(d: &Deployment) -> String {
    let template = d
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let collision = d.status.as_ref().and_then(|s| s.collision_count);
    wu::compute_hash(&template, collision)
}

/// Copies the deployment's annotations (except the controller's own and
/// last-applied) to the replica set; true if something changed.
pub fn copy_annotations_to_rs(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if [
            LAST_APPLIED,
            REVISION,
            REVISION_HISTORY,
            DESIRED_REPLICAS,
            MAX_REPLICAS,
            ROLLBACK_TO,
        ]
        .contains(&k.as_str())
        {
            continue;
        }
        if ann.get(k) != Some(v) {
            ann.insert(k.clone(), v.clone());
            changed = true;
        }
    }
    changed
}

/// Sets desired-replicas and max-replicas; true if changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if ann.get(k) != Some(&v) {
            ann.insert(k.to_string(), v);
            changed = true;
        }
    }
    changed
}

/// Upstream SetNewReplicaSetAnnotations: copied annotations, the new revision (the
/// previous one appended to revision-history), and on creation the replicas
/// annotations. True if something changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = copy_annotations_to_rs(d, rs);
    let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old = ann.get(REVISION).cloned().unwrap_or_default();
    let old_int: i64 = if old.is_empty() {
        0
    } else {
        old.parse().unwrap_or(0)
    };
    if old_int < new_revision {
        ann.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if !old.is_empty() {
            let hist = match ann.get(REVISION_HISTORY) {
                Some(h) if !h.is_empty() => {
                    let mut parts: Vec<&str> = h.split(',').collect();
                    parts.push(&old);
                    let mut s = parts.join(",");
                    while s.len() > REVISION_HISTORY_MAX_CHARS {
                        match s.find(',') {
                            Some(i) => s = s[i + 1..].to_string(),
                            None => break,
                        }
                    }
                    s
                }
                _ => old.clone(),
            };
            ann.insert(REVISION_HISTORY.into(), hist);
        }
    }
    if !exists
        && set_replicas_annotations(
            rs,
            d_replicas(d),
            d_replicas(d).saturating_add(max_surge(d)),
        )
    {
        changed = true;
    }
    changed
}

/// The replicas the new replica set should have now (upstream NewRSNewReplicas).
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs_replicas: i32) -> i32 {
    let desired = d_replicas(d);
    if is_recreate(d) {
        return desired;
    }
    if new_rs_replicas == desired {
        return new_rs_replicas;
    }
    let surge = max_surge(d);
    let current: i32 = sum32(all.iter().map(|r| rs_replicas(r)));
    let max_total = desired.saturating_add(surge);
    if current >= max_total {
        return new_rs_replicas;
    }
    let up = max_total
        .saturating_sub(current)
        .min(desired.saturating_sub(new_rs_replicas));
    new_rs_replicas.saturating_add(up)
}

/// How far old replica sets may be scaled down now (upstream reconcileOldReplicaSets).
pub fn max_scaled_down(d: &Deployment, all: &[&ReplicaSet], new_rs: Option<&ReplicaSet>) -> i32 {
    let all_pods: i32 = sum32(all.iter().map(|r| rs_replicas(r)));
    let min_available = d_replicas(d).saturating_sub(max_unavailable(d));
    let new_unavailable = new_rs
        .map(|r| rs_replicas(r).saturating_sub(rs_available(r)))
        .unwrap_or(0);
    all_pods
        .saturating_sub(min_available)
        .saturating_sub(new_unavailable)
}

/// Old replica sets' target sizes after removing unhealthy replicas first, at most
/// `max_cleanup` pods (upstream cleanupUnhealthyReplicas). Returns (index, new size).
pub fn cleanup_unhealthy(old: &[&ReplicaSet], max_cleanup: i32) -> Vec<(usize, i32)> {
    let mut idx: Vec<usize> = (0..old.len()).collect();
    idx.sort_by(|a, b| by_creation(old[*a], old[*b]));
    let mut total = 0;
    let mut out = vec![];
    for i in idx {
        if total >= max_cleanup {
            break;
        }
        let rs = old[i];
        let r = rs_replicas(rs);
        if r == 0 {
            continue;
        }
        let avail = rs_available(rs);
        if avail >= r {
            continue;
        }
        let n = (max_cleanup - total).min(r - avail);
        total += n;
        out.push((i, r - n));
    }
    out
}

/// Old replica sets' target sizes for a rolling scale-down keeping `minAvailable`
/// (upstream scaleDownOldReplicaSetsForRollingUpdate).
pub fn rolling_scale_down(
    d: &Deployment,
    all: &[&ReplicaSet],
    old: &[&ReplicaSet],
) -> Vec<(usize, i32)> {
    let min_available = d_replicas(d).saturating_sub(max_unavailable(d));
    let available: i32 = sum32(all.iter().map(|r| rs_available(r)));
    if available <= min_available {
        return vec![];
    }
    let total = available.saturating_sub(min_available);
    let mut idx: Vec<usize> = (0..old.len()).collect();
    idx.sort_by(|a, b| by_creation(old[*a], old[*b]));
    let mut scaled = 0;
    let mut out = vec![];
    for i in idx {
        if scaled >= total {
            break;
        }
        let r = rs_replicas(old[i]);
        if r == 0 {
            continue;
        }
        let n = r.min(total - scaled);
        scaled += n;
        out.push((i, r - n));
    }
    out
}

fn ann_int(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

/// Proportional scaling of the active replica sets when the deployment is
/// resized mid-rollout (upstream `scale`). `rss` are the active replica sets
/// (spec.replicas > 0) with the new one included; returns the new size per name.
pub fn proportional_sizes(d: &Deployment, rss: &[&ReplicaSet]) -> BTreeMap<String, i32> {
    let desired = d_replicas(d);
    let surge = max_surge(d);
    let all_replicas: i32 = sum32(rss.iter().map(|r| rs_replicas(r)));
    let allowed = if desired > 0 {
        desired.saturating_add(surge)
    } else {
        0
    };
    let to_add = allowed.saturating_sub(all_replicas);
    let mut sorted: Vec<&ReplicaSet> = rss.to_vec();
    if to_add > 0 {
        // larger first, newer first on ties
        sorted.sort_by(|a, b| {
            rs_replicas(b)
                .cmp(&rs_replicas(a))
                .then_with(|| by_creation(b, a))
        });
    } else {
        sorted.sort_by(|a, b| {
            rs_replicas(b)
                .cmp(&rs_replicas(a))
                .then_with(|| by_creation(a, b))
        });
    }
    let mut sizes = BTreeMap::new();
    let mut added = 0;
    let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    for rs in &sorted {
        let r = rs_replicas(rs);
        let mut prop = 0;
        if to_add != 0 && r != 0 && to_add != added {
            let fraction = if desired == 0 {
                -r
            } else {
                let dep_replicas = desired.saturating_add(surge);
                let annotated = ann_int(rs, MAX_REPLICAS).unwrap_or(status_replicas);
                if annotated <= 0 {
                    0
                } else {
                    let size = (f64::from(r) * f64::from(dep_replicas)) / f64::from(annotated);
                    (size.round() as i32).saturating_sub(r)
                }
            };
            let allowed_left = to_add.saturating_sub(added);
            prop = if to_add > 0 {
                fraction.min(allowed_left)
            } else {
                fraction.max(allowed_left)
            };
        }
        sizes.insert(
            rs.metadata.name.clone().unwrap_or_default(),
            r.saturating_add(prop),
        );
        added = added.saturating_add(prop);
    }
    if let Some(first) = sorted.first() {
        if to_add != 0 {
            let n = first.metadata.name.clone().unwrap_or_default();
            let v = sizes
                .get(&n)
                .copied()
                .unwrap_or(0)
                .saturating_add(to_add.saturating_sub(added));
            sizes.insert(n, v.max(0));
        }
    }
    sizes
}

pub fn get_condition<'a>(s: &'a DeploymentStatus, t: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.as_ref()?.iter().find(|c| c.type_ == t)
}

pub fn remove_condition(s: &mut DeploymentStatus, t: &str) {
    if let Some(cs) = s.conditions.as_mut() {
        cs.retain(|c| c.type_ != t);
        if cs.is_empty() {
            s.conditions = None;
        }
    }
}

pub fn new_condition(
    t: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: t.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Upstream SetDeploymentCondition: no-op when status and reason are unchanged;
/// keeps the transition time when only the reason changes.
pub fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = get_condition(s, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(s, &c.type_);
    s.conditions.get_or_insert_with(Vec::new).push(c);
}

/// The status from the replica sets (upstream calculateStatus).
pub fn calculate_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let available: i32 = sum32(all.iter().map(|r| rs_available(r)));
    let total = d_replicas(d);
    let old = d.status.clone().unwrap_or_default();
    let mut s = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sum32(all.iter().map(|r| rs_status_replicas(r)))),
        updated_replicas: Some(new_rs.map(rs_status_replicas).unwrap_or(0)),
        ready_replicas: Some(sum32(all.iter().map(|r| rs_ready(r)))),
        available_replicas: Some(available),
        unavailable_replicas: Some(total.saturating_sub(available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: None,
    };
    if available >= total.saturating_sub(max_unavailable(d)) {
        set_condition(
            &mut s,
            new_condition(
                AVAILABLE,
                "True",
                MIN_AVAILABLE_REASON,
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut s,
            new_condition(
                AVAILABLE,
                "False",
                MIN_UNAVAILABLE_REASON,
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    s
}

pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    let v = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600);
    (v != i32::MAX).then_some(v)
}

/// All replicas updated and available, and no old ones (upstream DeploymentComplete).
pub fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = d_replicas(d);
    s.updated_replicas.unwrap_or(0) == r
        && s.replicas.unwrap_or(0) == r
        && s.available_replicas.unwrap_or(0) == r
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether the new status shows progress over the deployment's current status.
pub fn deployment_progressing(d: &Deployment, s: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = old
        .replicas
        .unwrap_or(0)
        .saturating_sub(old.updated_replicas.unwrap_or(0));
    let new_old = s
        .replicas
        .unwrap_or(0)
        .saturating_sub(s.updated_replicas.unwrap_or(0));
    s.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_old < old_old
        || s.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || s.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

/// Whether the deployment has not progressed for progressDeadlineSeconds.
pub fn deployment_timed_out(d: &Deployment, s: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = get_condition(s, PROGRESSING) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE_REASON) => return false,
        Some(TIMED_OUT_REASON) => return true,
        _ => {}
    }
    let Some(from) = c.last_update_time.as_ref() else {
        return false;
    };
    from.0.as_second() + i64::from(deadline) < now.as_second()
}

/// Upstream syncRolloutStatus's condition logic: returns the new status.
pub fn rollout_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let mut s = calculate_status(d, all, new_rs, now);
    if progress_deadline(d).is_none() {
        remove_condition(&mut s, PROGRESSING);
    }
    let cur = get_condition(&s, PROGRESSING).cloned();
    let complete_already = s.replicas == s.updated_replicas
        && cur
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE_REASON));
    let new_name = new_rs
        .and_then(|r| r.metadata.name.clone())
        .unwrap_or_default();
    if progress_deadline(d).is_some() && !complete_already {
        if deployment_complete(d, &s) {
            let c = new_condition(
                PROGRESSING,
                "True",
                NEW_RS_AVAILABLE_REASON,
                format!("ReplicaSet {new_name:?} has successfully progressed."),
                now,
            );
            set_condition(&mut s, c);
        } else if deployment_progressing(d, &s) {
            let mut c = new_condition(
                PROGRESSING,
                "True",
                RS_UPDATED_REASON,
                format!("ReplicaSet {new_name:?} is progressing."),
                now,
            );
            if let Some(cur) = &cur {
                if cur.status == "True" {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                remove_condition(&mut s, PROGRESSING);
            }
            set_condition(&mut s, c);
        } else if deployment_timed_out(d, &s, now) {
            let c = new_condition(
                PROGRESSING,
                "False",
                TIMED_OUT_REASON,
                format!("ReplicaSet {new_name:?} has timed out progressing."),
                now,
            );
            set_condition(&mut s, c);
        }
    }
    // ReplicaFailure mirrors the replica sets'.
    let failure = all.iter().find_map(|rs| {
        rs.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == REPLICA_FAILURE)
            .cloned()
    });
    match failure {
        Some(f) => set_condition(
            &mut s,
            DeploymentCondition {
                type_: REPLICA_FAILURE.into(),
                status: f.status,
                reason: f.reason,
                message: f.message,
                last_update_time: f.last_transition_time.clone(),
                last_transition_time: f.last_transition_time,
            },
        ),
        None => remove_condition(&mut s, REPLICA_FAILURE),
    }
    s
}

/// Seconds until a progressing deployment would time out (for requeueing).
pub fn requeue_stuck_after(d: &Deployment, s: &DeploymentStatus, now: Timestamp) -> Option<i64> {
    let deadline = progress_deadline(d)?;
    let c = get_condition(s, PROGRESSING)?;
    if deployment_complete(d, s) || c.reason.as_deref() == Some(TIMED_OUT_REASON) {
        return None;
    }
    let from = c.last_update_time.as_ref()?.0.as_second();
    Some((from + i64::from(deadline) - now.as_second()).max(1))
}

/// Condition comparison ignoring timestamps, to avoid no-op status writes.
pub fn status_equal(a: &DeploymentStatus, b: &DeploymentStatus) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus,
        RollingUpdateDeployment,
    };
    use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn dep(replicas: i32, surge: Option<IntOrString>, unavail: Option<IntOrString>) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("d".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: surge,
                        max_unavailable: unavail,
                    }),
                }),
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(PodSpec::default()),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn rs(name: &str, replicas: i32, available: i32, created: i64) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas,
                available_replicas: Some(available),
                ready_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn fenceposts() {
        let d = dep(10, None, None);
        assert_eq!(resolve_fenceposts(&d), (3, 2));
        let d = dep(
            1,
            Some(IntOrString::Int(0)),
            Some(IntOrString::String("0%".into())),
        );
        assert_eq!(resolve_fenceposts(&d), (0, 1));
        let d = dep(4, None, None);
        assert_eq!(max_unavailable(&d), 1);
        assert_eq!(max_surge(&d), 1);
    }

    #[test]
    fn rolling_steps() {
        // 4 replicas, surge 1, unavailable 1: old has 4 available.
        let d = dep(4, None, None);
        let old = rs("old", 4, 4, 1);
        let new = rs("new", 0, 0, 2);
        let all = vec![&old, &new];
        assert_eq!(new_rs_new_replicas(&d, &all, 0), 1);
        let new = rs("new", 1, 0, 2);
        let all = vec![&old, &new];
        // all=5, minAvailable=3, newUnavailable=1 -> 1
        assert_eq!(max_scaled_down(&d, &all, Some(&new)), 1);
        assert_eq!(rolling_scale_down(&d, &all, &[&old]), vec![(0, 3)]);
    }

    #[test]
    fn unhealthy_first() {
        let a = rs("a", 3, 1, 1);
        let b = rs("b", 2, 2, 2);
        assert_eq!(cleanup_unhealthy(&[&a, &b], 5), vec![(0, 1)]);
    }

    #[test]
    fn proportional() {
        let mut d = dep(15, Some(IntOrString::Int(3)), Some(IntOrString::Int(0)));
        d.status = Some(DeploymentStatus {
            replicas: Some(13),
            ..Default::default()
        });
        let mut a = rs("a", 8, 8, 1);
        let mut b = rs("b", 5, 0, 2);
        for r in [&mut a, &mut b] {
            r.metadata.annotations = Some([(MAX_REPLICAS.to_string(), "13".to_string())].into());
        }
        let sizes = proportional_sizes(&d, &[&a, &b]);
        assert_eq!(sizes.values().sum::<i32>(), 18);
        assert_eq!(sizes["a"], 11);
        assert_eq!(sizes["b"], 7);
    }

    #[test]
    fn annotations() {
        let mut d = dep(3, None, None);
        d.metadata.annotations =
            Some([("kubernetes.io/change-cause".to_string(), "x".to_string())].into());
        let mut r = rs("r", 0, 0, 1);
        assert!(set_new_rs_annotations(&d, &mut r, 1, false));
        let a = r.metadata.annotations.clone().unwrap();
        assert_eq!(a[REVISION], "1");
        assert_eq!(a[DESIRED_REPLICAS], "3");
        assert_eq!(a[MAX_REPLICAS], "4");
        assert_eq!(a["kubernetes.io/change-cause"], "x");
        assert!(set_new_rs_annotations(&d, &mut r, 3, true));
        let a = r.metadata.annotations.clone().unwrap();
        assert_eq!(a[REVISION], "3");
        assert_eq!(a[REVISION_HISTORY], "1");
        assert!(!set_new_rs_annotations(&d, &mut r, 3, true));
    }

    #[test]
    fn new_rs_ignores_hash_label() {
        let d = dep(2, None, None);
        let mut t = d.spec.as_ref().unwrap().template.clone();
        t.metadata = Some(ObjectMeta {
            labels: Some([(POD_TEMPLATE_HASH.to_string(), "abc".to_string())].into()),
            ..Default::default()
        });
        let mut r = rs("d-abc", 2, 2, 5);
        r.spec.as_mut().unwrap().template = Some(t);
        let other = rs("d-old", 0, 0, 1);
        let rss = vec![other, r];
        assert_eq!(
            find_new_rs(&d, &rss)
                .and_then(|r| r.metadata.name.clone())
                .as_deref(),
            Some("d-abc")
        );
        // the hash depends on the template and the collision count only
        let h = template_hash(&d);
        assert_eq!(h, template_hash(&d.clone()));
        let mut d2 = d.clone();
        d2.status = Some(DeploymentStatus {
            collision_count: Some(1),
            ..Default::default()
        });
        assert_ne!(h, template_hash(&d2));
    }

    #[test]
    fn timed_out() {
        let d = dep(2, None, None);
        let old = Timestamp::from_second(Timestamp::now().as_second() - 700).unwrap();
        let mut s = DeploymentStatus {
            conditions: Some(vec![new_condition(
                PROGRESSING,
                "True",
                RS_UPDATED_REASON,
                "x".into(),
                old,
            )]),
            ..Default::default()
        };
        assert!(deployment_timed_out(&d, &s, Timestamp::now()));
        s.conditions = Some(vec![new_condition(
            PROGRESSING,
            "True",
            NEW_RS_AVAILABLE_REASON,
            "x".into(),
            old,
        )]);
        assert!(!deployment_timed_out(&d, &s, Timestamp::now()));
    }

    #[test]
    fn conditions() {
        let d = dep(2, None, None);
        let new = rs("new", 2, 2, 1);
        let s = rollout_status(&d, &[&new], Some(&new), Timestamp::now());
        let p = get_condition(&s, PROGRESSING).unwrap();
        assert_eq!(p.reason.as_deref(), Some(NEW_RS_AVAILABLE_REASON));
        assert_eq!(
            p.message.as_deref(),
            Some("ReplicaSet \"new\" has successfully progressed.")
        );
        let a = get_condition(&s, AVAILABLE).unwrap();
        assert_eq!(a.status, "True");
        assert!(deployment_complete(&d, &s));
    }
}
