//! Per-request facts the registry needs: who is asking, and the options of
//! the mutation (dryRun, fieldManager, fieldValidation).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// An authenticated identity (upstream `user.Info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// Extra attributes, e.g. `authentication.kubernetes.io/pod-name` for
    /// service-account tokens bound to a pod.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn anonymous() -> Self {
        UserInfo {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
            extra: BTreeMap::new(),
        }
    }
    pub fn is_anonymous(&self) -> bool {
        self.name == "system:anonymous"
    }
}

/// `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// What a handler tells the store about one request.
#[derive(Debug)]
pub struct RequestContext {
    pub user: UserInfo,
    pub dry_run: bool,
    /// The manager recorded in managedFields: `fieldManager` or the user agent's product.
    pub field_manager: String,
    pub field_validation: FieldValidation,
    /// Warnings sent back as `Warning: 299 - "..."` headers.
    pub warnings: Mutex<Vec<String>>,
    /// Set only by the apiserver's own controllers (bootstrap), which write
    /// their objects as upstream's reconcilers do: straight to storage,
    /// without the per-resource validation (e.g. a loopback endpoint for
    /// an apiserver advertised on 127.0.0.1).
    pub internal: bool,
}

impl RequestContext {
    pub fn new(user: UserInfo) -> Self {
        RequestContext {
            user,
            dry_run: false,
            field_manager: "unknown".into(),
            field_validation: FieldValidation::Strict,
            warnings: Mutex::new(Vec::new()),
            internal: false,
        }
    }
    pub fn warn(&self, w: impl Into<String>) {
        if let Ok(mut v) = self.warnings.lock() {
            v.push(w.into());
        }
    }
    pub fn take_warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}
