//! EndpointSlice mirroring controller (upstream
//! pkg/controller/endpointslicemirroring): custom Endpoints of a Service
//! without a selector are mirrored into EndpointSlices (managed-by
//! `endpointslicemirroring-controller.k8s.io`, owned by the Endpoints), one
//! group per subset and address family, at most
//! `MAX_ENDPOINTS_PER_SUBSET` addresses per subset. Endpoints labelled
//! `endpointslice.kubernetes.io/skip-mirror: "true"` are left alone.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, PostParams};
use kube::Api;

use super::endpointslice::{service_key_if_managed_by, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
use super::podutil;
use crate::informers::{key_of, split_key, Informer, Notification};
use crate::workqueue::{run_workers, WorkQueue};
use crate::ControllerContext;

pub const MIRRORING_MANAGED_BY: &str = "endpointslicemirroring-controller.k8s.io";
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
pub const MAX_ENDPOINTS_PER_SUBSET: usize = 1000;

/// Whether these Endpoints should be mirrored (the service exists and has no selector).
pub fn should_mirror(ep: &Endpoints, svc: Option<&Service>) -> bool {
    let skip = ep
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SKIP_MIRROR_LABEL))
        .map(|s| s.as_str())
        == Some("true");
    let Some(svc) = svc else { return false };
    let selector = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty());
    !skip && !selector && ep.metadata.deletion_timestamp.is_none()
}

fn family_of(ip: &str) -> &'static str {
    if ip.contains(':') {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// The desired slices (without names) for an Endpoints object.
pub fn desired_slices(ep: &Endpoints) -> Vec<EndpointSlice> {
    let name = ep.metadata.name.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = ep
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| {
            k.as_str() != SKIP_MIRROR_LABEL
                && k.as_str() != MANAGED_BY_LABEL
                && k.as_str() != SERVICE_NAME_LABEL
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MIRRORING_MANAGED_BY.into());
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Endpoints".into(),
        name: name.clone(),
        uid: ep.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let mut out = Vec::new();
    for subset in ep.subsets.iter().flatten() {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let mut by_family: BTreeMap<&str, Vec<Endpoint>> = BTreeMap::new();
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| (a, false));
        for (a, r) in ready.chain(not_ready).take(MAX_ENDPOINTS_PER_SUBSET) {
            by_family
                .entry(family_of(&a.ip))
                .or_default()
                .push(Endpoint {
                    addresses: vec![a.ip.clone()],
                    conditions: Some(EndpointConditions {
                        ready: Some(r),
                        serving: Some(r),
                        terminating: Some(false),
                    }),
                    hostname: a.hostname.clone(),
                    node_name: a.node_name.clone(),
                    target_ref: a.target_ref.clone(),
                    ..Default::default()
                });
        }
        for (fam, eps) in by_family {
            out.push(EndpointSlice {
                metadata: ObjectMeta {
                    generate_name: Some(super::endpointslice::slice_prefix(&name)),
                    namespace: ep.metadata.namespace.clone(),
                    labels: Some(labels.clone()),
                    owner_references: Some(vec![owner.clone()]),
                    ..Default::default()
                },
                address_type: fam.into(),
                endpoints: eps,
                ports: (!ports.is_empty()).then(|| ports.clone()),
            });
        }
    }
    out
}

fn mirrored_key(s: &EndpointSlice) -> Option<String> {
    service_key_if_managed_by(s, MIRRORING_MANAGED_BY)
}

/// The mirroring controller ("endpointslice-mirroring-controller").
pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let endpoints = ctx.informers.get::<Endpoints>();
    let services = ctx.informers.get::<Service>();
    let slices = ctx.informers.get::<EndpointSlice>();
    let mut e_sub = endpoints.subscribe();
    let mut s_sub = services.subscribe();
    let mut l_sub = slices.subscribe();
    endpoints.wait_synced().await;
    services.wait_synced().await;
    slices.wait_synced().await;
    let queue: WorkQueue<String> = WorkQueue::new();
    queue.add_all(endpoints.keys());
    for s in slices.list() {
        if let Some(k) = mirrored_key(&s) {
            queue.add(k);
        }
    }
    {
        let (queue, stop) = (queue.clone(), ctx.stop.clone());
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    n = e_sub.recv() => match n {
                        Some(Notification::Resync) => queue.add_all(endpoints.keys()),
                        Some(n) => if let Some(o) = n.object() { queue.add(key_of(o.as_ref())) },
                        None => break,
                    },
                    n = s_sub.recv() => match n {
                        Some(Notification::Resync) => queue.add_all(endpoints.keys()),
                        Some(n) => if let Some(o) = n.object() { queue.add(key_of(o.as_ref())) },
                        None => break,
                    },
                    n = l_sub.recv() => match n {
                        Some(Notification::Updated { new, .. }) | Some(Notification::Deleted(new)) => if let Some(k) = mirrored_key(&new) { queue.add(k) },
                        Some(_) => {}
                        None => break,
                    },
                }
            }
        });
    }
    let client = ctx.client.clone();
    run_workers(
        queue,
        1,
        ctx.stop.clone(),
        "endpointslice-mirroring-controller",
        move |key: String| {
            let (client, endpoints, services, slices) = (
                client.clone(),
                endpoints.clone(),
                services.clone(),
                slices.clone(),
            );
            async move { sync(&client, &endpoints, &services, &slices, &key).await }
        },
    )
    .await;
    Ok(())
}

fn same(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    a.address_type == b.address_type
        && a.endpoints == b.endpoints
        && a.ports == b.ports
        && a.metadata.labels == b.metadata.labels
}

async fn sync(
    client: &kube::Client,
    endpoints: &Informer<Endpoints>,
    services: &Informer<Service>,
    slices: &Informer<EndpointSlice>,
    key: &str,
) -> anyhow::Result<()> {
    let (ns, _) = split_key(key);
    let ns = ns.unwrap_or("default");
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let mut existing: Vec<EndpointSlice> = slices
        .list_namespaced(ns)
        .into_iter()
        .filter(|s| mirrored_key(s).as_deref() == Some(key))
        .map(|s| (*s).clone())
        .collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let ep = endpoints.get_by_key(key);
    let svc = services.get_by_key(key);
    let desired = match &ep {
        Some(ep) if should_mirror(ep, svc.as_deref()) => desired_slices(ep),
        _ => vec![],
    };
    let pp = PostParams::default();
    let mut old = existing.into_iter();
    for want in desired {
        match old.next() {
            Some(cur) => {
                if !same(&cur, &want) {
                    let mut upd = cur.clone();
                    upd.address_type = want.address_type.clone();
                    upd.endpoints = want.endpoints.clone();
                    upd.ports = want.ports.clone();
                    upd.metadata.labels = want.metadata.labels.clone();
                    upd.metadata.owner_references = want.metadata.owner_references.clone();
                    if upd.address_type != cur.address_type {
                        // addressType is immutable: replace the slice.
                        api.delete(
                            cur.metadata.name.as_deref().unwrap_or(""),
                            &DeleteParams::default(),
                        )
                        .await
                        .ok();
                        upd.metadata = want.metadata.clone();
                        upd.metadata.labels = want.metadata.labels.clone();
                        api.create(&pp, &upd).await?;
                    } else {
                        api.replace(cur.metadata.name.as_deref().unwrap_or(""), &pp, &upd)
                            .await?;
                    }
                }
            }
            None => {
                api.create(&pp, &want).await?;
            }
        }
    }
    for cur in old {
        match api
            .delete(
                cur.metadata.name.as_deref().unwrap_or(""),
                &DeleteParams::default(),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if podutil::is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EndpointAddress, EndpointSubset, ServiceSpec};

    #[test]
    fn mirrors_selectorless_endpoints() {
        let ep = Endpoints {
            metadata: ObjectMeta {
                name: Some("ext".into()),
                namespace: Some("default".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            subsets: Some(vec![EndpointSubset {
                addresses: Some(vec![EndpointAddress {
                    ip: "10.1.2.3".into(),
                    ..Default::default()
                }]),
                not_ready_addresses: Some(vec![EndpointAddress {
                    ip: "fd00::1".into(),
                    ..Default::default()
                }]),
                ports: Some(vec![k8s_openapi::api::core::v1::EndpointPort {
                    port: 443,
                    ..Default::default()
                }]),
            }]),
        };
        let svc = Service {
            spec: Some(ServiceSpec::default()),
            ..Default::default()
        };
        assert!(should_mirror(&ep, Some(&svc)));
        let mut with_sel = svc.clone();
        with_sel.spec.as_mut().unwrap().selector =
            Some([("a".to_string(), "b".to_string())].into());
        assert!(!should_mirror(&ep, Some(&with_sel)));
        let d = desired_slices(&ep);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].address_type, "IPv4");
        assert_eq!(
            d[1].endpoints[0].conditions.as_ref().unwrap().ready,
            Some(false)
        );
        assert_eq!(
            d[0].metadata.labels.as_ref().unwrap()[MANAGED_BY_LABEL],
            MIRRORING_MANAGED_BY
        );
    }
}
