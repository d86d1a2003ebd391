//! serviceaccount-controller: a `default` ServiceAccount in every active
//! namespace (re-created when deleted).

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};

use crate::informers::{owner_queue_with, Informer, Notification};
use crate::workqueue::run_workers;
use crate::ControllerContext;

/// The service accounts every namespace gets.
pub const SERVICE_ACCOUNTS_TO_ENSURE: &[&str] = &["default"];

pub fn namespace_active(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}

pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let namespaces = ctx.informers.get::<Namespace>();
    let sas = ctx.informers.get::<ServiceAccount>();
    // only a deleted ServiceAccount needs re-creating
    let queue = owner_queue_with(&namespaces, &sas, ctx.stop.clone(), |n| match n {
        Notification::Deleted(sa)
            if SERVICE_ACCOUNTS_TO_ENSURE.contains(&sa.name_any().as_str()) =>
        {
            Some(sa.namespace().unwrap_or_default())
        }
        _ => None,
    })
    .await;
    let client = ctx.client.clone();
    run_workers(
        queue,
        1,
        ctx.stop.clone(),
        "serviceaccount",
        move |ns: String| sync(client.clone(), namespaces.clone(), sas.clone(), ns),
    )
    .await;
    Ok(())
}

async fn sync(
    client: kube::Client,
    namespaces: Informer<Namespace>,
    sas: Informer<ServiceAccount>,
    ns: String,
) -> anyhow::Result<()> {
    let Some(namespace) = namespaces.get(None, &ns) else {
        return Ok(());
    };
    if !namespace_active(&namespace) {
        return Ok(());
    }
    let api: Api<ServiceAccount> = Api::namespaced(client, &ns);
    for name in SERVICE_ACCOUNTS_TO_ENSURE {
        if sas.get(Some(&ns), name).is_some() {
            continue;
        }
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => tracing::debug!("created serviceaccount {ns}/{name}"),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            // The namespace is terminating or gone: nothing to do.
            Err(kube::Error::Api(e)) if e.code == 403 || e.code == 404 => {
                tracing::debug!("not creating serviceaccount {ns}/{name}: {}", e.message)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
