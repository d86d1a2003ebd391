//! The generic registry: one [`store::Store`] per served resource, all
//! built from `resources::all()`; resources sharing an etcd segment share
//! one watch cache.

pub mod admission;
pub mod context;
pub mod managed_fields;
pub mod priority;
pub mod service_alloc;
pub mod serviceaccount;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;

use storage::cache::WatchCache;
use storage::EtcdStorage;

use self::admission::{Admission, NamespaceLifecycle};
use self::priority::Priority;
use self::service_alloc::ServiceAllocator;
use self::serviceaccount::ServiceAccountAdmission;
use self::store::{Allocator, Store};

/// The entries of a JSON map after `remove(k)` of each of `keys` in turn,
/// without copying anything. serde_json's `remove` (with `preserve_order`)
/// moves the last entry into the removed one's place; so does this, so that
/// the entries come in the same order.
pub(crate) fn entries_after_remove<'a>(
    m: &'a serde_json::Map<String, serde_json::Value>,
    keys: &[&str],
) -> Vec<(&'a String, &'a serde_json::Value)> {
    static SWAP_REMOVE: once_cell::sync::Lazy<bool> = once_cell::sync::Lazy::new(|| {
        let mut m = serde_json::Map::new();
        for k in ["a", "b", "c"] {
            m.insert(k.into(), serde_json::Value::Null);
        }
        m.remove("a");
        m.keys().next().map(String::as_str) == Some("c")
    });
    let mut v: Vec<_> = m.iter().collect();
    for k in keys {
        if let Some(i) = v.iter().position(|(x, _)| x.as_str() == *k) {
            if *SWAP_REMOVE {
                v.swap_remove(i);
            } else {
                v.remove(i);
            }
        }
    }
    v
}

/// Map entries serialized as a JSON object.
pub(crate) struct MapEntries<'a>(pub Vec<(&'a String, &'a serde_json::Value)>);

impl serde::Serialize for MapEntries<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Size of each watch cache's ring of recent events.
pub const WATCH_CACHE_CAPACITY: usize = 4096;

pub struct Registry {
    /// Every store, in discovery order.
    pub stores: Vec<Arc<Store>>,
    index: HashMap<(String, String, String), Arc<Store>>,
    pub storage: EtcdStorage,
    pub service_allocator: Arc<ServiceAllocator>,
}

impl Registry {
    /// Stores for every resource, with the admission chain minus the
    /// `disabled` plugins (--disable-admission-plugins, upstream names).
    pub fn new(
        storage: EtcdStorage,
        service_allocator: Arc<ServiceAllocator>,
        disabled: &[String],
    ) -> Self {
        let mut caches: HashMap<&'static str, Arc<WatchCache>> = HashMap::new();
        let cache_for = |segment: &str| {
            let prefix = format!("{}/{}/", storage.prefix().trim_end_matches('/'), segment);
            WatchCache::start(storage.clone(), prefix, WATCH_CACHE_CAPACITY)
        };
        let namespaces = cache_for("namespaces");
        caches.insert("namespaces", namespaces.clone());
        let priority_classes = cache_for("priorityclasses");
        caches.insert("priorityclasses", priority_classes.clone());
        let service_accounts = cache_for("serviceaccounts");
        caches.insert("serviceaccounts", service_accounts.clone());
        let storage_classes = cache_for("storageclasses");
        caches.insert("storageclasses", storage_classes.clone());
        // Upstream's order: NamespaceLifecycle, ServiceAccount, Priority,
        // DefaultStorageClass.
        let plugins: Vec<Arc<dyn admission::AdmissionPlugin>> = vec![
            Arc::new(NamespaceLifecycle::new(storage.clone(), namespaces)),
            Arc::new(ServiceAccountAdmission::new(
                storage.clone(),
                service_accounts,
            )),
            Arc::new(Priority::new(storage.clone(), priority_classes)),
            Arc::new(admission::DefaultStorageClass::new(
                &storage,
                storage_classes,
            )),
        ];
        let admission = Arc::new(Admission::new(
            plugins
                .into_iter()
                .filter(|p| !disabled.iter().any(|d| d == p.name()))
                .collect(),
        ));
        let mut stores = Vec::new();
        let mut index = HashMap::new();
        for strategy in resources::all() {
            let info = strategy.info().clone();
            let cache = caches
                .entry(info.storage_segment)
                .or_insert_with(|| cache_for(info.storage_segment))
                .clone();
            let allocator: Option<Arc<dyn Allocator>> =
                if info.group.is_empty() && info.plural == "services" {
                    Some(service_allocator.clone())
                } else {
                    None
                };
            let store = Arc::new(Store::new(
                strategy,
                storage.clone(),
                cache,
                admission.clone(),
                allocator,
            ));
            index.insert(
                (
                    info.group.to_string(),
                    info.version.to_string(),
                    info.plural.to_string(),
                ),
                store.clone(),
            );
            stores.push(store);
        }
        Registry {
            stores,
            index,
            storage,
            service_allocator,
        }
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Store>> {
        self.index
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Wait until every watch cache has its initial list.
    pub async fn wait_ready(&self) {
        for s in &self.stores {
            s.cache().wait_ready().await;
        }
    }

    /// Groups with their versions, preferred version first, in discovery order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for s in &self.stores {
            let i = s.info();
            match out.iter_mut().find(|(g, _)| g == i.group) {
                Some((_, vs)) => {
                    if !vs.iter().any(|v| v == i.version) {
                        vs.push(i.version.to_string());
                    }
                }
                None => out.push((i.group.to_string(), vec![i.version.to_string()])),
            }
        }
        // Preferred version: the highest stable one (autoscaling v2 over v1).
        for (_, vs) in out.iter_mut() {
            vs.sort_by(|a, b| version_priority(b).cmp(&version_priority(a)));
        }
        out
    }

    pub fn stores_in(&self, group: &str, version: &str) -> Vec<Arc<Store>> {
        self.stores
            .iter()
            .filter(|s| s.info().group == group && s.info().version == version)
            .cloned()
            .collect()
    }
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.trim_start_matches('v');
    let (major, tail) = rest.split_at(
        rest.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len()),
    );
    let major: u32 = major.parse().unwrap_or(0);
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(b) = tail.strip_prefix("beta") {
        (2, major, b.parse().unwrap_or(0))
    } else if let Some(a) = tail.strip_prefix("alpha") {
        (1, major, a.parse().unwrap_or(0))
    } else {
        (0, major, 0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn entries_after_remove_match_remove() {
        let m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"name":"a","resourceVersion":"5","labels":{"x":"1"},"uid":"u","selfLink":"/x","managedFields":[]}"#,
        )
        .unwrap();
        for keys in [
            &["resourceVersion", "selfLink"][..],
            &["selfLink", "resourceVersion"],
            &["managedFields"],
            &["name", "uid", "nothing", "managedFields", "labels"],
        ] {
            let mut want = m.clone();
            for k in keys {
                want.remove(*k);
            }
            let got = super::entries_after_remove(&m, keys);
            assert_eq!(
                serde_json::to_string(&super::MapEntries(got)).unwrap(),
                serde_json::to_string(&want).unwrap(),
                "{keys:?}"
            );
        }
    }
}
