//! The built-in resources served by kube-apiserver. Adding a resource is a
//! registration here (a [`ResourceInfo`] and a [`Strategy`]); the generic
//! registry in the apiserver crate does the rest.

pub mod apps;
pub mod batch;
pub mod core;
pub mod openapi;
pub mod other;
pub mod strategy;
pub(crate) mod util;

pub use strategy::{ResourceInfo, Strategy, Subresource, TableColumn};

use std::sync::Arc;

/// Every served group/version/resource, in discovery order (core first).
pub fn all() -> Vec<Arc<dyn Strategy>> {
    let mut v = core::all();
    v.extend(apps::all());
    v.extend(batch::all());
    v.extend(other::all());
    v
}
