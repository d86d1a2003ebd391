//! other resources.

use crate::Strategy;
use std::sync::Arc;

pub fn all() -> Vec<Arc<dyn Strategy>> {
    Vec::new()
}
