//! CoreDNS-compatible metrics (the names dashboards and alerts expect).

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    /// coredns_dns_requests_total{server, zone, proto, family, type}
    pub requests: IntCounterVec,
    /// coredns_dns_responses_total{server, zone, rcode, plugin}
    pub responses: IntCounterVec,
    /// coredns_dns_request_duration_seconds{server, zone, type}
    pub duration: HistogramVec,
    /// coredns_forward_requests_total{to}
    pub forward_requests: IntCounterVec,
    /// coredns_forward_responses_total{to, rcode}
    pub forward_responses: IntCounterVec,
    /// coredns_panics_total-like: malformed packets we refused
    pub malformed: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c =
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        let requests = counter(
            "coredns_dns_requests_total",
            "Counter of DNS requests made per zone, protocol and family.",
            &["server", "zone", "proto", "family", "type"],
        );
        let responses = counter(
            "coredns_dns_responses_total",
            "Counter of response status codes.",
            &["server", "zone", "rcode", "plugin"],
        );
        let forward_requests = counter(
            "coredns_forward_requests_total",
            "Counter of requests made per upstream.",
            &["to"],
        );
        let forward_responses = counter(
            "coredns_forward_responses_total",
            "Counter of responses received per upstream.",
            &["to", "rcode"],
        );
        let malformed = counter(
            "cluster_dns_malformed_requests_total",
            "Counter of requests that could not be parsed.",
            &["proto"],
        );
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "coredns_dns_request_duration_seconds",
                "Histogram of the time (in seconds) each request took per zone.",
            )
            .buckets(vec![
                0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256,
                0.512, 1.024, 2.048, 4.096, 8.192,
            ]),
            &["server", "zone", "type"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(duration.clone()))
            .expect("metric registered once");
        Metrics {
            registry,
            requests,
            responses,
            duration,
            forward_requests,
            forward_responses,
            malformed,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
