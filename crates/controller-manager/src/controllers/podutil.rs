//! Small pod/selector helpers shared by the workload controllers (upstream
//! `pkg/api/v1/pod`, `pkg/controller` and `endpointslice/util` semantics).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Pod, PodCondition, ServicePort, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Succeeded or Failed.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

pub fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    condition(pod, "Ready").is_some_and(|c| c.status == "True")
}

/// Active as the workload controllers count it: not terminal, not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && !is_terminating(pod)
}

/// Whether a pod belongs in a Service's endpoints (upstream ShouldPodBeInEndpoints).
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let has_ip = pod.status.as_ref().is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    if !has_ip {
        return false;
    }
    if !include_terminating && is_terminating(pod) {
        return false;
    }
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    match policy {
        "Never" => !is_terminal(pod),
        "OnFailure" => phase(pod) != "Succeeded",
        _ => true,
    }
}

/// The pod IPs (status.podIPs, falling back to status.podIP).
pub fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(st) = pod.status.as_ref() else {
        return vec![];
    };
    let mut out: Vec<String> = st
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.clone())
        .filter(|ip| !ip.is_empty())
        .collect();
    if out.is_empty() {
        if let Some(ip) = st.pod_ip.as_ref().filter(|ip| !ip.is_empty()) {
            out.push(ip.clone());
        }
    }
    out
}

/// The pod IP of an address family ("IPv4" / "IPv6").
pub fn pod_ip_for_family(pod: &Pod, family: &str) -> Option<String> {
    pod_ips(pod)
        .into_iter()
        .find(|ip| ip.contains(':') == (family == "IPv6"))
}

/// Resolve a Service port's targetPort against a pod (upstream podutil.FindPort):
/// a number is used as is, a name is looked up among the container ports
/// (app containers and restartable init containers) with the same protocol.
pub fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    let proto = sp.protocol.as_deref().unwrap_or("TCP");
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers.iter().chain(sidecars).find_map(|c| {
                c.ports.iter().flatten().find_map(|p| {
                    (p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == proto)
                        .then_some(p.container_port)
                })
            })
        }
    }
}

/// The controller owner reference, if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

/// The informer key (`namespace/name`) of the controller owning `meta`, if
/// its controller reference satisfies `is_owner`.
pub fn controller_key(
    meta: &ObjectMeta,
    is_owner: impl Fn(&OwnerReference) -> bool,
) -> Option<String> {
    let o = controller_ref(meta).filter(|o| is_owner(o))?;
    Some(format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        o.name
    ))
}

/// A map selector (Service/RC style): every key/value must match; empty matches everything.
pub fn map_selector_matches(
    sel: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    sel.iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// A metav1.LabelSelector (matchLabels + matchExpressions). An empty selector matches everything.
pub fn label_selector_matches(
    sel: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    if let Some(ml) = &sel.match_labels {
        if !map_selector_matches(ml, labels) {
            return false;
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let val = labels.and_then(|l| l.get(&e.key));
        let values = e.values.as_deref().unwrap_or(&[]);
        let ok = match e.operator.as_str() {
            "In" => val.is_some_and(|v| values.contains(v)),
            "NotIn" => val.is_none_or(|v| !values.contains(v)),
            "Exists" => val.is_some(),
            "DoesNotExist" => val.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// A label selector in the `k=v,k2 in (a,b)` string form for list calls.
pub fn label_selector_string(sel: &LabelSelector) -> String {
    let mut parts = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for e in sel.match_expressions.iter().flatten() {
        let vals = e.values.as_deref().unwrap_or(&[]).join(",");
        match e.operator.as_str() {
            "In" => parts.push(format!("{} in ({vals})", e.key)),
            "NotIn" => parts.push(format!("{} notin ({vals})", e.key)),
            "Exists" => parts.push(e.key.clone()),
            "DoesNotExist" => parts.push(format!("!{}", e.key)),
            _ => {}
        }
    }
    parts.join(",")
}

/// Whether a toleration tolerates a taint (upstream Toleration.ToleratesTaint).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(eff) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if eff != taint.effect {
            return false;
        }
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        _ => {
            // Empty key with Equal is invalid; treat it as matching only an equal key.
            key == taint.key
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
    }
}

/// The pod's conditions with DisruptionTarget=True (`reason`, `message`, now)
/// in place of any earlier DisruptionTarget: what the taint eviction and pod
/// GC controllers write before deleting a pod.
pub fn conditions_with_disruption_target(
    pod: &Pod,
    reason: &str,
    message: &str,
) -> Vec<PodCondition> {
    let mut conds: Vec<PodCondition> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    conds.retain(|c| c.type_ != "DisruptionTarget");
    conds.push(PodCondition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(now_time()),
        ..Default::default()
    });
    conds
}

/// An API time as a chrono UTC time.
pub fn to_utc(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        .unwrap_or_default()
}

/// A chrono UTC time as an API time (second precision, as the API stores it).
pub fn api_time(d: DateTime<Utc>) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(d.timestamp())
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

/// Now, as an API time.
pub fn now_time() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    api_time(Utc::now())
}

/// The API said 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The message of an API error (the Status message, as upstream prints a
/// StatusError), else the error itself.
pub fn err_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// The API said 409 (conflict / already exists).
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn pod_with_port(name: &str, port: i32) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some(name.into()),
                        container_port: port,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn find_named_port() {
        let pod = pod_with_port("http", 8080);
        let sp = ServicePort {
            port: 80,
            target_port: Some(IntOrString::String("http".into())),
            ..Default::default()
        };
        assert_eq!(find_port(&pod, &sp), Some(8080));
        let sp2 = ServicePort {
            port: 80,
            target_port: Some(IntOrString::String("nope".into())),
            ..Default::default()
        };
        assert_eq!(find_port(&pod, &sp2), None);
        let sp3 = ServicePort {
            port: 80,
            target_port: Some(IntOrString::Int(9)),
            ..Default::default()
        };
        assert_eq!(find_port(&pod, &sp3), Some(9));
        let udp = ServicePort {
            port: 80,
            protocol: Some("UDP".into()),
            target_port: Some(IntOrString::String("http".into())),
            ..Default::default()
        };
        assert_eq!(find_port(&pod, &udp), None);
    }

    #[test]
    fn endpoints_membership() {
        let mut pod = Pod {
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some("10.0.0.1".into()),
                phase: Some("Running".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(should_be_in_endpoints(&pod, false));
        pod.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!should_be_in_endpoints(&pod, false));
        pod.status.as_mut().unwrap().phase = Some("Running".into());
        pod.metadata.deletion_timestamp = Some(now_time());
        assert!(!should_be_in_endpoints(&pod, false));
        assert!(should_be_in_endpoints(&pod, true));
    }

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "a".to_string())].into();
        let sel = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "b".into()]),
            }]),
            ..Default::default()
        };
        assert!(label_selector_matches(&sel, Some(&labels)));
        assert_eq!(label_selector_string(&sel), "app in (a,b)");
        let tol = Toleration {
            key: Some("k".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        };
        let taint = Taint {
            key: "k".into(),
            effect: "NoExecute".into(),
            ..Default::default()
        };
        assert!(tolerates(&tol, &taint));
    }
}
