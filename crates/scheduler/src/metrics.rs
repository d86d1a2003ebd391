//! Scheduler metrics with upstream names.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    /// result: scheduled | unschedulable | error; profile.
    pub schedule_attempts: IntCounterVec,
    pub attempt_duration: HistogramVec,
    /// queue: active | backoff | unschedulable | gated.
    pub pending_pods: IntGaugeVec,
    pub pod_scheduling_attempts: prometheus::Histogram,
    pub pod_scheduling_sli_duration: HistogramVec,
    pub preemption_attempts: prometheus::IntCounter,
    pub preemption_victims: prometheus::Histogram,
    pub binding_duration: prometheus::Histogram,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let buckets = prometheus::exponential_buckets(0.001, 2.0, 15).unwrap();
        let m = Metrics {
            schedule_attempts: IntCounterVec::new(
                Opts::new("scheduler_schedule_attempts_total", "Number of attempts to schedule pods, by the result."),
                &["result", "profile"],
            )
            .unwrap(),
            attempt_duration: HistogramVec::new(
                HistogramOpts::new("scheduler_scheduling_attempt_duration_seconds", "Scheduling attempt latency in seconds (scheduling algorithm + binding)")
                    .buckets(buckets.clone()),
                &["result", "profile"],
            )
            .unwrap(),
            pending_pods: IntGaugeVec::new(
                Opts::new("scheduler_pending_pods", "Number of pending pods, by the queue type."),
                &["queue"],
            )
            .unwrap(),
            pod_scheduling_attempts: prometheus::Histogram::with_opts(
                HistogramOpts::new("scheduler_pod_scheduling_attempts", "Number of attempts to successfully schedule a pod.")
                    .buckets(prometheus::exponential_buckets(1.0, 2.0, 5).unwrap()),
            )
            .unwrap(),
            pod_scheduling_sli_duration: HistogramVec::new(
                HistogramOpts::new("scheduler_pod_scheduling_sli_duration_seconds", "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue.")
                    .buckets(prometheus::exponential_buckets(0.01, 2.0, 20).unwrap()),
                &["attempts"],
            )
            .unwrap(),
            preemption_attempts: prometheus::IntCounter::new("scheduler_preemption_attempts_total", "Total preemption attempts in the cluster till now").unwrap(),
            preemption_victims: prometheus::Histogram::with_opts(
                HistogramOpts::new("scheduler_preemption_victims", "Number of selected preemption victims")
                    .buckets(prometheus::exponential_buckets(1.0, 2.0, 7).unwrap()),
            )
            .unwrap(),
            binding_duration: prometheus::Histogram::with_opts(
                HistogramOpts::new("scheduler_binding_duration_seconds", "Binding latency in seconds").buckets(buckets),
            )
            .unwrap(),
            registry,
        };
        let r = &m.registry;
        let _ = r.register(Box::new(m.schedule_attempts.clone()));
        let _ = r.register(Box::new(m.attempt_duration.clone()));
        let _ = r.register(Box::new(m.pending_pods.clone()));
        let _ = r.register(Box::new(m.pod_scheduling_attempts.clone()));
        let _ = r.register(Box::new(m.pod_scheduling_sli_duration.clone()));
        let _ = r.register(Box::new(m.preemption_attempts.clone()));
        let _ = r.register(Box::new(m.preemption_victims.clone()));
        let _ = r.register(Box::new(m.binding_duration.clone()));
        m
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
