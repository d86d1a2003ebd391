//! The bootstrap controller: the system namespaces, the built-in
//! PriorityClasses (system-node-critical, system-cluster-critical) and the
//! `kubernetes` Service with its Endpoints and EndpointSlice in default,
//! created at start and kept in place.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::registry::admission::SYSTEM_NAMESPACES;
use crate::registry::context::{RequestContext, UserInfo};
use crate::registry::priority::system_priority_classes;
use crate::registry::Registry;

fn system_ctx() -> RequestContext {
    let mut ctx = RequestContext::new(UserInfo {
        name: "system:apiserver".into(),
        uid: String::new(),
        groups: vec!["system:masters".into()],
        extra: Default::default(),
    });
    ctx.field_manager = "kube-apiserver".into();
    ctx.internal = true;
    ctx
}

async fn ensure(
    reg: &Registry,
    group: &str,
    version: &str,
    plural: &str,
    ns: &str,
    obj: Value,
    replace: bool,
) -> anyhow::Result<()> {
    let store = reg
        .get(group, version, plural)
        .ok_or_else(|| anyhow::anyhow!("{plural} not registered"))?;
    let name = apimachinery::meta::name(&obj).to_string();
    let ctx = system_ctx();
    match store.get(ns, &name).await {
        Ok(cur) => {
            if replace {
                let mut want = obj.clone();
                apimachinery::meta::set_resource_version(
                    &mut want,
                    apimachinery::meta::resource_version(&cur),
                );
                // Only rewrite when the part we own differs.
                let differs = ["subsets", "endpoints", "ports"]
                    .iter()
                    .any(|k| cur.get(*k) != want.get(*k));
                if differs {
                    store
                        .update(&ctx, ns, &name, "", want)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
            }
            Ok(())
        }
        Err(e) if e.code == 404 => match store.create(&ctx, ns, obj).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(anyhow::anyhow!("creating {plural}/{name}: {e}")),
        },
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

/// How long an apiserver's liveness key outlives its last refresh
/// (upstream's lease endpoint reconciler: 15 s, refreshed every 10 s).
const MASTER_LEASE_TTL_SECS: i64 = 15;

/// The addresses of the live apiservers: this one's liveness key
/// (`<prefix>/masterleases/<ip>`, an etcd lease) is refreshed, and every
/// unexpired key is an endpoint of the `kubernetes` Service. Several
/// apiservers behind one Service all stay in it; a stopped one drops out
/// once its key expires.
async fn live_apiservers(reg: &Registry, advertise: IpAddr) -> anyhow::Result<Vec<String>> {
    let prefix = format!("{}/masterleases/", reg.storage.prefix());
    reg.storage
        .put_with_ttl(
            &format!("{prefix}{advertise}"),
            advertise.to_string().into_bytes(),
            MASTER_LEASE_TTL_SECS,
        )
        .await
        .map_err(|e| anyhow::anyhow!("refreshing the master lease: {e}"))?;
    let (kvs, _) = reg
        .storage
        .list(&prefix)
        .await
        .map_err(|e| anyhow::anyhow!("listing master leases: {e}"))?;
    let mut ips: Vec<String> = kvs
        .iter()
        .filter_map(|kv| kv.key.strip_prefix(&prefix))
        .filter(|ip| {
            ip.parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_ipv4() == advertise.is_ipv4())
        })
        .map(String::from)
        .collect();
    if !ips.contains(&advertise.to_string()) {
        ips.push(advertise.to_string());
    }
    ips.sort();
    ips.dedup();
    Ok(ips)
}

/// One reconciliation pass.
pub async fn reconcile(reg: &Registry, advertise: IpAddr, port: u16) -> anyhow::Result<()> {
    for ns in SYSTEM_NAMESPACES {
        ensure(
            reg,
            "",
            "v1",
            "namespaces",
            "",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            false,
        )
        .await?;
    }
    for pc in system_priority_classes() {
        ensure(
            reg,
            "scheduling.k8s.io",
            "v1",
            "priorityclasses",
            "",
            pc,
            false,
        )
        .await?;
    }
    let live = live_apiservers(reg, advertise).await?;
    let addresses: Vec<Value> = live.iter().map(|ip| json!({"ip": ip})).collect();
    let slice_endpoints: Vec<Value> = live
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    let cluster_ip = reg.service_allocator.first_ip().to_string();
    ensure(
        reg,
        "",
        "v1",
        "services",
        "default",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}
        }),
        false,
    )
    .await?;
    ensure(
        reg,
        "",
        "v1",
        "endpoints",
        "default",
        json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": addresses, "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
        }),
        true,
    )
    .await?;
    ensure(
        reg,
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "default",
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": if advertise.is_ipv4() { "IPv4" } else { "IPv6" },
            "endpoints": slice_endpoints,
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]
        }),
        true,
    )
    .await?;
    Ok(())
}

/// Reconcile at start (retrying until it succeeds) and then every 10 s.
pub async fn run(reg: Arc<Registry>, advertise: IpAddr, port: u16, done: impl FnOnce()) {
    loop {
        match reconcile(&reg, advertise, port).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "bootstrap failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    done();
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        if let Err(e) = reconcile(&reg, advertise, port).await {
            tracing::warn!(error = %e, "bootstrap reconcile failed");
        }
    }
}
