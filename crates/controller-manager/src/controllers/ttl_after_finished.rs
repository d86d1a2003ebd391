//! TTL-after-finished controller (upstream pkg/controller/ttlafterfinished):
//! a finished Job with spec.ttlSecondsAfterFinished is deleted (foreground
//! cascading, UID precondition) that many seconds after it finished.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::Api;

use super::job::finished;
use super::podutil;
use crate::informers::{key_of, split_key, Notification};
use crate::workqueue::{run_workers, WorkQueue};
use crate::ControllerContext;

/// When a job expires: None when it has no TTL or isn't finished.
pub fn expire_at(job: &Job) -> Option<DateTime<Utc>> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let (_, cond_time) = finished(job)?;
    let done = job
        .status
        .as_ref()
        .and_then(|s| s.completion_time.as_ref())
        .map(podutil::to_utc)
        .or(cond_time)?;
    Some(done + chrono::Duration::seconds(ttl as i64))
}

/// The TTL-after-finished controller ("ttl-after-finished-controller").
pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let jobs = ctx.informers.get::<Job>();
    let mut sub = jobs.subscribe();
    jobs.wait_synced().await;
    let queue: WorkQueue<String> = WorkQueue::new();
    let needs = |j: &Job| j.metadata.deletion_timestamp.is_none() && expire_at(j).is_some();
    for j in jobs.list() {
        if needs(&j) {
            queue.add(key_of(j.as_ref()));
        }
    }
    {
        let (jobs, queue, stop) = (jobs.clone(), queue.clone(), ctx.stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    n = sub.recv() => match n {
                        Some(Notification::Added(j)) | Some(Notification::Updated { new: j, .. }) => {
                            if needs(&j) { queue.add(key_of(j.as_ref())) }
                        }
                        Some(Notification::Resync) => for j in jobs.list() { if needs(&j) { queue.add(key_of(j.as_ref())) } },
                        Some(Notification::Deleted(_)) => {}
                        None => break,
                    },
                }
            }
        });
    }
    let workers = ctx.options.concurrent_ttl_after_finished_syncs.max(1);
    let client = ctx.client.clone();
    let q2 = queue.clone();
    run_workers(
        queue,
        workers,
        ctx.stop.clone(),
        "ttl-after-finished-controller",
        move |key: String| {
            let (client, queue) = (client.clone(), q2.clone());
            async move {
                let (ns, name) = split_key(&key);
                let api: Api<Job> = Api::namespaced(client, ns.unwrap_or("default"));
                // Check the live object: the TTL may have changed.
                let job = match api.get(name).await {
                    Ok(j) => j,
                    Err(e) if podutil::is_not_found(&e) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                if job.metadata.deletion_timestamp.is_some() {
                    return Ok(());
                }
                let Some(at) = expire_at(&job) else {
                    return Ok(());
                };
                let now = Utc::now();
                if at > now {
                    queue.add_after(
                        key.clone(),
                        (at - now).to_std().unwrap_or_default() + Duration::from_millis(100),
                    );
                    return Ok(());
                }
                tracing::info!("ttl-after-finished: cleaning up job {key}");
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Foreground),
                    preconditions: Some(Preconditions {
                        uid: job.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(name, &dp).await {
                    Ok(_) => Ok(()),
                    Err(e) if podutil::is_not_found(&e) || podutil::is_conflict(&e) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        },
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};

    #[test]
    fn expiry() {
        let now = Utc::now();
        let mut j = Job {
            spec: Some(JobSpec {
                ttl_seconds_after_finished: Some(30),
                ..Default::default()
            }),
            status: Some(JobStatus {
                completion_time: Some(podutil::api_time(now)),
                conditions: Some(vec![JobCondition {
                    type_: "Complete".into(),
                    status: "True".into(),
                    last_transition_time: Some(podutil::api_time(now)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let at = expire_at(&j).unwrap();
        assert_eq!(
            (at - podutil::to_utc(&podutil::api_time(now))).num_seconds(),
            30
        );
        j.spec.as_mut().unwrap().ttl_seconds_after_finished = None;
        assert!(expire_at(&j).is_none());
    }
}
