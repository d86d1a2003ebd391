//! kube-proxy's metrics (upstream names, `kubeproxy_` subsystem).

use prometheus::{
    exponential_buckets, linear_buckets, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter,
    IntCounterVec, IntGauge, Opts, Registry,
};

pub struct Metrics {
    pub registry: Registry,
    pub sync_duration: Histogram,
    pub sync_full_duration: Histogram,
    pub sync_partial_duration: Histogram,
    pub last_timestamp: Gauge,
    pub last_queued_timestamp: Gauge,
    pub endpoint_changes_total: IntCounter,
    pub service_changes_total: IntCounter,
    pub endpoint_changes_pending: IntGauge,
    pub service_changes_pending: IntGauge,
    pub network_programming: Histogram,
    pub restore_failures: IntCounter,
    pub no_local_endpoints: GaugeVec,
    pub healthz_total: IntCounterVec,
    pub livez_total: IntCounterVec,
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid histogram options")
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let sync_buckets = exponential_buckets(0.001, 2.0, 15).unwrap_or_default();
        let mut np_buckets = linear_buckets(0.25, 0.25, 2).unwrap_or_default();
        np_buckets.extend(linear_buckets(1.0, 1.0, 59).unwrap_or_default());
        np_buckets.extend(linear_buckets(60.0, 5.0, 12).unwrap_or_default());
        np_buckets.extend(linear_buckets(120.0, 30.0, 7).unwrap_or_default());
        let m = Metrics {
            sync_duration: histogram(
                "kubeproxy_sync_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds",
                sync_buckets.clone(),
            ),
            sync_full_duration: histogram(
                "kubeproxy_sync_full_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds for full resyncs",
                sync_buckets.clone(),
            ),
            sync_partial_duration: histogram(
                "kubeproxy_sync_partial_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds for partial resyncs",
                sync_buckets,
            ),
            last_timestamp: Gauge::new(
                "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                "The last time proxy rules were successfully synced",
            )
            .expect("gauge"),
            last_queued_timestamp: Gauge::new(
                "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
                "The last time a sync of proxy rules was queued",
            )
            .expect("gauge"),
            endpoint_changes_total: IntCounter::new(
                "kubeproxy_sync_proxy_rules_endpoint_changes_total",
                "Cumulative proxy rules Endpoint changes",
            )
            .expect("counter"),
            service_changes_total: IntCounter::new(
                "kubeproxy_sync_proxy_rules_service_changes_total",
                "Cumulative proxy rules Service changes",
            )
            .expect("counter"),
            endpoint_changes_pending: IntGauge::new(
                "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
                "Pending proxy rules Endpoint changes",
            )
            .expect("gauge"),
            service_changes_pending: IntGauge::new(
                "kubeproxy_sync_proxy_rules_service_changes_pending",
                "Pending proxy rules Service changes",
            )
            .expect("gauge"),
            network_programming: histogram(
                "kubeproxy_network_programming_duration_seconds",
                "In Cluster Network Programming Latency in seconds",
                np_buckets,
            ),
            restore_failures: IntCounter::new(
                "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
                "Cumulative proxy nftables sync failures",
            )
            .expect("counter"),
            no_local_endpoints: GaugeVec::new(
                Opts::new(
                    "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
                    "Number of services with a Local traffic policy and no endpoints",
                ),
                &["traffic_policy"],
            )
            .expect("gauge vec"),
            healthz_total: IntCounterVec::new(
                Opts::new(
                    "kubeproxy_proxy_healthz_total",
                    "Cumulative proxy healthz HTTP status",
                ),
                &["code"],
            )
            .expect("counter vec"),
            livez_total: IntCounterVec::new(
                Opts::new(
                    "kubeproxy_proxy_livez_total",
                    "Cumulative proxy livez HTTP status",
                ),
                &["code"],
            )
            .expect("counter vec"),
            registry,
        };
        let r = &m.registry;
        let _ = r.register(Box::new(m.sync_duration.clone()));
        let _ = r.register(Box::new(m.sync_full_duration.clone()));
        let _ = r.register(Box::new(m.sync_partial_duration.clone()));
        let _ = r.register(Box::new(m.last_timestamp.clone()));
        let _ = r.register(Box::new(m.last_queued_timestamp.clone()));
        let _ = r.register(Box::new(m.endpoint_changes_total.clone()));
        let _ = r.register(Box::new(m.service_changes_total.clone()));
        let _ = r.register(Box::new(m.endpoint_changes_pending.clone()));
        let _ = r.register(Box::new(m.service_changes_pending.clone()));
        let _ = r.register(Box::new(m.network_programming.clone()));
        let _ = r.register(Box::new(m.restore_failures.clone()));
        let _ = r.register(Box::new(m.no_local_endpoints.clone()));
        let _ = r.register(Box::new(m.healthz_total.clone()));
        let _ = r.register(Box::new(m.livez_total.clone()));
        m
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
