//! The apiserver's Prometheus metrics, with upstream names and labels.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use resources::ResourceInfo;

pub struct Metrics {
    pub registry: Registry,
    pub request_total: IntCounterVec,
    pub request_duration: HistogramVec,
    pub storage_objects: IntGaugeVec,
    pub etcd_request_duration: HistogramVec,
    pub watch_events_total: IntCounterVec,
    pub inflight: IntGaugeVec,
    pub longrunning: IntGaugeVec,
}

const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];
const ETCD_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let request_total = IntCounterVec::new(
            Opts::new("apiserver_request_total", "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code."),
            &["verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component", "code"],
        )
        .expect("static metric definition");
        let request_duration = HistogramVec::new(
            HistogramOpts::new("apiserver_request_duration_seconds", "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.")
                .buckets(REQUEST_BUCKETS.to_vec()),
            &["verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component"],
        )
        .expect("static metric definition");
        let storage_objects = IntGaugeVec::new(
            Opts::new(
                "apiserver_storage_objects",
                "Number of stored objects at the time of last check split by kind.",
            ),
            &["resource"],
        )
        .expect("static metric definition");
        let etcd_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "etcd_request_duration_seconds",
                "Etcd request latency in seconds for each operation and object type.",
            )
            .buckets(ETCD_BUCKETS.to_vec()),
            &["operation", "type"],
        )
        .expect("static metric definition");
        let watch_events_total = IntCounterVec::new(
            Opts::new(
                "apiserver_watch_events_total",
                "Number of events sent in watch clients",
            ),
            &["group", "version", "resource"],
        )
        .expect("static metric definition");
        let inflight = IntGaugeVec::new(
            Opts::new("apiserver_current_inflight_requests", "Maximal number of currently used inflight request limit of this apiserver per request kind in last second."),
            &["request_kind"],
        )
        .expect("static metric definition");
        let longrunning = IntGaugeVec::new(
            Opts::new("apiserver_longrunning_requests", "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component. Not all requests are tracked this way."),
            &["verb", "group", "version", "resource", "subresource", "scope", "component"],
        )
        .expect("static metric definition");
        for c in [
            Box::new(request_total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_duration.clone()),
            Box::new(storage_objects.clone()),
            Box::new(etcd_request_duration.clone()),
            Box::new(watch_events_total.clone()),
            Box::new(inflight.clone()),
            Box::new(longrunning.clone()),
        ] {
            let _ = registry.register(c);
        }
        Metrics {
            registry,
            request_total,
            request_duration,
            storage_objects,
            etcd_request_duration,
            watch_events_total,
            inflight,
            longrunning,
        }
    }

    pub fn watch_events(&self, info: &ResourceInfo, n: usize) {
        if n > 0 {
            self.watch_events_total
                .with_label_values(&[info.group, info.version, info.plural])
                .inc_by(n as u64);
        }
    }

    pub fn observe_etcd(&self, operation: &str, typ: &str, d: Duration) {
        self.etcd_request_duration
            .with_label_values(&[operation, typ])
            .observe(d.as_secs_f64());
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let enc = prometheus::TextEncoder::new();
        enc.encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
