//! etcd v3 storage and the watch cache.
//!
//! This crate is the apiserver's only access to etcd. Objects are stored as
//! JSON bytes under keys of the form `<prefix>/<segment>/<namespace>/<name>`
//! (namespaced) or `<prefix>/<segment>/<name>` (cluster-scoped). The
//! `metadata.resourceVersion` of an object is the etcd mod revision of its key,
//! rendered as a decimal string.
//!
//! * [`EtcdStorage`] wraps an etcd v3 client and offers the transactional
//!   primitives the registry needs (create-if-absent with claim keys,
//!   compare-and-swap updates and deletes, consistent lists, watches,
//!   compaction and health checks).
//! * [`cache::WatchCache`] keeps an in-memory, per-resource copy of the objects
//!   under one key prefix and serves lists, gets and watches from memory. All
//!   caches of one storage share a single etcd watch over the whole key space.
//! * [`testing`] starts throw-away etcd processes for tests of this and other
//!   crates.

#![warn(missing_docs)]

pub mod cache;
mod etcd;
mod hub;
pub mod testing;
mod watch;

use std::path::PathBuf;

pub use cache::{CacheEvent, CachedObject, EventType, WatchCache, WatchItem};
pub use etcd::{EtcdStorage, Observer};

/// An etcd revision (also the numeric value of a `resourceVersion`).
pub type Revision = i64;

/// Convenience result type of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URLs of the etcd members (`http://host:port` or `https://host:port`).
    /// Requests are balanced over all of them and fail over when one is down.
    pub endpoints: Vec<String>,
    /// Key prefix under which all objects live (default `/registry`).
    pub prefix: String,
    /// CA bundle used to verify the etcd server certificates (https endpoints).
    pub ca_file: Option<PathBuf>,
    /// Client certificate presented to etcd (https endpoints); needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: vec!["http://127.0.0.1:2379".to_string()],
            prefix: "/registry".to_string(),
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}

/// One key as stored in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The full etcd key (including the prefix).
    pub key: String,
    /// The stored bytes (JSON for API objects).
    pub value: bytes::Bytes,
    /// Revision of the last modification of this key (the object's resourceVersion).
    pub mod_revision: Revision,
    /// Revision at which the key was (last) created.
    pub create_revision: Revision,
}

/// A change observed by [`EtcdStorage::watch`].
#[derive(Debug, Clone)]
pub enum StorageEvent {
    /// The key was created or modified; `prev` is its previous value if it existed
    /// (and etcd still had it).
    Put {
        /// The new state of the key.
        kv: KeyValue,
        /// The state before this change, if any.
        prev: Option<KeyValue>,
    },
    /// The key was deleted at `revision`; `prev` is its last value if etcd still had it.
    Delete {
        /// The deleted key.
        key: String,
        /// The last state of the key before the deletion.
        prev: Option<KeyValue>,
        /// The revision of the deletion.
        revision: Revision,
    },
    /// Every change with a revision `<= revision` under the watched prefix has
    /// already been delivered.
    Progress {
        /// The revision the watch has caught up to.
        revision: Revision,
    },
}

impl StorageEvent {
    /// The revision of this event (mod revision, deletion revision or progress revision).
    pub fn revision(&self) -> Revision {
        match self {
            StorageEvent::Put { kv, .. } => kv.mod_revision,
            StorageEvent::Delete { revision, .. } => *revision,
            StorageEvent::Progress { revision } => *revision,
        }
    }
}

/// Everything that can go wrong when talking to etcd or the watch cache.
#[derive(thiserror::Error, Debug, Clone)]
pub enum StorageError {
    /// The key does not exist.
    #[error("key not found: {key}")]
    NotFound {
        /// The missing key.
        key: String,
    },
    /// A create found the key already present.
    #[error("key already exists: {key}")]
    AlreadyExists {
        /// The existing key.
        key: String,
    },
    /// A compare-and-swap failed: the key's mod revision differs from the expected one.
    #[error("precondition failed (resource version conflict) for key {key}")]
    Conflict {
        /// The key whose revision did not match.
        key: String,
        /// The current state of the key, if it could be read.
        current: Option<KeyValue>,
    },
    /// A claim key (e.g. an allocated ClusterIP or NodePort) already exists.
    #[error("claim already taken: {key}")]
    ClaimTaken {
        /// The claim key that was already present.
        key: String,
    },
    /// The requested revision is older than what is still available (compacted, or
    /// fell out of the watch cache's event window).
    #[error("too old resource version: {requested} ({oldest})")]
    Expired {
        /// The revision that was asked for.
        requested: Revision,
        /// The oldest revision from which history is still available.
        oldest: Revision,
    },
    /// The requested revision is newer than what the storage has caught up to.
    #[error("too large resource version: {requested}, current resource version: {current}")]
    TooLargeResourceVersion {
        /// The revision that was asked for.
        requested: Revision,
        /// The revision the storage is at.
        current: Revision,
    },
    /// etcd could not be reached (or did not answer in time).
    #[error("etcd unavailable: {0}")]
    Unavailable(String),
    /// Any other failure.
    #[error("storage internal error: {0}")]
    Internal(String),
}

impl From<etcd_client::Error> for StorageError {
    fn from(e: etcd_client::Error) -> Self {
        etcd::map_etcd_error(e)
    }
}
