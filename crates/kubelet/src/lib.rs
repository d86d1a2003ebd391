//! The kubelet: registers its Node, runs the pods bound to it in a CRI
//! runtime, reports their status, and serves the kubelet API on :10250.

pub mod env;
pub mod logs;
pub mod node;
pub mod options;
pub mod pods;
pub mod probes;
pub mod runtime;
pub mod server;
pub mod volumes;
