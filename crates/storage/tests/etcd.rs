//! Integration tests against real etcd processes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use storage::testing::{EtcdProcess, TlsFiles};
use storage::{
    CacheEvent, EtcdStorage, EventType, Revision, StorageError, StorageEvent, WatchCache, WatchItem,
};
use tokio::sync::mpsc;

fn obj(name: &str, n: u64) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"kind": "ConfigMap", "metadata": {"name": name}, "data": {"n": n.to_string()}}),
    )
    .unwrap()
}

async fn connect(etcd: &EtcdProcess) -> EtcdStorage {
    EtcdStorage::connect(&etcd.config()).await.expect("connect")
}

/// Receives the next item within `secs` seconds.
async fn next_item(rx: &mut mpsc::Receiver<WatchItem>, secs: u64) -> Option<WatchItem> {
    tokio::time::timeout(Duration::from_secs(secs), rx.recv())
        .await
        .expect("timed out waiting for a watch item")
}

/// Receives the next event, skipping progress notifications.
async fn next_event(rx: &mut mpsc::Receiver<WatchItem>) -> CacheEvent {
    loop {
        match next_item(rx, 10).await {
            Some(WatchItem::Event(e)) => return e,
            Some(WatchItem::Progress(_)) => continue,
            None => panic!("watch closed"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_update_delete_preconditions() {
    let etcd = EtcdProcess::start();
    let s = connect(&etcd).await;
    assert_eq!(s.prefix(), "/registry");
    let observed = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let o = observed.clone();
    s.set_observer(Arc::new(move |op, ty, _d| {
        o.lock().unwrap().push((op.to_string(), ty.to_string()))
    }));

    let key = "/registry/configmaps/default/a";
    assert!(s.get(key).await.unwrap().is_none());
    let r1 = s.create(key, obj("a", 1), &[]).await.unwrap();
    assert!(r1 > 0);
    match s.create(key, obj("a", 2), &[]).await {
        Err(StorageError::AlreadyExists { key: k }) => assert_eq!(k, key),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let kv = s.get(key).await.unwrap().unwrap();
    assert_eq!(kv.mod_revision, r1);
    assert_eq!(kv.create_revision, r1);
    assert_eq!(&kv.value[..], &obj("a", 1)[..]);

    // CAS update.
    let r2 = s
        .update(key, obj("a", 2), Some(r1), &[], &[])
        .await
        .unwrap();
    assert!(r2 > r1);
    match s.update(key, obj("a", 3), Some(r1), &[], &[]).await {
        Err(StorageError::Conflict {
            key: k,
            current: Some(cur),
        }) => {
            assert_eq!(k, key);
            assert_eq!(cur.mod_revision, r2);
            assert_eq!(&cur.value[..], &obj("a", 2)[..]);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    // Unconditional update needs the key to exist.
    let r3 = s.update(key, obj("a", 3), None, &[], &[]).await.unwrap();
    assert!(r3 > r2);
    match s
        .update(
            "/registry/configmaps/default/missing",
            obj("m", 1),
            None,
            &[],
            &[],
        )
        .await
    {
        Err(StorageError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    match s
        .update(
            "/registry/configmaps/default/missing",
            obj("m", 1),
            Some(5),
            &[],
            &[],
        )
        .await
    {
        Err(StorageError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }

    // list / count.
    s.create("/registry/configmaps/kube-system/b", obj("b", 1), &[])
        .await
        .unwrap();
    s.create("/registry/configmaps/default/c", obj("c", 1), &[])
        .await
        .unwrap();
    s.create("/registry/configmapsx/default/z", obj("z", 1), &[])
        .await
        .unwrap();
    let (items, rev) = s.list("/registry/configmaps/").await.unwrap();
    let keys: Vec<_> = items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "/registry/configmaps/default/a",
            "/registry/configmaps/default/c",
            "/registry/configmaps/kube-system/b"
        ]
    );
    assert_eq!(rev, s.current_revision().await.unwrap());
    assert_eq!(s.count("/registry/configmaps/").await.unwrap(), 3);
    assert_eq!(s.count("/registry/configmaps/default/").await.unwrap(), 2);
    let (empty, rev2) = s.list("/registry/secrets/").await.unwrap();
    assert!(empty.is_empty());
    assert_eq!(rev2, rev);

    // delete preconditions.
    match s.delete(key, Some(r2), &[]).await {
        Err(StorageError::Conflict {
            current: Some(cur), ..
        }) => assert_eq!(cur.mod_revision, r3),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let rd = s.delete(key, Some(r3), &[]).await.unwrap();
    assert!(rd > rev);
    assert!(s.get(key).await.unwrap().is_none());
    match s.delete(key, None, &[]).await {
        Err(StorageError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    let rd2 = s
        .delete("/registry/configmaps/default/c", None, &[])
        .await
        .unwrap();
    assert!(rd2 > rd);

    // bookkeeping writes and health.
    let rp = s
        .put_unconditional("/registry/bookkeeping/x", b"1".to_vec())
        .await
        .unwrap();
    assert!(rp > rd2);
    s.health().await.unwrap();

    let seen = observed.lock().unwrap().clone();
    assert!(seen.contains(&("create".to_string(), "configmaps".to_string())));
    assert!(seen.contains(&("update".to_string(), "configmaps".to_string())));
    assert!(seen.contains(&("delete".to_string(), "configmaps".to_string())));
    assert!(seen.contains(&("list".to_string(), "configmaps".to_string())));
    assert!(seen.contains(&("count".to_string(), "configmaps".to_string())));
    assert!(seen.contains(&("get".to_string(), "configmaps".to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_atomic() {
    let etcd = EtcdProcess::start();
    let s = connect(&etcd).await;
    let ip = |x: &str| format!("/registry/ranges/serviceips/{x}");
    let svc_a = "/registry/services/specs/default/a";
    let svc_b = "/registry/services/specs/default/b";

    s.create(
        svc_a,
        obj("a", 1),
        &[(ip("10.96.0.10"), b"default/a".to_vec())],
    )
    .await
    .unwrap();
    assert_eq!(
        &s.get(&ip("10.96.0.10")).await.unwrap().unwrap().value[..],
        b"default/a"
    );

    // The same IP cannot be claimed twice; nothing of the failed create is written.
    match s
        .create(
            svc_b,
            obj("b", 1),
            &[
                (ip("10.96.0.11"), b"x".to_vec()),
                (ip("10.96.0.10"), b"default/b".to_vec()),
            ],
        )
        .await
    {
        Err(StorageError::ClaimTaken { key }) => assert_eq!(key, ip("10.96.0.10")),
        other => panic!("expected ClaimTaken, got {other:?}"),
    }
    assert!(s.get(svc_b).await.unwrap().is_none());
    assert!(s.get(&ip("10.96.0.11")).await.unwrap().is_none());
    // An existing object wins over claims in the error report.
    match s
        .create(svc_a, obj("a", 1), &[(ip("10.96.0.10"), b"x".to_vec())])
        .await
    {
        Err(StorageError::AlreadyExists { .. }) => {}
        other => panic!("expected AlreadyExists, got {other:?}"),
    }

    let rb = s
        .create(
            svc_b,
            obj("b", 1),
            &[(ip("10.96.0.11"), b"default/b".to_vec())],
        )
        .await
        .unwrap();
    // Update b: try to move to a's IP -> ClaimTaken, nothing changes.
    match s
        .update(
            svc_b,
            obj("b", 2),
            Some(rb),
            &[(ip("10.96.0.10"), b"default/b".to_vec())],
            &[ip("10.96.0.11")],
        )
        .await
    {
        Err(StorageError::ClaimTaken { key }) => assert_eq!(key, ip("10.96.0.10")),
        other => panic!("expected ClaimTaken, got {other:?}"),
    }
    assert!(s.get(&ip("10.96.0.11")).await.unwrap().is_some());
    assert_eq!(s.get(svc_b).await.unwrap().unwrap().mod_revision, rb);
    // Move b to a free IP, releasing the old one.
    let rb2 = s
        .update(
            svc_b,
            obj("b", 2),
            Some(rb),
            &[(ip("10.96.0.12"), b"default/b".to_vec())],
            &[ip("10.96.0.11")],
        )
        .await
        .unwrap();
    assert!(s.get(&ip("10.96.0.11")).await.unwrap().is_none());
    assert!(s.get(&ip("10.96.0.12")).await.unwrap().is_some());

    // Deleting releases claims; the IP is then free again.
    s.delete(svc_b, Some(rb2), &[ip("10.96.0.12")])
        .await
        .unwrap();
    assert!(s.get(&ip("10.96.0.12")).await.unwrap().is_none());
    let ra = s.get(svc_a).await.unwrap().unwrap().mod_revision;
    // A failed delete does not release the claims either.
    assert!(matches!(
        s.delete(svc_a, Some(ra - 1), &[ip("10.96.0.10")]).await,
        Err(StorageError::Conflict { .. })
    ));
    assert!(s.get(&ip("10.96.0.10")).await.unwrap().is_some());
    s.delete(svc_a, None, &[ip("10.96.0.10")]).await.unwrap();
    s.create(
        svc_b,
        obj("b", 3),
        &[(ip("10.96.0.10"), b"default/b".to_vec())],
    )
    .await
    .unwrap();
    assert_eq!(s.count("/registry/ranges/serviceips/").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_watch_events_progress_and_compaction() {
    let etcd = EtcdProcess::start();
    let s = connect(&etcd).await;
    let r0 = s.current_revision().await.unwrap();
    let mut w = Box::pin(s.watch("/registry/pods/", r0));
    let r1 = s
        .create("/registry/pods/ns/a", obj("a", 1), &[])
        .await
        .unwrap();
    let r2 = s
        .update("/registry/pods/ns/a", obj("a", 2), Some(r1), &[], &[])
        .await
        .unwrap();
    s.create("/registry/other/x", obj("x", 1), &[])
        .await
        .unwrap();
    let r3 = s.delete("/registry/pods/ns/a", None, &[]).await.unwrap();

    let mut events = Vec::new();
    while events.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if !matches!(ev, StorageEvent::Progress { .. }) {
            events.push(ev);
        }
    }
    match &events[0] {
        StorageEvent::Put { kv, prev: None } => assert_eq!(kv.mod_revision, r1),
        other => panic!("unexpected {other:?}"),
    }
    match &events[1] {
        StorageEvent::Put {
            kv,
            prev: Some(prev),
        } => {
            assert_eq!(kv.mod_revision, r2);
            assert_eq!(prev.mod_revision, r1);
        }
        other => panic!("unexpected {other:?}"),
    }
    match &events[2] {
        StorageEvent::Delete {
            key,
            prev: Some(prev),
            revision,
        } => {
            assert_eq!(key, "/registry/pods/ns/a");
            assert_eq!(*revision, r3);
            assert_eq!(prev.mod_revision, r2);
        }
        other => panic!("unexpected {other:?}"),
    }

    // Writes elsewhere make the idle watch report progress.
    let r4 = s
        .put_unconditional("/registry/other/y", b"{}".to_vec())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline.into(), w.next())
            .await
            .expect("no progress")
            .unwrap()
            .unwrap();
        if let StorageEvent::Progress { revision } = ev {
            if revision >= r4 {
                break;
            }
        }
    }

    // A watch from before a compaction fails with Expired.
    s.compact(r2).await.unwrap();
    s.compact(r2).await.unwrap(); // idempotent
    let mut old = Box::pin(s.watch("/registry/pods/", r0));
    match tokio::time::timeout(Duration::from_secs(10), old.next())
        .await
        .unwrap()
    {
        Some(Err(StorageError::Expired { requested, oldest })) => {
            assert_eq!(requested, r0);
            assert_eq!(oldest, r2 - 1);
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    assert!(tokio::time::timeout(Duration::from_secs(10), old.next())
        .await
        .unwrap()
        .is_none());
    // Watching from the compaction point still works (the deletion at r3 is
    // still in the history; the put at r2 is the kept state of the key).
    let mut ok = Box::pin(s.watch("/registry/pods/", r2 - 1));
    let mut revs = Vec::new();
    while revs.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(10), ok.next())
            .await
            .unwrap()
        {
            Some(Ok(StorageEvent::Progress { .. })) => {}
            Some(Ok(ev)) => revs.push(ev.revision()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(revs, vec![r2, r3]);
    let current = s.current_revision().await.unwrap();
    assert!(matches!(
        s.compact(current + 100).await,
        Err(StorageError::TooLargeResourceVersion { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compactor_compacts_one_interval_behind() {
    let etcd = EtcdProcess::start();
    let s = connect(&etcd).await;
    let compactions = Arc::new(AtomicUsize::new(0));
    let c = compactions.clone();
    s.set_observer(Arc::new(move |op, _ty, _d| {
        if op == "compact" {
            c.fetch_add(1, Ordering::SeqCst);
        }
    }));
    let r0 = s
        .create("/registry/pods/ns/a", obj("a", 1), &[])
        .await
        .unwrap();
    let handle = s.spawn_compactor(Duration::from_millis(500));
    // Keep writing so that revisions advance.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    loop {
        n += 1;
        s.put_unconditional("/registry/other/x", obj("x", n).to_vec())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut w = Box::pin(s.watch("/registry/pods/", r0 - 1));
        let first = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap();
        if matches!(first, Some(Err(StorageError::Expired { .. }))) {
            break;
        }
        assert!(Instant::now() < deadline, "history was never compacted");
    }
    // The latest second of history is still there.
    let recent = s.current_revision().await.unwrap() - 2;
    let mut w = Box::pin(s.watch("/registry/other/", recent));
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap(),
        Some(Ok(StorageEvent::Put { .. }))
    ));
    assert!(compactions.load(Ordering::SeqCst) > 0);
    handle.abort();
    // Zero interval: disabled.
    let h = s.spawn_compactor(Duration::ZERO);
    tokio::time::timeout(Duration::from_secs(1), h)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_survives_member_loss() {
    let mut members = EtcdProcess::start_cluster(3);
    let s = EtcdStorage::connect(&EtcdProcess::cluster_config(&members))
        .await
        .unwrap();
    s.create("/registry/pods/ns/before", obj("before", 0), &[])
        .await
        .unwrap();
    let cache = WatchCache::start(s.clone(), "/registry/pods/".into(), 1024);
    cache.wait_ready().await;
    let mut rx = cache.watch("/registry/pods/", cache.revision()).unwrap();

    // Kill one member (the first endpoint); all operations keep working.
    members[0].kill();
    let start = Instant::now();
    let mut last = 0;
    for i in 0..30u64 {
        let key = format!("/registry/pods/ns/p{i}");
        let rev = s
            .create(&key, obj("p", i), &[])
            .await
            .unwrap_or_else(|e| panic!("create {i} after kill: {e}"));
        assert!(s.get(&key).await.unwrap().is_some());
        let (items, _) = s.list("/registry/pods/").await.unwrap();
        assert_eq!(items.len() as u64, i + 2);
        last = rev;
    }
    s.health().await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "too slow: {:?}",
        start.elapsed()
    );
    // The cache keeps following (its watch may have been on the killed member).
    let (items, _) = tokio::time::timeout(
        Duration::from_secs(15),
        cache.list("/registry/pods/", Some(last)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(items.len(), 31);
    let mut seen = Vec::new();
    while seen.len() < 30 {
        seen.push(next_event(&mut rx).await.revision);
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]));

    // Kill a second member: no quorum, requests fail (not hang forever).
    members[1].kill();
    let res = tokio::time::timeout(
        Duration::from_secs(40),
        s.create("/registry/pods/ns/noquorum", obj("x", 0), &[]),
    )
    .await;
    assert!(
        matches!(res, Ok(Err(_))),
        "expected an error without quorum, got {res:?}"
    );
    assert!(s.health().await.is_err());
    // Bring it back: service resumes.
    members[1].restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.health().await.is_err() {
        assert!(Instant::now() < deadline, "cluster did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.create("/registry/pods/ns/after", obj("after", 0), &[])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_list_watch_consistency() {
    let etcd = EtcdProcess::start();
    let s = connect(&etcd).await;
    for i in 0..20u64 {
        let ns = if i % 2 == 0 { "a" } else { "b" };
        s.create(&format!("/registry/pods/{ns}/p{i}"), obj("p", i), &[])
            .await
            .unwrap();
    }
    s.create("/registry/podsx/a/zzz", obj("zzz", 0), &[])
        .await
        .unwrap();
    let cache = WatchCache::start(s.clone(), "/registry/pods/".into(), 10_000);
    cache.wait_ready().await;
    assert_eq!(cache.count(), 20);
    let (all, rev0) = cache.list("/registry/pods/", None).await.unwrap();
    assert_eq!(all.len(), 20);
    assert!(all.windows(2).all(|w| w[0].key < w[1].key));
    for o in &all {
        assert_eq!(
            o.object["metadata"]["resourceVersion"],
            o.revision.to_string()
        );
    }
    let (ns_a, _) = cache.list("/registry/pods/a/", None).await.unwrap();
    assert_eq!(ns_a.len(), 10);
    let p0 = cache
        .get("/registry/pods/a/p0", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p0.object["metadata"]["name"], "p");

    let mut w_all = cache.watch("/registry/pods/", rev0).unwrap();
    let mut w_a = cache.watch("/registry/pods/a/", rev0).unwrap();

    // A writer mutating keys concurrently.
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..150u64 {
                let ns = if i % 3 == 0 { "a" } else { "b" };
                let key = format!("/registry/pods/{ns}/p{}", i % 20);
                let rev = match s.get(&key).await.unwrap() {
                    None => s.create(&key, obj("p", i), &[]).await.unwrap(),
                    Some(kv) if i % 5 == 0 => {
                        s.delete(&key, Some(kv.mod_revision), &[]).await.unwrap()
                    }
                    Some(kv) => s
                        .update(&key, obj("p", i), Some(kv.mod_revision), &[], &[])
                        .await
                        .unwrap(),
                };
                revs.push((key, rev));
                if i % 10 == 0 {
                    s.put_unconditional("/registry/podsx/a/zzz", obj("zzz", i))
                        .await
                        .unwrap();
                }
            }
            revs
        })
    };

    // Meanwhile, a list+watch started mid-way must see the same final state.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mid, mid_rev) = cache.list("/registry/pods/", None).await.unwrap();
    let mut w_mid = cache.watch("/registry/pods/", mid_rev).unwrap();

    let writes = writer.await.unwrap();
    let final_rev = writes.last().unwrap().1;
    let (expected, _) = s.list("/registry/pods/").await.unwrap();
    let expected: BTreeMap<String, Revision> = expected
        .into_iter()
        .map(|kv| (kv.key, kv.mod_revision))
        .collect();

    // Full watcher: exactly the writes, in order.
    let mut got = Vec::new();
    while got.len() < writes.len() {
        let e = next_event(&mut w_all).await;
        got.push((e.key.clone(), e.revision));
    }
    assert_eq!(got, writes);
    // Namespace watcher: the writes in namespace a.
    let writes_a: Vec<_> = writes
        .iter()
        .filter(|(k, _)| k.starts_with("/registry/pods/a/"))
        .cloned()
        .collect();
    let mut got_a = Vec::new();
    while got_a.len() < writes_a.len() {
        let e = next_event(&mut w_a).await;
        got_a.push((e.key.clone(), e.revision));
    }
    assert_eq!(got_a, writes_a);

    // Mid-way list + watch replays to the final state.
    let mut state: BTreeMap<String, Revision> =
        mid.into_iter().map(|o| (o.key, o.revision)).collect();
    let mut last = mid_rev;
    while last < final_rev {
        let e = next_event(&mut w_mid).await;
        assert!(
            e.revision > last,
            "duplicate or out of order: {} after {}",
            e.revision,
            last
        );
        last = e.revision;
        match e.event_type {
            EventType::Added => assert!(state.insert(e.key, e.revision).is_none()),
            EventType::Modified => {
                assert!(e.prev.is_some());
                assert!(state.insert(e.key, e.revision).is_some())
            }
            EventType::Deleted => {
                assert_eq!(
                    e.object["metadata"]["resourceVersion"],
                    e.revision.to_string()
                );
                assert!(state.remove(&e.key).is_some())
            }
        }
    }
    assert_eq!(state, expected);
    let (cached, _) = cache
        .list("/registry/pods/", Some(final_rev))
        .await
        .unwrap();
    let cached: BTreeMap<String, Revision> =
        cached.into_iter().map(|o| (o.key, o.revision)).collect();
    assert_eq!(cached, expected);
    assert_eq!(cache.count(), expected.len());

    // Watches with initial state.
    let mut wi = cache
        .watch_with_initial_state("/registry/pods/b/", None)
        .await
        .unwrap();
    let mut initial = Vec::new();
    loop {
        match next_item(&mut wi, 5).await.unwrap() {
            WatchItem::Event(e) => {
                assert_eq!(e.event_type, EventType::Added);
                initial.push(e.key);
            }
            WatchItem::Progress(rev) => {
                assert!(rev >= final_rev);
                break;
            }
        }
    }
    let expected_b: Vec<_> = expected
        .keys()
        .filter(|k| k.starts_with("/registry/pods/b/"))
        .cloned()
        .collect();
    assert_eq!(initial, expected_b);
    let r = s
        .create("/registry/pods/b/new", obj("new", 0), &[])
        .await
        .unwrap();
    let e = next_event(&mut wi).await;
    assert_eq!(
        (e.key.as_str(), e.revision, e.event_type),
        ("/registry/pods/b/new", r, EventType::Added)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_expired_and_overflow() {
    let etcd = EtcdProcess::start();
    let s = connect(&etcd).await;
    let cache = WatchCache::start(s.clone(), "/registry/pods/".into(), 4);
    cache.wait_ready().await;
    let start = cache.revision();
    // A watcher that never reads, and one that does.
    let mut lazy = cache.watch("/registry/pods/", start).unwrap();
    let mut revs = Vec::new();
    for i in 0..10u64 {
        revs.push(
            s.create(&format!("/registry/pods/ns/p{i}"), obj("p", i), &[])
                .await
                .unwrap(),
        );
    }
    cache.wait_for_revision(revs[9]).await.unwrap();
    // Only the last 4 events are buffered.
    match cache.watch("/registry/pods/", start) {
        Err(StorageError::Expired { requested, oldest }) => {
            assert_eq!(requested, start);
            assert_eq!(oldest, revs[5]);
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    assert!(matches!(
        cache.watch("/registry/pods/", revs[4]),
        Err(StorageError::Expired { .. })
    ));
    let mut w = cache.watch("/registry/pods/", revs[5]).unwrap();
    for rev in &revs[6..] {
        assert_eq!(next_event(&mut w).await.revision, *rev);
    }
    // The lazy watcher still has everything (its buffer is large enough).
    for rev in &revs {
        assert_eq!(next_event(&mut lazy).await.revision, *rev);
    }

    // Overflow: a watcher that does not read more than ~1000 events is closed.
    let mut stuck = cache.watch("/registry/pods/", cache.revision()).unwrap();
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut futs = futures::stream::iter(0..1100u64)
                .map(|i| {
                    let s = s.clone();
                    async move {
                        s.put_unconditional(&format!("/registry/pods/ns/q{i}"), obj("q", i))
                            .await
                            .unwrap()
                    }
                })
                .buffer_unordered(16);
            let mut max = 0;
            while let Some(r) = futs.next().await {
                max = max.max(r);
            }
            max
        })
    };
    let last = writer.await.unwrap();
    cache.wait_for_revision(last).await.unwrap();
    let mut received = 0;
    let mut prev = 0;
    loop {
        match next_item(&mut stuck, 5).await {
            Some(WatchItem::Event(e)) => {
                assert!(e.revision > prev);
                prev = e.revision;
                received += 1;
            }
            Some(WatchItem::Progress(_)) => {}
            None => break,
        }
    }
    assert!((1000..1100).contains(&received), "received {received}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_progress_while_idle() {
    let etcd = EtcdProcess::start();
    let s = connect(&etcd).await;
    let cache = WatchCache::start(s.clone(), "/registry/pods/".into(), 100);
    cache.wait_ready().await;
    let mut w = cache.watch("/registry/pods/", cache.revision()).unwrap();
    // Only other resources change.
    let mut last = 0;
    for i in 0..5u64 {
        last = s
            .put_unconditional(&format!("/registry/configmaps/ns/c{i}"), obj("c", i))
            .await
            .unwrap();
    }
    // A "not older than" read for the current revision returns quickly.
    let current = s.current_revision().await.unwrap();
    assert!(current >= last);
    let t = Instant::now();
    let (items, rev) = cache.list("/registry/pods/", Some(current)).await.unwrap();
    assert!(items.is_empty());
    assert!(rev >= current);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "list waited {:?}",
        t.elapsed()
    );
    assert!(cache
        .get("/registry/pods/ns/x", Some(current))
        .await
        .unwrap()
        .is_none());
    // Watchers get progress notifications (bookmarks) up to that revision.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline.into(), w.recv())
            .await
            .expect("no progress notification")
        {
            Some(WatchItem::Progress(r)) if r >= current => break,
            Some(WatchItem::Progress(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // Without anyone waiting, the revision still advances in the background.
    let later = s
        .put_unconditional("/registry/configmaps/ns/late", obj("c", 9))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while cache.revision() < later {
        assert!(
            Instant::now() < deadline,
            "cache revision stuck at {}",
            cache.revision()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A revision from the future times out.
    let t = Instant::now();
    match cache.list("/registry/pods/", Some(later + 1000)).await {
        Err(StorageError::TooLargeResourceVersion { requested, current }) => {
            assert_eq!(requested, later + 1000);
            assert!(current >= later);
        }
        other => panic!("expected TooLargeResourceVersion, got {other:?}"),
    }
    assert!(t.elapsed() >= Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_resumes_after_etcd_restart() {
    let mut etcd = EtcdProcess::start();
    let s = connect(&etcd).await;
    let cache = WatchCache::start(s.clone(), "/registry/pods/".into(), 100);
    cache.wait_ready().await;
    let r1 = s
        .create("/registry/pods/ns/a", obj("a", 1), &[])
        .await
        .unwrap();
    let mut w = cache.watch("/registry/pods/", r1 - 1).unwrap();
    assert_eq!(next_event(&mut w).await.revision, r1);

    etcd.kill();
    assert!(s.health().await.is_err());
    etcd.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let r2 = loop {
        match s.create("/registry/pods/ns/b", obj("b", 1), &[]).await {
            Ok(r) => break r,
            Err(e) => {
                assert!(Instant::now() < deadline, "etcd did not come back: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    // Same watcher, no relist: the next event arrives.
    let e = next_event(&mut w).await;
    assert_eq!((e.key.as_str(), e.revision), ("/registry/pods/ns/b", r2));
    assert_eq!(cache.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_relists_when_history_is_compacted() {
    let mut etcd = EtcdProcess::start();
    let s = connect(&etcd).await;
    let cache = WatchCache::start(s.clone(), "/registry/pods/".into(), 100);
    cache.wait_ready().await;
    let r1 = s
        .create("/registry/pods/ns/a", obj("a", 1), &[])
        .await
        .unwrap();
    let mut w = cache.watch("/registry/pods/", r1 - 1).unwrap();
    assert_eq!(next_event(&mut w).await.revision, r1);

    // While the cache is disconnected, history it needs is written and compacted.
    etcd.kill();
    etcd.restart().unwrap();
    // Another client writes and compacts quickly (before the cache's watch resumes).
    let other = connect(&etcd).await;
    let mut last = 0;
    for i in 0..5u64 {
        last = other
            .put_unconditional(&format!("/registry/pods/ns/x{i}"), obj("x", i))
            .await
            .unwrap();
    }
    other
        .delete("/registry/pods/ns/a", None, &[])
        .await
        .unwrap();
    last = other
        .put_unconditional("/registry/pods/ns/y", obj("y", 0))
        .await
        .unwrap()
        .max(last);
    other.compact(last).await.unwrap();

    // Either the cache resumed in time (and saw everything) or it relisted and
    // closed its watchers; in both cases it converges.
    let (items, _) = cache.list("/registry/pods/", Some(last)).await.unwrap();
    let keys: Vec<_> = items.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "/registry/pods/ns/x0",
            "/registry/pods/ns/x1",
            "/registry/pods/ns/x2",
            "/registry/pods/ns/x3",
            "/registry/pods/ns/x4",
            "/registry/pods/ns/y"
        ]
    );
    // Old revisions are not served any more after a relist.
    if let Err(e) = cache.watch("/registry/pods/", r1) {
        assert!(matches!(e, StorageError::Expired { .. }));
    }
}

fn openssl(args: &[&str], dir: &std::path::Path) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
fn make_certs(dir: &std::path::Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ];
    ca.extend(ec);
    openssl(&ca, dir);
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let subj = format!("/CN={name}");
        let mut req = vec![
            "req",
            "-new",
            "-subj",
            subj.as_str(),
            "-keyout",
            key.as_str(),
            "-out",
            csr.as_str(),
        ];
        req.extend(ec);
        openssl(&req, dir);
        let crt = format!("{name}.crt");
        let extfile = format!("{name}.ext");
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                &crt,
                "-extfile",
                &extfile,
            ],
            dir,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let p = |f: &str| dir.path().join(f);
    let etcd = EtcdProcess::start_tls(&TlsFiles {
        ca_file: p("ca.crt"),
        cert_file: p("server.crt"),
        key_file: p("server.key"),
        client_cert_auth: true,
    });
    assert!(etcd.endpoint().starts_with("https://"));
    let mut cfg = etcd.config();
    cfg.ca_file = Some(p("ca.crt"));
    cfg.cert_file = Some(p("client.crt"));
    cfg.key_file = Some(p("client.key"));
    let s = EtcdStorage::connect(&cfg).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = s.health().await {
        assert!(Instant::now() < deadline, "TLS etcd not healthy: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rev = s
        .create("/registry/pods/ns/a", obj("a", 1), &[])
        .await
        .unwrap();
    assert_eq!(
        s.get("/registry/pods/ns/a")
            .await
            .unwrap()
            .unwrap()
            .mod_revision,
        rev
    );

    // Without a client certificate the server refuses us.
    cfg.cert_file = None;
    cfg.key_file = None;
    let anon = EtcdStorage::connect(&cfg).await.unwrap();
    assert!(anon.get("/registry/pods/ns/a").await.is_err());
    // A key without a certificate is a configuration error.
    cfg.key_file = Some(p("client.key"));
    assert!(EtcdStorage::connect(&cfg).await.is_err());
}

#[tokio::test]
async fn connect_is_lazy_and_reports_unavailable() {
    let cfg = storage::EtcdConfig {
        endpoints: vec!["http://127.0.0.1:1".into()],
        ..Default::default()
    };
    let s = EtcdStorage::connect(&cfg).await.unwrap();
    assert!(matches!(
        s.health().await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(matches!(
        s.get("/registry/x").await,
        Err(StorageError::Unavailable(_))
    ));
    let empty = storage::EtcdConfig {
        endpoints: vec![],
        ..Default::default()
    };
    assert!(EtcdStorage::connect(&empty).await.is_err());
}

#[test]
fn error_messages() {
    let e = StorageError::Expired {
        requested: 5,
        oldest: 10,
    };
    assert_eq!(e.to_string(), "too old resource version: 5 (10)");
    let _: Value = json!({});
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_consistent_reads_under_concurrent_writes() {
    let etcd = EtcdProcess::start();
    let s = connect(&etcd).await;
    let cache = WatchCache::start(s.clone(), "/registry/pods/".into(), 100_000);
    cache.wait_ready().await;
    // Half of the writes go to another resource.
    let writes: Arc<Mutex<Vec<(String, Revision)>>> = Arc::default();
    let writer = {
        let (s, writes) = (s.clone(), writes.clone());
        tokio::spawn(async move {
            futures::stream::iter(0..2000u64)
                .map(|i| {
                    let (s, writes) = (s.clone(), writes.clone());
                    async move {
                        let resource = if i % 2 == 0 { "pods" } else { "configmaps" };
                        let key = format!("/registry/{resource}/ns/o{i}");
                        let rev = s.put_unconditional(&key, obj("o", i)).await.unwrap();
                        if resource == "pods" {
                            writes.lock().unwrap().push((key, rev));
                        }
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<_>>()
                .await;
        })
    };
    // "Not older than the current revision" reads always contain every write
    // acknowledged at or before the revision they report.
    let mut checks = 0;
    while !writer.is_finished() {
        let current = s.current_revision().await.unwrap();
        let (items, rev) = cache.list("/registry/pods/", Some(current)).await.unwrap();
        assert!(rev >= current);
        let have: std::collections::HashSet<String> = items.into_iter().map(|o| o.key).collect();
        let missing: Vec<_> = writes
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, r)| *r <= rev && !have.contains(k))
            .cloned()
            .collect();
        assert!(missing.is_empty(), "list at {rev} misses {missing:?}");
        checks += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    writer.await.unwrap();
    assert!(checks > 5);
    let current = s.current_revision().await.unwrap();
    let (items, _) = cache.list("/registry/pods/", Some(current)).await.unwrap();
    assert_eq!(items.len(), 1000);
}
