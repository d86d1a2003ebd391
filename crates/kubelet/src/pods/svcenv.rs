//! Service link environment variables (`FOO_SERVICE_HOST`, `FOO_PORT_80_TCP`...),
//! as upstream injects them for the services of the pod's namespace
//! (enableServiceLinks) and the `kubernetes` service.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::ListParams;
use kube::Api;

use super::{spec, Context};

const CACHE_TTL: Duration = Duration::from_secs(5);

fn env_name(s: &str) -> String {
    s.to_uppercase().replace('-', "_")
}

/// The variables for a list of services (upstream envvars.FromServices).
pub fn from_services(services: &[Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let ports = spec.ports.clone().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let name = env_name(svc.metadata.name.as_deref().unwrap_or(""));
        out.push((format!("{name}_SERVICE_HOST"), ip.clone()));
        out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for p in &ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{name}_SERVICE_PORT_{}", env_name(pn)),
                    p.port.to_string(),
                ));
            }
        }
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.clone()
        };
        let proto_of = |p: &k8s_openapi::api::core::v1::ServicePort| {
            p.protocol.clone().unwrap_or_else(|| "TCP".into())
        };
        out.push((
            format!("{name}_PORT"),
            format!("{}://{host}:{}", proto_of(first).to_lowercase(), first.port),
        ));
        for p in &ports {
            let proto = proto_of(p);
            let prefix = format!("{name}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((
                prefix.clone(),
                format!("{}://{host}:{}", proto.to_lowercase(), p.port),
            ));
            out.push((format!("{prefix}_PROTO"), proto.to_lowercase()));
            out.push((format!("{prefix}_PORT"), p.port.to_string()));
            out.push((format!("{prefix}_ADDR"), ip.clone()));
        }
    }
    out
}

async fn list(ctx: &Context, ns: &str) -> Vec<Service> {
    {
        let cache = ctx.services_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, v)) = cache.get(ns) {
            if t.elapsed() < CACHE_TTL {
                return v.clone();
            }
        }
    }
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    let v = match api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            tracing::debug!("listing services in {ns}: {e}");
            return Vec::new();
        }
    };
    let mut cache = ctx.services_cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() > 1024 {
        cache.clear();
    }
    cache.insert(ns.to_string(), (Instant::now(), v.clone()));
    v
}

/// The service variables for a pod's containers.
pub async fn service_env(ctx: &Context, pod: &Pod) -> Vec<(String, String)> {
    let ns = spec::namespace(pod);
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut by_name: BTreeMap<String, Service> = BTreeMap::new();
    if links {
        for s in list(ctx, ns).await {
            by_name.insert(s.metadata.name.clone().unwrap_or_default(), s);
        }
    }
    // The apiserver's service is always there (from the default namespace).
    if ns != "default" || !links {
        if let Some(k) = list(ctx, "default")
            .await
            .into_iter()
            .find(|s| s.metadata.name.as_deref() == Some("kubernetes"))
        {
            by_name.insert("kubernetes".into(), k);
        }
    }
    let services: Vec<Service> = by_name.into_values().collect();
    from_services(&services)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};

    #[test]
    fn variables() {
        let svc = Service {
            metadata: kube::api::ObjectMeta {
                name: Some("my-svc".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.96.0.20".into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let env: BTreeMap<_, _> = from_services(&[svc]).into_iter().collect();
        assert_eq!(env["MY_SVC_SERVICE_HOST"], "10.96.0.20");
        assert_eq!(env["MY_SVC_SERVICE_PORT"], "80");
        assert_eq!(env["MY_SVC_SERVICE_PORT_HTTP"], "80");
        assert_eq!(env["MY_SVC_PORT"], "tcp://10.96.0.20:80");
        assert_eq!(env["MY_SVC_PORT_80_TCP"], "tcp://10.96.0.20:80");
        assert_eq!(env["MY_SVC_PORT_80_TCP_PROTO"], "tcp");
        assert_eq!(env["MY_SVC_PORT_80_TCP_PORT"], "80");
        assert_eq!(env["MY_SVC_PORT_80_TCP_ADDR"], "10.96.0.20");
    }
}
