//! Pure helpers over pod and container specs: names, defaults, QoS, hashes,
//! cgroup parents and resource conversion.

use std::collections::BTreeMap;

use apimachinery::quantity::Quantity;
use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};

/// Annotations of static/mirror pods (as upstream).
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
pub const CONFIG_SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";
pub const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

pub fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

pub fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// `name_namespace(uid)`, upstream's format.Pod.
pub fn full_name(pod: &Pod) -> String {
    format!("{}_{}({})", name(pod), namespace(pod), uid(pod))
}

pub fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// A static pod (from a manifest file) as opposed to one from the API.
pub fn is_static(pod: &Pod) -> bool {
    matches!(annotation(pod, CONFIG_SOURCE_ANNOTATION), Some(s) if s != "api")
}

/// A mirror pod: the API's copy of a static pod.
pub fn is_mirror(pod: &Pod) -> bool {
    annotation(pod, CONFIG_MIRROR_ANNOTATION).is_some()
}

pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The pod's restart policy, defaulting to Always.
pub fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

pub fn containers(pod: &Pod) -> &[Container] {
    pod.spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[])
}

pub fn init_containers(pod: &Pod) -> &[Container] {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[])
}

/// A restartable init container ("sidecar").
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// The spec terminationGracePeriodSeconds (default 30).
pub fn termination_grace_seconds(pod: &Pod) -> i64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30)
        .max(0)
}

/// The grace period for deleting the pod: deletionGracePeriodSeconds when
/// set, else the spec's.
pub fn deletion_grace_seconds(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .unwrap_or_else(|| termination_grace_seconds(pod))
        .max(0)
}

/// Adds ":latest" to an image reference without tag or digest (upstream applyDefaultImageTag).
pub fn default_image_tag(image: &str) -> String {
    let image = image.trim();
    if image.contains('@') {
        return image.to_string();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// The pull policy, defaulted as the apiserver does.
pub fn pull_policy(c: &Container) -> &str {
    match c.image_pull_policy.as_deref() {
        Some(p) if !p.is_empty() => p,
        _ => {
            let image = c.image.as_deref().unwrap_or("");
            let last = image.rsplit('/').next().unwrap_or(image);
            if image.contains('@') {
                "IfNotPresent"
            } else if !last.contains(':') || last.ends_with(":latest") {
                "Always"
            } else {
                "IfNotPresent"
            }
        }
    }
}

fn quantity(r: Option<&ResourceRequirements>, limits: bool, name: &str) -> Option<Quantity> {
    let r = r?;
    let map = if limits {
        r.limits.as_ref()?
    } else {
        r.requests.as_ref()?
    };
    Quantity::parse(&map.get(name)?.0).ok()
}

/// A container's request for a resource, defaulting to its limit (as the apiserver does).
pub fn request(c: &Container, name: &str) -> Option<Quantity> {
    quantity(c.resources.as_ref(), false, name)
        .or_else(|| quantity(c.resources.as_ref(), true, name))
}

pub fn limit(c: &Container, name: &str) -> Option<Quantity> {
    quantity(c.resources.as_ref(), true, name)
}

/// The pod's QoS class (upstream GetPodQOS), preferring status.qosClass when set.
pub fn qos_class(pod: &Pod) -> &'static str {
    if let Some(q) = pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        match q {
            "Guaranteed" => return "Guaranteed",
            "Burstable" => return "Burstable",
            "BestEffort" => return "BestEffort",
            _ => {}
        }
    }
    compute_qos_class(pod)
}

/// The QoS class computed from the containers' resources.
pub fn compute_qos_class(pod: &Pod) -> &'static str {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let all = init_containers(pod).iter().chain(containers(pod).iter());
    for c in all {
        let mut has_limits = [false; 2];
        for (i, res) in ["cpu", "memory"].into_iter().enumerate() {
            if let Some(q) = quantity(c.resources.as_ref(), false, res) {
                if !q.is_zero() {
                    *requests.entry(res).or_default() += q.milli_value();
                }
            }
            if let Some(q) = quantity(c.resources.as_ref(), true, res) {
                if !q.is_zero() {
                    *limits.entry(res).or_default() += q.milli_value();
                    has_limits[i] = true;
                }
            }
        }
        if !(has_limits[0] && has_limits[1]) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed {
        for (res, req) in &requests {
            if limits.get(res) != Some(req) {
                guaranteed = false;
            }
        }
    }
    if guaranteed && limits.len() == 2 {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The pod's cgroup parent in cgroupfs syntax: `<root>/kubepods[/burstable|/besteffort]/pod<uid>`.
pub fn cgroup_parent(cgroup_root: &str, qos: &str, pod_uid: &str) -> String {
    let root = cgroup_root.trim_end_matches('/');
    let class = match qos {
        "Guaranteed" => "",
        "Burstable" => "/burstable",
        _ => "/besteffort",
    };
    format!("{root}/kubepods{class}/pod{pod_uid}")
}

/// CPU shares for a millicpu request (upstream MilliCPUToShares, min 2).
pub fn milli_cpu_to_shares(milli: i128) -> i64 {
    if milli <= 0 {
        return 2;
    }
    let shares = milli * 1024 / 1000;
    shares.clamp(2, 262144) as i64
}

/// CFS quota for a millicpu limit with the given period (upstream MilliCPUToQuota, min 1000).
pub fn milli_cpu_to_quota(milli: i128, period: i64) -> i64 {
    if milli <= 0 {
        return 0;
    }
    let quota = milli * period as i128 / 1000;
    quota.max(1000) as i64
}

/// The container's OOM score adjustment by QoS (upstream GetContainerOOMScoreAdjust).
pub fn oom_score_adj(qos: &str, c: &Container, memory_capacity: u64) -> i64 {
    match qos {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            let req = request(c, "memory").map(|q| q.value()).unwrap_or(0).max(0);
            if memory_capacity == 0 {
                return 999;
            }
            let adj = 1000 - (1000 * req) / memory_capacity as i128;
            if adj < 3 {
                3
            } else if adj >= 1000 {
                999
            } else {
                adj as i64
            }
        }
    }
}

/// 32-bit FNV-1a.
pub fn fnv1a32(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in data {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// 128-bit FNV-1a, as 32 hex digits.
pub fn fnv1a128_hex(data: &[u8]) -> String {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    let prime: u128 = 0x0000000001000000000000000000013B;
    for b in data {
        h ^= *b as u128;
        h = h.wrapping_mul(prime);
    }
    format!("{h:032x}")
}

/// A hash of the container's spec (without resources, which can change in
/// place); a running container whose hash differs is restarted.
pub fn container_hash(c: &Container) -> String {
    let mut c = c.clone();
    c.resources = None;
    c.resize_policy = None;
    let json = serde_json::to_vec(&c).unwrap_or_default();
    format!("{:x}", fnv1a32(&json))
}

/// The pod's hostname and (optional) domain (upstream GeneratePodHostNameAndDomain).
pub fn pod_hostname_and_domain(pod: &Pod, cluster_domain: &str) -> (String, Option<String>) {
    let spec = pod.spec.as_ref();
    let mut hostname = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| name(pod).to_string());
    if hostname.len() > 63 {
        hostname.truncate(63);
        while hostname.ends_with('-') || hostname.ends_with('.') {
            hostname.pop();
        }
    }
    let domain = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty() && !cluster_domain.is_empty())
        .map(|sub| format!("{sub}.{}.svc.{cluster_domain}", namespace(pod)));
    (hostname, domain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;

    fn container(req: &[(&str, &str)], lim: &[(&str, &str)]) -> Container {
        let m = |v: &[(&str, &str)]| {
            if v.is_empty() {
                None
            } else {
                Some(
                    v.iter()
                        .map(|(k, v)| (k.to_string(), Q(v.to_string())))
                        .collect(),
                )
            }
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: m(req),
                limits: m(lim),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(cs: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: cs,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn qos() {
        assert_eq!(
            compute_qos_class(&pod(vec![container(&[], &[])])),
            "BestEffort"
        );
        assert_eq!(
            compute_qos_class(&pod(vec![container(
                &[],
                &[("cpu", "1"), ("memory", "1Gi")]
            )])),
            "Guaranteed"
        );
        assert_eq!(
            compute_qos_class(&pod(vec![container(
                &[("cpu", "1000m"), ("memory", "1Gi")],
                &[("cpu", "1"), ("memory", "1Gi")]
            )])),
            "Guaranteed"
        );
        assert_eq!(
            compute_qos_class(&pod(vec![container(&[("cpu", "100m")], &[])])),
            "Burstable"
        );
        assert_eq!(
            compute_qos_class(&pod(vec![
                container(&[], &[("cpu", "1"), ("memory", "1Gi")]),
                container(&[], &[])
            ])),
            "Burstable"
        );
        assert_eq!(
            cgroup_parent("", "Burstable", "u1"),
            "/kubepods/burstable/podu1"
        );
        assert_eq!(
            cgroup_parent("/fk/", "Guaranteed", "u1"),
            "/fk/kubepods/podu1"
        );
        assert_eq!(
            cgroup_parent("/", "BestEffort", "u1"),
            "/kubepods/besteffort/podu1"
        );
    }

    #[test]
    fn cpu_and_oom() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_quota(500, 100000), 50000);
        assert_eq!(milli_cpu_to_quota(1, 100000), 1000);
        let c = container(&[("memory", "1Gi")], &[]);
        assert_eq!(oom_score_adj("Guaranteed", &c, 4 << 30), -997);
        assert_eq!(oom_score_adj("BestEffort", &c, 4 << 30), 1000);
        assert_eq!(oom_score_adj("Burstable", &c, 4 << 30), 750);
        assert_eq!(
            oom_score_adj("Burstable", &container(&[], &[]), 4 << 30),
            999
        );
        assert_eq!(
            oom_score_adj("Burstable", &container(&[("memory", "8Gi")], &[]), 4 << 30),
            3
        );
    }

    #[test]
    fn images_and_policies() {
        assert_eq!(default_image_tag("busybox"), "busybox:latest");
        assert_eq!(default_image_tag("busybox:1.36"), "busybox:1.36");
        assert_eq!(
            default_image_tag("localhost:5000/busybox"),
            "localhost:5000/busybox:latest"
        );
        assert_eq!(
            default_image_tag("busybox@sha256:abc"),
            "busybox@sha256:abc"
        );
        let mut c = Container {
            image: Some("busybox".into()),
            ..Default::default()
        };
        assert_eq!(pull_policy(&c), "Always");
        c.image = Some("busybox:1.0".into());
        assert_eq!(pull_policy(&c), "IfNotPresent");
        c.image_pull_policy = Some("Never".into());
        assert_eq!(pull_policy(&c), "Never");
    }

    #[test]
    fn hashes() {
        assert_eq!(fnv1a32(b""), 0x811c9dc5);
        assert_eq!(fnv1a128_hex(b"").len(), 32);
        let a = Container {
            name: "a".into(),
            image: Some("x".into()),
            ..Default::default()
        };
        let mut b = a.clone();
        assert_eq!(container_hash(&a), container_hash(&b));
        b.image = Some("y".into());
        assert_ne!(container_hash(&a), container_hash(&b));
    }

    #[test]
    fn hostnames() {
        let mut p = pod(vec![]);
        p.metadata.name = Some("web-0".into());
        p.metadata.namespace = Some("ns".into());
        assert_eq!(
            pod_hostname_and_domain(&p, "cluster.local"),
            ("web-0".into(), None)
        );
        p.spec.as_mut().unwrap().subdomain = Some("web".into());
        p.spec.as_mut().unwrap().hostname = Some("h".into());
        assert_eq!(
            pod_hostname_and_domain(&p, "cluster.local"),
            ("h".into(), Some("web.ns.svc.cluster.local".into()))
        );
    }
}
