//! The proxier: the watched state (Services, EndpointSlices, the own Node),
//! the sync loop (bounded frequency: at once on a change, at most a burst
//! of 2 then one per minSyncPeriod; a full rewrite every syncPeriod) and
//! one sync (build the ruleset, apply it in one `nft -f` transaction, then
//! conntrack cleanup, service health-check servers, metrics, healthz).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, ResourceExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::health::{ProxierHealth, ServiceHealth, ServiceHealthServers};
use crate::metrics::Metrics;
use crate::model::{self, ServiceEndpoints, ANNOTATION_TRIGGER_TIME};
use crate::options::{nodeport_ip_ok, Settings};
use crate::rules::{self, Before, Existing, NodePortAddresses, RuleConfig, Ruleset};

type Key = (String, String);

fn key_of<K: kube::Resource>(o: &K) -> Key {
    (o.namespace().unwrap_or_default(), o.name_any())
}

/// What the watches have seen.
#[derive(Default)]
pub struct State {
    services: HashMap<Key, Service>,
    slices: HashMap<Key, EndpointSlice>,
    node: Option<Node>,
    services_synced: bool,
    slices_synced: bool,
    node_synced: bool,
    pending_service_changes: i64,
    pending_endpoint_changes: i64,
    trigger_times: Vec<SystemTime>,
    /// Something changed since the last snapshot.
    dirty: bool,
    /// The slices of each Service (by the Service's key).
    slices_by_service: HashMap<Key, BTreeSet<Key>>,
    /// Services whose ports or endpoints changed since the last snapshot.
    changed: BTreeSet<Key>,
}

impl State {
    fn index_slice(&mut self, key: &Key, slice: &EndpointSlice) {
        if let Some(svc) = model::slice_service(slice) {
            self.changed.insert(svc.clone());
            self.slices_by_service
                .entry(svc)
                .or_default()
                .insert(key.clone());
        }
    }

    fn unindex_slice(&mut self, key: &Key, slice: &EndpointSlice) {
        if let Some(svc) = model::slice_service(slice) {
            if let Some(set) = self.slices_by_service.get_mut(&svc) {
                set.remove(key);
                if set.is_empty() {
                    self.slices_by_service.remove(&svc);
                }
            }
            self.changed.insert(svc);
        }
    }

    /// The service ports of Service `key` with their endpoints (empty when
    /// the Service is gone or not proxied).
    fn service_entries(&self, key: &Key, hostname: &str) -> Vec<ServiceEndpoints> {
        let Some(svc) = self.services.get(key) else {
            return Vec::new();
        };
        let slices: Vec<&EndpointSlice> = self
            .slices_by_service
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|k| self.slices.get(k))
            .collect();
        model::service_entries(svc, &slices, hostname)
    }
}

/// What a sync starts from (see [`Proxier::snapshot`]).
struct Snapshot {
    /// Per Service: its service ports with endpoints (empty: none, or
    /// gone). Every Service for a full snapshot, else the changed ones.
    services: BTreeMap<Key, Vec<ServiceEndpoints>>,
    node_ips: Vec<Ipv4Addr>,
    triggers: Vec<SystemTime>,
}

/// The parts of an EndpointSlice kube-proxy looks at.
fn slice_view(s: &EndpointSlice) -> serde_json::Value {
    serde_json::json!({
        "svc": model::slice_service(s),
        "ports": s.ports,
        "endpoints": s.endpoints,
    })
}

pub struct Proxier {
    pub settings: Settings,
    state: Mutex<State>,
    notify: Notify,
    pub metrics: Arc<Metrics>,
    pub health: Arc<ProxierHealth>,
}

impl Proxier {
    pub fn new(settings: Settings, metrics: Arc<Metrics>, health: Arc<ProxierHealth>) -> Arc<Self> {
        Arc::new(Proxier {
            settings,
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            metrics,
            health,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queue(&self) {
        self.lock().dirty = true;
        self.health.queued();
        self.metrics.last_queued_timestamp.set(now_secs());
        self.notify.notify_one();
    }

    fn service_changed(&self, st: &mut State) {
        st.pending_service_changes += 1;
        self.metrics.service_changes_total.inc();
        self.metrics
            .service_changes_pending
            .set(st.pending_service_changes);
    }

    fn endpoints_changed(&self, st: &mut State, slice: Option<&EndpointSlice>) {
        st.pending_endpoint_changes += 1;
        self.metrics.endpoint_changes_total.inc();
        self.metrics
            .endpoint_changes_pending
            .set(st.pending_endpoint_changes);
        if let Some(t) = slice
            .and_then(|s| s.metadata.annotations.as_ref())
            .and_then(|a| a.get(ANNOTATION_TRIGGER_TIME))
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            st.trigger_times.push(SystemTime::from(t));
        }
    }

    // --- watch handlers ---

    pub fn upsert_service(&self, svc: Service) {
        let key = key_of(&svc);
        let mut st = self.lock();
        // Only what the rules use counts as a change (not status churn,
        // annotations, managed fields).
        let old = st.services.get(&key).map(model::service_ports);
        let changed = old.as_ref() != Some(&model::service_ports(&svc));
        if changed {
            st.changed.insert(key.clone());
        }
        st.services.insert(key, svc);
        if changed {
            self.service_changed(&mut st);
            drop(st);
            self.queue();
        }
    }

    pub fn remove_service(&self, key: &Key) {
        let mut st = self.lock();
        if let Some(old) = st.services.remove(key) {
            if !model::service_ports(&old).is_empty() {
                st.changed.insert(key.clone());
                self.service_changed(&mut st);
                drop(st);
                self.queue();
            }
        }
    }

    pub fn replace_services(&self, list: Vec<Service>) {
        let keys: BTreeSet<Key> = list.iter().map(key_of).collect();
        let gone: Vec<Key> = self
            .lock()
            .services
            .keys()
            .filter(|k| !keys.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            self.remove_service(&k);
        }
        for s in list {
            self.upsert_service(s);
        }
        self.lock().services_synced = true;
        self.queue();
    }

    pub fn upsert_slice(&self, slice: EndpointSlice) {
        let key = key_of(&slice);
        let mut st = self.lock();
        let changed = st.slices.get(&key).map(slice_view) != Some(slice_view(&slice));
        if changed {
            self.endpoints_changed(&mut st, Some(&slice));
            if let Some(old) = st.slices.remove(&key) {
                st.unindex_slice(&key, &old);
            }
            st.index_slice(&key, &slice);
        }
        st.slices.insert(key, slice);
        if changed {
            drop(st);
            self.queue();
        }
    }

    pub fn remove_slice(&self, key: &Key) {
        let mut st = self.lock();
        if let Some(old) = st.slices.remove(key) {
            st.unindex_slice(key, &old);
            self.endpoints_changed(&mut st, None);
            drop(st);
            self.queue();
        }
    }

    pub fn replace_slices(&self, list: Vec<EndpointSlice>) {
        let keys: BTreeSet<Key> = list.iter().map(key_of).collect();
        let gone: Vec<Key> = self
            .lock()
            .slices
            .keys()
            .filter(|k| !keys.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            self.remove_slice(&k);
        }
        for s in list {
            self.upsert_slice(s);
        }
        self.lock().slices_synced = true;
        self.queue();
    }

    pub fn set_node(&self, node: Option<Node>) {
        let eligible = node.as_ref().is_none_or(|n| {
            n.metadata.deletion_timestamp.is_none()
                && !n
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|t| t.iter().any(|t| t.key == "ToBeDeletedByClusterAutoscaler"))
        });
        self.health.set_node_eligible(eligible);
        let mut st = self.lock();
        st.node_synced = true;
        let old_ips = st.node.as_ref().map(node_ips);
        let new_ips = node.as_ref().map(node_ips);
        st.node = node;
        if old_ips != new_ips {
            drop(st);
            self.queue();
        }
    }

    fn dirty(&self) -> bool {
        self.lock().dirty
    }

    fn initialized(&self) -> bool {
        let st = self.lock();
        st.services_synced && st.slices_synced
    }

    /// The model (every Service when `full`, else the Services changed
    /// since the last snapshot) and node IPs; resets the pending counters.
    fn snapshot(&self, full: bool) -> Snapshot {
        let mut st = self.lock();
        st.dirty = false;
        st.pending_endpoint_changes = 0;
        st.pending_service_changes = 0;
        self.metrics.endpoint_changes_pending.set(0);
        self.metrics.service_changes_pending.set(0);
        let triggers = std::mem::take(&mut st.trigger_times);
        let changed = std::mem::take(&mut st.changed);
        let hostname = &self.settings.hostname;
        let services = if full {
            st.services
                .keys()
                .map(|k| (k.clone(), st.service_entries(k, hostname)))
                .filter(|(_, v)| !v.is_empty())
                .collect()
        } else {
            changed
                .into_iter()
                .map(|k| {
                    let v = st.service_entries(&k, hostname);
                    (k, v)
                })
                .collect()
        };
        let node_ips = st.node.as_ref().map(node_ips).unwrap_or_default();
        Snapshot {
            services,
            node_ips,
            triggers,
        }
    }

    // --- watches ---

    /// Watch Services, EndpointSlices and the own Node until `stop`.
    pub fn spawn_watches(
        self: &Arc<Self>,
        client: kube::Client,
        stop: CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let selector = format!(
            "!{},!{}",
            model::LABEL_SERVICE_PROXY_NAME,
            model::LABEL_HEADLESS
        );
        let mut tasks = Vec::new();
        {
            let p = self.clone();
            let api: Api<Service> = Api::all(client.clone());
            let cfg = watcher::Config::default().labels(&selector);
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                watch_loop(api, cfg, stop, "services", move |ev| match ev {
                    Change::Replace(list) => p.replace_services(list),
                    Change::Apply(s) => p.upsert_service(s),
                    Change::Delete(s) => p.remove_service(&key_of(&s)),
                })
                .await
            }));
        }
        {
            let p = self.clone();
            let api: Api<EndpointSlice> = Api::all(client.clone());
            let cfg = watcher::Config::default().labels(&selector);
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                watch_loop(api, cfg, stop, "endpointslices", move |ev| match ev {
                    Change::Replace(list) => p.replace_slices(list),
                    Change::Apply(s) => p.upsert_slice(s),
                    Change::Delete(s) => p.remove_slice(&key_of(&s)),
                })
                .await
            }));
        }
        {
            let p = self.clone();
            let api: Api<Node> = Api::all(client);
            let cfg = watcher::Config::default()
                .fields(&format!("metadata.name={}", self.settings.hostname));
            tasks.push(tokio::spawn(async move {
                let hostname = p.settings.hostname.clone();
                let mut warned = false;
                watch_loop(api, cfg, stop, "nodes", move |ev| match ev {
                    Change::Replace(list) => {
                        let n = list.into_iter().find(|n| n.name_any() == hostname);
                        if n.is_none() && !warned {
                            warned = true;
                            tracing::warn!(node = %hostname, "own Node not found; NodePorts have no addresses until it appears");
                        }
                        p.set_node(n);
                    }
                    Change::Apply(n) => p.set_node(Some(n)),
                    Change::Delete(_) => p.set_node(None),
                })
                .await
            }));
        }
        tasks
    }

    // --- sync loop ---

    /// Sync until `stop`; rules are left in place when it stops.
    pub async fn sync_loop(self: Arc<Self>, stop: CancellationToken) {
        let mut syncer = Syncer::new(self.clone());
        let min = self.settings.min_sync_period;
        let mut bucket = TokenBucket::new(2, min);
        let mut next_full = Instant::now();
        let mut force_full = true;
        // Wait for the initial lists.
        while !self.initialized() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.notify.notified() => {}
            }
        }
        // Give the own Node a moment, so the first sync has its addresses.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while !self.lock().node_synced {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        tracing::info!("services and endpoint slices listed, starting to sync rules");
        loop {
            let full = force_full || Instant::now() >= next_full;
            if !full {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = self.notify.notified() => {}
                    _ = tokio::time::sleep_until(next_full.into()) => {}
                }
                // A stale wake-up (the change was already synced).
                if !self.dirty() && Instant::now() < next_full {
                    continue;
                }
            }
            if let Some(wait) = bucket.take() {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                bucket.take_after_wait();
            }
            let full = force_full || Instant::now() >= next_full;
            if full {
                // Periodic syncs count as queued work for /healthz too.
                self.health.queued();
            }
            match syncer.sync(full).await {
                Ok(()) => {
                    force_full = false;
                    if full {
                        next_full = Instant::now() + self.settings.sync_period;
                    }
                }
                Err(e) => {
                    tracing::error!("syncing nftables rules failed: {e:#}");
                    self.metrics.restore_failures.inc();
                    force_full = false;
                    next_full = Instant::now()
                        + self
                            .settings
                            .sync_period
                            .min(Duration::from_secs(5))
                            .max(min);
                }
            }
        }
    }
}

/// A watch event, with the initial list delivered as one replacement.
pub enum Change<K> {
    Replace(Vec<K>),
    Apply(K),
    Delete(K),
}

async fn watch_loop<K, F>(
    api: Api<K>,
    cfg: watcher::Config,
    stop: CancellationToken,
    what: &'static str,
    mut handle: F,
) where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
    F: FnMut(Change<K>),
{
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let mut initial: Option<Vec<K>> = None;
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return,
            ev = stream.next() => ev,
        };
        let Some(ev) = ev else { return };
        match ev {
            Ok(Event::Init) => initial = Some(Vec::new()),
            Ok(Event::InitApply(o)) => match initial.as_mut() {
                Some(v) => v.push(o),
                None => handle(Change::Apply(o)),
            },
            Ok(Event::InitDone) => handle(Change::Replace(initial.take().unwrap_or_default())),
            Ok(Event::Apply(o)) => handle(Change::Apply(o)),
            Ok(Event::Delete(o)) => handle(Change::Delete(o)),
            Err(e) => tracing::warn!(error = %e, "{what} watch"),
        }
    }
}

/// The node's IPv4 addresses: InternalIP, else ExternalIP (upstream's order).
pub fn node_ips(node: &Node) -> Vec<Ipv4Addr> {
    let addrs = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .cloned()
        .unwrap_or_default();
    for kind in ["InternalIP", "ExternalIP"] {
        let ips: Vec<Ipv4Addr> = addrs
            .iter()
            .filter(|a| a.type_ == kind)
            .filter_map(|a| a.address.trim().parse().ok())
            .collect();
        if !ips.is_empty() {
            return ips;
        }
    }
    Vec::new()
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Upstream's BoundedFrequencyRunner limits: `burst` syncs at once, then one
/// per `interval`.
struct TokenBucket {
    burst: f64,
    tokens: f64,
    interval: Duration,
    last: Instant,
}

impl TokenBucket {
    fn new(burst: u32, interval: Duration) -> Self {
        TokenBucket {
            burst: f64::from(burst),
            tokens: f64::from(burst),
            interval,
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() / self.interval.as_secs_f64();
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
    }

    /// Take the token waited for after [`TokenBucket::take`] said how long
    /// (rounding may leave it a hair short).
    fn take_after_wait(&mut self) {
        if self.interval.is_zero() {
            return;
        }
        self.refill();
        self.tokens = (self.tokens - 1.0).max(0.0);
    }

    /// Take a token: None when one was available, else how long to wait.
    fn take(&mut self) -> Option<Duration> {
        if self.interval.is_zero() {
            return None;
        }
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(self.interval.mul_f64(1.0 - self.tokens))
        }
    }
}

/// The state one sync builds on: what was applied last.
pub struct Syncer {
    proxier: Arc<Proxier>,
    /// The ruleset applied last (None: the next sync is full).
    prev: Option<Ruleset>,
    /// The node-level settings `prev` was built with.
    prev_cfg: Option<RuleConfig>,
    /// Per Service: the service ports with endpoints `prev` was built from.
    model: BTreeMap<Key, Vec<ServiceEndpoints>>,
    /// Chains flushed but not yet deleted (see `Ruleset::render_with`).
    stale: BTreeSet<String>,
    health_servers: ServiceHealthServers,
    /// How long each phase of the last sync took (debug logs, benchmarks).
    phases: Phases,
    /// The transaction the last partial sync sent ("" for none).
    last_partial: String,
}

/// Durations of the phases of one sync.
#[derive(Default)]
struct Phases {
    mark: Option<Instant>,
    done: Vec<(&'static str, Duration)>,
}

impl Phases {
    fn start(&mut self) {
        self.done.clear();
        self.mark = Some(Instant::now());
    }

    /// `what` ended now (it started at the previous mark).
    fn end(&mut self, what: &'static str) {
        let now = Instant::now();
        if let Some(m) = self.mark {
            self.done.push((what, now - m));
        }
        self.mark = Some(now);
    }

    fn summary(&self) -> String {
        self.done
            .iter()
            .map(|(w, d)| format!("{w} {:.1}ms", d.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The fragments of `entries` (one Service's ports).
fn fragments(cfg: &RuleConfig, entries: &[ServiceEndpoints]) -> Vec<(String, rules::Fragment)> {
    entries
        .iter()
        .map(|se| {
            (
                rules::fragment_owner(&se.service),
                rules::service_fragment(cfg, se),
            )
        })
        .collect()
}

impl Syncer {
    pub fn new(proxier: Arc<Proxier>) -> Self {
        let health_servers = ServiceHealthServers::new(
            std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            proxier.health.clone(),
        );
        Syncer {
            proxier,
            prev: None,
            prev_cfg: None,
            model: BTreeMap::new(),
            stale: BTreeSet::new(),
            health_servers,
            phases: Phases::default(),
            last_partial: String::new(),
        }
    }

    /// The phases of the last sync and their durations, e.g.
    /// `snapshot 3.1ms, build 20.4ms, ...` (None before the first sync).
    pub fn last_phases(&self) -> Option<String> {
        (!self.phases.done.is_empty()).then(|| self.phases.summary())
    }

    /// The transaction the last partial sync sent to `nft -f` ("" when it
    /// had nothing to change, or the last sync was full).
    pub fn last_partial_transaction(&self) -> &str {
        &self.last_partial
    }

    /// The ruleset applied by the last successful sync.
    pub fn ruleset(&self) -> Option<&Ruleset> {
        self.prev.as_ref()
    }

    /// Apply `rs` over `existing` in one transaction; if that fails, again
    /// keeping stale chains for a later sync, and at last by recreating
    /// the table.
    async fn apply(
        &mut self,
        rs: &Ruleset,
        prev: Option<&Ruleset>,
        existing: Existing,
    ) -> Result<()> {
        let tx = rs.render_with(prev, &existing, true);
        self.send(rs, tx, |_| {
            let stale = rs.stale_chains(&existing);
            if stale.is_empty() {
                return None;
            }
            Some((rs.render_with(prev, &existing, false)?, stale))
        })
        .await
        .map(drop)
    }

    /// Apply a partial update (what `before` records) in one transaction;
    /// if that fails, again keeping stale chains for a later sync, and at
    /// last by recreating the table.
    async fn apply_delta(&mut self, rs: &Ruleset, before: &Before) -> Result<()> {
        self.last_partial.clear();
        let tx = rs.render_delta(before, &self.stale, true);
        if tx.as_deref() == Some("") {
            self.phases.end("render");
            return Ok(());
        }
        let sent = self
            .send(rs, tx, |kept| {
                let mut stale = rs.gone_chains(before);
                stale.extend(kept.iter().filter(|c| !rs.chains.contains_key(*c)).cloned());
                if stale.is_empty() {
                    return None;
                }
                Some((rs.render_delta(before, kept, false)?, stale))
            })
            .await?;
        if let Some(tx) = sent {
            self.last_partial = tx;
        }
        Ok(())
    }

    /// Send `tx` (None: the table has to be recreated). When nft refuses
    /// it, `retry` (given the chains kept so far) may offer a transaction
    /// that keeps the chains it names for a later sync; when that fails
    /// too, the table is recreated. Returns the transaction that went in,
    /// unless it was a recreation.
    async fn send(
        &mut self,
        rs: &Ruleset,
        tx: Option<String>,
        retry: impl FnOnce(&BTreeSet<String>) -> Option<(String, BTreeSet<String>)>,
    ) -> Result<Option<String>> {
        let netns = self.proxier.settings.netns.clone();
        let netns = netns.as_deref();
        self.phases.end("render");
        let first = match tx {
            Some(tx) => match crate::nft::apply(&tx, netns).await {
                Ok(()) => {
                    self.phases.end("nft");
                    self.stale.clear();
                    return Ok(Some(tx));
                }
                Err(e) => Some(e),
            },
            None => None,
        };
        if let Some(first) = &first {
            if let Some((tx, stale)) = retry(&self.stale) {
                if crate::nft::apply(&tx, netns).await.is_ok() {
                    self.phases.end("nft (retried)");
                    tracing::debug!(
                        count = stale.len(),
                        "stale chains kept for the next sync: {first:#}"
                    );
                    self.stale = stale;
                    return Ok(Some(tx));
                }
            }
            tracing::warn!("updating the kube-proxy table failed, recreating it: {first:#}");
        }
        self.stale.clear();
        let r = crate::nft::apply(&rs.render_recreate(), netns).await;
        self.phases.end("nft (recreated)");
        r.map(|()| None)
    }

    async fn nodeport_addresses(&self, node_ips: &[Ipv4Addr]) -> NodePortAddresses {
        let s = &self.proxier.settings;
        let Some(cidrs) = &s.nodeport_cidrs else {
            return NodePortAddresses::Ips(
                node_ips.iter().copied().filter(nodeport_ip_ok).collect(),
            );
        };
        if cidrs.iter().any(|c| c.prefix_len() == 0) {
            return NodePortAddresses::All;
        }
        let mut ips: BTreeSet<Ipv4Addr> = BTreeSet::new();
        if s.nodeport_primary {
            ips.extend(node_ips.iter().copied());
        }
        match local_addresses(s.netns.as_deref()).await {
            Ok(local) => ips.extend(
                local
                    .into_iter()
                    .filter(|ip| cidrs.iter().any(|c| c.contains(ip))),
            ),
            Err(e) => tracing::warn!("listing local addresses for --nodeport-addresses: {e:#}"),
        }
        NodePortAddresses::Ips(ips.into_iter().filter(nodeport_ip_ok).collect())
    }

    /// One sync: full (the whole model, rewriting every chain and map over
    /// what the kernel's table holds) or partial (only the Services that
    /// changed since the last successful sync: their chains and maps are
    /// rewritten, their shared-map elements replaced, nothing else sent).
    pub async fn sync(&mut self, full: bool) -> Result<()> {
        let start = Instant::now();
        self.phases.start();
        let p = self.proxier.clone();
        let s = &p.settings;
        let netns = s.netns.as_deref();
        let partial = !full && self.prev.is_some();
        let snap = p.snapshot(!partial);
        self.phases.end("snapshot");
        let cfg = RuleConfig {
            cluster_cidr: s.cluster_cidr,
            masquerade_all: s.masquerade_all,
            masquerade_bit: s.masquerade_bit,
            node_port_addresses: self.nodeport_addresses(&snap.node_ips).await,
        };
        // Failed syncs leave `prev` empty: the next one is full.
        let prev = self.prev.take();
        let prev_cfg = self.prev_cfg.take();
        // UDP service ports whose endpoints changed: (old, new).
        let mut old_entries = Vec::new();
        let mut new_entries = Vec::new();
        let result = match prev {
            Some(mut rs) if partial => {
                let same_cfg = prev_cfg.as_ref() == Some(&cfg);
                let old_rs = (!same_cfg).then(|| rs.clone());
                let mut before = Before::default();
                for (key, entries) in snap.services {
                    let old = self.model.remove(&key).unwrap_or_default();
                    if old == entries {
                        if !old.is_empty() {
                            self.model.insert(key, old);
                        }
                        continue;
                    }
                    rs.replace_fragments(
                        &fragments(&cfg, &old),
                        &fragments(&cfg, &entries),
                        &mut before,
                    );
                    old_entries.extend(old);
                    new_entries.extend(entries.iter().cloned());
                    if !entries.is_empty() {
                        self.model.insert(key, entries);
                    }
                }
                let result = match old_rs {
                    None => {
                        self.phases.end("build");
                        self.apply_delta(&rs, &before).await
                    }
                    Some(old_rs) => {
                        // The node's addresses changed: rebuild the
                        // node-level part too, and write what differs.
                        rs = rules::assemble(
                            &cfg,
                            self.model.values().flatten().map(|se| {
                                (
                                    rules::fragment_owner(&se.service),
                                    rules::service_fragment(&cfg, se),
                                )
                            }),
                        );
                        self.phases.end("build");
                        let mut existing = Existing::of(&old_rs);
                        existing.chains.extend(self.stale.iter().cloned());
                        self.apply(&rs, Some(&old_rs), existing).await
                    }
                };
                result.map(|()| rs)
            }
            _ => {
                let rs = rules::assemble(
                    &cfg,
                    snap.services.values().flatten().map(|se| {
                        (
                            rules::fragment_owner(&se.service),
                            rules::service_fragment(&cfg, se),
                        )
                    }),
                );
                old_entries = std::mem::take(&mut self.model)
                    .into_values()
                    .flatten()
                    .collect();
                new_entries = snap.services.values().flatten().cloned().collect();
                self.model = snap.services;
                self.phases.end("build");
                let existing = crate::nft::existing(netns).await.unwrap_or_else(|e| {
                    tracing::warn!("listing the kube-proxy table: {e:#}");
                    Existing::default()
                });
                self.phases.end("list table");
                self.last_partial.clear();
                self.apply(&rs, None, existing).await.map(|()| rs)
            }
        };
        let rs = match result {
            Ok(rs) => rs,
            Err(e) => {
                // Keep the trigger times for the next attempt's latency.
                p.lock().trigger_times.extend(snap.triggers);
                return Err(e);
            }
        };
        self.prev = Some(rs);
        self.prev_cfg = Some(cfg);
        let elapsed = start.elapsed().as_secs_f64();
        p.metrics.sync_duration.observe(elapsed);
        if partial {
            p.metrics.sync_partial_duration.observe(elapsed);
        } else {
            p.metrics.sync_full_duration.observe(elapsed);
        }
        p.metrics.last_timestamp.set(now_secs());
        p.health.updated();
        let now = SystemTime::now();
        for t in snap.triggers {
            if let Ok(d) = now.duration_since(t) {
                p.metrics.network_programming.observe(d.as_secs_f64());
            }
        }
        self.phases.end("metrics");

        // No-local-endpoints gauges and health-check servers.
        let mut no_local_internal = 0;
        let mut no_local_external = 0;
        let mut hc: BTreeMap<u16, ServiceHealth> = BTreeMap::new();
        for se in self.model.values().flatten() {
            let sp = &se.service;
            if !sp.internal_local && !sp.external_local && sp.health_check_node_port.is_none() {
                continue;
            }
            let cat = model::categorize(sp, &se.endpoints);
            if cat.has_any && cat.local.is_empty() {
                if sp.internal_local {
                    no_local_internal += 1;
                }
                if sp.external_local {
                    no_local_external += 1;
                }
            }
            if let Some(port) = sp.health_check_node_port {
                let local: BTreeSet<Ipv4Addr> = se
                    .endpoints
                    .iter()
                    .filter(|e| e.local && e.ready)
                    .map(|e| e.ip)
                    .collect();
                let entry = hc.entry(port).or_insert_with(|| ServiceHealth {
                    namespace: sp.namespace.clone(),
                    name: sp.name.clone(),
                    local_endpoints: 0,
                });
                entry.local_endpoints = entry.local_endpoints.max(local.len());
            }
        }
        p.metrics
            .no_local_endpoints
            .with_label_values(&["internal"])
            .set(no_local_internal as f64);
        p.metrics
            .no_local_endpoints
            .with_label_values(&["external"])
            .set(no_local_external as f64);
        if s.netns.is_none() {
            self.health_servers.sync(hc).await;
        }

        let flushes = crate::conntrack::stale_flushes(&old_entries, &new_entries);
        crate::conntrack::run(&flushes, netns).await;
        self.phases.end("after");
        tracing::debug!(
            full = !partial,
            elapsed_ms = start.elapsed().as_millis() as u64,
            phases = %self.phases.summary(),
            "synced nftables rules"
        );
        Ok(())
    }
}

/// The IPv4 addresses on the node's interfaces (`ip -4 -o addr show`).
async fn local_addresses(netns: Option<&str>) -> Result<Vec<Ipv4Addr>> {
    let out = crate::nft::command(netns, "ip", &["-4", "-o", "addr", "show"])
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    if !out.status.success() {
        anyhow::bail!(
            "ip addr show: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(parse_ip_addr(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_ip_addr(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if w == "inet" {
                if let Some(a) = words.next() {
                    if let Ok(ip) = a.split('/').next().unwrap_or("").parse() {
                        out.push(ip);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket() {
        let mut b = TokenBucket::new(2, Duration::from_secs(1));
        assert!(b.take().is_none());
        assert!(b.take().is_none());
        let w = b.take().expect("rate limited");
        assert!(w <= Duration::from_secs(1) && w > Duration::from_millis(900));
        b.take_after_wait();
        assert!(b.take().is_some());
        let mut b = TokenBucket::new(2, Duration::ZERO);
        for _ in 0..10 {
            assert!(b.take().is_none());
        }
    }

    #[test]
    fn ip_addr_parsing() {
        let text = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                    2: eth0    inet 10.200.0.10/24 brd 10.200.0.255 scope global eth0\n";
        assert_eq!(
            parse_ip_addr(text),
            vec![
                "127.0.0.1".parse::<Ipv4Addr>().unwrap(),
                "10.200.0.10".parse().unwrap()
            ]
        );
    }
}
