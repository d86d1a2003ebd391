//! garbage-collector-controller: deletes objects whose owners are gone,
//! following `metadata.ownerReferences` like upstream's garbage collector:
//!
//! * background: an object all of whose owners are gone (or waiting for their
//!   dependents) is deleted;
//! * foreground: an owner being deleted with the `foregroundDeletion`
//!   finalizer keeps it until no dependent with `blockOwnerDeletion: true`
//!   is left; its dependents are deleted (in foreground themselves when they
//!   have dependents);
//! * orphan: an owner being deleted with the `orphan` finalizer has its
//!   ownerReference removed from every dependent, then the finalizer removed.
//!
//! The dependency graph is built from metadata-only informers on every
//! resource discovery finds that supports list, watch and delete (re-discovered
//! every 30 s, so custom resources are covered).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, PostParams, Preconditions, PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use kube::discovery::{verbs, Scope};
use kube::{Api, ResourceExt};
use tokio::sync::mpsc;

use super::podutil::is_not_found;
use crate::informers::{Informer, Notification};
use crate::workqueue::{run_workers, WorkQueue};
use crate::ControllerContext;

pub const FINALIZER_ORPHAN: &str = "orphan";
pub const FINALIZER_DELETE_DEPENDENTS: &str = "foregroundDeletion";

type Meta = PartialObjectMeta<DynamicObject>;

/// A resource the collector watches.
#[derive(Debug)]
pub struct ResourceInfo {
    pub ar: ApiResource,
    pub namespaced: bool,
}

#[derive(Debug, Clone)]
struct Node {
    res: Arc<ResourceInfo>,
    namespace: Option<String>,
    name: String,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

impl Node {
    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }
    fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FINALIZER_DELETE_DEPENDENTS)
    }
}

#[derive(Default)]
struct Graph {
    nodes: HashMap<String, Node>,
    /// owner uid → dependent uids
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    fn unlink(&mut self, uid: &str, owners: &[OwnerReference]) {
        for o in owners {
            if let Some(set) = self.dependents.get_mut(&o.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&o.uid);
                }
            }
        }
    }

    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Item {
    Delete(String),
    Orphan(String),
}

/// (group, kind) → resource
type Kinds = Arc<RwLock<HashMap<(String, String), Arc<ResourceInfo>>>>;

fn group_of(api_version: &str) -> &str {
    match api_version.split_once('/') {
        Some((g, _)) => g,
        None => "",
    }
}

struct Shared {
    client: kube::Client,
    graph: Mutex<Graph>,
    kinds: Kinds,
    queue: WorkQueue<Item>,
}

impl Shared {
    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        client: ctx.client.clone(),
        graph: Mutex::new(Graph::default()),
        kinds: Arc::new(RwLock::new(HashMap::new())),
        queue: WorkQueue::new(),
    });
    let (tx, rx) = mpsc::unbounded_channel::<(Arc<ResourceInfo>, Notification<Meta>)>();
    let mut informers: HashMap<(String, String), Informer<Meta>> = HashMap::new();

    // Graph builder.
    {
        let builder_shared = shared.clone();
        let stop = ctx.stop.clone();
        let mut rx = rx;
        let infs: Arc<Mutex<HashMap<String, Informer<Meta>>>> =
            Arc::new(Mutex::new(HashMap::new()));
        let infs2 = infs.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = stop.cancelled() => return,
                    m = rx.recv() => m,
                };
                let Some((res, n)) = msg else { return };
                process_change(&builder_shared, &res, n, &infs2);
            }
        });
        // Let the other controllers ask for their informers first, so the
        // collector's metadata views share their watches.
        tokio::select! {
            _ = ctx.stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        // Discovery loop (initial + every 30 s).
        let mut first = true;
        loop {
            match discover(&ctx.client).await {
                Ok(found) => {
                    let mut new = Vec::new();
                    for ri in found {
                        let key = (ri.ar.group.clone(), ri.ar.kind.clone());
                        if informers.contains_key(&key) {
                            continue;
                        }
                        let ri = Arc::new(ri);
                        shared
                            .kinds
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(key.clone(), ri.clone());
                        let inf = ctx.informers.metadata(&ri.ar);
                        infs.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(res_key(&ri), inf.clone());
                        let mut sub = inf.subscribe();
                        if inf.has_synced() {
                            let _ = tx.send((ri.clone(), Notification::Resync));
                        }
                        let tx = tx.clone();
                        let stop = ctx.stop.clone();
                        let ri2 = ri.clone();
                        tokio::spawn(async move {
                            loop {
                                let n = tokio::select! {
                                    _ = stop.cancelled() => return,
                                    n = sub.recv() => n,
                                };
                                let Some(n) = n else { return };
                                if tx.send((ri2.clone(), n)).is_err() {
                                    return;
                                }
                            }
                        });
                        informers.insert(key, inf.clone());
                        new.push(inf);
                    }
                    if first {
                        // Wait (bounded) for the initial lists before acting.
                        let all = futures::future::join_all(new.iter().map(|i| i.wait_synced()));
                        if tokio::time::timeout(Duration::from_secs(60), all)
                            .await
                            .is_err()
                        {
                            tracing::warn!("garbage collector: timed out waiting for caches to sync; proceeding");
                        }
                        first = false;
                        let shared = shared.clone();
                        let stop = ctx.stop.clone();
                        let workers = ctx.options.concurrent_gc_syncs;
                        tokio::spawn(async move {
                            let queue = shared.queue.clone();
                            run_workers(
                                queue,
                                workers,
                                stop,
                                "garbage-collector",
                                move |item: Item| {
                                    let shared = shared.clone();
                                    async move {
                                        match item {
                                            Item::Delete(uid) => {
                                                attempt_to_delete(&shared, &uid).await
                                            }
                                            Item::Orphan(uid) => {
                                                attempt_to_orphan(&shared, &uid).await
                                            }
                                        }
                                    }
                                },
                            )
                            .await;
                        });
                        tracing::info!("garbage collector: all resource monitors have synced; proceeding to collect garbage");
                    }
                }
                Err(e) => tracing::info!("garbage collector: discovery failed: {e}"),
            }
            tokio::select! {
                _ = ctx.stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
    }
}

fn res_key(ri: &ResourceInfo) -> String {
    format!("{}/{}", ri.ar.api_version, ri.ar.plural)
}

/// The resources the collector tracks: preferred versions supporting list,
/// watch and delete, except events.
pub async fn discover(client: &kube::Client) -> anyhow::Result<Vec<ResourceInfo>> {
    let (all, failures) = crate::discovery::preferred_resources(client).await;
    if !failures.is_empty() {
        tracing::info!(
            "garbage collector: failed to discover some groups: {}",
            failures.join("; ")
        );
    }
    if all.is_empty() {
        anyhow::bail!("discovery found no resources");
    }
    let mut out = Vec::new();
    for (ar, caps) in all {
        if ar.plural == "events" && (ar.group.is_empty() || ar.group == "events.k8s.io") {
            continue;
        }
        if !caps.supports_operation(verbs::LIST)
            || !caps.supports_operation(verbs::WATCH)
            || !caps.supports_operation(verbs::DELETE)
        {
            continue;
        }
        out.push(ResourceInfo {
            namespaced: caps.scope == Scope::Namespaced,
            ar,
        });
    }
    Ok(out)
}

fn process_change(
    shared: &Shared,
    res: &Arc<ResourceInfo>,
    n: Notification<Meta>,
    infs: &Mutex<HashMap<String, Informer<Meta>>>,
) {
    match n {
        Notification::Added(obj) => upsert(shared, res, &obj),
        Notification::Updated { new, .. } => upsert(shared, res, &new),
        Notification::Deleted(obj) => {
            if let Some(uid) = obj.metadata.uid.clone() {
                remove(shared, &uid);
            }
        }
        Notification::Resync => {
            let inf = infs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&res_key(res))
                .cloned();
            let Some(inf) = inf else { return };
            let objs = inf.list();
            let live: HashSet<String> =
                objs.iter().filter_map(|o| o.metadata.uid.clone()).collect();
            let stale: Vec<String> = shared
                .graph()
                .nodes
                .iter()
                .filter(|(uid, n)| Arc::ptr_eq(&n.res, res) && !live.contains(*uid))
                .map(|(uid, _)| uid.clone())
                .collect();
            for uid in stale {
                remove(shared, &uid);
            }
            for o in objs {
                upsert(shared, res, &o);
            }
        }
    }
}

fn upsert(shared: &Shared, res: &Arc<ResourceInfo>, obj: &Meta) {
    let Some(uid) = obj.metadata.uid.clone() else {
        return;
    };
    let node = Node {
        res: res.clone(),
        namespace: obj.metadata.namespace.clone().filter(|s| !s.is_empty()),
        name: obj.name_any(),
        owners: obj.metadata.owner_references.clone().unwrap_or_default(),
        deleting: obj.metadata.deletion_timestamp.is_some(),
        finalizers: obj.metadata.finalizers.clone().unwrap_or_default(),
    };
    let mut g = shared.graph();
    let old = g.nodes.insert(uid.clone(), node.clone());
    if let Some(old) = &old {
        g.unlink(&uid, &old.owners);
    }
    for o in &node.owners {
        g.dependents
            .entry(o.uid.clone())
            .or_default()
            .insert(uid.clone());
    }
    let q = &shared.queue;
    // Orphan / foreground deletion of this object.
    if node.deleting && node.has_finalizer(FINALIZER_ORPHAN) {
        q.add(Item::Orphan(uid.clone()));
    }
    if node.deleting_dependents() {
        q.add(Item::Delete(uid.clone()));
        for d in g.dependents_of(&uid) {
            q.add(Item::Delete(d));
        }
    }
    // Its owners may be gone, or waiting for it.
    let owners_changed = old
        .as_ref()
        .map(|o| o.owners != node.owners)
        .unwrap_or(true);
    if !node.owners.is_empty()
        && (owners_changed
            || old
                .as_ref()
                .map(|o| o.deleting != node.deleting)
                .unwrap_or(false))
    {
        q.add(Item::Delete(uid.clone()));
    }
    // Owners this object no longer blocks may be able to finish.
    if let Some(old) = &old {
        let still: HashSet<(&str, bool)> = node
            .owners
            .iter()
            .map(|o| (o.uid.as_str(), o.block_owner_deletion == Some(true)))
            .collect();
        for o in &old.owners {
            if o.block_owner_deletion == Some(true)
                && !still.contains(&(o.uid.as_str(), true))
                && g.nodes
                    .get(&o.uid)
                    .map(Node::deleting_dependents)
                    .unwrap_or(false)
            {
                q.add(Item::Delete(o.uid.clone()));
            }
        }
    }
}

fn remove(shared: &Shared, uid: &str) {
    let mut g = shared.graph();
    let Some(node) = g.nodes.remove(uid) else {
        return;
    };
    g.unlink(uid, &node.owners);
    for d in g.dependents_of(uid) {
        shared.queue.add(Item::Delete(d));
    }
    for o in &node.owners {
        if g.nodes
            .get(&o.uid)
            .map(Node::deleting_dependents)
            .unwrap_or(false)
        {
            shared.queue.add(Item::Delete(o.uid.clone()));
        }
    }
}

fn dyn_api(client: &kube::Client, res: &ResourceInfo, ns: Option<&str>) -> Api<DynamicObject> {
    match (res.namespaced, ns) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &res.ar),
        _ => Api::all_with(client.clone(), &res.ar),
    }
}

enum OwnerState {
    Solid,
    Dangling,
    Waiting,
}

async fn classify_owner(
    shared: &Shared,
    node: &Node,
    owner: &OwnerReference,
) -> anyhow::Result<OwnerState> {
    if let Some(o) = shared.graph().nodes.get(&owner.uid) {
        return Ok(if o.deleting_dependents() {
            OwnerState::Waiting
        } else {
            OwnerState::Solid
        });
    }
    let key = (group_of(&owner.api_version).to_string(), owner.kind.clone());
    let res = shared
        .kinds
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    let Some(res) = res else {
        anyhow::bail!(
            "unable to resolve owner {} {} (apiVersion {}): kind not served",
            owner.kind,
            owner.name,
            owner.api_version
        );
    };
    if res.namespaced && node.namespace.is_none() {
        // A cluster-scoped dependent cannot have a namespaced owner.
        return Ok(OwnerState::Dangling);
    }
    let ns = if res.namespaced {
        node.namespace.as_deref()
    } else {
        None
    };
    let api: Api<Meta> = match ns {
        Some(ns) => Api::namespaced_with(shared.client.clone(), ns, &res.ar),
        None => Api::all_with(shared.client.clone(), &res.ar),
    };
    match api.get_opt(&owner.name).await? {
        None => Ok(OwnerState::Dangling),
        Some(o) if o.metadata.uid.as_deref() != Some(owner.uid.as_str()) => {
            Ok(OwnerState::Dangling)
        }
        Some(o) => {
            let fg = o.metadata.deletion_timestamp.is_some()
                && o.finalizers()
                    .iter()
                    .any(|f| f == FINALIZER_DELETE_DEPENDENTS);
            Ok(if fg {
                OwnerState::Waiting
            } else {
                OwnerState::Solid
            })
        }
    }
}

async fn attempt_to_delete(shared: &Shared, uid: &str) -> anyhow::Result<()> {
    let Some(node) = shared.graph().nodes.get(uid).cloned() else {
        return Ok(());
    };
    if node.deleting_dependents() {
        // Foreground deletion: finish when no blocking dependent is left.
        let blocking: Vec<(String, bool)> = {
            let g = shared.graph();
            g.dependents_of(uid)
                .into_iter()
                .filter_map(|d| {
                    let dn = g.nodes.get(&d)?;
                    let blocks = dn
                        .owners
                        .iter()
                        .any(|o| o.uid == uid && o.block_owner_deletion == Some(true));
                    blocks.then(|| (d.clone(), dn.deleting_dependents()))
                })
                .collect()
        };
        if blocking.is_empty() {
            return remove_finalizer(shared, &node, uid, FINALIZER_DELETE_DEPENDENTS).await;
        }
        for (d, d_deleting_dependents) in blocking {
            if !d_deleting_dependents {
                shared.queue.add(Item::Delete(d));
            }
        }
        return Ok(());
    }
    if node.deleting || node.owners.is_empty() {
        return Ok(());
    }
    let mut solid = Vec::new();
    let mut dangling = Vec::new();
    let mut waiting = Vec::new();
    for o in &node.owners {
        match classify_owner(shared, &node, o).await? {
            OwnerState::Solid => solid.push(o.uid.clone()),
            OwnerState::Dangling => dangling.push(o.uid.clone()),
            OwnerState::Waiting => waiting.push(o.uid.clone()),
        }
    }
    tracing::debug!(
        "gc: {}/{:?}/{}: solid={solid:?} dangling={dangling:?} waiting={waiting:?}",
        node.res.ar.kind,
        node.namespace,
        node.name
    );
    if !solid.is_empty() {
        if dangling.is_empty() && waiting.is_empty() {
            return Ok(());
        }
        let drop: HashSet<String> = dangling.into_iter().chain(waiting).collect();
        return remove_owner_refs(shared, &node, uid, &drop).await;
    }
    let has_dependents = !shared.graph().dependents_of(uid).is_empty();
    let policy = if !waiting.is_empty() && has_dependents {
        PropagationPolicy::Foreground
    } else if node.has_finalizer(FINALIZER_ORPHAN) {
        PropagationPolicy::Orphan
    } else if node.has_finalizer(FINALIZER_DELETE_DEPENDENTS) {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    };
    tracing::info!(
        "garbage collector: deleting {} {}{} (propagation {:?})",
        node.res.ar.kind,
        node.namespace
            .as_deref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default(),
        node.name,
        policy
    );
    let dp = DeleteParams {
        propagation_policy: Some(policy),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match dyn_api(&shared.client, &node.res, node.namespace.as_deref())
        .delete(&node.name, &dp)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(kube::Error::Api(ae)) if ae.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn attempt_to_orphan(shared: &Shared, uid: &str) -> anyhow::Result<()> {
    let Some(node) = shared.graph().nodes.get(uid).cloned() else {
        return Ok(());
    };
    if !node.deleting || !node.has_finalizer(FINALIZER_ORPHAN) {
        return Ok(());
    }
    let deps: Vec<(String, Node)> = {
        let g = shared.graph();
        g.dependents_of(uid)
            .into_iter()
            .filter_map(|d| g.nodes.get(&d).cloned().map(|n| (d, n)))
            .collect()
    };
    let drop: HashSet<String> = HashSet::from([uid.to_string()]);
    for (d, dn) in deps {
        remove_owner_refs(shared, &dn, &d, &drop).await?;
    }
    remove_finalizer(shared, &node, uid, FINALIZER_ORPHAN).await
}

/// Read-modify-write of `node`'s object metadata, retried on conflicts (five
/// attempts). `change` edits the metadata and says whether anything changed;
/// Ok(true) when the object was written, Ok(false) when nothing needed
/// changing or the object (with this `uid`) is gone. `what` names the change
/// in the error after the last conflict.
async fn update_metadata(
    shared: &Shared,
    node: &Node,
    uid: &str,
    what: &str,
    change: impl Fn(&mut ObjectMeta) -> bool,
) -> anyhow::Result<bool> {
    let api = dyn_api(&shared.client, &node.res, node.namespace.as_deref());
    for _ in 0..5 {
        let Some(mut obj) = api.get_opt(&node.name).await? else {
            return Ok(false);
        };
        if obj.metadata.uid.as_deref() != Some(uid) {
            return Ok(false);
        }
        if !change(&mut obj.metadata) {
            return Ok(false);
        }
        match api.replace(&node.name, &PostParams::default(), &obj).await {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(ae)) if ae.code == 409 => continue,
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("conflicts removing {what} from {}", node.name)
}

/// Removes the ownerReferences with the given uids (read-modify-write).
async fn remove_owner_refs(
    shared: &Shared,
    node: &Node,
    uid: &str,
    drop: &HashSet<String>,
) -> anyhow::Result<()> {
    update_metadata(shared, node, uid, "owner references", |meta| {
        let refs = meta.owner_references.clone().unwrap_or_default();
        let kept: Vec<OwnerReference> = refs
            .iter()
            .filter(|o| !drop.contains(&o.uid))
            .cloned()
            .collect();
        if kept.len() == refs.len() {
            return false;
        }
        meta.owner_references = if kept.is_empty() { None } else { Some(kept) };
        true
    })
    .await?;
    Ok(())
}

async fn remove_finalizer(
    shared: &Shared,
    node: &Node,
    uid: &str,
    finalizer: &str,
) -> anyhow::Result<()> {
    let removed = update_metadata(
        shared,
        node,
        uid,
        &format!("finalizer {finalizer}"),
        |meta| {
            let fins = meta.finalizers.clone().unwrap_or_default();
            if !fins.iter().any(|f| f == finalizer) {
                return false;
            }
            meta.finalizers = Some(fins.into_iter().filter(|f| f != finalizer).collect());
            true
        },
    )
    .await?;
    if removed {
        tracing::info!(
            "garbage collector: removed finalizer {finalizer} from {} {}",
            node.res.ar.kind,
            node.name
        );
    }
    Ok(())
}
