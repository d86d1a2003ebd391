//! The process-wide metrics registry served on /metrics, and the client-go
//! style work queue metrics (`workqueue_depth`, `workqueue_adds_total`,
//! `workqueue_retries_total`, labelled by queue name).

use std::sync::OnceLock;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// The registry every controller-manager metric lives in.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let r = Registry::new();
        let _ = client_base::leader::register_metrics(&r);
        r
    })
}

pub(crate) struct WorkqueueMetrics {
    pub depth: IntGaugeVec,
    pub adds: IntCounterVec,
    pub retries: IntCounterVec,
}

pub(crate) fn workqueue() -> &'static WorkqueueMetrics {
    static M: OnceLock<WorkqueueMetrics> = OnceLock::new();
    M.get_or_init(|| {
        let depth = IntGaugeVec::new(
            Opts::new("workqueue_depth", "Current depth of workqueue"),
            &["name"],
        )
        .expect("valid metric");
        let adds = IntCounterVec::new(
            Opts::new(
                "workqueue_adds_total",
                "Total number of adds handled by workqueue",
            ),
            &["name"],
        )
        .expect("valid metric");
        let retries = IntCounterVec::new(
            Opts::new(
                "workqueue_retries_total",
                "Total number of retries handled by workqueue",
            ),
            &["name"],
        )
        .expect("valid metric");
        let r = registry();
        let _ = r.register(Box::new(depth.clone()));
        let _ = r.register(Box::new(adds.clone()));
        let _ = r.register(Box::new(retries.clone()));
        WorkqueueMetrics {
            depth,
            adds,
            retries,
        }
    })
}
