//! Shared Kubernetes API machinery for every ferrokube crate.
//!
//! Objects travel through the apiserver as `serde_json::Value`s: one generic
//! registry serves every resource, and the typed k8s-openapi structs are used
//! where a strategy wants them. This crate holds what is independent of storage
//! and HTTP: `metav1.Status` errors, field errors, object-meta helpers, label
//! and field selectors, quantities, name validation and the three patch engines.

pub mod errors;
pub mod fields;
pub mod labels;
pub mod meta;
pub mod patch;
pub mod protobuf;
pub mod quantity;
pub mod schema;
pub mod validation;

pub use errors::{ApiError, FieldError, FieldErrorType};
