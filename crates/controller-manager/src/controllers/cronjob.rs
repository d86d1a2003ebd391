//! CronJob controller (upstream pkg/controller/cronjob, v2): standard 5-field
//! schedules and @-descriptors (@yearly ... @hourly, @every <duration>),
//! spec.timeZone (IANA, via chrono-tz), concurrencyPolicy Allow/Forbid/Replace,
//! startingDeadlineSeconds, suspend, history limits, status.active /
//! lastScheduleTime / lastSuccessfulTime; Jobs named `<cronjob>-<minutes since epoch>`.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::podutil::{self, api_time, to_utc};

pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
pub const MAX_MISSED: usize = 100;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Box<croner::Cron>, Option<Tz>),
    Every(Duration),
}

fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if (c == 'm' || c == 'u' || c == 'n' || c == 'µ') && chars.peek() == Some(&'s') {
            unit.push(chars.next()?);
        }
        let v: f64 = num.parse().ok()?;
        num.clear();
        total += v * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        any = true;
    }
    (any && num.is_empty() && total > 0.0).then(|| Duration::from_secs_f64(total))
}

/// Parses a schedule the way upstream's standard parser does (5 fields or a
/// descriptor, optional `TZ=`/`CRON_TZ=` prefix); `time_zone` is spec.timeZone.
pub fn parse_schedule(schedule: &str, time_zone: Option<&str>) -> Result<Schedule, String> {
    let mut s = schedule.trim();
    let mut tz: Option<Tz> = None;
    if let Some(name) = time_zone.filter(|z| !z.is_empty()) {
        tz = Some(Tz::from_str(name).map_err(|e| format!("unknown time zone {name}: {e}"))?);
    }
    for prefix in ["TZ=", "CRON_TZ="] {
        if let Some(rest) = s.strip_prefix(prefix) {
            let (name, rest) = rest
                .split_once(char::is_whitespace)
                .ok_or("missing schedule after time zone")?;
            tz =
                Some(Tz::from_str(name).map_err(|e| format!("provided bad location {name}: {e}"))?);
            s = rest.trim();
        }
    }
    if let Some(d) = s.strip_prefix("@every") {
        let d =
            parse_go_duration(d.trim()).ok_or_else(|| format!("failed to parse duration {s}"))?;
        if d < Duration::from_secs(1) {
            return Err("@every duration must be at least 1 second".into());
        }
        return Ok(Schedule::Every(d));
    }
    let expr = match s {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other if other.starts_with('@') => return Err(format!("unrecognized descriptor: {other}")),
        other => other,
    };
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(format!("expected exactly 5 fields, found {fields}: {expr}"));
    }
    let cron = croner::Cron::from_str(expr).map_err(|e| e.to_string())?;
    Ok(Schedule::Cron(Box::new(cron), tz))
}

impl Schedule {
    /// The first activation strictly after `t`.
    pub fn next(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(d) => {
                let base = Utc.timestamp_opt(t.timestamp(), 0).single()?;
                Some(base + chrono::Duration::from_std(*d).ok()?)
            }
            Schedule::Cron(c, Some(tz)) => c
                .find_next_occurrence(&t.with_timezone(tz), false)
                .ok()
                .map(|d| d.with_timezone(&Utc)),
            Schedule::Cron(c, None) => c.find_next_occurrence(&t, false).ok(),
        }
    }

    pub fn tz(&self) -> Option<Tz> {
        match self {
            Schedule::Cron(_, tz) => *tz,
            Schedule::Every(_) => None,
        }
    }
}

/// The most recent unmet schedule time in (earliest, now] and how many were
/// missed (upstream mostRecentScheduleTime; `earliest` is lastScheduleTime,
/// else creation, moved up to now - startingDeadlineSeconds).
pub fn most_recent_schedule(
    sched: &Schedule,
    earliest: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, usize) {
    let Some(t1) = sched.next(earliest) else {
        return (None, 0);
    };
    if t1 > now {
        return (None, 0);
    }
    let mut last = t1;
    let mut missed = 1usize;
    // Walk forward; beyond a bound, jump near `now` to stay cheap.
    while let Some(n) = sched.next(last) {
        if n > now {
            break;
        }
        last = n;
        missed += 1;
        if missed > 1000 {
            // Far behind: find the last activation before now from close to now.
            let mut probe = now - chrono::Duration::days(1);
            let mut lastp = None;
            while let Some(n) = sched.next(probe) {
                if n > now {
                    break;
                }
                lastp = Some(n);
                probe = n;
            }
            if let Some(l) = lastp {
                last = l;
            }
            break;
        }
    }
    (Some(last), missed)
}

/// The Job name for a scheduled time: `<cronjob>-<minutes since the epoch>`.
pub fn job_name(cj: &str, scheduled: DateTime<Utc>) -> String {
    format!("{cj}-{}", scheduled.timestamp().div_euclid(60))
}

pub fn cronjob_owner_ref(cj: &CronJob) -> OwnerReference {
    OwnerReference {
        api_version: "batch/v1".into(),
        kind: "CronJob".into(),
        name: cj.metadata.name.clone().unwrap_or_default(),
        uid: cj.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The Job for one scheduled time.
pub fn new_job(cj: &CronJob, scheduled: DateTime<Utc>, tz: Option<Tz>) -> Job {
    let tmpl = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let meta = tmpl.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let stamp = match tz {
        Some(tz) => scheduled
            .with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => scheduled.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    annotations.insert(SCHEDULED_TIMESTAMP_ANNOTATION.into(), stamp);
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(
                cj.metadata.name.as_deref().unwrap_or(""),
                scheduled,
            )),
            namespace: cj.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![cronjob_owner_ref(cj)]),
            ..Default::default()
        },
        spec: tmpl.spec,
        status: None,
    }
}

pub fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// Finished jobs beyond a history limit, oldest first.
pub fn history_to_delete<'a>(finished: &[&'a Job], limit: i32) -> Vec<&'a Job> {
    let limit = limit.max(0) as usize;
    if finished.len() <= limit {
        return vec![];
    }
    let mut v = finished.to_vec();
    v.sort_by_key(|j| {
        (
            j.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(to_utc)
                .or_else(|| j.metadata.creation_timestamp.as_ref().map(to_utc)),
            j.metadata.name.clone(),
        )
    });
    let n = v.len() - limit;
    v.into_iter().take(n).collect()
}

// ---------------------------------------------------------------- controller

use client_base::events::Recorder;
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::Api;

use super::job::finished;
use crate::informers::{owner_queue, split_key, Informer};
use crate::workqueue::run_workers;
use crate::ControllerContext;

fn owner_cronjob_key(job: &Job) -> Option<String> {
    podutil::controller_key(&job.metadata, |o| o.kind == "CronJob")
}

/// The cronjob controller ("cronjob-controller").
pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let cronjobs = ctx.informers.get::<CronJob>();
    let jobs = ctx.informers.get::<Job>();
    let queue = owner_queue(&cronjobs, &jobs, ctx.stop.clone(), owner_cronjob_key).await;
    let recorder = ctx.recorder("cronjob-controller");
    let workers = ctx.options.concurrent_cron_job_syncs.max(1);
    let client = ctx.client.clone();
    let q2 = queue.clone();
    run_workers(
        queue,
        workers,
        ctx.stop.clone(),
        "cronjob-controller",
        move |key: String| {
            let (client, cronjobs, jobs, recorder, queue) = (
                client.clone(),
                cronjobs.clone(),
                jobs.clone(),
                recorder.clone(),
                q2.clone(),
            );
            async move {
                let next =
                    sync_cronjob(&client, &cronjobs, &jobs, &recorder, &key, Utc::now()).await?;
                if let Some(d) = next {
                    queue.add_after(key, d);
                }
                Ok(())
            }
        },
    )
    .await;
    Ok(())
}

/// One sync; returns when to look again.
async fn sync_cronjob(
    client: &kube::Client,
    cronjobs: &Informer<CronJob>,
    jobs: &Informer<Job>,
    recorder: &Recorder,
    key: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Duration>> {
    let (ns, name) = split_key(key);
    let ns = ns.unwrap_or("default");
    if cronjobs.get_by_key(key).is_none() {
        return Ok(None);
    }
    let cj_api: Api<CronJob> = Api::namespaced(client.clone(), ns);
    // The live object: the cache may not show our last status update yet.
    let mut cj: CronJob = match cj_api.get(name).await {
        Ok(c) => c,
        Err(e) if podutil::is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let job_api: Api<Job> = Api::namespaced(client.clone(), ns);
    let owned: Vec<std::sync::Arc<Job>> = jobs
        .list_namespaced(ns)
        .into_iter()
        .filter(|j| podutil::controller_ref(&j.metadata).is_some_and(|o| o.uid == uid))
        .collect();
    let old_status = cj.status.clone();
    let mut status = cj.status.clone().unwrap_or_default();
    let mut active: Vec<ObjectReference> = status.active.clone().unwrap_or_default();

    // 1. Reconcile status.active with the jobs that exist.
    for j in &owned {
        let juid = j.metadata.uid.clone().unwrap_or_default();
        let in_active = active
            .iter()
            .any(|a| a.uid.as_deref() == Some(juid.as_str()));
        match finished(j) {
            Some((cond, _)) => {
                if in_active {
                    active.retain(|a| a.uid.as_deref() != Some(juid.as_str()));
                    recorder.normal(
                        &cj,
                        "SawCompletedJob",
                        format!(
                            "Saw completed job: {}, condition: {cond}",
                            j.metadata.name.as_deref().unwrap_or("")
                        ),
                    );
                }
                if cond == "Complete" {
                    let done = j
                        .status
                        .as_ref()
                        .and_then(|s| s.completion_time.as_ref())
                        .map(to_utc);
                    if let Some(done) = done {
                        if status
                            .last_successful_time
                            .as_ref()
                            .map(to_utc)
                            .is_none_or(|t| t < done)
                        {
                            status.last_successful_time = Some(api_time(done));
                        }
                    }
                }
            }
            None if !in_active && j.metadata.deletion_timestamp.is_none() => {
                recorder.warning(
                    &cj,
                    "UnexpectedJob",
                    format!(
                        "Saw a job that the controller did not create or forgot: {}",
                        j.metadata.name.as_deref().unwrap_or("")
                    ),
                );
                active.push(job_ref(j));
            }
            None => {}
        }
    }
    let present: Vec<String> = owned
        .iter()
        .filter_map(|j| j.metadata.uid.clone())
        .collect();
    active.retain(|a| {
        let keep = a.uid.as_ref().is_some_and(|u| present.contains(u));
        if !keep {
            // Double-check against the API later: the cache may lag behind a job we just made.
            if jobs
                .get(Some(ns), a.name.as_deref().unwrap_or(""))
                .is_none()
            {
                recorder.normal(
                    &cj,
                    "MissingJob",
                    format!(
                        "Active job went missing: {}",
                        a.name.as_deref().unwrap_or("")
                    ),
                );
            } else {
                return true;
            }
        }
        keep
    });

    let spec = cj.spec.clone().unwrap_or_default();
    let mut requeue: Option<Duration> = None;
    let mut to_delete: Vec<String> = Vec::new();
    let mut create: Option<(Job, DateTime<Utc>)> = None;

    if cj.metadata.deletion_timestamp.is_none() {
        match parse_schedule(&spec.schedule, spec.time_zone.as_deref()) {
            Err(e) => {
                if spec.time_zone.is_some() && e.starts_with("unknown time zone") {
                    recorder.warning(
                        &cj,
                        "UnknownTimeZone",
                        format!(
                            "invalid timeZone: {:?}: {e}",
                            spec.time_zone.as_deref().unwrap_or("")
                        ),
                    );
                } else {
                    recorder.warning(
                        &cj,
                        "UnparseableSchedule",
                        format!("unparseable schedule: {:?} : {e}", spec.schedule),
                    );
                }
            }
            Ok(sched) if spec.suspend != Some(true) => {
                let mut earliest = status
                    .last_schedule_time
                    .as_ref()
                    .map(to_utc)
                    .or_else(|| cj.metadata.creation_timestamp.as_ref().map(to_utc))
                    .unwrap_or(now);
                if let Some(sds) = spec.starting_deadline_seconds {
                    let deadline = now - chrono::Duration::seconds(sds);
                    if deadline > earliest {
                        earliest = deadline;
                    }
                }
                let (scheduled, missed) = most_recent_schedule(&sched, earliest, now);
                if missed > MAX_MISSED {
                    recorder.warning(&cj, "TooManyMissedTimes", format!("too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"));
                }
                requeue = sched
                    .next(now)
                    .map(|n| (n - now).to_std().unwrap_or_default() + Duration::from_millis(100));
                if let Some(st) = scheduled {
                    let too_late = spec
                        .starting_deadline_seconds
                        .is_some_and(|sds| st + chrono::Duration::seconds(sds) < now);
                    let already = status
                        .last_schedule_time
                        .as_ref()
                        .map(to_utc)
                        .is_some_and(|l| l >= st)
                        || owned.iter().any(|j| {
                            j.metadata.name.as_deref() == Some(job_name(name, st).as_str())
                        });
                    if too_late {
                        recorder.warning(
                            &cj,
                            "MissSchedule",
                            format!("Missed scheduled time to start a job: {}", st.to_rfc2822()),
                        );
                    } else if !already {
                        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
                        if policy == "Forbid" && !active.is_empty() {
                            recorder.normal(&cj, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid");
                        } else {
                            if policy == "Replace" {
                                to_delete = active.iter().filter_map(|a| a.name.clone()).collect();
                            }
                            create = Some((new_job(&cj, st, sched.tz()), st));
                        }
                    }
                }
            }
            Ok(_) => {}
        }
    }

    for jname in &to_delete {
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match job_api.delete(jname, &dp).await {
            Ok(_) => recorder.normal(&cj, "SuccessfulDelete", format!("Deleted job {jname}")),
            Err(e) if podutil::is_not_found(&e) => {}
            Err(e) => {
                recorder.warning(&cj, "FailedDelete", format!("Deleted job: {e}"));
                return Err(e.into());
            }
        }
        active.retain(|a| a.name.as_deref() != Some(jname.as_str()));
    }
    if let Some((job, st)) = create {
        let jname = job.metadata.name.clone().unwrap_or_default();
        match job_api.create(&PostParams::default(), &job).await {
            Ok(j) => {
                recorder.normal(&cj, "SuccessfulCreate", format!("Created job {jname}"));
                active.push(job_ref(&j));
                status.last_schedule_time = Some(api_time(st));
            }
            Err(e) if podutil::is_conflict(&e) => {
                // Made by an earlier sync whose status update was lost.
                if let Ok(j) = job_api.get(&jname).await {
                    if podutil::controller_ref(&j.metadata).is_some_and(|o| o.uid == uid) {
                        if finished(&j).is_none() && !active.iter().any(|a| a.uid == j.metadata.uid)
                        {
                            active.push(job_ref(&j));
                        }
                        status.last_schedule_time = Some(api_time(st));
                    }
                }
            }
            Err(e) => {
                recorder.warning(&cj, "FailedCreate", format!("Error creating job: {e}"));
                return Err(e.into());
            }
        }
    }

    status.active = (!active.is_empty()).then_some(active);
    if old_status.as_ref() != Some(&status) {
        cj.status = Some(status);
        match cj_api
            .replace_status(name, &PostParams::default(), &cj)
            .await
        {
            Ok(c) => cj = c,
            Err(e) if podutil::is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }

    // History limits.
    let active_uids: Vec<String> = cj
        .status
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|a| a.uid.clone())
        .collect();
    let done: Vec<&Job> = owned
        .iter()
        .map(|j| j.as_ref())
        .filter(|j| {
            j.metadata.deletion_timestamp.is_none()
                && !active_uids.contains(j.metadata.uid.as_ref().unwrap_or(&String::new()))
        })
        .collect();
    let succeeded: Vec<&Job> = done
        .iter()
        .copied()
        .filter(|j| finished(j).is_some_and(|(c, _)| c == "Complete"))
        .collect();
    let failed: Vec<&Job> = done
        .iter()
        .copied()
        .filter(|j| finished(j).is_some_and(|(c, _)| c == "Failed"))
        .collect();
    let mut old = history_to_delete(&succeeded, spec.successful_jobs_history_limit.unwrap_or(3));
    old.extend(history_to_delete(
        &failed,
        spec.failed_jobs_history_limit.unwrap_or(1),
    ));
    for j in old {
        let jname = j.metadata.name.clone().unwrap_or_default();
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match job_api.delete(&jname, &dp).await {
            Ok(_) => recorder.normal(&cj, "SuccessfulDelete", format!("Deleted job {jname}")),
            Err(e) if podutil::is_not_found(&e) => {}
            Err(e) => tracing::info!("cronjob {key}: deleting old job {jname}: {e}"),
        }
    }
    Ok(requeue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn parses_standard_and_descriptors() {
        let s = parse_schedule("*/5 * * * *", None).unwrap();
        assert_eq!(
            s.next(t("2024-01-01T00:01:30Z")).unwrap(),
            t("2024-01-01T00:05:00Z")
        );
        let h = parse_schedule("@hourly", None).unwrap();
        assert_eq!(
            h.next(t("2024-01-01T00:01:30Z")).unwrap(),
            t("2024-01-01T01:00:00Z")
        );
        let e = parse_schedule("@every 90s", None).unwrap();
        assert_eq!(
            e.next(t("2024-01-01T00:00:00Z")).unwrap(),
            t("2024-01-01T00:01:30Z")
        );
        assert!(parse_schedule("* * * *", None).is_err());
        assert!(parse_schedule("0 0 * * * *", None).is_err());
        assert!(parse_schedule("@fortnightly", None).is_err());
        assert!(parse_schedule("0 0 * * *", Some("Mars/Olympus")).is_err());
        // Day-of-month only: not every day.
        let m = parse_schedule("0 0 1 * *", None).unwrap();
        assert_eq!(
            m.next(t("2024-01-02T00:00:00Z")).unwrap(),
            t("2024-02-01T00:00:00Z")
        );
    }

    #[test]
    fn time_zone() {
        let s = parse_schedule("0 9 * * *", Some("America/New_York")).unwrap();
        // 09:00 in New York in January is 14:00 UTC.
        assert_eq!(
            s.next(t("2024-01-10T00:00:00Z")).unwrap(),
            t("2024-01-10T14:00:00Z")
        );
        let p = parse_schedule("TZ=Europe/Paris 0 9 * * *", None).unwrap();
        assert_eq!(
            p.next(t("2024-01-10T00:00:00Z")).unwrap(),
            t("2024-01-10T08:00:00Z")
        );
    }

    #[test]
    fn missed_schedules() {
        let s = parse_schedule("* * * * *", None).unwrap();
        let (st, missed) =
            most_recent_schedule(&s, t("2024-01-01T00:00:00Z"), t("2024-01-01T00:05:30Z"));
        assert_eq!(st.unwrap(), t("2024-01-01T00:05:00Z"));
        assert_eq!(missed, 5);
        let (none, _) =
            most_recent_schedule(&s, t("2024-01-01T00:05:00Z"), t("2024-01-01T00:05:30Z"));
        assert!(none.is_none());
        let (far, n) =
            most_recent_schedule(&s, t("2023-01-01T00:00:00Z"), t("2024-01-01T00:05:30Z"));
        assert_eq!(far.unwrap(), t("2024-01-01T00:05:00Z"));
        assert!(n > MAX_MISSED);
        assert_eq!(
            job_name("hello", t("2024-01-01T00:05:00Z")),
            format!("hello-{}", 1704067500 / 60)
        );
    }
}
