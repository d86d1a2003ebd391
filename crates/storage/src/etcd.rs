//! The etcd v3 client wrapper ([`EtcdStorage`]).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, KvClient,
    LeaseClient, MaintenanceClient, PutOptions, TlsOptions, Txn, TxnOp, WatchClient,
};
use futures::{Stream, StreamExt};
use tokio::task::JoinHandle;

use crate::hub::{Hub, HubItem};
use crate::watch::{ordered_progress_version, spawn_watch, WatchSpec};
use crate::{EtcdConfig, KeyValue, Result, Revision, StorageError, StorageEvent};

/// Callback receiving the latency of every etcd request:
/// `(operation, type, duration)` where `operation` is one of `get`, `list`,
/// `count`, `create`, `update`, `delete`, `compact` and `type` is the first key
/// segment after the prefix (the resource, e.g. `pods`). Feed it into the
/// `etcd_request_duration_seconds{operation,type}` histogram.
pub type Observer = Arc<dyn Fn(&'static str, &str, Duration) + Send + Sync>;

/// Timeout applied to every unary etcd request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a failed member is avoided.
const MEMBER_QUARANTINE: Duration = Duration::from_secs(5);
/// Timeout of the health probe.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for a TCP/TLS connection to an etcd member.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Number of attempts when a failed transaction could not be attributed to a cause
/// (the state changed between the transaction and the follow-up read).
const TXN_ATTEMPTS: usize = 5;
/// Key used to coordinate compaction between several apiservers sharing one etcd
/// (the same key kube-apiserver uses, so both can coexist).
const COMPACT_REV_KEY: &str = "compact_rev_key";
/// Largest gRPC message accepted from etcd (large lists and watch batches).
const MAX_DECODING_MESSAGE_SIZE: usize = i32::MAX as usize;

/// Access to etcd: the apiserver's only way to read and write objects.
///
/// Cheap to clone; all clones share the connections, the latency observer and
/// the watch feeding the watch caches.
///
/// Requests go to one member (the first endpoint initially) and fail over to
/// the next one when it cannot be reached or fails; a failed member is avoided
/// for a few seconds. Requests that may have reached etcd before the connection
/// broke are repeated on another member only when that is safe: reads,
/// compare-guarded writes (whose outcome is then checked) and blind writes of
/// the same value.
#[derive(Clone)]
pub struct EtcdStorage {
    inner: Arc<Inner>,
}

struct Inner {
    members: Vec<Member>,
    /// Index of the member requests go to first (sticky until it fails).
    preferred: AtomicUsize,
    /// Members that failed recently, with the time until which they are avoided.
    down_until: Mutex<Vec<Option<Instant>>>,
    /// Per member: whether it answers progress requests in order (once known).
    ordered_progress: Mutex<Vec<Option<bool>>>,
    /// The shared whole-keyspace watch feeding the watch caches.
    hub: Arc<Hub>,
    prefix: String,
    observer: RwLock<Option<Observer>>,
}

/// The clients of one etcd member (endpoint).
struct Member {
    url: String,
    kv: KvClient,
    watch: WatchClient,
    maintenance: MaintenanceClient,
    lease: LeaseClient,
}

/// How a failed request may be retried on another member.
#[derive(Debug, PartialEq, Eq)]
enum Retry {
    /// The request never reached etcd (or was rejected before being applied).
    NotSent,
    /// Connection trouble after sending: etcd may or may not have applied it.
    MaybeSent,
    /// A definite answer from etcd.
    No,
}

impl std::fmt::Debug for EtcdStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStorage")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// What a failed precondition (transaction compare) turned out to be.
enum Failure {
    Err(StorageError),
    /// Nothing explains the failure any more (state changed meanwhile): retry.
    Retry,
}

impl EtcdStorage {
    /// Connects to the etcd members in `cfg.endpoints`.
    ///
    /// Requests fail over between the endpoints, so the loss of a member is
    /// tolerated as long as the cluster keeps quorum. `https://` endpoints are
    /// verified with `ca_file` and authenticate with `cert_file`/`key_file`.
    /// Connections are established lazily: this succeeds even when etcd is not
    /// up yet (use [`EtcdStorage::health`] to probe it).
    pub async fn connect(cfg: &EtcdConfig) -> Result<Self> {
        let endpoints: Vec<String> = cfg
            .endpoints
            .iter()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if endpoints.is_empty() {
            return Err(StorageError::Internal(
                "no etcd endpoints configured".into(),
            ));
        }
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10))
            .with_require_leader(true);
        let https = endpoints
            .iter()
            .filter(|e| e.starts_with("https://"))
            .count();
        if https > 0 {
            if https != endpoints.len() {
                return Err(StorageError::Internal(
                    "etcd endpoints mix http:// and https:// URLs".into(),
                ));
            }
            opts = opts.with_tls(tls_options(cfg)?);
        } else if cfg.ca_file.is_some() || cfg.cert_file.is_some() || cfg.key_file.is_some() {
            tracing::warn!(
                "etcd TLS files are configured but no endpoint uses https://; ignoring them"
            );
        }
        // One client per member: requests stick to one member and move on to
        // the next one when it fails (a balanced channel would keep picking a
        // dead member now and then).
        let mut members = Vec::with_capacity(endpoints.len());
        for url in &endpoints {
            let client = Client::connect([url.as_str()], Some(opts.clone())).await?;
            members.push(Member {
                url: url.clone(),
                kv: client
                    .kv_client()
                    .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
                watch: client
                    .watch_client()
                    .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
                maintenance: client.maintenance_client(),
                lease: client.lease_client(),
            });
        }
        let n = members.len();
        Ok(EtcdStorage {
            inner: Arc::new(Inner {
                members,
                preferred: AtomicUsize::new(0),
                down_until: Mutex::new(vec![None; n]),
                ordered_progress: Mutex::new(vec![None; n]),
                hub: Arc::new(Hub::default()),
                prefix: normalize_prefix(&cfg.prefix),
                observer: RwLock::new(None),
            }),
        })
    }

    /// The key prefix (normalized: leading `/`, no trailing `/`; e.g. `/registry`).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Installs the request latency observer (shared by all clones); see [`Observer`].
    pub fn set_observer(&self, f: Observer) {
        let mut guard = self
            .inner
            .observer
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *guard = Some(f);
    }

    /// Member indexes in the order to try them: the preferred one first, members
    /// that failed recently last.
    fn member_order(&self) -> Vec<usize> {
        let n = self.inner.members.len();
        let first = self.inner.preferred.load(Ordering::Relaxed) % n.max(1);
        let now = Instant::now();
        let down = self
            .inner
            .down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (mut healthy, sick): (Vec<usize>, Vec<usize>) = (0..n)
            .map(|i| (first + i) % n)
            .partition(|&i| down.get(i).copied().flatten().is_none_or(|t| t <= now));
        healthy.extend(sick);
        healthy
    }

    /// Remembers that member `idx` failed: avoid it for a while.
    pub(crate) fn report_failure(&self, idx: usize) {
        let n = self.inner.members.len();
        if n == 0 {
            return;
        }
        {
            let mut down = self
                .inner
                .down_until
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = down.get_mut(idx) {
                *slot = Some(Instant::now() + MEMBER_QUARANTINE);
            }
        }
        let _ = self.inner.preferred.compare_exchange(
            idx,
            (idx + 1) % n,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        if n > 1 {
            tracing::warn!(endpoint = %self.inner.members[idx % n].url, "etcd member failed; switching to another one");
        }
    }

    fn report_success(&self, idx: usize) {
        self.inner.preferred.store(idx, Ordering::Relaxed);
        let mut down = self
            .inner
            .down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = down.get_mut(idx) {
            *slot = None;
        }
    }

    /// A watch client of the member to use now, with its index (for
    /// [`EtcdStorage::report_failure`]).
    pub(crate) fn watch_client(&self) -> (usize, WatchClient) {
        let idx = self.member_order().first().copied().unwrap_or(0);
        (idx, self.inner.members[idx].watch.clone())
    }

    /// The resource segment of `key` (first path segment after the prefix).
    fn key_type<'a>(&self, key: &'a str) -> &'a str {
        let rest = key.strip_prefix(self.inner.prefix.as_str()).unwrap_or(key);
        let rest = rest.trim_start_matches('/');
        rest.split('/').next().unwrap_or("")
    }

    /// Runs one request (built by `f` for a member's KV client) with the request
    /// timeout, failing over to the other members when a member cannot be
    /// reached or fails, and reports the latency to the observer.
    async fn call<T, F, Fut>(&self, op: &'static str, key: &str, f: F) -> Result<T>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.call_tracked(op, key, REQUEST_TIMEOUT, f)
            .await
            .map(|(v, _)| v)
    }

    /// Like [`EtcdStorage::call`]; also tells whether an earlier, failed attempt
    /// may nevertheless have been applied by etcd (the connection broke after the
    /// request was sent). Only requests that are safe to repeat go through here:
    /// reads, blind writes of the same value, and writes guarded by compares
    /// (whose callers check the outcome).
    async fn call_tracked<T, F, Fut>(
        &self,
        op: &'static str,
        key: &str,
        timeout: Duration,
        mut f: F,
    ) -> Result<(T, bool)>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let start = Instant::now();
        let mut result = Err(StorageError::Unavailable("no etcd members".into()));
        let mut ambiguous = false;
        for idx in self.member_order() {
            let kv = self.inner.members[idx].kv.clone();
            let (retry, err) = match tokio::time::timeout(timeout, f(kv)).await {
                Ok(Ok(v)) => {
                    self.report_success(idx);
                    result = Ok((v, ambiguous));
                    break;
                }
                Ok(Err(e)) => (retry_class(&e), map_etcd_error(e)),
                Err(_) => (
                    Retry::MaybeSent,
                    StorageError::Unavailable(format!(
                        "etcd request {op} {key} timed out after {timeout:?}"
                    )),
                ),
            };
            result = Err(err);
            match retry {
                Retry::No => break,
                Retry::NotSent => self.report_failure(idx),
                Retry::MaybeSent => {
                    ambiguous = true;
                    self.report_failure(idx);
                }
            }
        }
        let elapsed = start.elapsed();
        let observer = self
            .inner
            .observer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(obs) = observer {
            obs(op, self.key_type(key), elapsed);
        }
        result
    }

    /// Runs a transaction; returns (succeeded, header revision, whether an
    /// earlier attempt may have been applied).
    async fn call_txn(
        &self,
        op: &'static str,
        key: &str,
        txn: &Txn,
    ) -> Result<(bool, Revision, bool)> {
        let (resp, ambiguous) = self
            .call_tracked(op, key, REQUEST_TIMEOUT, |mut kv| {
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
        Ok((resp.succeeded(), rev, ambiguous))
    }

    /// After a failed transaction whose earlier attempt may have been applied:
    /// if `key` now holds exactly `value`, that attempt succeeded; returns its revision.
    async fn applied_earlier(&self, key: &str, value: &[u8]) -> Result<Option<Revision>> {
        Ok(self
            .get(key)
            .await?
            .filter(|kv| kv.value[..] == *value)
            .map(|kv| kv.mod_revision))
    }

    /// Whether member `idx` answers explicit progress requests in order with
    /// events (asked once per member; `false` while unknown).
    pub(crate) async fn progress_requests_are_ordered(&self, idx: usize) -> bool {
        if let Some(known) = self
            .inner
            .ordered_progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(idx)
            .copied()
            .flatten()
        {
            return known;
        }
        let Some(member) = self.inner.members.get(idx) else {
            return false;
        };
        let mut maintenance = member.maintenance.clone();
        match tokio::time::timeout(HEALTH_TIMEOUT, maintenance.status()).await {
            Ok(Ok(status)) => {
                let ordered = ordered_progress_version(status.version());
                if !ordered {
                    tracing::info!(endpoint = %member.url, version = status.version(), "etcd member answers progress requests out of order; relying on periodic notifications");
                }
                if let Some(slot) = self
                    .inner
                    .ordered_progress
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_mut(idx)
                {
                    *slot = Some(ordered);
                }
                ordered
            }
            _ => false,
        }
    }

    /// Subscribes to the shared whole-keyspace watch for keys under `prefix`
    /// (see [`crate::hub`]).
    pub(crate) async fn subscribe(
        &self,
        prefix: &str,
    ) -> (Revision, tokio::sync::mpsc::UnboundedReceiver<HubItem>) {
        self.inner.hub.subscribe(self, prefix).await
    }

    /// Reads one key (linearizable). `Ok(None)` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let mut resp = self
            .call("get", key, |mut kv| async move { kv.get(key, None).await })
            .await?;
        Ok(resp.take_kvs().into_iter().next().map(convert_kv))
    }

    /// Lists all keys starting with `key_prefix` (consistent read), sorted by
    /// key. Also returns the store revision the list was taken at.
    pub async fn list(&self, key_prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        let mut resp = self
            .call("list", key_prefix, |mut kv| async move {
                kv.get(key_prefix, Some(GetOptions::new().with_prefix()))
                    .await
            })
            .await?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
        let kvs = resp.take_kvs().into_iter().map(convert_kv).collect();
        Ok((kvs, rev))
    }

    /// Counts the keys starting with `key_prefix`.
    pub async fn count(&self, key_prefix: &str) -> Result<i64> {
        let resp = self
            .call("count", key_prefix, |mut kv| async move {
                kv.get(
                    key_prefix,
                    Some(GetOptions::new().with_prefix().with_count_only()),
                )
                .await
            })
            .await?;
        Ok(resp.count())
    }

    /// Creates `key` iff it is absent and every claim key is absent, writing the
    /// claims in the same transaction. Claim keys reserve unique values such as
    /// ClusterIPs or NodePorts (e.g. `/registry/ranges/serviceips/10.96.0.10`).
    ///
    /// Returns the revision of the write (the new object's resourceVersion).
    /// Errors: [`StorageError::AlreadyExists`] if `key` exists,
    /// [`StorageError::ClaimTaken`] if a claim exists. Keys must be distinct.
    pub async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        claims: &[(String, Vec<u8>)],
    ) -> Result<Revision> {
        let mut compares = vec![Compare::version(key, CompareOp::Equal, 0)];
        let mut ops = vec![TxnOp::put(key, value.clone(), None)];
        for (ck, cv) in claims {
            compares.push(Compare::version(ck.as_str(), CompareOp::Equal, 0));
            ops.push(TxnOp::put(ck.as_str(), cv.clone(), None));
        }
        let txn = Txn::new().when(compares).and_then(ops);
        for _ in 0..TXN_ATTEMPTS {
            let (ok, rev, ambiguous) = self.call_txn("create", key, &txn).await?;
            if ok {
                return Ok(rev);
            }
            if ambiguous {
                if let Some(rev) = self.applied_earlier(key, &value).await? {
                    return Ok(rev);
                }
            }
            if self.get(key).await?.is_some() {
                return Err(StorageError::AlreadyExists {
                    key: key.to_string(),
                });
            }
            match self
                .check_claims_absent(claims.iter().map(|(k, _)| k.as_str()))
                .await?
            {
                Failure::Err(e) => return Err(e),
                Failure::Retry => continue,
            }
        }
        Err(StorageError::Internal(format!(
            "create of {key} kept failing its preconditions"
        )))
    }

    /// Replaces the value of `key` iff its mod revision equals `expected` (when
    /// `expected` is `None`: iff the key exists). In the same transaction, creates
    /// every key of `add_claims` (each must be absent) and deletes every key of
    /// `release_claims`. Returns the revision of the write.
    ///
    /// Errors: [`StorageError::NotFound`] if the key is missing,
    /// [`StorageError::Conflict`] (with the current state) on a revision
    /// mismatch, [`StorageError::ClaimTaken`] if an added claim exists.
    pub async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Option<Revision>,
        add_claims: &[(String, Vec<u8>)],
        release_claims: &[String],
    ) -> Result<Revision> {
        let mut compares = vec![match expected {
            Some(rev) => Compare::mod_revision(key, CompareOp::Equal, rev),
            None => Compare::version(key, CompareOp::Greater, 0),
        }];
        let mut ops = vec![TxnOp::put(key, value.clone(), None)];
        for (ck, cv) in add_claims {
            compares.push(Compare::version(ck.as_str(), CompareOp::Equal, 0));
            ops.push(TxnOp::put(ck.as_str(), cv.clone(), None));
        }
        for ck in release_claims {
            ops.push(TxnOp::delete(ck.as_str(), None));
        }
        let txn = Txn::new().when(compares).and_then(ops);
        for _ in 0..TXN_ATTEMPTS {
            let (ok, rev, ambiguous) = self.call_txn("update", key, &txn).await?;
            if ok {
                return Ok(rev);
            }
            if ambiguous {
                if let Some(rev) = self.applied_earlier(key, &value).await? {
                    return Ok(rev);
                }
            }
            match self.explain_precondition(key, expected).await? {
                Failure::Err(e) => return Err(e),
                Failure::Retry => {}
            }
            match self
                .check_claims_absent(add_claims.iter().map(|(k, _)| k.as_str()))
                .await?
            {
                Failure::Err(e) => return Err(e),
                Failure::Retry => continue,
            }
        }
        Err(StorageError::Internal(format!(
            "update of {key} kept failing its preconditions"
        )))
    }

    /// Deletes `key` iff its mod revision equals `expected` (when `None`:
    /// unconditionally, but the key must exist), deleting `release_claims` in the
    /// same transaction. Returns the revision of the deletion.
    ///
    /// Errors: [`StorageError::NotFound`], [`StorageError::Conflict`].
    pub async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
        release_claims: &[String],
    ) -> Result<Revision> {
        let compare = match expected {
            Some(rev) => Compare::mod_revision(key, CompareOp::Equal, rev),
            None => Compare::version(key, CompareOp::Greater, 0),
        };
        let mut ops = vec![TxnOp::delete(key, None)];
        for ck in release_claims {
            ops.push(TxnOp::delete(ck.as_str(), None));
        }
        let txn = Txn::new().when(vec![compare]).and_then(ops);
        for _ in 0..TXN_ATTEMPTS {
            let (ok, rev, _) = self.call_txn("delete", key, &txn).await?;
            if ok {
                return Ok(rev);
            }
            match self.explain_precondition(key, expected).await? {
                Failure::Err(e) => return Err(e),
                Failure::Retry => continue,
            }
        }
        Err(StorageError::Internal(format!(
            "delete of {key} kept failing its preconditions"
        )))
    }

    /// Finds out why a "key exists with mod revision == expected" compare failed.
    async fn explain_precondition(&self, key: &str, expected: Option<Revision>) -> Result<Failure> {
        match self.get(key).await? {
            None => Ok(Failure::Err(StorageError::NotFound {
                key: key.to_string(),
            })),
            Some(kv) => match expected {
                Some(rev) if rev != kv.mod_revision => Ok(Failure::Err(StorageError::Conflict {
                    key: key.to_string(),
                    current: Some(kv),
                })),
                _ => Ok(Failure::Retry),
            },
        }
    }

    async fn check_claims_absent<'a>(
        &self,
        claims: impl Iterator<Item = &'a str>,
    ) -> Result<Failure> {
        for ck in claims {
            if self.get(ck).await?.is_some() {
                return Ok(Failure::Err(StorageError::ClaimTaken {
                    key: ck.to_string(),
                }));
            }
        }
        Ok(Failure::Retry)
    }

    /// Writes `key` without any precondition (for bookkeeping keys that are not
    /// API objects). Returns the revision of the write.
    pub async fn put_unconditional(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let resp = self
            .call("update", key, |mut kv| {
                let value = value.clone();
                async move { kv.put(key, value, None).await }
            })
            .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Writes `key` attached to a new etcd lease of `ttl_secs`: the key
    /// disappears unless written again in time (apiservers' liveness keys).
    pub async fn put_with_ttl(&self, key: &str, value: Vec<u8>, ttl_secs: i64) -> Result<Revision> {
        let idx = self.member_order().first().copied().unwrap_or(0);
        let mut leases = self.inner.members[idx].lease.clone();
        let lease = match tokio::time::timeout(REQUEST_TIMEOUT, leases.grant(ttl_secs, None)).await
        {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                self.report_failure(idx);
                return Err(map_etcd_error(e));
            }
            Err(_) => {
                self.report_failure(idx);
                return Err(StorageError::Unavailable(
                    "etcd lease grant timed out".into(),
                ));
            }
        };
        let id = lease.id();
        let resp = self
            .call("update", key, |mut kv| {
                let value = value.clone();
                async move {
                    kv.put(key, value, Some(PutOptions::new().with_lease(id)))
                        .await
                }
            })
            .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// The current revision of the etcd store (linearizable).
    pub async fn current_revision(&self) -> Result<Revision> {
        let key = format!("{}/", self.inner.prefix);
        let k = key.as_str();
        let resp = self
            .call("get", k, |mut kv| async move {
                kv.get(k, Some(GetOptions::new().with_count_only())).await
            })
            .await?;
        resp.header()
            .map(|h| h.revision())
            .ok_or_else(|| StorageError::Internal("etcd response without header".into()))
    }

    /// Compacts the etcd history up to `rev` (revisions before `rev` are
    /// discarded). Compacting to an already compacted revision is a no-op;
    /// a future revision yields [`StorageError::TooLargeResourceVersion`].
    pub async fn compact(&self, rev: Revision) -> Result<()> {
        match self
            .call("compact", COMPACT_REV_KEY, |mut kv| async move {
                kv.compact(rev, None).await
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(StorageError::Expired { .. }) => Ok(()),
            Err(StorageError::TooLargeResourceVersion { .. }) => {
                let current = self.current_revision().await.unwrap_or(0);
                Err(StorageError::TooLargeResourceVersion {
                    requested: rev,
                    current,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Probes etcd with a quick linearizable read (2 s per member; a member
    /// that does not answer is skipped). Used by the `/readyz` and `/livez` etcd
    /// checks. Not reported to the latency observer.
    pub async fn health(&self) -> Result<()> {
        let key = format!("{}/health", self.inner.prefix);
        let k = key.as_str();
        let mut last = StorageError::Unavailable("no etcd members".into());
        for idx in self.member_order() {
            let mut kv = self.inner.members[idx].kv.clone();
            match tokio::time::timeout(
                HEALTH_TIMEOUT,
                kv.get(k, Some(GetOptions::new().with_count_only())),
            )
            .await
            {
                Ok(Ok(_)) => {
                    self.report_success(idx);
                    return Ok(());
                }
                Ok(Err(e)) => {
                    let retry = retry_class(&e);
                    last = map_etcd_error(e);
                    if retry == Retry::No {
                        return Err(last);
                    }
                }
                Err(_) => {
                    last = StorageError::Unavailable(format!(
                        "etcd health check timed out after {HEALTH_TIMEOUT:?}"
                    ));
                }
            }
            self.report_failure(idx);
        }
        Err(last)
    }

    /// Starts the periodic compactor (`--etcd-compaction-interval`): every
    /// `interval` it compacts etcd to the revision it observed one interval
    /// earlier, so that history of at least one interval is always kept.
    /// Several apiservers sharing one etcd coordinate through a version check on
    /// a bookkeeping key so that only one of them compacts per interval.
    /// A zero interval disables compaction (the task returns at once).
    pub fn spawn_compactor(&self, interval: Duration) -> JoinHandle<()> {
        let storage = self.clone();
        tokio::spawn(async move {
            if interval.is_zero() {
                return;
            }
            let mut expected_version: i64 = 0;
            let mut previous_rev: Revision = 0;
            loop {
                tokio::time::sleep(interval).await;
                match storage.compact_round(expected_version, previous_rev).await {
                    Ok((version, rev)) => {
                        expected_version = version;
                        previous_rev = rev;
                    }
                    Err(e) => tracing::warn!(error = %e, "etcd compaction round failed"),
                }
            }
        })
    }

    /// One compactor round. Returns the new expected version of the bookkeeping
    /// key and the current revision (the target of the next round).
    async fn compact_round(
        &self,
        expected_version: i64,
        previous_rev: Revision,
    ) -> Result<(i64, Revision)> {
        let txn = Txn::new()
            .when(vec![Compare::version(
                COMPACT_REV_KEY,
                CompareOp::Equal,
                expected_version,
            )])
            .and_then(vec![TxnOp::put(COMPACT_REV_KEY, Vec::new(), None)]);
        let (won, current, _) = self.call_txn("compact", COMPACT_REV_KEY, &txn).await?;
        if !won {
            // Another apiserver compacted during this interval; follow its lead.
            let mut resp = self
                .call("get", COMPACT_REV_KEY, |mut kv| async move {
                    kv.get(COMPACT_REV_KEY, None).await
                })
                .await?;
            let version = resp.take_kvs().first().map(|kv| kv.version()).unwrap_or(0);
            let rev = resp.header().map(|h| h.revision()).unwrap_or(current);
            tracing::debug!(version, "etcd compaction done by another apiserver");
            return Ok((version, rev));
        }
        if previous_rev > 0 {
            let start = Instant::now();
            self.compact(previous_rev).await?;
            tracing::info!(revision = previous_rev, elapsed = ?start.elapsed(), "compacted etcd history");
        }
        Ok((expected_version + 1, current))
    }

    /// Watches every key starting with `key_prefix`, delivering changes with a
    /// revision `> from` (with previous values, when etcd still has them) in
    /// revision order, plus [`StorageEvent::Progress`] notifications: every
    /// second on etcd >= 3.4.25 / 3.5.8 (explicit progress requests), otherwise
    /// at etcd's periodic progress-notify interval (10 min by default) since
    /// older versions may answer requests ahead of pending events.
    ///
    /// Transient connection failures are retried transparently (resuming after
    /// the last delivered revision, on another member if needed); if that
    /// history was compacted the stream yields [`StorageError::Expired`] and
    /// ends. Must be called within a Tokio runtime; dropping the stream stops
    /// the watch. (Watch caches do not use this: they share one watch of the
    /// whole key space, which tracks the store revision exactly.)
    pub fn watch(
        &self,
        key_prefix: &str,
        from: Revision,
    ) -> impl Stream<Item = Result<StorageEvent>> + Send + 'static {
        let spec = WatchSpec {
            key_prefix: key_prefix.to_string(),
            prev_kv: true,
            request_progress: true,
        };
        let rx = spawn_watch(self.clone(), spec, from);
        tokio_stream::wrappers::ReceiverStream::new(rx).flat_map(|batch| {
            let items: Vec<Result<StorageEvent>> = match batch {
                Ok(events) => events.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(items)
        })
    }
}

fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

fn tls_options(cfg: &EtcdConfig) -> Result<TlsOptions> {
    let read = |p: &std::path::Path| {
        std::fs::read(p)
            .map_err(|e| StorageError::Internal(format!("reading {}: {e}", p.display())))
    };
    let mut tls = TlsOptions::new();
    if let Some(ca) = &cfg.ca_file {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    match (&cfg.cert_file, &cfg.key_file) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => {
            return Err(StorageError::Internal(
                "etcd client certificate and key must be given together".into(),
            ))
        }
    }
    Ok(tls)
}

/// Converts an etcd client key-value into ours.
pub(crate) fn convert_kv(kv: etcd_client::KeyValue) -> KeyValue {
    let mod_revision = kv.mod_revision();
    let create_revision = kv.create_revision();
    let (key, value) = kv.into_key_value();
    KeyValue {
        key: String::from_utf8(key)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        value: bytes::Bytes::from(value),
        mod_revision,
        create_revision,
    }
}

/// Maps an etcd client error onto [`StorageError`].
pub(crate) fn map_etcd_error(e: etcd_client::Error) -> StorageError {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(status) => {
            let msg = status.message().to_string();
            if msg.contains("required revision has been compacted") {
                return StorageError::Expired {
                    requested: 0,
                    oldest: 0,
                };
            }
            if msg.contains("required revision is a future revision") {
                return StorageError::TooLargeResourceVersion {
                    requested: 0,
                    current: 0,
                };
            }
            // `etcd_client` does not re-export tonic's `Code`; its Debug output is the variant name.
            let code = format!("{:?}", status.code());
            match code.as_str() {
                "Unavailable" | "DeadlineExceeded" | "Cancelled" | "ResourceExhausted" => {
                    StorageError::Unavailable(format!("{code}: {msg}"))
                }
                _ if is_transient_message(&msg) => {
                    StorageError::Unavailable(format!("{code}: {msg}"))
                }
                _ => StorageError::Internal(format!("{code}: {msg}")),
            }
        }
        E::TransportError(e) => StorageError::Unavailable(format!("transport error: {e}")),
        E::IoError(e) => StorageError::Unavailable(format!("io error: {e}")),
        other => StorageError::Internal(other.to_string()),
    }
}

/// Whether (and how safely) a failed request may be retried on another member.
fn retry_class(e: &etcd_client::Error) -> Retry {
    use etcd_client::Error as E;
    match e {
        E::TransportError(_) | E::IoError(_) | E::InvalidUri(_) | E::EndpointError(_) => {
            Retry::NotSent
        }
        E::GRpcStatus(status) => {
            let code = format!("{:?}", status.code());
            let msg = status.message().to_ascii_lowercase();
            let not_sent = msg.contains("connect")
                || msg.contains("no leader")
                || msg.contains("not capable")
                || msg.contains("dns error");
            match code.as_str() {
                "Unavailable" if not_sent => Retry::NotSent,
                "Unavailable" | "DeadlineExceeded" | "Cancelled" | "Unknown" => Retry::MaybeSent,
                _ if not_sent => Retry::NotSent,
                _ if is_transient_message(&msg) => Retry::MaybeSent,
                _ => Retry::No,
            }
        }
        _ => Retry::No,
    }
}

fn is_transient_message(msg: &str) -> bool {
    const TRANSIENT: [&str; 7] = [
        "no leader",
        "leader changed",
        "timed out",
        "timeout",
        "too many requests",
        "not capable",
        "transport",
    ];
    let lower = msg.to_ascii_lowercase();
    TRANSIENT.iter().any(|t| lower.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_normalization() {
        assert_eq!(normalize_prefix("/registry"), "/registry");
        assert_eq!(normalize_prefix("registry/"), "/registry");
        assert_eq!(normalize_prefix("/"), "");
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("/a/b/"), "/a/b");
    }

    #[test]
    fn transient_messages() {
        assert!(is_transient_message("etcdserver: no leader"));
        assert!(is_transient_message("etcdserver: request timed out"));
        assert!(!is_transient_message(
            "etcdserver: duplicate key given in txn request"
        ));
    }
}
