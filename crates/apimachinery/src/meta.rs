//! Helpers over objects held as JSON values.
