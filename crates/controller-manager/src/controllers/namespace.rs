//! namespace-controller: when a namespace is deleted, delete every namespaced
//! object in it (found through discovery), report progress in the
//! NamespaceDeletion* / NamespaceContentRemaining / NamespaceFinalizersRemaining
//! conditions, and once it is empty remove the `kubernetes` finalizer through
//! the namespaces/finalize subresource so the apiserver can drop it.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::discovery::{verbs, Scope};
use kube::{Api, ResourceExt};

use crate::informers::{Informer, Notification};
use crate::workqueue::{run_workers, WorkQueue};
use crate::ControllerContext;

/// The finalizer this controller owns (spec.finalizers).
pub const FINALIZER_KUBERNETES: &str = "kubernetes";

pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let namespaces = ctx.informers.get::<Namespace>();
    let mut sub = namespaces.subscribe();
    namespaces.wait_synced().await;
    let queue: WorkQueue<String> = WorkQueue::new();
    let enqueue_all = {
        let (queue, namespaces) = (queue.clone(), namespaces.clone());
        move || {
            for ns in namespaces.list() {
                if ns.metadata.deletion_timestamp.is_some() {
                    queue.add(ns.name_any());
                }
            }
        }
    };
    enqueue_all();
    {
        let queue = queue.clone();
        let stop = ctx.stop.clone();
        let period = ctx
            .options
            .namespace_sync_period
            .max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = resync.tick() => enqueue_all(),
                    n = sub.recv() => match n {
                        None => return,
                        Some(Notification::Resync) => enqueue_all(),
                        Some(Notification::Deleted(_)) => {}
                        Some(n) => if let Some(ns) = n.object() {
                            if ns.metadata.deletion_timestamp.is_some() {
                                queue.add(ns.name_any());
                            }
                        },
                    },
                }
            }
        });
    }
    let client = ctx.client.clone();
    let q = queue.clone();
    run_workers(
        queue,
        ctx.options.concurrent_namespace_syncs,
        ctx.stop.clone(),
        "namespace",
        move |ns: String| sync(client.clone(), namespaces.clone(), q.clone(), ns),
    )
    .await;
    Ok(())
}

async fn sync(
    client: kube::Client,
    namespaces: Informer<Namespace>,
    queue: WorkQueue<String>,
    name: String,
) -> anyhow::Result<()> {
    if namespaces.get(None, &name).is_none() {
        return Ok(());
    }
    let api: Api<Namespace> = Api::all(client.clone());
    let Some(ns) = api.get_opt(&name).await? else {
        return Ok(());
    };
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(());
    }
    let finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER_KUBERNETES) {
        return Ok(());
    }
    let outcome = delete_all_content(&client, &name).await;
    let conditions = outcome.conditions();
    update_conditions(&api, &ns, conditions).await;
    if let Some(err) = &outcome.error {
        anyhow::bail!("deleting content of namespace {name}: {err}");
    }
    if !outcome.remaining.is_empty() {
        tracing::debug!(
            "namespace {name}: content remaining {:?}",
            outcome.remaining
        );
        queue.add_after(name, Duration::from_secs(2));
        return Ok(());
    }
    // Everything gone: remove our finalizer.
    let mut latest = api.get(&name).await?;
    if let Some(spec) = latest.spec.as_mut() {
        spec.finalizers = Some(
            spec.finalizers
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f != FINALIZER_KUBERNETES)
                .collect(),
        );
    }
    match api
        .replace_subresource("finalize", &name, &PostParams::default(), &latest)
        .await
    {
        Ok(_) => {
            tracing::info!("namespace {name}: content deleted, finalized");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Default)]
struct Outcome {
    discovery_failures: Vec<String>,
    deletion_failures: Vec<String>,
    /// "resource.group" → remaining count
    remaining: BTreeMap<String, usize>,
    /// finalizer → count of objects carrying it
    finalizers: BTreeMap<String, usize>,
    error: Option<String>,
}

fn condition(
    type_: &str,
    failed: bool,
    reason_bad: &str,
    reason_ok: &str,
    msg_bad: String,
    msg_ok: &str,
) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.into(),
        status: if failed { "True" } else { "False" }.into(),
        reason: Some(if failed { reason_bad } else { reason_ok }.into()),
        message: Some(if failed { msg_bad } else { msg_ok.into() }),
        last_transition_time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
    }
}

impl Outcome {
    fn conditions(&self) -> Vec<NamespaceCondition> {
        let remaining: Vec<String> = self
            .remaining
            .iter()
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect();
        let finalizers: Vec<String> = self
            .finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        vec![
            condition(
                "NamespaceDeletionDiscoveryFailure",
                !self.discovery_failures.is_empty(),
                "DiscoveryFailed",
                "ResourcesDiscovered",
                format!(
                    "Discovery failed for some groups, {} failing: {}",
                    self.discovery_failures.len(),
                    self.discovery_failures.join(", ")
                ),
                "All resources successfully discovered",
            ),
            condition(
                "NamespaceDeletionGroupVersionParsingFailure",
                false,
                "GroupVersionParsingFailed",
                "ParsedGroupVersions",
                String::new(),
                "All legacy kube types successfully parsed",
            ),
            condition(
                "NamespaceDeletionContentFailure",
                !self.deletion_failures.is_empty(),
                "ContentDeletionFailed",
                "ContentDeleted",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    self.deletion_failures.len(),
                    self.deletion_failures.join(", ")
                ),
                "All content successfully deleted, may be waiting on finalization",
            ),
            condition(
                "NamespaceContentRemaining",
                !remaining.is_empty(),
                "SomeResourcesRemain",
                "ContentRemoved",
                format!("Some resources are remaining: {}", remaining.join(", ")),
                "All content successfully removed",
            ),
            condition(
                "NamespaceFinalizersRemaining",
                !finalizers.is_empty(),
                "SomeFinalizersRemain",
                "ContentHasNoFinalizers",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    finalizers.join(", ")
                ),
                "All content-preserving finalizers finished",
            ),
        ]
    }
}

/// The namespaced resources that can be listed and deleted (preferred
/// versions), and the groups whose discovery failed.
pub async fn deletable_namespaced_resources(
    client: &kube::Client,
) -> (Vec<(ApiResource, bool)>, Vec<String>) {
    let (all, failures) = crate::discovery::preferred_resources(client).await;
    let out = all
        .into_iter()
        .filter(|(_, caps)| {
            caps.scope == Scope::Namespaced
                && caps.supports_operation(verbs::LIST)
                && caps.supports_operation(verbs::DELETE)
        })
        .map(|(ar, caps)| {
            let collection = caps.supports_operation(verbs::DELETE_COLLECTION);
            (ar, collection)
        })
        .collect();
    (out, failures)
}

fn group_resource(ar: &ApiResource) -> String {
    format!("{}.{}", ar.plural, ar.group)
}

async fn delete_all_content(client: &kube::Client, ns: &str) -> Outcome {
    let mut out = Outcome::default();
    let (resources, failures) = deletable_namespaced_resources(client).await;
    out.discovery_failures = failures;
    if resources.is_empty() && !out.discovery_failures.is_empty() {
        out.error = Some(out.discovery_failures.join("; "));
        return out;
    }
    let bg = DeleteParams::background();
    for (ar, collection) in &resources {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
        let meta_api: Api<PartialObjectMeta<DynamicObject>> =
            Api::namespaced_with(client.clone(), ns, ar);
        let gr = group_resource(ar);
        // Anything there at all?
        let items = match meta_api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 405 => continue,
            Err(e) => {
                out.deletion_failures.push(format!("{gr}: {e}"));
                continue;
            }
        };
        if items.is_empty() {
            continue;
        }
        let mut failed = false;
        if *collection {
            if let Err(e) = api.delete_collection(&bg, &ListParams::default()).await {
                match e {
                    kube::Error::Api(ref ae) if ae.code == 404 => {}
                    e => {
                        out.deletion_failures.push(format!("{gr}: {e}"));
                        failed = true;
                    }
                }
            }
        } else {
            for item in &items {
                if item.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                match api.delete(&item.name_any(), &bg).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => {
                        out.deletion_failures.push(format!("{gr}: {e}"));
                        failed = true;
                        break;
                    }
                }
            }
        }
        if failed {
            continue;
        }
        // What is left (graceful deletion, finalizers)?
        let left = match meta_api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) => {
                out.deletion_failures.push(format!("{gr}: {e}"));
                continue;
            }
        };
        if !left.is_empty() {
            *out.remaining.entry(gr.clone()).or_default() += left.len();
            for item in &left {
                for f in item.finalizers() {
                    *out.finalizers.entry(f.clone()).or_default() += 1;
                }
            }
        }
    }
    // Content in groups that could not be discovered may remain: do not
    // finalize until discovery succeeds.
    let errors: Vec<String> = out
        .discovery_failures
        .iter()
        .chain(out.deletion_failures.iter())
        .cloned()
        .collect();
    if !errors.is_empty() {
        out.error = Some(errors.join("; "));
    }
    out
}

async fn update_conditions(api: &Api<Namespace>, ns: &Namespace, wanted: Vec<NamespaceCondition>) {
    let current = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut next = current.clone();
    let mut changed = false;
    for w in wanted {
        match next.iter_mut().find(|c| c.type_ == w.type_) {
            Some(c) => {
                if c.status != w.status || c.reason != w.reason || c.message != w.message {
                    let keep_time = c.status == w.status;
                    let t = c.last_transition_time.clone();
                    *c = w;
                    if keep_time {
                        c.last_transition_time = t;
                    }
                    changed = true;
                }
            }
            None => {
                next.push(w);
                changed = true;
            }
        }
    }
    if !changed {
        return;
    }
    let mut updated = ns.clone();
    updated
        .status
        .get_or_insert_with(Default::default)
        .conditions = Some(next);
    if let Err(e) = api
        .replace_status(&ns.name_any(), &PostParams::default(), &updated)
        .await
    {
        tracing::debug!("updating conditions of namespace {}: {e}", ns.name_any());
    }
}
